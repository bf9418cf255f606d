/*
 * park.c - the parking lot: wait queues keyed by address, for user threads
 * and kernel threads alike. weft_park/weft_unpark are a futex that parks a
 * user thread instead of blocking its worker; joins (and every lock and
 * channel built later) wait here.
 *
 * One fixed table of buckets, hashed by address; each bucket is a small
 * lock and a FIFO of waiters for every address that hashes to it. A waiter
 * record lives on the waiting thread's stack.
 *
 * Exactly one wake-up. A waiter can be ended by an unpark or by its
 * deadline (and later by a stop). Each contender does one CAS on the
 * waiter's state, from WAITING to its own outcome; only the winner unlinks
 * the waiter and makes it run again.
 *
 *   unpark:    under the bucket lock, CAS, unlink; after the lock, cancel
 *              the timer, then ready the waiter.
 *   user-thread deadline: the timer's claim does the CAS under the timer
 *              heap lock; expire() then takes the bucket lock, unlinks and
 *              readies the waiter.
 *   kernel-thread deadline: the futex wait times out and the waiter makes
 *              the CAS itself, then unlinks itself.
 *
 * Waiter lifetime (the use-after-free Photon hit). The record is on the
 * waiter's stack and dies when park returns. A user thread returns only
 * after it is readied, and readying is the last thing its waker does: an
 * unparker that won first removes the timer under the heap lock, which
 * waits out a worker that is expiring it (the worker touches the timer only
 * under that lock, and a lost claim leaves it alone); the timer's expire()
 * unlinks under the bucket lock before readying. A kernel thread waits for
 * kword = 1, which its waker stores after it is done with the record; the
 * futex wake that follows uses only the address (waking a later user of
 * the same stack address is a spurious wake-up, which every futex waiter
 * tolerates).
 *
 * No lost wake-up. park compares *addr with the expected value under the
 * bucket lock, and an unpark takes the same lock, so a waker that changed
 * *addr before unparking either runs before the comparison (park sees the
 * new value: -EAGAIN) or after the waiter is queued (unpark finds it).
 * A user thread that parks sets switching = 1 before it becomes visible
 * in the queue, so a waker on another worker cannot resume it before its
 * registers are saved (internal.h).
 */
#include "internal.h"

#include <errno.h>

/* Each bucket's queue is a list that unpark walks, so the cost of an
 * unpark grows with the waiters that share its bucket: with 1,024 buckets
 * and a million parked joiners it was ~1,000 cold waiters per unpark.
 * 65,536 buckets (2 MiB of zero pages, touched as used) keep that near 16
 * at a million waiters. A table that grows with the number of waiters
 * (WebKit's ParkingLot does) is the complete fix. */
#define NBUCKETS_LOG2 16
#define NBUCKETS (1u << NBUCKETS_LOG2)

enum { W_WAITING, W_WOKEN, W_TIMEDOUT };

struct waiter {
    const void *key;
    struct waiter *next, *prev; /* bucket queue; bucket lock */
    struct uthread *ut;         /* NULL for a kernel-thread waiter */
    uint32_t state;             /* atomic: W_* ; CAS from W_WAITING decides */
    uint32_t kword;             /* atomic: kernel waiter may return when 1 */
    struct timer timer;         /* user waiter with a deadline */
};

struct bucket {
    struct ilock lock;
    struct waiter *head, *tail; /* lock */
} __attribute__((aligned(32)));

static struct bucket buckets[NBUCKETS];

static struct bucket *bucket_of(const void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    a ^= a >> 17;
    a *= 0x9e3779b97f4a7c15ull;
    return &buckets[a >> (64 - NBUCKETS_LOG2)];
}

static void enqueue(struct bucket *b, struct waiter *w)
{
    w->next = NULL;
    w->prev = b->tail;
    if (b->tail)
        b->tail->next = w;
    else
        b->head = w;
    b->tail = w;
}

static void unlink_waiter(struct bucket *b, struct waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        b->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        b->tail = w->prev;
}

