/*
 * handoff.c - blocking sections: keeping a worker busy while its kernel
 * thread is stuck in a call weft cannot turn into a park.
 *
 * Some calls block the kernel thread whatever weft does: reading a regular
 * file (O_NONBLOCK means nothing to one), code that is not weft-aware, a
 * library's own waits. A weft thread brackets such a call with
 * weft__blocking_enter and weft__blocking_leave (weft_blocking, and the fd
 * wrappers on regular files, do). Inside the section its M (kernel thread)
 * is said to be blocking; the worker (P) it runs, with its queues, its
 * timers and every thread in them, would wait for the call to end. So the
 * monitor takes the worker from an M that has been blocking for about
 * 20 us and gives it to a spare M, which runs the worker's threads from
 * there (seed 001: user threads must not wait while their kernel thread is
 * blocked). When the call ends, its M finds its worker gone, queues its
 * thread on the global queue for whichever worker takes it, and becomes a
 * spare itself. Nothing is handed back: the worker stays with the M that
 * has it, as in Go (runtime/proc.go: entersyscall, retake, exitsyscall).
 *
 * The worker's pstate word (internal.h) decides who owns it. The owner
 * stores epoch|P_BLOCKING on entry and on exit CASes it back to epoch|P_RUN.
 * The monitor CASes epoch|P_BLOCKING to (epoch+1)|P_RUN and then gives the
 * worker to a spare. Exactly one CAS succeeds. The epoch keeps an old M
 * whose call outlived a hand-off from succeeding against a later blocking
 * section of the worker's new M (ABA).
 *
 * While blocking, the caller is a plain kernel thread to weft: tls_k and
 * tls_w are NULL, so a weft call it makes in the section (weft_blocking's
 * fn may lock a weft mutex) blocks the kernel thread on a futex and never
 * touches the worker, which another M may own by then. weft_self() is 0
 * there. The thread stays k->cur, so the overflow report still names it
 * (through tls_blocking).
 *
 * When to take a worker. The monitor samples each blocking worker's
 * block_seq: a section it saw at its previous look, 20 us or more ago, is
 * old enough. It takes the worker if the worker has anything to run or
 * timers pending, or if no other M is idle or spinning (someone must run
 * the global queue), or once the section is 10 ms old. Idle Ms are not
 * woken for a worker nobody needs.
 *
 * Ticks. The monitor ticks every millisecond while anything runs, too
 * coarse for 20 us. A blocking section that finds monitor_fast clear sets
 * it and wakes the monitor, which then ticks every 20 us until it has
 * seen no blocking section for 10 ms. It clears monitor_fast and then
 * looks at every worker's pstate again; entry stores pstate and then
 * reads monitor_fast (all seq_cst), so either the monitor's second look
 * sees the new section or the section sees the flag clear and wakes it.
 * A process that blocks now and then pays one futex wake per burst.
 *
 * Spares. An M without a worker waits on its spare_word on the spare
 * list. The monitor takes a spare off the list first (SPARE_CLAIMED), then
 * makes its CAS, and puts the spare back if the CAS failed (the section
 * ended first). With no spare it makes an M, which puts itself on the
 * list, and takes the worker at a later tick: the monitor never waits for
 * a thread to start. A spare unused for 10 s exits (its struct is kept for
 * the next M). At most MAX_KTHREADS Ms exist; past that a blocking worker
 * waits for its call, as it would without weft.
 *
 * Rejected: running every such call on a pool thread and parking the
 * caller (a thread switch and a wake-up for every read of a cached file,
 * which the section makes a handful of atomics); handing off at entry
 * without waiting (the same cost for calls that do not block at all).
 */
#include "sched/sched.h"

#include <errno.h>

#define RETAKE_NS 20000           /* a section this old may lose its worker */
#define RETAKE_ALWAYS_NS 10000000 /* ... and this old, even an idle one */
#define FAST_HOLD_NS 10000000     /* fast ticks last this long after the last section */
#define MAX_KTHREADS 10000

enum { SPARE_WAITING = 0, SPARE_GIVEN, SPARE_CLAIMED };

__thread struct kthread *weft__tls_blocking __attribute__((tls_model("initial-exec")));

/* ---- the section ------------------------------------------------------- */

void weft__blocking_enter(struct blocking *b)
{
    struct runtime *rt = &weft__rt;
    struct kthread *k = weft__kthread();
    b->k = NULL;
    if (!k || !k->cur)
        return; /* a plain kernel thread: nothing to hand off */
    struct worker *w = k->w;
    b->k = k;
    b->pstate = load_relaxed(&w->pstate); /* the owner's own: epoch|P_RUN */
    store_relaxed(&w->block_seq, w->block_seq + 1);
    store_seq(&w->pstate, b->pstate | P_BLOCKING);
    weft__tls_blocking = k;
    weft__kthread_set(NULL);
    /* Read after the store above: pairs with the monitor's clear-then-look
     * (see top). */
    if (!load_seq(&rt->monitor_fast)) {
        store_seq(&rt->monitor_fast, 1);
        weft__monitor_wake();
    }
}

void weft__blocking_leave(struct blocking *b)
{
    struct kthread *k = b->k;
    if (!k)
        return;
    /* No switch happened since enter, so k is still this kernel thread. */
    weft__tls_blocking = NULL;
    uint32_t expected = b->pstate | P_BLOCKING;
    if (likely(cas_seq(&k->w->pstate, &expected, b->pstate))) {
        weft__kthread_set(k);
        return;
    }
    weft__sched_lost_worker(k); /* the monitor took the worker */
}

