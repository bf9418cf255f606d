/*
 * t_wg: wait groups, from weft threads and kernel threads.
 *
 *  - errors: NULL gives -EINVAL; an add that would make the count negative
 *    (done on zero, add(-2) on one, add(INT_MIN)) gives -EINVAL and leaves
 *    the count as it was; one past INT32_MAX gives -EOVERFLOW and leaves it
 *    as it was (the count is observed through wait with deadline 0 and
 *    through how many dones it takes to reach zero);
 *  - wait on zero returns 0 at once, whatever the deadline; wait on a
 *    nonzero count with deadline 0 or past gives -ETIMEDOUT at once, with a
 *    deadline 10 ms ahead gives -ETIMEDOUT no earlier than the deadline;
 *    a timed wait with a far deadline returns 0 when another thread's done
 *    brings the count to zero;
 *  - 1,000 threads (16 of them pthreads) each set their flag and call
 *    done; 8 waiters (4 pthreads) all return 0, and each finds every flag
 *    set; the same group is then used again, 20 rounds (each round starts
 *    after the last round's waiters returned). The same on 1, 2 and 8
 *    workers (copies of this program started with that weft_init,
 *    WEFT_WORKERS removed).
 *
 * Stress sizes scale with WEFT_TEST_SCALE.
 */
#include "check.h"

#include <limits.h>
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

/* The count must be n (small): n dones reach zero, one more is refused. */
static void expect_count(weft_wg_t *wg, int n)
{
    for (int i = 0; i < n; i++) {
        CHECK_ERR(weft_wg_wait(wg, 0), -ETIMEDOUT);
        CHECK_ERR(weft_wg_done(wg), 0);
    }
    CHECK_ERR(weft_wg_wait(wg, 0), 0);
    CHECK_ERR(weft_wg_done(wg), -EINVAL);
    CHECK_ERR(weft_wg_add(wg, n), 0); /* put it back */
}

/* ---- errors and the non-blocking cases ---- */

static void check_errors(void)
{
    weft_wg_t wg = WEFT_WG_INIT;
    CHECK_ERR(weft_wg_add(NULL, 1), -EINVAL);
    CHECK_ERR(weft_wg_done(NULL), -EINVAL);
    CHECK_ERR(weft_wg_wait(NULL, 0), -EINVAL);

    CHECK_ERR(weft_wg_wait(&wg, 0), 0);
    CHECK_ERR(weft_wg_wait(&wg, WEFT_FOREVER), 0);
    CHECK_ERR(weft_wg_wait(&wg, weft_after(WEFT_SEC(10))), 0);
    CHECK_ERR(weft_wg_done(&wg), -EINVAL);
    CHECK_ERR(weft_wg_add(&wg, -1), -EINVAL);
    CHECK_ERR(weft_wg_add(&wg, INT_MIN), -EINVAL);
    CHECK_ERR(weft_wg_add(&wg, 0), 0);
    CHECK_ERR(weft_wg_wait(&wg, WEFT_FOREVER), 0);

    CHECK_ERR(weft_wg_add(&wg, 1), 0);
    CHECK_ERR(weft_wg_add(&wg, -2), -EINVAL);
    expect_count(&wg, 1);
    CHECK_ERR(weft_wg_add(&wg, 2), 0);
    CHECK_ERR(weft_wg_add(&wg, -4), -EINVAL);
    CHECK_ERR(weft_wg_add(&wg, INT_MIN), -EINVAL);
    expect_count(&wg, 3);
    CHECK_ERR(weft_wg_add(&wg, -3), 0);
    CHECK_ERR(weft_wg_wait(&wg, 0), 0);

    /* Overflow. */
    CHECK_ERR(weft_wg_add(&wg, INT32_MAX), 0);
    CHECK_ERR(weft_wg_add(&wg, 1), -EOVERFLOW);
    CHECK_ERR(weft_wg_add(&wg, INT32_MAX), -EOVERFLOW);
    CHECK_ERR(weft_wg_add(&wg, -INT32_MAX), 0); /* it was INT32_MAX */
    CHECK_ERR(weft_wg_wait(&wg, 0), 0);
    CHECK_ERR(weft_wg_add(&wg, INT32_MAX - 1), 0);
    CHECK_ERR(weft_wg_add(&wg, 2), -EOVERFLOW);
    CHECK_ERR(weft_wg_add(&wg, 1), 0); /* the failed add changed nothing */
    CHECK_ERR(weft_wg_add(&wg, 1), -EOVERFLOW);
    CHECK_ERR(weft_wg_add(&wg, INT_MIN), -EINVAL);
    CHECK_ERR(weft_wg_add(&wg, -INT32_MAX + 2), 0);
    expect_count(&wg, 2);
    CHECK_ERR(weft_wg_add(&wg, -2), 0);

    /* Waits that cannot succeed. */
    CHECK_ERR(weft_wg_add(&wg, 1), 0);
    CHECK_ERR(weft_wg_wait(&wg, 0), -ETIMEDOUT);
    CHECK_ERR(weft_wg_wait(&wg, 1), -ETIMEDOUT);
    CHECK_ERR(weft_wg_wait(&wg, weft_now() - WEFT_MS(1)), -ETIMEDOUT);
    int64_t d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_wg_wait(&wg, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    expect_count(&wg, 1);
    CHECK_ERR(weft_wg_done(&wg), 0);
    CHECK_ERR(weft_wg_wait(&wg, WEFT_FOREVER), 0);
}

static void *check_errors_thread(void *arg)
{
    (void)arg;
    check_errors();
    return U2P(7);
}

/* ---- a timed wait satisfied by done ---- */

static weft_wg_t one;
static uint32_t one_done;

static void *far_waiter(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_wg_wait(&one, weft_after(WEFT_SEC(60))), 0);
    CHECK_EQ(__atomic_load_n(&one_done, __ATOMIC_SEQ_CST), 1);
    return NULL;
}

