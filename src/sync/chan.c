/*
 * chan.c - channels: send, receive, close (select is in select.c).
 *
 * A channel is one internal lock, a ring of cap elements (none for a
 * rendezvous channel), a FIFO of waiting senders and one of waiting
 * receivers. The queues hold records (struct chan_waiter, chan.h) that
 * live on the waiting threads' stacks, each pointing at the struct wait
 * (sync.h) that ends its owner's blocking exactly once. The ideas are Go's
 * (runtime/chan.go, runtime/select.go): a waker does the waiter's half of
 * the operation for it (copies the element into or out of the waiter's own
 * buffer) while it holds the lock, so a woken waiter has nothing left to
 * do and never retries; a rendezvous copies straight from sender to
 * receiver; a receive from a full ring refills the slot it freed from the
 * oldest waiting sender, so elements stay in order.
 *
 * States. Under the lock: a sender waits only while the ring is full and
 * no receiver waits; a receiver only while the ring is empty and no sender
 * waits; so at most one queue has claimable records, and a record found
 * claimable can always be served at once. closed only goes from false to
 * true, under the lock.
 *
 * Waiting (send shown; receive is its mirror):
 *
 *   sender                                 receiver (a waker)
 *   ------                                 ------------------
 *   lock; no room, no receiver             lock
 *   wait_prepare; enqueue record           r = dequeue: unlink, claim
 *   unlock                                 copy *r->elem out; token
 *   wait_block                             unlock
 *   woken: token says done (or closed)     wait_release(r->wait)
 *
 * Exactly once. Everything that can end a wait - a matching operation, a
 * close, the deadline, a stop of the waiter - must win weft__wait_claim's
 * one CAS; the loser does
 * nothing to the wait. A matching operation or a close claims under the
 * channel lock and does the whole operation (copy, unlink, token) before
 * dropping the lock, so a claimed waiter's operation is always complete,
 * and an unclaimed one has done nothing: a deadline never returns with an
 * element half sent. No lost wake-up: a waiter checks for a partner and
 * queues itself under one holding of the lock, so a partner arriving later
 * finds the record, and one arriving earlier was found by the check.
 *
 * Who unlinks a record. Whoever claims it unlinks it, under the lock,
 * except a stop, which knows the thread and not the channel (sync/wait.c):
 * a stopped waiter unlinks itself as after a deadline. A waker that finds
 * a record whose wait is already ended (its deadline or a stop won, or
 * another channel of the same select) unlinks it too and moves on, as
 * Go does; linked says which happened. A waiter ended by its deadline or a
 * stop, or
 * a select woken through another of its records, takes the lock of each
 * channel it is queued on and unlinks the records still linked. sync.h's
 * protocol has the loser leave the record alone; here the loser unlinks
 * it but still never touches the wait, which is what that rule protects.
 *
 * Lifetime of the stack records. A waker touches a record only under the
 * channel lock while it is linked, and after dropping the lock touches
 * only the wait it claimed, and that only in weft__wait_release, its last
 * touch (sync.h). The owner does not return before it is released, and
 * before returning it takes the lock of every channel where it may still
 * be linked; once it holds a lock and finds its record unlinked, no waker
 * can reach the record through that channel again. close builds a list of
 * claimed records through their next fields and releases them after
 * unlocking; it reads a record's next before releasing its wait, as the
 * parking lot does.
 *
 * Lock order. A thread holds at most one channel lock, except select,
 * which takes the locks of all its channels in address order (select.c).
 * Nothing else is taken under a channel lock: weft__wait_release (which
 * takes run-queue locks) runs after unlocking, and a user thread never
 * switches while holding the lock (futex.h).
 *
 * Rejected: channels on the address-keyed parking lot (park.c). A select
 * waits in several queues at once with one wait, and a waker must copy the
 * element while the waiter is still queued; the parking lot has neither.
 */
#include "sync/chan.h"

#include <stdint.h>
#include <stdlib.h>

int weft_chan_new(weft_chan_t **out, size_t elem_size, size_t capacity)
{
    if (!out || elem_size == 0 || elem_size > WEFT_CHAN_ELEM_MAX)
        return -EINVAL;
    size_t head = sizeof(struct weft_chan);
    if (capacity > (SIZE_MAX - head) / elem_size)
        return -EINVAL;
    struct weft_chan *ch;
    if (posix_memalign((void **)&ch, 64, head + capacity * elem_size) != 0)
        return -ENOMEM;
    *ch = (struct weft_chan){
        .lock = ILOCK_INIT,
        .elem_size = elem_size,
        .cap = capacity,
        .buf = (char *)ch + head,
    };
    *out = ch;
    return 0;
}

