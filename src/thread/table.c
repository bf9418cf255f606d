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
 */
#include "internal.h"

#include <errno.h>
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
    s->ut = ut;
    iunlock(&lock);
    return (int)index;
}

/* A fork child: the lock may be held by a thread that does not exist
 * here, and the free list may be mid-update; drop it (those slots leak in
 * the child). Slots handed out so far keep their descriptors. */
void weft__slot_reset_child(void)
{
    lock = (struct ilock)ILOCK_INIT;
    free_slots = NULL;
    nfree = free_cap = 0;
}

void weft__slot_free(uint32_t index)
{
    struct slot *s = weft__slot_get(index);
    ilock(&lock);
    s->ut = NULL;
    if (nfree == free_cap) {
        uint32_t cap = free_cap ? free_cap * 2 : 1024;
        uint32_t *n = realloc(free_slots, cap * sizeof *n);
        if (!n) {
            /* Leaking one slot index is harmless; keep going. */
            iunlock(&lock);
            return;
        }
        free_slots = n;
        free_cap = cap;
    }
    free_slots[nfree++] = index;
    iunlock(&lock);
}
