/*
 * The wire protocol between a pool and its workers: a process pool's
 * parent and worker over a stream socket, and the MPI backend's root and
 * ranks over MPI messages (a channel, cf__chan, carries frames either way).
 * Every message is a frame: a fixed header (cf__frame), then
 * `len` payload bytes.  Each message has its section below: its wire
 * layout, its encoder (cf__ipc_send_<msg>: the frame goes out from iovecs,
 * so a large payload is never copied on its way to the socket) and, right
 * beside it, its decoder.  Nothing outside ipc.c composes or parses a
 * message, so each layout is written down once, here.
 *
 * The decoders check every length against the bytes actually received: a
 * malformed or truncated message becomes CF_EPROTO, never a crash.  That
 * holds for what the parent reads (READY, INITFAIL, RESULT, CHUNKRESULT)
 * and for what a worker reads (HELLO, INIT, TASK, CHUNK, STOP, EXIT): all
 * are fuzzed by tests/fuzz_ipc.c and replayed by tests/test_ipc.c, which
 * also checks every encoder's bytes and its round trip through its decoder.
 * Where a decoder refuses a value or combination its encoder can see (a
 * message on a success, a failure code of 0, READY's indexes out of
 * order), the encoder refuses it too (CF_EINVAL, nothing sent or added).
 * Module indexes are checked against INIT's module count by the parent's
 * decoders only: the worker's encoders get them from its own walk of that
 * list (cf__modules_compare), and the module list is capped where it is
 * collected (CF__MODULES_MAX).
 *
 * Parent -> worker:  HELLO secret                 (before the worker starts)
 *                    INIT  modules fnref initarg... (the first frame)
 *                    TASK  fnref input...
 *                    CHUNK fnref u64 n, n x (u64 len, bytes)
 *                    STOP  (no payload; the frame's id names the chunk)
 *                    EXIT  (no payload)
 * Worker -> parent:  READY u32 index... (modules that differ here)
 *                    | INITFAIL i32 code [u32 module index]
 *                    RESULT i32 rc, u32 has_msg, bytes (result, or message)
 *                    CHUNKRESULT u64 n, n x (i32 status, i32 code,
 *                                           u32 has_msg, u32 0, u64 len, bytes)
 * Both ends are the same binary on the same machine: integers travel in
 * host byte order, unaligned (every field is copied with memcpy).
 */
#ifndef CF_IPC_H
#define CF_IPC_H

#include "internal.h"
#include "batch.h"

#include <string.h>
#include <sys/uio.h>

#define CF__IPC_MAGIC 0x31574643u /* "CFW1" */
#define CF__IPC_MAX_PAYLOAD ((uint64_t)1 << 40)

enum {
  CF__MSG_INIT = 1,
  CF__MSG_TASK,
  CF__MSG_CHUNK,
  CF__MSG_EXIT,
  CF__MSG_READY,
  CF__MSG_INITFAIL,
  CF__MSG_RESULT,
  CF__MSG_CHUNKRESULT,
  CF__MSG_STOP
};
#define CF__MSG_LAST CF__MSG_STOP

/* The frame header, 24 bytes: u32 magic, u32 type, u64 id, u64 len. */
typedef struct cf__frame {
  uint32_t magic;
  uint32_t type;
  uint64_t id;
  uint64_t len;
} cf__frame;

/* ---- function references ------------------------------------------------- */

/* A fnref, the function a message names (INIT, TASK, CHUNK start with one):
 *   u32 name_len   UINT32_MAX: no function (nothing follows)
 *   name           the module that holds it ("" for the main program)
 *   u64 offset     its offset from the module's load address
 * so that it resolves in a fresh exec of the same binary. */
typedef struct cf__fnref {
  char name[512]; /* "" for the main program */
  uint64_t offset;
  bool none;
} cf__fnref;
/* The largest wire form: the longest name that fits in cf__fnref. */
#define CF__FNREF_MAX (4 + sizeof(((cf__fnref *)0)->name) - 1 + 8)

