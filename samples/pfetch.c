/*
 * pfetch: fetch URLs over plain HTTP/1.0, in parallel with cfutures.
 *
 * The seed's Python program sends 20 blocking GET requests one after the
 * other, then through a ProcessPoolExecutor, then through a
 * ThreadPoolExecutor, and prints how long each way took.  pfetch does the
 * same in C: --serial on the calling thread, --processes on a process pool,
 * by default on a thread pool, and --loop on a thread pool whose futures
 * come back through a completion queue into an epoll loop on the main
 * thread (which also reads Ctrl-C from a signalfd and draws the progress).
 * Every way runs the same request function; see pfetch(1).
 */
#include <cfutures.h>

/* For numparse_u64() and numparse_quote(): the number parsing primecheck
 * uses.  Its list reader is not needed here (it is static, hence the
 * pragma). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "numparse.h"
#pragma GCC diagnostic pop

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2

/* Limits.  A URL longer than this is refused (per request) before any
 * memory is sized by it; headers longer than MAX_HEADERS are a malformed
 * response (no server sends 64 KiB of headers). */
#define MAX_URL 8192
#define MAX_HOST 255
#define MAX_HEADERS 65536
#define MAX_JOBS 1024
#define DEFAULT_JOBS 8
#define DEFAULT_TIMEOUT_NS CF_SEC(10)
#define DEFAULT_MAX_BYTES ((uint64_t)64 << 20)
/* A wait is cut into slices this long, so that a stop request (Ctrl-C in
 * --loop) is seen within about this long even in a long read. */
#define SLICE_NS CF_MSEC(100)

/* ---- the request and its result, as bytes ---------------------------------
 * The same bytes go to a thread, a worker process, or the serial loop, so
 * the request function reads nothing but them: a worker process does not
 * share our memory.  The URL follows the header. */

#define REQ_MAGIC 0x70666531u /* "pfe1" */

typedef struct req_head {
  uint32_t magic;
  uint32_t url_len;
  int64_t timeout_ns; /* each wait: connect, send, every read */
  uint64_t max_bytes; /* of the body */
} req_head;

/* What a request gives back: a response (status > 0) or only an error. */
typedef struct fetch_result {
  int32_t ok;     /* 1: a response with a 2xx or 3xx status */
  int32_t status; /* the HTTP status, 0 when there was no response */
  uint64_t bytes; /* body bytes read */
  int64_t ns;     /* how long the request took */
  char why[240];  /* on failure, what went wrong; "" when ok */
} fetch_result;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* cf_task_stop_requested(t), false without a task (--serial). */
static bool stop_requested(cf_task *t) {
  return t && cf_task_stop_requested(t);
}

/* Sets the failure text (printf-style) and returns false, so that the
 * request steps below read `return fail(r, "...")`. */
static bool fail(fetch_result *r, const char *fmt, ...) CF_PRINTF(2, 3);
static bool fail(fetch_result *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->why, sizeof r->why, fmt, ap);
  va_end(ap);
  r->ok = 0;
  return false;
}

/* ---- URLs -------------------------------------------------------------- */

typedef struct url {
  char host[MAX_HOST + 1]; /* without brackets for IPv6 */
  bool ipv6;               /* a [literal] */
  char port[6];            /* decimal, 1 to 65535 */
  unsigned port_n;
  const char *path; /* into the URL, with the query, without a fragment */
  size_t path_len;
  bool slash; /* the path lacks its leading '/' (it was empty) */
} url;

/* Parses http://host[:port][/path]: the host a name, an IPv4 address or an
 * [IPv6] literal.  False with r->why set ("bad URL: ...") on anything else.
 * s need not be NUL-terminated and may hold any bytes. */
