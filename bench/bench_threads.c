/*
 * cfutures thread pool: per-task cost of submit + collect, of map, the idle
 * round trip, and memory per pending future.
 *   bench_threads [tasks=1000000] [roundtrips=20000]
 */
#include "bench_cf.h"

#include <malloc.h>
#include <string.h>

static cf_executor *pool(int workers) {
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = workers;
  cf_executor *ex;
  if (cf_thread_pool_create(&o, &ex) != CF_OK)
    exit(1);
  return ex;
}

/* Submit n empty tasks, then collect every result and release. */
static double per_task_futures(size_t n) {
  cf_executor *ex = pool(2);
  cf_future **fs = malloc(n * sizeof *fs);
  double t0 = bench_now();
  for (size_t i = 0; i < n; i++)
    if (cf_submit(ex, bench_empty, NULL, 0, &fs[i]) != CF_OK)
      exit(1);
  for (size_t i = 0; i < n; i++) {
    if (cf_future_result(fs[i], CF_FOREVER, NULL, NULL) != CF_OK)
      exit(1);
    cf_future_release(fs[i]);
  }
  double dt = bench_now() - t0;
  cf_executor_release(ex);
  free(fs);
  return dt * 1e9 / (double)n;
}

/* map over n 8-byte inputs (chunk size chosen by the library). */
static double per_task_map(size_t n) {
  cf_executor *ex = pool(2);
  double ns = bench_map_ns(ex, n, 0);
  cf_executor_release(ex);
  return ns;
}

/* One submit -> result at a time on an otherwise idle pool: median. */
static double roundtrip_us(size_t n) {
  cf_executor *ex = pool(2);
  double us = bench_roundtrip_us(ex, n);
  cf_executor_release(ex);
  return us;
}

/* Heap bytes per queued future (the one worker is kept busy meanwhile). */
static int hold(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)len;
  cf_future *gate;
  memcpy(&gate, in, sizeof gate);
  return cf_future_wait(gate, CF_FOREVER);
}

static double bytes_per_pending(size_t n) {
  cf_executor *ex = pool(1);
  cf_future *gate, *blocker;
  cf_future_create(&gate);
  cf_submit(ex, hold, &gate, sizeof gate, &blocker);
  cf_future **fs = malloc(n * sizeof *fs);
  struct mallinfo2 a = mallinfo2();
  for (size_t i = 0; i < n; i++)
    cf_submit(ex, bench_empty, NULL, 0, &fs[i]);
  struct mallinfo2 b = mallinfo2();
  cf_future_set_result(gate, NULL, 0);
  for (size_t i = 0; i < n; i++)
    cf_future_release(fs[i]);
  cf_future_release(blocker);
  cf_future_release(gate);
  cf_executor_release(ex);
  free(fs);
  return (double)(b.uordblks - a.uordblks) / (double)n;
}

int main(int argc, char **argv) {
  size_t n = bench_arg(argc, argv, 1, 1000000);
  size_t rt = bench_arg(argc, argv, 2, 20000);
  bench_report("cfutures", "futures_ns_per_task", per_task_futures(n), "ns");
  bench_report("cfutures", "map_ns_per_task", per_task_map(n), "ns");
  bench_report("cfutures", "roundtrip_us", roundtrip_us(rt), "us");
  bench_report("cfutures", "bytes_per_pending_future",
               bytes_per_pending(n / 10 ? n / 10 : 1), "B");
  return 0;
}
