/*
 * barrier.c - cyclic barriers on the parking lot.
 *
 * A round is named by gen. A thread reads gen, then counts itself in
 * arrived. The last to arrive resets arrived, then bumps gen (release) and
 * unparks everyone parked on &b->gen; the others park while gen is
 * unchanged. Nobody can arrive for the next round before the bump (the
 * round's threads are all still inside wait), and a thread that reads the
 * bumped gen also sees arrived reset, so rounds never mix.
 *
 * A released thread may still be on its way out (reading gen) when the
 * serial thread returns, and could read a re-initialized gen and park for
 * ever, or read freed memory. So the last arriver adds the count of
 * threads it releases to leaving, each of them takes itself off as its
 * last touch of the barrier, and destroy says -EBUSY until leaving is 0.
 * Round n+1 cannot complete before every thread of round n has left
 * (each must arrive again), so the counts of two rounds never mix.
 */
#include "sync/sync.h"

#include <errno.h>

int weft_barrier_init(weft_barrier_t *b, unsigned count)
{
    if (!b || count == 0)
        return -EINVAL;
    *b = (weft_barrier_t){count, 0, 0, 0};
    return 0;
}

int weft_barrier_destroy(weft_barrier_t *b)
{
    if (!b)
        return -EINVAL;
    /* Pairs with the release of the leavers' decrement. */
    if (load_acquire(&b->arrived) || load_acquire(&b->leaving))
        return -EBUSY;
    return 0;
}

int weft_barrier_wait(weft_barrier_t *b)
{
    if (unlikely(!b || b->count == 0))
        return -EINVAL;
    uint32_t gen = load_acquire(&b->gen);
    uint32_t n = __atomic_add_fetch(&b->arrived, 1, __ATOMIC_ACQ_REL);
    if (n == b->count) {
        __atomic_fetch_add(&b->leaving, n - 1, __ATOMIC_RELAXED);
        store_release(&b->arrived, 0); /* after leaving: pairs with destroy */
        store_release(&b->gen, gen + 1); /* pairs with the loads of gen */
        weft_unpark(&b->gen, -1);
        return 1;
    }
    while (load_acquire(&b->gen) == gen)
        weft_park(&b->gen, gen, WEFT_FOREVER);
    __atomic_fetch_sub(&b->leaving, 1, __ATOMIC_RELEASE); /* last touch */
    return 0;
}
