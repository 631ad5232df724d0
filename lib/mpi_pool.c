/*
 * The MPI backend, the root's side.
 *
 * Data path: cf_submit() -> cf__mp_submit() queues the future and wakes the
 * pool's manager thread -> the manager (cf__mp_manager) sends it to an idle
 * worker rank as a TASK or CHUNK frame (ipc.h, over mpi_chan.c) -> the rank
 * runs it in the process pool's own worker loop (mpi_worker.c) and answers
 * RESULT / CHUNKRESULT -> the manager completes the future, so done
 * callbacks run on the manager thread.  cf_map_destroy() stops a running
 * chunk as in the process pool: the manager sends STOP, which the rank
 * looks for between inputs.
 *
 * The manager makes every MPI call of the pool once it runs (create makes
 * the start-up handshake before starting it), and never blocks inside
 * MPI waiting for a peer: it probes, without sleeping for CF__MPI_SPIN_NS
 * after the last message, then with naps (mpi_common.h); with nothing in flight
 * it sleeps on its condition variable until a submit wakes it.  Sends are
 * MPI_Send, to ranks that are idle and probing (a TASK or CHUNK) or of a
 * few bytes (STOP, EXIT), so they do not wait for the peer.
 *
 * One task at a time per rank, as in the process pool.  A rank that fails
 * under MPI (an error returned for it: see cfutures-mpi.h for when that
 * can happen at all) is gone for the pool: its task fails with
 * CF_EWORKERDIED, and the policy says whether the pool breaks.
 */
#include "alloc.h"
#include "batch.h"
#include "mpi_common.h"
#include "process.h"
#include "remote.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CF__MP_OPTIONS_V1 CF__V1_SIZE(cf_mpi_pool_options, initarg_len)
_Static_assert(sizeof(cf_mpi_pool_options) ==
                   CF__V1_SIZE(cf_mpi_pool_options, max_queued),
               "cf_mpi_pool_options ends with padding");

typedef struct cf__mrank {
  cf__rworker rw; /* state (FREE: gone), task, stop requests (remote.h) */
  cf__mpi_link link;
  cf__chan ch;
} cf__mrank;

typedef struct cf__mpool {
  cf__rpool rp;      /* the queue, flags, counters, manager (remote.h) */
  pthread_cond_t cv; /* the manager sleeps on it (CLOCK_MONOTONIC) ... */
  bool poked;        /* ... until this is set (under rp.mu) */
  /* fixed at create */
  MPI_Comm comm;
  bool own_comm;       /* our duplicate of the caller's comm, or the spawned
                          workers' intercommunicator; else the world's */
  bool spawned;        /* comm is the intercommunicator to spawned workers */
  int comm_size, root; /* of the workers' group; root -1 when spawned */
  cf__mrank *r;
  int nr;
  int *index; /* comm rank -> index in r, or -1 */
  cf_mpi_pool_options o;
  void *initarg;
  cf__fnref initref;
  cf__modules mods;
  unsigned char *modwire;
  size_t modwire_len;
  /* manager only */
  uint64_t next_id;
  cf__fncache fns;
  size_t nchanged;
  char why[400];
} cf__mpool;

static void cf__mp_free(cf__mpool *p);

/* The manager sleeps on a condition variable (MPI has no descriptor to
 * poll): a submit, a shutdown or a stop request wakes it. */
static void cf__mp_poke(cf__rpool *rp) {
  cf__mpool *p = (cf__mpool *)rp;
  pthread_mutex_lock(&p->rp.mu);
  p->poked = true;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->rp.mu);
}

/* ---- breaking, and ranks that are gone ----------------------------------- */

/* The pool cannot go on: every queued and running future fails with
 * CF_EBROKEN.  Busy ranks cannot be stopped: their answers are awaited,
 * then dropped, before the ranks are released (cf__mp_done). */
static void cf__mp_break(cf__mpool *p, int code, const char *why) {
  pthread_mutex_lock(&p->rp.mu);
  bool was = p->rp.broken;
  p->rp.broken = true;
  cf_future *l = cf__rp_steal_locked(&p->rp);
  pthread_mutex_unlock(&p->rp.mu);
  if (was)
    return;
  cf__rp_fail_list(l, CF_EBROKEN, code, why);
  for (int i = 0; i < p->nr; i++) {
    cf_future *f = p->r[i].rw.task;
    if (!f)
      continue;
    p->r[i].rw.task = NULL;
    cf__rp_count(&p->rp, &p->rp.failed);
    cf__future_fail(f, CF_EBROKEN, code, why ? cf__strdup(why) : NULL);
    cf_future_release(f);
  }
}

