/*
 * Waiting on many futures: the waiter, cf_wait() and cf_as_completed().
 *
 * A waiter registers one link on each future it watches.  The thread that
 * completes a future appends the link to the waiter's ready ring and bumps
 * the waiter's futex word, so the waiting thread wakes once per completion
 * and never rescans the whole set.
 */
#include "internal.h"
#include "alloc.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define CF__PARK_SPIN_NS 20000

int cf__waiter_init(cf__waiter *w, size_t cap) {
  atomic_init(&w->lock.v, 0);
  atomic_init(&w->seq, 0);
  atomic_init(&w->sleeping, 0);
  w->head = w->count = 0;
  w->cap = cap ? cap : 1;
  if (w->cap == 1) {
    w->ready = &w->one;
    return CF_OK;
  }
  w->ready = cf__malloc(w->cap * sizeof *w->ready);
  return w->ready ? CF_OK : CF_ENOMEM;
}

void cf__waiter_fini(cf__waiter *w) {
  if (w->ready != &w->one)
    free(w->ready);
  w->ready = NULL;
}

void cf__waiter_poke(cf__waiter *w) {
  atomic_fetch_add(&w->seq, 1);
  if (atomic_load(&w->sleeping))
    cf__futex_wake(&w->seq, 1);
}

void cf__waiter_notify(cf__listener *link) {
  cf__waiter *w = link->waiter;
  cf__lock_acquire(&w->lock);
  /* Each registered link is notified at most once and cap bounds the links
   * registered at once, so the ring cannot overflow. */
  w->ready[(w->head + w->count) % w->cap] = link;
  w->count++;
  cf__lock_release(&w->lock);
  cf__waiter_poke(w);
}

cf__listener *cf__waiter_pop(cf__waiter *w) {
  cf__listener *l = NULL;
  cf__lock_acquire(&w->lock);
  if (w->count) {
    l = w->ready[w->head];
    w->head = (w->head + 1) % w->cap;
    w->count--;
  }
  cf__lock_release(&w->lock);
  return l;
}

int cf__waiter_sleep(cf__waiter *w, uint32_t seq0, int64_t deadline) {
  cf__trampoline_drain(); /* a deferred record may complete a watched one */
  int64_t spin_end = cf__now_ns() + CF__PARK_SPIN_NS;
  if (spin_end > deadline)
    spin_end = deadline;
  do {
    for (int i = 0; i < 64; i++) {
      if (atomic_load_explicit(&w->seq, memory_order_relaxed) != seq0)
        return 0;
      cf__cpu_relax();
    }
    sched_yield(); /* the completer may need this CPU (and valgrind's lock) */
  } while (cf__now_ns() < spin_end);
  /* A pool worker tells its pool it blocks, so queued work runs elsewhere. */
  cf__worker_ctx *ctx = cf__tls_worker;
  cf__block(ctx, true);
  /* `sleeping` then `seq`, against the poker's `seq` then `sleeping`: with
   * sequentially consistent accesses one of us sees the other's write. */
  atomic_store(&w->sleeping, 1);
  int r = 0;
  if (atomic_load(&w->seq) == seq0)
    r = cf__futex_wait(&w->seq, seq0, deadline);
  atomic_store(&w->sleeping, 0);
  cf__block(ctx, false);
  return r;
}

/* ---- cf_wait ------------------------------------------------------------- */

static bool cf__is_exception(cf_future *f) {
  int st = cf__future_status(f);
  return st != CF_OK && st != CF_ECANCELLED;
}

static bool cf__wait_satisfied(cf_wait_mode mode, size_t ndone, size_t nexc,
                               size_t n) {
  switch (mode) {
  case CF_FIRST_COMPLETED:
    return ndone > 0 || n == 0;
  case CF_FIRST_EXCEPTION:
    return nexc > 0 || ndone == n;
  default:
    return ndone == n;
  }
}

/* On a pool's own thread: can the wait end only when one of the caller's
 * own futures completes (its task on this stack, or, on a process pool's
 * I/O thread, any pending future of that pool)?  True when every pending
 * future the mode still needs is such a one. */
static bool cf__wait_needs_self(cf_future *const *fs, size_t n,
                                cf_wait_mode mode) {
  size_t others = 0;
  bool self = false;
  for (size_t i = 0; i < n; i++) {
    if (cf_future_done(fs[i]))
      continue;
    if (cf__waits_for_self(fs[i]))
      self = true;
    else
      others++;
  }
  return self && (mode == CF_ALL_COMPLETED || others == 0);
}

/* Registers a link on each future not yet done and waits.  Returns CF_OK,
 * CF_ENOMEM, or CF_EDEADLK when what is left can only complete after the
 * caller returns. */
