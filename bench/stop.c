/*
 * stop - how fast a stop ends many blocked threads.
 *
 * stop_10k, stop_100k: 10,000 and 100,000 weft threads (times
 * WEFT_BENCH_SCALE) in one group, half blocked in weft_read on socket
 * pairs nobody writes to (100 readers per pair), half in
 * weft_sleep(WEFT_FOREVER); default attributes otherwise (64 KiB stacks).
 * Measured: the time from weft_group_stop to weft_group_wait returning,
 * that is until every thread has seen -ECANCELED, returned and ended, per
 * thread, from a weft thread outside the group on the default workers.
 *
 * Baseline: 10,000 pthreads (64 KiB stacks) blocked in read(2) on pipes
 * nobody writes to (100 readers per pipe), ended the way pthreads allow:
 * pthread_cancel for each (read is a cancellation point), then
 * pthread_join for each; the time from the first cancel to the last join,
 * per thread. 100,000 pthreads do not fit under most machines' pid_max,
 * so both weft figures are compared with the 10,000-pthread one.
 *
 * The threads are spawned, and seen to have started, before the clock
 * starts; a short sleep then lets the last of them block. Reported: the
 * best of 3 runs after 1 warm-up, each from fresh threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define PER_FD 100

static int started;  /* atomic */
static int bad;      /* atomic: a result other than -ECANCELED */

static void *weft_blocked(void *arg)
{
    int fd = (int)(intptr_t)arg;
    __atomic_fetch_add(&started, 1, __ATOMIC_RELAXED);
    char c;
    long r = fd >= 0 ? weft_read(fd, &c, 1, WEFT_FOREVER) : weft_sleep(WEFT_FOREVER);
    if (r != -ECANCELED)
        __atomic_fetch_add(&bad, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void wait_started(long n)
{
    while (__atomic_load_n(&started, __ATOMIC_RELAXED) < n)
        weft_sleep(weft_after(WEFT_MS(1)));
    weft_sleep(weft_after(WEFT_MS(20)));
}

static double weft_stop_run(void *arg)
{
    long n = *(long *)arg;
    long npairs = (n / 2 + PER_FD - 1) / PER_FD;
    int (*sv)[2] = malloc((size_t)npairs * sizeof *sv);
    BENCH_CHECK(sv != NULL, "malloc");
    for (long p = 0; p < npairs; p++)
        BENCH_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[p]) == 0,
                    "socketpair: %s", strerror(errno));
    weft_group_t *g;
    BENCH_CHECK(weft_group_new(&g, NULL) == 0, "weft_group_new");
    weft_attr at = {.group = g};
    __atomic_store_n(&started, 0, __ATOMIC_RELAXED);
    for (long i = 0; i < n; i++) {
        int fd = i % 2 ? sv[(i / 2) % npairs][0] : -1;
        int rc = weft_spawn(NULL, weft_blocked, (void *)(intptr_t)fd, &at);
        BENCH_CHECK(rc == 0, "weft_spawn: %d", rc);
    }
    wait_started(n);

    int64_t t0 = bench_now();
    BENCH_CHECK(weft_group_stop(g, 0) == 0, "weft_group_stop");
    BENCH_CHECK(weft_group_wait(g, WEFT_FOREVER) == 0, "weft_group_wait");
    int64_t t1 = bench_now();

    BENCH_CHECK(__atomic_load_n(&bad, __ATOMIC_RELAXED) == 0, "%d threads not cancelled", bad);
    BENCH_CHECK(weft_group_free(g) == 0, "weft_group_free");
    for (long p = 0; p < npairs; p++) {
        weft_close(sv[p][0]);
        weft_close(sv[p][1]);
    }
    free(sv);
    return (double)(t1 - t0) / (double)n;
}

/* ---- the baseline ------------------------------------------------------- */

static void *pthread_blocked(void *arg)
{
    int fd = (int)(intptr_t)arg;
    __atomic_fetch_add(&started, 1, __ATOMIC_RELAXED);
    char c;
    for (;;)
        if (read(fd, &c, 1) >= 0) /* a cancellation point; nobody writes */
            break;
    __atomic_fetch_add(&bad, 1, __ATOMIC_RELAXED);
    return NULL;
}

static double pthread_stop_run(void *arg)
{
    long n = *(long *)arg;
    long npipes = (n + PER_FD - 1) / PER_FD;
    int (*fds)[2] = malloc((size_t)npipes * sizeof *fds);
    pthread_t *t = malloc((size_t)n * sizeof *t);
    BENCH_CHECK(fds && t, "malloc");
    for (long p = 0; p < npipes; p++)
        BENCH_CHECK(pipe(fds[p]) == 0, "pipe: %s", strerror(errno));
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    __atomic_store_n(&started, 0, __ATOMIC_RELAXED);
    for (long i = 0; i < n; i++) {
        int rc = pthread_create(&t[i], &a, pthread_blocked, (void *)(intptr_t)fds[i % npipes][0]);
        BENCH_CHECK(rc == 0, "pthread_create (thread %ld): %s", i, strerror(rc));
    }
    while (__atomic_load_n(&started, __ATOMIC_RELAXED) < n)
        usleep(1000);
    usleep(20000);

    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++)
        pthread_cancel(t[i]);
    for (long i = 0; i < n; i++) {
        void *res;
        pthread_join(t[i], &res);
        BENCH_CHECK(res == PTHREAD_CANCELED, "thread %ld was not cancelled", i);
    }
    int64_t t1 = bench_now();

    BENCH_CHECK(__atomic_load_n(&bad, __ATOMIC_RELAXED) == 0, "a read returned");
    pthread_attr_destroy(&a);
    for (long p = 0; p < npipes; p++) {
        close(fds[p][0]);
        close(fds[p][1]);
    }
    free(fds);
    free(t);
    return (double)(t1 - t0) / (double)n;
}

int main(void)
{
    bench_header("stop: from weft_group_stop to weft_group_wait returning, ns per thread, "
                 "beside pthread_cancel + pthread_join",
                 "best of 3 after 1 warm-up");
    long big = bench_size(100000, 1000), small = bench_size(10000, 100);
    char note[256];
    snprintf(note, sizeof note,
             "stop_100k: %ld weft threads; stop_10k: %ld weft threads and %ld pthreads; "
             "half read a socket, half sleep (pthreads: all read a pipe)",
             big, small, small);
    bench_note(note);
    double w10 = bench_best_in_weft(weft_stop_run, &small, 3);
    bench_print("stop_10k.weft", w10, "ns/thread");
    double w100 = bench_best_in_weft(weft_stop_run, &big, 3);
    bench_print("stop_100k.weft", w100, "ns/thread");
    double p10 = bench_best(pthread_stop_run, &small, 3);
    bench_print("stop_10k.pthread", p10, "ns/thread");
    bench_ratio("stop_10k.ratio", w10, p10, "pthread/weft per thread; target at least 20");
    bench_ratio("stop_100k.ratio", w100, p10,
                "10k-pthread/100k-weft per thread; target at least 20");
    return 0;
}
