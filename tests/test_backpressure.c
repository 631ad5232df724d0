/* Back-pressure: pools with max_queued, cf_submit() refusing with CF_EAGAIN
 * when the queue is full, cf_submit_timed() / cf_submit_owned_timed()
 * waiting for room, slots given back by cancellation and stop requests,
 * shutdown waking waiting producers, many producers against a small bound,
 * continuations and map chunks (never refused), a task that submits into its
 * own full pool, and a process pool's I/O thread that would wait for
 * itself. */
#include "test_util.h"

#include <sys/wait.h>

/* A hang guard for waits the library must end: no speed requirement. */
#define HANG_NS CF_SEC(120)

static cf_executor *make_bounded_pool(int workers, size_t max_queued) {
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = workers;
  o.max_queued = max_queued;
  cf_executor *ex = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_thread_pool_create(&o, &ex), CF_OK);
  return ex;
}

static cf_executor *make_bounded_ppool(int workers, size_t max_queued) {
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = workers;
  o.max_queued = max_queued;
  cf_executor *ex = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_process_pool_create(&o, &ex), CF_OK);
  return ex;
}

static size_t stats_queued(cf_executor *ex) {
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  CU_ASSERT_EQUAL(cf_executor_stats_get(ex, &st), CF_OK);
  return st.queued;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The one worker of `ex` blocked in task_gate on g (a condition variable,
 * not a library wait: the pool does not compensate for it). */
static cf_future *block_worker(cf_executor *ex, cf_test_gate *g) {
  gate_init(g);
  cf_future *f = submit_ptr(ex, task_gate, g);
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  /* Entered: started, so its queue slot is back already. */
  CU_ASSERT_TRUE_FATAL(CF_TEST_EVENTUALLY(atomic_load(&g->entered) == 1));
  return f;
}

static cf_future *submit_noop(cf_executor *ex) {
  cf_future *f = NULL;
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, &f), CF_OK);
  return f;
}

/* A submit that must be refused: CF_EAGAIN, *out NULL. */
static void assert_refused(cf_executor *ex, int64_t timeout_ns) {
  cf_future *f = (cf_future *)&f;
  CU_ASSERT_EQUAL(cf_submit_timed(ex, task_noop, NULL, 0, timeout_ns, &f),
                  CF_EAGAIN);
  CU_ASSERT_PTR_NULL(f);
}

static void wait_release(cf_future *f) {
  CU_ASSERT_EQUAL(cf_future_wait(f, HANG_NS), CF_OK);
  cf_future_release(f);
}

/* ---- the bound ------------------------------------------------------------
 */

static void test_full_queue_refuses(void) {
  enum { MAXQ = 4 };
  cf_executor *ex = make_bounded_pool(1, MAXQ);
  cf_test_gate g;
  cf_future *gf = block_worker(ex, &g);
  cf_future *fs[MAXQ];
  for (int i = 0; i < MAXQ; i++)
    fs[i] = submit_u64(ex, task_square, (uint64_t)i);
  CU_ASSERT_EQUAL(stats_queued(ex), MAXQ);
  /* Full: refused at once, nothing queued. */
  cf_future *f = (cf_future *)&f;
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, &f), CF_EAGAIN);
  CU_ASSERT_PTR_NULL(f);
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, NULL), CF_EAGAIN);
  uint64_t v = 9;
  f = (cf_future *)&f;
  CU_ASSERT_EQUAL(cf_submit_owned(ex, task_square, &v, sizeof v, NULL, &f),
                  CF_EAGAIN);
  CU_ASSERT_PTR_NULL(f);
  assert_refused(ex, 0);
  assert_refused(ex, -5); /* a deadline already past: polls */
  CU_ASSERT_EQUAL(stats_queued(ex), MAXQ);
  /* A short timeout: refused after at least that long. */
  int64_t t0 = now_ns();
  assert_refused(ex, CF_MSEC(50));
  CU_ASSERT_TRUE(now_ns() - t0 >= CF_MSEC(50));
  CU_ASSERT_EQUAL(stats_queued(ex), MAXQ);
  /* Bad arguments are still CF_EINVAL, full or not. */
  CU_ASSERT_EQUAL(cf_submit_timed(NULL, task_noop, NULL, 0, 0, NULL),
                  CF_EINVAL);
  CU_ASSERT_EQUAL(cf_submit_timed(ex, NULL, NULL, 0, CF_FOREVER, NULL),
                  CF_EINVAL);
  CU_ASSERT_EQUAL(cf_submit_owned_timed(ex, task_noop, NULL, 4, NULL,
                                        CF_FOREVER, NULL),
                  CF_EINVAL);
  for (int i = 0; i < MAXQ; i++)
    CU_ASSERT_FALSE(cf_future_done(fs[i]));
  gate_open(&g);
  for (int i = 0; i < MAXQ; i++) {
    CU_ASSERT_EQUAL(result_u64(fs[i]), (uint64_t)i * i + 1);
    cf_future_release(fs[i]);
  }
  wait_release(gf);
  /* Emptied: the whole bound is there again. */
  cf_test_gate g2;
  gf = block_worker(ex, &g2);
  for (int i = 0; i < MAXQ; i++)
    fs[i] = submit_noop(ex);
  assert_refused(ex, 0);
  gate_open(&g2);
  for (int i = 0; i < MAXQ; i++)
    wait_release(fs[i]);
  wait_release(gf);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.completed, 2 * MAXQ + 2);
  CU_ASSERT_EQUAL(st.failed, 0);
  cf_executor_release(ex);
  gate_destroy(&g);
  gate_destroy(&g2);
}

