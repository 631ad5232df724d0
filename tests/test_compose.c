/* Composing futures: cf_future_then(), cf_when_all(), cf_when_any(),
 * cf_outcome_parse(), on user futures, the thread pool and the process
 * pool. */
#include "test_util.h"

static cf_future *user_future(void) {
  cf_future *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_future_create(&f), CF_OK);
  return f;
}

static long get_long(cf_future *f) {
  const void *d = NULL;
  size_t len = 0;
  long v = -1;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, &len), CF_OK);
  CU_ASSERT_EQUAL(len, sizeof v);
  if (len == sizeof v)
    memcpy(&v, d, sizeof v);
  return v;
}

static void set_long(cf_future *f, long v) {
  CU_ASSERT_EQUAL(cf_future_set_result(f, &v, sizeof v), CF_OK);
}

/* Tasks ------------------------------------------------------------------ */

static _Atomic int g_runs;

/* The input as a long, plus one. */
static int add_one(cf_task *t, const void *in, size_t len) {
  atomic_fetch_add(&g_runs, 1);
  long v = 0;
  if (len != sizeof v)
    return cf_task_fail(t, 22, "input of %zu bytes", len);
  memcpy(&v, in, sizeof v);
  v++;
  return cf_task_return(t, &v, sizeof v);
}

static int fail_42(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  return cf_task_fail(t, 42, "forty-two");
}

static int return_pid(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  long pid = (long)getpid();
  return cf_task_return(t, &pid, sizeof pid);
}

/* Describes its outcome input as text: "status code message len". */
static int describe(cf_task *t, const void *in, size_t len) {
  cf_outcome o = CF_OUTCOME_INIT;
  if (cf_outcome_parse(in, len, &o) != CF_OK)
    return cf_task_fail(t, 99, "not an outcome");
  char buf[200];
  int n = snprintf(buf, sizeof buf, "%d %d %s %zu", o.status, o.code,
                   o.message ? o.message : "-", o.len);
  return cf_task_return(t, buf, (size_t)n + 1);
}

static pthread_t g_ran_on;
static int note_thread(cf_task *t, const void *in, size_t len) {
  g_ran_on = pthread_self();
  return add_one(t, in, len);
}

static const char *text_of(cf_future *f) {
  const void *d = NULL;
  size_t len = 0;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, &len), CF_OK);
  return d ? (const char *)d : "";
}

/* then ------------------------------------------------------------------- */

static void test_then_bad_args(void) {
  cf_future *f = user_future(), *d = (cf_future *)1;
  cf_executor *ex = make_pool(1);
  CU_ASSERT_EQUAL(cf_future_then(NULL, ex, add_one, 0, &d), CF_EINVAL);
  CU_ASSERT_PTR_NULL(d);
  CU_ASSERT_EQUAL(cf_future_then(f, ex, NULL, 0, &d), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_then(f, ex, add_one, 0, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_then(f, NULL, add_one, 0, &d), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_future_then(f, ex, add_one, 0x100, &d), CF_EINVAL);
  CU_ASSERT_PTR_NULL(d);
  /* Inline needs no executor. */
  CU_ASSERT_EQUAL(cf_future_then(f, NULL, add_one, CF_RUN_INLINE, &d), CF_OK);
  set_long(f, 1);
  CU_ASSERT_EQUAL(get_long(d), 2);
  cf_future_release(d);
  cf_future_release(f);
  cf_executor_release(ex);
}

static void test_then_inline_success(void) {
  cf_future *f = user_future(), *d, *e;
  atomic_store(&g_runs, 0);
  CU_ASSERT_EQUAL(cf_future_then(f, NULL, note_thread, CF_RUN_INLINE, &d),
                  CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(d, NULL, add_one, CF_RUN_INLINE, &e), CF_OK);
  CU_ASSERT_EQUAL(cf_future_state(d), CF_PENDING);
  CU_ASSERT_EQUAL(atomic_load(&g_runs), 0);
  /* Runs on the completing thread, before set_result returns. */
  set_long(f, 10);
  CU_ASSERT_TRUE(pthread_equal(g_ran_on, pthread_self()));
  CU_ASSERT_TRUE(cf_future_done(d));
  CU_ASSERT_TRUE(cf_future_done(e));
  CU_ASSERT_EQUAL(get_long(d), 11);
  CU_ASSERT_EQUAL(get_long(e), 12);
  cf_future_release(e);
  cf_future_release(d);
  /* On a source done already: at once, on this thread. */
  CU_ASSERT_EQUAL(cf_future_then(f, NULL, add_one, CF_RUN_INLINE, &d), CF_OK);
  CU_ASSERT_TRUE(cf_future_done(d));
  CU_ASSERT_EQUAL(get_long(d), 11);
  cf_future_release(d);
  cf_future_release(f);
}

static void test_then_on_threads(void) {
  cf_executor *ex = make_pool(2);
  cf_future *f = user_future(), *d;
  CU_ASSERT_EQUAL(cf_future_then(f, ex, note_thread, 0, &d), CF_OK);
  /* The source may be released at once: d holds what it needs. */
  set_long(f, 5);
  cf_future_release(f);
  CU_ASSERT_EQUAL(get_long(d), 6);
  CU_ASSERT_FALSE(pthread_equal(g_ran_on, pthread_self()));
  cf_future_release(d);
  /* A chain of pool tasks: each link is submitted when the last ends. */
  long zero = 0;
  cf_future *cur = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, add_one, &zero, sizeof zero, &cur),
                        CF_OK);
  size_t n = cf_test_scaled(5000);
  for (size_t i = 0; i < n; i++) {
    cf_future *next = NULL;
    CU_ASSERT_EQUAL_FATAL(cf_future_then(cur, ex, add_one, 0, &next), CF_OK);
    cf_future_release(cur);
    cur = next;
  }
  CU_ASSERT_EQUAL(get_long(cur), (long)n + 1);
  cf_future_release(cur);
  cf_executor_release(ex);
}

