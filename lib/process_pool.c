/*
 * The process-pool backend.
 *
 * Data path: cf_submit() -> cf__pp_submit() queues the future and pokes the
 * pool's manager thread (eventfd) -> the manager (cf__pp_manager) hands it to
 * an idle worker process as a TASK or CHUNK frame -> the worker runs it and
 * answers RESULT / CHUNKRESULT -> the manager completes the future, so done
 * callbacks run on the manager thread.  cf_map_destroy() stops a
 * running chunk (cf__pp_request_stop): the manager sends STOP, and the worker,
 * which looks at its socket between inputs (at most once per clock tick),
 * skips the rest.
 *
 * Under CF_ON_DEATH_RESTART a worker that dies before READY is started
 * again after a back-off that the manager's poll timeout measures (it never
 * sleeps); CF__PP_START_TRIES failures in a row break the pool.
 *
 * Workers are never forked from the caller (unsafe with threads, CPython
 * gh-90622): the manager starts the program's own image again, from the
 * descriptor of /proc/self/exe opened at create (cf__pp_spawn: vfork, then
 * execveat), with CF__PROCESS_WORKER_FD set to "3:<secret>".  The
 * library's constructor (worker.c) sees it before main() and becomes a
 * worker only if every check proves a pool of its parent started it (see
 * cf__worker_accept); otherwise main() runs as if nothing happened.  Task
 * functions travel as module name + offset (ipc.c), so they resolve at the
 * worker's load address; INIT carries the identity (build-id) of every
 * module the parent had loaded at create, and a module the worker loaded
 * from a different file is never called (its tasks fail with CF_ETASK).
 *
 * A worker's death is seen as EOF on its socket or its pidfd becoming
 * readable (no SIGCHLD handler: the application keeps its signals), and the
 * manager reaps exactly that child with waitpid(pid).
 */
#include "internal.h"
#include "alloc.h"
#include "ipc.h"
#include "process.h"
#include "remote.h"

#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

/* Under CF_ON_DEATH_RESTART, a worker that dies before it is ready is
 * started again after a back-off (10 ms, doubling, at most 1 s); after
 * CF__PP_START_TRIES failed starts in a row, with no successful start in
 * between, the pool breaks (cfutures.h, cf_death_policy). */
#define CF__PP_START_TRIES 6
#define CF__PP_RETRY_NS ((int64_t)10 * 1000000)
#define CF__PP_RETRY_MAX_NS ((int64_t)1000 * 1000000)

typedef struct cf__pworker {
  cf__rworker rw; /* state, task, stop requests (remote.h) */
  pid_t pid;
  int fd, pidfd;
  int ntasks;
} cf__pworker;

typedef struct cf__ppool {
  cf__rpool rp; /* the queue, flags, counters, manager (remote.h) */
  int term_sig; /* under rp.mu */
  int evfd;
  /* manager thread only */
  cf__pworker *w;
  struct pollfd *pf; /* 2 per worker + the eventfd, allocated up front so */
  int *who;          /* the manager itself never fails to allocate them */
  bool term_sent;
  uint64_t next_id;
  int start_failures; /* workers in a row that died before READY */
  int64_t retry_at;   /* RESTART back-off: no new worker before this */
  cf__fncache fns;    /* the functions sent last */
  /* options */
  cf_process_pool_options o;
  void *initarg;
  cf__fnref initref;
  char exe[PATH_MAX]; /* the program's path, as the workers' argv[0] */
  /* captured at create, on the calling thread (the manager never reads
   * environ nor opens the program by path) */
  int exefd, nullfd; /* /proc/self/exe and /dev/null, both >= 4 */
  char **envp;       /* the workers' environment, one allocation */
  unsigned char secret[CF__SECRET_LEN];
  cf__modules mods;       /* the modules loaded at create; .changed: manager */
  unsigned char *modwire; /* their wire form, INIT's prefix */
  size_t modwire_len;
  size_t nchanged; /* manager only: modules some worker saw differ */
  char why[400];   /* manager only: why the last task or start failed */
} cf__ppool;

static void cf__pp_free(cf__ppool *p);

/* The manager polls its eventfd with the workers' sockets. */
static void cf__pp_poke(cf__rpool *rp) {
  cf__ppool *p = (cf__ppool *)rp;
  uint64_t one = 1;
  while (write(p->evfd, &one, sizeof one) < 0 && errno == EINTR)
    ;
}

/* ---- workers: start, stop, death ----------------------------------------- */

/* A module some worker loaded from another file than the parent did:
 * CF_EINVAL with p->why saying so (a task there would run other code). */
/* Would a worker run this very function?  Only if its module (index k of
 * the modules listed at create, -1: none) was loaded with the program, as
 * the worker loads it, and is the same build there. */
static int cf__pp_module_check(cf__ppool *p, long k) {
  if (k < 0 || !p->mods.m[k].startup) {
    snprintf(p->why, sizeof p->why,
             "the task function is in %.200s, loaded with dlopen()%s: worker "
             "processes load only the program and the libraries it links; "
             "the task was not run",
             k < 0 ? "a module" : p->mods.m[k].name,
             k < 0 ? " after the process pool was created" : "");
    return CF_EINVAL;
  }
  const cf__module *m = &p->mods.m[k];
  if (!m->changed)
    return CF_OK;
  snprintf(p->why, sizeof p->why,
           "the binary changed since the process pool was created: the "
           "task's module %.200s is not the build the parent loaded (replaced "
           "on disk, or missing in the worker); the task was not run",
           m->name[0] ? m->name : p->exe);
  return CF_EINVAL;
}

static int cf__pp_fnref(cf__ppool *p, cf_task_fn fn, cf__fnref *out) {
  long k;
  p->why[0] = '\0';
  int rc = cf__fncache_get(&p->fns, &p->mods, (uintptr_t)fn, &k, out);
  int mc = cf__pp_module_check(p, k);
  return mc != CF_OK ? mc : rc;
}

/* The workers' environment, copied from environ on the thread that creates
 * the pool (one allocation: the array, then the strings), without any
 * marker inherited from elsewhere, plus our marker: "3:" and the secret in
 * hex.  The manager thread never reads environ: the application may call
 * setenv() on its own threads meanwhile. */
