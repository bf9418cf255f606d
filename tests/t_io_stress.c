/*
 * t_io_stress: many threads waking each other through fds, hunting lost
 * wake-ups and double wake-ups in the poller. A lost wake-up shows as a
 * read that fails with -ETIMEDOUT after 60 s (or the runner's timeout).
 *
 *   ping-pong      one pair of threads bounces a byte 2,000 times over two
 *                  pipes; then 64 pairs at once over socket pairs
 *   timeout race   a reader loops on reads with deadlines of 0 to 200 us
 *                  while a writer sends bytes at random moments: every
 *                  read returns data or -ETIMEDOUT, and every byte arrives
 *                  exactly once
 *   many readers   eight threads read one byte at a time from one socket
 *                  that another thread writes to one byte at a time: all
 *                  bytes are read once, and the writer's close ends every
 *                  reader with end of file
 *   busy workers   while threads that only yield keep every worker busy,
 *                  a ping-pong still completes (busy workers poll too)
 */
#include "iotest.h"

#include <stdatomic.h>

#define LONG_WAIT WEFT_SEC(60)

/* ---- ping-pong ------------------------------------------------------------ */

struct pp {
    int in, out;
    long rounds;
};

static void *pong(void *arg)
{
    struct pp *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        char c;
        CHECK_EQ(weft_read(p->in, &c, 1, weft_after(LONG_WAIT)), 1);
        CHECK_EQ(weft_write(p->out, &c, 1, weft_after(LONG_WAIT)), 1);
    }
    return NULL;
}

static void *ping(void *arg)
{
    struct pp *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        char c = (char)i, d;
        CHECK_EQ(weft_write(p->out, &c, 1, weft_after(LONG_WAIT)), 1);
        CHECK_EQ(weft_read(p->in, &d, 1, weft_after(LONG_WAIT)), 1);
        CHECK_EQ(d, c);
    }
    return NULL;
}

/* Runs n ping-pong pairs of rounds each; pipes or socket pairs. */
static void pingpong(int n, long rounds, bool pipes)
{
    struct pp *pp = calloc((size_t)n * 2, sizeof *pp);
    weft_t *t = calloc((size_t)n * 2, sizeof *t);
    int (*fds)[4] = calloc((size_t)n, sizeof *fds);
    CHECK(pp && t && fds);
    for (int i = 0; i < n; i++) {
        int a[2], b[2];
        if (pipes) {
            CHECK_EQ(pipe(a), 0);
            CHECK_EQ(pipe(b), 0);
        } else {
            io_unix_pair(a);
            io_unix_pair(b);
        }
        memcpy(fds[i], (int[4]){a[0], a[1], b[0], b[1]}, sizeof fds[i]);
        pp[2 * i] = (struct pp){a[0], b[1], rounds};     /* pong: reads a, writes b */
        pp[2 * i + 1] = (struct pp){b[0], a[1], rounds}; /* ping: writes a, reads b */
        CHECK_ERR(weft_spawn(&t[2 * i], pong, &pp[2 * i], NULL), 0);
        CHECK_ERR(weft_spawn(&t[2 * i + 1], ping, &pp[2 * i + 1], NULL), 0);
    }
    for (int i = 0; i < 2 * n; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 4; j++)
            CHECK_ERR(weft_close(fds[i][j]), 0);
    free(pp);
    free(t);
    free(fds);
}

static void pingpongs(void)
{
    pingpong(1, test_scale(2000), true);
    pingpong(64, test_scale(300), false);
}

/* ---- timeout race ------------------------------------------------------- */

struct trickle {
    int fd;
    long bytes;
};

static void *trickle_writer(void *arg)
{
    struct trickle *t = arg;
    unsigned seed = 777;
    for (long i = 0; i < t->bytes; i++) {
        char c = (char)i;
        CHECK_EQ(weft_write(t->fd, &c, 1, weft_after(LONG_WAIT)), 1);
        seed = seed * 1103515245u + 12345u;
        int r = (int)(seed >> 16) % 4;
        if (r == 0)
            weft_sleep(weft_after(WEFT_US((seed >> 8) % 150)));
        else if (r == 1)
            weft_yield();
    }
    return NULL;
}