static void test_then_on_processes(void) {
  cf_executor *ex = cf_test_processes(2);
  long zero = 40;
  cf_future *f, *d, *p, *x;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, add_one, &zero, sizeof zero, &f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(f, ex, add_one, 0, &d), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(d, ex, return_pid, 0, &p), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(f, ex, describe, CF_ANY_OUTCOME, &x), CF_OK);
  CU_ASSERT_EQUAL(get_long(d), 42);
  long pid = get_long(p);
  CU_ASSERT(pid > 0 && pid != (long)getpid()); /* ran in a worker */
  CU_ASSERT_STRING_EQUAL(text_of(x), "0 0 - 8");
  /* A failure in a worker passes on with its code and words. */
  cf_future *g, *h;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, fail_42, NULL, 0, &g), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(g, ex, add_one, 0, &h), CF_OK);
  int code = 0;
  const char *msg = NULL;
  CU_ASSERT_EQUAL(cf_future_error(h, CF_FOREVER, &code, &msg), CF_ETASK);
  CU_ASSERT_EQUAL(code, 42);
  CU_ASSERT_STRING_EQUAL(msg ? msg : "", "forty-two");
  cf_future_release(f);
  cf_future_release(d);
  cf_future_release(p);
  cf_future_release(x);
  cf_future_release(g);
  cf_future_release(h);
  cf_executor_release(ex);
}

static void test_then_failure_passes(void) {
  cf_executor *ex = make_pool(1);
  cf_future *f = user_future(), *a, *b;
  atomic_store(&g_runs, 0);
  CU_ASSERT_EQUAL(cf_future_then(f, NULL, add_one, CF_RUN_INLINE, &a), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(f, ex, add_one, 0, &b), CF_OK);
  CU_ASSERT_EQUAL(cf_future_set_error(f, 7, "seven"), CF_OK);
  cf_future *both[2] = {a, b};
  for (int i = 0; i < 2; i++) {
    int code = 0;
    const char *msg = NULL;
    CU_ASSERT_EQUAL(cf_future_error(both[i], CF_FOREVER, &code, &msg),
                    CF_ETASK);
    CU_ASSERT_EQUAL(code, 7);
    CU_ASSERT_STRING_EQUAL(msg ? msg : "", "seven");
    cf_future_release(both[i]);
  }
  CU_ASSERT_EQUAL(atomic_load(&g_runs), 0); /* fn never ran */
  cf_future_release(f);
  cf_executor_release(ex);
}

static void test_then_cancel_passes(void) {
  cf_executor *ex = make_pool(1);
  cf_future *f = user_future(), *a, *b, *c;
  atomic_store(&g_runs, 0);
  CU_ASSERT_EQUAL(cf_future_then(f, NULL, add_one, CF_RUN_INLINE, &a), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(f, ex, add_one, 0, &b), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(a, ex, add_one, 0, &c), CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancel(f), CF_OK);
  CU_ASSERT_EQUAL(cf_future_wait(c, CF_FOREVER), CF_OK);
  CU_ASSERT_TRUE(cf_future_cancelled(a));
  CU_ASSERT_TRUE(cf_future_cancelled(b));
  CU_ASSERT_TRUE(cf_future_cancelled(c));
  CU_ASSERT_EQUAL(cf_future_result(b, 0, NULL, NULL), CF_ECANCELLED);
  CU_ASSERT_EQUAL(atomic_load(&g_runs), 0);
  cf_future_release(a);
  cf_future_release(b);
  cf_future_release(c);
  cf_future_release(f);
  cf_executor_release(ex);
}

