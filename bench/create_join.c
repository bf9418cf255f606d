/*
 * create_join - what it costs to start a thread and collect its result.
 *
 * Two figures, each in ns per thread, weft against pthreads in the same run:
 *
 *  create_join_1by1   one at a time: spawn a thread that returns a value,
 *                     join it, repeat. weft: from inside a weft thread with
 *                     weft_spawn + weft_join. Baseline: pthread_create +
 *                     pthread_join from a plain kernel thread (main).
 *  create_join_batch  10,000 threads spawned, then all joined, repeated.
 *                     Same pair of calls on each side.
 *
 * Both sides use their defaults (weft_spawn with attr NULL: 64 KiB stacks;
 * pthread_create with attr NULL: glibc's 8 MiB stacks), as a user would.
 * Each thread returns arg + 1 and the sum of results is checked, so neither
 * side can skip work. Reported: the best of a few runs after one warm-up.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "bench.h"

#define BATCH_MAX 10000

static void *child(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

struct size {
    long n;     /* threads per run (1by1) or per batch (batch) */
    long loops; /* batches per run (batch only) */
};

/* Sum of i + 1 for i in [0, n). */
static uintptr_t expected_sum(long n)
{
    return (uintptr_t)n * (uintptr_t)(n + 1) / 2;
}

/* ---- weft (these run inside a weft thread) ------------------------------- */

static double weft_1by1(void *p)
{
    const struct size *sz = p;
    uintptr_t sum = 0;
    int64_t t0 = bench_now();
    for (long i = 0; i < sz->n; i++) {
        weft_t t;
        void *r;
        int rc = weft_spawn(&t, child, (void *)(uintptr_t)i, NULL);
        BENCH_CHECK(rc == 0, "weft_spawn: %d", rc);
        rc = weft_join(t, &r, WEFT_FOREVER);
        BENCH_CHECK(rc == 0, "weft_join: %d", rc);
        sum += (uintptr_t)r;
    }
    int64_t t1 = bench_now();
    BENCH_CHECK(sum == expected_sum(sz->n), "sum %ju", (uintmax_t)sum);
    return (double)(t1 - t0) / (double)sz->n;
}

static weft_t weft_batch_handles[BATCH_MAX];

static double weft_batch(void *p)
{
    const struct size *sz = p;
    int64_t t0 = bench_now();
    for (long l = 0; l < sz->loops; l++) {
        uintptr_t sum = 0;
        for (long i = 0; i < sz->n; i++) {
            int rc = weft_spawn(&weft_batch_handles[i], child, (void *)(uintptr_t)i, NULL);
            BENCH_CHECK(rc == 0, "weft_spawn #%ld: %d", i, rc);
        }
        for (long i = 0; i < sz->n; i++) {
            void *r;
            int rc = weft_join(weft_batch_handles[i], &r, WEFT_FOREVER);
            BENCH_CHECK(rc == 0, "weft_join #%ld: %d", i, rc);
            sum += (uintptr_t)r;
        }
        BENCH_CHECK(sum == expected_sum(sz->n), "sum %ju", (uintmax_t)sum);
    }
    int64_t t1 = bench_now();
    return (double)(t1 - t0) / (double)(sz->n * sz->loops);
}

/* ---- pthreads (these run on main) ---------------------------------------- */

static double pthread_1by1(void *p)
{
    const struct size *sz = p;
    uintptr_t sum = 0;
    int64_t t0 = bench_now();
    for (long i = 0; i < sz->n; i++) {
        pthread_t t;
        void *r;
        int rc = pthread_create(&t, NULL, child, (void *)(uintptr_t)i);
        BENCH_CHECK(rc == 0, "pthread_create: %s", strerror(rc));
        rc = pthread_join(t, &r);
        BENCH_CHECK(rc == 0, "pthread_join: %s", strerror(rc));
        sum += (uintptr_t)r;
    }
    int64_t t1 = bench_now();
    BENCH_CHECK(sum == expected_sum(sz->n), "sum %ju", (uintmax_t)sum);
    return (double)(t1 - t0) / (double)sz->n;
}

static pthread_t pthread_batch_handles[BATCH_MAX];

static double pthread_batch(void *p)
{
    const struct size *sz = p;
    int64_t t0 = bench_now();
    for (long l = 0; l < sz->loops; l++) {
        uintptr_t sum = 0;
        for (long i = 0; i < sz->n; i++) {
            int rc = pthread_create(&pthread_batch_handles[i], NULL, child, (void *)(uintptr_t)i);
            BENCH_CHECK(rc == 0, "pthread_create #%ld: %s", i, strerror(rc));
        }
        for (long i = 0; i < sz->n; i++) {
            void *r;
            int rc = pthread_join(pthread_batch_handles[i], &r);
            BENCH_CHECK(rc == 0, "pthread_join #%ld: %s", i, strerror(rc));
            sum += (uintptr_t)r;
        }
        BENCH_CHECK(sum == expected_sum(sz->n), "sum %ju", (uintmax_t)sum);
    }
    int64_t t1 = bench_now();
    return (double)(t1 - t0) / (double)(sz->n * sz->loops);
}

int main(void)
{
    const int weft_reps = 5, pthread_reps = 3;
    long batch = bench_size(BATCH_MAX, 100);
    if (batch > BATCH_MAX)
        batch = BATCH_MAX;

    bench_header("create_join: spawn + join, ns per thread (weft: default workers, "
                 "from a weft thread; pthread: attr NULL, from main)",
                 "best of 5 runs (pthread: 3) after 1 warm-up");

    struct size w1 = {bench_size(1000000, 1000), 1};
    struct size p1 = {bench_size(20000, 100), 1};
    double w = bench_best_in_weft(weft_1by1, &w1, weft_reps);
    bench_faults_note("create_join_1by1.weft", w1.n);
    double b = bench_best(pthread_1by1, &p1, pthread_reps);
    bench_print("create_join_1by1.weft", w, "ns/thread");
    bench_print("create_join_1by1.pthread", b, "ns/thread");
    bench_ratio("create_join_1by1.ratio", w, b, "pthread/weft");

    struct size wb = {batch, bench_size(20, 1)};
    struct size pb = {batch, 1};
    w = bench_best_in_weft(weft_batch, &wb, weft_reps);
    bench_faults_note("create_join_batch.weft", wb.n * wb.loops);
    b = bench_best(pthread_batch, &pb, pthread_reps);
    bench_print("create_join_batch.weft", w, "ns/thread");
    bench_print("create_join_batch.pthread", b, "ns/thread");
    bench_ratio("create_join_batch.ratio", w, b, "pthread/weft");
    return 0;
}
