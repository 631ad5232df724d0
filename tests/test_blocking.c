/*
 * Waiting inside a pool: a task that waits keeps its timeout, never runs an
 * unrelated task on its stack (so no deadlock appears that the program does
 * not have), and the pool keeps its queue moving meanwhile (inline runs of
 * what is waited for, compensating workers).  Waits that could only end
 * when the caller returns fail with CF_EDEADLK.
 *
 * No assertion here depends on the machine's speed: tasks block on gates
 * the test opens, and "the wait returned before the gate opened" is the
 * event checked.  The generous bounds (CF_TEST_PATIENCE) only turn a hang
 * into a failure.
 */
#include "test_util.h"

#include <sched.h>

/* Long enough for any loaded machine or valgrind: only a hang exceeds it. */
#define CF_TEST_PATIENCE_MS 120000

/* Spins (yielding, bounded) until *p is set by the thread that submitted
 * us; it is set right after cf_submit() returns. */
static cf_future *await_ptr(_Atomic(cf_future *) *p) {
  cf_future *f;
  for (long i = 0; !(f = atomic_load(p)) && i < 100000000L; i++)
    sched_yield();
  return f;
}

/* ---- a timed wait runs nothing it does not wait for ---------------------- */

typedef struct timed_ctx {
  cf_executor *ex;
  cf_test_gate gate;   /* holds L */
  atomic_int returned; /* the waits below all returned */
  atomic_int rc_wait, rc_result, rc_wait_all, rc_forever;
  atomic_size_t n_done;
  pthread_t outer_thread, long_thread;
  atomic_int long_started;
} timed_ctx;

static int task_long(cf_task *t, const void *in, size_t len) {
  timed_ctx *c;
  (void)t;
  (void)len;
  memcpy(&c, in, sizeof c);
  c->long_thread = pthread_self();
  atomic_store(&c->long_started, 1);
  pthread_mutex_lock(&c->gate.mu);
  while (!c->gate.open)
    pthread_cond_wait(&c->gate.cv, &c->gate.mu);
  pthread_mutex_unlock(&c->gate.mu);
  return 0;
}

/* Submits L (blocks on the gate) then B (quick), and waits for B with
 * timeouts: B is queued behind L, so every timed wait must time out.  Then
 * waits for a queued C without deadline: that one it may run itself. */
static int task_timed_outer(cf_task *t, const void *in, size_t len) {
  timed_ctx *c;
  (void)t;
  (void)len;
  memcpy(&c, in, sizeof c);
  c->outer_thread = pthread_self();
  cf_future *l = submit_ptr(c->ex, task_long, c);
  cf_future *b = NULL, *cq = NULL;
  cf_submit(c->ex, task_noop, NULL, 0, &b);
  atomic_store(&c->rc_wait, cf_future_wait(b, CF_MSEC(100)));
  atomic_store(&c->rc_result, cf_future_result(b, CF_MSEC(50), NULL, NULL));
  size_t nd = 99;
  atomic_store(&c->rc_wait_all,
               cf_wait(&b, 1, CF_MSEC(50), CF_ALL_COMPLETED, NULL, &nd));
  atomic_store(&c->n_done, nd);
  /* No deadline, still queued (behind L): run inline, L still blocked. */
  cf_submit(c->ex, task_noop, NULL, 0, &cq);
  atomic_store(&c->rc_forever, cf_future_wait(cq, CF_FOREVER));
  atomic_store(&c->returned, 1);
  cf_future_release(cq);
  cf_future_release(b);
  cf_future_release(l);
  return 0;
}

/* The first scenario: a pool of one worker, a 100 ms wait for B
 * queued behind a long task L.  It used to return CF_OK after L had run
 * inline (1000 ms); it must time out while L is still running elsewhere. */
