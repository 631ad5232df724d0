#!/bin/sh
# pfetch against the local server tests/httpd (100 ms per request): 20
# URLs in every mode (threads, --processes, --serial, --loop), each line
# with status 200 and the right size, in input order; --serial takes at
# least 20 x 100 ms; every kind of failure (bad URLs, a refused port, a
# server that never answers, a body over --max-bytes, a 404, garbage, a
# short body) with its own words, the same lines in every mode; usage
# errors (exit 2); a failed write (exit 1); Ctrl-C in --loop.
# No check depends on the machine's speed: counts, statuses, sizes, exit
# codes and lower bounds on time only; every pfetch runs under timeout 60.
set -eu
build=$(cd "${top_builddir:-.}" && pwd)
pf="$build/samples/pfetch"
httpd="$build/tests/httpd"
[ -x "$httpd" ] || { echo "FAIL: no $httpd (make check builds it)" >&2; exit 1; }
command -v timeout > /dev/null || { echo "SKIP: no timeout(1)"; exit 77; }
tmp=$(mktemp -d)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2> /dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
fail() { echo "FAIL: $*" >&2; exit 1; }

# Starts an httpd with the given options; its port in $port.  It ends by
# itself after 300 s whatever happens to this script.
start_httpd() {
  pfile="$tmp/port.$#.$$.$(date +%s%N)"
  "$httpd" --port-file "$pfile" --max-seconds 300 "$@" &
  pids="$pids $!"
  last_pid=$!
  i=0
  while [ ! -s "$pfile" ]; do
    i=$((i + 1))
    [ $i -le 300 ] || fail "httpd did not write its port"
    kill -0 "$last_pid" 2> /dev/null || fail "httpd exited at start"
    sleep 0.1
  done
  port=$(cat "$pfile")
}
start_httpd --delay-ms 100 --log "$tmp/log"
H=http://127.0.0.1:$port

# Runs pfetch with a bound; its exit status in $rc, output in $tmp/out
# and $tmp/err.
run() {
  set +e
  timeout 60 "$pf" "$@" > "$tmp/out" 2> "$tmp/err"
  rc=$?
  set -e
  [ $rc -ne 124 ] || fail "pfetch $* did not end within 60 s"
}
# Milliseconds of the total line.
total_ms() { awk '/ requests, / { print int($7) }' "$tmp/out" | tail -1; }
# The lines without the times, for comparing modes.
strip() { sed -E -e 's/ [0-9.]+ ms//' -e 's/ \([0-9.]+ ms\)//' "$tmp/out" | grep -v ' requests, '; }

# ---- 20 URLs in every mode -------------------------------------------------
urls=""
i=0
while [ $i -lt 20 ]; do
  urls="$urls $H/bytes/$((i * 1000))"
  i=$((i + 1))
done
loop=yes
for m in "" --processes --serial --loop; do
  # shellcheck disable=SC2086
  run -j 20 $m $urls
  if [ "$m" = --loop ] && grep -q "no completion queues" "$tmp/err"; then
    echo "note: this libcfutures has no completion queues yet: --loop not tested"
    loop=""
    continue
  fi
  [ $rc -eq 0 ] || fail "mode '$m': exit $rc: $(cat "$tmp/err")"
  [ "$(grep -c '^ok ' "$tmp/out")" -eq 20 ] || fail "mode '$m': $(cat "$tmp/out")"
  # In input order, each with its own size.
  i=0
  grep '^ok ' "$tmp/out" | while read -r _ u st n _; do
    [ "$u" = "$H/bytes/$((i * 1000))" ] && [ "$st" = 200 ] && [ "$n" = $((i * 1000)) ] ||
      { echo "FAIL: mode '$m', line $((i + 1)): $u $st $n" >&2; exit 1; }
    i=$((i + 1))
  done
  grep -q '^20 requests, 20 ok, 0 failed, ' "$tmp/out" || fail "mode '$m': total: $(tail -1 "$tmp/out")"
  if [ -s "$tmp/err" ]; then fail "mode '$m' wrote to stderr: $(cat "$tmp/err")"; fi
  # One after the other, 20 requests of 100 ms cannot take less than 2 s.
  if [ "$m" = --serial ]; then
    [ "$(total_ms)" -ge 2000 ] || fail "--serial took $(total_ms) ms for 20 x 100 ms"
  fi
