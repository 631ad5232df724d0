/*
 * The worker process of the process pool.  A worker is the program's own
 * image started again by a pool (process_pool.c, cf__pp_spawn).  The
 * library's constructor, at the end of this file, runs before main() in
 * every process that links libcfutures: it becomes a worker only when
 * every check proves that a pool of its parent started it
 * (cf__worker_accept), and then serves INIT, TASK, CHUNK, STOP and EXIT
 * frames (ipc.h) until the parent closes the socket; otherwise main() runs
 * as if nothing happened.
 */
#include "internal.h"
#include "alloc.h"
#include "ipc.h"
#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

void cf__worker_link(void) {}

/* A worker running a chunk looks for a STOP between inputs, but only once
 * the coarse clock has ticked (1 to 10 ms, by the kernel's HZ) since it
 * last looked: a poll() per input costs more than a short input itself
 * (map with chunksize 1000 ran 2-4x slower), a precise clock read 40-90 ns,
 * the coarse one 15. */
static inline int64_t cf__coarse_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the worker process -------------------------------------------------- */

/* A CHUNKRESULT for a chunk whose function is not in this process: its
 * first input fails with CF_EINVAL and words, the others did not run. */
static int cf__worker_chunk_missing(cf__chan *ch, uint64_t id, uint64_t count) {
  static const char why[] = "task function not found in the worker";
  cf__obuf out;
  int rc = cf__ipc_chunk_result_begin(&out, count);
  for (uint64_t i = 0; rc == CF_OK && i < count; i++)
    rc = i == 0 ? cf__ipc_chunk_result_add(&out, CF__ITEM_FAILED, CF_EINVAL,
                                           true, why, sizeof why - 1)
                : cf__ipc_chunk_result_add(&out, CF__ITEM_NOT_RUN, 0, false,
                                           NULL, 0);
  if (rc != CF_OK)
    return rc; /* out was freed */
  return cf__ipc_send_chunk_result(ch, id, &out);
}

/* A TASK's RESULT: out on success, else the message if there is one. */
static int cf__worker_reply(cf__chan *ch, uint64_t id, int32_t rc,
                            const char *msg, const cf__buf *out) {
  if (rc == 0)
    return cf__ipc_send_result(ch, id, 0, false, cf__buf_data(out),
                               cf__buf_len(out));
  return cf__ipc_send_result(ch, id, rc, msg != NULL, msg,
                             msg ? strlen(msg) : 0);
}

/* Whether the parent asked the task (or chunk) `id` that runs here to
 * stop: what cf_task_stop_requested() reads in a worker, and what a chunk
 * looks at between inputs.  The parent sends at most one STOP, and only
 * while the task is outstanding: any other frame now is a protocol error,
 * kept in err to end the worker once the task returns. */
typedef struct cf__wstop {
  cf__chan *ch;
  uint64_t id;
  bool stop;
  bool looked;
  int err;
  int64_t checked; /* the coarse clock at the last look */
} cf__wstop;

/* Looks for a frame without blocking; reads one only if it is there. */
static void cf__wstop_look(cf__wstop *ws) {
  int r = cf__chan_ready(ws->ch);
  if (r <= 0) {
    ws->err = r;
    return;
  }
  cf__frame fr;
  unsigned char *buf;
  int rc = cf__chan_recv(ws->ch, &fr, &buf);
  free(buf); /* a STOP has none: decode_stop refuses it if there was one */
  if (rc == CF_OK)
    rc = cf__ipc_decode_stop(&fr, true, ws->id);
  if (rc < 0)
    ws->err = rc; /* the parent is gone, or sent garbage */
  else
    ws->stop = rc == CF__STOP_NOW;
}

/* At most one look per tick of the coarse clock (see cf__coarse_ns), so a
 * task may ask in a tight loop.  An error counts as a stop: the worker is
 * ending. */
static bool cf__wstop_fn(void *arg) {
  cf__wstop *ws = arg;
  if (!ws->stop && !ws->err) {
    int64_t now = cf__coarse_ns();
    if (!ws->looked || now != ws->checked) {
      ws->looked = true;
      ws->checked = now;
      cf__wstop_look(ws);
    }
  }
  return ws->stop || ws->err;
}

