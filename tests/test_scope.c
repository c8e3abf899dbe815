/* Scopes: deadlines (timeout, move-on), shields, cancel scopes, nesting and
 * "whose cancel is it" (invariant 4), reschedule, wait_for, the block
 * macros, and groups inside deadline scopes. Virtual clock throughout, so
 * "at exactly the deadline" is an exact comparison.
 */
#include "helpers.h"

#include <math.h>
#include <stdint.h>

/* ---- timeout scopes --------------------------------------------------- */

static int main_timeout_fires(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(2.0);
    cr_expect_not_null(s.rec);
    cr_expect_eq(tl_scope_cancel_called(s), 0);
    int rc = tl_sleep(10.0);
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_now(), 2.0);
    cr_expect_neq(tl_scope_cancel_called(s), 0);
    cr_expect_eq(tl_sleep(1.0), -ECANCELED); /* still inside: level */
    cr_expect_eq(tl_now(), 2.0);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    /* Outside the scope nothing is cancelled. */
    cr_expect_eq(tl_cancelled(), 0);
    cr_expect_eq(tl_sleep(1.0), 0);
    cr_expect_eq(tl_now(), 3.0);
    return 0;
}

Test(scope, timeout_fires_at_exactly_the_deadline, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_timeout_fires, NULL), 0);
}

static int main_timeout_not_reached(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(2.0);
    cr_expect_eq(tl_sleep(1.0), 0);
    cr_expect_eq(tl_scope_exit(s, 42), 42);
    /* The deadline left with the scope: a later sleep past 2 s is fine. */
    cr_expect_eq(tl_sleep(5.0), 0);
    cr_expect_eq(tl_now(), 6.0);

    s = tl_timeout_enter(2.0);
    cr_expect_eq(tl_scope_exit(s, -EIO), -EIO); /* errors pass through */
    s = tl_timeout_enter(2.0);
    cr_expect_eq(tl_scope_exit(s, 0), 0);
    return 0;
}

Test(scope, body_finishing_first_gives_its_result, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_timeout_not_reached, NULL), 0);
}

static int main_timeout_at(void *arg)
{
    (void)arg;
    cr_expect_eq(tl_sleep(1.0), 0);
    tl_scope s = tl_timeout_at_enter(3.5);
    cr_expect_eq(tl_scope_deadline(s), 3.5);
    int rc = tl_sleep(10.0);
    cr_expect_eq(tl_now(), 3.5);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    return 0;
}

Test(scope, timeout_at_absolute_deadline, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_timeout_at, NULL), 0);
}

static int main_move_on(void *arg)
{
    (void)arg;
    tl_scope s = tl_move_on_enter(1.5);
    int rc = tl_sleep(10.0);
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_now(), 1.5);
    cr_expect_neq(tl_scope_cancel_called(s), 0);
    cr_expect_eq(tl_scope_exit(s, rc), 0);
    /* Not reached: the body's result. */
    s = tl_move_on_enter(1.0);
    cr_expect_eq(tl_scope_exit(s, 9), 9);
    return 0;
}

Test(scope, move_on_reports_zero, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_move_on, NULL), 0);
}

/* ---- timeout(0) and friends ------------------------------------------- */

struct zero_case {
    double t;
};

static int main_timeout_zero(void *arg)
{
    struct zero_case *z = arg;
    tl_scope s = tl_timeout_enter(z->t);
    cr_expect_not_null(s.rec);
    /* Already cancelled, but nothing suspended yet: plain code runs. */
    cr_expect_neq(tl_scope_cancel_called(s), 0);
    cr_expect_neq(tl_cancelled(), 0);
    int rc = tl_yield();
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    /* A body that never suspends keeps its result. */
    s = tl_timeout_enter(z->t);
    cr_expect_eq(tl_scope_exit(s, 5), 5);
    cr_expect_eq(tl_now(), 0.0);
    return 0;
}

Test(scope, timeout_zero_cancels_at_first_suspension, .timeout = 10)
{
    struct zero_case z = {0.0};
    cr_assert_eq(run_virtual(main_timeout_zero, &z), 0);
}

Test(scope, negative_timeout_is_zero, .timeout = 10)
{
    struct zero_case z = {-3.0};
    cr_assert_eq(run_virtual(main_timeout_zero, &z), 0);
}

Test(scope, minus_infinity_timeout_is_zero, .timeout = 10)
{
    struct zero_case z = {-INFINITY};
    cr_assert_eq(run_virtual(main_timeout_zero, &z), 0);
}

/* The rule for every time argument: NaN is -EINVAL, never "now". */
static int nan_body(void *arg)
{
    (*(int *)arg)++;
    return 7;
}

