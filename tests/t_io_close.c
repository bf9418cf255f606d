/*
 * t_io_close: weft_close and the threads waiting on the fd it closes.
 *
 *   wakes        a thread parked in each wrapper (read, write on a full
 *                socket, recv, fdwait IN and OUT, accept, recvfrom on UDP)
 *                wakes with -EBADF when another thread weft_closes the fd;
 *                eight readers of one fd all wake; later calls on the
 *                number get -EBADF, and so does a second weft_close
 *   from main    main (a kernel thread) closes a fd weft threads wait on;
 *                a pthread waiting on a fd is woken by a weft thread's
 *                close (it polls, so within its 50 ms slice)
 *   reuse        a fd number weft_close'd while registered in the epoll
 *                set is given to a new socket at once: waits on the new
 *                socket are woken by its own peer, and the old peer's
 *                writes (events for the same number) wake nobody wrongly
 *   race         a reader parked (or about to park) on a fd while another
 *                thread closes it at a random moment: the reader returns
 *                data or -EBADF, never hangs
 *   renumber     one thread closes sockets while another opens new ones
 *                (the kernel hands it the numbers just freed) and waits on
 *                them: no wait on a new socket fails or hangs because of a
 *                close of the number's previous socket still under way
 */
#include "iotest.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- wakes ------------------------------------------------------------- */

enum { K_READ, K_WRITE, K_RECV, K_FDWAIT_IN, K_FDWAIT_OUT, K_ACCEPT, K_UDP, K_KINDS };
static const char *kname[K_KINDS] = {"read", "write", "recv", "fdwait(IN)",
                                     "fdwait(OUT)", "accept", "recvfrom (udp)"};

struct blocked {
    int kind;
    int fd;
    atomic_int started;
};

static void *blocked_main(void *arg)
{
    struct blocked *b = arg;
    char buf[64];
    atomic_fetch_add(&b->started, 1);
    switch (b->kind) {
    case K_READ: return U2P(weft_read(b->fd, buf, sizeof buf, weft_after(WEFT_SEC(60))));
    case K_WRITE: return U2P(weft_write(b->fd, buf, sizeof buf, WEFT_FOREVER));
    case K_RECV: return U2P(weft_recv(b->fd, buf, sizeof buf, 0, WEFT_FOREVER));
    case K_FDWAIT_IN: return U2P(weft_fdwait(b->fd, WEFT_IN, WEFT_FOREVER));
    case K_FDWAIT_OUT: return U2P(weft_fdwait(b->fd, WEFT_OUT, WEFT_FOREVER));
    case K_ACCEPT: return U2P(weft_accept(b->fd, NULL, NULL, 0, WEFT_FOREVER));
    default: return U2P(weft_recvfrom(b->fd, buf, sizeof buf, 0, NULL, NULL, WEFT_FOREVER));
    }
}

/* A fd for kind whose wrapper will block; *other is a second fd to close
 * afterwards (or -1). */
static int blocking_fd(int kind, int *other)
{
    int sv[2];
    *other = -1;
    if (kind == K_ACCEPT) {
        struct sockaddr_in a;
        socklen_t al;
        return io_tcp_listener(&a, &al, 4);
    }
    if (kind == K_UDP) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHECK(s >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        CHECK_EQ(bind(s, (struct sockaddr *)&a, sizeof a), 0);
        return s;
    }
    io_unix_pair(sv);
    *other = sv[1];
    if (kind == K_WRITE || kind == K_FDWAIT_OUT)
        CHECK(io_fill(sv[0]) > 0);
    return sv[0];
}

/* Lets the spawned threads reach their waits (the result must be -EBADF
 * whether or not they got there: this only makes the parked case likely). */
static void settle(atomic_int *started, int n)
{
    while (atomic_load(started) < n)
        weft_yield();
    weft_sleep(weft_after(WEFT_MS(10)));
}

static void close_wakes(void)
{
    for (int k = 0; k < K_KINDS; k++) {
        int other, fd = blocking_fd(k, &other);
        int n = k == K_READ ? 8 : 1;
        struct blocked b = {k, fd, 0};
        weft_t t[8];
        for (int i = 0; i < n; i++)
            CHECK_ERR(weft_spawn(&t[i], blocked_main, &b, NULL), 0);
        settle(&b.started, n);
        CHECK_ERR(weft_close(fd), 0);
        for (int i = 0; i < n; i++) {
            void *r;
            CHECK_ERR(weft_join(t[i], &r, WEFT_FOREVER), 0);
            if ((intptr_t)r != -EBADF)
                check_failed("%s parked on a closed fd returned %lld, expected -EBADF\n",
                             kname[k], (long long)(intptr_t)r);
        }
        char c;
        CHECK_ERR(weft_read(fd, &c, 1, 0), -EBADF);
        CHECK_ERR(weft_fdwait(fd, WEFT_IN, WEFT_FOREVER), -EBADF);
        CHECK_ERR(weft_close(fd), -EBADF);
        if (other >= 0)
            CHECK_ERR(weft_close(other), 0);
    }
}

