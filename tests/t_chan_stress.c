/*
 * t_chan_stress: every element sent through a channel arrives exactly once,
 * whoever sends and receives and however many workers run them.
 *
 * 8 producers each send N = 10,000 (times WEFT_TEST_SCALE) distinct 64-bit
 * elements (producer << 32 | i); 8 consumers receive until the channel is
 * closed (-EPIPE), which main does once every producer has finished. Each
 * received element is counted in a table: at the end every element was
 * seen exactly once, and the consumers' sum and xor equal those of the
 * elements sent. The round runs on channels of capacity 0 (rendezvous), 1
 * and 64, with two casts: all weft threads, then half of the producers and
 * half of the consumers plain pthreads on the same channel. Producers and
 * consumers sometimes use a short deadline and retry on -ETIMEDOUT, so
 * deadlines race with partners; a timed-out operation must have done
 * nothing.
 *
 * Run without arguments, the program runs itself again (fork + exec of
 * /proc/self/exe) with WEFT_WORKERS=1, 2 and 8, and each child runs every
 * round.
 */
#include "check.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

#define PRODUCERS 8
#define CONSUMERS 8

extern char **environ;

struct round {
    weft_chan_t *c;
    long n;            /* elements per producer */
    uint8_t *seen;     /* PRODUCERS * n counters; atomic */
    uint64_t sum, xor; /* atomic; of everything received */
    long received;     /* atomic */
};

struct role {
    struct round *r;
    int id;
};

/* Every 7th operation of some threads uses a deadline 20 us ahead. */
static int64_t deadline_for(int id, long i)
{
    return (id & 1) && i % 7 == 0 ? weft_after(WEFT_US(20)) : WEFT_FOREVER;
}

static void *producer(void *arg)
{
    struct role *ro = arg;
    struct round *r = ro->r;
    for (long i = 0; i < r->n; i++) {
        uint64_t v = (uint64_t)ro->id << 32 | (uint64_t)i;
        int rc;
        while ((rc = weft_chan_send(r->c, &v, deadline_for(ro->id, i))) == -ETIMEDOUT)
            ;
        CHECK_ERR(rc, 0);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct role *ro = arg;
    struct round *r = ro->r;
    uint64_t sum = 0, xor = 0;
    long got = 0;
    for (long i = 0;; i++) {
        uint64_t v = UINT64_MAX;
        int rc = weft_chan_recv(r->c, &v, deadline_for(ro->id, i));
        if (rc == -ETIMEDOUT) {
            CHECK_EQ(v, UINT64_MAX);
            continue;
        }
        if (rc == -EPIPE)
            break;
        CHECK_ERR(rc, 0);
        uint64_t p = v >> 32, k = v & 0xffffffffu;
        if (p >= PRODUCERS || (long)k >= r->n)
            check_failed("consumer %d: bad element %#llx\n", ro->id, (unsigned long long)v);
        uint8_t c = __atomic_fetch_add(&r->seen[p * (uint64_t)r->n + k], 1, __ATOMIC_RELAXED);
        if (c != 0)
            check_failed("element %#llx received twice\n", (unsigned long long)v);
        sum += v;
        xor ^= v;
        got++;
    }
    __atomic_fetch_add(&r->sum, sum, __ATOMIC_RELAXED);
    __atomic_fetch_xor(&r->xor, xor, __ATOMIC_RELAXED);
    __atomic_fetch_add(&r->received, got, __ATOMIC_RELAXED);
    return NULL;
}

/* mixed: odd-numbered producers and consumers are pthreads. */
static void run_round(size_t cap, int mixed, long n)
{
    struct round r = {.n = n};
    r.seen = calloc((size_t)(PRODUCERS * n), 1);
    CHECK(r.seen != NULL);
    CHECK_ERR(weft_chan_new(&r.c, sizeof(uint64_t), cap), 0);

    struct role pro[PRODUCERS], con[CONSUMERS];
    weft_t pw[PRODUCERS], cw[CONSUMERS];
    pthread_t pp[PRODUCERS], cp[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        con[i] = (struct role){&r, i};
        if (mixed && (i & 1))
            CHECK_EQ(pthread_create(&cp[i], NULL, consumer, &con[i]), 0);
        else
            CHECK_ERR(weft_spawn(&cw[i], consumer, &con[i], NULL), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pro[i] = (struct role){&r, i};
        if (mixed && (i & 1))
            CHECK_EQ(pthread_create(&pp[i], NULL, producer, &pro[i]), 0);
        else
            CHECK_ERR(weft_spawn(&pw[i], producer, &pro[i], NULL), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        if (mixed && (i & 1))
            CHECK_EQ(pthread_join(pp[i], NULL), 0);
        else
            CHECK_ERR(weft_join(pw[i], NULL, WEFT_FOREVER), 0);
    }
    CHECK_ERR(weft_chan_close(r.c), 0);
    for (int i = 0; i < CONSUMERS; i++) {
        if (mixed && (i & 1))
            CHECK_EQ(pthread_join(cp[i], NULL), 0);
        else
            CHECK_ERR(weft_join(cw[i], NULL, WEFT_FOREVER), 0);
    }

    uint64_t sum = 0, xor = 0;
    for (uint64_t p = 0; p < PRODUCERS; p++)
        for (uint64_t k = 0; k < (uint64_t)n; k++) {
            uint64_t v = p << 32 | k;
            sum += v;
            xor ^= v;
            if (r.seen[p * (uint64_t)n + k] != 1)
                check_failed("cap %zu mixed %d: element %#llx received %d times\n", cap, mixed,
                             (unsigned long long)v, r.seen[p * (uint64_t)n + k]);
        }
    CHECK_EQ(r.received, PRODUCERS * n);
    CHECK(r.sum == sum);
    CHECK(r.xor == xor);
    weft_chan_free(r.c);
    free(r.seen);
}

static void run_all(void)
{
    long n = test_scale(10000);
    size_t caps[] = {0, 1, 64};
    for (int mixed = 0; mixed < 2; mixed++)
        for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
            int64_t t0 = weft_now();
            run_round(caps[i], mixed, n);
            printf("workers %s, cap %zu, %s: %d x %ld elements in %.0f ms\n",
                   getenv("WEFT_WORKERS"), caps[i], mixed ? "weft+pthreads" : "weft only",
                   PRODUCERS, n, (double)(weft_now() - t0) / 1e6);
            fflush(stdout);
        }
}

/* Runs this program again in "run" mode with WEFT_WORKERS=workers. */
static void run_child(const char *workers)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc(sizeof(char *) * (n + 2));
    CHECK(env != NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "WEFT_WORKERS=", 13) != 0)
            env[k++] = environ[i];
    char var[32];
    snprintf(var, sizeof var, "WEFT_WORKERS=%s", workers);
    env[k++] = var;
    env[k] = NULL;
    char *argv[] = {"t_chan_stress", "run", NULL};
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
        check_failed("WEFT_WORKERS=%s: child failed, status 0x%x\n", workers, status);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "run")) {
        run_all();
        return 0;
    }
    run_child("1");
    run_child("2");
    run_child("8");
    return 0;
}
