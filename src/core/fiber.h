/* A fiber: a context plus what the tools must be told about it.
 *
 * AddressSanitizer (__sanitizer_start/finish_switch_fiber), ThreadSanitizer
 * (__tsan_create/switch_to/destroy_fiber) and Valgrind
 * (VALGRIND_STACK_REGISTER) must hear about every switch and every stack,
 * or they report nonsense on programs that switch stacks. Those hooks
 * compile to nothing in a build without the tool.
 */
#ifndef TL_FIBER_H
#define TL_FIBER_H

#include "arch/context.h"

typedef struct tl__fiber {
    tl__context ctx;
    const void *stack_lo;   /* for ASan: the fiber's stack bounds */
    size_t stack_size;
    void *asan_fake_stack;  /* ASan's fake-stack handle while suspended */
    void *tsan_fiber;       /* TSan fiber handle */
    unsigned valgrind_id;   /* Valgrind stack id + 1, 0 if none (Valgrind
                               may hand out id 0) */
} tl__fiber;

/* The thread's own stack (where the scheduler runs). */
void tl__fiber_init_thread(tl__fiber *f);
void tl__fiber_fini_thread(tl__fiber *f);

/* A fiber that starts entry(arg) on [lo, lo+size). */
void tl__fiber_make(tl__fiber *f, void *lo, size_t size,
                    tl__context_entry entry, void *arg);
/* Forget the stack (Valgrind deregister, TSan destroy). Not for the
 * running fiber. */
void tl__fiber_release(tl__fiber *f);

/* Switch from the running fiber `from` to `to`. If `exiting` is non-zero,
 * `from` will never be resumed (ASan frees its fake stack). */
void tl__fiber_switch(tl__fiber *from, tl__fiber *to, int exiting);

/* Must be called first thing in a fiber's entry function (ASan needs it
 * to finish the switch that started the fiber). */
void tl__fiber_started(tl__fiber *self);

#endif
