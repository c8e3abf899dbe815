/* Diagnostics: failures are never silent (invariant 7), teardown names its
 * stragglers (invariant 1), ignored cancels are named (invariant 2a),
 * blocking the loop is visible live (invariant 9), and Ctrl-C cancels the
 * main task the way asyncio.run does (DESIGN.md "Process-wide state").
 *
 * Every case runs in a run_child() child: its stderr is read back and
 * matched exactly; what the child observed comes back through a
 * MAP_SHARED page. The teardown case takes 6 s of real time by design.
 */
/* tulip-test-labels: slow */
#include <sys/mman.h>
#include <time.h>

#include "helpers.h"

struct facts {
    int rc[16];
    int count[8];
    double ms[4];
};

static struct facts *F;
static char out[65536];

/* Run main_fn on the virtual clock in a tl_test_child; its tl_run status
 * lands in F->rc[15], its output in `out`. */
static int child_run(tl_fn main_fn)
{
    return tl_test_virtual_child(main_fn, &F->rc[15], out, sizeof out);
}

/* Position of needle in out, or -1. */
static long pos_of(const char *needle)
{
    const char *p = strstr(out, needle);
    return p ? p - out : -1;
}

/* A marker line on stderr, in order with tulip's own diagnostics (both
 * are single write(2) calls on the same descriptor). */
static void mark(const char *s)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "MARK %s\n", s);
    TL_IGNORE((int)write(2, buf, (size_t)n));
}

static tl_task spawn_named(const char *name, tl_fn fn, void *arg)
{
    tl_task t = {0};
    int rc = tl_spawn_ex(&t, &(tl_spawn_opts){.name = name}, fn, arg);
    cr_expect_eq(rc, 0);
    return t;
}

/* ---- never joined (invariant 7) ----------------------------------------- */

static int fetch_b(void *arg)
{
    (void)arg;
    TL_IGNORE(tl_sleep(0.1));
    return tl_fail(-ECONNREFUSED, "connect to b:80");
}

static int fetch_a(void *arg)
{
    (void)arg;
    return tl_fail(-EHOSTUNREACH, "a is down");
}

/* The message was attached to another code than the final status: not
 * shown. */
static int quiet(void *arg)
{
    (void)arg;
    (void)tl_fail(-EIO, "this message belongs to -EIO");
    return -EPIPE;
}

static int unjoined_main(void *arg)
{
    (void)arg;
    tl_task a = spawn_named("fetch a", fetch_a, NULL);
    spawn_named("fetch b", fetch_b, NULL);
    spawn_named("quiet", quiet, NULL);
    int st = 0;
    F->rc[0] = tl_join(a, &st);
    F->rc[1] = st;
    F->rc[2] = tl_sleep(1.0); /* everything has finished */
    mark("main returns");
    return 0;
}

Test(diag, failed_task_nobody_joined_is_reported, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(unjoined_main);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[15], 0);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], -EHOSTUNREACH);
    cr_expect_eq(F->rc[2], 0);
    TL_EXPECT_OUT(out,
                  "tulip: task 'fetch b' failed with -ECONNREFUSED (Connection "
                  "refused): connect to b:80 and nobody joined it\n");
    TL_EXPECT_OUT(out,
                  "tulip: task 'quiet' failed with -EPIPE (Broken pipe) and "
                  "nobody joined it\n");
    TL_EXPECT_NOT_OUT(out, "fetch a");
    TL_EXPECT_NOT_OUT(out, "belongs to -EIO");
    cr_expect_eq(tl_test_count_of(out, "nobody joined it"), 2, "%s", out);
    /* Reported when destroyed, i.e. by tl_run after main returned: a
     * joinable task could still have been joined until then. */
    cr_expect_gt(pos_of("'fetch b' failed"), pos_of("MARK main returns"),
                 "%s", out);
}

static int bg_fails(void *arg)
{
    (void)arg;
    TL_IGNORE(tl_sleep(1.0));
    return tl_fail(-ETIMEDOUT, "no answer from the server");
}

static int fails_now(void *arg)
{
    (void)arg;
    return tl_fail(-ENOENT, "no such key");
}

static int detached_main(void *arg)
{
    (void)arg;
    tl_spawn_opts o = {.name = "bg"};
    F->rc[0] = tl_spawn_ex(NULL, &o, bg_fails, NULL); /* detached */
    mark("spawned bg");
    F->rc[1] = tl_sleep(2.0);
    mark("bg is over");
    /* Detaching a task that already failed reports it at once. */
    tl_task late = spawn_named("late", fails_now, NULL);
    F->rc[2] = tl_sleep(0.5);
    mark("late finished");
    F->rc[3] = tl_detach(late);
    mark("late detached");
    F->rc[4] = tl_sleep(0.5);
    return 0;
}