static void test_cancel_gives_slot_back(void) {
  enum { MAXQ = 2 };
  cf_executor *ex = make_bounded_pool(1, MAXQ);
  cf_test_gate g;
  cf_future *gf = block_worker(ex, &g);
  cf_future *a = submit_noop(ex), *b = submit_noop(ex);
  assert_refused(ex, 0);
  CU_ASSERT_EQUAL(cf_future_cancel(a), CF_OK);
  cf_future *c = submit_noop(ex);
  CU_ASSERT_PTR_NOT_NULL(c);
  assert_refused(ex, 0);
  /* Cancelling twice gives back one slot, not two. */
  CU_ASSERT_EQUAL(cf_future_cancel(a), CF_OK);
  assert_refused(ex, 0);
  /* A stop request on a queued future cancels it: its slot too. */
  CU_ASSERT_EQUAL(cf_future_request_stop(b), CF_OK);
  CU_ASSERT_TRUE(cf_future_cancelled(b));
  cf_future *d = submit_noop(ex);
  CU_ASSERT_PTR_NOT_NULL(d);
  assert_refused(ex, 0);
  CU_ASSERT_EQUAL(cf_future_request_stop(b), CF_OK);
  assert_refused(ex, 0);
  /* A stop request on the running gate task does not touch the queue. */
  CU_ASSERT_EQUAL(cf_future_request_stop(gf), CF_OK);
  assert_refused(ex, 0);
  gate_open(&g);
  wait_release(c);
  wait_release(d);
  wait_release(gf);
  CU_ASSERT_TRUE(cf_future_cancelled(a));
  cf_future_release(a);
  cf_future_release(b);
  /* Nothing leaked or counted twice: the bound is exactly MAXQ again. */
  cf_test_gate g2;
  gf = block_worker(ex, &g2);
  cf_future *e[MAXQ];
  for (int i = 0; i < MAXQ; i++)
    e[i] = submit_noop(ex);
  assert_refused(ex, 0);
  /* cf_shutdown cancelling the queue gives every slot back too. */
  CU_ASSERT_EQUAL(cf_shutdown(ex, false, true), CF_OK);
  for (int i = 0; i < MAXQ; i++) {
    CU_ASSERT_TRUE(cf_future_cancelled(e[i]));
    cf_future_release(e[i]);
  }
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, NULL), CF_ESHUTDOWN);
  gate_open(&g2);
  wait_release(gf);
  cf_executor_release(ex);
  gate_destroy(&g);
  gate_destroy(&g2);
}

/* What stats call queued is the bounded queue: a cancelled task has left
 * it ("A task leaves the queue when a worker takes it or when it is
 * cancelled"), so stats.queued never exceeds max_queued, cancellations or
 * not. */
static void stats_after_cancel(cf_executor *ex,
                               cf_future *(*submit)(cf_executor *)) {
  enum { MAXQ = 2 };
  cf_future *q[2 * MAXQ];
  for (int i = 0; i < MAXQ; i++)
    q[i] = submit(ex);
  CU_ASSERT_EQUAL(stats_queued(ex), MAXQ);
  for (int i = 0; i < MAXQ; i++)
    CU_ASSERT_EQUAL(cf_future_cancel(q[i]), CF_OK);
  size_t after_cancel = stats_queued(ex);
  for (int i = MAXQ; i < 2 * MAXQ; i++)
    q[i] = submit(ex);
  assert_refused(ex, 0);
  size_t after_resubmit = stats_queued(ex);
  if (after_cancel != 0 || after_resubmit != MAXQ)
    fprintf(stderr,
            "\n    stats.queued: %zu after cancelling all %d queued, %zu after "
            "%d more (max_queued %d) ",
            after_cancel, MAXQ, after_resubmit, MAXQ, MAXQ);
  CU_ASSERT_EQUAL(after_cancel, 0);
  CU_ASSERT_EQUAL(after_resubmit, MAXQ);
  for (int i = 0; i < 2 * MAXQ; i++)
    q[i] = (cf_future_cancel(q[i]), cf_future_release(q[i]), NULL);
}

/* Waits for room: on a process pool the slot of a task a worker just
 * started is given back a moment after cf_future_running() turns true. */
static cf_future *submit_noop_waiting(cf_executor *ex) {
  cf_future *f = NULL;
  CU_ASSERT_EQUAL(cf_submit_timed(ex, task_noop, NULL, 0, HANG_NS, &f), CF_OK);
  return f;
}

static void test_stats_queued_excludes_cancelled(void) {
  cf_executor *ex = make_bounded_pool(1, 2);
  cf_test_gate g;
  cf_future *gf = block_worker(ex, &g);
  stats_after_cancel(ex, submit_noop_waiting);
  gate_open(&g);
  wait_release(gf);
  cf_executor_release(ex);
  gate_destroy(&g);
  /* The same on a process pool, its one worker held by a FIFO. */
  cf_test_fifo fg;
  fifo_gate_init(&fg);
  ex = make_bounded_ppool(1, 2);
  cf_future *held = NULL;
  CU_ASSERT_EQUAL(cf_submit(ex, task_fifo_gate, fg.path, strlen(fg.path) + 1,
                            &held),
                  CF_OK);
  CU_ASSERT_TRUE_FATAL(CF_TEST_EVENTUALLY(cf_future_running(held)));
  stats_after_cancel(ex, submit_noop_waiting);
  fifo_gate_open(&fg, 1);
  wait_release(held);
  cf_executor_release(ex);
  fifo_gate_destroy(&fg);
}

/* ---- waiting for room -----------------------------------------------------
 */

typedef struct producer_one {
  cf_executor *ex;
  int64_t timeout_ns;
  atomic_int started, finished;
  int rc;
  cf_future *f;
} producer_one;

static void *produce_one(void *p) {
  producer_one *pr = p;
  atomic_store(&pr->started, 1);
  uint64_t v = 12;
  pr->rc = cf_submit_timed(pr->ex, task_square, &v, sizeof v, pr->timeout_ns,
                           &pr->f);
  atomic_store(&pr->finished, 1);
  return NULL;
}

