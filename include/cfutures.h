/*
 * cfutures: Python's concurrent.futures for C.
 *
 * One executor abstraction (submit / map / shutdown), futures with results,
 * errors, timeouts, cancellation and done callbacks, plus cf_wait() and
 * cf_as_completed().  Backends plug into the executor (a thread pool and a
 * process pool), and every generic function works with each of them
 * unchanged.
 *
 * Conventions used by every function below:
 *  - Functions return a status: CF_OK (0) or a negative CF_E* code;
 *    cf_strerror() turns it into text, cf_err_name() into its name.  A
 *    function whose comment says it returns something else says why.
 *  - NULL or otherwise invalid arguments return CF_EINVAL; they never crash.
 *  - Handles (cf_future, cf_executor, iterators) are opaque.  Futures and
 *    executors are reference counted: *_retain() adds a reference, *_release()
 *    drops one, the last release frees.
 *  - Timeouts are in nanoseconds, measured on CLOCK_MONOTONIC: CF_FOREVER
 *    waits without limit, 0 polls, a positive value waits at most that long;
 *    any other negative value is a deadline already past (it polls).  Huge
 *    values saturate rather than overflow.  See "Timeouts" below.
 *  - Blocking calls restart after signals (EINTR); they never return early
 *    because a signal arrived.
 *  - No lock of the library is held while user code (a task or a callback)
 *    runs, so user code may call any cfutures function.
 *  - fork(): in the child, executors created before the fork are inert
 *    (their threads and workers belong to the parent): cf_submit() returns
 *    CF_EBROKEN, cf_shutdown() returns at once, and the last
 *    cf_executor_release() frees them without waiting.  Futures inherited
 *    pending stay pending; do not wait on them in the child.  New executors
 *    created in the child work normally.
 */
#ifndef CFUTURES_H
#define CFUTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CF_BUILDING_LIBRARY) && defined(__GNUC__)
#define CF_API __attribute__((visibility("default")))
#else
#define CF_API
#endif

#if defined(__GNUC__)
#define CF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CF_PRINTF(f, a)
#endif

/* The version, from configure (cfutures_version.h is generated; this
 * header is the one to include).  CF_VERSION_MAJOR, CF_VERSION_MINOR and
 * CF_VERSION_PATCH are integer constants; CF_VERSION_HEX packs them as
 * 0xMMmmpp, so `#if CF_VERSION_HEX >= 0x000200` tests for 0.2.0 or later.
 * They give the version a program was compiled against; cf_version() gives
 * the one it runs with. */
#include "cfutures_version.h"
#define CF_VERSION_HEX                                                         \
  ((CF_VERSION_MAJOR << 16) | (CF_VERSION_MINOR << 8) | CF_VERSION_PATCH)

/* ------------------------------------------------------------------------ */
/* Status codes                                                               */
/* ------------------------------------------------------------------------ */

/* Every status code, once: XX(NAME, VALUE, DESCRIPTION).  The enum below,
 * cf_strerror() and cf_err_name() are all generated from this list, so a
 * code added here has its name and text everywhere.  Contracts:
 *  - CF_OK is 0 and every error is negative, so `if (status)` and
 *    `if (status < 0)` both test for failure.
 *  - A code keeps its value forever: new codes take the next free negative
 *    value (append them at the end); none is renumbered or reused.
 *  - The names look like errno names for familiarity but are NOT errno
 *    values (CF_EINVAL is -1, not -EINVAL); a task's own failure code, from
 *    cf_future_error(), is the task's business and may be anything.
 * Programs may use CF_STATUS_MAP with their own XX, e.g. to build a table. */
#define CF_STATUS_MAP(XX)                                                      \
  XX(CF_OK, 0, "success")                                                      \
  XX(CF_EINVAL, -1, "invalid argument")                                        \
  XX(CF_ENOMEM, -2, "out of memory")                                           \
  XX(CF_ETIMEDOUT, -3, "timed out")                                            \
  XX(CF_ECANCELLED, -4, "cancelled")                                           \
  XX(CF_ETASK, -5, "task failed")                                              \
  XX(CF_EBROKEN, -6, "executor is broken")                                     \
  XX(CF_ESHUTDOWN, -7, "executor is shut down")                                \
  XX(CF_ESTATE, -8, "invalid state for this operation")                        \
  XX(CF_EDEADLK, -9, "would deadlock")                                         \
  XX(CF_EOF, -10, "no more items")                                             \
  XX(CF_EAGAIN, -11, "resource temporarily unavailable")                       \
  XX(CF_EWORKERDIED, -12, "worker died")                                       \
  XX(CF_EPROTO, -13, "malformed message from worker")                          \
  XX(CF_ESYS, -14, "system call failed")                                       \
  XX(CF_ENOTSUP, -15, "not supported by this executor")

/* What each code means:
 *   CF_OK           success
 *   CF_EINVAL       invalid argument (NULL, out of range, wrong kind)
 *   CF_ENOMEM       out of memory; nothing was changed
 *   CF_ETIMEDOUT    the timeout expired before the future was done
 *   CF_ECANCELLED   the future was cancelled
 *   CF_ETASK        the task failed: see cf_future_error()
 *   CF_EBROKEN      the executor is broken (e.g. an initializer failed)
 *   CF_ESHUTDOWN    the executor was shut down
 *   CF_ESTATE       not allowed in the future's current state
 *   CF_EDEADLK      the call would wait for itself forever
 *   CF_EOF          an iterator has no more items
 *   CF_EAGAIN       a system resource (threads) is exhausted right now
 *   CF_EWORKERDIED  the worker running the task died
 *   CF_EPROTO       a malformed message came from a worker
 *   CF_ESYS         a system call failed unexpectedly
 *   CF_ENOTSUP      the backend cannot do this */
/* CF__STATUS_END (one below the last code) is internal: it only ends the
 * list without a trailing comma, which C++98 refuses. */
#define CF__STATUS_ENUM(name, value, text) name = value,
enum { CF_STATUS_MAP(CF__STATUS_ENUM) CF__STATUS_END };
#undef CF__STATUS_ENUM

/* Returns a static, human-readable description of a status code; never NULL
 * (unknown codes give "unknown error").  Thread-safe. */
CF_API const char *cf_strerror(int status);

/* Returns the static name of a status code, spelled as in this header
 * ("CF_OK", "CF_EINVAL", ...), for logs and messages; never NULL (unknown
 * codes give "CF_UNKNOWN").  Thread-safe. */
CF_API const char *cf_err_name(int status);

/* Returns the version of the library running, as "MAJOR.MINOR.PATCH"
 * (a static string); compare CF_VERSION_* for the one compiled against. */
CF_API const char *cf_version(void);

