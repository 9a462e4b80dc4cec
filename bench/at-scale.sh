#!/usr/bin/env bash
# Throughput with 1M existing call records beside an empty database, side by side: CloudBase's
# `chat` at c=1 and c=32 on a fresh database, then on one seeded by `reports` (1,000 users,
# 1,000,000 calls over 90 days, and their rollups). Loopback only; bounded runs. Results: one
# JSON line per run in bench/out/at-scale.jsonl (run after run.sh, which clears bench/out).
#
#   bash bench/at-scale.sh                       # BACKENDS="sqlite postgres" SECONDS_PER_RUN=5
set -euo pipefail
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-5}"
BACKENDS="${BACKENDS:-sqlite postgres}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
out="$repo/bench/out/at-scale"
UP=18921; CB=18923
prepare "$out" "$UP"
BODY='{"query":"mutation { chat(input: {provider: \"bench\", model: \"bench-model\", message: \"hi\"}) { content } }"}'

measure() { # measure LABEL DATABASE_URL
    start_cloudbase "$out" "$1" "$2" "$CB"; local cb=$cb_pid
    local token
    token=$(login_token "$CB")
    taskset -c 0 "$bin/load" http "http://127.0.0.1:$CB/graphql" "$BODY" "$token" 1 1 200 > /dev/null
    for c in 1 32; do
        local line
        line=$(taskset -c 0 "$bin/load" http "http://127.0.0.1:$CB/graphql" "$BODY" "$token" "$c" "$SECONDS_PER_RUN" 200000)
        echo "{\"label\":\"$1\",${line#\{}" | tee -a "$repo/bench/out/at-scale.jsonl"
    done
    kill "$cb"; wait "$cb" 2>/dev/null || true
}

for backend in $BACKENDS; do
    if [ "$backend" = sqlite ]; then
        empty="sqlite://$out/empty.db"; seeded="sqlite://$out/seeded.db"
    else
        for d in bench_empty bench_seeded; do
            psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" -c "CREATE DATABASE $d"
        done
        empty="$PG/bench_empty"; seeded="$PG/bench_seeded"
    fi
    echo "seeding 1,000,000 call records ($backend)"
    "$bin/reports" "$seeded" 1000000 > "$out/seed-$backend.jsonl"
    # The seeded users exist, so no bootstrap admin is made there: create the bench account.
    (cd "$out" && echo bench-password-1 | DATABASE_URL="$seeded" CLOUDBASE_CONFIG="$out/cloudbase.toml" \
        CLOUDBASE_DATA_DIR="$out/data-$backend-1M" \
        "$bin/cloudbase-ai" user create --email bench@example.com --role admin --password-stdin > /dev/null)
    measure "$backend-empty" "$empty"
    measure "$backend-1M" "$seeded"
done
