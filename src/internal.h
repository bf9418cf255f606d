/*
 * internal.h - declarations shared between weft's layers.
 *
 * The objects, and who may touch what:
 *
 *   struct uthread  a user thread's descriptor. It lives at the top of the
 *                   thread's own stack mapping, so an idle thread costs
 *                   about one page. Its slot in the handle table is bound to
 *                   it for as long as the mapping exists; a finished thread's
 *                   descriptor and stack go to a cache ("death row") and are
 *                   reused by the next spawn, with the slot's generation
 *                   bumped so that old handles go stale.
 *
 *   struct worker   a P: a scheduling context with a local run queue, a
 *                   hand-off slot (runnext), a timer heap and a descriptor
 *                   cache. One kernel thread (its M, struct kthread) runs
 *                   it at a time. The M changes only when the monitor takes
 *                   the worker from an M stuck in a blocking section and
 *                   gives it to a spare M (sched/handoff.c).
 *
 *   struct kthread  an M: one kernel thread. It has its own scheduler
 *                   context ("g0", the kernel thread's native stack), which
 *                   runs the idle loop, and the thread it is running. An M
 *                   without a worker is a spare, waiting to be given one.
 *
 * Thread states are implicit: a thread is running (some kthread's cur),
 * runnable (in exactly one run queue, runnext slot, global queue or inbox),
 * parked (reachable only through a parking-lot waiter), or finished.
 *
 * The switching flag closes the one race in direct thread-to-thread
 * switches: a thread that parks or yields becomes visible to other workers
 * (in a wait queue or run queue) before its registers are saved. It sets
 * switching = 1 first; the context that runs after it on the same kernel
 * thread clears it once the save is done (finish_switch in sched.c).
 * Only a kthread's g0 context ever waits for the flag: a user context that
 * picks a thread still being saved hands it to g0 instead, since two user
 * contexts waiting for each other's saves would deadlock (sched.c).
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include "weft.h"

#include "base/atomic.h"
#include "base/futex.h"
#include "base/panic.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT_HIDDEN __attribute__((visibility("hidden")))

#define PAGE_SIZE_MIN 4096
#define WEFT_DEFAULT_STACK (64 * 1024)
#define WEFT_MAX_WORKERS 1024
#define WEFT_NAME_MAX 32

struct worker;
struct kthread;
struct wait;
struct weft_group;

/* A link in a circular doubly linked list with a sentinel head (a group's
 * members, stop/group.c). */
struct glink {
    struct glink *next, *prev;
};

/* ---- timers (sched/timer.c) ------------------------------------------ */

/*
 * A timer in one worker's min-heap. The heap and idx are protected by the
 * heap's lock (worker.tlock). claim() runs under that lock when the timer
 * expires and decides, with one atomic, whether the expiry wins over
 * whatever else could end the wait; if it returns true, expire() runs after
 * the lock is dropped. After the lock is dropped a lost claim never touches
 * the timer again, which lets its owner free it.
 */
struct timer {
    int64_t when;           /* absolute ns; set before insertion */
    int32_t idx;            /* position in w->heap, -1 when in no heap */
    struct worker *w;       /* heap it was added to */
    bool (*claim)(struct timer *t);
    void (*expire)(struct timer *t);
};

/* A heap slot: the deadline is kept beside the pointer, so that sifting
 * compares without touching the timers (on their waiters' stacks, cold). */
struct heap_entry {
    int64_t when;
    struct timer *t;
};

void weft__timer_add(struct worker *w, struct timer *t);
/* Removes t if still queued; safe against a concurrent expiry (see above). */
void weft__timer_cancel(struct timer *t);
/* Runs the expired timers of w, as many as the run queue has room for
 * (the rest stay for the next pick, rather than spill to the global
 * queue); returns how many it expired. */
int weft__timers_run(struct worker *w, int64_t now);
/* The earliest deadline in w's heap, or -1. */
int64_t weft__timers_next(struct worker *w);

/* ---- user threads (thread/) ------------------------------------------- */

enum guard_kind {
    GUARD_NONE = 0,    /* not yet decided */
    GUARD_INSTALL,     /* MADV_GUARD_INSTALL: no memory-map entry */
    GUARD_MPROTECT,    /* PROT_NONE page: one memory-map entry */
    GUARD_CANARY,      /* no guard page; a canary checked at every switch */
};

