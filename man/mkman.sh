#!/bin/sh
# Makes the API's man pages, section 3, from the header and man/*.desc:
#
#   mkman.sh -o OUTDIR [-v VERSION] [-d DATE] HEADER DESC...
#
# Each contract is written once, in the comment above its declaration in
# include/cfutures.h; a page takes its SYNOPSIS (prototypes, typedefs,
# structs, macros) and DESCRIPTION (those comments, and the comments of a
# struct's fields or an enum's constants) from there.  A DESC file,
# man/PAGE.desc, holds only what no comment says: which declarations make
# page PAGE(3), the one line of NAME, SEE ALSO, and any further sections.
# Every function of a page but the one it is named after gets a stub page,
# ".so man3/PAGE.3", so that "man cf_future_error" finds cf_future_result.
#
# A DESC file is lines of KEYWORD ARGUMENTS ('#' starts a comment line):
#   brief TEXT           NAME's words after the names
#   func NAME...         functions (NAME lists them all, in this order)
#   type NAME...         typedefs: structs, enums, function pointers; a
#                        struct brings its initializer macro (cf_map_item:
#                        CF_MAP_ITEM_INIT) when the header has one
#   macro NAME...        #defines
#   section TITLE        the free comments (those above no declaration) of
#                        the header's banner section TITLE
#   see PAGE...          SEE ALSO, section 3 unless written PAGE(N)
# func, type, macro and section lines give DESCRIPTION its parts, in this
# order, each under a heading made of its names ("HEADING" at the end of
# the line gives another); SYNOPSIS has the declarations in the header's
# order.  From the first line that starts with '.', the rest of the file is
# troff, put after DESCRIPTION; in it, a line "@doc KIND NAME..." puts the
# words of those declarations there, and "@index" a list of every other
# page.
#
# POSIX sh and awk only (mawk is enough): it runs where the tarball is
# built, which may have nothing but a C compiler and make.
set -eu
LC_ALL=C
export LC_ALL

outdir=
version=unknown
date=
while getopts o:v:d: opt; do
  case $opt in
  o) outdir=$OPTARG ;;
  v) version=$OPTARG ;;
  d) date=$OPTARG ;;
  *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ -z "$outdir" ] || [ $# -lt 2 ]; then
  echo "usage: $0 -o OUTDIR [-v VERSION] [-d DATE] HEADER DESC..." >&2
  exit 2
fi
for f in "$@"; do
  [ -s "$f" ] || { echo "mkman: $f: missing or empty" >&2; exit 1; }
done

here=$(dirname "$0")
mkdir -p "$outdir"
# The directory holds only what this run writes: a page dropped from the
# DESC files must not linger and be installed.
rm -f "$outdir"/*.3
# The header names the library, its -l flag and its pkg-config module:
# include/cfutures.h, or include/cfutures-mpi.h for the MPI backend.
lib=$(basename "$1" .h)
if ! awk -v outdir="$outdir" -v version="$version" -v date="$date" \
  -v lib="$lib" -f "$here/mkman.awk" "$@"; then
  rm -f "$outdir"/*.3
  exit 1
fi
