/*
 * once.c - run a function exactly once.
 *
 * state goes NEW -> RUNNING -> DONE, or RUNNING -> WAITED when a thread
 * parks to wait for the runner, so that the runner unparks only when
 * somebody waits. runner holds the running thread's key, so a recursive
 * call reports -EDEADLK instead of waiting for itself forever.
 */
#include "sync/sync.h"

#include <errno.h>

enum { ONCE_NEW, ONCE_RUNNING, ONCE_WAITED, ONCE_DONE };

int weft_once(weft_once_t *o, void (*fn)(void))
{
    if (unlikely(!o || !fn))
        return -EINVAL;
    if (likely(load_acquire(&o->state) == ONCE_DONE)) /* pairs with the xchg below */
        return 0;
    uintptr_t key = weft__self_key();
    uint32_t s = ONCE_NEW;
    if (cas_acq_rel(&o->state, &s, ONCE_RUNNING)) {
        store_relaxed(&o->runner, key);
        fn();
        store_relaxed(&o->runner, 0);
        if (xchg_acq_rel(&o->state, ONCE_DONE) == ONCE_WAITED)
            weft_unpark(&o->state, -1);
        return 0;
    }
    if (load_relaxed(&o->runner) == key)
        return -EDEADLK;
    for (;;) {
        s = load_acquire(&o->state);
        if (s == ONCE_DONE)
            return 0;
        if (s == ONCE_RUNNING && !cas_acq_rel(&o->state, &s, ONCE_WAITED))
            continue;
        weft_park(&o->state, ONCE_WAITED, WEFT_FOREVER);
    }
}
