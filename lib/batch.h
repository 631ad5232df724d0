/*
 * Batches: several inputs of one function run as one task.
 *
 * A batch is the executor's unit for work that comes in many small pieces:
 * one future, one trip through the queue, one message to a worker process,
 * for n inputs.  cf_map() builds its chunks as batches; a backend runs a
 * batch like any task (the thread pool calls cf__batch_task on a worker) or
 * ships it whole (the process pool's CHUNK message; an MPI backend would do
 * the same).  Nothing here knows about maps: a backend sees only this type.
 */
#ifndef CF_BATCH_H
#define CF_BATCH_H

#include "internal.h"

#include <string.h>

/* The outcome of one input of a batch. */
typedef struct cf__batch_item {
  int32_t status; /* CF_OK, CF_ETASK, or CF_ECANCELLED when it never ran */
  int32_t code;   /* CF_ETASK: what the task returned */
  char *msg;      /* CF_ETASK: its words, or NULL */
  cf__buf out;    /* CF_OK: its result */
} cf__batch_item;

/* n inputs of fn, either stride bytes apart from base (not owned) or copied
 * into ins[] (owned); items[i] receives input i's outcome.  The creator owns
 * the batch and frees it once the batch's future is done. */
typedef struct cf__batch {
  cf_task_fn fn;
  size_t n;
  _Atomic int stop;          /* set: inputs not started yet are skipped */
  const unsigned char *base; /* array inputs ... */
  size_t stride;
  cf__buf *ins; /* ... or copied inputs (NULL for an array) */
  cf__batch_item items[];
} cf__batch;

/* A batch of n inputs of fn with every item CF_ECANCELLED; with `copied`,
 * room for n input buffers too (ins).  NULL when memory is short or the size
 * does not fit. */
cf__batch *cf__batch_new(cf_task_fn fn, size_t n, bool copied);

/* Frees the batch, its results and its copied inputs.  NULL is ignored. */
void cf__batch_free(cf__batch *b);

/* Submits b as one task of ex (one reference for the caller in *out).  The
 * batch must outlive the future's completion. */
int cf__batch_submit(cf_executor *ex, cf__batch *b, cf_future **out);

/* Asks b, submitted as f, to skip the inputs it has not started: cancels f
 * if it is still queued, else asks f's backend to pass the request on when
 * the batch runs elsewhere (a worker process).  Does not wait. */
void cf__batch_stop(cf__batch *b, cf_future *f);

/* The task that runs a batch in this process: input after input, stopping
 * at the first that fails (the rest are left CF_ECANCELLED). */
int cf__batch_task(cf_task *t, const void *in, size_t len);

/* The batch f runs, or NULL when f is a plain task.  Only while f is queued
 * or running: a future's input is freed once its task has run. */
static inline cf__batch *cf__future_batch(const cf_future *f) {
  cf__batch *b = NULL;
  if (f->fn == cf__batch_task)
    memcpy(&b, cf__buf_data(&f->in), sizeof b);
  return b;
}

/* Input i of b and its length. */
static inline const void *cf__batch_input(const cf__batch *b, size_t i,
                                          size_t *len) {
  if (b->ins) {
    *len = cf__buf_len(&b->ins[i]);
    return cf__buf_data(&b->ins[i]);
  }
  *len = b->stride;
  return b->base + i * b->stride;
}

#endif /* CF_BATCH_H */
