#!/usr/bin/env python3
"""Renders bench/run.sh's results (bench/out/results.jsonl, or the file named) as RESULTS.md's
table: one row per run, the RSS lines and the PostgreSQL batch counters after it."""
import json
import sys

NAMES = {
    "upstream": "mock upstream, direct",
    "floor-{b}": "floor, {B}",
    "floor-{b}-stream": "floor, {B}, streamed",
    "floor-{b}-rest": "floor, {B}, REST `/v1`",
    "floor-{b}-rest-sse": "floor, {B}, REST `/v1` SSE",
    "cloudbase-{b}": "**CloudBase, {B}**",
    "cloudbase-{b}-stream": "**CloudBase, {B}, streamed**",
    "cloudbase-{b}-v1": "**CloudBase, {B}, `/v1`**",
    "cloudbase-{b}-v1-sse": "**CloudBase, {B}, `/v1` SSE**",
}
BACKENDS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def name(label):
    for pattern, shown in NAMES.items():
        for b, B in BACKENDS.items():
            if pattern.format(b=b) == label:
                return shown.format(B=B)
    return label


def number(x, digits=2):
    return "" if x is None else f"{x:,.{digits}f}"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "bench/out/results.jsonl"
    rows, notes = [], []
    for line in open(path):
        r = json.loads(line)
        if "rps" not in r:
            notes.append(r)
            continue
        codes = r.get("errors_by_code") or {}
        refused = ", ".join(f"{k}: {v:,}" for k, v in sorted(codes.items())) or "0"
        if r.get("errors") and not codes:
            refused = f"{r['errors']:,}"
        rows.append(
            "| {} | {} | {:,.0f} | {} | {} | {} | {} | {} | {} |".format(
                name(r["label"]),
                r["concurrency"],
                r["rps"],
                number(r["p50_ms"]),
                number(r["p99_ms"]),
                number(r.get("ttft_p50_ms")),
                number(r.get("ttft_p99_ms")),
                refused,
                number(r.get("error_p99_ms")) if codes or r.get("errors") else "",
            )
        )
    print("| setup | c | req/s | p50 ms | p99 ms | TTFT p50 ms | TTFT p99 ms | refused or failed (by code) | their p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    print("\n".join(rows))
    for n in notes:
        print()
        print(json.dumps(n))


if __name__ == "__main__":
    main()
