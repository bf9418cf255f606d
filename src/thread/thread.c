/*
 * thread.c - a user thread's life: spawn, run, exit, join or detach.
 *
 * A handle's state is the flags half of its table slot word (table.c),
 * changed only by CAS, with the generation in the other half so that a CAS
 * made with a stale handle fails:
 *
 *   spawn:    LIVE (| DETACHED if nobody will join)
 *   join:     LIVE -> LIVE|JOINING, then waits for EXITED
 *   detach:   LIVE -> LIVE|DETACHED
 *   exit:     LIVE[|JOINING] -> |EXITED, and wakes a joiner;
 *             LIVE|DETACHED -> freed after the last switch
 *   collect:  LIVE|EXITED[|JOINING] -> freed (by the joiner, or by a
 *             detach of a finished thread)
 *
 * "Freed" is generation + 1 and no flags: every old handle is stale, and
 * the descriptor goes back to a cache for the next spawn.
 *
 * A finishing thread marks itself EXITED and wakes its joiner while it
 * still runs on its stack, then switches away (usually straight to the
 * joiner). Whoever frees the descriptor first waits for its switching flag
 * to drop, which the context after its last switch does (off_stack). A
 * detached thread is freed by that context itself.
 *
 * Two ways to wait for EXITED:
 *
 *   - A user thread that joins without a deadline (the common case) puts
 *     its own slot number into the word with the same CAS that sets
 *     JOINING, having set its switching flag first, and switches away. The
 *     exit finds its joiner in the word, with no lock or queue, and
 *     switches straight to it (weft__exit_to). No one else writes the word
 *     while a joiner waits in it, so that exit sets EXITED with a plain
 *     store; an exit that comes first sets it by CAS, and the joiner's CAS
 *     then fails with nothing to undo but its flag. The joiner is readied
 *     by nothing but that exit: it is in no queue, and it owns the join, so
 *     no other exit or joiner can name it.
 *   - A timed joiner, or a kernel thread, parks in the parking lot on the
 *     slot word's flags half (little-endian: the low word), expecting the
 *     flags it saw. exit changes them before it unparks, so a joiner either
 *     sees EXITED, or parks and is woken, or finds the value changed
 *     (-EAGAIN) and looks again. The slot's memory is never freed, so an
 *     unpark that arrives after the joiner gave up is harmless. A deadline
 *     needs the lot's single-winner timer, which is why only these use it.
 */
#include "internal.h"
#include "arch/context.h"
#include "arch/fiber.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the join wait parks on the low half of the slot word");


static inline uint32_t *join_key(struct slot *s)
{
    return (uint32_t *)&s->word;
}

static inline uint64_t freed_word(uint64_t w)
{
    return (uint64_t)gen_next(word_gen(w)) << 32;
}

static struct worker *my_worker(void)
{
    struct kthread *k = weft__kthread();
    return k ? k->w : NULL;
}

int weft_spawn(weft_t *t, void *(*fn)(void *), void *arg, const weft_attr *attr)
{
    if (!fn)
        return -EINVAL;
    weft__ensure_started();
    weft__preempt_point();
    size_t size = weft__rt.stack_size;
    if (attr && attr->stack_size) {
        if (!weft__stack_size_ok(attr->stack_size))
            return -EINVAL;
        size_t page = weft__page_size();
        size = (attr->stack_size + page - 1) & ~(page - 1);
    }

    struct kthread *k = weft__kthread();
    struct uthread *ut = weft__cache_get(k ? k->w : NULL, size);
    if (!ut && !(ut = weft__stack_new(size)))
        return -ENOMEM;
    /* Its group: the one attr names, else the spawner's (none for a
     * plain kernel thread's). */
    struct uthread *self = k ? k->cur : NULL;
    ut->group = attr && attr->group ? attr->group : self ? self->group : NULL;

    ut->fn = fn;
    ut->arg = arg;
    ut->result = NULL;
    ut->exiting = false;
    ut->self_free = false;
    ut->switching = 0;
    ut->err = 0;
    ut->asan_fake = NULL;
    ut->last_worker = 0;
    if (attr && attr->name) {
        strncpy(ut->name, attr->name, sizeof ut->name - 1);
        ut->name[sizeof ut->name - 1] = 0;
    } else {
        ut->name[0] = 0;
    }
    ut->tsan_fiber = tsan_fiber_new(); /* destroyed by retire() */
    /* The descriptor is the top of the stack; frames start below it. */
    ut->sp = weft__ctx_make(ut, weft__thread_entry, ut);

    struct slot *s = ut->slotp;
    uint32_t gen = word_gen(load_relaxed(&s->word));
    if (!gen)
        gen = 1;
    ut->handle = (uint64_t)gen << 32 | ut->slot;
    /* This incarnation's stop word: a stopper aiming at an earlier one
     * finds another generation and leaves it alone (sync/wait.c). */
    store_relaxed(&ut->stop, (uint64_t)gen << 32);
    if (ut->group)
        weft__group_enter(ut->group, ut); /* and its stop flags, if stopped */
    /* Nobody else touches a slot whose descriptor sits in a cache. The
     * release publishes the descriptor to anyone who looks the handle up. */
    store_release(&s->word, (uint64_t)gen << 32 | TS_LIVE | (t ? 0 : TS_DETACHED));
    if (t)
        *t = ut->handle;
    weft__ready_new(k, ut);
    return 0;
}

