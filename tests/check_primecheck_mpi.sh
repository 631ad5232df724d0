#!/bin/sh
# primecheck-mpi under mpiexec (configure --with-mpi=openmpi or mpich):
# `mpiexec -n 3 primecheck-mpi --mpi ARGS` must print byte for byte what
# the process pool's `primecheck ARGS` prints, for the seed list, numbers
# on the command line, standard input and ranges (one around 10^12), with
# several chunk sizes; and bad input must end the whole job at once: the
# root's message, its exit status, nothing on stdout, no worker rank left
# waiting.  Every job runs under timeout, so a hang fails the test.
# Skips (77) when the MPI backend is not built, unless CF_REQUIRE_MPI=1.
set -u
if [ -z "${MPIEXEC:-}" ]; then
  echo "SKIP: primecheck-mpi is not built (configure --with-mpi=openmpi or --with-mpi=mpich)"
  [ -n "${CF_REQUIRE_MPI:-}" ] && { echo "FAIL: CF_REQUIRE_MPI is set"; exit 1; }
  exit 77
fi
pc=${top_builddir:-.}/samples/primecheck
pcm=${top_builddir:-.}/samples/primecheck-mpi
for p in "$pc" "$pcm"; do
  [ -x "$p" ] || { echo "FAIL: $p is not built"; exit 1; }
done
# Open MPI refuses root without these, and more ranks than cores without
# --oversubscribe (MPIEXEC_FLAGS); MPICH needs neither.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
limit=${CF_TEST_TIMEOUT:-300}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
# mpiexec -n N primecheck-mpi ARGS, bounded in time (124: it hung).
# shellcheck disable=SC2086 # MPIEXEC_FLAGS is a list of words
mpirun_n() {
  n=$1
  shift
  timeout -k 10 "$limit" "$MPIEXEC" $MPIEXEC_FLAGS -n "$n" "$pcm" "$@"
}

# same STDIN ARGS...: primecheck ARGS against 3 ranks of primecheck-mpi
# --mpi ARGS, both reading STDIN.  NRANKS (default 3) and PCM_POOL
# (default --mpi) change the MPI side.
same() {
  in=$1
  shift
  timeout -k 10 "$limit" "$pc" "$@" < "$in" > "$tmp/want" 2> "$tmp/want.err"
  st=$?
  if [ "$st" -ne 0 ]; then
    echo "FAIL: primecheck $* exited $st: $(head -n 3 "$tmp/want.err")"
    fail=1
    return
  fi
  # shellcheck disable=SC2086 # PCM_POOL: none or one word
  mpirun_n "${NRANKS:-3}" ${PCM_POOL---mpi} "$@" < "$in" > "$tmp/got" 2> "$tmp/got.err"
  st=$?
  if [ "$st" -ne 0 ]; then
    echo "FAIL: -n ${NRANKS:-3} primecheck-mpi ${PCM_POOL---mpi} $* exited $st$( [ "$st" -eq 124 ] && echo ' (timed out: a hang)'):"
    head -n 5 "$tmp/got.err"
    fail=1
  elif ! cmp -s "$tmp/want" "$tmp/got"; then
    echo "FAIL: -n ${NRANKS:-3} primecheck-mpi ${PCM_POOL---mpi} $*: output differs from primecheck's ($(wc -l < "$tmp/want") lines wanted, $(wc -l < "$tmp/got") got)"
    cmp "$tmp/want" "$tmp/got" | head -n 1
    fail=1
  else
    echo "ok: -n ${NRANKS:-3} ${PCM_POOL---mpi} $* ($(wc -l < "$tmp/got") lines)"
  fi
}

echo "== $MPI_IMPL: the same output as primecheck"
T=1000000000000 # 10^12
same /dev/null
same /dev/null 112272535095293 112582705942171 112272535095293 \
  115280095190773 115797848077099 1099726899285419
same /dev/null 0 1 2 18446744073709551615 18446744073709551557
same /dev/null --range 1 20000
same /dev/null --range "$T" $((T + 20000))
for c in 1 7 1000 18446744073709551615; do
  same /dev/null -c "$c" --range $((T - 1000)) $((T + 1000))
