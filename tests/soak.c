/*
 * soak: a bounded random workout of the whole API on both backends.
 *
 *   soak [-n OPS] [-t THREADS] [-s SEED] [-q]
 *
 * THREADS (default 8) threads share one thread pool and one process pool and
 * do random batches of submit / cancel / callbacks / wait / as_completed /
 * result, ordered and unordered maps (some abandoned half-way), hand futures
 * to each other to cancel, and create, use and shut down private pools (some
 * with a worker that dies mid-task).  An operation is one call into the
 * library; the run stops after OPS of them (default 200000; `make soak`
 * passes SOAK_OPS).  It checks, and exits 1 naming the first thing that
 * failed if any does not hold:
 *   - every future ends in exactly one final state, and the state agrees with
 *     its result: a result equal to what its input implies, the task's own
 *     error, or a cancellation that somebody asked for;
 *   - every done callback runs exactly once, after the future is done;
 *   - as_completed hands out every future exactly once; a map yields every
 *     index exactly once (in order when ordered);
 *   - every fire-and-forget task submitted by a callback runs exactly once;
 *   - a continuation (inline, on a pool, on any outcome) ends as its source
 *     implies, or cancelled when asked; when_all reports each source's
 *     status and when_any one that is done; a completion queue hands out
 *     every future added, once, while stop requests and cancels race;
 *   - at the end, descriptors, threads and child processes are back to
 *     their count at the start (no zombie either).
 * A watchdog ends the run (as a failure) if it takes longer than
 * SOAK_TIMEOUT seconds (default 600): a hang is a failure, not a stall.
 */
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 24

/* ---- shared state -------------------------------------------------------- */

static cf_executor *shared[2]; /* [0] thread pool, [1] process pool */
static atomic_long ops;        /* library calls made so far */
static long ops_target;
static atomic_bool failed;
static _Atomic(cf_future *) mailbox; /* a future handed to another thread */

/* Totals, printed at the end and cross-checked. */
static atomic_long n_submitted, n_cancelled, n_failed_tasks, n_ok, n_maps,
    n_map_items, n_private, n_deaths, n_stolen_cancels;
static atomic_long cb_added, cb_ran;           /* done callbacks */
static atomic_long chain_submitted, chain_ran; /* submitted by callbacks */
static atomic_long n_composed, n_stops;        /* continuations, requests */

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("soak: FAILED: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  atomic_store(&failed, true);
}

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fail(__VA_ARGS__);                                                       \
      return false;                                                            \
    }                                                                          \
  } while (0)

static inline void op(void) {
  atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
}

static bool more(void) {
  return !atomic_load(&failed) &&
         atomic_load_explicit(&ops, memory_order_relaxed) < ops_target;
}

static uint64_t rnd(uint64_t *s) { /* xorshift64* */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1DULL;
}

static unsigned pick(uint64_t *s, unsigned n) { return (unsigned)(rnd(s) % n); }

/* What a task returns for an input: checked on the other side. */
static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x | 1;
}

/* ---- tasks (run in threads or in worker processes) ----------------------- */

enum kind { K_OK, K_FAIL, K_SLEEP, K_DIE };

/* Private process pools may get K_DIE jobs; then a K_DIE job fails with
 * CF_EWORKERDIED, and, if the pool breaks on death, others with
 * CF_EBROKEN. */
enum { DIE_NONE, DIE_RESTARTS, DIE_BREAKS };

typedef struct job {
  uint64_t id;
  uint32_t kind;
  uint32_t usec; /* K_SLEEP */
} job;

