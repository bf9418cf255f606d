/*
 * t_rwlock: readers-writer locks, from weft threads and kernel threads.
 *
 *  - errors: NULL gives -EINVAL; unlock of a lock the caller does not hold
 *    (unlocked, or write-locked by another thread) gives -EPERM; wrlock
 *    twice gives -EDEADLK, with or without a deadline; destroy gives -EBUSY
 *    while read- or write-locked; a reader may take it twice while no
 *    writer waits;
 *  - try and timed: with a writer inside, rdlock and wrlock with deadline 0
 *    give -ETIMEDOUT, and with a deadline 10 ms ahead give -ETIMEDOUT no
 *    earlier than the deadline; with a reader inside, another reader gets
 *    in at once and a writer times out, after which readers still get in;
 *    timed rdlock and wrlock with a far deadline pass once the holder
 *    unlocks;
 *  - readers share: 8 readers (4 pthreads) all inside at once, proven by
 *    a weft_barrier for 8 inside the read section;
 *  - no writer starvation: 8 readers (2 pthreads) re-take the read lock in
 *    a loop, holding it across a yield; a writer still gets in (the test
 *    just has to finish), and no reader is inside while it is;
 *  - no reader starvation: 4 writers re-take the write lock in a loop; a
 *    reader still gets in;
 *  - the order promised, on one worker (a copy of this program started
 *    with weft_init for 1 worker), made deterministic by yields: once a
 *    writer waits, a new reader's rdlock(0) fails; a reader that queued
 *    during a writer's turn gets in before the next writer;
 *  - destroy gives 0 on an unlocked lock that was write-locked before;
 *  - a reader admitted by a writer's unlock returns even when, before it
 *    runs, another wrlock(0) finds it inside and gives up (1 worker; a
 *    join with a 10 s deadline turns the hang into a message);
 *  - stress: 64 threads (8 pthreads) mixing reads and writes, a quarter of
 *    them with deadlines of 0-100 us; writers keep two fields equal and
 *    readers check them, nobody reads while a writer is inside; the counts
 *    add up. On the default workers and on 1, 2 and 8 (copies of this
 *    program started with that weft_init, WEFT_WORKERS removed).
 *
 * The cases run in that order, so the quick, deterministic ones report a
 * broken lock before the stress does.
 *
 * Stress sizes scale with WEFT_TEST_SCALE.
 */
#include "check.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

extern char **environ;

/* A thread of either kind. */
struct thr {
    int kernel;
    weft_t w;
    pthread_t p;
};

static void thr_start(struct thr *t, int kernel, void *(*fn)(void *), void *arg)
{
    t->kernel = kernel;
    if (kernel)
        CHECK_EQ(pthread_create(&t->p, NULL, fn, arg), 0);
    else
        CHECK_ERR(weft_spawn(&t->w, fn, arg, NULL), 0);
}

static void *thr_join(struct thr *t)
{
    void *r = NULL;
    if (t->kernel)
        CHECK_EQ(pthread_join(t->p, &r), 0);
    else
        CHECK_ERR(weft_join(t->w, &r, WEFT_FOREVER), 0);
    return r;
}

