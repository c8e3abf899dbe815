/* tl_sleep, tl_sleep_until, tl_yield: the simplest suspending calls, and
 * the pattern every other one follows: checkpoint, register, park, and a
 * cancel hook that undoes the registration. */
#include "internal.h"

#include <math.h>

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
    if (deadline < INT64_MAX / 2) { /* forever: no timer at all, so a loop
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
    int64_t d = tl__seconds_to_ns(seconds);
    int64_t now = tl__loop_now(self->loop);
    int64_t deadline = d >= INT64_MAX / 2 ? INT64_MAX / 2 : now + d;
    return sleep_until_ns(self, deadline, __builtin_return_address(0));
}

int tl_sleep_until(double when)
{
    tl__task *self = tl__task_self("tl_sleep_until");
    if (!self) return tl__not_task_error();
    return sleep_until_ns(self, isnan(when) ? 0 : tl__seconds_to_ns(when),
                          __builtin_return_address(0));
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
