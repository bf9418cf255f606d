/*
 * io.h - declarations private to the io layer (src/io/): the per-fd state
 * the poller keeps (poll.c) and the waiting the fd wrappers do on it
 * (fd.c, tcp.c). The scheduler's hooks into the poller are in internal.h.
 */
#ifndef WEFT_IO_IO_H
#define WEFT_IO_IO_H

#include "sync/sync.h"

#include <sys/types.h>

/* Bits of fdstate.flags. */
#define FD_NONBLOCK 1u   /* O_NONBLOCK is set on the open file */
#define FD_REGISTERED 2u /* in the epoll set (EPOLLIN|OUT|RDHUP|ET) */
#define FD_CLOSING 4u    /* weft_close is under way: waits fail with -EBADF */

struct iowait;

/*
 * What weft knows about one fd number. Entries live in a chunked table
 * indexed by fd and are never freed or moved, so an epoll event or a late
 * waiter may always touch the entry of its fd number; a new open file that
 * reuses the number starts from a reset entry (weft_close, or the wrapper
 * that made it: accept, tcp_listen, tcp_connect).
 */
struct fdstate {
    struct ilock lock;
    uint32_t flags;        /* atomic loads; stores under lock: FD_* */
    uint32_t rseq, wseq;   /* atomic loads; bumped under lock by every
                              readiness event for reading / writing */
    uint32_t closes;       /* atomic loads; bumped under lock by weft_close */
    struct iowait *head;   /* lock: waiting threads, oldest first */
    struct iowait *tail;   /* lock */
};

/* The entry of fd, made if need be; NULL for fd < 0, too large, or no memory. */
struct fdstate *weft__fd_get(int fd);
/* The entry of fd if it was ever made, else NULL. */
struct fdstate *weft__fd_find(int fd);
/* A fd this process just made (accept, socket): forget what an earlier open
 * file with this number left, and note it is non-blocking already. */
void weft__fd_fresh(int fd, bool nonblocking);
/* Makes fd non-blocking unless known to be. 0 or a negative errno. */
int weft__fd_nonblock(struct fdstate *f, int fd);

/*
 * The caller's last try at fd came back EAGAIN. Waits until fd may be ready
 * for events (WEFT_IN / WEFT_OUT) or the deadline passes. seq is
 * weft__fd_seq(f, events) read before that try: an event seen since makes
 * this return at once. Returns 0 (try again), -ETIMEDOUT, -EBADF (closed by
 * weft_close), or an error registering fd. May switch threads.
 */
int weft__fd_wait(struct fdstate *f, int fd, int events, uint64_t seq, int64_t deadline);

/* The readiness sequence of f for events, read before a try (acquire). */
static inline uint64_t weft__fd_seq(struct fdstate *f, int events)
{
    return (uint64_t)load_acquire(&f->rseq) << 32 | load_acquire(&f->wseq);
}

#endif
