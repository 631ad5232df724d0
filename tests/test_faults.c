/*
 * Allocation and thread-creation failure at every site.  Built with the
 * library's sources and -DCF_FAULT_INJECTION: for N = 1, 2, 3, ... the N-th
 * allocation (then the N-th thread creation) fails while a realistic
 * scenario runs on each backend -- create, submit, callbacks, wait,
 * as_completed, map, shutdown, destroy -- until a run sees no failure.
 * Every call must return a clean status, the executor must still work
 * afterwards, nothing may hang (the watchdog) or leak (ASan/LSan, valgrind).
 */
#include "test_util.h"

#include "internal.h"
#include "alloc.h"

#include <poll.h>

static atomic_int g_callbacks;
static void cb_count(cf_future *f, void *arg) {
  (void)f;
  (void)arg;
  atomic_fetch_add(&g_callbacks, 1);
}

/* The statuses an allocation or thread failure may legitimately surface
 * as: out of memory, no thread, or a task or chunk failing because of it. */
static bool clean(int rc) {
  return rc == CF_OK || rc == CF_ENOMEM || rc == CF_EAGAIN || rc == CF_ETASK ||
         rc == CF_EBROKEN || rc == CF_ESYS;
}

#define EXPECT_CLEAN(call)                                                     \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (!clean(rc_)) {                                                         \
      fprintf(stderr, "%s -> %s\n", #call, cf_strerror(rc_));                  \
      CU_FAIL(#call " returned an unexpected status");                         \
    }                                                                          \
  } while (0)

typedef int (*make_fn)(cf_executor **out);

static int make_threads(cf_executor **out) {
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = 2;
  return cf_thread_pool_create(&o, out);
}

static int make_processes(cf_executor **out) {
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = 2;
  o.on_worker_death = CF_ON_DEATH_RESTART;
  return cf_process_pool_create(&o, out);
}

/* The scenario; returns whether a failure was injected, after releasing
 * everything it made. */
