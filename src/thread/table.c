/*
 * table.c - the thread table: weft_t handles to descriptors (seed 001's
 * "thread table of IDs", never raw pointers).
 *
 * A handle is (generation << 32 | slot). The table is a directory of
 * fixed-size chunks, allocated as the table grows and never moved or
 * freed, so a lookup is two loads and a live entry's address is stable
 * forever: a joiner can park on it, and an unpark on it after the thread is
 * gone is harmless.
 *
 * Each slot is bound to one descriptor for as long as that descriptor's
 * mapping exists (the descriptor cache keeps the binding across reuse).
 * The generation lives in the slot, not in the descriptor, so it survives
 * the descriptor being unmapped and the slot being bound to another one.
 * Every state change of a handle is a CAS on the slot word (thread.c).
 *
 * Slot allocation takes a lock; it happens only when a new stack is
 * mapped, which costs a system call anyway.
 *
 * Pins. A caller that holds a handle but does not own it (weft_stop) must
 * read the slot's descriptor while the thread may end, be freed and have
 * its stack unmapped by the reaper. It counts itself in pins and then
 * reads s->ut; the unmap clears s->ut and then waits for pins to drain
 * (both seq_cst, Dekker-style), so either the pinner reads NULL or the
 * unmap waits until it is done:
 *
 *   pinner                              unmapper (weft__slot_free)
 *   pins++                              s->ut = NULL
 *   ut = s->ut                          while (pins) wait
 *   ... touches ut ...                  munmap (stack.c)
 *   pins-- (release)
 *
 * One global count, because stops by handle are rare and unmaps come in
 * batches from the reaper; a pinned descriptor may still be reused by a
 * spawn, which the caller must tell by generation (sync/wait.c).
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>

#define CHUNK_SHIFT SLOT_CHUNK_SHIFT
#define CHUNK_SLOTS SLOT_CHUNK_SLOTS
#define DIR_SIZE SLOT_DIR_SIZE

/* A joiner names its own slot in the flags half of a slot word. */
_Static_assert((uint64_t)DIR_SIZE * CHUNK_SLOTS - 1 <= TS_JOINER_MAX,
               "slot indices must fit the joiner field of a slot word");

/* Read by weft__slot_get (internal.h). */
struct slot *weft__slot_dir[DIR_SIZE]; /* atomic entries; written once under lock */
uint32_t weft__nslots;                 /* atomic: slots ever handed out; lock */
static struct ilock lock = ILOCK_INIT;
static uint32_t pins;              /* atomic seq_cst: pins not yet released */
static uint32_t *free_slots;       /* lock: stack of unbound slot indices */
static uint32_t nfree, free_cap;   /* lock */

int weft__slot_alloc(struct uthread *ut)
{
    ilock(&lock);
    uint32_t index;
    if (nfree) {
        index = free_slots[--nfree];
    } else {
        index = weft__nslots;
        if (index >= DIR_SIZE * CHUNK_SLOTS) {
            iunlock(&lock);
            return -EAGAIN;
        }
        if (!weft__slot_dir[index >> CHUNK_SHIFT]) {
            /* Zeroed memory: every slot starts at generation 0, which no
             * handle carries; the first spawn bumps it to 1. */
            void *c = mmap(NULL, CHUNK_SLOTS * sizeof(struct slot), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (c == MAP_FAILED) {
                iunlock(&lock);
                return -ENOMEM;
            }
            /* Pairs with the acquire in weft__slot_get. */
            store_release(&weft__slot_dir[index >> CHUNK_SHIFT], (struct slot *)c);
        }
        store_release(&weft__nslots, index + 1);
    }
    struct slot *s = weft__slot_get(index);
    store_release(&s->ut, ut); /* a pin may read it (a stale handle) */
    iunlock(&lock);
    return (int)index;
}

/* A fork child: the lock may be held by a thread that does not exist
 * here, and the free list may be mid-update; drop it (those slots leak in
 * the child). Slots handed out so far keep their descriptors. A weft_stop
 * running in another thread at the fork left its pin counted, and no
 * thread here will ever release it: the child's first slot free would
 * wait for pins to drain for ever. No pinner exists in the child, so the
 * count is zero. */
void weft__slot_reset_child(void)
{
    lock = (struct ilock)ILOCK_INIT;
    free_slots = NULL;
    nfree = free_cap = 0;
    store_relaxed(&pins, 0);
}

static void wait_unpinned(void)
{
    /* Acquire: pairs with weft__slot_unpin; the pinners' touches of the
     * descriptor are done when this returns. */
    for (int spins = 0; load_seq(&pins); spins++) {
        if (spins < 1000)
            cpu_relax();
        else
            sched_yield();
    }
}

void weft__slot_free(uint32_t index)
{
    struct slot *s = weft__slot_get(index);
    ilock(&lock);
    store_seq(&s->ut, (struct uthread *)NULL); /* store-load: see Pins */
    bool keep = true;
    if (nfree == free_cap) {
        uint32_t cap = free_cap ? free_cap * 2 : 1024;
        uint32_t *n = realloc(free_slots, cap * sizeof *n);
        if (n) {
            free_slots = n;
            free_cap = cap;
        } else {
            keep = false; /* leaking one slot index is harmless */
        }
    }
    if (keep)
        free_slots[nfree++] = index;
    iunlock(&lock);
    wait_unpinned();
}

struct uthread *weft__slot_pin(struct slot *s)
{
    fetch_add_seq(&pins, 1);
    return load_seq(&s->ut);
}

void weft__slot_unpin(void)
{
    __atomic_fetch_sub(&pins, 1, __ATOMIC_RELEASE);
}
