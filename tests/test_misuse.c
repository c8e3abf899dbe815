/* Misuse gets a clear message, not a crash or a hang (invariant 8), and
 * scopes and groups cannot dangle (invariant 6).
 *
 * Every case runs in a child (run_child) so that its stderr can be read
 * back and an abort() is a wait status, not a dead test runner. The child
 * records what it saw in a MAP_SHARED page created before the fork; the
 * parent asserts on that page and on the exact diagnostic text.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "helpers.h"

#define OUT_LEN 16384

/* What a child saw, shared with the parent. */
struct facts {
    int rc[16];        /* results of the calls under test */
    int line[4];       /* enter sites (__LINE__) recorded by the child */
    int status;        /* a joined task's status */
    int cancelled;     /* children that met -ECANCELED */
    int cleaned;       /* children that ran their cleanup */
    int cleaned_at_join;
    int reached;       /* the child got past the point of misuse */
};

static struct facts *F;
static char out[OUT_LEN];

/* Run main_fn on the virtual clock in a tl_test_child; its tl_run status
 * lands in F->rc[15], its output in `out`. */
static int child_run(tl_fn main_fn)
{
    return tl_test_virtual_child(main_fn, &F->rc[15], out, sizeof out);
}

static void facts_fini(void) { munmap(F, sizeof *F); }

/* "FILE:LINE" of an enter site the child recorded. */
static const char *site(int line)
{
    static char buf[4][512];
    static int next;
    char *b = buf[next++ & 3];
    snprintf(b, sizeof buf[0], "%s:%d", __FILE__, line);
    return b;
}

static int return7(void *arg)
{
    (void)arg;
    return 7;
}

static int sleep_then_7(void *arg)
{
    TL_IGNORE(tl_sleep(arg ? *(double *)arg : 1.0));
    return 7;
}

/* ---- a suspending call outside a task ----------------------------------- */

static int never_runs(void *arg)
{
    (void)arg;
    return 0;
}

static void outside_child(void *arg)
{
    (void)arg;
    tl_task t = {0};
    F->rc[0] = tl_sleep(0.01);
    F->rc[1] = tl_yield();
    F->rc[2] = tl_spawn(&t, never_runs, NULL);
    F->rc[3] = tl_join((tl_task){.slot = 1, .gen = 1, .loop = 1}, NULL);
    F->reached = 1;
}

Test(misuse, suspending_call_outside_a_task, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(outside_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->reached, 1);
    cr_expect_eq(F->rc[0], TL_ENOTASK);
    cr_expect_eq(F->rc[1], TL_ENOTASK);
    cr_expect_eq(F->rc[2], TL_ENOTASK);
    cr_expect_eq(F->rc[3], TL_ENOTASK);
    TL_EXPECT_OUT(out, "tulip: tl_sleep() called outside a tulip task");
    TL_EXPECT_OUT(out, "tulip: tl_yield() called outside a tulip task");
    TL_EXPECT_OUT(out, "tulip: tl_spawn() called outside a tulip task");
    TL_EXPECT_OUT(out, "tulip: tl_join() called outside a tulip task");
    facts_fini();
}

/* ---- stale handles ------------------------------------------------------ */

static int stale_main(void *arg)
{
    (void)arg;
    tl_task t;
    int status = -1;
    F->rc[0] = tl_spawn(&t, return7, NULL);
    F->rc[1] = tl_join(t, &status);
    F->status = status;
    status = -1;
    F->rc[2] = tl_join(t, &status); /* the slot was freed by the first */
    F->rc[3] = status;              /* untouched */
    F->rc[4] = tl_cancel(t);
    F->rc[5] = tl_detach(t);
    F->rc[6] = tl_task_done(t);
    /* The slot is reused by the next spawn; the old handle must not reach
     * the new task. */
    tl_task u;
    F->rc[7] = tl_spawn(&u, return7, NULL);
    F->rc[8] = u.slot == t.slot && u.gen != t.gen;
    F->rc[9] = tl_join(t, NULL);
    F->rc[10] = tl_join(u, &status);
    return 0;
}

