/*
 * t_proc_fork_reset.c - a fork child forgets the parent's stops and
 * groups in flight. The parent keeps a group with members that never end,
 * two threads spawning into it and making, stopping and freeing subgroups
 * under it (its lock and the tree mutex taken all the time), and a thread
 * stopping another over and over (a handle-table pin held much of the
 * time), while procs fork children. Each child then uses the parent's
 * group: a thread spawned into it and a wait for it to empty (the
 * parent's members do not exist there, so it is empty once that thread
 * ends), a subgroup made and freed under it; and it frees table slots (a
 * slot free waits for the pins to drain, which a pin copied from the
 * parent would never do). A child that inherited a held lock, a pin or
 * the parent's members would hang or time out, and its call would fail.
 */
#include "proctest.h"

#include <stdatomic.h>

/* Finished threads of stack sizes other than the default are cached only
 * so far (a few sizes, a few dozen threads: thread/cache.c), and unmapped
 * past that, which frees their slots: 80 threads of 10 sizes get there. */
#define ODD 80
#define ODD_SIZES 10

static weft_group_t *grp;    /* made by the parent; the child uses it too */
static atomic_int done;
static weft_sem_t hold = WEFT_SEM_INIT(0);
static weft_mutex_t held = WEFT_MUTEX_INIT;

static void *quick(void *arg)
{
    return arg;
}

static void *wait_sem(void *arg)
{
    CHECK_ERR(weft_sem_wait(arg, WEFT_FOREVER), 0);
    return NULL;
}

/* In the child: one worker, the parent's group and many slot frees. */
static ssize_t use_groups(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out, (void)cap;
    weft_attr a = {.group = grp};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, quick, NULL, &a), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    int r = weft_group_wait(grp, weft_after(WEFT_SEC(10)));
    if (r < 0)
        return r; /* -ETIMEDOUT: the parent's members still counted */
    weft_group_t *sub;
    CHECK_ERR(weft_group_new(&sub, grp), 0);
    a.group = sub;
    CHECK_ERR(weft_spawn(&t, quick, NULL, &a), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_wait(grp, weft_after(WEFT_SEC(10))), 0);
    CHECK_ERR(weft_group_free(sub), 0);

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
WEFT_PROC_ENTRY("use_groups", use_groups);

/* Parent: spawns into the group and churns subgroups under it. */
static void *churn(void *arg)
{
    (void)arg;
    weft_attr a = {.group = grp};
    while (!atomic_load(&done)) {
        weft_t t;
        CHECK_ERR(weft_spawn(&t, quick, NULL, &a), 0);
        CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
#if !defined(WEFT_ASAN)
        /* gcc 12's ASan allocator has no fork handlers: a child forked
         * while this thread is in calloc would hang in malloc. */
        weft_group_t *sub;
        CHECK_ERR(weft_group_new(&sub, grp), 0);
        CHECK_ERR(weft_group_stop(sub, 0), 0);
        CHECK_ERR(weft_group_free(sub), 0);
#endif
        weft_yield();
    }
    return NULL;
}

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
    CHECK_ERR(weft_group_new(&grp, NULL), 0);
    weft_attr a = {.group = grp};
    weft_t members[8], churners[2], tt, ts;
    for (int i = 0; i < 8; i++)
        CHECK_ERR(weft_spawn(&members[i], wait_sem, &hold, &a), 0);
    CHECK_ERR(weft_mutex_lock(&held), 0);
    CHECK_ERR(weft_spawn(&tt, target, NULL, NULL), 0);
    CHECK_ERR(weft_spawn(&ts, stopper, &tt, NULL), 0);
    for (int i = 0; i < 2; i++)
        CHECK_ERR(weft_spawn(&churners[i], churn, NULL, NULL), 0);

    long rounds = test_scale(100);
    for (long r = 0; r < rounds; r++) {
        weft_proc_t *p;
        CHECK_ERR(weft_proc_new(&p, NULL), 0);
        CHECK_ERR(weft_proc_call(p, "use_groups", NULL, 0, NULL, 0, weft_after(WEFT_SEC(60))), 0);
        CHECK_ERR(weft_proc_free(p), 0);
    }

    atomic_store(&done, 1);
    CHECK_ERR(weft_join(ts, NULL, WEFT_FOREVER), 0);
    for (int i = 0; i < 2; i++)
        CHECK_ERR(weft_join(churners[i], NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_mutex_unlock(&held), 0);
    CHECK_ERR(weft_join(tt, NULL, WEFT_FOREVER), 0);
    for (int i = 0; i < 8; i++)
        CHECK_ERR(weft_sem_post(&hold), 0);
    for (int i = 0; i < 8; i++)
        CHECK_ERR(weft_join(members[i], NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_wait(grp, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_free(grp), 0);
    CHECK(!pt_has_children());
    printf("ok: %ld children\n", rounds);
}

int main(void)
{
    check_with_workers(4, run, NULL);
    return 0;
}