static void test_timed_wait_runs_nothing_inline(void) {
  timed_ctx c = {.ex = make_pool(1)};
  gate_init(&c.gate);
  cf_future *outer = submit_ptr(c.ex, task_timed_outer, &c);
  bool returned = cf_test_await_flag(&c.returned);
  CU_ASSERT_TRUE(returned); /* before the gate opened: nothing ran L inline */
  CU_ASSERT_EQUAL(atomic_load(&c.rc_wait), CF_ETIMEDOUT);
  CU_ASSERT_EQUAL(atomic_load(&c.rc_result), CF_ETIMEDOUT);
  CU_ASSERT_EQUAL(atomic_load(&c.rc_wait_all), CF_OK);
  CU_ASSERT_EQUAL(atomic_load(&c.n_done), 0);
  CU_ASSERT_EQUAL(atomic_load(&c.rc_forever), CF_OK);
  /* L runs on a compensating worker, not on the waiting task's stack. */
  CU_ASSERT_TRUE(cf_test_await_flag(&c.long_started));
  CU_ASSERT_FALSE(pthread_equal(c.long_thread, c.outer_thread));
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  CU_ASSERT_EQUAL(cf_executor_stats_get(c.ex, &st), CF_OK);
  CU_ASSERT_TRUE(st.workers <= 2); /* L's, and the outer's until it retires */
  gate_open(&c.gate);
  CU_ASSERT_EQUAL(cf_future_result(outer, CF_FOREVER, NULL, NULL), CF_OK);
  cf_future_release(outer);
  cf_executor_release(c.ex);
  gate_destroy(&c.gate);
}

/* ---- no new deadlock: A, B and C ----------------------------------------- */

typedef struct abc_ctx {
  cf_executor *ex;
  _Atomic(cf_future *) fa, fc;
  atomic_int c_rc;
} abc_ctx;

static int task_c_waits_a(cf_task *t, const void *in, size_t len) {
  abc_ctx *c;
  (void)t;
  (void)len;
  memcpy(&c, in, sizeof c);
  atomic_store(&c->c_rc, cf_future_wait(await_ptr(&c->fa), CF_FOREVER));
  return 0;
}

static int task_a(cf_task *t, const void *in, size_t len) {
  abc_ctx *c;
  (void)t;
  (void)len;
  memcpy(&c, in, sizeof c);
  cf_future *fc = submit_ptr(c->ex, task_c_waits_a, c);
  atomic_store(&c->fc, fc);
  cf_future *fb = NULL;
  cf_submit(c->ex, task_noop, NULL, 0, &fb);
  /* B is what A waits for: A may run B, never C (C waits for A). */
  int rc = cf_future_wait(fb, CF_FOREVER);
  cf_future_release(fb);
  return rc;
}

/* The second scenario: a pool of 4 with three workers busy; A
 * submits C (which waits for A) and B, then waits for B without deadline.
 * It used to run C inline on A's stack and hang for good. */
static void test_wait_creates_no_deadlock(void) {
  abc_ctx c = {.ex = make_pool(4)};
  cf_test_gate gate;
  gate_init(&gate);
  cf_future *busy[3];
  for (int i = 0; i < 3; i++)
    busy[i] = submit_ptr(c.ex, task_gate, &gate);
  for (int i = 0; i < CF_TEST_PATIENCE_MS && atomic_load(&gate.entered) < 3;
       i++)
    cf_test_sleep_ms(1);
  cf_future *fa = submit_ptr(c.ex, task_a, &c);
  atomic_store(&c.fa, fa);
  /* Both complete while the three busy workers are still busy. */
  CU_ASSERT_EQUAL(
      cf_future_result(fa, CF_MSEC(CF_TEST_PATIENCE_MS), NULL, NULL), CF_OK);
  cf_future *fc = await_ptr(&c.fc);
  CU_ASSERT_EQUAL(cf_future_wait(fc, CF_MSEC(CF_TEST_PATIENCE_MS)), CF_OK);
  CU_ASSERT_EQUAL(atomic_load(&c.c_rc), CF_OK);
  CU_ASSERT_FALSE(gate.open);
  gate_open(&gate);
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL(cf_future_wait(busy[i], CF_FOREVER), CF_OK);
    cf_future_release(busy[i]);
  }
  cf_future_release(fa);
  cf_future_release(fc);
  cf_executor_release(c.ex);
  gate_destroy(&gate);
}