static char **cf__pp_env_capture(const unsigned char *secret) {
  static const char pre[] = CF__PP_ENV "=";
  size_t n = 0, bytes = 0;
  for (char **e = environ; e && *e; e++) {
    if (strncmp(*e, pre, sizeof pre - 1) == 0)
      continue;
    n++;
    bytes += strlen(*e) + 1;
  }
  size_t mark = sizeof pre - 1 + 2 + 2 * CF__SECRET_LEN + 1;
  char **env = cf__malloc((n + 2) * sizeof *env + bytes + mark);
  if (!env)
    return NULL;
  char *s = (char *)(env + n + 2);
  size_t k = 0, left = bytes;
  /* Bounded by the first pass's counts even if another thread broke the
   * rule and changed environ meanwhile. */
  for (char **e = environ; e && *e && k < n; e++) {
    if (strncmp(*e, pre, sizeof pre - 1) == 0)
      continue;
    size_t l = strlen(*e) + 1;
    if (l > left)
      break;
    left -= l;
    memcpy(s, *e, l);
    env[k++] = s;
    s += l;
  }
  env[k++] = s;
  memcpy(s, pre, sizeof pre - 1);
  s += sizeof pre - 1;
  *s++ = '0' + CF__PP_FD;
  *s++ = ':';
  for (size_t i = 0; i < CF__SECRET_LEN; i++) {
    *s++ = "0123456789abcdef"[secret[i] >> 4];
    *s++ = "0123456789abcdef"[secret[i] & 15];
  }
  *s = '\0';
  env[k] = NULL;
  return env;
}

/* fd moved to a number >= 4 (so that the child's dup3() onto 0 and 3 cannot
 * clobber it), close-on-exec.  Returns the new fd, or -1 (fd closed). */
static int cf__fd_high(int fd) {
  if (fd < 0 || fd >= 4)
    return fd;
  int h = fcntl(fd, F_DUPFD_CLOEXEC, 4);
  close(fd);
  return h;
}

typedef struct cf__spawn_args {
  int sock, nullfd, exefd, errfd;
  int maxfd; /* for the close() loop of kernels without close_range() */
  pid_t ppid;
  char **argv, **envp;
} cf__spawn_args;

#if defined(__clang__) || __GNUC__ >= 8
#define CF__NO_SANITIZE                                                        \
  __attribute__((no_sanitize("address", "thread", "undefined")))
#else
#define CF__NO_SANITIZE
#endif

/* The child between vfork() and exec: it shares the parent's memory, so it
 * makes raw system calls only (async-signal-safe, and out of reach of
 * sanitizer interceptors that would update the parent's state), and
 * reports a failure as its errno on errfd, then exit status 127. */
CF__NO_SANITIZE __attribute__((noinline, noreturn)) static void
cf__spawn_child(const cf__spawn_args *a) {
  /* Every disposition back to the default while every signal is still
   * blocked (the manager blocks them all): no handler of the parent can run
   * on the shared memory, nothing ignored is inherited. */
  /* A kernel struct sigaction of zeros, whatever the architecture's field
   * order: SIG_DFL, no flags, an empty mask. */
  unsigned long dfl[16] = {0};
  for (long sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      syscall(SYS_rt_sigaction, sig, dfl, NULL, (NSIG - 1) / 8);
  int e;
  if (syscall(SYS_dup3, a->sock, CF__PP_FD, 0) < 0 ||
      syscall(SYS_dup3, a->nullfd, 0, 0) < 0)
    goto fail;
  /* Nothing else crosses the exec: 4 and up become close-on-exec (the
   * program's descriptor and errfd must stay open until the exec). */
  if (syscall(SYS_close_range, 4, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
    for (int fd = 4; fd < a->maxfd; fd++)
      if (fd != a->exefd && fd != a->errfd)
        syscall(SYS_close, fd);
  /* Die with the parent, and not run main() if it died already. */
  syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (syscall(SYS_getppid) != a->ppid)
    syscall(SYS_exit_group, 1);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, dfl, NULL, (NSIG - 1) / 8);
  syscall(SYS_execveat, a->exefd, "", a->argv, a->envp, AT_EMPTY_PATH);
  if (errno == ENOSYS) { /* no execveat (or a tool that does not know it) */
    char path[32] = "/proc/self/fd/", *d = path + 14;
    char digits[12];
    int k = 0;
    for (unsigned v = (unsigned)a->exefd; k == 0 || v; v /= 10)
      digits[k++] = (char)('0' + v % 10);
    while (k)
      *d++ = digits[--k];
    *d = '\0';
    syscall(SYS_execve, path, a->argv, a->envp);
  }
fail:
  e = errno;
  syscall(SYS_write, a->errfd, &e, sizeof e);
  syscall(SYS_exit_group, 127);
  for (;;)
    ;
}

static int cf__pp_errno_status(int e) {
  return e == ENOMEM                                 ? CF_ENOMEM
         : e == EAGAIN || e == EMFILE || e == ENFILE ? CF_EAGAIN
                                                     : CF_ESYS;
}

/* The worker's socket pair (sv[1], its end, moved above the low descriptor
 * numbers) and a close-on-exec pipe on which a failed exec reports its
 * errno.  Returns CF_OK, or a status with p->why set and nothing open. */
static int cf__pp_spawn_fds(cf__ppool *p, int sv[2], int ep[2]) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    int e = errno;
    snprintf(p->why, sizeof p->why, "socketpair: %s", strerror(e));
    return cf__pp_errno_status(e);
  }
  sv[1] = cf__fd_high(sv[1]);
  if (pipe2(ep, O_CLOEXEC | O_NONBLOCK) != 0) {
    ep[0] = ep[1] = -1;
  } else {
    ep[1] = cf__fd_high(ep[1]);
  }
  if (sv[1] < 0 || ep[1] < 0) {
    int e = errno;
    close(sv[0]);
    if (sv[1] >= 0)
      close(sv[1]);
    if (ep[0] >= 0)
      close(ep[0]);
    if (ep[1] >= 0)
      close(ep[1]);
    snprintf(p->why, sizeof p->why, "descriptors: %s", strerror(e));
    return cf__pp_errno_status(e);
  }
  return CF_OK;
}

/* Puts HELLO in the socket, then vfork()s and execs the worker on sv[1].
 * Closes the child's ends and the pipe.  Returns the pid, or -1 with
 * p->why set and *err the errno (sv[0] closed too then). */
