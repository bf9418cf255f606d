/*
 * ring.c - the two byte rings of a proc's region, and the shared futex the
 * child sleeps on (the layout, and why no lock is needed: proc.h).
 *
 * Both processes run this code, each on its own struct end: the parent
 * writes the request ring and reads the response ring, the child the other
 * way round. An end belongs to one thread at a time (the parent's call
 * chain, the child's serving thread), so within a process nothing here is
 * shared; across the two processes each index has one writer:
 *
 *   producer: copy bytes at tail .. ; store_release(tail)   pairs with
 *   consumer: load_acquire(tail); copy bytes out; store_release(head)
 *   producer: load_acquire(head) before it overwrites consumed bytes
 *
 * After every publish the end kicks the other side (its doorbell, proc.h),
 * which costs a fence and a load unless the other side sleeps. Streams are
 * copied in as large pieces as fit, so a small message is one publish and
 * one kick, and a megabyte one a publish per ring's worth.
 *
 * The indices are 64-bit byte counts that never wrap in practice (16 EiB);
 * offsets in the ring are count & (size - 1), the size a power of two.
 *
 * Each end keeps the index it stores (the producer's tail, the consumer's
 * head) in its struct end and never reads it back, and it checks the one
 * the other process stores before using it: the bytes in flight,
 * tail - head in unsigned arithmetic, must be at most the ring's size. An
 * index that went backwards, jumped ahead of the other, or was scribbled
 * outright fails that (unsigned wrap-around turns "negative" into huge),
 * so a copy never covers more than the ring: without the check, a head
 * ahead of tail made "space" larger than the ring and the copy ran past
 * its end, into whatever the parent had mapped there. A failed check is
 * -EPROTO, never a copy.
 */
#include "proc/proc.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int weft__futex_wait_shared(uint32_t *word, uint32_t val)
{
    int saved = errno;
    long r = syscall(SYS_futex, word, FUTEX_WAIT, val, NULL, NULL, 0);
    int e = errno;
    errno = saved;
    return r == 0 ? 0 : -e;
}

void weft__futex_wake_shared(uint32_t *word)
{
    int saved = errno;
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    errno = saved;
}

void weft__ring_reset(struct end *e)
{
    struct region *r = e->r;
    store_relaxed(&r->req.head, 0);
    store_relaxed(&r->req.tail, 0);
    store_relaxed(&r->resp.head, 0);
    store_relaxed(&r->resp.tail, 0);
    store_relaxed(&r->child_waiting, 0);
    store_relaxed(&r->child_bell, 0);
    store_relaxed(&r->parent_waiting, 0);
    e->in_head = e->out_tail = 0;
}

/* The readiness tests of a wait. An impossible index reads as ready, so
 * the caller wakes up and its check below fails the call. */
static bool has_space(struct end *e, void *arg)
{
    (void)arg;
    /* Pairs with the consumer's release of head. */
    return e->out_tail - load_acquire(&e->out->head) != e->size;
}

static bool has_data(struct end *e, void *arg)
{
    (void)arg;
    /* Pairs with the producer's release of tail. */
    return load_acquire(&e->in->tail) != e->in_head;
}

/* Copies n bytes (n <= size) between a flat buffer and the ring at byte
 * count pos. */
static void copy_in(char *base, uint64_t size, uint64_t pos, const char *src, size_t n)
{
    if (n == 0)
        return; /* src may be NULL then */
    size_t off = (size_t)(pos & (size - 1));
    size_t first = n < size - off ? n : (size_t)(size - off);
    memcpy(base + off, src, first);
    if (n > first)
        memcpy(base, src + first, n - first);
}

static void copy_out(const char *base, uint64_t size, uint64_t pos, char *dst, size_t n)
{
    size_t off = (size_t)(pos & (size - 1));
    size_t first = n < size - off ? n : (size_t)(size - off);
    if (dst && n) {
        memcpy(dst, base + off, first);
        if (n > first)
            memcpy(dst + first, base, n - first);
    }
}

int weft__ring_write(struct end *e, const struct iovec *iov, int n)
{
    uint64_t size = e->size;
    struct ring *rg = e->out;
    uint64_t tail = e->out_tail;
    int i = 0;
    size_t done = 0; /* of iov[i] */
    while (i < n) {
        uint64_t used = tail - load_acquire(&rg->head); /* pairs with read's release */
        if (used > size)
            return -EPROTO; /* the consumer's head is impossible (see top) */
        uint64_t space = size - used;
        if (space == 0) {
            int r = e->wait(e, has_space, NULL);
            if (r < 0)
                return r;
            continue;
        }
        /* Fill what fits from as many pieces as fit, then publish once. */
        while (i < n && space > 0) {
            size_t left = iov[i].iov_len - done;
            size_t k = left < space ? left : (size_t)space;
            copy_in(e->out_base, size, tail, (const char *)iov[i].iov_base + done, k);
            tail += k;
            space -= k;
            done += k;
            if (done == iov[i].iov_len) {
                i++;
                done = 0;
            }
        }
        e->out_tail = tail;
        store_release(&rg->tail, tail); /* pairs with has_data / read's acquire */
        e->kick(e);
    }
    return 0;
}

int weft__ring_read(struct end *e, void *dst, size_t len)
{
    uint64_t size = e->size;
    struct ring *rg = e->in;
    uint64_t head = e->in_head;
    char *d = dst;
    while (len > 0) {
        uint64_t avail = load_acquire(&rg->tail) - head; /* pairs with write's release */
        if (avail > size)
            return -EPROTO; /* the producer's tail is impossible (see top) */
        if (avail == 0) {
            int r = e->wait(e, has_data, NULL);
            if (r < 0)
                return r;
            continue;
        }
        size_t k = len < avail ? len : (size_t)avail;
        copy_out(e->in_base, size, head, d, k);
        head += k;
        len -= k;
        if (d)
            d += k;
        e->in_head = head;
        store_release(&rg->head, head); /* pairs with has_space / write's acquire */
        e->kick(e);
    }
    return 0;
}
