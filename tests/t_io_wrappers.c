/*
 * t_io_wrappers: every fd wrapper, with and without data (or room) ready,
 * with deadlines passing, woken by another thread. Each section runs
 * twice: in a weft thread (parks) and in main, a plain kernel thread
 * (blocks in the kernel).
 *
 *   in ready        read, recv, readv, recvfrom, recvmsg, fdwait(IN): data
 *                   already there is returned whatever the deadline (0, a
 *                   past time, the future, WEFT_FOREVER)
 *   in not ready    the same on an empty socket: -ETIMEDOUT for 0 and a
 *                   past time (one try), and for a deadline 20 ms away, not
 *                   before it
 *   in wake         each reader parked on an empty socket returns the data
 *                   a weft thread writes 5 ms later (with a deadline and
 *                   WEFT_FOREVER)
 *   out ready       write, send, writev, sendto, sendmsg, fdwait(OUT) with
 *                   room in the socket: the whole buffer, whatever the
 *                   deadline
 *   out not ready   the same on a full socket: -ETIMEDOUT as above
 *   out wake        each writer parked on a full socket completes once a
 *                   weft thread drains the peer 5 ms later
 *   datagram        sendto/recvfrom/sendmsg/recvmsg on UDP with addresses;
 *                   recvfrom times out and is woken like the stream ones
 *   accept          a pending connection is returned at once; none:
 *                   -ETIMEDOUT; a parked accept is woken by a connect
 *   connect         to a listener: 0; to a closed port: -ECONNREFUSED
 *   fdwait sets     WEFT_OUT alone on an empty socket, WEFT_IN|WEFT_OUT
 *                   once data is there, and the peer's close makes IN ready
 */
#include "iotest.h"

#include <arpa/inet.h>
#include <sys/uio.h>

enum { R_READ, R_RECV, R_READV, R_RECVFROM, R_RECVMSG, R_FDWAIT, R_KINDS };
static const char *rname[R_KINDS] = {"read", "recv", "readv", "recvfrom", "recvmsg", "fdwait(IN)"};

enum { W_WRITE, W_SEND, W_WRITEV, W_SENDTO, W_SENDMSG, W_FDWAIT, W_KINDS };
static const char *wname[W_KINDS] = {"write", "send", "writev", "sendto", "sendmsg", "fdwait(OUT)"};

/* One reading call of the given kind into buf; fdwait reports WEFT_IN as
 * 1 "byte" so every kind reads as a count. */
