/*
 * primecheck: which numbers are prime, checked in parallel with cfutures.
 *
 * The seed's Python program, ProcessPoolExecutor().map(isPrime, PRIMES),
 * becomes cf_map() over a process pool: inputs go out in chunks, results
 * come back in input order, and printing starts as soon as the first chunk
 * is done.  See primecheck(1).
 *
 * Built a second time with -DCF_SAMPLE_MPI as primecheck-mpi, linked with
 * libcfutures-mpi: there --mpi checks the numbers on the other ranks of an
 * MPI job (mpiexec -n N primecheck-mpi --mpi ...), with the same output.
 * primecheck itself never sees MPI.
 */
#include <cfutures.h>
#ifdef CF_SAMPLE_MPI
#include <cfutures-mpi.h>
#define PROG "primecheck-mpi"
#else
#define PROG "primecheck"
#endif

#include "numparse.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_USAGE 2

static const uint64_t SEED_PRIMES[] = {109999999, 108376355, 1276544678,
                                       123555677, 234645542424};

/* ---- the tasks: one uint64_t in, one byte (1 = prime) out ---------------- */

static uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m) {
  return (uint64_t)((unsigned __int128)a * b % m);
}

static uint64_t powmod(uint64_t a, uint64_t e, uint64_t m) {
  uint64_t r = 1;
  for (a %= m; e; e >>= 1, a = mulmod(a, a, m))
    if (e & 1)
      r = mulmod(r, a, m);
  return r;
}

/* Deterministic Miller-Rabin: these twelve bases decide every n < 2^64. */
static bool is_prime_mr(uint64_t n) {
  static const uint64_t bases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  if (n < 2)
    return false;
  for (size_t i = 0; i < 12; i++)
    if (n % bases[i] == 0)
      return n == bases[i];
  uint64_t d = n - 1;
  int s = 0;
  while (d % 2 == 0) {
    d /= 2;
    s++;
  }
  for (size_t i = 0; i < 12; i++) {
    uint64_t x = powmod(bases[i], d, n);
    if (x == 1 || x == n - 1)
      continue;
    int r = 1;
    for (; r < s; r++)
      if ((x = mulmod(x, x, n)) == n - 1)
        break;
    if (r == s)
      return false;
  }
  return true;
}

/* The seed's trial division by odd numbers up to sqrt(n), but right about
 * 0, 1 and 2 (the seed calls 2 composite and 1 prime). */
static bool is_prime_trial(uint64_t n) {
  if (n < 2)
    return false;
  if (n % 2 == 0)
    return n == 2;
  for (uint64_t d = 3; d <= n / d; d += 2)
    if (n % d == 0)
      return false;
  return true;
}

static int check_task(cf_task *t, const void *in, size_t len, bool trial) {
  uint64_t n;
  if (len != sizeof n)
    return cf_task_fail(t, EINVAL, "expected 8 bytes, got %zu", len);
  memcpy(&n, in, sizeof n);
  unsigned char prime = trial ? is_prime_trial(n) : is_prime_mr(n);
  return cf_task_return(t, &prime, 1);
}

static int task_mr(cf_task *t, const void *in, size_t len) {
  return check_task(t, in, len, false);
}

static int task_trial(cf_task *t, const void *in, size_t len) {
  return check_task(t, in, len, true);
}

/* ---- input --------------------------------------------------------------- */

/* A whole command-line token as a number; on error prints why, naming it. */
static bool parse_u64(const char *tok, uint64_t *out) {
  const char *why = numparse_u64(tok, strlen(tok), out);
  if (why) {
    fprintf(stderr, "primecheck: invalid number '");
    numparse_quote(stderr, tok, strlen(tok));
    fprintf(stderr, "': %s\n", why);
  }
  return !why;
}

/* --range A B: the numbers are produced as the map asks for them. */
typedef struct range {
  uint64_t first, count_minus_1, value;
} range;

static int next_in_range(void *arg, size_t i, const void **in, size_t *len) {
  range *r = arg;
  if ((uint64_t)i > r->count_minus_1)
    return CF_EOF;
  r->value = r->first + i;
  *in = &r->value;
  *len = sizeof r->value;
  return CF_OK;
}

/* ---- options ------------------------------------------------------------- */

/* What a step of main returns when the run goes on; anything else is the
 * exit status to end it with. */
#define RUN_ON (-1)

typedef struct run {
  bool threads, trial, have_range;
#ifdef CF_SAMPLE_MPI
  bool mpi; /* --mpi: the other ranks of the MPI job are the workers */
#endif
  uint64_t jobs, chunksize; /* 0: the library's default */
  uint64_t lo, hi;          /* with have_range */
  numparse_list ns;         /* the numbers, when not a range */
  cf_executor *ex;
} run;

