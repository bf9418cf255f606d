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
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

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

/* weft_now() + ns: the deadline ns from now (saturating at INT64_MAX, which
 * is as good as for ever). Every deadline in this API is absolute on this
 * clock; any negative deadline, not only WEFT_FOREVER, means no deadline. */
WEFT_API int64_t weft_after(int64_t ns);

/*
 * Sleeps until the deadline: a weft thread parks (its worker runs others)
 * and is woken by its worker's timer; a kernel thread sleeps in the kernel.
 * Returns 0, never before the deadline; at once for a deadline already
 * past. WEFT_FOREVER sleeps for ever. -ECANCELED when the caller is
 * stopped (weft_stop), before or during the sleep. May switch threads.
 */
WEFT_API int weft_sleep(int64_t deadline);

/* ---- runtime ----------------------------------------------------------- */

typedef struct weft_config {
    int workers;       /* kernel threads running user threads; 0: the CPUs the
                          process may use (WEFT_WORKERS in the environment
                          overrides both) */
    size_t stack_size; /* default stack of a new thread; 0: 64 KiB */
    int64_t time_slice; /* ns a thread may run before it is preempted; 0:
                           10 ms; negative: never preempt */
    int preempt_signal; /* 0: preempt by signal where it is safe to (see
                           weft_preempt_disable); negative: only at weft
                           calls (WEFT_PREEMPT in the environment wins) */
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

/* A group of threads that can be stopped and waited for together
 * (weft_group_new, below). */
typedef struct weft_group weft_group_t;

/* Zero-initialize it (weft_attr a = {0}, or designated initializers):
 * every field's zero is its default. */
typedef struct weft_attr {
    size_t stack_size;    /* 0: the runtime's default; rounded up to pages */
    const char *name;     /* copied (first 31 bytes); NULL: no name */
    weft_group_t *group;  /* the group the thread joins; NULL: its
                             spawner's (none for a plain kernel thread's) */
} weft_attr;

/*
 * Starts fn(arg) on a new user thread. attr may be NULL. Stores the handle
 * in *t (t may be NULL for a thread nobody joins: it is then detached).
 * Returns 0, -EINVAL (fn NULL, or a stack size outside 16 KiB .. 1 GiB),
 * or -ENOMEM (no memory for the stack, or the handle table is full). The
 * first spawn starts the runtime (weft_init); if that fails the process
 * aborts with a message naming the error.
 */
WEFT_API int weft_spawn(weft_t *t, void *(*fn)(void *), void *arg, const weft_attr *attr);

/*
 * Waits until thread t ends and stores its result in *result (may be NULL),
 * then frees the handle. Returns 0; -ESRCH for a stale, unknown or already
 * joined handle; -EINVAL if t is detached or another join is in progress;
 * -EDEADLK if t is the caller; -ETIMEDOUT when the deadline passes first
 * (t can still be joined later); -ECANCELED for a stopped caller whose
 * join has a deadline and would wait (an untimed join keeps working).
 * May switch threads.
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

/* ---- blocking calls and preemption ------------------------------------ */

/*
 * Runs fn(arg) where it may block its kernel thread (a library's own waits,
 * a system call weft has no wrapper for, a regular file) without stalling
 * other weft threads: the worker is marked, and if fn lasts longer than
 * about 20 us the monitor gives the worker's other threads to a spare
 * kernel thread. Returns what fn returned; -EINVAL if fn is NULL. Inside
 * fn the caller is a plain kernel thread to weft: weft calls block the
 * kernel thread, weft_self() is 0. From a plain kernel thread it just
 * calls fn. A stopped thread gets -ECANCELED without fn being run; a stop
 * while fn runs does not cut it short. May switch threads (after fn
 * returns).
 */
WEFT_API int64_t weft_blocking(int64_t (*fn)(void *), void *arg);

/*
 * A weft thread that runs a whole time slice without a weft call that
 * switches is preempted: at once if it is in the program's own code (the
 * main executable's), else at its next weft call. Between disable and
 * enable (nested; each disable needs its enable) the calling thread is not
 * preempted; weft calls that block still switch. enable without disable
 * aborts with a message. No-ops on a plain kernel thread.
 */
WEFT_API void weft_preempt_disable(void);
WEFT_API void weft_preempt_enable(void);

/* ---- stopping threads and groups ----------------------------------------
 *
 * A stop asks a thread to end soon and nicely: it is not killed, but its
 * calls that would block fail with -ECANCELED, so it unwinds through its
 * own error paths, releasing what it holds. Exactly:
 *
 *  - Cut short (-ECANCELED), timed or not: sleeps, channel send, receive
 *    and select, semaphore and wait-group waits, every fd wrapper's wait
 *    for readiness, name lookups in the TCP helpers. A call already
 *    blocked in one is woken at once.
 *  - Cut short only when given a deadline other than WEFT_FOREVER: mutex,
 *    rwlock and condition-variable waits, weft_park, weft_join and
 *    weft_group_wait. Untimed, they keep working, as do weft_mutex_lock,
 *    weft_once and weft_barrier_wait, so a stopping thread can still clean
 *    up and wait for its children.
 *  - A call that can complete without waiting still completes: data
 *    already buffered is read, a free mutex is taken, a waiting channel
 *    partner is served. Where a stopped call would have to wait it fails
 *    at once, whatever its deadline (also 0: -ECANCELED, not -ETIMEDOUT).
 *  - With WEFT_STOP_FILES, every fd call of the thread (the wrappers,
 *    weft_accept, weft_connect, weft_fdwait, the TCP helpers) fails with
 *    -ECANCELED before trying, except weft_close.
 *  - An fd marked with weft_fd_exempt works in every case, as if no stop
 *    had been requested: a stopping thread's log.
 *
 * A stop is sticky (it is never undone) and idempotent; a later stop may
 * add WEFT_STOP_FILES. A wake-up and a stop that race are never both lost
 * nor both delivered: the call returns either what woke it (and the next
 * call that would wait fails) or -ECANCELED (and what would have woken it
 * stays for someone else: the element in the channel, the unit in the
 * semaphore, the data in the socket).
 *
 * Groups. Every weft thread belongs to at most one group, fixed at spawn:
 * weft_attr.group, else its spawner's. Groups nest. Stopping a group stops
 * every thread in it and in its subgroups, and every thread spawned into
 * any of them later (it starts stopped), and makes subgroups created later
 * stopped too.
 *
 * Plain kernel threads (main, foreign pthreads) are not weft threads: they
 * belong to no group, cannot be named by a weft_t, are never stopped, and
 * weft_stopping() returns 0 on them; every call keeps working there. They
 * may stop weft threads and groups, and wait for groups. A thread they
 * spawn belongs to no group unless its attr names one.
 */

/* Flags of weft_stop and weft_group_stop. */
#define WEFT_STOP_FILES 1u /* fd calls fail too, but weft_close and exempt fds */

/*
 * Makes a group in *g, a subgroup of parent (NULL: of the caller's group;
 * a top-level group when the caller has none). A subgroup of a stopped
 * group starts stopped. Returns 0, -EINVAL (g NULL), -ENOMEM.
 */
WEFT_API int weft_group_new(weft_group_t **g, weft_group_t *parent);

/*
 * Stops every thread in g and its subgroups, now and spawned later (see
 * above). flags: 0 or WEFT_STOP_FILES. Returns 0 (also when g was stopped
 * already), -EINVAL (g NULL, other flags). Never blocks for long: it
 * takes internal locks and a mutex, and wakes the stopped threads.
 */
WEFT_API int weft_group_stop(weft_group_t *g, unsigned flags);

/*
 * Waits until no thread remains in g or its subgroups (every one has
 * returned from its function or called weft_exit). Returns 0 (at once for
 * an empty group), -ETIMEDOUT, -ECANCELED (a stopped caller, timed wait
 * only), -EDEADLK when the caller is itself in g or a subgroup, -EINVAL.
 * A waiter woken by the group emptying returns 0 even if a thread was
 * spawned into it again meanwhile. May switch threads.
 */
WEFT_API int weft_group_wait(weft_group_t *g, int64_t deadline);

/*
 * Frees an empty group. -EBUSY while threads remain in it or its
 * subgroups, or while it has subgroups (free them first); -EINVAL for
 * NULL. The group must not be used again, and no thread may spawn into it
 * or start waiting on it while this runs.
 */
WEFT_API int weft_group_free(weft_group_t *g);

/*
 * Stops thread t (see above). flags: 0 or WEFT_STOP_FILES. Returns 0 (also
 * for a thread that has finished but is not yet joined, and for t the
 * caller itself), -ESRCH for a stale or unknown handle, -EINVAL for other
 * flags.
 */
WEFT_API int weft_stop(weft_t t, unsigned flags);

/* 1 if a stop was requested for the calling weft thread, else 0 (always 0
 * on a plain kernel thread). */
WEFT_API int weft_stopping(void);

/*
 * Marks the open file at fd (exempt != 0) as one that stops do not
 * affect, or clears the mark: calls on it behave for a stopped thread as
 * for any other, WEFT_STOP_FILES or not. For logs. The mark belongs to the
 * file weft knows by that number: weft_close clears it, and so does a new
 * file weft_accept or the TCP helpers put at the number. Returns 0,
 * -EBADF (not an open fd), -ENOMEM.
 */
WEFT_API int weft_fd_exempt(int fd, int exempt);

/* ---- parking: a futex for user threads --------------------------------- */

/*
 * If *addr == expected, blocks the caller until weft_unpark(addr, ...) wakes
 * it or the deadline passes. Returns 0 when woken, -EAGAIN if *addr differed,
 * -ETIMEDOUT when the deadline passed, -ECANCELED when the caller is
 * stopped and the park has a deadline (an untimed park is not cut short). Spurious wake-ups do not happen, but
 * callers re-check their condition, as with any futex. May switch threads.
 */
WEFT_API int weft_park(const uint32_t *addr, uint32_t expected, int64_t deadline);

/* Wakes up to n threads parked on addr (n < 0: all). Returns how many. */
WEFT_API int weft_unpark(const uint32_t *addr, int n);

/* ---- locks and other synchronization ------------------------------------
 *
 * Every primitive below parks a weft thread (its worker goes on running
 * others) and blocks a plain kernel thread on a futex; both kinds may wait
 * on the same object. A waiter is woken exactly once: by the matching
 * release, or by its deadline; a woken waiter that loses the race for the
 * object waits again, so waits are not strictly FIFO. A stopped thread's
 * waits follow the stop rules (weft_stop): semaphore and wait-group waits
 * give -ECANCELED; mutex, rwlock and condition waits only when timed. A
 * deadline of 0 (or
 * any time past) makes a call try once without parking (a timed mutex lock
 * may still spin briefly while the owner runs). A NULL object pointer gives
 * -EINVAL from every call. The objects hold no resources: statically
 * initialized ones need no init, and none needs a destroy (the destroy
 * calls only report misuse). An object must not be moved or copied while
 * in use.
 */

/*
 * A mutex. The uncontended lock and unlock are one atomic each. A contended
 * locker spins only while the owner is running on another worker, then
 * parks; a waiter that has waited over a millisecond is handed the lock
 * directly at the next unlock, so no waiter starves. Error-checking:
 * relocking gives -EDEADLK, unlocking a mutex the caller does not hold (or
 * an unlocked one) gives -EPERM. Not recursive.
 */
typedef struct weft_mutex {
    uint32_t state;  /* private */
    uint32_t spare_;
    uintptr_t owner; /* private */
} weft_mutex_t;
#define WEFT_MUTEX_INIT {0, 0, 0}

WEFT_API int weft_mutex_init(weft_mutex_t *m);
/* -EBUSY if the mutex is locked. */
WEFT_API int weft_mutex_destroy(weft_mutex_t *m);
/* 0, or -EDEADLK if the caller holds it, -EINVAL for NULL. May switch threads. */
WEFT_API int weft_mutex_lock(weft_mutex_t *m);
/* 0 or -EBUSY (also when the caller holds it). Never blocks. */
WEFT_API int weft_mutex_trylock(weft_mutex_t *m);
/* As lock, or -ETIMEDOUT when the deadline passes first, or -ECANCELED
 * when the caller is stopped and would wait (lock itself keeps working). */
WEFT_API int weft_mutex_timedlock(weft_mutex_t *m, int64_t deadline);
/* 0, or -EPERM if the caller does not hold m. */
WEFT_API int weft_mutex_unlock(weft_mutex_t *m);

/*
 * A condition variable, Mesa semantics: a woken waiter re-acquires the
 * mutex and must re-check its condition. wait atomically releases m and
 * parks; it returns holding m, always: 0 when signalled, -ETIMEDOUT when
 * the deadline passed, -ECANCELED (without releasing m) for a stopped
 * caller with a deadline, -EPERM (without waiting) if the caller does not hold
 * m. A signal wakes the longest waiter; signalling with no waiter is a
 * no-op. Signal while holding m for predictable wake-ups.
 */
typedef struct weft_cond {
    uint32_t waiters; /* private: nonzero while someone may wait */
} weft_cond_t;
#define WEFT_COND_INIT {0}

WEFT_API int weft_cond_init(weft_cond_t *c);
/* -EBUSY if threads wait on it. */
WEFT_API int weft_cond_destroy(weft_cond_t *c);
WEFT_API int weft_cond_wait(weft_cond_t *c, weft_mutex_t *m, int64_t deadline);
/* Wake one waiter / all waiters. Return 0. */
WEFT_API int weft_cond_signal(weft_cond_t *c);
WEFT_API int weft_cond_broadcast(weft_cond_t *c);

/*
 * A counting semaphore. wait takes one unit, parking while there is none:
 * 0, -ETIMEDOUT, or -ECANCELED when the caller is stopped (with or
 * without a deadline). post gives one back and wakes a waiter: 0, or
 * -EOVERFLOW at WEFT_SEM_MAX.
 */
typedef struct weft_sem {
    uint32_t value;   /* private */
    uint32_t waiters; /* private */
} weft_sem_t;
#define WEFT_SEM_MAX 0x7fffffffu
#define WEFT_SEM_INIT(v) {(v), 0}

/* -EINVAL if value > WEFT_SEM_MAX. */
WEFT_API int weft_sem_init(weft_sem_t *s, unsigned value);
/* -EBUSY if threads wait on it. */
WEFT_API int weft_sem_destroy(weft_sem_t *s);
WEFT_API int weft_sem_wait(weft_sem_t *s, int64_t deadline);
WEFT_API int weft_sem_post(weft_sem_t *s);
/* The units available now (a snapshot). */
WEFT_API unsigned weft_sem_value(const weft_sem_t *s);

/*
 * A readers-writer lock that starves neither side. Once a writer waits,
 * new readers wait behind it; when that writer unlocks, every reader that
 * arrived during its turn gets in before the next writer. A thread that
 * holds a read lock must not take it again while a writer may wait (that
 * deadlocks, as in Go). unlock releases whichever the caller holds: 0, or
 * -EPERM when nobody holds it or another thread holds it for writing (a
 * thread holding nothing while others hold read locks cannot be told from
 * a reader, and releases one of theirs: do not).
 * Write-locking twice gives -EDEADLK. rdlock gives -EAGAIN past 16 million
 * readers holding it, or waiting.
 */
typedef struct weft_rwlock {
    uint64_t state;      /* private */
    uint32_t rseq, wseq; /* private */
    weft_mutex_t wlock;  /* private: one writer at a time */
    uintptr_t writer;    /* private */
} weft_rwlock_t;
#define WEFT_RWLOCK_INIT {0, 0, 0, WEFT_MUTEX_INIT, 0}

WEFT_API int weft_rwlock_init(weft_rwlock_t *rw);
/* -EBUSY if it is held. */
WEFT_API int weft_rwlock_destroy(weft_rwlock_t *rw);
WEFT_API int weft_rwlock_rdlock(weft_rwlock_t *rw, int64_t deadline);
WEFT_API int weft_rwlock_wrlock(weft_rwlock_t *rw, int64_t deadline);
WEFT_API int weft_rwlock_unlock(weft_rwlock_t *rw);

/*
 * A cyclic barrier for count threads: wait returns once count threads have
 * called it in this round; 1 in exactly one of them, 0 in the others. The
 * barrier is then ready for the next round.
 */
typedef struct weft_barrier {
    uint32_t count, arrived, gen, leaving; /* private */
} weft_barrier_t;

/* -EINVAL if count is 0. */
WEFT_API int weft_barrier_init(weft_barrier_t *b, unsigned count);
/* -EBUSY while a round is under way, and also while threads released by
 * the last round are still on their way out of weft_barrier_wait (the
 * serial thread may get -EBUSY for a moment: retry). Once it returns 0
 * the barrier may be freed or initialized again. Never blocks. */
WEFT_API int weft_barrier_destroy(weft_barrier_t *b);
WEFT_API int weft_barrier_wait(weft_barrier_t *b);

/*
 * Runs fn exactly once per weft_once_t; every caller returns after fn has
 * returned: 0, or -EDEADLK if fn itself calls weft_once on the same object.
 */
typedef struct weft_once {
    uint32_t state;   /* private */
    uint32_t spare_;
    uintptr_t runner; /* private */
} weft_once_t;
#define WEFT_ONCE_INIT {0, 0, 0}

WEFT_API int weft_once(weft_once_t *o, void (*fn)(void));

/*
 * A wait group, as Go's sync.WaitGroup: add counts work, done (add -1)
 * finishes one, wait parks until the count is zero. A count that would go
 * negative gives -EINVAL and is not applied; past INT32_MAX, -EOVERFLOW.
 * Every waiter parked when the count reaches zero returns 0, even if add
 * makes it nonzero again before the waiter runs, so a group may be reused
 * at once. wait gives -ETIMEDOUT, or -ECANCELED for a stopped caller.
 */
typedef struct weft_wg {
    uint32_t count;   /* private: an int32_t */
    uint32_t waiters; /* private */
} weft_wg_t;
#define WEFT_WG_INIT {0, 0}

WEFT_API int weft_wg_add(weft_wg_t *wg, int n);
WEFT_API int weft_wg_done(weft_wg_t *wg);
WEFT_API int weft_wg_wait(weft_wg_t *wg, int64_t deadline);

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
 * or while waiting: the element was not sent); -ETIMEDOUT; -ECANCELED when
 * the caller is stopped and would wait (not sent); -EINVAL when ch
 * or elem is NULL. May switch threads.
 */
