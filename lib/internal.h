/*
 * Internal declarations shared by the library's files.  Everything here is
 * named cf__* and hidden: only the cf_* names of cfutures.h are exported.
 *
 * Where things live:
 *   future.c       the future state machine, callbacks, single-future waits
 *   waiter.c       waiting on many futures: cf_wait(), cf_as_completed()
 *   executor.c     the generic executor: submit, shutdown, refcounting
 *   batch.c        batches: many inputs run as one task (batch.h)
 *   map.c          cf_map(): bounded, chunked, ordered or not
 *   thread_pool.c  the thread-pool backend
 *   process_pool.c the process-pool backend: the parent's side, its manager
 *   worker.c       the worker process: start-up checks, its serving loop
 *   process.h      what those two share
 *   ipc.c          the wire protocol of the process pool and the MPI
 *                  backend, every message's encoder beside its decoder
 *   mpi_pool.c     the MPI backend (libcfutures-mpi): the root's side
 *   mpi_worker.c   the MPI job's start and end, the worker ranks' side
 *   mpi_chan.c     frames over MPI messages (mpi_common.h)
 *   task.c         the cf_task handle a task reports through
 */
#ifndef CF_INTERNAL_H
#define CF_INTERNAL_H

#include "cfutures.h"
#include "sync.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CF__UNUSED(x) ((void)(x))
#define CF__LIKELY(x) __builtin_expect(!!(x), 1)
#define CF__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- byte buffers -------------------------------------------------------- */

/* Bytes with their owner.  Up to CF__INLINE bytes live inside the struct
 * (no allocation for small inputs and results, the common case); others
 * point to memory freed with free_fn (NULL: borrowed, not freed).  Memory
 * handed over by the user (cf_submit_owned, cf_task_return_owned) is kept
 * as given whatever its size: len_ then carries CF__BUF_EXT, which also
 * keeps it above CF__INLINE, so "inline" is simply len_ <= CF__INLINE.
 * Read the length with cf__buf_len(). */
#define CF__INLINE 16
#define CF__BUF_EXT ((size_t)1 << (sizeof(size_t) * 8 - 1))
typedef struct cf__buf {
  size_t len_;
  union {
    struct {
      void *ptr;
      cf_free_fn free_fn;
    } h;
    unsigned char inl[CF__INLINE];
  } u;
} cf__buf;

static inline size_t cf__buf_len(const cf__buf *b) {
  return b->len_ & ~CF__BUF_EXT;
}
static inline const void *cf__buf_data(const cf__buf *b) {
  return b->len_ == 0 ? NULL : b->len_ <= CF__INLINE ? b->u.inl : b->u.h.ptr;
}
/* Takes `ptr` as it is (no copy); free_fn(ptr) runs when the buffer is. */
static inline void cf__buf_adopt(cf__buf *b, void *ptr, size_t len,
                                 cf_free_fn free_fn) {
  b->len_ = len | CF__BUF_EXT;
  b->u.h.ptr = ptr;
  b->u.h.free_fn = free_fn;
}
void cf__buf_free(cf__buf *b);
int cf__buf_copy(cf__buf *b, const void *data, size_t len);

/* ---- tasks --------------------------------------------------------------- */

struct cf_task {
  cf__buf out;  /* the result set by cf_task_return*() */
  char *errmsg; /* the message set by cf_task_fail() */
  /* cf_task_stop_requested(): stop_fn(stop_arg), or false when NULL.  Set
   * by whoever runs the task, before cf__task_invoke(). */
  bool (*stop_fn)(void *arg);
  void *stop_arg;
};

/* Runs fn on this thread and returns its code; t receives result/message
 * (its stop_fn / stop_arg must be set).  A non-zero code discards the
 * result, zero discards the message. */
int cf__task_invoke(cf_task_fn fn, const void *in, size_t len, cf_task *t);

/* ---- futures ------------------------------------------------------------- */

/* The state word: the state in the low bits, flags, and the final status
 * (negated, so it fits a byte) in bits 8..15.  Transitions are CASes on this
 * one word, so the common path (no callbacks, no waiters) takes no lock. */
