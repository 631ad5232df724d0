/*
 * The MPI backend (libcfutures-mpi), run under mpiexec by tests/test_mpi.sh
 * with 3 ranks: rank 0 runs the CUnit suite, ranks 1 and 2 serve its pools
 * from cf_mpi_main().  The generic behaviour every backend shares (results,
 * errors, map order and chunks, wait, as_completed, callbacks, shutdown,
 * the initializer, stats), and what is MPI's own: payloads split into
 * pieces, several pools one after the other over the same ranks, the
 * MPICommExecutor form (cf_mpi_serve), and a rank's idle CPU.
 *
 * Other modes, one job each (argv[1]):
 *   kill      a task kills its rank: with stock MPI the launcher ends the
 *             job; the script checks that it does, in bounded time
 *   mismatch  ranks 1.. run tests/test_mpi_other, another build: the pool
 *             must be refused, with words naming the rank
 *   huge      one input of 2 GiB + 1 MiB: pieces of the real size
 *   comm      the ranks serve a split communicator (cf_mpi_serve)
 *   spawn     run without mpiexec: the pool spawns 2 workers (exit 3 when
 *             this MPI cannot spawn, as Debian's MPICH)
 */
#include "cfutures-mpi.h"
#include "mpi_common.h" /* lib/: cf__mpi_piece */
#include "test_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static cf_executor *make_mpi_pool(cf_initializer_fn init, const void *arg,
                                  size_t len) {
  cf_mpi_pool_options o;
  cf_mpi_pool_options_init(&o);
  o.initializer = init;
  o.initarg = arg;
  o.initarg_len = len;
  cf_executor *ex = NULL;
  int rc = cf_mpi_pool_create(&o, &ex);
  if (rc != CF_OK)
    fprintf(stderr, "cf_mpi_pool_create: %s: %s\n", cf_strerror(rc),
            cf_last_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, CF_OK);
  return ex;
}

/* n * n + 1, computed by the pool (the future released). */
static uint64_t square_on(cf_executor *ex, uint64_t n) {
  cf_future *f = submit_u64(ex, task_square, n);
  uint64_t v = f ? result_u64(f) : 0;
  cf_future_release(f);
  return v;
}

static void release_all(cf_future **fs, size_t n) {
  for (size_t i = 0; i < n; i++)
    cf_future_release(fs[i]);
}

/* ---- tasks (they run on the worker ranks) -------------------------------- */

static int task_rank(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  int r = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return cf_task_return(t, &r, sizeof r);
}

/* in: bytes; result: u64 FNV-1a of them, then the bytes again. */
static uint64_t fnv(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211u;
  return h;
}
static int task_hash_echo(cf_task *t, const void *in, size_t len) {
  unsigned char *out = malloc(len + 8);
  if (!out)
    return ENOMEM;
  uint64_t h = fnv(in, len);
  memcpy(out, &h, 8);
  if (len)
    memcpy(out + 8, in, len);
  return cf_task_return_owned(t, out, len + 8, free);
}
static int task_hash(cf_task *t, const void *in, size_t len) {
  uint64_t h = fnv(in, len);
  return cf_task_return(t, &h, sizeof h);
}

/* The initializer's argument, as the rank got it. */
static char g_init[64];
static int init_store(const void *arg, size_t len) {
  if (len >= sizeof g_init)
    return 7;
  memcpy(g_init, arg, len);
  g_init[len] = '\0';
  return 0;
}
static int init_fail(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  return 42;
}
static int task_init_value(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  return cf_task_return(t, g_init, strlen(g_init));
}

/* The rank's CPU time so far, in ns. */
static int task_cpu(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  return cf_task_return(t, &ns, sizeof ns);
}

static int task_kill_self(cf_task *t, const void *in, size_t len) {
  (void)t;
  (void)in;
  (void)len;
  raise(SIGKILL);
  return 0;
}

/* ---- the generic contract ------------------------------------------------ */

