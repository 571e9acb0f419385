#!/usr/bin/env bash
# npm-cache.sh installs the npm packages pinned by DIR/package.json and
# DIR/package-lock.json (`npm ci`, no install scripts) into a cache
# directory outside the repository keyed by the two files' hash, and prints
# that directory (it holds node_modules/). A warm machine fetches nothing.
#
#   hack/npm-cache.sh DIR
#
# KUBEGATE_CACHE overrides the cache root (default ${XDG_CACHE_HOME:-~/.cache}/kubegate).
set -euo pipefail

dir=$(cd "$1" && pwd)
cache=${KUBEGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubegate}
key=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -c1-16)
name=$(basename "$(dirname "$dir")")-$(basename "$dir")
out="$cache/npm/$name-$key"
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi
command -v npm >/dev/null || { echo "npm-cache: npm is not installed (make deps installs it)" >&2; exit 1; }
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$dir/package.json" "$dir/package-lock.json" "$out.tmp/"
(cd "$out.tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
rm -rf "$out"
mv "$out.tmp" "$out"
touch "$out/.complete"
echo "$out"
