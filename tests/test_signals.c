/* Signals: every blocking call keeps blocking while signals interrupt it
 * (a handler without SA_RESTART, so each system call sees EINTR), returns
 * the right status once its condition holds, and a timed call still times
 * out on time.  Signals sent to the whole process never land on a library
 * thread (workers and the process pool's manager block them all). */
#include "test_util.h"

#include <signal.h>
#include <sys/prctl.h>

static atomic_int g_signals, g_on_library_thread;

static void on_usr1(int sig) {
  (void)sig;
  int saved = errno;
  char name[16] = "";
  prctl(PR_GET_NAME, name); /* a system call: async-signal-safe */
  if (strncmp(name, "cf-", 3) == 0)
    atomic_fetch_add(&g_on_library_thread, 1);
  atomic_fetch_add(&g_signals, 1);
  errno = saved;
}

/* Installed once and left: a process-directed signal may still be pending
 * when a test ends. */
static void install_handler(void) {
  static bool done;
  if (done)
    return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1; /* no SA_RESTART: every syscall sees EINTR */
  sigaction(SIGUSR1, &sa, NULL);
  done = true;
}

typedef struct blocked {
  int (*call)(void *arg);
  void *arg;
  int rc;
  atomic_bool returned;
} blocked;

static void *run_blocked(void *p) {
  blocked *b = p;
  b->rc = b->call(b->arg);
  atomic_store(&b->returned, true);
  return NULL;
}

static void send_signal(pthread_t th, int i) {
  if (i % 2)
    pthread_kill(th, SIGUSR1);
  else
    kill(getpid(), SIGUSR1); /* goes to any thread that does not block it */
  cf_test_sleep_ms(1);
}

/* Runs call(arg) on a thread and signals it (and the process) every
 * millisecond until it returns.  First, while the call's condition cannot
 * hold (a closed gate holds the tasks it waits for), for at least
 * `block_ms` ms and until 20 signals were handled (counted, not timed, so
 * that a slow machine still sends them): it must not have returned.  Then
 * release(arg) (if any) lets it, and it must return while the signals go
 * on (a call that restarted its full timeout after each EINTR would not;
 * the signals stop after 60 s).  Returns its status. */
static int under_signals(int (*call)(void *), void (*release)(void *),
                         void *arg, int block_ms) {
  install_handler();
  blocked b = {call, arg, 0, false};
  pthread_t th;
  pthread_create(&th, NULL, run_blocked, &b);
  int before = atomic_load(&g_signals);
  int i = 0;
  if (block_ms > 0) {
    int64_t t0 = cf_test_now_ms();
    for (int64_t now = t0;
         !atomic_load(&b.returned) && now - t0 < 60000 &&
         (now - t0 < block_ms || atomic_load(&g_signals) - before < 20);
         i++, now = cf_test_now_ms())
      send_signal(th, i);
    CU_ASSERT_FALSE(atomic_load(&b.returned)); /* EINTR did not end it */
    CU_ASSERT_TRUE(atomic_load(&g_signals) - before >= 20);
  }
  if (release)
    release(arg);
  for (int64_t end = cf_test_now_ms() + 60000;
       !atomic_load(&b.returned) && cf_test_now_ms() < end; i++)
    send_signal(th, i);
  CU_ASSERT_TRUE(atomic_load(&b.returned)); /* while signalled */
  pthread_join(th, NULL);
  CU_ASSERT_TRUE(atomic_load(&g_signals) > before);
  return b.rc;
}

/* ---- thread pool and plain futures --------------------------------------- */

typedef struct scene {
  cf_executor *ex;
  cf_test_gate gate;
  cf_future *fs[3];
  int64_t timeout;
} scene;

static void scene_start(scene *s, int workers, int gated) {
  memset(s, 0, sizeof *s);
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = workers;
  o.thread_name_prefix = "sig-scene"; /* its threads, told by name */
  CU_ASSERT_EQUAL_FATAL(cf_thread_pool_create(&o, &s->ex), CF_OK);
  gate_init(&s->gate);
  s->timeout = CF_FOREVER;
  for (int i = 0; i < gated; i++)
    s->fs[i] = submit_ptr(s->ex, task_gate, &s->gate);
}

