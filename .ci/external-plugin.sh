#!/usr/bin/env bash
# Builds the example plugin of docs/plugins.md outside the workspace, drops it into a plugins
# folder, starts the real server on loopback, and checks that the plugin is listed and answers.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

extract() { # extract <file marker> <output>
    awk -v marker="<!-- file: $1 -->" '
        $0 == marker { inside = 1; next }
        inside && /^<!-- end -->/ { exit }
        inside && /^```/ { next }
        inside { print }
    ' "$repo/docs/plugins.md" > "$2"
    [ -s "$2" ] || { echo "docs/plugins.md has no block for $1"; exit 1; }
}

mkdir -p "$work/echo-provider/src" "$work/plugins" "$work/data"
extract "Cargo.toml" "$work/echo-provider/Cargo.toml"
extract "src/lib.rs" "$work/echo-provider/src/lib.rs"
sed -i "s#CLOUDBASE_REPO#$repo#" "$work/echo-provider/Cargo.toml"
printf '\n[workspace]\n' >> "$work/echo-provider/Cargo.toml"

echo "building the documented plugin outside the workspace"
CARGO_TARGET_DIR="$repo/target/external-plugin" cargo build --quiet --manifest-path "$work/echo-provider/Cargo.toml"
cp "$repo/target/external-plugin/debug/libecho_provider.so" "$work/plugins/"

cargo build --quiet -p cloudbase-server
# A free loopback port, asked of the kernel (a random one could be taken).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$work" && CLOUDBASE_LISTEN="127.0.0.1:$port" CLOUDBASE_PLUGINS_DIR="$work/plugins" \
    CLOUDBASE_BOOTSTRAP_ADMIN_EMAIL=admin@example.com CLOUDBASE_BOOTSTRAP_ADMIN_PASSWORD=change-me-please \
    "$repo/target/debug/cloudbase-ai" > "$work/server.log" 2>&1) &
server_pid=$!
url="http://127.0.0.1:$port"
fail() { # fail <what>: say what failed and show the server's log
    echo "external-plugin: $1" >&2
    echo "--- server log ---" >&2
    cat "$work/server.log" >&2 || true
    exit 1
}
# A debug build on a busy machine can take a while to migrate and hash the bootstrap password:
# wait up to 60 s, and stop at once if the server has exited.
ready=""
for _ in $(seq 1 600); do
    if curl -sf "$url/readyz" > /dev/null; then ready=1; break; fi
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited before it was ready"
    sleep 0.1
done
[ -n "$ready" ] || fail "the server was not ready within 60 s"

gql() { # gql <body> [token]: the response, or the server's log and exit 1
    curl -sS --fail-with-body --max-time 60 "$url/graphql" -H 'content-type: application/json' \
        ${2:+-H "authorization: Bearer $2"} -d "$1" || fail "POST /graphql failed: $1"
}
token=$(gql '{"query":"mutation { login(input: {email: \"admin@example.com\", password: \"change-me-please\"}) { accessToken } }"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["accessToken"])')
plugins=$(gql '{"query":"{ plugins { name instance status reason } }"}' "$token")
echo "$plugins"
echo "$plugins" | python3 -c '
import json, sys
rows = json.load(sys.stdin)["data"]["plugins"]
echo = [r for r in rows if r["name"] == "echo" and r["instance"] == "echo"]
assert echo and echo[0]["status"] == "LOADED", rows
'
answer=$(gql '{"query":"mutation { chat(input: {provider: \"echo\", model: \"echo-1\", message: \"stressed\"}) { content aiCall { status } } }"}' "$token")
echo "$answer"
echo "$answer" | python3 -c '
import json, sys
chat = json.load(sys.stdin)["data"]["chat"]
assert chat["content"] == "desserts" and chat["aiCall"]["status"] == "SUCCEEDED", chat
'
echo "external-plugin: 1 passed, 0 failed"