/* r failed under MPI, or broke the protocol (status CF_EPROTO): it is
 * gone for this pool.  Its task fails; the policy decides for the rest. */
static void cf__mp_gone(cf__mpool *p, cf__mrank *r, int status,
                        const char *what) {
  char msg[300];
  snprintf(msg, sizeof msg, "worker rank %d: %s", r->link.peer, what);
  cf_future *f = r->rw.task;
  r->rw.task = NULL;
  cf__rp_set_state(&p->rp, &r->rw, CF__RW_FREE);
  pthread_mutex_lock(&p->rp.mu);
  bool brk = p->rp.nlive == 0 || p->o.on_worker_death == CF_ON_DEATH_BREAK;
  pthread_mutex_unlock(&p->rp.mu);
  /* Broken before the rank's task says why: whoever sees that failure
   * and submits again gets CF_EBROKEN, not a future that fails. */
  if (brk) {
    char why[400];
    snprintf(why, sizeof why, "the pool is broken: %s", msg);
    cf__mp_break(p, 0, why);
  }
  if (f) {
    cf__rp_count(&p->rp, &p->rp.failed);
    cf__future_fail(f, status, 0, cf__strdup(msg));
    cf_future_release(f);
  }
}

/* ---- sending tasks ------------------------------------------------------- */

/* Would every rank run this very function?  Only if its module was loaded
 * with the program (as a rank loads it) and is the same build on every
 * rank. */
static int cf__mp_fnref(cf__mpool *p, cf_task_fn fn, cf__fnref *out) {
  long k;
  int rc = cf__fncache_get(&p->fns, &p->mods, (uintptr_t)fn, &k, out);
  if (k < 0) {
    snprintf(p->why, sizeof p->why,
             "the task function is in no module that was loaded when the "
             "pool was created; the task was not run");
    return CF_EINVAL;
  }
  if (!p->mods.m[k].startup) {
    snprintf(p->why, sizeof p->why,
             "the task function is in %.200s, loaded with dlopen(): worker "
             "ranks load only the program and the libraries it links; the "
             "task was not run",
             p->mods.m[k].name);
    return CF_EINVAL;
  }
  if (p->mods.m[k].changed) {
    snprintf(p->why, sizeof p->why,
             "the task's module %.200s is another build on some worker "
             "rank than on the root; the task was not run",
             p->mods.m[k].name);
    return CF_EINVAL;
  }
  return rc;
}

/* Hands a started future to its rank (BUSY with it already). */
static void cf__mp_send(cf__mpool *p, cf__mrank *r, cf_future *f) {
  uint64_t id = r->rw.task_id = ++p->next_id;
  cf__batch *c = cf__future_batch(f);
  cf__fnref ref;
  int rc = cf__mp_fnref(p, c ? c->fn : f->fn, &ref);
  if (rc == CF_OK)
    rc = c ? cf__ipc_send_chunk(&r->ch, id, &ref, c)
           : cf__ipc_send_task(&r->ch, id, &ref, cf__buf_data(&f->in),
                               cf__buf_len(&f->in));
  if (rc == CF_EINVAL || rc == CF_ENOMEM) { /* nothing was sent */
    r->rw.task = NULL;
    cf__rp_set_state(&p->rp, &r->rw, CF__RW_IDLE);
    cf__rp_count(&p->rp, &p->rp.failed);
    cf__future_fail(f, rc == CF_EINVAL ? CF_ETASK : CF_ENOMEM, rc,
                    cf__strdup(rc == CF_EINVAL ? p->why : "out of memory"));
    cf_future_release(f);
  } else if (rc != CF_OK) {
    cf__mp_gone(p, r, CF_EWORKERDIED, "MPI_Send failed");
  }
}

/* Starts queued tasks on idle ranks. */
static void cf__mp_dispatch(cf__mpool *p) {
  for (int i = 0; i < p->nr; i++) {
    cf__mrank *r = &p->r[i];
    while (r->rw.state == CF__RW_IDLE) {
      cf_future *f = cf__rp_pop(&p->rp);
      if (!f)
        return;
      if (cf__rp_start(&p->rp, &r->rw, f))
        cf__mp_send(p, r, f);
    }
  }
}

