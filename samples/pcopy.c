/*
 * pcopy: copy a folder's files in parallel with cfutures.
 *
 * The seed's Python program submits shutil.copy(src, dst) for every file to
 * a ThreadPoolExecutor(max_workers=4).  pcopy keeps that shape (a pool of
 * copy tasks, --processes for the process pool) but not its per-file cost:
 *
 *  - One task copies a batch of files of one folder (up to 64, and at
 *    least two batches per worker in a folder of few files), so a future,
 *    a wake-up and a message are paid per batch, not per file.  The input
 *    is bytes (the folder's path below SRC and the names), so --processes
 *    runs the very same task in worker processes.
 *  - The walk is a generator: folders are read, and made in DST, only as
 *    batches are needed, so copying starts at once.  A folder is read
 *    whole and closed (depth costs no descriptors), with stat only where
 *    readdir's type does not tell; batches come in turn from up to -j
 *    folders, so workers mostly create files in different folders.
 *  - Every open is relative to a descriptor: SRC and DST are opened once,
 *    a task opens its batch's two folders once (without following any
 *    symbolic link on the way), then each file by name.
 *  - A file is written as an unnamed O_TMPFILE and linked under its final
 *    name when complete (a named temporary and a rename where the
 *    filesystem cannot), so no partial file ever has a final name, and an
 *    abandoned copy leaves nothing behind.
 *
 * This file is the program: options, the walk, batches in flight, signals,
 * the report.  The copy task itself is in pcopy_task.c.  See pcopy(1).
 */
#include "pcopy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_SOME_FAILED 1
#define EXIT_USAGE 2

/* ---- messages --------------------------------------------------------- */

__attribute__((format(printf, 1, 2))) static void warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("pcopy: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static _Noreturn void out_of_memory(void) {
  warn("out of memory");
  exit(EXIT_SOME_FAILED);
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q)
    out_of_memory();
  return q;
}

static char *xstrdup(const char *s) {
  char *d = strdup(s);
  if (!d)
    out_of_memory();
  return d;
}

/* Room for a path of PATH_MAX bytes each shown as \xHH. */
#define WHERE_MAX (4 * PATH_MAX + 64)

/* Appends s to buf[*n..cap) with control characters shown as \xHH (C0,
 * DEL, and C1 in UTF-8): a file name cannot move the cursor, recolour
 * the terminal or forge a line of output.  Other bytes, UTF-8 letters
 * among them, are kept. */
static void put_shown(char *buf, size_t cap, size_t *n, const char *s) {
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    bool c1 = c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f;
    if (*c < 0x20 || *c == 0x7f || c1) {
      for (int k = 0; k < (c1 ? 2 : 1) && *n + 5 < cap; k++)
        *n += (size_t)snprintf(buf + *n, cap - *n, "\\x%02x", c[k]);
      c += c1;
    } else if (*n + 1 < cap) {
      buf[(*n)++] = (char)*c;
    }
  }
  buf[*n] = '\0';
}

/* "top/rel/name" for messages ("top/name" for the top folder), shown
 * safely (put_shown). */
static void show_path(char *buf, size_t cap, const char *top, const char *rel,
                      const char *name) {
  bool dot = strcmp(rel, ".") == 0;
  size_t n = 0;
  buf[0] = '\0';
  put_shown(buf, cap, &n, top);
  if (!dot) {
    put_shown(buf, cap, &n, "/");
    put_shown(buf, cap, &n, rel);
  }
  if (name) {
    put_shown(buf, cap, &n, "/");
    put_shown(buf, cap, &n, name);
  }
}

/* ---- the run ----------------------------------------------------------- */

typedef struct dirfix { /* a DST folder's mode and times, set last */
  char *rel;
  struct stat st;
} dirfix;

typedef struct pending { /* a SRC folder still to read */
  char *rel;
  dev_t dev;
  ino_t ino;
} pending;

typedef struct hardlink { /* with -a: a second name of a copied file */
  char *first, *again;    /* DST paths below DST */
} hardlink;

typedef struct inode_slot {
  dev_t dev;
  ino_t ino;
  char *first; /* NULL: empty */
} inode_slot;

/* An entry of the folder being handed out. */
typedef struct item {
  size_t off;       /* of its name in the arena */
  uint32_t namelen; /* with the NUL */
  uint32_t kind;
  uint64_t dev, ino;
} item;

/* A folder being handed out: its entries, read at once (names in arena),
 * and the next one to hand out. */
typedef struct listing {
  char *rel;   /* below SRC and DST; owned by run.dirs */
  bool is_new; /* made by this run: nothing in it to skip */
  item *items;
  size_t n, cap, pos, per;
  char *arena;
  size_t alen, acap;
} listing;

/* A batch in flight: its request (for the names), its future. */
typedef struct batch {
  struct batch *next_done;
  cf_future *f;
  unsigned char *req;
  size_t len;
} batch;

