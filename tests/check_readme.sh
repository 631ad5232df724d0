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
# The MPI example, when the MPI backend is built: on 3 ranks.
if [ -n "${MPIEXEC:-}" ] && [ -f "$build/lib/.libs/libcfutures-mpi.so" ]; then
  mpi=0
  for f in "$tmp"/ex*.c; do
    grep -q '#include <cfutures-mpi.h>' "$f" || continue
    mpi=$((mpi + 1))
    # shellcheck disable=SC2086 # the flags are lists
    "${CC:-cc}" -std=c11 -Wall -Wextra -Werror ${CFLAGS:-} -pthread \
      -I"$src/include" -I"$build/include" ${MPI_CFLAGS:-} "$f" ${LDFLAGS:-} \
      -o "$f.bin" -L"$build/lib/.libs" -lcfutures-mpi \
      -Wl,-rpath,"$build/lib/.libs" ${MPI_LIBS:-} -lpthread
    # shellcheck disable=SC2086
    if ! OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
      timeout 300 "$MPIEXEC" ${MPIEXEC_FLAGS:-} -n 3 "$f.bin" > "$f.out" 2>&1; then
      echo "FAIL: README's MPI example $mpi failed under $MPIEXEC:" >&2
      cat "$f.out" >&2
      exit 1
    fi
    echo "README MPI example $mpi: ok ($(head -n 1 "$f.out"))"
  done
  [ "$mpi" -ge 1 ] || { echo "FAIL: no MPI example found" >&2; exit 1; }
fi
[ "$count" -ge 5 ] || { echo "FAIL: only $count examples found" >&2; exit 1; }
