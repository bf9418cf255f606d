/*
 * sync: weft's mutex and condition variable beside pthread's.
 *
 *   mutex_uncontended   lock + unlock by one thread, ns per pair
 *   mutex_contended_N   N threads each incrementing a shared counter under
 *                       the mutex, total increments per second (N = 2, 8;
 *                       weft: N user threads on the default workers;
 *                       pthread: N kernel threads)
 *   cond_pingpong       two threads passing a turn back and forth through a
 *                       mutex and a condition variable, ns per round trip
 *
 * Every run checks its result (the counter, the turns), so a broken lock
 * fails the benchmark instead of producing a fast figure.
 */
#include "bench.h"

#include <pthread.h>
#include <string.h>

/* ---- uncontended ---- */

static double weft_uncontended(void *arg)
{
    long n = *(long *)arg;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        weft_mutex_lock(&m);
        __asm__ __volatile__("" ::: "memory");
        weft_mutex_unlock(&m);
    }
    int64_t t1 = bench_now();
    BENCH_CHECK(weft_mutex_destroy(&m) == 0, "mutex left locked");
    return (double)(t1 - t0) / (double)n;
}

static double pthread_uncontended(void *arg)
{
    long n = *(long *)arg;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&m);
        __asm__ __volatile__("" ::: "memory");
        pthread_mutex_unlock(&m);
    }
    int64_t t1 = bench_now();
    return (double)(t1 - t0) / (double)n;
}

/* ---- contended counter ---- */

struct counter {
    weft_mutex_t wm;
    pthread_mutex_t pm;
    long value;
    long per_thread;
};

static void *weft_incr(void *arg)
{
    struct counter *c = arg;
    for (long i = 0; i < c->per_thread; i++) {
        weft_mutex_lock(&c->wm);
        c->value++;
        weft_mutex_unlock(&c->wm);
    }
    return NULL;
}

static void *pthread_incr(void *arg)
{
    struct counter *c = arg;
    for (long i = 0; i < c->per_thread; i++) {
        pthread_mutex_lock(&c->pm);
        c->value++;
        pthread_mutex_unlock(&c->pm);
    }
    return NULL;
}

struct contended {
    int threads;
    long per_thread;
};

/* Returns ns per increment (smaller is better, for bench_best). */
static double weft_contended(void *arg)
{
    struct contended *k = arg;
    struct counter c = {.wm = WEFT_MUTEX_INIT, .value = 0, .per_thread = k->per_thread};
    weft_t t[8];
    int64_t t0 = bench_now();
    for (int i = 0; i < k->threads; i++)
        BENCH_CHECK(weft_spawn(&t[i], weft_incr, &c, NULL) == 0, "spawn");
    for (int i = 0; i < k->threads; i++)
        BENCH_CHECK(weft_join(t[i], NULL, WEFT_FOREVER) == 0, "join");
    int64_t t1 = bench_now();
    BENCH_CHECK(c.value == k->threads * k->per_thread, "counter %ld", c.value);
    return (double)(t1 - t0) / (double)c.value;
}

static double pthread_contended(void *arg)
{
    struct contended *k = arg;
    struct counter c = {.pm = PTHREAD_MUTEX_INITIALIZER, .value = 0, .per_thread = k->per_thread};
    pthread_t t[8];
    int64_t t0 = bench_now();
    for (int i = 0; i < k->threads; i++)
        BENCH_CHECK(pthread_create(&t[i], NULL, pthread_incr, &c) == 0, "create");
    for (int i = 0; i < k->threads; i++)
        BENCH_CHECK(pthread_join(t[i], NULL) == 0, "join");
    int64_t t1 = bench_now();
    BENCH_CHECK(c.value == k->threads * k->per_thread, "counter %ld", c.value);
    return (double)(t1 - t0) / (double)c.value;
}

/* ---- condvar ping-pong ---- */

struct turns {
    weft_mutex_t wm;
    weft_cond_t wc;
    pthread_mutex_t pm;
    pthread_cond_t pc;
    long turn, rounds;
    int me[2];
};

struct player {
    struct turns *t;
    int me;
};

static void *weft_play(void *arg)
{
    struct player *p = arg;
    struct turns *t = p->t;
    weft_mutex_lock(&t->wm);
    while (t->turn < 2 * t->rounds) {
        if (t->turn % 2 == p->me) {
            t->turn++;
            weft_cond_signal(&t->wc);
        } else {
            weft_cond_wait(&t->wc, &t->wm, WEFT_FOREVER);
        }
    }
    weft_cond_signal(&t->wc);
    weft_mutex_unlock(&t->wm);
    return NULL;
}

