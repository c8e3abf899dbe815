/* Async generators: a producer task and a consumer that pass the CPU
 * straight to each other with tl__handoff (src/task.c), which falls back
 * to the run queue after TL__HANDOFF_CAP direct switches per loop
 * iteration (invariant 9).
 *
 * The protocol, with `g->consumer` the task inside tl_gen_next (set for
 * the whole call) — the producer runs only while it is set:
 *
 *   consumer: tl_gen_next                 producer task (gen_main)
 *   --------------------                  ------------------------
 *                                         parks until the first request
 *   consumer = self; handoff(producer, 0) --> runs fn ... tl_gen_yield(v):
 *                                         value = v; handoff(consumer, 0)
 *   <-- wakes with 0: *value = g->value;  parked in tl_gen_yield
 *   consumer = NULL; return 0
 *   ...
 *   handoff(producer, 0)                  --> tl_gen_yield returns 0 ...
 *                                         fn returns rc: done, result = rc,
 *   <-- wakes with GEN_DONE               wake(consumer, GEN_DONE)
 *
 * Cancellation:
 *   - consumer cancelled inside tl_gen_next: its cancel hook cancels the
 *     producer and leaves the consumer parked (uncancellable now) until
 *     the producer has finished its cleanup; next then returns what the
 *     producer ended with (tulip.h's rule: -ECANCELED if it unwound from
 *     the cancel, its real error if it failed, TL_EGENDONE if it simply
 *     returned; the consumer's cancel shows at its next call).
 *     The producer's memory may be the consumer's (invariant 1), and this
 *     is what Python does: the CancelledError goes through the generator
 *     before it reaches the consumer.
 *   - tl_gen_close: cancels the producer (wherever it is parked: in
 *     tl_gen_yield, or in anything it awaits) and joins it.
 *   - a producer that yields after either of those gets -ECANCELED, even
 *     inside a shield: nobody will take the value.
 * The producer task is spawned by tl_gen_new (has_joiner: only
 * tl_gen_close joins it) and parks at once in gen_main, so even a
 * generator closed before its first value runs its body, which meets
 * -ECANCELED at its first suspending call (invariant 5).
 */
#include "internal.h"

#include <stdlib.h>

/* Wake results of the consumer besides 0 (a value) and -ECANCELED. */
#define GEN_DONE 1

struct tl_gen {
    tl__loop *loop;
    tl__link open_link;   /* in loop->gens until tl_gen_close frees it */
    char maker[48];       /* label of the task that made it (reports) */
    tl__task *producer;   /* slot kept until tl_gen_close joins it */
    tl_gen_fn fn;
    void *arg;
    tl__task *consumer;   /* inside tl_gen_next, NULL otherwise */
    void *value;          /* the value being handed over */
    int result;           /* the producer's return value, once done */
    uint8_t done;         /* the producer's fn returned */
    uint8_t reported;     /* its failure was returned by tl_gen_next */
    uint8_t forwarded;    /* the consumer was cancelled inside next */
    uint8_t closing;      /* tl_gen_close began */
    uint8_t parked;       /* the producer waits for a request (in
                             tl_gen_yield or before its first run): only
                             then may next hand the CPU to it */
};

/* ---- the producer's task ------------------------------------------------ */

static void wake_cancelled(tl__task *t) { tl__wake(t, -ECANCELED); }

static int gen_main(void *arg)
{
    tl_gen *g = arg;
    tl__task *self = g->producer;
    /* Python's async generator runs nothing before the first anext(). A
     * cancel (close before any next) ends this wait too: the body then
     * runs and meets -ECANCELED at its first suspending call. */
    if (!g->consumer && !g->closing) {
        g->parked = 1;
        (void)tl__park(self, wake_cancelled, "tl_gen (waiting for the "
                                             "first tl_gen_next)");
        g->parked = 0;
    }
    int rc = g->fn(g, g->arg);
    g->done = 1;
    g->result = rc;
    tl__task *c = g->consumer;
    if (c) tl__wake(c, GEN_DONE);
    return rc;
}

int tl_gen_yield(tl_gen *g, void *value)
{
    tl__task *self = tl__task_self("tl_gen_yield");
    if (!self) return tl__not_task_error();
    if (!g || g->producer != self) {
        char label[48];
        tl__diag("tl_gen_yield: task %s is not this generator's producer "
                 "(only the producer function may yield)",
                 tl__task_label(self, label, sizeof label));
        return -EPERM;
    }
    int rc = tl__checkpoint(self, "tl_gen_yield",
                            __builtin_return_address(0));
    if (rc < 0) return rc;
    if (!g->consumer || g->forwarded || g->closing) {
        /* Closed or abandoned (a shield hid the cancel): nobody takes the
         * value. Yield once, as every -ECANCELED return does. */
        tl__yield_now(self);
        return -ECANCELED;
    }
    g->value = value;
    /* Give the CPU straight to the consumer (parked in tl_gen_next); come
     * back when it asks for the next value (0) or when we are cancelled
     * (-ECANCELED). */
    g->parked = 1;
    rc = tl__handoff(self, wake_cancelled, "tl_gen_yield", g->consumer, 0);
    g->parked = 0;
    return rc;
}

/* ---- the consumer's side ------------------------------------------------ */

