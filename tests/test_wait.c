/* cf_wait() and cf_as_completed(). */
#include "test_util.h"

static cf_future *user_future(void) {
  cf_future *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  return f;
}

static void release_all(cf_future **fs, size_t n) {
  for (size_t i = 0; i < n; i++)
    cf_future_release(fs[i]);
}

static void test_wait_first_completed(void) {
  cf_future *fs[3] = {user_future(), user_future(), user_future()};
  bool done[3];
  size_t nd = 9;
  /* Nothing done: a timeout is not an error. */
  CU_ASSERT_EQUAL(cf_wait(fs, 3, CF_MSEC(10), CF_FIRST_COMPLETED, done, &nd),
                  CF_OK);
  CU_ASSERT_EQUAL(nd, 0);
  CU_ASSERT_EQUAL(cf_wait(fs, 3, 0, CF_FIRST_COMPLETED, done, &nd), CF_OK);
  CU_ASSERT_EQUAL(nd, 0);
  cf_future_set_result(fs[1], NULL, 0);
  CU_ASSERT_EQUAL(cf_wait(fs, 3, CF_FOREVER, CF_FIRST_COMPLETED, done, &nd),
                  CF_OK);
  CU_ASSERT_EQUAL(nd, 1);
  CU_ASSERT_FALSE(done[0]);
  CU_ASSERT_TRUE(done[1]);
  CU_ASSERT_FALSE(done[2]);
  release_all(fs, 3);
}

typedef struct later {
  cf_future *f;
  long ms;
  int code; /* 0: result, >0: error, <0: cancel */
} later;

static void *complete_later(void *arg) {
  later *l = arg;
  cf_test_sleep_ms(l->ms);
  if (l->code == 0)
    cf_future_set_result(l->f, NULL, 0);
  else if (l->code > 0)
    cf_future_set_error(l->f, l->code, "late failure");
  else
    cf_future_cancel(l->f);
  return NULL;
}

static void test_wait_all_completed(void) {
  enum { N = 16 };
  cf_future *fs[N];
  later l[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    fs[i] = user_future();
    l[i] = (later){fs[i], i % 4, i % 3 == 0 ? 3 : i % 5 == 0 ? -1 : 0};
    pthread_create(&th[i], NULL, complete_later, &l[i]);
  }
  bool done[N];
  size_t nd;
  CU_ASSERT_EQUAL(cf_wait(fs, N, CF_FOREVER, CF_ALL_COMPLETED, done, &nd),
                  CF_OK);
  CU_ASSERT_EQUAL(nd, N);
  for (int i = 0; i < N; i++) {
    CU_ASSERT_TRUE(done[i]);
    pthread_join(th[i], NULL);
  }
  release_all(fs, N);
}

static void test_wait_first_exception(void) {
  cf_future *fs[3] = {user_future(), user_future(), user_future()};
  later l = {fs[2], 10, 9};
  pthread_t th;
  cf_future_set_result(fs[0], NULL, 0);
  pthread_create(&th, NULL, complete_later, &l);
  bool done[3];
  size_t nd;
  CU_ASSERT_EQUAL(cf_wait(fs, 3, CF_FOREVER, CF_FIRST_EXCEPTION, done, &nd),
                  CF_OK);
  CU_ASSERT_TRUE(done[0]);
  CU_ASSERT_FALSE(done[1]); /* still pending: the exception ended the wait */
  CU_ASSERT_TRUE(done[2]);
  CU_ASSERT_EQUAL(nd, 2);
  pthread_join(th, NULL);
  /* A cancellation is not an exception: without errors it waits for all. */
  cf_future *gs[2] = {user_future(), user_future()};
  cf_future_cancel(gs[0]);
  later l2 = {gs[1], 10, 0};
  pthread_create(&th, NULL, complete_later, &l2);
  CU_ASSERT_EQUAL(cf_wait(gs, 2, CF_FOREVER, CF_FIRST_EXCEPTION, done, &nd),
                  CF_OK);
  CU_ASSERT_EQUAL(nd, 2);
  pthread_join(th, NULL);
  release_all(fs, 3);
  release_all(gs, 2);
}

