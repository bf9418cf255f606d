/*
 * t_sleep: weft_sleep.
 *
 *   past        a deadline already past (0, now - 1 s) returns 0 at once
 *   not early   weft threads and a pthread sleeping 1..20 ms wake no
 *               earlier than their deadlines
 *   order       on one worker, threads spawned in shuffled order with
 *               deadlines 10 ms apart wake in deadline order (those that
 *               first ran after their deadline, on a loaded machine, do
 *               not count; a round where most did is run again)
 *   overlap     a sleeping thread does not hold its worker: on one worker,
 *               100 threads sleep 50 ms each while a counting thread keeps
 *               running, and each sleeper sees the count move during its
 *               own sleep
 *   far         a sleep to weft_after(INT64_MAX) while every worker idles,
 *               ended by a stop
 *   many        100,000 threads sleeping at once, all woken, none early
 */
#include "check.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static void past(void)
{
    CHECK_ERR(weft_sleep(0), 0);
    CHECK_ERR(weft_sleep(weft_now() - WEFT_SEC(1)), 0);
    CHECK_ERR(weft_sleep(weft_now()), 0);
}

static void *sleeper(void *arg)
{
    int64_t d = (int64_t)P2U(arg);
    CHECK_ERR(weft_sleep(d), 0);
    CHECK(weft_now() >= d);
    return NULL;
}

static void *past_thread(void *arg)
{
    (void)arg;
    past();
    return NULL;
}

/* weft_after saturates instead of wrapping: a huge delay is still a far
 * deadline, a huge negative one a past deadline, and neither turns into a
 * negative value, which would mean no deadline at all. */
static void after_saturates(void)
{
    CHECK_EQ(weft_after(INT64_MAX), INT64_MAX);
    CHECK_EQ(weft_after(INT64_MAX - 1), INT64_MAX);
    int64_t past = weft_after(INT64_MIN);
    CHECK(past >= 0 && past <= weft_now());
    CHECK_ERR(weft_sleep(past), 0);
    int64_t before = weft_now();
    int64_t d = weft_after(WEFT_SEC(1));
    CHECK(d >= before + WEFT_SEC(1));
    printf("weft_after saturates: ok\n");
}

static void not_early(void)
{
    past();
    weft_t t[20];
    for (int i = 0; i < 20; i++)
        CHECK_ERR(weft_spawn(&t[i], sleeper, U2P(weft_after(WEFT_MS(i + 1))), NULL), 0);
    weft_t p;
    CHECK_ERR(weft_spawn(&p, past_thread, NULL, NULL), 0);
    pthread_t k;
    CHECK_EQ(pthread_create(&k, NULL, sleeper, U2P(weft_after(WEFT_MS(5)))), 0);
    sleeper(U2P(weft_after(WEFT_MS(3)))); /* main */
    for (int i = 0; i < 20; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(p, NULL, WEFT_FOREVER), 0);
    CHECK_EQ(pthread_join(k, NULL), 0);
    printf("not early: 20 weft threads, a pthread and main: ok\n");
}

/* ---- order ---- */

#define ORDER_N 16
static int order_seq;
static int order_seen[ORDER_N];
static bool order_late[ORDER_N]; /* its deadline had passed when it slept */

static void *order_sleeper(void *arg)
{
    uintptr_t v = P2U(arg);
    int idx = (int)(v & 0xff);
    int64_t d = (int64_t)(v >> 8);
    order_late[idx] = weft_now() >= d;
    CHECK_ERR(weft_sleep(d), 0);
    order_seen[idx] = order_seq++; /* one worker: no race */
    return NULL;
}

/* One round; returns how many sleepers were too late to take part (on a
 * loaded machine a sleeper may first run after its deadline, and then
 * returns at once: its place in the order says nothing). The others must
 * wake in deadline order. */