Test(diag, detached_failure_is_reported_when_it_ends, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(detached_main);
    TL_EXPECT_EXITED_OK(st, out);
    for (int i = 0; i <= 4; i++) cr_expect_eq(F->rc[i], 0, "rc[%d]", i);
    cr_expect_eq(F->rc[15], 0);
    const char *bg = "tulip: task 'bg' failed with -ETIMEDOUT (Connection "
                     "timed out): no answer from the server and nobody "
                     "joined it\n";
    const char *late = "tulip: task 'late' failed with -ENOENT (No such file "
                       "or directory): no such key and nobody joined it\n";
    TL_EXPECT_OUT(out, bg);
    TL_EXPECT_OUT(out, late);
    cr_expect_eq(tl_test_count_of(out, "nobody joined it"), 2, "%s", out);
    long pbg = pos_of(bg), plate = pos_of(late);
    cr_expect(pos_of("MARK spawned bg") < pbg && pbg < pos_of("MARK bg is over"),
              "the detached failure must be reported when it ends:\n%s", out);
    cr_expect(pos_of("MARK late finished") < plate &&
                  plate < pos_of("MARK late detached"),
              "tl_detach of a failed task must report it:\n%s", out);
}

static int waits_long(void *arg)
{
    (void)arg;
    return tl_sleep(100.0); /* -ECANCELED by teardown */
}

static int messy(void *arg)
{
    (void)arg;
    if (tl_sleep(100.0) == -ECANCELED)
        return tl_fail(-EIO, "rollback failed"); /* a real failure */
    return 0;
}

static int cancelled_main(void *arg)
{
    (void)arg;
    spawn_named("victim", waits_long, NULL);
    tl_task v2 = spawn_named("victim2", waits_long, NULL);
    spawn_named("messy", messy, NULL);
    F->rc[0] = tl_sleep(0.1);
    F->rc[1] = tl_cancel(v2); /* cancelled by us, never joined */
    F->rc[2] = tl_sleep(0.1);
    return 0;
}

Test(diag, cancelled_tasks_are_not_reported, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(cancelled_main);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[15], 0);
    TL_EXPECT_NOT_OUT(out, "victim");
    TL_EXPECT_OUT(out,
                  "tulip: task 'messy' failed with -EIO (Input/output error): "
                  "rollback failed and nobody joined it\n");
    cr_expect_eq(tl_test_count_of(out, "tulip:"), 1, "%s", out);
}

/* ---- teardown names what is still running 5 s in ------------------------- */

/* Ignores cancellation and goes on "sleeping 1 s at a time" for 6 s: once
 * cancelled, every tl_sleep returns -ECANCELED at once (after a yield). */
static int stubborn(void *arg)
{
    (void)arg;
    double t0 = tl_test_now_s();
    while (tl_test_now_s() - t0 < 6.0) TL_IGNORE(tl_sleep(1.0));
    return 0;
}

/* Cleanup that really takes 6 s: shielded sleeps. */
static int cleanup(void *arg)
{
    (void)arg;
    tl_scope s = tl_shield_enter();
    for (int i = 0; i < 6; i++) TL_IGNORE(tl_sleep(1.0));
    return tl_scope_exit(s, 0);
}

static int teardown_main(void *arg)
{
    (void)arg;
    spawn_named("stubborn", stubborn, NULL);
    spawn_named("cleanup", cleanup, NULL);
    F->rc[0] = tl_sleep(0.05);
    mark("main returns");
    return 3;
}

static void teardown_child(void *arg)
{
    (void)arg;
    double t0 = tl_test_now_s();
    F->rc[15] = tl_run(teardown_main, NULL);
    F->ms[0] = (tl_test_now_s() - t0) * 1000;
}

/* .timeout as the other tests: Criterion 2.4.1's runner leaks 48 bytes
 * (LeakSanitizer, sanitized builds) when a test with a longer timeout runs
 * beside tests with shorter ones. 6 s of 10 is margin enough. */