static void test_wait_edge_cases(void) {
  size_t nd = 7;
  CU_ASSERT_EQUAL(cf_wait(NULL, 0, CF_FOREVER, CF_ALL_COMPLETED, NULL, &nd),
                  CF_OK);
  CU_ASSERT_EQUAL(nd, 0);
  cf_future *f = user_future();
  cf_future *dup[3] = {f, f, f};
  later l = {f, 5, 0};
  pthread_t th;
  pthread_create(&th, NULL, complete_later, &l);
  CU_ASSERT_EQUAL(cf_wait(dup, 3, CF_FOREVER, CF_ALL_COMPLETED, NULL, &nd),
                  CF_OK);
  CU_ASSERT_EQUAL(nd, 3);
  pthread_join(th, NULL);
  cf_future *withnull[2] = {f, NULL};
  CU_ASSERT_EQUAL(cf_wait(withnull, 2, 0, CF_ALL_COMPLETED, NULL, NULL),
                  CF_EINVAL);
  CU_ASSERT_EQUAL(cf_wait(dup, 3, 0, (cf_wait_mode)7, NULL, NULL), CF_EINVAL);
  cf_future_release(f);
}

/* Cancelling wakes a thread in cf_wait at once. */
static void test_wait_woken_by_cancel(void) {
  cf_future *f = user_future();
  later l = {f, 10, -1};
  pthread_t th;
  pthread_create(&th, NULL, complete_later, &l);
  size_t nd;
  CU_ASSERT_EQUAL(cf_wait(&f, 1, CF_FOREVER, CF_ALL_COMPLETED, NULL, &nd),
                  CF_OK);
  CU_ASSERT_EQUAL(nd, 1);
  CU_ASSERT_TRUE(cf_future_cancelled(f));
  pthread_join(th, NULL);
  cf_future_release(f);
}

/* ---- as_completed -------------------------------------------------------- */

static void test_as_completed_order(void) {
  cf_future *fs[5];
  for (int i = 0; i < 5; i++)
    fs[i] = user_future();
  cf_future_set_result(fs[3], NULL, 0); /* done before: handed out first */
  cf_future_set_result(fs[1], NULL, 0);
  cf_future *in[6] = {fs[0], fs[1], fs[2], fs[3], fs[4], fs[2]}; /* dup */
  cf_as_completed_iter *it;
  CU_ASSERT_EQUAL_FATAL(cf_as_completed_create(in, 6, CF_FOREVER, &it), CF_OK);
  cf_future *got;
  CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_OK);
  CU_ASSERT_PTR_EQUAL(got, fs[1]); /* done ones in input order */
  CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_OK);
  CU_ASSERT_PTR_EQUAL(got, fs[3]);
  /* Then in completion order: 4, 0, 2. */
  int order[3] = {4, 0, 2};
  for (int k = 0; k < 3; k++) {
    later l = {fs[order[k]], 5, k == 1 ? 5 : 0};
    pthread_t th;
    pthread_create(&th, NULL, complete_later, &l);
    CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_OK);
    CU_ASSERT_PTR_EQUAL(got, fs[order[k]]);
    pthread_join(th, NULL);
  }
  CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_EOF); /* dup: once */
  CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_EOF);
  cf_as_completed_destroy(it);
  release_all(fs, 5);
}

