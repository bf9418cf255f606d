/* sched.h - declarations private to the scheduler layer (src/sched/). */
#ifndef WEFT_SCHED_H
#define WEFT_SCHED_H

#include "internal.h"

/* Local run queue, the FIFO ring (runq.c; the owner's push and pop are
 * inline here). */
bool runq_put_slow(struct worker *w, struct uthread *ut, uint32_t h, uint32_t t);
bool runq_empty(struct worker *w);

/* Owner only: queues ut at the tail; a full ring spills half to the
 * global queue. */
static inline void runq_put(struct worker *w, struct uthread *ut)
{
    for (;;) {
        uint32_t h = load_acquire(&w->head); /* pairs with thieves' CAS */
        uint32_t t = w->tail;
        if (likely(t - h < RUNQ_SIZE)) {
            store_relaxed(&w->ring[t % RUNQ_SIZE], ut);
            store_release(&w->tail, t + 1); /* pairs with runq_steal's acquire */
            return;
        }
        if (runq_put_slow(w, ut, h, t))
            return;
    }
}

/* Owner only: takes the thread at the head, or NULL. With one worker
 * there are no thieves, so the head moves without a CAS. */
static inline struct uthread *runq_get(struct worker *w)
{
    if (weft__rt.nworkers == 1) {
        uint32_t h = w->head;
        if (h == w->tail)
            return NULL;
        store_relaxed(&w->head, h + 1);
        return w->ring[h % RUNQ_SIZE];
    }
    for (;;) {
        uint32_t h = load_acquire(&w->head);
        uint32_t t = w->tail;
        if (h == t)
            return NULL;
        struct uthread *ut = load_relaxed(&w->ring[h % RUNQ_SIZE]);
        if (likely(cas_acq_rel(&w->head, &h, h + 1)))
            return ut;
    }
}
/* Steals from victim: the oldest entry of its spawn deque, else about half
 * of its ring into w's; returns one thread to run now, or NULL. take_next:
 * also take victim's runnext. */
struct uthread *runq_steal(struct worker *w, struct worker *victim, bool take_next);

/* Spawn deque (runq.c; the owner's push and pop are inline here). */
void spawnq_spill(struct worker *w);

/* Owner only: queues a newly spawned thread at bottom. Returns whether the
 * deque held others already (then an idle worker is worth waking; a lone
 * child is usually joined, and so run, by its spawner at once). */
static inline bool spawnq_push(struct worker *w, struct uthread *ut)
{
    uint32_t b = w->bottom;
    /* Pairs with the release of the thieves' CAS on top: they have read
     * the entries below top, which may now be overwritten. */
    uint32_t t = load_acquire(&w->top);
    if (unlikely(b - t >= SPAWNQ_SIZE)) {
        spawnq_spill(w);
        t = load_acquire(&w->top);
    }
    store_relaxed(&w->spawnq[b % SPAWNQ_SIZE], ut);
    store_release(&w->bottom, b + 1); /* pairs with spawnq_steal's loads */
    return b != t;
}

/* Owner only: takes the newest entry, or NULL. Thieves take from the other
 * end, so only the last entry can be contended; the owner announces its
 * claim by lowering bottom before it reads top (Dekker-style, see runq.c). */
static inline struct uthread *spawnq_pop(struct worker *w)
{
    uint32_t b = w->bottom;
    uint32_t t = load_relaxed(&w->top);
    /* top only moves toward bottom: equal means empty for good. */
    if (b == t)
        return NULL;
    if (weft__rt.nworkers == 1) {
        /* No thieves; a spill is the owner's own doing. */
        store_relaxed(&w->bottom, b - 1);
        return w->spawnq[(b - 1) % SPAWNQ_SIZE];
    }
    if (b - t == 1) {
        /* One entry (or none, if top is stale): it is top as well as
         * bottom, so claim it the way a thief would, with one CAS on top
         * instead of the barrier and, for the last entry, a CAS anyway.
         * bottom then equals top: empty. The common case of a spawn that
         * is joined at once. */
        struct uthread *ut = load_relaxed(&w->spawnq[t % SPAWNQ_SIZE]);
        return cas_seq(&w->top, &t, t + 1) ? ut : NULL;
    }
    b--;
    xchg_seq(&w->bottom, b); /* store-load: pairs with spawnq_steal */
    t = load_seq(&w->top);
    struct uthread *ut = load_relaxed(&w->spawnq[b % SPAWNQ_SIZE]);
    int32_t others = (int32_t)(b - t);
    if (likely(others > 0))
        return ut; /* a thief that reads top later sees the lower bottom */
    if (others == 0) {
        /* The last entry: whoever moves top past it owns it. */
        if (!cas_seq(&w->top, &t, t + 1))
            ut = NULL;
    } else {
        ut = NULL; /* thieves emptied it */
    }
    store_relaxed(&w->bottom, b + 1); /* empty: bottom == top again */
    return ut;
}

/* Global queue (global.c). */
void global_push(struct uthread *head, struct uthread *tail, uint32_t n);
struct uthread *global_get(struct worker *w);
void inbox_push(struct worker *w, struct uthread *ut);
struct uthread *inbox_get(struct worker *w);

/* Picks the next thread for w to run without blocking, or NULL. */
struct uthread *sched_pick(struct worker *w);
/* Wakes one specific parked kthread; returns whether it was parked. */
bool kthread_wake(struct kthread *k);

#endif
