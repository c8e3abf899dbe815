/* tl_gather: asyncio.gather(*calls, return_exceptions=True), with the one
 * documented divergence: it returns only after every child finished.
 * Virtual clock throughout, so "after every child finished" is checked
 * against exact times.
 */
#include "helpers.h"

#include <stdint.h>

/* A child described by its argument: sleep `secs`, then return `ret`.
 * `done` and `at` record that and when it finished; `sleep_rc` what its
 * sleep returned. */
struct job {
    double secs;
    int ret;
    int done;
    int sleep_rc;
    double at;
};

static int run_job(void *arg)
{
    struct job *j = arg;
    j->sleep_rc = j->secs > 0 ? tl_sleep(j->secs) : 0;
    j->done = 1;
    j->at = tl_now();
    if (j->sleep_rc < 0) return j->sleep_rc;
    return j->ret;
}

static int ret_arg(void *arg) { return (int)(intptr_t)arg; }

/* ---- statuses and the result --------------------------------------------- */

static int main_statuses(void *arg)
{
    (void)arg;
    tl_call calls[4] = {
        TL_CALL(ret_arg, (intptr_t)1),
        TL_CALL(ret_arg, (intptr_t)-EIO),
        TL_CALL(ret_arg, (intptr_t)3),
        TL_CALL(ret_arg, (intptr_t)0),
    };
    int st[4] = {111, 111, 111, 111};
    cr_expect_eq(tl_gather(4, calls, st), -EIO);
    cr_expect_eq(st[0], 1);
    cr_expect_eq(st[1], -EIO);
    cr_expect_eq(st[2], 3);
    cr_expect_eq(st[3], 0);
    return 0;
}

Test(gather, statuses_per_call, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_statuses, NULL), 0);
}

static int main_all_ok(void *arg)
{
    (void)arg;
    struct job j[3] = {{2.0, 20, 0, 1, -1}, {1.0, 10, 0, 1, -1},
                       {3.0, 30, 0, 1, -1}};
    tl_call calls[3] = {TL_CALL(run_job, &j[0]), TL_CALL(run_job, &j[1]),
                        TL_CALL(run_job, &j[2])};
    int st[3];
    cr_expect_eq(tl_gather(3, calls, st), 0);
    cr_expect_eq(tl_now(), 3.0); /* concurrent: the longest, not the sum */
    cr_expect_eq(st[0], 20);
    cr_expect_eq(st[1], 10);
    cr_expect_eq(st[2], 30);
    cr_expect_eq(j[0].at, 2.0);
    cr_expect_eq(j[1].at, 1.0);
    cr_expect_eq(j[2].at, 3.0);
    return 0;
}

Test(gather, children_run_concurrently, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_all_ok, NULL), 0);
}

/* The first negative status *in argument order* is returned, and only
 * once every child finished: call 1 fails at t=2 with -EPIPE, call 2 fails
 * first (t=0) with -EIO, call 3 is the slow sibling (t=5). */
static int main_first_negative(void *arg)
{
    (void)arg;
    struct job j[4] = {{1.0, 0, 0, 1, -1},
                       {2.0, -EPIPE, 0, 1, -1},
                       {0.0, -EIO, 0, 1, -1},
                       {5.0, 9, 0, 1, -1}};
    tl_call calls[4];
    for (int i = 0; i < 4; i++) calls[i] = TL_CALL(run_job, &j[i]);
    int st[4] = {111, 111, 111, 111};
    cr_expect_eq(tl_gather(4, calls, st), -EPIPE);
    cr_expect_eq(tl_now(), 5.0);
    cr_expect_eq(j[3].done, 1);
    cr_expect_eq(j[3].at, 5.0);
    cr_expect_eq(st[0], 0);
    cr_expect_eq(st[1], -EPIPE);
    cr_expect_eq(st[2], -EIO);
    cr_expect_eq(st[3], 9);
    return 0;
}

Test(gather, first_negative_in_argument_order_after_all_finished,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_first_negative, NULL), 0);
}

/* A failure cancels nobody. */
static int main_failure_keeps_siblings(void *arg)
{
    (void)arg;
    struct job j[3] = {{0.0, -ECONNREFUSED, 0, 1, -1},
                       {1.0, 1, 0, 1, -1},
                       {2.0, 2, 0, 1, -1}};
    tl_call calls[3];
    for (int i = 0; i < 3; i++) calls[i] = TL_CALL(run_job, &j[i]);
    int st[3];
    cr_expect_eq(tl_gather(3, calls, st), -ECONNREFUSED);
    cr_expect_eq(j[1].sleep_rc, 0);
    cr_expect_eq(j[2].sleep_rc, 0);
    cr_expect_eq(st[1], 1);
    cr_expect_eq(st[2], 2);
    cr_expect_eq(tl_now(), 2.0);
    /* And the gatherer itself is not cancelled afterwards. */
    cr_expect_eq(tl_cancelled(), 0);
    cr_expect_eq(tl_yield(), 0);
    return 0;
}