/* Returns the words that explain the status the last call of a pool
 * create function (cf_thread_pool_create(), cf_process_pool_create()) on
 * this thread returned, when it failed (e.g. "max_workers 9000 is out of
 * range (0 to 8192)", "libcfutures was loaded with dlopen() ..."); "" when
 * that call succeeded or none was made.  There is no future yet to carry
 * them.  Like dlerror(), it is per thread; unlike dlerror(), reading it does
 * not clear it.  The string belongs to the library and stays valid and
 * unchanged until the next pool create on this thread, or until the thread
 * ends.  Never NULL.  (Failures of a task or of a worker carry their own
 * words: cf_future_error().) */
CF_API const char *cf_last_error_message(void);

/* ------------------------------------------------------------------------ */
/* Timeouts                                                                   */
/* ------------------------------------------------------------------------ */

/* Timeouts are in nanoseconds, relative to the call, measured on
 * CLOCK_MONOTONIC (changing the wall clock does not move them).
 *   CF_FOREVER   waits without limit;
 *   0            does not wait: the call only looks;
 *   < 0, other   a deadline already past: like 0, never "forever", so a
 *                remaining time computed as deadline - now that turned
 *                negative cannot hang the caller;
 *   huge         saturates (INT64_MAX is 292 years), never wraps around. */
#define CF_FOREVER ((int64_t)-1)
#define CF_USEC(us) (1000 * (int64_t)(us))
#define CF_MSEC(ms) (1000000 * (int64_t)(ms))
#define CF_SEC(s) (1000000000 * (int64_t)(s))

/* ------------------------------------------------------------------------ */
/* Tasks                                                                      */
/* ------------------------------------------------------------------------ */

/* A task is a function plus its input bytes.  The same function runs on
 * every backend: on the thread pool it is called directly, on a process pool
 * its input bytes are copied to a worker process and its result bytes copied
 * back.  So a task must read only its input (not pointers inside it) and
 * report its outcome through the cf_task handle:
 *
 *   - Success: return 0.  The result is whatever cf_task_return*() set last
 *     (no call means an empty result: NULL, 0 bytes).
 *   - Failure: return a non-zero code of your choosing (the analogue of an
 *     exception); cf_task_fail() also attaches a message.  The future then
 *     ends with status CF_ETASK and cf_future_error() gives code and message.
 *
 * Ownership of the input: the library owns the bytes it was given (see
 * cf_submit()) and frees them after the task has run, or, if the task never
 * runs (cancelled, shut down, broken executor), when the future is destroyed.
 * The task must not keep `in` after it returns.
 *
 * The cf_task handle is valid only during the call, on the calling thread. */
typedef struct cf_task cf_task;
typedef int (*cf_task_fn)(cf_task *task, const void *in, size_t len);

/* Frees a buffer handed to the library. */
typedef void (*cf_free_fn)(void *ptr);

/* Sets the task's result to a copy of `len` bytes at `data` (data may be NULL
 * when len is 0).  Replaces an earlier result.  Returns CF_OK, CF_EINVAL
 * (task NULL, or data NULL with len > 0) or CF_ENOMEM (the earlier result is
 * then kept). */
CF_API int cf_task_return(cf_task *task, const void *data, size_t len);

/* Allocates a result buffer of `len` bytes owned by the library, for the task
 * to fill in place (no copy).  Replaces an earlier result.  Returns the buffer,
 * or NULL when task is NULL or memory is exhausted (the earlier result is then
 * kept). */
CF_API void *cf_task_return_buffer(cf_task *task, size_t len);

/* Hands a buffer the task allocated to the library as its result; the library
 * calls free_fn(data) when the future is destroyed (free_fn NULL: data is
 * static and never freed).  On success ownership has passed; on error it
 * stays with the caller.  Returns CF_OK or CF_EINVAL. */
CF_API int cf_task_return_owned(cf_task *task, void *data, size_t len,
                                cf_free_fn free_fn);

/* Attaches a message (printf-style) to the task's failure and returns `code`,
 * so a task can write `return cf_task_fail(t, ENOENT, "open %s", path);`.
 * `code` must be non-zero (0 is turned into -1).  The message is dropped if
 * the task then returns 0, or if memory is exhausted (the code still counts).
 */
CF_API int cf_task_fail(cf_task *task, int code, const char *fmt, ...)
    CF_PRINTF(3, 4);

/* ------------------------------------------------------------------------ */
/* Futures                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct cf_future cf_future;

/* The states of a future.  PENDING -> RUNNING -> FINISHED, or
 * PENDING -> CANCELLED.  A finished future either has a result or an error. */
typedef enum cf_state {
  CF_PENDING = 0,
  CF_RUNNING = 1,
  CF_FINISHED = 2,
  CF_CANCELLED = 3
} cf_state;

/* Done callbacks run exactly once, after the future reached FINISHED or
 * CANCELLED, in the order they were added, with no library lock held.  They
 * run on the thread that completed or cancelled the future (a worker, or the
 * thread that called cf_future_cancel() / cf_future_set_*() / cf_shutdown()),
 * or at once on the adding thread if the future is already done.  The future
 * is valid during the call; a callback may call any cfutures function,
 * including releasing its own reference to this future. */
typedef void (*cf_done_cb)(cf_future *future, void *arg);

/* Creates a user-completable future in PENDING state (the analogue of
 * creating a Future() directly), for work not run by an executor: complete it
 * with cf_future_set_result() or cf_future_set_error().  It takes part in
 * cf_wait(), cf_as_completed() and callbacks like any future.  The caller owns
 * the one reference.  Returns CF_OK, CF_EINVAL or CF_ENOMEM. */
CF_API int cf_future_create(cf_future **out);

/* Adds a reference.  Returns `future` (NULL stays NULL), so a caller can write
 * `keep = cf_future_retain(f);`: this is why it returns a pointer. */
CF_API cf_future *cf_future_retain(cf_future *future);

/* Drops a reference; the last one frees the future and its result.  NULL is
 * ignored (like free()).  Releasing a PENDING future does not cancel it: its
 * executor keeps its own reference until the task is done. */
CF_API void cf_future_release(cf_future *future);

/* Cancels the future if it is still PENDING: it becomes CANCELLED, every
 * waiter wakes at once, and its callbacks run on this thread before the call
 * returns.  Returns CF_OK if the future is now cancelled (also when it already
 * was), CF_ESTATE if it is running or finished, CF_EINVAL for NULL. */
CF_API int cf_future_cancel(cf_future *future);

/* Returns the current state, or CF_EINVAL for NULL.  Never blocks. */
CF_API int cf_future_state(const cf_future *future);

/* Predicates; they return false for NULL (they return bool, not a status, so
 * they read naturally in conditions).  done = FINISHED or CANCELLED. */
CF_API bool cf_future_done(const cf_future *future);
CF_API bool cf_future_cancelled(const cf_future *future);
CF_API bool cf_future_running(const cf_future *future);

