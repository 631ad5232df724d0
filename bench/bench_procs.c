/*
 * cfutures process pool: the submit -> result round trip of an empty task,
 * map throughput with chunksize 1 and 1000, and the CPU the idle pool
 * burns, in each worker and in the caller (2 workers).  bench_mpi measures
 * the same, under the same names, over 2 MPI ranks.
 *   bench_procs [roundtrips=5000] [map1=20000] [map1000=1000000]
 *               [idle seconds=2, 0 = not measured]
 */
#include "bench_cf.h"

#include <unistd.h>

static cf_executor *pool(void) {
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = 2;
  cf_executor *ex;
  if (cf_process_pool_create(&o, &ex) != CF_OK)
    exit(1);
  /* Start both workers before timing: Python's figures exclude that too. */
  cf_future *f[2];
  for (int i = 0; i < 2; i++)
    cf_submit(ex, bench_empty, NULL, 0, &f[i]);
  for (int i = 0; i < 2; i++) {
    cf_future_wait(f[i], CF_FOREVER);
    cf_future_release(f[i]);
  }
  return ex;
}

static double roundtrip_us(size_t n) {
  cf_executor *ex = pool();
  double us = bench_roundtrip_us(ex, n);
  cf_executor_release(ex);
  return us;
}

static double map_ns(size_t n, size_t chunk) {
  cf_executor *ex = pool();
  double ns = bench_map_ns(ex, n, chunk);
  cf_executor_release(ex);
  return ns;
}

static int sample(cf_task *t, const void *in, size_t len) {
  return bench_sample_body(t, in, len, (int64_t)getpid());
}

static void idle_cpu(double seconds) {
  cf_executor *ex = pool();
  double w[2], root;
  if (!bench_idle_cpu(ex, sample, 2, seconds, w, &root)) {
    fprintf(stderr, "bench_procs: the idle samples came from one worker\n");
    exit(1);
  }
  cf_executor_release(ex);
  bench_report("cfutures", "proc_idle_cpu_worker1_pct", w[0], "%");
  bench_report("cfutures", "proc_idle_cpu_worker2_pct", w[1], "%");
  bench_report("cfutures", "proc_idle_cpu_root_pct", root, "%");
}

int main(int argc, char **argv) {
  bench_report("cfutures", "proc_roundtrip_us",
               roundtrip_us(bench_arg(argc, argv, 1, 5000)), "us");
  bench_report("cfutures", "proc_map_chunk1_ns_per_task",
               map_ns(bench_arg(argc, argv, 2, 20000), 1), "ns");
  bench_report("cfutures", "proc_map_chunk1000_ns_per_task",
               map_ns(bench_arg(argc, argv, 3, 1000000), 1000), "ns");
  double idle = argc > 4 ? strtod(argv[4], NULL) : 2.0;
  if (idle > 0)
    idle_cpu(idle);
  return 0;
}
