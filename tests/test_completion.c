/* Completion queues: the descriptor's readiness, FIFO order and tags, the
 * edge cases (done before added, one future in two queues or twice in one,
 * destroy with futures pending or ready, destroy racing a completion), and
 * the queue inside the loops it is made for: epoll (level and edge
 * triggered), GLib's main loop and libuv, fed by thread pools, process pools,
 * producer threads and derived futures. */
#include "test_util.h"

#include <poll.h>
#include <sys/epoll.h>

#ifdef CF_TEST_GLIB
#include <glib-unix.h>
#include <glib.h>
#endif
#ifdef CF_TEST_LIBUV
#include <uv.h>
#endif

/* A wait with no progress for this long is a hang, not a slow machine. */
#define HANG_MS 60000

static cf_future *user_future(void) {
  cf_future *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  return f;
}

static cf_completion_queue *make_queue(void) {
  cf_completion_queue *q = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_completion_queue_create(&q), CF_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(q);
  return q;
}

/* Whether the queue's descriptor is readable right now (poll, timeout 0). */
static bool readable(cf_completion_queue *q) {
  struct pollfd p = {.fd = cf_completion_queue_fd(q), .events = POLLIN};
  int n;
  while ((n = poll(&p, 1, 0)) < 0 && errno == EINTR)
    ;
  CU_ASSERT_TRUE(n >= 0);
  return n == 1 && (p.revents & POLLIN);
}

static size_t count_ready(cf_completion_queue *q) {
  size_t r = 99;
  CU_ASSERT_EQUAL(cf_completion_queue_count(q, NULL, &r), CF_OK);
  return r;
}

static size_t count_pending(cf_completion_queue *q) {
  size_t p = 99;
  CU_ASSERT_EQUAL(cf_completion_queue_count(q, &p, NULL), CF_OK);
  return p;
}

static void *tag_of(size_t i) { return (void *)(uintptr_t)(i + 1); }
static size_t index_of(void *tag) { return (size_t)(uintptr_t)tag - 1; }

static void set_u64(cf_future *f, uint64_t v) {
  CU_ASSERT_EQUAL(cf_future_set_result(f, &v, sizeof v), CF_OK);
}

/* ---- basics ---------------------------------------------------------------
 */

static void test_bad_arguments(void) {
  CU_ASSERT_EQUAL(cf_completion_queue_create(NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_completion_queue_fd(NULL), CF_EINVAL);
  cf_completion_queue *q = make_queue();
  cf_future *f = user_future();
  CU_ASSERT_EQUAL(cf_completion_queue_add(NULL, f, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, NULL, NULL), CF_EINVAL);
  cf_future *got = (cf_future *)&got;
  void *tag = &tag;
  CU_ASSERT_EQUAL(cf_completion_queue_pop(NULL, &got, &tag), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, NULL, &tag), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, NULL, NULL), CF_EINVAL);
  size_t p = 7, r = 7;
  CU_ASSERT_EQUAL(cf_completion_queue_count(NULL, &p, &r), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_completion_queue_count(q, NULL, NULL), CF_OK);
  CU_ASSERT_EQUAL(cf_completion_queue_count(q, &p, &r), CF_OK);
  CU_ASSERT_EQUAL(p, 0);
  CU_ASSERT_EQUAL(r, 0);
  cf_completion_queue_destroy(NULL); /* ignored */
  /* Nothing was added by the failed calls. */
  CU_ASSERT_EQUAL(cf_future_set_result(f, NULL, 0), CF_OK);
  CU_ASSERT_EQUAL(count_ready(q), 0);
  CU_ASSERT_FALSE(readable(q));
  cf_completion_queue_destroy(q);
  cf_future_release(f);
}

static void test_fd_properties(void) {
  cf_completion_queue *q = make_queue();
  int fd = cf_completion_queue_fd(q);
  CU_ASSERT_TRUE(fd >= 0);
  CU_ASSERT_EQUAL(cf_completion_queue_fd(q), fd); /* the same each time */
  int fl = fcntl(fd, F_GETFL);
  CU_ASSERT_TRUE(fl >= 0 && (fl & O_NONBLOCK));
  int fdfl = fcntl(fd, F_GETFD);
  CU_ASSERT_TRUE(fdfl >= 0 && (fdfl & FD_CLOEXEC));
  CU_ASSERT_FALSE(readable(q));
  /* Two queues, two descriptors. */
  cf_completion_queue *q2 = make_queue();
  CU_ASSERT_NOT_EQUAL(cf_completion_queue_fd(q2), fd);
  cf_completion_queue_destroy(q2);
  cf_completion_queue_destroy(q);
}

