#!/usr/bin/env bash
# Report timings at 100k and 1M call records, on SQLite and PostgreSQL (see bench/RESULTS.md).
#   bash bench/reports.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
out="$repo/bench/out"
mkdir -p "$out"
cargo build --release --quiet -p cloudbase-bench
rm -f "$out/reports.db"*
"$repo/target/release/reports" "sqlite://$out/reports.db" 100000 1000000 | tee "$out/reports.jsonl"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS bench_reports WITH (FORCE)" -c "CREATE DATABASE bench_reports"
"$repo/target/release/reports" "$PG/bench_reports" 100000 1000000 | tee -a "$out/reports.jsonl"