static int main_nan_scopes(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(NAN);
    cr_expect_null(s.rec);
    cr_expect_eq(tl_cancelled(), 0);
    cr_expect_eq(tl_yield(), 0); /* no scope was opened */
    cr_expect_eq(tl_scope_exit(s, 0), -EINVAL);
    s = tl_move_on_enter(NAN);
    cr_expect_null(s.rec);
    cr_expect_eq(tl_scope_exit(s, 3), -EINVAL);
    s = tl_timeout_at_enter(NAN);
    cr_expect_eq(tl_scope_exit(s, 0), -EINVAL);

    int ran = 0, rc = 1;
    TL_WITH_TIMEOUT(NAN, &rc) { ran++; }
    cr_expect_eq(rc, -EINVAL);
    TL_WITH_MOVE_ON(NAN, &rc) { ran++; }
    cr_expect_eq(rc, -EINVAL);
    cr_expect_eq(tl_wait_for(TL_CALL(nan_body, &ran), NAN), -EINVAL);
    cr_expect_eq(ran, 0, "a body ran under a NaN deadline");

    s = tl_timeout_enter(5.0);
    cr_expect_eq(tl_scope_reschedule(s, NAN), -EINVAL);
    cr_expect_eq(tl_scope_reschedule_at(s, NAN), -EINVAL);
    cr_expect_eq(tl_scope_deadline(s), 5.0); /* unchanged */
    cr_expect_eq(tl_scope_cancel_called(s), 0);
    cr_expect_eq(tl_scope_reschedule(s, -1.0), 0); /* negative: now */
    cr_expect_neq(tl_scope_cancel_called(s), 0);
    cr_expect_eq(tl_scope_exit(s, tl_yield()), -ETIMEDOUT);

    s = tl_timeout_enter(5.0);
    cr_expect_eq(tl_scope_reschedule_at(s, INFINITY), 0);
    cr_expect(isinf(tl_scope_deadline(s)));
    cr_expect_eq(tl_sleep(100.0), 0);
    cr_expect_eq(tl_scope_exit(s, 0), 0);
    cr_expect_eq(tl_wait_for(TL_CALL(nan_body, &ran), -INFINITY), 7);
    cr_expect_eq(ran, 1);
    return 0;
}

Test(scope, nan_times_are_refused, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_nan_scopes, NULL), 0);
}

static int main_timeout_infinite(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(INFINITY);
    cr_expect(isinf(tl_scope_deadline(s)));
    cr_expect_eq(tl_sleep(1e6), 0);
    cr_expect_eq(tl_scope_cancel_called(s), 0);
    cr_expect_eq(tl_scope_exit(s, 0), 0);
    return 0;
}

Test(scope, infinite_timeout_never_fires, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_timeout_infinite, NULL), 0);
}

/* ---- nesting: whose cancel is it? --------------------------------------- */

static int main_inner_shorter(void *arg)
{
    (void)arg;
    tl_scope outer = tl_timeout_enter(5.0);
    tl_scope inner = tl_timeout_enter(1.0);
    int rc = tl_sleep(10.0);
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_now(), 1.0);
    cr_expect_eq(tl_scope_exit(inner, rc), -ETIMEDOUT);
    /* The outer scope is untouched: the body goes on. */
    cr_expect_eq(tl_scope_cancel_called(outer), 0);
    cr_expect_eq(tl_sleep(1.0), 0);
    cr_expect_eq(tl_now(), 2.0);
    cr_expect_eq(tl_scope_exit(outer, 0), 0);
    return 0;
}

Test(scope, nested_inner_deadline_fires_inner, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_inner_shorter, NULL), 0);
}

static int main_outer_shorter(void *arg)
{
    (void)arg;
    tl_scope outer = tl_timeout_enter(1.0);
    tl_scope inner = tl_timeout_enter(5.0);
    int rc = tl_sleep(10.0);
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_now(), 1.0);
    cr_expect_eq(tl_scope_cancel_called(inner), 0);
    int v = tl_scope_exit(inner, rc);
    cr_expect_eq(v, -ECANCELED); /* not the inner scope's cancel: passed on */
    cr_expect_eq(tl_scope_exit(outer, v), -ETIMEDOUT);
    return 0;
}

Test(scope, nested_outer_deadline_passes_through_inner, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_outer_shorter, NULL), 0);
}

