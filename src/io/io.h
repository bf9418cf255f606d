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
#define FD_CLOSING 4u    /* weft_close is under way (see poll.c, closing) */
#define FD_CLOSEWAIT 8u  /* a thread waits on the parking lot, keyed by the
                            entry, for FD_CLOSING to clear */
#define FD_NOTSOCK 16u   /* not a socket: weft_write uses write(2), not
                            send(2) with MSG_NOSIGNAL */
#define FD_FILE 32u      /* a regular file, block device or directory:
                            never "not ready", so every call may block the
                            kernel thread and runs in a blocking section
                            (sched/handoff.c) */
#define FD_EXEMPT 64u    /* weft_fd_exempt: stops do not apply to calls on
                            this file (stop/stop.c); cleared, like the
                            rest, by weft_close and by a fresh file */

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
    uint32_t closes;       /* atomic loads; bumped under lock by weft_close
                              when it sets FD_CLOSING */
    struct iowait *head;   /* lock: waiting threads, oldest first */
    struct iowait *tail;   /* lock */
};

/* The entry of fd, made if need be; NULL for fd < 0, too large, or no
 * memory (weft__fd_err says which). */
struct fdstate *weft__fd_get(int fd);
/* The error for a fd weft__fd_get gave no entry for: -EBADF or -ENOMEM. */
int weft__fd_err(int fd);
/* The entry of fd if it was ever made, else NULL. */
struct fdstate *weft__fd_find(int fd);
/* A fd this process just made (accept, socket): forget what an earlier open
 * file with this number left, and note it is non-blocking already. */
void weft__fd_fresh(int fd, bool nonblocking);
/* Makes fd non-blocking unless known to be. closes: f->closes read
 * before (acquire). 0 or a negative errno. */
int weft__fd_nonblock(struct fdstate *f, int fd, uint32_t closes);
/* Remembers flag (FD_NONBLOCK, FD_NOTSOCK: facts about the open file)
 * unless a weft_close came since closes was read. */
void weft__fd_learn(struct fdstate *f, uint32_t closes, uint32_t flag);

/*
 * What a wrapper saw of f before its try: the readiness sequences, read
 * before each try, and the close count, read once when the wrapper began
 * (so a weft_close that began after it shows).
 */
struct fdsnap {
    uint32_t rseq, wseq;
    uint32_t closes;
};

/* Reads the readiness sequences into s before a try (acquire: pairs with
 * the poller's release stores). */
static inline void weft__fd_snap(struct fdstate *f, struct fdsnap *s)
{
    s->rseq = load_acquire(&f->rseq);
    s->wseq = load_acquire(&f->wseq);
}

/*
 * The caller's last try at fd came back EAGAIN. Waits until fd may be ready
 * for events (WEFT_IN / WEFT_OUT) or the deadline passes. s is what the
 * caller saw before that try: an event seen since makes this return at
 * once. stop: a stop of the calling weft thread ends the wait (false for
 * an exempt fd). Returns 0 (try again), -ETIMEDOUT, -ECANCELED, -EBADF
 * (weft_close'd since s was taken), or an error registering fd. May
 * switch threads.
 */
int weft__fd_wait(struct fdstate *f, int fd, int events, const struct fdsnap *s, int64_t deadline,
                  bool stop);

/* Marks the open file at fd exempt from stops, or not (FD_EXEMPT).
 * 0, -EBADF (bad number, or being weft_close'd), -ENOMEM. */
int weft__fd_exempt(int fd, bool exempt);

/* weft_sleep with the choice of whether a stop ends it: 0 at the deadline,
 * -ECANCELED when stopped (sleep.c). May switch threads. */
int weft__sleep(int64_t deadline, bool stop);

#endif
