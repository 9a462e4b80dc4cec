#!/usr/bin/env bash
# CPU per call at c=32 on PostgreSQL, of the CloudBase process and of PostgreSQL's own processes,
# for several builds interleaved: what a change on the call path saves the database (which, at
# c=32, spends more CPU a call than CloudBase does: bench/RESULTS.md, "2026-12-05, forenoon").
# Same harness as ab.sh (driver on core 0, server and upstream on core 1, loopback only, every run
# bounded in time and requests); PostgreSQL is the server at $BENCH_PG, and every `postgres`
# process on the machine is counted, so run nothing else against it meanwhile.
#
#   BUILDS="/tmp/old /tmp/new" bash bench/pg-cpu.sh      # each a folder with cloudbase-ai and
#                                                         # libcloudbase_plugin_openai_compatible.so
#   ROUNDS=3 BUILDS="/tmp/old /tmp/new" bash bench/pg-cpu.sh
#
# Prints, per round, build and door (`/v1`, GraphQL `chat`): req/s, failures, and the CPU time a
# call of PostgreSQL's processes and of CloudBase's (from /proc, user and system).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
: "${BUILDS:?BUILDS: the folders of the builds to compare}"
ROUNDS="${ROUNDS:-3}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-5}"
MAX=200000
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
out="$repo/bench/out/pg-cpu"
UP=18931; CB=18933
prepare "$out" "$UP"
hz=$(getconf CLK_TCK)
# Clock ticks (user and system) of every PostgreSQL process, and of one process.
pg_ticks() {
    local t=0 p
    for p in $(pgrep -x postgres); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2> /dev/null || echo 0)))
    done
    echo "$t"
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CB_PLAIN='{"query":"mutation { chat(input: {provider: \"bench\", model: \"bench-model\", message: \"hi\"}) { content } }"}'
V1_PLAIN='{"model":"bench/bench-model","messages":[{"role":"user","content":"hi"}]}'
for round in $(seq 1 "$ROUNDS"); do
    for build in $BUILDS; do
        name=$(basename "$build")
        export CLOUDBASE_PLUGINS_DIR="$out/plugins-$name"
        rm -rf "$CLOUDBASE_PLUGINS_DIR" "$out/data-$name-postgres" && mkdir -p "$CLOUDBASE_PLUGINS_DIR"
        cp "$build/libcloudbase_plugin_openai_compatible.so" "$CLOUDBASE_PLUGINS_DIR/"
        start_cloudbase "$out" "$name-postgres" "$(fresh_db postgres "pg_cpu_$name")" "$CB" "$build/cloudbase-ai"
        token=$(login_token "$CB"); key=$(api_key "$CB" "$token"); limits_budget "$CB" "$token"
        for door in v1 graphql; do
            if [ "$door" = v1 ]; then
                url="http://127.0.0.1:$CB/v1/chat/completions"; body="$V1_PLAIN"; auth="$key"
            else
                url="http://127.0.0.1:$CB/graphql"; body="$CB_PLAIN"; auth="$token"
            fi
            taskset -c 0 "$bin/load" http "$url" "$body" "$auth" 32 1 200 > /dev/null
            pg0=$(pg_ticks); cb0=$(ticks "$cb_pid")
            line=$(taskset -c 0 "$bin/load" http "$url" "$body" "$auth" 32 "$SECONDS_PER_RUN" "$MAX")
            pg1=$(pg_ticks); cb1=$(ticks "$cb_pid")
            echo "$line" | python3 -c "
import json, sys
d = json.load(sys.stdin)
n = max(d['requests'], 1)
print('round $round $name $door: %.0f req/s, %d failed; PostgreSQL %.3f ms a call, CloudBase %.3f ms a call'
      % (d['rps'], d['errors'], ($pg1 - $pg0) * 1000 / $hz / n, ($cb1 - $cb0) * 1000 / $hz / n))"
        done
        kill "$cb_pid"; wait "$cb_pid" 2> /dev/null || true
    done
done
