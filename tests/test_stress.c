/* Races and load, each bounded: many submitters, cancel vs start, shutdown
 * vs submit, callback registration vs completion. */
#include "test_util.h"

typedef struct submitter {
  cf_executor *ex;
  uint64_t base;
  size_t count;
  size_t bad;
} submitter;

/* Submits its tasks in windows of 1000 and checks every result. */
static void *submit_many(void *arg) {
  submitter *s = arg;
  enum { W = 1000 };
  cf_future *fs[W];
  for (size_t done = 0; done < s->count;) {
    size_t n = s->count - done < W ? s->count - done : W;
    for (size_t i = 0; i < n; i++) {
      uint64_t v = s->base + done + i;
      if (cf_submit(s->ex, task_square, &v, sizeof v, &fs[i]) != CF_OK)
        fs[i] = NULL;
    }
    for (size_t i = 0; i < n; i++) {
      uint64_t v = s->base + done + i, r = 0;
      const void *d = NULL;
      size_t len = 0;
      if (!fs[i] || cf_future_result(fs[i], CF_FOREVER, &d, &len) != CF_OK ||
          len != sizeof r)
        s->bad++;
      else if (memcpy(&r, d, sizeof r), r != v * v + 1)
        s->bad++;
      cf_future_release(fs[i]);
    }
    done += n;
  }
  return NULL;
}

static void test_eight_submitters(void) {
  cf_executor *ex = make_pool(4);
  enum { T = 8 };
  size_t per = cf_test_scaled(100000);
  submitter s[T];
  pthread_t th[T];
  for (int i = 0; i < T; i++) {
    s[i] = (submitter){ex, (uint64_t)i << 32, per, 0};
    pthread_create(&th[i], NULL, submit_many, &s[i]);
  }
  size_t bad = 0;
  for (int i = 0; i < T; i++) {
    pthread_join(th[i], NULL);
    bad += s[i].bad;
  }
  CU_ASSERT_EQUAL(bad, 0);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_shutdown(ex, true, false);
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.completed, T * per);
  cf_executor_release(ex);
}

/* cancel racing a worker starting the task: every future ends either
 * cancelled (and its task never ran) or finished (and it ran once). */
static atomic_size_t g_runs;
static int task_counted(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)in;
  (void)len;
  atomic_fetch_add(&g_runs, 1);
  return 0;
}

static void test_race_cancel_vs_start(void) {
  cf_executor *ex = make_pool(2);
  atomic_store(&g_runs, 0);
  size_t n = cf_test_scaled(20000), cancelled = 0, finished = 0;
  for (size_t i = 0; i < n; i++) {
    cf_future *f;
    CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_counted, NULL, 0, &f), CF_OK);
    if (i % 3)
      cf_future_cancel(f);
    int rc = cf_future_result(f, CF_FOREVER, NULL, NULL);
    if (rc == CF_ECANCELLED)
      cancelled++;
    else if (rc == CF_OK)
      finished++;
    cf_future_release(f);
  }
  cf_shutdown(ex, true, false);
  CU_ASSERT_EQUAL(cancelled + finished, n);
  CU_ASSERT_EQUAL(atomic_load(&g_runs), finished);
  CU_ASSERT_TRUE(finished >= n / 3);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.cancelled, cancelled);
  cf_executor_release(ex);
}

/* shutdown racing submitters: each submit is either refused with
 * CF_ESHUTDOWN or accepted and then run; nothing hangs or is lost.  Each
 * submitter goes on until it is refused, however slowly the main thread
 * gets to the shutdown (a fixed number of submits could all be accepted
 * before it on a loaded machine); it gives up (and fails) only after 60 s
 * or 1000 unexpected statuses. */
typedef struct racer {
  cf_executor *ex;
  atomic_int *go;
  size_t accepted, refused, ran_ok, other;
  bool started, gave_up;
} racer;

