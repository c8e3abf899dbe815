/* fork() from inside a task (invariant 8, DESIGN.md "Process-wide
 * state"): the child inherits a copy of the loop, its epoll set and its
 * eventfd, which belong to the parent. Every tulip call on that copy is
 * refused with TL_EFORK and "loop inherited across fork(); start a new
 * tl_run in the child" — and a new tl_run in the child works, watchdog
 * included. The parent's loop carries on untouched.
 *
 * Each case runs in a run_child() child (which forks again from a task);
 * results come back through a MAP_SHARED page, diagnostics through the
 * captured stderr.
 */
#include <sys/mman.h>
#include <time.h>

#include "helpers.h"

struct facts {
    int rc[32];
    int reached;        /* the grandchild got to the end */
    int child_status;   /* its wait status, seen by the forking task */
    int sibling_status; /* the parent's other task, joined after the fork */
};

static struct facts *F;
static char out[16384];

static void facts_init(void)
{
    F = tl_test_shared_page(sizeof *F);
    for (int i = 0; i < 32; i++) F->rc[i] = 12345;
}

static int return7(void *arg)
{
    (void)arg;
    return 7;
}

static int sibling(void *arg)
{
    (void)arg;
    int rc = tl_sleep(100.0);
    return rc == -ECANCELED ? 11 : rc;
}

/* Wait for pid without blocking the loop. */
static int wait_child(pid_t pid)
{
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        if (r < 0 && errno != EINTR) return -1;
        if (tl_sleep(0.002) < 0) return -1;
    }
}

/* ---- the inherited loop refuses every call ------------------------------ */

static int fresh_main(void *arg)
{
    (void)arg;
    tl_task t;
    int st = -1;
    F->rc[20] = tl_spawn(&t, return7, NULL);
    F->rc[21] = tl_join(t, &st);
    F->rc[22] = st;
    F->rc[23] = tl_sleep(0.001);
    return 42;
}

static int forking_main(void *arg)
{
    (void)arg;
    tl_task sib;
    F->rc[30] = tl_spawn_ex(&sib, &(tl_spawn_opts){.name = "sibling"},
                            sibling, NULL);
    TL_IGNORE(tl_yield()); /* sibling parks in its sleep */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid == 0) {
        /* The child: still on this task's stack, in a dead copy of the
         * loop. Nothing may touch it. */
        tl_task t;
        int rc = 0;
        F->rc[0] = tl_sleep(0.01);
        F->rc[1] = tl_yield();
        F->rc[2] = tl_spawn(&t, return7, NULL);
        F->rc[3] = tl_join(sib, NULL);
        F->rc[4] = tl_cancel(sib);
        tl_scope s = tl_timeout_enter(1.0);
        F->rc[5] = s.rec == NULL;
        F->rc[6] = 0;
        TL_WITH_TIMEOUT(1.0, &rc) { F->rc[6] = 1; /* must not run */ }
        F->rc[7] = rc;
        tl_group g;
        F->rc[8] = tl_group_enter(&g);
        F->rc[9] = tl_wait_for(TL_CALL(return7, NULL), 1.0);
        F->rc[10] = tl_sleep_until(1.0);
        /* A fresh loop in the child works. */
        F->rc[11] = tl_run(fresh_main, NULL);
        /* ...and afterwards the inherited one is still refused. */
        F->rc[12] = tl_sleep(0.01);
        F->reached = 1;
        _exit(0);
    }
    /* The parent's loop is untouched. */
    F->child_status = wait_child(pid);
    F->rc[31] = tl_cancel(sib);
    int st = -1;
    F->rc[29] = tl_join(sib, &st);
    F->sibling_status = st;
    return 5;
}

static void fork_child(void *arg)
{
    (void)arg;
    F->rc[28] = tl_run(forking_main, NULL);
}

Test(fork, inherited_loop_refuses_every_call, .timeout = 10)
{
    facts_init();
    int st = run_child(fork_child, NULL, out, sizeof out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x:\n%s", st,
              out);
    cr_expect_eq(F->rc[28], 5);
    cr_expect_eq(F->rc[30], 0);
    cr_assert(WIFEXITED(F->child_status) && WEXITSTATUS(F->child_status) == 0,
              "grandchild status %#x:\n%s", F->child_status, out);
    cr_expect_eq(F->reached, 1, "%s", out);
    for (int i = 0; i <= 4; i++)
        cr_expect_eq(F->rc[i], TL_EFORK, "rc[%d] = %d", i, F->rc[i]);
    cr_expect_eq(F->rc[5], 1);
    cr_expect_eq(F->rc[6], 0, "a TL_WITH_ block ran on a dead loop");
    cr_expect_eq(F->rc[7], TL_EFORK);
    cr_expect_eq(F->rc[8], TL_EFORK);
    cr_expect_eq(F->rc[9], TL_EFORK);
    cr_expect_eq(F->rc[10], TL_EFORK);
    cr_expect_eq(F->rc[11], 42, "a fresh tl_run in the child");
    cr_expect_eq(F->rc[20], 0);
    cr_expect_eq(F->rc[21], 0);
    cr_expect_eq(F->rc[22], 7);
    cr_expect_eq(F->rc[23], 0);
    cr_expect_eq(F->rc[12], TL_EFORK);
    /* The parent. */
    cr_expect_eq(F->rc[31], 0);
    cr_expect_eq(F->rc[29], 0);
    cr_expect_eq(F->sibling_status, 11);

    const char *msg = "loop inherited across fork(); start a new tl_run in "
                      "the child";
    char want[256];
    snprintf(want, sizeof want, "tulip: tl_sleep: %s", msg);
    TL_EXPECT_OUT(out, want);
    snprintf(want, sizeof want, "tulip: tl_join: %s", msg);
    TL_EXPECT_OUT(out, want);
    snprintf(want, sizeof want, "tulip: tl_spawn: %s", msg);
    TL_EXPECT_OUT(out, want);
    /* One line per refused call: sleep, yield, spawn, join, cancel, scope
     * enter, the block macro, group enter, wait_for, sleep_until, sleep. */
    cr_expect_eq(tl_test_count_of(out, msg), 11, "%s", out);
    cr_expect_eq(tl_test_count_of(out, "tulip:"), 11, "%s", out);
}

