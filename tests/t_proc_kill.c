/*
 * t_proc_kill.c - ending a child that must stop: a deadline passing
 * (-ETIMEDOUT; its process group, grandchildren too, killed and reaped),
 * weft_proc_kill from another thread during a call (-ECHILD) and between
 * calls (reaped at once), a stop of the calling thread during its call
 * (-ECANCELED; the child killed and reaped), before it or while it waits
 * for another caller's call (-ECANCELED at once; no child started, none
 * killed), a child that dies holding a lock in the region,
 * a child that dies between calls (reaped at the next, its process group
 * killed too),
 * a deadline that passes while waiting for another caller's call (no
 * kill), and a fresh child after each. Then weft_proc_kill racing with
 * calls and reaps, beside a bystander process the kills must not reach.
 */
#include "proctest.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/time.h>

/* Starts a grandchild in the child's process group that hangs too, and
 * tells its pid in the shared area; then hangs. */
static ssize_t hang_with_grandchild(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out,
                                    size_t cap)
{
    (void)in, (void)len, (void)out, (void)cap;
    pid_t g = fork();
    if (g == 0) {
        for (;;)
            pause();
    }
    size_t size;
    volatile int32_t *s = weft_proc_ctx_shared(ctx, &size);
    s[0] = g;
    for (;;)
        pause();
    return 0;
}
WEFT_PROC_ENTRY("hang2", hang_with_grandchild);

/* Counts itself in the call (shared word 2), then hangs: the parent sees
 * when the call is under way in the child instead of guessing how long a
 * child takes to get there on a loaded machine. */
static ssize_t hang_marked(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)in, (void)len, (void)out, (void)cap;
    size_t size;
    uint32_t *in_call = (uint32_t *)weft_proc_ctx_shared(ctx, &size) + 2;
    __atomic_fetch_add(in_call, 1, __ATOMIC_RELEASE);
    for (;;)
        pause();
    return 0;
}
WEFT_PROC_ENTRY("hang_marked", hang_marked);

/* The calls that got into hang_marked so far. */
static uint32_t in_calls(weft_proc_t *p)
{
    return __atomic_load_n((uint32_t *)weft_proc_shared(p, NULL) + 2, __ATOMIC_ACQUIRE);
}

/* Waits until a call has got into hang_marked since in_calls said seen. */
static void wait_in_call(weft_proc_t *p, uint32_t seen)
{
    int64_t give_up = weft_after(WEFT_SEC(60));
    while (in_calls(p) == seen) {
        if (weft_now() > give_up)
            check_failed("a call to hang_marked was not under way in the child 60 s later\n");
        weft_sleep(weft_after(WEFT_MS(1)));
    }
}

