/*
 * The generic executor: argument checking, future creation and reference
 * counting; the backend table does the rest.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

_Atomic unsigned cf__fork_gen;

static void cf__after_fork_child(void) {
  atomic_fetch_add(&cf__fork_gen, 1);
}

static void cf__register_atfork(void) {
  pthread_atfork(NULL, NULL, cf__after_fork_child);
}

void cf__executor_init(cf_executor *ex, const cf__backend *backend,
                       int max_workers) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, cf__register_atfork);
  ex->backend = backend;
  atomic_init(&ex->refs, 1);
  ex->max_workers = max_workers;
  ex->fork_gen = atomic_load(&cf__fork_gen);
}

int cf__submit_future(cf_executor *ex, cf_future *f, cf_future **out) {
  if (CF__UNLIKELY(cf__inherited(ex)))
    return CF_EBROKEN; /* its workers are the parent's */
  /* Set before the backend publishes f: one reference for the executor,
   * one for the caller. */
  if (out)
    atomic_store_explicit(&f->refs, 2, memory_order_relaxed);
  f->owner = ex;
  int rc = ex->backend->submit(ex, f);
  if (rc != CF_OK)
    atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
  else if (out)
    *out = f;
  return rc;
}

int cf_submit(cf_executor *ex, cf_task_fn fn, const void *in, size_t len,
              cf_future **out) {
  if (out)
    *out = NULL;
  if (!ex || !fn || (!in && len))
    return CF_EINVAL;
  cf_future *f = cf__future_alloc(fn);
  if (!f)
    return CF_ENOMEM;
  int rc = cf__buf_copy(&f->in, in, len);
  if (rc == CF_OK)
    rc = cf__submit_future(ex, f, out);
  if (rc != CF_OK)
    cf_future_release(f);
  return rc;
}

int cf_submit_owned(cf_executor *ex, cf_task_fn fn, void *in, size_t len,
                    cf_free_fn free_fn, cf_future **out) {
  if (out)
    *out = NULL;
  if (!ex || !fn || (!in && len) || len > ~CF__BUF_EXT)
    return CF_EINVAL;
  cf_future *f = cf__future_alloc(fn);
  if (!f)
    return CF_ENOMEM;
  /* Kept as given, whatever its size: the task reads the caller's bytes,
   * and free_fn runs when the task has run or will never run. */
  cf__buf_adopt(&f->in, in, len, free_fn);
  int rc = cf__submit_future(ex, f, out);
  if (rc != CF_OK) {
    f->in.len_ = 0; /* never published: the caller keeps its buffer */
    cf_future_release(f);
  }
  return rc;
}

int cf_shutdown(cf_executor *ex, bool wait, bool cancel_futures) {
  if (!ex)
    return CF_EINVAL;
  if (cf__inherited(ex))
    return CF_OK; /* nothing of it runs in this process */
  return ex->backend->shutdown(ex, wait, cancel_futures);
}

cf_executor *cf_executor_retain(cf_executor *ex) {
  if (ex)
    atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);
  return ex;
}

void cf_executor_release(cf_executor *ex) {
  if (ex && atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_acq_rel) == 1) {
    if (cf__inherited(ex))
      ex->backend->forget(ex);
    else
      ex->backend->destroy(ex);
  }
}

int cf_executor_stats_get(cf_executor *ex, cf_executor_stats *out) {
  if (!ex || !out)
    return CF_EINVAL;
  if (cf__inherited(ex))
    return CF_EBROKEN;
  memset(out, 0, sizeof *out); /* what a backend does not count is 0 */
  ex->backend->stats(ex, out);
  return CF_OK;
}

int cf_executor_max_workers(cf_executor *ex) {
  return ex ? ex->max_workers : CF_EINVAL;
}

int cf_terminate_workers(cf_executor *ex, int sig) {
  if (!ex)
    return CF_EINVAL;
  if (cf__inherited(ex))
    return CF_EBROKEN;
  if (!ex->backend->terminate)
    return CF_ENOTSUP;
  return ex->backend->terminate(ex, sig);
}
