/*
 * park.c - the parking lot: wait queues keyed by address, for user threads
 * and kernel threads alike. weft_park/weft_unpark are a futex that parks a
 * user thread instead of blocking its worker; joins, locks, condition
 * variables and the rest wait here (sync.h).
 *
 * One fixed table of buckets, hashed by address; each bucket is a small
 * lock and a FIFO of waiters for every address that hashes to it. A waiter
 * record lives on the waiting thread's stack and holds a struct wait, which
 * is ended exactly once (wait.c): an unparker claims it under the bucket
 * lock and unlinks it; a waiter ended by its deadline unlinks itself.
 *
 * No lost wake-up. park validates (compares *addr with the expected value)
 * under the bucket lock, and an unpark takes the same lock, so a waker that
 * changed *addr before unparking either runs before the comparison (park
 * sees the new value: -EAGAIN) or after the waiter is queued (unpark finds
 * it).
 */
#include "sync/sync.h"
#include "base/zero.h"

#include <errno.h>

/* Each bucket's queue is a list that unpark walks, so the cost of an
 * unpark grows with the waiters that share its bucket: with 1,024 buckets
 * and a million parked joiners it was ~1,000 cold waiters per unpark.
 * 65,536 buckets (2 MiB of zero pages, touched as used) keep that near 16
 * at a million waiters. A table that grows with the number of waiters
 * (WebKit's ParkingLot does) is the complete fix. */
#define NBUCKETS_LOG2 16
#define NBUCKETS (1u << NBUCKETS_LOG2)

struct waiter {
    const void *key;
    struct waiter *next, *prev; /* bucket queue; bucket lock */
    int64_t since;              /* when it parked, for fairness decisions */
    struct wait wait;
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

int weft__park_ex(const void *addr, bool (*validate)(void *ctx), void (*before_sleep)(void *ctx),
                  void *ctx, int64_t deadline, int64_t since, uintptr_t *token, bool stop)
{
    struct waiter w = {.key = addr, .since = since};
    struct bucket *b = bucket_of(addr);
    weft__wait_prepare(&w.wait);
    ilock(&b->lock);
    if (!validate(ctx)) {
        iunlock(&b->lock);
        weft__wait_abandon(&w.wait);
        return -EAGAIN;
    }
    enqueue(b, &w);
    iunlock(&b->lock);
    if (before_sleep)
        before_sleep(ctx);
    uint32_t how = weft__wait_block(&w.wait, deadline, stop);
    if (how == WAIT_WOKEN) {
        if (token)
            *token = w.wait.token;
        return 0;
    }
    /* Ended by the deadline or a stop: no unparker claimed us, so we are
     * still queued, and only we may unlink ourselves. */
    ilock(&b->lock);
    unlink_waiter(b, &w);
    iunlock(&b->lock);
    return how == WAIT_STOPPED ? -ECANCELED : -ETIMEDOUT;
}

int weft__unpark_ex(const void *addr, int n, uintptr_t (*callback)(void *ctx, struct unpark_info info),
                    void *ctx)
{
    struct bucket *b = bucket_of(addr);
    struct waiter *woken = NULL, **tail = &woken;
    struct unpark_info info = {.woken = 0, .more = false, .since = 0};
    ilock(&b->lock);
    for (struct waiter *w = b->head, *next; w; w = next) {
        next = w->next;
        if (w->key != addr)
            continue;
        if (n >= 0 && info.woken >= n) {
            if (load_relaxed(&w->wait.state) == WAIT_PENDING) {
                info.more = true;
                break;
            }
            continue;
        }
        if (!weft__wait_claim(&w->wait, WAIT_WOKEN))
            continue; /* its deadline won; it unlinks itself */
        if (!info.woken)
            info.since = w->since;
        info.woken++;
        unlink_waiter(b, w);
        w->next = NULL; /* out of the bucket: the link is ours */
        *tail = w;
        tail = &w->next;
    }
    uintptr_t token = callback ? callback(ctx, info) : 0;
    iunlock(&b->lock);

    while (woken) {
        struct waiter *x = woken;
        woken = x->next; /* read before x may go away */
        x->wait.token = token;
        weft__wait_release(&x->wait);
    }
    return info.woken;
}

struct park_args {
    const uint32_t *addr;
    uint32_t expected;
};

static bool park_validate(void *ctx)
{
    struct park_args *a = ctx;
    return load_acquire(a->addr) == a->expected;
}

/* A fork child: the buckets hold the parent's waiters (records on stacks
 * of threads that do not exist here) and maybe locks held for ever. */
void weft__park_reset_child(void)
{
    weft__zero(buckets, sizeof buckets);
}

int weft__park(const uint32_t *addr, uint32_t expected, int64_t deadline, bool stop)
{
    if (deadline >= 0 && deadline <= weft_now()) {
        if (load_acquire(addr) != expected)
            return -EAGAIN;
        return stop && (weft__stop_self() & ST_STOP) ? -ECANCELED : -ETIMEDOUT;
    }
    struct park_args a = {addr, expected};
    return weft__park_ex(addr, park_validate, NULL, &a, deadline, 0, NULL, stop);
}

/* A stop ends the wait only when it has a deadline (weft.h): an untimed
 * park is the futex under the waits a stopping thread still needs. */
int weft_park(const uint32_t *addr, uint32_t expected, int64_t deadline)
{
    return weft__park(addr, expected, deadline, deadline >= 0);
}

int weft_unpark(const uint32_t *addr, int n)
{
    return weft__unpark_ex(addr, n, NULL, NULL);
}
