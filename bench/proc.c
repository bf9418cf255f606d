/*
 * proc.c - isolated calls (weft_proc_call) beside what a program would
 * otherwise write: a child process served over a pipe pair, or over a
 * Unix socket pair, with blocking reads and writes.
 *
 *   proc_rtt_*      warm round trip of a 64-byte argument and result, one
 *                   caller: median and 99th percentile of each call's time
 *   proc_4callers_* calls per second, 4 callers sharing one child (weft:
 *                   4 weft threads on one proc; pipe: 4 pthreads taking
 *                   turns on one pipe pair under a mutex); best of 3 runs
 *   proc_start_*    from nothing to the first result: weft_proc_new plus
 *                   the first call, in fork and in exec mode, beside
 *                   posix_spawn of a helper program (this one, in helper
 *                   mode) plus one pipe round trip; medians
 *
 * The weft calls are made from a weft thread. Freeing a proc and reaping
 * a baseline child are outside the timed part.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MSG 64

extern char **environ;

static ssize_t echo(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx;
    if (len > cap)
        return -EMSGSIZE;
    memcpy(out, in, len);
    return (ssize_t)len;
}
WEFT_PROC_ENTRY("echo", echo);

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *v, long n, double q)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    long i = (long)(q * (double)(n - 1));
    return (double)v[i] / 1000.0; /* us */
}

/* ---- the baseline: a child echoing over two fds ------------------------- */

static void full_io(int fd, void *buf, size_t n, int out)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = out ? write(fd, (char *)buf + done, n - done) : read(fd, (char *)buf + done, n - done);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            if (!out && r == 0)
                _exit(0); /* the parent closed: done */
            BENCH_CHECK(0, "pipe i/o: %s", strerror(errno));
        }
        done += (size_t)r;
    }
}

static void echo_loop(int in, int out)
{
    char buf[MSG];
    for (;;) {
        full_io(in, buf, MSG, 0);
        full_io(out, buf, MSG, 1);
    }
}

struct peer {
    pid_t pid;
    int wr, rd; /* the parent's ends */
};

/* sock: a socketpair instead of two pipes. */
static struct peer peer_start(int sock)
{
    struct peer p;
    int a[2], b[2];
    if (sock) {
        BENCH_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) == 0, "socketpair");
        b[0] = a[1], b[1] = a[1];
    } else {
        BENCH_CHECK(pipe2(a, O_CLOEXEC) == 0 && pipe2(b, O_CLOEXEC) == 0, "pipe");
    }
    p.pid = fork();
    BENCH_CHECK(p.pid >= 0, "fork");
    if (p.pid == 0) {
        /* Only the child's own ends stay open, so it sees the EOF. */
        if (sock) {
            close(a[0]);
            echo_loop(a[1], a[1]);
        }
        close(a[1]);
        close(b[0]);
        echo_loop(a[0], b[1]);
    }
    if (sock) {
        close(a[1]);
        p.wr = p.rd = a[0];
    } else {
        close(a[0]);
        close(b[1]);
        p.wr = a[1];
        p.rd = b[0];
    }
    return p;
}

static void peer_stop(struct peer *p)
{
    close(p->wr);
    if (p->rd != p->wr)
        close(p->rd);
    waitpid(p->pid, NULL, 0);
}

static void peer_call(struct peer *p, char *in, char *out)
{
    full_io(p->wr, in, MSG, 1);
    full_io(p->rd, out, MSG, 0);
}

/* ---- round trips ------------------------------------------------------------ */

static long rtt_n;

static void rtt_peer(int sock, double *med, double *p99)
{
    struct peer p = peer_start(sock);
    int64_t *t = malloc((size_t)rtt_n * sizeof *t);
    char in[MSG] = "ping", out[MSG];
    for (long i = 0; i < rtt_n / 10; i++)
        peer_call(&p, in, out);
    for (long i = 0; i < rtt_n; i++) {
        int64_t t0 = bench_now();
        peer_call(&p, in, out);
        t[i] = bench_now() - t0;
    }
    *med = pct(t, rtt_n, 0.5);
    *p99 = pct(t, rtt_n, 0.99);
    free(t);
    peer_stop(&p);
}

