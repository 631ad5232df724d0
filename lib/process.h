/*
 * What the two sides of the process pool share: the parent (process_pool.c:
 * the backend, its manager thread, how workers start) and the worker
 * process (worker.c: the checks that make a process a worker, its loop).
 * The messages between them are ipc.h's.
 */
#ifndef CF_PROCESS_H
#define CF_PROCESS_H

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

#endif /* CF_PROCESS_H */