static uint32_t load(uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void store(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

/* ---- errors, on one thread ---- */

static void check_errors(void)
{
    weft_rwlock_t rw;
    CHECK_ERR(weft_rwlock_init(NULL), -EINVAL);
    CHECK_ERR(weft_rwlock_destroy(NULL), -EINVAL);
    CHECK_ERR(weft_rwlock_rdlock(NULL, 0), -EINVAL);
    CHECK_ERR(weft_rwlock_wrlock(NULL, 0), -EINVAL);
    CHECK_ERR(weft_rwlock_unlock(NULL), -EINVAL);

    CHECK_ERR(weft_rwlock_init(&rw), 0);
    CHECK_ERR(weft_rwlock_destroy(&rw), 0);
    CHECK_ERR(weft_rwlock_unlock(&rw), -EPERM);

    CHECK_ERR(weft_rwlock_rdlock(&rw, WEFT_FOREVER), 0);
    CHECK_ERR(weft_rwlock_destroy(&rw), -EBUSY);
    CHECK_ERR(weft_rwlock_rdlock(&rw, 0), 0); /* no writer waits: fine */
    CHECK_ERR(weft_rwlock_unlock(&rw), 0);
    CHECK_ERR(weft_rwlock_unlock(&rw), 0);
    CHECK_ERR(weft_rwlock_unlock(&rw), -EPERM);
    CHECK_ERR(weft_rwlock_destroy(&rw), 0);

    CHECK_ERR(weft_rwlock_wrlock(&rw, WEFT_FOREVER), 0);
    CHECK_ERR(weft_rwlock_wrlock(&rw, WEFT_FOREVER), -EDEADLK);
    CHECK_ERR(weft_rwlock_wrlock(&rw, 0), -EDEADLK);
    CHECK_ERR(weft_rwlock_wrlock(&rw, weft_after(WEFT_MS(1))), -EDEADLK);
    CHECK_ERR(weft_rwlock_destroy(&rw), -EBUSY);
    CHECK_ERR(weft_rwlock_unlock(&rw), 0);
    CHECK_ERR(weft_rwlock_unlock(&rw), -EPERM);

    /* Statically initialized; try-locks on a free lock. */
    weft_rwlock_t st = WEFT_RWLOCK_INIT;
    CHECK_ERR(weft_rwlock_wrlock(&st, 0), 0);
    CHECK_ERR(weft_rwlock_unlock(&st), 0);
    CHECK_ERR(weft_rwlock_rdlock(&st, 0), 0);
    CHECK_ERR(weft_rwlock_unlock(&st), 0);
    CHECK_ERR(weft_rwlock_wrlock(&st, weft_after(WEFT_MS(10))), 0);
    CHECK_ERR(weft_rwlock_unlock(&st), 0);
    CHECK_ERR(weft_rwlock_unlock(&st), -EPERM);
}

static void *check_errors_thread(void *arg)
{
    (void)arg;
    check_errors();
    return U2P(7);
}

/* ---- try and timed, against a holder on another thread ---- */

static weft_rwlock_t lk;

static void *vs_writer(void *arg) /* lk is write-locked by someone else */
{
    (void)arg;
    CHECK_ERR(weft_rwlock_unlock(&lk), -EPERM);
    CHECK_ERR(weft_rwlock_rdlock(&lk, 0), -ETIMEDOUT);
    CHECK_ERR(weft_rwlock_wrlock(&lk, 0), -ETIMEDOUT);
    CHECK_ERR(weft_rwlock_rdlock(&lk, weft_now() - 1), -ETIMEDOUT);
    int64_t d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_rwlock_rdlock(&lk, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_rwlock_wrlock(&lk, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    CHECK_ERR(weft_rwlock_unlock(&lk), -EPERM);
    return NULL;
}

static void *vs_reader(void *arg) /* lk is read-locked by someone else */
{
    (void)arg;
    CHECK_ERR(weft_rwlock_rdlock(&lk, 0), 0);
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    CHECK_ERR(weft_rwlock_wrlock(&lk, 0), -ETIMEDOUT);
    int64_t d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_rwlock_wrlock(&lk, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    /* The writer gave up: readers get in again at once. */
    CHECK_ERR(weft_rwlock_rdlock(&lk, 0), 0);
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    CHECK_ERR(weft_rwlock_wrlock(&lk, 0), -ETIMEDOUT);
    return NULL;
}

static void *far_rdlock(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_rwlock_rdlock(&lk, weft_after(WEFT_SEC(60))), 0);
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    return NULL;
}

static void *far_wrlock(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_rwlock_wrlock(&lk, weft_after(WEFT_SEC(60))), 0);
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    return NULL;
}

/* Holds lk in the way arg says while another thread probes it. */
static void *holder(void *arg)
{
    int other_kernel = P2U(arg) & 1;
    struct thr t;

    CHECK_ERR(weft_rwlock_wrlock(&lk, WEFT_FOREVER), 0);
    thr_start(&t, other_kernel, vs_writer, NULL);
    thr_join(&t);
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);

    CHECK_ERR(weft_rwlock_rdlock(&lk, WEFT_FOREVER), 0);
    thr_start(&t, other_kernel, vs_reader, NULL);
    thr_join(&t);
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);

    /* Timed locks that pass: the holder lets go after a while. */
    void *(*waiter[3])(void *) = {far_rdlock, far_wrlock, far_wrlock};
    for (int i = 0; i < 3; i++) {
        if (i == 2)
            CHECK_ERR(weft_rwlock_rdlock(&lk, WEFT_FOREVER), 0);
        else
            CHECK_ERR(weft_rwlock_wrlock(&lk, WEFT_FOREVER), 0);
        thr_start(&t, other_kernel, waiter[i], NULL);
        usleep(5000); /* it is waiting by now, most likely; nothing depends on it */
        CHECK_ERR(weft_rwlock_unlock(&lk), 0);
        thr_join(&t);
    }
    CHECK_ERR(weft_rwlock_unlock(&lk), -EPERM);
    return NULL;
}

static void test_against_holder(void)
{
    CHECK_ERR(weft_rwlock_init(&lk), 0);
    for (int kind = 0; kind < 4; kind++) {
        struct thr h;
        thr_start(&h, kind & 2, holder, U2P(kind & 1));
        thr_join(&h);
    }
}

/* ---- readers share ---- */

#define SHARERS 8
static weft_barrier_t inside_all;
static uint32_t inside, most_inside;

static void *sharer(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_rwlock_rdlock(&lk, WEFT_FOREVER), 0);
    uint32_t n = __atomic_add_fetch(&inside, 1, __ATOMIC_SEQ_CST);
    uint32_t m = load(&most_inside);
    while (n > m && !__atomic_compare_exchange_n(&most_inside, &m, n, 0, __ATOMIC_SEQ_CST,
                                                 __ATOMIC_SEQ_CST))
        ;
    /* Returns only once all SHARERS are here, holding the read lock. */
    int r = weft_barrier_wait(&inside_all);
    CHECK(r == 0 || r == 1);
    __atomic_sub_fetch(&inside, 1, __ATOMIC_SEQ_CST);
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    return NULL;
}

