/*
 * t_io_kernel: the fd wrappers called from plain kernel threads, in a
 * program that starts no weft thread until its last section. Each call
 * blocks its kernel thread (in poll) instead of parking.
 *
 *   main alone     main, before any weft thread exists: reads and writes
 *                  with data ready, -ETIMEDOUT for 0, a past time and a
 *                  deadline 20 ms away (not before it), accept and connect
 *                  through weft_tcp_listen/weft_tcp_connect, fdwait;
 *                  weft_write and weft_writev to a socket whose peer is
 *                  gone give -EPIPE without raising SIGPIPE
 *   pthreads       a pthread blocked in weft_read is woken by another
 *                  pthread's weft_write; a blocked weft_accept by another
 *                  pthread's weft_tcp_connect; a writer blocked on a full
 *                  socket by a pthread draining it; four pthreads ping-pong
 *                  bytes through two socket pairs
 *   close          a pthread blocked in weft_read wakes with -EBADF when
 *                  another pthread weft_closes the fd
 *   mixed          only now the runtime starts: a weft thread and a
 *                  pthread wait on two ends of one pair and wake each other
 */
#include "iotest.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/uio.h>

static void main_alone(void)
{
    CHECK_EQ(weft_self(), 0);
    int sv[2];
    io_unix_pair(sv);
    char buf[16];
    CHECK_EQ(weft_write(sv[0], "abc", 3, 0), 3);
    CHECK_EQ(weft_read(sv[1], buf, sizeof buf, WEFT_FOREVER), 3);
    int64_t past = weft_now() - WEFT_SEC(1), d = weft_after(WEFT_MS(20));
    io_expect_timeout("read", weft_read(sv[1], buf, sizeof buf, 0), 0);
    io_expect_timeout("recv", weft_recv(sv[1], buf, sizeof buf, 0, past), past);
    io_expect_timeout("read", weft_read(sv[1], buf, sizeof buf, d), d);
    io_expect_timeout("fdwait", weft_fdwait(sv[1], WEFT_IN, 0), 0);
    CHECK_ERR(weft_fdwait(sv[0], WEFT_OUT, WEFT_FOREVER), WEFT_OUT);
    CHECK(io_fill(sv[0]) > 0);
    d = weft_after(WEFT_MS(20));
    io_expect_timeout("write", weft_write(sv[0], "x", 1, d), d);
    CHECK(io_drain(sv[1]) > 0);

    int tp[2];
    io_tcp_pair(tp); /* listen, connect, accept, all from main */
    CHECK_EQ(weft_send(tp[0], "tcp", 3, 0, WEFT_FOREVER), 3);
    CHECK_EQ(weft_recv(tp[1], buf, sizeof buf, 0, WEFT_FOREVER), 3);
    CHECK_ERR(weft_close(tp[0]), 0);
    CHECK_EQ(weft_read(tp[1], buf, sizeof buf, WEFT_FOREVER), 0);
    CHECK_ERR(weft_close(tp[1]), 0);
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);

    /* Writing to a socket whose peer is gone: -EPIPE, and no SIGPIPE,
     * which main does not block and which would kill the process. */
    io_unix_pair(sv);
    CHECK_ERR(weft_close(sv[1]), 0);
    CHECK_ERR(weft_write(sv[0], "x", 1, WEFT_FOREVER), -EPIPE);
    struct iovec iov = {"y", 1};
    CHECK_ERR(weft_writev(sv[0], &iov, 1, 0), -EPIPE);
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_EQ(weft_self(), 0);
}

/* ---- pthreads ----------------------------------------------------------- */

static void *p_write_later(void *arg)
{
    int fd = (int)P2U(arg);
    usleep(5000);
    CHECK_EQ(weft_write(fd, "late", 4, WEFT_FOREVER), 4);
    return NULL;
}

static void *p_drain_later(void *arg)
{
    int fd = (int)P2U(arg);
    usleep(5000);
    CHECK(io_drain(fd) > 0);
    return NULL;
}

static void *p_connect_later(void *arg)
{
    int port = (int)P2U(arg);
    usleep(5000);
    int c = weft_tcp_connect("127.0.0.1", port, weft_after(WEFT_SEC(30)));
    CHECK(c >= 0);
    return U2P(c);
}

#define PP_ROUNDS 500

struct pp {
    int in, out;
};

static void *p_pong(void *arg)
{
    struct pp *p = arg;
    for (int i = 0; i < PP_ROUNDS; i++) {
        char c;
        CHECK_EQ(weft_read(p->in, &c, 1, WEFT_FOREVER), 1);
        CHECK_EQ(weft_write(p->out, &c, 1, WEFT_FOREVER), 1);
    }
    return NULL;
}