static void test_results(void) {
  cf_executor *ex = make_mpi_pool(NULL, NULL, 0);
  CU_ASSERT_EQUAL(cf_executor_max_workers(ex), 2);
  enum { N = 200 };
  cf_future *fs[N];
  for (uint64_t i = 0; i < N; i++)
    fs[i] = submit_u64(ex, task_square, i);
  for (uint64_t i = 0; i < N; i++) {
    CU_ASSERT_EQUAL(result_u64(fs[i]), i * i + 1);
    cf_future_release(fs[i]);
  }
  /* Both worker ranks take work, and neither is the root. */
  bool seen[3] = {false};
  for (int round = 0; round < 50 && !(seen[1] && seen[2]); round++) {
    /* The pool hands queued work to its idle ranks in order: the task
     * submitted first goes to the first one. */
    cf_future *a, *b;
    if (round % 2)
      CU_ASSERT_EQUAL(cf_submit(ex, task_rank, NULL, 0, &b), CF_OK);
    CU_ASSERT_EQUAL(cf_submit(ex, task_sleep, &(long){20}, sizeof(long), &a),
                    CF_OK);
    if (round % 2 == 0)
      CU_ASSERT_EQUAL(cf_submit(ex, task_rank, NULL, 0, &b), CF_OK);
    const void *d;
    size_t n;
    int r = -1;
    CU_ASSERT_EQUAL(cf_future_result(b, CF_FOREVER, &d, &n), CF_OK);
    if (n == sizeof r)
      memcpy(&r, d, sizeof r);
    CU_ASSERT_TRUE(r == 1 || r == 2);
    if (r >= 0 && r < 3)
      seen[r] = true;
    cf_future_wait(a, CF_FOREVER);
    cf_future_release(a);
    cf_future_release(b);
  }
  CU_ASSERT_TRUE(seen[1] && seen[2]);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  CU_ASSERT_EQUAL(cf_executor_stats_get(ex, &st), CF_OK);
  CU_ASSERT_EQUAL(st.workers, 2);
  CU_ASSERT_TRUE(st.completed >= N);
  CU_ASSERT_EQUAL(st.failed, 0);
  cf_executor_release(ex);
}

static void test_errors(void) {
  cf_executor *ex = make_mpi_pool(NULL, NULL, 0);
  cf_future *bad, *good;
  CU_ASSERT_EQUAL(cf_submit(ex, task_fail, &(int){77}, sizeof(int), &bad),
                  CF_OK);
  good = submit_u64(ex, task_square, 9);
  int code = 0;
  const char *msg = NULL;
  CU_ASSERT_EQUAL(cf_future_error(bad, CF_FOREVER, &code, &msg), CF_ETASK);
  CU_ASSERT_EQUAL(code, 77);
  CU_ASSERT_STRING_EQUAL(msg ? msg : "", "failed with 77");
  CU_ASSERT_EQUAL(result_u64(good), 82); /* only its own future failed */
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.failed, 1);
  cf_future_release(bad);
  cf_future_release(good);
  /* Not a backend with processes to signal. */
  CU_ASSERT_EQUAL(cf_terminate_workers(ex, SIGTERM), CF_ENOTSUP);
  cf_executor_release(ex);
}

static void check_map(cf_executor *ex, size_t count, size_t chunksize,
                      bool unordered) {
  uint64_t *in = malloc(count * sizeof *in);
  bool *seen = calloc(count, 1);
  CU_ASSERT_FATAL(in && seen);
  for (size_t i = 0; i < count; i++)
    in[i] = i;
  cf_map_options o;
  cf_map_options_init(&o);
  o.chunksize = chunksize;
  o.unordered = unordered;
  cf_map_iter *it;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_square, in, sizeof *in, count, &o, &it), CF_OK);
  cf_map_item item = CF_MAP_ITEM_INIT;
  size_t k = 0;
  int rc;
  while ((rc = cf_map_next(it, &item)) == CF_OK) {
    uint64_t v = 0;
    CU_ASSERT_EQUAL(item.len, sizeof v);
    memcpy(&v, item.data, sizeof v);
    CU_ASSERT_TRUE(item.index < count);
    if (!unordered)
      CU_ASSERT_EQUAL(item.index, k);
    if (item.index < count) {
      CU_ASSERT_FALSE(seen[item.index]);
      seen[item.index] = true;
      CU_ASSERT_EQUAL(v, (uint64_t)item.index * item.index + 1);
    }
    k++;
  }
  CU_ASSERT_EQUAL(rc, CF_EOF);
  CU_ASSERT_EQUAL(k, count);
  cf_map_destroy(it);
  free(in);
  free(seen);
}

static void test_map_chunks(void) {
  cf_executor *ex = make_mpi_pool(NULL, NULL, 0);
  check_map(ex, 1000, 1, false);
  check_map(ex, 1000, 7, false);
  check_map(ex, 5000, 1000, false);
  check_map(ex, 3000, 0, true);
  check_map(ex, 1, 1000, false);
  cf_executor_release(ex);
}

