/* A program that links libcfutures, for tests/check_hijack.sh: its main()
 * prints "victim main ran"; victim_touch() is a task that creates the file
 * its input names (a forged task would name it).  "pool" creates a
 * process pool and says whether it was refused.  main() also says whether
 * it sees the marker variable (it must not: the constructor removes it).
 * "--offset" prints victim_touch's offset from the program's load address, as a
 * task message names it. */
#define _GNU_SOURCE
#include <cfutures.h>

#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int victim_touch(cf_task *t, const void *in, size_t len);
int victim_touch(cf_task *t, const void *in, size_t len) {
  char path[4096];
  (void)t;
  if (len >= sizeof path)
    return 1;
  memcpy(path, in, len);
  path[len] = '\0';
  int fd = open(path, O_CREAT | O_WRONLY, 0644);
  if (fd >= 0)
    close(fd);
  return 0;
}

static int first(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  *(uintptr_t *)arg = info->dlpi_addr;
  return 1;
}

/* Keeps the pool (and so the library's constructor) linked in. */
int (*volatile victim_keep)(const cf_process_pool_options *,
                            cf_executor **) = cf_process_pool_create;

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--offset") == 0) {
    uintptr_t base = 0;
    dl_iterate_phdr(first, &base);
    printf("%lu\n", (unsigned long)((uintptr_t)victim_touch - base));
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "pool") == 0) {
    cf_executor *ex = NULL;
    int rc = cf_process_pool_create(NULL, &ex);
    printf("pool: %s: %s\n", rc ? "refused" : "created",
           rc ? cf_last_error_message() : cf_strerror(rc));
    if (ex)
      cf_executor_release(ex);
    return rc ? 3 : 0;
  }
  printf("victim main ran, euid %d, marker %s\n", (int)geteuid(),
         getenv("CF__PROCESS_WORKER_FD") ? "SET" : "unset");
  return 0;
}
