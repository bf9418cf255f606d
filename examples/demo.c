/*
 * demo.c - what weft does today, and how fast, beside pthreads.
 *
 * Runs in a few seconds: creates and joins threads one at a time, keeps
 * 100,000 threads alive at once (which pthreads cannot do cheaply), and
 * switches between two threads, each beside the pthread equivalent; then
 * shows, on its one worker, a thread that never yields being preempted and
 * a call that blocks its kernel thread not stalling the others.
 */
#include <weft.h>

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *ret_arg(void *a) { return a; }

struct call {
    double (*fn)(int);
    int n;
    double out;
};

static void *run_call(void *p)
{
    struct call *c = p;
    c->out = c->fn(c->n);
    return NULL;
}

/* Runs fn(n) on a weft thread and waits for it: weft's figures are taken
 * from inside weft, as a program built on it runs. */
static double on_weft(double (*fn)(int), int n)
{
    struct call c = {fn, n, 0};
    weft_t t;
    weft_spawn(&t, run_call, &c, NULL);
    weft_join(t, NULL, WEFT_FOREVER);
    return c.out;
}

static double weft_create_join(int n)
{
    int64_t t0 = weft_now();
    for (int i = 0; i < n; i++) {
        weft_t t;
        void *r;
        if (weft_spawn(&t, ret_arg, (void *)(intptr_t)i, NULL) || weft_join(t, &r, WEFT_FOREVER) ||
            (intptr_t)r != i) {
            fprintf(stderr, "demo: spawn/join failed\n");
            exit(1);
        }
    }
    return (double)(weft_now() - t0) / n;
}

static double pthread_create_join(int n)
{
    int64_t t0 = weft_now();
    for (int i = 0; i < n; i++) {
        pthread_t t;
        void *r;
        pthread_create(&t, NULL, ret_arg, (void *)(intptr_t)i);
        pthread_join(t, &r);
    }
    return (double)(weft_now() - t0) / n;
}

static uint32_t gate;
static atomic_int parked;

static void *wait_gate(void *a)
{
    atomic_fetch_add(&parked, 1);
    while (__atomic_load_n(&gate, __ATOMIC_ACQUIRE) == 0)
        weft_park(&gate, 0, WEFT_FOREVER);
    return a;
}

static long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void *yielder(void *a)
{
    for (long i = 0; i < (long)(intptr_t)a; i++)
        weft_yield();
    return NULL;
}

