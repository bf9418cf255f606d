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


/* ---- channels ---------------------------------------------------------- */

/*
 * A channel carries fixed-size elements between threads, as Go's channels
 * do. With capacity 0 it is a rendezvous: a send waits for a receiver and
 * the element goes straight from the sender's buffer to the receiver's.
 * With capacity c it is a ring of c elements: a send waits only while the
 * ring is full, a receive only while it is empty. Elements are copied
 * (elem_size bytes) in and out; send a pointer to share something bigger.
 *
 * Blocked senders and receivers are served first come, first served. Any
 * thread may call: weft threads park, kernel threads (main, a foreign
 * pthread) block on a futex, and both may wait on the same channel.
 *
 * Deadlines as everywhere: WEFT_FOREVER waits without limit; 0, or any time
 * already past (weft_after(0)), never blocks: the call completes at once or
 * gives -ETIMEDOUT (a try-send / try-receive). An operation ended by its
 * deadline did nothing; one that returns 0 did all of it.
 *
 * Closing is the sender's way to say "no more": receivers get what is still
 * buffered, then -EPIPE; senders get -EPIPE at once; every thread waiting
 * on the channel when it closes wakes with -EPIPE.
 */
typedef struct weft_chan weft_chan_t;

/* Largest element a channel carries, in bytes. */
#define WEFT_CHAN_ELEM_MAX 65536

/*
 * Makes a channel of elements of elem_size bytes with room for capacity of
 * them (0: rendezvous) and stores it in *ch. Returns 0; -EINVAL when ch is
 * NULL, elem_size is 0 or above WEFT_CHAN_ELEM_MAX, or the ring's size
 * overflows; -ENOMEM.
 */
WEFT_API int weft_chan_new(weft_chan_t **ch, size_t elem_size, size_t capacity);

/*
 * Sends the element at elem (elem_size bytes, copied): hands it to a waiting
 * receiver, else puts it in the ring, else waits for room or a receiver
 * until the deadline. Returns 0; -EPIPE when the channel is closed (before
 * or while waiting: the element was not sent); -ETIMEDOUT; -EINVAL when ch
 * or elem is NULL. May switch threads.
 */
WEFT_API int weft_chan_send(weft_chan_t *ch, const void *elem, int64_t deadline);

/*
 * Receives an element into elem (elem_size bytes; elem NULL: discard it):
 * the oldest in the ring, else one from a waiting sender, else waits until
 * the deadline. Returns 0; -EPIPE when the channel is closed and nothing is
 * left in it (a closed channel is drained first); -ETIMEDOUT; -EINVAL when
 * ch is NULL. May switch threads.
 */
WEFT_API int weft_chan_recv(weft_chan_t *ch, void *elem, int64_t deadline);

/*
 * Closes the channel: wakes every waiting sender and receiver with -EPIPE;
 * later sends give -EPIPE, later receives drain the ring, then give -EPIPE.
 * Returns 0; -EPIPE when it was already closed; -EINVAL when ch is NULL.
 */
WEFT_API int weft_chan_close(weft_chan_t *ch);

/*
 * Frees the channel (NULL: nothing). No thread may be using it, nor be
 * inside a weft_chan_select that names it: freeing a channel some thread
 * still waits on aborts the process with a message saying so, instead of
 * corrupting memory. Elements left in it are dropped.
 */
WEFT_API void weft_chan_free(weft_chan_t *ch);

/* The direction of one operation of weft_chan_select. 0 is never valid. */
enum { WEFT_SEND = 1, WEFT_RECV = 2 };

/* One operation of weft_chan_select. */
typedef struct weft_chan_op {
    weft_chan_t *ch; /* NULL: this operation is ignored (Go's nil channel) */
    int dir;         /* WEFT_SEND or WEFT_RECV */
    void *elem;      /* what to send, or where to receive (NULL: discard) */
} weft_chan_op;

/*
 * Completes exactly one of the n operations in ops: one that can complete
 * at once if any (chosen at random among those that can, so none starves),
 * else the first that becomes possible before the deadline. Returns the
 * index of the operation that completed; -ETIMEDOUT when none could before
 * the deadline (deadline 0: try once); -EINVAL for n < 0, ops NULL with
 * n > 0, a bad dir, or a send with elem NULL; -ENOMEM (only above 16
 * operations, for bookkeeping).
 *
 * A closed channel makes its operation ready, as in Go: a receive from a
 * closed, drained channel or a send to a closed channel "completes" with
 * -EPIPE, and select then sets that operation's ch to NULL, so a loop that
 * selects again ignores it and the caller can see which one it was (the
 * ch that became NULL). Operations whose ch is NULL are ignored; with none
 * left (or n == 0) select just waits for the deadline (WEFT_FOREVER: for
 * ever). The same channel may appear in several operations. May switch
 * threads.
 */
WEFT_API int weft_chan_select(weft_chan_op *ops, int n, int64_t deadline);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
