#!/bin/sh
# The shared library exports exactly the functions cfutures.h declares.
set -eu
lib="${top_builddir:-.}/lib/.libs/libcfutures.so"
hdr="${top_srcdir:-.}/include/cfutures.h"
[ -f "$lib" ] || { echo "SKIP: no shared library at $lib"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRtVW]$/ {print $3}' | sed 's/@.*//' |
  grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u > "$tmp/exported"
# Every declaration line "CF_API <type> name(" (the name may follow a '*').
grep -E '^CF_API ' "$hdr" | sed -E 's/^CF_API [^(]*[ *]([a-z_0-9]+)\(.*/\1/' |
  sort -u > "$tmp/declared"
if ! diff -u "$tmp/declared" "$tmp/exported"; then
  echo "FAIL: exported symbols differ from the header's declarations" >&2
  exit 1
fi
echo "exports: $(wc -l < "$tmp/exported") symbols, all declared in cfutures.h"
