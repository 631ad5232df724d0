/* The thread-pool backend: results, ownership, workers, initializer,
 * shutdown, waiting inside tasks, statistics. */
#include "test_util.h"

#include <sched.h>

#include <dirent.h>

static void test_submit_results(void) {
  cf_executor *ex = make_pool(3);
  enum { N = 1000 };
  cf_future *fs[N];
  for (uint64_t i = 0; i < N; i++)
    fs[i] = submit_u64(ex, task_square, i);
  for (uint64_t i = 0; i < N; i++) {
    CU_ASSERT_EQUAL(result_u64(fs[i]), i * i + 1);
    cf_future_release(fs[i]);
  }
  cf_executor_release(ex);
}

static void test_task_error(void) {
  cf_executor *ex = make_pool(2);
  int code = 77;
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_fail, &code, sizeof code, &f),
                        CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, NULL, NULL), CF_ETASK);
  int got;
  const char *msg;
  CU_ASSERT_EQUAL(cf_future_error(f, 0, &got, &msg), CF_ETASK);
  CU_ASSERT_EQUAL(got, 77);
  CU_ASSERT_STRING_EQUAL(msg, "failed with 77");
  CU_ASSERT_EQUAL(cf_future_state(f), CF_FINISHED);
  cf_future_release(f);
  cf_executor_release(ex);
}

/* ---- ownership of inputs and results ------------------------------------- */

static atomic_int g_freed;
static void count_free(void *p) {
  atomic_fetch_add(&g_freed, 1);
  free(p);
}

static int task_big_result(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  unsigned char *b = cf_task_return_buffer(t, 1 << 20);
  if (!b)
    return ENOMEM;
  for (size_t i = 0; i < (1u << 20); i++)
    b[i] = (unsigned char)(i * 7);
  return 0;
}

static int task_owned_result(cf_task *t, const void *in, size_t len) {
  char *p = malloc(len + 1);
  memcpy(p, in, len);
  p[len] = '!';
  return cf_task_return_owned(t, p, len + 1, count_free);
}

/* Returns the address it was given, for identity checks. */
static int task_input_address(cf_task *t, const void *in, size_t len) {
  (void)len;
  return cf_task_return(t, &in, sizeof in);
}

/* A small owned result: the future's data must be this very pointer, and
 * it must not be freed before the future is. */
static void *g_small_result;
static int task_small_owned(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  char *p = malloc(4);
  memcpy(p, "xyz", 4);
  g_small_result = p;
  return cf_task_return_owned(t, p, 4, count_free);
}

/* A task can set a result and then fail: the result is discarded. */
static int task_result_then_fail(cf_task *t, const void *in, size_t len) {
  char *p = malloc(64);
  memset(p, 1, 64);
  cf_task_return_owned(t, p, 64, count_free);
  return task_fail(t, in, len);
}

static void test_result_ownership(void) {
  cf_executor *ex = make_pool(2);
  atomic_store(&g_freed, 0);
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_big_result, NULL, 0, &f), CF_OK);
  const unsigned char *d;
  size_t n;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, (const void **)&d, &n),
                  CF_OK);
  CU_ASSERT_EQUAL_FATAL(n, 1u << 20);
  bool same = true;
  for (size_t i = 0; i < n; i++)
    same &= d[i] == (unsigned char)(i * 7);
  CU_ASSERT_TRUE(same);
  cf_future_release(f);

  char text[40] = "an input longer than sixteen bytes";
  CU_ASSERT_EQUAL_FATAL(
      cf_submit(ex, task_owned_result, text, strlen(text), &f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, (const void **)&d, &n),
                  CF_OK);
  CU_ASSERT_EQUAL(n, strlen(text) + 1);
  CU_ASSERT_EQUAL(memcmp(d, text, strlen(text)), 0);
  CU_ASSERT_EQUAL(d[n - 1], '!');
  CU_ASSERT_EQUAL(atomic_load(&g_freed), 0); /* owned by the future */
  cf_future_release(f);
  /* Freed with the last reference: ours, or the worker's, which it drops
   * just after completing the future. */
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&g_freed) == 1));

  /* Regression: results of 16 bytes or less were copied and freed at
   * once, so the future's data was not the task's pointer. */
  atomic_store(&g_freed, 0);
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_small_owned, NULL, 0, &f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, (const void **)&d, &n),
                  CF_OK);
  CU_ASSERT_EQUAL(n, 4);
  CU_ASSERT_PTR_EQUAL(d, g_small_result);
  CU_ASSERT_STRING_EQUAL(d, "xyz");
  CU_ASSERT_EQUAL(atomic_load(&g_freed), 0);
  cf_future_release(f);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&g_freed) == 1));
  atomic_store(&g_freed, 1);

  int code = 3;
  CU_ASSERT_EQUAL_FATAL(
      cf_submit(ex, task_result_then_fail, &code, sizeof code, &f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, NULL, NULL), CF_ETASK);
  CU_ASSERT_EQUAL(atomic_load(&g_freed), 2); /* discarded at once */
  cf_future_release(f);
  cf_executor_release(ex);
}

