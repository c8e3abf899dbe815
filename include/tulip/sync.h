/* tulip/sync.h — included by <tulip.h>; do not include directly.
 *
 * ======================================================================
 * Coordination primitives
 * ======================================================================
 *
 * asyncio's Semaphore, BoundedSemaphore, Lock, Event, Condition and
 * Barrier, for tasks of one loop:
 *
 *   tl_sem      counting semaphore; tl_sem_init_bounded: BoundedSemaphore
 *   tl_lock     mutex owned by the task that acquired it
 *   tl_event    a flag tasks wait for
 *   tl_cond     condition variable over a tl_lock
 *   tl_barrier  n tasks meet, then all go on
 *
 * Storage. Each is a small fixed-size struct the caller owns: put it in a
 * struct, on a task's stack, or in a global, and set it up with its _init
 * function (or the static TL_*_INITIALIZER). The fields are private. While
 * tasks wait on a primitive they are linked into a list whose head lives in
 * the struct, so the storage must not be moved, copied or freed while
 * anyone waits on it (_destroy refuses with -EBUSY then). _destroy does not
 * free the storage, only checks that nothing waits and marks it dead, so a
 * later use is reported instead of corrupting memory.
 *
 * Order and fairness. Waiters are woken in FIFO order. A release (of a
 * permit, of the lock) with waiters present hands the permit directly to
 * the first waiter instead of making it available: no task that arrives
 * later can barge in ahead of one that waits (invariant 3).
 *
 * Cancellation. Every call marked SUSPENDS is a cancellation point: if the
 * task (or a scope around the call) is cancelled it returns -ECANCELED —
 * also when the primitive is free, since cancellation is level-triggered.
 * Completed wins: a waiter that was handed its permit, lock, wake-up or
 * barrier index before the cancel reached it returns success and holds
 * what it was given; the cancel shows at its next suspending call. A
 * waiter that was not satisfied takes nothing. Counts stay exact.
 *
 * Threads. Loop thread only. A primitive belongs to the loop whose tasks
 * use it; waking tasks of another loop is refused (-EXDEV and a
 * diagnostic). Non-suspending calls (release, set, notify, ...) may also
 * run on the loop's thread outside a task. Other threads post into the
 * loop instead (tulip/thread.h).
 *
 * Misuse gets a diagnostic on stderr and an error code: a primitive that
 * was never initialised or was destroyed (-EINVAL), releasing a lock the
 * caller does not hold (-EPERM), over-releasing a bounded semaphore
 * (-EOVERFLOW), destroying a primitive tasks wait on (-EBUSY).
 */
#ifndef TULIP_SYNC_H
#define TULIP_SYNC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Private: the head of an intrusive list of waiting tasks. All-zero is a
 * valid empty list (so the static initializers work). */
typedef struct tl__waitq {
    void *_priv[2];
} tl__waitq;

/* Private type tags (catch an uninitialised or destroyed primitive, or one
 * kind passed as another). */
#define TL__SEM_MAGIC 0x746c5331u     /* "tlS1" */
#define TL__LOCK_MAGIC 0x746c4c31u    /* "tlL1" */
#define TL__EVENT_MAGIC 0x746c4531u   /* "tlE1" */
#define TL__COND_MAGIC 0x746c4331u    /* "tlC1" */
#define TL__BARRIER_MAGIC 0x746c4231u /* "tlB1" */

/* ---------------------------------------------------------------------- */
/* Semaphore and BoundedSemaphore                                          */

typedef struct tl_sem {
    tl__waitq _waiters; /* tasks in tl_sem_acquire, FIFO */
    int _value;         /* free permits; > 0 only while nobody waits */
    int _bound;         /* bounded: the initial value; -1: unbounded */
    uint32_t _magic;
} tl_sem;

/* `static tl_sem s = TL_SEM_INITIALIZER(10);` — as tl_sem_init(&s, 10). */
#define TL_SEM_INITIALIZER(n) {{{0, 0}}, (n), -1, TL__SEM_MAGIC}
/* As tl_sem_init_bounded. */
#define TL_BSEM_INITIALIZER(n) {{{0, 0}}, (n), (n), TL__SEM_MAGIC}

/* asyncio.Semaphore(value): a semaphore with `value` permits.
 * Returns 0, or -EINVAL if s is NULL or value < 0. Never suspends. Any
 * thread (it only writes *s). */
TL_API int tl_sem_init(tl_sem *s, int value);

/* asyncio.BoundedSemaphore(value): as tl_sem_init, but a release that
 * would raise the count above `value` is refused with -EOVERFLOW and a
 * diagnostic (it means a task released a permit it never acquired). */
TL_API int tl_sem_init_bounded(tl_sem *s, int value);