#define CF__ST_MASK 0x7u
#define CF__F_LISTENERS 0x8u /* callbacks or waiter links are registered */
#define CF__F_SLEEPERS 0x10u /* threads sleep on the word (futex) */
#define CF__F_USER 0x20u     /* user-completable (cf_future_create) */
#define CF__F_STOPREQ 0x40u  /* cf_future_request_stop() was called */
/* The future holds a slot of its executor's bounded queue (max_queued).
 * Only the executor's own paths clear it and give the slot back: the start
 * (PENDING -> RUNNING), a failure by the backend, and dropping a future
 * that never started (cf__queue_drop).  A cancel, on any thread, keeps it
 * in the CANCELLED state: after its CAS the executor may be gone. */
#define CF__F_QSLOT 0x80u
/* A derived future (compose.c) not submitted to its executor yet: no
 * backend holds it, so no wait may claim it to run inline. */
#define CF__F_DERIVED 0x10000u
/* Submitted to a backend whose workers are other processes: a stop
 * request must be passed on (backend->request_stop). */
#define CF__F_REMOTE 0x20000u
/* The flags a final state keeps. */
#define CF__F_KEEP (CF__F_USER | CF__F_STOPREQ)
#define CF__STATUS_SHIFT 8
#define CF__ST_DONE(s) ((CF__ST_MASK & (s)) >= CF_FINISHED)
#define CF__ST_STATUS(s) (-(int)(((s) >> CF__STATUS_SHIFT) & 0xffu))

typedef struct cf__waiter cf__waiter;

/* A done callback, or (cb == NULL) a link of a waiter watching this future.
 * dispose (callbacks only, may be NULL) runs instead of cb when the future
 * is freed still pending: cb will never run, and what it would have
 * completed must not wait forever. */
typedef struct cf__listener {
  struct cf__listener *next;
  cf_done_cb cb;
  void *arg;
  cf__waiter *waiter;
  void (*dispose)(void *arg);
} cf__listener;

struct cf_future {
  _Atomic uint32_t state;
  _Atomic uint32_t refs;
  cf__lock lock;          /* guards listeners (and slow-path transitions) */
  int32_t errcode;        /* task's code, or a worker's wait status */
  struct cf_future *next; /* free for the backend's own queues */
  cf_task_fn fn;
  cf__buf in;
  cf__buf out;
  char *errmsg;
  cf__listener *listeners; /* newest first */
  cf_executor *owner;      /* the executor it was submitted to (borrowed,
                              for identity only), NULL for user futures */
};

/* A PENDING future with one reference and fn/in unset. */
cf_future *cf__future_alloc(cf_task_fn fn);

/* PENDING -> RUNNING; false if the future was cancelled meanwhile. */
bool cf__future_start(cf_future *f);

/* Runs a RUNNING future's task (f->fn) on this thread, any thread, and
 * frees its input; returns the task's code, with its outcome in t, for
 * cf__future_finish(). */
int cf__future_invoke(cf_future *f, cf_task *t);

/* Completes a PENDING or RUNNING future with a non-task outcome (CF_EBROKEN,
 * CF_EWORKERDIED, ...), taking ownership of msg.  Returns CF_ESTATE if it was
 * done already (msg is then freed). */
int cf__future_fail(cf_future *f, int status, int code, char *msg);
/* The same for a future taken from a queue: only if it is still PENDING
 * (a wait may be running it inline, or it was cancelled); else CF_ESTATE
 * and msg is freed. */
int cf__future_fail_queued(cf_future *f, int status, int code, char *msg);

/* Completes a running future with a task outcome (t's buffers are taken).
 * A task that returns CF_ECANCELLED after a stop request was made ends the
 * future CANCELLED (it honoured the request). */
int cf__future_finish(cf_future *f, int rc, cf_task *t);

/* Completes a PENDING or RUNNING future with success and the result *out
 * (taken on CF_OK; left to the caller otherwise: CF_ESTATE, done already). */
int cf__future_succeed(cf_future *f, cf__buf *out);

