/* The process-pool backend: same tasks as the thread pool, workers that die
 * in every way under both policies, retirement, large payloads, shutdown,
 * terminate, and no leaked descriptors or children. */
#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

static cf_executor *make_ppool(int workers, cf_death_policy pol) {
  return make_process_pool(workers, pol, 0);
}

static int count_fds(void) { return cf_test_count_entries("/proc/self/fd"); }

/* No child at all, not even a zombie. */
static bool no_children(void) {
  return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* ---- files and FIFOs the test controls (workers see them by path) -------- */

/* A fresh folder for one test's files; returns its path (static). */
static const char *make_dir(void) {
  static char dir[64];
  snprintf(dir, sizeof dir, "/tmp/cf-pp-XXXXXX");
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
  return dir;
}

static void path_in(char *out, size_t n, const char *dir, const char *name) {
  snprintf(out, n, "%s/%s", dir, name);
}

/* Removes the folder and the files a test made in it. */
static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char p[512];
    path_in(p, sizeof p, dir, e->d_name);
    unlink(p);
  }
  if (d)
    closedir(d);
  rmdir(dir);
}

/* Size of a file, 0 when it does not exist. */
static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Appends one byte to the file: how a worker counts what it ran. */
static void count_one(const char *path) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) {
    if (write(fd, "x", 1) != 1) {
      /* counted as not run: the test then fails visibly */
    }
    close(fd);
  }
}

/* Polls cond until it holds; a generous safety net (2 minutes) keeps a
 * broken library from hanging the suite, it is no timing requirement. */
#define EVENTUALLY_LONG(cond)                                                  \
  ({                                                                           \
    bool ok_ = false;                                                          \
    for (int i_ = 0; i_ < 120000 && !(ok_ = (cond)); i_++)                     \
      cf_test_sleep_ms(1);                                                     \
    ok_;                                                                       \
  })

/* in: a FIFO's path (NUL-terminated); blocks until the test writes a byte
 * to it, then returns 7 as a uint64. */
static int task_fifo(cf_task *t, const void *in, size_t len) {
  if (!len || ((const char *)in)[len - 1] != '\0')
    return EINVAL;
  int fd = open(in, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  char c;
  ssize_t r;
  while ((r = read(fd, &c, 1)) < 0 && errno == EINTR)
    ;
  close(fd);
  uint64_t v = 7;
  return r == 1 ? cf_task_return(t, &v, sizeof v) : EIO;
}

/* Lets every task_fifo on `path` through: a byte for each, and the FIFO
 * stays open for writing (returned: close it at the end). */
static int fifo_release(const char *path, int n) {
  int fd = open(path, O_RDWR | O_CLOEXEC); /* never blocks on Linux */
  CU_ASSERT_TRUE_FATAL(fd >= 0);
  for (int i = 0; i < n; i++)
    CU_ASSERT_EQUAL(write(fd, "g", 1), 1);
  return fd;
}

/* ---- tasks (run in the workers) ------------------------------------------ */

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

/* ---- tests --------------------------------------------------------------- */

static void test_same_tasks_as_threads(void) {
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_BREAK);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
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
  cf_map_item it = CF_MAP_ITEM_INIT;
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
  cf_map_item it = CF_MAP_ITEM_INIT;
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

/* in: int32 ms to sleep, or -1 to die by SIGKILL. */
static int task_sleep_or_die(cf_task *t, const void *in, size_t len) {
  int32_t ms;
  if (len != sizeof ms)
    return EINVAL;
  memcpy(&ms, in, sizeof ms);
  if (ms < 0)
    raise(SIGKILL);
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  return cf_task_return(t, &ms, sizeof ms);
}

/* A map item that failed because its worker died, or because another
 * worker's death broke the pool, carries the words of that cause (what
 * primecheck prints), not only the status: input 0 sleeps on one worker
 * while input 1 kills the other, so the first item in order fails with
 * CF_EBROKEN and must say how the pool broke. */
static void test_map_item_words_on_death(void) {
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_BREAK);
  int32_t in[2] = {30000, -1};
  cf_map_options o;
  cf_map_options_init(&o);
  o.chunksize = 1;
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_sleep_or_die, in, sizeof in[0], 2, &o, &m), CF_OK);
  cf_map_item it = CF_MAP_ITEM_INIT;
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_EBROKEN);
  CU_ASSERT_EQUAL(it.index, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(it.error_message);
  CU_ASSERT_PTR_NOT_NULL(strstr(it.error_message, "signal 9"));
  cf_map_destroy(m);
  /* The dead worker's own item, unordered so it comes first. */
  o.unordered = true;
  int32_t die[1] = {-1};
  cf_executor_release(ex);
  ex = make_ppool(1, CF_ON_DEATH_BREAK);
  CU_ASSERT_EQUAL_FATAL(cf_map_array(ex, task_sleep_or_die, die, sizeof die[0],
                                     1, &o, &m),
                        CF_OK);
  CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_EWORKERDIED);
  CU_ASSERT_PTR_NOT_NULL_FATAL(it.error_message);
  CU_ASSERT_PTR_NOT_NULL(strstr(it.error_message, "signal 9"));
  cf_map_destroy(m);
  cf_executor_release(ex);
}

