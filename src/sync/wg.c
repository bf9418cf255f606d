/*
 * wg.c - wait groups, as Go's sync.WaitGroup.
 *
 * count is an int32_t kept in a uint32_t so that it can be a parking
 * address. A waiter parks on &wg->count expecting the nonzero value it
 * read: any change makes the park fail and the waiter look again, and the
 * change to zero unparks everyone with a token saying so. A woken waiter
 * returns 0 on that token even if an add has already made the count
 * nonzero again (the group was reused before it ran). waiters (sequentially consistent, as in
 * sem.c) lets add skip the parking lot when nobody waits.
 */
#include "sync/sync.h"

#include <errno.h>

#define REACHED_ZERO 1

static uintptr_t reached_zero(void *ctx, struct unpark_info info)
{
    (void)ctx;
    (void)info;
    return REACHED_ZERO;
}

struct wg_park {
    weft_wg_t *wg;
    uint32_t seen;
};

static bool wg_validate(void *ctx)
{
    struct wg_park *p = ctx;
    return load_acquire(&p->wg->count) == p->seen;
}

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
        weft__unpark_ex(&wg->count, -1, reached_zero, NULL);
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
        /* A stop ends every wait-group wait, timed or not (weft.h). */
        if (weft__stop_cuts(deadline, true)) {
            r = -ECANCELED;
            break;
        }
        if (deadline >= 0 && deadline <= weft_now()) {
            r = -ETIMEDOUT;
            break;
        }
        struct wg_park p = {wg, v};
        uintptr_t token = 0;
        int pr = weft__park_ex(&wg->count, wg_validate, NULL, &p, deadline, 0, &token, true);
        if (pr == 0 && token == REACHED_ZERO)
            break;
        if (pr == -ETIMEDOUT || pr == -ECANCELED) {
            r = load_acquire(&wg->count) == 0 ? 0 : pr;
            break;
        }
    }
    fetch_sub_seq(&wg->waiters, 1);
    return r;
}
