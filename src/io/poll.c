/*
 * poll.c - the epoll poller: one epoll instance for the process, the state
 * weft keeps per fd, and how a thread waits for a fd to become ready.
 *
 * The idea is Go's netpoll (runtime/netpoll.go, netpoll_epoll.go): every fd
 * is registered once, edge-triggered, and threads that find it not ready
 * park until an edge arrives; libdill's fdin/fdout, a per-fd record found by
 * fd number, is the other model for the table.
 *
 * Per fd (struct fdstate in io.h, in a table indexed by fd number whose
 * chunks are never moved or freed): a lock, flags (facts learned about the
 * open file: non-blocking set, not a socket; registered; being closed),
 * a count of weft_closes, two readiness sequence numbers rseq and wseq,
 * and a FIFO of waiting threads (struct iowait on each waiter's stack: a
 * struct wait, sync.h, plus the events it waits for).
 *
 * Registration. The first wait on a fd adds it to the epoll set with
 * EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, under the fd's lock; it stays there
 * until weft_close (or close(2), which drops it from the set in the
 * kernel). No epoll_ctl per wait: the kernel reports every new edge. Data
 * that arrived between the wrapper's first EAGAIN and the registration is
 * not lost: EPOLL_CTL_ADD checks the fd's state and queues an event at
 * once for what is ready already.
 *
 * No lost edge. A wrapper reads seq = (rseq, wseq) with acquire, then
 * makes its system call. On EAGAIN it takes the fd's lock and compares
 * seq with the current numbers for the directions it wants; if one moved,
 * an event came after seq was read, so it retries without sleeping. Else
 * it queues itself and parks. The poller, for every event, takes the same
 * lock, bumps the numbers of the directions the event names and ends the
 * waits that want them. Two cases, ordered by the lock:
 *
 *   wrapper                     kernel / poller
 *   seq = rseq (say 7)
 *   read() -> EAGAIN
 *                               data arrives; epoll reports the edge
 *   lock; rseq == 7?            (poller waits for the lock)
 *   queue w; unlock; park       lock; rseq = 8; claim w; unlock; release w
 *
 *   seq = rseq (7); read() -> EAGAIN; data arrives
 *                               lock; rseq = 8; nobody queued; unlock
 *   lock; rseq (8) != 7: unlock, retry: read() returns the data
 *
 * An edge that came before read() was made shows as data to read() itself
 * (epoll reports it only after the kernel has queued the data). A stale
 * event only makes some waiter retry once and find EAGAIN again.
 *
 * Exactly once. Each wait ends through weft__wait_claim: an event, the
 * deadline's timer, weft_close (token -EBADF) or a stop of the waiter
 * (sync/wait.c) make the one CAS; the winner unlinks the wait under the
 * fd's lock and releases it after dropping the lock, except a stop, which
 * does not know the fd. A wait whose deadline or stop won stays queued
 * until its owner unlinks it under the lock; wakers skip it, since their
 * claim fails. (A wait on an exempt fd is not one a stop ends.)
 * An event wakes every waiter for its direction (normally one): with edge
 * triggering, waking one that then reads only part of the data could
 * strand the others until the next edge.
 *
 * Lifetime. The wait records live on the waiters' stacks. A waker touches
 * one only while holding the fd's lock and it is queued, and once more in
 * weft__wait_release after unlinking it, its last touch (sync.h). The
 * owner returns only after being released, or after unlinking itself
 * under the lock. fdstate entries are never freed, so events for a fd
 * closed meanwhile touch a live entry: at worst a spurious retry.
 *
 * Closing. weft_close takes the fd's lock, removes the fd from the epoll
 * set, sets FD_CLOSING, bumps closes and ends every queued wait with
 * -EBADF; then, without the lock, close(2); then, under the lock again,
 * it resets the flags (the number may be a new file's from here) and
 * unparks the wrappers that waited for that (FD_CLOSEWAIT). A wrapper
 * reads closes once when it begins, and its wait compares it under the
 * lock, so three cases remain:
 *
 *   - it began before the close: closes moved, so -EBADF, whether it
 *     was queued (woken by the close) or about to queue (sees the count);
 *   - it began during the close (FD_CLOSING, same count): the number is
 *     the closing file's or already a new one's, and registering it now
 *     could put the dying file in the epoll set just before close(2)
 *     drops it, leaving a waiter no edge will ever reach. It parks on the
 *     parking lot until the close is done, then tries again and the
 *     kernel answers (EBADF, or the new file's data);
 *   - it began after: a fresh entry, registered on its first wait.
 *
 * A wrapper that began on the old file may still make one try on a new
 * file that got the number between its try and its wait: the race every
 * close(2) has with a concurrent read(2) of the same number.
 *
 * Who blocks in epoll_wait. Exactly one idle worker: an M that finds no
 * work (worker.c, idle) claims the poller role with a CAS on poll_owner
 * and, instead of its futex, sleeps in epoll_wait until an event or its
 * nearest timer. The other idle Ms park on their futexes. A wake-up of the
 * poller (kthread_wake) writes the eventfd that sits in the epoll set;
 * kthread_wake clears parked and then reads poll_owner, the poller sets
 * poll_owner and then reads parked (all seq_cst), so either the waker sees
 * the poller and writes the eventfd (which stays readable until drained,
 * so an epoll_wait that starts later returns at once), or the poller sees
 * it was woken and does not sleep. The poller gives up the role, leaves
 * the idle state and then readies the woken threads on its own worker, so
 * their wakep() calls see the right idle count and wake other Ms.
 *
 * Spinning Ms (worker.c, spin) poll without blocking every 8th round, as
 * Go's findrunnable does before it steals, so a hand-off over a pipe
 * between two threads costs a poll, not a trip through epoll_wait's sleep.
 * Busy workers poll too: sched_pick's periodic part calls
 * weft__io_poll_busy every 64th pick, which does a zero-timeout epoll_wait
 * when nobody sleeps in epoll_wait, so I/O is noticed while every worker
 * runs threads that yield but never block. The monitor does the same when
 * no poll has happened for 10 ms (weft__io_poll_stale), as Go's sysmon
 * does, for workers that run one long thread.
 *
 * Rejected: EPOLLONESHOT with an epoll_ctl per wait (a system call per
 * wait, and the re-arm races with the poller); level triggering (a ready
 * fd nobody reads would wake the poller at every epoll_wait); a poller
 * kernel thread of its own (a thread switch per event, and one more M to
 * wake; Go also polls from idle Ms).
 */
