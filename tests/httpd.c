/*
 * httpd: a small HTTP/1.0 server for pfetch's tests and benchmark.
 *
 *   httpd [--delay-ms N] [--port-file FILE] [--max-seconds S] [--log FILE]
 *
 * Listens on 127.0.0.1 only, on a port the kernel picks, and writes that
 * port (a line) to FILE, atomically (a temporary, then rename), or to
 * standard output.  Each connection has its own thread, so 20 requests of
 * 100 ms at once take about 100 ms.  It exits by itself after S seconds
 * (default 120), so a test that dies cannot leave it behind, and on
 * SIGTERM, SIGINT or SIGHUP.  --log appends "start PATH" when a request
 * has been read and "done PATH" when its response has been sent, so a test
 * can wait for a state instead of sleeping.
 *
 * Paths (after the --delay-ms wait, except /delay and /hang):
 *   /delay/MS   200 after MS ms (at most 60000) instead of the delay
 *   /bytes/N    200 with N bytes of body (Content-Length N)
 *   /nolength/N 200 with N bytes of body and no Content-Length
 *   /short/N    Content-Length N, but only half the bytes, then close
 *   /status/C   status C (100 to 999)
 *   /hang       reads until the client closes; never answers
 *   /garbage    bytes that are not an HTTP response, then close
 *   /lfcrlf     a valid answer whose headers end with LF CR LF (lenient)
 *   anything    200 with the body "hello, pfetch\n" (14 bytes)
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY "hello, pfetch\n"
/* Connections served at once; more are closed at once (the client sees a
 * reset), so a flood cannot exhaust threads. */
#define MAX_CONNS 1024

static long delay_ms = 0;
static atomic_int conns;
static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_line(const char *what, const char *path) {
  if (!log_file)
    return;
  pthread_mutex_lock(&log_lock);
  fprintf(log_file, "%s %s\n", what, path);
  fflush(log_file);
  pthread_mutex_unlock(&log_lock);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static bool send_all(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    len -= (size_t)n;
  }
  return true;
}

/* N bytes of 'x', 64 KiB at a time; stops when the client goes away. */
static void send_bytes(int fd, uint64_t n) {
  static char chunk[65536];
  if (!chunk[0])
    memset(chunk, 'x', sizeof chunk);
  while (n > 0) {
    size_t k = n < sizeof chunk ? (size_t)n : sizeof chunk;
    if (!send_all(fd, chunk, k))
      return;
    n -= k;
  }
}

static void respond(int fd, int status, uint64_t len, bool with_length) {
  char head[256];
  int n;
  if (with_length)
    n = snprintf(head, sizeof head,
                 "HTTP/1.0 %d Test\r\nServer: cfutures-httpd\r\n"
                 "Content-Length: %llu\r\nConnection: close\r\n\r\n",
                 status, (unsigned long long)len);
  else
    n = snprintf(head, sizeof head,
                 "HTTP/1.0 %d Test\r\nServer: cfutures-httpd\r\n"
                 "Connection: close\r\n\r\n",
                 status);
  send_all(fd, head, (size_t)n);
}

/* A number after a path prefix: the digits, at most 18 of them; -1 when
 * there are none or something else follows. */
static long long path_number(const char *p) {
  long long v = 0;
  int digits = 0;
  for (; *p >= '0' && *p <= '9' && digits < 18; p++, digits++)
    v = v * 10 + (*p - '0');
  return digits && (*p == '\0' || *p == '?') ? v : -1;
}

static void route(int fd, const char *path, char *req, size_t cap);