/* A failing input ends the map with its error; the pool goes on. */
static int task_fail_at_500(cf_task *t, const void *in, size_t len) {
  uint64_t v;
  memcpy(&v, in, sizeof v);
  if (len == sizeof v && v == 500)
    return cf_task_fail(t, 5, "input %llu", (unsigned long long)v);
  return task_square(t, in, len);
}
static void test_map_error_and_stop(void) {
  cf_executor *ex = make_mpi_pool(NULL, NULL, 0);
  enum { N = 2000 };
  static uint64_t in[N];
  for (size_t i = 0; i < N; i++)
    in[i] = i;
  cf_map_options o;
  cf_map_options_init(&o);
  o.chunksize = 100;
  cf_map_iter *it;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_fail_at_500, in, sizeof *in, N, &o, &it), CF_OK);
  cf_map_item item = CF_MAP_ITEM_INIT;
  size_t k = 0;
  int rc;
  while ((rc = cf_map_next(it, &item)) == CF_OK)
    k++;
  CU_ASSERT_EQUAL(rc, CF_ETASK);
  CU_ASSERT_EQUAL(k, 500);
  CU_ASSERT_EQUAL(item.index, 500);
  CU_ASSERT_EQUAL(item.error_code, 5);
  CU_ASSERT_STRING_EQUAL(item.error_message ? item.error_message : "",
                         "input 500");
  cf_map_destroy(it);
  /* A map left early over slow chunks: destroy stops the running chunks
   * (STOP to their ranks) instead of waiting for all their inputs. */
  static long ms[N];
  for (size_t i = 0; i < N; i++)
    ms[i] = 5;
  o.chunksize = 1000;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_sleep, ms, sizeof *ms, 2000, &o, &it), CF_OK);
  int64_t t0 = cf_test_now_ms();
  cf_test_sleep_ms(50);
  cf_map_destroy(it); /* 2 chunks of 5 s each if not stopped */
  CU_ASSERT_TRUE(cf_test_now_ms() - t0 < 4000);
  CU_ASSERT_EQUAL(square_on(ex, 3), 10);
  cf_executor_release(ex);
}

static void test_wait_as_completed(void) {
  cf_executor *ex = make_mpi_pool(NULL, NULL, 0);
  cf_future *fs[3];
  CU_ASSERT_EQUAL(
      cf_submit(ex, task_sleep, &(long){3000}, sizeof(long), &fs[0]), CF_OK);
  CU_ASSERT_EQUAL(cf_submit(ex, task_sleep, &(long){1}, sizeof(long), &fs[1]),
                  CF_OK);
  CU_ASSERT_EQUAL(cf_submit(ex, task_fail, &(int){3}, sizeof(int), &fs[2]),
                  CF_OK);
  bool done[3];
  size_t nd = 0;
  CU_ASSERT_EQUAL(cf_wait(fs, 3, CF_FOREVER, CF_FIRST_EXCEPTION, done, &nd),
                  CF_OK);
  CU_ASSERT_TRUE(done[2]);
  CU_ASSERT_TRUE(nd >= 1 && nd < 3);
  CU_ASSERT_EQUAL(cf_wait(fs, 3, CF_FOREVER, CF_ALL_COMPLETED, done, &nd),
                  CF_OK);
  CU_ASSERT_EQUAL(nd, 3);
  release_all(fs, 3);
  enum { N = 100 };
  cf_future *gs[N];
  for (uint64_t i = 0; i < N; i++)
    gs[i] = submit_u64(ex, task_square, i);
  cf_as_completed_iter *it;
  CU_ASSERT_EQUAL_FATAL(cf_as_completed_create(gs, N, CF_SEC(120), &it), CF_OK);
  cf_future *f;
  size_t count = 0;
  while (cf_as_completed_next(it, &f) == CF_OK) {
    CU_ASSERT_TRUE(cf_future_done(f));
    count++;
  }
  CU_ASSERT_EQUAL(count, N);
  cf_as_completed_destroy(it);
  release_all(gs, N);
  cf_executor_release(ex);
}

/* Callbacks run on the pool's manager thread; a wait there for a pending
 * future of the same pool would never end: CF_EDEADLK. */