#include "io/io.h"
#include "base/zero.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define FD_CHUNK_SHIFT 10
#define FD_CHUNK (1u << FD_CHUNK_SHIFT)
#define FD_DIR_SIZE (1u << 14) /* up to 16M fds */
#define EVENTS_IDLE 128
#define EVENTS_BUSY 32         /* busy polls run on a user thread's stack */
#define BUSY_EVERY 64          /* picks between busy polls */
#define STALE_NS 10000000      /* the monitor polls after 10 ms without one */
#define WAKE_DATA UINT64_MAX   /* epoll data of the eventfd */

struct iowait {
    struct wait w;
    int events;                /* WEFT_IN / WEFT_OUT it waits for */
    struct iowait *prev, *next; /* fd lock while queued; next is the
                                   waker's own after it claimed w */
};

static struct fdstate *fd_dir[FD_DIR_SIZE]; /* atomic entries; set once by CAS */

static struct ilock init_lock = ILOCK_INIT;
static int epfd = -1;             /* atomic: set once, release; -1 until the first wait */
static int wakefd = -1;           /* eventfd in the epoll set; set before epfd */
static struct kthread *poll_owner; /* atomic seq_cst: the M in a blocking epoll_wait */
static int64_t last_poll;         /* atomic: when an epoll_wait last returned */

/* ---- the fd table ------------------------------------------------------ */

struct fdstate *weft__fd_find(int fd)
{
    if (fd < 0 || (unsigned)fd >= FD_DIR_SIZE * FD_CHUNK)
        return NULL;
    struct fdstate *c = load_acquire(&fd_dir[(unsigned)fd >> FD_CHUNK_SHIFT]);
    return c ? &c[(unsigned)fd & (FD_CHUNK - 1)] : NULL;
}