Test(misuse, stale_handle_is_refused, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(stale_main);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[15], 0);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->status, 7);
    cr_expect_eq(F->rc[2], -ESRCH);
    cr_expect_eq(F->rc[3], -1);
    cr_expect_eq(F->rc[4], -ESRCH);
    cr_expect_eq(F->rc[5], -ESRCH);
    cr_expect_eq(F->rc[6], 0);
    cr_expect_eq(F->rc[7], 0);
    cr_expect_eq(F->rc[8], 1, "slot not reused with a new generation");
    cr_expect_eq(F->rc[9], -ESRCH);
    cr_expect_eq(F->rc[10], 0);
    TL_EXPECT_OUT(out, "tulip: tl_join: stale task handle");
    TL_EXPECT_OUT(out, "tulip: tl_cancel: stale task handle");
    TL_EXPECT_OUT(out, "tulip: tl_detach: stale task handle");
    cr_expect_eq(tl_test_count_of(out, "tl_join: stale task handle"), 2, "%s",
                 out);
    facts_fini();
}

/* ---- join: itself, a second joiner, detached, a group member ------------- */

static int self_join_main(void *arg)
{
    (void)arg;
    int status = 12345;
    F->rc[0] = tl_join(tl_current(), &status);
    F->rc[1] = status;
    F->reached = 1;
    return 0;
}

Test(misuse, joining_oneself_is_edeadlk, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(self_join_main);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], -EDEADLK);
    cr_expect_eq(F->rc[1], 12345);
    cr_expect_eq(F->reached, 1);
    cr_expect_eq(F->rc[15], 0);
    TL_EXPECT_OUT(out, "tulip: tl_join: task 'main' tried to join itself");
    facts_fini();
}

static tl_task target;

static int first_joiner(void *arg)
{
    (void)arg;
    int status = -1;
    F->rc[2] = tl_join(target, &status);
    F->status = status;
    return 0;
}

static int second_joiner_main(void *arg)
{
    (void)arg;
    double d = 1.0;
    tl_task j;
    F->rc[0] = tl_spawn_ex(&target, &(tl_spawn_opts){.name = "target"},
                           sleep_then_7, &d);
    F->rc[1] = tl_spawn(&j, first_joiner, NULL);
    (void)tl_yield(); /* first_joiner parks in tl_join */
    int status = 999;
    F->rc[3] = tl_join(target, &status);
    F->rc[4] = status;
    F->rc[5] = tl_join(j, NULL);
    return 0;
}

Test(misuse, second_joiner_is_einval, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(second_joiner_main);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->rc[3], -EINVAL);
    cr_expect_eq(F->rc[4], 999);
    cr_expect_eq(F->rc[2], 0, "the first joiner must still get the task");
    cr_expect_eq(F->status, 7);
    cr_expect_eq(F->rc[5], 0);
    cr_expect_eq(F->rc[15], 0);
    TL_EXPECT_OUT(out, "tulip: tl_join: task 'target' is already being joined "
                       "(at most one joiner)");
    facts_fini();
}

static int detached_join_main(void *arg)
{
    (void)arg;
    tl_task t;
    F->rc[0] = tl_spawn_ex(&t, &(tl_spawn_opts){.name = "loner"}, return7,
                           NULL);
    F->rc[1] = tl_detach(t);
    F->rc[2] = tl_join(t, NULL); /* not yet run: still there, detached */
    F->rc[3] = tl_detach(t);     /* twice */
    TL_IGNORE(tl_sleep(0.1));         /* it runs and frees its slot */
    F->rc[4] = tl_join(t, NULL);
    return 0;
}

