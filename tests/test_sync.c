/* Coordination primitives: tl_sem (and bounded), tl_lock, tl_event,
 * tl_cond, tl_barrier, TL_WITH_LOCK / TL_WITH_SEM.
 *
 * Everything runs on the virtual clock (run_virtual), so times are exact.
 * The cancellation cases pin invariant 3 down precisely: a waiter handed
 * its permit / lock / wake-up / index before the cancel reached it keeps
 * it (the cancel shows at its next suspending call), one that was not
 * handed anything takes nothing, and the counts stay exact.
 */
#include "helpers.h"

#include <criterion/redirect.h>
#include <limits.h>
#include <pthread.h>

/* ---- shared helpers ------------------------------------------------------ */

struct order {
    int ids[32];
    int n;
};

static void push_id(struct order *o, int id) { o->ids[o->n++] = id; }

/* A task that runs fn-specific code with an id and shared state. */
struct who {
    int id;
    void *obj;     /* the primitive */
    struct order *order;
    int rc;        /* what the wait returned */
    int after_rc;  /* what the next suspending call returned */
    double at;     /* tl_now() when the wait returned */
    int flag;
};

/* Spawn n tasks fn(&w[i]), w[i] = {.id = i, .obj = obj, .order = order}. */
static void spawn_whos(tl_task *t, struct who *w, int n, tl_fn fn, void *obj,
                       struct order *order)
{
    for (int i = 0; i < n; i++) {
        w[i] = (struct who){.id = i, .obj = obj, .order = order};
        t[i] = tl_test_spawn(fn, &w[i]);
    }
}

/* ======================================================================
 * Semaphore
 * ====================================================================== */

Test(sem, init_rejects_negative_and_null, .timeout = 10)
{
    tl_sem s;
    cr_expect_eq(tl_sem_init(&s, -1), -EINVAL);
    cr_expect_eq(tl_sem_init(NULL, 1), -EINVAL);
    cr_expect_eq(tl_sem_init_bounded(&s, -3), -EINVAL);
    cr_expect_eq(tl_sem_init(&s, 0), 0);
    cr_expect_eq(tl_sem_value(&s), 0);
    cr_expect_eq(tl_sem_destroy(&s), 0);
}

Test(sem, try_acquire_and_release_count_outside_a_loop, .timeout = 10)
{
    tl_sem s;
    cr_assert_eq(tl_sem_init(&s, 2), 0);
    cr_expect_eq(tl_sem_try_acquire(&s), 0);
    cr_expect_eq(tl_sem_try_acquire(&s), 0);
    cr_expect_eq(tl_sem_locked(&s), 1);
    cr_expect_eq(tl_sem_try_acquire(&s), -EAGAIN);
    cr_expect_eq(tl_sem_value(&s), 0);
    cr_expect_eq(tl_sem_release(&s), 0);
    cr_expect_eq(tl_sem_release(&s), 0);
    cr_expect_eq(tl_sem_release(&s), 0); /* unbounded: may exceed */
    cr_expect_eq(tl_sem_value(&s), 3);
    cr_expect_eq(tl_sem_destroy(&s), 0);
}

static void uninit_child(void *arg)
{
    (void)arg;
    tl_sem s;
    memset(&s, 0, sizeof s);
    printf("rc=%d\n", tl_sem_release(&s));
}

Test(sem, uninitialised_is_reported, .timeout = 10)
{
    char out[1024];
    int st = run_child(uninit_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "rc=-22");
    TL_EXPECT_OUT(out, "tulip: tl_sem_release:");
    TL_EXPECT_OUT(out, "not a live tl_sem");
}

static int outside_main(void *arg)
{
    (void)arg;
    return 0;
}

static void outside_child(void *arg)
{
    (void)arg;
    tl_sem s;
    tl_sem_init(&s, 1);
    printf("rc=%d\n", tl_sem_acquire(&s));
    cr_expect_eq(run_virtual(outside_main, NULL), 0);
}

Test(sem, acquire_outside_a_task_is_refused, .timeout = 10)
{
    char out[1024];
    int st = run_child(outside_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    char want[32];
    snprintf(want, sizeof want, "rc=%d", TL_ENOTASK);
    TL_EXPECT_OUT(out, want);
    TL_EXPECT_OUT(out, "outside a tulip task");
}

static int sem_waiter(void *arg)
{
    struct who *w = arg;
    w->rc = tl_sem_acquire(w->obj);
    w->at = tl_now();
    if (w->rc == 0) {
        if (w->order) push_id(w->order, w->id);
        w->after_rc = tl_sleep(1.0);
        cr_expect_eq(tl_sem_release(w->obj), 0);
    }
    return w->rc;
}

static int main_sem_fifo(void *arg)
{
    (void)arg;
    tl_sem s;
    struct order o = {0};
    struct who w[6];
    tl_task t[6];
    cr_assert_eq(tl_sem_init(&s, 0), 0);
    spawn_whos(t, w, 6, sem_waiter, &s, &o);
    tl_test_settle();
    cr_expect_eq(tl_sem_value(&s), 0);
    cr_expect_eq(tl_sem_release(&s), 0); /* one permit circulates */
    for (int i = 0; i < 6; i++) cr_expect_eq(tl_test_join(t[i]), 0);
    cr_expect_eq(o.n, 6);
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(o.ids[i], i, "wake %d went to %d", i, o.ids[i]);
        cr_expect_eq(w[i].at, (double)i, "waiter %d got it at %g", i, w[i].at);
    }
    cr_expect_eq(tl_sem_value(&s), 1);
    cr_expect_eq(tl_sem_destroy(&s), 0);
    return 0;
}