WEFT_API int weft_chan_send(weft_chan_t *ch, const void *elem, int64_t deadline);

/*
 * Receives an element into elem (elem_size bytes; elem NULL: discard it):
 * the oldest in the ring, else one from a waiting sender, else waits until
 * the deadline. Returns 0; -EPIPE when the channel is closed and nothing is
 * left in it (a closed channel is drained first); -ETIMEDOUT; -ECANCELED
 * when the caller is stopped and would wait; -EINVAL when
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
 * index of the operation that completed; -ECANCELED when the caller is
 * stopped and none can complete at once; -ETIMEDOUT when none could before
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

/* ---- I/O ----------------------------------------------------------------
 *
 * Wrappers of the POSIX calls on fds (sockets, pipes, ttys, eventfds: what
 * epoll can watch) that park the calling weft thread instead of blocking
 * its worker. Each tries the call; while it would block (EAGAIN), the
 * thread waits for the fd to become ready, until the deadline. Results are
 * POSIX's with errors as negative errno: a read returns what one read(2)
 * returned (0 at end of file, a short count when less was there), a write
 * what one write(2) wrote once the fd was writable (a short count when the
 * kernel took only part; the wrappers do not loop); -ECONNRESET, -EPIPE
 * and the rest as the kernel reports them. -ETIMEDOUT when the deadline
 * passes first, never before it; a deadline of 0 tries once. A stopped
 * weft thread's call still makes its try but gives -ECANCELED where it
 * would wait; with WEFT_STOP_FILES it gives -ECANCELED at once (weft_close
 * excepted), and an fd marked with weft_fd_exempt ignores stops.
 *
 * The first wrapper call on a fd sets O_NONBLOCK on its open file (shared
 * with every fd duplicated from it and with other processes holding it)
 * and weft remembers that by fd number; close such fds with weft_close,
 * which also wakes their waiters. A fd closed with close(2) leaves weft's
 * record of the number behind, and a later file given that number must
 * then not be used with the wrappers (those made by weft_accept,
 * weft_tcp_listen and weft_tcp_connect are fine: weft starts them afresh).
 *
 * From a plain kernel thread (main, a foreign pthread) the wrappers block
 * that kernel thread in poll(2); weft_close wakes it within 50 ms.
 * Regular files are always "ready" to the kernel: reading one blocks the
 * worker, as read(2) would.
 */