done
same /dev/null -c 3 --method trial --range 1 3000
same /dev/null -j 1 --range "$T" $((T + 2000))
# Standard input (the root's: mpiexec gives it to rank 0), alone and
# between numbers; CR LF line ends.
seq $((T - 3000)) "$T" > "$tmp/in"
same "$tmp/in" -
same "$tmp/in" -c 5 -
printf '4\r\n5\r\n18446744073709551557\r\n' > "$tmp/crlf"
same "$tmp/crlf" 7 - 9
# One worker rank, and more ranks than CPUs.
NRANKS=2
same /dev/null --range "$T" $((T + 5000))
NRANKS=5
same /dev/null -c 50 --range "$T" $((T + 5000))
unset NRANKS
# Without --mpi, primecheck-mpi under mpiexec is primecheck on the root.
PCM_POOL=
same /dev/null --range "$T" $((T + 2000))
PCM_POOL=--threads
same /dev/null 5 6 7
unset PCM_POOL

echo "== $MPI_IMPL: bad input ends the job at once"
# fails_with STATUS WORDS NRANKS ARGS...: the job (NRANKS 0: no mpiexec)
# exits STATUS, well within the timeout, prints nothing on stdout and says
# WORDS on stderr.
fails_with() {
  want=$1 words=$2 n=$3
  shift 3
  t0=$(date +%s)
  if [ "$n" -eq 0 ]; then
    timeout -k 10 60 "$pcm" "$@" < "$tmp/bad.in" > "$tmp/bad.out" 2> "$tmp/bad.err"
  else
    # shellcheck disable=SC2086
    timeout -k 10 60 "$MPIEXEC" $MPIEXEC_FLAGS -n "$n" "$pcm" "$@" \
      < "$tmp/bad.in" > "$tmp/bad.out" 2> "$tmp/bad.err"
  fi
  st=$?
  t1=$(date +%s)
  what="-n $n primecheck-mpi $*"
  [ "$n" -eq 0 ] && what="primecheck-mpi $* (no mpiexec)"
  if [ "$st" -eq 124 ] || [ "$st" -eq 137 ]; then
    echo "FAIL: $what hung (status $st after $((t1 - t0)) s)"
    fail=1
  elif [ "$st" -ne "$want" ]; then
    echo "FAIL: $what exited $st, not $want"
    head -n 5 "$tmp/bad.err"
    fail=1
  elif [ -s "$tmp/bad.out" ]; then
    echo "FAIL: $what printed on stdout"
    fail=1
  elif ! grep -F -q -- "$words" "$tmp/bad.err"; then
    echo "FAIL: $what: stderr does not say \"$words\":"
    head -n 5 "$tmp/bad.err"
    fail=1
  else
    echo "ok: $what: status $st after $((t1 - t0)) s, \"$words\""
  fi
}
: > "$tmp/bad.in"
fails_with 2 "invalid number 'abc'" 3 --mpi 7 abc
fails_with 2 "invalid number '1e5'" 3 --mpi --range 1e5 9
fails_with 2 "A is larger than B" 3 --mpi --range 9 3
fails_with 2 "unknown method 'fast'" 3 --mpi --method fast 7
fails_with 2 "--mpi and --threads" 3 --mpi --threads 7
fails_with 2 "unrecognized option" 3 --mpi --bogus
printf '5\nfive\n' > "$tmp/bad.in"
fails_with 2 "standard input, line 2: invalid number 'five'" 3 --mpi -
: > "$tmp/bad.in"
# No worker rank: one rank under mpiexec, or no mpiexec at all.
fails_with 1 "cannot start the MPI pool: no worker rank" 1 --mpi 7
fails_with 1 "cannot start the MPI pool: no worker rank" 0 --mpi 7
# -h and -V end the root at once too, with status 0: the ranks go as well.
for opt in --help --version; do
  if mpirun_n 3 --mpi "$opt" > "$tmp/out" 2> "$tmp/err" &&
    grep -q primecheck-mpi "$tmp/out"; then
    echo "ok: -n 3 primecheck-mpi --mpi $opt"
  else
    echo "FAIL: -n 3 primecheck-mpi --mpi $opt (status $?)"
    head -n 5 "$tmp/err"
    fail=1
  fi
done
[ "$fail" -eq 0 ] && echo "primecheck-mpi ($MPI_IMPL): all checks passed"
exit $fail