struct fdstate *weft__fd_get(int fd)
{
    struct fdstate *f = weft__fd_find(fd);
    if (f || fd < 0 || (unsigned)fd >= FD_DIR_SIZE * FD_CHUNK)
        return f;
    struct fdstate *c = calloc(FD_CHUNK, sizeof *c), *none = NULL;
    if (!c)
        return NULL;
    /* Pairs with the acquire in weft__fd_find; the loser frees its chunk. */
    if (!cas_acq_rel(&fd_dir[(unsigned)fd >> FD_CHUNK_SHIFT], &none, c))
        free(c);
    return weft__fd_find(fd);
}

int weft__fd_err(int fd)
{
    return fd < 0 || (unsigned)fd >= FD_DIR_SIZE * FD_CHUNK ? -EBADF : -ENOMEM;
}

void weft__fd_fresh(int fd, bool nonblocking)
{
    struct fdstate *f = weft__fd_get(fd);
    if (!f)
        return;
    ilock(&f->lock);
    /* A weft_close of the number's previous file may still be finishing
     * (it clears FD_CLOSING after close(2) returned, and the kernel may
     * have handed the number out in between): its bits stay, and it
     * resets the rest when it is done. */
    uint32_t keep = f->flags & (FD_CLOSING | FD_CLOSEWAIT);
    store_relaxed(&f->flags, keep | (nonblocking ? FD_NONBLOCK : 0u));
    iunlock(&f->lock);
}

int weft__fd_nonblock(struct fdstate *f, int fd, uint32_t closes)
{
    uint32_t fl = load_relaxed(&f->flags);
    if (likely(fl & FD_NONBLOCK))
        return 0;
    int o = fcntl(fd, F_GETFL);
    if (o < 0)
        return -weft__errno_get();
    if (!(o & O_NONBLOCK) && fcntl(fd, F_SETFL, o | O_NONBLOCK) < 0)
        return -weft__errno_get();
    /* O_NONBLOCK means nothing to a file on disk: its calls block. */
    struct stat st;
    uint32_t learned = FD_NONBLOCK;
    if (fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode)))
        learned |= FD_FILE | FD_NOTSOCK;
    weft__fd_learn(f, closes, learned);
    return 0;
}

void weft__fd_learn(struct fdstate *f, uint32_t closes, uint32_t flag)
{
    /* Remember it only if no weft_close came between: its reset of the
     * flags must not be undone, or the number's next file, blocking,
     * would be taken for non-blocking and block its worker. */
    ilock(&f->lock);
    if (f->closes == closes && !(f->flags & FD_CLOSING))
        store_relaxed(&f->flags, f->flags | flag);
    iunlock(&f->lock);
}

/* ---- the epoll instance ------------------------------------------------ */

static int io_init(void)
{
    if (likely(load_acquire(&epfd) >= 0))
        return 0;
    ilock(&init_lock);
    int r = 0;
    if (epfd < 0) {
        int ep = epoll_create1(EPOLL_CLOEXEC);
        int ev = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.u64 = WAKE_DATA};
        if (ep < 0 || ev < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) < 0) {
            r = -weft__errno_get();
            if (ep >= 0)
                close(ep);
            if (ev >= 0)
                close(ev);
        } else {
            wakefd = ev;
            store_relaxed(&last_poll, weft_now());
            store_release(&epfd, ep); /* pairs with the acquire above */
        }
    }
    iunlock(&init_lock);
    return r;
}

/* Ends the queued waits of f that want any of events, with token tok;
 * returns them linked through next. Caller holds f->lock. */
static struct iowait *claim_waiters(struct fdstate *f, int events, uintptr_t tok)
{
    struct iowait *list = NULL, **tailp = &list;
    for (struct iowait *iw = f->head, *nx; iw; iw = nx) {
        nx = iw->next;
        if (!(iw->events & events) || !weft__wait_claim(&iw->w, WAIT_WOKEN))
            continue;
        if (iw->prev)
            iw->prev->next = iw->next;
        else
            f->head = iw->next;
        if (iw->next)
            iw->next->prev = iw->prev;
        else
            f->tail = iw->prev;
        iw->w.token = tok;
        iw->next = NULL;
        *tailp = iw;
        tailp = &iw->next;
    }
    return list;
}

