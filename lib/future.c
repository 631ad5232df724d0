/*
 * The future state machine.
 *
 *   PENDING --start--> RUNNING --finish/fail--> FINISHED
 *      |                                            ^
 *      +--cancel--> CANCELLED    (user futures) ----+ set_result / set_error
 *
 * Every transition is a CAS on f->state.  When nobody listens (no callbacks,
 * no waiter links: the common case for executor futures) completion is one
 * CAS and no lock.  Registering a listener sets CF__F_LISTENERS under
 * f->lock; that makes the completer's fast CAS fail, so it takes the slow
 * path, which transitions under the same lock and therefore sees every
 * listener that was registered before it.  Threads blocking on the future
 * itself set CF__F_SLEEPERS and futex-wait on the state word; whoever makes
 * the final transition wakes them all, so cancelling wakes every waiter at
 * once (no "cancelled but not noticed" state, unlike CPython gh-92001).
 */
#include "internal.h"
#include "alloc.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* How long a waiter spins before sleeping: waking a thread on another CPU
 * costs tens of microseconds on small VMs, a short spin catches the result of
 * a short task much sooner. */
#define CF__WAIT_SPIN_NS 50000

_Thread_local cf__worker_ctx *cf__tls_worker;

#define CF__BIT(st) (1u << (st))

cf_future *cf__future_alloc(cf_task_fn fn) {
  cf_future *f = cf__malloc(sizeof *f);
  if (!f)
    return NULL;
  atomic_init(&f->state, CF_PENDING);
  atomic_init(&f->refs, 1);
  atomic_init(&f->lock.v, 0);
  f->errcode = 0;
  f->next = NULL;
  f->fn = fn;
  f->in.len_ = 0;
  f->out.len_ = 0;
  f->errmsg = NULL;
  f->listeners = NULL;
  f->owner = NULL;
  return f;
}

static void cf__future_free(cf_future *f) {
  cf__buf_free(&f->in);
  cf__buf_free(&f->out);
  free(f->errmsg);
  /* A future released while pending may still hold callbacks that will now
   * never run (nobody can complete it any more).  Waiter links cannot be
   * here: a waiter holds a reference to what it watches. */
  cf__listener *l = f->listeners;
  free(f);
  for (cf__listener *n; l; l = n) {
    n = l->next;
    if (l->dispose)
      l->dispose(l->arg); /* after free(f): it may free more futures */
    free(l);
  }
}

int cf_future_create(cf_future **out) {
  if (!out)
    return CF_EINVAL;
  *out = cf__future_alloc(NULL);
  if (!*out)
    return CF_ENOMEM;
  atomic_store_explicit(&(*out)->state, CF_PENDING | CF__F_USER,
                        memory_order_relaxed);
  return CF_OK;
}

cf_future *cf_future_retain(cf_future *f) {
  if (f)
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
  return f;
}

void cf_future_release(cf_future *f) {
  if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
    cf__future_free(f);
}

/* ---- transitions --------------------------------------------------------- */

/* The flags a final state keeps: a cancelled future keeps its queue slot
 * for its executor to give back (cf__queue_drop). */
static inline uint32_t cf__kept(uint32_t fin) {
  return (fin & CF__ST_MASK) == CF_CANCELLED ? CF__F_KEEP | CF__F_QSLOT
                                             : CF__F_KEEP;
}

void cf__queue_drop(cf_future *f) {
  /* Called for every task a worker finishes: the read-modify-write only
   * when there is a slot to give back (only the executor clears it). */
  if ((atomic_load_explicit(&f->state, memory_order_acquire) & CF__F_QSLOT) &&
      (atomic_fetch_and_explicit(&f->state, ~CF__F_QSLOT,
                                 memory_order_acq_rel) &
       CF__F_QSLOT))
    cf__qslot_release(f->owner);
  cf_future_release(f);
}

/* With f->lock held: moves f from one of the `from` states to `fin`, detaches
 * the listeners and notifies waiter links (internal code only, so it is fine
 * under the lock; and a waiter frees its links only after unlinking them
 * under this lock).  Returns the callbacks in the order they were added. */
