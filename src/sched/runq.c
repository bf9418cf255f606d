/*
 * runq.c - a worker's local run queues: a FIFO ring, a hand-off slot, and a
 * LIFO deque of threads spawned here that have not run yet.
 *
 * The ring holds threads that ran before: yields, wake-ups displaced from
 * runnext, batches from the global queue. The owner pushes at tail and
 * pops at head; other workers steal half the ring from head. head only
 * moves by CAS, so the owner's pop and a thief's grab never both take the
 * same entry; tail is stored only by the owner, with release, so a thief
 * that loads tail with acquire sees the entries below it. Ring entries are
 * read with atomic loads because a thief may read a slot the owner is
 * overwriting after a wrap; its CAS on head then fails and the value is
 * discarded. When the ring is full, half of it moves to the global queue
 * in one batch.
 *
 * runnext holds the thread woken most recently by the running thread. It
 * runs before the ring: a thread that wakes another and then blocks hands
 * its worker straight over (a ping-pong never touches the ring), and the
 * woken thread finds the data it was waiting for still in this CPU's
 * cache. Thieves take runnext only as a last resort.
 *
 * The spawn deque holds new threads, and the owner runs the newest first.
 * Fork-join code (spawn children, join them) then runs depth-first, as
 * Cilk-style work stealers do: a child's subtree finishes before its
 * siblings start, so only about fan-out x depth threads are alive per
 * worker and each finished stack, still warm in the cache, is reused by
 * the next spawn. Run breadth-first (FIFO), a tree of a million threads
 * keeps about all of them alive at once, each on a fresh stack whose first
 * touch costs a page fault (bench/skynet.c ran 25 times slower). Thieves
 * take the oldest entry, the one spawned first and so the biggest piece of
 * work, one at a time.
 *
 * Why LIFO here does not make yields or wake-ups unfair: only threads that
 * have never run enter the deque. A thread that yields or is woken goes to
 * runnext or the ring, which stay FIFO, so a yielder still runs after every
 * thread that was runnable when it yielded. Threads spawned after it may
 * start before it, as they did when spawns went to runnext. What LIFO could
 * add is a stream of spawns holding the ring back; sched_pick serves the
 * ring first on every 16th pick, which bounds that (sched.c).
 *
 * The deque's protocol (Chase and Lev's). The owner pushes at bottom and
 * publishes with a release store. To pop it lowers bottom first, with a
 * full barrier, then reads top; a thief reads top, then bottom, then
 * claims the entry at top by CAS. All of those are seq_cst, so in their
 * single order either the thief reads the lowered bottom (and sees the
 * owner's entry gone) or the owner reads top after the thief's read, and
 * then both target the same entry only when it is the last one, where the
 * owner claims it by the same CAS on top. An owner that sees a single
 * entry claims it by that CAS straight away, skipping the barrier: the
 * entry is at top, and a stale top only makes the CAS fail on an empty
 * deque. Thieves take single entries: a thief that took a batch could hold
 * a stale bottom while the owner pops into the batch without a CAS. A full
 * deque moves its older half to the global queue, claimed by CAS on top
 * like a steal.
 */
#include "sched/sched.h"

bool runq_empty(struct worker *w)
{
    return load_acquire(&w->head) == load_acquire(&w->tail) && !load_relaxed(&w->runnext) &&
           (int32_t)(load_acquire(&w->bottom) - load_acquire(&w->top)) <= 0;
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

/* Owner only, when the deque is full: moves its older half, the entries
 * thieves would take first, to the global queue. */
void spawnq_spill(struct worker *w)
{
    struct uthread *batch[SPAWNQ_SIZE / 2];
    for (;;) {
        uint32_t t = load_acquire(&w->top);
        uint32_t n = (w->bottom - t) / 2;
        if (n == 0)
            return; /* thieves made room */
        for (uint32_t i = 0; i < n; i++)
            batch[i] = load_relaxed(&w->spawnq[(t + i) % SPAWNQ_SIZE]);
        /* The owner is not popping, so only thieves race for these. */
        if (!cas_seq(&w->top, &t, t + n))
            continue;
        for (uint32_t i = 0; i + 1 < n; i++)
            batch[i]->next = batch[i + 1];
        global_push(batch[0], batch[n - 1], n);
        return;
    }
}

/* Takes the oldest entry of victim's spawn deque, or NULL. */
static struct uthread *spawnq_steal(struct worker *victim)
{
    for (;;) {
        uint32_t t = load_seq(&victim->top);
        uint32_t b = load_seq(&victim->bottom); /* after top: see runq.c top */
        if ((int32_t)(b - t) <= 0)
            return NULL;
        struct uthread *ut = load_relaxed(&victim->spawnq[t % SPAWNQ_SIZE]);
        if (cas_seq(&victim->top, &t, t + 1))
            return ut;
        /* The owner or another thief took it; look again. */
    }
}

struct uthread *runq_steal(struct worker *w, struct worker *victim, bool take_next)
{
    struct uthread *spawned = spawnq_steal(victim);
    if (spawned)
        return spawned;
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
