/*
 * The process pool's wire protocol (see ipc.h): one section per message,
 * its encoder beside its decoder, in the order of ipc.h.  Both ends run on
 * the same machine and binary, so integers travel in host byte order.
 */
#include "ipc.h"
#include "alloc.h"

#include <elf.h>
#include <limits.h>
#include <link.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifndef IOV_MAX
#define IOV_MAX 1024 /* what Linux takes in one sendmsg() */
#endif

/* ---- function references ------------------------------------------------- */

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

size_t cf__ipc_decode_fnref(const unsigned char *p, size_t n,
                            cf__fnref_view *out) {
  uint32_t len;
  *out = (cf__fnref_view){0};
  if (n < 4)
    return 0;
  memcpy(&len, p, 4);
  out->none = len == UINT32_MAX;
  if (out->none)
    return 4;
  if (len >= sizeof(((cf__fnref *)0)->name) || n - 4 < (size_t)len + 8)
    return 0;
  out->name = (const char *)p + 4;
  out->name_len = len;
  memcpy(&out->offset, p + 4 + len, 8);
  return 4 + (size_t)len + 8;
}

uintptr_t cf__fnref_view_resolve(const cf__fnref_view *v) {
  if (v->none)
    return 0;
  return cf__fnref_resolve(v->name, v->name_len, v->offset);
}

/* ---- framing ------------------------------------------------------------- */

/* Writes v[0..nv) whole, IOV_MAX iovecs at a time (a CHUNK of many large
 * inputs has more).  Consumes the iovecs.  Returns CF_OK or CF_ESYS. */
static int cf__ipc_writev(int fd, struct iovec *v, size_t nv) {
  while (nv) {
    struct msghdr m = {0};
    m.msg_iov = v;
    m.msg_iovlen = nv < IOV_MAX ? nv : IOV_MAX;
    ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return CF_ESYS;
    }
    /* Partial write: skip what went out. */
    size_t done = (size_t)w;
    while (nv && done >= v->iov_len) {
      done -= v->iov_len;
      v++;
      nv--;
    }
    if (nv) {
      v->iov_base = (char *)v->iov_base + done;
      v->iov_len -= done;
    }
  }
  return CF_OK;
}

/* A frame out on its channel. */
static int cf__chan_writev(cf__chan *ch, struct iovec *v, size_t nv) {
  return ch->ops ? ch->ops->writev(ch, v, nv) : cf__ipc_writev(ch->fd, v, nv);
}

int cf__ipc_send(cf__chan *ch, uint32_t type, uint64_t id,
                 const struct iovec *iov, int niov) {
  struct iovec v[8];
  cf__frame fr = {CF__IPC_MAGIC, type, id, 0};
  if (niov < 0 || niov > 7)
    return CF_EINVAL;
  v[0].iov_base = &fr;
  v[0].iov_len = sizeof fr;
  for (int i = 0; i < niov; i++) {
    /* The peer's cf__ipc_read_frame() would refuse more. */
    if (iov[i].iov_len > CF__IPC_MAX_PAYLOAD - fr.len)
      return CF_ENOMEM;
    v[i + 1] = iov[i];
    fr.len += iov[i].iov_len;
  }
  return cf__chan_writev(ch, v, (size_t)niov + 1);
}

int cf__chan_ready(cf__chan *ch) {
  if (ch->ops)
    return ch->ops->ready(ch);
  struct pollfd q = {ch->fd, POLLIN, 0};
  int r;
  while ((r = poll(&q, 1, 0)) < 0 && errno == EINTR)
    ;
  return r < 0 ? CF_ESYS : r;
}