Test(misuse, joining_a_detached_task_is_einval, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(detached_join_main);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->rc[2], -EINVAL);
    cr_expect_eq(F->rc[3], -EINVAL);
    cr_expect_eq(F->rc[4], -ESRCH);
    cr_expect_eq(F->rc[15], 0);
    TL_EXPECT_OUT(out, "tulip: tl_join: task 'loner' is detached");
    facts_fini();
}

/* ---- a handle from another thread's loop -------------------------------- */

static _Atomic int foreign_ready;   /* the other loop published its task */
static _Atomic int foreign_release; /* we are done poking at it */
static tl_task foreign;

static int foreign_task(void *arg)
{
    (void)arg;
    while (!atomic_load(&foreign_release))
        if (tl_sleep(0.001) < 0) return -ECANCELED;
    return 3;
}

static int foreign_main(void *arg)
{
    (void)arg;
    tl_task t;
    if (tl_spawn_ex(&t, &(tl_spawn_opts){.name = "foreign"}, foreign_task,
                    NULL) < 0)
        return -1;
    foreign = t;
    atomic_store(&foreign_ready, 1);
    int status = 0;
    int rc = tl_join(t, &status);
    return rc < 0 ? rc : status;
}

static void *foreign_thread(void *arg)
{
    *(int *)arg = tl_run(foreign_main, NULL);
    return NULL;
}

static int xdev_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&foreign_ready)) TL_IGNORE(tl_sleep(0.001));
    int status = 77;
    F->rc[0] = tl_join(foreign, &status);
    F->rc[1] = status;
    F->rc[2] = tl_cancel(foreign);
    F->rc[3] = tl_detach(foreign);
    char name[32];
    F->rc[4] = tl_task_name(foreign, name, sizeof name) == NULL;
    F->rc[5] = tl_current().loop != foreign.loop;
    atomic_store(&foreign_release, 1);
    return 0;
}

static void xdev_child(void *arg)
{
    (void)arg;
    pthread_t th;
    int other = -100;
    if (pthread_create(&th, NULL, foreign_thread, &other) != 0) return;
    F->rc[15] = tl_run(xdev_main, NULL);
    pthread_join(th, NULL);
    F->rc[14] = other;
    F->reached = 1;
}

Test(misuse, handle_of_another_loop_is_exdev, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(xdev_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->reached, 1);
    cr_expect_eq(F->rc[0], -EXDEV);
    cr_expect_eq(F->rc[1], 77);
    cr_expect_eq(F->rc[2], -EXDEV);
    cr_expect_eq(F->rc[3], -EXDEV);
    cr_expect_eq(F->rc[4], 1);
    cr_expect_eq(F->rc[5], 1);
    cr_expect_eq(F->rc[15], 0);
    cr_expect_eq(F->rc[14], 3, "the other loop's task was disturbed");
    TL_EXPECT_OUT(out, "tulip: tl_join: task handle belongs to loop #");
    TL_EXPECT_OUT(out, "tulip: tl_cancel: task handle belongs to loop #");
    TL_EXPECT_OUT(out, "tulip: tl_detach: task handle belongs to loop #");
    facts_fini();
}

/* ---- tl_run inside a task ----------------------------------------------- */

static int inner_main(void *arg)
{
    (void)arg;
    F->rc[1] = 1; /* must never run */
    return 0;
}

static int nested_run_main(void *arg)
{
    (void)arg;
    F->rc[0] = tl_run(inner_main, NULL);
    F->rc[2] = tl_sleep(0.5); /* the loop still works */
    return 5;
}

Test(misuse, tl_run_inside_a_task_is_ebusy, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(nested_run_main);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], -EBUSY);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->rc[2], 0);
    cr_expect_eq(F->rc[15], 5);
    TL_EXPECT_OUT(out, "tulip: tl_run: this thread already runs a loop");
    facts_fini();
}

/* ---- scopes: out of order ----------------------------------------------- */

