#!/bin/sh
# pcopy: a tree with an empty file, a 1-byte file, a 64 MiB file, 2,000
# small files, names with spaces and non-ASCII letters, nested folders, a
# link, a FIFO and a sparse file -- compared byte for byte, by mode and by
# mtime, on threads and on processes; an unreadable file among readable
# ones; an unwritable DST; -f; usage errors; SIGINT, SIGTERM and SIGHUP
# cancel everything and leave nothing partial; files swapped between the
# scan and the copy; -a (hard links, xattrs); a tree deeper than the
# descriptor limit; workers that cannot start.
set -eu
pc="$(cd "${top_builddir:-.}" && pwd)/samples/pcopy"
# pcopy built with its test hooks: $PCOPY_TEST_HOOK runs before each
# "swap-*" file is opened (between the scan and the copy, without a race);
# $PCOPY_TEST_FAIL_INIT makes worker processes fail to start.
hooked="$(cd "${top_builddir:-.}" && pwd)/tests/pcopy-hooked"
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

# Where DST has no O_TMPFILE: named temporaries, renamed (the hooked build
# takes that path on request).  The same tree, byte for byte, and no
# temporary left.
for backend in "" --processes; do
  dst="$tmp/dst-named$backend"
  # shellcheck disable=SC2086
  PCOPY_TEST_NO_TMPFILE=1 "$hooked" -q -r $backend "$src" "$dst" 2> "$tmp/err" ||
    fail "named temporaries $backend: $(cat "$tmp/err")"
  listing "$dst" > "$tmp/b"
  listing "$src" > "$tmp/a"
  cmp -s "$tmp/a" "$tmp/b" || fail "named temporaries $backend: $(diff "$tmp/a" "$tmp/b" | head -5)"
  diff -r --no-dereference "$src" "$dst" 2>&1 | grep -v fifo > "$tmp/diff" || true
  [ ! -s "$tmp/diff" ] || fail "named temporaries $backend: $(head -3 "$tmp/diff")"
  [ -z "$(find "$dst" -name '.pcopy-*')" ] || fail "named temporaries $backend: left"
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
grep -q "writing DST '$tmp/ro/a'" "$tmp/err" || fail "DST side not named: $(cat "$tmp/err")"
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
  grep -q "files, .* copied, .*/s, ETA" "$tmp/tty.out" || fail "no progress line on a terminal"
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
int_rc=$rc

# ---- stop signals ------------------------------------------------------
# The first copy to start sends the signal (the hook), and every copy waits
# until its process has taken it: every copy must then stop, queued or
# running, whatever the window.  On
# both backends, for SIGINT, SIGTERM and SIGHUP: exit 128 + signal, no
# temporary left, and every file in DST complete.
mkdir "$tmp/sig"
i=0
while [ $i -lt 6 ]; do
  head -c $((8 << 20)) /dev/urandom > "$tmp/sig/swap-$i"
  i=$((i + 1))
done
mkdir "$tmp/sig/many"
i=0
while [ $i -lt 300 ]; do echo "$i" > "$tmp/sig/many/swap-$i"; i=$((i + 1)); done
cat > "$tmp/kill-parent" <<'SH'
#!/bin/sh
# $1 phase, $2 file, $3 the process copying it.  The first copy to start
# signals pcopy; every copy (that one too) then waits until its process has
# taken the stop (pcopy-hooked makes $SIG_ACK.PID), so no copy can run
# ahead of the signal however slow the machine, and none may complete.
[ "$1" = "${SIG_PHASE:-open}" ] || exit 0
if mkdir "$SIG_ONCE" 2>/dev/null; then
  kill -"$SIG_NAME" "$(cat "$SIG_PID")"
fi
i=0
while [ ! -e "$SIG_ACK.$3" ] && [ $i -lt 1200 ]; do
  sleep 0.05
  i=$((i + 1))