static void test_input_ownership(void) {
  cf_executor *ex = make_pool(1);
  atomic_store(&g_freed, 0);
  cf_test_gate gate;
  gate_init(&gate);
  cf_future *blocker = submit_ptr(ex, task_gate, &gate);

  /* Handed over: freed after the task ran. */
  char *in = strdup("a large-ish input handed over to the pool");
  cf_future *ran;
  CU_ASSERT_EQUAL_FATAL(cf_submit_owned(ex, task_echo, in, strlen(in) + 1,
                                        count_free, &ran),
                        CF_OK);
  /* Handed over, never runs (cancelled): freed when the pool drops it. */
  char *in2 = strdup("another input that will never be used at all");
  cf_future *never;
  CU_ASSERT_EQUAL_FATAL(cf_submit_owned(ex, task_echo, in2, strlen(in2) + 1,
                                        count_free, &never),
                        CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancel(never), CF_OK);
  /* Small inputs too are kept as given (regression: they were copied and
   * freed at once, before the task had run). */
  char *small = strdup("tiny");
  cf_future *tiny;
  CU_ASSERT_EQUAL_FATAL(
      cf_submit_owned(ex, task_echo, small, 5, count_free, &tiny), CF_OK);
  CU_ASSERT_EQUAL(atomic_load(&g_freed), 0); /* nothing has run yet */

  gate_open(&gate);
  const void *d;
  size_t n;
  CU_ASSERT_EQUAL(cf_future_result(ran, CF_FOREVER, &d, &n), CF_OK);
  CU_ASSERT_STRING_EQUAL(d, "a large-ish input handed over to the pool");
  CU_ASSERT_EQUAL(cf_future_result(tiny, CF_FOREVER, &d, &n), CF_OK);
  CU_ASSERT_STRING_EQUAL(d, "tiny");
  cf_future_release(blocker);
  cf_future_release(ran);
  cf_future_release(tiny);
  cf_future_release(never);
  cf_executor_release(ex); /* joins: the cancelled one was dropped */
  CU_ASSERT_EQUAL(atomic_load(&g_freed), 3);
  /* A small owned input reaches the task as the caller's very pointer. */
  ex = make_pool(1);
  char *mine4 = strdup("abc");
  CU_ASSERT_EQUAL_FATAL(cf_submit_owned(ex, task_input_address, mine4, 4,
                                        count_free, &tiny),
                        CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(tiny, CF_FOREVER, &d, &n), CF_OK);
  CU_ASSERT_EQUAL_FATAL(n, sizeof(void *));
  void *seen;
  memcpy(&seen, d, sizeof seen);
  CU_ASSERT_PTR_EQUAL(seen, mine4);
  cf_future_release(tiny);
  cf_executor_release(ex);
  CU_ASSERT_EQUAL(atomic_load(&g_freed), 4);
  /* Failed submit: the caller keeps ownership. */
  cf_executor *ex2 = make_pool(1);
  cf_shutdown(ex2, true, false);
  char *mine = strdup("still mine after a failed submit, so I free it");
  CU_ASSERT_EQUAL(cf_submit_owned(ex2, task_echo, mine, strlen(mine),
                                  count_free, NULL),
                  CF_ESHUTDOWN);
  CU_ASSERT_EQUAL(atomic_load(&g_freed), 4);
  free(mine);
  cf_executor_release(ex2);
  gate_destroy(&gate);
}

/* ---- workers ------------------------------------------------------------- */