static void *submit_until_refused(void *arg) {
  racer *r = arg;
  r->started = cf_test_await_flag(r->go);
  int64_t end = cf_test_now_ms() + 60000;
  for (size_t i = 1;; i++) {
    if (r->other >= 1000 || (i % 1024 == 0 && cf_test_now_ms() > end)) {
      r->gave_up = true;
      break;
    }
    cf_future *f;
    int rc = cf_submit(r->ex, task_noop, NULL, 0, &f);
    if (rc == CF_ESHUTDOWN) {
      r->refused++;
      break;
    }
    if (rc != CF_OK) {
      r->other++;
      continue;
    }
    r->accepted++;
    if (cf_future_result(f, CF_FOREVER, NULL, NULL) == CF_OK)
      r->ran_ok++;
    cf_future_release(f);
  }
  return NULL;
}

static void test_race_shutdown_vs_submit(void) {
  size_t rounds = cf_test_scaled(200);
  for (size_t k = 0; k < rounds; k++) {
    cf_executor *ex = make_pool(2);
    atomic_int go = 0;
    racer r[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
      r[i] = (racer){.ex = ex, .go = &go};
      pthread_create(&th[i], NULL, submit_until_refused, &r[i]);
    }
    atomic_store(&go, 1);
    for (volatile int spin = 0; spin < (int)(k % 7) * 1000; spin++)
      ;
    cf_shutdown(ex, k % 2 == 0, false);
    for (int i = 0; i < 3; i++) {
      pthread_join(th[i], NULL);
      CU_ASSERT_TRUE(r[i].started);
      CU_ASSERT_FALSE(r[i].gave_up);
      CU_ASSERT_EQUAL(r[i].refused, 1);
      CU_ASSERT_EQUAL(r[i].other, 0);
      CU_ASSERT_EQUAL(r[i].ran_ok, r[i].accepted);
    }
    cf_executor_release(ex);
  }
}

/* Registration racing completion on executor futures. */
static atomic_size_t g_cb_calls;
static void cb_count(cf_future *f, void *arg) {
  (void)f;
  (void)arg;
  atomic_fetch_add(&g_cb_calls, 1);
}

static void test_race_callback_vs_completion(void) {
  cf_executor *ex = make_pool(2);
  atomic_store(&g_cb_calls, 0);
  size_t n = cf_test_scaled(50000);
  for (size_t i = 0; i < n; i++) {
    cf_future *f;
    CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_noop, NULL, 0, &f), CF_OK);
    cf_future_add_done_callback(f, cb_count, NULL);
    cf_future_release(f);
  }
  cf_shutdown(ex, true, false);
  CU_ASSERT_EQUAL(atomic_load(&g_cb_calls), n);
  cf_executor_release(ex);
}

/* Many waiters, wait/as_completed and cancellations all at once. */
static void *mixed_worker(void *arg) {
  cf_executor *ex = arg;
  for (int round = 0; round < 200; round++) {
    cf_future *fs[16];
    for (uint64_t i = 0; i < 16; i++)
      cf_submit(ex, task_square, &i, sizeof i, &fs[i]);
    cf_future_cancel(fs[round % 16]);
    cf_wait(fs, 16, CF_FOREVER,
            round % 2 ? CF_FIRST_COMPLETED : CF_ALL_COMPLETED, NULL, NULL);
    cf_as_completed_iter *it;
    cf_as_completed_create(fs, 16, CF_FOREVER, &it);
    cf_future *f;
    while (cf_as_completed_next(it, &f) == CF_OK)
      ;
    cf_as_completed_destroy(it);
    for (int i = 0; i < 16; i++)
      cf_future_release(fs[i]);
  }
  return NULL;
}

static void test_mixed_waits(void) {
  cf_executor *ex = make_pool(3);
  pthread_t th[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&th[i], NULL, mixed_worker, ex);
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_shutdown(ex, true, false);
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.completed + st.cancelled, 4 * 200 * 16);
  cf_executor_release(ex);
}

CF_TEST_MAIN("stress", CF_TEST(test_eight_submitters),
             CF_TEST(test_race_cancel_vs_start),
             CF_TEST(test_race_shutdown_vs_submit),
             CF_TEST(test_race_callback_vs_completion),
             CF_TEST(test_mixed_waits))
