/*
 * cfutures composition: what a continuation, when_all / when_any and a
 * completion queue cost, each beside the peer that does the same job
 * without them, measured in the same process run (ratios are peer-free of
 * the machine's noise as far as it goes).
 *
 *  1. A `then` chain of N links on a user future completed at the end:
 *     inline continuations (CF_RUN_INLINE), continuations on a thread pool
 *     (each link a task), N plain cf_submit + cf_future_result on the same
 *     pool, and the chain written by hand with done callbacks and user
 *     futures (recursive: it runs on a thread with a big stack, and the
 *     stack it used is reported).  Each chain passes a counter along and
 *     its end is checked.
 *  2. when_all / when_any over F user futures: create, combine, complete,
 *     wait, release, per future; beside the same without a combinator and
 *     with cf_wait(CF_ALL_COMPLETED).  Then the completing phase alone, with
 *     a second thread blocked meanwhile in cf_future_wait() on the when_all
 *     or in cf_wait(CF_ALL_COMPLETED) on the F futures.
 *  3. Latency from a pool task's end (a CLOCK_MONOTONIC stamp, the task's
 *     last act) to the thread that learns of it: an epoll loop on the
 *     completion queue's descriptor (stamped when pop returns), a thread
 *     blocked in cf_future_wait(), and, as the floor, a raw eventfd that
 *     the task writes itself.  One task in flight; the three interleaved.
 *
 * Output: lines "compose metric value unit" (bench/run.sh takes medians of
 * them over its runs) under '#' headings; ratios are computed within this
 * run ("ratio_a_over_b": a / b).
 *   bench_compose [links=100000] [chain repeats=7] [futures=1000]
 *                 [rounds=201] [latency samples=2000]
 */
#include "bench_util.h"

#include <cfutures.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void report(const char *metric, double value, const char *unit) {
  printf("compose %-36s %12.3f %s\n", metric, value, unit);
  fflush(stdout);
}

static void need(int rc, const char *what) {
  if (rc != CF_OK) {
    fprintf(stderr, "bench_compose: %s: %s\n", what, cf_strerror(rc));
    exit(1);
  }
}

static cf_executor *pool(int workers) {
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = workers;
  cf_executor *ex;
  need(cf_thread_pool_create(&o, &ex), "thread pool");
  return ex;
}

static uint64_t result_u64(cf_future *f) {
  const void *d;
  size_t n;
  uint64_t v;
  need(cf_future_result(f, CF_FOREVER, &d, &n), "result");
  if (n != sizeof v) {
    fprintf(stderr, "bench_compose: result of %zu bytes\n", n);
    exit(1);
  }
  memcpy(&v, d, sizeof v);
  return v;
}

static void check(uint64_t got, uint64_t want, const char *what) {
  if (got != want) {
    fprintf(stderr, "bench_compose: %s ended at %llu, not %llu\n", what,
            (unsigned long long)got, (unsigned long long)want);
    exit(1);
  }
}

/* A link: its input (8 bytes) plus one. */
static int step(cf_task *t, const void *in, size_t len) {
  uint64_t v = 0;
  if (len == sizeof v)
    memcpy(&v, in, sizeof v);
  v++;
  return cf_task_return(t, &v, sizeof v);
}

/* ---- 1. chains ----------------------------------------------------------- */

typedef struct chain_run {
  size_t n;
  double build_s, run_s; /* creating the chain; completing it */
  size_t stack_bytes;    /* hand-written chain: stack used */
} chain_run;

/* then, CF_RUN_INLINE (ex NULL) or on ex: the source is a user future
 * completed after the whole chain is built; the links' handles are
 * released as it is built (the chain holds what it needs). */
static void then_chain(chain_run *r, cf_executor *ex) {
  cf_future *src, *prev, *f;
  double t0 = bench_now();
  need(cf_future_create(&src), "create");
  prev = cf_future_retain(src);
  for (size_t i = 0; i < r->n; i++) {
    need(cf_future_then(prev, ex, step, ex ? 0 : CF_RUN_INLINE, &f), "then");
    cf_future_release(prev);
    prev = f;
  }
  double t1 = bench_now();
  uint64_t zero = 0;
  need(cf_future_set_result(src, &zero, sizeof zero), "set_result");
  need(cf_future_wait(prev, CF_FOREVER), "wait");
  double t2 = bench_now();
  check(result_u64(prev), r->n, "then chain");
  cf_future_release(prev);
  cf_future_release(src);
  r->build_s = t1 - t0;
  r->run_s = t2 - t1;
}

