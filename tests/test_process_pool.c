/* The process-pool backend: same tasks as the thread pool, workers that die
 * in every way under both policies, retirement, large payloads, shutdown,
 * terminate, and no leaked descriptors or children. */
#include "test_util.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

static cf_executor *make_ppool(int workers, cf_death_policy pol) {
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = workers;
  o.on_worker_death = pol;
  cf_executor *ex = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&o, &ex), CF_OK);
  return ex;
}

static int count_fds(void) { return cf_test_count_entries("/proc/self/fd"); }

/* No child at all, not even a zombie. */
static bool no_children(void) {
  return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* ---- tasks (run in the workers) ----------------------------------------------- */

static int task_pid(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  int32_t pid = (int32_t)getpid();
  return cf_task_return(t, &pid, sizeof pid);
}

/* in: int32 how; dies that way. */
enum { DIE_KILL, DIE_SEGV, DIE_ABORT, DIE_EXIT, DIE_OOM, DIE_NONE };
static int task_die(cf_task *t, const void *in, size_t len) {
  (void)t;
  int32_t how;
  if (len != sizeof how)
    return EINVAL;
  memcpy(&how, in, sizeof how);
  switch (how) {
  case DIE_KILL:
    raise(SIGKILL);
    break;
  case DIE_SEGV:
    raise(SIGSEGV);
    break;
  case DIE_ABORT:
    abort();
  case DIE_EXIT:
    exit(3);
  case DIE_OOM: {
    /* An unchecked allocation under a memory limit: the classic OOM. */
    struct rlimit rl = {64 << 20, 64 << 20};
    setrlimit(RLIMIT_AS, &rl);
    volatile char *p = malloc((size_t)1 << 30);
    p[4096] = 1;
    break;
  }
  }
  return 0;
}

static int32_t g_init_value = -1; /* set by the initializer, in the worker */
static int init_store(const void *arg, size_t len) {
  if (len != sizeof g_init_value)
    return 9;
  memcpy(&g_init_value, arg, len);
  return 0;
}
static int init_fail(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  return 21;
}
static int task_init_value(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  return cf_task_return(t, &g_init_value, sizeof g_init_value);
}

/* Takes a mutex another thread of the parent holds at fork time. */
static pthread_mutex_t g_held = PTHREAD_MUTEX_INITIALIZER;
static int task_take_mutex(cf_task *t, const void *in, size_t len) {
  pthread_mutex_lock(&g_held);
  pthread_mutex_unlock(&g_held);
  return task_square(t, in, len);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_same_tasks_as_threads(void) {
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_BREAK);
  cf_executor_stats st;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.workers, 0); /* started lazily */
  CU_ASSERT_EQUAL(cf_executor_max_workers(ex), 2);
  cf_future *fs[50];
  for (uint64_t i = 0; i < 50; i++)
    fs[i] = submit_u64(ex, task_square, i);
  for (uint64_t i = 0; i < 50; i++) {
    CU_ASSERT_EQUAL(result_u64(fs[i]), i * i + 1);
    cf_future_release(fs[i]);
  }
  int code = 44;
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_fail, &code, sizeof code, &f),
                        CF_OK);
  const char *msg;
  int got;
  CU_ASSERT_EQUAL(cf_future_error(f, CF_FOREVER, &got, &msg), CF_ETASK);
  CU_ASSERT_EQUAL(got, 44);
  CU_ASSERT_STRING_EQUAL(msg, "failed with 44");
  cf_future_release(f);
  /* It really is another process. */
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_pid, NULL, 0, &f), CF_OK);
  const void *d;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, NULL), CF_OK);
  int32_t pid;
  memcpy(&pid, d, sizeof pid);
  CU_ASSERT_NOT_EQUAL(pid, getpid());
  cf_future_release(f);
  cf_executor_release(ex);
}