static int soak_task(cf_task *t, const void *in, size_t len) {
  job j;
  if (len != sizeof j)
    return cf_task_fail(t, EINVAL, "input of %zu bytes", len);
  memcpy(&j, in, sizeof j);
  switch (j.kind) {
  case K_FAIL:
    return cf_task_fail(t, 1000 + (int)(j.id % 7), "job %" PRIu64, j.id);
  case K_SLEEP: {
    struct timespec ts = {0, (long)j.usec * 1000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
      ;
    break;
  }
  case K_DIE:
    _exit(3);
  }
  uint64_t r = mix(j.id);
  return cf_task_return(t, &r, sizeof r);
}

/* A map's input, or a continuation's (a source's result), mixed. */
static int map_task(cf_task *t, const void *in, size_t len) {
  uint64_t x;
  if (len != sizeof x)
    return cf_task_fail(t, EINVAL, "input of %zu bytes", len);
  memcpy(&x, in, sizeof x);
  x = mix(x);
  return cf_task_return(t, &x, sizeof x);
}

/* Thread pool only: counts in this process. */
static int chain_task(cf_task *t, const void *in, size_t len) {
  (void)t, (void)in, (void)len;
  atomic_fetch_add(&chain_ran, 1);
  return 0;
}

/* A continuation on any outcome: the source's status and code. */
static int outcome_task(cf_task *t, const void *in, size_t len) {
  cf_outcome o = CF_OUTCOME_INIT;
  if (cf_outcome_parse(in, len, &o) != CF_OK)
    return cf_task_fail(t, EPROTO, "not an outcome");
  int32_t v[2] = {o.status, o.code};
  return cf_task_return(t, v, sizeof v);
}

/* ---- one future's bookkeeping -------------------------------------------- */

typedef struct rec {
  cf_future *f;
  cf_executor *ex; /* for callbacks that submit */
  job j;
  bool thread_pool;
  bool cb;          /* a callback was added */
  bool chain;       /* ... and it submits a follow-up task */
  bool may_cancel;  /* we or another thread may have cancelled it */
  bool cancel_ok;   /* our own cf_future_cancel returned CF_OK */
  bool shut_cancel; /* a shutdown(cancel_futures) may have cancelled it */
  int die_mode;     /* DIE_*: what a dying worker may do to it */
  bool seen;        /* handed out by as_completed */
  atomic_int cb_count;
  atomic_bool cb_saw_not_done;
} rec;

static void done_cb(cf_future *f, void *arg) {
  rec *r = arg;
  if (!cf_future_done(f))
    atomic_store(&r->cb_saw_not_done, true);
  if (r->chain) {
    /* Runs on a worker, a canceller or the adding thread: submitting from
     * any of them must work, fire and forget. */
    if (cf_submit(r->ex, chain_task, NULL, 0, NULL) == CF_OK)
      atomic_fetch_add(&chain_submitted, 1);
  }
  atomic_fetch_add(&cb_ran, 1);
  atomic_fetch_add(&r->cb_count, 1);
}

/* Checks a done future against what its input implies. */
static bool verify(rec *r) {
  int st = cf_future_state(r->f);
  const void *d;
  size_t n;
  int code = 0;
  const char *msg;
  int rc = cf_future_result(r->f, 0, &d, &n);
  op();
  CHECK(st == CF_FINISHED || st == CF_CANCELLED,
        "job %" PRIu64 ": state %d after it was waited for", r->j.id, st);
  if (st == CF_CANCELLED) {
    CHECK(rc == CF_ECANCELLED, "job %" PRIu64 ": cancelled but result says %s",
          r->j.id, cf_strerror(rc));
    CHECK(r->may_cancel || r->shut_cancel,
          "job %" PRIu64 ": cancelled though nobody cancelled it", r->j.id);
    atomic_fetch_add(&n_cancelled, 1);
  } else {
    CHECK(!r->cancel_ok, "job %" PRIu64 ": cancel said OK, yet it finished",
          r->j.id);
    if (r->die_mode && (rc == CF_EWORKERDIED || rc == CF_EBROKEN)) {
      CHECK(rc == CF_EWORKERDIED ? r->j.kind == K_DIE
                                 : r->die_mode == DIE_BREAKS,
            "job %" PRIu64 ": %s (kind %u) in a pool that %s", r->j.id,
            cf_strerror(rc), r->j.kind,
            r->die_mode == DIE_BREAKS ? "breaks" : "restarts");
      atomic_fetch_add(&n_deaths, r->j.kind == K_DIE);
    } else if (r->j.kind == K_FAIL) {
      CHECK(rc == CF_ETASK, "job %" PRIu64 ": should fail, got %s", r->j.id,
            cf_strerror(rc));
      rc = cf_future_error(r->f, 0, &code, &msg);
      CHECK(code == 1000 + (int)(r->j.id % 7) && msg &&
                strtoull(msg + 4, NULL, 10) == r->j.id,
            "job %" PRIu64 ": wrong error %d '%s'", r->j.id, code,
            msg ? msg : "(null)");
      atomic_fetch_add(&n_failed_tasks, 1);
    } else {
      CHECK(r->j.kind != K_DIE, "job %" PRIu64 ": a dying task succeeded",
            r->j.id);
      uint64_t v = 0;
      CHECK(rc == CF_OK && n == sizeof v,
            "job %" PRIu64 ": result %s (%zu bytes)", r->j.id, cf_strerror(rc),
            n);
      memcpy(&v, d, sizeof v);
      CHECK(v == mix(r->j.id), "job %" PRIu64 ": wrong result", r->j.id);
      atomic_fetch_add(&n_ok, 1);
    }
  }
  /* Waiters may wake before the completing thread has run the callbacks:
   * give it time, but not forever. */
  if (r->cb) {
    for (int i = 0; i < 30000 && atomic_load(&r->cb_count) == 0; i++)
      usleep(1000);
    CHECK(atomic_load(&r->cb_count) == 1,
          "job %" PRIu64 ": callback ran %d times", r->j.id,
          atomic_load(&r->cb_count));
    CHECK(!atomic_load(&r->cb_saw_not_done),
          "job %" PRIu64 ": callback ran before the future was done", r->j.id);
  }
  return true;
}

static atomic_ulong next_id;

/* Submits one random job; fills *r (r->f is the future, or NULL if the
 * submit was refused).  Returns 1 when submitted, 0 when refused because
 * the pool broke on a death (expected: stop submitting to it), -1 on a
 * failure. */
static int submit_one(uint64_t *s, cf_executor *ex, bool thread_pool,
                      bool private_pool, int die_mode, rec *r) {
  memset(r, 0, sizeof *r);
  r->ex = ex;
  r->thread_pool = thread_pool;
  r->j.id = atomic_fetch_add(&next_id, 1);
  unsigned k = pick(s, 100);
  r->j.kind = k < 70 ? K_OK : k < 85 ? K_FAIL : K_SLEEP;
  if (die_mode && pick(s, 8) == 0)
    r->j.kind = K_DIE;
  r->j.usec = pick(s, 300);
  r->die_mode = die_mode;
  int rc = cf_submit(ex, soak_task, &r->j, sizeof r->j, &r->f);
  op();
  if (rc == CF_EBROKEN && die_mode == DIE_BREAKS)
    return 0;
  if (rc != CF_OK) {
    fail("submit: %s", cf_strerror(rc));
    return -1;
  }
  atomic_fetch_add(&n_submitted, 1);
  if (pick(s, 2)) {
    r->cb = true;
    /* Not on a private pool: its shutdown(cancel_futures) may cancel the
     * follow-up task, which then rightly never runs. */
    r->chain = thread_pool && !private_pool && pick(s, 4) == 0;
    atomic_fetch_add(&cb_added, 1);
    rc = cf_future_add_done_callback(r->f, done_cb, r);
    op();
    if (rc != CF_OK) {
      r->cb = false;
      atomic_fetch_sub(&cb_added, 1);
      fail("add_done_callback: %s", cf_strerror(rc));
      return -1;
    }
  }
  return 1;
}

/* Submits up to n jobs into rs; *made counts the futures there.  Returns
 * false on a failure (a refusal by a broken pool only stops the loop). */
static bool submit_some(uint64_t *s, cf_executor *ex, bool thread_pool,
                        bool private_pool, int die_mode, size_t n, rec *rs,
                        size_t *made) {
  *made = 0;
  for (size_t i = 0; i < n; i++) {
    int st = submit_one(s, ex, thread_pool, private_pool, die_mode, &rs[*made]);
    if (rs[*made].f)
      (*made)++;
    if (st <= 0)
      return st == 0;
  }
  return true;
}

/* After a failure: wait (bounded) until nothing can touch the records any
 * more -- the futures done and their callbacks run -- then drop them. */
static void drop_all(rec *rs, size_t made, bool ok) {
  for (size_t i = 0; i < made; i++) {
    if (!ok) {
      cf_future_wait(rs[i].f, CF_SEC(30));
      for (int k = 0; k < 30000 && rs[i].cb && !atomic_load(&rs[i].cb_count);
           k++)
        usleep(1000);
    }
    cf_future_release(rs[i].f);
  }
}

/* Waits for every future of the batch in one of several ways. */
static bool collect(uint64_t *s, rec *rs, size_t n) {
  cf_future *fs[MAX_BATCH];
  for (size_t i = 0; i < n; i++)
    fs[i] = rs[i].f;
  switch (pick(s, 4)) {
  case 0: { /* cf_wait: ALL, or FIRST / FIRST_EXCEPTION with timeouts */
    bool done[MAX_BATCH];
    size_t nd = 0;
    cf_wait_mode mode = (cf_wait_mode)pick(s, 3);
    int64_t to = pick(s, 2) ? CF_USEC(pick(s, 2000)) : CF_FOREVER;
    int rc = cf_wait(fs, n, to, mode, done, &nd);
    op();
    CHECK(rc == CF_OK, "wait: %s", cf_strerror(rc));
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
      count += done[i];
      CHECK(!done[i] || cf_future_done(fs[i]), "wait: done[%zu] but not done",
            i);
    }
    CHECK(count == nd, "wait: n_done %zu, %zu flags", nd, count);
    CHECK(mode != CF_ALL_COMPLETED || to != CF_FOREVER || nd == n,
          "wait(ALL, forever) returned with %zu of %zu done", nd, n);
    rc = cf_wait(fs, n, CF_FOREVER, CF_ALL_COMPLETED, NULL, &nd);
    op();
    CHECK(rc == CF_OK && nd == n, "wait(ALL): %s, %zu of %zu", cf_strerror(rc),
          nd, n);
    return true;
  }
  case 1: { /* as_completed: each exactly once */
    cf_as_completed_iter *it;
    int rc = cf_as_completed_create(fs, n, CF_FOREVER, &it);
    op();
    CHECK(rc == CF_OK, "as_completed_create: %s", cf_strerror(rc));
    cf_future *f;
    size_t got = 0;
    while ((rc = cf_as_completed_next(it, &f)) == CF_OK) {
      op();
      size_t i = 0;
      while (i < n && rs[i].f != f)
        i++;
      if (i == n || rs[i].seen || !cf_future_done(f)) {
        cf_as_completed_destroy(it);
        CHECK(false,
              "as_completed: a future out of the blue, twice, or not done");
      }
      rs[i].seen = true;
      got++;
    }
    cf_as_completed_destroy(it);
    CHECK(rc == CF_EOF && got == n, "as_completed: %s after %zu of %zu",
          cf_strerror(rc), got, n);
    return true;
  }
  case 2: /* cf_future_result with short timeouts, retried */
    for (size_t i = 0; i < n; i++) {
      int rc;
      do {
        rc = cf_future_result(fs[i], CF_USEC(pick(s, 500)), NULL, NULL);
        op();
      } while (rc == CF_ETIMEDOUT);
    }
    return true;
  default: /* cf_future_wait, forever */
    for (size_t i = 0; i < n; i++) {
      int rc = cf_future_wait(fs[i], CF_FOREVER);
      op();
      CHECK(rc == CF_OK, "future_wait: %s", cf_strerror(rc));
    }
    return true;
  }
}

