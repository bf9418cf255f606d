/*
 * t_io_tcp: TCP connections through weft: the helpers, accept and connect
 * deadlines, and how a connection's end shows.
 *
 *   helpers        weft_tcp_listen/weft_tcp_connect on 127.0.0.1, on ::1
 *                  (where the machine has IPv6), on every address (host
 *                  NULL: reachable over IPv4 and IPv6), and by the name
 *                  "localhost" (looked up on another kernel thread); the
 *                  connection carries data both ways
 *   accept timeout a listener nobody connects to: -ETIMEDOUT for 0, a past
 *                  time and a deadline 20 ms away (not before it)
 *   connect timeout
 *                  a listener with backlog 0 whose accept queue is full:
 *                  Linux drops the SYNs of further connects (the queue
 *                  holds backlog + 1 connections) and the client resends
 *                  its SYN only after 1 s, so a connect with a shorter
 *                  deadline times out, reliably, on loopback; 0 and a past
 *                  deadline time out without waiting; once the server
 *                  accepts, a new connect succeeds
 *   unix backlog   the same on an AF_UNIX listener, where the kernel says
 *                  EAGAIN instead: weft_connect retries until its
 *                  deadline (-ETIMEDOUT), and connects once a thread
 *                  accepts
 *   eof            the peer's close: read, recv, readv and recvmsg give 0,
 *                  also to a reader parked before it; fdwait(IN) is ready;
 *                  writing on gives -EPIPE (or -ECONNRESET), no SIGPIPE;
 *                  after shutdown(SHUT_WR) the other direction still works
 *   reset          a peer closing with SO_LINGER {1, 0} sends a reset: a
 *                  reader (parked or not) gets -ECONNRESET, then 0; a
 *                  writer gets -EPIPE or -ECONNRESET
 */
#include "iotest.h"

#include <arpa/inet.h>
#include <sys/un.h>

/* ---- helpers ----------------------------------------------------------- */

static void exchange(int a, int b)
{
    char buf[8];
    CHECK_EQ(weft_write(a, "ping", 4, WEFT_FOREVER), 4);
    CHECK_EQ(weft_read(b, buf, sizeof buf, weft_after(WEFT_SEC(30))), 4);
    CHECK_EQ(weft_write(b, "pong", 4, WEFT_FOREVER), 4);
    CHECK_EQ(weft_read(a, buf, sizeof buf, weft_after(WEFT_SEC(30))), 4);
    CHECK(memcmp(buf, "pong", 4) == 0);
}

static int port_of(int l)
{
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &al), 0);
    return a.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&a)->sin_port)
                                  : ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
}

static bool have_ipv6(void)
{
    int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
    bool ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

/* Listens on listen_host, connects to connect_host, checks a round trip. */
static void listen_connect(const char *listen_host, const char *connect_host)
{
    int l = weft_tcp_listen(listen_host, 0, 8);
    if (l < 0)
        check_failed("tcp_listen(%s) returned %d (%s)\n", listen_host ? listen_host : "NULL", l,
                     check_errname(l));
    int c = weft_tcp_connect(connect_host, port_of(l), weft_after(WEFT_SEC(30)));
    if (c < 0)
        check_failed("tcp_connect(%s) returned %d (%s)\n", connect_host, c, check_errname(c));
    int s = weft_accept(l, NULL, NULL, SOCK_CLOEXEC, weft_after(WEFT_SEC(30)));
    CHECK(s >= 0);
    int nd = 0;
    socklen_t nl = sizeof nd;
    CHECK_EQ(getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &nd, &nl), 0);
    CHECK(nd != 0);
    exchange(c, s);
    CHECK_ERR(weft_close(c), 0);
    CHECK_ERR(weft_close(s), 0);
    CHECK_ERR(weft_close(l), 0);
}

static void helpers(void)
{
    listen_connect("127.0.0.1", "127.0.0.1");
    listen_connect("localhost", "localhost");
    listen_connect(NULL, "127.0.0.1");
    listen_connect("", NULL);
    if (have_ipv6()) {
        listen_connect("::1", "::1");
        listen_connect(NULL, "::1");
    } else {
        printf("helpers: no IPv6 loopback here, ::1 cases left out\n");
    }
}

