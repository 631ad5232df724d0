/*
 * Another program for the worker ranks of test_mpi's "mismatch" job
 * (tests/test_mpi.sh): it serves from cf_mpi_main() like any rank, but it
 * is another build than the root's, which the pool must refuse.
 */
#include "cfutures-mpi.h"

#include <stdio.h>

int main(int argc, char **argv) {
  int rc = cf_mpi_main(&argc, &argv); /* never returns on a worker rank */
  fprintf(stderr, "test_mpi_other: run it as a worker rank (%s)\n",
          cf_err_name(rc));
  return 1;
}