struct uthread {
    /* Scheduling. */
    void *sp;                 /* saved stack pointer; written by
                                 weft__ctx_switch, read by whoever resumes
                                 the thread after switching == 0 (acquire) */
    uint32_t switching;       /* atomic; 1 while switching out (see top) */
    uint32_t slot;            /* handle-table slot; fixed for the mapping's life */
    struct slot *slotp;       /* that slot's entry; fixed likewise */
    weft_t handle;            /* slot + current generation; set at spawn */
    struct uthread *next;     /* link in the global queue, an inbox or a
                                 cache; owned by whoever holds the list */
    int16_t last_worker;      /* worker it last ran on (migrate debugging) */
    bool exiting;             /* set by the thread itself just before its
                                 last switch: its stack is dead (ASan) */
    bool self_free;           /* exiting and detached: the context after
                                 its last switch frees it (finish_switch) */
    uint8_t guard;            /* enum guard_kind */
    int err;                  /* errno of the thread while switched out */
    uint32_t nopreempt;       /* the thread itself (and the preemption
                                 handler on its kernel thread): depth of
                                 weft_preempt_disable */

    /* The work. */
    void *(*fn)(void *);
    void *arg;
    void *result;             /* written by the thread before it finishes;
                                 read by the joiner after the table CAS */

    /* The stack. */
    char *map;                /* the whole mapping: guard page, stack, this */
    size_t map_size;
    size_t stack_size;        /* usable bytes, as asked for (rounded) */
    uint64_t *canary;         /* GUARD_CANARY: word checked at switches */

    /* Sanitizer bookkeeping. */
    void *asan_fake;          /* ASan fake stack across switches */
    void *tsan_fiber;         /* TSan fiber: made at spawn, destroyed
                                 when the thread is freed (thread.c) */

    char name[WEFT_NAME_MAX];

    /* Stop (stop/ asks, sync/wait.c ends the wait a stop cuts short). */
    uint64_t stop;            /* atomic: generation << 32 | ST_* flags. Set
                                 to this incarnation's generation (no flags,
                                 or its group's) by spawn before the thread
                                 is published; after that changed only by a
                                 stopper's CAS, which succeeds only while the
                                 generation is the one it aims at. So while
                                 a thread runs, the word always carries its
                                 own generation, and the flags are its own */
    struct wait *stop_wait;   /* atomic seq_cst: the wait a stop may end,
                                 published by the thread itself while it
                                 blocks in one; STOP_WAIT_BUSY while a
                                 stopper examines it (sync/wait.c) */
    struct weft_group *group; /* the group it belongs to, or NULL; fixed
                                 from spawn to exit */
    struct glink gnode;       /* in group->members; group->lock */
};

/* ---- stop requests ------------------------------------------------------
 *
 * The flags half of uthread.stop. src/stop/ sets them (weft_stop, groups);
 * the sync and io layers, above it in the layer order, test them here in
 * every call that may block, and sync/wait.c ends a wait they cut short.
 */
#define ST_STOP 1u  /* a stop was requested: blocking calls give -ECANCELED */
#define ST_FILES 2u /* WEFT_STOP_FILES: fd calls fail too (but weft_close,
                       and fds marked exempt) */

/* Has a stop been requested for ut (a running weft thread; NULL: no)? A
 * relaxed read: a stop that comes later is caught by the wait itself
 * (sync/wait.c). For weft_blocking and the like. */
static inline bool weft__stop_requested(const struct uthread *ut)
{
    return ut && (load_relaxed(&ut->stop) & ST_STOP);
}

/* Handle table (thread/table.c). The entry word holds the generation in
 * its high half and the flags below in its low half; the low half doubles
 * as the parking address a timed or kernel-thread joiner waits on. */
#define TS_LIVE 1u     /* spawned and not yet freed */
#define TS_EXITED 2u   /* finished; its result may be collected */
#define TS_DETACHED 4u /* nobody will join; freed on exit */
#define TS_JOINING 8u  /* a joiner owns the join */
/* Bits 4-31, with JOINING: 1 + the slot of a user thread that joins without
 * a deadline and is switched out (or switching out) until the exit switches
 * to it; 0 when the joiner waits in the parking lot instead (thread.c). */
