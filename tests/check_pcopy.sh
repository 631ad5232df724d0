#!/bin/sh
# pcopy: a tree with an empty file, a 1-byte file, a 64 MiB file, 2,000
# small files, names with spaces and non-ASCII letters, nested folders, a
# link, a FIFO and a sparse file -- compared byte for byte, by mode and by
# mtime, on threads and on processes; an unreadable file among readable
# ones; an unwritable DST; -f; usage errors; Ctrl-C leaves nothing partial.
set -eu
pc="$(cd "${top_builddir:-.}" && pwd)/samples/pcopy"
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'chmod -R u+rwx "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Permission tests need an unprivileged user: root reads everything.
if [ "$(id -u)" = 0 ]; then
  as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
else
  as_user() { "$@"; }
fi

src="$tmp/src"
mkdir -p "$src/nested/deeper" "$src/with space" "$src/many"
: > "$src/empty"
printf x > "$src/one"
head -c $((64 << 20)) /dev/urandom > "$src/big"
printf 'grüße\n' > "$src/with space/naïve – ünïcödé.txt"
echo deep > "$src/nested/deeper/file"
chmod 640 "$src/nested/deeper/file"
chmod 750 "$src/nested"
i=0
while [ $i -lt 2000 ]; do
  echo "file $i" > "$src/many/f$i"
  i=$((i + 1))
done
ln -s one "$src/link"
mkfifo "$src/fifo"
truncate -s 32M "$src/sparse"
echo end >> "$src/sparse"
touch -d '2001-02-03 04:05:06.123456789' "$src/one" "$src/nested"

# What must match: paths, types, modes, sizes, mtimes (not the FIFO).
listing() { # a folder's size is its own business: left out
  (cd "$1" && find . ! -name fifo ! -path . -printf '%p %y %m %s %T@ %l\n' |
    awk '$2 == "d" { $4 = "-" } { print }' | sort)
}

for backend in "" --processes; do
  dst="$tmp/dst$backend"
  # shellcheck disable=SC2086
  "$pc" -r $backend "$src" "$dst" > "$tmp/out" 2> "$tmp/err" ||
    fail "pcopy -r $backend exited $?: $(cat "$tmp/err")"
  diff -r --no-dereference "$src" "$dst" 2>&1 | grep -v fifo > "$tmp/diff" || true
  [ ! -s "$tmp/diff" ] || fail "$backend: contents differ: $(head -3 "$tmp/diff")"
  listing "$src" > "$tmp/a"
  listing "$dst" > "$tmp/b"
  cmp -s "$tmp/a" "$tmp/b" || fail "$backend: modes/sizes/times differ: $(diff "$tmp/a" "$tmp/b" | head -5)"
  grep -q "fifo.*skipped" "$tmp/err" || fail "$backend: FIFO not reported"
  grep -q "2006 of 2006 files copied" "$tmp/out" || fail "$backend: summary: $(cat "$tmp/out")"
  [ -z "$(find "$dst" -name '.pcopy-*')" ] || fail "$backend: temporary files left"
  # Sparse stays sparse (when the filesystem can).
  [ "$(du -k "$dst/sparse" | cut -f1)" -le $(( $(du -k "$src/sparse" | cut -f1) + 64 )) ] ||
    fail "$backend: sparse file was filled"
done

# Without -r: only SRC's own regular files (and links).
"$pc" -q "$src" "$tmp/flat" 2>/dev/null
[ -f "$tmp/flat/big" ] && [ -L "$tmp/flat/link" ] && [ ! -e "$tmp/flat/nested" ] ||
  fail "non-recursive copy"
[ "$(ls -A "$tmp/flat" | wc -l)" -eq 5 ] || fail "flat: $(ls -A "$tmp/flat")"

# Existing files: kept without -f, replaced with it.
echo old > "$tmp/flat/one"
"$pc" -q "$src" "$tmp/flat" 2> "$tmp/err"
[ "$(cat "$tmp/flat/one")" = old ] || fail "overwrote without -f"
grep -q "exists" "$tmp/err" || fail "no warning for an existing file"
"$pc" -q -f "$src" "$tmp/flat"
cmp -s "$src/one" "$tmp/flat/one" || fail "-f did not overwrite"

# An unreadable file among readable ones: exit 1, named, the others copied.
mkdir "$tmp/perm"
for f in a b c; do echo "$f" > "$tmp/perm/$f"; done
chmod 000 "$tmp/perm/b"
chmod 777 "$tmp"
set +e
as_user "$pc" "$tmp/perm" "$tmp/perm-out" > /dev/null 2> "$tmp/err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "unreadable file: exit $rc, not 1"
grep -q "perm/b" "$tmp/err" || fail "unreadable file not named: $(cat "$tmp/err")"
[ -f "$tmp/perm-out/a" ] && [ -f "$tmp/perm-out/c" ] && [ ! -e "$tmp/perm-out/b" ] ||
  fail "the readable files were not all copied"