static int out_of_order_main(void *arg)
{
    (void)arg;
    tl_scope outer = tl_timeout_enter(10.0); F->line[0] = __LINE__;
    tl_scope inner = tl_move_on_enter(10.0); F->line[1] = __LINE__;
    (void)inner;
    F->reached = 1;
    TL_IGNORE(tl_scope_exit(outer, 0)); /* inner is still open: abort */
    F->reached = 2;
    return 0;
}

static void out_of_order_child(void *arg)
{
    (void)arg;
    F->rc[15] = run_virtual(out_of_order_main, NULL);
}

Test(misuse, exiting_a_scope_that_is_not_innermost_aborts, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(out_of_order_child, NULL, out, sizeof out);
    TL_EXPECT_ABORTED(st, out);
    cr_expect_eq(F->reached, 1);
    cr_expect_gt(F->line[0], 0);
    char want[1200];
    snprintf(want, sizeof want,
             "tulip: tl_scope_exit: task 'main' exits the scope entered at "
             "%s, but the innermost open scope (entered at %s) was never "
             "exited (scope stack corrupted)",
             site(F->line[0]), site(F->line[1]));
    TL_EXPECT_OUT(out, want);
    facts_fini();
}

/* The same through the block macros: a group closed inside a scope that
 * was opened after it. */
static int group_out_of_order_main(void *arg)
{
    (void)arg;
    tl_group g;
    F->rc[0] = tl_group_enter(&g); F->line[0] = __LINE__;
    tl_scope s = tl_cancel_scope_enter(); F->line[1] = __LINE__;
    (void)s;
    F->reached = 1;
    TL_IGNORE(tl_group_wait(g, 0, NULL));
    F->reached = 2;
    return 0;
}

Test(misuse, closing_a_group_under_an_open_scope_aborts, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(group_out_of_order_main);
    TL_EXPECT_ABORTED(st, out);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->reached, 1);
    TL_EXPECT_OUT(out, "(scope stack corrupted)");
    TL_EXPECT_OUT(out, site(F->line[0]));
    TL_EXPECT_OUT(out, site(F->line[1]));
    facts_fini();
}

/* ---- scopes: a frame returned without exiting its scope ------------------ */

/* Runs main_fn in a child: it leaks a scope entered at F->line[k], then
 * suspends (F->reached 1). The suspend aborts, naming that line.
 * frame_records: the leak is seen only through the frame records, which
 * are read on x86-64 and AArch64 only (elsewhere the test is skipped). */
static void expect_leak_caught(tl_fn main_fn, int k, int frame_records)
{
#if !defined(__x86_64__) && !defined(__aarch64__)
    if (frame_records)
        cr_skip_test("frame records are read on x86-64 and AArch64 only");
#else
    (void)frame_records;
#endif
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(main_fn);
    TL_EXPECT_ABORTED(st, out);
    cr_expect_eq(F->reached, 1);
    char want[1200];
    snprintf(want, sizeof want,
             "tulip: task 'main': the function that entered the scope at "
             "%s returned without exiting it (scope stack corrupted)",
             site(F->line[k]));
    TL_EXPECT_OUT(out, want);
    facts_fini();
}

/* Enters a scope and "forgets" to exit it. noinline and reached through
 * a chain of fat frames, so its frame lies well below anything the task
 * function itself calls afterwards. */
static __attribute__((noinline)) void forgetful(void)
{
    tl_scope s = tl_timeout_enter(10.0); F->line[0] = __LINE__;
    (void)s;
}

static __attribute__((noinline)) int descend(int n)
{
    volatile char pad[2048];
    pad[0] = (char)n;
    if (n > 0)
        pad[1] = (char)descend(n - 1);
    else
        forgetful();
    return pad[0] + pad[n > 0 ? 1 : 0]; /* not a tail call */
}

