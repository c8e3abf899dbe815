/* Task groups: asyncio.TaskGroup / Trio's nursery.
 *
 * The verdict of tl_group_wait: the first real failure (all listed by
 * errs), else -ECANCELED if a scope around the group was cancelled, else 0;
 * cancellations the group caused are not failures; errors beat
 * cancellation. Virtual clock throughout.
 */
#include "helpers.h"

#include <stdint.h>

/* A child: sleep `secs` (0: don't suspend), then fail with `code` and
 * `msg` (code < 0) or return `ret`. If its sleep is cancelled it returns
 * `on_cancel` (0 means: pass -ECANCELED on). */
struct kid {
    double secs;
    int ret;
    int code;
    const char *msg;
    int on_cancel;
    /* results */
    int sleep_rc;
    double at;
    int done;
};

static int kid(void *arg)
{
    struct kid *k = arg;
    k->sleep_rc = k->secs > 0 ? tl_sleep(k->secs) : 0;
    k->at = tl_now();
    k->done = 1;
    if (k->sleep_rc < 0) {
        if (k->on_cancel == 0) return k->sleep_rc;
        return k->msg ? tl_fail(k->on_cancel, "%s", k->msg) : k->on_cancel;
    }
    if (k->code < 0) return k->msg ? tl_fail(k->code, "%s", k->msg) : k->code;
    return k->ret;
}

static int spawn_kid(tl_group g, const char *name, struct kid *k, int *status)
{
    return tl_group_spawn_ex(g, &(tl_spawn_opts){.name = name}, kid, k,
                             status);
}

/* ---- failure cancels the siblings and the body ---------------------------- */

static int main_first_failure(void *arg)
{
    (void)arg;
    struct kid bad = {.secs = 1.0, .code = -EIO, .msg = "disk a"};
    struct kid sib = {.secs = 10.0, .ret = 1};
    int st_bad = 111, st_sib = 111;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "bad", &bad, &st_bad), 0);
    cr_expect_eq(spawn_kid(g, "sib", &sib, &st_sib), 0);
    int body = tl_sleep(10.0);
    double body_at = tl_now();
    tl_errors errs;
    int rc = tl_group_wait(g, body, &errs);
    cr_expect_eq(body, -ECANCELED);  /* the body was cancelled ... */
    cr_expect_eq(body_at, 1.0);      /* ... when the child failed */
    cr_expect_eq(sib.sleep_rc, -ECANCELED);
    cr_expect_eq(sib.at, 1.0);
    cr_expect_eq(st_bad, -EIO);
    cr_expect_eq(st_sib, -ECANCELED);
    cr_expect_eq(rc, -EIO);
    cr_expect_eq(errs.count, 1u);
    if (errs.count == 1) {
        cr_expect_eq(errs.items[0].code, -EIO);
        cr_expect_str_eq(errs.items[0].task, "bad");
        cr_expect_str_eq(errs.items[0].message, "disk a");
    }
    tl_errors_free(&errs);
    /* Outside the group, the body is not cancelled any more. */
    cr_expect_eq(tl_cancelled(), 0);
    cr_expect_eq(tl_sleep(1.0), 0);
    cr_expect_eq(tl_now(), 2.0);
    return 0;
}

Test(group, first_failure_cancels_siblings_and_body, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_first_failure, NULL), 0);
}

/* a and c fail at t=1 (timers armed in that order, so a runs first); a's
 * failure cancels the rest: c had already been woken by its timer, so its
 * sleep succeeded (completed wins) and it fails on its own; b fails while
 * unwinding from the cancel (a real failure); d just returns -ECANCELED (the
 * group caused it: not a failure); e attached a message to another code. */
static int main_all_failures(void *arg)
{
    (void)arg;
    struct kid a = {.secs = 1.0, .code = -EIO, .msg = "disk a"};
    struct kid b = {.secs = 10.0, .on_cancel = -EPIPE,
                    .msg = "b broke while cancelled"};
    struct kid c = {.secs = 1.0, .code = -ENOENT, .msg = "c missing"};
    struct kid d = {.secs = 10.0};
    struct kid e = {.secs = 10.0, .on_cancel = -ENOTCONN};
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "a", &a, NULL), 0);
    cr_expect_eq(spawn_kid(g, "b", &b, NULL), 0);
    cr_expect_eq(spawn_kid(g, "c", &c, NULL), 0);
    cr_expect_eq(spawn_kid(g, "d", &d, NULL), 0);
    cr_expect_eq(spawn_kid(g, "e", &e, NULL), 0);
    int body = tl_sleep(10.0);
    tl_errors errs;
    int rc = tl_group_wait(g, body, &errs);
    cr_expect_eq(rc, -EIO);
    cr_expect_eq(c.sleep_rc, 0);
    cr_expect_eq(d.sleep_rc, -ECANCELED);
    cr_expect_eq(errs.count, 4u);
    static const struct {
        const char *task;
        int code;
        const char *msg;
    } want[4] = {{"a", -EIO, "disk a"},
                 {"c", -ENOENT, "c missing"},
                 {"b", -EPIPE, "b broke while cancelled"},
                 {"e", -ENOTCONN, ""}};
    for (size_t i = 0; i < errs.count && i < 4; i++) {
        cr_expect_str_eq(errs.items[i].task, want[i].task, "item %zu", i);
        cr_expect_eq(errs.items[i].code, want[i].code, "item %zu", i);
        cr_expect_str_eq(errs.items[i].message, want[i].msg, "item %zu", i);
    }
    tl_errors_free(&errs);
    cr_expect_eq(errs.count, 0u);
    cr_expect_null(errs.items);
    return 0;
}

Test(group, all_failures_listed_in_order, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_all_failures, NULL), 0);
}