/* Events of weft_fdwait; the values of poll(2)'s POLLIN and POLLOUT. */
enum { WEFT_IN = 1, WEFT_OUT = 4 };

/*
 * Waits until fd is ready for any of events (WEFT_IN | WEFT_OUT) and
 * returns the ready ones among them (an error or hang-up on the fd makes
 * every asked event ready, as poll(2) does). -EINVAL for events naming
 * neither or other bits, -EBADF for a bad or weft_close'd fd, -ETIMEDOUT.
 * May switch threads.
 */
WEFT_API int weft_fdwait(int fd, int events, int64_t deadline);

/* read(2), readv(2), write(2), writev(2) as described above. n: iovecs
 * (0 to IOV_MAX, else -EINVAL). On a socket the writes are made with
 * MSG_NOSIGNAL: a peer that has gone gives -EPIPE, never SIGPIPE.
 * May switch threads. */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t len, int64_t deadline);
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t len, int64_t deadline);
WEFT_API ssize_t weft_readv(int fd, const struct iovec *iov, int n, int64_t deadline);
WEFT_API ssize_t weft_writev(int fd, const struct iovec *iov, int n, int64_t deadline);

/* recv(2), send(2), recvfrom(2), sendto(2), recvmsg(2), sendmsg(2); flags
 * as theirs (MSG_DONTWAIT makes no difference: the fd is non-blocking).
 * send* add MSG_NOSIGNAL: a closed peer gives -EPIPE, never SIGPIPE.
 * May switch threads. */
