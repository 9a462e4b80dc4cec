#!/usr/bin/env bash
# Rebuilds the committed console bundle in console/dist/.
#   bash console/build.sh        (from any directory)
# Steps: install from the lockfile, type-check (tsc), check every GraphQL document against the
# server's schema, bundle with esbuild. Output (deterministic, no hashes in names):
#   dist/index.html
#   dist/assets/console.js
#   dist/assets/console.css
# Needs the server's SDL: `cloudbase-ai schema` output in $CONSOLE_SDL, or a built binary at
# target/debug/cloudbase-ai (see check-documents.mjs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

npm ci --no-audit --no-fund --loglevel=error

./node_modules/.bin/tsc --noEmit -p .
node ./check-documents.mjs

rm -rf dist
mkdir -p dist/assets

./node_modules/.bin/esbuild src/main.tsx \
  --bundle \
  --minify \
  --format=iife \
  --platform=browser \
  --target=es2020 \
  --jsx=automatic \
  --charset=utf8 \
  --legal-comments=eof \
  --define:process.env.NODE_ENV=\"production\" \
  --log-level=warning \
  --outfile=dist/assets/console.js

cp index.html dist/index.html

# Guard: nothing in the bundle may be fetched from another origin.
if grep -Eo 'url\((["'"'"']?)(https?:)?//' dist/assets/console.css >/dev/null; then
  echo "error: dist/assets/console.css references an external url()" >&2
  exit 1
fi

js=$(gzip -9 -c dist/assets/console.js | wc -c)
css=$(gzip -9 -c dist/assets/console.css | wc -c)
html=$(gzip -9 -c dist/index.html | wc -c)
total=$((js + css + html))
echo "first load, gzipped: js ${js} B, css ${css} B, html ${html} B, total ${total} B (budget 358400 B)"
if [ "$total" -gt 358400 ]; then
  echo "error: the console's first load is over its 350 KB gzipped budget" >&2
  exit 1
fi
