/*
 * proctest.h - what the proc tests share: a few entries every test
 * registers, and the ThreadSanitizer option a fork child needs.
 *
 * A fork child of a multithreaded process starts kernel threads of its
 * own (its weft runtime, when an entry spawns); ThreadSanitizer kills such
 * a child unless die_after_fork is off, which the Makefile's TSan runs set
 * in TSAN_OPTIONS (a __tsan_default_options in the program is not seen by
 * gcc's shared TSan runtime).
 */
#ifndef WEFT_TESTS_PROCTEST_H
#define WEFT_TESTS_PROCTEST_H

#include "check.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <weft.h>

/* Copies the argument to the result. */
static ssize_t pt_echo(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx;
    if (len > cap)
        return -EMSGSIZE;
    memcpy(out, in, len);
    return (ssize_t)len;
}
WEFT_PROC_ENTRY("echo", pt_echo);

/* The child's pid, as 8 bytes. */
static ssize_t pt_pid(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len;
    int64_t pid = getpid();
    if (cap < sizeof pid)
        return -EMSGSIZE;
    memcpy(out, &pid, sizeof pid);
    return sizeof pid;
}
WEFT_PROC_ENTRY("pid", pt_pid);

/* Never returns: for deadlines, kills and stops to end. */
static ssize_t pt_hang(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out, (void)cap;
    for (;;)
        pause();
    return 0;
}
WEFT_PROC_ENTRY("hang", pt_hang);

/* Open fds of this process. */
static inline int pt_count_fds(void)
{
    return check_count_dir("/proc/self/fd") - 1; /* the DIR's own */
}

/* Does this process have a child, zombie or not? */
static inline int pt_has_children(void)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
    return r == 0; /* -1 with ECHILD: none at all */
}

static inline int64_t pt_call_pid(weft_proc_t *p)
{
    int64_t pid = 0;
    ssize_t n = weft_proc_call(p, "pid", NULL, 0, &pid, sizeof pid, weft_after(WEFT_SEC(30)));
    CHECK_EQ(n, (ssize_t)sizeof pid);
    return pid;
}

#endif
