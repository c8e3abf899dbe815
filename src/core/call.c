/* Cross-thread calls: tl_loop_ref / tl_loop_call / tl_loop_unref.
 *
 * A tl_loop is a small reference-counted handle that outlives its loop: it
 * holds a pointer to the live tl__loop, cleared (under the handle's mutex)
 * by tl_run before the loop is freed. tl_loop_call posts into the loop's
 * inbox while holding that mutex, so it can never post into freed memory.
 *
 * Lock order: handle->lock, then loop->inbox_lock (inside tl__loop_post).
 */
#include "internal.h"

#include <stdlib.h>

struct tl_loop {
    pthread_mutex_t lock;
    _Atomic unsigned refs; /* acq_rel decrement: the last one frees */
    tl__loop *live;        /* guarded by lock; NULL once the loop ended */
    unsigned fork_gen;     /* tl__fork_gen when made (immutable) */
};

typedef struct call_job {
    tl_fn fn;
    void *arg;
} call_job;

tl_loop *tl_loop_ref(void)
{
    tl__task *self = tl__task_self("tl_loop_ref");
    if (!self) return NULL;
    tl__loop *l = self->loop;
    if (!l->handle) {
        tl_loop *h = calloc(1, sizeof *h);
        if (!h) return NULL;
        pthread_mutex_init(&h->lock, NULL);
        atomic_init(&h->refs, 1); /* the loop's own reference */
        h->live = l;
        h->fork_gen = l->fork_gen;
        l->handle = h;
    }
    atomic_fetch_add_explicit(&l->handle->refs, 1, memory_order_relaxed);
    return l->handle;
}

void tl_loop_unref(tl_loop *h)
{
    if (!h) return;
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&h->lock);
        free(h);
    }
}

/* On the loop's thread, in the scheduler: make the task. Also during
 * teardown (the handle closed first, so every call accepted before that is
 * in the inbox, and teardown drains it before it checks for live tasks):
 * an accepted call must run, and tl__task_alloc makes it start cancelled
 * then, so its cleanup runs and frees what the poster handed over. */
static void call_run(tl__loop *l, void *arg)
{
    call_job *job = arg;
    atomic_fetch_sub_explicit(&l->calls_queued, 1, memory_order_relaxed);
    tl__task *t = tl__task_alloc(l, job->fn, job->arg,
                                 &(tl_spawn_opts){.name = "call"});
    if (!t) {
        tl__diag("tl_loop_call: out of memory for the task of call %p(%p); "
                 "that accepted call did not run", (void *)job->fn,
                 job->arg);
    } else {
        t->detached = 1;
        tl__task_enqueue(l, t);
    }
    free(job);
}

int tl_loop_call(tl_loop *h, tl_fn fn, void *arg)
{
    if (!h || !fn) return -EINVAL;
    /* A handle inherited across fork(): its loop (and the eventfd a post
     * writes) is the parent's, and its lock may have been held by one of
     * the parent's threads at the fork. Touch neither. */
    if (h->fork_gen != atomic_load_explicit(&tl__fork_gen,
                                            memory_order_relaxed))
        return TL_EFORK;
    call_job *job = malloc(sizeof *job);
    if (!job) return -ENOMEM;
    job->fn = fn;
    job->arg = arg;
    int rc = -ESHUTDOWN;
    pthread_mutex_lock(&h->lock);
    tl__loop *l = h->live;
    if (l) {
        /* Posters check and count under h->lock, one at a time; the loop
         * only ever lowers the count meanwhile, so the bound holds.
         * Relaxed: the count guards memory, not the data of a call (the
         * inbox mutex publishes that). */
        if (atomic_load_explicit(&l->calls_queued, memory_order_relaxed) >=
            l->call_cap) {
            rc = -EAGAIN;
        } else {
            atomic_fetch_add_explicit(&l->calls_queued, 1,
                                      memory_order_relaxed);
            rc = tl__loop_post(l, call_run, job);
            if (rc < 0)
                atomic_fetch_sub_explicit(&l->calls_queued, 1,
                                          memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (rc < 0) free(job);
    return rc;
}

/* main returned: calls from now on fail with -ESHUTDOWN. Every call
 * accepted before is in the inbox once this returns (posts happen under
 * h->lock), and teardown runs them. */
void tl__loop_handle_close(tl__loop *l)
{
    tl_loop *h = l->handle;
    if (!h) return;
    pthread_mutex_lock(&h->lock);
    h->live = NULL;
    pthread_mutex_unlock(&h->lock);
    l->handle = NULL;
    tl_loop_unref(h);
}
