/*
 * t_park: the parking lot's contract, from weft threads and kernel threads.
 *
 *  - weft_park gives -EAGAIN when the word differs from the expected value,
 *    and -ETIMEDOUT without blocking for deadline 0 or one already past; with
 *    a deadline 10 ms ahead it gives -ETIMEDOUT and weft_now() is then past
 *    the deadline;
 *  - weft_unpark returns how many it woke: 0 with nobody parked; waiters
 *    woken one (or three) at a time add up to exactly the number of waiters;
 *  - exact counts: with one worker, once every waiter is known to be parked,
 *    unpark(addr, 0), (addr, 1), (addr, 3), (addr, -1) wake exactly 0, 1, 3
 *    and the rest, and only threads parked on that address;
 *  - exactly-once: 10,000 rounds (times WEFT_TEST_SCALE) where a waiter parks
 *    with a deadline 50-130 us ahead and a waker unparks it within 30 us of the
 *    deadline, just before or just after. Each park returns 0 or -ETIMEDOUT,
 *    and it returned 0 in exactly the rounds where the waker's unpark counted
 *    one thread woken. Rounds run weft waiter/weft waker, weft waiter/pthread
 *    waker and pthread waiter/weft waker.
 *
 * The exact counts run in a copy of this program started with
 * WEFT_WORKERS=1 ("exact" mode): on one worker a waiter that has announced
 * itself runs until it parks as soon as the driver yields, so after a round
 * of yields every waiter is parked. (Only a preemption in the few
 * instructions between the announcement and the park could spoil that.)
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

/* ---- return values ---- */