static int main_equal_deadlines(void *arg)
{
    (void)arg;
    tl_scope outer = tl_timeout_enter(1.0);
    tl_scope inner = tl_move_on_enter(1.0);
    int rc = tl_sleep(10.0);
    cr_expect_eq(tl_now(), 1.0);
    /* Both expired: the enclosing one wins, the inner one passes it on. */
    cr_expect_neq(tl_scope_cancel_called(outer), 0);
    cr_expect_neq(tl_scope_cancel_called(inner), 0);
    int v = tl_scope_exit(inner, rc);
    cr_expect_eq(v, -ECANCELED);
    cr_expect_eq(tl_scope_exit(outer, v), -ETIMEDOUT);
    return 0;
}

Test(scope, nested_equal_deadlines_outer_wins, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_equal_deadlines, NULL), 0);
}

/* The task's own cancel and its scope's deadline land in the same loop
 * iteration: main's 1 s sleep was armed before the task's 1 s deadline, so
 * main runs first and cancels the task; the deadline has fired too. The
 * outer cancel wins: the scope passes -ECANCELED on. */
struct racer {
    int sleep_rc, exit_rc, cancel_called;
    double at;
};

static int deadline_racer(void *arg)
{
    struct racer *r = arg;
    tl_scope s = tl_timeout_enter(1.0);
    r->sleep_rc = tl_sleep(10.0);
    r->at = tl_now();
    r->cancel_called = tl_scope_cancel_called(s);
    r->exit_rc = tl_scope_exit(s, r->sleep_rc);
    return r->exit_rc;
}

static int main_outer_cancel_races(void *arg)
{
    (void)arg;
    struct racer r = {1, 1, -1, -1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, deadline_racer, &r), 0);
    cr_expect_eq(tl_sleep(1.0), 0);
    cr_expect_eq(tl_cancel(t), 0);
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(r.sleep_rc, -ECANCELED);
    cr_expect_eq(r.at, 1.0);
    cr_expect_neq(r.cancel_called, 0); /* the deadline did fire */
    cr_expect_eq(r.exit_rc, -ECANCELED);
    cr_expect_eq(st, -ECANCELED);
    return 0;
}

Test(scope, outer_cancel_racing_inner_deadline_wins, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_outer_cancel_races, NULL), 0);
}

/* Deadline first, the outer cancel later but before the scope exits (the
 * task runs 1 s of shielded cleanup inside the expired scope). */
static int late_exit(void *arg)
{
    struct racer *r = arg;
    tl_scope s = tl_timeout_enter(1.0);
    r->sleep_rc = tl_sleep(10.0);
    tl_scope sh = tl_shield_enter();
    cr_expect_eq(tl_scope_exit(sh, tl_sleep(1.0)), 0);
    r->at = tl_now();
    r->exit_rc = tl_scope_exit(s, r->sleep_rc);
    return r->exit_rc;
}

static int main_outer_cancel_after_deadline(void *arg)
{
    (void)arg;
    struct racer r = {1, 1, -1, -1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, late_exit, &r), 0);
    cr_expect_eq(tl_sleep(1.5), 0);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_eq(r.sleep_rc, -ECANCELED);
    cr_expect_eq(r.at, 2.0);
    cr_expect_eq(r.exit_rc, -ECANCELED);
    return 0;
}

Test(scope, outer_cancel_after_deadline_still_wins, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_outer_cancel_after_deadline, NULL), 0);
}

/* ---- shields --------------------------------------------------------------- */

struct shielded {
    int shield_sleep_rc, shield_exit_rc, after_rc;
    double shield_done_at, after_at;
};

static int shielded_task(void *arg)
{
    struct shielded *s = arg;
    tl_scope sh = tl_shield_enter();
    s->shield_sleep_rc = tl_sleep(2.0);
    s->shield_done_at = tl_now();
    cr_expect_eq(tl_cancelled(), 0); /* inside the shield: not cancelled */
    s->shield_exit_rc = tl_scope_exit(sh, s->shield_sleep_rc);
    cr_expect_neq(tl_cancelled(), 0);
    s->after_rc = tl_sleep(1.0);
    s->after_at = tl_now();
    return s->after_rc;
}

static int main_shield_holds(void *arg)
{
    (void)arg;
    struct shielded s = {1, 1, 1, -1, -1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, shielded_task, &s), 0);
    cr_expect_eq(tl_sleep(0.5), 0);
    cr_expect_eq(tl_cancel(t), 0);
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(s.shield_sleep_rc, 0);
    cr_expect_eq(s.shield_done_at, 2.0);
    cr_expect_eq(s.shield_exit_rc, 0);
    cr_expect_eq(s.after_rc, -ECANCELED);
    cr_expect_eq(s.after_at, 2.0);
    cr_expect_eq(st, -ECANCELED);
    return 0;
}

