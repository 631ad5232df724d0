/* The process pool's wire protocol: function references, framing, the
 * decoders of what workers send and of what workers receive, every
 * message's round trip (its encoder's bytes against the layout ipc.h
 * documents, written out field by field here, then its decoder's view of
 * them), and a replay of the fuzz corpus of malformed messages
 * (tests/corpus/ipc). */
#include "test_util.h"

#include "ipc_input.h"

#include <dirent.h>
#include <limits.h>
#include <sys/socket.h>

/* ---- one frame through a socket, and the bytes it should hold ----------- */

/* A socketpair whose far end a thread reads one frame from, so that an
 * encoder can send more than the socket buffers hold. */
typedef struct wire {
  int sv[2];
  pthread_t reader;
  int rc;    /* CF_OK once a frame and its payload came */
  bool more; /* bytes came after that frame */
  cf__frame fr;
  unsigned char *p; /* the payload, NULL when empty (free()) */
} wire;

static void *wire_read(void *arg) {
  wire *w = arg;
  w->rc = cf__ipc_read_frame(w->sv[1], &w->fr);
  if (w->rc == CF_OK)
    w->rc = cf__ipc_read_payload(w->sv[1], (size_t)w->fr.len, &w->p);
  unsigned char c;
  w->more = w->rc == CF_OK && cf__ipc_read(w->sv[1], &c, 1) != CF_EOF;
  return NULL;
}

/* Returns the end to send on. */
static int wire_open(wire *w) {
  memset(w, 0, sizeof *w);
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, w->sv), 0);
  CU_ASSERT_EQUAL_FATAL(pthread_create(&w->reader, NULL, wire_read, w), 0);
  return w->sv[0];
}

/* After the send: what the reader got (CF_EOF when nothing was sent). */
static int wire_close(wire *w) {
  shutdown(w->sv[0], SHUT_WR);
  pthread_join(w->reader, NULL);
  close(w->sv[0]);
  close(w->sv[1]);
  CU_ASSERT_FALSE(w->more); /* exactly one frame */
  return w->rc;
}

/* The bytes a message should be, put field by field as ipc.h lays it out
 * (independently of the encoders: they are what is checked). */
typedef struct bytes {
  unsigned char *p;
  size_t n, cap;
} bytes;

static void put(bytes *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2;
    b->p = realloc(b->p, b->cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b->p);
  }
  if (n)
    memcpy(b->p + b->n, p, n);
  b->n += n;
}

static void put_u8(bytes *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_i32(bytes *b, int32_t v) { put(b, &v, 4); }
static void put_u64(bytes *b, uint64_t v) { put(b, &v, 8); }

static void put_fnref(bytes *b, const cf__fnref *r) {
  if (r->none) {
    put_u32(b, UINT32_MAX);
    return;
  }
  put_u32(b, (uint32_t)strlen(r->name));
  put(b, r->name, strlen(r->name));
  put_u64(b, r->offset);
}

/* w received one frame of `type` and `id` whose payload is exactly e's
 * bytes (e is freed). */
static void expect_frame(const wire *w, uint32_t type, uint64_t id, bytes *e) {
  CU_ASSERT_EQUAL(w->fr.magic, CF__IPC_MAGIC);
  CU_ASSERT_EQUAL(w->fr.type, type);
  CU_ASSERT_EQUAL(w->fr.id, id);
  CU_ASSERT_EQUAL(w->fr.len, e->n);
  CU_ASSERT_TRUE(w->fr.len == e->n &&
                 (e->n == 0 || memcmp(w->p, e->p, e->n) == 0));
  CU_ASSERT_TRUE(!w->p == !e->n);
  free(e->p);
  *e = (bytes){0};
}

/* A fnref whose name is as long as cf__fnref holds. */
static cf__fnref longest_fnref(void) {
  cf__fnref r = {.offset = 0x0123456789abcdefu};
  memset(r.name, 'm', sizeof r.name - 1);
  r.name[sizeof r.name - 1] = '\0';
  return r;
}

static void test_fnref_round_trip(void) {
  cf__fnref ref;
  CU_ASSERT_EQUAL_FATAL(cf__fnref_locate((uintptr_t)task_square, &ref), CF_OK);
  CU_ASSERT_STRING_EQUAL(ref.name, ""); /* the main program */
  unsigned char buf[sizeof ref + 16];
  cf__fnref_put(&ref, buf);
  cf__fnref_view v;
  size_t used = cf__ipc_decode_fnref(buf, cf__fnref_size(&ref), &v);
  CU_ASSERT_EQUAL(used, cf__fnref_size(&ref));
  CU_ASSERT_FALSE(v.none);
  CU_ASSERT_EQUAL(cf__fnref_view_resolve(&v), (uintptr_t)task_square);
  /* Truncated: refused. */
  for (size_t k = 0; k < used; k++)
    CU_ASSERT_EQUAL(cf__ipc_decode_fnref(buf, k, &v), 0);
  /* Data, not code, is not a function; nor is an unknown module. */
  static int data;
  CU_ASSERT_EQUAL(cf__fnref_locate((uintptr_t)&data, &ref), CF_EINVAL);
  CU_ASSERT_EQUAL(cf__fnref_resolve("no-such.so", 10, 0), 0);
  CU_ASSERT_EQUAL(cf__fnref_resolve("", 0, (uint64_t)1 << 60), 0);
  CU_ASSERT_EQUAL(cf__fnref_locate(0, &ref), CF_OK);
  CU_ASSERT_TRUE(ref.none);
}

static void test_frames(void) {
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  struct iovec iov[2] = {{(void *)"ab", 2}, {(void *)"cde", 3}};
  CU_ASSERT_EQUAL(cf__ipc_send(CF__FD_CHAN(sv[0]), CF__MSG_RESULT, 7, iov, 2),
                  CF_OK);
  cf__frame fr;
  char body[5];
  CU_ASSERT_EQUAL(cf__ipc_read_frame(sv[1], &fr), CF_OK);
  CU_ASSERT_EQUAL(fr.type, CF__MSG_RESULT);
  CU_ASSERT_EQUAL(fr.id, 7);
  CU_ASSERT_EQUAL(fr.len, 5);
  CU_ASSERT_EQUAL(cf__ipc_read(sv[1], body, 5), CF_OK);
  CU_ASSERT_EQUAL(memcmp(body, "abcde", 5), 0);
  /* Bad magic, bad type, absurd length. */
  cf__frame bad[3] = {{0xdeadbeef, CF__MSG_RESULT, 0, 0},
                      {CF__IPC_MAGIC, 99, 0, 0},
                      {CF__IPC_MAGIC, CF__MSG_RESULT, 0, UINT64_MAX}};
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL(write(sv[0], &bad[i], sizeof bad[i]),
                    (ssize_t)sizeof bad[i]);
    CU_ASSERT_EQUAL(cf__ipc_read_frame(sv[1], &fr), CF_EPROTO);
  }
  /* At most 7 iovecs; at most CF__IPC_MAX_PAYLOAD bytes, counted before
   * any is read or sent. */
  struct iovec eight[8] = {{0}};
  CU_ASSERT_EQUAL(cf__ipc_send(CF__FD_CHAN(sv[0]), CF__MSG_RESULT, 1, eight, 8),
                  CF_EINVAL);
  struct iovec huge[2] = {{(void *)"ab", 2},
                          {(void *)"", CF__IPC_MAX_PAYLOAD - 1}};
  CU_ASSERT_EQUAL(cf__ipc_send(CF__FD_CHAN(sv[0]), CF__MSG_RESULT, 1, huge, 2),
                  CF_ENOMEM);
  /* Truncated header, then end of stream. */
  CU_ASSERT_EQUAL(write(sv[0], "CFW", 3), 3);
  close(sv[0]);
  CU_ASSERT_EQUAL(cf__ipc_read_frame(sv[1], &fr), CF_EPROTO);
  CU_ASSERT_EQUAL(cf__ipc_read_frame(sv[1], &fr), CF_EOF);
  close(sv[1]);
}