/* The stop_fn of a task that runs in this process for the future `arg`. */
bool cf__future_stop_fn(void *arg);

/* Adds a done callback whose listener `l` the caller allocated (with
 * malloc: it is freed after cb runs).  Runs cb at once, and frees l, if f
 * is done already.  dispose as in cf__listener.  Cannot fail. */
void cf__future_add_listener(cf_future *f, cf__listener *l, cf_done_cb cb,
                             void *arg, void (*dispose)(void *));
/* Takes back a callback listener added before, if it has not fired: true
 * when it was still registered (the caller frees it; cb will not run). */
bool cf__future_take_listener(cf_future *f, cf__listener *l);

/* Registers / unregisters a waiter link.  add returns false (link not added)
 * if the future is already done.  Call remove for every link that was added,
 * even after it was notified and popped, before freeing the waiter: the
 * completer may still be inside cf__waiter_notify() under the future's lock,
 * and remove takes that lock. */
bool cf__future_add_link(cf_future *f, cf__listener *link);
void cf__future_remove_link(cf_future *f, cf__listener *link);

/* Final status of a done future (CF_OK, CF_ETASK, CF_ECANCELLED, ...). */
static inline int cf__future_status(const cf_future *f) {
  uint32_t s =
      atomic_load_explicit(&((cf_future *)f)->state, memory_order_acquire);
  if ((s & CF__ST_MASK) == CF_CANCELLED)
    return CF_ECANCELLED;
  return CF__ST_STATUS(s);
}

/* ---- waiting on many futures --------------------------------------------- */

/* A waiter collects the futures that complete among those it watches.  The
 * completing thread appends to `ready` under the waiter's lock and bumps
 * `seq`, a futex word the waiting thread sleeps on. */
struct cf__waiter {
  cf__lock lock;
  _Atomic uint32_t seq;
  _Atomic uint32_t sleeping;
  cf__listener **ready; /* ring of the links whose future completed */
  size_t cap, head, count;
  cf__listener *one; /* storage when cap == 1 */
};

/* cap: how many links will be registered at most at once. */
int cf__waiter_init(cf__waiter *w, size_t cap);
void cf__waiter_fini(cf__waiter *w);
/* Called by the completing thread, under the future's lock. */
void cf__waiter_notify(cf__listener *link);
/* Pops the link of a completed future, or NULL. */
cf__listener *cf__waiter_pop(cf__waiter *w);
/* Bumps seq and wakes the waiter. */
void cf__waiter_poke(cf__waiter *w);
/* Sleeps until w->seq differs from seq0 or the deadline passes (returns
 * ETIMEDOUT then).  On a pool worker, the pool is told it blocks. */
int cf__waiter_sleep(cf__waiter *w, uint32_t seq0, int64_t deadline);

/* ---- threads that work for an executor ----------------------------------- */

/* A future whose task runs on this thread's stack; innermost first. */
typedef struct cf__running {
  cf_future *f;
  struct cf__running *outer;
} cf__running;

/* Set (cf__tls_worker) on a thread while it works for an executor: a
 * thread-pool worker, or a process pool's I/O thread.  Blocking waits on such
 * a thread consult it, so that a wait that could only end when the waiting
 * thread itself returns fails with CF_EDEADLK at once, and so that the
 * thread pool can keep its queue moving while one of its workers blocks. */
typedef struct cf__worker_ctx {
  cf_executor *pool;
  /* Process pool I/O thread: every pending future of `pool` is completed by
   * this very thread, so waiting for one from here can never end. */
  bool io_thread;
  cf__running *running; /* thread pool: tasks on this stack, innermost first */
  int depth;            /* how many of them were run inline by a wait */
  /* Thread pool only (NULL elsewhere).  run_inline: if f is a task of this
   * pool still queued, claims it and runs it on this thread (true: f is
   * done).  block: the worker starts (true) / stops (false) blocking, so the
   * pool may run queued work on another thread meanwhile. */
  bool (*run_inline)(struct cf__worker_ctx *ctx, cf_future *f);
  void (*block)(struct cf__worker_ctx *ctx, bool begin);
} cf__worker_ctx;

