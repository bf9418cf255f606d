/*
 * t_kernel_threads: plain kernel threads (main and pthreads) use weft like
 * weft threads do, blocking on a futex where a weft thread would park.
 *
 *  - main and four pthreads spawn and join weft threads at the same time,
 *    every result accounted; on a pthread weft_self() is 0 and weft_yield
 *    returns;
 *  - a pthread joins a weft thread that is parked, and the thread is woken
 *    by another weft thread; a pthread's join with a 10 ms deadline on it
 *    times out first (and weft_now() is past the deadline);
 *  - a weft thread joins a thread that a pthread spawned;
 *  - weft_park/weft_unpark between pthreads and weft threads: a turn passed
 *    back and forth between a pthread and a weft thread, and pthreads and
 *    weft threads parked on one word all woken by main, each exactly once.
 */
#include "check.h"

#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static uint64_t f(uint64_t i)
{
    return i * i + 5;
}

static void *child(void *arg)
{
    return U2P(f(P2U(arg)));
}

/* ---- concurrent spawn and join from kernel threads ---- */

#define KTHREADS 4
#define BATCH    100

struct range {
    uint64_t from, to, sum;
};

static void spawn_join_range(struct range *rg)
{
    weft_t t[BATCH];
    uint64_t sum = 0;
    for (uint64_t base = rg->from; base < rg->to; base += BATCH) {
        int n = (int)(rg->to - base < BATCH ? rg->to - base : BATCH);
        for (int k = 0; k < n; k++)
            CHECK_ERR(weft_spawn(&t[k], child, U2P(base + (uint64_t)k), NULL), 0);
        for (int k = 0; k < n; k++) {
            void *r;
            CHECK_ERR(weft_join(t[k], &r, WEFT_FOREVER), 0);
            CHECK_EQ(P2U(r), f(base + (uint64_t)k));
            sum += P2U(r);
        }
    }
    rg->sum = sum;
}

static void *kthread_spawner(void *arg)
{
    CHECK_EQ(weft_self(), 0);
    weft_yield();
    spawn_join_range(arg);
    CHECK_EQ(weft_self(), 0);
    return NULL;
}

static void test_concurrent_spawn(void)
{
    uint64_t per = (uint64_t)test_scale(20000);
    struct range rg[KTHREADS + 1];
    pthread_t pt[KTHREADS];
    for (int i = 0; i <= KTHREADS; i++)
        rg[i] = (struct range){.from = per * (uint64_t)i, .to = per * (uint64_t)(i + 1)};
    for (int i = 0; i < KTHREADS; i++)
        CHECK_EQ(pthread_create(&pt[i], NULL, kthread_spawner, &rg[i]), 0);
    spawn_join_range(&rg[KTHREADS]);
    uint64_t sum = rg[KTHREADS].sum, want = 0;
    for (int i = 0; i < KTHREADS; i++) {
        CHECK_EQ(pthread_join(pt[i], NULL), 0);
        sum += rg[i].sum;
    }
    for (uint64_t i = 0; i < per * (KTHREADS + 1); i++)
        want += f(i);
    CHECK_EQ(sum, want);
}

/* ---- a pthread joins a parked weft thread; a weft thread wakes it ---- */

static uint32_t wake_word;      /* the target parks until it is 1 */
static uint32_t joiner_waiting; /* the pthread is about to join */
static weft_t target;

static void *parked_target(void *arg)
{
    (void)arg;
    while (__atomic_load_n(&wake_word, __ATOMIC_ACQUIRE) == 0) {
        int r = weft_park(&wake_word, 0, WEFT_FOREVER);
        CHECK(r == 0 || r == -EAGAIN);
    }
    return U2P(4242);
}

static void *waker(void *arg)
{
    (void)arg;
    while (__atomic_load_n(&joiner_waiting, __ATOMIC_ACQUIRE) == 0)
        weft_park(&joiner_waiting, 0, WEFT_FOREVER);
    /* Give the pthread time to block in weft_join; correctness does not
     * depend on it, it only makes the interesting order the usual one. */
    int64_t until = weft_after(WEFT_MS(2));
    while (weft_now() < until)
        weft_yield();
    __atomic_store_n(&wake_word, 1, __ATOMIC_RELEASE);
    weft_unpark(&wake_word, 1);
    return NULL;
}

static void *pthread_joiner(void *arg)
{
    (void)arg;
    int64_t deadline = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_join(target, NULL, deadline), -ETIMEDOUT);
    CHECK(weft_now() >= deadline);
    __atomic_store_n(&joiner_waiting, 1, __ATOMIC_RELEASE);
    weft_unpark(&joiner_waiting, -1);
    void *r = NULL;
    CHECK_ERR(weft_join(target, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 4242);
    return NULL;
}

static void test_pthread_joins_parked(void)
{
    int rounds = (int)test_scale(50);
    for (int i = 0; i < rounds; i++) {
        wake_word = 0;
        joiner_waiting = 0;
        CHECK_ERR(weft_spawn(&target, parked_target, NULL, NULL), 0);
        weft_t w;
        CHECK_ERR(weft_spawn(&w, waker, NULL, NULL), 0);
        pthread_t pt;
        CHECK_EQ(pthread_create(&pt, NULL, pthread_joiner, NULL), 0);
        CHECK_EQ(pthread_join(pt, NULL), 0);
        CHECK_ERR(weft_join(w, NULL, WEFT_FOREVER), 0);
        CHECK_ERR(weft_join(target, NULL, 0), -ESRCH);
    }
}