static bool parse_url(const char *s, size_t len, url *u, fetch_result *r) {
  if (len > MAX_URL)
    return fail(r, "bad URL: longer than %d bytes", MAX_URL);
  /* Control bytes and spaces cannot go on the request line as they are
   * (a CR LF there would let a URL forge headers). */
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f)
      return fail(r, "bad URL: a space or control character at byte %zu",
                  i + 1);
  const char *sep = memmem(s, len, "://", 3);
  if (!sep)
    return fail(r, "bad URL: no scheme (it must start with http://)");
  size_t scheme_len = (size_t)(sep - s);
  if (scheme_len == 5 && strncasecmp(s, "https", 5) == 0)
    return fail(r, "bad URL: https is not supported (no TLS; use http://)");
  if (scheme_len != 4 || strncasecmp(s, "http", 4) != 0)
    return fail(r, "bad URL: unsupported scheme '%.*s' (only http://)",
                scheme_len > 16 ? 16 : (int)scheme_len, s);
  const char *p = sep + 3, *end = s + len;
  const char *auth_end = p;
  while (auth_end < end && *auth_end != '/' && *auth_end != '?' &&
         *auth_end != '#')
    auth_end++;
  if (memchr(p, '@', (size_t)(auth_end - p)))
    return fail(r, "bad URL: user names and passwords are not supported");
  const char *host = p, *host_end, *port = NULL;
  if (p < auth_end && *p == '[') {
    host = p + 1;
    host_end = memchr(host, ']', (size_t)(auth_end - host));
    if (!host_end)
      return fail(r, "bad URL: '[' without ']' around an IPv6 address");
    if (host_end + 1 < auth_end) {
      if (host_end[1] != ':')
        return fail(r, "bad URL: junk after the IPv6 address's ']'");
      port = host_end + 2;
    }
    u->ipv6 = true;
  } else {
    host_end = memchr(p, ':', (size_t)(auth_end - p));
    if (host_end)
      port = host_end + 1;
    else
      host_end = auth_end;
    u->ipv6 = false;
  }
  size_t host_len = (size_t)(host_end - host);
  if (host_len == 0)
    return fail(r, "bad URL: no host");
  if (host_len > MAX_HOST)
    return fail(r, "bad URL: host name longer than %d bytes", MAX_HOST);
  memcpy(u->host, host, host_len);
  u->host[host_len] = '\0';
  if (u->ipv6) {
    struct in6_addr a6;
    if (inet_pton(AF_INET6, u->host, &a6) != 1)
      return fail(r, "bad URL: '%s' is not an IPv6 address", u->host);
  } else {
    for (size_t i = 0; i < host_len; i++) {
      unsigned char c = (unsigned char)u->host[i];
      if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
          !(c >= '0' && c <= '9') && c != '-' && c != '.' && c != '_')
        return fail(r,
                    "bad URL: host '%.64s' has a byte 0x%02x that no host "
                    "name has",
                    u->host, c);
    }
  }
  u->port_n = 80;
  if (port) {
    size_t port_len = (size_t)(auth_end - port);
    uint64_t v;
    if (port_len == 0)
      return fail(r, "bad URL: ':' without a port number");
    if (numparse_u64(port, port_len, &v))
      return fail(r, "bad URL: port '%.*s' is not a number",
                  port_len > 16 ? 16 : (int)port_len, port);
    if (v < 1 || v > 65535)
      return fail(r, "bad URL: port %.*s is out of range (1 to 65535)",
                  port_len > 24 ? 24 : (int)port_len, port);
    u->port_n = (unsigned)v;
  }
  snprintf(u->port, sizeof u->port, "%u", u->port_n);
  /* The path with its query; a fragment is the client's own, never sent. */
  const char *path_end = memchr(auth_end, '#', (size_t)(end - auth_end));
  if (!path_end)
    path_end = end;
  /* "http://h" and "http://h?q" have the path "/" (before the query):
   * the request line adds it (u->slash). */
  u->path = auth_end;
  u->path_len = (size_t)(path_end - auth_end);
  u->slash = u->path_len == 0 || *u->path != '/';
  return true;
}

/* ---- the socket: every wait in slices, with the stop request between ---- */

/* Waits until fd is ready for `events`, at most timeout_ns.  0 when ready,
 * ETIMEDOUT, ECANCELED when a stop was requested, or errno.  What is ready
 * is taken before a stop request is looked at: a response that has arrived
 * is read, not thrown away (a stop ends only real waiting, within a slice
 * of SLICE_NS). */
static int wait_fd(cf_task *t, int fd, short events, int64_t timeout_ns) {
  int64_t deadline = now_ns() + timeout_ns;
  for (int ms = 0;; ms = -1) {
    int64_t left = deadline - now_ns();
    if (ms < 0) {
      if (left <= 0)
        return ETIMEDOUT;
      int64_t slice = left < SLICE_NS ? left : SLICE_NS;
      /* Rounded up: a poll of 0 ms for 0.4 ms left would spin. */
      ms = (int)((slice + 999999) / 1000000);
    }
    struct pollfd pfd = {.fd = fd, .events = events};
    int rc = poll(&pfd, 1, ms); /* first a look (0 ms), then slices */
    if (rc > 0)
      return 0; /* ready, or an error the next call will report */
    if (rc < 0 && errno != EINTR)
      return errno;
    if (stop_requested(t))
      return ECANCELED;
  }
}

/* The outcome of a step: true goes on; false with r->why set; *stopped is
 * set when the step ended because a stop was requested. */
typedef struct conn {
  cf_task *t;
  int fd;
  int64_t timeout_ns;
  fetch_result *r;
  bool stopped;
} conn;

static bool wait_failed(conn *c, int err, const char *doing) {
  if (err == ECANCELED) {
    c->stopped = true;
    return fail(c->r, "stopped while %s", doing);
  }
  if (err == ETIMEDOUT)
    return fail(c->r, "timed out after %.3g s %s", (double)c->timeout_ns / 1e9,
                doing);
  return fail(c->r, "%s: %s", doing, strerror(err));
}

/* Connects to one address without blocking past the timeout.  0, or the
 * errno of the failure (ETIMEDOUT, ECANCELED for a stop). */
static int connect_one(conn *c, const struct addrinfo *ai) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  ai->ai_protocol);
  if (fd < 0)
    return errno;
  int err = 0;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    err = errno;
    if (err == EINPROGRESS || err == EINTR) {
      err = wait_fd(c->t, fd, POLLOUT, c->timeout_ns);
      if (err == 0) {
        socklen_t sl = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0)
          err = errno;
      }
    }
  }
  if (err) {
    close(fd);
    return err;
  }
  c->fd = fd;
  return 0;
}