#define TS_JOINER_SHIFT 4
#define TS_JOINER_MAX ((1u << (32 - TS_JOINER_SHIFT)) - 2) /* highest slot */

struct slot {
    uint64_t word;      /* atomic: generation << 32 | TS_* flags */
    struct uthread *ut; /* the descriptor bound to the slot, or NULL */
};

/* Binds a free slot to ut; returns the slot index or -ENOMEM. */
int weft__slot_alloc(struct uthread *ut);
/* Unbinds the slot of a descriptor that is being unmapped; returns once
 * no slot pin can still see the descriptor. */
void weft__slot_free(uint32_t slot);
/* A fork child forgets the table's lock and free list (table.c). */
void weft__slot_reset_child(void);
/* For a caller that does not own the handle (weft_stop): the descriptor
 * bound to s now, or NULL, kept mapped until weft__slot_unpin. It may have
 * ended, or be reused by a later spawn, meanwhile. Never blocks; hold it
 * for a few instructions only (an unmap waits for every pin). */
struct uthread *weft__slot_pin(struct slot *s);
void weft__slot_unpin(void);

/* The table's directory of chunks (table.c). */
#define SLOT_CHUNK_SHIFT 12
#define SLOT_CHUNK_SLOTS (1u << SLOT_CHUNK_SHIFT)
#define SLOT_DIR_SIZE (1u << 14) /* up to 64M slots */
extern struct slot *weft__slot_dir[SLOT_DIR_SIZE] WEFT_HIDDEN; /* atomic entries */
extern uint32_t weft__nslots WEFT_HIDDEN; /* atomic: slots ever handed out */

/* The slot of a handle, or NULL if the handle's slot never existed. */
static inline struct slot *weft__slot_get(uint32_t index)
{
    /* Pairs with the release stores in weft__slot_alloc. */
    if (index >= load_acquire(&weft__nslots))
        return NULL;
    struct slot *chunk = load_acquire(&weft__slot_dir[index >> SLOT_CHUNK_SHIFT]);
    return &chunk[index & (SLOT_CHUNK_SLOTS - 1)];
}

static inline uint32_t handle_slot(weft_t h) { return (uint32_t)h; }
static inline uint32_t handle_gen(weft_t h) { return (uint32_t)(h >> 32); }
static inline uint32_t word_gen(uint64_t w) { return (uint32_t)(w >> 32); }
static inline uint32_t word_flags(uint64_t w) { return (uint32_t)w; }
/* The generation after g; never 0, so a handle is never 0. */
static inline uint32_t gen_next(uint32_t g) { return g + 1 ? g + 1 : 1; }

/* Stacks (thread/stack.c). */
struct uthread *weft__stack_new(size_t stack_size);
void weft__stack_unmap(struct uthread *ut);
void weft__stack_check(struct uthread *ut); /* canary; panics on overflow */
void weft__stack_init(void);
extern size_t weft__page WEFT_HIDDEN; /* set once by weft__stack_init */
static inline size_t weft__page_size(void)
{
    return weft__page;
}

/* Descriptor caches, "death row" (thread/cache.c). weft__cache_get and
 * weft__cache_put, inline below, handle the common case themselves. */
struct uthread *weft__cache_get_slow(struct worker *w, size_t stack_size);
void weft__cache_put_slow(struct worker *w, struct uthread *ut);
void weft__cache_trim(int64_t now);

/* Thread life (thread/thread.c). */
_Noreturn void weft__thread_entry(void *arg);
/* Frees a finished detached thread once it is off its stack for good. */
void weft__thread_free_detached(struct uthread *ut);

/* The stop layer's hooks for a thread's life (stop/group.c), called by
 * spawn and exit above it in the layer order, as the scheduler calls the
 * poller's. enter: puts ut (handle and stop word set, not yet published)
 * in g and gives it g's stop flags. leave: takes ut out of its group, the
 * first thing its exit does, before it is marked finished. */
void weft__group_enter(struct weft_group *g, struct uthread *ut);
void weft__group_leave(struct uthread *ut);

/* Overflow reports (thread/overflow.c). */
void weft__overflow_init(void);
void weft__overflow_thread_init(struct kthread *k);
/* Gives back what init made, for a kernel thread that exits. */
void weft__overflow_thread_fini(struct kthread *k);
_Noreturn void weft__overflow_report(struct uthread *ut);

