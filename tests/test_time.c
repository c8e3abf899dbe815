/* Time: tl_sleep, tl_sleep_until, tl_yield, tl_now, and timer order.
 *
 * All on the virtual clock (run_virtual): it starts at 0 and jumps to the
 * next deadline only when no task is ready, so every time below is exact.
 */
#include "helpers.h"

#include <math.h>
#include <stdint.h>

struct trace {
    char s[64];
    int n;
};

static void mark(struct trace *tr, char c) { tr->s[tr->n++] = c; }

/* ---- exact sleeps -------------------------------------------------------- */

static int main_exact(void *arg)
{
    (void)arg;
    cr_expect_eq(tl_now(), 0.0);
    cr_expect_eq(tl_sleep(1.5), 0);
    cr_expect_eq(tl_now(), 1.5);
    cr_expect_eq(tl_sleep(0.25), 0);
    cr_expect_eq(tl_now(), 1.75);
    cr_expect_eq(tl_sleep(3600.0), 0);
    cr_expect_eq(tl_now(), 3601.75);
    return 0;
}

Test(time, sleep_advances_virtual_clock_exactly, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_exact, NULL), 0);
}

static int main_small_steps(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++) cr_expect_eq(tl_sleep(0.1), 0);
    cr_expect_eq(tl_now(), 1.0);
    for (int i = 0; i < 1000; i++) cr_expect_eq(tl_sleep(0.001), 0);
    cr_expect_eq(tl_now(), 2.0);
    return 0;
}

Test(time, many_small_sleeps_add_up_exactly, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_small_steps, NULL), 0);
}

struct wake {
    int order[16];
    double at[16];
    int n;
};
struct sleeper_arg {
    struct wake *w;
    int id;
    double seconds;
    int yields_first; /* delay arming the timer by this many yields */
};

static int timed_sleeper(void *arg)
{
    struct sleeper_arg *a = arg;
    for (int i = 0; i < a->yields_first; i++) cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_sleep(a->seconds), 0);
    a->w->order[a->w->n] = a->id;
    a->w->at[a->w->n] = tl_now();
    a->w->n++;
    return 0;
}

static int main_deadline_order(void *arg)
{
    (void)arg;
    static const double secs[6] = {3.0, 1.0, 5.0, 2.0, 4.0, 0.5};
    static const int want[6] = {5, 1, 3, 0, 4, 2};
    struct wake w = {.n = 0};
    struct sleeper_arg a[6];
    tl_task t[6];
    for (int i = 0; i < 6; i++) {
        a[i] = (struct sleeper_arg){&w, i, secs[i], 0};
        cr_expect_eq(tl_spawn(&t[i], timed_sleeper, &a[i]), 0);
    }
    for (int i = 0; i < 6; i++) cr_expect_eq(tl_join(t[i], NULL), 0);
    cr_expect_eq(w.n, 6);
    for (int k = 0; k < 6; k++) {
        cr_expect_eq(w.order[k], want[k], "wake %d: task %d, want %d", k,
                     w.order[k], want[k]);
        cr_expect_eq(w.at[k], secs[want[k]]);
    }
    cr_expect_eq(tl_now(), 5.0);
    return 0;
}

Test(time, sleepers_wake_in_deadline_order, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_deadline_order, NULL), 0);
}

/* Equal deadlines fire in the order the timers were armed — not the spawn
 * order: task i yields (N - 1 - i) times first, so they arm in reverse.
 * sleep_until gives every one the same instant however late it arms. */
static int until_sleeper(void *arg)
{
    struct sleeper_arg *a = arg;
    for (int i = 0; i < a->yields_first; i++) cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_sleep_until(a->seconds), 0);
    a->w->order[a->w->n] = a->id;
    a->w->at[a->w->n] = tl_now();
    a->w->n++;
    return 0;
}

static int main_equal_deadlines_until(void *arg)
{
    (void)arg;
    enum { N = 6 };
    struct wake w = {.n = 0};
    struct sleeper_arg a[N];
    tl_task t[N];
    for (int i = 0; i < N; i++) {
        a[i] = (struct sleeper_arg){&w, i, 2.0, N - 1 - i};
        cr_expect_eq(tl_spawn(&t[i], until_sleeper, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) cr_expect_eq(tl_join(t[i], NULL), 0);
    cr_expect_eq(w.n, N);
    for (int k = 0; k < N; k++) {
        cr_expect_eq(w.order[k], N - 1 - k, "wake %d: task %d, want %d", k,
                     w.order[k], N - 1 - k);
        cr_expect_eq(w.at[k], 2.0);
    }
    return 0;
}

Test(time, equal_deadlines_fire_in_arm_order, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_equal_deadlines_until, NULL), 0);
}

/* Same relative sleep from the same instant: arm order again (the spawn
 * order here, since none yields first). */
