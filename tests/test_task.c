/* Tasks: spawn, run order, join, detach, cancel and its level-triggered
 * semantics, errno across suspension, names, tl_run's teardown, and several
 * loops on several threads.
 *
 * Every timing expectation uses the virtual clock (run_virtual), so times
 * are exact. Inside tasks only cr_expect* is used (cr_assert* would longjmp
 * off the task's stack).
 *
 * Not labelled `thread`: Criterion cannot run under ThreadSanitizer (see
 * cmake/tulip_tests.cmake), so the multi-loop test runs in the normal,
 * ASan and ucontext stages only.
 */
#include "helpers.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>

/* ---- spawn and run order ------------------------------------------------ */

static int set_flag(void *arg)
{
    *(int *)arg = 1;
    return 0;
}

static int main_spawn_runs_later(void *arg)
{
    (void)arg;
    int ran = 0;
    tl_task t;
    cr_expect_eq(tl_spawn(&t, set_flag, &ran), 0);
    cr_expect_neq(t.gen, 0u);
    /* Spawning never switches: the child waits until the spawner suspends. */
    cr_expect_eq(ran, 0);
    for (volatile int i = 0; i < 100000; i++) {}
    cr_expect_eq(ran, 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(ran, 1);
    int st = -1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(st, 0);
    return 0;
}

Test(task, spawn_runs_after_spawner_suspends, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_spawn_runs_later, NULL), 0);
}

#define NFIFO 16
#define ROUNDS 3
struct fifo {
    int trace[NFIFO * ROUNDS];
    int n;
};
struct fifo_arg {
    struct fifo *f;
    int id;
};

static int fifo_task(void *arg)
{
    struct fifo_arg *a = arg;
    for (int r = 0; r < ROUNDS; r++) {
        a->f->trace[a->f->n++] = a->id;
        cr_expect_eq(tl_yield(), 0);
    }
    return a->id;
}

static int main_fifo(void *arg)
{
    (void)arg;
    struct fifo f = {.n = 0};
    struct fifo_arg args[NFIFO];
    tl_task t[NFIFO];
    for (int i = 0; i < NFIFO; i++) {
        args[i] = (struct fifo_arg){&f, i};
        cr_expect_eq(tl_spawn(&t[i], fifo_task, &args[i]), 0);
    }
    for (int i = 0; i < NFIFO; i++) {
        int st = -1;
        cr_expect_eq(tl_join(t[i], &st), 0);
        cr_expect_eq(st, i);
    }
    cr_expect_eq(f.n, NFIFO * ROUNDS);
    /* Spawn order on the first round, and the same order every round after
     * (each yield goes to the back of the queue). */
    for (int k = 0; k < NFIFO * ROUNDS; k++)
        cr_expect_eq(f.trace[k], k % NFIFO, "trace[%d] = %d, want %d", k,
                     f.trace[k], k % NFIFO);
    return 0;
}

Test(task, fifo_order_of_ready_tasks, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_fifo, NULL), 0);
}

/* ---- join ----------------------------------------------------------------- */

static int ret_arg(void *arg) { return (int)(intptr_t)arg; }

static int sleep_then_ret(void *arg)
{
    cr_expect_eq(tl_sleep(1.0), 0);
    return (int)(intptr_t)arg;
}

static int main_join_status(void *arg)
{
    (void)arg;
    tl_task a, b, c;
    cr_expect_eq(tl_spawn(&a, sleep_then_ret, (void *)(intptr_t)42), 0);
    cr_expect_eq(tl_spawn(&b, sleep_then_ret, (void *)(intptr_t)-EIO), 0);
    cr_expect_eq(tl_spawn(&c, ret_arg, (void *)(intptr_t)0), 0);
    int st = 12345;
    cr_expect_eq(tl_join(a, &st), 0);
    cr_expect_eq(st, 42);
    cr_expect_eq(tl_now(), 1.0);
    st = 12345;
    cr_expect_eq(tl_join(b, &st), 0); /* join itself succeeded */
    cr_expect_eq(st, -EIO);
    st = 12345;
    cr_expect_eq(tl_join(c, &st), 0);
    cr_expect_eq(st, 0);
    return 0;
}

Test(task, join_returns_status, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_join_status, NULL), 0);
}

static int main_join_finished(void *arg)
{
    (void)arg;
    tl_task t;
    cr_expect_eq(tl_spawn(&t, ret_arg, (void *)(intptr_t)7), 0);
    cr_expect_eq(tl_task_done(t), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_neq(tl_task_done(t), 0);
    double before = tl_now();
    int st = -1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(st, 7);
    cr_expect_eq(tl_now(), before);
    /* Joined: the handle is stale now. */
    cr_expect_eq(tl_join(t, &st), -ESRCH);
    return 0;
}

Test(task, join_of_finished_task, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_join_finished, NULL), 0);
}

static int main_join_null_status(void *arg)
{
    (void)arg;
    tl_task t;
    cr_expect_eq(tl_spawn(&t, sleep_then_ret, (void *)(intptr_t)-EIO), 0);
    cr_expect_eq(tl_join(t, NULL), 0);
    return 0;
}

Test(task, join_with_null_status, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_join_null_status, NULL), 0);
}

static int main_join_misuse(void *arg)
{
    (void)arg;
    /* Joining oneself, the zero handle. */
    int st;
    cr_expect_eq(tl_join(tl_current(), &st), -EDEADLK);
    cr_expect_eq(tl_join((tl_task){0}, &st), -ESRCH);
    return 0;
}

Test(task, join_self_and_zero_handle_refused, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_join_misuse, NULL), 0);
}

struct joiner_arg {
    tl_task target;
    int rc, status;
    double when;
};

static int join_it(void *arg)
{
    struct joiner_arg *j = arg;
    j->rc = tl_join(j->target, &j->status);
    j->when = tl_now();
    return 0;
}

