/*
 * The generic executor: argument checking, future creation and reference
 * counting; the backend table does the rest.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

_Atomic unsigned cf__fork_gen;

static void cf__after_fork_child(void) { atomic_fetch_add(&cf__fork_gen, 1); }

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
  ex->max_queued = 0;
  atomic_init(&ex->nqueued, 0);
  atomic_init(&ex->room_seq, 0);
  atomic_init(&ex->room_waiters, 0);
  atomic_init(&ex->closed, false);
}

/* ---- back-pressure --------------------------------------------------------
 */

static void cf__room_wake(cf_executor *ex) {
  atomic_fetch_add_explicit(&ex->room_seq, 1, memory_order_seq_cst);
  cf__futex_wake(&ex->room_seq, INT_MAX);
}

void cf__qslot_release(cf_executor *ex) {
  atomic_fetch_sub_explicit(&ex->nqueued, 1, memory_order_seq_cst);
  /* Sequentially consistent with the waiter's announce-then-recheck: one
   * of the two always sees the other, so no wakeup is lost. */
  if (atomic_load_explicit(&ex->room_waiters, memory_order_seq_cst))
    cf__room_wake(ex);
}

/* Takes a slot if there is room. */
static bool cf__qslot_try(cf_executor *ex) {
  size_t n = atomic_load_explicit(&ex->nqueued, memory_order_seq_cst);
  do {
    if (n >= ex->max_queued)
      return false;
  } while (!atomic_compare_exchange_weak_explicit(
      &ex->nqueued, &n, n + 1, memory_order_seq_cst, memory_order_relaxed));
  return true;
}

/* A full queue may hold cancelled futures whose slots only the executor
 * can give back: have it drop them, then look again. */
static bool cf__qslot_try_purged(cf_executor *ex) {
  if (cf__qslot_try(ex))
    return true;
  if (!ex->backend->purge)
    return false;
  ex->backend->purge(ex);
  return cf__qslot_try(ex);
}

/* How long a producer waiting for room sleeps at most before it looks for
 * cancelled futures again (a cancel cannot wake it: only the executor may
 * touch the executor, see CF__F_QSLOT). */
#define CF__ROOM_PURGE_NS CF_MSEC(10)

/* Takes a queue slot for a submit, waiting for room up to timeout_ns. */
static int cf__qslot_take(cf_executor *ex, int64_t timeout_ns) {
  if (CF__LIKELY(cf__qslot_try_purged(ex)))
    return CF_OK;
  if (cf__no_wait(timeout_ns))
    return CF_EAGAIN;
  cf__worker_ctx *ctx = cf__tls_worker;
  if (ctx && ctx->io_thread && ctx->pool == ex)
    return CF_EDEADLK; /* only this thread sends queued tasks to workers */
  int64_t deadline = cf__deadline(timeout_ns);
  int rc = CF_OK;
  cf__block(ctx, true); /* a thread-pool worker: let the queue move */
  atomic_fetch_add_explicit(&ex->room_waiters, 1, memory_order_seq_cst);
  for (;;) {
    uint32_t seq = atomic_load_explicit(&ex->room_seq, memory_order_seq_cst);
    if (atomic_load_explicit(&ex->closed, memory_order_acquire)) {
      rc = CF_ESHUTDOWN; /* the backend's submit says which refusal */
      break;
    }
    if (cf__qslot_try_purged(ex))
      break;
    int64_t now = cf__now_ns();
    if (now >= deadline) {
      rc = CF_EAGAIN;
      break;
    }
    int64_t nap = deadline - now < CF__ROOM_PURGE_NS ? deadline
                                                     : now + CF__ROOM_PURGE_NS;
    cf__futex_wait(&ex->room_seq, seq, nap);
  }
  atomic_fetch_sub_explicit(&ex->room_waiters, 1, memory_order_seq_cst);
  cf__block(ctx, false);
  return rc;
}