/* Makes the claimed waits' threads run. Called without the lock. */
static void release_waiters(struct iowait *list)
{
    while (list) {
        struct iowait *nx = list->next; /* read before the last touch */
        weft__wait_release(&list->w);
        list = nx;
    }
}

/* One epoll event: bump the sequences it names and wake their waiters. */
static void dispatch(const struct epoll_event *e)
{
    if (e->data.u64 == WAKE_DATA) {
        uint64_t v;
        while (read(wakefd, &v, sizeof v) > 0) /* drain: the next write is an edge */
            ;
        return;
    }
    struct fdstate *f = weft__fd_find((int)e->data.u64);
    if (!f)
        return;
    int ev = 0;
    if (e->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        ev |= WEFT_IN;
    if (e->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        ev |= WEFT_OUT;
    ilock(&f->lock);
    if (ev & WEFT_IN)
        store_release(&f->rseq, f->rseq + 1); /* pairs with weft__fd_seq */
    if (ev & WEFT_OUT)
        store_release(&f->wseq, f->wseq + 1);
    struct iowait *list = f->head ? claim_waiters(f, ev, 0) : NULL;
    iunlock(&f->lock);
    release_waiters(list);
}

/* epoll_wait until deadline (-1: none, 0: do not block) into evs; returns
 * how many events it got (0 on an error such as EINTR). */
static int wait_events(int64_t deadline, struct epoll_event *evs, int max)
{
    int ep = load_acquire(&epfd), n;
    if (deadline == 0) {
        n = epoll_wait(ep, evs, max, 0);
    } else {
        struct timespec ts, *tp = NULL;
        if (deadline > 0) {
            int64_t d = deadline - weft_now();
            if (d < 0)
                d = 0;
            ts.tv_sec = d / 1000000000;
            ts.tv_nsec = d % 1000000000;
            tp = &ts;
        }
        n = epoll_pwait2(ep, evs, max, tp, NULL);
        if (n < 0 && weft__errno_get() == ENOSYS) {
            /* Before Linux 5.11: milliseconds, rounded up (never early),
             * at most INT_MAX (24 days: a later wake-up just waits again). */
            int ms = -1;
            if (tp) {
                int64_t whole = ts.tv_sec < INT_MAX / 1000 ? ts.tv_sec * 1000 : INT_MAX;
                int64_t total = whole + (ts.tv_nsec + 999999) / 1000000;
                ms = total < INT_MAX ? (int)total : INT_MAX;
            }
            n = epoll_wait(ep, evs, max, ms);
        }
    }
    store_relaxed(&last_poll, weft_now());
    return n < 0 ? 0 : n;
}

static void dispatch_all(const struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++)
        dispatch(&evs[i]);
}

/* A fork child: the epoll instance is the parent's (shared through the
 * copied fd: waiting on it here would steal the parent's events), and the
 * table's entries hold the parent's waiters and locks. The child closes
 * its copies and forgets every fd; the table's chunks stay allocated,
 * unreferenced. The next wait makes a new epoll instance. */
void weft__io_reset_child(void)
{
    if (epfd >= 0)
        close(epfd);
    if (wakefd >= 0)
        close(wakefd);
    epfd = wakefd = -1;
    init_lock = (struct ilock)ILOCK_INIT;
    poll_owner = NULL;
    last_poll = 0;
    weft__zero(fd_dir, sizeof fd_dir);
}

/* ---- hooks for the scheduler ------------------------------------------- */

bool weft__io_idle(struct kthread *k, int64_t deadline)
{
    if (load_acquire(&epfd) < 0)
        return false;
    struct kthread *none = NULL;
    if (!cas_seq(&poll_owner, &none, k))
        return false; /* another M polls; park on the futex */
    struct epoll_event evs[EVENTS_IDLE];
    int n = 0;
    /* Read parked after publishing poll_owner: pairs with kthread_wake,
     * which clears parked before reading poll_owner (see top). */
    if (load_seq(&k->parked))
        n = wait_events(deadline, evs, EVENTS_IDLE);
    store_seq(&poll_owner, (struct kthread *)NULL);
    /* Not idle any more before readying anyone: their wakep() must see
     * the true idle count, or it could pick this M and wake nobody. */
    weft__idle_leave(k);
    dispatch_all(evs, n);
    return true;
}

bool weft__io_kick(struct kthread *k)
{
    if (load_seq(&poll_owner) != k)
        return false;
    uint64_t one = 1;
    ssize_t r = write(wakefd, &one, sizeof one);
    (void)r; /* EAGAIN only if the counter is full: it is readable anyway */
    return true;
}

void weft__io_poll_busy(uint32_t tick)
{
    if ((tick & (BUSY_EVERY - 1)) != 0 || load_relaxed(&epfd) < 0 || load_relaxed(&poll_owner))
        return;
    struct epoll_event evs[EVENTS_BUSY];
    dispatch_all(evs, wait_events(0, evs, EVENTS_BUSY));
}

void weft__io_poll_spin(void)
{
    if (load_relaxed(&epfd) < 0 || load_relaxed(&poll_owner))
        return;
    struct epoll_event evs[EVENTS_IDLE];
    dispatch_all(evs, wait_events(0, evs, EVENTS_IDLE));
}

void weft__io_poll_stale(int64_t now)
{
    if (load_acquire(&epfd) < 0 || load_relaxed(&poll_owner) ||
        now - load_relaxed(&last_poll) < STALE_NS)
        return;
    struct epoll_event evs[EVENTS_IDLE];
    dispatch_all(evs, wait_events(0, evs, EVENTS_IDLE));
}

/* ---- waiting ----------------------------------------------------------- */

static bool closing_validate(void *ctx)
{
    struct fdstate *f = ctx;
    return load_acquire(&f->flags) & FD_CLOSING; /* pairs with weft_close */
}

/* A wrapper that began after a weft_close of its fd number began: the
 * number is either that closing file's or already a new one's. Waits
 * until the close is done (it takes one close(2)), the deadline passes or
 * (with stop) a stop comes, so the next try asks the kernel which.
 * Returns 0, or -ECANCELED when stopped. Called with f->lock held; drops
 * it. May switch threads. */
static int wait_closed(struct fdstate *f, int64_t deadline, bool stop)
{
    store_relaxed(&f->flags, f->flags | FD_CLOSEWAIT);
    iunlock(&f->lock);
    int r = weft__park_ex(f, closing_validate, NULL, f, deadline, 0, NULL, stop);
    return r == -ECANCELED ? r : 0;
}

static int wait_kernel(struct fdstate *f, int fd, int events, const struct fdsnap *s,
                       int64_t deadline);

int weft__fd_wait(struct fdstate *f, int fd, int events, const struct fdsnap *s, int64_t deadline,
                  bool stop)
{
    if (!weft__current())
        return wait_kernel(f, fd, events, s, deadline);
    int r = io_init();
    if (r < 0)
        return r;
    ilock(&f->lock);
    if (f->closes != s->closes) {
        iunlock(&f->lock); /* weft_close'd while the wrapper ran */
        return -EBADF;
    }
    uint32_t fl = f->flags;
    if (fl & FD_CLOSING)
        return wait_closed(f, deadline, stop);
    if (!(fl & FD_REGISTERED)) {
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                .data.u64 = (uint64_t)fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0 && weft__errno_get() != EEXIST) {
            r = -weft__errno_get();
            iunlock(&f->lock);
            return r;
        }
        store_relaxed(&f->flags, fl | FD_REGISTERED);
    }
    if (((events & WEFT_IN) && f->rseq != s->rseq) ||
        ((events & WEFT_OUT) && f->wseq != s->wseq)) {
        iunlock(&f->lock); /* an edge came since the try: try again */
        return 0;
    }
    struct iowait iw = {.events = events, .prev = f->tail, .next = NULL};
    weft__wait_prepare(&iw.w);
    if (f->tail)
        f->tail->next = &iw;
    else
        f->head = &iw;
    f->tail = &iw;
    iunlock(&f->lock);

    uint32_t how = weft__wait_block(&iw.w, deadline, stop);
    if (how == WAIT_WOKEN)
        return (int)(intptr_t)iw.w.token; /* unlinked by the waker */
    ilock(&f->lock); /* the deadline or a stop won: nobody else unlinks us */
    if (iw.prev)
        iw.prev->next = iw.next;
    else
        f->head = iw.next;
    if (iw.next)
        iw.next->prev = iw.prev;
    else
        f->tail = iw.prev;
    iunlock(&f->lock);
    return how == WAIT_STOPPED ? -ECANCELED : -ETIMEDOUT;
}