static int main_caused_not_failures(void *arg)
{
    (void)arg;
    struct kid bad = {.secs = 1.0, .code = -EIO};
    struct kid k[4] = {{.secs = 5.0}, {.secs = 6.0}, {.secs = 7.0},
                       {.secs = 8.0, .on_cancel = 0}};
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    for (int i = 0; i < 4; i++) cr_expect_eq(spawn_kid(g, "k", &k[i], NULL), 0);
    cr_expect_eq(spawn_kid(g, "bad", &bad, NULL), 0);
    tl_errors errs;
    int rc = tl_group_wait(g, 0, &errs);
    cr_expect_eq(rc, -EIO);
    cr_expect_eq(tl_now(), 1.0);
    for (int i = 0; i < 4; i++) cr_expect_eq(k[i].sleep_rc, -ECANCELED);
    cr_expect_eq(errs.count, 1u); /* only the real one */
    if (errs.count) cr_expect_str_eq(errs.items[0].task, "bad");
    tl_errors_free(&errs);
    return 0;
}

Test(group, cancellations_the_group_caused_are_not_failures, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_caused_not_failures, NULL), 0);
}

/* A child that returns -ECANCELED though nobody cancelled it failed. */
static int main_spontaneous_ecanceled(void *arg)
{
    (void)arg;
    struct kid odd = {.secs = 1.0, .code = -ECANCELED};
    struct kid sib = {.secs = 5.0};
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "odd", &odd, NULL), 0);
    cr_expect_eq(spawn_kid(g, "sib", &sib, NULL), 0);
    tl_errors errs;
    cr_expect_eq(tl_group_wait(g, 0, &errs), -ECANCELED);
    cr_expect_eq(sib.sleep_rc, -ECANCELED);
    cr_expect_eq(sib.at, 1.0);
    cr_expect_eq(errs.count, 1u);
    if (errs.count) cr_expect_str_eq(errs.items[0].task, "odd");
    tl_errors_free(&errs);
    return 0;
}

Test(group, uncaused_ecanceled_from_a_child_is_a_failure, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_spontaneous_ecanceled, NULL), 0);
}

/* ---- outer cancellation --------------------------------------------------- */

struct outer {
    struct kid k;
    int body_rc, rc;
    double at;
    tl_errors errs;
    int child_st;
};

static int group_owner(void *arg)
{
    struct outer *o = arg;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "x", &o->k, &o->child_st), 0);
    o->body_rc = tl_sleep(10.0);
    o->rc = tl_group_wait(g, o->body_rc, &o->errs);
    o->at = tl_now();
    return o->rc;
}

static int main_errors_beat_cancel(void *arg)
{
    (void)arg;
    struct outer o = {.k = {.secs = 10.0, .on_cancel = -EIO,
                            .msg = "cleanup failed"},
                      .body_rc = 1, .rc = 1, .child_st = 111};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, group_owner, &o), 0);
    cr_expect_eq(tl_sleep(0.5), 0);
    cr_expect_eq(tl_cancel(t), 0);
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(o.body_rc, -ECANCELED);
    cr_expect_eq(o.k.sleep_rc, -ECANCELED); /* the cancel reached the child */
    cr_expect_eq(o.k.at, 0.5);
    cr_expect_eq(o.child_st, -EIO);
    cr_expect_eq(o.rc, -EIO); /* the error, not -ECANCELED */
    cr_expect_eq(o.at, 0.5);
    cr_expect_eq(o.errs.count, 1u);
    if (o.errs.count) {
        cr_expect_str_eq(o.errs.items[0].task, "x");
        cr_expect_str_eq(o.errs.items[0].message, "cleanup failed");
    }
    tl_errors_free(&o.errs);
    cr_expect_eq(st, -EIO);
    return 0;
}

Test(group, errors_beat_an_outer_cancellation, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_errors_beat_cancel, NULL), 0);
}

static int main_outer_cancel(void *arg)
{
    (void)arg;
    struct outer o = {.k = {.secs = 10.0}, .body_rc = 1, .rc = 1,
                      .child_st = 111};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, group_owner, &o), 0);
    cr_expect_eq(tl_sleep(0.5), 0);
    cr_expect_eq(tl_cancel(t), 0);
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(o.child_st, -ECANCELED);
    cr_expect_eq(o.rc, -ECANCELED);
    cr_expect_eq(o.at, 0.5);
    cr_expect_eq(o.errs.count, 0u);
    cr_expect_null(o.errs.items);
    cr_expect_eq(st, -ECANCELED);
    return 0;
}

Test(group, outer_cancel_without_failure_is_ecanceled, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_outer_cancel, NULL), 0);
}

/* The failure comes after the body already saw the outer cancel: the
 * child needs 1 s of shielded cleanup and then fails. The body's -ECANCELED
 * (from the task's own cancel) is not a failure, so the child's error is
 * still the verdict and the only entry. */
static int fails_after_cleanup(void *arg)
{
    struct kid *k = arg;
    k->sleep_rc = tl_sleep(10.0);
    tl_scope sh = tl_shield_enter();
    cr_expect_eq(tl_scope_exit(sh, tl_sleep(1.0)), 0);
    k->at = tl_now();
    return tl_fail(-EIO, "cleanup failed late");
}

static int group_owner_late(void *arg)
{
    struct outer *o = arg;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(tl_group_spawn_ex(g, &(tl_spawn_opts){.name = "late"},
                                   fails_after_cleanup, &o->k, &o->child_st),
                 0);
    o->body_rc = tl_sleep(10.0);
    o->rc = tl_group_wait(g, o->body_rc, &o->errs);
    o->at = tl_now();
    return o->rc;
}