/* ---- scheduler (sched/) ------------------------------------------------ */

#define RUNQ_SIZE 256
#define SPAWNQ_SIZE 256
#define CACHE_LOCAL_MAX 256

struct worker {
    /* The local run queue: a bounded ring. The owner pushes at tail and
     * pops at head; thieves take half from head. head is advanced by CAS
     * (owner pop and thieves), tail only by the owner (release, paired with
     * the thieves' acquire load). */
    uint32_t head;
    uint32_t tail;
    struct uthread *ring[RUNQ_SIZE];     /* atomic entries */
    struct uthread *runnext;             /* atomic; hand-off slot: runs next */

    /* The spawn deque: threads spawned here that have not run yet. The
     * owner pushes and pops at bottom (newest first: fork-join runs depth-
     * first); thieves take one at a time from top (oldest first). bottom is
     * stored by the owner only; top moves only by CAS (thieves, and the
     * owner for the last entry or a spill). See runq.c. */
    uint32_t top;
    uint32_t bottom;
    struct uthread *spawnq[SPAWNQ_SIZE]; /* atomic entries */

    int id;
    struct kthread *k;                   /* atomic: the kernel thread running
                                            it; changed only by the monitor
                                            at a hand-off (handoff.c) */
    uint32_t tick;                       /* owner only: schedules so far;
                                            read racily by the monitor */
    bool ready_fifo;                     /* owner only: weft__ready queues at
                                            the ring's tail, not runnext
                                            (timers_run: deadline order) */

    /* Timers: a min-heap on when. */
    struct ilock tlock;
    struct heap_entry *heap;             /* tlock */
    int32_t nheap;                       /* tlock; read racily as a hint */
    int32_t heap_cap;                    /* tlock */

    /* Blocking sections and preemption (handoff.c, preempt.c). pstate is
     * epoch << 1 | P_BLOCKING: the owning M stores a new epoch with
     * P_BLOCKING as it enters a call that may block its kernel thread and
     * CASes P_BLOCKING off as it leaves; the monitor may instead CAS the
     * section's word to the next epoch without P_BLOCKING and give the
     * worker to a spare M. Each section has its own epoch, so the word
     * names one section exactly: the old M's CAS fails whatever the
     * worker has done since, and 64 bits never wrap. */
    uint64_t pstate;                     /* atomic */
    uint32_t preempt_tick;               /* atomic: tick + 1 when the monitor
                                            asked the running thread to yield;
                                            stale once tick moves */
    /* Monitor only: what it saw at its previous look. */
    uint32_t mon_tick;
    uint64_t mon_pstate;
    int64_t mon_pstate_since, mon_tick_since;

    /* Debug-migrate inbox: threads sent here by other workers. */
    struct ilock inbox_lock;
    struct uthread *inbox_head, *inbox_tail; /* inbox_lock */
    uint32_t inbox_n;                        /* atomic hint */

    /* Descriptor cache (death row), owner only: a LIFO stack. */
    int ncache;
    struct uthread *cache[CACHE_LOCAL_MAX];
} __attribute__((aligned(64)));

struct kthread {
    void *g0_sp;               /* scheduler context while a user thread runs */
    struct uthread *cur;       /* running user thread; NULL in g0 */
    struct uthread *prev;      /* thread this kthread just switched away from;
                                  finish_switch hands it over */
    struct worker *w;          /* the worker it runs; NULL for a spare and
                                  for an M whose worker was handed off while
                                  it blocked. Written by the M itself, or by
                                  the monitor while the M waits as a spare
                                  (published by spare_word) */
    struct uthread *handoff;   /* owner only: a thread a user context picked
                                  while it was still being saved; g0 runs it */
    uint32_t parked;           /* atomic; 1 while idle-parked on a futex */
    bool spinning;             /* owner only: counted in rt.nspinning */
    void *g0_stack_lo;         /* the kernel thread's own stack, for ASan */
    size_t g0_stack_size;
    void *asan_fake;
    void *tsan_fiber;          /* TSan: the kernel thread's own fiber (g0) */
    void *altstack;            /* for the overflow report */
    int *errno_p;              /* this kernel thread's errno; saved in and
                                  restored from uthread.err at switches */
    int id;
    uint32_t tid;              /* atomic, futex: kernel thread id (gettid),
                                  for /proc; stored by the M when it starts */
    int stat_fd;               /* its /proc/self/task/<tid>/stat, open for
                                  the M's life (preempt.c), or -1; set
                                  before tid */
    pthread_t pt;              /* for pthread_kill (preemption) */
    struct kthread *spare_next; /* rt.spare_lock: the spare list, or the
                                   list of structs of Ms that exited */
    uint32_t spare_word;       /* atomic futex word: SPARE_* (handoff.c) */
} __attribute__((aligned(64)));