static int task_thread_name(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  char name[16] = "";
  pthread_getname_np(pthread_self(), name, sizeof name);
  return cf_task_return(t, name, strlen(name) + 1);
}

/* A pool of `workers` threads named "<prefix>-N". */
static cf_executor *make_named_pool(int workers, const char *prefix) {
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = workers;
  o.thread_name_prefix = prefix;
  cf_executor *ex = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_thread_pool_create(&o, &ex), CF_OK);
  return ex;
}

static void test_thread_names(void) {
  cf_executor *ex = make_named_pool(2, "copier");
  cf_future *f;
  cf_submit(ex, task_thread_name, NULL, 0, &f);
  const void *d;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, NULL), CF_OK);
  CU_ASSERT_EQUAL(strncmp(d, "copier-", 7), 0);
  /* Visible to tools too, in /proc/self/task/<tid>/comm. */
  CU_ASSERT_TRUE(cf_test_count_threads_named("copier-") >= 1);
  cf_future_release(f);
  cf_executor_release(ex);
}

static void test_max_workers_and_stats(void) {
  cf_executor *dflt = make_pool(0);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  CU_ASSERT_EQUAL(cf_executor_max_workers(dflt),
                  cpus + 4 > 32 ? 32 : (int)cpus + 4);
  cf_executor_release(dflt);

  cf_executor *ex = make_pool(2);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  CU_ASSERT_EQUAL(cf_executor_stats_get(ex, &st), CF_OK);
  CU_ASSERT_EQUAL(st.workers, 0); /* lazily started */
  cf_test_gate gate;
  gate_init(&gate);
  cf_future *fs[8];
  for (int i = 0; i < 8; i++)
    fs[i] = submit_ptr(ex, task_gate, &gate);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&gate.entered) == 2));
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.workers, 2);
  CU_ASSERT_EQUAL(st.running, 2);
  CU_ASSERT_EQUAL(st.queued, 6);
  CU_ASSERT_EQUAL(st.idle_workers, 0);
  CU_ASSERT_EQUAL(cf_future_cancel(fs[7]), CF_OK);
  gate_open(&gate);
  for (int i = 0; i < 7; i++)
    CU_ASSERT_EQUAL(cf_future_wait(fs[i], CF_FOREVER), CF_OK);
  int code = 1;
  cf_future *bad;
  cf_submit(ex, task_fail, &code, sizeof code, &bad);
  cf_future_wait(bad, CF_FOREVER);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(cf_executor_stats_get(ex, &st) == CF_OK &&
                                    st.completed == 7 && st.failed == 1 &&
                                    st.cancelled == 1 && st.running == 0));
  CU_ASSERT_EQUAL(st.workers, 2);
  CU_ASSERT_EQUAL(st.queued, 0);
  for (int i = 0; i < 8; i++)
    cf_future_release(fs[i]);
  cf_future_release(bad);
  cf_executor_release(ex);
  gate_destroy(&gate);
}

static void test_workers_reused(void) {
  cf_executor *ex = make_pool(4);
  for (uint64_t i = 0; i < 50; i++) {
    cf_future *f = submit_u64(ex, task_square, i);
    CU_ASSERT_EQUAL(result_u64(f), i * i + 1);
    cf_future_release(f);
  }
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  /* One at a time: the idle worker takes each task, no new thread. */
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(cf_executor_stats_get(ex, &st) == CF_OK &&
                                    st.idle_workers == st.workers));
  CU_ASSERT_EQUAL(st.workers, 1);
  cf_executor_release(ex);
}

/* Regression: a worker inside a long task is not "about to be idle", so a
 * second submit must start a second thread rather than queue behind it. */
static void test_busy_worker_not_counted_idle(void) {
  cf_executor *ex = make_pool(2);
  cf_test_gate gate;
  gate_init(&gate);
  cf_future *a = submit_ptr(ex, task_gate, &gate);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&gate.entered) == 1));
  cf_future *b = submit_ptr(ex, task_gate, &gate);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&gate.entered) == 2));
  gate_open(&gate);
  cf_future_release(a);
  cf_future_release(b);
  cf_executor_release(ex);
  gate_destroy(&gate);
}

