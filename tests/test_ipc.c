/* The process pool's wire protocol: function references, framing, the
 * decoders of what workers send and of what workers receive, the chunk
 * encoders, and a replay of the fuzz corpus of malformed messages
 * (tests/corpus/ipc). */
#include "test_util.h"

#include "ipc_input.h"

#include <dirent.h>
#include <sys/socket.h>

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
  CU_ASSERT_EQUAL(cf__ipc_send(sv[0], CF__MSG_RESULT, 7, iov, 2), CF_OK);
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
  cf__batch *c = calloc(1, sizeof *c + 3 * sizeof(cf__batch_item) +
                               3 * sizeof(cf__buf));
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

static void test_chunk_encode_decode(void) {
  cf__batch *c = three_inputs();
  cf__fnref ref;
  CU_ASSERT_EQUAL_FATAL(cf__fnref_locate((uintptr_t)task_square, &ref), CF_OK);
  unsigned char *buf;
  size_t n;
  CU_ASSERT_EQUAL_FATAL(cf__ipc_encode_chunk(&ref, c, &buf, &n), CF_OK);
  cf__chunk_view v;
  CU_ASSERT_EQUAL_FATAL(cf__ipc_decode_chunk(buf, n, &v), CF_OK);
  CU_ASSERT_EQUAL(cf__fnref_view_resolve(&v.fn), (uintptr_t)task_square);
  CU_ASSERT_EQUAL(v.count, 3);
  const unsigned char *in;
  size_t len;
  CU_ASSERT_EQUAL(cf__ipc_chunk_next(&v, &in, &len), CF_OK);
  CU_ASSERT_TRUE(len == 3 && memcmp(in, "abc", 3) == 0);
  CU_ASSERT_EQUAL(cf__ipc_chunk_next(&v, &in, &len), CF_OK);
  CU_ASSERT_TRUE(len == 0 && in == NULL);
  CU_ASSERT_EQUAL(cf__ipc_chunk_next(&v, &in, &len), CF_OK);
  CU_ASSERT_TRUE(len == 20 && in[19] == 'z');
  CU_ASSERT_EQUAL(cf__ipc_chunk_next(&v, &in, &len), CF_EOF);
  CU_ASSERT_EQUAL(cf__ipc_chunk_next(&v, &in, &len), CF_EOF);
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
}

static void test_chunk_result_encode_decode(void) {
  cf__obuf b;
  CU_ASSERT_EQUAL_FATAL(cf__ipc_chunk_result_begin(&b, 3), CF_OK);
  CU_ASSERT_EQUAL(cf__ipc_chunk_result_add(&b, CF__ITEM_OK, 0, false, "xyz",
                                           3), CF_OK);
  CU_ASSERT_EQUAL(cf__ipc_chunk_result_add(&b, CF__ITEM_FAILED, 9, true,
                                           "bad", 3), CF_OK);
  CU_ASSERT_EQUAL(cf__ipc_chunk_result_add(&b, CF__ITEM_NOT_RUN, 0, false,
                                           NULL, 0), CF_OK);
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
                                           sizeof big), CF_OK);
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
  CU_ASSERT_EQUAL(cf__ipc_send(sv[0], CF__MSG_STOP, 7, NULL, 0), CF_OK);
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
  CU_ASSERT_TRUE(files >= 40); /* both directions */
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
  CU_ASSERT_EQUAL_FATAL(cf__modules_decode(w, n + 8, &used, &v, &count),
                        CF_OK);
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

CF_TEST_MAIN("ipc", CF_TEST(test_fnref_round_trip), CF_TEST(test_frames),
             CF_TEST(test_decode_chunk_result), CF_TEST(test_decode_result),
             CF_TEST(test_chunk_encode_decode),
             CF_TEST(test_chunk_result_encode_decode),
             CF_TEST(test_decode_task), CF_TEST(test_decode_stop),
             CF_TEST(test_corpus_replay), CF_TEST(test_hello),
             CF_TEST(test_modules_round_trip), CF_TEST(test_decode_ready))
