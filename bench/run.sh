#!/usr/bin/env bash
# Measures CloudBase's overhead against the mock upstream and the floor, side by side, in one run.
# Driver on core 0, servers and upstream on core 1 (taskset). Loopback only; every run is bounded
# in time (SECONDS) and in requests (MAX). Results: one JSON line per run in bench/out/results.jsonl.
#
#   bash bench/run.sh              # SQLite and PostgreSQL (postgres://postgres@127.0.0.1:5432)
#   SECONDS_PER_RUN=10 bash bench/run.sh
#   LEVELS="1 32" bash bench/run.sh   # concurrency levels (default 1 32 128 512)
set -euo pipefail
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-5}"
MAX=200000
LEVELS="${LEVELS:-1 32 128 512}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
out="$repo/bench/out"
rm -rf "$out" && mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "building release binaries"
cargo build --release --quiet -p cloudbase-server -p cloudbase-plugin-openai-compatible -p cloudbase-bench
bin="$repo/target/release"
mkdir -p "$out/plugins"
cp "$bin/libcloudbase_plugin_openai_compatible.so" "$out/plugins/"

UP=18901; FLOOR=18902; CB=18903
taskset -c 1 "$bin/mock_upstream" "127.0.0.1:$UP" & pids+=($!)

wait_ready() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "not ready: $1"; exit 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
load() { # load LABEL MODE URL BODY TOKEN CONCURRENCY
    taskset -c 0 "$bin/load" "$2" "$3" "$4" "$5" "$6" 1 200 > /dev/null   # warm-up
    local line
    line=$(taskset -c 0 "$bin/load" "$2" "$3" "$4" "$5" "$6" "$SECONDS_PER_RUN" "$MAX")
    echo "{\"label\":\"$1\",${line#\{}" | tee -a "$out/results.jsonl"
}

wait_ready "http://127.0.0.1:$UP/"
UPBODY='{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'
for c in $LEVELS; do load "upstream" http "http://127.0.0.1:$UP/v1/chat/completions" "$UPBODY" - "$c"; done

FLOOR_PLAIN='{"query":"mutation { chat(message: \"hi\") }"}'
FLOOR_STREAM='{"query":"subscription { chatStream(message: \"hi\") }"}'
CB_PLAIN='{"query":"mutation { chat(input: {provider: \"bench\", model: \"bench-model\", message: \"hi\"}) { content } }"}'
CB_STREAM='{"query":"subscription { chatStream(input: {provider: \"bench\", model: \"bench-model\", message: \"hi\"}) { delta done } }"}'

cat > "$out/prices.toml" <<TOML
[[price]]
provider = "bench"
model = "bench-model"
input = "4.00"
cached_input = "1.00"
output = "16.00"
currency = "CNY"
effective_from = "2020-01-01T00:00:00Z"
TOML
cat > "$out/cloudbase.toml" <<TOML
prices_file = "$out/prices.toml"
plugins_dir = "$out/plugins"
[plugins.bench]
plugin = "openai-compatible"
settings = { base_url = "http://127.0.0.1:$UP/v1", models = [{ id = "bench-model" }] }
retries = 0
[chat]
default_provider = "bench"
default_model = "bench-model"
# The gateway's own cost is measured, not the per-user limit (120 a minute by default).
[rate_limits]
requests_per_minute = 0
TOML

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
    kill "$floor_pid"; wait "$floor_pid" 2>/dev/null || true

    (cd "$out" && CLOUDBASE_LOG=info CLOUDBASE_LOG_FORMAT=json CLOUDBASE_CONFIG="$out/cloudbase.toml" CLOUDBASE_LISTEN="127.0.0.1:$CB" \
        DATABASE_URL="$cb_db" CLOUDBASE_DATA_DIR="$out/data-$backend" \
        CLOUDBASE_BOOTSTRAP_ADMIN_EMAIL=bench@example.com CLOUDBASE_BOOTSTRAP_ADMIN_PASSWORD=bench-password-1 \
        exec taskset -c 1 "$bin/cloudbase-ai" > "$out/cloudbase-$backend.log" 2>&1) & cb_pid=$!; pids+=($cb_pid)
    wait_ready "http://127.0.0.1:$CB/readyz"
    token=$(curl -s "http://127.0.0.1:$CB/graphql" -H 'content-type: application/json' \
        -d '{"query":"mutation { login(input: {email: \"bench@example.com\", password: \"bench-password-1\"}) { accessToken } }"}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["accessToken"])')
    sleep 1
    echo "{\"label\":\"cloudbase-$backend-rss\",\"idle_rss_kb\":$(rss_kb "$cb_pid")}" | tee -a "$out/results.jsonl"
    for c in $LEVELS; do load "cloudbase-$backend" http "http://127.0.0.1:$CB/graphql" "$CB_PLAIN" "$token" "$c"; done
    for c in $LEVELS; do load "cloudbase-$backend-stream" ws "ws://127.0.0.1:$CB/graphql/ws" "$CB_STREAM" "$token" "$c"; done
    echo "{\"label\":\"cloudbase-$backend-rss\",\"peak_rss_kb\":$(hwm_kb "$cb_pid")}" | tee -a "$out/results.jsonl"
    kill "$cb_pid"; wait "$cb_pid" 2>/dev/null || true
done
echo "results: $out/results.jsonl"
