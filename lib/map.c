/*
 * cf_map(): fn over a stream of inputs, through any executor.
 *
 * Inputs are grouped into chunks; each chunk is one batch (batch.h): one
 * task, one future, for up to chunksize inputs.  At most max_inflight chunks
 * are in flight: new inputs are read and submitted only as results are
 * consumed, so mapping ten million inputs never creates ten million futures
 * (CPython gh-74028).  Results come back in input order, or, unordered, in
 * the order chunks complete (through a waiter, as cf_as_completed()).  The
 * first error ends the map and cancels what remains.
 */
#include "internal.h"
#include "alloc.h"
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#define CF__MAP_MAX_AUTO_CHUNK 1024

typedef struct cf__slot {
  cf_future *f;
  cf__batch *c;      /* the chunk */
  size_t first;      /* the index of its first input */
  cf__listener link; /* unordered mode: watches f */
  bool linked;
} cf__slot;

struct cf_map_iter {
  cf_executor *ex;
  cf_task_fn fn;
  /* inputs: a generator, or an array of count items of `size` bytes */
  cf_map_input_fn next;
  void *arg;
  const unsigned char *base;
  size_t size, count;
  size_t next_index; /* next input to read */
  bool inputs_done;
  int pending_err; /* input or submit error, reported after what precedes */

  size_t chunksize, max_inflight;
  bool unordered;
  int64_t deadline;

  /* In-flight chunks: a ring in input order (ordered), or slots with a free
   * list (unordered). */
  cf__slot *slots;
  size_t head, nflight;
  size_t *free_slots, nfree;
  cf__waiter w;

  /* Generator inputs of the chunk being read, before it is allocated to
   * the size it needs (grows by doubling, up to chunksize). */
  cf__buf *scratch;
  size_t scratch_cap;

  cf__batch *cur; /* chunk being handed out */
  size_t cur_first, cur_pos;
  bool ended;
};

/* A done callback: frees a chunk whose map is gone (see cf_map_destroy). */
static void cf__map_free_chunk_cb(cf_future *f, void *arg) {
  CF__UNUSED(f);
  cf__batch_free(arg);
}

/* Frees the inputs read into the scratch array but not handed to a chunk. */
static void cf__map_drop_scratch(cf_map_iter *m, size_t n) {
  for (size_t i = 0; i < n; i++)
    cf__buf_free(&m->scratch[i]);
}

/* The next chunk of an array map: a view of the caller's array, no copy. */
static cf__batch *cf__map_read_array_chunk(cf_map_iter *m) {
  size_t n = m->count - m->next_index;
  if (n > m->chunksize)
    n = m->chunksize;
  if (n == 0) {
    m->inputs_done = true;
    return NULL;
  }
  cf__batch *c = cf__batch_new(m->fn, n, false);
  if (!c) {
    m->pending_err = CF_ENOMEM;
    return NULL;
  }
  c->base = m->base + m->next_index * m->size;
  c->stride = m->size;
  m->next_index += n;
  return c;
}

/* Makes room for one more input in the scratch array (doubling, up to
 * chunksize).  Returns CF_OK or CF_ENOMEM. */
static int cf__map_grow_scratch(cf_map_iter *m, size_t n) {
  if (n < m->scratch_cap)
    return CF_OK;
  size_t cap = m->scratch_cap ? m->scratch_cap * 2 : 16;
  if (cap > m->chunksize)
    cap = m->chunksize;
  cf__buf *nb = cap <= SIZE_MAX / sizeof *nb
                    ? cf__realloc(m->scratch, cap * sizeof *nb)
                    : NULL;
  if (!nb)
    return CF_ENOMEM;
  m->scratch = nb;
  m->scratch_cap = cap;
  return CF_OK;
}

/* Reads the next chunk's inputs; NULL at the end or on error (pending_err).
 * A chunk is allocated for the inputs it holds, never for chunksize: a huge
 * chunksize over three inputs costs three items. */