/* Waits until the future is done or the timeout expires; a positive
 * timeout never waits longer (plus scheduling delay), wherever it is called
 * from.  Returns CF_OK when done (whatever the outcome), CF_ETIMEDOUT,
 * CF_EINVAL, or CF_EDEADLK at once when the wait could only end after the
 * caller itself returns: called from the very task this future runs (or a
 * task that a wait of that task ran inline), or from a process pool's I/O
 * thread (its done callbacks) on a pending future of that same pool.  From
 * a thread-pool task, see "Waiting inside a task" at the thread pool. */
CF_API int cf_future_wait(cf_future *future, int64_t timeout_ns);

/* Waits like cf_future_wait(), then reports the outcome:
 *   CF_OK         the task succeeded; *data / *len (each may be NULL) give its
 *                 result, owned by the future and valid while the caller
 *                 holds a reference to it;
 *   CF_ETASK      the task failed (cf_future_error() gives code and message);
 *   CF_ECANCELLED, CF_EBROKEN, CF_EWORKERDIED, CF_EPROTO: it never completed;
 *   CF_ENOMEM     (process pool) the result came back but there was no
 *                 memory to receive it (the worker is dropped as if it had
 *                 died: see cf_death_policy);
 *   CF_ETIMEDOUT, CF_EDEADLK, CF_EINVAL: as for cf_future_wait().
 * On anything but CF_OK, *data and *len are set to NULL and 0. */
CF_API int cf_future_result(cf_future *future, int64_t timeout_ns,
                            const void **data, size_t *len);

/* Waits like cf_future_wait(), then returns the same status as
 * cf_future_result() and, when the future failed, the error's code and
 * message (each output may be NULL).  The code is what the task returned
 * for CF_ETASK; the worker's wait status for CF_EWORKERDIED, and for a
 * CF_EBROKEN caused by a worker's death; the initializer's return value for
 * a CF_EBROKEN it caused; otherwise 0.  *message (NULL when there is none)
 * says what happened in words; it is owned by the future. */
CF_API int cf_future_error(cf_future *future, int64_t timeout_ns, int *code,
                           const char **message);

/* Adds a done callback (see cf_done_cb for where and when it runs).  If the
 * future is already done, cb runs on this thread before the call returns.
 * Returns CF_OK, CF_EINVAL (future or cb NULL) or CF_ENOMEM (cb not added,
 * not run). */
CF_API int cf_future_add_done_callback(cf_future *future, cf_done_cb cb,
                                       void *arg);

/* For user-completable futures (cf_future_create()) only; on an executor's
 * future they return CF_EINVAL.
 *
 * set_running_or_notify_cancel: PENDING -> RUNNING and CF_OK, so the future
 * can no longer be cancelled; CF_ECANCELLED if it was cancelled; CF_ESTATE
 * otherwise.  set_result / set_error complete a PENDING or RUNNING future:
 * waiters wake and callbacks run on this thread before the call returns.  The
 * result bytes are copied; `code` must be non-zero; `message` (may be NULL) is
 * copied.  Completing a done future returns CF_ESTATE and changes nothing.
 * CF_ENOMEM leaves the future as it was. */
CF_API int cf_future_set_running_or_notify_cancel(cf_future *future);
CF_API int cf_future_set_result(cf_future *future, const void *data,
                                size_t len);
CF_API int cf_future_set_error(cf_future *future, int code,
                               const char *message);

/* Cooperative stop requests (as C++'s stop_token, Java's interrupt).
 *
 * cf_future_request_stop() asks the future's task to stop early:
 *   - PENDING: the future is cancelled at once, as by cf_future_cancel();
 *   - RUNNING: a flag is set that the task reads with
 *     cf_task_stop_requested(); on a process pool or the MPI backend the
 *     request reaches the worker as a message.  The task decides: if it
 *     then returns CF_ECANCELLED (the status code, as its own code), the
 *     future ends CANCELLED (waiters wake; cf_future_result() returns
 *     CF_ECANCELLED); any other return is taken as usual, so a task that
 *     ignores the request simply finishes;
 *   - on a user future (cf_future_create()) the flag is set for whoever
 *     completes it, who reads it with cf_future_stop_requested().
 * Returns CF_OK (requested, or cancelled when it was pending; also when
 * it already was), CF_ESTATE when the future is done (FINISHED), CF_EINVAL
 * for NULL.  For a running future of a process pool or an MPI pool, the
 * caller must hold a reference to that pool for the call (as for
 * cf_submit()).  Never blocks; the request is never withdrawn.  A task that
 * returns CF_ECANCELLED without a request fails as usual (CF_ETASK, code
 * CF_ECANCELLED). */
CF_API int cf_future_request_stop(cf_future *future);

/* Whether cf_future_request_stop() was called on the future; false for
 * NULL. */
CF_API bool cf_future_stop_requested(const cf_future *future);

/* From inside a task: whether a stop was requested for its future.  On the
 * thread pool it reads a flag (a load).  In a worker process it looks for
 * the parent's message without blocking, at most once per tick of the
 * coarse clock (1 to 10 ms) so that a task may call it in a tight loop;
 * a request is seen within about a tick of reaching the worker.  Once true
 * it stays true.  For an input of cf_map(), true also when the map is
 * being destroyed.  false for NULL. */
CF_API bool cf_task_stop_requested(cf_task *task);

/* ------------------------------------------------------------------------ */
/* Executors                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct cf_executor cf_executor;

/* Runs once in each worker before it takes any task.  `arg` / `len` are the
 * bytes given in the options (copied to the worker on a process pool).  A
 * non-zero return breaks the executor: every pending future fails with
 * CF_EBROKEN and cf_submit() returns CF_EBROKEN from then on. */
typedef int (*cf_initializer_fn)(const void *arg, size_t len);

/* Submits fn(in) to the executor.  The input bytes are copied, so the caller
 * may reuse its buffer at once.  The caller must hold a reference to `ex`
 * for the whole call (a task may drop references of its own at any time).
 * On CF_OK, *out (if out is not NULL) receives a future the caller owns one
 * reference to; pass out = NULL to fire and forget.  Never blocks on the
 * task.
 * Returns CF_OK, CF_EINVAL, CF_ENOMEM, CF_ESHUTDOWN (after cf_shutdown()),
 * CF_EBROKEN (broken executor) or CF_EAGAIN (no worker could be started).
 * On error nothing was queued and *out is NULL. */
CF_API int cf_submit(cf_executor *ex, cf_task_fn fn, const void *in, size_t len,
                     cf_future **out);

/* Like cf_submit(), but hands over `in` instead of copying it (no copy for
 * large inputs): on CF_OK the library owns it and calls free_fn(in) when the
 * task has run or will never run (free_fn NULL: the caller keeps `in` alive
 * and unchanged until the future is done).  On error the caller still owns it.
 */
CF_API int cf_submit_owned(cf_executor *ex, cf_task_fn fn, void *in, size_t len,
                           cf_free_fn free_fn, cf_future **out);