static bool open_connection(conn *c, const url *u) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV};
  if (u->ipv6) {
    hints.ai_family = AF_INET6;
    hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
  }
  struct addrinfo *res = NULL;
  /* getaddrinfo() has no timeout of its own: a resolver that never
   * answers holds the request for the resolver's own timeout (resolv.conf,
   * 5 s by 2 tries by default) whatever --timeout says. */
  int rc = getaddrinfo(u->host, u->port, &hints, &res);
  if (rc != 0) {
    if (rc == EAI_SYSTEM)
      return fail(c->r, "cannot resolve host '%s': %s", u->host,
                  strerror(errno));
    return fail(c->r, "cannot resolve host '%s': %s", u->host,
                gai_strerror(rc));
  }
  int err = EADDRNOTAVAIL;
  /* Each address in turn, as a browser would: the first that answers. */
  for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    err = connect_one(c, ai);
    if (err == 0 || err == ECANCELED)
      break;
  }
  freeaddrinfo(res);
  if (err == 0)
    return true;
  if (err == ECONNREFUSED)
    return fail(c->r, "connection refused by %s port %u", u->host, u->port_n);
  return wait_failed(c, err, "connecting");
}

static bool send_all(conn *c, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
      continue;
    }
    int err = n < 0 ? errno : EIO;
    if (err == EINTR)
      continue;
    if (err == EAGAIN || err == EWOULDBLOCK)
      err = wait_fd(c->t, c->fd, POLLOUT, c->timeout_ns);
    if (err)
      return wait_failed(c, err, "sending the request");
  }
  return true;
}

/* Reads what is there, waiting at most the timeout: the byte count, 0 at
 * the end of the stream, -1 with r->why set. */
static ssize_t recv_some(conn *c, char *buf, size_t cap, const char *doing) {
  for (;;) {
    ssize_t n = recv(c->fd, buf, cap, 0);
    if (n >= 0)
      return n;
    int err = errno;
    if (err == EINTR)
      continue;
    if (err == EAGAIN || err == EWOULDBLOCK)
      err = wait_fd(c->t, c->fd, POLLIN, c->timeout_ns);
    if (err) {
      if (err == ECONNRESET)
        fail(c->r, "connection reset by the server while %s", doing);
      else
        wait_failed(c, err, doing);
      return -1;
    }
  }
}

/* ---- the response ------------------------------------------------------- */

/* The status line: "HTTP/d.d SSS[ reason]".  False when it is not one. */
static bool parse_status(const char *line, size_t len, int *status) {
  if (len < 12 || memcmp(line, "HTTP/", 5) != 0 || line[6] != '.' ||
      line[5] < '0' || line[5] > '9' || line[7] < '0' || line[7] > '9' ||
      line[8] != ' ')
    return false;
  int v = 0;
  for (int i = 9; i < 12; i++) {
    if (line[i] < '0' || line[i] > '9')
      return false;
    v = v * 10 + (line[i] - '0');
  }
  if (len > 12 && line[12] != ' ')
    return false;
  if (v < 100)
    return false;
  *status = v;
  return true;
}

/* Finds Content-Length among the header lines (hdr[0..len), after the
 * status line).  0 none, 1 found (*out), -1 present but not a number or
 * given twice with different values. */
static int content_length(const char *hdr, size_t len, uint64_t *out) {
  int found = 0;
  const char *p = hdr, *end = hdr + len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol)
      eol = end;
    const char *le = eol;
    if (le > p && le[-1] == '\r')
      le--;
    static const char name[] = "content-length:";
    size_t nl = sizeof name - 1;
    if ((size_t)(le - p) >= nl && strncasecmp(p, name, nl) == 0) {
      const char *v = p + nl;
      while (v < le && (*v == ' ' || *v == '\t'))
        v++;
      const char *ve = le;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      uint64_t n;
      if (numparse_u64(v, (size_t)(ve - v), &n) || (found && n != *out))
        return -1;
      *out = n;
      found = 1;
    }
    p = eol + 1;
  }
  return found;
}

/* Reads the status line and headers, then counts the body until the end of
 * the stream or Content-Length. */
