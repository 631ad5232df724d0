/* The public structs can grow without breaking programs built against an
 * older or a newer header: each starts with its size, the library reads
 * and writes only the fields both sides know, and refuses what it cannot
 * honour (a size never set up, a newer field it does not know, set). */
#include "test_util.h"

/* What a program built against a later header passes: our struct followed
 * by a field this library has never heard of. */
typedef struct {
  cf_thread_pool_options o;
  uint64_t newer;
} newer_tp_options;
typedef struct {
  cf_process_pool_options o;
  uint64_t newer;
} newer_pp_options;
typedef struct {
  cf_map_options o;
  uint64_t newer;
} newer_map_options;
typedef struct {
  cf_executor_stats st;
  uint64_t newer;
} newer_stats;
typedef struct {
  cf_map_item it;
  uint64_t newer;
} newer_item;

#define SENTINEL UINT64_C(0x5ca1ab1e0ddba11)

static void test_init_sets_size(void) {
  cf_thread_pool_options t;
  cf_process_pool_options p;
  cf_map_options m;
  memset(&t, 0xa5, sizeof t);
  memset(&p, 0xa5, sizeof p);
  memset(&m, 0xa5, sizeof m);
  CU_ASSERT_EQUAL(cf_thread_pool_options_init(&t), CF_OK);
  CU_ASSERT_EQUAL(cf_process_pool_options_init(&p), CF_OK);
  CU_ASSERT_EQUAL(cf_map_options_init(&m), CF_OK);
  CU_ASSERT_EQUAL(t.size, sizeof t);
  CU_ASSERT_EQUAL(p.size, sizeof p);
  CU_ASSERT_EQUAL(m.size, sizeof m);
  /* The init functions and the static initialisers agree field by field. */
  cf_thread_pool_options t2 = CF_THREAD_POOL_OPTIONS_INIT;
  cf_process_pool_options p2 = CF_PROCESS_POOL_OPTIONS_INIT;
  cf_map_options m2 = CF_MAP_OPTIONS_INIT;
  CU_ASSERT_EQUAL(t2.size, t.size);
  CU_ASSERT_EQUAL(t2.max_workers, t.max_workers);
  CU_ASSERT_PTR_EQUAL(t2.thread_name_prefix, t.thread_name_prefix);
  CU_ASSERT_EQUAL(t2.idle_timeout_ns, t.idle_timeout_ns);
  CU_ASSERT_EQUAL(p2.size, p.size);
  CU_ASSERT_EQUAL(p2.max_workers, p.max_workers);
  CU_ASSERT_EQUAL(p2.on_worker_death, p.on_worker_death);
  CU_ASSERT_EQUAL(m2.size, m.size);
  CU_ASSERT_EQUAL(m2.timeout_ns, m.timeout_ns);
  CU_ASSERT_EQUAL(m2.timeout_ns, CF_FOREVER);
  CU_ASSERT_EQUAL(m2.chunksize, m.chunksize);
  CU_ASSERT_EQUAL(m2.unordered, m.unordered);
  /* The size leads every struct, so a library can read it first. */
  CU_ASSERT_EQUAL(offsetof(cf_thread_pool_options, size), 0);
  CU_ASSERT_EQUAL(offsetof(cf_process_pool_options, size), 0);
  CU_ASSERT_EQUAL(offsetof(cf_map_options, size), 0);
  CU_ASSERT_EQUAL(offsetof(cf_executor_stats, size), 0);
  CU_ASSERT_EQUAL(offsetof(cf_map_item, size), 0);
}

/* Options that never went through *_init (size 0, or garbage) are refused
 * with CF_EINVAL, and the creates say why in words. */
static void test_unset_size_refused(void) {
  cf_executor *ex = (cf_executor *)1;
  cf_thread_pool_options t;
  cf_thread_pool_options_init(&t);
  t.size = 0;
  CU_ASSERT_EQUAL(cf_thread_pool_create(&t, &ex), CF_EINVAL);
  CU_ASSERT_PTR_NULL(ex);
  CU_ASSERT_PTR_NOT_NULL(strstr(cf_last_error_message(), "size 0"));
  /* The first released layout ended at idle_timeout_ns. */
  size_t v1 = offsetof(cf_thread_pool_options, idle_timeout_ns) +
              sizeof t.idle_timeout_ns;
  t.size = v1 - 1; /* smaller than any released layout */
  CU_ASSERT_EQUAL(cf_thread_pool_create(&t, &ex), CF_EINVAL);
  /* A program built before max_queued existed: its size is v1, and its
   * pool has no bound (the field past its struct is never read). */
  t.size = v1;
  t.max_queued = 1; /* past the old struct: must be ignored */
  CU_ASSERT_EQUAL_FATAL(cf_thread_pool_create(&t, &ex), CF_OK);
  cf_future *fs[4];
  for (int i = 0; i < 4; i++)
    CU_ASSERT_EQUAL(cf_submit(ex, task_echo, "x", 1, &fs[i]), CF_OK);
  for (int i = 0; i < 4; i++)
    cf_future_release(fs[i]);
  cf_executor_release(ex);
  cf_thread_pool_options_init(&t);
  t.size = (size_t)-1; /* garbage: refused before anything is read */
  CU_ASSERT_EQUAL(cf_thread_pool_create(&t, &ex), CF_EINVAL);

  cf_process_pool_options p;
  cf_process_pool_options_init(&p);
  p.size = 0;
  ex = (cf_executor *)1;
  CU_ASSERT_EQUAL(cf_process_pool_create(&p, &ex), CF_EINVAL);
  CU_ASSERT_PTR_NULL(ex);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(cf_last_error_message(), "cf_process_pool_options_init"));

  cf_executor *pool = make_pool(1);
  cf_map_options m;
  cf_map_options_init(&m);
  m.size = 3;
  cf_map_iter *it = (cf_map_iter *)1;
  uint64_t in[2] = {1, 2};
  CU_ASSERT_EQUAL(cf_map_array(pool, task_echo, in, sizeof in[0], 2, &m, &it),
                  CF_EINVAL);
  CU_ASSERT_PTR_NULL(it);

  cf_executor_stats st = CF_EXECUTOR_STATS_INIT;
  st.size = 0;
  CU_ASSERT_EQUAL(cf_executor_stats_get(pool, &st), CF_EINVAL);
  st.size = offsetof(cf_executor_stats, extra_workers);
  CU_ASSERT_EQUAL(cf_executor_stats_get(pool, &st), CF_EINVAL);

  CU_ASSERT_EQUAL(cf_map_array(pool, task_echo, in, sizeof in[0], 2, NULL, &it),
                  CF_OK);
  cf_map_item item; /* no size: refused, and the map goes on */
  memset(&item, 0, sizeof item);
  CU_ASSERT_EQUAL(cf_map_next(it, &item), CF_EINVAL);
  item.size = sizeof item;
  CU_ASSERT_EQUAL(cf_map_next(it, &item), CF_OK);
  CU_ASSERT_EQUAL(item.index, 0);
  CU_ASSERT_EQUAL(item.size, sizeof item);
  cf_map_destroy(it);
  cf_executor_release(pool);
}

