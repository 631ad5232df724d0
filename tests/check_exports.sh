#!/bin/sh
# The shared libraries export exactly the functions their headers declare:
# libcfutures.so those of cfutures.h, and libcfutures-mpi.so (when the MPI
# backend is built) those of cfutures.h and cfutures-mpi.h.
set -eu
dir="${top_builddir:-.}/lib/.libs"
inc="${top_srcdir:-.}/include"
[ -f "$dir/libcfutures.so" ] || { echo "SKIP: no shared library in $dir"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# check LIB HEADER...
check() {
  lib=$1
  shift
  nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRtVW]$/ {print $3}' | sed 's/@.*//' |
    grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u > "$tmp/exported"
  # Every declaration line "CF_API <type> name(" (the name may follow a '*').
  cat "$@" | grep -E '^CF_API ' | sed -E 's/^CF_API [^(]*[ *]([a-z_0-9]+)\(.*/\1/' |
    sort -u > "$tmp/declared"
  if ! diff -u "$tmp/declared" "$tmp/exported"; then
    echo "FAIL: $(basename "$lib") exports other symbols than its headers declare" >&2
    exit 1
  fi
  echo "exports: $(basename "$lib"): $(wc -l < "$tmp/exported") symbols, all declared in $(for h in "$@"; do basename "$h"; done | tr '\n' ' ')"
}
check "$dir/libcfutures.so" "$inc/cfutures.h"
if [ -f "$dir/libcfutures-mpi.so" ]; then
  check "$dir/libcfutures-mpi.so" "$inc/cfutures.h" "$inc/cfutures-mpi.h"
fi