static bool read_response(conn *c, uint64_t max_bytes) {
  fetch_result *r = c->r;
  char *hdr = malloc(MAX_HEADERS);
  if (!hdr)
    return fail(r, "out of memory");
  size_t have = 0, hdr_end = 0, line_end = 0;
  bool ok = false;
  for (;;) {
    ssize_t n = recv_some(c, hdr + have, MAX_HEADERS - have,
                          "waiting for the response");
    if (n < 0)
      goto out;
    if (n == 0) {
      if (have == 0)
        fail(r, "malformed response: the server closed the connection "
                "without a reply");
      else
        fail(r, "malformed response: the connection closed inside the "
                "headers");
      goto out;
    }
    size_t from = have >= 3 ? have - 3 : 0;
    have += (size_t)n;
    /* The end of the headers: a blank line, LF after LF with at most a CR
     * between (CR LF CR LF, LF LF, and the mixed LF CR LF of lenient
     * servers). */
    for (size_t i = from; i < have && !hdr_end; i++) {
      if (hdr[i] != '\n')
        continue;
      if (!line_end)
        line_end = i;
      if ((i >= 1 && hdr[i - 1] == '\n') ||
          (i >= 2 && hdr[i - 1] == '\r' && hdr[i - 2] == '\n'))
        hdr_end = i + 1;
    }
    if (!line_end && have >= 12 && memcmp(hdr, "HTTP/", 5) != 0) {
      fail(r, "malformed response: it does not start with HTTP/");
      goto out;
    }
    if (hdr_end)
      break;
    if (have == MAX_HEADERS) {
      fail(r, "malformed response: headers longer than %d bytes", MAX_HEADERS);
      goto out;
    }
  }
  size_t sl = line_end;
  if (sl > 0 && hdr[sl - 1] == '\r')
    sl--;
  int status;
  if (!parse_status(hdr, sl, &status)) {
    fail(r, "malformed response: bad status line");
    goto out;
  }
  r->status = status;
  uint64_t clen = 0;
  int has_len =
      content_length(hdr + line_end + 1, hdr_end - line_end - 1, &clen);
  if (has_len < 0) {
    fail(r, "malformed response: bad Content-Length");
    goto out;
  }
  if (has_len && clen > max_bytes) {
    fail(r,
         "response too large: Content-Length %" PRIu64
         " is over --max-bytes %" PRIu64,
         clen, max_bytes);
    goto out;
  }
  /* What came with the headers is the body's start; then read on, into
   * the same buffer, only counting. */
  uint64_t body = have - hdr_end;
  for (;;) {
    if (body > max_bytes) {
      fail(r, "response too large: more than --max-bytes %" PRIu64 " bytes",
           max_bytes);
      goto out;
    }
    if (has_len && body >= clen)
      break;
    ssize_t n = recv_some(c, hdr, MAX_HEADERS, "reading the body");
    if (n < 0)
      goto out;
    if (n == 0)
      break;
    body += (uint64_t)n;
  }
  if (has_len && body != clen) {
    fail(r,
         "malformed response: %" PRIu64
         " body bytes for Content-Length %" PRIu64,
         body, clen);
    goto out;
  }
  r->bytes = body;
  ok = true;
out:
  free(hdr);
  return ok;
}

/* One request, from its bytes, into *r.  Returns false only when it ended
 * because a stop was requested. */
static bool fetch(cf_task *t, const req_head *h, const char *u_str,
                  fetch_result *r) {
  int64_t start = now_ns();
  memset(r, 0, sizeof *r);
  url u;
  conn c = {.t = t, .fd = -1, .timeout_ns = h->timeout_ns, .r = r};
  if (parse_url(u_str, h->url_len, &u, r) && open_connection(&c, &u)) {
    /* "Host" carries the port unless it is 80, and brackets for IPv6. */
    size_t cap = u.path_len + MAX_HOST + 256;
    char *req = malloc(cap);
    if (!req) {
      fail(r, "out of memory");
    } else {
      int n = snprintf(req, cap,
                       "GET %s%.*s HTTP/1.0\r\nHost: %s%s%s%s%s\r\n"
                       "User-Agent: pfetch/%s\r\nConnection: close\r\n\r\n",
                       u.slash ? "/" : "", (int)u.path_len, u.path,
                       u.ipv6 ? "[" : "", u.host, u.ipv6 ? "]" : "",
                       u.port_n == 80 ? "" : ":", u.port_n == 80 ? "" : u.port,
                       cf_version());
      if (n > 0 && (size_t)n < cap && send_all(&c, req, (size_t)n) &&
          read_response(&c, h->max_bytes)) {
        if (r->status >= 200 && r->status < 400)
          r->ok = 1;
        else
          fail(r, "HTTP status %d, %" PRIu64 " bytes", (int)r->status,
               r->bytes);
      } else if (n <= 0 || (size_t)n >= cap) {
        fail(r, "the request does not fit its buffer");
      }
      free(req);
    }
  }
  if (c.fd >= 0)
    close(c.fd);
  r->ns = now_ns() - start;
  return !c.stopped;
}

/* The task: a request's bytes in, a fetch_result out.  A request stopped
 * on request (Ctrl-C in --loop) returns CF_ECANCELLED, so that its future
 * ends CANCELLED. */
static int fetch_task(cf_task *t, const void *in, size_t len) {
  req_head h;
  if (len < sizeof h)
    return cf_task_fail(t, EINVAL, "request of %zu bytes is truncated", len);
  memcpy(&h, in, sizeof h);
  if (h.magic != REQ_MAGIC || h.url_len != len - sizeof h)
    return cf_task_fail(t, EINVAL, "request bytes are not a pfetch request");
  fetch_result *r = cf_task_return_buffer(t, sizeof *r);
  if (!r)
    return cf_task_fail(t, ENOMEM, "no memory for the result");
  if (!fetch(t, &h, (const char *)in + sizeof h, r))
    return CF_ECANCELLED;
  return 0;
}