static int main_second_joiner(void *arg)
{
    (void)arg;
    tl_task t, j;
    cr_expect_eq(tl_spawn(&t, sleep_then_ret, (void *)(intptr_t)3), 0);
    struct joiner_arg ja = {.target = t, .rc = 99, .status = 99};
    cr_expect_eq(tl_spawn(&j, join_it, &ja), 0);
    cr_expect_eq(tl_yield(), 0); /* j is now waiting in tl_join(t) */
    int st = -1;
    cr_expect_eq(tl_join(t, &st), -EINVAL); /* at most one joiner */
    cr_expect_eq(tl_join(j, NULL), 0);
    cr_expect_eq(ja.rc, 0);
    cr_expect_eq(ja.status, 3);
    cr_expect_eq(ja.when, 1.0);
    return 0;
}

Test(task, second_joiner_refused, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_second_joiner, NULL), 0);
}

/* ---- tl_join_ex and tl_fail messages -------------------------------------- */

static int fail_same(void *arg)
{
    (void)arg;
    cr_expect_eq(tl_sleep(0.5), 0);
    int rc = tl_fail(-EIO, "read %s: %d bytes short", "disk0", 12);
    cr_expect_eq(rc, -EIO);
    cr_expect_str_eq(tl_fail_message(-EIO), "read disk0: 12 bytes short");
    cr_expect_null(tl_fail_message(-EPIPE));
    return rc;
}

static int fail_other(void *arg)
{
    (void)arg;
    (void)tl_fail(-EIO, "this message belongs to -EIO");
    return -EPIPE;
}

static int fail_twice(void *arg)
{
    (void)arg;
    (void)tl_fail(-EIO, "first");
    return tl_fail(-EIO, "second");
}

static int fail_then_succeed(void *arg)
{
    (void)arg;
    (void)tl_fail(-EIO, "recovered");
    return 5;
}

static int main_join_ex(void *arg)
{
    (void)arg;
    tl_task a, b, c, d, e;
    cr_expect_eq(tl_spawn_ex(&a, &(tl_spawn_opts){.name = "reader"},
                             fail_same, NULL), 0);
    cr_expect_eq(tl_spawn_ex(&b, &(tl_spawn_opts){.name = "other"},
                             fail_other, NULL), 0);
    cr_expect_eq(tl_spawn_ex(&c, &(tl_spawn_opts){.name = "twice"},
                             fail_twice, NULL), 0);
    cr_expect_eq(tl_spawn_ex(&d, &(tl_spawn_opts){.name = "ok"},
                             fail_then_succeed, NULL), 0);
    cr_expect_eq(tl_spawn(&e, fail_other, NULL), 0);
    uint32_t e_slot = e.slot;

    tl_error err;
    int st;
    memset(&err, 0x55, sizeof err);
    cr_expect_eq(tl_join_ex(a, &st, &err), 0);
    cr_expect_eq(st, -EIO);
    cr_expect_eq(err.code, -EIO);
    cr_expect_str_eq(err.task, "reader");
    cr_expect_str_eq(err.message, "read disk0: 12 bytes short");

    /* A message is shown only beside the code it was attached to. */
    memset(&err, 0x55, sizeof err);
    cr_expect_eq(tl_join_ex(b, &st, &err), 0);
    cr_expect_eq(st, -EPIPE);
    cr_expect_eq(err.code, -EPIPE);
    cr_expect_str_eq(err.task, "other");
    cr_expect_str_eq(err.message, "");

    /* A later tl_fail replaces the message. */
    memset(&err, 0x55, sizeof err);
    cr_expect_eq(tl_join_ex(c, &st, &err), 0);
    cr_expect_eq(st, -EIO);
    cr_expect_str_eq(err.message, "second");

    /* Success: *err is cleared. */
    memset(&err, 0x55, sizeof err);
    cr_expect_eq(tl_join_ex(d, &st, &err), 0);
    cr_expect_eq(st, 5);
    cr_expect_eq(err.code, 0);
    cr_expect_str_eq(err.task, "");
    cr_expect_str_eq(err.message, "");

    /* Unnamed: "#<slot>". */
    char want[32];
    snprintf(want, sizeof want, "#%u", (unsigned)e_slot);
    memset(&err, 0x55, sizeof err);
    cr_expect_eq(tl_join_ex(e, &st, &err), 0);
    cr_expect_eq(st, -EPIPE);
    cr_expect_str_eq(err.task, want);
    return 0;
}

Test(task, join_ex_reports_name_code_message, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_join_ex, NULL), 0);
}

/* ---- detach ----------------------------------------------------------------- */

struct detach_state {
    int done;
    double when;
};

static int detached_worker(void *arg)
{
    struct detach_state *d = arg;
    cr_expect_eq(tl_sleep(2.0), 0);
    d->done = 1;
    d->when = tl_now();
    return 0;
}

static int main_detach(void *arg)
{
    (void)arg;
    struct detach_state d = {0};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, detached_worker, &d), 0);
    cr_expect_eq(tl_detach(t), 0);
    cr_expect_eq(tl_detach(t), -EINVAL);     /* already detached */
    cr_expect_eq(tl_join(t, NULL), -EINVAL); /* nobody may join it */
    cr_expect_eq(tl_sleep(3.0), 0);
    cr_expect_eq(d.done, 1);
    cr_expect_eq(d.when, 2.0);
    /* Its slot was freed when it finished. */
    cr_expect_eq(tl_cancel(t), -ESRCH);
    cr_expect_eq(tl_detach(t), -ESRCH);
    return 0;
}

Test(task, detached_task_runs_and_frees_its_slot, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_detach, NULL), 0);
}

static int main_detach_finished(void *arg)
{
    (void)arg;
    tl_task t;
    cr_expect_eq(tl_spawn(&t, ret_arg, (void *)(intptr_t)1), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_neq(tl_task_done(t), 0);
    cr_expect_eq(tl_detach(t), 0); /* frees it at once */
    cr_expect_eq(tl_cancel(t), -ESRCH);
    /* spawn with out == NULL: detached from the start. */
    int ran = 0;
    cr_expect_eq(tl_spawn(NULL, set_flag, &ran), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(ran, 1);
    return 0;
}

Test(task, detach_finished_task_and_spawn_without_handle, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_detach_finished, NULL), 0);
}

