/* Queues: FIFO, LIFO and priority (asyncio's queues.py), with direct
 * handoff between waiters and tulip's cancellation rules.
 *
 * Invariants (they are what make "nothing lost, no barging" hold):
 *
 *   getters waiting  implies  the queue is empty   (a put hands its item
 *                                                   to the first getter)
 *   putters waiting  implies  the queue is full    (a get takes the first
 *                                                   putter's item in)
 *
 * An item is in exactly one place at any time: the caller's hands, the
 * buffer, a waiting putter's frame (struct qwait) or a woken getter's
 * frame. A waiter is unlinked before it is woken, so its cancel hook can
 * only run while it still owns nothing (see src/waitq.h).
 *
 * Buffer: FIFO is a ring of pointers, LIFO a stack of pointers, PRIORITY a
 * binary min-heap of {item, prio, seq}; seq makes equal priorities leave
 * in put order. It grows by doubling up to maxsize; a bounded queue never
 * needs to grow while putters wait (it is full then, so cap >= maxsize).
 */
#include "waitq.h"

#include <stdlib.h>
#include <string.h>

/* What a waiting putter offers, or what a waiting getter receives. Lives
 * on the waiter's stack; tl__task.wait_data points to it. */
struct qwait {
    void *item;
    int64_t prio;
};

struct pent {
    void *item;
    int64_t prio;
    uint64_t seq;
};

#define CHECKQ(q, what)                                                     \
    do {                                                                    \
        if (!(q) || (q)->_magic != TL__QUEUE_MAGIC) return badq(what, q);   \
    } while (0)

static int badq(const char *what, const void *q)
{
    tl__diag("%s: %p is not a live tl_queue (never initialised, destroyed, "
             "or another kind of object)", what, q);
    return -EINVAL;
}

static bool live(const tl_queue *q)
{
    return q && q->_magic == TL__QUEUE_MAGIC;
}

/* ---- the buffer --------------------------------------------------------- */

static size_t slot_size(const tl_queue *q)
{
    return q->_kind == TL_QUEUE_PRIORITY ? sizeof(struct pent)
                                         : sizeof(void *);
}

/* Make room for one more item. 0 or -ENOMEM. */
static int q_reserve(tl_queue *q)
{
    if (q->_count < q->_cap) return 0;
    size_t cap = q->_cap ? q->_cap * 2 : 8;
    if (q->_maxsize && cap > q->_maxsize) cap = q->_maxsize;
    if (cap <= q->_cap || cap > SIZE_MAX / slot_size(q)) return -ENOMEM;
    void *buf = realloc(q->_buf, cap * slot_size(q));
    if (!buf) return -ENOMEM;
    if (q->_kind == TL_QUEUE_FIFO && q->_head + q->_count > q->_cap) {
        /* The ring wraps: move its older part [head, old cap) to the end
         * of the new buffer, so the items stay contiguous modulo cap. */
        void **r = buf;
        size_t older = q->_cap - q->_head;
        memmove(r + cap - older, r + q->_head, older * sizeof *r);
        q->_head = cap - older;
    }
    q->_buf = buf;
    q->_cap = cap;
    return 0;
}

static bool pent_less(const tl_queue *q, const struct pent *a,
                      const struct pent *b)
{
    if (q->_cmp) {
        int c = q->_cmp(a->item, b->item, q->_cmp_arg);
        if (c != 0) return c < 0;
    } else if (a->prio != b->prio) {
        return a->prio < b->prio;
    }
    return a->seq < b->seq;
}

/* Add an item; the caller made room (q_reserve). */
static void q_push(tl_queue *q, void *item, int64_t prio)
{
    if (q->_kind == TL_QUEUE_FIFO) {
        void **r = q->_buf;
        r[(q->_head + q->_count) % q->_cap] = item;
    } else if (q->_kind == TL_QUEUE_LIFO) {
        ((void **)q->_buf)[q->_count] = item;
    } else {
        struct pent *h = q->_buf;
        struct pent e = {item, prio, q->_seq++};
        size_t i = q->_count;
        while (i > 0) { /* sift up */
            size_t p = (i - 1) / 2;
            if (!pent_less(q, &e, &h[p])) break;
            h[i] = h[p];
            i = p;
        }
        h[i] = e;
    }
    q->_count++;
}

/* Remove the next item; the queue is not empty. */
static void *q_pop(tl_queue *q)
{
    void *item;
    q->_count--;
    if (q->_kind == TL_QUEUE_FIFO) {
        void **r = q->_buf;
        item = r[q->_head];
        q->_head = (q->_head + 1) % q->_cap;
    } else if (q->_kind == TL_QUEUE_LIFO) {
        item = ((void **)q->_buf)[q->_count];
    } else {
        struct pent *h = q->_buf;
        item = h[0].item;
        struct pent last = h[q->_count];
        size_t i = 0, n = q->_count;
        for (;;) { /* sift down */
            size_t c = 2 * i + 1;
            if (c >= n) break;
            if (c + 1 < n && pent_less(q, &h[c + 1], &h[c])) c++;
            if (!pent_less(q, &h[c], &last)) break;
            h[i] = h[c];
            i = c;
        }
        if (n > 0) h[i] = last;
    }
    if (q->_count == 0) q->_head = 0;
    return item;
}