int cf__chan_recv(cf__chan *ch, cf__frame *fr, unsigned char **payload) {
  *payload = NULL;
  if (ch->ops)
    return ch->ops->recv(ch, fr, payload);
  int rc = cf__ipc_read_frame(ch->fd, fr);
  return rc == CF_OK ? cf__ipc_read_payload(ch->fd, (size_t)fr->len, payload)
                     : rc;
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

bool cf__ipc_frame_ok(const cf__frame *fr) {
  return fr->magic == CF__IPC_MAGIC && fr->type >= CF__MSG_INIT &&
         fr->type <= CF__MSG_LAST && fr->len <= CF__IPC_MAX_PAYLOAD;
}

int cf__ipc_read_frame(int fd, cf__frame *fr) {
  int rc = cf__ipc_read(fd, fr, sizeof *fr);
  if (rc != CF_OK)
    return rc;
  return cf__ipc_frame_ok(fr) ? CF_OK : CF_EPROTO;
}

int cf__ipc_read_payload(int fd, size_t len, unsigned char **out) {
  *out = NULL;
  if (len == 0)
    return CF_OK;
  unsigned char *buf = cf__malloc(len);
  if (!buf)
    return CF_ENOMEM;
  int rc = cf__ipc_read(fd, buf, len);
  if (rc != CF_OK) {
    free(buf);
    return rc;
  }
  *out = buf;
  return CF_OK;
}

/* ---- module identities (what INIT and READY speak of) -------------------- */

/* One module as dl_iterate_phdr shows it, while collecting. */
typedef struct cf__modinfo {
  const ElfW(Dyn) *dyn;
  uintptr_t addr;     /* dlpi_addr */
  uintptr_t first;    /* the lowest PT_LOAD address */
  uintptr_t vlo, vhi; /* all PT_LOAD segments */
} cf__modinfo;

typedef struct cf__collect {
  cf__modules *ms;
  cf__modinfo *info;
  size_t cap;
  bool nomem;
} cf__collect;

/* Is [p, p + n) inside the module's loaded segments? */
static bool cf__inside(const cf__modinfo *mi, uintptr_t p, size_t n) {
  return p >= mi->vlo && p <= mi->vhi && n <= mi->vhi - p;
}

/* The GNU build-id from the module's PT_NOTE segments, in memory. */
static void cf__build_id(struct dl_phdr_info *info, const cf__modinfo *mi,
                         cf__module *m) {
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_NOTE)
      continue;
    uintptr_t p = info->dlpi_addr + ph->p_vaddr;
    size_t left = ph->p_memsz;
    size_t align = ph->p_align == 8 ? 8 : 4;
    if (!cf__inside(mi, p, left))
      continue;
    while (left >= sizeof(ElfW(Nhdr))) {
      ElfW(Nhdr) nh;
      memcpy(&nh, (const void *)p, sizeof nh);
      size_t name = (nh.n_namesz + align - 1) & ~(align - 1);
      size_t desc = (nh.n_descsz + align - 1) & ~(align - 1);
      size_t total = sizeof nh + name + desc;
      if (name > left || desc > left || total > left)
        break;
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
          memcmp((const char *)p + sizeof nh, "GNU", 4) == 0 &&
          nh.n_descsz > 0 && nh.n_descsz <= CF__ID_MAX) {
        m->kind = CF__ID_BUILD;
        m->idlen = (uint8_t)nh.n_descsz;
        memcpy(m->id, (const char *)p + sizeof nh + name, nh.n_descsz);
        return;
      }
      p += total;
      left -= total;
    }
  }
}

/* Room for one more module in the list and its side table.  False when the
 * list is full (CF__MODULES_MAX: more would not fit in an INIT) or memory
 * is short (c->nomem). */
static bool cf__collect_grow(cf__collect *c) {
  cf__modules *ms = c->ms;
  if (ms->n < c->cap)
    return true;
  size_t cap = c->cap ? c->cap * 2 : 16;
  if (cap > CF__MODULES_MAX)
    return false; /* the rest stay unlisted */
  cf__module *m = cf__realloc(ms->m, cap * sizeof *m);
  if (!m) {
    c->nomem = true;
    return false;
  }
  ms->m = m;
  cf__modinfo *mi = cf__realloc(c->info, cap * sizeof *mi);
  if (!mi) {
    c->nomem = true;
    return false;
  }
  c->info = mi;
  c->cap = cap;
  return true;
}

/* The module's extent from its program headers: all its loaded segments
 * (mi), its executable ones (m->lo, m->hi), its dynamic section. */
