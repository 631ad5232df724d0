/* cf_map(): order, chunks, bounded in-flight work, errors, timeouts. */
#include "test_util.h"

static cf_map_options opts_with(size_t chunk, size_t inflight, bool unord) {
  cf_map_options o;
  cf_map_options_init(&o);
  o.chunksize = chunk;
  o.max_inflight = inflight;
  o.unordered = unord;
  return o;
}

/* Inputs 0, 1, 2, ... up to a limit, counting how many were read. */
typedef struct counter {
  uint64_t limit;
  uint64_t value;
  atomic_size_t reads;
  int fail_at; /* return an input error at this index (-1: never) */
} counter;

static int next_counter(void *arg, size_t index, const void **in, size_t *len) {
  counter *c = arg;
  if (c->fail_at >= 0 && index == (size_t)c->fail_at)
    return CF_ENOTSUP;
  if (index >= c->limit)
    return CF_EOF;
  atomic_fetch_add(&c->reads, 1);
  c->value = index;
  *in = &c->value;
  *len = sizeof c->value;
  return CF_OK;
}

static void check_ordered(cf_map_iter *m, uint64_t n) {
  cf_map_item it = CF_MAP_ITEM_INIT;
  for (uint64_t i = 0; i < n; i++) {
    CU_ASSERT_EQUAL_FATAL(cf_map_next(m, &it), CF_OK);
    CU_ASSERT_EQUAL(it.index, i);
    uint64_t v;
    CU_ASSERT_EQUAL_FATAL(it.len, sizeof v);
    memcpy(&v, it.data, sizeof v);
    CU_ASSERT_EQUAL(v, i * i + 1);
  }
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_EOF);
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_EOF);
}

static void test_map_array_ordered(void) {
  cf_executor *ex = make_pool(3);
  enum { N = 10000 };
  uint64_t *in = malloc(N * sizeof *in);
  for (uint64_t i = 0; i < N; i++)
    in[i] = i;
  size_t chunks[] = {0, 1, 7, 5000, 20000};
  for (size_t k = 0; k < 5; k++) {
    cf_map_options o = opts_with(chunks[k], 0, false);
    cf_map_iter *m;
    CU_ASSERT_EQUAL_FATAL(
        cf_map_array(ex, task_square, in, sizeof *in, N, &o, &m), CF_OK);
    check_ordered(m, N);
    cf_map_destroy(m);
  }
  free(in);
  cf_executor_release(ex);
}

static void test_map_generator(void) {
  cf_executor *ex = make_pool(2);
  counter c = {.limit = 3001, .fail_at = -1};
  cf_map_options o = opts_with(7, 5, false);
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(cf_map(ex, task_square, next_counter, &c, &o, &m),
                        CF_OK);
  check_ordered(m, 3001);
  cf_map_destroy(m);
  /* Empty input. */
  counter none = {.limit = 0, .fail_at = -1};
  CU_ASSERT_EQUAL_FATAL(cf_map(ex, task_square, next_counter, &none, NULL, &m),
                        CF_OK);
  cf_map_item it = CF_MAP_ITEM_INIT;
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_EOF);
  cf_map_destroy(m);
  CU_ASSERT_EQUAL(cf_map_array(ex, task_square, NULL, 8, 0, NULL, &m), CF_OK);
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_EOF);
  cf_map_destroy(m);
  cf_executor_release(ex);
}

static void test_map_unordered(void) {
  cf_executor *ex = make_pool(4);
  enum { N = 5000 };
  counter c = {.limit = N, .fail_at = -1};
  cf_map_options o = opts_with(3, 8, true);
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(cf_map(ex, task_square, next_counter, &c, &o, &m),
                        CF_OK);
  bool *seen = calloc(N, sizeof *seen);
  cf_map_item it = CF_MAP_ITEM_INIT;
  size_t count = 0;
  int rc;
  while ((rc = cf_map_next(m, &it)) == CF_OK) {
    CU_ASSERT_FATAL(it.index < N);
    CU_ASSERT_FALSE(seen[it.index]);
    seen[it.index] = true;
    uint64_t v;
    memcpy(&v, it.data, sizeof v);
    CU_ASSERT_EQUAL(v, (uint64_t)it.index * it.index + 1);
    count++;
  }
  CU_ASSERT_EQUAL(rc, CF_EOF);
  CU_ASSERT_EQUAL(count, N);
  free(seen);
  cf_map_destroy(m);
  cf_executor_release(ex);
}