/* Takes a spin lock in the shared area, then dies holding it. */
static ssize_t die_locked(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)in, (void)len, (void)out, (void)cap;
    size_t size;
    uint32_t *lock = (uint32_t *)weft_proc_ctx_shared(ctx, &size) + 1;
    uint32_t z = 0;
    CHECK(__atomic_compare_exchange_n(lock, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
    raise(SIGKILL);
    return 0;
}
WEFT_PROC_ENTRY("die_locked", die_locked);

/* Returns at once; a timer's SIGALRM (default action: terminate) ends the
 * child a little later, between calls. */
static ssize_t die_later(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out, (void)cap;
    signal(SIGALRM, SIG_DFL);
    struct itimerval it = {.it_value = {.tv_usec = 20000}};
    CHECK_EQ(setitimer(ITIMER_REAL, &it, NULL), 0);
    return 0;
}
WEFT_PROC_ENTRY("die_later", die_later);

/* A grandchild is not ours to reap: is it gone, or dead and waiting for
 * its new parent to reap it? Waits up to 10 s for that. */
static bool gone_or_dying(pid_t g)
{
    for (int i = 0; i < 10000; i++) {
        char path[64], state = 0;
        snprintf(path, sizeof path, "/proc/%d/stat", g);
        FILE *f = fopen(path, "r");
        if (!f)
            return true;
        if (fscanf(f, "%*d %*s %c", &state) != 1)
            state = 0;
        fclose(f);
        if (state == 'Z' || state == 'X')
            return true;
        usleep(1000);
    }
    return false;
}

/* Starts a grandchild that hangs, tells its pid in the shared area, and
 * returns; a timer's SIGALRM ends the child (not the grandchild, which
 * ignores it) a little later, between calls. */
static ssize_t die_later_gc(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out,
                            size_t cap)
{
    (void)in, (void)len, (void)out, (void)cap;
    pid_t g = fork();
    if (g == 0) {
        signal(SIGALRM, SIG_IGN);
        for (;;)
            pause();
    }
    size_t size;
    volatile int32_t *s = weft_proc_ctx_shared(ctx, &size);
    s[0] = g;
    signal(SIGALRM, SIG_DFL);
    struct itimerval it = {.it_value = {.tv_usec = 20000}};
    CHECK_EQ(setitimer(ITIMER_REAL, &it, NULL), 0);
    return 0;
}
WEFT_PROC_ENTRY("die_later_gc", die_later_gc);

static void expect_fresh(weft_proc_t *p, int64_t *pid)
{
    int64_t now = pt_call_pid(p);
    CHECK(now != *pid);
    *pid = now;
}

struct killer {
    weft_proc_t *p;
    uint32_t seen; /* in_calls before the call */
};

/* Kills the child once the call is under way in it (a kill before that
 * would hit the idle child, and the call would start a fresh one). */
static void *kill_later(void *arg)
{
    struct killer *k = arg;
    wait_in_call(k->p, k->seen);
    CHECK_ERR(weft_proc_kill(k->p), 0);
    return NULL;
}

struct caller {
    weft_proc_t *p;
    atomic_int started;
    int self_stop; /* stop itself before the call */
};

static void *call_hang(void *arg)
{
    struct caller *c = arg;
    if (c->self_stop)
        CHECK_ERR(weft_stop(weft_self(), 0), 0);
    atomic_store(&c->started, 1);
    return (void *)(intptr_t)weft_proc_call(c->p, "hang_marked", NULL, 0, NULL, 0, WEFT_FOREVER);
}

/* The caller, blocked in a call without deadline, is stopped:
 * -ECANCELED, the child killed and reaped, a fresh one next. */
static void stop_kill(weft_proc_t *p, int64_t *pid)
{
    struct caller c = {p, 0, 0};
    uint32_t seen = in_calls(p);
    weft_t t;
    CHECK_ERR(weft_spawn(&t, call_hang, &c, NULL), 0);
    wait_in_call(p, seen); /* into the call */
    CHECK_ERR(weft_stop(t, 0), 0);
    void *r;
    CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, -ECANCELED);
    weft_proc_status_t st;
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.running, 0);
    CHECK(!pt_has_children());
    CHECK_EQ(st.killed, 1);
    CHECK_EQ(st.signal, SIGKILL);
    expect_fresh(p, pid);
}

/* A caller stopped before its call fails at once with -ECANCELED, without
 * starting a child, and without touching the one that runs (it was not
 * its call): with a child running and with none. */
static void stopped_first(weft_proc_t *p, int64_t *pid)
{
    for (int idle = 0; idle < 2; idle++) {
        if (idle)
            CHECK_ERR(weft_proc_kill(p), 0); /* no child at all */
        weft_proc_status_t before, after;
        CHECK_ERR(weft_proc_status(p, &before), 0);
        struct caller c = {p, 0, 1};
        weft_t t;
        CHECK_ERR(weft_spawn(&t, call_hang, &c, NULL), 0);
        void *r;
        CHECK_ERR(weft_join(t, &r, WEFT_FOREVER), 0);
        CHECK_EQ((intptr_t)r, -ECANCELED);
        CHECK_ERR(weft_proc_status(p, &after), 0);
        CHECK_EQ(after.started, before.started);
        CHECK_EQ(after.running, !idle);
        if (idle) {
            CHECK(!pt_has_children());
            expect_fresh(p, pid);
        } else {
            CHECK_EQ(pt_call_pid(p), *pid); /* the same child answers */
        }
    }
}

/* A caller queued without deadline behind another's call is stopped: it
 * leaves the queue with -ECANCELED at once (the call under way goes on,
 * not its to kill), and starts no child. */