struct runtime {
    uint32_t state;            /* atomic: 0 not started, 1 starting, 2 running;
                                  a futex word new workers wait on */
    int nworkers;
    size_t stack_size;         /* default stack */
    bool debug_migrate;        /* WEFT_DEBUG=migrate */
    struct worker *workers;

    /* The global run queue: overflow of local queues and wakes from
     * kernel threads that are not workers. */
    struct ilock glock;
    struct uthread *ghead, *gtail; /* glock */
    uint32_t gcount;               /* atomic; read racily as a hint */

    /* Idle accounting; see the no-lost-wakeup argument in sched.c. */
    uint32_t nidle;            /* atomic: kthreads parked */
    uint32_t nspinning;        /* atomic: kthreads looking for work */

    uint32_t monitor_word;     /* atomic futex word the monitor sleeps on */
    uint32_t monitor_sleeping; /* atomic */
    int64_t monitor_wake_at;   /* atomic: while it sleeps, when the monitor
                                  wakes by itself (INT64_MAX: never) */
    uint32_t monitor_fast;     /* atomic: the monitor ticks every 20 us
                                  (handoff.c); written by the monitor, and
                                  set by a kick */
    uint32_t monitor_kicked;   /* atomic: weft_blocking woke the monitor */

    /* Kernel threads beyond the workers (handoff.c). */
    struct ilock spare_lock;
    struct kthread *spares;    /* spare_lock: Ms waiting for a worker */
    struct kthread *dead;      /* spare_lock: structs of Ms that exited,
                                  reused by the next M made */
    uint32_t nkthreads;        /* atomic: Ms alive */
    uint32_t spare_coming;     /* atomic: Ms made that have not yet put
                                  themselves on the spare list */

    int64_t slice;             /* preemption time slice, ns; 0: off */
    bool preempt_signal;       /* the signal may switch threads (preempt.c
                                  may still find it unusable) */
    int64_t spare_idle_ns;     /* a spare M exits after this long unused */
};

extern struct runtime weft__rt WEFT_HIDDEN;

/* Starts the runtime with the defaults if nobody has. */
void weft__start_default(void);
static inline void weft__ensure_started(void)
{
    if (unlikely(load_acquire(&weft__rt.state) != 2)) /* pairs with start() */
        weft__start_default();
}

/* A cached descriptor and stack of stack_size for a spawn on w (NULL: not
 * a worker), or NULL. */
static inline struct uthread *weft__cache_get(struct worker *w, size_t stack_size)
{
#if !defined(WEFT_ASAN) /* the slow path also unpoisons the stack */
    if (likely(w != NULL && w->ncache > 0 && stack_size == weft__rt.stack_size))
        return w->cache[--w->ncache];
#endif
    return weft__cache_get_slow(w, stack_size);
}

/* Puts a finished descriptor on death row; w as above. */
static inline void weft__cache_put(struct worker *w, struct uthread *ut)
{
    if (likely(w != NULL && w->ncache < CACHE_LOCAL_MAX &&
               ut->stack_size == weft__rt.stack_size)) {
        w->cache[w->ncache++] = ut;
        return;
    }
    weft__cache_put_slow(w, ut);
}

/* The kernel thread's M, or NULL on a thread that is not a worker. The
 * compiler must not keep the address of a __thread variable across a call
 * that may switch threads (DESIGN.md, "TLS caching"), so on x86-64 one asm
 * reads the thread pointer and the variable together: the compiler sees
 * neither, and the memory clobber keeps it from moving across the call
 * that switches. Elsewhere a call that is never inlined does the same. */
