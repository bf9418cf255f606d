/*
 * select.c - weft_chan_select: complete one of several channel operations.
 *
 * The shape is Go's (runtime/select.go): lock every channel involved, look
 * for an operation that can complete at once in a random order, and if
 * none can, queue one record per operation, all pointing at one struct
 * wait, and block. The first waker to claim that wait (weft__wait_claim)
 * does its operation as for a plain send or receive (chan.c) and leaves
 * the operation's index in the token; every other record of the select
 * becomes a record whose wait is ended, which wakers skip and unlink
 * (chan_dequeue). When the select runs again it takes each channel's lock
 * once more and unlinks what is still linked, so no record outlives the
 * call (chan.c, "Lifetime of the stack records").
 *
 * Fairness. The operations are tried in a fresh random permutation at each
 * call (Fisher-Yates over a per-kernel-thread xorshift generator), so among
 * operations that can all complete, each is picked with equal probability;
 * a fixed or merely rotating start would favour the operation after a
 * long run of unready ones. Once queued, the select is served by whichever
 * partner comes first.
 *
 * Lock order. The locks are taken in increasing channel address, each
 * channel once however many operations name it, and every other path
 * holds a single channel lock; so two selects, or a select and anything
 * else, never wait for each other's locks in a cycle. After waking, the
 * select takes the locks one at a time.
 *
 * Self-matching: a select that sends and receives on the same rendezvous
 * channel cannot pair with itself. It looks for partners before queueing
 * any record, and once queued it is blocked, so only other threads find
 * its records.
 *
 * Bookkeeping (records, poll order, lock order) lives on the stack for up
 * to SELECT_STACK operations and is allocated above that.
 */
#include "sync/chan.h"

#include <stdlib.h>

#define SELECT_STACK 16

static __thread uint64_t rng_state;

/* A random number below n (n > 0). Never inlined, with a compiler barrier,
 * so the TLS state is that of the kernel thread running the caller now
 * (DESIGN.md, "TLS caching"). */