[ -z "$(find "$tmp/perm-out" -name '.pcopy-*')" ] || fail "temporary file left"

# An unwritable DST: every file fails, nothing is left behind.
mkdir "$tmp/ro"
chmod 555 "$tmp/ro"
chmod 644 "$tmp/perm/b"
set +e
as_user "$pc" -q "$tmp/perm" "$tmp/ro" 2> "$tmp/err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "unwritable DST: exit $rc, not 1"
[ -z "$(ls -A "$tmp/ro")" ] || fail "unwritable DST has files"
chmod 755 "$tmp"

# Usage errors: exit 2.
usage_err() {
  set +e
  "$@" > /dev/null 2> "$tmp/err"
  rc=$?
  set -e
  [ $rc -eq 2 ] || fail "$*: exit $rc, not 2"
  [ -s "$tmp/err" ] || fail "$*: no message"
}
usage_err "$pc"
usage_err "$pc" "$src"
usage_err "$pc" "$tmp/missing" "$tmp/x"
usage_err "$pc" "$src/one" "$tmp/x"
usage_err "$pc" "$src" "$src/one"
# DST inside SRC (-r) or SRC itself: refused before anything is written;
# without the check the copy walks into its own output, deeper each time.
usage_err "$pc" -r "$src" "$src/inner"
grep -q "inside SRC" "$tmp/err" || fail "DST inside SRC not explained"
[ ! -e "$src/inner" ] || fail "DST inside SRC was created"
usage_err "$pc" -r "$src" "$src/inner/"
[ ! -e "$src/inner" ] || fail "DST inside SRC (trailing slash) was created"
usage_err "$pc" -r "$src" "$src/inner//"
ln -s "$src" "$tmp/srclink"
usage_err "$pc" -r "$tmp/srclink" "$src/inner"
[ ! -e "$src/inner" ] || fail "DST inside SRC (through a link) was created"
usage_err "$pc" "$src" "$src/."
grep -q "same folder" "$tmp/err" || fail "DST = SRC not explained"
# The same folder under a name no path relates to it (a bind mount, in a
# mount namespace of our own where the system allows one).
mkdir "$tmp/bind"
if unshare -rm sh -c "mount --bind '$src' '$tmp/bind'" 2>/dev/null; then
  set +e
  unshare -rm sh -c "mount --bind '$src' '$tmp/bind' &&
    exec '$pc' '$src' '$tmp/bind'" > /dev/null 2> "$tmp/err"
  rc=$?
  set -e
  [ $rc -eq 2 ] || fail "DST bind-mounted on SRC: exit $rc, not 2"
  grep -q "same folder" "$tmp/err" || fail "DST bind-mounted on SRC not explained"
else
  echo "check_pcopy: no mount namespace here; the bind-mount case is not run"
fi
usage_err "$pc" -j 0 "$src" "$tmp/x"
usage_err "$pc" -j many "$src" "$tmp/x"
usage_err "$pc" --bogus "$src" "$tmp/x"
usage_err "$pc" "$src" "$tmp/x" extra
grep -q "extra\|too many" "$tmp/err" || fail "extra argument not explained"
"$pc" --help | grep -q -- --processes || fail "--help"
"$pc" --version | grep -q cfutures || fail "--version"

# On a terminal (script(1) gives it one), a progress line on stderr; none
# when stderr is not a terminal (every run above), none with -q.
if command -v script > /dev/null 2>&1; then
  script -qec "\"$pc\" \"$src/many\" \"$tmp/tty\"" /dev/null > "$tmp/tty.out" 2>&1 || true
  grep -q "files, .* of .*/s, ETA" "$tmp/tty.out" || fail "no progress line on a terminal"
  script -qec "\"$pc\" -q \"$src/many\" \"$tmp/tty-q\"" /dev/null > "$tmp/tty.out" 2>&1 || true
  ! grep -q "ETA" "$tmp/tty.out" || fail "progress line despite -q"
fi
grep -q "ETA" "$tmp/err" && fail "progress line when stderr is not a terminal"

# Ctrl-C: exit 130 (or 0 if it finished first); whatever is in DST is
# complete, and no temporary file is left.
"$pc" -q -r -j 1 "$src" "$tmp/int" &
pid=$!
sleep 0.05
kill -INT $pid 2>/dev/null || true
set +e
wait $pid
rc=$?
set -e
[ $rc -eq 130 ] || [ $rc -eq 0 ] || fail "interrupted: exit $rc"
[ -z "$(find "$tmp/int" -name '.pcopy-*' 2>/dev/null)" ] || fail "interrupted: temporary files left"
(cd "$tmp/int" && find . -type f) | while IFS= read -r f; do
  cmp -s "$src/$f" "$tmp/int/$f" || echo "$f"
done > "$tmp/partial"
[ ! -s "$tmp/partial" ] || fail "interrupted: partial files: $(head -3 "$tmp/partial")"
echo "pcopy: all checks passed (interrupted run exited $rc)"
