/*
 * What the MPI backend's two sides share: the root (mpi_pool.c: the
 * backend, its manager thread) and the worker ranks (mpi_worker.c: the
 * start-up of the job, the serving loop), and how frames travel between
 * them over MPI (mpi_chan.c).  The frames are ipc.h's, the same as the
 * process pool's.
 */
#ifndef CF_MPI_COMMON_H
#define CF_MPI_COMMON_H

#include "internal.h"
#include "ipc.h"

#include "cfutures-mpi.h"

#include <mpi.h>

/* The tag of every message of the library, on its own duplicates of the
 * communicators (so no message of the application can match it). */
#define CF__MPI_TAG 0x4346

/* A frame travels as one MPI message when it is small (header and payload
 * copied together, one message: the common case costs one latency), else
 * as its header alone followed by its payload in pieces of at most
 * cf__mpi_piece bytes, each sent from where it lies (no copy; MPI counts
 * are ints, so a payload over 2 GiB must be split anyway).  Messages
 * between two ranks on one communicator and tag arrive in order, so the
 * pieces need no numbering. */
#define CF__MPI_PACK_MAX 65536
#define CF__MPI_PIECE ((size_t)1 << 30)
extern size_t cf__mpi_piece; /* CF__MPI_PIECE; tests make it small */
#ifdef CF_MPI_TEST_HOOKS
/* Tests only (tests/test_mpi.c): sends to this peer fail as if MPI had
 * returned an error for it, which stock MPI never does (the job dies). */
extern int cf__mpi_fail_peer;
#endif

/* How a rank, or the root's manager, waits for a message without blocking
 * in MPI (a rank blocked in MPI_Recv spins a CPU at 100%).  After the last
 * message it probes without sleeping for CF__MPI_SPIN_NS: the next task
 * (or answer, or submit) usually follows soon, and a wakeup on a small
 * machine costs more than that.  Then it naps between probes:
 * CF__MPI_NAP_SHORT_NS at first, so that a message that just missed the
 * spin waits little; after CF__MPI_SHORT_FOR_NS of quiet, naps double up
 * to CF__MPI_NAP_MAX_NS; after CF__MPI_DOZE_AFTER_NS, to
 * CF__MPI_NAP_DOZE_NS, so a long-idle rank costs ~0.1% of a CPU.  A task
 * sent to a rank idle for a while may so wait up to CF__MPI_NAP_DOZE_NS
 * to start; a rank kept busy never sleeps. */
#define CF__MPI_SPIN_NS 200000
#define CF__MPI_NAP_SHORT_NS 20000
#define CF__MPI_SHORT_FOR_NS 5000000
#define CF__MPI_NAP_MAX_NS 1000000
#define CF__MPI_DOZE_AFTER_NS 200000000
#define CF__MPI_NAP_DOZE_NS 10000000
typedef struct cf__mpi_wait {
  int64_t since; /* the last message */
  int64_t nap;
} cf__mpi_wait;
/* A message came (or the wait starts): spin again. */
void cf__mpi_wait_reset(cf__mpi_wait *w);
/* What to do now: 0, look again at once (a yield first); else sleep that
 * many ns before looking again. */
int64_t cf__mpi_wait_next(cf__mpi_wait *w);
/* cf__mpi_wait_next(), with the yield or the nap done. */
void cf__mpi_wait_pause(cf__mpi_wait *w);

/* Naps as long as asked: the kernel's default timer slack (50 us) makes a
 * 10 us nap last 60, and the naps of both ends add up on every round trip.
 * Per thread; returns the slack it had, for cf__mpi_restore_naps(). */
unsigned long cf__mpi_precise_naps(void);
void cf__mpi_restore_naps(unsigned long slack);

/* A channel (ipc.h) to one peer rank of a communicator. */
/* A root's link sends without waiting (async): a small frame is copied
 * and goes with MPI_Isend, so the manager is never held by one rank while
 * others answer (a send above the MPI's eager size waits for the peer's
 * progress: MPICH over UCX held the root for milliseconds per chunk).  At
 * most CF__MPI_ASYNC_MAX sends are kept outstanding per link; large frames
 * (pieces) wait for those, then go with MPI_Send. */
#define CF__MPI_ASYNC_MAX 8
typedef struct cf__mpi_link {
  MPI_Comm comm;
  int peer;
  bool async;
  int nreq;
  MPI_Request req[CF__MPI_ASYNC_MAX];
  unsigned char *buf[CF__MPI_ASYNC_MAX];
} cf__mpi_link;
/* A link to peer on comm (async: see above). */
void cf__mpi_link_init(cf__mpi_link *l, MPI_Comm comm, int peer, bool async);
/* Frees the buffers of the link's sends that are done; with `all`, waits
 * for every one first (before the communicator goes). */
void cf__mpi_link_reap(cf__mpi_link *l, bool all);
/* ch's ops and ctx for the link (which must outlive ch). */
void cf__mpi_chan_init(cf__chan *ch, cf__mpi_link *link);

/* Is a frame of ours waiting from src (MPI_ANY_SOURCE: any rank)?  Never
 * blocks.  Returns 1 (*from: its sender, *count: its first message's
 * size), 0, or CF_ESYS. */
int cf__mpi_probe(MPI_Comm comm, int src, int *from, int *count);
/* Receives the frame that cf__mpi_probe() found (from, count): header
 * checked into fr, payload into a new buffer (*payload; NULL when empty).
 * Returns CF_OK, CF_EPROTO, CF_ENOMEM or CF_ESYS. */
int cf__mpi_recv(MPI_Comm comm, int from, int count, cf__frame *fr,
                 unsigned char **payload);

/* EXIT's id from the root: the end of one pool (the rank waits for the
 * next one, in cf_mpi_main()), or of serving altogether. */
#define CF__MPI_EXIT_POOL 0
#define CF__MPI_EXIT_END 1

/* The ranks cf_mpi_main() set up, on the root (mpi_worker.c). */
typedef struct cf__mpi_world {
  MPI_Comm comm;     /* our duplicate of MPI_COMM_WORLD; MPI_COMM_NULL: none */
  bool inited;       /* cf_mpi_main() initialised MPI (and finalises it) */
  cf_executor *live; /* the pool alive over comm (at most one), or NULL */
} cf__mpi_world;
/* Claims the world's ranks for the pool ex (*comm set): CF_OK, or
 * CF_ESTATE with the words set.  The pool's destroy releases them with
 * cf__mpi_world_release(), before its memory goes. */
int cf__mpi_world_claim(cf_executor *ex, MPI_Comm *comm);
void cf__mpi_world_release(void);

/* MPI's words for an error code, for cf__set_last_error(). */
const char *cf__mpi_error_string(int err, char *buf, size_t cap);

#endif /* CF_MPI_COMMON_H */
