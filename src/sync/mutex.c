/*
 * mutex.c - an adaptive, eventually fair mutex on the parking lot.
 *
 * The state word has three bits: LOCKED; PARKED (some thread may be
 * queued in the parking lot on &m->state); WOKEN (a thread that was just
 * woken is on its way to take the mutex, so an unlock need not wake
 * another: Go's sync.Mutex has a flag like it). owner is the key of
 * the holder (weft__self_key), written by the holder only, so a thread
 * that reads its own key there holds the mutex; it makes unlock by a
 * non-owner -EPERM and relocking -EDEADLK.
 *
 *   lock:   CAS 0 -> LOCKED. One atomic. If the mutex is free but other
 *           bits are set, a second CAS takes it with them.
 *   unlock: read the state, CAS LOCKED off. One atomic. If PARKED is set
 *           without WOKEN, unlock_slow wakes one waiter.
 *
 * Both fast paths work while WOKEN or PARKED is set. They used to expect
 * exactly 0 and LOCKED, and a woken thread waits in its waker's runnext
 * slot until that worker switches or an idle one steals it, tens of
 * microseconds during which every lock and unlock of the running thread
 * took its slow path with two or three atomics: bench/sync's contended
 * counter spent most of its time there.
 *
 * Contention (seed 001's adaptive mutex). A locker that finds the mutex
 * held spins for a moment while the holder is running on another worker
 * (it will likely release soon, and parking costs two switches); it does
 * not spin when the holder is switched out (it cannot release until it
 * runs, perhaps on this very worker), nor when threads are parked already
 * (it would only queue behind them). The moment is short, SPIN_MAX rounds:
 * a locker that spins longer mostly wins, and two threads then trade the
 * mutex's cache line between two CPUs at every acquisition, which halved
 * the throughput of bench/sync's counter against parking, where the waiter
 * is woken onto the holder's worker and the two take turns there without
 * a cache miss. Then it sets PARKED and parks, validating
 * under the bucket lock that the state is still LOCKED and PARKED, so an
 * unlock either comes before the validation (and the locker retries) or
 * finds it queued. A thread woken with WOKEN set for it (token WOKE)
 * holds the bit until the CAS that takes the mutex or sets PARKED again; without that flag every unlock under
 * contention would wake a thread, and a stream of wake-ups that mostly
 * lose the race cost four times the throughput with 8 threads.
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
 * the next unlock finds nobody to wake and clears it. Only an unlock sets
 * WOKEN, and only when it is clear, so one thread at a time holds it; it
 * clears it when it takes the mutex or parks again. An unlock sets it only
 * when it leaves others parked (the token tells the woken thread): with
 * nobody else queued there is no wake-up to spare, and the bit would only
 * cost the running threads their second atomic until the woken one runs.
 */
#include "sync/sync.h"

#include <errno.h>

#define M_LOCKED 1u
#define M_PARKED 2u
#define M_WOKEN 4u

#define HANDOFF 1             /* token: the waker handed the mutex over */
#define WOKE 2                /* token: the waker set WOKEN for this waiter */
#define FAIR_NS 1000000       /* hand over to a waiter older than 1 ms */
#define SPIN_MAX 4            /* rounds of cpu_relax before parking */

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
    uint32_t s = load_relaxed(&m->state);
    return (s & (M_LOCKED | M_PARKED)) == (M_LOCKED | M_PARKED);
}

/* Takes a free mutex whatever its other bits say; a thread that holds the
 * WOKEN bit (mine) gives it up in the same CAS. */