typedef struct run {
  const char *src, *dst;
  long jobs;
  bool force, processes, recursive, archive, quiet;
  uint32_t flags;
  cf_executor *ex;

  /* The walk: the folders being handed out, then those still to read. */
  bool made_dst;
  listing *ls;
  size_t nls, cls, turn;
  pending *stack;
  size_t nstack, cstack;
  bool walk_done;
  dirfix *dirs;
  size_t ndirs, cdirs;
  inode_slot *inodes; /* open addressing, with -a */
  size_t ninodes, cinodes;
  hardlink *links;
  size_t nlinks, clinks;

  /* Batches in flight, and those done (pushed by done callbacks). */
  size_t inflight, window;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  batch *done;
  bool broken;

  /* Counts. */
  uint64_t found, copied, bytes, links_copied;
  size_t failed, skipped;
  bool warned_xattr;
  double t0, last_progress;
  bool show;
} run;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void human(char *buf, size_t n, double v) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    i++;
  }
  snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

/* The progress line (a terminal only): the count of files found grows
 * while the walk goes on, marked "+"; the time left is told once it is
 * done, from the rate of files. */
static void print_progress(run *r, bool final) {
  double t = now(), el = t - r->t0;
  if (!final && t - r->last_progress < 0.1)
    return;
  r->last_progress = t;
  char hb[32], hr[32], eta[32] = "--";
  human(hb, sizeof hb, (double)r->bytes);
  human(hr, sizeof hr, el > 0 ? (double)r->bytes / el : 0);
  if (r->walk_done && r->copied && el > 0)
    snprintf(eta, sizeof eta, "%.0f s",
             (double)(r->found - r->copied) * el / (double)r->copied);
  fprintf(stderr,
          "\r%" PRIu64 "/%" PRIu64 "%s files, %s copied, %s/s, ETA %s\033[K",
          r->copied, r->found, r->walk_done ? "" : "+", hb, hr, eta);
  if (final)
    fputc('\n', stderr);
  fflush(stderr);
}

/* ---- the walk: a generator of batches ------------------------------------ */

static void push_pending(run *r, char *rel, const struct stat *st) {
  if (r->nstack == r->cstack) {
    r->cstack = r->cstack ? 2 * r->cstack : 64;
    r->stack = xrealloc(r->stack, r->cstack * sizeof *r->stack);
  }
  r->stack[r->nstack++] = (pending){rel, st->st_dev, st->st_ino};
}

static char *rel_join(const char *rel, const char *name) {
  if (strcmp(rel, ".") == 0)
    return xstrdup(name);
  size_t a = strlen(rel), b = strlen(name);
  char *p = xrealloc(NULL, a + b + 2);
  memcpy(p, rel, a);
  p[a] = '/';
  memcpy(p + a + 1, name, b + 1);
  return p;
}

/* Makes DST's folder rel (its parent exists: the walk goes top down).
 * 1 when made, 0 when it was there, -1 with errno set. */
static int make_dst_dir(const char *rel) {
  if (strcmp(rel, ".") == 0)
    return 0;
  const char *slash = strrchr(rel, '/');
  char *parent = slash ? strndup(rel, (size_t)(slash - rel)) : NULL;
  if (slash && !parent)
    out_of_memory();
  int pfd = open_dir_below(g_dst, parent ? parent : ".");
  free(parent);
  if (pfd < 0)
    return -1;
  const char *name = slash ? slash + 1 : rel;
  struct stat st;
  int rc = mkdirat(pfd, name, 0700) == 0 ? 1 : -1;
  if (rc < 0 && errno == EEXIST) {
    rc = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW);
    if (rc == 0 && !S_ISDIR(st.st_mode)) {
      errno = ENOTDIR;
      rc = -1;
    }
  }
  int e = errno;
  close(pfd);
  errno = e;
  return rc;
}

/* With -a: a file with more than one name is copied once; its other names
 * become links to that copy, made at the end.  true when this name is one
 * of those others (recorded, not to copy). */
static bool seen_inode(run *r, const struct stat *st, const char *rel) {
  if (r->ninodes * 2 >= r->cinodes) { /* grow, and place again */
    size_t oc = r->cinodes, nc = oc ? 2 * oc : 256;
    inode_slot *old = r->inodes, *t = calloc(nc, sizeof *t);
    if (!t)
      out_of_memory();
    for (size_t i = 0; i < oc; i++)
      if (old[i].first) {
        size_t h = ((size_t)old[i].ino * 0x9E3779B97F4A7C15u) & (nc - 1);
        while (t[h].first)
          h = (h + 1) & (nc - 1);
        t[h] = old[i];
      }
    free(old);
    r->inodes = t;
    r->cinodes = nc;
  }
  size_t h = ((size_t)st->st_ino * 0x9E3779B97F4A7C15u) & (r->cinodes - 1);
  for (; r->inodes[h].first; h = (h + 1) & (r->cinodes - 1)) {
    inode_slot *s = &r->inodes[h];
    if (s->dev == st->st_dev && s->ino == st->st_ino) {
      if (r->nlinks == r->clinks) {
        r->clinks = r->clinks ? 2 * r->clinks : 64;
        r->links = xrealloc(r->links, r->clinks * sizeof *r->links);
      }
      r->links[r->nlinks++] = (hardlink){s->first, xstrdup(rel)};
      return true;
    }
  }
  r->inodes[h] = (inode_slot){st->st_dev, st->st_ino, xstrdup(rel)};
  r->ninodes++;
  return false;
}

