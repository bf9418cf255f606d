/*
 * cache.c - death row: finished threads' descriptors and stacks, kept
 * mapped and bound to their table slots so the next spawn reuses them.
 * Mapping and first-touching a fresh stack costs several microseconds on a
 * virtual machine; reusing a cached one costs a few loads.
 *
 * Two levels. Each worker has a private LIFO (no lock; the most recently
 * used stack is the one most likely still in the CPU cache) holding up to
 * LOCAL_MAX threads of the default stack size. Past that, half goes to the
 * global cache, under a lock, from which workers refill in batches and
 * kernel threads that are not workers take directly. Stacks of other sizes
 * go to a short global list (ODD_MAX); past it they are unmapped.
 *
 * The reaper (weft__cache_trim, run by the monitor) unmaps what the global
 * cache holds above GLOBAL_KEEP once it has stayed above that for a second,
 * a batch per call, so a burst of threads does not pin its memory forever
 * and a steady churn does not pay for remapping.
 */
#include "internal.h"
#include "arch/fiber.h"

#define LOCAL_MAX 256
#define GLOBAL_KEEP 1024
#define TRIM_BATCH 4096
#define TRIM_AFTER_NS 1000000000

static struct ilock glock = ILOCK_INIT;
static struct uthread *ghead; /* glock: default-size stacks */
static long gcount;           /* glock; read racily by the reaper */
static struct uthread *odd;   /* glock: stacks of other sizes */
static int nodd;              /* glock */
static int64_t above_since;   /* reaper only: when gcount last rose above KEEP */

#define ODD_MAX 64

static void global_put_list(struct uthread *head, struct uthread *tail, int n)
{
    ilock(&glock);
    tail->next = ghead;
    ghead = head;
    gcount += n;
    iunlock(&glock);
}

/* Takes one default-size thread from the global cache, refilling the
 * worker's local cache up to half on the way; or NULL. */
static struct uthread *global_get(struct worker *w)
{
    if (!load_relaxed(&gcount))
        return NULL;
    ilock(&glock);
    struct uthread *found = ghead;
    if (found) {
        ghead = found->next;
        gcount--;
        while (w && ghead && w->ncache < LOCAL_MAX / 2) {
            struct uthread *u = ghead;
            ghead = u->next;
            gcount--;
            u->next = w->cache;
            w->cache = u;
            w->ncache++;
        }
    }
    iunlock(&glock);
    return found;
}

static struct uthread *odd_get(size_t stack_size)
{
    struct uthread *found = NULL;
    ilock(&glock);
    for (struct uthread **pp = &odd; *pp; pp = &(*pp)->next) {
        if ((*pp)->stack_size == stack_size) {
            found = *pp;
            *pp = found->next;
            nodd--;
            break;
        }
    }
    iunlock(&glock);
    return found;
}

struct uthread *weft__cache_get(struct worker *w, size_t stack_size)
{
    struct uthread *ut;
    if (stack_size != weft__rt.stack_size) {
        ut = load_relaxed(&nodd) ? odd_get(stack_size) : NULL;
    } else if (w && w->cache) {
        ut = w->cache;
        w->cache = ut->next;
        w->ncache--;
    } else {
        ut = global_get(w);
    }
    if (ut) {
        ut->next = NULL;
        /* The last owner's frames left ASan poison on the stack. */
        fiber_unpoison(ut->map + weft__page_size(), ut->map_size - weft__page_size());
    }
    return ut;
}

void weft__cache_put(struct worker *w, struct uthread *ut)
{
    if (ut->stack_size != weft__rt.stack_size) {
        /* Few programs use many sizes; keep a handful, unmap the rest. */
        ilock(&glock);
        bool keep = nodd < ODD_MAX;
        if (keep) {
            ut->next = odd;
            odd = ut;
            nodd++;
        }
        iunlock(&glock);
        if (!keep)
            weft__stack_unmap(ut);
        return;
    }
    if (!w) {
        ut->next = NULL;
        global_put_list(ut, ut, 1);
        return;
    }
    ut->next = w->cache;
    w->cache = ut;
    if (++w->ncache <= LOCAL_MAX)
        return;
    /* Spill the older half to the global cache. */
    struct uthread *keep = w->cache;
    for (int i = 1; i < LOCAL_MAX / 2; i++)
        keep = keep->next;
    struct uthread *head = keep->next, *tail = head;
    int n = 1;
    while (tail->next) {
        tail = tail->next;
        n++;
    }
    keep->next = NULL;
    w->ncache -= n;
    global_put_list(head, tail, n);
}

void weft__cache_trim(int64_t now)
{
    long n = load_relaxed(&gcount);
    if (n <= GLOBAL_KEEP) {
        above_since = 0;
        return;
    }
    if (!above_since) {
        above_since = now;
        return;
    }
    if (now - above_since < TRIM_AFTER_NS)
        return;
    /* Detach a batch under the lock; unmap it outside. */
    struct uthread *list = NULL;
    ilock(&glock);
    long excess = gcount - GLOBAL_KEEP;
    if (excess > TRIM_BATCH)
        excess = TRIM_BATCH;
    while (excess-- > 0 && ghead) {
        struct uthread *u = ghead;
        ghead = u->next;
        gcount--;
        u->next = list;
        list = u;
    }
    iunlock(&glock);
    while (list) {
        struct uthread *u = list;
        list = u->next;
        weft__stack_unmap(u);
    }
}

bool weft__cache_trim_pending(void)
{
    return load_relaxed(&gcount) > GLOBAL_KEEP;
}