/* Retire the semaphore. Returns 0; -EBUSY (and a diagnostic) if tasks
 * still wait on it (nothing is changed then); -EINVAL not a live
 * semaphore. The storage stays the caller's. Never suspends. */
TL_API int tl_sem_destroy(tl_sem *s);

/* await sem.acquire(): take a permit, waiting (FIFO) while none is free.
 * Returns 0 with a permit held (give it back with tl_sem_release);
 * -ECANCELED without one (also when a permit is free: the task is
 * cancelled); -EINVAL not a live semaphore; TL_ENOTASK outside a task;
 * -EXDEV the semaphore is in use by another loop. A waiter that was
 * handed a permit keeps it even if cancelled before it ran again.
 * SUSPENDS. */
TL_API TL_NODISCARD int tl_sem_acquire(tl_sem *s);

/* Take a permit only if one is free now and nobody waits. Returns 0 (a
 * permit held), -EAGAIN, -EINVAL. Does not look at cancellation. Never
 * suspends. */
TL_API int tl_sem_try_acquire(tl_sem *s);

/* sem.release(): give a permit back. With waiters, the permit goes
 * straight to the first of them (it becomes READY holding it); else the
 * count goes up. Returns 0; -EOVERFLOW (and a diagnostic) for a bounded
 * semaphore already at its initial value, or a count at INT_MAX;
 * -EINVAL; -EXDEV. Never suspends (the woken task runs later). */
TL_API int tl_sem_release(tl_sem *s);

/* Free permits now (0 while tasks wait), or -EINVAL. Never suspends. */
TL_API int tl_sem_value(const tl_sem *s);

/* sem.locked(): non-zero if an acquire would wait (no free permit); 0
 * for a bad semaphore (after a diagnostic). Never suspends. */
TL_API int tl_sem_locked(const tl_sem *s);

/* ---------------------------------------------------------------------- */
/* Lock                                                                    */

typedef struct tl_lock {
    tl__waitq _waiters; /* tasks in tl_lock_acquire, FIFO */
    void *_owner;       /* the holding task (private), NULL: unlocked */
    void *_site;        /* where the owner acquired it (a return address);
                           with no owner: abandoned */
    uint32_t _owner_gen; /* its generation, so a reused slot never owns */
    uint32_t _magic;
} tl_lock;

#define TL_LOCK_INITIALIZER {{{0, 0}}, 0, 0, 0, TL__LOCK_MAGIC}

/* A task that ends while holding a lock (it returned, failed or was
 * cancelled without releasing it) abandons it. tulip reports it at once on
 * stderr — the task, the lock, and where it was acquired (module+offset,
 * for addr2line) — and every task waiting for the lock is woken with
 * -EOWNERDEAD, without it. The lock stays abandoned: later acquires return
 * -EOWNERDEAD at once (with a diagnostic), tl_lock_locked says yes, until
 * tl_lock_init makes it new. Why not pass it on, as a POSIX robust mutex
 * does? The data it guarded may be half-updated, and a C caller's natural
 * `if (rc < 0) return rc;` after an acquire that returned an error while
 * holding the lock would abandon it again; why not keep it locked? Its
 * waiters would hang with no message. Repair the data, then re-initialise
 * the lock (tl_lock_destroy accepts an abandoned lock). */

/* asyncio.Lock(): an unlocked lock. 0, -EINVAL. Never suspends. */
TL_API int tl_lock_init(tl_lock *l);

/* Retire the lock. 0; -EBUSY (and a diagnostic) if it is held or tasks
 * wait on it; -EINVAL. Never suspends. */
TL_API int tl_lock_destroy(tl_lock *l);

/* await lock.acquire(): lock it, waiting (FIFO) while another task holds
 * it. The lock is owned by the calling task: only that task may release
 * it, and it must before it ends (see "abandons" above). Returns 0 (held);
 * -ECANCELED (not held); -EOWNERDEAD (not held: the lock was abandoned by
 * a task that ended holding it, before or while we waited); -EDEADLK (and
 * a diagnostic) if the caller already holds it — asyncio would hang;
 * -ENOMEM (the task's record of held locks could not grow); -EINVAL;
 * TL_ENOTASK; -EXDEV. A waiter that was handed the lock keeps it even if
 * cancelled before it ran again. SUSPENDS. */
TL_API TL_NODISCARD int tl_lock_acquire(tl_lock *l);

/* Lock it only if it is free now. 0 (held), -EBUSY (held by someone,
 * possibly the caller), -EOWNERDEAD (abandoned), -ENOMEM, -EINVAL,
 * TL_ENOTASK. Never suspends. */
TL_API int tl_lock_try_acquire(tl_lock *l);

/* lock.release(): unlock; with waiters, ownership passes straight to the
 * first of them. Returns 0; -EPERM (and a diagnostic) if the calling task
 * does not hold the lock (also: unlocked, or called outside a task);
 * -EINVAL; -EXDEV. Never suspends. */
