#!/usr/bin/env bash
# Where a call's CPU goes: CloudBase (release) on core 1 beside the mock upstream, the load
# driver on core 0, as in run.sh; one bounded run per path while `perf stat` counts the CPU of the
# server, of the upstream and of core 1 as a whole, and `perf record` samples the server.
#
#   bash bench/profile.sh                       # sqlite, c=32, GraphQL `chat` and `/v1`
#   BACKEND=postgres C=1 bash bench/profile.sh
#   LIMITS=1 BACKEND=postgres bash bench/profile.sh   # with limits and a budget in force
#   FLOOR=1 bash bench/profile.sh               # the floor's GraphQL and REST paths instead
#   CALLGRAPH=1 BINARY=/path/to/cloudbase-ai bash bench/profile.sh
#                                               # call chains (frame pointers) of another build:
#     RUSTFLAGS="-C force-frame-pointers=yes" CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
#     CARGO_TARGET_DIR=/tmp/fp cargo build --release -p cloudbase-server
#   CALLGRAPH=1 CALLGRAPH_MODE=dwarf,16384 bash bench/profile.sh
#                                               # call chains of the usual build, unwound from
#                                               # copies of the stack (large files; shallow chains)
#
# Prints, per path: requests per second, the server's and the upstream's CPU per request, how
# busy core 1 was, the server's threads by name (CPU and context switches per request), and the
# server's hottest symbols (self time); perf.data files stay in
# bench/out/profile/ for `perf report -i`.
set -euo pipefail
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
BACKEND="${BACKEND:-sqlite}"
C="${C:-32}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-6}"
TOP="${TOP:-40}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
out="$repo/bench/out/profile"
UP=18931; CB=18933
prepare "$out" "$UP"
up_pid="${pids[-1]}"
db=$(fresh_db "$BACKEND" cb_profile)
if [ -n "${FLOOR:-}" ]; then # the floor instead, on the same paths
    taskset -c 1 "$bin/floor" "127.0.0.1:$CB" "http://127.0.0.1:$UP/v1" "$db" & cb_pid=$!; pids+=($cb_pid)
    wait_ready "http://127.0.0.1:$CB/graphql"
    token=-; key=-
else
    start_cloudbase "$out" profile "$db" "$CB" "${BINARY:-$bin/cloudbase-ai}"
    token=$(login_token "$CB"); key=$(api_key "$CB" "$token"); limits_budget "$CB" "$token"
fi

# threads PID: one line per thread: id, name, CPU ticks (user + system), voluntary and
# involuntary context switches.
threads() {
    local task
    for task in /proc/"$1"/task/*; do
        [ -r "$task/stat" ] || continue
        awk -v tid="${task##*/}" -v comm="$(cat "$task/comm" 2> /dev/null)" \
            'FNR == NR { sub(/^.*\) /, ""); ticks = $12 + $13; next }
             /^voluntary_ctxt_switches/ { vol = $2 } /^nonvoluntary_ctxt_switches/ { invol = $2 }
             END { printf "%s\t%s\t%d\t%d\t%d\n", tid, comm, ticks, vol, invol }' \
            "$task/stat" "$task/status" 2> /dev/null || true
    done
}

run() { # run NAME URL BODY TOKEN
    local name=$1 data="$out/$1.perf.data"
    taskset -c 0 "$bin/load" http "$2" "$3" "$4" "$C" 2 100000 > /dev/null # warm-up
    perf stat -x, -e task-clock -p "$cb_pid" -o "$out/$name.cb.txt" -- sleep "$SECONDS_PER_RUN" &
    local s1=$!
    perf stat -x, -e task-clock -p "$up_pid" -o "$out/$name.up.txt" -- sleep "$SECONDS_PER_RUN" &
    local s2=$!
    local idle0; idle0=$(awk '$1 == "cpu1" {print $5}' /proc/stat)
    perf record -q -F 1999 ${CALLGRAPH:+--call-graph ${CALLGRAPH_MODE:-fp}} -p "$cb_pid" -o "$data" -- sleep "$SECONDS_PER_RUN" 2> /dev/null &
    local s4=$!
    local line
    threads "$cb_pid" > "$out/$name.threads0"
    line=$(taskset -c 0 "$bin/load" http "$2" "$3" "$4" "$C" "$SECONDS_PER_RUN" 1000000)
    threads "$cb_pid" > "$out/$name.threads1"
    local idle1; idle1=$(awk '$1 == "cpu1" {print $5}' /proc/stat)
    wait $s1 $s2 $s4 || true
    python3 - "$line" "$out/$name" "$SECONDS_PER_RUN" "$name" "$((idle1 - idle0))" <<'PY'
import json, os, sys
from collections import defaultdict
line, base, secs, name = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
idle = int(sys.argv[5]) / os.sysconf("SC_CLK_TCK")
def snapshot(path):
    rows = {}
    for l in open(path):
        tid, comm, ticks, vol, invol = l.rstrip("\n").split("\t")
        rows[tid] = (comm, int(ticks), int(vol), int(invol))
    return rows
before, after = snapshot(base + ".threads0"), snapshot(base + ".threads1")
by_name = defaultdict(lambda: [0, 0, 0, 0])
for tid, (comm, ticks, vol, invol) in after.items():
    _, t0, v0, i0 = before.get(tid, (comm, 0, 0, 0))
    row = by_name[comm]
    row[0] += 1; row[1] += ticks - t0; row[2] += vol - v0; row[3] += invol - i0
def ms(path):
    for l in open(path):
        if "task-clock" in l:
            return float(l.split(",")[0])
    return float("nan")
n = line["requests"]
cb, up = ms(base + ".cb.txt"), ms(base + ".up.txt")
print(f"{name}: {line['rps']:,.0f} req/s, p99 {line['p99_ms']} ms, errors {line['errors']}; "
      f"CPU per request: server {cb / n:.3f} ms, upstream {up / n:.3f} ms; core 1 idle {100 * idle / line['seconds']:.0f}%")
tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
print("  the server's threads, by name: threads, CPU ms per request, voluntary and involuntary switches per request")
for comm, (count, ticks, vol, invol) in sorted(by_name.items(), key=lambda kv: -kv[1][1] - kv[1][2]):
    if ticks or vol or invol:
        print(f"    {comm:<18} {count:>3}  {ticks * tick_ms / n:.3f} ms  {vol / n:.2f}  {invol / n:.2f}")
PY
    perf report -i "$data" --no-children ${CALLGRAPH:+-g none} --sort symbol --stdio 2> /dev/null \
        | grep -v '^#' | grep -v '^$' | sed 's/ *- *- *$//' | head -n "$TOP" || true
}

run_call_paths "$CB"