static void start_producer(producer_one *pr, pthread_t *th, cf_executor *ex,
                           int64_t timeout_ns) {
  *pr = (producer_one){.ex = ex, .timeout_ns = timeout_ns};
  CU_ASSERT_EQUAL_FATAL(pthread_create(th, NULL, produce_one, pr), 0);
  CU_ASSERT_TRUE(cf_test_await_flag(&pr->started));
  cf_test_sleep_ms(20); /* most likely waiting by now; either way works */
}

static void test_timed_forever_waits_for_room(void) {
  cf_executor *ex = make_bounded_pool(1, 1);
  cf_test_gate g;
  cf_future *gf = block_worker(ex, &g);
  cf_future *q1 = submit_noop(ex);
  producer_one pr;
  pthread_t th;
  start_producer(&pr, &th, ex, CF_FOREVER);
  /* No room can come while the worker is held: still waiting. */
  cf_test_sleep_ms(30);
  CU_ASSERT_EQUAL(atomic_load(&pr.finished), 0);
  /* A deadman opens the gate if the producer never returns... it opens it
   * now anyway, from another thread, which is what is tested. */
  cf_test_deadman dm;
  cf_test_deadman_start(&dm, 10, gate_open_cb, &g);
  pthread_join(th, NULL);
  cf_test_deadman_stop(&dm);
  CU_ASSERT_EQUAL(pr.rc, CF_OK);
  CU_ASSERT_PTR_NOT_NULL(pr.f);
  if (pr.f) {
    CU_ASSERT_EQUAL(result_u64(pr.f), 145);
    cf_future_release(pr.f);
  }
  /* A finite timeout that room comes within also succeeds. */
  cf_test_gate g2;
  cf_future *gf2 = block_worker(ex, &g2);
  cf_future *q2 = submit_noop(ex);
  start_producer(&pr, &th, ex, HANG_NS);
  gate_open(&g2);
  pthread_join(th, NULL);
  CU_ASSERT_EQUAL(pr.rc, CF_OK);
  if (pr.f) {
    CU_ASSERT_EQUAL(result_u64(pr.f), 145);
    cf_future_release(pr.f);
  }
  wait_release(q1);
  wait_release(q2);
  wait_release(gf);
  wait_release(gf2);
  cf_executor_release(ex);
  gate_destroy(&g);
  gate_destroy(&g2);
}

/* cf_shutdown while producers wait: they return CF_ESHUTDOWN, not hang. */
static void shutdown_while_waiting(bool cancel_futures) {
  enum { NP = 4 };
  cf_executor *ex = make_bounded_pool(1, 1);
  cf_test_gate g;
  cf_future *gf = block_worker(ex, &g);
  cf_future *q1 = submit_noop(ex);
  producer_one pr[NP];
  pthread_t th[NP];
  for (int i = 0; i < NP; i++) {
    pr[i] =
        (producer_one){.ex = ex, .timeout_ns = i % 2 ? HANG_NS : CF_FOREVER};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, produce_one, &pr[i]), 0);
  }
  for (int i = 0; i < NP; i++)
    CU_ASSERT_TRUE(cf_test_await_flag(&pr[i].started));
  cf_test_sleep_ms(10); /* most likely waiting by now; either way works */
  /* If the shutdown does not wake them, the deadman makes room late and
   * they then fail the test by succeeding, instead of hanging it. */
  cf_test_deadman dm;
  cf_test_deadman_start(&dm, 60000, gate_open_cb, &g);
  CU_ASSERT_EQUAL(cf_shutdown(ex, false, cancel_futures), CF_OK);
  for (int i = 0; i < NP; i++) {
    pthread_join(th[i], NULL);
    /* CF_OK here means a task was accepted beyond max_queued, by a
     * producer the shutdown woke (see the report: executor.c). */
    if (pr[i].rc != CF_ESHUTDOWN)
      fprintf(stderr,
              "\n    producer %d (cancel_futures %d) got %s, not "
              "CF_ESHUTDOWN ",
              i, cancel_futures, cf_err_name(pr[i].rc));
    CU_ASSERT_EQUAL(pr[i].rc, CF_ESHUTDOWN);
    CU_ASSERT_PTR_NULL(pr[i].f);
    cf_future_release(pr[i].f);
  }
  CU_ASSERT_FALSE(cf_test_deadman_stop(&dm));
  /* After the shutdown: refused at once whatever the timeout. */
  cf_future *f = (cf_future *)&f;
  CU_ASSERT_EQUAL(cf_submit_timed(ex, task_noop, NULL, 0, CF_FOREVER, &f),
                  CF_ESHUTDOWN);
  CU_ASSERT_PTR_NULL(f);
  gate_open(&g);
  CU_ASSERT_EQUAL(cf_future_wait(q1, HANG_NS), CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancelled(q1), cancel_futures);
  cf_future_release(q1);
  wait_release(gf);
  cf_executor_release(ex);
  gate_destroy(&g);
}

static void test_shutdown_wakes_producers(void) {
  for (int k = 0; k < 5; k++) {
    shutdown_while_waiting(false);
    shutdown_while_waiting(true);
  }
}

static atomic_int g_frees;
static void counting_free(void *p) {
  atomic_fetch_add(&g_frees, 1);
  free(p);
}

/* On CF_EAGAIN the caller still owns the buffer (freed here: a double free
 * or a leak shows under ASan / valgrind); on CF_OK the library frees it
 * once. */
