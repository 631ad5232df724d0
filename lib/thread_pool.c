/*
 * The thread-pool backend.
 *
 * Data path: cf_submit() -> cf__tp_submit() pushes the future on the pool's
 * inbox, a lock-free stack (one CAS, no lock) -> a worker's cf__tp_take()
 * moves the inbox, reversed, onto the FIFO under the pool lock and pops the
 * oldest -> cf__tp_run() starts it, runs the task, completes the future
 * (future.c: waiters, callbacks) and drops the executor's reference.
 *
 * The inbox word also carries CLOSED: shutdown sets it atomically, so a
 * submit either lands before it (and runs) or is refused; none is lost.
 *
 * Idle workers first spin briefly on the queue (at most one spinner at a
 * time, so an idle pool does not burn every core), then sleep on a futex
 * word.  A submit looks at those counters without the lock and takes the
 * slow path (the lock) only to wake a sleeper, poke a helper or start a
 * thread.  Sleepers announce themselves before a last look at the inbox and
 * submitters push before looking at the sleepers, both sequentially
 * consistent: one of the two always sees the other, so no wakeup is lost.
 *
 * A worker that waits inside a task never runs unrelated work on its stack
 * (that would stretch its timeout or make it wait for a task that waits for
 * it).  It may run inline only the very future it waits for, when that is
 * still queued and the wait has no deadline (cf__tp_run_inline, as Java's
 * ForkJoinPool join).  Otherwise it blocks, and while it does the pool
 * compensates (cf__tp_block): it wakes or starts another worker so queued
 * work still runs, up to max_workers unblocked workers plus at most
 * CF_THREAD_POOL_MAX_EXTRA threads in all; extra workers retire at their
 * next task boundary once the blocking ends.
 */
#include "internal.h"
#include "alloc.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CF__TP_SPIN_NS 50000 /* idle spin before sleeping */
#define CF__TP_MAX_DEPTH 128 /* nesting of tasks run inline by waits */
#define CF__TP_DEFAULT_PREFIX "cf-worker"
#define CF__TP_CLOSED ((uintptr_t)1) /* in the inbox word */

enum { CF__SLOT_FREE, CF__SLOT_LIVE, CF__SLOT_EXITED };

typedef struct cf__tpool cf__tpool;

typedef struct cf__tp_worker {
  cf__worker_ctx ctx; /* first: a ctx pointer is a worker pointer */
  cf__tpool *pool;
  pthread_t thread;
  int slot; /* CF__SLOT_* (pool lock) */
  int id;
  /* Written by this worker only; read by stats. */
  _Atomic int running, blocked;
  _Atomic uint64_t completed, failed, cancelled;
} __attribute__((aligned(64))) cf__tp_worker;

struct cf__tpool {
  cf_executor base;
  /* Written by every submit: a line of its own. */
  _Atomic uintptr_t inbox __attribute__((aligned(64)));
  _Atomic size_t npushed; /* same line: the CAS already owns it */
  /* Read by every submit, written rarely (under the lock). */
  _Atomic int nthreads __attribute__((aligned(64)));
  _Atomic int nspinning, nsleeping;
  _Atomic int nblocked; /* workers blocked in a wait inside a task */
  _Atomic int nwaking;  /* sleepers woken but not yet running */
  _Atomic bool broken;
  /* The workers' side, under the lock. */
  cf__lock lock __attribute__((aligned(64)));
  cf_future *fifo_head, *fifo_tail;
  size_t fifo_len;
  _Atomic size_t fifo_count; /* copy of fifo_len for lock-free peeks */
  size_t npopped;
  /* Workers between completing a task and asking for the next: about to be
   * idle, so a submit in that window need not start a thread.  Counted only
   * while the pool can still grow; at full size nobody reads it. */
  _Atomic int nfinishing;
  _Atomic uint32_t wake_seq; /* futex word of sleeping workers */
  int nslots;                /* max_workers + CF_THREAD_POOL_MAX_EXTRA */
  bool shutdown, self_destroy;
  int broken_code;
  int next_id;
  uint64_t cancelled;      /* cancelled by cf_shutdown(cancel_futures) */
  cf__tp_worker *workers;  /* nslots slots */
  pthread_mutex_t join_mu; /* one joiner at a time */
  /* options */
  char prefix[16];
  cf_initializer_fn init;
  void *initarg;
  size_t initarg_len;
  int64_t idle_ns;
};

