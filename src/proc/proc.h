/*
 * proc.h - declarations private to the proc layer (src/proc/): the shared
 * region's layout, the messages, the rings, and the parent's and the
 * child's halves of a channel.
 *
 * The region (one mapping, the same layout in both processes):
 *
 *   0          struct region: magic, sizes, the two rings' indices, the
 *              doorbells, the child's configuration (exec mode)
 *   4 KiB      the names of the startup entries (exec mode, see child.c)
 *   64 KiB     the request ring, ring_size bytes   (parent -> child)
 *   + ring     the response ring, ring_size bytes  (child -> parent)
 *   + ring     the shared dictionary area, shared_size bytes (page-rounded)
 *
 * A ring is a byte stream with one producer and one consumer: head and
 * tail count bytes ever consumed and produced (never wrapped; 64 bits), on
 * cache lines of their own. The producer copies what fits, then publishes
 * tail (release); the consumer copies what is there, then publishes head
 * (release). Messages are read and written as streams, piece by piece, so
 * a message may be any size: a megabyte argument goes through a 256 KiB
 * ring in pieces while the other side drains it. No lock lives in the
 * region: a child that dies anywhere leaves at worst a half-written
 * message, which the parent throws away with the child (it resets the
 * indices before it starts the next one).
 *
 * The parent trusts nothing in the region. The child, or anything it
 * started that still maps the region, can write every byte of it, and a
 * bad value read back must never make the parent write outside the
 * region or read a size it did not choose. So the sizes and offsets
 * (ring_size, shared_off, shared_size) and the child's configuration are
 * the parent's private copies, written into the region afresh before each
 * child starts and never read back by the parent; each end keeps its own
 * indices (the head it consumes at, the tail it produces at) privately
 * and only publishes them; and the indices the other side writes are
 * checked at every read (ring.c): 0 <= tail - head <= ring size, on both
 * rings. A check that fails is -EPROTO, and the parent kills the child
 * (call.c). The child checks the header once when it starts (child.c), so
 * a region scribbled between two children cannot make it misbehave
 * either.
 *
 * A message is a struct msg, then name_len bytes of name, then len bytes
 * of payload. The conversation is strictly alternating: at any moment one
 * side writes one message and the other reads it, so the two rings never
 * both wait for space and no deadlock can form:
 *
 *   parent                         child
 *   CALL(entry, in, cap)    ->
 *                           <-     CALLBACK(name, in, cap)     (0 or more,
 *   CALL (nested, from the  ->                                  each
 *         callback), ...                                        answered)
 *   CB_RETURN(status, out)  ->
 *                           <-     RETURN(status, out)
 *
 * Doorbells. Each side, before it sleeps, sets its waiting flag (seq_cst)
 * and checks its condition again; the other side, after every publish,
 * issues a seq_cst fence and reads the flag, and rings only if it is set.
 * In the single order of seq_cst operations one of the two comes second
 * and sees the other: either the sleeper sees the progress, or the ringer
 * sees the sleeper. The child sleeps on a process-shared futex word
 * (child_bell); the parent on an eventfd that its poller watches (a weft
 * thread parks, its worker runs others), together with the child's pidfd,
 * both in a small epoll set of the proc's own, so a death wakes it too.
 */
#ifndef WEFT_PROC_PROC_H
#define WEFT_PROC_PROC_H

#include "internal.h"

#include <sys/types.h>

#define REGION_MAGIC 0x57454654505243ull /* "WEFTPRC" */
#define REGION_NAMES_OFF 4096
#define REGION_RINGS_OFF (64 * 1024)
#define REGION_NAMES_MAX (REGION_RINGS_OFF - REGION_NAMES_OFF)
#define PROC_KEEP_MAX 64
#define PROC_DENY_MAX 128
#define PROC_DEPTH_MAX 64

enum msg_type { MSG_CALL = 1, MSG_RETURN, MSG_CALLBACK, MSG_CB_RETURN };

struct msg {
    uint32_t type;     /* enum msg_type */
    uint32_t name_len; /* CALL, CALLBACK: bytes of name that follow */
    int64_t status;    /* RETURN, CB_RETURN: the result (length or -errno) */
    uint64_t len;      /* bytes of payload after the name */
    uint64_t cap;      /* CALL, CALLBACK: the caller's out_cap */
};

