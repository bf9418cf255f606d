/*
 * wg.c - wait groups, as Go's sync.WaitGroup.
 *
 * count is an int32_t kept in a uint32_t so that it can be a parking
 * address. A waiter parks on &wg->count expecting the nonzero value it
 * read: any change makes the park fail and the waiter look again, and the
 * change to zero unparks everyone. waiters (sequentially consistent, as in
 * sem.c) lets add skip the parking lot when nobody waits.
 */
#include "sync/sync.h"

#include <errno.h>

int weft_wg_add(weft_wg_t *wg, int n)
{
    if (unlikely(!wg))
        return -EINVAL;
    uint32_t v = load_relaxed(&wg->count);
    int64_t next;
    do {
        next = (int64_t)(int32_t)v + n;
        if (next < 0)
            return -EINVAL;
        if (next > INT32_MAX)
            return -EOVERFLOW;
    } while (!__atomic_compare_exchange_n(&wg->count, &v, (uint32_t)next, 1, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    if (next == 0 && load_seq(&wg->waiters))
        weft_unpark(&wg->count, -1);
    return 0;
}

int weft_wg_done(weft_wg_t *wg)
{
    return weft_wg_add(wg, -1);
}

int weft_wg_wait(weft_wg_t *wg, int64_t deadline)
{
    if (unlikely(!wg))
        return -EINVAL;
    uint32_t v = load_acquire(&wg->count);
    if (v == 0)
        return 0;
    int r = 0;
    fetch_add_seq(&wg->waiters, 1);
    while ((v = load_seq(&wg->count)) != 0) {
        if (weft_park(&wg->count, v, deadline) == -ETIMEDOUT) {
            r = load_acquire(&wg->count) == 0 ? 0 : -ETIMEDOUT;
            break;
        }
    }
    fetch_sub_seq(&wg->waiters, 1);
    return r;
}