static int detached_failure(void *arg)
{
    (void)arg;
    return tl_fail(-EIO, "disk gone");
}

static int main_detached_failure(void *arg)
{
    (void)arg;
    tl_task t;
    cr_expect_eq(tl_spawn_ex(&t, &(tl_spawn_opts){.name = "bad"},
                             detached_failure, NULL), 0);
    cr_expect_eq(tl_detach(t), 0);
    cr_expect_eq(tl_yield(), 0);
    return 0;
}

static void child_detached_failure(void *arg)
{
    *(int *)arg = run_virtual(main_detached_failure, NULL);
    printf("rc=%d\n", *(int *)arg);
}

Test(task, detached_failure_is_reported, .timeout = 10)
{
    char out[4096];
    int rc = -1;
    int st = run_child(child_detached_failure, &rc, out, sizeof out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", out);
    cr_expect(strstr(out, "tulip: task 'bad' failed with -EIO") != NULL, "%s",
              out);
    cr_expect(strstr(out, "disk gone and nobody joined it") != NULL, "%s", out);
    cr_expect(strstr(out, "rc=0") != NULL, "%s", out);
}

/* ---- cancel reaches every suspension point ---------------------------------- */

struct probe {
    int rc;
    int rc2;
    double when;
    int count;
};

static int sleeper(void *arg)
{
    struct probe *p = arg;
    p->rc = tl_sleep(100.0);
    p->when = tl_now();
    return p->rc;
}

/* Spawn fn(p), let it reach its suspension, cancel it, join it. */
static int cancel_and_join(tl_fn fn, void *p, int *status)
{
    tl_task t;
    cr_expect_eq(tl_spawn(&t, fn, p), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_cancel(t), 0);
    return tl_join(t, status);
}

static int main_cancel_sleep(void *arg)
{
    (void)arg;
    struct probe p = {.rc = 1};
    int st = 1;
    cr_expect_eq(cancel_and_join(sleeper, &p, &st), 0);
    cr_expect_eq(p.rc, -ECANCELED);
    cr_expect_eq(p.when, 0.0); /* woken by the cancel, not the timer */
    cr_expect_eq(st, -ECANCELED);
    cr_expect_eq(tl_now(), 0.0);
    return 0;
}

Test(task, cancel_reaches_sleep, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_sleep, NULL), 0);
}

static int yielder(void *arg)
{
    struct probe *p = arg;
    int rc;
    while ((rc = tl_yield()) == 0) p->count++;
    p->rc = rc;
    return rc;
}

static int main_cancel_yield(void *arg)
{
    (void)arg;
    struct probe p = {.rc = 1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, yielder, &p), 0);
    for (int i = 0; i < 3; i++) cr_expect_eq(tl_yield(), 0);
    /* The yielder ran once per round: its 3rd yield is still pending. */
    cr_expect_eq(p.count, 2);
    cr_expect_eq(tl_cancel(t), 0);
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    /* The pending yield completed (0), the next one met the cancel. */
    cr_expect_eq(p.count, 3);
    cr_expect_eq(p.rc, -ECANCELED);
    cr_expect_eq(st, -ECANCELED);
    return 0;
}

Test(task, cancel_reaches_yield, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_yield, NULL), 0);
}

static int join_sleeper(void *arg)
{
    struct probe *p = arg;
    struct probe inner = {.rc = 1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, sleeper, &inner), 0);
    int st = 1;
    p->rc = tl_join(t, &st);
    p->rc2 = st;
    p->when = tl_now();
    cr_expect_eq(inner.rc, -ECANCELED);
    if (p->rc < 0) return p->rc;
    return st; /* the usual way to pass a joined task's failure on */
}

/* The cancel is forwarded to the joined task; the join completed (the
 * task finished), so it returns 0 and the task's -ECANCELED arrives in
 * *status, which the joiner passes on. */
static int main_cancel_join(void *arg)
{
    (void)arg;
    struct probe p = {.rc = 1};
    int st = 1;
    cr_expect_eq(cancel_and_join(join_sleeper, &p, &st), 0);
    cr_expect_eq(p.rc, 0);
    cr_expect_eq(p.rc2, -ECANCELED); /* the target's status */
    cr_expect_eq(p.when, 0.0);
    cr_expect_eq(st, -ECANCELED);
    return 0;
}

Test(task, cancel_reaches_join, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_join, NULL), 0);
}

static int sleep100(void *arg)
{
    (void)arg;
    return tl_sleep(100.0);
}

static int gatherer(void *arg)
{
    struct probe *p = arg;
    int st[2] = {1, 1};
    tl_call calls[2] = {TL_CALL(sleep100, NULL), TL_CALL(sleep100, NULL)};
    p->rc = tl_gather(2, calls, st);
    p->when = tl_now();
    cr_expect_eq(st[0], -ECANCELED);
    cr_expect_eq(st[1], -ECANCELED);
    return p->rc;
}

static int main_cancel_gather(void *arg)
{
    (void)arg;
    struct probe p = {.rc = 1};
    int st = 1;
    cr_expect_eq(cancel_and_join(gatherer, &p, &st), 0);
    cr_expect_eq(p.rc, -ECANCELED);
    cr_expect_eq(p.when, 0.0);
    cr_expect_eq(st, -ECANCELED);
    return 0;
}

Test(task, cancel_reaches_gather, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_gather, NULL), 0);
}

static int group_body_sleeper(void *arg)
{
    struct probe *p = arg;
    tl_group g;
    int child = 1;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(tl_group_spawn_ex(g, NULL, sleep100, NULL, &child), 0);
    int body = tl_sleep(100.0); /* the body's own suspension */
    p->rc2 = body;
    p->rc = tl_group_wait(g, body, NULL);
    p->when = tl_now();
    cr_expect_eq(child, -ECANCELED);
    return p->rc;
}