static int main_equal_relative(void *arg)
{
    (void)arg;
    enum { N = 8 };
    struct wake w = {.n = 0};
    struct sleeper_arg a[N];
    tl_task t[N];
    for (int i = 0; i < N; i++) {
        a[i] = (struct sleeper_arg){&w, i, 1.0, 0};
        cr_expect_eq(tl_spawn(&t[i], timed_sleeper, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) cr_expect_eq(tl_join(t[i], NULL), 0);
    for (int k = 0; k < N; k++) {
        cr_expect_eq(w.order[k], k);
        cr_expect_eq(w.at[k], 1.0);
    }
    return 0;
}

Test(time, equal_relative_sleeps_wake_in_spawn_order, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_equal_relative, NULL), 0);
}

/* ---- zero, negative and NaN sleeps yield -------------------------------- */

static int other_marks(void *arg)
{
    mark(arg, 'B');
    return 0;
}

struct zero_case {
    double seconds;
    int until; /* use tl_sleep_until */
};

static int main_zero_sleep(void *arg)
{
    struct zero_case *z = arg;
    struct trace tr = {.n = 0};
    cr_expect_eq(tl_sleep(1.0), 0); /* so that "until 0" is in the past */
    tl_task t;
    cr_expect_eq(tl_spawn(&t, other_marks, &tr), 0);
    mark(&tr, 'A');
    int rc = z->until ? tl_sleep_until(z->seconds) : tl_sleep(z->seconds);
    cr_expect_eq(rc, 0);
    mark(&tr, 'C');
    /* The other task ran during the sleep: it yielded. */
    cr_expect_str_eq(tr.s, "ABC");
    cr_expect_eq(tl_now(), 1.0); /* and no time passed */
    cr_expect_eq(tl_join(t, NULL), 0);
    return 0;
}

Test(time, sleep_zero_yields, .timeout = 10)
{
    struct zero_case z = {0.0, 0};
    cr_assert_eq(run_virtual(main_zero_sleep, &z), 0);
}

Test(time, negative_sleep_yields, .timeout = 10)
{
    struct zero_case z = {-5.0, 0};
    cr_assert_eq(run_virtual(main_zero_sleep, &z), 0);
}

Test(time, minus_infinity_sleep_yields, .timeout = 10)
{
    struct zero_case z = {-INFINITY, 0};
    cr_assert_eq(run_virtual(main_zero_sleep, &z), 0);
}

/* NaN is -EINVAL for every time argument (tulip.h, "Time"): no yield,
 * no sleep. */
static int main_nan_sleep(void *arg)
{
    (void)arg;
    struct trace tr = {.n = 0};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, other_marks, &tr), 0);
    mark(&tr, 'A');
    cr_expect_eq(tl_sleep(NAN), -EINVAL);
    cr_expect_eq(tl_sleep(-NAN), -EINVAL);
    cr_expect_eq(tl_sleep_until(NAN), -EINVAL);
    mark(&tr, 'C');
    cr_expect_str_eq(tr.s, "AC"); /* nothing yielded */
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_eq(tl_now(), 0.0);
    return 0;
}

Test(time, nan_sleep_is_einval, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_nan_sleep, NULL), 0);
}

/* +INFINITY is forever: only a cancel ends it. */
static int sleep_forever(void *arg)
{
    return *(int *)arg ? tl_sleep_until(INFINITY) : tl_sleep(INFINITY);
}

static int main_infinite_sleep(void *arg)
{
    (void)arg;
    for (int until = 0; until < 2; until++) {
        tl_task t;
        cr_expect_eq(tl_spawn(&t, sleep_forever, &until), 0);
        cr_expect_eq(tl_sleep(1e6), 0);
        cr_expect_eq(tl_task_done(t), 0);
        cr_expect_eq(tl_cancel(t), 0);
        int st = 1;
        cr_expect_eq(tl_join(t, &st), 0);
        cr_expect_eq(st, -ECANCELED);
    }
    return 0;
}

Test(time, infinite_sleep_lasts_until_cancelled, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_infinite_sleep, NULL), 0);
}

Test(time, sleep_until_past_yields, .timeout = 10)
{
    struct zero_case z = {0.5, 1};
    cr_assert_eq(run_virtual(main_zero_sleep, &z), 0);
}

Test(time, sleep_until_now_yields, .timeout = 10)
{
    struct zero_case z = {1.0, 1};
    cr_assert_eq(run_virtual(main_zero_sleep, &z), 0);
}

Test(time, sleep_until_minus_infinity_yields, .timeout = 10)
{
    struct zero_case z = {-INFINITY, 1};
    cr_assert_eq(run_virtual(main_zero_sleep, &z), 0);
}

static int main_yield(void *arg)
{
    (void)arg;
    struct trace tr = {.n = 0};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, other_marks, &tr), 0);
    mark(&tr, 'A');
    cr_expect_eq(tl_yield(), 0);
    mark(&tr, 'C');
    cr_expect_str_eq(tr.s, "ABC");
    cr_expect_eq(tl_now(), 0.0);
    cr_expect_eq(tl_join(t, NULL), 0);
    return 0;
}