static void test_then_any_outcome(void) {
  cf_executor *ex = make_pool(2);
  cf_future *ok = user_future(), *bad = user_future(), *gone = user_future();
  cf_future *d[6];
  CU_ASSERT_EQUAL(cf_future_then(ok, ex, describe, CF_ANY_OUTCOME, &d[0]),
                  CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(bad, ex, describe, CF_ANY_OUTCOME, &d[1]),
                  CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(gone, ex, describe, CF_ANY_OUTCOME, &d[2]),
                  CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(ok, NULL, describe,
                                 CF_ANY_OUTCOME | CF_RUN_INLINE, &d[3]),
                  CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(bad, NULL, describe,
                                 CF_ANY_OUTCOME | CF_RUN_INLINE, &d[4]),
                  CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(gone, NULL, describe,
                                 CF_ANY_OUTCOME | CF_RUN_INLINE, &d[5]),
                  CF_OK);
  CU_ASSERT_EQUAL(cf_future_set_result(ok, "abc", 3), CF_OK);
  CU_ASSERT_EQUAL(cf_future_set_error(bad, 9, "nine"), CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancel(gone), CF_OK);
  char want[3][40];
  snprintf(want[0], sizeof want[0], "0 0 - 3");
  snprintf(want[1], sizeof want[1], "%d 9 nine 0", CF_ETASK);
  snprintf(want[2], sizeof want[2], "%d 0 - 0", CF_ECANCELLED);
  for (int i = 0; i < 6; i++) {
    CU_ASSERT_STRING_EQUAL(text_of(d[i]), want[i % 3]);
    cf_future_release(d[i]);
  }
  cf_future_release(ok);
  cf_future_release(bad);
  cf_future_release(gone);
  cf_executor_release(ex);
}

static void test_then_derived_cancelled_first(void) {
  cf_executor *ex = make_pool(1);
  cf_future *f = user_future(), *a, *b;
  atomic_store(&g_runs, 0);
  CU_ASSERT_EQUAL(cf_future_then(f, ex, add_one, 0, &a), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(f, NULL, add_one, CF_RUN_INLINE, &b), CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancel(a), CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancel(b), CF_OK);
  /* Without CF_CANCEL_SOURCES the source goes on. */
  CU_ASSERT_EQUAL(cf_future_state(f), CF_PENDING);
  set_long(f, 1);
  cf_shutdown(ex, true, false);
  CU_ASSERT_EQUAL(atomic_load(&g_runs), 0);
  CU_ASSERT_TRUE(cf_future_cancelled(a));
  cf_future_release(a);
  cf_future_release(b);
  cf_future_release(f);
  cf_executor_release(ex);
}

static int wait_for_stop(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  int64_t end = cf_test_now_ms() + 30000; /* a hang guard only */
  while (!cf_task_stop_requested(t) && cf_test_now_ms() < end)
    cf_test_sleep_ms(1);
  return CF_ECANCELLED;
}

static void test_then_cancel_sources(void) {
  cf_executor *ex = make_pool(1);
  cf_future *f = user_future(), *d;
  CU_ASSERT_EQUAL(cf_future_then(f, ex, add_one, CF_CANCEL_SOURCES, &d), CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancel(d), CF_OK);
  CU_ASSERT_TRUE(cf_future_cancelled(f));
  cf_future_release(d);
  cf_future_release(f);
  /* A running source is asked to stop, and honours it. */
  cf_future *r;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, wait_for_stop, NULL, 0, &r), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(r, ex, add_one, CF_CANCEL_SOURCES, &d), CF_OK);
  while (cf_future_state(r) == CF_PENDING)
    cf_test_sleep_ms(1);
  CU_ASSERT_EQUAL(cf_future_cancel(d), CF_OK);
  CU_ASSERT_EQUAL(cf_future_wait(r, CF_FOREVER), CF_OK);
  CU_ASSERT_TRUE(cf_future_cancelled(r));
  cf_future_release(d);
  cf_future_release(r);
  cf_executor_release(ex);
}

static void test_then_executor_refuses(void) {
  cf_executor *ex = make_pool(1);
  cf_future *f = user_future(), *d;
  CU_ASSERT_EQUAL(cf_future_then(f, ex, add_one, 0, &d), CF_OK);
  cf_shutdown(ex, true, false);
  set_long(f, 1);
  CU_ASSERT_EQUAL(cf_future_result(d, CF_FOREVER, NULL, NULL), CF_ESHUTDOWN);
  cf_future_release(d);
  cf_future_release(f);
  cf_executor_release(ex);
  /* The derived future keeps the executor alive while pending. */
  ex = make_pool(1);
  f = user_future();
  CU_ASSERT_EQUAL(cf_future_then(f, ex, add_one, 0, &d), CF_OK);
  cf_executor_release(ex);
  set_long(f, 3);
  CU_ASSERT_EQUAL(get_long(d), 4);
  cf_future_release(d);
  cf_future_release(f);
}

/* Long chains: constant stack, on a thread with a small stack. -------- */

typedef struct chain_arg {
  size_t n;
  long result;
  int status;
} chain_arg;

