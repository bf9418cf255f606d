/*
 * sem.c - counting semaphores on the parking lot.
 *
 * value is the units available; waiters counts threads in the slow path,
 * so that post skips the parking lot when nobody waits. A waiter parks on
 * &s->value expecting 0.
 *
 * No lost wake-up: a waiter increments waiters and then reads value; a
 * poster increments value and then reads waiters, all sequentially
 * consistent. Whichever is second sees the other's write: either the
 * waiter sees the unit (and takes it), or the poster sees the waiter and
 * unparks, which the parking lot orders against the waiter's validation
 * (value == 0) under the bucket lock.
 */
#include "sync/sync.h"

#include <errno.h>

int weft_sem_init(weft_sem_t *s, unsigned value)
{
    if (!s || value > WEFT_SEM_MAX)
        return -EINVAL;
    *s = (weft_sem_t)WEFT_SEM_INIT(value);
    return 0;
}

int weft_sem_destroy(weft_sem_t *s)
{
    if (!s)
        return -EINVAL;
    return load_acquire(&s->waiters) ? -EBUSY : 0;
}

unsigned weft_sem_value(const weft_sem_t *s)
{
    return s ? load_relaxed(&s->value) : 0;
}

static inline bool take(weft_sem_t *s)
{
    uint32_t v = load_seq(&s->value);
    while (v > 0)
        if (__atomic_compare_exchange_n(&s->value, &v, v - 1, 1, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return true;
    return false;
}

int weft_sem_wait(weft_sem_t *s, int64_t deadline)
{
    if (unlikely(!s))
        return -EINVAL;
    if (likely(take(s)))
        return 0;
    /* A stop ends every semaphore wait, timed or not (weft.h). */
    if (weft__stop_cuts(deadline, true))
        return -ECANCELED;
    if (deadline >= 0 && deadline <= weft_now())
        return -ETIMEDOUT;
    int r = 0;
    fetch_add_seq(&s->waiters, 1);
    while (!take(s)) {
        int pr = weft__park(&s->value, 0, deadline, true);
        if (pr == -ETIMEDOUT || pr == -ECANCELED) {
            /* A unit posted meanwhile is still taken: the call can
             * finish without waiting. A post whose unpark found our wait
             * ended by the stop skipped it and woke the next waiter, so
             * its unit is not stranded (park.c). */
            r = take(s) ? 0 : pr;
            break;
        }
    }
    fetch_sub_seq(&s->waiters, 1);
    return r;
}

int weft_sem_post(weft_sem_t *s)
{
    if (unlikely(!s))
        return -EINVAL;
    uint32_t v = load_relaxed(&s->value);
    do {
        if (v >= WEFT_SEM_MAX)
            return -EOVERFLOW;
    } while (!__atomic_compare_exchange_n(&s->value, &v, v + 1, 1, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    if (load_seq(&s->waiters))
        weft_unpark(&s->value, 1);
    weft__preempt_point();
    return 0;
}
