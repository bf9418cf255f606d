/*
 * t_stop_race: a stop racing the wake-up it would cancel. Each round, a
 * waiter blocks; then a waker and a stopper, on other threads, are let go
 * at the same moment. The waiter's call returns either what woke it or
 * -ECANCELED, and what would have woken it is then neither lost nor
 * delivered twice:
 *
 *   sem         the unit is taken by the waiter, or still in the semaphore
 *   chan_recv   the element is the waiter's, or still in the channel
 *   chan_send   the element reached the receiver exactly when the send
 *               returned 0
 *   select      as chan_recv, through weft_chan_select
 *   read        the byte was read by the waiter, or is still in the socket
 *   park        weft_unpark woke the waiter exactly when its park returned 0
 *   mutex       a timed lock either holds the mutex (perhaps handed over
 *               by a fair unlock) or the mutex is free: never left locked
 *               for a waiter that gave up
 *   reuse       stops aimed at threads that end and whose descriptors are
 *               reused at once never reach the threads that reuse them
 *   unmap       the same while the descriptors of the ended threads are
 *               unmapped (odd stack sizes past the cache's few): the
 *               stopper's touch of a descriptor never outlives its mapping
 *
 * Rounds: test_scale(2000) per case. Every outcome is accepted as long as
 * the totals add up; the counts of each are printed.
 */
#include "iotest.h"

#define FAR (weft_after(WEFT_SEC(60)))

static int go;         /* atomic: 1 lets the waker and the stopper run */
static weft_t waiter_t;

/* Spins, yielding now and then so that one worker is enough. */
static void wait_go(void)
{
    for (int i = 0; !__atomic_load_n(&go, __ATOMIC_ACQUIRE); i++)
        if (i % 64 == 63)
            weft_yield();
}

/* ---- one round: waiter, waker, stopper ---------------------------------- */

struct round {
    long (*wait)(void);      /* the waiter's call */
    long (*wake)(void);      /* the waker's action; its result is kept */
    long wait_r, wake_r;
    int64_t delay;           /* how long the waiter waits before the go */
    int blocked, done;       /* atomic: the waiter is about to call; has returned */
};

static struct round *cur;

