/* The future state machine: states, results, errors, cancellation,
 * callbacks, timeouts, and user-completable futures. */
#include "test_util.h"

#include <signal.h>

static void test_user_future_result(void) {
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_state(f), CF_PENDING);
  CU_ASSERT_FALSE(cf_future_done(f));
  CU_ASSERT_EQUAL(cf_future_set_running_or_notify_cancel(f), CF_OK);
  CU_ASSERT_TRUE(cf_future_running(f));
  CU_ASSERT_EQUAL(cf_future_cancel(f), CF_ESTATE); /* running: too late */
  const char big[100] = "a result larger than the inline buffer";
  CU_ASSERT_EQUAL(cf_future_set_result(f, big, sizeof big), CF_OK);
  CU_ASSERT_TRUE(cf_future_done(f));
  CU_ASSERT_EQUAL(cf_future_state(f), CF_FINISHED);
  const void *d;
  size_t n;
  CU_ASSERT_EQUAL(cf_future_result(f, 0, &d, &n), CF_OK);
  CU_ASSERT_EQUAL(n, sizeof big);
  CU_ASSERT_EQUAL(memcmp(d, big, sizeof big), 0);
  int code = -1;
  const char *msg = "x";
  CU_ASSERT_EQUAL(cf_future_error(f, 0, &code, &msg), CF_OK);
  CU_ASSERT_EQUAL(code, 0);
  CU_ASSERT_PTR_NULL(msg);
  /* Completing twice is an error, not a crash, and changes nothing. */
  CU_ASSERT_EQUAL(cf_future_set_result(f, "x", 1), CF_ESTATE);
  CU_ASSERT_EQUAL(cf_future_set_error(f, 3, "late"), CF_ESTATE);
  CU_ASSERT_EQUAL(cf_future_result(f, 0, &d, &n), CF_OK);
  CU_ASSERT_EQUAL(n, sizeof big);
  CU_ASSERT_EQUAL(cf_future_cancel(f), CF_ESTATE);
  /* Finished, not cancelled: too late to start, and not "cancelled". */
  CU_ASSERT_EQUAL(cf_future_set_running_or_notify_cancel(f), CF_ESTATE);
  cf_future_release(f);
}

/* A user future dropped while pending: its callbacks can never run (nobody
 * can complete it any more), and they are freed with it (valgrind, LSan). */
static int g_never;
static void cb_never(cf_future *f, void *arg) {
  (void)f;
  (void)arg;
  g_never++;
}

static void test_release_pending_with_callbacks(void) {
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  for (int i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(cf_future_add_done_callback(f, cb_never, NULL), CF_OK);
  cf_future_release(f);
  CU_ASSERT_EQUAL(g_never, 0);
}

static void test_user_future_error(void) {
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_set_error(f, 0, "zero is not an error"), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_set_error(f, 42, "the answer"), CF_OK);
  const void *d = (void *)1;
  size_t n = 9;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, &n), CF_ETASK);
  CU_ASSERT_PTR_NULL(d);
  CU_ASSERT_EQUAL(n, 0);
  int code;
  const char *msg;
  CU_ASSERT_EQUAL(cf_future_error(f, CF_FOREVER, &code, &msg), CF_ETASK);
  CU_ASSERT_EQUAL(code, 42);
  CU_ASSERT_STRING_EQUAL(msg, "the answer");
  cf_future_release(f);
}

static void test_cancel(void) {
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancel(f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancel(f), CF_OK); /* again: still cancelled */
  CU_ASSERT_TRUE(cf_future_cancelled(f));
  CU_ASSERT_TRUE(cf_future_done(f));
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, NULL, NULL), CF_ECANCELLED);
  CU_ASSERT_EQUAL(cf_future_set_running_or_notify_cancel(f), CF_ECANCELLED);
  CU_ASSERT_EQUAL(cf_future_set_result(f, NULL, 0), CF_ESTATE);
  int code = 5;
  CU_ASSERT_EQUAL(cf_future_error(f, 0, &code, NULL), CF_ECANCELLED);
  CU_ASSERT_EQUAL(code, 0);
  cf_future_release(f);
}

/* ---- callbacks ----------------------------------------------------------- */

typedef struct cb_log {
  int order[16];
  atomic_int n;
  pthread_t thread[16];
} cb_log;

static cb_log *g_log;

static void cb_record(cf_future *f, void *arg) {
  (void)f;
  int i = atomic_fetch_add(&g_log->n, 1);
  if (i < 16) {
    g_log->order[i] = (int)(intptr_t)arg;
    g_log->thread[i] = pthread_self();
  }
}

