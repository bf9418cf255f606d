/* sched.h - declarations private to the scheduler layer (src/sched/). */
#ifndef WEFT_SCHED_H
#define WEFT_SCHED_H

#include "internal.h"

/* Local run queue (runq.c; the owner's push and pop are inline here). */
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
/* Steals about half of victim's queue into w's, returning one thread to
 * run now, or NULL. take_next: also take victim's runnext. */
struct uthread *runq_steal(struct worker *w, struct worker *victim, bool take_next);

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
