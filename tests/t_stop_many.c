/*
 * t_stop_many: 100,000 threads (times WEFT_TEST_SCALE) in one group, each
 * blocked in one of a dozen different calls, stopped with one
 * weft_group_stop; every one must return -ECANCELED and end, the group
 * must empty and be freed, and nothing may leak (ASan's leak check runs
 * before the child exits). On 1 worker and on 2.
 *
 * The calls: weft_sleep, weft_read and weft_fdwait (many threads on each
 * of a few socket pairs), channel receive, send and select, semaphore and
 * wait-group waits, and the timed waits a stop also ends: mutex, rwlock,
 * condition variable, park and another group's wait. The locks are held
 * by a helper thread outside the group, which is let go at the end, and
 * the objects are checked to be usable afterwards.
 */
#include "iotest.h"

#if defined(WEFT_ASAN)
#include <sanitizer/lsan_interface.h>
#endif

#define KINDS 13
#define PAIRS 64

static const char *kind_name[KINDS] = {
    "sleep", "read", "fdwait", "chan_recv", "chan_send", "select", "sem",
    "wg", "timedlock", "rdlock", "cond", "park", "group_wait",
};

static int sv[PAIRS][2];
static weft_chan_t *rch, *sch;
static weft_sem_t sem = WEFT_SEM_INIT(0);
static weft_wg_t wg = WEFT_WG_INIT;
static weft_mutex_t m = WEFT_MUTEX_INIT, cm = WEFT_MUTEX_INIT;
static weft_cond_t cv = WEFT_COND_INIT;
static weft_rwlock_t rw = WEFT_RWLOCK_INIT;
static uint32_t word;
static weft_group_t *group, *other;
static weft_sem_t holder_go = WEFT_SEM_INIT(0);
static int holding, ready, ended;   /* atomic */
static int bad[KINDS];              /* atomic: a result other than -ECANCELED */

static void *holder(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_lock(&m), 0);
    CHECK_ERR(weft_rwlock_wrlock(&rw, WEFT_FOREVER), 0);
    __atomic_store_n(&holding, 1, __ATOMIC_RELEASE);
    CHECK_ERR(weft_sem_wait(&holder_go, WEFT_FOREVER), 0);
    CHECK_ERR(weft_rwlock_unlock(&rw), 0);
    CHECK_ERR(weft_mutex_unlock(&m), 0);
    return NULL;
}

static long call(int kind, long i)
{
    int64_t far = weft_after(WEFT_SEC(600));
    char c;
    int v = 1, w;
    switch (kind) {
    case 0:
        return weft_sleep(WEFT_FOREVER);
    case 1:
        return weft_read(sv[i % PAIRS][0], &c, 1, WEFT_FOREVER);
    case 2:
        return weft_fdwait(sv[i % PAIRS][0], WEFT_IN, WEFT_FOREVER);
    case 3:
        return weft_chan_recv(rch, &w, WEFT_FOREVER);
    case 4:
        return weft_chan_send(sch, &v, WEFT_FOREVER);
    case 5: {
        weft_chan_op ops[2] = {{rch, WEFT_RECV, &w}, {sch, WEFT_SEND, &v}};
        return weft_chan_select(ops, 2, WEFT_FOREVER);
    }
    case 6:
        return weft_sem_wait(&sem, WEFT_FOREVER);
    case 7:
        return weft_wg_wait(&wg, WEFT_FOREVER);
    case 8:
        return weft_mutex_timedlock(&m, far);
    case 9:
        return weft_rwlock_rdlock(&rw, far);
    case 10: {
        CHECK_ERR(weft_mutex_lock(&cm), 0);
        int r = weft_cond_wait(&cv, &cm, far);
        CHECK_ERR(weft_mutex_unlock(&cm), 0);
        return r;
    }
    case 11:
        return weft_park(&word, 0, far);
    default:
        return weft_group_wait(other, far);
    }
}