/* A newer program's options: accepted when the fields we do not know are
 * zero (their default), refused when one is set, since the library cannot
 * do what it asks. */
static void test_newer_options(void) {
  newer_tp_options t;
  memset(&t, 0, sizeof t);
  cf_thread_pool_options_init(&t.o);
  t.o.size = sizeof t;
  t.o.max_workers = 2;
  cf_executor *ex = NULL;
  CU_ASSERT_EQUAL_FATAL(cf_thread_pool_create(&t.o, &ex), CF_OK);
  CU_ASSERT_EQUAL(cf_executor_max_workers(ex), 2);
  cf_executor_release(ex);
  t.newer = 1;
  ex = (cf_executor *)1;
  CU_ASSERT_EQUAL(cf_thread_pool_create(&t.o, &ex), CF_EINVAL);
  CU_ASSERT_PTR_NULL(ex);
  CU_ASSERT_PTR_NOT_NULL(strstr(cf_last_error_message(), "does not know"));

  newer_pp_options p;
  memset(&p, 0, sizeof p);
  cf_process_pool_options_init(&p.o);
  p.o.size = sizeof p;
  p.newer = 7;
  CU_ASSERT_EQUAL(cf_process_pool_create(&p.o, &ex), CF_EINVAL);

  cf_executor *pool = make_pool(1);
  newer_map_options m;
  memset(&m, 0, sizeof m);
  cf_map_options_init(&m.o);
  m.o.size = sizeof m;
  m.o.chunksize = 1;
  uint64_t in[3] = {4, 5, 6};
  cf_map_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(pool, task_echo, in, sizeof in[0], 3, &m.o, &it), CF_OK);
  cf_map_destroy(it);
  m.newer = 1;
  CU_ASSERT_EQUAL(cf_map_array(pool, task_echo, in, sizeof in[0], 3, &m.o, &it),
                  CF_EINVAL);
  cf_executor_release(pool);
}

/* A newer program's out structs: the library fills the fields it knows and
 * leaves the rest as they were, never writing past its own layout. */
static void test_newer_out_structs(void) {
  cf_executor *pool = make_pool(1);
  newer_stats s;
  memset(&s, 0xa5, sizeof s);
  s.st.size = sizeof s;
  s.newer = SENTINEL;
  CU_ASSERT_EQUAL(cf_executor_stats_get(pool, &s.st), CF_OK);
  CU_ASSERT_EQUAL(s.st.size, sizeof s);
  CU_ASSERT_EQUAL(s.newer, SENTINEL);
  CU_ASSERT_EQUAL(s.st.workers, 0); /* no submit yet: no thread */
  CU_ASSERT_EQUAL(s.st.blocked, 0);
  CU_ASSERT_EQUAL(s.st.extra_workers, 0);

  uint64_t in[2] = {8, 9};
  cf_map_iter *it = NULL;
  CU_ASSERT_EQUAL_FATAL(
      cf_map_array(pool, task_echo, in, sizeof in[0], 2, NULL, &it), CF_OK);
  newer_item n;
  memset(&n, 0xa5, sizeof n);
  n.it.size = sizeof n;
  n.newer = SENTINEL;
  for (size_t i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL_FATAL(cf_map_next(it, &n.it), CF_OK);
    CU_ASSERT_EQUAL(n.it.index, i);
    CU_ASSERT_EQUAL(n.it.len, sizeof in[0]);
    CU_ASSERT_EQUAL(memcmp(n.it.data, &in[i], sizeof in[0]), 0);
    CU_ASSERT_EQUAL(n.it.error_code, 0);
    CU_ASSERT_PTR_NULL(n.it.error_message);
    CU_ASSERT_EQUAL(n.newer, SENTINEL);
  }
  CU_ASSERT_EQUAL(cf_map_next(it, &n.it), CF_EOF);
  CU_ASSERT_EQUAL(n.newer, SENTINEL);
  CU_ASSERT_EQUAL(n.it.size, sizeof n);
  cf_map_destroy(it);
  cf_executor_release(pool);
}

CF_TEST_MAIN("abi", CF_TEST(test_init_sets_size),
             CF_TEST(test_unset_size_refused), CF_TEST(test_newer_options),
             CF_TEST(test_newer_out_structs))