static void test_pop_empty(void) {
  cf_completion_queue *q = make_queue();
  cf_future *got = (cf_future *)&got;
  void *tag = &tag;
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, &got, &tag), CF_EAGAIN);
  CU_ASSERT_PTR_NULL(got);
  CU_ASSERT_PTR_NULL(tag);
  got = (cf_future *)&got;
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, &got, NULL), CF_EAGAIN);
  CU_ASSERT_PTR_NULL(got);
  /* A pending future: still nothing to pop. */
  cf_future *f = user_future();
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, f, tag_of(0)), CF_OK);
  CU_ASSERT_EQUAL(count_pending(q), 1);
  CU_ASSERT_EQUAL(count_ready(q), 0);
  got = (cf_future *)&got;
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, &got, &tag), CF_EAGAIN);
  CU_ASSERT_PTR_NULL(got);
  CU_ASSERT_FALSE(readable(q));
  set_u64(f, 5);
  CU_ASSERT_TRUE(readable(q));
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, &got, &tag), CF_OK);
  CU_ASSERT_PTR_EQUAL(got, f);
  CU_ASSERT_PTR_EQUAL(tag, tag_of(0));
  CU_ASSERT_EQUAL(result_u64(got), 5);
  cf_future_release(got);
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, &got, &tag), CF_EAGAIN);
  CU_ASSERT_PTR_NULL(got);
  CU_ASSERT_FALSE(readable(q));
  cf_completion_queue_destroy(q);
  cf_future_release(f);
}

/* Readable exactly while something is ready; popped in completion order
 * (not the order added), each with its tag; counts follow. */
static void test_fifo_and_readiness(void) {
  enum { N = 6 };
  static const int order[N] = {3, 0, 5, 1, 4, 2};
  cf_completion_queue *q = make_queue();
  cf_future *fs[N];
  for (int i = 0; i < N; i++) {
    fs[i] = user_future();
    CU_ASSERT_EQUAL(cf_completion_queue_add(q, fs[i], tag_of(i)), CF_OK);
  }
  CU_ASSERT_EQUAL(count_pending(q), N);
  CU_ASSERT_EQUAL(count_ready(q), 0);
  CU_ASSERT_FALSE(readable(q));
  /* Complete in `order`, with every kind of outcome. */
  for (int k = 0; k < N; k++) {
    int i = order[k];
    if (i == 1) {
      CU_ASSERT_EQUAL(cf_future_cancel(fs[i]), CF_OK);
    } else if (i == 4) {
      CU_ASSERT_EQUAL(cf_future_set_error(fs[i], 42, "no"), CF_OK);
    } else {
      set_u64(fs[i], (uint64_t)i * 10);
    }
    CU_ASSERT_TRUE(readable(q));
    CU_ASSERT_EQUAL(count_ready(q), (size_t)k + 1);
    CU_ASSERT_EQUAL(count_pending(q), (size_t)(N - k - 1));
  }
  /* Readable stays so while anything is left, level-triggered. */
  for (int k = 0; k < N; k++) {
    CU_ASSERT_TRUE(readable(q));
    CU_ASSERT_TRUE(readable(q));
    cf_future *got = NULL;
    void *tag = NULL;
    CU_ASSERT_EQUAL_FATAL(cf_completion_queue_pop(q, &got, &tag), CF_OK);
    int i = order[k];
    CU_ASSERT_PTR_EQUAL(got, fs[i]);
    CU_ASSERT_PTR_EQUAL(tag, tag_of(i));
    if (i == 1) {
      CU_ASSERT_TRUE(cf_future_cancelled(got));
    } else if (i == 4) {
      int code = 0;
      CU_ASSERT_EQUAL(cf_future_error(got, 0, &code, NULL), CF_ETASK);
      CU_ASSERT_EQUAL(code, 42);
    } else {
      CU_ASSERT_EQUAL(result_u64(got), (uint64_t)i * 10);
    }
    cf_future_release(got);
    CU_ASSERT_EQUAL(count_ready(q), (size_t)(N - k - 1));
  }
  CU_ASSERT_FALSE(readable(q));
  /* Ready again after becoming empty: the descriptor follows each time. */
  cf_future *again = user_future();
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, again, NULL), CF_OK);
  CU_ASSERT_FALSE(readable(q));
  set_u64(again, 1);
  CU_ASSERT_TRUE(readable(q));
  cf_future *got = NULL;
  void *tag = &tag;
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, &got, &tag), CF_OK);
  CU_ASSERT_PTR_NULL(tag); /* the NULL tag it was added with */
  cf_future_release(got);
  CU_ASSERT_FALSE(readable(q));
  cf_completion_queue_destroy(q);
  cf_future_release(again);
  for (int i = 0; i < N; i++)
    cf_future_release(fs[i]);
}

/* ---- edge cases -----------------------------------------------------------
 */