/* A kernel thread that is not a worker blocks in ppoll. It cannot be woken
 * by weft_close (close(2) does not wake poll either: poll holds its own
 * reference to the file), so it sleeps in slices and notices a weft_close
 * within one. */
#define KERNEL_SLICE_NS 50000000

static int wait_kernel(struct fdstate *f, int fd, int events, const struct fdsnap *s,
                       int64_t deadline)
{
    for (;;) {
        ilock(&f->lock);
        if (f->closes != s->closes) {
            iunlock(&f->lock);
            return -EBADF;
        }
        if (f->flags & FD_CLOSING) {
            wait_closed(f, deadline, false); /* a kernel thread: never stopped */
            return 0;
        }
        iunlock(&f->lock);
        int64_t now = weft_now();
        if (deadline >= 0 && now >= deadline)
            return -ETIMEDOUT;
        int64_t d = deadline < 0 || deadline - now > KERNEL_SLICE_NS ? KERNEL_SLICE_NS
                                                                     : deadline - now;
        struct timespec ts = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};
        struct pollfd p = {.fd = fd, .events = (short)events};
        int n = ppoll(&p, 1, &ts, NULL);
        if (load_acquire(&f->closes) != s->closes)
            return -EBADF;
        if (n > 0)
            return (p.revents & POLLNVAL) ? -EBADF : 0;
        if (n < 0 && weft__errno_get() != EINTR)
            return -weft__errno_get();
    }
}

