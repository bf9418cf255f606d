/*
 * demo.c - what weft does today, and how fast, beside pthreads.
 *
 * Runs in a few seconds: creates and joins threads one at a time, keeps
 * 100,000 threads alive at once (which pthreads cannot do cheaply),
 * switches between two threads, and passes a value back and forth over a
 * channel, each beside the pthread equivalent; then shows, on its one
 * worker, a thread that never yields being preempted and a call that
 * blocks its kernel thread not stalling the others; stops a group of
 * 10,000 blocked threads beside pthread_cancel; and runs calls in an
 * isolated child process, one of which crashes and one of which hangs.
 */
#include <weft.h>

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    (void)a;
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

/* ---- a channel, beside a mutex and condition variable ---- */

static void *chan_echo(void *arg)
{
    weft_chan_t **ch = arg; /* ch[0]: in, ch[1]: out */
    long v;
    while (weft_chan_recv(ch[0], &v, WEFT_FOREVER) == 0)
        weft_chan_send(ch[1], &v, WEFT_FOREVER);
    return NULL;
}

static double chan_pingpong(int n)
{
    weft_chan_t *ch[2];
    weft_chan_new(&ch[0], sizeof(long), 0);
    weft_chan_new(&ch[1], sizeof(long), 0);
    weft_t t;
    weft_spawn(&t, chan_echo, ch, NULL);
    int64_t t0 = weft_now();
    long sum = 0;
    for (long i = 0; i < n; i++) {
        long v = i;
        weft_chan_send(ch[0], &v, WEFT_FOREVER);
        weft_chan_recv(ch[1], &v, WEFT_FOREVER);
        sum += v;
    }
    double ns = (double)(weft_now() - t0) / n;
    weft_chan_close(ch[0]);
    weft_join(t, NULL, WEFT_FOREVER);
    weft_chan_free(ch[0]);
    weft_chan_free(ch[1]);
    if (sum != (long)n * (n - 1) / 2) {
        fprintf(stderr, "demo: the channel lost a value\n");
        exit(1);
    }
    return ns;
}

static pthread_mutex_t pm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pc = PTHREAD_COND_INITIALIZER;
static long turn, rounds;

static void *cond_echo(void *a)
{
    pthread_mutex_lock(&pm);
    while (turn < 2 * rounds) {
        while (turn % 2 == 0)
            pthread_cond_wait(&pc, &pm);
        turn++;
        pthread_cond_broadcast(&pc);
    }
    pthread_mutex_unlock(&pm);
    return a;
}

static double cond_pingpong(long n)
{
    pthread_t t;
    turn = 0;
    rounds = n;
    pthread_create(&t, NULL, cond_echo, NULL);
    int64_t t0 = weft_now();
    pthread_mutex_lock(&pm);
    for (long i = 0; i < n; i++) {
        turn++;
        pthread_cond_broadcast(&pc);
        while (turn % 2 == 1)
            pthread_cond_wait(&pc, &pm);
    }
    pthread_mutex_unlock(&pm);
    double ns = (double)(weft_now() - t0) / n;
    pthread_join(t, NULL);
    return ns;
}

/* ---- stopping a group, beside pthread_cancel ---- */

static void *wait_forever(void *a)
{
    weft_chan_t *ch = a;
    int r = weft_chan_recv(ch, NULL, WEFT_FOREVER); /* nobody ever sends */
    return (void *)(intptr_t)r;
}

static atomic_int in_read;

static void *pthread_wait_forever(void *a)
{
    int fd = (int)(intptr_t)a;
    char c;
    atomic_fetch_add(&in_read, 1);
    read(fd, &c, 1); /* nobody ever writes; a cancellation point */
    return NULL;
}

/* ---- isolated calls ---- */

static ssize_t add_one(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx;
    long v;
    if (len != sizeof v || cap < sizeof v)
        return -EINVAL;
    memcpy(&v, in, sizeof v);
    v++;
    memcpy(out, &v, sizeof v);
    return sizeof v;
}
WEFT_PROC_ENTRY("add_one", add_one);

static ssize_t crash(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out, (void)cap;
    volatile int *nowhere = NULL;
    return *nowhere; /* SIGSEGV, in the child */
}
WEFT_PROC_ENTRY("crash", crash);

static ssize_t hang(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out, (void)cap;
    for (;;)
        pause();
    return 0;
}
WEFT_PROC_ENTRY("hang", hang);