static void test_done_before_added(void) {
  cf_completion_queue *q = make_queue();
  cf_future *a = user_future(), *b = user_future();
  set_u64(a, 1);
  CU_ASSERT_EQUAL(cf_future_cancel(b), CF_OK);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, a, tag_of(0)), CF_OK);
  CU_ASSERT_TRUE(readable(q)); /* ready at once */
  CU_ASSERT_EQUAL(count_ready(q), 1);
  CU_ASSERT_EQUAL(count_pending(q), 0);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, b, tag_of(1)), CF_OK);
  CU_ASSERT_EQUAL(count_ready(q), 2);
  /* The queue holds its own references: ours may go now. */
  cf_future_release(a);
  cf_future_release(b);
  cf_future *got;
  void *tag;
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, &got, &tag), CF_OK);
  CU_ASSERT_PTR_EQUAL(tag, tag_of(0));
  CU_ASSERT_EQUAL(result_u64(got), 1);
  cf_future_release(got);
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, &got, &tag), CF_OK);
  CU_ASSERT_PTR_EQUAL(tag, tag_of(1));
  CU_ASSERT_TRUE(cf_future_cancelled(got));
  cf_future_release(got);
  CU_ASSERT_FALSE(readable(q));
  /* A future of a pool done before it is added. */
  cf_executor *ex = make_pool(1);
  cf_future *f = submit_u64(ex, task_square, 6);
  CU_ASSERT_EQUAL(result_u64(f), 37);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, f, tag_of(2)), CF_OK);
  CU_ASSERT_TRUE(readable(q));
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q, &got, &tag), CF_OK);
  CU_ASSERT_PTR_EQUAL(got, f);
  cf_future_release(got);
  cf_future_release(f);
  cf_executor_release(ex);
  cf_completion_queue_destroy(q);
}

static void test_two_queues_and_twice(void) {
  cf_completion_queue *q1 = make_queue(), *q2 = make_queue();
  cf_future *f = user_future();
  CU_ASSERT_EQUAL(cf_completion_queue_add(q1, f, tag_of(1)), CF_OK);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q2, f, tag_of(2)), CF_OK);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q1, f, tag_of(3)), CF_OK);
  CU_ASSERT_EQUAL(count_pending(q1), 2);
  CU_ASSERT_EQUAL(count_pending(q2), 1);
  cf_future_release(f); /* the queues keep it */
  CU_ASSERT_FALSE(readable(q1));
  CU_ASSERT_FALSE(readable(q2));
  CU_ASSERT_EQUAL(cf_future_set_result(f, "ok", 3), CF_OK);
  CU_ASSERT_TRUE(readable(q1));
  CU_ASSERT_TRUE(readable(q2));
  CU_ASSERT_EQUAL(count_ready(q1), 2);
  CU_ASSERT_EQUAL(count_ready(q2), 1);
  cf_future *got;
  void *tag;
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q2, &got, &tag), CF_OK);
  CU_ASSERT_PTR_EQUAL(got, f);
  CU_ASSERT_PTR_EQUAL(tag, tag_of(2));
  cf_future_release(got);
  CU_ASSERT_FALSE(readable(q2));
  CU_ASSERT_TRUE(readable(q1));
  void *tags[2];
  for (int k = 0; k < 2; k++) {
    CU_ASSERT_EQUAL_FATAL(cf_completion_queue_pop(q1, &got, &tags[k]), CF_OK);
    CU_ASSERT_PTR_EQUAL(got, f);
    const void *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(cf_future_result(got, 0, &d, &n), CF_OK);
    CU_ASSERT_TRUE(n == 3 && memcmp(d, "ok", 3) == 0);
    cf_future_release(got); /* each pop hands out one reference */
  }
  /* Both added before it completed: popped in the order added. */
  CU_ASSERT_PTR_EQUAL(tags[0], tag_of(1));
  CU_ASSERT_PTR_EQUAL(tags[1], tag_of(3));
  CU_ASSERT_FALSE(readable(q1));
  CU_ASSERT_EQUAL(cf_completion_queue_pop(q1, &got, &tag), CF_EAGAIN);
  cf_completion_queue_destroy(q1);
  cf_completion_queue_destroy(q2);
}

/* Destroyed with futures pending: they complete later, touching nothing
 * of the queue (valgrind / ASan would see it), and stay usable. */
static void test_destroy_pending(void) {
  cf_completion_queue *q = make_queue();
  cf_future *u[3] = {user_future(), user_future(), user_future()};
  for (int i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(cf_completion_queue_add(q, u[i], tag_of(i)), CF_OK);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, u[0], tag_of(9)), CF_OK);
  /* A pool future held back by a gate, and one the test never keeps. */
  cf_executor *ex = make_pool(1);
  cf_test_gate g;
  gate_init(&g);
  cf_future *gf = submit_ptr(ex, task_gate, &g);
  cf_future *sq = submit_u64(ex, task_square, 3);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, gf, NULL), CF_OK);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, sq, NULL), CF_OK);
  cf_future_release(sq); /* only the queue holds it now */
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(atomic_load(&g.entered) == 1));
  CU_ASSERT_EQUAL(count_pending(q), 6);
  cf_completion_queue_destroy(q);
  /* Completions after the destroy. */
  set_u64(u[0], 1);
  CU_ASSERT_EQUAL(cf_future_set_error(u[1], 3, "late"), CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancel(u[2]), CF_OK);
  gate_open(&g);
  CU_ASSERT_EQUAL(cf_future_wait(gf, CF_FOREVER), CF_OK);
  CU_ASSERT_EQUAL(result_u64(u[0]), 1);
  CU_ASSERT_EQUAL(cf_future_error(u[1], 0, NULL, NULL), CF_ETASK);
  CU_ASSERT_TRUE(cf_future_cancelled(u[2]));
  /* Callbacks still work on them: the queue's are gone, not others'. */
  cf_executor_release(ex); /* runs sq to its end */
  for (int i = 0; i < 3; i++)
    cf_future_release(u[i]);
  cf_future_release(gf);
  gate_destroy(&g);
}

