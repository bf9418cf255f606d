/*
 * t_mutex: weft_mutex_* semantics, errors, exclusion under stress, and the
 * hand-off that keeps a waiter from starving.
 *
 *   errors      NULL, unlock of an unlocked mutex, unlock by a thread that
 *               does not hold it (a weft thread and a pthread), relock
 *               (-EDEADLK), trylock of a held mutex, destroy of a held one
 *   deadlines   a past deadline tries once; a deadline that passes returns
 *               -ETIMEDOUT no earlier than the deadline; one that does not
 *               pass returns the lock
 *   counter     64 threads x 100,000 increments of a plain counter under the
 *               mutex, exact, on 1, 2 and 8 workers (a child each)
 *   mixed       pthreads and weft threads incrementing under one mutex
 *   handoff     a waiter parked for over a millisecond is handed the mutex
 *               at the next unlock: the unlocker cannot take it back with
 *               trylock
 *   barging     a thread that retakes the mutex at once after every unlock
 *               does not starve a waiter (it yields now and then, so that
 *               the waiter gets to run at all: there is no preemption yet)
 */
#include "check.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static void *spawn_join(void *(*fn)(void *), void *arg)
{
    weft_t t;
    void *r;
    CHECK_ERR(weft_spawn(&t, fn, arg, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    return r;
}

/* Keeps the caller's worker busy (yielding) until weft_now() passes t. */
static void wait_until(int64_t t)
{
    while (weft_now() < t)
        weft_yield();
}

/* ---- errors ---- */

static weft_mutex_t em = WEFT_MUTEX_INIT;

static void *try_foreign(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_unlock(&em), -EPERM);
    CHECK_ERR(weft_mutex_trylock(&em), -EBUSY);
    CHECK_ERR(weft_mutex_timedlock(&em, 0), -ETIMEDOUT);
    int64_t d = weft_after(WEFT_MS(20));
    CHECK_ERR(weft_mutex_timedlock(&em, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    return U2P(1);
}

static void *pthread_foreign(void *arg)
{
    return try_foreign(arg);
}

static void errors(void)
{
    CHECK_ERR(weft_mutex_lock(NULL), -EINVAL);
    CHECK_ERR(weft_mutex_unlock(NULL), -EINVAL);
    CHECK_ERR(weft_mutex_trylock(NULL), -EINVAL);
    CHECK_ERR(weft_mutex_init(NULL), -EINVAL);
    CHECK_ERR(weft_mutex_destroy(NULL), -EINVAL);

    weft_mutex_t m;
    CHECK_ERR(weft_mutex_init(&m), 0);
    CHECK_ERR(weft_mutex_unlock(&m), -EPERM);
    CHECK_ERR(weft_mutex_lock(&m), 0);
    CHECK_ERR(weft_mutex_lock(&m), -EDEADLK);
    CHECK_ERR(weft_mutex_timedlock(&m, weft_after(WEFT_MS(1))), -EDEADLK);
    CHECK_ERR(weft_mutex_trylock(&m), -EBUSY);
    CHECK_ERR(weft_mutex_destroy(&m), -EBUSY);
    CHECK_ERR(weft_mutex_unlock(&m), 0);
    CHECK_ERR(weft_mutex_unlock(&m), -EPERM);
    CHECK_ERR(weft_mutex_destroy(&m), 0);
    CHECK_ERR(weft_mutex_trylock(&m), 0);
    CHECK_ERR(weft_mutex_unlock(&m), 0);

    /* Held by main (a kernel thread): a weft thread and a pthread may
     * neither unlock it nor get it. */
    CHECK_ERR(weft_mutex_lock(&em), 0);
    CHECK_EQ(P2U(spawn_join(try_foreign, NULL)), 1);
    pthread_t p;
    void *r;
    CHECK_EQ(pthread_create(&p, NULL, pthread_foreign, NULL), 0);
    CHECK_EQ(pthread_join(p, &r), 0);
    CHECK_EQ(P2U(r), 1);
    CHECK_ERR(weft_mutex_unlock(&em), 0);
    printf("errors: ok\n");
}

/* ---- a deadline that does not pass ---- */

static weft_mutex_t dm = WEFT_MUTEX_INIT;
static int dm_taken; /* atomic: the holder has had dm (stays set) */

static void *hold_then_release(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_lock(&dm), 0);
    __atomic_store_n(&dm_taken, 1, __ATOMIC_RELEASE);
    wait_until(weft_after(WEFT_MS(5)));
    CHECK_ERR(weft_mutex_unlock(&dm), 0);
    return NULL;
}

static void *timed_waiter(void *arg)
{
    (void)arg;
    /* Until the holder has had it (the state word itself may be 0 again
     * by the time this thread runs, on a loaded machine). */
    while (!__atomic_load_n(&dm_taken, __ATOMIC_ACQUIRE))
        weft_yield();
    CHECK_ERR(weft_mutex_timedlock(&dm, weft_after(WEFT_SEC(60))), 0);
    CHECK_ERR(weft_mutex_unlock(&dm), 0);
    return U2P(1);
}

static void deadlines(void)
{
    weft_t h, w;
    void *r;
    CHECK_ERR(weft_spawn(&h, hold_then_release, NULL, NULL), 0);
    CHECK_ERR(weft_spawn(&w, timed_waiter, NULL, NULL), 0);
    CHECK_ERR(weft_join(w, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 1);
    CHECK_ERR(weft_join(h, NULL, WEFT_FOREVER), 0);
    printf("deadlines: ok\n");
}

/* ---- exact counter ---- */

#define COUNTER_THREADS 64

struct counter {
    weft_mutex_t m;
    long value;
    long per_thread;
};

static void *incrementer(void *arg)
{
    struct counter *c = arg;
    for (long i = 0; i < c->per_thread; i++) {
        CHECK_ERR(weft_mutex_lock(&c->m), 0);
        c->value++;
        CHECK_ERR(weft_mutex_unlock(&c->m), 0);
    }
    return NULL;
}

static void counter_run(void *arg)
{
    long per = (long)P2U(arg);
    struct counter c = {.m = WEFT_MUTEX_INIT, .value = 0, .per_thread = per};
    weft_t t[COUNTER_THREADS];
    for (int i = 0; i < COUNTER_THREADS; i++)
        CHECK_ERR(weft_spawn(&t[i], incrementer, &c, NULL), 0);
    for (int i = 0; i < COUNTER_THREADS; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    CHECK_EQ(c.value, (long)COUNTER_THREADS * per);
    CHECK_ERR(weft_mutex_destroy(&c.m), 0);
}

static void counter(void)
{
    long per = test_scale(100000);
    static const int workers[] = {1, 2, 8};
    for (int i = 0; i < 3; i++) {
        check_with_workers(workers[i], counter_run, U2P(per));
        printf("counter: %d threads x %ld on %d workers: ok\n", COUNTER_THREADS, per,
               workers[i]);
    }
}

/* ---- pthreads and weft threads on one mutex ---- */

static void *p_incrementer(void *arg)
{
    return incrementer(arg);
}

static void mixed(void)
{
    long per = test_scale(20000);
    struct counter c = {.m = WEFT_MUTEX_INIT, .value = 0, .per_thread = per};
    pthread_t p[4];
    weft_t t[16];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&p[i], NULL, p_incrementer, &c), 0);
    for (int i = 0; i < 16; i++)
        CHECK_ERR(weft_spawn(&t[i], incrementer, &c, NULL), 0);
    incrementer(&c); /* main too */
    for (int i = 0; i < 16; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_join(p[i], NULL), 0);
    CHECK_EQ(c.value, 21 * per);
    printf("mixed: 4 pthreads, 16 weft threads and main: ok\n");
}

/* ---- hand-off ---- */

static weft_mutex_t hm = WEFT_MUTEX_INIT;
static int handed, checked;

/* Holds the mutex until the unlocker has checked it cannot retake it. */
static void *handoff_waiter(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_lock(&hm), 0);
    __atomic_store_n(&handed, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&checked, __ATOMIC_ACQUIRE)) {
        if (weft_self())
            weft_yield();
        else
            sched_yield();
    }
    CHECK_ERR(weft_mutex_unlock(&hm), 0);
    return NULL;
}

