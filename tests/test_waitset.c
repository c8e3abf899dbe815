/* Wait sets (as_completed) and tl_wait (asyncio.wait): completion order,
 * overall timeouts, ownership (given tasks are never cancelled and go back
 * unjoined; spawned calls are cancelled and joined at close), the seed's
 * race, cancellation of the waiter, failures, and tl_wait's three modes.
 *
 * Every timing expectation uses the virtual clock, so times are exact.
 */
#include "helpers.h"

#include <math.h>

/* Virtual times are exact in ns; differences of doubles are not. */
static int near(double a, double b) { return fabs(a - b) < 1e-9; }

/* A fetch that takes `delay` seconds, records its cleanup, and returns
 * `rc` (or -ECANCELED when cancelled). */
struct fetch {
    double delay;
    int rc;
    int cleaned;   /* its cleanup ran */
    int finished;  /* ran to the end */
};

static int fetch(void *arg)
{
    struct fetch *f = arg;
    int rc = tl_sleep(f->delay);
    f->cleaned = 1;
    if (rc < 0) return rc;
    f->finished = 1;
    if (f->rc < 0) return tl_fail(f->rc, "fetch failed after %.1f s", f->delay);
    return f->rc;
}

/* ---- completion order ----------------------------------------------------- */

static int main_order(void *arg)
{
    (void)arg;
    struct fetch f[3] = {{0.3, 30, 0, 0}, {0.1, 10, 0, 0}, {0.2, 20, 0, 0}};
    tl_waitset *ws;
    cr_expect_eq(tl_waitset_new(&ws), 0);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(tl_waitset_add_call(ws, TL_CALL_NAMED(fetch, &f[i],
                                                            "fetch"),
                                         &f[i]), 0);
    cr_expect_eq(tl_waitset_count(ws), 3u);
    double t0 = tl_now();
    const int order[3] = {1, 2, 0};
    for (int k = 0; k < 3; k++) {
        tl_waitset_item it;
        cr_expect_eq(tl_waitset_next(ws, INFINITY, &it), 0);
        cr_expect_eq(it.tag, &f[order[k]]);
        cr_expect_eq(it.status, f[order[k]].rc);
        cr_expect_str_eq(it.name, "fetch");
        cr_expect_str_eq(it.message, "");
        cr_expect(near(tl_now() - t0, f[order[k]].delay));
    }
    tl_waitset_item it;
    cr_expect_eq(tl_waitset_next(ws, INFINITY, &it), TL_EOF);
    cr_expect_eq(tl_waitset_count(ws), 0u);
    cr_expect_eq(tl_waitset_close(ws), 0);
    return 0;
}

Test(waitset, yields_in_completion_order, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_order, NULL), 0);
}

/* ---- overall timeout; close cancels and joins the rest ------------------- */

static int main_overall_timeout(void *arg)
{
    (void)arg;
    struct fetch f[3] = {{0.1, 1, 0, 0}, {0.2, 2, 0, 0}, {0.4, 3, 0, 0}};
    tl_waitset *ws;
    cr_expect_eq(tl_waitset_new(&ws), 0);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(tl_waitset_add_call(ws, TL_CALL(fetch, &f[i]), &f[i]), 0);
    double end = tl_now() + 0.25;
    tl_waitset_item it;
    int got = 0, rc;
    while ((rc = tl_waitset_next_until(ws, end, &it)) == 0) got++;
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(got, 2);
    cr_expect(near(tl_now(), end));
    /* The set is unchanged by the timeout: the slow one is still in it. */
    cr_expect_eq(tl_waitset_count(ws), 1u);
    cr_expect_eq(f[2].cleaned, 0);
    cr_expect_eq(tl_waitset_close(ws), 0);
    /* Closed: the loser was cancelled and joined, at once. */
    cr_expect_eq(f[2].cleaned, 1);
    cr_expect_eq(f[2].finished, 0);
    cr_expect(near(tl_now(), end));
    return 0;
}

Test(waitset, overall_timeout_then_close, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_overall_timeout, NULL), 0);
}

/* ---- the seed's race ------------------------------------------------------ */