static int main_cancel_group_body(void *arg)
{
    (void)arg;
    struct probe p = {.rc = 1};
    int st = 1;
    cr_expect_eq(cancel_and_join(group_body_sleeper, &p, &st), 0);
    cr_expect_eq(p.rc2, -ECANCELED);
    cr_expect_eq(p.rc, -ECANCELED); /* an outer cancel, no failure */
    cr_expect_eq(p.when, 0.0);
    cr_expect_eq(st, -ECANCELED);
    return 0;
}

Test(task, cancel_reaches_group_body, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_group_body, NULL), 0);
}

static int group_waiter(void *arg)
{
    struct probe *p = arg;
    tl_group g;
    int child = 1;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(tl_group_spawn_ex(g, NULL, sleep100, NULL, &child), 0);
    p->rc = tl_group_wait(g, 0, NULL); /* waits; the cancel reaches the child */
    p->when = tl_now();
    cr_expect_eq(child, -ECANCELED);
    return p->rc;
}

static int main_cancel_group_wait(void *arg)
{
    (void)arg;
    struct probe p = {.rc = 1};
    int st = 1;
    cr_expect_eq(cancel_and_join(group_waiter, &p, &st), 0);
    cr_expect_eq(p.rc, -ECANCELED);
    cr_expect_eq(p.when, 0.0);
    cr_expect_eq(st, -ECANCELED);
    return 0;
}

Test(task, cancel_reaches_children_through_group_wait, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_group_wait, NULL), 0);
}

struct nested {
    int v3, v2, v1, sleep_rc;
    double when;
};

static int level3(struct nested *n)
{
    tl_scope s = tl_cancel_scope_enter();
    n->sleep_rc = tl_sleep(1000.0);
    n->when = tl_now();
    n->v3 = tl_scope_exit(s, n->sleep_rc);
    return n->v3;
}

static int level2(struct nested *n)
{
    tl_scope s = tl_move_on_enter(500.0);
    n->v2 = tl_scope_exit(s, level3(n));
    return n->v2;
}

static int level1(void *arg)
{
    struct nested *n = arg;
    tl_scope s = tl_timeout_enter(200.0);
    n->v1 = tl_scope_exit(s, level2(n));
    return n->v1;
}

static int main_cancel_nested(void *arg)
{
    (void)arg;
    struct nested n = {1, 1, 1, 1, -1};
    int st = 1;
    cr_expect_eq(cancel_and_join(level1, &n, &st), 0);
    cr_expect_eq(n.sleep_rc, -ECANCELED);
    cr_expect_eq(n.when, 0.0);
    /* No scope was cancelled itself: each passes -ECANCELED through. */
    cr_expect_eq(n.v3, -ECANCELED);
    cr_expect_eq(n.v2, -ECANCELED);
    cr_expect_eq(n.v1, -ECANCELED);
    cr_expect_eq(st, -ECANCELED);
    return 0;
}

Test(task, cancel_reaches_nested_scopes, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_nested, NULL), 0);
}

/* ---- level-triggered cancellation ------------------------------------------- */

struct trace {
    char s[64];
    int n;
};

static int cancelled_yielder(void *arg)
{
    struct trace *tr = arg;
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(tl_yield(), -ECANCELED);
        tr->s[tr->n++] = 'A';
    }
    return 0;
}

static int plain_yielder(void *arg)
{
    struct trace *tr = arg;
    for (int i = 0; i < 3; i++) {
        tr->s[tr->n++] = 'B';
        cr_expect_eq(tl_yield(), 0);
    }
    return 0;
}

static int main_ecanceled_yields(void *arg)
{
    (void)arg;
    struct trace tr = {.n = 0};
    tl_task a, b;
    cr_expect_eq(tl_spawn(&a, cancelled_yielder, &tr), 0);
    cr_expect_eq(tl_spawn(&b, plain_yielder, &tr), 0);
    cr_expect_eq(tl_cancel(a), 0);
    cr_expect_eq(tl_join(a, NULL), 0);
    cr_expect_eq(tl_join(b, NULL), 0);
    /* Without the yield in each -ECANCELED return it would be "AAABBB". */
    cr_expect_str_eq(tr.s, "BABABA");
    return 0;
}

Test(task, ecanceled_return_always_yields, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_ecanceled_yields, NULL), 0);
}

static int level_victim(void *arg)
{
    struct probe *p = arg;
    cr_expect_eq(tl_sleep(100.0), -ECANCELED);
    cr_expect_neq(tl_cancelled(), 0);
    /* Every later suspending call keeps failing: the cancel is a level. */
    for (int i = 0; i < 5; i++) cr_expect_eq(tl_sleep(1.0), -ECANCELED);
    cr_expect_eq(tl_sleep(0.0), -ECANCELED);
    cr_expect_eq(tl_sleep(-1.0), -ECANCELED);
    cr_expect_eq(tl_sleep_until(50.0), -ECANCELED);
    cr_expect_eq(tl_yield(), -ECANCELED);
    cr_expect_eq(tl_gather(0, NULL, NULL), -ECANCELED);
    tl_scope s = tl_move_on_enter(10.0); /* a new scope does not reset it */
    cr_expect_eq(tl_sleep(1.0), -ECANCELED);
    cr_expect_eq(tl_scope_exit(s, -ECANCELED), -ECANCELED);
    cr_expect_neq(tl_cancelled(), 0);
    p->when = tl_now();
    p->rc = 0;
    return -ECANCELED;
}

static int main_level_triggered(void *arg)
{
    (void)arg;
    struct probe p = {.rc = 1};
    int st = 1;
    cr_expect_eq(cancel_and_join(level_victim, &p, &st), 0);
    cr_expect_eq(p.rc, 0);
    cr_expect_eq(p.when, 0.0); /* none of those calls waited for time */
    cr_expect_eq(st, -ECANCELED);
    cr_expect_eq(tl_cancelled(), 0); /* main itself is not cancelled */
    return 0;
}

