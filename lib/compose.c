/*
 * Futures made from futures: cf_future_then(), cf_when_all(), cf_when_any().
 *
 * Each derived future is an internal future (not user-completable) with a
 * record registered as a done callback on its sources.  When a source
 * completes, its callback does not complete the derived future right there:
 * it hands the record to this thread's trampoline.  The outermost
 * trampoline on a thread runs records one after the other, so completing
 * one link of a chain that completes the next (an inline continuation, a
 * failure passed on, when_all of when_all...) adds a record to the list
 * instead of a stack frame: a chain of any length runs in constant stack.
 *
 * A record is used exactly once: fired by its source's callback, or
 * disposed when the source is freed still pending (a user future dropped
 * uncompleted), which cancels what derives from it rather than leave it
 * pending forever.
 */
#include "internal.h"
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

/* ---- the trampoline ------------------------------------------------------ */

typedef struct cf__deferred {
  struct cf__deferred *next;
  void (*run)(struct cf__deferred *d);
} cf__deferred;

static _Thread_local struct {
  cf__deferred *head, *tail;
  bool active;
} cf__tramp;

/* Runs d now, or after what this thread is running already. */
static void cf__trampoline(cf__deferred *d) {
  d->next = NULL;
  if (cf__tramp.active) {
    if (cf__tramp.tail)
      cf__tramp.tail->next = d;
    else
      cf__tramp.head = d;
    cf__tramp.tail = d;
    return;
  }
  cf__tramp.active = true;
  for (;;) {
    d->run(d);
    d = cf__tramp.head;
    if (!d)
      break;
    cf__tramp.head = d->next;
    if (!cf__tramp.head)
      cf__tramp.tail = NULL;
  }
  cf__tramp.active = false;
}

void cf__trampoline_drain(void) {
  /* Only inside a trampoline: the outer record's run() is on this stack,
   * so the records queued after it would wait for the blocking call that
   * is about to be made; one of them may be what it waits for. */
  cf__deferred *d;
  while (cf__tramp.active && (d = cf__tramp.head)) {
    cf__tramp.head = d->next;
    if (!cf__tramp.head)
      cf__tramp.tail = NULL;
    d->run(d);
  }
}

/* A derived future: PENDING, with one reference, owned (for the checks of
 * waits that would wait for themselves) by `owner`. */
static cf_future *cf__derived_new(cf_task_fn fn, cf_executor *owner) {
  cf_future *d = cf__future_alloc(fn);
  if (d) {
    d->owner = owner;
    atomic_store_explicit(&d->state, CF_PENDING | CF__F_DERIVED,
                          memory_order_relaxed);
  }
  return d;
}

/* Ends d as the source ended without success: the same state, status,
 * code and message.  The message is copied; without memory for it the
 * status still passes. */
static void cf__derived_pass(cf_future *d, cf_future *src) {
  int st = cf__future_status(src);
  if (st == CF_ECANCELLED) {
    cf_future_cancel(d);
    return;
  }
  cf__future_fail(d, st, src->errcode,
                  src->errmsg ? cf__strdup(src->errmsg) : NULL);
}

/* ---- outcomes (CF_ANY_OUTCOME) --------------------------------------------
 */

/* The encoding a CF_ANY_OUTCOME continuation receives, little or big
 * endian as the host (it never leaves the machine: a worker process is the
 * same program):
 *   u32 magic, i32 status, i32 code, u32 msg_len (with its NUL, 0: none),
 *   u64 data_len, msg_len bytes of message, data_len bytes of result. */
#define CF__OUTCOME_MAGIC 0x314f4643u /* "CFO1" */
#define CF__OUTCOME_HDR 24