typedef struct cb_state {
  atomic_int calls;
  atomic_int on_main;
  atomic_int deadlk;
  pthread_t main;
  cf_future *other;
} cb_state;
static void on_done(cf_future *f, void *arg) {
  cb_state *s = arg;
  (void)f;
  if (pthread_equal(pthread_self(), s->main))
    atomic_fetch_add(&s->on_main, 1);
  if (s->other && cf_future_wait(s->other, CF_FOREVER) == CF_EDEADLK)
    atomic_fetch_add(&s->deadlk, 1);
  atomic_fetch_add(&s->calls, 1);
}
static void test_callbacks(void) {
  cf_executor *ex = make_mpi_pool(NULL, NULL, 0);
  cb_state s = {.main = pthread_self()};
  atomic_init(&s.calls, 0);
  atomic_init(&s.on_main, 0);
  atomic_init(&s.deadlk, 0);
  enum { N = 50 };
  cf_future *fs[N];
  for (uint64_t i = 0; i < N; i++) {
    fs[i] = submit_u64(ex, task_square, i);
    CU_ASSERT_EQUAL(cf_future_add_done_callback(fs[i], on_done, &s), CF_OK);
  }
  for (int i = 0; i < N; i++)
    cf_future_wait(fs[i], CF_FOREVER);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&s.calls) == N));
  release_all(fs, N);
  /* One callback waits for a future still held on a gate of 2 s. */
  cb_state d = {.main = pthread_self()};
  atomic_init(&d.calls, 0);
  atomic_init(&d.on_main, 0);
  atomic_init(&d.deadlk, 0);
  CU_ASSERT_EQUAL(
      cf_submit(ex, task_sleep, &(long){2000}, sizeof(long), &d.other), CF_OK);
  cf_future *g = submit_u64(ex, task_square, 1);
  CU_ASSERT_EQUAL(cf_future_add_done_callback(g, on_done, &d), CF_OK);
  cf_future_wait(g, CF_FOREVER);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&d.calls) == 1));
  CU_ASSERT_EQUAL(atomic_load(&d.deadlk), 1);
  cf_future_wait(d.other, CF_FOREVER);
  cf_future_release(d.other);
  cf_future_release(g);
  cf_executor_release(ex);
}

/* Continuations, combinators, stop requests and the queue bound, on the
 * ranks as on the other backends. */
static int task_add_one(cf_task *t, const void *in, size_t len) {
  uint64_t v = 0;
  if (len != sizeof v)
    return cf_task_fail(t, 22, "input of %zu bytes", len);
  memcpy(&v, in, sizeof v);
  v++;
  return cf_task_return(t, &v, sizeof v);
}

static int task_until_stopped(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  int64_t end = cf_test_now_ms() + 60000; /* a hang guard only */
  while (!cf_task_stop_requested(t) && cf_test_now_ms() < end)
    cf_test_sleep_ms(1);
  return cf_test_now_ms() < end ? CF_ECANCELLED : 1;
}

static void test_compose_and_stop(void) {
  cf_executor *ex = make_mpi_pool(NULL, NULL, 0);
  cf_future *f = submit_u64(ex, task_square, 3), *d = NULL, *e = NULL;
  CU_ASSERT_EQUAL(cf_future_then(f, ex, task_add_one, 0, &d), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(d, ex, task_rank, 0, &e), CF_OK);
  CU_ASSERT_EQUAL(result_u64(d), 11); /* 3 * 3 + 1, + 1 */
  const void *r = NULL;
  size_t len = 0;
  CU_ASSERT_EQUAL(cf_future_result(e, CF_FOREVER, &r, &len), CF_OK);
  int rank = -1;
  if (len == sizeof rank)
    memcpy(&rank, r, sizeof rank);
  CU_ASSERT(rank > 0); /* ran on a worker rank */
  cf_future *all = NULL, *srcs[2] = {f, d};
  CU_ASSERT_EQUAL(cf_when_all(srcs, 2, 0, &all), CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(all, CF_FOREVER, &r, &len), CF_OK);
  CU_ASSERT_EQUAL(len, 2 * sizeof(int32_t));
  cf_future_release(all);
  cf_future_release(f);
  cf_future_release(d);
  cf_future_release(e);
  /* A stop request reaches the rank as a message. */
  cf_future *s = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_until_stopped, NULL, 0, &s), CF_OK);
  while (cf_future_state(s) == CF_PENDING)
    cf_test_sleep_ms(1);
  CU_ASSERT_EQUAL(cf_future_request_stop(s), CF_OK);
  CU_ASSERT_EQUAL(cf_future_wait(s, CF_FOREVER), CF_OK);
  CU_ASSERT_TRUE(cf_future_cancelled(s));
  cf_future_release(s);
  CU_ASSERT_EQUAL(square_on(ex, 4), 17); /* the rank serves on */
  cf_executor_release(ex);
  /* max_queued: a full queue refuses at once. */
  cf_mpi_pool_options o;
  cf_mpi_pool_options_init(&o);
  o.max_queued = 2;
  CU_ASSERT_EQUAL_FATAL(cf_mpi_pool_create(&o, &ex), CF_OK);
  enum { N = 64 };
  cf_future *fs[N];
  size_t ok = 0;
  int refused = CF_OK;
  for (size_t i = 0; i < N && refused == CF_OK; i++) {
    refused = cf_submit(ex, task_until_stopped, NULL, 0, &fs[ok]);
    if (refused == CF_OK)
      ok++;
  }
  /* Every rank busy, then two queued: never more than that accepted. */
  CU_ASSERT_EQUAL(refused, CF_EAGAIN);
  CU_ASSERT(ok >= 2 && ok <= 2 + (size_t)cf_executor_max_workers(ex));
  for (size_t i = 0; i < ok; i++)
    cf_future_request_stop(fs[i]);
  for (size_t i = 0; i < ok; i++) {
    CU_ASSERT_EQUAL(cf_future_wait(fs[i], CF_FOREVER), CF_OK);
    CU_ASSERT_TRUE(cf_future_cancelled(fs[i]));
    cf_future_release(fs[i]);
  }
  cf_executor_release(ex);
}

