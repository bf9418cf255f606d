/*
 * echo_client.c - load for an echo server: N connections, each a weft
 * thread sending a request, waiting for its echo, and sending the next.
 *
 *   echo_client [-c CONNS] [-d SECONDS | -n REQUESTS] [-w SECONDS] [-s SIZE] [-q] HOST PORT
 *
 * Every connection runs a closed loop: write SIZE bytes, read SIZE bytes
 * back (checking them), repeat, timing each round trip. With -d it runs
 * for a warm-up, then measures for SECONDS; with -n it sends REQUESTS in
 * all (spread over the connections) and measures the whole run. It prints
 * requests per second and the round-trip latency's median and 99th
 * percentile (from a histogram with 3% wide buckets). A wrong echo, a
 * closed or reset connection, or a connect that fails counts as an error;
 * the exit status is 1 if any happened.
 */
#include <weft.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Latency histogram: exact below 64 ns, then 32 buckets per power of 2. */
#define HIST_N 1200

static int hist_index(int64_t ns)
{
    if (ns < 64)
        return ns < 0 ? 0 : (int)ns;
    int e = 63 - __builtin_clzll((uint64_t)ns); /* >= 6 */
    int i = 64 + (e - 6) * 32 + (int)((ns >> (e - 5)) & 31);
    return i < HIST_N ? i : HIST_N - 1;
}

/* The middle of bucket i, in ns. */
static double hist_value(int i)
{
    if (i < 64)
        return i;
    int e = (i - 64) / 32 + 6, m = (i - 64) % 32;
    double lo = (double)((int64_t)(32 + m) << (e - 5));
    return lo + (double)((int64_t)1 << (e - 5)) / 2;
}

struct conn {
    int id;
    uint64_t requests;         /* measured round trips */
    uint32_t hist[HIST_N];
};

static const char *host;
static int port, size = 64;
static long nconns = 100, per_conn; /* per_conn: -n mode */
static atomic_int phase;            /* 0 warming up, 1 measuring, 2 stop */
static atomic_long errors;
static weft_wg_t connected = WEFT_WG_INIT;
static weft_sem_t connecting;

static void fail(struct conn *c, const char *what, long r)
{
    if (atomic_fetch_add(&errors, 1) < 5)
        fprintf(stderr, "echo_client: connection %d: %s: %s\n", c->id, what,
                r < 0 ? strerror((int)-r) : "connection closed");
}

static void *run(void *arg)
{
    struct conn *c = arg;
    weft_sem_wait(&connecting, WEFT_FOREVER); /* a few hundred connecting at a time */
    int fd = weft_tcp_connect(host, port, weft_after(WEFT_SEC(30)));
    weft_sem_post(&connecting);
    weft_wg_done(&connected);
    if (fd < 0) {
        fail(c, "connect", fd);
        return NULL;
    }
    char *out = malloc((size_t)size), *in = malloc((size_t)size);
    if (!out || !in) {
        fail(c, "malloc", -ENOMEM);
        goto done;
    }
    for (int i = 0; i < size; i++)
        out[i] = (char)(c->id + i);
    for (long n = 0; per_conn == 0 || n < per_conn; n++) {
        int ph = atomic_load_explicit(&phase, memory_order_relaxed);
        if (ph == 2)
            break;
        out[0] = (char)n;
        int64_t t0 = weft_now();
        for (int off = 0; off < size;) {
            ssize_t w = weft_write(fd, out + off, (size_t)(size - off), WEFT_FOREVER);
            if (w < 0) {
                fail(c, "write", w);
                goto done;
            }
            off += (int)w;
        }
        for (int got = 0; got < size;) {
            ssize_t r = weft_read(fd, in + got, (size_t)(size - got), WEFT_FOREVER);
            if (r <= 0) {
                fail(c, "read", r);
                goto done;
            }
            got += (int)r;
        }
        int64_t t1 = weft_now();
        if (memcmp(in, out, (size_t)size) != 0) {
            fail(c, "echo differs from the request", -EPROTO);
            goto done;
        }
        if (ph == 1 && atomic_load_explicit(&phase, memory_order_relaxed) == 1) {
            c->requests++;
            c->hist[hist_index(t1 - t0)]++;
        }
    }
done:
    free(out);
    free(in);
    weft_close(fd);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: echo_client [-c CONNS] [-d SECONDS | -n REQUESTS] [-w SECONDS] [-s SIZE] [-q] "
            "HOST PORT\n"
            "  Runs CONNS connections to an echo server at HOST:PORT, each a weft thread\n"
            "  sending SIZE-byte requests and waiting for each echo.\n"
            "  -c CONNS     connections (default 100)\n"
            "  -d SECONDS   measure for this long, after the warm-up (default 5)\n"
            "  -n REQUESTS  instead, send this many requests in all and measure the whole run\n"
            "  -w SECONDS   warm-up before measuring, with -d (default 0.5)\n"
            "  -s SIZE      request size in bytes (default 64)\n"
            "  -q           print \"measuring\" when the measurement starts (with -d), then one\n"
            "               line: rps=... p50_ns=... p99_ns=... requests=... errors=...\n"
            "  Environment: WEFT_WORKERS=n kernel threads (default: one per CPU).\n");
    exit(2);
}