extern _Thread_local cf__worker_ctx *cf__tls_worker;

/* Tells the executor the calling worker blocks (or stops blocking), so that
 * its queue keeps moving meanwhile (thread pool compensation); nothing on
 * other threads.  Every blocking wait calls it around its sleep. */
static inline void cf__block(cf__worker_ctx *ctx, bool begin) {
  if (ctx && ctx->block)
    ctx->block(ctx, begin);
}

/* Would waiting for f on this thread wait for the thread itself?  True when
 * f's task is on this thread's stack, or when this is the I/O thread of f's
 * pool and f is not done. */
bool cf__waits_for_self(cf_future *f);

/* ---- executors ----------------------------------------------------------- */

/* What a backend provides to the generic code (executor.c, batch.c). */
typedef struct cf__backend {
  /* Queues f; on CF_OK the backend owns the reference it was given. */
  int (*submit)(cf_executor *ex, cf_future *f);
  int (*shutdown)(cf_executor *ex, bool wait, bool cancel_futures);
  /* Last reference gone: shut down with wait, join, free. */
  void (*destroy)(cf_executor *ex);
  void (*stats)(cf_executor *ex, cf_executor_stats *out);
  /* Signals the workers (NULL: the backend has no worker processes). */
  int (*terminate)(cf_executor *ex, int sig);
  /* In a child after fork(): frees what the executor owns without touching
   * its threads (they do not exist here) or its locks (a thread that is
   * gone may have held one).  Closes its descriptors. */
  void (*forget)(cf_executor *ex);
  /* f runs (cf_future_cancel() could not stop it): asks the worker process
   * that runs it to stop, a task through cf_task_stop_requested(), a batch
   * (batch.h) by skipping its inputs not started yet.  NULL when the
   * future's flag or the batch's own stop flag reaches the task (threads
   * of this process). */
  void (*request_stop)(cf_executor *ex, cf_future *f);
  /* Drops the cancelled futures still in its queue (a bounded queue's
   * cancelled entries would otherwise hold memory until a worker reaches
   * them). */
  void (*purge)(cf_executor *ex);
} cf__backend;

struct cf_executor {
  const cf__backend *backend;
  _Atomic uint32_t refs;
  int max_workers;
  unsigned fork_gen; /* cf__fork_gen when created */
  /* Back-pressure (cf_submit_timed): queued futures holding a slot
   * (CF__F_QSLOT) and the bound, 0 = none.  Producers waiting for room
   * sleep on room_seq, bumped when a slot is given back while some wait,
   * and at shutdown (closed). */
  size_t max_queued;
  _Atomic size_t nqueued;
  _Atomic uint32_t room_seq, room_waiters;
  _Atomic bool closed;
};

/* Bumped in the child of every fork(): an executor whose fork_gen differs
 * was inherited, and its workers belong to the parent. */
extern _Atomic unsigned cf__fork_gen;
static inline bool cf__inherited(const cf_executor *ex) {
  return ex->fork_gen !=
         atomic_load_explicit(&cf__fork_gen, memory_order_relaxed);
}

void cf__executor_init(cf_executor *ex, const cf__backend *backend,
                       int max_workers);
/* The bound of the queue (the pool's max_queued option); 0 = none. */
static inline void cf__executor_bound(cf_executor *ex, size_t max_queued) {
  ex->max_queued = max_queued;
}
/* Gives back the queue slot of a future of ex (its CF__F_QSLOT was just
 * cleared by the caller), waking a producer waiting for room. */
void cf__qslot_release(cf_executor *ex);
/* The executor drops the queue's reference to f, a future that never
 * started (cancelled, failed while queued) or did: gives its slot back
 * if it still holds one. */
void cf__queue_drop(cf_future *f);

/* Runs the derived-future records this thread deferred (compose.c), when
 * it is about to block: one of them may be what it waits for. */
void cf__trampoline_drain(void);