static int leaked_scope_main(void *arg)
{
    (void)arg;
    F->rc[0] = descend(4);
    F->reached = 1;
    /* Suspends from a shallower frame than the one that entered the
     * scope: the record lies below the stack pointer. */
    F->rc[1] = tl_sleep(0.001);
    F->reached = 2;
    return 0;
}

Test(misuse, returning_without_exiting_a_scope_aborts_at_next_suspend,
     .timeout = 10)
{
    expect_leak_caught(leaked_scope_main, 0, 0);
}

/* The common case: a helper enters a scope and returns, then its caller
 * suspends from a frame at the same depth (the sleep's frames reuse the
 * helper's memory). The stack pointer test alone cannot see it; the
 * helper's overwritten return-address slot gives it away. */
static __attribute__((noinline)) void forgetful_helper(void)
{
    tl_scope s = tl_move_on_enter(10.0); F->line[1] = __LINE__;
    (void)s;
}

static int sibling_depth_main(void *arg)
{
    (void)arg;
    forgetful_helper();
    F->reached = 1;
    F->rc[2] = tl_sleep(0.001);
    F->reached = 2;
    return 0;
}

Test(misuse, helper_that_leaks_a_scope_is_caught_at_the_callers_next_suspend,
     .timeout = 10)
{
    expect_leak_caught(sibling_depth_main, 1, 1);
}

/* The same helper without noinline: a small static function called once
 * is inlined at -O2 unless the enter macro pins its frame; inlined, it
 * would share its caller's frame and the leaked deadline would go on
 * cancelling the caller's code, silently. */
static void inlinable_forgetful_helper(void)
{
    tl_scope s = tl_timeout_enter(0.0); F->line[2] = __LINE__;
    (void)s;
}

static int inlinable_helper_main(void *arg)
{
    (void)arg;
    inlinable_forgetful_helper();
    F->reached = 1;
    F->rc[3] = tl_sleep(0.001);
    F->reached = 2;
    return 0;
}

Test(misuse, inlinable_helper_that_leaks_a_scope_is_caught_at_next_suspend,
     .timeout = 10)
{
    expect_leak_caught(inlinable_helper_main, 2, 1);
}

/* ---- a task returns with a group / scope open ---------------------------- */

static int long_child(void *arg)
{
    (void)arg;
    int rc = tl_sleep(100.0);
    if (rc == -ECANCELED) F->cancelled++;
    F->cleaned++; /* cleanup runs */
    return rc;
}

static int sloppy_group(void *arg)
{
    (void)arg;
    tl_group g;
    F->rc[0] = tl_group_enter(&g); F->line[0] = __LINE__;
    F->rc[1] = tl_group_spawn_ex(g, &(tl_spawn_opts){.name = "kid1"},
                                 long_child, NULL, NULL);
    F->rc[2] = tl_group_spawn_ex(g, &(tl_spawn_opts){.name = "kid2"},
                                 long_child, NULL, NULL);
    TL_IGNORE(tl_sleep(0.01)); /* the children start and park */
    return 5;             /* forgot tl_group_wait */
}

static int group_open_main(void *arg)
{
    (void)arg;
    tl_task t;
    int status = 0;
    F->rc[3] = tl_spawn_ex(&t, &(tl_spawn_opts){.name = "sloppy"},
                           sloppy_group, NULL);
    F->rc[4] = tl_join(t, &status);
    F->status = status;
    F->cleaned_at_join = F->cleaned;
    F->rc[5] = (int)(tl_now() * 1000); /* ms: no 100 s wait */
    return 0;
}

static void group_open_child(void *arg)
{
    (void)arg;
    F->rc[15] = run_virtual(group_open_main, NULL);
    F->reached = 1;
}

