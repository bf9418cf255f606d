/*
 * t_proc_callback.c - callbacks from the child into the parent: they run
 * on weft threads (also when the caller is main), unknown names and
 * errors come back, a callback may call the child again, nested many
 * levels deep, and payloads bigger than the rings go both ways. A nested
 * call ends at the earlier of its own deadline and the outer call's.
 */
#include "proctest.h"

/* Child: calls back "twice" with its argument and returns what came back. */
static ssize_t ask_parent(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    return weft_proc_callback(ctx, "twice", in, len, out, cap);
}
WEFT_PROC_ENTRY("ask", ask_parent);

/* Child: calls back a name the parent does not serve, and "fail". */
static ssize_t ask_wrong(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)in, (void)len;
    CHECK_ERR(weft_proc_callback(ctx, "nosuch", NULL, 0, out, cap), -ENOENT);
    CHECK_ERR(weft_proc_callback(ctx, "fail", NULL, 0, out, cap), -EDOM);
    CHECK_ERR(weft_proc_callback(NULL, "fail", NULL, 0, out, cap), -EINVAL);
    return 0;
}
WEFT_PROC_ENTRY("ask_wrong", ask_wrong);

/* Child: depth n > 0 calls back "down" with n - 1; returns n + what came back. */
static ssize_t level(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    int n;
    CHECK_EQ(len, sizeof n);
    memcpy(&n, in, sizeof n);
    int sum = n;
    if (n > 0) {
        int m = n - 1, got = 0;
        ssize_t r = weft_proc_callback(ctx, "down", &m, sizeof m, &got, sizeof got);
        if (r < 0)
            return r; /* -ELOOP from too deep, passed up every level */
        CHECK_EQ(r, sizeof got);
        sum += got;
    }
    CHECK(cap >= sizeof sum);
    memcpy(out, &sum, sizeof sum);
    return sizeof sum;
}
WEFT_PROC_ENTRY("level", level);

/* Child: calls back "nest_hang", whose nested call hangs. */
static ssize_t ask_hang(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    return weft_proc_callback(ctx, "nest_hang", in, len, out, cap);
}
WEFT_PROC_ENTRY("ask_hang", ask_hang);

static int cb_calls;

/* Parent: doubles every byte of its argument. */
static ssize_t twice(weft_proc_t *p, void *arg, const void *in, size_t len, void *out, size_t cap)
{
    (void)p;
    CHECK(arg == &cb_calls);
    CHECK(weft_self() != 0); /* on a weft thread, even when main called */
    cb_calls++;
    if (len > cap)
        return -EMSGSIZE;
    for (size_t i = 0; i < len; i++)
        ((unsigned char *)out)[i] = (unsigned char)(((const unsigned char *)in)[i] * 2);
    return (ssize_t)len;
}

static ssize_t fail(weft_proc_t *p, void *arg, const void *in, size_t len, void *out, size_t cap)
{
    (void)p, (void)arg, (void)in, (void)len, (void)out, (void)cap;
    return -EDOM;
}

/* Parent: calls the child's "level" again, one level down (nested). */
static ssize_t down(weft_proc_t *p, void *arg, const void *in, size_t len, void *out, size_t cap)
{
    (void)arg;
    CHECK(weft_self() != 0);
    return weft_proc_call(p, "level", in, len, out, cap, weft_after(WEFT_SEC(60)));
}

/* Parent: calls the child's "hang", nested, with the deadline its
 * argument gives (-1: WEFT_FOREVER; else ms from now). */
static ssize_t nest_hang(weft_proc_t *p, void *arg, const void *in, size_t len, void *out,
                         size_t cap)
{
    (void)arg, (void)out, (void)cap;
    int64_t ms;
    CHECK_EQ(len, sizeof ms);
    memcpy(&ms, in, sizeof ms);
    int64_t deadline = ms < 0 ? WEFT_FOREVER : weft_after(WEFT_MS(ms));
    return weft_proc_call(p, "hang", NULL, 0, NULL, 0, deadline);
}

static const weft_proc_cb cbs[] = {
    {"twice", twice, &cb_calls},
    {"fail", fail, NULL},
    {"down", down, NULL},
    {"nest_hang", nest_hang, NULL},
};

/* A nested call runs until the earlier of its deadline and the outer
 * call's: an outer deadline of 200 ms ends a nested call that has none or
 * a later one, and a nested deadline of 100 ms ends the chain under an
 * outer call that has none. Every level gets -ETIMEDOUT, the child is
 * killed, and the next call gets a fresh one. */
