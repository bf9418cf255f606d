/*
 * context.h - the architecture layer: saving one user thread's registers
 * and resuming another's, and telling the sanitizers about it.
 *
 * A port to another architecture provides, in src/arch/switch_<arch>.S,
 * weft__ctx_switch and weft__ctx_trampoline with the contracts below, and a
 * branch in weft__ctx_make (context.c) that lays out the first frame. Only
 * x86-64 exists today; aarch64 needs x19-x28, x29, x30, sp and d8-d15 saved,
 * and FPCR.
 */
#ifndef WEFT_ARCH_CONTEXT_H
#define WEFT_ARCH_CONTEXT_H

#include <stddef.h>

/* Saves the running context, stores its stack pointer in *save_sp, and
 * resumes the context saved at load_sp. Returns when something switches
 * back to the saved context, possibly on another kernel thread. */
void weft__ctx_switch(void **save_sp, void *load_sp);

/* Builds, below stack_top, a context that on its first resumption calls
 * entry(arg) with a clean, aligned stack. entry must never return. Returns
 * the stack pointer to pass to weft__ctx_switch. */
void *weft__ctx_make(void *stack_top, void (*entry)(void *), void *arg);

#endif