/* ---- the run ------------------------------------------------------------ */

typedef enum mode { THREADS, PROCESSES, SERIAL, LOOP } mode;
static const char *const mode_names[] = {"threads", "processes", "serial",
                                         "loop"};

typedef struct item {
  char *url;
  size_t len;
  fetch_result res;
  bool done; /* res is filled (a result, or why it has none) */
} item;

typedef struct run {
  mode mode;
  bool quiet;
  uint64_t jobs;
  int64_t timeout_ns;
  uint64_t max_bytes;
  item *items;
  size_t n, cap;
  int stop_signal; /* --loop: the signal that stopped the run, or 0 */
  bool output_failed;
} run;

/* The request bytes of item i, malloc'ed; NULL when out of memory. */
static void *encode(const run *r, size_t i, size_t *len) {
  const item *it = &r->items[i];
  req_head h = {.magic = REQ_MAGIC,
                .url_len = (uint32_t)it->len,
                .timeout_ns = r->timeout_ns,
                .max_bytes = r->max_bytes};
  unsigned char *b = malloc(sizeof h + it->len);
  if (!b)
    return NULL;
  memcpy(b, &h, sizeof h);
  memcpy(b + sizeof h, it->url, it->len);
  *len = sizeof h + it->len;
  return b;
}

/* A future's outcome into the item: the task's result, or why there is
 * none (cancelled, a worker died, ...). */
static void take_result(item *it, cf_future *f) {
  const void *data;
  size_t len;
  int code;
  const char *msg;
  int rc = cf_future_result(f, CF_FOREVER, &data, &len);
  if (rc == CF_OK && len == sizeof it->res) {
    memcpy(&it->res, data, sizeof it->res);
  } else {
    memset(&it->res, 0, sizeof it->res);
    if (rc == CF_OK)
      snprintf(it->res.why, sizeof it->res.why,
               "the task returned %zu bytes, not a result", len);
    else if (rc == CF_ECANCELLED)
      snprintf(it->res.why, sizeof it->res.why, "cancelled");
    else if (cf_future_error(f, 0, &code, &msg) != CF_OK && msg)
      snprintf(it->res.why, sizeof it->res.why, "%s: %s", cf_strerror(rc), msg);
    else
      snprintf(it->res.why, sizeof it->res.why, "%s", cf_strerror(rc));
  }
  it->done = true;
}

/* Writes s[0..len) with control bytes, spaces, backslashes and non-ASCII
 * bytes as \xHH, so a URL read from anywhere is one line that cannot drive
 * the terminal; cut after 200 bytes. */
static void put_quoted(FILE *to, const char *s, size_t len) {
  size_t n = len > 200 ? 200 : len;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c > 0x20 && c < 0x7f && c != '\\')
      fputc(c, to);
    else
      fprintf(to, "\\x%02x", c);
  }
  if (n < len)
    fprintf(to, "...(%zu bytes)", len);
}

/* One item's line; false (reported once) when the output failed. */
static bool print_item(run *r, const item *it) {
  const fetch_result *res = &it->res;
  if (r->output_failed)
    return false;
  if (!(r->quiet && res->ok)) {
    double ms = (double)res->ns / 1e6;
    fputs(res->ok ? "ok     " : "FAILED ", stdout);
    put_quoted(stdout, it->url, it->len);
    if (res->ok)
      printf(" %d %" PRIu64 " bytes %.1f ms\n", (int)res->status, res->bytes,
             ms);
    else if (res->ns > 0)
      printf(": %s (%.1f ms)\n", res->why, ms);
    else /* it never ran: no time to show */
      printf(": %s\n", res->why);
  }
  if (ferror(stdout)) {
    fprintf(stderr, "pfetch: writing the output: %s\n", strerror(errno));
    r->output_failed = true;
    return false;
  }
  return true;
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: pfetch [OPTIONS] URL... | -\n"
          "Fetches each URL (http://host[:port]/path, HTTP/1.0, no TLS) and "
          "prints its\n"
          "status, body size and time, in the order given.  '-' reads one URL "
          "per line\nfrom standard input.\n\n"
          "  -j, --jobs N        N requests at once (1 to 1024, default 8)\n"
          "      --processes     run the requests on a process pool\n"
          "      --serial        one after the other, no executor\n"
          "      --loop          a thread pool and a completion queue in an "
          "epoll loop\n"
          "                      (progress on a terminal; Ctrl-C stops it)\n"
          "  -t, --timeout S     seconds each connect or read may wait "
          "(default 10)\n"
          "      --max-bytes N   largest body accepted (default 67108864)\n"
          "  -q, --quiet         print only failures and the total\n"
          "  -h, --help          show this help\n"
          "  -V, --version       show the version\n\n"
          "Exit status: 0 every request got a 2xx or 3xx status, 1 some did "
          "not,\n2 bad usage, 128+N stopped by signal N (--loop).\n");
}

static void bad_value(const char *opt, const char *arg, const char *why) {
  fprintf(stderr, "pfetch: %s '", opt);
  numparse_quote(stderr, arg, strlen(arg));
  fprintf(stderr, "': %s\n", why);
}