static ssize_t call_in(int kind, int fd, char *buf, size_t len, int64_t deadline)
{
    struct iovec iov[2] = {{buf, 1}, {buf + 1, len - 1}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    switch (kind) {
    case R_READ:
        return weft_read(fd, buf, len, deadline);
    case R_RECV:
        return weft_recv(fd, buf, len, 0, deadline);
    case R_READV:
        return weft_readv(fd, iov, 2, deadline);
    case R_RECVFROM:
        return weft_recvfrom(fd, buf, len, 0, NULL, NULL, deadline);
    case R_RECVMSG:
        return weft_recvmsg(fd, &mh, 0, deadline);
    default: {
        int r = weft_fdwait(fd, WEFT_IN, deadline);
        return r == WEFT_IN ? 1 : r;
    }
    }
}

static ssize_t call_out(int kind, int fd, const char *buf, size_t len, int64_t deadline)
{
    struct iovec iov[2] = {{(void *)buf, 1}, {(void *)(buf + 1), len - 1}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    switch (kind) {
    case W_WRITE:
        return weft_write(fd, buf, len, deadline);
    case W_SEND:
        return weft_send(fd, buf, len, 0, deadline);
    case W_WRITEV:
        return weft_writev(fd, iov, 2, deadline);
    case W_SENDTO:
        return weft_sendto(fd, buf, len, 0, NULL, 0, deadline);
    case W_SENDMSG:
        return weft_sendmsg(fd, &mh, 0, deadline);
    default: {
        int r = weft_fdwait(fd, WEFT_OUT, deadline);
        return r == WEFT_OUT ? (ssize_t)len : r;
    }
    }
}

/* The deadlines a call with something ready must succeed under. */
static int64_t ready_deadline(int i)
{
    switch (i) {
    case 0: return 0;
    case 1: return weft_now() - WEFT_SEC(1);
    case 2: return weft_after(WEFT_SEC(30));
    default: return WEFT_FOREVER;
    }
}

/* ---- reading ----------------------------------------------------------- */

static void in_ready(void)
{
    int sv[2];
    io_unix_pair(sv);
    for (int k = 0; k < R_KINDS; k++) {
        for (int d = 0; d < 4; d++) {
            CHECK_EQ(write(sv[0], "abcd", 4), 4);
            char buf[16] = {0};
            ssize_t n = call_in(k, sv[1], buf, sizeof buf, ready_deadline(d));
            if (k == R_FDWAIT) {
                CHECK_EQ(n, 1);
                CHECK_EQ(read(sv[1], buf, sizeof buf), 4);
            } else {
                if (n != 4)
                    check_failed("%s with data ready returned %zd\n", rname[k], n);
            }
            CHECK(memcmp(buf, "abcd", 4) == 0);
        }
    }
    /* Less than asked for: POSIX's short count, no waiting for more. */
    CHECK_EQ(write(sv[0], "xy", 2), 2);
    char big[4096];
    CHECK_EQ(weft_read(sv[1], big, sizeof big, WEFT_FOREVER), 2);
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);
}

static void in_not_ready(void)
{
    int sv[2];
    io_unix_pair(sv);
    for (int k = 0; k < R_KINDS; k++) {
        char buf[16];
        int64_t past = weft_now() - WEFT_SEC(1);
        io_expect_timeout(rname[k], call_in(k, sv[1], buf, sizeof buf, 0), 0);
        io_expect_timeout(rname[k], call_in(k, sv[1], buf, sizeof buf, past), past);
        int64_t d = weft_after(WEFT_MS(20));
        io_expect_timeout(rname[k], call_in(k, sv[1], buf, sizeof buf, d), d);
    }
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);
}

struct later {
    int fd;
    int what; /* 0: write "wxyz"; 1: drain everything */
};

static void *later_main(void *arg)
{
    struct later *l = arg;
    CHECK_ERR(weft_sleep(weft_after(WEFT_MS(5))), 0);
    if (l->what == 0)
        CHECK_EQ(weft_write(l->fd, "wxyz", 4, WEFT_FOREVER), 4);
    else
        CHECK(io_drain(l->fd) > 0);
    return NULL;
}

static void in_wake(void)
{
    for (int k = 0; k < R_KINDS; k++) {
        for (int forever = 0; forever < 2; forever++) {
            int sv[2];
            io_unix_pair(sv);
            struct later l = {sv[0], 0};
            weft_t t;
            CHECK_ERR(weft_spawn(&t, later_main, &l, NULL), 0);
            char buf[16] = {0};
            ssize_t n = call_in(k, sv[1], buf, sizeof buf,
                                forever ? WEFT_FOREVER : weft_after(WEFT_SEC(30)));
            if (n != (k == R_FDWAIT ? 1 : 4))
                check_failed("%s woken by a write returned %zd\n", rname[k], n);
            if (k != R_FDWAIT)
                CHECK(memcmp(buf, "wxyz", 4) == 0);
            CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
            CHECK_ERR(weft_close(sv[0]), 0);
            CHECK_ERR(weft_close(sv[1]), 0);
        }
    }
}

/* ---- writing ----------------------------------------------------------- */

static void out_ready(void)
{
    int sv[2];
    io_unix_pair(sv);
    for (int k = 0; k < W_KINDS; k++) {
        for (int d = 0; d < 4; d++) {
            ssize_t n = call_out(k, sv[0], "0123", 4, ready_deadline(d));
            if (n != 4)
                check_failed("%s with room returned %zd\n", wname[k], n);
            if (k != W_FDWAIT) {
                char buf[8];
                CHECK_EQ(read(sv[1], buf, sizeof buf), 4);
                CHECK(memcmp(buf, "0123", 4) == 0);
            }
        }
    }
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);
}

static void out_not_ready(void)
{
    int sv[2];
    io_unix_pair(sv);
    CHECK(io_fill(sv[0]) > 0);
    for (int k = 0; k < W_KINDS; k++) {
        int64_t past = weft_now() - WEFT_SEC(1);
        io_expect_timeout(wname[k], call_out(k, sv[0], "0123", 4, 0), 0);
        io_expect_timeout(wname[k], call_out(k, sv[0], "0123", 4, past), past);
        int64_t d = weft_after(WEFT_MS(20));
        io_expect_timeout(wname[k], call_out(k, sv[0], "0123", 4, d), d);
    }
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);
}

