/*
 * fd.c - the fd wrappers: read, write, send, recv, accept, connect and
 * the rest, each a try-then-wait loop over the poller (poll.c).
 *
 * Every wrapper is one loop (io_loop): read the fd's readiness sequence,
 * make the non-blocking system call, and on EAGAIN wait for the next edge
 * (weft__fd_wait, which returns at once if an edge came after the sequence
 * was read). What one successful call returns is the result: no wrapper
 * loops to fill or drain a buffer, as POSIX's calls do not. EINTR (a
 * signal on the kernel thread) is retried, since the caller never asked
 * for it.
 *
 * The deadline is checked only after an EAGAIN, so a deadline of 0 makes
 * exactly one try, and -ETIMEDOUT comes either from that check or from the
 * wait's timer, both at or after the deadline.
 *
 * Stops (weft.h). A stopped thread's call still makes its try, so data
 * already there is read and room already there is written; where it would
 * wait it returns -ECANCELED, and a stop that comes during the wait ends
 * it (poll.c). With WEFT_STOP_FILES the call fails before its try. An fd
 * marked exempt (FD_EXEMPT, weft_fd_exempt) ignores stops altogether. The
 * flag is read once per call, from the flags word the call loads anyway.
 *
 * Rejected: skipping the try when the last read came back short and no
 * edge has come since. In a request/response loop that try is the one
 * EAGAIN of three system calls per round trip (read, write, read), and an
 * epoll event loop does without it. But a short read does not prove the
 * socket empty: TCP stops a read at urgent data, and a FIN that arrived
 * with the data is read as 0 only by the next call. The edge for what
 * remains was consumed already, so the skipped try would sleep for ever.
 */
#include "io/io.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* What a try may need besides its own arguments. */
struct io_ctx {
    struct fdstate *f;
    const struct fdsnap *s;
};

/* One try of a call: its result, or -errno. */
typedef ssize_t (*io_try)(int fd, const struct io_ctx *io, void *ctx);

static ssize_t io_loop(int fd, int events, io_try try, void *ctx, int64_t deadline)
{
    struct fdstate *f = weft__fd_get(fd);
    if (!f)
        return weft__fd_err(fd);
    weft__preempt_point();
    struct fdsnap s;
    struct io_ctx io = {f, &s};
    s.closes = load_acquire(&f->closes); /* pairs with weft_close */
    bool stop = !(load_relaxed(&f->flags) & FD_EXEMPT); /* do stops apply? */
    if (unlikely(stop && (weft__stop_self() & ST_FILES)))
        return -ECANCELED;
    int r = weft__fd_nonblock(f, fd, s.closes);
    if (r < 0)
        return r;
    for (;;) {
        weft__fd_snap(f, &s);
        ssize_t n;
        if (unlikely(load_relaxed(&f->flags) & FD_FILE)) {
            struct blocking b; /* a disk may take its time */
            weft__blocking_enter(&b, false); /* usually a cached page */
            n = try(fd, &io, ctx);
            weft__blocking_leave(&b);
        } else {
            n = try(fd, &io, ctx);
        }
        if (n != -EAGAIN) {
            if (n == -EINTR)
                continue;
            return n;
        }
        if (stop && (weft__stop_self() & ST_STOP))
            return -ECANCELED;
        if (deadline >= 0 && (deadline == 0 || weft_now() >= deadline))
            return -ETIMEDOUT;
        r = weft__fd_wait(f, fd, events, &s, deadline, stop);
        if (r < 0)
            return r;
    }
}

static inline ssize_t ret(ssize_t n)
{
    return n < 0 ? -weft__errno_get() : n;
}

/* ---- the calls --------------------------------------------------------- */

struct buf {
    void *p;
    size_t len;
    int flags;
};

static bool is_notsock(const struct io_ctx *io, ssize_t n);

/* On a socket every try passes MSG_DONTWAIT, so it cannot block even if
 * the O_NONBLOCK weft remembers for the number is wrong: a wrapper that
 * races a weft_close of its fd may meet another file under the freed
 * number (any open in the process can take it) and remember that file's
 * flags for the next socket to get the number. Other fds answer ENOTSOCK
 * once and use read(2), write(2) and the rest from then on. */
static ssize_t try_read(int fd, const struct io_ctx *io, void *c)
{
    struct buf *b = c;
    if (!(load_relaxed(&io->f->flags) & FD_NOTSOCK)) {
        ssize_t n = ret(recv(fd, b->p, b->len, MSG_DONTWAIT));
        if (!is_notsock(io, n))
            return n;
    }
    return ret(read(fd, b->p, b->len));
}

/* A write to a socket whose peer has gone raises SIGPIPE, which kills
 * the process from a kernel thread that does not block it; send with
 * MSG_NOSIGNAL does the same write without the signal. Other fds answer
 * ENOTSOCK once and use write(2) from then on. */
static bool is_notsock(const struct io_ctx *io, ssize_t n)
{
    if (n != -ENOTSOCK)
        return false;
    weft__fd_learn(io->f, io->s->closes, FD_NOTSOCK);
    return true;
}