/* Marks ut finished with result and prepares its last switch: to its
 * joiner if one waits in the slot word, else to whatever runs next.
 * Returns the stack pointer for weft__ctx_resume. */
static void *finish(struct uthread *ut, void *result)
{
    /* Out of the group first: a listed thread must still be this
     * incarnation for a group stop to touch it (stop/stop.c). */
    if (ut->group)
        weft__group_leave(ut);
    ut->result = result;
    ut->exiting = true;
    /* Until the switch below completes this thread still runs on its
     * stack; whoever frees it waits for the flag to drop (off_stack). */
    store_relaxed(&ut->switching, 1);
    struct slot *s = ut->slotp;
    /* Acquire: pairs with a joiner's CAS, which published its flag. */
    uint64_t old = load_acquire(&s->word);
    for (;;) {
        if (word_flags(old) >> TS_JOINER_SHIFT) {
            /* A joiner waits in the word. Nothing else writes the word in
             * this state: other joins and detaches find JOINING and fail
             * without writing, and this joiner has no deadline to give the
             * join back at. So a store will do. The release orders result
             * and the flag store before EXITED. */
            store_release(&s->word, old | TS_EXITED);
            break;
        }
        if (word_flags(old) & TS_DETACHED) {
            /* Nobody will collect it: the context after the last switch
             * frees it. DETACHED is final, so no CAS is needed. */
            ut->self_free = true;
            break;
        }
        /* The release orders result and the flag store before EXITED; the
         * acquire pairs with a joiner's CAS, as above. */
        if (cas_acq_rel(&s->word, &old, old | TS_EXITED))
            break;
    }
    uint32_t joiner = word_flags(old) >> TS_JOINER_SHIFT;
    if (joiner)
        return weft__exit_switch(ut, weft__slot_get(joiner - 1)->ut);
    /* Woken now, the joiner is likely the next thread this worker runs:
     * one switch instead of a trip through g0. */
    if (word_flags(old) & TS_JOINING)
        weft_unpark(join_key(s), -1);
    return weft__exit_switch(ut, NULL);
}

/* A new thread's first frame (the trampoline calls it). Its last switch
 * resumes the next context from this very frame, with no call in between,
 * so the ret that resumes it pops the return-stack-buffer entry that the
 * trampoline's call pushed. If the thread ran from start to finish without
 * switching away, the CPU's return-stack buffer then holds again what it
 * held when the thread started: the return addresses of the context that
 * switched to it, usually the one resumed now (a joiner that ran its
 * child), whose returns are then predicted right. With the last switch two
 * calls deeper, each of those returns mispredicted (create+join: 62 ->
 * 49 ns). */
void weft__thread_entry(void *arg)
{
    struct uthread *ut = arg;
    fiber_arrive(NULL);
    weft__sched_arrive_new();
    weft__ctx_resume(finish(ut, ut->fn(ut->arg)));
}

void weft_exit(void *result)
{
    struct uthread *ut = weft__current();
    if (!ut)
        weft__panic("weft_exit called on a kernel thread that is not a weft thread");
    weft__ctx_resume(finish(ut, result));
}

/* Sends a finished thread, off its stack for good, back to the cache.
 * Its TSan fiber dies here and the next spawn makes a fresh one: a reused
 * fiber would carry the shadow call stack of frames its last thread never
 * returned from into the next (until TSan's stack depot overflows), and
 * TSan counts every fiber alive against its limit of 8,128 threads. */
