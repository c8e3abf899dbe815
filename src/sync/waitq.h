/* Wait queues of the coordination primitives and queues (src/sync.c,
 * src/queue.c). Not installed.
 *
 * A tl__waitq (public, opaque: two pointers in the caller's storage) is
 * the head of a circular list of tasks linked through tl__task.wait_link.
 * All-zero storage is an empty list, so static initializers work: the head
 * is made self-linked on first use.
 *
 * The wait protocol every primitive follows (the pattern of src/time.c):
 *
 *   1. tl__checkpoint (level-triggered cancellation), then try the fast
 *      path (a free permit, an item);
 *   2. link the task at the tail, park with waitq_cancel as the cancel
 *      hook;
 *   3. whoever satisfies a waiter unlinks it FIRST and then tl__wake()s it
 *      with the result (0, an index, an error). tl__wake clears the cancel
 *      hook, so a cancel arriving afterwards cannot undo it: the waiter
 *      returns success and meets the cancel at its next suspension
 *      ("completed wins", invariant 3). A task is on a list exactly while
 *      it is WAITING there and unsatisfied, which is what keeps every count
 *      exact.
 */
#ifndef TL_WAITQ_H
#define TL_WAITQ_H

#include "internal.h"

_Static_assert(sizeof(tl__waitq) == sizeof(tl__link),
               "tl__waitq must have tl__link's layout");
_Static_assert(_Alignof(tl__waitq) == _Alignof(tl__link),
               "tl__waitq must have tl__link's alignment");

static inline tl__link *tl__waitq_head(tl__waitq *q)
{
    tl__link *h = (tl__link *)(void *)q;
    if (!h->next) tl__list_init(h);
    return h;
}

static inline bool tl__waitq_empty(const tl__waitq *q)
{
    const tl__link *h = (const tl__link *)(const void *)q;
    return !h->next || h->next == h;
}

static inline tl__task *tl__waitq_first(const tl__waitq *q)
{
    if (tl__waitq_empty(q)) return NULL;
    const tl__link *h = (const tl__link *)(const void *)q;
    return tl__container_of(h->next, tl__task, wait_link);
}

/* Unlink and return the first waiter, or NULL. */
static inline tl__task *tl__waitq_pop(tl__waitq *q)
{
    if (tl__waitq_empty(q)) return NULL;
    tl__link *n = tl__list_pop((tl__link *)(void *)q);
    return tl__container_of(n, tl__task, wait_link);
}

/* Waiters belong to one loop: refuse to wake them from another thread's
 * loop (their run queue is not ours). And while any loop runs in the
 * process, refuse a change made from a thread that runs none even when
 * nobody waits: it would be an unsynchronised write that a loop's task
 * may be reading, and it would work or not depending on whether a task
 * happened to wait. (Before any loop runs, setting up a primitive from
 * plain code is fine.) 0 or -EXDEV after a diagnostic (the same one
 * either way). */
static inline int tl__waitq_check_loop(const tl__waitq *q, const char *what)
{
    tl__task *t = tl__waitq_first(q);
    if ((t && t->loop != tl__self) ||
        (!tl__self && atomic_load_explicit(&tl__loops_running,
                                           memory_order_relaxed) > 0)) {
        char owner[32] = "a loop";
        if (t) snprintf(owner, sizeof owner, "loop #%u", (unsigned)t->loop->id);
        tl__diag("%s: used from %s, but a primitive belongs to one loop "
                 "(%s, whose tasks use it): from another thread, hand the "
                 "work to that loop with tl_loop_call", what,
                 tl__self ? "another loop's thread"
                          : "a thread that runs no tulip loop", owner);
        return -EXDEV;
    }
    return 0;
}

/* The default cancel hook: leave the list and fail with -ECANCELED. */
static inline void tl__waitq_cancel(tl__task *t)
{
    tl__list_remove(&t->wait_link);
    tl__wake(t, -ECANCELED);
}

/* Link self at the tail and park. data goes to self->wait_data for the
 * waker. on_cancel NULL: the wait ignores cancellation. */
static inline int tl__waitq_park(tl__waitq *q, tl__task *self, void *data,
                                 tl__cancel_fn on_cancel, const char *what)
{
    tl__list_push(tl__waitq_head(q), &self->wait_link);
    self->wait_data = data;
    int rc = tl__park(self, on_cancel, what);
    self->wait_data = NULL;
    return rc;
}

#endif
