/*
 * t_stop_files: WEFT_STOP_FILES and fds exempt from stops.
 *
 *   plain       stopped without WEFT_STOP_FILES: buffered data is read and
 *               room is written, a call that would wait gives -ECANCELED
 *   files       with WEFT_STOP_FILES every fd call fails at once, data or
 *               not (reads, writes, fdwait, accept, connect, the TCP
 *               helpers), but weft_close works; a stop without it can be
 *               followed by one with it
 *   exempt      an exempt fd works for a stopped thread in every case: it
 *               reads and writes with WEFT_STOP_FILES, and a read blocked
 *               on it is not woken by the stop but by its data
 *   marks       weft_fd_exempt's errors; the mark is cleared by
 *               weft_close, so the next file with that number is not
 *               exempt; clearing the mark by hand
 */
#include "iotest.h"

#define FAR (weft_after(WEFT_SEC(60)))

static char buf[256];

static void *plain_main(void *arg)
{
    int *sv = arg;
    CHECK_ERR(weft_stop(weft_self(), 0), 0);
    CHECK_EQ(write(sv[1], "hello", 5), 5);
    CHECK_EQ(weft_read(sv[0], buf, sizeof buf, WEFT_FOREVER), 5);
    CHECK_ERR(weft_read(sv[0], buf, sizeof buf, WEFT_FOREVER), -ECANCELED);
    CHECK_EQ(weft_write(sv[0], "x", 1, WEFT_FOREVER), 1);
    CHECK_ERR(weft_fdwait(sv[0], WEFT_OUT, FAR), WEFT_OUT);
    CHECK_ERR(weft_fdwait(sv[0], WEFT_IN, FAR), -ECANCELED);
    return NULL;
}