int cf__submit_future(cf_executor *ex, cf_future *f, cf_future **out) {
  if (CF__UNLIKELY(cf__inherited(ex)))
    return CF_EBROKEN; /* its workers are the parent's */
  /* Set before the backend publishes f: one reference for the executor,
   * one for the caller. */
  if (out)
    atomic_store_explicit(&f->refs, 2, memory_order_relaxed);
  f->owner = ex;
  if (ex->backend->request_stop) /* not yet published: no race */
    atomic_store_explicit(
        &f->state,
        atomic_load_explicit(&f->state, memory_order_relaxed) | CF__F_REMOTE,
        memory_order_relaxed);
  int rc = ex->backend->submit(ex, f);
  if (rc != CF_OK)
    atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
  else if (out)
    *out = f;
  return rc;
}

/* A submit of cf_submit*(): through the bounded queue when there is one. */
static int cf__submit_bounded(cf_executor *ex, cf_future *f, int64_t timeout_ns,
                              cf_future **out) {
  if (CF__LIKELY(!ex->max_queued))
    return cf__submit_future(ex, f, out);
  if (CF__UNLIKELY(cf__inherited(ex)))
    return CF_EBROKEN;
  int rc = cf__qslot_take(ex, timeout_ns);
  if (rc != CF_OK)
    return rc; /* CF_ESHUTDOWN: woken by a shutdown still under way */
  /* Not yet published: a plain store. */
  atomic_store_explicit(&f->state, CF_PENDING | CF__F_QSLOT,
                        memory_order_relaxed);
  rc = cf__submit_future(ex, f, out);
  if (rc != CF_OK) {
    atomic_store_explicit(&f->state, CF_PENDING, memory_order_relaxed);
    cf__qslot_release(ex);
  }
  return rc;
}

int cf__submit_prepared(cf_executor *ex, cf_future *f) {
  if (CF__UNLIKELY(cf__inherited(ex)))
    return CF_EBROKEN;
  /* f->owner is ex since f was made (compose.c): not written again, as
   * other threads may read it now (cf_when_all over f). */
  bool bounded = ex->max_queued != 0;
  if (bounded) /* counted, never refused: it comes when its source does */
    atomic_fetch_add_explicit(&ex->nqueued, 1, memory_order_seq_cst);
  /* Published already (the caller's reference): the slot and the flags
   * are set only while it is still pending, in one CAS, so a cancel that
   * came first leaves nothing to give back, and one that comes later finds
   * the slot for the executor to return (cf__queue_drop). */
  uint32_t add = (bounded ? CF__F_QSLOT : 0) |
                 (ex->backend->request_stop ? CF__F_REMOTE : 0);
  uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
  do {
    if ((s & CF__ST_MASK) != CF_PENDING) {
      if (bounded)
        cf__qslot_release(ex);
      return CF_ECANCELLED;
    }
  } while (!atomic_compare_exchange_weak_explicit(
      &f->state, &s, (s & ~CF__F_DERIVED) | add, memory_order_acq_rel,
      memory_order_acquire));
  int rc = ex->backend->submit(ex, f);
  if (rc != CF_OK && (atomic_fetch_and_explicit(&f->state, ~CF__F_QSLOT,
                                                memory_order_acq_rel) &
                      CF__F_QSLOT))
    cf__qslot_release(ex);
  return rc;
}

int cf_submit_timed(cf_executor *ex, cf_task_fn fn, const void *in, size_t len,
                    int64_t timeout_ns, cf_future **out) {
  if (out)
    *out = NULL;
  if (!ex || !fn || (!in && len))
    return CF_EINVAL;
  cf_future *f = cf__future_alloc(fn);
  if (!f)
    return CF_ENOMEM;
  int rc = cf__buf_copy(&f->in, in, len);
  if (rc == CF_OK)
    rc = cf__submit_bounded(ex, f, timeout_ns, out);
  if (rc != CF_OK)
    cf_future_release(f);
  return rc;
}