/* Runs a CHUNK message's inputs and answers with one CHUNKRESULT.  Stops
 * at the first failing input, or when a STOP for this chunk comes (seen
 * before the next input once a clock tick has passed since the last look,
 * see cf__coarse_ns): the inputs not started are answered NOT_RUN. */
static int cf__worker_chunk(cf__chan *ch, uint64_t id, cf_task_fn fn,
                            cf__chunk_view *v) {
  cf__obuf out;
  if (cf__ipc_chunk_result_begin(&out, v->count) != CF_OK)
    return CF_ENOMEM;
  cf__wstop ws = {
      .ch = ch, .id = id, .looked = true, .checked = cf__coarse_ns()};
  bool stop = false;
  int rc;
  for (uint64_t i = 0;; i++) {
    const unsigned char *in;
    size_t ilen;
    rc = cf__ipc_chunk_next(v, &in, &ilen);
    if (rc == CF_EOF)
      break;
    if (rc == CF_OK && !stop && i > 0)
      stop = cf__wstop_fn(&ws);
    if (rc == CF_OK)
      rc = ws.err;
    if (rc != CF_OK) {
      free(out.p);
      return rc;
    }
    int32_t status = CF__ITEM_NOT_RUN, code = 0;
    cf_task t; /* only what is freed below: zeroing all of it per input
                  costs a `rep stos` */
    t.out.len_ = 0;
    t.errmsg = NULL;
    t.stop_fn = cf__wstop_fn;
    t.stop_arg = &ws;
    const void *data = NULL;
    size_t dlen = 0;
    bool has_msg = false;
    if (!stop) {
      code = cf__task_invoke(fn, in, ilen, &t);
      status = code == 0 ? CF__ITEM_OK : CF__ITEM_FAILED;
      if (code == 0) {
        data = cf__buf_data(&t.out);
        dlen = cf__buf_len(&t.out);
      } else {
        stop = true; /* the rest would only be cancelled */
        if (t.errmsg) {
          has_msg = true;
          data = t.errmsg;
          dlen = strlen(t.errmsg);
        }
      }
    }
    rc = cf__ipc_chunk_result_add(&out, status, code, has_msg, data, dlen);
    cf__buf_free(&t.out);
    free(t.errmsg);
    if (rc != CF_OK)
      return rc; /* out was freed */
  }
  return cf__ipc_send_chunk_result(ch, id, &out);
}

/* INIT: compares the parent's modules with ours, then runs the
 * initializer unless its module differs.  Returns CF_OK (READY sent, with
 * the indexes of the modules that differ), CF_EOF (INITFAIL sent: the
 * worker ends) or another status (malformed: the worker ends). */
static int cf__worker_init(cf__chan *ch, const unsigned char *buf, size_t len) {
  cf__init_view iv;
  int rc = cf__ipc_decode_init(buf, len, &iv);
  if (rc != CF_OK)
    return rc;
  cf__modules mine;
  uint32_t *bad = cf__malloc(((size_t)iv.nmods + 1) * sizeof *bad);
  if (!bad || cf__modules_collect(&mine) != CF_OK) {
    free(iv.mods);
    free(bad);
    return CF_ENOMEM;
  }
  uint32_t nbad = cf__modules_compare(iv.mods, iv.nmods, &mine, bad);
  cf__modules_free(&mine);
  uint32_t init_bad = UINT32_MAX;
  for (uint32_t i = 0; !iv.fn.none && i < nbad; i++)
    if (iv.mods[bad[i]].name_len == iv.fn.name_len &&
        memcmp(iv.mods[bad[i]].name, iv.fn.name, iv.fn.name_len) == 0)
      init_bad = bad[i];
  free(iv.mods);
  int32_t code = 0;
  if (init_bad != UINT32_MAX) {
    code = CF_ETASK; /* another build: its code is not the parent's */
  } else {
    cf_initializer_fn init = (cf_initializer_fn)cf__fnref_view_resolve(&iv.fn);
    code = !iv.fn.none && !init ? CF_EINVAL : 0;
    if (init)
      code = init(iv.arg, iv.arg_len);
  }
  if (code) {
    free(bad);
    cf__ipc_send_initfail(ch, code, init_bad);
    return CF_EOF;
  }
  rc = cf__ipc_send_ready(ch, bad, nbad);
  free(bad);
  return rc;
}