/* Sends the STOPs that cf__rp_request_stop asked for. */
static void cf__mp_send_stops(cf__mpool *p) {
  if (!cf__rp_stops_due(&p->rp))
    return;
  for (int i = 0; i < p->nr; i++) {
    cf__mrank *r = &p->r[i];
    if (r->rw.send_stop) {
      r->rw.send_stop = false;
      if (cf__ipc_send_stop(&r->ch, r->rw.task_id) != CF_OK)
        cf__mp_gone(p, r, CF_EWORKERDIED, "MPI_Send failed");
    }
  }
}

/* ---- receiving results --------------------------------------------------- */

/* A RESULT payload into t / *task_rc.  CF_OK or CF_EPROTO. */
static int cf__mp_result(unsigned char *buf, size_t len, cf_task *t,
                         int *task_rc) {
  cf__result_view v;
  if (cf__ipc_decode_result(buf, len, &v) != CF_OK)
    return CF_EPROTO;
  if (v.rc != 0) {
    *task_rc = v.rc;
    if (v.has_msg && (t->errmsg = cf__malloc(v.len + 1))) {
      if (v.len)
        memcpy(t->errmsg, v.data, v.len);
      t->errmsg[v.len] = '\0';
    }
  } else if (v.len <= CF__INLINE) {
    cf__buf_copy(&t->out, v.data, v.len); /* inline: cannot fail */
  } else {
    /* The future keeps the buffer the result came in. */
    memmove(buf, v.data, v.len);
    cf__buf_adopt(&t->out, buf, v.len, free);
    return CF_OK;
  }
  free(buf);
  return CF_OK;
}

/* RESULT or CHUNKRESULT from r: completes r's task (its callbacks run
 * here) and makes r idle.  Takes buf. */
static void cf__mp_on_answer(cf__mpool *p, cf__mrank *r, const cf__frame *fr,
                             unsigned char *buf) {
  cf_future *f = r->rw.task;
  cf__batch *b = f ? cf__future_batch(f) : NULL;
  bool chunk = b || (!f && fr->type == CF__MSG_CHUNKRESULT);
  if (r->rw.state != CF__RW_BUSY || fr->id != r->rw.task_id ||
      fr->type != (chunk ? CF__MSG_CHUNKRESULT : CF__MSG_RESULT)) {
    free(buf);
    cf__mp_gone(p, r, CF_EPROTO, "malformed message from worker");
    return;
  }
  r->rw.task = NULL;
  cf__rp_set_state(&p->rp, &r->rw, CF__RW_IDLE);
  if (!f) { /* the pool broke meanwhile: its future failed already */
    free(buf);
    return;
  }
  cf_task t = {0};
  int task_rc = 0, rc;
  if (b) {
    rc = cf__ipc_decode_chunk_result(buf, (size_t)fr->len, b->n, b->items);
    free(buf);
  } else {
    rc = cf__mp_result(buf, (size_t)fr->len, &t, &task_rc);
  }
  if (rc != CF_OK) {
    r->rw.task = f; /* fails with the rank */
    cf__rp_set_state(&p->rp, &r->rw, CF__RW_BUSY);
    cf__mp_gone(p, r, rc == CF_ENOMEM ? CF_ENOMEM : CF_EPROTO,
                rc == CF_ENOMEM ? "out of memory for its answer"
                                : "malformed message from worker");
    return;
  }
  cf__rp_count(&p->rp, task_rc == 0 ? &p->rp.completed
                       : task_rc == CF_ECANCELLED && cf_future_stop_requested(f)
                           ? &p->rp.cancelled /* it honoured a stop request */
                           : &p->rp.failed);
  cf__future_finish(f, task_rc, &t); /* callbacks run here */
  cf_future_release(f);
}