/* Takes the future another thread left in the mailbox, if any, and cancels
 * it: cancel from a thread that did not submit, racing its owner's waits. */
static void steal_and_cancel(void) {
  cf_future *f = atomic_exchange(&mailbox, NULL);
  if (!f)
    return;
  if (cf_future_cancel(f) == CF_OK)
    atomic_fetch_add(&n_stolen_cancels, 1);
  op();
  cf_future_release(f);
}

/* ---- the operations ------------------------------------------------------ */

static bool do_batch(uint64_t *s) {
  int b = (int)pick(s, 4) == 0; /* a quarter of batches on the process pool */
  size_t n = 1 + pick(s, MAX_BATCH);
  rec rs[MAX_BATCH];
  size_t made = 0;
  bool ok = submit_some(s, shared[b], b == 0, false, DIE_NONE, n, rs, &made);
  if (ok) {
    for (size_t i = 0; i < made; i++) {
      if (pick(s, 5) == 0) {
        rs[i].may_cancel = true;
        int rc = cf_future_cancel(rs[i].f);
        op();
        rs[i].cancel_ok = rc == CF_OK;
        if (rc != CF_OK && rc != CF_ESTATE)
          ok = false, fail("cancel: %s", cf_strerror(rc));
      }
    }
    if (ok && pick(s, 3) == 0) {
      size_t i = pick(s, (unsigned)made);
      rs[i].may_cancel = true;
      cf_future *old = atomic_exchange(&mailbox, cf_future_retain(rs[i].f));
      cf_future_release(old); /* nobody took it: drop it */
    }
    steal_and_cancel();
    ok = ok && collect(s, rs, made);
    for (size_t i = 0; ok && i < made; i++)
      ok = verify(&rs[i]);
  }
  drop_all(rs, made, ok);
  return ok;
}