static void cf__tp_join_all(cf__tpool *p, cf__tp_worker *self);

static cf__tp_worker *cf__tp_self(cf__tpool *p) {
  cf__worker_ctx *ctx = cf__tls_worker;
  if (!ctx)
    return NULL;
  cf__tp_worker *w = (cf__tp_worker *)ctx;
  return w->pool == p ? w : NULL;
}

/* ---- the queue ----------------------------------------------------------- */

static cf_future *cf__inbox_list(uintptr_t word) {
  return (cf_future *)(word & ~CF__TP_CLOSED);
}

/* Lock-free: any thread.  Fails once the pool is closed. */
static int cf__tp_push(cf__tpool *p, cf_future *f) {
  uintptr_t h = atomic_load_explicit(&p->inbox, memory_order_relaxed);
  do {
    if (h & CF__TP_CLOSED)
      return atomic_load(&p->broken) ? CF_EBROKEN : CF_ESHUTDOWN;
    f->next = cf__inbox_list(h);
  } while (!atomic_compare_exchange_weak_explicit(
      &p->inbox, &h, (uintptr_t)f, memory_order_seq_cst, memory_order_relaxed));
  atomic_fetch_add_explicit(&p->npushed, 1, memory_order_relaxed);
  return CF_OK;
}

/* Anything queued?  Lock-free, for spinners. */
static bool cf__tp_has_work(cf__tpool *p) {
  return atomic_load_explicit(&p->fifo_count, memory_order_relaxed) ||
         cf__inbox_list(atomic_load(&p->inbox));
}

/* Moves the inbox (newest first) to the FIFO's tail, oldest first. */
static void cf__tp_refill_locked(cf__tpool *p) {
  uintptr_t h = atomic_load_explicit(&p->inbox, memory_order_acquire);
  while (cf__inbox_list(h) && !atomic_compare_exchange_weak_explicit(
                                  &p->inbox, &h, h & CF__TP_CLOSED,
                                  memory_order_acquire, memory_order_acquire))
    ;
  cf_future *l = cf__inbox_list(h), *rev = NULL, *last = l;
  size_t n = 0;
  while (l) {
    cf_future *next = l->next;
    l->next = rev;
    rev = l;
    l = next;
    n++;
  }
  if (!n)
    return;
  if (p->fifo_tail)
    p->fifo_tail->next = rev;
  else
    p->fifo_head = rev;
  p->fifo_tail = last;
  p->fifo_len += n;
  atomic_store_explicit(&p->fifo_count, p->fifo_len, memory_order_relaxed);
}

static cf_future *cf__tp_pop_locked(cf__tpool *p) {
  if (!p->fifo_head)
    cf__tp_refill_locked(p);
  cf_future *f = p->fifo_head;
  if (f) {
    p->fifo_head = f->next;
    if (!p->fifo_head)
      p->fifo_tail = NULL;
    p->fifo_len--;
    p->npopped++;
    atomic_store_explicit(&p->fifo_count, p->fifo_len, memory_order_relaxed);
  }
  return f;
}

/* Queued futures, FIFO and inbox (a push may be counted a moment late). */
static size_t cf__tp_queued_locked(cf__tpool *p) {
  size_t pushed = atomic_load_explicit(&p->npushed, memory_order_relaxed);
  return pushed > p->npopped ? pushed - p->npopped : 0;
}

/* Empties the queue into a NULL-terminated list linked through f->next. */
static cf_future *cf__tp_steal_locked(cf__tpool *p) {
  cf__tp_refill_locked(p);
  cf_future *list = p->fifo_head;
  p->fifo_head = p->fifo_tail = NULL;
  p->npopped += p->fifo_len;
  p->fifo_len = 0;
  atomic_store_explicit(&p->fifo_count, 0, memory_order_relaxed);
  return list;
}

/* Wakes every sleeper (shutdown, broken). */
static void cf__tp_wake_all_locked(cf__tpool *p) {
  atomic_fetch_add(&p->wake_seq, 1);
}

