/*
 * t_sem: counting semaphores, from weft threads and kernel threads.
 *
 *  - errors: init with NULL or a value over WEFT_SEM_MAX gives -EINVAL; a
 *    post at WEFT_SEM_MAX gives -EOVERFLOW and changes nothing; wait on 0
 *    with deadline 0, 1 or one already past gives -ETIMEDOUT at once; a
 *    static WEFT_SEM_INIT(3) holds exactly 3 units;
 *  - timed waits: a wait on 0 with a deadline 10 ms ahead gives -ETIMEDOUT
 *    and weft_now() is then past the deadline; a wait with a far deadline
 *    is satisfied by a post from another thread;
 *  - destroy gives -EBUSY while a thread waits, 0 once it has gone;
 *  - mixed waiters: 8 pthreads and 8 weft threads wait on one semaphore;
 *    posted one unit at a time, exactly one more of them returns per post;
 *  - no lost wake-up: 100,000 post/wait hand-offs between two weft threads
 *    (and 20,000 between a weft thread and a pthread) over two semaphores;
 *  - a bounded buffer of 16 slots made of two semaphores and a weft_mutex:
 *    8 producers x 20,000 items, 8 consumers (one of each a pthread, two
 *    consumers waiting with short deadlines and retrying on -ETIMEDOUT);
 *    every item arrives exactly once (a seen[] bitmap, sum and xor). It
 *    runs on 1, 2 and 8 workers, each in a copy of this program started
 *    with that weft_init (WEFT_WORKERS removed from its environment), with
 *    10,000 more weft/weft hand-offs.
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

/* ---- errors and the non-blocking cases ---- */

static void check_errors(void)
{
    weft_sem_t s;
    CHECK_ERR(weft_sem_init(NULL, 0), -EINVAL);
    CHECK_ERR(weft_sem_init(&s, WEFT_SEM_MAX + 1u), -EINVAL);
    CHECK_ERR(weft_sem_init(&s, 0xffffffffu), -EINVAL);
    CHECK_ERR(weft_sem_wait(NULL, 0), -EINVAL);
    CHECK_ERR(weft_sem_post(NULL), -EINVAL);
    CHECK_ERR(weft_sem_destroy(NULL), -EINVAL);

    CHECK_ERR(weft_sem_init(&s, WEFT_SEM_MAX), 0);
    CHECK_EQ(weft_sem_value(&s), WEFT_SEM_MAX);
    CHECK_ERR(weft_sem_post(&s), -EOVERFLOW);
    CHECK_EQ(weft_sem_value(&s), WEFT_SEM_MAX);
    CHECK_ERR(weft_sem_wait(&s, 0), 0);
    CHECK_EQ(weft_sem_value(&s), WEFT_SEM_MAX - 1);
    CHECK_ERR(weft_sem_post(&s), 0);
    CHECK_ERR(weft_sem_post(&s), -EOVERFLOW);
    CHECK_EQ(weft_sem_value(&s), WEFT_SEM_MAX);
    CHECK_ERR(weft_sem_destroy(&s), 0);

    CHECK_ERR(weft_sem_init(&s, 0), 0);
    CHECK_EQ(weft_sem_value(&s), 0);
    CHECK_ERR(weft_sem_wait(&s, 0), -ETIMEDOUT);
    CHECK_ERR(weft_sem_wait(&s, 1), -ETIMEDOUT);
    CHECK_ERR(weft_sem_wait(&s, weft_now() - WEFT_MS(1)), -ETIMEDOUT);
    CHECK_ERR(weft_sem_wait(&s, weft_now()), -ETIMEDOUT);
    CHECK_EQ(weft_sem_value(&s), 0);
    CHECK_ERR(weft_sem_post(&s), 0);
    CHECK_EQ(weft_sem_value(&s), 1);
    CHECK_ERR(weft_sem_wait(&s, 0), 0); /* a unit there: taken even with deadline 0 */
    CHECK_ERR(weft_sem_wait(&s, 0), -ETIMEDOUT);
    CHECK_ERR(weft_sem_destroy(&s), 0);

    weft_sem_t st = WEFT_SEM_INIT(3);
    CHECK_EQ(weft_sem_value(&st), 3);
    for (int i = 0; i < 3; i++)
        CHECK_ERR(weft_sem_wait(&st, i == 0 ? WEFT_FOREVER : 0), 0);
    CHECK_ERR(weft_sem_wait(&st, 0), -ETIMEDOUT);
    CHECK_EQ(weft_sem_value(&st), 0);
    CHECK_ERR(weft_sem_destroy(&st), 0);

    /* A timed wait that passes, and not early. */
    int64_t d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_sem_wait(&st, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    CHECK_EQ(weft_sem_value(&st), 0);
    CHECK_ERR(weft_sem_destroy(&st), 0); /* the timed-out waiter has left */
}

static void *check_errors_thread(void *arg)
{
    (void)arg;
    check_errors();
    return U2P(7);
}

/* ---- a timed wait satisfied by a post; destroy while waited on ---- */

static weft_sem_t one;

static void *timed_waiter(void *arg)
{
    (void)arg;
    int64_t d = weft_after(WEFT_SEC(60));
    CHECK_ERR(weft_sem_wait(&one, d), 0);
    return NULL;
}

static void *forever_waiter(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_sem_wait(&one, WEFT_FOREVER), 0);
    return NULL;
}