static bool do_map(uint64_t *s) {
  int b = (int)pick(s, 3) == 0;
  size_t n = 1 + pick(s, 300);
  uint64_t *in = malloc(n * sizeof *in);
  bool *seen = calloc(n, sizeof *seen);
  if (!in || !seen) {
    free(in);
    free(seen);
    fail("out of memory");
    return false;
  }
  for (size_t i = 0; i < n; i++)
    in[i] = rnd(s);
  cf_map_options o;
  cf_map_options_init(&o);
  o.unordered = pick(s, 2);
  o.chunksize = pick(s, 3) ? 0 : 1 + pick(s, 40);
  o.max_inflight = pick(s, 2) ? 0 : 1 + pick(s, 8);
  size_t stop_after = pick(s, 4) == 0 ? pick(s, (unsigned)n) : n;
  cf_map_iter *m;
  int rc = cf_map_array(shared[b], map_task, in, sizeof *in, n, &o, &m);
  op();
  bool ok = rc == CF_OK;
  if (!ok)
    fail("map: %s", cf_strerror(rc));
  size_t got = 0;
  cf_map_item it = CF_MAP_ITEM_INIT;
  while (ok && got < stop_after && (rc = cf_map_next(m, &it)) == CF_OK) {
    op();
    uint64_t v = 0;
    if (it.index >= n || seen[it.index] || it.len != sizeof v ||
        (!o.unordered && it.index != got)) {
      fail("map: index %zu of %zu out of place or twice", it.index, n);
      ok = false;
      break;
    }
    memcpy(&v, it.data, sizeof v);
    if (v != mix(in[it.index])) {
      fail("map: wrong result at %zu", it.index);
      ok = false;
    }
    seen[it.index] = true;
    got++;
  }
  if (ok && got < stop_after)
    ok = false, fail("map: %s after %zu of %zu", cf_strerror(rc), got, n);
  if (ok && stop_after == n && (rc = cf_map_next(m, &it)) != CF_EOF)
    ok = false, fail("map: %s after the last item", cf_strerror(rc));
  cf_map_destroy(m); /* abandons the rest when stop_after < n */
  op();
  atomic_fetch_add(&n_maps, 1);
  atomic_fetch_add(&n_map_items, (long)got);
  free(in);
  free(seen);
  return ok;
}