/* ---- chains and fork-join ------------------------------------------------ */

typedef struct chain_arg {
  cf_executor *ex;
  uint64_t i, n;
} chain_arg;

/* Task i submits task i+1 and waits for it: the result is n - 1 - i. */
static int task_chain(cf_task *t, const void *in, size_t len) {
  chain_arg a;
  (void)len;
  memcpy(&a, in, sizeof a);
  uint64_t r = 0;
  if (a.i + 1 < a.n) {
    chain_arg next = {a.ex, a.i + 1, a.n};
    cf_future *f = NULL;
    if (cf_submit(a.ex, task_chain, &next, sizeof next, &f) != CF_OK)
      return 1;
    const void *d;
    size_t n;
    int rc = cf_future_result(f, CF_FOREVER, &d, &n);
    if (rc == CF_OK)
      memcpy(&r, d, sizeof r);
    cf_future_release(f);
    if (rc != CF_OK)
      return 2;
    r++;
  }
  return cf_task_return(t, &r, sizeof r);
}

/* 1,000 tasks, each waiting for the next, on a pool of 2. */
static void test_chain_of_waits(void) {
  cf_executor *ex = make_pool(2);
  chain_arg a = {ex, 0, 1000};
  cf_future *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_chain, &a, sizeof a, &f), CF_OK);
  CU_ASSERT_EQUAL(result_u64(f), 999);
  cf_future_release(f);
  cf_executor_release(ex);
}

/* The same chain, all submitted up front by the caller: task i waits for
 * future i+1, which some other worker may already be running. */
typedef struct prechain {
  _Atomic(cf_future *) fs[1000];
} prechain;

typedef struct prechain_arg {
  prechain *pc;
  size_t i;
} prechain_arg;

static int task_prechain(cf_task *t, const void *in, size_t len) {
  prechain_arg a;
  (void)t;
  (void)len;
  memcpy(&a, in, sizeof a);
  if (a.i + 1 == 1000)
    return 0;
  return cf_future_wait(await_ptr(&a.pc->fs[a.i + 1]), CF_FOREVER);
}

static void test_prechain_of_waits(void) {
  cf_executor *ex = make_pool(2);
  static prechain pc;
  for (size_t i = 0; i < 1000; i++)
    atomic_store(&pc.fs[i], NULL);
  for (size_t i = 0; i < 1000; i++) {
    prechain_arg a = {&pc, i};
    cf_future *f = NULL;
    CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_prechain, &a, sizeof a, &f),
                          CF_OK);
    atomic_store(&pc.fs[i], f);
  }
  for (size_t i = 0; i < 1000; i++) {
    CU_ASSERT_EQUAL(cf_future_result(atomic_load(&pc.fs[i]), CF_FOREVER, NULL,
                                     NULL),
                    CF_OK);
    cf_future_release(atomic_load(&pc.fs[i]));
  }
  cf_executor_release(ex);
}

typedef struct fj_arg {
  cf_executor *ex;
  atomic_size_t *peak; /* most workers seen alive */
  int depth;
  bool use_wait; /* join with cf_wait(ALL_COMPLETED) instead of results */
} fj_arg;

static void note_peak(fj_arg *a) {
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  if (cf_executor_stats_get(a->ex, &st) != CF_OK)
    return;
  size_t cur = atomic_load(a->peak);
  while (st.workers > cur &&
         !atomic_compare_exchange_weak(a->peak, &cur, st.workers))
    ;
}

/* Each task submits two children and waits for both without deadline;
 * the result is the number of leaves. */