extern __thread struct kthread *weft__tls_k __attribute__((tls_model("initial-exec")));
/* The worker (P) that kernel thread runs: k->w, kept in TLS as well so
 * that the switch paths load it in parallel with k rather than after it
 * (a switch's latency is its chain of dependent loads). Same rule. */
extern __thread struct worker *weft__tls_w __attribute__((tls_model("initial-exec")));
struct kthread *weft__kthread_call(void);
struct worker *weft__worker_call(void);

#if defined(__x86_64__)
#define WEFT_TLS_READ(var, out)                                                                    \
    __asm__ volatile("movq " #var "@gottpoff(%%rip), %0\n\t"                                       \
                     "movq %%fs:(%0), %0"                                                          \
                     : "=r"(out)                                                                   \
                     :                                                                             \
                     : "memory")
#endif

static inline __attribute__((always_inline)) struct kthread *weft__kthread(void)
{
#if defined(__x86_64__)
    struct kthread *k;
    WEFT_TLS_READ(weft__tls_k, k);
    return k;
#else
    return weft__kthread_call();
#endif
}

/* weft__kthread()->w, for callers that have checked it is a worker. */
static inline __attribute__((always_inline)) struct worker *weft__worker(void)
{
#if defined(__x86_64__)
    struct worker *w;
    WEFT_TLS_READ(weft__tls_w, w);
    return w;
#else
    return weft__worker_call();
#endif
}

/* The running user thread, or NULL. Same rule. */
static inline __attribute__((always_inline)) struct uthread *weft__current(void)
{
    struct kthread *k = weft__kthread();
    return k ? k->cur : NULL;
}

/* A point in a weft call where the caller holds nothing of weft's: if the
 * monitor asked the running thread to yield (it found it running for a
 * whole time slice, somewhere the signal could not switch it), it yields
 * here. Two loads when nobody asked. May switch threads. */
void weft__preempt_yield(void);
static inline __attribute__((always_inline)) void weft__preempt_point(void)
{
    struct worker *w = weft__worker();
    if (w && unlikely(load_relaxed(&w->preempt_tick) == w->tick + 1))
        weft__preempt_yield();
}

/* The ST_* flags of the calling thread: 0 when no stop was requested, and
 * always on a plain kernel thread, which is never stopped. Same rule. */
static inline __attribute__((always_inline)) uint32_t weft__stop_self(void)
{
    struct uthread *ut = weft__current();
    return ut ? (uint32_t)load_relaxed(&ut->stop) : 0;
}

/* An identity for the calling thread that no other live thread shares:
 * the descriptor of a user thread, or a tagged per-kernel-thread address.
 * Never 0. Same rule as weft__kthread. */
uintptr_t weft__self_key(void);

/* Makes ut runnable (from any thread). */
void weft__ready(struct uthread *ut);
/* Queues a newly spawned thread; k is the caller's kthread or NULL. */
void weft__ready_new(struct kthread *k, struct uthread *ut);
/* The calling user thread gives up its worker until someone makes it
 * runnable again. The caller has published it somewhere (a wait queue)
 * after setting ut->switching = 1. May switch threads. */
void weft__park_current(struct uthread *ut);
/* Prepares the last switch of the calling user thread: to next, a thread
 * parked until this exit (its joiner), or with next NULL to whatever runs
 * next. Returns the stack pointer for weft__ctx_resume, which the caller
 * does with no call in between (thread.c says why). ut's switching flag is
 * cleared (or, with self_free, ut is freed) once it is off its stack. */
void *weft__exit_switch(struct uthread *ut, struct uthread *next);
void weft__wakep(void);
/* The second half of every switch, run by the arriving context. */
void weft__sched_finish_switch(void);
/* The same for a new thread's first run, which also starts its errno at 0. */
void weft__sched_arrive_new(void);
/* g0 runs ut until something switches back to g0. */
void weft__sched_run(struct kthread *k, struct uthread *ut);
void weft__kthread_set(struct kthread *k);
/* errno of the kernel thread running the caller now (see sched.c). */
int weft__errno_get(void);
void weft__errno_set(int e);
bool weft__cache_trim_pending(void);
int weft__stack_size_ok(size_t size);
void weft__monitor_start(void);
void weft__monitor_kick(void);
/* Wakes the monitor from any sleep, to look at blocking sections now. */
void weft__monitor_wake(void);
bool weft__any_runnable(void);