static void stop_queued(weft_proc_t *p, int64_t *pid)
{
    struct caller holder = {p, 0, 0}, queued = {p, 0, 0};
    uint32_t seen = in_calls(p);
    weft_t th, tq;
    CHECK_ERR(weft_spawn(&th, call_hang, &holder, NULL), 0);
    wait_in_call(p, seen); /* the holder is in its call */
    weft_proc_status_t st;
    CHECK_ERR(weft_proc_status(p, &st), 0);
    unsigned long started = st.started;
    CHECK_ERR(weft_spawn(&tq, call_hang, &queued, NULL), 0);
    while (!atomic_load(&queued.started))
        weft_sleep(weft_after(WEFT_MS(1)));
    /* Most likely queued for the lock by now; a stop that comes before
     * its call gives the same: -ECANCELED at once, no child started. */
    weft_sleep(weft_after(WEFT_MS(50)));
    CHECK_ERR(weft_stop(tq, 0), 0);
    void *r;
    /* Queued for good, it would wait for the holder, which never ends by
     * itself: a join that times out says so. */
    CHECK_ERR(weft_join(tq, &r, weft_after(WEFT_SEC(20))), 0);
    CHECK_EQ((intptr_t)r, -ECANCELED);
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.running, 1); /* the holder's call goes on */
    CHECK_EQ(st.started, started);
    CHECK_ERR(weft_proc_kill(p), 0);
    CHECK_ERR(weft_join(th, &r, WEFT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, -ECHILD);
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.started, started);
    expect_fresh(p, pid);
}

struct holder {
    weft_proc_t *p;
    atomic_int started;
};

/* Holds a call until stopped: ended by its own stop (-ECANCELED), not by
 * anything another caller's deadline did (that would be -ECHILD). */
static void *hold_long(void *arg)
{
    struct holder *h = arg;
    atomic_store(&h->started, 1);
    CHECK_ERR(weft_proc_call(h->p, "hang_marked", NULL, 0, NULL, 0, WEFT_FOREVER), -ECANCELED);
    return NULL;
}

static void one_mode(int mode)
{
    weft_proc_opts o = {.mode = mode, .shared_size = 4096};
    weft_proc_t *p;
    CHECK_ERR(weft_proc_new(&p, &o), 0);
    CHECK_ERR(weft_proc_kill(p), -ESRCH);
    int64_t pid = pt_call_pid(p);
    weft_proc_status_t st;

    /* A deadline: killed, reaped, and the next call gets a fresh child. */
    int64_t t0 = weft_now(), deadline = weft_after(WEFT_MS(100));
    CHECK_ERR(weft_proc_call(p, "hang", NULL, 0, NULL, 0, deadline), -ETIMEDOUT);
    CHECK(weft_now() >= deadline);
    CHECK(weft_now() - t0 < WEFT_SEC(20));
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.running, 0);
    CHECK_EQ(st.killed, 1);
    CHECK_EQ(st.signal, SIGKILL);
    CHECK_EQ(st.exited, 0);
    CHECK(!pt_has_children()); /* reaped */
    expect_fresh(p, &pid);

    /* The whole process group goes. The deadline must leave the child
     * time to make its grandchild, which a loaded machine may not: a
     * call that ended before then is tried again with twice the time
     * (each try starts a fresh child: counted in retries). */
    int32_t *shared = weft_proc_shared(p, NULL);
    pid_t g = 0;
    unsigned long retries = 0;
    for (int64_t wait = WEFT_MS(200);; wait *= 2, retries++) {
        shared[0] = 0;
        CHECK_ERR(weft_proc_call(p, "hang2", NULL, 0, NULL, 0, weft_after(wait)), -ETIMEDOUT);
        g = shared[0];
        if (g > 0)
            break;
        if (wait > WEFT_SEC(30))
            check_failed("hang2 never made its grandchild within %lld ms\n",
                         (long long)(wait / 1000000));
    }
    CHECK(gone_or_dying(g));
    expect_fresh(p, &pid);

    /* weft_proc_kill from another thread during a call. */
    struct killer k = {p, in_calls(p)};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, kill_later, &k, NULL), 0);
    CHECK_ERR(weft_proc_call(p, "hang_marked", NULL, 0, NULL, 0, weft_after(WEFT_SEC(60))),
              -ECHILD);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.killed, 1);
    CHECK_EQ(st.signal, SIGKILL);
    CHECK(!pt_has_children());
    expect_fresh(p, &pid);

    /* A stop of the caller kills the child, like a deadline; a stop before
     * the call, or while it waits for another's, kills nothing and starts
     * no child. */
    stop_kill(p, &pid);
    stopped_first(p, &pid);
    stop_queued(p, &pid);

    /* ... and between calls: reaped at once, no zombie left. */
    CHECK_ERR(weft_proc_kill(p), 0);
    CHECK(!pt_has_children());
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.running, 0);
    CHECK_ERR(weft_proc_kill(p), -ESRCH);
    expect_fresh(p, &pid);

    /* A child that dies holding a lock in the region wedges nothing. */
    CHECK_ERR(weft_proc_call(p, "die_locked", NULL, 0, NULL, 0, weft_after(WEFT_SEC(60))), -ECHILD);
    CHECK_EQ(shared[1], 1); /* still "held" */
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.killed, 0); /* it killed itself */
    CHECK_EQ(st.signal, SIGKILL);
    expect_fresh(p, &pid);

    /* A child that died between calls: the next call goes to a fresh one
     * without an error. */
    CHECK_ERR(weft_proc_call(p, "die_later", NULL, 0, NULL, 0, WEFT_FOREVER), 0);
    /* Dead (a zombie: nobody reaped it yet) before the next call, however
     * long its timer's signal takes to land on a loaded machine. */
    CHECK(gone_or_dying((pid_t)pid));
    expect_fresh(p, &pid);
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.signal, SIGALRM);
    CHECK_EQ(st.killed, 0);
    /* ... and what it started in its group dies when it is reaped. */
    shared[0] = 0;
    CHECK_ERR(weft_proc_call(p, "die_later_gc", NULL, 0, NULL, 0, WEFT_FOREVER), 0);
    g = shared[0];
    CHECK(g > 0);
    CHECK(gone_or_dying((pid_t)pid));
    expect_fresh(p, &pid);
    CHECK(gone_or_dying(g));
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.signal, SIGALRM);
    CHECK_EQ(st.killed, 0);

    /* A deadline that passes while another caller's call runs: that call
     * is not ours to kill. */
    struct holder h = {p, 0};
    uint32_t seen = in_calls(p);
    CHECK_ERR(weft_spawn(&t, hold_long, &h, NULL), 0);
    wait_in_call(p, seen);
    CHECK_ERR(weft_proc_call(p, "pid", NULL, 0, NULL, 0, weft_after(WEFT_MS(100))), -ETIMEDOUT);
    CHECK_ERR(weft_proc_free(p), -EBUSY); /* a call is under way */
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.running, 1); /* the holder's child was not killed */
    CHECK_ERR(weft_stop(t, 0), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.started, 11 + retries);
    expect_fresh(p, &pid);

    CHECK_ERR(weft_proc_free(p), 0);
    CHECK(!pt_has_children());
}