Test(scope, shield_holds_and_cancel_shows_after_it, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_shield_holds, NULL), 0);
}

static int main_shield_in_timeout(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(1.0);
    tl_scope sh = tl_shield_enter();
    cr_expect_eq(tl_sleep(3.0), 0); /* the deadline passes meanwhile */
    cr_expect_eq(tl_now(), 3.0);
    cr_expect_eq(tl_scope_exit(sh, 0), 0);
    cr_expect_neq(tl_scope_cancel_called(s), 0);
    int rc = tl_sleep(1.0);
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_now(), 3.0);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    return 0;
}

Test(scope, shield_hides_an_enclosing_deadline, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_shield_in_timeout, NULL), 0);
}

struct inner_deadline {
    int sleep_rc, timeout_rc, shield_rc, after_rc;
    double at;
};

static int deadline_in_shield(void *arg)
{
    struct inner_deadline *d = arg;
    cr_expect_eq(tl_sleep(10.0), -ECANCELED); /* the task is cancelled */
    tl_scope sh = tl_shield_enter();
    tl_scope s = tl_timeout_enter(1.0);
    d->sleep_rc = tl_sleep(10.0);
    d->at = tl_now();
    d->timeout_rc = tl_scope_exit(s, d->sleep_rc);
    d->shield_rc = tl_scope_exit(sh, d->timeout_rc);
    d->after_rc = tl_yield();
    return 0;
}

static int main_deadline_in_shield(void *arg)
{
    (void)arg;
    struct inner_deadline d = {1, 1, 1, 1, -1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, deadline_in_shield, &d), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_join(t, NULL), 0);
    /* The shield hides the task's cancel, not its own inner deadline. */
    cr_expect_eq(d.sleep_rc, -ECANCELED);
    cr_expect_eq(d.at, 1.0);
    cr_expect_eq(d.timeout_rc, -ETIMEDOUT); /* inside the shield: its own */
    cr_expect_eq(d.shield_rc, -ETIMEDOUT);
    cr_expect_eq(d.after_rc, -ECANCELED);
    return 0;
}

Test(scope, deadline_inside_shield_still_fires, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_deadline_in_shield, NULL), 0);
}

/* ---- reschedule ------------------------------------------------------------- */

static int main_reschedule_later(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(1.0);
    cr_expect_eq(tl_sleep(0.5), 0);
    cr_expect_eq(tl_scope_reschedule(s, 2.5), 0); /* from now: 3.0 */
    cr_expect_eq(tl_scope_deadline(s), 3.0);
    int rc = tl_sleep(10.0);
    cr_expect_eq(tl_now(), 3.0);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    return 0;
}

Test(scope, reschedule_later, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_reschedule_later, NULL), 0);
}

static int main_reschedule_earlier(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(5.0);
    cr_expect_eq(tl_scope_reschedule_at(s, 1.25), 0);
    cr_expect_eq(tl_scope_deadline(s), 1.25);
    int rc = tl_sleep(10.0);
    cr_expect_eq(tl_now(), 1.25);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    return 0;
}

Test(scope, reschedule_earlier, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_reschedule_earlier, NULL), 0);
}

static int main_reschedule_infinity(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(1.0);
    cr_expect_eq(tl_scope_reschedule(s, INFINITY), 0);
    cr_expect(isinf(tl_scope_deadline(s)));
    cr_expect_eq(tl_sleep(100.0), 0);
    cr_expect_eq(tl_scope_cancel_called(s), 0);
    /* And back to a finite deadline. */
    cr_expect_eq(tl_scope_reschedule(s, 1.0), 0);
    cr_expect_eq(tl_scope_deadline(s), 101.0);
    int rc = tl_sleep(10.0);
    cr_expect_eq(tl_now(), 101.0);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    return 0;
}

Test(scope, reschedule_to_infinity_and_back, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_reschedule_infinity, NULL), 0);
}

static int main_reschedule_past(void *arg)
{
    (void)arg;
    cr_expect_eq(tl_sleep(2.0), 0);
    tl_scope s = tl_move_on_enter(5.0);
    cr_expect_eq(tl_scope_reschedule_at(s, 1.0), 0); /* already past */
    cr_expect_neq(tl_scope_cancel_called(s), 0);
    int rc = tl_yield();
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_scope_exit(s, rc), 0);
    cr_expect_eq(tl_now(), 2.0);
    return 0;
}

Test(scope, reschedule_into_the_past_cancels_now, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_reschedule_past, NULL), 0);
}