done
# IPv4 host name, stdin with a blank line and CR LF, -q.
printf '%s\n\n%s\r\n' "http://localhost:$port/" "$H/x" > "$tmp/in"
set +e
timeout 60 "$pf" -q - < "$tmp/in" > "$tmp/out" 2> "$tmp/err"
rc=$?
set -e
[ $rc -eq 0 ] || fail "stdin: exit $rc: $(cat "$tmp/err") $(cat "$tmp/out")"
[ "$(wc -l < "$tmp/out")" -eq 1 ] && grep -q '^2 requests, 2 ok' "$tmp/out" ||
  fail "stdin -q: $(cat "$tmp/out")"

# ---- failures: each with its words, the same in every mode ----------------
# A port nobody listens on: a server's, after it was stopped.
start_httpd
dead=$port
kill "$last_pid"
wait "$last_pid" 2> /dev/null || true
long=$(awk 'BEGIN { while (n++ < 9000) printf "a" }')
bad="ftp://x http:// http://host:99999/ http://host:0/ http://h:x/ https://127.0.0.1/
  http://[::1 http://u@h/ http://$long/ $H/nothing/$long
  http://127.0.0.1:$dead/ $H/hang $H/bytes/5000 $H/nolength/5000 $H/status/404
  $H/status/503 $H/garbage $H/short/100 $H/status/302 $H/lfcrlf"
for m in --serial "" --processes --loop; do
  [ "$m" = --loop ] && [ -z "$loop" ] && continue
  # shellcheck disable=SC2086
  run $m -j 4 --timeout 0.5 --max-bytes 4096 $bad
  [ $rc -eq 1 ] || fail "failures, mode '$m': exit $rc, not 1"
  strip > "$tmp/lines$m"
  [ "$(grep -c '^FAILED ' "$tmp/lines$m")" -eq 18 ] || fail "failures, mode '$m': $(cat "$tmp/out")"
  grep -q '^ok .*/status/302 302 ' "$tmp/lines$m" || fail "302 is not a success"
  grep -q '^ok .*/lfcrlf 200 3 bytes' "$tmp/lines$m" || fail "headers ending LF CR LF: $(grep lfcrlf "$tmp/out")"
  grep -q '^20 requests, 2 ok, 18 failed, ' "$tmp/out" || fail "failures total: $(tail -1 "$tmp/out")"
  for why in "ftp://x: bad URL: unsupported scheme 'ftp'" \
    "http://: bad URL: no host" \
    "http://host:99999/: bad URL: port 99999 is out of range" \
    "http://host:0/: bad URL: port 0 is out of range" \
    "http://h:x/: bad URL: port 'x' is not a number" \
    "https://127.0.0.1/: bad URL: https is not supported" \
    "bad URL: '\[' without '\]'" "bad URL: user names" \
    "bad URL: longer than 8192 bytes" \
    ":$dead/: connection refused" "/hang: timed out after 0.5 s" \
    "/bytes/5000: response too large" "/nolength/5000: response too large" \
    "/status/404: HTTP status 404" "/status/503: HTTP status 503" \
    "/garbage: malformed response" "/short/100: malformed response"; do
    grep -q -- "$why" "$tmp/lines$m" || fail "mode '$m': no line with \"$why\": $(cat "$tmp/out")"
  done
  # The URLs are shown, a long one cut.
  [ "$(awk '{ if (length > 600) n++ } END { print n + 0 }' "$tmp/out")" -eq 0 ] || fail "long URL not cut"
  cmp -s "$tmp/lines--serial" "$tmp/lines$m" ||
    fail "mode '$m' differs from --serial: $(diff "$tmp/lines--serial" "$tmp/lines$m")"
done
# A host that does not resolve (.invalid never does, RFC 2606), alone.
run --timeout 5 http://nonexistent.invalid/
[ $rc -eq 1 ] && grep -q "cannot resolve host 'nonexistent.invalid'" "$tmp/out" ||
  fail "DNS failure: exit $rc: $(cat "$tmp/out")"