static pid_t cf__pp_launch(cf__ppool *p, int sv[2], int ep[2], int *err) {
  /* The HELLO waits in the socket before the worker exists: its
   * constructor only peeks, it never blocks on a descriptor. */
  unsigned char hello[CF__HELLO_SIZE];
  cf__hello_put(p->secret, hello);
  ssize_t sent;
  while ((sent = send(sv[0], hello, sizeof hello, MSG_NOSIGNAL)) < 0 &&
         errno == EINTR)
    ;
  struct rlimit rl = {1024, 1024};
  getrlimit(RLIMIT_NOFILE, &rl);
  char *argv[] = {p->exe, NULL};
  cf__spawn_args a = {.sock = sv[1],
                      .nullfd = p->nullfd,
                      .exefd = p->exefd,
                      .errfd = ep[1],
                      .maxfd = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur,
                      .ppid = getpid(),
                      .argv = argv,
                      .envp = p->envp};
  pid_t pid = -2;
  if (sent == (ssize_t)sizeof hello)
    pid = vfork();
  if (pid == 0)
    cf__spawn_child(&a);
  int e = pid == -2 ? EIO : errno;
  close(sv[1]);
  close(ep[1]);
  int child_errno = 0;
  /* With a real vfork() the child has exec'd or exited by now; where
   * vfork() is fork() (TSan, valgrind) a late failure shows up as exit
   * status 127 instead. */
  bool failed = pid > 0 && read(ep[0], &child_errno, sizeof child_errno) ==
                               (ssize_t)sizeof child_errno;
  close(ep[0]);
  if (pid > 0 && !failed)
    return pid;
  if (failed) {
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
    e = child_errno;
  }
  close(sv[0]);
  snprintf(p->why, sizeof p->why, "%s of %.200s failed: %s",
           failed ? "execveat" : "vfork", p->exe, strerror(e));
  *err = e;
  return -1;
}

/* Starts w: a socket pair, HELLO written into it, then vfork + execveat of
 * the program's descriptor, and INIT sent.  Returns CF_OK, or a status with
 * p->why. */
static int cf__pp_spawn(cf__ppool *p, cf__pworker *w) {
  int sv[2], ep[2];
  p->why[0] = '\0';
  if (getuid() != geteuid() || getgid() != getegid()) {
    snprintf(p->why, sizeof p->why,
             "the program's effective user or group id differs from the real "
             "one: a worker would refuse to serve");
    return CF_ENOTSUP;
  }
  int rc = cf__pp_spawn_fds(p, sv, ep);
  if (rc != CF_OK)
    return rc;
  int e = 0;
  pid_t pid = cf__pp_launch(p, sv, ep, &e);
  if (pid < 0)
    return cf__pp_errno_status(e);
  w->pid = pid;
  w->fd = sv[0];
  w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  w->rw.task = NULL;
  w->ntasks = 0;
  cf__rp_set_state(&p->rp, &w->rw, CF__RW_STARTING);
  /* INIT goes first; its answer (READY / INITFAIL) comes back through the
   * manager's poll.  A failed send shows up there as the worker's death. */
  cf__ipc_send_init(CF__FD_CHAN(w->fd), p->modwire, p->modwire_len, &p->initref,
                    p->initarg, p->o.initarg_len);
  return CF_OK;
}

/* Reaps w (killing it first if it still runs) and returns its wait status. */
static int cf__pp_reap(cf__ppool *p, cf__pworker *w, bool kill_first) {
  int st = -1;
  if (kill_first)
    kill(w->pid, SIGKILL);
  while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
    ;
  close(w->fd);
  if (w->pidfd >= 0)
    close(w->pidfd);
  w->fd = w->pidfd = -1;
  cf__rp_set_state(&p->rp, &w->rw, CF__RW_FREE);
  return st;
}

static char *cf__pp_describe(int st) {
  char *msg = NULL;
  int r;
  if (st != -1 && WIFSIGNALED(st))
    r = cf__asprintf(&msg, "worker killed by signal %d (%s)", WTERMSIG(st),
                     strsignal(WTERMSIG(st)));
  else if (st != -1 && WIFEXITED(st))
    r = cf__asprintf(&msg, "worker exited with status %d", WEXITSTATUS(st));
  else
    r = cf__asprintf(&msg, "worker died");
  return r < 0 ? NULL : msg;
}

/* The pool cannot go on: fail everything, kill every worker. */
static void cf__pp_break(cf__ppool *p, int code, const char *why) {
  pthread_mutex_lock(&p->rp.mu);
  bool was = p->rp.broken;
  p->rp.broken = true;
  cf_future *l = cf__rp_steal_locked(&p->rp);
  pthread_mutex_unlock(&p->rp.mu);
  if (was)
    return;
  cf__rp_fail_list(l, CF_EBROKEN, code, why);
  for (int i = 0; i < p->rp.base.max_workers; i++) {
    cf__pworker *w = &p->w[i];
    if (w->rw.state == CF__RW_FREE)
      continue;
    cf_future *f = w->rw.task;
    w->rw.task = NULL;
    cf__pp_reap(p, w, true);
    if (f) {
      cf__rp_count(&p->rp, &p->rp.failed); /* before waiters can look */
      cf__future_fail(f, CF_EBROKEN, code, why ? cf__strdup(why) : NULL);
      cf_future_release(f);
    }
  }
}

/* A worker died before READY (st: its wait status, msg: how; freed here).
 * RESTART tries again after a back-off, up to CF__PP_START_TRIES starts in
 * a row; otherwise the pool breaks. */
static void cf__pp_start_died(cf__ppool *p, int st, char *msg) {
  if (p->o.on_worker_death == CF_ON_DEATH_RESTART) {
    pthread_mutex_lock(&p->rp.mu);
    bool terminated = p->term_sig != 0;
    pthread_mutex_unlock(&p->rp.mu);
    if (terminated) { /* killed on purpose */
      free(msg);
      return;
    }
    if (++p->start_failures < CF__PP_START_TRIES) {
      /* Try again after a back-off; the manager's poll wakes for it
       * (cf__pp_dispatch). */
      int64_t wait = CF__PP_RETRY_MAX_NS;
      if (p->start_failures - 1 < 7)
        wait = CF__PP_RETRY_NS << (p->start_failures - 1);
      if (wait > CF__PP_RETRY_MAX_NS)
        wait = CF__PP_RETRY_MAX_NS;
      p->retry_at = cf__now_ns() + wait;
      free(msg);
      return;
    }
  }
  char why[240];
  if (p->o.on_worker_death == CF_ON_DEATH_RESTART)
    snprintf(why, sizeof why,
             "the pool is broken: %d worker starts in a row failed (each "
             "died before it was ready); the last: %s",
             p->start_failures, msg ? msg : "died");
  else
    snprintf(why, sizeof why, "a worker failed to start: %s",
             msg ? msg : "died");
  free(msg);
  cf__pp_break(p, st, why);
}

