/*
 * cache.c - death row: finished threads' descriptors and stacks, kept
 * mapped and bound to their table slots so the next spawn reuses them.
 * Mapping and first-touching a fresh stack costs microseconds on a virtual
 * machine, and unmapping one costs a TLB shootdown on every CPU that runs
 * the process; reusing a cached one costs a few loads.
 *
 * Two levels, both arrays of pointers (a list threaded through the
 * descriptors would touch one cold page per entry when moving a batch).
 * Each worker has a private LIFO of up to CACHE_LOCAL_MAX default-size
 * threads, no lock; the most recently finished stack is the one most
 * likely still in the CPU's caches. When it is full, its older half moves
 * to the global level, under a lock; a worker whose LIFO is empty refills
 * half of it from there, and kernel threads that are not workers use the
 * global level directly. Taking from and adding to a worker's LIFO when it
 * is neither empty nor full is inline at the callers (internal.h); the
 * functions here handle the rest.
 *
 * The global level is an array per stack size (a size class): the
 * default size always has one, and up to NCLASS - 1 other sizes get one
 * each as threads of that size finish; a size that finds every class
 * taken has its stacks unmapped. Threads of other sizes skip the worker
 * LIFOs and go to their class directly (a lock, not an mmap and a munmap:
 * a million detached 16 KiB threads ending together used to unmap a
 * million stacks, 12 us each here, most of it shootdown interrupts).
 *
 * The reaper (weft__cache_trim, run by the monitor about once a second)
 * unmaps what each class did not need during the last second: its
 * low-water mark since the previous trim, less what it keeps (CLASS_KEEP
 * stacks, fewer for big stacks: no class keeps more than KEEP_BYTES of
 * mappings). A program that churns through a burst of threads again and
 * again keeps its stacks; one that had a burst once gets the memory back.
 * A class of another size than the default that saw no spawn and no end
 * for a whole second is emptied and given up, so a program that moves on
 * to new sizes is not stuck with the old ones. Unmapping takes the oldest
 * entries, a batch per call, outside the lock.
 */
#include "internal.h"
#include "arch/fiber.h"

#include <stdlib.h>
#include <string.h>

#define NCLASS 8
#define CLASS_KEEP 1024               /* stacks a class keeps, at most... */
#define KEEP_BYTES (64ul << 20)       /* ...and no more mapping than this */
#define TRIM_BATCH 8192
#define TRIM_EVERY_NS 1000000000

struct size_class {
    size_t stack_size;        /* 0: free (never for class 0, the default) */
    struct uthread **arr;     /* oldest first */
    long count;               /* stored atomically: also read without the
                                 lock, as a hint */
    long cap;
    long min;                 /* low-water mark of count since last trim */
    long keep;                /* what the reaper leaves (class_keep) */
    bool used;                /* a put or take since the last trim */
};

static struct ilock glock = ILOCK_INIT;
static struct size_class classes[NCLASS]; /* glock */
static long cached_total;     /* glock; atomic stores: all classes' count */
static int64_t last_trim;     /* reaper only */

/* A class just got work for the reaper (has_work). A monitor that
 * went to sleep with nothing to trim (every worker idle) would otherwise
 * never come back for it when the stacks arrive from a plain kernel thread
 * joining its weft threads, which wakes no worker. The monitor reads the
 * counts after announcing its sleep (monitor.c); this reads the flag after
 * the count's store, both seq_cst, so one of the two sees the other. The
 * wake is the monitor's own (weft__monitor_wake), written out here because
 * this layer sits above the scheduler's. */
static void trim_due(void)
{
    struct runtime *rt = &weft__rt;
    fence_seq();
    if (load_seq(&rt->monitor_sleeping)) {
        store_relaxed(&rt->monitor_word, 1);
        weft__futex_wake(&rt->monitor_word, 1);
    }
}

/* Whether the reaper has work in c if it holds count stacks: more than it
 * keeps, or any at all in a class of another size than the default, which
 * it empties once unused (see top). */
static bool has_work(const struct size_class *c, long count)
{
    return count > load_relaxed(&c->keep) || (c != &classes[0] && count > 0);
}

/* How many stacks of stack_size the reaper leaves a class: CLASS_KEEP,
 * fewer where that many would map more than KEEP_BYTES (1 MiB stacks: 63). */
static long class_keep(size_t stack_size)
{
    long by_bytes = (long)(KEEP_BYTES / (stack_size + weft__page_size()));
    return by_bytes < 1 ? 1 : by_bytes < CLASS_KEEP ? by_bytes : CLASS_KEEP;
}

/* The class of stack_size, or NULL. With make, one is claimed for a size
 * that has none. Called with glock held. */
static struct size_class *class_of(size_t stack_size, bool make)
{
    struct size_class *c = &classes[0];
    if (!c->stack_size) {
        c->stack_size = weft__rt.stack_size; /* set once the runtime runs */
        store_relaxed(&c->keep, class_keep(c->stack_size));
    }
    if (stack_size == c->stack_size)
        return c;
    struct size_class *free_one = NULL;
    for (int i = 1; i < NCLASS; i++) {
        c = &classes[i];
        if (c->stack_size == stack_size)
            return c;
        if (!c->stack_size && !free_one)
            free_one = c;
    }
    if (make && free_one) {
        free_one->stack_size = stack_size;
        store_relaxed(&free_one->keep, class_keep(stack_size));
        free_one->min = 0;
        return free_one;
    }
    return NULL;
}

