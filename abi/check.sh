#!/bin/sh
# The ABI check: compares the shared library of a build with the baseline
# committed in abi/libcfutures.abi (abigail-tools: abidw, abidiff).  Builds
# nothing: run it after the build (make abi-check does both).
#
#   abi/check.sh BUILDDIR             check BUILDDIR/lib/.libs/libcfutures.so
#   abi/check.sh --baseline BUILDDIR  write abi/libcfutures.abi from it
#
# The check fails on an incompatible change to what include/cfutures.h
# exports: a function removed, a parameter or return type changed, a public
# struct's layout changed (a field inserted, removed or retyped, its size
# changed), an enumerator's value changed.  Additions (a new function) pass
# and are printed.  A change that keeps old programs working by design
# (e.g. a field appended to a struct whose users pass its size) can be
# accepted with a rule in abi/libcfutures.suppr.  When the SONAME differs
# from the baseline's, every change passes (the new SONAME says that old
# programs cannot use this library), and the check asks for the baseline
# to be refreshed.
#
# When to refresh the baseline (make abi-baseline, then commit
# abi/libcfutures.abi): together with a SONAME bump (CF_LT_VERSION in
# configure.ac: current+1, revision=0, age=0), or, before 1.0 only, when an
# incompatible change is deliberate and NEWS says so.  From 1.0 on,
# --baseline refuses to record an incompatible change under the same
# SONAME (CF_ABI_FORCE=1 overrides).  Added functions need no refresh (the
# check passes), though refreshing makes them part of what is checked.
# abi/README.md says more.
#
# The library must have DWARF debug information (the default CFLAGS, -g
# -O2, give it): without it abidw sees the symbols but no types.
set -eu

mode=check
if [ "${1:-}" = --baseline ]; then
  mode=baseline
  shift
fi
if [ $# -ne 1 ]; then
  echo "usage: $0 [--baseline] BUILDDIR" >&2
  exit 2
fi
builddir=$1
here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/.." && pwd)
baseline=$here/libcfutures.abi
suppr=$here/libcfutures.suppr
lib=$builddir/lib/.libs/libcfutures.so
me=abi-check
[ $mode = check ] || me=abi-baseline

fail() {
  echo "$me: FAIL: $*" >&2
  exit 1
}

for t in abidw abidiff readelf; do
  command -v $t >/dev/null 2>&1 ||
    fail "$t not found (Debian: apt-get install abigail-tools binutils)"
done
[ -f "$lib" ] ||
  fail "no shared library at $lib (build it first; not with --disable-shared)"

# Type information comes from DWARF: a library built without -g has only
# symbols, and abidiff would compare nothing but names.
if ! LC_ALL=C readelf -S -W "$lib" | grep -q ' \.debug_info '; then
  fail "$lib has no debug information (.debug_info), so abidw cannot
see its types.  Configure with -g in CFLAGS (the default is -g -O2;
CFLAGS=-O2 drops it), rebuild and run this again."
fi

soname_of_lib() {
  LC_ALL=C readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p'
}
soname_of_abi() {
  sed -n "1s/.* soname='\([^']*\)'.*/\1/p" "$1"
}

# What abidw keeps: the interfaces the library exports, with the types of
# include/ only (internal structs stay opaque, as the header has them), and
# no path of the build tree, so that every build of the same code gives the
# same file.  The locations stay, as bare file names: --drop-private-types
# tells public types from private ones by them.
abidw_opts="--no-corpus-path --no-comp-dir-path --short-locs
  --exported-interfaces-only --drop-private-types --headers-dir $srcdir/include"

# describe LIB OUT: LIB's ABI as abidw sees it, into OUT; fails unless every
# exported function came with its types.
describe() {
  # shellcheck disable=SC2086 # a list of options
  abidw $abidw_opts --out-file "$2" "$1" || fail "abidw failed on $1"
  nfn=$(grep -c '<function-decl ' "$2" || true)
  nsym=$(sed -n '/<elf-function-symbols>/,/<\/elf-function-symbols>/p' "$2" |
    grep -c '<elf-symbol ' || true)
  { [ "$nfn" -gt 0 ] && [ "$nfn" -eq "$nsym" ]; } ||
    fail "abidw found the types of $nfn of the $nsym functions $1
exports (incomplete debug information?)"
  # -g1 describes functions without their parameters or return types.
  grep -q '<parameter ' "$2" ||
    fail "$1's debug information has no types (built with -g1?).
Configure with -g in CFLAGS (the default is -g -O2), rebuild and run this
again."
}

# compare OLD NEW: abidiff of two abidw files (written with the same
# options: not abidiff --hd2 on the library itself, which filters out every
# change it sees in a type not defined under include/, so that a parameter
# changed from int64_t to int32_t would pass).  Sets verdict to same,
# added (new functions or variables only) or incompatible, and leaves
# abidiff's report in $tmp/report.
compare() {
  if [ -f "$suppr" ]; then
    set -- --suppressions "$suppr" "$1" "$2"
  fi
  status=0
  abidiff "$@" >"$tmp/report" 2>&1 || status=$?
  # abidiff's status is a bit field: 1 error, 2 usage error, 4 the ABIs
  # differ, 8 they differ incompatibly (it sets that for removals only).
  if [ $((status & 3)) -ne 0 ]; then
    cat "$tmp/report" >&2
    fail "abidiff could not compare the ABIs (status $status)"
  fi
  if grep -qi 'architecture changed' "$tmp/report"; then
    cat "$tmp/report" >&2
    fail "the baseline is for another architecture than this build
($(sed -n "1s/.* architecture='\([^']*\)'.*/\1/p" "$baseline")): its ABI
cannot be compared with it (the check is made on x86-64, as in CI)"
  fi
  verdict=same
  [ $((status & 4)) -eq 0 ] && layout_kept "$@" && return 0
  verdict=incompatible
  [ $((status & 8)) -eq 0 ] || return 0
  removed='^(Functions|Variables|Function symbols|Variable symbols)'
  removed="$removed changes summary: [1-9][0-9]* Removed"
  ! grep -Eq "$removed" "$tmp/report" || return 0
  # A changed layout or signature sets only 4, as additions do: without
  # the additions, is anything left?
  status=0
  abidiff --no-added-syms "$@" >"$tmp/changed" 2>&1 || status=$?
  [ "$status" -ne 0 ] || ! layout_kept "$@" || verdict=added
}

# layout_kept [--suppressions FILE] OLD NEW: the suppression rules accept a
# struct with members appended at its end, but libabigail then also hides
# changes to the members it already had (a reordering that keeps the size
# passed).  So without the rules, no existing member may have changed
# (offset, type, name) or gone: only insertions.  Sets verdict and the
# report when one did.
layout_kept() {
  [ "$1" = --suppressions ] || return 0
  shift 2
  abidiff "$@" >"$tmp/raw" 2>&1 || true
  if grep -Eq 'data members? (change|deletion)' "$tmp/raw"; then
    cp "$tmp/raw" "$tmp/report"
    verdict=incompatible
    return 1
  fi
  return 0
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
describe "$lib" "$tmp/current.abi"
cur_soname=$(soname_of_lib "$lib")
[ -n "$cur_soname" ] || fail "$lib has no SONAME"

if [ $mode = baseline ]; then
  if [ -f "$baseline" ]; then
    old_soname=$(soname_of_abi "$baseline")
    compare "$baseline" "$tmp/current.abi"
    cat "$tmp/report"
    version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' \
      "$builddir/config.h" 2>/dev/null || true)
    # Unknown would read as "before 1.0" and lift the guard below.
    [ -n "$version" ] ||
      fail "no PACKAGE_VERSION in $builddir/config.h: cannot tell whether an
incompatible change is still allowed (before 1.0)"
    if [ "$verdict" = incompatible ] && [ "$old_soname" = "$cur_soname" ]; then
      case $version in
      0.*) echo "$me: the changes above are incompatible under the same" \
        "SONAME ($cur_soname): allowed before 1.0 only; say so in NEWS." ;;
      *)
        [ "${CF_ABI_FORCE:-0}" = 1 ] ||
          fail "the changes above are incompatible and the SONAME is still