/* The chain by hand: futures hc[0..n], a done callback on hc[i] completes
 * hc[i + 1] with hc[i]'s value plus one.  Completing hc[0] recurses n
 * deep: each set_result runs the next callback before it returns. */
static cf_future **hc;
static uintptr_t hc_lowest;

static void hand_cb(cf_future *f, void *arg) {
  size_t i = (size_t)(uintptr_t)arg;
  volatile char here;
  if ((uintptr_t)&here < hc_lowest)
    hc_lowest = (uintptr_t)&here;
  uint64_t v = result_u64(f) + 1;
  need(cf_future_set_result(hc[i + 1], &v, sizeof v), "set_result");
  if (i > 0) /* the chain's own reference to its inner futures */
    cf_future_release(f);
}

static void hand_chain(chain_run *r) {
  size_t n = r->n;
  hc = malloc((n + 1) * sizeof *hc);
  if (!hc)
    exit(1);
  volatile char top;
  hc_lowest = (uintptr_t)&top;
  double t0 = bench_now();
  for (size_t i = 0; i <= n; i++)
    need(cf_future_create(&hc[i]), "create");
  for (size_t i = 0; i < n; i++)
    need(cf_future_add_done_callback(hc[i], hand_cb, (void *)(uintptr_t)i),
         "add_done_callback");
  double t1 = bench_now();
  uint64_t zero = 0;
  need(cf_future_set_result(hc[0], &zero, sizeof zero), "set_result");
  need(cf_future_wait(hc[n], CF_FOREVER), "wait");
  double t2 = bench_now();
  check(result_u64(hc[n]), n, "hand chain");
  cf_future_release(hc[0]);
  cf_future_release(hc[n]);
  free(hc);
  r->build_s = t1 - t0;
  r->run_s = t2 - t1;
  r->stack_bytes = (size_t)((uintptr_t)&top - hc_lowest);
}

/* Both chains on user futures run, repeat after repeat, on one thread with
 * a stack big enough for the recursion of the hand-written one (reserved,
 * touched only as used): the same thread, so the same malloc arena. */
typedef struct user_chains {
  size_t n, reps;
  chain_run *inl, *hand; /* [reps] each */
} user_chains;

static void *user_chains_thread(void *arg) {
  user_chains *u = arg;
  for (size_t k = 0; k < u->reps; k++) {
    u->inl[k].n = u->hand[k].n = u->n;
    then_chain(&u->inl[k], NULL);
    hand_chain(&u->hand[k]);
  }
  return NULL;
}

static void on_big_stack(user_chains *u) {
  pthread_attr_t a;
  pthread_t th;
  size_t stack = u->n * 2048 + ((size_t)64 << 20);
  pthread_attr_init(&a);
  if (pthread_attr_setstacksize(&a, stack) != 0 ||
      pthread_create(&th, &a, user_chains_thread, u) != 0) {
    fprintf(stderr, "bench_compose: no thread with %zu MB of stack\n",
            stack >> 20);
    exit(1);
  }
  pthread_join(th, NULL);
  pthread_attr_destroy(&a);
}

/* N tasks of `step` submitted, then every result collected. */
static double submit_collect(cf_executor *ex, size_t n) {
  cf_future **fs = malloc(n * sizeof *fs);
  if (!fs)
    exit(1);
  double t0 = bench_now();
  for (size_t i = 0; i < n; i++) {
    uint64_t v = i;
    need(cf_submit(ex, step, &v, sizeof v, &fs[i]), "submit");
  }
  for (size_t i = 0; i < n; i++) {
    check(result_u64(fs[i]), i + 1, "submit");
    cf_future_release(fs[i]);
  }
  double dt = bench_now() - t0;
  free(fs);
  return dt;
}