/* Each way of dying, under BREAK: the task fails with CF_EWORKERDIED and
 * its wait status, queued futures with CF_EBROKEN, submit is refused, and
 * already from the dead future's done callback, which runs on the manager
 * as the future fails (the pool breaks first). */
static void check_death_break(int32_t how, int want_sig, int want_exit) {
  cf_executor *ex = make_ppool(1, CF_ON_DEATH_BREAK);
  cf_future *dead, *queued[3];
  resubmit again = {.ex = ex};
  atomic_init(&again.rc, 1);
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_die, &how, sizeof how, &dead),
                        CF_OK);
  CU_ASSERT_EQUAL(cf_future_add_done_callback(dead, resubmit_cb, &again),
                  CF_OK);
  long ms = 1;
  /* Queued behind the dying task, unless the worker died first (a loaded
   * machine may run it before these submits): then the pool is broken
   * already and the submit itself says so. */
  int sub[3];
  for (int i = 0; i < 3; i++) {
    sub[i] = cf_submit(ex, task_sleep, &ms, sizeof ms, &queued[i]);
    CU_ASSERT_TRUE(sub[i] == CF_OK || sub[i] == CF_EBROKEN);
  }
  int st = 0;
  const char *msg = NULL;
  CU_ASSERT_EQUAL(cf_future_error(dead, CF_FOREVER, &st, &msg), CF_EWORKERDIED);
  CU_ASSERT_PTR_NOT_NULL(msg);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&again.rc) != 1));
  CU_ASSERT_EQUAL(atomic_load(&again.rc), CF_EBROKEN);
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
    if (sub[i] != CF_OK)
      continue;
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
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
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
  CU_ASSERT_EQUAL(got, 1234);        /* set in the worker... */
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
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
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
      cf_submit(ex, task_fifo_gate, g.path, strlen(g.path) + 1, &fs[9]), CF_OK);
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

/* ---- RESTART: a worker that dies while it starts ------------------------- */

/* initarg: a folder.  Appends a byte to <dir>/starts, publishes the
 * worker's pid in <dir>/pid, then waits until the test opens <dir>/gate
 * (a FIFO) for writing. */
static int init_gate(const void *arg, size_t len) {
  if (!len || ((const char *)arg)[len - 1] != '\0')
    return 9;
  char p[256], tmp[300];
  path_in(p, sizeof p, arg, "starts");
  count_one(p);
  path_in(p, sizeof p, arg, "pid");
  snprintf(tmp, sizeof tmp, "%s.%d", p, (int)getpid());
  FILE *fp = fopen(tmp, "w");
  if (!fp)
    return 9;
  fprintf(fp, "%d\n", (int)getpid());
  fclose(fp);
  rename(tmp, p); /* atomic: the test reads a whole pid */
  path_in(p, sizeof p, arg, "gate");
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 9;
  close(fd);
  return 0;
}

/* initarg: a folder.  Counts the start in <dir>/starts, then dies. */
static int init_die(const void *arg, size_t len) {
  if (!len || ((const char *)arg)[len - 1] != '\0')
    return 9;
  char p[256];
  path_in(p, sizeof p, arg, "starts");
  count_one(p);
  raise(SIGKILL);
  return 9;
}

