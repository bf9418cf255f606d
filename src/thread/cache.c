/*
 * cache.c - death row: finished threads' descriptors and stacks, kept
 * mapped and bound to their table slots so the next spawn reuses them.
 * Mapping and first-touching a fresh stack costs microseconds on a virtual
 * machine; reusing a cached one costs a few loads.
 *
 * Two levels, both arrays of pointers (a list threaded through the
 * descriptors would touch one cold page per entry when moving a batch).
 * Each worker has a private LIFO of up to CACHE_LOCAL_MAX default-size
 * threads, no lock; the most recently finished stack is the one most
 * likely still in the CPU's caches. When it is full, its older half moves
 * to the global array, under a lock; a worker whose LIFO is empty refills
 * half of it from there, and kernel threads that are not workers use the
 * global array directly. Stacks of other sizes go to a short list
 * (ODD_MAX); past it they are unmapped. Taking from and adding to a
 * worker's LIFO when it is neither empty nor full is inline at the callers
 * (internal.h); the functions here handle the rest.
 *
 * The reaper (weft__cache_trim, run by the monitor about once a second)
 * unmaps what the global array did not need during the last second: its
 * low-water mark since the previous trim, less GLOBAL_KEEP. A program that
 * churns through a burst of threads again and again keeps its stacks; one
 * that had a burst once gets the memory back. Unmapping takes the oldest
 * entries, a batch per call, outside the lock.
 */
#include "internal.h"
#include "arch/fiber.h"

#include <stdlib.h>
#include <string.h>

#define GLOBAL_KEEP 1024
#define TRIM_BATCH 8192
#define TRIM_EVERY_NS 1000000000
#define ODD_MAX 64

static struct ilock glock = ILOCK_INIT;
static struct uthread **garr; /* glock: default-size stacks, oldest first */
static long gcount;           /* glock; stored atomically, since it is
                                 also read without the lock, as a hint */
static long gcap;             /* glock */
static long gmin;             /* glock: low-water mark of gcount since last trim */
static struct uthread *odd;   /* glock: stacks of other sizes, linked */
static int nodd;              /* glock; stored atomically, read as a hint */
static int64_t last_trim;     /* reaper only */

/* Appends n entries to the global array. Returns how many fit; the caller
 * unmaps the rest (only when memory for the array itself ran out). */
static long global_put(struct uthread **v, long n)
{
    ilock(&glock);
    if (gcount + n > gcap) {
        long cap = gcap ? gcap : 1024;
        while (cap < gcount + n)
            cap *= 2;
        struct uthread **a = realloc(garr, (size_t)cap * sizeof *a);
        if (a) {
            garr = a;
            gcap = cap;
        } else {
            n = gcap - gcount;
        }
    }
    memcpy(garr + gcount, v, (size_t)n * sizeof *v);
    store_relaxed(&gcount, gcount + n);
    iunlock(&glock);
    return n;
}

/* Takes up to n of the most recently cached entries into v. */
static long global_take(struct uthread **v, long n)
{
    if (!load_relaxed(&gcount))
        return 0;
    ilock(&glock);
    if (n > gcount)
        n = gcount;
    store_relaxed(&gcount, gcount - n);
    memcpy(v, garr + gcount, (size_t)n * sizeof *v);
    if (gcount < gmin)
        gmin = gcount;
    iunlock(&glock);
    return n;
}

static struct uthread *odd_get(size_t stack_size)
{
    struct uthread *found = NULL;
    ilock(&glock);
    for (struct uthread **pp = &odd; *pp; pp = &(*pp)->next) {
        if ((*pp)->stack_size == stack_size) {
            found = *pp;
            *pp = found->next;
            store_relaxed(&nodd, nodd - 1);
            break;
        }
    }
    iunlock(&glock);
    return found;
}

struct uthread *weft__cache_get_slow(struct worker *w, size_t stack_size)
{
    struct uthread *ut = NULL;
    if (stack_size != weft__rt.stack_size) {
        if (load_relaxed(&nodd))
            ut = odd_get(stack_size);
    } else if (w) {
        if (!w->ncache)
            w->ncache = (int)global_take(w->cache, CACHE_LOCAL_MAX / 2);
        if (w->ncache)
            ut = w->cache[--w->ncache];
    } else {
        global_take(&ut, 1);
    }
    if (ut) {
        ut->next = NULL;
        /* The last owner's frames left ASan poison on the stack. */
        fiber_unpoison(ut->map + weft__page_size(), ut->map_size - weft__page_size());
    }
    return ut;
}

static void unmap_all(struct uthread **v, long n)
{
    for (long i = 0; i < n; i++)
        weft__stack_unmap(v[i]);
}

void weft__cache_put_slow(struct worker *w, struct uthread *ut)
{
    if (ut->stack_size != weft__rt.stack_size) {
        /* Few programs use many sizes; keep a handful, unmap the rest. */
        ilock(&glock);
        bool keep = nodd < ODD_MAX;
        if (keep) {
            ut->next = odd;
            odd = ut;
            store_relaxed(&nodd, nodd + 1);
        }
        iunlock(&glock);
        if (!keep)
            weft__stack_unmap(ut);
        return;
    }
    if (!w) {
        if (global_put(&ut, 1) == 0)
            weft__stack_unmap(ut);
        return;
    }
    if (w->ncache == CACHE_LOCAL_MAX) {
        /* Full: the older half goes to the global array. */
        long half = CACHE_LOCAL_MAX / 2;
        long kept = global_put(w->cache, half);
        unmap_all(w->cache + kept, half - kept);
        memmove(w->cache, w->cache + half, (size_t)(CACHE_LOCAL_MAX - half) * sizeof *w->cache);
        w->ncache -= (int)half;
    }
    w->cache[w->ncache++] = ut;
}

void weft__cache_trim(int64_t now)
{
    if (now - last_trim < TRIM_EVERY_NS)
        return;
    last_trim = now;
    struct uthread *batch[256];
    ilock(&glock);
    long excess = gmin - GLOBAL_KEEP;
    if (excess > TRIM_BATCH)
        excess = TRIM_BATCH;
    long took = 0;
    struct uthread **list = NULL;
    if (excess > 0) {
        /* The oldest entries: the bottom of the array. */
        list = excess <= 256 ? batch : malloc((size_t)excess * sizeof *list);
        if (list) {
            memcpy(list, garr, (size_t)excess * sizeof *list);
            memmove(garr, garr + excess, (size_t)(gcount - excess) * sizeof *garr);
            store_relaxed(&gcount, gcount - excess);
            took = excess;
        }
    }
    gmin = gcount;
    iunlock(&glock);
    unmap_all(list, took);
    if (list && list != batch)
        free(list);
}

/* A fork child: the cache's lock and arrays may be mid-update by threads
 * that do not exist here. Start empty (the cached stacks leak in the
 * child), and reset the handle table likewise. */
void weft__thread_reset_child(void)
{
    glock = (struct ilock)ILOCK_INIT;
    garr = NULL;
    gcount = gcap = gmin = 0;
    odd = NULL;
    nodd = 0;
    weft__slot_reset_child();
}

bool weft__cache_trim_pending(void)
{
    return load_relaxed(&gcount) > GLOBAL_KEEP;
}
