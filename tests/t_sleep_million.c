/*
 * t_sleep_million: a million weft threads asleep at once (issue 4: "a
 * million concurrent sleepers work").
 *
 * Making a million threads takes seconds here (a fresh stack page each),
 * so no deadline fixed at spawn time could be sure to come after the last
 * one is made. Each thread instead sleeps in steps of up to 4 s until main
 * publishes the end: main waits until every thread has begun its
 * first sleep (all million are then in the timer heaps together, since
 * none stops sleeping before the end is published), sets the end 100 ms
 * ahead, and waits on a wait group. Every sleep must return 0 and never
 * before its deadline. Threads are detached, with 16 KiB stacks.
 *
 * The optimized build runs the full million (about 4 GiB of stacks
 * resident at once, one page each); the sanitizer builds, where a thread
 * costs several times more, run a tenth. WEFT_TEST_SCALE scales both.
 */
#include "check.h"

#include <stdbool.h>
#include <stdint.h>
#include <weft.h>

#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
#define SLEEPERS 100000
#else
#define SLEEPERS 1000000
#endif

static weft_wg_t done = WEFT_WG_INIT;
static long asleep, early, failed;
static int64_t end; /* 0 until main publishes it */

static void *sleeper(void *arg)
{
    (void)arg;
    bool counted = false;
    for (;;) {
        int64_t e = __atomic_load_n(&end, __ATOMIC_ACQUIRE);
        if (e && weft_now() >= e)
            break;
        int64_t d = e ? e : weft_after(WEFT_SEC(4));
        if (!counted) {
            __atomic_fetch_add(&asleep, 1, __ATOMIC_RELEASE);
            counted = true;
        }
        if (weft_sleep(d) != 0)
            __atomic_fetch_add(&failed, 1, __ATOMIC_RELAXED);
        if (weft_now() < d)
            __atomic_fetch_add(&early, 1, __ATOMIC_RELAXED);
    }
    weft_wg_done(&done);
    return NULL;
}

int main(void)
{
    long n = test_scale(SLEEPERS);
    weft_attr attr = {.stack_size = 16 * 1024, .name = "sleeper"};
    int64_t t0 = weft_now();
    CHECK_ERR(weft_wg_add(&done, (int)n), 0);
    for (long i = 0; i < n; i++)
        CHECK_ERR(weft_spawn(NULL, sleeper, NULL, &attr), 0);
    while (__atomic_load_n(&asleep, __ATOMIC_ACQUIRE) < n)
        weft_sleep(weft_after(WEFT_MS(10)));
    int64_t all = weft_now();
    __atomic_store_n(&end, weft_after(WEFT_MS(100)), __ATOMIC_RELEASE);
    CHECK_ERR(weft_wg_wait(&done, WEFT_FOREVER), 0);
    int64_t woke = weft_now();
    CHECK_EQ(__atomic_load_n(&failed, __ATOMIC_RELAXED), 0);
    CHECK_EQ(__atomic_load_n(&early, __ATOMIC_RELAXED), 0);
    printf("%ld threads asleep at once (all asleep %.0f ms after the first spawn), all woken "
           "(%.0f ms later), none early\n",
           n, (double)(all - t0) / 1e6, (double)(woke - all) / 1e6);
    return 0;
}
