/* The cfutures measurements both pools share: an empty task, the timed map
 * and the timed idle round trip.  The executor stays the caller's. */
#ifndef CF_BENCH_CF_H
#define CF_BENCH_CF_H

#include "bench_util.h"

#include <cfutures.h>

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

#endif