static int task_fork_join(cf_task *t, const void *in, size_t len) {
  fj_arg a;
  (void)len;
  memcpy(&a, in, sizeof a);
  uint64_t leaves = 1;
  if (a.depth > 0) {
    if (a.depth % 4 == 0)
      note_peak(&a);
    fj_arg child = a;
    child.depth--;
    cf_future *fs[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++)
      if (cf_submit(a.ex, task_fork_join, &child, sizeof child, &fs[i]) !=
          CF_OK)
        return 1;
    if (a.use_wait &&
        cf_wait(fs, 2, CF_FOREVER, CF_ALL_COMPLETED, NULL, NULL) != CF_OK)
      return 2;
    leaves = 0;
    for (int i = 0; i < 2; i++) {
      const void *d;
      size_t n;
      uint64_t v = 0;
      if (cf_future_result(fs[i], CF_FOREVER, &d, &n) == CF_OK && n == 8)
        memcpy(&v, d, 8);
      leaves += v;
      cf_future_release(fs[i]);
    }
  }
  return cf_task_return(t, &leaves, sizeof leaves);
}

/* Recursive fork-join, depth 12, on a pool of 2: completes, every leaf
 * counted, on a handful of threads (the waits run queued children inline;
 * a worker only blocks on a child another worker is running). */
static void check_fork_join(bool use_wait) {
  cf_executor *ex = make_pool(2);
  atomic_size_t peak = 0;
  fj_arg a = {ex, &peak, 12, use_wait};
  cf_future *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_fork_join, &a, sizeof a, &f), CF_OK);
  CU_ASSERT_EQUAL(result_u64(f), 4096);
  cf_future_release(f);
  /* Blocked workers are bounded by the depth of the tree, each with at
   * most one compensating worker. */
  CU_ASSERT_TRUE(atomic_load(&peak) <= 2 + 2 * 12);
  if (getenv("CF_TEST_VERBOSE") || atomic_load(&peak) > 2 + 2 * 12)
    printf("\n  fork-join peak workers: %zu\n", atomic_load(&peak));
  cf_executor_release(ex);
}

static void test_fork_join_results(void) { check_fork_join(false); }
static void test_fork_join_wait_all(void) { check_fork_join(true); }

/* ---- compensation keeps max_workers for running tasks -------------------- */

typedef struct blocker_arg {
  cf_future *user; /* completed by the test */
  atomic_int *waiting;
} blocker_arg;

static int task_block_on_user(cf_task *t, const void *in, size_t len) {
  blocker_arg a;
  (void)t;
  (void)len;
  memcpy(&a, in, sizeof a);
  atomic_fetch_add(a.waiting, 1);
  /* A deadline: never run inline, always a real block. */
  return cf_future_wait(a.user, CF_MSEC(CF_TEST_PATIENCE_MS));
}

/* Two workers blocked in waits: queued tasks still run, two at a time (the
 * unblocked ones count against max_workers), and the extra workers retire
 * once the waits end. */
static void test_compensation_bounds(void) {
  cf_executor *ex = make_pool(2);
  cf_future *user;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&user), CF_OK);
  atomic_int waiting = 0;
  blocker_arg ba = {user, &waiting};
  cf_future *blk[2];
  for (int i = 0; i < 2; i++)
    CU_ASSERT_EQUAL_FATAL(
        cf_submit(ex, task_block_on_user, &ba, sizeof ba, &blk[i]), CF_OK);
  cf_test_gate gate;
  gate_init(&gate);
  cf_future *g[5];
  for (int i = 0; i < 5; i++)
    g[i] = submit_ptr(ex, task_gate, &gate);
  /* Two gated tasks start on compensating workers... */
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&gate.entered) == 2));
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(cf_executor_stats_get(ex, &st) == CF_OK &&
                                    st.blocked == 2));
  CU_ASSERT_EQUAL(st.workers, 4);
  CU_ASSERT_EQUAL(st.extra_workers, 2);
  /* ... and no third: two unblocked workers is max_workers. */
  cf_test_sleep_ms(20);
  CU_ASSERT_EQUAL(atomic_load(&gate.entered), 2);
  CU_ASSERT_EQUAL(cf_future_set_result(user, NULL, 0), CF_OK);
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL(cf_future_result(blk[i], CF_FOREVER, NULL, NULL), CF_OK);
    cf_future_release(blk[i]);
  }
  gate_open(&gate);
  for (int i = 0; i < 5; i++) {
    CU_ASSERT_EQUAL(cf_future_wait(g[i], CF_FOREVER), CF_OK);
    cf_future_release(g[i]);
  }
  /* The blocking is over: back to at most max_workers threads. */
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(cf_executor_stats_get(ex, &st) == CF_OK &&
                                    st.workers <= 2));
  CU_ASSERT_EQUAL(st.blocked, 0);
  CU_ASSERT_EQUAL(st.extra_workers, 0);
  cf_future_release(user);
  gate_destroy(&gate);
  cf_executor_release(ex);
}

