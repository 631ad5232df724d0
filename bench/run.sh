#!/bin/sh
# make bench: runs cfutures (thread and process pools), GLib's GThreadPool
# and Python's ThreadPoolExecutor / ProcessPoolExecutor interleaved, RUNS
# times each (default 5), and prints the median of each metric and
# cfutures' ratio against each peer.  With the MPI backend built
# (bench_mpi) and MPIEXEC set (make bench passes configure's MPIEXEC,
# MPIEXEC_FLAGS and MPI_IMPL), each run also takes bench_mpi and, when a
# python3 has mpi4py for that MPI, mpi4py.futures (py_mpi.py), both on 3
# ranks (1 root + 2 workers, as the process pool's 2 workers), and a second
# table sets them beside the process pools.  PYTHON_MPI names the Python
# to try for mpi4py (default: python3, then /usr/bin/python3).  The
# machines are small and shared: read the ratios, not single runs.
# Each run also takes bench_compose (continuations, when_all / when_any,
# completion-queue latency, each beside its peer in the same process); its
# figures go to a table of their own (medians, min and max of the runs),
# in $build/bench/results/compose.txt.
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
craw="$out/compose.txt"
: > "$craw"

# The MPI peers: bench_mpi under MPIEXEC, and a Python whose mpi4py is
# built on the same MPI (Debian's is Open MPI's), else none.
mpiexec=
if [ -n "${MPIEXEC:-}" ] && [ -x "$build/bench/bench_mpi" ]; then
  mpiexec=$MPIEXEC
fi
pympi=
if [ -n "$mpiexec" ]; then
  case ${MPI_IMPL:-} in
    openmpi) want="Open MPI" ;;
    mpich) want=MPICH ;;
    *) want= ;;
  esac
  for p in ${PYTHON_MPI:-python3 /usr/bin/python3}; do
    lib=$("$p" -c 'import mpi4py; mpi4py.rc.initialize = False
from mpi4py import MPI; print(MPI.Get_library_version().replace(chr(0), ""))' \
      2>/dev/null) ||
      continue
    case $lib in *"$want"*) pympi=$p && break ;; esac
  done
  [ -n "$pympi" ] ||
    echo "bench: no python3 with mpi4py for ${MPI_IMPL:-this MPI}: mpi4py's figures are left out" >&2
  # Open MPI refuses root without these (MPICH ignores them); mpi4py's
  # workers import py_mpi.py: no __pycache__ in the source tree.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export PYTHONDONTWRITEBYTECODE=1
fi
# A job that hangs fails the bench instead of holding it.
limit=
command -v timeout >/dev/null 2>&1 && limit="timeout -k 10 600"
# shellcheck disable=SC2086 # MPIEXEC_FLAGS and $limit are lists of words
mpirun3() { $limit "$mpiexec" ${MPIEXEC_FLAGS:-} -n 3 "$@"; }

i=1
while [ "$i" -le "$runs" ]; do
  "$build/bench/bench_threads" "$tasks" >> "$raw"
  if [ -x "$build/bench/bench_glib" ]; then
    "$build/bench/bench_glib" "$tasks" >> "$raw"
  fi
  "$build/bench/bench_procs" 5000 20000 "$tasks" 2 >> "$raw"
  "$build/bench/bench_compose" >> "$craw"
  if [ -n "$mpiexec" ]; then
    mpirun3 "$build/bench/bench_mpi" 5000 20000 "$tasks" 2 >> "$raw"
  fi
  if command -v python3 >/dev/null 2>&1; then
    python3 "$src/bench/py_threads.py" $((tasks / 10)) 2000 >> "$raw"
    python3 "$src/bench/py_procs.py" 500 5000 $((tasks / 5)) >> "$raw"
  fi
  if [ -n "$pympi" ]; then
    mpirun3 "$pympi" -m mpi4py.futures "$src/bench/py_mpi.py" \
      500 5000 $((tasks / 5)) 2 >> "$raw"
  fi
  i=$((i + 1))