/* Worker kernel threads (sched/worker.c). */
int weft__workers_start(void);
/* Makes a kernel thread that runs w (NULL: one that starts as a spare);
 * NULL if none could be made. */
struct kthread *weft__kthread_new(struct worker *w);
/* An idle M stops being idle (undoes its parked / nidle accounting). */
void weft__idle_leave(struct kthread *k);

/* ---- blocking sections and spare kernel threads (sched/handoff.c) ------ */

#define P_BLOCKING 1ull
#define P_EPOCH 2ull /* pstate's epoch unit */

/* One blocking section: what weft__blocking_enter stored, for leave. */
struct blocking {
    struct kthread *k; /* NULL: the caller is not a weft thread */
    uint64_t pstate;   /* the worker's pstate during the section */
};

/*
 * The calling thread is about to make a call that may block its kernel
 * thread and that weft cannot turn into a park (weft_blocking, file I/O).
 * On a weft thread it marks the worker, so that the monitor can hand it to
 * a spare kernel thread if the call lasts (about 20 us), and until
 * weft__blocking_leave the caller is a plain kernel thread to weft: weft
 * calls it makes block the kernel thread, and weft_self() is 0. Elsewhere
 * it does nothing. kick: the call is expected to block (weft_blocking),
 * so wake the monitor to watch closely if it is not already. Does not
 * switch threads.
 */
void weft__blocking_enter(struct blocking *b, bool kick);
/* Ends the section. If the worker was handed off meanwhile, the caller
 * queues itself to run on whichever worker takes it. May switch threads. */
void weft__blocking_leave(struct blocking *b);
/* The monitor's look at blocking sections: hands off the workers stuck in
 * one. Returns whether any worker is in one. */
bool weft__handoff_scan(int64_t now);
/* An M without a worker waits until given one (true) or until it has
 * been spare for long and should exit (false). born: its first wait, as a
 * new M the monitor asked for. */
bool weft__spare_wait(struct kthread *k, bool born);
/* An M whose worker was handed off during a blocking section: queues its
 * thread for another worker and switches to g0 (sched.c). */
void weft__sched_lost_worker(struct kthread *k);
/* The M of the blocking section the calling kernel thread is in, or NULL
 * (its tls_k is NULL then; the overflow report still finds the thread). */
extern __thread struct kthread *weft__tls_blocking __attribute__((tls_model("initial-exec")));

/* ---- preemption (sched/preempt.c) -------------------------------------- */

/* Installs the preemption signal handler and learns where it may act. */
void weft__preempt_init(void);
/* The monitor's look at running threads: asks those that have run for a
 * whole time slice to yield. */
void weft__preempt_scan(int64_t now);
/* Opens the calling kernel thread's /proc stat file, for the monitor's
 * look at whether it runs; -1 if preemption is off or it cannot. */
int weft__preempt_stat_open(void);
/* The signal a kernel thread running workers must leave unblocked. */
int weft__preempt_signal(void);
/* The signal mask every M runs with (worker.c). */
sigset_t weft__kthread_mask(void);

/* ---- the I/O poller's hooks for the scheduler (io/poll.c) -------------- */

/* Called by an idle M after it announced itself idle and found no work: if
 * the epoll set exists and no other M sleeps in epoll_wait, sleeps there
 * until an event, a kthread_wake or deadline (its nearest timer, -1: none),
 * then leaves idleness (weft__idle_leave) and readies the woken threads;
 * returns true. Returns false at once when the M should park on its futex. */
bool weft__io_idle(struct kthread *k, int64_t deadline);
/* kthread_wake's hook, after it cleared k->parked: if k sleeps in
 * epoll_wait, wakes it through the eventfd and returns true. */
bool weft__io_kick(struct kthread *k);
/* A busy worker's periodic non-blocking poll (every 64th tick). */
void weft__io_poll_busy(uint32_t tick);
/* A spinning M's non-blocking poll; the woken threads go to its worker.
 * Does nothing while another M sleeps in epoll_wait. */
void weft__io_poll_spin(void);
/* The monitor's: polls without blocking if nobody has for 10 ms. */
void weft__io_poll_stale(int64_t now);

#endif