static void *p_ping(void *arg)
{
    struct pp *p = arg;
    for (int i = 0; i < PP_ROUNDS; i++) {
        char c = (char)i, d;
        CHECK_EQ(weft_write(p->out, &c, 1, WEFT_FOREVER), 1);
        CHECK_EQ(weft_read(p->in, &d, 1, weft_after(WEFT_SEC(30))), 1);
        CHECK_EQ(d, c);
    }
    return NULL;
}

static void *pthread_section(void *arg)
{
    (void)arg;
    pthread_t p;
    int sv[2];
    io_unix_pair(sv);
    char buf[8];
    CHECK_EQ(pthread_create(&p, NULL, p_write_later, U2P(sv[0])), 0);
    CHECK_EQ(weft_read(sv[1], buf, sizeof buf, WEFT_FOREVER), 4);
    CHECK_EQ(pthread_join(p, NULL), 0);

    CHECK(io_fill(sv[0]) > 0);
    CHECK_EQ(pthread_create(&p, NULL, p_drain_later, U2P(sv[1])), 0);
    CHECK(weft_write(sv[0], "more", 4, weft_after(WEFT_SEC(30))) > 0);
    CHECK_EQ(pthread_join(p, NULL), 0);
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);

    struct sockaddr_in a;
    socklen_t al;
    int l = io_tcp_listener(&a, &al, 4);
    CHECK_EQ(pthread_create(&p, NULL, p_connect_later, U2P(ntohs(a.sin_port))), 0);
    int s = weft_accept(l, NULL, NULL, 0, WEFT_FOREVER);
    CHECK(s >= 0);
    void *c;
    CHECK_EQ(pthread_join(p, &c), 0);
    CHECK_ERR(weft_close((int)P2U(c)), 0);
    CHECK_ERR(weft_close(s), 0);
    CHECK_ERR(weft_close(l), 0);

    /* Two ping-pong pairs, four pthreads. */
    int x[2], y[2], u[2], v[2];
    io_unix_pair(x);
    io_unix_pair(y);
    io_unix_pair(u);
    io_unix_pair(v);
    struct pp pp[4] = {{x[0], y[0]}, {y[1], x[1]}, {u[0], v[0]}, {v[1], u[1]}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, i % 2 ? p_ping : p_pong, &pp[i]), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    int all[] = {x[0], x[1], y[0], y[1], u[0], u[1], v[0], v[1]};
    for (int i = 0; i < 8; i++)
        CHECK_ERR(weft_close(all[i]), 0);
    return NULL;
}

/* ---- close -------------------------------------------------------------- */

static atomic_int reader_started;

static void *p_blocked_read(void *arg)
{
    char buf[8];
    atomic_store(&reader_started, 1);
    return U2P(weft_read((int)P2U(arg), buf, sizeof buf, WEFT_FOREVER));
}

static void close_wakes(void)
{
    int sv[2];
    io_unix_pair(sv);
    pthread_t p;
    CHECK_EQ(pthread_create(&p, NULL, p_blocked_read, U2P(sv[1])), 0);
    while (!atomic_load(&reader_started))
        usleep(1000);
    usleep(10000);
    CHECK_ERR(weft_close(sv[1]), 0);
    void *r;
    CHECK_EQ(pthread_join(p, &r), 0);
    CHECK_EQ((intptr_t)r, -EBADF);
    CHECK_ERR(weft_close(sv[0]), 0);
}

/* ---- mixed -------------------------------------------------------------- */

static void *w_pong(void *arg)
{
    return p_pong(arg);
}

static void mixed(void)
{
    int x[2], y[2];
    io_unix_pair(x);
    io_unix_pair(y);
    struct pp pong = {x[0], y[0]}, ping = {y[1], x[1]};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, w_pong, &pong, NULL), 0);
    pthread_t p;
    CHECK_EQ(pthread_create(&p, NULL, p_ping, &ping), 0);
    CHECK_EQ(pthread_join(p, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    int all[] = {x[0], x[1], y[0], y[1]};
    for (int i = 0; i < 4; i++)
        CHECK_ERR(weft_close(all[i]), 0);
}

int main(void)
{
    main_alone();
    printf("main alone: ok\n");
    pthread_t p;
    CHECK_EQ(pthread_create(&p, NULL, pthread_section, NULL), 0);
    CHECK_EQ(pthread_join(p, NULL), 0);
    printf("pthreads: ok\n");
    close_wakes();
    printf("close: ok\n");
    mixed();
    printf("mixed: ok\n");
    return 0;
}