/* Receives one frame if one has come.  Returns true if one did. */
static bool cf__mp_receive(cf__mpool *p) {
  int from, count;
  int got = cf__mpi_probe(p->comm, MPI_ANY_SOURCE, &from, &count);
  if (got <= 0) {
    if (got < 0) /* MPI failed for the whole communicator */
      cf__mp_break(p, 0, "the pool is broken: MPI_Iprobe failed");
    return got < 0;
  }
  int k = from >= 0 && from < p->comm_size ? p->index[from] : -1;
  cf__frame fr;
  unsigned char *buf;
  int rc = cf__mpi_recv(p->comm, from, count, &fr, &buf);
  if (k < 0) { /* not one of ours: nothing to answer to */
    free(buf);
    return true;
  }
  cf__mrank *r = &p->r[k];
  if (rc != CF_OK)
    cf__mp_gone(p, r, rc == CF_ESYS ? CF_EWORKERDIED : rc,
                rc == CF_ESYS ? "MPI_Recv failed"
                              : "malformed message from worker");
  else if (fr.type == CF__MSG_RESULT || fr.type == CF__MSG_CHUNKRESULT)
    cf__mp_on_answer(p, r, &fr, buf);
  else {
    free(buf);
    cf__mp_gone(p, r, CF_EPROTO, "malformed message from worker");
  }
  return true;
}

/* ---- the manager --------------------------------------------------------- */

/* Done: shut down (or broken) with nothing queued and every answer in. */
static bool cf__mp_done(cf__mpool *p) {
  pthread_mutex_lock(&p->rp.mu);
  bool done = (p->rp.shutdown || p->rp.broken) && !p->rp.qhead &&
              p->rp.nbusy == 0;
  pthread_mutex_unlock(&p->rp.mu);
  return done;
}

/* Nothing came: spins a while, then sleeps until poked when nothing is in
 * flight, else naps (cf__mpi_wait; a timed wait, which a submit also
 * ends). */
static void cf__mp_idle(cf__mpool *p, cf__mpi_wait *w) {
  int64_t ns = cf__mpi_wait_next(w);
  if (ns == 0) {
    sched_yield();
    return;
  }
  pthread_mutex_lock(&p->rp.mu);
  if (!p->poked && p->rp.nbusy == 0) {
    pthread_cond_wait(&p->cv, &p->rp.mu);
  } else if (!p->poked) {
    int64_t t = cf__now_ns() + ns;
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
    pthread_cond_timedwait(&p->cv, &p->rp.mu, &ts);
  }
  pthread_mutex_unlock(&p->rp.mu);
}

/* The end of the pool for its ranks: EXIT to each (in cf_mpi_main()'s
 * world the rank then waits for the next pool; a rank of cf_mpi_serve()
 * returns); cf__rp_manager_end fails what is left in the queue. */
static void cf__mp_wind_down(cf__mpool *p) {
  uint64_t id = p->own_comm ? CF__MPI_EXIT_END : CF__MPI_EXIT_POOL;
  for (int i = 0; i < p->nr; i++)
    if (p->r[i].rw.state != CF__RW_FREE)
      cf__ipc_send_exit(&p->r[i].ch, id);
  for (int i = 0; i < p->nr; i++)
    cf__mpi_link_reap(&p->r[i].link, true);
}

static void *cf__mp_manager(void *arg) {
  cf__mpool *p = arg;
  cf__worker_ctx io;
  cf__rp_manager_begin(&p->rp, &io, "cf-mpipool");
  cf__mpi_precise_naps();
  cf__mpi_wait w;
  cf__mpi_wait_reset(&w);
  for (;;) {
    cf__mp_dispatch(p);
    cf__mp_send_stops(p);
    if (cf__mp_done(p))
      break;
    /* After any message or submit the wait starts over with a spin: the
     * next answer, or the next submit of a caller that just got its
     * result, usually comes sooner than a wakeup. */
    if (cf__mp_receive(p)) {
      cf__mpi_wait_reset(&w);
      continue;
    }
    pthread_mutex_lock(&p->rp.mu);
    bool poked = p->poked;
    p->poked = false;
    pthread_mutex_unlock(&p->rp.mu);
    if (poked)
      cf__mpi_wait_reset(&w);
    else
      cf__mp_idle(p, &w);
  }
  cf__mp_wind_down(p);
  if (cf__rp_manager_end(&p->rp))
    cf__mp_free(p);
  return NULL;
}

/* ---- the backend --------------------------------------------------------- */

static int cf__mp_shutdown(cf_executor *ex, bool wait, bool cancel) {
  cf__rp_shutdown((cf__rpool *)ex, wait, cancel);
  return CF_OK;
}

static void cf__mp_free_memory(cf__mpool *p) {
  cf__modules_free(&p->mods);
  free(p->modwire);
  free(p->index);
  free(p->r);
  free(p->initarg);
  free(p);
}

/* After the manager: the ranks go back to the world, or the duplicate
 * goes. */