static void test_as_completed_timeout(void) {
  cf_future *fs[2] = {user_future(), user_future()};
  cf_future_set_result(fs[0], NULL, 0);
  cf_as_completed_iter *it;
  /* The deadline counts from the create: measured from before it, the
   * timeout cannot come sooner, however slow the calls in between. */
  int64_t t0 = cf_test_now_ms();
  CU_ASSERT_EQUAL_FATAL(cf_as_completed_create(fs, 2, CF_MSEC(30), &it), CF_OK);
  cf_future *got;
  CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_OK);
  CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_ETIMEDOUT);
  CU_ASSERT_TRUE(cf_test_now_ms() - t0 >= 29);
  CU_ASSERT_PTR_NULL(got);
  /* Done later: still handed out (the deadline has passed, no wait). */
  cf_future_set_result(fs[1], NULL, 0);
  CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_OK);
  CU_ASSERT_PTR_EQUAL(got, fs[1]);
  CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_EOF);
  /* Destroying early drops the references: release ours, nothing leaks. */
  cf_as_completed_destroy(it);
  cf_future *f3 = user_future();
  CU_ASSERT_EQUAL(cf_as_completed_create(&f3, 1, 0, &it), CF_OK);
  cf_as_completed_destroy(it);
  cf_future_release(f3);
  release_all(fs, 2);
}

/* With executor futures, and from inside a worker of a 1-thread pool (which
 * must run the awaited tasks itself). */
static cf_executor *g_ex;
static int task_fan_out(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  cf_future *fs[8];
  for (uint64_t i = 0; i < 8; i++)
    if (cf_submit(g_ex, task_square, &i, sizeof i, &fs[i]) != CF_OK)
      return 1;
  size_t nd = 0;
  int rc = cf_wait(fs, 8, CF_FOREVER, CF_ALL_COMPLETED, NULL, &nd);
  cf_as_completed_iter *it;
  uint64_t sum = 0;
  cf_as_completed_create(fs, 8, CF_FOREVER, &it);
  cf_future *f;
  while (cf_as_completed_next(it, &f) == CF_OK) {
    const void *d;
    cf_future_result(f, 0, &d, NULL);
    uint64_t v;
    memcpy(&v, d, sizeof v);
    sum += v;
  }
  cf_as_completed_destroy(it);
  for (int i = 0; i < 8; i++)
    cf_future_release(fs[i]);
  if (rc != CF_OK || nd != 8)
    return 2;
  return cf_task_return(t, &sum, sizeof sum);
}

static void test_wait_in_worker(void) {
  g_ex = make_pool(1);
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(g_ex, task_fan_out, NULL, 0, &f), CF_OK);
  /* sum of i*i+1 for i in 0..7 = 140 + 8 */
  CU_ASSERT_EQUAL(result_u64(f), 148);
  cf_future_release(f);
  cf_executor_release(g_ex);
}

static void test_as_completed_executor(void) {
  cf_executor *ex = make_pool(4);
  enum { N = 200 };
  cf_future *fs[N];
  for (uint64_t i = 0; i < N; i++)
    fs[i] = submit_u64(ex, task_square, i);
  cf_as_completed_iter *it;
  CU_ASSERT_EQUAL_FATAL(cf_as_completed_create(fs, N, CF_SEC(60), &it), CF_OK);
  bool seen[N] = {false};
  cf_future *f;
  size_t count = 0;
  while (cf_as_completed_next(it, &f) == CF_OK) {
    CU_ASSERT_TRUE(cf_future_done(f));
    for (size_t i = 0; i < N; i++)
      if (fs[i] == f) {
        CU_ASSERT_FALSE(seen[i]);
        seen[i] = true;
        CU_ASSERT_EQUAL(result_u64(f), (uint64_t)i * i + 1);
      }
    count++;
  }
  CU_ASSERT_EQUAL(count, N);
  cf_as_completed_destroy(it);
  release_all(fs, N);
  cf_executor_release(ex);
}

CF_TEST_MAIN("wait", CF_TEST(test_wait_first_completed),
             CF_TEST(test_wait_all_completed),
             CF_TEST(test_wait_first_exception), CF_TEST(test_wait_edge_cases),
             CF_TEST(test_wait_woken_by_cancel),
             CF_TEST(test_as_completed_order),
             CF_TEST(test_as_completed_timeout), CF_TEST(test_wait_in_worker),
             CF_TEST(test_as_completed_executor))