/* A private pool: create, submit, maybe lose a worker, shut down one of four
 * ways, check every future, release.  Its threads and processes must go. */
static bool do_private(uint64_t *s) {
  bool procs = pick(s, 4) == 0;
  int die_mode = DIE_NONE;
  cf_executor *ex;
  int rc;
  if (procs) {
    cf_process_pool_options o;
    cf_process_pool_options_init(&o);
    o.max_workers = 1 + (int)pick(s, 2);
    o.on_worker_death = pick(s, 2) ? CF_ON_DEATH_RESTART : CF_ON_DEATH_BREAK;
    if (pick(s, 2))
      die_mode = o.on_worker_death == CF_ON_DEATH_BREAK ? DIE_BREAKS
                                                        : DIE_RESTARTS;
    o.max_tasks_per_child = pick(s, 2) ? 0 : 1 + (int)pick(s, 5);
    rc = cf_process_pool_create(&o, &ex);
  } else {
    cf_thread_pool_options o;
    cf_thread_pool_options_init(&o);
    o.max_workers = 1 + (int)pick(s, 4);
    o.idle_timeout_ns = pick(s, 2) ? 0 : CF_USEC(pick(s, 1000));
    rc = cf_thread_pool_create(&o, &ex);
  }
  op();
  CHECK(rc == CF_OK, "create: %s", cf_strerror(rc));
  size_t n = 1 + pick(s, 12);
  rec rs[MAX_BATCH];
  size_t made = 0;
  bool ok = submit_some(s, ex, !procs, true, die_mode, n, rs, &made);
  bool wait = pick(s, 2), cancel = pick(s, 2);
  for (size_t i = 0; i < made; i++)
    rs[i].shut_cancel = cancel;
  rc = cf_shutdown(ex, wait, cancel);
  op();
  if (ok && rc != CF_OK)
    ok = false, fail("shutdown: %s", cf_strerror(rc));
  job late = {0, K_OK, 0};
  rc = cf_submit(ex, soak_task, &late, sizeof late, NULL);
  op();
  if (ok && rc != CF_ESHUTDOWN && !(die_mode == DIE_BREAKS && rc == CF_EBROKEN))
    ok = false, fail("submit after shutdown: %s", cf_strerror(rc));
  if (ok && made) {
    cf_future *fs[MAX_BATCH];
    for (size_t i = 0; i < made; i++)
      fs[i] = rs[i].f;
    size_t nd;
    /* After shutdown(wait) everything is done; otherwise it gets done. */
    rc = cf_wait(fs, made, wait ? 0 : CF_FOREVER, CF_ALL_COMPLETED, NULL, &nd);
    op();
    if (rc != CF_OK || nd != made)
      ok = false, fail("private pool: %zu of %zu done after shutdown(wait=%d)",
                       nd, made, wait);
  }
  for (size_t i = 0; ok && i < made; i++)
    ok = verify(&rs[i]);
  drop_all(rs, made, ok);
  cf_executor_release(ex); /* joins its threads, reaps its workers */
  op();
  atomic_fetch_add(&n_private, 1);
  return ok;
}

/* Continuations, when_all / when_any and a completion queue over a batch,
 * with stop requests and cancels thrown in. */
