/*
 * cfutures process pool: the submit -> result round trip of an empty task,
 * and map throughput with chunksize 1 and 1000 (2 workers).
 *   bench_procs [roundtrips=5000] [map1=20000] [map1000=1000000]
 */
#include "bench_util.h"

#include <cfutures.h>

static int empty(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)in;
  (void)len;
  return 0;
}

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
    cf_submit(ex, empty, NULL, 0, &f[i]);
  for (int i = 0; i < 2; i++) {
    cf_future_wait(f[i], CF_FOREVER);
    cf_future_release(f[i]);
  }
  return ex;
}

static double roundtrip_us(size_t n) {
  cf_executor *ex = pool();
  double *v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    cf_future *f;
    double t0 = bench_now();
    cf_submit(ex, empty, NULL, 0, &f);
    if (cf_future_result(f, CF_FOREVER, NULL, NULL) != CF_OK)
      exit(1);
    v[i] = (bench_now() - t0) * 1e6;
    cf_future_release(f);
  }
  double med = bench_median(v, n);
  free(v);
  cf_executor_release(ex);
  return med;
}

static double map_ns(size_t n, size_t chunk) {
  cf_executor *ex = pool();
  uint64_t *in = malloc(n * sizeof *in);
  for (size_t i = 0; i < n; i++)
    in[i] = i;
  cf_map_options o;
  cf_map_options_init(&o);
  o.chunksize = chunk;
  double t0 = bench_now();
  cf_map_iter *m;
  if (cf_map_array(ex, empty, in, sizeof *in, n, &o, &m) != CF_OK)
    exit(1);
  cf_map_item it;
  size_t got = 0;
  while (cf_map_next(m, &it) == CF_OK)
    got++;
  cf_map_destroy(m);
  double dt = bench_now() - t0;
  if (got != n)
    exit(1);
  free(in);
  cf_executor_release(ex);
  return dt * 1e9 / (double)n;
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
