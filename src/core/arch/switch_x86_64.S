/*
 * Context switch for x86-64, System V ABI.
 *
 *   void cio__ctx_switch(void **save_sp, void *load_sp);
 *                        rdi             rsi
 *
 * The ABI makes rbx, rbp and r12-r15 callee-saved, and rsp of course; every
 * other general register, and all vector registers, may be clobbered by any
 * call, so the compiler already assumes they are lost across this one. The
 * x87 control word and MXCSR are callee-saved too, but cio shares them
 * among the tasks of a thread (see context.h), so they are left alone.
 *
 * Save area, pushed on the stack being left (lowest address first):
 *
 *     sp + 0   r15
 *     sp + 8   r14
 *     sp + 16  r13
 *     sp + 24  r12
 *     sp + 32  rbx
 *     sp + 40  rbp
 *     sp + 48  return address (the caller of cio__ctx_switch, or the
 *              trampoline for a context that has never run)
 *
 * A new context is laid out the same way by cio__ctx_make (context.c): r12
 * holds the argument, r13 the entry function and the return address is
 * cio__ctx_trampoline, with rsp positioned so that it is 16-byte aligned
 * when the trampoline starts, as a call instruction inside it requires.
 */
    .text
    .globl  cio__ctx_switch
    .hidden  cio__ctx_switch
    .type   cio__ctx_switch, @function
    .p2align 4
cio__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    /* Not ret: the return-stack predictor always guesses wrong when the two
     * contexts called the switch from different places. An indirect jump
     * is predicted from its own history, which a ping-pong quickly learns
     * (measured: 10.8 ns per switch with ret, 3.3 ns with this). */
    popq    %rcx
    jmpq    *%rcx
    .cfi_endproc
    .size   cio__ctx_switch, .-cio__ctx_switch

/*
 * First code a new context runs: entry(arg). The entry function never
 * returns; if it did, ud2 stops the process at once instead of running off
 * into whatever follows on the stack.
 */
    .globl  cio__ctx_trampoline
    .hidden  cio__ctx_trampoline
    .type   cio__ctx_trampoline, @function
    .p2align 4
cio__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r12, %rdi
    callq   *%r13
    ud2
    .cfi_endproc
    .size   cio__ctx_trampoline, .-cio__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