/* Workers that are not blocked in a wait: those max_workers bounds. */
static int cf__tp_unblocked(cf__tpool *p) {
  return atomic_load(&p->nthreads) - atomic_load(&p->nblocked);
}

/* Marks one sleeper to be woken (pool lock held); the caller wakes it with
 * cf__futex_wake() after dropping the lock.  False if none sleeps. */
static bool cf__tp_wake_one_locked(cf__tpool *p) {
  if (atomic_load(&p->nsleeping) <= atomic_load(&p->nwaking))
    return false;
  atomic_fetch_add(&p->nwaking, 1);
  atomic_fetch_add(&p->wake_seq, 1);
  return true;
}

/* ---- running tasks ------------------------------------------------------- */

/* Bumps a counter only this worker writes (no atomic RMW needed). */
static void cf__tp_count(_Atomic uint64_t *c) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                        memory_order_relaxed);
}

/* Runs a started future's task on this thread and completes it.  Returns
 * whether the worker was counted in nfinishing (only when `to_idle`: it
 * goes back to the queue next; see nfinishing). */
static bool cf__tp_execute(cf__tp_worker *w, cf_future *f, bool to_idle) {
  cf__tpool *p = w->pool;
  atomic_fetch_add_explicit(&w->running, 1, memory_order_relaxed);
  cf_task t;
  int rc = cf__future_invoke(f, &t);
  /* Count ourselves about to be idle before the completion wakes the
   * submitter, who may submit again at once. */
  bool finishing = to_idle && cf__tp_unblocked(p) < p->base.max_workers;
  if (finishing)
    atomic_fetch_add_explicit(&p->nfinishing, 1, memory_order_relaxed);
  /* Counted before the completion, so whoever it wakes sees it. */
  cf__tp_count(rc == 0 ? &w->completed
               : rc == CF_ECANCELLED && cf_future_stop_requested(f)
                   ? &w->cancelled
                   : &w->failed);
  atomic_fetch_sub_explicit(&w->running, 1, memory_order_relaxed);
  cf__future_finish(f, rc, &t);
  return finishing;
}

/* Runs a future taken from the queue, unless it was cancelled or a wait ran
 * it inline meanwhile.  Returns whether the worker was counted in
 * nfinishing. */
static bool cf__tp_run(cf__tp_worker *w, cf_future *f) {
  bool finishing = false;
  if (cf__future_start(f))
    finishing = cf__tp_execute(w, f, true);
  else if (cf_future_cancelled(f))
    cf__tp_count(&w->cancelled);
  /* else: a wait ran it inline (cf__tp_run_inline), it is done already */
  cf__queue_drop(f); /* the executor's (the queue's) reference */
  return finishing;
}

/* The pool cannot run tasks any more: fail what is queued, refuse submits. */
static void cf__tp_break(cf__tpool *p, int code) {
  cf__lock_acquire(&p->lock);
  cf_future *list = NULL;
  if (!atomic_load(&p->broken)) {
    atomic_store(&p->broken, true);
    atomic_fetch_or(&p->inbox, CF__TP_CLOSED);
    p->broken_code = code;
    list = cf__tp_steal_locked(p);
    cf__tp_wake_all_locked(p);
  }
  cf__lock_release(&p->lock);
  cf__futex_wake(&p->wake_seq, INT_MAX);
  while (list) {
    cf_future *next = list->next;
    char *msg = NULL;
    if (cf__asprintf(&msg, "thread pool initializer failed with code %d",
                     code) < 0)
      msg = NULL;
    cf__future_fail_queued(list, CF_EBROKEN, code, msg);
    cf__queue_drop(list);
    list = next;
  }
}

/* Marks w gone (pool lock held).  Returns true when the pool must be freed
 * by this thread (its last reference was dropped by one of its tasks). */
static bool cf__tp_retire_locked(cf__tpool *p, cf__tp_worker *w) {
  p->nthreads--;
  w->slot = CF__SLOT_EXITED;
  return p->self_destroy && p->nthreads == 0;
}

/* Spins a short while, without the lock, for work to arrive; one worker
 * at a time.  Called and returns with the lock held. */
