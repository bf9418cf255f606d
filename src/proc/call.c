/*
 * call.c - the parent's side of a proc: making and freeing one, a call and
 * the callbacks it serves, and how a call ends when the child must die.
 *
 * A call chain. weft_proc_call takes the proc's call lock (a weft mutex,
 * taken only by trylock; other callers park on lock_seq, bounded by their
 * deadlines and cut short by a stop: see take_call_lock), names itself the
 * chain's driver (chain_key, weft__self_key), sends CALL and reads what
 * comes back. A CALLBACK is served right there: on the caller itself when
 * it is a weft thread, else on a weft thread spawned for it and joined, so
 * callbacks always run on weft threads. A callback may call the proc
 * again; that call finds chain_key == its own key (the callback runs on
 * the driver, or names its helper thread the driver while it runs) and
 * goes straight to the channel, nested, without the lock. Since the child
 * is then waiting in weft_proc_callback, where it serves nested CALLs, the
 * conversation stays strictly alternating (proc.h) and nothing deadlocks.
 * Any other thread's call waits for the lock.
 *
 * Waiting (parent_wait): spin for SPIN_NS, yielding to other weft threads
 * (a warm call's answer comes in microseconds: parking would cost more
 * than the call), while such spins pay off (proc.h, adaptive spinning);
 * then set parent_waiting, check again and wait in weft_fdwait on the
 * proc's epoll set (the eventfd the child rings, and the child's pidfd),
 * until the call's deadline.
 *
 * How a call fails (fail_chain, the one exit for every failure). Whatever
 * ends the wait other than progress, the deadline (-ETIMEDOUT), the
 * child's death (-ECHILD), a broken protocol (-EPROTO: a bad message, or
 * an impossible ring index, which the ring code refuses before it copies
 * anything; proc.h says why the parent trusts nothing the child can
 * write), or any error weft_fdwait returns (a stop of the caller:
 * -ECANCELED), the child's
 * process group is killed and reaped there and then, and the error is
 * kept in broken, so every outer level of a nested chain unwinds with it
 * instead of talking to a dead child. The next top-level call starts a
 * fresh child. A CALL that the child never began (it had died before:
 * nothing of the message was consumed) is sent once more to a fresh child.
 *
 * Stops. A stopped caller fails with -ECANCELED before it takes the lock
 * or starts a child (a stop that comes while it waits for the lock ends
 * that wait too), and a stop during its call kills the child (above). A
 * stopped thread's nested call, from a callback, ends the chain the same
 * way, so the outer levels unwind with -ECANCELED.
 *
 * Rejected: a pool of children serving calls in parallel (a child per
 * caller is what a second weft_proc_t is for, and a pool would make the
 * shared area and nested callbacks ambiguous); callbacks on one server
 * thread per proc (a nested call from it would need the lock the caller
 * holds); a robust mutex in the region to serialize the two sides (a
 * child dying while holding it is exactly the case to survive; the rings
 * need no lock).
 */
#include "proc/proc.h"
#include "sync/sync.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define SPIN_NS 20000
/* A callback helper's stack: nested calls and callbacks stack up on it. */
#define CB_STACK (1u << 20)
#define DEFAULT_RING (256 * 1024)

/* ---- the parent's end of the channel ----------------------------------- */

static struct weft_proc *proc_of(struct end *e)
{
    return (struct weft_proc *)((char *)e - offsetof(struct weft_proc, end));
}

static bool child_gone(struct weft_proc *p)
{
    struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
    return p->pidfd < 0 || poll(&pf, 1, 0) != 0;
}

/* Kills the child's process group and reaps the child. Also for a child
 * that died by itself: whatever it started in its group must not outlive
 * it, and until the reap the group's number is still its own (spawn.c).
 * The call-lock holder or free only. */
static void end_child(struct weft_proc *p)
{
    ilock(&p->mu);
    weft__proc_signal(p);
    iunlock(&p->mu);
    weft__proc_reap(p);
}

/* Kills and reaps the child and remembers why (see top). Every failure of
 * a chain ends here; the stop integration point: an -ECANCELED from
 * weft_fdwait arrives as err. */
static int fail_chain(struct weft_proc *p, int err)
{
    if (!p->broken)
        p->broken = err;
    end_child(p);
    return p->broken;
}

