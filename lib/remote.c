/*
 * The part of the process pool and the MPI backend that is not about how
 * their workers are reached: the queue, the counters, shutdown, stop
 * requests and stats (remote.h).
 */
#include "remote.h"
#include "alloc.h"

#include <stdlib.h>

void cf__rp_init(cf__rpool *rp, const cf__backend *backend, int max_workers,
                 void (*poke)(cf__rpool *)) {
  pthread_mutex_init(&rp->mu, NULL);
  pthread_mutex_init(&rp->join_mu, NULL);
  cf__executor_init(&rp->base, backend, max_workers);
  rp->poke = poke;
}

void cf__rp_workers(cf__rpool *rp, void *workers, size_t stride, int n) {
  rp->workers = workers;
  rp->stride = stride;
  rp->nworkers = n;
}

void cf__rp_fini(cf__rpool *rp) {
  pthread_mutex_destroy(&rp->mu);
  pthread_mutex_destroy(&rp->join_mu);
}

bool cf__rp_on_manager(cf__rpool *rp) {
  cf__worker_ctx *ctx = cf__tls_worker;
  return ctx && ctx->io_thread && ctx->pool == &rp->base;
}

void cf__rp_count(cf__rpool *rp, uint64_t *counter) {
  pthread_mutex_lock(&rp->mu);
  (*counter)++;
  pthread_mutex_unlock(&rp->mu);
}

void cf__rp_set_state(cf__rpool *rp, cf__rworker *w, int state) {
  pthread_mutex_lock(&rp->mu);
  rp->nidle -= w->state == CF__RW_IDLE;
  rp->nbusy -= w->state == CF__RW_BUSY;
  rp->nlive -= w->state != CF__RW_FREE;
  w->state = state;
  w->running = state == CF__RW_BUSY ? w->task : NULL;
  if (state != CF__RW_BUSY)
    w->stop = 0;
  rp->nidle += state == CF__RW_IDLE;
  rp->nbusy += state == CF__RW_BUSY;
  rp->nlive += state != CF__RW_FREE;
  pthread_mutex_unlock(&rp->mu);
}

cf_future *cf__rp_steal_locked(cf__rpool *rp) {
  cf_future *l = rp->qhead;
  rp->qhead = rp->qtail = NULL;
  rp->qlen = 0;
  return l;
}

void cf__rp_fail_list(cf_future *l, int status, int code, const char *msg) {
  while (l) {
    cf_future *next = l->next;
    cf__future_fail(l, status, code, msg ? cf__strdup(msg) : NULL);
    cf__queue_drop(l);
    l = next;
  }
}

cf_future *cf__rp_pop(cf__rpool *rp) {
  pthread_mutex_lock(&rp->mu);
  cf_future *f = rp->broken ? NULL : rp->qhead;
  if (f) {
    rp->qhead = f->next;
    if (!rp->qhead)
      rp->qtail = NULL;
    rp->qlen--;
  }
  pthread_mutex_unlock(&rp->mu);
  return f;
}

bool cf__rp_start(cf__rpool *rp, cf__rworker *w, cf_future *f) {
  w->task = f;
  cf__rp_set_state(rp, w, CF__RW_BUSY);
  if (cf__future_start(f))
    return true;
  w->task = NULL;
  cf__rp_set_state(rp, w, CF__RW_IDLE);
  cf__rp_count(rp, &rp->cancelled);
  cf__queue_drop(f);
  return false;
}

int cf__rp_submit(cf_executor *ex, cf_future *f) {
  cf__rpool *rp = (cf__rpool *)ex;
  pthread_mutex_lock(&rp->mu);
  /* stopped without a shutdown: the manager could not go on */
  int rc = rp->shutdown                ? CF_ESHUTDOWN
           : rp->broken || rp->stopped ? CF_EBROKEN
                                       : CF_OK;
  if (rc == CF_OK) {
    f->next = NULL;
    if (rp->qtail)
      rp->qtail->next = f;
    else
      rp->qhead = f;
    rp->qtail = f;
    rp->qlen++;
  }
  pthread_mutex_unlock(&rp->mu);
  if (rc == CF_OK)
    rp->poke(rp);
  return rc;
}

void cf__rp_join(cf__rpool *rp) {
  if (cf__rp_on_manager(rp))
    return; /* from a callback: the manager finishes after it returns */
  pthread_mutex_lock(&rp->join_mu);
  if (!rp->joined) {
    pthread_join(rp->manager, NULL);
    rp->joined = true;
  }
  pthread_mutex_unlock(&rp->join_mu);
}

