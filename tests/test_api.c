/* The API's contract at its edges: every function refuses NULL or invalid
 * arguments with CF_EINVAL instead of crashing; status codes have text.
 * Compiled with -Wpedantic, so the header is checked as strict C11 too. */
#include "test_util.h"

static void test_strerror(void) {
  for (int c = CF_OK; c >= CF_ENOTSUP; c--) {
    const char *s = cf_strerror(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_NOT_EQUAL(s, "unknown error");
    for (int d = c - 1; d >= CF_ENOTSUP; d--)
      CU_ASSERT_STRING_NOT_EQUAL(s, cf_strerror(d));
  }
  CU_ASSERT_STRING_EQUAL(cf_strerror(-999), "unknown error");
  CU_ASSERT_STRING_EQUAL(cf_strerror(5), "unknown error");
  CU_ASSERT_STRING_EQUAL(cf_version(), PACKAGE_VERSION); /* config.h */
}

static void test_null_futures(void) {
  CU_ASSERT_EQUAL(cf_future_create(NULL), CF_EINVAL);
  CU_ASSERT_PTR_NULL(cf_future_retain(NULL));
  cf_future_release(NULL);
  CU_ASSERT_EQUAL(cf_future_cancel(NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_state(NULL), CF_EINVAL);
  CU_ASSERT_FALSE(cf_future_done(NULL));
  CU_ASSERT_FALSE(cf_future_cancelled(NULL));
  CU_ASSERT_FALSE(cf_future_running(NULL));
  CU_ASSERT_EQUAL(cf_future_wait(NULL, 0), CF_EINVAL);
  const void *d = (void *)1;
  size_t n = 1;
  CU_ASSERT_EQUAL(cf_future_result(NULL, 0, &d, &n), CF_EINVAL);
  CU_ASSERT_PTR_NULL(d);
  CU_ASSERT_EQUAL(cf_future_error(NULL, 0, NULL, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_add_done_callback(NULL, NULL, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_set_running_or_notify_cancel(NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_set_result(NULL, NULL, 0), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_set_error(NULL, 1, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_request_stop(NULL), CF_EINVAL);
  CU_ASSERT_FALSE(cf_future_stop_requested(NULL));
  cf_future *o = (cf_future *)1;
  CU_ASSERT_EQUAL(cf_future_then(NULL, NULL, NULL, CF_RUN_INLINE, &o),
                  CF_EINVAL);
  CU_ASSERT_PTR_NULL(o);
  CU_ASSERT_EQUAL(cf_when_all(NULL, 1, 0, &o), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_when_any(NULL, 0, 0, &o), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_when_all(NULL, 0, 0, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_outcome_parse(NULL, 0, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_completion_queue_create(NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_completion_queue_fd(NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_completion_queue_add(NULL, NULL, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_completion_queue_pop(NULL, &o, NULL), CF_EINVAL);
  CU_ASSERT_PTR_NULL(o);
  CU_ASSERT_EQUAL(cf_completion_queue_count(NULL, NULL, NULL), CF_EINVAL);
  cf_completion_queue_destroy(NULL);
  cf_future *f;
  cf_future_create(&f);
  CU_ASSERT_EQUAL(cf_future_add_done_callback(f, NULL, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_set_result(f, NULL, 5), CF_EINVAL);
  cf_completion_queue *q;
  CU_ASSERT_EQUAL_FATAL(cf_completion_queue_create(&q), CF_OK);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, NULL, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, NULL, NULL), CF_EINVAL);
  cf_completion_queue_destroy(q);
  cf_future_release(f);
}

static void test_null_tasks(void) {
  CU_ASSERT_EQUAL(cf_task_return(NULL, "x", 1), CF_EINVAL);
  CU_ASSERT_PTR_NULL(cf_task_return_buffer(NULL, 4));
  CU_ASSERT_EQUAL(cf_task_return_owned(NULL, NULL, 0, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_task_fail(NULL, 5, "x"), 5);
  CU_ASSERT_EQUAL(cf_task_fail(NULL, 0, "x"), -1);
  CU_ASSERT_FALSE(cf_task_stop_requested(NULL));
  CU_ASSERT_EQUAL(cf_submit_timed(NULL, NULL, NULL, 0, 0, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_submit_owned_timed(NULL, NULL, NULL, 0, NULL, 0, NULL),
                  CF_EINVAL);
}

static void test_null_executors(void) {
  CU_ASSERT_EQUAL(cf_thread_pool_options_init(NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_thread_pool_create(NULL, NULL), CF_EINVAL);
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = -1;
  cf_executor *ex = (cf_executor *)1;
  CU_ASSERT_EQUAL(cf_thread_pool_create(&o, &ex), CF_EINVAL);
  CU_ASSERT_PTR_NULL(ex);
  cf_future *f = (cf_future *)1;
  CU_ASSERT_EQUAL(cf_submit(NULL, task_noop, NULL, 0, &f), CF_EINVAL);
  CU_ASSERT_PTR_NULL(f);
  CU_ASSERT_EQUAL(cf_submit_owned(NULL, task_noop, NULL, 0, NULL, NULL),
                  CF_EINVAL);
  CU_ASSERT_EQUAL(cf_shutdown(NULL, true, true), CF_EINVAL);
  CU_ASSERT_PTR_NULL(cf_executor_retain(NULL));
  cf_executor_release(NULL);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  CU_ASSERT_EQUAL(cf_executor_stats_get(NULL, &st), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_executor_max_workers(NULL), CF_EINVAL);

  ex = make_pool(1);
  CU_ASSERT_EQUAL(cf_submit(ex, NULL, NULL, 0, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 3, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_executor_stats_get(ex, NULL), CF_EINVAL);
  /* An executor's future is not user-completable. */
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, &f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_set_result(f, NULL, 0), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_set_error(f, 1, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_set_running_or_notify_cancel(f), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, NULL, NULL), CF_OK);
  cf_future_release(f);
  cf_executor_release(ex);
}

static int gen_none(void *arg, size_t i, const void **in, size_t *len) {
  (void)arg;
  (void)i;
  (void)in;
  (void)len;
  return CF_EOF;
}

static void test_null_waits_and_maps(void) {
  CU_ASSERT_EQUAL(cf_wait(NULL, 2, 0, CF_ALL_COMPLETED, NULL, NULL), CF_EINVAL);
  cf_as_completed_iter *it = (cf_as_completed_iter *)1;
  CU_ASSERT_EQUAL(cf_as_completed_create(NULL, 1, 0, &it), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_as_completed_create(NULL, 0, 0, NULL), CF_EINVAL);
  cf_future *f = NULL;
  CU_ASSERT_EQUAL(cf_as_completed_create(&f, 1, 0, &it), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_as_completed_next(NULL, &f), CF_EINVAL);
  cf_as_completed_destroy(NULL);

  CU_ASSERT_EQUAL(cf_map_options_init(NULL), CF_EINVAL);
  cf_map_iter *m = (cf_map_iter *)1;
  CU_ASSERT_EQUAL(cf_map(NULL, task_noop, gen_none, NULL, NULL, &m), CF_EINVAL);
  CU_ASSERT_PTR_NULL(m);
  cf_executor *ex = make_pool(1);
  CU_ASSERT_EQUAL(cf_map(ex, NULL, gen_none, NULL, NULL, &m), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_map(ex, task_noop, NULL, NULL, NULL, &m), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_map(ex, task_noop, gen_none, NULL, NULL, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_map_array(ex, task_noop, NULL, 8, 3, NULL, &m), CF_EINVAL);
  uint64_t arr[2] = {1, 2};
  CU_ASSERT_EQUAL(cf_map_array(ex, task_noop, arr, 0, 2, NULL, &m), CF_EINVAL);
  cf_map_item item = CF_MAP_ITEM_INIT;
  CU_ASSERT_EQUAL(cf_map_next(NULL, &item), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_map_array(ex, task_noop, arr, 8, 2, NULL, &m), CF_OK);
  CU_ASSERT_EQUAL(cf_map_next(m, NULL), CF_EINVAL);
  cf_map_destroy(m);
  cf_map_destroy(NULL);
  cf_executor_release(ex);
}

/* Three inputs, 8 bytes each. */
static int gen_three(void *arg, size_t i, const void **in, size_t *len) {
  static const uint64_t v[3] = {1, 2, 3};
  (void)arg;
  if (i >= 3)
    return CF_EOF;
  *in = &v[i];
  *len = sizeof v[i];
  return CF_OK;
}

/* Every size argument is checked: out-of-range values are CF_EINVAL, and
 * a huge chunksize costs only the inputs there are (regression: 2^58
 * overflowed the chunk size and crashed). */
static void test_sizes_checked(void) {
  cf_executor *ex = make_pool(2);
  cf_map_options o;
  cf_map_options_init(&o);
  cf_map_iter *m = NULL;
  uint64_t arr[3] = {1, 2, 3};
  for (int k = 0; k < 3; k++) {
    o.chunksize = k == 0 ? (size_t)1 << 58 : k == 1 ? SIZE_MAX : 100000000;
    for (int array = 0; array < 2; array++) {
      int rc = array ? cf_map_array(ex, task_square, arr, 8, 3, &o, &m)
                     : cf_map(ex, task_square, gen_three, NULL, &o, &m);
      CU_ASSERT_EQUAL_FATAL(rc, CF_OK);
      cf_map_item it = CF_MAP_ITEM_INIT;
      uint64_t sum = 0;
      while ((rc = cf_map_next(m, &it)) == CF_OK) {
        uint64_t r;
        memcpy(&r, it.data, sizeof r);
        sum += r;
      }
      CU_ASSERT_EQUAL(rc, CF_EOF);
      CU_ASSERT_EQUAL(sum, 2 + 5 + 10);
      cf_map_destroy(m);
    }
  }
  cf_map_options_init(&o);
  o.max_inflight = CF_MAP_MAX_INFLIGHT + 1;
  m = (cf_map_iter *)1;
  CU_ASSERT_EQUAL(cf_map(ex, task_square, gen_three, NULL, &o, &m), CF_EINVAL);
  CU_ASSERT_PTR_NULL(m);
  o.max_inflight = SIZE_MAX;
  CU_ASSERT_EQUAL(cf_map_array(ex, task_square, arr, 8, 3, &o, &m), CF_EINVAL);
  o.max_inflight = CF_MAP_MAX_INFLIGHT; /* the largest: clamped to 3 chunks */
  CU_ASSERT_EQUAL(cf_map_array(ex, task_square, arr, 8, 3, &o, &m), CF_OK);
  cf_map_destroy(m);
  /* count * size past the address space. */
  CU_ASSERT_EQUAL(cf_map_array(ex, task_square, arr, 8, SIZE_MAX / 4, NULL, &m),
                  CF_EINVAL);
  CU_ASSERT_EQUAL(cf_map_array(ex, task_square, arr, SIZE_MAX, 2, NULL, &m),
                  CF_EINVAL);
  /* A wait over more futures than memory could hold links for. */
  cf_future *f = NULL;
  CU_ASSERT_EQUAL(cf_wait(&f, SIZE_MAX / 8, 0, CF_ALL_COMPLETED, NULL, NULL),
                  CF_EINVAL);
  cf_as_completed_iter *it = (cf_as_completed_iter *)1;
  CU_ASSERT_EQUAL(cf_as_completed_create(&f, SIZE_MAX / 8, 0, &it), CF_EINVAL);
  CU_ASSERT_PTR_NULL(it);
  /* Lengths with the top bit set cannot be real buffers. */
  static char buf[4];
  CU_ASSERT_EQUAL(cf_submit_owned(ex, task_noop, buf, SIZE_MAX, NULL, &f),
                  CF_EINVAL);
  cf_executor_release(ex);
}

/* A refused create says why in words, per thread; a good one clears them. */
static void test_create_words(void) {
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = CF_THREAD_POOL_MAX_WORKERS + 1;
  cf_executor *ex = (cf_executor *)1;
  CU_ASSERT_EQUAL(cf_thread_pool_create(&o, &ex), CF_EINVAL);
  CU_ASSERT_PTR_NULL(ex);
  CU_ASSERT_PTR_NOT_NULL(strstr(cf_last_error_message(), "max_workers"));
  o.max_workers = 1;
  o.initarg_len = 3;
  CU_ASSERT_EQUAL(cf_thread_pool_create(&o, &ex), CF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cf_last_error_message(), "initarg"));
  o.initarg_len = 0;
  CU_ASSERT_EQUAL(cf_thread_pool_create(&o, &ex), CF_OK);
  CU_ASSERT_STRING_EQUAL(cf_last_error_message(), "");
  cf_executor_release(ex);
}

/* Out of memory comes back as CF_ENOMEM and the executor keeps working.
 * (A size no allocator can satisfy stands in for exhausted memory; issue
 * "hardening" injects failures at every allocation.) */
static int task_huge_result(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  return cf_task_return_buffer(t, (size_t)1 << 62) ? 0 : CF_ENOMEM;
}

static void test_out_of_memory_is_clean(void) {
  cf_executor *ex = make_pool(2);
  static const char buf[32];
  cf_future *f = (cf_future *)1;
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, buf, (size_t)1 << 62, &f),
                  CF_ENOMEM);
  CU_ASSERT_PTR_NULL(f);
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_huge_result, NULL, 0, &f), CF_OK);
  int code;
  CU_ASSERT_EQUAL(cf_future_error(f, CF_FOREVER, &code, NULL), CF_ETASK);
  CU_ASSERT_EQUAL(code, CF_ENOMEM);
  cf_future_release(f);
  cf_future *u;
  cf_future_create(&u);
  CU_ASSERT_EQUAL(cf_future_set_result(u, buf, (size_t)1 << 62), CF_ENOMEM);
  CU_ASSERT_FALSE(cf_future_done(u)); /* unchanged */
  CU_ASSERT_EQUAL(cf_future_set_result(u, buf, 4), CF_OK);
  cf_future_release(u);
  /* Still usable. */
  uint64_t v = 6;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_square, &v, sizeof v, &f), CF_OK);
  CU_ASSERT_EQUAL(result_u64(f), 37);
  cf_future_release(f);
  cf_executor_release(ex);
}

/* cf_err_name: every code's name as spelled in the header, from the same
 * list (CF_STATUS_MAP) as the enum and cf_strerror; unknown codes have one
 * name; the version macros agree with configure's version. */
static void test_err_name(void) {
  CU_ASSERT_STRING_EQUAL(cf_err_name(CF_OK), "CF_OK");
  CU_ASSERT_STRING_EQUAL(cf_err_name(CF_EINVAL), "CF_EINVAL");
  CU_ASSERT_STRING_EQUAL(cf_err_name(-1), "CF_EINVAL");
  CU_ASSERT_STRING_EQUAL(cf_err_name(CF_ETIMEDOUT), "CF_ETIMEDOUT");
  CU_ASSERT_STRING_EQUAL(cf_err_name(CF_ENOTSUP), "CF_ENOTSUP");
  CU_ASSERT_STRING_EQUAL(cf_err_name(-999), "CF_UNKNOWN");
  CU_ASSERT_STRING_EQUAL(cf_err_name(5), "CF_UNKNOWN");
  CU_ASSERT_STRING_EQUAL(cf_err_name(INT32_MIN), "CF_UNKNOWN");
  /* The values are part of the ABI: none moved when the list was made. */
  CU_ASSERT_EQUAL(CF_EINVAL, -1);
  CU_ASSERT_EQUAL(CF_ESHUTDOWN, -7);
  CU_ASSERT_EQUAL(CF_ENOTSUP, -15);
  int n = 0, expect = 0;
#define XX(name, value, text)                                                  \
  do {                                                                         \
    CU_ASSERT_EQUAL(name, value);                                              \
    CU_ASSERT_EQUAL(value, expect); /* 0, -1, -2, ...: no gap, no repeat */    \
    CU_ASSERT_STRING_EQUAL(cf_err_name(value), #name);                         \
    CU_ASSERT_STRING_EQUAL(cf_strerror(value), text);                          \
    n++;                                                                       \
    expect--;                                                                  \
  } while (0);
  CF_STATUS_MAP(XX)
#undef XX
  CU_ASSERT_EQUAL(n, 16);
  char v[32];
  snprintf(v, sizeof v, "%d.%d.%d", CF_VERSION_MAJOR, CF_VERSION_MINOR,
           CF_VERSION_PATCH);
  CU_ASSERT_STRING_EQUAL(v, PACKAGE_VERSION);
  CU_ASSERT_STRING_EQUAL(cf_version(), v);
  CU_ASSERT_EQUAL(CF_VERSION_HEX, (CF_VERSION_MAJOR << 16) |
                                      (CF_VERSION_MINOR << 8) |
                                      CF_VERSION_PATCH);
#if CF_VERSION_HEX < 0x000100
  CU_FAIL("CF_VERSION_HEX is usable in #if and at least 0.1.0");
#endif
}

CF_TEST_MAIN("api", CF_TEST(test_strerror), CF_TEST(test_null_futures),
             CF_TEST(test_null_tasks), CF_TEST(test_null_executors),
             CF_TEST(test_null_waits_and_maps), CF_TEST(test_sizes_checked),
             CF_TEST(test_create_words), CF_TEST(test_out_of_memory_is_clean),
             CF_TEST(test_err_name))
