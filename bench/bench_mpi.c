/*
 * cfutures-mpi: what bench_procs measures on the process pool, over the
 * worker ranks of an MPI job, under the same metric names (implementation
 * "cfutures-mpi"), so run.sh shows the two side by side: the submit ->
 * result round trip of an empty task, map throughput with chunksize 1 and
 * 1000, and the CPU the idle pool burns on each worker rank and on the
 * root.  Meant for 1 root + 2 worker ranks, as the process pool's 2
 * workers:
 *   mpiexec -n 3 bench_mpi [roundtrips=5000] [map1=20000] [map1000=1000000]
 *                          [idle seconds=2, 0 = not measured]
 */
#include "bench_cf.h"

#include <cfutures-mpi.h>

static const char impl[] = "cfutures-mpi";

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_mpi: %s: %s: %s\n", what, cf_strerror(rc),
          cf_last_error_message());
  exit(1);
}

/* A pool over every worker rank, each of them warmed by a task first, as
 * bench_procs starts its workers before timing. */
static cf_executor *pool(int *nw) {
  cf_executor *ex;
  int rc = cf_mpi_pool_create(NULL, &ex);
  if (rc != CF_OK)
    die("cf_mpi_pool_create", rc);
  *nw = cf_executor_max_workers(ex);
  cf_future **f = malloc((size_t)*nw * sizeof *f);
  for (int i = 0; i < *nw; i++)
    if ((rc = cf_submit(ex, bench_empty, NULL, 0, &f[i])) != CF_OK)
      die("cf_submit", rc);
  for (int i = 0; i < *nw; i++) {
    cf_future_wait(f[i], CF_FOREVER);
    cf_future_release(f[i]);
  }
  free(f);
  return ex;
}

static double roundtrip_us(size_t n) {
  int nw;
  cf_executor *ex = pool(&nw);
  double us = bench_roundtrip_us(ex, n);
  cf_executor_release(ex);
  return us;
}

static double map_ns(size_t n, size_t chunk) {
  int nw;
  cf_executor *ex = pool(&nw);
  double ns = bench_map_ns(ex, n, chunk);
  cf_executor_release(ex);
  return ns;
}

/* The sampling task names its worker by rank in MPI_COMM_WORLD. */
static int sample(cf_task *t, const void *in, size_t len) {
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return bench_sample_body(t, in, len, rank);
}

static void idle_cpu(double seconds) {
  int nw;
  cf_executor *ex = pool(&nw);
  double *w = malloc((size_t)nw * sizeof *w), root;
  if (!bench_idle_cpu(ex, sample, nw, seconds, w, &root)) {
    fprintf(stderr, "bench_mpi: the idle samples did not come from %d ranks\n",
            nw);
    exit(1);
  }
  cf_executor_release(ex);
  /* worker<i>: the i-th worker rank by rank, so rank i in cf_mpi_main()'s
   * world, as bench_procs' worker<i> is its i-th worker. */
  for (int i = 0; i < nw; i++) {
    char metric[64];
    snprintf(metric, sizeof metric, "proc_idle_cpu_worker%d_pct", i + 1);
    bench_report(impl, metric, w[i], "%");
  }
  bench_report(impl, "proc_idle_cpu_root_pct", root, "%");
  free(w);
}

int main(int argc, char **argv) {
  int rc = cf_mpi_main(&argc, &argv); /* only the root goes past this */
  if (rc != CF_OK)
    die("cf_mpi_main", rc);
  int size;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 3)
    fprintf(stderr,
            "bench_mpi: %d ranks, so %d workers: the process pool's figures "
            "are for 2 (mpiexec -n 3)\n",
            size, size - 1);
  bench_report(impl, "proc_roundtrip_us",
               roundtrip_us(bench_arg(argc, argv, 1, 5000)), "us");
  bench_report(impl, "proc_map_chunk1_ns_per_task",
               map_ns(bench_arg(argc, argv, 2, 20000), 1), "ns");
  bench_report(impl, "proc_map_chunk1000_ns_per_task",
               map_ns(bench_arg(argc, argv, 3, 1000000), 1000), "ns");
  double idle = argc > 4 ? strtod(argv[4], NULL) : 2.0;
  if (idle > 0)
    idle_cpu(idle);
  return cf_mpi_finalize() == CF_OK ? 0 : 1;
}
