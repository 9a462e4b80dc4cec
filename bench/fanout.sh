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
# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
SOCKETS="${SOCKETS:-500}"; PER_SOCKET="${PER_SOCKET:-10}"; CALLS="${CALLS:-20}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
out="$repo/bench/out/fanout"
UP=18911; CB=18913
prepare "$out" "$UP"
for backend in sqlite postgres; do
    if [ "$backend" = sqlite ]; then
        db="sqlite://$out/cloudbase.db"
    else
        psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS bench_fanout WITH (FORCE)" -c "CREATE DATABASE bench_fanout"
        db="$PG/bench_fanout"
    fi
    start_cloudbase "$out" "$backend" "$db" "$CB"; cb=$cb_pid
    token=$(login_token "$CB")
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