WEFT_API ssize_t weft_recv(int fd, void *buf, size_t len, int flags, int64_t deadline);
WEFT_API ssize_t weft_send(int fd, const void *buf, size_t len, int flags, int64_t deadline);
WEFT_API ssize_t weft_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                               socklen_t *addrlen, int64_t deadline);
WEFT_API ssize_t weft_sendto(int fd, const void *buf, size_t len, int flags,
                             const struct sockaddr *addr, socklen_t addrlen, int64_t deadline);
WEFT_API ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline);
WEFT_API ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline);

/*
 * accept4(2) on a listening socket: waits for a connection and returns its
 * fd, always non-blocking (flags: SOCK_CLOEXEC; SOCK_NONBLOCK is implied).
 * May switch threads.
 */
WEFT_API int weft_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags,
                         int64_t deadline);

/*
 * connect(2), waiting until the connection is made or fails: 0, or the
 * connection's error (-ECONNREFUSED, ...), or -ETIMEDOUT, after which the
 * socket may still be connecting: close it. An AF_UNIX listener whose
 * backlog is full (EAGAIN) is retried, sleeping 50 us to 10 ms between
 * tries, until the deadline. May switch threads.
 */
WEFT_API int weft_connect(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline);

/*
 * Closes fd: every thread waiting on it in a wrapper wakes with -EBADF,
 * the fd leaves the epoll set, then close(2). Returns 0 or close's error
 * (-EBADF for a fd that is not open). A wrapper called on fd afterwards
 * gets -EBADF from the kernel, until the number is reused.
 */