/* Back-pressure.  A pool created with max_queued > 0 (its options) holds
 * at most that many queued tasks: submitted with cf_submit*() or as
 * continuations on it (cf_future_then()), not started and not cancelled.
 * A task leaves the queue when a worker takes it or when it is cancelled;
 * only the pool gives a cancelled task's slot back (a cancel may come from
 * any thread, after which the pool may be gone), and it does so at once
 * when a submit finds the queue full, when stats are read, or when a
 * worker reaches the entry; a producer already waiting for room looks for
 * cancelled entries every 10 ms.  cf_executor_stats.queued of a bounded
 * pool counts the tasks that hold a slot.
 * cf_map() does not count (it bounds itself: max_inflight).  When the
 * queue is full, cf_submit() and cf_submit_owned() return CF_EAGAIN at
 * once, queueing nothing; these two wait for room instead, at most
 * timeout_ns (CF_FOREVER: without limit; 0: as cf_submit()), and then
 * return CF_EAGAIN.  A continuation is never refused: it comes when its
 * source completes, and is queued beyond the bound if it must.
 * The wait is ordered by nothing (no fairness between producers); it ends
 * early with CF_ESHUTDOWN or CF_EBROKEN when the pool is shut down or
 * breaks meanwhile.  From a thread-pool task of the same pool the worker
 * counts as blocked while it waits (see "Waiting inside a task"), so room
 * is made; from a process pool's I/O thread (its done callbacks) a wait
 * on that same pool would wait for itself and returns CF_EDEADLK when the
 * queue is full.  Returns what cf_submit() returns, plus CF_EDEADLK. */
CF_API int cf_submit_timed(cf_executor *ex, cf_task_fn fn, const void *in,
                           size_t len, int64_t timeout_ns, cf_future **out);
CF_API int cf_submit_owned_timed(cf_executor *ex, cf_task_fn fn, void *in,
                                 size_t len, cf_free_fn free_fn,
                                 int64_t timeout_ns, cf_future **out);

/* Stops the executor accepting work; idempotent and safe from any thread.
 * cancel_futures: every still-pending future is cancelled (its waiters wake,
 * its callbacks run on this thread).  Queued tasks not cancelled still run.
 * wait: blocks until every queued task has run and every worker has exited
 * (when called from one of the executor's own workers, every other worker).
 * Returns CF_OK or CF_EINVAL. */
CF_API int cf_shutdown(cf_executor *ex, bool wait, bool cancel_futures);

/* Adds a reference to the executor; returns `ex` (see cf_future_retain). */
CF_API cf_executor *cf_executor_retain(cf_executor *ex);

/* Drops a reference; the last one shuts the executor down with wait = true
 * (queued tasks still run), joins all its threads and frees it.  Futures it
 * returned stay valid.  NULL is ignored.  When the last reference is dropped
 * inside one of the executor's own tasks or callbacks, the executor finishes
 * and frees itself once that task returns. */
CF_API void cf_executor_release(cf_executor *ex);

/* A snapshot of an executor's counters.  Set `size` before the call
 * (CF_EXECUTOR_STATS_INIT does): the library writes only the fields it
 * knows, so a program built against a later header, with more fields, works
 * with this library (its newer fields are left as they were). */
typedef struct cf_executor_stats {
  size_t size;          /* sizeof(cf_executor_stats), set by the caller */
  size_t workers;       /* worker threads or processes alive */
  size_t idle_workers;  /* of those, waiting for work */
  size_t queued;        /* tasks submitted but not yet taken by a worker */
  size_t running;       /* tasks running now */
  uint64_t completed;   /* tasks that returned 0 */
  uint64_t failed;      /* tasks that returned non-zero, or whose worker died */
  uint64_t cancelled;   /* futures cancelled that this executor then dropped,
                           and tasks that honoured a stop request */
  size_t blocked;       /* thread pool: workers blocked in a wait inside a
                           task (they do not count against max_workers) */
  size_t extra_workers; /* thread pool: workers alive beyond max_workers,
                           started to compensate for blocked ones */
} cf_executor_stats;

#define CF_EXECUTOR_STATS_INIT                                                 \
  { .size = sizeof(cf_executor_stats) }

/* Fills *out, whose size the caller set.  Returns CF_OK, CF_EINVAL (NULL, or
 * out->size smaller than the first released cf_executor_stats) or
 * CF_EBROKEN (an executor inherited through fork()).  Never blocks on
 * tasks. */
CF_API int cf_executor_stats_get(cf_executor *ex, cf_executor_stats *out);

/* Returns the executor's max_workers, or CF_EINVAL for NULL. */
CF_API int cf_executor_max_workers(cf_executor *ex);

/* ------------------------------------------------------------------------ */
/* The thread-pool backend                                                    */
/* ------------------------------------------------------------------------ */

/* The largest max_workers a thread pool accepts (each slot costs 128 bytes
 * up front; a thread, its stack, only once started). */
#define CF_THREAD_POOL_MAX_WORKERS 8192

/* Waiting inside a task.  A task may wait for other futures (of its own
 * pool or any other) with every wait function.  Its worker then never runs
 * unrelated tasks on its stack, so a timeout is kept and no deadlock is
 * created that the program does not already have.  Two mechanisms keep the
 * pool's queue moving meanwhile:
 *   - a wait without deadline (CF_FOREVER) for one future, or for all of a
 *     list (cf_wait() with CF_ALL_COMPLETED), runs a future of this pool
 *     that no worker has started yet inline, on the waiting worker: it would
 *     have to be done before the wait returns anyway (as Java's ForkJoinPool
 *     join).  So one worker plus a task that waits for tasks it submitted
 *     still completes, on one thread.  Nesting is bounded (128 levels);
 *     beyond it the wait blocks as below;
 *   - otherwise the worker blocks, and while it is blocked it does not count
 *     against max_workers: if tasks are queued and no worker is idle, the
 *     pool wakes or starts another worker ("compensation").  So at most
 *     max_workers tasks run unblocked at once (a worker whose wait ends
 *     finishes its task; the extra one retires at its next task boundary),
 *     and the pool never has more than max_workers +
 *     CF_THREAD_POOL_MAX_EXTRA threads.  Past that cap a blocked worker
 *     simply waits.  cf_executor_stats() shows blocked and extra workers. */
#define CF_THREAD_POOL_MAX_EXTRA 256

/* Options of cf_thread_pool_create().  Fill with
 * cf_thread_pool_options_init() or CF_THREAD_POOL_OPTIONS_INIT, which set
 * `size`, then change fields: `size` tells the library which fields the
 * program knows, so that later versions can add fields without breaking
 * programs built against this header.  The CF_*_INIT initialisers are
 * designated initialisers (C, or C++20); older C++ calls the *_init
 * functions, or sets `size` by hand. */
