/* context.c - lays out the first frame of a new thread (see switch_*.S). */
#include "arch/context.h"

#include <stdint.h>
#include <string.h>

void weft__ctx_trampoline(void);

void *weft__ctx_make(void *stack_top, void (*entry)(void *), void *arg)
{
#if defined(__x86_64__)
    /* After the switch pops this 56-byte frame and returns into the
     * trampoline, rsp = sp + 56 must be 16-byte aligned so that the
     * trampoline's call leaves the entry function with the ABI's alignment. */
    uintptr_t top = (uintptr_t)stack_top & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 16 - 56);
    memset(sp, 0, 56);
    sp[0] = 0;                          /* r15 */
    sp[1] = 0;                          /* r14 */
    sp[2] = (uint64_t)(uintptr_t)entry; /* r13: called by the trampoline */
    sp[3] = (uint64_t)(uintptr_t)arg;   /* r12: its argument */
    sp[4] = 0;                          /* rbx */
    sp[5] = 0;                          /* rbp */
    sp[6] = (uint64_t)(uintptr_t)weft__ctx_trampoline;
    return sp;
#else
#error "weft: no context switch for this architecture yet (see src/arch/context.h)"
#endif
}
