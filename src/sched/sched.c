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
 * Order of picking (sched_pick): every 16th pick, expired timers, a
 * non-blocking I/O poll (every 64th pick, io/poll.c), the
 * debug-migrate inbox, the global queue (every 64th pick, so a busy worker
 * never starves it) and the ring (so neither runnext hand-offs nor a stream
 * of spawns starve it); then runnext; the spawn deque, newest first; the
 * ring; the global queue; timers again if nothing else. Stealing is g0's
 * job. Why the spawn deque is LIFO and why that keeps yields fair: runq.c.
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

/* Read through weft__kthread() and weft__worker() (internal.h), never
 * directly. */
__thread struct kthread *weft__tls_k __attribute__((tls_model("initial-exec")));
__thread struct worker *weft__tls_w __attribute__((tls_model("initial-exec")));

struct runtime weft__rt;

/* Never inlined, and the asm makes it impure, so each call reads the
 * kernel thread's TLS afresh: the caller may have moved to another kernel
 * thread since the previous call. */
__attribute__((noinline)) struct kthread *weft__kthread_call(void)
{
    compiler_barrier();
    return weft__tls_k;
}

__attribute__((noinline)) struct worker *weft__worker_call(void)
{
    compiler_barrier();
    return weft__tls_w;
}

/* A kernel thread's key (sync.h) is the address of its own byte here,
 * tagged with the low bit (descriptors are aligned, so no user key has
 * it). Reads tls_k itself, not through weft__current: it is on the
 * uncontended path of every lock and unlock. */
static __thread char key_anchor;

__attribute__((noinline)) uintptr_t weft__self_key(void)
{
    compiler_barrier();
    struct kthread *k = weft__tls_k;
    if (likely(k != NULL && k->cur != NULL))
        return (uintptr_t)k->cur;
    return (uintptr_t)&key_anchor | 1;
}

void weft__kthread_set(struct kthread *k)
{
    weft__tls_k = k;
    weft__tls_w = k ? k->w : NULL;
    /* errno is per kernel thread and glibc declares __errno_location
     * const, so the compiler may reuse its result across a switch; the
     * kthread, read afresh after every switch, keeps the address. */
    if (k)
        k->errno_p = &errno;
}

/* errno of the kernel thread running the caller now. */
int weft__errno_get(void)
{
    struct kthread *k = weft__kthread();
    return k ? *k->errno_p : errno;
}

void weft__errno_set(int e)
{
    struct kthread *k = weft__kthread();
    if (k)
        *k->errno_p = e;
    else
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
    finish_switch(weft__kthread());
}

void weft__sched_arrive_new(void)
{
    struct kthread *k = weft__kthread();
    finish_switch(k);
    *k->errno_p = 0;
}

/* The first thing a resumed user thread does: finish the switch on the
 * kernel thread it now runs on, and give it its errno back. */
static inline __attribute__((always_inline)) void arrive(void)
{
    /* Whoever switched here made this thread k->cur; reading it rather
     * than keeping a pointer across the switch leaves the callers nothing
     * to keep in callee-saved registers (see weft_yield). */
    struct kthread *k = weft__kthread();
    struct uthread *self = k->cur;
    fiber_arrive(self->asan_fake);
    /* errno rarely differs between two threads. Storing it anyway made
     * every switch wait on the one before: the next save's load of errno
     * was forwarded from this store, whose value was forwarded from the
     * previous save, a chain of store-to-load forwards through all the
     * switches (~1 ns of a 6 ns switch). A compare ends the chain in a
     * predicted branch. */
    int err = self->err;
    if (unlikely(*k->errno_p != err))
        *k->errno_p = err;
    finish_switch(k); /* last: nothing is needed after its rare call */
}

/* The checks that need not run at every pick: timers, the global queue
 * (so a busy ring never starves it), the debug inbox, and the ring (so
 * runnext and the spawn deque, which come before it, never starve it). */
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
    return runq_get(w);
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
    uint32_t tick = w->tick + 1;
    store_relaxed(&w->tick, tick); /* the monitor reads it (preempt.c) */
    struct uthread *ut;
    if (unlikely((tick & 15) == 0) && (ut = pick_periodic(w, tick)))
        return ut;
    ut = load_relaxed(&w->runnext);
    /* A thief may take runnext; the CAS settles who runs it. */
    if (ut && cas_acq_rel(&w->runnext, &ut, NULL))
        return ut;
    if ((ut = spawnq_pop(w)) || (ut = runq_get(w)))
        return ut;
    return pick_slow(w);
}

/* Everything a switch from from to next (NULL: this kthread's g0) does
 * before the registers change hands; returns the stack pointer to load.
 * canary: from may have a canary to check (callers that checked it has
 * none pass false, and then make no call here). lone: from is not exiting
 * and no other kthread can pick it up (one worker), so it has no switching
 * flag to clear after the switch. */
