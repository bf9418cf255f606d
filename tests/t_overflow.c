/*
 * t_overflow: a thread that overflows its stack is reported and the process
 * aborts: stderr gets "weft: thread <id> '<name>' overflowed its <size>
 * stack" and the process dies by SIGABRT.
 *
 * Each case runs in a forked child (this process never starts the runtime)
 * whose stdout and stderr come back through a pipe:
 *
 *  - "deep": a thread with a 16 KiB stack recurses, each frame filling a
 *    volatile array so the compiler cannot turn the recursion into a loop;
 *  - the same with 40,000 other threads alive and parked, so the thread's
 *    stack may lie past the budget of mprotect guard pages (on a kernel
 *    without MADV_GUARD_INSTALL it is then canary-checked at every switch,
 *    which is why this recursion yields in every frame);
 *  - an unnamed thread with the default stack;
 *  - the first two again with MADV_GUARD_INSTALL hidden by a seccomp filter
 *    (madvise with that advice fails with EINVAL, as on a kernel before
 *    6.13), so the runtime falls back to mprotect guard pages and, past
 *    their budget (a quarter of vm.max_map_count, 16,382 by default), to
 *    canary-checked stacks: the 40,000 parked threads use up the budget. If
 *    seccomp is not available these two are skipped.
 *
 * Under AddressSanitizer the sanitizer's own SIGSEGV handler may see the
 * fault first and report a "stack-overflow" itself (exiting non-zero or dying
 * by a signal) before weft's handler runs; which one wins depends on the
 * order the two handlers were installed in, so there either report passes.
 */
#include "check.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static volatile int depth_limit = 1 << 30; /* never reached */

static __attribute__((noinline)) int recurse(int depth, int yield_each)
{
    volatile char frame[512];
    for (size_t i = 0; i < sizeof(frame); i++)
        frame[i] = (char)depth;
    if (yield_each)
        weft_yield();
    if (depth >= depth_limit)
        return frame[0];
    return recurse(depth + 1, yield_each) + frame[depth % 512];
}

static void *deep(void *arg)
{
    /* The report must name this very thread: the parent reads this line. */
    fprintf(stderr, "overflowing thread %llu\n", (unsigned long long)weft_self());
    fflush(stderr);
    recurse(0, (int)P2U(arg));
    return NULL;
}

static uint32_t gate, arrived;

static void *parked(void *arg)
{
    (void)arg;
    __atomic_fetch_add(&arrived, 1, __ATOMIC_RELEASE);
    while (__atomic_load_n(&gate, __ATOMIC_ACQUIRE) == 0)
        weft_park(&gate, 0, WEFT_FOREVER);
    return NULL;
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#if defined(__x86_64__)
#define THIS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#define EXIT_SKIPPED 77

/* Makes madvise(..., MADV_GUARD_INSTALL) fail with EINVAL in this process.
 * Exits with EXIT_SKIPPED where that cannot be done. */
static void hide_guard_install(void)
{
#ifdef THIS_AUDIT_ARCH
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 0, 3),
        /* the advice's low 32 bits (both architectures are little-endian) */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_GUARD_INSTALL, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(p != MAP_FAILED);
        CHECK_EQ(madvise(p, 4096, MADV_GUARD_INSTALL), -1);
        CHECK_EQ(errno, EINVAL);
        munmap(p, 4096);
        return;
    }
    fprintf(stderr, "seccomp: %s\n", strerror(errno));
#endif
    _exit(EXIT_SKIPPED);
}

/* Lines of /proc/self/maps: shows which kind of guard pages were made. */
static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    long lines = 0;
    for (int c; (c = getc(f)) != EOF;)
        lines += c == '\n';
    fclose(f);
    return lines;
}

/* Child side: runs one case; only returns if nothing overflowed.
 * which: 0 deep, 1 deep among many, 2 default stack; +3: without
 * MADV_GUARD_INSTALL. */
