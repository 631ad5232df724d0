#!/bin/sh
# Nothing outside a pool can make a program a worker (issue 9).  The
# marker variable set by hand on primecheck and pcopy (garbage, a number,
# a descriptor that is a pipe or a socket to someone else, with forged
# messages waiting in it): the program runs normally.  A forged worker
# start that gets everything right, by the program's parent and the same
# user, does run its task (the control: the forgery is good); the same
# against a setuid-root copy run by an unprivileged user runs nothing, and
# a pool created there is refused (CF_ENOTSUP) with words.
set -eu
src=${top_srcdir:-.}
build=$(cd "${top_builddir:-.}" && pwd)
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pc="$build/samples/primecheck"
cp="$build/samples/pcopy"
mark=CF__PROCESS_WORKER_FD
hex=$(printf '%064d' 0)

# shellcheck disable=SC2086 # CFLAGS/LDFLAGS are lists of flags
"${CC:-cc}" -std=c11 -Wall -Wextra -Werror ${CFLAGS:-} -pthread \
  -I"$src/include" -I"$build/include" "$src/tests/hijack_victim.c" ${LDFLAGS:-} \
  -o "$tmp/victim" "$build/lib/.libs/libcfutures.a" -lpthread
# shellcheck disable=SC2086
"${CC:-cc}" -std=c11 -Wall -Wextra -Werror ${CFLAGS:-} \
  "$src/tests/hijack_forge.c" ${LDFLAGS:-} -o "$tmp/forge"
off=$("$tmp/victim" --offset)

expect_normal() { # what, then the output file
  grep -q '^7 is prime: True$' "$2" || fail "$1: primecheck 7 did not run normally"
}

# The marker by hand: garbage, numbers, the right shape with nothing behind.
for v in garbage 0 -1 3 4 99999 "3:$hex" "3:$hex:" "03:$hex" " 3:$hex" ""; do
  env "$mark=$v" "$pc" 7 > "$tmp/out" 2>&1 < /dev/null ||
    fail "marker '$v': primecheck exited $?"
  expect_normal "marker '$v'" "$tmp/out"
done
# Descriptor 3 open on a file, on a pipe, on a socket, with an open stdin
# that never ends: nothing blocks on them, nothing reads them.
echo data > "$tmp/file"
env "$mark=3:$hex" "$pc" 7 > "$tmp/out" 3< "$tmp/file" < /dev/null
expect_normal "fd 3 a file" "$tmp/out"
mkfifo "$tmp/fifo"
sleep 120 > "$tmp/fifo" &
holder=$!
env "$mark=0" timeout 60 "$pc" 7 > "$tmp/out" < "$tmp/fifo" ||
  { kill "$holder"; fail "marker 0 with an open stdin: primecheck exited $?"; }
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
expect_normal "marker 0, open stdin" "$tmp/out"
# Forged messages on a pipe and on a socket whose peer is not the parent.
for mode in pipe self; do
  "$tmp/forge" "$mode" "$off" "$tmp/pwned" "$pc" 7 > "$tmp/out" ||
    fail "forged $mode: primecheck exited $?"
  expect_normal "forged $mode" "$tmp/out"
  "$tmp/forge" "$mode" "$off" "$tmp/pwned" "$tmp/victim" > "$tmp/out" ||
    fail "forged $mode: victim exited $?"
  grep -q '^victim main ran, euid [0-9]*, marker unset$' "$tmp/out" ||
    fail "forged $mode: victim main did not run, or saw the marker"
  [ ! -e "$tmp/pwned" ] || fail "forged $mode: the forged task ran"
done
# main() never sees the marker, whatever its value.
for v in garbage "3:$hex" ""; do
  env "$mark=$v" "$tmp/victim" > "$tmp/out" 2>&1 < /dev/null ||
    fail "victim with marker '$v' exited $?"
  grep -q '^victim main ran, euid [0-9]*, marker unset$' "$tmp/out" ||
    fail "victim with marker '$v': main saw the marker"
done
# pcopy copies normally with the marker set.
mkdir -p "$tmp/src"
echo one > "$tmp/src/a"
echo two > "$tmp/src/b"
env "$mark=3:$hex" "$cp" "$tmp/src" "$tmp/dst" 3< "$tmp/file" < /dev/null > /dev/null ||
  fail "pcopy with the marker exited $?"
cmp "$tmp/src/a" "$tmp/dst/a" && cmp "$tmp/src/b" "$tmp/dst/b" ||
  fail "pcopy with the marker did not copy"

# The control: the forger is the parent and the same user, everything is
# right, so the program becomes a worker and runs the forged task.
"$tmp/forge" parent "$off" "$tmp/pwned" "$tmp/victim" > "$tmp/out" ||
  fail "control: victim exited $?"
[ -e "$tmp/pwned" ] || fail "control: the forgery is not a good one (task did not run)"
grep -q '^victim main ran' "$tmp/out" && fail "control: main ran in a worker"
rm -f "$tmp/pwned"

# The same against a setuid-root copy, run by nobody: AT_SECURE, nothing
# runs, main runs normally.
if [ "$(id -u)" != 0 ]; then
  echo "SKIP part: setuid case needs root (to make a setuid-root copy)"
else
  mkdir "$tmp/rootonly"
  chmod 700 "$tmp/rootonly"
  cp "$tmp/victim" "$tmp/victim-suid"
  chmod 4755 "$tmp/victim-suid"
  chmod 755 "$tmp/forge"
  setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$tmp/forge" parent "$off" "$tmp/rootonly/pwned" "$tmp/victim-suid" \
    > "$tmp/out" 2>&1 || { cat "$tmp/out" >&2; fail "setuid: victim exited $?"; }
  [ ! -e "$tmp/rootonly/pwned" ] || fail "setuid: the forged task ran as root"
  grep -q '^victim main ran, euid 0, marker unset$' "$tmp/out" ||
    { cat "$tmp/out" >&2; fail "setuid: main did not run normally"; }
  # A pool in a setuid program is refused at create, with words.
  "$tmp/victim" pool > "$tmp/out" || fail "pool in the victim exited $?"
  grep -q '^pool: created' "$tmp/out" || fail "pool in the victim not created"
  set +e
  setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$tmp/victim-suid" pool > "$tmp/out" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 3 ] || { cat "$tmp/out" >&2; fail "setuid pool: exit $rc, not 3"; }
  grep -q '^pool: refused: process pools are not supported in a setuid' \
    "$tmp/out" || { cat "$tmp/out" >&2; fail "setuid pool: words"; }
fi
echo "hijack: all checks passed"
