/*
 * t_preempt: threads that never yield are preempted.
 *
 *   spin        on one worker, a thread in `while (!stop) counter++;` (the
 *               program's own code, no weft call) does not keep a second
 *               thread from running and setting stop (without preemption
 *               the test hangs)
 *   flag        the same with a loop of weft calls (an uncontended weft
 *               mutex locked and unlocked) with the signal turned off
 *               (preempt_signal < 0): the request is honoured at the
 *               unlock; and again with the signal on
 *   registers   a computation that keeps integer, floating-point and
 *               vector state in registers is preempted several times (the
 *               thread that runs meanwhile on the same worker dirties the
 *               vector registers, the x87 stack and MXCSR) and still gives
 *               the result it gives with preemption disabled
 *   ymm         all 16 ymm registers, loaded with patterns, keep them across
 *               preemptions that land in the asm loop holding them
 *   fenv        a thread that rounds upward keeps its rounding mode across
 *               preemptions, and the thread that runs meanwhile on its
 *               kernel thread finds the default mode and x87 state
 *   disable     between weft_preempt_disable and weft_preempt_enable a
 *               thread spinning in its own code is not preempted: a second
 *               thread on the same worker does not run for the 60 ms until
 *               main (a kernel thread) stops it
 *   syscall     a plain nanosleep(2) in a weft thread, which stalls its
 *               worker, is not cut short by a preemption signal (the
 *               monitor leaves kernel threads asleep in the kernel alone;
 *               one EINTR is let pass, for the race the man page names)
 *   condwait    a thread flagged for preemption (it stalled its worker in a
 *               plain system call) then waits on a condition variable: the
 *               wait's own unlock does not yield it while it is queued
 *   off         with time_slice < 0, or WEFT_PREEMPT=off, nothing is
 *               preempted: a spinner keeps its only worker until main
 *               stops it
 *   misuse      weft_preempt_enable without disable aborts with a message
 *
 * Under ThreadSanitizer signals reach handlers late, so only the flag path
 * exists there; the cases that need the signal say so and are skipped.
 */
#include "check.h"

#include <fenv.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

#if defined(WEFT_TSAN)
#define HAVE_SIGNAL_PREEMPTION 0
#else
#define HAVE_SIGNAL_PREEMPTION 1
#endif

static int stop; /* atomic */

/* Spins in the program's own code, where the signal may preempt it,
 * until main (a plain kernel thread, so it runs whatever the worker does)
 * sets stop. */
static void spin_until_stop(void)
{
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED))
        __asm__ volatile("pause");
}

/* main's half: sets stop after ms. */
static void stop_after(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000};
    nanosleep(&ts, NULL);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
}

static int stopped(void)
{
    return __atomic_load_n(&stop, __ATOMIC_RELAXED);
}