/* ---- from main / to a pthread ----------------------------------------- */

static void from_main(void)
{
    int sv[2];
    io_unix_pair(sv);
    struct blocked b = {K_READ, sv[1], 0};
    weft_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK_ERR(weft_spawn(&t[i], blocked_main, &b, NULL), 0);
    while (atomic_load(&b.started) < 4)
        usleep(1000);
    usleep(10000);
    CHECK_ERR(weft_close(sv[1]), 0); /* main is a kernel thread */
    for (int i = 0; i < 4; i++) {
        void *r;
        CHECK_ERR(weft_join(t[i], &r, WEFT_FOREVER), 0);
        CHECK_EQ((intptr_t)r, -EBADF);
    }
    CHECK_ERR(weft_close(sv[0]), 0);
}

static void *closer_main(void *arg)
{
    struct blocked *b = arg;
    while (atomic_load(&b->started) < 1)
        weft_yield();
    CHECK_ERR(weft_sleep(weft_after(WEFT_MS(10))), 0);
    CHECK_ERR(weft_close(b->fd), 0);
    return NULL;
}

static void to_pthread(void)
{
    int sv[2];
    io_unix_pair(sv);
    struct blocked b = {K_FDWAIT_IN, sv[1], 0};
    weft_t c;
    CHECK_ERR(weft_spawn(&c, closer_main, &b, NULL), 0);
    pthread_t p;
    CHECK_EQ(pthread_create(&p, NULL, blocked_main, &b), 0);
    void *r;
    CHECK_EQ(pthread_join(p, &r), 0);
    CHECK_EQ((intptr_t)r, -EBADF);
    CHECK_ERR(weft_join(c, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_close(sv[0]), 0);
}

/* ---- reuse ------------------------------------------------------------- */

struct writer {
    int fd;
    const char *msg;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    CHECK_ERR(weft_sleep(weft_after(WEFT_MS(2))), 0);
    size_t n = strlen(w->msg);
    CHECK_EQ(weft_write(w->fd, w->msg, n, WEFT_FOREVER), (ssize_t)n);
    return NULL;
}

static void reuse(void)
{
    int rounds = (int)test_scale(200), reused = 0;
    int old[2];
    io_unix_pair(old);
    for (int i = 0; i < rounds; i++) {
        /* Register old[1]: a wait that times out leaves it in the set. */
        char buf[16];
        CHECK_ERR(weft_read(old[1], buf, sizeof buf, weft_after(WEFT_US(100))), -ETIMEDOUT);
        int num = old[1];
        /* The old peer writes as the number is closed: an event for the
         * number may be on its way to the poller, or in its hands. */
        CHECK_EQ(write(old[0], "stale", 5), 5);
        CHECK_ERR(weft_close(old[1]), 0);
        int nw[2];
        io_unix_pair(nw);
        reused += nw[0] == num || nw[1] == num;
        int mine = nw[0] == num ? nw[0] : nw[1], peer = mine == nw[0] ? nw[1] : nw[0];
        /* The new socket has nothing to read whatever the old one had. */
        CHECK_ERR(weft_read(mine, buf, sizeof buf, 0), -ETIMEDOUT);
        struct writer w = {peer, "fresh"};
        weft_t t;
        CHECK_ERR(weft_spawn(&t, writer_main, &w, NULL), 0);
        ssize_t n = weft_read(mine, buf, sizeof buf, weft_after(WEFT_SEC(60)));
        CHECK_EQ(n, 5);
        CHECK(memcmp(buf, "fresh", 5) == 0);
        CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
        CHECK_ERR(weft_close(old[0]), 0);
        old[0] = peer;
        old[1] = mine;
    }
    CHECK_ERR(weft_close(old[0]), 0);
    CHECK_ERR(weft_close(old[1]), 0);
    CHECK(reused > 0); /* the kernel hands out the lowest free number */
}

/* ---- race ------------------------------------------------------------- */

#if defined(WEFT_TSAN)
/* The race case closes an fd while another thread may be inside read(2)
 * on it, on purpose: it checks that weft survives a program doing that.
 * ThreadSanitizer rightly calls that read and the close a race on the
 * file descriptor; these reports are the test's intent, so they are
 * suppressed for its two threads only. (Default visibility: the TSan
 * runtime finds this function through the dynamic symbol table.) */
__attribute__((visibility("default"))) const char *__tsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__tsan_default_suppressions(void)
{
    return "race:race_reader\nrace:race_closer\n";
}
#endif

struct racer {
    int fd;
    int spins;
};

static void *race_reader(void *arg)
{
    struct racer *r = arg;
    char buf[8];
    for (;;) {
        ssize_t n = weft_read(r->fd, buf, sizeof buf, WEFT_FOREVER);
        if (n <= 0)
            return U2P(n == 0 ? -1 : n); /* 0 would be end of file: wrong here */
    }
}

static void *race_closer(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < r->spins; i++)
        weft_yield();
    CHECK_ERR(weft_close(r->fd), 0);
    return NULL;
}

