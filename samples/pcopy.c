/*
 * pcopy: copy a folder's files in parallel with cfutures.
 *
 * The seed's Python program submits shutil.copy(src, dst) for every file to
 * a ThreadPoolExecutor(max_workers=4).  Here each file is one task whose
 * input is its two paths (bytes, so --processes runs the very same task on
 * the process pool); a done callback per file drives the progress line.
 * Each file is written under a temporary name and renamed into place when
 * complete, so no partial file ever carries a final name.  See pcopy(1).
 */
#include <cfutures.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_SOME_FAILED 1
#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 130

/* ---- the task: copy one file --------------------------------------------- */

/* Input: u32 flags, then "src\0dst\0".  Result: u64 bytes copied. */
#define COPY_FORCE 1u

/* Copies [off, end) of in to the same offsets of out, in the kernel when it
 * can: copy_file_range, then sendfile, then read/write. */
static int copy_range(int in, int out, off_t off, off_t end) {
  static _Thread_local int method; /* 0 cfr, 1 sendfile, 2 read/write */
  while (off < end) {
    size_t want = (size_t)(end - off > (1 << 30) ? (1 << 30) : end - off);
    ssize_t n = -1;
    if (method == 0) {
      off_t o_in = off, o_out = off;
      n = copy_file_range(in, &o_in, out, &o_out, want, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
                    errno == EOPNOTSUPP)) {
        method = 1;
        continue;
      }
    } else if (method == 1) {
      off_t o_in = off;
      if (lseek(out, off, SEEK_SET) < 0)
        return -1;
      n = sendfile(out, in, &o_in, want);
      if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
        method = 2;
        continue;
      }
    } else {
      char buf[1 << 16];
      n = pread(in, buf, want < sizeof buf ? want : sizeof buf, off);
      if (n > 0 && pwrite(out, buf, (size_t)n, off) != n)
        return -1;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (n == 0) /* the file shrank while we copied */
      return errno = EIO, -1;
    off += n;
  }
  return 0;
}

/* Copies the data segments only, so holes stay holes where the filesystems
 * allow it; the size is set at the end for a trailing hole.  A file whose
 * blocks cover its size has no hole: copied in one go, three system calls
 * fewer (most files, and what makes small files fast). */
static int copy_data(int in, int out, const struct stat *st) {
  off_t size = st->st_size, pos = 0;
  if ((off_t)st->st_blocks * 512 >= size)
    return copy_range(in, out, 0, size);
  while (pos < size) {
    off_t data = lseek(in, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO)
      break;      /* only a hole is left */
    if (data < 0) /* no SEEK_DATA here: all of it is data */
      return copy_range(in, out, pos, size) ? -1 : ftruncate(out, size);
    off_t hole = lseek(in, data, SEEK_HOLE);
    if (hole < 0 || hole > size)
      hole = size;
    if (copy_range(in, out, data, hole) != 0)
      return -1;
    pos = hole;
  }
  return ftruncate(out, size);
}

/* Opens src and reads its size, mode and times into *st; -1 with errno
 * set. */
