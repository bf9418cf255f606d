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
 *
 * Stops. A stopper knows the thread, not the queue its wait is in, so a
 * wait that a stop may end is also published in the thread's descriptor,
 * ut->stop_wait, for as long as the thread blocks in it. The owner (W) and
 * a stopper (S) each make a seq_cst write and then a seq_cst read of the
 * other's word, Dekker-style:
 *
 *   W1  xchg ut->stop_wait = w          S1  CAS ut->stop |= ST_STOP
 *   W2  read ut->stop                   S2  read ut->stop_wait
 *       stopped: claim w (STOPPED)          a wait p: take it (CAS p ->
 *       and do not park                         BUSY), claim p (STOPPED),
 *   W3  park unless claimed above               put p back, release p if
 *   W4  unpublish: CAS w -> NULL,               the claim won
 *       retrying while it is BUSY
 *
 * No stop is lost. In the single order of seq_cst operations, either W2
 * comes after S1 and W sees the flag, or W2 comes before S1, and then W1
 * precedes S2, so S sees w (or BUSY: another stopper holds w, and S waits
 * for it to put w back). Two CPUs, the second case:
 *
 *   CPU 0 (W)                           CPU 1 (S)
 *   W1 stop_wait = w
 *   W2 reads ut->stop: no flag
 *                                       S1 sets ST_STOP
 *   W3 parks                            S2 reads w; CAS w -> BUSY
 *                                       claim(w, STOPPED) wins
 *                                       stop_wait = w; release(w): ready
 *   runs again: state STOPPED
 *   W4 stop_wait = NULL; unlinks w from its queue; -ECANCELED
 *
 * Either way one CAS on w's state decides between the stop, the waker and
 * the deadline: a stop that loses (say to the data it would have cancelled)
 * leaves the call to return what it got, and the flag stays set for the
 * next call, which fails at once. W may also see the flag at W2 while S
 * claims: whichever CAS on the state wins, only the winner readies W.
 *
 * Waiter lifetime. w lives on W's stack. S touches w only while stop_wait
 * holds BUSY (its claim CAS), and after that only in weft__wait_release if
 * its claim won. W cannot return while stop_wait is BUSY: W4 spins until S
 * puts w back, and the acquire of W4's CAS pairs with the release of S's
 * put-back, so S's touches happen before W returns. A claim that won
 * leaves W parked until the release readies it, which is S's last touch:
 *
 *   CPU 0 (W)                           CPU 1 (S)
 *   W1 stop_wait = w; W2: no flag
 *                                       S2 reads w; CAS w -> BUSY
 *   woken by data: claim WOKEN won
 *   runs; W4: CAS fails (BUSY): spins
 *                                       claim(w, STOPPED) fails
 *                                       stop_wait = w (release)
 *   W4: CAS w -> NULL succeeds; returns the data; w dies
 *
 * Incarnations. A descriptor is reused by later spawns. A stopper aims at
 * the incarnation it was given (a handle's generation, or a group member
 * pinned by the group's lock): S1 succeeds only while ut->stop carries that
 * generation, and after taking p with BUSY S checks the generation again,
 * since the thread may have ended and a new one begun. While S holds BUSY
 * the current incarnation is blocked in p and cannot end, so that second
 * check names p's owner for certain; a stale stopper puts p back untouched.
 *
 * Rejected: a lock per thread taken by stoppers and by every stoppable
 * wait (two more atomics per wait than the pair above, and a lock on the
 * path of every I/O wait); a stop flag checked only when a wait begins
 * (a wait already blocked would never be woken).
 */
#include "sync/sync.h"

#include <errno.h>
#include <sched.h>

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

/* Waits out a stopper's moment with the wait (a few instructions on
 * another CPU, unless its kernel thread was preempted there). */
static inline void busy_pause(int spins)
{
    if (spins < 1000)
        cpu_relax();
    else
        sched_yield();
}

/* W1 and W2 (see top): true when a stop was requested already and this
 * thread claimed its own wait, so it must not park. */
static bool publish(struct uthread *ut, struct wait *w)
{
    (void)xchg_seq(&ut->stop_wait, w);
    return (load_seq(&ut->stop) & ST_STOP) && weft__wait_claim(w, WAIT_STOPPED);
}

/* W4: only stoppers write stop_wait besides its owner, and they always
 * put back what they took, so it holds w or BUSY. */
static void unpublish(struct uthread *ut, struct wait *w)
{
    struct wait *p = w;
    /* Acquire: pairs with the stopper's put-back; its touches of w are
     * done once this succeeds. */
    for (int spins = 0; !cas_acq_rel(&ut->stop_wait, &p, (struct wait *)NULL); spins++) {
        p = w;
        busy_pause(spins);
    }
}

uint32_t weft__wait_block(struct wait *w, int64_t deadline, bool stop)
{
    struct uthread *ut = w->ut;
    if (!ut)
        return block_kernel(w, deadline);
    if (stop && publish(ut, w)) {
        weft__wait_abandon(w); /* claimed by ourselves: nobody readies us */
        unpublish(ut, w);
        return WAIT_STOPPED;
    }
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
    if (stop)
        unpublish(ut, w);
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

void weft__wait_stop(struct uthread *ut, uint32_t gen, uint32_t flags)
{
    /* S1. Flags already there mean an earlier stopper of this incarnation
     * made this same CAS and did (or is doing) the rest. */
    uint64_t old = load_relaxed(&ut->stop), want;
    do {
        if ((uint32_t)(old >> 32) != gen)
            return; /* that incarnation has ended */
        want = old | flags;
        if (want == old)
            return;
    } while (!cas_seq(&ut->stop, &old, want));

    /* S2 and on. */
    for (int spins = 0;; spins++) {
        struct wait *p = load_seq(&ut->stop_wait);
        if (!p)
            return; /* not blocked in a stoppable wait: W2 will see the flag */
        if (p == STOP_WAIT_BUSY || !cas_acq_rel(&ut->stop_wait, &p, STOP_WAIT_BUSY)) {
            busy_pause(spins); /* another stopper has it, or it changed */
            continue;
        }
        /* p's owner is blocked in it and cannot end: its generation is
         * the one in the word now. */
        bool won = (uint32_t)(load_relaxed(&ut->stop) >> 32) == gen &&
                   weft__wait_claim(p, WAIT_STOPPED);
        store_release(&ut->stop_wait, p); /* pairs with unpublish */
        if (won)
            weft__wait_release(p); /* last touch: the owner is parked until it */
        return;
    }
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