/* A well-formed CHUNKRESULT of three items: ok "xyz", failed 9 "bad",
 * not run. */
static size_t good_chunk(unsigned char *p) {
  size_t off = 0;
  uint64_t n = 3;
  memcpy(p, &n, 8);
  off = 8;
  struct {
    int32_t st, code;
    uint32_t has_msg, pad;
    const char *data;
  } it[3] = {{CF__ITEM_OK, 0, 0, 0, "xyz"},
             {CF__ITEM_FAILED, 9, 1, 0, "bad"},
             {CF__ITEM_NOT_RUN, 0, 0, 0, ""}};
  for (int i = 0; i < 3; i++) {
    uint64_t len = strlen(it[i].data);
    memcpy(p + off, &it[i].st, 4);
    memcpy(p + off + 4, &it[i].code, 4);
    memcpy(p + off + 8, &it[i].has_msg, 4);
    memcpy(p + off + 12, &it[i].pad, 4);
    memcpy(p + off + 16, &len, 8);
    memcpy(p + off + 24, it[i].data, len);
    off += 24 + len;
  }
  return off;
}

static void test_decode_chunk_result(void) {
  unsigned char p[256];
  size_t n = good_chunk(p);
  cf__batch_item items[3] = {{.status = CF_ECANCELLED},
                             {.status = CF_ECANCELLED},
                             {.status = CF_ECANCELLED}};
  CU_ASSERT_EQUAL_FATAL(cf__ipc_decode_chunk_result(p, n, 3, items), CF_OK);
  CU_ASSERT_EQUAL(items[0].status, CF_OK);
  CU_ASSERT_EQUAL(cf__buf_len(&items[0].out), 3);
  CU_ASSERT_EQUAL(memcmp(cf__buf_data(&items[0].out), "xyz", 3), 0);
  CU_ASSERT_EQUAL(items[1].status, CF_ETASK);
  CU_ASSERT_EQUAL(items[1].code, 9);
  CU_ASSERT_STRING_EQUAL(items[1].msg, "bad");
  CU_ASSERT_EQUAL(items[2].status, CF_ECANCELLED);
  free(items[1].msg);
  /* Every truncation, a wrong count and trailing bytes are refused. */
  for (size_t k = 0; k < n; k++) {
    cf__batch_item t[3] = {{.status = CF_ECANCELLED},
                           {.status = CF_ECANCELLED},
                           {.status = CF_ECANCELLED}};
    CU_ASSERT_EQUAL(cf__ipc_decode_chunk_result(p, k, 3, t), CF_EPROTO);
    CU_ASSERT_EQUAL(cf__buf_len(&t[0].out), 0);
    CU_ASSERT_PTR_NULL(t[1].msg);
  }
  cf__batch_item t[4] = {{.status = CF_ECANCELLED}};
  CU_ASSERT_EQUAL(cf__ipc_decode_chunk_result(p, n, 2, t), CF_EPROTO);
  CU_ASSERT_EQUAL(cf__ipc_decode_chunk_result(p, n + 1, 3, t), CF_EPROTO);
}

static void test_decode_result(void) {
  unsigned char p[16] = {0};
  cf__result_view v;
  CU_ASSERT_EQUAL(cf__ipc_decode_result(p, 8, &v), CF_OK);
  CU_ASSERT_EQUAL(v.rc, 0);
  CU_ASSERT_EQUAL(v.len, 0);
  CU_ASSERT_EQUAL(cf__ipc_decode_result(p, 7, &v), CF_EPROTO);
  p[4] = 1; /* a message on a success */
  CU_ASSERT_EQUAL(cf__ipc_decode_result(p, 8, &v), CF_EPROTO);
  p[0] = 3; /* failure with a message */
  CU_ASSERT_EQUAL(cf__ipc_decode_result(p, 12, &v), CF_OK);
  CU_ASSERT_TRUE(v.has_msg);
  CU_ASSERT_EQUAL(v.len, 4);
  p[4] = 2;
  CU_ASSERT_EQUAL(cf__ipc_decode_result(p, 8, &v), CF_EPROTO);
}

/* A chunk of three inputs ("abc", "", 20 x 'z') as the parent encodes it. */
static cf__batch *three_inputs(void) {
  cf__batch *c =
      calloc(1, sizeof *c + 3 * sizeof(cf__batch_item) + 3 * sizeof(cf__buf));
  c->fn = task_square;
  c->n = 3;
  c->ins = (cf__buf *)((char *)c + sizeof *c + 3 * sizeof(cf__batch_item));
  static const char z[20] = "zzzzzzzzzzzzzzzzzzzz";
  cf__buf_copy(&c->ins[0], "abc", 3);
  cf__buf_copy(&c->ins[2], z, 20);
  return c;
}

static void free_inputs(cf__batch *c) {
  for (size_t i = 0; i < c->n; i++)
    cf__buf_free(&c->ins[i]);
  free(c);
}

/* A batch of n inputs `stride` bytes apart in base (not copied). */
static cf__batch *array_inputs(const unsigned char *base, size_t n,
                               size_t stride) {
  cf__batch *c = calloc(1, sizeof *c + n * sizeof(cf__batch_item));
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  c->fn = task_square;
  c->n = n;
  c->base = base;
  c->stride = stride;
  return c;
}

/* Sends c as CHUNK 5 and checks the bytes, then the decoder's view: the
 * same inputs, in order.  Returns the payload (free()). */
static unsigned char *chunk_round_trip(const cf__fnref *ref, const cf__batch *c,
                                       size_t *n) {
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(cf__ipc_send_chunk(CF__FD_CHAN(fd), 5, ref, c), CF_OK);
  CU_ASSERT_EQUAL_FATAL(wire_close(&w), CF_OK);
  bytes e = {0};
  put_fnref(&e, ref);
  put_u64(&e, c->n);
  for (size_t i = 0; i < c->n; i++) {
    size_t l;
    const void *in = cf__batch_input(c, i, &l);
    put_u64(&e, l);
    put(&e, in, l);
  }
  expect_frame(&w, CF__MSG_CHUNK, 5, &e);
  cf__chunk_view v;
  CU_ASSERT_EQUAL_FATAL(cf__ipc_decode_chunk(w.p, w.fr.len, &v), CF_OK);
  CU_ASSERT_EQUAL(v.fn.none, ref->none);
  CU_ASSERT_EQUAL(v.fn.offset, ref->offset);
  CU_ASSERT_EQUAL(v.count, c->n);
  for (size_t i = 0; i < c->n; i++) {
    size_t l;
    const void *want = cf__batch_input(c, i, &l);
    const unsigned char *in;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(cf__ipc_chunk_next(&v, &in, &len), CF_OK);
    CU_ASSERT_TRUE(len == l && (l == 0 || memcmp(in, want, l) == 0));
    CU_ASSERT_TRUE(!in == !l);
  }
  const unsigned char *in;
  size_t len;
  CU_ASSERT_EQUAL(cf__ipc_chunk_next(&v, &in, &len), CF_EOF);
  *n = (size_t)w.fr.len;
  return w.p;
}