static void cf__collect_segments(struct dl_phdr_info *info, cf__module *m,
                                 cf__modinfo *mi) {
  mi->addr = info->dlpi_addr;
  mi->vlo = UINTPTR_MAX;
  m->lo = UINTPTR_MAX;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (ph->p_type == PT_DYNAMIC)
      mi->dyn = (const ElfW(Dyn) *)lo;
    if (ph->p_type != PT_LOAD)
      continue;
    if (lo < mi->vlo)
      mi->vlo = mi->first = lo;
    if (hi > mi->vhi)
      mi->vhi = hi;
    if (ph->p_flags & PF_X) {
      if (lo < m->lo)
        m->lo = lo;
      if (hi > m->hi)
        m->hi = hi;
    }
  }
  if (mi->vlo == UINTPTR_MAX)
    mi->vlo = 0;
  if (m->lo == UINTPTR_MAX)
    m->lo = 0;
}

static int cf__collect_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  CF__UNUSED(size);
  cf__collect *c = arg;
  cf__modules *ms = c->ms;
  if (!cf__collect_grow(c))
    return 1;
  cf__module *m = &ms->m[ms->n];
  cf__modinfo *mi = &c->info[ms->n];
  memset(m, 0, sizeof *m);
  memset(mi, 0, sizeof *mi);
  m->name = cf__strdup(info->dlpi_name ? info->dlpi_name : "");
  if (!m->name) {
    c->nomem = true;
    return 1;
  }
  ms->n++;
  cf__collect_segments(info, m, mi);
  cf__build_id(info, mi, m);
  return 0;
}

/* A d_ptr of the dynamic section: glibc relocates most in place, some
 * targets keep them as link-time addresses. */
static uintptr_t cf__dyn_ptr(const cf__modinfo *mi, uintptr_t v) {
  return v < mi->addr ? v + mi->addr : v;
}

/* A string of the module's string table, or NULL if it lies outside. */
static const char *cf__dyn_str(const cf__modinfo *mi, uintptr_t strtab,
                               uintptr_t off) {
  if (!strtab || !cf__inside(mi, strtab + off, 1))
    return NULL;
  const char *s = (const char *)(strtab + off);
  size_t max = mi->vhi - (strtab + off);
  return memchr(s, '\0', max) ? s : NULL;
}

static uintptr_t cf__dyn_strtab(const cf__modinfo *mi) {
  for (const ElfW(Dyn) *d = mi->dyn; d && d->d_tag != DT_NULL; d++)
    if (d->d_tag == DT_STRTAB)
      return cf__dyn_ptr(mi, d->d_un.d_ptr);
  return 0;
}

static const char *cf__basename(const char *s) {
  const char *b = strrchr(s, '/');
  return b ? b + 1 : s;
}

/* Does module k answer to the DT_NEEDED name `need`? */
static bool cf__answers(const cf__modules *ms, const cf__modinfo *info,
                        size_t k, const char *need) {
  if (strcmp(ms->m[k].name, need) == 0 ||
      strcmp(cf__basename(ms->m[k].name), need) == 0)
    return true;
  const cf__modinfo *mi = &info[k];
  if (!mi->dyn || !cf__inside(mi, (uintptr_t)mi->dyn, sizeof *mi->dyn))
    return false;
  uintptr_t strtab = cf__dyn_strtab(mi);
  for (const ElfW(Dyn) *d = mi->dyn; d->d_tag != DT_NULL; d++)
    if (d->d_tag == DT_SONAME) {
      const char *so = cf__dyn_str(mi, strtab, d->d_un.d_val);
      return so && strcmp(so, need) == 0;
    }
  return false;
}

/* Start-up modules: the program, the closure of DT_NEEDED from it, and
 * everything the loader placed before the last of those. */
static void cf__mark_startup(cf__modules *ms, const cf__modinfo *info) {
  if (!ms->n)
    return;
  ms->m[0].startup = true;
  for (bool grew = true; grew;) {
    grew = false;
    for (size_t j = 0; j < ms->n; j++) {
      const cf__modinfo *mi = &info[j];
      if (!ms->m[j].startup || !mi->dyn ||
          !cf__inside(mi, (uintptr_t)mi->dyn, sizeof *mi->dyn))
        continue;
      uintptr_t strtab = cf__dyn_strtab(mi);
      for (const ElfW(Dyn) *d = mi->dyn; d->d_tag != DT_NULL; d++) {
        if (d->d_tag != DT_NEEDED)
          continue;
        const char *need = cf__dyn_str(mi, strtab, d->d_un.d_val);
        /* The loader gives a name the first module that answers to it. */
        for (size_t k = 0; need && k < ms->n; k++)
          if (cf__answers(ms, info, k, need)) {
            if (!ms->m[k].startup)
              ms->m[k].startup = grew = true;
            break;
          }
      }
    }
  }
  size_t last = 0;
  for (size_t k = 0; k < ms->n; k++)
    if (ms->m[k].startup)
      last = k;
  for (size_t k = 0; k < last; k++)
    ms->m[k].startup = true;
}