static inline __attribute__((always_inline)) void *switch_prepare(struct kthread *k,
                                                                  struct uthread *from,
                                                                  struct uthread *next,
                                                                  bool canary, bool lone)
{
    if (canary && unlikely(from->canary != NULL))
        weft__stack_check(from);
    from->err = *k->errno_p; /* before the switch: this kernel thread's errno */
    void **fake = from->exiting ? NULL : &from->asan_fake;
    (void)fake;
    k->prev = lone ? NULL : from;
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
        /* The only reader is migrate(), which a lone worker never runs. */
        if (!lone && unlikely(weft__rt.debug_migrate))
            next->last_worker = (int16_t)k->w->id;
        fiber_leave(fake, STACK_BOUNDS(next));
        tsan_fiber_switch(next->tsan_fiber);
        return next->sp;
    }
    store_relaxed(&k->cur, (struct uthread *)NULL);
    fiber_leave(fake, k->g0_stack_lo, k->g0_stack_size);
    tsan_fiber_switch(k->tsan_fiber);
    return k->g0_sp;
}

/* Saves from's context and runs next (NULL: this kthread's g0). Returns
 * when from is resumed, possibly on another kernel thread. */
static inline __attribute__((always_inline)) void switch_away(struct kthread *k, struct uthread *from,
                                                        struct uthread *next)
{
    weft__ctx_switch(&from->sp, switch_prepare(k, from, next, true, false));
    /* Resumed, perhaps on another kernel thread: k is stale now. */
    arrive();
}

