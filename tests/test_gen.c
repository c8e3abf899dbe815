/* Async generators: values in order, laziness, closing early (before the
 * first value too), failures reaching the consumer, cancelling the
 * consumer (the producer's cleanup finishes first), deadlines, the
 * TL_GEN_FOREACH macro, fairness of the direct handoff, and misuse.
 *
 * Timing uses the virtual clock, so times are exact.
 */
#include "helpers.h"

#include <math.h>

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

/* A producer of the integers 0..n-1 (n < 0: forever), sleeping `gap`
 * seconds before each, failing with `fail` at the end if it is set. */
struct counter {
    int n;
    double gap;
    int fail;         /* returned when exhausted (0: success) */
    int cleanup_rc;   /* returned when cancelled (default -ECANCELED) */
    int started, cleaned, yields_cancelled;
    double cleanup_sleep; /* shielded sleep in the cleanup */
    int vals[64];
};

static int counter(tl_gen *g, void *arg)
{
    struct counter *c = arg;
    c->started = 1;
    int rc = 0;
    for (int i = 0; c->n < 0 || i < c->n; i++) {
        if (c->gap > 0 && (rc = tl_sleep(c->gap)) < 0) break;
        c->vals[i % 64] = i;
        if ((rc = tl_gen_yield(g, &c->vals[i % 64])) < 0) {
            c->yields_cancelled++;
            break;
        }
    }
    if (rc < 0) {
        if (c->cleanup_sleep > 0) {
            int src;
            TL_WITH_SHIELD(&src) { src = tl_sleep(c->cleanup_sleep); }
        }
        c->cleaned = 1;
        return c->cleanup_rc ? c->cleanup_rc : rc;
    }
    if (c->fail) return tl_fail(c->fail, "counter failed at the end");
    return 0;
}

/* ---- values in order ------------------------------------------------------- */

static int main_values(void *arg)
{
    (void)arg;
    struct counter c = {.n = 10};
    tl_gen *g;
    cr_expect_eq(tl_gen_new(&g, counter, &c, NULL), 0);
    for (int i = 0; i < 10; i++) {
        void *v = NULL;
        cr_expect_eq(tl_gen_next(g, &v), 0);
        cr_expect_eq(*(int *)v, i);
    }
    cr_expect_eq(tl_gen_next(g, NULL), TL_EGENDONE);
    cr_expect_eq(tl_gen_next(g, NULL), TL_EGENDONE);
    cr_expect_eq(c.cleaned, 0);
    cr_expect_eq(tl_gen_close(g), 0);
    return 0;
}

Test(gen, values_in_order_then_done, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_values, NULL), 0);
}

/* Nothing of the body runs before the first next; a producer may suspend
 * between values. */
static int main_lazy(void *arg)
{
    (void)arg;
    struct counter c = {.n = 3, .gap = 0.1};
    tl_gen *g;
    cr_expect_eq(tl_gen_new(&g, counter, &c, &(tl_gen_opts){.name = "ticks"}),
                 0);
    cr_expect_eq(tl_sleep(1.0), 0);
    cr_expect_eq(c.started, 0);
    void *v;
    double t0 = tl_now();
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(tl_gen_next(g, &v), 0);
        cr_expect_eq(*(int *)v, i);
        cr_expect(near(tl_now() - t0, 0.1 * (i + 1)));
    }
    cr_expect_eq(tl_gen_next(g, &v), TL_EGENDONE);
    cr_expect_eq(tl_gen_close(g), 0);
    return 0;
}

Test(gen, lazy_start_and_suspending_producer, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_lazy, NULL), 0);
}

/* ---- closing early ----------------------------------------------------------- */

static int main_close_early(void *arg)
{
    (void)arg;
    struct counter c = {.n = -1};
    tl_gen *g;
    cr_expect_eq(tl_gen_new(&g, counter, &c, NULL), 0);
    void *v;
    for (int i = 0; i < 3; i++) cr_expect_eq(tl_gen_next(g, &v), 0);
    cr_expect_eq(c.cleaned, 0);
    cr_expect_eq(tl_gen_close(g), 0);
    cr_expect_eq(c.cleaned, 1);          /* cleanup ran before close returned */
    cr_expect_eq(c.yields_cancelled, 1); /* its yield returned -ECANCELED */
    return 0;
}

Test(gen, close_early_runs_cleanup, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_close_early, NULL), 0);
}

/* Closed before the first value: the body still runs (it owns arg) and
 * meets -ECANCELED at once. */