Test(task, cancellation_is_level_triggered, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_level_triggered, NULL), 0);
}

static int main_cancel_twice(void *arg)
{
    (void)arg;
    struct probe p = {.rc = 1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, sleeper, &p), 0);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_cancel(t), 0); /* idempotent */
    int st;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(st, -ECANCELED);
    cr_expect_eq(tl_cancel(t), -ESRCH); /* joined: stale */
    /* Cancelling a finished, unjoined task does nothing. */
    cr_expect_eq(tl_spawn(&t, ret_arg, (void *)(intptr_t)4), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(st, 4);
    return 0;
}

Test(task, cancel_is_idempotent_and_finished_tasks_ignore_it, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_twice, NULL), 0);
}

struct early {
    int started;
    int first_rc;
    int cleaned;
};

static int early_victim(void *arg)
{
    struct early *e = arg;
    e->started = 1;
    cr_expect_neq(tl_cancelled(), 0);
    e->first_rc = tl_sleep(1.0);
    e->cleaned = 1; /* the cleanup that frees arg in real code */
    return e->first_rc;
}

static int main_cancel_before_first_run(void *arg)
{
    (void)arg;
    struct early *e = calloc(1, sizeof *e);
    tl_task t;
    cr_expect_eq(tl_spawn(&t, early_victim, e), 0);
    cr_expect_eq(tl_cancel(t), 0); /* before it ever ran */
    int st = 1;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(e->started, 1);
    cr_expect_eq(e->first_rc, -ECANCELED);
    cr_expect_eq(e->cleaned, 1);
    cr_expect_eq(st, -ECANCELED);
    cr_expect_eq(tl_now(), 0.0);
    free(e);
    return 0;
}

Test(task, cancelled_before_first_run_still_runs, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_before_first_run, NULL), 0);
}

/* ---- join and cancellation ------------------------------------------------- */

struct fwd {
    tl_task target;
    int target_sleep_rc;
    int target_cleanup_rc;
    int join_rc, join_status;
    double join_when;
};

/* The target: waits, and when cancelled runs 1 s of shielded cleanup. */
static int slow_cleanup_target(void *arg)
{
    struct fwd *f = arg;
    f->target_sleep_rc = tl_sleep(100.0);
    tl_scope sh = tl_shield_enter();
    f->target_cleanup_rc = tl_sleep(1.0);
    cr_expect_eq(tl_scope_exit(sh, f->target_cleanup_rc), 0);
    return 5;
}

static int forwarding_joiner(void *arg)
{
    struct fwd *f = arg;
    cr_expect_eq(tl_spawn(&f->target, slow_cleanup_target, f), 0);
    f->join_status = 99;
    f->join_rc = tl_join(f->target, &f->join_status);
    f->join_when = tl_now();
    return f->join_rc;
}

static int main_join_forwards(void *arg)
{
    (void)arg;
    struct fwd f = {.target_sleep_rc = 1, .target_cleanup_rc = 1};
    int st = 1;
    cr_expect_eq(cancel_and_join(forwarding_joiner, &f, &st), 0);
    /* The cancel was forwarded to the target... */
    cr_expect_eq(f.target_sleep_rc, -ECANCELED);
    cr_expect_eq(f.target_cleanup_rc, 0);
    /* ...and the joiner waited for it to finish (1 s of cleanup). The
     * target completed with a result: the join returns it (completed
     * wins); the joiner's cancel waits for its next suspending call. */
    cr_expect_eq(f.join_when, 1.0);
    cr_expect_eq(f.join_rc, 0);
    cr_expect_eq(f.join_status, 5);
    cr_expect_eq(st, 0);
    return 0;
}

Test(task, cancelled_joiner_forwards_and_waits, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_join_forwards, NULL), 0);
}

/* Checkpoint first: a joiner already cancelled when it calls tl_join
 * gets -ECANCELED and consumes nothing — the target stays joinable and a
 * join from a shield gets its status. The target was still running, so
 * the refusal forwarded the cancel and waited for it first (invariant 1:
 * the target may write the joiner's memory). */
static int already_cancelled_joiner(void *arg)
{
    struct fwd *f = arg;
    cr_expect_eq(tl_sleep(10.0), -ECANCELED);
    cr_expect_eq(tl_spawn(&f->target, slow_cleanup_target, f), 0);
    f->join_rc = tl_join(f->target, &f->join_status);
    f->join_when = tl_now();
    cr_expect_neq(tl_task_done(f->target), 0);
    cr_expect_eq(f->join_status, 99); /* not consumed */
    tl_scope sh = tl_shield_enter();
    int rc = tl_join(f->target, &f->join_status);
    cr_expect_eq(tl_now(), f->join_when); /* at once */
    cr_expect_eq(tl_scope_exit(sh, rc), 0);
    return f->join_rc;
}

static int main_join_while_cancelled(void *arg)
{
    (void)arg;
    struct fwd f = {.target_sleep_rc = 1, .target_cleanup_rc = 1,
                    .join_status = 99};
    int st = 1;
    cr_expect_eq(cancel_and_join(already_cancelled_joiner, &f, &st), 0);
    cr_expect_eq(f.join_rc, -ECANCELED);
    cr_expect_eq(st, -ECANCELED);
    cr_expect_eq(f.target_sleep_rc, -ECANCELED); /* forwarded */
    cr_expect_eq(f.join_when, 1.0);              /* after its cleanup */
    cr_expect_eq(f.join_status, 5);
    return 0;
}

Test(task, join_by_a_cancelled_task_refuses_and_leaves_it_joinable,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_join_while_cancelled, NULL), 0);
}

/* The case: the target has already finished (with a result) when
 * the cancelled joiner calls: still -ECANCELED, the handle still joinable
 * — the result is not consumed by a call that refused. */
static int quick_seven(void *arg)
{
    (void)arg;
    return 7;
}