static void usage(FILE *to) {
  fprintf(to,
          "usage: " PROG " [OPTIONS] [N... | -]\n"
          "Checks whether each N (0 to 18446744073709551615) is prime, in "
          "parallel.\n"
          "With no N, checks the list of the Python example.  '-' reads one "
          "number per line from standard input.\n\n"
          "  -r, --range A B       check every number from A to B\n"
          "  -m, --method M        mr (Miller-Rabin, default) or trial (the "
          "article's trial division)\n"
          "  -j, --jobs N          N workers (default: one per CPU)\n"
          "  -c, --chunksize K     numbers per task sent to a worker\n"
          "  -t, --threads         use a thread pool instead of processes\n"
#ifdef CF_SAMPLE_MPI
          "      --mpi             use the other ranks of the MPI job as the "
          "workers:\n"
          "                        mpiexec -n RANKS " PROG " --mpi ... (-j N: "
          "at most N ranks)\n"
#endif
          "  -h, --help            show this help\n"
          "  -V, --version         show the version\n\n"
          "Exit status: 0 done, 1 a check could not run, 2 bad usage or "
          "input.\n");
}

/* --range A B: getopt gives A, B is the word after it. */
static bool parse_range(run *r, int argc, char **argv) {
  if (optind >= argc) {
    fprintf(stderr, "primecheck: --range needs two numbers, A and B\n");
    return false;
  }
  if (!parse_u64(optarg, &r->lo) || !parse_u64(argv[optind++], &r->hi))
    return false;
  if (r->lo > r->hi) {
    fprintf(stderr,
            "primecheck: --range %" PRIu64 " %" PRIu64 ": A is larger than B\n",
            r->lo, r->hi);
    return false;
  }
  r->have_range = true;
  return true;
}

static bool parse_method(run *r, const char *arg) {
  if (strcmp(arg, "trial") && strcmp(arg, "mr")) {
    fprintf(stderr, "primecheck: unknown method '%s' (mr or trial)\n", arg);
    return false;
  }
  r->trial = strcmp(arg, "trial") == 0;
  return true;
}

/* -j N (1 to 1024) or -c K (1 or more), by the option's letter c. */
static bool parse_count(run *r, int c, const char *arg) {
  uint64_t *dst = c == 'j' ? &r->jobs : &r->chunksize;
  if (!parse_u64(arg, dst))
    return false;
  if (*dst == 0 || (c == 'j' && *dst > 1024)) {
    fprintf(stderr, "primecheck: %s '%s' must be from 1 to %s\n",
            c == 'j' ? "--jobs" : "--chunksize", arg,
            c == 'j' ? "1024" : "18446744073709551615");
    return false;
  }
  return true;
}

/* getopt's value for --mpi, which has no short form. */
#define OPT_MPI 256

/* The options into r; RUN_ON, or the exit status at once (-h and -V end
 * the run there, before the options after them are read). */
static int parse_options(run *r, int argc, char **argv) {
  static const struct option longopts[] = {
#ifdef CF_SAMPLE_MPI
      {"mpi", no_argument, NULL, OPT_MPI},
#endif
      {"range", required_argument, NULL, 'r'},
      {"method", required_argument, NULL, 'm'},
      {"jobs", required_argument, NULL, 'j'},
      {"chunksize", required_argument, NULL, 'c'},
      {"threads", no_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "r:m:j:c:thV", longopts, NULL)) != -1) {
    bool ok = true;
    switch (c) {
    case 'r':
      ok = parse_range(r, argc, argv);
      break;
    case 'm':
      ok = parse_method(r, optarg);
      break;
    case 'j':
    case 'c':
      ok = parse_count(r, c, optarg);
      break;
    case 't':
      r->threads = true;
      break;
#ifdef CF_SAMPLE_MPI
    case OPT_MPI:
      r->mpi = true;
      break;
#endif
    case 'h':
      usage(stdout);
      return 0;
    case 'V':
      printf(PROG " (cfutures) %s\n", cf_version());
      return 0;
    default:
      usage(stderr);
      return EXIT_USAGE;
    }
    if (!ok)
      return EXIT_USAGE;
  }
#ifdef CF_SAMPLE_MPI
  if (r->mpi && r->threads) {
    fprintf(stderr, "primecheck: --mpi and --threads: choose one kind of "
                    "workers\n");
    return EXIT_USAGE;
  }
#endif
  return RUN_ON;
}

/* Every input is checked before the first line goes out.  RUN_ON, or the
 * exit status. */
static int read_numbers(run *r, int argc, char **argv) {
  if (r->have_range && optind < argc) {
    fprintf(stderr, "primecheck: give numbers or --range, not both\n");
    return EXIT_USAGE;
  }
  for (int i = optind; i < argc; i++) {
    uint64_t v;
    bool ok;
    if (strcmp(argv[i], "-") == 0) {
      ok = numparse_read(stdin, "standard input", stderr, &r->ns);
    } else if ((ok = parse_u64(argv[i], &v)) &&
               !(ok = numparse_push(&r->ns, v))) {
      fprintf(stderr, "primecheck: out of memory\n");
    }
    if (!ok) {
      free(r->ns.v);
      return EXIT_USAGE;
    }
  }
  if (!r->have_range && optind == argc)
    for (size_t i = 0; i < sizeof SEED_PRIMES / sizeof *SEED_PRIMES; i++)
      if (!numparse_push(&r->ns, SEED_PRIMES[i])) {
        fprintf(stderr, "primecheck: out of memory\n");
        return 1;
      }
  return RUN_ON;
}

