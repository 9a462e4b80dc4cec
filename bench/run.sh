#!/usr/bin/env bash
# Measures CloudBase's overhead against the mock upstream and the floor, side by side, in one run.
# Driver on core 0, servers and upstream on core 1 (taskset). Loopback only; every run is bounded
# in time (SECONDS) and in requests (MAX). Results: one JSON line per run in bench/out/results.jsonl
# (`python3 bench/table.py` prints them as RESULTS.md's table).
#
#   bash bench/run.sh              # SQLite and PostgreSQL (postgres://postgres@127.0.0.1:5432)
#   SECONDS_PER_RUN=10 bash bench/run.sh
#   LEVELS="1 32" bash bench/run.sh   # concurrency levels (default 1 32 128 512)
set -euo pipefail
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-5}"
MAX=200000
LEVELS="${LEVELS:-1 32 128 512}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
out="$repo/bench/out"
UP=18901; FLOOR=18902; CB=18903
prepare "$out" "$UP"

load() { # load LABEL MODE URL BODY TOKEN CONCURRENCY
    taskset -c 0 "$bin/load" "$2" "$3" "$4" "$5" "$6" 1 200 > /dev/null   # warm-up
    local line
    line=$(taskset -c 0 "$bin/load" "$2" "$3" "$4" "$5" "$6" "$SECONDS_PER_RUN" "$MAX")
    echo "{\"label\":\"$1\",${line#\{}" | tee -a "$out/results.jsonl"
}

UPBODY='{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'
for c in $LEVELS; do load "upstream" http "http://127.0.0.1:$UP/v1/chat/completions" "$UPBODY" - "$c"; done

FLOOR_PLAIN='{"query":"mutation { chat(message: \"hi\") }"}'
FLOOR_STREAM='{"query":"subscription { chatStream(message: \"hi\") }"}'
CB_PLAIN='{"query":"mutation { chat(input: {provider: \"bench\", model: \"bench-model\", message: \"hi\"}) { content } }"}'
CB_STREAM='{"query":"subscription { chatStream(input: {provider: \"bench\", model: \"bench-model\", message: \"hi\"}) { delta done } }"}'
# The OpenAI-compatible door, and the REST floor beside it (same body but for the model's name).
V1_PLAIN='{"model":"bench/bench-model","messages":[{"role":"user","content":"hi"}]}'
V1_STREAM='{"model":"bench/bench-model","stream":true,"messages":[{"role":"user","content":"hi"}]}'
REST_PLAIN='{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'
REST_STREAM='{"model":"bench-model","stream":true,"messages":[{"role":"user","content":"hi"}]}'


for backend in sqlite postgres; do
    if [ "$backend" = sqlite ]; then
        floor_db="sqlite://$out/floor.db"; cb_db="sqlite://$out/cloudbase.db"
    else
        psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS bench_floor WITH (FORCE)" -c "CREATE DATABASE bench_floor" \
            -c "DROP DATABASE IF EXISTS bench_cloudbase WITH (FORCE)" -c "CREATE DATABASE bench_cloudbase"
        floor_db="$PG/bench_floor"; cb_db="$PG/bench_cloudbase"
    fi

    taskset -c 1 "$bin/floor" "127.0.0.1:$FLOOR" "http://127.0.0.1:$UP/v1" "$floor_db" & floor_pid=$!; pids+=($floor_pid)
    wait_ready "http://127.0.0.1:$FLOOR/graphql"
    for c in $LEVELS; do load "floor-$backend" http "http://127.0.0.1:$FLOOR/graphql" "$FLOOR_PLAIN" - "$c"; done
    for c in $LEVELS; do load "floor-$backend-stream" ws "ws://127.0.0.1:$FLOOR/graphql/ws" "$FLOOR_STREAM" - "$c"; done
    for c in $LEVELS; do load "floor-$backend-rest" http "http://127.0.0.1:$FLOOR/v1/chat/completions" "$REST_PLAIN" - "$c"; done
    for c in $LEVELS; do load "floor-$backend-rest-sse" sse "http://127.0.0.1:$FLOOR/v1/chat/completions" "$REST_STREAM" - "$c"; done
    kill "$floor_pid"; wait "$floor_pid" 2>/dev/null || true

    start_cloudbase "$out" "$backend" "$cb_db" "$CB"
    token=$(login_token "$CB")
    sleep 1
    echo "{\"label\":\"cloudbase-$backend-rss\",\"idle_rss_kb\":$(rss_kb "$cb_pid"),\"idle_anon_kb\":$(anon_kb "$cb_pid")}" | tee -a "$out/results.jsonl"
    for c in $LEVELS; do load "cloudbase-$backend" http "http://127.0.0.1:$CB/graphql" "$CB_PLAIN" "$token" "$c"; done
    for c in $LEVELS; do load "cloudbase-$backend-stream" ws "ws://127.0.0.1:$CB/graphql/ws" "$CB_STREAM" "$token" "$c"; done
    key=$(api_key "$CB" "$token")
    for c in $LEVELS; do load "cloudbase-$backend-v1" http "http://127.0.0.1:$CB/v1/chat/completions" "$V1_PLAIN" "$key" "$c"; done
    for c in $LEVELS; do load "cloudbase-$backend-v1-sse" sse "http://127.0.0.1:$CB/v1/chat/completions" "$V1_STREAM" "$key" "$c"; done
    echo "{\"label\":\"cloudbase-$backend-rss\",\"peak_rss_kb\":$(hwm_kb "$cb_pid")}" | tee -a "$out/results.jsonl"
    # How many calls shared each batched statement over the whole run (PostgreSQL), or each
    # commit and the rollup rows it wrote (SQLite).
    curl -s "http://127.0.0.1:$CB/metrics" | python3 -c 'import json, sys
counts = {l.split()[0]: float(l.split()[1]) for l in sys.stdin if l.startswith(("cloudbase_pg_", "cloudbase_sqlite_"))}
print(json.dumps({"label": sys.argv[1], **counts}))' "cloudbase-$backend-batches" | tee -a "$out/results.jsonl"
    kill "$cb_pid"; wait "$cb_pid" 2>/dev/null || true
done
echo "results: $out/results.jsonl"
