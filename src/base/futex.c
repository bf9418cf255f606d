/* futex.c - futex system calls and the slow paths of the internal lock. */
#include "base/futex.h"
#include "base/atomic.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int weft__futex_wait(uint32_t *word, uint32_t val, int64_t deadline)
{
    struct timespec ts, *tsp = NULL;
    if (deadline >= 0) {
        ts.tv_sec = deadline / 1000000000;
        ts.tv_nsec = deadline % 1000000000;
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, so a wait
     * interrupted and restarted never waits longer than asked. */
    int saved = errno;
    long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val, tsp, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    int e = errno;
    errno = saved;
    if (r == 0)
        return 0;
    if (e == EAGAIN || e == EWOULDBLOCK)
        return -EAGAIN;
    if (e == ETIMEDOUT)
        return -ETIMEDOUT;
    return -EINTR;
}

void weft__futex_wake(uint32_t *word, int n)
{
    int saved = errno;
    syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
    errno = saved;
}

/* A contended locker looks at the word every ILOCK_PAUSES pauses, up to
 * ILOCK_TRIES times, then sleeps. Looking more often made it worse: with
 * two kernel threads taking turns at a channel's lock, a waiter that
 * reads the word every pause pulls its cache line away from the holder
 * all the time, and bench/chan's one-producer, four-consumer figure was
 * 14 Mitems/s; looking every 30 pauses (as Go's runtime lock does) let
 * the holder keep the line and gave 65. */
#define ILOCK_TRIES 20
#define ILOCK_PAUSES 30

void weft__ilock_slow(struct ilock *l)
{
    for (int i = 0; i < ILOCK_TRIES; i++) {
        for (int j = 0; j < ILOCK_PAUSES; j++)
            cpu_relax();
        uint32_t z = 0;
        if (load_relaxed(&l->word) == 0 &&
            __atomic_compare_exchange_n(&l->word, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
    }
    /* Mark the lock contended; whoever takes it from now on leaves it at 2,
     * so the holder's unlock knows to wake someone. */
    while (__atomic_exchange_n(&l->word, 2, __ATOMIC_ACQUIRE) != 0)
        weft__futex_wait(&l->word, 2, -1);
}

void weft__iunlock_slow(struct ilock *l)
{
    weft__futex_wake(&l->word, 1);
}