struct rtt_weft {
    double med, p99;
};

static void *rtt_weft_main(void *arg)
{
    struct rtt_weft *r = arg;
    weft_proc_t *p;
    BENCH_CHECK(weft_proc_new(&p, NULL) == 0, "weft_proc_new");
    int64_t *t = malloc((size_t)rtt_n * sizeof *t);
    char in[MSG] = "ping", out[MSG];
    for (long i = 0; i < rtt_n / 10; i++)
        BENCH_CHECK(weft_proc_call(p, "echo", in, MSG, out, MSG, WEFT_FOREVER) == MSG, "call");
    for (long i = 0; i < rtt_n; i++) {
        int64_t t0 = bench_now();
        ssize_t n = weft_proc_call(p, "echo", in, MSG, out, MSG, WEFT_FOREVER);
        t[i] = bench_now() - t0;
        BENCH_CHECK(n == MSG, "call: %zd", n);
    }
    r->med = pct(t, rtt_n, 0.5);
    r->p99 = pct(t, rtt_n, 0.99);
    free(t);
    weft_proc_free(p);
    return NULL;
}

/* ---- 4 callers ---------------------------------------------------------------- */

#define CALLERS 4
static long calls_each;
static pthread_mutex_t peer_lock = PTHREAD_MUTEX_INITIALIZER;
static struct peer shared_peer;
static weft_proc_t *shared_proc;

static void *pipe_caller(void *arg)
{
    (void)arg;
    char in[MSG] = "ping", out[MSG];
    for (long i = 0; i < calls_each; i++) {
        pthread_mutex_lock(&peer_lock);
        peer_call(&shared_peer, in, out);
        pthread_mutex_unlock(&peer_lock);
    }
    return NULL;
}

static void *weft_caller(void *arg)
{
    (void)arg;
    char in[MSG] = "ping", out[MSG];
    for (long i = 0; i < calls_each; i++)
        BENCH_CHECK(weft_proc_call(shared_proc, "echo", in, MSG, out, MSG, WEFT_FOREVER) == MSG,
                    "call");
    return NULL;
}

static double callers_pipe(void)
{
    shared_peer = peer_start(0);
    pthread_t t[CALLERS];
    int64_t t0 = bench_now();
    for (int i = 0; i < CALLERS; i++)
        pthread_create(&t[i], NULL, pipe_caller, NULL);
    for (int i = 0; i < CALLERS; i++)
        pthread_join(t[i], NULL);
    double s = (double)(bench_now() - t0) / 1e9;
    peer_stop(&shared_peer);
    return (double)(CALLERS * calls_each) / s;
}

static double callers_weft(void)
{
    BENCH_CHECK(weft_proc_new(&shared_proc, NULL) == 0, "weft_proc_new");
    char in[MSG] = "ping", out[MSG];
    weft_proc_call(shared_proc, "echo", in, MSG, out, MSG, WEFT_FOREVER); /* start it */
    weft_t t[CALLERS];
    int64_t t0 = bench_now();
    for (int i = 0; i < CALLERS; i++)
        weft_spawn(&t[i], weft_caller, NULL, NULL);
    for (int i = 0; i < CALLERS; i++)
        weft_join(t[i], NULL, WEFT_FOREVER);
    double s = (double)(bench_now() - t0) / 1e9;
    weft_proc_free(shared_proc);
    return (double)(CALLERS * calls_each) / s;
}

/* ---- start to first result ---------------------------------------------------- */

static long starts;

static double start_spawn(void)
{
    int64_t *t = malloc((size_t)starts * sizeof *t);
    for (long i = 0; i < starts; i++) {
        int a[2], b[2];
        BENCH_CHECK(pipe2(a, O_CLOEXEC) == 0 && pipe2(b, O_CLOEXEC) == 0, "pipe");
        int64_t t0 = bench_now();
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, a[0], 0);
        posix_spawn_file_actions_adddup2(&fa, b[1], 1);
        char *argv[] = {"proc", "--pipe-echo", NULL};
        pid_t pid;
        BENCH_CHECK(posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ) == 0, "spawn");
        posix_spawn_file_actions_destroy(&fa);
        struct peer p = {pid, a[1], b[0]};
        close(a[0]);
        close(b[1]);
        char in[MSG] = "ping", out[MSG];
        peer_call(&p, in, out);
        t[i] = bench_now() - t0;
        peer_stop(&p);
    }
    double m = pct(t, starts, 0.5);
    free(t);
    return m;
}

