/*
 * pcopy's copy task: what a worker (a pool thread, or with --processes a
 * worker process) runs for one batch of files of a folder.  It reads only
 * its input bytes and the per-process settings of pcopy.h, opens
 * everything relative to SRC's and DST's descriptors without following a
 * link, writes each file unnamed and names it when complete, and answers
 * with one record per file.  See pcopy.c for the program around it.
 */
#include "pcopy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#ifdef __has_include
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define PCOPY_HAVE_OPENAT2 1
#endif
#endif

/* ---- set once per process (see pcopy.h) -------------------------------- */

int g_src = -1, g_dst = -1;
mode_t g_umask;
bool g_have_proc;
atomic_int g_stop;
/* In a worker process: running a task (its handler then leaves the exit
 * to the task, which first removes what it was writing). */
static bool g_in_worker;
static atomic_int g_busy;

/* A stop request is seen between two pieces of a file this large. */
#define PIECE ((off_t)16 << 20)

/* ---- opening below a root without following links ----------------------- */

/* Opens `rel` below the folder `root`, following no symbolic link at any
 * step (a folder swapped for a link mid-copy cannot lead elsewhere), with
 * openat2(2) where the kernel has it, else openat(2) with O_NOFOLLOW (the
 * last step only).  -1 with errno set. */
static int open_below(int root, const char *rel, int flags) {
  if (strcmp(rel, ".") == 0)
    return openat(root, ".", flags);
#ifdef PCOPY_HAVE_OPENAT2
  static atomic_int no_openat2;
  if (!atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
    struct open_how how = {.flags = (uint64_t)flags,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                      RESOLVE_NO_MAGICLINKS};
    long fd;
    do
      fd = syscall(SYS_openat2, root, rel, &how, sizeof how);
    while (fd < 0 && errno == EINTR);
    if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
      return (int)fd;
    atomic_store(&no_openat2, 1); /* ENOSYS, or EPERM from a seccomp filter */
  }
#endif
  return openat(root, rel, flags | O_NOFOLLOW);
}

