/*
 * switch_x86_64.S - user-thread context switch for x86-64 (System V ABI).
 *
 * A switched-out thread is nothing but its stack pointer: everything the
 * ABI says a callee must preserve is pushed onto the thread's own stack,
 * and the stack pointer is stored in its descriptor. Caller-saved registers
 * need no saving: weft__ctx_switch is an ordinary call, so the compiler has
 * already spilled whatever it still needs.
 *
 * Saved frame, from the saved stack pointer upward (56 bytes):
 *
 *   offset  contents
 *   0       r15
 *   8       r14
 *   16      r13
 *   24      r12
 *   32      rbx
 *   40      rbp
 *   48      return address
 *
 * The floating-point control words (MXCSR, x87 control word) are not part
 * of the context: saving and restoring them (stmxcsr/fnstcw, ldmxcsr/fldcw)
 * cost more than everything else here together on the machines we measured,
 * and Go and libdill do not carry them either. A thread that changes the
 * rounding mode or exception masks must restore them before any weft call
 * that may switch (README, "Kernel-thread state").
 *
 * A new thread's frame is built by weft__ctx_make (context.c) so that the
 * first switch "returns" into weft__ctx_trampoline with r12 = argument and
 * r13 = entry function.
 *
 * Shadow stacks (CET): this code uses ret to jump to another stack, which a
 * shadow stack would reject; weft does not claim shadow-stack support. The
 * entry points start with endbr64 when the compiler asks for IBT.
 */

#if defined(__x86_64__)

#if defined(__CET__) && (__CET__ & 1)
#define ENDBR endbr64
#else
#define ENDBR
#endif

    .text

/* void weft__ctx_switch(void **save_sp, void *load_sp);
 * Saves the caller's context, stores its stack pointer in *save_sp, and
 * resumes the context whose stack pointer is load_sp. */
    .globl  weft__ctx_switch
    .hidden weft__ctx_switch
    .type   weft__ctx_switch, @function
    .p2align 4
weft__ctx_switch:
    .cfi_startproc
    ENDBR
    /* Save callee-saved registers on the current stack. */
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    pushq   %r15
    .cfi_adjust_cfa_offset 8

    /* Swap stacks. */
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp

    /* Restore the other context's registers from its stack. */
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   weft__ctx_switch, .-weft__ctx_switch

/* First code a new thread runs: calls r13(r12) and never returns. The
 * unwinder is told there is no caller, so backtraces end here. */
    .globl  weft__ctx_trampoline
    .hidden weft__ctx_trampoline
    .type   weft__ctx_trampoline, @function
    .p2align 4
weft__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    ENDBR
    xorl    %ebp, %ebp          /* end of the frame-pointer chain */
    movq    %r12, %rdi
    callq   *%r13
    ud2                         /* the entry function never returns */
    .cfi_endproc
    .size   weft__ctx_trampoline, .-weft__ctx_trampoline

#endif

    .section .note.GNU-stack, "", @progbits
