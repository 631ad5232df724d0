/*
 * What the two sides of the process pool share: the parent (process_pool.c:
 * the backend, its manager thread, how workers start) and the worker
 * process (worker.c: the checks that make a process a worker, its loop).
 * The messages between them are ipc.h's.
 */
#ifndef CF_PROCESS_H
#define CF_PROCESS_H

#include <stdint.h>

#define CF__PP_ENV "CF__PROCESS_WORKER_FD"
#define CF__PP_FD 3 /* the worker's end of its socket, in the worker */
/* Before blocking, the manager and idle workers poll without sleeping for
 * this long: a wakeup across CPUs costs tens of microseconds on small VMs,
 * and the next task or result usually comes sooner. */
#define CF__PP_SPIN_NS 50000

/* Defined in worker.c and called by cf_process_pool_create(): a static
 * link (libcfutures.a) pulls an object in only for a symbol it needs, and
 * worker.o's constructor must be in every program that can create a pool,
 * or its workers would run main() again. */
void cf__worker_link(void);

/* The worker's serving loop (worker.c), over any channel (ipc.h): a
 * process-pool worker's socket, or an MPI rank's link to its root.  Serves
 * INIT, TASK, CHUNK, STOP and EXIT frames until the session ends, and
 * returns the exit status: 0 when it ended cleanly (EXIT, INITFAIL sent,
 * or the peer gone), 3 when memory ran out for a payload, 4 on a malformed
 * message.  *last is the header of the last frame read: an EXIT, the INIT
 * whose INITFAIL was sent, ...; its type is 0 when the peer went away. */
typedef struct cf__chan cf__chan;
typedef struct cf__frame cf__frame;
int cf__worker_loop(cf__chan *ch, cf__frame *last);

#endif /* CF_PROCESS_H */