static int race(struct fetch *f, int n, int *winner)
{
    tl_waitset *ws;
    int rc = tl_waitset_new(&ws);
    if (rc < 0) return rc;
    for (int i = 0; i < n; i++) {
        rc = tl_waitset_add_call(ws, TL_CALL(fetch, &f[i]), &f[i]);
        if (rc < 0) break;
    }
    tl_waitset_item it;
    *winner = -1;
    while (rc == 0 && (rc = tl_waitset_next(ws, INFINITY, &it)) == 0)
        if (it.status >= 0) {
            *winner = (int)((struct fetch *)it.tag - f);
            break;
        }
    int crc = tl_waitset_close(ws); /* the losers are cancelled and joined */
    return rc < 0 && rc != TL_EOF ? rc : crc;
}

static int main_race(void *arg)
{
    (void)arg;
    /* The fastest one fails: the race goes on to the next. */
    struct fetch f[4] = {{0.3, 3, 0, 0}, {0.1, -EIO, 0, 0},
                         {0.2, 2, 0, 0}, {0.5, 5, 0, 0}};
    int winner;
    cr_expect_eq(race(f, 4, &winner), 0);
    cr_expect_eq(winner, 2);
    cr_expect(near(tl_now(), 0.2));
    /* Nothing left running: every loser ran its cleanup, cancelled. */
    for (int i = 0; i < 4; i++) cr_expect_eq(f[i].cleaned, 1);
    cr_expect_eq(f[0].finished, 0);
    cr_expect_eq(f[3].finished, 0);
    cr_expect_eq(f[1].finished, 1);
    return 0;
}

Test(waitset, race_leaves_nothing_running, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_race, NULL), 0);
}

/* ---- given tasks: never cancelled, back to the caller unjoined ----------- */

static int main_given(void *arg)
{
    (void)arg;
    struct fetch f[3] = {{0.1, 1, 0, 0}, {0.2, 2, 0, 0}, {0.5, 3, 0, 0}};
    tl_task t[3];
    for (int i = 0; i < 3; i++) cr_expect_eq(tl_spawn(&t[i], fetch, &f[i]), 0);
    tl_waitset *ws;
    cr_expect_eq(tl_waitset_new(&ws), 0);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(tl_waitset_add_task(ws, t[i], &f[i]), 0);
    /* The set is their joiner now. */
    cr_expect_eq(tl_join(t[0], NULL), -EINVAL);
    cr_expect_eq(tl_waitset_add_task(ws, t[0], NULL), -EINVAL);
    tl_waitset_item it;
    cr_expect_eq(tl_waitset_next(ws, INFINITY, &it), 0);
    cr_expect_eq(it.tag, &f[0]);
    cr_expect_eq(it.status, 1);
    /* Yielded means joined: the handle is stale. */
    cr_expect_eq(tl_join(t[0], NULL), -ESRCH);
    cr_expect_eq(tl_sleep(0.25), 0); /* t[1] finished, not yielded */
    cr_expect_eq(tl_waitset_close(ws), 0);
    cr_expect(near(tl_now(), 0.35));
    /* Closing cancelled nothing: t[2] still runs; both join normally. */
    cr_expect_eq(f[2].cleaned, 0);
    int st = 0;
    cr_expect_eq(tl_join(t[1], &st), 0);
    cr_expect_eq(st, 2);
    cr_expect_eq(tl_join(t[2], &st), 0);
    cr_expect_eq(st, 3);
    cr_expect_eq(f[2].finished, 1);
    cr_expect(near(tl_now(), 0.5));
    return 0;
}

Test(waitset, given_tasks_go_back_unjoined, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_given, NULL), 0);
}

/* A task that already finished is yielded first, in the order added. */
static int quick(void *arg) { return (int)(intptr_t)arg; }

static int main_already_done(void *arg)
{
    (void)arg;
    struct fetch slow = {0.1, 9, 0, 0};
    tl_task a, b;
    cr_expect_eq(tl_spawn(&a, quick, (void *)7), 0);
    cr_expect_eq(tl_spawn(&b, quick, (void *)8), 0);
    cr_expect_eq(tl_yield(), 0); /* both finished */
    tl_waitset *ws;
    cr_expect_eq(tl_waitset_new(&ws), 0);
    cr_expect_eq(tl_waitset_add_call(ws, TL_CALL(fetch, &slow), "slow"), 0);
    cr_expect_eq(tl_waitset_add_task(ws, b, "b"), 0);
    cr_expect_eq(tl_waitset_add_task(ws, a, "a"), 0);
    tl_waitset_item it;
    /* timeout 0: just look. */
    cr_expect_eq(tl_waitset_next(ws, 0, &it), 0);
    cr_expect_str_eq(it.tag, "b");
    cr_expect_eq(it.status, 8);
    cr_expect_eq(tl_waitset_next(ws, 0, &it), 0);
    cr_expect_str_eq(it.tag, "a");
    cr_expect_eq(tl_waitset_next(ws, 0, &it), -ETIMEDOUT);
    cr_expect_eq(tl_waitset_next(ws, 0.05, &it), -ETIMEDOUT);
    cr_expect(near(tl_now(), 0.05));
    cr_expect_eq(tl_waitset_next(ws, 1.0, &it), 0);
    cr_expect_str_eq(it.tag, "slow");
    cr_expect(near(tl_now(), 0.1));
    cr_expect_eq(tl_waitset_close(ws), 0);
    return 0;
}