static double number(const char *s, double lo, double hi)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || !(v >= lo && v <= hi))
        usage();
    return v;
}

int main(int argc, char **argv)
{
    double seconds = 5, warm = 0.5;
    long total = 0;
    bool quiet = false;
    int opt;
    while ((opt = getopt(argc, argv, "c:d:n:w:s:q")) != -1) {
        switch (opt) {
        case 'c': nconns = (long)number(optarg, 1, 1000000); break;
        case 'd': seconds = number(optarg, 0.001, 1e6); break;
        case 'n': total = (long)number(optarg, 1, 1e15); break;
        case 'w': warm = number(optarg, 0, 1e6); break;
        case 's': size = (int)number(optarg, 1, 1 << 24); break;
        case 'q': quiet = true; break;
        default: usage();
        }
    }
    if (argc - optind != 2)
        usage();
    host = argv[optind];
    port = (int)number(argv[optind + 1], 1, 65535);
    if (total) {
        per_conn = (total + nconns - 1) / nconns;
        atomic_store(&phase, 1);
    }

    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    weft_t *threads = calloc((size_t)nconns, sizeof *threads);
    if (!conns || !threads) {
        fprintf(stderr, "echo_client: out of memory\n");
        return 1;
    }
    weft_sem_init(&connecting, 256);
    weft_wg_add(&connected, (int)nconns);
    int64_t start = weft_now();
    for (long i = 0; i < nconns; i++) {
        conns[i].id = (int)i;
        int r = weft_spawn(&threads[i], run, &conns[i], NULL);
        if (r < 0) {
            fprintf(stderr, "echo_client: spawn: %s\n", strerror(-r));
            return 1;
        }
    }
    weft_wg_wait(&connected, WEFT_FOREVER);
    int64_t t0 = start, t1 = start;
    if (!total) {
        weft_sleep(weft_after((int64_t)(warm * 1e9)));
        t0 = weft_now();
        atomic_store(&phase, 1);
        if (quiet) { /* lets a harness sample the server's CPU time now */
            printf("measuring\n");
            fflush(stdout);
        }
        weft_sleep(t0 + (int64_t)(seconds * 1e9));
        atomic_store(&phase, 2);
        t1 = weft_now();
    }
    for (long i = 0; i < nconns; i++)
        weft_join(threads[i], NULL, WEFT_FOREVER);
    if (total)
        t1 = weft_now();

    static uint64_t hist[HIST_N];
    uint64_t n = 0;
    for (long i = 0; i < nconns; i++) {
        n += conns[i].requests;
        for (int b = 0; b < HIST_N; b++)
            hist[b] += conns[i].hist[b];
    }
    double p50 = 0, p99 = 0;
    uint64_t seen = 0;
    for (int b = 0; b < HIST_N && n; b++) {
        seen += hist[b];
        if (p50 == 0 && seen * 100 >= n * 50)
            p50 = hist_value(b);
        if (seen * 100 >= n * 99) {
            p99 = hist_value(b);
            break;
        }
    }
    double secs = (double)(t1 - t0) / 1e9, rps = secs > 0 ? (double)n / secs : 0;
    long errs = atomic_load(&errors);
    if (quiet) {
        printf("rps=%.0f p50_ns=%.0f p99_ns=%.0f requests=%llu errors=%ld\n", rps, p50, p99,
               (unsigned long long)n, errs);
    } else {
        printf("%ld connections, %d-byte requests, %.2f s measured\n", nconns, size, secs);
        printf("requests     %llu\n", (unsigned long long)n);
        printf("requests/s   %.0f\n", rps);
        printf("latency      p50 %.1f us, p99 %.1f us\n", p50 / 1e3, p99 / 1e3);
        if (errs)
            printf("errors       %ld\n", errs);
    }
    free(conns);
    free(threads);
    return errs ? 1 : 0;
}
