/*
 * t_proc_fork_reset.c - a fork child forgets the parent's stops in
 * flight. The parent has a thread stopping another over and over (a
 * handle-table pin held much of the time) while procs fork children; each
 * child then frees table slots, and a slot free waits for the pins to
 * drain, which a pin copied from the parent would never do: such a child
 * would hang, and its call would time out.
 */
#include "proctest.h"

#include <stdatomic.h>

/* Finished threads of stack sizes other than the default are cached only
 * so far (a few sizes, a few dozen threads: thread/cache.c), and unmapped
 * past that, which frees their slots: 80 threads of 10 sizes get there. */
#define ODD 80
#define ODD_SIZES 10

static atomic_int done;
static weft_mutex_t held = WEFT_MUTEX_INIT;

static void *wait_sem(void *arg)
{
    CHECK_ERR(weft_sem_wait(arg, WEFT_FOREVER), 0);
    return NULL;
}

/* In the child: one worker and many slot frees. */
static ssize_t free_slots(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out, (void)cap;
    weft_sem_t s = WEFT_SEM_INIT(0);
    weft_t ts[ODD];
    for (int i = 0; i < ODD; i++) {
        weft_attr oa = {.stack_size = (size_t)(128 + 64 * (i % ODD_SIZES)) << 10};
        CHECK_ERR(weft_spawn(&ts[i], wait_sem, &s, &oa), 0);
    }
    for (int i = 0; i < ODD; i++)
        CHECK_ERR(weft_sem_post(&s), 0);
    for (int i = 0; i < ODD; i++)
        CHECK_ERR(weft_join(ts[i], NULL, WEFT_FOREVER), 0);
    return 0;
}
WEFT_PROC_ENTRY("free_slots", free_slots);

/* Parent: takes the mutex main holds; stopped over and over meanwhile. */
static void *target(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_lock(&held), 0); /* untimed: a stop does not end it */
    CHECK_ERR(weft_mutex_unlock(&held), 0);
    return NULL;
}

static void *stopper(void *arg)
{
    weft_t t = *(weft_t *)arg;
    while (!atomic_load(&done))
        for (int i = 0; i < 64; i++)
            CHECK_ERR(weft_stop(t, 0), 0);
    return NULL;
}

static void run(void *arg)
{
    (void)arg;
    weft_t tt, ts;
    CHECK_ERR(weft_mutex_lock(&held), 0);
    CHECK_ERR(weft_spawn(&tt, target, NULL, NULL), 0);
    CHECK_ERR(weft_spawn(&ts, stopper, &tt, NULL), 0);

    long rounds = test_scale(100);
    for (long r = 0; r < rounds; r++) {
        weft_proc_t *p;
        CHECK_ERR(weft_proc_new(&p, NULL), 0);
        CHECK_ERR(weft_proc_call(p, "free_slots", NULL, 0, NULL, 0, weft_after(WEFT_SEC(60))), 0);
        CHECK_ERR(weft_proc_free(p), 0);
    }

    atomic_store(&done, 1);
    CHECK_ERR(weft_join(ts, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_mutex_unlock(&held), 0);
    CHECK_ERR(weft_join(tt, NULL, WEFT_FOREVER), 0);
    CHECK(!pt_has_children());
    printf("ok: %ld children\n", rounds);
}

int main(void)
{
    check_with_workers(4, run, NULL);
    return 0;
}