/* Polls until destroy says a thread waits (it registers before parking). */
static void until_busy(weft_sem_t *s)
{
    for (long i = 0; weft_sem_destroy(s) != -EBUSY; i++) {
        CHECK(i < 2000000);
        usleep(50);
    }
}

static void test_wait_post(void)
{
    for (int kind = 0; kind < 4; kind++) {
        CHECK_ERR(weft_sem_init(&one, 0), 0);
        struct thr t;
        thr_start(&t, kind & 1, kind & 2 ? forever_waiter : timed_waiter, NULL);
        until_busy(&one);
        CHECK_ERR(weft_sem_destroy(&one), -EBUSY);
        CHECK_ERR(weft_sem_post(&one), 0);
        thr_join(&t);
        CHECK_EQ(weft_sem_value(&one), 0);
        CHECK_ERR(weft_sem_destroy(&one), 0);
    }
}

/* ---- pthreads and weft threads waiting on one semaphore ---- */

#define MIXED 8 /* of each kind */
static weft_sem_t mixed;
static uint32_t returned;

static void *mixed_waiter(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_sem_wait(&mixed, WEFT_FOREVER), 0);
    __atomic_fetch_add(&returned, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *mixed_poster(void *arg)
{
    (void)arg;
    /* Posts one unit at a time; exactly one more waiter returns for each. */
    for (uint32_t k = 1; k <= 2 * MIXED; k++) {
        CHECK_ERR(weft_sem_post(&mixed), 0);
        uint32_t r;
        for (long i = 0; (r = __atomic_load_n(&returned, __ATOMIC_SEQ_CST)) < k; i++) {
            CHECK(i < 20000000);
            if (weft_self())
                weft_yield();
            else
                usleep(20);
        }
        CHECK_EQ(r, k);
    }
    return NULL;
}

static void test_mixed_waiters(int poster_kernel)
{
    returned = 0;
    CHECK_ERR(weft_sem_init(&mixed, 0), 0);
    struct thr t[2 * MIXED];
    for (int i = 0; i < 2 * MIXED; i++)
        thr_start(&t[i], i & 1, mixed_waiter, NULL);
    usleep(10000); /* most are waiting by now; nothing depends on it */
    CHECK_EQ(__atomic_load_n(&returned, __ATOMIC_SEQ_CST), 0);
    struct thr p;
    thr_start(&p, poster_kernel, mixed_poster, NULL);
    thr_join(&p);
    for (int i = 0; i < 2 * MIXED; i++)
        thr_join(&t[i]);
    CHECK_EQ(returned, 2 * MIXED);
    CHECK_EQ(weft_sem_value(&mixed), 0);
    CHECK_ERR(weft_sem_destroy(&mixed), 0);
}

/* ---- hand-offs: no lost wake-up ---- */

static weft_sem_t ping, pong;
static long handoffs;

static void *ping_side(void *arg)
{
    (void)arg;
    for (long i = 0; i < handoffs; i++) {
        CHECK_ERR(weft_sem_post(&ping), 0);
        CHECK_ERR(weft_sem_wait(&pong, WEFT_FOREVER), 0);
    }
    return NULL;
}

static void *pong_side(void *arg)
{
    (void)arg;
    for (long i = 0; i < handoffs; i++) {
        CHECK_ERR(weft_sem_wait(&ping, WEFT_FOREVER), 0);
        CHECK_ERR(weft_sem_post(&pong), 0);
    }
    return NULL;
}

static void test_handoff(int ping_kernel, int pong_kernel, long n)
{
    handoffs = n;
    CHECK_ERR(weft_sem_init(&ping, 0), 0);
    CHECK_ERR(weft_sem_init(&pong, 0), 0);
    struct thr a, b;
    thr_start(&a, ping_kernel, ping_side, NULL);
    thr_start(&b, pong_kernel, pong_side, NULL);
    thr_join(&a);
    thr_join(&b);
    CHECK_EQ(weft_sem_value(&ping), 0);
    CHECK_EQ(weft_sem_value(&pong), 0);
}

/* ---- a bounded buffer ---- */

#define SLOTS     16
#define PRODUCERS 8
#define CONSUMERS 8
#define POISON    UINT64_MAX

static struct {
    weft_sem_t empty, full;
    weft_mutex_t lock;
    uint64_t buf[SLOTS]; /* lock */
    uint64_t head, tail; /* lock */
    long per_producer;
    uint8_t *seen; /* one byte per item, set with an atomic exchange */
} bb;

struct consumed {
    int timed; /* wait with short deadlines, retrying on -ETIMEDOUT */
    uint64_t n, sum, xor, timeouts;
};

static void bb_put(uint64_t v)
{
    CHECK_ERR(weft_sem_wait(&bb.empty, WEFT_FOREVER), 0);
    CHECK_ERR(weft_mutex_lock(&bb.lock), 0);
    bb.buf[bb.tail++ % SLOTS] = v;
    CHECK_ERR(weft_mutex_unlock(&bb.lock), 0);
    CHECK_ERR(weft_sem_post(&bb.full), 0);
}

static uint64_t bb_get(struct consumed *c)
{
    if (c->timed) {
        for (;;) {
            int64_t d = weft_after(WEFT_US(20 + c->timeouts % 50));
            int r = weft_sem_wait(&bb.full, d);
            if (r == 0)
                break;
            CHECK_ERR(r, -ETIMEDOUT);
            CHECK(weft_now() >= d);
            c->timeouts++;
        }
    } else {
        CHECK_ERR(weft_sem_wait(&bb.full, WEFT_FOREVER), 0);
    }
    CHECK_ERR(weft_mutex_lock(&bb.lock), 0);
    CHECK(bb.head < bb.tail);
    uint64_t v = bb.buf[bb.head++ % SLOTS];
    CHECK_ERR(weft_mutex_unlock(&bb.lock), 0);
    CHECK_ERR(weft_sem_post(&bb.empty), 0);
    return v;
}

static void *producer(void *arg)
{
    uint64_t p = P2U(arg);
    for (long i = 0; i < bb.per_producer; i++)
        bb_put(p * (uint64_t)bb.per_producer + (uint64_t)i);
    return NULL;
}

static void *consumer(void *arg)
{
    struct consumed *c = arg;
    uint64_t total = PRODUCERS * (uint64_t)bb.per_producer;
    for (;;) {
        uint64_t v = bb_get(c);
        if (v == POISON)
            break;
        CHECK(v < total);
        if (__atomic_exchange_n(&bb.seen[v], 1, __ATOMIC_RELAXED))
            check_failed("item %llu consumed twice\n", (unsigned long long)v);
        c->n++;
        c->sum += v;
        c->xor ^= v * 0x9e3779b97f4a7c15ull;
    }
    return NULL;
}

static void test_bounded_buffer(const char *what)
{
    bb.per_producer = test_scale(20000);
    uint64_t total = PRODUCERS * (uint64_t)bb.per_producer;
    bb.seen = calloc(total, 1);
    CHECK(bb.seen != NULL);
    CHECK_ERR(weft_sem_init(&bb.empty, SLOTS), 0);
    CHECK_ERR(weft_sem_init(&bb.full, 0), 0);
    CHECK_ERR(weft_mutex_init(&bb.lock), 0);
    bb.head = bb.tail = 0;

    struct thr prod[PRODUCERS], cons[CONSUMERS];
    struct consumed c[CONSUMERS] = {{0}};
    for (int i = 0; i < CONSUMERS; i++) {
        c[i].timed = i == 1 || i == 2;
        thr_start(&cons[i], i == 0, consumer, &c[i]);
    }
    for (int i = 0; i < PRODUCERS; i++)
        thr_start(&prod[i], i == 0, producer, U2P(i));
    for (int i = 0; i < PRODUCERS; i++)
        thr_join(&prod[i]);
    for (int i = 0; i < CONSUMERS; i++)
        bb_put(POISON);
    uint64_t n = 0, sum = 0, xor = 0, timeouts = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        thr_join(&cons[i]);
        n += c[i].n;
        sum += c[i].sum;
        xor ^= c[i].xor;
        timeouts += c[i].timeouts;
    }
    uint64_t want_sum = 0, want_xor = 0;
    for (uint64_t v = 0; v < total; v++) {
        CHECK_EQ(bb.seen[v], 1);
        want_sum += v;
        want_xor ^= v * 0x9e3779b97f4a7c15ull;
    }
    CHECK_EQ(n, total);
    CHECK_EQ(sum, want_sum);
    CHECK_EQ(xor, want_xor);
    CHECK_EQ(bb.head, bb.tail);
    CHECK_EQ(weft_sem_value(&bb.full), 0);
    CHECK_EQ(weft_sem_value(&bb.empty), SLOTS);
    CHECK_ERR(weft_sem_destroy(&bb.full), 0);
    CHECK_ERR(weft_sem_destroy(&bb.empty), 0);
    CHECK_ERR(weft_mutex_destroy(&bb.lock), 0);
    free(bb.seen);
    printf("bounded buffer (%s): %llu items exactly once, %llu timed waits expired\n", what,
           (unsigned long long)total, (unsigned long long)timeouts);
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
    char *argv[] = {"t_sem", "workers", arg, NULL};
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
        check_failed("t_sem on %d workers failed: status 0x%x\n", n, status);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "workers")) {
        int n = atoi(argv[2]);
        CHECK_ERR(weft_init(&(weft_config){.workers = n}), 0);
        char what[32];
        snprintf(what, sizeof(what), "%d workers", n);
        test_bounded_buffer(what);
        test_handoff(0, 0, test_scale(10000));
        printf("hand-offs (%s): ok\n", what);
        return 0;
    }

    check_errors();
    weft_t t;
    void *r;
    CHECK_ERR(weft_spawn(&t, check_errors_thread, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 7);
    printf("errors and non-blocking waits: ok\n");

    test_wait_post();
    printf("timed wait satisfied by a post, destroy -EBUSY while waited on: ok\n");

    test_mixed_waiters(0);
    test_mixed_waiters(1);
    printf("mixed pthread and weft waiters, one wake-up per post: ok\n");

    long n = test_scale(100000);
    test_handoff(0, 0, n);
    printf("hand-offs weft/weft: %ld, none lost\n", n);
    long m = test_scale(20000);
    test_handoff(0, 1, m);
    test_handoff(1, 0, m);
    printf("hand-offs weft/pthread: 2 x %ld, none lost\n", m);

    run_workers(1);
    run_workers(2);
    run_workers(8);
    return 0;
}