static void add_item(run *r, listing *l, const char *name, uint32_t kind,
                     uint64_t dev, uint64_t ino) {
  size_t nl = strlen(name) + 1;
  if (l->alen + nl > l->acap) {
    l->acap = 2 * (l->alen + nl) + 4096;
    l->arena = xrealloc(l->arena, l->acap);
  }
  memcpy(l->arena + l->alen, name, nl);
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 256;
    l->items = xrealloc(l->items, l->cap * sizeof *l->items);
  }
  l->items[l->n++] = (item){l->alen, (uint32_t)nl, kind, dev, ino};
  l->alen += nl;
  if (ENT_KIND(kind) == KIND_FILE)
    r->found++;
}

/* Reads the folder open on fd whole (then closes it: the walk keeps no
 * descriptor between batches).  Only what readdir cannot tell is asked of
 * stat: an unknown type, folders (to check them when they are opened),
 * and with -a the link count of files. */
static void read_folder(run *r, listing *l, int fd, const struct stat *dst) {
  DIR *d = fdopendir(fd);
  char where[WHERE_MAX];
  if (!d) {
    show_path(where, sizeof where, r->src, l->rel, NULL);
    warn("reading SRC '%s': %s", where, strerror(errno));
    r->failed++;
    close(fd);
    return;
  }
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d))) {
    const char *nm = e->d_name;
    if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
      continue;
    struct stat st;
    int type = e->d_type;
    bool ident = type == DT_UNKNOWN || type == DT_DIR ||
                 (r->archive && type == DT_REG);
    if (ident) {
      if (fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        show_path(where, sizeof where, r->src, l->rel, nm);
        warn("reading SRC '%s': %s", where, strerror(errno));
        r->failed++;
        errno = 0;
        continue;
      }
      type = S_ISREG(st.st_mode)   ? DT_REG
             : S_ISLNK(st.st_mode) ? DT_LNK
             : S_ISDIR(st.st_mode) ? DT_DIR
                                   : DT_UNKNOWN;
    } else {
      st.st_dev = dst->st_dev;
      st.st_ino = e->d_ino;
    }
    uint32_t id = ident ? ENT_IDENT : 0;
    if (type == DT_REG) {
      if (r->archive && st.st_nlink > 1) {
        char *rel = rel_join(l->rel, nm);
        bool again = seen_inode(r, &st, rel);
        free(rel);
        if (again) {
          r->found++;
          errno = 0;
          continue;
        }
      }
      add_item(r, l, nm, KIND_FILE | id, st.st_dev, st.st_ino);
    } else if (type == DT_LNK) {
      add_item(r, l, nm, KIND_LINK | id, st.st_dev, st.st_ino);
    } else if (type == DT_DIR) {
      if (r->recursive)
        push_pending(r, rel_join(l->rel, nm), &st);
    } else {
      show_path(where, sizeof where, r->src, l->rel, nm);
      warn("SRC '%s': not a regular file, folder or link, skipped", where);
      r->skipped++;
    }
    errno = 0;
  }
  if (errno) {
    show_path(where, sizeof where, r->src, l->rel, NULL);
    warn("reading SRC '%s': %s", where, strerror(errno));
    r->failed++;
  }
  closedir(d);
}

/* Takes the next folder of the stack into l: checks it is the folder the
 * scan saw, makes its twin in DST and reads it.  false when none is left. */
static bool next_folder(run *r, listing *l) {
  l->n = l->pos = l->alen = 0;
  while (r->nstack && !atomic_load(&g_stop)) {
    pending pd = r->stack[--r->nstack];
    char where[WHERE_MAX];
    int fd = open_dir_below(g_src, pd.rel), made;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
      show_path(where, sizeof where, r->src, pd.rel, NULL);
      warn("reading SRC '%s': %s", where,
           errno == ELOOP ? "changed since the scan (now a symbolic link), "
                            "skipped"
                          : strerror(errno));
      errno == ELOOP ? r->skipped++ : r->failed++;
    } else if (st.st_dev != pd.dev || st.st_ino != pd.ino) {
      show_path(where, sizeof where, r->src, pd.rel, NULL);
      warn("SRC '%s': changed since the scan (another folder), skipped", where);
      r->skipped++;
    } else if ((made = make_dst_dir(pd.rel)) < 0) {
      show_path(where, sizeof where, r->dst, pd.rel, NULL);
      warn("writing DST '%s': %s", where, strerror(errno));
      r->failed++;
    } else {
      if (r->ndirs == r->cdirs) {
        r->cdirs = r->cdirs ? 2 * r->cdirs : 64;
        r->dirs = xrealloc(r->dirs, r->cdirs * sizeof *r->dirs);
      }
      r->dirs[r->ndirs++] = (dirfix){pd.rel, st};
      l->rel = pd.rel;
      l->is_new = made == 1 || (r->made_dst && strcmp(pd.rel, ".") == 0);
      read_folder(r, l, fd, &st);
      /* Batches of up to 64, but at least two per worker for a folder of
       * few (large) files, so that they spread over the workers. */
      size_t spread = 2 * (size_t)r->jobs;
      l->per = (l->n + spread - 1) / spread;
      l->per = l->per < 1 ? 1 : l->per > BATCH_FILES ? BATCH_FILES : l->per;
      return true;
    }
    if (fd >= 0)
      close(fd);
    free(pd.rel);
  }
  return false;
}

/* The folder the next batch comes from: batches are taken in turn from up
 * to `jobs` folders at once, so that the workers mostly create files in
 * different folders (creating in one folder is serialised by its lock;
 * on ext4 by its blocks too).  NULL when the walk is over (or stopped). */