static void test_timed_pass(void)
{
    for (int kind = 0; kind < 4; kind++) {
        one = (weft_wg_t)WEFT_WG_INIT;
        one_done = 0;
        CHECK_ERR(weft_wg_add(&one, 2), 0);
        struct thr t;
        thr_start(&t, kind & 1, far_waiter, NULL);
        usleep(2000); /* it waits by now, most likely; nothing depends on it */
        CHECK_ERR(weft_wg_done(&one), 0);
        if (kind & 2)
            weft_yield();
        __atomic_store_n(&one_done, 1, __ATOMIC_SEQ_CST);
        CHECK_ERR(weft_wg_done(&one), 0);
        thr_join(&t);
    }
}

/* ---- many done, several waiters, reuse ---- */

#define WAITERS 8
static struct {
    weft_wg_t wg;
    int n;
    uint32_t *flag; /* per worker thread, set before its done */
} mg;

static void *doer(void *arg)
{
    long i = (long)P2U(arg);
    if (i % 3 == 0)
        weft_yield();
    __atomic_store_n(&mg.flag[i], 1, __ATOMIC_RELAXED);
    CHECK_ERR(weft_wg_done(&mg.wg), 0);
    return NULL;
}

static void *group_waiter(void *arg)
{
    int timed = (int)P2U(arg);
    CHECK_ERR(weft_wg_wait(&mg.wg, timed ? weft_after(WEFT_SEC(120)) : WEFT_FOREVER), 0);
    for (int i = 0; i < mg.n; i++)
        if (!__atomic_load_n(&mg.flag[i], __ATOMIC_RELAXED))
            check_failed("wait returned before thread %d was done\n", i);
    CHECK_ERR(weft_wg_wait(&mg.wg, 0), 0);
    return NULL;
}

