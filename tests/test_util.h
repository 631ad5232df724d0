/*
 * Shared by the test programs: a CUnit runner with a watchdog, and small
 * tasks.  Each test program covers one area and is one CUnit suite.
 */
#ifndef CF_TEST_UTIL_H
#define CF_TEST_UTIL_H

#include <CUnit/Basic.h>
#include <cfutures.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Built with AddressSanitizer or ThreadSanitizer? */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CF_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CF_TEST_SANITIZED 1
#endif
#endif
#ifndef CF_TEST_SANITIZED
#define CF_TEST_SANITIZED 0
#endif
#if defined(__SANITIZE_THREAD__)
#define CF_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CF_TEST_TSAN 1
#endif
#endif
#ifndef CF_TEST_TSAN
#define CF_TEST_TSAN 0
#endif

typedef struct cf_test_case {
  const char *name;
  void (*fn)(void);
} cf_test_case;

/* clang-format off */
#define CF_TEST(fn) {#fn, fn}
/* clang-format on */

/* A test run never hangs CI: SIGALRM ends the program (and so fails it)
 * after CF_TEST_TIMEOUT seconds (default 900, generous for valgrind). */
static inline int cf_test_main(const char *suite, const cf_test_case *tests,
                               size_t n) {
  const char *t = getenv("CF_TEST_TIMEOUT");
  alarm(t ? (unsigned)atoi(t) : 900);
  if (CU_initialize_registry() != CUE_SUCCESS)
    return 2;
  CU_pSuite s = CU_add_suite(suite, NULL, NULL);
  for (size_t i = 0; i < n; i++)
    CU_add_test(s, tests[i].name, tests[i].fn);
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failures = CU_get_number_of_failures() +
                      CU_get_number_of_tests_failed();
  CU_cleanup_registry();
  return failures ? 1 : 0;
}

#define CF_TEST_MAIN(suite, ...)                                               \
  int main(void) {                                                             \
    static const cf_test_case cases[] = {__VA_ARGS__};                         \
    return cf_test_main(suite, cases, sizeof cases / sizeof cases[0]);         \
  }

/* Ends a fork()ed child without running the parent's atexit handlers; in a
 * coverage build with exit(), so that every module writes its gcov counts
 * (the library's are not reachable from the test's own __gcov_dump()). */
static inline void cf_test_child_exit(int code) {
#ifdef CF_COVERAGE
  exit(code);
#endif
  _exit(code);
}

/* Stress sizes shrink under slow instrumentation (CF_STRESS_SCALE=10 divides
 * counts by 10). */
static inline size_t cf_test_scaled(size_t n) {
  const char *s = getenv("CF_STRESS_SCALE");
  size_t d = s ? (size_t)atoi(s) : 1;
  return d > 1 ? (n / d ? n / d : 1) : n;
}

static inline void cf_test_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
    ;
}

static inline int64_t cf_test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Entries of a /proc folder: open descriptors, threads. */
static inline int cf_test_count_entries(const char *dir) {
  int n = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    n += e->d_name[0] != '.';
  if (d)
    closedir(d);
  return n;
}

/* Threads of this process whose name (/proc/self/task/<tid>/comm) starts
 * with prefix: a pool's own workers, whatever other threads come and go. */
static inline int cf_test_count_threads_named(const char *prefix) {
  int n = 0;
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    char path[300], comm[32] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *fp = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
    if (fp) {
      if (fgets(comm, sizeof comm, fp) &&
          strncmp(comm, prefix, strlen(prefix)) == 0)
        n++;
      fclose(fp);
    }
  }
  if (d)
    closedir(d);
  return n;
}

/* Feeds each file of tests/corpus/<name> (under $top_srcdir) to fn, which
 * checks it; returns how many files there were (-1: no such folder). */
/* Children of this process (any thread's), zombies included, counted
 * through /proc without reaping any: a waitpid(-1) here would steal a
 * process pool's workers from its manager. */
static inline int cf_test_count_children(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
    FILE *fp = fopen(path, "r");
    long pid;
    while (fp && fscanf(fp, "%ld", &pid) == 1)
      n++;
    if (fp)
      fclose(fp);
  }
  if (d)
    closedir(d);
  return n;
}

static inline int cf_test_replay_corpus(const char *name,
                                        void (*fn)(const uint8_t *, size_t)) {
  const char *src = getenv("top_srcdir");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/tests/corpus/%s", src ? src : ".", name);
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  struct dirent *e;
  int files = 0;
  static unsigned char buf[1 << 20];
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *fp = fopen(path, "rb");
    if (!fp)
      continue;
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    fn(buf, n);
    files++;
  }
  closedir(d);
  return files;
}

/* Polls cond() until it holds or ~60 s pass; returns whether it held.  The
 * bound is a watchdog, not a speed: what is awaited takes microseconds, and
 * a loaded machine running valgrind must not miss it. */