static listing *next_listing(run *r) {
  while (!atomic_load(&g_stop)) {
    while (r->nls < r->cls && next_folder(r, &r->ls[r->nls]))
      r->nls++;
    if (!r->nls)
      return NULL;
    listing *l = &r->ls[r->turn++ % r->nls];
    if (l->pos < l->n)
      return l;
    /* Done with this folder: its slot takes the last one's place. */
    listing done = *l;
    *l = r->ls[--r->nls];
    r->ls[r->nls] = done; /* keeps its buffers for the next folder */
  }
  return NULL;
}

/* The next batch to copy, or NULL when the walk is over (or stopped).  A
 * folder's DST twin is made before its first batch goes out. */
static batch *walk_next(run *r) {
  listing *l = next_listing(r);
  if (!l) {
    r->walk_done = true;
    return NULL;
  }
  size_t n = l->n - l->pos < l->per ? l->n - l->pos : l->per;
  size_t dl = strlen(l->rel) + 1, len = sizeof(req_head) + dl;
  for (size_t i = 0; i < n; i++)
    len += sizeof(req_ent) + l->items[l->pos + i].namelen;
  batch *b = calloc(1, sizeof *b);
  unsigned char *p = malloc(len);
  if (!b || !p)
    out_of_memory();
  req_head h = {REQ_MAGIC, r->flags | (l->is_new ? COPY_NEWDIR : 0),
                (uint32_t)n, (uint32_t)dl};
  b->req = p;
  b->len = len;
  memcpy(p, &h, sizeof h);
  memcpy(p + sizeof h, l->rel, dl);
  p += sizeof h + dl;
  for (size_t i = 0; i < n; i++) {
    const item *it = &l->items[l->pos++];
    const char *nm = l->arena + it->off;
    req_ent e = {it->dev, it->ino, it->namelen, it->kind};
    memcpy(p, &e, sizeof e);
    memcpy(p + sizeof e, nm, e.namelen);
    p += sizeof e + e.namelen;
  }
  return b;
}

/* ---- batches in flight ----------------------------------------------------
 */

/* Runs on the thread that completed the batch (a worker thread, or the
 * process pool's I/O thread): hands it to main. */