struct owned {
    int *buf;
    int *ran;
};

static int frees_arg(tl_gen *g, void *arg)
{
    struct owned *o = arg;
    *o->ran = 1;
    int rc = tl_gen_yield(g, o->buf);
    free(o->buf);
    free(o);
    return rc < 0 ? rc : 0;
}

static int main_close_unstarted(void *arg)
{
    (void)arg;
    int ran = 0;
    struct owned *o = malloc(sizeof *o);
    o->buf = malloc(16);
    o->ran = &ran;
    tl_gen *g;
    cr_expect_eq(tl_gen_new(&g, frees_arg, o, NULL), 0);
    cr_expect_eq(tl_gen_close(g), 0);
    cr_expect_eq(ran, 1); /* and the ASan run sees no leak */
    return 0;
}

Test(gen, close_before_first_value_still_cleans_up, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_close_unstarted, NULL), 0);
}

/* ---- failures ------------------------------------------------------------------- */

static int main_failure(void *arg)
{
    (void)arg;
    struct counter c = {.n = 2, .fail = -EIO};
    tl_gen *g;
    cr_expect_eq(tl_gen_new(&g, counter, &c, NULL), 0);
    void *v;
    cr_expect_eq(tl_gen_next(g, &v), 0);
    cr_expect_eq(tl_gen_next(g, &v), 0);
    cr_expect_eq(tl_gen_next(g, &v), -EIO); /* once */
    cr_expect_eq(tl_gen_next(g, &v), TL_EGENDONE);
    cr_expect_eq(tl_gen_close(g), 0);       /* already reported */
    return 0;
}

Test(gen, producer_failure_reaches_consumer, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_failure, NULL), 0);
}

static int main_cleanup_failure(void *arg)
{
    (void)arg;
    struct counter c = {.n = -1, .cleanup_rc = -EPIPE};
    tl_gen *g;
    cr_expect_eq(tl_gen_new(&g, counter, &c, NULL), 0);
    void *v;
    cr_expect_eq(tl_gen_next(g, &v), 0);
    cr_expect_eq(tl_gen_close(g), -EPIPE); /* nobody else saw it */
    return 0;
}

Test(gen, close_returns_unseen_cleanup_failure, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cleanup_failure, NULL), 0);
}

/* ---- cancelling the consumer ----------------------------------------------- */

struct consumer_arg {
    tl_gen *g;
    struct counter *c;
    int rc, cleaned_at_return, got;
    double at;
};

static int consumer(void *arg)
{
    struct consumer_arg *a = arg;
    void *v;
    int rc;
    while ((rc = tl_gen_next(a->g, &v)) == 0) a->got++;
    a->rc = rc;
    a->cleaned_at_return = a->c->cleaned;
    a->at = tl_now();
    cr_expect_eq(tl_gen_next(a->g, &v), -ECANCELED); /* level-triggered */
    return tl_gen_close(a->g);
}

static int main_cancel_consumer(void *arg)
{
    (void)arg;
    /* A value every 0.4 s; the cleanup takes 0.1 s (shielded). */
    struct counter c = {.n = -1, .gap = 0.4, .cleanup_sleep = 0.1};
    struct consumer_arg a = {.c = &c};
    cr_expect_eq(tl_gen_new(&a.g, counter, &c, NULL), 0);
    tl_task t;
    cr_expect_eq(tl_spawn(&t, consumer, &a), 0);
    cr_expect_eq(tl_sleep(1.0), 0); /* two values, then inside next */
    cr_expect_eq(tl_cancel(t), 0);
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(st, 0);
    cr_expect_eq(a.got, 2);
    cr_expect_eq(a.rc, -ECANCELED);
    cr_expect_eq(a.cleaned_at_return, 1); /* next waited for the cleanup */
    cr_expect(near(a.at, 1.1));
    return 0;
}

Test(gen, cancelled_consumer_waits_for_producer_cleanup, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_consumer, NULL), 0);
}

static int main_deadline(void *arg)
{
    (void)arg;
    struct counter c = {.n = -1, .gap = 0.3};
    tl_gen *g;
    cr_expect_eq(tl_gen_new(&g, counter, &c, NULL), 0);
    int rc, got = 0;
    void *v;
    TL_WITH_TIMEOUT(0.5, &rc) {
        while ((rc = tl_gen_next(g, &v)) == 0) got++;
    }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(got, 1);
    cr_expect_eq(c.cleaned, 1);
    cr_expect(near(tl_now(), 0.5));
    cr_expect_eq(tl_gen_next(g, &v), TL_EGENDONE); /* cancelled: over */
    cr_expect_eq(tl_gen_close(g), 0);
    return 0;
}

