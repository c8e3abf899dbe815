/* The thread pool: tl_to_thread and the runtime's own blocking jobs.
 *
 * Picture:
 *
 *   loop thread                      pool threads (signals blocked)
 *   -----------                      ------------------------------
 *   submit: queue job, l->inflight++ ---> worker pops it, runs work(job)
 *   task parks                            pushes it on att->done, and if no
 *                                         drain is pending posts one
 *   pool_drain (a tl__loop_post,     <--- (tl__loop_post writes the loop's
 *   run by the loop): inflight--,         eventfd through the backend)
 *   wake the waiter or release an
 *   abandoned job
 *
 * One tl_pool may serve several loops (tl_config.pool); each loop that
 * uses it has an attachment (pool_att) holding the jobs it is owed and its
 * finished jobs not yet seen by the loop. Completions are batched: a
 * worker posts a drain only when none is pending for that loop, so a burst
 * of completions costs one wake-up (DESIGN.md: keep cross-thread wake-ups
 * off the request path, batch them).
 *
 * Locking. One mutex per pool (p->lock) guards the queue, the counters,
 * every attachment and every job's state/qlink/att/cancelled while the
 * job is in the pool. It is a leaf lock: nothing else is locked while it
 * is held. In particular a worker unlocks it before tl__loop_post (which
 * takes the loop's inbox lock), so the two are never nested. Everything
 * published by a worker (fn's writes to arg, the job's result) reaches the
 * loop thread through this mutex: the worker unlocks after pushing the job
 * on att->done, the loop locks before taking it off. A job's `waiter` is
 * touched by the loop thread only.
 *
 * Lifetimes. An attachment lives until tl__pool_loop_close, which first
 * waits until the loop is owed no job and no worker is inside
 * tl__loop_post for it, then runs the queued drains itself. A pool lives
 * until tl_pool_free, which refuses while a loop still uses it (users > 0)
 * — so a worker never posts to a freed loop and never runs in a freed pool.
 *
 * Cancellation (invariant 1), by job mode:
 *   WAIT      tl_to_thread: arg may be on the caller's stack. Queued: the
 *             job is withdrawn, -ECANCELED. Running: the caller keeps
 *             waiting (uncancellable); fn's work then completed, so the
 *             call returns 0 with its result and the cancel shows at the
 *             caller's next suspending call (tulip.h, the rule).
 *   ABANDON   tl_to_thread_ex + TL_THREAD_ABANDON_ON_CANCEL: the caller
 *             leaves at once; the job (queued or running) runs to its end
 *             and is freed by the drain; fn owns arg.
 *   INTERNAL  tl__pool_submit: the caller leaves at once; a queued job is
 *             withdrawn and released, a running one is released by the
 *             drain.
 * In every mode, a job whose work already returned when the cancel came is
 * delivered normally (completed wins, invariant 3).
 */
#include "pool.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { JOB_QUEUED = 1, JOB_RUNNING, JOB_DONE };
enum { MODE_WAIT = 1, MODE_ABANDON, MODE_INTERNAL };

#define POOL_MAX_THREADS 4096

typedef struct tl__pool_att {
    struct tl__pool_att *next; /* p->atts */
    struct tl_pool *pool;      /* immutable */
    tl__loop *loop;            /* immutable */
    tl__link done;             /* finished jobs the loop has not seen */
    size_t owed;               /* submitted, not yet on `done` */
    int post_pending;          /* a drain is posted (or being posted) */
    int posting;               /* workers inside tl__loop_post for it */
    int closing;               /* tl__pool_loop_close waits on p->idle */
} pool_att;

