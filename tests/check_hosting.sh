#!/bin/sh
# The same code, or a clear refusal (issue 9).  A shared library replaced
# by another build while a pool lives: its tasks fail with "the binary
# changed", never a wrong result; the program replaced, then deleted: its
# tasks keep giving the original's results.  Refused at create, with words
# that name the cause: libcfutures loaded with dlopen(), a program started
# through the dynamic loader, an initializer in a dlopen()ed module, no
# /proc (in a mount namespace, when this runs as root).
set -eu
src=${top_srcdir:-.}
build=$(cd "${top_builddir:-.}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; [ ! -f "$tmp/out" ] || cat "$tmp/out" >&2; exit 1; }
libdir="$build/lib/.libs"
ccw() {
  # shellcheck disable=SC2086 # CFLAGS/LDFLAGS are lists of flags
  "${CC:-cc}" -std=c11 -Wall -Wextra -Werror ${CFLAGS:-} -pthread \
    -I"$src/include" -I"$build/include" "$@" ${LDFLAGS:-}
}
# build_pair SUFFIX LDFLAGS...: the library in two builds, the host in two.
build_pair() {
  sfx=$1
  shift
  ccw -fPIC -shared -DVARIANT=1 -Wl,-soname,libhosting_task.so "$@" \
    "$src/tests/hosting_task.c" -o "$tmp/libhosting_task.so" -L"$libdir" -lcfutures
  ccw -fPIC -shared -DVARIANT=2 -Wl,-soname,libhosting_task.so "$@" \
    "$src/tests/hosting_task.c" -o "$tmp/libhosting_task.so.v2" -L"$libdir" -lcfutures
  for v in 1 2; do
    ccw -DVARIANT=$v "$@" "$src/tests/hosting_host.c" -o "$tmp/host$v$sfx" \
      -L"$tmp" -lhosting_task -L"$libdir" -lcfutures \
      -Wl,-rpath,"$tmp" -Wl,-rpath,"$libdir" -ldl
  done
}
build_pair ""
cp "$tmp/libhosting_task.so.v2" "$tmp/libother.so"
ccw "$src/tests/hosting_dlopen.c" -o "$tmp/dlopen_host" -ldl
case "${CFLAGS:-}" in *-fsanitize*) sanitized=1 ;; *) sanitized=0 ;; esac

# The baseline: a pool works in this program.
"$tmp/host1" plain > "$tmp/out" || fail "plain exited $?"
grep -qx 'main 42' "$tmp/out" || fail "plain: no result"

# Replaced on disk while the pool lives: modules told apart by build-id,
# then (built without one) by device and inode.
changed() {
  cp "$tmp/host1$1" "$tmp/host"
  "$tmp/host" changed "$tmp/libhosting_task.so.v2" "$tmp/libhosting_task.so" \
    "$tmp/host2$1" > "$tmp/out" || fail "changed$1 exited $?"
  grep -qx 'before: lib v1' "$tmp/out" || fail "$1 the library's task before"
  grep -qx 'before: main 42' "$tmp/out" || fail "$1 the program's task before"
  grep -q '^replaced: lib failed: task failed (-1): the binary changed since the process pool was created: .*libhosting_task\.so' \
    "$tmp/out" || fail "$1 a task of the replaced library did not say the binary changed"
  grep -q '^replaced: lib v' "$tmp/out" && fail "$1 a task of the replaced library ran"
  grep -qx 'replaced: main 42' "$tmp/out" || fail "$1 the replaced program's task"
  grep -qx 'deleted: main 42' "$tmp/out" || fail "$1 the deleted program's task"
  [ ! -e "$tmp/host" ] || fail "$1 the program was not deleted"
}
changed ""
# The initializer's module replaced: the initializer is not run, the pool
# breaks with words naming the module.
build_pair ""
"$tmp/host1" initchanged "$tmp/libhosting_task.so.v2" "$tmp/libhosting_task.so" \
  > "$tmp/out" || fail "initchanged exited $?"
grep -qx 'before: main 42' "$tmp/out" || fail "initchanged: the task before"
grep -q "^replaced: main failed: executor is broken ([-0-9]*): the binary changed since the process pool was created: the initializer's module .*libhosting_task\.so" \
  "$tmp/out" || fail "initchanged: no words about the initializer's module"
build_pair -nobid -Wl,--build-id=none
readelf -n "$tmp/libhosting_task.so" | grep -q 'Build ID' &&
  fail "--build-id=none left a build-id"
changed -nobid
build_pair ""

# libcfutures loaded with dlopen().
set +e
"$tmp/dlopen_host" "$libdir/libcfutures.so" > "$tmp/out" 2>&1
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "dlopen host: exit $rc, not 3"
grep -q '^refused: not supported by this executor: libcfutures was loaded with dlopen()' \
  "$tmp/out" || fail "dlopen host: no words naming dlopen()"

# An initializer in a dlopen()ed module (the host links the library with
# the task; the initializer comes from another copy, dlopen()ed).
set +e
"$tmp/host1" init "$tmp/libother.so" > "$tmp/out" 2>&1
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "initializer in a dlopen()ed module: exit $rc, not 3"
grep -q '^refused: invalid argument: the initializer lives in .*libother\.so, a module loaded with dlopen()' \
  "$tmp/out" || fail "initializer in a dlopen()ed module: words"

# A task function in a module dlopen()ed after the pool was created: the
# workers do not load it, so the parent refuses it with words (a CHUNK
# used to reach the worker, which then died and, with BREAK, broke the
# pool); the pool goes on.
"$tmp/host1" dltask "$tmp/libother.so" > "$tmp/out" 2>&1 ||
  fail "dltask host: exit $?"
grep -q '^submit failed: task failed (-1): the task function is in .*loaded with dlopen()' \
  "$tmp/out" || fail "task in a module dlopen()ed after create: words"
grep -q '^map: task failed (-1): the task function is in .*loaded with dlopen()' \
  "$tmp/out" || fail "map over a module dlopen()ed after create: words"
grep -qx 'main 42' "$tmp/out" || fail "the pool did not go on after the refusals"

# Started through the dynamic loader.
interp=$(readelf -l "$tmp/host1" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
if [ -z "$interp" ] || [ ! -x "$interp" ]; then
  echo "SKIP part: no program interpreter found"
else
  set +e
  "$interp" "$tmp/host1" plain > "$tmp/out" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 3 ] || fail "loader launch: exit $rc, not 3"
  grep -q '^refused: not supported by this executor: the program was started through the dynamic loader' \
    "$tmp/out" || fail "loader launch: words"
fi

# No /proc: a private mount namespace with an empty /proc (root only; not
# under sanitizers, whose runtimes read /proc/self/maps before main()).
if [ "$sanitized" = 1 ]; then
  echo "SKIP part: no /proc under a sanitizer"
elif [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
  echo "SKIP part: no /proc needs root and mount namespaces"
else
  set +e
  unshare -m sh -c "mount -t tmpfs none /proc && exec \"$tmp/host1\" plain" \
    > "$tmp/out" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 3 ] || fail "no /proc: exit $rc, not 3"
  grep -q '^refused: not supported by this executor: cannot open /proc/self/exe' \
    "$tmp/out" || fail "no /proc: words"
fi
echo "hosting: all checks passed"
