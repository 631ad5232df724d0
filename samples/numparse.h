/*
 * primecheck's input: decimal numbers, as command-line tokens or one per
 * line on standard input.  A header of static functions so that the fuzz
 * target (tests/fuzz_numparse.c) and the unit tests (tests/test_numparse.c)
 * run exactly the code primecheck runs.
 */
#ifndef CF_SAMPLES_NUMPARSE_H
#define CF_SAMPLES_NUMPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

/* Parses s[0..len) as a whole decimal number in [0, 2^64-1]: digits only, no
 * sign, space, exponent, suffix or NUL byte.  Returns NULL and sets *out, or
 * returns why the token is not a number (and leaves *out alone). */
static const char *numparse_u64(const char *s, size_t len, uint64_t *out) {
  uint64_t v = 0;
  bool too_large = false;
  if (len == 0)
    return "empty";
  /* A bad byte anywhere wins over the size: "99999999999999999999x" is not
   * a number at all rather than a number too large. */
  for (size_t i = 0; i < len; i++) {
    unsigned d = (unsigned)(unsigned char)s[i] - '0';
    if (d > 9)
      return "not a decimal integer (digits 0-9 only, no sign or exponent)";
    if (too_large || v > (UINT64_MAX - d) / 10)
      too_large = true;
    else
      v = v * 10 + d;
  }
  if (too_large)
    return "larger than 18446744073709551615";
  *out = v;
  return NULL;
}

/* Writes s[0..len) for an error message: printable ASCII as is, anything
 * else (a NUL, a CR, a control or non-ASCII byte) as \xHH, cut at 64 bytes,
 * so the message is one readable line whatever the input held. */
static void numparse_quote(FILE *to, const char *s, size_t len) {
  size_t n = len > 64 ? 64 : len;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7f && c != '\\')
      fputc(c, to);
    else
      fprintf(to, "\\x%02x", c);
  }
  if (n < len)
    fputs("...", to);
}

typedef struct numparse_list {
  uint64_t *v;
  size_t n, cap;
} numparse_list;

/* Appends v; false when out of memory (the list is unchanged). */
static bool numparse_push(numparse_list *l, uint64_t v) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    uint64_t *nv =
        cap > SIZE_MAX / sizeof *nv ? NULL : realloc(l->v, cap * sizeof *nv);
    if (!nv)
      return false;
    l->v = nv;
    l->cap = cap;
  }
  l->v[l->n++] = v;
  return true;
}

/* Reads one number per line from `in` until its end: a line ends with "\n"
 * or "\r\n" (the last one may lack it).  On a bad line, prints to `err` the
 * line, its number and why, and returns false; on success appends every
 * number to *l.  Nothing is appended before the whole input has been read
 * successfully, so a caller never acts on part of a bad input. */
static bool numparse_read(FILE *in, const char *name, FILE *err,
                          numparse_list *l) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  unsigned long lineno = 0;
  size_t start = l->n;
  bool ok = true;
  while (ok && (len = getline(&line, &cap, in)) >= 0) {
    lineno++;
    size_t n = (size_t)len;
    if (n > 0 && line[n - 1] == '\n')
      n--;
    if (n > 0 && line[n - 1] == '\r')
      n--;
    uint64_t v;
    const char *why = numparse_u64(line, n, &v);
    if (why) {
      fprintf(err, "primecheck: %s, line %lu: invalid number '", name, lineno);
      numparse_quote(err, line, n);
      fprintf(err, "': %s\n", why);
      ok = false;
    } else if (!numparse_push(l, v)) {
      fprintf(err, "primecheck: out of memory\n");
      ok = false;
    }
  }
  /* (glibc before 2.37 fails getline() for want of memory without setting
   * the error flag: not at the end means it failed too.) */
  if (ok && (ferror(in) || !feof(in))) {
    fprintf(err, "primecheck: reading %s failed\n", name);
    ok = false;
  }
  free(line);
  if (!ok)
    l->n = start;
  return ok;
}

#endif
