/* The process pool's promises about what a worker is and inherits: the
 * environment captured at create (and setenv() on another thread while
 * workers start), stdin at end of file, no descriptor but 0-2 for what a
 * task starts, no marker in a task's children, and the words of
 * cf_last_error_message().  The hijack and hosting cases, which need other
 * programs, are tests/check_hijack.sh and tests/check_hosting.sh. */
#include "test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

static cf_executor *make_pp(int workers, int per_child) {
  cf_executor *ex = make_process_pool(workers, CF_ON_DEATH_BREAK, per_child);
  CU_ASSERT_STRING_EQUAL(cf_last_error_message(), "");
  return ex;
}

/* The task's result as a string ("" on failure, with the failure shown). */
static void result_str(cf_future *f, char *out, size_t cap) {
  const void *d = NULL;
  size_t n = 0;
  out[0] = '\0';
  int rc = cf_future_result(f, CF_FOREVER, &d, &n);
  CU_ASSERT_EQUAL(rc, CF_OK);
  if (rc != CF_OK) {
    const char *msg = NULL;
    int code = 0;
    cf_future_error(f, 0, &code, &msg);
    fprintf(stderr, "task failed: %s (%d) %s\n", cf_strerror(rc), code,
            msg ? msg : "");
    return;
  }
  if (n >= cap)
    n = cap - 1;
  memcpy(out, d, n);
  out[n] = '\0';
}

/* ---- tasks --------------------------------------------------------------- */

/* in: a variable's name; result: its value in the worker, or "(unset)". */
static int task_getenv(cf_task *t, const void *in, size_t len) {
  char name[64];
  if (len >= sizeof name)
    return EINVAL;
  memcpy(name, in, len);
  name[len] = '\0';
  const char *v = getenv(name);
  return cf_task_return(t, v ? v : "(unset)", strlen(v ? v : "(unset)"));
}

/* Reads standard input: "eof", or what it got. */
static int task_read_stdin(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  char buf[64];
  ssize_t r;
  while ((r = read(0, buf, sizeof buf)) < 0 && errno == EINTR)
    ;
  if (r < 0)
    return cf_task_fail(t, errno, "read(0): %s", strerror(errno));
  return r == 0 ? cf_task_return(t, "eof", 3)
                : cf_task_return(t, buf, (size_t)r);
}

/* The worker's open descriptors (as "0 1 2 3"), read before any other. */
static int task_fds(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  char out[256] = "";
  size_t n = 0;
  for (int fd = 0; fd < 64; fd++)
    if (fcntl(fd, F_GETFD) >= 0)
      n += (size_t)snprintf(out + n, sizeof out - n, "%s%d", n ? " " : "", fd);
  return cf_task_return(t, out, n);
}

/* A shell script: $had is the highest descriptor from 3 to 20 it was given
 * (0: none), then it writes a frame's magic and garbage to each of them (in
 * a subshell: a bad descriptor ends only that). */
#define CF_FDS_SCRIPT                                                          \
  "had=0; for fd in 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do "       \
  "if [ -e /proc/$$/fd/$fd ]; then had=$fd; fi; done; "                        \
  "for fd in 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do "              \
  "(printf 'CFW1garbage-garbage' >&$fd) 2>/dev/null; done; "

/* Runs a shell that writes junk to every descriptor from 3 to 20 and then
 * names the ones it had (exit status 0: none); the result is the shell's
 * wait status. */
static int task_child_writes(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  int st = system(CF_FDS_SCRIPT
                  "[ -z \"$CF__PROCESS_WORKER_FD\" ] || exit 99; exit $had");
  int32_t s = st;
  return cf_task_return(t, &s, sizeof s);
}

/* The same with fork + exec: the exec'd program writes a frame header and
 * garbage to every descriptor from 3 to 20 (before the exec the child still
 * is the worker, and shares its channel as any fork does). */
static int task_fork_writes(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", CF_FDS_SCRIPT "exit $had", (char *)NULL);
    _exit(98);
  }
  int st = -1;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  int32_t s = st;
  return cf_task_return(t, &s, sizeof s);
}

/* ---- tests --------------------------------------------------------------- */

/* What a worker sees is the environment at create, copied on this thread. */
static void test_env_captured_at_create(void) {
  setenv("CF_TEST_CAPTURED", "at-create", 1);
  unsetenv("CF_TEST_LATER");
  cf_executor *ex = make_pp(1, 1);
  setenv("CF_TEST_CAPTURED", "changed-later", 1);
  setenv("CF_TEST_LATER", "set-later", 1);
  char buf[64];
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_getenv, "CF_TEST_CAPTURED", 16, &f),
                        CF_OK);
  result_str(f, buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "at-create");
  cf_future_release(f);
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_getenv, "CF_TEST_LATER", 13, &f),
                        CF_OK);
  result_str(f, buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "(unset)");
  cf_future_release(f);
  /* The marker never reaches the worker's own environment. */
  CU_ASSERT_EQUAL_FATAL(
      cf_submit(ex, task_getenv, "CF__PROCESS_WORKER_FD", 21, &f), CF_OK);
  result_str(f, buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "(unset)");
  cf_future_release(f);
  cf_executor_release(ex);
  unsetenv("CF_TEST_CAPTURED");
  unsetenv("CF_TEST_LATER");
}

