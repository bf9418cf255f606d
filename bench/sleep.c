/*
 * sleep - many sleeping threads, and how late a sleeping thread wakes.
 *
 * sleep_100k: 100,000 weft threads (times WEFT_BENCH_SCALE), each sleeping
 * 10 ms once (weft_sleep to its own weft_after(10 ms)); wall time in ms
 * from the first spawn until a wait group sees the last one done (10 ms
 * is the floor). Spawned detached from a weft thread on the default
 * workers. Baseline: Go, 100,000 goroutines doing time.Sleep(10 ms) and a
 * sync.WaitGroup (bench/go/sleep.go, run by bench/run.sh when go is
 * installed).
 *
 * sleep_10k: the same with 10,000 threads, beside 10,000 pthreads (64 KiB
 * stacks) doing clock_nanosleep for 10 ms; 100,000 pthreads do not fit
 * under most machines' pid_max.
 *
 * wakeup: a thread sleeps 1,000 times (times WEFT_BENCH_SCALE) to an
 * absolute deadline 100-1,000 us ahead (a fixed pseudo-random sequence)
 * and records how far past the deadline it ran again; median and 99th
 * percentile in ns. weft: a weft thread in weft_sleep, the process
 * otherwise idle, so its worker sleeps in the kernel until the timer:
 * on a futex (wakeup.weft), or in epoll_wait once the process has used the
 * poller (wakeup_poller.weft), the path every weft program doing I/O
 * takes. Baseline: a pthread in clock_nanosleep(CLOCK_MONOTONIC,
 * TIMER_ABSTIME) over the same deadlines. Both run with the kernel's
 * default timer slack (50 us for normal threads), which sets most of the
 * lateness for every sleeper alike.
 *
 * Reported: sleep figures are the best of 3 runs after 1 warm-up; wakeup
 * is one run of each, interleaved in blocks of 100 samples so load from
 * other tenants falls on both.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bench.h"

/* ---- many sleepers ------------------------------------------------------ */

static weft_wg_t sleepers_wg = WEFT_WG_INIT;

static void *sleeper(void *arg)
{
    (void)arg;
    weft_sleep(weft_after(WEFT_MS(10)));
    weft_wg_done(&sleepers_wg);
    return NULL;
}

static double weft_sleepers(void *arg)
{
    long n = *(long *)arg;
    int64_t t0 = bench_now();
    BENCH_CHECK(weft_wg_add(&sleepers_wg, (int)n) == 0, "weft_wg_add");
    for (long i = 0; i < n; i++) {
        int rc = weft_spawn(NULL, sleeper, NULL, NULL);
        BENCH_CHECK(rc == 0, "weft_spawn: %d", rc);
    }
    BENCH_CHECK(weft_wg_wait(&sleepers_wg, WEFT_FOREVER) == 0, "weft_wg_wait");
    return (double)(bench_now() - t0) / 1e6;
}

static void *pthread_sleeper(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 10000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
    return NULL;
}

static double pthread_sleepers(void *arg)
{
    long n = *(long *)arg;
    pthread_t *t = malloc((size_t)n * sizeof *t);
    BENCH_CHECK(t != NULL, "malloc");
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        int rc = pthread_create(&t[i], &a, pthread_sleeper, NULL);
        BENCH_CHECK(rc == 0, "pthread_create (thread %ld): %s", i, strerror(rc));
    }
    for (long i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    double ms = (double)(bench_now() - t0) / 1e6;
    pthread_attr_destroy(&a);
    free(t);
    return ms;
}

/* ---- wake-up latency ---------------------------------------------------- */

#define BLOCK 100

struct lateness {
    long n;
    int64_t *late;       /* n samples, ns past the deadline */
    unsigned seed;
};

static int64_t next_gap(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return WEFT_US(100) + (int64_t)((*seed >> 8) % 900000);
}

static void *weft_block(void *arg)
{
    struct lateness *l = arg;
    for (long i = 0; i < l->n; i++) {
        int64_t d = weft_now() + next_gap(&l->seed);
        weft_sleep(d);
        l->late[i] = weft_now() - d;
    }
    return NULL;
}