static void cf__tp_spin_locked(cf__tpool *p) {
  atomic_fetch_add(&p->nspinning, 1);
  cf__lock_release(&p->lock);
  int64_t end = cf__now_ns() + CF__TP_SPIN_NS;
  do {
    for (int i = 0; i < 64; i++) {
      if (cf__tp_has_work(p))
        goto done;
      cf__cpu_relax();
    }
    /* Let a runnable submitter on this CPU have it: it is the one who will
     * give us work. */
    sched_yield();
  } while (cf__now_ns() < end);
done:
  cf__lock_acquire(&p->lock);
  atomic_fetch_sub(&p->nspinning, 1);
}

/* Sleeps until a submit wakes this worker or the idle timeout passes.
 * Called and returns with the lock held.  True when the worker was idle too
 * long and no work came: it exits (a later submit starts a new thread). */
static bool cf__tp_sleep_locked(cf__tpool *p) {
  /* Announce the sleep, then look once more (see the top comment). */
  atomic_fetch_add(&p->nsleeping, 1);
  if (cf__tp_has_work(p)) {
    atomic_fetch_sub(&p->nsleeping, 1);
    return false;
  }
  uint32_t seq = atomic_load(&p->wake_seq);
  cf__lock_release(&p->lock);
  int r = cf__futex_wait(&p->wake_seq, seq,
                         p->idle_ns > 0 ? cf__deadline(p->idle_ns) : CF__NEVER);
  cf__lock_acquire(&p->lock);
  atomic_fetch_sub(&p->nsleeping, 1);
  if (atomic_load(&p->nwaking))
    atomic_fetch_sub(&p->nwaking, 1);
  return r == ETIMEDOUT && !cf__tp_has_work(p);
}

/* Takes the next task, or returns NULL when this worker must exit (and has
 * been retired; *free_pool tells whether it must also free the pool). */
static cf_future *cf__tp_take(cf__tpool *p, cf__tp_worker *w, bool finished,
                              bool *free_pool) {
  bool spun = false, wake = false;
  cf__lock_acquire(&p->lock);
  if (finished)
    atomic_fetch_sub_explicit(&p->nfinishing, 1, memory_order_relaxed);
  for (;;) {
    /* More unblocked workers than max_workers: a blocking has ended, and
     * an extra worker started to compensate for it retires now.  Work left
     * queued goes on to a sleeper. */
    if (cf__tp_unblocked(p) > p->base.max_workers) {
      wake = cf__tp_has_work(p) && cf__tp_wake_one_locked(p);
      break;
    }
    cf_future *f = cf__tp_pop_locked(p);
    if (f) {
      /* More work and nobody about to take it: pass the wakeup on. */
      wake = cf__tp_has_work(p) && atomic_load(&p->nspinning) == 0 &&
             cf__tp_wake_one_locked(p);
      cf__lock_release(&p->lock);
      if (wake)
        cf__futex_wake(&p->wake_seq, 1);
      return f;
    }
    if (p->shutdown || atomic_load(&p->broken))
      break;
    if (!spun && atomic_load(&p->nspinning) == 0) {
      spun = true;
      cf__tp_spin_locked(p);
    } else if (cf__tp_sleep_locked(p)) {
      break;
    }
  }
  *free_pool = cf__tp_retire_locked(p, w);
  cf__lock_release(&p->lock);
  if (wake)
    cf__futex_wake(&p->wake_seq, 1);
  return NULL;
}

static void cf__tp_free(cf__tpool *p);

static void *cf__tp_main(void *arg) {
  cf__tp_worker *w = arg;
  cf__tpool *p = w->pool;
  char name[48];
  snprintf(name, sizeof name, "%s-%d", p->prefix, w->id);
  name[15] = '\0'; /* the kernel's limit for a thread name */
  pthread_setname_np(pthread_self(), name);

  bool free_pool = false;
  if (p->init) {
    int rc = p->init(p->initarg, p->initarg_len);
    if (rc != 0)
      cf__tp_break(p, rc);
  }
  cf__tls_worker = &w->ctx;
  cf_future *f;
  bool finished = false;
  while ((f = cf__tp_take(p, w, finished, &free_pool)))
    finished = cf__tp_run(w, f);
  cf__tls_worker = NULL;

  if (free_pool) {
    /* The last reference went away inside one of our tasks: every other
     * worker has retired; join them, then free the pool from here. */
    cf__tp_join_all(p, w);
    pthread_detach(pthread_self());
    cf__tp_free(p);
  }
  return NULL;
}

