#!/bin/sh
# make bench, part 3: the seed's table -- 20 blocking GET requests of
# 100 ms each (tests/httpd --delay-ms 100, on 127.0.0.1) one after the
# other, on processes, on threads -- measured for pfetch (--serial,
# --processes, threads, --loop; -j 20) and for the seed's Python program
# (bench/seed_fetch.py: serial, ProcessPoolExecutor, ThreadPoolExecutor,
# 20 workers), RUNS times each (default 5) in an order that turns each
# run; the medians in ms.  Each time is the whole program's (start-up
# included), taken here, not what it prints.
#   usage: bench/pfetch.sh BUILDDIR SRCDIR
set -eu
build=$(cd "${1:-.}" && pwd)
src=$(cd "${2:-.}" && pwd)
runs=${RUNS:-5}
n=${REQUESTS:-20}
out="$build/bench/results"
mkdir -p "$out"
raw="$out/pfetch-raw.txt"
: > "$raw"
# The program itself, not libtool's wrapper script (a shell and sed each
# run: milliseconds that are not pfetch's).
if [ -x "$build/samples/.libs/pfetch" ]; then
  pf="$build/samples/.libs/pfetch"
  export LD_LIBRARY_PATH="$build/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  pf="$build/samples/pfetch"
fi
httpd="$build/tests/httpd"
[ -x "$httpd" ] || { echo "bench: no $httpd (make tests/httpd)" >&2; exit 1; }
tmp=$(mktemp -d)
hp=""
cleanup() {
  [ -z "$hp" ] || kill "$hp" 2> /dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
"$httpd" --delay-ms 100 --port-file "$tmp/port" --max-seconds 3600 &
hp=$!
i=0
while [ ! -s "$tmp/port" ]; do
  i=$((i + 1))
  [ $i -le 100 ] || { echo "bench: httpd did not start" >&2; exit 1; }
  sleep 0.1
done
port=$(cat "$tmp/port")
urls=$(i=0; while [ $i -lt "$n" ]; do printf 'http://127.0.0.1:%s/ ' "$port"; i=$((i + 1)); done)

impls="pfetch_serial pfetch_processes pfetch_threads pfetch_loop"
if command -v python3 > /dev/null 2>&1; then
  impls="$impls python_serial python_processes python_threads"
else
  echo "bench: no python3: the seed's program is left out" >&2
fi
# pfetch --loop needs completion queues in the library.
if "$pf" --loop "http://127.0.0.1:$port/delay/0" 2>&1 | grep -q "no completion queues"; then
  echo "bench: this libcfutures has no completion queues: pfetch --loop left out" >&2
  impls=$(echo "$impls" | sed 's/pfetch_loop//')
fi

# Milliseconds a command takes; it must succeed.
t() {
  s=$(date +%s%N)
  "$@" > "$tmp/cmd.out" 2>&1 || { echo "bench: $* failed: $(tail -3 "$tmp/cmd.out")" >&2; exit 1; }
  e=$(date +%s%N)
  echo "$(( (e - s) / 1000 ))" | awk '{ printf "%.1f", $1 / 1e3 }'
}
r=1
while [ "$r" -le "$runs" ]; do
  # shellcheck disable=SC2086
  order=$(echo $impls $impls | awk -v r="$r" '{ n = NF / 2; s = (r - 1) % n; for (i = 1; i <= n; i++) printf "%s ", $(s + i) }')
  for impl in $order; do
    # shellcheck disable=SC2086
    case $impl in
      pfetch_serial) ms=$(t "$pf" -q --serial $urls) ;;
      pfetch_processes) ms=$(t "$pf" -q --processes -j "$n" $urls) ;;
      pfetch_threads) ms=$(t "$pf" -q -j "$n" $urls) ;;
      pfetch_loop) ms=$(t "$pf" -q --loop -j "$n" $urls) ;;
      python_serial) ms=$(t python3 "$src/bench/seed_fetch.py" serial "$n" $urls) ;;
      python_processes) ms=$(t python3 "$src/bench/seed_fetch.py" processes "$n" $urls) ;;
      python_threads) ms=$(t python3 "$src/bench/seed_fetch.py" threads "$n" $urls) ;;
    esac
    echo "$impl $ms" >> "$raw"
  done
  r=$((r + 1))
done

med() {
  awk -v k="$1" '$1 == k { v[++n] = $2 }
    END { if (!n) { print "-"; exit }
          for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
          printf "%.1f", (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }' "$raw"
}
{
  echo "$n GET requests of 100 ms each (tests/httpd on 127.0.0.1), median of $runs runs, ms, whole program"
  echo "(pools of $n workers; the seed used cpu_count() = $(nproc) here; --loop: a thread pool and a completion queue in epoll)"
  printf '%-12s %10s %10s %10s %10s\n' "" serial processes threads loop
  printf '%-12s %10s %10s %10s %10s\n' pfetch "$(med pfetch_serial)" "$(med pfetch_processes)" "$(med pfetch_threads)" "$(med pfetch_loop)"
  printf '%-12s %10s %10s %10s %10s\n' "python seed" "$(med python_serial)" "$(med python_processes)" "$(med python_threads)" -
} | tee "$out/pfetch-summary.txt"