typedef struct cf_thread_pool_options {
  size_t size; /* sizeof(cf_thread_pool_options), set by *_init */
  /* Upper bound on worker threads, 1 to CF_THREAD_POOL_MAX_WORKERS; 0 =
   * online CPUs + 4, at most 32 (as Python).  Threads start lazily, one per
   * submit that finds none idle.  When the system refuses a new thread
   * (RLIMIT_NPROC, memory for its stack), the pool goes on with the threads
   * it has and the task waits in the queue; only when the pool has no thread
   * at all does cf_submit() return CF_EAGAIN. */
  int max_workers;
  /* Worker threads are named "<prefix>-<n>" (truncated to 15 bytes, see
   * /proc/self/task/ * /comm); NULL = "cf-worker". */
  const char *thread_name_prefix;
  /* Run once in each worker before its first task; NULL = none. */
  cf_initializer_fn initializer;
  const void *initarg;
  size_t initarg_len;
  /* A worker idle this long exits (a later submit starts a new one);
   * 0 or negative = idle workers stay until shutdown. */
  int64_t idle_timeout_ns;
  /* Queued tasks at most (see "Back-pressure" at cf_submit_timed()); 0 =
   * no bound. */
  size_t max_queued;
} cf_thread_pool_options;

#define CF_THREAD_POOL_OPTIONS_INIT                                            \
  { .size = sizeof(cf_thread_pool_options) }

/* Fills *opts with the defaults (and its size).  Returns CF_OK or
 * CF_EINVAL. */
CF_API int cf_thread_pool_options_init(cf_thread_pool_options *opts);

/* Creates a thread pool (opts NULL = defaults; the options are copied).  No
 * thread starts until the first submit.  The caller owns one reference.
 * Returns CF_OK, CF_EINVAL (max_workers out of range, or opts->size not set
 * by cf_thread_pool_options_init()) or CF_ENOMEM. */
CF_API int cf_thread_pool_create(const cf_thread_pool_options *opts,
                                 cf_executor **out);

/* ------------------------------------------------------------------------ */
/* The process-pool backend                                                   */
/* ------------------------------------------------------------------------ */

/* Tasks run in worker processes, so CPU-bound work runs in parallel and a
 * crashing task cannot take the caller down.
 *
 * How workers start: never by fork() of the caller (unsafe with threads).
 * A worker is a fresh exec of the very image the program runs: the pool
 * opens /proc/self/exe at create and starts every worker from that
 * descriptor (execveat), so a binary replaced or deleted on disk later
 * still runs the original code.  cfutures takes over before main() runs
 * (the library's constructor) and serves tasks.  Hence:
 *   - a task function must live in the program or in a shared library it
 *     links (it is found again by module and offset), not in a module the
 *     program dlopen()ed itself, nor be a pointer into JIT memory;
 *   - a worker sees its task's input bytes and whatever the initializer set
 *     up, never the parent's memory: globals have their initial values
 *     (static constructors of the program may not have run);
 *   - the program must link libcfutures (not dlopen it), so that its
 *     constructor runs in the worker.
 *
 * Shared libraries are loaded again by path in each worker.  The pool
 * records the identity of every module loaded at create (its GNU build-id,
 * or the device and inode of its file), and a worker compares the modules
 * it loaded: a task whose module differs or is missing in a worker is not
 * run, from then on, on any worker; it fails with CF_ETASK (code CF_EINVAL)
 * and words saying that the binary changed since the pool was created,
 * naming the module.  An initializer whose module differs is not run
 * either: the pool breaks (CF_EBROKEN) with such words.  Other code is
 * never run in their place.
 *
 * Only a pool makes a worker: the constructor serves tasks only when every
 * check proves that a pool of its parent process started it (a marker
 * variable with a per-pool secret, read with secure_getenv(); an AF_UNIX
 * socket whose peer is the parent process and the same user; the same
 * secret in a first message already waiting there).  Otherwise main() runs
 * as usual, and the marker is removed from the environment in every case.
 * A setuid, setgid or capability-raised program (AT_SECURE), or one whose
 * real and effective ids differ, never becomes a worker:
 * cf_process_pool_create() refuses there with CF_ENOTSUP.
 *
 * What a worker inherits, exactly:
 *   - the environment as it was when cf_process_pool_create() was called:
 *     it is copied then, on the calling thread (so that call must not race
 *     with setenv() on another thread, as for getenv()); later setenv() or
 *     unsetenv() calls, on any thread, do not reach the pool's workers and
 *     are safe while workers start;
 *   - the current directory, resource limits, user and group ids;
 *   - file descriptors 1 and 2 (stdout, stderr) as they are when the worker
 *     starts; descriptor 0 is /dev/null (a task reading stdin sees end of
 *     file, as with Python's multiprocessing); no other descriptor of the
 *     program (the worker's own channel is close-on-exec, so whatever a
 *     task starts, e.g. with system(), inherits only 0-2);
 *   - every signal at its default disposition, none blocked.
 *
 * Unsupported hosting is refused at create, with a status and words
 * (cf_last_error_message()): libcfutures loaded with dlopen() and a
 * program started through the dynamic loader (ld.so PROGRAM), CF_ENOTSUP;
 * no /proc (cannot open /proc/self/exe), CF_ENOTSUP; an initializer that
 * is not in a module loaded at start-up, CF_EINVAL.
 *
 * Done callbacks run in the calling process, on the pool's I/O thread
 * (named "cf-procpool"); like any callback they may call cfutures, but a
 * callback that blocks delays every other completion of its pool.  Only
 * that thread completes the pool's futures, so from there a wait for a
 * pending future of the same pool (cf_future_wait(), _result(), _error(),
 * with CF_FOREVER or a timeout) returns CF_EDEADLK at once; waits for done
 * futures, or for futures of other executors, work as anywhere.
 * cf_shutdown(wait = true) and the last cf_executor_release() from there
 * return without waiting for the pool: it finishes what it has once the
 * callback returns (and, released, frees itself).
 *
 * cf_map_destroy() on a process pool stops each running chunk after its
 * current input, as on the thread pool: the worker is told to skip the
 * inputs it has not started.  It looks for that message between inputs,
 * but only once the coarse clock has ticked since it last looked (a system
 * call per input would slow short inputs down; a tick is 1 to 10 ms by the
 * kernel's HZ), so after inputs shorter than a tick a few more may run
 * before it stops, for at most about one tick. */

typedef enum cf_death_policy {
  /* As Python: a worker dying mid-task breaks the pool.  Its task fails with
   * CF_EWORKERDIED, every other pending or running future with CF_EBROKEN,
   * the other workers are killed and cf_submit() returns CF_EBROKEN.  So
   * does a worker that dies while it starts. */
  CF_ON_DEATH_BREAK = 0,
  /* As loky: only the dead worker's task fails (CF_EWORKERDIED); a new
   * worker takes its place and the pool goes on.
   * A worker that dies while it starts (before its initializer has
   * returned 0: killed, crashed, exited) is started again after a
   * back-off of 10 ms, doubling each time, at most 1 s; no task is lost.
   * Only when 6 starts in a row fail, with no successful start between
   * them, does the pool break: every pending future fails with CF_EBROKEN,
   * the last worker's wait status as the code (cf_future_error()) and a
   * message that says how many starts failed and how the last one died.
   * An initializer that returns non-zero still breaks the pool at once
   * (see cf_initializer_fn), under both policies. */
  CF_ON_DEATH_RESTART = 1
} cf_death_policy;

