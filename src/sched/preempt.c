/*
 * preempt.c - making a thread that never yields let others run.
 *
 * A user thread runs until it calls weft; one that loops in its own code
 * would keep its worker for ever (seed 004: a clock signal for threads
 * that never give up the CPU). The monitor (monitor.c) looks at every
 * worker each millisecond. A worker whose schedule count (tick) has not
 * moved for a whole time slice (10 ms by default, weft_config.time_slice)
 * while it runs a thread is asked to yield, in two ways at once:
 *
 *   - a flag: preempt_tick = tick + 1. weft__preempt_point (internal.h),
 *     at points in weft calls where the caller holds nothing of weft's,
 *     yields when the flag matches the current tick; any schedule moves
 *     the tick and so retires the flag without a store;
 *   - a signal (SIGURG, as Go uses: ignored by default and rare in
 *     programs) to the worker's kernel thread, if /proc says the kernel
 *     thread is running (one asleep in a system call is not interrupted:
 *     that would only give the call an EINTR).
 *
 * The handler switches nothing. If the interrupted code is at a safe point
 * it redirects the interrupted context to a trampoline
 * (arch/preempt_x86_64.S) that saves every register on the thread's stack
 * and calls weft_yield, so the switch happens outside the handler with no
 * signal blocked. A safe point is:
 *
 *   - a user thread is running (not g0, not a blocking section) and its
 *     preemption is not disabled (weft_preempt_disable);
 *   - the program counter is in the main executable's code but not in
 *     weft's: code there holds no libc lock (libc is a shared object), and
 *     weft's own code may hold weft's locks or be mid-switch. weft's code
 *     is the section weft_text: the build renames every object's .text to
 *     it (Makefile), so the linker gathers it in one range whether weft is
 *     linked statically or as libweft.so;
 *   - the stack pointer is in the thread's stack with room for the saved
 *     state and the yield;
 *   - the interrupted code is not a signal handler of the program's: its
 *     signal mask is the one every worker runs with (a switch inside a
 *     handler would leave the handler's mask on the kernel thread).
 *
 * The signal is used at all only where "the main executable's code" means
 * the program's own: libc must be a shared object (a static link puts
 * malloc's locks in the executable), no sanitizer runtime may be linked
 * into the executable (clang links ASan's allocator statically), and the
 * weft_text section must exist (a build that skips the Makefile's rename
 * cannot tell weft's code apart). Elsewhere, and with
 * weft_config.preempt_signal < 0 or WEFT_PREEMPT=calls, only the flag is
 * used.
 *
 * What the signal cannot know: a thread preempted while it holds a lock
 * that blocks kernel threads (a pthread mutex, pthread_once, a C++
 * static-initialization guard) in the program's code, and another thread
 * of the same worker that then waits for that lock, block the worker; with
 * no other worker to steal the holder, for ever. weft threads should use
 * weft's locks, or wait for such locks inside weft_blocking, or turn the
 * signal off (README, weft_preempt(3)).
 *
 * The handler runs on the kernel thread's alternate signal stack (the one
 * the overflow report uses), so the kernel's signal frame, several KiB
 * with the vector state, never lands on the thread's stack. The
 * trampoline then saves the registers on the thread's stack, clears the
 * floating-point environment to the one the runtime started with (the
 * next thread on this kernel thread must not inherit a rounding mode or
 * x87 stack), and gives the thread its own back when it resumes.
 *
 * Anywhere else the flag alone remains, honoured at the next weft call
 * that passes a preemption point (every fd wrapper, lock release, channel
 * operation, spawn, and weft_preempt_enable). A thread looping in a shared
 * library without calling weft is not preempted.
 *
 * Under ThreadSanitizer signals reach the handler late, when TSan chooses,
 * with the interrupted context long gone: only the flag is used there.
 *
 * The caveat this brings: a preempted thread may resume on another kernel
 * thread at any instruction of the program's own code, not only at weft
 * calls. Code that keeps the address of a __thread variable (or of errno,
 * whose address glibc lets the compiler reuse) across such a point must
 * disable preemption around it (README, "Kernel-thread state").
 */
#include "sched/sched.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#define PREEMPT_SIGNAL SIGURG
/* The mask bits the masks are compared on: the signals 1-31 but SIGKILL
 * and SIGSTOP, which the kernel never blocks; glibc never lets its own
 * signals (32, 33) be blocked either, whatever the set asked for. */
#define STD_SIGNALS (0x7fffffffull & ~(1ull << (SIGKILL - 1)) & ~(1ull << (SIGSTOP - 1)))
#define STACK_ROOM (16 * 1024) /* left below the interrupted sp, at least */
#define MAX_RANGES 8

/* The section every weft object's code is in (see top); hidden, so a
 * libweft.so finds its own. */
extern char __start_weft_text[] __attribute__((visibility("hidden"), weak));
extern char __stop_weft_text[] __attribute__((visibility("hidden"), weak));

void weft__preempt_tramp(void);

/* Read by the trampoline: the interrupted rip, set by the handler on the
 * same kernel thread just before. */