static __attribute__((noinline)) uint32_t rand_below(uint32_t n)
{
    compiler_barrier();
    uint64_t x = rng_state;
    if (unlikely(x == 0)) {
        x = (uint64_t)weft_now() ^ ((uintptr_t)&rng_state * 0x9e3779b97f4a7c15ull);
        if (x == 0)
            x = 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return (uint32_t)(((x >> 32) * (uint64_t)n) >> 32);
}

struct select_state {
    weft_chan_op *ops;
    int m;               /* operations with a channel */
    int *poll;           /* m op indices, in the order they are tried */
    int *lock;           /* m op indices, by channel address */
    struct chan_waiter *rec; /* m records, rec[k] for op lock[k] */
};

static void sort_by_channel(weft_chan_op *ops, int *idx, int m)
{
    /* Insertion sort: selects are small. Worst case m^2/2 steps. */
    for (int i = 1; i < m; i++) {
        int v = idx[i];
        uintptr_t key = (uintptr_t)ops[v].ch;
        int j = i;
        while (j > 0 && (uintptr_t)ops[idx[j - 1]].ch > key) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

static void lock_all(struct select_state *s)
{
    weft_chan_t *prev = NULL;
    for (int k = 0; k < s->m; k++) {
        weft_chan_t *ch = s->ops[s->lock[k]].ch;
        if (ch != prev)
            ilock(&ch->lock);
        prev = ch;
    }
}

static void unlock_all(struct select_state *s)
{
    for (int k = s->m - 1; k >= 0; k--) {
        weft_chan_t *ch = s->ops[s->lock[k]].ch;
        if (k == 0 || s->ops[s->lock[k - 1]].ch != ch)
            iunlock(&ch->lock);
    }
}

/* Waits for the deadline alone: select with nothing to select. */
static int wait_only(int64_t deadline)
{
    if (chan_would_not_wait(deadline))
        return chan_no_wait_error();
    struct wait w;
    weft__wait_prepare(&w);
    /* Published in no queue: only the deadline or a stop can end it. */
    return weft__wait_block(&w, deadline, true) == WAIT_STOPPED ? -ECANCELED : -ETIMEDOUT;
}

/* All channels locked: tries the operations in poll order. Returns the op
 * index that completed, -EPIPE (with *closed the index) for a closed
 * channel's operation, or -EAGAIN when none can complete now. */
static int try_ops(struct select_state *s, struct wait **wake, int *closed)
{
    for (int k = 0; k < s->m; k++) {
        int i = s->poll[k];
        weft_chan_op *op = &s->ops[i];
        int r = op->dir == WEFT_SEND ? chan_try_send(op->ch, op->elem, wake)
                                     : chan_try_recv(op->ch, op->elem, wake);
        if (r > 0)
            return i;
        if (r < 0) {
            *closed = i;
            return -EPIPE;
        }
    }
    return -EAGAIN;
}

static int run_select(struct select_state *s, int64_t deadline)
{
    weft_chan_op *ops = s->ops;
    int m = s->m;
    for (int k = 0; k < m; k++) {
        int j = (int)rand_below((uint32_t)k + 1); /* Fisher-Yates, inside out */
        if (j != k)
            s->poll[k] = s->poll[j];
        s->poll[j] = s->lock[k];
    }
    sort_by_channel(ops, s->lock, m);

    lock_all(s);
    struct wait *wake = NULL;
    int closed = -1;
    int r = try_ops(s, &wake, &closed);
    if (r != -EAGAIN || chan_would_not_wait(deadline)) {
        unlock_all(s);
        if (wake)
            weft__wait_release(wake);
        if (r == -EPIPE)
            ops[closed].ch = NULL;
        return r == -EAGAIN ? chan_no_wait_error() : r;
    }

    struct wait w;
    weft__wait_prepare(&w);
    for (int k = 0; k < m; k++) {
        int i = s->lock[k];
        struct chan_waiter *rec = &s->rec[k];
        *rec = (struct chan_waiter){.wait = &w, .elem = ops[i].elem, .ch = ops[i].ch, .index = i};
        chan_enqueue(ops[i].dir == WEFT_SEND ? &rec->ch->sendq : &rec->ch->recvq, rec);
    }
    unlock_all(s);

    uint32_t how = weft__wait_block(&w, deadline, true);
    int won = how == WAIT_WOKEN ? CHAN_TOKEN_INDEX(w.token) : -1;
    for (int k = 0; k < m; k++) {
        struct chan_waiter *rec = &s->rec[k];
        if (rec->index == won)
            continue; /* unlinked by the waker that claimed w */
        ilock(&rec->ch->lock);
        if (rec->linked)
            chan_unlink(ops[rec->index].dir == WEFT_SEND ? &rec->ch->sendq : &rec->ch->recvq, rec);
        iunlock(&rec->ch->lock);
    }
    if (won < 0)
        return how == WAIT_STOPPED ? -ECANCELED : -ETIMEDOUT;
    if (CHAN_TOKEN_CLOSED(w.token)) {
        ops[won].ch = NULL;
        return -EPIPE;
    }
    return won;
}

int weft_chan_select(weft_chan_op *ops, int n, int64_t deadline)
{
    if (n < 0 || (n > 0 && !ops))
        return -EINVAL;
    weft__preempt_point();
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (ops[i].dir != WEFT_SEND && ops[i].dir != WEFT_RECV)
            return -EINVAL;
        if (!ops[i].ch)
            continue;
        if (ops[i].dir == WEFT_SEND && !ops[i].elem)
            return -EINVAL;
        m++;
    }
    if (m == 0)
        return wait_only(deadline);

    int poll_stack[SELECT_STACK], lock_stack[SELECT_STACK];
    struct chan_waiter rec_stack[SELECT_STACK];
    struct select_state s = {.ops = ops, .m = m, .poll = poll_stack, .lock = lock_stack,
                             .rec = rec_stack};
    void *mem = NULL;
    if (m > SELECT_STACK) {
        mem = malloc((size_t)m * (sizeof(struct chan_waiter) + 2 * sizeof(int)));
        if (!mem)
            return -ENOMEM;
        s.rec = mem;
        s.poll = (int *)(s.rec + m);
        s.lock = s.poll + m;
    }
    for (int i = 0, k = 0; i < n; i++)
        if (ops[i].ch)
            s.lock[k++] = i;
    int r = run_select(&s, deadline);
    free(mem);
    return r;
}
