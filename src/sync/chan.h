/*
 * chan.h - the channel object and the steps that chan.c (send, receive,
 * close) and select.c share. The design and the argument for it are at the
 * top of chan.c.
 */
#ifndef WEFT_SYNC_CHAN_H
#define WEFT_SYNC_CHAN_H

#include "sync/sync.h"

#include <errno.h>
#include <string.h>

/*
 * One thread waiting to send or receive on one channel. It lives on the
 * waiting thread's stack (a select has one per operation, all pointing at
 * the same struct wait). Every field but wait->state is read and written
 * only under ch->lock while linked is true; the waiter itself reads them
 * again only after it is woken or has taken the lock.
 */
struct chan_waiter {
    struct chan_waiter *next, *prev; /* in ch->sendq or ch->recvq; ch->lock.
                                        next is reused by close for its list
                                        of waits to release, once unlinked */
    struct wait *wait;               /* the blocking this record belongs to */
    void *elem;                      /* a sender's element, or where a
                                        receiver wants one (NULL: discard) */
    struct weft_chan *ch;            /* the channel whose queue holds it */
    int index;                       /* the select operation it stands for
                                        (0 for send and recv) */
    bool linked;                     /* ch->lock: in ch's queue */
};

struct chan_queue {
    struct chan_waiter *head, *tail; /* FIFO; ch->lock */
};

struct weft_chan {
    struct ilock lock;          /* protects everything below but the
                                   fields marked fixed */
    bool closed;                /* lock; never goes back to false */
    size_t elem_size;           /* fixed at creation */
    size_t cap;                 /* fixed: ring slots; 0 for rendezvous */
    size_t head;                /* lock: slot of the oldest element */
    size_t count;               /* lock: elements in the ring */
    struct chan_queue sendq;    /* lock: senders waiting for room or a
                                   receiver (only while the ring is full) */
    struct chan_queue recvq;    /* lock: receivers waiting for an element
                                   (only while the ring is empty) */
    char *buf;                  /* fixed pointer: cap * elem_size bytes
                                   right after this struct; contents: lock */
} __attribute__((aligned(64)));

/*
 * The token a waker leaves in a claimed wait: which record won (the
 * select operation's index) and whether it was ended by close (the
 * operation did not happen) rather than by a matching operation.
 */
#define CHAN_TOKEN(index, closed) (((uintptr_t)(unsigned)(index) << 1) | (closed))
#define CHAN_TOKEN_INDEX(tok) ((int)((tok) >> 1))
#define CHAN_TOKEN_CLOSED(tok) ((tok)&1)

static inline void chan_enqueue(struct chan_queue *q, struct chan_waiter *r)
{
    r->next = NULL;
    r->prev = q->tail;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    r->linked = true;
}

static inline void chan_unlink(struct chan_queue *q, struct chan_waiter *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        q->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        q->tail = r->prev;
    r->linked = false;
}

/*
 * Under ch->lock: takes the oldest waiter of q whose wait the caller can
 * claim, unlinked and claimed (WAIT_WOKEN), or NULL. Records whose wait
 * something else already ended (a deadline, another channel of the same
 * select) are unlinked on the way, as Go's dequeue does; their owners see
 * linked == false under the lock and leave them be.
 */
static inline struct chan_waiter *chan_dequeue(struct chan_queue *q)
{
    struct chan_waiter *r;
    while ((r = q->head) != NULL) {
        chan_unlink(q, r);
        if (weft__wait_claim(r->wait, WAIT_WOKEN))
            return r;
    }
    return NULL;
}

static inline char *chan_slot(struct weft_chan *ch, size_t i)
{
    return ch->buf + i * ch->elem_size;
}

/* Copies one element; the sizes that fit a register are copied inline. */
static inline void chan_copy(void *dst, const void *src, size_t n)
{
    switch (n) {
    case 8:
        memcpy(dst, src, 8);
        break;
    case 4:
        memcpy(dst, src, 4);
        break;
    case 16:
        memcpy(dst, src, 16);
        break;
    default:
        memcpy(dst, src, n);
    }
}

/*
 * Under ch->lock, the non-blocking half of a send: hands elem to a waiting
 * receiver or puts it in the ring. Returns 1 when sent, 0 when the sender
 * would have to wait, -EPIPE when ch is closed. *wake is set to the wait of
 * a receiver to release once the lock is dropped (else left alone).
 */
static inline int chan_try_send(struct weft_chan *ch, const void *elem, struct wait **wake)
{
    if (unlikely(ch->closed))
        return -EPIPE;
    struct chan_waiter *r = chan_dequeue(&ch->recvq);
    if (r) {
        if (r->elem)
            chan_copy(r->elem, elem, ch->elem_size);
        r->wait->token = CHAN_TOKEN(r->index, 0);
        *wake = r->wait;
        return 1;
    }
    if (ch->count < ch->cap) {
        size_t i = ch->head + ch->count;
        if (i >= ch->cap)
            i -= ch->cap;
        chan_copy(chan_slot(ch, i), elem, ch->elem_size);
        ch->count++;
        return 1;
    }
    return 0;
}

/*
 * Under ch->lock, the non-blocking half of a receive: the oldest element
 * of the ring (then a waiting sender's element moves into the slot freed),
 * else a waiting sender's element directly. Returns 1 when received, 0
 * when the receiver would have to wait, -EPIPE when ch is closed and
 * empty. *wake as for chan_try_send.
 */
static inline int chan_try_recv(struct weft_chan *ch, void *elem, struct wait **wake)
{
    if (ch->count) {
        if (elem)
            chan_copy(elem, chan_slot(ch, ch->head), ch->elem_size);
        if (++ch->head == ch->cap)
            ch->head = 0;
        ch->count--;
        /* A sender waits only while the ring is full: it has room now. */
        struct chan_waiter *s = chan_dequeue(&ch->sendq);
        if (s) {
            size_t i = ch->head + ch->count;
            if (i >= ch->cap)
                i -= ch->cap;
            chan_copy(chan_slot(ch, i), s->elem, ch->elem_size);
            ch->count++;
            s->wait->token = CHAN_TOKEN(s->index, 0);
            *wake = s->wait;
        }
        return 1;
    }
    struct chan_waiter *s = chan_dequeue(&ch->sendq);
    if (s) {
        if (elem)
            chan_copy(elem, s->elem, ch->elem_size);
        s->wait->token = CHAN_TOKEN(s->index, 0);
        *wake = s->wait;
        return 1;
    }
    return unlikely(ch->closed) ? -EPIPE : 0;
}

/* Has the deadline passed, so that the caller must not block? 0 and
 * other past times: yes; WEFT_FOREVER (any negative): no. Reads the
 * clock only for a deadline in the future. */
static inline bool chan_deadline_passed(int64_t deadline)
{
    return deadline >= 0 && (deadline == 0 || deadline <= weft_now());
}

/* Must an operation that cannot complete at once return instead of
 * waiting: its deadline passed, or its thread is stopped (a stop ends
 * every channel wait, timed or not)? chan_no_wait_error then says what to
 * return. */
static inline bool chan_would_not_wait(int64_t deadline)
{
    return chan_deadline_passed(deadline) || (weft__stop_self() & ST_STOP);
}

static inline int chan_no_wait_error(void)
{
    return weft__stop_self() & ST_STOP ? -ECANCELED : -ETIMEDOUT;
}

#endif