Test(sem, waiters_are_served_in_fifo_order, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_sem_fifo, NULL), 0);
}

static int main_sem_no_barging(void *arg)
{
    (void)arg;
    tl_sem s;
    cr_assert_eq(tl_sem_init(&s, 1), 0);
    cr_expect_eq(tl_sem_acquire(&s), 0);
    struct who w = {.obj = &s};
    tl_task t = tl_test_spawn(sem_waiter, &w);
    tl_test_settle(); /* w waits */
    cr_expect_eq(tl_sem_release(&s), 0);
    /* The permit went to w, not back into the count: we cannot take it
     * back although w has not run yet. */
    cr_expect_eq(tl_sem_value(&s), 0);
    cr_expect_eq(tl_sem_try_acquire(&s), -EAGAIN);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(w.rc, 0);
    cr_expect_eq(tl_sem_value(&s), 1);
    return 0;
}

Test(sem, release_hands_the_permit_to_the_first_waiter, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_sem_no_barging, NULL), 0);
}

static int main_sem_handoff_cancel(void *arg)
{
    (void)arg;
    tl_sem s;
    cr_assert_eq(tl_sem_init(&s, 1), 0);
    cr_expect_eq(tl_sem_acquire(&s), 0);
    struct who w = {.obj = &s};
    tl_task t = tl_test_spawn(sem_waiter, &w);
    tl_test_settle();
    cr_expect_eq(tl_sem_release(&s), 0); /* w is READY holding the permit */
    cr_expect_eq(tl_cancel(t), 0);        /* ... and cancelled before it runs */
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(w.rc, 0, "a waiter handed its permit keeps it");
    cr_expect_eq(w.after_rc, -ECANCELED, "the cancel shows at the next call");
    cr_expect_eq(tl_sem_value(&s), 1, "and its release made the count exact");
    return 0;
}

Test(sem, acquire_then_cancel_before_run_keeps_the_permit, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_sem_handoff_cancel, NULL), 0);
}

static int main_sem_cancel_waiting(void *arg)
{
    (void)arg;
    tl_sem s;
    cr_assert_eq(tl_sem_init(&s, 0), 0);
    struct who a = {.id = 1, .obj = &s}, b = {.id = 2, .obj = &s};
    tl_task ta = tl_test_spawn(sem_waiter, &a),
            tb = tl_test_spawn(sem_waiter, &b);
    tl_test_settle();
    cr_expect_eq(tl_cancel(ta), 0);
    cr_expect_eq(tl_test_join(ta), -ECANCELED);
    cr_expect_eq(a.rc, -ECANCELED);
    cr_expect_eq(tl_sem_value(&s), 0, "a cancelled waiter takes nothing");
    cr_expect_eq(tl_sem_release(&s), 0); /* goes to b, the next in line */
    cr_expect_eq(tl_test_join(tb), 0);
    cr_expect_eq(b.rc, 0);
    cr_expect_eq(tl_sem_value(&s), 1);
    return 0;
}

Test(sem, cancelled_waiter_takes_nothing, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_sem_cancel_waiting, NULL), 0);
}

static int cancelled_acquirer(void *arg)
{
    tl_sem *s = arg;
    tl_cancel(tl_current());
    int rc = tl_sem_acquire(s);
    cr_expect_eq(rc, -ECANCELED, "level-triggered: even with a free permit");
    cr_expect_eq(tl_sem_value(s), 2);
    return 0;
}

Test(sem, cancelled_task_gets_ECANCELED_even_if_a_permit_is_free,
     .timeout = 10)
{
    tl_sem s;
    cr_assert_eq(tl_sem_init(&s, 2), 0);
    cr_assert_eq(run_virtual(cancelled_acquirer, &s), 0);
    cr_expect_eq(tl_sem_value(&s), 2);
}

static int main_sem_timeout(void *arg)
{
    (void)arg;
    tl_sem s;
    cr_assert_eq(tl_sem_init(&s, 0), 0);
    int rc;
    TL_WITH_TIMEOUT(1.5, &rc) { rc = tl_sem_acquire(&s); }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_now(), 1.5);
    cr_expect_eq(tl_sem_value(&s), 0);
    cr_expect_eq(tl_sem_destroy(&s), 0, "the timed-out waiter left the list");
    return 0;
}

Test(sem, deadline_ends_the_wait_with_ETIMEDOUT, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_sem_timeout, NULL), 0);
}

static void bounded_child(void *arg)
{
    (void)arg;
    tl_sem s;
    tl_sem_init_bounded(&s, 2);
    printf("try=%d\n", tl_sem_try_acquire(&s));
    printf("r1=%d\n", tl_sem_release(&s));
    printf("r2=%d\n", tl_sem_release(&s));
    printf("value=%d\n", tl_sem_value(&s));
}