static void test_idle_timeout(void) {
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = 2;
  o.idle_timeout_ns = CF_MSEC(20);
  cf_executor *ex;
  CU_ASSERT_EQUAL_FATAL(cf_thread_pool_create(&o, &ex), CF_OK);
  for (int round = 0; round < 2; round++) {
    cf_future *f = submit_u64(ex, task_square, 3);
    CU_ASSERT_EQUAL(result_u64(f), 10);
    cf_future_release(f);
    cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
    CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(cf_executor_stats_get(ex, &st) == CF_OK &&
                                      st.workers == 0));
  }
  cf_executor_release(ex);
}

/* ---- initializer --------------------------------------------------------- */

static atomic_int g_inits;
static int init_count(const void *arg, size_t len) {
  CU_ASSERT_EQUAL(len, 4);
  CU_ASSERT_EQUAL(memcmp(arg, "seed", 4), 0);
  atomic_fetch_add(&g_inits, 1);
  return 0;
}

static void test_initializer(void) {
  atomic_store(&g_inits, 0);
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = 3;
  o.initializer = init_count;
  o.initarg = "seed";
  o.initarg_len = 4;
  cf_executor *ex;
  CU_ASSERT_EQUAL_FATAL(cf_thread_pool_create(&o, &ex), CF_OK);
  cf_test_gate gate;
  gate_init(&gate);
  cf_future *fs[3];
  for (int i = 0; i < 3; i++)
    fs[i] = submit_ptr(ex, task_gate, &gate);
  bool all_in = CF_TEST_EVENTUALLY(atomic_load(&gate.entered) == 3);
  CU_ASSERT_TRUE(all_in);
  if (!all_in) {
    cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
    cf_executor_stats_get(ex, &st);
    fprintf(stderr, "entered %d inits %d: workers %zu idle %zu queued %zu\n",
            atomic_load(&gate.entered), atomic_load(&g_inits), st.workers,
            st.idle_workers, st.queued);
  }
  gate_open(&gate);
  for (int i = 0; i < 3; i++)
    cf_future_release(fs[i]);
  cf_executor_release(ex);
  CU_ASSERT_EQUAL(atomic_load(&g_inits), 3); /* once per worker */
  gate_destroy(&gate);
}

/* Fails once its gate (initarg) opens: the submit below then lands before
 * the pool breaks, whatever the scheduler does (without the gate, a loaded
 * machine could fail the initializer first, and the submit itself got
 * CF_EBROKEN). */
static int init_fail_gated(const void *arg, size_t len) {
  cf_test_gate *g;
  if (len != sizeof g)
    return EINVAL;
  memcpy(&g, arg, sizeof g);
  pthread_mutex_lock(&g->mu);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
  return 13;
}

static void test_initializer_failure_breaks_pool(void) {
  cf_test_gate gate;
  gate_init(&gate);
  cf_test_gate *gp = &gate;
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = 1;
  o.initializer = init_fail_gated;
  o.initarg = &gp;
  o.initarg_len = sizeof gp;
  cf_executor *ex;
  CU_ASSERT_EQUAL_FATAL(cf_thread_pool_create(&o, &ex), CF_OK);
  cf_future *f = submit_u64(ex, task_square, 2);
  gate_open(&gate);
  int code;
  const char *msg;
  CU_ASSERT_EQUAL(cf_future_error(f, CF_FOREVER, &code, &msg), CF_EBROKEN);
  CU_ASSERT_EQUAL(code, 13);
  CU_ASSERT_PTR_NOT_NULL(msg);
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, NULL), CF_EBROKEN);
  cf_future_release(f);
  cf_executor_release(ex);
  gate_destroy(&gate);
}

/* ---- shutdown ------------------------------------------------------------ */

static void test_shutdown(void) {
  cf_executor *ex = make_pool(2);
  cf_future *fs[20];
  long ms = 2;
  for (int i = 0; i < 20; i++)
    cf_submit(ex, task_sleep, &ms, sizeof ms, &fs[i]);
  CU_ASSERT_EQUAL(cf_shutdown(ex, true, false), CF_OK);
  for (int i = 0; i < 20; i++) { /* wait = true: all ran */
    CU_ASSERT_EQUAL(cf_future_state(fs[i]), CF_FINISHED);
    cf_future_release(fs[i]);
  }
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, NULL), CF_ESHUTDOWN);
  CU_ASSERT_EQUAL(cf_shutdown(ex, true, false), CF_OK); /* idempotent */
  CU_ASSERT_EQUAL(cf_shutdown(ex, false, true), CF_OK);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.workers, 0);
  cf_executor_release(ex);
}