static void *isolated(void *arg)
{
    weft_proc_t *p;
    if (weft_proc_new(&p, NULL) < 0) {
        fprintf(stderr, "demo: weft_proc_new failed\n");
        exit(1);
    }
    long v = 41, r = 0;
    ssize_t n = weft_proc_call(p, "add_one", &v, sizeof v, &r, sizeof r, WEFT_FOREVER); /* starts it */
    int calls = 10000;
    int64_t t0 = weft_now();
    for (int i = 0; i < calls && n == sizeof r; i++)
        n = weft_proc_call(p, "add_one", &r, sizeof r, &r, sizeof r, WEFT_FOREVER);
    double us = (double)(weft_now() - t0) / calls / 1e3;
    printf("%-44s %.1f us per warm call; 41 + 1 + %d = %ld\n", "a call in an isolated child process", us,
           calls, n == sizeof r ? r : -1L);

    n = weft_proc_call(p, "crash", NULL, 0, NULL, 0, weft_after(WEFT_SEC(5)));
    weft_proc_status_t st;
    weft_proc_status(p, &st);
    ssize_t after = weft_proc_call(p, "add_one", &v, sizeof v, &r, sizeof r, WEFT_FOREVER);
    printf("%-44s %s (%s in the child); the next call: %s\n", "a call that dereferences NULL",
           n == -ECHILD ? "-ECHILD" : "unexpected", st.signal ? strsignal(st.signal) : "?",
           after == sizeof r && r == 42 ? "42, in a fresh child" : "FAILED");

    t0 = weft_now();
    n = weft_proc_call(p, "hang", NULL, 0, NULL, 0, weft_after(WEFT_MS(100)));
    printf("%-44s %s after %.0f ms, the child killed and reaped\n", "a call that hangs, deadline 100 ms",
           n == -ETIMEDOUT ? "-ETIMEDOUT" : "unexpected", (double)(weft_now() - t0) / 1e6);
    weft_proc_free(p);
    return arg;
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

    double cw = on_weft(chan_pingpong, 200000), cp = cond_pingpong(20000);
    printf("%-44s weft %9.1f ns   condvar %9.1f ns   %6.1fx\n",
           "ping-pong over a channel (round trip)", cw, cp, cp / cw);

    long spun = beside_ticker(spinner, NULL, 200);
    printf("%-44s another thread still ran %ld times (1 ms sleeps) in 200 ms\n",
           "a thread spinning in `for (;;) n++;`", spun);
    long blocked = beside_ticker(blocker, (void *)(intptr_t)200, 200);
    printf("%-44s another thread still ran %ld times in those 200 ms\n",
           "a 200 ms blocking call in weft_blocking", blocked);

    /* 10,000 weft threads blocked for ever, stopped as one group; 1,000
     * pthreads blocked in read(2), cancelled and joined one by one. */
    int ng = 10000, np = 1000;
    weft_group_t *g;
    weft_chan_t *never;
    weft_group_new(&g, NULL);
    weft_chan_new(&never, 1, 0);
    weft_attr ga = {.group = g};
    for (int i = 0; i < ng; i++)
        weft_spawn(NULL, wait_forever, never, &ga);
    weft_sleep(weft_after(WEFT_MS(50))); /* let them all block */
    t0 = weft_now();
    weft_group_stop(g, 0);
    int gw = weft_group_wait(g, weft_after(WEFT_SEC(10)));
    double gus = (double)(weft_now() - t0) / 1e3;
    weft_group_free(g);
    weft_chan_free(never);
    int fds[2];
    pthread_t *pts = malloc(sizeof *pts * (size_t)np);
    if (!pts || pipe(fds) != 0) {
        fprintf(stderr, "demo: pipe failed\n");
        return 1;
    }
    pthread_attr_t small;
    pthread_attr_init(&small);
    pthread_attr_setstacksize(&small, 64 * 1024);
    int made_p = 0;
    while (made_p < np && pthread_create(&pts[made_p], &small, pthread_wait_forever,
                                         (void *)(intptr_t)fds[0]) == 0)
        made_p++;
    while (atomic_load(&in_read) < made_p)
        usleep(1000);
    usleep(50000); /* into read(2) */
    t0 = weft_now();
    for (int i = 0; i < made_p; i++)
        pthread_cancel(pts[i]);
    for (int i = 0; i < made_p; i++)
        pthread_join(pts[i], NULL);
    double pus = (double)(weft_now() - t0) / 1e3;
    close(fds[0]);
    close(fds[1]);
    free(pts);
    printf("%-44s %s: %.2f us each; %d pthreads, pthread_cancel+join: %.2f us each\n",
           "stop 10,000 blocked threads as one group", gw == 0 ? "all ended" : "FAILED",
           gus / ng, made_p, made_p ? pus / made_p : 0.0);

    weft_t it; /* the calls are made from a weft thread, as a weft program makes them */
    weft_spawn(&it, isolated, NULL, NULL);
    weft_join(it, NULL, WEFT_FOREVER);
    printf("\n(make bench runs the full benchmarks; numbers on a shared VM are noisy)\n");
    return 0;
}