/* Modules without a build-id: the device and inode of their first mapping. */
static void cf__file_ids(cf__modules *ms, const cf__modinfo *info) {
  bool need = false;
  for (size_t k = 0; k < ms->n; k++)
    need |= ms->m[k].kind == CF__ID_NONE && info[k].first;
  if (!need)
    return;
  FILE *fp = fopen("/proc/self/maps", "re");
  if (!fp)
    return;
  char line[4096 + 256];
  while (fgets(line, sizeof line, fp)) {
    unsigned long lo, hi, maj, min, ino;
    if (sscanf(line, "%lx-%lx %*s %*s %lx:%lx %lu", &lo, &hi, &maj, &min,
               &ino) != 5 ||
        ino == 0)
      continue;
    for (size_t k = 0; k < ms->n; k++) {
      cf__module *m = &ms->m[k];
      if (m->kind != CF__ID_NONE || info[k].first < lo || info[k].first >= hi)
        continue;
      uint64_t dev = ((uint64_t)maj << 32) | min, in = ino;
      m->kind = CF__ID_FILE;
      m->idlen = 16;
      memcpy(m->id, &dev, 8);
      memcpy(m->id + 8, &in, 8);
    }
  }
  fclose(fp);
}

int cf__modules_collect(cf__modules *out) {
  memset(out, 0, sizeof *out);
  cf__collect c = {.ms = out};
  dl_iterate_phdr(cf__collect_cb, &c);
  if (c.nomem) {
    free(c.info);
    cf__modules_free(out);
    return CF_ENOMEM;
  }
  cf__mark_startup(out, c.info);
  cf__file_ids(out, c.info);
  free(c.info);
  return CF_OK;
}

void cf__modules_free(cf__modules *ms) {
  for (size_t k = 0; k < ms->n; k++)
    free(ms->m[k].name);
  free(ms->m);
  ms->m = NULL;
  ms->n = 0;
}

long cf__modules_find(const cf__modules *ms, uintptr_t addr) {
  for (size_t k = 0; k < ms->n; k++)
    if (addr >= ms->m[k].lo && addr < ms->m[k].hi)
      return (long)k;
  return -1;
}

uint32_t cf__modules_compare(const cf__module_view *views, uint32_t count,
                             const cf__modules *mine, uint32_t *bad) {
  uint32_t nbad = 0;
  for (uint32_t i = 0; i < count; i++) {
    const cf__module_view *v = &views[i];
    const cf__module *m = NULL;
    for (size_t k = 0; k < mine->n && !m; k++)
      if (strlen(mine->m[k].name) == v->name_len &&
          memcmp(mine->m[k].name, v->name, v->name_len) == 0)
        m = &mine->m[k];
    if (!m || m->kind != v->kind || m->idlen != v->idlen ||
        memcmp(m->id, v->id, v->idlen) != 0)
      bad[nbad++] = i;
  }
  return nbad;
}

/* ---- a pool's task functions -------------------------------------------- */

int cf__fncache_get(cf__fncache *c, const cf__modules *ms, uintptr_t fn,
                    long *mod, cf__fnref *ref) {
  for (unsigned i = 0; fn && i < 8; i++)
    if (c->e[i].fn == fn) {
      *mod = c->e[i].mod;
      *ref = c->e[i].ref;
      return CF_OK;
    }
  *mod = cf__modules_find(ms, fn);
  if (*mod < 0 || cf__fnref_locate(fn, ref) != CF_OK)
    return CF_EINVAL;
  unsigned i = c->next++ % 8;
  c->e[i].fn = fn;
  c->e[i].mod = *mod;
  c->e[i].ref = *ref;
  return CF_OK;
}

/* ---- HELLO: the handshake ------------------------------------------------ */

