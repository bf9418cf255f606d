/*
 * t_chan: the contract of channels, call by call, from main, from weft
 * threads and from pthreads.
 *
 *  - errors: weft_chan_new with ch NULL, elem_size 0 or above
 *    WEFT_CHAN_ELEM_MAX, or a ring whose size overflows gives -EINVAL, an
 *    impossible ring -ENOMEM; send, recv and close with ch NULL and send
 *    with elem NULL give -EINVAL; weft_chan_free(NULL) does nothing;
 *  - try semantics: with a deadline of 0, 1, one already past or
 *    weft_after(0), a send or receive that cannot complete at once gives
 *    -ETIMEDOUT and changes nothing; a buffered channel takes exactly
 *    capacity elements and gives them back in order; recv with elem NULL
 *    drops one; elements of 1, 3, 100 and WEFT_CHAN_ELEM_MAX bytes arrive
 *    whole;
 *  - deadlines that pass: send on a full or rendezvous channel and recv on
 *    an empty one, with a deadline 10 ms ahead, give -ETIMEDOUT no earlier
 *    than the deadline (weft_now() >= deadline), on main and on a weft
 *    thread, and the channel holds what it held before;
 *  - deadlines that do not pass: a rendezvous send and a recv with a
 *    deadline 60 s ahead complete with the partner's element;
 *  - close: a second close gives -EPIPE, send after close gives -EPIPE,
 *    recv drains what is buffered and then gives -EPIPE; receivers waiting
 *    on an empty channel and senders waiting on a full one (weft threads
 *    and pthreads) all wake with -EPIPE, and the buffered elements are
 *    still received, none of the waiting senders' among them;
 *  - freeing a channel that a thread waits on (a receiver, then a sender)
 *    aborts with "weft: weft_chan_free: channel ... wait on it", checked in
 *    a child process (this program run again).
 */
#include "check.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

extern char **environ;

/* An impossible allocation must fail with -ENOMEM, not end an ASan or
 * TSan run. (Visible: the build hides symbols by default, and the
 * sanitizers look these up.) */
#define VISIBLE __attribute__((visibility("default"), used))
VISIBLE const char *__asan_default_options(void);
VISIBLE const char *__tsan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
const char *__tsan_default_options(void)
{
    return "allocator_may_return_null=1";
}

/* ---- errors ---- */

static void check_errors(void)
{
    weft_chan_t *c = NULL;
    uint64_t v = 1;
    CHECK_ERR(weft_chan_new(NULL, 8, 1), -EINVAL);
    CHECK_ERR(weft_chan_new(&c, 0, 1), -EINVAL);
    CHECK_ERR(weft_chan_new(&c, WEFT_CHAN_ELEM_MAX + 1, 0), -EINVAL);
    CHECK_ERR(weft_chan_new(&c, SIZE_MAX, 0), -EINVAL);
    CHECK_ERR(weft_chan_new(&c, 1024, SIZE_MAX / 512), -EINVAL);
    CHECK_ERR(weft_chan_new(&c, 8, (size_t)1 << 58), -ENOMEM);
    CHECK(c == NULL);

    CHECK_ERR(weft_chan_send(NULL, &v, 0), -EINVAL);
    CHECK_ERR(weft_chan_recv(NULL, &v, 0), -EINVAL);
    CHECK_ERR(weft_chan_close(NULL), -EINVAL);
    weft_chan_free(NULL);

    CHECK_ERR(weft_chan_new(&c, 8, 0), 0);
    CHECK(c != NULL);
    CHECK_ERR(weft_chan_send(c, NULL, 0), -EINVAL);
    CHECK_ERR(weft_chan_send(c, NULL, WEFT_FOREVER), -EINVAL);
    weft_chan_free(c);
}

/* ---- try semantics ---- */

