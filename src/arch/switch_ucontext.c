/* Portable context switch (see context.h), for targets without a
 * hand-written switch or with -DTL_CONTEXT_UCONTEXT.
 *
 * POSIX offers one way onto a new stack: makecontext + setcontext (or
 * swapcontext). glibc's versions make an rt_sigprocmask system call every
 * time (they restore the context's signal mask) and save the FP
 * environment. Using swapcontext for every switch made a task's life cost
 * about four system calls (start, each suspension and resumption, end),
 * and a ucontext_t (~1 KiB) per task: 100,000 spawn + join took 6 s
 * against 0.1 s with the assembly switch, and a million sleepers did not
 * finish in 300 s on a machine with dear system calls.
 *
 * So ucontext is used only to get onto a stack for the first time:
 *
 * - every switch after that is sigsetjmp(from, 0) + siglongjmp(to): no
 *   mask, no system call, as the assembly switch (the signal mask belongs
 *   to the thread, shared by its tasks: context.h);
 * - a stack's first context starts in `trampoline` through makecontext +
 *   setcontext (two system calls: getcontext reads the mask, setcontext
 *   sets it back — the only mask operations left, and the reason a fresh
 *   stack still costs more than with the assembly switch). The trampoline
 *   parks itself with sigsetjmp in a launch record at the top of the stack
 *   before it runs the context's entry; an entry never returns, so the
 *   trampoline's frame stays intact above every later frame;
 * - a later context on the same stack (the pool hands stacks out again)
 *   jumps straight to that park point: no system call either. The record
 *   carries a magic word derived from its address and the stack size; a
 *   stack whose memory was given back (zeroed) or never launched fails the
 *   check and is launched afresh. The record and the trampoline's frame
 *   share the stack's top page (checked), and the pool keeps that page
 *   whenever it trims a stack, so the park point is either whole or gone.
 *
 * Jumping between stacks with longjmp is what GNU Pth and libco did for
 * years; glibc's _FORTIFY_SOURCE variant (__longjmp_chk) refuses it, so
 * it is turned off for this file. Under ASan and TSan, whose longjmp
 * interceptors assume one stack per thread (TSan: per fiber), every switch
 * is a full swapcontext instead (TL__UCONTEXT_FULL).
 */
#undef _FORTIFY_SOURCE
#if defined(TL_CONTEXT_UCONTEXT)

#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

#include "arch/context.h"

/* makecontext passes only int arguments, so a pointer travels as two
 * 32-bit halves. The shifts by 16 twice keep this valid where uintptr_t
 * is 32 bits. */
#define HI32(p) ((unsigned)((uintptr_t)(p) >> 16 >> 16))
#define LO32(p) ((unsigned)(uintptr_t)(p))
#define JOIN32(h, l) (((uintptr_t)(h) << 16 << 16) | (uintptr_t)(l))

#if TL__UCONTEXT_FULL

static void trampoline(unsigned eh, unsigned el, unsigned ah, unsigned al)
{
    ((tl__context_entry)JOIN32(eh, el))((void *)JOIN32(ah, al));
    /* entry must never return: uc_link is NULL, the thread would exit. */
    abort();
}

void tl__context_make(tl__context *ctx, void *stack_lo, size_t size,
                      tl__context_entry entry, void *arg)
{
    if (getcontext(&ctx->uc) != 0)
        abort();
    ctx->uc.uc_stack.ss_sp = stack_lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_stack.ss_flags = 0;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))trampoline, 4, HI32(entry),
                LO32(entry), HI32(arg), LO32(arg));
}

void tl__context_switch(tl__context *from, tl__context *to)
{
    if (swapcontext(&from->uc, &to->uc) != 0)
        abort();
}

#else /* !TL__UCONTEXT_FULL */

/* At the top of every stack that was launched. */
struct tl__uc_launch {
    uintptr_t magic;          /* launch_magic(this, size) once park is set */
    size_t size;              /* the stack's size when it was launched */
    tl__context *volatile next; /* the context to start, set before the
                                   jump to park */
    sigjmp_buf park;          /* the trampoline, waiting for a context */
};

/* Rounded up so that the stack below it stays 16-byte aligned. */
#define LAUNCH_SIZE ((sizeof(struct tl__uc_launch) + 63) & ~(size_t)63)
/* No page is smaller; the record and the park frame must share one. */
#define MIN_PAGE 4096u

static uintptr_t launch_magic(const struct tl__uc_launch *r, size_t size)
{
    return ((uintptr_t)r ^ ((uintptr_t)size * 0x9e3779b9u)) ^
           (uintptr_t)0x746c7563u; /* "tluc" */
}

static void trampoline(unsigned rh, unsigned rl)
{
    struct tl__uc_launch *r = (struct tl__uc_launch *)JOIN32(rh, rl);
    char here; /* an address in the park frame */

    /* First arrival: 0. Every later context on this stack: 1. Either way
     * r->next says which context to start. r is not changed after the
     * sigsetjmp, so it survives the jump. */
    if (sigsetjmp(r->park, 0) == 0) {
        uintptr_t top = (uintptr_t)r + LAUNCH_SIZE;
        if ((uintptr_t)&here >= top - MIN_PAGE)
            r->magic = launch_magic(r, r->size);
    }
    tl__context *c = r->next;
    c->entry(c->arg);
    /* entry must never return: uc_link is NULL, the thread would exit. */
    abort();
}

void tl__context_make(tl__context *ctx, void *stack_lo, size_t size,
                      tl__context_entry entry, void *arg)
{
    /* Nothing is touched yet: the first switch decides how to start. */
    ctx->launch = (struct tl__uc_launch *)((char *)stack_lo + size -
                                           LAUNCH_SIZE);
    ctx->entry = entry;
    ctx->arg = arg;
    ctx->stack_lo = stack_lo;
    ctx->stack_size = size;
}

/* Start `to` on its stack for the first time: the only system calls. The
 * ucontext lives in this frame, on from's stack below from's saved stack
 * pointer; setcontext has read it before anything can reuse that memory. */
static __attribute__((noinline, noreturn)) void
launch(struct tl__uc_launch *r, tl__context *to)
{
    ucontext_t uc;

    r->magic = 0; /* until the trampoline has parked again */
    r->size = to->stack_size;
    if (getcontext(&uc) != 0)
        abort();
    uc.uc_stack.ss_sp = to->stack_lo;
    uc.uc_stack.ss_size = to->stack_size - LAUNCH_SIZE;
    uc.uc_stack.ss_flags = 0;
    uc.uc_link = NULL;
    makecontext(&uc, (void (*)(void))trampoline, 2, HI32(r), LO32(r));
    setcontext(&uc);
    abort(); /* setcontext returns only on failure */
}

void tl__context_switch(tl__context *from, tl__context *to)
{
    if (sigsetjmp(from->resume, 0) != 0)
        return; /* some later switch resumed from */
    struct tl__uc_launch *r = to->launch;
    if (!r)
        siglongjmp(to->resume, 1);
    to->launch = NULL;
    r->next = to;
    if (r->magic == launch_magic(r, to->stack_size))
        siglongjmp(r->park, 1); /* a stack launched before: reuse it */
    launch(r, to);
}

#endif /* TL__UCONTEXT_FULL */

#else
/* ISO C forbids an empty translation unit. */
typedef int tl__switch_ucontext_unused;
#endif
