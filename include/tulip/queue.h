/* tulip/queue.h — included by <tulip.h>; do not include directly.
 *
 * ======================================================================
 * Queues
 * ======================================================================
 *
 * asyncio.Queue, LifoQueue and PriorityQueue in one type, tl_queue, for
 * tasks of one loop. Items are `void *`; the queue stores the pointers,
 * never what they point to. Whoever put an item gives it to whoever gets
 * it; items the queue itself discards (an immediate shutdown, a destroy
 * with items left) are passed to the optional `drop` callback so heap
 * items are not leaked.
 *
 *   FIFO      first in, first out (asyncio.Queue)
 *   LIFO      last in, first out (asyncio.LifoQueue)
 *   PRIORITY  smallest first (asyncio.PriorityQueue): by a caller-given
 *             compare function of the items, or else by an int64 priority
 *             given with tl_queue_put_prio; equal ones leave in the order
 *             they were put (stable, unlike heapq)
 *
 * Bounded (maxsize > 0): put waits while the queue is full; 0 means
 * unbounded. get waits while it is empty. try_put and try_get never wait
 * (TL_EFULL, TL_EEMPTY). Waiters are served FIFO with direct handoff: a
 * put while getters wait gives the item straight to the first getter; a
 * get from a full queue with putters waiting takes the first putter's item
 * in at once; nobody can barge ahead of a waiter (invariant 3).
 *
 * task_done / join count unfinished items exactly like asyncio: every
 * successful put adds one, task_done removes one, join waits for zero.
 *
 * Shutdown (asyncio 3.13). Graceful (immediate = 0): puts fail with
 * TL_EQSHUTDOWN from then on, and so do waiting putters (their items were
 * never taken: they stay theirs); gets drain what is left, then fail with
 * TL_EQSHUTDOWN. Immediate: the items left are dropped (counted as done
 * for join, handed to `drop`) and every waiting getter and putter returns
 * TL_EQSHUTDOWN. A task woken with success before the shutdown keeps it.
 *
 * Cancellation and nothing lost. get, put and join are cancellation
 * points (-ECANCELED, level-triggered: also when an item or room is
 * there). A getter that was handed an item, or a putter whose item was
 * taken in, returns 0 even if cancelled before it ran again; a cancelled
 * getter took nothing, a cancelled putter put nothing (the item is still
 * the caller's). No item is ever lost or duplicated.
 *
 * Storage: tl_queue is caller storage (a struct member, a stack variable)
 * set up by tl_queue_init and released by tl_queue_destroy; the buffer it
 * uses is on the heap, grown on demand (by doubling, up to maxsize). Its
 * fields are private. Tasks waiting on the queue are linked into lists
 * whose heads live in the struct, so it must not be moved, copied or freed
 * while anyone waits on it.
 *
 * Threads: loop thread only (as tulip/sync.h); waking tasks of another
 * loop is refused with -EXDEV and a diagnostic.
 */
#ifndef TULIP_QUEUE_H
#define TULIP_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum tl_queue_kind {
    TL_QUEUE_FIFO = 0,
    TL_QUEUE_LIFO = 1,
    TL_QUEUE_PRIORITY = 2,
};

/* Order of a priority queue: < 0 if a leaves before b, > 0 if after, 0 if
 * equal (then the one put first leaves first). */
typedef int (*tl_queue_cmp)(const void *a, const void *b, void *arg);
/* Receives every item the queue itself discards. */
typedef void (*tl_queue_drop)(void *item, void *arg);

typedef struct tl_queue_opts {
    int kind;          /* enum tl_queue_kind */
    size_t maxsize;    /* 0 = unbounded */
    tl_queue_cmp cmp;  /* PRIORITY only; NULL: order by the int64 priority */
    void *cmp_arg;
    tl_queue_drop drop; /* may be NULL */
    void *drop_arg;
} tl_queue_opts;

#define TL__QUEUE_MAGIC 0x746c5131u /* "tlQ1" */

typedef struct tl_queue {
    tl__waitq _getters;  /* tasks in tl_queue_get, FIFO */
    tl__waitq _putters;  /* tasks in tl_queue_put (queue full), FIFO */
    tl__waitq _joiners;  /* tasks in tl_queue_join */
    void *_buf;          /* ring (FIFO), stack (LIFO) or heap (PRIORITY) */
    size_t _cap;         /* slots allocated in _buf */
    size_t _head;        /* FIFO: index of the oldest item */
    size_t _count;       /* items in the queue */
    size_t _maxsize;     /* 0 = unbounded */
    size_t _unfinished;  /* puts not yet matched by task_done */
    uint64_t _seq;       /* PRIORITY: put counter, the tie-break */
    tl_queue_cmp _cmp;
    void *_cmp_arg;
    tl_queue_drop _drop;
    void *_drop_arg;
    uint32_t _magic;
    uint8_t _kind;       /* enum tl_queue_kind */
    uint8_t _shutdown;   /* 0, 1 graceful, 2 immediate */
} tl_queue;