static void *pthread_play(void *arg)
{
    struct player *p = arg;
    struct turns *t = p->t;
    pthread_mutex_lock(&t->pm);
    while (t->turn < 2 * t->rounds) {
        if (t->turn % 2 == p->me) {
            t->turn++;
            pthread_cond_signal(&t->pc);
        } else {
            pthread_cond_wait(&t->pc, &t->pm);
        }
    }
    pthread_cond_signal(&t->pc);
    pthread_mutex_unlock(&t->pm);
    return NULL;
}

static double weft_pingpong(void *arg)
{
    struct turns t = {.wm = WEFT_MUTEX_INIT, .wc = WEFT_COND_INIT, .turn = 0,
                      .rounds = *(long *)arg};
    struct player a = {&t, 0}, b = {&t, 1};
    weft_t ta, tb;
    int64_t t0 = bench_now();
    BENCH_CHECK(weft_spawn(&ta, weft_play, &a, NULL) == 0, "spawn");
    BENCH_CHECK(weft_spawn(&tb, weft_play, &b, NULL) == 0, "spawn");
    BENCH_CHECK(weft_join(ta, NULL, WEFT_FOREVER) == 0, "join");
    BENCH_CHECK(weft_join(tb, NULL, WEFT_FOREVER) == 0, "join");
    int64_t t1 = bench_now();
    BENCH_CHECK(t.turn == 2 * t.rounds, "turns %ld", t.turn);
    return (double)(t1 - t0) / (double)t.rounds;
}

static double pthread_pingpong(void *arg)
{
    struct turns t = {.pm = PTHREAD_MUTEX_INITIALIZER, .pc = PTHREAD_COND_INITIALIZER, .turn = 0,
                      .rounds = *(long *)arg};
    struct player a = {&t, 0}, b = {&t, 1};
    pthread_t ta, tb;
    int64_t t0 = bench_now();
    BENCH_CHECK(pthread_create(&ta, NULL, pthread_play, &a) == 0, "create");
    BENCH_CHECK(pthread_create(&tb, NULL, pthread_play, &b) == 0, "create");
    BENCH_CHECK(pthread_join(ta, NULL) == 0, "join");
    BENCH_CHECK(pthread_join(tb, NULL) == 0, "join");
    int64_t t1 = bench_now();
    BENCH_CHECK(t.turn == 2 * t.rounds, "turns %ld", t.turn);
    return (double)(t1 - t0) / (double)t.rounds;
}

int main(void)
{
    bench_header("sync: mutex and condition variable, weft (user threads on the default "
                 "workers) beside pthread (kernel threads)",
                 "best of 5 runs after 1 warm-up");

    long un = bench_size(20000000, 100000);
    double w = bench_best_in_weft(weft_uncontended, &un, 5);
    double b = bench_best(pthread_uncontended, &un, 5);
    bench_print("mutex_uncontended.weft", w, "ns/lock+unlock");
    bench_print("mutex_uncontended.pthread", b, "ns/lock+unlock");
    bench_ratio("mutex_uncontended.ratio", w, b, "pthread/weft");

    static const int counts[] = {2, 8};
    for (int i = 0; i < 2; i++) {
        /* Ten million increments: some 150-200 ms of pthreads. In a short
         * run the kernel now and then keeps both pthreads on one CPU for
         * most of it, and the best of 5 then measured a lock nobody
         * contended (2M increments gave pthreads 56 or 110 Mops/s from one
         * run to the next). */
        struct contended k = {counts[i], bench_size(10000000, 10000) / counts[i]};
        char name[64];
        w = bench_best_in_weft(weft_contended, &k, 5);
        b = bench_best(pthread_contended, &k, 5);
        snprintf(name, sizeof name, "mutex_contended_%d.weft", counts[i]);
        bench_print(name, 1e3 / w, "Mops/s");
        snprintf(name, sizeof name, "mutex_contended_%d.pthread", counts[i]);
        bench_print(name, 1e3 / b, "Mops/s");
        snprintf(name, sizeof name, "mutex_contended_%d.ratio", counts[i]);
        bench_ratio(name, w, b, "weft/pthread throughput");
    }

    long pw = bench_size(200000, 1000), pp = bench_size(20000, 1000);
    w = bench_best_in_weft(weft_pingpong, &pw, 5);
    b = bench_best(pthread_pingpong, &pp, 5);
    bench_print("cond_pingpong.weft", w, "ns/roundtrip");
    bench_print("cond_pingpong.pthread", b, "ns/roundtrip");
    bench_ratio("cond_pingpong.ratio", w, b, "pthread/weft");
    return 0;
}