static int cf__transition_locked(cf_future *f, unsigned from, uint32_t fin,
                                 uint32_t *old, cf__listener **cbs) {
  uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
  do {
    if (!(CF__BIT(s & CF__ST_MASK) & from))
      return CF_ESTATE;
  } while (!atomic_compare_exchange_weak_explicit(
      &f->state, &s, fin | (s & cf__kept(fin)), memory_order_acq_rel,
      memory_order_relaxed));
  *old = s;
  if ((s & CF__F_QSLOT) && (fin & CF__ST_MASK) != CF_CANCELLED)
    cf__qslot_release(f->owner); /* its executor failed it: alive */
  cf__listener *l = f->listeners, *rev = NULL;
  f->listeners = NULL;
  while (l) {
    cf__listener *next = l->next;
    if (l->cb) {
      l->next = rev; /* the list is newest first: reversing restores order */
      rev = l;
    } else {
      cf__waiter_notify(l);
    }
    l = next;
  }
  *cbs = rev;
  return CF_OK;
}

/* After the lock is dropped: wake sleepers and run the callbacks. */
static void cf__after_transition(cf_future *f, uint32_t old,
                                 cf__listener *cbs) {
  if (old & CF__F_SLEEPERS)
    cf__futex_wake(&f->state, INT_MAX);
  if (!cbs)
    return;
  /* A callback may drop the reference our caller holds. */
  cf_future_retain(f);
  while (cbs) {
    cf__listener *next = cbs->next;
    cbs->cb(f, cbs->arg);
    free(cbs);
    cbs = next;
  }
  cf_future_release(f);
}

static int cf__transition_slow(cf_future *f, unsigned from, uint32_t fin) {
  uint32_t old;
  cf__listener *cbs;
  cf__lock_acquire(&f->lock);
  int rc = cf__transition_locked(f, from, fin, &old, &cbs);
  cf__lock_release(&f->lock);
  if (rc == CF_OK)
    cf__after_transition(f, old, cbs);
  return rc;
}

/* Moves f to a final state.  The caller holds a reference. */
static int cf__transition(cf_future *f, unsigned from, uint32_t st,
                          int status) {
  uint32_t fin = st | ((uint32_t)(-status) << CF__STATUS_SHIFT);
  uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
  for (;;) {
    if (!(CF__BIT(s & CF__ST_MASK) & from))
      return CF_ESTATE;
    if (s & CF__F_LISTENERS)
      return cf__transition_slow(f, from, fin);
    if (atomic_compare_exchange_weak_explicit(
            &f->state, &s, fin | (s & cf__kept(fin)), memory_order_acq_rel,
            memory_order_relaxed)) {
      if ((s & CF__F_QSLOT) && (fin & CF__ST_MASK) != CF_CANCELLED)
        cf__qslot_release(f->owner); /* its executor failed it: alive */
      if (s & CF__F_SLEEPERS)
        cf__futex_wake(&f->state, INT_MAX);
      return CF_OK;
    }
  }
}

bool cf__future_start(cf_future *f) {
  uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
  do {
    if ((s & CF__ST_MASK) != CF_PENDING)
      return false;
  } while (!atomic_compare_exchange_weak_explicit(
      &f->state, &s, (s & ~(CF__ST_MASK | CF__F_QSLOT)) | CF_RUNNING,
      memory_order_acq_rel, memory_order_relaxed));
  if (s & CF__F_QSLOT)
    cf__qslot_release(f->owner); /* its executor starts it: alive */
  return true;
}

int cf__future_finish(cf_future *f, int rc, cf_task *t) {
  int status = CF_OK;
  if (rc == CF_ECANCELLED && cf_future_stop_requested(f)) {
    /* The task honoured a stop request. */
    cf__buf_free(&t->out);
    free(t->errmsg);
    return cf__transition(f, CF__BIT(CF_RUNNING), CF_CANCELLED, CF_ECANCELLED);
  }
  if (rc == 0) {
    f->out = t->out;
  } else {
    f->errcode = rc;
    f->errmsg = t->errmsg;
    status = CF_ETASK;
  }
  return cf__transition(f, CF__BIT(CF_RUNNING), CF_FINISHED, status);
}

/* On a thread that works for an executor (cf__tls_worker is set): f is
 * pushed on the thread's running stack while its task runs, so that a wait
 * on f (or on an outer future, when a wait ran f inline) from inside is
 * refused.  Elsewhere (an inline continuation on a user thread) there is
 * no stack to keep. */
int cf__future_invoke(cf_future *f, cf_task *t) {
  cf__worker_ctx *ctx = cf__tls_worker;
  cf__running r = {f, ctx ? ctx->running : NULL};
  if (ctx)
    ctx->running = &r;
  t->stop_fn = cf__future_stop_fn;
  t->stop_arg = f;
  int rc = cf__task_invoke(f->fn, cf__buf_data(&f->in), cf__buf_len(&f->in), t);
  if (ctx)
    ctx->running = r.outer;
  /* The input is not needed any more: give its memory back now rather than
   * when the last holder releases the future. */
  cf__buf_free(&f->in);
  return rc;
}