static void nested_deadlines(int mode)
{
    weft_proc_opts o = {.mode = mode, .callbacks = cbs, .ncallbacks = 4};
    weft_proc_t *p;
    CHECK_ERR(weft_proc_new(&p, &o), 0);
    int64_t inner[] = {-1, 60000};
    for (int i = 0; i < 2; i++) {
        int64_t late = weft_after(WEFT_SEC(30));
        CHECK_ERR(weft_proc_call(p, "ask_hang", &inner[i], sizeof inner[i], NULL, 0,
                                 weft_after(WEFT_MS(200))),
                  -ETIMEDOUT);
        CHECK(weft_now() < late); /* ended by the outer deadline */
        weft_proc_status_t st;
        CHECK_ERR(weft_proc_status(p, &st), 0);
        CHECK_EQ(st.running, 0);
        CHECK_EQ(st.killed, 1);
        pt_call_pid(p);
    }
    int64_t ms = 100;
    CHECK_ERR(weft_proc_call(p, "ask_hang", &ms, sizeof ms, NULL, 0, WEFT_FOREVER), -ETIMEDOUT);
    pt_call_pid(p);
    weft_proc_status_t st;
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.started, 4);
    CHECK_ERR(weft_proc_free(p), 0);
}

static void *nested_deadlines_fork(void *arg)
{
    (void)arg;
    nested_deadlines(WEFT_PROC_FORK);
    return NULL;
}

static void check_all(weft_proc_t *p)
{
    unsigned char in[100], out[100];
    for (int i = 0; i < 100; i++)
        in[i] = (unsigned char)i;
    int before = cb_calls;
    CHECK_EQ(weft_proc_call(p, "ask", in, sizeof in, out, sizeof out, WEFT_FOREVER), 100);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(out[i], (unsigned char)(i * 2));
    CHECK_EQ(cb_calls, before + 1);
    CHECK_EQ(weft_proc_call(p, "ask_wrong", NULL, 0, out, sizeof out, WEFT_FOREVER), 0);

    /* Nested: level n -> down -> level n-1 -> ... -> level 0. */
    for (int n = 0; n <= 40; n += 8) {
        int sum = -1;
        CHECK_EQ(weft_proc_call(p, "level", &n, sizeof n, &sum, sizeof sum, WEFT_FOREVER), sizeof sum);
        CHECK_EQ(sum, n * (n + 1) / 2);
    }
    /* Bigger than the ring, both ways. */
    size_t big = 200000;
    unsigned char *a = malloc(big), *b = malloc(big);
    for (size_t i = 0; i < big; i++)
        a[i] = (unsigned char)(i % 101);
    CHECK_EQ(weft_proc_call(p, "ask", a, big, b, big, WEFT_FOREVER), (ssize_t)big);
    for (size_t i = 0; i < big; i++)
        CHECK_EQ(b[i], (unsigned char)((i % 101) * 2));
    free(a);
    free(b);
}

static void *in_weft(void *arg)
{
    check_all(arg);
    return NULL;
}

int main(void)
{
    int modes[] = {WEFT_PROC_FORK, WEFT_PROC_EXEC};
    for (int m = 0; m < 2; m++) {
        weft_proc_opts o = {.mode = modes[m], .ring_size = 16384, .callbacks = cbs,
                            .ncallbacks = 4};
        weft_proc_t *p;
        CHECK_ERR(weft_proc_new(&p, &o), 0);
        check_all(p); /* from main: callbacks on a helper weft thread */
        weft_t t;
        weft_attr a = {.stack_size = 1u << 20}; /* 40 nested calls stack up here */
        CHECK_ERR(weft_spawn(&t, in_weft, p, &a), 0);
        CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
        /* Nesting is limited: the 65th nested call gets -ELOOP, and every
         * level passes it up; the child lives on. */
        int n = 70, sum = 0;
        CHECK_ERR(weft_proc_call(p, "level", &n, sizeof n, &sum, sizeof sum, WEFT_FOREVER), -ELOOP);
        n = 3;
        CHECK_EQ(weft_proc_call(p, "level", &n, sizeof n, &sum, sizeof sum, WEFT_FOREVER), sizeof sum);
        CHECK_EQ(sum, 6);
        weft_proc_status_t st;
        CHECK_ERR(weft_proc_status(p, &st), 0);
        CHECK_EQ(st.started, 1);
        CHECK_ERR(weft_proc_free(p), 0);
    }
    nested_deadlines(WEFT_PROC_FORK); /* from main */
    nested_deadlines(WEFT_PROC_EXEC);
    weft_t t;
    CHECK_ERR(weft_spawn(&t, nested_deadlines_fork, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    weft_proc_cb bad = {NULL, twice, NULL};
    weft_proc_opts o = {.callbacks = &bad, .ncallbacks = 1};
    weft_proc_t *p;
    CHECK_ERR(weft_proc_new(&p, &o), -EINVAL);
    printf("ok\n");
    return 0;
}