static void test_readers_share(void)
{
    for (int round = 0; round < 10; round++) {
        CHECK_ERR(weft_barrier_init(&inside_all, SHARERS), 0);
        store(&most_inside, 0);
        struct thr t[SHARERS];
        for (int i = 0; i < SHARERS; i++)
            thr_start(&t[i], i % 2, sharer, NULL);
        for (int i = 0; i < SHARERS; i++)
            thr_join(&t[i]);
        CHECK_EQ(load(&most_inside), SHARERS);
        CHECK_EQ(load(&inside), 0);
    }
}

/* ---- no writer starvation, no reader starvation ---- */

static uint32_t stop, writer_in, readers_in;
static uint64_t reads_done, writes_done;

static void *looping_reader(void *arg)
{
    (void)arg;
    while (!load(&stop)) {
        CHECK_ERR(weft_rwlock_rdlock(&lk, WEFT_FOREVER), 0);
        __atomic_add_fetch(&readers_in, 1, __ATOMIC_SEQ_CST);
        CHECK_EQ(load(&writer_in), 0);
        __atomic_add_fetch(&reads_done, 1, __ATOMIC_RELAXED);
        weft_yield(); /* hold it while other readers come in */
        CHECK_EQ(load(&writer_in), 0);
        __atomic_sub_fetch(&readers_in, 1, __ATOMIC_SEQ_CST);
        CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    }
    return NULL;
}

static void *looping_writer(void *arg)
{
    (void)arg;
    while (!load(&stop)) {
        CHECK_ERR(weft_rwlock_wrlock(&lk, WEFT_FOREVER), 0);
        CHECK_EQ(load(&writer_in), 0);
        store(&writer_in, 1);
        CHECK_EQ(load(&readers_in), 0);
        __atomic_add_fetch(&writes_done, 1, __ATOMIC_RELAXED);
        weft_yield();
        store(&writer_in, 0);
        CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    }
    return NULL;
}

static void *one_write(void *arg)
{
    (void)arg;
    while (__atomic_load_n(&reads_done, __ATOMIC_RELAXED) < 1000)
        weft_yield();
    CHECK_ERR(weft_rwlock_wrlock(&lk, WEFT_FOREVER), 0);
    store(&writer_in, 1);
    CHECK_EQ(load(&readers_in), 0);
    store(&stop, 1);
    store(&writer_in, 0);
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    return NULL;
}