bool cf__waits_for_self(cf_future *f) {
  cf__worker_ctx *ctx = cf__tls_worker;
  if (!ctx)
    return false;
  if (ctx->io_thread)
    return f->owner == ctx->pool && !cf_future_done(f);
  for (cf__running *r = ctx->running; r; r = r->outer)
    if (r->f == f)
      return true;
  return false;
}

int cf__future_fail(cf_future *f, int status, int code, char *msg) {
  f->errcode = code;
  f->errmsg = msg;
  int rc = cf__transition(f, CF__BIT(CF_PENDING) | CF__BIT(CF_RUNNING),
                          CF_FINISHED, status);
  if (rc != CF_OK) {
    /* Cancelled meanwhile: nobody reads the error of a cancelled future. */
    f->errmsg = NULL;
    f->errcode = 0;
    free(msg);
  }
  return rc;
}

int cf__future_fail_queued(cf_future *f, int status, int code, char *msg) {
  /* Started first, so that f is ours alone when its fields are written: a
   * wait may be running it inline, or a cancel may have won. */
  if (!cf__future_start(f)) {
    free(msg);
    return CF_ESTATE;
  }
  return cf__future_fail(f, status, code, msg);
}

int cf__future_succeed(cf_future *f, cf__buf *out) {
  uint32_t old;
  cf__listener *cbs;
  /* Under the lock, as cf__future_set: the result is written before the
   * state says FINISHED, and only by the one transition that wins. */
  cf__lock_acquire(&f->lock);
  if (CF__ST_DONE(atomic_load_explicit(&f->state, memory_order_relaxed))) {
    cf__lock_release(&f->lock);
    return CF_ESTATE;
  }
  cf__buf keep = f->out;
  f->out = *out;
  int rc = cf__transition_locked(f, CF__BIT(CF_PENDING) | CF__BIT(CF_RUNNING),
                                 CF_FINISHED, &old, &cbs);
  if (rc != CF_OK)
    f->out = keep; /* a lock-free cancel won */
  cf__lock_release(&f->lock);
  if (rc == CF_OK)
    cf__after_transition(f, old, cbs);
  return rc;
}

bool cf__future_stop_fn(void *arg) { return cf_future_stop_requested(arg); }

bool cf_future_stop_requested(const cf_future *f) {
  return f &&
         (atomic_load_explicit(&((cf_future *)f)->state, memory_order_acquire) &
          CF__F_STOPREQ);
}

int cf_future_request_stop(cf_future *f) {
  if (!f)
    return CF_EINVAL;
  uint32_t s =
      atomic_fetch_or_explicit(&f->state, CF__F_STOPREQ, memory_order_acq_rel);
  bool first = !(s & CF__F_STOPREQ);
  if ((s & CF__ST_MASK) == CF_PENDING) {
    if (cf_future_cancel(f) == CF_OK)
      return CF_OK;
    s = atomic_load_explicit(&f->state, memory_order_acquire); /* started */
  }
  switch (s & CF__ST_MASK) {
  case CF_RUNNING:
    /* Threads of this process read the flag; a worker process is told
     * (the caller holds a reference to that pool: see the header). */
    if (first && (s & CF__F_REMOTE))
      f->owner->backend->request_stop(f->owner, f);
    return CF_OK;
  case CF_CANCELLED:
    return CF_OK;
  default:
    return CF_ESTATE;
  }
}

int cf_future_cancel(cf_future *f) {
  if (!f)
    return CF_EINVAL;
  int rc = cf__transition(f, CF__BIT(CF_PENDING), CF_CANCELLED, CF_ECANCELLED);
  if (rc == CF_ESTATE &&
      (atomic_load_explicit(&f->state, memory_order_acquire) & CF__ST_MASK) ==
          CF_CANCELLED)
    return CF_OK;
  return rc;
}

/* ---- listeners ----------------------------------------------------------- */

static bool cf__future_push_listener(cf_future *f, cf__listener *l) {
  cf__lock_acquire(&f->lock);
  uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
  do {
    if (CF__ST_DONE(s)) {
      cf__lock_release(&f->lock);
      return false;
    }
  } while (!atomic_compare_exchange_weak_explicit(
      &f->state, &s, s | CF__F_LISTENERS, memory_order_acq_rel,
      memory_order_relaxed));
  l->next = f->listeners;
  f->listeners = l;
  cf__lock_release(&f->lock);
  return true;
}