static void chains(size_t n, size_t reps) {
  double *v = malloc(10 * reps * sizeof *v);
  double *in_tot = v, *in_run = v + reps, *hd_tot = v + 2 * reps,
         *hd_run = v + 3 * reps, *pl_tot = v + 4 * reps, *sub = v + 5 * reps,
         *r_inline = v + 6 * reps, *r_pool = v + 7 * reps, *stk = v + 8 * reps,
         *r_inline_run = v + 9 * reps;
  cf_executor *ex = pool(2);
  printf("# 1. then chains: %zu links, %zu repeats (medians); thread pool of "
         "2 workers\n",
         n, reps);
  double per = 1e9 / (double)n;
  chain_run *runs = calloc(3 * reps, sizeof *runs);
  user_chains u = {n, reps, runs, runs + reps};
  on_big_stack(&u);
  for (size_t k = 0; k < reps; k++) {
    chain_run *a = &u.inl[k], *b = &u.hand[k], *c = &runs[2 * reps + k];
    c->n = n;
    then_chain(c, ex);
    double s = submit_collect(ex, n);
    in_tot[k] = (a->build_s + a->run_s) * per;
    in_run[k] = a->run_s * per;
    hd_tot[k] = (b->build_s + b->run_s) * per;
    hd_run[k] = b->run_s * per;
    pl_tot[k] = (c->build_s + c->run_s) * per;
    sub[k] = s * per;
    r_inline[k] = in_tot[k] / hd_tot[k];
    r_inline_run[k] = in_run[k] / hd_run[k];
    r_pool[k] = pl_tot[k] / sub[k];
    stk[k] = (double)b->stack_bytes / (double)n;
  }
  free(runs);
  cf_executor_release(ex);
  report("then_inline_ns_per_link", bench_median(in_tot, reps), "ns");
  report("then_inline_run_ns_per_link", bench_median(in_run, reps), "ns");
  report("callback_chain_ns_per_link", bench_median(hd_tot, reps), "ns");
  report("callback_chain_run_ns_per_link", bench_median(hd_run, reps), "ns");
  report("callback_chain_stack_B_per_link", bench_median(stk, reps), "B");
  report("then_pool_ns_per_link", bench_median(pl_tot, reps), "ns");
  report("submit_result_ns_per_task", bench_median(sub, reps), "ns");
  report("ratio_then_inline_over_callbacks", bench_median(r_inline, reps), "x");
  report("ratio_then_inline_run_over_callbacks",
         bench_median(r_inline_run, reps), "x");
  report("ratio_then_pool_over_submit", bench_median(r_pool, reps), "x");
  free(v);
}

/* ---- 2. when_all / when_any ---------------------------------------------- */

enum { W_NONE, W_ALL, W_ANY, W_WAIT };

/* One round, whole: create nf user futures, combine them (or not), complete
 * them in order, wait, release. */
static double combine_round(cf_future **fs, size_t nf, int how) {
  double t0 = bench_now();
  for (size_t i = 0; i < nf; i++)
    need(cf_future_create(&fs[i]), "create");
  cf_future *w = NULL;
  if (how == W_ALL)
    need(cf_when_all(fs, nf, 0, &w), "when_all");
  else if (how == W_ANY)
    need(cf_when_any(fs, nf, 0, &w), "when_any");
  for (size_t i = 0; i < nf; i++)
    need(cf_future_set_result(fs[i], NULL, 0), "set_result");
  if (w) {
    const void *d;
    size_t len;
    need(cf_future_result(w, CF_FOREVER, &d, &len), "combined result");
    size_t want = how == W_ALL ? nf * sizeof(int32_t)
                               : sizeof(cf_when_any_result);
    if (len != want)
      exit(1);
  } else if (how == W_WAIT) {
    size_t nd = 0;
    need(cf_wait(fs, nf, CF_FOREVER, CF_ALL_COMPLETED, NULL, &nd), "wait");
    if (nd != nf)
      exit(1);
  }
  for (size_t i = 0; i < nf; i++)
    cf_future_release(fs[i]);
  cf_future_release(w);
  return bench_now() - t0;
}

/* The completing phase with a second thread blocked meanwhile: in
 * cf_future_wait() on a when_all, or in cf_wait(CF_ALL_COMPLETED). */
typedef struct blocked {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int go; /* rounds started */
  int quit;
  cf_future **fs; /* the round's futures */
  size_t nf;
  cf_future *w;    /* the when_all, or NULL: cf_wait */
  double returned; /* when the wait returned */
  int done;        /* rounds finished */
} blocked;

static void *blocked_thread(void *arg) {
  blocked *b = arg;
  int seen = 0;
  for (;;) {
    pthread_mutex_lock(&b->mu);
    while (b->go == seen && !b->quit)
      pthread_cond_wait(&b->cv, &b->mu);
    if (b->quit) {
      pthread_mutex_unlock(&b->mu);
      return NULL;
    }
    seen = b->go;
    cf_future **fs = b->fs, *w = b->w;
    size_t nf = b->nf;
    pthread_mutex_unlock(&b->mu);
    if (w)
      need(cf_future_wait(w, CF_FOREVER), "wait");
    else
      need(cf_wait(fs, nf, CF_FOREVER, CF_ALL_COMPLETED, NULL, NULL), "wait");
    double t = bench_now();
    pthread_mutex_lock(&b->mu);
    b->returned = t;
    b->done = seen;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
  }
}