Test(gen, deadline_around_next, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_deadline, NULL), 0);
}

/* ---- TL_GEN_FOREACH ----------------------------------------------------------- */

static int main_foreach(void *arg)
{
    (void)arg;
    struct counter c1 = {.n = 5};
    tl_gen *g;
    cr_expect_eq(tl_gen_new(&g, counter, &c1, NULL), 0);
    const int *v;
    int rc = -1, sum = 0;
    TL_GEN_FOREACH(g, v, &rc) sum += *v;
    cr_expect_eq(rc, 0);
    cr_expect_eq(sum, 0 + 1 + 2 + 3 + 4);
    cr_expect_eq(tl_gen_close(g), 0);

    struct counter c2 = {.n = -1};
    cr_expect_eq(tl_gen_new(&g, counter, &c2, NULL), 0);
    int n = 0;
    TL_GEN_FOREACH(g, v, &rc) {
        if (*v == 3) break;
        n++;
    }
    cr_expect_eq(rc, 0);
    cr_expect_eq(n, 3);
    cr_expect_eq(tl_gen_close(g), 0);
    cr_expect_eq(c2.cleaned, 1);

    struct counter c3 = {.n = 2, .fail = -ENOENT};
    cr_expect_eq(tl_gen_new(&g, counter, &c3, NULL), 0);
    n = 0;
    TL_GEN_FOREACH(g, v, &rc) n++;
    cr_expect_eq(rc, -ENOENT);
    cr_expect_eq(n, 2);
    cr_expect_eq(tl_gen_close(g), 0);
    return 0;
}

Test(gen, foreach_macro, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_foreach, NULL), 0);
}

/* ---- fairness: the direct handoff is capped per loop iteration ---------------- */

struct ticker {
    int ticks, stop;
};

static int ticker(void *arg)
{
    struct ticker *t = arg;
    while (!t->stop) {
        t->ticks++;
        if (tl_yield() < 0) break;
    }
    return 0;
}

static int main_fair(void *arg)
{
    (void)arg;
    struct ticker tk = {0, 0};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, ticker, &tk), 0);
    struct counter c = {.n = -1};
    tl_gen *g;
    cr_expect_eq(tl_gen_new(&g, counter, &c, NULL), 0);
    void *v;
    int before = tk.ticks;
    for (int i = 0; i < 6400; i++) cr_expect_eq(tl_gen_next(g, &v), 0);
    int ticks = tk.ticks - before;
    /* 6400 round trips are 12800 switches; at most TL__HANDOFF_CAP (64)
     * of them go direct per loop iteration, so the ticker got about one
     * turn per 64: never starved, and the pair did switch directly. */
    cr_expect(ticks >= 12800 / 64 / 2, "ticker ran %d times", ticks);
    cr_expect(ticks <= 6400, "ticker ran %d times: no direct switch?",
              ticks);
    tk.stop = 1;
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_eq(tl_gen_close(g), 0);
    return 0;
}

Test(gen, handoff_never_starves_other_tasks, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_fair, NULL), 0);
}

/* ---- misuse ------------------------------------------------------------------- */

static tl_gen *the_gen;

static int self_next(tl_gen *g, void *arg)
{
    (void)arg;
    cr_expect_eq(tl_gen_next(g, NULL), -EDEADLK);
    cr_expect_eq(tl_gen_close(g), -EDEADLK);
    if (tl_gen_yield(g, NULL) < 0) return 0;
    return 0;
}

static int second_consumer(void *arg)
{
    (void)arg;
    void *v;
    return tl_gen_next(the_gen, &v);
}

static int main_misuse(void *arg)
{
    (void)arg;
    tl_gen *g;
    cr_expect_eq(tl_gen_new(&g, NULL, NULL, NULL), -EINVAL);
    cr_expect_eq(tl_gen_new(&g, self_next, NULL, NULL), 0);
    /* Not the producer: may not yield. */
    cr_expect_eq(tl_gen_yield(g, NULL), -EPERM);
    void *v;
    cr_expect_eq(tl_gen_next(g, &v), 0);
    /* A consumer that turns up while the generator is being closed. */
    the_gen = g;
    tl_task t;
    cr_expect_eq(tl_spawn(&t, second_consumer, NULL), 0);
    cr_expect_eq(tl_gen_close(g), 0);
    int st = 0;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(st, TL_ECLOSED);
    cr_expect_eq(tl_gen_close(NULL), 0);
    return 0;
}