Test(time, yield_lets_others_run, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_yield, NULL), 0);
}

/* ---- sleep_until -------------------------------------------------------- */

static int main_sleep_until(void *arg)
{
    (void)arg;
    cr_expect_eq(tl_sleep_until(2.5), 0);
    cr_expect_eq(tl_now(), 2.5);
    cr_expect_eq(tl_sleep(0.5), 0);
    cr_expect_eq(tl_sleep_until(10.0), 0);
    cr_expect_eq(tl_now(), 10.0);
    return 0;
}

Test(time, sleep_until_reaches_the_exact_time, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_sleep_until, NULL), 0);
}

/* ---- the virtual clock stands still while anything is ready ------------- */

struct spin {
    int spins;
    int seen_at_wake;
    int clock_moved;
};

static int spinner(void *arg)
{
    struct spin *s = arg;
    for (int i = 0; i < 1000; i++) {
        cr_expect_eq(tl_yield(), 0);
        if (tl_now() != 0.0) s->clock_moved = 1;
        s->spins++;
    }
    return 0;
}

static int waker(void *arg)
{
    struct spin *s = arg;
    cr_expect_eq(tl_sleep(0.001), 0);
    s->seen_at_wake = s->spins;
    return 0;
}

static int main_clock_waits(void *arg)
{
    (void)arg;
    struct spin s = {0};
    tl_task a, b;
    cr_expect_eq(tl_spawn(&a, waker, &s), 0);
    cr_expect_eq(tl_spawn(&b, spinner, &s), 0);
    cr_expect_eq(tl_join(a, NULL), 0);
    cr_expect_eq(tl_join(b, NULL), 0);
    cr_expect_eq(s.clock_moved, 0);
    cr_expect_eq(s.seen_at_wake, 1000);
    cr_expect_eq(tl_now(), 0.001);
    return 0;
}

Test(time, virtual_clock_jumps_only_when_nothing_is_ready, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_clock_waits, NULL), 0);
}

/* ---- cancelling sleeps -------------------------------------------------- */

struct cancelled_sleep {
    double seconds;
    int rc;
    double at;
};

static int cancellable_sleeper(void *arg)
{
    struct cancelled_sleep *c = arg;
    c->rc = tl_sleep(c->seconds);
    c->at = tl_now();
    return c->rc;
}

static int main_cancel_sleep(void *arg)
{
    struct cancelled_sleep *c = arg;
    tl_task t;
    cr_expect_eq(tl_spawn(&t, cancellable_sleeper, c), 0);
    cr_expect_eq(tl_sleep(2.0), 0);
    cr_expect_eq(tl_cancel(t), 0);
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(st, -ECANCELED);
    cr_expect_eq(c->rc, -ECANCELED);
    cr_expect_eq(c->at, 2.0);
    /* The cancelled sleep's timer is gone: nothing else is due, so a long
     * sleep now lands exactly where asked. */
    cr_expect_eq(tl_sleep(1000.0), 0);
    cr_expect_eq(tl_now(), 1002.0);
    return 0;
}

Test(time, cancel_wakes_a_long_sleep_at_once, .timeout = 10)
{
    struct cancelled_sleep c = {10.0, 1, -1};
    cr_assert_eq(run_virtual(main_cancel_sleep, &c), 0);
}

Test(time, cancel_wakes_an_infinite_sleep, .timeout = 10)
{
    struct cancelled_sleep c = {INFINITY, 1, -1};
    cr_assert_eq(run_virtual(main_cancel_sleep, &c), 0);
}

/* ---- outside a loop ------------------------------------------------------ */

Test(time, now_outside_a_loop_is_monotonic, .timeout = 10)
{
    double a = tl_now();
    double b = tl_now();
    cr_expect(a > 0.0);
    cr_expect(b >= a);
}

Test(time, sleep_outside_a_task_is_refused, .timeout = 10)
{
    cr_expect_eq(tl_sleep(0.0), TL_ENOTASK);
    cr_expect_eq(tl_sleep_until(1.0), TL_ENOTASK);
    cr_expect_eq(tl_yield(), TL_ENOTASK);
}

/* ---- the real clock (coarse: only that it waited, never less) ----------- */

static int main_real_sleep(void *arg)
{
    (void)arg;
    double t0 = tl_now();
    cr_expect_eq(tl_sleep(0.02), 0);
    double dt = tl_now() - t0;
    cr_expect(dt >= 0.02, "slept %.6f s, asked 0.02", dt);
    return 0;
}

Test(time, real_clock_sleep_never_returns_early, .timeout = 10)
{
    cr_assert_eq(tl_run(main_real_sleep, NULL), 0);
}
