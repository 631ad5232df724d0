/*
 * The thread-pool backend.
 *
 * Data path: cf_submit() -> cf__tp_submit() pushes the future on the pool's
 * ring under the pool lock and, if no idle worker will see it, wakes a
 * sleeper or starts a thread -> a worker's cf__tp_take() pops it ->
 * cf__tp_run() starts it, runs the task (future.c completes it: waiters,
 * callbacks) and drops the executor's reference.
 *
 * Idle workers first spin briefly on an atomic copy of the queue length (at
 * most one spinner at a time, so an idle pool does not burn every core), then
 * sleep on a futex word.  A worker that blocks in a wait helps instead: it
 * runs queued tasks of its pool (cf__tp_help), and a submit that finds no
 * idle worker pokes such a helper.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CF__TP_SPIN_NS 50000   /* idle spin before sleeping */
#define CF__TP_MAX_DEPTH 64    /* nesting of tasks run while helping */
#define CF__TP_DEFAULT_PREFIX "cf-worker"

enum { CF__SLOT_FREE, CF__SLOT_LIVE, CF__SLOT_EXITED };

typedef struct cf__tpool cf__tpool;

typedef struct cf__tp_worker {
  cf__worker_ctx ctx; /* first: a ctx pointer is a worker pointer */
  cf__tpool *pool;
  pthread_t thread;
  int slot; /* CF__SLOT_* (pool lock) */
  int id;
  /* Written by this worker only; read by stats. */
  _Atomic int running;
  _Atomic uint64_t completed, failed, cancelled;
} __attribute__((aligned(64))) cf__tp_worker;

