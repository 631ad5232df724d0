/* The edges: max_workers out of range and beyond what the system allows
 * (threads refused for their stacks, processes refused for descriptors), a
 * million pending futures, a 1 GiB task input to a worker process, and
 * deadlines far in the past and far in the future. */
#include "test_util.h"

#include <limits.h>
#include <malloc.h>
#include <sys/resource.h>

static long page_bytes(void) { return sysconf(_SC_PAGESIZE); }

/* Field `i` of /proc/self/statm, in bytes (0 = size, 1 = resident). */
static size_t statm_bytes(int i) {
  unsigned long v[2] = {0, 0};
  FILE *fp = fopen("/proc/self/statm", "r");
  if (fp) {
    if (fscanf(fp, "%lu %lu", &v[0], &v[1]) != 2)
      v[0] = v[1] = 0;
    fclose(fp);
  }
  return v[i] * (size_t)page_bytes();
}

/* ---- tasks --------------------------------------------------------------- */

/* Sums the input as 64-bit words (and the length): 8 bytes out. */
static int task_sum64(cf_task *t, const void *in, size_t len) {
  uint64_t sum = len, w;
  const unsigned char *p = in;
  for (size_t i = 0; i + 8 <= len; i += 8) {
    memcpy(&w, p + i, 8);
    sum += w;
  }
  return cf_task_return(t, &sum, sizeof sum);
}

/* ---- max_workers --------------------------------------------------------- */

static void check_one_task(cf_executor *ex) {
  cf_future *f = submit_u64(ex, task_square, 6);
  CU_ASSERT_EQUAL(result_u64(f), 37);
  cf_future_release(f);
}

static void test_max_workers_range(void) {
  cf_thread_pool_options t;
  cf_thread_pool_options_init(&t);
  cf_executor *ex = (cf_executor *)1;
  int bad[] = {-1, CF_THREAD_POOL_MAX_WORKERS + 1, INT_MAX};
  for (size_t i = 0; i < 3; i++) {
    t.max_workers = bad[i];
    CU_ASSERT_EQUAL(cf_thread_pool_create(&t, &ex), CF_EINVAL);
    CU_ASSERT_PTR_NULL(ex);
  }
  t.max_workers = CF_THREAD_POOL_MAX_WORKERS;
  CU_ASSERT_EQUAL_FATAL(cf_thread_pool_create(&t, &ex), CF_OK);
  CU_ASSERT_EQUAL(cf_executor_max_workers(ex), CF_THREAD_POOL_MAX_WORKERS);
  check_one_task(ex);
  cf_executor_release(ex);

  cf_process_pool_options p;
  cf_process_pool_options_init(&p);
  int pbad[] = {-1, CF_PROCESS_POOL_MAX_WORKERS + 1, INT_MAX};
  for (size_t i = 0; i < 3; i++) {
    p.max_workers = pbad[i];
    CU_ASSERT_EQUAL(cf_process_pool_create(&p, &ex), CF_EINVAL);
    CU_ASSERT_PTR_NULL(ex);
  }
  p.max_workers = CF_PROCESS_POOL_MAX_WORKERS;
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&p, &ex), CF_OK);
  check_one_task(ex);
  cf_executor_release(ex);
}

/* More threads asked for than the system gives: RLIMIT_AS leaves room for
 * a few thread stacks only.  The pool runs every task on the threads it
 * got; with no room for even one, submit says CF_EAGAIN and the pool works
 * again once the room is back.  (Not under sanitizers: their shadow memory
 * makes an address-space limit meaningless.) */