static atomic_int g_cancel_cbs;
static void cb_cancelled(cf_future *f, void *arg) {
  (void)arg;
  if (cf_future_cancelled(f))
    atomic_fetch_add(&g_cancel_cbs, 1);
}

static void test_shutdown_cancel_futures(void) {
  atomic_store(&g_cancel_cbs, 0);
  cf_executor *ex = make_pool(1);
  cf_test_gate gate;
  gate_init(&gate);
  cf_future *running = submit_ptr(ex, task_gate, &gate);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&gate.entered) == 1));
  cf_future *fs[10];
  for (int i = 0; i < 10; i++) {
    fs[i] = submit_u64(ex, task_square, 1);
    cf_future_add_done_callback(fs[i], cb_cancelled, NULL);
  }
  CU_ASSERT_EQUAL(cf_shutdown(ex, false, true), CF_OK);
  /* Cancelled on this thread, before shutdown returned. */
  CU_ASSERT_EQUAL(atomic_load(&g_cancel_cbs), 10);
  for (int i = 0; i < 10; i++)
    CU_ASSERT_EQUAL(cf_future_result(fs[i], 0, NULL, NULL), CF_ECANCELLED);
  CU_ASSERT_TRUE(cf_future_running(running)); /* a running task goes on */
  gate_open(&gate);
  CU_ASSERT_EQUAL(cf_future_result(running, CF_FOREVER, NULL, NULL), CF_OK);
  for (int i = 0; i < 10; i++)
    cf_future_release(fs[i]);
  cf_future_release(running);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_shutdown(ex, true, false);
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.cancelled, 10);
  cf_executor_release(ex);
  gate_destroy(&gate);
}

/* Releasing the executor with work queued still runs it (wait = true). */
static atomic_int g_ran;
static int task_count(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)in;
  (void)len;
  cf_test_sleep_ms(1);
  atomic_fetch_add(&g_ran, 1);
  return 0;
}

static void test_release_runs_queued(void) {
  atomic_store(&g_ran, 0);
  cf_executor *ex = make_pool(2);
  for (int i = 0; i < 30; i++) /* fire and forget */
    CU_ASSERT_EQUAL(cf_submit(ex, task_count, NULL, 0, NULL), CF_OK);
  cf_executor_release(ex);
  CU_ASSERT_EQUAL(atomic_load(&g_ran), 30);
}

/* Releasing a pending future does not cancel it: the task still runs. */
static void test_release_pending_does_not_cancel(void) {
  atomic_store(&g_ran, 0);
  cf_executor *ex = make_pool(1);
  cf_test_gate gate;
  gate_init(&gate);
  cf_future *blocker = submit_ptr(ex, task_gate, &gate);
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_count, NULL, 0, &f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_state(f), CF_PENDING);
  cf_future_release(f); /* our only reference, while it is queued */
  gate_open(&gate);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&g_ran) == 1));
  cf_future_release(blocker);
  cf_executor_release(ex);
  gate_destroy(&gate);
}

/* Destroying the executor joins every thread it started.  Its threads are
 * counted by name: the process's thread count also moves with threads of
 * earlier tests that are still leaving (a CI run failed on that). */
static void test_destroy_joins_threads(void) {
  cf_executor *ex = make_named_pool(4, "joiner");
  cf_test_gate gate;
  gate_init(&gate);
  cf_future *fs[4];
  for (int i = 0; i < 4; i++)
    fs[i] = submit_ptr(ex, task_gate, &gate);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&gate.entered) == 4));
  CU_ASSERT_EQUAL(cf_test_count_threads_named("joiner-"), 4);
  gate_open(&gate);
  for (int i = 0; i < 4; i++)
    cf_future_release(fs[i]);
  cf_executor_release(ex);
  /* joined, not just detached: gone by the time release returns */
  CU_ASSERT_EQUAL(cf_test_count_threads_named("joiner-"), 0);
  gate_destroy(&gate);
}

/* ---- tasks using their own pool ------------------------------------------ */

static cf_executor *g_ex;

