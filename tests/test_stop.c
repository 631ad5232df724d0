/* Cooperative stop requests: cf_future_request_stop(),
 * cf_future_stop_requested(), cf_task_stop_requested(), on the thread pool,
 * the process pool, user futures, map inputs and continuations. */
#include "test_util.h"

/* The hang guard of every loop below: never a pass/fail criterion. */
#define GUARD_MS 60000

/* Polls the stop flag until it is set; honours it.  Reports the number of
 * polls as its result only when it was not asked (the guard fired). */
static int honour(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  int64_t end = cf_test_now_ms() + GUARD_MS;
  while (!cf_task_stop_requested(t)) {
    if (cf_test_now_ms() > end)
      return cf_task_fail(t, 1, "no stop request came");
  }
  /* No CUnit here: this may run in a worker process. */
  if (!cf_task_stop_requested(t))
    return cf_task_fail(t, 2, "the request did not stay");
  return CF_ECANCELLED;
}

/* Sees the request and finishes anyway, with a result. */
static int ignore(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  int64_t end = cf_test_now_ms() + GUARD_MS;
  while (!cf_task_stop_requested(t) && cf_test_now_ms() < end)
    cf_test_sleep_ms(1);
  return cf_task_return(t, "done", 5);
}

static int quick(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  return cf_task_return(t, "ok", 3);
}

static int returns_cancelled(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)in;
  (void)len;
  return CF_ECANCELLED;
}

static _Atomic int g_ran;
static int count_run(cf_task *t, const void *in, size_t len) {
  atomic_fetch_add(&g_ran, 1);
  return quick(t, in, len);
}

static void wait_running(cf_future *f) {
  int64_t end = cf_test_now_ms() + GUARD_MS;
  while (cf_future_state(f) == CF_PENDING && cf_test_now_ms() < end)
    cf_test_sleep_ms(1);
  CU_ASSERT_EQUAL(cf_future_state(f), CF_RUNNING);
}

static void test_stop_bad_args(void) {
  CU_ASSERT_EQUAL(cf_future_request_stop(NULL), CF_EINVAL);
  CU_ASSERT_FALSE(cf_future_stop_requested(NULL));
  CU_ASSERT_FALSE(cf_task_stop_requested(NULL));
}

/* Honoured, ignored, pending, done: on one executor. */
static void stop_cases(cf_executor *ex) {
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, honour, NULL, 0, &f), CF_OK);
  wait_running(f);
  CU_ASSERT_FALSE(cf_future_stop_requested(f));
  CU_ASSERT_EQUAL(cf_future_request_stop(f), CF_OK);
  CU_ASSERT_TRUE(cf_future_stop_requested(f));
  CU_ASSERT_EQUAL(cf_future_request_stop(f), CF_OK); /* twice is fine */
  CU_ASSERT_EQUAL(cf_future_wait(f, CF_FOREVER), CF_OK);
  CU_ASSERT_EQUAL(cf_future_state(f), CF_CANCELLED);
  CU_ASSERT_TRUE(cf_future_cancelled(f));
  CU_ASSERT_EQUAL(cf_future_result(f, 0, NULL, NULL), CF_ECANCELLED);
  CU_ASSERT_EQUAL(cf_future_request_stop(f), CF_OK); /* cancelled: ok */
  cf_future_release(f);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  CU_ASSERT_EQUAL(cf_executor_stats_get(ex, &st), CF_OK);
  CU_ASSERT_EQUAL(st.cancelled, 1); /* honoured: cancelled, not failed */
  CU_ASSERT_EQUAL(st.failed, 0);

  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, ignore, NULL, 0, &f), CF_OK);
  wait_running(f);
  CU_ASSERT_EQUAL(cf_future_request_stop(f), CF_OK);
  const void *d = NULL;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, NULL), CF_OK);
  CU_ASSERT_STRING_EQUAL(d ? (const char *)d : "", "done");
  CU_ASSERT_EQUAL(cf_future_request_stop(f), CF_ESTATE); /* finished */
  CU_ASSERT_TRUE(cf_future_stop_requested(f));
  cf_future_release(f);

  /* Without a request, CF_ECANCELLED is a task's failure code as any. */
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, returns_cancelled, NULL, 0, &f), CF_OK);
  int code = 0;
  CU_ASSERT_EQUAL(cf_future_error(f, CF_FOREVER, &code, NULL), CF_ETASK);
  CU_ASSERT_EQUAL(code, CF_ECANCELLED);
  cf_future_release(f);
}