static int main_errors_beat_cancel_late(void *arg)
{
    (void)arg;
    struct outer o = {.body_rc = 1, .rc = 1, .child_st = 111};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, group_owner_late, &o), 0);
    cr_expect_eq(tl_sleep(0.5), 0);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_eq(o.body_rc, -ECANCELED);
    cr_expect_eq(o.k.sleep_rc, -ECANCELED);
    cr_expect_eq(o.k.at, 1.5);
    cr_expect_eq(o.at, 1.5);
    cr_expect_eq(o.rc, -EIO);
    cr_expect_eq(o.errs.count, 1u);
    if (o.errs.count) {
        cr_expect_str_eq(o.errs.items[0].task, "late");
        cr_expect_eq(o.errs.items[0].code, -EIO);
    }
    tl_errors_free(&o.errs);
    return 0;
}

Test(group, errors_beat_an_outer_cancellation_seen_first_by_body,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_errors_beat_cancel_late, NULL), 0);
}

/* A cancelled task may still run a group inside a shield (cleanup that
 * needs concurrency): the group is not cancelled, so spawning works. */
static int shielded_group(void *arg)
{
    struct outer *o = arg;
    cr_expect_eq(tl_sleep(10.0), -ECANCELED);
    tl_scope sh = tl_shield_enter();
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    o->body_rc = spawn_kid(g, "cleanup", &o->k, &o->child_st);
    o->rc = tl_group_wait(g, 0, &o->errs);
    o->at = tl_now();
    cr_expect_eq(tl_scope_exit(sh, o->rc), 0);
    return tl_yield();
}

static int main_shielded_group(void *arg)
{
    (void)arg;
    struct outer o = {.k = {.secs = 1.0, .ret = 4}, .body_rc = 1, .rc = 1,
                      .child_st = 111};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, shielded_group, &o), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_cancel(t), 0);
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(o.body_rc, 0); /* spawn accepted */
    cr_expect_eq(o.k.sleep_rc, 0);
    cr_expect_eq(o.child_st, 4);
    cr_expect_eq(o.rc, 0);
    cr_expect_eq(o.at, 1.0);
    cr_expect_eq(o.errs.count, 0u);
    cr_expect_eq(st, -ECANCELED); /* after the shield the cancel shows */
    return 0;
}

Test(group, group_inside_shield_of_cancelled_task_works, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_shielded_group, NULL), 0);
}

/* The owner is cancelled while already in tl_group_wait: the wait itself
 * ignores cancellation, but the cancel reaches the children. */
static int waiting_owner(void *arg)
{
    struct outer *o = arg;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "x", &o->k, &o->child_st), 0);
    o->rc = tl_group_wait(g, 0, &o->errs);
    o->at = tl_now();
    return o->rc;
}

static int main_cancel_during_wait(void *arg)
{
    (void)arg;
    struct outer o = {.k = {.secs = 10.0}, .rc = 1, .child_st = 111};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, waiting_owner, &o), 0);
    cr_expect_eq(tl_sleep(2.0), 0);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_eq(o.child_st, -ECANCELED);
    cr_expect_eq(o.k.at, 2.0);
    cr_expect_eq(o.rc, -ECANCELED);
    cr_expect_eq(o.at, 2.0);
    return 0;
}

Test(group, cancel_during_wait_reaches_children, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_during_wait, NULL), 0);
}

/* ---- nesting ------------------------------------------------------------------ */

static int main_nested_inner_failure(void *arg)
{
    (void)arg;
    struct kid outer_kid = {.secs = 5.0};
    struct kid i1 = {.secs = 1.0, .code = -EIO, .msg = "inner"};
    struct kid i2 = {.secs = 10.0};
    int st_outer = 111;
    tl_group g1, g2;
    cr_expect_eq(tl_group_enter(&g1), 0);
    cr_expect_eq(spawn_kid(g1, "outer_kid", &outer_kid, &st_outer), 0);

    cr_expect_eq(tl_group_enter(&g2), 0);
    cr_expect_eq(spawn_kid(g2, "i1", &i1, NULL), 0);
    cr_expect_eq(spawn_kid(g2, "i2", &i2, NULL), 0);
    tl_errors inner;
    int inner_rc = tl_group_wait(g2, 0, &inner);
    cr_expect_eq(inner_rc, -EIO);
    cr_expect_eq(tl_now(), 1.0);
    cr_expect_eq(i2.sleep_rc, -ECANCELED);
    cr_expect_eq(inner.count, 1u);
    tl_errors_free(&inner);
    /* The inner failure did not touch the outer group yet. */
    cr_expect_eq(outer_kid.done, 0);
    cr_expect_eq(tl_cancelled(), 0);

    /* The body passes it on: the outer group fails with the body's error. */
    tl_errors outer;
    int rc = tl_group_wait(g1, tl_fail(inner_rc, "inner group failed"),
                           &outer);
    cr_expect_eq(rc, -EIO);
    cr_expect_eq(outer_kid.sleep_rc, -ECANCELED);
    cr_expect_eq(outer_kid.at, 1.0);
    cr_expect_eq(st_outer, -ECANCELED);
    cr_expect_eq(outer.count, 1u);
    if (outer.count) {
        cr_expect_str_eq(outer.items[0].task, "main");
        cr_expect_eq(outer.items[0].code, -EIO);
        cr_expect_str_eq(outer.items[0].message, "inner group failed");
    }
    tl_errors_free(&outer);
    return 0;
}

Test(group, nested_inner_failure_reaches_outer_through_body, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_nested_inner_failure, NULL), 0);
}

