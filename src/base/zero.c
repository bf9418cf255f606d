/* zero.c - see zero.h. */
#include "base/zero.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void weft__zero(void *p, size_t n)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p, end = a + n;
    uintptr_t lo = (a + page - 1) & ~(page - 1), hi = end & ~(page - 1);
    if (hi <= lo || madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0) {
        memset(p, 0, n);
        return;
    }
    memset(p, 0, lo - a);
    memset((void *)hi, 0, end - hi);
}