/* Decimal seconds ("10", "0.5", "2.25"), at least 1 ms, at most a day. */
static bool parse_seconds(const char *arg, int64_t *out) {
  const char *dot = strchr(arg, '.');
  size_t il = dot ? (size_t)(dot - arg) : strlen(arg);
  uint64_t whole = 0, frac = 0;
  const char *why = NULL;
  if (il == 0 && !dot)
    why = "empty";
  else if (il > 0 && numparse_u64(arg, il, &whole))
    why = "not a number of seconds (such as 10 or 0.5)";
  else if (dot) {
    size_t fl = strlen(dot + 1);
    if (fl == 0 || (il == 0 && fl == 0) || fl > 9 ||
        numparse_u64(dot + 1, fl, &frac))
      why = "not a number of seconds (such as 10 or 0.5; at most 9 decimals)";
    else
      for (size_t i = fl; i < 9; i++)
        frac *= 10;
  }
  if (!why && whole > 86400)
    why = "more than a day (86400 s)";
  if (!why && whole * 1000000000 + frac < 1000000)
    why = "less than 1 ms";
  if (why) {
    bad_value("--timeout", arg, why);
    return false;
  }
  *out = (int64_t)(whole * 1000000000 + frac);
  return true;
}

#define OPT_PROCESSES 256
#define OPT_SERIAL 257
#define OPT_LOOP 258
#define OPT_MAX_BYTES 259
#define RUN_ON (-1)

static int parse_options(run *r, int argc, char **argv) {
  static const struct option longopts[] = {
      {"jobs", required_argument, NULL, 'j'},
      {"processes", no_argument, NULL, OPT_PROCESSES},
      {"serial", no_argument, NULL, OPT_SERIAL},
      {"loop", no_argument, NULL, OPT_LOOP},
      {"timeout", required_argument, NULL, 't'},
      {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  int c;
  bool mode_set = false;
  while ((c = getopt_long(argc, argv, "j:t:qhV", longopts, NULL)) != -1) {
    const char *why;
    switch (c) {
    case 'j':
      why = numparse_u64(optarg, strlen(optarg), &r->jobs);
      if (!why && (r->jobs < 1 || r->jobs > MAX_JOBS))
        why = "must be from 1 to 1024";
      if (why) {
        bad_value("--jobs", optarg, why);
        return EXIT_USAGE;
      }
      break;
    case OPT_PROCESSES:
    case OPT_SERIAL:
    case OPT_LOOP: {
      mode m = c == OPT_PROCESSES ? PROCESSES : c == OPT_SERIAL ? SERIAL : LOOP;
      if (mode_set && r->mode != m) {
        fprintf(stderr, "pfetch: --%s and --%s: choose one way to run\n",
                mode_names[r->mode], mode_names[m]);
        return EXIT_USAGE;
      }
      r->mode = m;
      mode_set = true;
      break;
    }
    case 't':
      if (!parse_seconds(optarg, &r->timeout_ns))
        return EXIT_USAGE;
      break;
    case OPT_MAX_BYTES:
      why = numparse_u64(optarg, strlen(optarg), &r->max_bytes);
      if (why) {
        bad_value("--max-bytes", optarg, why);
        return EXIT_USAGE;
      }
      break;
    case 'q':
      r->quiet = true;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case 'V':
      printf("pfetch (cfutures) %s\n", cf_version());
      return 0;
    default:
      usage(stderr);
      return EXIT_USAGE;
    }
  }
  return RUN_ON;
}

/* Appends a copy of s[0..len); false when out of memory. */
static bool push_url(run *r, const char *s, size_t len) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 32;
    item *ni = cap > SIZE_MAX / sizeof *ni
                   ? NULL
                   : realloc(r->items, cap * sizeof *ni);
    if (!ni)
      return false;
    r->items = ni;
    r->cap = cap;
  }
  /* One byte more than a URL may have is enough to say it is too long:
   * the request bytes never carry more. */
  size_t keep = len > MAX_URL + 1 ? MAX_URL + 1 : len;
  char *copy = malloc(keep + 1);
  if (!copy)
    return false;
  memcpy(copy, s, keep);
  copy[keep] = '\0';
  r->items[r->n++] = (item){.url = copy, .len = keep};
  return true;
}

/* The URLs: the operands, or standard input's lines for a lone '-'
 * (blank lines skipped, CR LF accepted).  RUN_ON, or the exit status. */
static int read_urls(run *r, int argc, char **argv) {
  if (optind == argc) {
    fprintf(stderr, "pfetch: no URL given (see pfetch --help)\n");
    return EXIT_USAGE;
  }
  if (argc - optind == 1 && strcmp(argv[optind], "-") == 0) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
      size_t n = (size_t)len;
      if (n > 0 && line[n - 1] == '\n')
        n--;
      if (n > 0 && line[n - 1] == '\r')
        n--;
      if (n > 0 && !push_url(r, line, n)) {
        free(line);
        fprintf(stderr, "pfetch: out of memory\n");
        return 1;
      }
    }
    free(line);
    /* (getline() that fails for want of memory may not set the error
     * flag: not at the end means it failed.) */
    if (ferror(stdin) || !feof(stdin)) {
      fprintf(stderr, "pfetch: reading standard input failed\n");
      return 1;
    }
    if (r->n == 0) {
      fprintf(stderr, "pfetch: no URL on standard input\n");
      return EXIT_USAGE;
    }
    return RUN_ON;
  }
  for (int i = optind; i < argc; i++)
    if (!push_url(r, argv[i], strlen(argv[i]))) {
      fprintf(stderr, "pfetch: out of memory\n");
      return 1;
    }
  return RUN_ON;
}