struct racer {
    weft_proc_t *p;
    atomic_int done;
    long kills;
};

static void *kill_loop(void *arg)
{
    struct racer *k = arg;
    while (!atomic_load(&k->done)) {
        int r = weft_proc_kill(k->p);
        CHECK(r == 0 || r == -ESRCH);
        k->kills += r == 0;
        weft_sleep(weft_after(WEFT_US(200)));
    }
    return NULL;
}

/* weft_proc_kill from another thread while calls start, end and reap
 * children: every kill gives 0 or -ESRCH, every call its answer or
 * -ECHILD, and a process of ours in a group of its own, which the
 * children's group kills must never reach, lives on. */
static void kill_race(int mode)
{
    pid_t bystander = fork();
    CHECK(bystander >= 0);
    if (bystander == 0) {
        setpgid(0, 0);
        for (;;)
            pause();
    }
    setpgid(bystander, bystander);
    weft_proc_opts o = {.mode = mode};
    struct racer k = {0};
    CHECK_ERR(weft_proc_new(&k.p, &o), 0);
    weft_t t;
    CHECK_ERR(weft_spawn(&t, kill_loop, &k, NULL), 0);
    long n = test_scale(mode == WEFT_PROC_FORK ? 200 : 50), answered = 0;
    for (long i = 0; i < n; i++) {
        int64_t pid = 0;
        ssize_t r = weft_proc_call(k.p, "pid", NULL, 0, &pid, sizeof pid, weft_after(WEFT_SEC(30)));
        CHECK(r == (ssize_t)sizeof pid || r == -ECHILD);
        answered += r > 0;
    }
    atomic_store(&k.done, 1);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_proc_free(k.p), 0);
    CHECK_EQ(kill(bystander, 0), 0);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    CHECK_EQ(waitid(P_PID, (id_t)bystander, &si, WEXITED | WNOHANG), 0);
    CHECK_EQ(si.si_pid, 0); /* not dead either */
    CHECK_EQ(kill(bystander, SIGKILL), 0);
    CHECK_EQ(waitpid(bystander, NULL, 0), bystander);
    CHECK(!pt_has_children());
    printf("kill race (%s): %ld calls answered, %ld kills\n", mode ? "exec" : "fork", answered,
           k.kills);
}

int main(void)
{
    one_mode(WEFT_PROC_FORK);
    one_mode(WEFT_PROC_EXEC);
    kill_race(WEFT_PROC_FORK);
    kill_race(WEFT_PROC_EXEC);
    printf("ok\n");
    return 0;
}