static int open_source(const char *src, struct stat *st) {
  int fd = open(src, O_RDONLY | O_CLOEXEC);
  if (fd >= 0 && fstat(fd, st) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* A temporary name in the destination folder, so that the rename is atomic:
 * the file is made and its name left in tmp.  -1 with errno set. */
static int open_temp(const char *dst, char *tmp, size_t cap) {
  const char *slash = strrchr(dst, '/');
  int dirlen = slash ? (int)(slash - dst) : 1;
  if (snprintf(tmp, cap, "%.*s/.pcopy-XXXXXX", dirlen, slash ? dst : ".") >=
      (int)cap)
    return errno = ENAMETOOLONG, -1;
  return mkostemp(tmp, O_CLOEXEC);
}

/* Fills the temporary file and closes it: the data, then the source's mode
 * and times.  -1 with the reason in *err (close() may change errno). */
static int fill_temp(int fin, int fout, const struct stat *st, int *err) {
  struct timespec times[2] = {st->st_atim, st->st_mtim};
  int rc = copy_data(fin, fout, st);
  if (rc == 0)
    rc = fchmod(fout, st->st_mode & 07777);
  if (rc == 0)
    rc = futimens(fout, times);
  *err = errno;
  if (close(fout) != 0 && rc == 0) {
    rc = -1;
    *err = errno;
  }
  return rc;
}

static int task_copy(cf_task *t, const void *in, size_t len) {
  uint32_t flags;
  if (len < sizeof flags + 4 || ((const char *)in)[len - 1] != '\0')
    return cf_task_fail(t, EINVAL, "malformed copy request");
  memcpy(&flags, in, sizeof flags);
  const char *src = (const char *)in + sizeof flags;
  const char *dst = src + strlen(src) + 1;

  struct stat st;
  int fin = open_source(src, &st);
  if (fin < 0)
    return cf_task_fail(t, errno, "%s: %s", src, strerror(errno));
  char tmp[4096 + 32];
  int fout = open_temp(dst, tmp, sizeof tmp);
  if (fout < 0) {
    int e = errno;
    close(fin);
    return cf_task_fail(t, e, "%s: %s", dst, strerror(e));
  }
  int e;
  int rc = fill_temp(fin, fout, &st, &e);
  close(fin);
  if (rc == 0) {
    /* Without --force an existing file is never replaced, even one that
     * appeared while we copied. */
    rc = flags & COPY_FORCE
             ? rename(tmp, dst)
             : renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE);
    e = errno;
  }
  if (rc != 0) {
    unlink(tmp);
    return cf_task_fail(t, e, "%s: %s", dst,
                        e == EEXIST ? "exists (use -f to overwrite)"
                                    : strerror(e));
  }
  uint64_t bytes = (uint64_t)st.st_size;
  return cf_task_return(t, &bytes, sizeof bytes);
}

/* In worker processes: Ctrl-C is the parent's to handle; a copy under way
 * finishes (it is renamed into place) rather than leave a temporary file. */
static int ignore_sigint(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  signal(SIGINT, SIG_IGN);
  return 0;
}

/* ---- the walk ------------------------------------------------------------ */

typedef struct job {
  char *src, *dst;
  off_t size;
} job;

typedef struct dirfix { /* a directory's mode and times, set last */
  char *path;
  struct stat st;
} dirfix;

typedef struct plan {
  job *jobs;
  size_t njobs, cap;
  dirfix *dirs;
  size_t ndirs, dcap;
  uint64_t total_bytes;
  size_t failed, skipped;
  bool recursive, quiet;
} plan;

__attribute__((format(printf, 1, 2))) static void warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("pcopy: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static char *join(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *p = malloc(la + lb + 2);
  if (!p) {
    warn("out of memory");
    exit(EXIT_SOME_FAILED);
  }
  memcpy(p, a, la);
  p[la] = '/';
  memcpy(p + la + 1, b, lb + 1);
  return p;
}

static void *grow(void *v, size_t *cap, size_t n, size_t size) {
  if (n < *cap)
    return v;
  *cap = *cap ? *cap * 2 : 256;
  void *nv = realloc(v, *cap * size);
  if (!nv) {
    warn("out of memory");
    exit(EXIT_SOME_FAILED);
  }
  return nv;
}

/* A symbolic link is copied as a link, through a temporary name too. */
static void copy_symlink(plan *pl, const char *src, const char *dst,
                         bool force) {
  char target[4096];
  struct stat st;
  ssize_t n = lstat(src, &st) == 0 ? readlink(src, target, sizeof target - 1)
                                   : -1;
  if (n < 0) {
    warn("%s: %s", src, strerror(errno));
    pl->failed++;
    return;
  }
  target[n] = '\0';
  /* dst always has a '/': it is built by join(). */
  const char *slash = strrchr(dst, '/');
  size_t cap = (size_t)(slash - dst) + 32;
  char *tmp = malloc(cap);
  if (!tmp) {
    warn("out of memory");
    exit(EXIT_SOME_FAILED);
  }
  snprintf(tmp, cap, "%.*s/.pcopy-link-%ld", (int)(slash - dst), dst,
           (long)getpid());
  unlink(tmp);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  int rc = symlink(target, tmp);
  if (rc == 0) /* the link's own times, not its target's */
    rc = utimensat(AT_FDCWD, tmp, times, AT_SYMLINK_NOFOLLOW);
  if (rc == 0)
    rc = force ? rename(tmp, dst)
               : renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE);
  if (rc != 0) {
    int e = errno;
    unlink(tmp);
    if (e == EEXIST) {
      warn("%s: exists (use -f to overwrite), skipped", dst);
      pl->skipped++;
    } else {
      warn("%s: %s", dst, strerror(e));
      pl->failed++;
    }
  }
  free(tmp);
}

