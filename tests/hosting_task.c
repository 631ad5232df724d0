/* A small shared library for tests/check_hosting.sh, built twice
 * (VARIANT 1 and 2: other code, other offsets, another build-id). */
#include <cfutures.h>

#ifndef VARIANT
#define VARIANT 1
#endif
#define CF_STR2(x) #x
#define CF_STR(x) CF_STR2(x)

int lib_task(cf_task *t, const void *in, size_t len);
int lib_init(const void *arg, size_t len);

#if VARIANT == 2
int lib_padding(cf_task *t, const void *in, size_t len);
int lib_padding(cf_task *t, const void *in, size_t len) {
  volatile int x = 0;
  for (size_t i = 0; i < len; i++)
    x += ((const unsigned char *)in)[i] * 31 + 7;
  return cf_task_fail(t, 1, "padding %d", x);
}
#endif

int lib_task(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  return cf_task_return(t, "v" CF_STR(VARIANT), 2);
}

int lib_init(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  return 0;
}