Test(waitset, finished_tasks_first_and_polling, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_already_done, NULL), 0);
}

/* ---- failures reach the item ----------------------------------------------- */

static int main_failure(void *arg)
{
    (void)arg;
    struct fetch f = {0.1, -ECONNREFUSED, 0, 0};
    tl_waitset *ws;
    cr_expect_eq(tl_waitset_new(&ws), 0);
    cr_expect_eq(tl_waitset_add_call(ws, TL_CALL_NAMED(fetch, &f, "fetch b"),
                                     NULL), 0);
    tl_waitset_item it;
    cr_expect_eq(tl_waitset_next(ws, INFINITY, &it), 0);
    cr_expect_eq(it.status, -ECONNREFUSED);
    cr_expect_str_eq(it.name, "fetch b");
    cr_expect_str_eq(it.message, "fetch failed after 0.1 s");
    cr_expect_eq(tl_waitset_close(ws), 0);
    return 0;
}

Test(waitset, failure_status_and_message, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_failure, NULL), 0);
}

/* A spawned call that failed and was never yielded is reported at close
 * (invariant 7); one cancelled by the close is not. */
static int main_unseen_failure(void *arg)
{
    (void)arg;
    struct fetch f[2] = {{0.1, -EIO, 0, 0}, {5.0, 0, 0, 0}};
    tl_waitset *ws;
    if (tl_waitset_new(&ws) < 0) return 1;
    if (tl_waitset_add_call(ws, TL_CALL_NAMED(fetch, &f[0], "fetch a"),
                            NULL) < 0 ||
        tl_waitset_add_call(ws, TL_CALL_NAMED(fetch, &f[1], "fetch z"),
                            NULL) < 0)
        return 1;
    if (tl_sleep(0.2) < 0) return 1;
    return tl_waitset_close(ws);
}

Test(waitset, close_reports_unseen_failure, .timeout = 10)
{
    char out[4096];
    int st = run_virtual_child(main_unseen_failure, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "rc=0");
    TL_EXPECT_OUT(out, "task 'fetch a' failed with -EIO");
    TL_EXPECT_NOT_OUT(out, "fetch z");
}

/* ---- cancelling the waiter ------------------------------------------------- */

struct waiter_arg {
    tl_waitset *ws;
    int rc;
};

static int next_waiter(void *arg)
{
    struct waiter_arg *w = arg;
    tl_waitset_item it;
    w->rc = tl_waitset_next(w->ws, INFINITY, &it);
    return 0;
}

static int main_cancel_waiter(void *arg)
{
    (void)arg;
    struct fetch f[2] = {{0.2, 1, 0, 0}, {0.3, 2, 0, 0}};
    tl_task given;
    cr_expect_eq(tl_spawn(&given, fetch, &f[1]), 0);
    tl_waitset *ws;
    cr_expect_eq(tl_waitset_new(&ws), 0);
    cr_expect_eq(tl_waitset_add_call(ws, TL_CALL(fetch, &f[0]), NULL), 0);
    cr_expect_eq(tl_waitset_add_task(ws, given, NULL), 0);
    struct waiter_arg w = {ws, 1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, next_waiter, &w), 0);
    cr_expect_eq(tl_sleep(0.1), 0);
    /* A second task may not wait on the same set meanwhile. */
    tl_waitset_item it;
    cr_expect_eq(tl_waitset_next(ws, INFINITY, &it), -EBUSY);
    cr_expect_eq(tl_waitset_close(ws), -EBUSY);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_eq(w.rc, -ECANCELED);
    cr_expect(near(tl_now(), 0.1));
    /* The members were not cancelled: both are still there. */
    cr_expect_eq(tl_waitset_count(ws), 2u);
    cr_expect_eq(tl_waitset_next(ws, INFINITY, &it), 0);
    cr_expect_eq(it.status, 1);
    cr_expect(near(tl_now(), 0.2));
    cr_expect_eq(tl_waitset_next(ws, INFINITY, &it), 0);
    cr_expect_eq(it.status, 2);
    cr_expect_eq(f[1].finished, 1);
    cr_expect_eq(tl_waitset_close(ws), 0);
    return 0;
}