static void plain(void)
{
    int sv[2];
    io_unix_pair(sv);
    weft_t t;
    CHECK_ERR(weft_spawn(&t, plain_main, sv, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_EQ(weft_read(sv[1], buf, sizeof buf, 0), 1);
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);
    printf("plain: a stopped thread reads what is there and writes where there is room\n");
}

struct files_args {
    int sv[2];
    int lfd;
    int port;
};

static void *files_main(void *arg)
{
    struct files_args *a = arg;
    /* A stop without FILES first, then FILES added. */
    CHECK_ERR(weft_stop(weft_self(), 0), 0);
    CHECK_EQ(weft_read(a->sv[0], buf, 1, 0), 1); /* data: still read */
    CHECK_ERR(weft_stop(weft_self(), WEFT_STOP_FILES), 0);
    CHECK_EQ(weft_stopping(), 1);
    struct iovec v = {buf, 1};
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    CHECK_ERR(weft_read(a->sv[0], buf, 1, 0), -ECANCELED); /* data, but FILES */
    CHECK_ERR(weft_readv(a->sv[0], &v, 1, 0), -ECANCELED);
    CHECK_ERR(weft_recv(a->sv[0], buf, 1, 0, 0), -ECANCELED);
    CHECK_ERR(weft_recvfrom(a->sv[0], buf, 1, 0, NULL, NULL, 0), -ECANCELED);
    CHECK_ERR(weft_recvmsg(a->sv[0], &m, 0, 0), -ECANCELED);
    CHECK_ERR(weft_write(a->sv[0], "x", 1, 0), -ECANCELED); /* room, but FILES */
    CHECK_ERR(weft_writev(a->sv[0], &v, 1, 0), -ECANCELED);
    CHECK_ERR(weft_send(a->sv[0], "x", 1, 0, 0), -ECANCELED);
    CHECK_ERR(weft_sendto(a->sv[0], "x", 1, 0, NULL, 0, 0), -ECANCELED);
    CHECK_ERR(weft_sendmsg(a->sv[0], &m, 0, 0), -ECANCELED);
    CHECK_ERR(weft_fdwait(a->sv[0], WEFT_OUT, 0), -ECANCELED);
    CHECK_ERR(weft_accept(a->lfd, NULL, NULL, 0, 0), -ECANCELED); /* one is pending */
    CHECK_ERR(weft_tcp_connect("127.0.0.1", a->port, FAR), -ECANCELED);
    CHECK_ERR(weft_tcp_listen("127.0.0.1", 0, 4), -ECANCELED);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_ERR(weft_connect(s, (struct sockaddr *)&sa, sizeof sa, FAR), -ECANCELED);
    CHECK_ERR(weft_close(s), 0);
    /* Close is never refused. */
    CHECK_ERR(weft_close(a->sv[0]), 0);
    return NULL;
}

static void files(void)
{
    struct files_args a;
    io_unix_pair(a.sv);
    struct sockaddr_in la;
    socklen_t ll;
    a.lfd = io_tcp_listener(&la, &ll, 4);
    a.port = ntohs(la.sin_port);
    int c = weft_tcp_connect("127.0.0.1", a.port, FAR); /* pending at the listener */
    CHECK(c >= 0);
    CHECK_EQ(write(a.sv[1], "ab", 2), 2);
    weft_t t;
    CHECK_ERR(weft_spawn(&t, files_main, &a, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    /* The thread closed sv[0] (with a byte unread in it): its peer sees
     * the end, as a reset. */
    CHECK_ERR2(weft_read(a.sv[1], buf, sizeof buf, FAR), 0, -ECONNRESET);
    int s = weft_accept(a.lfd, NULL, NULL, 0, FAR); /* main is not stopped */
    CHECK(s >= 0);
    CHECK_ERR(weft_close(s), 0);
    CHECK_ERR(weft_close(c), 0);
    CHECK_ERR(weft_close(a.sv[1]), 0);
    CHECK_ERR(weft_close(a.lfd), 0);
    printf("files: WEFT_STOP_FILES fails every fd call but weft_close\n");
}

/* ---- exempt ---- */

struct exempt_args {
    int log[2];       /* log[0] exempt: the thread writes it, main reads */
    int in[2];        /* in[0] exempt: the thread blocks reading it */
    int started, got; /* atomic */
};

static void *exempt_main(void *arg)
{
    struct exempt_args *a = arg;
    __atomic_store_n(&a->started, 1, __ATOMIC_RELEASE);
    /* Blocked on an exempt fd: the stop (with FILES) does not wake it. */
    ssize_t n = weft_read(a->in[0], buf, sizeof buf, WEFT_FOREVER);
    CHECK_EQ(n, 3);
    __atomic_store_n(&a->got, 1, __ATOMIC_RELEASE);
    CHECK_EQ(weft_stopping(), 1);
    CHECK_ERR(weft_sleep(FAR), -ECANCELED); /* stopped all the same */
    CHECK_ERR(weft_read(a->in[1], buf, 1, 0), -ECANCELED); /* not exempt */
    /* The log keeps working, with FILES, even where it must wait. */
    CHECK_EQ(weft_write(a->log[0], "bye\n", 4, WEFT_FOREVER), 4);
    long filled = io_fill(a->log[0]); /* deadline 0: fills, then times out */
    CHECK(filled > 0);
    CHECK_EQ(weft_write(a->log[0], "!", 1, WEFT_FOREVER), 1); /* waits for main */
    return (void *)filled;
}

static void exempt(void)
{
    struct exempt_args a = {0};
    io_unix_pair(a.log);
    io_unix_pair(a.in);
    CHECK_ERR(weft_fd_exempt(a.log[0], 1), 0);
    CHECK_ERR(weft_fd_exempt(a.in[0], 1), 0);
    CHECK_ERR(weft_fd_exempt(a.in[0], 1), 0); /* twice is fine */
    weft_t t;
    CHECK_ERR(weft_spawn(&t, exempt_main, &a, NULL), 0);
    while (!__atomic_load_n(&a.started, __ATOMIC_ACQUIRE))
        weft_sleep(weft_after(WEFT_US(200)));
    weft_sleep(weft_after(WEFT_MS(10)));
    CHECK_ERR(weft_stop(t, WEFT_STOP_FILES), 0);
    weft_sleep(weft_after(WEFT_MS(10)));
    CHECK_EQ(__atomic_load_n(&a.got, __ATOMIC_ACQUIRE), 0); /* still blocked */
    CHECK_EQ(write(a.in[1], "abc", 3), 3);
    /* Drain the log until its last byte, '!' (the fill writes zeros). */
    static char sink[65536];
    long total = 0;
    for (;;) {
        ssize_t n = weft_read(a.log[1], sink, sizeof sink, FAR);
        CHECK(n > 0);
        total += n;
        if (sink[n - 1] == '!')
            break;
    }
    void *filled;
    CHECK_ERR(weft_join(t, &filled, WEFT_FOREVER), 0);
    CHECK_EQ(total, 4 + (long)filled + 1);
    CHECK_ERR(weft_close(a.log[0]), 0);
    CHECK_ERR(weft_close(a.log[1]), 0);
    CHECK_ERR(weft_close(a.in[0]), 0);
    CHECK_ERR(weft_close(a.in[1]), 0);
    printf("exempt: an exempt fd works for a stopped thread, WEFT_STOP_FILES or not\n");
}

/* ---- marks ---- */

static void *marks_main(void *arg)
{
    int *fds = arg;
    CHECK_ERR(weft_stop(weft_self(), WEFT_STOP_FILES), 0);
    /* fds[0]: marked, then weft_close'd, then its number reused: not exempt. */
    CHECK_ERR(weft_write(fds[0], "x", 1, 0), -ECANCELED);
    /* fds[1]: marked and unmarked. */
    CHECK_ERR(weft_write(fds[1], "x", 1, 0), -ECANCELED);
    /* fds[2]: marked. */
    CHECK_EQ(weft_write(fds[2], "x", 1, 0), 1);
    return NULL;
}

static void marks(void)
{
    CHECK_ERR(weft_fd_exempt(-1, 1), -EBADF);
    CHECK_ERR(weft_fd_exempt(1 << 30, 1), -EBADF);
    int a[2], b[2], c[2];
    io_unix_pair(a);
    int num = a[0];
    CHECK_ERR(weft_fd_exempt(a[0], 1), 0);
    CHECK_ERR(weft_close(a[0]), 0);
    CHECK_ERR(weft_fd_exempt(num, 1), -EBADF); /* closed */
    CHECK_ERR(weft_close(a[1]), 0);
    io_unix_pair(a); /* the numbers again, most likely */
    io_unix_pair(b);
    io_unix_pair(c);
    CHECK_ERR(weft_fd_exempt(b[0], 1), 0);
    CHECK_ERR(weft_fd_exempt(b[0], 0), 0);
    CHECK_ERR(weft_fd_exempt(c[0], 1), 0);
    int fds[3] = {a[0], b[0], c[0]};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, marks_main, fds, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_ERR(weft_close(a[i]), 0);
        CHECK_ERR(weft_close(b[i]), 0);
        CHECK_ERR(weft_close(c[i]), 0);
    }
    printf("marks: weft_fd_exempt's errors; weft_close clears the mark\n");
}

int main(void)
{
    plain();
    files();
    exempt();
    marks();
    return 0;
}