struct ring {
    uint64_t head; /* atomic: bytes consumed; stored by the consumer only */
    char pad0[56];
    uint64_t tail; /* atomic: bytes produced; stored by the producer only */
    char pad1[56];
};

/* What the child is to do at its start, apart from the sizes: the parent
 * keeps the real one (struct weft_proc.cfg) and copies it into the region
 * before each start; the child takes one copy and checks its counts. */
struct child_cfg {
    int32_t efd;            /* the parent's doorbell eventfd, in the child */
    int32_t nkeep;
    int32_t keep[PROC_KEEP_MAX];
    uint64_t limit_as, limit_cpu, limit_nofile;
    int32_t ndeny;
    int32_t deny[PROC_DENY_MAX];
};

/* Every field is written by the parent before a child starts; the child
 * may write any of them afterwards (see top): the parent reads back only
 * the indices the child owns (checked) and the doorbell flags. */
struct region {
    uint64_t magic;
    uint64_t size;          /* of the whole mapping */
    uint64_t ring_size;
    uint64_t shared_off, shared_size;
    int32_t parent_pid;
    char pad0[20];
    struct ring req;        /* parent -> child */
    struct ring resp;       /* child -> parent */
    uint32_t child_waiting; /* atomic: the child sleeps or is about to */
    uint32_t child_bell;    /* atomic: shared futex word the child sleeps on */
    char pad1[56];
    uint32_t parent_waiting; /* atomic: the parent sleeps or is about to */
    char pad2[60];

    /* The child's configuration, written by the parent before each start
     * (exec mode reads it after exec; fork mode has it in memory too). */
    struct child_cfg cfg;
    uint32_t nexpected;     /* startup entries the child waits for (child.c) */
    uint32_t names_len;     /* bytes of NUL-separated names at REGION_NAMES_OFF */
};

_Static_assert(sizeof(struct region) <= REGION_NAMES_OFF, "struct region fits its page");

/* The rings' bytes, given the ring size (never read from the region by
 * the parent: see top). */
static inline char *req_base(struct region *r) { return (char *)r + REGION_RINGS_OFF; }
static inline char *resp_base(struct region *r, uint64_t ring_size)
{
    return (char *)r + REGION_RINGS_OFF + ring_size;
}

/*
 * One end of the channel, in one process. wait(e) blocks until the other
 * side may have made progress (returns 0) or the end fails (a negative
 * errno: the parent's deadline, the child's death, ...). kick(e) rings the
 * other side if it sleeps. The ring operations below call them. Every
 * field is this process's own: the region is only where the indices are
 * published.
 */
struct end {
    struct region *r;
    struct ring *in, *out; /* the ring this end reads, and writes */
    char *in_base, *out_base;
    uint64_t size;         /* of each ring, a power of two */
    uint64_t in_head;      /* bytes consumed from in; published in in->head */
    uint64_t out_tail;     /* bytes produced into out; published in out->tail */
    int (*wait)(struct end *e, bool (*ready)(struct end *e, void *arg), void *arg);
    void (*kick)(struct end *e);
};

/* Writes the n pieces as one stream of bytes; 0, the wait's error, or
 * -EPROTO when the other side's index is impossible (see top). */
int weft__ring_write(struct end *e, const struct iovec *iov, int n);
/* Reads exactly len bytes into dst (NULL: discards them); 0, the wait's
 * error, or -EPROTO as above. */
int weft__ring_read(struct end *e, void *dst, size_t len);
/* Resets the indices and doorbells of both rings, in the region and in
 * e (no child runs). */
void weft__ring_reset(struct end *e);

/*
 * Adaptive spinning, for both ends: spin before sleeping only while spins
 * pay off. A wait whose spin found nothing makes the next waits sleep at
 * once (1, 2, 4, ... up to 64 of them) before one spins again; a spin that
 * finds progress resets that. On an idle machine a warm call's answer
 * comes within the spin and neither side sleeps; on a loaded one the other
 * side is often not running at all, a spin only burns the CPU it needs,
 * and sleeping at once lets the scheduler's wake-up preference work for
 * us, as it does for a blocking pipe.
 */
