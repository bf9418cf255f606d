/*
 * stack.c - user-thread stacks: mapped lazily, guarded below, descriptor on
 * top.
 *
 * Layout of one mapping (addresses grow upward):
 *
 *   map                     map + page                      map + map_size
 *   | guard page | stack, grows down ...  | struct uthread | colour |
 *
 * The mapping is MAP_NORESERVE: the kernel commits a page only when it is
 * first touched, so a parked thread that used little stack costs about one
 * page (the descriptor shares the top page with the first frames).
 *
 * Guards. A PROT_NONE page made with mprotect splits the mapping and costs
 * one entry of the process's vm.max_map_count (65530 by default), which is
 * why libraries that rely on it stop near 32,000 threads. In order of
 * preference:
 *   1. MADV_GUARD_INSTALL (Linux 6.13+): a guard that costs no map entry;
 *      adjacent stacks even merge into one mapping.
 *   2. mprotect, within a budget of a quarter of vm.max_map_count.
 *   3. past that budget, a canary at the bottom of the stack, checked each
 *      time the thread switches out. Later detection, but a million
 *      threads still fit on a default kernel.
 * The first mode that fails is never tried again.
 *
 * Transparent huge pages could turn a stack's few touched pages into 2 MiB
 * of resident memory; when THP is "always", stacks get MADV_NOHUGEPAGE.
 */
#include "internal.h"
#include "base/file.h"
#include "arch/fiber.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define CANARY 0x5745465453544b21ull /* "WEFTSTK!" */
#define COLOURS 16                   /* descriptor offsets, 64 bytes apart */

size_t weft__page; /* read through weft__page_size() */
static int guard_mode = GUARD_INSTALL; /* atomic: best mode still believed to work */
static int64_t mprotect_budget;        /* atomic: guard pages mprotect may still make */
static bool thp_always;

static long read_long_file(const char *path, long dflt)
{
    char buf[64];
    return weft__read_file(path, buf, sizeof buf) < 0 ? dflt : strtol(buf, NULL, 10);
}

void weft__stack_init(void)
{
    weft__page = (size_t)sysconf(_SC_PAGESIZE);
    mprotect_budget = read_long_file("/proc/sys/vm/max_map_count", 65530) / 4;
    char buf[128] = {0};
    int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        (void)n;
        close(fd);
    }
    thp_always = strstr(buf, "[always]") != NULL;
}

/* Makes the lowest page of the mapping a guard; returns the kind made. */
static int make_guard(char *map)
{
    int mode = load_relaxed(&guard_mode);
    if (mode == GUARD_INSTALL) {
        if (madvise(map, weft__page, MADV_GUARD_INSTALL) == 0)
            return GUARD_INSTALL;
        /* EINVAL: the kernel predates guard regions. Fall back for good. */
        store_relaxed(&guard_mode, GUARD_MPROTECT);
        mode = GUARD_MPROTECT;
    }
    if (mode == GUARD_MPROTECT) {
        if (fetch_add_relaxed(&mprotect_budget, -1) > 0 &&
            mprotect(map, weft__page, PROT_NONE) == 0)
            return GUARD_MPROTECT;
        store_relaxed(&guard_mode, GUARD_CANARY);
    }
    return GUARD_CANARY;
}

struct uthread *weft__stack_new(size_t stack_size)
{
    size_t desc = (sizeof(struct uthread) + 63) & ~(size_t)63;
    size_t map_size = weft__page + stack_size;
    char *map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    if (thp_always)
        madvise(map, map_size, MADV_NOHUGEPAGE);
    int guard = make_guard(map);
    /* Colouring: each new stack puts its descriptor, and so the hot top of
     * its stack, a different number of cache lines below the top of the
     * mapping. Stacks are page-aligned, so without it the descriptors and
     * saved registers of all threads share their offsets in the page and
     * compete for the same few L1 sets; bench/switch's two yielding threads
     * then ran at 5.7 ns a switch in some runs and 8.5-10 ns in others,
     * depending on where address randomization put the mappings. */
    static uint32_t colour;
    size_t off = desc + (size_t)(fetch_add_relaxed(&colour, 1) % COLOURS) * 64;
    struct uthread *ut = (struct uthread *)(map + map_size - off);
    memset(ut, 0, sizeof *ut);
    ut->map = map;
    ut->map_size = map_size;
    ut->stack_size = stack_size;
    ut->guard = (uint8_t)guard;
    if (guard == GUARD_CANARY) {
        /* The would-be guard page is usable stack here; the canary sits at
         * the very bottom. */
        ut->canary = (uint64_t *)map;
        *ut->canary = CANARY;
    }
    int slot = weft__slot_alloc(ut);
    if (slot < 0) {
        munmap(map, map_size);
        return NULL;
    }
    ut->slot = (uint32_t)slot;
    ut->slotp = weft__slot_get((uint32_t)slot);
    return ut;
}

void weft__stack_unmap(struct uthread *ut)
{
    /* The mprotect budget counts live guard pages. */
    if (ut->guard == GUARD_MPROTECT)
        fetch_add_relaxed(&mprotect_budget, 1);
    weft__slot_free(ut->slot);
    /* ASan keeps shadow state for the stack's old frames; clear it so the
     * next mapping at this address starts clean. */
    fiber_unpoison(ut->map + weft__page, ut->map_size - weft__page);
    munmap(ut->map, ut->map_size);
}

/* Not instrumented by ASan: once frames reach the bottom of the stack,
 * the canary lies in a frame's redzone, and an instrumented read of it got
 * stuck in ASan's report lock instead of reporting the overflow. */
__attribute__((no_sanitize_address)) void weft__stack_check(struct uthread *ut)
{
    if (ut->canary && *ut->canary != CANARY)
        weft__overflow_report(ut);
}