static void *one_read(void *arg)
{
    (void)arg;
    while (__atomic_load_n(&writes_done, __ATOMIC_RELAXED) < 200)
        weft_yield();
    CHECK_ERR(weft_rwlock_rdlock(&lk, WEFT_FOREVER), 0);
    CHECK_EQ(load(&writer_in), 0);
    store(&stop, 1);
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    return NULL;
}

static void test_starvation(void)
{
    for (int round = 0; round < 4; round++) {
        store(&stop, 0);
        reads_done = writes_done = 0;
        struct thr r[8], w;
        for (int i = 0; i < 8; i++)
            thr_start(&r[i], i < 2, looping_reader, NULL);
        thr_start(&w, round & 1, one_write, NULL);
        thr_join(&w);
        for (int i = 0; i < 8; i++)
            thr_join(&r[i]);
    }
    printf("no writer starvation: a writer got in among 8 looping readers, 4 times\n");
    for (int round = 0; round < 4; round++) {
        store(&stop, 0);
        reads_done = writes_done = 0;
        struct thr w[4], r;
        for (int i = 0; i < 4; i++)
            thr_start(&w[i], i == 0, looping_writer, NULL);
        thr_start(&r, round & 1, one_read, NULL);
        thr_join(&r);
        for (int i = 0; i < 4; i++)
            thr_join(&w[i]);
    }
    printf("no reader starvation: a reader got in among 4 looping writers, 4 times\n");
}

/* ---- the promised order, on one worker ---- */

static char order[8];
static uint32_t order_n;

static void log_turn(char c)
{
    order[__atomic_fetch_add(&order_n, 1, __ATOMIC_SEQ_CST)] = c;
}

static void *ordered_writer(void *arg)
{
    CHECK_ERR(weft_rwlock_wrlock(&lk, WEFT_FOREVER), 0);
    log_turn((char)P2U(arg));
    weft_yield();
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    return NULL;
}

static void *ordered_reader(void *arg)
{
    CHECK_ERR(weft_rwlock_rdlock(&lk, WEFT_FOREVER), 0);
    log_turn((char)P2U(arg));
    weft_yield();
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    return NULL;
}

static void *try_read(void *arg)
{
    (void)arg;
    return U2P(-weft_rwlock_rdlock(&lk, 0));
}

static void yields(int n)
{
    for (int i = 0; i < n; i++)
        weft_yield();
}