static void test_many(const char *what)
{
    mg.n = (int)test_scale(1000);
    mg.flag = calloc((size_t)mg.n, sizeof(uint32_t));
    struct thr *t = calloc((size_t)mg.n, sizeof(struct thr));
    CHECK(mg.flag && t);
    mg.wg = (weft_wg_t)WEFT_WG_INIT;
    int kernel_every = mg.n / 16 > 0 ? mg.n / 16 : 1;
    long rounds = test_scale(20);
    for (long round = 0; round < rounds; round++) {
        memset(mg.flag, 0, sizeof(uint32_t) * (size_t)mg.n);
        CHECK_ERR(weft_wg_add(&mg.wg, mg.n), 0);
        struct thr w[WAITERS];
        for (int i = 0; i < WAITERS; i++)
            thr_start(&w[i], i % 2, group_waiter, U2P(i / 2 % 2));
        for (int i = 0; i < mg.n; i++)
            thr_start(&t[i], i % kernel_every == kernel_every - 1, doer, U2P(i));
        for (int i = 0; i < WAITERS; i++)
            thr_join(&w[i]);
        for (int i = 0; i < mg.n; i++)
            thr_join(&t[i]);
        CHECK_ERR(weft_wg_wait(&mg.wg, 0), 0);
        CHECK_ERR(weft_wg_done(&mg.wg), -EINVAL);
    }
    free(t);
    free(mg.flag);
    printf("many (%s): %ld rounds of %d done, %d waiters (4 pthreads) woken each round\n", what,
           rounds, mg.n, WAITERS);
}

/* Runs this program again as "workers N" with WEFT_WORKERS removed. */
static void run_workers(int n)
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
    char *argv[] = {"t_wg", "workers", arg, NULL};
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
        check_failed("t_wg on %d workers failed: status 0x%x\n", n, status);
}

/* ---- reuse at once: a waiter woken by zero returns 0 even if the group
 * was added to again before it ran (deterministic on one worker) ---- */

static weft_wg_t reuse_wg = WEFT_WG_INIT;

static void *reuse_waiter(void *arg)
{
    (void)arg;
    return U2P(-weft_wg_wait(&reuse_wg, WEFT_FOREVER));
}

static void *reuse_driver(void *arg)
{
    (void)arg;
    weft_t w;
    void *r;
    CHECK_ERR(weft_wg_add(&reuse_wg, 1), 0);
    CHECK_ERR(weft_spawn(&w, reuse_waiter, NULL, NULL), 0);
    for (int i = 0; i < 5; i++)
        weft_yield(); /* w parks */
    CHECK_ERR(weft_wg_done(&reuse_wg), 0); /* zero: w is woken... */
    CHECK_ERR(weft_wg_add(&reuse_wg, 1), 0); /* ...and the group reused before it runs */
    CHECK_ERR(weft_join(w, &r, weft_after(WEFT_SEC(10))), 0);
    CHECK_EQ(P2U(r), 0);
    CHECK_ERR(weft_wg_done(&reuse_wg), 0);
    return NULL;
}

/* The driver is a weft thread: its yields must run the waiter. */
static void reuse_run(void *arg)
{
    weft_t d;
    CHECK_ERR(weft_spawn(&d, reuse_driver, arg, NULL), 0);
    CHECK_ERR(weft_join(d, NULL, WEFT_FOREVER), 0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "workers")) {
        int n = atoi(argv[2]);
        CHECK_ERR(weft_init(&(weft_config){.workers = n}), 0);
        char what[32];
        snprintf(what, sizeof(what), "%d workers", n);
        test_many(what);
        return 0;
    }

    /* Before this process starts weft: it forks. */
    check_with_workers(1, reuse_run, NULL);
    printf("reuse at once: the woken waiter returned 0: ok\n");

    check_errors();
    weft_t t;
    void *r;
    CHECK_ERR(weft_spawn(&t, check_errors_thread, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 7);
    printf("errors, overflow, waits that cannot succeed: ok\n");

    test_timed_pass();
    printf("timed wait satisfied by done: ok\n");

    test_many("default workers");
    run_workers(1);
    run_workers(2);
    run_workers(8);
    return 0;
}