static int parent_wait(struct end *e, bool (*ready)(struct end *e, void *arg), void *arg)
{
    struct weft_proc *p = proc_of(e);
    struct region *r = p->r;
    if (p->broken)
        return p->broken;
    int64_t deadline = p->deadline;
    if (spin_should(&p->spin)) {
        bool user = weft__current() != NULL;
        int64_t spin_end = weft_now() + SPIN_NS;
        bool hit = false;
        for (int i = 1;; i++) {
            if ((hit = ready(e, arg)))
                break;
            if ((i & 15) == 0) {
                int64_t now = weft_now();
                if (deadline >= 0 && now >= deadline)
                    return fail_chain(p, -ETIMEDOUT);
                if (now >= spin_end)
                    break;
            }
            if (user)
                weft_yield();
            else
                cpu_relax();
        }
        spin_result(&p->spin, hit);
        if (hit)
            return 0;
    } else if (ready(e, arg)) {
        return 0;
    }
    for (;;) {
        uint64_t v;
        while (read(p->efd, &v, sizeof v) > 0) /* drain: the next ring is an edge */
            ;
        store_seq(&r->parent_waiting, 1); /* pairs with child.c's kick */
        if (ready(e, arg)) {
            store_relaxed(&r->parent_waiting, 0);
            return 0;
        }
        if (child_gone(p)) {
            store_relaxed(&r->parent_waiting, 0);
            if (ready(e, arg)) /* it answered, then died: take the answer */
                return 0;
            return fail_chain(p, -ECHILD);
        }
        int w = weft_fdwait(p->epfd, WEFT_IN, deadline);
        store_relaxed(&r->parent_waiting, 0);
        if (w < 0)
            return fail_chain(p, w); /* -ETIMEDOUT, -ECANCELED (stop), ... */
    }
}

static void parent_kick(struct end *e)
{
    struct region *r = proc_of(e)->r;
    fence_seq(); /* the publish before, the flag after: pairs with child_wait */
    if (load_relaxed(&r->child_waiting)) {
        fetch_add_seq(&r->child_bell, 1);
        weft__futex_wake_shared(&r->child_bell);
    }
}

/* ---- callbacks ---------------------------------------------------------- */

struct cb_run {
    struct weft_proc *p;
    struct cb *cb;
    const void *in;
    size_t in_len;
    void *out;
    size_t out_cap;
    ssize_t result;
};

static void run_cb(struct cb_run *c)
{
    c->result = c->cb->fn(c->p, c->cb->arg, c->in, c->in_len, c->out, c->out_cap);
}

/* A callback for a caller that is a plain kernel thread runs here, on a
 * weft thread, which is the chain's driver while it runs. */
static void *cb_thread(void *arg)
{
    struct cb_run *c = arg;
    uintptr_t saved = load_relaxed(&c->p->chain_key);
    store_relaxed(&c->p->chain_key, weft__self_key());
    run_cb(c);
    store_relaxed(&c->p->chain_key, saved);
    return NULL;
}

/* A failure of the channel that no wait reported (the ring code's
 * -EPROTO) ends the chain like any other; one that a wait reported has
 * been through fail_chain already. */
static int chan_failed(struct weft_proc *p, int r)
{
    return r < 0 && !p->broken ? fail_chain(p, r) : r;
}

static int send_msg(struct weft_proc *p, struct msg *m, const char *name, const void *data)
{
    struct iovec iov[3] = {{m, sizeof *m}, {(void *)name, m->name_len}, {(void *)data, m->len}};
    return chan_failed(p, weft__ring_write(&p->end, iov, 3));
}

static int recv_bytes(struct weft_proc *p, void *dst, size_t len)
{
    return chan_failed(p, weft__ring_read(&p->end, dst, len));
}

/* Serves one CALLBACK whose header is m; sends its CB_RETURN. */
static int serve_callback(struct weft_proc *p, const struct msg *m)
{
    char name[WEFT_PROC_NAME_MAX + 1];
    if (m->name_len > WEFT_PROC_NAME_MAX)
        return fail_chain(p, -EPROTO);
    int r = recv_bytes(p, name, m->name_len);
    if (r < 0)
        return r;
    name[m->name_len] = 0;
    struct cb *cb = NULL;
    for (int i = 0; i < p->ncbs && !cb; i++)
        if (!strcmp(p->cbs[i].name, name))
            cb = &p->cbs[i];
    void *in = m->len ? malloc(m->len) : NULL;
    void *out = m->cap ? malloc(m->cap) : NULL;
    ssize_t result;
    if ((m->len && !in) || (m->cap && !out)) {
        result = -ENOMEM;
        r = recv_bytes(p, NULL, m->len);
    } else {
        r = recv_bytes(p, in, m->len);
        result = -ENOENT;
    }
    if (r == 0 && cb) {
        struct cb_run c = {p, cb, in, m->len, out, m->cap, 0};
        if (weft__current()) {
            run_cb(&c);
        } else {
            weft_t t;
            weft_attr a = {.stack_size = CB_STACK, .name = "proc-callback"};
            int s = weft_spawn(&t, cb_thread, &c, &a);
            if (s == 0)
                weft_join(t, NULL, WEFT_FOREVER);
            c.result = s == 0 ? c.result : s;
        }
        result = c.result;
        if (result > (ssize_t)m->cap)
            result = -EMSGSIZE;
    }
    free(in);
    if (r == 0) {
        if (p->broken) /* a nested call inside the callback killed the child */
            r = p->broken;
        else {
            struct msg rm = {.type = MSG_CB_RETURN, .status = result,
                             .len = result > 0 ? (uint64_t)result : 0};
            r = send_msg(p, &rm, NULL, out);
        }
    }
    free(out);
    return r;
}