static void test_shutdown(void) {
  cf_executor *ex = make_mpi_pool(NULL, NULL, 0);
  enum { N = 40 };
  cf_future *fs[N];
  for (int i = 0; i < N; i++)
    CU_ASSERT_EQUAL(
        cf_submit(ex, task_sleep, &(long){50}, sizeof(long), &fs[i]), CF_OK);
  /* Once the first has started (the others wait in the queue), shut
   * down, cancelling what has not started. */
  CU_ASSERT_TRUE(
      CF_TEST_EVENTUALLY(cf_future_running(fs[0]) || cf_future_done(fs[0])));
  CU_ASSERT_EQUAL(cf_shutdown(ex, true, true), CF_OK);
  int cancelled = 0, ok = 0;
  for (int i = 0; i < N; i++) {
    CU_ASSERT_TRUE(cf_future_done(fs[i]));
    cancelled += cf_future_cancelled(fs[i]);
    ok += cf_future_result(fs[i], 0, NULL, NULL) == CF_OK;
  }
  printf(" (%d ran, %d cancelled) ", ok, cancelled);
  CU_ASSERT_EQUAL(cancelled + ok, N);
  CU_ASSERT_TRUE(cancelled > 0);
  CU_ASSERT_TRUE(ok >= 1 && ok <= 6); /* those running, 2 at a time */
  release_all(fs, N);
  cf_future *f = NULL;
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, &f), CF_ESHUTDOWN);
  cf_executor_release(ex);
  /* The ranks serve the next pool. */
  ex = make_mpi_pool(NULL, NULL, 0);
  CU_ASSERT_EQUAL(square_on(ex, 4), 17);
  cf_shutdown(ex, false, false); /* the release waits */
  cf_executor_release(ex);
}

static void test_initializer(void) {
  static const char arg[] = "hello ranks";
  cf_executor *ex = make_mpi_pool(init_store, arg, sizeof arg - 1);
  for (int i = 0; i < 10; i++) {
    cf_future *f;
    CU_ASSERT_EQUAL(cf_submit(ex, task_init_value, NULL, 0, &f), CF_OK);
    const void *d;
    size_t n;
    CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, &n), CF_OK);
    CU_ASSERT_TRUE(n == sizeof arg - 1 && memcmp(d, arg, n) == 0);
    cf_future_release(f);
  }
  cf_executor_release(ex);
  /* A failing initializer breaks the pool, saying so; the next pool is
   * fine. */
  cf_mpi_pool_options o;
  cf_mpi_pool_options_init(&o);
  o.initializer = init_fail;
  CU_ASSERT_EQUAL_FATAL(cf_mpi_pool_create(&o, &ex), CF_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(cf_last_error_message(), "code 42"));
  cf_future *f = NULL;
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, &f), CF_EBROKEN);
  cf_executor_release(ex);
  ex = make_mpi_pool(NULL, NULL, 0);
  CU_ASSERT_EQUAL(square_on(ex, 5), 26);
  cf_executor_release(ex);
}

static void test_options(void) {
  cf_executor *ex = NULL, *ex2 = NULL;
  CU_ASSERT_EQUAL(cf_mpi_pool_create(NULL, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_mpi_pool_options_init(NULL), CF_EINVAL);
  cf_mpi_pool_options o;
  cf_mpi_pool_options_init(&o);
  o.size = 0;
  CU_ASSERT_EQUAL(cf_mpi_pool_create(&o, &ex), CF_EINVAL);
  cf_mpi_pool_options_init(&o);
  o.max_workers = -1;
  CU_ASSERT_EQUAL(cf_mpi_pool_create(&o, &ex), CF_EINVAL);
  cf_mpi_pool_options_init(&o);
  o.initarg_len = 3;
  CU_ASSERT_EQUAL(cf_mpi_pool_create(&o, &ex), CF_EINVAL);
  CU_ASSERT_PTR_NULL(ex);
  /* One rank as the only worker. */
  cf_mpi_pool_options_init(&o);
  o.max_workers = 1;
  CU_ASSERT_EQUAL_FATAL(cf_mpi_pool_create(&o, &ex), CF_OK);
  CU_ASSERT_EQUAL(cf_executor_max_workers(ex), 1);
  /* The ranks serve one pool at a time. */
  CU_ASSERT_EQUAL(cf_mpi_pool_create(NULL, &ex2), CF_ESTATE);
  CU_ASSERT_PTR_NOT_NULL(strstr(cf_last_error_message(), "one pool"));
  CU_ASSERT_EQUAL(square_on(ex, 6), 37);
  cf_executor_release(ex);
  /* The main program's functions only: a function pointer outside every
   * module is refused before it travels. */
  ex = make_mpi_pool(NULL, NULL, 0);
  cf_future *f;
  static unsigned char not_code[16];
  CU_ASSERT_EQUAL(cf_submit(ex, (cf_task_fn)(void *)not_code, NULL, 0, &f),
                  CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, NULL, NULL), CF_ETASK);
  const char *msg = NULL;
  int code = 0;
  cf_future_error(f, 0, &code, &msg);
  CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, "in no module") : NULL);
  cf_future_release(f);
  CU_ASSERT_EQUAL(cf_mpi_main(&(int){0}, &(char **){NULL}), CF_ESTATE);
  cf_executor_release(ex);
}