static ssize_t try_write(int fd, const struct io_ctx *io, void *c)
{
    struct buf *b = c;
    if (!(load_relaxed(&io->f->flags) & FD_NOTSOCK)) {
        ssize_t n = ret(send(fd, b->p, b->len, MSG_NOSIGNAL | MSG_DONTWAIT));
        if (!is_notsock(io, n))
            return n;
    }
    return ret(write(fd, b->p, b->len));
}

static ssize_t try_recv(int fd, const struct io_ctx *io, void *c)
{
    (void)io; /* the tries of sockets-only calls need no fd facts */
    struct buf *b = c;
    return ret(recv(fd, b->p, b->len, b->flags | MSG_DONTWAIT));
}

static ssize_t try_send(int fd, const struct io_ctx *io, void *c)
{
    (void)io; /* the tries of sockets-only calls need no fd facts */
    struct buf *b = c;
    return ret(send(fd, b->p, b->len, b->flags | MSG_NOSIGNAL | MSG_DONTWAIT));
}

ssize_t weft_read(int fd, void *buf, size_t len, int64_t deadline)
{
    struct buf b = {buf, len, 0};
    return io_loop(fd, WEFT_IN, try_read, &b, deadline);
}

ssize_t weft_write(int fd, const void *buf, size_t len, int64_t deadline)
{
    struct buf b = {(void *)buf, len, 0};
    return io_loop(fd, WEFT_OUT, try_write, &b, deadline);
}

ssize_t weft_recv(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
    struct buf b = {buf, len, flags};
    return io_loop(fd, WEFT_IN, try_recv, &b, deadline);
}

ssize_t weft_send(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
    struct buf b = {(void *)buf, len, flags};
    return io_loop(fd, WEFT_OUT, try_send, &b, deadline);
}

struct vec {
    const struct iovec *iov;
    int n;
};

static ssize_t try_readv(int fd, const struct io_ctx *io, void *c)
{
    struct vec *v = c;
    if (!(load_relaxed(&io->f->flags) & FD_NOTSOCK)) {
        struct msghdr m = {.msg_iov = (struct iovec *)v->iov, .msg_iovlen = (size_t)v->n};
        ssize_t n = ret(recvmsg(fd, &m, MSG_DONTWAIT));
        if (!is_notsock(io, n))
            return n;
    }
    return ret(readv(fd, v->iov, v->n));
}

static ssize_t try_writev(int fd, const struct io_ctx *io, void *c)
{
    struct vec *v = c;
    if (!(load_relaxed(&io->f->flags) & FD_NOTSOCK)) {
        struct msghdr m = {.msg_iov = (struct iovec *)v->iov, .msg_iovlen = (size_t)v->n};
        ssize_t n = ret(sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT));
        if (!is_notsock(io, n))
            return n;
    }
    return ret(writev(fd, v->iov, v->n));
}

ssize_t weft_readv(int fd, const struct iovec *iov, int n, int64_t deadline)
{
    if (n < 0 || n > IOV_MAX)
        return -EINVAL;
    struct vec v = {iov, n};
    return io_loop(fd, WEFT_IN, try_readv, &v, deadline);
}

ssize_t weft_writev(int fd, const struct iovec *iov, int n, int64_t deadline)
{
    if (n < 0 || n > IOV_MAX)
        return -EINVAL;
    struct vec v = {iov, n};
    return io_loop(fd, WEFT_OUT, try_writev, &v, deadline);
}

struct addrbuf {
    void *p;
    size_t len;
    int flags;
    struct sockaddr *addr;
    socklen_t *addrlen;   /* recvfrom, accept */
    socklen_t alen;       /* sendto */
};

static ssize_t try_recvfrom(int fd, const struct io_ctx *io, void *c)
{
    (void)io; /* the tries of sockets-only calls need no fd facts */
    struct addrbuf *b = c;
    return ret(recvfrom(fd, b->p, b->len, b->flags | MSG_DONTWAIT, b->addr, b->addrlen));
}

static ssize_t try_sendto(int fd, const struct io_ctx *io, void *c)
{
    (void)io; /* the tries of sockets-only calls need no fd facts */
    struct addrbuf *b = c;
    return ret(sendto(fd, b->p, b->len, b->flags | MSG_NOSIGNAL | MSG_DONTWAIT, b->addr, b->alen));
}

ssize_t weft_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                      socklen_t *addrlen, int64_t deadline)
{
    struct addrbuf b = {buf, len, flags, addr, addrlen, 0};
    return io_loop(fd, WEFT_IN, try_recvfrom, &b, deadline);
}

ssize_t weft_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                    socklen_t addrlen, int64_t deadline)
{
    struct addrbuf b = {(void *)buf, len, flags, (struct sockaddr *)addr, NULL, addrlen};
    return io_loop(fd, WEFT_OUT, try_sendto, &b, deadline);
}