/* Destroyed with futures ready and not popped: they are released, ours
 * stay valid. */
static void test_destroy_ready(void) {
  cf_completion_queue *q = make_queue();
  cf_future *a = user_future(), *b = user_future(), *c = user_future();
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, a, NULL), CF_OK);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, b, NULL), CF_OK);
  CU_ASSERT_EQUAL(cf_completion_queue_add(q, c, NULL), CF_OK);
  set_u64(a, 11);
  set_u64(b, 12);
  cf_future_release(b); /* b: only the queue holds it */
  CU_ASSERT_EQUAL(count_ready(q), 2);
  CU_ASSERT_EQUAL(count_pending(q), 1);
  cf_completion_queue_destroy(q);
  CU_ASSERT_EQUAL(result_u64(a), 11);
  set_u64(c, 13); /* pending at destroy, completed after */
  CU_ASSERT_EQUAL(result_u64(c), 13);
  cf_future_release(a);
  cf_future_release(c);
}

/* A future completing on another thread while the queue is destroyed:
 * either the callback got there first or the destroy took it back, or it
 * was on its way (the orphan path).  Bounded iterations. */
typedef struct race_arg {
  cf_future *f[4];
  atomic_int go;
} race_arg;

static void *race_complete(void *p) {
  race_arg *a = p;
  cf_test_await_flag(&a->go);
  for (int i = 0; i < 4; i++) {
    if (i == 2)
      cf_future_cancel(a->f[i]);
    else
      set_u64(a->f[i], (uint64_t)i);
  }
  return NULL;
}

static void test_destroy_races_completion(void) {
  size_t iters = cf_test_scaled(CF_TEST_TSAN ? 300 : 1000);
  for (size_t it = 0; it < iters; it++) {
    cf_completion_queue *q = make_queue();
    race_arg a;
    atomic_init(&a.go, 0);
    for (int i = 0; i < 4; i++) {
      a.f[i] = user_future();
      CU_ASSERT_EQUAL(cf_completion_queue_add(q, a.f[i], tag_of(i)), CF_OK);
      if (i == 1) /* twice: two entries for one completion */
        CU_ASSERT_EQUAL(cf_completion_queue_add(q, a.f[i], NULL), CF_OK);
    }
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, race_complete, &a), 0);
    atomic_store(&a.go, 1);
    if (it % 3 == 1) { /* sometimes pop what is there first */
      cf_future *got;
      while (cf_completion_queue_pop(q, &got, NULL) == CF_OK)
        cf_future_release(got);
    } else if (it % 3 == 2) {
      sched_yield();
    }
    cf_completion_queue_destroy(q);
    pthread_join(th, NULL);
    for (int i = 0; i < 4; i++) {
      CU_ASSERT_TRUE(cf_future_done(a.f[i]));
      cf_future_release(a.f[i]);
    }
  }
}

/* ---- an epoll loop --------------------------------------------------------
 */

/* What a loop test checks: every one of n futures popped exactly once,
 * each with its result. */
typedef struct loop_check {
  cf_completion_queue *q;
  size_t n, popped;
  unsigned char *seen;
  bool bad;
  uint64_t (*expect)(size_t i); /* NULL: no result check */
} loop_check;

static uint64_t square_of(size_t i) { return (uint64_t)i * i + 1; }

static void check_init(loop_check *c, cf_completion_queue *q, size_t n,
                       uint64_t (*expect)(size_t)) {
  *c = (loop_check){.q = q, .n = n, .expect = expect};
  c->seen = calloc(n, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c->seen);
}

/* Pops until CF_EAGAIN; returns how many were popped. */
static size_t drain(loop_check *c) {
  size_t got_now = 0;
  for (;;) {
    cf_future *f = (cf_future *)&f;
    void *tag = &tag;
    int rc = cf_completion_queue_pop(c->q, &f, &tag);
    if (rc == CF_EAGAIN) {
      if (f != NULL || tag != NULL)
        c->bad = true;
      break;
    }
    CU_ASSERT_EQUAL(rc, CF_OK);
    if (rc != CF_OK) {
      c->bad = true;
      break;
    }
    size_t i = index_of(tag);
    if (!tag || i >= c->n || c->seen[i]++) {
      c->bad = true;
    } else if (c->expect) {
      const void *d = NULL;
      size_t len = 0;
      uint64_t v = 0;
      if (!cf_future_done(f) || cf_future_result(f, 0, &d, &len) != CF_OK ||
          len != sizeof v)
        c->bad = true;
      else if (memcpy(&v, d, sizeof v), v != c->expect(i))
        c->bad = true;
    }
    cf_future_release(f);
    c->popped++;
    got_now++;
  }
  return got_now;
}

