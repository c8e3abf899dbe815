/* AArch64 (AAPCS64) context switch (see context.h).
 *
 * Saved frame, 160 bytes on the stack of the context being suspended:
 *
 *   sp+0   x19 x20 x21 x22 x23 x24 x25 x26 x27 x28
 *   sp+80  x29 (fp) x30 (lr)
 *   sp+96  d8 .. d15 (the low halves of v8-v15 are callee-saved)
 *
 * ctx->sp points at sp+0. FPCR is deliberately not saved (DESIGN.md
 * invariant 10).
 *
 * The return uses `ret`, not `br x30` as the x86-64 `pop`+`jmp` trick would
 * suggest: with BTI, a `br` into a guarded page that has no landing pad at
 * the return address faults, and the caller's page may well be guarded even
 * if this object is not. The return-stack mispredict is the price.
 */
#if defined(__aarch64__) && !defined(TL_CONTEXT_UCONTEXT)

/* Branch Target Identification: every global function here may be reached
 * by an indirect branch (a PLT stub's `br x17`, a function pointer), so it
 * starts with a `bti c` landing pad. Written as its hint encoding, a NOP on
 * cores (and assemblers) without BTI. The trampoline and
 * tl__context_peek_ret are reached only by `ret`, which BTI does not
 * check. */
#define BTI_C hint #34

    .text

/* void tl__context_switch(tl__context *from, tl__context *to)
 *   x0 = from, x1 = to */
    .globl  tl__context_switch
    .hidden tl__context_switch
    .type   tl__context_switch, %function
    .p2align 4
tl__context_switch:
    .cfi_startproc
    BTI_C
    sub     sp, sp, #160
    .cfi_adjust_cfa_offset 160
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
    mov     x9, sp
    str     x9, [x0]            /* from->sp */
    ldr     x9, [x1]            /* to->sp: from here on we are `to` */
    mov     sp, x9
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
    add     sp, sp, #160
    .cfi_adjust_cfa_offset -160
    ret
    .cfi_endproc
    .size   tl__context_switch, .-tl__context_switch

/* First code run by a new context: x19 = entry, x20 = arg, sp 16-aligned
 * (AArch64 requires it at all times), fp = 0 and lr marked undefined so
 * unwinders stop here. */
    .type   tl__context_trampoline, %function
    .p2align 4
tl__context_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov     x29, xzr
    mov     x0, x20
    blr     x19
    /* entry must never return: there is nothing to return to. */
    bl      abort
    brk     #0
    .cfi_endproc
    .size   tl__context_trampoline, .-tl__context_trampoline

/* void tl__context_make(tl__context *ctx, void *stack_lo, size_t size,
 *                       tl__context_entry entry, void *arg)
 *   x0 = ctx, x1 = stack_lo, x2 = size, x3 = entry, x4 = arg
 * In assembly so that no instrumented C code writes to the new stack. */
    .globl  tl__context_make
    .hidden tl__context_make
    .type   tl__context_make, %function
    .p2align 4
tl__context_make:
    .cfi_startproc
    BTI_C
    add     x9, x1, x2
    and     x9, x9, #-16        /* top of stack, 16-aligned */
    sub     x9, x9, #160
    stp     x3,  x4,  [x9, #0]  /* x19 = entry, x20 = arg */
    stp     xzr, xzr, [x9, #16]
    stp     xzr, xzr, [x9, #32]
    stp     xzr, xzr, [x9, #48]
    stp     xzr, xzr, [x9, #64]
    adr     x10, tl__context_trampoline
    stp     xzr, x10, [x9, #80] /* x29 = 0, x30 = trampoline */
    stp     xzr, xzr, [x9, #96]
    stp     xzr, xzr, [x9, #112]
    stp     xzr, xzr, [x9, #128]
    stp     xzr, xzr, [x9, #144]
    str     x9, [x0]
    ret
    .cfi_endproc
    .size   tl__context_make, .-tl__context_make

/* void tl__context_peek(const tl__context *ctx, void (*fn)(void *), void *arg)
 *   x0 = ctx, x1 = fn, x2 = arg
 * Run fn(arg) on the stack of the suspended context *ctx, below its saved
 * frame, with unwind info that makes the suspended context this frame's
 * caller (see switch_x86_64.S). */
    .globl  tl__context_peek
    .hidden tl__context_peek
    .type   tl__context_peek, %function
    .p2align 4
tl__context_peek:
    .cfi_startproc
    BTI_C
    stp     x29, x30, [sp, #-32]!
    .cfi_adjust_cfa_offset 32
    .cfi_rel_offset x29, 0
    .cfi_rel_offset x30, 8
    str     x19, [sp, #16]
    .cfi_rel_offset x19, 16
    mov     x19, sp             /* our own stack, restored below */
    .cfi_remember_state
    ldr     x9, [x0]            /* the suspended context's saved frame */
    mov     sp, x9
    .cfi_def_cfa sp, 160
    .cfi_offset x19, -160
    .cfi_offset x20, -152
    .cfi_offset x21, -144
    .cfi_offset x22, -136
    .cfi_offset x23, -128
    .cfi_offset x24, -120
    .cfi_offset x25, -112
    .cfi_offset x26, -104
    .cfi_offset x27, -96
    .cfi_offset x28, -88
    .cfi_offset x29, -80
    .cfi_offset x30, -72
    mov     x0, x2
    blr     x1
    .globl  tl__context_peek_ret
    .hidden tl__context_peek_ret
tl__context_peek_ret:           /* the return address unwinders see */
    mov     sp, x19
    .cfi_restore_state
    ldr     x19, [sp, #16]
    ldp     x29, x30, [sp], #32
    .cfi_adjust_cfa_offset -32
    .cfi_restore x19
    .cfi_restore x29
    .cfi_restore x30
    ret
    .cfi_endproc
    .size   tl__context_peek, .-tl__context_peek

#endif


/* Always present, even when the file assembles to nothing: without it the
 * linker would assume this object needs an executable stack. */
    .section .note.GNU-stack,"",%progbits

#if defined(__aarch64__)
/* The GNU property note saying this object is BTI- and PAC-compatible (the
 * landing pads above; the switch signs nothing, and stores x30 only as the
 * suspended context's own return address). The linker ANDs the notes of
 * every object: one object without it turns BTI off for the whole program
 * built with -mbranch-protection=standard (the default of some
 * distributions). cmake/check-gnu-property.sh checks it in the cross
 * build. */
    .pushsection .note.gnu.property, "a"
    .balign 8
    .long   4                   /* n_namesz: "GNU\0" */
    .long   16                  /* n_descsz */
    .long   5                   /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000000          /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .long   4                   /* pr_datasz */
    .long   3                   /* BTI | PAC */
    .long   0                   /* pad to 8 bytes */
    .popsection
#endif
