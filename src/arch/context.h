/* The raw context switch: callee-saved registers and the stack pointer.
 *
 * This layer knows nothing about tasks, sanitizers or Valgrind (src/fiber.c
 * wraps it with those annotations). One implementation is compiled, chosen
 * at build time:
 *   switch_x86_64.S   x86-64 System V
 *   switch_aarch64.S  AArch64 AAPCS64
 *   switch_ucontext.c anything else (or -DTULIP_CONTEXT=ucontext)
 * FP control state (MXCSR, x87 CW, FPCR) is deliberately not switched
 * (DESIGN.md invariant 10): it would double the cost of every switch.
 */
#ifndef TL_ARCH_CONTEXT_H
#define TL_ARCH_CONTEXT_H

#include <stddef.h>

#if defined(TL_CONTEXT_UCONTEXT)
#include <ucontext.h>
typedef struct tl__context {
    ucontext_t uc;
} tl__context;
#else
typedef struct tl__context {
    void *sp; /* saved stack pointer; the registers live on that stack */
} tl__context;
#endif

typedef void (*tl__context_entry)(void *arg);

/* Prepare *ctx so that the first tl__context_switch() into it calls
 * entry(arg) on the stack [stack_lo, stack_lo + size). entry must never
 * return (it switches away for the last time instead). */
void tl__context_make(tl__context *ctx, void *stack_lo, size_t size,
                      tl__context_entry entry, void *arg);

/* Save the current registers into *from and resume *to. Returns when some
 * later switch resumes *from. */
void tl__context_switch(tl__context *from, tl__context *to);

#endif