static void *setter(void *arg)
{
    (void)arg;
    weft_sleep(weft_after(WEFT_MS(30)));
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* ---- spin ---- */

static void *spin_thread(void *arg)
{
    (void)arg;
    unsigned long counter = 0;
    while (!stopped())
        counter++;
    return U2P(counter);
}

static void run_against_setter(void *(*fn)(void *))
{
    __atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
    weft_t a, b;
    CHECK_ERR(weft_spawn(&a, fn, NULL, NULL), 0);
    CHECK_ERR(weft_spawn(&b, setter, NULL, NULL), 0);
    CHECK_ERR(weft_join(a, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(b, NULL, WEFT_FOREVER), 0);
}

static void spin_case(void *arg)
{
    (void)arg;
    run_against_setter(spin_thread);
    printf("spin: ok\n");
}

/* ---- flag ---- */

static weft_mutex_t m = WEFT_MUTEX_INIT;

static void *lock_loop(void *arg)
{
    (void)arg;
    while (!stopped()) {
        CHECK_ERR(weft_mutex_lock(&m), 0);
        CHECK_ERR(weft_mutex_unlock(&m), 0);
    }
    return NULL;
}

static void flag_case(void *arg)
{
    (void)arg;
    run_against_setter(lock_loop);
    printf("flag: ok\n");
}

/* ---- registers ---- */

static long moves; /* atomic: rounds of the yielding thread */

/* Between yields it dirties what a preempted thread must get back: the
 * vector registers (all 16 ymm, where there is AVX), the x87 stack and
 * control word, and MXCSR's rounding mode. It checks the floating-point
 * environment it finds is the clean one (a preempted thread's must not
 * leak), and restores its own before each yield, as weft asks. */
#if defined(__x86_64__)
__attribute__((target("avx"))) static void dirty_ymm(void)
{
    __asm__ volatile("vpcmpeqd %%ymm0, %%ymm0, %%ymm0\n\t"
#define D(n) "vmovdqa %%ymm0, %%ymm" #n "\n\t"
                     D(1) D(2) D(3) D(4) D(5) D(6) D(7) D(8) D(9) D(10) D(11) D(12) D(13)
                         D(14) D(15)
#undef D
                     "vzeroupper"
                     :
                     :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}
#endif

static int leaked; /* atomic: the mover found a foreign environment */

static void *mover(void *arg)
{
    (void)arg;
#if defined(__x86_64__)
    int avx = __builtin_cpu_supports("avx");
#endif
    while (!stopped()) {
        __atomic_fetch_add(&moves, 1, __ATOMIC_RELAXED);
#if defined(__x86_64__)
        unsigned mx = __builtin_ia32_stmxcsr();
        unsigned short cw;
        __asm__ volatile("fnstcw %0" : "=m"(cw));
        if ((mx & 0x6000) != 0 || (cw & 0x0c00) != 0) /* rounding: to nearest */
            __atomic_store_n(&leaked, 1, __ATOMIC_RELAXED);
        if (avx)
            dirty_ymm();
        volatile long double ld = 1.0L / 3.0L; /* uses the x87 stack */
        (void)ld;
        __builtin_ia32_ldmxcsr(mx | 0x4000); /* round up, for a moment */
        __builtin_ia32_ldmxcsr(mx);
#endif
        weft_yield();
    }
    return NULL;
}

/* The mover, then fn beside it on the same worker; both joined. */
static void mover_then(void *(*fn)(void *))
{
    __atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
    weft_t a, b;
    CHECK_ERR(weft_spawn(&b, mover, NULL, NULL), 0);
    weft_yield();
    CHECK_ERR(weft_spawn(&a, fn, NULL, NULL), 0);
    CHECK_ERR(weft_join(a, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(b, NULL, WEFT_FOREVER), 0);
}

struct state {
    uint64_t x[8];
    double d[4];
};

/* n rounds of work that keeps everything in registers; the compiler may
 * vectorize it. */
static __attribute__((noinline)) void crunch(struct state *s, long n)
{
    uint64_t x0 = s->x[0], x1 = s->x[1], x2 = s->x[2], x3 = s->x[3];
    uint64_t x4 = s->x[4], x5 = s->x[5], x6 = s->x[6], x7 = s->x[7];
    double d0 = s->d[0], d1 = s->d[1], d2 = s->d[2], d3 = s->d[3];
    for (long i = 0; i < n; i++) {
        x0 = x0 * 6364136223846793005u + 1;
        x1 = x1 * 6364136223846793005u + 3;
        x2 = (x2 ^ (x2 >> 7)) + x0;
        x3 = (x3 ^ (x3 << 9)) + x1;
        x4 += x2 >> 3;
        x5 ^= x3 + x4;
        x6 = x6 * 3 + x5;
        x7 += x6 ^ x0;
        d0 = d0 * 0.999999 + (double)(x0 >> 40);
        d1 = d1 * 0.999998 + (double)(x1 >> 40);
        d2 += d0 * 1e-9;
        d3 += d1 * 1e-9;
    }
    s->x[0] = x0, s->x[1] = x1, s->x[2] = x2, s->x[3] = x3;
    s->x[4] = x4, s->x[5] = x5, s->x[6] = x6, s->x[7] = x7;
    s->d[0] = d0, s->d[1] = d1, s->d[2] = d2, s->d[3] = d3;
}

#define CHUNK 200000L

static void *cruncher(void *arg)
{
    (void)arg;
    struct state s = {{1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 3, 4}};
    long chunks = 0;
    long before = __atomic_load_n(&moves, __ATOMIC_RELAXED);
    /* Until the mover has run during the work at least 3 times: that took
     * preemptions, since this thread never yields. */
    while (__atomic_load_n(&moves, __ATOMIC_RELAXED) - before < 3 && chunks < 1000000) {
        crunch(&s, CHUNK);
        chunks++;
    }
    struct state ref = {{1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 3, 4}};
    weft_preempt_disable();
    for (long i = 0; i < chunks; i++)
        crunch(&ref, CHUNK);
    weft_preempt_enable();
    CHECK(memcmp(&s, &ref, sizeof s) == 0);
    printf("registers: %ld chunks, the other thread moved %ld times\n", chunks,
           __atomic_load_n(&moves, __ATOMIC_RELAXED) - before);
    CHECK(__atomic_load_n(&moves, __ATOMIC_RELAXED) - before >= 3);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void registers_case(void *arg)
{
    (void)arg;
    mover_then(cruncher);
}

/* Every ymm register holds a pattern while the thread spins, in one asm
 * loop of the program's own code, until the mover has run 3 more times
 * (which took preemptions); then they are compared with the patterns. */
#if defined(__x86_64__)
__attribute__((target("avx"))) static int ymm_survive(long target)
{
    uint8_t in[16 * 32], out[16 * 32];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 37 + 11);
    __asm__ volatile(
#define L(n) "vmovdqu " #n "*32(%[in]), %%ymm" #n "\n\t"
        L(0) L(1) L(2) L(3) L(4) L(5) L(6) L(7) L(8) L(9) L(10) L(11) L(12) L(13) L(14) L(15)
#undef L
        "1: pause\n\t"
        "cmpq %[target], (%[moves])\n\t"
        "jl 1b\n\t"
#define S(n) "vmovdqu %%ymm" #n ", " #n "*32(%[out])\n\t"
        S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11) S(12) S(13) S(14) S(15)
#undef S
        "vzeroupper"
        :
        : [in] "r"(in), [out] "r"(out), [moves] "r"(&moves), [target] "r"(target)
        : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
          "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    return memcmp(in, out, sizeof in) == 0;
}

static void *ymm_thread(void *arg)
{
    (void)arg;
    long target = __atomic_load_n(&moves, __ATOMIC_RELAXED) + 3;
    CHECK(ymm_survive(target));
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void ymm_case(void *arg)
{
    (void)arg;
    if (!__builtin_cpu_supports("avx")) {
        printf("ymm: skipped (no AVX)\n");
        return;
    }
    mover_then(ymm_thread);
    printf("ymm: all 16 registers survived preemption\n");
}
#endif

/* ---- fenv ---- */

/* Rounds upward while it spins in its own code and is preempted 3 times:
 * it keeps its rounding mode, and the mover, which runs meanwhile on the
 * same kernel thread, never sees it. */
static void *upward_spinner(void *arg)
{
    (void)arg;
    CHECK_EQ(fesetround(FE_UPWARD), 0);
    long target = __atomic_load_n(&moves, __ATOMIC_RELAXED) + 3;
    volatile double one = 1.0, three = 3.0;
    double up = 0, prev = -1;
    while (__atomic_load_n(&moves, __ATOMIC_RELAXED) < target) {
        up = one / three; /* rounded up, if the mode held */
        CHECK(prev < 0 || up == prev);
        prev = up;
    }
    CHECK_EQ(fegetround(), FE_UPWARD);
    CHECK_EQ(fesetround(FE_TONEAREST), 0);
    CHECK(up > one / three); /* to nearest is below 1/3 here */
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void fenv_case(void *arg)
{
    (void)arg;
    mover_then(upward_spinner);
    CHECK_EQ(__atomic_load_n(&leaked, __ATOMIC_RELAXED), 0);
    printf("fenv: the rounding mode stayed with its thread\n");
}

/* ---- disable ---- */

/* Preemption disabled (nested) while it spins in its own code for 60 ms:
 * the mover on the same worker never runs meanwhile. */
static void *disabled_spinner(void *arg)
{
    (void)arg;
    weft_preempt_disable();
    weft_preempt_disable(); /* nested */
    long before = __atomic_load_n(&moves, __ATOMIC_RELAXED);
    spin_until_stop();
    CHECK_EQ(__atomic_load_n(&moves, __ATOMIC_RELAXED), before);
    weft_preempt_enable();
    CHECK_EQ(__atomic_load_n(&moves, __ATOMIC_RELAXED), before); /* still one level */
    weft_preempt_enable(); /* yields: a preemption was asked for meanwhile */
    return NULL;
}

/* Spins in its own code until stopped; the mover must not move. */
static void *undisturbed_spinner(void *arg)
{
    (void)arg;
    long before = __atomic_load_n(&moves, __ATOMIC_RELAXED);
    spin_until_stop();
    CHECK_EQ(__atomic_load_n(&moves, __ATOMIC_RELAXED), before);
    return NULL;
}

/* The mover, then fn, on one worker; main stops both after 60 ms. */
static void beside_mover(void *fn)
{
    __atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
    weft_t a, b;
    CHECK_ERR(weft_spawn(&b, mover, NULL, NULL), 0);
    CHECK_ERR(weft_spawn(&a, (void *(*)(void *))fn, NULL, NULL), 0);
    /* The mover runs first and yields to fn, which then holds the worker. */
    while (__atomic_load_n(&moves, __ATOMIC_RELAXED) == 0)
        sched_yield();
    stop_after(60);
    CHECK_ERR(weft_join(a, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(b, NULL, WEFT_FOREVER), 0);
}

static void disable_case(void *arg)
{
    (void)arg;
    beside_mover(disabled_spinner);
    printf("disable: ok\n");
}

/* ---- syscall ---- */

static void *plain_sleeper(void *arg)
{
    (void)arg;
    /* The monitor looks before it signals (weft_preempt(3)): a thread
     * asleep in the kernel is left alone. Were it signalled at each slice,
     * this 80 ms sleep would end in EINTR about 8 times. A thread that the
     * kernel kept off the CPU for a whole slice just before its call may
     * see one EINTR (the look and the signal are not atomic), as under any
     * signal: that is allowed once. */
    struct timespec ts = {0, 80 * 1000 * 1000};
    int eintr = 0;
    while (nanosleep(&ts, &ts) != 0) {
        CHECK_EQ(errno, EINTR);
        eintr++;
    }
    CHECK(eintr <= 1);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void syscall_case(void *arg)
{
    (void)arg;
    mover_then(plain_sleeper); /* the mover is runnable throughout */
    printf("syscall: ok\n");
}

/* ---- condwait ---- */

/* A thread that stalls its worker for two slices in a plain system call
 * (flagged by the monitor, not signalled: it sleeps in the kernel), then
 * waits on a condition variable: the unlock inside the wait, after the
 * thread is queued, must not honour the flag. */
static weft_mutex_t cm = WEFT_MUTEX_INIT;
static weft_cond_t cc = WEFT_COND_INIT;
static int cready; /* under cm */

static void *stall_then_wait(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_lock(&cm), 0);
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    while (!cready)
        CHECK_ERR(weft_cond_wait(&cc, &cm, WEFT_FOREVER), 0);
    CHECK_ERR(weft_mutex_unlock(&cm), 0);
    return NULL;
}

static void *signaller(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_lock(&cm), 0);
    cready = 1;
    CHECK_ERR(weft_cond_signal(&cc), 0);
    CHECK_ERR(weft_mutex_unlock(&cm), 0);
    return NULL;
}

static void condwait_case(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        cready = 0;
        weft_t a, b;
        CHECK_ERR(weft_spawn(&a, stall_then_wait, NULL, NULL), 0);
        CHECK_ERR(weft_spawn(&b, signaller, NULL, NULL), 0);
        CHECK_ERR(weft_join(a, NULL, WEFT_FOREVER), 0);
        CHECK_ERR(weft_join(b, NULL, WEFT_FOREVER), 0);
    }
    printf("condwait: ok\n");
}

/* ---- off ---- */

static void off_case(void *arg)
{
    (void)arg;
    beside_mover(undisturbed_spinner);
    printf("off: ok\n");
}

/* ---- misuse ---- */

static void *bad_enable(void *arg)
{
    (void)arg;
    weft_preempt_enable();
    return NULL;
}

static void misuse_case(void)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        weft_t t;
        CHECK_ERR(weft_spawn(&t, bad_enable, NULL, NULL), 0);
        weft_join(t, NULL, WEFT_FOREVER);
        _exit(0); /* not reached */
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    printf("misuse: ok (aborted, message above)\n");
}

int main(void)
{
    if (HAVE_SIGNAL_PREEMPTION) {
        check_with_workers(1, spin_case, NULL);
        check_with_workers(1, registers_case, NULL);
#if defined(__x86_64__)
        check_with_workers(1, ymm_case, NULL);
#endif
        check_with_workers(2, spin_case, NULL);
    } else {
        printf("spin, registers: skipped (ThreadSanitizer delivers signals late)\n");
    }
    if (HAVE_SIGNAL_PREEMPTION)
        check_with_workers(1, fenv_case, NULL);
    /* The flag alone: no signal, so only the unlock's preemption point
     * can make the looping thread yield. */
    check_with_config((weft_config){.workers = 1, .preempt_signal = -1}, flag_case, NULL);
    check_with_workers(1, flag_case, NULL);
    check_with_workers(1, disable_case, NULL);
    check_with_workers(1, syscall_case, NULL);
    check_with_workers(1, condwait_case, NULL);
    check_with_workers(2, condwait_case, NULL);
    check_with_config((weft_config){.workers = 1, .time_slice = -1}, off_case, NULL);
    setenv("WEFT_PREEMPT", "off", 1); /* the environment wins over the config */
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        weft_config cfg = {.workers = 1};
        CHECK_ERR(weft_init(&cfg), 0);
        off_case(NULL);
        fflush(NULL);
        _exit(0);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unsetenv("WEFT_PREEMPT");
    misuse_case();
    /* A plain kernel thread: both calls do nothing. */
    weft_preempt_disable();
    weft_preempt_enable();
    weft_preempt_enable();
    return 0;
}
