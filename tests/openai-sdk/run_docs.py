"""Runs the examples of a doc against a running server.

Usage: .venv/bin/python run_docs.py DOC BASE KEY
  e.g. .venv/bin/python run_docs.py ../../docs/openai-compatible.md http://127.0.0.1:PORT cb-...

Every fenced block right after a marker line `<!-- run: python -->`, `<!-- run: node -->` or
`<!-- run: sh -->` is run with `http://127.0.0.1:8080` replaced by BASE and env CB_API_KEY=KEY:
python with this interpreter (the venv's, which has openai and langchain-openai), node from
this folder (so `openai` resolves from its node_modules), sh with `bash -e`. A block passes when
it exits 0 within 60 s and its stdout contains `Mock reply`. Prints `ok - block N (lang)` /
`not ok - block N (lang): line L: reason` (and the output's tail) per block, and finally `N passed, M failed`; exits 1 on any failure. The doc must
have at least one block of each kind.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / ".docs-run"  # git-ignored; inside HERE so `import 'openai'` resolves
DOC_BASE = "http://127.0.0.1:8080"
MARKER = re.compile(r"^<!--\s*run:\s*(python|node|sh)\s*-->\s*$")
FENCE = re.compile(r"^(`{3,}|~{3,})")
SUFFIX = {"python": "py", "node": "mjs", "sh": "sh"}
TIMEOUT_SECS = 60


def blocks(text):
    """Yields (lang, code, line number of the marker); a marker without a block yields code None."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i].strip())
        i += 1
        if not marker:
            continue
        start = i
        while i < len(lines) and not lines[i].strip():
            i += 1
        fence = FENCE.match(lines[i].strip()) if i < len(lines) else None
        if not fence:
            yield marker.group(1), None, start
            continue
        body, i = [], i + 1
        while i < len(lines) and lines[i].strip() != fence.group(1):
            body.append(lines[i])
            i += 1
        i += 1
        yield marker.group(1), "\n".join(body) + "\n", start


def command(lang, path):
    return {"python": [sys.executable, str(path)], "node": ["node", str(path)], "sh": ["bash", "-e", str(path)]}[lang]


def run_block(lang, code, n, tmp, env):
    """Runs one block; returns None when it passed, else the reason."""
    if code is None:
        return "the marker is not followed by a fenced block"
    folder = NODE_DIR if lang == "node" else tmp
    path = folder / f"block-{n}.{SUFFIX[lang]}"
    path.write_text(code)
    try:
        done = subprocess.run(command(lang, path), cwd=HERE, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECS)
    except subprocess.TimeoutExpired:
        return f"timed out after {TIMEOUT_SECS} s"
    if done.returncode != 0:
        return f"exit {done.returncode}\n{done.stderr}{done.stdout}"
    if "Mock reply" not in done.stdout:
        return f"no 'Mock reply' in its output\n{done.stdout}"
    return None


def report(name, reason=None):
    """Prints a check's line (and the tail of a failure's output as `#` lines); returns whether it passed."""
    if reason is None:
        print(f"ok - {name}", flush=True)
        return True
    first, _, rest = reason.partition("\n")
    print(f"not ok - {name}: {first}", flush=True)
    for line in rest.strip().splitlines()[-20:]:
        print(f"#   {line}", flush=True)
    return False


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: python run_docs.py DOC BASE KEY   (BASE like http://127.0.0.1:PORT)")
    doc, base, key = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
    env = {**os.environ, "CB_API_KEY": key}
    found = list(blocks(Path(doc).read_text()))
    results = []
    NODE_DIR.mkdir(exist_ok=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n, (lang, code, line) in enumerate(found, 1):
                code = code and code.replace(DOC_BASE, base)
                reason = run_block(lang, code, n, Path(tmp), env)
                results.append(report(f"block {n} ({lang})", reason and f"line {line}: {reason}"))
    finally:
        shutil.rmtree(NODE_DIR, ignore_errors=True)
    for kind in SUFFIX:
        if not any(lang == kind for lang, _, _ in found):
            results.append(report(f"the doc has a {kind} block", "none found"))
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
