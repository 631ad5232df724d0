/*
 * The process pool's wire protocol (see ipc.h).  Both ends run on the same
 * machine and binary, so integers travel in host byte order.
 */
#include "ipc.h"
#include "alloc.h"

#include <elf.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- function references --------------------------------------------------- */

typedef struct cf__locate {
  uintptr_t addr;
  cf__fnref *ref;
  const char *want;
  size_t want_len;
  uint64_t offset;
  uintptr_t found;
  bool ok;
} cf__locate;

/* Does an executable PT_LOAD segment of this module hold addr? */
static bool cf__module_holds(struct dl_phdr_info *info, uintptr_t addr) {
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && addr >= lo &&
        addr < lo + ph->p_memsz)
      return true;
  }
  return false;
}

static int cf__locate_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  CF__UNUSED(size);
  cf__locate *l = arg;
  if (!cf__module_holds(info, l->addr))
    return 0;
  const char *name = info->dlpi_name ? info->dlpi_name : "";
  size_t n = strlen(name);
  if (n >= sizeof l->ref->name)
    return 1; /* found, but the name does not fit: not locatable */
  memcpy(l->ref->name, name, n + 1);
  l->ref->offset = l->addr - info->dlpi_addr;
  l->ok = true;
  return 1;
}

int cf__fnref_locate(uintptr_t addr, cf__fnref *ref) {
  memset(ref, 0, sizeof *ref);
  if (!addr) {
    ref->none = true;
    return CF_OK;
  }
  cf__locate l = {.addr = addr, .ref = ref};
  dl_iterate_phdr(cf__locate_cb, &l);
  return l.ok ? CF_OK : CF_EINVAL;
}

static int cf__resolve_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  CF__UNUSED(size);
  cf__locate *l = arg;
  const char *name = info->dlpi_name ? info->dlpi_name : "";
  if (strlen(name) != l->want_len || memcmp(name, l->want, l->want_len) != 0)
    return 0;
  uintptr_t addr = info->dlpi_addr + l->offset;
  if (cf__module_holds(info, addr))
    l->found = addr;
  return 1; /* the first module of that name decides ("" = the program) */
}

uintptr_t cf__fnref_resolve(const char *name, size_t name_len,
                            uint64_t offset) {
  cf__locate l = {.want = name, .want_len = name_len, .offset = offset};
  dl_iterate_phdr(cf__resolve_cb, &l);
  return l.found;
}

size_t cf__fnref_size(const cf__fnref *ref) {
  return ref->none ? 4 : 4 + strlen(ref->name) + 8;
}

void cf__fnref_put(const cf__fnref *ref, unsigned char *out) {
  uint32_t n = ref->none ? UINT32_MAX : (uint32_t)strlen(ref->name);
  memcpy(out, &n, 4);
  if (ref->none)
    return;
  memcpy(out + 4, ref->name, n);
  memcpy(out + 4 + n, &ref->offset, 8);
}

size_t cf__fnref_get(const unsigned char *p, size_t n, const char **name,
                     size_t *name_len, uint64_t *offset, bool *none) {
  uint32_t len;
  if (n < 4)
    return 0;
  memcpy(&len, p, 4);
  *none = len == UINT32_MAX;
  if (*none)
    return 4;
  if (len >= sizeof(((cf__fnref *)0)->name) || n - 4 < (size_t)len + 8)
    return 0;
  *name = (const char *)p + 4;
  *name_len = len;
  memcpy(offset, p + 4 + len, 8);
  return 4 + (size_t)len + 8;
}

size_t cf__ipc_decode_fnref(const unsigned char *p, size_t n,
                            cf__fnref_view *out) {
  *out = (cf__fnref_view){0};
  return cf__fnref_get(p, n, &out->name, &out->name_len, &out->offset,
                       &out->none);
}

uintptr_t cf__fnref_view_resolve(const cf__fnref_view *v) {
  if (v->none)
    return 0;
  return cf__fnref_resolve(v->name, v->name_len, v->offset);
}

/* ---- framing ------------------------------------------------------------------- */