static void test_owned_timed_keeps_buffer(void) {
  cf_executor *ex = make_bounded_pool(1, 1);
  cf_test_gate g;
  cf_future *gf = block_worker(ex, &g);
  cf_future *q1 = submit_noop(ex);
  atomic_store(&g_frees, 0);
  int64_t timeouts[3] = {0, CF_MSEC(10), -3};
  for (int k = 0; k < 3; k++) {
    char *buf = malloc(64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    memset(buf, 'a' + k, 64);
    cf_future *f = (cf_future *)&f;
    CU_ASSERT_EQUAL(cf_submit_owned_timed(ex, task_echo, buf, 64, counting_free,
                                          timeouts[k], &f),
                    CF_EAGAIN);
    CU_ASSERT_PTR_NULL(f);
    CU_ASSERT_EQUAL(buf[63], 'a' + k); /* untouched, still ours */
    free(buf);
  }
  char *buf = malloc(64);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  CU_ASSERT_EQUAL(cf_submit_owned(ex, task_echo, buf, 64, counting_free, NULL),
                  CF_EAGAIN);
  free(buf);
  CU_ASSERT_EQUAL(atomic_load(&g_frees), 0);
  /* Waits for room, then owns it. */
  buf = malloc(64);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  memset(buf, 'z', 64);
  cf_test_deadman dm;
  cf_test_deadman_start(&dm, 20, gate_open_cb, &g);
  cf_future *f = NULL;
  CU_ASSERT_EQUAL(cf_submit_owned_timed(ex, task_echo, buf, 64, counting_free,
                                        CF_FOREVER, &f),
                  CF_OK);
  cf_test_deadman_stop(&dm);
  const void *d = NULL;
  size_t n = 0;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, &n), CF_OK);
  CU_ASSERT_EQUAL(n, 64);
  CU_ASSERT_TRUE(n == 64 && ((const char *)d)[0] == 'z');
  cf_future_release(f);
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&g_frees) == 1));
  wait_release(q1);
  wait_release(gf);
  cf_executor_release(ex);
  CU_ASSERT_EQUAL(atomic_load(&g_frees), 1);
  gate_destroy(&g);
}

/* ---- many producers -------------------------------------------------------
 */

enum { STRESS_PRODUCERS = 8, STRESS_MAXQ = 16 };

typedef struct count_in {
  atomic_int *ran;
  uint32_t idx;
} count_in;

/* Counts itself in ran[idx]; result: idx * 3 + 1. */
static int task_count(cf_task *t, const void *in, size_t len) {
  count_in c;
  if (len != sizeof c)
    return EINVAL;
  memcpy(&c, in, sizeof c);
  atomic_fetch_add(&c.ran[c.idx], 1);
  uint64_t r = (uint64_t)c.idx * 3 + 1;
  return cf_task_return(t, &r, sizeof r);
}

typedef struct stress {
  cf_executor *ex;
  size_t per;
  bool retry; /* cf_submit and retry on CF_EAGAIN, else timed(FOREVER) */
  atomic_int *ran;
  cf_future **fs;
  atomic_int go, producers_done, sampler_stop;
  atomic_size_t max_seen, refusals, bad_rc;
} stress;

typedef struct stress_producer {
  stress *s;
  size_t id;
} stress_producer;

static void *stress_produce(void *p) {
  stress_producer *sp = p;
  stress *s = sp->s;
  cf_test_await_flag(&s->go);
  for (size_t k = 0; k < s->per; k++) {
    size_t i = sp->id * s->per + k;
    count_in c = {s->ran, (uint32_t)i};
    int rc;
    if (s->retry) {
      size_t tries = 0;
      while ((rc = cf_submit(s->ex, task_count, &c, sizeof c, &s->fs[i])) ==
             CF_EAGAIN) {
        atomic_fetch_add(&s->refusals, 1);
        if (++tries % 64 == 0)
          cf_test_sleep_ms(1);
        else
          sched_yield();
      }
    } else {
      rc = cf_submit_timed(s->ex, task_count, &c, sizeof c, CF_FOREVER,
                           &s->fs[i]);
    }
    if (rc != CF_OK) {
      atomic_fetch_add(&s->bad_rc, 1);
      s->fs[i] = NULL;
    }
  }
  atomic_fetch_add(&s->producers_done, 1);
  return NULL;
}

/* Samples the queue while the producers run: never above the bound. */
static void *stress_sample(void *p) {
  stress *s = p;
  unsigned k = 0;
  while (!atomic_load(&s->sampler_stop)) {
    cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
    if (cf_executor_stats_get(s->ex, &st) == CF_OK) {
      size_t m = atomic_load(&s->max_seen);
      while (st.queued > m &&
             !atomic_compare_exchange_weak(&s->max_seen, &m, st.queued))
        ;
    }
    if (++k % 16 == 0)
      cf_test_sleep_ms(1);
    else
      sched_yield();
  }
  return NULL;
}

static void run_stress(bool retry) {
  stress s = {0};
  s.per = cf_test_scaled(2000);
  s.retry = retry;
  size_t total = STRESS_PRODUCERS * s.per;
  s.ex = make_bounded_pool(2, STRESS_MAXQ);
  s.ran = calloc(total, sizeof *s.ran);
  s.fs = calloc(total, sizeof *s.fs);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s.ran);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s.fs);
  pthread_t th[STRESS_PRODUCERS], sampler;
  stress_producer sp[STRESS_PRODUCERS];
  CU_ASSERT_EQUAL_FATAL(pthread_create(&sampler, NULL, stress_sample, &s), 0);
  for (size_t i = 0; i < STRESS_PRODUCERS; i++) {
    sp[i] = (stress_producer){&s, i};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, stress_produce, &sp[i]),
                          0);
  }
  atomic_store(&s.go, 1);
  for (size_t i = 0; i < STRESS_PRODUCERS; i++)
    pthread_join(th[i], NULL);
  CU_ASSERT_EQUAL(atomic_load(&s.bad_rc), 0);
  /* The checker: every future's result, every task ran exactly once. */
  size_t wrong = 0;
  for (size_t i = 0; i < total; i++) {
    if (!s.fs[i]) {
      wrong++;
      continue;
    }
    const void *d = NULL;
    size_t n = 0;
    uint64_t v = 0;
    if (cf_future_result(s.fs[i], HANG_NS, &d, &n) != CF_OK || n != sizeof v)
      wrong++;
    else if (memcpy(&v, d, sizeof v), v != (uint64_t)i * 3 + 1)
      wrong++;
    cf_future_release(s.fs[i]);
  }
  CU_ASSERT_EQUAL(wrong, 0);
  atomic_store(&s.sampler_stop, 1);
  pthread_join(sampler, NULL);
  size_t ran_wrong = 0;
  for (size_t i = 0; i < total; i++)
    ran_wrong += atomic_load(&s.ran[i]) != 1;
  CU_ASSERT_EQUAL(ran_wrong, 0);
  CU_ASSERT_TRUE(atomic_load(&s.max_seen) <= STRESS_MAXQ);
  if (atomic_load(&s.max_seen) > STRESS_MAXQ)
    fprintf(stderr, "stats.queued reached %zu (max_queued %d)\n",
            atomic_load(&s.max_seen), STRESS_MAXQ);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(s.ex, &st);
  CU_ASSERT_EQUAL(st.completed, total);
  CU_ASSERT_EQUAL(st.queued, 0);
  cf_executor_release(s.ex);
  free(s.ran);
  free(s.fs);
}