static atomic_bool g_stop;
static void *env_churn(void *arg) {
  (void)arg;
  char name[32], val[64];
  for (unsigned i = 0; !atomic_load(&g_stop); i++) {
    snprintf(name, sizeof name, "CF_CHURN_%u", i % 50);
    snprintf(val, sizeof val, "%u-%0*u", i, (int)(i % 40), i);
    setenv(name, val, 1);
    if (i % 3 == 0)
      unsetenv(name);
  }
  for (unsigned i = 0; i < 50; i++) {
    snprintf(name, sizeof name, "CF_CHURN_%u", i);
    unsetenv(name);
  }
  return NULL;
}

/* setenv()/unsetenv() in a loop on another thread while workers start:
 * every task gets its worker (max_tasks_per_child = 1: one start each). */
static void test_setenv_while_workers_start(void) {
  cf_executor *ex = make_pp(2, 1);
  pthread_t th;
  atomic_store(&g_stop, false);
  CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, env_churn, NULL), 0);
  size_t n = cf_test_scaled(2000), ok = 0;
  for (size_t i = 0; i < n; i += 50) {
    cf_future *fs[50];
    size_t k = n - i < 50 ? n - i : 50;
    for (size_t j = 0; j < k; j++)
      fs[j] = submit_u64(ex, task_square, i + j);
    for (size_t j = 0; j < k; j++) {
      ok += fs[j] && result_u64(fs[j]) == (i + j) * (i + j) + 1;
      cf_future_release(fs[j]);
    }
  }
  atomic_store(&g_stop, true);
  pthread_join(th, NULL);
  CU_ASSERT_EQUAL(ok, n);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.completed, n);
  cf_executor_release(ex);
}

/* A task reading stdin sees end of file, even when the parent's stdin is a
 * pipe full of data. */
static void test_stdin_is_dev_null(void) {
  int pp[2];
  CU_ASSERT_EQUAL_FATAL(pipe(pp), 0);
  CU_ASSERT_EQUAL(write(pp[1], "parent-data\n", 12), 12);
  int saved = dup(0);
  CU_ASSERT_EQUAL_FATAL(dup2(pp[0], 0), 0);
  cf_executor *ex = make_pp(1, 0);
  char buf[64];
  for (int i = 0; i < 2; i++) {
    cf_future *f;
    CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_read_stdin, NULL, 0, &f), CF_OK);
    result_str(f, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "eof");
    cf_future_release(f);
  }
  cf_executor_release(ex);
  /* The parent's data is still there: no worker took it. */
  char got[13] = {0};
  CU_ASSERT_EQUAL(read(0, got, 12), 12);
  CU_ASSERT_STRING_EQUAL(got, "parent-data\n");
  dup2(saved, 0);
  close(saved);
  close(pp[0]);
  close(pp[1]);
}

/* A worker holds 0-2 and its channel (3), nothing of the parent's, even
 * with descriptors open in the parent without close-on-exec. */
static void test_worker_descriptors(void) {
  int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
  CU_ASSERT_TRUE_FATAL(leak >= 0);
  cf_executor *ex = make_pp(1, 0);
  cf_future *f;
  char buf[256];
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_fds, NULL, 0, &f), CF_OK);
  result_str(f, buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "0 1 2 3");
  cf_future_release(f);
  cf_executor_release(ex);
  close(leak);
}

/* Children of a task inherit neither the channel nor the marker; their
 * writes to 3..20 leave the pool unharmed. */
static void test_task_children_cannot_reach_channel(void) {
  cf_executor *ex = make_pp(2, 0);
  cf_task_fn fns[2] = {task_child_writes, task_fork_writes};
  for (int round = 0; round < 3; round++)
    for (int k = 0; k < 2; k++) {
      cf_future *f;
      CU_ASSERT_EQUAL_FATAL(cf_submit(ex, fns[k], NULL, 0, &f), CF_OK);
      const void *d = NULL;
      size_t n = 0;
      CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, &n), CF_OK);
      int32_t st = -1;
      if (d && n == sizeof st)
        memcpy(&st, d, sizeof st);
      CU_ASSERT_TRUE(WIFEXITED(st));
      CU_ASSERT_EQUAL(WEXITSTATUS(st), 0); /* no descriptor >= 3 was open */
      cf_future_release(f);
    }
  /* The next tasks succeed on the same workers. */
  cf_future *fs[20];
  for (uint64_t i = 0; i < 20; i++)
    fs[i] = submit_u64(ex, task_square, i);
  for (uint64_t i = 0; i < 20; i++) {
    CU_ASSERT_EQUAL(result_u64(fs[i]), i * i + 1);
    cf_future_release(fs[i]);
  }
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.failed, 0);
  cf_executor_release(ex);
}

