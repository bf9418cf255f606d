/*
 * mutex.c - an adaptive, eventually fair mutex on the parking lot.
 *
 * The state word has two bits: LOCKED, and PARKED (some thread may be
 * queued in the parking lot on &m->state). owner is the key of the holder
 * (weft__self_key), written by the holder only, so a thread that reads its
 * own key there holds the mutex; it makes unlock by a non-owner -EPERM and
 * relocking -EDEADLK.
 *
 *   lock:   CAS 0 -> LOCKED. One atomic.
 *   unlock: CAS LOCKED -> 0. One atomic. If PARKED is set, unlock_slow
 *           unparks one waiter.
 *
 * Contention (seed 001's adaptive mutex). A locker that finds the mutex
 * held spins while the holder is running on another worker (it will
 * likely release soon, and parking costs two switches), but not when
 * threads are already parked (spinning would overtake them) and not when
 * the holder is switched out (it cannot release until it runs, perhaps on
 * this very worker). Then it sets PARKED and parks, validating under the
 * bucket lock that the state is still LOCKED|PARKED, so an unlock either
 * comes before the validation (and the locker retries) or finds it queued.
 *
 * Fairness. Normally an unlock makes the mutex free and wakes the oldest
 * waiter to compete for it, so a running thread may barge ahead: that
 * keeps throughput high (the woken thread needs time to get scheduled). A
 * waiter that barged past can lose forever, though, so when the oldest
 * waiter has waited longer than FAIR_NS the unlock hands the mutex to it
 * directly: the state stays LOCKED and the waiter's token says it owns the
 * mutex. The decision and the new state are made in the unpark callback,
 * under the bucket lock, where no parker can slip in between. (WebKit's
 * WTF::Lock and Go's sync.Mutex starvation mode work the same way.)
 *
 * A waiter whose deadline passes leaves PARKED set even if it was the last;
 * the next unlock finds nobody to wake and clears it.
 */
#include "sync/sync.h"

#include <errno.h>

#define M_LOCKED 1u
#define M_PARKED 2u

#define HANDOFF 1             /* token: the waker handed the mutex over */
#define FAIR_NS 1000000       /* hand over to a waiter older than 1 ms */
#define SPIN_MAX 200          /* rounds of cpu_relax before parking */

int weft_mutex_init(weft_mutex_t *m)
{
    if (!m)
        return -EINVAL;
    *m = (weft_mutex_t)WEFT_MUTEX_INIT;
    return 0;
}

int weft_mutex_destroy(weft_mutex_t *m)
{
    if (!m)
        return -EINVAL;
    return load_relaxed(&m->state) & M_LOCKED ? -EBUSY : 0;
}

static bool validate_parked(void *ctx)
{
    weft_mutex_t *m = ctx;
    return load_relaxed(&m->state) == (M_LOCKED | M_PARKED);
}

/* Takes a free mutex whatever its PARKED bit says. */
static inline bool try_acquire(weft_mutex_t *m, uint32_t *s)
{
    while (!(*s & M_LOCKED)) {
        if (__atomic_compare_exchange_n(&m->state, s, *s | M_LOCKED, 1, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return true;
    }
    return false;
}

static int lock_slow(weft_mutex_t *m, uintptr_t key, int64_t deadline)
{
    if (load_relaxed(&m->owner) == key)
        return -EDEADLK;

    for (int spin = 0; spin < SPIN_MAX; spin++) {
        uint32_t s = load_relaxed(&m->state);
        if (try_acquire(m, &s))
            goto acquired;
        if (s & M_PARKED)
            break;
        if (spin % 16 == 0) {
            /* owner is 0 in the moment between a CAS and its store: the
             * holder is running then. */
            uintptr_t o = load_relaxed(&m->owner);
            if (o && !weft__key_running(o))
                break;
        }
        cpu_relax();
    }

    int64_t since = weft_now();
    if (deadline >= 0 && since >= deadline) {
        uint32_t s = load_relaxed(&m->state);
        if (try_acquire(m, &s))
            goto acquired;
        return -ETIMEDOUT;
    }
    for (;;) {
        uint32_t s = load_relaxed(&m->state);
        if (try_acquire(m, &s))
            goto acquired;
        if (!(s & M_PARKED) && !__atomic_compare_exchange_n(&m->state, &s, s | M_PARKED, 0,
                                                             __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            continue;
        uintptr_t token = 0;
        int r = weft__park_ex(&m->state, validate_parked, NULL, m, deadline, since, &token);
        if (r == 0 && token == HANDOFF) {
            /* The unlocker left it LOCKED for us. Its critical section
             * precedes its claim of our wait (a release CAS), which
             * wait_block read with acquire. */
            goto acquired;
        }
        if (r == -ETIMEDOUT) {
            s = load_relaxed(&m->state);
            if (try_acquire(m, &s))
                goto acquired;
            return -ETIMEDOUT;
        }
    }
acquired:
    store_relaxed(&m->owner, key);
    return 0;
}

int weft_mutex_timedlock(weft_mutex_t *m, int64_t deadline)
{
    if (unlikely(!m))
        return -EINVAL;
    uintptr_t key = weft__self_key();
    uint32_t s = 0;
    if (likely(__atomic_compare_exchange_n(&m->state, &s, M_LOCKED, 0, __ATOMIC_ACQUIRE,
                                           __ATOMIC_RELAXED))) {
        store_relaxed(&m->owner, key);
        return 0;
    }
    return lock_slow(m, key, deadline);
}

int weft_mutex_lock(weft_mutex_t *m)
{
    return weft_mutex_timedlock(m, WEFT_FOREVER);
}

int weft_mutex_trylock(weft_mutex_t *m)
{
    if (unlikely(!m))
        return -EINVAL;
    uint32_t s = load_relaxed(&m->state);
    if (!try_acquire(m, &s))
        return -EBUSY;
    store_relaxed(&m->owner, weft__self_key());
    return 0;
}

static uintptr_t unlock_decide(void *ctx, struct unpark_info info)
{
    weft_mutex_t *m = ctx;
    /* Under the bucket lock, the state is LOCKED|PARKED: lockers do not
     * CAS a held mutex and parkers wait for the bucket lock. */
    if (info.woken && weft_now() - info.since > FAIR_NS) {
        store_relaxed(&m->state, M_LOCKED | (info.more ? M_PARKED : 0));
        return HANDOFF;
    }
    /* Pairs with the acquire of the next locker's CAS. */
    store_release(&m->state, info.more ? M_PARKED : 0);
    return 0;
}

int weft_mutex_unlock(weft_mutex_t *m)
{
    if (unlikely(!m))
        return -EINVAL;
    if (unlikely(load_relaxed(&m->owner) != weft__self_key()))
        return -EPERM;
    store_relaxed(&m->owner, 0);
    uint32_t s = M_LOCKED;
    /* Pairs with the acquire of the next locker's CAS. */
    if (likely(__atomic_compare_exchange_n(&m->state, &s, 0, 0, __ATOMIC_RELEASE,
                                           __ATOMIC_RELAXED)))
        return 0;
    weft__unpark_ex(&m->state, 1, unlock_decide, m);
    return 0;
}

/* For weft_cond_wait: does the caller hold m? */
bool weft__mutex_held(weft_mutex_t *m)
{
    return load_relaxed(&m->owner) == weft__self_key();
}