static int cf__outcome_encode(cf_future *src, cf__buf *b) {
  int st = cf__future_status(src);
  const char *msg = st != CF_OK && st != CF_ECANCELLED ? src->errmsg : NULL;
  size_t mlen = msg ? strlen(msg) + 1 : 0;
  size_t dlen = st == CF_OK ? cf__buf_len(&src->out) : 0;
  if (mlen > UINT32_MAX || dlen > SIZE_MAX - CF__OUTCOME_HDR - mlen)
    return CF_ENOMEM;
  size_t n = CF__OUTCOME_HDR + mlen + dlen;
  unsigned char *p = cf__malloc(n);
  if (!p)
    return CF_ENOMEM;
  uint32_t magic = CF__OUTCOME_MAGIC, ml = (uint32_t)mlen;
  int32_t status = st,
          code = st == CF_OK || st == CF_ECANCELLED ? 0 : src->errcode;
  uint64_t dl = dlen;
  memcpy(p, &magic, 4);
  memcpy(p + 4, &status, 4);
  memcpy(p + 8, &code, 4);
  memcpy(p + 12, &ml, 4);
  memcpy(p + 16, &dl, 8);
  if (mlen)
    memcpy(p + CF__OUTCOME_HDR, msg, mlen);
  if (dlen)
    memcpy(p + CF__OUTCOME_HDR + mlen, cf__buf_data(&src->out), dlen);
  cf__buf_adopt(b, p, n, free);
  return CF_OK;
}

#define CF__OUTCOME_V1 CF__V1_SIZE(cf_outcome, len)
_Static_assert(sizeof(cf_outcome) == CF__OUTCOME_V1,
               "cf_outcome ends with padding");

int cf_outcome_parse(const void *in, size_t len, cf_outcome *out) {
  if (!in || cf__out_check(out, CF__OUTCOME_V1) != CF_OK ||
      len < CF__OUTCOME_HDR)
    return CF_EINVAL;
  const unsigned char *p = in;
  uint32_t magic, ml;
  int32_t status, code;
  uint64_t dl;
  memcpy(&magic, p, 4);
  memcpy(&status, p + 4, 4);
  memcpy(&code, p + 8, 4);
  memcpy(&ml, p + 12, 4);
  memcpy(&dl, p + 16, 8);
  size_t rest = len - CF__OUTCOME_HDR;
  if (magic != CF__OUTCOME_MAGIC || ml > rest || dl != rest - ml ||
      status > 0 || (ml && p[CF__OUTCOME_HDR + ml - 1] != '\0') ||
      (status != CF_OK && dl))
    return CF_EINVAL;
  cf_outcome o = CF_OUTCOME_INIT;
  o.status = status;
  o.code = code;
  o.message = ml ? (const char *)p + CF__OUTCOME_HDR : NULL;
  o.data = dl ? p + CF__OUTCOME_HDR + ml : NULL;
  o.len = (size_t)dl;
  cf__out_copy(out, &o, sizeof o);
  return CF_OK;
}

/* ---- CF_CANCEL_SOURCES ------------------------------------------------------
 */

/* A callback on the derived future that, when it was cancelled, asks its
 * sources to stop.  It runs on the trampoline too, so a cancelled chain
 * cancels upwards link by link in constant stack.  A source running in
 * worker processes needs its pool to pass the request on: the record holds
 * that pool while the source may still run. */
typedef struct cf__cancel_up {
  cf__deferred node;
  bool cancel;
  size_t n;
  struct {
    cf_future *f;
    cf_executor *pool; /* referenced, for a remote source; else NULL */
  } srcs[];
} cf__cancel_up;

static void cf__cancel_up_free(cf__cancel_up *c) {
  for (size_t i = 0; c && i < c->n; i++) {
    if (c->cancel)
      cf_future_request_stop(c->srcs[i].f);
    cf_future_release(c->srcs[i].f);
    cf_executor_release(c->srcs[i].pool);
  }
  free(c);
}

static void cf__cancel_up_run(cf__deferred *node) {
  cf__cancel_up_free((cf__cancel_up *)node);
}

static void cf__cancel_up_cb(cf_future *d, void *arg) {
  cf__cancel_up *c = arg;
  c->cancel = cf_future_cancelled(d);
  cf__trampoline(&c->node);
}

/* The derived future was freed still pending (its executor inherited
 * through fork()): nothing was cancelled, the references go. */
