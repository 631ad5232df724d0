#!/bin/sh
# make bench, part 2: the samples against their peers, interleaved, RUNS
# times each (default 5); medians, ratios, and a gnuplot PNG.
#  - primecheck --method trial, 1 worker vs all cores (speedup), on Python's
#    documentation list and on 20,000 numbers from 10^12; the seed's Python
#    program on the same list.
#  - pcopy vs cp -r, cp -a, rsync -a and the seed's Python program, on four
#    trees (bench/make_trees.py: 2,000 x 64 KiB flat, 40 x 500 x 4 KiB,
#    50,000 mixed small files, 8 x 64 MiB), on tmpfs and on an ext4 loop
#    image (as root), DST removed and sync'ed, untimed, between runs.
#   usage: bench/samples.sh BUILDDIR SRCDIR
set -eu
build=$(cd "${1:-.}" && pwd)
src=$(cd "${2:-.}" && pwd)
runs=${RUNS:-5}
out="$build/bench/results"
mkdir -p "$out"
raw="$out/samples-raw.txt"
: > "$raw"
# The programs themselves, not libtool's wrapper scripts (a shell and sed
# each run: 10 ms that are not the program's).
real() {
  if [ -x "$build/samples/.libs/$1" ]; then
    echo "$build/samples/.libs/$1"
  else
    echo "$build/samples/$1"
  fi
}
export LD_LIBRARY_PATH="$build/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
pc=$(real primecheck)
cp_=$(real pcopy)
cores=$(nproc)
doc="112272535095293 112582705942171 112272535095293 115280095190773 115797848077099 1099726899285419"
# The trees, on tmpfs (/dev/shm: page cache only) and, when we may mount
# one (root, mkfs.ext4), on an ext4 loop image: a real filesystem, with a
# journal, its own O_TMPFILE and inode costs.
shm=/dev/shm/cfutures-bench.$$
ext4=""
img="$out/ext4.img"
mnt="$out/ext4.mnt"
cleanup() {
  rm -rf "$shm"
  if [ -n "$ext4" ]; then
    umount "$mnt" 2> /dev/null || true
    rm -f "$img"
  fi
}
trap cleanup EXIT
mkdir -p "$shm"
python3 "$src/bench/make_trees.py" "$shm/src"
fss=shm
if [ "$(id -u)" = 0 ] && command -v mkfs.ext4 > /dev/null 2>&1; then
  rm -f "$img"
  mkdir -p "$mnt"
  if truncate -s 4G "$img" && mkfs.ext4 -q -F "$img" && mount -o loop "$img" "$mnt"; then
    ext4="$mnt"
    cp -a "$shm/src" "$ext4/src"
    sync
    fss="shm ext4"
  else
    echo "bench: no ext4 loop image here; copies on tmpfs only" >&2
  fi
else
  echo "bench: not root (or no mkfs.ext4): copies on tmpfs only" >&2