/* Finds the module holding `addr`.  Returns CF_OK or CF_EINVAL. */
int cf__fnref_locate(uintptr_t addr, cf__fnref *ref);
/* Finds it again (in a worker): the address, or 0 if no executable segment
 * of a module of that name holds it. */
uintptr_t cf__fnref_resolve(const char *name, size_t name_len, uint64_t offset);
/* Bytes of the fnref's wire form (at most CF__FNREF_MAX), and the encoding
 * into `out`. */
size_t cf__fnref_size(const cf__fnref *ref);
void cf__fnref_put(const cf__fnref *ref, unsigned char *out);

/* The parse of a fnref at the start of p[0..n) into a view.  Returns the
 * bytes used, or 0 if malformed.  Pure: resolving is
 * cf__fnref_view_resolve()'s job. */
typedef struct cf__fnref_view {
  const char *name; /* points into the message; not NUL-terminated */
  size_t name_len;
  uint64_t offset;
  bool none; /* "no function" (an absent initializer) */
} cf__fnref_view;
size_t cf__ipc_decode_fnref(const unsigned char *p, size_t n,
                            cf__fnref_view *out);
/* The address in this process, or 0 (none, or not found). */
uintptr_t cf__fnref_view_resolve(const cf__fnref_view *v);

/* ---- channels and framing ------------------------------------------------ */

/* Where frames go and come from.  The process pool's channel is a stream
 * socket (ops NULL, fd set: what CF__FD_CHAN makes); another transport
 * (the MPI backend's, mpi_chan.c) brings its own ops, and the encoders and
 * the worker's loop (worker.c) serve it unchanged. */
typedef struct cf__chan cf__chan;
typedef struct cf__chan_ops {
  /* Sends one whole frame, v[0] its header and v[1..nv) its payload (v
   * may be consumed).  Blocking; CF_OK or CF_ESYS (the peer is gone). */
  int (*writev)(cf__chan *ch, struct iovec *v, size_t nv);
  /* Has a frame come?  1 or 0 without blocking, or an error status. */
  int (*ready)(cf__chan *ch);
  /* Waits for the next frame and reads it whole: its checked header into
   * fr, its payload into a new buffer (*payload, the caller frees; NULL
   * when len is 0).  CF_OK, CF_EOF (the peer is gone), CF_EPROTO,
   * CF_ENOMEM or CF_ESYS. */
  int (*recv)(cf__chan *ch, cf__frame *fr, unsigned char **payload);
} cf__chan_ops;
struct cf__chan {
  int fd;
  const cf__chan_ops *ops; /* NULL: the stream socket fd */
  void *ctx;               /* the transport's own */
};
/* A socket's channel, for one call: cf__ipc_send_exit(CF__FD_CHAN(fd)). */
#define CF__FD_CHAN(f) (&(cf__chan){.fd = (f), .ops = NULL, .ctx = NULL})

/* Sends one frame whose payload is the concatenation of iov[0..niov), at
 * most 7.  Blocking; restarts after EINTR; never raises SIGPIPE.  Returns
 * CF_OK, CF_ESYS (the peer is gone), or, with nothing sent, CF_ENOMEM (the
 * payload would exceed CF__IPC_MAX_PAYLOAD, which the peer refuses) or
 * CF_EINVAL (too many iovecs).  The cf__ipc_send_<msg> functions below
 * build their messages with it; call those. */
int cf__ipc_send(cf__chan *ch, uint32_t type, uint64_t id,
                 const struct iovec *iov, int niov);
/* The channel's ready / recv (for a socket: poll(), then
 * cf__ipc_read_frame and cf__ipc_read_payload). */
int cf__chan_ready(cf__chan *ch);
int cf__chan_recv(cf__chan *ch, cf__frame *fr, unsigned char **payload);
/* Reads exactly n bytes.  Returns CF_OK, CF_EOF (clean end before any
 * byte), CF_EPROTO (end in the middle) or CF_ESYS. */
int cf__ipc_read(int fd, void *buf, size_t n);
/* A header that may begin a frame: our magic, a known type, a payload
 * within CF__IPC_MAX_PAYLOAD. */
