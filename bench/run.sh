#!/bin/sh
# make bench: runs cfutures (thread and process pools), GLib's GThreadPool
# and Python's ThreadPoolExecutor / ProcessPoolExecutor interleaved, RUNS
# times each (default 5), and prints the median of each metric and
# cfutures' ratio against each peer.  The machines are small and shared:
# read the ratios, not single runs.
#   usage: bench/run.sh BUILDDIR SRCDIR
set -eu
build=${1:-.}
src=${2:-.}
runs=${RUNS:-5}
tasks=${TASKS:-1000000}
out="$build/bench/results"
mkdir -p "$out"
raw="$out/raw.txt"
: > "$raw"
i=1
while [ "$i" -le "$runs" ]; do
  "$build/bench/bench_threads" "$tasks" >> "$raw"
  if [ -x "$build/bench/bench_glib" ]; then
    "$build/bench/bench_glib" "$tasks" >> "$raw"
  fi
  "$build/bench/bench_procs" 5000 20000 "$tasks" >> "$raw"
  if command -v python3 >/dev/null 2>&1; then
    python3 "$src/bench/py_threads.py" $((tasks / 10)) 2000 >> "$raw"
    python3 "$src/bench/py_procs.py" 500 5000 $((tasks / 5)) >> "$raw"
  fi
  i=$((i + 1))
done
# Medians per implementation and metric, then ratios peer / cfutures.
sort -k1,1 -k2,2 -k3,3n "$raw" | awk '
  { key = $1 " " $2; v[key, ++n[key]] = $3; unit[key] = $4; impls[$1]; metrics[$2] }
  END {
    for (k in n) {
      c = n[k]; m = (c % 2) ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2
      med[k] = m
    }
    printf "%-26s %14s %14s %14s\n", "metric (median of runs)", "cfutures", "gthreadpool", "python"
    for (metric in metrics) {
      printf "%-26s", metric
      split("cfutures gthreadpool python", order, " ")
      for (j = 1; j <= 3; j++) {
        k = order[j] " " metric
        if (k in med) printf " %11.3f %-2s", med[k], unit[k]; else printf " %14s", "-"
      }
      printf "\n"
    }
    printf "\nratios (peer / cfutures; > 1 means cfutures is better):\n"
    for (metric in metrics) {
      base = "cfutures " metric
      if (!(base in med) || med[base] == 0) continue
      for (j = 2; j <= 3; j++) {
        k = order[j] " " metric
        if (k in med) printf "  %-26s %-12s %8.2fx\n", metric, order[j], med[k] / med[base]
      }
    }
  }' | tee "$out/summary.txt"
echo "(runs: $runs; raw figures in $raw)"