static int finished_target_joiner(void *arg)
{
    (void)arg;
    tl_task t;
    cr_expect_eq(tl_spawn(&t, quick_seven, NULL), 0);
    tl_scope sh = tl_shield_enter();
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_scope_exit(sh, 0), 0);
    cr_expect_neq(tl_task_done(t), 0);
    cr_expect_neq(tl_cancelled(), 0);
    int st = 99;
    cr_expect_eq(tl_join(t, &st), -ECANCELED);
    cr_expect_eq(st, 99);
    cr_expect_neq(tl_task_done(t), 0); /* handle still good */
    sh = tl_shield_enter();
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(tl_scope_exit(sh, 0), 0);
    cr_expect_eq(st, 7);
    return -ECANCELED;
}

static int main_join_finished_while_cancelled(void *arg)
{
    (void)arg;
    tl_task j;
    cr_expect_eq(tl_spawn(&j, finished_target_joiner, NULL), 0);
    cr_expect_eq(tl_cancel(j), 0);
    int st = 1;
    cr_expect_eq(tl_join(j, &st), 0);
    cr_expect_eq(st, -ECANCELED);
    return 0;
}

Test(task, join_of_finished_task_by_cancelled_joiner_refuses, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_join_finished_while_cancelled, NULL), 0);
}

/* A real error beats the cancel: the joiner is cancelled while it waits,
 * the target fails with -EIO during its cleanup; join returns 0 with
 * -EIO (and its message) in *status, so `if (rc < 0) return rc; if (st <
 * 0) return st;` passes the real error on, not -ECANCELED. */
static int failing_cleanup_target(void *arg)
{
    (void)arg;
    int rc = tl_sleep(100.0);
    if (rc == -ECANCELED) {
        tl_scope sh = tl_shield_enter();
        (void)tl_scope_exit(sh, tl_sleep(1.0));
        return tl_fail(-EIO, "rollback failed");
    }
    return 0;
}

static int error_joiner(void *arg)
{
    tl_error *e = arg;
    tl_task t;
    cr_expect_eq(tl_spawn(&t, failing_cleanup_target, NULL), 0);
    int st = 1;
    int rc = tl_join_ex(t, &st, e);
    cr_expect_eq(rc, 0);
    if (rc < 0) return rc;
    cr_expect_eq(tl_yield(), -ECANCELED); /* the cancel shows next */
    return st;
}

static int main_join_error_beats_cancel(void *arg)
{
    (void)arg;
    tl_error e = {0};
    int st = 1;
    cr_expect_eq(cancel_and_join(error_joiner, &e, &st), 0);
    cr_expect_eq(st, -EIO);
    cr_expect_eq(e.code, -EIO);
    cr_expect_str_eq(e.message, "rollback failed");
    cr_expect_eq(tl_now(), 1.0);
    return 0;
}

Test(task, join_real_error_beats_joiner_cancel, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_join_error_beats_cancel, NULL), 0);
}

static int shielded_joiner(void *arg)
{
    struct fwd *f = arg;
    cr_expect_eq(tl_spawn(&f->target, slow_cleanup_target, f), 0);
    tl_scope sh = tl_shield_enter();
    f->join_rc = tl_join(f->target, &f->join_status);
    f->join_when = tl_now();
    cr_expect_eq(tl_scope_exit(sh, f->join_rc), 0);
    /* Outside the shield the cancel shows. */
    cr_expect_eq(tl_yield(), -ECANCELED);
    return 0;
}

static int main_join_in_shield(void *arg)
{
    (void)arg;
    struct fwd f = {.target_sleep_rc = 1, .target_cleanup_rc = 1};
    int st = 1;
    cr_expect_eq(cancel_and_join(shielded_joiner, &f, &st), 0);
    /* Not forwarded: the target slept its full 100 s, no cleanup branch
     * cancel; then its shielded 1 s. */
    cr_expect_eq(f.target_sleep_rc, 0);
    cr_expect_eq(f.join_rc, 0);
    cr_expect_eq(f.join_status, 5);
    cr_expect_eq(f.join_when, 101.0);
    cr_expect_eq(st, 0);
    return 0;
}

Test(task, join_inside_shield_waits_without_forwarding, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_join_in_shield, NULL), 0);
}

/* Completed wins: the target finishes and wakes the joiner, and in the same
 * loop iteration (after the target ran) a third task cancels the joiner.
 * The join was satisfied first, so it returns 0 and the cancel shows at the
 * joiner's next suspending call. Order inside an iteration is FIFO:
 * joiner J, target T, canceller C were spawned in that order. */
struct race {
    tl_task joiner, target;
    int join_rc, join_status, next_rc;
    int target_cancelled;
};

static int race_joiner(void *arg)
{
    struct race *r = arg;
    r->join_rc = tl_join(r->target, &r->join_status);
    r->next_rc = tl_yield();
    return 0;
}

static int race_target(void *arg)
{
    struct race *r = arg;
    cr_expect_eq(tl_yield(), 0);
    r->target_cancelled = tl_cancelled();
    return 7;
}

static int race_canceller(void *arg)
{
    struct race *r = arg;
    cr_expect_eq(tl_yield(), 0);
    /* T ran just before us in this iteration: it is done, J is ready. */
    cr_expect_neq(tl_task_done(r->target), 0);
    cr_expect_eq(tl_cancel(r->joiner), 0);
    return 0;
}

static int main_completed_wins(void *arg)
{
    (void)arg;
    struct race r = {.join_rc = 1, .join_status = 1, .next_rc = 1};
    tl_task c;
    cr_expect_eq(tl_spawn(&r.joiner, race_joiner, &r), 0);
    cr_expect_eq(tl_spawn(&r.target, race_target, &r), 0);
    cr_expect_eq(tl_spawn(&c, race_canceller, &r), 0);
    cr_expect_eq(tl_join(c, NULL), 0);
    int st = 1;
    cr_expect_eq(tl_join(r.joiner, &st), 0);
    cr_expect_eq(r.join_rc, 0);
    cr_expect_eq(r.join_status, 7);
    cr_expect_eq(r.target_cancelled, 0); /* nothing was forwarded */
    cr_expect_eq(r.next_rc, -ECANCELED);
    return 0;
}