void cf__hello_put(const unsigned char *secret, unsigned char *out) {
  cf__frame fr = {CF__IPC_MAGIC, CF__MSG_HELLO, 0, CF__SECRET_LEN};
  memcpy(out, &fr, sizeof fr);
  memcpy(out + sizeof fr, secret, CF__SECRET_LEN);
}

bool cf__hello_check(const unsigned char *p, size_t n,
                     const unsigned char *secret) {
  if (n != CF__HELLO_SIZE)
    return false;
  cf__frame fr;
  memcpy(&fr, p, sizeof fr);
  if (fr.magic != CF__IPC_MAGIC || fr.type != CF__MSG_HELLO || fr.id != 0 ||
      fr.len != CF__SECRET_LEN)
    return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < CF__SECRET_LEN; i++)
    diff |= p[sizeof fr + i] ^ secret[i];
  return diff == 0;
}

/* ---- INIT: the parent's modules, the initializer ------------------------- */

size_t cf__modules_size(const cf__modules *ms) {
  size_t n = 4;
  for (size_t k = 0; k < ms->n; k++)
    n += 4 + strlen(ms->m[k].name) + 2 + ms->m[k].idlen;
  return n;
}

void cf__modules_put(const cf__modules *ms, unsigned char *out) {
  uint32_t count = (uint32_t)ms->n;
  memcpy(out, &count, 4);
  size_t off = 4;
  for (size_t k = 0; k < ms->n; k++) {
    const cf__module *m = &ms->m[k];
    uint32_t len = (uint32_t)strlen(m->name);
    memcpy(out + off, &len, 4);
    memcpy(out + off + 4, m->name, len);
    off += 4 + len;
    out[off] = m->kind;
    out[off + 1] = m->idlen;
    memcpy(out + off + 2, m->id, m->idlen);
    off += 2 + m->idlen;
  }
}

int cf__ipc_send_init(cf__chan *ch, const unsigned char *mods, size_t mods_len,
                      const cf__fnref *init, const void *arg, size_t arg_len) {
  unsigned char ref[CF__FNREF_MAX];
  cf__fnref_put(init, ref);
  struct iovec iov[3] = {{(void *)mods, mods_len},
                         {ref, cf__fnref_size(init)},
                         {(void *)arg, arg_len}};
  return cf__ipc_send(ch, CF__MSG_INIT, 0, iov, 3);
}

int cf__modules_decode(const unsigned char *p, size_t n, size_t *used,
                       cf__module_view **views, uint32_t *count) {
  uint32_t c;
  *views = NULL;
  *count = 0;
  if (n < 4)
    return CF_EPROTO;
  memcpy(&c, p, 4);
  if (c > CF__MODULES_MAX || (size_t)c * 6 > n - 4)
    return CF_EPROTO;
  cf__module_view *v = cf__calloc(c ? c : 1, sizeof *v);
  if (!v)
    return CF_ENOMEM;
  size_t off = 4;
  for (uint32_t k = 0; k < c; k++) {
    uint32_t len;
    if (n - off < 4)
      goto bad;
    memcpy(&len, p + off, 4);
    off += 4;
    if (len > PATH_MAX || n - off < (size_t)len + 2)
      goto bad;
    v[k].name = (const char *)p + off;
    v[k].name_len = len;
    off += len;
    v[k].kind = p[off];
    v[k].idlen = p[off + 1];
    off += 2;
    if (v[k].kind > CF__ID_FILE || v[k].idlen > CF__ID_MAX ||
        (v[k].kind == CF__ID_NONE) != (v[k].idlen == 0) || n - off < v[k].idlen)
      goto bad;
    v[k].id = p + off;
    off += v[k].idlen;
  }
  *used = off;
  *views = v;
  *count = c;
  return CF_OK;
bad:
  free(v);
  return CF_EPROTO;
}

int cf__ipc_decode_init(const unsigned char *p, size_t n, cf__init_view *out) {
  size_t used;
  *out = (cf__init_view){0};
  int rc = cf__modules_decode(p, n, &used, &out->mods, &out->nmods);
  if (rc != CF_OK)
    return rc;
  size_t fl = cf__ipc_decode_fnref(p + used, n - used, &out->fn);
  if (!fl) {
    free(out->mods);
    *out = (cf__init_view){0};
    return CF_EPROTO;
  }
  used += fl;
  out->arg_len = n - used;
  out->arg = out->arg_len ? p + used : NULL;
  return CF_OK;
}

