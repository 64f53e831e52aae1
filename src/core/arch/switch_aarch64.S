/*
 * Context switch for aarch64 (AAPCS64).
 *
 *   void cio__ctx_switch(void **save_sp, void *load_sp);
 *                        x0              x1
 *
 * AAPCS64 makes x19-x28, the frame pointer x29, the link register x30 (as
 * the return address) and the low 64 bits of v8-v15 (d8-d15) callee-saved,
 * and sp. Everything else may be clobbered by any call. FPCR is shared by
 * the tasks of a thread (see context.h) and is not saved.
 *
 * Save area, stored on the stack being left (176 bytes, a multiple of 16 as
 * sp must stay 16-byte aligned):
 *
 *     sp + 0    x19, x20        sp + 96   d8,  d9
 *     sp + 16   x21, x22        sp + 112  d10, d11
 *     sp + 32   x23, x24        sp + 128  d12, d13
 *     sp + 48   x25, x26        sp + 144  d14, d15
 *     sp + 64   x27, x28        sp + 160  (padding)
 *     sp + 80   x29, x30
 *
 * A new context (cio__ctx_make) holds the argument in x19, the entry
 * function in x20, zero in x29 (end of the frame chain) and
 * cio__ctx_trampoline in x30, so the final ret lands in the trampoline.
 */
    .text
    .globl  cio__ctx_switch
    .hidden  cio__ctx_switch
    .type   cio__ctx_switch, %function
    .p2align 4
cio__ctx_switch:
    sub     sp, sp, #176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8,  d9,  [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mov     x2, sp
    str     x2, [x0]
    mov     sp, x1
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8,  d9,  [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #176
    ret
    .size   cio__ctx_switch, .-cio__ctx_switch

/* First code a new context runs: entry(arg); brk traps if entry returns. */
    .globl  cio__ctx_trampoline
    .hidden  cio__ctx_trampoline
    .type   cio__ctx_trampoline, %function
    .p2align 4
cio__ctx_trampoline:
    mov     x0, x19
    blr     x20
    brk     #0
    .size   cio__ctx_trampoline, .-cio__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