/* asyncio.Queue(maxsize) / LifoQueue / PriorityQueue: an empty queue of
 * `kind` (enum tl_queue_kind) holding at most maxsize items (0 =
 * unbounded). Allocates nothing yet. Returns 0, -EINVAL (NULL, bad kind).
 * Never suspends. Any thread (it only writes *q). */
TL_API int tl_queue_init(tl_queue *q, int kind, size_t maxsize);

/* As tl_queue_init, with a compare function for a priority queue and a
 * drop callback (see tl_queue_opts). -EINVAL also for a cmp on a FIFO or
 * LIFO queue. */
TL_API int tl_queue_init_ex(tl_queue *q, const tl_queue_opts *opts);

/* Retire the queue: items still in it go to `drop` (if set), the buffer is
 * freed. Returns 0; -EBUSY (and a diagnostic) if tasks wait on it (nothing
 * is changed then); -EINVAL not a live queue. Never suspends. */
TL_API int tl_queue_destroy(tl_queue *q);

/* await queue.put(item): add item, waiting (FIFO) while the queue is
 * full. Returns 0 (the queue has it); -ECANCELED (it does not: the item is
 * still the caller's); TL_EQSHUTDOWN (shut down, before or while waiting:
 * the item is still the caller's); -ENOMEM (the buffer could not grow);
 * -EINVAL; TL_ENOTASK; -EXDEV. On a priority queue the item has priority
 * 0. SUSPENDS. */
TL_API TL_NODISCARD int tl_queue_put(tl_queue *q, void *item);

/* As tl_queue_put with an int64 priority (smaller leaves first; used when
 * the queue has no compare function, else only stored). -EINVAL on a FIFO
 * or LIFO queue. SUSPENDS. */
TL_API TL_NODISCARD int tl_queue_put_prio(tl_queue *q, void *item,
                                          int64_t prio);

/* queue.put_nowait(item): add item if there is room now. 0; TL_EFULL;
 * TL_EQSHUTDOWN; -ENOMEM; -EINVAL; -EXDEV. Does not look at
 * cancellation. Never suspends. */
TL_API int tl_queue_try_put(tl_queue *q, void *item);
TL_API int tl_queue_try_put_prio(tl_queue *q, void *item, int64_t prio);

/* await queue.get(): take the next item into *item, waiting (FIFO) while
 * the queue is empty. Returns 0 (*item set, now the caller's);
 * -ECANCELED (nothing taken, *item untouched); TL_EQSHUTDOWN (shut down
 * and empty, or an immediate shutdown while waiting); -EINVAL (also a
 * NULL item); TL_ENOTASK; -EXDEV. SUSPENDS. */
TL_API TL_NODISCARD int tl_queue_get(tl_queue *q, void **item);

/* queue.get_nowait(): take the next item if there is one now. 0;
 * TL_EEMPTY; TL_EQSHUTDOWN (shut down and empty); -EINVAL; -EXDEV. Does
 * not look at cancellation. Never suspends. */
TL_API int tl_queue_try_get(tl_queue *q, void **item);

/* queue.task_done(): one item taken earlier is fully processed. When
 * every item put so far is done, the joiners wake. 0; -EINVAL (and a
 * diagnostic) if called more times than items were put, or a bad queue.
 * Never suspends. */
TL_API int tl_queue_task_done(tl_queue *q);

/* await queue.join(): wait until every item put was marked done (at once
 * if none is pending). 0, -ECANCELED, -EINVAL, TL_ENOTASK, -EXDEV.
 * SUSPENDS. */
TL_API TL_NODISCARD int tl_queue_join(tl_queue *q);

/* queue.shutdown(immediate): see the top of this header. Returns how many
 * items were dropped (0 for a graceful shutdown) or -EINVAL. Shutting
 * down again is allowed (a graceful one may become immediate). Never
 * suspends; the woken tasks run later. */
TL_API int tl_queue_shutdown(tl_queue *q, int immediate);

/* qsize(), empty(), full(), maxsize; items not yet task_done; non-zero
 * once shut down. A bad queue reads as 0. Never suspend. */
TL_API size_t tl_queue_size(const tl_queue *q);
TL_API int tl_queue_empty(const tl_queue *q);
TL_API int tl_queue_full(const tl_queue *q);
TL_API size_t tl_queue_maxsize(const tl_queue *q);
TL_API size_t tl_queue_unfinished(const tl_queue *q);
TL_API int tl_queue_is_shutdown(const tl_queue *q);

#ifdef __cplusplus
}
#endif

#endif /* TULIP_QUEUE_H */