/* ---- READY: the worker serves -------------------------------------------- */

int cf__ipc_send_ready(cf__chan *ch, const uint32_t *bad, uint32_t nbad) {
  for (uint32_t i = 1; i < nbad; i++)
    if (bad[i] <= bad[i - 1])
      return CF_EINVAL; /* the decoder wants them ascending */
  struct iovec iov = {(void *)bad, (size_t)nbad * 4};
  return cf__ipc_send(ch, CF__MSG_READY, 0, &iov, 1);
}

int cf__ipc_decode_ready(const unsigned char *p, size_t n, size_t nmods) {
  if (n % 4 != 0 || n / 4 > nmods)
    return CF_EPROTO;
  uint32_t prev = 0;
  for (size_t i = 0; i < n / 4; i++) {
    uint32_t idx;
    memcpy(&idx, p + 4 * i, 4);
    if (idx >= nmods || (i && idx <= prev))
      return CF_EPROTO;
    prev = idx;
  }
  return CF_OK;
}

/* ---- INITFAIL: the worker will not serve --------------------------------- */

int cf__ipc_send_initfail(cf__chan *ch, int32_t code, uint32_t module) {
  if (code == 0)
    return CF_EINVAL;
  unsigned char p[CF__INITFAIL_MAX];
  memcpy(p, &code, 4);
  memcpy(p + 4, &module, 4);
  struct iovec iov = {p, module != UINT32_MAX ? 8 : 4};
  return cf__ipc_send(ch, CF__MSG_INITFAIL, 0, &iov, 1);
}

int cf__ipc_decode_initfail(const unsigned char *p, size_t n, size_t nmods,
                            int32_t *code, uint32_t *module) {
  *code = 0;
  *module = UINT32_MAX;
  if (n != 4 && n != 8)
    return CF_EPROTO;
  int32_t c;
  uint32_t m = UINT32_MAX;
  memcpy(&c, p, 4);
  if (n == 8)
    memcpy(&m, p + 4, 4);
  if (c == 0 || (n == 8 && m >= nmods))
    return CF_EPROTO;
  *code = c;
  *module = m;
  return CF_OK;
}

/* ---- TASK: one input ----------------------------------------------------- */

int cf__ipc_send_task(cf__chan *ch, uint64_t id, const cf__fnref *fn,
                      const void *in, size_t len) {
  unsigned char ref[CF__FNREF_MAX];
  cf__fnref_put(fn, ref);
  struct iovec iov[2] = {{ref, cf__fnref_size(fn)}, {(void *)in, len}};
  return cf__ipc_send(ch, CF__MSG_TASK, id, iov, 2);
}

int cf__ipc_decode_task(const unsigned char *p, size_t n, cf__task_view *out) {
  size_t used = cf__ipc_decode_fnref(p, n, &out->fn);
  if (!used)
    return CF_EPROTO;
  out->len = n - used;
  out->in = out->len ? p + used : NULL;
  return CF_OK;
}

/* ---- RESULT: a TASK's answer --------------------------------------------- */

int cf__ipc_send_result(cf__chan *ch, uint64_t id, int32_t rc, bool has_msg,
                        const void *data, size_t len) {
  if (has_msg && rc == 0)
    return CF_EINVAL;
  unsigned char head[CF__RESULT_HEAD];
  uint32_t m = has_msg;
  memcpy(head, &rc, 4);
  memcpy(head + 4, &m, 4);
  struct iovec iov[2] = {{head, sizeof head}, {(void *)data, len}};
  return cf__ipc_send(ch, CF__MSG_RESULT, id, iov, 2);
}

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

/* ---- CHUNK: a batch of inputs -------------------------------------------- */

/* Inputs up to a page travel copied into the chunk's own buffer (with the
 * fnref and every length): an iovec each would cost more than the copy.
 * Larger ones go to the socket from where they are. */
#define CF__CHUNK_COPY_MAX 4096

/* The chunk's size on the wire, and what of it is copied (*copied) and how
 * many inputs are not (*big).  CF_ENOMEM when a frame cannot carry it. */