static void test_callbacks_in_order(void) {
  cb_log log = {0};
  g_log = &log;
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  for (intptr_t i = 0; i < 5; i++)
    CU_ASSERT_EQUAL(cf_future_add_done_callback(f, cb_record, (void *)i),
                    CF_OK);
  CU_ASSERT_EQUAL(atomic_load(&log.n), 0); /* not before completion */
  CU_ASSERT_EQUAL(cf_future_set_result(f, NULL, 0), CF_OK);
  CU_ASSERT_EQUAL(atomic_load(&log.n), 5);
  for (int i = 0; i < 5; i++) {
    CU_ASSERT_EQUAL(log.order[i], i);
    CU_ASSERT_TRUE(pthread_equal(log.thread[i], pthread_self()));
  }
  /* Already done: runs at once, on this thread. */
  CU_ASSERT_EQUAL(cf_future_add_done_callback(f, cb_record, (void *)9), CF_OK);
  CU_ASSERT_EQUAL(atomic_load(&log.n), 6);
  CU_ASSERT_EQUAL(log.order[5], 9);
  cf_future_release(f);
}

static void cb_release(cf_future *f, void *arg) {
  (void)arg;
  cf_future_release(f); /* drops the last reference, inside the callback */
}

static void test_callback_releases_future(void) {
  cb_log log = {0};
  g_log = &log;
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  cf_future_add_done_callback(f, cb_release, NULL);
  cf_future_add_done_callback(f, cb_record, (void *)1); /* runs after */
  cf_future_retain(f);
  cf_future_release(f); /* back to one reference: the callback's */
  CU_ASSERT_EQUAL(cf_future_cancel(f), CF_OK);
  CU_ASSERT_EQUAL(atomic_load(&log.n), 1);
  /* f is gone now; ASan/valgrind check nothing touched it afterwards. */
}

static cf_future *g_nested;
static void cb_nested_inner(cf_future *f, void *arg) {
  (void)f;
  *(int *)arg += 1;
}
static void cb_nested_outer(cf_future *f, void *arg) {
  /* A callback may call cfutures: add a callback to the (done) future. */
  CU_ASSERT_EQUAL(cf_future_add_done_callback(f, cb_nested_inner, arg), CF_OK);
  CU_ASSERT_EQUAL(*(int *)arg, 1);
  g_nested = f;
}

static void test_callback_calls_library(void) {
  int hits = 0;
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  cf_future_add_done_callback(f, cb_nested_outer, &hits);
  CU_ASSERT_EQUAL(cf_future_set_error(f, 7, NULL), CF_OK);
  CU_ASSERT_EQUAL(hits, 1);
  CU_ASSERT_PTR_EQUAL(g_nested, f);
  cf_future_release(f);
}

/* ---- waiting ------------------------------------------------------------- */

static void *waiter_thread(void *arg) {
  cf_future *f = arg;
  return (void *)(intptr_t)cf_future_result(f, CF_FOREVER, NULL, NULL);
}

/* Unlike CPython gh-92001, cancelling wakes every waiter at once. */
static void test_cancel_wakes_all_waiters(void) {
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  pthread_t th[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&th[i], NULL, waiter_thread, f);
  cf_test_sleep_ms(50); /* let them block (not required for correctness) */
  CU_ASSERT_EQUAL(cf_future_cancel(f), CF_OK);
  for (int i = 0; i < 4; i++) {
    void *rc;
    pthread_join(th[i], &rc);
    CU_ASSERT_EQUAL((int)(intptr_t)rc, CF_ECANCELLED);
  }
  cf_future_release(f);
}

static void test_timeouts(void) {
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  /* Zero polls. */
  CU_ASSERT_EQUAL(cf_future_result(f, 0, NULL, NULL), CF_ETIMEDOUT);
  CU_ASSERT_EQUAL(cf_future_wait(f, 0), CF_ETIMEDOUT);
  /* A small timeout waits at least that long. */
  int64_t t0 = cf_test_now_ms();
  CU_ASSERT_EQUAL(cf_future_result(f, CF_MSEC(30), NULL, NULL), CF_ETIMEDOUT);
  CU_ASSERT_TRUE(cf_test_now_ms() - t0 >= 29);
  /* One nanosecond: expires at once, but is still a timeout. */
  CU_ASSERT_EQUAL(cf_future_wait(f, 1), CF_ETIMEDOUT);
  /* A huge timeout saturates instead of overflowing into the past. */
  pthread_t th;
  pthread_create(&th, NULL, waiter_thread, f);
  CU_ASSERT_EQUAL(cf_future_wait(f, CF_MSEC(20)), CF_ETIMEDOUT);
  CU_ASSERT_EQUAL(cf_future_set_result(f, "ok", 2), CF_OK);
  void *rc;
  pthread_join(th, &rc);
  CU_ASSERT_EQUAL((int)(intptr_t)rc, CF_OK);
  CU_ASSERT_EQUAL(cf_future_wait(f, INT64_MAX), CF_OK);
  CU_ASSERT_EQUAL(cf_future_wait(f, 0), CF_OK);
  cf_future_release(f);
}

/* ---- races --------------------------------------------------------------- */

typedef struct race {
  cf_future *f;
  atomic_int go;
  atomic_int calls;
} race;