static void *pthread_block(void *arg)
{
    struct lateness *l = arg;
    for (long i = 0; i < l->n; i++) {
        int64_t d = bench_now() + next_gap(&l->seed);
        struct timespec ts = {d / 1000000000, d % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        l->late[i] = bench_now() - d;
    }
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs n samples of weft (as weft threads) and pthread in turns, BLOCK at
 * a time, each side with the same sequence of gaps. */
static void wakeup(const char *label, long n)
{
    int64_t *lw = malloc((size_t)n * sizeof *lw), *lp = malloc((size_t)n * sizeof *lp);
    BENCH_CHECK(lw && lp, "malloc");
    unsigned sw = 42, sp = 42;
    for (long done = 0; done < n; done += BLOCK) {
        long k = n - done < BLOCK ? n - done : BLOCK;
        struct lateness w = {k, lw + done, sw}, p = {k, lp + done, sp};
        weft_t t;
        BENCH_CHECK(weft_spawn(&t, weft_block, &w, NULL) == 0, "weft_spawn");
        BENCH_CHECK(weft_join(t, NULL, WEFT_FOREVER) == 0, "weft_join");
        pthread_t pt;
        BENCH_CHECK(pthread_create(&pt, NULL, pthread_block, &p) == 0, "pthread_create");
        pthread_join(pt, NULL);
        sw = w.seed;
        sp = p.seed;
    }
    qsort(lw, (size_t)n, sizeof *lw, cmp64);
    qsort(lp, (size_t)n, sizeof *lp, cmp64);
    char name[64];
    double wm = (double)lw[n / 2], w99 = (double)lw[n * 99 / 100];
    double pm = (double)lp[n / 2], p99 = (double)lp[n * 99 / 100];
    snprintf(name, sizeof name, "%s.weft_median", label);
    bench_print(name, wm, "ns late");
    snprintf(name, sizeof name, "%s.weft_p99", label);
    bench_print(name, w99, "ns late");
    snprintf(name, sizeof name, "%s.pthread_median", label);
    bench_print(name, pm, "ns late");
    snprintf(name, sizeof name, "%s.pthread_p99", label);
    bench_print(name, p99, "ns late");
    snprintf(name, sizeof name, "%s.ratio_median", label);
    bench_ratio(name, wm, pm, "nanosleep/weft; at least 1: no worse");
    snprintf(name, sizeof name, "%s.ratio_p99", label);
    bench_ratio(name, w99, p99, "nanosleep/weft; at least 1: no worse");
    free(lw);
    free(lp);
}

/* Makes the process use the poller, as any weft program doing I/O does:
 * from then on the idle worker sleeps in epoll_wait. */
static void *use_poller(void *arg)
{
    (void)arg;
    int sv[2];
    BENCH_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    char c;
    ssize_t r = weft_read(sv[0], &c, 1, weft_after(WEFT_US(100)));
    BENCH_CHECK(r == -ETIMEDOUT, "weft_read: %zd", r);
    /* sv stays open: the epoll set keeps one registered fd. */
    return NULL;
}

int main(void)
{
    bench_header("sleep: many sleeping threads (wall ms) and wake-up lateness (ns past the "
                 "deadline)",
                 "sleeps: best of 3 after 1 warm-up; lateness: one interleaved run");
    long big = bench_size(100000, 1000), small = bench_size(10000, 100);
    char note[128];
    snprintf(note, sizeof note, "sleep_100k: %ld threads; sleep_10k: %ld threads", big, small);
    bench_note(note);
    double w = bench_best_in_weft(weft_sleepers, &big, 3);
    bench_print("sleep_100k.weft", w, "ms");
    double ws = bench_best_in_weft(weft_sleepers, &small, 3);
    double ps = bench_best(pthread_sleepers, &small, 3);
    bench_print("sleep_10k.weft", ws, "ms");
    bench_print("sleep_10k.pthread", ps, "ms");
    bench_ratio("sleep_10k.ratio", ws, ps, "pthread/weft");

    long n = bench_size(1000, 200);
    wakeup("wakeup", n);
    weft_t t;
    BENCH_CHECK(weft_spawn(&t, use_poller, NULL, NULL) == 0, "weft_spawn");
    BENCH_CHECK(weft_join(t, NULL, WEFT_FOREVER) == 0, "weft_join");
    wakeup("wakeup_poller", n);
    return 0;
}
