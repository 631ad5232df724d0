/*
 * Every allocation and thread creation of the library goes through these
 * names.  In a normal build they are the C library's functions, at no cost.
 * Built with -DCF_FAULT_INJECTION (tests/test_faults.c does), each can be
 * made to fail at the N-th call, so a test can walk a scenario through a
 * failure at every site in turn (SQLite's approach).
 */
#ifndef CF_ALLOC_H
#define CF_ALLOC_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CF_FAULT_INJECTION

void *cf__malloc(size_t n);
void *cf__calloc(size_t n, size_t size);
void *cf__realloc(void *p, size_t n);
void *cf__aligned_alloc(size_t align, size_t n);
char *cf__strdup(const char *s);
int cf__asprintf(char **out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int cf__vasprintf(char **out, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
int cf__pthread_create(pthread_t *t, const pthread_attr_t *a,
                       void *(*fn)(void *), void *arg);

/* Fail the n-th allocation (or thread creation) from now, counting from 1,
 * and every one after it while `sticky`; 0 disables.  Returns whether a
 * failure was injected since the last call. */
bool cf__fault_set(long nth_alloc, long nth_thread, bool sticky);

/* Race points: a window between two steps that only another thread's
 * timing can hit.  A test sets a hook that runs there (e.g. cancels the
 * future), so the losing branch runs every time instead of once in a
 * million runs.  The hook is a plain global: set it only while no other
 * thread is inside the library.  CF__RACE_SET_BEFORE_CAS runs with the
 * future's lock held: a hook there must not take it (a cancel is fine only
 * while the future has no listener and no sleeper: then it takes no lock). */
enum cf__race_point {
  CF__RACE_SET_BEFORE_LOCK,   /* cf_future_set_*: seen not done, no lock yet */
  CF__RACE_SET_BEFORE_CAS,    /* ... checked again under the lock, no CAS yet */
  CF__RACE_SUBMIT_BEFORE_PUSH /* thread pool: first worker started, task not
                                 pushed yet (obj: the executor) */
};
extern void (*cf__race_hook)(enum cf__race_point point, void *obj);
#define CF__RACE_POINT(point, obj)                                             \
  do {                                                                         \
    if (cf__race_hook)                                                         \
      cf__race_hook(point, obj);                                               \
  } while (0)

#else

#define cf__malloc malloc
#define cf__calloc calloc
#define cf__realloc realloc
#define cf__aligned_alloc aligned_alloc
#define cf__strdup strdup
#define cf__asprintf asprintf
#define cf__vasprintf vasprintf
#define cf__pthread_create pthread_create
#define CF__RACE_POINT(point, obj) ((void)0)

#endif

#endif /* CF_ALLOC_H */
