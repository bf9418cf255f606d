/*
 * t_io_partial: short counts on full and empty socket buffers, as POSIX
 * reports them; the wrappers never loop to fill or drain a buffer.
 *
 *   short write    one weft_write of 4 MiB to a TCP (and AF_UNIX) socket
 *                  with small buffers returns at once with fewer bytes
 *                  (0 < n < len), whatever the deadline; the next write
 *                  with deadline 0 times out or takes a few more bytes
 *   stream         a writer sends 4 MiB in big writes, resuming after each
 *                  short count (it parks whenever the buffer is full),
 *                  through write, send, writev and sendmsg in turn, while
 *                  a slower reader checks every byte arrives once, in
 *                  order; short writes and reads must have happened
 *   writev split   a short writev that stops inside its second iovec: the
 *                  count says where, and resuming from there loses nothing
 */
#include "iotest.h"

#include <sys/uio.h>

#define TOTAL (4L << 20)
#define SMALL_BUF 16384

static unsigned char pattern(long pos)
{
    return (unsigned char)(pos * 131 + pos / 4099 + 7);
}

static void small_buffers(int sv[2])
{
    int v = SMALL_BUF;
    CHECK_EQ(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v), 0);
    CHECK_EQ(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &v, sizeof v), 0);
}

static unsigned char *pattern_buf(void)
{
    unsigned char *b = malloc(TOTAL);
    CHECK(b != NULL);
    for (long i = 0; i < TOTAL; i++)
        b[i] = pattern(i);
    return b;
}

/* ---- short write -------------------------------------------------------- */

static void short_write(void)
{
    unsigned char *big = pattern_buf();
    for (int tcp = 0; tcp < 2; tcp++) {
        int64_t ds[] = {0, WEFT_FOREVER, weft_after(WEFT_SEC(30))};
        for (int d = 0; d < 3; d++) {
            int sv[2];
            if (tcp)
                io_tcp_pair(sv);
            else
                io_unix_pair(sv);
            small_buffers(sv);
            ssize_t n = weft_write(sv[0], big, TOTAL, ds[d]);
            if (!(n > 0 && n < TOTAL))
                check_failed("a %s write of %ld bytes returned %zd, expected a short count\n",
                             tcp ? "TCP" : "unix", TOTAL, n);
            ssize_t m = weft_write(sv[0], big + n, (size_t)(TOTAL - n), 0);
            CHECK(m == -ETIMEDOUT || (m > 0 && m < TOTAL - n));
            /* What the reader gets is a prefix of what was sent. */
            unsigned char buf[4096];
            ssize_t r = weft_read(sv[1], buf, sizeof buf, WEFT_FOREVER);
            CHECK(r > 0);
            CHECK(memcmp(buf, big, (size_t)r) == 0);
            CHECK_ERR(weft_close(sv[0]), 0);
            CHECK_ERR(weft_close(sv[1]), 0);
        }
    }
    free(big);
}

/* ---- stream ------------------------------------------------------------- */

struct stream {
    int fd;
    const unsigned char *src;
    long shorts; /* writes or reads that moved less than asked */
};

static void *stream_writer(void *arg)
{
    struct stream *s = arg;
    long pos = 0;
    for (int call = 0; pos < TOTAL; call++) {
        size_t want = (size_t)(TOTAL - pos);
        if (want > 1 << 20)
            want = 1 << 20;
        const unsigned char *p = s->src + pos;
        ssize_t n;
        switch (call % 4) {
        case 0:
            n = weft_write(s->fd, p, want, WEFT_FOREVER);
            break;
        case 1:
            n = weft_send(s->fd, p, want, 0, weft_after(WEFT_SEC(60)));
            break;
        case 2: {
            size_t half = want / 2;
            struct iovec iov[2] = {{(void *)p, half}, {(void *)(p + half), want - half}};
            n = weft_writev(s->fd, iov, 2, WEFT_FOREVER);
            break;
        }
        default: {
            struct iovec iov = {(void *)p, want};
            struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
            n = weft_sendmsg(s->fd, &mh, 0, WEFT_FOREVER);
            break;
        }
        }
        if (n <= 0)
            check_failed("stream writer: call %d returned %zd (%s)\n", call, n, check_errname(n));
        if ((size_t)n < want)
            s->shorts++;
        pos += n;
    }
    return NULL;
}