int open_dir_below(int root, const char *rel) {
  return open_below(root, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* ---- temporary names ---------------------------------------------------- */

/* ".pcopy-" and 10 random letters: a name no other run or thread picks. */
static void temp_name(char name[32]) {
  static _Thread_local uint64_t s;
  if (!s) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^
        (uint64_t)(uintptr_t)&s ^ ((uint64_t)ts.tv_sec << 20) ^ 1;
  }
  strcpy(name, ".pcopy-");
  for (int i = 0; i < 10; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    name[7 + i] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[s % 52];
  }
  name[17] = '\0';
}

/* Makes something with make() under a fresh temporary name in dir (left
 * in t): names already taken are skipped.  -1 with errno set. */
int make_temp(int dir, char t[32], make_fn make, const void *ctx) {
  int rc;
  do {
    temp_name(t);
    rc = make(ctx, dir, t);
  } while (rc != 0 && errno == EEXIST);
  return rc;
}

/* Renames the temporary t of dir to name (over an existing one only with
 * `over`); on failure removes t and keeps the rename's errno. */
int rename_temp(int dir, const char *t, const char *name, bool over) {
  if (renameat2(dir, t, dir, name, over ? 0 : RENAME_NOREPLACE) == 0)
    return 0;
  int e = errno;
  unlinkat(dir, t, 0);
  errno = e;
  return -1;
}

/* ---- copying the bytes ----------------------------------------------------
 */

int fail_on(failure *w, uint8_t side, int err) {
  w->side = side;
  w->err = err;
  return -1;
}

/* Copies [off, end) of in to out with read and write, which tell which side
 * failed. */
static int copy_rw(int in, int out, off_t off, off_t end, failure *w) {
  char buf[1 << 16];
  while (off < end) {
    size_t want = end - off < (off_t)sizeof buf ? (size_t)(end - off)
                                                : sizeof buf;
    ssize_t n = pread(in, buf, want, off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail_on(w, SIDE_SRC, errno);
    if (n == 0) {
      w->detail = DETAIL_SHRANK;
      return fail_on(w, SIDE_SRC, EIO);
    }
    for (ssize_t done = 0; done < n;) {
      ssize_t m = pwrite(out, buf + done, (size_t)(n - done), off + done);
      if (m < 0 && errno == EINTR)
        continue;
      if (m < 0)
        return fail_on(w, SIDE_DST, errno);
      done += m;
    }
    off += n;
  }
  return 0;
}

/* Errors that can only be the destination's. */
static bool dst_error(int e) {
  return e == ENOSPC || e == EDQUOT || e == EFBIG || e == EROFS;
}

/* Copies [off, end) of in to the same offsets of out, in the kernel when it
 * can (copy_file_range, then sendfile), in pieces so that a stop request
 * is seen within one piece.  A kernel copy that fails for a reason of
 * either side is done again with read and write, which tell the side. */
static int copy_range(int in, int out, off_t off, off_t end, failure *w) {
  static _Thread_local int method; /* 0 cfr, 1 sendfile, 2 read/write */
  while (off < end) {
    if (atomic_load_explicit(&g_stop, memory_order_relaxed))
      return fail_on(w, SIDE_DST, ECANCELED);
    off_t piece_end = end - off > PIECE ? off + PIECE : end;
    if (method == 2) {
      if (copy_rw(in, out, off, piece_end, w) != 0)
        return -1;
      off = piece_end;
      continue;
    }
    size_t want = (size_t)(piece_end - off);
    ssize_t n;
    if (method == 0) {
      off_t o_in = off, o_out = off;
      n = copy_file_range(in, &o_in, out, &o_out, want, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
                    errno == EOPNOTSUPP || errno == EBADF)) {
        method = 1;
        continue;
      }
    } else {
      off_t o_in = off;
      if (lseek(out, off, SEEK_SET) < 0)
        return fail_on(w, SIDE_DST, errno);
      n = sendfile(out, in, &o_in, want);
      if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
        method = 2;
        continue;
      }
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && dst_error(errno))
      return fail_on(w, SIDE_DST, errno);
    if (n <= 0) /* an error, or EOF early: read and write tell which side */
      return copy_rw(in, out, off, piece_end, w);
    off += n;
  }
  return 0;
}

/* Copies the data segments only, so holes stay holes where the filesystems
 * allow it; the size is set at the end for a trailing hole.  A file whose
 * blocks cover its size has no hole: copied in one go (most files). */
static int copy_data(int in, int out, const struct stat *st, failure *w) {
  off_t size = st->st_size, pos = 0;
  if ((off_t)st->st_blocks * 512 >= size)
    return copy_range(in, out, 0, size, w);
  while (pos < size) {
    off_t data = lseek(in, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO)
      break;      /* only a hole is left */
    if (data < 0) /* no SEEK_DATA here: all of it is data */
      return copy_range(in, out, pos, size, w) ? -1
             : ftruncate(out, size)            ? fail_on(w, SIDE_DST, errno)
                                               : 0;
    off_t hole = lseek(in, data, SEEK_HOLE);
    if (hole < 0 || hole > size)
      hole = size;
    if (copy_range(in, out, data, hole, w) != 0)
      return -1;
    pos = hole;
  }
  return ftruncate(out, size) ? fail_on(w, SIDE_DST, errno) : 0;
}

/* With -a: the extended attributes, POSIX ACLs among them (they are the
 * system.posix_acl_* attributes).  A DST that keeps none sets REC_NO_XATTR
 * and is not an error; attributes of a namespace we may not write
 * (trusted.*, security.* unprivileged) are left out, as cp -a does. */
