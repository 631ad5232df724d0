#!/bin/sh
# primecheck: the seed's output byte for byte, Python's documentation
# example with both methods and backends, --range against a sieve, edge
# values, and every kind of bad input (exit 2, the token named, no stdout).
set -eu
pc="${top_builddir:-.}/samples/primecheck"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$tmp/seed.expected" <<'OUT'
109999999 is prime: False
108376355 is prime: False
1276544678 is prime: False
123555677 is prime: False
234645542424 is prime: False
OUT
"$pc" > "$tmp/seed.out"
cmp "$tmp/seed.out" "$tmp/seed.expected" || fail "seed list output differs"
"$pc" --threads > "$tmp/seed.out"
cmp "$tmp/seed.out" "$tmp/seed.expected" || fail "seed list (threads) differs"

doc="112272535095293 112582705942171 112272535095293 115280095190773 115797848077099 1099726899285419"
printf '%s is prime: True\n' 112272535095293 112582705942171 112272535095293 \
  115280095190773 115797848077099 > "$tmp/doc.expected"
echo "1099726899285419 is prime: False" >> "$tmp/doc.expected"
for method in mr trial; do
  for backend in "" --threads; do
    # shellcheck disable=SC2086
    "$pc" --method "$method" $backend $doc > "$tmp/doc.out"
    cmp "$tmp/doc.out" "$tmp/doc.expected" || fail "doc example, $method $backend"
  done
done

# A huge --chunksize over three numbers: no overflow, and memory for three
# (regression: 2^58 crashed; 10^8 allocated 6 GB).  The address-space limit
# is left out under sanitizers, whose shadow memory needs terabytes.
printf '1 is prime: False\n2 is prime: True\n3 is prime: True\n' > "$tmp/three"
for c in 288230376151711744 100000000 18446744073709551615; do
  for backend in "" --threads; do
    case "${CFLAGS:-}" in
    *sanitize*) "$pc" $backend -c "$c" --range 1 3 > "$tmp/three.out" ;;
    *) (ulimit -v 1000000 && "$pc" $backend -c "$c" --range 1 3) > "$tmp/three.out" ;;
    esac
    cmp "$tmp/three.out" "$tmp/three" || fail "-c $c $backend --range 1 3"
  done
done

# --range 1 100000 against a sieve of Eratosthenes.
awk 'BEGIN { n = 100000; for (i = 2; i * i <= n; i++) if (!c[i]) for (j = i * i; j <= n; j += i) c[j] = 1;
             for (i = 1; i <= n; i++) printf "%d is prime: %s\n", i, (i >= 2 && !c[i]) ? "True" : "False" }' \
  > "$tmp/sieve"
"$pc" --range 1 100000 > "$tmp/range.out"
cmp "$tmp/range.out" "$tmp/sieve" || fail "--range 1 100000 disagrees with a sieve"
"$pc" --range 1 3000 --method trial --chunksize 7 -j 3 > "$tmp/range.out"
head -n 3000 "$tmp/sieve" | cmp - "$tmp/range.out" || fail "--range with trial"

# Edges: 0, 1, 2, the largest 64-bit number and the largest 64-bit prime;
# standard input.
printf '0\n1\n2\n18446744073709551615\n18446744073709551557\n' | "$pc" - > "$tmp/edge.out"
printf '%s\n' "0 is prime: False" "1 is prime: False" "2 is prime: True" \
  "18446744073709551615 is prime: False" "18446744073709551557 is prime: True" |
  cmp - "$tmp/edge.out" || fail "edge values"

# Bad input: exit 2, the offending token in the message, nothing on stdout.
bad() {
  token=$1
  shift
  set +e
  "$@" > "$tmp/bad.out" 2> "$tmp/bad.err"
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "$* exited $rc, not 2"
  [ ! -s "$tmp/bad.out" ] || fail "$* printed to stdout"
  grep -F -q -- "'$token'" "$tmp/bad.err" || fail "$*: message does not name '$token'"
}
bad abc "$pc" 7 abc
bad -5 "$pc" 7 -- -5
bad +5 "$pc" +5
bad 1e5 "$pc" 1e5
bad 18446744073709551616 "$pc" 18446744073709551616
bad "" "$pc" 7 ""
bad " 12" "$pc" " 12"
bad 0x1f "$pc" 0x1f
bad 3.5 "$pc" 3.5
bad fast "$pc" --method fast 7
bad 0 "$pc" -j 0 7
printf '5\nfive\n' > "$tmp/in"
bad five sh -c "\"$pc\" - < \"$tmp/in\""
grep -q 'standard input, line 2' "$tmp/bad.err" || fail "no line number for stdin"
# A NUL byte inside a line is not ignored: the line is refused, shown escaped.
printf '5\n12\0000\n' > "$tmp/in"
bad '12\x000' sh -c "\"$pc\" - < \"$tmp/in\""
printf '\n' > "$tmp/in"
bad '' sh -c "\"$pc\" - < \"$tmp/in\""
# Windows line ends are accepted.
printf '2\r\n4\r\n' | "$pc" - > "$tmp/crlf.out"
printf '%s\n' "2 is prime: True" "4 is prime: False" | cmp - "$tmp/crlf.out" ||
  fail "CR LF input"
set +e
"$pc" --range 9 > /dev/null 2>&1; [ $? -eq 2 ] || fail "--range with one number"
"$pc" --range 9 3 > /dev/null 2>&1; [ $? -eq 2 ] || fail "--range A > B"
"$pc" --bogus > /dev/null 2>&1; [ $? -eq 2 ] || fail "unknown option"
set -e
"$pc" --help | grep -q -- --range || fail "--help"
"$pc" --version | grep -q cfutures || fail "--version"

# Output errors stop the work at once: into /dev/full, and into a closed
# pipe with SIGPIPE ignored.  The range (10^15 numbers) could never finish,
# so only a stop on the first failed write ends it before the timeout:
# exit 1 and one line that names the cause.
for backend in "" --threads; do
  for sink in full pipe; do
    set +e
    if [ $sink = full ]; then
      # shellcheck disable=SC2086
      timeout 120 "$pc" $backend --range 1 1000000000000000 > /dev/full 2> "$tmp/err"
      rc=$?
    else
      # shellcheck disable=SC2086
      ERR="$tmp/err" RC="$tmp/rc" sh -c \
        'trap "" PIPE; { timeout 120 "$@" 2> "$ERR"; echo $? > "$RC"; } | true' \
        sh "$pc" $backend --range 1 1000000000000000
      rc=$(cat "$tmp/rc")
    fi
    set -e
    [ "$rc" -eq 1 ] || fail "output to $sink $backend: exit $rc, not 1"
    [ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "output to $sink $backend: $(cat "$tmp/err")"
    grep -q "writing the output: " "$tmp/err" || fail "output to $sink $backend: $(cat "$tmp/err")"
  done
done
echo "primecheck: all checks passed"