static int read_pid(const char *dir) {
  char p[256];
  path_in(p, sizeof p, dir, "pid");
  FILE *fp = fopen(p, "r");
  int pid = 0;
  if (fp) {
    if (fscanf(fp, "%d", &pid) != 1)
      pid = 0;
    fclose(fp);
  }
  return pid;
}

static cf_executor *make_init_pool(cf_death_policy pol, cf_initializer_fn init,
                                   const char *dir) {
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = 1;
  o.on_worker_death = pol;
  o.initializer = init;
  o.initarg = dir;
  o.initarg_len = strlen(dir) + 1;
  cf_executor *ex = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&o, &ex), CF_OK);
  return ex;
}

/* The first worker is killed inside its initializer: under RESTART a new
 * one starts and runs the queue; under BREAK the pool breaks, as before. */
static void check_kill_at_start(cf_death_policy pol) {
  const char *dir = make_dir();
  char gate[256], starts[256];
  path_in(gate, sizeof gate, dir, "gate");
  path_in(starts, sizeof starts, dir, "starts");
  CU_ASSERT_EQUAL_FATAL(mkfifo(gate, 0600), 0);
  cf_executor *ex = make_init_pool(pol, init_gate, dir);
  cf_future *fs[3];
  for (uint64_t i = 0; i < 3; i++)
    fs[i] = submit_u64(ex, task_square, i);
  CU_ASSERT_TRUE_FATAL(EVENTUALLY_LONG(read_pid(dir) > 0));
  int first = read_pid(dir);
  CU_ASSERT_EQUAL(kill(first, SIGKILL), 0);
  if (pol == CF_ON_DEATH_RESTART) {
    /* Its successor is in the initializer now; let it through. */
    CU_ASSERT_TRUE(EVENTUALLY_LONG(read_pid(dir) != first));
    int gfd = fifo_release(gate, 0);
    for (uint64_t i = 0; i < 3; i++)
      CU_ASSERT_EQUAL(result_u64(fs[i]), i * i + 1);
    CU_ASSERT_EQUAL(file_size(starts), 2);
    cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
    cf_executor_stats_get(ex, &st);
    CU_ASSERT_EQUAL(st.completed, 3);
    CU_ASSERT_EQUAL(st.failed, 0);
    /* The count of failed starts was reset by the good one: one more
     * death of a running worker is just that (the task fails alone). */
    cf_executor_release(ex);
    close(gfd);
  } else {
    const char *msg = NULL;
    int code = 0;
    CU_ASSERT_EQUAL(cf_future_error(fs[0], CF_FOREVER, &code, &msg),
                    CF_EBROKEN);
    CU_ASSERT_TRUE(WIFSIGNALED(code) && WTERMSIG(code) == SIGKILL);
    CU_ASSERT_TRUE(msg && strstr(msg, "failed to start"));
    for (int i = 1; i < 3; i++)
      CU_ASSERT_EQUAL(cf_future_result(fs[i], CF_FOREVER, NULL, NULL),
                      CF_EBROKEN);
    CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, NULL), CF_EBROKEN);
    CU_ASSERT_EQUAL(file_size(starts), 1);
    cf_executor_release(ex);
  }
  for (int i = 0; i < 3; i++)
    cf_future_release(fs[i]);
  CU_ASSERT_TRUE(no_children());
  remove_dir(dir);
}

static void test_restart_kill_at_start(void) {
  check_kill_at_start(CF_ON_DEATH_RESTART);
  check_kill_at_start(CF_ON_DEATH_BREAK);
}

/* A worker that can never start: RESTART tries 6 times (with a back-off),
 * then breaks the pool and says why. */
static void test_restart_start_always_fails(void) {
  const char *dir = make_dir();
  char starts[256];
  path_in(starts, sizeof starts, dir, "starts");
  cf_executor *ex = make_init_pool(CF_ON_DEATH_RESTART, init_die, dir);
  cf_future *f = submit_u64(ex, task_square, 2);
  const char *msg = NULL;
  int code = 0;
  CU_ASSERT_EQUAL(cf_future_error(f, CF_FOREVER, &code, &msg), CF_EBROKEN);
  CU_ASSERT_TRUE(WIFSIGNALED(code) && WTERMSIG(code) == SIGKILL);
  CU_ASSERT_PTR_NOT_NULL(msg);
  if (msg) {
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "6 worker starts in a row failed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "killed by signal 9"));
  }
  CU_ASSERT_EQUAL(file_size(starts), 6);
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, NULL), CF_EBROKEN);
  cf_future_release(f);
  cf_executor_release(ex);
  CU_ASSERT_TRUE(no_children());
  remove_dir(dir);
}