/* Lists what to copy; creates destination folders on the way (their modes
 * and times are set at the end, once their contents are in). */
static void walk(plan *pl, const char *src, const char *dst, bool force) {
  DIR *d = opendir(src);
  if (!d) {
    warn("%s: %s", src, strerror(errno));
    pl->failed++;
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char *s = join(src, e->d_name), *t = join(dst, e->d_name);
    struct stat st;
    if (lstat(s, &st) != 0) {
      warn("%s: %s", s, strerror(errno));
      pl->failed++;
    } else if (S_ISREG(st.st_mode)) {
      if (!force && access(t, F_OK) == 0) {
        warn("%s: exists (use -f to overwrite), skipped", t);
        pl->skipped++;
      } else {
        pl->jobs = grow(pl->jobs, &pl->cap, pl->njobs, sizeof *pl->jobs);
        pl->jobs[pl->njobs++] = (job){s, t, st.st_size};
        pl->total_bytes += (uint64_t)st.st_size;
        continue; /* the job owns s and t */
      }
    } else if (S_ISLNK(st.st_mode)) {
      copy_symlink(pl, s, t, force);
    } else if (S_ISDIR(st.st_mode) && pl->recursive) {
      if (mkdir(t, 0700) != 0 && errno != EEXIST) {
        warn("%s: %s", t, strerror(errno));
        pl->failed++;
      } else {
        char *tc = strdup(t);
        if (!tc) {
          warn("out of memory");
          exit(EXIT_SOME_FAILED); /* as grow(): nothing half-written */
        }
        pl->dirs = grow(pl->dirs, &pl->dcap, pl->ndirs, sizeof *pl->dirs);
        pl->dirs[pl->ndirs++] = (dirfix){tc, st};
        walk(pl, s, t, force);
      }
    } else if (!S_ISDIR(st.st_mode)) {
      warn("%s: not a regular file, folder or link, skipped", s);
      pl->skipped++;
    }
    free(s);
    free(t);
  }
  closedir(d);
}

/* ---- progress, from done callbacks --------------------------------------- */

typedef struct progress {
  atomic_size_t files;
  atomic_uint_fast64_t bytes;
  size_t total_files;
  uint64_t total_bytes;
  double start;
  bool show;
  pthread_mutex_t mu; /* one line at a time */
  double last;
} progress;

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

static void print_progress(progress *pr, bool final) {
  double t = now(), el = t - pr->start;
  pthread_mutex_lock(&pr->mu);
  if (final || t - pr->last >= 0.1) {
    pr->last = t;
    uint64_t b = atomic_load(&pr->bytes);
    double rate = el > 0 ? (double)b / el : 0;
    char hb[32], ht[32], hr[32];
    human(hb, sizeof hb, (double)b);
    human(ht, sizeof ht, (double)pr->total_bytes);
    human(hr, sizeof hr, rate);
    double eta = rate > 0 ? (double)(pr->total_bytes - b) / rate : 0;
    fprintf(stderr, "\r%zu/%zu files, %s of %s, %s/s, ETA %.0f s\033[K",
            atomic_load(&pr->files), pr->total_files, hb, ht, hr, eta);
    if (final)
      fputc('\n', stderr);
    fflush(stderr);
  }
  pthread_mutex_unlock(&pr->mu);
}