static void test_map_chunks(void) {
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_BREAK);
  size_t n = cf_test_scaled(100000);
  uint64_t *in = malloc(n * sizeof *in);
  for (size_t i = 0; i < n; i++)
    in[i] = i;
  cf_map_options o;
  cf_map_options_init(&o);
  o.chunksize = 1000;
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_square, in, sizeof *in, n, &o, &m), CF_OK);
  cf_map_item it;
  size_t good = 0, count = 0;
  int rc;
  while ((rc = cf_map_next(m, &it)) == CF_OK) {
    uint64_t v;
    memcpy(&v, it.data, sizeof v);
    good += it.index == count && v == (uint64_t)it.index * it.index + 1;
    count++;
  }
  CU_ASSERT_EQUAL(rc, CF_EOF);
  CU_ASSERT_EQUAL(count, n);
  CU_ASSERT_EQUAL(good, n);
  cf_map_destroy(m);
  free(in);
  cf_executor_release(ex);
}

/* in a chunk of 10, input 5 fails: inputs 0-4 are delivered, 5 fails alone
 * with its own code and message. */
static int task_fail_5(cf_task *t, const void *in, size_t len) {
  uint64_t v;
  memcpy(&v, in, sizeof v);
  if (v == 5)
    return cf_task_fail(t, 55, "five");
  return task_square(t, in, len);
}

static void test_map_item_error_in_chunk(void) {
  cf_executor *ex = make_ppool(1, CF_ON_DEATH_BREAK);
  uint64_t in[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  cf_map_options o;
  cf_map_options_init(&o);
  o.chunksize = 10;
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(cf_map_array(ex, task_fail_5, in, 8, 10, &o, &m),
                        CF_OK);
  cf_map_item it;
  for (size_t i = 0; i < 5; i++) {
    CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_OK);
    CU_ASSERT_EQUAL(it.index, i);
  }
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_ETASK);
  CU_ASSERT_EQUAL(it.index, 5);
  CU_ASSERT_EQUAL(it.error_code, 55);
  CU_ASSERT_STRING_EQUAL(it.error_message, "five");
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_EOF);
  cf_map_destroy(m);
  cf_executor_release(ex);
}

/* Each way of dying, under BREAK: the task fails with CF_EWORKERDIED and
 * its wait status, queued futures with CF_EBROKEN, submit is refused. */
static void check_death_break(int32_t how, int want_sig, int want_exit) {
  cf_executor *ex = make_ppool(1, CF_ON_DEATH_BREAK);
  cf_future *dead, *queued[3];
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_die, &how, sizeof how, &dead),
                        CF_OK);
  long ms = 1;
  for (int i = 0; i < 3; i++)
    cf_submit(ex, task_sleep, &ms, sizeof ms, &queued[i]);
  int st = 0;
  const char *msg = NULL;
  CU_ASSERT_EQUAL(cf_future_error(dead, CF_FOREVER, &st, &msg),
                  CF_EWORKERDIED);
  CU_ASSERT_PTR_NOT_NULL(msg);
  /* Sanitizers catch SIGSEGV and failed mmaps in the worker themselves
   * and exit instead of dying by the signal: still a death. */
  if (want_sig == SIGSEGV && CF_TEST_SANITIZED) {
    CU_ASSERT_TRUE(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st)));
  } else if (want_sig) {
    CU_ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == want_sig);
  } else {
    CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == want_exit);
  }
  for (int i = 0; i < 3; i++) {
    int rc = cf_future_result(queued[i], CF_FOREVER, NULL, NULL);
    CU_ASSERT_EQUAL(rc, CF_EBROKEN);
    cf_future_release(queued[i]);
  }
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, NULL), CF_EBROKEN);
  cf_future_release(dead);
  cf_executor_release(ex);
  CU_ASSERT_TRUE(no_children());
}

static void test_death_break(void) {
  check_death_break(DIE_KILL, SIGKILL, 0);
  check_death_break(DIE_SEGV, SIGSEGV, 0);
  check_death_break(DIE_ABORT, SIGABRT, 0);
  check_death_break(DIE_EXIT, 0, 3);
  check_death_break(DIE_OOM, SIGSEGV, 0);
}