static void test_stop_threads(void) {
  cf_executor *ex = make_pool(2);
  stop_cases(ex);
  cf_executor_release(ex);
}

static void test_stop_processes(void) {
  cf_executor *ex = cf_test_processes(1);
  stop_cases(ex);
  /* The worker went on serving: a STOP that came after its task ended (a
   * task that never looks) is ignored, and the next task runs. */
  cf_future *f;
  for (int i = 0; i < 20; i++) {
    CU_ASSERT_EQUAL_FATAL(cf_submit(ex, quick, NULL, 0, &f), CF_OK);
    cf_future_request_stop(f);
    cf_future_wait(f, CF_FOREVER);
    CU_ASSERT(cf_future_state(f) == CF_FINISHED ||
              cf_future_state(f) == CF_CANCELLED);
    if (cf_future_state(f) == CF_FINISHED)
      CU_ASSERT_EQUAL(cf_future_result(f, 0, NULL, NULL), CF_OK);
    cf_future_release(f);
  }
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, quick, NULL, 0, &f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, NULL, NULL), CF_OK);
  cf_future_release(f);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  CU_ASSERT_EQUAL(cf_executor_stats_get(ex, &st), CF_OK);
  CU_ASSERT_EQUAL(st.workers, 1);
  cf_executor_release(ex);
}

static void test_stop_pending_cancels(void) {
  cf_executor *ex = make_pool(1);
  cf_future *gate, *queued;
  atomic_store(&g_ran, 0);
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, honour, NULL, 0, &gate), CF_OK);
  wait_running(gate);
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, count_run, NULL, 0, &queued), CF_OK);
  CU_ASSERT_EQUAL(cf_future_request_stop(queued), CF_OK);
  CU_ASSERT_TRUE(cf_future_cancelled(queued));
  cf_future_request_stop(gate);
  cf_shutdown(ex, true, false);
  CU_ASSERT_EQUAL(atomic_load(&g_ran), 0);
  cf_future_release(gate);
  cf_future_release(queued);
  cf_executor_release(ex);
}

static void test_stop_user_future(void) {
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_set_running_or_notify_cancel(f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_request_stop(f), CF_OK);
  CU_ASSERT_TRUE(cf_future_stop_requested(f));
  CU_ASSERT_EQUAL(cf_future_state(f), CF_RUNNING); /* the completer decides */
  CU_ASSERT_EQUAL(cf_future_set_result(f, "x", 1), CF_OK);
  CU_ASSERT_EQUAL(cf_future_request_stop(f), CF_ESTATE);
  cf_future_release(f);
  /* Pending: cancelled at once. */
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_request_stop(f), CF_OK);
  CU_ASSERT_TRUE(cf_future_cancelled(f));
  cf_future_release(f);
}

/* A map input that only ends when asked: cf_map_destroy() asks.  It
 * first creates the file its input names, so the test knows it runs (in
 * a worker process, memory is not shared). */
typedef struct marker {
  char path[112];
} marker;

static int long_input(cf_task *t, const void *in, size_t len) {
  if (len != sizeof(marker))
    return 3;
  const marker *m = in;
  int fd = open(m->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0)
    close(fd);
  int64_t end = cf_test_now_ms() + GUARD_MS;
  while (!cf_task_stop_requested(t) && cf_test_now_ms() < end)
    cf_test_sleep_ms(1);
  return cf_test_now_ms() < end ? cf_task_return(t, "stopped", 8) : 1;
}