int copy_xattrs(int in, int out, uint8_t *flags, failure *w) {
  char *names = NULL;
  ssize_t n;
  for (;;) {
    n = flistxattr(in, NULL, 0);
    if (n <= 0)
      break;
    char *nn = realloc(names, (size_t)n);
    if (!nn) {
      free(names);
      return fail_on(w, SIDE_SRC, ENOMEM);
    }
    names = nn;
    n = flistxattr(in, names, (size_t)n);
    if (n >= 0 || errno != ERANGE) /* ERANGE: one was added meanwhile */
      break;
  }
  if (n < 0) {
    int e = errno;
    free(names);
    return e == ENOTSUP ? 0 : fail_on(w, SIDE_SRC, e);
  }
  int rc = 0;
  char *val = NULL;
  for (ssize_t i = 0; rc == 0 && i < n; i += (ssize_t)strlen(names + i) + 1) {
    const char *name = names + i;
    ssize_t vl = fgetxattr(in, name, NULL, 0);
    char *nv = vl > 0 ? realloc(val, (size_t)vl) : val;
    if (vl > 0 && !nv) {
      rc = fail_on(w, SIDE_SRC, ENOMEM);
      break;
    }
    val = nv;
    if (vl > 0)
      vl = fgetxattr(in, name, val, (size_t)vl);
    if (vl < 0) {
      if (errno != ENODATA && errno != ERANGE) /* gone, or changed: skip */
        rc = fail_on(w, SIDE_SRC, errno);
      continue;
    }
    if (fsetxattr(out, name, val, (size_t)vl, 0) == 0)
      continue;
    if (errno == ENOTSUP) {
      *flags |= REC_NO_XATTR;
      break;
    }
    if (errno == EPERM && strncmp(name, "user.", 5) != 0)
      continue;
    rc = fail_on(w, SIDE_DST, errno);
  }
  free(val);
  free(names);
  return rc;
}

/* The source's mode, times and (with -a) owner and attributes onto out.
 * The mode goes after the owner: chown clears set-user-ID bits. */
static int copy_meta(int in, int out, const struct stat *st, bool archive,
                     bool created_with_mode, uint8_t *flags, failure *w) {
  mode_t mode = st->st_mode & 07777;
  if (archive) {
    if (copy_xattrs(in, out, flags, w) != 0)
      return -1;
    if (fchown(out, st->st_uid, st->st_gid) != 0 && errno != EPERM)
      return fail_on(w, SIDE_DST, errno);
  }
  if ((archive && (mode & 07000)) || !created_with_mode ||
      (mode & ~g_umask) != mode)
    if (fchmod(out, mode) != 0)
      return fail_on(w, SIDE_DST, errno);
  struct timespec times[2] = {st->st_atim, st->st_mtim};
  if (futimens(out, times) != 0)
    return fail_on(w, SIDE_DST, errno);
  return 0;
}

#ifdef PCOPY_TEST_HOOKS
/* Test builds only (tests/pcopy-hooked): for a file named "swap-*", runs
 * "$PCOPY_TEST_HOOK PHASE PATH PID" before the source is opened (PHASE
 * open) and once it is opened and checked, before its data is copied
 * (PHASE copy), so a test can change the file between the scan and the
 * copy, or during the copy, without a race.  PID is the process running
 * the copy: when it has taken a stop request it makes the file
 * "$PCOPY_TEST_STOP_ACK.PID", for the hook to wait for.
 * $PCOPY_TEST_NO_TMPFILE makes every copy take the path of a filesystem
 * without O_TMPFILE (a named temporary, renamed). */
const char *g_src_path;
static char g_ack_path[PATH_MAX];

void test_ack_init(void) {
  const char *p = getenv("PCOPY_TEST_STOP_ACK");
  g_ack_path[0] = '\0';
  if (p)
    snprintf(g_ack_path, sizeof g_ack_path, "%s.%ld", p, (long)getpid());
}

/* Async-signal-safe (open and close only): called from handlers too. */
void test_ack(void) {
  if (g_ack_path[0]) {
    int fd = open(g_ack_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0)
      close(fd);
  }
}