static void race(void)
{
    int rounds = (int)test_scale(2000);
    unsigned seed = 12345;
    for (int i = 0; i < rounds; i++) {
        int sv[2];
        io_unix_pair(sv);
        seed = seed * 1103515245u + 12345u;
        struct racer r = {sv[1], (int)(seed >> 16) % 8};
        if (seed & 0x100)
            CHECK_EQ(write(sv[0], "x", 1), 1);
        weft_t a, b;
        CHECK_ERR(weft_spawn(&a, race_reader, &r, NULL), 0);
        CHECK_ERR(weft_spawn(&b, race_closer, &r, NULL), 0);
        void *res;
        CHECK_ERR(weft_join(a, &res, WEFT_FOREVER), 0);
        CHECK_EQ((intptr_t)res, -EBADF);
        CHECK_ERR(weft_join(b, NULL, WEFT_FOREVER), 0);
        CHECK_ERR(weft_close(sv[0]), 0);
    }
}

/* ---- renumber ---------------------------------------------------------- */

static atomic_int renumber_stop;

static void *renumber_closer(void *arg)
{
    (void)arg;
    while (!atomic_load(&renumber_stop)) {
        int sv[2];
        io_unix_pair(sv);
        char c;
        /* Registered, so the close has an epoll entry to drop. */
        CHECK_ERR(weft_read(sv[1], &c, 1, 0), -ETIMEDOUT);
        CHECK_ERR(weft_fdwait(sv[1], WEFT_IN, weft_after(WEFT_US(50))), -ETIMEDOUT);
        CHECK_ERR(weft_close(sv[1]), 0);
        CHECK_ERR(weft_close(sv[0]), 0);
        weft_yield();
    }
    return NULL;
}

static void *renumber_echo(void *arg)
{
    int fd = (int)P2U(arg);
    char c;
    CHECK_EQ(weft_read(fd, &c, 1, WEFT_FOREVER), 1);
    CHECK_EQ(weft_write(fd, &c, 1, WEFT_FOREVER), 1);
    return NULL;
}

static void renumber(void)
{
    weft_t closers[2];
    for (int i = 0; i < 2; i++)
        CHECK_ERR(weft_spawn(&closers[i], renumber_closer, NULL, NULL), 0);
    int rounds = (int)test_scale(3000);
    for (int i = 0; i < rounds; i++) {
        int sv[2];
        io_unix_pair(sv);
        weft_t e;
        CHECK_ERR(weft_spawn(&e, renumber_echo, U2P(sv[1]), NULL), 0);
        char c = (char)i, d = 0;
        CHECK_EQ(weft_write(sv[0], &c, 1, WEFT_FOREVER), 1);
        CHECK_EQ(weft_read(sv[0], &d, 1, WEFT_FOREVER), 1);
        CHECK_EQ(d, c);
        CHECK_ERR(weft_join(e, NULL, WEFT_FOREVER), 0);
        CHECK_ERR(weft_close(sv[0]), 0);
        CHECK_ERR(weft_close(sv[1]), 0);
    }
    atomic_store(&renumber_stop, 1);
    for (int i = 0; i < 2; i++)
        CHECK_ERR(weft_join(closers[i], NULL, WEFT_FOREVER), 0);
}

int main(void)
{
    io_in_weft(close_wakes);
    printf("wakes: ok\n");
    from_main();
    to_pthread(); /* from main: pthread_join would block a worker */
    printf("from main, to a pthread: ok\n");
    io_in_weft(reuse);
    printf("reuse: ok\n");
    io_in_weft(race);
    printf("race: ok\n");
    io_in_weft(renumber);
    printf("renumber: ok\n");
    return 0;
}