WEFT_API int weft_close(int fd);

/*
 * A TCP socket listening on host:port (host NULL or "": every address,
 * IPv4 and IPv6; port 0: the kernel picks one, see getsockname) with
 * SO_REUSEADDR and the given backlog (0 or more; the kernel caps it at
 * net.core.somaxconn). Returns the fd (non-blocking, close-on-exec), or a
 * negative errno (-EINVAL for a bad port or a negative backlog, -ENOENT for
 * a host name that does not resolve). A name, not a numeric address, is
 * looked up on a separate kernel thread while the caller parks.
 * May switch threads.
 */
WEFT_API int weft_tcp_listen(const char *host, int port, int backlog);

/*
 * A TCP connection to host:port (host NULL or "": 127.0.0.1; port 1 to
 * 65535, else -EINVAL): each address host resolves to is tried in turn
 * until one connects or the deadline passes. Returns the fd
 * (non-blocking, close-on-exec, TCP_NODELAY set), or the last address's
 * error, -ENOENT when host does not resolve, -ETIMEDOUT. Names are looked
 * up on a separate kernel thread (getaddrinfo) while the caller parks;
 * numeric addresses are not looked up. May switch threads.
 */
WEFT_API int weft_tcp_connect(const char *host, int port, int64_t deadline);


