/*
 * iotest.h - helpers for the I/O test programs (t_io_*.c).
 *
 *   io_unix_pair(sv)        a connected AF_UNIX stream socket pair
 *   io_tcp_listener(&addr, &len, backlog)
 *                           a loopback TCP listener on a kernel-picked port;
 *                           its address in addr
 *   io_tcp_pair(sv)         a connected loopback TCP pair: sv[0] the client,
 *                           sv[1] the accepted end (both non-blocking)
 *   io_full_tcp_listener(&addr, &len, made, &n)
 *   io_full_unix_listener(&addr, &len, made, &n)
 *                           a listener (loopback TCP; AF_UNIX with an
 *                           abstract name of its own) with backlog 0 whose
 *                           accept queue is full, so a connect to it waits;
 *                           the connections that filled it (1 or 2) go in
 *                           made, their number in n, for the caller to close
 *   io_fill(fd)             writes until the socket's send path is full
 *                           (a write with deadline 0 times out); returns
 *                           the bytes written
 *   io_drain(fd)            reads until a read with deadline 0 times out;
 *                           returns the bytes read
 *   io_in_weft(fn)          runs fn() in a weft thread and joins it
 *   io_expect_timeout(what, r, deadline)
 *                           r must be -ETIMEDOUT, and weft_now() must be at
 *                           or past deadline (the contract: never early)
 *
 * Every helper fails the test (check.h) on an unexpected result.
 */
#ifndef WEFT_TESTS_IOTEST_H
#define WEFT_TESTS_IOTEST_H

#include "check.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static inline void io_unix_pair(int sv[2])
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static inline int io_tcp_listener(struct sockaddr_in *addr, socklen_t *len, int backlog)
{
    int l = weft_tcp_listen("127.0.0.1", 0, backlog);
    if (l < 0)
        check_failed("weft_tcp_listen(127.0.0.1, 0, %d) returned %d (%s)\n", backlog, l,
                     check_errname(l));
    *len = sizeof *addr;
    CHECK_EQ(getsockname(l, (struct sockaddr *)addr, len), 0);
    return l;
}

static inline void io_tcp_pair(int sv[2])
{
    struct sockaddr_in a;
    socklen_t al;
    int l = io_tcp_listener(&a, &al, 4);
    sv[0] = weft_tcp_connect("127.0.0.1", ntohs(a.sin_port), weft_after(WEFT_SEC(30)));
    CHECK(sv[0] >= 0);
    sv[1] = weft_accept(l, NULL, NULL, SOCK_CLOEXEC, weft_after(WEFT_SEC(30)));
    CHECK(sv[1] >= 0);
    CHECK_ERR(weft_close(l), 0);
}

/* A loopback TCP queue is full when a connect's SYN goes unanswered (the
 * kernel drops it): the first connect that times out says so. With
 * backlog 0 one connection fits (some kernels count one more). */
static inline int io_full_tcp_listener(struct sockaddr_in *addr, socklen_t *len, int made[2],
                                       int *n)
{
    int l = io_tcp_listener(addr, len, 0);
    int port = ntohs(addr->sin_port);
    *n = 0;
    for (;;) {
        int r = weft_tcp_connect("127.0.0.1", port, weft_after(WEFT_MS(300)));
        if (r < 0) {
            CHECK_ERR(r, -ETIMEDOUT);
            break;
        }
        CHECK(*n < 2);
        made[(*n)++] = r;
    }
    CHECK(*n >= 1);
    return l;
}

/* An AF_UNIX queue says it is full at once (EAGAIN), so the connects that
 * fill it need no wait: a connect with deadline 0 times out only then. */
static inline int io_full_unix_listener(struct sockaddr_un *addr, socklen_t *len, int made[2],
                                        int *n)
{
    static int seq;
    *addr = (struct sockaddr_un){.sun_family = AF_UNIX};
    /* An abstract name: nothing to clean up in the file system. */
    snprintf(addr->sun_path + 1, sizeof addr->sun_path - 1, "weft-test-%d-%d", (int)getpid(),
             __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(addr->sun_path + 1));
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    CHECK_EQ(bind(l, (struct sockaddr *)addr, *len), 0);
    CHECK_EQ(listen(l, 0), 0);
    *n = 0;
    for (;;) {
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(c >= 0);
        int r = weft_connect(c, (struct sockaddr *)addr, *len, 0);
        if (r < 0) {
            CHECK_ERR(r, -ETIMEDOUT);
            CHECK_ERR(weft_close(c), 0);
            break;
        }
        CHECK(*n < 2);
        made[(*n)++] = c;
    }
    CHECK(*n >= 1);
    return l;
}

static inline long io_fill(int fd)
{
    static char junk[65536];
    long total = 0;
    for (;;) {
        ssize_t n = weft_write(fd, junk, sizeof junk, 0);
        if (n == -ETIMEDOUT)
            return total;
        if (n <= 0)
            check_failed("io_fill: weft_write returned %zd (%s)\n", n, check_errname(n));
        total += n;
    }
}

static inline long io_drain(int fd)
{
    static __thread char sink[65536];
    long total = 0;
    for (;;) {
        ssize_t n = weft_read(fd, sink, sizeof sink, 0);
        if (n == -ETIMEDOUT)
            return total;
        if (n <= 0)
            check_failed("io_drain: weft_read returned %zd (%s)\n", n, check_errname(n));
        total += n;
    }
}

static inline void *io_in_weft_main(void *arg)
{
    void (*fn)(void) = (void (*)(void))arg;
    fn();
    return NULL;
}

static inline void io_in_weft(void (*fn)(void))
{
    weft_t t;
    CHECK_ERR(weft_spawn(&t, io_in_weft_main, (void *)fn, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
}

static inline void io_expect_timeout(const char *what, long long r, int64_t deadline)
{
    if (r != -ETIMEDOUT)
        check_failed("%s returned %lld (%s), expected -ETIMEDOUT\n", what, r, check_errname(r));
    if (deadline > 0 && weft_now() < deadline)
        check_failed("%s timed out before its deadline\n", what);
}

#endif /* WEFT_TESTS_IOTEST_H */