static void *waiter_main(void *arg)
{
    struct round *r = arg;
    __atomic_store_n(&r->blocked, 1, __ATOMIC_RELEASE);
    r->wait_r = r->wait();
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *waker_main(void *arg)
{
    struct round *r = arg;
    wait_go();
    r->wake_r = r->wake();
    return NULL;
}

static unsigned round_no;

static void *stopper_main(void *arg)
{
    (void)arg;
    /* A varying head start for the waker, so both outcomes occur even
     * where the waker's path is the longer one (I/O goes through the
     * poller). */
    unsigned jitter = (round_no * 2654435761u) >> 20 & 4095;
    wait_go();
    for (volatile unsigned k = 0; k < jitter * 16; k++)
        ;
    CHECK_ERR(weft_stop(waiter_t, 0), 0);
    return NULL;
}

static void one_round(struct round *r)
{
    cur = r;
    round_no++;
    __atomic_store_n(&go, 0, __ATOMIC_RELAXED);
    CHECK_ERR(weft_spawn(&waiter_t, waiter_main, r, NULL), 0);
    while (!__atomic_load_n(&r->blocked, __ATOMIC_ACQUIRE))
        weft_yield();
    weft_yield(); /* usually blocked by now; if not, the race is another one */
    if (r->delay)
        weft_sleep(weft_after(r->delay));
    weft_t a, b;
    CHECK_ERR(weft_spawn(&a, waker_main, r, NULL), 0);
    CHECK_ERR(weft_spawn(&b, stopper_main, NULL, NULL), 0);
    weft_yield();
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    CHECK_ERR(weft_join(a, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(b, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(waiter_t, NULL, WEFT_FOREVER), 0);
}

struct tally {
    long woken, stopped;
};

static void count(struct tally *t, const char *what, long r, long ok)
{
    if (r == ok)
        t->woken++;
    else if (r == -ECANCELED)
        t->stopped++;
    else
        check_failed("%s returned %ld (%s)\n", what, r, check_errname(r));
}

static void report(const char *name, const struct tally *t)
{
    printf("%-10s %ld rounds: %ld woken, %ld stopped; nothing lost or doubled\n", name,
           t->woken + t->stopped, t->woken, t->stopped);
}

/* ---- the cases ---------------------------------------------------------- */

static weft_sem_t sem;
static long sem_wait_fn(void) { return weft_sem_wait(&sem, WEFT_FOREVER); }
static long sem_post_fn(void) { return weft_sem_post(&sem); }

static void race_sem(long rounds)
{
    struct tally t = {0};
    for (long i = 0; i < rounds; i++) {
        sem = (weft_sem_t)WEFT_SEM_INIT(0);
        struct round r = {.wait = sem_wait_fn, .wake = sem_post_fn};
        one_round(&r);
        count(&t, "weft_sem_wait", r.wait_r, 0);
        CHECK_EQ(weft_sem_value(&sem) + (r.wait_r == 0), 1);
    }
    report("sem", &t);
}

static weft_chan_t *ch;
static int elem;
static long recv_fn(void) { return weft_chan_recv(ch, &elem, WEFT_FOREVER); }
static long select_fn(void)
{
    weft_chan_op ops[1] = {{ch, WEFT_RECV, &elem}};
    return weft_chan_select(ops, 1, WEFT_FOREVER);
}
static long send_one_fn(void)
{
    int v = 42;
    return weft_chan_send(ch, &v, 0); /* room in the ring: never waits */
}

static void race_recv(long rounds, bool via_select)
{
    struct tally t = {0};
    CHECK_ERR(weft_chan_new(&ch, sizeof(int), 1), 0);
    for (long i = 0; i < rounds; i++) {
        elem = 0;
        struct round r = {.wait = via_select ? select_fn : recv_fn, .wake = send_one_fn};
        one_round(&r);
        CHECK_ERR(r.wake_r, 0);
        count(&t, via_select ? "weft_chan_select" : "weft_chan_recv", r.wait_r, 0);
        int left;
        int got = weft_chan_recv(ch, &left, 0);
        if (r.wait_r == 0) {
            CHECK_EQ(elem, 42);
            CHECK_ERR(got, -ETIMEDOUT); /* not also in the channel */
        } else {
            CHECK_ERR(got, 0); /* still there */
            CHECK_EQ(left, 42);
        }
    }
    weft_chan_free(ch);
    report(via_select ? "select" : "chan_recv", &t);
}

static long send_fn(void)
{
    int v = 7;
    return weft_chan_send(ch, &v, WEFT_FOREVER);
}
/* Tries to receive until the sender has returned, then once more: the
 * sender's 0 needs a receiver, and this is the only one. */
static long recv_some_fn(void)
{
    int v = 0;
    for (;;) {
        bool last = __atomic_load_n(&cur->done, __ATOMIC_ACQUIRE);
        int r = weft_chan_recv(ch, &v, 0);
        if (r == 0) {
            CHECK_EQ(v, 7);
            return 0;
        }
        CHECK_ERR(r, -ETIMEDOUT);
        if (last)
            return r;
        weft_yield();
    }
}

static void race_send(long rounds)
{
    struct tally t = {0};
    CHECK_ERR(weft_chan_new(&ch, sizeof(int), 0), 0);
    for (long i = 0; i < rounds; i++) {
        struct round r = {.wait = send_fn, .wake = recv_some_fn};
        one_round(&r);
        count(&t, "weft_chan_send", r.wait_r, 0);
        /* Delivered exactly when the send says so. */
        if (r.wait_r == 0)
            CHECK_ERR(r.wake_r, 0);
        else
            CHECK_ERR(r.wake_r, -ETIMEDOUT);
    }
    weft_chan_free(ch);
    report("chan_send", &t);
}

static int sv[2];
static long read_fn(void)
{
    char c;
    return weft_read(sv[0], &c, 1, WEFT_FOREVER);
}
static long write_fn(void) { return write(sv[1], "q", 1); }

static void race_read(long rounds)
{
    struct tally t = {0};
    io_unix_pair(sv);
    for (long i = 0; i < rounds; i++) {
        struct round r = {.wait = read_fn, .wake = write_fn};
        one_round(&r);
        CHECK_EQ(r.wake_r, 1);
        count(&t, "weft_read", r.wait_r, 1);
        CHECK_EQ(io_drain(sv[0]) + (r.wait_r == 1), 1);
    }
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);
    report("read", &t);
}

static uint32_t word;
static long park_fn(void) { return weft_park(&word, 0, FAR); }
static long unpark_fn(void) { return weft_unpark(&word, 1); }

static void race_park(long rounds)
{
    struct tally t = {0};
    for (long i = 0; i < rounds; i++) {
        struct round r = {.wait = park_fn, .wake = unpark_fn};
        one_round(&r);
        count(&t, "weft_park", r.wait_r, 0);
        CHECK_EQ(r.wake_r, r.wait_r == 0 ? 1 : 0);
    }
    report("park", &t);
}

static weft_mutex_t m;
static int holding; /* atomic */
static long lock_fn(void)
{
    int r = weft_mutex_timedlock(&m, FAR);
    if (r == 0)
        CHECK_ERR(weft_mutex_unlock(&m), 0);
    return r;
}
static void *holder_main(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_lock(&m), 0);
    __atomic_store_n(&holding, 1, __ATOMIC_RELEASE);
    wait_go();
    CHECK_ERR(weft_mutex_unlock(&m), 0);
    return NULL;
}
static long noop_fn(void) { return 0; }

static void race_mutex(long rounds)
{
    struct tally t = {0};
    for (long i = 0; i < rounds; i++) {
        m = (weft_mutex_t)WEFT_MUTEX_INIT;
        __atomic_store_n(&holding, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&go, 0, __ATOMIC_RELAXED);
        weft_t h;
        CHECK_ERR(weft_spawn(&h, holder_main, NULL, NULL), 0);
        while (!__atomic_load_n(&holding, __ATOMIC_ACQUIRE))
            weft_yield();
        /* The holder unlocks at the round's go. Every few rounds the
         * waiter has waited over a millisecond by then, so the unlock
         * hands the mutex over to it (mutex.c, fairness). */
        struct round r = {.wait = lock_fn, .wake = noop_fn, .delay = i % 8 ? 0 : WEFT_MS(2)};
        one_round(&r);
        CHECK_ERR(weft_join(h, NULL, WEFT_FOREVER), 0);
        count(&t, "weft_mutex_timedlock", r.wait_r, 0);
        CHECK_ERR(weft_mutex_trylock(&m), 0); /* free, whoever won */
        CHECK_ERR(weft_mutex_unlock(&m), 0);
    }
    report("mutex", &t);
}

/* ---- reuse ---- */

static uint64_t latest;   /* atomic: the newest victim's handle */
static int reuse_done;    /* atomic */
static int innocent_hit;  /* atomic */
static long innocents_done; /* atomic */

static void *victim(void *arg)
{
    (void)arg;
    weft_yield();
    return NULL;
}

static void *innocent(void *arg)
{
    (void)arg;
    for (int k = 0; k < 3; k++) {
        if (weft_stopping())
            __atomic_fetch_add(&innocent_hit, 1, __ATOMIC_RELAXED);
        weft_yield();
    }
    weft_sem_t s = WEFT_SEM_INIT(0);
    if (weft_sem_wait(&s, 0) != -ETIMEDOUT)
        __atomic_fetch_add(&innocent_hit, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&innocents_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *stale_stopper(void *arg)
{
    long *stops = arg;
    while (!__atomic_load_n(&reuse_done, __ATOMIC_ACQUIRE)) {
        weft_t h = __atomic_load_n(&latest, __ATOMIC_ACQUIRE);
        if (h) {
            int r = weft_stop(h, 0);
            CHECK(r == 0 || r == -ESRCH);
            (*stops)++;
        }
        if ((*stops & 15) == 0)
            weft_yield();
    }
    return NULL;
}

static void race_reuse(long rounds)
{
    long stops = 0;
    weft_t s;
    CHECK_ERR(weft_spawn(&s, stale_stopper, &stops, NULL), 0);
    for (long i = 0; i < rounds * 5; i++) {
        weft_t v;
        CHECK_ERR(weft_spawn(&v, victim, NULL, NULL), 0);
        __atomic_store_n(&latest, v, __ATOMIC_RELEASE);
        CHECK_ERR(weft_join(v, NULL, WEFT_FOREVER), 0);
        CHECK_ERR(weft_spawn(NULL, innocent, NULL, NULL), 0);
        if (i % 32 == 0)
            weft_yield();
    }
    __atomic_store_n(&reuse_done, 1, __ATOMIC_RELEASE);
    CHECK_ERR(weft_join(s, NULL, WEFT_FOREVER), 0);
    while (__atomic_load_n(&innocents_done, __ATOMIC_ACQUIRE) < rounds * 5)
        weft_sleep(weft_after(WEFT_MS(1)));
    CHECK_EQ(__atomic_load_n(&innocent_hit, __ATOMIC_RELAXED), 0);
    printf("reuse      %ld victims, %ld stops aimed at them: no other thread was stopped\n",
           rounds * 5, stops);
}

/* ---- unmap ---- */

#define BATCH 128
static uint64_t batch[BATCH]; /* atomic entries: handles of ended threads */

static void *batch_stopper(void *arg)
{
    long *stops = arg;
    unsigned x = 12345;
    while (!__atomic_load_n(&reuse_done, __ATOMIC_ACQUIRE)) {
        x = x * 1103515245u + 12345u;
        weft_t h = __atomic_load_n(&batch[(x >> 8) % BATCH], __ATOMIC_ACQUIRE);
        if (h) {
            int r = weft_stop(h, WEFT_STOP_FILES);
            CHECK(r == 0 || r == -ESRCH);
            (*stops)++;
        }
        if ((*stops & 63) == 0)
            weft_yield();
    }
    return NULL;
}

static void race_unmap(long rounds)
{
    long stops = 0, nb = rounds / 40 + 1;
    __atomic_store_n(&reuse_done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&innocents_done, 0, __ATOMIC_RELAXED);
    weft_t s;
    CHECK_ERR(weft_spawn(&s, batch_stopper, &stops, NULL), 0);
    /* 48 KiB: not the default size, so at most 64 such stacks are kept
     * and the rest are unmapped as the batch ends (thread/cache.c). */
    weft_attr odd = {.stack_size = 48 * 1024};
    for (long b = 0; b < nb; b++) {
        weft_t v[BATCH];
        for (int i = 0; i < BATCH; i++) {
            CHECK_ERR(weft_spawn(&v[i], victim, NULL, &odd), 0);
            __atomic_store_n(&batch[i], v[i], __ATOMIC_RELEASE);
        }
        for (int i = 0; i < BATCH; i++)
            CHECK_ERR(weft_join(v[i], NULL, WEFT_FOREVER), 0);
        for (int i = 0; i < BATCH / 2; i++)
            CHECK_ERR(weft_spawn(NULL, innocent, NULL, &odd), 0);
        weft_yield();
    }
    __atomic_store_n(&reuse_done, 1, __ATOMIC_RELEASE);
    CHECK_ERR(weft_join(s, NULL, WEFT_FOREVER), 0);
    while (__atomic_load_n(&innocents_done, __ATOMIC_ACQUIRE) < nb * (BATCH / 2))
        weft_sleep(weft_after(WEFT_MS(1)));
    CHECK_EQ(__atomic_load_n(&innocent_hit, __ATOMIC_RELAXED), 0);
    printf("unmap      %ld victims with unmapped stacks, %ld stops aimed at them: no other "
           "thread was stopped\n",
           nb * BATCH, stops);
}

static void *all(void *arg)
{
    long rounds = *(long *)arg;
    race_sem(rounds);
    race_recv(rounds, false);
    race_recv(rounds, true);
    race_send(rounds);
    race_read(rounds);
    race_park(rounds);
    race_mutex(rounds);
    race_reuse(rounds);
    race_unmap(rounds);
    return NULL;
}

int main(void)
{
    long rounds = test_scale(2000);
    weft_t t;
    CHECK_ERR(weft_spawn(&t, all, &rounds, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    return 0;
}