static void test_chunk_round_trip(void) {
  cf__batch *c = three_inputs();
  cf__fnref ref;
  CU_ASSERT_EQUAL_FATAL(cf__fnref_locate((uintptr_t)task_square, &ref), CF_OK);
  size_t n;
  unsigned char *buf = chunk_round_trip(&ref, c, &n);
  cf__chunk_view v;
  CU_ASSERT_EQUAL_FATAL(cf__ipc_decode_chunk(buf, n, &v), CF_OK);
  CU_ASSERT_EQUAL(cf__fnref_view_resolve(&v.fn), (uintptr_t)task_square);
  /* Every truncation, and a byte too many, is refused before any input
   * would run. */
  for (size_t k = 0; k < n; k++)
    CU_ASSERT_EQUAL(cf__ipc_decode_chunk(buf, k, &v), CF_EPROTO);
  unsigned char *more = malloc(n + 1);
  memcpy(more, buf, n);
  more[n] = 0;
  CU_ASSERT_EQUAL(cf__ipc_decode_chunk(more, n + 1, &v), CF_EPROTO);
  free(more);
  /* A count larger than the inputs that follow. */
  size_t at = cf__fnref_size(&ref);
  uint64_t big = 4;
  memcpy(buf + at, &big, 8);
  CU_ASSERT_EQUAL(cf__ipc_decode_chunk(buf, n, &v), CF_EPROTO);
  big = UINT64_MAX;
  memcpy(buf + at, &big, 8);
  CU_ASSERT_EQUAL(cf__ipc_decode_chunk(buf, n, &v), CF_EPROTO);
  free(buf);
  free_inputs(c);
  /* No inputs; the longest fnref; "no function" (refused by the parent
   * before it sends, but the layout holds it). */
  c = array_inputs(NULL, 0, 0);
  cf__fnref longest = longest_fnref(), none = {.none = true};
  free(chunk_round_trip(&ref, c, &n));
  CU_ASSERT_EQUAL(n, cf__fnref_size(&ref) + 8);
  free(chunk_round_trip(&longest, c, &n));
  CU_ASSERT_EQUAL(n, CF__FNREF_MAX + 8);
  free(chunk_round_trip(&none, c, &n));
  CU_ASSERT_EQUAL(n, 4 + 8);
  free(c);
}

/* Inputs either side of the page up to which a chunk copies them, and more
 * large inputs than one sendmsg() takes iovecs (IOV_MAX). */
static void test_chunk_large_inputs(void) {
  cf__fnref ref;
  CU_ASSERT_EQUAL_FATAL(cf__fnref_locate((uintptr_t)task_square, &ref), CF_OK);
  static const size_t sizes[] = {0, 1, 4095, 4096, 4097, 0, 100000, 7};
  size_t k = sizeof sizes / sizeof *sizes, n;
  cf__batch *c =
      calloc(1, sizeof *c + k * sizeof(cf__batch_item) + k * sizeof(cf__buf));
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  c->fn = task_square;
  c->n = k;
  c->ins = (cf__buf *)((char *)c + sizeof *c + k * sizeof(cf__batch_item));
  unsigned char *big = malloc(100000 + k);
  CU_ASSERT_PTR_NOT_NULL_FATAL(big);
  for (size_t i = 0; i < 100000 + k; i++)
    big[i] = (unsigned char)(i * 7 + 1);
  for (size_t i = 0; i < k; i++)
    CU_ASSERT_EQUAL_FATAL(cf__buf_copy(&c->ins[i], big + i, sizes[i]), CF_OK);
  free(chunk_round_trip(&ref, c, &n));
  free_inputs(c);
  /* 1100 array inputs of 5000 bytes: every one an iovec of its own. */
  size_t many = 1100, stride = 5000;
  unsigned char *arr = malloc(many * stride);
  CU_ASSERT_PTR_NOT_NULL_FATAL(arr);
  for (size_t i = 0; i < many * stride; i++)
    arr[i] = (unsigned char)(i / stride + i);
  c = array_inputs(arr, many, stride);
  free(chunk_round_trip(&ref, c, &n));
  CU_ASSERT_EQUAL(n, cf__fnref_size(&ref) + 8 + many * (8 + stride));
  free(c);
  /* Small array inputs: all copied, one iovec. */
  c = array_inputs(arr, 2000, 3);
  free(chunk_round_trip(&ref, c, &n));
  free(c);
  free(arr);
  free(big);
}

static void test_chunk_result_encode_decode(void) {
  cf__obuf b;
  CU_ASSERT_EQUAL_FATAL(cf__ipc_chunk_result_begin(&b, 3), CF_OK);
  CU_ASSERT_EQUAL(cf__ipc_chunk_result_add(&b, CF__ITEM_OK, 0, false, "xyz", 3),
                  CF_OK);
  CU_ASSERT_EQUAL(
      cf__ipc_chunk_result_add(&b, CF__ITEM_FAILED, 9, true, "bad", 3), CF_OK);
  CU_ASSERT_EQUAL(
      cf__ipc_chunk_result_add(&b, CF__ITEM_NOT_RUN, 0, false, NULL, 0), CF_OK);
  /* The same bytes as the reference layout of good_chunk(). */
  unsigned char ref[256];
  size_t n = good_chunk(ref);
  CU_ASSERT_EQUAL(b.len, n);
  CU_ASSERT_TRUE(b.len == n && memcmp(b.p, ref, n) == 0);
  cf__batch_item items[3] = {{.status = CF_ECANCELLED},
                             {.status = CF_ECANCELLED},
                             {.status = CF_ECANCELLED}};
  CU_ASSERT_EQUAL(cf__ipc_decode_chunk_result(b.p, b.len, 3, items), CF_OK);
  CU_ASSERT_EQUAL(items[1].code, 9);
  free(items[1].msg);
  cf__buf_free(&items[0].out);
  free(b.p);
  /* Large items grow the buffer. */
  CU_ASSERT_EQUAL_FATAL(cf__ipc_chunk_result_begin(&b, 1), CF_OK);
  static unsigned char big[100000];
  CU_ASSERT_EQUAL(cf__ipc_chunk_result_add(&b, CF__ITEM_OK, 0, false, big,
                                           sizeof big),
                  CF_OK);
  CU_ASSERT_EQUAL(b.len, 8 + 24 + sizeof big);
  free(b.p);
}