static inline bool try_acquire(weft_mutex_t *m, uint32_t *s, uint32_t mine)
{
    while (!(*s & M_LOCKED)) {
        if (__atomic_compare_exchange_n(&m->state, s, (*s | M_LOCKED) & ~mine, 1,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return true;
    }
    return false;
}

/* Spinning pays only while the holder runs on another worker, and only
 * for a moment, and never behind threads already parked (s is the state
 * just read). (owner is 0 in the moment between a CAS and its store: the
 * holder is running.) */
static bool worth_spinning(weft_mutex_t *m, int spin, uint32_t s)
{
    if (spin >= SPIN_MAX || (s & M_PARKED))
        return false;
    if (spin)
        return true;
    uintptr_t o = load_relaxed(&m->owner);
    return !o || weft__key_running(o);
}

static void drop_woken(weft_mutex_t *m)
{
    __atomic_fetch_and(&m->state, ~M_WOKEN, __ATOMIC_RELAXED);
}

/* Not inlined: the fast paths then save no registers of their own. */
static __attribute__((noinline)) int lock_slow(weft_mutex_t *m, uintptr_t key, int64_t deadline)
{
    if (load_relaxed(&m->owner) == key)
        return -EDEADLK;

    uint32_t mine = 0; /* M_WOKEN while this thread holds that bit */
    /* A timed lock of a stopped thread fails at once, below, unless the
     * mutex is free: no spinning for it. */
    int spin = weft__stop_cuts(deadline, false) ? SPIN_MAX : 0;
    int64_t since = 0;
    for (;;) {
        uint32_t s = load_relaxed(&m->state);
        if (try_acquire(m, &s, mine))
            goto acquired;
        if (worth_spinning(m, spin, s)) {
            spin++;
            cpu_relax();
            continue;
        }
        if (!since) {
            since = weft_now();
            int r = 0;
            if (weft__stop_cuts(deadline, false))
                r = -ECANCELED; /* a timed lock of a stopped thread */
            else if (deadline >= 0 && since >= deadline)
                r = -ETIMEDOUT;
            if (r) {
                if (!mine)
                    return r;
                /* An unlock may have relied on our WOKEN and woken nobody:
                 * drop it, then take the mutex if that unlock has
                 * happened, or leave the waking to the unlock to come. */
                drop_woken(m);
                s = load_relaxed(&m->state);
                if (try_acquire(m, &s, 0))
                    goto acquired;
                return r;
            }
        }
        uint32_t want = (s | M_PARKED) & ~mine;
        if (want != s && !__atomic_compare_exchange_n(&m->state, &s, want, 0, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED))
            continue;
        mine = 0;
        uintptr_t token = 0;
        /* Only a timed lock is cut short by a stop: a stopping thread
         * must still be able to take the locks its cleanup needs. */
        int r = weft__park_ex(&m->state, validate_parked, NULL, m, deadline, since, &token,
                              deadline >= 0);
        if (r == 0 && token == HANDOFF) {
            /* The unlocker left it LOCKED for us. Its critical section
             * precedes its claim of our wait (a release CAS), which
             * wait_block read with acquire. */
            goto acquired;
        }
        if (r == 0) {
            mine = token == WOKE ? M_WOKEN : 0; /* the unlocker set it for us */
            spin = 0;
        } else if (r == -ETIMEDOUT || r == -ECANCELED) {
            s = load_relaxed(&m->state);
            if (try_acquire(m, &s, 0))
                goto acquired;
            return r;
        }
    }
acquired:
    store_relaxed(&m->owner, key);
    return 0;
}

/* The lock of a plain kernel thread, whose key takes a call; lock_slow
 * tries the mutex before anything else. */
static __attribute__((noinline)) int lock_outside(weft_mutex_t *m, int64_t deadline)
{
    return lock_slow(m, weft__self_key(), deadline);
}

/* The fast paths below keep nothing across a call (every call is the
 * last thing they do), so they save no registers: on this path, which
 * pthread_mutex_lock makes in a handful of instructions, that is most of
 * the difference. */
int weft_mutex_timedlock(weft_mutex_t *m, int64_t deadline)
{
    if (unlikely(!m))
        return -EINVAL;
    struct kthread *k = weft__kthread();
    struct uthread *ut = k ? load_relaxed(&k->cur) : NULL;
    if (unlikely(!ut))
        return lock_outside(m, deadline);
    uint32_t s = 0;
    if (likely(__atomic_compare_exchange_n(&m->state, &s, M_LOCKED, 0, __ATOMIC_ACQUIRE,
                                           __ATOMIC_RELAXED)) ||
        (!(s & M_LOCKED) && __atomic_compare_exchange_n(&m->state, &s, s | M_LOCKED, 0,
                                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))) {
        store_relaxed(&m->owner, (uintptr_t)ut);
        return 0;
    }
    return lock_slow(m, (uintptr_t)ut, deadline);
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
    if (!try_acquire(m, &s, 0))
        return -EBUSY;
    store_relaxed(&m->owner, weft__self_key());
    return 0;
}

static uintptr_t unlock_decide(void *ctx, struct unpark_info info)
{
    weft_mutex_t *m = ctx;
    /* Under the bucket lock nobody parks and no locker takes the held
     * mutex, but a locker may still set PARKED on its way to the bucket
     * lock: hence the CAS loops. */
    uint32_t s = load_relaxed(&m->state), next;
    /* WOKEN spares the next unlocks a wake-up only while others are
     * parked; with nobody else queued it would only keep them off the
     * one-atomic fast paths until the woken thread runs. */
    bool woke = info.woken && info.more;
    if (info.woken && weft_now() - info.since > FAIR_NS) {
        do
            next = (s & M_WOKEN) | M_LOCKED | (info.more ? M_PARKED : 0);
        while (!__atomic_compare_exchange_n(&m->state, &s, next, 1, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED));
        return HANDOFF;
    }
    do
        next = (s & M_WOKEN) | (woke ? M_WOKEN : 0) | (info.more ? M_PARKED : 0);
    while (!__atomic_compare_exchange_n(&m->state, &s, next, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
    return woke ? WOKE : 0;
}

/* PARKED is set. Wake one waiter, unless a woken thread is already on
 * its way to take the mutex (WOKEN): then just release. */
static __attribute__((noinline)) void unlock_slow(weft_mutex_t *m)
{
    uint32_t s = load_relaxed(&m->state);
    for (;;) {
        if (!(s & M_PARKED) || (s & M_WOKEN)) {
            if (__atomic_compare_exchange_n(&m->state, &s, s & ~M_LOCKED, 1, __ATOMIC_RELEASE,
                                            __ATOMIC_RELAXED))
                return;
            continue;
        }
        /* Still LOCKED: unlock_decide releases it or hands it over. */
        weft__unpark_ex(&m->state, 1, unlock_decide, m);
        return;
    }
}

static inline __attribute__((always_inline)) void release(weft_mutex_t *m)
{
    store_relaxed(&m->owner, 0);
    uint32_t s = M_LOCKED;
    /* Pairs with the acquire of the next locker's CAS. */
    if (unlikely(!__atomic_compare_exchange_n(&m->state, &s, 0, 0, __ATOMIC_RELEASE,
                                              __ATOMIC_RELAXED)))
        unlock_slow(m);
}

void weft__mutex_release(weft_mutex_t *m)
{
    release(m);
}

/* The unlock of a plain kernel thread: no preemption point to pass. */
static __attribute__((noinline)) int unlock_outside(weft_mutex_t *m)
{
    if (load_relaxed(&m->owner) != weft__self_key())
        return -EPERM;
    release(m);
    return 0;
}

static __attribute__((noinline)) int unlock_parked(weft_mutex_t *m)
{
    unlock_slow(m);
    weft__preempt_point();
    return 0;
}

static __attribute__((noinline)) int unlock_yield(void)
{
    weft__preempt_yield();
    return 0;
}

int weft_mutex_unlock(weft_mutex_t *m)
{
    if (unlikely(!m))
        return -EINVAL;
    struct kthread *k = weft__kthread();
    struct uthread *ut = k ? load_relaxed(&k->cur) : NULL;
    if (unlikely(!ut))
        return unlock_outside(m);
    if (unlikely(load_relaxed(&m->owner) != (uintptr_t)ut))
        return -EPERM;
    store_relaxed(&m->owner, 0);
    uint32_t s = load_relaxed(&m->state);
    /* Pairs with the acquire of the next locker's CAS. */
    if (unlikely((s & (M_PARKED | M_WOKEN)) == M_PARKED) ||
        unlikely(!__atomic_compare_exchange_n(&m->state, &s, s & ~M_LOCKED, 0, __ATOMIC_RELEASE,
                                              __ATOMIC_RELAXED)))
        return unlock_parked(m);
    /* weft__preempt_point, with the worker read once more: the thread
     * has not switched since k was read, but a blocking section or a
     * hand-off may since have changed what tls_w says. */
    struct worker *w = weft__worker();
    if (w && unlikely(load_relaxed(&w->preempt_tick) == w->tick + 1))
        return unlock_yield();
    return 0;
}

/* For weft_cond_wait: does the caller hold m? */
bool weft__mutex_held(weft_mutex_t *m)
{
    return load_relaxed(&m->owner) == weft__self_key();
}