int weft_chan_send(weft_chan_t *ch, const void *elem, int64_t deadline)
{
    if (!ch || !elem)
        return -EINVAL;
    weft__preempt_point();
    struct wait *wake = NULL;
    ilock(&ch->lock);
    int r = chan_try_send(ch, elem, &wake);
    if (r != 0 || chan_would_not_wait(deadline)) {
        iunlock(&ch->lock);
        if (wake)
            weft__wait_release(wake);
        return r > 0 ? 0 : r < 0 ? r : chan_no_wait_error();
    }
    struct wait w;
    struct chan_waiter rec = {.wait = &w, .elem = (void *)elem, .ch = ch, .index = 0};
    weft__wait_prepare(&w);
    chan_enqueue(&ch->sendq, &rec);
    iunlock(&ch->lock);
    uint32_t how = weft__wait_block(&w, deadline, true);
    if (how == WAIT_WOKEN)
        return CHAN_TOKEN_CLOSED(w.token) ? -EPIPE : 0; /* the waker unlinked rec */
    ilock(&ch->lock);
    if (rec.linked)
        chan_unlink(&ch->sendq, &rec);
    iunlock(&ch->lock);
    return how == WAIT_STOPPED ? -ECANCELED : -ETIMEDOUT;
}

int weft_chan_recv(weft_chan_t *ch, void *elem, int64_t deadline)
{
    if (!ch)
        return -EINVAL;
    weft__preempt_point();
    struct wait *wake = NULL;
    ilock(&ch->lock);
    int r = chan_try_recv(ch, elem, &wake);
    if (r != 0 || chan_would_not_wait(deadline)) {
        iunlock(&ch->lock);
        if (wake)
            weft__wait_release(wake);
        return r > 0 ? 0 : r < 0 ? r : chan_no_wait_error();
    }
    struct wait w;
    struct chan_waiter rec = {.wait = &w, .elem = elem, .ch = ch, .index = 0};
    weft__wait_prepare(&w);
    chan_enqueue(&ch->recvq, &rec);
    iunlock(&ch->lock);
    uint32_t how = weft__wait_block(&w, deadline, true);
    if (how == WAIT_WOKEN)
        return CHAN_TOKEN_CLOSED(w.token) ? -EPIPE : 0;
    ilock(&ch->lock);
    if (rec.linked)
        chan_unlink(&ch->recvq, &rec);
    iunlock(&ch->lock);
    return how == WAIT_STOPPED ? -ECANCELED : -ETIMEDOUT;
}

/* Under ch->lock: claims every claimable waiter of q with a "closed"
 * token and appends it to the list at *tail; returns the new tail. */
static struct chan_waiter **claim_all(struct chan_queue *q, struct chan_waiter **tail)
{
    struct chan_waiter *r;
    while ((r = chan_dequeue(q)) != NULL) {
        r->wait->token = CHAN_TOKEN(r->index, 1);
        r->next = NULL; /* unlinked: the link is ours now */
        *tail = r;
        tail = &r->next;
    }
    return tail;
}

int weft_chan_close(weft_chan_t *ch)
{
    if (!ch)
        return -EINVAL;
    struct chan_waiter *list = NULL;
    ilock(&ch->lock);
    if (ch->closed) {
        iunlock(&ch->lock);
        return -EPIPE;
    }
    ch->closed = true;
    claim_all(&ch->sendq, claim_all(&ch->recvq, &list));
    iunlock(&ch->lock);
    while (list) {
        struct chan_waiter *r = list;
        list = r->next; /* before the release: r may die after it */
        weft__wait_release(r->wait);
    }
    return 0;
}

static int queue_len(const struct chan_queue *q)
{
    int n = 0;
    for (const struct chan_waiter *r = q->head; r; r = r->next)
        n++;
    return n;
}

void weft_chan_free(weft_chan_t *ch)
{
    if (!ch)
        return;
    ilock(&ch->lock);
    int senders = queue_len(&ch->sendq), receivers = queue_len(&ch->recvq);
    iunlock(&ch->lock);
    /* Freeing would leave those threads' records pointing into freed
     * memory, and them waiting for ever (or worse) on a dead lock. */
    if (senders || receivers)
        weft__panic("weft_chan_free: channel %p freed while %d sender(s) and %d receiver(s) "
                    "wait on it",
                    (void *)ch, senders, receivers);
    free(ch);
}