/* The largest max_workers a process pool accepts. */
#define CF_PROCESS_POOL_MAX_WORKERS 1024

/* Options of cf_process_pool_create(); fill with
 * cf_process_pool_options_init() or CF_PROCESS_POOL_OPTIONS_INIT (see
 * cf_thread_pool_options for `size`). */
typedef struct cf_process_pool_options {
  size_t size; /* sizeof(cf_process_pool_options), set by *_init */
  /* 1 to CF_PROCESS_POOL_MAX_WORKERS; 0 = online CPUs.  When the system
   * refuses a new worker (descriptors, processes, memory), the pool goes on
   * with the workers it has; if it has none, the queued futures fail with
   * CF_EAGAIN and a later submit tries again. */
  int max_workers;
  cf_initializer_fn initializer; /* run in each worker; NULL = none */
  const void *initarg;           /* copied to each worker */
  size_t initarg_len;
  int max_tasks_per_child; /* a worker is replaced after this many tasks;
                              0 = never */
  cf_death_policy on_worker_death;
  /* Queued tasks at most (see "Back-pressure" at cf_submit_timed()); 0 =
   * no bound.  Tasks a worker has been sent are not queued. */
  size_t max_queued;
} cf_process_pool_options;

#define CF_PROCESS_POOL_OPTIONS_INIT                                           \
  { .size = sizeof(cf_process_pool_options) }

/* Fills *opts with the defaults (and its size).  Returns CF_OK or
 * CF_EINVAL. */
CF_API int cf_process_pool_options_init(cf_process_pool_options *opts);

/* Creates a process pool (opts NULL = defaults).  Workers start lazily, one
 * per submit that finds none idle, up to max_workers.  Captures the
 * environment for the workers (see above).  Returns CF_OK, CF_EINVAL
 * (counts out of range, opts->size not set by the options' init, an
 * initializer that cannot be located in a worker or lives in a dlopen()ed
 * module), CF_ENOTSUP (a program that cannot host workers:
 * setuid/setgid/capabilities, libcfutures dlopen()ed, started through
 * ld.so, no /proc), CF_ENOMEM, CF_EAGAIN or CF_ESYS; on failure
 * cf_last_error_message() says why in words. */
CF_API int cf_process_pool_create(const cf_process_pool_options *opts,
                                  cf_executor **out);

/* Like Python 3.14's terminate_workers() / kill_workers(): shuts the
 * executor down, cancels what has not started, and sends `sig` (e.g.
 * SIGTERM or SIGKILL) to every worker; the futures that were running fail
 * with CF_EWORKERDIED.  Returns CF_OK, CF_EINVAL, or CF_ENOTSUP for an
 * executor that has no worker processes. */
CF_API int cf_terminate_workers(cf_executor *ex, int sig);

/* ------------------------------------------------------------------------ */
/* wait / as_completed                                                       */
/* ------------------------------------------------------------------------ */

typedef enum cf_wait_mode {
  CF_FIRST_COMPLETED = 0, /* return when any future is done */
  CF_FIRST_EXCEPTION = 1, /* ... when any finishes with an error (not a
                             cancellation), else when all are done */
  CF_ALL_COMPLETED = 2    /* ... when all are done */
} cf_wait_mode;

/* Waits for futures[0..n) until `mode` is satisfied or the timeout expires.
 * done[i] (if done is not NULL) tells whether futures[i] is done on return
 * and *n_done (if not NULL) how many are.  A timeout is not an error: it
 * returns CF_OK with the done set as it stands.  Duplicates are allowed.
 * Returns CF_OK, CF_EINVAL (NULL array with n > 0, a NULL element, bad
 * mode, absurd n), CF_ENOMEM, or CF_EDEADLK (done[] still filled) as soon as
 * what the mode still needs can only complete after the caller returns (see
 * cf_future_wait()): e.g. a task waiting with CF_ALL_COMPLETED on a list
 * that holds its own future.  From a thread-pool task with CF_FOREVER and
 * CF_ALL_COMPLETED, queued futures of the list may run inline (see
 * "Waiting inside a task"). */
CF_API int cf_wait(cf_future *const *futures, size_t n, int64_t timeout_ns,
                   cf_wait_mode mode, bool *done, size_t *n_done);

typedef struct cf_as_completed_iter cf_as_completed_iter;

/* Starts iterating over futures[0..n) in the order they finish; those done
 * already come first, in input order; a future given twice comes once.  The
 * deadline is now + timeout_ns (CF_FOREVER: none) for the whole iteration.
 * The iterator holds its own references.  Returns CF_OK, CF_EINVAL, CF_ENOMEM.
 */
CF_API int cf_as_completed_create(cf_future *const *futures, size_t n,
                                  int64_t timeout_ns,
                                  cf_as_completed_iter **out);

/* Blocks until the next future is done and stores it in *future (a borrowed
 * pointer, valid until the iterator is destroyed; retain it to keep it
 * longer).  Returns CF_OK, CF_EOF when every future was handed out,
 * CF_ETIMEDOUT when the deadline passed first (later calls may still return
 * futures that are done by then), or CF_EDEADLK at once when every future
 * not handed out yet can only complete after the caller returns (see
 * cf_future_wait()). */
CF_API int cf_as_completed_next(cf_as_completed_iter *it, cf_future **future);

/* Frees the iterator and its references; NULL is ignored. */
CF_API void cf_as_completed_destroy(cf_as_completed_iter *it);

/* ------------------------------------------------------------------------ */
/* Composing futures: continuations, when_all, when_any                      */
/* ------------------------------------------------------------------------ */

/* A derived future (from cf_future_then(), cf_when_all(), cf_when_any()) is
 * a future like any other: it can be waited for, given to cf_wait(),
 * cf_as_completed(), a completion queue, done callbacks and further
 * continuations, and the caller owns one reference to it.  The sources are
 * not changed: a source may have any number of derived futures, and the
 * derived futures hold what they need of their sources (a source may be
 * released at once).  If a source is freed while still pending (a user
 * future released without being completed), what derives from it can
 * never run: it is cancelled then, so nobody waits for it forever.
 *
 * Cancellation.  Cancelling a derived future (cf_future_cancel(), or a stop
 * request while it is pending) never cancels its sources, unless it was
 * made with CF_CANCEL_SOURCES: then its sources still pending are
 * cancelled too (a source that runs is asked to stop,
 * cf_future_request_stop(); for a source running on a process pool or an
 * MPI pool, the derived future holds a reference to that pool until it
 * is done).  A source cancelled, or failed, is passed on
 * as the mode says; a derived future cancelled before its source completes
 * simply never runs its function.  (With CF_CANCEL_SOURCES the derived
 * future and its sources refer to each other until one completes: a user
 * future among the sources must then be completed or cancelled, else
 * neither is ever freed.)
 *
 * Stack and memory.  Completions and continuations that run inline are
 * trampolined: a chain of any length (1,000,000 links) completes in
 * constant stack on the thread that completes its first source, one link
 * after the other.  Each pending link costs one future and one small
 * record, freed as the chain completes.  So the inline continuations of a
 * future that an inline continuation completes run after that
 * continuation returns, not inside it: it must not wait for them. */