Test(waitset, cancelled_waiter_cancels_no_member, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_waiter, NULL), 0);
}

/* A cancelled caller closing the set still waits for its calls (their
 * cleanup may touch the caller's memory). */
static int closer(void *arg)
{
    struct fetch *f = arg;
    tl_waitset *ws;
    cr_expect_eq(tl_waitset_new(&ws), 0);
    cr_expect_eq(tl_waitset_add_call(ws, TL_CALL(fetch, f), NULL), 0);
    tl_waitset_item it;
    int rc = tl_waitset_next(ws, INFINITY, &it);
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_waitset_close(ws), 0);
    cr_expect_eq(f->cleaned, 1); /* joined before close returned */
    return rc;
}

static int main_cancelled_closer(void *arg)
{
    (void)arg;
    struct fetch f = {1.0, 0, 0, 0};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, closer, &f), 0);
    cr_expect_eq(tl_sleep(0.1), 0);
    cr_expect_eq(tl_cancel(t), 0);
    int st = 0;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(st, -ECANCELED);
    cr_expect_eq(f.finished, 0);
    return 0;
}

Test(waitset, cancelled_closer_still_joins_calls, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancelled_closer, NULL), 0);
}

static int main_misuse(void *arg)
{
    (void)arg;
    tl_waitset *ws;
    cr_expect_eq(tl_waitset_new(&ws), 0);
    cr_expect_eq(tl_waitset_add_task(ws, tl_current(), NULL), -EDEADLK);
    cr_expect_eq(tl_waitset_add_call(ws, (tl_call){0}, NULL), -EINVAL);
    cr_expect_eq(tl_waitset_add_task(ws, (tl_task){0}, NULL), -ESRCH);
    tl_waitset_item it;
    cr_expect_eq(tl_waitset_next(ws, INFINITY, &it), TL_EOF);
    cr_expect_eq(tl_waitset_next(ws, INFINITY, NULL), -EINVAL);
    cr_expect_eq(tl_waitset_close(ws), 0);
    cr_expect_eq(tl_waitset_close(NULL), 0);
    cr_expect_eq(tl_waitset_count(NULL), 0u);
    return 0;
}

Test(waitset, misuse, .timeout = 10)
{
    cr_assert_eq(tl_waitset_new(&(tl_waitset *){NULL}), TL_ENOTASK);
    cr_assert_eq(run_virtual(main_misuse, NULL), 0);
}

/* ---- tl_wait ------------------------------------------------------------------ */

struct wait_case {
    int mode;
    double timeout;
    int expect_rc;
    double expect_time;
    int expect_flags[3];
};

static int run_wait_case(struct wait_case *c, struct fetch *f)
{
    tl_task t[3];
    for (int i = 0; i < 3; i++) cr_expect_eq(tl_spawn(&t[i], fetch, &f[i]), 0);
    int flags[3] = {-1, -1, -1};
    double t0 = tl_now();
    int rc = tl_wait(3, t, c->mode, c->timeout, flags);
    cr_expect_eq(rc, c->expect_rc, "mode %d: rc %d", c->mode, rc);
    cr_expect(near(tl_now() - t0, c->expect_time), "mode %d: at %f",
              c->mode, tl_now() - t0);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(flags[i], c->expect_flags[i], "mode %d: flag %d",
                     c->mode, i);
    /* tl_wait neither cancels nor joins: every task finishes and joins. */
    for (int i = 0; i < 3; i++) {
        int st = 0;
        cr_expect_eq(tl_join(t[i], &st), 0);
        cr_expect_eq(f[i].finished, 1);
    }
    return 0;
}