static double blocked_round(blocked *b, cf_future **fs, size_t nf,
                            bool when_all) {
  for (size_t i = 0; i < nf; i++)
    need(cf_future_create(&fs[i]), "create");
  cf_future *w = NULL;
  if (when_all)
    need(cf_when_all(fs, nf, 0, &w), "when_all");
  pthread_mutex_lock(&b->mu);
  b->fs = fs;
  b->nf = nf;
  b->w = w;
  int round = ++b->go;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
  /* Time for the waiter to block (it has nothing else to do). */
  struct timespec nap = {0, 2000000};
  nanosleep(&nap, NULL);
  double t0 = bench_now();
  for (size_t i = 0; i < nf; i++)
    need(cf_future_set_result(fs[i], NULL, 0), "set_result");
  pthread_mutex_lock(&b->mu);
  while (b->done != round)
    pthread_cond_wait(&b->cv, &b->mu);
  double t1 = b->returned;
  pthread_mutex_unlock(&b->mu);
  for (size_t i = 0; i < nf; i++)
    cf_future_release(fs[i]);
  cf_future_release(w);
  return t1 - t0;
}

static void combinators(size_t nf, size_t rounds) {
  cf_future **fs = malloc(nf * sizeof *fs);
  double *v = malloc(9 * rounds * sizeof *v);
  double *none = v, *all = v + rounds, *any = v + 2 * rounds,
         *wait = v + 3 * rounds, *ball = v + 4 * rounds,
         *bwait = v + 5 * rounds, *r_all = v + 6 * rounds,
         *r_any = v + 7 * rounds, *r_blk = v + 8 * rounds;
  printf("# 2. when_all / when_any: %zu user futures, %zu rounds (medians); "
         "ns per future\n",
         nf, rounds);
  blocked b = {PTHREAD_MUTEX_INITIALIZER,
               PTHREAD_COND_INITIALIZER,
               0,
               0,
               NULL,
               0,
               NULL,
               0,
               0};
  pthread_t th;
  if (pthread_create(&th, NULL, blocked_thread, &b) != 0)
    exit(1);
  double per = 1e9 / (double)nf;
  for (size_t k = 0; k < rounds; k++) {
    none[k] = combine_round(fs, nf, W_NONE) * per;
    all[k] = combine_round(fs, nf, W_ALL) * per;
    any[k] = combine_round(fs, nf, W_ANY) * per;
    wait[k] = combine_round(fs, nf, W_WAIT) * per;
    r_all[k] = all[k] / wait[k];
    r_any[k] = any[k] / wait[k];
  }
  /* Fewer rounds here: each one naps 2 ms twice. */
  size_t br = rounds < 101 ? rounds : 101;
  for (size_t k = 0; k < br; k++) {
    ball[k] = blocked_round(&b, fs, nf, true) * per;
    bwait[k] = blocked_round(&b, fs, nf, false) * per;
    r_blk[k] = ball[k] / bwait[k];
  }
  pthread_mutex_lock(&b.mu);
  b.quit = 1;
  pthread_cond_broadcast(&b.cv);
  pthread_mutex_unlock(&b.mu);
  pthread_join(th, NULL);
  report("no_combinator_ns_per_future", bench_median(none, rounds), "ns");
  report("when_all_ns_per_future", bench_median(all, rounds), "ns");
  report("when_any_ns_per_future", bench_median(any, rounds), "ns");
  report("cf_wait_all_ns_per_future", bench_median(wait, rounds), "ns");
  report("ratio_when_all_over_cf_wait", bench_median(r_all, rounds), "x");
  report("ratio_when_any_over_cf_wait", bench_median(r_any, rounds), "x");
  printf("#    completing phase only, %zu rounds, a 2nd thread blocked in "
         "the wait\n",
         br);
  report("when_all_blocked_ns_per_future", bench_median(ball, br), "ns");
  report("cf_wait_blocked_ns_per_future", bench_median(bwait, br), "ns");
  report("ratio_when_all_over_cf_wait_blocked", bench_median(r_blk, br), "x");
  free(v);
  free(fs);
}

/* ---- 3. latency -----------------------------------------------------------
 */

/* The task: naps (so that the waiting side is asleep by the end), then
 * stamps CLOCK_MONOTONIC into its result as its last act; with an eventfd
 * as input (raw peer), writes it after the stamp. */