static void cf__mp_free(cf__mpool *p) {
  if (p->spawned)
    MPI_Comm_disconnect(&p->comm); /* the workers disconnect and leave */
  else if (p->own_comm)
    MPI_Comm_free(&p->comm);
  else
    cf__mpi_world_release();
  cf__rp_fini(&p->rp);
  pthread_cond_destroy(&p->cv);
  cf__mp_free_memory(p);
}

static void cf__mp_destroy(cf_executor *ex) {
  cf__mpool *p = (cf__mpool *)ex;
  cf__mp_shutdown(ex, true, false);
  if (!cf__rp_freed_by_manager(&p->rp))
    cf__mp_free(p);
}

/* In a fork child: the manager and MPI belong to the parent.  Memory only. */
static void cf__mp_forget(cf_executor *ex) {
  cf__mp_free_memory((cf__mpool *)ex);
}

static const cf__backend cf__mp_backend = {
    .submit = cf__rp_submit,
    .shutdown = cf__mp_shutdown,
    .destroy = cf__mp_destroy,
    .stats = cf__rp_stats,
    .terminate = NULL, /* ranks are not our processes to signal */
    .forget = cf__mp_forget,
    .request_stop = cf__rp_request_stop,
    .purge = cf__rp_purge,
};

/* ---- create -------------------------------------------------------------- */

int cf_mpi_pool_options_init(cf_mpi_pool_options *o) {
  if (!o)
    return CF_EINVAL;
  *o = (cf_mpi_pool_options){.size = sizeof *o, .comm = MPI_COMM_NULL};
  return CF_OK;
}

static int cf__mp_options(const cf_mpi_pool_options *opts,
                          cf_mpi_pool_options *o) {
  cf_mpi_pool_options_init(o);
  if (opts && cf__opts_in(o, sizeof *o, opts, CF__MP_OPTIONS_V1) != CF_OK)
    return CF__REFUSE(CF_EINVAL,
                      "options: size %zu is not that of a "
                      "cf_mpi_pool_options set up by "
                      "cf_mpi_pool_options_init(), or fields this library "
                      "does not know are set",
                      opts->size);
  if (o->max_workers < 0 || o->spawn < 0 || (o->initarg_len && !o->initarg) ||
      (o->on_worker_death != CF_ON_DEATH_BREAK &&
       o->on_worker_death != CF_ON_DEATH_RESTART))
    return CF__REFUSE(
        CF_EINVAL,
        "invalid options: max_workers and spawn must be >= 0, initarg "
        "set when initarg_len is, on_worker_death a "
        "cf_death_policy");
  return CF_OK;
}

/* MPI up, with the thread level the manager needs. */
static int cf__mp_mpi_ready(void) {
  int init = 0, fin = 0, level = MPI_THREAD_SINGLE;
  if (MPI_Initialized(&init) != MPI_SUCCESS || !init ||
      MPI_Finalized(&fin) != MPI_SUCCESS || fin)
    return CF__REFUSE(CF_ESTATE, "MPI is not initialised (call "
                                 "cf_mpi_main() first), or was finalised");
  MPI_Query_thread(&level);
  if (level < MPI_THREAD_MULTIPLE)
    return CF__REFUSE(CF_ESTATE,
                      "MPI was initialised without MPI_THREAD_MULTIPLE: the "
                      "pool's manager thread makes MPI calls beside the "
                      "application's threads");
  return CF_OK;
}

/* New worker processes, this program again: their cf_mpi_main() sees its
 * parent and serves (mpi_worker.c).  MPI_Comm_spawn reports its errors on
 * MPI_COMM_SELF, whose handler would abort: it returns them meanwhile. */
static int cf__mp_spawn(cf__mpool *p) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return CF__REFUSE(CF_ENOTSUP, "spawn: cannot read /proc/self/exe, the "
                                  "program the workers would run");
  exe[n] = '\0';
  MPI_Errhandler old;
  MPI_Comm_get_errhandler(MPI_COMM_SELF, &old);
  MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
  int *codes = cf__calloc((size_t)p->o.spawn, sizeof *codes);
  int e = codes ? MPI_Comm_spawn(exe, MPI_ARGV_NULL, p->o.spawn, MPI_INFO_NULL,
                                 0, MPI_COMM_SELF, &p->comm, codes)
                : MPI_ERR_NO_MEM;
  MPI_Comm_set_errhandler(MPI_COMM_SELF, old);
  MPI_Errhandler_free(&old);
  free(codes);
  if (e != MPI_SUCCESS) {
    char s[MPI_MAX_ERROR_STRING + 8];
    return CF__REFUSE(CF_ENOTSUP,
                      "spawn: MPI_Comm_spawn of %d workers failed (this MPI "
                      "may not spawn from here): %s",
                      p->o.spawn, cf__mpi_error_string(e, s, sizeof s));
  }
  MPI_Comm_set_errhandler(p->comm, MPI_ERRORS_RETURN);
  p->own_comm = p->spawned = true;
  p->root = -1;
  return CF_OK;
}

