#!/usr/bin/env bash
# Slow and silent clients against the release server: /healthz latency with no slow client, then
# while 300 sockets stay silent, trickle their headers or trickle a body (bench/slow_clients.py),
# and how many of those sockets the server has closed by the end. Loopback only, bounded in time.
#
#   bash bench/slow-clients.sh        # results appended to bench/out/slow-clients.jsonl
set -euo pipefail
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
out="$repo/bench/out"
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
cargo build --release --quiet -p cloudbase-server -p cloudbase-bench
bin="$repo/target/release"
PORT=18911
rm -rf "$out/slow-data"
(cd "$out" && CLOUDBASE_LOG=warn CLOUDBASE_LISTEN="127.0.0.1:$PORT" CLOUDBASE_DATA_DIR="$out/slow-data" \
    CLOUDBASE_HTTP__HEADER_READ_TIMEOUT_SECS=10 CLOUDBASE_HTTP__BODY_READ_TIMEOUT_SECS=10 \
    exec taskset -c 1 "$bin/cloudbase-ai" > "$out/slow-clients-server.log" 2>&1) & pids+=($!)
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.05; done
health() {
    line=$(taskset -c 0 "$bin/load" get "http://127.0.0.1:$PORT/healthz" - - 8 3 100000)
    echo "{\"label\":\"$1\",${line#\{}" | tee -a "$out/slow-clients.jsonl"
}
health "healthz, no slow clients"
taskset -c 0 python3 bench/slow_clients.py 127.0.0.1 "$PORT" 300 15 > "$out/slow-clients-sockets.json" & slow=$!
sleep 2
health "healthz, 300 slow sockets open"
wait "$slow"
echo "{\"label\":\"slow sockets\",\"result\":$(cat "$out/slow-clients-sockets.json")}" | tee -a "$out/slow-clients.jsonl"
