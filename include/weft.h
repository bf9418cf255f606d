/*
 * weft.h - user-level threads scheduled M:N over a few kernel threads.
 *
 * This is the only header a program includes. The contract every function
 * follows:
 *
 *  - Errors are returned as negative errno values (-ESRCH, -EINVAL,
 *    -ETIMEDOUT, ...). weft never reports through errno: a user thread can
 *    resume on another kernel thread, and errno belongs to the kernel thread.
 *  - Time is int64_t nanoseconds on CLOCK_MONOTONIC. Every call that may
 *    block takes an absolute deadline as its last parameter: WEFT_FOREVER
 *    waits without limit; 0 or any time already past never blocks (the call
 *    tries once).
 *  - A thread is named by a weft_t handle (slot index + generation), never a
 *    pointer. A stale or forged handle gives -ESRCH, never a crash.
 *  - Any thread may call: a weft thread blocks by parking (its worker runs
 *    other threads), a plain kernel thread (main, a foreign pthread) blocks
 *    on a futex. The runtime starts on first use.
 *
 * User __thread variables are per kernel thread, not per weft thread: a weft
 * thread may resume on another kernel thread after any call that may switch.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's exported functions (everything else is hidden). */
#if defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#define WEFT_NORETURN __attribute__((noreturn))
#else
#define WEFT_API
#define WEFT_NORETURN
#endif

/* ---- time ------------------------------------------------------------ */

#define WEFT_FOREVER ((int64_t)-1)
#define WEFT_US(n) ((int64_t)(n) * 1000)
#define WEFT_MS(n) ((int64_t)(n) * 1000000)
#define WEFT_SEC(n) ((int64_t)(n) * 1000000000)

/* Nanoseconds on CLOCK_MONOTONIC. */
WEFT_API int64_t weft_now(void);

/* weft_now() + ns: the deadline ns from now. */
WEFT_API int64_t weft_after(int64_t ns);

/* ---- runtime ----------------------------------------------------------- */

typedef struct weft_config {
    int workers;       /* kernel threads running user threads; 0: the CPUs the
                          process may use (WEFT_WORKERS in the environment
                          overrides both) */
    size_t stack_size; /* default stack of a new thread; 0: 64 KiB */
} weft_config;

/*
 * Starts the runtime with cfg (NULL: defaults). Optional: the runtime starts
 * by itself on first use. Returns 0, -EBUSY when the runtime already runs,
 * -EINVAL for a bad field, -ENOMEM / -EAGAIN when workers cannot be made.
 */
WEFT_API int weft_init(const weft_config *cfg);

/* ---- threads ----------------------------------------------------------- */

/* A thread handle: slot index (low 32 bits) and generation (high 32 bits).
 * 0 is never a thread. */
typedef uint64_t weft_t;

typedef struct weft_attr {
    size_t stack_size; /* 0: the runtime's default; rounded up to pages */
    const char *name;  /* copied (first 31 bytes); NULL: no name */
} weft_attr;

/*
 * Starts fn(arg) on a new user thread. attr may be NULL. Stores the handle
 * in *t (t may be NULL for a thread nobody joins: it is then detached).
 * Returns 0, -EINVAL (fn NULL, stack size absurd), -ENOMEM or -EAGAIN.
 */
WEFT_API int weft_spawn(weft_t *t, void *(*fn)(void *), void *arg, const weft_attr *attr);

/*
 * Waits until thread t ends and stores its result in *result (may be NULL),
 * then frees the handle. Returns 0; -ESRCH for a stale, unknown or already
 * joined handle; -EINVAL if t is detached or another join is in progress;
 * -EDEADLK if t is the caller; -ETIMEDOUT when the deadline passes first
 * (t can still be joined later). May switch threads.
 */
WEFT_API int weft_join(weft_t t, void **result, int64_t deadline);

/*
 * Lets t's resources go when it ends; t can no longer be joined.
 * Returns 0, -ESRCH for a stale handle, -EINVAL if already detached or
 * being joined.
 */
WEFT_API int weft_detach(weft_t t);

/* The calling weft thread's handle; 0 on a thread that is not a weft thread. */
WEFT_API weft_t weft_self(void);

/* Lets other runnable threads run. On a plain kernel thread: sched_yield. */
WEFT_API void weft_yield(void);

/* Ends the calling weft thread with result. Aborts when called outside one. */
WEFT_API WEFT_NORETURN void weft_exit(void *result);

/* ---- parking: a futex for user threads --------------------------------- */

/*
 * If *addr == expected, blocks the caller until weft_unpark(addr, ...) wakes
 * it or the deadline passes. Returns 0 when woken, -EAGAIN if *addr differed,
 * -ETIMEDOUT when the deadline passed. Spurious wake-ups do not happen, but
 * callers re-check their condition, as with any futex. May switch threads.
 */
WEFT_API int weft_park(const uint32_t *addr, uint32_t expected, int64_t deadline);

/* Wakes up to n threads parked on addr (n < 0: all). Returns how many. */
WEFT_API int weft_unpark(const uint32_t *addr, int n);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