struct tl_pool {
    pthread_mutex_t lock;      /* guards all below (leaf lock) */
    pthread_cond_t work;       /* to workers: a job was queued, or stop */
    pthread_cond_t idle;       /* to closers: an attachment drained */
    tl__link queue;            /* pending jobs, FIFO (qlink) */
    size_t queued, queue_max;
    int max_threads, nthreads, nidle;
    pthread_t *threads;        /* [max_threads]; the first nthreads live */
    int users;                 /* loops using the pool */
    int stopping;              /* tl_pool_free: workers exit when idle */
    int full_reported, start_reported;
    pool_att *atts;
    unsigned fork_gen;         /* tl__fork_gen when made (immutable) */
};

/* A pool inherited across fork(): its threads stayed in the parent and
 * its mutex may be held forever, so the child must not touch either. */
static bool inherited(const tl_pool *p)
{
    return p->fork_gen !=
           atomic_load_explicit(&tl__fork_gen, memory_order_relaxed);
}

/* ---- pool lifetime ------------------------------------------------------ */

static int default_threads(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    return cpus + 4 < 32 ? (int)cpus + 4 : 32;
}

int tl_pool_new(tl_pool **out, int nthreads)
{
    if (!out) return -EINVAL;
    *out = NULL;
    if (nthreads < 0 || nthreads > POOL_MAX_THREADS) return -EINVAL;
    if (nthreads == 0) nthreads = default_threads();
    tl_pool *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->idle, &ca);
    pthread_condattr_destroy(&ca);
    tl__list_init(&p->queue);
    p->queue_max = TL__POOL_QUEUE_MAX;
    p->max_threads = nthreads;
    p->fork_gen = atomic_load_explicit(&tl__fork_gen, memory_order_relaxed);
    *out = p;
    return 0;
}

int tl_pool_free(tl_pool *p)
{
    if (!p) return 0;
    if (inherited(p)) {
        /* Nothing to join here: release the memory, never the mutex. */
        free(p->threads);
        free(p);
        return 0;
    }
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        if (pthread_equal(p->threads[i], pthread_self())) {
            pthread_mutex_unlock(&p->lock);
            tl__diag("tl_pool_free: called from one of the pool's own "
                     "threads (it would wait for itself)");
            return -EDEADLK;
        }
    if (p->users > 0) {
        int users = p->users;
        pthread_mutex_unlock(&p->lock);
        tl__diag("tl_pool_free: %d loop(s) still use this pool; free it "
                 "after their tl_run returned", users);
        return -EBUSY;
    }
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    int n = p->nthreads; /* no user, so no submit can start another */
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < n; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
    return 0;
}

void tl__pool_set_queue_max(tl_pool *p, size_t max)
{
    pthread_mutex_lock(&p->lock);
    p->queue_max = max;
    pthread_mutex_unlock(&p->lock);
}

/* ---- workers ------------------------------------------------------------ */

static void pool_drain(tl__loop *l, void *arg);

/* Tell the loop about finished jobs. tl__loop_post only fails for want of
 * memory; a completion must never be lost (its waiter would hang), so keep
 * trying, and say so once. */