/* A rank MPI reports failed (simulated: stock MPI ends the job instead):
 * its task fails with CF_EWORKERDIED; BREAK then breaks the pool, RESTART
 * goes on with the other rank. */
static void test_rank_failure(void) {
  for (int pol = 0; pol < 2; pol++) {
    cf_mpi_pool_options o;
    cf_mpi_pool_options_init(&o);
    o.on_worker_death = pol ? CF_ON_DEATH_RESTART : CF_ON_DEATH_BREAK;
    cf_executor *ex;
    CU_ASSERT_EQUAL_FATAL(cf_mpi_pool_create(&o, &ex), CF_OK);
    cf__mpi_fail_peer = 1; /* the manager's next send to rank 1 fails */
    cf_future *f = submit_u64(ex, task_square, 2);
    /* A done callback submits again, on the manager, as the future
     * fails: under BREAK the pool is broken by then (no race to lose). */
    resubmit again = {.ex = ex};
    atomic_init(&again.rc, 1);
    cf_future_add_done_callback(f, resubmit_cb, &again);
    int code = 0;
    const char *msg = NULL;
    CU_ASSERT_EQUAL(cf_future_error(f, CF_FOREVER, &code, &msg),
                    CF_EWORKERDIED);
    CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, "worker rank 1") : NULL);
    cf_future_release(f);
    cf__mpi_fail_peer = -1;
    CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&again.rc) != 1));
    CU_ASSERT_EQUAL(atomic_load(&again.rc), pol ? CF_OK : CF_EBROKEN);
    cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
    cf_executor_stats_get(ex, &st);
    CU_ASSERT_EQUAL(st.workers, 1); /* rank 2: serving, or being released */
    f = NULL;
    int rc = cf_submit(ex, task_square, &(uint64_t){3}, 8, &f);
    if (pol) { /* the other rank serves on */
      CU_ASSERT_EQUAL(rc, CF_OK);
      CU_ASSERT_EQUAL(result_u64(f), 10);
      cf_future_release(f);
    } else {
      CU_ASSERT_EQUAL(rc, CF_EBROKEN);
    }
    cf_executor_release(ex);
  }
  /* Rank 1 missed its EXIT (the pool thought it gone): it is still in that
   * pool's session, and takes the next pool's INIT as a new one. */
  cf_executor *ex = make_mpi_pool(NULL, NULL, 0);
  check_map(ex, 200, 1, false);
  cf_executor_release(ex);
}

/* Pieces: with cf__mpi_piece at 64 KiB (main() sets it on every rank),
 * 16 MiB inputs and results travel as 256 pieces each way, and small
 * frames still go packed. */
static void test_big_payloads(void) {
  cf_executor *ex = make_mpi_pool(NULL, NULL, 0);
  size_t sizes[] = {0, 1, 4096, 65535, 65536, 65537, 1 << 20, 16 << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    size_t n = sizes[k];
    unsigned char *in = malloc(n + 1);
    CU_ASSERT_FATAL(in != NULL);
    for (size_t i = 0; i < n; i++)
      in[i] = (unsigned char)(i * 131 + k);
    cf_future *f;
    CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_hash_echo, in, n, &f), CF_OK);
    const void *d;
    size_t len;
    CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, &len), CF_OK);
    CU_ASSERT_EQUAL(len, n + 8);
    uint64_t h = 0;
    if (len == n + 8) {
      memcpy(&h, d, 8);
      CU_ASSERT_TRUE(memcmp((const unsigned char *)d + 8, in, n) == 0);
    }
    CU_ASSERT_EQUAL(h, fnv(in, n));
    cf_future_release(f);
    free(in);
  }
  cf_executor_release(ex);
}