/* w's process is gone, or must go: its socket closed or failed, its pidfd
 * fired, or it broke the protocol (proto_error: the words; status: what its
 * task fails with). */
static void cf__pp_death(cf__ppool *p, cf__pworker *w, int status,
                         const char *proto_error) {
  int prev = w->rw.state;
  cf_future *f = w->rw.task;
  w->rw.task = NULL;
  int st = cf__pp_reap(p, w, true);
  if (prev == CF__RW_EXITING)
    return; /* retired on purpose */
  char *msg = proto_error ? cf__strdup(proto_error) : cf__pp_describe(st);
  if (prev == CF__RW_STARTING) {
    cf__pp_start_died(p, st, msg);
    return;
  }
  pthread_mutex_lock(&p->rp.mu);
  bool brk = f && status == CF_EWORKERDIED && !p->term_sig &&
             p->o.on_worker_death == CF_ON_DEATH_BREAK;
  pthread_mutex_unlock(&p->rp.mu);
  /* Broken before the dead task's future says why: whoever sees that
   * failure and submits again gets CF_EBROKEN, not a future that fails. */
  if (brk) {
    char why[200];
    snprintf(why, sizeof why, "the pool is broken: %s", msg ? msg : "");
    cf__pp_break(p, st, why);
  }
  if (f) {
    cf__rp_count(&p->rp, &p->rp.failed); /* before waiters can look */
    cf__future_fail(f, status, status == CF_EWORKERDIED ? st : 0,
                    msg ? cf__strdup(msg) : NULL);
    cf_future_release(f);
  }
  free(msg);
}

/* ---- sending tasks ------------------------------------------------------- */

/* A chunk goes as one message, CHUNK. */
static int cf__pp_send_chunk(cf__ppool *p, cf__pworker *w, uint64_t id,
                             cf__batch *c) {
  cf__fnref ref;
  if (cf__pp_fnref(p, c->fn, &ref) != CF_OK)
    return CF_EINVAL;
  return cf__ipc_send_chunk(CF__FD_CHAN(w->fd), id, &ref, c);
}

/* Hands a started future to its worker (BUSY with it already). */
static void cf__pp_send(cf__ppool *p, cf__pworker *w, cf_future *f) {
  uint64_t id = w->rw.task_id = ++p->next_id;
  cf__batch *c = cf__future_batch(f);
  int rc;
  if (c) {
    rc = cf__pp_send_chunk(p, w, id, c);
  } else {
    cf__fnref ref;
    rc = cf__pp_fnref(p, f->fn, &ref);
    if (rc == CF_OK)
      rc = cf__ipc_send_task(CF__FD_CHAN(w->fd), id, &ref, cf__buf_data(&f->in),
                             cf__buf_len(&f->in));
  }
  if (rc == CF_EINVAL || rc == CF_ENOMEM) {
    /* Nothing was sent: fail the task, the worker stays idle. */
    w->rw.task = NULL;
    cf__rp_set_state(&p->rp, &w->rw, CF__RW_IDLE);
    cf__rp_count(&p->rp, &p->rp.failed);
    cf__future_fail(f, rc == CF_EINVAL ? CF_ETASK : CF_ENOMEM, rc,
                    cf__strdup(rc != CF_EINVAL ? "out of memory"
                               : p->why[0]     ? p->why
                                               : "the task function is not in "
                                                 "a module a worker process "
                                                 "can load"));
    cf_future_release(f);
  } else if (rc != CF_OK) {
    cf__pp_death(p, w, CF_EWORKERDIED, NULL); /* the worker is gone */
  }
}

/* ---- receiving results --------------------------------------------------- */

/* Reads one frame from w and acts on it. */
/* READY: the worker is up.  Its payload lists the modules it loaded from
 * other files than the parent did: their tasks are refused from now on
 * (cf__pp_module_check). */
static void cf__pp_on_ready(cf__ppool *p, cf__pworker *w, const cf__frame *fr) {
  unsigned char *bad;
  int rc = cf__ipc_read_payload(w->fd, (size_t)fr->len, &bad);
  if (rc == CF_OK)
    rc = cf__ipc_decode_ready(bad, (size_t)fr->len, p->mods.n);
  if (rc != CF_OK) {
    free(bad);
    cf__pp_death(p, w, rc == CF_ENOMEM ? CF_ENOMEM : CF_EPROTO,
                 rc == CF_ENOMEM ? "out of memory for a worker's READY"
                                 : "malformed message from worker");
    return;
  }
  for (size_t i = 0; i < fr->len / 4; i++) {
    uint32_t m = cf__ipc_ready_index(bad, i);
    if (!p->mods.m[m].changed) {
      p->mods.m[m].changed = true;
      p->nchanged++;
    }
  }
  free(bad);
  p->start_failures = 0; /* a good start: RESTART's retries begin anew */
  cf__rp_set_state(&p->rp, &w->rw, CF__RW_IDLE);
}

/* INITFAIL: the initializer failed, or was not run because its module
 * changed on disk.  Either breaks the pool. */
static void cf__pp_on_initfail(cf__ppool *p, cf__pworker *w,
                               const cf__frame *fr) {
  unsigned char buf[CF__INITFAIL_MAX]; /* cf__pp_receive checked len */
  int32_t code;
  uint32_t mod;
  if (cf__ipc_read(w->fd, buf, (size_t)fr->len) != CF_OK) {
    /* Gone in the middle of its answer: a death at start-up, not an
     * initializer that failed with a code it never finished sending. */
    cf__pp_death(p, w, CF_EWORKERDIED, NULL);
    return;
  }
  if (cf__ipc_decode_initfail(buf, (size_t)fr->len, p->mods.n, &code, &mod) !=
      CF_OK) {
    cf__pp_death(p, w, CF_EPROTO, "malformed message from worker");
    return;
  }
  char why[480];
  if (mod < p->mods.n)
    snprintf(why, sizeof why,
             "the binary changed since the process pool was created: the "
             "initializer's module %.250s is not the build the parent loaded; "
             "the initializer was not run",
             p->mods.m[mod].name[0] ? p->mods.m[mod].name : p->exe);
  else
    snprintf(why, sizeof why, "process pool initializer failed with code %d",
             code);
  cf__rp_set_state(&p->rp, &w->rw, CF__RW_EXITING);
  cf__pp_break(p, code, why);
}

