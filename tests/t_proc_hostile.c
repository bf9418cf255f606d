/*
 * t_proc_hostile.c - a child that scribbles the shared region cannot hurt
 * the parent. Its entries write the ring indices the parent reads (the
 * request ring's head, before a call and during a big one, and the
 * response ring's tail, ahead of or behind the parent's head), the
 * region's sizes and offsets, and the configuration the next child gets.
 * Each time the parent's call fails with -EPROTO and kills the child, or
 * does not notice at all where it never reads what was written; it never
 * writes outside the region, its shared area keeps its bytes, and the
 * next call gets a fresh, correctly configured child. Both modes.
 *
 * The entries find the region's header from the shared area's address and
 * proc.h's layout: a test of weft's own internals, on purpose.
 */
#include "proctest.h"

#include "proc/proc.h"

#include <pthread.h>
#include <sched.h>

#define RING 65536u
#define SHARED 4096u
#define BIG (16u << 20)

static struct region *region_of(weft_proc_ctx_t *ctx)
{
    size_t size;
    char *shared = weft_proc_ctx_shared(ctx, &size);
    CHECK(shared != NULL && size == SHARED);
    return (struct region *)(shared - (REGION_RINGS_OFF + 2 * RING));
}

static uint64_t ld(uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void st(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* The request ring's head (the child's own index), ahead of the tail. */
static ssize_t head_ahead(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)in, (void)len, (void)out, (void)cap;
    struct region *r = region_of(ctx);
    st(&r->req.head, ld(&r->req.tail) + 3 * RING);
    return 0;
}
WEFT_PROC_ENTRY("head_ahead", head_ahead);

/* ... and more than a ring behind it. */
static ssize_t head_behind(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)in, (void)len, (void)out, (void)cap;
    struct region *r = region_of(ctx);
    st(&r->req.head, ld(&r->req.tail) - 2 * RING - 1);
    return 0;
}
WEFT_PROC_ENTRY("head_behind", head_behind);

/* The response ring's tail, too far ahead (in > 0) or behind the head,
 * and a ring of the parent's doorbell; then it hangs, so no RETURN of its
 * own overwrites the scribble. */
static ssize_t bad_tail(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)out, (void)cap;
    int ahead;
    CHECK_EQ(len, sizeof ahead);
    memcpy(&ahead, in, sizeof ahead);
    struct region *r = region_of(ctx);
    uint64_t head = ld(&r->resp.head);
    st(&r->resp.tail, ahead ? head + RING + 1 : head - 1);
    uint64_t one = 1; /* the parent's doorbell, in case it sleeps */
    CHECK_EQ(write(r->cfg.efd, &one, sizeof one), sizeof one);
    for (;;)
        pause();
}
WEFT_PROC_ENTRY("bad_tail", bad_tail);

/* The request ring's head made impossible, then a callback whose big
 * answer the parent must write into that ring. */
static ssize_t cb_scribble(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)in, (void)len;
    struct region *r = region_of(ctx);
    st(&r->req.head, ld(&r->req.tail) + (1ull << 40));
    return weft_proc_callback(ctx, "big", NULL, 0, out, cap);
}
WEFT_PROC_ENTRY("cb_scribble", cb_scribble);

/* A thread of the child's that, once the parent is more than two rings
 * into a call's argument, writes impossible heads for ever. */
static void *scribbler(void *arg)
{
    struct region *r = arg;
    uint64_t base = ld(&r->req.tail);
    while (ld(&r->req.tail) - base <= 2 * RING)
        sched_yield();
    for (uint64_t i = 0;; i++)
        st(&r->req.head, ld(&r->req.tail) + RING + 1 + (i & 7));
    return NULL;
}

static ssize_t start_scribbler(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out,
                               size_t cap)
{
    (void)in, (void)len, (void)out, (void)cap;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, scribbler, region_of(ctx)), 0);
    return 0;
}
WEFT_PROC_ENTRY("start_scribbler", start_scribbler);

/* The header's sizes and offsets, and the configuration of the next
 * child: fds of the parent's to keep, a deny list past its end. */
static ssize_t sizes(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)in, (void)len, (void)out, (void)cap;
    struct region *r = region_of(ctx);
    st(&r->size, 1);
    st(&r->ring_size, 1ull << 40);
    st(&r->shared_off, 1ull << 41);
    st(&r->shared_size, 1ull << 42);
    r->cfg.nkeep = 100000;
    for (int i = 0; i < PROC_KEEP_MAX; i++)
        r->cfg.keep[i] = 3 + i;
    r->cfg.ndeny = 100000;
    r->cfg.limit_nofile = 4;
    return 0;
}
WEFT_PROC_ENTRY("sizes", sizes);

/* Open fds of the child, as 8 bytes. */
static ssize_t nfds(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len;
    int64_t n = pt_count_fds();
    CHECK(cap >= sizeof n);
    memcpy(out, &n, sizeof n);
    return sizeof n;
}
WEFT_PROC_ENTRY("nfds", nfds);

/* Parent: answers with as many bytes as asked for. */
static ssize_t big(weft_proc_t *p, void *arg, const void *in, size_t len, void *out, size_t cap)
{
    (void)p, (void)arg, (void)in, (void)len;
    memset(out, 0x5a, cap);
    return (ssize_t)cap;
}

static const weft_proc_cb cbs[] = {{"big", big, NULL}};

static unsigned char *in_buf, *out_buf;

