/*
 * The MPI backend's job: start-up (cf_mpi_main), the worker ranks' side
 * (they serve pools with the process pool's own loop, cf__worker_loop,
 * over an MPI channel), and the end (cf_mpi_finalize).  The root's side
 * of a pool is mpi_pool.c.
 */
#include "mpi_common.h"
#include "process.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* MPI is one per process, so is what cf_mpi_main() set up.  Guarded by
 * cf__world_mu; cf__world_cv is signalled when the pool over the world's
 * ranks is gone (cf_mpi_finalize waits for one being destroyed). */
static pthread_mutex_t cf__world_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cf__world_cv = PTHREAD_COND_INITIALIZER;
static cf__mpi_world cf__world;
static bool cf__world_up;  /* cf_mpi_main() returned on the root */
static bool cf__main_done; /* cf_mpi_main() was called */
static bool cf__finalized;
static pid_t cf__root_pid;

/* ---- the worker ranks ---------------------------------------------------- */

/* Serves the pools `root` creates on comm, one after another: each starts
 * with INIT and ends with EXIT.  Returns after the EXIT that ends serving
 * (CF__MPI_EXIT_END, or any EXIT when `once`), or on an error. */
static int cf__mpi_serve_on(MPI_Comm comm, int root, bool once) {
  cf__mpi_link link;
  cf__mpi_link_init(&link, comm, root, false);
  cf__chan ch;
  cf__mpi_chan_init(&ch, &link);
  unsigned long slack = cf__mpi_precise_naps();
  int rc;
  for (;;) {
    cf__frame last;
    int st = cf__worker_loop(&ch, &last);
    rc = st == 3 ? CF_ENOMEM : st == 4 ? CF_EPROTO : CF_OK;
    if (rc == CF_OK && last.type == 0)
      rc = CF_ESYS; /* MPI failed under us */
    if (rc != CF_OK ||
        (last.type == CF__MSG_EXIT && (once || last.id == CF__MPI_EXIT_END)))
      break;
    /* An EXIT that ends one pool of cf_mpi_main()'s, or an INITFAIL sent
     * (the root breaks the pool, then sends EXIT): serve on. */
  }
  cf__mpi_restore_naps(slack); /* cf_mpi_serve() returns to the caller */
  return rc;
}

static int cf__mpi_dup(MPI_Comm comm, MPI_Comm *out) {
  char why[MPI_MAX_ERROR_STRING + 64];
  int e = MPI_Comm_dup(comm, out);
  if (e == MPI_SUCCESS)
    e = MPI_Comm_set_errhandler(*out, MPI_ERRORS_RETURN);
  if (e == MPI_SUCCESS)
    return CF_OK;
  cf__set_last_error("MPI_Comm_dup failed: %s",
                     cf__mpi_error_string(e, why, sizeof why));
  return CF_ESYS;
}

int cf_mpi_serve(MPI_Comm comm, int root) {
  int flag = 0, fin = 0, inter = 0, size = 0, me = -1;
  if (comm == MPI_COMM_NULL)
    return CF_EINVAL;
  if (MPI_Initialized(&flag) != MPI_SUCCESS || !flag ||
      MPI_Finalized(&fin) != MPI_SUCCESS || fin)
    return CF_ESTATE;
  if (MPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS || inter ||
      MPI_Comm_size(comm, &size) != MPI_SUCCESS ||
      MPI_Comm_rank(comm, &me) != MPI_SUCCESS || root < 0 || root >= size ||
      root == me)
    return CF_EINVAL;
  MPI_Comm dup;
  int rc = cf__mpi_dup(comm, &dup);
  if (rc != CF_OK)
    return rc;
  rc = cf__mpi_serve_on(dup, root, true);
  MPI_Comm_free(&dup);
  return rc;
}

/* ---- the job's start and end ------------------------------------------- */

static void cf__mpi_atexit(void) {
  /* Not in a child the root forked: its MPI belongs to the parent. */
  if (getpid() != cf__root_pid)
    return;
  pthread_mutex_lock(&cf__world_mu);
  bool due = cf__world_up && !cf__finalized;
  pthread_mutex_unlock(&cf__world_mu);
  if (due)
    cf_mpi_finalize();
}

/* A worker rank of cf_mpi_main()'s (comm: its duplicate of the world,
 * every pool until the job's end), or a process a spawning pool started
 * (comm: the intercommunicator to the spawner, that one pool): serves,
 * then leaves the process, finalising MPI whoever initialised it (the
 * process ends here: cfutures-mpi.h).  One that cannot go on ends the
 * job, rather than leave the root waiting for its answers. */
static _Noreturn void cf__mpi_serve_and_exit(MPI_Comm comm, bool spawned) {
  if (spawned)
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  int rc = cf__mpi_serve_on(comm, 0, spawned);
  if (rc != CF_OK) {
    fprintf(stderr, "cfutures-mpi: a %s cannot go on: %s\n",
            spawned ? "spawned worker" : "worker rank",
            rc == CF_EPROTO ? "malformed message from the root"
                            : cf_strerror(rc));
    MPI_Abort(spawned ? comm : MPI_COMM_WORLD, 1);
  }
  if (spawned)
    MPI_Comm_disconnect(&comm);
  else
    MPI_Comm_free(&comm);
  MPI_Finalize();
  exit(0);
}

