#!/usr/bin/env bash
# The cost of one plugin call in the server's process against the same call through a runner
# process (`isolation = "process"`): the openai-compatible plugin's `chat.parse_stream_event` (once
# per streamed event) and `chat.build_request` (once per chat), one at a time and 8 at a time.
# The timing process on core 1, and the runner it starts with it (it inherits the affinity): each
# isolated call then pays two process switches, as on a server whose cores are busy. One line per
# (mode, method, concurrency), JSON, in bench/out/plugin-calls.jsonl.
#
#   bash bench/plugin-calls.sh             # 100,000 calls per row
#   CALLS=20000 bash bench/plugin-calls.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
CALLS="${CALLS:-100000}"
bin="$repo/target/release"
out="$repo/bench/out"
mkdir -p "$out"
echo "building release binaries"
cargo build --release --quiet -p cloudbase-server -p cloudbase-plugin-openai-compatible -p cloudbase-bench
taskset -c 1 "$bin/plugin_calls" "$bin/libcloudbase_plugin_openai_compatible.so" "$bin/cloudbase-ai" "$CALLS" \
    | tee "$out/plugin-calls.jsonl"
