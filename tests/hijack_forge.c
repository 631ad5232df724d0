/* For tests/check_hijack.sh: starts PROG as a forged worker would be.
 *   hijack_forge MODE OFFSET FILE PROG [ARGS...]
 * Writes a HELLO with a secret, an INIT (no modules, no initializer), a
 * TASK naming the main program's function at OFFSET with FILE as input,
 * and an EXIT, and sets CF__PROCESS_WORKER_FD=3:<that secret>.  MODE:
 *   pipe    fd 3 is a pipe holding the messages;
 *   self    fd 3 is a socket made by PROG's own process (its peer is not
 *           its parent);
 *   parent  fd 3 is a socket to this process, PROG's parent: everything a
 *           pool would do (PROG becomes a worker unless it is AT_SECURE).
 * Exits with PROG's exit status. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned char msg[8192];
static size_t len;

static void frame(uint32_t type, const void *payload, size_t n) {
  struct {
    uint32_t magic, type;
    uint64_t id, len;
  } h = {0x31574643u, type, type == 0x4f4c4548u ? 0 : 1, n};
  memcpy(msg + len, &h, sizeof h);
  memcpy(msg + len + sizeof h, payload, n);
  len += sizeof h + n;
}

int main(int argc, char **argv) {
  if (argc < 5)
    return 2;
  const char *mode = argv[1];
  uint64_t off = strtoull(argv[2], NULL, 10);
  const char *file = argv[3];
  unsigned char secret[32];
  char marker[128] = "CF__PROCESS_WORKER_FD=3:";
  for (int i = 0; i < 32; i++) {
    secret[i] = (unsigned char)(i * 7 + 1);
    sprintf(marker + strlen(marker), "%02x", secret[i]);
  }
  frame(0x4f4c4548u, secret, 32); /* HELLO */
  unsigned char init[8] = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  frame(1, init, 8); /* INIT: 0 modules, no initializer */
  unsigned char task[4096] = {0};
  memcpy(task + 4, &off, 8); /* module "" (the program), offset */
  size_t fl = strlen(file);
  memcpy(task + 12, file, fl);
  frame(2, task, 12 + fl); /* TASK */
  frame(4, "", 0);         /* EXIT */
  putenv(marker);
  int sv[2];
  if (strcmp(mode, "pipe") == 0) {
    if (pipe(sv) != 0 || write(sv[1], msg, len) != (ssize_t)len)
      return 2;
    close(sv[1]);
  } else {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 ||
        write(sv[1], msg, len) != (ssize_t)len)
      return 2; /* sv[0]: PROG's end, the messages waiting in it */
  }
  pid_t pid = strcmp(mode, "parent") == 0 ? fork() : 0;
  if (pid == 0) {
    if (sv[0] != 3 && (dup2(sv[0], 3) != 3 || close(sv[0]) != 0))
      _exit(2);
    if (strcmp(mode, "parent") == 0 || strcmp(mode, "self") == 0)
      fcntl(sv[1], F_SETFD, FD_CLOEXEC);
    execv(argv[4], argv + 4);
    perror("execv");
    _exit(2);
  }
  close(sv[0]);
  char buf[4096];
  while (read(sv[1], buf, sizeof buf) > 0)
    ; /* what a worker answers, until it is gone */
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