/* ---- a done callback on the pool's I/O thread waits on its own pool ------ */

typedef struct io_wait_ctx {
  cf_future *blocked; /* pending: its task waits on a FIFO */
  cf_future *done;    /* a finished future of the same pool */
  cf_executor *other; /* another process pool */
  cf_executor *tp;    /* a thread pool */
  cf_executor *self;  /* the pool (shutdown / release cases) */
  int what;           /* 0: waits; 1: shutdown(wait); 2: release */
  char thread[16];
  int rc[16];
  uint64_t val[4];
  bool blocked_done; /* was `blocked` done when the checks ended? */
  cf_future *signal; /* set when the callback is through */
} io_wait_ctx;

enum {
  W_WAIT_FOREVER,
  W_WAIT_TIMEOUT,
  W_RESULT_FOREVER,
  W_RESULT_TIMEOUT,
  W_ERROR_FOREVER,
  W_ERROR_TIMEOUT,
  W_SELF_DONE,
  W_OTHER_PP,
  W_THREAD_POOL,
  W_OWN_DONE,
  W_WAIT_ALL,
  W_WAIT_ALL_TIMEOUT,
  W_AS_COMPLETED,
  W_MAP_NEXT,
  W_END
};

static void cb_io_waits(cf_future *self, void *arg) {
  io_wait_ctx *c = arg;
  pthread_getname_np(pthread_self(), c->thread, sizeof c->thread);
  if (c->what == 1) {
    c->rc[0] = cf_shutdown(c->self, true, false);
  } else if (c->what == 2) {
    cf_executor_release(c->self); /* the last reference */
    c->rc[0] = CF_OK;
  } else {
    const void *d = (const void *)1;
    size_t n = 1;
    int code = 1;
    const char *msg = (const char *)1;
    c->rc[W_WAIT_FOREVER] = cf_future_wait(c->blocked, CF_FOREVER);
    c->rc[W_WAIT_TIMEOUT] = cf_future_wait(c->blocked, CF_SEC(3600));
    c->rc[W_RESULT_FOREVER] = cf_future_result(c->blocked, CF_FOREVER, &d, &n);
    c->rc[W_RESULT_TIMEOUT] =
        cf_future_result(c->blocked, CF_SEC(3600), &d, &n);
    if (d || n)
      c->rc[W_RESULT_TIMEOUT] = 1000; /* outputs must be cleared */
    c->rc[W_ERROR_FOREVER] =
        cf_future_error(c->blocked, CF_FOREVER, &code, &msg);
    c->rc[W_ERROR_TIMEOUT] =
        cf_future_error(c->blocked, CF_SEC(3600), &code, &msg);
    if (code || msg)
      c->rc[W_ERROR_TIMEOUT] = 1000;
    /* Done futures, and futures of other pools, are waited for. */
    const void *r;
    c->rc[W_SELF_DONE] = cf_future_result(self, CF_FOREVER, &r, NULL);
    if (c->rc[W_SELF_DONE] == CF_OK)
      memcpy(&c->val[0], r, 8);
    cf_future *o = submit_u64(c->other, task_square, 6);
    c->rc[W_OTHER_PP] = cf_future_result(o, CF_FOREVER, &r, NULL);
    if (c->rc[W_OTHER_PP] == CF_OK)
      memcpy(&c->val[1], r, 8);
    cf_future_release(o);
    o = submit_u64(c->tp, task_square, 7);
    c->rc[W_THREAD_POOL] = cf_future_result(o, CF_SEC(3600), &r, NULL);
    if (c->rc[W_THREAD_POOL] == CF_OK)
      memcpy(&c->val[2], r, 8);
    cf_future_release(o);
    c->rc[W_OWN_DONE] = cf_future_result(c->done, CF_SEC(3600), &r, NULL);
    if (c->rc[W_OWN_DONE] == CF_OK)
      memcpy(&c->val[3], r, 8);
    /* The waits over many futures, and cf_map_next, on the I/O thread;
     * the map is destroyed there too (its chunks outlive it). */
    cf_future *two[2] = {c->done, c->blocked};
    c->rc[W_WAIT_ALL] =
        cf_wait(two, 2, CF_FOREVER, CF_ALL_COMPLETED, NULL, NULL);
    c->rc[W_WAIT_ALL_TIMEOUT] =
        cf_wait(&c->blocked, 1, CF_SEC(3600), CF_FIRST_COMPLETED, NULL, NULL);
    cf_as_completed_iter *it;
    c->rc[W_AS_COMPLETED] =
        cf_as_completed_create(&c->blocked, 1, CF_FOREVER, &it);
    if (c->rc[W_AS_COMPLETED] == CF_OK) {
      cf_future *g;
      c->rc[W_AS_COMPLETED] = cf_as_completed_next(it, &g);
      cf_as_completed_destroy(it);
    }
    uint64_t in[4] = {1, 2, 3, 4};
    cf_map_iter *m;
    c->rc[W_MAP_NEXT] = cf_map_array(c->self, task_square, in, 8, 4, NULL, &m);
    if (c->rc[W_MAP_NEXT] == CF_OK) {
      cf_map_item mi = CF_MAP_ITEM_INIT;
      c->rc[W_MAP_NEXT] = cf_map_next(m, &mi);
      cf_map_destroy(m);
    }
  }
  c->blocked_done = cf_future_done(c->blocked);
  cf_future_set_result(c->signal, NULL, 0);
}

