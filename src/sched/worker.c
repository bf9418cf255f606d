/*
 * worker.c - the kernel threads that run user threads, and how they idle.
 *
 * Each kernel thread (M) runs one worker (P) at a time; at start there is
 * one M per worker. More Ms are made only by the monitor, to take over the
 * worker of an M stuck in a blocking section (handoff.c); an M that lost
 * its worker that way waits as a spare, and exits after a while unused.
 * An M's own stack is the scheduler context (g0): it runs user threads
 * picked by sched_pick, and when there are none it looks for work in three
 * stages:
 *
 *   1. spin: a few dozen rounds of stealing half of another worker's ring,
 *      checking the global queue, its own timers and (every 8th round,
 *      without blocking) the I/O poller; runnext slots are
 *      taken only in the last round, so a hand-off between two threads on
 *      a busy worker is not broken up by an idle one;
 *   2. park: announce itself idle, check everything once more, then sleep
 *      on a futex until woken or until its earliest timer; or, if it is
 *      the one idle M that polls for I/O, in epoll_wait (io/poll.c), where
 *      kthread_wake reaches it through an eventfd;
 *   3. wake: whoever woke it already took it off the idle count.
 *
 * No lost wake-ups. A thread that makes work (weft__ready, spawn from a
 * non-worker) stores it, then wakep() issues a seq_cst fence and reads
 * nidle and nspinning. An M going to sleep stores parked = 1 and increments
 * nidle (seq_cst), then reads every queue. In the single total order of
 * seq_cst operations one of the two comes second and sees the other: either
 * the maker sees the idle M and wakes it, or the M sees the work. A maker
 * that sees nspinning > 0 wakes nobody; a spinner that stops spinning
 * without work goes through stage 2, whose re-check sees that work. The
 * last spinner to find work wakes another M, since work made while it spun
 * woke nobody.
 *
 * Workers block asynchronous signals but the preemption signal, so signals
 * sent to the process are handled by main or other kernel threads, never
 * on a user thread's stack.
 */
#include "sched/sched.h"
#include "arch/fiber.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPIN_ROUNDS 32
#define KTHREAD_STACK (256 * 1024)


bool kthread_wake(struct kthread *k)
{
    uint32_t one = 1;
    if (!load_relaxed(&k->parked) || !cas_seq(&k->parked, &one, 0))
        return false;
    fetch_sub_seq(&weft__rt.nidle, 1);
    /* Cleared parked, then reads who polls: pairs with weft__io_idle. */
    if (!weft__io_kick(k))
        weft__futex_wake(&k->parked, 1);
    return true;
}

void weft__wakep(void)
{
    struct runtime *rt = &weft__rt;
    static uint32_t rotor;
    fence_seq();
    if (!load_seq(&rt->nidle) || load_seq(&rt->nspinning))
        return;
    uint32_t start = fetch_add_relaxed(&rotor, 1);
    /* An M that idles owns a worker, so the workers' Ms are all there is
     * to wake; one read while a hand-off changes it is not parked. */
    for (int i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[(start + (uint32_t)i) % (uint32_t)rt->nworkers];
        if (kthread_wake(load_acquire(&w->k))) /* pairs with the hand-off */
            return;
    }
}

/* Tries every other worker once, starting at a rotating victim. */
static struct uthread *steal_round(struct worker *w, bool take_next)
{
    struct runtime *rt = &weft__rt;
    int n = rt->nworkers;
    int start = (int)(w->tick % (uint32_t)n);
    for (int i = 0; i < n; i++) {
        struct worker *v = &rt->workers[(start + i) % n];
        if (v == w)
            continue;
        struct uthread *ut = runq_steal(w, v, take_next);
        if (ut)
            return ut;
    }
    return NULL;
}

static struct uthread *spin(struct kthread *k)
{
    struct runtime *rt = &weft__rt;
    struct worker *w = k->w;
    fetch_add_seq(&rt->nspinning, 1);
    struct uthread *ut = NULL;
    for (int round = 0; round < SPIN_ROUNDS && !ut; round++) {
        ut = steal_round(w, round == SPIN_ROUNDS - 1);
        if (!ut && (round & 7) == 0)
            weft__io_poll_spin(); /* readies I/O waiters here (io/poll.c) */
        if (!ut)
            ut = sched_pick(w);
        for (int i = 0; !ut && i < 64; i++)
            cpu_relax();
    }
    if (fetch_sub_seq(&rt->nspinning, 1) == 1 && ut)
        weft__wakep();
    return ut;
}

/* Is there anything this M could run? Read after announcing idleness. */
static bool work_visible(struct worker *w)
{
    if (weft__any_runnable() || load_relaxed(&w->inbox_n))
        return true;
    int64_t next = weft__timers_next(w);
    return next >= 0 && next <= weft_now();
}

void weft__idle_leave(struct kthread *k)
{
    uint32_t one = 1;
    /* If a waker got here first it already took us off the count. */
    if (cas_seq(&k->parked, &one, 0))
        fetch_sub_seq(&weft__rt.nidle, 1);
    weft__monitor_kick();
}

static void idle(struct kthread *k)
{
    struct runtime *rt = &weft__rt;
    store_seq(&k->parked, 1);
    fetch_add_seq(&rt->nidle, 1);
    if (work_visible(k->w)) {
        weft__idle_leave(k);
        return;
    }
    int64_t deadline = weft__timers_next(k->w);
    /* One idle M sleeps in epoll_wait instead (io/poll.c). */
    if (weft__io_idle(k, deadline))
        return;
    while (load_acquire(&k->parked)) {
        if (weft__futex_wait(&k->parked, 1, deadline) == -ETIMEDOUT)
            break;
    }
    weft__idle_leave(k);
}