bool cf__ipc_frame_ok(const cf__frame *fr);
/* Reads a frame header and checks it.  Returns CF_OK, CF_EOF, CF_EPROTO or
 * CF_ESYS. */
int cf__ipc_read_frame(int fd, cf__frame *fr);
/* Reads a payload of len bytes into a new buffer (*out, the caller frees;
 * NULL when len is 0).  Returns CF_OK, CF_ENOMEM, or what cf__ipc_read()
 * returns (*out NULL then). */
int cf__ipc_read_payload(int fd, size_t len, unsigned char **out);

/* ---- module identities (what INIT and READY speak of) -------------------- */

/* The identity of a loaded module: its GNU build-id, or failing that the
 * device and inode of its file mapping (/proc/self/maps), or nothing. */
enum { CF__ID_NONE = 0, CF__ID_BUILD = 1, CF__ID_FILE = 2 };
#define CF__ID_MAX 64
#define CF__MODULES_MAX 4096
typedef struct cf__module {
  char *name; /* dl_iterate_phdr's name; "" for the main program */
  uint8_t kind, idlen;
  unsigned char id[CF__ID_MAX];
  bool startup;     /* loaded with the program, not by dlopen() */
  bool changed;     /* parent: a worker loaded another build (manager only) */
  uintptr_t lo, hi; /* its executable segments span [lo, hi) */
} cf__module;
typedef struct cf__modules {
  size_t n;
  cf__module *m; /* in dl_iterate_phdr order: the program first */
} cf__modules;

/* Lists the modules loaded in this process with their identities, and which
 * of them were loaded at start-up: the main program, the DT_NEEDED closure
 * of its dynamic section, and whatever the loader put before the last of
 * those (preloads, the vDSO).  Returns CF_OK or CF_ENOMEM. */
int cf__modules_collect(cf__modules *out);
void cf__modules_free(cf__modules *ms);
/* The index of the module whose executable segments hold addr, or -1. */
long cf__modules_find(const cf__modules *ms, uintptr_t addr);

/* A module as the worker reads it from INIT: pointers into the message. */
typedef struct cf__module_view {
  const char *name;
  size_t name_len;
  uint8_t kind, idlen;
  const unsigned char *id;
} cf__module_view;
/* Compares the parent's modules with this process's: bad[] receives the
 * indexes (into views) of the modules that are missing here or another
 * build; returns how many (at most count). */
uint32_t cf__modules_compare(const cf__module_view *views, uint32_t count,
                             const cf__modules *mine, uint32_t *bad);

/* ---- a pool's task functions -------------------------------------------- */

/* The functions a pool sent last, with their modules: finding a function's
 * module and reference walks the loaded modules, which a pool would
 * otherwise do for every task. */
typedef struct cf__fncache {
  struct {
    uintptr_t fn;
    long mod;
    cf__fnref ref;
  } e[8];
  unsigned next;
} cf__fncache;
/* fn's module (its index in ms, or -1) into *mod and its reference into
 * *ref.  Returns CF_OK, or CF_EINVAL when no module of ms holds it or it
 * cannot be located (*mod may then still name a module). */
int cf__fncache_get(cf__fncache *c, const cf__modules *ms, uintptr_t fn,
                    long *mod, cf__fnref *ref);

/* ---- HELLO: the handshake ------------------------------------------------ */

/* Parent -> worker, the very first bytes on a worker's socket, written by
 * the parent before it starts the worker:
 *   frame      magic, type CF__MSG_HELLO, id 0, len CF__SECRET_LEN
 *   secret     the pool's, which the worker also finds in its marker
 * Its type is outside those cf__ipc_read_frame() accepts: only the worker's
 * constructor reads it, with MSG_PEEK, before deciding it is a worker. */
#define CF__MSG_HELLO 0x4f4c4548u /* "HELO" */
#define CF__SECRET_LEN 32
#define CF__HELLO_SIZE (sizeof(cf__frame) + CF__SECRET_LEN)
/* Writes the CF__HELLO_SIZE bytes into out (sent with one send(): no frame
 * goes out before the worker exists to need cf__ipc_send()). */