#define CF_TEST_EVENTUALLY(cond)                                               \
  ({                                                                           \
    bool ok_ = false;                                                          \
    for (int i_ = 0; i_ < 60000 && !(ok_ = (cond)); i_++)                      \
      cf_test_sleep_ms(1);                                                     \
    ok_;                                                                       \
  })

/* Waits for a start flag another thread sets, for races that want their
 * threads to start together.  Every look yields: valgrind runs one thread at
 * a time, and a thread spinning without a yield can keep the setter (still
 * inside pthread_create) from ever running.  After ~10 ms it sleeps between
 * looks, and after ~60 s it gives up: returns whether the flag was set. */
static inline bool cf_test_await_flag(atomic_int *flag) {
  int64_t t0 = cf_test_now_ms();
  while (!atomic_load(flag)) {
    int64_t waited = cf_test_now_ms() - t0;
    if (waited > 60000)
      return false;
    if (waited > 10)
      cf_test_sleep_ms(1);
    else
      sched_yield();
  }
  return true;
}

/* Calls fire(arg) after `ms` unless cf_test_deadman_stop() comes first: a
 * wait that the library wrongly never ends then ends (the deadman completes
 * what it waits for, late) and fails its test by its result, instead of
 * hanging the program until the watchdog. */
typedef struct cf_test_deadman {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop, fired;
  long ms;
  void (*fire)(void *);
  void *arg;
} cf_test_deadman;

static inline void *cf_test_deadman_main(void *p) {
  cf_test_deadman *d = p;
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += d->ms / 1000;
  until.tv_nsec += (d->ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&d->mu);
  int e = 0;
  while (!d->stop && e != ETIMEDOUT)
    e = pthread_cond_timedwait(&d->cv, &d->mu, &until);
  d->fired = !d->stop;
  pthread_mutex_unlock(&d->mu);
  if (d->fired)
    d->fire(d->arg);
  return NULL;
}

static inline void cf_test_deadman_start(cf_test_deadman *d, long ms,
                                         void (*fire)(void *), void *arg) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&d->cv, &a);
  pthread_condattr_destroy(&a);
  pthread_mutex_init(&d->mu, NULL);
  d->stop = d->fired = false;
  d->ms = ms;
  d->fire = fire;
  d->arg = arg;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&d->th, NULL, cf_test_deadman_main, d),
                        0);
}

/* Stops and joins the deadman; returns whether it fired (a failure). */
static inline bool cf_test_deadman_stop(cf_test_deadman *d) {
  pthread_mutex_lock(&d->mu);
  d->stop = true;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
  pthread_join(d->th, NULL);
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->cv);
  return d->fired;
}

/* ---- tasks --------------------------------------------------------------- */

/* in: uint64_t n; result: n * n + 1. */
static inline int task_square(cf_task *t, const void *in, size_t len) {
  uint64_t n;
  if (len != sizeof n)
    return cf_task_fail(t, EINVAL, "bad input length %zu", len);
  memcpy(&n, in, sizeof n);
  n = n * n + 1;
  return cf_task_return(t, &n, sizeof n);
}

/* Returns its input. */
static inline int task_echo(cf_task *t, const void *in, size_t len) {
  return cf_task_return(t, in, len);
}

/* in: int code; fails with that code and a message naming it. */
static inline int task_fail(cf_task *t, const void *in, size_t len) {
  int code;
  if (len != sizeof code)
    return EINVAL;
  memcpy(&code, in, sizeof code);
  return cf_task_fail(t, code, "failed with %d", code);
}

/* in: long ms; sleeps that long. */
static inline int task_sleep(cf_task *t, const void *in, size_t len) {
  long ms;
  (void)t;
  if (len != sizeof ms)
    return EINVAL;
  memcpy(&ms, in, sizeof ms);
  cf_test_sleep_ms(ms);
  return 0;
}

/* in: uint64 v; result: v + 1000. */
static inline int task_add_1000(cf_task *t, const void *in, size_t len) {
  uint64_t v;
  if (len != sizeof v)
    return EINVAL;
  memcpy(&v, in, sizeof v);
  v += 1000;
  return cf_task_return(t, &v, sizeof v);
}

static inline int task_noop(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)in;
  (void)len;
  return 0;
}

/* A gate tasks can wait on (thread pool only: the input is a pointer). */
typedef struct cf_test_gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool open;
  atomic_int entered;
} cf_test_gate;

static inline void gate_init(cf_test_gate *g) {
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->open = false;
  atomic_init(&g->entered, 0);
}

