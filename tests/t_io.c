/*
 * t_io: the fd wrappers on socket pairs and pipes.
 *
 *   ready       every wrapper with data (or room) there: completes at once,
 *               with deadline 0 as well
 *   not ready   every wrapper without: deadline 0 gives -ETIMEDOUT at once,
 *               a deadline 20 ms away gives -ETIMEDOUT no earlier
 *   wake        a reader (each wrapper) parked on an empty socket wakes with
 *               the data another thread writes later
 *   fdwait      the ready set: WEFT_OUT on an empty socket, WEFT_IN once
 *               data is there, both asked and both ready
 *   eof         the peer's close gives 0 to read, recv and readv
 *   reset       a peer closing with SO_LINGER 0 gives -ECONNRESET
 *   close       weft_close wakes a parked reader and a parked fdwait with
 *               -EBADF; a later call gets -EBADF
 *   kernel      the same from plain pthreads (no weft thread): blocking
 *               read woken by a weft writer, -ETIMEDOUT not early, -EBADF
 *               after a weft_close from another thread
 *   ping-pong   two weft threads bounce a byte 2,000 times over a pipe pair
 */
#include "check.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static void pair(int sv[2])
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

/* ---- ready / not ready -------------------------------------------------- */

static void wrappers_ready(void)
{
    int sv[2];
    pair(sv);
    char buf[64];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    CHECK_EQ(weft_write(sv[0], "a", 1, 0), 1);
    CHECK_EQ(weft_read(sv[1], buf, sizeof buf, 0), 1);
    CHECK_EQ(buf[0], 'a');
    CHECK_EQ(weft_send(sv[0], "bc", 2, 0, 0), 2);
    CHECK_EQ(weft_recv(sv[1], buf, sizeof buf, 0, 0), 2);
    struct iovec wv[2] = {{"d", 1}, {"ef", 2}};
    CHECK_EQ(weft_writev(sv[0], wv, 2, 0), 3);
    CHECK_EQ(weft_readv(sv[1], &iov, 1, WEFT_FOREVER), 3);
    CHECK(memcmp(buf, "def", 3) == 0);
    CHECK_EQ(weft_sendto(sv[0], "g", 1, 0, NULL, 0, 0), 1);
    CHECK_EQ(weft_recvfrom(sv[1], buf, sizeof buf, 0, NULL, NULL, 0), 1);
    struct iovec sv_iov = {"hi", 2};
    struct msghdr smh = {.msg_iov = &sv_iov, .msg_iovlen = 1};
    CHECK_EQ(weft_sendmsg(sv[0], &smh, 0, weft_after(WEFT_SEC(1))), 2);
    CHECK_EQ(weft_recvmsg(sv[1], &mh, 0, 0), 2);
    CHECK(memcmp(buf, "hi", 2) == 0);
    CHECK_ERR(weft_fdwait(sv[0], WEFT_OUT, 0), WEFT_OUT);
    CHECK_ERR(weft_fdwait(sv[0], 0, 0), -EINVAL);
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);
}

static void timed_out(const char *what, long long r, int64_t deadline)
{
    if (r != -ETIMEDOUT)
        check_failed("%s returned %lld, expected -ETIMEDOUT\n", what, r);
    if (deadline > 0 && weft_now() < deadline)
        check_failed("%s timed out early\n", what);
}

