#!/usr/bin/env bash
# build-tools.sh builds the pinned upstream binaries the test cluster needs
# (kube-apiserver, etcd, dex, versitygw) from the tools modules under tools/,
# into a cache directory outside the repository keyed by each module's
# go.mod/go.sum hash. A warm machine rebuilds nothing. It prints the directory
# holding the binaries as its last line on stdout for each module named
# (default: all).
#
#   hack/build-tools.sh [--cached] [cluster|dex|versitygw]...
#
# With --cached it builds nothing: a module not in the cache yet fails with
# exit status 3 (tests use this to skip rather than start a cold build).
#
# KUBEGATE_CACHE overrides the cache root (default ${XDG_CACHE_HOME:-~/.cache}/kubegate).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${KUBEGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubegate}
cached_only=
if [ "${1:-}" = --cached ]; then
  cached_only=1
  shift
fi
mods=("$@")
[ ${#mods[@]} -gt 0 ] || mods=(cluster dex versitygw)

k8s_version=v1.37.2

log() { printf '[build-tools] %s\n' "$*" >&2; }

build_one() {
  local name=$1 dir="$root/tools/$1"
  [ -f "$dir/go.mod" ] || { log "unknown tools module: $name"; return 2; }
  local key
  key=$( (cat "$dir/go.mod" "$dir/go.sum"; go env GOVERSION) | sha256sum | cut -c1-16)
  local out="$cache/tools/$name-$key"
  if [ -f "$out/.complete" ]; then
    log "$name: cached in $out"
    echo "$out"
    return 0
  fi
  if [ -n "$cached_only" ]; then
    log "$name: not built yet (run: hack/build-tools.sh $name)"
    return 3
  fi
  log "$name: cold build into $out (this takes minutes on 2 cores; later runs reuse it)"
  mkdir -p "$out.tmp"
  local ldflags="-s -w"
  if [ "$name" = cluster ]; then
    ldflags="$ldflags -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
  fi
  local cgo=0
  [ "$name" = dex ] && cgo=1   # dex links sqlite through cgo
  local start=$SECONDS
  (
    cd "$dir"
    # Progress: a line every 30 s while the compiler works.
    ( while sleep 30; do log "$name: still building ($((SECONDS - start)) s)"; done ) &
    ticker=$!
    trap 'kill $ticker 2>/dev/null' EXIT
    CGO_ENABLED=$cgo GOFLAGS="-buildvcs=false -trimpath" go build -ldflags "$ldflags" -o "$out.tmp/" tool
  )
  if [ "$name" = cluster ] && [ -f "$out.tmp/server" ]; then
    mv "$out.tmp/server" "$out.tmp/etcd"
  fi
  touch "$out.tmp/.complete"
  rm -rf "$out"
  mv "$out.tmp" "$out"
  log "$name: built in $((SECONDS - start)) s"
  echo "$out"
}

for m in "${mods[@]}"; do build_one "$m"; done
