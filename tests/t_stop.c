/*
 * t_stop: what a stop does to each blocking call of the stopped thread.
 *
 *   woken       each call a stop cuts short, blocked in a weft thread, is
 *               woken by weft_stop with -ECANCELED (the thread is seen
 *               still blocked just before the stop); weft_connect waits
 *               on listeners whose queues are full (iotest.h)
 *   after       the same calls made after the thread was stopped fail at
 *               once with -ECANCELED, whatever the deadline (0 included)
 *   completes   a stopped thread's calls that need not wait still
 *               complete: buffered data, a free mutex, a unit, an element
 *   untimed     untimed mutex, rwlock and condition waits, joins, parks,
 *               group waits, once and barriers keep working for a stopped
 *               thread, stopped before it blocks or while it is blocked
 *   handles     weft_stop's results: bad flags, stale handles, a finished
 *               thread, the caller itself; weft_stopping; sticky stops
 *   kernel      a plain kernel thread (main) is never stopped
 */
#include "iotest.h"

#include <pthread.h>
#include <sys/un.h>

/* ---- the cases ---------------------------------------------------------- */

#define FAR (weft_after(WEFT_SEC(60)))

struct env {
    int sv[2];            /* a socket pair: sv[0] empty, or full for writes */
    int lfd;              /* a listening socket nobody connects to */
    weft_chan_t *ch, *ch2;
    weft_sem_t sem;
    weft_wg_t wg;
    weft_mutex_t m, cm;
    weft_cond_t c;
    weft_rwlock_t rw;
    uint32_t word;
    weft_sem_t tsem;      /* the helper thread waits on it */
    weft_t helper;        /* joined by the join case */
    weft_group_t *grp;    /* holds the helper in the group case */
    int64_t deadline;     /* the deadline the case's call uses */
    /* The connect cases: a listener whose queue is full, the connections
     * that filled it, and the socket that connects (all -1 otherwise). */
    int full, made[2], nmade, cfd;
    struct sockaddr_storage fa;
    socklen_t fal;
};

static void *helper_main(void *arg)
{
    struct env *e = arg;
    CHECK_ERR(weft_sem_wait(&e->tsem, WEFT_FOREVER), 0);
    return NULL;
}

static void setup(struct env *e)
{
    memset(e, 0, sizeof *e);
    e->full = e->cfd = -1;
    io_unix_pair(e->sv);
    struct sockaddr_in a;
    socklen_t al;
    e->lfd = io_tcp_listener(&a, &al, 4);
    CHECK_ERR(weft_chan_new(&e->ch, sizeof(int), 0), 0);
    CHECK_ERR(weft_chan_new(&e->ch2, sizeof(int), 1), 0);
    e->sem = (weft_sem_t)WEFT_SEM_INIT(0);
    e->tsem = (weft_sem_t)WEFT_SEM_INIT(0);
    e->wg = (weft_wg_t)WEFT_WG_INIT;
    CHECK_ERR(weft_wg_add(&e->wg, 1), 0);
    e->m = e->cm = (weft_mutex_t)WEFT_MUTEX_INIT;
    e->c = (weft_cond_t)WEFT_COND_INIT;
    e->rw = (weft_rwlock_t)WEFT_RWLOCK_INIT;
    CHECK_ERR(weft_group_new(&e->grp, NULL), 0);
    weft_attr at = {.group = e->grp};
    CHECK_ERR(weft_spawn(&e->helper, helper_main, e, &at), 0);
}