done
SH
chmod +x "$tmp/kill-parent"
complete_only() { # $1: DST; every file there is whole, no temporary is left
  [ -z "$(find "$1" -name '.pcopy-*')" ] || fail "$2: temporary files left: $(find "$1" -name '.pcopy-*' | head -3)"
  (cd "$1" && find . -type f) | while IFS= read -r f; do
    cmp -s "$tmp/sig/$f" "$1/$f" || echo "$f"
  done > "$tmp/partial"
  [ ! -s "$tmp/partial" ] || fail "$2: partial files: $(head -3 "$tmp/partial")"
}
for backend in "" --processes; do
  for sig in INT TERM HUP named; do
    # "named": SIGTERM once the source is open, where every copy then
    # makes a named temporary it must remove when it stops.
    phase=open named=""
    if [ $sig = named ]; then sig=TERM phase=copy named=1; fi
    d="$tmp/sig-out$backend-$sig$named"
    rm -rf "$tmp/once"
    set +e
    # shellcheck disable=SC2086
    rm -f "$tmp"/ack.*
    PCOPY_TEST_NO_TMPFILE=$named SIG_PHASE=$phase \
      PCOPY_TEST_HOOK="$tmp/kill-parent" SIG_ONCE="$tmp/once" SIG_NAME=$sig \
      SIG_PID="$tmp/sig.pid" SIG_ACK="$tmp/ack" PCOPY_TEST_STOP_ACK="$tmp/ack" \
      timeout 120 sh -c 'echo $$ > "$SIG_PID"; exec "$@"' \
      sh "$hooked" -q -r -j 2 $backend "$tmp/sig" "$d" 2> "$tmp/err"
    rc=$?
    set -e
    case $sig in INT) want=130 ;; TERM) want=143 ;; HUP) want=129 ;; esac
    [ $rc -eq $want ] || fail "SIG$sig $backend: exit $rc, not $want: $(cat "$tmp/err")"
    complete_only "$d" "SIG$sig $backend"
    # Every copy waited for the stop before it opened its file: none ends.
    n=$(find "$d" -type f | wc -l)
    [ "$n" -eq 0 ] || fail "SIG$sig $backend: $n files copied after the signal"
  done
