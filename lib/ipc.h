/*
 * The process pool's wire protocol between the parent and a worker, over a
 * stream socket.  Every message is a frame: a fixed header, then `len`
 * payload bytes.  Everything the parent reads from a worker goes through the
 * decoders here, which check every length against the bytes actually
 * received: a malformed or truncated message becomes CF_EPROTO, never a
 * crash (fuzzed by tests/fuzz_ipc.c, replayed by tests/test_ipc.c).  The
 * same holds the other way: what a worker decodes (TASK, CHUNK, STOP) goes
 * through the worker-side decoders below, fuzzed and replayed alike.
 *
 * Parent -> worker:  HELLO secret                 (before the worker starts)
 *                    INIT  modules fnref initarg... (the first frame)
 *                    TASK  fnref input...
 *                    CHUNK fnref u64 n, n x (u64 len, bytes)
 *                    EXIT
 *                    STOP  (no payload; the frame's id names the chunk)
 * Worker -> parent:  READY u32 index... (modules that differ here)
 *                    | INITFAIL i32 code [u32 module index]
 *                    RESULT i32 rc, u32 has_msg, bytes (result, or message)
 *                    CHUNKRESULT u64 n, n x (i32 status, i32 code,
 *                                           u32 has_msg, u32 0, u64 len, bytes)
 * A fnref is u32 name_len (UINT32_MAX: no function), name, u64 offset: the
 * module that holds the function and its offset from the module's load
 * address, so it resolves in a fresh exec of the same binary.
 *
 * STOP asks the worker running the CHUNK with that id to skip the inputs it
 * has not started (it looks between inputs, at most once per clock tick): it answers with the CHUNKRESULT as usual, those items
 * NOT_RUN.  The parent sends it at most once per chunk, and only while the
 * chunk is outstanding, so a STOP can reach the worker after the chunk is
 * done (it crossed the CHUNKRESULT): an idle worker ignores it.  Any other
 * message while a chunk runs is a protocol error.
 */
#ifndef CF_IPC_H
#define CF_IPC_H

#include "internal.h"
#include "batch.h"

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

typedef struct cf__frame {
  uint32_t magic;
  uint32_t type;
  uint64_t id;
  uint64_t len;
} cf__frame;

/* Per-item status on the wire. */
enum { CF__ITEM_OK = 0, CF__ITEM_FAILED = 1, CF__ITEM_NOT_RUN = 2 };

/* ---- function references ------------------------------------------------- */

typedef struct cf__fnref {
  char name[512]; /* "" for the main program */
  uint64_t offset;
  bool none;
} cf__fnref;

/* Finds the module holding `addr`.  Returns CF_OK or CF_EINVAL. */
int cf__fnref_locate(uintptr_t addr, cf__fnref *ref);
/* Finds it again (in a worker): the address, or 0 if no executable segment
 * of a module of that name holds it. */
uintptr_t cf__fnref_resolve(const char *name, size_t name_len,
                            uint64_t offset);
/* Bytes of the fnref's wire form, and the encoding into `out`. */
size_t cf__fnref_size(const cf__fnref *ref);
void cf__fnref_put(const cf__fnref *ref, unsigned char *out);

/* The same parse into one view: what every message that names a function
 * (INIT, TASK, CHUNK) starts with.  Returns the bytes used, or 0 if
 * malformed.  Pure: resolving is cf__fnref_view_resolve()'s job. */
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

/* ---- framing ------------------------------------------------------------- */

/* Sends one frame whose payload is the concatenation of iov[0..niov).
 * Blocking; restarts after EINTR; never raises SIGPIPE.  Returns CF_OK or
 * CF_ESYS (the peer is gone). */
int cf__ipc_send(int fd, uint32_t type, uint64_t id, const struct iovec *iov,
                 int niov);
/* Reads exactly n bytes.  Returns CF_OK, CF_EOF (clean end before any
 * byte), CF_EPROTO (end in the middle) or CF_ESYS. */
int cf__ipc_read(int fd, void *buf, size_t n);
/* Reads a frame header and checks it.  Returns CF_OK, CF_EOF, CF_EPROTO or
 * CF_ESYS. */
int cf__ipc_read_frame(int fd, cf__frame *fr);
/* Reads a payload of len bytes into a new buffer (*out, the caller frees;
 * NULL when len is 0).  Returns CF_OK, CF_ENOMEM, or what cf__ipc_read()
 * returns (*out NULL then). */
int cf__ipc_read_payload(int fd, size_t len, unsigned char **out);

/* ---- decoding what workers send ------------------------------------------ */

/* A RESULT payload: on CF_OK, *rc is the task's code; data/len are the
 * result (rc == 0) or the message (rc != 0, has_msg).  Pointers into p. */
typedef struct cf__result_view {
  int32_t rc;
  bool has_msg;
  const unsigned char *data;
  size_t len;
} cf__result_view;
int cf__ipc_decode_result(const unsigned char *p, size_t n,
                          cf__result_view *out);

/* A CHUNKRESULT payload for a chunk of `expect` items: fills items[] (their
 * buffers and messages are copied, so they outlive p).  Returns CF_OK,
 * CF_EPROTO (items[] then left empty) or CF_ENOMEM. */
int cf__ipc_decode_chunk_result(const unsigned char *p, size_t n,
                                size_t expect, cf__batch_item *items);

/* ---- encoding chunks (parent) and chunk results (worker) ----------------- */