/* ---- waiting inside a task ----------------------------------------------- */

static int cf__tp_spawn_locked(cf__tpool *p);

/* Queued work that no idle worker will take: wake a sleeper, or start a
 * worker if the unblocked ones are fewer than max_workers (pool lock held).
 * Returns whether a sleeper must be woken after the lock is dropped. */
static bool cf__tp_compensate_locked(cf__tpool *p) {
  size_t queued = cf__tp_queued_locked(p);
  int nspinning = atomic_load(&p->nspinning);
  int nwaking = atomic_load(&p->nwaking);
  if ((size_t)(nspinning + nwaking) < queued && cf__tp_wake_one_locked(p))
    return true;
  size_t idle = (size_t)(nspinning + atomic_load(&p->nsleeping) - nwaking +
                         atomic_load(&p->nfinishing));
  if (queued > idle && cf__tp_unblocked(p) < p->base.max_workers &&
      atomic_load(&p->nthreads) < p->nslots)
    cf__tp_spawn_locked(p); /* on failure the blocked worker just waits */
  return false;
}

/* ctx->block: a worker starts or stops blocking in a wait. */
static void cf__tp_block(cf__worker_ctx *ctx, bool begin) {
  cf__tp_worker *w = (cf__tp_worker *)ctx;
  cf__tpool *p = w->pool;
  bool wake = false;
  cf__lock_acquire(&p->lock);
  if (begin) {
    atomic_fetch_add(&p->nblocked, 1);
    atomic_store_explicit(&w->blocked, 1, memory_order_relaxed);
    wake = cf__tp_compensate_locked(p);
  } else {
    atomic_fetch_sub(&p->nblocked, 1);
    atomic_store_explicit(&w->blocked, 0, memory_order_relaxed);
    /* One worker too many now: wake an idle one so that it retires. */
    if (cf__tp_unblocked(p) > p->base.max_workers)
      wake = cf__tp_wake_one_locked(p);
  }
  cf__lock_release(&p->lock);
  if (wake)
    cf__futex_wake(&p->wake_seq, 1);
}

/* ctx->run_inline: a wait without deadline on f, a task of this pool that
 * no worker has started: run it here.  The queue keeps its entry (and the
 * executor's reference); whoever pops it finds it started and drops it. */
static bool cf__tp_run_inline(cf__worker_ctx *ctx, cf_future *f) {
  cf__tp_worker *w = (cf__tp_worker *)ctx;
  /* A derived future not submitted yet is in no queue: its source may not
   * even be done. */
  if (f->owner != &w->pool->base || ctx->depth >= CF__TP_MAX_DEPTH ||
      (atomic_load(&f->state) & CF__F_DERIVED) || !cf__future_start(f))
    return false;
  ctx->depth++;
  cf__tp_execute(w, f, false); /* back to the wait, not to the queue */
  ctx->depth--;
  return true;
}

/* ---- the backend --------------------------------------------------------- */

/* Starts a worker thread (pool lock held).  Signals are blocked in workers
 * so that they go to the application's own threads.  After shutdown only a
 * never-used slot is taken: cf__tp_join_all() may be joining the others. */
static int cf__tp_spawn_locked(cf__tpool *p) {
  cf__tp_worker *w = NULL;
  for (int i = 0; i < p->nslots; i++) {
    int slot = p->workers[i].slot;
    if (slot == CF__SLOT_FREE || (slot == CF__SLOT_EXITED && !p->shutdown)) {
      w = &p->workers[i];
      break;
    }
  }
  if (!w)
    return CF_EAGAIN;
  if (w->slot == CF__SLOT_EXITED) /* retired (idle timeout, extra worker) */
    pthread_join(w->thread, NULL);
  w->slot = CF__SLOT_FREE;
  w->id = p->next_id++;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int e = cf__pthread_create(&w->thread, NULL, cf__tp_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e != 0)
    return e == ENOMEM ? CF_ENOMEM : CF_EAGAIN;
  w->slot = CF__SLOT_LIVE;
  p->nthreads++;
  return CF_OK;
}

