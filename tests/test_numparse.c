/* primecheck's number parsing (samples/numparse.h): tokens, lines from
 * standard input, and a replay of the fuzz corpus (tests/corpus/numparse)
 * against the strtoull() reference the fuzz target uses. */
#include "test_util.h"

#include "numparse_input.h"

static const char *why(const char *s) {
  uint64_t v;
  return numparse_u64(s, strlen(s), &v);
}

static void test_tokens(void) {
  uint64_t v = 0;
  CU_ASSERT_PTR_NULL(numparse_u64("0", 1, &v));
  CU_ASSERT_EQUAL(v, 0);
  CU_ASSERT_PTR_NULL(numparse_u64("18446744073709551615", 20, &v));
  CU_ASSERT_EQUAL(v, UINT64_MAX);
  CU_ASSERT_PTR_NULL(numparse_u64("000123", 6, &v));
  CU_ASSERT_EQUAL(v, 123);
  CU_ASSERT_PTR_NULL(numparse_u64("123456", 3, &v)); /* only len bytes */
  CU_ASSERT_EQUAL(v, 123);
  CU_ASSERT_STRING_EQUAL(why(""), "empty");
  CU_ASSERT_PTR_NOT_NULL(strstr(why("18446744073709551616"), "larger"));
  CU_ASSERT_PTR_NOT_NULL(strstr(why("99999999999999999999"), "larger"));
  const char *bad[] = {"-1", "+1", " 1", "1 ", "1e5", "0x10", "3.5", "٣"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CU_ASSERT_PTR_NOT_NULL(strstr(why(bad[i]), "not a decimal"));
  /* Regression (found by fuzz_numparse): a bad byte after 20 digits was
   * reported as "larger than ...". */
  CU_ASSERT_PTR_NOT_NULL(strstr(why("18446744073709551616="), "not a decimal"));
  /* A NUL byte inside a token is not the end of it. */
  /* clang-format off */
  CU_ASSERT_PTR_NOT_NULL(numparse_u64("12\0" "3", 4, &v));
  /* clang-format on */
}

static char *quoted(const char *s, size_t len) {
  static char out[512];
  FILE *fp = fmemopen(out, sizeof out, "w");
  numparse_quote(fp, s, len);
  fclose(fp);
  return out;
}

static void test_quote(void) {
  CU_ASSERT_STRING_EQUAL(quoted("abc 12", 6), "abc 12");
  /* clang-format off */
  CU_ASSERT_STRING_EQUAL(quoted("1\0" "2\r\\", 5), "1\\x002\\x0d\\x5c");
  /* clang-format on */
  CU_ASSERT_STRING_EQUAL(quoted("\xc3\xa9", 2), "\\xc3\\xa9");
  char big[100];
  memset(big, '7', sizeof big);
  const char *q = quoted(big, sizeof big);
  CU_ASSERT_EQUAL(strlen(q), 64 + 3); /* cut, with "..." */
}

/* Parses `text` as standard input; returns the status, the numbers in *l
 * and what was printed in err. */
static bool read_text(const char *text, size_t len, numparse_list *l, char *err,
                      size_t errlen) {
  FILE *in = fmemopen((void *)text, len, "r");
  FILE *e = fmemopen(err, errlen, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  CU_ASSERT_PTR_NOT_NULL_FATAL(e);
  bool ok = numparse_read(in, "standard input", e, l);
  fclose(in);
  fclose(e);
  return ok;
}

static void test_lines(void) {
  numparse_list l = {0};
  char err[256] = "";
  CU_ASSERT_TRUE(read_text("1\n2\r\n3", 6, &l, err, sizeof err));
  CU_ASSERT_EQUAL(l.n, 3);
  CU_ASSERT_TRUE(l.n == 3 && l.v[0] == 1 && l.v[1] == 2 && l.v[2] == 3);
  CU_ASSERT_STRING_EQUAL(err, "");
  /* A bad third line: refused, named, and nothing of it appended. */
  CU_ASSERT_FALSE(read_text("4\n5\n6x\n7\n", 9, &l, err, sizeof err));
  CU_ASSERT_EQUAL(l.n, 3);
  CU_ASSERT_STRING_EQUAL(err, "primecheck: standard input, line 3: invalid "
                              "number '6x': not a decimal integer (digits 0-9 "
                              "only, no sign or exponent)\n");
  CU_ASSERT_FALSE(read_text("4\n\n", 3, &l, err, sizeof err));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 2: invalid number '': empty"));
  /* Regression: a NUL byte ended the line early, so "12\0junk" was 12. */
  CU_ASSERT_FALSE(read_text("12\0junk\n", 8, &l, err, sizeof err));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "'12\\x00junk'"));
  CU_ASSERT_EQUAL(l.n, 3);
  /* Empty input: no numbers, no error. */
  FILE *in = fopen("/dev/null", "r");
  CU_ASSERT_TRUE(numparse_read(in, "empty", stderr, &l));
  fclose(in);
  CU_ASSERT_EQUAL(l.n, 3);
  free(l.v);
}

/* Long inputs: many lines, and a token far longer than any number. */
static void test_long_inputs(void) {
  size_t n = 100000;
  char *text = malloc(n * 21);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += (size_t)sprintf(text + len, "%llu\n",
                           (unsigned long long)i * 184467440737095ULL);
  CU_ASSERT_EQUAL(numparse_check_input((const uint8_t *)text, len), 0);
  memset(text, '9', 10000);
  CU_ASSERT_EQUAL(numparse_check_input((const uint8_t *)text, 10000), 0);
  /* Regression (of the reference): 5000 zeros then 7 is the number 7. */
  memset(text, '0', 5000);
  text[5000] = '7';
  CU_ASSERT_EQUAL(numparse_check_input((const uint8_t *)text, 5001), 0);
  uint64_t v = 0;
  CU_ASSERT_PTR_NULL(numparse_u64(text, 5001, &v));
  CU_ASSERT_EQUAL(v, 7);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(why("99999999999999999999999999999"), "larger"));
  free(text);
}

static void replay_one(const uint8_t *data, size_t size) {
  int rc = numparse_check_input(data, size);
  CU_ASSERT_EQUAL(rc, 0);
  if (rc)
    fprintf(stderr, "corpus input of %zu bytes: check %d failed\n", size, rc);
}

static void test_corpus_replay(void) {
  CU_ASSERT_TRUE(cf_test_replay_corpus("numparse", replay_one) >= 10);
}

CF_TEST_MAIN("numparse", CF_TEST(test_tokens), CF_TEST(test_quote),
             CF_TEST(test_lines), CF_TEST(test_long_inputs),
             CF_TEST(test_corpus_replay))