Test(diag, teardown_names_tasks_still_running_after_5s, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(teardown_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[15], 3);
    cr_expect(F->ms[0] >= 5900 && F->ms[0] < 9000,
              "tl_run took %.0f ms; it must wait for both (~6 s)", F->ms[0]);
    TL_EXPECT_OUT(
        out, "tulip: tl_run: 2 task(s) still running 5 s into teardown");
    /* The task dump: stubborn is cancelled and keeps calling tl_sleep
     * (between two calls it is ready); cleanup sleeps in a shield. */
    TL_EXPECT_OUT(out, "tulip: task 'stubborn' (slot 1) ");
    TL_EXPECT_OUT(out, "in tl_sleep");
    TL_EXPECT_OUT(out, "tulip: task 'cleanup' (slot 2) waiting");
    TL_EXPECT_OUT(out, "tulip:   waits in tl_sleep for ");
    TL_EXPECT_OUT(out, "tulip:     shield entered at ");
    cr_expect_eq(tl_test_count_of(out, "into teardown"), 1, "%s", out);
    cr_expect_gt(pos_of("into teardown"), pos_of("MARK main returns"));
}

/* ---- ignored cancels (invariant 2a) ------------------------------------- */

static volatile int stubborn_done;

static int ignorer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1500; i++) {
        int rc = tl_sleep(1.0); /* checks nothing */
        if (rc == -ECANCELED) F->count[0]++;
        if (i == 999) F->count[2] = F->count[1]; /* worker progress then */
    }
    stubborn_done = 1;
    return 0;
}

static int worker(void *arg)
{
    (void)arg;
    while (!stubborn_done) {
        F->count[1]++;
        if (tl_yield() < 0) return -ECANCELED;
    }
    return 0;
}

static int ignored_main(void *arg)
{
    (void)arg;
    tl_task s = spawn_named("stubborn", ignorer, NULL);
    tl_task w = spawn_named("worker", worker, NULL);
    F->rc[0] = tl_cancel(s);
    int st = -1;
    F->rc[1] = tl_join(s, &st);
    F->rc[2] = st;
    F->rc[3] = tl_join(w, &st);
    F->rc[4] = st;
    F->ms[0] = tl_now() * 1000;
    return 0;
}

Test(diag, ignored_cancels_never_freeze_the_loop_and_are_named, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(ignored_main);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[15], 0);
    for (int i = 0; i <= 4; i++) cr_expect_eq(F->rc[i], 0, "rc[%d]", i);
    cr_expect_eq(F->count[0], 1500, "every sleep returned -ECANCELED");
    cr_expect_eq(F->ms[0], 0.0, "a cancelled sleep must not sleep");
    /* Each -ECANCELED return yielded: the worker ran between them. */
    cr_expect_geq(F->count[2], 999, "worker progress %d at 1000 ignored",
                  F->count[2]);
    cr_expect_geq(F->count[1], 1499);
    TL_EXPECT_OUT(out,
                  "tulip: task 'stubborn' ignored -ECANCELED 1000 times; last "
                  "from tl_sleep() called at ");
    cr_expect_eq(tl_test_count_of(out, "ignored -ECANCELED"), 1, "%s", out);
    TL_EXPECT_NOT_OUT(out, "'worker'");
}

/* Correct code that meets many cancels in sequence — a loop of timeouts,
 * each one handled by leaving its scope — is not "ignoring" them. Every
 * scope here is expired on entry, so each first call is cancelled at its
 * checkpoint: the count the warning uses must restart at each handled
 * cancel. Also for a group whose own cancel (tl_group_cancel) is handled. */
static int handled_timeouts_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2500; i++) {
        int rc;
        TL_WITH_TIMEOUT(0.0, &rc) { rc = tl_sleep(1.0); }
        if (rc == -ETIMEDOUT) F->count[0]++;
        tl_scope s = tl_move_on_enter(0.0);
        rc = tl_yield();
        if (tl_scope_exit(s, rc) == 0 && rc == -ECANCELED) F->count[1]++;
        tl_group g;
        if (tl_group_enter(&g) < 0) return -ENOMEM;
        (void)tl_group_cancel(g);
        rc = tl_yield();
        if (tl_group_wait(g, rc, NULL) == 0 && rc == -ECANCELED)
            F->count[2]++;
    }
    return 0;
}

Test(diag, handled_cancels_in_sequence_are_not_ignored_cancels, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(handled_timeouts_main);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[15], 0);
    cr_expect_eq(F->count[0], 2500);
    cr_expect_eq(F->count[1], 2500);
    cr_expect_eq(F->count[2], 2500);
    TL_EXPECT_NOT_OUT(out, "ignored -ECANCELED");
}

/* A task that keeps calling inside a scope that stays cancelled is still
 * named, even though it also opens and leaves (uncancelled) inner
 * scopes. */