static tl__task *gen_self(const tl_gen *g, const char *what, int *err)
{
    tl__task *self = tl__task_self_in(g ? g->loop : NULL, "generator", what,
                                      err);
    if (!self) return NULL;
    if (!g) {
        *err = -EINVAL;
        return NULL;
    }
    if (self == g->producer) {
        tl__diag("%s: called by the generator's own producer (it would "
                 "wait for itself)", what);
        *err = -EDEADLK;
        return NULL;
    }
    if (g->consumer) {
        char label[48];
        tl__diag("%s: task %s is inside tl_gen_next on this generator",
                 what, tl__task_label(g->consumer, label, sizeof label));
        *err = -EBUSY;
        return NULL;
    }
    return self;
}

int tl_gen_new(tl_gen **out, tl_gen_fn producer, void *arg,
               const tl_gen_opts *opts)
{
    if (!out) return -EINVAL;
    *out = NULL;
    tl__task *self = tl__task_self("tl_gen_new");
    if (!self) return tl__not_task_error();
    if (!producer) return -EINVAL;
    tl_gen *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    tl__loop *l = self->loop;
    tl_spawn_opts so = {
        .name = opts && opts->name ? opts->name : "generator",
        .stack_size = opts ? opts->stack_size : 0,
    };
    tl__task *t = tl__task_alloc(l, gen_main, g, &so);
    if (!t) {
        free(g);
        return -ENOMEM;
    }
    t->has_joiner = 1; /* tl_gen_close joins it */
    g->loop = l;
    g->producer = t;
    g->fn = producer;
    g->arg = arg;
    tl__task_label(self, g->maker, sizeof g->maker);
    tl__list_push(&l->gens, &g->open_link);
    tl__task_enqueue(l, t); /* runs up to its first park in gen_main */
    *out = g;
    return 0;
}

/* The consumer was cancelled while it waited for a value. */
static void next_cancel(tl__task *t)
{
    tl_gen *g = t->wait_data;
    g->forwarded = 1;
    t->wait_what = "tl_gen_next (cancelled; waiting for the producer's "
                   "cleanup)";
    tl__task_cancel(g->producer);
    /* Stay parked: gen_main wakes us with -ECANCELED when the producer
     * returns. (tl__task_poke cleared the hook: no second cancel.) */
}

static int end_result(tl_gen *g, tl__task *self)
{
    if (g->result < 0 && !g->reported) {
        g->reported = 1;
        tl__fail_pass(self, g->producer, g->result);
        return g->result;
    }
    return TL_EGENDONE;
}

int tl_gen_next(tl_gen *g, void **value)
{
    int err;
    tl__task *self = gen_self(g, "tl_gen_next", &err);
    if (!self) return err;
    if (g->closing) {
        tl__diag("tl_gen_next: the generator is being closed");
        return TL_ECLOSED;
    }
    int rc = tl__checkpoint(self, "tl_gen_next", __builtin_return_address(0));
    if (rc < 0) return rc;
    if (g->done) return end_result(g, self);
    g->consumer = self;
    self->wait_data = g;
    if (g->parked)
        rc = tl__handoff(self, next_cancel, "tl_gen_next", g->producer, 0);
    else /* not started yet, or unwinding a cancel: it comes to us */
        rc = tl__park(self, next_cancel, "tl_gen_next");
    self->wait_data = NULL;
    g->consumer = NULL;
    if (rc == 0) {
        if (value) *value = g->value;
        return 0;
    }
    if (g->forwarded && g->result == -ECANCELED) {
        g->reported = 1; /* the producer's -ECANCELED is ours */
        return -ECANCELED;
    }
    return end_result(g, self);
}

int tl__gen_step(tl_gen *g, void **value, int *rcp)
{
    int rc = tl_gen_next(g, value);
    if (rcp) *rcp = rc == TL_EGENDONE ? 0 : rc;
    return rc == 0;
}

int tl_gen_close(tl_gen *g)
{
    if (!g) return 0;
    int err;
    tl__task *self = gen_self(g, "tl_gen_close", &err);
    if (!self) return err;
    if (g->closing) return -EBUSY;
    g->closing = 1;
    tl__task *t = g->producer;
    if (t->state != TL__T_DONE) {
        tl__task_cancel(t);
        /* Invariant 1: the producer's cleanup may touch memory the
         * caller owns, so wait for it even if the caller is cancelled. */
        while (t->state != TL__T_DONE) {
            t->joiner = self;
            (void)tl__park(self, NULL, "tl_gen_close");
        }
        t->joiner = NULL;
    }
    int rc = 0;
    if (t->result < 0 && !g->reported &&
        !(t->result == -ECANCELED && t->cancel_requested)) {
        rc = t->result; /* a failure nobody was told about */
        tl__fail_pass(self, t, rc);
    }
    t->loop->zombies--;
    tl__task_free(t->loop, t);
    tl__list_remove(&g->open_link);
    free(g);
    return rc;
}

void tl__gen_reap_unclosed(tl__loop *l)
{
    for (tl__link *n; (n = tl__list_pop(&l->gens));) {
        tl_gen *g = tl__container_of(n, tl_gen, open_link);
        tl__task *t = g->producer;
        char label[48];
        tl__diag("generator %s (made by task %s) was never closed: call "
                 "tl_gen_close when done with it; freed at tl_run's end",
                 tl__task_label(t, label, sizeof label), g->maker);
        /* Teardown cancelled and finished the producer: its slot waits
         * for the join tl_gen_close would have done. A failure of its own
         * that no tl_gen_next returned is reported as well. */
        if (g->reported) t->reported = 1;
        tl__report_unjoined(t);
        l->zombies--;
        tl__task_free(l, t);
        free(g);
    }
}
