/*
 * runq.c - a worker's local run queue: a bounded ring plus a hand-off slot.
 *
 * The owner pushes at tail and pops at head; other workers steal half the
 * ring from head. head only moves by CAS, so the owner's pop and a thief's
 * grab never both take the same entry; tail is stored only by the owner,
 * with release, so a thief that loads tail with acquire sees the entries
 * below it. Ring entries are read with atomic loads because a thief may read
 * a slot the owner is overwriting after a wrap; its CAS on head then fails
 * and the value is discarded.
 *
 * runnext holds the thread woken or spawned most recently by the running
 * thread. It runs before the ring: a thread that wakes another and then
 * blocks hands its worker straight over (a ping-pong never touches the
 * ring), and the woken thread finds the data it was waiting for still in
 * this CPU's cache. Thieves take runnext only as a last resort.
 *
 * When the ring is full, half of it moves to the global queue in one batch.
 */
#include "sched/sched.h"

bool runq_empty(struct worker *w)
{
    return load_acquire(&w->head) == load_acquire(&w->tail) && !load_relaxed(&w->runnext);
}

/* Moves half the ring plus ut to the global queue. Returns false if a
 * thief emptied the ring meanwhile (then ut fits after all). */
bool runq_put_slow(struct worker *w, struct uthread *ut, uint32_t h, uint32_t t)
{
    uint32_t n = (t - h) / 2;
    struct uthread *batch[RUNQ_SIZE / 2 + 1];
    for (uint32_t i = 0; i < n; i++)
        batch[i] = load_relaxed(&w->ring[(h + i) % RUNQ_SIZE]);
    if (!cas_acq_rel(&w->head, &h, h + n))
        return false;
    batch[n] = ut;
    for (uint32_t i = 0; i < n; i++)
        batch[i]->next = batch[i + 1];
    batch[n]->next = NULL;
    global_push(batch[0], batch[n], n + 1);
    return true;
}

struct uthread *runq_steal(struct worker *w, struct worker *victim, bool take_next)
{
    struct uthread *batch[RUNQ_SIZE / 2];
    uint32_t n;
    for (;;) {
        uint32_t h = load_acquire(&victim->head);
        uint32_t t = load_acquire(&victim->tail);
        n = t - h;
        n -= n / 2;
        if (n == 0) {
            if (!take_next)
                return NULL;
            struct uthread *next = load_relaxed(&victim->runnext);
            if (next && cas_acq_rel(&victim->runnext, &next, NULL))
                return next;
            return NULL;
        }
        if (n > RUNQ_SIZE / 2)
            continue; /* read head and tail at different times; retry */
        for (uint32_t i = 0; i < n; i++)
            batch[i] = load_relaxed(&victim->ring[(h + i) % RUNQ_SIZE]);
        if (cas_acq_rel(&victim->head, &h, h + n))
            break;
    }
    /* Our own ring is empty (we only steal when idle), so the batch fits. */
    uint32_t t = w->tail;
    for (uint32_t i = 1; i < n; i++)
        store_relaxed(&w->ring[(t + i - 1) % RUNQ_SIZE], batch[i]);
    store_release(&w->tail, t + n - 1);
    return batch[0];
}