static bool do_compose(uint64_t *s) {
  int b = (int)pick(s, 5) == 0; /* a fifth on the process pool */
  cf_executor *ex = shared[b];
  size_t n = 1 + pick(s, MAX_BATCH / 2);
  rec rs[MAX_BATCH];
  size_t made = 0;
  bool ok = submit_some(s, ex, b == 0, false, DIE_NONE, n, rs, &made);
  cf_future *d[MAX_BATCH] = {0}, *all = NULL, *any = NULL;
  unsigned flags[MAX_BATCH] = {0};
  bool d_cancel[MAX_BATCH] = {0};
  cf_completion_queue *q = NULL;
  size_t queued = 0;
  if (ok) {
    ok = cf_completion_queue_create(&q) == CF_OK;
    op();
    if (!ok)
      fail("completion_queue_create");
  }
  for (size_t i = 0; ok && i < made; i++) {
    static const unsigned choice[] = {0, CF_RUN_INLINE, CF_ANY_OUTCOME,
                                      CF_ANY_OUTCOME | CF_RUN_INLINE};
    flags[i] = choice[pick(s, 4)];
    int rc = cf_future_then(rs[i].f, flags[i] & CF_RUN_INLINE ? NULL : ex,
                            flags[i] & CF_ANY_OUTCOME ? outcome_task : map_task,
                            flags[i], &d[i]);
    op();
    if (rc != CF_OK) {
      ok = false;
      fail("then: %s", cf_strerror(rc));
      break;
    }
    atomic_fetch_add(&n_composed, 1);
    ok = cf_completion_queue_add(q, d[i], (void *)(uintptr_t)i) == CF_OK;
    op();
    queued += ok;
    if (pick(s, 6) == 0) { /* a stop request: cancels it if pending */
      rs[i].may_cancel = true;
      cf_future_request_stop(rs[i].f);
      atomic_fetch_add(&n_stops, 1);
      op();
    }
    if (pick(s, 8) == 0) {
      d_cancel[i] = true;
      cf_future_cancel(d[i]);
      op();
    }
  }
  if (ok && made) {
    ok = cf_when_all(d, made, 0, &all) == CF_OK &&
         cf_when_any(d, made, 0, &any) == CF_OK;
    op();
    if (!ok)
      fail("when_all / when_any");
  }
  /* The queue hands out every continuation once, through its descriptor. */
  bool popped[MAX_BATCH] = {0};
  for (size_t got = 0; ok && got < queued;) {
    struct pollfd pfd = {cf_completion_queue_fd(q), POLLIN, 0};
    int pr = poll(&pfd, 1, 30000); /* a hang guard, not a speed */
    CHECK(pr == 1, "completion queue: not readable with %zu of %zu popped", got,
          queued);
    cf_future *f;
    void *tag;
    while (cf_completion_queue_pop(q, &f, &tag) == CF_OK) {
      op();
      size_t i = (uintptr_t)tag;
      CHECK(i < made && f == d[i] && !popped[i], "completion queue: wrong pop");
      popped[i] = true;
      got++;
      cf_future_release(f);
    }
  }
  /* A continuation cancelled by us is done before its source. */
  for (size_t i = 0; ok && i < made; i++) {
    CHECK(cf_future_wait(rs[i].f, CF_SEC(60)) == CF_OK, "source not done");
    op();
    ok = verify(&rs[i]);
  }
  /* Each continuation as its source implies. */
  for (size_t i = 0; ok && i < made; i++) {
    const void *r;
    size_t len;
    int rc = cf_future_result(d[i], 0, &r, &len);
    int src = cf_future_result(rs[i].f, 0, NULL, NULL);
    int code = 0;
    cf_future_error(rs[i].f, 0, &code, NULL);
    op();
    if (cf_future_cancelled(d[i]) &&
        (d_cancel[i] || (src == CF_ECANCELLED && !(flags[i] & CF_ANY_OUTCOME))))
      continue;
    if (flags[i] & CF_ANY_OUTCOME) {
      int32_t v[2];
      CHECK(rc == CF_OK && len == sizeof v, "any-outcome continuation: %s",
            cf_strerror(rc));
      memcpy(v, r, sizeof v);
      CHECK(v[0] == src && v[1] == code,
            "any-outcome continuation saw %d/%d, source %d/%d", v[0], v[1], src,
            code);
    } else if (src == CF_OK) {
      uint64_t v, want = mix(mix(rs[i].j.id));
      CHECK(rc == CF_OK && len == sizeof v, "continuation: %s",
            cf_strerror(rc));
      memcpy(&v, r, sizeof v);
      CHECK(v == want, "continuation: wrong result");
    } else {
      int dcode = 0;
      cf_future_error(d[i], 0, &dcode, NULL);
      CHECK(rc == src && dcode == code,
            "continuation of a failure: %s code %d, source %s code %d",
            cf_strerror(rc), dcode, cf_strerror(src), code);
    }
  }
  if (ok && all) {
    const void *r;
    size_t len;
    CHECK(cf_future_result(all, CF_SEC(30), &r, &len) == CF_OK &&
              len == made * sizeof(int32_t),
          "when_all: no result");
    for (size_t i = 0; i < made; i++) {
      int32_t st;
      memcpy(&st, (const char *)r + i * sizeof st, sizeof st);
      CHECK(st == cf_future_result(d[i], 0, NULL, NULL),
            "when_all: status %d of %zu is wrong", st, i);
    }
    cf_when_any_result w;
    CHECK(cf_future_result(any, CF_SEC(30), &r, &len) == CF_OK &&
              len == sizeof w,
          "when_any: no result");
    memcpy(&w, r, sizeof w);
    CHECK(w.index < made && cf_future_done(d[w.index]), "when_any: index");
    op();
  }
  cf_completion_queue_destroy(q);
  cf_future_release(all);
  cf_future_release(any);
  for (size_t i = 0; i < made; i++)
    cf_future_release(d[i]);
  drop_all(rs, made, ok);
  return ok;
}