static bool q_full(const tl_queue *q)
{
    return q->_maxsize && q->_count >= q->_maxsize;
}

/* ---- wait lists --------------------------------------------------------- */

static int check_loops(const tl_queue *q, const char *what)
{
    int rc = tl__waitq_check_loop(&q->_getters, what);
    if (rc == 0) rc = tl__waitq_check_loop(&q->_putters, what);
    if (rc == 0) rc = tl__waitq_check_loop(&q->_joiners, what);
    return rc;
}

static void wake_all(tl__waitq *wq, int result)
{
    tl__task *w;
    while ((w = tl__waitq_pop(wq))) tl__wake(w, result);
}

/* A get made room: take the first waiting putter's item in (FIFO, no
 * barging: a later try_put finds the queue full again). */
static void admit_putter(tl_queue *q)
{
    if (q_full(q)) return;
    tl__task *p = tl__waitq_pop(&q->_putters);
    if (!p) return;
    struct qwait *w = p->wait_data;
    /* Cannot fail: the queue was full (cap >= maxsize) and lost an item. */
    (void)q_reserve(q);
    q_push(q, w->item, w->prio);
    q->_unfinished++;
    tl__wake(p, 0);
}

/* ---- lifetime ----------------------------------------------------------- */

int tl_queue_init_ex(tl_queue *q, const tl_queue_opts *o)
{
    if (!q || !o) return -EINVAL;
    if (o->kind != TL_QUEUE_FIFO && o->kind != TL_QUEUE_LIFO &&
        o->kind != TL_QUEUE_PRIORITY)
        return -EINVAL;
    if (o->cmp && o->kind != TL_QUEUE_PRIORITY) return -EINVAL;
    *q = (tl_queue){0};
    tl__waitq_head(&q->_getters);
    tl__waitq_head(&q->_putters);
    tl__waitq_head(&q->_joiners);
    q->_maxsize = o->maxsize;
    q->_cmp = o->cmp;
    q->_cmp_arg = o->cmp_arg;
    q->_drop = o->drop;
    q->_drop_arg = o->drop_arg;
    q->_kind = (uint8_t)o->kind;
    q->_magic = TL__QUEUE_MAGIC;
    return 0;
}

int tl_queue_init(tl_queue *q, int kind, size_t maxsize)
{
    return tl_queue_init_ex(q, &(tl_queue_opts){.kind = kind,
                                                .maxsize = maxsize});
}

int tl_queue_destroy(tl_queue *q)
{
    CHECKQ(q, "tl_queue_destroy");
    if (!tl__waitq_empty(&q->_getters) || !tl__waitq_empty(&q->_putters) ||
        !tl__waitq_empty(&q->_joiners)) {
        tl__diag("tl_queue_destroy: tasks still wait on queue %p (in get, "
                 "put or join); shut it down (tl_queue_shutdown) and let "
                 "them leave before destroying it", (void *)q);
        return -EBUSY;
    }
    while (q->_count > 0) {
        void *item = q_pop(q);
        if (q->_drop) q->_drop(item, q->_drop_arg);
    }
    free(q->_buf);
    q->_buf = NULL;
    q->_cap = 0;
    q->_magic = 0;
    return 0;
}

/* ---- put ---------------------------------------------------------------- */

static int put_common(tl_queue *q, void *item, int64_t prio, int has_prio,
                      int wait, const char *what, void *site)
{
    tl__task *self = NULL;
    if (wait) {
        self = tl__task_self(what);
        if (!self) return tl__not_task_error();
    }
    CHECKQ(q, what);
    if (has_prio && q->_kind != TL_QUEUE_PRIORITY) {
        tl__diag("%s: a priority is only meaningful on a TL_QUEUE_PRIORITY "
                 "queue", what);
        return -EINVAL;
    }
    if (wait) {
        int rc = tl__checkpoint(self, what, site);
        if (rc < 0) return rc;
    }
    if (q->_shutdown) return TL_EQSHUTDOWN;
    int rc = check_loops(q, what);
    if (rc < 0) return rc;
    tl__task *g = tl__waitq_pop(&q->_getters);
    if (g) { /* the queue is empty: hand the item over */
        struct qwait *w = g->wait_data;
        w->item = item;
        w->prio = prio;
        q->_unfinished++;
        tl__wake(g, 0);
        return 0;
    }
    if (!q_full(q)) {
        rc = q_reserve(q);
        if (rc < 0) return rc;
        q_push(q, item, prio);
        q->_unfinished++;
        return 0;
    }
    if (!wait) return TL_EFULL;
    /* Woken with 0 by a get: the item is in the queue (and counted). */
    struct qwait w = {item, prio};
    return tl__waitq_park(&q->_putters, self, &w, tl__waitq_cancel, what);
}

