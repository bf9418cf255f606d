/*
 * rwlock.c - a readers-writer lock that starves neither readers nor
 * writers.
 *
 * Writers queue on an internal mutex (wlock), so at most one writer at a
 * time deals with the readers. The state word holds:
 *
 *   R       bits  0-23  readers holding the lock
 *   RW      bits 24-47  readers waiting for the current writer to finish
 *   PHASE   bits 48-62  a counter, advanced each time a writer releases
 *   WRITER  bit  63     a writer has announced itself (it holds wlock)
 *
 * A reader takes the lock with one CAS (R + 1) when WRITER is clear. When
 * it is set the reader adds itself to RW instead, remembers PHASE, and
 * waits for PHASE to change. A writer, holding wlock, sets WRITER (from then
 * on no reader gets in) and waits for R to drain to zero. When it releases,
 * one CAS clears WRITER, moves every waiting reader into R (they hold the
 * lock from that instant, before any other writer can announce) and advances
 * PHASE; then it unlocks wlock. So once a writer waits, it gets in after
 * the readers of the moment, and the readers that queued behind a writer
 * get in right after it: neither side waits for more than one turn of the
 * other. (Go's sync.RWMutex gives the same guarantee with counters.)
 *
 * Readers wait on the event count rseq, writers on wseq: a waiter reads
 * the count, then the state, and parks expecting the count; whoever
 * changes the state in a way a waiter cares about changes it first and
 * then bumps the count and unparks. All sequentially consistent, so either
 * the waiter's state read sees the change or its park sees the new count.
 */
#include "sync/sync.h"

#include <errno.h>

#define R_ONE 1ull
/*
 * PHASE is a counter, not a bit: a reader admitted by one release may not
 * run before the next writer announces itself and gives up on a deadline,
 * which is a second release. With one bit the reader would see its old
 * phase again and wait for ever; with 15 bits it would take 32,768 such
 * releases before it runs.
 */
#define R_MASK ((1ull << 24) - 1)
#define RW_SHIFT 24
#define RW_ONE (1ull << RW_SHIFT)
#define RW_MASK (R_MASK << RW_SHIFT)
#define PHASE_SHIFT 48
#define PHASE_ONE (1ull << PHASE_SHIFT)
#define PHASE (((1ull << 15) - 1) << PHASE_SHIFT)
#define WRITER (1ull << 63)

static inline uint64_t readers(uint64_t s) { return s & R_MASK; }
static inline uint64_t waiting_readers(uint64_t s) { return (s & RW_MASK) >> RW_SHIFT; }

static inline bool cas64(uint64_t *p, uint64_t *expected, uint64_t desired)
{
    return __atomic_compare_exchange_n(p, expected, desired, 1, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}

static inline bool past(int64_t deadline)
{
    return deadline >= 0 && deadline <= weft_now();
}

int weft_rwlock_init(weft_rwlock_t *rw)
{
    if (!rw)
        return -EINVAL;
    *rw = (weft_rwlock_t)WEFT_RWLOCK_INIT;
    return 0;
}

int weft_rwlock_destroy(weft_rwlock_t *rw)
{
    if (!rw)
        return -EINVAL;
    /* PHASE is history, not a holder. */
    if ((load_acquire(&rw->state) & ~PHASE) || weft_mutex_destroy(&rw->wlock))
        return -EBUSY;
    return 0;
}

int weft_rwlock_rdlock(weft_rwlock_t *rw, int64_t deadline)
{
    if (unlikely(!rw))
        return -EINVAL;
    uint64_t s = load_relaxed(&rw->state);
    for (;;) {
        if (!(s & WRITER)) {
            if (readers(s) == R_MASK)
                return -EAGAIN;
            if (cas64(&rw->state, &s, s + R_ONE))
                return 0;
            continue;
        }
        if (weft__stop_cuts(deadline, false))
            return -ECANCELED; /* a timed wait of a stopped thread */
        if (past(deadline))
            return -ETIMEDOUT;
        if (waiting_readers(s) == R_MASK)
            return -EAGAIN;
        if (cas64(&rw->state, &s, s + RW_ONE))
            break;
    }
    uint64_t phase = s & PHASE;
    for (;;) {
        uint32_t seq = load_seq(&rw->rseq);
        if ((load_seq(&rw->state) & PHASE) != phase)
            return 0; /* admitted by the writer's release */
        int r = weft_park(&rw->rseq, seq, deadline); /* a stop ends it if timed */
        if (r != -ETIMEDOUT && r != -ECANCELED)
            continue;
        /* Leave the waiting readers, unless admitted meanwhile. */
        s = load_seq(&rw->state);
        for (;;) {
            if ((s & PHASE) != phase)
                return 0;
            if (cas64(&rw->state, &s, s - RW_ONE))
                return r;
        }
    }
}

/* Clears WRITER, admits the waiting readers, advances PHASE. */
static void writer_release(weft_rwlock_t *rw)
{
    uint64_t s = load_relaxed(&rw->state), next;
    do {
        next = (s & ~(WRITER | RW_MASK | PHASE)) + waiting_readers(s);
        next |= (s + PHASE_ONE) & PHASE;
    } while (!cas64(&rw->state, &s, next));
    if (waiting_readers(s)) {
        fetch_add_seq(&rw->rseq, 1);
        weft_unpark(&rw->rseq, -1);
    }
}

int weft_rwlock_wrlock(weft_rwlock_t *rw, int64_t deadline)
{
    if (unlikely(!rw))
        return -EINVAL;
    int r = weft_mutex_timedlock(&rw->wlock, deadline);
    if (r)
        return r; /* -EDEADLK when the caller is the writer; -ECANCELED */
    uint64_t s = __atomic_fetch_or(&rw->state, WRITER, __ATOMIC_SEQ_CST);
    while (readers(s)) {
        uint32_t seq = load_seq(&rw->wseq);
        s = load_seq(&rw->state);
        if (!readers(s))
            break;
        r = weft_park(&rw->wseq, seq, deadline); /* a stop ends it if timed */
        if (r == -ETIMEDOUT || r == -ECANCELED) {
            if (!readers(load_seq(&rw->state)))
                break;
            writer_release(rw);
            weft_mutex_unlock(&rw->wlock);
            return r;
        }
    }
    store_relaxed(&rw->writer, weft__self_key());
    return 0;
}

int weft_rwlock_unlock(weft_rwlock_t *rw)
{
    if (unlikely(!rw))
        return -EINVAL;
    if (load_relaxed(&rw->writer) == weft__self_key()) {
        store_relaxed(&rw->writer, 0);
        writer_release(rw);
        weft_mutex_unlock(&rw->wlock);
        return 0;
    }
    uint64_t s = load_relaxed(&rw->state);
    do {
        if (!readers(s))
            return -EPERM;
    } while (!cas64(&rw->state, &s, s - R_ONE));
    if ((s & WRITER) && readers(s) == 1) {
        /* The last reader out lets the announced writer in. */
        fetch_add_seq(&rw->wseq, 1);
        weft_unpark(&rw->wseq, 1);
    }
    weft__preempt_point();
    return 0;
}
