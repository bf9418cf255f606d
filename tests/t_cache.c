/*
 * t_cache: finished threads' stacks are kept and reused, whatever their
 * size, and the reaper gives back what goes unused (thread/cache.c).
 *
 *   reuse       1,000 threads of a non-default stack size, alive together,
 *               then 1,000 more of the same size: every one of the second
 *               batch runs on a stack of the first (a stack is known by
 *               the page of its frame address)
 *   sizes       threads of 12 different sizes (more sizes than the cache
 *               keeps classes for) run correctly, then again
 *   trim        3,000 threads of the default size end (skipped when
 *               WEFT_TEST_SCALE leaves too few to make a surplus); the
 *               reaper unmaps the surplus over what it keeps (1,024) once it
 *               has gone unused for a second: the test waits, up to 60 s,
 *               until at most 1,024 (plus a few pages the process may have
 *               mapped again meanwhile) of their stack pages are still
 *               mapped
 *   unused size 300 threads of a size nobody uses afterwards: once unused
 *               for a second its cache is emptied (all unmapped, but a few)
 *
 * No timing is asserted: trim waits for what must happen eventually.
 */
#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <weft.h>

#define KEEP 1024 /* cache.c's CLASS_KEEP */

static weft_barrier_t together;

struct rec {
    uintptr_t *pages;
    long i;
    int wait; /* meet the others at the barrier first */
};

static void *record(void *arg)
{
    struct rec *r = arg;
    r->pages[r->i] = (uintptr_t)__builtin_frame_address(0) / 4096;
    if (r->wait)
        weft_barrier_wait(&together);
    return (void *)r->pages[r->i];
}

/* Runs n threads of stack_size, alive at once, and stores the page of
 * each one's frame in pages. */
static void batch(size_t stack_size, long n, uintptr_t *pages)
{
    weft_t *t = malloc(sizeof *t * (size_t)n);
    struct rec *r = malloc(sizeof *r * (size_t)n);
    CHECK(t && r);
    CHECK_ERR(weft_barrier_init(&together, (unsigned)n), 0);
    weft_attr a = {.stack_size = stack_size, .name = "cached"};
    for (long i = 0; i < n; i++) {
        r[i] = (struct rec){pages, i, 1};
        CHECK_ERR(weft_spawn(&t[i], record, &r[i], &a), 0);
    }
    for (long i = 0; i < n; i++) {
        void *res;
        CHECK_ERR(weft_join(t[i], &res, WEFT_FOREVER), 0);
        CHECK(res == (void *)pages[i]);
    }
    CHECK_ERR(weft_barrier_destroy(&together), 0);
    free(t);
    free(r);
}

static int cmp(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void reuse(void)
{
    long n = KEEP < test_scale(1000) ? KEEP : test_scale(1000);
    uintptr_t *first = malloc(sizeof *first * (size_t)n), *second = malloc(sizeof *second * (size_t)n);
    CHECK(first && second);
    batch(48 * 1024, n, first);
    qsort(first, (size_t)n, sizeof *first, cmp);
    for (long i = 1; i < n; i++)
        CHECK(first[i] != first[i - 1]); /* n distinct stacks */
    batch(48 * 1024, n, second);
    long reused = 0;
    for (long i = 0; i < n; i++)
        reused += bsearch(&second[i], first, (size_t)n, sizeof *first, cmp) != NULL;
    printf("reuse: %ld of %ld threads ran on a cached 48 KiB stack\n", reused, n);
    CHECK_EQ(reused, n);
    free(first);
    free(second);
}

static void *sum_to(void *arg)
{
    uintptr_t n = (uintptr_t)arg, s = 0;
    volatile char pad[2048]; /* use some of the stack */
    pad[0] = 1;
    for (uintptr_t i = 1; i <= n; i++)
        s += i;
    return (void *)(s + (uintptr_t)pad[0] - 1);
}

static void sizes(void)
{
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < 12; k++) {
            weft_attr a = {.stack_size = (size_t)(24 + 8 * k) * 1024};
            weft_t t[50];
            for (int i = 0; i < 50; i++)
                CHECK_ERR(weft_spawn(&t[i], sum_to, (void *)(uintptr_t)(i + k), &a), 0);
            for (int i = 0; i < 50; i++) {
                void *res;
                CHECK_ERR(weft_join(t[i], &res, WEFT_FOREVER), 0);
                uintptr_t n = (uintptr_t)(i + k);
                CHECK_EQ((uintptr_t)res, n * (n + 1) / 2);
            }
        }
    }
    printf("sizes: 12 stack sizes, twice: ok\n");
}

static long still_mapped(const uintptr_t *pages, long n)
{
    long m = 0;
    for (long i = 0; i < n; i++)
        m += msync((void *)(pages[i] * 4096), 4096, MS_ASYNC) == 0;
    return m;
}

/* Waits, up to 60 s, until at most most of the n stack pages are still
 * mapped; returns how many are. */
static long wait_mapped(const uintptr_t *pages, long n, long most)
{
    long m = still_mapped(pages, n);
    int64_t give_up = weft_after(WEFT_SEC(60));
    while (m > most && weft_now() < give_up) {
        weft_sleep(weft_after(WEFT_MS(100)));
        m = still_mapped(pages, n);
    }
    return m;
}

static void trim(void)
{
    long n = test_scale(3000);
    if (n <= KEEP + 16) {
        /* Scaled down (ThreadSanitizer): too few to leave a surplus. */
        printf("trim: skipped at %ld threads\n", n);
        return;
    }
    uintptr_t *pages = malloc(sizeof *pages * (size_t)n);
    CHECK(pages != NULL);
    batch(0, n, pages); /* the default size: the cache keeps 1,024 */
    long m = wait_mapped(pages, n, KEEP + 16);
    printf("trim: %ld of %ld cached default-size stacks still mapped\n", m, n);
    CHECK(m <= KEEP + 16);
    free(pages);
}

static void unused_size(void)
{
    long n = test_scale(300);
    uintptr_t *pages = malloc(sizeof *pages * (size_t)n);
    CHECK(pages != NULL);
    batch(56 * 1024, n, pages);
    long m = wait_mapped(pages, n, 16);
    printf("unused size: %ld of %ld cached 56 KiB stacks still mapped\n", m, n);
    CHECK(m <= 16);
    free(pages);
}

int main(void)
{
    reuse();
    sizes();
    trim();
    unused_size();
    return 0;
}
