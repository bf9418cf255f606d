/*
 * skynet - a tree of threads: 1,000,000 leaves, fan-out 10, 6 levels.
 *
 * Every node spawns 10 children, each numbered into its own tenth of the
 * parent's range, joins them and returns the sum of their results; a leaf
 * returns its number. The root's result must be 0 + 1 + ... + 999,999 =
 * 499,999,500,000, checked after every run. 1,111,111 threads are created
 * and joined in all, and many are alive at once, so the figure mixes spawn,
 * join, parking and the scheduler under load. Reported in ms for the whole
 * tree, best of a few runs after one warm-up; the runtime uses its default
 * worker count (the CPUs the process may use).
 *
 * Baselines:
 *  - Go (bench/go/skynet.go, goroutines and channels, the usual way the
 *    benchmark is written in Go): built and run by bench/run.sh when `go` is
 *    installed, which prints the ratio.
 *  - pthreads cannot hold a million-thread tree, so a second pair of figures,
 *    "skynet_10k", runs the same tree with 10,000 leaves (4 levels, 11,111
 *    threads) on weft and on pthreads (pthread_create/join, attr NULL).
 *
 * WEFT_BENCH_SCALE < 1 removes levels (1 level per factor of 10).
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "bench.h"

#define FANOUT 10
#define MAX_LEVELS 7

/* 10^i for i in [0, MAX_LEVELS]. */
static const uintptr_t tens[MAX_LEVELS + 1] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};

/* A node's argument: its first leaf number shifted left 3, its level (log10
 * of its leaf count) in the low 3 bits; no allocation per node. */
static void *encode(uintptr_t num, int level)
{
    return (void *)(num << 3 | (uintptr_t)level);
}

static void *weft_node(void *arg)
{
    uintptr_t num = (uintptr_t)arg >> 3;
    int level = (int)((uintptr_t)arg & 7);
    if (level == 0)
        return (void *)num;
    weft_t kids[FANOUT];
    for (int i = 0; i < FANOUT; i++) {
        int rc = weft_spawn(&kids[i], weft_node, encode(num + i * tens[level - 1], level - 1),
                            NULL);
        BENCH_CHECK(rc == 0, "weft_spawn at level %d: %d", level, rc);
    }
    uintptr_t sum = 0;
    for (int i = 0; i < FANOUT; i++) {
        void *r;
        int rc = weft_join(kids[i], &r, WEFT_FOREVER);
        BENCH_CHECK(rc == 0, "weft_join at level %d: %d", level, rc);
        sum += (uintptr_t)r;
    }
    return (void *)sum;
}

static void *pthread_node(void *arg)
{
    uintptr_t num = (uintptr_t)arg >> 3;
    int level = (int)((uintptr_t)arg & 7);
    if (level == 0)
        return (void *)num;
    pthread_t kids[FANOUT];
    for (int i = 0; i < FANOUT; i++) {
        int rc = pthread_create(&kids[i], NULL, pthread_node,
                                encode(num + i * tens[level - 1], level - 1));
        BENCH_CHECK(rc == 0, "pthread_create at level %d: %s", level, strerror(rc));
    }
    uintptr_t sum = 0;
    for (int i = 0; i < FANOUT; i++) {
        void *r;
        int rc = pthread_join(kids[i], &r);
        BENCH_CHECK(rc == 0, "pthread_join at level %d: %s", level, strerror(rc));
        sum += (uintptr_t)r;
    }
    return (void *)sum;
}

static uintptr_t expected(int levels)
{
    return tens[levels] * (tens[levels] - 1) / 2;
}

/* One whole tree; the root is spawned and joined from main. Returns ms. */
static double weft_tree(void *p)
{
    int levels = *(int *)p;
    weft_t root;
    void *r;
    int64_t t0 = bench_now();
    int rc = weft_spawn(&root, weft_node, encode(0, levels), NULL);
    BENCH_CHECK(rc == 0, "weft_spawn root: %d", rc);
    rc = weft_join(root, &r, WEFT_FOREVER);
    BENCH_CHECK(rc == 0, "weft_join root: %d", rc);
    int64_t t1 = bench_now();
    BENCH_CHECK((uintptr_t)r == expected(levels), "weft skynet sum %ju, expected %ju",
                (uintmax_t)(uintptr_t)r, (uintmax_t)expected(levels));
    return (double)(t1 - t0) / 1e6;
}

static double pthread_tree(void *p)
{
    int levels = *(int *)p;
    int64_t t0 = bench_now();
    void *r = pthread_node(encode(0, levels));
    int64_t t1 = bench_now();
    BENCH_CHECK((uintptr_t)r == expected(levels), "pthread skynet sum %ju, expected %ju",
                (uintmax_t)(uintptr_t)r, (uintmax_t)expected(levels));
    return (double)(t1 - t0) / 1e6;
}

/* Levels for n leaves: floor(log10(n)), within [1, 6]. */
static int levels_for(long leaves)
{
    int l = 0;
    while (l < 6 && (long)tens[l + 1] <= leaves)
        l++;
    return l < 1 ? 1 : l;
}

int main(void)
{
    int full = levels_for(bench_size(1000000, 10));
    int small = full < 4 ? full : 4;
    char line[200];

    snprintf(line, sizeof line,
             "skynet: %ju leaves, fan-out %d, %d levels (%ju threads), ms per tree; "
             "skynet_%s: %ju leaves on weft and pthreads",
             (uintmax_t)tens[full], FANOUT, full, (uintmax_t)((tens[full + 1] - 1) / 9),
             small == 4 ? "10k" : "small", (uintmax_t)tens[small]);
    bench_header(line, "best of 5 runs (pthread: 3) after 1 warm-up");

    double w = bench_best(weft_tree, &full, 5);
    bench_faults_note("skynet.weft", (long)((tens[full + 1] - 1) / 9));
    bench_print("skynet.weft", w, "ms");
    bench_print_int("skynet.sum", (long long)expected(full), "(checked)");

    const char *name = small == 4 ? "skynet_10k" : "skynet_small";
    double ws = bench_best(weft_tree, &small, 5);
    double ps = bench_best(pthread_tree, &small, 3);
    snprintf(line, sizeof line, "%s.weft", name);
    bench_print(line, ws, "ms");
    snprintf(line, sizeof line, "%s.pthread", name);
    bench_print(line, ps, "ms");
    snprintf(line, sizeof line, "%s.ratio", name);
    bench_ratio(line, ws, ps, "pthread/weft");
    return 0;
}