/* The slow half of a submit: wake a sleeper or start a thread, as the
 * counters say. */
static void cf__tp_submit_slow(cf__tpool *p) {
  cf_future *orphans = NULL;
  cf__lock_acquire(&p->lock);
  bool wake = !p->shutdown && cf__tp_compensate_locked(p);
  if (atomic_load(&p->nthreads) == 0)
    orphans = cf__tp_steal_locked(p); /* and none could start */
  cf__lock_release(&p->lock);
  if (wake)
    cf__futex_wake(&p->wake_seq, 1);
  /* The last worker retired after an idle timeout and none can start:
   * better a clear failure than a future that never completes. */
  while (orphans) {
    cf_future *next = orphans->next;
    char *msg = NULL;
    if (cf__asprintf(&msg, "no worker thread could be started") < 0)
      msg = NULL;
    cf__future_fail_queued(orphans, CF_EAGAIN, 0, msg);
    cf__queue_drop(orphans);
    orphans = next;
  }
}

static int cf__tp_submit(cf_executor *ex, cf_future *f) {
  cf__tpool *p = (cf__tpool *)ex;
  bool started = false;
  if (CF__UNLIKELY(atomic_load_explicit(&p->nthreads, memory_order_relaxed) ==
                   0)) {
    /* The first thread starts before the first push, so that a failure to
     * start it can still refuse the submit. */
    cf__lock_acquire(&p->lock);
    int rc = atomic_load(&p->broken) ? CF_EBROKEN
             : p->shutdown           ? CF_ESHUTDOWN
                                     : CF_OK;
    if (rc == CF_OK && atomic_load(&p->nthreads) == 0) {
      rc = cf__tp_spawn_locked(p);
      started = rc == CF_OK;
    }
    cf__lock_release(&p->lock);
    if (rc != CF_OK)
      return rc;
  }
  /* The new thread may take its first look at the queue, find it empty
   * and go to sleep before the push below lands (race point for tests). */
  if (started)
    CF__RACE_POINT(CF__RACE_SUBMIT_BEFORE_PUSH, p);
  int rc = cf__tp_push(p, f);
  if (rc != CF_OK)
    return rc;
  if (started) {
    /* A thread just started for this one; if it already went to sleep
     * (regression: this returned at once and lost that wakeup), wake it.
     * Push then look, against its announce then look: one sees the other. */
    if (atomic_load(&p->nsleeping) > atomic_load(&p->nwaking))
      cf__tp_submit_slow(p);
    return CF_OK;
  }
  /* After the push (seq_cst): who will run it? */
  if (cf__tp_unblocked(p) < p->base.max_workers ||
      (atomic_load(&p->nspinning) == 0 &&
       atomic_load(&p->nsleeping) > atomic_load(&p->nwaking)))
    cf__tp_submit_slow(p);
  return CF_OK;
}

/* Joins every worker but self.  Passes repeat until a pass finds nothing
 * to join: a worker still running may start an extra one (compensating for
 * a blocking wait) in a slot an earlier pass went by; once no other worker
 * lives, nobody can. */
static void cf__tp_join_all(cf__tpool *p, cf__tp_worker *self) {
  pthread_mutex_lock(&p->join_mu);
  for (bool again = true; again;) {
    again = false;
    for (int i = 0; i < p->nslots; i++) {
      cf__tp_worker *w = &p->workers[i];
      if (w == self)
        continue;
      cf__lock_acquire(&p->lock);
      int slot = w->slot;
      cf__lock_release(&p->lock);
      if (slot == CF__SLOT_FREE)
        continue;
      /* After shutdown nobody reuses a used slot: it is ours to join. */
      pthread_join(w->thread, NULL);
      cf__lock_acquire(&p->lock);
      w->slot = CF__SLOT_FREE;
      cf__lock_release(&p->lock);
      again = true;
    }
  }
  pthread_mutex_unlock(&p->join_mu);
}