static void serve(int fd) {
  char req[8192];
  size_t have = 0;
  /* The request: up to its blank line (a client that sends nothing is
   * dropped after 30 s). */
  struct timeval tv = {30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (;;) {
    ssize_t n = recv(fd, req + have, sizeof req - 1 - have, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    have += (size_t)n;
    req[have] = '\0';
    if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
      break;
    if (have == sizeof req - 1) {
      respond(fd, 431, 0, true);
      return;
    }
  }
  char path[4096];
  if (sscanf(req, "GET %4095s HTTP/", path) != 1) {
    respond(fd, 400, 0, true);
    return;
  }
  log_line("start", path);
  route(fd, path, req, sizeof req);
  log_line("done", path);
}

static void route(int fd, const char *path, char *req, size_t cap) {
  long long v;
  if (strcmp(path, "/hang") == 0) {
    /* Reads (and drops) until the client closes. */
    struct timeval none = {0, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    for (;;) {
      ssize_t n = recv(fd, req, cap, 0);
      if (n == 0 || (n < 0 && errno != EINTR))
        return;
    }
  }
  if (strncmp(path, "/delay/", 7) == 0 && (v = path_number(path + 7)) >= 0) {
    sleep_ms(v > 60000 ? 60000 : (long)v);
    respond(fd, 200, sizeof BODY - 1, true);
    send_all(fd, BODY, sizeof BODY - 1);
    return;
  }
  sleep_ms(delay_ms);
  if (strcmp(path, "/lfcrlf") == 0) {
    static const char mixed[] = "HTTP/1.0 200 OK\nContent-Length: 3\n\r\nabc";
    send_all(fd, mixed, sizeof mixed - 1);
  } else if (strcmp(path, "/garbage") == 0) {
    static const char junk[] = "THIS IS NOT HTTP\r\n\r\n\x01\x02\x03";
    send_all(fd, junk, sizeof junk - 1);
  } else if (strncmp(path, "/bytes/", 7) == 0 &&
             (v = path_number(path + 7)) >= 0) {
    respond(fd, 200, (uint64_t)v, true);
    send_bytes(fd, (uint64_t)v);
  } else if (strncmp(path, "/nolength/", 10) == 0 &&
             (v = path_number(path + 10)) >= 0) {
    respond(fd, 200, 0, false);
    send_bytes(fd, (uint64_t)v);
  } else if (strncmp(path, "/short/", 7) == 0 &&
             (v = path_number(path + 7)) >= 0) {
    respond(fd, 200, (uint64_t)v, true);
    send_bytes(fd, (uint64_t)v / 2);
  } else if (strncmp(path, "/status/", 8) == 0 &&
             (v = path_number(path + 8)) >= 100 && v <= 999) {
    char body[32];
    int n = snprintf(body, sizeof body, "status %lld\n", v);
    respond(fd, (int)v, (uint64_t)n, true);
    send_all(fd, body, (size_t)n);
  } else {
    respond(fd, 200, sizeof BODY - 1, true);
    send_all(fd, BODY, sizeof BODY - 1);
  }
}

static void *conn_thread(void *arg) {
  int fd = (int)(intptr_t)arg;
  serve(fd);
  /* Half-close first, so the client reads the whole response before the
   * connection ends (a close with unread request bytes would reset it). */
  shutdown(fd, SHUT_WR);
  close(fd);
  atomic_fetch_sub(&conns, 1);
  return NULL;
}

/* A whole decimal number in [0, max]; false otherwise. */
static bool parse_num(const char *s, long max, long *out) {
  long v = 0;
  if (!*s)
    return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > (max - (*s - '0')) / 10)
      return false;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  return true;
}

static void usage(void) {
  fprintf(stderr, "usage: httpd [--delay-ms N] [--port-file FILE] "
                  "[--max-seconds S] [--log FILE]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *port_file = NULL;
  long max_seconds = 120;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc)
      usage();
    if (strcmp(argv[i], "--delay-ms") == 0) {
      if (!parse_num(argv[++i], 600000, &delay_ms))
        usage();
    } else if (strcmp(argv[i], "--max-seconds") == 0) {
      if (!parse_num(argv[++i], 86400, &max_seconds) || max_seconds == 0)
        usage();
    } else if (strcmp(argv[i], "--log") == 0) {
      if (!(log_file = fopen(argv[++i], "a"))) {
        perror("httpd: --log");
        return 1;
      }
    } else if (strcmp(argv[i], "--port-file") == 0) {
      port_file = argv[++i];
    } else {
      usage();
    }
  }
  /* The stop signals wait in a signalfd, blocked in every thread. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
    return 1;
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sfd < 0 || ls < 0) {
    perror("httpd: socket");
    return 1;
  }
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1024) != 0 ||
      getsockname(ls, (struct sockaddr *)&a, &al) != 0) {
    perror("httpd: bind");
    return 1;
  }
  unsigned port = ntohs(a.sin_port);
  if (port_file) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", port_file, (long)getpid()) >=
        (int)sizeof tmp) {
      fprintf(stderr, "httpd: port file name too long\n");
      return 1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 ||
        rename(tmp, port_file) != 0) {
      perror("httpd: port file");
      return 1;
    }
  } else {
    printf("%u\n", port);
    fflush(stdout);
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    long left_ms = max_seconds * 1000 - ((now.tv_sec - t0.tv_sec) * 1000 +
                                         (now.tv_nsec - t0.tv_nsec) / 1000000);
    if (left_ms <= 0)
      break;
    struct pollfd p[2] = {{.fd = ls, .events = POLLIN},
                          {.fd = sfd, .events = POLLIN}};
    int rc = poll(p, 2, (int)(left_ms > 1000 ? 1000 : left_ms));
    if (rc < 0 && errno != EINTR) {
      perror("httpd: poll");
      return 1;
    }
    if (rc <= 0)
      continue;
    if (p[1].revents)
      break;
    if (!p[0].revents)
      continue;
    int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    pthread_t th;
    if (atomic_fetch_add(&conns, 1) >= MAX_CONNS ||
        pthread_create(&th, &attr, conn_thread, (void *)(intptr_t)fd) != 0) {
      atomic_fetch_sub(&conns, 1);
      close(fd);
    }
  }
  if (port_file)
    unlink(port_file);
  /* Connections still served end with the process. */
  return 0;
}
