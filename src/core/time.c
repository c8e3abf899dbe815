/* tl_sleep, tl_sleep_until, tl_yield: the simplest suspending calls, and
 * the pattern every other one follows: checkpoint, register, park, and a
 * cancel hook that undoes the registration. */
#include "internal.h"

#include <math.h>

/* ---- the rule for time arguments ---------------------------------------- */

static int nan_refused(const char *what)
{
    tl__diag("%s: the time is NaN (a duration or deadline must be a number; "
             "INFINITY means forever)", what);
    return -EINVAL;
}

int tl__time_after(const tl__loop *l, double seconds, const char *what,
                   int64_t *out)
{
    if (isnan(seconds)) return nan_refused(what);
    int64_t d = tl__seconds_to_ns(seconds); /* <= 0: 0; huge: forever */
    *out = d >= TL__FOREVER ? TL__FOREVER : tl__loop_now(l) + d;
    return 0;
}

int tl__time_at(double when, const char *what, int64_t *out)
{
    if (isnan(when)) return nan_refused(what);
    *out = tl__seconds_to_ns(when); /* the loop clock starts at 0 */
    return 0;
}

/* ---- sleep ------------------------------------------------------------------ */

static void sleep_fire(tl__loop *l, tl__timer *tm)
{
    (void)l;
    tl__wake(tl__container_of(tm, tl__task, timer), 0);
}

static void sleep_cancel(tl__task *t)
{
    tl__timer_disarm(t->loop, &t->timer);
    tl__wake(t, -ECANCELED);
}

static int sleep_until_ns(tl__task *self, int64_t deadline, void *site)
{
    int rc = tl__checkpoint(self, "tl_sleep", site);
    if (rc < 0) return rc;
    tl__loop *l = self->loop;
    if (deadline <= tl__loop_now(l)) {
        tl__yield_now(self); /* sleep(0) */
        return 0;
    }
    tl__timer_init(&self->timer, sleep_fire);
    if (deadline < TL__FOREVER) { /* forever: no timer at all, so a loop
                                      where everything sleeps forever is
                                      reported as a deadlock */
        rc = tl__timer_arm(l, &self->timer, deadline);
        if (rc < 0) return rc;
    }
    return tl__park(self, sleep_cancel, "tl_sleep");
}

int tl_sleep(double seconds)
{
    tl__task *self = tl__task_self("tl_sleep");
    if (!self) return tl__not_task_error();
    int64_t deadline;
    int rc = tl__time_after(self->loop, seconds, "tl_sleep", &deadline);
    if (rc < 0) return rc;
    return sleep_until_ns(self, deadline, __builtin_return_address(0));
}

int tl_sleep_until(double when)
{
    tl__task *self = tl__task_self("tl_sleep_until");
    if (!self) return tl__not_task_error();
    int64_t deadline;
    int rc = tl__time_at(when, "tl_sleep_until", &deadline);
    if (rc < 0) return rc;
    return sleep_until_ns(self, deadline, __builtin_return_address(0));
}

int tl_yield(void)
{
    tl__task *self = tl__task_self("tl_yield");
    if (!self) return tl__not_task_error();
    int rc = tl__checkpoint(self, "tl_yield", __builtin_return_address(0));
    if (rc < 0) return rc;
    tl__yield_now(self);
    return 0;
}
