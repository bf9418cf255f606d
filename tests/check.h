/*
 * check.h - assertions for weft's test programs.
 *
 *   CHECK(cond)            cond must hold
 *   CHECK_EQ(a, b)         two integers must be equal (printed as long long)
 *   CHECK_ERR(expr, err)   expr must return err (0 or a negative errno)
 *   CHECK_ERR2(expr, e1, e2)  expr must return e1 or e2
 *   test_scale(n)          n times WEFT_TEST_SCALE (default 1.0), at least 1
 *   check_with_workers(n, fn, arg)
 *                          runs fn(arg) in a forked child whose runtime has n
 *                          workers; the child's failure fails the caller
 *   check_with_config(cfg, fn, arg)
 *                          the same with a whole weft_config
 *   check_count_dir(path)  entries of a directory (fds, tasks)
 *
 * A failed check flushes stdout, prints file:line, the expression and the
 * values, then calls abort(), so the runner reports "signal 6" with the
 * message above it; check_failed(fmt, ...) does the same for a test's own
 * message. They work on weft threads and plain kernel threads alike.
 */
#ifndef WEFT_TESTS_CHECK_H
#define WEFT_TESTS_CHECK_H

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

/* "ETIMEDOUT" for -ETIMEDOUT, "0" for 0, "?" for what has no name. */
static inline const char *check_errname(long long v)
{
    if (v == 0)
        return "0";
    if (v < 0 && v > -4096) {
        const char *s = strerrorname_np((int)-v);
        if (s)
            return s;
    }
    return "?";
}

/* Prints the message (after whatever stdout still buffers) and aborts. */
static inline void check_failed(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
static inline void check_failed(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    abort();
}

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond))                                                                           \
            check_failed("%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);              \
    } while (0)

#define CHECK_EQ(a, b)                                                                         \
    do {                                                                                       \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                        \
        if (check_a_ != check_b_)                                                              \
            check_failed("%s:%d: CHECK_EQ(%s, %s) failed: %lld != %lld\n", __FILE__, __LINE__, \
                         #a, #b, check_a_, check_b_);                                          \
    } while (0)

#define CHECK_ERR2(expr, e1, e2)                                                               \
    do {                                                                                       \
        long long check_r_ = (long long)(expr);                                                \
        long long check_1_ = (long long)(e1), check_2_ = (long long)(e2);                      \
        if (check_r_ != check_1_ && check_r_ != check_2_)                                      \
            check_failed("%s:%d: %s returned %lld (%s), expected %s\n", __FILE__, __LINE__,    \
                         #expr, check_r_, check_errname(check_r_),                             \
                         check_1_ == check_2_ ? #e1 : #e1 " or " #e2);                         \
    } while (0)

#define CHECK_ERR(expr, err) CHECK_ERR2(expr, err, err)

/* Stress sizes: default_n scaled by WEFT_TEST_SCALE, never below 1. */
static inline long test_scale(long default_n)
{
    double f = 1.0;
    const char *s = getenv("WEFT_TEST_SCALE");
    if (s && *s) {
        char *end;
        double v = strtod(s, &end);
        if (end != s && v > 0)
            f = v;
    }
    double n = (double)default_n * f;
    return n < 1 ? 1 : (long)n;
}

/* Forks; the child starts the runtime with cfg (WEFT_WORKERS and
 * WEFT_PREEMPT, which would win, are dropped), runs fn(arg) and exits 0.
 * Call it only while this process has not started the runtime (a fork of
 * a running runtime keeps just the forking kernel thread). */
static inline void check_with_config(weft_config cfg, void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        check_failed("fork: %s\n", strerror(errno));
    if (pid == 0) {
        unsetenv("WEFT_WORKERS");
        unsetenv("WEFT_PREEMPT");
        int r = weft_init(&cfg);
        if (r != 0)
            check_failed("weft_init(workers = %d) returned %d\n", cfg.workers, r);
        fn(arg);
        fflush(NULL);
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            check_failed("waitpid: %s\n", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            check_failed("child with %d workers died of signal %d\n", cfg.workers,
                         WTERMSIG(status));
        check_failed("child with %d workers exited with %d\n", cfg.workers, WEXITSTATUS(status));
    }
}

/* The same with the defaults but n workers. */
static inline void check_with_workers(int n, void (*fn)(void *), void *arg)
{
    check_with_config((weft_config){.workers = n}, fn, arg);
}

/* Entries of a directory, "." and ".." left out (/proc/self/fd, .../task). */
static inline int check_count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        check_failed("opendir %s: %s\n", path, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

#endif /* WEFT_TESTS_CHECK_H */