static int main_nested_outer_failure(void *arg)
{
    (void)arg;
    struct kid f = {.secs = 1.0, .code = -EIO};
    struct kid inner_kid = {.secs = 10.0};
    int st_inner = 111;
    tl_group g1, g2;
    cr_expect_eq(tl_group_enter(&g1), 0);
    cr_expect_eq(spawn_kid(g1, "f", &f, NULL), 0);
    cr_expect_eq(tl_group_enter(&g2), 0);
    cr_expect_eq(spawn_kid(g2, "inner_kid", &inner_kid, &st_inner), 0);
    tl_errors inner;
    int inner_rc = tl_group_wait(g2, 0, &inner);
    /* The outer group's failure cancelled the inner group's children; to
     * the inner group that is an enclosing cancel, not a failure. */
    cr_expect_eq(inner_rc, -ECANCELED);
    cr_expect_eq(inner.count, 0u);
    cr_expect_eq(st_inner, -ECANCELED);
    cr_expect_eq(inner_kid.at, 1.0);
    cr_expect_eq(tl_now(), 1.0);
    tl_errors outer;
    int rc = tl_group_wait(g1, inner_rc, &outer);
    cr_expect_eq(rc, -EIO);
    cr_expect_eq(outer.count, 1u); /* the body's -ECANCELED is not listed */
    if (outer.count) cr_expect_str_eq(outer.items[0].task, "f");
    tl_errors_free(&outer);
    return 0;
}

Test(group, outer_failure_cancels_nested_group_children, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_nested_outer_failure, NULL), 0);
}

/* A child opens its own group: cancelling the outer group reaches the
 * grandchildren too. */
struct sub {
    struct kid gk;
    int gk_st;
    int rc;
};

static int child_with_group(void *arg)
{
    struct sub *s = arg;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "grandchild", &s->gk, &s->gk_st), 0);
    s->rc = tl_group_wait(g, 0, NULL);
    return s->rc;
}

static int main_grandchildren(void *arg)
{
    (void)arg;
    struct sub s = {.gk = {.secs = 10.0}, .gk_st = 111, .rc = 1};
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    int st = 111;
    cr_expect_eq(tl_group_spawn_ex(g, NULL, child_with_group, &s, &st), 0);
    cr_expect_eq(tl_sleep(3.0), 0);
    cr_expect_eq(tl_group_cancel(g), 0);
    cr_expect_eq(tl_group_wait(g, 0, NULL), 0);
    cr_expect_eq(s.gk_st, -ECANCELED);
    cr_expect_eq(s.gk.at, 3.0);
    cr_expect_eq(s.rc, -ECANCELED);
    cr_expect_eq(st, -ECANCELED);
    cr_expect_eq(tl_now(), 3.0);
    return 0;
}

Test(group, cancel_reaches_grandchildren, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_grandchildren, NULL), 0);
}

/* ---- spawning -------------------------------------------------------------------- */

struct spawner {
    tl_group g;
    struct kid late;
    int late_st;
    int spawn_rc;
};

static int spawns_sibling(void *arg)
{
    struct spawner *s = arg;
    cr_expect_eq(tl_sleep(1.0), 0);
    s->spawn_rc = spawn_kid(s->g, "late", &s->late, &s->late_st);
    return 1;
}

static int main_spawn_while_waiting(void *arg)
{
    (void)arg;
    struct spawner s = {.late = {.secs = 1.0, .ret = 2}, .late_st = 111,
                        .spawn_rc = 1};
    int st = 111;
    cr_expect_eq(tl_group_enter(&s.g), 0);
    cr_expect_eq(tl_group_spawn_ex(s.g, NULL, spawns_sibling, &s, &st), 0);
    /* The body waits at once; the child adds a sibling meanwhile. */
    cr_expect_eq(tl_group_wait(s.g, 0, NULL), 0);
    cr_expect_eq(s.spawn_rc, 0);
    cr_expect_eq(st, 1);
    cr_expect_eq(s.late.done, 1);
    cr_expect_eq(s.late_st, 2);
    cr_expect_eq(tl_now(), 2.0); /* it waited for the late sibling too */
    return 0;
}

Test(group, children_spawn_siblings_while_group_waits, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_spawn_while_waiting, NULL), 0);
}

static int main_spawn_after_group_cancel(void *arg)
{
    (void)arg;
    struct kid k = {.secs = 1.0};
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "k", &k, NULL), 0);
    cr_expect_eq(tl_group_cancel(g), 0);
    cr_expect_eq(spawn_kid(g, "refused", &k, NULL), -ESHUTDOWN);
    cr_expect_eq(tl_group_wait(g, 0, NULL), 0);
    return 0;
}

Test(group, spawn_refused_once_cancelled, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_spawn_after_group_cancel, NULL), 0);
}

static int main_spawn_after_failure(void *arg)
{
    (void)arg;
    struct kid bad = {.code = -EIO};
    struct kid k = {.secs = 1.0};
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "bad", &bad, NULL), 0);
    cr_expect_eq(tl_yield(), 0); /* bad runs and fails meanwhile */
    cr_expect_eq(bad.done, 1);
    cr_expect_eq(spawn_kid(g, "refused", &k, NULL), -ESHUTDOWN);
    int body = tl_yield();
    cr_expect_eq(body, -ECANCELED);
    cr_expect_eq(tl_group_wait(g, body, NULL), -EIO);
    cr_expect_eq(k.done, 0);
    return 0;
}

Test(group, spawn_refused_once_failed, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_spawn_after_failure, NULL), 0);
}

static int main_spawn_after_finish(void *arg)
{
    (void)arg;
    struct kid k = {.secs = 1.0};
    tl_group g, g2;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "k", &k, NULL), 0);
    cr_expect_eq(tl_group_wait(g, 0, NULL), 0);
    cr_expect_eq(spawn_kid(g, "refused", &k, NULL), -ESHUTDOWN);
    /* Still refused when a new group reuses the record. */
    cr_expect_eq(tl_group_enter(&g2), 0);
    cr_expect_eq(spawn_kid(g, "refused", &k, NULL), -ESHUTDOWN);
    cr_expect_eq(tl_group_cancel(g), -ESHUTDOWN);
    cr_expect_eq(spawn_kid(g2, "ok", &k, NULL), 0);
    cr_expect_eq(tl_group_wait(g2, 0, NULL), 0);
    cr_expect_eq(tl_now(), 2.0);
    return 0;
}

Test(group, spawn_refused_once_finished, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_spawn_after_finish, NULL), 0);
}