Test(sem, bounded_release_past_initial_is_EOVERFLOW, .timeout = 10)
{
    char out[2048];
    int st = run_child(bounded_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    char want[32];
    snprintf(want, sizeof want, "r2=%d", -EOVERFLOW);
    cr_expect(strstr(out, "try=0") && strstr(out, "r1=0"), "%s", out);
    TL_EXPECT_OUT(out, want);
    TL_EXPECT_OUT(out, "value=2");
    TL_EXPECT_OUT(out, "released too many times");
}

static int main_sem_destroy_busy(void *arg)
{
    (void)arg;
    tl_sem s;
    cr_assert_eq(tl_sem_init(&s, 0), 0);
    struct who w = {.obj = &s};
    tl_task t = tl_test_spawn(sem_waiter, &w);
    tl_test_settle();
    cr_expect_eq(tl_sem_destroy(&s), -EBUSY);
    cr_expect_eq(tl_sem_release(&s), 0, "still usable after the refusal");
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(tl_sem_destroy(&s), 0);
    cr_expect_eq(tl_sem_release(&s), -EINVAL, "destroyed");
    return 0;
}

Test(sem, destroy_with_waiters_is_EBUSY, .timeout = 10,
     .init = cr_redirect_stderr)
{
    cr_assert_eq(run_virtual(main_sem_destroy_busy, NULL), 0);
}

static tl_sem global_sem = TL_SEM_INITIALIZER(1);
static tl_lock global_lock = TL_LOCK_INITIALIZER;
static tl_event global_event = TL_EVENT_INITIALIZER;
static tl_cond global_cond = TL_COND_INITIALIZER;
static tl_barrier global_barrier = TL_BARRIER_INITIALIZER(2);

static int static_user(void *arg)
{
    (void)arg;
    cr_expect_eq(tl_sem_acquire(&global_sem), 0);
    cr_expect_eq(tl_lock_acquire(&global_lock), 0);
    cr_expect_eq(tl_event_wait(&global_event), 0);
    cr_expect_eq(tl_lock_acquire(tl_cond_lock(&global_cond)), 0);
    cr_expect_eq(tl_cond_notify(&global_cond, 1), 1);
    cr_expect_eq(tl_lock_release(tl_cond_lock(&global_cond)), 0);
    cr_expect_geq(tl_barrier_wait(&global_barrier), 0);
    cr_expect_eq(tl_lock_release(&global_lock), 0);
    cr_expect_eq(tl_sem_release(&global_sem), 0);
    return 0;
}

static int main_static(void *arg)
{
    (void)arg;
    tl_task t = tl_test_spawn(static_user, NULL);
    /* static_user takes the semaphore and lock, then waits for the event. */
    tl_test_settle();
    cr_expect_eq(tl_sem_value(&global_sem), 0);
    cr_expect_eq(tl_lock_locked(&global_lock), 1);
    cr_expect_eq(tl_lock_acquire(tl_cond_lock(&global_cond)), 0);
    cr_expect_eq(tl_event_set(&global_event), 1);
    cr_expect_eq(tl_cond_wait(&global_cond), 0);
    cr_expect_eq(tl_lock_release(tl_cond_lock(&global_cond)), 0);
    cr_expect_geq(tl_barrier_wait(&global_barrier), 0);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(tl_sem_value(&global_sem), 1);
    cr_expect_eq(tl_lock_locked(&global_lock), 0);
    return 0;
}

Test(sync, static_initializers_work_without_init, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_static, NULL), 0);
}

/* ---- TL_WITH_SEM --------------------------------------------------------- */

static int with_sem_body(void *arg)
{
    tl_sem *s = arg;
    int rc;
    TL_WITH_SEM(s, &rc)
    {
        cr_expect_eq(rc, 0);
        cr_expect_eq(tl_sem_value(s), 1);
        rc = 7;
    }
    cr_expect_eq(rc, 7, "the body's result");
    cr_expect_eq(tl_sem_value(s), 2, "released at the end of the block");
    for (int i = 0; i < 3; i++) {
        TL_WITH_SEM(s, &rc)
        {
            if (i == 1) break; /* leaves the block, releases */
            rc = i;
        }
    }
    cr_expect_eq(tl_sem_value(s), 2, "break released the permit");
    tl_cancel(tl_current());
    int ran = 0;
    TL_WITH_SEM(s, &rc) { ran = 1; }
    cr_expect_eq(ran, 0, "a failed acquire skips the body");
    cr_expect_eq(rc, -ECANCELED);
    cr_expect_eq(tl_sem_value(s), 2);
    return 0;
}

Test(sem, with_sem_releases_on_every_exit_and_skips_on_cancel,
     .timeout = 10)
{
    tl_sem s;
    cr_assert_eq(tl_sem_init(&s, 2), 0);
    cr_assert_eq(run_virtual(with_sem_body, &s), 0);
    cr_expect_eq(tl_sem_value(&s), 2);
}

/* ======================================================================
 * Lock
 * ====================================================================== */

static int lock_waiter(void *arg)
{
    struct who *w = arg;
    w->rc = tl_lock_acquire(w->obj);
    w->at = tl_now();
    if (w->rc == 0) {
        cr_expect(tl_lock_owned(w->obj));
        if (w->order) push_id(w->order, w->id);
        w->after_rc = tl_sleep(1.0);
        cr_expect_eq(tl_lock_release(w->obj), 0);
    }
    return w->rc;
}

