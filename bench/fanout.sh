#!/usr/bin/env bash
# Live fan-out: 5,000 `aiCallUpdated` subscriptions of one user (500 sockets of 10), 20 calls;
# the server's RSS with the subscriptions idle, and how long each call's update takes to reach
# them all after the call's HTTP answer. Loopback only; SQLite and PostgreSQL. Results: one JSON
# line per backend in bench/out/fanout.jsonl (run after run.sh, which clears bench/out).
#
#   bash bench/fanout.sh                 # SOCKETS=500 PER_SOCKET=10 CALLS=20
set -euo pipefail
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
SOCKETS="${SOCKETS:-500}"; PER_SOCKET="${PER_SOCKET:-10}"; CALLS="${CALLS:-20}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
out="$repo/bench/out/fanout"
rm -rf "$out" && mkdir -p "$out/plugins"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "building release binaries"
cargo build --release --quiet -p cloudbase-server -p cloudbase-plugin-openai-compatible -p cloudbase-bench
bin="$repo/target/release"
cp "$bin/libcloudbase_plugin_openai_compatible.so" "$out/plugins/"
UP=18911; CB=18913
taskset -c 1 "$bin/mock_upstream" "127.0.0.1:$UP" & pids+=($!)
wait_ready() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "not ready: $1"; exit 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
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
[rate_limits]
requests_per_minute = 0
TOML
wait_ready "http://127.0.0.1:$UP/"
for backend in sqlite postgres; do
    if [ "$backend" = sqlite ]; then
        db="sqlite://$out/cloudbase.db"
    else
        psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS bench_fanout WITH (FORCE)" -c "CREATE DATABASE bench_fanout"
        db="$PG/bench_fanout"
    fi
    (cd "$out" && CLOUDBASE_LOG=info CLOUDBASE_LOG_FORMAT=json CLOUDBASE_CONFIG="$out/cloudbase.toml" CLOUDBASE_LISTEN="127.0.0.1:$CB" \
        DATABASE_URL="$db" CLOUDBASE_DATA_DIR="$out/data-$backend" \
        CLOUDBASE_BOOTSTRAP_ADMIN_EMAIL=bench@example.com CLOUDBASE_BOOTSTRAP_ADMIN_PASSWORD=bench-password-1 \
        exec taskset -c 1 "$bin/cloudbase-ai" > "$out/cloudbase-$backend.log" 2>&1) & cb=$!; pids+=($cb)
    wait_ready "http://127.0.0.1:$CB/readyz"
    token=$(curl -s "http://127.0.0.1:$CB/graphql" -H 'content-type: application/json' \
        -d '{"query":"mutation { login(input: {email: \"bench@example.com\", password: \"bench-password-1\"}) { accessToken } }"}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["accessToken"])')
    sleep 1
    before=$(rss_kb "$cb")
    taskset -c 0 "$bin/fanout" "ws://127.0.0.1:$CB/graphql/ws" "http://127.0.0.1:$CB/graphql" "$token" \
        "$SOCKETS" "$PER_SOCKET" "$CALLS" > "$out/fanout-$backend.txt" & driver=$!
    for _ in $(seq 1 600); do grep -q subscribed "$out/fanout-$backend.txt" 2>/dev/null && break; sleep 0.1; done
    with_subs=$(rss_kb "$cb")
    timeout 300 tail --pid=$driver -f /dev/null
    wait "$driver"
    delivered=$(grep delivered "$out/fanout-$backend.txt")
    subs=$((SOCKETS * PER_SOCKET))
    echo "{\"label\":\"fanout-$backend\",\"rss_before_kb\":$before,\"rss_with_subscriptions_kb\":$with_subs,\"kb_per_subscription\":$(python3 -c "print(round(($with_subs-$before)/$subs,2))"),${delivered#\{}" \
        | tee -a "$repo/bench/out/fanout.jsonl"
    kill "$cb"; wait "$cb" 2>/dev/null || true
done
