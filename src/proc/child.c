/*
 * child.c - the child's side of a proc: the registry of entries, taking
 * over an exec'd image before main, the child's setup (fds, limits,
 * seccomp), and the loop that serves calls and makes callbacks.
 *
 * The registry is a list of weft_proc_entry, pushed (CAS) by
 * weft_proc_register, which WEFT_PROC_ENTRY calls from a constructor. A
 * fork child has the parent's list already. An exec'd child builds its own
 * as its constructors run, and must start serving after they have run and
 * before main: glibc offers no hook there, and constructor order across
 * objects is not ours to choose (libweft.a's run after the program's own
 * objects', libweft.so's before the program's). So the parent tells the
 * child which entries to wait for: the names of its entries that live in
 * modules loaded at startup (not dlopen'd later: the child will not have
 * them), found with dladdr against a list of the startup modules taken by
 * weft's constructor. The child serves from whichever comes first of
 * weft's constructor and the weft_proc_register calls once every expected
 * name is registered; constructors that would run after that point do not
 * run in the child. As a last resort a deferred child that reaches main
 * serves at its first weft_proc_new.
 *
 * Serving. One kernel thread (the forker's copy, or the exec'd main
 * thread) reads a CALL, runs the entry, writes the RETURN, and waits for
 * the next: it spins for SPIN_NS (yielding its CPU after SPIN_HOT_NS, so
 * a parent queued behind it on a busy machine can run) while such spins
 * pay off (proc.h, adaptive spinning), then sleeps on the region's shared futex
 * word (proc.h, doorbells). weft_proc_callback writes a CALLBACK and reads
 * until its CB_RETURN, serving the nested CALLs that come first by
 * recursion, so the child's stack mirrors the parent's chain.
 *
 * Buffers: each nesting depth keeps an argument and a result buffer,
 * reused from call to call (a warm call allocates nothing) unless above
 * 1 MiB. A result buffer is out_cap bytes, as the caller asked; a big
 * out_cap costs address space only (malloc maps it lazily).
 */
#include "proc/proc.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SPIN_NS 10000
#define SPIN_HOT_NS 2000
#define X32_SYSCALL_BIT 0x40000000u /* the kernel's __X32_SYSCALL_BIT */
#define KEEP_BUF (1u << 20)
#define STARTUP_MAX 256

struct weft_proc_ctx {
    struct region *r;
    pid_t tid;  /* the kernel thread running the entry */
    int depth;
};

struct bufs {
    void *in, *out;
    size_t in_cap, out_cap;
};

static weft_proc_entry *entries; /* atomic: pushed by CAS, never removed */

/* The one channel of this child process. */
static struct {
    struct end end;
    struct region *r;
    int efd;
    uint64_t shared_off, shared_size; /* checked copies of the header's */
    struct bufs bufs[PROC_DEPTH_MAX + 2];
} child;

/* Exec'd child waiting for its entries: the region (else NULL). */
static struct region *deferred;
static int deferred_efd;

/* Load biases of the modules loaded before main (parent side). */
static uintptr_t startup[STARTUP_MAX];
static int nstartup;

static weft_proc_entry *lookup(const char *name)
{
    for (weft_proc_entry *e = load_acquire(&entries); e; e = e->next_)
        if (!strcmp(e->name, name))
            return e;
    return NULL;
}

static void maybe_serve(void);

void weft_proc_register(weft_proc_entry *e)
{
    if (!e || !e->name || !e->fn || strlen(e->name) > WEFT_PROC_NAME_MAX)
        return;
    weft_proc_entry *head = load_relaxed(&entries);
    do
        e->next_ = head;
    while (!cas_acq_rel(&entries, &head, e)); /* pairs with lookup's acquire */
    maybe_serve();
}

/* ---- which entries an exec'd child waits for ----------------------------- */

static int note_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size, (void)arg;
    if (nstartup < STARTUP_MAX)
        startup[nstartup++] = info->dlpi_addr;
    return 0;
}