static int main_reschedule_refused(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(1.0);
    int rc = tl_sleep(2.0);
    /* Expired: too late to move it (asyncio's reschedule after expiry). */
    cr_expect_eq(tl_scope_reschedule(s, 10.0), -EINVAL);
    cr_expect_eq(tl_scope_reschedule_at(s, 10.0), -EINVAL);
    cr_expect_eq(tl_scope_reschedule(s, INFINITY), -EINVAL);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    /* Not a deadline scope. */
    tl_scope sh = tl_shield_enter();
    cr_expect_eq(tl_scope_reschedule(sh, 1.0), -EINVAL);
    cr_expect_eq(tl_scope_exit(sh, 0), 0);
    tl_scope cs = tl_cancel_scope_enter();
    cr_expect_eq(tl_scope_reschedule(cs, 1.0), -EINVAL);
    cr_expect_eq(tl_scope_exit(cs, 0), 0);
    /* Exited: a stale handle. */
    cr_expect_eq(tl_scope_reschedule(s, 1.0), -ESRCH);
    return 0;
}

Test(scope, reschedule_refused_when_expired_or_not_a_deadline,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_reschedule_refused, NULL), 0);
}

static int main_deadline_query(void *arg)
{
    (void)arg;
    cr_expect_eq(tl_sleep(1.0), 0);
    tl_scope a = tl_timeout_enter(2.5);
    cr_expect_eq(tl_scope_deadline(a), 3.5);
    tl_scope b = tl_move_on_enter(0.25);
    cr_expect_eq(tl_scope_deadline(b), 1.25);
    tl_scope c = tl_shield_enter();
    cr_expect(isinf(tl_scope_deadline(c)) && tl_scope_deadline(c) > 0);
    tl_scope d = tl_cancel_scope_enter();
    cr_expect(isinf(tl_scope_deadline(d)));
    cr_expect_eq(tl_scope_exit(d, 0), 0);
    cr_expect_eq(tl_scope_exit(c, 0), 0);
    cr_expect_eq(tl_scope_exit(b, 0), 0);
    cr_expect_eq(tl_scope_exit(a, 0), 0);
    cr_expect(isnan(tl_scope_deadline(a))); /* stale */
    return 0;
}

Test(scope, scope_deadline, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_deadline_query, NULL), 0);
}

/* ---- cancel scopes and tl_scope_cancel --------------------------------------- */

static int main_cancel_scope_self(void *arg)
{
    (void)arg;
    tl_scope s = tl_cancel_scope_enter();
    cr_expect_eq(tl_sleep(1.0), 0);
    cr_expect_eq(tl_scope_cancel(s), 0);
    cr_expect_neq(tl_scope_cancel_called(s), 0);
    int rc = tl_sleep(1.0);
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_now(), 1.0);
    cr_expect_eq(tl_scope_exit(s, rc), 0);
    cr_expect_eq(tl_yield(), 0); /* absorbed: nothing cancelled outside */
    /* A cancel scope that was never cancelled passes the result on. */
    s = tl_cancel_scope_enter();
    cr_expect_eq(tl_scope_exit(s, -EIO), -EIO);
    s = tl_cancel_scope_enter();
    cr_expect_eq(tl_scope_exit(s, -ECANCELED), -ECANCELED);
    return 0;
}

Test(scope, cancel_scope_cancelled_by_its_owner_exits_zero, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_scope_self, NULL), 0);
}

struct remote {
    tl_scope s;
    int ready;
    int sleep_rc, exit_rc;
    double at;
};

static int remote_target(void *arg)
{
    struct remote *r = arg;
    r->s = tl_cancel_scope_enter();
    r->ready = 1;
    r->sleep_rc = tl_sleep(100.0);
    r->at = tl_now();
    r->exit_rc = tl_scope_exit(r->s, r->sleep_rc);
    cr_expect_eq(tl_yield(), 0);
    return r->exit_rc;
}

static int main_cancel_scope_remote(void *arg)
{
    (void)arg;
    struct remote r = {.sleep_rc = 1, .exit_rc = 1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, remote_target, &r), 0);
    cr_expect_eq(tl_sleep(2.0), 0);
    cr_expect_eq(r.ready, 1);
    cr_expect_eq(tl_scope_cancel(r.s), 0); /* from another task */
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(r.sleep_rc, -ECANCELED);
    cr_expect_eq(r.at, 2.0);
    cr_expect_eq(r.exit_rc, 0);
    cr_expect_eq(st, 0);
    return 0;
}

Test(scope, cancel_scope_cancelled_by_another_task, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_scope_remote, NULL), 0);
}

