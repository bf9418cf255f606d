/*
 * wait.c - one blocking of one thread, ended exactly once (sync.h).
 *
 * A user thread gives its worker away (weft__park_current) and is readied
 * by the winner. Its deadline is a timer in its worker's heap whose claim
 * is the same CAS a waker makes. Whatever ended the wait, the thread
 * cancels its own timer when it runs again: the cancel takes the heap lock
 * and so waits out a worker that is expiring the timer, after which
 * nothing refers to it (timer.c). A waker therefore never touches the
 * timer, and a timer armed after a waker already won is harmless.
 *
 * A kernel thread that is not a worker sleeps on the futex word kword,
 * with its deadline given to the kernel. When the futex times out it makes
 * the CAS itself; if a waker won instead, it waits (without limit) for the
 * waker's kword store, the waker's last touch.
 */
#include "sync/sync.h"

#include <errno.h>

static inline struct wait *wait_of(struct timer *t)
{
    return (struct wait *)((char *)t - offsetof(struct wait, timer));
}

static bool timer_claim(struct timer *t)
{
    return weft__wait_claim(wait_of(t), WAIT_TIMEDOUT);
}

static void timer_expire(struct timer *t)
{
    weft__ready(wait_of(t)->ut);
}

void weft__wait_prepare(struct wait *w)
{
    struct uthread *ut = weft__current();
    w->ut = ut;
    w->state = WAIT_PENDING;
    w->kword = 0;
    w->token = 0;
    w->armed = false;
    if (ut)
        store_relaxed(&ut->switching, 1); /* published by the queue's lock */
}

void weft__wait_abandon(struct wait *w)
{
    if (w->ut)
        store_relaxed(&w->ut->switching, 0);
}

static uint32_t block_kernel(struct wait *w, int64_t deadline)
{
    for (;;) {
        if (load_acquire(&w->kword)) /* pairs with wait_release */
            return load_relaxed(&w->state);
        if (weft__futex_wait(&w->kword, 0, deadline) != -ETIMEDOUT)
            continue;
        if (weft__wait_claim(w, WAIT_TIMEDOUT))
            return WAIT_TIMEDOUT;
        deadline = -1; /* a waker won; its kword store is coming */
    }
}

uint32_t weft__wait_block(struct wait *w, int64_t deadline)
{
    struct uthread *ut = w->ut;
    if (!ut)
        return block_kernel(w, deadline);
    if (deadline >= 0) {
        w->timer.when = deadline;
        w->timer.idx = -1;
        w->timer.claim = timer_claim;
        w->timer.expire = timer_expire;
        w->armed = true;
        weft__timer_add(weft__kthread()->w, &w->timer);
    }
    weft__park_current(ut);
    if (w->armed)
        weft__timer_cancel(&w->timer);
    return load_acquire(&w->state); /* pairs with the winner's CAS */
}

void weft__wait_release(struct wait *w)
{
    struct uthread *ut = w->ut;
    if (ut) {
        weft__ready(ut);
        return;
    }
    store_release(&w->kword, 1); /* pairs with block_kernel; w may die now */
    weft__futex_wake(&w->kword, 1);
}

bool weft__key_running(uintptr_t key)
{
    if (key & 1)
        return true;
    struct runtime *rt = &weft__rt;
    int n = load_acquire(&rt->state) == 2 ? rt->nworkers : 0;
    for (int i = 0; i < n; i++) {
        struct kthread *k = load_acquire(&rt->workers[i].k); /* pairs with the hand-off */
        if ((uintptr_t)load_relaxed(&k->cur) == key)
            return true;
    }
    return false;
}