static bool at_startup(weft_proc_entry *e)
{
    if (!e->startup_) {
        Dl_info info;
        struct link_map *lm = NULL;
        bool found = false;
        union { weft_proc_fn fn; void *p; } u = {.fn = e->fn};
        if (dladdr1(u.p, &info, (void **)&lm, RTLD_DL_LINKMAP) && lm)
            for (int i = 0; i < nstartup && !found; i++)
                found = startup[i] == (uintptr_t)lm->l_addr;
        e->startup_ = found ? 1 : 2; /* racy but idempotent */
    }
    return e->startup_ == 1;
}

void weft__proc_expected(struct region *r)
{
    char *names = (char *)r + REGION_NAMES_OFF;
    uint32_t len = 0, n = 0;
    for (weft_proc_entry *e = load_acquire(&entries); e; e = e->next_) {
        size_t l = strlen(e->name) + 1;
        if (!at_startup(e) || len + l > REGION_NAMES_MAX)
            continue;
        memcpy(names + len, e->name, l);
        len += (uint32_t)l;
        n++;
    }
    r->nexpected = n;
    r->names_len = len;
}

static bool all_registered(struct region *r)
{
    const char *names = (const char *)r + REGION_NAMES_OFF;
    for (uint32_t off = 0; off < r->names_len; off += (uint32_t)strlen(names + off) + 1)
        if (!lookup(names + off))
            return false;
    return true;
}

/* ---- setup ------------------------------------------------------------------ */

static void close_from(int lo, int hi)
{
    if (lo > hi)
        return;
    if (syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0) == 0)
        return;
    for (int fd = lo; fd <= hi && fd < 65536; fd++)
        close(fd);
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/*
 * The filter: a call of another architecture's ABI kills the child (its
 * numbers mean other calls, so no deny list could hold); so does an x32
 * call on x86-64. x32 shares the x86-64 audit architecture and marks its
 * calls with bit 30 of the number (__X32_SYSCALL_BIT), and the kernel
 * runs most of them as the x86-64 call of the low bits, so without this
 * test getppid | 0x40000000 would get past a deny list naming getppid (on
 * a kernel built with x32). No program of ours makes x32 calls. Then each
 * denied number fails with EPERM, and the rest are allowed.
 */
static int install_seccomp(const struct child_cfg *c)
{
#if defined(__x86_64__)
    const uint32_t arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    const uint32_t arch = AUDIT_ARCH_AARCH64;
#else
    return -ENOSYS;
#endif
    struct sock_filter f[6 + 2 * PROC_DENY_MAX + 1];
    int n = 0;
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, 0, 1);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
#endif
    for (int i = 0; i < c->ndeny; i++) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)c->deny[i], 0, 1);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    }
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {.len = (unsigned short)n, .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return -errno;
    return 0;
}

int weft__proc_child_setup(struct region *r)
{
    /* One copy, its counts checked: the region is writable by others. */
    struct child_cfg c = r->cfg;
    if (c.nkeep < 0 || c.nkeep > PROC_KEEP_MAX || c.ndeny < 0 || c.ndeny > PROC_DENY_MAX)
        return -EPROTO;
    /* Every fd but 0-2, the doorbell and the keep list goes. */
    int keep[PROC_KEEP_MAX + 1];
    int n = 0;
    keep[n++] = c.efd;
    for (int i = 0; i < c.nkeep; i++)
        keep[n++] = c.keep[i];
    qsort(keep, (size_t)n, sizeof *keep, cmp_int);
    int lo = 3;
    for (int i = 0; i < n; i++) {
        if (keep[i] >= lo) {
            close_from(lo, keep[i] - 1);
            lo = keep[i] + 1;
        }
    }
    close_from(lo, INT32_MAX);

    struct { int res; uint64_t v; int extra; } lim[] = {
        {RLIMIT_AS, c.limit_as, 0}, {RLIMIT_CPU, c.limit_cpu, 1},
        {RLIMIT_NOFILE, c.limit_nofile, 0}};
    for (size_t i = 0; i < sizeof lim / sizeof *lim; i++) {
        if (!lim[i].v)
            continue;
        /* CPU: SIGXCPU at the soft limit, SIGKILL a second later. */
        struct rlimit rl = {(rlim_t)lim[i].v, (rlim_t)(lim[i].v + (uint64_t)lim[i].extra)};
        if (setrlimit(lim[i].res, &rl) < 0)
            return -errno;
    }
    if (c.ndeny > 0)
        return install_seccomp(&c);
    return 0;
}