static void cb_count(cf_future *f, void *arg) {
  (void)f;
  atomic_fetch_add(&((race *)arg)->calls, 1);
}

static void *race_complete(void *arg) {
  race *r = arg;
  if (!cf_test_await_flag(&r->go))
    return NULL; /* never told to go: the callback count below fails */
  cf_future_set_result(r->f, NULL, 0);
  return NULL;
}

/* Registration racing completion: every callback runs exactly once. */
static void test_race_callback_vs_completion(void) {
  size_t rounds = cf_test_scaled(5000);
  for (size_t i = 0; i < rounds; i++) {
    race r = {0};
    CU_ASSERT_EQUAL_FATAL(cf_future_create(&r.f), CF_OK);
    pthread_t th;
    pthread_create(&th, NULL, race_complete, &r);
    atomic_store(&r.go, 1);
    for (int k = 0; k < 4; k++)
      cf_future_add_done_callback(r.f, cb_count, &r);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL_FATAL(atomic_load(&r.calls), 4);
    cf_future_release(r.f);
  }
}

static void *race_cancel(void *arg) {
  race *r = arg;
  if (!cf_test_await_flag(&r->go))
    return NULL;
  if (cf_future_cancel(r->f) == CF_OK)
    atomic_fetch_add(&r->calls, 100);
  return NULL;
}

/* cancel racing set_running: exactly one wins. */
static void test_race_cancel_vs_start(void) {
  size_t rounds = cf_test_scaled(5000);
  for (size_t i = 0; i < rounds; i++) {
    race r = {0};
    CU_ASSERT_EQUAL_FATAL(cf_future_create(&r.f), CF_OK);
    pthread_t th;
    pthread_create(&th, NULL, race_cancel, &r);
    atomic_store(&r.go, 1);
    int rc = cf_future_set_running_or_notify_cancel(r.f);
    pthread_join(th, NULL);
    if (rc == CF_OK) {
      CU_ASSERT_EQUAL(atomic_load(&r.calls), 0);
      CU_ASSERT_EQUAL(cf_future_set_result(r.f, NULL, 0), CF_OK);
    } else {
      CU_ASSERT_EQUAL(rc, CF_ECANCELLED);
      CU_ASSERT_EQUAL(atomic_load(&r.calls), 100);
    }
    cf_future_release(r.f);
  }
}

/* ---- signals ------------------------------------------------------------- */

static atomic_int g_signals;
static void on_usr1(int sig) {
  (void)sig;
  atomic_fetch_add(&g_signals, 1);
}

/* A blocked waiter that keeps receiving signals still waits for the result. */
static void test_wait_survives_eintr(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1; /* no SA_RESTART: syscalls see EINTR */
  sigaction(SIGUSR1, &sa, NULL);
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  pthread_t th;
  pthread_create(&th, NULL, waiter_thread, f);
  for (int i = 0; i < 50; i++) {
    pthread_kill(th, SIGUSR1);
    cf_test_sleep_ms(2);
  }
  CU_ASSERT_FALSE(cf_future_done(f)); /* the waiter did not complete it */
  cf_future_set_result(f, "done", 4);
  void *rc;
  pthread_join(th, &rc);
  CU_ASSERT_EQUAL((int)(intptr_t)rc, CF_OK);
  CU_ASSERT_TRUE(atomic_load(&g_signals) > 0);
  signal(SIGUSR1, SIG_DFL);
  cf_future_release(f);
}

/* Timed waits also survive EINTR, and still time out. */
static void *timed_waiter(void *arg) {
  return (void *)(intptr_t)cf_future_wait(arg, CF_MSEC(200));
}

static void test_timed_wait_survives_eintr(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  pthread_t th;
  int64_t t0 = cf_test_now_ms();
  pthread_create(&th, NULL, timed_waiter, f);
  for (int i = 0; i < 20; i++) {
    pthread_kill(th, SIGUSR1);
    cf_test_sleep_ms(3);
  }
  void *rc;
  pthread_join(th, &rc);
  CU_ASSERT_EQUAL((int)(intptr_t)rc, CF_ETIMEDOUT);
  CU_ASSERT_TRUE(cf_test_now_ms() - t0 >= 199);
  signal(SIGUSR1, SIG_DFL);
  cf_future_release(f);
}

CF_TEST_MAIN("future", CF_TEST(test_user_future_result),
             CF_TEST(test_release_pending_with_callbacks),
             CF_TEST(test_user_future_error), CF_TEST(test_cancel),
             CF_TEST(test_callbacks_in_order),
             CF_TEST(test_callback_releases_future),
             CF_TEST(test_callback_calls_library),
             CF_TEST(test_cancel_wakes_all_waiters), CF_TEST(test_timeouts),
             CF_TEST(test_race_callback_vs_completion),
             CF_TEST(test_race_cancel_vs_start),
             CF_TEST(test_wait_survives_eintr),
             CF_TEST(test_timed_wait_survives_eintr))
