/*
 * timer.c - per-worker timer heaps.
 *
 * Each worker keeps a 4-ary min-heap of the deadlines of waits that began
 * on it. The worker runs its expired timers while scheduling, and an idle
 * worker sleeps exactly until its earliest one. Any thread may cancel a
 * timer (a waiter woken by someone else), so the heap has a lock; it is
 * held for a few dozen instructions at a time.
 *
 * Expiry is two-phase (see struct timer in internal.h): under the lock the
 * timer is removed and claim() decides with one atomic whether the expiry
 * wins; expire() runs after the lock is dropped. A canceller that won the
 * race takes the same lock to remove the timer, so once it holds the lock
 * the expiring worker is done with the timer, and the timer's memory (on
 * the waiting thread's stack) may go away when the canceller is done.
 */
#include "internal.h"
#include "sched/sched.h"

#include <stdlib.h>

/* Four children to a node: half the levels of a binary heap, so half the
 * moves (each a store into a cold timer's idx), and the four children's
 * deadlines share a cache line (Go's timer heaps are 4-ary too). */
#define ARITY 4

static void heap_set(struct worker *w, int32_t i, struct heap_entry e)
{
    w->heap[i] = e;
    e.t->idx = i;
}

static void sift_up(struct worker *w, int32_t i)
{
    struct heap_entry e = w->heap[i];
    while (i > 0) {
        int32_t parent = (i - 1) / ARITY;
        if (w->heap[parent].when <= e.when)
            break;
        heap_set(w, i, w->heap[parent]);
        i = parent;
    }
    heap_set(w, i, e);
}

static void sift_down(struct worker *w, int32_t i)
{
    struct heap_entry e = w->heap[i];
    int32_t n = w->nheap;
    for (;;) {
        int32_t first = ARITY * i + 1, c = first;
        if (first >= n)
            break;
        int32_t end = first + ARITY < n ? first + ARITY : n;
        for (int32_t j = first + 1; j < end; j++)
            if (w->heap[j].when < w->heap[c].when)
                c = j;
        if (w->heap[c].when >= e.when)
            break;
        heap_set(w, i, w->heap[c]);
        i = c;
    }
    heap_set(w, i, e);
}

static void heap_remove(struct worker *w, int32_t i)
{
    struct timer *gone = w->heap[i].t;
    int32_t last = w->nheap - 1;
    store_relaxed(&w->nheap, last);
    gone->idx = -1;
    if (i == last)
        return;
    heap_set(w, i, w->heap[last]);
    if (i > 0 && w->heap[(i - 1) / ARITY].when > w->heap[i].when)
        sift_up(w, i);
    else
        sift_down(w, i);
}

void weft__timer_add(struct worker *w, struct timer *t)
{
    ilock(&w->tlock);
    if (w->nheap == w->heap_cap) {
        int32_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        struct heap_entry *h = realloc(w->heap, (size_t)cap * sizeof *h);
        if (!h)
            weft__panic("out of memory growing a timer heap to %d entries", cap);
        w->heap = h;
        w->heap_cap = cap;
    }
    t->w = w;
    w->heap[w->nheap] = (struct heap_entry){t->when, t};
    store_relaxed(&w->nheap, w->nheap + 1);
    sift_up(w, w->nheap - 1);
    iunlock(&w->tlock);
}

void weft__timer_cancel(struct timer *t)
{
    struct worker *w = t->w;
    ilock(&w->tlock);
    if (t->idx >= 0)
        heap_remove(w, t->idx);
    iunlock(&w->tlock);
}

int weft__timers_run(struct worker *w, int64_t now)
{
    enum { BATCH = 32 };
    int n = 0;
    /* Each expiry readies one thread at the ring's tail; expiring more
     * than fits would spill half the ring to the global queue, touching
     * every spilled descriptor twice more. What does not fit stays in the
     * heap for the next pick (every 16th, or when nothing else is left). */
    int room = RUNQ_SIZE - (int)(w->tail - load_acquire(&w->head)) - 1;
    /* Threads whose deadlines passed together run in deadline order: each
     * goes to the ring's tail, not to runnext, where the next would
     * displace it (sched.c, weft__ready). */
    w->ready_fifo = true;
    while (room > 0) {
        struct timer *won[BATCH];
        int nwon = 0;
        ilock(&w->tlock);
        while (nwon < BATCH && nwon < room && w->nheap > 0 && w->heap[0].when <= now) {
            struct timer *t = w->heap[0].t;
            heap_remove(w, 0);
            if (t->claim(t))
                won[nwon++] = t;
        }
        bool more = w->nheap > 0 && w->heap[0].when <= now;
        iunlock(&w->tlock);
        /* After the lock is dropped a lost claim's timer is not touched
         * again; a won one is ours until expire (see internal.h). */
        for (int i = 0; i < nwon; i++)
            won[i]->expire(won[i]);
        n += nwon;
        room -= nwon;
        if (!more)
            break;
    }
    w->ready_fifo = false;
    /* One thread woken, with nothing else queued here, runs here next:
     * waking another worker for it (a futex wake, a microsecond or two
     * here) would only delay it. A helper is worth waking when there is
     * more to take: in the ring, runnext or the spawn deque. */
    if (n && (w->tail - load_acquire(&w->head) > 1 || load_relaxed(&w->runnext) ||
              w->bottom != load_relaxed(&w->top)))
        weft__wakep();
    return n;
}

int64_t weft__timers_next(struct worker *w)
{
    if (!load_relaxed(&w->nheap))
        return -1;
    ilock(&w->tlock);
    int64_t when = w->nheap ? w->heap[0].when : -1;
    iunlock(&w->tlock);
    return when;
}