static void check_shared(weft_proc_t *p)
{
    size_t size = 0;
    unsigned char *s = weft_proc_shared(p, &size);
    CHECK(s != NULL);
    CHECK_EQ(size, SHARED);
    for (size_t i = 0; i < SHARED; i++)
        if (s[i] != (unsigned char)(i * 13))
            check_failed("shared byte %zu changed: %u\n", i, s[i]);
}

/* The call just made failed with -EPROTO: the child was killed and
 * reaped, and a fresh one answers. */
static void expect_killed(weft_proc_t *p, unsigned long started)
{
    weft_proc_status_t s;
    CHECK_ERR(weft_proc_status(p, &s), 0);
    CHECK_EQ(s.running, 0);
    CHECK_EQ(s.killed, 1);
    CHECK_EQ(s.signal, SIGKILL);
    CHECK_EQ(s.started, started);
    CHECK(!pt_has_children());
    check_shared(p);
    pt_call_pid(p);
}

/* An echo of n bytes that must come back whole. */
static void echo_ok(weft_proc_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        in_buf[i] = (unsigned char)(i * 7 + 1);
    CHECK_EQ(weft_proc_call(p, "echo", in_buf, n, out_buf, n, weft_after(WEFT_SEC(60))),
             (ssize_t)n);
    CHECK(memcmp(in_buf, out_buf, n) == 0);
}

static int64_t child_fds(weft_proc_t *p)
{
    int64_t n = 0;
    CHECK_EQ(weft_proc_call(p, "nfds", NULL, 0, &n, sizeof n, weft_after(WEFT_SEC(60))),
             sizeof n);
    return n;
}

static void one_mode(int mode)
{
    weft_proc_opts o = {.mode = mode, .ring_size = RING, .shared_size = SHARED,
                        .callbacks = cbs, .ncallbacks = 1};
    weft_proc_t *p;
    CHECK_ERR(weft_proc_new(&p, &o), 0);
    unsigned char *s = weft_proc_shared(p, NULL);
    for (size_t i = 0; i < SHARED; i++)
        s[i] = (unsigned char)(i * 13);
    int64_t fds = child_fds(p);
    unsigned long started = 1;
    int64_t far = weft_after(WEFT_SEC(60));

    /* The request ring's head ahead of its tail, or too far behind: the
     * parent's next write refuses it. */
    const char *heads[] = {"head_ahead", "head_behind"};
    for (int i = 0; i < 2; i++) {
        CHECK_ERR(weft_proc_call(p, heads[i], NULL, 0, NULL, 0, far), 0);
        CHECK_ERR(weft_proc_call(p, "echo", in_buf, 100, out_buf, 100, far), -EPROTO);
        expect_killed(p, started);
        started++; /* expect_killed's call */
    }

    /* The response ring's tail, ahead and behind: the parent's read
     * refuses it. */
    for (int ahead = 0; ahead < 2; ahead++) {
        CHECK_ERR(weft_proc_call(p, "bad_tail", &ahead, sizeof ahead, NULL, 0, far), -EPROTO);
        expect_killed(p, started);
        started++;
    }

    /* Scribbled before the parent writes a callback's 1 MiB answer: the
     * write that overran the ring and crashed the parent. */
    CHECK_ERR(weft_proc_call(p, "cb_scribble", NULL, 0, out_buf, 1u << 20, far), -EPROTO);
    expect_killed(p, started);
    started++;

    /* Scribbled for ever, from a thread of the child's, while the parent
     * streams 16 MiB through a 64 KiB ring: a call may still get through
     * before the scribbler runs, but one fails soon, and none crashes. */
    CHECK_ERR(weft_proc_call(p, "start_scribbler", NULL, 0, NULL, 0, far), 0);
    ssize_t n = 0;
    for (int i = 0; i < 20; i++) {
        n = weft_proc_call(p, "echo", in_buf, BIG, out_buf, BIG, far);
        if (n != (ssize_t)BIG)
            break;
        weft_sleep(weft_after(WEFT_MS(10)));
    }
    CHECK_ERR(n, -EPROTO);
    expect_killed(p, started);
    started++;

    /* Sizes, offsets and the next child's configuration: the parent never
     * reads them back, so this child goes on as if nothing happened. */
    CHECK_ERR(weft_proc_call(p, "sizes", NULL, 0, NULL, 0, far), 0);
    size_t size = 0;
    CHECK(weft_proc_shared(p, &size) == s);
    CHECK_EQ(size, SHARED);
    echo_ok(p, 5 * RING / 2);
    weft_proc_status_t ps;
    CHECK_ERR(weft_proc_status(p, &ps), 0);
    CHECK_EQ(ps.running, 1);
    CHECK_EQ(ps.started, started);
    /* The next child gets the parent's own copies: the same fds, limits
     * and sizes as the first. */
    CHECK_ERR(weft_proc_kill(p), 0);
    CHECK_EQ(child_fds(p), fds);
    echo_ok(p, 5 * RING / 2);
    check_shared(p);
    CHECK_ERR(weft_proc_status(p, &ps), 0);
    CHECK_EQ(ps.started, started + 1);

    CHECK_ERR(weft_proc_free(p), 0);
    CHECK(!pt_has_children());
}

static void *run(void *arg)
{
    (void)arg;
    one_mode(WEFT_PROC_FORK);
    one_mode(WEFT_PROC_EXEC);
    return NULL;
}

int main(void)
{
    in_buf = malloc(BIG);
    out_buf = malloc(BIG);
    CHECK(in_buf && out_buf);
    one_mode(WEFT_PROC_FORK); /* from main */
    weft_t t;
    CHECK_ERR(weft_spawn(&t, run, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    free(in_buf);
    free(out_buf);
    printf("ok\n");
    return 0;
}