int tl_queue_put(tl_queue *q, void *item)
{
    return put_common(q, item, 0, 0, 1, "tl_queue_put",
                      __builtin_return_address(0));
}

int tl_queue_put_prio(tl_queue *q, void *item, int64_t prio)
{
    return put_common(q, item, prio, 1, 1, "tl_queue_put_prio",
                      __builtin_return_address(0));
}

int tl_queue_try_put(tl_queue *q, void *item)
{
    return put_common(q, item, 0, 0, 0, "tl_queue_try_put", NULL);
}

int tl_queue_try_put_prio(tl_queue *q, void *item, int64_t prio)
{
    return put_common(q, item, prio, 1, 0, "tl_queue_try_put_prio", NULL);
}

/* ---- get ---------------------------------------------------------------- */

static int get_common(tl_queue *q, void **out, int wait, const char *what,
                      void *site)
{
    tl__task *self = NULL;
    if (wait) {
        self = tl__task_self(what);
        if (!self) return tl__not_task_error();
    }
    CHECKQ(q, what);
    if (!out) return -EINVAL;
    if (wait) {
        int rc = tl__checkpoint(self, what, site);
        if (rc < 0) return rc;
    }
    int rc = check_loops(q, what);
    if (rc < 0) return rc;
    if (q->_count > 0) {
        *out = q_pop(q);
        admit_putter(q);
        return 0;
    }
    if (q->_shutdown) return TL_EQSHUTDOWN;
    if (!wait) return TL_EEMPTY;
    /* Woken with 0 by a put: w.item is ours. */
    struct qwait w = {NULL, 0};
    rc = tl__waitq_park(&q->_getters, self, &w, tl__waitq_cancel, what);
    if (rc == 0) *out = w.item;
    return rc;
}

int tl_queue_get(tl_queue *q, void **item)
{
    return get_common(q, item, 1, "tl_queue_get",
                      __builtin_return_address(0));
}

int tl_queue_try_get(tl_queue *q, void **item)
{
    return get_common(q, item, 0, "tl_queue_try_get", NULL);
}

/* ---- task_done / join --------------------------------------------------- */

int tl_queue_task_done(tl_queue *q)
{
    CHECKQ(q, "tl_queue_task_done");
    if (q->_unfinished == 0) {
        tl__diag("tl_queue_task_done: called more times than items were put "
                 "in queue %p", (void *)q);
        return -EINVAL;
    }
    int rc = check_loops(q, "tl_queue_task_done");
    if (rc < 0) return rc;
    if (--q->_unfinished == 0) wake_all(&q->_joiners, 0);
    return 0;
}

int tl_queue_join(tl_queue *q)
{
    tl__task *self = tl__task_self("tl_queue_join");
    if (!self) return tl__not_task_error();
    CHECKQ(q, "tl_queue_join");
    int rc = tl__checkpoint(self, "tl_queue_join",
                            __builtin_return_address(0));
    if (rc < 0) return rc;
    if (q->_unfinished == 0) return 0;
    rc = check_loops(q, "tl_queue_join");
    if (rc < 0) return rc;
    return tl__waitq_park(&q->_joiners, self, q, tl__waitq_cancel,
                          "tl_queue_join");
}

/* ---- shutdown ----------------------------------------------------------- */

int tl_queue_shutdown(tl_queue *q, int immediate)
{
    CHECKQ(q, "tl_queue_shutdown");
    int rc = check_loops(q, "tl_queue_shutdown");
    if (rc < 0) return rc;
    if (q->_shutdown < (immediate ? 2 : 1)) q->_shutdown = immediate ? 2 : 1;
    int dropped = 0;
    if (immediate) {
        while (q->_count > 0) {
            void *item = q_pop(q);
            if (q->_drop) q->_drop(item, q->_drop_arg);
            if (q->_unfinished > 0) q->_unfinished--;
            dropped++;
        }
        if (q->_unfinished == 0) wake_all(&q->_joiners, 0);
    }
    /* Getters wait only on an empty queue, putters only on a full one:
     * after a shutdown neither can ever be satisfied. */
    wake_all(&q->_getters, TL_EQSHUTDOWN);
    wake_all(&q->_putters, TL_EQSHUTDOWN);
    return dropped;
}

/* ---- observers ---------------------------------------------------------- */

size_t tl_queue_size(const tl_queue *q) { return live(q) ? q->_count : 0; }
int tl_queue_empty(const tl_queue *q) { return !live(q) || q->_count == 0; }
int tl_queue_full(const tl_queue *q) { return live(q) && q_full(q); }
size_t tl_queue_maxsize(const tl_queue *q)
{
    return live(q) ? q->_maxsize : 0;
}
size_t tl_queue_unfinished(const tl_queue *q)
{
    return live(q) ? q->_unfinished : 0;
}
int tl_queue_is_shutdown(const tl_queue *q)
{
    return live(q) && q->_shutdown != 0;
}
