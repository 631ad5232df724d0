/*
 * What the two backends whose workers are other processes share: the
 * process pool (process_pool.c) and the MPI backend (mpi_pool.c).  In both
 * a manager thread alone talks to the workers; submitters, waiters and the
 * manager meet here: a FIFO of futures, the flags and counters, and each
 * worker's state as other threads see it (for stats, and to stop a running
 * chunk).  All of that is under `mu`.
 *
 * A backend's pool struct starts with a cf__rpool, and its worker struct
 * with a cf__rworker; the rpool finds the workers through `workers` and
 * `stride`.
 */
#ifndef CF_REMOTE_H
#define CF_REMOTE_H

#include "internal.h"

#include <pthread.h>

/* A worker's state.  FREE: no process (a process pool's empty slot, or an
 * MPI rank gone); EXITING: retired on purpose, not yet reaped. */
enum { CF__RW_FREE, CF__RW_STARTING, CF__RW_IDLE, CF__RW_BUSY, CF__RW_EXITING };

typedef struct cf__rworker {
  int state;       /* CF__RW_*: the manager writes it, cf__rp_set_state */
  cf_future *task; /* manager only: its future, with the executor's ref */
  uint64_t task_id;
  bool send_stop; /* manager only: a STOP is due (cf__rp_stops_due) */
  /* Under mu, for other threads: the future while BUSY, and whether a
   * stop was asked (1) or sent (2). */
  cf_future *running;
  int stop;
} cf__rworker;

typedef struct cf__rpool {
  cf_executor base;
  pthread_mutex_t mu; /* everything below but what says otherwise */
  cf_future *qhead, *qtail;
  size_t qlen;
  bool shutdown, broken, stopped, self_destroy;
  size_t nlive, nidle, nbusy;
  uint64_t completed, failed, cancelled;
  atomic_bool stop_pending; /* some worker's stop is 1: look (manager) */
  pthread_t manager;
  pthread_mutex_t join_mu;
  bool joined;
  /* set by cf__rp_init */
  void (*poke)(struct cf__rpool *rp); /* wakes the manager; called
                                         without mu held */
  unsigned char *workers;             /* nworkers, stride bytes apart */
  size_t stride;
  int nworkers;
} cf__rpool;

static inline cf__rworker *cf__rp_worker(cf__rpool *rp, int i) {
  return (cf__rworker *)(void *)(rp->workers + (size_t)i * rp->stride);
}

/* The executor, the locks; the workers are given later (cf__rp_workers). */
void cf__rp_init(cf__rpool *rp, const cf__backend *backend, int max_workers,
                 void (*poke)(cf__rpool *));
void cf__rp_workers(cf__rpool *rp, void *workers, size_t stride, int n);
void cf__rp_fini(cf__rpool *rp);

/* Is this thread the pool's manager (in one of its callbacks)?  Asked of
 * the thread's own context, not by comparing pthread_t: once the manager
 * is joined, glibc hands its pthread_t to the next thread it creates. */
bool cf__rp_on_manager(cf__rpool *rp);

void cf__rp_count(cf__rpool *rp, uint64_t *counter);
/* Sets a worker's state, keeping the counts (for stats). */
void cf__rp_set_state(cf__rpool *rp, cf__rworker *w, int state);

/* Empties the queue into a list linked through f->next (mu held). */
cf_future *cf__rp_steal_locked(cf__rpool *rp);
/* Fails and releases every future of a list (each gets its copy of msg). */
void cf__rp_fail_list(cf_future *l, int status, int code, const char *msg);
/* The queue's first future, taken, or NULL (also when broken). */
cf_future *cf__rp_pop(cf__rpool *rp);

/* Manager: gives the idle worker w the future f just taken from the
 * queue (BUSY first: a running future of the pool is always some worker's
 * `running`, where cf__rp_request_stop looks), and starts it.  False when f
 * was cancelled while queued: w is idle again and f released. */
bool cf__rp_start(cf__rpool *rp, cf__rworker *w, cf_future *f);

/* The manager's start: its thread's name, and the context that makes a
 * wait from one of its callbacks on a pending future of this pool fail
 * with CF_EDEADLK (only this thread completes them).  ctx lives on the
 * manager's stack. */
void cf__rp_manager_begin(cf__rpool *rp, cf__worker_ctx *ctx, const char *name);
/* The manager's end, after its last callbacks: marks the pool stopped,
 * fails what is left in the queue with CF_EBROKEN, and returns whether
 * the pool must now be freed by this thread (a callback dropped the last
 * reference; the thread is detached then). */
bool cf__rp_manager_end(cf__rpool *rp);

/* The backend's submit (ex: a cf__rpool): queues f and pokes.  CF_OK,
 * CF_ESHUTDOWN, or CF_EBROKEN (broken, or the manager stopped without a
 * shutdown). */
int cf__rp_submit(cf_executor *ex, cf_future *f);
/* The backend's shutdown: no more submits; with cancel the queued futures
 * are cancelled; with wait the manager is joined (not from a callback on
 * the manager itself: it ends after the callback returns). */
void cf__rp_shutdown(cf__rpool *rp, bool wait, bool cancel);
void cf__rp_join(cf__rpool *rp);
/* From cf_map's consumer: the map could not cancel f (a chunk) because it
 * runs.  Asks its worker to stop after the current input: marks it and
 * pokes; the manager sends the STOP (cf__rp_stops_due).  Not found: f is
 * done, or its answer is being read already. */
void cf__rp_request_stop(cf_executor *ex, cf_future *f);
/* Manager: marks send_stop on the workers whose STOP is due and returns
 * whether any is (one plain load in the common case). */
bool cf__rp_stops_due(cf__rpool *rp);
void cf__rp_stats(cf_executor *ex, cf_executor_stats *st);
/* The backend's purge: drops the cancelled futures of the queue. */
void cf__rp_purge(cf_executor *ex);
/* The last reference is dropped on the manager itself (in a callback):
 * marks the pool for the manager to free as it exits, and returns true.
 * Elsewhere returns false: the caller frees. */
bool cf__rp_freed_by_manager(cf__rpool *rp);

#endif /* CF_REMOTE_H */