static bool scenario(make_fn make, long nth_alloc, long nth_thread) {
  cf__fault_set(nth_alloc, nth_thread, false);
  cf_executor *ex = NULL;
  int rc = make(&ex);
  EXPECT_CLEAN(rc);
  if (rc != CF_OK)
    return cf__fault_set(0, 0, false);
  enum { N = 6 };
  cf_future *fs[N] = {0};
  uint64_t in[N];
  size_t nf = 0;
  for (uint64_t i = 0; i < N; i++) {
    cf_future *f = NULL;
    rc = cf_submit(ex, task_square, &i, sizeof i, &f);
    EXPECT_CLEAN(rc);
    if (rc == CF_OK) {
      EXPECT_CLEAN(cf_future_add_done_callback(f, cb_count, NULL));
      in[nf] = i;
      fs[nf++] = f;
    }
  }
  cf_future *user = NULL, *user2 = NULL;
  if (cf_future_create(&user) == CF_OK) {
    EXPECT_CLEAN(cf_future_set_result(user, "some bytes beyond inline", 25));
    rc = cf_future_set_error(user, 1, "already done");
    CU_ASSERT_TRUE(rc == CF_ESTATE || rc == CF_OK || rc == CF_ENOMEM);
  }
  if (cf_future_create(&user2) == CF_OK) {
    /* A callback that never runs (dropped while pending), then an error
     * whose message must be copied. */
    EXPECT_CLEAN(cf_future_add_done_callback(user2, cb_count, NULL));
    rc = cf_future_set_error(user2, 2, "a message to copy");
    CU_ASSERT_TRUE(rc == CF_OK || rc == CF_ENOMEM);
    cf_future_release(user2);
  }
  int32_t code = 9; /* a failing task: its message is allocated too */
  cf_future *failing = NULL;
  if (cf_submit(ex, task_fail, &code, sizeof code, &failing) == CF_OK) {
    rc = cf_future_result(failing, CF_SEC(30), NULL, NULL);
    if (rc != CF_ETASK)
      fprintf(stderr, "failing task: %s\n", cf_strerror(rc));
    CU_ASSERT_TRUE(rc != CF_OK && clean(rc));
    cf_future_release(failing);
  }
  size_t nd;
  EXPECT_CLEAN(cf_wait(fs, nf, CF_SEC(30), CF_ALL_COMPLETED, NULL, &nd));
  cf_as_completed_iter *it = NULL;
  if (cf_as_completed_create(fs, nf, CF_SEC(30), &it) == CF_OK) {
    cf_future *f;
    while ((rc = cf_as_completed_next(it, &f)) == CF_OK)
      ;
    CU_ASSERT_EQUAL(rc, CF_EOF);
    cf_as_completed_destroy(it);
  }
  for (size_t i = 0; i < nf; i++) {
    const void *d;
    rc = cf_future_result(fs[i], CF_SEC(30), &d, NULL);
    EXPECT_CLEAN(rc);
    if (rc == CF_OK) {
      uint64_t v;
      memcpy(&v, d, sizeof v);
      CU_ASSERT_EQUAL(v, in[i] * in[i] + 1);
    }
  }
  uint64_t arr[40];
  for (uint64_t i = 0; i < 40; i++)
    arr[i] = i;
  cf_map_options mo;
  cf_map_options_init(&mo);
  mo.chunksize = 3;
  mo.max_inflight = 4;
  cf_map_iter *m = NULL;
  rc = cf_map_array(ex, task_square, arr, sizeof arr[0], 40, &mo, &m);
  EXPECT_CLEAN(rc);
  if (rc == CF_OK) {
    cf_map_item item = CF_MAP_ITEM_INIT;
    while ((rc = cf_map_next(m, &item)) == CF_OK) {
      uint64_t v;
      memcpy(&v, item.data, sizeof v);
      CU_ASSERT_EQUAL(v, arr[item.index] * arr[item.index] + 1);
    }
    if (rc != CF_EOF)
      EXPECT_CLEAN(rc);
    cf_map_destroy(m);
  }

  /* Continuations, combinators, a completion queue: everything they
   * allocate is allocated before anything is registered. */
  cf_future *src = NULL;
  if (cf_future_create(&src) == CF_OK) {
    cf_future *d[4] = {NULL, NULL, NULL, NULL};
    cf_future *srcs[2] = {src, nf ? fs[0] : src};
    EXPECT_CLEAN(cf_future_then(src, ex, task_square, 0, &d[0]));
    EXPECT_CLEAN(cf_future_then(src, NULL, task_square,
                                CF_RUN_INLINE | CF_CANCEL_SOURCES, &d[1]));
    EXPECT_CLEAN(cf_when_all(srcs, 2, CF_CANCEL_SOURCES, &d[2]));
    EXPECT_CLEAN(cf_when_any(srcs, 2, 0, &d[3]));
    cf_completion_queue *q = NULL;
    EXPECT_CLEAN(cf_completion_queue_create(&q));
    size_t queued = 0;
    for (int i = 0; q && i < 4; i++) {
      if (!d[i])
        continue;
      rc = cf_completion_queue_add(q, d[i], NULL);
      EXPECT_CLEAN(rc);
      queued += rc == CF_OK;
    }
    uint64_t three = 3;
    rc = cf_future_set_result(src, &three, sizeof three);
    CU_ASSERT_TRUE(rc == CF_OK || rc == CF_ENOMEM);
    if (rc != CF_OK)
      cf_future_cancel(src); /* still pending: end it another way */
    for (int i = 0; i < 4; i++) {
      if (!d[i])
        continue;
      const void *r = NULL;
      rc = cf_future_result(d[i], CF_SEC(30), &r, NULL);
      CU_ASSERT_NOT_EQUAL(rc, CF_ETIMEDOUT);
      if (rc == CF_OK && i < 2) {
        uint64_t v;
        memcpy(&v, r, sizeof v);
        CU_ASSERT_EQUAL(v, 10);
      }
    }
    /* Done comes before the callbacks: a future's entry may reach the
     * queue a moment after its waiters woke.  The descriptor says when. */
    cf_future *p;
    size_t popped = 0;
    while (q && popped < queued) {
      struct pollfd pfd = {cf_completion_queue_fd(q), POLLIN, 0};
      if (poll(&pfd, 1, 30000) != 1)
        break;
      while (cf_completion_queue_pop(q, &p, NULL) == CF_OK) {
        popped++;
        cf_future_release(p);
      }
    }
    CU_ASSERT_EQUAL(popped, queued);
    cf_completion_queue_destroy(q);
    for (int i = 0; i < 4; i++)
      cf_future_release(d[i]);
    cf_future_release(src);
  }

  /* No more failures: the executor must still work. */
  bool injected = cf__fault_set(0, 0, false);
  uint64_t seven = 7;
  cf_future *f = NULL;
  rc = cf_submit(ex, task_square, &seven, sizeof seven, &f);
  if (rc == CF_OK) {
    const void *d;
    CU_ASSERT_EQUAL(cf_future_result(f, CF_SEC(30), &d, NULL), CF_OK);
    cf_future_release(f);
  } else {
    /* Only a process pool whose first worker could not start is broken. */
    CU_ASSERT_EQUAL(rc, CF_EBROKEN);
  }
  EXPECT_CLEAN(cf_shutdown(ex, true, false));
  for (size_t i = 0; i < nf; i++)
    cf_future_release(fs[i]);
  cf_future_release(user);
  cf_executor_release(ex);
  return injected;
}

