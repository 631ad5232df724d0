/*
 * cfutures process pool: the submit -> result round trip of an empty task,
 * and map throughput with chunksize 1 and 1000 (2 workers).
 *   bench_procs [roundtrips=5000] [map1=20000] [map1000=1000000]
 */
#include "bench_cf.h"

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

int main(int argc, char **argv) {
  bench_report("cfutures", "proc_roundtrip_us",
               roundtrip_us(bench_arg(argc, argv, 1, 5000)), "us");
  bench_report("cfutures", "proc_map_chunk1_ns_per_task",
               map_ns(bench_arg(argc, argv, 2, 20000), 1), "ns");
  bench_report("cfutures", "proc_map_chunk1000_ns_per_task",
               map_ns(bench_arg(argc, argv, 3, 1000000), 1000), "ns");
  return 0;
}