struct cf__tpool {
  cf_executor base;
  cf__lock lock;
  /* The queue: a ring of futures, each holding the executor's reference. */
  cf_future **ring;
  size_t cap, head, len;
  _Atomic size_t nqueued; /* copy of len for lock-free peeks by spinners */
  _Atomic int nthreads; /* written under the lock */
  int nspinning, nsleeping, nwaking;
  /* Workers between completing a task and asking for the next: about to be
   * idle, so a submit in that window need not start a thread.  Counted only
   * while the pool can still grow; at full size nobody reads it. */
  _Atomic int nfinishing;
  _Atomic uint32_t wake_seq; /* futex word of sleeping workers */
  cf__waiter *helpers;       /* workers blocked in a wait */
  bool shutdown, broken, self_destroy;
  int broken_code;
  int next_id;
  uint64_t cancelled; /* cancelled by cf_shutdown(cancel_futures) */
  cf__tp_worker *workers; /* max_workers slots */
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

/* ---- the queue (pool lock held) ---------------------------------------------- */

static int cf__tp_push_locked(cf__tpool *p, cf_future *f) {
  if (p->len == p->cap) {
    size_t ncap = p->cap ? p->cap * 2 : 64;
    cf_future **nr = malloc(ncap * sizeof *nr);
    if (!nr)
      return CF_ENOMEM;
    for (size_t i = 0; i < p->len; i++)
      nr[i] = p->ring[(p->head + i) & (p->cap - 1)];
    free(p->ring);
    p->ring = nr;
    p->cap = ncap;
    p->head = 0;
  }
  p->ring[(p->head + p->len) & (p->cap - 1)] = f;
  p->len++;
  atomic_store_explicit(&p->nqueued, p->len, memory_order_relaxed);
  return CF_OK;
}

static cf_future *cf__tp_pop_locked(cf__tpool *p) {
  cf_future *f = p->ring[p->head];
  p->head = (p->head + 1) & (p->cap - 1);
  p->len--;
  atomic_store_explicit(&p->nqueued, p->len, memory_order_relaxed);
  return f;
}

/* Empties the queue into a NULL-terminated list linked through f->next. */
static cf_future *cf__tp_steal_locked(cf__tpool *p) {
  cf_future *list = NULL, **tail = &list;
  while (p->len) {
    cf_future *f = cf__tp_pop_locked(p);
    f->next = NULL;
    *tail = f;
    tail = &f->next;
  }
  return list;
}

/* Wakes every sleeper and helper (shutdown, broken). */
static void cf__tp_wake_all_locked(cf__tpool *p) {
  atomic_fetch_add(&p->wake_seq, 1);
  for (cf__waiter *h = p->helpers; h; h = h->next_helper)
    cf__waiter_poke(h);
}

/* ---- running tasks --------------------------------------------------------------- */

/* Runs f if it was not cancelled.  Returns whether the worker was counted
 * in nfinishing (see there). */
static bool cf__tp_run(cf__tp_worker *w, cf_future *f, bool finishing) {
  cf__tpool *p = w->pool;
  if (cf__future_start(f)) {
    atomic_fetch_add_explicit(&w->running, 1, memory_order_relaxed);
    cf_task t;
    int rc = cf__future_invoke(f, &t);
    /* Count ourselves about to be idle before the completion wakes the
     * submitter, who may submit again at once. */
    if (finishing &&
        atomic_load_explicit(&p->nthreads, memory_order_relaxed) <
            p->base.max_workers)
      atomic_fetch_add_explicit(&p->nfinishing, 1, memory_order_relaxed);
    else
      finishing = false;
    cf__future_finish(f, rc, &t);
    atomic_fetch_sub_explicit(&w->running, 1, memory_order_relaxed);
    rc = rc == 0 ? CF_OK : CF_ETASK;
    _Atomic uint64_t *c = rc == CF_OK ? &w->completed : &w->failed;
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
  } else {
    finishing = false;
    atomic_store_explicit(
        &w->cancelled,
        atomic_load_explicit(&w->cancelled, memory_order_relaxed) + 1,
        memory_order_relaxed);
  }
  cf_future_release(f); /* the executor's reference */
  return finishing;
}

/* The pool cannot run tasks any more: fail what is queued, refuse submits. */
static void cf__tp_break(cf__tpool *p, int code) {
  cf__lock_acquire(&p->lock);
  cf_future *list = NULL;
  if (!p->broken) {
    p->broken = true;
    p->broken_code = code;
    list = cf__tp_steal_locked(p);
    cf__tp_wake_all_locked(p);
  }
  cf__lock_release(&p->lock);
  cf__futex_wake(&p->wake_seq, INT_MAX);
  while (list) {
    cf_future *next = list->next;
    char *msg = NULL;
    if (asprintf(&msg, "thread pool initializer failed with code %d", code) <
        0)
      msg = NULL;
    cf__future_fail(list, CF_EBROKEN, code, msg);
    cf_future_release(list);
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

/* Takes the next task, or returns NULL when this worker must exit (and has
 * been retired; *free_pool tells whether it must also free the pool). */
static cf_future *cf__tp_take(cf__tpool *p, cf__tp_worker *w,
                              bool finished, bool *free_pool) {
  bool spun = false;
  cf__lock_acquire(&p->lock);
  if (finished)
    atomic_fetch_sub_explicit(&p->nfinishing, 1, memory_order_relaxed);
  for (;;) {
    if (p->len) {
      cf_future *f = cf__tp_pop_locked(p);
      /* More work and nobody about to take it: pass the wakeup on. */
      bool wake = p->len && p->nspinning == 0 && p->nsleeping > p->nwaking;
      if (wake) {
        p->nwaking++;
        atomic_fetch_add(&p->wake_seq, 1);
      }
      cf__lock_release(&p->lock);
      if (wake)
        cf__futex_wake(&p->wake_seq, 1);
      return f;
    }
    if (p->shutdown || p->broken)
      break;
    if (!spun && p->nspinning == 0) {
      spun = true;
      p->nspinning++;
      cf__lock_release(&p->lock);
      int64_t end = cf__now_ns() + CF__TP_SPIN_NS;
      do {
        for (int i = 0; i < 64; i++) {
          if (atomic_load_explicit(&p->nqueued, memory_order_relaxed))
            goto spun;
          cf__cpu_relax();
        }
      } while (cf__now_ns() < end);
    spun:
      cf__lock_acquire(&p->lock);
      p->nspinning--;
      continue;
    }
    p->nsleeping++;
    uint32_t seq = atomic_load(&p->wake_seq);
    cf__lock_release(&p->lock);
    int r = cf__futex_wait(&p->wake_seq, seq,
                           p->idle_ns > 0 ? cf__deadline(p->idle_ns)
                                          : CF__NEVER);
    cf__lock_acquire(&p->lock);
    p->nsleeping--;
    if (p->nwaking)
      p->nwaking--;
    if (r == ETIMEDOUT && p->len == 0)
      break; /* idle too long: exit, a later submit starts a new thread */
  }
  *free_pool = cf__tp_retire_locked(p, w);
  cf__lock_release(&p->lock);
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
    finished = cf__tp_run(w, f, true);
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

/* ---- help while waiting ----------------------------------------------------------- */

static int cf__tp_help(cf__worker_ctx *ctx, cf__waiter *wt, uint32_t seq0,
                       int64_t deadline) {
  cf__tp_worker *w = (cf__tp_worker *)ctx;
  cf__tpool *p = w->pool;
  if (ctx->depth >= CF__TP_MAX_DEPTH)
    return cf__waiter_park(wt, seq0, deadline);
  cf__lock_acquire(&p->lock);
  if (p->len) {
    cf_future *f = cf__tp_pop_locked(p);
    cf__lock_release(&p->lock);
    ctx->depth++;
    cf__tp_run(w, f, false); /* not going back to idle: still waiting */
    ctx->depth--;
    return 0;
  }
  /* Nothing queued: sleep, but let a submit poke us when work arrives. */
  wt->next_helper = p->helpers;
  p->helpers = wt;
  cf__lock_release(&p->lock);
  int r = cf__waiter_park(wt, seq0, deadline);
  cf__lock_acquire(&p->lock);
  for (cf__waiter **h = &p->helpers; *h; h = &(*h)->next_helper) {
    if (*h == wt) {
      *h = wt->next_helper;
      break;
    }
  }
  cf__lock_release(&p->lock);
  return r;
}

/* ---- the backend ------------------------------------------------------------------ */

/* Starts a worker thread (pool lock held).  Signals are blocked in workers
 * so that they go to the application's own threads. */
static int cf__tp_spawn_locked(cf__tpool *p) {
  cf__tp_worker *w = NULL;
  for (int i = 0; i < p->base.max_workers; i++) {
    if (p->workers[i].slot != CF__SLOT_LIVE) {
      w = &p->workers[i];
      break;
    }
  }
  if (!w)
    return CF_EAGAIN;
  if (w->slot == CF__SLOT_EXITED) /* retired after an idle timeout */
    pthread_join(w->thread, NULL);
  w->slot = CF__SLOT_FREE;
  w->id = p->next_id++;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int e = pthread_create(&w->thread, NULL, cf__tp_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e != 0)
    return e == ENOMEM ? CF_ENOMEM : CF_EAGAIN;
  w->slot = CF__SLOT_LIVE;
  p->nthreads++;
  return CF_OK;
}

static int cf__tp_submit(cf_executor *ex, cf_future *f) {
  cf__tpool *p = (cf__tpool *)ex;
  cf__lock_acquire(&p->lock);
  int rc = p->broken ? CF_EBROKEN : p->shutdown ? CF_ESHUTDOWN : CF_OK;
  if (rc == CF_OK)
    rc = cf__tp_push_locked(p, f);
  if (rc != CF_OK) {
    cf__lock_release(&p->lock);
    return rc;
  }
  /* Who will run it?  Idle workers not yet woken are spinners and sleepers
   * that no earlier submit claimed. */
  int idle = p->nspinning + p->nsleeping - p->nwaking +
             atomic_load_explicit(&p->nfinishing, memory_order_relaxed);
  bool wake = false;
  if ((size_t)p->nspinning + (size_t)p->nwaking < p->len &&
      p->nsleeping > p->nwaking) {
    p->nwaking++;
    atomic_fetch_add(&p->wake_seq, 1);
    wake = true;
  } else if (p->len > (size_t)idle && p->nthreads < p->base.max_workers) {
    /* As Python: a new thread when none is idle, up to max_workers. */
    int src = cf__tp_spawn_locked(p);
    if (src != CF_OK && p->nthreads == 0) {
      /* Nobody could ever run it: take it back and say so. */
      p->len--;
      atomic_store_explicit(&p->nqueued, p->len, memory_order_relaxed);
      cf__lock_release(&p->lock);
      return src;
    }
  }
  if (!wake && p->helpers && p->len > (size_t)idle)
    cf__waiter_poke(p->helpers); /* a worker blocked in a wait can run it */
  cf__lock_release(&p->lock);
  if (wake)
    cf__futex_wake(&p->wake_seq, 1);
  return CF_OK;
}

static void cf__tp_join_all(cf__tpool *p, cf__tp_worker *self) {
  pthread_mutex_lock(&p->join_mu);
  for (int i = 0; i < p->base.max_workers; i++) {
    cf__tp_worker *w = &p->workers[i];
    if (w == self)
      continue;
    cf__lock_acquire(&p->lock);
    int slot = w->slot;
    cf__lock_release(&p->lock);
    if (slot == CF__SLOT_FREE)
      continue;
    /* No thread starts after shutdown, so this slot is ours to join. */
    pthread_join(w->thread, NULL);
    cf__lock_acquire(&p->lock);
    w->slot = CF__SLOT_FREE;
    cf__lock_release(&p->lock);
  }
  pthread_mutex_unlock(&p->join_mu);
}

static int cf__tp_shutdown(cf_executor *ex, bool wait, bool cancel_futures) {
  cf__tpool *p = (cf__tpool *)ex;
  cf__lock_acquire(&p->lock);
  p->shutdown = true;
  cf_future *list = cancel_futures ? cf__tp_steal_locked(p) : NULL;
  cf__tp_wake_all_locked(p);
  cf__lock_release(&p->lock);
  cf__futex_wake(&p->wake_seq, INT_MAX);

  uint64_t n = 0;
  while (list) {
    cf_future *next = list->next;
    cf_future_cancel(list); /* callbacks run here, on the caller's thread */
    cf_future_release(list);
    n++;
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
  free(p->ring);
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

static void cf__tp_stats(cf_executor *ex, cf_executor_stats *st) {
  cf__tpool *p = (cf__tpool *)ex;
  cf__lock_acquire(&p->lock);
  st->workers = (size_t)p->nthreads;
  st->idle_workers = (size_t)(p->nspinning + p->nsleeping);
  st->queued = p->len;
  st->running = 0;
  st->completed = st->failed = 0;
  st->cancelled = p->cancelled;
  for (int i = 0; i < p->base.max_workers; i++) {
    cf__tp_worker *w = &p->workers[i];
    st->running += (size_t)atomic_load(&w->running);
    st->completed += atomic_load(&w->completed);
    st->failed += atomic_load(&w->failed);
    st->cancelled += atomic_load(&w->cancelled);
  }
  cf__lock_release(&p->lock);
}

static const cf__backend cf__tp_backend = {
    .name = "thread",
    .submit = cf__tp_submit,
    .shutdown = cf__tp_shutdown,
    .destroy = cf__tp_destroy,
    .stats = cf__tp_stats,
};

int cf_thread_pool_options_init(cf_thread_pool_options *o) {
  if (!o)
    return CF_EINVAL;
  memset(o, 0, sizeof *o);
  return CF_OK;
}

static int cf__default_thread_workers(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1)
    n = 1;
  return n + 4 > 32 ? 32 : (int)n + 4;
}

int cf_thread_pool_create(const cf_thread_pool_options *opts,
                          cf_executor **out) {
  if (!out)
    return CF_EINVAL;
  *out = NULL;
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  if (opts)
    o = *opts;
  if (o.max_workers < 0 || (o.initarg_len && !o.initarg))
    return CF_EINVAL;
  int max = o.max_workers ? o.max_workers : cf__default_thread_workers();

  cf__tpool *p = calloc(1, sizeof *p);
  if (!p)
    return CF_ENOMEM;
  p->workers = aligned_alloc(64, (size_t)max * sizeof *p->workers);
  if (o.initarg_len)
    p->initarg = malloc(o.initarg_len);
  if (!p->workers || (o.initarg_len && !p->initarg) ||
      pthread_mutex_init(&p->join_mu, NULL) != 0) {
    free(p->workers);
    free(p->initarg);
    free(p);
    return CF_ENOMEM;
  }
  memset(p->workers, 0, (size_t)max * sizeof *p->workers);
  for (int i = 0; i < max; i++) {
    p->workers[i].pool = p;
    p->workers[i].ctx.help = cf__tp_help;
  }
  if (o.initarg_len)
    memcpy(p->initarg, o.initarg, o.initarg_len);
  p->initarg_len = o.initarg_len;
  p->init = o.initializer;
  p->idle_ns = o.idle_timeout_ns;
  snprintf(p->prefix, sizeof p->prefix, "%s",
           o.thread_name_prefix ? o.thread_name_prefix
                                : CF__TP_DEFAULT_PREFIX);
  cf__executor_init(&p->base, &cf__tp_backend, max);
  *out = &p->base;
  return CF_OK;
}
