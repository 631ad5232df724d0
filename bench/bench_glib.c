/*
 * GLib's GThreadPool doing the same work as bench_threads, for comparison:
 * push n empty items to 2 threads and wait for all (it has no futures, so
 * no results are collected: the comparison flatters GLib), and the idle
 * round trip through a mutex + condition variable.
 *   bench_glib [tasks=1000000] [roundtrips=20000]
 */
#include "bench_util.h"

#include <glib.h>

static gint g_done;

static void empty(gpointer data, gpointer user) {
  (void)data;
  (void)user;
  g_atomic_int_inc(&g_done);
}

static double per_task(size_t n) {
  GThreadPool *p = g_thread_pool_new(empty, NULL, 2, TRUE, NULL);
  g_atomic_int_set(&g_done, 0);
  double t0 = bench_now();
  for (size_t i = 0; i < n; i++)
    g_thread_pool_push(p, GSIZE_TO_POINTER(i + 1), NULL);
  g_thread_pool_free(p, FALSE, TRUE); /* waits for every item */
  double dt = bench_now() - t0;
  if ((size_t)g_atomic_int_get(&g_done) != n)
    exit(1);
  return dt * 1e9 / (double)n;
}

typedef struct slot {
  GMutex mu;
  GCond cv;
  int done;
} slot;

static void signal_done(gpointer data, gpointer user) {
  (void)user;
  slot *s = data;
  g_mutex_lock(&s->mu);
  s->done = 1;
  g_cond_signal(&s->cv);
  g_mutex_unlock(&s->mu);
}

static double roundtrip_us(size_t n) {
  GThreadPool *p = g_thread_pool_new(signal_done, NULL, 2, TRUE, NULL);
  double *v = malloc(n * sizeof *v);
  slot s;
  g_mutex_init(&s.mu);
  g_cond_init(&s.cv);
  for (size_t i = 0; i < n; i++) {
    s.done = 0;
    double t0 = bench_now();
    g_thread_pool_push(p, &s, NULL);
    g_mutex_lock(&s.mu);
    while (!s.done)
      g_cond_wait(&s.cv, &s.mu);
    g_mutex_unlock(&s.mu);
    v[i] = (bench_now() - t0) * 1e6;
  }
  g_thread_pool_free(p, FALSE, TRUE);
  double med = bench_median(v, n);
  free(v);
  return med;
}

int main(int argc, char **argv) {
  size_t n = bench_arg(argc, argv, 1, 1000000);
  size_t rt = bench_arg(argc, argv, 2, 20000);
  bench_report("gthreadpool", "futures_ns_per_task", per_task(n), "ns");
  bench_report("gthreadpool", "roundtrip_us", roundtrip_us(rt), "us");
  return 0;
}