static int cf__chunk_size(const cf__fnref *fn, const cf__batch *c,
                          size_t *total, size_t *copied, size_t *big) {
  /* More than a frame carries (which a worker would refuse) cannot be
   * sent; nor can a sum that would not fit a size_t (32-bit). */
  const uint64_t max = CF__IPC_MAX_PAYLOAD < SIZE_MAX ? CF__IPC_MAX_PAYLOAD
                                                      : SIZE_MAX;
  *total = *copied = cf__fnref_size(fn) + 8;
  *big = 0;
  for (size_t i = 0; i < c->n; i++) {
    size_t l;
    cf__batch_input(c, i, &l);
    if (l > max - 8 || *total > max - 8 - l)
      return CF_ENOMEM;
    *total += 8 + l;
    *copied += 8 + (l > CF__CHUNK_COPY_MAX ? 0 : l);
    *big += l > CF__CHUNK_COPY_MAX;
  }
  return CF_OK;
}

/* A memcpy kept out of line on purpose: inlined where the compiler knows
 * a bound (l <= CF__CHUNK_COPY_MAX), gcc -O2 emits `rep movsq`, whose
 * start-up cost made a chunk of 8-byte inputs 3-4x slower to encode (62-82
 * ns an input instead of 21-27). */
__attribute__((noinline)) static void cf__put_bytes(unsigned char *dst,
                                                    const void *src, size_t n) {
  memcpy(dst, src, n);
}

int cf__ipc_send_chunk(cf__chan *ch, uint64_t id, const cf__fnref *fn,
                       const cf__batch *c) {
  size_t total, copied, big;
  if (cf__chunk_size(fn, c, &total, &copied, &big) != CF_OK)
    return CF_ENOMEM;
  /* The header, then runs of copied bytes, each (but the last) followed by
   * a large input: at most 2 * big + 2 iovecs (big < total / 4096). */
  unsigned char *buf = cf__malloc(copied);
  struct iovec *v = cf__calloc(2 * big + 2, sizeof *v);
  if (!buf || !v) {
    free(buf);
    free(v);
    return CF_ENOMEM;
  }
  cf__frame fr = {CF__IPC_MAGIC, CF__MSG_CHUNK, id, total};
  v[0] = (struct iovec){&fr, sizeof fr};
  size_t nv = 1, off = cf__fnref_size(fn), run = 0;
  uint64_t n = c->n;
  cf__fnref_put(fn, buf);
  memcpy(buf + off, &n, 8);
  off += 8;
  for (size_t i = 0; i < c->n; i++) {
    size_t l;
    const void *in = cf__batch_input(c, i, &l);
    uint64_t l64 = l;
    memcpy(buf + off, &l64, 8);
    off += 8;
    if (l <= CF__CHUNK_COPY_MAX) {
      if (l)
        cf__put_bytes(buf + off, in, l);
      off += l;
      continue;
    }
    v[nv++] = (struct iovec){buf + run, off - run};
    v[nv++] = (struct iovec){(void *)in, l};
    run = off;
  }
  if (off > run)
    v[nv++] = (struct iovec){buf + run, off - run};
  int rc = cf__chan_writev(ch, v, nv);
  free(v);
  free(buf);
  return rc;
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

/* ---- CHUNKRESULT: a CHUNK's answer --------------------------------------- */

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
/* Would cf__ipc_decode_chunk_result() take this item? */
static bool cf__item_valid(int32_t status, int32_t code, bool has_msg,
                           size_t len) {
  switch (status) {
  case CF__ITEM_OK:
    return !has_msg;
  case CF__ITEM_FAILED:
    return code != 0;
  case CF__ITEM_NOT_RUN:
    return !has_msg && len == 0;
  default:
    return false;
  }
}

int cf__ipc_chunk_result_add(cf__obuf *b, int32_t status, int32_t code,
                             bool has_msg, const void *data, size_t len) {
  int rc = CF_EINVAL;
  if (!cf__item_valid(status, code, has_msg, len))
    goto fail;
  /* Beyond a frame's payload the parent would refuse it: never build it. */
  rc = CF_ENOMEM;
  if (len > CF__IPC_MAX_PAYLOAD - 24 ||
      b->len > CF__IPC_MAX_PAYLOAD - 24 - len ||
      cf__obuf_reserve(b, 24 + len) != CF_OK)
    goto fail;
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
fail:
  free(b->p); /* every error frees it: the worker has nothing to undo */
  *b = (cf__obuf){0};
  return rc;
}

int cf__ipc_send_chunk_result(cf__chan *ch, uint64_t id, cf__obuf *b) {
  struct iovec iov = {b->p, b->len};
  int rc = cf__ipc_send(ch, CF__MSG_CHUNKRESULT, id, &iov, 1);
  free(b->p);
  *b = (cf__obuf){0};
  return rc;
}

static void cf__items_clear(cf__batch_item *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    cf__buf_free(&items[i].out);
    free(items[i].msg);
    items[i] = (cf__batch_item){.status = CF_ECANCELLED};
  }
}