static void stream(void)
{
    unsigned char *src = pattern_buf();
    for (int tcp = 0; tcp < 2; tcp++) {
        int sv[2];
        if (tcp)
            io_tcp_pair(sv);
        else
            io_unix_pair(sv);
        small_buffers(sv);
        struct stream s = {sv[0], src, 0};
        weft_t w;
        CHECK_ERR(weft_spawn(&w, stream_writer, &s, NULL), 0);
        static unsigned char buf[65536];
        long pos = 0, short_reads = 0;
        for (int i = 0; pos < TOTAL; i++) {
            ssize_t n = weft_read(sv[1], buf, sizeof buf, weft_after(WEFT_SEC(60)));
            if (n <= 0)
                check_failed("stream reader at %ld returned %zd (%s)\n", pos, n,
                             check_errname(n));
            if ((size_t)n < sizeof buf)
                short_reads++;
            for (ssize_t j = 0; j < n; j++)
                if (buf[j] != pattern(pos + j))
                    check_failed("stream: byte %ld is wrong\n", pos + j);
            pos += n;
            if (i % 16 == 0)
                weft_sleep(weft_after(WEFT_US(200))); /* slower than the writer */
        }
        CHECK_ERR(weft_join(w, NULL, WEFT_FOREVER), 0);
        CHECK_EQ(weft_read(sv[1], buf, sizeof buf, 0), -ETIMEDOUT); /* nothing extra */
        CHECK(s.shorts > 0);
        CHECK(short_reads > 0);
        CHECK_ERR(weft_close(sv[0]), 0);
        CHECK_ERR(weft_close(sv[1]), 0);
    }
    free(src);
}

/* ---- writev split ------------------------------------------------------- */

static void writev_split(void)
{
    unsigned char *src = pattern_buf();
    int sv[2];
    io_unix_pair(sv);
    small_buffers(sv);
    /* Three iovecs; the first is small enough to fit, so the short count
     * lands inside a later one. */
    size_t first = 1000, second = 2L << 20, third = TOTAL - first - second;
    struct iovec iov[3] = {{src, first}, {src + first, second}, {src + first + second, third}};
    ssize_t n = weft_writev(sv[0], iov, 3, 0);
    CHECK(n > (ssize_t)first && n < (ssize_t)(first + second));
    /* Resume inside the second iovec. */
    size_t off = (size_t)n - first;
    struct iovec rest[2] = {{src + first + off, second - off}, {src + first + second, third}};
    static unsigned char buf[65536];
    long got = 0, sent = n;
    int ri = 0;
    while (got < TOTAL) {
        if (sent < TOTAL) {
            ssize_t m = weft_writev(sv[0], rest + ri, 2 - ri, 0);
            if (m > 0) {
                sent += m;
                while (m > 0) { /* advance the iovecs by m */
                    size_t step = (size_t)m < rest[ri].iov_len ? (size_t)m : rest[ri].iov_len;
                    rest[ri].iov_base = (char *)rest[ri].iov_base + step;
                    rest[ri].iov_len -= step;
                    m -= (ssize_t)step;
                    if (rest[ri].iov_len == 0 && ri < 1)
                        ri++;
                }
            } else {
                CHECK_ERR(m, -ETIMEDOUT);
            }
        }
        ssize_t r = weft_read(sv[1], buf, sizeof buf, weft_after(WEFT_SEC(60)));
        CHECK(r > 0);
        for (ssize_t j = 0; j < r; j++)
            if (buf[j] != pattern(got + j))
                check_failed("writev split: byte %ld is wrong\n", got + j);
        got += r;
    }
    CHECK_EQ(sent, TOTAL);
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);
    free(src);
}

int main(void)
{
    io_in_weft(short_write);
    printf("short write: ok\n");
    io_in_weft(stream);
    printf("stream: ok\n");
    io_in_weft(writev_split);
    printf("writev split: ok\n");
    short_write(); /* from main too */
    printf("short write (main): ok\n");
    return 0;
}
