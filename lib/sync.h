/*
 * Low-level synchronisation: a 4-byte futex lock, futex waits with absolute
 * CLOCK_MONOTONIC deadlines, and time helpers.  Linux only (futex(2)).
 *
 * Why not pthread_mutex_t everywhere: a future must stay small (it is the unit
 * of allocation on the hot path) and most futures never see contention, so a
 * word that doubles as lock and sleep queue is the right size.
 */
#ifndef CF_SYNC_H
#define CF_SYNC_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#define cf__cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cf__cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cf__cpu_relax() ((void)0)
#endif

#define CF__NEVER INT64_MAX /* a deadline that never comes */

static inline int64_t cf__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* now + timeout, saturating.  -1 (CF_FOREVER) = never; any other negative
 * timeout is a deadline already past (see "Timeouts" in cfutures.h). */
static inline int64_t cf__deadline(int64_t timeout_ns) {
  if (timeout_ns == -1)
    return CF__NEVER;
  int64_t now = cf__now_ns();
  if (timeout_ns < 0)
    return now;
  return timeout_ns > CF__NEVER - now ? CF__NEVER : now + timeout_ns;
}

/* A timeout that allows no waiting at all: 0, or a deadline already past. */
static inline bool cf__no_wait(int64_t timeout_ns) {
  return timeout_ns == 0 || timeout_ns < -1;
}

/* Sleeps while *word == expected, until woken or `deadline` (absolute,
 * CLOCK_MONOTONIC).  Returns 0 when woken or the value differed, ETIMEDOUT
 * when the deadline passed.  EINTR and spurious wakeups return 0: callers
 * always re-check their condition in a loop. */
/* The timeout left until `deadline`, for APIs that take a timeout. */
static inline int64_t cf__timeout_left(int64_t deadline) {
  if (deadline == CF__NEVER)
    return -1;
  int64_t left = deadline - cf__now_ns();
  return left > 0 ? left : 0;
}

static inline int cf__futex_wait(_Atomic uint32_t *word, uint32_t expected,
                                 int64_t deadline) {
  struct timespec ts, *tp = NULL;
  if (deadline != CF__NEVER) {
    if (deadline <= cf__now_ns())
      return ETIMEDOUT;
    ts.tv_sec = (time_t)(deadline / 1000000000);
    ts.tv_nsec = (long)(deadline % 1000000000);
    tp = &ts;
  }
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
   * restart after EINTR does not stretch the timeout. */
  long r = syscall(SYS_futex, (uint32_t *)word,
                   FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, tp, NULL,
                   FUTEX_BITSET_MATCH_ANY);
  if (r == -1 && errno == ETIMEDOUT)
    return ETIMEDOUT;
  return 0;
}

static inline void cf__futex_wake(_Atomic uint32_t *word, int n) {
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL,
          NULL, 0);
}

/* A mutex in one word: 0 free, 1 locked, 2 locked with sleepers (Drepper,
 * "Futexes are tricky", mutex #3).  Held only around short internal work. */
typedef struct cf__lock {
  _Atomic uint32_t v;
} cf__lock;

void cf__lock_slow(cf__lock *l);

static inline void cf__lock_acquire(cf__lock *l) {
  uint32_t z = 0;
  if (!atomic_compare_exchange_strong_explicit(
          &l->v, &z, 1, memory_order_acquire, memory_order_relaxed))
    cf__lock_slow(l);
}

static inline void cf__lock_release(cf__lock *l) {
  if (atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2)
    cf__futex_wake(&l->v, 1);
}

#endif /* CF_SYNC_H */