/* Submits f, a derived future prepared by the caller, who gives the
 * executor its reference (on error the caller keeps it).  A continuation:
 * it takes a queue slot even past the bound, never waits.  CF_ECANCELLED
 * when f was cancelled meanwhile (nothing submitted). */
int cf__submit_prepared(cf_executor *ex, cf_future *f);

/* Submits a prepared future (one reference for the executor, one for the
 * caller when out != NULL).  On error f is left with the one reference the
 * caller must release. */
int cf__submit_future(cf_executor *ex, cf_future *f, cf_future **out);

/* ---- extensible public structs ------------------------------------------ */

/* Every public struct starts with `size_t size`, the sizeof the caller was
 * built with.  Fields are only ever appended, so a struct of an older
 * header is a prefix of ours, and one of a newer header has ours as prefix.
 * v1 is the end of the struct's last field in the first released layout:
 * nothing smaller is accepted. */
#define CF__V1_SIZE(type, last)                                                \
  (offsetof(type, last) + sizeof(((type *)0)->last))

/* The first released layouts.  Each must end without tail padding, which
 * the asserts check: a field added later then starts at or past the old
 * sizeof, where an old caller's size says it has nothing and where
 * cf__opts_in looks for fields a newer caller set.  Padding at the end
 * would let a new field sit inside an old struct's sizeof, read as
 * whatever garbage an old caller left there.  Adding a field: keep the
 * V1 sizes, and change each assert to the new last field. */
#define CF__TP_OPTIONS_V1 CF__V1_SIZE(cf_thread_pool_options, idle_timeout_ns)
#define CF__PP_OPTIONS_V1 CF__V1_SIZE(cf_process_pool_options, on_worker_death)
#define CF__MAP_OPTIONS_V1 CF__V1_SIZE(cf_map_options, max_inflight)
#define CF__STATS_V1 CF__V1_SIZE(cf_executor_stats, extra_workers)
#define CF__MAP_ITEM_V1 CF__V1_SIZE(cf_map_item, error_message)
_Static_assert(sizeof(cf_thread_pool_options) ==
                   CF__V1_SIZE(cf_thread_pool_options, max_queued),
               "cf_thread_pool_options ends with padding");
_Static_assert(sizeof(cf_process_pool_options) ==
                   CF__V1_SIZE(cf_process_pool_options, max_queued),
               "cf_process_pool_options ends with padding");
_Static_assert(sizeof(cf_map_options) == CF__MAP_OPTIONS_V1,
               "cf_map_options ends with padding");
_Static_assert(sizeof(cf_executor_stats) == CF__STATS_V1,
               "cf_executor_stats ends with padding");
_Static_assert(sizeof(cf_map_item) == CF__MAP_ITEM_V1,
               "cf_map_item ends with padding");

/* Copies the caller's options src (src->size bytes) over dst (our layout,
 * holding the defaults).  CF_EINVAL when the size is below v1, or when a
 * newer caller set fields this library does not know (non-zero bytes past
 * our end: better refuse than ignore what was asked).  dst keeps our size. */
int cf__opts_in(void *dst, size_t dst_size, const void *src, size_t v1);

/* Checks that a caller's out struct can take our fields: CF_EINVAL when
 * out->size is below v1.  The library then writes only the fields both
 * layouts share, never past out->size nor past its own sizeof. */
static inline int cf__out_check(const void *out, size_t v1) {
  return out && *(const size_t *)out >= v1 ? CF_OK : CF_EINVAL;
}

/* Copies our filled struct src (src_size bytes, its size field unset) to
 * the caller's out, as far as out->size goes; out->size is kept. */
void cf__out_copy(void *out, const void *src, size_t src_size);

/* ---- cf_last_error_message() --------------------------------------------- */

/* Sets / clears the words cf_last_error_message() returns on this thread. */
void cf__set_last_error(const char *fmt, ...) CF_PRINTF(1, 2);
void cf__clear_last_error(void);
/* Sets the words and yields rc: return CF__REFUSE(CF_EINVAL, "why %d", x). */
#define CF__REFUSE(rc, ...) (cf__set_last_error(__VA_ARGS__), (rc))

#endif /* CF_INTERNAL_H */