/* ---- the child's end of the channel ------------------------------------------ */

static int child_wait(struct end *e, bool (*ready)(struct end *e, void *arg), void *arg)
{
    struct region *r = e->r;
    static struct spin spin; /* the serving thread's alone */
    if (spin_should(&spin)) {
        int64_t start = 0;
        bool hit = false;
        for (int i = 1;; i++) {
            if ((hit = ready(e, arg)))
                break;
            if ((i & 63) == 0) {
                int64_t now = weft_now();
                if (!start)
                    start = now;
                else if (now - start >= SPIN_NS)
                    break;
                /* Past the first microseconds, let a parent waiting for
                 * this CPU have it (on a busy machine it is often queued
                 * here). */
                if (now - start >= SPIN_HOT_NS)
                    sched_yield();
            }
            cpu_relax();
        }
        spin_result(&spin, hit);
        if (hit)
            return 0;
    }
    for (;;) {
        uint32_t bell = load_acquire(&r->child_bell);
        store_seq(&r->child_waiting, 1); /* pairs with call.c's parent_kick */
        if (ready(e, arg))
            break;
        weft__futex_wait_shared(&r->child_bell, bell);
    }
    store_relaxed(&r->child_waiting, 0);
    return 0;
}

static void child_kick(struct end *e)
{
    fence_seq(); /* the publish before, the flag after: pairs with parent_wait */
    if (load_relaxed(&e->r->parent_waiting)) {
        uint64_t one = 1;
        ssize_t n = write(child.efd, &one, sizeof one);
        (void)n; /* a full counter is readable anyway */
    }
}

static _Noreturn void broken(void)
{
    /* The parent broke the protocol, or memory is corrupt: it kills and
     * reaps us when it sees the exit. */
    _exit(125);
}

static int send_msg(struct msg *m, const char *name, const void *data)
{
    struct iovec iov[3] = {{m, sizeof *m}, {(void *)name, m->name_len}, {(void *)data, m->len}};
    return weft__ring_write(&child.end, iov, 3);
}

static void *grow(void **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return *buf ? *buf : (void *)buf; /* any non-NULL pointer for 0 bytes */
    void *n = realloc(*buf, need);
    if (!n)
        return NULL;
    *buf = n;
    *cap = need;
    return n;
}

static void shrink(void **buf, size_t *cap)
{
    if (*cap > KEEP_BUF) {
        free(*buf);
        *buf = NULL;
        *cap = 0;
    }
}

/* Runs the CALL whose header is m at nesting depth and sends its RETURN. */
static void serve_call(const struct msg *m, int depth)
{
    char name[WEFT_PROC_NAME_MAX + 1];
    if (m->name_len > WEFT_PROC_NAME_MAX || depth > PROC_DEPTH_MAX ||
        weft__ring_read(&child.end, name, m->name_len) < 0)
        broken();
    name[m->name_len] = 0;
    struct bufs *b = &child.bufs[depth];
    void *in = grow(&b->in, &b->in_cap, m->len);
    void *out = grow(&b->out, &b->out_cap, m->cap);
    if (weft__ring_read(&child.end, in ? in : NULL, m->len) < 0)
        broken();
    weft_proc_entry *e = lookup(name);
    ssize_t res;
    if (!in || !out)
        res = -ENOMEM;
    else if (!e)
        res = -ENOENT;
    else {
        struct weft_proc_ctx ctx = {child.r, (pid_t)syscall(SYS_gettid), depth};
        res = e->fn(&ctx, in, m->len, out, m->cap);
        if (res > (ssize_t)m->cap)
            res = -EMSGSIZE;
    }
    struct msg rm = {.type = MSG_RETURN, .status = res, .len = res > 0 ? (uint64_t)res : 0};
    if (send_msg(&rm, NULL, out) < 0)
        broken();
    shrink(&b->in, &b->in_cap);
    shrink(&b->out, &b->out_cap);
}

/* The header, read once and checked, so a region scribbled between two
 * children (proc.h) cannot send this one's copies outside the mapping. */