static int main_scope_cancel_timeout(void *arg)
{
    (void)arg;
    /* tl_scope_cancel on a timeout scope: its exit reports -ETIMEDOUT (the
     * header: a cancelled timeout scope absorbs -ECANCELED as -ETIMEDOUT). */
    tl_scope s = tl_timeout_enter(10.0);
    cr_expect_eq(tl_scope_cancel(s), 0);
    int rc = tl_yield();
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    s = tl_move_on_enter(10.0);
    cr_expect_eq(tl_scope_cancel(s), 0);
    cr_expect_eq(tl_scope_exit(s, tl_yield()), 0);
    /* The cancelled deadline timer is gone. */
    cr_expect_eq(tl_sleep(20.0), 0);
    cr_expect_eq(tl_now(), 20.0);
    return 0;
}

Test(scope, scope_cancel_on_deadline_scopes, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_scope_cancel_timeout, NULL), 0);
}

/* In a debug build, a cancelled scope whose body returns another error is
 * named ("a callee replaced -ECANCELED"); the error passes through. */
static int main_replaced(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(1.0);
    int rc = tl_sleep(5.0);
    (void)rc;
    printf("verdict=%d\n", tl_scope_exit(s, -EIO));
    return 0;
}

static void child_replaced(void *arg)
{
    (void)arg;
    run_virtual(main_replaced, NULL);
}

Test(scope, replaced_ecanceled_passes_through_and_is_named_in_debug,
     .timeout = 10)
{
    char out[4096];
    int st = run_child(child_replaced, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    char want[32];
    snprintf(want, sizeof want, "verdict=%d\n", -EIO);
    TL_EXPECT_OUT(out, want);
#ifdef NDEBUG
    TL_EXPECT_NOT_OUT(out, "tulip:");
#else
    TL_EXPECT_OUT(out, "a callee replaced -ECANCELED");
#endif
}

/* ---- wait_for --------------------------------------------------------------- */

static int sleep_then_ret(void *arg)
{
    int rc = tl_sleep(1.0);
    return rc < 0 ? rc : (int)(intptr_t)arg;
}

static int sleep_then_fail(void *arg)
{
    (void)arg;
    int rc = tl_sleep(1.0);
    return rc < 0 ? rc : -EPIPE;
}

static int main_wait_for(void *arg)
{
    (void)arg;
    cr_expect_eq(tl_wait_for(TL_CALL(sleep_then_ret, (intptr_t)7), 2.0), 7);
    cr_expect_eq(tl_now(), 1.0);
    cr_expect_eq(tl_wait_for(TL_CALL(sleep_then_fail, NULL), 2.0), -EPIPE);
    cr_expect_eq(tl_now(), 2.0);
    cr_expect_eq(tl_wait_for(TL_CALL(sleep_then_ret, (intptr_t)7), 0.5),
                 -ETIMEDOUT);
    cr_expect_eq(tl_now(), 2.5);
    /* The call runs in the calling task. */
    cr_expect_eq(tl_cancelled(), 0);
    cr_expect_eq(tl_wait_for((tl_call){NULL, NULL, NULL}, 1.0), -EINVAL);
    return 0;
}

Test(scope, wait_for_result_and_timeout, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_wait_for, NULL), 0);
}

static int waits_for(void *arg)
{
    int *out = arg;
    *out = tl_wait_for(TL_CALL(sleep_then_ret, (intptr_t)7), 5.0);
    return 0;
}

static int main_wait_for_cancelled(void *arg)
{
    (void)arg;
    int rc = 1;
    tl_task t;
    cr_expect_eq(tl_spawn(&t, waits_for, &rc), 0);
    cr_expect_eq(tl_sleep(0.5), 0);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_eq(rc, -ECANCELED); /* not -ETIMEDOUT: not its deadline */
    cr_expect_eq(tl_now(), 0.5);
    return 0;
}

Test(scope, wait_for_in_cancelled_task_is_ecanceled, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_wait_for_cancelled, NULL), 0);
}

/* ---- block macros ------------------------------------------------------------- */

static int main_with_timeout(void *arg)
{
    (void)arg;
    int rc = 99;
    TL_WITH_TIMEOUT(1.0, &rc)
    {
        cr_expect_eq(rc, 0); /* set to 0 on entry */
        rc = tl_sleep(10.0);
    }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_now(), 1.0);
    TL_WITH_TIMEOUT(1.0, &rc) { rc = 12; }
    cr_expect_eq(rc, 12);
    TL_WITH_MOVE_ON(1.0, &rc) { rc = tl_sleep(10.0); }
    cr_expect_eq(rc, 0);
    cr_expect_eq(tl_now(), 2.0);
    return 0;
}