static void check_done(loop_check *c) {
  CU_ASSERT_FALSE(c->bad);
  CU_ASSERT_EQUAL(c->popped, c->n);
  for (size_t i = 0; i < c->n; i++)
    CU_ASSERT_EQUAL(c->seen[i], 1);
  CU_ASSERT_EQUAL(count_ready(c->q), 0);
  CU_ASSERT_EQUAL(count_pending(c->q), 0);
  CU_ASSERT_FALSE(readable(c->q));
  free(c->seen);
}

/* Runs an epoll loop on the queue until c->n futures were popped; a
 * wakeup that finds nothing is allowed only for edge triggering (never two
 * in a row for level triggering is not promised either: counted, not
 * asserted). */
static void epoll_loop(loop_check *c, bool edge) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  CU_ASSERT_TRUE_FATAL(ep >= 0);
  struct epoll_event ev = {.events = EPOLLIN | (edge ? EPOLLET : 0)};
  ev.data.ptr = c;
  CU_ASSERT_EQUAL_FATAL(
      epoll_ctl(ep, EPOLL_CTL_ADD, cf_completion_queue_fd(c->q), &ev), 0);
  while (c->popped < c->n && !c->bad) {
    struct epoll_event out[4];
    int n = epoll_wait(ep, out, 4, HANG_MS);
    if (n < 0 && errno == EINTR)
      continue;
    CU_ASSERT_TRUE(n >= 0);
    if (n <= 0) {
      CU_FAIL("no completion for HANG_MS: the loop would hang");
      break;
    }
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_PTR_EQUAL(out[0].data.ptr, c);
    CU_ASSERT_TRUE(out[0].events & EPOLLIN);
    size_t got = drain(c);
    /* Level-triggered: readable only while something is ready, so a
     * wakeup always finds something (pops run on this thread only). */
    if (!edge)
      CU_ASSERT_TRUE(got > 0);
  }
  epoll_ctl(ep, EPOLL_CTL_DEL, cf_completion_queue_fd(c->q), NULL);
  close(ep);
}

static void run_pool_in_epoll(cf_executor *ex, size_t n, bool edge) {
  cf_completion_queue *q = make_queue();
  loop_check c;
  check_init(&c, q, n, square_of);
  for (size_t i = 0; i < n; i++) {
    cf_future *f = submit_u64(ex, task_square, i);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(cf_completion_queue_add(q, f, tag_of(i)), CF_OK);
    cf_future_release(f);
  }
  epoll_loop(&c, edge);
  check_done(&c);
  cf_completion_queue_destroy(q);
}

static void test_epoll_thread_pool(void) {
  cf_executor *ex = make_pool(4);
  run_pool_in_epoll(ex, 200, false);
  run_pool_in_epoll(ex, 200, true);
  cf_executor_release(ex);
}

static void test_epoll_process_pool(void) {
  cf_executor *ex = make_process_pool(3, CF_ON_DEATH_BREAK, 0);
  run_pool_in_epoll(ex, 200, false);
  run_pool_in_epoll(ex, 200, true);
  cf_executor_release(ex);
}

/* Edge-triggered with completions that come while the loop drains: every
 * completion after the drain saw CF_EAGAIN makes a new edge. */
typedef struct slow_feed {
  cf_future **fs;
  size_t n;
} slow_feed;

static void *slow_complete(void *p) {
  slow_feed *s = p;
  for (size_t i = 0; i < s->n; i++) {
    set_u64(s->fs[i], square_of(i));
    if (i % 7 == 0)
      sched_yield();
    if (i % 50 == 0)
      cf_test_sleep_ms(1);
  }
  return NULL;
}

static void test_epoll_edge_user_futures(void) {
  enum { N = 500 };
  cf_completion_queue *q = make_queue();
  cf_future **fs = calloc(N, sizeof *fs);
  CU_ASSERT_PTR_NOT_NULL_FATAL(fs);
  for (size_t i = 0; i < N; i++) {
    fs[i] = user_future();
    CU_ASSERT_EQUAL(cf_completion_queue_add(q, fs[i], tag_of(i)), CF_OK);
  }
  loop_check c;
  check_init(&c, q, N, square_of);
  slow_feed s = {fs, N};
  pthread_t th;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, slow_complete, &s), 0);
  epoll_loop(&c, true);
  pthread_join(th, NULL);
  check_done(&c);
  cf_completion_queue_destroy(q);
  for (size_t i = 0; i < N; i++)
    cf_future_release(fs[i]);
  free(fs);
}

