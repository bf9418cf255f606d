/*
 * t_many: 1,000,000 threads created and joined in total (times
 * WEFT_TEST_SCALE). Eight weft threads and main share the work; each spawns
 * batches of 1,000 children and joins them (in spawn order or in reverse,
 * alternately), so finished descriptors and stacks are reused over and over.
 * A WEFT_TEST_SCALE below 1 shrinks the batches too, so a scaled-down run
 * also keeps fewer threads alive at once (ThreadSanitizer allows about
 * 8,000, and each costs it about a megabyte).
 * Every child returns f(index); the sum of all results must equal the sum
 * computed here, which fails on any lost, duplicated or mixed-up result.
 */
#include "check.h"

#include <stdint.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

#define SPAWNERS 8
#define BATCH    1000

static long batch; /* BATCH, or less when scaled down */

static uint64_t f(uint64_t i)
{
    return (i ^ (i >> 3)) * 7 + 1;
}

static void *child(void *arg)
{
    return U2P(f(P2U(arg)));
}

struct range {
    uint64_t from, to; /* indexes [from, to) */
    uint64_t sum;      /* out */
};

static void run_range(struct range *rg)
{
    weft_t *t = malloc(sizeof(weft_t) * (size_t)batch);
    CHECK(t != NULL);
    uint64_t sum = 0;
    int reverse = 0;
    for (uint64_t base = rg->from; base < rg->to; base += (uint64_t)batch) {
        int n = (int)(rg->to - base < (uint64_t)batch ? rg->to - base : (uint64_t)batch);
        for (int k = 0; k < n; k++)
            CHECK_ERR(weft_spawn(&t[k], child, U2P(base + (uint64_t)k), NULL), 0);
        for (int k = 0; k < n; k++) {
            int idx = reverse ? n - 1 - k : k;
            void *r;
            CHECK_ERR(weft_join(t[idx], &r, WEFT_FOREVER), 0);
            CHECK_EQ(P2U(r), f(base + (uint64_t)idx));
            sum += P2U(r);
        }
        reverse = !reverse;
    }
    free(t);
    rg->sum = sum;
}

static void *spawner(void *arg)
{
    run_range(arg);
    return NULL;
}

int main(void)
{
    uint64_t total = (uint64_t)test_scale(1000000);
    batch = test_scale(BATCH);
    if (batch > BATCH)
        batch = BATCH;
    uint64_t expected = 0;
    for (uint64_t i = 0; i < total; i++)
        expected += f(i);

    /* main takes a sixteenth, the spawners split the rest. */
    struct range rg[SPAWNERS + 1];
    uint64_t main_part = total / 16;
    rg[SPAWNERS] = (struct range){.from = 0, .to = main_part};
    uint64_t rest = total - main_part;
    for (int s = 0; s < SPAWNERS; s++) {
        rg[s].from = main_part + rest * (uint64_t)s / SPAWNERS;
        rg[s].to = main_part + rest * (uint64_t)(s + 1) / SPAWNERS;
        rg[s].sum = 0;
    }

    weft_t sp[SPAWNERS];
    for (int s = 0; s < SPAWNERS; s++)
        CHECK_ERR(weft_spawn(&sp[s], spawner, &rg[s], NULL), 0);
    run_range(&rg[SPAWNERS]);
    for (int s = 0; s < SPAWNERS; s++)
        CHECK_ERR(weft_join(sp[s], NULL, WEFT_FOREVER), 0);

    uint64_t sum = 0;
    for (int s = 0; s <= SPAWNERS; s++)
        sum += rg[s].sum;
    printf("%llu threads created and joined\n", (unsigned long long)total);
    CHECK_EQ(sum, expected);
    return 0;
}
