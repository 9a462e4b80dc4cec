#!/usr/bin/env bash
# Rebuilds the committed playground bundle in playground/dist/.
#   bash playground/build.sh        (from any directory)
# Output (deterministic, no hashes in names):
#   dist/index.html
#   dist/assets/playground.js
#   dist/assets/playground.css
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

npm ci --no-audit --no-fund

rm -rf dist
mkdir -p dist/assets

# Fonts / images referenced from CSS are inlined as data: URLs so the page
# never loads anything from another origin and dist/ stays three files.
./node_modules/.bin/esbuild src/index.jsx \
  --bundle \
  --minify \
  --format=iife \
  --platform=browser \
  --target=es2020 \
  --jsx=automatic \
  --charset=utf8 \
  --legal-comments=eof \
  --define:process.env.NODE_ENV=\"production\" \
  --loader:.woff2=dataurl \
  --loader:.woff=dataurl \
  --loader:.ttf=dataurl \
  --loader:.eot=dataurl \
  --loader:.svg=dataurl \
  --loader:.png=dataurl \
  --loader:.gif=dataurl \
  --log-level=warning \
  --outfile=dist/assets/playground.js

cp index.html dist/index.html

# Guard: nothing in the built CSS may be fetched from another origin.
if grep -Eo 'url\((["'"'"']?)(https?:)?//' dist/assets/playground.css >/dev/null; then
  echo "error: dist/assets/playground.css references an external url()" >&2
  exit 1
fi

ls -l dist dist/assets