/* Submits a square task to its own pool and waits for it. */
static int task_nested(cf_task *t, const void *in, size_t len) {
  cf_future *f;
  int rc = cf_submit(g_ex, task_square, in, len, &f);
  if (rc != CF_OK)
    return rc;
  const void *d;
  size_t n;
  rc = cf_future_result(f, CF_FOREVER, &d, &n);
  if (rc == CF_OK)
    rc = cf_task_return(t, d, n);
  cf_future_release(f);
  return rc;
}

/* One worker, a task waiting for a task it submitted: unless the awaited
 * task, still queued, runs inline on the waiting worker, the only worker
 * would wait for itself forever. */
static void test_wait_runs_queued_awaited_inline(void) {
  g_ex = make_pool(1);
  cf_future *fs[20];
  for (uint64_t i = 0; i < 20; i++)
    fs[i] = submit_u64(g_ex, task_nested, i);
  for (uint64_t i = 0; i < 20; i++) {
    CU_ASSERT_EQUAL(result_u64(fs[i]), i * i + 1);
    cf_future_release(fs[i]);
  }
  cf_executor_release(g_ex);
}

/* The only worker blocks on a future nobody in the pool completes, then
 * another thread submits: the blocked worker does not count against
 * max_workers, so the pool starts another one for the submit
 * (compensation). */
static int task_wait_user_future(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)len;
  cf_future *target;
  memcpy(&target, in, sizeof target);
  return cf_future_wait(target, CF_FOREVER);
}

static int task_late(cf_task *t, const void *in, size_t len) {
  return cf_task_return(t, in, len);
}

static void test_blocked_worker_compensated(void) {
  g_ex = make_pool(1);
  cf_future *gatef;
  cf_future_create(&gatef);
  cf_future *waiter = submit_ptr(g_ex, task_wait_user_future, gatef);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(cf_executor_stats_get(g_ex, &st) == CF_OK &&
                                    st.running == 1));
  cf_test_sleep_ms(20); /* the worker is now blocked in its wait */
  cf_future *late = submit_u64(g_ex, task_late, 99);
  CU_ASSERT_EQUAL(result_u64(late), 99); /* ran on a compensating worker */
  cf_future_set_result(gatef, NULL, 0);
  CU_ASSERT_EQUAL(cf_future_result(waiter, CF_FOREVER, NULL, NULL), CF_OK);
  cf_future_release(late);
  cf_future_release(waiter);
  cf_future_release(gatef);
  cf_executor_release(g_ex);
}

/* Timed waits inside tasks time out like any other, and the workers go
 * on.  Two tasks wait on one future: the first to start
 * times out first, while the other's link still sits in front of its own. */
typedef struct timed_wait {
  cf_future *target;
  int64_t ms;
} timed_wait;

static int task_timed_wait(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)len;
  timed_wait w;
  memcpy(&w, in, sizeof w);
  int64_t t0 = cf_test_now_ms();
  int rc = cf_future_wait(w.target, CF_MSEC(w.ms));
  return rc == CF_ETIMEDOUT && cf_test_now_ms() - t0 >= w.ms - 1 ? 0 : 1;
}

static void test_wait_in_task_times_out(void) {
  cf_executor *ex = make_pool(2);
  cf_future *never, *fs[2];
  cf_future_create(&never);
  timed_wait w[2] = {{never, 30}, {never, 300}};
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL(cf_submit(ex, task_timed_wait, &w[i], sizeof w[i], &fs[i]),
                    CF_OK);
    cf_test_sleep_ms(5);
  }
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL(cf_future_result(fs[i], CF_FOREVER, NULL, NULL), CF_OK);
    cf_future_release(fs[i]);
  }
  cf_future *f = submit_u64(ex, task_square, 5);
  CU_ASSERT_EQUAL(result_u64(f), 26);
  cf_future_release(f);
  cf_future_release(never);
  cf_executor_release(ex);
}

static int task_self_wait(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)len;
  cf_future **slot;
  memcpy(&slot, in, sizeof slot);
  /* Spin until the submitter published our own future. */
  cf_future *me;
  for (long i = 0; !(me = __atomic_load_n(slot, __ATOMIC_ACQUIRE)); i++) {
    if (i > 100000000L)
      return 2; /* never published: fail rather than spin forever */
    sched_yield();
  }
  return cf_future_wait(me, CF_FOREVER) == CF_EDEADLK ? 0 : 1;
}