static cf__batch *cf__map_read_chunk(cf_map_iter *m) {
  if (m->base)
    return cf__map_read_array_chunk(m);
  size_t n = 0;
  while (n < m->chunksize) {
    if (cf__map_grow_scratch(m, n) != CF_OK) {
      m->pending_err = CF_ENOMEM;
      break;
    }
    const void *in = NULL;
    size_t len = 0;
    int rc = m->next(m->arg, m->next_index, &in, &len);
    if (rc == CF_OK && !in && len)
      rc = CF_EINVAL;
    if (rc == CF_OK)
      rc = cf__buf_copy(&m->scratch[n], in, len);
    if (rc != CF_OK) {
      if (rc == CF_EOF)
        m->inputs_done = true;
      else
        m->pending_err = rc;
      break;
    }
    n++;
    m->next_index++;
  }
  if (n == 0)
    return NULL;
  cf__batch *c = cf__batch_new(m->fn, n, true);
  if (!c) {
    cf__map_drop_scratch(m, n);
    m->pending_err = CF_ENOMEM;
    return NULL;
  }
  memcpy(c->ins, m->scratch, n * sizeof *c->ins);
  return c;
}

/* ---- the window ---------------------------------------------------------- */

/* Submits chunks until max_inflight are in flight or the inputs end. */
static void cf__map_fill(cf_map_iter *m) {
  while (m->nflight < m->max_inflight && !m->inputs_done && !m->pending_err) {
    size_t first = m->next_index;
    cf__batch *c = cf__map_read_chunk(m);
    if (!c)
      return;
    cf_future *f = NULL;
    int rc = cf__batch_submit(m->ex, c, &f);
    if (rc != CF_OK) {
      cf__batch_free(c);
      m->pending_err = rc;
      return;
    }
    size_t i;
    if (m->unordered) {
      i = m->free_slots[--m->nfree];
    } else {
      i = (m->head + m->nflight) % m->max_inflight;
    }
    cf__slot *s = &m->slots[i];
    s->f = f;
    s->c = c;
    s->first = first;
    s->linked = false;
    m->nflight++;
    if (m->unordered) {
      s->link.waiter = &m->w;
      s->link.arg = s;
      if (cf__future_add_link(f, &s->link))
        s->linked = true;
      else
        cf__waiter_notify(&s->link); /* done already */
    }
  }
}

/* Takes a slot out of the window; its chunk becomes the map's to free. */
static void cf__map_release_slot(cf_map_iter *m, cf__slot *s) {
  if (s->linked)
    cf__future_remove_link(s->f, &s->link);
  cf_future_release(s->f);
  s->f = NULL;
  m->nflight--;
  if (m->unordered)
    m->free_slots[m->nfree++] = (size_t)(s - m->slots);
}

/* Ends the map: stops and cancels every chunk in flight (without waiting). */
static void cf__map_end(cf_map_iter *m) {
  m->ended = true;
  for (size_t k = 0; k < m->max_inflight; k++) {
    cf__slot *s = &m->slots[k];
    if (s->f)
      cf__batch_stop(s->c, s->f);
  }
}

/* Unordered: can no chunk in flight complete before the caller returns (a
 * process pool's own I/O thread, or chunks on the caller's stack)? */
static bool cf__map_needs_self(cf_map_iter *m) {
  for (size_t k = 0; k < m->max_inflight; k++) {
    cf__slot *s = &m->slots[k];
    if (s->f && (cf_future_done(s->f) || !cf__waits_for_self(s->f)))
      return false;
  }
  return true;
}

/* Waits for the next chunk: in order, or the next to complete.  Returns
 * CF_OK with *out set, CF_EOF, or an error. */
static int cf__map_next_chunk(cf_map_iter *m, cf__slot **out) {
  cf__map_fill(m);
  if (m->nflight == 0)
    return m->pending_err ? m->pending_err : CF_EOF;
  if (!m->unordered) {
    cf__slot *s = &m->slots[m->head];
    int rc = cf_future_wait(s->f, cf__timeout_left(m->deadline));
    if (rc != CF_OK)
      return rc;
    m->head = (m->head + 1) % m->max_inflight;
    *out = s;
    return CF_OK;
  }
  for (;;) {
    uint32_t seq0 = atomic_load(&m->w.seq);
    cf__listener *l = cf__waiter_pop(&m->w);
    if (l) {
      /* s->linked stays set: releasing the slot must still take the
       * future's lock, which its completer may hold while poking us. */
      *out = l->arg;
      return CF_OK;
    }
    if (cf__tls_worker && cf__map_needs_self(m))
      return CF_EDEADLK;
    if (cf__waiter_sleep(&m->w, seq0, m->deadline) == ETIMEDOUT &&
        atomic_load(&m->w.seq) == seq0)
      return CF_ETIMEDOUT;
  }
}