static uint32_t ping;
static void *futex_pong(void *a)
{
    long n = (long)(intptr_t)a;
    for (long i = 0; i < n; i++) {
        uint32_t want = (uint32_t)(2 * i + 1);
        while (__atomic_load_n(&ping, __ATOMIC_ACQUIRE) != want)
            syscall(SYS_futex, &ping, FUTEX_WAIT_PRIVATE, want - 1, NULL, NULL, 0);
        __atomic_store_n(&ping, want + 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, &ping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    return NULL;
}

static double futex_switch(long n)
{
    pthread_t t;
    ping = 0;
    pthread_create(&t, NULL, futex_pong, (void *)(intptr_t)n);
    int64_t t0 = weft_now();
    for (long i = 0; i < n; i++) {
        uint32_t want = (uint32_t)(2 * i);
        __atomic_store_n(&ping, want + 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, &ping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        while (__atomic_load_n(&ping, __ATOMIC_ACQUIRE) != want + 2)
            syscall(SYS_futex, &ping, FUTEX_WAIT_PRIVATE, want + 1, NULL, NULL, 0);
    }
    double ns = (double)(weft_now() - t0) / (2.0 * n);
    pthread_join(t, NULL);
    return ns;
}

/* A thread that runs its own loop and never calls weft, and a thread that
 * counts how often it gets the worker meanwhile. */
static int spin_stop; /* atomic */
static long ticks;    /* atomic */

static void *spinner(void *a)
{
    unsigned long n = 0;
    while (!__atomic_load_n(&spin_stop, __ATOMIC_RELAXED))
        n++;
    return (void *)(uintptr_t)n;
}

static void *ticker(void *a)
{
    while (!__atomic_load_n(&spin_stop, __ATOMIC_RELAXED)) {
        __atomic_fetch_add(&ticks, 1, __ATOMIC_RELAXED);
        weft_sleep(weft_after(WEFT_MS(1)));
    }
    return a;
}

static int64_t block_ms(void *a)
{
    usleep((useconds_t)(intptr_t)a * 1000); /* blocks the kernel thread */
    return 0;
}

static void *blocker(void *a)
{
    weft_blocking(block_ms, a);
    __atomic_store_n(&spin_stop, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* Runs first (one of the two) with ticker beside it on the one worker, for
 * about ms; returns how many times ticker ran. */
static long beside_ticker(void *(*first)(void *), void *arg, int ms)
{
    __atomic_store_n(&spin_stop, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&ticks, 0, __ATOMIC_RELAXED);
    weft_t a, b;
    weft_spawn(&b, ticker, NULL, NULL);
    weft_spawn(&a, first, arg, NULL);
    if (first == spinner) {
        usleep((useconds_t)ms * 1000); /* main is not a weft thread */
        __atomic_store_n(&spin_stop, 1, __ATOMIC_RELAXED);
    }
    weft_join(a, NULL, WEFT_FOREVER);
    weft_join(b, NULL, WEFT_FOREVER);
    return __atomic_load_n(&ticks, __ATOMIC_RELAXED);
}

int main(void)
{
    /* One worker, so the two yielding threads below really switch to each
     * other (with two, each could run alone on its own worker). */
    weft_config cfg = {.workers = 1};
    weft_init(&cfg);
    printf("weft demo: user threads beside pthreads (one weft worker, one run, this machine)\n\n");

    on_weft(weft_create_join, 1000); /* warm the stack cache */
    double w = on_weft(weft_create_join, 200000), p = pthread_create_join(5000);
    printf("%-44s weft %9.1f ns   pthread %9.1f ns   %6.1fx\n", "create + join, one at a time", w, p,
           p / w);

    int n = 100000;
    long before = rss_kib();
    int64_t t0 = weft_now();
    weft_t *ts = malloc(sizeof *ts * (size_t)n);
    for (int i = 0; i < n; i++)
        if (weft_spawn(&ts[i], wait_gate, (void *)(intptr_t)i, NULL)) {
            fprintf(stderr, "demo: spawn %d failed\n", i);
            return 1;
        }
    while (atomic_load(&parked) < n)
        weft_yield();
    double made = (double)(weft_now() - t0) / 1e6;
    long per = (rss_kib() - before) * 1024 / n;
    __atomic_store_n(&gate, 1, __ATOMIC_RELEASE);
    weft_unpark(&gate, -1);
    long sum = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        weft_join(ts[i], &r, WEFT_FOREVER);
        sum += (intptr_t)r;
    }
    free(ts);
    printf("%-44s %d threads in %.0f ms, %ld bytes resident each (sum %s)\n",
           "100,000 threads alive at once", n, made, per,
           sum == (long)n * (n - 1) / 2 ? "ok" : "WRONG");

    long sw = 1000000;
    weft_t a, b;
    t0 = weft_now();
    weft_spawn(&a, yielder, (void *)(intptr_t)sw, NULL);
    weft_spawn(&b, yielder, (void *)(intptr_t)sw, NULL);
    weft_join(a, NULL, WEFT_FOREVER);
    weft_join(b, NULL, WEFT_FOREVER);
    double ys = (double)(weft_now() - t0) / (2.0 * sw);
    double fs = futex_switch(100000);
    printf("%-44s weft %9.1f ns   futex   %9.1f ns   %6.1fx\n",
           "switch between two threads (weft: yield)", ys, fs, fs / ys);

    long spun = beside_ticker(spinner, NULL, 200);
    printf("%-44s another thread still ran %ld times (1 ms sleeps) in 200 ms\n",
           "a thread spinning in `for (;;) n++;`", spun);
    long blocked = beside_ticker(blocker, (void *)(intptr_t)200, 200);
    printf("%-44s another thread still ran %ld times in those 200 ms\n",
           "a 200 ms blocking call in weft_blocking", blocked);
    printf("\n(make bench runs the full benchmarks; numbers on a shared VM are noisy)\n");
    return 0;
}
