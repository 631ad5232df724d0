/* One input for primecheck's number parsing, shared by the fuzz target
 * (fuzz_numparse.c) and the corpus replay (test_numparse.c).  The bytes are
 * checked twice against a plain reference built on strtoull():
 *   - as one command-line token: accepted exactly when the reference
 *     accepts it, with the same value, and with the right reason if not;
 *   - as standard input: every line parsed the same way, the numbers in
 *     order, or on the first bad line a refusal naming that line and
 *     nothing appended.
 * Returns 0 when everything agrees; otherwise a non-zero code telling which
 * check disagreed (the fuzz target aborts on it). */
#ifndef CF_NUMPARSE_INPUT_H
#define CF_NUMPARSE_INPUT_H

#include "numparse.h"

#include <errno.h>
#include <string.h>

/* The reference: digits only; past the leading zeros, more than 20 digits
 * is too large; else strtoull() decides the range. */
static bool numparse_ref(const char *s, size_t len, uint64_t *out,
                         bool *too_large) {
  *too_large = false;
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  while (len > 1 && *s == '0')
    s++, len--;
  if (len > 20) {
    *too_large = true;
    return false;
  }
  char buf[21];
  memcpy(buf, s, len);
  buf[len] = '\0';
  errno = 0;
  unsigned long long v = strtoull(buf, NULL, 10);
  if (errno == ERANGE) {
    *too_large = true;
    return false;
  }
  *out = v;
  return true;
}

static int numparse_check_token(const char *s, size_t len) {
  uint64_t got = 7, want = 0;
  bool too_large;
  const char *why = numparse_u64(s, len, &got);
  bool ok = numparse_ref(s, len, &want, &too_large);
  if (ok != !why)
    return 1;
  if (ok && got != want)
    return 2;
  if (!ok && got != 7)
    return 3; /* *out must be left alone on error */
  if (!ok && (len == 0) != (strcmp(why, "empty") == 0))
    return 4;
  if (!ok && too_large != (strstr(why, "larger") != NULL))
    return 5;
  return 0;
}

static int numparse_check_lines(const char *data, size_t size) {
  if (size == 0)
    return 0; /* fmemopen() refuses a zero size; tested separately */
  /* The reference split: lines end at LF, a CR before it is dropped, and a
   * last line without LF counts unless it is empty. */
  numparse_list want = {0};
  size_t bad_line = 0, lineno = 0;
  for (size_t at = 0; at < size && !bad_line;) {
    const char *nl = memchr(data + at, '\n', size - at);
    size_t end = nl ? (size_t)(nl - data) : size;
    size_t n = end - at;
    lineno++;
    if (n > 0 && data[end - 1] == '\r')
      n--;
    uint64_t v;
    bool too_large;
    if (!numparse_ref(data + at, n, &v, &too_large)) {
      bad_line = lineno;
    } else if (!numparse_push(&want, v)) {
      free(want.v);
      return 0; /* out of memory: nothing to compare */
    }
    at = end + 1;
  }
  FILE *in = fmemopen((void *)data, size, "r");
  char *msg = NULL;
  size_t msglen = 0;
  FILE *err = open_memstream(&msg, &msglen);
  if (!in || !err) {
    if (in)
      fclose(in);
    if (err)
      fclose(err);
    free(msg);
    free(want.v);
    return 0;
  }
  numparse_list got = {0};
  numparse_push(&got, 42); /* a number already there must stay */
  bool ok = numparse_read(in, "input", err, &got);
  fclose(in);
  fclose(err);
  int rc = 0;
  if (ok != !bad_line)
    rc = 10;
  else if (!ok && got.n != 1)
    rc = 11; /* a refused input appends nothing */
  else if (ok && (got.n != want.n + 1 ||
                  (want.n &&
                   memcmp(got.v + 1, want.v, want.n * sizeof *want.v) != 0)))
    rc = 12;
  else if (got.v[0] != 42)
    rc = 13;
  else if (!ok) {
    char expect[64];
    snprintf(expect, sizeof expect, "input, line %zu: invalid number '",
             bad_line);
    if (!msg || !strstr(msg, expect) || strchr(msg, '\n') != msg + msglen - 1)
      rc = 14; /* one line, naming the right line */
  }
  free(msg);
  free(got.v);
  free(want.v);
  return rc;
}

static int numparse_check_input(const uint8_t *data, size_t size) {
  int rc = numparse_check_token((const char *)data, size);
  return rc ? rc : numparse_check_lines((const char *)data, size);
}

#endif