__thread uintptr_t weft__preempt_pc __attribute__((tls_model("initial-exec"), visibility("hidden")));

/* Read by the trampoline. */
uint64_t weft__preempt_area WEFT_HIDDEN = 512;   /* bytes for the state */
uint64_t weft__preempt_xmask WEFT_HIDDEN;        /* XSAVE components */
uint8_t weft__preempt_xsave WEFT_HIDDEN;         /* 0: FXSAVE */
uint8_t weft__preempt_avx WEFT_HIDDEN;           /* vzeroupper is there */
uint32_t weft__preempt_mxcsr WEFT_HIDDEN = 0x1f80; /* the runtime's own */
uint16_t weft__preempt_fpucw WEFT_HIDDEN = 0x037f;

/* Objects with which "in the main executable" does not mean "the
 * program's own code"; weak, so absent ones are NULL. */
extern void __asan_init(void) __attribute__((weak));
extern void __msan_init(void) __attribute__((weak));
extern void __tsan_init(void) __attribute__((weak));
extern void __hwasan_init(void) __attribute__((weak));

/* The main executable's code, set once at init. */
static uintptr_t exe_lo[MAX_RANGES], exe_hi[MAX_RANGES];
static int nexe;
static bool shared_libc; /* a libc shared object is loaded */
static bool use_signal;  /* set once at init; read by the handler */
static uint64_t worker_mask; /* the first 64 signals workers block */
static struct sigaction previous;

int weft__preempt_signal(void)
{
    return PREEMPT_SIGNAL;
}

static int each_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    int *index = data;
    /* The first object dl_iterate_phdr reports is the main program. */
    for (int i = 0; *index == 0 && i < info->dlpi_phnum && nexe < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        exe_lo[nexe] = info->dlpi_addr + ph->p_vaddr;
        exe_hi[nexe] = exe_lo[nexe] + ph->p_memsz;
        nexe++;
    }
    const char *name = info->dlpi_name ? strrchr(info->dlpi_name, '/') : NULL;
    name = name ? name + 1 : info->dlpi_name;
    if (*index > 0 && name && (!strncmp(name, "libc.so", 7) || !strncmp(name, "ld-musl", 7)))
        shared_libc = true;
    ++*index;
    return 0;
}

static bool in_exe(const void *p)
{
    for (int i = 0; p && i < nexe; i++)
        if ((uintptr_t)p >= exe_lo[i] && (uintptr_t)p < exe_hi[i])
            return true;
    return false;
}

/* Whether the signal may be used at all (see top). */
static bool signal_usable(void)
{
    if (!__start_weft_text || (uintptr_t)__stop_weft_text <= (uintptr_t)__start_weft_text)
        return false;
    if (!shared_libc)
        return false;
    if (in_exe((const void *)__asan_init) || in_exe((const void *)__msan_init) ||
        in_exe((const void *)__tsan_init) || in_exe((const void *)__hwasan_init))
        return false;
    return true;
}

static __attribute__((unused)) bool pc_safe(uintptr_t pc)
{
    if (pc >= (uintptr_t)__start_weft_text && pc < (uintptr_t)__stop_weft_text)
        return false;
    return in_exe((const void *)pc);
}

/* Which extended state the trampoline saves, and how much room it takes.
 * AMX tile data (8 KiB) is left out: it needs arch_prctl permission, and
 * code that has it must disable preemption. */
static void xsave_init(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_XSAVE))
        return; /* FXSAVE: 512 bytes */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    uint64_t mask = ((uint64_t)hi << 32 | lo) & ~((1ull << 17) | (1ull << 18));
    uint64_t area = 512 + 64; /* legacy area and header */
    for (unsigned i = 2; i < 63; i++) {
        if (!(mask & (1ull << i)))
            continue;
        __cpuid_count(0xd, i, a, b, c, d); /* a: size, b: offset */
        if (b + a > area)
            area = b + a;
    }
    weft__preempt_xmask = mask;
    weft__preempt_area = area;
    weft__preempt_xsave = 1;
    weft__preempt_avx = (c & bit_AVX) && (mask & 6) == 6; /* SSE and AVX state on */
}

static void on_signal(int sig, siginfo_t *si, void *ucv)
{
    if (si->si_code != SI_TKILL || si->si_pid != getpid()) {
        /* Not the monitor's: whoever had the signal before weft gets it. */
        if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction)
            previous.sa_sigaction(sig, si, ucv);
        else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN)
            previous.sa_handler(sig);
        return;
    }
#if !defined(WEFT_TSAN)
    struct kthread *k = weft__tls_k; /* this kernel thread's; no switch here */
    struct uthread *ut = k ? k->cur : NULL;
    if (!use_signal || !ut || __atomic_load_n(&ut->nopreempt, __ATOMIC_RELAXED))
        return;
    ucontext_t *uc = ucv;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t lo = (uintptr_t)ut->map + weft__page_size(), hi = (uintptr_t)ut;
    uint64_t mask; /* the kernel fills the first 64 bits of uc_sigmask */
    memcpy(&mask, &uc->uc_sigmask, sizeof mask);
    if (!pc_safe(pc) || sp > hi || sp < lo + STACK_ROOM || (mask & STD_SIGNALS) != worker_mask)
        return; /* the flag does it at the next weft call */
    weft__preempt_pc = pc; /* the trampoline's return address */
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)weft__preempt_tramp;
#else
    (void)ucv;