TL_API int tl_lock_release(tl_lock *l);

/* lock.locked(): non-zero if some task holds it, or it was abandoned.
 * Never suspends. Like
 * every yes/no function here, a bad object reads as 0 (after a
 * diagnostic). */
TL_API int tl_lock_locked(const tl_lock *l);

/* Non-zero if the calling task holds it (0 outside a task). */
TL_API int tl_lock_owned(const tl_lock *l);

/* ---------------------------------------------------------------------- */
/* Event                                                                   */

typedef struct tl_event {
    tl__waitq _waiters; /* tasks in tl_event_wait, FIFO */
    uint32_t _magic;
    int _set;
} tl_event;

#define TL_EVENT_INITIALIZER {{{0, 0}}, TL__EVENT_MAGIC, 0}

/* asyncio.Event(): a cleared event. 0, -EINVAL. Never suspends. */
TL_API int tl_event_init(tl_event *e);

/* Retire it. 0; -EBUSY (and a diagnostic) if tasks wait; -EINVAL. */
TL_API int tl_event_destroy(tl_event *e);

/* event.set(): set the flag and wake every waiter (in FIFO order; each
 * returns 0 even if the event is cleared again before it runs). Returns
 * how many tasks were woken (>= 0), -EINVAL, -EXDEV. Never suspends. */
TL_API int tl_event_set(tl_event *e);

/* event.clear(). 0, -EINVAL. Never suspends. */
TL_API int tl_event_clear(tl_event *e);

/* event.is_set(): non-zero if set (0 for a bad event). Never suspends. */
TL_API int tl_event_is_set(const tl_event *e);

/* await event.wait(): return once the flag is set (at once if it is).
 * 0; -ECANCELED; -EINVAL; TL_ENOTASK; -EXDEV. SUSPENDS. */
TL_API TL_NODISCARD int tl_event_wait(tl_event *e);

/* ---------------------------------------------------------------------- */
/* Condition                                                               */

typedef struct tl_cond {
    tl__waitq _waiters; /* tasks in tl_cond_wait, FIFO */
    tl_lock *_lock;     /* the lock it was given, NULL: _own */
    tl_lock _own;       /* used when no lock was given */
    uint32_t _magic;
} tl_cond;

/* A condition with its own lock. */
#define TL_COND_INITIALIZER                                                 \
    {{{0, 0}}, 0, TL_LOCK_INITIALIZER, TL__COND_MAGIC}

/* asyncio.Condition(lock): a condition variable over `lock` (borrowed: it
 * must outlive the condition), or over a lock of its own if lock is NULL
 * (tl_cond_lock returns it). 0, -EINVAL. Never suspends. */
TL_API int tl_cond_init(tl_cond *c, tl_lock *lock);

/* Retire it (and its own lock). 0; -EBUSY (and a diagnostic) if tasks
 * wait on it, or its own lock is held or waited on; -EINVAL. */
TL_API int tl_cond_destroy(tl_cond *c);

/* The condition's lock: acquire it before waiting or notifying. NULL if c
 * is not a live condition. Never suspends. */
TL_API tl_lock *tl_cond_lock(tl_cond *c);

/* await cond.wait(): the caller must hold the lock. Releases it, waits
 * for a notify, then re-acquires it. Always returns with the lock held,
 * also when it returns -ECANCELED: the re-acquire ignores cancellation
 * (invariant 1), so a cancelled waiter may still wait for the lock.
 * Returns 0 (notified); -ECANCELED (not notified, or cancelled before it
 * released the lock); -EPERM (and a diagnostic) if the caller does not
 * hold the lock (nothing changed); -EINVAL; TL_ENOTASK; -EXDEV. A waiter
 * that was notified returns 0 even if cancelled before it ran again, so a
 * notification is never lost. The one return without the lock:
 * -EOWNERDEAD, the lock was abandoned (a task ended holding it) while we
 * waited to re-acquire it. SUSPENDS. */
TL_API TL_NODISCARD int tl_cond_wait(tl_cond *c);

/* await cond.wait_for(predicate): the caller must hold the lock. Checks
 * pred(arg) (with the lock held) and waits until it returns non-zero.
 * Returns 0 once pred returned non-zero; otherwise as tl_cond_wait
 * (-ECANCELED: the lock is held, pred may be false). Like every
 * suspending call it returns -ECANCELED first if the task is cancelled,
 * even when the predicate holds. SUSPENDS. */
TL_API TL_NODISCARD int tl_cond_wait_for(tl_cond *c, int (*pred)(void *arg),
                                         void *arg);