/* Idle ranks sleep between probes: over 1.5 s of an idle pool, each rank
 * uses a small part of a CPU (a rank spinning in MPI_Recv or MPI_Iprobe
 * would use all of it).  The bound is loose on purpose; the figures are
 * measured by the benchmark. */
static void test_idle_cpu(void) {
  cf_executor *ex = make_mpi_pool(NULL, NULL, 0);
  int64_t c0[2] = {0}, c1[2] = {0};
  struct timespec r0, r1;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &r0);
  for (int phase = 0; phase < 2; phase++) {
    /* Two tasks at once, so each rank runs one. */
    cf_future *fs[2];
    for (int i = 0; i < 2; i++)
      CU_ASSERT_EQUAL(
          cf_submit(ex, task_sleep, &(long){200}, sizeof(long), &fs[i]), CF_OK);
    cf_future *g[2];
    for (int i = 0; i < 2; i++)
      CU_ASSERT_EQUAL(cf_submit(ex, task_cpu, NULL, 0, &g[i]), CF_OK);
    for (int i = 0; i < 2; i++) {
      const void *d;
      size_t n;
      int64_t v = 0;
      CU_ASSERT_EQUAL(cf_future_result(g[i], CF_FOREVER, &d, &n), CF_OK);
      if (n == sizeof v)
        memcpy(&v, d, sizeof v);
      (phase ? c1 : c0)[i] = v;
    }
    release_all(fs, 2);
    release_all(g, 2);
    if (phase == 0) {
      cf_test_sleep_ms(300);
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &r0);
      cf_test_sleep_ms(1500);
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &r1);
    }
  }
  int64_t root = (r1.tv_sec - r0.tv_sec) * 1000000000LL +
                 (r1.tv_nsec - r0.tv_nsec);
  /* ranks: sum over both (which rank ran which phase may differ) */
  int64_t ranks = (c1[0] + c1[1]) - (c0[0] + c0[1]);
  printf("\n  idle 1.5 s: root %.1f ms CPU, worker ranks %.1f ms (both, "
         "including 2 x 300 ms-ish of start/measure) ",
         root / 1e6, ranks / 1e6);
  CU_ASSERT_TRUE(root < 500000000);   /* < 1/3 of a CPU */
  CU_ASSERT_TRUE(ranks < 1500000000); /* < 1/2 of a CPU each */
  cf_executor_release(ex);
}

/* ---- the other modes ----------------------------------------------------- */

static int mode_kill(void) {
  cf_executor *ex;
  if (cf_mpi_pool_create(NULL, &ex) != CF_OK)
    return 3;
  cf_future *f;
  cf_submit(ex, task_kill_self, NULL, 0, &f);
  /* With stock MPI the launcher ends the job: this wait never returns.
   * Where MPI reports the death, the future fails instead. */
  int rc = cf_future_wait(f, CF_SEC(600));
  printf("kill: the future ended: %s\n",
         cf_err_name(cf_future_result(f, 0, NULL, NULL)));
  (void)rc;
  return 5;
}

static int mode_mismatch(void) {
  cf_executor *ex = NULL;
  int rc = cf_mpi_pool_create(NULL, &ex);
  printf("mismatch: %s: %s\n", cf_err_name(rc), cf_last_error_message());
  if (rc != CF_EINVAL || ex ||
      !strstr(cf_last_error_message(), "another build of the program"))
    return 1;
  return 0;
}

static int mode_huge(void) {
  size_t n = ((size_t)2 << 30) + (1 << 20);
  unsigned char *in = malloc(n);
  if (!in)
    return 77;
  for (size_t i = 0; i < n; i++)
    in[i] = (unsigned char)(i ^ (i >> 13));
  cf_executor *ex;
  if (cf_mpi_pool_create(NULL, &ex) != CF_OK)
    return 3;
  cf_future *f;
  if (cf_submit_owned(ex, task_hash, in, n, free, &f) != CF_OK)
    return 4;
  const void *d;
  size_t len;
  uint64_t h = 0;
  int rc = cf_future_result(f, CF_FOREVER, &d, &len);
  if (rc == CF_OK && len == 8)
    memcpy(&h, d, 8);
  unsigned char *again = malloc(n);
  for (size_t i = 0; again && i < n; i++)
    again[i] = (unsigned char)(i ^ (i >> 13));
  bool ok = rc == CF_OK && again && h == fnv(again, n);
  printf("huge: %zu bytes in one input: %s\n", n,
         ok ? "hash matches" : "FAILED");
  free(again);
  cf_future_release(f);
  cf_executor_release(ex);
  return ok ? 0 : 1;
}

