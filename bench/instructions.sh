#!/usr/bin/env bash
# Instructions per call: CloudBase (release) and the floor under `valgrind --tool=callgrind`, which
# counts the instructions a process runs rather than the time it takes. The count is the same
# from run to run whatever else the machine does, so two builds compare without the drift that
# moves `run.sh`'s req/s (bench/RESULTS.md). Each server gets a warm-up, then its counters are
# zeroed and exactly N calls are sent one at a time; the server's instructions over those calls
# (every thread, the background writers included) divided by N is the figure. Under valgrind a
# server runs some 50 times slower, so timers (the chainer's rounds, the checkpointer) fire more
# often per call than at full speed: compare builds with this script, not with `run.sh`.
#
#   bash bench/instructions.sh                              # sqlite, GraphQL `chat` and `/v1`
#   BACKEND=postgres N=500 bash bench/instructions.sh
#   BINARY=/tmp/old/cloudbase-ai bash bench/instructions.sh # another build of the server (with
#                                                           # the plugin beside it, if there is one)
#   FLOOR=1 bash bench/instructions.sh                      # the floor's two paths
#   C=32 N=960 bash bench/instructions.sh                   # calls 32 at a time: the batched
#                                                           # writes' share per call, as at load
#
# Prints one line per path (instructions per call) and the functions with the most inclusive
# instructions; the callgrind.out files stay in bench/out/instructions/ for `callgrind_annotate`.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
BACKEND="${BACKEND:-sqlite}"
N="${N:-300}"
WARM="${WARM:-50}"
C="${C:-1}"
TOP="${TOP:-30}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
out="$repo/bench/out/instructions${FLOOR:+-floor}"
UP=18941; CB=18943
command -v valgrind > /dev/null || { echo "valgrind is not installed"; exit 1; }
prepare "$out" "$UP"
# BINARY's own `openai-compatible` plugin, when one sits beside it (as in `ab.sh`).
if [ -n "${BINARY:-}" ] && [ -f "$(dirname "$BINARY")/libcloudbase_plugin_openai_compatible.so" ]; then
    cp "$(dirname "$BINARY")/libcloudbase_plugin_openai_compatible.so" "$out/plugins/"
fi
db=$(fresh_db "$BACKEND" cb_instructions)
cg="$out/callgrind.out"
# The server runs under callgrind through this wrapper (start_cloudbase takes one program).
wrapper="$out/under-callgrind"
target="${BINARY:-$bin/cloudbase-ai}"
if [ -n "${FLOOR:-}" ]; then target="$bin/floor"; fi
cat > "$wrapper" <<SH
#!/bin/sh
exec valgrind -q --tool=callgrind --callgrind-out-file="$cg" --dump-instr=no --compress-strings=no "$target" "\$@"
SH
chmod +x "$wrapper"
slow_ready() { for _ in $(seq 1 1200); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not ready: $1"; exit 1; }

if [ -n "${FLOOR:-}" ]; then
    taskset -c 1 "$wrapper" "127.0.0.1:$CB" "http://127.0.0.1:$UP/v1" "$db" & cb_pid=$!; pids+=($cb_pid)
    slow_ready "http://127.0.0.1:$CB/graphql"
    token=-; key=-
else
    # start_cloudbase's own wait is too short under valgrind: start it with a wait that succeeds
    # at once, then wait here.
    wait_ready() { :; }
    start_cloudbase "$out" instructions "$db" "$CB" "$wrapper"
    slow_ready "http://127.0.0.1:$CB/readyz"
    token=$(login_token "$CB"); key=$(api_key "$CB" "$token")
fi
# The process valgrind runs is cb_pid's child when a shell started it; callgrind_control finds
# it by the output file's pid either way.
sleep 1
vg_pid=$(pgrep -f "callgrind-out-file=$cg" | sort -n | tail -1)

run() { # run NAME URL BODY TOKEN
    # The warm-up runs at the measured concurrency, so that the pool has grown to what that
    # needs before the count starts (at C=32, opening a dozen connections counted in the window).
    taskset -c 0 "$bin/load" http "$2" "$3" "$4" "$C" 600 "$((WARM > 2 * C ? WARM : 2 * C))" > /dev/null
    callgrind_control -z "$vg_pid" > /dev/null
    local line
    line=$(taskset -c 0 "$bin/load" http "$2" "$3" "$4" "$C" 600 "$N")
    callgrind_control -d "$1" "$vg_pid" > /dev/null
    sleep 1
    local file
    file=$(ls -t "$cg".* | head -1)
    mv "$file" "$out/$1.callgrind"
    python3 - "$line" "$out/$1.callgrind" "$1" <<'PY'
import json, sys
line, path, name = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
total = None
for l in open(path):
    if l.startswith("summary:") or l.startswith("totals:"):
        total = int(l.split()[1])
n = line["requests"]
print(f"{name}: {n} calls, {line['errors']} failed; {total / n / 1e6:.3f} M instructions per call")
PY
    callgrind_annotate --inclusive=yes --threshold=100 "$out/$1.callgrind" 2> /dev/null \
        | grep -E '^ *[0-9,]+ ' | head -n "$TOP" | cut -c1-200 || true
}

run_call_paths "$CB"
