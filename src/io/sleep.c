/*
 * sleep.c - weft_sleep: a wait that only its deadline, or a stop, ends.
 *
 * A user thread blocks on a struct wait (sync/wait.c) published in no
 * queue: its deadline is a timer in its worker's heap, which the worker
 * runs while scheduling or, idle, sleeps until, and a stopper finds it
 * through the thread's descriptor. A kernel thread that is not a worker
 * sleeps in the kernel on the absolute deadline; it is never stopped.
 */
#include "io/io.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

int weft__sleep(int64_t deadline, bool stop)
{
    if (deadline >= 0 && deadline <= weft_now())
        return 0; /* done without waiting, stopped or not */
    if (weft__current()) {
        if (stop && (weft__stop_self() & ST_STOP))
            return -ECANCELED;
        struct wait w;
        weft__wait_prepare(&w);
        return weft__wait_block(&w, deadline, stop) == WAIT_STOPPED ? -ECANCELED : 0;
    }
    if (deadline < 0) {
        for (;;)
            pause(); /* nothing ends it: kernel threads are never stopped */
    }
    struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    return 0;
}

int weft_sleep(int64_t deadline)
{
    return weft__sleep(deadline, true);
}