static void test_threads_beyond_system_limit(void) {
  if (CF_TEST_SANITIZED) {
    fprintf(stderr, "skipped under sanitizers ");
    return;
  }
  pthread_attr_t a;
  size_t stack = 0;
  pthread_getattr_default_np(&a);
  pthread_attr_getstacksize(&a, &stack);
  pthread_attr_destroy(&a);
  if (stack < ((size_t)1 << 20)) {
    fprintf(stderr, "skipped: default stacks of %zu bytes ", stack);
    return;
  }
  enum { N = 40 };
  cf_test_gate g;
  gate_init(&g);
  cf_executor *ex = make_pool(64);
  cf_executor *ex2 = make_pool(4);
  cf_future *fs[N];
  struct rlimit old, lim;
  getrlimit(RLIMIT_AS, &old);
  lim = old;
  lim.rlim_cur = statm_bytes(0) + 4 * stack + ((size_t)16 << 20);
  if (old.rlim_max != RLIM_INFINITY && old.rlim_max < lim.rlim_cur) {
    fprintf(stderr, "skipped: RLIMIT_AS is already lower ");
    gate_open(&g);
    cf_executor_release(ex);
    cf_executor_release(ex2);
    gate_destroy(&g);
    return;
  }
  CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_AS, &lim), 0);
  int ok = 0;
  for (int i = 0; i < N; i++)
    ok += cf_submit(ex, task_gate, &(cf_test_gate *){&g}, sizeof(void *),
                    &fs[i]) == CF_OK;
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  /* None at all: the first submit is refused, nothing is queued. */
  lim.rlim_cur = statm_bytes(0) + stack / 2;
  setrlimit(RLIMIT_AS, &lim);
  cf_future *f2 = (cf_future *)1;
  int rc2 = cf_submit(ex2, task_noop, NULL, 0, &f2);
  CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_AS, &old), 0);

  CU_ASSERT_EQUAL(ok, N);
  CU_ASSERT_TRUE(st.workers >= 1 && st.workers < N);
  fprintf(stderr, "(%zu threads for %d tasks) ", st.workers, N);
  gate_open(&g);
  for (int i = 0; i < ok; i++) {
    CU_ASSERT_EQUAL(cf_future_result(fs[i], CF_SEC(60), NULL, NULL), CF_OK);
    cf_future_release(fs[i]);
  }
  CU_ASSERT_EQUAL(rc2, CF_EAGAIN);
  CU_ASSERT_PTR_NULL(f2);
  check_one_task(ex2); /* room is back */
  cf_executor_release(ex);
  cf_executor_release(ex2);
  gate_destroy(&g);
}

/* More worker processes asked for than descriptors allow: the pool runs
 * every task on the workers it could start; with none, the queued futures
 * fail with CF_EAGAIN, and the pool works again once descriptors are back.
 * The break-on-death policy is on: a refused start is not a death. */
static void test_processes_beyond_fd_limit(void) {
  enum { N = 24 };
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = 40;
  o.on_worker_death = CF_ON_DEATH_BREAK;
  cf_executor *ex, *ex2;
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&o, &ex), CF_OK);
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&o, &ex2), CF_OK);
  cf_future *fs[N], *f2 = NULL;
  struct rlimit old, lim;
  getrlimit(RLIMIT_NOFILE, &old);
  lim = old;
  int fds = cf_test_count_entries("/proc/self/fd");
  /* fds counted the directory it read, so this leaves 7: a socket pair
   * while starting, then a socket and a pidfd per worker. */
  lim.rlim_cur = (rlim_t)fds + 6;
  CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &lim), 0);
  int ok = 0;
  for (int i = 0; i < N; i++) {
    long ms = 20;
    ok += cf_submit(ex, task_sleep, &ms, sizeof ms, &fs[i]) == CF_OK;
  }
  for (int i = 0; i < ok; i++)
    CU_ASSERT_EQUAL(cf_future_result(fs[i], CF_SEC(60), NULL, NULL), CF_OK);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  lim.rlim_cur = (rlim_t)fds; /* no room for even one */
  setrlimit(RLIMIT_NOFILE, &lim);
  int rc2 = cf_submit(ex2, task_noop, NULL, 0, &f2);
  int r2 = rc2 == CF_OK ? cf_future_result(f2, CF_SEC(60), NULL, NULL) : rc2;
  CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &old), 0);

  CU_ASSERT_EQUAL(ok, N);
  CU_ASSERT_TRUE(st.workers >= 1 && st.workers < N);
  fprintf(stderr, "(%zu processes for %d tasks) ", st.workers, N);
  for (int i = 0; i < ok; i++)
    cf_future_release(fs[i]);
  CU_ASSERT_EQUAL(rc2, CF_OK);
  CU_ASSERT_EQUAL(r2, CF_EAGAIN);
  const char *msg = NULL;
  cf_future_error(f2, 0, NULL, &msg);
  CU_ASSERT_TRUE(msg && strstr(msg, "could not start a worker process"));
  cf_future_release(f2);
  check_one_task(ex2); /* descriptors are back: not broken */
  check_one_task(ex);
  cf_executor_release(ex);
  cf_executor_release(ex2);
}

/* ---- a million pending futures ------------------------------------------- */

