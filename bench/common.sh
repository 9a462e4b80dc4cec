# Shared by run.sh, fanout.sh and at-scale.sh (sourced after `cd "$repo"`): the release build,
# the mock upstream, readiness, memory, CloudBase's config for the `bench` provider, starting
# CloudBase on core 1, and the bench admin's token. Every process started is killed on exit.

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
bin="$repo/target/release"

# prepare OUT UPSTREAM_PORT: builds the release binaries, empties OUT (with the plugin in
# OUT/plugins and the config written), and starts the mock upstream on core 1.
prepare() {
    echo "building release binaries"
    cargo build --release --quiet -p cloudbase-server -p cloudbase-plugin-openai-compatible -p cloudbase-bench
    rm -rf "$1" && mkdir -p "$1/plugins"
    cp "$bin/libcloudbase_plugin_openai_compatible.so" "$1/plugins/"
    write_config "$1" "$2"
    taskset -c 1 "$bin/mock_upstream" "127.0.0.1:$2" & pids+=($!)
    wait_ready "http://127.0.0.1:$2/"
}

wait_ready() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "not ready: $1"; exit 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# Of the RSS, the memory the process allocated (the rest is mostly its executable's pages mapped
# from the page cache, which vary with how the linker laid the code out: RESULTS.md).
anon_kb() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# write_config DIR UPSTREAM_PORT: DIR/prices.toml and DIR/cloudbase.toml (the `openai-compatible`
# plugin as `bench` on the mock upstream, a price in force, the per-user request limit off so
# that the gateway's own cost is measured, and records kept however old the seeded ones are).
# With LIMITS=1, calls are shaped as in production instead: per-user request and token limits in
# force, far above what a run spends, so every check runs and none refuses (and, with
# `limits_budget`, a budget that every call reserves against and settles).
write_config() {
    local rpm=0 tpm=0
    if [ -n "${LIMITS:-}" ]; then rpm=1000000000; tpm=1000000000000; fi
    cat > "$1/prices.toml" <<TOML
[[price]]
provider = "bench"
model = "bench-model"
input = "4.00"
cached_input = "1.00"
output = "16.00"
currency = "CNY"
effective_from = "2020-01-01T00:00:00Z"
TOML
    cat > "$1/cloudbase.toml" <<TOML
prices_file = "$1/prices.toml"
plugins_dir = "$1/plugins"
[plugins.bench]
plugin = "openai-compatible"
settings = { base_url = "http://127.0.0.1:$2/v1", models = [{ id = "bench-model" }] }
retries = 0
[chat]
default_provider = "bench"
default_model = "bench-model"
[rate_limits]
requests_per_minute = $rpm
tokens_per_minute = $tpm
[retention]
ai_calls_days = 3650
TOML
}

# The master key every benchmarked instance shares (instances on one database must; not a
# secret: benchmark data only).
BENCH_MASTER_KEY="YmVuY2gtbWFzdGVyLWtleS1ub3Qtc2VjcmV0LTAwMDA="

# start_cloudbase DIR LABEL DATABASE_URL PORT [BINARY]: the release server (or BINARY) on core 1,
# JSON logs at `info` in DIR/cloudbase-LABEL.log, with the bench's master key; sets cb_pid and
# waits until it is ready.
start_cloudbase() {
    local key="$BENCH_MASTER_KEY"
    # A binary from before master keys (an old `ab.sh` baseline) refuses the setting.
    if [ -n "${OLD_WITHOUT_MASTER_KEY:-}" ] && [ "${5:-$bin/cloudbase-ai}" != "$bin/cloudbase-ai" ]; then key=""; fi
    (cd "$1" && if [ -n "$key" ]; then export CLOUDBASE_MASTER_KEY="$key"; fi && CLOUDBASE_LOG=info CLOUDBASE_LOG_FORMAT=json CLOUDBASE_CONFIG="$1/cloudbase.toml" \
        CLOUDBASE_LISTEN="127.0.0.1:$4" DATABASE_URL="$3" CLOUDBASE_DATA_DIR="$1/data-$2" \
        CLOUDBASE_BOOTSTRAP_ADMIN_EMAIL=bench@example.com CLOUDBASE_BOOTSTRAP_ADMIN_PASSWORD=bench-password-1 \
        exec taskset -c 1 "${5:-$bin/cloudbase-ai}" > "$1/cloudbase-$2.log" 2>&1) & cb_pid=$!
    pids+=("$cb_pid")
    wait_ready "http://127.0.0.1:$4/readyz"
}

