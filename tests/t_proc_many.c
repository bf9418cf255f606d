/*
 * t_proc_many.c - 100 threads calling one proc at once (served one call
 * at a time, each caller getting its own result, never another's), weft
 * threads and plain pthreads mixed, in fork and exec mode; then 100 procs
 * in use at once.
 */
#include "proctest.h"

#include <pthread.h>

#define CALLERS 100

struct caller {
    weft_proc_t *p;
    int id;
    long calls;
};

static void calls(struct caller *c)
{
    for (long i = 0; i < c->calls; i++) {
        int64_t in[8], out[8];
        for (int j = 0; j < 8; j++)
            in[j] = (int64_t)c->id << 32 | i << 4 | j;
        ssize_t n = weft_proc_call(c->p, "echo", in, sizeof in, out, sizeof out, WEFT_FOREVER);
        CHECK_EQ(n, (ssize_t)sizeof out);
        CHECK(!memcmp(in, out, sizeof in));
    }
}

static void *weft_caller(void *arg)
{
    calls(arg);
    return NULL;
}

static void *pthread_caller(void *arg)
{
    calls(arg);
    return NULL;
}

static void one_mode(int mode)
{
    weft_proc_opts o = {.mode = mode};
    weft_proc_t *p;
    CHECK_ERR(weft_proc_new(&p, &o), 0);
    static struct caller c[CALLERS];
    weft_t t[CALLERS];
    pthread_t pt[CALLERS];
    long n = test_scale(100);
    for (int i = 0; i < CALLERS; i++) {
        c[i] = (struct caller){p, i, n};
        if (i % 10 == 0)
            CHECK_EQ(pthread_create(&pt[i], NULL, pthread_caller, &c[i]), 0);
        else
            CHECK_ERR(weft_spawn(&t[i], weft_caller, &c[i], NULL), 0);
    }
    for (int i = 0; i < CALLERS; i++) {
        if (i % 10 == 0)
            CHECK_EQ(pthread_join(pt[i], NULL), 0);
        else
            CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    }
    weft_proc_status_t st;
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.started, 1);
    CHECK_ERR(weft_proc_free(p), 0);
}

static void *own_proc(void *arg)
{
    struct caller *c = arg;
    weft_proc_opts o = {.ring_size = 4096};
    CHECK_ERR(weft_proc_new(&c->p, &o), 0);
    calls(c);
    CHECK_ERR(weft_proc_free(c->p), 0);
    return NULL;
}

int main(void)
{
    one_mode(WEFT_PROC_FORK);
    one_mode(WEFT_PROC_EXEC);
    /* Many procs at once, each with its own child. */
    int nprocs = (int)test_scale(100);
    if (nprocs < 2)
        nprocs = 2;
    static struct caller c[CALLERS];
    weft_t t[CALLERS];
    for (int i = 0; i < nprocs && i < CALLERS; i++) {
        c[i] = (struct caller){NULL, i, 20};
        CHECK_ERR(weft_spawn(&t[i], own_proc, &c[i], NULL), 0);
    }
    for (int i = 0; i < nprocs && i < CALLERS; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    CHECK(!pt_has_children());
    printf("ok\n");
    return 0;
}