static void *inline_chain(void *arg) {
  chain_arg *c = arg;
  cf_future *root = user_future(), *cur = cf_future_retain(root);
  for (size_t i = 0; i < c->n; i++) {
    cf_future *next = NULL;
    if (cf_future_then(cur, NULL, add_one, CF_RUN_INLINE, &next) != CF_OK) {
      c->status = -100;
      cf_future_release(cur);
      cf_future_release(root);
      return NULL;
    }
    cf_future_release(cur);
    cur = next;
  }
  long zero = 0;
  cf_future_set_result(root, &zero, sizeof zero); /* runs all n links */
  c->status = cf_future_state(cur) == CF_FINISHED ? CF_OK : -200;
  const void *d = NULL;
  size_t len = 0;
  if (cf_future_result(cur, 0, &d, &len) == CF_OK && len == sizeof(long))
    memcpy(&c->result, d, sizeof(long));
  cf_future_release(cur);
  cf_future_release(root);
  return NULL;
}

static void run_small_stack(void *(*fn)(void *), void *arg) {
  pthread_attr_t a;
  pthread_attr_init(&a);
  /* 256 KiB: a recursion of a million links would need hundreds of MiB. */
  pthread_attr_setstacksize(&a, CF_TEST_SANITIZED ? 1 << 20 : 256 << 10);
  pthread_t th;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&th, &a, fn, arg), 0);
  pthread_join(th, NULL);
  pthread_attr_destroy(&a);
}

static void test_then_million_inline(void) {
  chain_arg c = {cf_test_scaled(1000000), 0, 0};
  run_small_stack(inline_chain, &c);
  CU_ASSERT_EQUAL(c.status, CF_OK);
  CU_ASSERT_EQUAL(c.result, (long)c.n);
}

/* A chain whose root is dropped uncompleted: every link is cancelled (not
 * left pending forever), in constant stack, and everything is freed. */
static void *dropped_chain(void *arg) {
  chain_arg *c = arg;
  cf_future *root = user_future(), *cur = cf_future_retain(root);
  for (size_t i = 0; i < c->n; i++) {
    cf_future *next = NULL;
    if (cf_future_then(cur, NULL, add_one, CF_RUN_INLINE, &next) != CF_OK)
      break;
    cf_future_release(cur);
    cur = next;
  }
  cf_future_release(root); /* the last reference: freed pending */
  c->status =
      cf_future_wait(cur, 0) == CF_OK && cf_future_cancelled(cur) ? CF_OK : -1;
  cf_future_release(cur);
  return NULL;
}

static void test_then_dropped_root(void) {
  chain_arg c = {cf_test_scaled(1000000), 0, 0};
  run_small_stack(dropped_chain, &c);
  CU_ASSERT_EQUAL(c.status, CF_OK);
}

/* Failure passed down a long chain: fn never runs, constant stack. */
static void *failing_chain(void *arg) {
  chain_arg *c = arg;
  cf_future *root = user_future(), *cur = cf_future_retain(root);
  for (size_t i = 0; i < c->n; i++) {
    cf_future *next = NULL;
    if (cf_future_then(cur, NULL, add_one, CF_RUN_INLINE, &next) != CF_OK)
      break;
    cf_future_release(cur);
    cur = next;
  }
  cf_future_set_error(root, 5, "root failed");
  int code = 0;
  c->status = cf_future_error(cur, 0, &code, NULL);
  c->result = code;
  cf_future_release(cur);
  cf_future_release(root);
  return NULL;
}

static void test_then_long_failure(void) {
  chain_arg c = {cf_test_scaled(200000), 0, 0};
  atomic_store(&g_runs, 0);
  run_small_stack(failing_chain, &c);
  CU_ASSERT_EQUAL(c.status, CF_ETASK);
  CU_ASSERT_EQUAL(c.result, 5);
  CU_ASSERT_EQUAL(atomic_load(&g_runs), 0);
}

/* Regressions found in review. ------------------------------------------ */

/* A wait inside a task of the pool a continuation is bound to must not
 * take the continuation for a queued task and run it before its source is
 * done (nor call a when_all's missing function). */
static cf_executor *g_pool;

static int echo_len(cf_task *t, const void *in, size_t len) {
  (void)in;
  long n = (long)len;
  return cf_task_return(t, &n, sizeof n);
}

static int wait_on_then(cf_task *t, const void *in, size_t len) {
  (void)len;
  cf_future *u, *d;
  memcpy(&u, in, sizeof u);
  if (cf_future_then(u, g_pool, echo_len, 0, &d) != CF_OK)
    return 1;
  int rc = cf_future_wait(d, CF_FOREVER);
  const void *r = NULL;
  if (rc == CF_OK)
    rc = cf_future_result(d, 0, &r, NULL);
  long n = -1;
  if (rc == CF_OK)
    memcpy(&n, r, sizeof n);
  cf_future_release(d);
  return rc ? 2 : cf_task_return(t, &n, sizeof n);
}

static int sleep_then_one(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  cf_test_sleep_ms(20);
  long one = 1;
  return cf_task_return(t, &one, sizeof one);
}