fi
impls="pcopy cp_r cp_a python_seed"
if command -v rsync > /dev/null 2>&1; then impls="pcopy cp_r cp_a rsync_a python_seed"; fi

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
  for fs in $fss; do
    if [ "$fs" = shm ]; then base="$shm"; else base="$ext4"; fi
    for set in flat tree mixed large; do
      # The order turns each run, so no program always comes first after
      # a tree was made or deleted (writeback then still runs on ext4).
      order=$(echo $impls $impls | awk -v r="$r" '{ n = NF / 2; s = (r - 1) % n; for (i = 1; i <= n; i++) printf "%s ", $(s + i) }')
      for impl in $order; do
        rm -rf "$base/dst"
        sync
        from="$base/src/$set"
        case $impl in
          pcopy) s=$(t "$cp_" -q -r "$from" "$base/dst") ;;
          cp_r) s=$(t cp -r "$from" "$base/dst") ;;
          cp_a) s=$(t cp -a "$from" "$base/dst") ;;
          rsync_a) s=$(t rsync -a "$from/" "$base/dst") ;;
          python_seed) s=$(t python3 "$src/bench/seed_copy.py" "$from" "$base/dst") ;;
        esac
        n1=$(cd "$from" && find . -type f | wc -l)
        n2=$(cd "$base/dst" && find . -type f | wc -l)
        [ "$n1" = "$n2" ] || { echo "bench: $impl copied $n2 of $n1 files of $set" >&2; exit 1; }
        rec "$impl" "copy_${set}_${fs}_s" "$s"
      done
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
# The median of the per-run ratios peer / pcopy for metric $2: the k-th
# record of a key is from run k.
ratio() {
  awk -v peer="$1" -v k="$2" '
    $2 == k && $1 == "pcopy" { p[++np] = $3 }
    $2 == k && $1 == peer { o[++no] = $3 }
    END {
      n = np < no ? np : no
      for (i = 1; i <= n; i++) r[i] = o[i] / p[i]
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
      printf "%.2f", (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
    }' "$raw"
}
{
  echo "median of $runs runs; copies on tmpfs (/dev/shm); $cores cores"
  for w in doc range1e12; do
    j1=$(med primecheck_j1 ${w}_trial_s)
    jn=$(med primecheck_jN ${w}_trial_s)
    echo "primecheck trial, $w: 1 worker ${j1} s, $cores workers ${jn} s: speedup $(awk "BEGIN { printf \"%.2f\", $j1 / $jn }")x (target >= $(awk "BEGIN { print 0.95 * $cores }"))"
  done
  py=$(med python_seed doc_trial_s)
  echo "seed's Python program on the doc list: ${py} s, $(awk "BEGIN { printf \"%.1f\", $py / $(med primecheck_jN doc_trial_s) }")x slower than primecheck"
  for fs in $fss; do
    for set in flat tree mixed large; do
      k=copy_${set}_${fs}_s
      p=$(med pcopy "$k")
      line="copy $set on $fs: pcopy ${p} s"
      for impl in $impls; do
        [ "$impl" = pcopy ] && continue
        o=$(med "$impl" "$k")
        line="$line, $impl ${o} s ($(ratio "$impl" "$k")x)"
      done
      echo "$line"
    done
  done
  echo "(Nx: the median over runs of how many times longer the peer took than pcopy in the same run;"
  echo " the pairs run seconds apart, so a machine that slows down for a while slows both)"
} | tee "$out/samples-summary.txt"

if command -v gnuplot > /dev/null 2>&1; then
  # one row per tree and filesystem, one column per program
  {
    echo "case $impls"
    for fs in $fss; do
      for set in flat tree mixed large; do
        row="$set/$fs"
        for impl in $impls; do row="$row $(med "$impl" "copy_${set}_${fs}_s")"; done
        echo "$row"
      done
    done
  } > "$out/samples-copy.dat"
  awk '$2 ~ /_trial_s/ { print $1, $2, $3 }' "$out/samples-medians.txt" > "$out/samples.dat"
  ncol=$(echo "$impls" | wc -w)
  gnuplot <<GP
set terminal pngcairo size 1300,520 noenhanced
set output "$out/samples.png"
set multiplot layout 1,2 title "cfutures samples vs peers (median of $runs runs, $cores cores)"
set style data histograms
set style histogram clustered
set style fill solid 0.8
set ylabel "seconds (lower is better)"
set xtics rotate by -30
set key below
set yrange [0:*]
set title "pcopy vs cp -r, cp -a, rsync -a, the seed's Python (log scale)"
set logscale y
set yrange [0.01:*]
plot for [c=2:$((ncol + 1))] "$out/samples-copy.dat" using c:xtic(1) title columnheader(c)
unset logscale y
set yrange [0:*]
set title "primecheck --method trial, 1 vs $cores workers"
plot "< awk '\$2 ~ /range1e12/' $out/samples.dat" using 3:xtic(1) title "20,000 numbers from 10^12", \
     "< awk '\$2 ~ /doc_trial/ && \$1 != \"python_seed\"' $out/samples.dat" using 3 title "Python docs list"
unset multiplot
GP
  echo "plot: $out/samples.png"
fi