static void map_destroy_stops(cf_executor *ex) {
  char dir[] = "/tmp/cf-test-stop-XXXXXX";
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
  marker in[4];
  memset(in, 0, sizeof in); /* every byte travels to the worker */
  for (int i = 0; i < 4; i++)
    snprintf(in[i].path, sizeof in[i].path, "%s/%d", dir, i);
  cf_map_options o = CF_MAP_OPTIONS_INIT;
  o.chunksize = 4; /* one chunk: the first input runs, three wait */
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, long_input, in, sizeof in[0], 4, &o, &m), CF_OK);
  int64_t end = cf_test_now_ms() + GUARD_MS;
  while (access(in[0].path, F_OK) != 0 && cf_test_now_ms() < end)
    cf_test_sleep_ms(1);
  CU_ASSERT_EQUAL(access(in[0].path, F_OK), 0);
  int64_t t0 = cf_test_now_ms();
  cf_map_destroy(m); /* returns once the running input has stopped */
  /* Without the request the input would run out its guard. */
  CU_ASSERT(cf_test_now_ms() - t0 < GUARD_MS - 10000);
  for (int i = 1; i < 4; i++) /* the inputs after it never started */
    CU_ASSERT_NOT_EQUAL(access(in[i].path, F_OK), 0);
  for (int i = 0; i < 4; i++)
    unlink(in[i].path);
  rmdir(dir);
}

static void test_stop_map_threads(void) {
  cf_executor *ex = make_pool(2);
  map_destroy_stops(ex);
  cf_executor_release(ex);
}

static void test_stop_map_processes(void) {
  cf_executor *ex = cf_test_processes(1);
  map_destroy_stops(ex);
  /* The worker serves on. */
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, quick, NULL, 0, &f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, NULL, NULL), CF_OK);
  cf_future_release(f);
  cf_executor_release(ex);
}

/* A continuation running on an executor can be stopped like a task. */
static void test_stop_continuation(void) {
  cf_executor *ex = make_pool(1);
  cf_future *src, *d;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&src), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(src, ex, honour, 0, &d), CF_OK);
  CU_ASSERT_EQUAL(cf_future_set_result(src, NULL, 0), CF_OK);
  wait_running(d);
  CU_ASSERT_EQUAL(cf_future_request_stop(d), CF_OK);
  CU_ASSERT_EQUAL(cf_future_wait(d, CF_FOREVER), CF_OK);
  CU_ASSERT_TRUE(cf_future_cancelled(d));
  cf_future_release(d);
  cf_future_release(src);
  cf_executor_release(ex);
}

/* Requests racing with the task's end, many times: every future ends
 * either finished or cancelled, never stuck, and the pool goes on. */
static int short_poll(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  for (int i = 0; i < 200; i++)
    if (cf_task_stop_requested(t))
      return CF_ECANCELLED;
  return cf_task_return(t, "ran", 4);
}

static void race(cf_executor *ex, size_t n) {
  for (size_t i = 0; i < n; i++) {
    cf_future *f;
    CU_ASSERT_EQUAL_FATAL(cf_submit(ex, short_poll, NULL, 0, &f), CF_OK);
    if (i % 3)
      cf_test_sleep_ms(0);
    cf_future_request_stop(f);
    CU_ASSERT_EQUAL(cf_future_wait(f, CF_FOREVER), CF_OK);
    int st = cf_future_state(f);
    CU_ASSERT(st == CF_FINISHED || st == CF_CANCELLED);
    if (st == CF_FINISHED)
      CU_ASSERT_EQUAL(cf_future_result(f, 0, NULL, NULL), CF_OK);
    cf_future_release(f);
  }
}

static void test_stop_race(void) {
  cf_executor *ex = make_pool(2);
  race(ex, cf_test_scaled(2000));
  cf_executor_release(ex);
  ex = cf_test_processes(2);
  race(ex, cf_test_scaled(300));
  cf_executor_release(ex);
}

CF_TEST_MAIN("stop", CF_TEST(test_stop_bad_args), CF_TEST(test_stop_threads),
             CF_TEST(test_stop_processes), CF_TEST(test_stop_pending_cancels),
             CF_TEST(test_stop_user_future), CF_TEST(test_stop_map_threads),
             CF_TEST(test_stop_map_processes), CF_TEST(test_stop_continuation),
             CF_TEST(test_stop_race))
