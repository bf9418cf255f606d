/*
 * t_barrier: cyclic barriers, from weft threads and kernel threads.
 *
 *  - errors: init with NULL or a count of 0 gives -EINVAL; a barrier for 1
 *    returns 1 at every wait and is never busy;
 *  - rounds: 16 threads (4 pthreads) and then 64 threads (8 pthreads) pass
 *    1,000 rounds of one barrier. In each round exactly one of them gets 1.
 *    Each thread writes its round number into its slot before waiting;
 *    after the wait every slot holds this round or the next (nobody left
 *    before all arrived, nobody got two rounds ahead). Each thread also
 *    adds to a per-round sum before waiting, and after the wait finds the
 *    sum complete. The same on 1, 2 and 8 workers (copies of this program
 *    started with that weft_init, WEFT_WORKERS removed);
 *  - destroy gives -EBUSY while a round is under way (one and then two of
 *    three threads arrived, a weft thread and a pthread), 0 once the round
 *    is done, and the barrier can be initialized again for another count;
 *  - destroy polled in a loop while a pthread enters wait (10,000 rounds)
 *    returns 0 or -EBUSY each time and never blocks (no round ending for
 *    60 s turns a blocked destroy into a message);
 *  - a thread back from wait destroys the barrier (retrying while it says
 *    -EBUSY) and initializes it again at once, before the threads it
 *    released have run: they must still return. 10 rounds on 1 worker
 *    (deterministic: they have not run yet; a join with a 60 s deadline
 *    turns the hang into a message), then 200 rounds on the default
 *    workers with a pthread among the three.
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

/* ---- errors, a barrier for one ---- */

static void check_errors(void)
{
    weft_barrier_t b;
    CHECK_ERR(weft_barrier_init(NULL, 1), -EINVAL);
    CHECK_ERR(weft_barrier_init(&b, 0), -EINVAL);
    CHECK_ERR(weft_barrier_wait(NULL), -EINVAL);
    CHECK_ERR(weft_barrier_destroy(NULL), -EINVAL);
    CHECK_ERR(weft_barrier_init(&b, 1), 0);
    for (int i = 0; i < 100; i++) {
        CHECK_ERR(weft_barrier_wait(&b), 1);
        CHECK_ERR(weft_barrier_destroy(&b), 0);
    }
}

static void *check_errors_thread(void *arg)
{
    (void)arg;
    check_errors();
    return U2P(7);
}

/* ---- rounds ---- */

#define MAX_THREADS 64
static struct {
    weft_barrier_t b;
    int threads;
    long rounds;
    uint32_t slot[MAX_THREADS]; /* round each thread is in, plus one */
    uint32_t *serial;           /* per round: how many got 1 */
    uint64_t *sum;              /* per round: sum of the arrivals' ids */
} rs;

static void *round_thread(void *arg)
{
    int me = (int)P2U(arg);
    uint64_t want = (uint64_t)rs.threads * (uint64_t)(rs.threads + 1) / 2;
    for (long r = 0; r < rs.rounds; r++) {
        uint32_t round = (uint32_t)r + 1;
        __atomic_store_n(&rs.slot[me], round, __ATOMIC_RELAXED);
        __atomic_fetch_add(&rs.sum[r], (uint64_t)me + 1, __ATOMIC_RELAXED);
        int got = weft_barrier_wait(&rs.b);
        CHECK(got == 0 || got == 1);
        if (got)
            __atomic_fetch_add(&rs.serial[r], 1, __ATOMIC_RELAXED);
        /* The barrier orders every arrival before every departure. */
        CHECK_EQ(__atomic_load_n(&rs.sum[r], __ATOMIC_RELAXED), want);
        for (int j = 0; j < rs.threads; j++) {
            uint32_t s = __atomic_load_n(&rs.slot[j], __ATOMIC_RELAXED);
            if (s != round && s != round + 1)
                check_failed("round %u: thread %d left while thread %d was in round %u\n",
                             round, me, j, s);
        }
    }
    return NULL;
}

