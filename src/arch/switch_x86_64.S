/* x86-64 System V context switch (see context.h).
 *
 * Saved frame, on the stack of the context being suspended (low to high):
 *
 *   sp -> r15 r14 r13 r12 rbx rbp <return address>
 *
 * ctx->sp points at the saved r15. Only callee-saved registers and the
 * stack pointer are switched: everything else is dead across a call by the
 * ABI. MXCSR and the x87 control word are deliberately not saved (DESIGN.md
 * invariant 10): that would double the cost of a switch.
 *
 * The resumed context is entered with `ret`, which keeps the return stack
 * buffer balanced. Every switch goes through the same few call sites (the
 * caller of tl__fiber_switch, which tail-jumps here), so the address the
 * RSB predicts, pushed by the task that suspended, is the resumed task's
 * too; the caller's frames above it then return as predicted until the two
 * call chains differ. A `pop` + `jmp` (tried before) leaves the suspending
 * task's entry on the RSB, so every later `ret` of the resumed task was
 * predicted one frame off: four or five mispredicts a switch in ping-pong
 * (0.74x the CPU with `ret`).
 *
 * Not compatible with CET shadow stacks (the `ret` pops an address that
 * another stack pushed); this object carries no .note.gnu.property, so a
 * linked program that contains it is not marked SHSTK-capable and the
 * kernel leaves shadow stacks off.
 */
#if defined(__x86_64__) && !defined(TL_CONTEXT_UCONTEXT)

    .text

/* void tl__context_switch(tl__context *from, tl__context *to)
 *   rdi = from, rsi = to */
    .globl  tl__context_switch
    .hidden tl__context_switch
    .type   tl__context_switch, @function
    .p2align 4
tl__context_switch:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    movq    %rsp, (%rdi)        /* from->sp */
    movq    (%rsi), %rsp        /* to->sp: from here on we are `to` */
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    ret
    .cfi_endproc
    .size   tl__context_switch, .-tl__context_switch

/* First code run by a new context. tl__context_make left entry in r12 and
 * arg in r13. The stack is re-aligned to 16 bytes before the call as the
 * ABI requires; rbp is 0 and rip is marked undefined so that debuggers and
 * unwinders stop here instead of walking into garbage. */
    .type   tl__context_trampoline, @function
    .p2align 4
tl__context_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    xorl    %ebp, %ebp
    movq    %r13, %rdi
    andq    $-16, %rsp
    callq   *%r12
    /* entry must never return: there is nothing to return to. */
    callq   abort@PLT
    ud2
    .cfi_endproc
    .size   tl__context_trampoline, .-tl__context_trampoline

/* void tl__context_make(tl__context *ctx, void *stack_lo, size_t size,
 *                       tl__context_entry entry, void *arg)
 *   rdi = ctx, rsi = stack_lo, rdx = size, rcx = entry, r8 = arg
 * Written in assembly so that no instrumented C code writes to the new
 * stack (it may still be poisoned for ASan from its previous use). */
    .globl  tl__context_make
    .hidden tl__context_make
    .type   tl__context_make, @function
    .p2align 4
tl__context_make:
    .cfi_startproc
    leaq    (%rsi,%rdx), %rax
    andq    $-16, %rax          /* top of stack, 16-aligned */
    subq    $64, %rax           /* 7 saved words + 1 spare, stays aligned */
    xorl    %r9d, %r9d
    movq    %r9, 0(%rax)        /* r15 */
    movq    %r9, 8(%rax)        /* r14 */
    movq    %r8, 16(%rax)       /* r13 = arg */
    movq    %rcx, 24(%rax)      /* r12 = entry */
    movq    %r9, 32(%rax)       /* rbx */
    movq    %r9, 40(%rax)       /* rbp */
    leaq    tl__context_trampoline(%rip), %r10
    movq    %r10, 48(%rax)      /* "return address" */
    movq    %r9, 56(%rax)
    movq    %rax, (%rdi)
    ret
    .cfi_endproc
    .size   tl__context_make, .-tl__context_make

/* void tl__context_peek(const tl__context *ctx, void (*fn)(void *), void *arg)
 *   rdi = ctx, rsi = fn, rdx = arg
 * Run fn(arg) on the stack of the suspended context *ctx, just below its
 * saved frame, and come back. The unwind info of the call site says that
 * this frame's caller is the suspended context (the same rules as inside
 * tl__context_switch once it has pushed), so an unwinder started in fn
 * walks the suspended task's frames: that is how the task dump gets a
 * backtrace of a task that is not running (src/core/dump.c). The space
 * below a suspended context's saved frame is free: it is suspended inside
 * a call, and tl__context_switch uses no red zone. */
    .globl  tl__context_peek
    .hidden tl__context_peek
    .type   tl__context_peek, @function
    .p2align 4
tl__context_peek:
    .cfi_startproc
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    movq    %rsp, %rbx          /* our own stack, restored below */
    .cfi_remember_state
    movq    (%rdi), %rsp        /* the suspended context's saved frame */
    .cfi_def_cfa rsp, 56
    .cfi_offset r15, -56
    .cfi_offset r14, -48
    .cfi_offset r13, -40
    .cfi_offset r12, -32
    .cfi_offset rbx, -24
    .cfi_offset rbp, -16
    subq    $8, %rsp            /* 16-byte alignment for the call */
    .cfi_adjust_cfa_offset 8
    movq    %rdx, %rdi
    callq   *%rsi
    .globl  tl__context_peek_ret
    .hidden tl__context_peek_ret
tl__context_peek_ret:           /* the return address unwinders see */
    movq    %rbx, %rsp
    .cfi_restore_state
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    ret
    .cfi_endproc
    .size   tl__context_peek, .-tl__context_peek

#endif


/* Always present, even when the file assembles to nothing: without it the
 * linker would assume this object needs an executable stack. */
    .section .note.GNU-stack,"",%progbits