static int cf__map_next(cf_map_iter *m, cf_map_item *item) {
  if (m->ended)
    return CF_EOF;
  for (;;) {
    if (m->cur && m->cur_pos < m->cur->n) {
      cf__batch_item *r = &m->cur->items[m->cur_pos];
      item->index = m->cur_first + m->cur_pos++;
      if (r->status == CF_OK) {
        item->data = cf__buf_data(&r->out);
        item->len = cf__buf_len(&r->out);
        return CF_OK;
      }
      item->error_code = r->code;
      item->error_message = r->msg;
      cf__map_end(m);
      return r->status;
    }
    cf__batch_free(m->cur);
    m->cur = NULL;

    cf__slot *s = NULL;
    int rc = cf__map_next_chunk(m, &s);
    if (rc != CF_OK) {
      if (rc != CF_EOF)
        cf__map_end(m);
      m->ended = true;
      return rc;
    }
    rc = cf__future_status(s->f);
    if (rc != CF_OK) { /* the chunk never ran: cancelled, broken, died... */
      item->index = s->first;
      /* Its words too (a refused function, a dead worker...): owned by the
       * future, which the slot keeps until destroy. */
      cf_future_error(s->f, 0, &item->error_code, &item->error_message);
      cf__map_end(m);
      /* The slot stays so destroy can wait for and free it. */
      return rc;
    }
    m->cur = s->c;
    m->cur_first = s->first;
    m->cur_pos = 0;
    s->c = NULL;
    cf__map_release_slot(m, s);
  }
}

int cf_map_next(cf_map_iter *m, cf_map_item *item) {
  if (!m || cf__out_check(item, CF__MAP_ITEM_V1) != CF_OK)
    return CF_EINVAL;
  if (CF__LIKELY(item->size >= sizeof *item)) {
    /* The caller knows every field we do (the usual case): filled in place,
     * no copy on this per-input path. */
    *item = (cf_map_item){.size = item->size};
    return cf__map_next(m, item);
  }
  /* An older caller's smaller struct: filled here, then copied as far as
   * it goes. */
  cf_map_item it = CF_MAP_ITEM_INIT;
  int rc = cf__map_next(m, &it);
  cf__out_copy(item, &it, sizeof it);
  return rc;
}

/* ---- creation ------------------------------------------------------------ */

int cf_map_options_init(cf_map_options *o) {
  if (!o)
    return CF_EINVAL;
  *o = (cf_map_options)CF_MAP_OPTIONS_INIT;
  return CF_OK;
}

static int cf__map_create(cf_executor *ex, cf_task_fn fn,
                          const cf_map_options *opts, cf_map_iter **out,
                          cf_map_iter **mp) {
  if (!out)
    return CF_EINVAL;
  *out = NULL;
  if (!ex || !fn)
    return CF_EINVAL;
  cf_map_options o = CF_MAP_OPTIONS_INIT;
  if (opts && cf__opts_in(&o, sizeof o, opts, CF__MAP_OPTIONS_V1) != CF_OK)
    return CF_EINVAL;
  if (o.max_inflight > CF_MAP_MAX_INFLIGHT)
    return CF_EINVAL;
  cf_map_iter *m = cf__calloc(1, sizeof *m);
  if (!m)
    return CF_ENOMEM;
  m->deadline = cf__deadline(o.timeout_ns);
  m->ex = cf_executor_retain(ex);
  m->fn = fn;
  m->chunksize = o.chunksize;
  m->unordered = o.unordered;
  m->max_inflight = o.max_inflight;
  if (!m->max_inflight) {
    m->max_inflight = 4 * (size_t)ex->max_workers;
    if (m->max_inflight < 16)
      m->max_inflight = 16;
  }
  *mp = m;
  return CF_OK;
}