/* in: uint64 i; fails when i == 1234. */
static int task_fail_1234(cf_task *t, const void *in, size_t len) {
  uint64_t i;
  memcpy(&i, in, sizeof i);
  if (i == 1234)
    return cf_task_fail(t, 1234, "input %llu is bad", (unsigned long long)i);
  return task_square(t, in, len);
}

static void test_map_error_stops(void) {
  cf_executor *ex = make_pool(2);
  for (int unord = 0; unord < 2; unord++) {
    counter c = {.limit = 1000000, .fail_at = -1};
    cf_map_options o = opts_with(10, 4, unord);
    cf_map_iter *m;
    CU_ASSERT_EQUAL_FATAL(cf_map(ex, task_fail_1234, next_counter, &c, &o, &m),
                          CF_OK);
    cf_map_item it = CF_MAP_ITEM_INIT;
    int rc;
    size_t ok = 0;
    while ((rc = cf_map_next(m, &it)) == CF_OK)
      ok++;
    CU_ASSERT_EQUAL(rc, CF_ETASK);
    CU_ASSERT_EQUAL(it.index, 1234);
    CU_ASSERT_EQUAL(it.error_code, 1234);
    CU_ASSERT_STRING_EQUAL(it.error_message, "input 1234 is bad");
    if (!unord)
      CU_ASSERT_EQUAL(ok, 1234); /* everything before it, in order */
    CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_EOF);
    /* Never more read than what was consumed, the chunk being handed out
     * and the window in flight: the rest was never even read. */
    CU_ASSERT_TRUE(atomic_load(&c.reads) <= ok + 1 + 10 + 10 * 4);
    cf_map_destroy(m);
  }
  cf_executor_release(ex);
}

static void test_map_input_error(void) {
  cf_executor *ex = make_pool(2);
  counter c = {.limit = 100, .fail_at = 50};
  cf_map_options o = opts_with(1, 4, false);
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(cf_map(ex, task_square, next_counter, &c, &o, &m),
                        CF_OK);
  cf_map_item it = CF_MAP_ITEM_INIT;
  for (int i = 0; i < 50; i++)
    CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_OK);
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_ENOTSUP);
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_EOF);
  cf_map_destroy(m);
  /* Failing at the very first input fails the call. */
  counter c0 = {.limit = 100, .fail_at = 0};
  CU_ASSERT_EQUAL(cf_map(ex, task_square, next_counter, &c0, &o, &m),
                  CF_ENOTSUP);
  CU_ASSERT_PTR_NULL(m);
  cf_executor_release(ex);
}

/* Ten million inputs: only a bounded number is ever read ahead. */
static void test_map_bounded(void) {
  cf_executor *ex = make_pool(2);
  counter c = {.limit = 10000000, .fail_at = -1};
  cf_map_options o = opts_with(4, 16, false);
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(cf_map(ex, task_square, next_counter, &c, &o, &m),
                        CF_OK);
  CU_ASSERT_TRUE(atomic_load(&c.reads) <= 4 * 16);
  cf_map_item it = CF_MAP_ITEM_INIT;
  for (int i = 0; i < 1000; i++)
    CU_ASSERT_EQUAL_FATAL(cf_map_next(m, &it), CF_OK);
  CU_ASSERT_TRUE(atomic_load(&c.reads) <= 1000 + 4 * 16 + 4);
  cf_map_destroy(m); /* cancels the rest */
  cf_executor_release(ex);
}

/* in: cf_test_gate * (NULL: passes at once); blocks until the gate opens. */
static int task_held(cf_task *t, const void *in, size_t len) {
  cf_test_gate *g;
  if (len != sizeof g)
    return EINVAL;
  memcpy(&g, in, sizeof g);
  return g ? task_gate(t, in, len) : 0;
}

/* A map's deadline ends a wait for a task that cannot finish (it is held by
 * a gate, not slow), not before the deadline; results done before are still
 * handed out, however late the caller asks; the rest is cancelled. */
