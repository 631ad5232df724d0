/*
 * cfutures-mpi: the cfutures executor over the ranks of an MPI job.
 *
 * What Python's mpi4py.futures is to concurrent.futures: the same cf_*
 * API (cf_submit, cf_map with chunks, cf_wait, cf_as_completed, done
 * callbacks, shutdown, stats), with tasks that run on the other ranks of
 * an MPI job, on this machine or across a cluster.  Tasks are the same
 * functions over bytes as on the other backends.
 *
 * Built when configure finds MPI (--with-mpi=openmpi or mpich): a build
 * is tied to one MPI implementation, whose ABI it uses.  libcfutures-mpi
 * holds the whole of libcfutures plus this backend: link one of the two,
 * `pkg-config --cflags --libs cfutures-mpi`, not both.
 *
 * Start-up, as users of MPI expect:
 *
 *     int main(int argc, char **argv) {
 *       if (cf_mpi_main(&argc, &argv) != CF_OK)  // every rank, first thing
 *         return 1;
 *       // only rank 0 of MPI_COMM_WORLD gets here: the root
 *       cf_executor *ex;
 *       cf_mpi_pool_create(NULL, &ex);           // over every other rank
 *       ... cf_submit(ex, fn, in, len, &f) ...
 *       cf_executor_release(ex);
 *       return 0;                                // or cf_mpi_finalize()
 *     }
 *
 *     mpiexec -n 5 ./app                         // 1 root + 4 workers
 *
 * Every rank must run the same binary: the pool's start-up compares the
 * program's build-id on every rank with the root's and refuses otherwise.
 * The binary must be at the same path on every host (mpiexec starts it
 * there), and so must the libraries that hold task functions.
 *
 * Threads and MPI: the root's pool runs one manager thread that makes
 * every MPI call of the pool.  MPI must therefore be initialised with
 * MPI_THREAD_MULTIPLE: cf_mpi_main() asks for it when it initialises MPI;
 * a program that initialised MPI itself must have asked for it too
 * (cf_mpi_pool_create() refuses otherwise).  The library works on private
 * duplicates of the communicators it is given, so its messages never meet
 * the application's, and it finalises MPI only if it initialised it.
 *
 * Idle ranks do not spin: a rank waiting for work, and the root's manager
 * waiting for answers, probe without blocking for 200 us after the last
 * message, then sleep between probes, longer the longer they are idle, up
 * to 10 ms (a rank blocked in MPI_Recv would burn a whole CPU); a root
 * with nothing in flight sleeps until a submit.  A task sent to a rank
 * that has been idle for a while may therefore wait up to 10 ms to start;
 * a rank kept busy never sleeps.  docs/SCALING.md has the figures.
 *
 * When a rank dies: with stock MPI (Open MPI, MPICH as Debian ships them)
 * the death of any process ends the whole job: mpiexec kills every other
 * rank, the root included, and exits non-zero with a message naming the
 * rank that died.  Nothing hangs, but nothing can be recovered either: no
 * future fails with CF_EWORKERDIED, the program is gone.  Where MPI reports
 * a failure to the caller instead (communicators here use
 * MPI_ERRORS_RETURN; an MPI with fault tolerance, such as ULFM, returns an
 * error from the failed peer), the rank's running task fails with
 * CF_EWORKERDIED; under CF_ON_DEATH_BREAK the pool then breaks (every
 * other future fails with CF_EBROKEN), under CF_ON_DEATH_RESTART the pool
 * goes on with the ranks that are left (a rank cannot be restarted) and
 * breaks when none is left.  A task that returns non-zero fails only its
 * own future, as on every backend.
 */
#ifndef CFUTURES_MPI_H
#define CFUTURES_MPI_H

#include "cfutures.h"

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* First thing in main(), on every rank of MPI_COMM_WORLD.  Initialises MPI
 * (MPI_Init_thread with MPI_THREAD_MULTIPLE, argc/argv passed on) unless
 * the application did already, and duplicates MPI_COMM_WORLD for the
 * library.  Then:
 *  - on rank 0, the root, returns CF_OK: the program goes on, and
 *    cf_mpi_pool_create(NULL, ...) gives executors over the other ranks;
 *  - on every other rank, serves the pools the root creates, one after
 *    another, until the root calls cf_mpi_finalize() or leaves main(); it
 *    then finalises MPI and ends the process with exit(0), so main() never
 *    goes past this call there (MPI is finalised there even when the
 *    application initialised it: the process ends inside this call, and
 *    nothing else could).  A rank that cannot go on (a malformed message,
 *    no memory) says why on stderr and ends the job with MPI_Abort.
 * A job of one rank has no workers: cf_mpi_pool_create() then refuses,
 * unless the pool spawns its own (cf_mpi_pool_options.spawn).  In a
 * process that a spawning pool started, cf_mpi_main() serves that pool,
 * then finalises MPI and exits.
 * Returns CF_OK (root), CF_ESTATE (called twice, or after MPI_Finalize),
 * CF_EINVAL (NULL arguments), CF_ESYS (MPI failed: the words in
 * cf_last_error_message()), or, on a worker rank, never. */