static void retire(struct uthread *ut)
{
    tsan_fiber_free(ut->tsan_fiber);
    weft__cache_put(my_worker(), ut);
}

void weft__thread_free_detached(struct uthread *ut)
{
    struct slot *s = ut->slotp;
    store_release(&s->word, freed_word(load_relaxed(&s->word)));
    retire(ut);
}

/* Waits until a finished thread has left its stack for good (its last
 * switch clears the flag, sched.c). The window is a few dozen instructions;
 * the thread waited on never waits for anything, so no cycle can form. */
static void off_stack(struct uthread *ut)
{
    for (int spins = 0; load_acquire(&ut->switching); spins++) {
        if (spins < 1000)
            cpu_relax();
        else
            sched_yield();
    }
}

/* Takes the result of a finished thread whose handle we now own, and frees
 * the descriptor. */
static inline __attribute__((always_inline)) void collect(struct slot *s, void **result)
{
    struct uthread *ut = s->ut;
    off_stack(ut);
    if (result)
        *result = ut->result;
    retire(ut);
}

int weft_join(weft_t t, void **result, int64_t deadline)
{
    struct uthread *self = weft__current();
    if (self && self->handle == t)
        return -EDEADLK;
    struct slot *s = weft__slot_get(handle_slot(t));
    if (!s || !handle_gen(t))
        return -ESRCH;

    /* A user thread waiting without a deadline names itself in the word
     * and is switched to by the exit; others park in the lot (see top). */
    bool direct = self && deadline < 0;
    uint64_t joining = TS_JOINING | (direct ? (uint64_t)(self->slot + 1) << TS_JOINER_SHIFT : 0);
    uint64_t old = load_acquire(&s->word);
    for (;;) {
        uint32_t f = word_flags(old);
        if (word_gen(old) != handle_gen(t) || !(f & TS_LIVE))
            return -ESRCH;
        if (f & (TS_DETACHED | TS_JOINING))
            return -EINVAL;
        if (f & TS_EXITED) {
            if (cas_acq_rel(&s->word, &old, freed_word(old))) {
                collect(s, result);
                return 0;
            }
            continue;
        }
        if (direct)
            store_relaxed(&self->switching, 1); /* published by the CAS */
        if (cas_acq_rel(&s->word, &old, old | joining))
            break;
        if (direct)
            store_relaxed(&self->switching, 0); /* nobody saw it */
    }

    if (direct) {
        /* Only this thread's exit makes us runnable again (see top). */
        weft__park_current(self);
        old = load_acquire(&s->word); /* pairs with the exit's CAS */
        if (!(word_flags(old) & TS_EXITED))
            weft__panic("join of thread %llu resumed before it exited",
                        (unsigned long long)t);
        store_release(&s->word, freed_word(old));
        collect(s, result);
        return 0;
    }

    /* We own the join: only finish changes the word until we free it.
     * weft_park lets a stop end only a timed join (weft.h). */
    for (;;) {
        old = load_acquire(&s->word);
        if (word_flags(old) & TS_EXITED)
            break;
        int r = weft_park(join_key(s), word_flags(old), deadline);
        if (r == -ETIMEDOUT || r == -ECANCELED) {
            /* Give the join back, unless the thread finished meanwhile. */
            old = load_acquire(&s->word);
            while (!(word_flags(old) & TS_EXITED))
                if (cas_acq_rel(&s->word, &old, old & ~(uint64_t)TS_JOINING))
                    return r;
            break;
        }
    }
    store_release(&s->word, freed_word(old));
    collect(s, result);
    return 0;
}

int weft_detach(weft_t t)
{
    struct slot *s = weft__slot_get(handle_slot(t));
    if (!s || !handle_gen(t))
        return -ESRCH;
    uint64_t old = load_acquire(&s->word);
    for (;;) {
        uint32_t f = word_flags(old);
        if (word_gen(old) != handle_gen(t) || !(f & TS_LIVE))
            return -ESRCH;
        if (f & (TS_DETACHED | TS_JOINING))
            return -EINVAL;
        if (f & TS_EXITED) {
            if (cas_acq_rel(&s->word, &old, freed_word(old))) {
                off_stack(s->ut);
                retire(s->ut);
                return 0;
            }
        } else if (cas_acq_rel(&s->word, &old, old | TS_DETACHED)) {
            return 0;
        }
    }
}

weft_t weft_self(void)
{
    struct uthread *ut = weft__current();
    return ut ? ut->handle : 0;
}
