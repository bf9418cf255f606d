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
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>

#define TICK_NS 1000000
#define FAST_TICK_NS 20000
#define TRIM_POLL_NS 250000000

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
            store_seq(&rt->monitor_sleeping, 1);
            if (load_seq(&rt->nidle) == (uint32_t)rt->nworkers)
                weft__futex_wait(&rt->monitor_word, 0,
                                 weft__cache_trim_pending() ? now + TRIM_POLL_NS : -1);
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
    if (load_seq(&rt->monitor_sleeping))
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
    if (pthread_create(&t, NULL, monitor_main, NULL) == 0)
        pthread_detach(t);
    /* Without a monitor weft still runs; the reaper, the starvation kick,
     * hand-offs and preemption are missing. */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