static int cf__tp_shutdown(cf_executor *ex, bool wait, bool cancel_futures) {
  cf__tpool *p = (cf__tpool *)ex;
  cf__lock_acquire(&p->lock);
  p->shutdown = true;
  atomic_fetch_or(&p->inbox, CF__TP_CLOSED);
  cf_future *list = cancel_futures ? cf__tp_steal_locked(p) : NULL;
  cf__tp_wake_all_locked(p);
  cf__lock_release(&p->lock);
  cf__futex_wake(&p->wake_seq, INT_MAX);

  uint64_t n = 0;
  while (list) {
    cf_future *next = list->next;
    /* Callbacks run here, on the caller's thread.  A wait may have run
     * the task inline meanwhile: that one was not cancelled. */
    if (cf_future_cancel(list) == CF_OK)
      n++;
    cf__queue_drop(list);
    list = next;
  }
  if (n) {
    cf__lock_acquire(&p->lock);
    p->cancelled += n;
    cf__lock_release(&p->lock);
  }
  if (wait)
    cf__tp_join_all(p, cf__tp_self(p));
  return CF_OK;
}

static void cf__tp_free(cf__tpool *p) {
  pthread_mutex_destroy(&p->join_mu);
  free(p->workers);
  free(p->initarg);
  free(p);
}

static void cf__tp_destroy(cf_executor *ex) {
  cf__tpool *p = (cf__tpool *)ex;
  cf__tp_worker *self = cf__tp_self(p);
  if (self) {
    /* Dropped from inside one of our own tasks: we cannot join ourselves.
     * Shut down, and let the last worker to exit free the pool. */
    cf__tp_shutdown(ex, false, false);
    cf__lock_acquire(&p->lock);
    p->self_destroy = true;
    cf__lock_release(&p->lock);
    return;
  }
  cf__tp_shutdown(ex, true, false);
  cf__tp_free(p);
}

static void cf__tp_purge(cf_executor *ex) {
  cf__tpool *p = (cf__tpool *)ex;
  cf_future *drop = NULL;
  cf__lock_acquire(&p->lock);
  cf__tp_refill_locked(p);
  cf_future **at = &p->fifo_head, *last = NULL;
  while (*at) {
    cf_future *f = *at;
    if (cf_future_cancelled(f)) {
      *at = f->next;
      f->next = drop;
      drop = f;
      p->fifo_len--;
      p->npopped++; /* as if a worker had taken it */
      p->cancelled++;
    } else {
      last = f;
      at = &f->next;
    }
  }
  p->fifo_tail = last;
  atomic_store_explicit(&p->fifo_count, p->fifo_len, memory_order_relaxed);
  cf__lock_release(&p->lock);
  while (drop) {
    cf_future *next = drop->next;
    cf__queue_drop(drop); /* the queue's reference, and its slot */
    drop = next;
  }
}

static void cf__tp_stats(cf_executor *ex, cf_executor_stats *st) {
  cf__tpool *p = (cf__tpool *)ex;
  cf__lock_acquire(&p->lock);
  st->workers = (size_t)p->nthreads;
  st->idle_workers =
      (size_t)(atomic_load(&p->nspinning) + atomic_load(&p->nsleeping));
  st->queued = cf__tp_queued_locked(p);
  st->running = 0;
  st->completed = st->failed = 0;
  st->cancelled = p->cancelled;
  st->blocked = (size_t)atomic_load(&p->nblocked);
  st->extra_workers = st->workers > (size_t)p->base.max_workers
                          ? st->workers - (size_t)p->base.max_workers
                          : 0;
  for (int i = 0; i < p->nslots; i++) {
    cf__tp_worker *w = &p->workers[i];
    st->running += (size_t)atomic_load(&w->running);
    st->completed += atomic_load(&w->completed);
    st->failed += atomic_load(&w->failed);
    st->cancelled += atomic_load(&w->cancelled);
  }
  cf__lock_release(&p->lock);
}

/* In a fork child: the threads are gone, the locks may be held forever.
 * Only memory is given back; queued futures are left as they are. */
static void cf__tp_forget(cf_executor *ex) {
  cf__tpool *p = (cf__tpool *)ex;
  free(p->workers);
  free(p->initarg);
  free(p);
}

static const cf__backend cf__tp_backend = {
    .submit = cf__tp_submit,
    .shutdown = cf__tp_shutdown,
    .destroy = cf__tp_destroy,
    .stats = cf__tp_stats,
    .purge = cf__tp_purge,
    .forget = cf__tp_forget,
};