static void cf__cancel_up_dispose(void *arg) {
  cf__cancel_up *c = arg;
  c->cancel = false;
  cf__trampoline(&c->node);
}

static cf__cancel_up *cf__cancel_up_new(cf_future *const *fs, size_t n) {
  cf__cancel_up *c = cf__malloc(sizeof *c + n * sizeof c->srcs[0]);
  if (!c)
    return NULL;
  c->node.run = cf__cancel_up_run;
  c->cancel = false;
  c->n = n;
  for (size_t i = 0; i < n; i++) {
    uint32_t s = atomic_load_explicit(&fs[i]->state, memory_order_acquire);
    c->srcs[i].f = cf_future_retain(fs[i]);
    c->srcs[i].pool = (s & CF__F_REMOTE) && !CF__ST_DONE(s)
                          ? cf_executor_retain(fs[i]->owner)
                          : NULL;
  }
  return c;
}

/* ---- cf_future_then() ------------------------------------------------------
 */

typedef struct cf__then {
  cf__deferred node;
  cf_future *src;   /* the source, referenced while the record runs */
  cf_future *d;     /* the derived future: the record's reference */
  cf_executor *ex;  /* referenced; NULL: inline */
  cf__listener *lx; /* for d: drops the executor once d is done */
  unsigned flags;
} cf__then;

static void cf__then_free(cf__then *r) {
  cf_future_release(r->src);
  cf_future_release(r->d);
  cf_executor_release(r->ex);
  free(r->lx);
  free(r);
}

/* Once a continuation is handed to its executor, a reference to the
 * executor goes with it and is dropped when it is done: on the executor's
 * own worker (or manager), where dropping the last reference is allowed,
 * not on whatever thread completed the source, which would then wait for
 * the executor to drain (perhaps for itself). */
static void cf__drop_executor_cb(cf_future *d, void *arg) {
  CF__UNUSED(d);
  cf_executor_release(arg);
}

/* Runs fn on this thread for d, whose input is set. */
static void cf__then_inline(cf__then *r) {
  cf_future *d = r->d;
  if (!cf__future_start(d)) {
    cf__buf_free(&d->in); /* cancelled meanwhile */
    return;
  }
  cf_task t;
  cf__future_finish(d, cf__future_invoke(d, &t), &t);
}

/* Hands d, whose input is set, to the executor. */
static void cf__then_submit(cf__then *r) {
  cf_future *d = r->d;
  cf__future_add_listener(d, r->lx, cf__drop_executor_cb,
                          cf_executor_retain(r->ex), NULL);
  r->lx = NULL;
  cf_future_retain(d); /* the executor's */
  int rc = cf__submit_prepared(r->ex, d);
  if (rc != CF_OK) {
    cf_future_release(d);
    cf__buf_free(&d->in);
    if (rc != CF_ECANCELLED) /* cancelled meanwhile: it stays so */
      cf__future_fail(d, rc, 0, NULL);
  }
  /* r->ex, ours, kept the executor alive across the submit. */
}

static void cf__then_run(cf__deferred *node) {
  cf__then *r = (cf__then *)node;
  cf_future *src = r->src, *d = r->d;
  if (!src) {
    cf_future_cancel(d); /* its source was freed pending: it never will */
  } else if (cf_future_done(d)) {
    /* cancelled before its source completed: fn never runs */
  } else if (cf__future_status(src) != CF_OK && !(r->flags & CF_ANY_OUTCOME)) {
    cf__derived_pass(d, src);
  } else {
    int rc = r->flags & CF_ANY_OUTCOME
                 ? cf__outcome_encode(src, &d->in)
                 : cf__buf_copy(&d->in, cf__buf_data(&src->out),
                                cf__buf_len(&src->out));
    if (rc != CF_OK)
      cf__future_fail(d, rc, 0, NULL);
    else if (!r->ex)
      cf__then_inline(r);
    else
      cf__then_submit(r);
  }
  cf__then_free(r);
}

