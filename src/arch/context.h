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

/* Resumes the context saved at load_sp and abandons the running one, which
 * saves nothing: a thread's last switch. Inline, so that the thread's last
 * instruction is this ret, which pops the return-stack-buffer entry its
 * first frame pushed; a call here would leave one more stale entry for the
 * resumed context's returns to mispredict on. Pops the frame laid out at
 * the top of switch_<arch>.S. */
static inline __attribute__((always_inline, noreturn)) void weft__ctx_resume(void *load_sp)
{
#if defined(__x86_64__)
    __asm__ volatile("movq %0, %%rsp\n\t"
                     "popq %%r15\n\t"
                     "popq %%r14\n\t"
                     "popq %%r13\n\t"
                     "popq %%r12\n\t"
                     "popq %%rbx\n\t"
                     "popq %%rbp\n\t"
                     "ret"
                     :
                     : "r"(load_sp)
                     : "memory");
    __builtin_unreachable();
#else
    void *dead;
    weft__ctx_switch(&dead, load_sp);
    __builtin_unreachable();
#endif
}

/* Builds, below stack_top, a context that on its first resumption calls
 * entry(arg) with a clean, aligned stack. entry must never return. Returns
 * the stack pointer to pass to weft__ctx_switch. */
void *weft__ctx_make(void *stack_top, void (*entry)(void *), void *arg);

#endif