/* MPICommExecutor's form, without cf_mpi_main(): the application
 * initialises MPI, splits the world, and the even ranks (0 and 2) make a
 * pool on their communicator; rank 2 serves it in cf_mpi_serve() and
 * returns once rank 0 releases the pool; rank 1 stays out. */
static int mode_comm(int *argc, char ***argv) {
  int provided, world = -1;
  MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &world);
  MPI_Comm even;
  MPI_Comm_split(MPI_COMM_WORLD, world % 2 ? MPI_UNDEFINED : 0, world, &even);
  int result = 0;
  if (world == 2) {
    int rc = cf_mpi_serve(even, 0);
    printf("comm: rank 2's cf_mpi_serve returned %s\n", cf_err_name(rc));
    result = rc == CF_OK ? 0 : 1;
  } else if (world == 0) {
    cf_mpi_pool_options o;
    cf_mpi_pool_options_init(&o);
    o.comm = even;
    o.root = 0;
    cf_executor *ex;
    int rc = cf_mpi_pool_create(&o, &ex);
    int r = -1;
    if (rc == CF_OK) {
      cf_future *f;
      cf_submit(ex, task_rank, NULL, 0, &f);
      const void *d;
      size_t n;
      if (cf_future_result(f, CF_FOREVER, &d, &n) == CF_OK && n == sizeof r)
        memcpy(&r, d, sizeof r);
      cf_future_release(f);
      cf_executor_release(ex); /* rank 2's cf_mpi_serve() returns */
    }
    printf("comm: %s (%s); the task ran on world rank %d\n", cf_err_name(rc),
           cf_last_error_message(), r);
    result = r == 2 ? 0 : 1;
  }
  if (even != MPI_COMM_NULL)
    MPI_Comm_free(&even);
  MPI_Finalize();
  return result;
}

/* Run without mpiexec: a singleton whose pool spawns 2 workers. */
static int mode_spawn(void) {
  cf_mpi_pool_options o;
  cf_mpi_pool_options_init(&o);
  o.spawn = 2;
  cf_executor *ex = NULL;
  int rc = cf_mpi_pool_create(&o, &ex);
  printf("spawn: %s%s%s\n", cf_err_name(rc), rc ? ": " : "",
         rc ? cf_last_error_message() : "");
  if (rc != CF_OK)
    return rc == CF_ENOTSUP ? 3 : 1;
  bool ok = cf_executor_max_workers(ex) == 2;
  for (uint64_t i = 0; i < 100; i++) {
    cf_future *f = NULL;
    ok = ok && cf_submit(ex, task_square, &i, sizeof i, &f) == CF_OK;
    const void *d;
    size_t n;
    uint64_t v = 0;
    if (f && cf_future_result(f, CF_FOREVER, &d, &n) == CF_OK && n == 8)
      memcpy(&v, d, 8);
    ok = ok && v == i * i + 1;
    cf_future_release(f);
  }
  cf_executor_release(ex); /* the workers leave */
  printf("spawn: 100 tasks on 2 spawned workers: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  /* Before anything travels, on every rank (they run this same main). */
  cf__mpi_piece = 65536;
  const char *mode = argc > 1 ? argv[1] : "suite";
  if (strcmp(mode, "comm") == 0)
    return mode_comm(&argc, &argv);
  int rc = cf_mpi_main(&argc, &argv);
  if (rc != CF_OK) {
    fprintf(stderr, "cf_mpi_main: %s: %s\n", cf_strerror(rc),
            cf_last_error_message());
    return 2;
  }
  /* Only the root of the world gets here. */
  int result;
  if (strcmp(mode, "kill") == 0)
    result = mode_kill();
  else if (strcmp(mode, "mismatch") == 0)
    result = mode_mismatch();
  else if (strcmp(mode, "huge") == 0)
    result = mode_huge();
  else if (strcmp(mode, "spawn") == 0)
    result = mode_spawn();
  else {
    static const cf_test_case cases[] = {
        CF_TEST(test_results),           CF_TEST(test_errors),
        CF_TEST(test_map_chunks),        CF_TEST(test_map_error_and_stop),
        CF_TEST(test_wait_as_completed), CF_TEST(test_callbacks),
        CF_TEST(test_shutdown),          CF_TEST(test_initializer),
        CF_TEST(test_options),           CF_TEST(test_big_payloads),
        CF_TEST(test_rank_failure),      CF_TEST(test_idle_cpu),
        CF_TEST(test_compose_and_stop),
    };
    result = cf_test_main("mpi", cases, sizeof cases / sizeof cases[0]);
  }
  /* The atexit handler would do it too; an explicit call is the norm. */
  cf_mpi_finalize();
  return result;
}