static int main_spawn_in_cancelled_owner(void *arg)
{
    (void)arg;
    struct kid k = {.secs = 1.0};
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    tl_scope s = tl_cancel_scope_enter();
    cr_expect_eq(tl_scope_cancel(s), 0);
    /* A scope inside the group is cancelled: the group itself is not. */
    cr_expect_eq(spawn_kid(g, "ok", &k, NULL), 0);
    cr_expect_eq(tl_scope_exit(s, 0), 0);
    cr_expect_eq(tl_group_wait(g, 0, NULL), 0);
    cr_expect_eq(k.sleep_rc, 0);
    return 0;
}

Test(group, inner_scope_cancel_does_not_shut_the_group, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_spawn_in_cancelled_owner, NULL), 0);
}

static int main_status_pointer(void *arg)
{
    (void)arg;
    struct kid a = {.secs = 2.0, .ret = 5};
    struct kid b = {.secs = 1.0, .ret = 0};
    struct kid c = {.ret = 77};
    int sa = 111, sb = 111;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "a", &a, &sa), 0);
    cr_expect_eq(spawn_kid(g, "b", &b, &sb), 0);
    cr_expect_eq(tl_group_spawn(g, kid, &c), 0); /* no status pointer */
    cr_expect_eq(sa, 111); /* not yet run */
    cr_expect_eq(tl_sleep(1.5), 0);
    cr_expect_eq(sb, 0);   /* written when b finished */
    cr_expect_eq(sa, 111);
    cr_expect_eq(tl_group_wait(g, 0, NULL), 0);
    cr_expect_eq(sa, 5);
    cr_expect_eq(c.done, 1);
    return 0;
}

Test(group, spawn_ex_status_pointer, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_status_pointer, NULL), 0);
}

static int record_order(void *arg)
{
    int *slot = arg;
    static int next;
    *slot = ++next;
    return 0;
}

static int main_child_order(void *arg)
{
    (void)arg;
    int seq[5] = {0};
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(tl_group_spawn(g, record_order, &seq[i]), 0);
    for (int i = 0; i < 5; i++) cr_expect_eq(seq[i], 0); /* not yet */
    cr_expect_eq(tl_group_wait(g, 0, NULL), 0);
    for (int i = 0; i < 5; i++) cr_expect_eq(seq[i], i + 1);
    return 0;
}

Test(group, children_start_in_spawn_order_after_body_suspends, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_child_order, NULL), 0);
}

/* ---- the body's own result --------------------------------------------------- */

static int main_body_fails(void *arg)
{
    (void)arg;
    struct kid k = {.secs = 10.0};
    int st = 111;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "k", &k, &st), 0);
    cr_expect_eq(tl_sleep(1.0), 0);
    tl_errors errs;
    int rc = tl_group_wait(g, tl_fail(-EINVAL, "bad input %d", 3), &errs);
    cr_expect_eq(rc, -EINVAL);
    cr_expect_eq(st, -ECANCELED);
    cr_expect_eq(k.at, 1.0);
    cr_expect_eq(tl_now(), 1.0);
    cr_expect_eq(errs.count, 1u);
    if (errs.count) {
        cr_expect_str_eq(errs.items[0].task, "main");
        cr_expect_eq(errs.items[0].code, -EINVAL);
        cr_expect_str_eq(errs.items[0].message, "bad input 3");
    }
    tl_errors_free(&errs);
    return 0;
}

Test(group, negative_body_result_cancels_children_and_is_listed,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_body_fails, NULL), 0);
}

static int main_body_and_child_fail(void *arg)
{
    (void)arg;
    struct kid k = {.secs = 1.0, .code = -EIO};
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "k", &k, NULL), 0);
    cr_expect_eq(tl_sleep(2.0), -ECANCELED);
    tl_errors errs;
    /* The body fails on its own after the child: both listed, child first. */
    int rc = tl_group_wait(g, -EPIPE, &errs);
    cr_expect_eq(rc, -EIO);
    cr_expect_eq(errs.count, 2u);
    if (errs.count == 2) {
        cr_expect_str_eq(errs.items[0].task, "k");
        cr_expect_eq(errs.items[1].code, -EPIPE);
        cr_expect_str_eq(errs.items[1].task, "main");
    }
    tl_errors_free(&errs);
    return 0;
}

Test(group, body_failure_after_child_failure_is_listed_second, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_body_and_child_fail, NULL), 0);
}

/* ---- tl_group_cancel ---------------------------------------------------------------- */

static int main_group_cancel(void *arg)
{
    (void)arg;
    struct kid k[2] = {{.secs = 10.0}, {.secs = 20.0}};
    int st[2] = {111, 111};
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "a", &k[0], &st[0]), 0);
    cr_expect_eq(spawn_kid(g, "b", &k[1], &st[1]), 0);
    cr_expect_eq(tl_sleep(1.0), 0);
    cr_expect_eq(tl_group_cancel(g), 0);
    int body = tl_sleep(5.0); /* the body is cancelled too */
    cr_expect_eq(body, -ECANCELED);
    tl_errors errs;
    cr_expect_eq(tl_group_wait(g, body, &errs), 0);
    cr_expect_eq(errs.count, 0u);
    cr_expect_eq(st[0], -ECANCELED);
    cr_expect_eq(st[1], -ECANCELED);
    cr_expect_eq(tl_now(), 1.0);
    /* Once out of the group, nothing is cancelled. */
    cr_expect_eq(tl_sleep(1.0), 0);
    return 0;
}

Test(group, group_cancel_verdict_is_zero, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_group_cancel, NULL), 0);
}

struct self_cancel {
    tl_group g;
    int rc;
};

static int cancels_own_group(void *arg)
{
    struct self_cancel *s = arg;
    cr_expect_eq(tl_sleep(1.0), 0);
    s->rc = tl_group_cancel(s->g);
    return 0;
}