/* A task blocked in a wait after shutdown(wait = false) still gets its
 * queue run (the compensating worker is joined by the release). */
static void test_compensation_after_shutdown(void) {
  cf_executor *ex = make_pool(1);
  cf_future *user;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&user), CF_OK);
  atomic_int waiting = 0;
  blocker_arg ba = {user, &waiting};
  cf_future *blk, *q;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_block_on_user, &ba, sizeof ba, &blk),
                        CF_OK);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&waiting) == 1));
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_noop, NULL, 0, &q), CF_OK);
  CU_ASSERT_EQUAL(cf_shutdown(ex, false, false), CF_OK);
  CU_ASSERT_EQUAL(cf_future_wait(q, CF_MSEC(CF_TEST_PATIENCE_MS)), CF_OK);
  cf_future_set_result(user, NULL, 0);
  CU_ASSERT_EQUAL(cf_future_result(blk, CF_FOREVER, NULL, NULL), CF_OK);
  cf_future_release(q);
  cf_future_release(blk);
  cf_future_release(user);
  cf_executor_release(ex);
}

/* ---- waits that could only end when the caller returns ------------------- */

typedef struct self_ctx {
  cf_executor *ex, *other;
  _Atomic(cf_future *) self;
  int rc[12];
  size_t ndone_all;
  bool done_other;
} self_ctx;

static int task_self_waits(cf_task *t, const void *in, size_t len) {
  self_ctx *c;
  (void)t;
  (void)len;
  memcpy(&c, in, sizeof c);
  cf_future *me = await_ptr(&c->self);
  cf_future *ok = NULL, *slow_ok = NULL;
  cf_submit(c->other, task_noop, NULL, 0, &ok);
  cf_future_wait(ok, CF_FOREVER);
  cf_future *list[2] = {me, ok};
  c->rc[0] = cf_future_wait(me, CF_FOREVER);
  c->rc[1] = cf_future_result(me, CF_SEC(60), NULL, NULL);
  c->rc[2] = cf_future_error(me, CF_SEC(60), NULL, NULL);
  bool done[2] = {false, false};
  c->rc[3] =
      cf_wait(list, 2, CF_FOREVER, CF_ALL_COMPLETED, done, &c->ndone_all);
  c->done_other = done[1];
  c->rc[4] = cf_wait(list, 2, CF_SEC(60), CF_ALL_COMPLETED, NULL, NULL);
  c->rc[5] = cf_wait(list, 1, CF_FOREVER, CF_FIRST_COMPLETED, NULL, NULL);
  /* Another future is done: FIRST_COMPLETED is satisfied. */
  c->rc[6] = cf_wait(list, 2, CF_FOREVER, CF_FIRST_COMPLETED, NULL, NULL);
  /* One that is still pending and ends well: FIRST_EXCEPTION waits for it,
   * then finds only itself left. */
  cf_submit(c->other, task_noop, NULL, 0, &slow_ok);
  cf_future *list2[2] = {me, slow_ok};
  c->rc[7] = cf_wait(list2, 2, CF_FOREVER, CF_FIRST_EXCEPTION, NULL, NULL);
  cf_as_completed_iter *it = NULL;
  cf_future *got = NULL;
  c->rc[8] = cf_as_completed_create(list, 2, CF_FOREVER, &it);
  c->rc[9] = cf_as_completed_next(it, &got); /* ok: done already */
  c->rc[10] = got == ok ? cf_as_completed_next(it, &got) : -100;
  cf_as_completed_destroy(it);
  /* A zero timeout only looks: not an error. */
  c->rc[11] = cf_future_wait(me, 0);
  cf_future_release(ok);
  cf_future_release(slow_ok);
  return 0;
}

