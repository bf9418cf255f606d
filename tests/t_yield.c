/*
 * t_yield: weft_yield lets the other runnable threads run. The runtime gets
 * one worker (WEFT_WORKERS=1 and weft_init), so only one user thread runs at
 * a time and every hand-over comes from a switch:
 *
 *  - a spinner that waits for a flag set by another thread, calling
 *    weft_yield in its loop, sees the flag after a handful of yields (with a
 *    yield that did not switch, only preemption could end the loop, after
 *    millions of iterations);
 *  - N threads taking K turns each, recording their id in a shared log and
 *    yielding after each turn, never take two turns in a row while another
 *    thread still has turns left, and no thread finishes before every other
 *    has taken at least K/2 turns (yield is round-robin enough to be fair);
 *  - phases: a thread spawned just before a yield has run when the yield
 *    returns, whichever of the 16 phases of the scheduler's periodic
 *    checks the yield falls on (each round first makes 0-15 yields with
 *    nothing else to run, which only count picks). The periodic pick looks
 *    at the ring first, and a yield that queued its caller there before
 *    picking took itself back while the new thread waited;
 *  - weft_yield on main (not a weft thread) simply returns.
 *
 * Everything is spawned by a driver thread, so no thread can be made
 * runnable from outside the single worker while the others run.
 */
#include "check.h"

#include <stdint.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

/* ---- spinner and setter ---- */

static int flag, spinner_started;
static long spins;

static void *spinner(void *arg)
{
    (void)arg;
    __atomic_store_n(&spinner_started, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&flag, __ATOMIC_ACQUIRE)) {
        spins++;
        weft_yield();
    }
    return NULL;
}

static void *setter(void *arg)
{
    (void)arg;
    __atomic_store_n(&flag, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Two threads hand a turn back and forth ROUNDS times, each waiting for its
 * turn with weft_yield; counts the yields. */
#define ROUNDS 1000
static int turn;
static long pingpong_yields;

static void *pingpong(void *arg)
{
    int me = (int)P2U(arg);
    for (int i = 0; i < ROUNDS; i++) {
        while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != me) {
            pingpong_yields++;
            weft_yield();
        }
        __atomic_store_n(&turn, 1 - me, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* ---- round robin ---- */

#define NTHREADS 8
#define TURNS    200
static int log_ids[NTHREADS * TURNS];
static int log_len;

static void *taker(void *arg)
{
    int me = (int)P2U(arg);
    for (int i = 0; i < TURNS; i++) {
        log_ids[log_len++] = me;
        weft_yield();
    }
    return NULL;
}

static void check_log(void)
{
    CHECK_EQ(log_len, NTHREADS * TURNS);
    int taken[NTHREADS] = {0};
    for (int p = 0; p < log_len; p++) {
        int id = log_ids[p];
        CHECK(id >= 0 && id < NTHREADS);
        taken[id]++;
        if (p + 1 < log_len && log_ids[p + 1] == id) {
            /* Two turns in a row: only when nobody else had turns left. */
            for (int k = 0; k < NTHREADS; k++) {
                if (k != id && taken[k] < TURNS) {
                    check_failed("thread %d took turns %d and %d in a row at log "
                                 "position %d while thread %d had %d turns left\n",
                                 id, taken[id], taken[id] + 1, p, k, TURNS - taken[k]);
                }
            }
        }
        if (taken[id] == TURNS) {
            for (int k = 0; k < NTHREADS; k++) {
                if (taken[k] < TURNS / 2) {
                    check_failed("thread %d finished while thread %d had taken "
                                 "only %d turns\n",
                                 id, k, taken[k]);
                }
            }
        }
    }
    for (int k = 0; k < NTHREADS; k++)
        CHECK_EQ(taken[k], TURNS);
}

/* ---- phases ---- */

static void *mark(void *arg)
{
    __atomic_store_n((int *)arg, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void phases(void)
{
    for (int round = 0; round < 64; round++) {
        for (int i = 0; i < round % 16; i++)
            weft_yield(); /* alone: advances the pick count only */
        int ran = 0;
        weft_t t;
        CHECK_ERR(weft_spawn(&t, mark, &ran, NULL), 0);
        weft_yield();
        if (!__atomic_load_n(&ran, __ATOMIC_ACQUIRE))
            check_failed("round %d: a yield returned before the thread spawned just "
                         "before it had run\n",
                         round);
        CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    }
    printf("phases: a yield let the new thread run in all 64 rounds\n");
}

static void *driver(void *arg)
{
    (void)arg;
    weft_t a, b;

    /* The spinner must be spinning before the setter exists. */
    CHECK_ERR(weft_spawn(&a, spinner, NULL, NULL), 0);
    while (!__atomic_load_n(&spinner_started, __ATOMIC_ACQUIRE))
        weft_yield();
    CHECK_ERR(weft_spawn(&b, setter, NULL, NULL), 0);
    CHECK_ERR(weft_join(a, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(b, NULL, WEFT_FOREVER), 0);
    printf("spinner yielded %ld times before it saw the flag\n", spins);
    CHECK(spins <= 1000);

    CHECK_ERR(weft_spawn(&a, pingpong, U2P(0), NULL), 0);
    CHECK_ERR(weft_spawn(&b, pingpong, U2P(1), NULL), 0);
    CHECK_ERR(weft_join(a, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(b, NULL, WEFT_FOREVER), 0);
    printf("ping-pong: %d rounds, %ld yields\n", ROUNDS, pingpong_yields);
    CHECK(pingpong_yields <= 10L * ROUNDS + 1000);

    weft_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        CHECK_ERR(weft_spawn(&t[i], taker, U2P(i), NULL), 0);
    for (int i = 0; i < NTHREADS; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    check_log();

    phases();
    return U2P(1);
}

int main(void)
{
    /* No preemption either: on a loaded machine the kernel may keep the
     * worker off the CPU for a whole time slice, and the monitor would
     * then preempt whatever thread it finds, out of the order this test
     * checks. */
    setenv("WEFT_WORKERS", "1", 1);
    setenv("WEFT_PREEMPT", "off", 1); /* the environment wins over cfg */
    weft_config cfg = {.workers = 1, .time_slice = -1};
    CHECK_ERR(weft_init(&cfg), 0);

    weft_t d;
    void *r;
    CHECK_ERR(weft_spawn(&d, driver, NULL, NULL), 0);
    CHECK_ERR(weft_join(d, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 1);

    weft_yield(); /* on main: a plain sched_yield */
    CHECK_EQ(weft_self(), 0);
    return 0;
}