void cf__hello_put(const unsigned char *secret, unsigned char *out);
/* True only for exactly CF__HELLO_SIZE bytes that are a HELLO carrying
 * `secret` (compared in constant time). */
bool cf__hello_check(const unsigned char *p, size_t n,
                     const unsigned char *secret);

/* ---- INIT: the parent's modules, the initializer ------------------------- */

/* Parent -> worker, the first frame after the HELLO, id 0:
 *   u32 count      the parent's modules, at most CF__MODULES_MAX, each
 *     u32 name_len   at most PATH_MAX
 *     name
 *     u8 kind        CF__ID_*
 *     u8 idlen       0 exactly for CF__ID_NONE, at most CF__ID_MAX
 *     id
 *   fnref          the initializer (none when the pool has none)
 *   initarg...     the rest: the initializer's argument
 * The worker answers READY, or INITFAIL and ends.
 *
 * The module list is the same for every worker of a pool: it is encoded
 * once (size, then put), and sent as it is with each INIT. */
size_t cf__modules_size(const cf__modules *ms);
void cf__modules_put(const cf__modules *ms, unsigned char *out);
/* Sends INIT: mods[0..mods_len) from cf__modules_put(), then init's fnref
 * and arg.  Returns what cf__ipc_send() returns. */
int cf__ipc_send_init(cf__chan *ch, const unsigned char *mods, size_t mods_len,
                      const cf__fnref *init, const void *arg, size_t arg_len);

/* Parses the module list at the start of p[0..n).  On CF_OK, *used is its
 * size and *views (freed by the caller) holds *count entries.  Returns
 * CF_OK, CF_EPROTO (malformed, nothing allocated) or CF_ENOMEM. */
int cf__modules_decode(const unsigned char *p, size_t n, size_t *used,
                       cf__module_view **views, uint32_t *count);
/* An INIT payload: on CF_OK, mods (allocated: free() it) holds nmods
 * views, and fn and arg point into p (arg NULL when arg_len is 0).
 * Returns CF_OK, CF_EPROTO (malformed, nothing allocated) or CF_ENOMEM. */
typedef struct cf__init_view {
  cf__module_view *mods;
  uint32_t nmods;
  cf__fnref_view fn;
  const unsigned char *arg;
  size_t arg_len;
} cf__init_view;
int cf__ipc_decode_init(const unsigned char *p, size_t n, cf__init_view *out);

/* ---- READY: the worker serves -------------------------------------------- */

/* Worker -> parent, INIT's answer when the initializer ran and returned 0
 * (or there is none), id 0:
 *   u32 index...   the modules of INIT's list that are another build or
 *                  missing here, ascending, each below INIT's count
 * (possibly none: an empty payload).  Tasks of those modules are refused
 * from then on. */
/* CF_EINVAL, nothing sent, when bad[] is not ascending. */
int cf__ipc_send_ready(cf__chan *ch, const uint32_t *bad, uint32_t nbad);
/* A READY payload for INIT's nmods modules: CF_OK or CF_EPROTO.  Then
 * n / 4 indexes, which cf__ipc_ready_index() reads. */
int cf__ipc_decode_ready(const unsigned char *p, size_t n, size_t nmods);
static inline uint32_t cf__ipc_ready_index(const unsigned char *p, size_t i) {
  uint32_t idx;
  memcpy(&idx, p + 4 * i, 4);
  return idx;
}

/* ---- INITFAIL: the worker will not serve --------------------------------- */

/* Worker -> parent, INIT's answer when the worker ends instead, id 0:
 *   i32 code       non-zero: the initializer's, CF_EINVAL (it is not in
 *                  this process), or CF_ETASK (its module is another build)
 *   [u32 module]   with the last: that module's index in INIT's list
 * so 4 or 8 bytes, never more (CF__INITFAIL_MAX). */
#define CF__INITFAIL_MAX 8
/* module is UINT32_MAX when there is none.  CF_EINVAL (nothing sent) for a
 * code of 0, else what cf__ipc_send() returns. */