Test(gather, failure_does_not_cancel_others, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_failure_keeps_siblings, NULL), 0);
}

/* A child that fails with -ECANCELED on its own (nobody cancelled it) is
 * an ordinary failure for gather: the status is passed on. */
static int main_child_own_ecanceled(void *arg)
{
    (void)arg;
    tl_call calls[2] = {TL_CALL(ret_arg, (intptr_t)-ECANCELED),
                        TL_CALL(ret_arg, (intptr_t)4)};
    int st[2];
    cr_expect_eq(tl_gather(2, calls, st), -ECANCELED);
    cr_expect_eq(st[0], -ECANCELED);
    cr_expect_eq(st[1], 4);
    cr_expect_eq(tl_cancelled(), 0);
    return 0;
}

Test(gather, child_status_ecanceled_is_passed_on, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_child_own_ecanceled, NULL), 0);
}

/* ---- cancelling the gatherer ---------------------------------------------- */

/* A child that, once cancelled, needs 1 s of shielded cleanup. */
static int slow_to_cancel(void *arg)
{
    struct job *j = arg;
    j->sleep_rc = tl_sleep(100.0);
    tl_scope sh = tl_shield_enter();
    int rc = tl_sleep(1.0);
    cr_expect_eq(tl_scope_exit(sh, rc), 0);
    j->done = 1;
    j->at = tl_now();
    return j->sleep_rc < 0 ? j->sleep_rc : j->ret;
}

struct gatherer {
    struct job j[3];
    int st[3];
    int rc;
    double at;
};

static int gatherer(void *arg)
{
    struct gatherer *g = arg;
    tl_call calls[3] = {TL_CALL(run_job, &g->j[0]),
                        TL_CALL(slow_to_cancel, &g->j[1]),
                        TL_CALL(run_job, &g->j[2])};
    g->rc = tl_gather(3, calls, g->st);
    g->at = tl_now();
    return g->rc;
}

static int main_gatherer_cancelled(void *arg)
{
    (void)arg;
    struct gatherer g = {
        .j = {{100.0, 1, 0, 1, -1}, {0, 2, 0, 1, -1}, {0.0, 3, 0, 1, -1}},
        .st = {111, 111, 111},
        .rc = 1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, gatherer, &g), 0);
    cr_expect_eq(tl_sleep(0.5), 0);
    cr_expect_eq(tl_cancel(t), 0);
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(g.rc, -ECANCELED);
    cr_expect_eq(st, -ECANCELED);
    /* The children were cancelled at 0.5 ... */
    cr_expect_eq(g.j[0].sleep_rc, -ECANCELED);
    cr_expect_eq(g.j[0].at, 0.5);
    cr_expect_eq(g.j[1].sleep_rc, -ECANCELED);
    /* ... and gather waited for the slow one's cleanup (invariant 1). */
    cr_expect_eq(g.j[1].at, 1.5);
    cr_expect_eq(g.at, 1.5);
    cr_expect_eq(g.st[0], -ECANCELED);
    cr_expect_eq(g.st[1], -ECANCELED);
    cr_expect_eq(g.st[2], 3); /* finished before the cancel */
    return 0;
}

Test(gather, cancelled_gatherer_cancels_children_and_waits, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_gatherer_cancelled, NULL), 0);
}

/* Checkpoint first: a gatherer already cancelled when it calls gets
 * -ECANCELED after one yield and none of the calls runs (each status says
 * -ECANCELED). */
static int cancelled_then_gather(void *arg)
{
    struct gatherer *g = arg;
    cr_expect_eq(tl_sleep(100.0), -ECANCELED);
    tl_call calls[3] = {TL_CALL(run_job, &g->j[0]), TL_CALL(run_job, &g->j[1]),
                        TL_CALL(run_job, &g->j[2])};
    g->rc = tl_gather(3, calls, g->st);
    g->at = tl_now();
    return 0;
}

static int main_gather_when_cancelled(void *arg)
{
    (void)arg;
    struct gatherer g = {
        .j = {{5.0, 1, 0, 1, -1}, {0.0, 2, 0, 1, -1}, {7.0, 3, 0, 1, -1}},
        .st = {111, 111, 111},
        .rc = 1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, cancelled_then_gather, &g), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_eq(g.rc, -ECANCELED);
    cr_expect_eq(g.at, 0.0);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(g.j[i].done, 0, "call %d ran", i);
        cr_expect_eq(g.st[i], -ECANCELED);
    }
    return 0;
}

