/*
 * monitor.c - a kernel thread that watches the workers from outside.
 *
 * Today it does three things: it polls for I/O when no worker has for 10 ms
 * (io/poll.c: a worker running one long thread polls nobody), it wakes an idle worker when runnable threads
 * have waited for a tick while workers sleep (a thread handed to a busy
 * worker's runnext slot wakes nobody, to keep hand-offs cheap; this bounds
 * how long it can wait), and it runs the reaper that unmaps cached stacks
 * when the cache stays large. Preemption and system-call hand-off will
 * live here too.
 *
 * It ticks every millisecond while any worker is busy and sleeps on a
 * futex when all are idle (waking every 250 ms only while the reaper still
 * has stacks to unmap), so an idle process uses no CPU. A worker that
 * leaves idleness kicks it (weft__monitor_kick); the sleeping flag and the
 * idle count are both seq_cst, so the monitor either sees a busy worker
 * before sleeping or the worker sees the monitor asleep and wakes it.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>

#define TICK_NS 1000000
#define TRIM_POLL_NS 250000000


static void *monitor_main(void *arg)
{
    (void)arg;
    struct runtime *rt = &weft__rt;
    for (;;) {
        int64_t now = weft_now();
        weft__cache_trim(now);
        weft__io_poll_stale(now);
        if (load_seq(&rt->nidle) && !load_seq(&rt->nspinning) && weft__any_runnable())
            weft__wakep();

        if (load_seq(&rt->nidle) == (uint32_t)rt->nworkers) {
            store_seq(&rt->monitor_sleeping, 1);
            if (load_seq(&rt->nidle) == (uint32_t)rt->nworkers)
                weft__futex_wait(&rt->monitor_word, 0,
                                 weft__cache_trim_pending() ? now + TRIM_POLL_NS : -1);
            store_seq(&rt->monitor_sleeping, 0);
            store_relaxed(&rt->monitor_word, 0);
        } else {
            weft__futex_wait(&rt->monitor_word, 0, now + TICK_NS);
        }
    }
    return NULL;
}

void weft__monitor_kick(void)
{
    struct runtime *rt = &weft__rt;
    if (load_seq(&rt->monitor_sleeping)) {
        store_relaxed(&rt->monitor_word, 1);
        weft__futex_wake(&rt->monitor_word, 1);
    }
}

void weft__monitor_start(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    if (pthread_create(&t, NULL, monitor_main, NULL) == 0)
        pthread_detach(t);
    /* Without a monitor weft still runs; only the reaper and the
     * starvation kick are missing. */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