/* ---- the call lock --------------------------------------------------------- */

/*
 * A caller waiting for another's call is not cleaning up after a stop, so
 * a stop must end its wait, also an untimed one; weft_mutex_lock keeps
 * working for stopped threads (weft_stop(3)), so the waiting is ours: a
 * waiter reads lock_seq, tries the mutex, and parks on lock_seq (a
 * stop-aware park) unless lock_seq changed; every release bumps lock_seq
 * after the unlock and wakes the parked callers. No wake-up is lost:
 *
 *   waiter                              releaser
 *   seq = lock_seq                      unlock
 *   trylock fails                       lock_seq++          (seq_cst)
 *   lock_waiters++          (seq_cst)   if (lock_waiters)   (seq_cst)
 *   lock_seq == seq?        (seq_cst)       unpark all
 *   park while lock_seq == seq (checked under the bucket lock)
 *
 * If the releaser reads lock_waiters before the waiter's increment, the
 * waiter's later load sees the bump and it tries again; otherwise the
 * releaser unparks, and the parking lot orders that against the waiter's
 * check. A trylock that fails saw the lock held, by a holder whose release
 * bumps lock_seq after seq was read. All waiters are woken (few callers
 * queue on one proc), so none is left behind by one that timed out.
 */
static int take_call_lock(struct weft_proc *p, int64_t deadline)
{
    for (;;) {
        uint32_t seq = load_seq(&p->lock_seq);
        if (weft_mutex_trylock(&p->call_lock) == 0)
            return 0;
        fetch_add_seq(&p->lock_waiters, 1);
        int r = load_seq(&p->lock_seq) != seq ? -EAGAIN
                                               : weft__park(&p->lock_seq, seq, deadline, true);
        __atomic_fetch_sub(&p->lock_waiters, 1, __ATOMIC_RELAXED);
        if (r == -ETIMEDOUT || r == -ECANCELED) {
            /* As a timed lock does: what became free meanwhile is taken. */
            if (weft_mutex_trylock(&p->call_lock) == 0)
                return 0;
            return r;
        }
    }
}

static void release_call_lock(struct weft_proc *p)
{
    weft_mutex_unlock(&p->call_lock);
    fetch_add_seq(&p->lock_seq, 1);
    if (load_seq(&p->lock_waiters))
        weft_unpark(&p->lock_seq, -1);
}

/* ---- a call -------------------------------------------------------------- */

/* Sends CALL and reads until its RETURN, serving callbacks; the caller
 * drives the chain. *undelivered: the child died before taking any of it. */
static ssize_t drive(struct weft_proc *p, const char *entry, const void *in, size_t in_len,
                     void *out, size_t out_cap, bool *undelivered)
{
    struct msg m = {.type = MSG_CALL, .name_len = (uint32_t)strlen(entry), .len = in_len,
                    .cap = out_cap};
    uint64_t start = p->end.out_tail;
    int r = send_msg(p, &m, entry, in);
    for (;;) {
        if (r == 0)
            r = recv_bytes(p, &m, sizeof m);
        if (r < 0) {
            /* The child's head, only compared: a wrong one costs at most
             * the one resend to a fresh child. */
            *undelivered = load_acquire(&p->r->req.head) == start;
            return r;
        }
        if (m.type == MSG_RETURN) {
            if (m.len > out_cap || m.name_len || (m.status >= 0 && (uint64_t)m.status != m.len))
                return fail_chain(p, -EPROTO);
            r = recv_bytes(p, out, m.len);
            return r < 0 ? r : m.status;
        }
        if (m.type != MSG_CALLBACK)
            return fail_chain(p, -EPROTO);
        r = serve_callback(p, &m);
    }
}