Test(gather, gather_in_cancelled_task_runs_nothing, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_gather_when_cancelled, NULL), 0);
}

/* The rule: children that finish on their own terms while the gatherer
 * is cancelled give their result; a real error beats the cancellations.
 * Each child shields its work, so the forwarded cancel does not stop it. */
struct shielded {
    double secs;
    int ret;
};

static int shielded_job(void *arg)
{
    struct shielded *j = arg;
    tl_scope sh = tl_shield_enter();
    int rc = tl_sleep(j->secs);
    (void)tl_scope_exit(sh, rc);
    return j->ret;
}

struct outcome_case {
    struct shielded j[2];
    int cancellable_first; /* child 0 is a plain cancellable sleeper */
    int rc, next_rc, st[2];
};

static int outcome_gatherer(void *arg)
{
    struct outcome_case *c = arg;
    struct job plain = {100.0, 1, 0, 1, -1};
    tl_call calls[2] = {
        c->cancellable_first ? TL_CALL(run_job, &plain)
                             : TL_CALL(shielded_job, &c->j[0]),
        TL_CALL(shielded_job, &c->j[1])};
    c->rc = tl_gather(2, calls, c->st);
    c->next_rc = tl_yield();
    return 0;
}

static int main_gather_outcomes(void *arg)
{
    (void)arg;
    struct outcome_case cases[3] = {
        {{{1.0, 4}, {2.0, 6}}, 0, 1, 1, {9, 9}},   /* all complete: 0 */
        {{{1.0, 4}, {2.0, -EIO}}, 0, 1, 1, {9, 9}}, /* real error */
        {{{0, 0}, {2.0, -EPIPE}}, 1, 1, 1, {9, 9}}, /* beats -ECANCELED */
    };
    const int want[3] = {0, -EIO, -EPIPE};
    for (int k = 0; k < 3; k++) {
        struct outcome_case *c = &cases[k];
        double t0 = tl_now();
        tl_task t;
        cr_expect_eq(tl_spawn(&t, outcome_gatherer, c), 0);
        cr_expect_eq(tl_sleep(0.5), 0);
        cr_expect_eq(tl_cancel(t), 0);
        cr_expect_eq(tl_join(t, NULL), 0);
        cr_expect_eq(c->rc, want[k], "case %d: %d", k, c->rc);
        cr_expect_eq(c->next_rc, -ECANCELED, "case %d", k);
        cr_expect_eq(tl_now() - t0, 2.0, "case %d waited for all", k);
        if (c->cancellable_first)
            cr_expect_eq(c->st[0], -ECANCELED);
        else
            cr_expect_eq(c->st[0], 4);
        cr_expect_eq(c->st[1], c->j[1].ret);
    }
    return 0;
}

Test(gather, children_outcome_wins_over_the_gatherer_cancel, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_gather_outcomes, NULL), 0);
}

/* Without any cancel of the gatherer, a real error also beats a child
 * that someone else cancelled, wherever it stands. */
static int cancel_victim(void *arg)
{
    *(tl_task *)arg = tl_current();
    return tl_sleep(100.0);
}

static int late_failure(void *arg)
{
    tl_task *victim = arg;
    cr_expect_eq(tl_sleep(1.0), 0);
    cr_expect_eq(tl_cancel(*victim), 0);
    return -EIO;
}

static int main_error_beats_cancelled_child(void *arg)
{
    (void)arg;
    tl_task victim = {0};
    tl_call calls[2] = {TL_CALL(cancel_victim, &victim),
                        TL_CALL(late_failure, &victim)};
    int st[2] = {9, 9};
    cr_expect_eq(tl_gather(2, calls, st), -EIO);
    cr_expect_eq(st[0], -ECANCELED);
    cr_expect_eq(st[1], -EIO);
    return 0;
}

Test(gather, real_error_beats_a_cancelled_child, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_error_beats_cancelled_child, NULL), 0);
}

/* ---- edge cases ---------------------------------------------------------------- */

static int main_n_zero(void *arg)
{
    (void)arg;
    cr_expect_eq(tl_gather(0, NULL, NULL), 0);
    int st = 111;
    tl_call unused = TL_CALL(ret_arg, (intptr_t)1);
    cr_expect_eq(tl_gather(0, &unused, &st), 0);
    cr_expect_eq(st, 111); /* nothing written */
    cr_expect_eq(tl_now(), 0.0);
    return 0;
}

Test(gather, zero_calls, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_n_zero, NULL), 0);
}