/* ---- GLib and libuv -------------------------------------------------------
 */

#if !defined(CF_TEST_GLIB) || !defined(CF_TEST_LIBUV)
static bool loops_required(void) {
  const char *r = getenv("CF_TEST_REQUIRE_LOOPS");
  return r && strcmp(r, "1") == 0;
}
#endif

#if defined(CF_TEST_GLIB) || defined(CF_TEST_LIBUV)
/* Feeds a loop test: n futures of a thread pool and n of a process pool,
 * tags 0..2n-1. */
typedef struct loop_feed {
  cf_executor *tp, *pp;
  cf_completion_queue *q;
  loop_check c;
} loop_feed;

static void feed_start(loop_feed *lf, size_t n) {
  lf->tp = make_pool(4);
  lf->pp = make_process_pool(2, CF_ON_DEATH_BREAK, 0);
  lf->q = make_queue();
  check_init(&lf->c, lf->q, 2 * n, square_of);
  for (size_t i = 0; i < 2 * n; i++) {
    cf_future *f = submit_u64(i % 2 ? lf->pp : lf->tp, task_square, i);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(cf_completion_queue_add(lf->q, f, tag_of(i)), CF_OK);
    cf_future_release(f);
  }
}

static void feed_end(loop_feed *lf) {
  check_done(&lf->c);
  cf_completion_queue_destroy(lf->q);
  cf_executor_release(lf->tp);
  cf_executor_release(lf->pp);
}
#endif

#ifdef CF_TEST_GLIB
typedef struct glib_ctx {
  loop_feed lf;
  GMainLoop *loop;
  size_t last_popped;
  bool hung;
  guint fd_source;
} glib_ctx;

