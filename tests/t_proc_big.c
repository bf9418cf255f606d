/*
 * t_proc_big.c - megabyte arguments and results, through rings smaller
 * than them (streamed in pieces) and through the default ring, in fork and
 * exec mode, from a weft thread and from main.
 */
#include "proctest.h"

/* Result: every byte of the argument plus one, then a trailer of 1 MiB of
 * a pattern, so the result is longer than the argument. */
static ssize_t bump(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx;
    size_t extra = 1u << 20;
    if (len + extra > cap)
        return -EMSGSIZE;
    const unsigned char *a = in;
    unsigned char *b = out;
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)(a[i] + 1);
    for (size_t i = 0; i < extra; i++)
        b[len + i] = (unsigned char)(i * 7);
    return (ssize_t)(len + extra);
}
WEFT_PROC_ENTRY("bump", bump);

static void big_calls(weft_proc_t *p, int rounds)
{
    size_t len = 3u << 20; /* 3 MiB in, 4 MiB out */
    unsigned char *in = malloc(len), *out = malloc(len + (1u << 20));
    CHECK(in && out);
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)(i * 31 + (size_t)r);
        ssize_t n = weft_proc_call(p, "bump", in, len, out, len + (1u << 20), WEFT_FOREVER);
        CHECK_EQ(n, (ssize_t)(len + (1u << 20)));
        for (size_t i = 0; i < len; i++)
            if (out[i] != (unsigned char)(in[i] + 1))
                check_failed("byte %zu of round %d: %u, expected %u\n", i, r, out[i], in[i] + 1);
        for (size_t i = 0; i < (1u << 20); i++)
            CHECK_EQ(out[len + i], (unsigned char)(i * 7));
        /* A small call after a big one: the stream is in step. */
        char s[5] = {0};
        CHECK_EQ(weft_proc_call(p, "echo", "abcd", 4, s, 4, WEFT_FOREVER), 4);
        CHECK(!strcmp(s, "abcd"));
    }
    free(in);
    free(out);
}

struct arg {
    weft_proc_t *p;
};

static void *in_weft(void *a)
{
    big_calls(((struct arg *)a)->p, 2);
    return NULL;
}

int main(void)
{
    int modes[] = {WEFT_PROC_FORK, WEFT_PROC_EXEC};
    size_t rings[] = {4096, 0};
    for (int m = 0; m < 2; m++) {
        for (int r = 0; r < 2; r++) {
            weft_proc_opts o = {.mode = modes[m], .ring_size = rings[r]};
            weft_proc_t *p;
            CHECK_ERR(weft_proc_new(&p, &o), 0);
            big_calls(p, 1);
            struct arg a = {p};
            weft_t t;
            CHECK_ERR(weft_spawn(&t, in_weft, &a, NULL), 0);
            CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
            weft_proc_status_t st;
            CHECK_ERR(weft_proc_status(p, &st), 0);
            CHECK_EQ(st.started, 1);
            CHECK_ERR(weft_proc_free(p), 0);
        }
    }
    printf("ok\n");
    return 0;
}