int cf__ipc_send_initfail(cf__chan *ch, int32_t code, uint32_t module);
/* An INITFAIL payload for INIT's nmods modules: on CF_OK, *code, and
 * *module (UINT32_MAX when absent; else below nmods).  Returns CF_OK or
 * CF_EPROTO. */
int cf__ipc_decode_initfail(const unsigned char *p, size_t n, size_t nmods,
                            int32_t *code, uint32_t *module);

/* ---- TASK: one input ----------------------------------------------------- */

/* Parent -> worker, one call of a function; the frame's id names it (its
 * RESULT carries the same id):
 *   fnref          the function
 *   input...       the rest (possibly empty): its input */
int cf__ipc_send_task(cf__chan *ch, uint64_t id, const cf__fnref *fn,
                      const void *in, size_t len);

/* A TASK payload: the function and the input (a view into p).  Returns
 * CF_OK or CF_EPROTO. */
typedef struct cf__task_view {
  cf__fnref_view fn;
  const unsigned char *in; /* NULL when len is 0 */
  size_t len;
} cf__task_view;
int cf__ipc_decode_task(const unsigned char *p, size_t n, cf__task_view *out);

/* ---- RESULT: a TASK's answer --------------------------------------------- */

/* Worker -> parent, with the TASK's id:
 *   i32 rc         what the task returned
 *   u32 has_msg    1: the bytes are the failure's message (rc != 0 only)
 *   bytes...       the rest: the result (rc == 0), the message (has_msg),
 *                  else none (the parent would ignore them)
 * The parent reads the CF__RESULT_HEAD bytes first, then the rest straight
 * into the future's buffer. */
#define CF__RESULT_HEAD 8
/* CF_EINVAL (nothing sent) for has_msg with rc 0, else what cf__ipc_send()
 * returns. */
int cf__ipc_send_result(cf__chan *ch, uint64_t id, int32_t rc, bool has_msg,
                        const void *data, size_t len);

/* A RESULT payload (or its head alone, n == CF__RESULT_HEAD): on CF_OK,
 * rc is the task's code; data/len are the bytes after the head (pointers
 * into p).  Returns CF_OK or CF_EPROTO. */
typedef struct cf__result_view {
  int32_t rc;
  bool has_msg;
  const unsigned char *data;
  size_t len;
} cf__result_view;
int cf__ipc_decode_result(const unsigned char *p, size_t n,
                          cf__result_view *out);

/* ---- CHUNK: a batch of inputs -------------------------------------------- */

/* Parent -> worker, several inputs of one function; the frame's id names
 * it (its CHUNKRESULT, and a STOP for it, carry the same id):
 *   fnref          the function
 *   u64 n          the number of inputs
 *   n x
 *     u64 len
 *     len bytes    the input
 * Sends c's inputs, those larger than a page from where they are.  Returns
 * CF_OK, CF_ESYS, or CF_ENOMEM with nothing sent (memory, or a chunk larger
 * than a frame carries). */
int cf__ipc_send_chunk(cf__chan *ch, uint64_t id, const cf__fnref *fn,
                       const cf__batch *c);

/* A CHUNK payload: the function and an iterator over the inputs.  Decoding
 * checks the whole input list (count, each length, nothing after the last)
 * before anything runs.  Returns CF_OK or CF_EPROTO. */
typedef struct cf__chunk_view {
  cf__fnref_view fn;
  uint64_t count;
  uint64_t next; /* inputs handed out so far */
  const unsigned char *p;
  size_t off, n; /* position in p[0..n) */
} cf__chunk_view;
int cf__ipc_decode_chunk(const unsigned char *p, size_t n, cf__chunk_view *out);
/* The next input (in: NULL when len is 0).  Returns CF_OK, CF_EOF after the
 * last one, or CF_EPROTO (bounds are checked again on every call). */
int cf__ipc_chunk_next(cf__chunk_view *v, const unsigned char **in,
                       size_t *len);