static bool timer_claim(struct timer *t)
{
    struct waiter *w = (struct waiter *)((char *)t - offsetof(struct waiter, timer));
    uint32_t s = W_WAITING;
    return cas_acq_rel(&w->state, &s, W_TIMEDOUT);
}

static void timer_expire(struct timer *t)
{
    struct waiter *w = (struct waiter *)((char *)t - offsetof(struct waiter, timer));
    struct bucket *b = bucket_of(w->key);
    struct uthread *ut = w->ut;
    ilock(&b->lock);
    unlink_waiter(b, w);
    iunlock(&b->lock);
    weft__ready(ut);
}

static int result_of(uint32_t state)
{
    return state == W_WOKEN ? 0 : -ETIMEDOUT;
}

/* A kernel thread (not a worker) waits on its own futex word. */
static int park_kernel(struct bucket *b, struct waiter *w, int64_t deadline)
{
    iunlock(&b->lock);
    for (;;) {
        if (load_acquire(&w->kword))
            return result_of(load_acquire(&w->state));
        if (weft__futex_wait(&w->kword, 0, deadline) != -ETIMEDOUT)
            continue;
        uint32_t s = W_WAITING;
        if (cas_acq_rel(&w->state, &s, W_TIMEDOUT)) {
            ilock(&b->lock);
            unlink_waiter(b, w);
            iunlock(&b->lock);
            return -ETIMEDOUT;
        }
        /* A waker won; it is about to set kword. */
        deadline = -1;
    }
}

int weft_park(const uint32_t *addr, uint32_t expected, int64_t deadline)
{
    if (deadline >= 0 && deadline <= weft_now())
        return load_acquire(addr) != expected ? -EAGAIN : -ETIMEDOUT;

    struct uthread *ut = weft__current();
    struct waiter w = {.key = addr, .ut = ut, .state = W_WAITING, .kword = 0};
    struct bucket *b = bucket_of(addr);
    ilock(&b->lock);
    if (load_acquire(addr) != expected) {
        iunlock(&b->lock);
        return -EAGAIN;
    }
    if (!ut) {
        enqueue(b, &w);
        return park_kernel(b, &w, deadline);
    }
    store_relaxed(&ut->switching, 1); /* published by the unlock below */
    enqueue(b, &w);
    if (deadline >= 0) {
        w.timer.when = deadline;
        w.timer.idx = -1;
        w.timer.claim = timer_claim;
        w.timer.expire = timer_expire;
        weft__timer_add(weft__kthread()->w, &w.timer);
    }
    iunlock(&b->lock);
    weft__park_current(ut);
    return result_of(load_acquire(&w.state));
}

int weft_unpark(const uint32_t *addr, int n)
{
    struct bucket *b = bucket_of(addr);
    struct waiter *woken = NULL;
    int count = 0;
    ilock(&b->lock);
    for (struct waiter *w = b->head, *next; w && (n < 0 || count < n); w = next) {
        next = w->next;
        if (w->key != addr)
            continue;
        uint32_t s = W_WAITING;
        if (!cas_acq_rel(&w->state, &s, W_WOKEN))
            continue; /* its deadline won; the expiry unlinks it */
        unlink_waiter(b, w);
        w->next = woken; /* reuse the link for our private list */
        woken = w;
        count++;
    }
    iunlock(&b->lock);

    /* Reverse to wake in queue order. */
    struct waiter *fifo = NULL;
    while (woken) {
        struct waiter *w = woken;
        woken = w->next;
        w->next = fifo;
        fifo = w;
    }
    while (fifo) {
        struct waiter *w = fifo;
        fifo = w->next; /* read before w may go away */
        if (w->ut) {
            struct uthread *ut = w->ut;
            if (w->timer.claim)
                weft__timer_cancel(&w->timer);
            weft__ready(ut);
        } else {
            store_release(&w->kword, 1); /* w may be gone after this */
            weft__futex_wake(&w->kword, 1);
        }
    }
    return count;
}