Test(task, join_completed_before_cancel_wins, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_completed_wins, NULL), 0);
}

/* ---- errno --------------------------------------------------------------- */

/* errno is read right after each call, before any Criterion macro runs
 * (which could itself touch errno). */
static int errno_task(void *arg)
{
    int mine = (int)(intptr_t)arg, seen[3], rc[3];
    errno = mine;
    rc[0] = tl_yield();
    seen[0] = errno;
    errno = mine;
    rc[1] = tl_sleep(0.5);
    seen[1] = errno;
    errno = mine;
    rc[2] = tl_yield();
    seen[2] = errno;
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(rc[i], 0);
        cr_expect_eq(seen[i], mine, "call %d: errno %d, want %d", i, seen[i],
                     mine);
    }
    return 0;
}

static int main_errno(void *arg)
{
    (void)arg;
    tl_task a, b;
    cr_expect_eq(tl_spawn(&a, errno_task, (void *)(intptr_t)EAGAIN), 0);
    cr_expect_eq(tl_spawn(&b, errno_task, (void *)(intptr_t)ENOENT), 0);
    errno = EBADF;
    int rc = tl_yield();
    int seen = errno;
    cr_expect_eq(rc, 0);
    cr_expect_eq(seen, EBADF);
    int sa = 1, sb = 1;
    errno = EBADF;
    rc = tl_join(a, &sa);
    seen = errno;
    cr_expect_eq(rc, 0);
    cr_expect_eq(seen, EBADF);
    cr_expect_eq(tl_join(b, &sb), 0);
    cr_expect_eq(sa, 0);
    cr_expect_eq(sb, 0);
    return 0;
}

Test(task, errno_survives_suspension, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_errno, NULL), 0);
}

/* ---- names and tl_current -------------------------------------------------- */

struct self_info {
    tl_task me;
    char name[64];
};

static int who_am_i(void *arg)
{
    struct self_info *s = arg;
    s->me = tl_current();
    cr_expect_not_null(tl_task_name(s->me, s->name, sizeof s->name));
    return 0;
}

static int main_names(void *arg)
{
    (void)arg;
    char buf[64];
    cr_expect_str_eq(tl_task_name(tl_current(), buf, sizeof buf), "main");

    struct self_info si = {0};
    tl_task t;
    cr_expect_eq(tl_spawn_ex(&t, &(tl_spawn_opts){.name = "worker"},
                             who_am_i, &si), 0);
    cr_expect_str_eq(tl_task_name(t, buf, sizeof buf), "worker");
    char small[4];
    cr_expect_str_eq(tl_task_name(t, small, sizeof small), "wor");
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_str_eq(si.name, "worker");
    cr_expect_eq(si.me.slot, t.slot);
    cr_expect_eq(si.me.gen, t.gen);
    cr_expect_eq(si.me.loop, t.loop);
    /* Joined: a stale handle has no name. */
    cr_expect_null(tl_task_name(t, buf, sizeof buf));

    /* Default name: "task #<slot>". */
    struct self_info anon = {0};
    cr_expect_eq(tl_spawn(&t, who_am_i, &anon), 0);
    char want[32];
    snprintf(want, sizeof want, "task #%u", (unsigned)t.slot);
    cr_expect_str_eq(tl_task_name(t, buf, sizeof buf), want);
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_str_eq(anon.name, want);

    /* Names are copied and cut at 31 bytes. */
    char longname[64];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_expect_eq(tl_spawn_ex(&t, &(tl_spawn_opts){.name = longname}, ret_arg,
                             NULL), 0);
    longname[0] = 'y'; /* the task keeps its own copy */
    cr_expect_eq(strlen(tl_task_name(t, buf, sizeof buf)), 31u);
    cr_expect_eq(buf[0], 'x');
    cr_expect_eq(tl_join(t, NULL), 0);
    return 0;
}

Test(task, task_names, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_names, NULL), 0);
}

static int main_current(void *arg)
{
    tl_task *out = arg;
    *out = tl_current();
    return 0;
}

Test(task, current_is_zero_outside_a_task, .timeout = 10)
{
    tl_task before = tl_current();
    cr_expect_eq(before.gen, 0u);
    tl_task inside = {0};
    cr_assert_eq(run_virtual(main_current, &inside), 0);
    cr_expect_neq(inside.gen, 0u);
    cr_expect_eq(tl_current().gen, 0u);
}

/* ---- tl_run -------------------------------------------------------------- */

static int ret_42(void *arg)
{
    (void)arg;
    return 42;
}

static int ret_eio(void *arg)
{
    (void)arg;
    return -EIO;
}

static int main_sleep_ret(void *arg)
{
    (void)arg;
    cr_expect_eq(tl_sleep(1.0), 0);
    return 17;
}

Test(task, run_returns_main_status, .timeout = 10)
{
    cr_expect_eq(run_virtual(ret_42, NULL), 42);
    cr_expect_eq(run_virtual(ret_eio, NULL), -EIO);
    cr_expect_eq(run_virtual(main_sleep_ret, NULL), 17);
    cr_expect_eq(tl_run(ret_42, NULL), 42);
    cr_expect_eq(tl_run(NULL, NULL), -EINVAL);
}

static int main_nested_run(void *arg)
{
    (void)arg;
    cr_expect_eq(tl_run(ret_42, NULL), -EBUSY);
    return 0;
}

Test(task, run_inside_a_task_is_refused, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_nested_run, NULL), 0);
}

struct leftover {
    int sleep_rc;
    int cleaned;
    int late_started;
    int late_rc;
};

static int late_spawned(void *arg)
{
    struct leftover *lo = arg;
    lo->late_started = 1;
    lo->late_rc = tl_sleep(1.0);
    return 0;
}