/* The communicator: the world's ranks, or a duplicate of the caller's
 * (collective with cf_mpi_serve() on the other ranks). */
static int cf__mp_comm(cf__mpool *p) {
  if (p->o.spawn > 0)
    return cf__mp_spawn(p);
  if (p->o.comm == MPI_COMM_NULL) {
    int rc = cf__mpi_world_claim(&p->rp.base, &p->comm);
    p->root = 0;
    return rc;
  }
  int inter = 0, me = -1;
  if (MPI_Comm_test_inter(p->o.comm, &inter) != MPI_SUCCESS || inter ||
      MPI_Comm_rank(p->o.comm, &me) != MPI_SUCCESS || me != p->o.root)
    return CF__REFUSE(CF_EINVAL, "options: comm must be an intracommunicator "
                                 "and root this rank's rank in it");
  int e = MPI_Comm_dup(p->o.comm, &p->comm);
  if (e == MPI_SUCCESS)
    e = MPI_Comm_set_errhandler(p->comm, MPI_ERRORS_RETURN);
  if (e != MPI_SUCCESS) {
    char s[MPI_MAX_ERROR_STRING + 8];
    return CF__REFUSE(CF_ESYS, "MPI_Comm_dup failed: %s",
                      cf__mpi_error_string(e, s, sizeof s));
  }
  p->own_comm = true;
  p->root = me;
  return CF_OK;
}

/* The ranks, the module list INIT carries, the initializer. */
static int cf__mp_tables(cf__mpool *p) {
  if (p->spawned)
    MPI_Comm_remote_size(p->comm, &p->comm_size);
  else
    MPI_Comm_size(p->comm, &p->comm_size);
  int n = p->spawned ? p->comm_size : p->comm_size - 1;
  if (p->o.max_workers && p->o.max_workers < n)
    n = p->o.max_workers;
  if (n <= 0)
    return CF__REFUSE(CF_EINVAL, "no worker rank: the job has only the root "
                                 "(run it with mpiexec -n 2 or more, or let "
                                 "the pool spawn its workers)");
  p->nr = n;
  p->r = cf__calloc((size_t)n, sizeof *p->r);
  p->index = cf__malloc((size_t)p->comm_size * sizeof *p->index);
  p->initarg = p->o.initarg_len ? cf__malloc(p->o.initarg_len) : NULL;
  if (!p->r || !p->index || (p->o.initarg_len && !p->initarg) ||
      cf__modules_collect(&p->mods) != CF_OK)
    return CF__REFUSE(CF_ENOMEM, "out of memory");
  if (p->o.initarg_len)
    memcpy(p->initarg, p->o.initarg, p->o.initarg_len);
  for (int c = 0, i = 0; c < p->comm_size; c++) {
    p->index[c] = c != p->root && i < n ? i : -1;
    if (p->index[c] < 0)
      continue;
    cf__mpi_link_init(&p->r[i].link, p->comm, c, true);
    cf__mpi_chan_init(&p->r[i].ch, &p->r[i].link);
    p->r[i].rw.state = CF__RW_IDLE;
    i++;
  }
  p->rp.nlive = p->rp.nidle = (size_t)n;
  p->modwire_len = cf__modules_size(&p->mods);
  p->modwire = cf__malloc(p->modwire_len);
  if (!p->modwire)
    return CF__REFUSE(CF_ENOMEM, "out of memory");
  cf__modules_put(&p->mods, p->modwire);
  if (!p->o.initializer) {
    p->initref.none = true;
    return CF_OK;
  }
  long k = cf__modules_find(&p->mods, (uintptr_t)p->o.initializer);
  if (k < 0 || !p->mods.m[k].startup ||
      cf__fnref_locate((uintptr_t)p->o.initializer, &p->initref) != CF_OK)
    return CF__REFUSE(CF_EINVAL,
                      "the initializer is not in the program or a library "
                      "it links (dlopen()ed modules are not loaded on the "
                      "worker ranks)");
  return CF_OK;
}