Test(scope, with_timeout_and_move_on_macros, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_with_timeout, NULL), 0);
}

static int shield_macro_task(void *arg)
{
    int *out = arg;
    int rc;
    TL_WITH_SHIELD(&rc) { rc = tl_sleep(2.0); }
    out[0] = rc;
    out[1] = tl_yield();
    return 0;
}

static int main_with_shield(void *arg)
{
    (void)arg;
    int out[2] = {1, 1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, shield_macro_task, out), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_eq(out[0], 0);
    cr_expect_eq(out[1], -ECANCELED);
    cr_expect_eq(tl_now(), 2.0);
    return 0;
}

Test(scope, with_shield_macro, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_with_shield, NULL), 0);
}

/* Early exits from a block. These run in a forked child with its output
 * captured, so that "no diagnostics" is checked too; they use a plain
 * CHECK (no Criterion in the child) and print "failures=N". */
static int failures;
#define CHECK(c)                                                          \
    do {                                                                  \
        if (!(c)) {                                                       \
            printf("check failed at line %d: %s\n", __LINE__, #c);       \
            failures++;                                                   \
        }                                                                 \
    } while (0)

static int leave_by_return(int *verdict)
{
    TL_WITH_TIMEOUT(5.0, verdict)
    {
        *verdict = 3;
        return 33;
    }
    return -1;
}

static int leave_by_break(int *verdict)
{
    TL_WITH_TIMEOUT(5.0, verdict)
    {
        *verdict = 4;
        break;
        *verdict = 5;
    }
    return *verdict;
}

static int leave_by_goto(int *verdict)
{
    TL_WITH_TIMEOUT(5.0, verdict)
    {
        *verdict = 6;
        goto out;
    }
    return -1;
out:
    return *verdict;
}

/* After the early exit the scope is gone: its 5 s deadline must not cancel
 * anything later, and the next scope operations work. */
static void after_early_exit(void)
{
    CHECK(tl_cancelled() == 0);
    tl_scope s = tl_timeout_enter(1.0);
    CHECK(s.rec != NULL);
    CHECK(tl_scope_deadline(s) == 1.0);
    CHECK(tl_scope_exit(s, 0) == 0);
    int rc = tl_sleep(10.0); /* past the abandoned block's 5 s */
    CHECK(rc == 0);
    CHECK(tl_now() == 10.0);
}

static int main_early(void *arg)
{
    int how = (int)(intptr_t)arg, v = 99;
    if (how == 0) {
        CHECK(leave_by_return(&v) == 33);
        CHECK(v == 3);
    } else if (how == 1) {
        CHECK(leave_by_break(&v) == 4);
        CHECK(v == 4);
    } else {
        CHECK(leave_by_goto(&v) == 6);
        CHECK(v == 6);
    }
    after_early_exit();
    return failures;
}

static void check_early(intptr_t how)
{
    char out[4096];
    int st = run_virtual_child(main_early, (void *)how, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_str_eq(out, "rc=0\n"); /* no failed checks, no diagnostics */
}

Test(scope, return_out_of_with_timeout_exits_the_scope, .timeout = 10)
{
    check_early(0);
}

Test(scope, break_out_of_with_timeout_exits_the_scope, .timeout = 10)
{
    check_early(1);
}

Test(scope, goto_out_of_with_timeout_exits_the_scope, .timeout = 10)
{
    check_early(2);
}

/* ---- groups inside deadline scopes ------------------------------------------ */

struct kid {
    double secs;
    int sleep_rc;
    double at;
};

static int kid(void *arg)
{
    struct kid *k = arg;
    k->sleep_rc = tl_sleep(k->secs);
    k->at = tl_now();
    return k->sleep_rc;
}

static int main_group_in_timeout(void *arg)
{
    int body_sleeps = (int)(intptr_t)arg;
    struct kid k[2] = {{10.0, 1, -1}, {20.0, 1, -1}};
    int st[2] = {111, 111};
    tl_scope s = tl_timeout_enter(1.0);
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    for (int i = 0; i < 2; i++)
        cr_expect_eq(tl_group_spawn_ex(g, NULL, kid, &k[i], &st[i]), 0);
    int body = 0;
    if (body_sleeps) {
        body = tl_sleep(10.0);
        cr_expect_eq(body, -ECANCELED);
        cr_expect_eq(tl_now(), 1.0);
    }
    tl_errors errs;
    int grc = tl_group_wait(g, body, &errs);
    cr_expect_eq(grc, -ECANCELED); /* an enclosing scope was cancelled */
    cr_expect_eq(errs.count, 0u);
    tl_errors_free(&errs);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(k[i].sleep_rc, -ECANCELED);
        cr_expect_eq(k[i].at, 1.0);
        cr_expect_eq(st[i], -ECANCELED);
    }
    cr_expect_eq(tl_now(), 1.0);
    cr_expect_eq(tl_scope_exit(s, grc), -ETIMEDOUT);
    return 0;
}

Test(scope, deadline_cancels_group_children_while_body_waits, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_group_in_timeout, (void *)(intptr_t)0), 0);
}

