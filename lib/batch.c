/*
 * Batches (batch.h): building one, running it in this process, stopping it.
 */
#include "batch.h"
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

cf__batch *cf__batch_new(cf_task_fn fn, size_t n, bool copied) {
  size_t per = sizeof(cf__batch_item) + (copied ? sizeof(cf__buf) : 0);
  if (n > (SIZE_MAX - sizeof(cf__batch)) / per)
    return NULL;
  size_t sz = sizeof(cf__batch) + n * sizeof(cf__batch_item);
  cf__batch *b = cf__malloc(sz + (copied ? n * sizeof(cf__buf) : 0));
  if (!b)
    return NULL;
  b->fn = fn;
  b->n = n;
  atomic_init(&b->stop, 0);
  b->base = NULL;
  b->stride = 0;
  b->ins = copied ? (cf__buf *)((char *)b + sz) : NULL;
  for (size_t i = 0; i < n; i++)
    b->items[i] = (cf__batch_item){.status = CF_ECANCELLED};
  return b;
}

void cf__batch_free(cf__batch *b) {
  if (!b)
    return;
  for (size_t i = 0; i < b->n; i++) {
    cf__buf_free(&b->items[i].out);
    free(b->items[i].msg);
    if (b->ins)
      cf__buf_free(&b->ins[i]);
  }
  free(b);
}

int cf__batch_submit(cf_executor *ex, cf__batch *b, cf_future **out) {
  cf_future *f = cf__future_alloc(cf__batch_task);
  if (!f)
    return CF_ENOMEM;
  /* The future's input is the pointer: it fits inline, so cannot fail. */
  cf__buf_copy(&f->in, &b, sizeof b);
  int rc = cf__submit_future(ex, f, out);
  if (rc != CF_OK)
    cf_future_release(f);
  return rc;
}

void cf__batch_stop(cf__batch *b, cf_future *f) {
  atomic_store(&b->stop, 1);
  /* A batch already running elsewhere (a worker process) does not see the
   * flag: its backend passes the request on. */
  cf_executor *ex = f->owner;
  if (cf_future_cancel(f) != CF_OK && ex && ex->backend->request_stop)
    ex->backend->request_stop(ex, f);
}

/* An input's cf_task_stop_requested(): the batch is being stopped (its map
 * destroyed), or a stop was requested for the batch's own task. */
typedef struct cf__batch_stop_src {
  cf__batch *b;
  cf_task *outer;
} cf__batch_stop_src;

static bool cf__batch_stop_fn(void *arg) {
  cf__batch_stop_src *src = arg;
  return atomic_load_explicit(&src->b->stop, memory_order_relaxed) ||
         cf_task_stop_requested(src->outer);
}

int cf__batch_task(cf_task *t, const void *in, size_t len) {
  CF__UNUSED(len);
  cf__batch *b;
  memcpy(&b, in, sizeof b);
  cf__batch_stop_src src = {b, t};
  size_t i = 0;
  while (i < b->n) {
    if (atomic_load_explicit(&b->stop, memory_order_relaxed))
      break;
    size_t ilen;
    const void *ip = cf__batch_input(b, i, &ilen);
    cf_task it;
    it.stop_fn = cf__batch_stop_fn;
    it.stop_arg = &src;
    int rc = cf__task_invoke(b->fn, ip, ilen, &it);
    cf__batch_item *r = &b->items[i++];
    if (rc == 0) {
      r->status = CF_OK;
      r->out = it.out;
    } else {
      /* This input fails alone; the rest of the batch would only be
       * cancelled by whoever reads it, so do not run it. */
      r->status = CF_ETASK;
      r->code = rc;
      r->msg = it.errmsg;
      break;
    }
  }
  for (; i < b->n; i++)
    b->items[i].status = CF_ECANCELLED;
  return 0;
}