/* TASK: runs it and answers with its RESULT.  A function missing here
 * fails the task, and the worker goes on (the parent refuses such functions
 * before sending them). */
static int cf__worker_on_task(cf__chan *ch, uint64_t id,
                              const unsigned char *buf, size_t len) {
  cf__task_view tv;
  if (cf__ipc_decode_task(buf, len, &tv) != CF_OK)
    return CF_EPROTO;
  cf_task_fn fn = (cf_task_fn)cf__fnref_view_resolve(&tv.fn);
  if (!fn)
    return cf__worker_reply(ch, id, CF_EINVAL,
                            "task function not found in the worker", NULL);
  cf__wstop ws = {.ch = ch, .id = id};
  cf_task t;
  t.stop_fn = cf__wstop_fn;
  t.stop_arg = &ws;
  int32_t code = cf__task_invoke(fn, tv.in, tv.len, &t);
  int rc = ws.err ? ws.err : cf__worker_reply(ch, id, code, t.errmsg, &t.out);
  cf__buf_free(&t.out);
  free(t.errmsg);
  return rc;
}

/* CHUNK: runs its inputs and answers with one CHUNKRESULT. */
static int cf__worker_on_chunk(cf__chan *ch, uint64_t id,
                               const unsigned char *buf, size_t len) {
  cf__chunk_view cv;
  if (cf__ipc_decode_chunk(buf, len, &cv) != CF_OK)
    return CF_EPROTO;
  cf_task_fn fn = (cf_task_fn)cf__fnref_view_resolve(&cv.fn);
  /* As for a TASK: a function missing here fails its input, and the
   * worker goes on (the parent refuses such functions first). */
  return fn ? cf__worker_chunk(ch, id, fn, &cv)
            : cf__worker_chunk_missing(ch, id, cv.count);
}

/* Serves one frame (its payload in buf).  Returns -1 to go on with the
 * next, or the worker's exit status: 0 when it is done (EXIT, or INITFAIL
 * sent), 4 when it cannot go on (a malformed message, memory, or the parent
 * gone in the middle). */
static int cf__worker_serve(cf__chan *ch, const cf__frame *fr,
                            const unsigned char *buf) {
  size_t len = (size_t)fr->len;
  int rc;
  switch (fr->type) {
  case CF__MSG_INIT:
    rc = cf__worker_init(ch, buf, len);
    if (rc == CF_EOF)
      return 0; /* INITFAIL sent */
    break;
  case CF__MSG_TASK:
    rc = cf__worker_on_task(ch, fr->id, buf, len);
    break;
  case CF__MSG_CHUNK:
    rc = cf__worker_on_chunk(ch, fr->id, buf, len);
    break;
  case CF__MSG_STOP: /* crossed the result of the chunk it named */
    rc = cf__ipc_decode_stop(fr, false, 0) < 0 ? CF_EPROTO : CF_OK;
    break;
  case CF__MSG_EXIT: /* as STOP: nothing but the frame */
    return cf__ipc_decode_exit(fr) == CF_OK ? 0 : 4;
  default:
    rc = CF_EPROTO;
  }
  return rc == CF_OK ? -1 : 4;
}

/* Until a frame comes, looks without sleeping for CF__PP_SPIN_NS: the
 * next task usually follows soon after the last result, sooner than a
 * wakeup from a blocking read. */
static void cf__worker_spin(cf__chan *ch) {
  if (ch->ops)
    return; /* a transport of its own waits its own way (mpi_chan.c) */
  for (int64_t end = cf__now_ns() + CF__PP_SPIN_NS;
       cf__chan_ready(ch) == 0 && cf__now_ns() < end;)
    sched_yield();
}

int cf__worker_loop(cf__chan *ch, cf__frame *last) {
  for (;;) {
    cf__worker_spin(ch);
    unsigned char *buf;
    int rc = cf__chan_recv(ch, last, &buf);
    if (rc == CF_EOF || rc == CF_ESYS) {
      last->type = 0;
      return 0; /* the parent is gone or closed the socket */
    }
    if (rc != CF_OK)
      return rc == CF_ENOMEM ? 3 : 4;
    int status = cf__worker_serve(ch, last, buf);
    free(buf);
    if (status >= 0)
      return status;
  }
}