/* The words of a refused create; "" after a successful one. */
static void test_last_error_message(void) {
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = -1;
  cf_executor *ex = NULL;
  CU_ASSERT_EQUAL(cf_process_pool_create(&o, &ex), CF_EINVAL);
  const char *m = cf_last_error_message();
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "max_workers"));
  /* It stays until the next create on this thread ... */
  CU_ASSERT_PTR_NOT_NULL(strstr(cf_last_error_message(), "max_workers"));
  CU_ASSERT_EQUAL(cf_process_pool_create(NULL, NULL), CF_EINVAL);
  CU_ASSERT_TRUE(strlen(cf_last_error_message()) > 0);
  /* ... which clears it when it succeeds. */
  ex = make_pp(1, 0);
  CU_ASSERT_STRING_EQUAL(cf_last_error_message(), "");
  cf_executor_release(ex);
}

/* An exec that fails (here: an environment string longer than the kernel
 * takes, E2BIG) is a clear error, not a hang nor a silent retry: the queued
 * futures fail with CF_EAGAIN and words naming execveat and the cause.
 * (Where vfork() is a fork, under TSan and valgrind, the failure can only
 * show as the new worker's exit status: 127, or valgrind's own when its
 * execve fails, since it cannot recover from that.) */
static void test_exec_failure_is_reported(void) {
  size_t n = 200 * 1024; /* > MAX_ARG_STRLEN (128 KiB) */
  char *huge = malloc(n + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
  memset(huge, 'x', n);
  huge[n] = '\0';
  setenv("CF_TEST_HUGE", huge, 1);
  cf_executor *ex = make_pp(1, 0);
  unsetenv("CF_TEST_HUGE"); /* captured already */
  free(huge);
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_noop, NULL, 0, &f), CF_OK);
  int code = 0;
  const char *msg = NULL;
  int rc = cf_future_error(f, CF_FOREVER, &code, &msg);
  CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
  if (rc == CF_EAGAIN) {
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "execveat"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, strerror(E2BIG)));
  } else {
    CU_ASSERT_EQUAL(rc, CF_EBROKEN);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "exited with status"));
  }
  cf_future_release(f);
  cf_executor_release(ex);
}

/* In the worker: how many signals are blocked, plus how many of those the
 * test changed in the parent are not at their default.  (Not every signal:
 * a sanitizer's runtime installs its own SIGSEGV and SIGBUS handlers in
 * every process it starts.) */
static int task_signal_state(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  int32_t odd = 0;
  sigset_t blocked;
  sigprocmask(SIG_SETMASK, NULL, &blocked);
  for (int sig = 1; sig < NSIG; sig++)
    odd += sigismember(&blocked, sig) == 1;
  const int changed[] = {SIGUSR1, SIGPIPE, SIGUSR2, SIGTERM};
  for (size_t i = 0; i < sizeof changed / sizeof changed[0]; i++) {
    struct sigaction sa;
    odd += sigaction(changed[i], NULL, &sa) != 0 || sa.sa_handler != SIG_DFL;
  }
  return cf_task_return(t, &odd, sizeof odd);
}

static void on_usr2(int sig) { (void)sig; }

/* A worker starts with every signal at its default and none blocked, even
 * when the parent ignores some, catches some and blocks some. */
static void test_worker_signals_default(void) {
  struct sigaction ign = {.sa_handler = SIG_IGN}, h = {.sa_handler = on_usr2};
  struct sigaction o1, o2, o3;
  sigaction(SIGUSR1, &ign, &o1);
  sigaction(SIGPIPE, &ign, &o2);
  sigaction(SIGUSR2, &h, &o3);
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  cf_executor *ex = make_pp(1, 0);
  cf_future *f;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_signal_state, NULL, 0, &f), CF_OK);
  const void *d = NULL;
  size_t n = 0;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, &n), CF_OK);
  int32_t odd = -1;
  if (d && n == sizeof odd)
    memcpy(&odd, d, sizeof odd);
  CU_ASSERT_EQUAL(odd, 0);
  cf_future_release(f);
  cf_executor_release(ex);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  sigaction(SIGUSR1, &o1, NULL);
  sigaction(SIGPIPE, &o2, NULL);
  sigaction(SIGUSR2, &o3, NULL);
}

CF_TEST_MAIN("pp_trust", CF_TEST(test_env_captured_at_create),
             CF_TEST(test_setenv_while_workers_start),
             CF_TEST(test_stdin_is_dev_null), CF_TEST(test_worker_descriptors),
             CF_TEST(test_task_children_cannot_reach_channel),
             CF_TEST(test_last_error_message),
             CF_TEST(test_exec_failure_is_reported),
             CF_TEST(test_worker_signals_default))