static void test_wait_on_self_refused(void) {
  self_ctx c = {.ex = make_pool(2), .other = make_pool(1)};
  cf_future *f = submit_ptr(c.ex, task_self_waits, &c);
  atomic_store(&c.self, f);
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, NULL, NULL), CF_OK);
  CU_ASSERT_EQUAL(c.rc[0], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc[1], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc[2], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc[3], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.ndone_all, 1);
  CU_ASSERT_TRUE(c.done_other);
  CU_ASSERT_EQUAL(c.rc[4], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc[5], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc[6], CF_OK);
  CU_ASSERT_EQUAL(c.rc[7], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc[8], CF_OK);
  CU_ASSERT_EQUAL(c.rc[9], CF_OK);
  CU_ASSERT_EQUAL(c.rc[10], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc[11], CF_ETIMEDOUT);
  cf_future_release(f);
  cf_executor_release(c.ex);
  cf_executor_release(c.other);
}

/* X waits without deadline for a queued Y, so Y runs on X's stack; Y then
 * waits for X: only X returning could end that, so it is refused. */
typedef struct nest_ctx {
  cf_executor *ex;
  _Atomic(cf_future *) fx;
  int y_rc;
  pthread_t x_thread, y_thread;
} nest_ctx;

static int task_y(cf_task *t, const void *in, size_t len) {
  nest_ctx *c;
  (void)t;
  (void)len;
  memcpy(&c, in, sizeof c);
  c->y_thread = pthread_self();
  c->y_rc = cf_future_wait(await_ptr(&c->fx), CF_FOREVER);
  return 0;
}

static int task_x(cf_task *t, const void *in, size_t len) {
  nest_ctx *c;
  (void)t;
  (void)len;
  memcpy(&c, in, sizeof c);
  c->x_thread = pthread_self();
  cf_future *fy = submit_ptr(c->ex, task_y, c);
  int rc = cf_future_wait(fy, CF_FOREVER);
  cf_future_release(fy);
  return rc;
}

static void test_inline_wait_on_outer_refused(void) {
  nest_ctx c = {.ex = make_pool(1)};
  cf_future *fx = submit_ptr(c.ex, task_x, &c);
  atomic_store(&c.fx, fx);
  CU_ASSERT_EQUAL(cf_future_result(fx, CF_FOREVER, NULL, NULL), CF_OK);
  /* One worker: Y ran inline on X's thread, and its wait was refused. */
  CU_ASSERT_TRUE(pthread_equal(c.x_thread, c.y_thread));
  CU_ASSERT_EQUAL(c.y_rc, CF_EDEADLK);
  cf_future_release(fx);
  cf_executor_release(c.ex);
}

CF_TEST_MAIN("blocking", CF_TEST(test_timed_wait_runs_nothing_inline),
             CF_TEST(test_wait_creates_no_deadlock),
             CF_TEST(test_chain_of_waits), CF_TEST(test_prechain_of_waits),
             CF_TEST(test_fork_join_results), CF_TEST(test_fork_join_wait_all),
             CF_TEST(test_compensation_bounds),
             CF_TEST(test_compensation_after_shutdown),
             CF_TEST(test_wait_on_self_refused),
             CF_TEST(test_inline_wait_on_outer_refused))
