#!/bin/sh
# The MPI backend under mpiexec, with the MPI this build is for
# (configure --with-mpi=openmpi or mpich): the CUnit suite on 3 ranks, and
# one job each for the binary-mismatch refusal, the MPICommExecutor form,
# a rank killed in the middle of a task (the job must end, in bounded
# time), and, with CF_TEST_MPI_HUGE=1, one input over 2 GiB.  Every job
# runs under timeout: a hang fails the test instead of CI.
# Skips (77) when the backend is not built, unless CF_REQUIRE_MPI=1.
set -u
if [ -z "${MPIEXEC:-}" ]; then
  echo "SKIP: the MPI backend is not built (configure --with-mpi=openmpi or --with-mpi=mpich)"
  [ -n "${CF_REQUIRE_MPI:-}" ] && { echo "FAIL: CF_REQUIRE_MPI is set"; exit 1; }
  exit 77
fi
b=${top_builddir:-.}/tests
# Open MPI refuses root without these, and more ranks than cores without
# --oversubscribe (MPIEXEC_FLAGS); MPICH needs neither.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
limit=${CF_TEST_TIMEOUT:-900}
fail=0
# shellcheck disable=SC2086 # MPIEXEC_FLAGS is a list of words
run() { timeout -k 10 "$limit" "$MPIEXEC" $MPIEXEC_FLAGS "$@"; }

echo "== $MPI_IMPL: the suite, 3 ranks"
run -n 3 "$b/test_mpi" || { echo "FAIL: the suite"; fail=1; }

echo "== $MPI_IMPL: ranks of another build are refused"
run -n 1 "$b/test_mpi" mismatch : -n 2 "$b/test_mpi_other" ||
  { echo "FAIL: mismatch"; fail=1; }

echo "== $MPI_IMPL: cf_mpi_serve on a split communicator"
run -n 3 "$b/test_mpi" comm || { echo "FAIL: comm"; fail=1; }

# Started without mpiexec (a singleton), as mpi4py's MPIPoolExecutor
# is: Open MPI spawns (more processes than cores: oversubscribe), Debian's
# MPICH cannot, which the pool must report cleanly (exit 3: CF_ENOTSUP).
echo "== $MPI_IMPL: a singleton's pool spawns its workers"
OMPI_MCA_rmaps_base_oversubscribe=1 timeout -k 10 "$limit" "$b/test_mpi" spawn
st=$?
case "$MPI_IMPL:$st" in
openmpi:0 | mpich:3) echo "ok: spawn status $st" ;;
*) echo "FAIL: spawn: status $st"; fail=1 ;;
esac

echo "== $MPI_IMPL: a rank killed in the middle of a task ends the job"
t0=$(date +%s)
timeout -k 10 120 "$MPIEXEC" $MPIEXEC_FLAGS -n 3 "$b/test_mpi" kill >kill.out 2>&1
st=$?
t1=$(date +%s)
tail -n 5 kill.out
# The launcher's status names the signal (137 is 128 + SIGKILL); a hang
# is timeout's 124, or the grace kill after 120 s.
if [ "$st" -eq 0 ] || [ "$st" -eq 5 ] || [ "$st" -eq 124 ] ||
  [ $((t1 - t0)) -ge 120 ]; then
  echo "FAIL: kill: status $st after $((t1 - t0)) s (0 or 5: the root went on; 124 or 120 s: it hung)"
  fail=1
elif ! grep -qiE 'signal 9|signal: 9|killed' kill.out; then
  echo "FAIL: kill: the launcher ended the job (status $st) without saying a rank was killed"
  fail=1
else
  echo "ok: the launcher ended the job with status $st after $((t1 - t0)) s, saying why"
fi
rm -f kill.out

if [ "${CF_TEST_MPI_HUGE:-}" = 1 ]; then
  echo "== $MPI_IMPL: one input of 2 GiB + 1 MiB"
  run -n 2 "$b/test_mpi" huge || { echo "FAIL: huge"; fail=1; }
fi
exit $fail