done
# Medians per implementation and metric, then ratios peer / cfutures; with
# MPI figures, a second table: cfutures-mpi beside mpi4py and the two
# process pools (cfutures' and Python's, the same metrics, 2 workers), with
# ratios peer / cfutures-mpi (idle CPU is given as is: a ratio of two
# figures near zero means nothing).
sort -k1,1 -k2,2 -k3,3n "$raw" | awk '
  # the keys of a[] in s[1..n], sorted (mawk has no asort)
  function sorted(a, s,   k, n, i, j, t) {
    n = 0
    for (k in a) s[++n] = k
    for (i = 2; i <= n; i++)
      for (j = i; j > 1 && s[j - 1] > s[j]; j--) { t = s[j]; s[j] = s[j - 1]; s[j - 1] = t }
    return n
  }
  { key = $1 " " $2; v[key, ++n[key]] = $3; unit[key] = $4; impls[$1]; metrics[$2] }
  END {
    for (k in n) {
      c = n[k]; m = (c % 2) ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2
      med[k] = m
    }
    nm = sorted(metrics, ms)
    printf "%-26s %14s %14s %14s\n", "metric (median of runs)", "cfutures", "gthreadpool", "python"
    split("cfutures gthreadpool python", order, " ")
    for (i = 1; i <= nm; i++) {
      metric = ms[i]
      printf "%-26s", metric
      for (j = 1; j <= 3; j++) {
        k = order[j] " " metric
        if (k in med) printf " %11.3f %-2s", med[k], unit[k]; else printf " %14s", "-"
      }
      printf "\n"
    }
    printf "\nratios (peer / cfutures; > 1 means cfutures is better):\n"
    for (i = 1; i <= nm; i++) {
      metric = ms[i]
      base = "cfutures " metric
      if (!(base in med) || med[base] == 0) continue
      for (j = 2; j <= 3; j++) {
        k = order[j] " " metric
        if (k in med) printf "  %-26s %-12s %8.2fx\n", metric, order[j], med[k] / med[base]
      }
    }
    if (!("cfutures-mpi" in impls) && !("mpi4py" in impls)) exit
    split("cfutures-mpi mpi4py cfutures python", mo, " ")
    split("cfutures-mpi mpi4py cf-procpool py-procpool", ml, " ")
    printf "\nMPI, 2 worker ranks, beside the process pools of 2 workers (median of runs):\n"
    printf "%-31s %14s %14s %14s %14s\n", "metric", ml[1], ml[2], ml[3], ml[4]
    for (i = 1; i <= nm; i++) {
      metric = ms[i]
      if (!(("cfutures-mpi " metric) in med) && !(("mpi4py " metric) in med)) continue
      printf "%-31s", metric
      for (j = 1; j <= 4; j++) {
        k = mo[j] " " metric
        if (k in med) printf " %11.3f %-2s", med[k], unit[k]; else printf " %14s", "-"
      }
      printf "\n"
    }
    printf "\nratios (peer / cfutures-mpi; > 1 means cfutures-mpi is better):\n"
    for (i = 1; i <= nm; i++) {
      metric = ms[i]
      base = "cfutures-mpi " metric
      if (!(base in med) || med[base] == 0 || unit[base] == "%") continue
      for (j = 2; j <= 4; j++) {
        k = mo[j] " " metric
        if (k in med) printf "  %-31s %-12s %8.2fx\n", metric, ml[j], med[k] / med[base]
      }
    }
  }' | tee "$out/summary.txt"
echo "(runs: $runs; raw figures in $raw)"
# bench_compose: its lines "compose metric value unit" under '#' headings
# (the same in every run), in the program's order, with the median, min
# and max of each metric over the runs; ratio_* were taken within each run.
echo
awk '
  /^#/ { if (!($0 in seen)) { seen[$0]; item[++ni] = $0 } ; next }
  $1 == "compose" {
    k = $2
    if (!(k in cnt)) { item[++ni] = "=" k; unit[k] = $4 }
    v[k, ++cnt[k]] = $3 + 0
  }
  END {
    runs = 0
    for (k in cnt) if (cnt[k] > runs) runs = cnt[k]
    printf "composition (bench_compose), over %d runs:\n", runs
    printf "%-38s %11s %11s %11s\n", "metric", "median", "min", "max"
    for (i = 1; i <= ni; i++) {
      if (substr(item[i], 1, 1) != "=") { print item[i]; continue }
      k = substr(item[i], 2); c = cnt[k]
      for (a = 2; a <= c; a++)
        for (b = a; b > 1 && v[k, b - 1] > v[k, b]; b--) { t = v[k, b]; v[k, b] = v[k, b - 1]; v[k, b - 1] = t }
      m = (c % 2) ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2
      printf "  %-36s %9.3f %-2s%9.3f %-2s%9.3f %-2s\n", k, m, unit[k], v[k, 1], unit[k], v[k, c], unit[k]
    }
  }' "$craw" | tee "$out/compose_summary.txt"
echo "(raw figures of bench_compose in $craw)"