int cf_thread_pool_options_init(cf_thread_pool_options *o) {
  if (!o)
    return CF_EINVAL;
  *o = (cf_thread_pool_options)CF_THREAD_POOL_OPTIONS_INIT;
  return CF_OK;
}

static int cf__default_thread_workers(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1)
    n = 1;
  return n + 4 > 32 ? 32 : (int)n + 4;
}

/* The caller's options, checked, in o; words for every refusal. */
static int cf__tp_options(const cf_thread_pool_options *opts,
                          cf_thread_pool_options *o) {
  *o = (cf_thread_pool_options)CF_THREAD_POOL_OPTIONS_INIT;
  if (opts && cf__opts_in(o, sizeof *o, opts, CF__TP_OPTIONS_V1) != CF_OK) {
    cf__set_last_error("options: size %zu is not that of a "
                       "cf_thread_pool_options set up by "
                       "cf_thread_pool_options_init(), or fields this "
                       "library does not know are set",
                       opts->size);
    return CF_EINVAL;
  }
  if (o->max_workers < 0 || o->max_workers > CF_THREAD_POOL_MAX_WORKERS) {
    cf__set_last_error("max_workers %d is out of range (0 to %d)",
                       o->max_workers, CF_THREAD_POOL_MAX_WORKERS);
    return CF_EINVAL;
  }
  if (o->initarg_len && !o->initarg) {
    cf__set_last_error("initarg is NULL but initarg_len is %zu",
                       o->initarg_len);
    return CF_EINVAL;
  }
  return CF_OK;
}

/* A pool for max unblocked workers, its slots ready (no thread yet); NULL
 * when memory is short. */
static cf__tpool *cf__tp_alloc(int max, size_t initarg_len) {
  /* aligned_alloc: the struct keeps hot fields on separate cache lines. */
  cf__tpool *p = cf__aligned_alloc(64, sizeof *p);
  if (!p)
    return NULL;
  memset(p, 0, sizeof *p);
  p->nslots = max + CF_THREAD_POOL_MAX_EXTRA;
  p->workers = cf__aligned_alloc(64, (size_t)p->nslots * sizeof *p->workers);
  if (initarg_len)
    p->initarg = cf__malloc(initarg_len);
  if (!p->workers || (initarg_len && !p->initarg) ||
      pthread_mutex_init(&p->join_mu, NULL) != 0) {
    free(p->workers);
    free(p->initarg);
    free(p);
    return NULL;
  }
  memset(p->workers, 0, (size_t)p->nslots * sizeof *p->workers);
  for (int i = 0; i < p->nslots; i++) {
    p->workers[i].pool = p;
    p->workers[i].ctx.pool = &p->base;
    p->workers[i].ctx.run_inline = cf__tp_run_inline;
    p->workers[i].ctx.block = cf__tp_block;
  }
  return p;
}

int cf_thread_pool_create(const cf_thread_pool_options *opts,
                          cf_executor **out) {
  cf__clear_last_error();
  if (!out) {
    cf__set_last_error("cf_thread_pool_create: out is NULL");
    return CF_EINVAL;
  }
  *out = NULL;
  cf_thread_pool_options o;
  int rc = cf__tp_options(opts, &o);
  if (rc != CF_OK)
    return rc;
  int max = o.max_workers ? o.max_workers : cf__default_thread_workers();
  cf__tpool *p = cf__tp_alloc(max, o.initarg_len);
  if (!p) {
    cf__set_last_error("out of memory for %d worker slots",
                       max + CF_THREAD_POOL_MAX_EXTRA);
    return CF_ENOMEM;
  }
  if (o.initarg_len)
    memcpy(p->initarg, o.initarg, o.initarg_len);
  p->initarg_len = o.initarg_len;
  p->init = o.initializer;
  p->idle_ns = o.idle_timeout_ns;
  snprintf(p->prefix, sizeof p->prefix, "%s",
           o.thread_name_prefix ? o.thread_name_prefix : CF__TP_DEFAULT_PREFIX);
  cf__executor_init(&p->base, &cf__tp_backend, max);
  cf__executor_bound(&p->base, o.max_queued);
  *out = &p->base;
  return CF_OK;
}