/* A user-completable future: completed or cancelled by this thread, with
 * callbacks and a waiter on another path. */
static bool do_user_future(uint64_t *s) {
  cf_future *f;
  int rc = cf_future_create(&f);
  op();
  CHECK(rc == CF_OK, "future_create: %s", cf_strerror(rc));
  rec r = {0};
  r.f = f;
  r.cb = true;
  atomic_fetch_add(&cb_added, 1);
  rc = cf_future_add_done_callback(f, done_cb, &r);
  op();
  bool ok = rc == CF_OK;
  uint64_t v = rnd(s);
  switch (pick(s, 3)) {
  case 0:
    ok = ok && cf_future_cancel(f) == CF_OK && cf_future_cancelled(f);
    break;
  case 1:
    ok = ok && cf_future_set_running_or_notify_cancel(f) == CF_OK &&
         cf_future_cancel(f) == CF_ESTATE &&
         cf_future_set_result(f, &v, sizeof v) == CF_OK;
    break;
  default:
    ok = ok && cf_future_set_error(f, 7, "seven") == CF_OK &&
         cf_future_set_result(f, &v, sizeof v) == CF_ESTATE;
  }
  op();
  ok = ok && cf_future_done(f) && atomic_load(&r.cb_count) == 1 &&
       !atomic_load(&r.cb_saw_not_done);
  cf_future_release(f);
  if (!ok)
    fail("user future: wrong transition or callback count");
  return ok;
}

static void *soak_thread(void *arg) {
  uint64_t s = (uint64_t)(uintptr_t)arg;
  while (more()) {
    unsigned k = pick(&s, 1000);
    bool ok = k < 740   ? do_batch(&s)
              : k < 800 ? do_compose(&s)
              : k < 950 ? do_map(&s)
              : k < 990 ? do_user_future(&s)
                        : do_private(&s);
    if (!ok)
      break;
  }
  return NULL;
}

/* ---- resources ----------------------------------------------------------- */

static void on_alarm(int sig) {
  (void)sig;
  static const char m[] = "soak: FAILED: watchdog: still running (a hang?)\n";
  (void)!write(2, m, sizeof m - 1);
  _exit(1);
}

static void *on_warm_up(void *arg) { return arg; }

static void usage(void) {
  fprintf(stderr, "usage: soak [-n OPS] [-t THREADS] [-s SEED] [-q]\n");
  exit(2);
}

