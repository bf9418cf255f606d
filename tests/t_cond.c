/*
 * t_cond: weft_cond_* semantics and errors, and wake-ups under stress.
 *
 *   errors      NULL, wait without holding the mutex (-EPERM, no wait),
 *               a past deadline (-ETIMEDOUT at once, still holding), a
 *               deadline that passes (-ETIMEDOUT no earlier, holding),
 *               destroy with a waiter (-EBUSY)
 *   one         a signal wakes exactly one of several waiters, a broadcast
 *               all of them; signalling nobody is a no-op
 *   handoffs    100,000 turns passed back and forth between two threads
 *               through a condition variable: a lost wake-up hangs (and
 *               the runner's timeout fails it); weft thread with weft
 *               thread, and weft thread with a pthread
 *   buffer      a bounded buffer (mutex + two condition variables), 8
 *               producers and 8 consumers, every item exactly once
 *               (sum, xor and a seen bitmap), on 1, 2 and 8 workers, and
 *               with pthreads among the producers and consumers
 */
#include "check.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static void relax(void)
{
    if (weft_self())
        weft_yield();
    else
        sched_yield();
}

/* ---- errors ---- */

static weft_mutex_t em = WEFT_MUTEX_INIT;
static weft_cond_t ec = WEFT_COND_INIT;
static int ewaiting;

static void *long_waiter(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_lock(&em), 0);
    ewaiting = 1;
    while (ewaiting == 1)
        CHECK_ERR(weft_cond_wait(&ec, &em, WEFT_FOREVER), 0);
    CHECK_ERR(weft_mutex_unlock(&em), 0);
    return NULL;
}