/* Runs on the thread that completed the copy (a worker, or the process
 * pool's manager thread). */
static void on_copied(cf_future *f, void *arg) {
  progress *pr = arg;
  const void *d;
  size_t n;
  if (cf_future_result(f, 0, &d, &n) == CF_OK && n == sizeof(uint64_t)) {
    uint64_t b;
    memcpy(&b, d, sizeof b);
    atomic_fetch_add(&pr->bytes, b);
  }
  atomic_fetch_add(&pr->files, 1);
  if (pr->show)
    print_progress(pr, false);
}

/* ---- options and folders ------------------------------------------------- */

/* What a step of main returns when the run goes on; anything else is the
 * exit status to end it with. */
#define RUN_ON (-1)

typedef struct run {
  const char *src, *dst;
  long jobs;
  bool force, processes;
  plan pl;
  double t0;
  cf_executor *ex;
  progress pr;
  /* The copies in flight: a ring of `window` futures, the oldest at head;
   * next is the first job not yet submitted. */
  cf_future **fl;
  size_t window, head, inflight, next;
  uint64_t copied;
} run;

static void usage(FILE *to) {
  fprintf(to,
          "usage: pcopy [OPTIONS] SRC DST\n"
          "Copies every regular file of folder SRC into folder DST (created "
          "if missing), in parallel.\n\n"
          "  -j, --jobs N      N copies at once (default 4)\n"
          "  -r, --recursive   copy the whole tree\n"
          "  -f, --force       overwrite existing files\n"
          "  -q, --quiet       no progress line and no summary\n"
          "      --processes   copy in worker processes, not threads\n"
          "  -h, --help        show this help\n"
          "  -V, --version     show the version\n\n"
          "Exit status: 0 all copied, 1 some files failed, 2 bad usage, 130 "
          "interrupted.\n");
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
      {"force", no_argument, NULL, 'f'},
      {"quiet", no_argument, NULL, 'q'},
      {"processes", no_argument, NULL, 'P'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "j:rfqhV", longopts, NULL)) != -1) {
    switch (c) {
    case 'j':
      if (!parse_jobs(optarg, &r->jobs))
        return EXIT_USAGE;
      break;
    case 'r':
      r->pl.recursive = true;
      break;
    case 'f':
      r->force = true;
      break;
    case 'q':
      r->pl.quiet = true;
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
  return RUN_ON;
}

/* SRC must be a folder, DST a folder or nothing (then it is made here);
 * RUN_ON, or the exit status. */
/* DST as an absolute path without links, even when it does not exist yet
 * (its parent's real path, then its name); NULL when that cannot be told. */
static char *real_dst(const char *dst) {
  char *full = realpath(dst, NULL);
  if (full || errno != ENOENT)
    return full;
  /* "a/b/" names b as "a/b" does: trailing slashes go before the split. */
  char *d = strdup(dst);
  if (!d)
    return NULL;
  for (size_t n = strlen(d); n > 1 && d[n - 1] == '/';)
    d[--n] = '\0';
  char *slash = strrchr(d, '/');
  const char *name = slash ? slash + 1 : d;
  char *rp = NULL;
  if (slash == d)
    rp = strdup("/"); /* "/name" */
  else if (slash) {
    *slash = '\0';
    rp = realpath(d, NULL);
  } else
    rp = realpath(".", NULL);
  full = NULL;
  if (rp) {
    size_t n = strlen(rp) + strlen(name) + 2;
    full = malloc(n);
    if (full)
      snprintf(full, n, "%s%s%s", rp, strcmp(rp, "/") ? "/" : "", name);
  }
  free(rp);
  free(d);
  return full;
}

/* Is DST SRC itself, or (with -r) somewhere inside it?  Says which, or
 * NULL.  Then the copy would overwrite its own source, or walk into what
 * it is writing and copy the copy again, one level deeper each time (as
 * cp, refused). */
static const char *dst_in_src(const run *r) {
  /* The same folder under two names that no path comparison relates (a
   * bind mount): device and inode tell. */
  struct stat ss, ds;
  if (stat(r->src, &ss) == 0 && stat(r->dst, &ds) == 0 &&
      ss.st_dev == ds.st_dev && ss.st_ino == ds.st_ino)
    return "the same folder as";
  char *s = realpath(r->src, NULL);
  char *d = s ? real_dst(r->dst) : NULL;
  const char *in = NULL;
  if (d) {
    size_t n = strlen(s);
    if (strcmp(s, d) == 0)
      in = "the same folder as";
    else if (r->pl.recursive && strncmp(s, d, n) == 0 &&
             (d[n] == '/' || strcmp(s, "/") == 0))
      in = "inside";
  }
  free(s);
  free(d);
  return in;
}

static int check_folders(const run *r) {
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
  const char *in = dst_in_src(r);
  if (in) {
    warn("DST '%s' is %s SRC '%s': the copy would copy itself", r->dst, in,
         r->src);
    return EXIT_USAGE;
  }
  if (mkdir(r->dst, 0777) != 0 && errno != EEXIST) {
    warn("DST '%s': %s", r->dst, strerror(errno));
    return EXIT_SOME_FAILED;
  }
  return RUN_ON;
}

/* ---- the run ------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

static void catch_sigint(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, NULL);
}

static bool start_workers(run *r) {
  int rc;
  if (r->processes) {
    cf_process_pool_options o;
    cf_process_pool_options_init(&o);
    o.max_workers = (int)r->jobs;
    o.initializer = ignore_sigint;
    o.on_worker_death = CF_ON_DEATH_RESTART;
    rc = cf_process_pool_create(&o, &r->ex);
  } else {
    cf_thread_pool_options o;
    cf_thread_pool_options_init(&o);
    o.max_workers = (int)r->jobs;
    o.thread_name_prefix = "pcopy";
    rc = cf_thread_pool_create(&o, &r->ex);
  }
  if (rc != CF_OK) {
    warn("cannot start workers: %s", cf_strerror(rc));
    return false;
  }
  return true;
}

/* Sends job j to the workers, into the window's next free slot. */
static void submit_copy(run *r, const job *j) {
  size_t ls = strlen(j->src) + 1, ld = strlen(j->dst) + 1;
  char *req = malloc(4 + ls + ld);
  if (!req) {
    warn("%s: out of memory", j->src);
    r->pl.failed++;
    return;
  }
  uint32_t flags = r->force ? COPY_FORCE : 0;
  memcpy(req, &flags, 4);
  memcpy(req + 4, j->src, ls);
  memcpy(req + 4 + ls, j->dst, ld);
  size_t slot = (r->head + r->inflight) % r->window;
  int rc =
      cf_submit_owned(r->ex, task_copy, req, 4 + ls + ld, free, &r->fl[slot]);
  if (rc != CF_OK) {
    free(req);
    warn("%s: %s", j->src, cf_strerror(rc));
    r->pl.failed++;
  } else {
    cf_future_add_done_callback(r->fl[slot], on_copied, &r->pr);
    r->inflight++;
  }
}

/* Waits for the oldest copy in flight and counts it in.  Ctrl-C ends the
 * wait with the copy still in the window: the rest is cancelled first. */
static void collect_oldest(run *r) {
  cf_future *f = r->fl[r->head];
  int rc;
  while ((rc = cf_future_wait(f, CF_MSEC(100))) == CF_ETIMEDOUT && !interrupted)
    ;
  if (rc == CF_ETIMEDOUT)
    return; /* interrupted: cancel the rest first */
  int code;
  const char *msg;
  rc = cf_future_error(f, CF_FOREVER, &code, &msg);
  if (rc == CF_OK) {
    r->copied++;
  } else if (rc != CF_ECANCELLED) {
    warn("%s", msg ? msg : cf_strerror(rc));
    r->pl.failed++;
  }
  cf_future_release(f);
  r->head = (r->head + 1) % r->window;
  r->inflight--;
}

/* At most `window` copies in flight: a million files never means a
 * million futures.  Results are collected oldest first. */
static void copy_files(run *r) {
  plan *pl = &r->pl;
  r->pr.total_files = pl->njobs;
  r->pr.total_bytes = pl->total_bytes;
  r->pr.start = r->t0;
  r->pr.show = !pl->quiet && isatty(STDERR_FILENO);
  pthread_mutex_init(&r->pr.mu, NULL);
  r->window = (size_t)r->jobs * 16;
  r->fl = calloc(r->window, sizeof *r->fl);
  if (!r->fl) {
    warn("out of memory");
    pl->failed += pl->njobs; /* none copied: say so, and exit non-zero */
  }
  while (r->fl && (r->next < pl->njobs || r->inflight)) {
    while (!interrupted && r->next < pl->njobs && r->inflight < r->window)
      submit_copy(r, &pl->jobs[r->next++]);
    if (interrupted && r->next < pl->njobs) {
      /* Ctrl-C: what has not started is cancelled; running copies finish
       * and are renamed into place, so nothing partial is left. */
      cf_shutdown(r->ex, false, true);
      r->next = pl->njobs;
    }
    if (!r->inflight)
      break;
    collect_oldest(r);
  }
  cf_executor_release(r->ex);
}

/* Folders last: adding files changed their times. */
static void set_folder_times(plan *pl) {
  for (size_t i = pl->ndirs; i-- > 0;) {
    dirfix *d = &pl->dirs[i];
    struct timespec times[2] = {d->st.st_atim, d->st.st_mtim};
    if (chmod(d->path, d->st.st_mode & 07777) != 0 ||
        utimensat(AT_FDCWD, d->path, times, AT_SYMLINK_NOFOLLOW) != 0) {
      warn("%s: %s", d->path, strerror(errno));
      pl->failed++;
    }
    free(d->path);
  }
}

static void report(run *r) {
  if (r->pr.show && r->pl.njobs)
    print_progress(&r->pr, true);
  double el = now() - r->t0;
  if (!r->pl.quiet) {
    char hb[32], hr[32];
    human(hb, sizeof hb, (double)atomic_load(&r->pr.bytes));
    human(hr, sizeof hr, el > 0 ? (double)atomic_load(&r->pr.bytes) / el : 0);
    printf("pcopy: %" PRIu64 " of %zu files copied (%s in %.2f s, %s/s)%s%zu "
           "failed, %zu skipped\n",
           r->copied, r->pl.njobs, hb, el, hr,
           interrupted ? ", interrupted, " : ", ", r->pl.failed, r->pl.skipped);
  }
}

static void clean_up(run *r) {
  for (size_t i = 0; i < r->pl.njobs; i++) {
    free(r->pl.jobs[i].src);
    free(r->pl.jobs[i].dst);
  }
  free(r->pl.jobs);
  free(r->pl.dirs);
  free(r->fl);
  pthread_mutex_destroy(&r->pr.mu);
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv) {
  run r = {.jobs = 4};
  int status = parse_options(&r, argc, argv);
  if (status == RUN_ON)
    status = check_folders(&r);
  if (status != RUN_ON)
    return status;
  catch_sigint();
  r.t0 = now();
  walk(&r.pl, r.src, r.dst, r.force);
  if (!start_workers(&r))
    return EXIT_SOME_FAILED;
  copy_files(&r);
  set_folder_times(&r.pl);
  report(&r);
  clean_up(&r);
  if (interrupted)
    return EXIT_INTERRUPTED;
  return r.pl.failed ? EXIT_SOME_FAILED : 0;
}