static void test_hook(const char *phase, const char *dir, const char *name) {
  const char *hook = getenv("PCOPY_TEST_HOOK");
  if (!hook || strncmp(name, "swap-", 5) != 0)
    return;
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "%s %s '%s/%s/%s' %ld", hook, phase, g_src_path,
           dir, name, (long)getpid());
  if (system(cmd) != 0)
    fprintf(stderr, "pcopy: test hook failed: %s\n", cmd);
}
#else
#define test_hook(phase, dir, name) ((void)0)
#endif

/* Opens the source and checks it is still the regular file the scan saw:
 * no link is followed and a FIFO does not block the open.  -1 with the
 * outcome in *r when it is not. */
static int open_source(int sdir, const char *name, const req_ent *e,
                       struct stat *st, rec *r) {
  int fd = openat(sdir, name,
                  O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    r->outcome = errno == ELOOP ? OUT_CHANGED : OUT_FAILED;
    r->detail = errno == ELOOP ? DETAIL_LINK : DETAIL_NONE;
    r->side = SIDE_SRC;
    r->err = errno;
    return -1;
  }
  if (fstat(fd, st) != 0) {
    r->outcome = OUT_FAILED;
    r->side = SIDE_SRC;
    r->err = errno;
  } else if (!S_ISREG(st->st_mode)) {
    r->outcome = OUT_CHANGED;
    r->detail = DETAIL_TYPE;
  } else if ((e->kind & ENT_IDENT) && ((uint64_t)st->st_dev != e->dev ||
                                       (uint64_t)st->st_ino != e->ino)) {
    r->outcome = OUT_CHANGED;
    r->detail = DETAIL_OTHER;
  } else {
    return fd;
  }
  close(fd);
  return -1;
}

/* Names the unnamed file open on fd: linkat(AT_EMPTY_PATH) where the
 * kernel allows it (Linux 6.10 for anyone, before only with
 * CAP_DAC_READ_SEARCH), else through /proc/self/fd, a slower lookup. */
static atomic_int no_empty_path;
static int link_fd(int fd, int ddir, const char *name) {
  if (!atomic_load_explicit(&no_empty_path, memory_order_relaxed)) {
    if (linkat(fd, "", ddir, name, AT_EMPTY_PATH) == 0)
      return 0;
    if (errno != ENOENT && errno != EPERM && errno != EINVAL)
      return -1;
    atomic_store(&no_empty_path, 1);
  }
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  return linkat(AT_FDCWD, proc, ddir, name, AT_SYMLINK_FOLLOW);
}

static int make_fd_link(const void *ctx, int dir, const char *name) {
  return link_fd(*(const int *)ctx, dir, name);
}

/* Gives the file open on `fd` (a named temporary `tmp`, or unnamed when tmp
 * is empty) the name `name` in ddir: at once when nothing has that name,
 * over it with -f.  -1 with errno set (EEXIST: there is one, no -f). */
static int commit(int fd, int ddir, const char *tmp, const char *name,
                  bool force) {
  if (*tmp)
    return renameat2(ddir, tmp, ddir, name, force ? 0 : RENAME_NOREPLACE);
  if (link_fd(fd, ddir, name) == 0)
    return 0;
  if (errno != EEXIST || !force)
    return -1;
  /* Replace atomically: a named link, then a rename over the old file. */
  char t[32];
  return make_temp(ddir, t, make_fd_link, &fd) == 0 &&
                 rename_temp(ddir, t, name, true) == 0
             ? 0
             : -1;
}

/* Whether O_TMPFILE + linkat through /proc can be used: /proc is there
 * (checked once) and DST's filesystem takes O_TMPFILE (learnt per device
 * on the first refusal). */
static _Thread_local dev_t no_tmpfile_dev = (dev_t)-1;

/* Makes the file the copy is written to: unnamed (*tmp empty) or under a
 * temporary name in tmp.  -1 with errno set. */