/* Under RESTART only the dead worker's task fails; the pool goes on. */
static void test_death_restart(void) {
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_RESTART);
  int32_t ways[5] = {DIE_KILL, DIE_SEGV, DIE_ABORT, DIE_EXIT, DIE_OOM};
  for (int k = 0; k < 5; k++) {
    cf_future *dead, *ok[4];
    CU_ASSERT_EQUAL_FATAL(
        cf_submit(ex, task_die, &ways[k], sizeof ways[k], &dead), CF_OK);
    for (uint64_t i = 0; i < 4; i++)
      ok[i] = submit_u64(ex, task_square, i);
    CU_ASSERT_EQUAL(cf_future_result(dead, CF_FOREVER, NULL, NULL),
                    CF_EWORKERDIED);
    for (uint64_t i = 0; i < 4; i++) {
      CU_ASSERT_EQUAL(result_u64(ok[i]), i * i + 1);
      cf_future_release(ok[i]);
    }
    cf_future_release(dead);
  }
  cf_executor_stats st;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.failed, 5);
  CU_ASSERT_EQUAL(st.completed, 20);
  cf_executor_release(ex);
  CU_ASSERT_TRUE(no_children());
}

static void test_max_tasks_per_child(void) {
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = 2;
  o.max_tasks_per_child = 1;
  cf_executor *ex;
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&o, &ex), CF_OK);
  size_t n = cf_test_scaled(1000);
  cf_future **fs = malloc(n * sizeof *fs);
  for (size_t i = 0; i < n; i++) /* submitted at once: retirement under load */
    CU_ASSERT_EQUAL(cf_submit(ex, task_pid, NULL, 0, &fs[i]), CF_OK);
  int32_t *pids = malloc(n * sizeof *pids);
  size_t ok = 0;
  for (size_t i = 0; i < n; i++) {
    const void *d;
    if (cf_future_result(fs[i], CF_FOREVER, &d, NULL) == CF_OK) {
      memcpy(&pids[ok++], d, sizeof *pids);
    }
    cf_future_release(fs[i]);
  }
  CU_ASSERT_EQUAL(ok, n);
  /* One task per process: every pid differs from the one before it. */
  size_t repeats = 0;
  for (size_t i = 1; i < ok; i++)
    for (size_t j = i >= 4 ? i - 4 : 0; j < i; j++)
      repeats += pids[i] == pids[j];
  CU_ASSERT_EQUAL(repeats, 0);
  free(pids);
  free(fs);
  cf_executor_release(ex);
  CU_ASSERT_TRUE(no_children());
}

static void *hold_mutex(void *arg) {
  atomic_int *stage = arg;
  pthread_mutex_lock(&g_held);
  atomic_store(stage, 1);
  /* Until told (bounded: a test that stopped half-way does not leave this
   * thread polling for good). */
  (void)CF_TEST_EVENTUALLY(atomic_load(stage) == 2);
  pthread_mutex_unlock(&g_held);
  return NULL;
}

/* A thread of the parent holds a mutex while the pool starts its workers;
 * a fork()ed worker would inherit it locked and hang.  Ours start clean. */
static void test_safe_with_threads(void) {
  atomic_int stage = 0;
  pthread_t th;
  pthread_create(&th, NULL, hold_mutex, &stage);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&stage) == 1));
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_BREAK);
  cf_future *fs[8];
  for (uint64_t i = 0; i < 8; i++)
    fs[i] = submit_u64(ex, task_take_mutex, i);
  for (uint64_t i = 0; i < 8; i++) {
    CU_ASSERT_EQUAL(cf_future_wait(fs[i], CF_SEC(60)), CF_OK);
    CU_ASSERT_EQUAL(result_u64(fs[i]), i * i + 1);
    cf_future_release(fs[i]);
  }
  atomic_store(&stage, 2);
  pthread_join(th, NULL);
  cf_executor_release(ex);
}