static int ignorer_in_scope_main(void *arg)
{
    (void)arg;
    tl_scope s = tl_timeout_enter(0.0);
    for (int i = 0; i < 1200; i++) {
        tl_scope in = tl_move_on_enter(100.0);
        int rc = tl_sleep(1.0); /* ignored */
        (void)tl_scope_exit(in, rc);
    }
    (void)tl_scope_exit(s, -ECANCELED);
    return 0;
}

Test(diag, ignored_cancels_inside_inner_scopes_are_named, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = child_run(ignorer_in_scope_main);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[15], 0);
    TL_EXPECT_OUT(out, "task 'main' ignored -ECANCELED 1000 times");
}

/* ---- the watchdog (invariant 9) ------------------------------------------ */

/* The child's stderr goes into a private non-blocking pipe that the stuck
 * task itself drains while it spins: seeing the report there proves it was
 * printed while the task was still stuck. The text is passed on to the
 * real stderr when tl_run is over. */
static struct tl_test_errcap wd_err;

/* The stuck task spins until it reads the report (bounded by BUSY_S), so
 * a loaded machine delays the test instead of failing it. */
#define BUSY_S 5.0
#define NAP_S 1.0

static int parse(void *arg)
{
    (void)arg;
    double t0 = tl_test_now_s();
    while (!F->count[0] && tl_test_now_s() - t0 < BUSY_S) {
        if (strstr(tl_test_errcap_read(&wd_err), "without yielding")) {
            F->count[0] = 1;
            F->ms[0] = (tl_test_now_s() - t0) * 1000;
        }
    }
    return 0;
}

static int nap(void *arg)
{
    (void)arg;
    usleep((useconds_t)(NAP_S * 1e6)); /* "time.sleep blocks async" */
    return 0;
}

static int parse_main(void *arg)
{
    tl_task t = spawn_named(arg ? "nap" : "parse", arg ? nap : parse, NULL);
    int st = -1;
    F->rc[0] = tl_join(t, &st);
    F->rc[1] = st;
    return 0;
}

static void watchdog_run(const char *ms, void *arg)
{
    /* Read once per process, at the first tl_run: set it before. */
    setenv("TULIP_BLOCKING_MS", ms, 1);
    if (tl_test_errcap_begin(&wd_err) < 0) return;
    F->rc[15] = tl_run(parse_main, arg);
    tl_test_errcap_end(&wd_err);
}

/* Sanitized builds multiply the threshold by 5: ask for a fifth. */
#define WD_MS (TULIP_TEST_SANITIZED ? "20" : "100")
#define WD_EFFECTIVE_MS 100

static void watchdog_child(void *arg)
{
    (void)arg;
    watchdog_run(WD_MS, NULL);
}

/* The N of the first "has run N ms without yielding", or -1. */
static long reported_ms(const char *who)
{
    char want[64];
    snprintf(want, sizeof want, "task '%s' has run ", who);
    const char *p = strstr(out, want);
    if (!p) return -1;
    return strtol(p + strlen(want), NULL, 10);
}

Test(diag, watchdog_names_a_busy_task_while_it_is_stuck, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(watchdog_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[15], 0);
    cr_expect_eq(F->rc[0], 0);
    TL_EXPECT_OUT(out, "tulip: task 'parse' has run ");
    TL_EXPECT_OUT(out, " ms without yielding (loop #");
    cr_expect_eq(F->count[0], 1,
                 "the stuck task never saw the report while stuck:\n%s", out);
    cr_expect_lt(F->ms[0], BUSY_S * 1000);
    long n = reported_ms("parse");
    cr_expect(n >= WD_EFFECTIVE_MS && n <= F->ms[0] + 1,
              "reported %ld ms: expected the threshold (%d ms) or a bit more, "
              "and no more than the %g ms the task had run when it read the "
              "report:\n%s", n, WD_EFFECTIVE_MS, F->ms[0], out);
}

static void watchdog_nap_child(void *arg)
{
    (void)arg;
    watchdog_run(WD_MS, (void *)1);
}

Test(diag, watchdog_names_a_task_stuck_in_a_blocking_call, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(watchdog_nap_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[15], 0);
    long n = reported_ms("nap");
    cr_expect(n >= WD_EFFECTIVE_MS && n < NAP_S * 1000,
              "reported %ld ms:\n%s", n, out);
}

static void watchdog_off_child(void *arg)
{
    (void)arg;
    watchdog_run("0", NULL);
}