static void check_returns(void)
{
    uint32_t w = 5;
    CHECK_ERR(weft_park(&w, 4, WEFT_FOREVER), -EAGAIN);
    CHECK_ERR(weft_park(&w, 4, weft_after(WEFT_SEC(10))), -EAGAIN);
    CHECK_ERR(weft_park(&w, 4, 0), -EAGAIN);
    CHECK_ERR(weft_park(&w, 5, 0), -ETIMEDOUT);
    CHECK_ERR(weft_park(&w, 5, 1), -ETIMEDOUT);
    CHECK_ERR(weft_park(&w, 5, weft_now() - WEFT_MS(1)), -ETIMEDOUT);
    int64_t d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_park(&w, 5, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    CHECK_ERR(weft_unpark(&w, 1), 0);
    CHECK_ERR(weft_unpark(&w, -1), 0);
    CHECK_ERR(weft_unpark(&w, 0), 0);
    CHECK_EQ(w, 5);
}

static void *check_returns_thread(void *arg)
{
    (void)arg;
    check_returns();
    return U2P(1);
}

/* ---- woken one or three at a time, on any number of workers ---- */

#define WAITERS 10
static uint32_t word, announced, woke;

static void *waiter(void *arg)
{
    (void)arg;
    __atomic_fetch_add(&announced, 1, __ATOMIC_RELEASE);
    CHECK_ERR(weft_park(&word, 0, WEFT_FOREVER), 0);
    __atomic_fetch_add(&woke, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void wake_by(int n)
{
    word = announced = woke = 0;
    weft_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++)
        CHECK_ERR(weft_spawn(&t[i], waiter, NULL, NULL), 0);
    int total = 0;
    for (long tries = 0; total < WAITERS; tries++) {
        CHECK(tries < 1000000);
        int r = weft_unpark(&word, n);
        CHECK(r >= 0 && r <= n);
        total += r;
        if (r == 0)
            usleep(100); /* the rest have not parked yet */
    }
    CHECK_EQ(total, WAITERS);
    for (int i = 0; i < WAITERS; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    CHECK_EQ(woke, WAITERS);
    CHECK_ERR(weft_unpark(&word, -1), 0);
}

/* ---- exactly-once wake-ups racing with deadlines ---- */

struct round_state {
    long rounds;
    uint32_t ready; /* round the waiter is about to park in, plus one */
    uint32_t done;  /* round the waker has finished, plus one */
    int64_t deadline;
    uint32_t word; /* parked on; never changes */
    int *park_rc;  /* per round: what the waiter's park returned */
    int *woken;    /* per round: what the waker's unpark returned */
};

static void wait_past(uint32_t *w, uint32_t n)
{
    uint32_t v;
    while ((v = __atomic_load_n(w, __ATOMIC_ACQUIRE)) < n) {
        int r = weft_park(w, v, WEFT_FOREVER);
        CHECK(r == 0 || r == -EAGAIN);
    }
}

static void *race_waiter(void *arg)
{
    struct round_state *s = arg;
    for (long i = 0; i < s->rounds; i++) {
        int64_t d = weft_after(WEFT_US(50 + (i % 5) * 20));
        __atomic_store_n(&s->deadline, d, __ATOMIC_RELAXED);
        __atomic_store_n(&s->ready, (uint32_t)(i + 1), __ATOMIC_RELEASE);
        weft_unpark(&s->ready, 1);
        int rc = weft_park(&s->word, 0, d);
        CHECK(rc == 0 || rc == -ETIMEDOUT);
        s->park_rc[i] = rc;
        wait_past(&s->done, (uint32_t)(i + 1));
    }
    return NULL;
}

static void *race_waker(void *arg)
{
    struct round_state *s = arg;
    int on_weft = weft_self() != 0;
    for (long i = 0; i < s->rounds; i++) {
        wait_past(&s->ready, (uint32_t)(i + 1));
        int64_t d = __atomic_load_n(&s->deadline, __ATOMIC_RELAXED);
        int64_t at = d - WEFT_US(30) + WEFT_US(10) * (i % 7);
        while (weft_now() < at) {
            if (on_weft)
                weft_yield();
        }
        s->woken[i] = weft_unpark(&s->word, 1);
        __atomic_store_n(&s->done, (uint32_t)(i + 1), __ATOMIC_RELEASE);
        weft_unpark(&s->done, 1);
    }
    return NULL;
}

static void *pthread_waiter(void *arg)
{
    return race_waiter(arg);
}

static void *pthread_waker(void *arg)
{
    return race_waker(arg);
}

/* kind: 0 weft/weft, 1 weft waiter + pthread waker, 2 pthread waiter + weft waker */
static void race(int kind, long rounds)
{
    struct round_state s = {.rounds = rounds};
    s.park_rc = calloc((size_t)rounds, sizeof(int));
    s.woken = calloc((size_t)rounds, sizeof(int));
    CHECK(s.park_rc && s.woken);
    weft_t wt;
    pthread_t pt;
    if (kind == 0) {
        weft_t w2;
        CHECK_ERR(weft_spawn(&wt, race_waiter, &s, NULL), 0);
        CHECK_ERR(weft_spawn(&w2, race_waker, &s, NULL), 0);
        CHECK_ERR(weft_join(w2, NULL, WEFT_FOREVER), 0);
    } else if (kind == 1) {
        CHECK_ERR(weft_spawn(&wt, race_waiter, &s, NULL), 0);
        CHECK_EQ(pthread_create(&pt, NULL, pthread_waker, &s), 0);
        CHECK_EQ(pthread_join(pt, NULL), 0);
    } else {
        CHECK_EQ(pthread_create(&pt, NULL, pthread_waiter, &s), 0);
        CHECK_ERR(weft_spawn(&wt, race_waker, &s, NULL), 0);
    }
    if (kind == 2)
        CHECK_EQ(pthread_join(pt, NULL), 0);
    CHECK_ERR(weft_join(wt, NULL, WEFT_FOREVER), 0);

    long woken = 0, timed_out = 0;
    for (long i = 0; i < rounds; i++) {
        if (s.park_rc[i] == 0) {
            if (s.woken[i] != 1) {
                check_failed("round %ld: park returned 0 but unpark woke %d\n", i, s.woken[i]);
            }
            woken++;
        } else {
            if (s.woken[i] != 0) {
                check_failed("round %ld: park timed out but unpark woke %d\n", i, s.woken[i]);
            }
            timed_out++;
        }
    }
    printf("race kind %d: %ld rounds, %ld woken, %ld timed out\n", kind, rounds, woken,
           timed_out);
    CHECK_ERR(weft_unpark(&s.word, -1), 0);
    free(s.park_rc);
    free(s.woken);
}

/* ---- exact counts on one worker ---- */

#define EXACT_WAITERS 8
static uint32_t w1, w2, exact_arrived;

static void *exact_waiter(void *arg)
{
    uint32_t *w = arg;
    __atomic_fetch_add(&exact_arrived, 1, __ATOMIC_RELEASE);
    return U2P((uintptr_t)(weft_park(w, 0, WEFT_FOREVER) + 1000));
}

/* Spawns n waiters on w and yields until all of them have parked. */
static void park_waiters(weft_t *t, int n, uint32_t *w)
{
    exact_arrived = 0;
    for (int i = 0; i < n; i++)
        CHECK_ERR(weft_spawn(&t[i], exact_waiter, w, NULL), 0);
    while (__atomic_load_n(&exact_arrived, __ATOMIC_ACQUIRE) < (uint32_t)n)
        weft_yield();
    for (int i = 0; i < 3; i++)
        weft_yield();
}

static void join_woken(weft_t *t, int n)
{
    for (int i = 0; i < n; i++) {
        void *r;
        CHECK_ERR(weft_join(t[i], &r, WEFT_FOREVER), 0);
        CHECK_EQ(P2U(r), 1000); /* park returned 0 */
    }
}

static void *exact_driver(void *arg)
{
    (void)arg;
    weft_t t[EXACT_WAITERS];
    park_waiters(t, EXACT_WAITERS, &w1);
    CHECK_ERR(weft_unpark(&w2, -1), 0);
    CHECK_ERR(weft_unpark(&w1, 0), 0);
    CHECK_ERR(weft_unpark(&w1, 1), 1);
    CHECK_ERR(weft_unpark(&w1, 3), 3);
    CHECK_ERR(weft_unpark(&w1, -1), EXACT_WAITERS - 4);
    CHECK_ERR(weft_unpark(&w1, -1), 0);
    CHECK_ERR(weft_unpark(&w1, 1), 0);
    join_woken(t, EXACT_WAITERS);

    /* Two words: unparking one leaves the other's waiters parked. */
    weft_t a[4], b[4];
    park_waiters(a, 4, &w1);
    park_waiters(b, 4, &w2);
    CHECK_ERR(weft_unpark(&w1, -1), 4);
    CHECK_ERR(weft_unpark(&w2, 2), 2);
    CHECK_ERR(weft_unpark(&w1, -1), 0);
    CHECK_ERR(weft_unpark(&w2, 5), 2);
    join_woken(a, 4);
    join_woken(b, 4);
    return U2P(1);
}

static void run_exact(void)
{
    /* Exact counts need an exact order: no preemption, which a loaded
     * machine could bring in anywhere (see t_yield). */
    setenv("WEFT_PREEMPT", "off", 1);
    weft_config cfg = {.workers = 1, .time_slice = -1};
    CHECK_ERR(weft_init(&cfg), 0);
    weft_t d;
    void *r;
    CHECK_ERR(weft_spawn(&d, exact_driver, NULL, NULL), 0);
    CHECK_ERR(weft_join(d, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 1);
}

/* Runs this program again in "exact" mode with WEFT_WORKERS=1. */
static void run_exact_child(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc(sizeof(char *) * (n + 2));
    CHECK(env != NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "WEFT_WORKERS=", 13) != 0)
            env[k++] = environ[i];
    }
    env[k++] = "WEFT_WORKERS=1";
    env[k] = NULL;
    char *argv[] = {"t_park", "exact", NULL};
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
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        check_failed("exact mode failed: status 0x%x\n", status);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "exact")) {
        run_exact();
        return 0;
    }

    check_returns(); /* on main */
    weft_t t;
    void *r;
    CHECK_ERR(weft_spawn(&t, check_returns_thread, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 1);

    wake_by(1);
    wake_by(3);

    long rounds = test_scale(10000) / 3;
    if (rounds < 1)
        rounds = 1;
    race(0, rounds);
    race(1, rounds);
    race(2, rounds);

    run_exact_child();
    return 0;
}