static void timeout_race(void)
{
    int sv[2];
    io_unix_pair(sv);
    struct trickle t = {sv[0], test_scale(20000)};
    weft_t w;
    CHECK_ERR(weft_spawn(&w, trickle_writer, &t, NULL), 0);
    long got = 0, timeouts = 0;
    unsigned seed = 99;
    int64_t give_up = weft_after(LONG_WAIT);
    while (got < t.bytes) {
        seed = seed * 1103515245u + 12345u;
        char buf[16];
        ssize_t n = weft_read(sv[1], buf, sizeof buf, weft_after(WEFT_US((seed >> 16) % 200)));
        if (n == -ETIMEDOUT) {
            timeouts++;
            CHECK(weft_now() < give_up);
            continue;
        }
        CHECK(n > 0);
        for (ssize_t i = 0; i < n; i++)
            CHECK_EQ(buf[i], (char)(got + i));
        got += n;
    }
    CHECK_ERR(weft_join(w, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_read(sv[1], (char[1]){0}, 1, 0), -ETIMEDOUT);
    printf("timeout race: %ld bytes, %ld reads timed out\n", got, timeouts);
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);
}

/* ---- many readers ------------------------------------------------------- */

#define READERS 8

static atomic_long many_seen[256];

static void *one_byte_reader(void *arg)
{
    int fd = (int)P2U(arg);
    long n = 0;
    for (;;) {
        unsigned char c;
        ssize_t r = weft_read(fd, &c, 1, weft_after(LONG_WAIT));
        if (r == 0)
            return U2P(n);
        CHECK_EQ(r, 1);
        atomic_fetch_add(&many_seen[c], 1);
        n++;
    }
}

static void many_readers(void)
{
    int sv[2];
    io_unix_pair(sv);
    weft_t t[READERS];
    for (int i = 0; i < READERS; i++)
        CHECK_ERR(weft_spawn(&t[i], one_byte_reader, U2P(sv[1]), NULL), 0);
    long total = test_scale(256 * 40);
    for (long i = 0; i < total; i++) {
        unsigned char c = (unsigned char)i;
        CHECK_EQ(weft_write(sv[0], &c, 1, weft_after(LONG_WAIT)), 1);
        if (i % 7 == 0)
            weft_yield();
    }
    CHECK_ERR(weft_close(sv[0]), 0);
    long sum = 0;
    for (int i = 0; i < READERS; i++) {
        void *n;
        CHECK_ERR(weft_join(t[i], &n, WEFT_FOREVER), 0);
        sum += (long)P2U(n);
    }
    CHECK_EQ(sum, total);
    for (int c = 0; c < 256; c++)
        CHECK_EQ(atomic_load(&many_seen[c]), total / 256 + (c < total % 256));
    CHECK_ERR(weft_close(sv[1]), 0);
}

/* ---- busy workers ------------------------------------------------------- */

static atomic_int busy_stop;

static void *yielder(void *arg)
{
    (void)arg;
    long n = 0;
    while (!atomic_load_explicit(&busy_stop, memory_order_relaxed)) {
        weft_yield();
        n++;
    }
    return NULL;
}

static void busy_workers(void)
{
    weft_t y[4];
    for (int i = 0; i < 4; i++)
        CHECK_ERR(weft_spawn(&y[i], yielder, NULL, NULL), 0);
    pingpong(2, test_scale(500), false);
    atomic_store(&busy_stop, 1);
    for (int i = 0; i < 4; i++)
        CHECK_ERR(weft_join(y[i], NULL, WEFT_FOREVER), 0);
}

int main(void)
{
    io_in_weft(pingpongs);
    printf("ping-pong: ok\n");
    io_in_weft(timeout_race);
    printf("timeout race: ok\n");
    io_in_weft(many_readers);
    printf("many readers: ok\n");
    io_in_weft(busy_workers);
    printf("busy workers: ok\n");
    return 0;
}
