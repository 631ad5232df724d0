/* The cfutures measurements the pools share: an empty task, the timed map,
 * the timed idle round trip and the CPU an idle pool burns.  The executor
 * stays the caller's. */
#ifndef CF_BENCH_CF_H
#define CF_BENCH_CF_H

#include "bench_util.h"

#include <cfutures.h>
#include <string.h>

static int bench_empty(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)in;
  (void)len;
  return 0;
}

/* ns per input of cf_map over n 8-byte inputs (chunk 0: the library's). */
static inline double bench_map_ns(cf_executor *ex, size_t n, size_t chunk) {
  uint64_t *in = malloc(n * sizeof *in);
  for (size_t i = 0; i < n; i++)
    in[i] = i;
  cf_map_options o;
  cf_map_options_init(&o);
  o.chunksize = chunk;
  double t0 = bench_now();
  cf_map_iter *m;
  if (cf_map_array(ex, bench_empty, in, sizeof *in, n, &o, &m) != CF_OK)
    exit(1);
  cf_map_item it = CF_MAP_ITEM_INIT;
  size_t got = 0;
  while (cf_map_next(m, &it) == CF_OK)
    got++;
  cf_map_destroy(m);
  double dt = bench_now() - t0;
  if (got != n)
    exit(1);
  free(in);
  return dt * 1e9 / (double)n;
}

/* Median µs of n single submit -> result round trips. */
static inline double bench_roundtrip_us(cf_executor *ex, size_t n) {
  double *v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    cf_future *f;
    double t0 = bench_now();
    if (cf_submit(ex, bench_empty, NULL, 0, &f) != CF_OK ||
        cf_future_result(f, CF_FOREVER, NULL, NULL) != CF_OK)
      exit(1);
    v[i] = (bench_now() - t0) * 1e6;
    cf_future_release(f);
  }
  double med = bench_median(v, n);
  free(v);
  return med;
}

/* What a sampling task returns: which worker ran it (a pid, a rank) and
 * that worker's clocks. */
typedef struct bench_sample {
  int64_t who;
  int64_t cpu_ns;  /* CLOCK_PROCESS_CPUTIME_ID of the worker's process */
  int64_t mono_ns; /* CLOCK_MONOTONIC, on the worker's host */
} bench_sample;

static inline int64_t bench_clock_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The body of a sampling task (the backend's own task gives `who`).  It
 * naps 50 ms so that it holds its worker while the other samples land on
 * the other workers (one task at a time per worker), and reads the clocks
 * on the idle period's side of the nap: after it for the first sample
 * (in[0] == 0), before it for the second, so the period holds only idling. */
static inline int bench_sample_body(cf_task *t, const void *in, size_t len,
                                    int64_t who) {
  struct timespec nap = {0, 50000000};
  bool second = len > 0 && ((const unsigned char *)in)[0];
  if (!second)
    nanosleep(&nap, NULL);
  bench_sample s = {who, bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID),
                    bench_clock_ns(CLOCK_MONOTONIC)};
  if (second)
    nanosleep(&nap, NULL);
  return cf_task_return(t, &s, sizeof s);
}

static int bench_cmp_sample(const void *a, const void *b) {
  int64_t x = ((const bench_sample *)a)->who;
  int64_t y = ((const bench_sample *)b)->who;
  return (x > y) - (x < y);
}

/* One sample from each of nw workers, sorted by who; false unless nw
 * different workers answered. */
static inline bool bench_samples(cf_executor *ex, cf_task_fn fn,
                                 unsigned char second, int nw,
                                 bench_sample *out) {
  cf_future **f = malloc((size_t)nw * sizeof *f);
  bool ok = true;
  for (int i = 0; i < nw; i++)
    if (cf_submit(ex, fn, &second, 1, &f[i]) != CF_OK)
      exit(1);
  for (int i = 0; i < nw; i++) {
    const void *d;
    size_t n;
    if (cf_future_result(f[i], CF_FOREVER, &d, &n) != CF_OK || n != sizeof *out)
      exit(1);
    memcpy(&out[i], d, sizeof *out);
    cf_future_release(f[i]);
  }
  free(f);
  qsort(out, (size_t)nw, sizeof *out, bench_cmp_sample);
  for (int i = 1; i < nw; i++)
    ok = ok && out[i].who != out[i - 1].who;
  return ok;
}

/* CPU the pool burns while idle for `seconds`, in percent of one CPU: of
 * each of its nw workers (worker_pct[0..nw), in the order of `who`), from
 * the clocks the sampling task fn reads there before and after, and of
 * this process (*root_pct), whose main thread sleeps meanwhile.  Returns
 * false when the samples did not come from nw different workers. */
static inline bool bench_idle_cpu(cf_executor *ex, cf_task_fn fn, int nw,
                                  double seconds, double *worker_pct,
                                  double *root_pct) {
  bench_sample *a = malloc(2 * (size_t)nw * sizeof *a), *b = a + nw;
  bool ok = bench_samples(ex, fn, 0, nw, a);
  int64_t c0 = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
  int64_t m0 = bench_clock_ns(CLOCK_MONOTONIC);
  int64_t ns = (int64_t)(seconds * 1e9);
  struct timespec idle = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  while (nanosleep(&idle, &idle) != 0)
    ;
  int64_t c1 = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
  int64_t m1 = bench_clock_ns(CLOCK_MONOTONIC);
  ok = ok && bench_samples(ex, fn, 1, nw, b);
  for (int i = 0; ok && i < nw; i++) {
    ok = a[i].who == b[i].who && b[i].mono_ns > a[i].mono_ns;
    if (ok)
      worker_pct[i] = 100.0 * (double)(b[i].cpu_ns - a[i].cpu_ns) /
                      (double)(b[i].mono_ns - a[i].mono_ns);
  }
  *root_pct = 100.0 * (double)(c1 - c0) / (double)(m1 - m0);
  free(a);
  return ok;
}

#endif