Test(misuse, task_returning_with_a_group_open_cancels_and_joins_it,
     .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(group_open_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->reached, 1);
    cr_expect_eq(F->rc[15], 0);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->rc[2], 0);
    cr_expect_eq(F->rc[4], 0);
    cr_expect_eq(F->status, 5, "the task's own result is kept");
    cr_expect_eq(F->cancelled, 2);
    cr_expect_eq(F->cleaned, 2);
    cr_expect_eq(F->cleaned_at_join, 2,
                 "children must be joined before the task counts as done");
    cr_expect_eq(F->rc[5], 10, "virtual time moved to %d ms", F->rc[5]);
    char want[1200];
    snprintf(want, sizeof want,
             "tulip: task 'sloppy' returned with the task group entered at "
             "%s still open; cancelling and waiting for its children",
             site(F->line[0]));
    TL_EXPECT_OUT(out, want);
    TL_EXPECT_NOT_OUT(out, "lost failure");
    /* The cancelled children are not failures anyone lost. */
    TL_EXPECT_NOT_OUT(out, "kid1");
    facts_fini();
}

static int failing_kid(void *arg)
{
    (void)arg;
    return tl_fail(-EIO, "disk on fire");
}

static int sloppy_failing_group(void *arg)
{
    (void)arg;
    tl_group g;
    F->rc[0] = tl_group_enter(&g);
    F->rc[1] = tl_group_spawn_ex(g, &(tl_spawn_opts){.name = "burner"},
                                 failing_kid, NULL, NULL);
    F->rc[2] = tl_group_spawn_ex(g, &(tl_spawn_opts){.name = "waiter"},
                                 long_child, NULL, NULL);
    F->rc[3] = tl_sleep(1.0); /* cancelled by burner's failure */
    return 0;
}

static int lost_failure_main(void *arg)
{
    (void)arg;
    tl_task t;
    int status = -1;
    if (tl_spawn_ex(&t, &(tl_spawn_opts){.name = "sloppy"},
                    sloppy_failing_group, NULL) < 0)
        return -1;
    F->rc[4] = tl_join(t, &status);
    F->status = status;
    return 0;
}

Test(misuse, task_returning_with_a_group_open_reports_lost_failures,
     .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(lost_failure_main);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[15], 0);
    cr_expect_eq(F->rc[3], -ECANCELED);
    cr_expect_eq(F->rc[4], 0);
    cr_expect_eq(F->status, 0);
    cr_expect_eq(F->cancelled, 1);
    TL_EXPECT_OUT(out, "still open; cancelling and waiting for its children");
    TL_EXPECT_OUT(out,
                  "tulip:   lost failure: task 'burner': -EIO: disk on fire");
    facts_fini();
}

static int sloppy_scope(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(10.0); F->line[0] = __LINE__;
    (void)s;
    F->rc[0] = tl_sleep(0.5);
    return 4; /* forgot tl_scope_exit */
}

static int scope_open_main(void *arg)
{
    (void)arg;
    tl_task t;
    int status = -1;
    if (tl_spawn_ex(&t, &(tl_spawn_opts){.name = "sloppy"}, sloppy_scope,
                    NULL) < 0)
        return -1;
    F->rc[1] = tl_join(t, &status);
    F->status = status;
    /* Its deadline died with it: nothing fires at 10 s. */
    F->rc[2] = tl_sleep(20.0);
    return 0;
}

static void scope_open_child(void *arg)
{
    (void)arg;
    F->rc[15] = run_virtual(scope_open_main, NULL);
    F->reached = 1;
}

Test(misuse, task_returning_with_a_scope_open_is_reported, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(scope_open_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->reached, 1);
    cr_expect_eq(F->rc[15], 0);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->status, 4);
    cr_expect_eq(F->rc[2], 0);
    char want[1200];
    snprintf(want, sizeof want,
             "tulip: task 'sloppy' returned without exiting the scope "
             "entered at %s", site(F->line[0]));
    TL_EXPECT_OUT(out, want);
    cr_expect_eq(tl_test_count_of(out, "tulip:"), 1, "%s", out);
    facts_fini();
}