/* ---- the check ----------------------------------------------------------- */

static bool start_workers(run *r) {
  int rc;
#ifdef CF_SAMPLE_MPI
  if (r->mpi) {
    /* Over every rank but this one (the root), or at most -j of them. */
    cf_mpi_pool_options o;
    cf_mpi_pool_options_init(&o);
    o.max_workers = (int)r->jobs;
    rc = cf_mpi_pool_create(&o, &r->ex);
    if (rc != CF_OK) {
      const char *why = cf_last_error_message();
      fprintf(stderr, "primecheck: cannot start the MPI pool: %s\n",
              *why ? why : cf_strerror(rc));
      return false;
    }
    return true;
  }
#endif
  if (r->threads) {
    cf_thread_pool_options o;
    cf_thread_pool_options_init(&o);
    o.max_workers = (int)r->jobs;
    rc = cf_thread_pool_create(&o, &r->ex);
  } else {
    cf_process_pool_options o;
    cf_process_pool_options_init(&o);
    o.max_workers = (int)r->jobs;
    rc = cf_process_pool_create(&o, &r->ex);
  }
  if (rc != CF_OK) {
    fprintf(stderr, "primecheck: cannot start workers: %s\n", cf_strerror(rc));
    return false;
  }
  return true;
}

/* Maps the check over the numbers and prints each answer, in input order,
 * as it comes.  Returns CF_EOF when every number was checked, else the error
 * (already reported). */
static int check_and_print(run *r) {
  cf_map_options mo;
  cf_map_options_init(&mo);
  mo.chunksize = (size_t)r->chunksize;
  cf_map_iter *m;
  cf_task_fn fn = r->trial ? task_trial : task_mr;
  range rg = {r->lo, r->hi - r->lo, 0};
  int rc;
  if (r->have_range) {
    if (!mo.chunksize) /* a range is long: amortise the messages */
      mo.chunksize = 256;
    rc = cf_map(r->ex, fn, next_in_range, &rg, &mo, &m);
  } else {
    rc = cf_map_array(r->ex, fn, r->ns.v, sizeof *r->ns.v, r->ns.n, &mo, &m);
  }
  cf_map_item item = CF_MAP_ITEM_INIT;
  while (rc == CF_OK && (rc = cf_map_next(m, &item)) == CF_OK) {
    uint64_t n = r->have_range ? r->lo + item.index : r->ns.v[item.index];
    /* Checked as it goes (a failed flush of the buffer shows here): a
     * full disk or a closed pipe stops the work at once, not at the end
     * of a range that may take hours. */
    if (printf("%" PRIu64 " is prime: %s\n", n,
               *(const unsigned char *)item.data ? "True" : "False") < 0 ||
        ferror(stdout)) {
      fprintf(stderr, "primecheck: writing the output: %s\n", strerror(errno));
      rc = CF_ESYS;
      break;
    }
  }
  if (rc != CF_EOF && rc != CF_ESYS)
    fprintf(stderr, "primecheck: %s%s%s\n", cf_strerror(rc),
            item.error_message ? ": " : "",
            item.error_message ? item.error_message : "");
  cf_map_destroy(m); /* cancels what has not run, stops running chunks */
  return rc;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv) {
#ifdef CF_SAMPLE_MPI
  /* Every rank, before anything else: rank 0 goes on as the root; the
   * others serve the root's pools here and leave with exit(0) when the
   * root ends (its exit() finalises, whatever the exit status), so they
   * never parse the arguments or print. */
  int mrc = cf_mpi_main(&argc, &argv);
  if (mrc != CF_OK) {
    const char *why = cf_last_error_message();
    fprintf(stderr, "primecheck: cannot start MPI: %s\n",
            *why ? why : cf_strerror(mrc));
    return 1;
  }
#endif
  run r = {0};
  int status = parse_options(&r, argc, argv);
  if (status == RUN_ON)
    status = read_numbers(&r, argc, argv);
  if (status != RUN_ON)
    return status;
  if (!start_workers(&r)) {
    free(r.ns.v);
    return 1;
  }
  int rc = check_and_print(&r);
  cf_executor_release(r.ex);
  free(r.ns.v);
  if (rc == CF_ESYS) /* the output failed, and was reported */
    return 1;
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "primecheck: writing the output: %s\n", strerror(errno));
    return 1;
  }
  return rc == CF_EOF ? 0 : 1;
}
