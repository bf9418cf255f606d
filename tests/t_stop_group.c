/*
 * t_stop_group: groups of threads, stopped and waited for together.
 *
 *   nested      top > mid > leaf, threads blocked in each: stopping mid
 *               stops mid's and leaf's threads, not top's; weft_group_wait
 *               on mid returns once they ended, while top's still runs
 *   inherit     a thread spawned without attr.group joins its spawner's
 *               group (grandchildren too); attr.group overrides it; a
 *               kernel thread's spawns and groups belong to no group
 *   later       after a stop, threads spawned into the group or a
 *               subgroup start stopped, subgroups made later are stopped,
 *               and a second stop (adding WEFT_STOP_FILES) reaches them
 *   self        a thread that stops its own group is stopped too, and
 *               can still wait (untimed) for a subgroup it stopped
 *   lifetime    weft_group_wait's -EDEADLK, -ETIMEDOUT; weft_group_free's
 *               -EBUSY (threads, subgroups) and success; a wait woken by
 *               the group emptying
 *   churn       threads spawned and ending in a group while other
 *               threads wait for it and it is stopped: every wait returns
 *               and the counts come back to zero
 */
#include "iotest.h"

#define FAR (weft_after(WEFT_SEC(60)))

static int ended;       /* atomic: threads that saw -ECANCELED and ended */

static void *blocker(void *arg)
{
    (void)arg;
    int r = weft_sleep(WEFT_FOREVER);
    CHECK_ERR(r, -ECANCELED);
    CHECK_EQ(weft_stopping(), 1);
    __atomic_fetch_add(&ended, 1, __ATOMIC_RELAXED);
    return NULL;
}

static weft_t spawn_in(weft_group_t *g, void *(*fn)(void *), void *arg)
{
    weft_attr at = {.group = g};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, fn, arg, &at), 0);
    return t;
}

static int running(weft_t t)
{
    /* A join with a deadline of 0 from main: -ETIMEDOUT while it runs. */
    return weft_join(t, NULL, 0) == -ETIMEDOUT;
}