struct spin {
    uint32_t skip, backoff;
};
static inline bool spin_should(struct spin *s)
{
    if (s->skip == 0)
        return true;
    s->skip--;
    return false;
}
static inline void spin_result(struct spin *s, bool hit)
{
    if (hit) {
        s->backoff = 0;
        return;
    }
    s->backoff = s->backoff ? (s->backoff < 64 ? s->backoff * 2 : 64) : 1;
    s->skip = s->backoff;
}

/* Process-shared futex (the region is MAP_SHARED between processes). */
int weft__futex_wait_shared(uint32_t *word, uint32_t val);
void weft__futex_wake_shared(uint32_t *word);

/* ---- the proc object (call.c), spawning (spawn.c) ---------------------- */

struct cb {
    char *name;
    weft_proc_cb_fn fn;
    void *arg;
};

struct weft_proc {
    /* Fixed from weft_proc_new to weft_proc_free. The sizes and cfg are
     * the parent's own copies of what the region says (see top). */
    int mode;
    struct region *r;
    size_t map_size;
    size_t ring_size, shared_off, shared_size;
    struct child_cfg cfg;
    int memfd;            /* exec mode: the region's memfd; fork mode: -1 */
    int efd;              /* the parent's doorbell (the child writes it) */
    int epfd;             /* epoll set of efd and the child's pidfd */
    struct cb *cbs;
    int ncbs;
    struct end end;       /* the parent's end of the channel */

    /* The call chain: one at a time (call.c). */
    weft_mutex_t call_lock;
    uint32_t lock_seq;     /* atomic seq_cst: bumped after each release of
                              call_lock; queued callers park on it */
    uint32_t lock_waiters; /* atomic seq_cst: callers parked on lock_seq */
    uintptr_t chain_key;  /* atomic: the thread driving the channel, 0: none */
    int depth;            /* chain: calls nested now */
    int broken;           /* chain: the error that ended the child, 0: none */
    int64_t deadline;     /* chain: the innermost call's, or an outer
                             call's if earlier (call.c) */
    struct spin spin;     /* chain: adaptive spinning (above) */

    /* The child. pid, pidfd and alive change only under mu, and only the
     * call-lock holder (or free) starts or reaps one; kill reads them
     * under mu from any thread. */
    struct ilock mu;
    pid_t pid;
    int pidfd;            /* -1: none */
    bool alive;           /* started and not reaped */
    bool signalled;       /* weft sent it SIGKILL */
    weft_proc_status_t st;
};

/* Starts a child for p (the call-lock holder; p->alive is false). 0 or a
 * negative errno. May switch threads. */
int weft__proc_spawn(struct weft_proc *p);
/* Sends SIGKILL to the child's process group, under p->mu; counts it as
 * killed by weft unless it had died already. */
void weft__proc_signal(struct weft_proc *p);
/* Waits for the child to end (it has been signalled, or died), reaps it
 * and records how it ended. The call-lock holder or free only. */
void weft__proc_reap(struct weft_proc *p);

/* The child's main loop (child.c): serves calls on the region until killed.
 * Never returns. */
_Noreturn void weft__proc_child_serve(struct region *r, int efd);
/* Child setup common to both modes: limits, fds, seccomp (child.c). */
int weft__proc_child_setup(struct region *r);
/* A deferred exec'd child reached main and called into procs: serve now
 * with the entries there are (child.c). Returns only in a parent. */
void weft__proc_child_last_resort(void);
/* The startup entries' names, for an exec child to wait for (child.c). */
void weft__proc_expected(struct region *r);

/* Every layer's "forget the parent's runtime" in a fork child. */
void weft__sched_reset_child(void);
void weft__park_reset_child(void);
void weft__io_reset_child(void);
void weft__thread_reset_child(void);
void weft__stop_reset_child(void);
/* Around the fork, in the forker: what the stop layer holds still so its
 * reset in the child finds its structures whole (stop/group.c). */
void weft__stop_fork_prepare(void);
void weft__stop_fork_parent(void);

#endif
