/*
 * t_once: weft_once, from weft threads and kernel threads.
 *
 *  - NULL for the object or the function gives -EINVAL (and runs nothing);
 *  - 64 callers (8 pthreads), released together, call weft_once on one
 *    object, 100 rounds with a fresh object each: fn runs exactly once; fn
 *    parks 2 ms and yields before it sets a flag, and every caller finds
 *    the flag set when its weft_once returns 0; later callers return 0 at
 *    once without running anything; a statically initialized object works
 *    the same;
 *  - fn calling weft_once on its own object (with fn or another function)
 *    gets -EDEADLK, from a weft thread and from a kernel thread, while
 *    another caller waits meanwhile and returns only after fn finished; fn
 *    may use a different weft_once_t inside.
 *
 * Stress sizes scale with WEFT_TEST_SCALE.
 */
#include "check.h"

#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

/* A thread of either kind. */
struct thr {
    int kernel;
    weft_t w;
    pthread_t p;
};

static void thr_start(struct thr *t, int kernel, void *(*fn)(void *), void *arg)
{
    t->kernel = kernel;
    if (kernel)
        CHECK_EQ(pthread_create(&t->p, NULL, fn, arg), 0);
    else
        CHECK_ERR(weft_spawn(&t->w, fn, arg, NULL), 0);
}

static void *thr_join(struct thr *t)
{
    void *r = NULL;
    if (t->kernel)
        CHECK_EQ(pthread_join(t->p, &r), 0);
    else
        CHECK_ERR(weft_join(t->w, &r, WEFT_FOREVER), 0);
    return r;
}