#endif
}

void weft__preempt_init(void)
{
    if (!weft__rt.slice)
        return;
    xsave_init();
    weft__preempt_mxcsr = __builtin_ia32_stmxcsr();
    __asm__ volatile("fnstcw %0" : "=m"(weft__preempt_fpucw));
    nexe = 0; /* a proc's fork child starts a runtime of its own */
    shared_libc = false;
    int index = 0;
    dl_iterate_phdr(each_object, &index);
    use_signal = weft__rt.preempt_signal && signal_usable();
    sigset_t m = weft__kthread_mask();
    memcpy(&worker_mask, &m, sizeof worker_mask);
    worker_mask &= STD_SIGNALS;
    struct sigaction cur;
    if (sigaction(PREEMPT_SIGNAL, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_signal)
        return; /* inherited across fork: previous is right already */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    /* SA_ONSTACK: the kernel's frame goes on the alternate stack, not on
     * the thread's (see top). SA_RESTART: a system call of the program's
     * that the signal meets goes on (the monitor avoids sleeping ones,
     * but a call can begin between its look and the signal). */
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    sigaction(PREEMPT_SIGNAL, &sa, &previous);
}

/* Each M opens its stat file once, when it starts, and keeps it: the
 * monitor must not open and close files while the program runs. A weft
 * wrapper racing a weft_close of its fd (the program's own race, which
 * weft otherwise survives) could meet the monitor's file under the freed
 * number, learn that it is non-blocking, and leave that fact to the next
 * socket given the number, whose reads would then block a worker. */
int weft__preempt_stat_open(void)
{
    if (!weft__rt.slice)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)gettid());
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* Is kernel thread k running or runnable, as opposed to asleep in the
 * kernel? Unknown counts as running. */
static bool kthread_running(struct kthread *k)
{
    char buf[256];
    if (k->stat_fd < 0)
        return true;
    ssize_t n = pread(k->stat_fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return true;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the name may hold anything */
    return !p || p[1] != ' ' || p[2] == 'R';
}

void weft__preempt_scan(int64_t now)
{
    struct runtime *rt = &weft__rt;
    if (!rt->slice)
        return;
    for (int i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];
        struct kthread *k = load_acquire(&w->k);
        uint32_t tick = load_relaxed(&w->tick);
        if ((load_relaxed(&w->pstate) & P_BLOCKING) || !load_relaxed(&k->cur) ||
            tick != w->mon_tick) {
            w->mon_tick = tick; /* idle, blocking, or it scheduled since */
            w->mon_tick_since = now;
            continue;
        }
        if (now - w->mon_tick_since < rt->slice)
            continue;
        w->mon_tick_since = now; /* ask again a slice from now */
        store_relaxed(&w->preempt_tick, tick + 1);
        uint32_t tid = load_acquire(&k->tid); /* 0 until the M has started */
        if (tid && kthread_running(k))
            pthread_kill(k->pt, PREEMPT_SIGNAL);
    }
}

void weft__preempt_yield(void)
{
    struct uthread *ut = weft__current();
    /* Not while the thread is between publishing a wait and blocking in
     * it (switching set, sync.h): it is in some queue already, and a yield
     * would queue it twice. weft's own unlocks in such windows skip the
     * point; this guards any other. */
    if (!ut || load_relaxed(&ut->nopreempt) || load_relaxed(&ut->switching))
        return;
    /* The thread kept the worker from its periodic checks for a whole
     * slice: its timers and the global queue (where the monitor's I/O
     * polls put woken threads) go first, or a yield with nothing else in
     * the ring would come straight back. */
    struct worker *w = weft__worker();
    if (load_relaxed(&w->nheap))
        weft__timers_run(w, weft_now());
    struct uthread *g;
    if (load_relaxed(&weft__rt.gcount) && (g = global_get(w)))
        runq_put(w, g);
    weft_yield();
}

void weft_preempt_disable(void)
{
    struct uthread *ut = weft__current();
    if (!ut)
        return;
    /* Seen by the handler on this kernel thread once stored. */
    __atomic_store_n(&ut->nopreempt, ut->nopreempt + 1, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

void weft_preempt_enable(void)
{
    struct uthread *ut = weft__current();
    if (!ut)
        return;
    if (!ut->nopreempt)
        weft__panic("weft_preempt_enable: thread %llu '%s' has not disabled preemption",
                    (unsigned long long)ut->handle, ut->name);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&ut->nopreempt, ut->nopreempt - 1, __ATOMIC_RELAXED);
    if (!ut->nopreempt)
        weft__preempt_point(); /* a request that came meanwhile */
}