static void test_decode_task(void) {
  cf__fnref ref;
  CU_ASSERT_EQUAL_FATAL(cf__fnref_locate((uintptr_t)task_square, &ref), CF_OK);
  unsigned char buf[sizeof ref + 32];
  cf__fnref_put(&ref, buf);
  size_t k = cf__fnref_size(&ref);
  memcpy(buf + k, "input", 5);
  cf__task_view v;
  CU_ASSERT_EQUAL_FATAL(cf__ipc_decode_task(buf, k + 5, &v), CF_OK);
  CU_ASSERT_EQUAL(cf__fnref_view_resolve(&v.fn), (uintptr_t)task_square);
  CU_ASSERT_TRUE(v.len == 5 && memcmp(v.in, "input", 5) == 0);
  CU_ASSERT_EQUAL(cf__ipc_decode_task(buf, k, &v), CF_OK);
  CU_ASSERT_TRUE(v.len == 0 && v.in == NULL);
  for (size_t i = 0; i < k; i++)
    CU_ASSERT_EQUAL(cf__ipc_decode_task(buf, i, &v), CF_EPROTO);
  /* "No function" decodes, and resolves to nothing. */
  cf__fnref none;
  cf__fnref_locate(0, &none);
  cf__fnref_put(&none, buf);
  CU_ASSERT_EQUAL(cf__ipc_decode_task(buf, 4, &v), CF_OK);
  CU_ASSERT_TRUE(v.fn.none);
  CU_ASSERT_EQUAL(cf__fnref_view_resolve(&v.fn), 0);
}

static void test_decode_stop(void) {
  cf__frame stop = {CF__IPC_MAGIC, CF__MSG_STOP, 7, 0};
  CU_ASSERT_EQUAL(cf__ipc_decode_stop(&stop, true, 7), CF__STOP_NOW);
  CU_ASSERT_EQUAL(cf__ipc_decode_stop(&stop, false, 0), CF__STOP_IGNORE);
  /* A STOP for another chunk while one runs cannot happen: the stream is
   * ordered and the parent names only the chunk outstanding. */
  CU_ASSERT_EQUAL(cf__ipc_decode_stop(&stop, true, 8), CF_EPROTO);
  cf__frame bad = stop;
  bad.len = 1;
  CU_ASSERT_EQUAL(cf__ipc_decode_stop(&bad, true, 7), CF_EPROTO);
  CU_ASSERT_EQUAL(cf__ipc_decode_stop(&bad, false, 0), CF_EPROTO);
  bad = stop;
  bad.type = CF__MSG_TASK; /* nothing but a STOP while a chunk runs */
  CU_ASSERT_EQUAL(cf__ipc_decode_stop(&bad, true, 7), CF_EPROTO);
  /* The header check knows the new type. */
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  CU_ASSERT_EQUAL(cf__ipc_send(CF__FD_CHAN(sv[0]), CF__MSG_STOP, 7, NULL, 0),
                  CF_OK);
  cf__frame fr;
  CU_ASSERT_EQUAL(cf__ipc_read_frame(sv[1], &fr), CF_OK);
  CU_ASSERT_EQUAL(cf__ipc_decode_stop(&fr, true, 7), CF__STOP_NOW);
  close(sv[0]);
  close(sv[1]);
}

/* Every file of the corpus decodes to CF_OK or CF_EPROTO, never a crash
 * (ASan, UBSan and valgrind watch the replay in CI). */
static int refused;

static void replay_one(const uint8_t *data, size_t size) {
  int rc = cf_ipc_decode_input(data, size);
  CU_ASSERT_TRUE(rc == CF_OK || rc == CF_EPROTO);
  refused += rc == CF_EPROTO;
}

static void test_corpus_replay(void) {
  int files = cf_test_replay_corpus("ipc", replay_one);
  CU_ASSERT_TRUE(files >= 40);          /* both directions */
  CU_ASSERT_TRUE(refused >= files / 2); /* the corpus is mostly bad input */
}

/* ---- the handshake ------------------------------------------------------- */

static void test_hello(void) {
  unsigned char secret[CF__SECRET_LEN], other[CF__SECRET_LEN];
  for (int i = 0; i < CF__SECRET_LEN; i++) {
    secret[i] = (unsigned char)(i * 13 + 5);
    other[i] = secret[i];
  }
  other[CF__SECRET_LEN - 1] ^= 1;
  unsigned char h[CF__HELLO_SIZE + 1];
  cf__hello_put(secret, h);
  /* Its bytes: a frame header, then the secret. */
  bytes e = {0};
  put_u32(&e, CF__IPC_MAGIC);
  put_u32(&e, CF__MSG_HELLO);
  put_u64(&e, 0);
  put_u64(&e, CF__SECRET_LEN);
  put(&e, secret, CF__SECRET_LEN);
  CU_ASSERT_TRUE(e.n == CF__HELLO_SIZE && memcmp(h, e.p, e.n) == 0);
  free(e.p);
  CU_ASSERT_TRUE(cf__hello_check(h, CF__HELLO_SIZE, secret));
  CU_ASSERT_FALSE(cf__hello_check(h, CF__HELLO_SIZE, other));
  /* Exactly its size: no shorter, no longer. */
  for (size_t k = 0; k < CF__HELLO_SIZE; k++)
    CU_ASSERT_FALSE(cf__hello_check(h, k, secret));
  CU_ASSERT_FALSE(cf__hello_check(h, CF__HELLO_SIZE + 1, secret));
  /* Any header byte changed (magic, type, id, len): refused. */
  for (size_t k = 0; k < sizeof(cf__frame); k++) {
    unsigned char b[CF__HELLO_SIZE];
    memcpy(b, h, sizeof b);
    b[k] ^= 0x40;
    CU_ASSERT_FALSE(cf__hello_check(b, sizeof b, secret));
  }
  /* Not a frame cf__ipc_read_frame() accepts: only the constructor reads
   * it. */
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  CU_ASSERT_EQUAL(write(sv[0], h, CF__HELLO_SIZE), (ssize_t)CF__HELLO_SIZE);
  cf__frame fr;
  CU_ASSERT_EQUAL(cf__ipc_read_frame(sv[1], &fr), CF_EPROTO);
  close(sv[0]);
  close(sv[1]);
}