static void test_rounds(int threads, int kernels, const char *what)
{
    rs.threads = threads;
    rs.rounds = test_scale(1000);
    rs.serial = calloc((size_t)rs.rounds, sizeof(uint32_t));
    rs.sum = calloc((size_t)rs.rounds, sizeof(uint64_t));
    CHECK(rs.serial && rs.sum);
    memset(rs.slot, 0, sizeof(rs.slot));
    CHECK_ERR(weft_barrier_init(&rs.b, (unsigned)threads), 0);
    struct thr t[MAX_THREADS];
    for (int i = 0; i < threads; i++)
        thr_start(&t[i], i % (threads / kernels) == 0, round_thread, U2P(i));
    for (int i = 0; i < threads; i++)
        thr_join(&t[i]);
    for (long r = 0; r < rs.rounds; r++) {
        if (rs.serial[r] != 1)
            check_failed("round %ld: %u threads got 1\n", r, rs.serial[r]);
    }
    for (int i = 0; i < threads; i++)
        CHECK_EQ(rs.slot[i], rs.rounds);
    CHECK_ERR(weft_barrier_destroy(&rs.b), 0);
    free(rs.serial);
    free(rs.sum);
    printf("rounds (%s): %d threads (%d pthreads), %ld rounds, one serial thread each\n", what,
           threads, kernels, rs.rounds);
}

/* ---- destroy while a round is under way ---- */

static weft_barrier_t three;
static uint32_t left;

static void *one_of_three(void *arg)
{
    (void)arg;
    int r = weft_barrier_wait(&three);
    CHECK(r == 0 || r == 1);
    __atomic_fetch_add(&left, 1, __ATOMIC_SEQ_CST);
    return U2P(r);
}

static void until_busy(weft_barrier_t *b)
{
    for (long i = 0; weft_barrier_destroy(b) != -EBUSY; i++) {
        CHECK(i < 2000000);
        usleep(50);
    }
}

static void test_destroy_busy(void)
{
    for (int round = 0; round < 4; round++) {
        left = 0;
        CHECK_ERR(weft_barrier_init(&three, 3), 0);
        CHECK_ERR(weft_barrier_destroy(&three), 0);
        struct thr a, b;
        thr_start(&a, round & 1, one_of_three, NULL);
        until_busy(&three); /* a has arrived */
        thr_start(&b, !(round & 1), one_of_three, NULL);
        usleep(2000);
        CHECK_ERR(weft_barrier_destroy(&three), -EBUSY);
        CHECK_EQ(__atomic_load_n(&left, __ATOMIC_SEQ_CST), 0);
        int mine = weft_barrier_wait(&three); /* the third */
        uintptr_t got = P2U(thr_join(&a)) + P2U(thr_join(&b)) + (uintptr_t)mine;
        CHECK_EQ(got, 1);
        CHECK_EQ(left, 2);
        CHECK_ERR(weft_barrier_destroy(&three), 0);
    }
    /* Initialized again, for another count. */
    CHECK_ERR(weft_barrier_init(&three, 2), 0);
    struct thr a;
    thr_start(&a, 0, one_of_three, NULL);
    int mine = weft_barrier_wait(&three);
    CHECK_EQ(P2U(thr_join(&a)) + (uintptr_t)mine, 1);
    CHECK_ERR(weft_barrier_destroy(&three), 0);
}

/* ---- destroyed and initialized again while the released still leave ----
 *
 * Once destroy returns 0 the barrier may be initialized again (or its
 * memory reused). A thread that has returned from wait does that at once,
 * while the threads it released may not have run yet: they must still
 * return. On one worker they certainly have not run yet. */

static weft_barrier_t rb;

static void *reinit_member(void *arg)
{
    (void)arg;
    int r = weft_barrier_wait(&rb);
    CHECK(r == 0 || r == 1);
    return NULL;
}

static void reinit_rounds(long rounds, int kernels)
{
    for (long round = 0; round < rounds; round++) {
        CHECK_ERR(weft_barrier_init(&rb, 4), 0);
        struct thr t[3];
        for (int i = 0; i < 3; i++)
            thr_start(&t[i], kernels && i == (int)(round % 3), reinit_member, NULL);
        if (!kernels)
            for (int i = 0; i < 5; i++)
                weft_yield(); /* on one worker: the three wait */
        int r = weft_barrier_wait(&rb);
        CHECK(r == 0 || r == 1);
        int d;
        for (long i = 0; (d = weft_barrier_destroy(&rb)) == -EBUSY; i++) {
            CHECK(i < 10000000);
            weft_yield();
        }
        CHECK_ERR(d, 0);
        CHECK_ERR(weft_barrier_init(&rb, 4), 0); /* a new barrier, same memory */
        for (int i = 0; i < 3; i++) {
            if (t[i].kernel) {
                thr_join(&t[i]);
                continue;
            }
            int j = weft_join(t[i].w, NULL, weft_after(WEFT_SEC(60)));
            if (j == -ETIMEDOUT)
                check_failed("round %ld: a thread released by the barrier was still inside "
                             "weft_barrier_wait 60 s after destroy returned 0 and the "
                             "barrier was initialized again\n", round);
            CHECK_ERR(j, 0);
        }
        CHECK_ERR(weft_barrier_destroy(&rb), 0);
    }
}