static void teardown(struct env *e)
{
    CHECK_ERR(weft_sem_post(&e->tsem), 0);
    CHECK_ERR(weft_join(e->helper, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_wait(e->grp, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_free(e->grp), 0);
    CHECK_ERR(weft_close(e->sv[0]), 0);
    CHECK_ERR(weft_close(e->sv[1]), 0);
    CHECK_ERR(weft_close(e->lfd), 0);
    weft_chan_free(e->ch);
    weft_chan_free(e->ch2);
    CHECK_ERR(weft_sem_destroy(&e->sem), 0);
    CHECK_ERR(weft_mutex_destroy(&e->m), 0);
    CHECK_ERR(weft_rwlock_destroy(&e->rw), 0);
}

static char buf[65536];

static long c_sleep(struct env *e) { return weft_sleep(e->deadline < 0 ? WEFT_FOREVER : e->deadline); }
static long c_recv(struct env *e) { int v; return weft_chan_recv(e->ch, &v, e->deadline); }
static long c_send(struct env *e) { int v = 1; return weft_chan_send(e->ch, &v, e->deadline); }
static long c_select(struct env *e)
{
    int v, w = 2;
    weft_chan_op ops[2] = {{e->ch, WEFT_RECV, &v}, {e->ch, WEFT_SEND, &w}};
    return weft_chan_select(ops, 2, e->deadline);
}
static long c_select_none(struct env *e) { return weft_chan_select(NULL, 0, e->deadline); }
static long c_sem(struct env *e) { return weft_sem_wait(&e->sem, e->deadline); }
static long c_wg(struct env *e) { return weft_wg_wait(&e->wg, e->deadline); }
static long c_read(struct env *e) { return weft_read(e->sv[0], buf, 16, e->deadline); }
static long c_readv(struct env *e)
{
    struct iovec v = {buf, 16};
    return weft_readv(e->sv[0], &v, 1, e->deadline);
}
static long c_recvsock(struct env *e) { return weft_recv(e->sv[0], buf, 16, 0, e->deadline); }
static long c_recvfrom(struct env *e)
{
    return weft_recvfrom(e->sv[0], buf, 16, 0, NULL, NULL, e->deadline);
}
static long c_recvmsg(struct env *e)
{
    struct iovec v = {buf, 16};
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    return weft_recvmsg(e->sv[0], &m, 0, e->deadline);
}
static long c_fdwait(struct env *e) { return weft_fdwait(e->sv[0], WEFT_IN, e->deadline); }
static long c_accept(struct env *e) { return weft_accept(e->lfd, NULL, NULL, 0, e->deadline); }
/* The writes find sv[1] full (filled by the case's prepare). */
static long c_write(struct env *e) { return weft_write(e->sv[1], buf, sizeof buf, e->deadline); }
static long c_writev(struct env *e)
{
    struct iovec v = {buf, sizeof buf};
    return weft_writev(e->sv[1], &v, 1, e->deadline);
}
static long c_sendsock(struct env *e) { return weft_send(e->sv[1], buf, sizeof buf, 0, e->deadline); }
static long c_sendto(struct env *e)
{
    return weft_sendto(e->sv[1], buf, sizeof buf, 0, NULL, 0, e->deadline);
}
static long c_sendmsg(struct env *e)
{
    struct iovec v = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    return weft_sendmsg(e->sv[1], &m, 0, e->deadline);
}
/* Timed only: untimed, these keep working (below). */
static long c_timedlock(struct env *e) { return weft_mutex_timedlock(&e->m, e->deadline); }
static long c_rdlock(struct env *e) { return weft_rwlock_rdlock(&e->rw, e->deadline); }
static long c_wrlock(struct env *e) { return weft_rwlock_wrlock(&e->rw, e->deadline); }
static long c_condwait(struct env *e)
{
    CHECK_ERR(weft_mutex_lock(&e->cm), 0);
    int r = weft_cond_wait(&e->c, &e->cm, e->deadline);
    CHECK_ERR(weft_mutex_unlock(&e->cm), 0); /* held again, whatever r */
    return r;
}
static long c_park(struct env *e) { return weft_park(&e->word, 0, e->deadline); }
static long c_join(struct env *e) { return weft_join(e->helper, NULL, e->deadline); }
static long c_group_wait(struct env *e) { return weft_group_wait(e->grp, e->deadline); }
static long c_tcp_connect(struct env *e)
{
    return weft_tcp_connect("localhost", 9, e->deadline); /* a name: a lookup */
}
/* To a listener whose queue is full (the prepare), so it waits: AF_UNIX
 * says EAGAIN and weft_connect retries after a sleep; TCP's SYN goes
 * unanswered and weft_connect waits for the socket to become writable. */
static long c_connect(struct env *e)
{
    return weft_connect(e->cfd, (struct sockaddr *)&e->fa, e->fal, e->deadline);
}

/* What main does before the call, to make it wait. */
static void p_none(struct env *e) { (void)e; }
static void p_full(struct env *e) { io_fill(e->sv[1]); }
static void p_lock(struct env *e) { CHECK_ERR(weft_mutex_lock(&e->m), 0); }
static void p_unlock(struct env *e) { CHECK_ERR(weft_mutex_unlock(&e->m), 0); }
static void p_wrlock(struct env *e) { CHECK_ERR(weft_rwlock_wrlock(&e->rw, WEFT_FOREVER), 0); }
static void p_rdlock(struct env *e) { CHECK_ERR(weft_rwlock_rdlock(&e->rw, WEFT_FOREVER), 0); }
static void p_rwunlock(struct env *e) { CHECK_ERR(weft_rwlock_unlock(&e->rw), 0); }
static void p_full_unix(struct env *e)
{
    e->full = io_full_unix_listener((struct sockaddr_un *)&e->fa, &e->fal, e->made, &e->nmade);
    e->cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(e->cfd >= 0);
}
static void p_full_tcp(struct env *e)
{
    e->full = io_full_tcp_listener((struct sockaddr_in *)&e->fa, &e->fal, e->made, &e->nmade);
    e->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(e->cfd >= 0);
}
static void p_unfull(struct env *e)
{
    CHECK_ERR(weft_close(e->cfd), 0);
    for (int i = 0; i < e->nmade; i++)
        CHECK_ERR(weft_close(e->made[i]), 0);
    CHECK_ERR(weft_close(e->full), 0);
}

struct kase {
    const char *name;
    long (*call)(struct env *);
    void (*prepare)(struct env *); /* by main, before the thread calls */
    void (*release)(struct env *); /* by main, after the thread returned */
    bool timed_only;               /* a stop cuts it short only if timed */
    bool can_block;                /* the woken case can be made to block */
};

static const struct kase cases[] = {
    {"weft_sleep", c_sleep, p_none, p_none, false, true},
    {"weft_chan_recv", c_recv, p_none, p_none, false, true},
    {"weft_chan_send", c_send, p_none, p_none, false, true},
    {"weft_chan_select", c_select, p_none, p_none, false, true},
    {"weft_chan_select(none)", c_select_none, p_none, p_none, false, true},
    {"weft_sem_wait", c_sem, p_none, p_none, false, true},
    {"weft_wg_wait", c_wg, p_none, p_none, false, true},
    {"weft_read", c_read, p_none, p_none, false, true},
    {"weft_readv", c_readv, p_none, p_none, false, true},
    {"weft_recv", c_recvsock, p_none, p_none, false, true},
    {"weft_recvfrom", c_recvfrom, p_none, p_none, false, true},
    {"weft_recvmsg", c_recvmsg, p_none, p_none, false, true},
    {"weft_fdwait", c_fdwait, p_none, p_none, false, true},
    {"weft_accept", c_accept, p_none, p_none, false, true},
    {"weft_write", c_write, p_full, p_none, false, true},
    {"weft_writev", c_writev, p_full, p_none, false, true},
    {"weft_send", c_sendsock, p_full, p_none, false, true},
    {"weft_sendto", c_sendto, p_full, p_none, false, true},
    {"weft_sendmsg", c_sendmsg, p_full, p_none, false, true},
    {"weft_tcp_connect(name)", c_tcp_connect, p_none, p_none, false, false},
    {"weft_connect(unix, full)", c_connect, p_full_unix, p_unfull, false, true},
    {"weft_connect(tcp, full)", c_connect, p_full_tcp, p_unfull, false, true},
    {"weft_mutex_timedlock", c_timedlock, p_lock, p_unlock, true, true},
    {"weft_rwlock_rdlock", c_rdlock, p_wrlock, p_rwunlock, true, true},
    {"weft_rwlock_wrlock", c_wrlock, p_rdlock, p_rwunlock, true, true},
    {"weft_cond_wait", c_condwait, p_none, p_none, true, true},
    {"weft_park", c_park, p_none, p_none, true, true},
    {"weft_join", c_join, p_none, p_none, true, true},
    {"weft_group_wait", c_group_wait, p_none, p_none, true, true},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* ---- running a case in a weft thread ------------------------------------ */

struct run {
    const struct kase *k;
    struct env *e;
    bool stop_first;  /* the thread stops itself before the call */
    int started, done; /* atomic */
    long result;
};

static void *runner_main(void *arg)
{
    struct run *r = arg;
    if (r->stop_first) {
        CHECK_ERR(weft_stop(weft_self(), 0), 0);
        CHECK_EQ(weft_stopping(), 1);
    } else {
        CHECK_EQ(weft_stopping(), 0);
    }
    __atomic_store_n(&r->started, 1, __ATOMIC_RELEASE);
    r->result = r->k->call(r->e);
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static weft_t start(struct run *r)
{
    weft_t t;
    CHECK_ERR(weft_spawn(&t, runner_main, r, NULL), 0);
    while (!__atomic_load_n(&r->started, __ATOMIC_ACQUIRE))
        weft_sleep(weft_after(WEFT_US(200)));
    return t;
}

static bool finished(struct run *r)
{
    return __atomic_load_n(&r->done, __ATOMIC_ACQUIRE);
}

/* Blocked, woken by the stop. */
static void woken(const struct kase *k, int64_t deadline_kind)
{
    struct env e;
    setup(&e);
    e.deadline = deadline_kind < 0 ? WEFT_FOREVER : FAR;
    k->prepare(&e);
    struct run r = {.k = k, .e = &e};
    weft_t t = start(&r);
    weft_sleep(weft_after(WEFT_MS(10)));
    if (finished(&r))
        check_failed("%s returned %ld before the stop\n", k->name, r.result);
    CHECK_ERR(weft_stop(t, 0), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    if (r.result != -ECANCELED)
        check_failed("%s (%s) woken by a stop returned %ld (%s)\n", k->name,
                     deadline_kind < 0 ? "untimed" : "timed", r.result, check_errname(r.result));
    k->release(&e);
    teardown(&e);
}

/* Called after the stop. */
static void after(const struct kase *k, int64_t deadline)
{
    struct env e;
    setup(&e);
    e.deadline = deadline;
    k->prepare(&e);
    struct run r = {.k = k, .e = &e, .stop_first = true};
    weft_t t = start(&r);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    /* A sleep to a time already past needs no wait: it completes. */
    long want = k->call == c_sleep && deadline == 0 ? 0 : -ECANCELED;
    if (r.result != want)
        check_failed("%s (deadline %lld) after a stop returned %ld (%s)\n", k->name,
                     (long long)deadline, r.result, check_errname(r.result));
    k->release(&e);
    teardown(&e);
}

static void all_cases(void)
{
    for (int i = 0; i < NCASES; i++) {
        const struct kase *k = &cases[i];
        if (k->can_block) {
            woken(k, 1);
            if (!k->timed_only)
                woken(k, -1);
        }
        after(k, FAR);
        after(k, 0);
        if (!k->timed_only)
            after(k, WEFT_FOREVER);
    }
    printf("woken, after: %d calls, each woken by a stop and refused after one\n", NCASES);
}

/* ---- completes: what needs no wait still happens ------------------------ */

static void *done_helper(void *arg)
{
    (void)arg;
    return (void *)7;
}

static void *completes_main(void *arg)
{
    struct env *e = arg;
    CHECK_ERR(weft_stop(weft_self(), 0), 0);
    /* Buffered data is read, then the empty socket refuses to wait. */
    CHECK_EQ(write(e->sv[1], "abc", 3), 3);
    CHECK_EQ(weft_read(e->sv[0], buf, sizeof buf, WEFT_FOREVER), 3);
    CHECK_ERR(weft_read(e->sv[0], buf, sizeof buf, WEFT_FOREVER), -ECANCELED);
    CHECK_EQ(weft_write(e->sv[0], "x", 1, WEFT_FOREVER), 1); /* room */
    CHECK_EQ(weft_read(e->sv[1], buf, 1, 0), 1);
    /* Channels: an element there, room there, a ready select. */
    int v = 5, w = 0;
    CHECK_ERR(weft_chan_send(e->ch2, &v, WEFT_FOREVER), 0);
    CHECK_ERR(weft_chan_send(e->ch2, &v, WEFT_FOREVER), -ECANCELED); /* full */
    weft_chan_op ops[2] = {{e->ch, WEFT_RECV, &w}, {e->ch2, WEFT_RECV, &w}};
    CHECK_ERR(weft_chan_select(ops, 2, WEFT_FOREVER), 1);
    CHECK_EQ(w, 5);
    CHECK_ERR(weft_chan_recv(e->ch2, &w, WEFT_FOREVER), -ECANCELED); /* empty */
    CHECK_ERR(weft_chan_close(e->ch2), 0);
    CHECK_ERR(weft_chan_recv(e->ch2, &w, WEFT_FOREVER), -EPIPE); /* no wait: closed */
    /* A unit, a zero count, a free mutex, a past sleep, a changed word. */
    CHECK_ERR(weft_sem_post(&e->sem), 0);
    CHECK_ERR(weft_sem_wait(&e->sem, WEFT_FOREVER), 0);
    CHECK_ERR(weft_wg_done(&e->wg), 0);
    CHECK_ERR(weft_wg_wait(&e->wg, WEFT_FOREVER), 0);
    CHECK_ERR(weft_mutex_timedlock(&e->m, FAR), 0);
    CHECK_ERR(weft_mutex_unlock(&e->m), 0);
    CHECK_ERR(weft_rwlock_rdlock(&e->rw, FAR), 0);
    CHECK_ERR(weft_rwlock_unlock(&e->rw), 0);
    CHECK_ERR(weft_rwlock_wrlock(&e->rw, FAR), 0);
    CHECK_ERR(weft_rwlock_unlock(&e->rw), 0);
    CHECK_ERR(weft_sleep(0), 0);
    CHECK_ERR(weft_sleep(weft_now() - 1), 0);
    e->word = 1;
    CHECK_ERR(weft_park(&e->word, 0, FAR), -EAGAIN);
    /* A finished thread is joined; an empty group waited for. */
    weft_t t;
    void *res;
    CHECK_ERR(weft_spawn(&t, done_helper, NULL, NULL), 0); /* spawning still works */
    while (weft_join(t, &res, 0) == -ECANCELED)
        weft_yield(); /* not finished yet: the timed join refuses to wait */
    CHECK(res == (void *)7);
    weft_group_t *g;
    CHECK_ERR(weft_group_new(&g, NULL), 0);
    CHECK_ERR(weft_group_wait(g, FAR), 0);
    CHECK_ERR(weft_group_free(g), 0);
    /* weft_yield is not a wait. */
    weft_yield();
    return NULL;
}

static void completes(void)
{
    struct env e;
    setup(&e);
    weft_t t;
    CHECK_ERR(weft_spawn(&t, completes_main, &e, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    weft_chan_free(e.ch2);
    CHECK_ERR(weft_chan_new(&e.ch2, sizeof(int), 1), 0); /* teardown frees it */
    teardown(&e);
    printf("completes: a stopped thread's calls that need not wait complete\n");
}

/* ---- untimed waits keep working ------------------------------------------ */

static weft_sem_t once_sem = WEFT_SEM_INIT(0);
static weft_once_t once = WEFT_ONCE_INIT;
static int once_runs, once_entered;

static void once_fn(void)
{
    __atomic_store_n(&once_entered, 1, __ATOMIC_RELEASE);
    CHECK_ERR(weft_sem_wait(&once_sem, WEFT_FOREVER), 0); /* its runner is not stopped */
    __atomic_store_n(&once_runs, once_runs + 1, __ATOMIC_RELEASE);
}

static void *once_runner(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_once(&once, once_fn), 0);
    return NULL;
}

static weft_barrier_t barrier;

static long u_lock(struct env *e)
{
    int r = weft_mutex_lock(&e->m);
    if (r == 0)
        CHECK_ERR(weft_mutex_unlock(&e->m), 0);
    return r;
}
static long u_rdlock(struct env *e)
{
    int r = weft_rwlock_rdlock(&e->rw, WEFT_FOREVER);
    if (r == 0)
        CHECK_ERR(weft_rwlock_unlock(&e->rw), 0);
    return r;
}
static long u_wrlock(struct env *e)
{
    int r = weft_rwlock_wrlock(&e->rw, WEFT_FOREVER);
    if (r == 0)
        CHECK_ERR(weft_rwlock_unlock(&e->rw), 0);
    return r;
}
static long u_cond(struct env *e)
{
    CHECK_ERR(weft_mutex_lock(&e->cm), 0);
    int r = 0;
    while (e->word == 0 && r == 0)
        r = weft_cond_wait(&e->c, &e->cm, WEFT_FOREVER);
    CHECK_ERR(weft_mutex_unlock(&e->cm), 0);
    return r;
}
static long u_join(struct env *e) { return weft_join(e->helper, NULL, WEFT_FOREVER); }
static long u_park(struct env *e)
{
    int r = 0;
    while (__atomic_load_n(&e->word, __ATOMIC_ACQUIRE) == 0 && r == 0)
        r = weft_park(&e->word, 0, WEFT_FOREVER);
    return r == -EAGAIN ? 0 : r;
}
static long u_group_wait(struct env *e) { return weft_group_wait(e->grp, WEFT_FOREVER); }
static long u_once(struct env *e) { (void)e; return weft_once(&once, once_fn); }
static long u_barrier(struct env *e) { (void)e; return weft_barrier_wait(&barrier) < 0 ? -1 : 0; }

static void r_unlock(struct env *e) { CHECK_ERR(weft_mutex_unlock(&e->m), 0); }
static void r_rwunlock(struct env *e) { CHECK_ERR(weft_rwlock_unlock(&e->rw), 0); }
static void r_signal(struct env *e)
{
    CHECK_ERR(weft_mutex_lock(&e->cm), 0);
    e->word = 1;
    CHECK_ERR(weft_cond_signal(&e->c), 0);
    CHECK_ERR(weft_mutex_unlock(&e->cm), 0);
}
static void r_helper(struct env *e) { CHECK_ERR(weft_sem_post(&e->tsem), 0); }
static void r_unpark(struct env *e)
{
    __atomic_store_n(&e->word, 1, __ATOMIC_RELEASE);
    weft_unpark(&e->word, -1);
}
static void r_once(struct env *e) { (void)e; CHECK_ERR(weft_sem_post(&once_sem), 0); }
static void r_barrier(struct env *e) { (void)e; CHECK(weft_barrier_wait(&barrier) >= 0); }

struct ukase {
    const char *name;
    long (*call)(struct env *);
    void (*prepare)(struct env *);
    void (*release)(struct env *); /* lets the call finish */
    bool joins_helper;             /* the call joined e->helper itself */
};

static const struct ukase ucases[] = {
    {"weft_mutex_lock", u_lock, p_lock, r_unlock, false},
    {"weft_rwlock_rdlock", u_rdlock, p_wrlock, r_rwunlock, false},
    {"weft_rwlock_wrlock", u_wrlock, p_rdlock, r_rwunlock, false},
    {"weft_cond_wait", u_cond, p_none, r_signal, false},
    {"weft_join", u_join, p_none, r_helper, true},
    {"weft_park", u_park, p_none, r_unpark, false},
    {"weft_group_wait", u_group_wait, p_none, r_helper, false},
    {"weft_once", u_once, p_none, r_once, false},
    {"weft_barrier_wait", u_barrier, p_none, r_barrier, false},
};

static void untimed_one(const struct ukase *k, bool stop_first)
{
    struct env e;
    setup(&e);
    k->prepare(&e);
    if (k->call == u_once) {
        once = (weft_once_t)WEFT_ONCE_INIT;
        once_runs = once_entered = 0;
        weft_t o;
        CHECK_ERR(weft_spawn(&o, once_runner, NULL, NULL), 0);
        CHECK_ERR(weft_detach(o), 0);
        while (!__atomic_load_n(&once_entered, __ATOMIC_ACQUIRE))
            weft_sleep(weft_after(WEFT_US(200))); /* the runner is inside fn */
    }
    if (k->call == u_barrier)
        CHECK_ERR(weft_barrier_init(&barrier, 2), 0);
    struct run r = {.k = (const struct kase *)&(struct kase){k->name, k->call, 0, 0, 0, 0},
                    .e = &e,
                    .stop_first = stop_first};
    weft_t t = start(&r);
    weft_sleep(weft_after(WEFT_MS(10)));
    if (finished(&r))
        check_failed("%s returned %ld before it was let go\n", k->name, r.result);
    if (!stop_first) {
        CHECK_ERR(weft_stop(t, 0), 0);
        weft_sleep(weft_after(WEFT_MS(10)));
        if (finished(&r))
            check_failed("%s returned %ld (%s) at a stop\n", k->name, r.result,
                         check_errname(r.result));
    }
    k->release(&e);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    if (r.result != 0)
        check_failed("untimed %s of a stopped thread returned %ld (%s)\n", k->name, r.result,
                     check_errname(r.result));
    if (k->call == u_once) {
        while (__atomic_load_n(&once_runs, __ATOMIC_ACQUIRE) != 1)
            weft_yield();
    }
    if (k->joins_helper) {
        /* The thread joined the helper: spawn a stand-in for teardown. */
        weft_attr at = {.group = e.grp};
        CHECK_ERR(weft_spawn(&e.helper, helper_main, &e, &at), 0);
    }
    teardown(&e);
}

static void untimed(void)
{
    int n = (int)(sizeof ucases / sizeof ucases[0]);
    for (int i = 0; i < n; i++) {
        untimed_one(&ucases[i], true);
        untimed_one(&ucases[i], false);
    }
    printf("untimed: %d waits keep working, stopped before and while blocked\n", n);
}

/* ---- handles and flags ----------------------------------------------------- */

static void *quick(void *arg)
{
    return arg;
}

static void *sticky_main(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_stopping(), 0);
    CHECK_ERR(weft_stop(weft_self(), 0), 0);
    CHECK_ERR(weft_stop(weft_self(), 0), 0); /* idempotent */
    CHECK_EQ(weft_stopping(), 1);
    CHECK_ERR(weft_sleep(FAR), -ECANCELED);
    CHECK_ERR(weft_sleep(FAR), -ECANCELED); /* sticky */
    CHECK_EQ(weft_stopping(), 1);
    return NULL;
}

/*
 * A finished thread that nobody joined yet: stopping it gives 0, and does
 * nothing. To be sure the thread has finished (weft_stop gives 0 for a
 * running one too), this runs on one worker, in a weft thread that waits
 * for quick's group to empty: quick leaves its group in its exit and then
 * marks itself finished, with no switch in between, and on one worker
 * this thread cannot run again until quick has switched away for good.
 */
static void *finished_main(void *arg)
{
    (void)arg;
    weft_group_t *g;
    CHECK_ERR(weft_group_new(&g, NULL), 0);
    weft_attr a = {.group = g};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, quick, NULL, &a), 0);
    CHECK_ERR(weft_group_wait(g, WEFT_FOREVER), 0);
    CHECK_ERR(weft_stop(t, 0), 0);
    CHECK_ERR(weft_stop(t, WEFT_STOP_FILES), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_stop(t, 0), -ESRCH); /* joined: stale */
    CHECK_ERR(weft_group_free(g), 0);
    return NULL;
}

static void finished_case(void *arg)
{
    (void)arg;
    weft_t t;
    CHECK_ERR(weft_spawn(&t, finished_main, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
}

static void handles(void)
{
    CHECK_ERR(weft_stop(0, 0), -ESRCH);
    CHECK_ERR(weft_stop((weft_t)0xfffffff0ull << 32 | 0xfffffff0u, 0), -ESRCH);
    weft_t t;
    CHECK_ERR(weft_spawn(&t, quick, NULL, NULL), 0);
    CHECK_ERR(weft_stop(t, 2), -EINVAL);
    CHECK_ERR(weft_stop(t, ~0u), -EINVAL);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_stop(t, 0), -ESRCH); /* joined: stale */
    CHECK_ERR(weft_spawn(&t, sticky_main, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_group_stop(NULL, 0), -EINVAL);
    CHECK_ERR(weft_group_wait(NULL, 0), -EINVAL);
    CHECK_ERR(weft_group_free(NULL), -EINVAL);
    CHECK_ERR(weft_group_new(NULL, NULL), -EINVAL);
    printf("handles: weft_stop's errors, finished threads, sticky self-stops\n");
}

/* ---- kernel threads -------------------------------------------------------- */

static void *pthread_main(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_stopping(), 0);
    CHECK_ERR(weft_sleep(weft_after(WEFT_MS(1))), 0);
    weft_sem_t s = WEFT_SEM_INIT(0);
    CHECK_ERR(weft_sem_wait(&s, weft_after(WEFT_MS(1))), -ETIMEDOUT);
    return NULL;
}

static void kernel(void)
{
    CHECK_EQ(weft_stopping(), 0);
    CHECK_EQ(weft_self(), 0);
    /* A group made by main is a top-level group; main's spawns join none. */
    weft_group_t *g;
    CHECK_ERR(weft_group_new(&g, NULL), 0);
    CHECK_ERR(weft_group_stop(g, WEFT_STOP_FILES), 0);
    CHECK_ERR(weft_group_wait(g, weft_after(WEFT_MS(1))), 0);
    CHECK_ERR(weft_group_free(g), 0);
    CHECK_EQ(weft_stopping(), 0);
    pthread_t p;
    CHECK_EQ(pthread_create(&p, NULL, pthread_main, NULL), 0);
    CHECK_EQ(pthread_join(p, NULL), 0);
    char c;
    int sv[2];
    io_unix_pair(sv);
    CHECK_ERR(weft_read(sv[0], &c, 1, weft_after(WEFT_MS(1))), -ETIMEDOUT);
    weft_close(sv[0]);
    weft_close(sv[1]);
    printf("kernel: main and a pthread are never stopped\n");
}

int main(void)
{
    check_with_workers(1, finished_case, NULL); /* before this process starts weft */
    kernel();
    handles();
    completes();
    untimed();
    all_cases();
    return 0;
}