static int cf__wait_slow(cf_future *const *fs, size_t n, int64_t deadline,
                         cf_wait_mode mode, size_t ndone, size_t nexc) {
  cf__waiter w;
  cf__listener *links = cf__malloc(n * sizeof *links);
  if (!links || cf__waiter_init(&w, n) != CF_OK) {
    free(links);
    return CF_ENOMEM;
  }
  /* Counting restarts: a future may finish between the first scan and its
   * registration, and then it is counted here rather than twice. */
  ndone = nexc = 0;
  int rc = CF_OK;
  for (size_t i = 0; i < n; i++) {
    links[i].waiter = &w;
    links[i].arg = NULL;
    if (!cf__future_add_link(fs[i], &links[i])) {
      links[i].arg = &links[i]; /* marks "not registered" */
      ndone++;
      nexc += cf__is_exception(fs[i]);
    }
  }
  for (;;) {
    uint32_t seq0 = atomic_load(&w.seq);
    cf__listener *l;
    while ((l = cf__waiter_pop(&w))) {
      ndone++;
      nexc += cf__is_exception(fs[l - links]);
    }
    if (cf__wait_satisfied(mode, ndone, nexc, n))
      break;
    if (cf__tls_worker && cf__wait_needs_self(fs, n, mode)) {
      rc = CF_EDEADLK; /* e.g. the other futures all completed meanwhile */
      break;
    }
    if (cf__waiter_sleep(&w, seq0, deadline) == ETIMEDOUT)
      break;
  }
  for (size_t i = 0; i < n; i++)
    if (!links[i].arg)
      cf__future_remove_link(fs[i], &links[i]);
  cf__waiter_fini(&w);
  free(links);
  return rc;
}

/* More futures than a wait's bookkeeping (a link each) could be sized for:
 * no real array is that long. */
#define CF__MAX_WAIT_N (SIZE_MAX / (2 * sizeof(cf__listener)))

int cf_wait(cf_future *const *fs, size_t n, int64_t timeout_ns,
            cf_wait_mode mode, bool *done, size_t *n_done) {
  if ((!fs && n) || n > CF__MAX_WAIT_N ||
      (mode != CF_FIRST_COMPLETED && mode != CF_FIRST_EXCEPTION &&
       mode != CF_ALL_COMPLETED))
    return CF_EINVAL;
  size_t ndone = 0, nexc = 0;
  for (size_t i = 0; i < n; i++) {
    if (!fs[i])
      return CF_EINVAL;
    if (cf_future_done(fs[i])) {
      ndone++;
      nexc += cf__is_exception(fs[i]);
    }
  }
  int rc = CF_OK;
  cf__worker_ctx *ctx = cf__tls_worker;
  if (!cf__wait_satisfied(mode, ndone, nexc, n) && !cf__no_wait(timeout_ns) &&
      ctx) {
    if (cf__wait_needs_self(fs, n, mode)) {
      rc = CF_EDEADLK;
    } else if (mode == CF_ALL_COMPLETED && timeout_ns == CF_FOREVER &&
               ctx->run_inline) {
      /* Every one must be done before we return: a queued task of our own
       * pool may run right here (see cf_future_wait()). */
      ndone = 0;
      for (size_t i = 0; i < n; i++)
        ndone += cf_future_done(fs[i]) || ctx->run_inline(ctx, fs[i]);
    }
  }
  if (rc == CF_OK && !cf__wait_satisfied(mode, ndone, nexc, n) &&
      !cf__no_wait(timeout_ns))
    rc = cf__wait_slow(fs, n, cf__deadline(timeout_ns), mode, ndone, nexc);
  ndone = 0;
  for (size_t i = 0; i < n; i++) {
    bool d = cf_future_done(fs[i]);
    ndone += d;
    if (done)
      done[i] = d;
  }
  if (n_done)
    *n_done = ndone;
  return rc;
}

/* ---- cf_as_completed ----------------------------------------------------- */

struct cf_as_completed_iter {
  cf_future **fs; /* unique futures, each with a reference held */
  size_t n;
  cf__listener *links;
  cf__waiter w;
  size_t nready, iready; /* fs[0..nready) were done at creation */
  size_t yielded;
  int64_t deadline;
};

typedef struct cf__pos {
  uintptr_t f;
  size_t i;
} cf__pos;

static int cf__cmp_pos(const void *a, const void *b) {
  const cf__pos *x = a, *y = b;
  if (x->f != y->f)
    return (x->f > y->f) - (x->f < y->f);
  return (x->i > y->i) - (x->i < y->i);
}

/* Retains fs[0..n) into it->fs without duplicates, keeping input order: a
 * future yielded twice would be a surprise, and Python's as_completed works
 * on a set.  pos: scratch for n entries.  Returns CF_OK or CF_ENOMEM. */
