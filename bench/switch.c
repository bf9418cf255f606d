/*
 * switch - the cost of one context switch between two threads, ns per switch.
 *
 * weft: the runtime starts with ONE worker; two weft threads call weft_yield
 * in a loop, so every yield hands the worker to the other thread. This is the
 * whole scheduler path (yield, run queue, switch), not just the assembly.
 * Each thread checks after every yield whether the other one ran in between,
 * and the figure divides by the switches actually observed.
 *
 * Baseline: two pthreads pinned to the same CPU (sched_setaffinity) passing a
 * turn back and forth through one shared word with FUTEX_WAIT / FUTEX_WAKE,
 * the cheapest way two kernel threads can take turns on one core. Every
 * hand-off is one kernel context switch.
 *
 * A third figure, Boost.Context's jump_fcontext (a bare switch with no
 * scheduler), comes from bench/switch_boost.cc, which bench/run.sh builds and
 * runs only when libboost-context-dev is installed; this program does not
 * depend on it. Reported: the best of a few runs after one warm-up.
 */
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

/* ---- weft: two threads yielding on one worker --------------------------- */

struct yield_pair {
    long n;                /* yields per thread */
    atomic_int ready;      /* threads that reached the start line */
    atomic_int last;       /* id of the thread that ran most recently */
    int64_t start[2];      /* each thread's start time, ns */
    int64_t end[2];        /* each thread's end time, ns */
    long seen[2];          /* yields after which the other thread had run */
};

struct yielder {
    struct yield_pair *pair;
    int id;
};

static void *yielder_main(void *p)
{
    struct yielder *y = p;
    struct yield_pair *pr = y->pair;
    atomic_fetch_add(&pr->ready, 1);
    while (atomic_load(&pr->ready) < 2)
        weft_yield();

    long seen = 0;
    pr->start[y->id] = bench_now();
    for (long i = 0; i < pr->n; i++) {
        atomic_store_explicit(&pr->last, y->id, memory_order_relaxed);
        weft_yield();
        seen += atomic_load_explicit(&pr->last, memory_order_relaxed) != y->id;
    }
    pr->end[y->id] = bench_now();
    pr->seen[y->id] = seen;
    return NULL;
}

static long weft_switches_seen, weft_switches_asked;

static double weft_switch(void *p)
{
    struct yield_pair pr = {.n = *(long *)p};
    struct yielder y[2] = {{&pr, 0}, {&pr, 1}};
    weft_t t[2];
    for (int i = 0; i < 2; i++) {
        int rc = weft_spawn(&t[i], yielder_main, &y[i], NULL);
        BENCH_CHECK(rc == 0, "weft_spawn: %d", rc);
    }
    for (int i = 0; i < 2; i++) {
        int rc = weft_join(t[i], NULL, WEFT_FOREVER);
        BENCH_CHECK(rc == 0, "weft_join: %d", rc);
    }
    int64_t t0 = pr.start[0] < pr.start[1] ? pr.start[0] : pr.start[1];
    int64_t t1 = pr.end[0] > pr.end[1] ? pr.end[0] : pr.end[1];
    long seen = pr.seen[0] + pr.seen[1];
    weft_switches_seen = seen;
    weft_switches_asked = 2 * pr.n;
    BENCH_CHECK(seen > 0, "weft_yield never switched to the other thread");
    return (double)(t1 - t0) / (double)seen;
}

/* ---- baseline: two pinned pthreads and a futex -------------------------- */

struct futex_pair {
    long n;                 /* hand-offs per thread */
    _Atomic uint32_t turn;  /* id of the thread whose turn it is */
    pthread_barrier_t go;   /* both pinned before the clock starts */
    int cpu;                /* the CPU both threads are pinned to */
    int64_t start[2], end[2];
};

struct futex_side {
    struct futex_pair *pair;
    uint32_t id;
};

static long futex_op(_Atomic uint32_t *addr, int op, uint32_t val)
{
    return syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0);
}

static void *futex_main(void *p)
{
    struct futex_side *s = p;
    struct futex_pair *pr = s->pair;
    uint32_t me = s->id, other = 1 - s->id;

    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(pr->cpu, &set);
    BENCH_CHECK(sched_setaffinity(0, sizeof set, &set) == 0, "sched_setaffinity: %m");
    pthread_barrier_wait(&pr->go);

    pr->start[me] = bench_now();
    for (long i = 0; i < pr->n; i++) {
        while (atomic_load(&pr->turn) != me)
            futex_op(&pr->turn, FUTEX_WAIT_PRIVATE, other);
        atomic_store(&pr->turn, other);
        futex_op(&pr->turn, FUTEX_WAKE_PRIVATE, 1);
    }
    pr->end[me] = bench_now();
    return NULL;
}

static int first_cpu(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set))
            return c;
    return 0;
}

static double futex_switch(void *p)
{
    struct futex_pair pr = {.n = *(long *)p, .turn = 0, .cpu = first_cpu()};
    struct futex_side s[2] = {{&pr, 0}, {&pr, 1}};
    pthread_t t[2];
    pthread_barrier_init(&pr.go, NULL, 2);
    for (int i = 0; i < 2; i++) {
        int rc = pthread_create(&t[i], NULL, futex_main, &s[i]);
        BENCH_CHECK(rc == 0, "pthread_create: %s", strerror(rc));
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&pr.go);
    int64_t t0 = pr.start[0] < pr.start[1] ? pr.start[0] : pr.start[1];
    int64_t t1 = pr.end[0] > pr.end[1] ? pr.end[0] : pr.end[1];
    return (double)(t1 - t0) / (double)(2 * pr.n);
}

int main(void)
{
    if (getenv("WEFT_WORKERS") != NULL)
        bench_note("note: WEFT_WORKERS is set; it overrides workers=1 below");
    weft_config cfg = {.workers = 1, .stack_size = 0};
    int rc = weft_init(&cfg);
    BENCH_CHECK(rc == 0, "weft_init(workers=1): %d", rc);

    bench_header("switch: two threads taking turns on one CPU, ns per switch (weft: "
                 "weft_yield on 1 worker; futex: 2 pinned pthreads, FUTEX_WAIT/WAKE)",
                 "best of 5 runs (futex: 3) after 1 warm-up");

    long wn = bench_size(2000000, 1000);
    long fn = bench_size(50000, 100);
    double w = bench_best(weft_switch, &wn, 5);
    if (weft_switches_seen < weft_switches_asked - 2) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "warning: only %ld of %ld weft_yield calls switched to the other thread",
                 weft_switches_seen, weft_switches_asked);
        bench_note(msg);
    }
    double b = bench_best(futex_switch, &fn, 3);
    bench_print("switch.weft", w, "ns/switch");
    bench_print("switch.futex", b, "ns/switch");
    bench_ratio("switch.ratio", w, b, "futex/weft");
    return 0;
}