static int main_lock_fifo(void *arg)
{
    (void)arg;
    tl_lock l;
    struct order o = {0};
    struct who w[5];
    tl_task t[5];
    cr_assert_eq(tl_lock_init(&l), 0);
    cr_expect_eq(tl_lock_acquire(&l), 0);
    spawn_whos(t, w, 5, lock_waiter, &l, &o);
    tl_test_settle();
    cr_expect_eq(tl_lock_release(&l), 0);
    cr_expect_eq(tl_lock_locked(&l), 1, "handed to the first waiter");
    cr_expect_eq(tl_lock_owned(&l), 0);
    cr_expect_eq(tl_lock_try_acquire(&l), -EBUSY, "no barging");
    for (int i = 0; i < 5; i++) cr_expect_eq(tl_test_join(t[i]), 0);
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(o.ids[i], i);
        cr_expect_eq(w[i].at, (double)i);
    }
    cr_expect_eq(tl_lock_locked(&l), 0);
    cr_expect_eq(tl_lock_destroy(&l), 0);
    return 0;
}

Test(lock, fifo_and_no_barging, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_lock_fifo, NULL), 0);
}

static int lock_stealer(void *arg)
{
    tl_lock *l = arg;
    return tl_lock_release(l);
}

static int main_lock_misuse(void *arg)
{
    (void)arg;
    tl_lock l;
    cr_assert_eq(tl_lock_init(&l), 0);
    cr_expect_eq(tl_lock_release(&l), -EPERM, "not locked");
    cr_expect_eq(tl_lock_acquire(&l), 0);
    cr_expect_eq(tl_lock_acquire(&l), -EDEADLK, "not recursive");
    cr_expect_eq(tl_lock_try_acquire(&l), -EBUSY);
    tl_task t = tl_test_spawn(lock_stealer, &l);
    cr_expect_eq(tl_test_join(t), -EPERM, "only the owner releases");
    cr_expect_eq(tl_lock_locked(&l), 1);
    cr_expect_eq(tl_lock_destroy(&l), -EBUSY, "held");
    cr_expect_eq(tl_lock_release(&l), 0);
    cr_expect_eq(tl_lock_destroy(&l), 0);
    return 0;
}

Test(lock, misuse_is_reported_with_EPERM_EDEADLK_EBUSY, .timeout = 10)
{
    char out[4096];
    int st = run_virtual_child(main_lock_misuse, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "rc=0");
    TL_EXPECT_OUT(out, "which is not locked");
    TL_EXPECT_OUT(out, "is not recursive");
    TL_EXPECT_OUT(out, "which is held by task 'main'");
    TL_EXPECT_OUT(out, "is still held");
}

static int main_lock_handoff_cancel(void *arg)
{
    (void)arg;
    tl_lock l;
    cr_assert_eq(tl_lock_init(&l), 0);
    cr_expect_eq(tl_lock_acquire(&l), 0);
    struct who a = {.id = 1, .obj = &l}, b = {.id = 2, .obj = &l};
    tl_task ta = tl_test_spawn(lock_waiter, &a),
            tb = tl_test_spawn(lock_waiter, &b);
    tl_test_settle();
    cr_expect_eq(tl_lock_release(&l), 0); /* a owns it, READY */
    cr_expect_eq(tl_cancel(ta), 0);
    cr_expect_eq(tl_test_join(ta), 0);
    cr_expect_eq(a.rc, 0, "handed the lock, keeps it");
    cr_expect_eq(a.after_rc, -ECANCELED);
    cr_expect_eq(a.at, 0.0);
    cr_expect_eq(tl_test_join(tb), 0);
    cr_expect_eq(b.rc, 0);
    cr_expect_eq(b.at, 0.0, "a released at once (its sleep was cancelled)");
    cr_expect_eq(tl_lock_locked(&l), 0);
    return 0;
}

Test(lock, acquire_then_cancel_before_run_keeps_the_lock, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_lock_handoff_cancel, NULL), 0);
}

static int main_lock_cancel_waiting(void *arg)
{
    (void)arg;
    tl_lock l;
    cr_assert_eq(tl_lock_init(&l), 0);
    cr_expect_eq(tl_lock_acquire(&l), 0);
    struct who a = {.id = 1, .obj = &l}, b = {.id = 2, .obj = &l};
    tl_task ta = tl_test_spawn(lock_waiter, &a),
            tb = tl_test_spawn(lock_waiter, &b);
    tl_test_settle();
    cr_expect_eq(tl_cancel(ta), 0);
    cr_expect_eq(tl_test_join(ta), -ECANCELED);
    cr_expect_eq(tl_lock_owned(&l), 1, "still ours");
    cr_expect_eq(tl_lock_release(&l), 0);
    cr_expect_eq(tl_test_join(tb), 0);
    cr_expect_eq(b.rc, 0);
    cr_expect_eq(tl_lock_locked(&l), 0);
    return 0;
}

Test(lock, cancelled_waiter_takes_nothing, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_lock_cancel_waiting, NULL), 0);
}

static int with_lock_return(tl_lock *l, int *seen)
{
    int rc;
    TL_WITH_LOCK(l, &rc)
    {
        *seen = tl_lock_owned(l);
        return 42; /* the cleanup releases */
    }
    return rc;
}