/* ---- isolated calls: work in a child process ---------------------------
 *
 * A weft_proc_t is a child process of the same binary that runs named
 * entry functions for the parent: code that may hang or crash (a plugin, a
 * PAM module, a parser fed hostile input) runs where a deadline can always
 * end it by killing a process, and where its crash cannot take the caller
 * down. Parent and child share one memory region holding two rings of
 * bytes (requests, responses) and a dictionary area both may use;
 * arguments and results are copied through the rings as bytes, streamed,
 * so they may be larger than the rings.
 *
 * Two modes. WEFT_PROC_FORK (the default): the child is a copy-on-write
 * fork of the parent taken when it starts, so it sees the parent's memory
 * as it was then; the region is an anonymous MAP_SHARED mapping. Its weft
 * runtime starts afresh (one worker) at its first weft call.
 * WEFT_PROC_EXEC: the child is a fresh exec of /proc/self/exe, so the
 * loader runs anew and the child holds none of the parent's memory; the
 * region is a memfd. Either way the child keeps only fds 0-2, the fds
 * opts.keep_fds names and weft's own channel fd; every other fd is closed.
 *
 * A child starts at the first call and again at the first call after it
 * died. Calls to one weft_proc_t are served one at a time (one child runs
 * one call chain): concurrent callers queue, in no particular order, on a
 * lock, and their deadlines also bound that wait. Make one weft_proc_t per
 * caller for parallel work.
 *
 * In the parent a caller waits by parking (a weft thread; its worker runs
 * others) or, on a plain kernel thread, in poll(2); in either case it
 * spins for some microseconds first, and so does the child, which keeps a
 * warm call in the microseconds.
 */
