/*
 * The cf_task handle: how a task hands back its result or its error.  The
 * same calls serve every backend; the process pool serialises what they set.
 */
#include "internal.h"
#include "alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cf__buf_free(cf__buf *b) {
  if (b->len_ > CF__INLINE && b->u.h.free_fn)
    b->u.h.free_fn(b->u.h.ptr);
  b->len_ = 0;
}

int cf__buf_copy(cf__buf *b, const void *data, size_t len) {
  if (len <= CF__INLINE) {
    if (len)
      memcpy(b->u.inl, data, len);
  } else {
    void *p = cf__malloc(len);
    if (!p)
      return CF_ENOMEM;
    memcpy(p, data, len);
    b->u.h.ptr = p;
    b->u.h.free_fn = free;
  }
  b->len_ = len;
  return CF_OK;
}

int cf_task_return(cf_task *t, const void *data, size_t len) {
  if (!t || (!data && len))
    return CF_EINVAL;
  cf__buf nb;
  int rc = cf__buf_copy(&nb, data, len);
  if (rc != CF_OK)
    return rc;
  cf__buf_free(&t->out);
  t->out = nb;
  return CF_OK;
}

void *cf_task_return_buffer(cf_task *t, size_t len) {
  if (!t)
    return NULL;
  if (len > ~CF__BUF_EXT)
    return NULL; /* no buffer is that large */
  cf__buf nb;
  nb.len_ = len;
  if (len > CF__INLINE) {
    nb.u.h.ptr = cf__malloc(len);
    if (!nb.u.h.ptr)
      return NULL;
    nb.u.h.free_fn = free;
  }
  cf__buf_free(&t->out);
  t->out = nb;
  /* An empty result still needs a distinct, writable address. */
  return len <= CF__INLINE ? (void *)t->out.u.inl : t->out.u.h.ptr;
}

int cf_task_return_owned(cf_task *t, void *data, size_t len,
                         cf_free_fn free_fn) {
  if (!t || (!data && len) || len > ~CF__BUF_EXT)
    return CF_EINVAL;
  cf__buf_free(&t->out);
  /* Kept as given, whatever its size: the future's data is this pointer,
   * and free_fn runs when the future is destroyed (or at once if the task
   * then fails, or on a process pool once the bytes are sent). */
  cf__buf_adopt(&t->out, data, len, free_fn);
  return CF_OK;
}

int cf_task_fail(cf_task *t, int code, const char *fmt, ...) {
  if (code == 0)
    code = -1;
  if (!t || !fmt)
    return code;
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (cf__vasprintf(&msg, fmt, ap) < 0)
    msg = NULL;
  va_end(ap);
  free(t->errmsg);
  t->errmsg = msg;
  return code;
}

bool cf_task_stop_requested(cf_task *t) {
  return t && t->stop_fn && t->stop_fn(t->stop_arg);
}

int cf__task_invoke(cf_task_fn fn, const void *in, size_t len, cf_task *t) {
  t->out.len_ = 0;
  t->errmsg = NULL;
  int rc = fn(t, in, len);
  if (rc == 0) {
    free(t->errmsg);
    t->errmsg = NULL;
  } else {
    cf__buf_free(&t->out);
  }
  return rc;
}
