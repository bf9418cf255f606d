/*
 * t_alive: 100,000 threads alive at once (times WEFT_TEST_SCALE).
 *
 * Every thread announces itself on a counter and parks on one shared word
 * until main opens it, so all of them exist at the same moment: none can end
 * before the last has announced itself. Their handles must all differ. Main
 * then wakes them all with weft_unpark(word, -1), repeating until every
 * thread has left (a thread that announced itself but had not parked yet
 * sees the open word and never parks: weft_park gives -EAGAIN). Checks:
 *
 *  - every thread ends and its result (a function of its index) reaches join;
 *  - a thread woken from weft_park (0) always finds the word open: no
 *    spurious wake-ups;
 *  - the wake-ups counted by all the weft_unpark calls equal the parks that
 *    returned 0: each waiter is woken exactly once, and counted once.
 */
#include "check.h"

#include <stdint.h>
#include <unistd.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static uint32_t gate;         /* 0 closed, 1 open */
static uint32_t arrived;      /* threads that announced themselves */
static uint32_t finished;     /* threads past their park loop */
static uint64_t parks_woken;  /* weft_park calls that returned 0 */
static uint64_t parks_eagain; /* weft_park calls that returned -EAGAIN */

static uint64_t f(uint64_t i)
{
    return i * 3 + 11;
}

static void *waiter(void *arg)
{
    __atomic_fetch_add(&arrived, 1, __ATOMIC_RELEASE);
    while (__atomic_load_n(&gate, __ATOMIC_ACQUIRE) == 0) {
        int r = weft_park(&gate, 0, WEFT_FOREVER);
        if (r == 0) {
            __atomic_fetch_add(&parks_woken, 1, __ATOMIC_RELAXED);
            CHECK_EQ(__atomic_load_n(&gate, __ATOMIC_ACQUIRE), 1);
        } else {
            CHECK_ERR(r, -EAGAIN);
            __atomic_fetch_add(&parks_eagain, 1, __ATOMIC_RELAXED);
        }
    }
    __atomic_fetch_add(&finished, 1, __ATOMIC_RELEASE);
    return U2P(f(P2U(arg)));
}

static int cmp_handle(const void *a, const void *b)
{
    weft_t x = *(const weft_t *)a, y = *(const weft_t *)b;
    return x < y ? -1 : x > y;
}

/* Sleeps until *w == n, polling; fails after 120 s. */
static void poll_until(uint32_t *w, uint32_t n, const char *what)
{
    for (int ms = 0; __atomic_load_n(w, __ATOMIC_ACQUIRE) != n; ms++) {
        if (ms > 120000) {
            check_failed("%s: %u of %u\n", what, __atomic_load_n(w, __ATOMIC_ACQUIRE), n);
        }
        usleep(1000);
    }
}

int main(void)
{
    uint32_t n = (uint32_t)test_scale(100000);
    weft_t *t = malloc(sizeof(weft_t) * n);
    weft_t *sorted = malloc(sizeof(weft_t) * n);
    CHECK(t && sorted);

    for (uint32_t i = 0; i < n; i++) {
        CHECK_ERR(weft_spawn(&t[i], waiter, U2P(i), NULL), 0);
        CHECK(t[i] != 0);
    }
    poll_until(&arrived, n, "threads that started");
    CHECK_EQ(__atomic_load_n(&finished, __ATOMIC_ACQUIRE), 0);

    /* All n are alive now, so their handles must all differ. */
    memcpy(sorted, t, sizeof(weft_t) * n);
    qsort(sorted, n, sizeof(weft_t), cmp_handle);
    for (uint32_t i = 1; i < n; i++)
        CHECK(sorted[i] != sorted[i - 1]);

    __atomic_store_n(&gate, 1, __ATOMIC_RELEASE);
    uint64_t woken = 0;
    int first = weft_unpark(&gate, -1);
    CHECK(first >= 0 && (uint32_t)first <= n);
    woken += (uint64_t)first;
    for (int ms = 0; __atomic_load_n(&finished, __ATOMIC_ACQUIRE) != n; ms++) {
        CHECK(ms < 120000);
        usleep(1000);
        int r = weft_unpark(&gate, -1);
        CHECK(r >= 0);
        woken += (uint64_t)r;
    }
    printf("%u threads alive at once; the first unpark woke %d\n", n, first);

    uint64_t sum = 0, want = 0;
    for (uint32_t i = 0; i < n; i++) {
        void *r;
        CHECK_ERR(weft_join(t[i], &r, WEFT_FOREVER), 0);
        CHECK_EQ(P2U(r), f(i));
        sum += P2U(r);
        want += f(i);
    }
    CHECK_EQ(sum, want);
    CHECK_EQ(woken, __atomic_load_n(&parks_woken, __ATOMIC_RELAXED));
    CHECK(woken <= n);
    /* Nothing is parked any more. */
    CHECK_ERR(weft_unpark(&gate, -1), 0);
    free(t);
    free(sorted);
    return 0;
}