bool cf__future_add_link(cf_future *f, cf__listener *link) {
  link->cb = NULL;
  link->dispose = NULL;
  return cf__future_push_listener(f, link);
}

void cf__future_add_listener(cf_future *f, cf__listener *l, cf_done_cb cb,
                             void *arg, void (*dispose)(void *)) {
  l->cb = cb;
  l->arg = arg;
  l->waiter = NULL;
  l->dispose = dispose;
  if (cf__future_push_listener(f, l))
    return;
  free(l);
  cb(f, arg);
}

bool cf__future_take_listener(cf_future *f, cf__listener *l) {
  bool found = false;
  cf__lock_acquire(&f->lock);
  for (cf__listener **p = &f->listeners; *p; p = &(*p)->next) {
    if (*p == l) {
      *p = l->next;
      found = true;
      break;
    }
  }
  cf__lock_release(&f->lock);
  return found;
}

void cf__future_remove_link(cf_future *f, cf__listener *link) {
  cf__lock_acquire(&f->lock);
  for (cf__listener **p = &f->listeners; *p; p = &(*p)->next) {
    if (*p == link) {
      *p = link->next;
      break;
    }
  }
  cf__lock_release(&f->lock);
}

int cf_future_add_done_callback(cf_future *f, cf_done_cb cb, void *arg) {
  if (!f || !cb)
    return CF_EINVAL;
  if (!CF__ST_DONE(atomic_load_explicit(&f->state, memory_order_acquire))) {
    cf__listener *l = cf__malloc(sizeof *l);
    if (!l)
      return CF_ENOMEM;
    l->cb = cb;
    l->arg = arg;
    l->waiter = NULL;
    l->dispose = NULL;
    if (cf__future_push_listener(f, l))
      return CF_OK;
    free(l);
  }
  cb(f, arg);
  return CF_OK;
}

/* ---- queries ------------------------------------------------------------- */

int cf_future_state(const cf_future *f) {
  if (!f)
    return CF_EINVAL;
  return (int)(atomic_load_explicit(&((cf_future *)f)->state,
                                    memory_order_acquire) &
               CF__ST_MASK);
}

bool cf_future_done(const cf_future *f) {
  return f && CF__ST_DONE(atomic_load_explicit(&((cf_future *)f)->state,
                                               memory_order_acquire));
}

bool cf_future_cancelled(const cf_future *f) {
  return cf_future_state(f) == CF_CANCELLED;
}

bool cf_future_running(const cf_future *f) {
  return cf_future_state(f) == CF_RUNNING;
}

/* ---- waiting on one future ----------------------------------------------- */

static int cf__future_wait_slow(cf_future *f, int64_t timeout_ns) {
  if (cf__no_wait(timeout_ns))
    return CF_ETIMEDOUT;
  cf__trampoline_drain(); /* f may be completed by a deferred record */
  if (cf_future_done(f))
    return CF_OK;
  cf__worker_ctx *ctx = cf__tls_worker;
  if (ctx) {
    if (cf__waits_for_self(f))
      return CF_EDEADLK; /* only this thread could complete f */
    /* Without a deadline, a worker may run what it waits for if that is
     * still queued in its own pool: it would block until f is done anyway,
     * so this adds no deadlock and keeps fork-join programs on few threads.
     * With a deadline it must not: f could outlast the timeout. */
    if (timeout_ns == CF_FOREVER && ctx->run_inline && ctx->run_inline(ctx, f))
      return CF_OK;
  }
  int64_t deadline = cf__deadline(timeout_ns);

  int64_t spin_end = cf__now_ns() + CF__WAIT_SPIN_NS;
  if (spin_end > deadline)
    spin_end = deadline;
  do {
    for (int i = 0; i < 64; i++) {
      if (cf_future_done(f))
        return CF_OK;
      cf__cpu_relax();
    }
    sched_yield(); /* the thread that will complete f may need this CPU */
  } while (cf__now_ns() < spin_end);

  int rc = CF_OK;
  cf__block(ctx, true);
  uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
  while (!CF__ST_DONE(s)) {
    if (!(s & CF__F_SLEEPERS) &&
        !atomic_compare_exchange_weak_explicit(
            &f->state, &s, s | CF__F_SLEEPERS, memory_order_acq_rel,
            memory_order_acquire))
      continue;
    if (cf__futex_wait(&f->state, s | CF__F_SLEEPERS, deadline) == ETIMEDOUT) {
      rc = cf_future_done(f) ? CF_OK : CF_ETIMEDOUT;
      break;
    }
    s = atomic_load_explicit(&f->state, memory_order_acquire);
  }
  cf__block(ctx, false);
  return rc;
}

