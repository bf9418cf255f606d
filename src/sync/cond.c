/*
 * cond.c - condition variables on the parking lot, Mesa semantics.
 *
 * A waiter parks on &c->waiters. The parking lot's validate callback runs
 * under the bucket lock with the waiter about to be queued: it sets
 * waiters = 1. The mutex is released only after that, in before_sleep,
 * once the waiter is queued. So a signaller that changed the condition
 * under the mutex, after the waiter checked it, finds waiters != 0 and
 * the waiter queued: no lost wake-up, and no wake-up the waiter did not
 * ask for (a waiter returns 0 only when a signal chose it).
 *
 * signal and broadcast read waiters first and skip the parking lot when
 * it is 0; the unpark callback stores whether waiters remain, under the
 * same bucket lock parkers set it under, so the hint is never wrongly 0.
 *
 * broadcast wakes every waiter, and they then take turns at the mutex.
 * (Moving them straight onto the mutex's queue, a requeue, would save
 * those wake-ups; not done yet.)
 */
#include "sync/sync.h"

#include <errno.h>

int weft_cond_init(weft_cond_t *c)
{
    if (!c)
        return -EINVAL;
    *c = (weft_cond_t)WEFT_COND_INIT;
    return 0;
}

static uintptr_t cond_after(void *ctx, struct unpark_info info);

int weft_cond_destroy(weft_cond_t *c)
{
    if (!c)
        return -EINVAL;
    /* The hint may be stale (a waiter's deadline passed): ask the
     * parking lot, waking nobody. */
    if (load_acquire(&c->waiters))
        weft__unpark_ex(&c->waiters, 0, cond_after, c);
    return load_acquire(&c->waiters) ? -EBUSY : 0;
}

struct cond_wait {
    weft_cond_t *c;
    weft_mutex_t *m;
};

static bool cond_validate(void *ctx)
{
    struct cond_wait *cw = ctx;
    store_relaxed(&cw->c->waiters, 1); /* published by the mutex unlock */
    return true;
}

static void cond_before_sleep(void *ctx)
{
    struct cond_wait *cw = ctx;
    weft__mutex_release(cw->m); /* queued already: no preemption point */
}

int weft_cond_wait(weft_cond_t *c, weft_mutex_t *m, int64_t deadline)
{
    if (!c || !m)
        return -EINVAL;
    if (!weft__mutex_held(m))
        return -EPERM;
    /* A wait always waits: a stop cuts a timed one short before m is
     * released, an untimed one never (the waiter may need the signal to
     * finish cleaning up). */
    if (weft__stop_cuts(deadline, false))
        return -ECANCELED;
    if (deadline >= 0 && deadline <= weft_now())
        return -ETIMEDOUT;
    struct cond_wait cw = {c, m};
    int r = weft__park_ex(&c->waiters, cond_validate, cond_before_sleep, &cw, deadline, 0, NULL,
                          deadline >= 0);
    /* The caller wants m back whatever happened; nothing can fail here
     * (the caller does not hold m, there is no deadline, and an untimed
     * lock is not cut short by a stop). */
    weft_mutex_lock(m);
    return r == -ETIMEDOUT || r == -ECANCELED ? r : 0;
}

static uintptr_t cond_after(void *ctx, struct unpark_info info)
{
    weft_cond_t *c = ctx;
    store_relaxed(&c->waiters, info.more ? 1 : 0);
    return 0;
}

static int cond_wake(weft_cond_t *c, int n)
{
    if (!c)
        return -EINVAL;
    /* Pairs with the mutex unlock after cond_validate (a signaller holding
     * the mutex sees the 1), or is a plain hint for one that does not. */
    if (!load_acquire(&c->waiters))
        return 0;
    weft__unpark_ex(&c->waiters, n, cond_after, c);
    return 0;
}

int weft_cond_signal(weft_cond_t *c)
{
    return cond_wake(c, 1);
}

int weft_cond_broadcast(weft_cond_t *c)
{
    return cond_wake(c, -1);
}