static void nested(void)
{
    weft_group_t *top, *mid, *leaf;
    CHECK_ERR(weft_group_new(&top, NULL), 0);
    CHECK_ERR(weft_group_new(&mid, top), 0);
    CHECK_ERR(weft_group_new(&leaf, mid), 0);
    __atomic_store_n(&ended, 0, __ATOMIC_RELAXED);
    weft_t t_top = spawn_in(top, blocker, NULL);
    weft_t t_mid[10], t_leaf[10];
    for (int i = 0; i < 10; i++) {
        t_mid[i] = spawn_in(mid, blocker, NULL);
        t_leaf[i] = spawn_in(leaf, blocker, NULL);
    }
    weft_sleep(weft_after(WEFT_MS(10)));
    CHECK_ERR(weft_group_wait(mid, weft_after(WEFT_MS(1))), -ETIMEDOUT);
    CHECK_ERR(weft_group_free(mid), -EBUSY);
    CHECK_ERR(weft_group_stop(mid, 0), 0);
    CHECK_ERR(weft_group_wait(mid, FAR), 0);
    CHECK_ERR(weft_group_wait(leaf, 0), 0);
    CHECK_EQ(__atomic_load_n(&ended, __ATOMIC_RELAXED), 20);
    for (int i = 0; i < 10; i++) {
        CHECK_ERR(weft_join(t_mid[i], NULL, WEFT_FOREVER), 0);
        CHECK_ERR(weft_join(t_leaf[i], NULL, WEFT_FOREVER), 0);
    }
    /* top's thread was not stopped and still sleeps. */
    weft_sleep(weft_after(WEFT_MS(5)));
    CHECK(running(t_top));
    CHECK_ERR(weft_group_wait(top, weft_after(WEFT_MS(1))), -ETIMEDOUT);
    CHECK_ERR(weft_group_free(mid), -EBUSY); /* it has a subgroup */
    CHECK_ERR(weft_group_free(leaf), 0);
    CHECK_ERR(weft_group_free(mid), 0);
    CHECK_ERR(weft_stop(t_top, 0), 0);
    CHECK_ERR(weft_group_wait(top, FAR), 0);
    CHECK_ERR(weft_join(t_top, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_free(top), 0);
    printf("nested: stopping the middle of three groups stopped its subtree only\n");
}

/* ---- inherit ---- */

static weft_group_t *other;

static void *grandchild(void *arg)
{
    weft_t *slot = arg;
    *slot = weft_self();
    return blocker(NULL);
}

static void *child(void *arg)
{
    weft_t *kids = arg;
    /* Default: the spawner's group. */
    CHECK_ERR(weft_spawn(&kids[1], grandchild, &kids[2], NULL), 0);
    /* attr.group overrides it. */
    kids[3] = spawn_in(other, blocker, NULL);
    return blocker(NULL);
}

static void inherit(void)
{
    weft_group_t *g;
    CHECK_ERR(weft_group_new(&g, NULL), 0);
    CHECK_ERR(weft_group_new(&other, NULL), 0);
    __atomic_store_n(&ended, 0, __ATOMIC_RELAXED);
    weft_t kids[4] = {0};
    kids[0] = spawn_in(g, child, kids);
    /* A thread main spawns without attr joins no group. */
    weft_t loose;
    CHECK_ERR(weft_spawn(&loose, blocker, NULL, NULL), 0);
    weft_sleep(weft_after(WEFT_MS(10)));
    CHECK_ERR(weft_group_stop(g, 0), 0);
    CHECK_ERR(weft_group_wait(g, FAR), 0); /* child, grandchild */
    CHECK_EQ(__atomic_load_n(&ended, __ATOMIC_RELAXED), 2);
    CHECK_ERR(weft_join(kids[0], NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(kids[1], NULL, WEFT_FOREVER), 0);
    CHECK_EQ(kids[1], kids[2]);
    weft_sleep(weft_after(WEFT_MS(5)));
    CHECK(running(kids[3]));
    CHECK(running(loose));
    CHECK_ERR(weft_group_stop(other, 0), 0);
    CHECK_ERR(weft_group_wait(other, FAR), 0);
    CHECK_ERR(weft_join(kids[3], NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_stop(loose, 0), 0);
    CHECK_ERR(weft_join(loose, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_free(g), 0);
    CHECK_ERR(weft_group_free(other), 0);
    printf("inherit: spawns join the spawner's group unless attr.group says otherwise\n");
}

/* ---- later ---- */

static int files_seen; /* atomic */

static void *starts_stopped(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_stopping(), 1);
    CHECK_ERR(weft_sleep(FAR), -ECANCELED);
    /* Wait for the second stop's WEFT_STOP_FILES: fd calls fail then. */
    int sv[2];
    io_unix_pair(sv);
    char c;
    for (;;) {
        CHECK_EQ(write(sv[0], "x", 1), 1);
        ssize_t n = weft_read(sv[1], &c, 1, 0); /* data there: it reads, unless FILES */
        if (n == -ECANCELED)
            break;
        CHECK_EQ(n, 1);
        weft_yield();
    }
    __atomic_fetch_add(&files_seen, 1, __ATOMIC_RELAXED);
    CHECK_ERR(weft_close(sv[0]), 0); /* close still works */
    CHECK_ERR(weft_close(sv[1]), 0);
    return NULL;
}

static void later(void)
{
    weft_group_t *g, *sub, *late;
    CHECK_ERR(weft_group_new(&g, NULL), 0);
    CHECK_ERR(weft_group_new(&sub, g), 0);
    CHECK_ERR(weft_group_stop(g, 0), 0);
    CHECK_ERR(weft_group_stop(g, 0), 0); /* idempotent */
    CHECK_ERR(weft_group_new(&late, g), 0);
    __atomic_store_n(&files_seen, 0, __ATOMIC_RELAXED);
    weft_t t[3] = {spawn_in(g, starts_stopped, NULL), spawn_in(sub, starts_stopped, NULL),
                   spawn_in(late, starts_stopped, NULL)};
    weft_sleep(weft_after(WEFT_MS(5)));
    CHECK_ERR(weft_group_stop(g, WEFT_STOP_FILES), 0);
    CHECK_ERR(weft_group_wait(g, FAR), 0);
    CHECK_EQ(__atomic_load_n(&files_seen, __ATOMIC_RELAXED), 3);
    for (int i = 0; i < 3; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_free(late), 0);
    CHECK_ERR(weft_group_free(sub), 0);
    CHECK_ERR(weft_group_free(g), 0);
    printf("later: threads and subgroups made after a stop start stopped\n");
}

/* ---- self ---- */

static weft_mutex_t self_m = WEFT_MUTEX_INIT;

/* A kid that outlives the stop: an untimed lock is not cut short. */
static void *locker(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_lock(&self_m), 0);
    CHECK_EQ(weft_stopping(), 1);
    CHECK_ERR(weft_mutex_unlock(&self_m), 0);
    return NULL;
}

static void *stops_its_group(void *arg)
{
    weft_group_t *mine = arg;
    weft_group_t *kids;
    CHECK_ERR(weft_group_new(&kids, NULL), 0); /* a subgroup of mine */
    CHECK_ERR(weft_mutex_lock(&self_m), 0);
    for (int i = 0; i < 6; i++)
        CHECK_ERR(weft_detach(spawn_in(kids, blocker, NULL)), 0);
    CHECK_ERR(weft_detach(spawn_in(kids, locker, NULL)), 0);
    CHECK_ERR(weft_group_wait(mine, 0), -EDEADLK);
    CHECK_ERR(weft_group_wait(kids, 0), -ETIMEDOUT);
    CHECK_ERR(weft_group_stop(mine, 0), 0);
    CHECK_EQ(weft_stopping(), 1);
    CHECK_ERR(weft_group_wait(kids, FAR), -ECANCELED); /* timed: cut short */
    CHECK_ERR(weft_mutex_unlock(&self_m), 0);          /* the locker can end */
    CHECK_ERR(weft_group_wait(kids, WEFT_FOREVER), 0); /* untimed: works */
    CHECK_ERR(weft_group_free(kids), 0);
    return NULL;
}

static void self(void)
{
    weft_group_t *g;
    CHECK_ERR(weft_group_new(&g, NULL), 0);
    __atomic_store_n(&ended, 0, __ATOMIC_RELAXED);
    weft_attr at = {.group = g};
    CHECK_ERR(weft_spawn(NULL, stops_its_group, g, &at), 0);
    CHECK_ERR(weft_group_wait(g, FAR), 0);
    CHECK_EQ(__atomic_load_n(&ended, __ATOMIC_RELAXED), 6);
    CHECK_ERR(weft_group_free(g), 0);
    printf("self: a thread stopped its own group and waited for its subgroup\n");
}

/* ---- lifetime ---- */

static void *waiter(void *arg)
{
    CHECK_ERR(weft_group_wait(arg, WEFT_FOREVER), 0);
    return NULL;
}

static weft_sem_t go = WEFT_SEM_INIT(0);

static void *until_go(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_sem_wait(&go, WEFT_FOREVER), 0);
    return NULL;
}

static void lifetime(void)
{
    weft_group_t *g;
    CHECK_ERR(weft_group_new(&g, NULL), 0);
    CHECK_ERR(weft_group_wait(g, 0), 0); /* empty */
    for (int i = 0; i < 3; i++)
        CHECK_ERR(weft_detach(spawn_in(g, until_go, NULL)), 0);
    weft_t w[4];
    for (int i = 0; i < 4; i++)
        CHECK_ERR(weft_spawn(&w[i], waiter, g, NULL), 0);
    weft_sleep(weft_after(WEFT_MS(5)));
    CHECK_ERR(weft_group_free(g), -EBUSY);
    for (int i = 0; i < 3; i++)
        CHECK_ERR(weft_sem_post(&go), 0);
    for (int i = 0; i < 4; i++)
        CHECK_ERR(weft_join(w[i], NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_free(g), 0);
    printf("lifetime: waits woken when the group empties; free refuses a busy group\n");
}

/* ---- churn ---- */

static void *short_life(void *arg)
{
    (void)arg;
    weft_yield();
    return NULL;
}

static void *spawner(void *arg)
{
    (void)arg; /* its own group, which its spawns join */
    long n = test_scale(20000);
    for (long i = 0; i < n; i++) {
        int r = weft_spawn(NULL, short_life, NULL, NULL); /* into g, its group */
        CHECK_ERR(r, 0);
        if (weft_stopping())
            break;
        if (i % 64 == 0)
            weft_yield();
    }
    return NULL;
}

static void churn(void)
{
    weft_group_t *g, *sub;
    CHECK_ERR(weft_group_new(&g, NULL), 0);
    CHECK_ERR(weft_group_new(&sub, g), 0);
    weft_t w[4];
    for (int i = 0; i < 4; i++) {
        CHECK_ERR(weft_detach(spawn_in(i & 1 ? sub : g, spawner, NULL)), 0);
        CHECK_ERR(weft_spawn(&w[i], waiter, i & 1 ? sub : g, NULL), 0);
    }
    weft_sleep(weft_after(WEFT_MS(20)));
    CHECK_ERR(weft_group_stop(g, 0), 0);
    for (int i = 0; i < 4; i++)
        CHECK_ERR(weft_join(w[i], NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_wait(g, FAR), 0);
    CHECK_ERR(weft_group_free(sub), 0);
    CHECK_ERR(weft_group_free(g), 0);
    printf("churn: spawns and exits racing a stop and waits left the counts at zero\n");
}

static void all(void *arg)
{
    (void)arg;
    nested();
    inherit();
    later();
    self();
    lifetime();
    churn();
}

int main(void)
{
    check_with_workers(1, all, NULL);
    printf("-- 1 worker: ok\n");
    check_with_workers(2, all, NULL);
    printf("-- 2 workers: ok\n");
    return 0;
}