struct start_arg {
    int mode;
    double med;
};

static void *start_weft_main(void *arg)
{
    struct start_arg *s = arg;
    int64_t *t = malloc((size_t)starts * sizeof *t);
    for (long i = 0; i < starts; i++) {
        weft_proc_opts o = {.mode = s->mode};
        char in[MSG] = "ping", out[MSG];
        int64_t t0 = bench_now();
        weft_proc_t *p;
        BENCH_CHECK(weft_proc_new(&p, &o) == 0, "weft_proc_new");
        BENCH_CHECK(weft_proc_call(p, "echo", in, MSG, out, MSG, WEFT_FOREVER) == MSG, "call");
        t[i] = bench_now() - t0;
        weft_proc_free(p);
    }
    s->med = pct(t, starts, 0.5);
    free(t);
    return NULL;
}

static double start_weft(int mode)
{
    struct start_arg s = {mode, 0};
    weft_t t;
    weft_spawn(&t, start_weft_main, &s, NULL);
    weft_join(t, NULL, WEFT_FOREVER);
    return s.med;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--pipe-echo"))
        echo_loop(0, 1);
    rtt_n = bench_size(20000, 1000);
    calls_each = bench_size(20000, 1000);
    starts = bench_size(100, 10);
    bench_header("isolated calls: weft_proc_call beside a child served over pipes or a Unix socket",
                 "round trips: median and p99 of each call; calls/s: one run; starts: median");

    struct rtt_weft w;
    weft_t t;
    weft_spawn(&t, rtt_weft_main, &w, NULL);
    weft_join(t, NULL, WEFT_FOREVER);
    double pm, p99, sm, s99;
    rtt_peer(0, &pm, &p99);
    rtt_peer(1, &sm, &s99);
    bench_print("proc_rtt_median.weft", w.med, "us");
    bench_print("proc_rtt_median.pipe", pm, "us");
    bench_print("proc_rtt_median.unix", sm, "us");
    bench_ratio("proc_rtt_median.ratio_pipe", w.med, pm, "pipe/weft; above 1: weft faster");
    bench_ratio("proc_rtt_median.ratio_unix", w.med, sm, "unix/weft; above 1: weft faster");
    bench_print("proc_rtt_p99.weft", w.p99, "us");
    bench_print("proc_rtt_p99.pipe", p99, "us");
    bench_print("proc_rtt_p99.unix", s99, "us");
    bench_ratio("proc_rtt_p99.ratio_pipe", w.p99, p99, "pipe/weft; above 1: weft faster");
    bench_ratio("proc_rtt_p99.ratio_unix", w.p99, s99, "unix/weft; above 1: weft faster");

    /* The best of three runs each: one run is easily disturbed by the
     * machine's other tenants. */
    double cw = 0, cp = 0;
    for (int i = 0; i < 3; i++) {
        double w = callers_weft(), q = callers_pipe();
        cw = w > cw ? w : cw;
        cp = q > cp ? q : cp;
    }
    bench_print("proc_4callers.weft", cw, "calls/s");
    bench_print("proc_4callers.pipe", cp, "calls/s");
    /* Throughput: bigger is better, so the figures go in swapped. */
    bench_ratio("proc_4callers.ratio_pipe", cp, cw, "weft/pipe throughput; above 1: weft faster");

    double sf = start_weft(WEFT_PROC_FORK), se = start_weft(WEFT_PROC_EXEC), sp = start_spawn();
    bench_print("proc_start_fork.weft", sf, "us");
    bench_print("proc_start_exec.weft", se, "us");
    bench_print("proc_start.posix_spawn", sp, "us");
    bench_ratio("proc_start_fork.ratio_spawn", sf, sp, "spawn/fork mode; above 1: weft faster");
    bench_ratio("proc_start_exec.ratio_spawn", se, sp, "spawn/exec mode; above 1: weft faster");
    return 0;
}
