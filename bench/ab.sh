#!/usr/bin/env bash
# Compares two CloudBase server binaries side by side, interleaved, beside the floor: the way to
# measure one change on the call path when this machine's speed drifts between runs (it does, by
# up to 70%, see RESULTS.md). Same harness as run.sh (driver on core 0, servers and upstream on
# core 1, loopback only, every run bounded in time and requests).
#
#   bash bench/ab.sh /path/to/old/cloudbase-ai            # ROUNDS=2, LEVELS="1 32"
#   ROUNDS=3 BACKENDS=sqlite bash bench/ab.sh OLD
#   ORDER="new old" bash bench/ab.sh OLD                  # this tree's build first in each round
#   OLD_WITHOUT_MASTER_KEY=1 bash bench/ab.sh OLD         # OLD predates `CLOUDBASE_MASTER_KEY`
#   LIMITS=1 bash bench/ab.sh OLD                         # with rate limits and a budget in force
#   LIMITS=2 bash bench/ab.sh OLD                         # ... and the caller's own budget too
#
# A `libcloudbase_plugin_openai_compatible.so` beside OLD is the plugin OLD runs with (copy it
# there with the binary); without one, both builds run this tree's plugin.
#
# For each round, backend and concurrency: the floor, then OLD, then this tree's release build (or
# the other way round, ORDER), over GraphQL `chat` and over `/v1` (the REST floor beside it), and
# the server's CPU per call at c=1 (`perf stat`, when perf is installed). Both builds get the
# bench's master key, as run.sh's does. Results: one JSON line per run in bench/out/ab.jsonl.
set -euo pipefail
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
old="$(realpath "$1")"
ROUNDS="${ROUNDS:-2}"
LEVELS="${LEVELS:-1 32}"
BACKENDS="${BACKENDS:-sqlite postgres}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-5}"
MAX=200000
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
out="$repo/bench/out/ab"
UP=18921; FLOOR=18922; CB=18923
prepare "$out" "$UP"
results="$repo/bench/out/ab.jsonl"
# OLD's own `openai-compatible` plugin, when one sits beside it: the plugin SDK's code (building
# requests, reading answers) runs in the plugin, so a change there is measured only if each build
# loads its own. Without one, both builds load this tree's.
old_plugins=""
if [ -f "$(dirname "$old")/libcloudbase_plugin_openai_compatible.so" ]; then
    old_plugins="$out/plugins-old"
    rm -rf "$old_plugins" && mkdir -p "$old_plugins"
    cp "$(dirname "$old")/libcloudbase_plugin_openai_compatible.so" "$old_plugins/"
fi

# measure LABEL MODE URL BODY TOKEN C PID: one bounded run; at c=1 also the CPU PID used per request.
measure() {
    taskset -c 0 "$bin/load" "$2" "$3" "$4" "$5" "$6" 1 200 > /dev/null
    local line cpu=null stat="$out/stat.txt"
    if [ "$6" = 1 ] && command -v perf > /dev/null; then
        perf stat -x, -e task-clock -p "$7" -o "$stat" -- sleep "$SECONDS_PER_RUN" & local perf_pid=$!
    fi
    line=$(taskset -c 0 "$bin/load" "$2" "$3" "$4" "$5" "$6" "$SECONDS_PER_RUN" "$MAX")
    if [ -n "${perf_pid:-}" ]; then
        wait "$perf_pid" || true
        local ms requests
        ms=$(awk -F, '/task-clock/ {print $1}' "$stat")
        requests=$(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
        cpu=$(python3 -c "print(round($ms / $requests, 4))")
    fi
    echo "{\"label\":\"$1${LIMITS:+-limits${LIMITS#1}}\",\"round\":$round,\"cpu_ms_per_request_c1\":$cpu,${line#\{}" | tee -a "$results"
}

CB_PLAIN='{"query":"mutation { chat(input: {provider: \"bench\", model: \"bench-model\", message: \"hi\"}) { content } }"}'
FLOOR_PLAIN='{"query":"mutation { chat(message: \"hi\") }"}'
V1_PLAIN='{"model":"bench/bench-model","messages":[{"role":"user","content":"hi"}]}'
REST_PLAIN='{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'

for round in $(seq 1 "$ROUNDS"); do
    for backend in $BACKENDS; do
        db=$(fresh_db "$backend" ab_floor)
        taskset -c 1 "$bin/floor" "127.0.0.1:$FLOOR" "http://127.0.0.1:$UP/v1" "$db" & floor_pid=$!; pids+=($floor_pid)
        wait_ready "http://127.0.0.1:$FLOOR/graphql"
        for c in $LEVELS; do
            measure "floor-$backend" http "http://127.0.0.1:$FLOOR/graphql" "$FLOOR_PLAIN" - "$c" "$floor_pid"
            measure "floor-$backend-rest" http "http://127.0.0.1:$FLOOR/v1/chat/completions" "$REST_PLAIN" - "$c" "$floor_pid"
        done
        kill "$floor_pid"; wait "$floor_pid" 2>/dev/null || true
        for which in ${ORDER:-old new}; do
            server="$bin/cloudbase-ai"; [ "$which" = old ] && server="$old"
            rm -rf "$out/data-$which-$backend"
            if [ "$which" = old ] && [ -n "$old_plugins" ]; then
                export CLOUDBASE_PLUGINS_DIR="$old_plugins"
            else
                unset CLOUDBASE_PLUGINS_DIR
            fi
            start_cloudbase "$out" "$which-$backend" "$(fresh_db "$backend" "ab_$which")" "$CB" "$server"
            token=$(login_token "$CB"); key=$(api_key "$CB" "$token"); limits_budget "$CB" "$token"
            for c in $LEVELS; do
                measure "$which-$backend" http "http://127.0.0.1:$CB/graphql" "$CB_PLAIN" "$token" "$c" "$cb_pid"
                measure "$which-$backend-v1" http "http://127.0.0.1:$CB/v1/chat/completions" "$V1_PLAIN" "$key" "$c" "$cb_pid"
            done
            kill "$cb_pid"; wait "$cb_pid" 2>/dev/null || true
        done
    done
done
echo "results: $results"