/* Sets up `blocked` (waits on <dir>/b) and a future that waits on <dir>/a,
 * adds the callback to the latter, then lets it finish: so the callback
 * surely runs on the pool's I/O thread. */
static void run_io_callback(cf_executor *ex, io_wait_ctx *c, const char *dir,
                            int *bfd) {
  char a[256], b[256];
  path_in(a, sizeof a, dir, "a");
  path_in(b, sizeof b, dir, "b");
  CU_ASSERT_EQUAL_FATAL(mkfifo(a, 0600), 0);
  CU_ASSERT_EQUAL_FATAL(mkfifo(b, 0600), 0);
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&c->signal), CF_OK);
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_fifo, b, strlen(b) + 1, &c->blocked),
                        CF_OK);
  cf_future *trigger;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_fifo, a, strlen(a) + 1, &trigger),
                        CF_OK);
  CU_ASSERT_EQUAL(cf_future_add_done_callback(trigger, cb_io_waits, c), CF_OK);
  int afd = fifo_release(a, 1);
  /* A safety net, not a timing check: the callback returns at once. */
  CU_ASSERT_EQUAL(cf_future_wait(c->signal, CF_SEC(600)), CF_OK);
  CU_ASSERT_STRING_EQUAL(c->thread, "cf-procpool");
  CU_ASSERT_FALSE(c->blocked_done); /* everything above came first */
  /* Now let `blocked` finish. */
  *bfd = fifo_release(b, 1);
  CU_ASSERT_EQUAL(result_u64(c->blocked), 7);
  close(afd);
  cf_future_release(trigger);
}

static void test_callback_waits_on_own_pool(void) {
  const char *dir = make_dir();
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_BREAK);
  io_wait_ctx c = {.what = 0, .self = ex};
  c.other = make_ppool(1, CF_ON_DEATH_BREAK);
  c.tp = make_pool(1);
  c.done = submit_u64(ex, task_square, 8);
  CU_ASSERT_EQUAL(result_u64(c.done), 65);
  int bfd;
  run_io_callback(ex, &c, dir, &bfd);
  for (int k = W_WAIT_FOREVER; k <= W_ERROR_TIMEOUT; k++)
    CU_ASSERT_EQUAL(c.rc[k], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc[W_SELF_DONE], CF_OK);
  CU_ASSERT_EQUAL(c.val[0], 7);
  CU_ASSERT_EQUAL(c.rc[W_OTHER_PP], CF_OK);
  CU_ASSERT_EQUAL(c.val[1], 37);
  CU_ASSERT_EQUAL(c.rc[W_THREAD_POOL], CF_OK);
  CU_ASSERT_EQUAL(c.val[2], 50);
  CU_ASSERT_EQUAL(c.rc[W_OWN_DONE], CF_OK);
  CU_ASSERT_EQUAL(c.val[3], 65);
  CU_ASSERT_EQUAL(c.rc[W_WAIT_ALL], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc[W_WAIT_ALL_TIMEOUT], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc[W_AS_COMPLETED], CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc[W_MAP_NEXT], CF_EDEADLK);
  cf_future_release(c.blocked);
  cf_future_release(c.done);
  cf_future_release(c.signal);
  cf_executor_release(c.other);
  cf_executor_release(c.tp);
  cf_executor_release(ex);
  close(bfd);
  remove_dir(dir);
}