static void *order_driver(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_rwlock_init(&lk), 0);
    order_n = 0;
    memset(order, 0, sizeof(order));
    weft_t w1, b, w2, probe;
    void *r;

    CHECK_ERR(weft_rwlock_rdlock(&lk, WEFT_FOREVER), 0);
    CHECK_ERR(weft_spawn(&w1, ordered_writer, U2P('1'), NULL), 0);
    yields(5); /* w1 has announced itself and waits for us to leave */
    CHECK_ERR(weft_spawn(&probe, try_read, NULL, NULL), 0);
    CHECK_ERR(weft_join(probe, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), ETIMEDOUT); /* a writer waits: new readers queue */
    CHECK_ERR(weft_spawn(&b, ordered_reader, U2P('b'), NULL), 0);
    yields(5); /* b waits behind w1 */
    CHECK_ERR(weft_spawn(&w2, ordered_writer, U2P('2'), NULL), 0);
    yields(5); /* w2 waits for w1 */
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    CHECK_ERR(weft_join(w1, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(b, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(w2, NULL, WEFT_FOREVER), 0);
    CHECK_EQ(order_n, 3);
    if (strcmp(order, "1b2") != 0)
        check_failed("turns taken in order %s, want 1b2\n", order);
    return NULL;
}

static void test_order(void)
{
    weft_t t;
    CHECK_ERR(weft_spawn(&t, order_driver, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
}

/* ---- stress ---- */

#define STRESS_THREADS 64
static struct {
    weft_rwlock_t rw;
    uint64_t a, b;       /* written by writers only, under the write lock */
    uint64_t idsum;      /* sum of the writers' ids, one per write */
    uint32_t writing;    /* a writer is inside */
    uint32_t reading;    /* readers inside */
    long ops;
} st;

struct tally {
    uint64_t id, reads, writes, idsum, timeouts;
};

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void *stress_thread(void *arg)
{
    struct tally *t = arg;
    uint64_t x = t->id * 2654435761u + 1;
    for (long i = 0; i < st.ops; i++) {
        uint64_t r = rnd(&x);
        int64_t deadline = WEFT_FOREVER;
        if (r % 4 == 0)
            deadline = (r >> 8) % 5 == 0 ? 0 : weft_after(WEFT_US((r >> 16) % 100));
        int write = (r >> 24) % 8 == 0;
        int rc = write ? weft_rwlock_wrlock(&st.rw, deadline)
                       : weft_rwlock_rdlock(&st.rw, deadline);
        if (rc == -ETIMEDOUT && deadline != WEFT_FOREVER) {
            CHECK(weft_now() >= deadline);
            t->timeouts++;
            continue;
        }
        CHECK_ERR(rc, 0);
        if (write) {
            CHECK_EQ(__atomic_exchange_n(&st.writing, 1, __ATOMIC_SEQ_CST), 0);
            CHECK_EQ(load(&st.reading), 0);
            CHECK_EQ(st.a, st.b);
            st.a++;
            if ((r >> 32) % 4 == 0)
                weft_yield();
            st.b++;
            st.idsum += t->id;
            t->writes++;
            t->idsum += t->id;
            store(&st.writing, 0);
        } else {
            __atomic_add_fetch(&st.reading, 1, __ATOMIC_SEQ_CST);
            CHECK_EQ(load(&st.writing), 0);
            uint64_t a = __atomic_load_n(&st.a, __ATOMIC_RELAXED);
            if ((r >> 32) % 4 == 0)
                weft_yield();
            CHECK_EQ(__atomic_load_n(&st.b, __ATOMIC_RELAXED), a);
            CHECK_EQ(__atomic_load_n(&st.a, __ATOMIC_RELAXED), a);
            __atomic_sub_fetch(&st.reading, 1, __ATOMIC_SEQ_CST);
            t->reads++;
        }
        CHECK_ERR(weft_rwlock_unlock(&st.rw), 0);
    }
    return NULL;
}

static void test_stress(const char *what)
{
    st.ops = test_scale(2000);
    st.a = st.b = st.idsum = 0;
    CHECK_ERR(weft_rwlock_init(&st.rw), 0);
    struct thr th[STRESS_THREADS];
    struct tally t[STRESS_THREADS] = {{0}};
    for (int i = 0; i < STRESS_THREADS; i++) {
        t[i].id = (uint64_t)i + 1;
        thr_start(&th[i], i % 8 == 0, stress_thread, &t[i]);
    }
    uint64_t reads = 0, writes = 0, idsum = 0, timeouts = 0;
    for (int i = 0; i < STRESS_THREADS; i++) {
        thr_join(&th[i]);
        reads += t[i].reads;
        writes += t[i].writes;
        idsum += t[i].idsum;
        timeouts += t[i].timeouts;
    }
    CHECK_EQ(reads + writes + timeouts, (uint64_t)STRESS_THREADS * (uint64_t)st.ops);
    CHECK_EQ(st.a, writes);
    CHECK_EQ(st.b, writes);
    CHECK_EQ(st.idsum, idsum);
    CHECK_ERR(weft_rwlock_unlock(&st.rw), -EPERM);
    CHECK_ERR(weft_rwlock_rdlock(&st.rw, 0), 0);
    CHECK_ERR(weft_rwlock_unlock(&st.rw), 0);
    CHECK_ERR(weft_rwlock_wrlock(&st.rw, 0), 0);
    CHECK_ERR(weft_rwlock_unlock(&st.rw), 0);
    printf("stress (%s): %d threads, %llu reads, %llu writes, %llu timed out\n", what,
           STRESS_THREADS, (unsigned long long)reads, (unsigned long long)writes,
           (unsigned long long)timeouts);
}

/* ---- destroy after a write ---- */

static void test_destroy_after_write(void)
{
    weft_rwlock_t rw;
    CHECK_ERR(weft_rwlock_init(&rw), 0);
    CHECK_ERR(weft_rwlock_wrlock(&rw, WEFT_FOREVER), 0);
    CHECK_ERR(weft_rwlock_destroy(&rw), -EBUSY);
    CHECK_ERR(weft_rwlock_unlock(&rw), 0);
    CHECK_ERR(weft_rwlock_destroy(&rw), 0); /* unlocked: nothing to report */
    CHECK_ERR(weft_rwlock_wrlock(&rw, 0), 0);
    CHECK_ERR(weft_rwlock_unlock(&rw), 0);
    CHECK_ERR(weft_rwlock_wrlock(&rw, 0), 0);
    CHECK_ERR(weft_rwlock_unlock(&rw), 0);
    CHECK_ERR(weft_rwlock_destroy(&rw), 0);
}

/* ---- an admitted reader, then a writer that times out (one worker) ----
 *
 * The reader r waits behind our write lock. Our unlock admits it (it holds
 * the read lock from then on) and makes it runnable, but on one worker it
 * runs only when we switch. Before that, our wrlock(0) finds r's read
 * lock, gives up, and so releases again. r must still return. */

static void *admitted_reader(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_rwlock_rdlock(&lk, WEFT_FOREVER), 0);
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    return U2P(1);
}

static void *admit_then_timeout(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_rwlock_init(&lk), 0);
    CHECK_ERR(weft_rwlock_wrlock(&lk, WEFT_FOREVER), 0);
    weft_t r;
    CHECK_ERR(weft_spawn(&r, admitted_reader, NULL, NULL), 0);
    yields(5); /* r waits behind us */
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    CHECK_ERR(weft_rwlock_wrlock(&lk, 0), -ETIMEDOUT); /* r holds it now */
    void *res = NULL;
    int rc = weft_join(r, &res, weft_after(WEFT_SEC(10)));
    if (rc == -ETIMEDOUT)
        check_failed("a reader admitted by a writer's unlock was still waiting 10 s later, "
                     "after another writer's wrlock timed out before it ran\n");
    CHECK_ERR(rc, 0);
    CHECK_EQ(P2U(res), 1);
    CHECK_ERR(weft_rwlock_wrlock(&lk, 0), 0);
    CHECK_ERR(weft_rwlock_unlock(&lk), 0);
    return NULL;
}

/* Runs this program again as "MODE N": weft_init with N workers,
 * WEFT_WORKERS removed from the environment. */
static void run_self(const char *mode, int n)
{
    size_t k = 0, cnt = 0;
    while (environ[cnt])
        cnt++;
    char **env = malloc(sizeof(char *) * (cnt + 1));
    CHECK(env != NULL);
    for (size_t i = 0; i < cnt; i++)
        if (strncmp(environ[i], "WEFT_WORKERS=", 13) != 0)
            env[k++] = environ[i];
    env[k] = NULL;
    char arg[16];
    snprintf(arg, sizeof(arg), "%d", n);
    char *argv[] = {"t_rwlock", (char *)mode, arg, NULL};
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execve("/proc/self/exe", argv, env);
        _exit(127);
    }
    free(env);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        check_failed("t_rwlock %s %d failed: status 0x%x\n", mode, n, status);
}