static void run_case(int which)
{
    if (which >= 3) {
        hide_guard_install();
        which -= 3;
    }
    if (which == 1) {
        uint32_t n = (uint32_t)test_scale(40000);
        for (uint32_t i = 0; i < n; i++)
            CHECK_ERR(weft_spawn(NULL, parked, NULL, NULL), 0);
        while (__atomic_load_n(&arrived, __ATOMIC_ACQUIRE) != n)
            usleep(1000);
        fprintf(stderr, "%u threads parked, %ld memory maps\n", n, count_maps());
    }
    weft_attr a = {.stack_size = 16384, .name = "deep"};
    weft_t t;
    CHECK_ERR(weft_spawn(&t, deep, U2P(which == 1), which == 2 ? NULL : &a), 0);
    weft_join(t, NULL, WEFT_FOREVER);
    fprintf(stderr, "the overflowing thread was joined\n");
}

struct outcome {
    int status;
    char *out; /* stdout + stderr of the child, NUL-terminated */
};

static struct outcome run_child(int which)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[1]);
        alarm(100); /* a missed overflow that hangs dies by SIGALRM */
        run_case(which);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    for (;;) {
        if (cap - len < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf != NULL);
        }
        ssize_t n = read(fds[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = 0;
    close(fds[0]);
    struct outcome o = {.out = buf};
    CHECK_EQ(waitpid(pid, &o.status, 0), pid);
    return o;
}

static void describe(const char *what, const struct outcome *o)
{
    if (WIFSIGNALED(o->status))
        printf("%s: child died by signal %d; its output:\n%s\n", what, WTERMSIG(o->status),
               o->out);
    else
        printf("%s: child exited with %d; its output:\n%s\n", what, WEXITSTATUS(o->status),
               o->out);
}

static void expect_report(const char *what, int which, const char *name_part, unsigned kib)
{
    struct outcome o = run_child(which);
    describe(what, &o);
    if (WIFEXITED(o.status) && WEXITSTATUS(o.status) == EXIT_SKIPPED) {
        printf("%s: skipped, seccomp is not available\n", what);
        free(o.out);
        return;
    }
    int ours = WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT &&
               strstr(o.out, "weft: thread ") && strstr(o.out, name_part) &&
               strstr(o.out, " stack");
    if (!ours && UNDER_ASAN) {
        int died = WIFSIGNALED(o.status) || (WIFEXITED(o.status) && WEXITSTATUS(o.status));
        /* Without a guard page (the canary case) the overflow runs into
         * the stack below, and ASan may catch the write in one of that
         * stack's redzones first: an underflow, from its point of view. */
        if (died && (strstr(o.out, "stack-overflow") || strstr(o.out, "stack-buffer-underflow"))) {
            printf("%s: reported by AddressSanitizer\n", what);
            free(o.out);
            return;
        }
    }
    CHECK(WIFSIGNALED(o.status));
    CHECK_EQ(WTERMSIG(o.status), SIGABRT);
    CHECK(strstr(o.out, "weft: thread ") != NULL);
    CHECK(strstr(o.out, name_part) != NULL);
    CHECK(strstr(o.out, " stack") != NULL);
    /* The whole line, with the thread's own id and its stack's size. */
    const char *line = strstr(o.out, "overflowing thread ");
    CHECK(line != NULL);
    unsigned long long id = strtoull(line + strlen("overflowing thread "), NULL, 10);
    CHECK(id != 0);
    char want[160];
    snprintf(want, sizeof want, "weft: thread %llu %s%u KiB stack", id, name_part, kib);
    CHECK(strstr(o.out, want) != NULL);
    free(o.out);
}

int main(void)
{
    expect_report("16 KiB stack", 0, "'deep' overflowed its ", 16);
    expect_report("16 KiB stack among many parked threads", 1, "'deep' overflowed its ", 16);
    expect_report("default stack, no name", 2, "'' overflowed its ", 64);
    expect_report("16 KiB stack, mprotect guard", 3, "'deep' overflowed its ", 16);
    expect_report("16 KiB stack among many parked threads, canary", 4,
                  "'deep' overflowed its ", 16);
    return 0;
}