static int with_lock_main(void *arg)
{
    tl_lock *l = arg;
    int seen = 0;
    cr_expect_eq(with_lock_return(l, &seen), 42);
    cr_expect_eq(seen, 1);
    cr_expect_eq(tl_lock_locked(l), 0, "return inside the block released");
    int rc;
    TL_WITH_LOCK(l, &rc) { rc = tl_sleep(0.5); }
    cr_expect_eq(rc, 0);
    cr_expect_eq(tl_lock_locked(l), 0);
    return 0;
}

Test(lock, with_lock_releases_on_return, .timeout = 10)
{
    tl_lock l;
    cr_assert_eq(tl_lock_init(&l), 0);
    cr_assert_eq(run_virtual(with_lock_main, &l), 0);
    cr_expect_eq(tl_lock_destroy(&l), 0);
}

/* ======================================================================
 * Event
 * ====================================================================== */

static int event_waiter(void *arg)
{
    struct who *w = arg;
    w->rc = tl_event_wait(w->obj);
    w->at = tl_now();
    if (w->rc == 0 && w->order) push_id(w->order, w->id);
    w->after_rc = tl_sleep(0.0);
    return w->rc;
}

static int main_event(void *arg)
{
    (void)arg;
    tl_event e;
    struct order o = {0};
    struct who w[4];
    tl_task t[4];
    cr_assert_eq(tl_event_init(&e), 0);
    cr_expect_eq(tl_event_is_set(&e), 0);
    spawn_whos(t, w, 4, event_waiter, &e, &o);
    cr_expect_eq(tl_sleep(2.0), 0);
    cr_expect_eq(o.n, 0);
    cr_expect_eq(tl_event_set(&e), 4);
    cr_expect_eq(tl_event_clear(&e), 0); /* before they run: they still go */
    for (int i = 0; i < 4; i++) cr_expect_eq(tl_test_join(t[i]), 0);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(o.ids[i], i, "FIFO wake order");
        cr_expect_eq(w[i].at, 2.0);
    }
    cr_expect_eq(tl_event_is_set(&e), 0);
    cr_expect_eq(tl_event_set(&e), 0);
    cr_expect_eq(tl_event_wait(&e), 0, "already set: returns at once");
    cr_expect_eq(tl_now(), 2.0);
    cr_expect_eq(tl_event_destroy(&e), 0);
    return 0;
}

Test(event, set_wakes_every_waiter_in_order_even_if_cleared_again,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_event, NULL), 0);
}

static int main_event_cancel(void *arg)
{
    (void)arg;
    tl_event e;
    cr_assert_eq(tl_event_init(&e), 0);
    struct who a = {.id = 1, .obj = &e}, b = {.id = 2, .obj = &e};
    tl_task ta = tl_test_spawn(event_waiter, &a),
            tb = tl_test_spawn(event_waiter, &b);
    tl_test_settle();
    cr_expect_eq(tl_cancel(ta), 0);
    cr_expect_eq(tl_test_join(ta), -ECANCELED);
    cr_expect_eq(tl_event_set(&e), 1, "only b still waits");
    cr_expect_eq(tl_cancel(tb), 0); /* woken before the cancel: keeps it */
    cr_expect_eq(tl_test_join(tb), 0);
    cr_expect_eq(b.rc, 0);
    cr_expect_eq(b.after_rc, -ECANCELED);
    cr_expect_eq(tl_event_destroy(&e), 0);
    return 0;
}

Test(event, cancel_before_and_after_set, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_event_cancel, NULL), 0);
}

/* ======================================================================
 * Condition
 * ====================================================================== */

struct cond_ctx {
    tl_cond c;
    int items;
    struct order order;
};

struct cond_who {
    struct cond_ctx *x;
    int id;
    int rc;
    int owned_after; /* the lock was held when the wait returned */
    int after_rc;
    double at;
};

/* Spawn n tasks fn(&w[i]), w[i] = {.x = x, .id = i}. */
static void spawn_cond_whos(tl_task *t, struct cond_who *w, int n, tl_fn fn,
                            struct cond_ctx *x)
{
    for (int i = 0; i < n; i++) {
        w[i] = (struct cond_who){.x = x, .id = i};
        t[i] = tl_test_spawn(fn, &w[i]);
    }
}

static int cond_waiter(void *arg)
{
    struct cond_who *w = arg;
    tl_lock *l = tl_cond_lock(&w->x->c);
    cr_expect_eq(tl_lock_acquire(l), 0);
    w->rc = tl_cond_wait(&w->x->c);
    w->owned_after = tl_lock_owned(l);
    w->at = tl_now();
    if (w->rc == 0) push_id(&w->x->order, w->id);
    w->after_rc = tl_sleep(0.0);
    cr_expect_eq(tl_lock_release(l), 0);
    return w->rc;
}

