/*
 * cfutures thread pool: per-task cost of submit + collect, of map, the idle
 * round trip, memory per pending future, and a recursive fork-join (each
 * task submits two children and waits for both, depth 16, empty leaves).
 *   bench_threads [tasks=1000000] [roundtrips=20000] [forkjoin depth=16]
 */
#include "bench_cf.h"

#include <malloc.h>
#include <pthread.h>
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

/* Heap bytes per queued future (the one worker is kept busy meanwhile, on
 * a condition variable: a wait on a future would let the pool start a
 * compensating worker, which would run the queue). */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int hold_open;

static int hold(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)in;
  (void)len;
  pthread_mutex_lock(&hold_mu);
  while (!hold_open)
    pthread_cond_wait(&hold_cv, &hold_mu);
  pthread_mutex_unlock(&hold_mu);
  return 0;
}

static double bytes_per_pending(size_t n) {
  cf_executor *ex = pool(1);
  cf_future *blocker;
  hold_open = 0;
  cf_submit(ex, hold, NULL, 0, &blocker);
  cf_future **fs = malloc(n * sizeof *fs);
  struct mallinfo2 a = mallinfo2();
  for (size_t i = 0; i < n; i++)
    cf_submit(ex, bench_empty, NULL, 0, &fs[i]);
  struct mallinfo2 b = mallinfo2();
  pthread_mutex_lock(&hold_mu);
  hold_open = 1;
  pthread_cond_broadcast(&hold_cv);
  pthread_mutex_unlock(&hold_mu);
  for (size_t i = 0; i < n; i++)
    cf_future_release(fs[i]);
  cf_future_release(blocker);
  cf_executor_release(ex);
  free(fs);
  return (double)(b.uordblks - a.uordblks) / (double)n;
}

/* The fork-join: a task of depth d > 0 submits two of depth d - 1 and
 * waits for both without deadline. */
typedef struct fj {
  cf_executor *ex;
  int depth;
} fj;

static int fork_join(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)len;
  fj a;
  memcpy(&a, in, sizeof a);
  if (a.depth == 0)
    return 0;
  fj c = {a.ex, a.depth - 1};
  cf_future *f[2];
  for (int i = 0; i < 2; i++)
    if (cf_submit(a.ex, fork_join, &c, sizeof c, &f[i]) != CF_OK)
      return 1;
  int rc = 0;
  for (int i = 0; i < 2; i++) {
    rc |= cf_future_result(f[i], CF_FOREVER, NULL, NULL);
    cf_future_release(f[i]);
  }
  return rc;
}

/* ns per task of the whole tree (2^(depth+1) - 1 tasks), on 2 workers. */
static double fork_join_ns(int depth, size_t *peak) {
  cf_executor *ex = pool(2);
  fj a = {ex, depth};
  cf_future *f;
  double t0 = bench_now();
  if (cf_submit(ex, fork_join, &a, sizeof a, &f) != CF_OK ||
      cf_future_result(f, CF_FOREVER, NULL, NULL) != CF_OK)
    exit(1);
  double dt = bench_now() - t0;
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  *peak = st.workers;
  cf_future_release(f);
  cf_executor_release(ex);
  return dt * 1e9 / (double)((2ull << depth) - 1);
}

int main(int argc, char **argv) {
  size_t n = bench_arg(argc, argv, 1, 1000000);
  size_t rt = bench_arg(argc, argv, 2, 20000);
  bench_report("cfutures", "futures_ns_per_task", per_task_futures(n), "ns");
  bench_report("cfutures", "map_ns_per_task", per_task_map(n), "ns");
  bench_report("cfutures", "roundtrip_us", roundtrip_us(rt), "us");
  bench_report("cfutures", "bytes_per_pending_future",
               bytes_per_pending(n / 10 ? n / 10 : 1), "B");
  size_t peak = 0;
  int depth = (int)bench_arg(argc, argv, 3, 16);
  bench_report("cfutures", "forkjoin_ns_per_task", fork_join_ns(depth, &peak),
               "ns");
  bench_report("cfutures", "forkjoin_threads_at_end", (double)peak, "thr");
  return 0;
}