static int main_child_cancels_group(void *arg)
{
    (void)arg;
    struct self_cancel s = {.rc = 1};
    struct kid k = {.secs = 10.0};
    cr_expect_eq(tl_group_enter(&s.g), 0);
    cr_expect_eq(tl_group_spawn(s.g, cancels_own_group, &s), 0);
    cr_expect_eq(spawn_kid(s.g, "k", &k, NULL), 0);
    cr_expect_eq(tl_group_wait(s.g, 0, NULL), 0);
    cr_expect_eq(s.rc, 0);
    cr_expect_eq(k.sleep_rc, -ECANCELED);
    cr_expect_eq(tl_now(), 1.0);
    return 0;
}

Test(group, child_may_cancel_its_group, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_child_cancels_group, NULL), 0);
}

/* ---- misc -------------------------------------------------------------------------- */

static int main_empty(void *arg)
{
    (void)arg;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    tl_errors errs = {.count = 99};
    cr_expect_eq(tl_group_wait(g, 0, &errs), 0);
    cr_expect_eq(errs.count, 0u);
    cr_expect_null(errs.items);
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(tl_group_wait(g, 12, NULL), 0); /* a positive body result */
    return 0;
}

Test(group, empty_group, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_empty, NULL), 0);
}

struct intruder {
    tl_group g;
    int rc;
};

static int waits_on_foreign_group(void *arg)
{
    struct intruder *i = arg;
    i->rc = tl_group_wait(i->g, 0, NULL);
    return 0;
}

static int main_foreign_wait(void *arg)
{
    (void)arg;
    struct intruder in = {.rc = 1};
    cr_expect_eq(tl_group_enter(&in.g), 0);
    cr_expect_eq(tl_group_spawn(in.g, waits_on_foreign_group, &in), 0);
    cr_expect_eq(tl_group_wait(in.g, 0, NULL), 0);
    cr_expect_eq(in.rc, -EPERM);
    return 0;
}

Test(group, only_the_owner_may_wait, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_foreign_wait, NULL), 0);
}

static int main_with_group(void *arg)
{
    (void)arg;
    struct kid a = {.secs = 1.0, .ret = 1}, b = {.secs = 2.0, .ret = 2};
    int sa = 111, sb = 111, rc = 99;
    tl_group g;
    TL_WITH_GROUP(&g, &rc)
    {
        cr_expect_eq(rc, 0);
        cr_expect_eq(spawn_kid(g, "a", &a, &sa), 0);
        cr_expect_eq(spawn_kid(g, "b", &b, &sb), 0);
        rc = 0;
    }
    cr_expect_eq(rc, 0);
    cr_expect_eq(sa, 1);
    cr_expect_eq(sb, 2);
    cr_expect_eq(tl_now(), 2.0);

    /* A failing child: the verdict lands in rc. */
    struct kid bad = {.secs = 1.0, .code = -EIO}, slow = {.secs = 9.0};
    TL_WITH_GROUP(&g, &rc)
    {
        cr_expect_eq(spawn_kid(g, "bad", &bad, NULL), 0);
        cr_expect_eq(spawn_kid(g, "slow", &slow, NULL), 0);
        rc = tl_sleep(100.0);
        cr_expect_eq(rc, -ECANCELED);
    }
    cr_expect_eq(rc, -EIO);
    cr_expect_eq(slow.sleep_rc, -ECANCELED);
    cr_expect_eq(tl_now(), 3.0);

    /* break leaves the block and still waits for the children. */
    struct kid c = {.secs = 1.0, .ret = 3};
    int sc = 111;
    TL_WITH_GROUP(&g, &rc)
    {
        cr_expect_eq(spawn_kid(g, "c", &c, &sc), 0);
        rc = 7;
        break;
        rc = 8;
    }
    cr_expect_eq(rc, 0);
    cr_expect_eq(sc, 3);
    cr_expect_eq(tl_now(), 4.0);
    return 0;
}

Test(group, with_group_macro, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_with_group, NULL), 0);
}

static int main_with_group_prints(void *arg)
{
    (void)arg;
    struct kid x = {.secs = 1.0, .code = -EIO, .msg = "disk x"};
    struct kid y = {.secs = 1.0, .code = -EPIPE};
    tl_group g;
    int rc = 99;
    TL_WITH_GROUP(&g, &rc)
    {
        cr_expect_eq(spawn_kid(g, "x", &x, NULL), 0);
        cr_expect_eq(spawn_kid(g, "y", &y, NULL), 0);
    }
    return rc;
}

Test(group, with_group_prints_several_failures, .timeout = 10)
{
    char out[4096];
    int st = run_virtual_child(main_with_group_prints, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "tulip.TaskGroup: 2 sub-errors");
    TL_EXPECT_OUT(out, "| task 'x': EIO (Input/output error): disk x\n");
    TL_EXPECT_OUT(out, "| task 'y': EPIPE (Broken pipe)\n");
    char want[32];
    snprintf(want, sizeof want, "rc=%d\n", -EIO);
    TL_EXPECT_OUT(out, want);
}

static int main_errors_print(void *arg)
{
    (void)arg;
    tl_error items[2] = {{.code = -EIO, .task = "a", .message = "disk a"},
                         {.code = -EPIPE, .task = "#7", .message = ""}};
    tl_errors errs = {2, items};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_expect_not_null(f);
    if (!f) return -1;
    tl_errors_print(&errs, f);
    fclose(f);
    cr_expect(strstr(buf, "  | tulip.TaskGroup: 2 sub-errors\n") == buf, "%s",
              buf);
    char *one = strstr(buf, "    | task 'a': EIO (Input/output error): disk a\n");
    char *two = strstr(buf, "    | task #7: EPIPE (Broken pipe)\n");
    cr_expect(one != NULL && two != NULL && one < two, "%s", buf);
    free(buf);
    return 0;
}

