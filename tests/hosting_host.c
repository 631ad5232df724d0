/* Programs for tests/check_hosting.sh.
 *   host plain            a pool runs main_task: "main 42"
 *   host init LIB.so      a pool whose initializer is lib_init of a
 *                         dlopen()ed LIB.so: refused
 *   host changed NEWLIB LIB NEWEXE
 *                         tasks in the program and in libhosting_task.so;
 *                         then LIB is replaced by NEWLIB and the program by
 *                         NEWEXE (rename), then the program is deleted,
 *                         with tasks after each step.
 *   host initchanged NEWLIB LIB
 *                         the same with lib_init of the library as the
 *                         pool's initializer: never run from another build.
 *   host dltask LIB.so    a pool, then lib_task of LIB.so dlopen()ed after
 *                         it, through cf_submit and cf_map: each refused
 *                         with words, and the pool still runs main_task.
 * A refused create prints "refused: STATUS: WORDS" and exits 3. */
#define _GNU_SOURCE
#include <cfutures.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef VARIANT
#define VARIANT 1
#endif

int lib_task(cf_task *t, const void *in, size_t len);
int lib_init(const void *arg, size_t len);

#if VARIANT == 2
int main_padding(cf_task *t, const void *in, size_t len);
int main_padding(cf_task *t, const void *in, size_t len) {
  volatile int x = 0;
  for (size_t i = 0; i < len; i++)
    x += ((const unsigned char *)in)[i] * 31 + 7;
  return cf_task_fail(t, 1, "padding %d", x);
}
#endif

static int main_task(cf_task *t, const void *in, size_t len) {
  (void)in;
  (void)len;
  int v = 41 + VARIANT;
  return cf_task_return(t, &v, sizeof v);
}

static cf_executor *pool(cf_initializer_fn init) {
  cf_process_pool_options o;
  cf_process_pool_options_init(&o);
  o.max_workers = 1;
  o.max_tasks_per_child = 1; /* every task starts a new worker */
  o.initializer = init;
  cf_executor *ex;
  int rc = cf_process_pool_create(&o, &ex);
  if (rc != CF_OK) {
    printf("refused: %s: %s\n", cf_strerror(rc), cf_last_error_message());
    exit(3);
  }
  return ex;
}

/* Runs fn and prints "WHAT RESULT" or "WHAT failed: STATUS (CODE): MSG". */
static void run(cf_executor *ex, const char *what, cf_task_fn fn) {
  cf_future *f;
  const void *d;
  size_t n;
  if (cf_submit(ex, fn, NULL, 0, &f) != CF_OK)
    exit(4);
  int rc = cf_future_result(f, CF_FOREVER, &d, &n);
  if (rc == CF_OK && n == sizeof(int))
    printf("%s %d\n", what, *(const int *)d);
  else if (rc == CF_OK)
    printf("%s %.*s\n", what, (int)n, (const char *)d);
  else {
    int code = 0;
    const char *msg = NULL;
    cf_future_error(f, 0, &code, &msg);
    printf("%s failed: %s (%d): %s\n", what, cf_strerror(rc), code,
           msg ? msg : "");
  }
  cf_future_release(f);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 2 && strcmp(argv[1], "plain") == 0) {
    cf_executor *ex = pool(NULL);
    run(ex, "main", main_task);
    cf_executor_release(ex);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "init") == 0) {
    void *h = dlopen(argv[2], RTLD_NOW);
    if (!h) {
      printf("dlopen: %s\n", dlerror());
      return 2;
    }
    cf_initializer_fn init;
    *(void **)&init = dlsym(h, "lib_init");
    cf_executor *ex = pool(init);
    run(ex, "main", main_task);
    cf_executor_release(ex);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "dltask") == 0) {
    cf_executor *ex = pool(NULL);
    void *h = dlopen(argv[2], RTLD_NOW);
    if (!h) {
      printf("dlopen: %s\n", dlerror());
      return 2;
    }
    cf_task_fn fn;
    *(void **)&fn = dlsym(h, "lib_task");
    run(ex, "submit", fn);
    static const int in[2] = {1, 2};
    cf_map_iter *m;
    cf_map_item it = CF_MAP_ITEM_INIT;
    if (cf_map_array(ex, fn, in, sizeof in[0], 2, NULL, &m) != CF_OK)
      return 4;
    int rc = cf_map_next(m, &it);
    printf("map: %s (%d): %s\n", cf_strerror(rc), it.error_code,
           it.error_message ? it.error_message : "");
    cf_map_destroy(m);
    run(ex, "main", main_task);
    cf_executor_release(ex);
    return 0;
  }
  if (argc == 5 && strcmp(argv[1], "changed") == 0) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
      return 2;
    self[n] = '\0';
    cf_executor *ex = pool(NULL);
    run(ex, "before: lib", lib_task);
    run(ex, "before: main", main_task);
    if (rename(argv[2], argv[3]) != 0 || rename(argv[4], self) != 0) {
      perror("rename");
      return 2;
    }
    run(ex, "replaced: lib", lib_task);
    run(ex, "replaced: main", main_task);
    run(ex, "replaced: lib", lib_task);
    if (unlink(self) != 0)
      return 2;
    run(ex, "deleted: main", main_task);
    cf_executor_release(ex);
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "initchanged") == 0) {
    cf_executor *ex = pool(lib_init);
    run(ex, "before: main", main_task);
    if (rename(argv[2], argv[3]) != 0) {
      perror("rename");
      return 2;
    }
    run(ex, "replaced: main", main_task);
    cf_executor_release(ex);
    return 0;
  }
  fprintf(stderr, "usage: host plain | init LIB | changed NEWLIB LIB NEWEXE"
                  " | initchanged NEWLIB LIB | dltask LIB\n");
  return 2;
}
