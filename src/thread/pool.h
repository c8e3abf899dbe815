/* The thread pool's internal interface (src/pool.c), for runtime jobs that
 * must run on a thread: name resolution, file I/O fallbacks. Not installed.
 *
 * A runtime job keeps its buffers in runtime (heap) memory, never on the
 * waiting task's stack, so its waiter may leave at once when cancelled
 * (invariant 1): the job is then the pool's, its late result is dropped and
 * j->release frees it on the loop's thread once the worker is done.
 *
 *     struct dns_job { tl__job job; char host[256]; struct addrinfo *res; int rc; };
 *     static void dns_work(tl__job *j) { ... getaddrinfo ... }
 *     static void dns_release(tl__job *j) { freeaddrinfo(...); free(j); }
 *
 *     struct dns_job *d = calloc(1, sizeof *d);
 *     d->job.work = dns_work;
 *     d->job.release = dns_release;
 *     int rc = tl__pool_submit(l, &d->job);
 *     if (rc == -ECANCELED) return rc;   // d is the pool's now: hands off
 *     if (rc < 0) { dns_release(&d->job); return rc; }  // never submitted
 *     ... use d->res, then dns_release(&d->job) ...
 */
#ifndef TL_POOL_H
#define TL_POOL_H

#include "internal.h"

typedef struct tl__job tl__job;
struct tl__pool_att;

struct tl__job {
    /* Filled by the submitter. */
    void (*work)(tl__job *j);    /* runs on a pool thread, signals blocked */
    void (*release)(tl__job *j); /* frees a job its waiter left behind; runs
                                    on the loop's thread; NULL: free(j) */

    /* Private to src/pool.c. */
    tl__link qlink;              /* pool queue, then the loop's done list */
    struct tl__pool_att *att;    /* the submitting loop's attachment */
    tl__task *waiter;            /* parked task; NULL once it left */
    uint8_t state;               /* queued / running / done: pool lock */
    uint8_t mode;                /* wait / abandon / internal */
    uint8_t cancelled;           /* the waiter was cancelled meanwhile */
};

/* Run j->work(j) on l's thread pool (made on first use) and suspend the
 * running task of l until it returned. The job counts in l->inflight while
 * it is owed, so the virtual clock does not jump meanwhile. SUSPENDS.
 *   0            work returned; j is the caller's again;
 *   -ECANCELED   the caller was cancelled; it returns at once and j now
 *                belongs to the pool: released at once if work never
 *                started, else after work returns (its result dropped).
 *                Never touch j after this result;
 *   -ENOMEM, -EAGAIN  not submitted (no memory, queue full, no thread
 *                could be started); j is still the caller's;
 *   TL_ENOTASK   not called from a task of l.
 * Only the loop's own thread may call it. */
int tl__pool_submit(tl__loop *l, tl__job *j);

/* Cap the queue of pending jobs (tests use a small cap to reach -EAGAIN;
 * the default is TL__POOL_QUEUE_MAX). Thread-safe. */
#define TL__POOL_QUEUE_MAX 65536
void tl__pool_set_queue_max(struct tl_pool *p, size_t max);

/* Loop hooks, called by tl_run (src/loop.c declares them weak). */
void tl__pool_loop_open(tl__loop *l);
void tl__pool_loop_close(tl__loop *l);

#endif
