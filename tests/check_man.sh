#!/bin/sh
# The API's man pages (man/mkman.sh, built into man/man3):
#  1. every function the library exports, and the header declares (the two
#     lists must agree), has a page named after it, its family's or a
#     ".so" stub to it, so that "man F" documents F, and is in the NAME of
#     exactly one family page; every name a page claims (its NAME, a stub's
#     file name) is such a function, every stub's page exists, and make
#     install installs (MAN3_PAGES) exactly the pages mkman.sh wrote;
#  2. cfutures(3)'s EXAMPLE compiles without a warning and prints what the
#     page says it prints;
#  3. every page, stubs included, renders with groff -ww without a word on
#     stderr (skipped, status 77, when groff is not installed).
set -eu
build=${top_builddir:-.}
src=${top_srcdir:-.}
hdr="$src/include/cfutures.h"
lib="$build/lib/.libs/libcfutures.so"
mandir="$build/man/man3"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() {
  echo "FAIL: $*" >&2
  failed=1
}

# ---- 1. pages and functions --------------------------------------------------
[ -d "$mandir" ] || { echo "FAIL: no $mandir (make builds it)" >&2; exit 1; }
# Every declaration line "CF_API <type> name(" (as tests/check_exports.sh).
grep -E '^CF_API ' "$hdr" | sed -E 's/^CF_API [^(]*[ *]([a-z_0-9]+)\(.*/\1/' |
  sort -u > "$tmp/functions"
if [ -f "$lib" ]; then
  nm -D --defined-only "$lib" | awk '$2 ~ /^[TW]$/ {print $3}' |
    sed 's/@.*//' | grep '^cf_' | sort -u > "$tmp/exported"
  if ! diff -u "$tmp/functions" "$tmp/exported" > "$tmp/diff"; then
    cat "$tmp/diff" >&2
    fail "the header's CF_API functions and the library's exports differ"
  fi
else
  echo "note: no $lib; functions from the header only"
fi

# What make install installs, and what mkman.sh wrote.
for p in ${MAN3_PAGES:?MAN3_PAGES is set by make check}; do
  basename "$p"
done | sort > "$tmp/listed"
(cd "$mandir" && ls -- *.3) | sort > "$tmp/written"
if ! diff -u "$tmp/listed" "$tmp/written" > "$tmp/diff"; then
  cat "$tmp/diff" >&2
  fail "MAN3_PAGES in Makefile.am (-) is not what man/mkman.sh wrote (+)"
fi

# One line per claim: "full PAGE NAME" for each name in a page's NAME, and
# "stub PAGE TARGET" for a stub.
for f in "$mandir"/*.3; do
  awk -v page="$(basename "$f" .3)" '
    /^\.so / { t = $2; sub(/^man3\//, "", t); sub(/\.3$/, "", t)
               print "stub", page, t; exit }
    /^\.SH NAME/ { getline; sub(/ \\- .*/, ""); gsub(/,/, " ")
                   for (i = 1; i <= NF; i++) print "full", page, $i
                   exit }
  ' "$f"
done > "$tmp/claims"
awk '$1 == "full" { print $3 }' "$tmp/claims" | sort > "$tmp/named"
# The overview's NAME is the library's, not a function's.
grep -vx cfutures "$tmp/named" > "$tmp/named.f" || true
if ! diff -u "$tmp/functions" "$tmp/named.f" > "$tmp/diff"; then
  cat "$tmp/diff" >&2
  fail "functions (-) without a family page's NAME, or names (+) that" \
    "are no function"
fi
uniq -d "$tmp/named" > "$tmp/twice"
while read -r n; do
  fail "$n is in the NAME of more than one page"
done < "$tmp/twice"
# shellcheck disable=SC2094 # the loop and grep only read the claims
while read -r kind page name; do
  case $kind in
  full)
    [ "$name" = cfutures ] || [ -f "$mandir/$name.3" ] ||
      fail "$name is on $page.3 but has no page of its own ($name.3)" ;;
  stub)
    grep -qx "$page" "$tmp/functions" ||
      fail "stub $page.3: $page is not a function of the header"
    grep -qx "full $name $page" "$tmp/claims" ||
      fail "stub $page.3 leads to $name.3, whose NAME lacks $page" ;;
  esac
done < "$tmp/claims"
# What "man F" shows documents F: F.3 is the page that names F, or a stub
# to it (whose NAME lists F, checked above).
while read -r f; do
  grep -qx "full $f $f" "$tmp/claims" || grep -q "^stub $f " "$tmp/claims" ||
    fail "man $f: $f.3 is missing or does not document $f"
done < "$tmp/functions"
# Every page is a stub or has a NAME.
awk '{ print $2 ".3" }' "$tmp/claims" | sort -u > "$tmp/claiming"
if ! diff -u "$tmp/written" "$tmp/claiming" > "$tmp/diff"; then
  cat "$tmp/diff" >&2
  fail "pages (-) that are neither a stub nor a page with a NAME"