static int main_null_statuses(void *arg)
{
    (void)arg;
    struct job j[3] = {{1.0, 5, 0, 1, -1},
                       {2.0, -EPIPE, 0, 1, -1},
                       {3.0, -EIO, 0, 1, -1}};
    tl_call calls[3];
    for (int i = 0; i < 3; i++) calls[i] = TL_CALL(run_job, &j[i]);
    cr_expect_eq(tl_gather(3, calls, NULL), -EPIPE);
    cr_expect_eq(tl_now(), 3.0);
    for (int i = 0; i < 3; i++) cr_expect_eq(j[i].done, 1);
    /* And with every call succeeding. */
    tl_call ok[2] = {TL_CALL(ret_arg, (intptr_t)1), TL_CALL(ret_arg, (intptr_t)2)};
    cr_expect_eq(tl_gather(2, ok, NULL), 0);
    return 0;
}

Test(gather, null_statuses, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_null_statuses, NULL), 0);
}

static int main_null_fn(void *arg)
{
    (void)arg;
    struct job j = {0.0, 1, 0, 1, -1};
    tl_call calls[3] = {TL_CALL(run_job, &j), {NULL, NULL, "nothing"},
                        TL_CALL(run_job, &j)};
    int st[3] = {111, 111, 111};
    cr_expect_eq(tl_gather(3, calls, st), -EINVAL);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(j.done, 0); /* none ran */
    return 0;
}

Test(gather, null_function_refused_and_nothing_runs, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_null_fn, NULL), 0);
}

static int record_name(void *arg)
{
    char *buf = arg;
    cr_expect_not_null(tl_task_name(tl_current(), buf, 32));
    return 0;
}

static int main_names(void *arg)
{
    (void)arg;
    char a[32] = "", b[32] = "";
    tl_call calls[2] = {TL_CALL(record_name, a),
                        TL_CALL_NAMED(record_name, b, "fetch b")};
    cr_expect_eq(tl_gather(2, calls, NULL), 0);
    cr_expect_str_eq(a, "record_name");
    cr_expect_str_eq(b, "fetch b");
    return 0;
}

Test(gather, children_are_named_after_their_calls, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_names, NULL), 0);
}

/* Children start in argument order. */
struct order {
    int seq[8];
    int n;
};
struct order_arg {
    struct order *o;
    int id;
};

static int record_order(void *arg)
{
    struct order_arg *a = arg;
    a->o->seq[a->o->n++] = a->id;
    return a->id;
}

static int main_order(void *arg)
{
    (void)arg;
    struct order o = {.n = 0};
    struct order_arg a[8];
    tl_call calls[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (struct order_arg){&o, i};
        calls[i] = TL_CALL(record_order, &a[i]);
    }
    int st[8];
    cr_expect_eq(tl_gather(8, calls, st), 0);
    cr_expect_eq(o.n, 8);
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(o.seq[i], i);
        cr_expect_eq(st[i], i);
    }
    return 0;
}

Test(gather, children_start_in_argument_order, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_order, NULL), 0);
}

/* Nested: a gathered child gathers. */
static int inner_gather(void *arg)
{
    int base = (int)(intptr_t)arg;
    tl_call calls[2] = {TL_CALL(ret_arg, (intptr_t)base + 1),
                        TL_CALL(ret_arg, (intptr_t)base + 2)};
    int st[2];
    int rc = tl_gather(2, calls, st);
    if (rc < 0) return rc;
    return st[0] + st[1];
}

static int main_nested(void *arg)
{
    (void)arg;
    tl_call calls[2] = {TL_CALL(inner_gather, (intptr_t)10),
                        TL_CALL(inner_gather, (intptr_t)100)};
    int st[2];
    cr_expect_eq(tl_gather(2, calls, st), 0);
    cr_expect_eq(st[0], 23);
    cr_expect_eq(st[1], 203);
    return 0;
}

Test(gather, nested_gathers, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_nested, NULL), 0);
}

/* ---- scale ------------------------------------------------------------------------ */

static int main_scale(void *arg)
{
    (void)arg;
    size_t n = TL_TEST_SCALE(100000);
    tl_call *calls = malloc(n * sizeof *calls);
    int *st = malloc(n * sizeof *st);
    cr_expect_not_null(calls);
    cr_expect_not_null(st);
    if (!calls || !st) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        calls[i] = TL_CALL(ret_arg, (intptr_t)i);
        st[i] = -1;
    }
    cr_expect_eq(tl_gather(n, calls, st), 0);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++)
        if (st[i] != (int)i) wrong++;
    cr_expect_eq(wrong, 0u);
    /* And once more with the last one failing: found after all the rest. */
    calls[n - 1] = TL_CALL(ret_arg, (intptr_t)-EIO);
    cr_expect_eq(tl_gather(n, calls, st), -EIO);
    cr_expect_eq(st[n - 2], (int)(n - 2));
    free(calls);
    free(st);
    return 0;
}

Test(gather, hundred_thousand_children, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_scale, NULL), 0);
}