static void test_modules_round_trip(void) {
  cf__modules ms;
  CU_ASSERT_EQUAL_FATAL(cf__modules_collect(&ms), CF_OK);
  CU_ASSERT_TRUE_FATAL(ms.n >= 2);
  CU_ASSERT_STRING_EQUAL(ms.m[0].name, ""); /* the program first */
  CU_ASSERT_TRUE(ms.m[0].startup);
  /* This program is linked with a build-id, and so is libc. */
  CU_ASSERT_EQUAL(ms.m[0].kind, CF__ID_BUILD);
  long self = cf__modules_find(&ms, (uintptr_t)test_modules_round_trip);
  CU_ASSERT_EQUAL(self, 0);
  /* libc and the loader at least: loaded at start-up, with an identity.
   * (Not found by a libc function's address: sanitizers interpose them.) */
  size_t others = 0;
  for (size_t k = 1; k < ms.n; k++)
    others += ms.m[k].startup && ms.m[k].kind != CF__ID_NONE;
  CU_ASSERT_TRUE(others >= 2);
  CU_ASSERT_EQUAL(cf__modules_find(&ms, 0), -1);
  size_t n = cf__modules_size(&ms);
  unsigned char *w = malloc(n + 8);
  CU_ASSERT_PTR_NOT_NULL_FATAL(w);
  cf__modules_put(&ms, w);
  memcpy(w + n, "trailer!", 8); /* the fnref that follows in INIT */
  cf__module_view *v = NULL;
  uint32_t count = 0;
  size_t used = 0;
  CU_ASSERT_EQUAL_FATAL(cf__modules_decode(w, n + 8, &used, &v, &count), CF_OK);
  CU_ASSERT_EQUAL(used, n);
  CU_ASSERT_EQUAL(count, ms.n);
  uint32_t *bad = calloc(count + 1, sizeof *bad);
  CU_ASSERT_EQUAL(cf__modules_compare(v, count, &ms, bad), 0);
  /* Another build of module 0, and a module this process lacks. */
  unsigned char *id0 = (unsigned char *)v[0].id;
  id0[0] ^= 1;
  v[1].name = "/no/such/module.so";
  v[1].name_len = strlen(v[1].name);
  CU_ASSERT_EQUAL(cf__modules_compare(v, count, &ms, bad), 2);
  CU_ASSERT_EQUAL(bad[0], 0);
  CU_ASSERT_EQUAL(bad[1], 1);
  free(v);
  /* Every truncation is refused, and leaves nothing allocated. */
  for (size_t k = 0; k < n; k++) {
    v = (cf__module_view *)1;
    CU_ASSERT_EQUAL(cf__modules_decode(w, k, &used, &v, &count), CF_EPROTO);
    CU_ASSERT_PTR_NULL(v);
  }
  /* An absurd count, a bad kind, an id longer than allowed. */
  uint32_t big = CF__MODULES_MAX + 1;
  unsigned char b[64] = {0};
  memcpy(b, &big, 4);
  CU_ASSERT_EQUAL(cf__modules_decode(b, sizeof b, &used, &v, &count),
                  CF_EPROTO);
  uint32_t one = 1, zero = 0;
  memcpy(b, &one, 4);
  memcpy(b + 4, &zero, 4); /* name "" */
  b[8] = 7;                /* kind */
  b[9] = 0;
  CU_ASSERT_EQUAL(cf__modules_decode(b, 10, &used, &v, &count), CF_EPROTO);
  b[8] = CF__ID_BUILD;
  b[9] = CF__ID_MAX + 1;
  CU_ASSERT_EQUAL(cf__modules_decode(b, sizeof b, &used, &v, &count),
                  CF_EPROTO);
  b[9] = 0; /* a build-id of no bytes */
  CU_ASSERT_EQUAL(cf__modules_decode(b, 10, &used, &v, &count), CF_EPROTO);
  b[8] = CF__ID_NONE; /* no identity: accepted, and equal only to none */
  CU_ASSERT_EQUAL(cf__modules_decode(b, 10, &used, &v, &count), CF_OK);
  CU_ASSERT_EQUAL(count, 1);
  CU_ASSERT_EQUAL(cf__modules_compare(v, count, &ms, bad), 1);
  free(v);
  free(bad);
  free(w);
  cf__modules_free(&ms);
}

static void test_decode_ready(void) {
  uint32_t idx[3] = {0, 4, 9};
  const unsigned char *p = (const unsigned char *)idx;
  CU_ASSERT_EQUAL(cf__ipc_decode_ready(p, 0, 0), CF_OK);
  CU_ASSERT_EQUAL(cf__ipc_decode_ready(p, 12, 10), CF_OK);
  CU_ASSERT_EQUAL(cf__ipc_decode_ready(p, 12, 9), CF_EPROTO); /* 9 >= 9 */
  CU_ASSERT_EQUAL(cf__ipc_decode_ready(p, 11, 10), CF_EPROTO);
  CU_ASSERT_EQUAL(cf__ipc_decode_ready(p, 12, 2), CF_EPROTO); /* too many */
  idx[2] = 4; /* not ascending */
  CU_ASSERT_EQUAL(cf__ipc_decode_ready(p, 12, 10), CF_EPROTO);
}

/* ---- round trips: every message, encoder to decoder ---------------------- */

static void test_fnref_layout(void) {
  cf__fnref ref = longest_fnref(), none = {.none = true};
  unsigned char buf[CF__FNREF_MAX + 1];
  CU_ASSERT_EQUAL(cf__fnref_size(&ref), CF__FNREF_MAX);
  cf__fnref_put(&ref, buf);
  bytes e = {0};
  put_fnref(&e, &ref);
  CU_ASSERT_TRUE(e.n == CF__FNREF_MAX && memcmp(buf, e.p, e.n) == 0);
  free(e.p);
  cf__fnref_view v;
  CU_ASSERT_EQUAL(cf__ipc_decode_fnref(buf, CF__FNREF_MAX, &v), CF__FNREF_MAX);
  CU_ASSERT_EQUAL(v.name_len, sizeof ref.name - 1);
  CU_ASSERT_TRUE(memcmp(v.name, ref.name, v.name_len) == 0);
  CU_ASSERT_EQUAL(v.offset, ref.offset);
  /* A name one longer than cf__fnref holds is refused. */
  uint32_t l = sizeof ref.name;
  memcpy(buf, &l, 4);
  CU_ASSERT_EQUAL(cf__ipc_decode_fnref(buf, sizeof buf, &v), 0);
  CU_ASSERT_EQUAL(cf__fnref_size(&none), 4);
  cf__fnref_put(&none, buf);
  CU_ASSERT_EQUAL(cf__ipc_decode_fnref(buf, 4, &v), 4);
  CU_ASSERT_TRUE(v.none);
}

/* The module list's bytes, as ipc.h lays them out. */
static void put_modules(bytes *e, const cf__modules *ms) {
  put_u32(e, (uint32_t)ms->n);
  for (size_t k = 0; k < ms->n; k++) {
    put_u32(e, (uint32_t)strlen(ms->m[k].name));
    put(e, ms->m[k].name, strlen(ms->m[k].name));
    put_u8(e, ms->m[k].kind);
    put_u8(e, ms->m[k].idlen);
    put(e, ms->m[k].id, ms->m[k].idlen);
  }
}