static void cf__then_cb(cf_future *src, void *arg) {
  cf__then *r = arg;
  r->src = cf_future_retain(src);
  cf__trampoline(&r->node);
}

static void cf__then_dispose(void *arg) {
  cf__then *r = arg;
  r->src = NULL;
  cf__trampoline(&r->node);
}

#define CF__THEN_FLAGS (CF_RUN_INLINE | CF_ANY_OUTCOME | CF_CANCEL_SOURCES)

int cf_future_then(cf_future *src, cf_executor *ex, cf_task_fn fn,
                   unsigned flags, cf_future **out) {
  if (out)
    *out = NULL;
  if (!src || !fn || !out || (flags & ~CF__THEN_FLAGS) ||
      (!ex && !(flags & CF_RUN_INLINE)))
    return CF_EINVAL;
  if (flags & CF_RUN_INLINE)
    ex = NULL;
  if (ex && cf__inherited(ex))
    return CF_EBROKEN;
  /* Everything is allocated before anything is registered: once a
   * callback is on the source, nothing may fail. */
  cf__then *r = cf__malloc(sizeof *r);
  cf__listener *l = cf__malloc(sizeof *l);
  cf__listener *lx = ex ? cf__malloc(sizeof *lx) : NULL;
  cf__listener *lc = flags & CF_CANCEL_SOURCES ? cf__malloc(sizeof *lc) : NULL;
  cf__cancel_up *c = lc ? cf__cancel_up_new(&src, 1) : NULL;
  cf_future *d = cf__derived_new(fn, ex ? ex : src->owner);
  if (!r || !l || !d || (ex && !lx) || ((flags & CF_CANCEL_SOURCES) && !c)) {
    cf__cancel_up_free(c);
    free(r);
    free(l);
    free(lx);
    free(lc);
    cf_future_release(d);
    return CF_ENOMEM;
  }
  r->node.run = cf__then_run;
  r->src = NULL;
  r->d = cf_future_retain(d); /* the caller's and the record's */
  r->ex = cf_executor_retain(ex);
  r->lx = lx;
  r->flags = flags;
  *out = d;
  if (c)
    cf__future_add_listener(d, lc, cf__cancel_up_cb, c, cf__cancel_up_dispose);
  cf__future_add_listener(src, l, cf__then_cb, r, cf__then_dispose);
  return CF_OK;
}

/* ---- cf_when_all(), cf_when_any() -----------------------------------------
 */

typedef struct cf__when cf__when;

/* A source's callback argument: the record and the source's position. */
typedef struct cf__when_slot {
  cf__when *w;
  size_t i;
} cf__when_slot;

struct cf__when {
  cf__deferred node;
  cf_future *d;        /* the record's reference */
  _Atomic size_t left; /* sources whose callback has not fired */
  _Atomic size_t refs; /* when_any: the slots not fired + the completion */
  _Atomic bool won;    /* when_any: a source completed */
  bool any;
  size_t n;
  cf_when_any_result first;
  int32_t *status; /* when_all: each source's final status: d's result */
  cf__when_slot slots[];
};

static void cf__when_free(cf__when *w) {
  cf_future_release(w->d);
  free(w->status);
  free(w);
}

static void cf__when_unref(cf__when *w) {
  if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1)
    cf__when_free(w);
}

/* Completes the derived future (on the trampoline). */
static void cf__when_run(cf__deferred *node) {
  cf__when *w = (cf__when *)node;
  cf__buf out;
  out.len_ = 0;
  if (w->any) {
    cf__buf_copy(&out, &w->first, sizeof w->first); /* inline: cannot fail */
  } else if (w->n) {
    cf__buf_adopt(&out, w->status, w->n * sizeof *w->status, free);
    w->status = NULL;
  }
  if (cf__future_succeed(w->d, &out) != CF_OK)
    cf__buf_free(&out); /* it was cancelled first */
  if (w->any)
    cf__when_unref(w);
  else
    cf__when_free(w);
}