static run *g_run;
static void on_batch_done(cf_future *f, void *arg) {
  (void)f;
  batch *b = arg;
  run *r = g_run;
  pthread_mutex_lock(&r->mu);
  b->next_done = r->done;
  r->done = b;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

/* Calls fn for each entry of a request: its name and kind. */
typedef void (*entry_fn)(run *r, const char *dir, const char *name,
                         uint32_t kind, uint32_t i, void *arg);
static void for_each_entry(run *r, const batch *b, entry_fn fn, void *arg) {
  req_head h;
  memcpy(&h, b->req, sizeof h);
  const char *dir = (const char *)b->req + sizeof h;
  const unsigned char *p = b->req + sizeof h + h.dirlen;
  for (uint32_t i = 0; i < h.count; i++) {
    req_ent e;
    memcpy(&e, p, sizeof e);
    fn(r, dir, (const char *)p + sizeof e, e.kind, i, arg);
    p += sizeof e + e.namelen;
  }
}

/* A batch whose task did not run or did not answer: each of its files is
 * named, with why. */
typedef struct lost {
  int status;
  const char *msg;
} lost;
static void report_lost(run *r, const char *dir, const char *name,
                        uint32_t kind, uint32_t i, void *arg) {
  (void)kind;
  (void)i;
  const lost *l = arg;
  if (atomic_load(&g_stop))
    return; /* interrupted: not copied, and the summary says so */
  char where[WHERE_MAX];
  show_path(where, sizeof where, r->src, dir, name);
  warn("SRC '%s': not copied: %s%s%s", where, cf_strerror(l->status),
       l->msg && *l->msg ? ": " : "", l->msg && *l->msg ? l->msg : "");
  r->failed++;
}

static const char *detail_words(int d) {
  switch (d) {
  case DETAIL_LINK:
    return "changed since the scan (now a symbolic link), skipped";
  case DETAIL_TYPE:
    return "changed since the scan (no longer a regular file), skipped";
  case DETAIL_OTHER:
    return "changed since the scan (another file now has its name), skipped";
  case DETAIL_NOTLINK:
    return "changed since the scan (no longer a symbolic link), skipped";
  case DETAIL_SHRANK:
    return "the file shrank while it was copied";
  default:
    return NULL;
  }
}

static void report_one(run *r, const char *dir, const char *name, uint32_t kind,
                       uint32_t i, void *arg) {
  rec x;
  memcpy(&x, (const unsigned char *)arg + (size_t)i * sizeof x, sizeof x);
  char where[WHERE_MAX];
  bool dst_side = x.side == SIDE_DST || x.outcome == OUT_EXISTS;
  show_path(where, sizeof where, dst_side ? r->dst : r->src, dir, name);
  if ((x.flags & REC_NO_XATTR) && !r->warned_xattr) {
    r->warned_xattr = true;
    warn("DST '%s': its filesystem keeps no extended attributes or ACLs; "
         "they are not copied (first file)",
         where);
  }
  switch (x.outcome) {
  case OUT_COPIED:
    if (ENT_KIND(kind) == KIND_FILE) {
      r->copied++;
      r->bytes += x.bytes;
    } else {
      r->links_copied++;
    }
    break;
  case OUT_EXISTS:
    warn("DST '%s': exists (use -f to overwrite), skipped", where);
    r->skipped++;
    break;
  case OUT_CHANGED:
    warn("SRC '%s': %s", where, detail_words(x.detail));
    r->skipped++;
    break;
  case OUT_STOPPED:
    break;
  default: {
    const char *d = detail_words(x.detail);
    warn("%s '%s': %s", x.side == SIDE_DST ? "writing DST" : "reading SRC",
         where, d ? d : strerror(x.err));
    r->failed++;
  }
  }
}

/* Counts a finished batch in and frees it. */
static void collect(run *r, batch *b) {
  const void *data;
  size_t n;
  int rc = cf_future_result(b->f, 0, &data, &n);
  req_head h;
  memcpy(&h, b->req, sizeof h);
  if (rc == CF_OK && n == (size_t)h.count * sizeof(rec)) {
    for_each_entry(r, b, report_one, (void *)data);
  } else {
    lost l = {rc == CF_OK ? CF_EINVAL : rc, NULL};
    int code;
    if (rc != CF_OK)
      cf_future_error(b->f, 0, &code, &l.msg);
    for_each_entry(r, b, report_lost, &l);
    if (rc == CF_EBROKEN)
      r->broken = true;
  }
  cf_future_release(b->f);
  free(b->req);
  free(b);
  r->inflight--;
}

/* Sends a batch to the workers; main keeps the request to name its files. */
static void submit_batch(run *r, batch *b) {
  int rc = cf_submit(r->ex, task_copy, b->req, b->len, &b->f);
  if (rc != CF_OK) {
    lost l = {rc, cf_last_error_message()};
    for_each_entry(r, b, report_lost, &l);
    free(b->req);
    free(b);
    r->broken = true; /* the pool takes no more: the walk stops */
    return;
  }
  r->inflight++;
  if (cf_future_add_done_callback(b->f, on_batch_done, b) != CF_OK) {
    cf_future_wait(b->f, CF_FOREVER); /* no memory for the callback */
    on_batch_done(b->f, b);
  }
}

/* Asks the workers to stop: queued batches are cancelled; running ones
 * stop within a piece of a file (threads read g_stop; worker processes get
 * SIGTERM, and each removes what it was writing before it exits). */
static void stop_workers(run *r) {
  if (r->processes)
    cf_terminate_workers(r->ex, SIGTERM);
  else
    cf_shutdown(r->ex, false, true);
}

/* Walks and copies, at most `window` batches in flight: a million files
 * never means a million futures, and the walk is never far ahead. */
static void copy_all(run *r) {
  bool stop_sent = false;
  for (;;) {
    if (atomic_load(&g_stop) && !stop_sent) {
      stop_sent = true;
      stop_workers(r);
    }
    while (!atomic_load(&g_stop) && !r->broken && !r->walk_done &&
           r->inflight < r->window) {
      batch *b = walk_next(r);
      if (b)
        submit_batch(r, b);
    }
    if (r->show)
      print_progress(r, false);
    pthread_mutex_lock(&r->mu);
    while (!r->done && r->inflight && (stop_sent || !atomic_load(&g_stop)))
      pthread_cond_wait(&r->cv, &r->mu);
    batch *d = r->done;
    r->done = NULL;
    pthread_mutex_unlock(&r->mu);
    for (batch *next; d; d = next) {
      next = d->next_done;
      collect(r, d);
    }
    if (!r->inflight && (r->walk_done || r->broken || atomic_load(&g_stop)))
      break;
  }
}

/* ---- after the copies: second names, then folders ------------------------ */

/* Splits a path below DST into its folder's descriptor and its name. */
static int open_parent(const char *rel, const char **name) {
  const char *slash = strrchr(rel, '/');
  *name = slash ? slash + 1 : rel;
  if (!slash)
    return open_dir_below(g_dst, ".");
  char *parent = strndup(rel, (size_t)(slash - rel));
  if (!parent)
    out_of_memory();
  int fd = open_dir_below(g_dst, parent);
  free(parent);
  return fd;
}

typedef struct hard_src {
  int dir;
  const char *name;
} hard_src;
static int make_hard_link(const void *ctx, int dir, const char *name) {
  const hard_src *h = ctx;
  return linkat(h->dir, h->name, dir, name, 0);
}

/* With -a: the other names of multiply linked files, as links to the copy
 * made under the first name (as cp -a). */
static void make_hard_links(run *r) {
  for (size_t i = 0; i < r->nlinks && !atomic_load(&g_stop); i++) {
    hardlink *l = &r->links[i];
    const char *n1, *n2;
    int d1 = open_parent(l->first, &n1), d2 = open_parent(l->again, &n2);
    char where[WHERE_MAX];
    show_path(where, sizeof where, r->dst, ".", l->again);
    int rc = d1 >= 0 && d2 >= 0 ? linkat(d1, n1, d2, n2, 0) : -1;
    if (rc != 0 && errno == EEXIST && r->force) {
      char t[32];
      hard_src hs = {d1, n1};
      rc = make_temp(d2, t, make_hard_link, &hs) == 0 &&
                   rename_temp(d2, t, n2, true) == 0
               ? 0
               : -1;
    }
    if (rc == 0) {
      r->copied++;
    } else if (errno == EEXIST) {
      warn("DST '%s': exists (use -f to overwrite), skipped", where);
      r->skipped++;
    } else if (errno == ENOENT) {
      char first[WHERE_MAX];
      show_path(first, sizeof first, r->dst, ".", l->first);
      warn("writing DST '%s': not linked: the copy of its other name '%s' "
           "is missing",
           where, first);
      r->failed++;
    } else {
      warn("writing DST '%s': %s", where, strerror(errno));
      r->failed++;
    }
    if (d1 >= 0)
      close(d1);
    if (d2 >= 0)
      close(d2);
  }
}

/* Folders last, deepest first: adding their contents changed their times.
 * With -a, their owners and attributes (default ACLs among them) too.  The
 * top folder only when pcopy made it. */
static void fix_folders(run *r) {
  for (size_t i = r->ndirs; i-- > 0;) {
    dirfix *d = &r->dirs[i];
    if (strcmp(d->rel, ".") == 0 && !r->made_dst)
      continue;
    char where[WHERE_MAX];
    show_path(where, sizeof where, r->dst, d->rel, NULL);
    int fd = open_dir_below(g_dst, d->rel);
    failure w = {0};
    uint8_t flags = 0;
    int rc = fd < 0 ? fail_on(&w, SIDE_DST, errno) : 0;
    if (rc == 0 && r->archive) {
      int s = open_dir_below(g_src, d->rel);
      rc = s < 0 ? fail_on(&w, SIDE_SRC, errno)
                 : copy_xattrs(s, fd, &flags, &w);
      if (s >= 0)
        close(s);
      if (rc == 0 && fchown(fd, d->st.st_uid, d->st.st_gid) != 0 &&
          errno != EPERM)
        rc = fail_on(&w, SIDE_DST, errno);
    }
    struct timespec times[2] = {d->st.st_atim, d->st.st_mtim};
    if (rc == 0 && fchmod(fd, d->st.st_mode & 07777) != 0)
      rc = fail_on(&w, SIDE_DST, errno);
    if (rc == 0 && futimens(fd, times) != 0)
      rc = fail_on(&w, SIDE_DST, errno);
    if (rc != 0) {
      if (w.side == SIDE_SRC)
        show_path(where, sizeof where, r->src, d->rel, NULL);
      warn("%s '%s': %s", w.side == SIDE_SRC ? "reading SRC" : "writing DST",
           where, strerror(w.err));
      r->failed++;
    }
    if ((flags & REC_NO_XATTR) && !r->warned_xattr) {
      r->warned_xattr = true;
      warn("DST '%s': its filesystem keeps no extended attributes or ACLs; "
           "they are not copied",
           where);
    }
    if (fd >= 0)
      close(fd);
  }
}

/* ---- options and the two folders -------------------------------------- */

/* What a step of main returns when the run goes on; anything else is the
 * exit status to end it with. */
#define RUN_ON (-1)

static void usage(FILE *to) {
  fprintf(to,
          "usage: pcopy [OPTIONS] SRC DST\n"
          "Copies every regular file of folder SRC into folder DST (created "
          "if missing), in parallel.\n\n"
          "  -j, --jobs N      N copies at once (default 4)\n"
          "  -r, --recursive   copy the whole tree\n"
          "  -a, --archive     as cp -a: -r, and owners, hard links, "
          "extended attributes and ACLs\n"
          "  -f, --force       overwrite existing files\n"
          "  -q, --quiet       no progress line and no summary\n"
          "      --processes   copy in worker processes, not threads\n"
          "  -h, --help        show this help\n"
          "  -V, --version     show the version\n\n"
          "Modes and times are always kept.\n"
          "Exit status: 0 all copied, 1 some files failed, 2 bad usage, "
          "128+N stopped by signal N (130: Ctrl-C).\n");
}

static bool parse_jobs(const char *arg, long *jobs) {
  char *end;
  errno = 0;
  *jobs = strtol(arg, &end, 10);
  if (errno || *end || end == arg || *jobs < 1 || *jobs > 1024) {
    warn("-j '%s': expected a number of workers from 1 to 1024", arg);
    return false;
  }
  return true;
}

/* The options and SRC DST into r; RUN_ON, or the exit status at once (-h
 * and -V end the run there, before the options after them are read). */
static int parse_options(run *r, int argc, char **argv) {
  static const struct option longopts[] = {
      {"jobs", required_argument, NULL, 'j'},
      {"recursive", no_argument, NULL, 'r'},
      {"archive", no_argument, NULL, 'a'},
      {"force", no_argument, NULL, 'f'},
      {"quiet", no_argument, NULL, 'q'},
      {"processes", no_argument, NULL, 'P'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "j:rafqhV", longopts, NULL)) != -1) {
    switch (c) {
    case 'j':
      if (!parse_jobs(optarg, &r->jobs))
        return EXIT_USAGE;
      break;
    case 'a':
      r->archive = true;
      __attribute__((fallthrough)); /* -a copies the tree */
    case 'r':
      r->recursive = true;
      break;
    case 'f':
      r->force = true;
      break;
    case 'q':
      r->quiet = true;
      break;
    case 'P':
      r->processes = true;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case 'V':
      printf("pcopy (cfutures) %s\n", cf_version());
      return 0;
    default:
      usage(stderr);
      return EXIT_USAGE;
    }
  }
  if (argc - optind != 2) {
    warn(argc - optind < 2 ? "missing %s" : "too many arguments%s",
         argc - optind == 0   ? "SRC and DST"
         : argc - optind == 1 ? "DST"
                              : "");
    usage(stderr);
    return EXIT_USAGE;
  }
  r->src = argv[optind];
  r->dst = argv[optind + 1];
  r->flags = (r->force ? COPY_FORCE : 0) | (r->archive ? COPY_ARCHIVE : 0);
  return RUN_ON;
}

