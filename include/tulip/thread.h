/* tulip/thread.h — included by <tulip.h>; do not include directly.
 *
 * Threads: asyncio.to_thread and the thread pool behind it.
 *
 * A blocking function (a synchronous library call, a CPU-heavy loop) would
 * freeze every task of the loop. tl_to_thread runs it on a thread pool and
 * suspends only the calling task until it returns; the loop keeps running
 * the other tasks meanwhile.
 *
 * The pool is an object (tl_pool). Each loop makes its own lazily, at its
 * first tl_to_thread, and frees it when tl_run returns — unless the loop's
 * configuration names a shared one (tl_config.pool), so that sixteen loops
 * need not mean sixteen pools. Pool threads start lazily (up to the pool's
 * size), block every signal, and are joined when the pool is freed.
 */
#ifndef TULIP_THREAD_H
#define TULIP_THREAD_H

#ifdef __cplusplus
extern "C" {
#endif

/* A thread pool (opaque; heap). */
typedef struct tl_pool tl_pool;

/* Make a pool of at most `nthreads` threads (0: min(32, CPUs + 4), the
 * size a loop's own pool gets). No thread starts until a job needs one.
 * Share it between loops through tl_config.pool; it must outlive every
 * tl_run that uses it. Returns 0 and *out, -EINVAL (nthreads < 0 or
 * > 4096, out NULL), -ENOMEM. Never suspends; thread-safe (any thread,
 * inside or outside a loop). */
TL_API int tl_pool_new(tl_pool **out, int nthreads);

/* Free a pool: wait for its running jobs, join its threads, free it.
 * Refused with -EBUSY (and a diagnostic) while a loop still uses it (a
 * tl_run whose configuration names it has not returned yet); -EDEADLK when
 * called from one of the pool's own threads. tl_pool_free(NULL) returns 0.
 * Blocks the calling thread (never suspends a task): call it after the
 * tl_run calls that used the pool have returned. Thread-safe. In a child
 * process forked after the pool was made, it only releases the memory
 * (the threads stayed in the parent) and returns 0. */
TL_API int tl_pool_free(tl_pool *pool);

/* asyncio.to_thread(fn, arg): run fn(arg) on the loop's thread pool and
 * suspend the calling task until it returns; *result (if result is not
 * NULL) receives fn's return value. fn runs on another thread, with every
 * signal blocked: it must not call tulip functions (it is not a task) and
 * must make its own accesses to shared data thread-safe. The worker's
 * writes to arg are visible to the caller when the call returns.
 *
 * Memory (invariant 1): arg may point into the caller's stack. The call
 * never returns while the worker may still touch arg — also when the
 * caller is cancelled:
 *   - cancelled before a worker picked the job up: the job is withdrawn,
 *     fn never runs, *result is left untouched, -ECANCELED;
 *   - cancelled while fn runs: the caller keeps waiting (this wait ignores
 *     cancellation) until fn returned; the work completed, so the call
 *     returns 0 and *result receives fn's return value (the rule in
 *     tulip.h's Model: the cancel shows at the caller's next suspending
 *     call);
 *   - fn had already returned when the cancel came: the same, 0.
 * So -ECANCELED always means fn never ran.
 * Use tl_to_thread_ex with TL_THREAD_ABANDON_ON_CANCEL to return at once.
 *
 * Returns 0, -ECANCELED, -EINVAL (fn NULL), -ENOMEM (no memory for the
 * pool or its bookkeeping), -EAGAIN (the pool's queue of pending jobs is
 * full, or not a single pool thread could be started; with a diagnostic),
 * TL_ENOTASK outside a task, TL_EFORK on a loop or a shared pool inherited
 * across fork() (make a new pool in the child). fn ran if and only if the
 * result is 0. SUSPENDS. Call it from a task (the loop's thread). */
TL_API TL_NODISCARD int tl_to_thread(tl_fn fn, void *arg, int *result);

/* Flags of tl_to_thread_ex. */
/* Trio's abandon_on_cancel: a cancelled caller returns -ECANCELED at once
 * and fn's late result is dropped. In exchange the call hands arg over to
 * fn: see tl_to_thread_ex for who frees what. */
#define TL_THREAD_ABANDON_ON_CANCEL 0x1u

/* tl_to_thread with flags (0 or TL_THREAD_ABANDON_ON_CANCEL).
 *
 * flags == 0: exactly tl_to_thread.
 *
 * TL_THREAD_ABANDON_ON_CANCEL — who frees what:
 *   - arg must not be on the caller's stack (heap, or static).
 *   - Once the call has accepted the job (it returns 0 or -ECANCELED),
 *     fn(arg) runs exactly once — also when the caller was already
 *     cancelled, or is cancelled before a worker picks the job up — and
 *     arg belongs to fn: fn releases it (free it, or drop its reference
 *     when the caller shares arg through a reference count) before it
 *     returns. The caller must not touch arg after the call, unless it
 *     kept its own reference.
 *   - 0: fn returned; *result receives its return value.
 *   - -ECANCELED: the caller was cancelled; the call returns at once and
 *     *result is never written; fn may still be running, and its return
 *     value is dropped when it comes. tulip frees its own bookkeeping.
 *   - -EINVAL, -ENOMEM, -EAGAIN, TL_ENOTASK: fn never runs and arg is
 *     still the caller's.
 * A job a cancelled caller left behind still runs to its end: tl_run
 * waits for it before returning (naming it if that takes over 5 s) and so
 * does tl_pool_free. SUSPENDS. */
TL_API TL_NODISCARD int tl_to_thread_ex(tl_fn fn, void *arg, int *result,
                                        unsigned flags);

#ifdef __cplusplus
}
#endif

#endif
