/*
 * sched.c - choosing the next user thread and switching to it.
 *
 * A user thread that blocks, yields or ends switches directly to the next
 * runnable thread of its worker: one assembly routine, no trip through a
 * scheduler stack. Only when its worker has nothing runnable does it switch
 * to the kernel thread's own scheduler context (g0, worker.c), which steals,
 * waits for timers and sleeps.
 *
 * Every switch has two halves on the same kernel thread. Before it, the
 * leaving thread records itself in k->prev. After it, the arriving context
 * (a resumed thread, a new thread's entry, or g0) calls finish_switch,
 * which clears prev->switching: prev may now be resumed elsewhere or, if it
 * finished, its stack reused. A finished detached thread is freed right
 * there, since nobody else will.
 *
 * Order of picking (sched_pick): expired timers every 16th pick, and a
 * non-blocking I/O poll every 64th (io/poll.c); the
 * debug-migrate inbox; the global queue every 61st pick (so it is never
 * starved by a busy ring); runnext; the ring; the global queue; timers
 * again if nothing else. Stealing is g0's job.
 *
 * Rejected: a trip through g0 at every switch (as Go's mcall does) costs a
 * second switch on the hottest path; holding the wait-queue lock across the
 * switch (as Go's park_m does) forces timers and wakers to avoid that lock
 * from the switching path. The switching flag costs one store and one load.
 */
#include "sched/sched.h"
#include "arch/context.h"
#include "arch/fiber.h"

#include <errno.h>
#include <sched.h>

static __thread struct kthread *tls_k __attribute__((tls_model("initial-exec")));

struct runtime weft__rt;

/* Never inlined, and the asm makes it impure, so each call reads the
 * kernel thread's TLS afresh: the caller may have moved to another kernel
 * thread since the previous call. */
__attribute__((noinline)) struct kthread *weft__kthread(void)
{
    compiler_barrier();
    return tls_k;
}

__attribute__((noinline)) struct uthread *weft__current(void)
{
    compiler_barrier();
    struct kthread *k = tls_k;
    return k ? k->cur : NULL;
}

/* A kernel thread's key (sync.h) is the address of its own byte here,
 * tagged with the low bit (descriptors are aligned, so no user key has
 * it). Reads tls_k itself, not through weft__current: it is on the
 * uncontended path of every lock and unlock. */
static __thread char key_anchor;

__attribute__((noinline)) uintptr_t weft__self_key(void)
{
    compiler_barrier();
    struct kthread *k = tls_k;
    if (likely(k != NULL && k->cur != NULL))
        return (uintptr_t)k->cur;
    return (uintptr_t)&key_anchor | 1;
}

void weft__kthread_set(struct kthread *k)
{
    tls_k = k;
}

/* errno is per kernel thread and glibc declares __errno_location const, so
 * the compiler may reuse its result across a switch. These calls are
 * opaque: each evaluates errno on the kernel thread running it now. */
__attribute__((noinline)) int weft__errno_get(void)
{
    compiler_barrier();
    return errno;
}

__attribute__((noinline)) void weft__errno_set(int e)
{
    compiler_barrier();
    errno = e;
}

#if defined(WEFT_ASAN)
static char *stack_lo(struct uthread *ut)
{
    return ut->guard == GUARD_CANARY ? ut->map : ut->map + weft__page_size();
}
#define STACK_BOUNDS(ut) stack_lo(ut), (size_t)((char *)(ut)-stack_lo(ut))
#else
#define STACK_BOUNDS(ut) NULL, 0
#endif

/* Waits until ut's registers are saved (see internal.h). Only g0 waits:
 * it has no context of its own pending, so no cycle of waiting kernel
 * threads can form. The window is a few dozen instructions on another
 * kernel thread; yield the CPU if that kernel thread was preempted in it. */
static inline void resume_wait(struct uthread *ut)
{
    /* Pairs with the release in finish_switch. */
    for (int spins = 0; unlikely(load_acquire(&ut->switching)); spins++) {
        if (spins < 1000)
            cpu_relax();
        else
            sched_yield();
    }
}

static inline void finish_switch(struct kthread *k)
{
    struct uthread *prev = k->prev;
    if (!prev)
        return;
    k->prev = NULL;
    if (unlikely(prev->self_free))
        weft__thread_free_detached(prev);
    else
        store_release(&prev->switching, 0); /* pairs with resume_wait */
}

void weft__sched_finish_switch(void)
{
    compiler_barrier();
    finish_switch(tls_k);
}

/* The first thing a resumed user thread does: finish the switch on the
 * kernel thread it now runs on, and give it its errno back. Not inlined,
 * so tls_k is read afresh. */
static __attribute__((noinline)) void arrive(struct uthread *self)
{
    compiler_barrier();
    fiber_arrive(self->asan_fake);
    finish_switch(tls_k);
    errno = self->err;
}

/* The checks that need not run at every pick: timers, the global queue
 * (so a busy ring never starves it), the debug inbox. */
static struct uthread *pick_periodic(struct worker *w, uint32_t tick)
{
    struct uthread *ut;
    if (load_relaxed(&w->nheap))
        weft__timers_run(w, weft_now());
    weft__io_poll_busy(tick); /* ready I/O is not starved by busy threads */
    if (unlikely(weft__rt.debug_migrate) && (ut = inbox_get(w)))
        return ut;
    if ((tick & 63) == 0 && (ut = global_get(w)))
        return ut;
    return NULL;
}

/* Nothing local: the global queue, the debug inbox, due timers. */
static struct uthread *pick_slow(struct worker *w)
{
    struct uthread *ut;
    if ((ut = global_get(w)) || (ut = inbox_get(w)))
        return ut;
    if (load_relaxed(&w->nheap) && weft__timers_run(w, weft_now())) {
        ut = xchg_acq_rel(&w->runnext, NULL);
        return ut ? ut : runq_get(w);
    }
    return NULL;
}

