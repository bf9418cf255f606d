/*
 * t_proc_crash.c - a child that crashes: SIGSEGV (a NULL dereference),
 * abort(), exit() and _exit() each give -ECHILD with the signal or exit
 * status in weft_proc_status, the parent goes on, and the next call gets
 * a fresh child. Limits: a child over its address-space limit fails its
 * call cleanly, one over its CPU limit is ended by SIGXCPU, and a seccomp
 * filter makes the denied system calls fail with EPERM and kills a child
 * that makes an x32 system call (which would get past the list).
 */
#include "proctest.h"

#include <sys/syscall.h>

static ssize_t crash(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)out, (void)cap;
    int how;
    CHECK_EQ(len, sizeof how);
    memcpy(&how, in, sizeof how);
    switch (how) {
    case 0: {
        volatile int *null = NULL;
        return *null;
    }
    case 1:
        abort();
    case 2:
        exit(3);
    default:
        _exit(5);
    }
}
WEFT_PROC_ENTRY("crash", crash);

/* Allocates and touches the number of MiB it is given. */
static ssize_t hog(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)len, (void)out, (void)cap;
    size_t mib;
    memcpy(&mib, in, sizeof mib);
    char *m = malloc(mib << 20);
    if (!m)
        return -ENOMEM;
    memset(m, 1, mib << 20);
    __asm__ volatile("" : : "r"(m) : "memory"); /* clang would elide it all */
    free(m);
    return 0;
}
WEFT_PROC_ENTRY("hog", hog);

static ssize_t spin(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out, (void)cap;
    for (volatile unsigned long i = 0;; i++)
        ;
    return 0;
}
WEFT_PROC_ENTRY("spin", spin);

static ssize_t ppid(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out, (void)cap;
    long r = syscall(SYS_getppid);
    return r < 0 ? -errno : 0;
}
WEFT_PROC_ENTRY("ppid", ppid);

/* getppid by its x32 number (x86-64 only): EPERM or ENOSYS where it
 * fails, 0 where it succeeds (a kernel with x32 and no filter). */
static ssize_t ppid_x32(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out, (void)cap;
    long r = syscall(SYS_getppid | 0x40000000L);
    return r < 0 ? -errno : 0;
}
WEFT_PROC_ENTRY("ppid_x32", ppid_x32);

static long vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

static void crashes(int mode)
{
    weft_proc_opts o = {.mode = mode};
    weft_proc_t *p;
    CHECK_ERR(weft_proc_new(&p, &o), 0);
    int64_t pid = pt_call_pid(p);
    weft_proc_status_t st;
    for (int how = 0; how < 4; how++) {
        CHECK_ERR(weft_proc_call(p, "crash", &how, sizeof how, NULL, 0, weft_after(WEFT_SEC(60))),
                  -ECHILD);
        CHECK_ERR(weft_proc_status(p, &st), 0);
        CHECK_EQ(st.running, 0);
        CHECK_EQ(st.killed, 0);
        switch (how) {
        case 0:
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
            /* The sanitizer reports the fault and exits non-zero. */
            CHECK(st.signal == SIGSEGV || (st.exited && st.code != 0));
#else
            CHECK_EQ(st.signal, SIGSEGV);
#endif
            break;
        case 1:
            CHECK_EQ(st.signal, SIGABRT);
            break;
        case 2:
            CHECK_EQ(st.exited, 1);
#if defined(WEFT_ASAN)
            /* exit() runs LeakSanitizer's check, which finds the parent's
             * memory the fork child dropped and exits with 1. */
            CHECK(st.code == 3 || st.code == 1);
#else
            CHECK_EQ(st.code, 3);
#endif
            break;
        default:
            CHECK_EQ(st.exited, 1);
            CHECK_EQ(st.code, 5);
        }
        CHECK(!pt_has_children());
        int64_t again = pt_call_pid(p);
        CHECK(again != pid);
        pid = again;
    }
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.started, 5);
    CHECK_ERR(weft_proc_free(p), 0);
}

static void limits(int mode)
{
    /* Address space: what the parent has now plus 64 MiB. */
    weft_proc_opts o = {.mode = mode, .limit_as = (uint64_t)vm_size() + (64u << 20)};
    weft_proc_t *p;
    CHECK_ERR(weft_proc_new(&p, &o), 0);
    size_t mib = 8;
    CHECK_ERR(weft_proc_call(p, "hog", &mib, sizeof mib, NULL, 0, WEFT_FOREVER), 0);
    mib = 512;
    /* malloc fails (a sanitizer's allocator may die instead): either way
     * the call fails and the parent goes on. */
    CHECK_ERR2(weft_proc_call(p, "hog", &mib, sizeof mib, NULL, 0, WEFT_FOREVER), -ENOMEM,
               -ECHILD);
    mib = 8;
    CHECK_ERR(weft_proc_call(p, "hog", &mib, sizeof mib, NULL, 0, WEFT_FOREVER), 0);
    CHECK_ERR(weft_proc_free(p), 0);

    /* seccomp: getppid fails with EPERM in the child only. */
    int deny[] = {SYS_getppid};
    o = (weft_proc_opts){.mode = mode, .seccomp_deny = deny, .nseccomp_deny = 1};
    CHECK_ERR(weft_proc_new(&p, &o), 0);
    CHECK_ERR(weft_proc_call(p, "ppid", NULL, 0, NULL, 0, WEFT_FOREVER), -EPERM);
    CHECK_ERR(weft_proc_call(p, "ppid", NULL, 0, NULL, 0, WEFT_FOREVER), -EPERM);
    CHECK(syscall(SYS_getppid) > 0);
#if defined(__x86_64__)
    /* ... and by its x32 number the filter kills the child (SIGSYS),
     * whether or not this kernel runs x32 calls at all. */
    CHECK_ERR(weft_proc_call(p, "ppid_x32", NULL, 0, NULL, 0, WEFT_FOREVER), -ECHILD);
    weft_proc_status_t st;
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK_EQ(st.signal, SIGSYS);
    CHECK_EQ(st.killed, 0);
    CHECK_ERR(weft_proc_call(p, "ppid", NULL, 0, NULL, 0, WEFT_FOREVER), -EPERM);
#endif
    CHECK_ERR(weft_proc_free(p), 0);
}

static void cpu_limit(void)
{
    weft_proc_opts o = {.limit_cpu = 1};
    weft_proc_t *p;
    CHECK_ERR(weft_proc_new(&p, &o), 0);
    CHECK_ERR(weft_proc_call(p, "spin", NULL, 0, NULL, 0, weft_after(WEFT_SEC(120))), -ECHILD);
    weft_proc_status_t st;
    CHECK_ERR(weft_proc_status(p, &st), 0);
    CHECK(st.signal == SIGXCPU || st.signal == SIGKILL);
    CHECK_EQ(st.killed, 0);
    CHECK_ERR(weft_proc_free(p), 0);
}

int main(void)
{
    crashes(WEFT_PROC_FORK);
    crashes(WEFT_PROC_EXEC);
    limits(WEFT_PROC_FORK);
    limits(WEFT_PROC_EXEC);
    cpu_limit();
    printf("ok\n");
    return 0;
}