static gboolean glib_on_ready(gint fd, GIOCondition cond, gpointer p) {
  glib_ctx *g = p;
  CU_ASSERT_EQUAL(fd, cf_completion_queue_fd(g->lf.q));
  CU_ASSERT_TRUE(cond & G_IO_IN);
  CU_ASSERT_TRUE(drain(&g->lf.c) > 0); /* level-triggered */
  if (g->lf.c.popped >= g->lf.c.n || g->lf.c.bad) {
    g_main_loop_quit(g->loop);
    g->fd_source = 0;
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean glib_hang_guard(gpointer p) {
  glib_ctx *g = p;
  if (g->lf.c.popped == g->last_popped) {
    g->hung = true;
    g_main_loop_quit(g->loop);
    return G_SOURCE_REMOVE;
  }
  g->last_popped = g->lf.c.popped;
  return G_SOURCE_CONTINUE;
}
#endif

static void test_glib_main_loop(void) {
#ifdef CF_TEST_GLIB
  glib_ctx g = {0};
  feed_start(&g.lf, 100);
  g.loop = g_main_loop_new(NULL, FALSE);
  g.fd_source =
      g_unix_fd_add(cf_completion_queue_fd(g.lf.q), G_IO_IN, glib_on_ready, &g);
  CU_ASSERT_TRUE(g.fd_source > 0);
  guint guard = g_timeout_add(HANG_MS, glib_hang_guard, &g);
  g_main_loop_run(g.loop);
  CU_ASSERT_FALSE(g.hung);
  if (g.fd_source)
    g_source_remove(g.fd_source);
  if (!g.hung)
    g_source_remove(guard);
  g_main_loop_unref(g.loop);
  feed_end(&g.lf);
#else
  if (loops_required()) {
    CU_FAIL("CF_TEST_REQUIRE_LOOPS=1 but GLib (glib-2.0) was not built in: "
            "configure did not find it, CF_TEST_GLIB is not defined");
  } else {
    printf("(skipped: built without GLib) ");
  }
#endif
}

#ifdef CF_TEST_LIBUV
typedef struct uv_ctx {
  loop_feed lf;
  uv_poll_t poll;
  uv_timer_t guard;
  size_t last_popped;
  bool hung;
} uv_ctx;

static void uv_stop_all(uv_ctx *u) {
  uv_poll_stop(&u->poll);
  uv_timer_stop(&u->guard);
  uv_close((uv_handle_t *)&u->poll, NULL);
  uv_close((uv_handle_t *)&u->guard, NULL);
}

static void uv_on_ready(uv_poll_t *h, int status, int events) {
  uv_ctx *u = h->data;
  CU_ASSERT_EQUAL(status, 0);
  CU_ASSERT_TRUE(events & UV_READABLE);
  CU_ASSERT_TRUE(drain(&u->lf.c) > 0); /* level-triggered */
  if (u->lf.c.popped >= u->lf.c.n || u->lf.c.bad || status < 0)
    uv_stop_all(u);
}

static void uv_hang_guard(uv_timer_t *t) {
  uv_ctx *u = t->data;
  if (u->lf.c.popped == u->last_popped) {
    u->hung = true;
    uv_stop_all(u);
  }
  u->last_popped = u->lf.c.popped;
}
#endif

static void test_libuv_loop(void) {
#ifdef CF_TEST_LIBUV
  uv_loop_t loop;
  CU_ASSERT_EQUAL_FATAL(uv_loop_init(&loop), 0);
  uv_ctx u = {0};
  feed_start(&u.lf, 100);
  CU_ASSERT_EQUAL_FATAL(
      uv_poll_init(&loop, &u.poll, cf_completion_queue_fd(u.lf.q)), 0);
  u.poll.data = &u;
  CU_ASSERT_EQUAL(uv_timer_init(&loop, &u.guard), 0);
  u.guard.data = &u;
  CU_ASSERT_EQUAL(uv_timer_start(&u.guard, uv_hang_guard, HANG_MS, HANG_MS), 0);
  CU_ASSERT_EQUAL(uv_poll_start(&u.poll, UV_READABLE, uv_on_ready), 0);
  CU_ASSERT_EQUAL(uv_run(&loop, UV_RUN_DEFAULT), 0);
  CU_ASSERT_FALSE(u.hung);
  CU_ASSERT_EQUAL(uv_loop_close(&loop), 0);
  feed_end(&u.lf);
#else
  if (loops_required()) {
    CU_FAIL("CF_TEST_REQUIRE_LOOPS=1 but libuv was not built in: configure "
            "did not find it, CF_TEST_LIBUV is not defined");
  } else {
    printf("(skipped: built without libuv) ");
  }
#endif
}

/* ---- producers on other threads -------------------------------------------
 */

enum { PRODUCERS = 4 };

typedef struct producer {
  cf_completion_queue *q;
  cf_executor *ex;
  size_t base, n; /* tags base .. base + n - 1 */
  atomic_int *go;
} producer;

/* in: cf_future * (a user future, with a reference for this task), then
 * uint64_t v: completes the future with v * v + 1 and drops the
 * reference. */
typedef struct complete_msg {
  cf_future *f;
  uint64_t v;
} complete_msg;

static int task_complete_user(cf_task *t, const void *in, size_t len) {
  (void)t;
  complete_msg m;
  if (len != sizeof m)
    return EINVAL;
  memcpy(&m, in, sizeof m);
  uint64_t r = m.v * m.v + 1;
  int rc = cf_future_set_result(m.f, &r, sizeof r);
  cf_future_release(m.f);
  return rc == CF_OK ? 0 : EIO;
}

static void *producer_main(void *p) {
  producer *pr = p;
  cf_test_await_flag(pr->go);
  for (size_t k = 0; k < pr->n; k++) {
    size_t i = pr->base + k;
    cf_future *f = NULL;
    if (k % 2 == 0) {
      /* A pool future. */
      if (cf_submit(pr->ex, task_square, &(uint64_t){i}, sizeof(uint64_t),
                    &f) != CF_OK)
        return "submit";
      if (cf_completion_queue_add(pr->q, f, tag_of(i)) != CF_OK)
        return "add";
      cf_future_release(f);
    } else {
      /* A user future completed by a pool worker (another thread), which
       * may complete it before or after it is added. */
      if (cf_future_create(&f) != CF_OK)
        return "create";
      complete_msg m = {cf_future_retain(f), i};
      bool before = k % 4 == 1;
      if (!before && cf_completion_queue_add(pr->q, f, tag_of(i)) != CF_OK)
        return "add";
      if (cf_submit(pr->ex, task_complete_user, &m, sizeof m, NULL) != CF_OK)
        return "submit";
      if (before && cf_completion_queue_add(pr->q, f, tag_of(i)) != CF_OK)
        return "add";
      cf_future_release(f);
    }
    if (k % 64 == 0)
      sched_yield();
  }
  return NULL;
}

static void test_concurrent_producers(void) {
  size_t per = cf_test_scaled(1000);
  cf_completion_queue *q = make_queue();
  cf_executor *ex = make_pool(3);
  loop_check c;
  check_init(&c, q, PRODUCERS * per, square_of);
  atomic_int go;
  atomic_init(&go, 0);
  producer pr[PRODUCERS];
  pthread_t th[PRODUCERS];
  for (int i = 0; i < PRODUCERS; i++) {
    pr[i] = (producer){q, ex, (size_t)i * per, per, &go};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, producer_main, &pr[i]),
                          0);
  }
  atomic_store(&go, 1);
  epoll_loop(&c, false);
  for (int i = 0; i < PRODUCERS; i++) {
    void *err = NULL;
    pthread_join(th[i], &err);
    if (err)
      fprintf(stderr, "producer %d: %s failed\n", i, (const char *)err);
    CU_ASSERT_PTR_NULL(err);
  }
  check_done(&c);
  cf_completion_queue_destroy(q);
  cf_executor_release(ex);
}

