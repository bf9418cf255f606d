/*
 * futex.h - futex wrappers and the internal lock.
 *
 * The internal lock (struct ilock) protects short critical sections inside
 * weft: a parking-lot bucket, the global run queue, the handle table's
 * growth. It is a three-state futex mutex (0 free, 1 held, 2 held with
 * sleepers): uncontended lock and unlock are one atomic each, a contended
 * locker spins briefly and then sleeps in the kernel. Rule: a user thread
 * never switches while holding one, so it blocks its kernel thread for a
 * few hundred instructions at most.
 */
#ifndef WEFT_BASE_FUTEX_H
#define WEFT_BASE_FUTEX_H

#include <stdint.h>

/* Sleeps while *word == val, until woken or the absolute CLOCK_MONOTONIC
 * deadline in ns passes (deadline < 0: no limit). Returns 0 when woken (or
 * spuriously), -EAGAIN when *word differed, -ETIMEDOUT, -EINTR. */
int weft__futex_wait(uint32_t *word, uint32_t val, int64_t deadline);
/* Wakes up to n sleepers on word. */
void weft__futex_wake(uint32_t *word, int n);

struct ilock {
    uint32_t word; /* 0 free, 1 held, 2 held and someone may sleep */
};
#define ILOCK_INIT {0}

void weft__ilock_slow(struct ilock *l);
void weft__iunlock_slow(struct ilock *l);

static inline void ilock(struct ilock *l)
{
    uint32_t z = 0;
    if (!__atomic_compare_exchange_n(&l->word, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        weft__ilock_slow(l);
}

static inline int itrylock(struct ilock *l)
{
    uint32_t z = 0;
    return __atomic_compare_exchange_n(&l->word, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void iunlock(struct ilock *l)
{
    /* Pairs with the acquire in ilock()/weft__ilock_slow(). */
    if (__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) == 2)
        weft__iunlock_slow(l);
}

#endif