static void million_pending(cf_executor *ex, bool blocked_by_gate,
                            cf_test_gate *g) {
  size_t n = cf_test_scaled(1000000);
  cf_future **fs = malloc(n * sizeof *fs);
  CU_ASSERT_PTR_NOT_NULL_FATAL(fs);
  size_t heap0 = mallinfo2().uordblks;
  int64_t t0 = cf_test_now_ms();
  size_t ok = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t v = i;
    ok += cf_submit(ex, task_square, &v, sizeof v, &fs[i]) == CF_OK;
  }
  CU_ASSERT_EQUAL_FATAL(ok, n);
  size_t heap1 = mallinfo2().uordblks;
  int64_t t1 = cf_test_now_ms();
  /* Every other one is cancelled while still pending. */
  size_t cancelled = 0;
  for (size_t i = 0; i < n; i += 2)
    cancelled += cf_future_cancel(fs[i]) == CF_OK;
  if (blocked_by_gate) {
    CU_ASSERT_EQUAL(cancelled, (n + 1) / 2); /* nothing could start */
    gate_open(g);
  }
  size_t nd = 0;
  CU_ASSERT_EQUAL(cf_wait(fs, n, CF_SEC(600), CF_ALL_COMPLETED, NULL, &nd),
                  CF_OK);
  CU_ASSERT_EQUAL(nd, n);
  size_t bad = 0, ran = 0;
  for (size_t i = 0; i < n; i++) {
    const void *d;
    int rc = cf_future_result(fs[i], 0, &d, NULL);
    if (rc == CF_OK) {
      uint64_t v;
      memcpy(&v, d, sizeof v);
      bad += v != (uint64_t)i * i + 1;
      ran++;
    } else {
      bad += rc != CF_ECANCELLED || i % 2;
    }
    cf_future_release(fs[i]);
  }
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_EQUAL(ran + cancelled, n);
  fprintf(stderr, "(%zu submitted in %lld ms; %zu cancelled", n,
          (long long)(t1 - t0), cancelled);
  if (heap1 > heap0) /* (sanitizers keep their own books) */
    fprintf(stderr, "; %zu heap bytes each", (heap1 - heap0) / n);
  fprintf(stderr, ") ");
  free(fs);
}

static void test_million_pending_threads(void) {
  cf_executor *ex = make_pool(1);
  cf_test_gate g;
  gate_init(&g);
  cf_future *blocker = submit_ptr(ex, task_gate, &g);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&g.entered) == 1));
  million_pending(ex, true, &g);
  CU_ASSERT_EQUAL(cf_future_result(blocker, 0, NULL, NULL), CF_OK);
  cf_future_release(blocker);
  cf_executor_release(ex);
  gate_destroy(&g);
}

static void test_million_pending_processes(void) {
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = 2;
  cf_executor *ex;
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&o, &ex), CF_OK);
  million_pending(ex, false, NULL);
  cf_executor_release(ex);
}

/* ---- 1 GiB of input to a worker process ---------------------------------- */

static void test_one_gib_input(void) {
  size_t len = (size_t)1 << 30;
  uint64_t *buf = malloc(len);
  if (!buf) {
    fprintf(stderr, "skipped: no 1 GiB to allocate ");
    return;
  }
  uint64_t want = len;
  for (size_t i = 0; i < len / 8; i++) {
    buf[i] = i * 0x9E3779B97F4A7C15ULL;
    want += buf[i];
  }
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = 1;
  cf_executor *ex = NULL;
  cf_future *f = NULL;
  int64_t t0 = cf_test_now_ms();
  int rc = cf_process_pool_create(&o, &ex);
  CU_ASSERT_EQUAL(rc, CF_OK);
  /* Owned: not copied in this process; the library frees it once the task
   * is done. */
  if (rc == CF_OK &&
      (rc = cf_submit_owned(ex, task_sum64, buf, len, free, &f)) != CF_OK)
    free(buf);
  CU_ASSERT_EQUAL(rc, CF_OK);
  if (f) {
    CU_ASSERT_EQUAL(result_u64(f), want);
    fprintf(stderr, "(1 GiB there and summed in %lld ms) ",
            (long long)(cf_test_now_ms() - t0));
    cf_future_release(f);
    check_one_task(ex); /* the same worker goes on */
  } else if (!ex) {
    free(buf);
  }
  cf_executor_release(ex);
}

/* ---- deadlines ----------------------------------------------------------- */

typedef struct later {
  cf_future *f;
  long ms;
} later;

static void *complete_later(void *arg) {
  later *l = arg;
  cf_test_sleep_ms(l->ms);
  cf_future_set_result(l->f, "done", 5);
  return NULL;
}

static void set_result_cb(void *f) { cf_future_set_result(f, "late", 5); }

/* A deadline in the past never means "forever": it only looks.  Nobody
 * completes f while it is looked at, except a deadman after 60 s: a call
 * that waited would see that and return CF_OK instead of timing out (and
 * not hang the test). */