/* ---- accept timeout ---------------------------------------------------- */

static void accept_timeout(void)
{
    struct sockaddr_in a;
    socklen_t al;
    int l = io_tcp_listener(&a, &al, 4);
    int64_t past = weft_now() - WEFT_MS(1), d = weft_after(WEFT_MS(20));
    io_expect_timeout("accept", weft_accept(l, NULL, NULL, 0, 0), 0);
    io_expect_timeout("accept", weft_accept(l, NULL, NULL, 0, past), past);
    io_expect_timeout("accept", weft_accept(l, NULL, NULL, 0, d), d);
    CHECK_ERR(weft_close(l), 0);
}

/* ---- connect timeout --------------------------------------------------- */

static void connect_timeout(void)
{
    struct sockaddr_in a;
    socklen_t al;
    int made[2], nmade;
    /* Fill the queue: the first connect (backlog + 1) completes, the
     * next times out. */
    int l = io_full_tcp_listener(&a, &al, made, &nmade);
    int port = ntohs(a.sin_port);

    /* Still full: a deadline passing, one of 0 and one in the past. */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    int64_t d = weft_after(WEFT_MS(50));
    io_expect_timeout("connect", weft_connect(c, (struct sockaddr *)&a, al, d), d);
    CHECK_ERR(weft_close(c), 0);
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    io_expect_timeout("connect", weft_connect(c, (struct sockaddr *)&a, al, 0), 0);
    CHECK_ERR(weft_close(c), 0);
    io_expect_timeout("tcp_connect", weft_tcp_connect("127.0.0.1", port, weft_now() - 1), 0);

    /* Room again once the server accepts. */
    int s = weft_accept(l, NULL, NULL, 0, WEFT_FOREVER);
    CHECK(s >= 0);
    c = weft_tcp_connect("127.0.0.1", port, WEFT_FOREVER);
    CHECK(c >= 0);
    CHECK_ERR(weft_close(c), 0);
    CHECK_ERR(weft_close(s), 0);
    for (int i = 0; i < nmade; i++)
        CHECK_ERR(weft_close(made[i]), 0);
    CHECK_ERR(weft_close(l), 0);
}

/* ---- unix backlog ------------------------------------------------------ */

static void *late_accept(void *arg)
{
    int l = (int)P2U(arg);
    CHECK_ERR(weft_sleep(weft_after(WEFT_MS(20))), 0);
    int s = weft_accept(l, NULL, NULL, 0, WEFT_FOREVER);
    CHECK(s >= 0);
    return U2P(s);
}

static void unix_backlog(void)
{
    struct sockaddr_un a;
    socklen_t al;
    int made[2], n;
    int l = io_full_unix_listener(&a, &al, made, &n);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    int64_t d = weft_after(WEFT_MS(30));
    io_expect_timeout("connect (unix, full)", weft_connect(c, (struct sockaddr *)&a, al, d), d);
    /* A connect that outlasts the full queue: a thread accepts later. */
    weft_t t;
    CHECK_ERR(weft_spawn(&t, late_accept, U2P(l), NULL), 0);
    CHECK_ERR(weft_connect(c, (struct sockaddr *)&a, al, weft_after(WEFT_SEC(30))), 0);
    void *s;
    CHECK_ERR(weft_join(t, &s, WEFT_FOREVER), 0);
    CHECK_ERR(weft_close((int)P2U(s)), 0);
    CHECK_ERR(weft_close(c), 0);
    for (int i = 0; i < n; i++)
        CHECK_ERR(weft_close(made[i]), 0);
    CHECK_ERR(weft_close(l), 0);
}

/* ---- eof and reset ----------------------------------------------------- */

struct ender {
    int fd;
    int how; /* 0: close; 1: reset (SO_LINGER 0); 2: shutdown(SHUT_WR) */
};

static void end(int fd, int how)
{
    if (how == 1) {
        struct linger lg = {1, 0};
        CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    }
    if (how == 2)
        CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    else
        CHECK_ERR(weft_close(fd), 0);
}

static void *late_end(void *arg)
{
    struct ender *e = arg;
    CHECK_ERR(weft_sleep(weft_after(WEFT_MS(10))), 0);
    end(e->fd, e->how);
    return NULL;
}

