/*
 * preempt_x86_64.S - where a preempted thread goes to yield (x86-64).
 *
 * The preemption handler (sched/preempt.c) does not switch threads inside
 * the signal handler. It rewrites the interrupted context instead, much as
 * Go's asyncPreempt does: it keeps the interrupted rip in the kernel
 * thread's weft__preempt_pc and sets rip to weft__preempt_tramp. When the
 * handler returns the kernel resumes the thread here, outside any handler,
 * with every register and the stack pointer as the interrupted code left
 * them. The trampoline steps below the 128-byte red zone, puts the saved
 * rip there as a return address, saves every register on the thread's own
 * stack, calls weft__preempt_yield (a plain weft_yield: the thread may
 * resume on another kernel thread), restores them and returns to the
 * interrupted instruction with "ret $128", which also pops the red zone.
 *
 * Why the handler does not store the return address itself, as Go's does:
 * Go code has no red zone, so Go writes just below the stack pointer. C
 * code may keep data in the 128 bytes below it, and below those the kernel
 * has put the signal frame (its saved vector state ends right there), so a
 * store from the handler would corrupt one or the other. The trampoline
 * runs after the frame is gone. weft__preempt_pc is read before anything
 * could preempt this kernel thread again: the trampoline is weft code, where
 * the handler never redirects.
 *
 * Frame, from the entry stack pointer downward:
 *
 *   offset  contents
 *   +136    the interrupted rsp (the canonical frame address)
 *   +8      the interrupted code's red zone, 128 bytes, untouched
 *   0       the interrupted rip
 *   -8      rflags
 *   -16     rax, then rcx, rdx, rsi, rdi, r8-r11, rbp, rbx, r12-r15
 *           down to -128 (r15); rbx then holds this address
 *   below   the extended state, 64-byte aligned: XSAVE of the components
 *           in weft__preempt_xmask (x87, SSE, AVX, AVX-512, ...; not AMX
 *           tiles), or FXSAVE where the CPU or kernel has no XSAVE;
 *           weft__preempt_area bytes, set by preempt.c from CPUID
 *
 * The direction flag is cleared before the call, as the ABI requires; the
 * interrupted value comes back with rflags. Before the call the upper
 * halves of the vector registers are cleared (vzeroupper, where there is
 * AVX) and the x87 unit and MXCSR are reset to the runtime's starting
 * values, so the threads that run meanwhile see a clean floating-point
 * environment.
 *
 * C prototype: void weft__preempt_tramp(void); never called, only entered.
 */

#if defined(__x86_64__)

#if defined(__CET__) && (__CET__ & 1)
#define ENDBR endbr64
#else
#define ENDBR
#endif

    .text

    .globl  weft__preempt_tramp
    .hidden weft__preempt_tramp
    .type   weft__preempt_tramp, @function
    .p2align 4
weft__preempt_tramp:
    .cfi_startproc
    .cfi_signal_frame           /* the saved rip is not a return address */
    /* At entry every register is the interrupted code's, rsp included, and
     * the interrupted rip is only in TLS: no caller to unwind to yet. */
    .cfi_def_cfa %rsp, 0
    .cfi_undefined %rip
    ENDBR
    /* Below the red zone, a slot for the return address (lea keeps the
     * flags); rax lends a hand to fill it from weft__preempt_pc. */
    leaq    -136(%rsp), %rsp
    .cfi_def_cfa_offset 136
    pushq   %rax
    .cfi_def_cfa_offset 144
    .cfi_offset %rax, -144
    movq    weft__preempt_pc@gottpoff(%rip), %rax
    movq    %fs:(%rax), %rax
    movq    %rax, 8(%rsp)
    .cfi_offset %rip, -136
    popq    %rax
    .cfi_def_cfa_offset 136
    .cfi_restore %rax

    pushfq
    .cfi_def_cfa_offset 144
#define SAVE(reg, off) pushq %reg; .cfi_def_cfa_offset off; .cfi_offset %reg, -off
    SAVE(rax, 152)
    SAVE(rcx, 160)
    SAVE(rdx, 168)
    SAVE(rsi, 176)
    SAVE(rdi, 184)
    SAVE(r8, 192)
    SAVE(r9, 200)
    SAVE(r10, 208)
    SAVE(r11, 216)
    SAVE(rbp, 224)
    SAVE(rbx, 232)
    SAVE(r12, 240)
    SAVE(r13, 248)
    SAVE(r14, 256)
    SAVE(r15, 264)
#undef SAVE
    movq    %rsp, %rbx
    .cfi_def_cfa_register %rbx

    /* Room for the extended state, aligned as XSAVE needs. */
    subq    weft__preempt_area(%rip), %rsp
    andq    $-64, %rsp
    cmpb    $0, weft__preempt_xsave(%rip)
    je      1f
    /* XSAVE writes only XSTATE_BV of the header; the rest must be zero
     * for XRSTOR to accept it. */
    xorl    %eax, %eax
    movq    %rax, 512(%rsp)
    movq    %rax, 520(%rsp)
    movq    %rax, 528(%rsp)
    movq    %rax, 536(%rsp)
    movq    %rax, 544(%rsp)
    movq    %rax, 552(%rsp)
    movq    %rax, 560(%rsp)
    movq    %rax, 568(%rsp)
    movl    weft__preempt_xmask(%rip), %eax
    movl    weft__preempt_xmask+4(%rip), %edx
    xsave64 (%rsp)
    jmp     2f
1:  fxsave64 (%rsp)
2:
    /* What runs next on this kernel thread gets the floating-point
     * environment the runtime started with, not the interrupted code's
     * rounding mode, exception masks or x87 stack (the restore below
     * gives those back to this thread wherever it resumes). */
    cmpb    $0, weft__preempt_avx(%rip)
    je      3f
    vzeroupper
3:  fninit
    fldcw   weft__preempt_fpucw(%rip)
    ldmxcsr weft__preempt_mxcsr(%rip)
    cld
    call    weft__preempt_yield

    cmpb    $0, weft__preempt_xsave(%rip)
    je      4f
    movl    weft__preempt_xmask(%rip), %eax
    movl    weft__preempt_xmask+4(%rip), %edx
    xrstor64 (%rsp)
    jmp     5f
4:  fxrstor64 (%rsp)
5:
    movq    %rbx, %rsp
    .cfi_def_cfa_register %rsp
#define RESTORE(reg, off) popq %reg; .cfi_def_cfa_offset off; .cfi_restore %reg
    RESTORE(r15, 256)
    RESTORE(r14, 248)
    RESTORE(r13, 240)
    RESTORE(r12, 232)
    RESTORE(rbx, 224)
    RESTORE(rbp, 216)
    RESTORE(r11, 208)
    RESTORE(r10, 200)
    RESTORE(r9, 192)
    RESTORE(r8, 184)
    RESTORE(rdi, 176)
    RESTORE(rsi, 168)
    RESTORE(rdx, 160)
    RESTORE(rcx, 152)
    RESTORE(rax, 144)
#undef RESTORE
    popfq
    .cfi_def_cfa_offset 136
    ret     $128
    .cfi_endproc
    .size   weft__preempt_tramp, .-weft__preempt_tramp

#endif

    .section .note.GNU-stack, "", @progbits