Test(scope, deadline_cancels_group_children_and_body, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_group_in_timeout, (void *)(intptr_t)1), 0);
}

/* A group child that fails while the deadline unwinds: the error beats the
 * cancellation, and the timeout scope passes it on unchanged. */
static int fails_on_cancel(void *arg)
{
    (void)arg;
    int rc = tl_sleep(10.0);
    return rc == -ECANCELED ? tl_fail(-EIO, "flush failed") : 0;
}

static int main_group_error_in_timeout(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(1.0);
    tl_group g;
    tl_group_enter(&g);
    tl_group_spawn(g, fails_on_cancel, NULL);
    int grc = tl_group_wait(g, 0, NULL);
    printf("group=%d scope=%d\n", grc, tl_scope_exit(s, grc));
    return 0;
}

Test(scope, group_error_beats_the_deadline, .timeout = 10)
{
    /* In a child (no Criterion there): debug builds name the replaced
     * -ECANCELED on stderr. */
    char out[4096], want[64];
    int st =
        run_virtual_child(main_group_error_in_timeout, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    snprintf(want, sizeof want, "group=%d scope=%d\nrc=0\n", -EIO, -EIO);
    TL_EXPECT_OUT(out, want);
}

/* A timeout scope opened inside a group's body: its deadline cancels the
 * body only, not the group's children (they live outside it). */
static int main_timeout_in_group(void *arg)
{
    (void)arg;
    struct kid k = {3.0, 1, -1};
    int st = 111;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(tl_group_spawn_ex(g, NULL, kid, &k, &st), 0);
    tl_scope s = tl_timeout_enter(1.0);
    int rc = tl_sleep(10.0);
    cr_expect_eq(tl_now(), 1.0);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    cr_expect_eq(tl_group_wait(g, 0, NULL), 0);
    cr_expect_eq(k.sleep_rc, 0);
    cr_expect_eq(st, 0);
    cr_expect_eq(tl_now(), 3.0);
    return 0;
}

Test(scope, deadline_inside_group_body_spares_children, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_timeout_in_group, NULL), 0);
}

/* ---- a deadline that passed while the task ran --------------------------- */

/* The task runs past its deadline without suspending, so the deadline's
 * timer has not fired yet: the next checkpoint must still see it (real
 * clock). Two scopes: one asked first with tl_cancelled(), one met first
 * by a suspending call. */
static void spin_until(double loop_time)
{
    while (tl_now() <= loop_time) {}
}

static int main_deadline_passed_while_running(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(0.005);
    spin_until(tl_scope_deadline(s));
    cr_expect_neq(tl_cancelled(), 0, "tl_cancelled() missed the deadline");
    int rc = tl_yield();
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);

    s = tl_move_on_enter(0.005);
    spin_until(tl_scope_deadline(s));
    rc = tl_sleep(10.0); /* must not sleep */
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_scope_exit(s, rc), 0);

    /* Behind a shield the outer deadline stays outside. */
    s = tl_timeout_enter(0.005);
    tl_scope sh = tl_shield_enter();
    spin_until(tl_scope_deadline(s));
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_scope_exit(sh, 0), 0);
    rc = tl_yield();
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    cr_expect_eq(tl_yield(), 0);
    return 0;
}

Test(scope, deadline_passed_while_running_seen_at_next_checkpoint,
     .timeout = 10)
{
    cr_assert_eq(tl_run(main_deadline_passed_while_running, NULL), 0);
}

/* On the virtual clock time does not move while a task runs, however
 * long it runs in real time: the check must read the loop's clock. */
static int main_virtual_deadline_waits_for_time(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(0.001);
    double start = tl_test_now_s();
    while (tl_test_now_s() < start + 0.02) {}
    cr_expect_eq(tl_cancelled(), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_now(), 0.0);
    int rc = tl_sleep(1.0);
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_now(), 0.001);
    cr_expect_eq(tl_scope_exit(s, rc), -ETIMEDOUT);
    return 0;
}

Test(scope, virtual_deadline_ignores_real_time_spent_running, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_virtual_deadline_waits_for_time, NULL), 0);
}