/* cond.notify(n): wake up to n waiters (FIFO). The caller must hold the
 * lock; the notified waiters queue for it (ahead of any later acquirer)
 * and return from tl_cond_wait one by one, in notify order, as it is
 * released. Returns how many were notified (>= 0); -EPERM (and a
 * diagnostic) without the lock; -EINVAL; -EXDEV. Never suspends. */
TL_API int tl_cond_notify(tl_cond *c, int n);

/* cond.notify_all(): wake every waiter. As tl_cond_notify. */
TL_API int tl_cond_notify_all(tl_cond *c);

/* ---------------------------------------------------------------------- */
/* Barrier                                                                 */

typedef struct tl_barrier {
    tl__waitq _waiters; /* tasks in tl_barrier_wait, in arrival order */
    int _parties;       /* tasks needed to trip it */
    int _count;         /* tasks waiting now */
    int _broken;        /* aborted: every wait fails until a reset */
    uint32_t _magic;
} tl_barrier;

#define TL_BARRIER_INITIALIZER(n) {{{0, 0}}, (n), 0, 0, TL__BARRIER_MAGIC}

/* asyncio.Barrier(parties). 0, -EINVAL (parties < 1). Never suspends. */
TL_API int tl_barrier_init(tl_barrier *b, int parties);

/* Retire it. 0; -EBUSY (and a diagnostic) if tasks wait; -EINVAL. */
TL_API int tl_barrier_destroy(tl_barrier *b);

/* await barrier.wait(): wait until `parties` tasks are waiting, then all
 * of them return together and the barrier starts over (it is cyclic).
 * Returns the caller's arrival index in its round, 0 .. parties-1, each
 * index exactly once per round (the task that trips it gets parties-1);
 * TL_EBROKEN if the barrier is broken (tl_barrier_abort) or was reset
 * while the caller waited; -ECANCELED: the caller left the round (the
 * others keep waiting, the barrier is not broken — as asyncio); -EINVAL;
 * TL_ENOTASK; -EXDEV. A waiter whose round tripped keeps its index even
 * if cancelled before it ran again. SUSPENDS. */
TL_API TL_NODISCARD int tl_barrier_wait(tl_barrier *b);

/* barrier.abort(): break it: every waiter, and every later wait until a
 * reset, returns TL_EBROKEN. 0, -EINVAL, -EXDEV. Never suspends. */
TL_API int tl_barrier_abort(tl_barrier *b);

/* barrier.reset(): waiters return TL_EBROKEN; the barrier is then empty
 * and unbroken. 0, -EINVAL, -EXDEV. Never suspends. */
TL_API int tl_barrier_reset(tl_barrier *b);

/* barrier.parties / n_waiting (-EINVAL for a bad barrier) / broken (0
 * for a bad barrier). Never suspend. */
TL_API int tl_barrier_parties(const tl_barrier *b);
TL_API int tl_barrier_n_waiting(const tl_barrier *b);
TL_API int tl_barrier_broken(const tl_barrier *b);

/* ---------------------------------------------------------------------- */
/* Block macros: `async with lock:` / `async with sem:` in C.
 *
 *     int rc;
 *     TL_WITH_LOCK(&lock, &rc) {
 *         rc = update(&shared);     // the lock is held here
 *     }                             // released here, also on break,
 *                                   // return and goto
 *     if (rc == -ECANCELED) ...     // the acquire failed: body skipped
 *
 * *rc is set to the acquire's result; if that is not 0 (-ECANCELED, or a
 * misuse code) the body is skipped. Otherwise *rc is 0 when the body
 * starts, the body may store its own result in it, and the lock (the
 * permit) is released when the block is left however it is left. The
 * block's value is *rc afterwards: the acquire failure or the body's.
 * A `break` leaves this block (not an enclosing loop). SUSPENDS (the
 * acquire, and whatever the body does). */
#define TL_WITH_LOCK(lockp, rcp) TL__WITH_HELD(1, (lockp), (rcp))
#define TL_WITH_SEM(semp, rcp) TL__WITH_HELD(2, (semp), (rcp))

/* ---------------------------------------------------------------------- */
/* Implementation details of the macros above; not API.                   */

struct tl__held {
    int once;  /* the body still has to run */
    int held;  /* release on exit */
    int kind;  /* 1 lock, 2 semaphore */
    void *obj;
};
TL_API struct tl__held tl__held_begin(int kind, void *obj, int *rcp);
TL_API void tl__held_end(struct tl__held *h);

#define TL__WITH_HELD(kind, obj, rcp)                                        \
    for (struct tl__held TL__CAT(tl__h_, __LINE__)                           \
             __attribute__((cleanup(tl__held_end))) =                        \
             tl__held_begin((kind), (obj), (rcp));                           \
         TL__CAT(tl__h_, __LINE__).once; TL__CAT(tl__h_, __LINE__).once = 0)

#ifdef __cplusplus
}
#endif

#endif /* TULIP_SYNC_H */