ssize_t weft_proc_call(weft_proc_t *p, const char *entry, const void *in, size_t in_len,
                       void *out, size_t out_cap, int64_t deadline)
{
    if (!p || !entry || strlen(entry) > WEFT_PROC_NAME_MAX || (!in && in_len) ||
        (!out && out_cap) || (ssize_t)out_cap < 0)
        return -EINVAL;
    uintptr_t me = weft__self_key();
    bool nested = load_relaxed(&p->chain_key) == me;
    bool stopped = weft__stop_self() & ST_STOP;
    if (nested) {
        /* From a callback of the chain's own call (see top). */
        if (p->depth >= PROC_DEPTH_MAX)
            return -ELOOP;
        if (p->broken)
            return p->broken;
        if (stopped)
            return fail_chain(p, -ECANCELED); /* the outer levels unwind too */
        /* The earlier of the two: the outer call's deadline still bounds
         * everything done on its behalf, this call included. */
        int64_t saved = p->deadline;
        if (saved >= 0 && (deadline < 0 || saved < deadline))
            deadline = saved;
        p->deadline = deadline;
        p->depth++;
        bool undelivered;
        ssize_t n = drive(p, entry, in, in_len, out, out_cap, &undelivered);
        p->depth--;
        p->deadline = saved;
        return n;
    }
    if (stopped)
        return -ECANCELED; /* no lock taken, no child started (see top) */
    int r = take_call_lock(p, deadline);
    if (r < 0)
        return r;
    if (weft__stop_self() & ST_STOP) { /* stopped as it got the lock */
        release_call_lock(p);
        return -ECANCELED;
    }
    store_relaxed(&p->chain_key, me);
    p->deadline = deadline;
    ssize_t n = 0;
    for (int tries = 0; tries < 2; tries++) {
        p->broken = 0;
        if (p->alive && child_gone(p)) /* died since the last call */
            end_child(p);
        if (!p->alive && (n = weft__proc_spawn(p)) < 0)
            break;
        bool undelivered = false;
        n = drive(p, entry, in, in_len, out, out_cap, &undelivered);
        if (n != -ECHILD || !undelivered)
            break;
    }
    p->broken = 0;
    store_relaxed(&p->chain_key, 0);
    release_call_lock(p);
    return n;
}

/* ---- making, killing and freeing ----------------------------------------- */

static int check_opts(const weft_proc_opts *o)
{
    if (o->mode != WEFT_PROC_FORK && o->mode != WEFT_PROC_EXEC)
        return -EINVAL;
    size_t rs = o->ring_size;
    if (rs && (rs < 4096 || rs > ((size_t)1 << 30) || (rs & (rs - 1))))
        return -EINVAL;
    if (o->ncallbacks < 0 || (o->ncallbacks && !o->callbacks) || o->nkeep_fds < 0 ||
        o->nkeep_fds > PROC_KEEP_MAX || (o->nkeep_fds && !o->keep_fds) ||
        o->nseccomp_deny < 0 || o->nseccomp_deny > PROC_DENY_MAX ||
        (o->nseccomp_deny && !o->seccomp_deny) || o->shared_size > ((size_t)1 << 40))
        return -EINVAL;
    for (int i = 0; i < o->ncallbacks; i++)
        if (!o->callbacks[i].name || !o->callbacks[i].fn ||
            strlen(o->callbacks[i].name) > WEFT_PROC_NAME_MAX)
            return -EINVAL;
    for (int i = 0; i < o->nkeep_fds; i++)
        if (o->keep_fds[i] < 3)
            return -EINVAL;
    return 0;
}

static void proc_destroy(struct weft_proc *p)
{
    if (p->cbs) {
        for (int i = 0; i < p->ncbs; i++)
            free(p->cbs[i].name);
        free(p->cbs);
    }
    if (p->r)
        munmap(p->r, p->map_size);
    if (p->memfd >= 0)
        close(p->memfd);
    if (p->efd >= 0)
        close(p->efd);
    if (p->epfd >= 0)
        weft_close(p->epfd); /* it may be in the poller's table */
    free(p);
}

