/* Shared by the benchmark programs: a monotonic clock and result lines.
 * Each program prints lines "metric value unit"; bench/run.sh repeats the
 * programs, interleaved, and reports medians and ratios. */
#ifndef CF_BENCH_UTIL_H
#define CF_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void bench_report(const char *impl, const char *metric,
                                double value, const char *unit) {
  printf("%s %s %.3f %s\n", impl, metric, value, unit);
  fflush(stdout);
}

static inline size_t bench_arg(int argc, char **argv, int i, size_t dflt) {
  return argc > i ? (size_t)strtoull(argv[i], NULL, 10) : dflt;
}

static int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static inline double bench_median(double *v, size_t n) {
  qsort(v, n, sizeof *v, bench_cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
