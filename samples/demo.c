/*
 * cf-demo: the seed's prime check, on the thread pool, three ways:
 * submit + result, map (results in input order), and as_completed.
 * (samples/primecheck, the full command-line tool, comes with the process
 * pool.)
 */
#include <cfutures.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const uint64_t PRIMES[] = {109999999, 108376355, 1276544678, 123555677,
                                  234645542424};
#define NPRIMES (sizeof PRIMES / sizeof PRIMES[0])

/* in: a uint64_t n; result: one byte, 1 if n is prime.  Trial division by
 * odd numbers, as the seed's isPrime, but correct for 0, 1 and 2. */
static int is_prime(cf_task *t, const void *in, size_t len) {
  uint64_t n;
  if (len != sizeof n)
    return cf_task_fail(t, 1, "expected 8 bytes, got %zu", len);
  memcpy(&n, in, sizeof n);
  unsigned char prime = n == 2 || (n > 2 && n % 2 == 1);
  for (uint64_t d = 3; prime && d <= n / d; d += 2)
    if (n % d == 0)
      prime = 0;
  return cf_task_return(t, &prime, 1);
}

static int fail(const char *what, int rc) {
  fprintf(stderr, "cf-demo: %s: %s\n", what, cf_strerror(rc));
  return 1;
}

int main(void) {
  cf_executor *ex;
  int rc = cf_thread_pool_create(NULL, &ex);
  if (rc != CF_OK)
    return fail("creating the pool", rc);

  /* 1. submit + result */
  printf("submit:\n");
  cf_future *fs[NPRIMES];
  for (size_t i = 0; i < NPRIMES; i++)
    if ((rc = cf_submit(ex, is_prime, &PRIMES[i], sizeof PRIMES[i], &fs[i])) !=
        CF_OK)
      return fail("submit", rc);
  for (size_t i = 0; i < NPRIMES; i++) {
    const unsigned char *prime;
    if ((rc = cf_future_result(fs[i], CF_FOREVER, (const void **)&prime,
                               NULL)) != CF_OK)
      return fail("result", rc);
    printf("%" PRIu64 " is prime: %s\n", PRIMES[i], *prime ? "True" : "False");
  }

  /* 2. map, as the seed's executor.map */
  printf("map:\n");
  cf_map_iter *m;
  if ((rc = cf_map_array(ex, is_prime, PRIMES, sizeof PRIMES[0], NPRIMES, NULL,
                         &m)) != CF_OK)
    return fail("map", rc);
  cf_map_item item = CF_MAP_ITEM_INIT;
  while ((rc = cf_map_next(m, &item)) == CF_OK)
    printf("%" PRIu64 " is prime: %s\n", PRIMES[item.index],
           *(const unsigned char *)item.data ? "True" : "False");
  cf_map_destroy(m);
  if (rc != CF_EOF)
    return fail("map", rc);

  /* 3. as_completed: whichever finishes first */
  printf("as_completed:\n");
  cf_as_completed_iter *it;
  if ((rc = cf_as_completed_create(fs, NPRIMES, CF_SEC(10), &it)) != CF_OK)
    return fail("as_completed", rc);
  cf_future *f;
  size_t n = 0;
  while (cf_as_completed_next(it, &f) == CF_OK)
    n++;
  printf("%zu futures completed\n", n);
  cf_as_completed_destroy(it);

  for (size_t i = 0; i < NPRIMES; i++)
    cf_future_release(fs[i]);
  cf_executor_release(ex); /* waits for the workers */
  return 0;
}