static void errors(void)
{
    weft_mutex_t m = WEFT_MUTEX_INIT;
    weft_cond_t c;
    CHECK_ERR(weft_cond_init(NULL), -EINVAL);
    CHECK_ERR(weft_cond_init(&c), 0);
    CHECK_ERR(weft_cond_wait(NULL, &m, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_cond_wait(&c, NULL, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_cond_signal(NULL), -EINVAL);
    CHECK_ERR(weft_cond_broadcast(NULL), -EINVAL);
    CHECK_ERR(weft_cond_wait(&c, &m, WEFT_FOREVER), -EPERM);
    CHECK_ERR(weft_cond_signal(&c), 0);
    CHECK_ERR(weft_cond_broadcast(&c), 0);

    CHECK_ERR(weft_mutex_lock(&m), 0);
    CHECK_ERR(weft_cond_wait(&c, &m, 0), -ETIMEDOUT);
    CHECK_ERR(weft_mutex_trylock(&m), -EBUSY); /* still ours */
    int64_t d = weft_after(WEFT_MS(20));
    CHECK_ERR(weft_cond_wait(&c, &m, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    CHECK_ERR(weft_mutex_unlock(&m), 0); /* we held it again */
    CHECK_ERR(weft_cond_destroy(&c), 0);

    weft_t t;
    CHECK_ERR(weft_spawn(&t, long_waiter, NULL, NULL), 0);
    for (;;) {
        CHECK_ERR(weft_mutex_lock(&em), 0);
        int w = ewaiting;
        CHECK_ERR(weft_mutex_unlock(&em), 0);
        if (w)
            break;
        relax();
    }
    /* It waits (it released em inside wait, and set ewaiting before). */
    CHECK_ERR(weft_cond_destroy(&ec), -EBUSY);
    CHECK_ERR(weft_mutex_lock(&em), 0);
    ewaiting = 2;
    CHECK_ERR(weft_cond_signal(&ec), 0);
    CHECK_ERR(weft_mutex_unlock(&em), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_cond_destroy(&ec), 0);
    printf("errors: ok\n");
}

/* ---- exactly one per signal ---- */

#define ONE_WAITERS 8
static weft_mutex_t om = WEFT_MUTEX_INIT;
static weft_cond_t oc = WEFT_COND_INIT;
static int owaiting, owoken;

/* Counts itself waiting, then one wait: a wake-up is a signal that chose it. */
static void *one_waiter(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_lock(&om), 0);
    owaiting++;
    CHECK_ERR(weft_cond_wait(&oc, &om, WEFT_FOREVER), 0);
    owoken++;
    CHECK_ERR(weft_mutex_unlock(&om), 0);
    return NULL;
}

static void *p_one_waiter(void *arg)
{
    return one_waiter(arg);
}

static int read_locked(int *p)
{
    CHECK_ERR(weft_mutex_lock(&om), 0);
    int v = *p;
    CHECK_ERR(weft_mutex_unlock(&om), 0);
    return v;
}

static void one(void)
{
    weft_t t[ONE_WAITERS];
    pthread_t p[2];
    for (int i = 0; i < ONE_WAITERS; i++)
        CHECK_ERR(weft_spawn(&t[i], one_waiter, NULL, NULL), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_create(&p[i], NULL, p_one_waiter, NULL), 0);
    while (read_locked(&owaiting) < ONE_WAITERS + 2)
        relax();
    for (int k = 1; k <= 3; k++) {
        CHECK_ERR(weft_cond_signal(&oc), 0);
        while (read_locked(&owoken) < k)
            relax();
        for (int i = 0; i < 1000; i++)
            relax();
        CHECK_EQ(read_locked(&owoken), k); /* one signal, one wake-up */
    }
    CHECK_ERR(weft_cond_broadcast(&oc), 0);
    for (int i = 0; i < ONE_WAITERS; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_join(p[i], NULL), 0);
    CHECK_EQ(owoken, ONE_WAITERS + 2);
    printf("one: 3 signals woke 3 waiters of %d, a broadcast the rest\n", ONE_WAITERS + 2);
}

/* ---- hand-offs ---- */

struct turns {
    weft_mutex_t m;
    weft_cond_t c;
    long turn;   /* even: player 0 moves; odd: player 1 */
    long rounds;
};

struct player {
    struct turns *t;
    int me;
};

static void *play(void *arg)
{
    struct player *p = arg;
    struct turns *t = p->t;
    CHECK_ERR(weft_mutex_lock(&t->m), 0);
    for (;;) {
        while (t->turn < 2 * t->rounds && t->turn % 2 != p->me)
            CHECK_ERR(weft_cond_wait(&t->c, &t->m, WEFT_FOREVER), 0);
        if (t->turn >= 2 * t->rounds)
            break;
        t->turn++;
        CHECK_ERR(weft_cond_signal(&t->c), 0);
    }
    CHECK_ERR(weft_mutex_unlock(&t->m), 0);
    return NULL;
}

static void *p_play(void *arg)
{
    return play(arg);
}

static void handoffs(int with_pthread)
{
    struct turns t = {WEFT_MUTEX_INIT, WEFT_COND_INIT, 0, test_scale(100000)};
    struct player a = {&t, 0}, b = {&t, 1};
    weft_t ta, tb;
    pthread_t pb;
    CHECK_ERR(weft_spawn(&ta, play, &a, NULL), 0);
    if (with_pthread)
        CHECK_EQ(pthread_create(&pb, NULL, p_play, &b), 0);
    else
        CHECK_ERR(weft_spawn(&tb, play, &b, NULL), 0);
    CHECK_ERR(weft_join(ta, NULL, WEFT_FOREVER), 0);
    if (with_pthread)
        CHECK_EQ(pthread_join(pb, NULL), 0);
    else
        CHECK_ERR(weft_join(tb, NULL, WEFT_FOREVER), 0);
    CHECK_EQ(t.turn, 2 * t.rounds);
    printf("handoffs: %ld round trips, %s: ok\n", t.rounds,
           with_pthread ? "weft thread and pthread" : "two weft threads");
}

/* ---- bounded buffer ---- */

#define CAP 16
#define PRODUCERS 8
#define CONSUMERS 8

struct buffer {
    weft_mutex_t m;
    weft_cond_t not_empty, not_full;
    long items[CAP];
    int head, count;
    int producers_left;
    long per_producer;
    uint8_t *seen;       /* one byte per item, under m */
    uint64_t sum, xor;   /* of consumed items, under m */
};

static void *producer(void *arg)
{
    struct buffer *b = arg;
    static int next_id;
    int id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED) % PRODUCERS;
    for (long i = 0; i < b->per_producer; i++) {
        long item = id * b->per_producer + i;
        CHECK_ERR(weft_mutex_lock(&b->m), 0);
        while (b->count == CAP)
            CHECK_ERR(weft_cond_wait(&b->not_full, &b->m, WEFT_FOREVER), 0);
        b->items[(b->head + b->count) % CAP] = item;
        b->count++;
        CHECK_ERR(weft_cond_signal(&b->not_empty), 0);
        CHECK_ERR(weft_mutex_unlock(&b->m), 0);
    }
    CHECK_ERR(weft_mutex_lock(&b->m), 0);
    if (--b->producers_left == 0)
        CHECK_ERR(weft_cond_broadcast(&b->not_empty), 0);
    CHECK_ERR(weft_mutex_unlock(&b->m), 0);
    return NULL;
}

static void *consumer(void *arg)
{
    struct buffer *b = arg;
    CHECK_ERR(weft_mutex_lock(&b->m), 0);
    for (;;) {
        while (b->count == 0 && b->producers_left > 0)
            CHECK_ERR(weft_cond_wait(&b->not_empty, &b->m, WEFT_FOREVER), 0);
        if (b->count == 0)
            break;
        long item = b->items[b->head];
        b->head = (b->head + 1) % CAP;
        b->count--;
        CHECK_EQ(b->seen[item], 0);
        b->seen[item] = 1;
        b->sum += (uint64_t)item;
        b->xor ^= (uint64_t)item * 0x9e3779b97f4a7c15ull;
        CHECK_ERR(weft_cond_signal(&b->not_full), 0);
    }
    CHECK_ERR(weft_mutex_unlock(&b->m), 0);
    return NULL;
}

static void *p_producer(void *arg) { return producer(arg); }
static void *p_consumer(void *arg) { return consumer(arg); }

/* pthreads: how many producers and consumers are pthreads. */
static void buffer_run(void *arg)
{
    int pthreads = (int)P2U(arg);
    struct buffer b = {.m = WEFT_MUTEX_INIT, .not_empty = WEFT_COND_INIT,
                       .not_full = WEFT_COND_INIT, .producers_left = PRODUCERS,
                       .per_producer = test_scale(20000)};
    long n = PRODUCERS * b.per_producer;
    b.seen = calloc((size_t)n, 1);
    CHECK(b.seen != NULL);
    weft_t t[PRODUCERS + CONSUMERS];
    pthread_t p[PRODUCERS + CONSUMERS];
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        bool prod = i < PRODUCERS;
        bool kernel = (prod ? i : i - PRODUCERS) < pthreads;
        if (kernel)
            CHECK_EQ(pthread_create(&p[i], NULL, prod ? p_producer : p_consumer, &b), 0);
        else
            CHECK_ERR(weft_spawn(&t[i], prod ? producer : consumer, &b, NULL), 0);
    }
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        bool kernel = (i < PRODUCERS ? i : i - PRODUCERS) < pthreads;
        if (kernel)
            CHECK_EQ(pthread_join(p[i], NULL), 0);
        else
            CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    }
    uint64_t sum = 0, xor = 0;
    for (long i = 0; i < n; i++) {
        CHECK_EQ(b.seen[i], 1);
        sum += (uint64_t)i;
        xor ^= (uint64_t)i * 0x9e3779b97f4a7c15ull;
    }
    CHECK(b.sum == sum && b.xor == xor);
    free(b.seen);
}

static void buffer(void)
{
    static const int workers[] = {1, 2, 8};
    for (int i = 0; i < 3; i++) {
        check_with_workers(workers[i], buffer_run, U2P(0));
        printf("buffer: %d producers, %d consumers on %d workers: ok\n", PRODUCERS, CONSUMERS,
               workers[i]);
    }
    check_with_workers(2, buffer_run, U2P(2));
    printf("buffer: 2 of each are pthreads: ok\n");
}

int main(void)
{
    buffer(); /* children first, before this process starts weft */
    errors();
    one();
    handoffs(0);
    handoffs(1);
    return 0;
}
