/*
 * t_errors: every error weft_join, weft_detach, weft_exit and weft_init
 * promise, and that an error leaves things usable:
 *
 *  - a stale handle (already joined) and forged ones (0, random values, a slot
 *    out of range, a live slot with the wrong generation) give -ESRCH to join
 *    and detach, never a crash, and leave the live thread in that slot alone;
 *  - joining oneself gives -EDEADLK;
 *  - joining a detached thread, or detaching twice, gives -EINVAL (or -ESRCH
 *    once the thread has ended and its slot was recycled);
 *  - a join whose deadline passes gives -ETIMEDOUT (deadline 0, a past one,
 *    and 20 ms ahead, after which weft_now() is past it) and the thread can
 *    still be joined later;
 *  - of two threads joining the same thread one gets the result and the other
 *    -EINVAL (or -ESRCH); a third join and a detach meanwhile fail too;
 *  - weft_exit outside a weft thread aborts; weft_init once the runtime runs
 *    gives -EBUSY.
 */
#include "check.h"

#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

/* A gate: threads wait on it with weft_park until it is opened. */
static void gate_wait(uint32_t *g)
{
    while (__atomic_load_n(g, __ATOMIC_ACQUIRE) == 0) {
        int r = weft_park(g, 0, WEFT_FOREVER);
        CHECK(r == 0 || r == -EAGAIN);
    }
}

static void gate_open(uint32_t *g)
{
    __atomic_store_n(g, 1, __ATOMIC_RELEASE);
    weft_unpark(g, -1);
}

/* Waits until *w >= n; fails the test after 30 s instead of hanging. */
static void wait_at_least(uint32_t *w, uint32_t n, const char *what)
{
    int64_t give_up = weft_after(WEFT_SEC(30));
    for (;;) {
        uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
        if (v >= n)
            return;
        int r = weft_park(w, v, give_up);
        if (r == -ETIMEDOUT) {
            check_failed("gave up waiting for %s (%u of %u)\n", what, v, n);
        }
    }
}

static void *quick(void *arg)
{
    return arg;
}

/* Waits for the gate passed as arg, then returns 77. */
static void *blocked(void *arg)
{
    gate_wait(arg);
    return U2P(77);
}

static void *join_self(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_join(weft_self(), NULL, WEFT_FOREVER), -EDEADLK);
    CHECK_ERR(weft_join(weft_self(), NULL, 0), -EDEADLK);
    void *r;
    CHECK_ERR(weft_join(weft_self(), &r, weft_after(WEFT_MS(5))), -EDEADLK);
    return U2P(1);
}

/* A deadline join from inside a weft thread: arg is the blocked target. */
static void *timed_join(void *arg)
{
    weft_t target = (weft_t)P2U(arg);
    int64_t deadline = weft_after(WEFT_MS(20));
    CHECK_ERR(weft_join(target, NULL, deadline), -ETIMEDOUT);
    CHECK(weft_now() >= deadline);
    CHECK_ERR(weft_join(target, NULL, 0), -ETIMEDOUT);
    return U2P(2);
}

static void check_forged(weft_t h)
{
    void *r = U2P(0xabc);
    CHECK_ERR(weft_join(h, &r, weft_after(WEFT_SEC(5))), -ESRCH);
    CHECK_EQ(P2U(r), 0xabc); /* not written on failure */
    CHECK_ERR(weft_join(h, NULL, 0), -ESRCH);
    CHECK_ERR(weft_detach(h), -ESRCH);
}

struct joiner {
    weft_t target;
    int rc;
    void *result;
};

static uint32_t joiners_done;