int64_t weft_blocking(int64_t (*fn)(void *), void *arg)
{
    if (!fn)
        return -EINVAL;
    /* It may block, so a stopped thread does not start it; one stopped
     * while fn runs sees the stop at its next blocking call (fn itself
     * cannot be cut short). */
    if (weft__stop_self() & ST_STOP)
        return -ECANCELED;
    struct blocking b;
    weft__blocking_enter(&b);
    int64_t r = fn(arg);
    weft__blocking_leave(&b);
    return r;
}

/* ---- spares ------------------------------------------------------------ */

bool weft__spare_wait(struct kthread *k, bool born)
{
    struct runtime *rt = &weft__rt;
    ilock(&rt->spare_lock);
    store_relaxed(&k->spare_word, SPARE_WAITING);
    k->spare_next = rt->spares;
    rt->spares = k;
    iunlock(&rt->spare_lock);
    if (born)
        fetch_sub_seq(&rt->spare_coming, 1); /* on the list now */
    int64_t until = weft_now() + rt->spare_idle_ns;
    for (;;) {
        /* Pairs with the release in give(): k->w is set before it. */
        uint32_t s = load_acquire(&k->spare_word);
        if (s == SPARE_GIVEN)
            break;
        int64_t deadline = s == SPARE_CLAIMED ? -1 : until;
        if (weft__futex_wait(&k->spare_word, s, deadline) != -ETIMEDOUT)
            continue;
        ilock(&rt->spare_lock);
        if (load_relaxed(&k->spare_word) == SPARE_WAITING) {
            /* Still on the list, unused: leave it and exit. */
            struct kthread **p = &rt->spares;
            while (*p != k)
                p = &(*p)->spare_next;
            *p = k->spare_next;
            iunlock(&rt->spare_lock);
            return false;
        }
        iunlock(&rt->spare_lock);
    }
    weft__kthread_set(k);
    return true;
}

/* Takes a spare off the list, or NULL; asks for one to be made if there
 * is none and none is on its way. Monitor only. */
static struct kthread *spare_claim(void)
{
    struct runtime *rt = &weft__rt;
    ilock(&rt->spare_lock);
    struct kthread *k = rt->spares;
    if (k) {
        rt->spares = k->spare_next;
        store_relaxed(&k->spare_word, SPARE_CLAIMED);
    }
    iunlock(&rt->spare_lock);
    if (!k && !load_seq(&rt->spare_coming) && load_seq(&rt->nkthreads) < MAX_KTHREADS) {
        fetch_add_seq(&rt->spare_coming, 1);
        if (!weft__kthread_new(NULL)) /* comes onto the list by itself */
            fetch_sub_seq(&rt->spare_coming, 1);
    }
    return k;
}

/* Puts back a spare the monitor claimed but did not need. */
static void spare_unclaim(struct kthread *k)
{
    struct runtime *rt = &weft__rt;
    ilock(&rt->spare_lock);
    k->spare_next = rt->spares;
    rt->spares = k;
    store_relaxed(&k->spare_word, SPARE_WAITING);
    iunlock(&rt->spare_lock);
    weft__futex_wake(&k->spare_word, 1); /* it waits without a deadline */
}

/* Gives worker w, just taken, to spare k. */
static void give(struct worker *w, struct kthread *k)
{
    k->w = w;
    store_release(&w->k, k); /* pairs with wakep and weft__key_running */
    store_release(&k->spare_word, SPARE_GIVEN); /* pairs with weft__spare_wait */
    weft__futex_wake(&k->spare_word, 1);
}

/* ---- the monitor's look ------------------------------------------------ */

static bool worth_taking(struct worker *w, int64_t held)
{
    struct runtime *rt = &weft__rt;
    if (held >= RETAKE_ALWAYS_NS || !runq_empty(w) || load_relaxed(&w->nheap) ||
        load_relaxed(&w->inbox_n))
        return true;
    return !load_seq(&rt->nidle) && !load_seq(&rt->nspinning);
}

/* One look at every worker; returns whether any is blocking. */
static bool scan(int64_t now, bool take)
{
    struct runtime *rt = &weft__rt;
    bool any = false;
    for (int i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];
        uint32_t ps = load_seq(&w->pstate);
        if (!(ps & P_BLOCKING))
            continue;
        any = true;
        if (!take)
            continue;
        uint32_t seq = load_relaxed(&w->block_seq);
        if (seq != w->mon_seq) {
            w->mon_seq = seq; /* a section the monitor has not seen yet */
            w->mon_seq_since = now;
            continue;
        }
        int64_t held = now - w->mon_seq_since;
        if (held < RETAKE_NS || !worth_taking(w, held))
            continue;
        struct kthread *k = spare_claim();
        if (!k)
            continue; /* one is being made: next tick */
        uint32_t expected = ps;
        if (cas_seq(&w->pstate, &expected, (ps & ~P_BLOCKING) + P_EPOCH))
            give(w, k);
        else
            spare_unclaim(k); /* the section ended first */
    }
    return any;
}

bool weft__handoff_scan(int64_t now)
{
    struct runtime *rt = &weft__rt;
    static int64_t last_seen;
    if (!load_relaxed(&rt->monitor_fast))
        return scan(now, true);
    if (scan(now, true)) {
        last_seen = now;
        return true;
    }
    if (now - last_seen < FAST_HOLD_NS)
        return false;
    /* Quiet for long enough: back to slow ticks, then look once more (see
     * top: a section that began meanwhile either shows here or saw the
     * flag clear and wakes the monitor). */
    store_seq(&rt->monitor_fast, 0);
    if (scan(now, false)) {
        store_seq(&rt->monitor_fast, 1);
        last_seen = now;
        return true;
    }
    return false;
}
