/*
 * t_io_many: 10,000 loopback TCP connections open at once, each echoing.
 *
 * The client side runs in a forked child, so each process holds about
 * 10,000 fds rather than 20,000 (RLIMIT_NOFILE's hard limit is often
 * 20,000 or less). Both raise their soft limit to the hard one; where even
 * that is too low the test prints SKIP and why, and exits 0 having checked
 * nothing.
 *
 *   server (parent)  one weft thread accepts; one weft thread per
 *                    connection echoes until end of file
 *   client (child)   one weft thread per connection: connect (at most 256
 *                    connecting at a time, so the accept queue does not
 *                    overflow into 1 s SYN retries), wait on a barrier
 *                    until every connection is open, then ROUNDS times
 *                    send 64 distinct bytes and read them back whole
 *
 * Both sides check every byte and count connections and bytes. Sizes:
 * WEFT_TEST_SCALE scales the 10,000 (TSan runs 100).
 */
#include "iotest.h"

#include <arpa/inet.h>
#include <sys/resource.h>

#define ROUNDS 4
#define MSG 64

static long nconn;

/* ---- server ------------------------------------------------------------- */

static weft_wg_t echo_wg = WEFT_WG_INIT;
static long echoed_bytes, echo_errors; /* atomic */

static void *echo_main(void *arg)
{
    int fd = (int)P2U(arg);
    char buf[4096];
    long total = 0;
    for (;;) {
        ssize_t n = weft_read(fd, buf, sizeof buf, weft_after(WEFT_SEC(120)));
        if (n == 0)
            break;
        if (n < 0) {
            fprintf(stderr, "server: read returned %zd (%s)\n", n, check_errname(n));
            __atomic_add_fetch(&echo_errors, 1, __ATOMIC_RELAXED);
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = weft_write(fd, buf + off, (size_t)(n - off), weft_after(WEFT_SEC(120)));
            if (w <= 0) {
                fprintf(stderr, "server: write returned %zd (%s)\n", w, check_errname(w));
                __atomic_add_fetch(&echo_errors, 1, __ATOMIC_RELAXED);
                goto out;
            }
            off += w;
        }
        total += n;
    }
out:
    __atomic_add_fetch(&echoed_bytes, total, __ATOMIC_RELAXED);
    CHECK_ERR(weft_close(fd), 0);
    weft_wg_done(&echo_wg);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    int l = (int)P2U(arg);
    for (long i = 0; i < nconn; i++) {
        int s = weft_accept(l, NULL, NULL, SOCK_CLOEXEC, weft_after(WEFT_SEC(120)));
        if (s < 0)
            check_failed("server: accept %ld of %ld returned %d (%s)\n", i, nconn, s,
                         check_errname(s));
        CHECK_ERR(weft_wg_add(&echo_wg, 1), 0);
        CHECK_ERR(weft_spawn(NULL, echo_main, U2P(s), NULL), 0);
    }
    return NULL;
}

/* ---- client ------------------------------------------------------------- */

static int port;
static weft_sem_t connecting;
static weft_barrier_t all_open;
static long client_errors; /* atomic */

static void *client_main(void *arg)
{
    long id = (long)P2U(arg);
    CHECK_ERR(weft_sem_wait(&connecting, WEFT_FOREVER), 0);
    int fd = weft_tcp_connect("127.0.0.1", port, weft_after(WEFT_SEC(120)));
    CHECK_ERR(weft_sem_post(&connecting), 0);
    if (fd < 0)
        check_failed("client %ld: connect returned %d (%s)\n", id, fd, check_errname(fd));
    weft_barrier_wait(&all_open); /* every connection is open now */
    for (int r = 0; r < ROUNDS; r++) {
        unsigned char out[MSG], in[MSG];
        for (int i = 0; i < MSG; i++)
            out[i] = (unsigned char)(id * 7 + r * 13 + i);
        CHECK_EQ(weft_write(fd, out, MSG, weft_after(WEFT_SEC(120))), MSG);
        for (int got = 0; got < MSG;) {
            ssize_t n = weft_read(fd, in + got, (size_t)(MSG - got), weft_after(WEFT_SEC(120)));
            if (n <= 0)
                check_failed("client %ld: read returned %zd (%s)\n", id, n, check_errname(n));
            got += (int)n;
        }
        if (memcmp(in, out, MSG) != 0)
            __atomic_add_fetch(&client_errors, 1, __ATOMIC_RELAXED);
    }
    CHECK_ERR(weft_close(fd), 0);
    return NULL;
}

static void client(void)
{
    CHECK_ERR(weft_sem_init(&connecting, 256), 0);
    CHECK_ERR(weft_barrier_init(&all_open, (unsigned)nconn), 0);
    weft_t *t = calloc((size_t)nconn, sizeof *t);
    CHECK(t != NULL);
    for (long i = 0; i < nconn; i++)
        CHECK_ERR(weft_spawn(&t[i], client_main, U2P(i), NULL), 0);
    for (long i = 0; i < nconn; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    free(t);
    CHECK_EQ(__atomic_load_n(&client_errors, __ATOMIC_RELAXED), 0);
}

/* ---- main --------------------------------------------------------------- */

static bool raise_nofile(long need)
{
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)need) {
        printf("SKIP: t_io_many needs RLIMIT_NOFILE of %ld per process; the hard limit is "
               "%llu (raise it with ulimit -Hn as root); nothing was tested\n",
               need, (unsigned long long)rl.rlim_max);
        return false;
    }
    rl.rlim_cur = rl.rlim_max;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    return true;
}

int main(void)
{
    nconn = test_scale(10000);
    if (!raise_nofile(nconn + 64))
        return 0;
    /* The listener is made before the fork (no runtime runs yet), so the
     * child knows the port. */
    struct sockaddr_in a;
    socklen_t al;
    int l = io_tcp_listener(&a, &al, 4096);
    port = ntohs(a.sin_port);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        CHECK_ERR(weft_close(l), 0);
        client();
        printf("client: %ld connections open at once, each echoed %d x %d bytes\n", nconn,
               ROUNDS, MSG);
        fflush(NULL);
        _exit(0);
    }
    weft_t acc;
    CHECK_ERR(weft_spawn(&acc, acceptor_main, U2P(l), NULL), 0);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        CHECK_EQ(errno, EINTR);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        check_failed("client process failed (status %#x)\n", status);
    CHECK_ERR(weft_join(acc, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_wg_wait(&echo_wg, weft_after(WEFT_SEC(120))), 0);
    CHECK_EQ(__atomic_load_n(&echo_errors, __ATOMIC_RELAXED), 0);
    CHECK_EQ(__atomic_load_n(&echoed_bytes, __ATOMIC_RELAXED), nconn * ROUNDS * MSG);
    CHECK_ERR(weft_close(l), 0);
    printf("server: %ld connections, %ld bytes echoed: ok\n", nconn, nconn * ROUNDS * MSG);
    return 0;
}