/* Walks the failure through every site; returns how many it found. */
static long walk(make_fn make, bool threads) {
  long n = 1;
  for (; n < 5000; n++) {
    if (!scenario(make, threads ? 0 : n, threads ? n : 0))
      break;
  }
  CU_ASSERT_TRUE(n < 5000);
  return n - 1;
}

static void report(const char *what, long sites) {
  fprintf(stderr, "\n    %s: %ld failure sites walked", what, sites);
}

static void test_thread_pool_allocations(void) {
  long sites = walk(make_threads, false);
  CU_ASSERT_TRUE(sites > 20);
  report("thread pool, allocations", sites);
}

static void test_thread_pool_threads(void) {
  long sites = walk(make_threads, true);
  CU_ASSERT_TRUE(sites >= 1);
  report("thread pool, thread creations", sites);
}

static void test_process_pool_allocations(void) {
  long sites = walk(make_processes, false);
  CU_ASSERT_TRUE(sites > 20);
  report("process pool, allocations", sites);
}

static void test_process_pool_threads(void) {
  long sites = walk(make_processes, true);
  CU_ASSERT_TRUE(sites >= 1);
  report("process pool, thread creations", sites);
}

/* Every allocation after the N-th fails too (out of memory for good), for
 * the first sites: still clean, and usable once memory is back. */
static void test_sticky_failures(void) {
  for (long n = 1; n < 60; n++) {
    cf__fault_set(n, 0, true);
    cf_executor *ex = NULL;
    int rc = make_threads(&ex);
    cf_future *f = NULL;
    uint64_t v = 3;
    if (rc == CF_OK)
      EXPECT_CLEAN(cf_submit(ex, task_square, &v, sizeof v, &f));
    if (f)
      EXPECT_CLEAN(cf_future_result(f, CF_SEC(30), NULL, NULL));
    cf__fault_set(0, 0, false);
    cf_future_release(f);
    if (ex) {
      f = submit_u64(ex, task_square, 3);
      CU_ASSERT_EQUAL(result_u64(f), 10);
      cf_future_release(f);
      cf_executor_release(ex);
    }
  }
}

/* ---- lost races, forced -------------------------------------------------- */

static void cancel_hook(enum cf__race_point point, void *obj) {
  if (point == CF__RACE_SET_BEFORE_CAS)
    CU_ASSERT_EQUAL(cf_future_cancel(obj), CF_OK); /* no listener: no lock */
}

/* The first submit's new worker looks at the empty queue and goes to sleep
 * before the task is pushed: wait for that, then let the push land. */
static void sleep_first_hook(enum cf__race_point point, void *obj) {
  if (point != CF__RACE_SUBMIT_BEFORE_PUSH)
    return;
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  for (int i = 0; i < 600000; i++) {
    if (cf_executor_stats_get(obj, &st) == CF_OK && st.idle_workers == 1 &&
        st.workers == 1)
      break;
    cf_test_sleep_ms(1);
  }
  cf_test_sleep_ms(1); /* past the spin: asleep on its futex word */
}

/* Regression (found looping test_stress under valgrind): the first submit
 * started a worker and returned without waking it, so a worker that had
 * already gone to sleep left the task queued forever. */