/* Appends n entries of one size. Returns how many it kept; the caller
 * unmaps the rest (no class for the size, or no memory for the array). */
static long global_put(size_t stack_size, struct uthread **v, long n)
{
    ilock(&glock);
    struct size_class *c = class_of(stack_size, true);
    if (!c) {
        iunlock(&glock);
        return 0;
    }
    if (c->count + n > c->cap) {
        long cap = c->cap ? c->cap : 1024;
        while (cap < c->count + n)
            cap *= 2;
        struct uthread **a = realloc(c->arr, (size_t)cap * sizeof *a);
        if (a) {
            c->arr = a;
            c->cap = cap;
        } else {
            n = c->cap - c->count;
        }
    }
    memcpy(c->arr + c->count, v, (size_t)n * sizeof *v);
    bool crossed = !has_work(c, c->count) && has_work(c, c->count + n);
    c->used = true;
    store_relaxed(&c->count, c->count + n);
    store_relaxed(&cached_total, cached_total + n);
    iunlock(&glock);
    if (crossed)
        trim_due();
    return n;
}

/* Takes up to n of the most recently cached entries of one size into v. */
static long global_take(size_t stack_size, struct uthread **v, long n)
{
    if (!load_relaxed(&cached_total))
        return 0;
    ilock(&glock);
    struct size_class *c = class_of(stack_size, false);
    if (!c || !c->count) {
        iunlock(&glock);
        return 0;
    }
    if (n > c->count)
        n = c->count;
    c->used = true;
    store_relaxed(&c->count, c->count - n);
    store_relaxed(&cached_total, cached_total - n);
    memcpy(v, c->arr + c->count, (size_t)n * sizeof *v);
    if (c->count < c->min)
        c->min = c->count;
    iunlock(&glock);
    return n;
}

struct uthread *weft__cache_get_slow(struct worker *w, size_t stack_size)
{
    struct uthread *ut = NULL;
    if (stack_size == weft__rt.stack_size && w) {
        if (!w->ncache)
            w->ncache = (int)global_take(stack_size, w->cache, CACHE_LOCAL_MAX / 2);
        if (w->ncache)
            ut = w->cache[--w->ncache];
    } else {
        global_take(stack_size, &ut, 1);
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
    if (ut->stack_size != weft__rt.stack_size || !w) {
        if (global_put(ut->stack_size, &ut, 1) == 0)
            weft__stack_unmap(ut);
        return;
    }
    if (w->ncache == CACHE_LOCAL_MAX) {
        /* Full: the older half goes to the global level. */
        long half = CACHE_LOCAL_MAX / 2;
        long kept = global_put(ut->stack_size, w->cache, half);
        unmap_all(w->cache + kept, half - kept);
        memmove(w->cache, w->cache + half, (size_t)(CACHE_LOCAL_MAX - half) * sizeof *w->cache);
        w->ncache -= (int)half;
    }
    w->cache[w->ncache++] = ut;
}

/* Takes the surplus of one class (called with glock held) into *list,
 * which is batch or a fresh allocation. Returns how many. The surplus is
 * what the class kept above its keep and did not need since the last
 * trim; for a class of another size than the default that nobody used
 * since then, everything, and the class is given up once empty. */
static long class_trim(struct size_class *c, struct uthread **batch, long room,
                       struct uthread ***list)
{
    bool unused = c != &classes[0] && !c->used;
    long excess = unused ? c->count : c->min - c->keep;
    if (excess > TRIM_BATCH)
        excess = TRIM_BATCH;
    long took = 0;
    *list = NULL;
    if (excess > 0) {
        /* The oldest entries: the bottom of the array. */
        *list = excess <= room ? batch : malloc((size_t)excess * sizeof **list);
        if (*list) {
            memcpy(*list, c->arr, (size_t)excess * sizeof **list);
            memmove(c->arr, c->arr + excess, (size_t)(c->count - excess) * sizeof *c->arr);
            store_relaxed(&c->count, c->count - excess);
            store_relaxed(&cached_total, cached_total - excess);
            took = excess;
        }
    }
    if (unused && c->count == 0) {
        free(c->arr);
        /* Field by field: count and keep are read without the lock. */
        c->stack_size = 0;
        c->arr = NULL;
        c->cap = 0;
        store_relaxed(&c->keep, 0);
    }
    c->min = c->count;
    c->used = false;
    return took;
}

void weft__cache_trim(int64_t now)
{
    if (now - last_trim < TRIM_EVERY_NS)
        return;
    last_trim = now;
    for (int i = 0; i < NCLASS; i++) {
        struct uthread *batch[256], **list = NULL;
        ilock(&glock);
        long took = classes[i].stack_size ? class_trim(&classes[i], batch, 256, &list) : 0;
        iunlock(&glock);
        unmap_all(list, took);
        if (took && list != batch)
            free(list);
    }
}

/* A fork child: the cache's lock and arrays may be mid-update by threads
 * that do not exist here. Start empty (the cached stacks leak in the
 * child), and reset the handle table likewise. */
void weft__thread_reset_child(void)
{
    glock = (struct ilock)ILOCK_INIT;
    memset(classes, 0, sizeof classes);
    cached_total = 0;
    weft__slot_reset_child();
}

bool weft__cache_trim_pending(void)
{
    for (int i = 0; i < NCLASS; i++)
        if (has_work(&classes[i], load_seq(&classes[i].count))) /* seq_cst: see trim_due */
            return true;
    return false;
}