static void *blocked(void *arg)
{
    long i = (long)(intptr_t)arg;
    int kind = (int)(i % KINDS);
    __atomic_fetch_add(&ready, 1, __ATOMIC_RELAXED);
    long r = call(kind, i);
    if (r != -ECANCELED)
        __atomic_fetch_add(&bad[kind], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ended, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void run(void *arg)
{
    (void)arg;
    long n = test_scale(100000);
    for (int p = 0; p < PAIRS; p++)
        io_unix_pair(sv[p]);
    CHECK_ERR(weft_chan_new(&rch, sizeof(int), 0), 0);
    CHECK_ERR(weft_chan_new(&sch, sizeof(int), 0), 0);
    CHECK_ERR(weft_wg_add(&wg, 1), 0);
    CHECK_ERR(weft_group_new(&group, NULL), 0);
    CHECK_ERR(weft_group_new(&other, NULL), 0);
    weft_attr hat = {.group = other};
    weft_t h;
    CHECK_ERR(weft_spawn(&h, holder, NULL, &hat), 0);
    while (!__atomic_load_n(&holding, __ATOMIC_ACQUIRE))
        weft_sleep(weft_after(WEFT_MS(1)));

    weft_attr at = {.stack_size = 16 * 1024, .name = "blocked", .group = group};
    for (long i = 0; i < n; i++)
        CHECK_ERR(weft_spawn(NULL, blocked, (void *)(intptr_t)i, &at), 0);
    while (__atomic_load_n(&ready, __ATOMIC_RELAXED) < n)
        weft_sleep(weft_after(WEFT_MS(1)));
    weft_sleep(weft_after(WEFT_MS(20))); /* let the last ones block */
    CHECK_EQ(__atomic_load_n(&ended, __ATOMIC_RELAXED), 0);

    int64_t t0 = weft_now();
    CHECK_ERR(weft_group_stop(group, 0), 0);
    CHECK_ERR(weft_group_wait(group, WEFT_FOREVER), 0);
    int64_t took = weft_now() - t0;
    CHECK_EQ(__atomic_load_n(&ended, __ATOMIC_RELAXED), n);
    for (int k = 0; k < KINDS; k++)
        if (__atomic_load_n(&bad[k], __ATOMIC_RELAXED))
            check_failed("%d threads in %s did not get -ECANCELED\n", bad[k], kind_name[k]);
    CHECK_ERR(weft_group_free(group), 0);

    /* The objects are intact: the helper lets go, and each works. */
    CHECK_ERR(weft_sem_post(&holder_go), 0);
    CHECK_ERR(weft_join(h, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_wait(other, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_free(other), 0);
    CHECK_ERR(weft_mutex_timedlock(&m, 0), 0);
    CHECK_ERR(weft_mutex_unlock(&m), 0);
    CHECK_ERR(weft_rwlock_wrlock(&rw, 0), 0);
    CHECK_ERR(weft_rwlock_unlock(&rw), 0);
    CHECK_ERR(weft_rwlock_destroy(&rw), 0);
    CHECK_ERR(weft_sem_post(&sem), 0);
    CHECK_ERR(weft_sem_wait(&sem, 0), 0);
    CHECK_ERR(weft_sem_destroy(&sem), 0);
    CHECK_ERR(weft_cond_destroy(&cv), 0);
    int v = 3;
    CHECK_ERR(weft_chan_send(rch, &v, 0), -ETIMEDOUT); /* nobody waits any more */
    weft_chan_free(rch);
    weft_chan_free(sch);
    for (int p = 0; p < PAIRS; p++) {
        CHECK_EQ(write(sv[p][1], "x", 1), 1);
        char c;
        CHECK_EQ(weft_read(sv[p][0], &c, 1, 0), 1); /* nobody took it */
        CHECK_ERR(weft_close(sv[p][0]), 0);
        CHECK_ERR(weft_close(sv[p][1]), 0);
    }
    printf("%ld threads in %d kinds of wait: stopped and ended (%.1f ms)\n", n, KINDS,
           (double)took / 1e6);
#if defined(WEFT_ASAN)
    __lsan_do_leak_check();
#endif
}

int main(void)
{
    check_with_workers(1, run, NULL);
    printf("-- 1 worker: ok\n");
    check_with_workers(2, run, NULL);
    printf("-- 2 workers: ok\n");
    return 0;
}