/* ---- CHUNKRESULT: a CHUNK's answer --------------------------------------- */

/* Worker -> parent, with the CHUNK's id, one item per input, in order:
 *   u64 n          the CHUNK's n
 *   n x
 *     i32 status   CF__ITEM_*
 *     i32 code     FAILED: what the task returned, non-zero; else 0
 *                  (not read)
 *     u32 has_msg  1: the bytes are the failure's message (FAILED only)
 *     u32 0
 *     u64 len
 *     len bytes    OK: the result; FAILED: the message; NOT_RUN: none
 * The worker builds it as it runs the inputs (each result is freed once
 * copied in), so it is encoded into a growable buffer, then sent. */
enum { CF__ITEM_OK = 0, CF__ITEM_FAILED = 1, CF__ITEM_NOT_RUN = 2 };
typedef struct cf__obuf {
  unsigned char *p;
  size_t len, cap;
} cf__obuf;
/* Begin with the item count, then add each item in order (data is the
 * result, or the message when has_msg).  Returns CF_OK, CF_ENOMEM (also
 * for more than a frame carries) or CF_EINVAL (an item the decoder would
 * refuse); on an error the buffer is freed. */
int cf__ipc_chunk_result_begin(cf__obuf *b, uint64_t count);
int cf__ipc_chunk_result_add(cf__obuf *b, int32_t status, int32_t code,
                             bool has_msg, const void *data, size_t len);
/* Sends b as the CHUNKRESULT of chunk id, and frees it.  Returns what
 * cf__ipc_send() returns. */
int cf__ipc_send_chunk_result(cf__chan *ch, uint64_t id, cf__obuf *b);

/* A CHUNKRESULT payload for a chunk of `expect` items: fills items[] (their
 * buffers and messages are copied, so they outlive p).  Returns CF_OK,
 * CF_EPROTO (items[] then left empty) or CF_ENOMEM. */
int cf__ipc_decode_chunk_result(const unsigned char *p, size_t n, size_t expect,
                                cf__batch_item *items);

/* ---- STOP: skip the rest of a chunk -------------------------------------- */

/* Parent -> worker, no payload; the frame's id names the chunk.
 *
 * STOP asks the worker running the CHUNK with that id to skip the inputs it
 * has not started (it looks between inputs, at most once per clock tick):
 * it answers with the CHUNKRESULT as usual, those items NOT_RUN.  The
 * parent sends it at most once per chunk, and only while the chunk is
 * outstanding, so a STOP can reach the worker after the chunk is done (it
 * crossed the CHUNKRESULT): an idle worker ignores it.  Any other message
 * while a chunk runs is a protocol error. */
int cf__ipc_send_stop(cf__chan *ch, uint64_t id);

/* What a worker does with a frame that arrives while it runs the chunk
 * `running_id` (chunk_running) or while it is idle (!chunk_running; only a
 * STOP is passed then).  Returns CF__STOP_NOW (a STOP for the running
 * chunk), CF__STOP_IGNORE (a STOP while idle: it crossed the result), or
 * CF_EPROTO (anything else: another message, a payload, a STOP for another
 * chunk while one runs). */
enum { CF__STOP_IGNORE = 0, CF__STOP_NOW = 1 };
int cf__ipc_decode_stop(const cf__frame *fr, bool chunk_running,
                        uint64_t running_id);

/* ---- EXIT: the worker's end ---------------------------------------------- */

/* Parent -> worker, no payload.  A worker reads it between tasks and ends
 * (status 0).  A process-pool worker also ends when the parent closes the
 * socket; EXIT lets one retire while the pool goes on
 * (max_tasks_per_child).  The process pool sends id 0, which its worker
 * does not read; the MPI backend's id says whether the rank waits for
 * another pool or stops serving (CF__MPI_EXIT_*, mpi_common.h). */
int cf__ipc_send_exit(cf__chan *ch, uint64_t id);
/* CF_OK for an EXIT frame (no payload), else CF_EPROTO. */
int cf__ipc_decode_exit(const cf__frame *fr);

#endif /* CF_IPC_H */