static void *reinit_driver(void *arg)
{
    reinit_rounds(P2U(arg) ? 200 : 10, (int)P2U(arg));
    return NULL;
}

/* ---- destroy racing with a thread entering wait ----
 *
 * A pthread enters wait for a barrier of 2 while a weft thread polls
 * destroy until it says -EBUSY, then arrives itself. Each destroy must
 * return 0 or -EBUSY; none may block (the round it would wait for needs
 * the caller). Main joins the poller with 1 s deadlines and gives up when
 * no round has ended for 60 s, so a destroy that blocks ends in a message
 * instead of the runner's timeout. */

static weft_barrier_t duo;
static long duo_rounds; /* atomic: rounds the poller has finished */

static void *duo_member(void *arg)
{
    (void)arg;
    int r = weft_barrier_wait(&duo);
    CHECK(r == 0 || r == 1);
    return U2P(r);
}

static void *destroy_poller(void *arg)
{
    long rounds = (long)P2U(arg);
    for (long i = 0; i < rounds; i++) {
        CHECK_ERR(weft_barrier_init(&duo, 2), 0);
        pthread_t p;
        CHECK_EQ(pthread_create(&p, NULL, duo_member, NULL), 0);
        int d;
        for (long k = 0; (d = weft_barrier_destroy(&duo)) != -EBUSY; k++) {
            CHECK_ERR(d, 0);
            if (k >= 200000)
                usleep(20); /* spin ~1 ms, then let the pthread have the CPU */
        }
        int mine = weft_barrier_wait(&duo);
        void *theirs;
        CHECK_EQ(pthread_join(p, &theirs), 0);
        CHECK_EQ(P2U(theirs) + (uintptr_t)mine, 1);
        __atomic_store_n(&duo_rounds, i + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void test_destroy_race(void)
{
    long rounds = test_scale(10000);
    weft_t t;
    CHECK_ERR(weft_spawn(&t, destroy_poller, U2P(rounds), NULL), 0);
    /* A blocked destroy stops the rounds for good; a slow machine only
     * makes them slow. So the message comes when no round has ended for
     * 60 s, however long all of them take. */
    long seen = -1;
    int64_t stuck_since = weft_now();
    int j;
    while ((j = weft_join(t, NULL, weft_after(WEFT_SEC(1)))) == -ETIMEDOUT) {
        long now = __atomic_load_n(&duo_rounds, __ATOMIC_ACQUIRE);
        if (now != seen) {
            seen = now;
            stuck_since = weft_now();
        } else if (weft_now() - stuck_since > WEFT_SEC(60)) {
            check_failed("weft_barrier_destroy racing with a thread entering "
                         "weft_barrier_wait: no round ended for 60 s after round %ld of %ld: "
                         "a destroy blocks\n",
                         now, rounds);
        }
    }
    CHECK_ERR(j, 0);
    printf("destroy racing with a thread entering wait: %ld rounds, never blocked\n", rounds);
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
    char *argv[] = {"t_barrier", (char *)mode, arg, NULL};
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
        check_failed("t_barrier %s %d failed: status 0x%x\n", mode, n, status);
}

int main(int argc, char **argv)
{
    if (argc == 3) {
        int n = atoi(argv[2]);
        CHECK_ERR(weft_init(&(weft_config){.workers = n}), 0);
        if (!strcmp(argv[1], "reinit")) {
            weft_t t;
            CHECK_ERR(weft_spawn(&t, reinit_driver, U2P(0), NULL), 0);
            CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
            printf("destroy and init again at once (%d workers): the released threads return\n",
                   n);
            return 0;
        }
        CHECK(!strcmp(argv[1], "workers"));
        char what[32];
        snprintf(what, sizeof(what), "%d workers", n);
        test_rounds(16, 4, what);
        test_rounds(64, 8, what);
        return 0;
    }

    check_errors();
    weft_t t;
    void *r;
    CHECK_ERR(weft_spawn(&t, check_errors_thread, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 7);
    printf("errors, a barrier for one: ok\n");

    test_destroy_busy();
    printf("destroy -EBUSY mid-round, 0 after; init again: ok\n");
    test_destroy_race();

    test_rounds(16, 4, "default workers");
    test_rounds(64, 8, "default workers");
    run_self("workers", 1);
    run_self("workers", 2);
    run_self("workers", 8);

    run_self("reinit", 1);
    CHECK_ERR(weft_spawn(&t, reinit_driver, U2P(1), NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    printf("destroy and init again at once (default workers, pthreads among them): ok\n");
    return 0;
}
