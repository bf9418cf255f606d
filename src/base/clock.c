/* clock.c - weft's one clock: int64_t nanoseconds on CLOCK_MONOTONIC. */
#include "weft.h"

#include <time.h>

int64_t weft_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t weft_after(int64_t ns)
{
    int64_t now = weft_now();
    if (ns > INT64_MAX - now)
        return INT64_MAX; /* as good as for ever, and still a deadline */
    if (ns < -now)
        return 0; /* long past, but never negative, which means for ever */
    return now + ns;
}