static void post_drain(pool_att *a)
{
    int warned = 0;
    while (tl__loop_post(a->loop, pool_drain, a) < 0) {
        if (!warned) {
            tl__diag("thread pool: out of memory posting a completion to "
                     "loop #%u; retrying", (unsigned)a->loop->id);
            warned = 1;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

static void *worker_main(void *arg)
{
    tl_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (tl__list_empty(&p->queue) && !p->stopping) {
            p->nidle++;
            pthread_cond_wait(&p->work, &p->lock);
            p->nidle--;
        }
        if (tl__list_empty(&p->queue)) break; /* stopping and idle */
        tl__job *j = tl__container_of(tl__list_pop(&p->queue), tl__job,
                                      qlink);
        p->queued--;
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&p->lock);

        j->work(j);

        pthread_mutex_lock(&p->lock);
        pool_att *a = j->att;
        j->state = JOB_DONE;
        tl__list_push(&a->done, &j->qlink);
        a->owed--;
        /* From here the loop may free j at any time: only `a` is used. */
        if (!a->post_pending) {
            a->post_pending = 1;
            a->posting++;
            pthread_mutex_unlock(&p->lock);
            post_drain(a);
            pthread_mutex_lock(&p->lock);
            a->posting--;
        }
        if (a->closing && a->owed == 0 && a->posting == 0)
            pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Start one more worker. Called with p->lock held. The thread inherits a
 * mask with every signal blocked: a pool thread must never run a signal
 * handler meant for the loop (DESIGN.md "Process-wide state"). */
static int start_worker(tl_pool *p)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&p->threads[p->nthreads], NULL, worker_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) return -e;
    p->nthreads++;
    return 0;
}

/* ---- the loop side ------------------------------------------------------ */

static pool_att *find_att(tl_pool *p, const tl__loop *l)
{
    for (pool_att *a = p->atts; a; a = a->next)
        if (a->loop == l) return a;
    return NULL;
}

/* The loop's pool: the shared one, or its own, made now. */
static int loop_pool(tl__loop *l, tl_pool **out)
{
    if (!l->pool) {
        tl_pool *p;
        int rc = tl_pool_new(&p, 0);
        if (rc < 0) return rc;
        p->users = 1; /* not yet visible to any other thread */
        l->pool = p;
        l->own_pool = 1;
    }
    *out = l->pool;
    return 0;
}

/* Queue j for l. On success l owes one more completion (inflight). */
static int submit(tl__loop *l, tl__job *j, int mode)
{
    tl_pool *p;
    int rc = loop_pool(l, &p);
    if (rc < 0) return rc;
    if (inherited(p)) {
        tl__diag("thread pool inherited across fork(): its threads stayed "
                 "in the parent; make a new pool in the child");
        return TL_EFORK;
    }
    pthread_mutex_lock(&p->lock);
    pool_att *a = find_att(p, l);
    if (!a) {
        a = calloc(1, sizeof *a);
        if (!a) {
            pthread_mutex_unlock(&p->lock);
            return -ENOMEM;
        }
        a->pool = p;
        a->loop = l;
        tl__list_init(&a->done);
        a->next = p->atts;
        p->atts = a;
    }
    if (p->queued >= p->queue_max) {
        int say = !p->full_reported;
        size_t n = p->queued;
        p->full_reported = 1;
        pthread_mutex_unlock(&p->lock);
        if (say)
            tl__diag("thread pool: %zu jobs already wait for a thread; "
                     "refusing more (-EAGAIN)", n);
        return -EAGAIN;
    }
    /* Lazily start a thread when the idle ones are all spoken for. */
    if ((size_t)p->nidle <= p->queued && p->nthreads < p->max_threads) {
        rc = start_worker(p);
        if (rc < 0) {
            int n = p->nthreads, say = !p->start_reported;
            p->start_reported = 1;
            if (n == 0) {
                pthread_mutex_unlock(&p->lock);
                tl__diag("thread pool: cannot start a thread (%s); the job "
                         "was not run", tl_strerror(rc));
                return -EAGAIN;
            }
            if (say)
                tl__diag("thread pool: cannot start another thread (%s); "
                         "going on with %d", tl_strerror(rc), n);
        }
    }
    j->att = a;
    j->mode = (uint8_t)mode;
    j->cancelled = 0;
    j->state = JOB_QUEUED;
    tl__list_push(&p->queue, &j->qlink);
    p->queued++;
    a->owed++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    l->inflight++;
    return 0;
}

static void release(tl__job *j)
{
    if (j->release)
        j->release(j);
    else
        free(j);
}

/* Run on the loop thread (a tl__loop_post): hand every finished job to its
 * waiter, or release the ones their waiters left behind. */
static void pool_drain(tl__loop *l, void *arg)
{
    pool_att *a = arg;
    tl_pool *p = a->pool;
    tl__link done;
    tl__list_init(&done);
    pthread_mutex_lock(&p->lock);
    if (!tl__list_empty(&a->done)) {
        /* Move the whole list under the lock; walk it outside. */
        done.next = a->done.next;
        done.prev = a->done.prev;
        done.next->prev = &done;
        done.prev->next = &done;
        tl__list_init(&a->done);
    }
    a->post_pending = 0;
    pthread_mutex_unlock(&p->lock);
    tl__link *n;
    while ((n = tl__list_pop(&done))) {
        tl__job *j = tl__container_of(n, tl__job, qlink);
        l->inflight--;
        tl__task *w = j->waiter;
        if (w) {
            j->waiter = NULL;
            /* The waiter may free j (its stack frame) once it runs. The
             * work completed: 0, even if the waiter was cancelled while
             * it ran (then it stayed parked for it). */
            tl__wake(w, 0);
        } else {
            release(j);
        }
    }
}

/* The waiter's cancel hook (see the modes at the top). */
static void job_cancel(tl__task *t)
{
    tl__job *j = t->wait_data;
    tl__loop *l = t->loop;
    tl_pool *p = j->att->pool;
    pthread_mutex_lock(&p->lock);
    int state = j->state;
    if (state == JOB_QUEUED && j->mode != MODE_ABANDON) {
        tl__list_remove(&j->qlink);
        p->queued--;
        j->att->owed--;
        pthread_mutex_unlock(&p->lock);
        l->inflight--;
        j->waiter = NULL;
        if (j->mode == MODE_INTERNAL) release(j);
        tl__wake(t, -ECANCELED);
        return;
    }
    if (state == JOB_RUNNING && j->mode == MODE_WAIT) j->cancelled = 1;
    pthread_mutex_unlock(&p->lock);
    if (state == JOB_DONE) {
        /* Completed wins: the drain is on its way and wakes us with 0. */
        return;
    }
    if (j->mode == MODE_WAIT) {
        /* Invariant 1: fn may be writing the caller's stack. Stay parked
         * (the hook is now cleared, so the wait ignores cancellation). */
        t->wait_what = "tl_to_thread (cancelled; waiting for the worker)";
        return;
    }
    j->waiter = NULL; /* abandoned: the drain releases it */
    tl__wake(t, -ECANCELED);
}

/* The task dump's detail for a task waiting for its job. The state is
 * the pool lock's, read without it: a stale word in a dump is harmless. */
static void job_describe(const tl__task *t, char *buf, size_t len)
{
    const tl__job *j = t->wait_data;
    int state = j ? __atomic_load_n(&j->state, __ATOMIC_RELAXED) : 0;
    snprintf(buf, len, "thread-pool job %s", state == JOB_QUEUED
             ? "queued (no worker free yet)" : state == JOB_RUNNING
             ? "running on a worker thread" : "done, result on its way");
}

static int run_job(tl__task *self, tl__job *j, int mode, const char *what)
{
    j->waiter = NULL;
    int rc = submit(self->loop, j, mode);
    if (rc < 0) return rc;
    if (tl__scope_expire(self)) {
        /* Only an abandoning caller gets here cancelled (the others
         * checkpoint first): the job runs without a waiter, whether or
         * not a worker already finished it meanwhile. */
        return tl__checkpoint(self, what, __builtin_return_address(0));
    }
    j->waiter = self;
    self->wait_data = j;
    self->wait_describe = job_describe;
    rc = tl__park(self, job_cancel, what);
    self->wait_data = NULL;
    return rc;
}

int tl__pool_submit(tl__loop *l, tl__job *j)
{
    tl__task *self = tl__task_self("tl__pool_submit");
    if (!self || self->loop != l) return TL_ENOTASK;
    if (tl__scope_expire(self)) {
        /* -ECANCELED always means "the pool owns j" (see pool.h). */
        release(j);
        return tl__checkpoint(self, "tl__pool_submit",
                              __builtin_return_address(0));
    }
    return run_job(self, j, MODE_INTERNAL, "thread pool job");
}

/* ---- tl_to_thread ------------------------------------------------------- */

typedef struct thread_job {
    tl__job job;
    tl_fn fn;
    void *arg;
    int result; /* written by the worker, read after the drain */
} thread_job;

static void thread_work(tl__job *j)
{
    thread_job *tj = tl__container_of(j, thread_job, job);
    tj->result = tj->fn(tj->arg);
}

int tl_to_thread_ex(tl_fn fn, void *arg, int *result, unsigned flags)
{
    tl__task *self = tl__task_self("tl_to_thread");
    if (!self) return tl__not_task_error();
    if (!fn || (flags & ~TL_THREAD_ABANDON_ON_CANCEL)) return -EINVAL;

    if (!(flags & TL_THREAD_ABANDON_ON_CANCEL)) {
        int rc = tl__checkpoint(self, "tl_to_thread",
                                __builtin_return_address(0));
        if (rc < 0) return rc;
        /* The job lives in this frame: the call never returns while the
         * pool holds it. */
        thread_job tj = {.job = {.work = thread_work}, .fn = fn, .arg = arg};
        rc = run_job(self, &tj.job, MODE_WAIT, "tl_to_thread");
        if (rc == 0 && result) *result = tj.result;
        return rc;
    }

    /* Abandonable: the job must outlive this frame. */
    thread_job *tj = calloc(1, sizeof *tj);
    if (!tj) return -ENOMEM;
    tj->job.work = thread_work;
    tj->fn = fn;
    tj->arg = arg;
    int rc = run_job(self, &tj->job, MODE_ABANDON, "tl_to_thread");
    if (rc == 0) {
        if (result) *result = tj->result;
        free(tj);
    } else if (rc != -ECANCELED) {
        free(tj); /* never queued */
    }
    /* -ECANCELED: the job is the pool's; pool_drain frees it. */
    return rc;
}

int tl_to_thread(tl_fn fn, void *arg, int *result)
{
    return tl_to_thread_ex(fn, arg, result, 0);
}

/* ---- loop hooks --------------------------------------------------------- */

void tl__pool_loop_open(tl__loop *l)
{
    tl_pool *p = l->pool; /* tl_config.pool, or NULL: made lazily */
    if (!p || inherited(p)) return;
    pthread_mutex_lock(&p->lock);
    p->users++;
    pthread_mutex_unlock(&p->lock);
}

/* tl_run is done with every task: wait for the jobs this loop is still
 * owed (abandoned by cancelled tasks), deliver them, detach, and free the
 * loop's own pool. */
void tl__pool_loop_close(tl__loop *l)
{
    tl_pool *p = l->pool;
    if (!p || inherited(p)) {
        l->pool = NULL;
        return;
    }
    pthread_mutex_lock(&p->lock);
    pool_att *a = find_att(p, l);
    if (a) {
        a->closing = 1;
        int64_t start = tl__clock_ns();
        int named = 0;
        while (a->owed > 0 || a->posting > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&p->idle, &p->lock, &ts);
            if (!named && (a->owed > 0 || a->posting > 0) &&
                tl__clock_ns() - start > 5 * (int64_t)1000000000) {
                named = 1;
                size_t owed = a->owed;
                pthread_mutex_unlock(&p->lock);
                tl__diag("tl_run: loop #%u still waits for %zu thread-pool "
                         "job(s) that cancelled tasks left behind "
                         "(tl_to_thread_ex with TL_THREAD_ABANDON_ON_CANCEL,"
                         " or runtime jobs) 5 s into teardown",
                         (unsigned)l->id, owed);
                pthread_mutex_lock(&p->lock);
            }
        }
        for (pool_att **pp = &p->atts; *pp; pp = &(*pp)->next)
            if (*pp == a) {
                *pp = a->next;
                break;
            }
    }
    p->users--;
    pthread_mutex_unlock(&p->lock);
    /* Run the drains still queued for this loop (and any other post). */
    tl__loop_drain_inbox(l);
    free(a);
    if (l->own_pool) (void)tl_pool_free(p);
    l->pool = NULL;
    l->own_pool = 0;
}