/* Flags of cf_future_then(), cf_when_all() and cf_when_any(), or'ed
 * together into their `flags`. */
typedef enum cf_compose_flags {
  /* then: run fn on the thread that completes the source (a worker, or
   * whoever calls cf_future_set_*() or cf_future_cancel()), as a done
   * callback does, or at once on the calling thread if the source is done
   * already; `ex` may be NULL.  Keep such functions short: they delay the
   * completing thread. */
  CF_RUN_INLINE = 1,
  /* then: run fn whatever the source's outcome (success, failure,
   * cancellation), with the outcome as input (see cf_outcome_parse());
   * without it, fn runs only on success, with the source's result bytes as
   * input, and the derived future takes any other outcome of the source
   * as is: its status, code and message. */
  CF_ANY_OUTCOME = 2,
  /* Cancelling the derived future cancels (or asks to stop) its sources
   * that are not done yet. */
  CF_CANCEL_SOURCES = 4
} cf_compose_flags;

/* Once `source` is done, runs fn on the executor `ex` (submitted there as
 * a task, one of `ex`'s tasks in every respect: a process pool runs it in
 * a worker) or, with CF_RUN_INLINE, on the completing thread, and gives in
 * *out a new future for fn's outcome.  fn's input is the source's result
 * bytes (a copy), or with CF_ANY_OUTCOME the source's outcome, encoded.
 * When the source does not succeed and CF_ANY_OUTCOME is not given, fn
 * does not run: the derived future ends as the source did (CANCELLED, or
 * FINISHED with its status, code and message).  If `ex` refuses the task
 * when the time comes (shut down, broken), the derived future fails with
 * that status (CF_ESHUTDOWN, CF_EBROKEN) and fn does not run.  The
 * derived future holds a reference to `ex` until it is done, and drops it
 * on the thread that completes it (a worker of `ex`, or its I/O thread),
 * so the caller may release `ex` at once.
 * Returns CF_OK, CF_EINVAL (source, fn or out NULL; ex NULL without
 * CF_RUN_INLINE; unknown flags), CF_ENOMEM, or CF_EBROKEN (ex inherited
 * through fork()).  On error *out is NULL and nothing was registered. */
CF_API int cf_future_then(cf_future *source, cf_executor *ex, cf_task_fn fn,
                          unsigned flags, cf_future **out);

/* The outcome of a source, as a CF_ANY_OUTCOME continuation receives it.
 * Set `size` before the call (CF_OUTCOME_INIT does). */
typedef struct cf_outcome {
  size_t size;         /* sizeof(cf_outcome), set by the caller */
  int status;          /* CF_OK, CF_ETASK, CF_ECANCELLED, CF_EBROKEN, ... */
  int code;            /* as cf_future_error() gives it, or 0 */
  const char *message; /* its words, or NULL; NUL-terminated */
  const void *data;    /* CF_OK: the result bytes (NULL when none) */
  size_t len;
} cf_outcome;

#define CF_OUTCOME_INIT                                                        \
  { .size = sizeof(cf_outcome) }

/* Decodes the input of a CF_ANY_OUTCOME continuation into *out, whose
 * pointers then point into `in` (valid as long as `in` is).  Checks the
 * whole encoding: bytes that are not an outcome (truncated, lengths that do
 * not add up, a message without its NUL) give CF_EINVAL, as do NULL
 * arguments or out->size not set.  Returns CF_OK or CF_EINVAL. */
CF_API int cf_outcome_parse(const void *in, size_t len, cf_outcome *out);

/* A future done when every one of futures[0..n) is done (n = 0: done at
 * once).  It always succeeds; its result is n int32_t values, the final
 * status of each source in input order (CF_OK, CF_ETASK, CF_ECANCELLED,
 * ...), so `then` on it can tell which failed.  A future may appear more
 * than once.  flags: 0 or CF_CANCEL_SOURCES.  The derived future holds no
 * reference to its sources (with CF_CANCEL_SOURCES it holds one to each
 * until it is done).
 * Returns CF_OK, CF_EINVAL (NULL array with n > 0, a NULL element, out
 * NULL, unknown flags, absurd n) or CF_ENOMEM. */
CF_API int cf_when_all(cf_future *const *futures, size_t n, unsigned flags,
                       cf_future **out);

/* The result of a future made by cf_when_any(). */
typedef struct cf_when_any_result {
  uint64_t index; /* which source completed first (the lowest index of the
                     sources already done when the call was made) */
  int32_t status; /* its final status */
  int32_t code;   /* its cf_future_error() code, or 0 */
} cf_when_any_result;

/* A future done as soon as one of futures[0..n) is done (n >= 1).  It
 * always succeeds; its result is one cf_when_any_result.  The other
 * sources go on (cancel them if that is wanted).  flags: 0 or
 * CF_CANCEL_SOURCES.  Returns as cf_when_all(), and CF_EINVAL for n = 0
 * (a future that could never complete). */
CF_API int cf_when_any(cf_future *const *futures, size_t n, unsigned flags,
                       cf_future **out);

/* ------------------------------------------------------------------------ */
/* Completion queues: futures into an event loop                             */
/* ------------------------------------------------------------------------ */

/* A completion queue holds futures and a file descriptor (an eventfd) that
 * is readable exactly while at least one of them is done and not popped
 * yet (a future is handed to the queue by a done callback: just after it
 * is done, after its waiters have been woken): level-triggered, so any loop can
 * watch it (epoll, poll, select, GLib's g_unix_fd_add(), libuv's
 * uv_poll_start(), ...) without a thread blocked in cf_wait().  The loop then
 * pops the done futures without blocking.  (With edge-triggered epoll, pop
 * until CF_EAGAIN.)  Safe from any thread; the loop and any number of threads
 * adding futures may share a queue. */
typedef struct cf_completion_queue cf_completion_queue;

/* Creates an empty queue and its descriptor (close-on-exec, non-blocking).
 * Returns CF_OK, CF_EINVAL, CF_ENOMEM or CF_ESYS (no descriptor: e.g.
 * EMFILE). */
CF_API int cf_completion_queue_create(cf_completion_queue **out);