/* Writes until the connection's end shows; returns that error. */
static ssize_t write_until_error(int fd)
{
    static char junk[4096];
    for (int i = 0; i < 100000; i++) {
        ssize_t n = weft_write(fd, junk, sizeof junk, weft_after(WEFT_SEC(30)));
        if (n < 0)
            return n;
        weft_yield(); /* let the peer's reset arrive */
    }
    check_failed("writes to a closed connection kept succeeding\n");
}

static void eof(void)
{
    for (int kind = 0; kind < 4; kind++) {
        int sv[2];
        io_tcp_pair(sv);
        CHECK_ERR(weft_close(sv[1]), 0);
        char buf[8];
        struct iovec iov = {buf, sizeof buf};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = kind == 0 ? weft_read(sv[0], buf, sizeof buf, WEFT_FOREVER)
                    : kind == 1 ? weft_recv(sv[0], buf, sizeof buf, 0, WEFT_FOREVER)
                    : kind == 2 ? weft_readv(sv[0], &iov, 1, WEFT_FOREVER)
                                : weft_recvmsg(sv[0], &mh, 0, WEFT_FOREVER);
        CHECK_EQ(n, 0);
        CHECK_EQ(weft_read(sv[0], buf, sizeof buf, 0), 0); /* and it stays */
        CHECK_ERR(weft_fdwait(sv[0], WEFT_IN, 0), WEFT_IN);
        CHECK_ERR2(write_until_error(sv[0]), -EPIPE, -ECONNRESET);
        CHECK_ERR(weft_close(sv[0]), 0);
    }
    /* A reader parked before the peer closes. */
    int sv[2];
    io_tcp_pair(sv);
    struct ender e = {sv[1], 0};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, late_end, &e, NULL), 0);
    char buf[8];
    CHECK_EQ(weft_read(sv[0], buf, sizeof buf, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_close(sv[0]), 0);

    /* Half close: the other direction carries on. */
    io_tcp_pair(sv);
    e = (struct ender){sv[1], 2};
    CHECK_ERR(weft_spawn(&t, late_end, &e, NULL), 0);
    CHECK_EQ(weft_read(sv[0], buf, sizeof buf, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_EQ(weft_write(sv[0], "still", 5, WEFT_FOREVER), 5);
    CHECK_EQ(weft_read(sv[1], buf, sizeof buf, WEFT_FOREVER), 5);
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);
}

static void reset(void)
{
    for (int parked = 0; parked < 2; parked++) {
        int sv[2];
        io_tcp_pair(sv);
        char buf[8];
        if (parked) {
            struct ender e = {sv[1], 1};
            weft_t t;
            CHECK_ERR(weft_spawn(&t, late_end, &e, NULL), 0);
            CHECK_ERR(weft_read(sv[0], buf, sizeof buf, weft_after(WEFT_SEC(30))), -ECONNRESET);
            CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
        } else {
            end(sv[1], 1);
            CHECK_ERR(weft_recv(sv[0], buf, sizeof buf, 0, weft_after(WEFT_SEC(30))),
                      -ECONNRESET);
        }
        CHECK_EQ(weft_read(sv[0], buf, sizeof buf, 0), 0); /* reported once */
        CHECK_ERR2(weft_write(sv[0], "x", 1, 0), -EPIPE, -ECONNRESET);
        CHECK_ERR(weft_close(sv[0]), 0);
    }
    /* A writer learns of the reset too. */
    int sv[2];
    io_tcp_pair(sv);
    end(sv[1], 1);
    CHECK_ERR2(write_until_error(sv[0]), -EPIPE, -ECONNRESET);
    CHECK_ERR(weft_close(sv[0]), 0);
}

int main(void)
{
    struct {
        const char *name;
        void (*fn)(void);
    } sections[] = {
        {"helpers", helpers},           {"accept timeout", accept_timeout},
        {"connect timeout", connect_timeout}, {"unix backlog", unix_backlog},
        {"eof", eof},                   {"reset", reset},
    };
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
        io_in_weft(sections[i].fn);
        printf("%s: ok\n", sections[i].name);
    }
    return 0;
}