static int wait_on_when_all(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  cf_future *s[2], *d;
  for (int i = 0; i < 2; i++)
    if (cf_submit(g_pool, sleep_then_one, NULL, 0, &s[i]) != CF_OK)
      return 1;
  if (cf_when_all(s, 2, 0, &d) != CF_OK)
    return 1;
  int rc = cf_future_wait(d, CF_FOREVER);
  cf_future_release(d);
  cf_future_release(s[0]);
  cf_future_release(s[1]);
  return rc ? 2 : cf_task_return(t, NULL, 0);
}

static void test_wait_in_task_leaves_derived(void) {
  g_pool = make_pool(2);
  cf_future *u = user_future(), *f, *g;
  CU_ASSERT_EQUAL_FATAL(cf_submit(g_pool, wait_on_then, &u, sizeof u, &f),
                        CF_OK);
  /* Until the task waits (a wait that runs the continuation early ends it
   * at once: then the check below fails). */
  while (cf_future_state(f) == CF_PENDING)
    cf_test_sleep_ms(1);
  cf_test_sleep_ms(50);
  CU_ASSERT_EQUAL(cf_future_set_result(u, "hello", 5), CF_OK);
  CU_ASSERT_EQUAL(get_long(f), 5); /* the continuation saw u's result */
  CU_ASSERT_EQUAL_FATAL(cf_submit(g_pool, wait_on_when_all, NULL, 0, &g),
                        CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(g, CF_FOREVER, NULL, NULL), CF_OK);
  cf_future_release(f);
  cf_future_release(g);
  cf_future_release(u);
  cf_executor_release(g_pool);
}

/* The last reference to a continuation's executor is not dropped on the
 * thread that completed the source: there it would wait for that executor
 * to drain, here for a task that needs the completing pool itself. */
static cf_executor *g_a;

static int quick_x(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  return cf_task_return(t, "x", 1);
}

static int needs_a(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  cf_future *g;
  if (cf_submit(g_a, quick_x, NULL, 0, &g) != CF_OK)
    return 1;
  /* A hang guard: A's only worker completed our source; it must be free
   * to run this, not stuck in B's shutdown. */
  int rc = cf_future_wait(g, CF_SEC(60));
  cf_future_release(g);
  return rc ? 2 : cf_task_return(t, NULL, 0);
}

static void test_then_drops_executor_on_its_own_thread(void) {
  g_a = make_pool(1);
  cf_executor *b = make_pool(1);
  cf_future *s, *d;
  CU_ASSERT_EQUAL_FATAL(cf_submit(g_a, sleep_then_one, NULL, 0, &s), CF_OK);
  CU_ASSERT_EQUAL_FATAL(cf_future_then(s, b, needs_a, 0, &d), CF_OK);
  cf_executor_release(b); /* d holds it while pending */
  int code = 0;
  CU_ASSERT_EQUAL(cf_future_error(d, CF_FOREVER, &code, NULL), CF_OK);
  CU_ASSERT_EQUAL(code, 0);
  cf_future_release(s);
  cf_future_release(d);
  cf_executor_release(g_a);
}

/* Cancelling the tail of a long CF_CANCEL_SOURCES chain cancels it all,
 * in constant stack. */
static void *cancel_up_chain(void *arg) {
  chain_arg *c = arg;
  cf_future *root = user_future(), *cur = cf_future_retain(root);
  for (size_t i = 0; i < c->n; i++) {
    cf_future *next = NULL;
    if (cf_future_then(cur, NULL, add_one, CF_RUN_INLINE | CF_CANCEL_SOURCES,
                       &next) != CF_OK)
      break;
    cf_future_release(cur);
    cur = next;
  }
  c->status =
      cf_future_cancel(cur) == CF_OK && cf_future_cancelled(root) ? CF_OK : -1;
  cf_future_release(cur);
  cf_future_release(root);
  return NULL;
}

static void test_cancel_sources_long_chain(void) {
  chain_arg c = {cf_test_scaled(200000), 0, 0};
  run_small_stack(cancel_up_chain, &c);
  CU_ASSERT_EQUAL(c.status, CF_OK);
}

/* when_all / when_any ---------------------------------------------------- */

static const int32_t *statuses(cf_future *f, size_t *n) {
  const void *d = NULL;
  size_t len = 0;
  CU_ASSERT_EQUAL(cf_future_result(f, CF_FOREVER, &d, &len), CF_OK);
  *n = len / sizeof(int32_t);
  return d;
}