/* Reads the answer for w's task: a RESULT into *t / *task_rc, or the
 * CHUNKRESULT of batch b into its items.  CF_OK, or the status w dies with
 * (*why: its words, or NULL for a plain death). */
static int cf__pp_read_answer(cf__pworker *w, const cf__frame *fr, cf__batch *b,
                              cf_task *t, int *task_rc, const char **why) {
  static const char malformed[] = "malformed message from worker";
  *why = malformed;
  cf__result_view v = {0};
  unsigned char head[CF__RESULT_HEAD];
  if (!b && (fr->len < CF__RESULT_HEAD ||
             cf__ipc_read(w->fd, head, CF__RESULT_HEAD) != CF_OK ||
             cf__ipc_decode_result(head, CF__RESULT_HEAD, &v) != CF_OK))
    return CF_EPROTO;
  /* The payload is read straight into the buffer the future keeps. */
  size_t len = b ? (size_t)fr->len : (size_t)fr->len - CF__RESULT_HEAD;
  unsigned char *buf;
  int rc = cf__ipc_read_payload(w->fd, len, &buf);
  if (rc != CF_OK) {
    *why = rc == CF_ENOMEM ? "out of memory for a worker's result" : NULL;
    return rc == CF_ENOMEM ? CF_ENOMEM : CF_EWORKERDIED;
  }
  if (b) {
    rc = cf__ipc_decode_chunk_result(buf, len, b->n, b->items);
    free(buf);
    if (rc != CF_OK && rc != CF_EPROTO)
      *why = "out of memory";
    return rc;
  }
  if (v.rc == 0) {
    if (len <= CF__INLINE) {
      cf__buf_copy(&t->out, buf, len); /* inline: cannot fail */
      free(buf);
    } else {
      cf__buf_adopt(&t->out, buf, len, free);
    }
    return CF_OK;
  }
  *task_rc = v.rc;
  if (v.has_msg && (t->errmsg = cf__malloc(len + 1))) {
    if (len)
      memcpy(t->errmsg, buf, len);
    t->errmsg[len] = '\0';
  }
  free(buf);
  return CF_OK;
}

/* RESULT or CHUNKRESULT: completes w's task (its callbacks run here) and
 * makes w idle, or retires it after max_tasks_per_child tasks. */
static void cf__pp_on_answer(cf__ppool *p, cf__pworker *w,
                             const cf__frame *fr) {
  cf_future *f = w->rw.task;
  cf__batch *b = f ? cf__future_batch(f) : NULL;
  if (w->rw.state != CF__RW_BUSY ||
      fr->type != (b ? CF__MSG_CHUNKRESULT : CF__MSG_RESULT) ||
      fr->id != w->rw.task_id) {
    cf__pp_death(p, w, CF_EPROTO, "malformed message from worker");
    return;
  }
  cf_task t = {0};
  int task_rc = 0;
  const char *why;
  int rc = cf__pp_read_answer(w, fr, b, &t, &task_rc, &why);
  if (rc != CF_OK) {
    cf__pp_death(p, w, rc, why);
    return;
  }
  w->rw.task = NULL;
  w->ntasks++;
  if (p->o.max_tasks_per_child > 0 && w->ntasks >= p->o.max_tasks_per_child) {
    cf__ipc_send_exit(CF__FD_CHAN(w->fd), 0);
    cf__rp_set_state(&p->rp, &w->rw, CF__RW_EXITING);
  } else {
    cf__rp_set_state(&p->rp, &w->rw, CF__RW_IDLE);
  }
  cf__rp_count(&p->rp, task_rc == 0 ? &p->rp.completed
                       : task_rc == CF_ECANCELLED && cf_future_stop_requested(f)
                           ? &p->rp.cancelled /* it honoured a stop request */
                           : &p->rp.failed);
  cf__future_finish(f, task_rc, &t); /* callbacks run here */
  cf_future_release(f);
}

/* One message from w. */
static void cf__pp_receive(cf__ppool *p, cf__pworker *w) {
  cf__frame fr;
  int rc = cf__ipc_read_frame(w->fd, &fr);
  if (rc == CF_EOF || rc == CF_ESYS)
    cf__pp_death(p, w, CF_EWORKERDIED, NULL);
  else if (rc != CF_OK)
    cf__pp_death(p, w, CF_EPROTO, "malformed message from worker");
  else if (fr.type == CF__MSG_READY && w->rw.state == CF__RW_STARTING &&
           fr.len <= 4 * p->mods.n)
    cf__pp_on_ready(p, w, &fr);
  else if (fr.type == CF__MSG_INITFAIL && w->rw.state == CF__RW_STARTING &&
           fr.len <= CF__INITFAIL_MAX)
    cf__pp_on_initfail(p, w, &fr);
  else
    cf__pp_on_answer(p, w, &fr);
}

/* ---- the manager --------------------------------------------------------- */

/* No worker could start (descriptors, processes or memory ran out).  With
 * workers alive, the queue waits for them.  With none, nothing would ever
 * run the queue: its futures fail with CF_EAGAIN, as a thread pool's submit
 * does, and the pool stays usable for when resources come back. */
static void cf__pp_spawn_failed(cf__ppool *p, int rc) {
  pthread_mutex_lock(&p->rp.mu);
  cf_future *l = p->rp.nlive == 0 ? cf__rp_steal_locked(&p->rp) : NULL;
  pthread_mutex_unlock(&p->rp.mu);
  if (!l)
    return;
  char why[480];
  snprintf(why, sizeof why, "could not start a worker process: %s",
           p->why[0] ? p->why : cf_strerror(rc));
  cf__rp_fail_list(l, CF_EAGAIN, 0, why);
}

/* Starts queued tasks on idle workers; starts workers as needed.  Returns
 * 0, or the time a worker may be started again after a failed start (the
 * manager's poll wakes then). */