/* One rank's answer to INIT.  Returns CF_OK (READY: the modules it runs in
 * another build are marked), or an error with p->why set: CF_EINVAL (it
 * runs another build of the program), CF_ETASK (the initializer failed:
 * *code), CF_EPROTO. */
static int cf__mp_on_init_answer(cf__mpool *p, int from, const cf__frame *fr,
                                 const unsigned char *buf, int *code) {
  uint32_t mod = UINT32_MAX;
  int32_t c = 0;
  if (fr->type == CF__MSG_READY &&
      cf__ipc_decode_ready(buf, (size_t)fr->len, p->mods.n) == CF_OK) {
    for (size_t i = 0; i < fr->len / 4; i++) {
      uint32_t m = cf__ipc_ready_index(buf, i);
      p->nchanged += !p->mods.m[m].changed;
      p->mods.m[m].changed = true;
      mod = m == 0 ? 0 : mod;
    }
  } else if (fr->type != CF__MSG_INITFAIL ||
             cf__ipc_decode_initfail(buf, (size_t)fr->len, p->mods.n, &c,
                                     &mod) != CF_OK) {
    snprintf(p->why, sizeof p->why,
             "malformed answer to the pool's start-up from rank %d", from);
    return CF_EPROTO;
  }
  if (mod == 0) {
    /* Without a build-id the program is known by device and inode, which
     * differ between hosts even for the same file. */
    bool by_file = p->mods.m[0].kind != CF__ID_BUILD;
    snprintf(p->why, sizeof p->why,
             "rank %d runs another build of the program than the root (%s): "
             "start every rank from the same binary%s",
             from,
             by_file ? "compared by device and inode"
                     : "its build-id "
                       "differs",
             by_file ? "; the program has no build-id (link it with "
                       "-Wl,--build-id to run it across hosts)"
                     : "");
    return CF_EINVAL;
  }
  if (c != 0) {
    *code = c;
    if (mod != UINT32_MAX)
      snprintf(p->why, sizeof p->why,
               "the initializer's module %.200s is another build on rank %d; "
               "the initializer was not run",
               p->mods.m[mod].name, from);
    else
      snprintf(p->why, sizeof p->why,
               "the pool's initializer failed on rank %d with code %d", from,
               c);
    return CF_ETASK;
  }
  return CF_OK;
}

/* INIT to every rank, then every answer.  An initializer that failed
 * breaks the pool (CF_OK then, with p->rp.broken); another build of the
 * program, or a malformed answer, refuses it. */
static int cf__mp_handshake(cf__mpool *p) {
  for (int i = 0; i < p->nr; i++)
    if (cf__ipc_send_init(&p->r[i].ch, p->modwire, p->modwire_len, &p->initref,
                          p->initarg, p->o.initarg_len) != CF_OK)
      return CF__REFUSE(CF_ESYS, "MPI_Send of INIT to rank %d failed",
                        p->r[i].link.peer);
  int left = p->nr, refuse = CF_OK, fail_code = 0;
  char fail_why[sizeof p->why] = "";
  cf__mpi_wait wt;
  cf__mpi_wait_reset(&wt);
  while (left > 0) {
    int from, count;
    int got = cf__mpi_probe(p->comm, MPI_ANY_SOURCE, &from, &count);
    if (got < 0)
      return CF__REFUSE(CF_ESYS, "MPI_Iprobe failed");
    if (got == 0) {
      cf__mpi_wait_pause(&wt);
      continue;
    }
    cf__frame fr;
    unsigned char *buf;
    int rc = cf__mpi_recv(p->comm, from, count, &fr, &buf);
    int k = from >= 0 && from < p->comm_size ? p->index[from] : -1;
    if (rc == CF_OK && (k < 0 || p->r[k].rw.state != CF__RW_IDLE))
      rc = CF_EPROTO; /* not ours, or a second answer */
    int code = 0;
    if (rc == CF_OK)
      rc = cf__mp_on_init_answer(p, from, &fr, buf, &code);
    else
      snprintf(p->why, sizeof p->why, "rank %d: %s", from,
               rc == CF_EPROTO ? "malformed answer to the pool's start-up"
                               : cf_strerror(rc));
    free(buf);
    if (k >= 0)
      p->r[k].rw.state = CF__RW_BUSY; /* answered (IDLE again below) */
    left--;
    if (rc == CF_ETASK && !fail_code) {
      fail_code = code;
      memcpy(fail_why, p->why, sizeof fail_why);
    } else if (rc != CF_OK && rc != CF_ETASK && refuse == CF_OK) {
      refuse = rc;
      cf__set_last_error("%s", p->why);
    }
  }
  for (int i = 0; i < p->nr; i++)
    p->r[i].rw.state = CF__RW_IDLE;
  if (refuse != CF_OK)
    return refuse;
  if (fail_code) {
    cf__set_last_error("%s", fail_why);
    p->rp.broken = true; /* submits say CF_EBROKEN; nothing is queued yet */
  }
  return CF_OK;
}

