/*
 * t_concurrent_spawn: many weft threads spawning at the same time, with
 * every child's result accounted for.
 *
 *  - 64 spawners released together by one weft_unpark spawn 2,000 children
 *    each (times WEFT_TEST_SCALE), all before joining any, then join them;
 *  - four spawn trees grow at once, each node spawning four children and
 *    joining them (4^7 = 16,384 leaves a tree), the root's result being the
 *    sum of its leaves' indexes;
 *  - 16 spawners publish handles as they spawn and 16 other threads join
 *    them as they appear, so joins race with spawns of the same threads.
 */
#include "check.h"

#include <stdint.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static uint64_t f(uint64_t i)
{
    return i * 5 + 3;
}

static void *child(void *arg)
{
    uint64_t i = P2U(arg);
    if (i % 3 == 0)
        weft_yield();
    return U2P(f(i));
}

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

/* ---- 64 spawners at once ---- */

#define SPAWNERS 64
static uint32_t start_gate;
static long per_spawner;

static void *spawner(void *arg)
{
    uint64_t base = P2U(arg) * (uint64_t)per_spawner;
    weft_t *t = malloc(sizeof(weft_t) * (size_t)per_spawner);
    CHECK(t != NULL);
    gate_wait(&start_gate);
    for (long k = 0; k < per_spawner; k++)
        CHECK_ERR(weft_spawn(&t[k], child, U2P(base + (uint64_t)k), NULL), 0);
    uint64_t sum = 0;
    for (long k = 0; k < per_spawner; k++) {
        void *r;
        CHECK_ERR(weft_join(t[k], &r, WEFT_FOREVER), 0);
        CHECK_EQ(P2U(r), f(base + (uint64_t)k));
        sum += P2U(r);
    }
    free(t);
    return U2P(sum);
}

static void test_many_spawners(void)
{
    per_spawner = test_scale(2000);
    weft_t s[SPAWNERS];
    for (int i = 0; i < SPAWNERS; i++)
        CHECK_ERR(weft_spawn(&s[i], spawner, U2P(i), NULL), 0);
    gate_open(&start_gate);
    uint64_t sum = 0, want = 0;
    for (int i = 0; i < SPAWNERS; i++) {
        void *r;
        CHECK_ERR(weft_join(s[i], &r, WEFT_FOREVER), 0);
        sum += P2U(r);
    }
    for (uint64_t i = 0; i < (uint64_t)SPAWNERS * (uint64_t)per_spawner; i++)
        want += f(i);
    CHECK_EQ(sum, want);
    printf("%d spawners x %ld children: all accounted\n", SPAWNERS, per_spawner);
}

/* ---- spawn trees ---- */

#define FANOUT 4
#define TREES  4

/* arg: depth in the low 8 bits, node index above; returns the sum of the
 * indexes of the leaves below (leaf indexes run 0 .. FANOUT^depth - 1). */
static void *node(void *arg)
{
    uintptr_t depth = P2U(arg) & 0xff, index = P2U(arg) >> 8;
    if (depth == 0)
        return U2P(index);
    weft_t kids[FANOUT];
    for (int k = 0; k < FANOUT; k++)
        CHECK_ERR(weft_spawn(&kids[k], node,
                             U2P(((index * FANOUT + (uintptr_t)k) << 8) | (depth - 1)), NULL),
                  0);
    uintptr_t sum = 0;
    for (int k = FANOUT - 1; k >= 0; k--) {
        void *r;
        CHECK_ERR(weft_join(kids[k], &r, WEFT_FOREVER), 0);
        sum += P2U(r);
    }
    return U2P(sum);
}

static void test_trees(void)
{
    long depth = test_scale(7);
    if (depth > 9)
        depth = 9;
    uint64_t leaves = 1;
    for (long i = 0; i < depth; i++)
        leaves *= FANOUT;
    weft_t roots[TREES];
    for (int i = 0; i < TREES; i++)
        CHECK_ERR(weft_spawn(&roots[i], node, U2P(depth), NULL), 0);
    for (int i = 0; i < TREES; i++) {
        void *r;
        CHECK_ERR(weft_join(roots[i], &r, WEFT_FOREVER), 0);
        CHECK_EQ(P2U(r), leaves * (leaves - 1) / 2);
    }
    printf("%d trees of %llu leaves\n", TREES, (unsigned long long)leaves);
}

/* ---- joins racing with spawns ---- */

#define PAIRS 16
static long per_pair;
static weft_t *published[PAIRS];    /* handles, filled in by spawner i */
static uint32_t published_n[PAIRS]; /* how many of them are there */

static void *publisher(void *arg)
{
    int i = (int)P2U(arg);
    for (long k = 0; k < per_pair; k++) {
        weft_t t;
        CHECK_ERR(
            weft_spawn(&t, child, U2P((uint64_t)i * (uint64_t)per_pair + (uint64_t)k), NULL),
            0);
        published[i][k] = t;
        __atomic_store_n(&published_n[i], (uint32_t)(k + 1), __ATOMIC_RELEASE);
        weft_unpark(&published_n[i], 1);
    }
    return NULL;
}

static void *collector(void *arg)
{
    int i = (int)P2U(arg);
    uint64_t sum = 0;
    for (long k = 0; k < per_pair; k++) {
        uint32_t n;
        while ((n = __atomic_load_n(&published_n[i], __ATOMIC_ACQUIRE)) <= (uint32_t)k) {
            int r = weft_park(&published_n[i], n, WEFT_FOREVER);
            CHECK(r == 0 || r == -EAGAIN);
        }
        void *r;
        CHECK_ERR(weft_join(published[i][k], &r, WEFT_FOREVER), 0);
        CHECK_EQ(P2U(r), f((uint64_t)i * (uint64_t)per_pair + (uint64_t)k));
        sum += P2U(r);
    }
    return U2P(sum);
}

static void test_racing_joins(void)
{
    per_pair = test_scale(5000);
    weft_t p[PAIRS], c[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        published[i] = malloc(sizeof(weft_t) * (size_t)per_pair);
        CHECK(published[i] != NULL);
        CHECK_ERR(weft_spawn(&c[i], collector, U2P(i), NULL), 0);
    }
    for (int i = 0; i < PAIRS; i++)
        CHECK_ERR(weft_spawn(&p[i], publisher, U2P(i), NULL), 0);
    uint64_t sum = 0, want = 0;
    for (int i = 0; i < PAIRS; i++) {
        void *r;
        CHECK_ERR(weft_join(p[i], NULL, WEFT_FOREVER), 0);
        CHECK_ERR(weft_join(c[i], &r, WEFT_FOREVER), 0);
        sum += P2U(r);
        free(published[i]);
    }
    for (uint64_t i = 0; i < (uint64_t)PAIRS * (uint64_t)per_pair; i++)
        want += f(i);
    CHECK_EQ(sum, want);
    printf("%d publishers x %ld children joined by other threads\n", PAIRS, per_pair);
}

int main(void)
{
    test_many_spawners();
    test_trees();
    test_racing_joins();
    return 0;
}