static int create_out(int ddir, dev_t ddev, mode_t mode, char tmp[32]) {
  *tmp = '\0';
#ifdef PCOPY_TEST_HOOKS
  if (getenv("PCOPY_TEST_NO_TMPFILE")) /* as a filesystem without it */
    no_tmpfile_dev = ddev;
#endif
  if (g_have_proc && ddev != no_tmpfile_dev) {
    int fd = openat(ddir, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL &&
                    errno != ENOENT))
      return fd;
    no_tmpfile_dev = ddev;
  }
  int fd;
  do {
    temp_name(tmp);
    fd = openat(ddir, tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  } while (fd < 0 && errno == EEXIST);
  return fd;
}

/* Copies one regular file of the batch. */
static void copy_file(int sdir, int ddir, dev_t ddev, const char *dir,
                      const char *name, const req_ent *e, uint32_t flags,
                      rec *r) {
  bool force = flags & COPY_FORCE, archive = flags & COPY_ARCHIVE;
  struct stat st;
  /* Without -f an existing name is kept: say so before copying anything
   * (not needed in a folder this run made; the final link refuses a name
   * that appears meanwhile anyway). */
  if (!force && !(flags & COPY_NEWDIR) &&
      fstatat(ddir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    r->outcome = OUT_EXISTS;
    return;
  }
  test_hook("open", dir, name);
  (void)dir;
  int in = open_source(sdir, name, e, &st, r);
  if (in < 0)
    return;
  test_hook("copy", dir, name);
  char tmp[32];
  int out = create_out(ddir, ddev, st.st_mode & 07777, tmp);
  failure w = {0};
  if (out < 0) {
    fail_on(&w, SIDE_DST, errno);
  } else {
    int rc = copy_data(in, out, &st, &w);
    if (rc == 0)
      rc = copy_meta(in, out, &st, archive, !*tmp, &r->flags, &w);
    /* A named temporary is closed first: a late write error (NFS) shows
     * at close, and must stop the rename. */
    if (rc == 0 && *tmp && close(out) != 0)
      rc = fail_on(&w, SIDE_DST, errno);
    else if (*tmp && rc != 0)
      close(out);
    if (rc == 0 && commit(out, ddir, tmp, name, force) != 0) {
      rc = -1;
      if (errno == EEXIST)
        r->outcome = OUT_EXISTS;
      else
        fail_on(&w, SIDE_DST, errno);
    }
    if (rc != 0 && *tmp)
      unlinkat(ddir, tmp, 0);
    if (!*tmp && close(out) != 0 && rc == 0) {
      rc = fail_on(&w, SIDE_DST, errno);
      unlinkat(ddir, name, 0); /* linked, but not all of it is there */
    }
    if (rc == 0) {
      r->outcome = OUT_COPIED;
      r->bytes = (uint64_t)st.st_size;
    }
  }
  close(in);
  if (r->outcome == 0) {
    bool stopped = w.err == ECANCELED && atomic_load(&g_stop);
    r->outcome = stopped ? OUT_STOPPED : OUT_FAILED;
    r->side = w.side;
    r->err = w.err;
    r->detail = w.detail;
  }
}

static int make_symlink(const void *ctx, int dir, const char *name) {
  return symlinkat(ctx, dir, name);
}

/* Copies one symbolic link of the batch, as a link: made under a temporary
 * name, given the link's own times, then renamed. */
static void copy_link(int sdir, int ddir, const char *name, const req_ent *e,
                      uint32_t flags, rec *r) {
  struct stat st;
  char target[PATH_MAX + 1];
  ssize_t n = -1;
  r->side = SIDE_SRC;
  if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    r->outcome = OUT_FAILED;
    r->err = errno;
    return;
  }
  if (!S_ISLNK(st.st_mode) ||
      ((e->kind & ENT_IDENT) && (uint64_t)st.st_ino != e->ino) ||
      (n = readlinkat(sdir, name, target, sizeof target - 1)) < 0) {
    r->outcome = n < 0 && S_ISLNK(st.st_mode) ? OUT_FAILED : OUT_CHANGED;
    r->detail = DETAIL_NOTLINK;
    r->err = errno;
    return;
  }
  target[n] = '\0';
  r->side = SIDE_DST;
  if (!(flags & (COPY_FORCE | COPY_NEWDIR)) &&
      fstatat(ddir, name, &(struct stat){0}, AT_SYMLINK_NOFOLLOW) == 0) {
    r->outcome = OUT_EXISTS;
    return;
  }
  char tmp[32];
  int rc = make_temp(ddir, tmp, make_symlink, target);
  bool made = rc == 0;
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (rc == 0 && (flags & COPY_ARCHIVE) &&
      fchownat(ddir, tmp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0 &&
      errno != EPERM)
    rc = -1;
  if (rc == 0)
    rc = utimensat(ddir, tmp, times, AT_SYMLINK_NOFOLLOW);
  if (rc == 0)
    rc = rename_temp(ddir, tmp, name, flags & COPY_FORCE);
  else if (made) { /* failed after the link was made */
    int e2 = errno;
    unlinkat(ddir, tmp, 0);
    errno = e2;
  }
  if (rc != 0) {
    r->outcome = errno == EEXIST ? OUT_EXISTS : OUT_FAILED;
    r->err = errno;
    return;
  }
  r->outcome = OUT_COPIED;
}

/* A path below SRC/DST from the request: relative, without "..", so that
 * even without openat2 it cannot lead out. */
static bool safe_rel(const char *rel) {
  if (rel[0] == '/' || rel[0] == '\0')
    return false;
  for (const char *c = rel;;) { /* c: the start of a component */
    if (c[0] == '.' && c[1] == '.' && (c[2] == '\0' || c[2] == '/'))
      return false;
    const char *slash = strchr(c, '/');
    if (!slash)
      return true;
    c = slash + 1;
  }
}

/* A name from the request: one component. */
static bool safe_name(const char *name) {
  return name[0] && !strchr(name, '/') && strcmp(name, ".") != 0 &&
         strcmp(name, "..") != 0;
}

/* Reads a request whole before anything is opened: its folder, and its
 * entries into e[] and names[].  false when it is malformed. */
static bool parse_request(const void *in, size_t len, req_head *h,
                          const char **dir, req_ent *e, const char **names) {
  const unsigned char *p = in, *end = p + len;
  if (len < sizeof *h)
    return false;
  memcpy(h, p, sizeof *h);
  p += sizeof *h;
  if (h->magic != REQ_MAGIC || h->count == 0 || h->count > BATCH_FILES ||
      h->dirlen == 0 || h->dirlen > (size_t)(end - p) ||
      p[h->dirlen - 1] != '\0' || !safe_rel((const char *)p))
    return false;
  *dir = (const char *)p;
  p += h->dirlen;
  for (uint32_t i = 0; i < h->count; i++) {
    if ((size_t)(end - p) < sizeof e[i])
      return false;
    memcpy(&e[i], p, sizeof e[i]);
    p += sizeof e[i];
    if (e[i].namelen == 0 || e[i].namelen > (size_t)(end - p) ||
        p[e[i].namelen - 1] != '\0' || !safe_name((const char *)p))
      return false;
    names[i] = (const char *)p;
    p += e[i].namelen;
  }
  return p == end;
}

/* The task: copies a batch of files of one folder.  It never fails as a
 * task (unless its input is malformed): each file's outcome is in the
 * answer, so one bad file does not hide the others. */
int task_copy(cf_task *t, const void *in, size_t len) {
  req_head h;
  const char *dir, *names[BATCH_FILES];
  req_ent ents[BATCH_FILES];
  if (!parse_request(in, len, &h, &dir, ents, names))
    return cf_task_fail(t, EINVAL, "malformed copy request");
  rec *out = cf_task_return_buffer(t, (size_t)h.count * sizeof(rec));
  if (!out)
    return cf_task_fail(t, ENOMEM, "out of memory");
  memset(out, 0, (size_t)h.count * sizeof(rec));
  if (g_in_worker)
    atomic_store(&g_busy, 1);

  int sdir = open_dir_below(g_src, dir);
  int serr = errno;
  int ddir = sdir >= 0 ? open_dir_below(g_dst, dir) : -1;
  int derr = errno;
  struct stat dst_st = {0};
  if (ddir >= 0 && fstat(ddir, &dst_st) != 0)
    dst_st.st_dev = (dev_t)-1;
  for (uint32_t i = 0; i < h.count; i++) {
    rec *r = &out[i];
    if (atomic_load(&g_stop)) {
      r->outcome = OUT_STOPPED;
    } else if (sdir < 0 || ddir < 0) {
      r->outcome = OUT_FAILED;
      r->side = sdir < 0 ? SIDE_SRC : SIDE_DST;
      r->err = sdir < 0 ? serr : derr;
    } else if (ENT_KIND(ents[i].kind) == KIND_LINK) {
      copy_link(sdir, ddir, names[i], &ents[i], h.flags, r);
    } else {
      copy_file(sdir, ddir, dst_st.st_dev, dir, names[i], &ents[i], h.flags, r);
    }
  }
  if (sdir >= 0)
    close(sdir);
  if (ddir >= 0)
    close(ddir);
  if (g_in_worker) {
    /* A worker told to stop leaves now: what it was writing is gone (an
     * unnamed file, or a temporary it removed). */
    atomic_store(&g_busy, 0);
    int sig = atomic_load(&g_stop);
    if (sig)
      _exit(128 + sig);
  }
  return 0;
}

/* ---- worker processes (--processes) ------------------------------------- */

static void on_worker_signal(int sig) {
  atomic_store(&g_stop, sig);
#ifdef PCOPY_TEST_HOOKS
  test_ack();
#endif
  if (!atomic_load(&g_busy))
    _exit(128 + sig); /* idle: nothing to clean up */
}

static int open_root(const char *path, uint64_t dev, uint64_t ino) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) != 0 || (uint64_t)st.st_dev != dev ||
                  (uint64_t)st.st_ino != ino)) {
    close(fd);
    return -1;
  }
  return fd;
}