typedef struct weft_proc weft_proc_t;
typedef struct weft_proc_ctx weft_proc_ctx_t; /* the child's side of one call */

/* An entry: runs in the child with the call's argument (in, in_len bytes)
 * and writes its result into out (out_cap bytes, the caller's capacity).
 * Returns the result's length (0 .. out_cap) or a negative errno, which
 * the caller gets as is. It runs on the child's kernel thread. */
typedef ssize_t (*weft_proc_fn)(weft_proc_ctx_t *ctx, const void *in, size_t in_len, void *out,
                                size_t out_cap);

/* A registered entry. Use WEFT_PROC_ENTRY rather than filling one. */
typedef struct weft_proc_entry {
    const char *name;              /* at most WEFT_PROC_NAME_MAX bytes */
    weft_proc_fn fn;
    struct weft_proc_entry *next_; /* private */
    int startup_;                  /* private */
} weft_proc_entry;

#define WEFT_PROC_NAME_MAX 255

/* Registers e (static storage; it is never copied). WEFT_PROC_ENTRY calls
 * it from a constructor, at load time, so a freshly exec'd child has the
 * same entries as its parent; calling it later (from a plugin the child
 * loaded) works too. Registering a name twice: the later one wins. */
WEFT_API void weft_proc_register(weft_proc_entry *e);