static bool header_ok(struct region *r, uint64_t *ring, uint64_t *shared_off,
                      uint64_t *shared_size)
{
    uint64_t size = load_relaxed(&r->size), rs = load_relaxed(&r->ring_size);
    uint64_t off = load_relaxed(&r->shared_off), ss = load_relaxed(&r->shared_size);
    if (load_relaxed(&r->magic) != REGION_MAGIC || rs < 4096 || rs > ((uint64_t)1 << 30) ||
        (rs & (rs - 1)) || off != REGION_RINGS_OFF + 2 * rs || off > size || ss > size - off)
        return false;
    *ring = rs;
    *shared_off = off;
    *shared_size = ss;
    return true;
}

_Noreturn void weft__proc_child_serve(struct region *r, int efd)
{
    uint64_t ring;
    if (!header_ok(r, &ring, &child.shared_off, &child.shared_size))
        _exit(124);
    child.r = r;
    child.efd = efd;
    child.end = (struct end){.r = r, .in = &r->req, .out = &r->resp, .in_base = req_base(r),
                             .out_base = resp_base(r, ring), .size = ring,
                             .wait = child_wait, .kick = child_kick};
    for (;;) {
        struct msg m;
        if (weft__ring_read(&child.end, &m, sizeof m) < 0 || m.type != MSG_CALL)
            broken();
        serve_call(&m, 0);
    }
}

ssize_t weft_proc_callback(weft_proc_ctx_t *ctx, const char *name, const void *in,
                           size_t in_len, void *out, size_t out_cap)
{
    if (!ctx || !name || strlen(name) > WEFT_PROC_NAME_MAX || (!in && in_len) ||
        (!out && out_cap) || (ssize_t)out_cap < 0)
        return -EINVAL;
    if ((pid_t)syscall(SYS_gettid) != ctx->tid)
        return -EPERM;
    struct msg m = {.type = MSG_CALLBACK, .name_len = (uint32_t)strlen(name), .len = in_len,
                    .cap = out_cap};
    if (send_msg(&m, name, in) < 0)
        broken();
    for (;;) {
        if (weft__ring_read(&child.end, &m, sizeof m) < 0)
            broken();
        if (m.type == MSG_CALL) {
            serve_call(&m, ctx->depth + 1);
            continue;
        }
        if (m.type != MSG_CB_RETURN || m.len > out_cap ||
            weft__ring_read(&child.end, out, m.len) < 0)
            broken();
        return (ssize_t)m.status;
    }
}

void *weft_proc_ctx_shared(weft_proc_ctx_t *ctx, size_t *size)
{
    struct region *r = ctx ? ctx->r : NULL;
    if (size)
        *size = r ? child.shared_size : 0;
    return r && child.shared_size ? (char *)r + child.shared_off : NULL;
}

/* ---- an exec'd image taking over --------------------------------------------- */

static _Noreturn void serve_now(struct region *r, int efd)
{
    deferred = NULL;
    if (weft__proc_child_setup(r) < 0)
        _exit(126);
    weft__proc_child_serve(r, efd);
}

static void maybe_serve(void)
{
    struct region *r = deferred;
    if (r && all_registered(r))
        serve_now(r, deferred_efd);
}

/* weft_proc_new in a child that reached main: serve what there is. */
void weft__proc_child_last_resort(void)
{
    if (deferred)
        serve_now(deferred, deferred_efd);
}

__attribute__((constructor)) static void proc_init(void)
{
    dl_iterate_phdr(note_module, NULL); /* for children of our own, too */
    const char *env = getenv("WEFT_PROC_CHILD");
    if (!env)
        return;
    int memfd = -1, efd = -1;
    char *end;
    memfd = (int)strtol(env, &end, 10);
    if (*end == ',')
        efd = (int)strtol(end + 1, &end, 10);
    unsetenv("WEFT_PROC_CHILD"); /* not for this child's own children */
    struct stat sb;
    if (memfd < 0 || efd < 0 || fstat(memfd, &sb) < 0 || sb.st_size < REGION_RINGS_OFF)
        _exit(124);
    struct region *r = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    close(memfd);
    if (r == MAP_FAILED || r->magic != REGION_MAGIC || r->size != (uint64_t)sb.st_size)
        _exit(124);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != r->parent_pid)
        _exit(127);
    weft__sched_reset_child(); /* a fresh runtime here has one worker too */
    deferred = r;
    deferred_efd = efd;
    maybe_serve();
}