int cf_submit(cf_executor *ex, cf_task_fn fn, const void *in, size_t len,
              cf_future **out) {
  return cf_submit_timed(ex, fn, in, len, 0, out);
}

int cf_submit_owned_timed(cf_executor *ex, cf_task_fn fn, void *in, size_t len,
                          cf_free_fn free_fn, int64_t timeout_ns,
                          cf_future **out) {
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
  int rc = cf__submit_bounded(ex, f, timeout_ns, out);
  if (rc != CF_OK) {
    f->in.len_ = 0; /* never published: the caller keeps its buffer */
    cf_future_release(f);
  }
  return rc;
}

int cf_submit_owned(cf_executor *ex, cf_task_fn fn, void *in, size_t len,
                    cf_free_fn free_fn, cf_future **out) {
  return cf_submit_owned_timed(ex, fn, in, len, free_fn, 0, out);
}

/* Producers waiting for room give up: the executor takes no more. */
static void cf__executor_close(cf_executor *ex) {
  atomic_store_explicit(&ex->closed, true, memory_order_release);
  cf__room_wake(ex);
}

int cf_shutdown(cf_executor *ex, bool wait, bool cancel_futures) {
  if (!ex)
    return CF_EINVAL;
  if (cf__inherited(ex))
    return CF_OK; /* nothing of it runs in this process */
  cf__executor_close(ex);
  return ex->backend->shutdown(ex, wait, cancel_futures);
}

cf_executor *cf_executor_retain(cf_executor *ex) {
  if (ex)
    atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);
  return ex;
}

void cf_executor_release(cf_executor *ex) {
  if (ex &&
      atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_acq_rel) == 1) {
    if (cf__inherited(ex)) {
      ex->backend->forget(ex);
    } else {
      atomic_store_explicit(&ex->closed, true, memory_order_release);
      ex->backend->destroy(ex);
    }
  }
}

/* A size this large is not a struct of any header: garbage in an options
 * struct that was never initialised, refused before anything is read.  A
 * smaller garbage size above ours makes the tail check read up to it past
 * our layout (the caller's memory, as it claims); only a size set by
 * *_init or CF_*_INIT is safe. */
#define CF__MAX_STRUCT_SIZE 1024

int cf__opts_in(void *dst, size_t dst_size, const void *src, size_t v1) {
  size_t n = *(const size_t *)src;
  if (n < v1 || n > CF__MAX_STRUCT_SIZE)
    return CF_EINVAL;
  const unsigned char *s = src;
  for (size_t i = dst_size; i < n; i++)
    if (s[i])
      return CF_EINVAL; /* a newer field set: we cannot do what it asks */
  size_t keep = n < dst_size ? n : dst_size;
  memcpy((unsigned char *)dst + sizeof(size_t), s + sizeof(size_t),
         keep - sizeof(size_t));
  return CF_OK;
}

void cf__out_copy(void *out, const void *src, size_t src_size) {
  size_t n = *(const size_t *)out;
  size_t keep = n < src_size ? n : src_size;
  memcpy((unsigned char *)out + sizeof(size_t),
         (const unsigned char *)src + sizeof(size_t), keep - sizeof(size_t));
}

int cf_executor_stats_get(cf_executor *ex, cf_executor_stats *out) {
  if (!ex || cf__out_check(out, CF__STATS_V1) != CF_OK)
    return CF_EINVAL;
  if (cf__inherited(ex))
    return CF_EBROKEN;
  /* What a backend does not count is 0. */
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  /* A bounded queue counts what holds a slot, once the cancelled futures
   * a worker has not reached yet are dropped. */
  if (ex->max_queued && ex->backend->purge)
    ex->backend->purge(ex);
  ex->backend->stats(ex, &st);
  if (ex->max_queued)
    st.queued = atomic_load_explicit(&ex->nqueued, memory_order_relaxed);
  cf__out_copy(out, &st, sizeof st);
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
  cf__executor_close(ex);
  return ex->backend->terminate(ex, sig);
}