/* A growable output buffer. */
typedef struct cf__obuf {
  unsigned char *p;
  size_t len, cap;
} cf__obuf;

/* The CHUNK payload for c with function ref: *out is allocated (free()).
 * CF_ENOMEM also when it would exceed CF__IPC_MAX_PAYLOAD.
 * Returns CF_OK or CF_ENOMEM. */
int cf__ipc_encode_chunk(const cf__fnref *ref, const cf__batch *c,
                         unsigned char **out, size_t *len);
/* A CHUNKRESULT payload: begin with the item count, then add each item in
 * order (status CF__ITEM_*; data is the result, or the message when
 * has_msg).  On CF_ENOMEM the buffer is freed.  Free b->p when done. */
int cf__ipc_chunk_result_begin(cf__obuf *b, uint64_t count);
int cf__ipc_chunk_result_add(cf__obuf *b, int32_t status, int32_t code,
                             bool has_msg, const void *data, size_t len);

/* ---- decoding what the parent sends (worker) ----------------------------- */

/* A TASK payload: the function and the input (a view into p). */
typedef struct cf__task_view {
  cf__fnref_view fn;
  const unsigned char *in; /* NULL when len is 0 */
  size_t len;
} cf__task_view;
int cf__ipc_decode_task(const unsigned char *p, size_t n, cf__task_view *out);

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
int cf__ipc_decode_chunk(const unsigned char *p, size_t n,
                         cf__chunk_view *out);
/* The next input (in: NULL when len is 0).  Returns CF_OK, CF_EOF after the
 * last one, or CF_EPROTO (bounds are checked again on every call). */
int cf__ipc_chunk_next(cf__chunk_view *v, const unsigned char **in,
                       size_t *len);

/* What a worker does with a frame that arrives while it runs the chunk
 * `running_id` (chunk_running) or while it is idle (!chunk_running; only a
 * STOP is passed then).  Returns CF__STOP_NOW (a STOP for the running
 * chunk), CF__STOP_IGNORE (a STOP while idle: it crossed the result), or
 * CF_EPROTO (anything else: another message, a payload, a STOP for another
 * chunk while one runs). */
enum { CF__STOP_IGNORE = 0, CF__STOP_NOW = 1 };
int cf__ipc_decode_stop(const cf__frame *fr, bool chunk_running,
                        uint64_t running_id);

/* ---- the handshake: HELLO, and the modules in INIT ----------------------- */

/* HELLO: the very first bytes on a worker's socket, written by the parent
 * before it starts the worker: a frame header of type CF__MSG_HELLO (outside
 * the frame types cf__ipc_read_frame() accepts: only the worker's
 * constructor reads it, with MSG_PEEK, before deciding it is a worker) and
 * the pool's secret, which the worker also finds in its marker variable. */
#define CF__MSG_HELLO 0x4f4c4548u /* "HELO" */
#define CF__SECRET_LEN 32
#define CF__HELLO_SIZE (sizeof(cf__frame) + CF__SECRET_LEN)
void cf__hello_put(const unsigned char *secret, unsigned char *out);
/* True only for exactly CF__HELLO_SIZE bytes that are a HELLO carrying
 * `secret` (compared in constant time). */
bool cf__hello_check(const unsigned char *p, size_t n,
                     const unsigned char *secret);

/* The identity of a loaded module: its GNU build-id, or failing that the
 * device and inode of its file mapping (/proc/self/maps), or nothing. */
enum { CF__ID_NONE = 0, CF__ID_BUILD = 1, CF__ID_FILE = 2 };
#define CF__ID_MAX 64
#define CF__MODULES_MAX 4096
typedef struct cf__module {
  char *name;      /* dl_iterate_phdr's name; "" for the main program */
  uint8_t kind, idlen;
  unsigned char id[CF__ID_MAX];
  bool startup;    /* loaded with the program, not by dlopen() */
  bool changed;    /* parent: a worker loaded another build (manager only) */
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
/* The module list's wire form (INIT's prefix): u32 count, then per module
 * u32 name_len, name, u8 kind, u8 idlen, id. */
size_t cf__modules_size(const cf__modules *ms);
void cf__modules_put(const cf__modules *ms, unsigned char *out);

/* A module as the worker reads it from INIT: pointers into the message. */
typedef struct cf__module_view {
  const char *name;
  size_t name_len;
  uint8_t kind, idlen;
  const unsigned char *id;
} cf__module_view;
/* Parses the module list at the start of p[0..n).  On CF_OK, *used is its
 * size and *views (freed by the caller) holds *count entries.  Returns
 * CF_OK, CF_EPROTO (malformed, nothing allocated) or CF_ENOMEM. */
int cf__modules_decode(const unsigned char *p, size_t n, size_t *used,
                       cf__module_view **views, uint32_t *count);
/* Compares the parent's modules with this process's: bad[] receives the
 * indexes (into views) of the modules that are missing here or another
 * build; returns how many (at most count). */
uint32_t cf__modules_compare(const cf__module_view *views, uint32_t count,
                             const cf__modules *mine, uint32_t *bad);
/* READY's payload: u32 indexes of the modules that differ in the worker,
 * each below nmods, ascending.  Returns CF_OK or CF_EPROTO. */
int cf__ipc_decode_ready(const unsigned char *p, size_t n, size_t nmods);

#endif /* CF_IPC_H */