Test(group, errors_print_lists_each_failure, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_errors_print, NULL), 0);
}

/* ---- scale -------------------------------------------------------------------------- */

static int count_up(void *arg)
{
    (*(size_t *)arg)++;
    return 0;
}

static int main_scale(void *arg)
{
    (void)arg;
    size_t n = TL_TEST_SCALE(100000), count = 0, refused = 0;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    for (size_t i = 0; i < n; i++)
        if (tl_group_spawn(g, count_up, &count) != 0) refused++;
    cr_expect_eq(refused, 0u);
    cr_expect_eq(tl_group_wait(g, 0, NULL), 0);
    cr_expect_eq(count, n);

    /* And again with statuses through pointers. */
    int *st = malloc(n * sizeof *st);
    cr_expect_not_null(st);
    if (!st) return -ENOMEM;
    struct kid k = {.ret = 1};
    cr_expect_eq(tl_group_enter(&g), 0);
    for (size_t i = 0; i < n; i++) {
        st[i] = 111;
        if (tl_group_spawn_ex(g, NULL, kid, &k, &st[i]) != 0) refused++;
    }
    cr_expect_eq(tl_group_wait(g, 0, NULL), 0);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++)
        if (st[i] != 1) wrong++;
    cr_expect_eq(wrong, 0u);
    free(st);
    return 0;
}

Test(group, hundred_thousand_children, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_scale, NULL), 0);
}

/* tg.create_task(fetch("a")) with a deferred call: named after the call,
 * status delivered, failures listed under that name. */
static int call_fetch(void *arg)
{
    int n = *(int *)arg;
    if (tl_sleep(0.1 * n) < 0) return -ECANCELED;
    return n == 2 ? tl_fail(-EPIPE, "fetch %d broke", n) : n * 10;
}

static int main_spawn_call(void *arg)
{
    (void)arg;
    int one = 1, two = 2, s1 = -1, s2 = -1;
    tl_group g;
    if (tl_group_enter(&g) != 0) return -100;
    cr_expect_eq(tl_group_spawn_call(g, TL_CALL_NAMED(call_fetch, &one, "a"),
                                     &s1), 0);
    cr_expect_eq(tl_group_spawn_call(g, TL_CALL(call_fetch, &two), &s2), 0);
    tl_errors errs;
    int rc = tl_group_wait(g, 0, &errs);
    cr_expect_eq(rc, -EPIPE);
    cr_expect_eq(s1, 10);
    cr_expect_eq(s2, -EPIPE);
    cr_expect_eq(errs.count, 1);
    if (errs.count == 1) {
        cr_expect_str_eq(errs.items[0].task, "call_fetch");
        cr_expect_str_eq(errs.items[0].message, "fetch 2 broke");
    }
    tl_errors_free(&errs);
    return 0;
}

Test(group, spawn_call_names_the_child_after_the_call, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_spawn_call, NULL), 0);
}

/* ---- the rule: the work's outcome wins over a cancel ----------------------- */

/* A child that finishes its (shielded) work whatever happens around it. */
static int shielded_kid(void *arg)
{
    struct kid *k = arg;
    tl_scope sh = tl_shield_enter();
    k->sleep_rc = tl_sleep(k->secs);
    (void)tl_scope_exit(sh, k->sleep_rc);
    k->done = 1;
    return k->code < 0 ? k->code : k->ret;
}

struct owner_case {
    struct kid k;
    int body_waits; /* the body meets the cancel (-ECANCELED) itself */
    int rc, next_rc;
};

static int outcome_owner(void *arg)
{
    struct owner_case *c = arg;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(tl_group_spawn(g, shielded_kid, &c->k), 0);
    int body = c->body_waits ? tl_sleep(100.0) : 0;
    c->rc = tl_group_wait(g, body, NULL);
    c->next_rc = tl_yield();
    return 0;
}

static int main_group_outcomes(void *arg)
{
    (void)arg;
    struct owner_case cases[3] = {
        {{.secs = 2.0, .ret = 1}, 0, 1, 1},      /* all completed: 0 */
        {{.secs = 2.0, .code = -EIO}, 0, 1, 1},  /* real error */
        {{.secs = 2.0, .ret = 1}, 1, 1, 1},      /* the body unwound */
    };
    const int want[3] = {0, -EIO, -ECANCELED};
    for (int i = 0; i < 3; i++) {
        struct owner_case *c = &cases[i];
        double t0 = tl_now();
        tl_task t;
        cr_expect_eq(tl_spawn(&t, outcome_owner, c), 0);
        cr_expect_eq(tl_sleep(0.5), 0);
        cr_expect_eq(tl_cancel(t), 0);
        cr_expect_eq(tl_join(t, NULL), 0);
        cr_expect_eq(c->k.done, 1);
        cr_expect_eq(c->rc, want[i], "case %d: %d", i, c->rc);
        cr_expect_eq(c->next_rc, -ECANCELED, "case %d", i);
        cr_expect_eq(tl_now() - t0, 2.0);
    }
    return 0;
}

Test(group, children_outcome_wins_over_the_owner_cancel, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_group_outcomes, NULL), 0);
}

/* ---- tl_group_start: Trio's nursery.start ----------------------------------- */

/* A server: `bind_secs` to get ready, then tl_started(port) (unless port
 * < 0), then serve until cancelled (or return `after` at once when
 * serve_secs is 0). `fail` < 0: fail that way before getting ready. */
struct server {
    double bind_secs, serve_secs;
    int port, fail, after;
    int shield_bind; /* get ready even if cancelled */
    int ran, started_rc, started_again_rc, done;
};