static void test_initializer(void) {
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = 2;
  o.initializer = init_store;
  int32_t v = 1234;
  o.initarg = &v;
  o.initarg_len = sizeof v;
  cf_executor *ex;
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&o, &ex), CF_OK);
  cf_future *f;
  cf_submit(ex, task_init_value, NULL, 0, &f);
  const void *d;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, NULL), CF_OK);
  int32_t got;
  memcpy(&got, d, sizeof got);
  CU_ASSERT_EQUAL(got, 1234);   /* set in the worker... */
  CU_ASSERT_EQUAL(g_init_value, -1); /* ...not here */
  cf_future_release(f);
  cf_executor_release(ex);

  o.initializer = init_fail;
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&o, &ex), CF_OK);
  cf_submit(ex, task_init_value, NULL, 0, &f);
  int code;
  CU_ASSERT_EQUAL(cf_future_error(f, CF_FOREVER, &code, NULL), CF_EBROKEN);
  CU_ASSERT_EQUAL(code, 21);
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, NULL), CF_EBROKEN);
  cf_future_release(f);
  cf_executor_release(ex);
}

static void test_large_round_trip(void) {
  cf_executor *ex = make_ppool(1, CF_ON_DEATH_BREAK);
  size_t n = (size_t)64 << 20;
  unsigned char *big = malloc(n);
  for (size_t i = 0; i < n; i++)
    big[i] = (unsigned char)(i * 131 + (i >> 16));
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_echo, big, n, &f), CF_OK);
  const void *d;
  size_t len;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, &len), CF_OK);
  CU_ASSERT_EQUAL(len, n);
  CU_ASSERT_TRUE(len == n && memcmp(d, big, n) == 0);
  cf_future_release(f);
  free(big);
  cf_executor_release(ex);
}

static void test_shutdown_and_terminate(void) {
  /* shutdown(wait) while tasks run: they all finish. */
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_BREAK);
  cf_future *fs[6];
  long ms = 20;
  for (int i = 0; i < 6; i++)
    cf_submit(ex, task_sleep, &ms, sizeof ms, &fs[i]);
  CU_ASSERT_EQUAL(cf_shutdown(ex, true, false), CF_OK);
  for (int i = 0; i < 6; i++) {
    CU_ASSERT_EQUAL(cf_future_result(fs[i], 0, NULL, NULL), CF_OK);
    cf_future_release(fs[i]);
  }
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, NULL), CF_ESHUTDOWN);
  cf_executor_release(ex);

  /* kill_workers: running tasks die, queued ones are cancelled. */
  ex = make_ppool(1, CF_ON_DEATH_BREAK);
  long long_ms = 60000;
  cf_future *running, *queued;
  cf_submit(ex, task_sleep, &long_ms, sizeof long_ms, &running);
  cf_submit(ex, task_sleep, &long_ms, sizeof long_ms, &queued);
  cf_executor_stats st;
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(cf_executor_stats_get(ex, &st) == CF_OK &&
                                    st.running == 1));
  CU_ASSERT_EQUAL(cf_terminate_workers(ex, SIGKILL), CF_OK);
  int wst;
  CU_ASSERT_EQUAL(cf_future_error(running, CF_FOREVER, &wst, NULL),
                  CF_EWORKERDIED);
  CU_ASSERT_TRUE(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
  CU_ASSERT_EQUAL(cf_future_result(queued, 0, NULL, NULL), CF_ECANCELLED);
  cf_future_release(running);
  cf_future_release(queued);
  cf_executor_release(ex);
  CU_ASSERT_TRUE(no_children());
  /* The thread pool has no workers to signal. */
  cf_executor *tp = make_pool(1);
  CU_ASSERT_EQUAL(cf_terminate_workers(tp, SIGTERM), CF_ENOTSUP);
  cf_executor_release(tp);
}

static char g_cb_thread[16];
static atomic_int g_cb_ran;
static void cb_thread_name(cf_future *f, void *arg) {
  (void)f;
  (void)arg;
  pthread_getname_np(pthread_self(), g_cb_thread, sizeof g_cb_thread);
  atomic_store(&g_cb_ran, 1);
}

