/* Fibers: the raw context switch plus what the tools must hear about it.
 *
 * - AddressSanitizer keeps per-thread stack bounds and a "fake stack" for
 *   use-after-return detection; both must be swapped on every switch
 *   (__sanitizer_start_switch_fiber before, __sanitizer_finish_switch_fiber
 *   after, on the new stack). A fiber that will never run again passes NULL
 *   as the fake-stack save so ASan frees its fake frames.
 * - ThreadSanitizer keeps a shadow call stack and vector clock per fiber.
 * - Valgrind must know a region is a stack, or it takes the first switch
 *   for a huge stack-pointer change and reports garbage.
 *
 * In a build without the tool each hook compiles to nothing, and
 * tl__fiber_switch is a tail call into tl__context_switch. It is the hot
 * path: no system calls, no clock reads, no allocation, no errno traffic
 * (saving errno per task is the scheduler's job).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "fiber.h"

/* TL_FIBER_ASAN and TL_FIBER_TSAN: fiber.h. */

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TL_FIBER_VALGRIND 1
#endif
#endif

/* Declared here rather than through <sanitizer/...> headers, which not
 * every toolchain installs. The signatures are the runtimes' ABI. */
#ifdef TL_FIBER_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save,
                                    const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old,
                                     size_t *size_old);
#endif
#ifdef TL_FIBER_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

void tl__fiber_init_thread(tl__fiber *f)
{
    memset(f, 0, sizeof *f);
#ifdef TL_FIBER_ASAN
    /* ASan needs the bounds of the stack it switches back to. Not a hot
     * path (once per thread), so reading them the slow way is fine. */
    {
        pthread_attr_t attr;
        void *addr;
        size_t size;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
                f->stack_lo = addr;
                f->stack_size = size;
            }
            pthread_attr_destroy(&attr);
        }
    }
#endif
#ifdef TL_FIBER_TSAN
    /* The thread's own fiber belongs to TSan: never destroyed by us. */
    f->tsan_fiber = __tsan_get_current_fiber();
#endif
}

void tl__fiber_fini_thread(tl__fiber *f)
{
    /* Nothing was allocated for the thread's own stack. */
    memset(f, 0, sizeof *f);
}

void tl__fiber_make(tl__fiber *f, void *lo, size_t size,
                    tl__context_entry entry, void *arg)
{
#ifdef TL_FIBER_ASAN
    f->stack_lo = lo;
    f->stack_size = size;
    f->asan_fake_stack = NULL;
#endif
#ifdef TL_FIBER_TSAN
    f->tsan_fiber = NULL;
#endif
    f->valgrind_id = 0;
    /* ASan: the pool unpoisons a reused stack when it hands it out
     * (src/core/stack.c, tl__stack_get): only the part its last task used,
     * never the whole stack, whose shadow (1/8 of it) would otherwise be
     * read or written for every task. */
#ifdef TL_FIBER_TSAN
    f->tsan_fiber = __tsan_create_fiber(0);
#endif
#ifdef TL_FIBER_VALGRIND
    /* Stored +1 so that 0 means "not registered" even if Valgrind hands
     * out id 0. Outside Valgrind the request returns 0: nothing stored. */
    if (RUNNING_ON_VALGRIND)
        f->valgrind_id =
            (unsigned)VALGRIND_STACK_REGISTER(lo, (char *)lo + size) + 1;
#endif
    tl__context_make(&f->ctx, lo, size, entry, arg);
}

void tl__fiber_release(tl__fiber *f)
{
#ifdef TL_FIBER_TSAN
    if (f->tsan_fiber) {
        __tsan_destroy_fiber(f->tsan_fiber);
        f->tsan_fiber = NULL;
    }
#endif
#ifdef TL_FIBER_VALGRIND
    if (f->valgrind_id) {
        VALGRIND_STACK_DEREGISTER(f->valgrind_id - 1);
        f->valgrind_id = 0;
    }
#endif
    (void)f;
}

void tl__fiber_switch(tl__fiber *from, tl__fiber *to, int exiting)
{
#ifdef TL_FIBER_ASAN
    __sanitizer_start_switch_fiber(exiting ? NULL : &from->asan_fake_stack,
                                   to->stack_lo, to->stack_size);
#else
    (void)exiting;
#endif
#ifdef TL_FIBER_TSAN
    /* flags 0: synchronise, so TSan sees the happens-before edge that the
     * single-threaded hand-off really is. */
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    tl__context_switch(&from->ctx, &to->ctx);
#ifdef TL_FIBER_ASAN
    /* Back on from's stack: restore its fake stack. */
    __sanitizer_finish_switch_fiber(from->asan_fake_stack, NULL, NULL);
#endif
}

void tl__fiber_started(tl__fiber *self)
{
#ifdef TL_FIBER_ASAN
    /* First time on this stack: there is no fake stack to restore. */
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    (void)self;
}