/* A process-pool worker serves until the parent is done with it. */
static int cf__worker_main(int fd) {
  /* Die with the parent rather than live on as an orphan. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  cf__frame last;
  return cf__worker_loop(CF__FD_CHAN(fd), &last);
}

#ifdef CF_COVERAGE
void __gcov_dump(void); /* libgcov: _exit() would drop the worker's counts */
#endif

/* The marker's value: "<fd>:<64 lowercase hex digits>", nothing else. */
static bool cf__worker_parse(const char *v, int *fd, unsigned char *secret) {
  long n = 0;
  size_t i = 0;
  if (v[0] < '1' || v[0] > '9')
    return false;
  for (; v[i] >= '0' && v[i] <= '9'; i++) {
    n = n * 10 + (v[i] - '0');
    if (i >= 6)
      return false;
  }
  if (n < 3 || v[i++] != ':')
    return false;
  for (size_t k = 0; k < 2 * CF__SECRET_LEN; k++, i++) {
    int d = v[i] >= '0' && v[i] <= '9'   ? v[i] - '0'
            : v[i] >= 'a' && v[i] <= 'f' ? v[i] - 'a' + 10
                                         : -1;
    if (d < 0)
      return false;
    if (k % 2 == 0)
      secret[k / 2] = (unsigned char)(d << 4);
    else
      secret[k / 2] |= (unsigned char)d;
  }
  if (v[i] != '\0')
    return false;
  *fd = (int)n;
  return true;
}

/* Every check that a pool of our parent started this process, cheapest
 * first; the descriptor is only looked at (fstat, getsockopt, a
 * non-blocking peek) until it has proved to be ours.  Returns the channel
 * (now close-on-exec, the HELLO consumed) or -1. */
static int cf__worker_accept(const char *v) {
  int fd;
  unsigned char secret[CF__SECRET_LEN];
  if (getauxval(AT_SECURE) || getuid() != geteuid() || getgid() != getegid() ||
      !cf__worker_parse(v, &fd, secret))
    return -1;
  struct stat st;
  int dom = 0, type = 0;
  socklen_t l1 = sizeof dom, l2 = sizeof type;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
      getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l1) != 0 || dom != AF_UNIX ||
      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l2) != 0 ||
      type != SOCK_STREAM)
    return -1;
  struct ucred cr;
  socklen_t lc = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &lc) != 0 ||
      lc != sizeof cr || cr.pid != getppid() || cr.uid != getuid())
    return -1;
  unsigned char hello[CF__HELLO_SIZE];
  ssize_t r;
  while ((r = recv(fd, hello, sizeof hello, MSG_PEEK | MSG_DONTWAIT)) < 0 &&
         errno == EINTR)
    ;
  if (r < 0 || !cf__hello_check(hello, (size_t)r, secret))
    return -1;
  while ((r = recv(fd, hello, sizeof hello, MSG_DONTWAIT)) < 0 &&
         errno == EINTR)
    ;
  if (r != (ssize_t)sizeof hello || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
    return -1; /* cannot happen: the bytes were there */
  return fd;
}

/* Runs before main() in every process; in a worker it never returns.  The
 * marker is always removed from the environment, whether or not it was
 * ours: it must reach neither main() nor any child. */
__attribute__((constructor)) static void cf__worker_constructor(void) {
  const char *raw = getenv(CF__PP_ENV);
  if (!raw)
    return;
  char v[96];
  const char *sv = secure_getenv(CF__PP_ENV); /* NULL when AT_SECURE */
  bool fits = sv && strlen(sv) < sizeof v;
  if (fits)
    strcpy(v, sv);
  unsetenv(CF__PP_ENV);
  int fd = fits ? cf__worker_accept(v) : -1;
  if (fd < 0)
    return; /* not a worker: main() runs normally */
  int code = cf__worker_main(fd);
#ifdef CF_COVERAGE
  __gcov_dump();
#endif
  _exit(code);
}
