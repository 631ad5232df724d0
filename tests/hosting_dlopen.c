/* For tests/check_hosting.sh: a program that loads libcfutures with
 * dlopen() (unsupported) and asks it for a process pool: refused.
 *   hosting_dlopen LIBCFUTURES.so */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 2)
    return 2;
  void *h = dlopen(argv[1], RTLD_NOW);
  if (!h) {
    printf("dlopen: %s\n", dlerror());
    return 2;
  }
  int (*create)(const void *, void **);
  const char *(*words)(void);
  const char *(*str)(int);
  *(void **)&create = dlsym(h, "cf_process_pool_create");
  *(void **)&words = dlsym(h, "cf_last_error_message");
  *(void **)&str = dlsym(h, "cf_strerror");
  if (!create || !words || !str)
    return 2;
  void *ex = NULL;
  int rc = create(NULL, &ex);
  printf("%s: %s: %s\n", rc ? "refused" : "created", str(rc), words());
  return rc ? 3 : 0;
}