/* --serial: each request on this thread, printed as it ends. */
static int run_serial(run *r) {
  for (size_t i = 0; i < r->n; i++) {
    size_t len;
    void *b = encode(r, i, &len);
    if (!b) {
      fprintf(stderr, "pfetch: out of memory\n");
      return 1;
    }
    fetch(NULL, b, (const char *)b + sizeof(req_head), &r->items[i].res);
    free(b);
    r->items[i].done = true;
    if (!print_item(r, &r->items[i]))
      return 1;
  }
  return 0;
}

/* Every request to the executor, then the lines in input order, each as
 * soon as it and all before it are done.  On a failed submit the rest are
 * not sent and fail with its reason. */
static int run_pool(run *r, cf_executor *ex) {
  cf_future **fs = calloc(r->n, sizeof *fs);
  if (!fs) {
    fprintf(stderr, "pfetch: out of memory\n");
    return 1;
  }
  int status = 0;
  for (size_t i = 0; i < r->n; i++) {
    size_t len;
    void *b = encode(r, i, &len);
    int rc = b ? cf_submit_owned(ex, fetch_task, b, len, free, &fs[i])
               : CF_ENOMEM;
    if (rc != CF_OK) {
      free(b);
      item *it = &r->items[i];
      snprintf(it->res.why, sizeof it->res.why, "not submitted: %s",
               cf_strerror(rc));
      it->done = true;
    }
  }
  for (size_t i = 0; i < r->n; i++) {
    if (fs[i])
      take_result(&r->items[i], fs[i]);
    if (!print_item(r, &r->items[i])) {
      /* Nobody will read the rest: stop it. */
      cf_shutdown(ex, false, true);
      for (size_t j = i; j < r->n; j++)
        if (fs[j])
          cf_future_request_stop(fs[j]);
      status = 1;
      break;
    }
  }
  for (size_t i = 0; i < r->n; i++)
    cf_future_release(fs[i]);
  free(fs);
  return status;
}

/* ---- --loop: a completion queue and a signalfd in one epoll loop ------- */

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void progress(const run *r, size_t done, bool tty) {
  if (!tty || r->quiet)
    return;
  /* \r and "erase to the end of the line": one line, redrawn. */
  fprintf(stderr, "\rpfetch: %zu/%zu done\033[K", done, r->n);
  fflush(stderr);
}

/* The futures go into a completion queue; the main thread sleeps in
 * epoll_wait() on the queue's descriptor and a signalfd, and is woken by
 * either: a done future is taken at once (no thread blocks in a wait), a
 * signal cancels what is queued and asks the running requests to stop
 * (they look every 100 ms), and the loop goes on until every future has
 * come back.  The lines are printed at the end, in input order. */
static int run_loop(run *r, cf_executor *ex, int sfd) {
  cf_completion_queue *q = NULL;
  cf_future **fs = calloc(r->n, sizeof *fs);
  int ep = -1, status = 1;
  size_t in_queue = 0, popped = 0;
  bool tty = isatty(STDERR_FILENO);
  if (!fs) {
    fprintf(stderr, "pfetch: out of memory\n");
    goto out;
  }
  int rc = cf_completion_queue_create(&q);
  if (rc != CF_OK) {
    fprintf(stderr, "pfetch: cannot create a completion queue: %s\n",
            cf_strerror(rc));
    goto out;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
  struct epoll_event sev = {.events = EPOLLIN, .data.u32 = 1};
  if (ep < 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, cf_completion_queue_fd(q), &ev) != 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev) != 0) {
    fprintf(stderr, "pfetch: epoll: %s\n", strerror(errno));
    goto out;
  }
  for (size_t i = 0; i < r->n; i++) {
    size_t len;
    void *b = encode(r, i, &len);
    rc = b ? cf_submit_owned(ex, fetch_task, b, len, free, &fs[i]) : CF_ENOMEM;
    if (rc == CF_OK) {
      rc = cf_completion_queue_add(q, fs[i], (void *)(uintptr_t)i);
      if (rc == CF_OK) {
        in_queue++;
        continue;
      }
      /* Not in the queue: it would never be popped; take it back. */
      cf_future_request_stop(fs[i]);
      cf_future_wait(fs[i], CF_FOREVER);
    } else {
      free(b);
    }
    item *it = &r->items[i];
    snprintf(it->res.why, sizeof it->res.why, "not submitted: %s",
             cf_strerror(rc));
    it->done = true;
  }
  progress(r, 0, tty);
  while (popped < in_queue) {
    struct epoll_event evs[2];
    int n = epoll_wait(ep, evs, 2, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      fprintf(stderr, "pfetch: epoll_wait: %s\n", strerror(errno));
      goto out;
    }
    for (int k = 0; k < n; k++) {
      if (evs[k].data.u32 == 1) {
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si)
          continue;
        if (!r->stop_signal) {
          r->stop_signal = (int)si.ssi_signo;
          /* What has not started is cancelled (its futures come back
           * cancelled); what runs is asked to stop. */
          cf_shutdown(ex, false, true);
          for (size_t i = 0; i < r->n; i++)
            if (fs[i] && !cf_future_done(fs[i]))
              cf_future_request_stop(fs[i]);
        }
        continue;
      }
      cf_future *f;
      void *tag;
      while (cf_completion_queue_pop(q, &f, &tag) == CF_OK) {
        item *it = &r->items[(uintptr_t)tag];
        take_result(it, f);
        if (cf_future_cancelled(f))
          snprintf(it->res.why, sizeof it->res.why, "%s",
                   r->stop_signal ? "stopped: interrupted" : "cancelled");
        cf_future_release(f);
        progress(r, ++popped, tty);
      }
    }
  }
  if (tty && !r->quiet)
    fputs("\r\033[K", stderr);
  status = 0;
  for (size_t i = 0; i < r->n; i++)
    if (!print_item(r, &r->items[i])) {
      status = 1;
      break;
    }