CF_API int cf_mpi_main(int *argc, char ***argv);

/* On the root: ends the worker ranks cf_mpi_main() serves (each leaves
 * with exit(0)), then finalises MPI if cf_mpi_main() initialised it.
 * Runs by itself at exit() when the program does not call it.  A pool
 * still alive over those ranks is shut down first, with its queued tasks
 * cancelled, waiting for those that run.  Returns CF_OK, or CF_ESTATE
 * (not the root of cf_mpi_main(), called already, or MPI finalised by
 * the application: call this instead of MPI_Finalize, which would leave
 * the worker ranks waiting).  Do not call it from a task or a done
 * callback. */
CF_API int cf_mpi_finalize(void);

/* Like mpi4py's MPICommExecutor, on a communicator of the application's:
 * every rank of comm but `root` calls cf_mpi_serve(comm, root), while
 * `root` calls cf_mpi_pool_create() with that comm and root in its
 * options (the two duplicate comm together: a collective call).  The
 * serving ranks run the pool's tasks until the root shuts that pool down,
 * then return CF_OK.  Returns CF_OK, CF_EINVAL (MPI_COMM_NULL, an
 * intercommunicator, root out of range or this very rank), CF_ESTATE (MPI
 * not initialised, or finalised), CF_EPROTO (a malformed message from the
 * root), CF_ENOMEM or CF_ESYS (MPI failed). */
CF_API int cf_mpi_serve(MPI_Comm comm, int root);

typedef struct cf_mpi_pool_options {
  size_t size; /* sizeof(cf_mpi_pool_options), set by *_init */
  /* MPI_COMM_NULL: the ranks of cf_mpi_main() (only one pool over them at
   * a time).  Else an intracommunicator whose other ranks are in
   * cf_mpi_serve(comm, root). */
  MPI_Comm comm;
  int root;        /* this rank's rank in comm (ignored for MPI_COMM_NULL) */
  int max_workers; /* 0 = every other rank; else at most this many */
  cf_death_policy on_worker_death; /* only where MPI reports deaths, above */
  /* > 0: instead of the job's ranks, start this many new worker processes
   * with MPI_Comm_spawn (this program again, whose cf_mpi_main() then
   * serves the pool and exits), as mpi4py's MPIPoolExecutor does; comm
   * and root are ignored.  Works from a program started without mpiexec
   * (a singleton) where the MPI supports it: Debian's Open MPI does, over
   * TCP; Debian's MPICH does not (create then fails with CF_ENOTSUP). */
  int spawn;
  cf_initializer_fn initializer; /* run on each worker rank; NULL = none */
  const void *initarg;           /* copied to each worker rank */
  size_t initarg_len;
  /* Queued tasks at most (see "Back-pressure" at cf_submit_timed()); 0 =
   * no bound. */
  size_t max_queued;
} cf_mpi_pool_options;

/* Fills *opts with the defaults (and its size).  Returns CF_OK or
 * CF_EINVAL. */
CF_API int cf_mpi_pool_options_init(cf_mpi_pool_options *opts);

/* On the root: creates an executor whose workers are the other ranks of
 * the communicator (opts NULL = defaults: cf_mpi_main()'s ranks).  Blocks
 * until every worker rank has answered: each checks that it runs the
 * root's build of the program, then runs the initializer.  A rank that
 * runs another build refuses the pool (CF_EINVAL, and the words name the
 * rank); an initializer that fails on a rank breaks the pool (create
 * returns CF_OK, submits then return CF_EBROKEN), as on the other
 * backends.  Tasks whose function lives in a library that some rank
 * loaded in another build fail with CF_ETASK, and are never run there.
 * Completions and done callbacks run on the pool's manager thread.
 * Returns CF_OK, CF_EINVAL (bad options, no worker rank, an initializer
 * outside the program's own modules, another build on a rank), CF_ESTATE
 * (MPI not initialised, not with MPI_THREAD_MULTIPLE, not cf_mpi_main()'s
 * root, or a pool over those ranks is alive), CF_ENOMEM or CF_ESYS; on
 * failure cf_last_error_message() says why in words. */
CF_API int cf_mpi_pool_create(const cf_mpi_pool_options *opts,
                              cf_executor **out);

#ifdef __cplusplus
}
#endif

#endif /* CFUTURES_MPI_H */