static int forever(void *arg)
{
    struct leftover *lo = arg;
    lo->sleep_rc = tl_sleep(INFINITY);
    lo->cleaned = 1;
    /* A task spawned during teardown starts cancelled. */
    cr_expect_eq(tl_spawn(NULL, late_spawned, lo), 0);
    return 0;
}

static int main_leave_leftover(void *arg)
{
    tl_task t;
    cr_expect_eq(tl_spawn(&t, forever, arg), 0);
    cr_expect_eq(tl_yield(), 0); /* it is now sleeping */
    return 3;
}

Test(task, run_cancels_leftovers_and_returns_main_status, .timeout = 10)
{
    struct leftover lo = {.sleep_rc = 1, .late_rc = 1};
    cr_assert_eq(run_virtual(main_leave_leftover, &lo), 3);
    cr_expect_eq(lo.sleep_rc, -ECANCELED);
    cr_expect_eq(lo.cleaned, 1);
    cr_expect_eq(lo.late_started, 1);
    cr_expect_eq(lo.late_rc, -ECANCELED);
}

static int main_leave_unstarted(void *arg)
{
    struct early *e = arg;
    tl_task t;
    /* Never ran before main returned: it still runs at teardown. */
    cr_expect_eq(tl_spawn(&t, early_victim, e), 0);
    return 0;
}

Test(task, run_starts_and_cancels_unstarted_leftovers, .timeout = 10)
{
    struct early e = {0};
    cr_assert_eq(run_virtual(main_leave_unstarted, &e), 0);
    cr_expect_eq(e.started, 1);
    cr_expect_eq(e.first_rc, -ECANCELED);
    cr_expect_eq(e.cleaned, 1);
}

/* ---- several loops on several threads -------------------------------------- */

#define NTHREADS 4
#define PER_LOOP 200

/* No Criterion macro runs on these threads: results are collected and
 * checked on the test's own thread. */
struct loop_ctx {
    int id;
    int rc;
    long sum;
    double end;
    int bad; /* tasks that saw a wrong errno or a failing call */
};

static int loop_worker(void *arg)
{
    int i = (int)(intptr_t)arg, ok = 1;
    errno = 1000 + i;
    if (tl_sleep((double)(i % 10)) != 0) ok = 0;
    for (int k = 0; k < 3; k++)
        if (tl_yield() != 0) ok = 0;
    if (errno != 1000 + i) ok = 0;
    return ok ? i : -1;
}

static int loop_main(void *arg)
{
    struct loop_ctx *c = arg;
    tl_task t[PER_LOOP];
    for (int i = 0; i < PER_LOOP; i++)
        if (tl_spawn(&t[i], loop_worker, (void *)(intptr_t)i) != 0) return -1;
    for (int i = 0; i < PER_LOOP; i++) {
        int st = -1;
        if (tl_join(t[i], &st) != 0 || st != i) c->bad++;
        c->sum += st;
    }
    c->end = tl_now();
    return 100 + c->id;
}

static void *thread_main(void *arg)
{
    struct loop_ctx *c = arg;
    tl_config cfg = {.virtual_clock = 1, .no_sigint = 1};
    c->rc = tl_run_with(&cfg, loop_main, c);
    return NULL;
}

Test(task, loops_on_several_threads, .timeout = 10)
{
    pthread_t th[NTHREADS];
    struct loop_ctx ctx[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        ctx[i] = (struct loop_ctx){.id = i, .rc = -1};
        cr_assert_eq(pthread_create(&th[i], NULL, thread_main, &ctx[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) cr_assert_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < NTHREADS; i++) {
        cr_expect_eq(ctx[i].rc, 100 + i);
        cr_expect_eq(ctx[i].sum, (long)PER_LOOP * (PER_LOOP - 1) / 2);
        cr_expect_eq(ctx[i].end, 9.0);
        cr_expect_eq(ctx[i].bad, 0);
    }
}

/* ---- a slot's generation never wraps ------------------------------------- */

/* Handles are (slot, 32-bit generation): 2^32 uses of one slot (minutes of
 * a tight spawn/join loop) would wrap it, and a stale handle would name a
 * later task. The limit is lowered here (tl__task_gen_limit, a test hook)
 * so the wrap comes after a few dozen tasks instead. */
extern uint32_t tl__task_gen_limit;

struct wrap {
    tl_task first;
    int aliased, other_slot, cancel_rc, reused;
};

static int nop_task(void *arg)
{
    (void)arg;
    return 0;
}

static int wrap_main(void *arg)
{
    struct wrap *w = arg;
    w->first = tl_test_spawn(nop_task, NULL);
    tl_test_join(w->first);
    for (int i = 0; i < 60; i++) {
        tl_task t = tl_test_spawn(nop_task, NULL);
        if (t.slot == w->first.slot) w->reused++;
        else w->other_slot++;
        if (t.slot == w->first.slot && t.gen == w->first.gen) {
            w->aliased++;
            w->cancel_rc = tl_cancel(w->first); /* would cancel t */
        }
        tl_test_join(t);
    }
    tl_task t = tl_test_spawn(nop_task, NULL); /* live while we ask */
    w->cancel_rc = tl_cancel(w->first);
    tl_test_join(t);
    return 0;
}

Test(task, a_slot_whose_generation_would_wrap_is_retired, .timeout = 10)
{
    struct wrap w = {0};
    uint32_t saved = tl__task_gen_limit;
    tl__task_gen_limit = 40;
    int rc = run_virtual(wrap_main, &w);
    tl__task_gen_limit = saved;
    cr_expect_eq(rc, 0);
    cr_expect_eq(w.aliased, 0, "a stale handle named a later task");
    cr_expect_eq(w.cancel_rc, -ESRCH);
    cr_expect_gt(w.reused, 5, "the slot was reused %d times", w.reused);
    cr_expect_gt(w.other_slot, 0, "the slot was never retired");
}