$cur_soname: cfutures $version is past 1.0, so bump CF_LT_VERSION in
configure.ac (current+1, revision=0, age=0) and rebuild first
(CF_ABI_FORCE=1 records it anyway)."
        ;;
      esac
    fi
    echo "$me: old baseline: $old_soname; changes: $verdict"
  fi
  cp "$tmp/current.abi" "$baseline.tmp"
  mv "$baseline.tmp" "$baseline"
  echo "$me: wrote $baseline ($cur_soname, $nfn functions); commit it"
  exit 0
fi

[ -f "$baseline" ] ||
  fail "no baseline at $baseline (make abi-baseline writes one)"
base_soname=$(soname_of_abi "$baseline")
[ -n "$base_soname" ] || fail "$baseline names no SONAME"
compare "$baseline" "$tmp/current.abi"

if [ "$base_soname" != "$cur_soname" ]; then
  cat "$tmp/report"
  echo "$me: OK, SONAME bump found ($base_soname -> $cur_soname): changes" \
    "are allowed ($verdict).  Refresh the baseline: make abi-baseline, and" \
    "commit abi/libcfutures.abi."
  exit 0
fi
case $verdict in
same)
  echo "$me: OK, $cur_soname has the ABI of the baseline ($nfn functions)"
  ;;
added)
  cat "$tmp/report"
  echo "$me: OK, compatible additions only (above); $cur_soname as in the" \
    "baseline"
  ;;
*)
  cat "$tmp/report"
  fail "incompatible ABI change against abi/libcfutures.abi, under the
same SONAME $cur_soname (see above).  Undo it, or bump the SONAME
(CF_LT_VERSION in configure.ac) and refresh the baseline (make
abi-baseline).  A change that is compatible by design can be accepted
with a rule in abi/libcfutures.suppr."
  ;;
esac