/* A source is done (f), or was freed pending (f NULL: as cancelled). */
static void cf__when_fired(cf__when_slot *s, cf_future *f) {
  cf__when *w = s->w;
  int st = f ? cf__future_status(f) : CF_ECANCELLED;
  if (!w->any) {
    w->status[s->i] = st;
    if (atomic_fetch_sub_explicit(&w->left, 1, memory_order_acq_rel) == 1)
      cf__trampoline(&w->node);
    return;
  }
  if (!atomic_exchange(&w->won, true)) {
    w->first.index = s->i;
    w->first.status = st;
    w->first.code = f && cf_future_state(f) == CF_FINISHED ? f->errcode : 0;
    cf__trampoline(&w->node);
  }
  cf__when_unref(w);
}

static void cf__when_cb(cf_future *f, void *arg) { cf__when_fired(arg, f); }
static void cf__when_dispose(void *arg) { cf__when_fired(arg, NULL); }

static int cf__when_make(cf_future *const *fs, size_t n, unsigned flags,
                         bool any, cf_future **out) {
  if (out)
    *out = NULL;
  if (!out || (n && !fs) || (flags & ~(unsigned)CF_CANCEL_SOURCES) ||
      (any && n == 0) || n > SIZE_MAX / 4 / sizeof(cf__when_slot))
    return CF_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!fs[i])
      return CF_EINVAL;
  /* The owner, for the checks of waits that would wait for themselves:
   * the sources' executor when they all share one. */
  cf_executor *owner = n ? fs[0]->owner : NULL;
  for (size_t i = 1; i < n && owner; i++)
    if (fs[i]->owner != owner)
      owner = NULL;
  /* Everything is allocated before anything is registered. */
  cf__when *w = cf__malloc(sizeof *w + n * sizeof(cf__when_slot));
  cf__listener **ls = cf__calloc(n ? n : 1, sizeof *ls);
  bool ok = w && ls;
  if (w)
    w->status = !any && n ? cf__calloc(n, sizeof *w->status) : NULL;
  ok = ok && (any || !n || w->status);
  for (size_t i = 0; ok && i < n; i++)
    ok = (ls[i] = cf__malloc(sizeof *ls[i])) != NULL;
  cf__listener *lc = NULL;
  cf__cancel_up *c = NULL;
  if (ok && (flags & CF_CANCEL_SOURCES) && n) {
    lc = cf__malloc(sizeof *lc);
    c = lc ? cf__cancel_up_new(fs, n) : NULL;
    ok = c != NULL;
  }
  cf_future *d = ok ? cf__derived_new(NULL, owner) : NULL;
  if (!d) {
    cf__cancel_up_free(c);
    free(lc);
    for (size_t i = 0; ls && i < n; i++)
      free(ls[i]);
    free(ls);
    if (w)
      free(w->status);
    free(w);
    return CF_ENOMEM;
  }
  w->node.run = cf__when_run;
  w->d = cf_future_retain(d); /* the caller's and the record's */
  w->any = any;
  w->n = n;
  atomic_init(&w->left, n);
  atomic_init(&w->refs, n + 1);
  atomic_init(&w->won, false);
  memset(&w->first, 0, sizeof w->first);
  for (size_t i = 0; i < n; i++) {
    w->slots[i].w = w;
    w->slots[i].i = i;
  }
  *out = d;
  if (c)
    cf__future_add_listener(d, lc, cf__cancel_up_cb, c, cf__cancel_up_dispose);
  if (!n)
    cf__trampoline(&w->node); /* done at once, with an empty result */
  /* In input order: for when_any, the first of those done already wins. */
  for (size_t i = 0; i < n; i++)
    cf__future_add_listener(fs[i], ls[i], cf__when_cb, &w->slots[i],
                            cf__when_dispose);
  free(ls);
  return CF_OK;
}

int cf_when_all(cf_future *const *futures, size_t n, unsigned flags,
                cf_future **out) {
  return cf__when_make(futures, n, flags, false, out);
}

int cf_when_any(cf_future *const *futures, size_t n, unsigned flags,
                cf_future **out) {
  return cf__when_make(futures, n, flags, true, out);
}
