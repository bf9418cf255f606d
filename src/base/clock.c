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
    return weft_now() + ns;
}