static void scene_end(scene *s) {
  for (int i = 0; i < 3; i++)
    cf_future_release(s->fs[i]);
  cf_executor_release(s->ex);
  gate_destroy(&s->gate);
}

static void open_gate(void *arg) { gate_open(&((scene *)arg)->gate); }

static int call_future_wait(void *arg) {
  scene *s = arg;
  return cf_future_wait(s->fs[0], s->timeout);
}

static int call_wait_all(void *arg) {
  scene *s = arg;
  size_t nd = 0;
  int rc = cf_wait(s->fs, 3, s->timeout, CF_ALL_COMPLETED, NULL, &nd);
  return rc == CF_OK && nd == 3 ? CF_OK : rc == CF_OK ? CF_ETIMEDOUT : rc;
}

static int call_as_completed(void *arg) {
  scene *s = arg;
  cf_as_completed_iter *it;
  cf_future *f;
  int rc = cf_as_completed_create(s->fs, 3, s->timeout, &it);
  int got = 0;
  while (rc == CF_OK && (rc = cf_as_completed_next(it, &f)) == CF_OK)
    got++;
  cf_as_completed_destroy(it);
  return rc == CF_EOF && got == 3 ? CF_OK : rc;
}

static int call_shutdown_wait(void *arg) {
  return cf_shutdown(((scene *)arg)->ex, true, false);
}

static void test_thread_pool_waits(void) {
  int (*calls[])(void *) = {call_future_wait, call_wait_all, call_as_completed,
                            call_shutdown_wait};
  for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
    scene s;
    scene_start(&s, 3, 3);
    CU_ASSERT_EQUAL(under_signals(calls[i], open_gate, &s, 60), CF_OK);
    for (int k = 0; k < 3; k++)
      CU_ASSERT_EQUAL(cf_future_result(s.fs[k], CF_SEC(30), NULL, NULL), CF_OK);
    scene_end(&s);
  }
}

/* Timed calls interrupted all along still time out: not early, and not
 * late either (a wait that restarted its full timeout after each EINTR
 * would never end while the signals go on: under_signals checks that). */
static void test_timed_waits_time_out(void) {
  int (*calls[])(void *) = {call_future_wait, call_wait_all, call_as_completed};
  for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
    scene s;
    scene_start(&s, 3, 3);
    s.timeout = CF_MSEC(150);
    int64_t t0 = cf_test_now_ms();
    CU_ASSERT_EQUAL(under_signals(calls[i], NULL, &s, 0), CF_ETIMEDOUT);
    CU_ASSERT_TRUE(cf_test_now_ms() - t0 >= 149);
    gate_open(&s.gate);
    scene_end(&s);
  }
}

/* The last release joins the pool's threads: interrupted, it still does. */
static int call_release(void *arg) {
  scene *s = arg;
  cf_executor_release(s->ex);
  s->ex = NULL;
  return CF_OK;
}

static void test_release_joins(void) {
  scene s;
  scene_start(&s, 2, 2);
  /* Counted by name: a thread of an earlier test may still be on its way
   * out, so the process's total is no baseline (that flaked in CI).  A
   * joined thread, too, may linger in /proc for a moment. */
  CU_ASSERT_TRUE(
      CF_TEST_EVENTUALLY(cf_test_count_threads_named("sig-scene-") == 2));
  CU_ASSERT_EQUAL(under_signals(call_release, open_gate, &s, 60), CF_OK);
  CU_ASSERT_TRUE(
      CF_TEST_EVENTUALLY(cf_test_count_threads_named("sig-scene-") == 0));
  scene_end(&s);
}

typedef struct map_scene {
  scene s;
  cf_map_iter *m;
  uint64_t in[32];
} map_scene;