fi
[ "$failed" = 0 ] ||
  { echo "FAIL: the pages do not match the functions (see above)" >&2; exit 1; }
echo "pages: $(wc -l < "$tmp/functions") functions, each with its page;" \
  "$(grep -c '^stub' "$tmp/claims") of them stubs to" \
  "$(awk '$1 == "full" {print $2}' "$tmp/claims" | sort -u | wc -l) pages"

# ---- 2. the overview's example -----------------------------------------------
# The program is the last .EX block of cfutures(3), what it prints the one
# before; troff's escapes undone.
last=$(awk '/^\.SH/ { ex = $2 == "EXAMPLE" } /^\.EX/ { n++; on = 1; next }
           /^\.EE/ { on = 0 } ex && on { print > (dir "/ex" n) }
           END { print n + 0 }' dir="$tmp" "$mandir/cfutures.3")
if [ ! -f "$tmp/ex$last" ] || [ ! -f "$tmp/ex$((last - 1))" ]; then
  echo "FAIL: cfutures(3)'s EXAMPLE lacks its output or its program" >&2
  exit 1
fi
for n in $((last - 1)) "$last"; do
  sed -e 's/\\&//g' -e 's/\\-/-/g' -e "s/\\\\(aq/'/g" -e 's/\\e/\\/g' \
    "$tmp/ex$n" > "$tmp/ex$n.txt"
done
cp "$tmp/ex$last.txt" "$tmp/example.c"
. "$src/tests/cflib.sh" # sets cflib
# shellcheck disable=SC2086 # CFLAGS/LDFLAGS/cflib are lists of flags
"${CC:-cc}" -std=c11 -Wall -Wextra -Werror ${CFLAGS:-} -pthread \
  -I"$src/include" -I"$build/include" "$tmp/example.c" ${LDFLAGS:-} \
  -o "$tmp/example" $cflib -lpthread
"$tmp/example" > "$tmp/out"
if ! diff -u "$tmp/ex$((last - 1)).txt" "$tmp/out"; then
  echo "FAIL: cfutures(3)'s example does not print what the page says" >&2
  exit 1
fi
echo "cfutures(3) example: compiles, prints what the page says"

# ---- the MPI backend's pages (built with it) -----------------------------------
mpidir="$build/man/mpi3"
mpi_pages=
[ -n "${MAN3_MPI_PAGES:-}" ] && [ -d "$mpidir" ] && mpi_pages=1
if [ -n "$mpi_pages" ]; then
  for p in $MAN3_MPI_PAGES; do basename "$p"; done | sort > "$tmp/mlisted"
  (cd "$mpidir" && ls -- *.3) | sort > "$tmp/mwritten"
  diff -u "$tmp/mlisted" "$tmp/mwritten" >&2 ||
    fail "MAN3_MPI_PAGES in Makefile.am (-) is not what man/mkman.sh wrote (+)"
  grep -E '^CF_API ' "$src/include/cfutures-mpi.h" |
    sed -E 's/^CF_API [^(]*[ *]([a-z_0-9]+)\(.*/\1/' | sort -u > "$tmp/mfuncs"
  while read -r f; do
    [ -f "$mpidir/$f.3" ] || fail "man $f: no page (man/mpi/*.desc)"
  done < "$tmp/mfuncs"
  [ "$failed" = 0 ] || exit 1
  echo "MPI pages: $(wc -l < "$tmp/mfuncs") functions of cfutures-mpi.h, each with its page"
fi

# ---- 3. rendering ------------------------------------------------------------
if ! command -v groff >/dev/null; then
  echo "SKIP: groff is not installed; the pages were checked, not rendered"
  exit 77
fi
# From man/, so that ".so man3/PAGE.3" resolves as it does under man3/.
for f in "$mandir"/*.3; do
  p=man3/$(basename "$f")
  if ! (cd "$mandir/.." && groff -ww -z -man "$p") > "$tmp/err" 2>&1 ||
    [ -s "$tmp/err" ]; then
    sed "s|^|$p: |" "$tmp/err" >&2
    fail "$p does not render cleanly"
  fi
done
# The MPI pages as installed: beside the others in man3.
if [ -n "$mpi_pages" ]; then
  mkdir -p "$tmp/all/man3"
  cp "$mandir"/*.3 "$mpidir"/*.3 "$tmp/all/man3/"
  for f in "$mpidir"/*.3; do
    p=man3/$(basename "$f")
    if ! (cd "$tmp/all" && groff -ww -z -man "$p") > "$tmp/err" 2>&1 ||
      [ -s "$tmp/err" ]; then
      sed "s|^|$p: |" "$tmp/err" >&2
      fail "$p does not render cleanly"
    fi
  done
fi
[ "$failed" = 0 ] || exit 1
set -- "$mandir"/*.3 ${mpi_pages:+"$mpidir"/*.3}
echo "groff -ww: $# pages render without a warning"