static void test_many_producers_timed(void) { run_stress(false); }
static void test_many_producers_retry(void) { run_stress(true); }

/* ---- continuations and maps -----------------------------------------------
 */

static void test_continuations_never_refused(void) {
  enum { MAXQ = 2, NC = 3 };
  cf_executor *ex = make_bounded_pool(1, MAXQ);
  cf_test_gate g;
  cf_future *gf = block_worker(ex, &g);
  cf_future *src[NC], *d[NC];
  for (int i = 0; i < NC; i++) {
    CU_ASSERT_EQUAL_FATAL(cf_future_create(&src[i]), CF_OK);
    CU_ASSERT_EQUAL(cf_future_then(src[i], ex, task_add_1000, 0, &d[i]), CF_OK);
  }
  cf_future *q1 = submit_noop(ex), *q2 = submit_noop(ex);
  assert_refused(ex, 0);
  /* The sources complete with the queue full: each continuation is
   * queued beyond the bound, not refused. */
  for (int i = 0; i < NC; i++) {
    uint64_t v = (uint64_t)i;
    CU_ASSERT_EQUAL(cf_future_set_result(src[i], &v, sizeof v), CF_OK);
    CU_ASSERT_EQUAL(cf_future_state(d[i]), CF_PENDING);
  }
  CU_ASSERT_EQUAL(stats_queued(ex), MAXQ + NC);
  /* They count: MAXQ + NC queued, so room comes only once NC + 1 of them
   * are gone. */
  assert_refused(ex, 0);
  CU_ASSERT_EQUAL(cf_future_cancel(q1), CF_OK);
  assert_refused(ex, 0);
  CU_ASSERT_EQUAL(cf_future_cancel(q2), CF_OK);
  assert_refused(ex, 0);
  CU_ASSERT_EQUAL(cf_future_cancel(d[0]), CF_OK);
  assert_refused(ex, 0);
  CU_ASSERT_EQUAL(cf_future_cancel(d[1]), CF_OK);
  cf_future *q3 = submit_noop(ex);
  CU_ASSERT_PTR_NOT_NULL(q3);
  assert_refused(ex, 0);
  /* A continuation whose source completes later, still full: queued. */
  cf_future *late_src, *late;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&late_src), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(late_src, ex, task_add_1000, 0, &late), CF_OK);
  uint64_t v = 5;
  CU_ASSERT_EQUAL(cf_future_set_result(late_src, &v, sizeof v), CF_OK);
  CU_ASSERT_EQUAL(cf_future_state(late), CF_PENDING);
  gate_open(&g);
  CU_ASSERT_EQUAL(result_u64(d[2]), 1002);
  CU_ASSERT_EQUAL(result_u64(late), 1005);
  CU_ASSERT_TRUE(cf_future_cancelled(d[0]));
  CU_ASSERT_TRUE(cf_future_cancelled(d[1]));
  cf_future_release(q1);
  cf_future_release(q2);
  wait_release(q3);
  wait_release(gf);
  /* Every slot came back: exactly MAXQ again. */
  cf_test_gate g2;
  gf = block_worker(ex, &g2);
  q1 = submit_noop(ex);
  q2 = submit_noop(ex);
  assert_refused(ex, 0);
  gate_open(&g2);
  wait_release(q1);
  wait_release(q2);
  wait_release(gf);
  for (int i = 0; i < NC; i++) {
    cf_future_release(src[i]);
    cf_future_release(d[i]);
  }
  cf_future_release(late_src);
  cf_future_release(late);
  cf_executor_release(ex);
  gate_destroy(&g);
  gate_destroy(&g2);
}

