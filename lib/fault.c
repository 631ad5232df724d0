/* The failure-injecting allocators of alloc.h (test builds only). */
#ifdef CF_FAULT_INJECTION
#include "alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>

void (*cf__race_hook)(enum cf__race_point point, void *obj);

static atomic_long cf__alloc_left, cf__thread_left;
static atomic_bool cf__sticky, cf__injected;

/* Counts a call down; true when this one must fail. */
static bool cf__fail(atomic_long *left) {
  long v = atomic_load(left);
  while (v > 0 && !atomic_compare_exchange_weak(left, &v, v - 1))
    ;
  if (v == 1 ||
      (v == 0 && atomic_load(&cf__sticky) && atomic_load(&cf__injected))) {
    atomic_store(&cf__injected, true);
    return true;
  }
  return false;
}

bool cf__fault_set(long nth_alloc, long nth_thread, bool sticky) {
  bool was = atomic_exchange(&cf__injected, false);
  atomic_store(&cf__sticky, sticky);
  atomic_store(&cf__alloc_left, nth_alloc);
  atomic_store(&cf__thread_left, nth_thread);
  return was;
}

void *cf__malloc(size_t n) {
  return cf__fail(&cf__alloc_left) ? NULL : malloc(n);
}
void *cf__calloc(size_t n, size_t size) {
  return cf__fail(&cf__alloc_left) ? NULL : calloc(n, size);
}
void *cf__realloc(void *p, size_t n) {
  return cf__fail(&cf__alloc_left) ? NULL : realloc(p, n);
}
void *cf__aligned_alloc(size_t align, size_t n) {
  return cf__fail(&cf__alloc_left) ? NULL : aligned_alloc(align, n);
}
char *cf__strdup(const char *s) {
  return cf__fail(&cf__alloc_left) ? NULL : strdup(s);
}
int cf__vasprintf(char **out, const char *fmt, va_list ap) {
  if (cf__fail(&cf__alloc_left)) {
    *out = NULL;
    return -1;
  }
  return vasprintf(out, fmt, ap);
}
int cf__asprintf(char **out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = cf__vasprintf(out, fmt, ap);
  va_end(ap);
  return r;
}
int cf__pthread_create(pthread_t *t, const pthread_attr_t *a,
                       void *(*fn)(void *), void *arg) {
  return cf__fail(&cf__thread_left) ? EAGAIN : pthread_create(t, a, fn, arg);
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int cf__fault_unused;
#endif