/* ---- a fresh loop in the child has a watchdog ---------------------------- */

static int busy(void *arg)
{
    (void)arg;
    double t0 = tl_test_now_s();
    /* 15 thresholds: room for a watchdog thread that a loaded machine
     * schedules late. */
    while (tl_test_now_s() - t0 < 1.5) {
    }
    return 0;
}

static int fresh_busy_main(void *arg)
{
    (void)arg;
    tl_task t;
    if (tl_spawn_ex(&t, &(tl_spawn_opts){.name = "busy-child"}, busy, NULL) < 0)
        return -1;
    return tl_join(t, NULL);
}

static int forking_busy_main(void *arg)
{
    (void)arg;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid == 0) {
        F->rc[0] = tl_run(fresh_busy_main, NULL);
        F->reached = 1;
        _exit(0);
    }
    F->child_status = wait_child(pid);
    return 0;
}

static void fork_busy_child(void *arg)
{
    (void)arg;
    /* Read once per process, at the first tl_run: set it before. Sanitized
     * builds multiply it by 5. */
    setenv("TULIP_BLOCKING_MS", TULIP_TEST_SANITIZED ? "20" : "100", 1);
    F->rc[1] = tl_run(forking_busy_main, NULL);
}

Test(fork, fresh_loop_in_the_child_has_a_watchdog, .timeout = 10)
{
    facts_init();
    int st = run_child(fork_busy_child, NULL, out, sizeof out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x:\n%s", st,
              out);
    cr_expect_eq(F->rc[1], 0);
    cr_assert(WIFEXITED(F->child_status) && WEXITSTATUS(F->child_status) == 0,
              "grandchild status %#x:\n%s", F->child_status, out);
    cr_expect_eq(F->reached, 1);
    cr_expect_eq(F->rc[0], 0);
    cr_expect(strstr(out, "tulip: task 'busy-child' has run ") != NULL,
              "no watchdog report from the child's loop:\n%s", out);
    cr_expect(strstr(out, "without yielding") != NULL, "%s", out);
}

/* Ctrl-C after fork: the child must not keep a handler that talks to the
 * parent's loop. SIGINT is back at SIG_DFL in the child, and a new tl_run
 * there installs its own handler (and restores SIG_DFL when it returns). */
static int sigint_is_ours(void)
{
    struct sigaction sa;
    sigaction(SIGINT, NULL, &sa);
    return sa.sa_handler != SIG_DFL;
}

static int sigint_child_main(void *arg)
{
    (void)arg;
    F->rc[3] = sigint_is_ours();
    return 0;
}

static int sigint_parent_main(void *arg)
{
    (void)arg;
    F->rc[0] = sigint_is_ours();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        F->rc[1] = sigint_is_ours();
        F->rc[2] = tl_run(sigint_child_main, NULL);
        F->rc[4] = sigint_is_ours();
        F->reached = 1;
        _exit(0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    F->child_status = st;
    return 0;
}

static void sigint_case(void *arg)
{
    (void)arg;
    signal(SIGINT, SIG_DFL);
    F->rc[5] = tl_run(sigint_parent_main, NULL);
}

Test(fork, child_gets_its_own_ctrl_c, .timeout = 10)
{
    facts_init();
    int st = run_child(sigint_case, NULL, out, sizeof out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d\n%s", st, out);
    cr_expect_eq(F->rc[0], 1, "the parent's tl_run installed its handler");
    cr_expect_eq(F->rc[1], 0, "the child starts with SIG_DFL");
    cr_expect_eq(F->rc[2], 0);
    cr_expect_eq(F->rc[3], 1, "a new tl_run in the child installs its own");
    cr_expect_eq(F->rc[4], 0, "and restores SIG_DFL when it returns");
    cr_expect_eq(F->reached, 1);
    cr_expect_eq(F->rc[5], 0);
}
