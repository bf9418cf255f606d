/*
 * t_detach: detached threads run to completion and give their slots back.
 *
 *  - threads spawned with t == NULL, detached right after spawn, and
 *    detaching themselves all run (counted with an atomic; main waits on the
 *    counter with weft_park);
 *  - detaching a thread that has already finished works, and afterwards the
 *    handle can be neither joined nor detached;
 *  - slots are reused: a driver thread spawns 100,000 detached threads one
 *    after another, each finished before the next starts, and the slot
 *    indexes (the low 32 bits of the handles) stay small instead of growing
 *    with the count;
 *  - many detached threads spawned in a burst from several threads all run.
 */
#include "check.h"

#include <stdint.h>
#include <unistd.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static uint32_t done;     /* threads that ran to the end */
static uint64_t done_sum; /* sum of their arguments */

static void count_done(uintptr_t arg)
{
    __atomic_fetch_add(&done_sum, arg, __ATOMIC_RELAXED);
    __atomic_fetch_add(&done, 1, __ATOMIC_RELEASE);
    weft_unpark(&done, -1);
}

/* Waits until done == n, parking on the counter between checks. */
static void wait_done(uint32_t n)
{
    int64_t give_up = weft_after(WEFT_SEC(200));
    for (;;) {
        uint32_t v = __atomic_load_n(&done, __ATOMIC_ACQUIRE);
        if (v == n)
            return;
        CHECK(v < n);
        if (weft_park(&done, v, give_up) == -ETIMEDOUT) {
            check_failed("only %u of %u detached threads finished\n", v, n);
        }
    }
}

static void reset(void)
{
    __atomic_store_n(&done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&done_sum, 0, __ATOMIC_RELAXED);
}

static void *counted(void *arg)
{
    weft_yield();
    count_done(P2U(arg));
    return NULL;
}

static void *detaches_itself(void *arg)
{
    CHECK_ERR(weft_detach(weft_self()), 0);
    weft_yield();
    count_done(P2U(arg));
    return NULL;
}

static void *sets_flag(void *arg)
{
    __atomic_store_n((uint32_t *)arg, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Spawns n detached threads (t == NULL) with arguments base, base+1, ... */
struct burst {
    uint32_t base, n;
};

static void *burst_spawner(void *arg)
{
    struct burst *b = arg;
    for (uint32_t i = 0; i < b->n; i++)
        CHECK_ERR(weft_spawn(NULL, counted, U2P(b->base + i), NULL), 0);
    return NULL;
}

/* One detached thread at a time; returns the largest slot index seen. */
static uint32_t seq_flag;

static void *seq_child(void *arg)
{
    (void)arg;
    __atomic_store_n(&seq_flag, 1, __ATOMIC_RELEASE);
    weft_unpark(&seq_flag, 1);
    return NULL;
}

static void *sequential_driver(void *arg)
{
    long n = (long)P2U(arg);
    uint32_t max_slot = 0;
    for (long i = 0; i < n; i++) {
        __atomic_store_n(&seq_flag, 0, __ATOMIC_RELAXED);
        weft_t t;
        CHECK_ERR(weft_spawn(&t, seq_child, NULL, NULL), 0);
        CHECK_ERR(weft_detach(t), 0);
        if ((uint32_t)t > max_slot)
            max_slot = (uint32_t)t;
        while (__atomic_load_n(&seq_flag, __ATOMIC_ACQUIRE) == 0)
            weft_park(&seq_flag, 0, WEFT_FOREVER);
        /* Let the child get all the way out before the next spawn. */
        weft_yield();
    }
    return U2P(max_slot);
}

int main(void)
{
    /* Three ways to detach; every thread runs. */
    const uint32_t n = 3000;
    uint64_t want = 0;
    reset();
    for (uint32_t i = 0; i < n; i++) {
        want += i;
        if (i % 3 == 0) {
            CHECK_ERR(weft_spawn(NULL, counted, U2P(i), NULL), 0);
        } else if (i % 3 == 1) {
            weft_t t;
            CHECK_ERR(weft_spawn(&t, counted, U2P(i), NULL), 0);
            CHECK_ERR(weft_detach(t), 0);
        } else {
            weft_t t;
            CHECK_ERR(weft_spawn(&t, detaches_itself, U2P(i), NULL), 0);
        }
    }
    wait_done(n);
    CHECK_EQ(__atomic_load_n(&done_sum, __ATOMIC_RELAXED), want);

    /* Detach after the thread has finished (the flag is its last store, so
     * give it a moment to return; detach must work either way). */
    for (int i = 0; i < 200; i++) {
        uint32_t flag = 0;
        weft_t t;
        CHECK_ERR(weft_spawn(&t, sets_flag, &flag, NULL), 0);
        while (__atomic_load_n(&flag, __ATOMIC_ACQUIRE) == 0)
            usleep(100);
        if (i % 10 == 0)
            usleep(2000);
        CHECK_ERR(weft_detach(t), 0);
        CHECK_ERR2(weft_join(t, NULL, 0), -EINVAL, -ESRCH);
        CHECK_ERR2(weft_detach(t), -EINVAL, -ESRCH);
    }

    /* Slots are reused: n sequential detached threads stay in few slots. */
    long seq = test_scale(100000);
    weft_t drv;
    void *r;
    CHECK_ERR(weft_spawn(&drv, sequential_driver, U2P(seq), NULL), 0);
    CHECK_ERR(weft_join(drv, &r, WEFT_FOREVER), 0);
    uint32_t max_slot = (uint32_t)P2U(r);
    printf("sequential detached threads: %ld, largest slot index %u\n", seq, max_slot);
    if (seq >= 10000)
        CHECK(max_slot < seq / 4);

    /* Bursts of detached threads from several spawners at once. */
    enum { SPAWNERS = 8 };
    long per = test_scale(50000);
    struct burst b[SPAWNERS];
    weft_t sp[SPAWNERS];
    reset();
    want = 0;
    for (int i = 0; i < SPAWNERS; i++) {
        b[i] = (struct burst){.base = (uint32_t)(i * per), .n = (uint32_t)per};
        CHECK_ERR(weft_spawn(&sp[i], burst_spawner, &b[i], NULL), 0);
    }
    for (long i = 0; i < SPAWNERS * per; i++)
        want += (uint64_t)i;
    for (int i = 0; i < SPAWNERS; i++)
        CHECK_ERR(weft_join(sp[i], NULL, WEFT_FOREVER), 0);
    wait_done((uint32_t)(SPAWNERS * per));
    CHECK_EQ(__atomic_load_n(&done_sum, __ATOMIC_RELAXED), want);
    return 0;
}