void cf__rp_shutdown(cf__rpool *rp, bool wait, bool cancel) {
  pthread_mutex_lock(&rp->mu);
  rp->shutdown = true;
  cf_future *l = cancel ? cf__rp_steal_locked(rp) : NULL;
  pthread_mutex_unlock(&rp->mu);
  rp->poke(rp);
  uint64_t n = 0;
  for (; l; n++) {
    cf_future *next = l->next;
    cf_future_cancel(l);
    cf__queue_drop(l);
    l = next;
  }
  pthread_mutex_lock(&rp->mu);
  rp->cancelled += n;
  pthread_mutex_unlock(&rp->mu);
  if (wait)
    cf__rp_join(rp);
}

void cf__rp_request_stop(cf_executor *ex, cf_future *f) {
  cf__rpool *rp = (cf__rpool *)ex;
  bool poke = false;
  pthread_mutex_lock(&rp->mu);
  for (int i = 0; i < rp->nworkers; i++) {
    cf__rworker *w = cf__rp_worker(rp, i);
    if (w->state == CF__RW_BUSY && w->running == f && w->stop == 0) {
      w->stop = 1;
      poke = true;
    }
  }
  if (poke)
    atomic_store_explicit(&rp->stop_pending, true, memory_order_release);
  pthread_mutex_unlock(&rp->mu);
  if (poke)
    rp->poke(rp);
}

bool cf__rp_stops_due(cf__rpool *rp) {
  if (!atomic_load_explicit(&rp->stop_pending, memory_order_relaxed) ||
      !atomic_exchange_explicit(&rp->stop_pending, false, memory_order_acquire))
    return false; /* the common case: one plain load per manager round */
  bool any = false;
  pthread_mutex_lock(&rp->mu);
  for (int i = 0; i < rp->nworkers; i++) {
    cf__rworker *w = cf__rp_worker(rp, i);
    w->send_stop = w->stop == 1 && w->state == CF__RW_BUSY;
    if (w->send_stop)
      w->stop = 2;
    any |= w->send_stop;
  }
  pthread_mutex_unlock(&rp->mu);
  return any;
}

void cf__rp_purge(cf_executor *ex) {
  cf__rpool *rp = (cf__rpool *)ex;
  cf_future *drop = NULL;
  pthread_mutex_lock(&rp->mu);
  cf_future **p = &rp->qhead, *last = NULL;
  while (*p) {
    cf_future *f = *p;
    if (cf_future_cancelled(f)) {
      *p = f->next;
      f->next = drop;
      drop = f;
      rp->qlen--;
      rp->cancelled++;
    } else {
      last = f;
      p = &f->next;
    }
  }
  rp->qtail = last;
  pthread_mutex_unlock(&rp->mu);
  while (drop) {
    cf_future *next = drop->next;
    cf__queue_drop(drop); /* the queue's reference, and its slot */
    drop = next;
  }
}

void cf__rp_stats(cf_executor *ex, cf_executor_stats *st) {
  cf__rpool *rp = (cf__rpool *)ex;
  pthread_mutex_lock(&rp->mu);
  st->workers = rp->nlive;
  st->idle_workers = rp->nidle;
  st->queued = rp->qlen;
  st->running = rp->nbusy;
  st->completed = rp->completed;
  st->failed = rp->failed;
  st->cancelled = rp->cancelled;
  pthread_mutex_unlock(&rp->mu);
}

bool cf__rp_freed_by_manager(cf__rpool *rp) {
  if (!cf__rp_on_manager(rp))
    return false;
  pthread_mutex_lock(&rp->mu);
  rp->self_destroy = true; /* the manager frees the pool as it exits */
  pthread_mutex_unlock(&rp->mu);
  return true;
}

void cf__rp_manager_begin(cf__rpool *rp, cf__worker_ctx *ctx,
                          const char *name) {
  pthread_setname_np(pthread_self(), name);
  *ctx = (cf__worker_ctx){.pool = &rp->base, .io_thread = true};
  cf__tls_worker = ctx;
}

bool cf__rp_manager_end(cf__rpool *rp) {
  pthread_mutex_lock(&rp->mu);
  rp->stopped = true;
  cf_future *left = cf__rp_steal_locked(rp);
  pthread_mutex_unlock(&rp->mu);
  cf__rp_fail_list(left, CF_EBROKEN, 0, "the pool's manager stopped");
  /* Read after the last callbacks: one of them may drop the last
   * reference, and then this thread frees the pool. */
  pthread_mutex_lock(&rp->mu);
  bool self_free = rp->self_destroy;
  pthread_mutex_unlock(&rp->mu);
  cf__tls_worker = NULL;
  if (self_free)
    pthread_detach(pthread_self());
  return self_free;
}