void weft__sched_run(struct kthread *k, struct uthread *ut)
{
    /* A schedule, even of a thread stolen without a pick: the monitor
     * times slices by the tick. */
    store_relaxed(&k->w->tick, k->w->tick + 1);
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

void weft__sched_lost_worker(struct kthread *k)
{
    /* The monitor gave k's worker to another M while k blocked (see
     * handoff.c); k has none now, so the thread goes where any worker can
     * take it and k switches to g0, which waits as a spare. Published by
     * the global queue's lock, as in yield_slow. */
    k->w = NULL;
    weft__kthread_set(k);
    struct uthread *ut = k->cur;
    store_relaxed(&ut->switching, 1);
    global_push(ut, ut, 1);
    weft__wakep();
    switch_away(k, ut, NULL);
}

void weft__park_current(struct uthread *ut)
{
    /* As in weft_yield, nothing is kept across a call: the canary is
     * checked first, and the kthread and ut (its cur) are read after the
     * pick, whose rare paths call out. So no callee-saved registers are
     * saved here as well as in the switch. */
    if (unlikely(ut->canary != NULL))
        weft__stack_check(ut);
    struct uthread *next = sched_pick(weft__worker());
    struct kthread *k = weft__kthread();
    struct uthread *self = k->cur; /* ut */
    if (next == self) {
        /* Woken before it got away: keep running. */
        store_release(&self->switching, 0);
        return;
    }
    weft__ctx_switch(&self->sp, switch_prepare(k, self, next, false, false));
    arrive();
}

void *weft__exit_switch(struct uthread *ut, struct uthread *next)
{
    struct kthread *k = weft__kthread();
    struct worker *w = weft__worker();
    if (!next) {
        next = sched_pick(w);
    } else if (likely(((w->tick + 1) & 15) != 0) && likely(!weft__rt.debug_migrate)) {
        /* next, the joiner, would be picked first from runnext anyway;
         * skipping the queue saves two atomics. Not on the picks that run
         * the periodic checks, nor in migrate mode, which must send next
         * elsewhere. */
        store_relaxed(&w->tick, w->tick + 1);
    } else {
        weft__ready(next);
        next = sched_pick(w);
    }
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
    /* The sanitizers' fiber switch must come right before the switch, with
     * no return in between: switch here, saving a context nobody resumes. */
    switch_away(k, ut, next);
    weft__panic("thread %llu '%s' was resumed after it finished",
                (unsigned long long)ut->handle, ut->name);
#else
    return switch_prepare(k, ut, next, true, false);
#endif
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
    kthread_wake(load_acquire(&w->k)); /* pairs with the hand-off (handoff.c) */
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
        struct worker *w = weft__worker();
        if (unlikely(w->ready_fifo)) {
            runq_put(w, ut); /* timers_run wakes a helper if worth it */
            return;
        }
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

void weft__ready_new(struct kthread *k, struct uthread *ut)
{
    struct runtime *rt = &weft__rt;
    if (unlikely(rt->debug_migrate) && rt->nworkers > 1) {
        migrate(ut);
        return;
    }
    if (likely(k != NULL)) {
        /* A lone child is usually joined next, which runs it here; wake a
         * helper only when there is more than one to take. */
        if (spawnq_push(weft__worker(), ut))
            weft__wakep();
        return;
    }
    global_push(ut, ut, 1);
    weft__wakep();
}

/* For weft_yield's fast path, which saves no registers of its own: with
 * gcc the frame pointer was its only push and pop (5.8 -> 5.7 ns a switch
 * in bench/switch). clang has no per-function switch for it. */
#if defined(__clang__)
#define NO_FRAME_POINTER
#else
#define NO_FRAME_POINTER __attribute__((optimize("omit-frame-pointer")))
#endif

/* weft_yield in full: any case the inline path below leaves alone. */
static __attribute__((noinline)) void yield_slow(struct kthread *k, struct uthread *ut)
{
    /* A canary is checked at every switch, but a yield with nothing else
     * to run does not switch: check it here too, or a thread that
     * recurses and yields alone could run far past it unseen. */
    if (unlikely(ut->canary != NULL))
        weft__stack_check(ut);
    struct worker *w = k->w;
    if (unlikely(weft__rt.debug_migrate) && weft__rt.nworkers > 1) {
        store_relaxed(&ut->switching, 1); /* published by the inbox lock */
        migrate(ut);
        struct uthread *next = sched_pick(w);
        if (next == ut) { /* sent to this worker's own inbox after all */
            store_release(&ut->switching, 0);
            return;
        }
        switch_away(k, ut, next);
        return;
    }
    /* The pick comes before the caller is queued: every 16th pick looks at
     * the ring first, and with the caller just queued there it would take
     * the caller straight back while runnext or the spawn deque held
     * threads waiting to run (t_yield's "phases" case). */
    struct uthread *next = sched_pick(w);
    if (!next)
        return; /* nobody else to run */
    store_relaxed(&ut->switching, 1); /* published by runq_put's release */
    runq_put(w, ut);
    switch_away(k, ut, next);
}

/*
 * The common yield: no periodic check with work to do, nothing in runnext
 * or the spawn deque, so sched_pick would take the ring's head. It does
 * what yield_slow does in that case (take the head, queue the caller at
 * the tail; with an empty ring the caller would take itself back, so it
 * just returns) with no call but the switch and no value live across it,
 * so the function saves no callee-saved registers of its own: the switch
 * saves them once. Anything else goes to yield_slow.
 */
NO_FRAME_POINTER void weft_yield(void)
{
    struct kthread *k = weft__kthread();
    struct uthread *ut;
    if (unlikely(!k) || unlikely(!(ut = k->cur))) {
        sched_yield();
        return;
    }
    struct worker *w = weft__worker();
    uint32_t tick = w->tick + 1;
    /* A periodic pick with no timers and nothing due from the global queue
     * takes the ring's head too (pick_periodic), so it stays here. */
    if (unlikely((tick & 15) == 0) &&
        (load_relaxed(&w->nheap) || ((tick & 63) == 0 && load_relaxed(&weft__rt.gcount)))) {
        yield_slow(k, ut);
        return;
    }
    if (unlikely(weft__rt.debug_migrate) || unlikely(ut->canary != NULL) ||
        load_relaxed(&w->runnext) || w->bottom != load_relaxed(&w->top)) {
        yield_slow(k, ut);
        return;
    }
    uint32_t h = load_acquire(&w->head); /* as in runq_get */
    uint32_t t = w->tail;
    if (h == t) {
        store_relaxed(&w->tick, tick);
        return; /* nobody else to run */
    }
    /* The head leaves before the caller is queued, so even a full ring has
     * room for it: its slot is at worst the one just read. */
    struct uthread *next = load_relaxed(&w->ring[h % RUNQ_SIZE]);
    /* On a lone worker nobody else can resume ut before its registers
     * are saved, so it needs no switching flag (switch_prepare's lone). */
    bool lone = weft__rt.nworkers == 1;
    if (lone) {
        store_relaxed(&w->head, h + 1);
    } else if (unlikely(!cas_acq_rel(&w->head, &h, h + 1))) {
        yield_slow(k, ut); /* a thief took it */
        return;
    }
    store_relaxed(&w->tick, tick);
    if (!lone)
        store_relaxed(&ut->switching, 1); /* published by the release below */
    store_relaxed(&w->ring[t % RUNQ_SIZE], ut);
    store_release(&w->tail, t + 1); /* pairs with runq_steal's acquire */
    if (!next)
        __builtin_unreachable(); /* ring entries are threads */
    weft__ctx_switch(&ut->sp, switch_prepare(k, ut, next, false, lone));
    arrive();
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
