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

/* Which tools this build has (the sanitizers apply to the whole build,
 * so every file sees the same layout). */
#if defined(__SANITIZE_ADDRESS__)
#define TL_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TL_FIBER_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define TL_FIBER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TL_FIBER_TSAN 1
#endif
#endif

/* Every task record holds one, so the fields only a sanitizer reads exist
 * only in its build: a plain build's fiber is the context and Valgrind's
 * id (16 bytes instead of 48; a million live tasks write 32 MB less of
 * task table, design.md "Figures"). */
typedef struct tl__fiber {
    tl__context ctx;
#ifdef TL_FIBER_ASAN
    const void *stack_lo;   /* the fiber's stack bounds */
    size_t stack_size;
    void *asan_fake_stack;  /* ASan's fake-stack handle while suspended */
#endif
#ifdef TL_FIBER_TSAN
    void *tsan_fiber;       /* TSan fiber handle */
#endif
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