struct msg {
    struct msghdr *m;
    int flags;
};

static ssize_t try_recvmsg(int fd, const struct io_ctx *io, void *c)
{
    (void)io; /* the tries of sockets-only calls need no fd facts */
    struct msg *m = c;
    return ret(recvmsg(fd, m->m, m->flags | MSG_DONTWAIT));
}

static ssize_t try_sendmsg(int fd, const struct io_ctx *io, void *c)
{
    (void)io; /* the tries of sockets-only calls need no fd facts */
    struct msg *m = c;
    return ret(sendmsg(fd, m->m, m->flags | MSG_NOSIGNAL | MSG_DONTWAIT));
}

ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline)
{
    struct msg m = {msg, flags};
    return io_loop(fd, WEFT_IN, try_recvmsg, &m, deadline);
}

ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline)
{
    struct msg m = {(struct msghdr *)msg, flags};
    return io_loop(fd, WEFT_OUT, try_sendmsg, &m, deadline);
}

static ssize_t try_accept(int fd, const struct io_ctx *io, void *c)
{
    (void)io; /* the tries of sockets-only calls need no fd facts */
    struct addrbuf *b = c;
    int s = accept4(fd, b->addr, b->addrlen, b->flags | SOCK_NONBLOCK);
    if (s < 0) {
        int e = weft__errno_get();
        /* Errors of the new connection, not of the listener: Linux
         * passes them on from accept; the next one may be fine. */
        if (e == ECONNABORTED)
            return -EINTR;
        return -e;
    }
    return s;
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags, int64_t deadline)
{
    if (flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK))
        return -EINVAL;
    struct addrbuf b = {NULL, 0, flags, addr, len, 0};
    ssize_t s = io_loop(fd, WEFT_IN, try_accept, &b, deadline);
    if (s >= 0)
        weft__fd_fresh((int)s, true);
    return (int)s;
}

/* ---- waiting for readiness itself -------------------------------------- */

static ssize_t try_poll(int fd, const struct io_ctx *io, void *c)
{
    (void)io; /* the tries of sockets-only calls need no fd facts */
    int *events = c;
    struct pollfd p = {.fd = fd, .events = (short)(*events | (*events & POLLIN ? POLLRDHUP : 0))};
    int n = poll(&p, 1, 0);
    if (n < 0)
        return -weft__errno_get();
    if (n == 0)
        return -EAGAIN;
    if (p.revents & POLLNVAL)
        return -EBADF;
    int ready = p.revents & (POLLIN | POLLOUT);
    if (p.revents & (POLLERR | POLLHUP))
        ready = *events; /* an error or hang-up: every asked event is ready */
    if (p.revents & POLLRDHUP)
        ready |= *events & WEFT_IN;
    return ready & *events;
}

int weft_fdwait(int fd, int events, int64_t deadline)
{
    if (!(events & (WEFT_IN | WEFT_OUT)) || (events & ~(WEFT_IN | WEFT_OUT)))
        return -EINVAL;
    return (int)io_loop(fd, events, try_poll, &events, deadline);
}

/* A connect that got EAGAIN (an AF_UNIX listener with a full backlog:
 * nothing in the kernel signals when it has room) sleeps and tries again,
 * from 50 us doubling to 10 ms. */
#define CONNECT_RETRY_MIN_NS 50000
#define CONNECT_RETRY_MAX_NS 10000000

int weft_connect(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline)
{
    struct fdstate *f = weft__fd_get(fd);
    if (!f)
        return weft__fd_err(fd);
    bool stop = !(load_relaxed(&f->flags) & FD_EXEMPT); /* as in io_loop */
    if (unlikely(stop && (weft__stop_self() & ST_FILES)))
        return -ECANCELED;
    int r = weft__fd_nonblock(f, fd, load_acquire(&f->closes));
    if (r < 0)
        return r;
    bool again = false; /* a connect of ours may be under way */
    int64_t pause = CONNECT_RETRY_MIN_NS;
    while (connect(fd, addr, len) < 0) {
        int e = weft__errno_get();
        if (e == EINTR) {
            again = true; /* Linux: the connection goes on; the retry says so */
            continue;
        }
        if (e == EISCONN && again)
            return 0;
        if (e == EAGAIN) {
            if (stop && (weft__stop_self() & ST_STOP))
                return -ECANCELED;
            int64_t now = weft_now();
            if (deadline >= 0 && (deadline == 0 || now >= deadline))
                return -ETIMEDOUT;
            int64_t until = now + pause;
            if (weft__sleep(deadline >= 0 && deadline < until ? deadline : until, stop) < 0)
                return -ECANCELED;
            if (pause < CONNECT_RETRY_MAX_NS)
                pause *= 2;
            continue;
        }
        if (e != EINPROGRESS && e != EALREADY)
            return -e;
        r = weft_fdwait(fd, WEFT_OUT, deadline);
        if (r < 0)
            return r;
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
            return -weft__errno_get();
        return -err;
    }
    return 0;
}