static void *joiner(void *arg)
{
    struct joiner *j = arg;
    j->result = U2P(0xdead);
    j->rc = weft_join(j->target, &j->result, WEFT_FOREVER);
    __atomic_fetch_add(&joiners_done, 1, __ATOMIC_RELEASE);
    weft_unpark(&joiners_done, -1);
    return NULL;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(void)
{
    /* weft_exit on a thread that is not a weft thread aborts. Forked before
     * the runtime starts, so the child is a plain single-threaded process. */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        weft_exit(NULL);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGABRT);

    weft_t t;
    void *r;

    /* Stale: joined once, then nothing. */
    CHECK_ERR(weft_spawn(&t, quick, U2P(5), NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 5);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), -ESRCH);
    CHECK_ERR(weft_join(t, NULL, 0), -ESRCH);
    CHECK_ERR(weft_detach(t), -ESRCH);

    /* Forged handles around a live, blocked thread. */
    uint32_t gate1 = 0;
    weft_t live;
    CHECK_ERR(weft_spawn(&live, blocked, &gate1, NULL), 0);

    check_forged(0);
    check_forged(UINT64_MAX);
    check_forged(0xdeadbeefcafebabeull);
    check_forged(((uint64_t)1 << 32) | 0xfffffff0u); /* slot out of range */
    check_forged(((uint64_t)7 << 32) | 0x7fffffffu);
    check_forged(live + ((uint64_t)1 << 32)); /* right slot, wrong generation */
    check_forged(live - ((uint64_t)1 << 32));
    check_forged(live ^ ((uint64_t)1 << 63));
    if (live >> 32)
        check_forged(live & 0xffffffffu);
    for (int i = 0; i < 2000; i++) {
        uint64_t h = next_random();
        if (i & 1)
            h &= 0xffffffff000000ffull; /* small slot, random generation */
        if (h != live)
            check_forged(h);
    }
    /* None of that touched the live thread. */
    CHECK_ERR(weft_join(live, &r, 0), -ETIMEDOUT);

    /* Deadlines on a blocked thread: 0, past, 20 ms ahead; then a real join. */
    CHECK_ERR(weft_join(live, &r, 0), -ETIMEDOUT);
    CHECK_ERR(weft_join(live, &r, 1), -ETIMEDOUT);
    CHECK_ERR(weft_join(live, &r, weft_now() - WEFT_MS(1)), -ETIMEDOUT);
    int64_t deadline = weft_after(WEFT_MS(20));
    CHECK_ERR(weft_join(live, &r, deadline), -ETIMEDOUT);
    CHECK(weft_now() >= deadline);
    weft_t tj;
    CHECK_ERR(weft_spawn(&tj, timed_join, U2P(live), NULL), 0);
    CHECK_ERR(weft_join(tj, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 2);
    gate_open(&gate1);
    r = NULL;
    CHECK_ERR(weft_join(live, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 77);
    CHECK_ERR(weft_join(live, &r, 0), -ESRCH);

    /* Joining oneself. */
    CHECK_ERR(weft_spawn(&t, join_self, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 1);

    /* A detached thread, still alive: no join, no second detach. */
    uint32_t gate2 = 0;
    CHECK_ERR(weft_spawn(&t, blocked, &gate2, NULL), 0);
    CHECK_ERR(weft_detach(t), 0);
    CHECK_ERR2(weft_join(t, &r, weft_after(WEFT_SEC(5))), -EINVAL, -ESRCH);
    CHECK_ERR2(weft_join(t, NULL, 0), -EINVAL, -ESRCH);
    CHECK_ERR2(weft_detach(t), -EINVAL, -ESRCH);
    gate_open(&gate2);

    /* A detached thread that has ended. */
    CHECK_ERR(weft_spawn(&t, quick, NULL, NULL), 0);
    CHECK_ERR(weft_detach(t), 0);
    usleep(10000);
    CHECK_ERR2(weft_join(t, &r, weft_after(WEFT_SEC(5))), -EINVAL, -ESRCH);
    CHECK_ERR2(weft_detach(t), -EINVAL, -ESRCH);

    /* Two joiners: one gets the result, the other fails at once. While the
     * first waits, a join from main and a detach fail too. */
    uint32_t gate3 = 0;
    weft_t target;
    CHECK_ERR(weft_spawn(&target, blocked, &gate3, NULL), 0);
    struct joiner j[2] = {{.target = target}, {.target = target}};
    weft_t jt[2];
    CHECK_ERR(weft_spawn(&jt[0], joiner, &j[0], NULL), 0);
    CHECK_ERR(weft_spawn(&jt[1], joiner, &j[1], NULL), 0);
    wait_at_least(&joiners_done, 1, "the second joiner to fail");
    int early = __atomic_load_n(&j[0].rc, __ATOMIC_ACQUIRE) != 0 ? 0 : 1;
    CHECK_ERR2(j[early].rc, -EINVAL, -ESRCH);
    CHECK_EQ(P2U(j[early].result), 0xdead);
    CHECK_ERR2(weft_join(target, &r, 0), -EINVAL, -ESRCH);
    CHECK_ERR(weft_detach(target), -EINVAL);
    gate_open(&gate3);
    wait_at_least(&joiners_done, 2, "the first joiner");
    CHECK_ERR(weft_join(jt[0], NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(jt[1], NULL, WEFT_FOREVER), 0);
    CHECK_ERR(j[1 - early].rc, 0);
    CHECK_EQ(P2U(j[1 - early].result), 77);
    CHECK_ERR(weft_join(target, &r, 0), -ESRCH);

    /* The runtime runs: too late to configure it. */
    CHECK_ERR(weft_init(NULL), -EBUSY);
    weft_config cfg = {.workers = 1};
    CHECK_ERR(weft_init(&cfg), -EBUSY);

    /* And it still works. */
    CHECK_ERR(weft_spawn(&t, quick, U2P(9), NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 9);
    return 0;
}
