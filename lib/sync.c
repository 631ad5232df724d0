/* The contended path of cf__lock (see sync.h). */
#include "sync.h"

void cf__lock_slow(cf__lock *l) {
  /* Spin a little first: the lock guards a handful of instructions, so the
   * holder is usually about to release it. */
  for (int i = 0; i < 100; i++) {
    uint32_t z = 0;
    if (atomic_load_explicit(&l->v, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(
            &l->v, &z, 1, memory_order_acquire, memory_order_relaxed))
      return;
    cf__cpu_relax();
  }
  /* Mark the lock contended (2) so the releaser wakes us. */
  while (atomic_exchange_explicit(&l->v, 2, memory_order_acquire) != 0)
    cf__futex_wait(&l->v, 2, CF__NEVER);
}