/* Sends INIT with ms, init and arg, checks its bytes and decodes it back. */
static void init_round_trip(const cf__modules *ms, const cf__fnref *init,
                            const void *arg, size_t arg_len) {
  size_t n = cf__modules_size(ms);
  unsigned char *mods = malloc(n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(mods);
  cf__modules_put(ms, mods);
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(
      cf__ipc_send_init(CF__FD_CHAN(fd), mods, n, init, arg, arg_len), CF_OK);
  free(mods);
  CU_ASSERT_EQUAL_FATAL(wire_close(&w), CF_OK);
  bytes e = {0};
  put_modules(&e, ms);
  CU_ASSERT_EQUAL(e.n, n);
  put_fnref(&e, init);
  put(&e, arg, arg_len);
  expect_frame(&w, CF__MSG_INIT, 0, &e);
  cf__init_view v;
  CU_ASSERT_EQUAL_FATAL(cf__ipc_decode_init(w.p, w.fr.len, &v), CF_OK);
  CU_ASSERT_EQUAL_FATAL(v.nmods, ms->n);
  for (size_t k = 0; k < ms->n; k++) {
    const cf__module *m = &ms->m[k];
    CU_ASSERT_TRUE(v.mods[k].name_len == strlen(m->name) &&
                   memcmp(v.mods[k].name, m->name, strlen(m->name)) == 0);
    CU_ASSERT_EQUAL(v.mods[k].kind, m->kind);
    CU_ASSERT_TRUE(v.mods[k].idlen == m->idlen &&
                   memcmp(v.mods[k].id, m->id, m->idlen) == 0);
  }
  CU_ASSERT_EQUAL(v.fn.none, init->none);
  if (!init->none)
    CU_ASSERT_TRUE(v.fn.name_len == strlen(init->name) &&
                   memcmp(v.fn.name, init->name, v.fn.name_len) == 0 &&
                   v.fn.offset == init->offset);
  CU_ASSERT_TRUE(v.arg_len == arg_len &&
                 (arg_len == 0 || memcmp(v.arg, arg, arg_len) == 0));
  CU_ASSERT_TRUE(!v.arg == !arg_len);
  free(v.mods);
  /* Every truncation is refused, and leaves nothing allocated (a list
   * without its fnref too); of a long list, some (each walks it all). */
  size_t head = (size_t)w.fr.len - arg_len;
  for (size_t k = 0; k < head; k += head < 8192 ? 1 : 997) {
    CU_ASSERT_EQUAL(cf__ipc_decode_init(w.p, k, &v), CF_EPROTO);
    CU_ASSERT_PTR_NULL(v.mods);
  }
  free(w.p);
}

/* n made-up modules, each with the longest id, the last with the longest
 * name (PATH_MAX bytes) the decoder takes. */
static void fake_modules(cf__modules *ms, size_t n) {
  ms->n = n;
  ms->m = calloc(n, sizeof *ms->m);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ms->m);
  for (size_t k = 0; k < n; k++) {
    cf__module *m = &ms->m[k];
    m->name = malloc(k + 1 == n ? PATH_MAX + 1 : 32);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->name);
    if (k + 1 == n) {
      memset(m->name, 'p', PATH_MAX);
      m->name[PATH_MAX] = '\0';
    } else {
      snprintf(m->name, 32, "lib%zu.so", k); /* room for any size_t */
    }
    m->kind = k % 3 == 0   ? CF__ID_NONE
              : k % 3 == 1 ? CF__ID_BUILD
                           : CF__ID_FILE;
    m->idlen = m->kind == CF__ID_NONE ? 0 : CF__ID_MAX;
    for (int i = 0; i < m->idlen; i++)
      m->id[i] = (unsigned char)(k + (size_t)i);
  }
}