static int order_round(void)
{
    order_seq = 0;
    int64_t base = weft_after(WEFT_MS(20));
    weft_t t[ORDER_N];
    for (int i = 0; i < ORDER_N; i++) {
        int idx = (i * 7) % ORDER_N; /* shuffled: 7 is coprime with 16 */
        int64_t d = base + WEFT_MS(10) * idx;
        CHECK_ERR(weft_spawn(&t[i], order_sleeper, U2P(((uintptr_t)d << 8) | (uintptr_t)idx), NULL),
                  0);
    }
    for (int i = 0; i < ORDER_N; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    int late = 0, prev = -1;
    for (int i = 0; i < ORDER_N; i++) {
        if (order_late[i]) {
            late++;
            continue;
        }
        CHECK(order_seen[i] > prev);
        prev = order_seen[i];
    }
    return late;
}

static void order_run(void *arg)
{
    (void)arg;
    /* A round where most sleepers were late proves little: try again. */
    int late = ORDER_N;
    for (int round = 0; round < 10 && late > ORDER_N / 2; round++)
        late = order_round();
    CHECK(late <= ORDER_N / 2);
}

/* ---- far ---- */

/* A deadline as far as weft_after goes (INT64_MAX) is a real timer in a
 * worker's heap: with every worker idle the monitor sets its alarm from
 * it (it once overflowed doing so, which UBSan reports). A stop ends the
 * sleep. */
static void *far_sleeper(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_sleep(weft_after(INT64_MAX));
}

static void far(void)
{
    weft_t t;
    CHECK_ERR(weft_spawn(&t, far_sleeper, NULL, NULL), 0);
    CHECK_ERR(weft_sleep(weft_after(WEFT_MS(200))), 0); /* every worker idle */
    CHECK_ERR(weft_stop(t, 0), 0);
    void *r;
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, -ECANCELED);
    printf("far: a sleep to INT64_MAX, ended by a stop: ok\n");
}

/* ---- overlap ---- */

static int stop_counting;
static uintptr_t counted; /* the counter's count so far, published as it goes */

static void *counter(void *arg)
{
    (void)arg;
    uintptr_t n = 0;
    while (!__atomic_load_n(&stop_counting, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&counted, ++n, __ATOMIC_RELAXED);
        weft_yield();
    }
    return U2P(n);
}

/* Returns whether the counter moved while this thread slept: on one
 * worker it can only if the sleep let the worker go. */
static void *nap(void *arg)
{
    (void)arg;
    uintptr_t before = __atomic_load_n(&counted, __ATOMIC_RELAXED);
    CHECK_ERR(weft_sleep(weft_after(WEFT_MS(50))), 0);
    return U2P(__atomic_load_n(&counted, __ATOMIC_RELAXED) != before);
}

static void overlap_run(void *arg)
{
    (void)arg;
    weft_t c, t[100];
    CHECK_ERR(weft_spawn(&c, counter, NULL, NULL), 0);
    int64_t t0 = weft_now();
    for (int i = 0; i < 100; i++)
        CHECK_ERR(weft_spawn(&t[i], nap, NULL, NULL), 0);
    for (int i = 0; i < 100; i++) {
        void *moved;
        CHECK_ERR(weft_join(t[i], &moved, WEFT_FOREVER), 0);
        CHECK(moved != NULL); /* the counter ran while this one slept */
    }
    int64_t took = weft_now() - t0;
    __atomic_store_n(&stop_counting, 1, __ATOMIC_RELEASE);
    void *n;
    CHECK_ERR(weft_join(c, &n, WEFT_FOREVER), 0);
    CHECK(P2U(n) > 0);
    printf("overlap: 100 threads x 50 ms on one worker took %.0f ms; the counter counted %lu\n",
           (double)took / 1e6, (unsigned long)P2U(n));
}

/* ---- many ---- */

static void many(void)
{
    long n = test_scale(100000);
    weft_t *t = malloc(sizeof(weft_t) * (size_t)n);
    CHECK(t != NULL);
    int64_t d = weft_after(WEFT_MS(200));
    weft_attr attr = {.stack_size = 16 * 1024, .name = "sleeper"};
    for (long i = 0; i < n; i++)
        CHECK_ERR(weft_spawn(&t[i], sleeper, U2P(d + (i % 100) * WEFT_US(100)), &attr), 0);
    for (long i = 0; i < n; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    free(t);
    printf("many: %ld threads slept at once: ok\n", n);
}

int main(void)
{
    check_with_workers(1, order_run, NULL);
    printf("order: %d sleepers on one worker woke in deadline order\n", ORDER_N);
    check_with_workers(1, overlap_run, NULL);
    after_saturates();
    far();
    not_early();
    many();
    return 0;
}