static int64_t cf__pp_dispatch(cf__ppool *p) {
  for (;;) {
    cf__pworker *idle = NULL, *free_slot = NULL;
    int starting = 0;
    for (int i = 0; i < p->rp.base.max_workers; i++) {
      cf__pworker *w = &p->w[i];
      if (w->rw.state == CF__RW_IDLE && !idle)
        idle = w;
      else if (w->rw.state == CF__RW_FREE && !free_slot)
        free_slot = w;
      starting += w->rw.state == CF__RW_STARTING;
    }
    pthread_mutex_lock(&p->rp.mu);
    cf_future *f = NULL;
    bool spawn = false;
    if (!p->rp.broken && !p->term_sig && p->rp.qhead) {
      if (idle) {
        f = p->rp.qhead;
        p->rp.qhead = f->next;
        if (!p->rp.qhead)
          p->rp.qtail = NULL;
        p->rp.qlen--;
      } else {
        spawn = free_slot && (size_t)starting < p->rp.qlen;
      }
    }
    pthread_mutex_unlock(&p->rp.mu);
    if (spawn) {
      if (p->retry_at && cf__now_ns() < p->retry_at)
        return p->retry_at;
      p->retry_at = 0;
      int rc = cf__pp_spawn(p, free_slot);
      if (rc != CF_OK)
        cf__pp_spawn_failed(p, rc);
      return 0;
    }
    if (!f)
      return 0;
    if (cf__rp_start(&p->rp, &idle->rw, f))
      cf__pp_send(p, idle, f);
  }
}

/* Sends the STOPs that cf__rp_request_stop asked for. */
static void cf__pp_send_stops(cf__ppool *p) {
  if (!cf__rp_stops_due(&p->rp))
    return;
  for (int i = 0; i < p->rp.nworkers; i++) {
    cf__pworker *w = &p->w[i];
    if (!w->rw.send_stop)
      continue;
    w->rw.send_stop = false;
    /* A failed send: the worker is gone, which its poll shows next. */
    cf__ipc_send_stop(CF__FD_CHAN(w->fd), w->rw.task_id);
  }
}

static bool cf__pp_done(cf__ppool *p) {
  pthread_mutex_lock(&p->rp.mu);
  bool done = (p->rp.broken && p->rp.nlive == 0) ||
              (p->rp.shutdown && !p->rp.qhead && p->rp.nbusy == 0);
  pthread_mutex_unlock(&p->rp.mu);
  return done;
}

/* terminate(): signals every worker once, the first round after it was
 * asked.  Returns the signal (0: not terminating). */
static int cf__pp_pass_terminate(cf__ppool *p) {
  pthread_mutex_lock(&p->rp.mu);
  int sig = p->term_sig;
  pthread_mutex_unlock(&p->rp.mu);
  if (sig && !p->term_sent) {
    p->term_sent = true;
    for (int i = 0; i < p->rp.base.max_workers; i++)
      if (p->w[i].rw.state != CF__RW_FREE)
        kill(p->w[i].pid, sig);
  }
  return sig;
}

/* Fills p->pf with what to watch: the eventfd, then each live worker's
 * socket and pidfd (p->who: the worker of each entry).  Returns the count;
 * *any tells whether a worker is alive. */
static int cf__pp_watch_list(cf__ppool *p, bool *any) {
  int k = 0;
  p->pf[k] = (struct pollfd){p->evfd, POLLIN, 0};
  p->who[k++] = -1;
  *any = false;
  for (int i = 0; i < p->rp.base.max_workers; i++) {
    if (p->w[i].rw.state == CF__RW_FREE)
      continue;
    *any = true;
    p->pf[k] = (struct pollfd){p->w[i].fd, POLLIN, 0};
    p->who[k++] = i;
    if (p->w[i].pidfd >= 0) {
      p->pf[k] = (struct pollfd){p->w[i].pidfd, POLLIN, 0};
      p->who[k++] = i;
    }
  }
  return k;
}

/* Waits for one of the k descriptors: spins briefly (a worker's answer
 * often comes within microseconds), then sleeps until `wake` (0: no timer
 * but the start-up back-off).  Returns poll()'s count. */
static int cf__pp_poll(cf__ppool *p, int k, int64_t wake) {
  int ready = 0;
  for (int64_t end = cf__now_ns() + CF__PP_SPIN_NS;
       (ready = poll(p->pf, (nfds_t)k, 0)) == 0 && cf__now_ns() < end;)
    sched_yield();
  if (ready != 0)
    return ready;
  int ms = -1;
  if (wake) {
    int64_t left = wake - cf__now_ns();
    if (left <= 0)
      ms = 0;
    else if (left >= (int64_t)INT_MAX * 1000000)
      ms = INT_MAX;
    else
      ms = (int)((left + 999999) / 1000000); /* rounded up: never early */
  }
  return poll(p->pf, (nfds_t)k, ms);
}

/* Handles what poll() reported among the k entries. */
static void cf__pp_handle_events(cf__ppool *p, int k) {
  struct pollfd *pf = p->pf;
  if (pf[0].revents) {
    uint64_t v;
    while (read(p->evfd, &v, sizeof v) < 0 && errno == EINTR)
      ;
  }
  for (int j = 1; j < k; j++) {
    cf__pworker *w = &p->w[p->who[j]];
    if (!pf[j].revents || w->rw.state == CF__RW_FREE || pf[j].fd != w->fd)
      continue;
    cf__pp_receive(p, w);
  }
  /* A pidfd that fired with its socket quiet: the worker is gone (its
   * socket may also live on in a child it forked). */
  for (int j = 1; j < k; j++) {
    cf__pworker *w = &p->w[p->who[j]];
    if (pf[j].revents && w->rw.state != CF__RW_FREE && pf[j].fd == w->pidfd) {
      struct pollfd q = {w->fd, POLLIN, 0};
      if (poll(&q, 1, 0) == 1)
        cf__pp_receive(p, w); /* drain what it said last */
      else
        cf__pp_death(p, w, CF_EWORKERDIED, NULL);
    }
  }
}

/* The manager is done: retires every worker (EXIT, then reap);
 * cf__rp_manager_end fails what is left in the queue. */
static void cf__pp_wind_down(cf__ppool *p) {
  for (int i = 0; i < p->rp.base.max_workers; i++) {
    cf__pworker *w = &p->w[i];
    if (w->rw.state == CF__RW_FREE)
      continue;
    cf__ipc_send_exit(CF__FD_CHAN(w->fd), 0);
    cf_future *f = w->rw.task;
    w->rw.task = NULL;
    int st = cf__pp_reap(p, w, false);
    if (f) {
      cf__future_fail(f, CF_EWORKERDIED, st, cf__pp_describe(st));
      cf_future_release(f);
    }
  }
}

