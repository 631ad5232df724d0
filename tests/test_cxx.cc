// The header from C++: it must compile and link with extern "C".
#include <cfutures.h>

#include <cstdio>
#include <cstring>

static int twice(cf_task *t, const void *in, size_t len) {
  int v;
  if (len != sizeof v)
    return 1;
  std::memcpy(&v, in, sizeof v);
  v *= 2;
  return cf_task_return(t, &v, sizeof v);
}

int main() {
  cf_executor *ex = nullptr;
  if (cf_thread_pool_create(nullptr, &ex) != CF_OK)
    return 1;
  int in = 21, out = 0;
  cf_future *f = nullptr;
  const void *d = nullptr;
  int rc = cf_submit(ex, twice, &in, sizeof in, &f);
  if (rc == CF_OK)
    rc = cf_future_result(f, CF_FOREVER, &d, nullptr);
  if (rc == CF_OK)
    std::memcpy(&out, d, sizeof out);
  cf_future_release(f);
  cf_executor_release(ex);
  std::printf("C++: 21 * 2 = %d (%s)\n", out, cf_strerror(rc));
  return out == 42 ? 0 : 1;
}