/* WEFT_PROC_ENTRY("name", fn); at file scope registers fn under "name". */
#define WEFT_PROC_ENTRY(name, fn) WEFT_PROC_ENTRY_1_(name, fn, __COUNTER__)
#define WEFT_PROC_ENTRY_1_(name, fn, n) WEFT_PROC_ENTRY_2_(name, fn, n)
#define WEFT_PROC_ENTRY_2_(name, fn, n)                                                            \
    static weft_proc_entry weft_proc_entry_##n = {name, fn, 0, 0};                                 \
    __attribute__((constructor)) static void weft_proc_entry_reg_##n(void)                         \
    {                                                                                              \
        weft_proc_register(&weft_proc_entry_##n);                                                  \
    }                                                                                              \
    struct weft_proc_entry_semicolon_##n

/* A callback the parent serves: runs in the parent, on a weft thread, when
 * the child calls weft_proc_callback(ctx, name, ...). It may call p again
 * (weft_proc_call): that call is served by the same child, nested. */
typedef ssize_t (*weft_proc_cb_fn)(weft_proc_t *p, void *arg, const void *in, size_t in_len,
                                   void *out, size_t out_cap);
typedef struct weft_proc_cb {
    const char *name; /* copied */
    weft_proc_cb_fn fn;
    void *arg;
} weft_proc_cb;

enum { WEFT_PROC_FORK = 0, WEFT_PROC_EXEC = 1 };

typedef struct weft_proc_opts {
    int mode;                      /* WEFT_PROC_FORK (0) or WEFT_PROC_EXEC */
    size_t shared_size;            /* bytes of the shared dictionary area; 0: none */
    size_t ring_size;              /* bytes of each ring; 0: 256 KiB; a power of
                                      two from 4 KiB to 1 GiB */
    const weft_proc_cb *callbacks; /* copied */
    int ncallbacks;
    const int *keep_fds;           /* fds the child keeps (same numbers) */
    int nkeep_fds;
    uint64_t limit_as;             /* RLIMIT_AS of the child, bytes; 0: inherited */
    uint64_t limit_cpu;            /* RLIMIT_CPU, seconds (SIGXCPU, then SIGKILL) */
    uint64_t limit_nofile;         /* RLIMIT_NOFILE */
    const int *seccomp_deny;       /* system call numbers that fail with EPERM
                                      in the child (a seccomp filter, which
                                      also kills the child on foreign-ABI
                                      and x32 calls) */
    int nseccomp_deny;
} weft_proc_opts;

/*
 * Makes a proc (no child yet: the first call starts one) and stores it in
 * *p. opts NULL: fork mode, no dictionary, no callbacks, no limits.
 * Returns 0, -EINVAL (bad mode, ring size, counts, a keep fd < 3, a NULL
 * or too long callback name), -ENOMEM, or an error making the region.
 */
WEFT_API int weft_proc_new(weft_proc_t **p, const weft_proc_opts *opts);

/*
 * Calls the entry named entry in the child with in_len bytes from in and
 * waits until the deadline for its result, copied into out. Starts a child
 * if none runs. While it waits, callbacks the child makes run on a weft
 * thread of the parent. Returns the result's length, or:
 *
 *   the entry's own negative result;
 *   -ETIMEDOUT: the deadline passed (also while waiting for another
 *     caller's call to end); if the call was under way the child's process
 *     group was killed and reaped;
 *   -ECHILD: the child died during the call (a signal, exit(), abort(),
 *     weft_proc_kill); weft_proc_status says how. The parent goes on; the
 *     next call starts a fresh child;
 *   -ENOENT: the child has no such entry; -EMSGSIZE: the entry returned
 *     more than out_cap; -EPROTO: the child broke the protocol (it was
 *     killed); -ELOOP: calls nested more than 64 deep;
 *   -EINVAL (p or entry NULL, entry too long, in NULL with in_len > 0, out
 *     NULL with out_cap > 0), -ENOMEM, -EAGAIN (no child could be made);
 *   any other error that ended the caller's wait, once the child has been
 *     killed and reaped (a stop of the caller: -ECANCELED).
 *
 * May switch threads.
 */
WEFT_API ssize_t weft_proc_call(weft_proc_t *p, const char *entry, const void *in, size_t in_len,
                                void *out, size_t out_cap, int64_t deadline);

/*
 * From an entry, in the child: runs the parent's callback named name with
 * in_len bytes from in, and copies its result into out. Blocks the child's
 * kernel thread; calls the parent makes meanwhile (from the callback) run
 * here, nested. Returns the callback's result: its length or its negative
 * errno; -ENOENT if the parent serves no such callback; -EPERM when not
 * called on the thread running the entry of ctx; -EMSGSIZE, -EINVAL.
 */
WEFT_API ssize_t weft_proc_callback(weft_proc_ctx_t *ctx, const char *name, const void *in,
                                    size_t in_len, void *out, size_t out_cap);

/* The shared dictionary area (opts.shared_size bytes, zeroed at first, kept
 * across children) and its size; NULL when there is none. In the parent:
 */
WEFT_API void *weft_proc_shared(weft_proc_t *p, size_t *size);
/* ... and in the child, from an entry: */
WEFT_API void *weft_proc_ctx_shared(weft_proc_ctx_t *ctx, size_t *size);

/*
 * Kills the child's process group now (SIGKILL). A call under way returns
 * -ECHILD; the next call starts a fresh child. Returns 0, or -ESRCH when
 * no child runs. Does not wait for a call under way to return.
 */
WEFT_API int weft_proc_kill(weft_proc_t *p);

/* How the last child ended, and what runs now. */
typedef struct weft_proc_status {
    pid_t pid;             /* the child running now, else the last one; 0: none yet */
    int running;           /* 1 while a child runs */
    int exited;            /* the last child called exit: its status in code */
    int code;
    int signal;            /* the signal that killed the last child, else 0 */
    int killed;            /* 1 if weft killed it (deadline, kill, stop, free) */
    unsigned long started; /* children started so far */
} weft_proc_status_t;

/* Fills *st. Returns 0 or -EINVAL. */
WEFT_API int weft_proc_status(weft_proc_t *p, weft_proc_status_t *st);

/*
 * Kills and reaps the child, if any, and frees p: no zombie, fd or mapping
 * of it is left. Returns 0; -EBUSY while a call is under way (nothing is
 * freed); NULL: 0. May switch threads.
 */
WEFT_API int weft_proc_free(weft_proc_t *p);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