static int stamp_task(cf_task *t, const void *in, size_t len) {
  int fd = -1;
  if (len == sizeof fd)
    memcpy(&fd, in, sizeof fd);
  uint64_t *out = cf_task_return_buffer(t, sizeof *out);
  if (!out)
    return 1;
  struct timespec nap = {0, 100000};
  nanosleep(&nap, NULL);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  *out = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  if (fd >= 0 && eventfd_write(fd, 1) != 0)
    return 1;
  return 0;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double p99(double *v, size_t n) {
  /* v sorted (bench_median sorts) */
  size_t i = (size_t)((double)n * 0.99);
  return v[i < n ? i : n - 1];
}

static void latency(size_t n) {
  cf_executor *ex = pool(1);
  cf_completion_queue *q;
  need(cf_completion_queue_create(&q), "completion queue");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event e = {.events = EPOLLIN};
  e.data.u32 = 0;
  if (ep < 0 || efd < 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, cf_completion_queue_fd(q), &e) != 0)
    exit(1);
  e.data.u32 = 1;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &e) != 0)
    exit(1);
  size_t warm = n / 20;
  double *v = malloc(3 * n * sizeof *v);
  double *lq = v, *lw = v + n, *lr = v + 2 * n;
  printf("# 3. latency, task end -> waiter: %zu samples each (after %zu "
         "warm-up), one task in flight, pool of 1 worker; us\n",
         n, warm);
  for (size_t k = 0; k < n + warm; k++) {
    cf_future *f, *g;
    struct epoll_event got;
    /* the completion queue, in an epoll loop */
    need(cf_submit(ex, stamp_task, NULL, 0, &f), "submit");
    need(cf_completion_queue_add(q, f, NULL), "cq add");
    cf_future_release(f);
    uint64_t t1;
    for (;;) {
      if (epoll_wait(ep, &got, 1, -1) != 1 || got.data.u32 != 0)
        continue;
      if (cf_completion_queue_pop(q, &g, NULL) == CF_OK)
        break;
    }
    t1 = now_ns();
    double a = (double)(t1 - result_u64(g)) * 1e-3;
    cf_future_release(g);
    /* a thread blocked in cf_future_wait() */
    need(cf_submit(ex, stamp_task, NULL, 0, &f), "submit");
    need(cf_future_wait(f, CF_FOREVER), "wait");
    t1 = now_ns();
    double b = (double)(t1 - result_u64(f)) * 1e-3;
    cf_future_release(f);
    /* the floor: the task writes an eventfd after its stamp */
    need(cf_submit(ex, stamp_task, &efd, sizeof efd, &f), "submit");
    for (;;) {
      if (epoll_wait(ep, &got, 1, -1) != 1 || got.data.u32 != 1)
        continue;
      eventfd_t x;
      if (eventfd_read(efd, &x) == 0)
        break;
    }
    t1 = now_ns();
    double c = (double)(t1 - result_u64(f)) * 1e-3;
    cf_future_release(f);
    if (k >= warm) {
      lq[k - warm] = a;
      lw[k - warm] = b;
      lr[k - warm] = c;
    }
  }
  double mq = bench_median(lq, n), mw = bench_median(lw, n),
         mr = bench_median(lr, n);
  report("cq_epoll_latency_median_us", mq, "us");
  report("cq_epoll_latency_p99_us", p99(lq, n), "us");
  report("future_wait_latency_median_us", mw, "us");
  report("future_wait_latency_p99_us", p99(lw, n), "us");
  report("raw_eventfd_latency_median_us", mr, "us");
  report("raw_eventfd_latency_p99_us", p99(lr, n), "us");
  report("ratio_cq_over_wait_median", mq / mw, "x");
  report("ratio_cq_over_wait_p99", p99(lq, n) / p99(lw, n), "x");
  report("ratio_cq_over_raw_eventfd_median", mq / mr, "x");
  close(efd);
  close(ep);
  cf_completion_queue_destroy(q);
  cf_executor_release(ex);
  free(v);
}

int main(int argc, char **argv) {
  size_t links = bench_arg(argc, argv, 1, 100000);
  size_t reps = bench_arg(argc, argv, 2, 7);
  size_t nf = bench_arg(argc, argv, 3, 1000);
  size_t rounds = bench_arg(argc, argv, 4, 201);
  size_t samples = bench_arg(argc, argv, 5, 2000);
  if (!links || !reps || !nf || !rounds || samples < 20) {
    fprintf(stderr, "usage: bench_compose [links] [repeats] [futures] "
                    "[rounds] [samples >= 20]\n");
    return 2;
  }
  chains(links, reps);
  combinators(nf, rounds);
  latency(samples);
  return 0;
}