static void test_map_not_counted(void) {
  enum { N = 200 };
  cf_executor *ex = make_bounded_pool(1, 1);
  cf_test_gate g;
  cf_future *gf = block_worker(ex, &g);
  cf_future *q1 = submit_noop(ex);
  assert_refused(ex, 0);
  static uint64_t in[N];
  for (size_t i = 0; i < N; i++)
    in[i] = i;
  cf_map_options mo;
  cf_map_options_init(&mo);
  mo.chunksize = 1;
  mo.max_inflight = 32; /* far beyond max_queued */
  cf_map_iter *m = NULL;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_square, in, sizeof in[0], N, &mo, &m), CF_OK);
  /* The chunks took no slot and gave none: still exactly full. */
  assert_refused(ex, 0);
  gate_open(&g);
  cf_map_item it = CF_MAP_ITEM_INIT;
  size_t n = 0;
  int rc;
  while ((rc = cf_map_next(m, &it)) == CF_OK) {
    uint64_t v = 0;
    CU_ASSERT_EQUAL(it.index, n);
    CU_ASSERT_EQUAL(it.len, sizeof v);
    if (it.len == sizeof v)
      memcpy(&v, it.data, sizeof v);
    CU_ASSERT_EQUAL(v, (uint64_t)n * n + 1);
    n++;
  }
  CU_ASSERT_EQUAL(rc, CF_EOF);
  CU_ASSERT_EQUAL(n, N);
  cf_map_destroy(m);
  wait_release(q1);
  wait_release(gf);
  /* A map destroyed with chunks still queued gives back nothing it did
   * not take either. */
  cf_test_gate g2;
  gf = block_worker(ex, &g2);
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(ex, task_square, in, sizeof in[0], N, &mo, &m), CF_OK);
  cf_map_destroy(m); /* its chunks are queued behind the gate: cancelled */
  q1 = submit_noop(ex);
  assert_refused(ex, 0);
  gate_open(&g2);
  wait_release(q1);
  wait_release(gf);
  /* The bound is intact: exactly one slot. */
  cf_test_gate g3;
  gf = block_worker(ex, &g3);
  q1 = submit_noop(ex);
  assert_refused(ex, 0);
  gate_open(&g3);
  wait_release(q1);
  wait_release(gf);
  cf_executor_release(ex);
  gate_destroy(&g);
  gate_destroy(&g2);
  gate_destroy(&g3);
}

/* ---- waiting inside a task ------------------------------------------------
 */

typedef struct self_submit {
  cf_executor *ex;
  cf_test_gate *gate;
  int rc;
  cf_future *f;
} self_submit;

/* in: self_submit *; waits at the gate (not a library wait), then submits
 * into its own pool, without limit. */
static int task_self_submit(cf_task *t, const void *in, size_t len) {
  (void)t;
  self_submit *s;
  if (len != sizeof s)
    return EINVAL;
  memcpy(&s, in, sizeof s);
  task_gate(t, &s->gate, sizeof s->gate);
  uint64_t v = 4;
  s->rc = cf_submit_timed(s->ex, task_square, &v, sizeof v, CF_FOREVER, &s->f);
  return 0;
}

static void test_task_submits_into_own_full_pool(void) {
  enum { MAXQ = 2 };
  cf_executor *ex = make_bounded_pool(1, MAXQ);
  cf_test_gate g;
  gate_init(&g);
  self_submit s = {.ex = ex, .gate = &g, .rc = 99};
  cf_future *tf = submit_ptr(ex, task_self_submit, &s);
  CU_ASSERT_TRUE_FATAL(CF_TEST_EVENTUALLY(atomic_load(&g.entered) == 1));
  cf_future *q[MAXQ];
  for (int i = 0; i < MAXQ; i++)
    q[i] = submit_u64(ex, task_square, (uint64_t)i + 1);
  assert_refused(ex, 0);
  /* Now the task submits into its full pool, from its only worker: it
   * counts as blocked, a compensating worker drains the queue. */
  gate_open(&g);
  CU_ASSERT_EQUAL(cf_future_wait(tf, HANG_NS), CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(tf, 0, NULL, NULL), CF_OK);
  CU_ASSERT_EQUAL(s.rc, CF_OK);
  if (s.f) {
    CU_ASSERT_EQUAL(result_u64(s.f), 17);
    cf_future_release(s.f);
  }
  for (int i = 0; i < MAXQ; i++) {
    CU_ASSERT_EQUAL(result_u64(q[i]), (uint64_t)(i + 1) * (i + 1) + 1);
    cf_future_release(q[i]);
  }
  cf_future_release(tf);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.blocked, 0);
  CU_ASSERT_EQUAL(st.failed, 0);
  cf_executor_release(ex);
  gate_destroy(&g);
}

/* ---- process pool ---------------------------------------------------------
 */

static cf_future *submit_fifo(cf_executor *ex, cf_test_fifo *gate,
                              int64_t timeout_ns, int *rc) {
  cf_future *f = NULL;
  *rc = cf_submit_timed(ex, task_fifo_gate, gate->path, strlen(gate->path) + 1,
                        timeout_ns, &f);
  return f;
}

typedef struct pp_producer {
  cf_executor *ex;
  cf_test_fifo *gate;
  atomic_int started;
  int rc;
  cf_future *f;
} pp_producer;

static void *pp_produce(void *p) {
  pp_producer *pr = p;
  atomic_store(&pr->started, 1);
  pr->f = submit_fifo(pr->ex, pr->gate, CF_FOREVER, &pr->rc);
  return NULL;
}