static void check_try(void)
{
    int64_t past[] = {0, 1, weft_now() - WEFT_MS(1), weft_after(0)};
    weft_chan_t *r, *b;
    uint64_t v = 7;
    CHECK_ERR(weft_chan_new(&r, sizeof v, 0), 0);
    CHECK_ERR(weft_chan_new(&b, sizeof v, 4), 0);
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
        CHECK_ERR(weft_chan_send(r, &v, past[i]), -ETIMEDOUT);
        CHECK_ERR(weft_chan_recv(r, &v, past[i]), -ETIMEDOUT);
        CHECK_ERR(weft_chan_recv(b, &v, past[i]), -ETIMEDOUT);
    }
    CHECK_EQ(v, 7);

    /* A ring of 4 takes 4, refuses the 5th, gives them back in order. */
    for (uint64_t i = 0; i < 4; i++)
        CHECK_ERR(weft_chan_send(b, &i, 0), 0);
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++)
        CHECK_ERR(weft_chan_send(b, &v, past[i]), -ETIMEDOUT);
    for (uint64_t i = 0; i < 4; i++) {
        CHECK_ERR(weft_chan_recv(b, &v, 0), 0);
        CHECK_EQ(v, i);
    }
    CHECK_ERR(weft_chan_recv(b, &v, 0), -ETIMEDOUT);

    /* Wrap around the ring many times; recv(NULL) drops one. */
    uint64_t next_in = 100, next_out = 100;
    for (int round = 0; round < 50; round++) {
        int k = 1 + round % 4;
        for (int i = 0; i < k; i++, next_in++)
            CHECK_ERR(weft_chan_send(b, &next_in, 0), 0);
        for (int i = 0; i < k; i++, next_out++) {
            if (i == 1) {
                CHECK_ERR(weft_chan_recv(b, NULL, 0), 0);
                continue;
            }
            CHECK_ERR(weft_chan_recv(b, &v, 0), 0);
            CHECK_EQ(v, next_out);
        }
    }
    CHECK_ERR(weft_chan_recv(b, &v, 0), -ETIMEDOUT);
    weft_chan_free(r);
    weft_chan_free(b);

    /* Odd and large element sizes. */
    size_t sizes[] = {1, 3, 100, WEFT_CHAN_ELEM_MAX};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        unsigned char *in = malloc(n), *out = malloc(n);
        CHECK(in && out);
        for (size_t i = 0; i < n; i++)
            in[i] = (unsigned char)(i * 7 + s);
        weft_chan_t *c;
        CHECK_ERR(weft_chan_new(&c, n, 2), 0);
        CHECK_ERR(weft_chan_send(c, in, 0), 0);
        CHECK_ERR(weft_chan_send(c, in, 0), 0);
        for (int k = 0; k < 2; k++) {
            memset(out, 0, n);
            CHECK_ERR(weft_chan_recv(c, out, 0), 0);
            CHECK(memcmp(in, out, n) == 0);
        }
        weft_chan_free(c);
        free(in);
        free(out);
    }
}

/* ---- deadlines that pass ---- */