/* ---- a weft thread joins a thread a pthread spawned ---- */

static weft_t spawned_by_pthread;

static void *pthread_spawns(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_spawn(&spawned_by_pthread, child, U2P(31), NULL), 0);
    return NULL;
}

static void *weft_joins(void *arg)
{
    (void)arg;
    void *r;
    CHECK_ERR(weft_join(spawned_by_pthread, &r, WEFT_FOREVER), 0);
    return r;
}

static void test_cross_join(void)
{
    pthread_t pt;
    CHECK_EQ(pthread_create(&pt, NULL, pthread_spawns, NULL), 0);
    CHECK_EQ(pthread_join(pt, NULL), 0);
    weft_t j;
    void *r;
    CHECK_ERR(weft_spawn(&j, weft_joins, NULL, NULL), 0);
    CHECK_ERR(weft_join(j, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), f(31));
}

/* ---- a turn passed between a pthread and a weft thread ---- */

static uint32_t turn;
static long pingpong_rounds;

static void take_turns(uint32_t me)
{
    for (long i = 0; i < pingpong_rounds; i++) {
        uint32_t v;
        while ((v = __atomic_load_n(&turn, __ATOMIC_ACQUIRE)) != me) {
            int r = weft_park(&turn, v, WEFT_FOREVER);
            CHECK(r == 0 || r == -EAGAIN);
        }
        __atomic_store_n(&turn, 1 - me, __ATOMIC_RELEASE);
        CHECK(weft_unpark(&turn, 1) <= 1);
    }
}

static void *pthread_side(void *arg)
{
    (void)arg;
    take_turns(0);
    return NULL;
}

static void *weft_side(void *arg)
{
    (void)arg;
    take_turns(1);
    return NULL;
}

static void test_pingpong(void)
{
    pingpong_rounds = test_scale(20000);
    turn = 0;
    pthread_t pt;
    weft_t wt;
    CHECK_ERR(weft_spawn(&wt, weft_side, NULL, NULL), 0);
    CHECK_EQ(pthread_create(&pt, NULL, pthread_side, NULL), 0);
    CHECK_EQ(pthread_join(pt, NULL), 0);
    CHECK_ERR(weft_join(wt, NULL, WEFT_FOREVER), 0);
    CHECK_EQ(turn, 0);
}

/* ---- pthreads and weft threads parked on one word ---- */

#define MIXED 8 /* of each kind */
static uint32_t gate, arrived, left;
static uint64_t parks_woken;

static void *gate_waiter(void *arg)
{
    (void)arg;
    __atomic_fetch_add(&arrived, 1, __ATOMIC_RELEASE);
    while (__atomic_load_n(&gate, __ATOMIC_ACQUIRE) == 0) {
        int r = weft_park(&gate, 0, WEFT_FOREVER);
        if (r == 0) {
            __atomic_fetch_add(&parks_woken, 1, __ATOMIC_RELAXED);
            CHECK_EQ(__atomic_load_n(&gate, __ATOMIC_ACQUIRE), 1);
        } else {
            CHECK_ERR(r, -EAGAIN);
        }
    }
    __atomic_fetch_add(&left, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_mixed_waiters(void)
{
    pthread_t pt[MIXED];
    weft_t wt[MIXED];
    for (int i = 0; i < MIXED; i++) {
        CHECK_EQ(pthread_create(&pt[i], NULL, gate_waiter, NULL), 0);
        CHECK_ERR(weft_spawn(&wt[i], gate_waiter, NULL, NULL), 0);
    }
    while (__atomic_load_n(&arrived, __ATOMIC_ACQUIRE) != 2 * MIXED)
        usleep(1000);
    usleep(20000); /* most are parked by now; nothing depends on it */
    __atomic_store_n(&gate, 1, __ATOMIC_RELEASE);
    uint64_t woken = 0;
    for (int ms = 0; __atomic_load_n(&left, __ATOMIC_ACQUIRE) != 2 * MIXED; ms++) {
        CHECK(ms < 60000);
        int r = weft_unpark(&gate, -1);
        CHECK(r >= 0 && r <= 2 * MIXED);
        woken += (uint64_t)r;
        usleep(1000);
    }
    woken += (uint64_t)weft_unpark(&gate, -1);
    for (int i = 0; i < MIXED; i++) {
        CHECK_EQ(pthread_join(pt[i], NULL), 0);
        CHECK_ERR(weft_join(wt[i], NULL, WEFT_FOREVER), 0);
    }
    CHECK_EQ(woken, parks_woken);
    printf("mixed waiters: %llu of %d woken by unpark\n", (unsigned long long)woken, 2 * MIXED);
}

int main(void)
{
    CHECK_EQ(weft_self(), 0);
    test_concurrent_spawn();
    test_pthread_joins_parked();
    test_cross_join();
    test_pingpong();
    test_mixed_waiters();
    CHECK_EQ(weft_self(), 0);
    return 0;
}