/* What every M blocks: all asynchronous signals (see top). Set once,
 * before the first M is made. */
static sigset_t kthread_mask;

static void mask_init(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    sigfillset(&kthread_mask);
    int keep[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS,
                  weft__preempt_signal()};
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
        sigdelset(&kthread_mask, keep[i]);
}

sigset_t weft__kthread_mask(void)
{
    mask_init(); /* before the first M, by the starter (init.c) */
    return kthread_mask;
}

/* An M that exits: gives back what it made for itself and leaves its
 * struct for the next M made, since a waker may still hold a pointer read
 * before the M lost its worker (wakep): it finds parked == 0 in it. */
static void kthread_exit(struct kthread *k)
{
    struct runtime *rt = &weft__rt;
    weft__overflow_thread_fini(k);
    if (k->stat_fd >= 0)
        close(k->stat_fd);
    k->stat_fd = -1;
    weft__kthread_set(NULL);
    fetch_sub_seq(&rt->nkthreads, 1);
    ilock(&rt->spare_lock);
    k->spare_next = rt->dead;
    rt->dead = k; /* the last touch: it may be reused from here */
    iunlock(&rt->spare_lock);
}

static void *kthread_main(void *arg)
{
    struct kthread *k = arg;
    pthread_sigmask(SIG_SETMASK, &kthread_mask, NULL);
    k->stat_fd = weft__preempt_stat_open();
    store_release(&k->tid, (uint32_t)gettid()); /* the monitor reads both */
    weft__futex_wake(&k->tid, 1);                /* weft__workers_start */
    weft__kthread_set(k);
    weft__overflow_thread_init(k);
    k->tsan_fiber = tsan_fiber_current();
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &k->g0_stack_lo, &k->g0_stack_size);
        pthread_attr_destroy(&a);
    }
    /* Schedule nothing before the starter has settled rt.nworkers, which
     * it lowers when fewer kernel threads could be made than asked (see
     * weft__workers_start). Pairs with the release and wake in start(). */
    while (load_acquire(&weft__rt.state) != 2)
        weft__futex_wait(&weft__rt.state, 1, -1);
    bool born = !k->w; /* made as a spare */
    for (;;) {
        if (unlikely(!k->w)) {
            /* A spare, or its worker went to another M while it blocked. */
            if (!weft__spare_wait(k, born))
                break;
            born = false;
            continue;
        }
        struct uthread *ut = k->handoff;
        k->handoff = NULL;
        if (!ut)
            ut = sched_pick(k->w);
        if (!ut)
            ut = spin(k);
        if (!ut) {
            idle(k);
            continue;
        }
        weft__sched_run(k, ut);
    }
    kthread_exit(k);
    return NULL;
}

struct kthread *weft__kthread_new(struct worker *w)
{
    struct runtime *rt = &weft__rt;
    static int next_id;
    ilock(&rt->spare_lock);
    struct kthread *k = rt->dead;
    if (k)
        rt->dead = k->spare_next;
    iunlock(&rt->spare_lock);
    if (!k && !(k = aligned_alloc(64, sizeof *k)))
        return NULL;
    memset(k, 0, sizeof *k);
    k->stat_fd = -1;
    k->w = w;
    k->id = fetch_add_relaxed(&next_id, 1);
    fetch_add_seq(&rt->nkthreads, 1);
    /* The new thread sets its own mask (kthread_main); it starts with
     * everything blocked so that nothing reaches it before that. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
#if !defined(WEFT_ASAN) && !defined(WEFT_TSAN)
    /* g0 runs the scheduler only (signal handlers use the alternate
     * stack): a small stack keeps thousands of spare Ms cheap. The
     * sanitizers' runtimes want the default. */
    pthread_attr_setstacksize(&attr, KTHREAD_STACK);
#endif
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&k->pt, &attr, kthread_main, k);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err) {
        fetch_sub_seq(&rt->nkthreads, 1);
        ilock(&rt->spare_lock);
        k->spare_next = rt->dead;
        rt->dead = k;
        iunlock(&rt->spare_lock);
        return NULL;
    }
    /* Named here, not by the thread itself, so that the name is there (in
     * top -H, ps -L, gdb) as soon as the thread is, even before it first
     * runs. A failure (no /proc) only loses the name. */
    char name[16];
    snprintf(name, sizeof name, "weft-m%d", k->id);
    pthread_setname_np(k->pt, name);
    pthread_detach(k->pt);
    return k;
}

int weft__workers_start(void)
{
    struct runtime *rt = &weft__rt;
    int n = rt->nworkers;
    rt->workers = aligned_alloc(64, sizeof(struct worker) * (size_t)n);
    if (!rt->workers)
        return -ENOMEM;
    memset(rt->workers, 0, sizeof(struct worker) * (size_t)n);
    for (int i = 0; i < n; i++)
        rt->workers[i].id = i;
    mask_init();
    int started = 0;
    for (int i = 0; i < n; i++) {
        struct kthread *k = weft__kthread_new(&rt->workers[i]);
        if (!k)
            break;
        rt->workers[i].k = k;
        started++;
    }
    if (started == 0)
        return -EAGAIN;
    /* Return only once each has opened its stat file: the runtime's
     * descriptors are then all there when the first weft call returns,
     * instead of appearing in the process a moment later and taking a
     * number the program just closed (t_io_errors met that). */
    for (int i = 0; i < started; i++) {
        struct kthread *k = rt->workers[i].k;
        while (!load_acquire(&k->tid))
            weft__futex_wait(&k->tid, 0, -1);
    }
    /* Fewer kernel threads than asked: run with those (the workers past
     * them were never visible to anyone). The started ones read nworkers
     * only once the runtime is running (kthread_main). */
    rt->nworkers = started;
    return 0;
}