static int server(void *arg)
{
    struct server *sv = arg;
    sv->ran = 1;
    int rc;
    if (sv->shield_bind) {
        tl_scope sh = tl_shield_enter();
        rc = tl_scope_exit(sh, tl_sleep(sv->bind_secs));
    } else {
        rc = tl_sleep(sv->bind_secs);
    }
    if (rc < 0) return rc;
    if (sv->fail < 0) return tl_fail(sv->fail, "port %d taken", sv->port);
    if (sv->port < 0) return 0; /* forgot tl_started */
    sv->started_rc = tl_started(sv->port);
    sv->started_again_rc = tl_started(sv->port + 1);
    rc = sv->serve_secs > 0 ? tl_sleep(sv->serve_secs) : 0;
    sv->done = 1;
    return rc < 0 ? rc : sv->after;
}

static int main_start_ready(void *arg)
{
    (void)arg;
    struct server sv = {.bind_secs = 1.0, .serve_secs = 100.0, .port = 8080};
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    intptr_t port = 0;
    cr_expect_eq(tl_group_start(g, server, &sv, &port), 0);
    cr_expect_eq(port, 8080);
    cr_expect_eq(tl_now(), 1.0); /* as soon as it was ready */
    cr_expect_eq(sv.started_rc, 0);
    cr_expect_eq(sv.started_again_rc, -EINVAL); /* once only */
    cr_expect_eq(sv.done, 0); /* still serving, in the group */
    cr_expect_eq(tl_sleep(1.0), 0);
    cr_expect_eq(tl_group_cancel(g), 0);
    cr_expect_eq(tl_group_wait(g, 0, NULL), 0);
    cr_expect_eq(tl_now(), 2.0);
    cr_expect_eq(tl_started(1), -EINVAL); /* not a started task */
    return 0;
}

Test(group, start_returns_when_the_child_is_ready, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_start_ready, NULL), 0);
}

/* Before it is ready, the child's failure (or its return without
 * tl_started) is the starter's, not the group's: nobody is cancelled,
 * nothing is listed, nothing hangs. After, it is the group's. */
static int main_start_outcomes(void *arg)
{
    (void)arg;
    struct kid sib = {.secs = 3.0, .ret = 1};
    struct server bad = {.bind_secs = 0.5, .port = 80, .fail = -EADDRINUSE};
    struct server mute = {.bind_secs = 0.5, .port = -1};
    struct server late = {.bind_secs = 0.5, .port = 81, .after = -EIO};
    int st_sib = 111, st_bad = 111;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(spawn_kid(g, "sib", &sib, &st_sib), 0);
    intptr_t v = 7;
    cr_expect_eq(tl_group_start_ex(g, &(tl_spawn_opts){.name = "bad"}, server,
                                   &bad, &st_bad, &v), -EADDRINUSE);
    cr_expect_eq(st_bad, -EADDRINUSE);
    cr_expect_eq(tl_group_start(g, server, &mute, &v), TL_ENOTSTARTED);
    cr_expect_eq(v, 7); /* untouched */
    cr_expect_eq(tl_now(), 1.0);
    cr_expect_eq(tl_cancelled(), 0); /* the group was not cancelled */
    cr_expect_eq(tl_sleep(2.5), 0);
    cr_expect_eq(sib.done, 1);
    cr_expect_eq(sib.sleep_rc, 0);
    tl_errors errs;
    cr_expect_eq(tl_group_wait(g, 0, &errs), 0);
    cr_expect_eq(errs.count, 0u);
    tl_errors_free(&errs);

    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(tl_group_start(g, server, &late, &v), 0);
    cr_expect_eq(v, 81);
    cr_expect_eq(tl_group_wait(g, 0, &errs), -EIO);
    cr_expect_eq(errs.count, 1u);
    tl_errors_free(&errs);
    return 0;
}

Test(group, start_failure_before_ready_is_the_starters, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_start_outcomes, NULL), 0);
}

/* The rule, for a cancelled starter: already cancelled at the call:
 * -ECANCELED, nothing spawned. Cancelled while it waits: the cancel is
 * forwarded; a child that unwinds gives -ECANCELED, one that gets ready
 * anyway (its bind is shielded) completes the start: 0 and the value,
 * and the cancel shows at the starter's next call. */
struct starter_case {
    struct server sv;
    int pre_cancel;
    int rc, next_rc;
    intptr_t v;
};

static int starter(void *arg)
{
    struct starter_case *c = arg;
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    if (c->pre_cancel) cr_expect_eq(tl_cancel(tl_current()), 0);
    c->rc = tl_group_start(g, server, &c->sv, &c->v);
    c->next_rc = tl_yield();
    (void)tl_group_wait(g, c->next_rc, NULL);
    return 0;
}

static int main_start_cancelled(void *arg)
{
    (void)arg;
    struct starter_case cases[3] = {
        {.sv = {.bind_secs = 1.0, .serve_secs = 100, .port = 1}, .pre_cancel = 1},
        {.sv = {.bind_secs = 1.0, .serve_secs = 100, .port = 2}},
        {.sv = {.bind_secs = 1.0, .serve_secs = 100, .port = 3,
                .shield_bind = 1}},
    };
    const int want[3] = {-ECANCELED, -ECANCELED, 0};
    for (int i = 0; i < 3; i++) {
        struct starter_case *c = &cases[i];
        c->rc = c->next_rc = 1;
        tl_task t;
        cr_expect_eq(tl_spawn(&t, starter, c), 0);
        cr_expect_eq(tl_sleep(0.5), 0);
        cr_expect_eq(tl_cancel(t), 0);
        cr_expect_eq(tl_join(t, NULL), 0);
        cr_expect_eq(c->rc, want[i], "case %d: %d", i, c->rc);
        cr_expect_eq(c->next_rc, -ECANCELED, "case %d", i);
        cr_expect_eq(c->sv.ran, i != 0, "case %d", i);
        if (want[i] == 0) cr_expect_eq(c->v, 3);
    }
    return 0;
}

Test(group, start_by_a_cancelled_starter_follows_the_rule, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_start_cancelled, NULL), 0);
}