static void wrappers_not_ready(void)
{
    int sv[2];
    pair(sv);
    char buf[64];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    int64_t deadlines[] = {0, -2, 1};
    for (int i = 0; i < 3; i++) {
        int64_t d = deadlines[i] == -2 ? weft_now() - WEFT_SEC(1)
                    : deadlines[i] == 1 ? weft_after(WEFT_MS(20))
                                        : 0;
        timed_out("read", weft_read(sv[1], buf, sizeof buf, d), d);
        if (deadlines[i] == 1)
            d = weft_after(WEFT_MS(5));
        timed_out("recv", weft_recv(sv[1], buf, sizeof buf, 0, d), d);
        timed_out("readv", weft_readv(sv[1], &iov, 1, d), d);
        timed_out("recvfrom", weft_recvfrom(sv[1], buf, sizeof buf, 0, NULL, NULL, d), d);
        timed_out("recvmsg", weft_recvmsg(sv[1], &mh, 0, d), d);
        timed_out("fdwait", weft_fdwait(sv[1], WEFT_IN, d), d);
    }
    /* Fill the send buffer, then every writer times out. */
    static char big[65536];
    long total = 0;
    for (;;) {
        ssize_t n = weft_write(sv[0], big, sizeof big, 0);
        if (n == -ETIMEDOUT)
            break;
        CHECK(n > 0);
        total += n;
    }
    CHECK(total > 0);
    int64_t d = weft_after(WEFT_MS(10));
    timed_out("write", weft_write(sv[0], big, 1, d), d);
    d = weft_after(WEFT_MS(5));
    timed_out("send", weft_send(sv[0], big, 1, 0, d), d);
    struct iovec wv = {big, 1};
    timed_out("writev", weft_writev(sv[0], &wv, 1, d), d);
    timed_out("sendto", weft_sendto(sv[0], big, 1, 0, NULL, 0, 0), 0);
    struct msghdr smh = {.msg_iov = &wv, .msg_iovlen = 1};
    timed_out("sendmsg", weft_sendmsg(sv[0], &smh, 0, d), d);
    timed_out("fdwait out", weft_fdwait(sv[0], WEFT_OUT, d), d);
    CHECK_ERR(weft_fdwait(sv[0], WEFT_IN | WEFT_OUT, 0), -ETIMEDOUT);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

/* ---- wake ---------------------------------------------------------------- */

struct waker {
    int fd;
    int64_t delay;
};

static void *delayed_write(void *arg)
{
    struct waker *w = arg;
    weft_sleep(weft_after(w->delay));
    CHECK_EQ(weft_write(w->fd, "xyz", 3, WEFT_FOREVER), 3);
    return NULL;
}

static void wake(void)
{
    for (int kind = 0; kind < 6; kind++) {
        int sv[2];
        pair(sv);
        struct waker w = {sv[0], WEFT_MS(5)};
        weft_t t;
        CHECK_ERR(weft_spawn(&t, delayed_write, &w, NULL), 0);
        char buf[8];
        struct iovec iov = {buf, sizeof buf};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        int64_t d = weft_after(WEFT_SEC(10));
        long long r = 0;
        switch (kind) {
        case 0: r = weft_read(sv[1], buf, sizeof buf, d); break;
        case 1: r = weft_recv(sv[1], buf, sizeof buf, 0, WEFT_FOREVER); break;
        case 2: r = weft_readv(sv[1], &iov, 1, d); break;
        case 3: r = weft_recvfrom(sv[1], buf, sizeof buf, 0, NULL, NULL, d); break;
        case 4: r = weft_recvmsg(sv[1], &mh, 0, d); break;
        case 5: r = weft_fdwait(sv[1], WEFT_IN | WEFT_OUT, d) >= 0 ? 3 : -1;
            /* OUT is ready at once on an empty socket */
            break;
        }
        CHECK_EQ(r, 3);
        CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
        weft_close(sv[0]);
        weft_close(sv[1]);
    }
    /* fdwait for IN only, woken by the write; then both ready bits. */
    int sv[2];
    pair(sv);
    struct waker w = {sv[0], WEFT_MS(5)};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, delayed_write, &w, NULL), 0);
    CHECK_ERR(weft_fdwait(sv[1], WEFT_IN, WEFT_FOREVER), WEFT_IN);
    CHECK_ERR(weft_fdwait(sv[1], WEFT_IN | WEFT_OUT, 0), WEFT_IN | WEFT_OUT);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

/* ---- eof, reset ---------------------------------------------------------- */

static void eof(void)
{
    int sv[2];
    pair(sv);
    struct waker w = {sv[0], WEFT_MS(2)};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, delayed_write, &w, NULL), 0);
    char buf[8];
    CHECK_EQ(weft_read(sv[1], buf, sizeof buf, WEFT_FOREVER), 3);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_EQ(weft_read(sv[1], buf, sizeof buf, WEFT_FOREVER), 0);
    CHECK_EQ(weft_recv(sv[1], buf, sizeof buf, 0, 0), 0);
    struct iovec iov = {buf, sizeof buf};
    CHECK_EQ(weft_readv(sv[1], &iov, 1, 0), 0);
    CHECK_ERR(weft_send(sv[1], "x", 1, 0, 0), -EPIPE); /* no SIGPIPE */
    weft_close(sv[1]);
}

static void *linger_close(void *arg)
{
    int fd = (int)P2U(arg);
    weft_sleep(weft_after(WEFT_MS(5)));
    struct linger l = {1, 0};
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
    CHECK_ERR(weft_close(fd), 0);
    return NULL;
}

static void reset(void)
{
    int l = weft_tcp_listen("127.0.0.1", 0, 16);
    CHECK(l >= 0);
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &al), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c >= 0);
    CHECK_ERR(weft_connect(c, (struct sockaddr *)&a, al, WEFT_FOREVER), 0);
    int s = weft_accept(l, NULL, NULL, SOCK_CLOEXEC, WEFT_FOREVER);
    CHECK(s >= 0);
    weft_t t;
    CHECK_ERR(weft_spawn(&t, linger_close, U2P(s), NULL), 0);
    char buf[8];
    CHECK_ERR(weft_read(c, buf, sizeof buf, weft_after(WEFT_SEC(10))), -ECONNRESET);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    weft_close(c);
    weft_close(l);
}

/* ---- close -------------------------------------------------------------- */

static void *blocked_reader(void *arg)
{
    int fd = (int)P2U(arg);
    char buf[8];
    return U2P(weft_read(fd, buf, sizeof buf, weft_after(WEFT_SEC(20))));
}

static void *blocked_fdwait(void *arg)
{
    return U2P(weft_fdwait((int)P2U(arg), WEFT_IN, WEFT_FOREVER));
}

