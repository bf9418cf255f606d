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
 * interrupted value comes back with rflags.
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
    ENDBR
    /* Below the red zone, a slot for the return address (lea keeps the
     * flags); rax lends a hand to fill it from weft__preempt_pc. */
    leaq    -136(%rsp), %rsp
    .cfi_adjust_cfa_offset 136
    pushq   %rax
    .cfi_adjust_cfa_offset 8
    movq    weft__preempt_pc@gottpoff(%rip), %rax
    movq    %fs:(%rax), %rax
    movq    %rax, 8(%rsp)
    popq    %rax
    .cfi_adjust_cfa_offset -8
    .cfi_def_cfa %rsp, 136
    .cfi_offset %rip, -136
    pushfq
    pushq   %rax
    .cfi_offset %rax, -152
    pushq   %rcx
    .cfi_offset %rcx, -160
    pushq   %rdx
    .cfi_offset %rdx, -168
    pushq   %rsi
    .cfi_offset %rsi, -176
    pushq   %rdi
    .cfi_offset %rdi, -184
    pushq   %r8
    .cfi_offset %r8, -192
    pushq   %r9
    .cfi_offset %r9, -200
    pushq   %r10
    .cfi_offset %r10, -208
    pushq   %r11
    .cfi_offset %r11, -216
    pushq   %rbp
    .cfi_offset %rbp, -224
    pushq   %rbx
    .cfi_offset %rbx, -232
    pushq   %r12
    .cfi_offset %r12, -240
    pushq   %r13
    .cfi_offset %r13, -248
    pushq   %r14
    .cfi_offset %r14, -256
    pushq   %r15
    .cfi_offset %r15, -264
    movq    %rsp, %rbx
    .cfi_def_cfa %rbx, 264

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
    cld
    call    weft__preempt_yield

    cmpb    $0, weft__preempt_xsave(%rip)
    je      3f
    movl    weft__preempt_xmask(%rip), %eax
    movl    weft__preempt_xmask+4(%rip), %edx
    xrstor64 (%rsp)
    jmp     4f
3:  fxrstor64 (%rsp)
4:
    movq    %rbx, %rsp
    .cfi_def_cfa %rsp, 264
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    popq    %r11
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rdi
    popq    %rsi
    popq    %rdx
    popq    %rcx
    popq    %rax
    popfq
    .cfi_def_cfa %rsp, 136
    ret     $128
    .cfi_endproc
    .size   weft__preempt_tramp, .-weft__preempt_tramp

#endif

    .section .note.GNU-stack, "", @progbits