done
# A real Ctrl-C in the middle of large files, no hook: the same promises.
mkdir "$tmp/big"
i=0
while [ $i -lt 4 ]; do head -c $((64 << 20)) /dev/urandom > "$tmp/big/f$i"; i=$((i + 1)); done
for sig in INT TERM HUP; do
  "$pc" -q -j 1 "$tmp/big" "$tmp/big-$sig" &
  pid=$!
  sleep 0.1
  kill -$sig $pid 2>/dev/null || true
  set +e
  wait $pid
  rc=$?
  set -e
  [ $rc -ne 1 ] && [ $rc -ne 2 ] || fail "SIG$sig mid-copy: exit $rc"
  [ -z "$(find "$tmp/big-$sig" -name '.pcopy-*')" ] || fail "SIG$sig mid-copy: temporary left"
  for f in "$tmp/big-$sig"/*; do
    [ -e "$f" ] || continue
    cmp -s "$f" "$tmp/big/$(basename "$f")" || fail "SIG$sig mid-copy: partial $f"
  done
done

# ---- a file changed between the scan and its copy --------------------------
# Swapped for a FIFO: no hang; for a link: the link's target is not copied.
# Both reported as changed and skipped; the other files are copied.
mkdir "$tmp/swap"
echo a > "$tmp/swap/swap-fifo"
echo b > "$tmp/swap/swap-link"
echo c > "$tmp/swap/plain"
head -c 100000 /dev/urandom > "$tmp/swap/swap-shrink"
echo secret > "$tmp/outside"
cat > "$tmp/swapper" <<SH
#!/bin/sh
case "\$1 \$2" in
"open "*swap-fifo) rm -f "\$2" && mkfifo "\$2" ;;
"open "*swap-link) rm -f "\$2" && ln -s "$tmp/outside" "\$2" ;;
"copy "*swap-shrink) truncate -s 1000 "\$2" ;; # under way: it shrinks
esac
SH
chmod +x "$tmp/swapper"
for backend in "" --processes; do
  d="$tmp/swap-out$backend"
  set +e
  # shellcheck disable=SC2086
  PCOPY_TEST_HOOK="$tmp/swapper" timeout 60 "$hooked" -q $backend "$tmp/swap" "$d" 2> "$tmp/err"
  rc=$?
  set -e
  # The file that shrank is the one failure: on the SRC side.
  [ $rc -eq 1 ] || fail "swapped files $backend: exit $rc: $(cat "$tmp/err")"
  grep -q "reading SRC '$tmp/swap/swap-shrink': the file shrank while it was copied" "$tmp/err" ||
    fail "shrinking file $backend: $(cat "$tmp/err")"
  [ ! -e "$d/swap-shrink" ] || fail "shrinking file $backend: copied"
  [ -z "$(find "$d" -name '.pcopy-*')" ] || fail "swap $backend: temporary left"
  grep -q "swap-fifo': changed since the scan (no longer a regular file)" "$tmp/err" ||
    fail "FIFO swap $backend not reported: $(cat "$tmp/err")"
  grep -q "swap-link': changed since the scan (now a symbolic link)" "$tmp/err" ||
    fail "link swap $backend not reported: $(cat "$tmp/err")"
  [ ! -e "$d/swap-fifo" ] && [ ! -e "$d/swap-link" ] && [ ! -L "$d/swap-link" ] ||
    fail "swapped files $backend were copied"
  cmp -s "$tmp/swap/plain" "$d/plain" || fail "swap $backend: the other file"
  # restore for the next backend
  rm -f "$tmp/swap/swap-fifo" "$tmp/swap/swap-link"
  head -c 100000 /dev/urandom > "$tmp/swap/swap-shrink"
  echo a > "$tmp/swap/swap-fifo"
  echo b > "$tmp/swap/swap-link"
done

# ---- errors name their side, and what DST already has ----------------------
mkdir "$tmp/dang" "$tmp/dang-out"
echo x > "$tmp/dang/l"
ln -s /nonexistent "$tmp/dang-out/l"
"$pc" -q "$tmp/dang" "$tmp/dang-out" 2> "$tmp/err" ||
  fail "a dangling link already in DST is a failure: $(cat "$tmp/err")"
grep -q "dang-out/l': exists" "$tmp/err" || fail "dangling link in DST not reported"
chmod 000 "$tmp/perm/b"
chmod 777 "$tmp"
set +e
as_user "$pc" -q "$tmp/perm" "$tmp/perm-side" 2> "$tmp/err"
set -e
chmod 755 "$tmp"
chmod 644 "$tmp/perm/b"
grep -q "reading SRC '$tmp/perm/b'" "$tmp/err" || fail "SRC side not named: $(cat "$tmp/err")"

# ---- a hostile name is shown escaped -------------------------------------
# An escape sequence and a newline in a file name: shown as \xHH, so the
# warning cannot clear the terminal or forge a second line.
mkdir "$tmp/esc"
mkfifo "$tmp/esc/$(printf 'bad\033[2J\nforged')"
"$pc" -q "$tmp/esc" "$tmp/esc-out" 2> "$tmp/err" || fail "hostile name: exit $?"
grep -q 'bad\\x1b\[2J\\x0aforged' "$tmp/err" || fail "hostile name not escaped: $(cat -v "$tmp/err")"
[ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "hostile name: $(cat -v "$tmp/err")"
! grep -q "$(printf '\033')" "$tmp/err" || fail "hostile name: an escape reached stderr"

# ---- -a: hard links stay links, extended attributes are kept -------------
mkdir -p "$tmp/arch/sub"
echo shared > "$tmp/arch/one"
ln "$tmp/arch/one" "$tmp/arch/sub/two"
ln "$tmp/arch/one" "$tmp/arch/three"
echo alone > "$tmp/arch/alone"
xattr_ok=0
if python3 -c "import os; os.setxattr('$tmp/arch/alone', 'user.pcopy', b'kept')" 2>/dev/null; then
  xattr_ok=1
fi
for backend in "" --processes; do
  d="$tmp/arch-out$backend"
  # shellcheck disable=SC2086
  "$pc" -a -q $backend "$tmp/arch" "$d" 2> "$tmp/err" || fail "-a $backend: $(cat "$tmp/err")"
  i1=$(stat -c %i "$d/one"); i2=$(stat -c %i "$d/sub/two"); i3=$(stat -c %i "$d/three")
  [ "$i1" = "$i2" ] && [ "$i1" = "$i3" ] || fail "-a $backend: hard links not kept"
  [ "$(stat -c %h "$d/one")" = 3 ] || fail "-a $backend: link count"
  [ "$(stat -c %i "$d/alone")" != "$i1" ] || fail "-a $backend: linked a lone file"
  cmp -s "$tmp/arch/one" "$d/sub/two" || fail "-a $backend: content"
  if [ $xattr_ok = 1 ]; then
    v=$(python3 -c "import os; print(os.getxattr('$d/alone', 'user.pcopy').decode())")
    [ "$v" = kept ] || fail "-a $backend: xattr not kept ($v)"
  fi
  # again with -f: the second names are replaced by links, atomically
  # shellcheck disable=SC2086
  "$pc" -a -f -q $backend "$tmp/arch" "$d" 2> "$tmp/err" || fail "-a -f $backend: $(cat "$tmp/err")"
  [ "$(stat -c %h "$d/one")" = 3 ] || fail "-a -f $backend: link count $(stat -c %h "$d/one")"
  [ "$(stat -c %i "$d/sub/two")" = "$(stat -c %i "$d/one")" ] || fail "-a -f $backend: not a link"
  [ -z "$(find "$d" -name '.pcopy-*')" ] || fail "-a -f $backend: temporary left"
  # without -a, a hard link is a copy of its own
  "$pc" -r -q $backend "$tmp/arch" "$d-r"
  [ "$(stat -c %i "$d-r/one")" != "$(stat -c %i "$d-r/three")" ] || fail "-r kept a hard link"
done
[ $xattr_ok = 1 ] || echo "check_pcopy: no user xattrs on $tmp; the xattr case is not run"
if command -v setfacl > /dev/null 2>&1 && setfacl -m u:65534:r "$tmp/arch/alone" 2>/dev/null; then
  setfacl -d -m u:65534:rx "$tmp/arch/sub" # a folder's default ACL
  "$pc" -a -q "$tmp/arch" "$tmp/arch-acl"
  for f in alone sub; do
    getfacl -c "$tmp/arch/$f" > "$tmp/acl.a" 2>/dev/null
    getfacl -c "$tmp/arch-acl/$f" > "$tmp/acl.b" 2>/dev/null
    cmp -s "$tmp/acl.a" "$tmp/acl.b" || fail "-a: ACL of $f not kept: $(diff "$tmp/acl.a" "$tmp/acl.b")"
  done
fi

# ---- a tree deeper than the descriptor limit -----------------------------
# 1,100 levels under ulimit -n 64: the walk holds no descriptor per level.
mkdir "$tmp/deep"
(
  cd "$tmp/deep"
  i=0
  while [ $i -lt 1100 ]; do mkdir d && cd d; i=$((i + 1)); done
  echo bottom > file
)
(ulimit -n 64 && "$pc" -q -r "$tmp/deep" "$tmp/deep-out") 2> "$tmp/err" ||
  fail "deep tree: $(head -3 "$tmp/err")"
bottom=$(cd "$tmp/deep-out" && find . -name file)
[ "$(echo "$bottom" | tr -cd / | wc -c)" -eq 1101 ] || fail "deep tree: file at the wrong depth"
[ "$(cat "$tmp/deep-out/$bottom")" = bottom ] || fail "deep tree: content"

# ---- workers that cannot start: every file is named ------------------------
mkdir "$tmp/nostart"
for f in p q r; do echo $f > "$tmp/nostart/$f"; done
set +e
PCOPY_TEST_FAIL_INIT=1 timeout 60 "$hooked" -q --processes "$tmp/nostart" "$tmp/nostart-out" 2> "$tmp/err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "workers that cannot start: exit $rc"
for f in p q r; do
  grep -q "nostart/$f': not copied: .*initializer" "$tmp/err" ||
    fail "workers that cannot start: $f not named with why: $(cat "$tmp/err")"
done

echo "pcopy: all checks passed (the Ctrl-C run exited $int_rc)"