static void test_map_timeout(void) {
  cf_executor *ex = make_pool(2);
  cf_test_gate g;
  gate_init(&g);
  cf_test_gate *in[6] = {NULL, NULL, &g, &g, &g, &g};
  cf_map_options o = opts_with(1, 0, false);
  o.timeout_ns = CF_MSEC(100);
  /* A library that ignored the deadline would wait for the gate: opened
   * late, the held task then succeeds and the test fails, not hangs. */
  int64_t t0 = cf_test_now_ms();
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_held, in, sizeof in[0], 6, &o, &m), CF_OK);
  cf_test_deadman dm;
  cf_test_deadman_start(&dm, 60000, gate_open_cb, &g);
  /* Both workers held: each took one of the first two inputs (FIFO) and
   * completed it before it took a held one. */
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&g.entered) == 2));
  cf_map_item it = CF_MAP_ITEM_INIT;
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_OK);
  CU_ASSERT_EQUAL(it.index, 0);
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_OK);
  CU_ASSERT_EQUAL(it.index, 1);
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_ETIMEDOUT); /* the held one */
  CU_ASSERT_TRUE(cf_test_now_ms() - t0 >= 99);        /* not before */
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_EOF);
  CU_ASSERT_FALSE(cf_test_deadman_stop(&dm));
  gate_open(&g);
  cf_map_destroy(m); /* waits for the two running tasks only */
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_shutdown(ex, true, false);
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.completed, 4); /* the two quick ones, the two held */
  CU_ASSERT_EQUAL(st.cancelled, 2); /* the two still queued */
  cf_executor_release(ex);
  gate_destroy(&g);
}

/* Destroying a map whose tasks still read the caller's array: destroy waits
 * for them (ASan would flag a read of the freed array otherwise). */
static int task_slow_read(cf_task *t, const void *in, size_t len) {
  cf_test_sleep_ms(2);
  return task_square(t, in, len);
}

static void test_map_destroy_midway(void) {
  cf_executor *ex = make_pool(2);
  uint64_t *in = malloc(400 * sizeof *in);
  for (uint64_t i = 0; i < 400; i++)
    in[i] = i;
  cf_map_options o = opts_with(20, 4, false);
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_slow_read, in, sizeof *in, 400, &o, &m), CF_OK);
  cf_map_item it = CF_MAP_ITEM_INIT;
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_OK);
  cf_map_destroy(m);
  free(in);
  cf_executor_release(ex);
}

static void test_map_after_shutdown(void) {
  cf_executor *ex = make_pool(2);
  cf_shutdown(ex, true, false);
  uint64_t in[3] = {1, 2, 3};
  cf_map_iter *m = (cf_map_iter *)1;
  CU_ASSERT_EQUAL(cf_map_array(ex, task_square, in, 8, 3, NULL, &m),
                  CF_ESHUTDOWN);
  CU_ASSERT_PTR_NULL(m);
  cf_executor_release(ex);
}

/* Shutdown with cancel_futures while a map runs: the map reports it.  The
 * first task is held by a gate until the shutdown is done, so it is running
 * (not queued, not finished) when the others are cancelled. */
static void test_map_sees_cancellation(void) {
  cf_executor *ex = make_pool(1);
  cf_test_gate g;
  gate_init(&g);
  cf_test_gate *in[8] = {&g};
  cf_map_options o = opts_with(1, 8, false);
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_held, in, sizeof in[0], 8, &o, &m), CF_OK);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&g.entered) == 1));
  cf_shutdown(ex, false, true);
  gate_open(&g);
  cf_map_item it = CF_MAP_ITEM_INIT;
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_OK); /* the running one */
  CU_ASSERT_EQUAL(it.index, 0);
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_ECANCELLED);
  CU_ASSERT_EQUAL(it.index, 1);
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_EOF);
  cf_map_destroy(m);
  cf_executor_release(ex);
  gate_destroy(&g);
}

CF_TEST_MAIN("map", CF_TEST(test_map_array_ordered),
             CF_TEST(test_map_generator), CF_TEST(test_map_unordered),
             CF_TEST(test_map_error_stops), CF_TEST(test_map_input_error),
             CF_TEST(test_map_bounded), CF_TEST(test_map_timeout),
             CF_TEST(test_map_destroy_midway), CF_TEST(test_map_after_shutdown),
             CF_TEST(test_map_sees_cancellation))