static void test_self_wait_is_deadlock(void) {
  cf_executor *ex = make_pool(1);
  static cf_future *slot;
  __atomic_store_n(&slot, NULL, __ATOMIC_RELEASE);
  cf_future **p = &slot;
  cf_future *f = NULL;
  cf_future *tmp;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_self_wait, &p, sizeof p, &tmp),
                        CF_OK);
  f = tmp;
  /* The task reads a pointer to the slot; publish itself. */
  __atomic_store_n(&slot, f, __ATOMIC_RELEASE);
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, NULL, NULL), CF_OK);
  cf_future_release(f);
  cf_executor_release(ex);
}

/* The last reference to the pool dropped inside one of its tasks: the task
 * owns a reference of its own (the caller must keep its reference while it
 * is inside cf_submit), and the caller drops its reference first. */
typedef struct release_arg {
  cf_executor *ex;
  cf_test_gate gate;
} release_arg;

static int task_release_pool(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)len;
  release_arg *a;
  memcpy(&a, in, sizeof a);
  cf_test_gate *g = &a->gate;
  task_gate(t, &g, sizeof g); /* until the caller dropped its reference */
  cf_executor_release(a->ex); /* the last reference */
  return 0;
}

static void test_release_from_own_task(void) {
  release_arg a;
  gate_init(&a.gate);
  a.ex = make_pool(2);
  cf_executor_retain(a.ex); /* the task's reference */
  release_arg *ap = &a;
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(a.ex, task_release_pool, &ap, sizeof ap, &f),
                        CF_OK);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&a.gate.entered) == 1));
  cf_executor_release(a.ex); /* ours: the task now holds the last one */
  gate_open(&a.gate);
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, NULL, NULL), CF_OK);
  cf_future_release(f);
  /* The pool frees itself when the task's worker exits; valgrind and ASan
   * check that it does, and that nothing touches it afterwards. */
  cf_test_sleep_ms(50);
  gate_destroy(&a.gate);
}

/* Callbacks that submit: a chain of 500 tasks, each scheduled by the done
 * callback of the previous one, on the worker that completed it. */
static atomic_int g_chain;
static void cb_chain(cf_future *f, void *arg) {
  cf_executor *ex = arg;
  const void *d;
  if (cf_future_result(f, 0, &d, NULL) != CF_OK)
    return;
  uint64_t v;
  memcpy(&v, d, sizeof v);
  atomic_fetch_add(&g_chain, 1);
  if (v < 500) {
    v++;
    cf_future *next;
    if (cf_submit(ex, task_echo, &v, sizeof v, &next) == CF_OK) {
      cf_future_add_done_callback(next, cb_chain, ex);
      cf_future_release(next);
    }
  }
}

static void test_callbacks_submit(void) {
  atomic_store(&g_chain, 0);
  cf_executor *ex = make_pool(2);
  cf_future *f = submit_u64(ex, task_echo, 1);
  cf_future_add_done_callback(f, cb_chain, ex);
  cf_future_release(f);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&g_chain) == 500));
  cf_executor_release(ex);
  CU_ASSERT_EQUAL(atomic_load(&g_chain), 500);
}

CF_TEST_MAIN(
    "thread_pool", CF_TEST(test_submit_results), CF_TEST(test_task_error),
    CF_TEST(test_result_ownership), CF_TEST(test_input_ownership),
    CF_TEST(test_thread_names), CF_TEST(test_max_workers_and_stats),
    CF_TEST(test_workers_reused), CF_TEST(test_busy_worker_not_counted_idle),
    CF_TEST(test_idle_timeout), CF_TEST(test_initializer),
    CF_TEST(test_initializer_failure_breaks_pool), CF_TEST(test_shutdown),
    CF_TEST(test_shutdown_cancel_futures), CF_TEST(test_release_runs_queued),
    CF_TEST(test_release_pending_does_not_cancel),
    CF_TEST(test_destroy_joins_threads),
    CF_TEST(test_wait_runs_queued_awaited_inline),
    CF_TEST(test_blocked_worker_compensated),
    CF_TEST(test_wait_in_task_times_out), CF_TEST(test_self_wait_is_deadlock),
    CF_TEST(test_release_from_own_task), CF_TEST(test_callbacks_submit))