static int cf__ac_unique(cf_as_completed_iter *it, cf_future *const *fs,
                         size_t n, cf__pos *pos) {
  for (size_t i = 0; i < n; i++)
    pos[i] = (cf__pos){(uintptr_t)fs[i], i};
  qsort(pos, n, sizeof *pos, cf__cmp_pos);
  bool *keep = cf__calloc(n ? n : 1, sizeof *keep);
  if (!keep)
    return CF_ENOMEM;
  for (size_t k = 0; k < n; k++)
    if (k == 0 || pos[k].f != pos[k - 1].f)
      keep[pos[k].i] = true;
  for (size_t i = 0; i < n; i++)
    if (keep[i])
      it->fs[it->n++] = cf_future_retain(fs[i]);
  free(keep);
  return CF_OK;
}

/* Puts the futures already done first, in input order (a stable
 * partition), and watches the rest.  tmp: scratch for it->n entries. */
static void cf__ac_watch(cf_as_completed_iter *it, cf_future **tmp) {
  size_t front = 0, back = 0;
  for (size_t i = 0; i < it->n; i++)
    if (cf_future_done(it->fs[i]))
      it->fs[front++] = it->fs[i];
    else
      tmp[back++] = it->fs[i];
  memcpy(&it->fs[front], tmp, back * sizeof *tmp);
  it->nready = front;
  for (size_t i = front; i < it->n; i++) {
    it->links[i].waiter = &it->w;
    it->links[i].arg = NULL;
    if (!cf__future_add_link(it->fs[i], &it->links[i]))
      cf__waiter_notify(&it->links[i]); /* finished just now */
  }
}

int cf_as_completed_create(cf_future *const *fs, size_t n, int64_t timeout_ns,
                           cf_as_completed_iter **out) {
  if (!out)
    return CF_EINVAL;
  *out = NULL;
  if ((!fs && n) || n > CF__MAX_WAIT_N)
    return CF_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!fs[i])
      return CF_EINVAL;
  cf_as_completed_iter *it = cf__calloc(1, sizeof *it);
  /* Scratch for the sort, then for the partition: the larger of the two. */
  size_t per = sizeof(cf__pos) > sizeof(cf_future *) ? sizeof(cf__pos)
                                                     : sizeof(cf_future *);
  void *scratch = cf__malloc((n ? n : 1) * per);
  if (it) {
    it->fs = cf__malloc((n ? n : 1) * sizeof *it->fs);
    it->links = cf__malloc((n ? n : 1) * sizeof *it->links);
  }
  if (!it || !scratch || !it->fs || !it->links ||
      cf__waiter_init(&it->w, n) != CF_OK) {
    if (it) {
      free(it->fs);
      free(it->links);
    }
    free(it);
    free(scratch);
    return CF_ENOMEM;
  }
  it->deadline = cf__deadline(timeout_ns);
  if (cf__ac_unique(it, fs, n, scratch) != CF_OK) {
    cf_as_completed_destroy(it);
    free(scratch);
    return CF_ENOMEM;
  }
  cf__ac_watch(it, scratch);
  free(scratch);
  *out = it;
  return CF_OK;
}

/* Are the futures not handed out yet all the caller's own (see
 * cf__wait_needs_self())?  Then the next one can never come. */
static bool cf__as_completed_needs_self(cf_as_completed_iter *it) {
  for (size_t i = it->nready; i < it->n; i++)
    if (!it->links[i].arg && !cf__waits_for_self(it->fs[i]))
      return false;
  return true;
}

int cf_as_completed_next(cf_as_completed_iter *it, cf_future **out) {
  if (!it || !out)
    return CF_EINVAL;
  *out = NULL;
  if (it->iready < it->nready) {
    *out = it->fs[it->iready++];
    it->yielded++;
    return CF_OK;
  }
  if (it->yielded == it->n)
    return CF_EOF;
  for (;;) {
    uint32_t seq0 = atomic_load(&it->w.seq);
    cf__listener *l = cf__waiter_pop(&it->w);
    if (l) {
      l->arg = l; /* handed out */
      *out = it->fs[l - it->links];
      it->yielded++;
      return CF_OK;
    }
    if (cf__tls_worker && cf__as_completed_needs_self(it))
      return CF_EDEADLK;
    if (cf__waiter_sleep(&it->w, seq0, it->deadline) == ETIMEDOUT &&
        atomic_load(&it->w.seq) == seq0)
      return CF_ETIMEDOUT;
  }
}

void cf_as_completed_destroy(cf_as_completed_iter *it) {
  if (!it)
    return;
  /* Every watched future, notified or not: taking its lock also waits for
   * a completer that may still be poking our waiter. */
  for (size_t i = it->nready; i < it->n; i++)
    cf__future_remove_link(it->fs[i], &it->links[i]);
  for (size_t i = 0; i < it->n; i++)
    cf_future_release(it->fs[i]);
  cf__waiter_fini(&it->w);
  free(it->links);
  free(it->fs);
  free(it);
}