static void *cf__pp_manager(void *arg) {
  cf__ppool *p = arg;
  cf__worker_ctx io;
  cf__rp_manager_begin(&p->rp, &io, "cf-procpool");
  for (;;) {
    int sig = cf__pp_pass_terminate(p);
    int64_t wake = cf__pp_dispatch(p);
    cf__pp_send_stops(p);
    if (cf__pp_done(p) && !sig)
      break;
    bool any;
    int k = cf__pp_watch_list(p, &any);
    if (sig && !any)
      break; /* terminated: every worker is gone */
    if (cf__pp_poll(p, k, wake) < 0)
      continue; /* EINTR */
    cf__pp_handle_events(p, k);
  }
  cf__pp_wind_down(p);
  if (cf__rp_manager_end(&p->rp))
    cf__pp_free(p);
  return NULL;
}

/* ---- the backend --------------------------------------------------------- */

/* Shuts down; a terminate() first says which signal the manager sends. */
static int cf__pp_stop(cf__ppool *p, bool wait, bool cancel, int sig) {
  if (sig) {
    pthread_mutex_lock(&p->rp.mu);
    p->term_sig = sig;
    pthread_mutex_unlock(&p->rp.mu);
  }
  cf__rp_shutdown(&p->rp, wait, cancel);
  return CF_OK;
}

static int cf__pp_shutdown(cf_executor *ex, bool wait, bool cancel) {
  return cf__pp_stop((cf__ppool *)ex, wait, cancel, 0);
}

static int cf__pp_terminate(cf_executor *ex, int sig) {
  if (sig <= 0 || sig >= NSIG)
    return CF_EINVAL;
  return cf__pp_stop((cf__ppool *)ex, true, true, sig);
}

/* The pool's memory and event descriptor: shared by a failed create, the
 * normal free and the forget of a fork child. */
static void cf__pp_free_memory(cf__ppool *p) {
  if (p->evfd >= 0)
    close(p->evfd);
  if (p->exefd >= 0)
    close(p->exefd);
  if (p->nullfd >= 0)
    close(p->nullfd);
  free(p->envp);
  free(p->modwire);
  cf__modules_free(&p->mods);
  free(p->pf);
  free(p->who);
  free(p->w);
  free(p->initarg);
  free(p);
}

static void cf__pp_free(cf__ppool *p) {
  cf__rp_fini(&p->rp);
  cf__pp_free_memory(p);
}

static void cf__pp_destroy(cf_executor *ex) {
  cf__ppool *p = (cf__ppool *)ex;
  cf__pp_stop(p, true, false, 0);
  if (!cf__rp_freed_by_manager(&p->rp))
    cf__pp_free(p);
}

/* In a fork child: the manager thread is gone and the workers are the
 * parent's children.  Close our copies of the descriptors, free memory,
 * signal and reap nothing. */
static void cf__pp_forget(cf_executor *ex) {
  cf__ppool *p = (cf__ppool *)ex;
  for (int i = 0; i < p->rp.base.max_workers; i++) {
    if (p->w[i].fd >= 0)
      close(p->w[i].fd);
    if (p->w[i].pidfd >= 0)
      close(p->w[i].pidfd);
  }
  cf__pp_free_memory(p);
}

static const cf__backend cf__pp_backend = {
    .submit = cf__rp_submit,
    .shutdown = cf__pp_shutdown,
    .destroy = cf__pp_destroy,
    .stats = cf__rp_stats,
    .terminate = cf__pp_terminate,
    .forget = cf__pp_forget,
    .request_stop = cf__rp_request_stop,
    .purge = cf__rp_purge,
};

int cf_process_pool_options_init(cf_process_pool_options *o) {
  if (!o)
    return CF_EINVAL;
  *o = (cf_process_pool_options)CF_PROCESS_POOL_OPTIONS_INIT;
  return CF_OK;
}

/* The first module (the program as the loader sees it): its program
 * headers and whether it asks for an interpreter. */
typedef struct cf__first {
  const void *phdr;
  bool interp;
} cf__first;
static int cf__first_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  CF__UNUSED(size);
  cf__first *f = arg;
  f->phdr = info->dlpi_phdr;
  for (int i = 0; i < info->dlpi_phnum; i++)
    f->interp |= info->dlpi_phdr[i].p_type == PT_INTERP;
  return 1;
}

/* A refused create: the status, with words for cf_last_error_message(). */
/* Where workers find the initializer: a module loaded at start-up. */
static int cf__pp_locate_init(cf__ppool *p) {
  if (!p->o.initializer) {
    p->initref.none = true;
    return CF_OK;
  }
  long k = cf__modules_find(&p->mods, (uintptr_t)p->o.initializer);
  if (k < 0 ||
      cf__fnref_locate((uintptr_t)p->o.initializer, &p->initref) != CF_OK)
    return CF__REFUSE(CF_EINVAL,
                      "the initializer is not in the code of any loaded "
                      "module, so a worker cannot find it");
  if (!p->mods.m[k].startup)
    return CF__REFUSE(CF_EINVAL,
                      "the initializer lives in %s, a module loaded with "
                      "dlopen(): a worker does not load it",
                      p->mods.m[k].name);
  return CF_OK;
}

/* The very image this process runs, for every worker: a file replaced or
 * deleted on disk later does not change what workers run. */
static int cf__pp_open_exe(cf__ppool *p) {
  p->exefd = cf__fd_high(open("/proc/self/exe", O_PATH | O_CLOEXEC));
  if (p->exefd < 0)
    return CF__REFUSE(CF_ENOTSUP,
                      "cannot open /proc/self/exe (%s): process pools need "
                      "/proc, to start workers from the program's own image",
                      strerror(errno));
  ssize_t n = readlink("/proc/self/exe", p->exe, sizeof p->exe - 1);
  if (n <= 0)
    n = (ssize_t)strlen(strcpy(p->exe, "cf-worker"));
  p->exe[n] = '\0';
  return CF_OK;
}

/* Whether this process can host a process pool at all; the words say why
 * not.  Cheap (a walk of the loaded modules), run at every create. */
