#!/usr/bin/env bash
# Memory under sustained load, with nothing scraping `/metrics`: CloudBase (release) on core 1
# beside the mock upstream, the driver on core 0, `/v1` (or GraphQL `chat`) at C concurrent
# calls for SEGMENTS runs of SECONDS each, the server's RSS and allocated memory (`RssAnon`)
# after each. A server whose memory grows with the calls served (a leak, or samples kept for a
# scrape that never comes) shows it as a slope.
#
#   bash bench/soak.sh                                   # sqlite, /v1, c=32, 8 x 15 s
#   BACKEND=postgres PATHS=graphql SEGMENTS=4 bash bench/soak.sh
#   BINARY=/path/to/older/cloudbase-ai bash bench/soak.sh  # another build, for a comparison
#
# Prints one line per segment and the growth per 100,000 calls from the first segment's end to
# the last's; appends them to bench/out/soak.jsonl.
set -euo pipefail
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
BACKEND="${BACKEND:-sqlite}"
C="${C:-32}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-15}"
SEGMENTS="${SEGMENTS:-8}"
PATHS="${PATHS:-v1}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
out="$repo/bench/out/soak"
UP=18941; CB=18943
prepare "$out" "$UP"
db=$(fresh_db "$BACKEND" cb_soak)
label="${BINARY:-$bin/cloudbase-ai}"
start_cloudbase "$out" soak "$db" "$CB" "$label"
token=$(login_token "$CB"); key=$(api_key "$CB" "$token")
for path in $PATHS; do
    if [ "$path" = graphql ]; then
        url="http://127.0.0.1:$CB/graphql" auth="$token"
        body='{"query":"mutation { chat(input: {provider: \"bench\", model: \"bench-model\", message: \"hi\"}) { content } }"}'
    else
        url="http://127.0.0.1:$CB/v1/chat/completions" auth="$key"
        body='{"model":"bench/bench-model","messages":[{"role":"user","content":"hi"}]}'
    fi
    calls=0
    for s in $(seq 1 "$SEGMENTS"); do
        line=$(taskset -c 0 "$bin/load" http "$url" "$body" "$auth" "$C" "$SECONDS_PER_RUN" 10000000)
        sleep 1 # the calls' last writes and events settle
        n=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["requests"])' "$line")
        calls=$((calls + n))
        python3 - "$line" "$s" "$calls" "$(rss_kb "$cb_pid")" "$(anon_kb "$cb_pid")" \
            "$BACKEND" "$path" "$C" "$label" <<'PY' | tee -a "$repo/bench/out/soak.jsonl"
import json, sys
line = json.loads(sys.argv[1])
print(json.dumps({"backend": sys.argv[6], "path": sys.argv[7], "c": int(sys.argv[8]),
                  "binary": sys.argv[9], "segment": int(sys.argv[2]), "calls": int(sys.argv[3]),
                  "rps": round(line["rps"]), "errors": line["errors"],
                  "rss_mib": round(int(sys.argv[4]) / 1024, 1), "anon_mib": round(int(sys.argv[5]) / 1024, 1)}))
PY
    done
done
python3 - "$repo/bench/out/soak.jsonl" "$label" "$SEGMENTS" "$BACKEND" "$PATHS" <<'PY'
import json, sys
rows = [r for r in map(json.loads, open(sys.argv[1]))
        if (r["binary"], r["backend"]) == (sys.argv[2], sys.argv[4])]
for path in sys.argv[5].split():
    run = [r for r in rows if r["path"] == path][-int(sys.argv[3]):]
    first, last = run[0], run[-1]
    per = (last["anon_mib"] - first["anon_mib"]) * 100_000 / max(1, last["calls"] - first["calls"])
    print(f"{path}: {first['anon_mib']} -> {last['anon_mib']} MiB allocated over "
          f"{last['calls'] - first['calls']:,} calls: {per:+.2f} MiB per 100,000 calls")
PY
