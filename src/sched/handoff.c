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
 * The worker's pstate word (internal.h) decides who owns it. Entering a
 * section, the owner stores a fresh epoch with P_BLOCKING; leaving, it
 * CASes that exact word to the same epoch without P_BLOCKING. The monitor
 * CASes the word it saw to the next epoch, without P_BLOCKING, and then
 * gives the worker to a spare. Exactly one CAS succeeds, and since every
 * section has its own epoch (64 bits: none repeats) the monitor takes
 * the very section it timed, and the old M's CAS fails whatever the
 * worker has done since.
 *
 * While blocking, the caller is a plain kernel thread to weft: tls_k and
 * tls_w are NULL, so a weft call it makes in the section (weft_blocking's
 * fn may lock a weft mutex) blocks the kernel thread on a futex and never
 * touches the worker, which another M may own by then. weft_self() is 0
 * there. The thread stays k->cur, so the overflow report still names it
 * (through tls_blocking).
 *
 * When to take a worker. The monitor notes each section's word when it
 * first sees it: a section it saw at an earlier look, 20 us or more ago,
 * is old enough. It takes the worker only if someone needs it: the worker
 * has threads or timers waiting, or no other M is idle or spinning (the
 * global queue needs a runner). A worker nobody needs stays with its
 * blocked M; new work goes to the other workers' queues, not to it.
 *
 * Ticks. The monitor ticks every millisecond while anything runs, too
 * coarse for 20 us, and ticks every 20 us (monitor_fast) only while a
 * section it has seen is worth taking and not yet taken, and for 1 ms
 * after weft_blocking woke it. weft_blocking, whose calls are expected to
 * block, wakes the monitor when it does not tick fast (one futex wake per
 * burst); the fd wrappers' sections on regular files, which mostly hit
 * the page cache, do not: the monitor finds the slow ones at its next
 * millisecond tick, and then watches closely. A kick the monitor misses
 * (it stops ticking fast just as a section reads the flag) costs only
 * that: the section is found at the next slow tick.
 *
 * Spares. An M without a worker waits on its spare_word on the spare
 * list. The monitor takes a spare off the list first (SPARE_CLAIMED), then
 * makes its CAS, and puts the spare back if the CAS failed (the section
 * ended first). With no spare it makes an M, which puts itself on the
 * list, and takes the worker at a later tick: the monitor never waits for
 * a thread to start. After a failure to make one it waits 10 ms before it
 * tries again. A spare unused for 10 s exits (its struct is kept for the
 * next M). At most MAX_KTHREADS Ms exist (each costs a few memory maps);
 * past that a blocking worker waits for its call, as it would without
 * weft.
 *
 * Rejected: running every such call on a pool thread and parking the
 * caller (a thread switch and a wake-up for every read of a cached file,
 * which the section makes a handful of atomics); handing off at entry
 * without waiting (the same cost for calls that do not block at all);
 * ticking every 20 us whenever sections happen (50,000 wake-ups a second
 * for a process that reads cached files now and then).
 */
#include "sched/sched.h"

#include <errno.h>

#define RETAKE_NS 20000           /* a section this old may lose its worker */
#define KICK_HOLD_NS 1000000      /* fast ticks after weft_blocking's kick */
#define RETRY_NS 10000000         /* after failing to make an M */
#define FAST_TICK_HOLD_NS 100000  /* fast ticks go on this long after a look
                                     that wanted them */
#define MAX_KTHREADS 4096

enum { SPARE_WAITING = 0, SPARE_GIVEN, SPARE_CLAIMED };

__thread struct kthread *weft__tls_blocking __attribute__((tls_model("initial-exec")));

/* ---- the section ------------------------------------------------------- */

