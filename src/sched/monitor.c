/*
 * monitor.c - a kernel thread that watches the workers from outside.
 *
 * It polls for I/O when no worker has for 10 ms (io/poll.c: a worker
 * running one long thread polls nobody), wakes an idle worker when
 * runnable threads have waited for a tick while workers sleep (a thread
 * handed to a busy worker's runnext slot wakes nobody, to keep hand-offs
 * cheap; this bounds how long it can wait), runs the reaper that unmaps
 * cached stacks when the cache stays large, hands the worker of a kernel
 * thread stuck in a blocking section to a spare one (handoff.c), and asks
 * threads that have run for a whole time slice to yield (preempt.c).
 *
 * It ticks every millisecond while any worker is busy, every 20 us while
 * blocking sections come and go (handoff.c says how it learns of them),
 * and sleeps on a futex when all workers are idle (waking every 250 ms
 * only while the reaper still has stacks to unmap), so an idle process
 * uses no CPU. A worker that leaves idleness kicks it (weft__monitor_kick);
 * the sleeping flag and the idle count are both seq_cst, so the monitor
 * either sees a busy worker before sleeping or the worker sees the monitor
 * asleep and wakes it. The fast ticks do only the hand-off look; the rest
 * runs once per millisecond whatever the tick.
 *
 * The kick is a futex wake, a microsecond or two on a virtual machine, paid
 * by a worker on its way to run a thread that just woke. Most such wake-ups
 * are timers, which the monitor can foresee: asleep, it sets its own
 * alarm a tick after the earliest timer of any worker (as Go's sysmon
 * sleeps until the next timer when every P is idle), and a worker leaving
 * idleness within a tick of that alarm does not kick. Whatever it then
 * runs is looked at a tick later at most, as it would be between two
 * ordinary ticks. A worker that wakes for anything else (I/O, a thread
 * made runnable by a kernel thread) kicks unless the alarm is as close,
 * which bounds the wait the same way.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>

#define TICK_NS 1000000
#define FAST_TICK_NS 20000
#define TRIM_POLL_NS 250000000

/* The earliest deadline in any worker's timer heap, or -1. */
static int64_t earliest_timer(void)
{
    struct runtime *rt = &weft__rt;
    int64_t first = -1;
    for (int i = 0; i < rt->nworkers; i++) {
        int64_t when = weft__timers_next(&rt->workers[i]);
        if (when >= 0 && (first < 0 || when < first))
            first = when;
    }
    return first;
}

static void *monitor_main(void *arg)
{
    (void)arg;
    struct runtime *rt = &weft__rt;
    /* Fast ticks of 20 us would be 70 us with the default 50 us slack. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    int64_t last_slow = 0;
    for (;;) {
        /* Cleared before looking, so a wake-up during the look is kept. */
        store_relaxed(&rt->monitor_word, 0);
        int64_t now = weft_now();
        weft__handoff_scan(now);
        if (now - last_slow >= TICK_NS) {
            last_slow = now;
            weft__cache_trim(now);
            weft__io_poll_stale(now);
            if (load_seq(&rt->nidle) && !load_seq(&rt->nspinning) && weft__any_runnable())
                weft__wakep();
            weft__preempt_scan(now);
        }

        if (load_seq(&rt->nidle) == (uint32_t)rt->nworkers) {
            int64_t until = earliest_timer();
            if (until >= 0) /* a tick later; saturating: weft_after gives INT64_MAX */
                until = until > INT64_MAX - TICK_NS ? -1 : (until > now ? until : now) + TICK_NS;
            bool trim = weft__cache_trim_pending();
            if (trim && (until < 0 || until > now + TRIM_POLL_NS))
                until = now + TRIM_POLL_NS;
            /* Published by the seq_cst store below, which a kicker reads. */
            store_relaxed(&rt->monitor_wake_at, until < 0 ? INT64_MAX : until);
            store_seq(&rt->monitor_sleeping, 1);
            /* Both read again after the flag: a worker leaving idleness,
             * or the stack cache growing past what it keeps (cache.c,
             * trim_due), either sees the flag or is seen here. */
            if (load_seq(&rt->nidle) == (uint32_t)rt->nworkers &&
                (trim || !weft__cache_trim_pending()))
                weft__futex_wait(&rt->monitor_word, 0, until);
            store_seq(&rt->monitor_sleeping, 0);
        } else {
            bool fast = load_relaxed(&rt->monitor_fast);
            weft__futex_wait(&rt->monitor_word, 0, now + (fast ? FAST_TICK_NS : TICK_NS));
        }
    }
    return NULL;
}

void weft__monitor_kick(void)
{
    struct runtime *rt = &weft__rt;
    if (!load_seq(&rt->monitor_sleeping))
        return;
    /* Read after the flag: this sleep's alarm, or a later one's. */
    int64_t at = load_relaxed(&rt->monitor_wake_at);
    if (at != INT64_MAX && at - weft_now() <= TICK_NS)
        return; /* its alarm rings within a tick: no need */
    weft__monitor_wake();
}

void weft__monitor_wake(void)
{
    struct runtime *rt = &weft__rt;
    store_relaxed(&rt->monitor_word, 1);
    weft__futex_wake(&rt->monitor_word, 1);
}
void weft__monitor_start(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    if (pthread_create(&t, NULL, monitor_main, NULL) == 0) {
        pthread_setname_np(t, "weft-monitor"); /* as for the workers */
        pthread_detach(t);
    }
    /* Without a monitor weft still runs; the reaper, the starvation kick,
     * hand-offs and preemption are missing. */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