/* cf_shutdown(wait) from the I/O thread returns (it cannot wait for
 * itself); what was running still finishes, and the pool then ends. */
static void test_callback_shutdown_wait(void) {
  const char *dir = make_dir();
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_BREAK);
  io_wait_ctx c = {.what = 1, .self = ex};
  int bfd;
  run_io_callback(ex, &c, dir, &bfd);
  CU_ASSERT_EQUAL(c.rc[0], CF_OK);
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, NULL), CF_ESHUTDOWN);
  CU_ASSERT_EQUAL(cf_shutdown(ex, true, false), CF_OK); /* joins */
  CU_ASSERT_EQUAL(cf_test_count_children(), 0);
  cf_future_release(c.blocked);
  cf_future_release(c.signal);
  cf_executor_release(ex);
  close(bfd);
  remove_dir(dir);
}

/* The last reference dropped from the I/O thread: the pool still runs
 * what it has, then frees itself (its thread and workers go). */
static void test_callback_releases_pool(void) {
  const char *dir = make_dir();
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_BREAK);
  io_wait_ctx c = {.what = 2, .self = ex};
  int bfd;
  run_io_callback(ex, &c, dir, &bfd); /* `blocked` completes after it */
  CU_ASSERT_EQUAL(c.rc[0], CF_OK);
  CU_ASSERT_TRUE(
      EVENTUALLY_LONG(cf_test_count_children() == 0 &&
                      cf_test_count_threads_named("cf-procpool") == 0));
  cf_future_release(c.blocked);
  cf_future_release(c.signal);
  close(bfd);
  remove_dir(dir);
}

/* Regression: "am I the manager?" compared pthread_t values, and glibc
 * gives a joined thread's pthread_t to the next thread it creates; that
 * thread's release of the last reference then took itself for the manager
 * and left the pool to a manager that was gone (a leak valgrind reports). */
static void *release_on_new_thread(void *ex) {
  cf_executor_release(ex);
  return NULL;
}

static void test_release_after_manager_joined(void) {
  for (int k = 0; k < 4; k++) {
    cf_executor *ex = make_ppool(1, CF_ON_DEATH_BREAK);
    cf_future *f = submit_u64(ex, task_square, 3);
    CU_ASSERT_EQUAL(result_u64(f), 10);
    cf_future_release(f);
    CU_ASSERT_EQUAL(cf_shutdown(ex, true, false), CF_OK); /* joins it */
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, release_on_new_thread, ex),
                          0);
    pthread_join(t, NULL);
  }
}

/* ---- cf_map_destroy stops a running chunk after its current input -------- */

/* A map input: its index, the index that blocks, the counting file. */
typedef struct stop_item {
  int32_t index, block_at;
  char path[120];
} stop_item;

/* The worker's channel to the parent: its only socket. */
static int own_socket(void) {
  for (int fd = 3; fd < 1024; fd++) {
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
      return fd;
  }
  return -1;
}

/* Counts itself; the input at block_at then waits until a message for its
 * worker has arrived (the STOP), without reading it, and then lasts two
 * ticks of the coarse clock more: a worker looks for a STOP once that
 * clock has ticked since its last look, so the look before the next input
 * is certain (a sleep lasts at least that long on any machine).  The
 * 2-minute poll is a safety net only: without STOP the item runs and so do
 * all after it. */