static void test_callbacks_and_waits(void) {
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_BREAK);
  cf_future *fs[10];
  for (uint64_t i = 0; i < 9; i++)
    fs[i] = submit_u64(ex, task_square, i);
  /* The last task waits at a gate until its callback is added, so the
   * callback cannot run here, however slow this thread is. */
  cf_test_fifo g;
  fifo_gate_init(&g);
  CU_ASSERT_EQUAL(
      cf_submit(ex, task_fifo_gate, g.path, strlen(g.path) + 1, &fs[9]),
      CF_OK);
  cf_future_add_done_callback(fs[9], cb_thread_name, NULL);
  CU_ASSERT_EQUAL(atomic_load(&g_cb_ran), 0);
  fifo_gate_open(&g, 1);
  size_t nd;
  CU_ASSERT_EQUAL(cf_wait(fs, 10, CF_FOREVER, CF_ALL_COMPLETED, NULL, &nd),
                  CF_OK);
  CU_ASSERT_EQUAL(nd, 10);
  cf_as_completed_iter *it;
  cf_as_completed_create(fs, 10, CF_FOREVER, &it);
  cf_future *f;
  size_t count = 0;
  while (cf_as_completed_next(it, &f) == CF_OK)
    count++;
  CU_ASSERT_EQUAL(count, 10);
  cf_as_completed_destroy(it);
  /* Callbacks run in this process, on the pool's manager thread (just
   * after the waiters were woken, hence the wait). */
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&g_cb_ran) == 1));
  CU_ASSERT_STRING_EQUAL(g_cb_thread, "cf-procpool");
  CU_ASSERT_EQUAL(cf_future_result(fs[9], 0, NULL, NULL), CF_OK);
  for (int i = 0; i < 10; i++)
    cf_future_release(fs[i]);
  cf_executor_release(ex);
  fifo_gate_destroy(&g);
}

/* A task that scribbles on its worker's socket (fd 3): the parent reads
 * garbage, fails that task with CF_EPROTO, replaces the worker, goes on. */
static int task_scribble(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)in;
  (void)len;
  static const char junk[] = "this is not a cfutures frame header at all";
  if (write(3, junk, sizeof junk) < 0)
    return 1;
  cf_test_sleep_ms(100);
  return 0;
}

static void test_malformed_message(void) {
  cf_executor *ex = make_ppool(1, CF_ON_DEATH_BREAK);
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_scribble, NULL, 0, &f), CF_OK);
  const char *msg;
  CU_ASSERT_EQUAL(cf_future_error(f, CF_FOREVER, NULL, &msg), CF_EPROTO);
  CU_ASSERT_PTR_NOT_NULL(msg);
  cf_future_release(f);
  f = submit_u64(ex, task_square, 3); /* not broken: a new worker */
  CU_ASSERT_EQUAL(result_u64(f), 10);
  cf_future_release(f);
  cf_executor_release(ex);
}

/* Runs first and last: descriptors and children back where they were. */
static int g_fds_before;
static void test_resources_before(void) {
  g_fds_before = count_fds();
  CU_ASSERT_TRUE(no_children());
}
static void test_resources_after(void) {
  CU_ASSERT_EQUAL(count_fds(), g_fds_before);
  CU_ASSERT_TRUE(no_children());
}

CF_TEST_MAIN("process_pool", CF_TEST(test_resources_before),
             CF_TEST(test_same_tasks_as_threads), CF_TEST(test_map_chunks),
             CF_TEST(test_map_item_error_in_chunk), CF_TEST(test_death_break),
             CF_TEST(test_death_restart), CF_TEST(test_max_tasks_per_child),
             CF_TEST(test_safe_with_threads), CF_TEST(test_initializer),
             CF_TEST(test_large_round_trip),
             CF_TEST(test_shutdown_and_terminate),
             CF_TEST(test_callbacks_and_waits),
             CF_TEST(test_malformed_message),
             CF_TEST(test_resources_after))