static long number(const char *what, const char *s, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 1 || v > max) {
    fprintf(stderr, "soak: %s '%s' must be a number from 1 to %ld\n", what, s,
            max);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  long threads = 8;
  uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
  bool quiet = false;
  ops_target = 200000;
  int c;
  while ((c = getopt(argc, argv, "n:t:s:q")) != -1) {
    switch (c) {
    case 'n':
      ops_target = number("-n", optarg, 1L << 40);
      break;
    case 't':
      threads = number("-t", optarg, 256);
      break;
    case 's':
      seed = (uint64_t)number("-s", optarg, 0x7fffffffffffffffL);
      break;
    case 'q':
      quiet = true;
      break;
    default:
      usage();
    }
  }
  if (optind != argc)
    usage();
  const char *to = getenv("SOAK_TIMEOUT");
  signal(SIGALRM, on_alarm);
  alarm(to ? (unsigned)atoi(to) : 600);

  /* Sanitizer runtimes start a helper thread with the first thread: start
   * one before taking the baseline, so that only ours are counted. */
  pthread_t warm;
  if (pthread_create(&warm, NULL, on_warm_up, NULL) == 0)
    pthread_join(warm, NULL);
  int fds0 = cf_test_count_entries("/proc/self/fd");
  int threads0 = cf_test_count_entries("/proc/self/task");
  int children0 = cf_test_count_children();
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  printf("soak: %ld operations, %ld threads, seed %" PRIu64 "\n", ops_target,
         threads, seed);
  fflush(stdout);

  cf_thread_pool_options to_;
  cf_thread_pool_options_init(&to_);
  to_.max_workers = 4;
  cf_process_pool_options po;
  cf_process_pool_options_init(&po);
  po.max_workers = 2;
  po.on_worker_death = CF_ON_DEATH_BREAK; /* nothing may die in it */
  int rc;
  if ((rc = cf_thread_pool_create(&to_, &shared[0])) != CF_OK ||
      (rc = cf_process_pool_create(&po, &shared[1])) != CF_OK) {
    fprintf(stderr, "soak: cannot create the pools: %s\n", cf_strerror(rc));
    return 1;
  }
  pthread_t *tids = calloc((size_t)threads, sizeof *tids);
  if (!tids) {
    fprintf(stderr, "soak: out of memory\n");
    return 1;
  }
  long started = 0;
  for (; started < threads; started++) {
    uint64_t ts = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)started + 1;
    if (pthread_create(&tids[started], NULL, soak_thread,
                       (void *)(uintptr_t)(ts ? ts : 1)) != 0) {
      fail("pthread_create");
      break;
    }
  }
  long last = 0;
  while (!quiet && more()) {
    usleep(200000);
    long now = atomic_load(&ops);
    if (now / 1000000 != last / 1000000)
      printf("soak: %ld operations\n", now), fflush(stdout);
    last = now;
  }
  for (long i = 0; i < started; i++)
    pthread_join(tids[i], NULL);
  free(tids);
  cf_future_release(atomic_exchange(&mailbox, NULL));
  for (int b = 0; b < 2; b++) {
    if (cf_shutdown(shared[b], true, false) != CF_OK)
      fail("shutdown of the shared pool %d", b);
    cf_executor_release(shared[b]);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);

  if (atomic_load(&cb_ran) != atomic_load(&cb_added))
    fail("%ld callbacks added, %ld ran", atomic_load(&cb_added),
         atomic_load(&cb_ran));
  if (atomic_load(&chain_ran) != atomic_load(&chain_submitted))
    fail("%ld tasks submitted by callbacks, %ld ran",
         atomic_load(&chain_submitted), atomic_load(&chain_ran));
  int fds1 = cf_test_count_entries("/proc/self/fd");
  /* A joined thread may linger in /proc for a moment (longer on a loaded
   * machine: up to 30 s, a watchdog's bound, not a speed). */
  int threads1 = cf_test_count_entries("/proc/self/task");
  for (int i = 0; i < 30000 && threads1 != threads0; i++) {
    usleep(1000);
    threads1 = cf_test_count_entries("/proc/self/task");
  }
  int children1 = cf_test_count_children();
  bool same = fds1 == fds0 && threads1 == threads0 && children1 == children0;
  if (!same)
    fail("descriptors %d -> %d, threads %d -> %d, children %d -> %d", fds0,
         fds1, threads0, threads1, children0, children1);
  if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
    fail("a child process (or zombie) is left");

  double secs = (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("soak: %ld operations in %.1f s: %ld futures submitted (%ld ok, %ld "
         "task errors, %ld cancelled, %ld worker deaths), %ld cancels from "
         "another thread, %ld maps (%ld items), %ld private pools, %ld "
         "callbacks, %ld tasks submitted by callbacks, %ld continuations, "
         "%ld stop requests\n",
         atomic_load(&ops), secs, atomic_load(&n_submitted), atomic_load(&n_ok),
         atomic_load(&n_failed_tasks), atomic_load(&n_cancelled),
         atomic_load(&n_deaths), atomic_load(&n_stolen_cancels),
         atomic_load(&n_maps), atomic_load(&n_map_items),
         atomic_load(&n_private), atomic_load(&cb_ran), atomic_load(&chain_ran),
         atomic_load(&n_composed), atomic_load(&n_stops));
  if (same)
    printf("soak: descriptors %d, threads %d, children %d: as at the start\n",
           fds1, threads1, children1);
  if (atomic_load(&failed)) {
    printf("soak: FAILED (seed %" PRIu64 ")\n", seed);
    return 1;
  }
  printf("soak: OK\n");
  return 0;
}