static int main_cond_notify(void *arg)
{
    (void)arg;
    struct cond_ctx x = {0};
    cr_assert_eq(tl_cond_init(&x.c, NULL), 0);
    tl_lock *l = tl_cond_lock(&x.c);
    struct cond_who w[5];
    tl_task t[5];
    spawn_cond_whos(t, w, 5, cond_waiter, &x);
    tl_test_settle();
    cr_expect_eq(tl_cond_notify(&x.c, 1), -EPERM, "without the lock");
    cr_expect_eq(tl_lock_acquire(l), 0);
    cr_expect_eq(tl_cond_notify(&x.c, 1), 1);
    cr_expect_eq(tl_cond_notify(&x.c, 2), 2);
    cr_expect_eq(tl_sleep(1.0), 0); /* they wait for the lock */
    cr_expect_eq(x.order.n, 0);
    cr_expect_eq(tl_lock_release(l), 0);
    cr_expect_eq(tl_sleep(1.0), 0); /* the three take the lock in turn */
    cr_expect_eq(x.order.n, 3);
    cr_expect_eq(tl_lock_acquire(l), 0);
    cr_expect_eq(tl_cond_notify_all(&x.c), 2);
    cr_expect_eq(tl_cond_notify_all(&x.c), 0);
    cr_expect_eq(tl_lock_release(l), 0);
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(tl_test_join(t[i]), 0);
        cr_expect_eq(w[i].owned_after, 1);
        cr_expect_eq(x.order.ids[i], i, "FIFO");
    }
    cr_expect_eq(tl_cond_destroy(&x.c), 0);
    return 0;
}

Test(cond, notify_n_and_notify_all_wake_fifo_with_the_lock_held,
     .timeout = 10)
{
    char out[4096];
    int st = run_virtual_child(main_cond_notify, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "rc=0");
    TL_EXPECT_OUT(out, "cannot notify on un-acquired lock");
}

static int main_cond_wait_unlocked(void *arg)
{
    (void)arg;
    tl_cond c;
    cr_assert_eq(tl_cond_init(&c, NULL), 0);
    cr_expect_eq(tl_cond_wait(&c), -EPERM);
    return 0;
}

Test(cond, wait_without_the_lock_is_EPERM, .timeout = 10,
     .init = cr_redirect_stderr)
{
    cr_assert_eq(run_virtual(main_cond_wait_unlocked, NULL), 0);
}

static int main_cond_cancel_waiting(void *arg)
{
    (void)arg;
    struct cond_ctx x = {0};
    tl_lock lock;
    cr_assert_eq(tl_lock_init(&lock), 0);
    cr_assert_eq(tl_cond_init(&x.c, &lock), 0);
    cr_expect_eq(tl_cond_lock(&x.c), &lock);
    struct cond_who w = {.x = &x, .id = 1};
    tl_task t = tl_test_spawn(cond_waiter, &w);
    tl_test_settle();
    /* Cancel it while we hold the lock: it leaves the wait list at once,
     * but returns only once it has the lock again. */
    cr_expect_eq(tl_lock_acquire(&lock), 0);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_sleep(3.0), 0);
    cr_expect_eq(tl_cond_notify(&x.c, 1), 0, "it is no longer waiting");
    cr_expect_eq(tl_lock_release(&lock), 0);
    cr_expect_eq(tl_test_join(t), -ECANCELED);
    cr_expect_eq(w.rc, -ECANCELED);
    cr_expect_eq(w.owned_after, 1, "returned with the lock held");
    cr_expect_eq(w.at, 3.0, "after we released it");
    cr_expect_eq(tl_cond_destroy(&x.c), 0);
    cr_expect_eq(tl_lock_destroy(&lock), 0);
    return 0;
}

Test(cond, cancelled_wait_returns_ECANCELED_with_the_lock_held,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cond_cancel_waiting, NULL), 0);
}

static int main_cond_notified_then_cancelled(void *arg)
{
    (void)arg;
    struct cond_ctx x = {0};
    cr_assert_eq(tl_cond_init(&x.c, NULL), 0);
    tl_lock *l = tl_cond_lock(&x.c);
    struct cond_who w = {.x = &x, .id = 1};
    tl_task t = tl_test_spawn(cond_waiter, &w);
    tl_test_settle();
    cr_expect_eq(tl_lock_acquire(l), 0);
    cr_expect_eq(tl_cond_notify(&x.c, 1), 1);
    cr_expect_eq(tl_cancel(t), 0); /* notified first: the wake-up stands */
    cr_expect_eq(tl_sleep(2.0), 0);
    cr_expect_eq(tl_lock_release(l), 0);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(w.rc, 0, "a notification is never lost");
    cr_expect_eq(w.owned_after, 1);
    cr_expect_eq(w.at, 2.0);
    cr_expect_eq(w.after_rc, -ECANCELED);
    return 0;
}

Test(cond, notified_then_cancelled_returns_0_with_the_lock, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cond_notified_then_cancelled, NULL), 0);
}

static int lock_grabber(void *arg)
{
    struct cond_who *w = arg;
    tl_lock *l = tl_cond_lock(&w->x->c);
    w->rc = tl_lock_acquire(l);
    push_id(&w->x->order, w->id);
    cr_expect_eq(tl_lock_release(l), 0);
    return w->rc;
}

