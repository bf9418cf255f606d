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
 * inside counts the threads between entering and leaving wait. A
 * released thread may still be on its way out when the serial thread
 * returns; if the barrier were then re-initialized (gen back to 0) it could
 * read the old gen again and park for ever. destroy therefore waits on
 * &b->inside until it is 0, and the thread that takes it to 0 unparks.
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
    if (load_acquire(&b->arrived))
        return -EBUSY;
    uint32_t n;
    while ((n = load_acquire(&b->inside)) != 0) /* pairs with leave() */
        weft_park(&b->inside, n, WEFT_FOREVER);
    return 0;
}

static int leave(weft_barrier_t *b, int r)
{
    if (__atomic_sub_fetch(&b->inside, 1, __ATOMIC_ACQ_REL) == 0)
        weft_unpark(&b->inside, -1);
    return r;
}

int weft_barrier_wait(weft_barrier_t *b)
{
    if (unlikely(!b || b->count == 0))
        return -EINVAL;
    fetch_add_seq(&b->inside, 1);
    uint32_t gen = load_acquire(&b->gen);
    uint32_t n = __atomic_add_fetch(&b->arrived, 1, __ATOMIC_ACQ_REL);
    if (n == b->count) {
        store_relaxed(&b->arrived, 0);
        store_release(&b->gen, gen + 1); /* pairs with the loads of gen */
        weft_unpark(&b->gen, -1);
        return leave(b, 1);
    }
    while (load_acquire(&b->gen) == gen)
        weft_park(&b->gen, gen, WEFT_FOREVER);
    return leave(b, 0);
}