static inline void gate_open(cf_test_gate *g) {
  pthread_mutex_lock(&g->mu);
  g->open = true;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static inline void gate_destroy(cf_test_gate *g) {
  pthread_mutex_destroy(&g->mu);
  pthread_cond_destroy(&g->cv);
}

/* in: cf_test_gate *; blocks until the gate opens. */
static inline int task_gate(cf_task *t, const void *in, size_t len) {
  cf_test_gate *g;
  (void)t;
  if (len != sizeof g)
    return EINVAL;
  memcpy(&g, in, sizeof g);
  atomic_fetch_add(&g->entered, 1);
  pthread_mutex_lock(&g->mu);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
  return 0;
}

static inline void gate_open_cb(void *g) { gate_open(g); }

/* The same for tasks in worker processes, where a pointer means nothing: a
 * FIFO.  task_fifo_gate opens it for reading, which blocks until a writer
 * exists, and reads one byte; fifo_gate_open() opens it for writing (O_RDWR
 * never blocks on Linux) and puts in one byte per task it lets through.  It
 * keeps its end open until fifo_gate_destroy(), so that bytes not read yet
 * stay in the FIFO; destroy only once no task can still be waiting. */
typedef struct cf_test_fifo {
  char dir[256];
  char path[300]; /* the task's input: pass strlen(path) + 1 bytes */
  int fd;
} cf_test_fifo;

static inline void fifo_gate_init(cf_test_fifo *g) {
  const char *tmp = getenv("TMPDIR");
  snprintf(g->dir, sizeof g->dir, "%s/cf-gate-XXXXXX",
           tmp && *tmp && strlen(tmp) < 200 ? tmp : "/tmp");
  g->fd = -1;
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(g->dir));
  snprintf(g->path, sizeof g->path, "%s/fifo", g->dir);
  CU_ASSERT_EQUAL_FATAL(mkfifo(g->path, 0600), 0);
}

static inline void fifo_gate_open(cf_test_fifo *g, int tasks) {
  if (g->fd < 0)
    g->fd = open(g->path, O_RDWR | O_CLOEXEC);
  CU_ASSERT_TRUE_FATAL(g->fd >= 0);
  for (int i = 0; i < tasks; i++)
    CU_ASSERT_EQUAL(write(g->fd, "x", 1), 1);
}

static inline void fifo_gate_destroy(cf_test_fifo *g) {
  if (g->fd >= 0)
    close(g->fd);
  g->fd = -1;
  unlink(g->path);
  rmdir(g->dir);
}

/* in: a FIFO's path (NUL-terminated); passes once it gets a byte. */
static inline int task_fifo_gate(cf_task *t, const void *in, size_t len) {
  (void)t;
  if (!len || ((const char *)in)[len - 1] != '\0')
    return EINVAL;
  int fd;
  while ((fd = open(in, O_RDONLY | O_CLOEXEC)) < 0 && errno == EINTR)
    ;
  if (fd < 0)
    return errno;
  char c;
  ssize_t n;
  while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
    ;
  close(fd);
  return n == 1 ? 0 : EIO;
}

/* A done callback that submits task_noop again to ex: run on a pool's
 * manager as a future fails, it shows what a submit gets at that very
 * moment (rc: 1 until it ran). */
typedef struct resubmit {
  cf_executor *ex;
  atomic_int rc;
} resubmit;
static inline void resubmit_cb(cf_future *f, void *arg) {
  resubmit *r = arg;
  (void)f;
  atomic_store(&r->rc, cf_submit(r->ex, task_noop, NULL, 0, NULL));
}

/* A process pool of `workers` with a death policy and a task limit per
 * worker (0: none). */
static inline cf_executor *make_process_pool(int workers, cf_death_policy pol,
                                             int per_child) {
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = workers;
  o.on_worker_death = pol;
  o.max_tasks_per_child = per_child;
  cf_executor *ex = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&o, &ex), CF_OK);
  return ex;
}

/* A process pool of `workers`, the defaults otherwise. */
static inline cf_executor *cf_test_processes(int workers) {
  return make_process_pool(workers, CF_ON_DEATH_BREAK, 0);
}

static inline cf_executor *make_pool(int workers) {
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = workers;
  cf_executor *ex = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_thread_pool_create(&o, &ex), CF_OK);
  return ex;
}

static inline cf_future *submit_u64(cf_executor *ex, cf_task_fn fn,
                                    uint64_t v) {
  cf_future *f = NULL;
  CU_ASSERT_EQUAL(cf_submit(ex, fn, &v, sizeof v, &f), CF_OK);
  return f;
}

static inline cf_future *submit_ptr(cf_executor *ex, cf_task_fn fn,
                                    const void *p) {
  cf_future *f = NULL;
  CU_ASSERT_EQUAL(cf_submit(ex, fn, &p, sizeof p, &f), CF_OK);
  return f;
}

static inline uint64_t result_u64(cf_future *f) {
  const void *d = NULL;
  size_t n = 0;
  uint64_t v = 0;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, &n), CF_OK);
  CU_ASSERT_EQUAL(n, sizeof v);
  if (d && n == sizeof v)
    memcpy(&v, d, sizeof v);
  return v;
}

#endif