static int make_region(struct weft_proc *p, const weft_proc_opts *o)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t ring = o->ring_size ? o->ring_size : DEFAULT_RING;
    size_t shared = (o->shared_size + page - 1) & ~(page - 1);
    p->map_size = REGION_RINGS_OFF + 2 * ring + shared;
    void *m;
    if (o->mode == WEFT_PROC_EXEC) {
        p->memfd = memfd_create("weft-proc", MFD_CLOEXEC);
        if (p->memfd < 0)
            return -weft__errno_get();
        if (ftruncate(p->memfd, (off_t)p->map_size) < 0)
            return -weft__errno_get();
        m = mmap(NULL, p->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, p->memfd, 0);
    } else {
        m = mmap(NULL, p->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    }
    if (m == MAP_FAILED)
        return -weft__errno_get();
    p->r = m;
    /* The parent's own copies (proc.h): the region gets them at each
     * start (spawn.c), and nothing here reads them back from it. */
    p->ring_size = ring;
    p->shared_off = REGION_RINGS_OFF + 2 * ring;
    p->shared_size = o->shared_size;
    p->cfg.nkeep = o->nkeep_fds;
    for (int i = 0; i < o->nkeep_fds; i++)
        p->cfg.keep[i] = o->keep_fds[i];
    p->cfg.limit_as = o->limit_as;
    p->cfg.limit_cpu = o->limit_cpu;
    p->cfg.limit_nofile = o->limit_nofile;
    p->cfg.ndeny = o->nseccomp_deny;
    for (int i = 0; i < o->nseccomp_deny; i++)
        p->cfg.deny[i] = o->seccomp_deny[i];
    return 0;
}

int weft_proc_new(weft_proc_t **pp, const weft_proc_opts *opts)
{
    weft_proc_opts none = {0};
    const weft_proc_opts *o = opts ? opts : &none;
    if (!pp)
        return -EINVAL;
    weft__proc_child_last_resort();
    int r = check_opts(o);
    if (r < 0)
        return r;
    struct weft_proc *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->memfd = p->efd = p->epfd = p->pidfd = -1;
    p->mode = o->mode;
    weft_mutex_init(&p->call_lock);
    if ((r = make_region(p, o)) < 0)
        goto fail;
    r = -ENOMEM;
    if (o->ncallbacks && !(p->cbs = calloc((size_t)o->ncallbacks, sizeof *p->cbs)))
        goto fail;
    for (; p->ncbs < o->ncallbacks; p->ncbs++) {
        struct cb *c = &p->cbs[p->ncbs];
        if (!(c->name = strdup(o->callbacks[p->ncbs].name)))
            goto fail;
        c->fn = o->callbacks[p->ncbs].fn;
        c->arg = o->callbacks[p->ncbs].arg;
    }
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p->efd};
    if (p->efd < 0 || p->epfd < 0 || epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->efd, &ev) < 0) {
        r = -weft__errno_get();
        goto fail;
    }
    p->cfg.efd = p->efd;
    p->end = (struct end){.r = p->r, .in = &p->r->resp, .out = &p->r->req,
                          .in_base = resp_base(p->r, p->ring_size), .out_base = req_base(p->r),
                          .size = p->ring_size, .wait = parent_wait, .kick = parent_kick};
    *pp = p;
    return 0;
fail:
    proc_destroy(p);
    return r;
}

void *weft_proc_shared(weft_proc_t *p, size_t *size)
{
    if (size)
        *size = p ? p->shared_size : 0;
    return p && p->shared_size ? (char *)p->r + p->shared_off : NULL;
}

int weft_proc_kill(weft_proc_t *p)
{
    if (!p)
        return -EINVAL;
    ilock(&p->mu);
    bool alive = p->alive;
    if (alive)
        weft__proc_signal(p);
    iunlock(&p->mu);
    if (!alive)
        return -ESRCH;
    /* No call under way: reap now, so no zombie waits for the next call.
     * Otherwise the caller's wait sees the death and reaps. */
    if (weft_mutex_trylock(&p->call_lock) == 0) {
        if (p->alive)
            weft__proc_reap(p);
        release_call_lock(p); /* a caller may have queued meanwhile */
    }
    return 0;
}

int weft_proc_status(weft_proc_t *p, weft_proc_status_t *st)
{
    if (!p || !st)
        return -EINVAL;
    ilock(&p->mu);
    *st = p->st;
    st->running = p->alive;
    iunlock(&p->mu);
    return 0;
}

int weft_proc_free(weft_proc_t *p)
{
    if (!p)
        return 0;
    if (weft_mutex_trylock(&p->call_lock) < 0)
        return -EBUSY;
    if (p->alive)
        end_child(p);
    weft_mutex_unlock(&p->call_lock); /* a caller still queued would use p after free */
    proc_destroy(p);
    return 0;
}