static void test_process_pool_bounded(void) {
  enum { MAXQ = 2, MAXF = 16 };
  cf_test_fifo gate;
  fifo_gate_init(&gate);
  cf_executor *ex = make_bounded_ppool(1, MAXQ);
  cf_future *fs[MAXF];
  int n = 0, rc = CF_OK;
  /* Submit until refused: MAXQ queued, plus the one a worker may have
   * been sent already (one task per worker at a time). */
  while (n < MAXF) {
    cf_future *f = submit_fifo(ex, &gate, 0, &rc);
    if (rc != CF_OK) {
      CU_ASSERT_PTR_NULL(f);
      break;
    }
    fs[n++] = f;
  }
  CU_ASSERT_EQUAL(rc, CF_EAGAIN);
  CU_ASSERT_TRUE(n >= MAXQ && n <= MAXQ + 1);
  /* Once the worker runs one, the queue holds the rest, and room for one
   * more comes (when its slot is given back, a moment after it starts). */
  CU_ASSERT_TRUE_FATAL(CF_TEST_EVENTUALLY(cf_future_running(fs[0])));
  while (n < MAXQ + 1) {
    fs[n] = submit_fifo(ex, &gate, HANG_NS, &rc);
    CU_ASSERT_EQUAL_FATAL(rc, CF_OK);
    n++;
  }
  /* Exactly full now, and the worker is held: refused, deterministically. */
  cf_future *f = (cf_future *)&f;
  CU_ASSERT_EQUAL(cf_submit(ex, task_noop, NULL, 0, &f), CF_EAGAIN);
  CU_ASSERT_PTR_NULL(f);
  f = submit_fifo(ex, &gate, 0, &rc);
  CU_ASSERT_EQUAL(rc, CF_EAGAIN);
  CU_ASSERT_PTR_NULL(f);
  int64_t t0 = now_ns();
  f = submit_fifo(ex, &gate, CF_MSEC(50), &rc);
  CU_ASSERT_EQUAL(rc, CF_EAGAIN);
  CU_ASSERT_PTR_NULL(f);
  CU_ASSERT_TRUE(now_ns() - t0 >= CF_MSEC(50));
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.queued, MAXQ);
  CU_ASSERT_EQUAL(st.running, 1);
  /* A producer waiting without limit gets in once the gate opens. */
  pp_producer pr = {.ex = ex, .gate = &gate};
  pthread_t th;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, pp_produce, &pr), 0);
  CU_ASSERT_TRUE(cf_test_await_flag(&pr.started));
  cf_test_sleep_ms(20);
  fifo_gate_open(&gate, n + 1); /* a byte for each task, the waiter's too */
  pthread_join(th, NULL);
  CU_ASSERT_EQUAL(pr.rc, CF_OK);
  CU_ASSERT_PTR_NOT_NULL(pr.f);
  if (pr.f)
    fs[n++] = pr.f;
  for (int i = 0; i < n; i++) {
    CU_ASSERT_EQUAL(cf_future_result(fs[i], HANG_NS, NULL, NULL), CF_OK);
    cf_future_release(fs[i]);
  }
  cf_executor_release(ex);
  fifo_gate_destroy(&gate);
}

/* A done callback on the pool's I/O thread fills the pool, then submits
 * with a timeout (it would wait for itself: CF_EDEADLK) and without one
 * (CF_EAGAIN). */
typedef struct io_ctx {
  cf_executor *ex;
  int filled;
  int rc_zero, rc_timed, rc_forever, rc_owned, rc_past;
  atomic_int done;
} io_ctx;

static void io_fill_cb(cf_future *f, void *arg) {
  (void)f;
  io_ctx *c = arg;
  /* Only this thread sends queued tasks to workers: nothing leaves the
   * queue while this runs, so "full" stays full. */
  while (c->filled < 50 && cf_submit(c->ex, task_noop, NULL, 0, NULL) == CF_OK)
    c->filled++;
  c->rc_zero = cf_submit_timed(c->ex, task_noop, NULL, 0, 0, NULL);
  c->rc_past = cf_submit_timed(c->ex, task_noop, NULL, 0, -7, NULL);
  c->rc_timed = cf_submit_timed(c->ex, task_noop, NULL, 0, CF_MSEC(50), NULL);
  c->rc_forever = cf_submit_timed(c->ex, task_noop, NULL, 0, CF_FOREVER, NULL);
  static char buf[8];
  c->rc_owned = cf_submit_owned_timed(c->ex, task_echo, buf, sizeof buf, NULL,
                                      CF_SEC(10), NULL);
  atomic_store(&c->done, 1);
}

static void test_io_thread_submit_deadlk(void) {
  enum { MAXQ = 2 };
  cf_test_fifo gate;
  fifo_gate_init(&gate);
  cf_executor *ex = make_bounded_ppool(1, MAXQ);
  io_ctx c = {.ex = ex, .rc_zero = 99};
  atomic_init(&c.done, 0);
  int rc;
  cf_future *a = submit_fifo(ex, &gate, 0, &rc);
  CU_ASSERT_EQUAL_FATAL(rc, CF_OK);
  /* a is held by the gate: the callback runs when the I/O thread
   * completes it. */
  CU_ASSERT_EQUAL(cf_future_add_done_callback(a, io_fill_cb, &c), CF_OK);
  CU_ASSERT_EQUAL(atomic_load(&c.done), 0);
  fifo_gate_open(&gate, 1);
  CU_ASSERT_TRUE_FATAL(CF_TEST_EVENTUALLY(atomic_load(&c.done) == 1));
  CU_ASSERT_TRUE(c.filled >= MAXQ && c.filled <= MAXQ + 1);
  CU_ASSERT_EQUAL(c.rc_zero, CF_EAGAIN);
  CU_ASSERT_EQUAL(c.rc_past, CF_EAGAIN);
  CU_ASSERT_EQUAL(c.rc_timed, CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc_forever, CF_EDEADLK);
  CU_ASSERT_EQUAL(c.rc_owned, CF_EDEADLK);
  CU_ASSERT_EQUAL(cf_future_result(a, 0, NULL, NULL), CF_OK);
  cf_future_release(a);
  /* What it queued runs. */
  CU_ASSERT_EQUAL(cf_shutdown(ex, true, false), CF_OK);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  cf_executor_stats_get(ex, &st);
  CU_ASSERT_EQUAL(st.completed, (uint64_t)c.filled + 1);
  CU_ASSERT_EQUAL(st.failed, 0);
  cf_executor_release(ex);
  fifo_gate_destroy(&gate);
}

/* Submit, cancel, release, over and over while the worker is held: the
 * cancelled entries are dropped from the queue as they pile up (their
 * inputs freed), so memory stays bounded by the bound, not by the number
 * of submits.  Seen through the inputs' free function. */
static _Atomic int g_inputs_freed;
static void count_free(void *p) {
  atomic_fetch_add(&g_inputs_freed, 1);
  free(p);
}