static uint32_t load(uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void store(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

/* Blocks the caller (either kind) for about ns, without a sleep of its own. */
static void pause_for(int64_t ns)
{
    uint32_t never = 0;
    int64_t d = weft_after(ns);
    CHECK_ERR(weft_park(&never, 0, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
}

/* ---- errors ---- */

static uint32_t noop_calls;

static void noop(void)
{
    __atomic_fetch_add(&noop_calls, 1, __ATOMIC_SEQ_CST);
}

static void check_errors(void)
{
    weft_once_t o = WEFT_ONCE_INIT;
    CHECK_ERR(weft_once(NULL, noop), -EINVAL);
    CHECK_ERR(weft_once(&o, NULL), -EINVAL);
    CHECK_EQ(load(&noop_calls), 0);
    CHECK_ERR(weft_once(&o, noop), 0);
    CHECK_EQ(load(&noop_calls), 1);
    CHECK_ERR(weft_once(&o, noop), 0);
    CHECK_ERR(weft_once(&o, NULL), -EINVAL);
    CHECK_EQ(load(&noop_calls), 1);
    store(&noop_calls, 0);
}

/* ---- many callers ---- */

#define CALLERS 64
static weft_once_t *cur;      /* the object of this round */
static uint32_t fn_calls;     /* times slow_fn ran this round */
static uint32_t fn_done;      /* slow_fn has finished */
static uint32_t gate;         /* callers wait for this to turn 1 */
static uint32_t at_gate;      /* callers waiting at the gate */

static void slow_fn(void)
{
    CHECK_EQ(__atomic_add_fetch(&fn_calls, 1, __ATOMIC_SEQ_CST), 1);
    CHECK_EQ(load(&fn_done), 0);
    pause_for(WEFT_MS(2));
    for (int i = 0; i < 50; i++)
        weft_yield();
    store(&fn_done, 1);
}

static void *caller(void *arg)
{
    (void)arg;
    __atomic_fetch_add(&at_gate, 1, __ATOMIC_SEQ_CST);
    while (load(&gate) == 0) {
        int r = weft_park(&gate, 0, WEFT_FOREVER);
        CHECK(r == 0 || r == -EAGAIN);
    }
    CHECK_ERR(weft_once(cur, slow_fn), 0);
    CHECK_EQ(load(&fn_done), 1);
    CHECK_ERR(weft_once(cur, slow_fn), 0);
    return NULL;
}

static void one_round(weft_once_t *o)
{
    cur = o;
    store(&fn_calls, 0);
    store(&fn_done, 0);
    store(&gate, 0);
    store(&at_gate, 0);
    struct thr t[CALLERS];
    for (int i = 0; i < CALLERS; i++)
        thr_start(&t[i], i % 8 == 3, caller, NULL);
    while (load(&at_gate) < CALLERS)
        usleep(100);
    store(&gate, 1);
    weft_unpark(&gate, -1);
    for (int i = 0; i < CALLERS; i++)
        thr_join(&t[i]);
    CHECK_EQ(load(&fn_calls), 1);
    CHECK_EQ(load(&fn_done), 1);
    CHECK_ERR(weft_once(o, slow_fn), 0); /* done: runs nothing */
    CHECK_EQ(load(&fn_calls), 1);
}

static weft_once_t static_once = WEFT_ONCE_INIT;

static void test_many_callers(void)
{
    long rounds = test_scale(100);
    weft_once_t *objs = calloc((size_t)rounds, sizeof(weft_once_t));
    CHECK(objs != NULL);
    for (long r = 0; r < rounds; r++) {
        objs[r] = (weft_once_t)WEFT_ONCE_INIT;
        one_round(&objs[r]);
    }
    one_round(&static_once);
    free(objs);
    printf("%d callers (8 pthreads), %ld + 1 rounds: fn ran once each, all returned after it\n",
           CALLERS, rounds);
}

/* ---- recursion ---- */

static weft_once_t rec, inner;
static uint32_t rec_calls, inner_calls, rec_done, rec_entered;
static int rec_same, rec_other;

static void inner_fn(void)
{
    __atomic_fetch_add(&inner_calls, 1, __ATOMIC_SEQ_CST);
}

static void recursive_fn(void)
{
    __atomic_fetch_add(&rec_calls, 1, __ATOMIC_SEQ_CST);
    store(&rec_entered, 1);
    rec_same = weft_once(&rec, recursive_fn);
    pause_for(WEFT_MS(1)); /* let the other caller reach its wait */
    rec_other = weft_once(&rec, noop);
    CHECK_ERR(weft_once(&inner, inner_fn), 0);
    CHECK_ERR(weft_once(&inner, inner_fn), 0);
    store(&rec_done, 1);
}

static void *rec_first(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_once(&rec, recursive_fn), 0);
    CHECK_EQ(load(&rec_done), 1);
    return NULL;
}

static void *rec_second(void *arg)
{
    (void)arg;
    while (load(&rec_entered) == 0)
        weft_yield();
    CHECK_ERR(weft_once(&rec, recursive_fn), 0); /* waits for rec_first's fn */
    CHECK_EQ(load(&rec_done), 1);
    return NULL;
}

static void test_recursion(void)
{
    for (int kind = 0; kind < 4; kind++) {
        rec = (weft_once_t)WEFT_ONCE_INIT;
        inner = (weft_once_t)WEFT_ONCE_INIT;
        rec_calls = inner_calls = rec_done = rec_entered = 0;
        rec_same = rec_other = 1;
        struct thr a, b;
        thr_start(&a, kind & 1, rec_first, NULL);
        thr_start(&b, kind & 2, rec_second, NULL);
        thr_join(&a);
        thr_join(&b);
        CHECK_ERR(rec_same, -EDEADLK);
        CHECK_ERR(rec_other, -EDEADLK);
        CHECK_EQ(rec_calls, 1);
        CHECK_EQ(inner_calls, 1);
        CHECK_EQ(load(&noop_calls), 0);
        /* Done now: the same thread kind gets 0 and runs nothing. */
        CHECK_ERR(weft_once(&rec, recursive_fn), 0);
        CHECK_EQ(rec_calls, 1);
    }
}

static void *check_errors_thread(void *arg)
{
    (void)arg;
    check_errors();
    return U2P(7);
}

int main(void)
{
    check_errors();
    weft_t t;
    void *r;
    CHECK_ERR(weft_spawn(&t, check_errors_thread, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 7);
    printf("errors: ok\n");

    test_recursion();
    printf("recursive weft_once from fn: -EDEADLK, on weft threads and pthreads\n");

    test_many_callers();
    return 0;
}