static int main_cond_no_barging(void *arg)
{
    (void)arg;
    struct cond_ctx x = {0};
    cr_assert_eq(tl_cond_init(&x.c, NULL), 0);
    tl_lock *l = tl_cond_lock(&x.c);
    struct cond_who w[2] = {{.x = &x, .id = 0}, {.x = &x, .id = 1}};
    tl_task t[2] = {tl_test_spawn(cond_waiter, &w[0]),
                    tl_test_spawn(cond_waiter, &w[1])};
    tl_test_settle();
    cr_expect_eq(tl_lock_acquire(l), 0);
    cr_expect_eq(tl_cond_notify_all(&x.c), 2);
    /* A task that asks for the lock after the notify queues behind the
     * notified waiters. */
    struct cond_who g = {.x = &x, .id = 9};
    tl_task tg = tl_test_spawn(lock_grabber, &g);
    tl_test_settle();
    cr_expect_eq(tl_lock_release(l), 0);
    cr_expect_eq(tl_lock_try_acquire(l), -EBUSY, "handed to waiter 0");
    for (int i = 0; i < 2; i++) cr_expect_eq(tl_test_join(t[i]), 0);
    cr_expect_eq(tl_test_join(tg), 0);
    cr_expect_eq(x.order.n, 3);
    cr_expect_eq(x.order.ids[0], 0);
    cr_expect_eq(x.order.ids[1], 1);
    cr_expect_eq(x.order.ids[2], 9);
    cr_expect_eq(tl_cond_destroy(&x.c), 0);
    return 0;
}

Test(cond, notified_waiters_take_the_lock_before_later_acquirers,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cond_no_barging, NULL), 0);
}

static int have_items(void *arg) { return ((struct cond_ctx *)arg)->items > 0; }

static int cond_consumer(void *arg)
{
    struct cond_who *w = arg;
    tl_lock *l = tl_cond_lock(&w->x->c);
    cr_expect_eq(tl_lock_acquire(l), 0);
    w->rc = tl_cond_wait_for(&w->x->c, have_items, w->x);
    w->owned_after = tl_lock_owned(l);
    if (w->rc == 0) {
        w->x->items--;
        push_id(&w->x->order, w->id);
        w->at = tl_now();
    }
    cr_expect_eq(tl_lock_release(l), 0);
    return w->rc;
}

static int main_cond_wait_for(void *arg)
{
    (void)arg;
    struct cond_ctx x = {0};
    cr_assert_eq(tl_cond_init(&x.c, NULL), 0);
    tl_lock *l = tl_cond_lock(&x.c);
    struct cond_who w[3];
    tl_task t[3];
    spawn_cond_whos(t, w, 3, cond_consumer, &x);
    tl_test_settle();
    /* A spurious wake-up: the predicate is false, they wait again. */
    cr_expect_eq(tl_lock_acquire(l), 0);
    cr_expect_eq(tl_cond_notify_all(&x.c), 3);
    cr_expect_eq(tl_lock_release(l), 0);
    tl_test_settle();
    cr_expect_eq(x.order.n, 0);
    for (int k = 1; k <= 3; k++) {
        cr_expect_eq(tl_sleep(1.0), 0);
        cr_expect_eq(tl_lock_acquire(l), 0);
        x.items++;
        cr_expect_eq(tl_cond_notify(&x.c, 1), 1);
        cr_expect_eq(tl_lock_release(l), 0);
    }
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(tl_test_join(t[i]), 0);
        cr_expect_eq(w[i].owned_after, 1);
        cr_expect_eq(x.order.ids[i], i);
        cr_expect_eq(w[i].at, (double)(i + 1));
    }
    cr_expect_eq(x.items, 0);
    /* Predicate already true: returns at once. */
    x.items = 1;
    cr_expect_eq(tl_lock_acquire(l), 0);
    cr_expect_eq(tl_cond_wait_for(&x.c, have_items, &x), 0);
    cr_expect_eq(tl_lock_release(l), 0);
    return 0;
}

Test(cond, wait_for_rechecks_the_predicate, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cond_wait_for, NULL), 0);
}

/* ======================================================================
 * Barrier
 * ====================================================================== */

static int barrier_waiter(void *arg)
{
    struct who *w = arg;
    w->rc = tl_barrier_wait(w->obj);
    w->at = tl_now();
    w->after_rc = tl_sleep(0.0);
    return w->rc < 0 ? w->rc : 0;
}

static int main_barrier(void *arg)
{
    (void)arg;
    tl_barrier b;
    cr_assert_eq(tl_barrier_init(&b, 3), 0);
    cr_expect_eq(tl_barrier_parties(&b), 3);
    for (int round = 0; round < 2; round++) {
        struct who w[2];
        tl_task t[2];
        for (int i = 0; i < 2; i++) {
            w[i] = (struct who){.id = i, .obj = &b};
            t[i] = tl_test_spawn(barrier_waiter, &w[i]);
            cr_expect_eq(tl_sleep(1.0), 0);
        }
        cr_expect_eq(tl_barrier_n_waiting(&b), 2);
        cr_expect_eq(tl_barrier_wait(&b), 2, "the last arrival");
        for (int i = 0; i < 2; i++) {
            cr_expect_eq(tl_test_join(t[i]), 0);
            cr_expect_eq(w[i].rc, i, "arrival index");
            cr_expect_eq(w[i].at, 2.0 * round + 2.0);
        }
        cr_expect_eq(tl_barrier_n_waiting(&b), 0);
    }
    cr_expect_eq(tl_barrier_broken(&b), 0);
    cr_expect_eq(tl_barrier_destroy(&b), 0);
    tl_barrier one;
    cr_assert_eq(tl_barrier_init(&one, 1), 0);
    cr_expect_eq(tl_barrier_wait(&one), 0);
    cr_expect_eq(tl_barrier_init(&one, 0), -EINVAL);
    return 0;
}