static int call_map_all(void *arg) {
  map_scene *ms = arg;
  cf_map_item item = CF_MAP_ITEM_INIT;
  int rc, n = 0;
  while ((rc = cf_map_next(ms->m, &item)) == CF_OK) {
    uint64_t v;
    memcpy(&v, item.data, sizeof v);
    n += v == ms->in[item.index] * ms->in[item.index] + 1;
  }
  return rc == CF_EOF && n == 32 ? CF_OK : rc;
}

static void test_map_next(void) {
  map_scene ms;
  scene_start(&ms.s, 2, 2); /* both workers held: the map waits */
  for (uint64_t i = 0; i < 32; i++)
    ms.in[i] = i + 3;
  CU_ASSERT_EQUAL_FATAL(cf_map_array(ms.s.ex, task_square, ms.in,
                                     sizeof ms.in[0], 32, NULL, &ms.m),
                        CF_OK);
  CU_ASSERT_EQUAL(under_signals(call_map_all, open_gate, &ms, 60), CF_OK);
  cf_map_destroy(ms.m);
  scene_end(&ms.s);
}

/* ---- process pool: the parent's waits, its manager, shutdown ------------- */

/* The tasks run in worker processes and wait at a FIFO gate, opened by the
 * release: held, not slow, so nothing can finish early. */
typedef struct proc_scene {
  cf_executor *ex;
  cf_future *f;
  cf_map_iter *m;
  cf_test_fifo gate;
  char in[4][sizeof((cf_test_fifo *)0)->path];
} proc_scene;

static void proc_start(proc_scene *p) {
  memset(p, 0, sizeof *p);
  fifo_gate_init(&p->gate);
  for (int i = 0; i < 4; i++)
    memcpy(p->in[i], p->gate.path, sizeof p->in[i]);
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = 2;
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&o, &p->ex), CF_OK);
  CU_ASSERT_EQUAL_FATAL(cf_submit(p->ex, task_fifo_gate, p->gate.path,
                                  strlen(p->gate.path) + 1, &p->f),
                        CF_OK);
}

static void open_proc_gate(void *arg) {
  fifo_gate_open(&((proc_scene *)arg)->gate, 5); /* the task, the map's 4 */
}

static int call_proc_result(void *arg) {
  return cf_future_result(((proc_scene *)arg)->f, CF_FOREVER, NULL, NULL);
}

static int call_proc_shutdown(void *arg) {
  return cf_shutdown(((proc_scene *)arg)->ex, true, false);
}

static int call_proc_map(void *arg) {
  proc_scene *p = arg;
  int rc = cf_map_array(p->ex, task_fifo_gate, p->in, sizeof p->in[0], 4, NULL,
                        &p->m);
  cf_map_item item = CF_MAP_ITEM_INIT;
  int n = 0;
  while (rc == CF_OK && (rc = cf_map_next(p->m, &item)) == CF_OK)
    n++;
  cf_map_destroy(p->m);
  return rc == CF_EOF && n == 4 ? CF_OK : rc;
}

static void test_process_pool_waits(void) {
  int (*calls[])(void *) = {call_proc_result, call_proc_shutdown,
                            call_proc_map};
  for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
    proc_scene p;
    proc_start(&p);
    CU_ASSERT_EQUAL(under_signals(calls[i], open_proc_gate, &p, 100), CF_OK);
    CU_ASSERT_EQUAL(cf_future_result(p.f, CF_SEC(30), NULL, NULL), CF_OK);
    cf_future_release(p.f);
    cf_executor_release(p.ex);
    fifo_gate_destroy(&p.gate);
  }
}

/* Runs last: not one of the signals above ran its handler on a thread of
 * the library. */
static void test_no_signal_on_library_threads(void) {
  CU_ASSERT_TRUE(atomic_load(&g_signals) > 100);
  CU_ASSERT_EQUAL(atomic_load(&g_on_library_thread), 0);
}

CF_TEST_MAIN("signals", CF_TEST(test_thread_pool_waits),
             CF_TEST(test_timed_waits_time_out), CF_TEST(test_release_joins),
             CF_TEST(test_map_next), CF_TEST(test_process_pool_waits),
             CF_TEST(test_no_signal_on_library_threads))