static void check_timeouts(void)
{
    weft_chan_t *r, *b;
    uint64_t v = 1, w = 0;
    CHECK_ERR(weft_chan_new(&r, sizeof v, 0), 0);
    CHECK_ERR(weft_chan_new(&b, sizeof v, 1), 0);

    int64_t d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_chan_send(r, &v, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_chan_recv(r, &w, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    d = weft_after(WEFT_MS(10));
    CHECK_ERR(weft_chan_recv(b, &w, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    CHECK_EQ(w, 0);

    CHECK_ERR(weft_chan_send(b, &v, 0), 0);
    d = weft_after(WEFT_MS(10));
    uint64_t v2 = 2;
    CHECK_ERR(weft_chan_send(b, &v2, d), -ETIMEDOUT);
    CHECK(weft_now() >= d);
    /* The timed-out send left nothing behind; the first is still there. */
    CHECK_ERR(weft_chan_recv(b, &w, 0), 0);
    CHECK_EQ(w, 1);
    CHECK_ERR(weft_chan_recv(b, &w, 0), -ETIMEDOUT);
    CHECK_ERR(weft_chan_recv(r, &w, 0), -ETIMEDOUT);
    weft_chan_free(r);
    weft_chan_free(b);
}

static void *timeouts_thread(void *arg)
{
    (void)arg;
    check_timeouts();
    check_try();
    return U2P(1);
}

/* ---- deadlines that do not pass ---- */

struct pair {
    weft_chan_t *c;
    uint64_t v;
    int rc;
};

static void *slow_sender(void *arg)
{
    struct pair *p = arg;
    usleep(2000); /* so that the receiver most likely waits first */
    p->rc = weft_chan_send(p->c, &p->v, weft_after(WEFT_SEC(60)));
    return NULL;
}

static void *slow_receiver(void *arg)
{
    struct pair *p = arg;
    usleep(2000);
    p->rc = weft_chan_recv(p->c, &p->v, weft_after(WEFT_SEC(60)));
    return NULL;
}

static void check_no_timeout(void)
{
    weft_chan_t *c;
    CHECK_ERR(weft_chan_new(&c, sizeof(uint64_t), 0), 0);
    for (int kind = 0; kind < 4; kind++) {
        /* kind bit 0: the partner is a pthread; bit 1: main sends. */
        struct pair p = {.c = c, .v = 42, .rc = 1};
        void *(*fn)(void *) = kind & 2 ? slow_receiver : slow_sender;
        pthread_t pt;
        weft_t wt;
        if (kind & 1)
            CHECK_EQ(pthread_create(&pt, NULL, fn, &p), 0);
        else
            CHECK_ERR(weft_spawn(&wt, fn, &p, NULL), 0);
        uint64_t v = 1000 + (uint64_t)kind;
        if (kind & 2) {
            CHECK_ERR(weft_chan_send(c, &v, weft_after(WEFT_SEC(60))), 0);
        } else {
            CHECK_ERR(weft_chan_recv(c, &v, weft_after(WEFT_SEC(60))), 0);
            CHECK_EQ(v, 42);
        }
        if (kind & 1)
            CHECK_EQ(pthread_join(pt, NULL), 0);
        else
            CHECK_ERR(weft_join(wt, NULL, WEFT_FOREVER), 0);
        CHECK_ERR(p.rc, 0);
        if (kind & 2)
            CHECK_EQ(p.v, 1000 + (uint64_t)kind);
    }
    weft_chan_free(c);
}

/* ---- close ---- */

static void check_close_simple(void)
{
    weft_chan_t *c;
    uint64_t v;
    CHECK_ERR(weft_chan_new(&c, sizeof v, 3), 0);
    for (v = 1; v <= 3; v++)
        CHECK_ERR(weft_chan_send(c, &v, 0), 0);
    CHECK_ERR(weft_chan_close(c), 0);
    CHECK_ERR(weft_chan_close(c), -EPIPE);
    CHECK_ERR(weft_chan_send(c, &v, 0), -EPIPE);
    CHECK_ERR(weft_chan_send(c, &v, WEFT_FOREVER), -EPIPE);
    for (uint64_t i = 1; i <= 3; i++) {
        CHECK_ERR(weft_chan_recv(c, &v, WEFT_FOREVER), 0);
        CHECK_EQ(v, i);
    }
    CHECK_ERR(weft_chan_recv(c, &v, WEFT_FOREVER), -EPIPE);
    CHECK_ERR(weft_chan_recv(c, &v, 0), -EPIPE);
    CHECK_ERR(weft_chan_recv(c, NULL, weft_after(WEFT_MS(1))), -EPIPE);
    weft_chan_free(c);
}

#define CLOSE_WAITERS 6 /* half weft threads, half pthreads */

struct close_arg {
    weft_chan_t *c;
    uint64_t v;
    uint32_t started;
};

static void *blocked_recv(void *arg)
{
    struct close_arg *a = arg;
    __atomic_fetch_add(&a->started, 1, __ATOMIC_RELEASE);
    uint64_t v = 0;
    int rc = weft_chan_recv(a->c, &v, WEFT_FOREVER);
    CHECK_EQ(v, 0);
    return U2P(rc + 1000);
}

static void *blocked_send(void *arg)
{
    struct close_arg *a = arg;
    __atomic_fetch_add(&a->started, 1, __ATOMIC_RELEASE);
    uint64_t v = 999;
    return U2P(weft_chan_send(a->c, &v, weft_after(WEFT_SEC(60))) + 1000);
}

/* Starts waiters running fn, waits until they have most likely blocked,
 * closes, and checks that every one of them got -EPIPE. */
static void close_waiters(weft_chan_t *c, void *(*fn)(void *))
{
    struct close_arg a = {.c = c};
    weft_t wt[CLOSE_WAITERS / 2];
    pthread_t pt[CLOSE_WAITERS / 2];
    for (int i = 0; i < CLOSE_WAITERS / 2; i++) {
        CHECK_ERR(weft_spawn(&wt[i], fn, &a, NULL), 0);
        CHECK_EQ(pthread_create(&pt[i], NULL, fn, &a), 0);
    }
    while (__atomic_load_n(&a.started, __ATOMIC_ACQUIRE) < CLOSE_WAITERS)
        usleep(1000);
    usleep(20000); /* not asserted: either way the result is -EPIPE */
    CHECK_ERR(weft_chan_close(c), 0);
    for (int i = 0; i < CLOSE_WAITERS / 2; i++) {
        void *r;
        CHECK_ERR(weft_join(wt[i], &r, WEFT_FOREVER), 0);
        CHECK_EQ((long)P2U(r) - 1000, -EPIPE);
        CHECK_EQ(pthread_join(pt[i], &r), 0);
        CHECK_EQ((long)P2U(r) - 1000, -EPIPE);
    }
}

static void check_close_waiters(void)
{
    weft_chan_t *c;
    uint64_t v;
    /* Receivers on an empty channel, rendezvous and buffered. */
    for (size_t cap = 0; cap < 3; cap += 2) {
        CHECK_ERR(weft_chan_new(&c, sizeof v, cap), 0);
        close_waiters(c, blocked_recv);
        weft_chan_free(c);
    }
    /* Senders on a full channel: the buffered elements survive. */
    CHECK_ERR(weft_chan_new(&c, sizeof v, 2), 0);
    for (v = 1; v <= 2; v++)
        CHECK_ERR(weft_chan_send(c, &v, 0), 0);
    close_waiters(c, blocked_send);
    for (uint64_t i = 1; i <= 2; i++) {
        CHECK_ERR(weft_chan_recv(c, &v, 0), 0);
        CHECK_EQ(v, i);
    }
    CHECK_ERR(weft_chan_recv(c, &v, WEFT_FOREVER), -EPIPE);
    weft_chan_free(c);
    /* Senders on a rendezvous channel. */
    CHECK_ERR(weft_chan_new(&c, sizeof v, 0), 0);
    close_waiters(c, blocked_send);
    CHECK_ERR(weft_chan_recv(c, &v, WEFT_FOREVER), -EPIPE);
    weft_chan_free(c);
}

/* ---- freeing a channel with waiters: child mode ---- */

static uint32_t waiter_started;

static int misuse_send; /* the waiter sends (else receives) */

static void *misuse_blocker(void *arg)
{
    weft_chan_t *c = arg;
    uint64_t v = 5;
    __atomic_store_n(&waiter_started, 1, __ATOMIC_RELEASE);
    if (misuse_send)
        weft_chan_send(c, &v, WEFT_FOREVER);
    else
        weft_chan_recv(c, &v, WEFT_FOREVER);
    return NULL;
}

/* On one worker: the blocker runs until it parks as soon as the driver
 * yields, so the free below finds it queued. */
static void *misuse_driver(void *arg)
{
    (void)arg;
    weft_chan_t *c;
    CHECK_ERR(weft_chan_new(&c, sizeof(uint64_t), 0), 0);
    CHECK_ERR(weft_spawn(NULL, misuse_blocker, c, NULL), 0);
    while (!__atomic_load_n(&waiter_started, __ATOMIC_ACQUIRE))
        weft_yield();
    for (int i = 0; i < 3; i++)
        weft_yield();
    weft_chan_free(c); /* must abort */
    printf("weft_chan_free returned\n");
    fflush(stdout);
    _exit(0);
}

static void run_misuse(const char *mode)
{
    misuse_send = !strcmp(mode, "send");
    /* The waiter must be parked when the driver frees the channel: no
     * preemption to reorder them on a loaded machine (see t_yield). */
    setenv("WEFT_PREEMPT", "off", 1);
    weft_config cfg = {.workers = 1, .time_slice = -1};
    CHECK_ERR(weft_init(&cfg), 0);
    weft_t d;
    CHECK_ERR(weft_spawn(&d, misuse_driver, NULL, NULL), 0);
    weft_join(d, NULL, WEFT_FOREVER);
    _exit(0);
}

/* Runs this program as "misuse MODE" with WEFT_WORKERS=1 and checks that
 * it died of SIGABRT after printing the message. */
static void check_free_misuse(const char *mode)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc(sizeof(char *) * (n + 2));
    CHECK(env != NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "WEFT_WORKERS=", 13) != 0)
            env[k++] = environ[i];
    env[k++] = "WEFT_WORKERS=1";
    env[k] = NULL;
    char *argv[] = {"t_chan", "misuse", (char *)mode, NULL};
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execve("/proc/self/exe", argv, env);
        _exit(127);
    }
    free(env);
    close(fds[1]);
    char out[8192];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = 0;
    close(fds[0]);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        check_failed("free misuse (%s): status 0x%x, output:\n%s\n", mode, status, out);
    const char *want = "weft: weft_chan_free: channel ";
    if (!strstr(out, want) || !strstr(out, "wait on it") ||
        !strstr(out, misuse_send ? "1 sender(s)" : "1 receiver(s)"))
        check_failed("free misuse (%s): message missing; output:\n%s\n", mode, out);
    printf("free misuse (%s): aborted with: %s", mode, strstr(out, want));
}

int main(int argc, char **argv)
{
    if (argc > 2 && !strcmp(argv[1], "misuse")) {
        run_misuse(argv[2]);
        return 0;
    }

    check_errors();
    check_try(); /* on main, before the runtime starts */
    check_timeouts();
    weft_t t;
    void *r;
    CHECK_ERR(weft_spawn(&t, timeouts_thread, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 1);

    check_no_timeout();
    check_close_simple();
    check_close_waiters();

    misuse_send = 0;
    check_free_misuse("recv");
    misuse_send = 1;
    check_free_misuse("send");
    return 0;
}
