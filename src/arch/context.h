/* The raw context switch: callee-saved registers and the stack pointer.
 *
 * This layer knows nothing about tasks, sanitizers or Valgrind (src/fiber.c
 * wraps it with those annotations). One implementation is compiled, chosen
 * at build time:
 *   switch_x86_64.S   x86-64 System V
 *   switch_aarch64.S  AArch64 AAPCS64
 *   switch_ucontext.c anything else (or -DTULIP_CONTEXT=ucontext)
 * FP control state (MXCSR, x87 CW, FPCR) and the signal mask are
 * deliberately not switched (DESIGN.md invariant 10): they belong to the
 * thread, and switching them would double the cost of every switch (the
 * mask costs a system call).
 */
#ifndef TL_ARCH_CONTEXT_H
#define TL_ARCH_CONTEXT_H

#include <stddef.h>

typedef void (*tl__context_entry)(void *arg);

#if defined(TL_CONTEXT_UCONTEXT)
/* The sanitizers' setjmp/longjmp interceptors keep per-thread (per-fiber,
 * for TSan) jump-buffer lists that a jump between stacks confuses; under
 * them every switch is a full swapcontext (see switch_ucontext.c). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TL__UCONTEXT_FULL 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TL__UCONTEXT_FULL 1
#endif
#endif
#ifndef TL__UCONTEXT_FULL
#define TL__UCONTEXT_FULL 0
#endif

#if TL__UCONTEXT_FULL
#include <ucontext.h>
typedef struct tl__context {
    ucontext_t uc;
} tl__context;
#else
#include <setjmp.h>
struct tl__uc_launch;
typedef struct tl__context {
    sigjmp_buf resume;             /* where a suspended context continues */
    struct tl__uc_launch *launch;  /* until its first run: where its stack's
                                      launch record lives (top of stack) */
    tl__context_entry entry;
    void *arg;
    void *stack_lo;
    size_t stack_size;
} tl__context;
#endif
#else
typedef struct tl__context {
    void *sp; /* saved stack pointer; the registers live on that stack */
} tl__context;
#endif

/* Prepare *ctx so that the first tl__context_switch() into it calls
 * entry(arg) on the stack [stack_lo, stack_lo + size). entry must never
 * return (it switches away for the last time instead). The stack must not
 * be in use by another context that may still be resumed. */
void tl__context_make(tl__context *ctx, void *stack_lo, size_t size,
                      tl__context_entry entry, void *arg);

/* Save the current registers into *from and resume *to. Returns when some
 * later switch resumes *from. */
void tl__context_switch(tl__context *from, tl__context *to);

#if !defined(TL_CONTEXT_UCONTEXT)
/* Run fn(arg) on the stack of the suspended context *ctx, below its saved
 * registers, with unwind info that names the suspended context as fn's
 * caller: an unwinder started in fn walks the suspended stack (the task
 * dump's backtraces). tl__context_peek_ret is the return address of that
 * call, where such a walk crosses into the suspended frames. The ucontext
 * build has no such function (its dump prints no backtraces). */
#define TL_CONTEXT_HAVE_PEEK 1
void tl__context_peek(const tl__context *ctx, void (*fn)(void *), void *arg);
extern const char tl__context_peek_ret[];
#endif

#endif