int cf__ipc_send(int fd, uint32_t type, uint64_t id, const struct iovec *iov,
                 int niov) {
  struct iovec v[8];
  cf__frame fr = {CF__IPC_MAGIC, type, id, 0};
  if (niov > 7)
    return CF_EINVAL;
  v[0].iov_base = &fr;
  v[0].iov_len = sizeof fr;
  for (int i = 0; i < niov; i++) {
    v[i + 1] = iov[i];
    fr.len += iov[i].iov_len;
  }
  struct msghdr m = {0};
  m.msg_iov = v;
  m.msg_iovlen = (size_t)niov + 1;
  while (m.msg_iovlen) {
    ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return CF_ESYS;
    }
    /* Partial write: skip what went out. */
    size_t done = (size_t)w;
    while (m.msg_iovlen && done >= m.msg_iov[0].iov_len) {
      done -= m.msg_iov[0].iov_len;
      m.msg_iov++;
      m.msg_iovlen--;
    }
    if (m.msg_iovlen) {
      m.msg_iov[0].iov_base = (char *)m.msg_iov[0].iov_base + done;
      m.msg_iov[0].iov_len -= done;
    }
  }
  return CF_OK;
}

int cf__ipc_read(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return CF_ESYS;
    }
    if (r == 0)
      return got ? CF_EPROTO : CF_EOF;
    got += (size_t)r;
  }
  return CF_OK;
}

int cf__ipc_read_frame(int fd, cf__frame *fr) {
  int rc = cf__ipc_read(fd, fr, sizeof *fr);
  if (rc != CF_OK)
    return rc;
  if (fr->magic != CF__IPC_MAGIC || fr->type < CF__MSG_INIT ||
      fr->type > CF__MSG_LAST || fr->len > CF__IPC_MAX_PAYLOAD)
    return CF_EPROTO;
  return CF_OK;
}

/* ---- decoding ---------------------------------------------------------------------- */

int cf__ipc_decode_result(const unsigned char *p, size_t n,
                          cf__result_view *out) {
  uint32_t has_msg;
  if (n < 8)
    return CF_EPROTO;
  memcpy(&out->rc, p, 4);
  memcpy(&has_msg, p + 4, 4);
  if (has_msg > 1 || (has_msg && out->rc == 0))
    return CF_EPROTO;
  out->has_msg = has_msg;
  out->data = p + 8;
  out->len = n - 8;
  return CF_OK;
}

static void cf__items_clear(cf__item *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    cf__buf_free(&items[i].out);
    free(items[i].msg);
    items[i] = (cf__item){.status = CF_ECANCELLED};
  }
}

int cf__ipc_decode_chunk_result(const unsigned char *p, size_t n,
                                size_t expect, cf__item *items) {
  uint64_t count;
  if (n < 8)
    return CF_EPROTO;
  memcpy(&count, p, 8);
  if (count != expect)
    return CF_EPROTO;
  size_t off = 8;
  for (size_t i = 0; i < expect; i++) {
    int32_t status, code;
    uint32_t has_msg, pad;
    uint64_t len;
    int rc = CF_EPROTO;
    if (n - off < 24)
      goto fail;
    memcpy(&status, p + off, 4);
    memcpy(&code, p + off + 4, 4);
    memcpy(&has_msg, p + off + 8, 4);
    memcpy(&pad, p + off + 12, 4);
    memcpy(&len, p + off + 16, 8);
    off += 24;
    if (pad != 0 || has_msg > 1 || len > n - off)
      goto fail;
    cf__item *it = &items[i];
    if (status == CF__ITEM_OK && !has_msg) {
      if (cf__buf_copy(&it->out, p + off, (size_t)len) != CF_OK) {
        rc = CF_ENOMEM;
        goto fail;
      }
      it->status = CF_OK;
    } else if (status == CF__ITEM_FAILED && code != 0) {
      it->status = CF_ETASK;
      it->code = code;
      if (has_msg) {
        if (!(it->msg = cf__malloc((size_t)len + 1))) {
          rc = CF_ENOMEM;
          goto fail;
        }
        memcpy(it->msg, p + off, (size_t)len);
        it->msg[len] = '\0';
      }
    } else if (status == CF__ITEM_NOT_RUN && len == 0 && !has_msg) {
      it->status = CF_ECANCELLED;
    } else {
      goto fail;
    }
    off += (size_t)len;
    continue;
  fail:
    cf__items_clear(items, i + 1);
    return rc;
  }
  if (off != n) {
    cf__items_clear(items, expect);
    return CF_EPROTO;
  }
  return CF_OK;
}

/* ---- encoding chunks and chunk results ------------------------------------------- */

int cf__ipc_encode_chunk(const cf__fnref *ref, const cf__chunk *c,
                         unsigned char **out, size_t *len) {
  size_t total = cf__fnref_size(ref) + 8;
  for (size_t i = 0; i < c->n; i++) {
    size_t l;
    cf__chunk_input(c, i, &l);
    total += 8 + l;
  }
  unsigned char *buf = cf__malloc(total);
  if (!buf)
    return CF_ENOMEM;
  cf__fnref_put(ref, buf);
  size_t off = cf__fnref_size(ref);
  uint64_t n = c->n;
  memcpy(buf + off, &n, 8);
  off += 8;
  for (size_t i = 0; i < c->n; i++) {
    size_t l;
    const void *in = cf__chunk_input(c, i, &l);
    uint64_t l64 = l;
    memcpy(buf + off, &l64, 8);
    if (l)
      memcpy(buf + off + 8, in, l);
    off += 8 + l;
  }
  *out = buf;
  *len = total;
  return CF_OK;
}