static void test_init_round_trip(void) {
  cf__modules ms;
  CU_ASSERT_EQUAL_FATAL(cf__modules_collect(&ms), CF_OK);
  cf__fnref ref, none = {.none = true}, longest = longest_fnref();
  CU_ASSERT_EQUAL_FATAL(cf__fnref_locate((uintptr_t)task_square, &ref), CF_OK);
  /* This process's modules, an initializer and its argument. */
  init_round_trip(&ms, &ref, "arg", 3);
  /* No initializer, no argument; the longest fnref. */
  init_round_trip(&ms, &none, NULL, 0);
  init_round_trip(&ms, &longest, "x", 1);
  cf__modules_free(&ms);
  /* No modules at all. */
  cf__modules empty = {0};
  init_round_trip(&empty, &none, NULL, 0);
  /* As many modules as INIT carries, the longest ids and name. */
  fake_modules(&ms, CF__MODULES_MAX);
  static unsigned char arg[70000];
  memset(arg, 0xa5, sizeof arg);
  init_round_trip(&ms, &ref, arg, sizeof arg);
  /* One more module, or a name one byte longer, is refused. */
  cf__modules_free(&ms);
  fake_modules(&ms, CF__MODULES_MAX + 1);
  size_t n = cf__modules_size(&ms);
  unsigned char *w = malloc(n + 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(w);
  cf__modules_put(&ms, w);
  memset(w + n, 0xff, 4); /* no initializer */
  cf__init_view v;
  CU_ASSERT_EQUAL(cf__ipc_decode_init(w, n + 4, &v), CF_EPROTO);
  free(w);
  cf__modules_free(&ms);
  fake_modules(&ms, 1);
  free(ms.m[0].name);
  ms.m[0].name = malloc(PATH_MAX + 2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ms.m[0].name);
  memset(ms.m[0].name, 'p', PATH_MAX + 1);
  ms.m[0].name[PATH_MAX + 1] = '\0';
  n = cf__modules_size(&ms);
  w = malloc(n + 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(w);
  cf__modules_put(&ms, w);
  memset(w + n, 0xff, 4);
  CU_ASSERT_EQUAL(cf__ipc_decode_init(w, n + 4, &v), CF_EPROTO);
  free(w);
  cf__modules_free(&ms);
}

/* Sends READY with bad[0..nbad), checks its bytes and decodes it back for
 * nmods modules. */
static void ready_round_trip(const uint32_t *bad, uint32_t nbad, size_t nmods) {
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(cf__ipc_send_ready(CF__FD_CHAN(fd), bad, nbad), CF_OK);
  CU_ASSERT_EQUAL_FATAL(wire_close(&w), CF_OK);
  bytes e = {0};
  for (uint32_t i = 0; i < nbad; i++)
    put_u32(&e, bad[i]);
  expect_frame(&w, CF__MSG_READY, 0, &e);
  CU_ASSERT_EQUAL(cf__ipc_decode_ready(w.p, w.fr.len, nmods), CF_OK);
  for (uint32_t i = 0; i < nbad && w.fr.len == 4 * (size_t)nbad; i++)
    CU_ASSERT_EQUAL(cf__ipc_ready_index(w.p, i), bad[i]);
  /* One module fewer in INIT cannot have the last index. */
  if (nbad)
    CU_ASSERT_EQUAL(cf__ipc_decode_ready(w.p, w.fr.len, bad[nbad - 1]),
                    CF_EPROTO);
  free(w.p);
}

static void test_ready_round_trip(void) {
  ready_round_trip(NULL, 0, 0); /* nothing differs: an empty payload */
  ready_round_trip(NULL, 0, 5);
  uint32_t some[3] = {0, 4, 9};
  ready_round_trip(some, 3, 10);
  static uint32_t all[CF__MODULES_MAX];
  for (uint32_t i = 0; i < CF__MODULES_MAX; i++)
    all[i] = i;
  ready_round_trip(all, CF__MODULES_MAX, CF__MODULES_MAX);
  /* Out of order or repeated: the decoder would refuse it, so nothing is
   * sent. */
  uint32_t unordered[2] = {4, 0}, twice[2] = {3, 3};
  CU_ASSERT_EQUAL(cf__ipc_send_ready(CF__FD_CHAN(-1), unordered, 2), CF_EINVAL);
  CU_ASSERT_EQUAL(cf__ipc_send_ready(CF__FD_CHAN(-1), twice, 2), CF_EINVAL);
}

/* Sends INITFAIL, checks its bytes and decodes it back. */
static void initfail_round_trip(int32_t code, uint32_t module, size_t nmods) {
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(cf__ipc_send_initfail(CF__FD_CHAN(fd), code, module), CF_OK);
  CU_ASSERT_EQUAL_FATAL(wire_close(&w), CF_OK);
  bytes e = {0};
  put_i32(&e, code);
  if (module != UINT32_MAX)
    put_u32(&e, module);
  CU_ASSERT_TRUE(e.n <= CF__INITFAIL_MAX);
  expect_frame(&w, CF__MSG_INITFAIL, 0, &e);
  int32_t c = 0;
  uint32_t m = 0;
  CU_ASSERT_EQUAL(cf__ipc_decode_initfail(w.p, w.fr.len, nmods, &c, &m), CF_OK);
  CU_ASSERT_EQUAL(c, code);
  CU_ASSERT_EQUAL(m, module);
  free(w.p);
}

static void test_initfail_round_trip(void) {
  initfail_round_trip(7, UINT32_MAX, 0);
  initfail_round_trip(INT32_MIN, UINT32_MAX, 3);
  initfail_round_trip(CF_EINVAL, UINT32_MAX, 3);
  initfail_round_trip(CF_ETASK, 2, 3);
  initfail_round_trip(CF_ETASK, CF__MODULES_MAX - 1, CF__MODULES_MAX);
  /* A code of 0 is no failure: not sent. */
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(cf__ipc_send_initfail(CF__FD_CHAN(fd), 0, UINT32_MAX),
                  CF_EINVAL);
  CU_ASSERT_EQUAL(wire_close(&w), CF_EOF);
  /* The decoder: 4 or 8 bytes, a code, a module in range. */
  unsigned char p[12] = {0};
  int32_t c, code = 9;
  uint32_t m, mod = 3;
  memcpy(p, &code, 4);
  memcpy(p + 4, &mod, 4);
  for (size_t n = 0; n <= sizeof p; n++)
    CU_ASSERT_EQUAL(cf__ipc_decode_initfail(p, n, 4, &c, &m),
                    n == 4 || n == 8 ? CF_OK : CF_EPROTO);
  CU_ASSERT_EQUAL(cf__ipc_decode_initfail(p, 8, 3, &c, &m), CF_EPROTO);
  CU_ASSERT_EQUAL(cf__ipc_decode_initfail(p, 4, 0, &c, &m), CF_OK);
  CU_ASSERT_EQUAL(m, UINT32_MAX);
  memset(p, 0, 4);
  CU_ASSERT_EQUAL(cf__ipc_decode_initfail(p, 4, 4, &c, &m), CF_EPROTO);
  CU_ASSERT_EQUAL(cf__ipc_decode_initfail(p, 8, 4, &c, &m), CF_EPROTO);
}

/* Sends TASK 42 of fn with in, checks its bytes and decodes it back. */
static void task_round_trip(const cf__fnref *fn, const void *in, size_t len) {
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(cf__ipc_send_task(CF__FD_CHAN(fd), 42, fn, in, len), CF_OK);
  CU_ASSERT_EQUAL_FATAL(wire_close(&w), CF_OK);
  bytes e = {0};
  put_fnref(&e, fn);
  put(&e, in, len);
  expect_frame(&w, CF__MSG_TASK, 42, &e);
  cf__task_view v;
  CU_ASSERT_EQUAL_FATAL(cf__ipc_decode_task(w.p, w.fr.len, &v), CF_OK);
  CU_ASSERT_EQUAL(v.fn.none, fn->none);
  if (!fn->none)
    CU_ASSERT_TRUE(v.fn.name_len == strlen(fn->name) &&
                   memcmp(v.fn.name, fn->name, v.fn.name_len) == 0 &&
                   v.fn.offset == fn->offset);
  CU_ASSERT_TRUE(v.len == len && (len == 0 || memcmp(v.in, in, len) == 0));
  CU_ASSERT_TRUE(!v.in == !len);
  free(w.p);
}

static void test_task_round_trip(void) {
  cf__fnref ref, none = {.none = true}, longest = longest_fnref();
  CU_ASSERT_EQUAL_FATAL(cf__fnref_locate((uintptr_t)task_square, &ref), CF_OK);
  task_round_trip(&ref, "input", 5);
  task_round_trip(&ref, NULL, 0);
  task_round_trip(&none, "x", 1);
  task_round_trip(&longest, NULL, 0);
  size_t big = 1 << 20; /* more than a socket buffer */
  unsigned char *in = malloc(big);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  for (size_t i = 0; i < big; i++)
    in[i] = (unsigned char)(i * 31);
  task_round_trip(&ref, in, big);
  free(in);
  /* More than a frame carries: refused whole, before a byte is read. */
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(cf__ipc_send_task(CF__FD_CHAN(fd), 1, &ref, &w,
                                    CF__IPC_MAX_PAYLOAD),
                  CF_ENOMEM);
  CU_ASSERT_EQUAL(wire_close(&w), CF_EOF);
}

/* Sends RESULT 9, checks its bytes and decodes it back, whole and as the
 * parent reads it (the head, then the rest). */
static void result_round_trip(int32_t rc, bool has_msg, const void *data,
                              size_t len) {
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(
      cf__ipc_send_result(CF__FD_CHAN(fd), 9, rc, has_msg, data, len), CF_OK);
  CU_ASSERT_EQUAL_FATAL(wire_close(&w), CF_OK);
  bytes e = {0};
  put_i32(&e, rc);
  put_u32(&e, has_msg);
  put(&e, data, len);
  expect_frame(&w, CF__MSG_RESULT, 9, &e);
  cf__result_view v;
  CU_ASSERT_EQUAL_FATAL(cf__ipc_decode_result(w.p, w.fr.len, &v), CF_OK);
  CU_ASSERT_EQUAL(v.rc, rc);
  CU_ASSERT_EQUAL(v.has_msg, has_msg);
  CU_ASSERT_TRUE(v.len == len && (len == 0 || memcmp(v.data, data, len) == 0));
  CU_ASSERT_EQUAL(cf__ipc_decode_result(w.p, CF__RESULT_HEAD, &v), CF_OK);
  CU_ASSERT_TRUE(v.rc == rc && v.has_msg == has_msg && v.len == 0);
  free(w.p);
}

static void test_result_round_trip(void) {
  result_round_trip(0, false, "xyz", 3);       /* a result */
  result_round_trip(0, false, NULL, 0);        /* an empty one */
  result_round_trip(9, true, "bad", 3);        /* a failure and its words */
  result_round_trip(-3, false, NULL, 0);       /* a failure without */
  result_round_trip(INT32_MIN, true, NULL, 0); /* with empty words */
  size_t big = (1 << 20) + 3;
  unsigned char *out = malloc(big);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  memset(out, 0x5a, big);
  result_round_trip(0, false, out, big);
  free(out);
  /* A message on a success is what the decoder refuses: not sent. */
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(cf__ipc_send_result(CF__FD_CHAN(fd), 9, 0, true, "x", 1),
                  CF_EINVAL);
  CU_ASSERT_EQUAL(wire_close(&w), CF_EOF);
}

static void test_chunk_result_round_trip(void) {
  /* Every kind of item, through the wire: its bytes, then its items. */
  cf__obuf b;
  CU_ASSERT_EQUAL_FATAL(cf__ipc_chunk_result_begin(&b, 4), CF_OK);
  CU_ASSERT_EQUAL(cf__ipc_chunk_result_add(&b, CF__ITEM_OK, 0, false, "xyz", 3),
                  CF_OK);
  CU_ASSERT_EQUAL(
      cf__ipc_chunk_result_add(&b, CF__ITEM_FAILED, 9, true, "bad", 3), CF_OK);
  CU_ASSERT_EQUAL(
      cf__ipc_chunk_result_add(&b, CF__ITEM_FAILED, -4, false, NULL, 0), CF_OK);
  CU_ASSERT_EQUAL(
      cf__ipc_chunk_result_add(&b, CF__ITEM_NOT_RUN, 0, false, NULL, 0), CF_OK);
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(cf__ipc_send_chunk_result(CF__FD_CHAN(fd), 11, &b), CF_OK);
  CU_ASSERT_PTR_NULL(b.p); /* sent and freed */
  CU_ASSERT_EQUAL_FATAL(wire_close(&w), CF_OK);
  bytes e = {0};
  put_u64(&e, 4);
  struct {
    int32_t st, code;
    uint32_t has_msg;
    const char *data;
  } it[4] = {{CF__ITEM_OK, 0, 0, "xyz"},
             {CF__ITEM_FAILED, 9, 1, "bad"},
             {CF__ITEM_FAILED, -4, 0, ""},
             {CF__ITEM_NOT_RUN, 0, 0, ""}};
  for (int i = 0; i < 4; i++) {
    put_i32(&e, it[i].st);
    put_i32(&e, it[i].code);
    put_u32(&e, it[i].has_msg);
    put_u32(&e, 0);
    put_u64(&e, strlen(it[i].data));
    put(&e, it[i].data, strlen(it[i].data));
  }
  expect_frame(&w, CF__MSG_CHUNKRESULT, 11, &e);
  cf__batch_item items[4];
  for (int i = 0; i < 4; i++)
    items[i] = (cf__batch_item){.status = CF_ECANCELLED};
  CU_ASSERT_EQUAL_FATAL(cf__ipc_decode_chunk_result(w.p, w.fr.len, 4, items),
                        CF_OK);
  CU_ASSERT_EQUAL(items[0].status, CF_OK);
  CU_ASSERT_TRUE(cf__buf_len(&items[0].out) == 3 &&
                 memcmp(cf__buf_data(&items[0].out), "xyz", 3) == 0);
  CU_ASSERT_EQUAL(items[1].status, CF_ETASK);
  CU_ASSERT_EQUAL(items[1].code, 9);
  CU_ASSERT_STRING_EQUAL(items[1].msg, "bad");
  CU_ASSERT_EQUAL(items[2].status, CF_ETASK);
  CU_ASSERT_EQUAL(items[2].code, -4);
  CU_ASSERT_PTR_NULL(items[2].msg);
  CU_ASSERT_EQUAL(items[3].status, CF_ECANCELLED);
  cf__buf_free(&items[0].out);
  free(items[1].msg);
  free(w.p);
  /* No items at all. */
  CU_ASSERT_EQUAL_FATAL(cf__ipc_chunk_result_begin(&b, 0), CF_OK);
  fd = wire_open(&w);
  CU_ASSERT_EQUAL(cf__ipc_send_chunk_result(CF__FD_CHAN(fd), 12, &b), CF_OK);
  CU_ASSERT_EQUAL_FATAL(wire_close(&w), CF_OK);
  put_u64(&e, 0);
  expect_frame(&w, CF__MSG_CHUNKRESULT, 12, &e);
  CU_ASSERT_EQUAL(cf__ipc_decode_chunk_result(w.p, w.fr.len, 0, items), CF_OK);
  free(w.p);
  /* What the decoder refuses is not added, and the buffer is freed. */
  static const struct {
    int32_t st, code;
    bool has_msg;
    size_t len;
  } no[] = {{CF__ITEM_OK, 0, true, 1},
            {CF__ITEM_FAILED, 0, true, 1},
            {CF__ITEM_FAILED, 0, false, 0},
            {CF__ITEM_NOT_RUN, 0, false, 1},
            {CF__ITEM_NOT_RUN, 0, true, 0},
            {3, 1, false, 0},
            {-1, 1, false, 0}};
  for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
    CU_ASSERT_EQUAL_FATAL(cf__ipc_chunk_result_begin(&b, 1), CF_OK);
    CU_ASSERT_EQUAL(cf__ipc_chunk_result_add(&b, no[i].st, no[i].code,
                                             no[i].has_msg, "m", no[i].len),
                    CF_EINVAL);
    CU_ASSERT_PTR_NULL(b.p);
  }
  /* More than a frame carries: refused before a byte is read. */
  CU_ASSERT_EQUAL_FATAL(cf__ipc_chunk_result_begin(&b, 1), CF_OK);
  CU_ASSERT_EQUAL(cf__ipc_chunk_result_add(&b, CF__ITEM_OK, 0, false, &b,
                                           CF__IPC_MAX_PAYLOAD - 24 - 7),
                  CF_ENOMEM);
  CU_ASSERT_PTR_NULL(b.p);
}

static void test_stop_round_trip(void) {
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(cf__ipc_send_stop(CF__FD_CHAN(fd), UINT64_MAX), CF_OK);
  CU_ASSERT_EQUAL_FATAL(wire_close(&w), CF_OK);
  bytes e = {0};
  expect_frame(&w, CF__MSG_STOP, UINT64_MAX, &e);
  CU_ASSERT_EQUAL(cf__ipc_decode_stop(&w.fr, true, UINT64_MAX), CF__STOP_NOW);
  CU_ASSERT_EQUAL(cf__ipc_decode_stop(&w.fr, false, 0), CF__STOP_IGNORE);
  CU_ASSERT_EQUAL(cf__ipc_decode_exit(&w.fr), CF_EPROTO);
}

static void test_exit_round_trip(void) {
  wire w;
  int fd = wire_open(&w);
  CU_ASSERT_EQUAL(cf__ipc_send_exit(CF__FD_CHAN(fd), 0), CF_OK);
  CU_ASSERT_EQUAL_FATAL(wire_close(&w), CF_OK);
  bytes e = {0};
  expect_frame(&w, CF__MSG_EXIT, 0, &e);
  CU_ASSERT_EQUAL(cf__ipc_decode_exit(&w.fr), CF_OK);
  CU_ASSERT_EQUAL(cf__ipc_decode_stop(&w.fr, true, 0), CF_EPROTO);
  /* The id is not read (tests/hijack_forge.c sends 1); a payload or
   * another type is not an EXIT. */
  cf__frame bad = w.fr;
  bad.id = 1;
  CU_ASSERT_EQUAL(cf__ipc_decode_exit(&bad), CF_OK);
  bad.len = 1;
  CU_ASSERT_EQUAL(cf__ipc_decode_exit(&bad), CF_EPROTO);
  bad = w.fr;
  bad.type = CF__MSG_STOP;
  CU_ASSERT_EQUAL(cf__ipc_decode_exit(&bad), CF_EPROTO);
}

CF_TEST_MAIN("ipc", CF_TEST(test_fnref_round_trip), CF_TEST(test_frames),
             CF_TEST(test_decode_chunk_result), CF_TEST(test_decode_result),
             CF_TEST(test_chunk_round_trip), CF_TEST(test_chunk_large_inputs),
             CF_TEST(test_chunk_result_encode_decode),
             CF_TEST(test_decode_task), CF_TEST(test_decode_stop),
             CF_TEST(test_corpus_replay), CF_TEST(test_hello),
             CF_TEST(test_modules_round_trip), CF_TEST(test_decode_ready),
             CF_TEST(test_fnref_layout), CF_TEST(test_init_round_trip),
             CF_TEST(test_ready_round_trip), CF_TEST(test_initfail_round_trip),
             CF_TEST(test_task_round_trip), CF_TEST(test_result_round_trip),
             CF_TEST(test_chunk_result_round_trip),
             CF_TEST(test_stop_round_trip), CF_TEST(test_exit_round_trip))
