/*
 * sync.h - the two blocking mechanisms every weft primitive is built on.
 *
 * struct wait: one blocking of one thread (user or kernel), ended exactly
 * once. Whoever may end it (a waker, the deadline, a stop) makes one CAS
 * on its state from WAIT_PENDING to its own outcome; the winner alone
 * makes the thread run again. A wait lives on the waiting thread's stack.
 *
 *   waiter                                  a waker
 *   ------                                  -------
 *   wait_prepare(&w)                        (finds w in some queue, under
 *   publish &w (under the queue's lock)      that queue's lock)
 *   drop the lock                           if (wait_claim(&w, WAIT_WOKEN)) {
 *   wait_block(&w, deadline, stop)              unlink w; w.token = ...;
 *   if not woken: unlink w (under the lock)     drop the lock
 *                                               wait_release(&w);  // last touch
 *                                           }
 *
 * A waker that loses the claim leaves w alone; its owner, ended by
 * something else, unlinks it under the queue's lock. The waker touches w
 * after dropping the lock only in wait_release, and after that not at all:
 * a user thread runs again (and may return, killing w) only once readied,
 * and a kernel thread returns only once kword is set, which is the last
 * store to w.
 *
 * A stop (src/stop/) is the third kind of winner: wait_block with stop
 * true also publishes w in the user thread's descriptor, where a stopper
 * finds it, claims it with WAIT_STOPPED and releases it; the owner then
 * unlinks w exactly as after a timeout and returns -ECANCELED. wait.c
 * argues why no stop is lost and why the stopper is done with w before its
 * owner returns. Which waits a stop ends is each call's business (the
 * rules are in weft.h); plain kernel threads are never stopped.
 *
 * wait_prepare sets the user thread's switching flag before w is
 * published, so a waker on another worker cannot resume the thread before
 * its registers are saved (internal.h). Between prepare and block the
 * thread must not switch; it may make other threads runnable.
 *
 * The parking lot (park.c) is a table of wait queues keyed by address,
 * the futex of user threads. Locks, condition variables and the rest are
 * a word of state plus the parking lot; channels (chan.c) keep their own
 * queues of waits, since a select waits on several at once.
 */
#ifndef WEFT_SYNC_SYNC_H
#define WEFT_SYNC_SYNC_H

#include "internal.h"

enum { WAIT_PENDING = 0, WAIT_WOKEN, WAIT_TIMEDOUT, WAIT_STOPPED };

/* uthread.stop_wait while a stopper examines the wait published there. */
#define STOP_WAIT_BUSY ((struct wait *)1)

struct wait {
    struct uthread *ut;   /* NULL for a kernel thread (not a worker) */
    uint32_t state;       /* atomic: WAIT_*; CAS from WAIT_PENDING decides */
    uint32_t kword;       /* atomic: a kernel thread may return when 1 */
    uintptr_t token;      /* written by the winning waker before release */
    bool armed;           /* the timer is (or was) in a heap */
    struct timer timer;   /* user thread with a deadline */
};

/* Binds w to the calling thread; for a user thread, sets switching. */
void weft__wait_prepare(struct wait *w);
/* Undoes prepare for a wait that was never published. */
void weft__wait_abandon(struct wait *w);
/* Blocks until the wait is ended; returns how (WAIT_WOKEN, WAIT_TIMEDOUT,
 * or WAIT_STOPPED). deadline < 0: no limit. stop: a stop of the calling
 * user thread ends the wait, one requested already at once (ignored on a
 * kernel thread). May switch threads. */
uint32_t weft__wait_block(struct wait *w, int64_t deadline, bool stop);

/* The stopper's half (wait.c): adds flags (ST_*) to the stop word of ut's
 * incarnation gen, and ends the wait that incarnation blocks in, if it
 * was published as one a stop ends. Does nothing to a later incarnation.
 * The caller keeps ut mapped (a group's lock, or a slot pin). Never
 * blocks; may make ut runnable. */
void weft__wait_stop(struct uthread *ut, uint32_t gen, uint32_t flags);

/* One CAS: does the caller end this wait, with outcome how? */
static inline bool weft__wait_claim(struct wait *w, uint32_t how)
{
    uint32_t s = WAIT_PENDING;
    return cas_acq_rel(&w->state, &s, how);
}

/* Makes the thread of a claimed wait run again. The caller's last touch of
 * w; call it after dropping the lock of the queue w was in. */
void weft__wait_release(struct wait *w);

/* ---- the parking lot, for weft's own primitives ------------------------ */

struct unpark_info {
    int woken;         /* threads this unpark ended */
    bool more;         /* some waiter on the address is still queued */
    int64_t since;     /* the first woken waiter's since (park_ex) */
};

/*
 * Parks the caller on addr if validate(ctx) returns true; validate runs
 * under the address's bucket lock, so an unpark of addr is ordered either
 * before it or after the caller is queued. before_sleep(ctx), if not NULL,
 * runs once the caller is queued and the lock is dropped (a condition
 * variable releases its mutex there). Returns 0 when unparked, with the
 * unparker's token in *token (if not NULL), -EAGAIN when validate said no,
 * -ETIMEDOUT when the deadline passed, -ECANCELED when stop is true and a
 * stop of the caller ended the wait (or had been requested already). since is what an unparker that
 * wakes this waiter first sees as info.since (a lock passes the time the
 * wait began, to decide when to be fair; others pass 0).
 */
int weft__park_ex(const void *addr, bool (*validate)(void *ctx), void (*before_sleep)(void *ctx),
                  void *ctx, int64_t deadline, int64_t since, uintptr_t *token, bool stop);

/* weft_park with the choice of whether a stop ends the wait (stop: then
 * -ECANCELED, also at once for a stopped caller that would have to wait);
 * weft_park itself lets a stop end only a timed park. May switch. */
int weft__park(const uint32_t *addr, uint32_t expected, int64_t deadline, bool stop);

/* Would a call that must wait with this deadline be cut short by a stop
 * now? always: the call is one a stop ends whatever its deadline (sleeps,
 * channels, semaphores, wait groups, I/O); else only a timed wait is. The
 * waits themselves catch a stop that comes later (wait.c); this lets a
 * stopped caller fail before it queues. */
static inline bool weft__stop_cuts(int64_t deadline, bool always)
{
    return (always || deadline >= 0) && (weft__stop_self() & ST_STOP);
}

/*
 * Unparks up to n waiters of addr (n < 0: all; 0: none, just the callback), oldest first. callback,
 * if not NULL, runs under the bucket lock after the waiters are chosen,
 * even if there were none; its result is the token the woken waiters get.
 * Returns the number woken.
 */
int weft__unpark_ex(const void *addr, int n, uintptr_t (*callback)(void *ctx, struct unpark_info info),
                    void *ctx);

/* Is the thread with this key running on a worker right now? (A kernel
 * thread's key counts as running: it is not scheduled by weft.) Racy by
 * nature; good for deciding whether to spin. */
bool weft__key_running(uintptr_t key);

/* Does the caller hold m? (mutex.c) */
bool weft__mutex_held(weft_mutex_t *m);
/* weft_mutex_unlock of a mutex the caller holds, without its preemption
 * point: for unlocks inside a wait (a condition variable releases its
 * mutex after it is queued, when it must not yield). */
void weft__mutex_release(weft_mutex_t *m);

#endif
