#!/usr/bin/env bash
# Keeps part of what `make fuzz` found: for every fuzz target of this
# module, copies up to FUZZ_KEEP (default 16) inputs from Go's fuzz cache
# into the package's testdata/fuzz/FuzzXxx/, where `go test` replays them
# as seeds. It picks inputs of every size up to 16 KiB, evenly, and never
# overwrites or removes a file already there (crashers stay as they are).
set -euo pipefail
keep=${FUZZ_KEEP:-16}
cache=$(go env GOCACHE)/fuzz
mod=$(go list -m)
for pkg in $(go list -f '{{.Dir}}' ./... | grep -v -e /e2e$ -e /bench$); do
  rel=${pkg#"$PWD"}
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$pkg"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    src="$cache/$mod$rel/$target"
    [ -d "$src" ] || continue
    mapfile -t files < <(find "$src" -type f -size -16k -printf '%s %p\n' | sort -n | cut -d' ' -f2-)
    n=${#files[@]}
    [ "$n" -gt 0 ] || continue
    dst="$pkg/testdata/fuzz/$target"
    mkdir -p "$dst"
    step=$(( n > keep ? n / keep : 1 ))
    copied=0
    for ((i = 0; i < n && copied < keep; i += step)); do
      f=${files[$i]}
      [ -e "$dst/$(basename "$f")" ] || { cp "$f" "$dst/"; copied=$((copied + 1)); }
    done
    echo "${rel#/}: $target: kept $copied of $n"
  done
done