# fresh_db BACKEND NAME: the URL of a new, empty database NAME (SQLite: a file in $out;
# PostgreSQL: on the server $PG), dropping any left by an earlier run.
fresh_db() {
    if [ "$1" = sqlite ]; then
        rm -f "$out/$2.db"*; echo "sqlite://$out/$2.db"
    else
        psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $2 WITH (FORCE)" -c "CREATE DATABASE $2" > /dev/null
        echo "$PG/$2"
    fi
}

# login_token PORT: the bench admin's access token.
login_token() {
    curl -s "http://127.0.0.1:$1/graphql" -H 'content-type: application/json' \
        -d '{"query":"mutation { login(input: {email: \"bench@example.com\", password: \"bench-password-1\"}) { accessToken } }"}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["accessToken"])'
}

# api_key PORT TOKEN: a new CHAT-scoped API key (`cb-…`) of the bench admin, for `/v1`.
api_key() {
    curl -s "http://127.0.0.1:$1/graphql" -H 'content-type: application/json' -H "authorization: Bearer $2" \
        -d '{"query":"mutation { createApiKey(input: {name: \"bench\"}) { secret } }"}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["createApiKey"]["secret"])'
}

# limits_budget PORT TOKEN: with LIMITS=1, a monthly budget on everyone's calls far above what a
# run spends (every call then reserves and settles); with LIMITS=2, also one of the bench admin's
# own (every call then reserves and settles in two budgets); nothing otherwise.
limits_budget() {
    [ -n "${LIMITS:-}" ] || return 0
    local owners=null
    if [ "$LIMITS" = 2 ]; then
        owners="null \\\"$(curl -s "http://127.0.0.1:$1/graphql" -H 'content-type: application/json' \
            -H "authorization: Bearer $2" -d '{"query":"{ me { id } }"}' \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["me"]["id"])')\\\""
    fi
    for owner in $owners; do
        curl -s "http://127.0.0.1:$1/graphql" -H 'content-type: application/json' -H "authorization: Bearer $2" \
            -d "{\"query\":\"mutation { createBudget(input: {userId: $owner, period: MONTH, currency: \\\"CNY\\\", limitMicros: \\\"1000000000000000\\\"}) { id } }\"}" \
            | python3 -c 'import json,sys; assert json.load(sys.stdin)["data"]["createBudget"]["id"]'
    done
}

# run_call_paths PORT: calls the caller's `run NAME URL BODY TOKEN` for each path of a call: with
# FLOOR=1 the floor's GraphQL `chat` and REST `/v1`, otherwise CloudBase's GraphQL `chat` (as
# $token) and `/v1` (as $key).
run_call_paths() {
    if [ -n "${FLOOR:-}" ]; then
        run floor "http://127.0.0.1:$1/graphql" '{"query":"mutation { chat(message: \"hi\") }"}' -
        run floor-rest "http://127.0.0.1:$1/v1/chat/completions" '{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}' -
    else
        run graphql "http://127.0.0.1:$1/graphql" \
            '{"query":"mutation { chat(input: {provider: \"bench\", model: \"bench-model\", message: \"hi\"}) { content } }"}' "$token"
        run v1 "http://127.0.0.1:$1/v1/chat/completions" \
            '{"model":"bench/bench-model","messages":[{"role":"user","content":"hi"}]}' "$key"
    fi
}