static void out_wake(void)
{
    for (int k = 0; k < W_KINDS; k++) {
        int sv[2];
        io_unix_pair(sv);
        CHECK(io_fill(sv[0]) > 0);
        struct later l = {sv[1], 1};
        weft_t t;
        CHECK_ERR(weft_spawn(&t, later_main, &l, NULL), 0);
        ssize_t n = call_out(k, sv[0], "0123", 4, k & 1 ? WEFT_FOREVER : weft_after(WEFT_SEC(30)));
        if (n <= 0)
            check_failed("%s woken by a drain returned %zd\n", wname[k], n);
        CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
        CHECK_ERR(weft_close(sv[0]), 0);
        CHECK_ERR(weft_close(sv[1]), 0);
    }
}

/* ---- datagrams --------------------------------------------------------- */

static int udp_socket(struct sockaddr_in *a)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    a->sin_family = AF_INET;
    a->sin_port = 0;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(s, (struct sockaddr *)a, sizeof *a), 0);
    socklen_t l = sizeof *a;
    CHECK_EQ(getsockname(s, (struct sockaddr *)a, &l), 0);
    return s;
}

struct udp_later {
    int fd;
    struct sockaddr_in to;
};

static void *udp_later_main(void *arg)
{
    struct udp_later *u = arg;
    CHECK_ERR(weft_sleep(weft_after(WEFT_MS(5))), 0);
    CHECK_EQ(weft_sendto(u->fd, "late", 4, 0, (struct sockaddr *)&u->to, sizeof u->to,
                         WEFT_FOREVER),
             4);
    return NULL;
}

static void datagram(void)
{
    struct sockaddr_in a, b, from;
    int sa = udp_socket(&a), sb = udp_socket(&b);
    char buf[32];
    socklen_t fl = sizeof from;

    CHECK_EQ(weft_sendto(sa, "hello", 5, 0, (struct sockaddr *)&b, sizeof b, 0), 5);
    CHECK_EQ(weft_recvfrom(sb, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl, 0), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(fl, sizeof from);
    CHECK_EQ(from.sin_port, a.sin_port);

    struct iovec iov = {"msg", 3};
    struct msghdr mh = {.msg_name = &b, .msg_namelen = sizeof b, .msg_iov = &iov, .msg_iovlen = 1};
    CHECK_EQ(weft_sendmsg(sa, &mh, 0, weft_after(WEFT_SEC(30))), 3);
    struct iovec riov = {buf, sizeof buf};
    struct msghdr rmh = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &riov,
                         .msg_iovlen = 1};
    CHECK_EQ(weft_recvmsg(sb, &rmh, 0, weft_after(WEFT_SEC(30))), 3);
    CHECK_EQ(from.sin_port, a.sin_port);

    int64_t d = weft_after(WEFT_MS(20));
    io_expect_timeout("recvfrom (udp)", weft_recvfrom(sb, buf, sizeof buf, 0, NULL, NULL, d), d);
    io_expect_timeout("recvmsg (udp)", weft_recvmsg(sb, &rmh, 0, 0), 0);

    struct udp_later u = {sa, b};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, udp_later_main, &u, NULL), 0);
    fl = sizeof from;
    CHECK_EQ(weft_recvfrom(sb, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl, WEFT_FOREVER),
             4);
    CHECK(memcmp(buf, "late", 4) == 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_close(sa), 0);
    CHECK_ERR(weft_close(sb), 0);
}

/* ---- accept and connect ------------------------------------------------ */

static void *late_connect(void *arg)
{
    struct sockaddr_in *a = arg;
    CHECK_ERR(weft_sleep(weft_after(WEFT_MS(5))), 0);
    int c = weft_tcp_connect("127.0.0.1", ntohs(a->sin_port), weft_after(WEFT_SEC(30)));
    CHECK(c >= 0);
    return U2P(c);
}