/* Is DST SRC itself, or (with -r) somewhere below it?  Says which, or NULL.
 * Then the copy would overwrite its own source, or walk into what it is
 * writing and copy the copy again, one level deeper each time (as cp,
 * refused).  Device and inode tell, going up from DST (or, when it does
 * not exist yet, from its parent) through "..", so no name can hide it: a
 * link, "a/./b", a bind mount. */
static const char *dst_in_src(const run *r, const struct stat *sst) {
  struct stat st;
  int fd = open(r->dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  bool self = fd >= 0;
  if (fd < 0) { /* not there yet: its parent ("a/b/" names b, as "a/b") */
    char *d = xstrdup(r->dst);
    for (size_t n = strlen(d); n > 1 && d[n - 1] == '/';)
      d[--n] = '\0';
    char *slash = strrchr(d, '/');
    if (slash == d)
      slash[1] = '\0';
    else if (slash)
      *slash = '\0';
    fd = open(slash ? d : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(d);
  }
  for (int depth = 0; fd >= 0 && fstat(fd, &st) == 0; depth++) {
    if (st.st_dev == sst->st_dev && st.st_ino == sst->st_ino) {
      close(fd);
      return self && depth == 0 ? "the same folder as"
             : r->recursive     ? "inside"
                                : NULL;
    }
    int up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat ust;
    bool top = up < 0 || fstat(up, &ust) != 0 ||
               (ust.st_dev == st.st_dev && ust.st_ino == st.st_ino);
    close(fd);
    fd = top ? -1 : up;
    if (top && up >= 0)
      close(up);
  }
  if (fd >= 0)
    close(fd);
  return NULL;
}

/* SRC must be a folder, DST a folder or nothing (then it is made here);
 * both are then opened once, for every copy to work below.  RUN_ON, or the
 * exit status. */
static int open_folders(run *r) {
  struct stat sst, dst_st;
  if (stat(r->src, &sst) != 0) {
    warn("SRC '%s': %s", r->src, strerror(errno));
    return EXIT_USAGE;
  }
  if (!S_ISDIR(sst.st_mode)) {
    warn("SRC '%s': not a folder", r->src);
    return EXIT_USAGE;
  }
  if (stat(r->dst, &dst_st) == 0 && !S_ISDIR(dst_st.st_mode)) {
    warn("DST '%s': exists and is not a folder", r->dst);
    return EXIT_USAGE;
  }
  const char *in = dst_in_src(r, &sst);
  if (in) {
    warn("DST '%s' is %s SRC '%s': the copy would copy itself", r->dst, in,
         r->src);
    return EXIT_USAGE;
  }
  r->made_dst = mkdir(r->dst, 0700) == 0;
  if (!r->made_dst && errno != EEXIST) {
    warn("DST '%s': %s", r->dst, strerror(errno));
    return EXIT_SOME_FAILED;
  }
  g_src = open(r->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (g_src < 0 || fstat(g_src, &sst) != 0) {
    warn("SRC '%s': %s", r->src, strerror(errno));
    return EXIT_SOME_FAILED;
  }
  g_dst = open(r->dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (g_dst < 0) {
    warn("DST '%s': %s", r->dst, strerror(errno));
    return EXIT_SOME_FAILED;
  }
  push_pending(r, xstrdup("."), &sst);
  return RUN_ON;
}

/* ---- signals --------------------------------------------------------------
 */

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void stop_signal_set(sigset_t *set) {
  sigemptyset(set);
  for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
    sigaddset(set, stop_signals[i]);
}

/* Waits for SIGINT, SIGTERM or SIGHUP (blocked in every other thread, so
 * they come here) and asks the run to stop: main wakes, cancels what has
 * not started, and tasks stop within a piece of a file. */
static pthread_t g_sig_thread;
static atomic_bool g_sig_thread_end; /* main is done: the thread returns */

static void *signal_thread(void *arg) {
  run *r = arg;
  sigset_t set;
  stop_signal_set(&set);
  for (;;) {
    int sig;
    if (sigwait(&set, &sig) != 0)
      continue;
    if (atomic_load(&g_sig_thread_end))
      return NULL;
    int none = 0;
    atomic_compare_exchange_strong(&g_stop, &none, sig);
#ifdef PCOPY_TEST_HOOKS
    test_ack();
#endif
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
  }
  return NULL;
}

/* Blocks the stop signals (every thread made later inherits that) and
 * starts the thread that takes them. */
static bool catch_stop_signals(run *r) {
  sigset_t set;
  stop_signal_set(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  int e = pthread_create(&g_sig_thread, NULL, signal_thread, r);
  if (e != 0) {
    warn("cannot start the signal thread: %s", strerror(e));
    return false;
  }
  return true;
}

/* Ends the signal thread: the signal it is woken with is not a stop (a
 * real one arriving now finds the work done anyway). */
static void end_signal_thread(void) {
  atomic_store(&g_sig_thread_end, true);
  pthread_kill(g_sig_thread, SIGHUP);
  pthread_join(g_sig_thread, NULL);
}

/* ---- main ------------------------------------------------------------------
 */

static bool start_workers(run *r) {
  int rc;
  if (r->processes) {
    struct stat s, d;
    fstat(g_src, &s);
    fstat(g_dst, &d);
    char *rs = realpath(r->src, NULL), *rd = realpath(r->dst, NULL);
    if (!rs || !rd) {
      warn("cannot start workers: %s: %s", rs ? r->dst : r->src,
           strerror(errno));
      free(rs);
      free(rd);
      return false;
    }
    size_t ls = strlen(rs) + 1, ld = strlen(rd) + 1;
    roots_arg a = {(uint64_t)s.st_dev, (uint64_t)s.st_ino, (uint64_t)d.st_dev,
                   (uint64_t)d.st_ino, (uint32_t)g_umask,  (uint32_t)ls};
    unsigned char *arg = xrealloc(NULL, sizeof a + ls + ld);
    memcpy(arg, &a, sizeof a);
    memcpy(arg + sizeof a, rs, ls);
    memcpy(arg + sizeof a + ls, rd, ld);
    free(rs);
    free(rd);
    cf_process_pool_options o;
    cf_process_pool_options_init(&o);
    o.max_workers = (int)r->jobs;
    o.initializer = worker_init;
    o.initarg = arg;
    o.initarg_len = sizeof a + ls + ld;
    o.on_worker_death = CF_ON_DEATH_RESTART;
    rc = cf_process_pool_create(&o, &r->ex);
    free(arg);
  } else {
    cf_thread_pool_options o;
    cf_thread_pool_options_init(&o);
    o.max_workers = (int)r->jobs;
    o.thread_name_prefix = "pcopy";
    rc = cf_thread_pool_create(&o, &r->ex);
  }
  if (rc != CF_OK) {
    const char *why = cf_last_error_message();
    warn("cannot start workers: %s%s%s", cf_strerror(rc), *why ? ": " : "",
         why);
    return false;
  }
  return true;
}

static void report(run *r) {
  if (r->show && r->found)
    print_progress(r, true);
  if (r->broken && !r->walk_done) /* files not yet reached: not named */
    warn("stopped early: the workers take no more copies; the rest of SRC "
         "was not copied");
  if (r->quiet)
    return;
  double el = now() - r->t0;
  char hb[32], hr[32], links[64] = "";
  human(hb, sizeof hb, (double)r->bytes);
  human(hr, sizeof hr, el > 0 ? (double)r->bytes / el : 0);
  if (r->links_copied)
    snprintf(links, sizeof links, ", %" PRIu64 " symbolic links",
             r->links_copied);
  printf("pcopy: %" PRIu64 " of %" PRIu64
         " files copied%s (%s in %.2f s, %s/s)%s%zu failed, %zu skipped\n",
         r->copied, r->found, links, hb, el, hr,
         atomic_load(&g_stop) ? ", interrupted, " : ", ", r->failed,
         r->skipped);
}

static void clean_up(run *r) {
  for (size_t i = 0; i < r->ndirs; i++)
    free(r->dirs[i].rel);
  free(r->dirs);
  for (size_t i = 0; i < r->nstack; i++)
    free(r->stack[i].rel);
  free(r->stack);
  for (size_t i = 0; i < r->cinodes; i++)
    free(r->inodes[i].first);
  free(r->inodes);
  for (size_t i = 0; i < r->nlinks; i++)
    free(r->links[i].again);
  free(r->links);
  for (size_t i = 0; i < r->cls; i++) {
    free(r->ls[i].items);
    free(r->ls[i].arena);
  }
  free(r->ls);
  close(g_src);
  close(g_dst);
}

int main(int argc, char **argv) {
  static run r = {.jobs = 4,
                  .mu = PTHREAD_MUTEX_INITIALIZER,
                  .cv = PTHREAD_COND_INITIALIZER};
  g_run = &r;
  int status = parse_options(&r, argc, argv);
  if (status == RUN_ON)
    status = open_folders(&r);
  if (status != RUN_ON)
    return status;
#ifdef PCOPY_TEST_HOOKS
  g_src_path = r.src;
  test_ack_init();
#endif
  g_umask = umask(0);
  umask(g_umask);
  g_have_proc = access("/proc/self/fd", X_OK) == 0;
  r.t0 = now();
  r.show = !r.quiet && isatty(STDERR_FILENO);
  r.window = (size_t)r.jobs * 4;
  r.cls = (size_t)r.jobs;
  r.ls = calloc(r.cls, sizeof *r.ls);
  if (!r.ls)
    out_of_memory();
  if (!catch_stop_signals(&r)) {
    clean_up(&r);
    return EXIT_SOME_FAILED;
  }
  if (!start_workers(&r)) {
    end_signal_thread();
    clean_up(&r);
    return EXIT_SOME_FAILED;
  }
  copy_all(&r);
  cf_executor_release(r.ex); /* waits for the workers */
  make_hard_links(&r);
  fix_folders(&r);
  end_signal_thread();
  report(&r);
  clean_up(&r);
  int sig = atomic_load(&g_stop);
  if (sig)
    return 128 + sig;
  return r.failed ? EXIT_SOME_FAILED : 0;
}
