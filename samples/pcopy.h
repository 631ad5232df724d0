/*
 * pcopy's two halves: the copy task (pcopy_task.c: what runs on a worker,
 * thread or process) and the program (pcopy.c: options, the walk, batches
 * in flight, signals, the report).  What they share: the request and
 * answer bytes, the per-process settings the task reads, and the few
 * helpers the program uses too.
 */
#ifndef PCOPY_H
#define PCOPY_H

#include <cfutures.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The most files a batch holds. */
#define BATCH_FILES 64

/* ---- set once per process, read by every copy task ----------------------- */

/* SRC and DST, opened once (by main, or by each worker process's
 * initializer); the umask, to tell when a created file needs a chmod. */
extern int g_src, g_dst;
extern mode_t g_umask;
/* /proc/self/fd is there (a fallback for naming an unnamed file). */
extern bool g_have_proc;
/* The signal that asked us to stop, or 0.  Set by the signal thread (or,
 * in a worker process, its handler); read by tasks between files and
 * between pieces of a file. */
extern atomic_int g_stop;
#ifdef PCOPY_TEST_HOOKS
extern const char *g_src_path; /* SRC as given, for the test hook */
void test_ack_init(void);      /* where test_ack() says "stop taken" */
void test_ack(void);
#endif

/* ---- the request and its answer (bytes, for either backend) ------------- */

#define REQ_MAGIC 0x70637079u /* "pcpy" */
#define COPY_FORCE 1u
#define COPY_ARCHIVE 2u
#define COPY_NEWDIR 4u /* the DST folder was made by this run: empty */

enum { KIND_FILE = 1, KIND_LINK = 2 };
/* In req_ent.kind: the scan read the entry's inode (stat), so the copy
 * checks it is the same one; else it checks the type only (readdir's
 * inode numbers differ from stat's on overlayfs and for bind mounts). */
#define ENT_IDENT 0x100u
#define ENT_KIND(k) ((k)&0xffu)

/* Request: req_head, the folder's path below SRC and DST (NUL-ended; "."
 * for the top), then `count` times a req_ent and its name (NUL-ended). */
typedef struct req_head {
  uint32_t magic, flags, count, dirlen;
} req_head;
typedef struct req_ent {
  uint64_t dev, ino; /* what the scan saw: the copy checks it still is */
  uint32_t namelen;  /* with the NUL */
  uint32_t kind;
} req_ent;

enum outcome {
  OUT_COPIED = 1,
  OUT_EXISTS,  /* DST has that name and no -f: skipped */
  OUT_CHANGED, /* SRC is no longer what the scan saw: skipped */
  OUT_FAILED,
  OUT_STOPPED /* a signal came first: not copied, nothing left */
};
enum side { SIDE_SRC = 1, SIDE_DST };
enum detail {
  DETAIL_NONE = 0,
  DETAIL_LINK,    /* changed: now a symbolic link */
  DETAIL_TYPE,    /* changed: now not a regular file (a FIFO...) */
  DETAIL_OTHER,   /* changed: another file under that name */
  DETAIL_SHRANK,  /* failed: SRC shrank while it was copied */
  DETAIL_NOTLINK, /* changed: was a link, is not any more */
};
enum { REC_NO_XATTR = 1 }; /* DST cannot keep extended attributes */

/* Answer: one rec per entry, in order. */
typedef struct rec {
  uint64_t bytes;
  int32_t err;
  uint8_t outcome, side, detail, flags;
} rec;

/* ---- the task, and what the program uses of its helpers ------------------ */

int task_copy(cf_task *t, const void *in, size_t len);

/* What each worker process opens: SRC and DST as main saw them. */
typedef struct roots_arg {
  uint64_t sdev, sino, ddev, dino;
  uint32_t umask, srclen; /* then "src\0dst\0" */
} roots_arg;

/* The process pool's initializer (see pcopy_task.c). */
int worker_init(const void *arg, size_t len);

typedef struct failure { /* where and why a copy failed */
  int err;
  uint8_t side, detail;
} failure;
int fail_on(failure *w, uint8_t side, int err);

/* Opens the folder `rel` below `root`, following no link on the way. */
int open_dir_below(int root, const char *rel);

/* What make_temp() makes under a name: a link, a symbolic link... */
typedef int (*make_fn)(const void *ctx, int dir, const char *name);
/* Makes something with make() under a fresh temporary name in dir (left
 * in t); renames such a temporary to its name, or removes it. */
int make_temp(int dir, char t[32], make_fn make, const void *ctx);
int rename_temp(int dir, const char *t, const char *name, bool over);

/* With -a: the extended attributes (ACLs among them) of in onto out. */
int copy_xattrs(int in, int out, uint8_t *flags, failure *w);

#endif