# An IPv6 literal is a URL (httpd listens on IPv4 only, so it fails, with
# whatever this machine's IPv6 says, never as a bad URL).
run --timeout 5 "http://[::1]:$port/"
[ $rc -eq 1 ] || fail "[::1]: exit $rc"
if grep -q "bad URL" "$tmp/out"; then fail "[::1] is refused as a URL: $(cat "$tmp/out")"; fi

# ---- usage errors: exit 2 with a message ---------------------------------
usage_err() {
  run "$@"
  [ $rc -eq 2 ] || fail "pfetch $*: exit $rc, not 2"
  [ -s "$tmp/err" ] || fail "pfetch $*: no message"
  [ ! -s "$tmp/out" ] || fail "pfetch $*: printed to stdout"
}
usage_err
usage_err -j 0 "$H/"
usage_err -j 1025 "$H/"
usage_err -j x "$H/"
usage_err -j -3 "$H/"
usage_err --timeout 0 "$H/"
usage_err --timeout -1 "$H/"
usage_err --timeout 1e3 "$H/"
usage_err --timeout 99999999999999999999 "$H/"
usage_err --max-bytes 1k "$H/"
usage_err --serial --processes "$H/"
usage_err --bogus "$H/"
printf '\n\n' > "$tmp/in"
set +e
timeout 60 "$pf" - < "$tmp/in" > /dev/null 2> "$tmp/err"
rc=$?
set -e
[ $rc -eq 2 ] || fail "no URL on stdin: exit $rc"
run --help
[ $rc -eq 0 ] && grep -q -- --max-bytes "$tmp/out" || fail "--help"
run --version
[ $rc -eq 0 ] && grep -q cfutures "$tmp/out" || fail "--version"

# ---- a failed write: one message, exit 1 ---------------------------------
set +e
timeout 60 "$pf" "$H/" > /dev/full 2> "$tmp/err"
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "writing the output" "$tmp/err" || fail "/dev/full: exit $rc: $(cat "$tmp/err")"

# ---- Ctrl-C in --loop ----------------------------------------------------
# Two quick requests and eight of 30 s on 4 workers: once the quick ones
# were answered and slow ones started, SIGINT.  pfetch must end long
# before the slow ones would (they are asked to stop, the queued ones are
# cancelled), with 130, the quick ones shown as done and the total line.
if [ -n "$loop" ]; then
  : > "$tmp/log"
  slow=""
  for i in 1 2 3 4 5 6 7 8; do slow="$slow $H/delay/30000?$i"; done
  # shellcheck disable=SC2086
  timeout 60 "$pf" --loop -j 4 "$H/delay/0?a" "$H/delay/0?b" $slow > "$tmp/out" 2> "$tmp/err" &
  lp=$!
  i=0
  until [ "$(grep -c '^done /delay/0' "$tmp/log")" -eq 2 ] &&
    [ "$(grep -c '^start /delay/30000' "$tmp/log")" -ge 2 ]; do
    i=$((i + 1))
    [ $i -le 300 ] || fail "--loop: the requests did not reach the server: $(cat "$tmp/log")"
    sleep 0.1
  done
  sleep 0.5 # for pfetch to read the two answers
  start=$(date +%s)
  kill -INT "$lp"
  set +e
  wait "$lp"
  rc=$?
  set -e
  took=$(($(date +%s) - start))
  [ $rc -ne 124 ] || fail "--loop did not stop on SIGINT"
  [ $took -lt 25 ] || fail "--loop took $took s to stop"
  [ $rc -eq 130 ] || fail "--loop on SIGINT: exit $rc, not 130: $(cat "$tmp/err")"
  [ "$(grep -c '^ok .*/delay/0?[ab] 200 14 bytes' "$tmp/out")" -eq 2 ] ||
    fail "--loop on SIGINT: the completed requests are not shown: $(cat "$tmp/out")"
  [ "$(grep -c '^FAILED .*/delay/30000.*: stopped' "$tmp/out")" -eq 8 ] ||
    fail "--loop on SIGINT: the others: $(cat "$tmp/out")"
  grep -q '^10 requests, 2 ok, 8 failed, .*stopped by' "$tmp/out" ||
    fail "--loop on SIGINT: total: $(tail -1 "$tmp/out")"
fi
echo "pfetch: all checks passed"
