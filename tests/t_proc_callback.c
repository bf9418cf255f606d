/*
 * t_proc_callback.c - callbacks from the child into the parent: they run
 * on weft threads (also when the caller is main), unknown names and
 * errors come back, a callback may call the child again, nested many
 * levels deep, and payloads bigger than the rings go both ways.
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

static const weft_proc_cb cbs[] = {
    {"twice", twice, &cb_calls},
    {"fail", fail, NULL},
    {"down", down, NULL},
};

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
                            .ncallbacks = 3};
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
    weft_proc_cb bad = {NULL, twice, NULL};
    weft_proc_opts o = {.callbacks = &bad, .ncallbacks = 1};
    weft_proc_t *p;
    CHECK_ERR(weft_proc_new(&p, &o), -EINVAL);
    printf("ok\n");
    return 0;
}