/* One item of a CHUNKRESULT at p[*off..n) into it (its bytes copied);
 * moves *off past it.  Returns CF_OK, CF_EPROTO or CF_ENOMEM (it may then
 * hold part of what it was given: the caller clears it). */
static int cf__decode_item(const unsigned char *p, size_t n, size_t *off,
                           cf__batch_item *it) {
  int32_t status, code;
  uint32_t has_msg, pad;
  uint64_t len;
  size_t o = *off;
  if (n - o < 24)
    return CF_EPROTO;
  memcpy(&status, p + o, 4);
  memcpy(&code, p + o + 4, 4);
  memcpy(&has_msg, p + o + 8, 4);
  memcpy(&pad, p + o + 12, 4);
  memcpy(&len, p + o + 16, 8);
  o += 24;
  if (pad != 0 || has_msg > 1 || len > n - o)
    return CF_EPROTO;
  if (status == CF__ITEM_OK && !has_msg) {
    if (cf__buf_copy(&it->out, p + o, (size_t)len) != CF_OK)
      return CF_ENOMEM;
    it->status = CF_OK;
  } else if (status == CF__ITEM_FAILED && code != 0) {
    it->status = CF_ETASK;
    it->code = code;
    if (has_msg) {
      if (!(it->msg = cf__malloc((size_t)len + 1)))
        return CF_ENOMEM;
      memcpy(it->msg, p + o, (size_t)len);
      it->msg[len] = '\0';
    }
  } else if (status == CF__ITEM_NOT_RUN && len == 0 && !has_msg) {
    it->status = CF_ECANCELLED;
  } else {
    return CF_EPROTO;
  }
  *off = o + (size_t)len;
  return CF_OK;
}

int cf__ipc_decode_chunk_result(const unsigned char *p, size_t n, size_t expect,
                                cf__batch_item *items) {
  uint64_t count;
  if (n < 8)
    return CF_EPROTO;
  memcpy(&count, p, 8);
  if (count != expect)
    return CF_EPROTO;
  size_t off = 8;
  for (size_t i = 0; i < expect; i++) {
    int rc = cf__decode_item(p, n, &off, &items[i]);
    if (rc != CF_OK) {
      cf__items_clear(items, i + 1);
      return rc;
    }
  }
  if (off != n) {
    cf__items_clear(items, expect);
    return CF_EPROTO;
  }
  return CF_OK;
}

/* ---- STOP: skip the rest of a chunk -------------------------------------- */

int cf__ipc_send_stop(cf__chan *ch, uint64_t id) {
  return cf__ipc_send(ch, CF__MSG_STOP, id, NULL, 0);
}

int cf__ipc_decode_stop(const cf__frame *fr, bool chunk_running,
                        uint64_t running_id) {
  if (fr->type != CF__MSG_STOP || fr->len != 0)
    return CF_EPROTO;
  if (!chunk_running)
    return CF__STOP_IGNORE;
  return fr->id == running_id ? CF__STOP_NOW : CF_EPROTO;
}

/* ---- EXIT: the worker's end ---------------------------------------------- */

int cf__ipc_send_exit(cf__chan *ch, uint64_t id) {
  return cf__ipc_send(ch, CF__MSG_EXIT, id, NULL, 0);
}

int cf__ipc_decode_exit(const cf__frame *fr) {
  return fr->type == CF__MSG_EXIT && fr->len == 0 ? CF_OK : CF_EPROTO;
}
