/*
 * Completion queues: done futures handed to an event loop through an
 * eventfd.
 *
 * Each future added gets an entry, registered as a done callback.  When it
 * fires, the entry moves from the pending list to the ready FIFO, under the
 * queue's mutex; the eventfd's counter is made non-zero when the FIFO
 * becomes non-empty and read back to zero when a pop empties it, both under
 * that mutex, so "readable" and "something to pop" never disagree.
 *
 * Destroying the queue takes back the callbacks that have not fired
 * (cf__future_take_listener).  A callback that is already on its way (its
 * future completed, the callback not yet run) cannot be taken back: its
 * entry stays, marked orphan, and the callback frees it.  The queue's core
 * (mutex, lists) lives until the last such entry is gone; the descriptor
 * is closed at destroy.
 */
#include "internal.h"
#include "alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct cf__cq_entry {
  struct cf__cq_entry *prev, *next; /* pending list, or the ready FIFO */
  cf_completion_queue *q;
  cf_future *f; /* the queue's reference */
  void *tag;
  cf__listener *l; /* the callback, while it can still be taken back */
} cf__cq_entry;

struct cf_completion_queue {
  pthread_mutex_t mu;
  int fd;
  bool dead;            /* destroyed: callbacks on the way free their entry */
  size_t refs;          /* 1 for the owner until destroy, + orphan entries */
  cf__cq_entry pending; /* circular list head */
  cf__cq_entry *ready_head, *ready_tail;
  size_t npending, nready;
};

static void cf__cq_unlink(cf__cq_entry *e) {
  e->prev->next = e->next;
  e->next->prev = e->prev;
}

/* Keeps the eventfd counter non-zero exactly while the FIFO is non-empty.
 * Under q->mu.  Writing 1 cannot block or fail short of a counter near
 * 2^64; reading a counter at 0 (non-blocking) gives EAGAIN, harmless. */
static void cf__cq_signal_locked(cf_completion_queue *q, bool readable) {
  uint64_t v = 1;
  ssize_t n;
  do
    n = readable ? write(q->fd, &v, sizeof v) : read(q->fd, &v, sizeof v);
  while (n < 0 && errno == EINTR);
}

static void cf__cq_free(cf_completion_queue *q) {
  pthread_mutex_destroy(&q->mu);
  free(q);
}

static void cf__cq_done(cf_future *f, void *arg) {
  CF__UNUSED(f);
  cf__cq_entry *e = arg;
  cf_completion_queue *q = e->q;
  pthread_mutex_lock(&q->mu);
  if (q->dead) {
    /* Destroyed while this callback was on its way: nothing to hand out. */
    bool last = --q->refs == 0;
    pthread_mutex_unlock(&q->mu);
    cf_future_release(e->f);
    free(e);
    if (last)
      cf__cq_free(q);
    return;
  }
  cf__cq_unlink(e);
  q->npending--;
  e->l = NULL; /* fired: freed by the future after this call */
  e->next = NULL;
  if (q->ready_tail)
    q->ready_tail->next = e;
  else
    q->ready_head = e;
  q->ready_tail = e;
  if (q->nready++ == 0)
    cf__cq_signal_locked(q, true);
  pthread_mutex_unlock(&q->mu);
}

int cf_completion_queue_create(cf_completion_queue **out) {
  if (!out)
    return CF_EINVAL;
  *out = NULL;
  cf_completion_queue *q = cf__calloc(1, sizeof *q);
  if (!q)
    return CF_ENOMEM;
  q->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (q->fd < 0) {
    int e = errno;
    free(q);
    return e == ENOMEM ? CF_ENOMEM : CF_ESYS;
  }
  pthread_mutex_init(&q->mu, NULL);
  q->refs = 1;
  q->pending.prev = q->pending.next = &q->pending;
  *out = q;
  return CF_OK;
}

int cf_completion_queue_fd(const cf_completion_queue *q) {
  return q ? q->fd : CF_EINVAL;
}

int cf_completion_queue_add(cf_completion_queue *q, cf_future *f, void *tag) {
  if (!q || !f)
    return CF_EINVAL;
  cf__cq_entry *e = cf__malloc(sizeof *e);
  cf__listener *l = cf__malloc(sizeof *l);
  if (!e || !l) {
    free(e);
    free(l);
    return CF_ENOMEM;
  }
  e->q = q;
  e->f = cf_future_retain(f);
  e->tag = tag;
  e->l = l;
  pthread_mutex_lock(&q->mu);
  e->prev = q->pending.prev;
  e->next = &q->pending;
  e->prev->next = e;
  q->pending.prev = e;
  q->npending++;
  pthread_mutex_unlock(&q->mu);
  /* Runs cf__cq_done at once if f is done already. */
  cf__future_add_listener(f, l, cf__cq_done, e, NULL);
  return CF_OK;
}

int cf_completion_queue_pop(cf_completion_queue *q, cf_future **future,
                            void **tag) {
  if (future)
    *future = NULL;
  if (tag)
    *tag = NULL;
  if (!q || !future)
    return CF_EINVAL;
  pthread_mutex_lock(&q->mu);
  cf__cq_entry *e = q->ready_head;
  if (e) {
    q->ready_head = e->next;
    if (!q->ready_head)
      q->ready_tail = NULL;
    if (--q->nready == 0)
      cf__cq_signal_locked(q, false);
  }
  pthread_mutex_unlock(&q->mu);
  if (!e)
    return CF_EAGAIN;
  *future = e->f;
  if (tag)
    *tag = e->tag;
  free(e);
  return CF_OK;
}

int cf_completion_queue_count(cf_completion_queue *q, size_t *pending,
                              size_t *ready) {
  if (!q)
    return CF_EINVAL;
  pthread_mutex_lock(&q->mu);
  if (pending)
    *pending = q->npending;
  if (ready)
    *ready = q->nready;
  pthread_mutex_unlock(&q->mu);
  return CF_OK;
}

void cf_completion_queue_destroy(cf_completion_queue *q) {
  if (!q)
    return;
  cf__cq_entry *drop = NULL; /* entries to release outside the lock */
  pthread_mutex_lock(&q->mu);
  q->dead = true;
  close(q->fd);
  q->fd = -1;
  for (cf__cq_entry *e = q->pending.next, *n; e != &q->pending; e = n) {
    n = e->next;
    /* Lock order: q->mu, then the future's lock (taken here); callbacks
     * take q->mu without holding a future's lock. */
    if (cf__future_take_listener(e->f, e->l)) {
      free(e->l);
      e->next = drop;
      drop = e;
    } else {
      q->refs++; /* its callback is on the way and frees it */
    }
  }
  for (cf__cq_entry *e = q->ready_head, *n; e; e = n) {
    n = e->next;
    e->next = drop;
    drop = e;
  }
  q->ready_head = q->ready_tail = NULL;
  q->pending.prev = q->pending.next = &q->pending;
  q->npending = q->nready = 0;
  bool last = --q->refs == 0;
  pthread_mutex_unlock(&q->mu);
  for (cf__cq_entry *e = drop, *n; e; e = n) {
    n = e->next;
    cf_future_release(e->f);
    free(e);
  }
  if (last)
    cf__cq_free(q);
}
