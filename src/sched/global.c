/*
 * global.c - the global run queue and the per-worker inboxes.
 *
 * The global queue takes what does not fit a local ring and every thread
 * made runnable by a kernel thread that is not a worker (main, a foreign
 * pthread). It is a locked FIFO; gcount lets workers skip the lock when it
 * is empty. A worker takes a batch at a time into its own ring, and looks
 * at the global queue every 64th schedule even when its ring has work, so
 * the global queue is never starved.
 *
 * An inbox is a locked FIFO per worker, used only in WEFT_DEBUG=migrate
 * mode to send a thread to a chosen worker.
 */
#include "sched/sched.h"

void global_push(struct uthread *head, struct uthread *tail, uint32_t n)
{
    struct runtime *rt = &weft__rt;
    tail->next = NULL;
    ilock(&rt->glock);
    if (rt->gtail)
        rt->gtail->next = head;
    else
        rt->ghead = head;
    rt->gtail = tail;
    store_relaxed(&rt->gcount, rt->gcount + n);
    iunlock(&rt->glock);
}

struct uthread *global_get(struct worker *w)
{
    struct runtime *rt = &weft__rt;
    if (!load_relaxed(&rt->gcount))
        return NULL;
    ilock(&rt->glock);
    struct uthread *first = rt->ghead;
    if (!first) {
        iunlock(&rt->glock);
        return NULL;
    }
    /* Take a fair share: the queue divided among the workers, at most half
     * a ring, so one worker does not hoard what others could run. */
    uint32_t n = rt->gcount / (uint32_t)rt->nworkers + 1;
    if (n > RUNQ_SIZE / 2)
        n = RUNQ_SIZE / 2;
    /* Never more than the ring has room for: a full ring would spill the
     * batch straight back here. Thieves only make more room. */
    uint32_t room = w ? RUNQ_SIZE - (w->tail - load_acquire(&w->head)) : 0;
    if (n > room + 1)
        n = room + 1;
    /* Detach the batch under the lock; queue it locally after, since a
     * full ring spills back into this queue. */
    struct uthread *last = first;
    uint32_t took = 1;
    while (last->next && took < n) {
        last = last->next;
        took++;
    }
    rt->ghead = last->next;
    if (!rt->ghead)
        rt->gtail = NULL;
    store_relaxed(&rt->gcount, rt->gcount - took);
    iunlock(&rt->glock);
    last->next = NULL;
    for (struct uthread *ut = first->next; ut;) {
        struct uthread *nx = ut->next;
        runq_put(w, ut);
        ut = nx;
    }
    first->next = NULL;
    return first;
}

void inbox_push(struct worker *w, struct uthread *ut)
{
    ut->next = NULL;
    ilock(&w->inbox_lock);
    if (w->inbox_tail)
        w->inbox_tail->next = ut;
    else
        w->inbox_head = ut;
    w->inbox_tail = ut;
    store_relaxed(&w->inbox_n, w->inbox_n + 1);
    iunlock(&w->inbox_lock);
}

struct uthread *inbox_get(struct worker *w)
{
    if (!load_relaxed(&w->inbox_n))
        return NULL;
    ilock(&w->inbox_lock);
    struct uthread *ut = w->inbox_head;
    if (ut) {
        w->inbox_head = ut->next;
        if (!w->inbox_head)
            w->inbox_tail = NULL;
        store_relaxed(&w->inbox_n, w->inbox_n - 1);
    }
    iunlock(&w->inbox_lock);
    if (ut)
        ut->next = NULL;
    return ut;
}
