/* Portable context switch on makecontext/swapcontext (see context.h), for
 * targets without a hand-written switch or with -DTL_CONTEXT_UCONTEXT.
 *
 * Much slower than the assembly: glibc's swapcontext makes a
 * rt_sigprocmask system call on every switch, and it also saves the FP
 * environment, which invariant 10 does not require (harmless).
 */
#if defined(TL_CONTEXT_UCONTEXT)

#include <stdint.h>
#include <stdlib.h>

#include "arch/context.h"

/* makecontext passes only int arguments, so entry and arg travel as two
 * 32-bit halves each. */
static void trampoline(unsigned eh, unsigned el, unsigned ah, unsigned al)
{
    uintptr_t e = ((uintptr_t)eh << 16 << 16) | (uintptr_t)el;
    uintptr_t a = ((uintptr_t)ah << 16 << 16) | (uintptr_t)al;
    ((tl__context_entry)e)((void *)a);
    /* entry must never return: uc_link is NULL, the thread would exit. */
    abort();
}

void tl__context_make(tl__context *ctx, void *stack_lo, size_t size,
                      tl__context_entry entry, void *arg)
{
    uintptr_t e = (uintptr_t)entry, a = (uintptr_t)arg;

    if (getcontext(&ctx->uc) != 0)
        abort();
    ctx->uc.uc_stack.ss_sp = stack_lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_stack.ss_flags = 0;
    ctx->uc.uc_link = NULL;
    /* The shifts by 16 twice keep this valid where uintptr_t is 32 bits. */
    makecontext(&ctx->uc, (void (*)(void))trampoline, 4,
                (unsigned)(e >> 16 >> 16), (unsigned)e,
                (unsigned)(a >> 16 >> 16), (unsigned)a);
}

void tl__context_switch(tl__context *from, tl__context *to)
{
    if (swapcontext(&from->uc, &to->uc) != 0)
        abort();
}

#else
/* ISO C forbids an empty translation unit. */
typedef int tl__switch_ucontext_unused;
#endif