/* The queue's descriptor, for reading readiness only: do not read, write
 * or close it.  Returns it (>= 0), or CF_EINVAL for NULL. */
CF_API int cf_completion_queue_fd(const cf_completion_queue *q);

/* Adds a future with a tag of the caller's (returned by pop beside it).
 * The queue takes its own reference to the future.  A future already done
 * is ready at once; the same future may be added to several queues, or
 * twice to one (it is then popped twice).  Returns CF_OK, CF_EINVAL or
 * CF_ENOMEM. */
CF_API int cf_completion_queue_add(cf_completion_queue *q, cf_future *future,
                                   void *tag);

/* Pops one done future, in the order they completed: *future receives the
 * queue's reference (the caller releases it), *tag (may be NULL) its tag.
 * Never blocks.  Returns CF_OK, CF_EAGAIN when none is done now (then
 * *future is NULL), or CF_EINVAL. */
CF_API int cf_completion_queue_pop(cf_completion_queue *q, cf_future **future,
                                   void **tag);

/* How many futures the queue holds: *pending not done yet, *ready done and
 * not popped (either may be NULL).  A snapshot.  Returns CF_OK or
 * CF_EINVAL. */
CF_API int cf_completion_queue_count(cf_completion_queue *q, size_t *pending,
                                     size_t *ready);

/* Destroys the queue and closes its descriptor (remove it from the loop
 * first).  Futures ready and not popped are released; futures still
 * pending are released too, and their completion later touches nothing of
 * the queue.  NULL is ignored.  Not concurrently with other calls on the
 * same queue. */
CF_API void cf_completion_queue_destroy(cf_completion_queue *q);

/* ------------------------------------------------------------------------ */
/* map                                                                        */
/* ------------------------------------------------------------------------ */

/* The largest max_inflight a map accepts. */
#define CF_MAP_MAX_INFLIGHT ((size_t)1 << 20)

/* Options of cf_map() and cf_map_array(); fill with cf_map_options_init()
 * or CF_MAP_OPTIONS_INIT (see cf_thread_pool_options for `size`). */
typedef struct cf_map_options {
  size_t size; /* sizeof(cf_map_options), set by *_init */
  /* false: results in input order (as Python's map); true: in completion
   * order, with cf_map_item.index telling the input position.  (Not last:
   * every public struct ends without padding, so that a field added later
   * starts past the end of today's struct.) */
  bool unordered;
  /* Deadline for the whole map, from the cf_map*() call; CF_FOREVER: none. */
  int64_t timeout_ns;
  /* Inputs sent to a worker as one task; 0 = chosen by the library (1 for
   * inputs of unknown count, else a few tasks per worker, at most 1024).
   * Any value is accepted: a chunk's memory is sized by the inputs it
   * actually holds, so a huge chunksize over three inputs costs three. */
  size_t chunksize;
  /* Tasks (chunks) kept in flight at once, at most CF_MAP_MAX_INFLIGHT
   * (more is CF_EINVAL); 0 = 4 x max_workers, at least 16; never more than
   * an array map has chunks.  Inputs are read and submitted only as results
   * are consumed, so memory stays bounded however many inputs there are. */
  size_t max_inflight;
} cf_map_options;

#define CF_MAP_OPTIONS_INIT                                                    \
  { .size = sizeof(cf_map_options), .timeout_ns = CF_FOREVER }

/* Fills *opts with the defaults (and its size).  Returns CF_OK or
 * CF_EINVAL. */
CF_API int cf_map_options_init(cf_map_options *opts);

/* Produces the input at position `index` (0, 1, 2, ...): sets *in / *len and
 * returns CF_OK, returns CF_EOF at the end, or any other status to stop the
 * map with that error.  The bytes need only stay valid until the next call;
 * they are copied.  Called on the thread that calls cf_map_next(). */
typedef int (*cf_map_input_fn)(void *arg, size_t index, const void **in,
                               size_t *len);

typedef struct cf_map_iter cf_map_iter;

/* One result handed back by cf_map_next().  Set `size` once before the
 * first call (CF_MAP_ITEM_INIT does); the library writes only the fields it
 * knows (see cf_executor_stats). */
typedef struct cf_map_item {
  size_t size;      /* sizeof(cf_map_item), set by the caller */
  size_t index;     /* the input's position */
  const void *data; /* result bytes (CF_OK), valid until the next
                       cf_map_next() or cf_map_destroy() */
  size_t len;
  /* On an error: the code and words cf_future_error() gives for the input's
   * task (what it returned and its message for CF_ETASK; the wait status
   * and "worker killed by ..." for CF_EWORKERDIED; ...), or 0 and NULL.
   * The words are valid until cf_map_destroy(). */
  int error_code;
  const char *error_message;
} cf_map_item;

#define CF_MAP_ITEM_INIT                                                       \
  { .size = sizeof(cf_map_item) }

/* Maps fn over inputs produced by next(arg, i, ...).  opts NULL = defaults.
 * Work is submitted while the map is created and as results are consumed.
 * Returns CF_OK, CF_EINVAL (also opts->size not set by
 * cf_map_options_init()), CF_ENOMEM, or the executor's submit error. */
CF_API int cf_map(cf_executor *ex, cf_task_fn fn, cf_map_input_fn next,
                  void *arg, const cf_map_options *opts, cf_map_iter **out);

/* Maps fn over `count` inputs of `size` bytes each, stored contiguously at
 * `base`.  On the thread pool the inputs are not copied: the array must stay
 * valid and unchanged until cf_map_destroy() returns.  CF_EINVAL when
 * count * size bytes from base would not fit the address space. */
CF_API int cf_map_array(cf_executor *ex, cf_task_fn fn, const void *base,
                        size_t size, size_t count, const cf_map_options *opts,
                        cf_map_iter **out);

/* Blocks for the next result.  item->size must be set (CF_MAP_ITEM_INIT),
 * else CF_EINVAL.  Returns CF_OK with *item filled, CF_EOF after the last
 * one, or an error; the first error ends the map (the remaining work is
 * cancelled, later calls return CF_EOF).  CF_EDEADLK when the chunks can
 * only complete after the caller returns (a map over a process pool read
 * from that pool's own done callback; see cf_future_wait()).  Errors:
 *   CF_ETASK        item->index failed (item->error_code / error_message);
 *   CF_ETIMEDOUT    the map's deadline passed;
 *   CF_ECANCELLED, CF_EBROKEN, CF_ESHUTDOWN, CF_EWORKERDIED, CF_ENOMEM, or
 *                   an error returned by the input function.
 * A map is used by one thread at a time. */
CF_API int cf_map_next(cf_map_iter *map, cf_map_item *item);

/* Cancels what has not run yet, waits for the map's running tasks to stop
 * (each stops after its current input) and frees the map.  NULL is ignored.
 */
CF_API void cf_map_destroy(cf_map_iter *map);

#ifdef __cplusplus
}
#endif

#endif /* CFUTURES_H */