Test(gen, misuse, .timeout = 10)
{
    cr_assert_eq(tl_gen_new(&(tl_gen *){NULL}, counter, NULL, NULL),
                 TL_ENOTASK);
    cr_assert_eq(tl_gen_next(NULL, NULL), TL_ENOTASK);
    cr_assert_eq(run_virtual(main_misuse, NULL), 0);
}

/* Two consumers at once: the second is refused. */
static int main_busy(void *arg)
{
    (void)arg;
    struct counter c = {.n = 2, .gap = 0.5};
    cr_expect_eq(tl_gen_new(&the_gen, counter, &c, NULL), 0);
    tl_task t;
    cr_expect_eq(tl_spawn(&t, second_consumer, NULL), 0);
    cr_expect_eq(tl_sleep(0.1), 0); /* t is inside next */
    void *v;
    cr_expect_eq(tl_gen_next(the_gen, &v), -EBUSY);
    cr_expect_eq(tl_gen_close(the_gen), -EBUSY);
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(st, 0);
    cr_expect_eq(tl_gen_close(the_gen), 0);
    return 0;
}

Test(gen, one_consumer_at_a_time, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_busy, NULL), 0);
}

/* ---- the rule: the producer's outcome wins over the consumer's cancel ---- */

/* A producer that yields once, then, cancelled while the consumer waits
 * for its second value, ends its cleanup with `end` (a real error, or a
 * plain return). */
struct ender {
    int end;
};

static int ender(tl_gen *g, void *arg)
{
    struct ender *e = arg;
    int rc = tl_gen_yield(g, e);
    if (rc < 0) return rc;
    rc = tl_sleep(100.0);
    tl_scope sh = tl_shield_enter();
    (void)tl_scope_exit(sh, tl_sleep(1.0)); /* cleanup */
    return rc == -ECANCELED ? e->end : 0;
}

struct end_consumer {
    tl_gen *g;
    int rc, next_rc;
};

static int end_consumer(void *arg)
{
    struct end_consumer *a = arg;
    void *v;
    cr_expect_eq(tl_gen_next(a->g, &v), 0);
    a->rc = tl_gen_next(a->g, &v);
    a->next_rc = tl_yield();
    return 0;
}

static int main_producer_outcome(void *arg)
{
    (void)arg;
    const int ends[2] = {-EIO, 0};
    const int want[2] = {-EIO, TL_EGENDONE};
    for (int i = 0; i < 2; i++) {
        struct ender e = {ends[i]};
        struct end_consumer a = {.rc = 1, .next_rc = 1};
        cr_expect_eq(tl_gen_new(&a.g, ender, &e, NULL), 0);
        tl_task t;
        cr_expect_eq(tl_spawn(&t, end_consumer, &a), 0);
        cr_expect_eq(tl_sleep(0.5), 0);
        cr_expect_eq(tl_cancel(t), 0);
        cr_expect_eq(tl_join(t, NULL), 0);
        cr_expect_eq(a.rc, want[i], "case %d: %d", i, a.rc);
        cr_expect_eq(a.next_rc, -ECANCELED);
        cr_expect_eq(tl_gen_close(a.g), 0); /* the error was reported */
    }
    return 0;
}

Test(gen, producer_outcome_wins_over_consumer_cancel, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_producer_outcome, NULL), 0);
}

/* Checkpoint first: a consumer already cancelled gets -ECANCELED and the
 * generator is untouched (its producer not even started). */
static int main_next_while_cancelled(void *arg)
{
    (void)arg;
    struct ender e = {0};
    tl_gen *g;
    cr_expect_eq(tl_gen_new(&g, ender, &e, NULL), 0);
    void *v = NULL;
    tl_scope s = tl_cancel_scope_enter();
    cr_expect_eq(tl_scope_cancel(s), 0);
    cr_expect_eq(tl_gen_next(g, &v), -ECANCELED);
    cr_expect_eq(tl_scope_exit(s, -ECANCELED), 0);
    cr_expect_eq(tl_gen_next(g, &v), 0);
    cr_expect_eq(v, &e);
    cr_expect_eq(tl_gen_close(g), 0);
    return 0;
}

Test(gen, next_while_cancelled_does_nothing, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_next_while_cancelled, NULL), 0);
}