static int task_stop_item(cf_task *t, const void *in, size_t len) {
  (void)t;
  stop_item it;
  if (len != sizeof it)
    return EINVAL;
  memcpy(&it, in, sizeof it);
  count_one(it.path);
  if (it.index == it.block_at) {
    struct pollfd q = {own_socket(), POLLIN, 0};
    while (poll(&q, 1, 120000) < 0 && errno == EINTR)
      ;
    struct timespec res = {0, 0};
    clock_getres(CLOCK_MONOTONIC_COARSE, &res);
    long ms = (long)(res.tv_sec * 1000 + res.tv_nsec / 1000000) * 2 + 1;
    cf_test_sleep_ms(ms);
  }
  return 0;
}

static void test_map_destroy_stops_chunk(void) {
  cf_executor *ex = make_ppool(1, CF_ON_DEATH_BREAK);
  const char *dir = make_dir();
  enum { N = 50, K = 3 };
  stop_item in[N];
  for (int i = 0; i < N; i++) {
    in[i] = (stop_item){.index = i, .block_at = K};
    path_in(in[i].path, sizeof in[i].path, dir, "ran");
  }
  cf_map_options o;
  cf_map_options_init(&o);
  o.chunksize = N; /* one chunk, one worker */
  cf_map_iter *m;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_stop_item, in, sizeof *in, N, &o, &m), CF_OK);
  /* Input K has started (and waits for the STOP). */
  CU_ASSERT_TRUE(EVENTUALLY_LONG(file_size(in[0].path) == K + 1));
  cf_map_destroy(m);
  /* Input K finished once the STOP came; none after it ran. */
  CU_ASSERT_EQUAL(file_size(in[0].path), K + 1);
  /* The worker is unharmed and serves the next task. */
  cf_future *f = submit_u64(ex, task_square, 4);
  CU_ASSERT_EQUAL(result_u64(f), 17);
  cf_future_release(f);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.failed, 0);
  CU_ASSERT_EQUAL(st.workers, 1);
  cf_executor_release(ex);
  remove_dir(dir);
}

/* Maps destroyed at every point of their chunks' lives: a STOP that
 * crosses the result, or comes while the chunk is being sent or read, is
 * harmless (no protocol error, no lost worker). */
static void test_map_destroy_races(void) {
  cf_executor *ex = make_ppool(2, CF_ON_DEATH_BREAK);
  uint64_t in[64];
  for (uint64_t i = 0; i < 64; i++)
    in[i] = i;
  cf_map_options o;
  cf_map_options_init(&o);
  o.chunksize = 4;
  o.max_inflight = 4;
  size_t rounds = cf_test_scaled(200);
  for (size_t r = 0; r < rounds; r++) {
    cf_map_iter *m;
    CU_ASSERT_EQUAL_FATAL(
        cf_map_array(ex, task_square, in, sizeof *in, 64, &o, &m), CF_OK);
    cf_map_item it = CF_MAP_ITEM_INIT;
    for (size_t k = 0; k < r % 9; k++)
      CU_ASSERT_EQUAL(cf_map_next(m, &it), CF_OK);
    cf_map_destroy(m);
  }
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.failed, 0);
  cf_future *f = submit_u64(ex, task_square, 5);
  CU_ASSERT_EQUAL(result_u64(f), 26);
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
             CF_TEST(test_map_item_error_in_chunk),
             CF_TEST(test_map_item_words_on_death), CF_TEST(test_death_break),
             CF_TEST(test_death_restart), CF_TEST(test_max_tasks_per_child),
             CF_TEST(test_safe_with_threads), CF_TEST(test_initializer),
             CF_TEST(test_large_round_trip),
             CF_TEST(test_shutdown_and_terminate),
             CF_TEST(test_callbacks_and_waits), CF_TEST(test_malformed_message),
             CF_TEST(test_restart_kill_at_start),
             CF_TEST(test_restart_start_always_fails),
             CF_TEST(test_callback_waits_on_own_pool),
             CF_TEST(test_callback_shutdown_wait),
             CF_TEST(test_callback_releases_pool),
             CF_TEST(test_release_after_manager_joined),
             CF_TEST(test_map_destroy_stops_chunk),
             CF_TEST(test_map_destroy_races), CF_TEST(test_resources_after))