Test(diag, watchdog_disabled_with_zero, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(watchdog_off_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[15], 0);
    cr_expect_eq(F->rc[0], 0);
    TL_EXPECT_NOT_OUT(out, "without yielding");
}

/* ---- Ctrl-C --------------------------------------------------------------- */

/* Sends SIGINT to the process after each of the delays in arg (seconds,
 * zero-terminated). */
static int interrupter(void *arg)
{
    const double *delays = arg;
    for (int i = 0; delays[i] > 0; i++) {
        if (tl_sleep(delays[i]) < 0) return -ECANCELED;
        F->count[4]++;
        kill(getpid(), SIGINT);
    }
    return 0;
}

static const double once[] = {0.1, 0};
static const double twice[] = {0.1, 0.2, 0};

static int ctrlc_main(void *arg)
{
    spawn_named("interrupter", interrupter, arg);
    double t0 = tl_now();
    F->rc[0] = tl_sleep(10.0);
    F->ms[0] = (tl_now() - t0) * 1000;
    return F->rc[0];
}

static void ctrlc_child(void *arg)
{
    (void)arg;
    signal(SIGINT, SIG_DFL);
    F->rc[15] = tl_run(ctrlc_main, (void *)once);
    struct sigaction sa;
    sigaction(SIGINT, NULL, &sa);
    F->rc[1] = !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL;
}

Test(diag, ctrl_c_cancels_the_main_task, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(ctrlc_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->count[4], 1);
    cr_expect_eq(F->rc[0], -ECANCELED);
    cr_expect_eq(F->rc[15], -ECANCELED);
    cr_expect(F->ms[0] >= 90 && F->ms[0] < 5000, "slept %.0f ms", F->ms[0]);
    cr_expect_eq(F->rc[1], 1, "SIGINT is not back to SIG_DFL");
    TL_EXPECT_OUT(out,
                  "tulip: Ctrl-C: cancelling the main task (press again to "
                  "kill)\n");
}

static int ctrlc_stubborn_main(void *arg)
{
    spawn_named("interrupter", interrupter, arg);
    int rc = 0;
    TL_WITH_SHIELD(&rc) { rc = tl_sleep(10.0); } /* ignores the cancel */
    F->rc[0] = 1; /* not reached: the second Ctrl-C kills */
    return rc;
}

static void ctrlc_twice_child(void *arg)
{
    (void)arg;
    signal(SIGINT, SIG_DFL);
    F->rc[15] = tl_run(ctrlc_stubborn_main, (void *)twice);
    F->rc[1] = 1;
}

Test(diag, second_ctrl_c_kills_the_process, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(ctrlc_twice_child, NULL, out, sizeof out);
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT,
              "not killed by SIGINT (status %#x):\n%s", st, out);
    cr_expect_eq(F->count[4], 2);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], 0);
    TL_EXPECT_OUT(out, "tulip: Ctrl-C: cancelling the main task");
}

static volatile sig_atomic_t user_sigints;
static void user_handler(int sig)
{
    (void)sig;
    user_sigints++;
}

static int short_main(void *arg)
{
    spawn_named("interrupter", interrupter, arg);
    F->rc[0] = tl_sleep(0.3);
    return F->rc[0];
}

static void user_handler_child(void *arg)
{
    (void)arg;
    struct sigaction sa, after;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = user_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    F->rc[15] = tl_run(short_main, (void *)once);
    sigaction(SIGINT, NULL, &after);
    F->rc[1] = after.sa_handler == user_handler;
    F->count[0] = user_sigints;
}

Test(diag, ctrl_c_leaves_an_existing_handler_alone, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(user_handler_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->count[4], 1);
    cr_expect_eq(F->count[0], 1, "the user's handler must get the SIGINT");
    cr_expect_eq(F->rc[0], 0, "main must not be cancelled");
    cr_expect_eq(F->rc[15], 0);
    cr_expect_eq(F->rc[1], 1, "the user's handler was replaced");
    TL_EXPECT_NOT_OUT(out, "Ctrl-C");
}

static void ignored_sigint_child(void *arg)
{
    (void)arg;
    signal(SIGINT, SIG_IGN);
    F->rc[15] = tl_run(short_main, (void *)once);
    struct sigaction after;
    sigaction(SIGINT, NULL, &after);
    F->rc[1] = after.sa_handler == SIG_IGN;
}

Test(diag, ctrl_c_leaves_an_ignored_sigint_ignored, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(ignored_sigint_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->count[4], 1);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[15], 0);
    cr_expect_eq(F->rc[1], 1);
    TL_EXPECT_NOT_OUT(out, "Ctrl-C");
}