static void test_first_submit_wakes_sleeping_worker(void) {
  for (int k = 0; k < 3; k++) {
    cf_executor *ex = make_pool(k + 1);
    cf_future *f = NULL;
    cf__race_hook = sleep_first_hook;
    CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_noop, NULL, 0, &f), CF_OK);
    cf__race_hook = NULL;
    /* A safety net, not a timing check: it completes at once. */
    CU_ASSERT_EQUAL(cf_future_result(f, CF_SEC(600), NULL, NULL), CF_OK);
    cf_future_release(f);
    cf_executor_release(ex);
  }
}

/* The winner completes the future, once, while the loser is in the window. */
static void set_hook(enum cf__race_point point, void *obj) {
  static bool in_hook;
  if (point != CF__RACE_SET_BEFORE_LOCK || in_hook)
    return;
  in_hook = true;
  CU_ASSERT_EQUAL(cf_future_set_result(obj, "winner", 7), CF_OK);
  in_hook = false;
}

/* Creates a user future and completes it with set_result (which = 0) or
 * set_error (1) while `hook` runs in the set's race window; returns the
 * future and the loser's status in *rc. */
static cf_future *set_in_race(void (*hook)(enum cf__race_point, void *),
                              int which, int *rc) {
  cf_future *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  char big[200] = "the loser's result, larger than the inline buffer";
  cf__race_hook = hook;
  *rc = which ? cf_future_set_error(f, 5, "the loser's message")
              : cf_future_set_result(f, big, sizeof big);
  cf__race_hook = NULL;
  return f;
}

/* Two set_* race: the loser returns CF_ESTATE and the winner's result
 * stands, untouched by the loser's copy (which is freed). */
static void test_set_loses_to_set(void) {
  for (int which = 0; which < 2; which++) {
    int rc;
    cf_future *f = set_in_race(set_hook, which, &rc);
    CU_ASSERT_EQUAL(rc, CF_ESTATE);
    const void *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(cf_future_result(f, 0, &d, &n), CF_OK);
    CU_ASSERT_TRUE(n == 7 && d && strcmp(d, "winner") == 0);
    cf_future_release(f);
  }
}

/* set_result / set_error lose to a cancel that lands between their check
 * and their state change: CF_ESTATE, the future stays cancelled with no
 * result or error, and the copies are freed (LSan, valgrind). */
static void test_set_loses_to_cancel(void) {
  for (int which = 0; which < 2; which++) {
    int rc;
    cf_future *f = set_in_race(cancel_hook, which, &rc);
    CU_ASSERT_EQUAL(rc, CF_ESTATE);
    CU_ASSERT_TRUE(cf_future_cancelled(f));
    int code = -1;
    const char *msg = "x";
    CU_ASSERT_EQUAL(cf_future_error(f, 0, &code, &msg), CF_ECANCELLED);
    /* Nothing of the loser stays in the future (the API hides these
     * fields for a cancelled future, so look inside). */
    CU_ASSERT_PTR_NULL(f->errmsg);
    CU_ASSERT_EQUAL(f->errcode, 0);
    CU_ASSERT_EQUAL(cf__buf_len(&f->out), 0);
    cf_future_release(f);
  }
}

/* An executor failing a future (a broken pool, no thread) after the user
 * cancelled it: the cancel stands and the error's message is freed. */
static void test_fail_after_cancel(void) {
  cf_future *f = cf__future_alloc(task_noop);
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_EQUAL(cf_future_cancel(f), CF_OK);
  CU_ASSERT_EQUAL(cf__future_fail(f, CF_EBROKEN, 3, strdup("broken")),
                  CF_ESTATE);
  CU_ASSERT_TRUE(cf_future_cancelled(f));
  CU_ASSERT_EQUAL(cf_future_result(f, 0, NULL, NULL), CF_ECANCELLED);
  cf_future_release(f);
}

CF_TEST_MAIN("faults", CF_TEST(test_first_submit_wakes_sleeping_worker),
             CF_TEST(test_thread_pool_allocations),
             CF_TEST(test_thread_pool_threads),
             CF_TEST(test_process_pool_allocations),
             CF_TEST(test_process_pool_threads),
             CF_TEST(test_set_loses_to_cancel), CF_TEST(test_set_loses_to_set),
             CF_TEST(test_fail_after_cancel), CF_TEST(test_sticky_failures))