int cf_future_wait(cf_future *f, int64_t timeout_ns) {
  if (!f)
    return CF_EINVAL;
  if (CF__LIKELY(cf_future_done(f)))
    return CF_OK;
  return cf__future_wait_slow(f, timeout_ns);
}

int cf_future_result(cf_future *f, int64_t timeout_ns, const void **data,
                     size_t *len) {
  int rc = cf_future_wait(f, timeout_ns);
  if (rc == CF_OK)
    rc = cf__future_status(f);
  if (data)
    *data = rc == CF_OK ? cf__buf_data(&f->out) : NULL;
  if (len)
    *len = rc == CF_OK ? cf__buf_len(&f->out) : 0;
  return rc;
}

int cf_future_error(cf_future *f, int64_t timeout_ns, int *code,
                    const char **message) {
  int rc = cf_future_wait(f, timeout_ns);
  if (rc == CF_OK)
    rc = cf__future_status(f);
  /* Any failure the future ended with (not a cancel, not a wait error). */
  bool failed = rc != CF_OK && rc != CF_ECANCELLED &&
                cf_future_state(f) == CF_FINISHED;
  if (code)
    *code = failed ? f->errcode : 0;
  if (message)
    *message = failed ? f->errmsg : NULL;
  return rc;
}

/* ---- user-completable futures -------------------------------------------- */

int cf_future_set_running_or_notify_cancel(cf_future *f) {
  if (!f || !(atomic_load(&f->state) & CF__F_USER))
    return CF_EINVAL;
  if (cf__future_start(f))
    return CF_OK;
  return cf_future_cancelled(f) ? CF_ECANCELLED : CF_ESTATE;
}

/* Completes a user future with the given outcome, which it owns on CF_OK. */
static int cf__future_set(cf_future *f, int status, cf__buf *out, int code,
                          char *msg) {
  uint32_t old;
  cf__listener *cbs;
  /* The lock serialises two set_* calls racing on the same future, so the
   * loser never writes the fields the winner published. */
  CF__RACE_POINT(CF__RACE_SET_BEFORE_LOCK, f);
  cf__lock_acquire(&f->lock);
  if (CF__ST_DONE(atomic_load_explicit(&f->state, memory_order_relaxed))) {
    cf__lock_release(&f->lock); /* another set_* won */
    return CF_ESTATE;
  }
  if (out)
    f->out = *out;
  f->errcode = code;
  f->errmsg = msg;
  /* A cancel with no listener takes no lock: it can win right here. */
  CF__RACE_POINT(CF__RACE_SET_BEFORE_CAS, f);
  int rc = cf__transition_locked(
      f, CF__BIT(CF_PENDING) | CF__BIT(CF_RUNNING),
      CF_FINISHED | ((uint32_t)(-status) << CF__STATUS_SHIFT), &old, &cbs);
  if (rc != CF_OK) { /* cancelled between the check and the CAS */
    f->out.len_ = 0;
    f->errmsg = NULL;
    f->errcode = 0;
  }
  cf__lock_release(&f->lock);
  if (rc == CF_OK)
    cf__after_transition(f, old, cbs);
  return rc;
}

int cf_future_set_result(cf_future *f, const void *data, size_t len) {
  if (!f || (!data && len) || !(atomic_load(&f->state) & CF__F_USER))
    return CF_EINVAL;
  if (cf_future_done(f))
    return CF_ESTATE;
  cf__buf b;
  int rc = cf__buf_copy(&b, data, len);
  if (rc != CF_OK)
    return rc;
  rc = cf__future_set(f, CF_OK, &b, 0, NULL);
  if (rc != CF_OK)
    cf__buf_free(&b);
  return rc;
}

int cf_future_set_error(cf_future *f, int code, const char *message) {
  if (!f || code == 0 || !(atomic_load(&f->state) & CF__F_USER))
    return CF_EINVAL;
  if (cf_future_done(f))
    return CF_ESTATE;
  char *msg = NULL;
  if (message && !(msg = cf__strdup(message)))
    return CF_ENOMEM;
  int rc = cf__future_set(f, CF_ETASK, NULL, code, msg);
  if (rc != CF_OK)
    free(msg);
  return rc;
}