static int cf__map_start(cf_map_iter *m, cf_map_iter **out) {
  m->slots = cf__calloc(m->max_inflight, sizeof *m->slots);
  int rc = m->slots ? CF_OK : CF_ENOMEM;
  if (rc == CF_OK && m->unordered) {
    m->free_slots = cf__malloc(m->max_inflight * sizeof *m->free_slots);
    rc = m->free_slots ? cf__waiter_init(&m->w, m->max_inflight) : CF_ENOMEM;
    if (rc == CF_OK)
      for (size_t i = 0; i < m->max_inflight; i++)
        m->free_slots[m->nfree++] = m->max_inflight - 1 - i;
  }
  if (rc == CF_OK) {
    cf__map_fill(m);
    /* As Python: a map that cannot start at all fails at once. */
    if (m->nflight == 0 && m->pending_err)
      rc = m->pending_err;
  }
  if (rc != CF_OK) {
    cf_map_destroy(m);
    return rc;
  }
  *out = m;
  return CF_OK;
}

int cf_map(cf_executor *ex, cf_task_fn fn, cf_map_input_fn next, void *arg,
           const cf_map_options *opts, cf_map_iter **out) {
  cf_map_iter *m;
  int rc = next ? cf__map_create(ex, fn, opts, out, &m) : CF_EINVAL;
  if (rc != CF_OK)
    return rc;
  m->next = next;
  m->arg = arg;
  if (!m->chunksize)
    m->chunksize = 1;
  return cf__map_start(m, out);
}

int cf_map_array(cf_executor *ex, cf_task_fn fn, const void *base, size_t size,
                 size_t count, const cf_map_options *opts, cf_map_iter **out) {
  /* The array must be addressable: count * size bytes from base. */
  if (count &&
      (!base || !size || count > (SIZE_MAX - (uintptr_t)base) / size)) {
    if (out)
      *out = NULL;
    return CF_EINVAL;
  }
  cf_map_iter *m;
  int rc = cf__map_create(ex, fn, opts, out, &m);
  if (rc != CF_OK)
    return rc;
  m->base = count ? base : (const unsigned char *)"";
  m->size = size;
  m->count = count;
  if (!m->chunksize) {
    /* A few chunks per worker balance the load; more would only add
     * overhead. */
    size_t per = count / (4 * (size_t)ex->max_workers);
    m->chunksize = per < 1                        ? 1
                   : per > CF__MAP_MAX_AUTO_CHUNK ? CF__MAP_MAX_AUTO_CHUNK
                                                  : per;
  }
  /* No more slots than there are chunks to fill them. */
  size_t nchunks = count / m->chunksize + (count % m->chunksize != 0);
  if (m->max_inflight > nchunks)
    m->max_inflight = nchunks ? nchunks : 1;
  return cf__map_start(m, out);
}

void cf_map_destroy(cf_map_iter *m) {
  if (!m)
    return;
  if (m->slots) {
    cf__map_end(m);
    /* Running chunks stop after their current input; wait for them, since
     * they read the caller's inputs and write into the chunk. */
    for (size_t k = 0; k < m->max_inflight; k++) {
      cf__slot *s = &m->slots[k];
      if (!s->f)
        continue;
      if (cf_future_wait(s->f, CF_FOREVER) == CF_EDEADLK) {
        /* Destroyed where the chunk cannot complete before we return (a
         * process pool's own callback): the chunk is freed when it is
         * done instead; without memory for that it is leaked, never freed
         * under a worker still writing into it. */
        cf_future_add_done_callback(s->f, cf__map_free_chunk_cb, s->c);
      } else {
        cf__batch_free(s->c);
      }
      s->c = NULL;
      cf__map_release_slot(m, s);
    }
  }
  cf__batch_free(m->cur);
  free(m->scratch);
  if (m->unordered && m->free_slots)
    cf__waiter_fini(&m->w);
  free(m->free_slots);
  free(m->slots);
  cf_executor_release(m->ex);
  free(m);
}