static int main_wait_modes(void *arg)
{
    (void)arg;
    struct wait_case cases[] = {
        {TL_WAIT_FIRST_COMPLETED, INFINITY, 1, 0.1, {0, 1, 0}},
        {TL_WAIT_ALL_COMPLETED, INFINITY, 3, 0.3, {1, 1, 1}},
        {TL_WAIT_FIRST_EXCEPTION, INFINITY, 2, 0.2, {0, 1, 1}},
        {TL_WAIT_ALL_COMPLETED, 0.15, 1, 0.15, {0, 1, 0}},
        {TL_WAIT_FIRST_COMPLETED, 0.05, 0, 0.05, {0, 0, 0}},
        {TL_WAIT_FIRST_COMPLETED, 0, 0, 0, {0, 0, 0}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        /* b is fastest, c fails at 0.2, a is slowest. */
        struct fetch f[3] = {{0.3, 1, 0, 0}, {0.1, 2, 0, 0},
                             {0.2, -EIO, 0, 0}};
        run_wait_case(&cases[k], f);
    }
    return 0;
}

Test(wait, three_modes_and_timeouts, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_wait_modes, NULL), 0);
}

/* FIRST_EXCEPTION: a task that was cancelled is not a failure; with no
 * failure it returns when all are done. */
static int main_wait_cancelled_not_exception(void *arg)
{
    (void)arg;
    struct fetch f[2] = {{0.3, 1, 0, 0}, {0.2, 2, 0, 0}};
    tl_task t[2];
    for (int i = 0; i < 2; i++) cr_expect_eq(tl_spawn(&t[i], fetch, &f[i]), 0);
    cr_expect_eq(tl_sleep(0.1), 0);
    cr_expect_eq(tl_cancel(t[0]), 0); /* ends with -ECANCELED now */
    int flags[2];
    cr_expect_eq(tl_wait(2, t, TL_WAIT_FIRST_EXCEPTION, INFINITY, flags), 2);
    cr_expect(near(tl_now(), 0.2));
    int st;
    cr_expect_eq(tl_join(t[0], &st), 0);
    cr_expect_eq(st, -ECANCELED);
    cr_expect_eq(tl_join(t[1], &st), 0);
    cr_expect_eq(st, 2);
    return 0;
}

Test(wait, cancelled_task_is_not_an_exception, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_wait_cancelled_not_exception, NULL), 0);
}

struct wait_waiter {
    tl_task *t;
    int rc;
    int flags[2];
};

static int wait_waiter(void *arg)
{
    struct wait_waiter *w = arg;
    w->rc = tl_wait(2, w->t, TL_WAIT_ALL_COMPLETED, INFINITY, w->flags);
    return 0;
}

static int main_wait_cancel(void *arg)
{
    (void)arg;
    struct fetch f[2] = {{0.1, 1, 0, 0}, {0.3, 2, 0, 0}};
    tl_task t[2];
    for (int i = 0; i < 2; i++) cr_expect_eq(tl_spawn(&t[i], fetch, &f[i]), 0);
    struct wait_waiter w = {t, 1, {-1, -1}};
    tl_task wt;
    cr_expect_eq(tl_spawn(&wt, wait_waiter, &w), 0);
    cr_expect_eq(tl_sleep(0.2), 0);
    cr_expect_eq(tl_cancel(wt), 0);
    cr_expect_eq(tl_join(wt, NULL), 0);
    cr_expect_eq(w.rc, -ECANCELED);
    cr_expect_eq(w.flags[0], 1);
    cr_expect_eq(w.flags[1], 0);
    /* The waited-on tasks are untouched by the waiter's cancel. */
    int st;
    cr_expect_eq(tl_join(t[1], &st), 0);
    cr_expect_eq(st, 2);
    cr_expect_eq(tl_join(t[0], &st), 0);
    cr_expect(near(tl_now(), 0.3));
    return 0;
}

Test(wait, cancelled_waiter, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_wait_cancel, NULL), 0);
}

static int main_wait_misuse(void *arg)
{
    (void)arg;
    tl_task t;
    cr_expect_eq(tl_spawn(&t, quick, (void *)1), 0);
    cr_expect_eq(tl_wait(1, &t, 0, INFINITY, NULL), -EINVAL);
    cr_expect_eq(tl_wait(1, NULL, TL_WAIT_ALL_COMPLETED, INFINITY, NULL),
                 -EINVAL);
    cr_expect_eq(tl_wait(0, NULL, TL_WAIT_ALL_COMPLETED, INFINITY, NULL), 0);
    /* The same task twice; no flags array. */
    tl_task two[2] = {t, t};
    cr_expect_eq(tl_wait(2, two, TL_WAIT_ALL_COMPLETED, INFINITY, NULL), 2);
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_eq(tl_wait(1, &t, TL_WAIT_ALL_COMPLETED, INFINITY, NULL),
                 -ESRCH);
    return 0;
}