int main(int argc, char **argv)
{
    if (argc == 3) {
        int n = atoi(argv[2]);
        CHECK_ERR(weft_init(&(weft_config){.workers = n}), 0);
        char what[32];
        snprintf(what, sizeof(what), "%d workers", n);
        if (!strcmp(argv[1], "workers")) {
            test_stress(what);
        } else if (!strcmp(argv[1], "order")) {
            CHECK_EQ(n, 1);
            test_order();
            printf("order (1 worker): a waiting writer holds off new readers; "
                   "readers queued in a writer's turn go before the next writer\n");
        } else {
            CHECK(!strcmp(argv[1], "admit") && n == 1);
            weft_t t;
            CHECK_ERR(weft_spawn(&t, admit_then_timeout, NULL, NULL), 0);
            CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
            printf("admitted reader returns after a later writer timed out (1 worker): ok\n");
        }
        return 0;
    }

    check_errors();
    weft_t t;
    void *r;
    CHECK_ERR(weft_spawn(&t, check_errors_thread, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 7);
    printf("errors: ok\n");

    test_against_holder();
    printf("try and timed locks against a holder: ok\n");

    test_readers_share();
    printf("readers share: %d inside at once\n", SHARERS);

    test_starvation();

    run_self("order", 1);

    test_destroy_after_write();
    printf("destroy after a write lock: ok\n");

    run_self("admit", 1);

    test_stress("default workers");
    run_self("workers", 1);
    run_self("workers", 2);
    run_self("workers", 8);
    return 0;
}
