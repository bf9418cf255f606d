/*
 * sleep.c - weft_sleep: a wait that only its deadline ends.
 *
 * A user thread blocks on a struct wait (sync/wait.c) that nobody else can
 * see: its deadline is a timer in its worker's heap, which the worker runs
 * while scheduling or, idle, sleeps until. A kernel thread that is not a
 * worker sleeps in the kernel on the absolute deadline.
 */
#include "sync/sync.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

int weft_sleep(int64_t deadline)
{
    if (deadline >= 0 && deadline <= weft_now())
        return 0;
    if (weft__current()) {
        struct wait w;
        weft__wait_prepare(&w);
        weft__wait_block(&w, deadline, false);
        return 0;
    }
    if (deadline < 0) {
        for (;;)
            pause(); /* nothing ends it (a stop will, later) */
    }
    struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    return 0;
}