static void test_cancelled_entries_purged(void) {
  enum { MAXQ = 4, ROUNDS = 1000 };
  cf_executor *ex = make_bounded_pool(1, MAXQ);
  cf_test_gate g;
  cf_future *gf = block_worker(ex, &g);
  atomic_store(&g_inputs_freed, 0);
  for (int i = 0; i < ROUNDS; i++) {
    void *in = malloc(32);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    cf_future *f = NULL;
    int rc = cf_submit_owned(ex, task_noop, in, 32, count_free, &f);
    CU_ASSERT_EQUAL_FATAL(rc, CF_OK); /* the cancels made room */
    CU_ASSERT_EQUAL(cf_future_cancel(f), CF_OK);
    cf_future_release(f);
  }
  /* Still held: only a purge can have freed them; at most about two
   * bounds' worth wait for one. */
  CU_ASSERT(atomic_load(&g_inputs_freed) >= ROUNDS - 2 * MAXQ);
  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  CU_ASSERT_EQUAL(cf_executor_stats_get(ex, &st), CF_OK);
  CU_ASSERT_EQUAL(st.queued, 0);
  gate_open(&g);
  wait_release(gf);
  cf_executor_release(ex);
  gate_destroy(&g);
  CU_ASSERT_EQUAL(atomic_load(&g_inputs_freed), ROUNDS);
}

/* Regressions found in review. */

/* A continuation cancelled while its source completes (and it is handed
 * to the bounded pool) must not keep a slot: after many such races the
 * pool is idle and takes a full bound again. */
static _Atomic(cf_future *) g_target;
static atomic_int g_go, g_stop_canceller;

static void *cancel_targets(void *arg) {
  (void)arg;
  unsigned seed = 1;
  for (;;) {
    cf_future *d;
    /* Yielding: under valgrind one thread runs at a time. */
    while (!(d = atomic_load(&g_target))) {
      if (atomic_load(&g_stop_canceller))
        return NULL;
      sched_yield();
    }
    atomic_store(&g_target, NULL);
    atomic_store(&g_go, 1);
    seed = seed * 1103515245 + 12345;
    for (volatile unsigned i = 0; i < (seed >> 16) % 3000; i++)
      ;
    cf_future_cancel(d);
    cf_future_release(d);
  }
}

static void test_cancelled_continuation_keeps_no_slot(void) {
  enum { MAXQ = 4 };
  cf_executor *ex = make_bounded_pool(2, MAXQ);
  atomic_store(&g_stop_canceller, 0);
  pthread_t th;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, cancel_targets, NULL), 0);
  size_t big = 64 * 1024; /* a copy long enough for the cancel to land */
  char *buf = calloc(1, big);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  size_t rounds = cf_test_scaled(4000);
  for (size_t i = 0; i < rounds; i++) {
    cf_future *u = NULL, *d = NULL;
    CU_ASSERT_EQUAL_FATAL(cf_future_create(&u), CF_OK);
    CU_ASSERT_EQUAL_FATAL(cf_future_then(u, ex, task_noop, 0, &d), CF_OK);
    atomic_store(&g_go, 0);
    atomic_store(&g_target, cf_future_retain(d));
    while (!atomic_load(&g_go))
      sched_yield();
    cf_future_set_result(u, buf, big);
    CU_ASSERT_EQUAL(cf_future_wait(d, HANG_NS), CF_OK);
    cf_future_release(d);
    cf_future_release(u);
  }
  atomic_store(&g_stop_canceller, 1);
  pthread_join(th, NULL);
  free(buf);
  /* Every continuation is done: no slot may be held (stats count the
   * slots, once the cancelled entries are dropped). */
  CU_ASSERT_EQUAL(stats_queued(ex), 0);
  cf_executor_release(ex);
}

/* In a fork child, an inherited pool is freed by its last release; a
 * cancel of one of its queued futures then must not touch it (ASan and
 * valgrind see the write if it does). */
static void test_fork_child_cancels_inherited(void) {
  if (CF_TEST_TSAN)
    return; /* TSan does not follow a multithreaded fork */
  /* Under valgrind the child's exit counts its inherited futures as leaks
   * (as test_fork, left out there); ASan sees the use-after-free this is
   * about. */
  const char *pre = getenv("LD_PRELOAD");
  if (pre && strstr(pre, "vgpreload"))
    return;
  cf_executor *ex = make_bounded_pool(1, 2);
  cf_test_gate g;
  cf_future *gf = block_worker(ex, &g);
  cf_future *q = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, task_noop, NULL, 0, &q), CF_OK);
  fflush(NULL);
  pid_t pid = fork();
  CU_ASSERT_FATAL(pid >= 0);
  if (pid == 0) {
    cf_executor_release(ex); /* inherited: freed without its threads */
    int rc = cf_future_cancel(q);
    cf_test_child_exit(rc == CF_OK && cf_future_cancelled(q) ? 0 : 1);
  }
  int st = 0;
  CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
  CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  gate_open(&g);
  wait_release(gf);
  cf_future_wait(q, HANG_NS);
  cf_future_release(q);
  cf_executor_release(ex);
  gate_destroy(&g);
}

CF_TEST_MAIN("backpressure", CF_TEST(test_full_queue_refuses),
             CF_TEST(test_cancel_gives_slot_back),
             CF_TEST(test_stats_queued_excludes_cancelled),
             CF_TEST(test_cancelled_entries_purged),
             CF_TEST(test_cancelled_continuation_keeps_no_slot),
             CF_TEST(test_fork_child_cancels_inherited),
             CF_TEST(test_timed_forever_waits_for_room),
             CF_TEST(test_shutdown_wakes_producers),
             CF_TEST(test_owned_timed_keeps_buffer),
             CF_TEST(test_many_producers_timed),
             CF_TEST(test_many_producers_retry),
             CF_TEST(test_continuations_never_refused),
             CF_TEST(test_map_not_counted),
             CF_TEST(test_task_submits_into_own_full_pool),
             CF_TEST(test_process_pool_bounded),
             CF_TEST(test_io_thread_submit_deadlk))