/* A create that failed once the ranks were ours: release them. */
static void cf__mp_abandon(cf__mpool *p, bool claimed) {
  if (!claimed) {
    cf__mp_free_memory(p);
    return;
  }
  for (int i = 0; p->r && i < p->nr; i++)
    cf__mpi_link_reap(&p->r[i].link, true); /* INITs sent */
  uint64_t id = p->own_comm ? CF__MPI_EXIT_END : CF__MPI_EXIT_POOL;
  for (int c = 0; c < p->comm_size; c++) {
    if (c == p->root || (!p->own_comm && (!p->index || p->index[c] < 0)))
      continue; /* unused ranks of the world wait for the next pool */
    cf__mpi_link link;
    cf__mpi_link_init(&link, p->comm, c, false);
    cf__chan ch;
    cf__mpi_chan_init(&ch, &link);
    cf__ipc_send_exit(&ch, id);
  }
  if (p->spawned)
    MPI_Comm_disconnect(&p->comm);
  else if (p->own_comm)
    MPI_Comm_free(&p->comm);
  else
    cf__mpi_world_release();
  cf__mp_free_memory(p);
}

/* Ranks of the caller's comm beyond max_workers: they return now. */
static void cf__mp_release_unused(cf__mpool *p) {
  for (int c = 0; p->own_comm && c < p->comm_size; c++) {
    if (c == p->root || p->index[c] >= 0)
      continue;
    cf__mpi_link link;
    cf__mpi_link_init(&link, p->comm, c, false);
    cf__chan ch;
    cf__mpi_chan_init(&ch, &link);
    cf__ipc_send_exit(&ch, CF__MPI_EXIT_END);
  }
}

static int cf__mp_start(cf__mpool *p) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  cf__rp_init(&p->rp, &cf__mp_backend, p->nr, cf__mp_poke);
  cf__executor_bound(&p->rp.base, p->o.max_queued);
  cf__rp_workers(&p->rp, p->r, sizeof *p->r, p->nr);
  /* The manager runs with every signal blocked: they are the
   * application's. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int e = cf__pthread_create(&p->rp.manager, NULL, cf__mp_manager, p);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e == 0)
    return CF_OK;
  cf__rp_fini(&p->rp);
  pthread_cond_destroy(&p->cv);
  return CF__REFUSE(CF_EAGAIN, "cannot create the pool's manager thread");
}

int cf_mpi_pool_create(const cf_mpi_pool_options *opts, cf_executor **out) {
  cf__clear_last_error();
  if (!out)
    return CF__REFUSE(CF_EINVAL, "out is NULL");
  *out = NULL;
  cf_mpi_pool_options o;
  int rc = cf__mp_options(opts, &o);
  if (rc == CF_OK)
    rc = cf__mp_mpi_ready();
  if (rc != CF_OK)
    return rc;
  cf__mpool *p = cf__calloc(1, sizeof *p);
  if (!p)
    return CF__REFUSE(CF_ENOMEM, "out of memory");
  p->o = o;
  rc = cf__mp_comm(p);
  if (rc != CF_OK) {
    cf__mp_free_memory(p);
    return rc;
  }
  rc = cf__mp_tables(p);
  if (rc == CF_OK)
    rc = cf__mp_handshake(p);
  if (rc == CF_OK)
    rc = cf__mp_start(p);
  if (rc != CF_OK) {
    cf__mp_abandon(p, true);
    return rc;
  }
  cf__mp_release_unused(p);
  *out = &p->rp.base;
  return CF_OK;
}