__attribute__((always_inline)) inline struct uthread *sched_pick(struct worker *w)
{
    uint32_t tick = ++w->tick;
    struct uthread *ut;
    if (unlikely((tick & 15) == 0) && (ut = pick_periodic(w, tick)))
        return ut;
    ut = load_relaxed(&w->runnext);
    /* A thief may take runnext; the CAS settles who runs it. */
    if (ut && cas_acq_rel(&w->runnext, &ut, NULL))
        return ut;
    if ((ut = runq_get(w)))
        return ut;
    return pick_slow(w);
}

/* Saves from's context and runs next (NULL: this kthread's g0). Returns
 * when from is resumed, possibly on another kernel thread. */
static inline __attribute__((always_inline)) void switch_away(struct kthread *k, struct uthread *from,
                                                        struct uthread *next)
{
    from->err = errno; /* before the switch: this kernel thread's errno */
    if (unlikely(from->canary != NULL))
        weft__stack_check(from);
    void **fake = from->exiting ? NULL : &from->asan_fake;
    (void)fake;
    k->prev = from;
    if (unlikely(next != NULL && load_acquire(&next->switching))) {
        /* next is still being saved on another kernel thread. Waiting for
         * it here, before from is saved, could close a cycle (that kernel
         * thread may be waiting for from). g0 has nothing to save, so it
         * waits instead. */
        k->handoff = next;
        next = NULL;
    }
    if (next) {
        store_relaxed(&k->cur, next);
        next->last_worker = (int16_t)k->w->id;
        fiber_leave(fake, STACK_BOUNDS(next));
        tsan_fiber_switch(next->tsan_fiber);
        weft__ctx_switch(&from->sp, next->sp);
    } else {
        store_relaxed(&k->cur, (struct uthread *)NULL);
        fiber_leave(fake, k->g0_stack_lo, k->g0_stack_size);
        tsan_fiber_switch(k->tsan_fiber);
        weft__ctx_switch(&from->sp, k->g0_sp);
    }
    /* Resumed, perhaps on another kernel thread: k is stale now. */
    arrive(from);
}

void weft__sched_run(struct kthread *k, struct uthread *ut)
{
    resume_wait(ut);
    store_relaxed(&k->cur, ut);
    ut->last_worker = (int16_t)k->w->id;
    fiber_leave(&k->asan_fake, STACK_BOUNDS(ut));
    tsan_fiber_switch(ut->tsan_fiber);
    weft__ctx_switch(&k->g0_sp, ut->sp);
    /* g0 never moves: k is still this kernel thread. */
    fiber_arrive(k->asan_fake);
    finish_switch(k);
}

void weft__park_current(struct uthread *ut)
{
    struct kthread *k = weft__kthread();
    struct uthread *next = sched_pick(k->w);
    if (next == ut) {
        /* Woken before it got away: keep running. */
        store_release(&ut->switching, 0);
        return;
    }
    switch_away(k, ut, next);
}

void weft__exit_current(struct uthread *ut)
{
    struct kthread *k = weft__kthread();
    switch_away(k, ut, sched_pick(k->w));
    weft__panic("thread %llu '%s' was resumed after it finished",
                (unsigned long long)ut->handle, ut->name);
}

/* In WEFT_DEBUG=migrate mode every thread made runnable goes to another
 * worker than the one it last ran on, so code that cached the kernel
 * thread's state across a switch breaks in tests instead of in production. */
static void migrate(struct uthread *ut)
{
    struct runtime *rt = &weft__rt;
    int to = (ut->last_worker + 1) % rt->nworkers;
    struct worker *w = &rt->workers[to];
    inbox_push(w, ut);
    /* Store-then-load, as in weft__wakep: the push must be visible before
     * we read whether the target sleeps (worker.c, no lost wake-up). */
    fence_seq();
    kthread_wake(w->k);
}

void weft__ready(struct uthread *ut)
{
    struct runtime *rt = &weft__rt;
    if (unlikely(rt->debug_migrate) && rt->nworkers > 1) {
        migrate(ut);
        return;
    }
    struct kthread *k = weft__kthread();
    if (likely(k != NULL)) {
        /* Hand-off: ut runs next on this worker. What it displaces goes to
         * the ring, where an idle worker may steal it. */
        struct worker *w = k->w;
        struct uthread *old = xchg_acq_rel(&w->runnext, ut);
        if (old) {
            runq_put(w, old);
            weft__wakep();
        }
        return;
    }
    global_push(ut, ut, 1);
    weft__wakep();
}

void weft_yield(void)
{
    struct kthread *k = weft__kthread();
    struct uthread *ut = k ? k->cur : NULL;
    if (!ut) {
        sched_yield();
        return;
    }
    /* Published by the release in runq_put / the inbox lock. */
    store_relaxed(&ut->switching, 1);
    if (unlikely(weft__rt.debug_migrate) && weft__rt.nworkers > 1)
        migrate(ut);
    else
        runq_put(k->w, ut);
    struct uthread *next = sched_pick(k->w);
    if (next == ut) {
        store_release(&ut->switching, 0);
        return;
    }
    switch_away(k, ut, next);
}

/* Is there work any worker could take? Inboxes do not count: only their
 * owner takes from them, and it checks its own (worker.c). */
bool weft__any_runnable(void)
{
    struct runtime *rt = &weft__rt;
    if (load_relaxed(&rt->gcount))
        return true;
    for (int i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];
        if (!runq_empty(w))
            return true;
    }
    return false;
}