Test(wait, misuse, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_wait_misuse, NULL), 0);
}

/* ---- time arguments ----------------------------------------------------------- */

/* NaN is -EINVAL (nothing waited, the set unchanged); a negative timeout
 * or a past deadline only looks. */
static int main_nan_timeouts(void *arg)
{
    (void)arg;
    struct fetch f = {0.5, 5, 0, 0};
    tl_waitset *ws;
    cr_expect_eq(tl_waitset_new(&ws), 0);
    cr_expect_eq(tl_waitset_add_call(ws, TL_CALL(fetch, &f), &f), 0);
    tl_waitset_item it;
    cr_expect_eq(tl_waitset_next(ws, NAN, &it), -EINVAL);
    cr_expect_eq(tl_waitset_next_until(ws, NAN, &it), -EINVAL);
    cr_expect_eq(tl_waitset_next(ws, -1.0, &it), -ETIMEDOUT);
    cr_expect_eq(tl_waitset_next(ws, -INFINITY, &it), -ETIMEDOUT);
    cr_expect_eq(tl_waitset_next_until(ws, -INFINITY, &it), -ETIMEDOUT);
    cr_expect_eq(tl_now(), 0.0);
    cr_expect_eq(tl_waitset_count(ws), 1u);

    tl_task t;
    cr_expect_eq(tl_spawn(&t, quick, (void *)1), 0);
    cr_expect_eq(tl_wait(1, &t, TL_WAIT_ALL_COMPLETED, NAN, NULL), -EINVAL);
    cr_expect_eq(tl_wait(1, &t, TL_WAIT_ALL_COMPLETED, -2.0, NULL), 0);
    cr_expect_eq(tl_wait(1, &t, TL_WAIT_ALL_COMPLETED, INFINITY, NULL), 1);
    cr_expect_eq(tl_join(t, NULL), 0);

    cr_expect_eq(tl_waitset_next(ws, INFINITY, &it), 0);
    cr_expect_eq(it.status, 5);
    cr_expect(near(tl_now(), 0.5));
    cr_expect_eq(tl_waitset_close(ws), 0);
    return 0;
}

Test(waitset, nan_timeouts_are_refused, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_nan_timeouts, NULL), 0);
}

/* ---- the rule: a member that finished first is yielded --------------------- */

/* The waiter W is woken by the member's finish, and in the same loop
 * iteration (after the member ran) C cancels W: the member is W's result;
 * the cancel shows at W's next call. Spawn order W, M, C makes the FIFO
 * order of that iteration M, C, W. */
struct ws_race {
    tl_waitset *ws;
    tl_task waiter, member;
    int rc, next_rc, status;
};

static int ws_race_waiter(void *arg)
{
    struct ws_race *r = arg;
    tl_waitset_item it;
    r->rc = tl_waitset_next(r->ws, INFINITY, &it);
    r->status = it.status;
    r->next_rc = tl_yield();
    return 0;
}

static int ws_race_member(void *arg)
{
    (void)arg;
    if (tl_yield() < 0) return -ECANCELED;
    return 42;
}

static int ws_race_canceller(void *arg)
{
    struct ws_race *r = arg;
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_cancel(r->waiter), 0);
    return 0;
}

static int main_ws_completed_wins(void *arg)
{
    (void)arg;
    struct ws_race r = {.rc = 1, .next_rc = 1};
    cr_expect_eq(tl_waitset_new(&r.ws), 0);
    tl_task c;
    cr_expect_eq(tl_spawn(&r.waiter, ws_race_waiter, &r), 0);
    cr_expect_eq(tl_waitset_add_call(r.ws, TL_CALL(ws_race_member, NULL),
                                     NULL), 0);
    cr_expect_eq(tl_spawn(&c, ws_race_canceller, &r), 0);
    cr_expect_eq(tl_join(c, NULL), 0);
    cr_expect_eq(tl_join(r.waiter, NULL), 0);
    cr_expect_eq(r.rc, 0);
    cr_expect_eq(r.status, 42);
    cr_expect_eq(r.next_rc, -ECANCELED);
    cr_expect_eq(tl_waitset_close(r.ws), 0);
    return 0;
}

Test(waitset, member_finished_before_cancel_is_yielded, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_ws_completed_wins, NULL), 0);
}
