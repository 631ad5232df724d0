#!/bin/sh
# Every C example in README.md that includes <cfutures.h> compiles with
# -Wall -Wextra -Werror and runs successfully against the built library.
set -eu
src=${top_srcdir:-.}
build=${top_builddir:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" '
  /^```c$/ { inblock = 1; n++; file = dir "/ex" n ".c"; next }
  /^```/ { inblock = 0; next }
  inblock { print > file }
' "$src/README.md"
count=0
. "$src/tests/cflib.sh" # sets cflib
for f in "$tmp"/ex*.c; do
  [ -e "$f" ] || continue
  grep -q '#include <cfutures.h>' "$f" || continue
  count=$((count + 1))
  # shellcheck disable=SC2086 # CFLAGS/LDFLAGS/cflib are lists of flags
  "${CC:-cc}" -std=c11 -Wall -Wextra -Werror ${CFLAGS:-} -pthread \
    -I"$src/include" -I"${top_builddir:-.}/include" "$f" ${LDFLAGS:-} \
    -o "$f.bin" $cflib -lpthread
  if ! "$f.bin" > "$f.out" 2>&1; then
    echo "FAIL: README example $count exited non-zero:" >&2
    cat "$f.out" >&2
    exit 1
  fi
  echo "README example $count: ok ($(head -n 1 "$f.out"))"
done
[ "$count" -ge 5 ] || { echo "FAIL: only $count examples found" >&2; exit 1; }