/* ---- derived futures ------------------------------------------------------
 */

static void test_derived_futures(void) {
  enum { N = 20 };
  cf_executor *ex = make_pool(2);
  cf_completion_queue *q = make_queue();
  cf_future *src[N];
  for (size_t i = 0; i < N; i++)
    src[i] = submit_u64(ex, task_square, i);
  /* then on the pool, then inline, and when_all / when_any of the
   * sources; a gate keeps the user future pending until all are added. */
  cf_future *u = user_future();
  cf_future *d[N + 4];
  for (size_t i = 0; i < N; i++) {
    unsigned fl = i % 2 ? CF_RUN_INLINE : 0;
    CU_ASSERT_EQUAL(cf_future_then(src[i], fl ? NULL : ex, task_add_1000, fl,
                                   &d[i]),
                    CF_OK);
    CU_ASSERT_EQUAL(cf_completion_queue_add(q, d[i], tag_of(i)), CF_OK);
  }
  cf_future *with_u[2] = {src[0], u};
  CU_ASSERT_EQUAL(cf_when_all(src, N, 0, &d[N]), CF_OK);
  CU_ASSERT_EQUAL(cf_when_all(with_u, 2, 0, &d[N + 1]), CF_OK);
  CU_ASSERT_EQUAL(cf_when_any(with_u, 2, 0, &d[N + 2]), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(u, ex, task_add_1000, 0, &d[N + 3]), CF_OK);
  for (size_t i = N; i < N + 4; i++)
    CU_ASSERT_EQUAL(cf_completion_queue_add(q, d[i], tag_of(i)), CF_OK);
  /* Drop our references: the queue and the derived futures hold what
   * they need. */
  for (size_t i = 0; i < N; i++)
    cf_future_release(src[i]);
  for (size_t i = 0; i < N + 4; i++)
    cf_future_release(d[i]);
  /* All but the two that wait for u complete; u completes last. */
  CU_ASSERT_TRUE(CF_TEST_EVENTUALLY(count_ready(q) == N + 2));
  CU_ASSERT_EQUAL(count_pending(q), 2);
  set_u64(u, 7);
  cf_future_release(u);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, cf_completion_queue_fd(q), &ev);
  unsigned char seen[N + 4] = {0};
  size_t popped = 0;
  while (popped < N + 4) {
    int n = epoll_wait(ep, &ev, 1, HANG_MS);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      CU_FAIL("derived futures never completed");
      break;
    }
    cf_future *f;
    void *tag;
    while (cf_completion_queue_pop(q, &f, &tag) == CF_OK) {
      size_t i = index_of(tag);
      CU_ASSERT_FATAL(i < N + 4);
      CU_ASSERT_EQUAL(seen[i]++, 0);
      popped++;
      const void *data = NULL;
      size_t len = 0;
      CU_ASSERT_EQUAL(cf_future_result(f, 0, &data, &len), CF_OK);
      uint64_t v = 0;
      if (i < N || i == N + 3) {
        CU_ASSERT_EQUAL(len, sizeof v);
        if (len == sizeof v)
          memcpy(&v, data, sizeof v);
        CU_ASSERT_EQUAL(v, (i < N ? square_of(i) : 7) + 1000);
      } else if (i == N || i == N + 1) {
        size_t k = i == N ? N : 2;
        CU_ASSERT_EQUAL(len, k * sizeof(int32_t));
        for (size_t j = 0; len == k * sizeof(int32_t) && j < k; j++) {
          int32_t st;
          memcpy(&st, (const char *)data + j * sizeof st, sizeof st);
          CU_ASSERT_EQUAL(st, CF_OK);
        }
      } else {
        cf_when_any_result r;
        CU_ASSERT_EQUAL(len, sizeof r);
        if (len == sizeof r) {
          memcpy(&r, data, sizeof r);
          CU_ASSERT_EQUAL(r.index, 0); /* src[0] was done before u */
          CU_ASSERT_EQUAL(r.status, CF_OK);
        }
      }
      cf_future_release(f);
    }
  }
  close(ep);
  CU_ASSERT_FALSE(readable(q));
  cf_completion_queue_destroy(q);
  cf_executor_release(ex);
}

CF_TEST_MAIN("completion", CF_TEST(test_bad_arguments),
             CF_TEST(test_fd_properties), CF_TEST(test_pop_empty),
             CF_TEST(test_fifo_and_readiness), CF_TEST(test_done_before_added),
             CF_TEST(test_two_queues_and_twice), CF_TEST(test_destroy_pending),
             CF_TEST(test_destroy_ready),
             CF_TEST(test_destroy_races_completion),
             CF_TEST(test_epoll_thread_pool), CF_TEST(test_epoll_process_pool),
             CF_TEST(test_epoll_edge_user_futures),
             CF_TEST(test_glib_main_loop), CF_TEST(test_libuv_loop),
             CF_TEST(test_concurrent_producers), CF_TEST(test_derived_futures))
