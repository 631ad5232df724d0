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

// The size-led structs from C++ (before C++20 there are no designated
// initialisers, so no CF_*_INIT): the *_init functions, or value
// initialisation and the size set by hand.
static int map_twice(cf_executor *ex) {
  cf_map_options mo;
  cf_map_options_init(&mo);
  mo.chunksize = 2;
  int in[5] = {1, 2, 3, 4, 5}, sum = 0;
  cf_map_iter *m = nullptr;
  if (cf_map_array(ex, twice, in, sizeof in[0], 5, &mo, &m) != CF_OK)
    return -1;
  cf_map_item item{};
  item.size = sizeof item;
  int rc;
  while ((rc = cf_map_next(m, &item)) == CF_OK) {
    int v;
    std::memcpy(&v, item.data, sizeof v);
    sum += v;
  }
  cf_map_destroy(m);
  cf_executor_stats st{};
  st.size = sizeof st;
  if (rc != CF_EOF || cf_executor_stats_get(ex, &st) != CF_OK ||
      st.completed != 3) // three chunks
    return -1;
  return sum;
}

int main() {
  cf_thread_pool_options o;
  cf_thread_pool_options_init(&o);
  o.max_workers = 2;
  cf_executor *ex = nullptr;
  if (cf_thread_pool_create(&o, &ex) != CF_OK)
    return 1;
  if (map_twice(ex) != 30)
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