out:
  if (ep >= 0)
    close(ep);
  if (status && fs)
    for (size_t i = 0; i < r->n; i++)
      if (fs[i])
        cf_future_request_stop(fs[i]);
  cf_completion_queue_destroy(q);
  if (fs)
    for (size_t i = 0; i < r->n; i++)
      cf_future_release(fs[i]);
  free(fs);
  return status;
}

/* ---- main ---------------------------------------------------------------- */

static cf_executor *start_pool(const run *r) {
  cf_executor *ex = NULL;
  int rc;
  /* Never more workers than requests: each would only idle. */
  int jobs = (int)(r->jobs < r->n ? r->jobs : r->n);
  if (r->mode == PROCESSES) {
    cf_process_pool_options o;
    cf_process_pool_options_init(&o);
    o.max_workers = jobs;
    rc = cf_process_pool_create(&o, &ex);
  } else {
    cf_thread_pool_options o;
    cf_thread_pool_options_init(&o);
    o.max_workers = jobs;
    o.thread_name_prefix = "pfetch";
    rc = cf_thread_pool_create(&o, &ex);
  }
  if (rc != CF_OK) {
    const char *why = cf_last_error_message();
    fprintf(stderr, "pfetch: cannot start workers: %s\n",
            *why ? why : cf_strerror(rc));
    return NULL;
  }
  return ex;
}

int main(int argc, char **argv) {
  run r = {.mode = THREADS,
           .jobs = DEFAULT_JOBS,
           .timeout_ns = DEFAULT_TIMEOUT_NS,
           .max_bytes = DEFAULT_MAX_BYTES};
  int status = parse_options(&r, argc, argv);
  if (status == RUN_ON)
    status = read_urls(&r, argc, argv);
  if (status != RUN_ON)
    goto out;
  int sfd = -1;
  if (r.mode == LOOP) {
    /* Blocked before the pool starts, so its threads inherit the mask and
     * the signals wait in the signalfd for the loop, not in a handler. */
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
      sigaddset(&set, stop_signals[i]);
    if ((errno = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0 ||
        (sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
      fprintf(stderr, "pfetch: signalfd: %s\n", strerror(errno));
      status = 1;
      goto out;
    }
  }
  int64_t start = now_ns();
  cf_executor *ex = NULL;
  if (r.mode != SERIAL && !(ex = start_pool(&r))) {
    status = 1;
    goto out;
  }
  if (r.mode == SERIAL)
    status = run_serial(&r);
  else if (r.mode == LOOP)
    status = run_loop(&r, ex, sfd);
  else
    status = run_pool(&r, ex);
  cf_executor_release(ex);
  double ms = (double)(now_ns() - start) / 1e6;
  if (sfd >= 0)
    close(sfd);
  size_t ok = 0;
  for (size_t i = 0; i < r.n; i++)
    ok += r.items[i].res.ok != 0;
  if (!r.output_failed) {
    printf("%zu requests, %zu ok, %zu failed, %.1f ms (%s", r.n, ok, r.n - ok,
           ms, mode_names[r.mode]);
    if (r.mode != SERIAL)
      printf(", %d workers", (int)(r.jobs < r.n ? r.jobs : r.n));
    if (r.stop_signal)
      printf("; stopped by %s", strsignal(r.stop_signal));
    printf(")\n");
    if (fflush(stdout) != 0 || ferror(stdout)) {
      fprintf(stderr, "pfetch: writing the output: %s\n", strerror(errno));
      r.output_failed = true;
    }
  }
  if (r.stop_signal)
    status = 128 + r.stop_signal;
  else if (status || r.output_failed || ok < r.n)
    status = 1;
out:
  for (size_t i = 0; i < r.n; i++)
    free(r.items[i].url);
  free(r.items);
  return status;
}