static void test_when_bad_args(void) {
  cf_future *f = user_future(), *d = (cf_future *)1;
  cf_future *fs[2] = {f, NULL};
  CU_ASSERT_EQUAL(cf_when_all(NULL, 1, 0, &d), CF_EINVAL);
  CU_ASSERT_PTR_NULL(d);
  CU_ASSERT_EQUAL(cf_when_all(fs, 2, 0, &d), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_when_all(fs, 1, 0, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_when_all(fs, 1, CF_RUN_INLINE, &d), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_when_all(fs, SIZE_MAX, 0, &d), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_when_any(fs, 0, 0, &d), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_when_any(NULL, 1, 0, &d), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_when_any(fs, 2, 0, &d), CF_EINVAL);
  CU_ASSERT_PTR_NULL(d);
  /* Nothing to wait for: done at once, with an empty result. */
  CU_ASSERT_EQUAL(cf_when_all(NULL, 0, 0, &d), CF_OK);
  CU_ASSERT_TRUE(cf_future_done(d));
  size_t n = 9;
  statuses(d, &n);
  CU_ASSERT_EQUAL(n, 0);
  cf_future_release(d);
  cf_future_release(f);
}

static void test_when_all_mixed(void) {
  cf_executor *ex = make_pool(2);
  cf_future *ok = user_future(), *bad = user_future(), *gone = user_future();
  cf_future *task;
  long v = 1;
  CU_ASSERT_EQUAL_FATAL(cf_submit(ex, add_one, &v, sizeof v, &task), CF_OK);
  cf_future *fs[5] = {ok, bad, gone, task, ok}; /* ok twice */
  cf_future *all;
  CU_ASSERT_EQUAL(cf_when_all(fs, 5, 0, &all), CF_OK);
  CU_ASSERT_FALSE(cf_future_done(all));
  set_long(ok, 1);
  cf_future_set_error(bad, 3, NULL);
  CU_ASSERT_FALSE(cf_future_done(all));
  cf_future_cancel(gone);
  size_t n = 0;
  const int32_t *st = statuses(all, &n);
  CU_ASSERT_EQUAL_FATAL(n, 5);
  CU_ASSERT_EQUAL(st[0], CF_OK);
  CU_ASSERT_EQUAL(st[1], CF_ETASK);
  CU_ASSERT_EQUAL(st[2], CF_ECANCELLED);
  CU_ASSERT_EQUAL(st[3], CF_OK);
  CU_ASSERT_EQUAL(st[4], CF_OK);
  for (int i = 0; i < 4; i++)
    cf_future_release(fs[i]);
  cf_future_release(all);
  cf_executor_release(ex);
}

static void test_when_any_mixed(void) {
  cf_future *a = user_future(), *b = user_future(), *c = user_future();
  cf_future *fs[4] = {a, b, c, b}, *any;
  CU_ASSERT_EQUAL(cf_when_any(fs, 4, 0, &any), CF_OK);
  CU_ASSERT_FALSE(cf_future_done(any));
  cf_future_set_error(b, 12, "b failed");
  CU_ASSERT_TRUE(cf_future_done(any));
  const void *d = NULL;
  size_t len = 0;
  CU_ASSERT_EQUAL(cf_future_result(any, 0, &d, &len), CF_OK);
  CU_ASSERT_EQUAL_FATAL(len, sizeof(cf_when_any_result));
  cf_when_any_result r;
  memcpy(&r, d, sizeof r);
  CU_ASSERT_EQUAL(r.index, 1);
  CU_ASSERT_EQUAL(r.status, CF_ETASK);
  CU_ASSERT_EQUAL(r.code, 12);
  /* The others go on. */
  CU_ASSERT_EQUAL(cf_future_state(a), CF_PENDING);
  cf_future_release(any);
  /* Already done: the lowest index of those done wins. */
  cf_future_cancel(c);
  cf_future *fs2[3] = {a, c, b};
  CU_ASSERT_EQUAL(cf_when_any(fs2, 3, 0, &any), CF_OK);
  CU_ASSERT_EQUAL(cf_future_result(any, 0, &d, &len), CF_OK);
  memcpy(&r, d, sizeof r);
  CU_ASSERT_EQUAL(r.index, 1);
  CU_ASSERT_EQUAL(r.status, CF_ECANCELLED);
  cf_future_release(any);
  cf_future_release(a);
  cf_future_release(b);
  cf_future_release(c);
}

static void test_when_cancel_sources(void) {
  cf_future *a = user_future(), *b = user_future(), *all, *any;
  cf_future *fs[2] = {a, b};
  CU_ASSERT_EQUAL(cf_when_all(fs, 2, 0, &all), CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancel(all), CF_OK);
  CU_ASSERT_EQUAL(cf_future_state(a), CF_PENDING); /* not asked */
  cf_future_release(all);
  set_long(a, 1);
  CU_ASSERT_EQUAL(cf_when_any(fs, 2, CF_CANCEL_SOURCES, &any), CF_OK);
  /* any is done already (a), so cancelling it fails and b goes on. */
  CU_ASSERT_EQUAL(cf_future_cancel(any), CF_ESTATE);
  CU_ASSERT_EQUAL(cf_future_state(b), CF_PENDING);
  cf_future_release(any);
  CU_ASSERT_EQUAL(cf_when_all(fs, 2, CF_CANCEL_SOURCES, &all), CF_OK);
  CU_ASSERT_EQUAL(cf_future_cancel(all), CF_OK);
  CU_ASSERT_TRUE(cf_future_cancelled(b));
  CU_ASSERT_EQUAL(cf_future_state(a), CF_FINISHED);
  cf_future_release(all);
  cf_future_release(a);
  cf_future_release(b);
}

static void test_when_source_dropped(void) {
  cf_future *a = user_future(), *b = user_future(), *all;
  cf_future *fs[2] = {a, b};
  CU_ASSERT_EQUAL(cf_when_all(fs, 2, 0, &all), CF_OK);
  set_long(a, 1);
  cf_future_release(b); /* freed pending: counts as cancelled */
  size_t n = 0;
  const int32_t *st = statuses(all, &n);
  CU_ASSERT_EQUAL_FATAL(n, 2);
  CU_ASSERT_EQUAL(st[0], CF_OK);
  CU_ASSERT_EQUAL(st[1], CF_ECANCELLED);
  cf_future_release(all);
  cf_future_release(a);
}

/* Derived futures in cf_wait(), as_completed, callbacks and then. */
static void count_cb(cf_future *f, void *arg) {
  (void)f;
  atomic_fetch_add((_Atomic int *)arg, 1);
}

static int count_ok(cf_task *t, const void *in, size_t len) {
  const int32_t *st = in;
  long ok = 0;
  for (size_t i = 0; i < len / sizeof *st; i++)
    ok += st[i] == CF_OK;
  return cf_task_return(t, &ok, sizeof ok);
}

static void test_when_composes(void) {
  cf_executor *ex = make_pool(2);
  enum { N = 64 };
  cf_future *fs[N];
  for (long i = 0; i < N; i++)
    CU_ASSERT_EQUAL_FATAL(cf_submit(ex, i % 8 == 7 ? fail_42 : add_one, &i,
                                    sizeof i, &fs[i]),
                          CF_OK);
  cf_future *all, *any, *okcount;
  CU_ASSERT_EQUAL(cf_when_all(fs, N, 0, &all), CF_OK);
  CU_ASSERT_EQUAL(cf_when_any(fs, N, 0, &any), CF_OK);
  _Atomic int calls = 0;
  CU_ASSERT_EQUAL(cf_future_add_done_callback(all, count_cb, &calls), CF_OK);
  CU_ASSERT_EQUAL(cf_future_then(all, ex, count_ok, 0, &okcount), CF_OK);
  cf_future *two[2] = {all, any};
  bool done[2];
  CU_ASSERT_EQUAL(cf_wait(two, 2, CF_FOREVER, CF_ALL_COMPLETED, done, NULL),
                  CF_OK);
  CU_ASSERT_TRUE(done[0] && done[1]);
  cf_as_completed_iter *it;
  CU_ASSERT_EQUAL_FATAL(cf_as_completed_create(two, 2, CF_FOREVER, &it), CF_OK);
  cf_future *got;
  int seen = 0;
  while (cf_as_completed_next(it, &got) == CF_OK)
    seen++;
  CU_ASSERT_EQUAL(seen, 2);
  cf_as_completed_destroy(it);
  CU_ASSERT_EQUAL(get_long(okcount), N - N / 8);
  CU_ASSERT_EQUAL(atomic_load(&calls), 1);
  for (int i = 0; i < N; i++)
    cf_future_release(fs[i]);
  cf_future_release(all);
  cf_future_release(any);
  cf_future_release(okcount);
  cf_executor_release(ex);
}

/* Sources completed by many threads at once. */
typedef struct racer {
  cf_future **fs;
  size_t from, to;
} racer;

static void *complete_range(void *arg) {
  racer *r = arg;
  for (size_t i = r->from; i < r->to; i++) {
    if (i % 3 == 0)
      cf_future_cancel(r->fs[i]);
    else
      set_long(r->fs[i], (long)i);
  }
  return NULL;
}

static void test_when_race(void) {
  size_t rounds = cf_test_scaled(200);
  enum { N = 64, T = 4 };
  for (size_t round = 0; round < rounds; round++) {
    cf_future *fs[N], *all, *any;
    for (int i = 0; i < N; i++)
      fs[i] = user_future();
    CU_ASSERT_EQUAL_FATAL(cf_when_all(fs, N, 0, &all), CF_OK);
    CU_ASSERT_EQUAL_FATAL(cf_when_any(fs, N, 0, &any), CF_OK);
    pthread_t th[T];
    racer r[T];
    for (int t = 0; t < T; t++) {
      r[t] = (racer){fs, (size_t)t * N / T, (size_t)(t + 1) * N / T};
      pthread_create(&th[t], NULL, complete_range, &r[t]);
    }
    for (int t = 0; t < T; t++)
      pthread_join(th[t], NULL);
    size_t n = 0;
    const int32_t *st = statuses(all, &n);
    CU_ASSERT_EQUAL_FATAL(n, N);
    for (int i = 0; i < N; i++)
      CU_ASSERT_EQUAL(st[i], i % 3 == 0 ? CF_ECANCELLED : CF_OK);
    CU_ASSERT_EQUAL(cf_future_wait(any, 0), CF_OK);
    for (int i = 0; i < N; i++)
      cf_future_release(fs[i]);
    cf_future_release(all);
    cf_future_release(any);
  }
}

/* Outcome decoding of hostile bytes. -------------------------------------- */

static void test_outcome_parse_refuses(void) {
  cf_outcome o = CF_OUTCOME_INIT;
  unsigned char b[64];
  memset(b, 0, sizeof b);
  CU_ASSERT_EQUAL(cf_outcome_parse(NULL, 24, &o), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_outcome_parse(b, 24, NULL), CF_EINVAL);
  CU_ASSERT_EQUAL(cf_outcome_parse(b, 24, &o), CF_EINVAL); /* no magic */
  cf_outcome small = {.size = 4};
  /* A real encoding, taken from a continuation. */
  cf_future *f = user_future(), *d;
  CU_ASSERT_EQUAL(cf_future_set_error(f, 3, "xy"), CF_OK);
  static unsigned char copy[128];
  static size_t copy_len;
  CU_ASSERT_EQUAL(cf_future_then(f, NULL, describe,
                                 CF_ANY_OUTCOME | CF_RUN_INLINE, &d),
                  CF_OK);
  cf_future_release(d);
  cf_future_release(f);
  /* Build one by hand as the library writes it. */
  uint32_t magic = 0x314f4643u, ml = 3;
  int32_t st = CF_ETASK, code = 3;
  uint64_t dl = 0;
  memcpy(copy, &magic, 4);
  memcpy(copy + 4, &st, 4);
  memcpy(copy + 8, &code, 4);
  memcpy(copy + 12, &ml, 4);
  memcpy(copy + 16, &dl, 8);
  memcpy(copy + 24, "xy", 3);
  copy_len = 27;
  CU_ASSERT_EQUAL(cf_outcome_parse(copy, copy_len, &o), CF_OK);
  CU_ASSERT_EQUAL(o.status, CF_ETASK);
  CU_ASSERT_EQUAL(o.code, 3);
  CU_ASSERT_STRING_EQUAL(o.message, "xy");
  CU_ASSERT_EQUAL(cf_outcome_parse(copy, copy_len, &small), CF_EINVAL);
  /* Every truncation is refused. */
  for (size_t n = 0; n < copy_len; n++)
    CU_ASSERT_EQUAL(cf_outcome_parse(copy, n, &o), CF_EINVAL);
  /* A message without its NUL. */
  copy[26] = 'z';
  CU_ASSERT_EQUAL(cf_outcome_parse(copy, copy_len, &o), CF_EINVAL);
  copy[26] = 0;
  /* Lengths that do not add up, or overflow. */
  ml = 0xffffffffu;
  memcpy(copy + 12, &ml, 4);
  CU_ASSERT_EQUAL(cf_outcome_parse(copy, copy_len, &o), CF_EINVAL);
  ml = 3;
  memcpy(copy + 12, &ml, 4);
  dl = UINT64_MAX;
  memcpy(copy + 16, &dl, 8);
  CU_ASSERT_EQUAL(cf_outcome_parse(copy, copy_len, &o), CF_EINVAL);
  /* Data with a failure, a positive status. */
  dl = 1;
  memcpy(copy + 16, &dl, 8);
  CU_ASSERT_EQUAL(cf_outcome_parse(copy, copy_len + 1, &o), CF_EINVAL);
  dl = 0;
  memcpy(copy + 16, &dl, 8);
  st = 5;
  memcpy(copy + 4, &st, 4);
  CU_ASSERT_EQUAL(cf_outcome_parse(copy, copy_len, &o), CF_EINVAL);
}

CF_TEST_MAIN("compose", CF_TEST(test_then_bad_args),
             CF_TEST(test_then_inline_success), CF_TEST(test_then_on_threads),
             CF_TEST(test_then_on_processes), CF_TEST(test_then_failure_passes),
             CF_TEST(test_then_cancel_passes), CF_TEST(test_then_any_outcome),
             CF_TEST(test_then_derived_cancelled_first),
             CF_TEST(test_then_cancel_sources),
             CF_TEST(test_then_executor_refuses),
             CF_TEST(test_then_million_inline), CF_TEST(test_then_dropped_root),
             CF_TEST(test_then_long_failure),
             CF_TEST(test_wait_in_task_leaves_derived),
             CF_TEST(test_then_drops_executor_on_its_own_thread),
             CF_TEST(test_cancel_sources_long_chain),
             CF_TEST(test_when_bad_args), CF_TEST(test_when_all_mixed),
             CF_TEST(test_when_any_mixed), CF_TEST(test_when_cancel_sources),
             CF_TEST(test_when_source_dropped), CF_TEST(test_when_composes),
             CF_TEST(test_when_race), CF_TEST(test_outcome_parse_refuses))