Test(barrier, trips_when_all_parties_arrive_and_is_cyclic, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_barrier, NULL), 0);
}

static int main_barrier_cancel(void *arg)
{
    (void)arg;
    tl_barrier b;
    cr_assert_eq(tl_barrier_init(&b, 3), 0);
    struct who w[3];
    tl_task t[3];
    spawn_whos(t, w, 2, barrier_waiter, &b, NULL);
    tl_test_settle();
    cr_expect_eq(tl_cancel(t[0]), 0);
    cr_expect_eq(tl_test_join(t[0]), -ECANCELED);
    cr_expect_eq(tl_barrier_n_waiting(&b), 1, "left the round");
    cr_expect_eq(tl_barrier_broken(&b), 0, "not broken (asyncio)");
    w[2] = (struct who){.id = 2, .obj = &b};
    t[2] = tl_test_spawn(barrier_waiter, &w[2]);
    tl_test_settle();
    cr_expect_eq(tl_barrier_n_waiting(&b), 2);
    cr_expect_eq(tl_barrier_wait(&b), 2);
    cr_expect_eq(tl_cancel(t[1]), 0); /* tripped first: keeps its index */
    cr_expect_eq(tl_test_join(t[1]), 0);
    cr_expect_eq(tl_test_join(t[2]), 0);
    cr_expect_eq(w[1].rc, 0);
    cr_expect_eq(w[1].after_rc, -ECANCELED);
    cr_expect_eq(w[2].rc, 1, "indices stay unique after a waiter left");
    return 0;
}

Test(barrier, cancelled_waiter_leaves_the_round, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_barrier_cancel, NULL), 0);
}

static int main_barrier_abort(void *arg)
{
    (void)arg;
    tl_barrier b;
    cr_assert_eq(tl_barrier_init(&b, 3), 0);
    struct who w[2];
    tl_task t[2];
    spawn_whos(t, w, 2, barrier_waiter, &b, NULL);
    tl_test_settle();
    cr_expect_eq(tl_barrier_abort(&b), 0);
    for (int i = 0; i < 2; i++) cr_expect_eq(tl_test_join(t[i]), TL_EBROKEN);
    cr_expect_eq(tl_barrier_broken(&b), 1);
    cr_expect_eq(tl_barrier_wait(&b), TL_EBROKEN, "stays broken");
    cr_expect_eq(tl_barrier_reset(&b), 0);
    cr_expect_eq(tl_barrier_broken(&b), 0);
    /* A reset while tasks wait breaks their round only. */
    w[0] = (struct who){.obj = &b};
    t[0] = tl_test_spawn(barrier_waiter, &w[0]);
    tl_test_settle();
    cr_expect_eq(tl_barrier_reset(&b), 0);
    cr_expect_eq(tl_test_join(t[0]), TL_EBROKEN);
    cr_expect_eq(tl_barrier_broken(&b), 0);
    cr_expect_eq(tl_barrier_n_waiting(&b), 0);
    spawn_whos(t, w, 2, barrier_waiter, &b, NULL);
    tl_test_settle();
    cr_expect_eq(tl_barrier_wait(&b), 2);
    for (int i = 0; i < 2; i++) cr_expect_eq(tl_test_join(t[i]), 0);
    cr_expect_eq(tl_barrier_destroy(&b), 0);
    return 0;
}

Test(barrier, abort_breaks_it_and_reset_repairs_it, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_barrier_abort, NULL), 0);
}

/* ======================================================================
 * One loop per primitive
 * ====================================================================== */

struct xloop {
    tl_sem sem;
    int rc;
};

static int other_loop_main(void *arg)
{
    struct xloop *x = arg;
    x->rc = tl_sem_release(&x->sem);
    return 0;
}

static void *other_thread(void *arg)
{
    tl_config c = {.virtual_clock = 1, .no_sigint = 1};
    tl_run_with(&c, other_loop_main, arg);
    return NULL;
}

static int main_xloop(void *arg)
{
    struct xloop *x = arg;
    struct who w = {.obj = &x->sem};
    tl_task t = tl_test_spawn(sem_waiter, &w);
    tl_test_settle(); /* w waits on the semaphore in this loop */
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, other_thread, x), 0);
    pthread_join(th, NULL); /* briefly blocks this loop: fine in a test */
    cr_expect_eq(x->rc, -EXDEV, "another loop may not wake our tasks");
    cr_expect_eq(tl_sem_value(&x->sem), 0);
    cr_expect_eq(tl_sem_release(&x->sem), 0);
    cr_expect_eq(tl_test_join(t), 0);
    return 0;
}

static void xloop_child(void *arg)
{
    (void)arg;
    struct xloop x = {0};
    tl_sem_init(&x.sem, 0);
    printf("rc=%d\n", run_virtual(main_xloop, &x));
}

Test(sync, another_loop_cannot_wake_our_waiters, .timeout = 10)
{
    char out[2048];
    int st = run_child(xloop_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "rc=0");
    TL_EXPECT_OUT(out, "a primitive belongs to one loop");
}