static void accept_connect(void)
{
    struct sockaddr_in a;
    socklen_t al;
    int l = io_tcp_listener(&a, &al, 16);

    /* Ready: a connection is pending, for every kind of deadline. */
    for (int d = 0; d < 4; d++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(c >= 0);
        CHECK_ERR(weft_connect(c, (struct sockaddr *)&a, al, weft_after(WEFT_SEC(30))), 0);
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        int s;
        /* The handshake has completed on the client's side; the server's
         * side may lag by a moment, so the tries-once deadlines retry. */
        do
            s = weft_accept(l, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC, ready_deadline(d));
        while (s == -ETIMEDOUT && d < 2);
        CHECK(s >= 0);
        CHECK_EQ(pl, sizeof peer);
        CHECK_EQ(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
        CHECK_EQ(weft_write(c, "k", 1, 0), 1);
        char ch;
        CHECK_EQ(weft_read(s, &ch, 1, WEFT_FOREVER), 1);
        CHECK_ERR(weft_close(s), 0);
        CHECK_ERR(weft_close(c), 0);
    }

    /* Not ready: nobody connects. */
    int64_t past = weft_now() - WEFT_SEC(1), d = weft_after(WEFT_MS(20));
    io_expect_timeout("accept", weft_accept(l, NULL, NULL, 0, 0), 0);
    io_expect_timeout("accept", weft_accept(l, NULL, NULL, 0, past), past);
    io_expect_timeout("accept", weft_accept(l, NULL, NULL, 0, d), d);

    /* Woken by a connect made later, with a deadline and without. */
    for (int forever = 0; forever < 2; forever++) {
        weft_t t;
        CHECK_ERR(weft_spawn(&t, late_connect, &a, NULL), 0);
        int s = weft_accept(l, NULL, NULL, 0, forever ? WEFT_FOREVER : weft_after(WEFT_SEC(30)));
        CHECK(s >= 0);
        void *c;
        CHECK_ERR(weft_join(t, &c, WEFT_FOREVER), 0);
        CHECK_ERR(weft_close((int)P2U(c)), 0);
        CHECK_ERR(weft_close(s), 0);
    }
    CHECK_ERR(weft_close(l), 0);

    /* Nobody listens any more: refused, at once or after the wait. */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    CHECK_ERR(weft_connect(c, (struct sockaddr *)&a, al, weft_after(WEFT_SEC(30))),
              -ECONNREFUSED);
    CHECK_ERR(weft_close(c), 0);
}

/* ---- fdwait's ready sets ----------------------------------------------- */

static void fdwait_sets(void)
{
    int sv[2];
    io_unix_pair(sv);
    CHECK_ERR(weft_fdwait(sv[1], WEFT_OUT, 0), WEFT_OUT);
    CHECK_ERR(weft_fdwait(sv[1], WEFT_IN | WEFT_OUT, 0), WEFT_OUT);
    CHECK_EQ(write(sv[0], "d", 1), 1);
    CHECK_ERR(weft_fdwait(sv[1], WEFT_IN | WEFT_OUT, 0), WEFT_IN | WEFT_OUT);
    CHECK_ERR(weft_fdwait(sv[1], WEFT_IN, 0), WEFT_IN);
    char c;
    CHECK_EQ(read(sv[1], &c, 1), 1);
    CHECK_ERR(weft_fdwait(sv[1], WEFT_IN, 0), -ETIMEDOUT);
    CHECK_ERR(weft_close(sv[0]), 0); /* end of file counts as readable */
    CHECK_ERR(weft_fdwait(sv[1], WEFT_IN, WEFT_FOREVER), WEFT_IN);
    CHECK_ERR(weft_close(sv[1]), 0);
}

static void all(const char *where)
{
    struct {
        const char *name;
        void (*fn)(void);
    } sections[] = {
        {"in ready", in_ready},       {"in not ready", in_not_ready},
        {"in wake", in_wake},         {"out ready", out_ready},
        {"out not ready", out_not_ready}, {"out wake", out_wake},
        {"datagram", datagram},       {"accept/connect", accept_connect},
        {"fdwait sets", fdwait_sets},
    };
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
        if (where[0] == 'w')
            io_in_weft(sections[i].fn);
        else
            sections[i].fn();
        printf("%s (%s): ok\n", sections[i].name, where);
    }
}

int main(void)
{
    all("weft thread");
    all("main");
    return 0;
}