static int cf__pp_hosting(cf__ppool *p) {
  if (getauxval(AT_SECURE) || getuid() != geteuid() || getgid() != getegid())
    return CF__REFUSE(
        CF_ENOTSUP,
        "process pools are not supported in a setuid, setgid or "
        "capability-raised program (AT_SECURE, or real and effective ids "
        "differ): its workers could not prove that this program started "
        "them, and never serve");
  int rc = cf__modules_collect(&p->mods);
  if (rc != CF_OK)
    return CF__REFUSE(rc, "out of memory listing the loaded modules");
  /* Run as "ld.so PROGRAM", the kernel started the loader: AT_BASE (the
   * interpreter's address) is 0 although the program has one; older
   * loaders also leave AT_PHDR pointing at their own headers. */
  cf__first first = {0};
  dl_iterate_phdr(cf__first_cb, &first);
  if (!p->mods.n || (uintptr_t)first.phdr != getauxval(AT_PHDR) ||
      (first.interp && getauxval(AT_BASE) == 0))
    return CF__REFUSE(
        CF_ENOTSUP,
        "the program was started through the dynamic loader (ld.so "
        "PROGRAM): /proc/self/exe is the loader, so a worker cannot run the "
        "same program; run the program directly");
  long self = cf__modules_find(&p->mods, (uintptr_t)cf__pp_hosting);
  if (self < 0 || !p->mods.m[self].startup)
    return CF__REFUSE(
        CF_ENOTSUP,
        "libcfutures was loaded with dlopen() (%s is not among the modules "
        "the program loaded at start-up): a worker would run the host "
        "program's main(); link the program with -lcfutures",
        self < 0 ? "the library" : p->mods.m[self].name);
  rc = cf__pp_locate_init(p);
  return rc == CF_OK ? cf__pp_open_exe(p) : rc;
}

/* The caller's options, checked, in o (max_workers 0 resolved). */
static int cf__pp_options(const cf_process_pool_options *opts,
                          cf_process_pool_options *o) {
  *o = (cf_process_pool_options)CF_PROCESS_POOL_OPTIONS_INIT;
  if (opts && cf__opts_in(o, sizeof *o, opts, CF__PP_OPTIONS_V1) != CF_OK)
    return CF__REFUSE(CF_EINVAL,
                      "options: size %zu is not that of a "
                      "cf_process_pool_options set up by "
                      "cf_process_pool_options_init(), or fields this "
                      "library does not know are set",
                      opts->size);
  if (o->max_workers < 0 || o->max_workers > CF_PROCESS_POOL_MAX_WORKERS ||
      o->max_tasks_per_child < 0 || (o->initarg_len && !o->initarg) ||
      (o->on_worker_death != CF_ON_DEATH_BREAK &&
       o->on_worker_death != CF_ON_DEATH_RESTART))
    return CF__REFUSE(CF_EINVAL,
                      "invalid options: max_workers must be 0 to %d, "
                      "max_tasks_per_child >= 0, initarg set when "
                      "initarg_len is, on_worker_death a cf_death_policy",
                      CF_PROCESS_POOL_MAX_WORKERS);
  if (!o->max_workers) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
      n = 1;
    o->max_workers =
        n > CF_PROCESS_POOL_MAX_WORKERS ? CF_PROCESS_POOL_MAX_WORKERS : (int)n;
  }
  return CF_OK;
}

/* What every worker start needs: the pool's secret, /dev/null for their
 * standard input, the captured environment.  p->why is not used here: the
 * words go to cf_last_error_message(). */
static int cf__pp_start_kit(cf__ppool *p) {
  size_t got = 0;
  while (got < sizeof p->secret) {
    ssize_t r = getrandom(p->secret + got, sizeof p->secret - got, 0);
    if (r < 0 && errno != EINTR)
      break;
    got += r > 0 ? (size_t)r : 0;
  }
  if (got < sizeof p->secret)
    return CF__REFUSE(CF_ESYS, "getrandom: %s", strerror(errno));
  p->nullfd = cf__fd_high(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (p->nullfd < 0)
    return CF__REFUSE(CF_ESYS,
                      "cannot open /dev/null for the workers' "
                      "standard input: %s",
                      strerror(errno));
  p->envp = cf__pp_env_capture(p->secret);
  return p->envp ? CF_OK : CF__REFUSE(CF_ENOMEM, "out of memory");
}

/* The manager's tables, the INIT module list and initarg, the eventfd. */
static int cf__pp_tables(cf__ppool *p) {
  size_t n = (size_t)p->o.max_workers;
  p->modwire_len = cf__modules_size(&p->mods);
  p->modwire = cf__malloc(p->modwire_len);
  if (p->modwire)
    cf__modules_put(&p->mods, p->modwire);
  p->w = cf__calloc(n, sizeof *p->w);
  p->pf = cf__malloc((n * 2 + 1) * sizeof *p->pf);
  p->who = cf__malloc((n * 2 + 1) * sizeof *p->who);
  p->initarg = p->o.initarg_len ? cf__malloc(p->o.initarg_len) : NULL;
  if (!p->modwire || !p->w || !p->pf || !p->who ||
      (p->o.initarg_len && !p->initarg))
    return CF__REFUSE(CF_ENOMEM, "out of memory");
  p->evfd = eventfd(0, EFD_CLOEXEC);
  if (p->evfd < 0)
    return CF__REFUSE(CF_ESYS, "eventfd failed");
  if (p->o.initarg_len)
    memcpy(p->initarg, p->o.initarg, p->o.initarg_len);
  for (size_t i = 0; i < n; i++)
    p->w[i].fd = p->w[i].pidfd = -1;
  return CF_OK;
}

int cf_process_pool_create(const cf_process_pool_options *opts,
                           cf_executor **out) {
  cf__worker_link(); /* the worker's constructor comes with this function */
  cf__clear_last_error();
  if (!out)
    return CF__REFUSE(CF_EINVAL, "out is NULL");
  *out = NULL;
  cf_process_pool_options o;
  int rc = cf__pp_options(opts, &o);
  if (rc != CF_OK)
    return rc;
  cf__ppool *p = cf__calloc(1, sizeof *p);
  if (!p)
    return CF__REFUSE(CF_ENOMEM, "out of memory");
  p->evfd = p->exefd = p->nullfd = -1;
  p->o = o;
  rc = cf__pp_hosting(p);
  if (rc == CF_OK)
    rc = cf__pp_start_kit(p);
  if (rc == CF_OK)
    rc = cf__pp_tables(p);
  if (rc != CF_OK) {
    cf__pp_free_memory(p);
    return rc;
  }
  cf__rp_init(&p->rp, &cf__pp_backend, o.max_workers, cf__pp_poke);
  cf__executor_bound(&p->rp.base, o.max_queued);
  cf__rp_workers(&p->rp, p->w, sizeof *p->w, o.max_workers);
  /* The manager runs with every signal blocked: they are the
   * application's. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int e = cf__pthread_create(&p->rp.manager, NULL, cf__pp_manager, p);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e != 0) {
    cf__pp_free(p); /* everything is initialised by now */
    return CF__REFUSE(CF_EAGAIN, "cannot create the pool's manager thread");
  }
  *out = &p->rp.base;
  return CF_OK;
}