/* MPI_Init_thread unless the application initialised MPI. */
static int cf__mpi_init(int *argc, char ***argv) {
  int flag = 0, fin = 0;
  if (MPI_Finalized(&fin) != MPI_SUCCESS || fin) {
    cf__set_last_error("cf_mpi_main: MPI was finalized already");
    return CF_ESTATE;
  }
  if (MPI_Initialized(&flag) != MPI_SUCCESS)
    return CF_ESYS;
  if (flag)
    return CF_OK;
  int provided, e = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  if (e != MPI_SUCCESS) {
    char why[MPI_MAX_ERROR_STRING + 64];
    cf__set_last_error("MPI_Init_thread failed: %s",
                       cf__mpi_error_string(e, why, sizeof why));
    return CF_ESYS;
  }
  cf__world.inited = true;
  return CF_OK;
}

int cf_mpi_main(int *argc, char ***argv) {
  if (!argc || !argv)
    return CF_EINVAL;
  pthread_mutex_lock(&cf__world_mu);
  bool twice = cf__main_done;
  cf__main_done = true;
  pthread_mutex_unlock(&cf__world_mu);
  if (twice) {
    cf__set_last_error("cf_mpi_main() was called already");
    return CF_ESTATE;
  }
  int rc = cf__mpi_init(argc, argv);
  MPI_Comm parent = MPI_COMM_NULL, comm;
  if (rc == CF_OK && MPI_Comm_get_parent(&parent) == MPI_SUCCESS &&
      parent != MPI_COMM_NULL)
    cf__mpi_serve_and_exit(parent, true);
  if (rc == CF_OK)
    rc = cf__mpi_dup(MPI_COMM_WORLD, &comm);
  int me = 0;
  if (rc == CF_OK && MPI_Comm_rank(comm, &me) != MPI_SUCCESS)
    rc = CF_ESYS;
  if (rc != CF_OK)
    return rc;
  if (me != 0)
    cf__mpi_serve_and_exit(comm, false);
  pthread_mutex_lock(&cf__world_mu);
  cf__world.comm = comm;
  cf__world_up = true;
  cf__root_pid = getpid();
  pthread_mutex_unlock(&cf__world_mu);
  atexit(cf__mpi_atexit);
  cf__clear_last_error();
  return CF_OK;
}

int cf__mpi_world_claim(cf_executor *ex, MPI_Comm *comm) {
  pthread_mutex_lock(&cf__world_mu);
  int rc = CF_OK;
  if (!cf__world_up || cf__finalized) {
    cf__set_last_error("no ranks to work on: call cf_mpi_main() first, on "
                       "every rank (or give a communicator)");
    rc = CF_ESTATE;
  } else if (cf__world.live) {
    cf__set_last_error("a pool over cf_mpi_main()'s ranks is alive: the "
                       "ranks serve one pool at a time");
    rc = CF_ESTATE;
  } else {
    cf__world.live = ex;
    *comm = cf__world.comm;
  }
  pthread_mutex_unlock(&cf__world_mu);
  return rc;
}

void cf__mpi_world_release(void) {
  pthread_mutex_lock(&cf__world_mu);
  cf__world.live = NULL;
  pthread_cond_broadcast(&cf__world_cv);
  pthread_mutex_unlock(&cf__world_mu);
}

/* The pool alive over the world's ranks, with a reference for the caller,
 * or NULL.  Waits for one being destroyed (no reference left) to be
 * gone: it must not be revived. */
static cf_executor *cf__mpi_world_take_live(void) {
  pthread_mutex_lock(&cf__world_mu);
  cf_executor *ex = NULL;
  while (cf__world.live) {
    ex = cf__world.live;
    uint32_t r = ex ? atomic_load(&ex->refs) : 0;
    while (r && !atomic_compare_exchange_weak(&ex->refs, &r, r + 1))
      ;
    if (r)
      break;
    ex = NULL;
    pthread_cond_wait(&cf__world_cv, &cf__world_mu);
  }
  pthread_mutex_unlock(&cf__world_mu);
  return ex;
}

int cf_mpi_finalize(void) {
  int fin = 0;
  pthread_mutex_lock(&cf__world_mu);
  /* Finalised by the application: nothing can be sent any more (the
   * worker ranks then wait in vain: cfutures-mpi.h says to call this
   * instead of MPI_Finalize). */
  bool ok = cf__world_up && !cf__finalized && getpid() == cf__root_pid &&
            MPI_Finalized(&fin) == MPI_SUCCESS && !fin;
  cf__finalized = ok || cf__finalized;
  pthread_mutex_unlock(&cf__world_mu);
  if (!ok)
    return CF_ESTATE;
  cf_executor *ex = cf__mpi_world_take_live();
  if (ex) {
    cf_shutdown(ex, true, true);
    cf_executor_release(ex);
  }
  int size = 0;
  MPI_Comm_size(cf__world.comm, &size);
  for (int r = 1; r < size; r++) {
    cf__mpi_link link;
    cf__mpi_link_init(&link, cf__world.comm, r, false);
    cf__chan ch;
    cf__mpi_chan_init(&ch, &link);
    cf__ipc_send_exit(&ch, CF__MPI_EXIT_END);
  }
  MPI_Comm_free(&cf__world.comm);
  if (cf__world.inited)
    MPI_Finalize();
  return CF_OK;
}
