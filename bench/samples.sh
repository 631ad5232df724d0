#!/bin/sh
# make bench, part 2: the samples against their peers, interleaved, RUNS
# times each (default 5); medians, ratios, and a gnuplot PNG.
#  - primecheck --method trial, 1 worker vs all cores (speedup), on Python's
#    documentation list and on 20,000 numbers from 10^12; the seed's Python
#    program on the same list.
#  - pcopy vs cp -r vs the seed's Python program, on 2,000 x 64 KiB and on
#    8 x 64 MiB files, on tmpfs (/dev/shm: page cache only, no disk), DST
#    removed and sync'ed, untimed, between runs.
#   usage: bench/samples.sh BUILDDIR SRCDIR
set -eu
build=$(cd "${1:-.}" && pwd)
src=$(cd "${2:-.}" && pwd)
runs=${RUNS:-5}
out="$build/bench/results"
mkdir -p "$out"
raw="$out/samples-raw.txt"
: > "$raw"
pc="$build/samples/primecheck"
cp_="$build/samples/pcopy"
cores=$(nproc)
doc="112272535095293 112582705942171 112272535095293 115280095190773 115797848077099 1099726899285419"
fs=/dev/shm/cfutures-bench.$$
trap 'rm -rf "$fs"' EXIT
mkdir -p "$fs/small" "$fs/large"
i=0
while [ $i -lt 2000 ]; do head -c 65536 /dev/urandom > "$fs/small/f$i"; i=$((i + 1)); done
i=0
while [ $i -lt 8 ]; do head -c $((64 << 20)) /dev/urandom > "$fs/large/f$i"; i=$((i + 1)); done

# seconds a command takes (its output discarded)
t() {
  s=$(date +%s%N)
  "$@" > /dev/null
  e=$(date +%s%N)
  echo "$(( (e - s) / 1000 ))" | awk '{ printf "%.4f", $1 / 1e6 }'
}
rec() { echo "$1 $2 $3" >> "$raw"; }

r=1
while [ "$r" -le "$runs" ]; do
  # shellcheck disable=SC2086
  rec primecheck_j1 doc_trial_s "$(t "$pc" --method trial -j 1 $doc)"
  # shellcheck disable=SC2086
  rec primecheck_jN doc_trial_s "$(t "$pc" --method trial -j "$cores" $doc)"
  # shellcheck disable=SC2086
  rec python_seed doc_trial_s "$(t python3 "$src/bench/seed_primes.py" $doc)"
  rec primecheck_j1 range1e12_trial_s "$(t "$pc" --method trial -j 1 --range 1000000000000 1000000019999)"
  rec primecheck_jN range1e12_trial_s "$(t "$pc" --method trial -j "$cores" --range 1000000000000 1000000019999)"
  for set in small large; do
    for impl in pcopy cp python_seed; do
      rm -rf "$fs/dst"
      sync
      case $impl in
        pcopy) s=$(t "$cp_" -q "$fs/$set" "$fs/dst") ;;
        cp) s=$(t cp -r "$fs/$set" "$fs/dst") ;;
        python_seed) s=$(t python3 "$src/bench/seed_copy.py" "$fs/$set" "$fs/dst") ;;
      esac
      cmp -s "$fs/$set/f1" "$fs/dst/f1" || { echo "bench: $impl copied wrong" >&2; exit 1; }
      rec "$impl" "copy_${set}_s" "$s"
    done
  done
  r=$((r + 1))
done

# medians, then the derived figures
sort -k1,1 -k2,2 -k3,3n "$raw" | awk '
  { k = $1 " " $2; v[k, ++n[k]] = $3 }
  END { for (k in n) { c = n[k]; m = (c % 2) ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2; print k, m } }' |
  sort > "$out/samples-medians.txt"
med() { awk -v k="$1 $2" '$1 " " $2 == k { print $3 }' "$out/samples-medians.txt"; }
{
  echo "median of $runs runs; copies on tmpfs (/dev/shm); $cores cores"
  for w in doc range1e12; do
    j1=$(med primecheck_j1 ${w}_trial_s)
    jn=$(med primecheck_jN ${w}_trial_s)
    echo "primecheck trial, $w: 1 worker ${j1} s, $cores workers ${jn} s: speedup $(awk "BEGIN { printf \"%.2f\", $j1 / $jn }")x (target >= $(awk "BEGIN { print 0.95 * $cores }"))"
  done
  py=$(med python_seed doc_trial_s)
  echo "seed's Python program on the doc list: ${py} s, $(awk "BEGIN { printf \"%.1f\", $py / $(med primecheck_jN doc_trial_s) }")x slower than primecheck"
  for set in small large; do
    p=$(med pcopy copy_${set}_s); c=$(med cp copy_${set}_s); y=$(med python_seed copy_${set}_s)
    if [ $set = small ]; then n=2000; mb=125; else n=8; mb=512; fi
    echo "copy $set ($n files, $mb MiB): pcopy ${p} s ($(awk "BEGIN { printf \"%.0f files/s, %.0f MB/s\", $n / $p, $mb * 1.048576 / $p }")), cp -r ${c} s, Python ${y} s: $(awk "BEGIN { printf \"%.2fx cp -r, %.2fx Python\", $c / $p, $y / $p }")"
  done
} | tee "$out/samples-summary.txt"

if command -v gnuplot > /dev/null 2>&1; then
  awk '$1 != "" { print $1, $2, $3 }' "$out/samples-medians.txt" > "$out/samples.dat"
  gnuplot <<GP
set terminal pngcairo size 1100,500 noenhanced
set output "$out/samples.png"
set multiplot layout 1,2 title "cfutures samples vs peers (median of $runs runs, $cores cores, copies on tmpfs)"
set style data histograms
set style histogram clustered
set style fill solid 0.8
set ylabel "seconds (lower is better)"
set xtics rotate by -20
set key below
set yrange [0:*]
set title "pcopy vs cp -r vs the seed's Python"
plot "< awk '\$2 ~ /copy_small/' $out/samples.dat" using 3:xtic(1) title "2000 x 64 KiB", \
     "< awk '\$2 ~ /copy_large/' $out/samples.dat" using 3 title "8 x 64 MiB"
set title "primecheck --method trial, 1 vs $cores workers"
plot "< awk '\$2 ~ /range1e12/' $out/samples.dat" using 3:xtic(1) title "20,000 numbers from 10^12", \
     "< awk '\$2 ~ /doc_trial/ && \$1 != \"python_seed\"' $out/samples.dat" using 3 title "Python docs list"
unset multiplot
GP
  echo "plot: $out/samples.png"
fi