static void *pthread_handoff_waiter(void *arg)
{
    return handoff_waiter(arg);
}

/* The waiter is a weft thread (kernel == 0) or a pthread. */
static void *handoff(void *arg)
{
    int kernel = (int)P2U(arg);
    handed = checked = 0;
    CHECK_ERR(weft_mutex_lock(&hm), 0);
    weft_t t;
    pthread_t p;
    if (kernel)
        CHECK_EQ(pthread_create(&p, NULL, pthread_handoff_waiter, NULL), 0);
    else
        CHECK_ERR(weft_spawn(&t, handoff_waiter, NULL, NULL), 0);
    /* Until the waiter is parked (the PARKED bit, 2), then 2 ms more. */
    while (__atomic_load_n(&hm.state, __ATOMIC_ACQUIRE) != 3)
        weft_yield();
    wait_until(weft_after(WEFT_MS(2)));
    CHECK_ERR(weft_mutex_unlock(&hm), 0);
    /* Handed over: it stays locked for the waiter. */
    CHECK_ERR(weft_mutex_trylock(&hm), -EBUSY);
    __atomic_store_n(&checked, 1, __ATOMIC_RELEASE);
    if (kernel)
        CHECK_EQ(pthread_join(p, NULL), 0);
    else
        CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_EQ(__atomic_load_n(&handed, __ATOMIC_ACQUIRE), 1);
    return U2P(1);
}

/* ---- barging ---- */

static weft_mutex_t bm = WEFT_MUTEX_INIT;
static int barge_done;

static void *barger(void *arg)
{
    (void)arg;
    long n = 0;
    while (!__atomic_load_n(&barge_done, __ATOMIC_ACQUIRE)) {
        CHECK_ERR(weft_mutex_lock(&bm), 0);
        n++;
        CHECK_ERR(weft_mutex_unlock(&bm), 0);
        if (n % 64 == 0)
            weft_yield();
    }
    return U2P(n);
}

static void *barge_victim(void *arg)
{
    (void)arg;
    wait_until(weft_after(WEFT_MS(1)));
    for (int i = 0; i < 100; i++) {
        CHECK_ERR(weft_mutex_lock(&bm), 0);
        CHECK_ERR(weft_mutex_unlock(&bm), 0);
    }
    __atomic_store_n(&barge_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void barging_run(void *arg)
{
    (void)arg;
    weft_t a, b;
    void *n;
    CHECK_ERR(weft_spawn(&a, barger, NULL, NULL), 0);
    CHECK_ERR(weft_spawn(&b, barge_victim, NULL, NULL), 0);
    CHECK_ERR(weft_join(b, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(a, &n, WEFT_FOREVER), 0);
    printf("barging: the victim got the lock 100 times while the barger took it %lu times\n",
           (unsigned long)P2U(n));
}

int main(void)
{
    /* Children first: they need a process that has not started weft. */
    counter();
    check_with_workers(2, barging_run, NULL);

    errors();
    deadlines();
    mixed();
    CHECK_EQ(P2U(spawn_join(handoff, U2P(0))), 1);
    CHECK_EQ(P2U(spawn_join(handoff, U2P(1))), 1);
    printf("handoff: a weft waiter and a pthread waiter: ok\n");
    return 0;
}