/* The process pool's initializer: opens the roots, checks they are the
 * folders main checked, and takes SIGINT/SIGTERM/SIGHUP (a Ctrl-C reaches
 * the whole process group; main sends SIGTERM otherwise). */
int worker_init(const void *arg, size_t len) {
  roots_arg a;
  if (len < sizeof a + 2)
    return EINVAL;
  memcpy(&a, arg, sizeof a);
  const char *src = (const char *)arg + sizeof a;
  if (a.srclen == 0 || a.srclen >= len - sizeof a ||
      ((const char *)arg)[len - 1] != '\0' || src[a.srclen - 1] != '\0')
    return EINVAL;
  const char *dst = src + a.srclen;
#ifdef PCOPY_TEST_HOOKS
  if (getenv("PCOPY_TEST_FAIL_INIT"))
    return EACCES;                /* as a worker that cannot open SRC */
  static char src_copy[PATH_MAX]; /* arg is the library's, freed after */
  snprintf(src_copy, sizeof src_copy, "%s", src);
  g_src_path = src_copy;
  test_ack_init();
#endif
  g_in_worker = true;
  g_umask = (mode_t)a.umask;
  g_have_proc = access("/proc/self/fd", X_OK) == 0;
  struct sigaction sa = {.sa_handler = on_worker_signal};
  sigemptyset(&sa.sa_mask);
  sigset_t set;
  sigemptyset(&set);
  int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  for (int i = 0; i < 3; i++) {
    sigaction(sigs[i], &sa, NULL);
    sigaddset(&set, sigs[i]);
  }
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  g_src = open_root(src, a.sdev, a.sino);
  g_dst = open_root(dst, a.ddev, a.dino);
  return g_src < 0 || g_dst < 0 ? ENOENT : 0;
}