int weft__fd_exempt(int fd, bool exempt)
{
    struct fdstate *f = weft__fd_get(fd);
    if (!f)
        return weft__fd_err(fd);
    ilock(&f->lock);
    int r = 0;
    if (f->flags & FD_CLOSING)
        r = -EBADF; /* the number is between two files */
    else
        store_relaxed(&f->flags, exempt ? f->flags | FD_EXEMPT : f->flags & ~FD_EXEMPT);
    iunlock(&f->lock);
    return r;
}

/* ---- closing ----------------------------------------------------------- */

int weft_close(int fd)
{
    struct fdstate *f = weft__fd_find(fd);
    if (f) {
        ilock(&f->lock);
        if (f->flags & FD_REGISTERED)
            epoll_ctl(load_relaxed(&epfd), EPOLL_CTL_DEL, fd, NULL);
        store_relaxed(&f->flags, (f->flags & FD_CLOSEWAIT) | FD_CLOSING);
        store_release(&f->closes, f->closes + 1); /* pairs with wait_kernel */
        struct iowait *list = claim_waiters(f, WEFT_IN | WEFT_OUT, (uintptr_t)(intptr_t)-EBADF);
        iunlock(&f->lock);
        release_waiters(list);
    }
    int r = close(fd) < 0 ? -weft__errno_get() : 0;
    if (f) {
        /* From here the number may be a new file's: forget the old one's
         * state and let the wrappers that waited for the close go on. */
        ilock(&f->lock);
        bool waited = f->flags & FD_CLOSEWAIT;
        store_release(&f->flags, 0u); /* pairs with closing_validate */
        iunlock(&f->lock);
        if (waited)
            weft__unpark_ex(f, -1, NULL, NULL);
    }
    return r == -EINTR ? 0 : r; /* Linux frees the fd even then */
}