static void test_deadline_in_the_past(void) {
  cf_future *f;
  cf_future_create(&f);
  int64_t past[] = {-2, CF_SEC(-5), INT64_MIN};
  cf_test_deadman dm;
  cf_test_deadman_start(&dm, 60000, set_result_cb, f);
  for (size_t i = 0; i < sizeof past / sizeof *past; i++) {
    CU_ASSERT_EQUAL(cf_future_wait(f, past[i]), CF_ETIMEDOUT);
    CU_ASSERT_EQUAL(cf_future_result(f, past[i], NULL, NULL), CF_ETIMEDOUT);
    size_t nd = 9;
    CU_ASSERT_EQUAL(cf_wait(&f, 1, past[i], CF_ALL_COMPLETED, NULL, &nd),
                    CF_OK);
    CU_ASSERT_EQUAL(nd, 0);
    cf_as_completed_iter *it;
    cf_future *got;
    CU_ASSERT_EQUAL(cf_as_completed_create(&f, 1, past[i], &it), CF_OK);
    CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_ETIMEDOUT);
    cf_as_completed_destroy(it);
  }
  CU_ASSERT_FALSE(cf_test_deadman_stop(&dm));
  /* A past deadline still hands over what is done already. */
  cf_future_set_result(f, "x", 1);
  CU_ASSERT_EQUAL(cf_future_wait(f, INT64_MIN), CF_OK);
  cf_as_completed_iter *it;
  cf_future *got = NULL;
  CU_ASSERT_EQUAL(cf_as_completed_create(&f, 1, CF_SEC(-1), &it), CF_OK);
  CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_OK);
  CU_ASSERT_PTR_EQUAL(got, f);
  cf_as_completed_destroy(it);
  cf_future_release(f);

  /* A map whose deadline has passed stops with CF_ETIMEDOUT. */
  cf_executor *ex = make_pool(1);
  cf_test_gate g;
  gate_init(&g);
  cf_future *blocker = submit_ptr(ex, task_gate, &g);
  uint64_t in[4] = {1, 2, 3, 4};
  cf_map_options mo;
  cf_map_options_init(&mo);
  mo.timeout_ns = CF_SEC(-1);
  cf_map_iter *m;
  cf_map_item item = CF_MAP_ITEM_INIT;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_square, in, sizeof in[0], 4, &mo, &m), CF_OK);
  cf_test_deadman_start(&dm, 60000, gate_open_cb, &g); /* as above */
  CU_ASSERT_EQUAL(cf_map_next(m, &item), CF_ETIMEDOUT);
  CU_ASSERT_FALSE(cf_test_deadman_stop(&dm));
  cf_map_destroy(m);
  gate_open(&g);
  cf_future_release(blocker);
  cf_executor_release(ex);
  gate_destroy(&g);
}

/* A deadline far in the future saturates: it waits, it does not wrap into
 * the past and return at once. */
static void test_deadline_far_in_the_future(void) {
  int64_t far[] = {INT64_MAX, INT64_MAX - 1, CF_SEC(1000000000LL), CF_FOREVER};
  for (size_t i = 0; i < sizeof far / sizeof *far; i++) {
    for (int api = 0; api < 3; api++) {
      cf_future *f;
      cf_future_create(&f);
      later l = {f, 20};
      pthread_t th;
      int64_t t0 = cf_test_now_ms();
      pthread_create(&th, NULL, complete_later, &l);
      if (api == 0) {
        CU_ASSERT_EQUAL(cf_future_wait(f, far[i]), CF_OK);
      } else if (api == 1) {
        size_t nd = 0;
        CU_ASSERT_EQUAL(cf_wait(&f, 1, far[i], CF_ALL_COMPLETED, NULL, &nd),
                        CF_OK);
        CU_ASSERT_EQUAL(nd, 1);
      } else {
        cf_as_completed_iter *it;
        cf_future *got;
        CU_ASSERT_EQUAL(cf_as_completed_create(&f, 1, far[i], &it), CF_OK);
        CU_ASSERT_EQUAL(cf_as_completed_next(it, &got), CF_OK);
        cf_as_completed_destroy(it);
      }
      CU_ASSERT_TRUE(cf_test_now_ms() - t0 >= 15); /* it did wait */
      pthread_join(th, NULL);
      cf_future_release(f);
    }
  }
  cf_executor *ex = make_pool(2);
  uint64_t in[64];
  for (uint64_t i = 0; i < 64; i++)
    in[i] = i;
  cf_map_options mo;
  cf_map_options_init(&mo);
  mo.timeout_ns = INT64_MAX;
  cf_map_iter *m;
  cf_map_item item = CF_MAP_ITEM_INIT;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_square, in, sizeof in[0], 64, &mo, &m), CF_OK);
  size_t got = 0;
  while (cf_map_next(m, &item) == CF_OK)
    got++;
  CU_ASSERT_EQUAL(got, 64);
  cf_map_destroy(m);
  cf_executor_release(ex);
}

CF_TEST_MAIN("limits", CF_TEST(test_max_workers_range),
             CF_TEST(test_threads_beyond_system_limit),
             CF_TEST(test_processes_beyond_fd_limit),
             CF_TEST(test_million_pending_threads),
             CF_TEST(test_million_pending_processes),
             CF_TEST(test_one_gib_input), CF_TEST(test_deadline_in_the_past),
             CF_TEST(test_deadline_far_in_the_future))