void weft__blocking_enter(struct blocking *b, bool kick)
{
    struct runtime *rt = &weft__rt;
    struct kthread *k = weft__kthread();
    b->k = NULL;
    if (!k || !k->cur)
        return; /* a plain kernel thread: nothing to hand off */
    struct worker *w = k->w;
    b->k = k;
    /* The owner's own word: an epoch without P_BLOCKING. */
    b->pstate = (load_relaxed(&w->pstate) + P_EPOCH) | P_BLOCKING;
    store_seq(&w->pstate, b->pstate); /* pairs with the monitor's load and CAS */
    weft__tls_blocking = k;
    weft__kthread_set(NULL);
    if (kick && !load_relaxed(&rt->monitor_fast)) {
        store_relaxed(&rt->monitor_fast, 1); /* the next sections need not */
        store_relaxed(&rt->monitor_kicked, 1);
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
    uint64_t expected = b->pstate;
    if (likely(cas_seq(&k->w->pstate, &expected, b->pstate & ~P_BLOCKING))) {
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
    weft__blocking_enter(&b, true);
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
 * is none and none is on its way. Monitor only. *coming: a spare is on its
 * way (worth ticking fast for). */
static struct kthread *spare_claim(int64_t now, bool *coming)
{
    struct runtime *rt = &weft__rt;
    static int64_t failed_at = -RETRY_NS;
    ilock(&rt->spare_lock);
    struct kthread *k = rt->spares;
    if (k) {
        rt->spares = k->spare_next;
        store_relaxed(&k->spare_word, SPARE_CLAIMED);
    }
    iunlock(&rt->spare_lock);
    *coming = false;
    if (k)
        return k;
    if (load_seq(&rt->spare_coming)) {
        *coming = true;
        return NULL;
    }
    if (now - failed_at < RETRY_NS)
        return NULL;
    if (load_seq(&rt->nkthreads) >= MAX_KTHREADS) {
        failed_at = now;
        return NULL;
    }
    fetch_add_seq(&rt->spare_coming, 1);
    if (weft__kthread_new(NULL)) { /* comes onto the list by itself */
        *coming = true;
    } else {
        fetch_sub_seq(&rt->spare_coming, 1);
        failed_at = now;
    }
    return NULL;
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

/* Does anyone need w, whose M is blocked? */
static bool worth_taking(struct worker *w)
{
    struct runtime *rt = &weft__rt;
    if (!runq_empty(w) || load_relaxed(&w->nheap) || load_relaxed(&w->inbox_n))
        return true;
    return !load_seq(&rt->nidle) && !load_seq(&rt->nspinning);
}

bool weft__handoff_scan(int64_t now)
{
    struct runtime *rt = &weft__rt;
    static int64_t fast_until;
    bool any = false, watch = false;
    if (load_relaxed(&rt->monitor_kicked) && xchg_acq_rel(&rt->monitor_kicked, 0))
        fast_until = now + KICK_HOLD_NS;
    for (int i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];
        uint64_t ps = load_seq(&w->pstate);
        if (!(ps & P_BLOCKING))
            continue;
        any = true;
        if (ps != w->mon_pstate) {
            w->mon_pstate = ps; /* a section the monitor has not seen yet */
            w->mon_pstate_since = now;
            watch |= worth_taking(w);
            continue;
        }
        if (!worth_taking(w))
            continue;
        if (now - w->mon_pstate_since < RETAKE_NS) {
            watch = true;
            continue;
        }
        bool coming;
        struct kthread *k = spare_claim(now, &coming);
        if (!k) {
            watch |= coming; /* take it when the new M is there */
            continue;
        }
        uint64_t expected = ps;
        if (cas_seq(&w->pstate, &expected, (ps & ~P_BLOCKING) + P_EPOCH))
            give(w, k);
        else
            spare_unclaim(k); /* the section ended first */
    }
    if (watch && fast_until < now + FAST_TICK_HOLD_NS)
        fast_until = now + FAST_TICK_HOLD_NS;
    store_relaxed(&rt->monitor_fast, now < fast_until);
    return any;
}