/* Makes room for `more` bytes. */
static int cf__obuf_reserve(cf__obuf *b, size_t more) {
  if (more > SIZE_MAX - b->len)
    goto fail;
  size_t need = b->len + more;
  if (need <= b->cap)
    return CF_OK;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  unsigned char *np = cf__realloc(b->p, cap);
  if (!np)
    goto fail;
  b->p = np;
  b->cap = cap;
  return CF_OK;
fail:
  free(b->p);
  *b = (cf__obuf){0};
  return CF_ENOMEM;
}

int cf__ipc_chunk_result_begin(cf__obuf *b, uint64_t count) {
  *b = (cf__obuf){0};
  if (cf__obuf_reserve(b, 8) != CF_OK)
    return CF_ENOMEM;
  memcpy(b->p, &count, 8);
  b->len = 8;
  return CF_OK;
}

int cf__ipc_chunk_result_add(cf__obuf *b, int32_t status, int32_t code,
                             bool has_msg, const void *data, size_t len) {
  if (cf__obuf_reserve(b, 24 + len) != CF_OK)
    return CF_ENOMEM;
  unsigned char *o = b->p + b->len;
  uint32_t m = has_msg, pad = 0;
  uint64_t l = len;
  memcpy(o, &status, 4);
  memcpy(o + 4, &code, 4);
  memcpy(o + 8, &m, 4);
  memcpy(o + 12, &pad, 4);
  memcpy(o + 16, &l, 8);
  if (len)
    memcpy(o + 24, data, len);
  b->len += 24 + len;
  return CF_OK;
}

/* ---- decoding what the parent sends ------------------------------------------- */

int cf__ipc_decode_task(const unsigned char *p, size_t n, cf__task_view *out) {
  size_t used = cf__ipc_decode_fnref(p, n, &out->fn);
  if (!used)
    return CF_EPROTO;
  out->len = n - used;
  out->in = out->len ? p + used : NULL;
  return CF_OK;
}

/* One input at v's position: its bytes, without moving. */
static int cf__chunk_peek(const cf__chunk_view *v, size_t *ilen) {
  uint64_t l;
  if (v->n - v->off < 8)
    return CF_EPROTO;
  memcpy(&l, v->p + v->off, 8);
  if (l > v->n - v->off - 8)
    return CF_EPROTO;
  *ilen = (size_t)l;
  return CF_OK;
}

int cf__ipc_decode_chunk(const unsigned char *p, size_t n,
                         cf__chunk_view *out) {
  *out = (cf__chunk_view){0};
  size_t used = cf__ipc_decode_fnref(p, n, &out->fn);
  if (!used || n - used < 8)
    return CF_EPROTO;
  memcpy(&out->count, p + used, 8);
  out->p = p;
  out->n = n;
  out->off = used + 8;
  /* Each input takes at least its 8-byte length: a count the bytes cannot
   * hold is refused before walking it. */
  if (out->count > (n - out->off) / 8)
    return CF_EPROTO;
  cf__chunk_view walk = *out;
  for (uint64_t i = 0; i < out->count; i++) {
    size_t l;
    if (cf__chunk_peek(&walk, &l) != CF_OK)
      return CF_EPROTO;
    walk.off += 8 + l;
  }
  return walk.off == n ? CF_OK : CF_EPROTO;
}

int cf__ipc_chunk_next(cf__chunk_view *v, const unsigned char **in,
                       size_t *len) {
  *in = NULL;
  *len = 0;
  if (v->next >= v->count)
    return v->off == v->n ? CF_EOF : CF_EPROTO;
  size_t l;
  if (cf__chunk_peek(v, &l) != CF_OK)
    return CF_EPROTO;
  *in = l ? v->p + v->off + 8 : NULL;
  *len = l;
  v->off += 8 + l;
  v->next++;
  return CF_OK;
}

int cf__ipc_decode_stop(const cf__frame *fr, bool chunk_running,
                        uint64_t running_id) {
  if (fr->type != CF__MSG_STOP || fr->len != 0)
    return CF_EPROTO;
  if (!chunk_running)
    return CF__STOP_IGNORE;
  return fr->id == running_id ? CF__STOP_NOW : CF_EPROTO;
}