static void close_wakes(void)
{
    int sv[2];
    pair(sv);
    weft_t r, f;
    CHECK_ERR(weft_spawn(&r, blocked_reader, U2P(sv[1]), NULL), 0);
    CHECK_ERR(weft_spawn(&f, blocked_fdwait, U2P(sv[1]), NULL), 0);
    weft_sleep(weft_after(WEFT_MS(20)));
    int64_t t0 = weft_now();
    CHECK_ERR(weft_close(sv[1]), 0);
    void *res;
    CHECK_ERR(weft_join(r, &res, WEFT_FOREVER), 0);
    CHECK_EQ((intptr_t)res, -EBADF);
    CHECK_ERR(weft_join(f, &res, WEFT_FOREVER), 0);
    CHECK_EQ((intptr_t)res, -EBADF);
    CHECK(weft_now() - t0 < WEFT_SEC(10));
    char buf[4];
    CHECK_ERR(weft_read(sv[1], buf, sizeof buf, 0), -EBADF);
    CHECK_ERR(weft_close(sv[1]), -EBADF);
    weft_close(sv[0]);
}

/* ---- kernel threads ----------------------------------------------------- */

static void *kernel_reader(void *arg)
{
    int fd = (int)P2U(arg);
    char buf[8];
    CHECK_EQ(weft_self(), 0);
    int64_t d = weft_after(WEFT_MS(15));
    CHECK_ERR(weft_read(fd, buf, sizeof buf, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    /* Now the weft writer (spawned by main) wakes us. */
    return U2P(weft_read(fd, buf, sizeof buf, weft_after(WEFT_SEC(10))));
}

static void *kernel_closed(void *arg)
{
    return U2P(weft_read((int)P2U(arg), (char[8]){0}, 8, WEFT_FOREVER));
}

static void kernel(void)
{
    int sv[2];
    pair(sv);
    pthread_t k;
    CHECK_EQ(pthread_create(&k, NULL, kernel_reader, U2P(sv[1])), 0);
    struct waker w = {sv[0], WEFT_MS(40)};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, delayed_write, &w, NULL), 0);
    void *res;
    CHECK_EQ(pthread_join(k, &res), 0);
    CHECK_EQ((intptr_t)res, 3);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    /* main (a kernel thread) writes, a kernel thread reads it. */
    CHECK_EQ(weft_write(sv[0], "q", 1, WEFT_FOREVER), 1);
    char c;
    CHECK_EQ(weft_recv(sv[1], &c, 1, 0, 0), 1);
    /* weft_close from main wakes a kernel-thread reader with -EBADF. */
    CHECK_EQ(pthread_create(&k, NULL, kernel_closed, U2P(sv[1])), 0);
    usleep(20000);
    CHECK_ERR(weft_close(sv[1]), 0);
    CHECK_EQ(pthread_join(k, &res), 0);
    CHECK_EQ((intptr_t)res, -EBADF);
    weft_close(sv[0]);
}

/* ---- ping-pong ---------------------------------------------------------- */

#define ROUNDS 2000

static void *pong(void *arg)
{
    int *fds = arg; /* read fds[0], write fds[1] */
    char c;
    for (int i = 0; i < ROUNDS; i++) {
        CHECK_EQ(weft_read(fds[0], &c, 1, WEFT_FOREVER), 1);
        CHECK_EQ(weft_write(fds[1], &c, 1, WEFT_FOREVER), 1);
    }
    return NULL;
}

static void ping_pong(void)
{
    int a[2], b[2];
    CHECK_EQ(pipe(a), 0);
    CHECK_EQ(pipe(b), 0);
    int fds[2] = {a[0], b[1]};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, pong, fds, NULL), 0);
    int64_t t0 = weft_now();
    for (int i = 0; i < ROUNDS; i++) {
        char c = (char)i, d;
        CHECK_EQ(weft_write(a[1], &c, 1, WEFT_FOREVER), 1);
        CHECK_EQ(weft_read(b[0], &d, 1, WEFT_FOREVER), 1);
        CHECK_EQ(d, c);
    }
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    printf("ping-pong: %d round trips over pipes, %.1f us each\n", ROUNDS,
           (double)(weft_now() - t0) / ROUNDS / 1e3);
    weft_close(a[0]);
    weft_close(a[1]);
    weft_close(b[0]);
    weft_close(b[1]);
}

static void *in_weft(void *arg)
{
    void (*fn)(void) = (void (*)(void))arg;
    fn();
    return NULL;
}

static void run(const char *name, void (*fn)(void))
{
    weft_t t;
    CHECK_ERR(weft_spawn(&t, in_weft, (void *)fn, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    printf("%s: ok\n", name);
}

int main(void)
{
    run("ready", wrappers_ready);
    run("not ready", wrappers_not_ready);
    run("wake", wake);
    run("eof", eof);
    run("reset", reset);
    run("close", close_wakes);
    kernel();
    printf("kernel: ok\n");
    wrappers_ready(); /* from main, a kernel thread */
    wrappers_not_ready();
    printf("ready / not ready from main: ok\n");
    run("ping-pong", ping_pong);
    return 0;
}
