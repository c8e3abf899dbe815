/* The task dump (tl_dump, tl_task_count), the dump signal, and the reports
 * built on the dump: the deadlock of the virtual clock and its stall on a
 * thread-pool job.
 *
 * Each case runs in a run_child() child; its output is read back.
 */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>

#include "helpers.h"

static char out[65536];

struct facts {
    int rc[8];
    size_t count[4];
    unsigned long fn_off[2]; /* parked_here's module offset and size hint */
};
static struct facts *F;

static tl_lock lock = TL_LOCK_INITIALIZER;

/* ---- tl_dump ------------------------------------------------------------ */

/* Suspends inside a function of this program, so the backtrace must show
 * a frame in it. Not inlined, and something happens after the sleep so
 * the sleep is not a tail call. */
static volatile int sink;
__attribute__((noinline)) static int parked_here(void)
{
    int rc = tl_sleep(100);
    sink = rc;
    return sink;
}

static int sleeper(void *arg)
{
    (void)arg;
    return parked_here();
}

static int locker(void *arg)
{
    (void)arg;
    int rc = tl_lock_acquire(&lock);
    if (rc == 0) tl_lock_release(&lock);
    return rc;
}

static int joiner(void *arg)
{
    int st;
    return tl_join(*(tl_task *)arg, &st);
}

static int scoped(void *arg)
{
    (void)arg;
    int rc;
    TL_WITH_TIMEOUT(30.0, &rc) { rc = tl_sleep(60); }
    return rc;
}

static int grouped_child(void *arg)
{
    (void)arg;
    return tl_sleep(100);
}

static int grouper(void *arg)
{
    (void)arg;
    tl_group g;
    if (tl_group_enter(&g) < 0) return -1;
    tl_group_spawn_ex(g, &(tl_spawn_opts){.name = "member"}, grouped_child,
                      NULL, NULL);
    return tl_group_wait(g, 0, NULL);
}

static tl_task spawn_named(const char *name, tl_fn fn, void *arg)
{
    tl_task t = {0};
    cr_expect_eq(tl_spawn_ex(&t, &(tl_spawn_opts){.name = name}, fn, arg), 0);
    return t;
}

static int dump_main(void *arg)
{
    (void)arg;
    F->count[0] = tl_task_count();
    cr_expect_eq(tl_lock_acquire(&lock), 0);
    tl_task t[5];
    t[0] = spawn_named("sleeper", sleeper, NULL);
    t[1] = spawn_named("locker", locker, NULL);
    t[2] = spawn_named("joiner", joiner, &t[0]);
    t[3] = spawn_named("scoped", scoped, NULL);
    t[4] = spawn_named("grouper", grouper, NULL);
    TL_IGNORE(tl_sleep(2.5));
    F->count[1] = tl_task_count();
    fflush(stdout);
    F->rc[0] = tl_dump(stdout);
    fflush(stdout);
    F->rc[1] = tl_dump(NULL);
    tl_lock_release(&lock);
    for (int i = 0; i < 5; i++) tl_cancel(t[i]);
    int st;
    for (int i = 1; i < 5; i++) TL_IGNORE(tl_join(t[i], &st));
    /* Where parked_here lies, as the dump prints it: module+offset. */
    Dl_info info;
    struct link_map *map = NULL;
    if (dladdr1((void *)parked_here, &info, (void **)&map, RTLD_DL_LINKMAP) &&
        map)
        F->fn_off[0] = (unsigned long)((uintptr_t)parked_here -
                                       (uintptr_t)map->l_addr);
    return 0;
}

static void dump_child(void *arg)
{
    (void)arg;
    F->rc[7] = run_virtual(dump_main, NULL);
}

/* Does a frame of the block that follows `task` have a module offset
 * (the last "+0x" of a frame line: "in sym+0xN (module+0xOFF)" or
 * "in module+0xOFF") in [lo, lo + 200)? */
static int frame_near(const char *task, unsigned long lo)
{
    const char *p = strstr(out, task);
    if (!p) return 0;
    const char *end = strstr(p + 1, "\ntask ");
    for (const char *q = p; (q = strstr(q, "    #")) && (!end || q < end);
         q++) {
        const char *nl = strchr(q, '\n'), *last = NULL;
        for (const char *x = q; (x = strstr(x, "+0x")) && x < nl; x++)
            last = x;
        if (!last) continue;
        unsigned long off = strtoul(last + 3, NULL, 16);
        if (off >= lo && off < lo + 200) return 1;
    }
    return 0;
}

Test(dump, lists_every_task_with_its_wait_scopes_group_and_backtrace,
     .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(dump_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[7], 0);
    cr_expect_eq(F->count[0], 1, "only main at first");
    cr_expect_eq(F->count[1], 7, "main, five spawned, one group member");
    cr_expect_eq(F->rc[0], 7, "tl_dump returns the task count");
    cr_expect_eq(F->rc[1], -EINVAL);
    TL_EXPECT_OUT(out, "virtual clock at 2.500 s): 7 tasks: 1 running, "
                       "0 ready, 6 waiting, 0 done but not joined");
    TL_EXPECT_OUT(out, "task 'main' (slot 0) running\n");
    TL_EXPECT_OUT(out, "task 'sleeper' (slot 1) waiting\n"
                       "  waits in tl_sleep for 2.500 s, wakes at 100.000 s "
                       "(in 97.500 s)\n");
    TL_EXPECT_OUT(out, "  waits in tl_lock_acquire for 2.500 s: lock ");
    TL_EXPECT_OUT(out, " held by task 'main' (slot 0), acquired at ");
    TL_EXPECT_OUT(out, "  waits in tl_join for 2.500 s: joining task "
                       "'sleeper' (slot 1, waiting)\n");
    TL_EXPECT_OUT(out, "  open scopes, innermost first:\n"
                       "    timeout entered at ");
    TL_EXPECT_OUT(out, "test_dump.c:62, deadline 30.000 s (in 27.500 s)\n");
    TL_EXPECT_OUT(out, "task 'member' (slot 6) waiting\n");
    TL_EXPECT_OUT(out, "  in the task group of task 'grouper' entered at ");
    TL_EXPECT_OUT(out, "task group entered at ");
    TL_EXPECT_OUT(out, ", 1 child\n");
#ifdef TL_CONTEXT_UCONTEXT
    /* The ucontext switch keeps no registers to unwind a suspended task
     * from: only the running task has a backtrace, the six waiting ones
     * say why they have none. */
    cr_expect_eq(tl_test_count_of(out, "backtrace, innermost first:\n"), 1,
                 "%s", out);
    cr_expect_eq(tl_test_count_of(out, "(no backtrace: not available with "
                                       "the ucontext context switch)\n"), 6,
                 "%s", out);
    return;
#endif
    cr_expect_eq(tl_test_count_of(out, "backtrace, innermost first:\n"), 7,
                 "%s", out);
    /* The sleeper's backtrace has a frame in parked_here, printed as an
     * offset addr2line takes. */
    cr_expect(F->fn_off[0] != 0);
    cr_expect(frame_near("task 'sleeper'", F->fn_off[0]),
              "no frame of parked_here (offset %#lx) in:\n%s", F->fn_off[0],
              out);
}

/* ---- outside a loop ----------------------------------------------------- */

static void outside_child(void *arg)
{
    (void)arg;
    printf("rc=%d count=%zu\n", tl_dump(stdout), tl_task_count());
}

Test(dump, outside_a_loop_says_so, .timeout = 10)
{
    int st = tl_test_child(outside_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    char want[64];
    snprintf(want, sizeof want, "rc=%d count=0\n", TL_ENOTASK);
    TL_EXPECT_OUT(out, want);
    TL_EXPECT_OUT(out, "tulip: tl_dump() called on a thread that runs no "
                       "tulip loop");
}

/* ---- the dump signal ---------------------------------------------------- */

static int signalled_sleeper(void *arg)
{
    (void)arg;
    return tl_sleep(100);
}

static int signal_main(void *arg)
{
    int sig = *(int *)arg;
    tl_task t = spawn_named("napper", signalled_sleeper, NULL);
    TL_IGNORE(tl_yield());
    /* The handler only sets a flag; the dump is written by the loop at
     * its next iteration, not here. */
    raise(sig);
    fputs("MARK raised\n", stderr);
    TL_IGNORE(tl_sleep(1));
    tl_cancel(t);
    int st;
    TL_IGNORE(tl_join(t, &st));
    return 0;
}

struct sig_case {
    int cfg;          /* tl_config.dump_signal */
    const char *env;  /* TULIP_DUMP_SIGNAL, or NULL */
    int raise;
};

static void signal_child(void *arg)
{
    struct sig_case *c = arg;
    if (c->env) setenv("TULIP_DUMP_SIGNAL", c->env, 1);
    tl_config cfg = {.virtual_clock = 1, .dump_signal = c->cfg};
    F->rc[0] = tl_run_with(&cfg, signal_main, &c->raise);
    /* tl_run gave the old disposition back. */
    struct sigaction sa;
    sigaction(c->raise, NULL, &sa);
    F->rc[1] = sa.sa_handler == SIG_DFL;
}

Test(dump, signal_from_the_environment_dumps_at_the_next_iteration,
     .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    struct sig_case c = {0, "SIGUSR1", SIGUSR1};
    int st = tl_test_child(signal_child, &c, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], 1, "SIGUSR1 is SIG_DFL again after tl_run");
    char want[64];
    snprintf(want, sizeof want, "tulip: loop #");
    TL_EXPECT_OUT(out, want);
    snprintf(want, sizeof want, ": task dump (signal %d):\n", SIGUSR1);
    TL_EXPECT_OUT(out, want);
    TL_EXPECT_OUT(out, "tulip: task 'napper' (slot 1) waiting\n"
                       "tulip:   waits in tl_sleep");
    cr_expect_gt(strstr(out, "task dump") - out, strstr(out, "MARK raised") - out,
                 "the dump is written by the loop, after the handler "
                 "returned:\n%s", out);
}

Test(dump, signal_from_the_config, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    struct sig_case c = {SIGUSR2, NULL, SIGUSR2};
    int st = tl_test_child(signal_child, &c, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], 0);
    TL_EXPECT_OUT(out, "task 'napper' (slot 1) waiting\n");
}

static void bad_env_child(void *arg)
{
    (void)arg;
    setenv("TULIP_DUMP_SIGNAL", "SIGNOPE", 1);
    tl_config cfg = {.virtual_clock = 1};
    F->rc[0] = tl_run_with(&cfg, signalled_sleeper, NULL);
}

Test(dump, unknown_signal_name_is_reported, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(bad_env_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "tulip: TULIP_DUMP_SIGNAL='SIGNOPE' names no signal");
}

/* ---- deadlock on the virtual clock -------------------------------------- */

static tl_event ev_a, ev_b;

static int wait_a(void *arg)
{
    (void)arg;
    return tl_event_wait(&ev_a);
}

static int deadlock_main(void *arg)
{
    (void)arg;
    tl_event_init(&ev_a);
    tl_event_init(&ev_b);
    tl_task t = spawn_named("waiter", wait_a, NULL);
    /* Nothing will ever set ev_b: the report comes, then ... nothing.
     * The child's alarm ends it; the test reads what was written. */
    int rc = tl_event_wait(&ev_b);
    int st;
    TL_IGNORE(tl_join(t, &st));
    return rc;
}

static void deadlock_child(void *arg)
{
    (void)arg;
    alarm(2);
    F->rc[0] = run_virtual(deadlock_main, NULL);
}

Test(dump, virtual_clock_deadlock_report_lists_what_each_task_waits_on,
     .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(deadlock_child, NULL, out, sizeof out);
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM, "status %#x\n%s",
              st, out);
    TL_EXPECT_OUT(out, ": deadlock: every task is waiting and nothing can "
                       "wake them");
    TL_EXPECT_OUT(out, "tulip: task 'main' (slot 0) waiting\n"
                       "tulip:   waits in tl_event_wait");
    TL_EXPECT_OUT(out, "tulip: task 'waiter' (slot 1) waiting\n"
                       "tulip:   waits in tl_event_wait");
    TL_EXPECT_OUT(out, "cancel one of them or add a deadline");
}

/* ---- a pool job waiting for a virtual timer ----------------------------- */

static atomic_int released;

static int job_waits_for_flag(void *arg)
{
    (void)arg;
    /* Real time: bounded, so the test ends even though the flag only
     * comes after a virtual timer that cannot fire meanwhile. */
    double t0 = tl_test_now_s();
    while (!atomic_load(&released) && tl_test_now_s() - t0 < 1.5)
        usleep(1000);
    return atomic_load(&released) ? 0 : -ETIMEDOUT;
}

static int releaser(void *arg)
{
    (void)arg;
    int rc = tl_sleep(1.0); /* virtual: fires only when nothing is in flight */
    atomic_store(&released, 1);
    return rc;
}

static int stall_main(void *arg)
{
    (void)arg;
    tl_task t = spawn_named("releaser", releaser, NULL);
    int result = 0;
    F->rc[1] = tl_to_thread(job_waits_for_flag, NULL, &result);
    F->rc[2] = result;
    int st;
    TL_IGNORE(tl_join(t, &st));
    return 0;
}

static void stall_child(void *arg)
{
    (void)arg;
    setenv("TULIP_VIRTUAL_STALL_MS", "500", 1);
    F->rc[0] = run_virtual(stall_main, NULL);
}

Test(dump, virtual_clock_stalled_on_a_pool_job_is_reported, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(stall_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->rc[2], -ETIMEDOUT, "the job gave up: the timer could "
                                       "not fire while it ran");
    TL_EXPECT_OUT(out, ": virtual clock stalled for 0.5 s: no task is ready "
                       "and 1 thread-pool job(s) are in flight");
    TL_EXPECT_OUT(out, "tulip: task 'main' (slot 0) waiting\n"
                       "tulip:   waits in tl_to_thread for ");
    TL_EXPECT_OUT(out, ": thread-pool job running on a worker thread");
    TL_EXPECT_OUT(out, "tulip: task 'releaser' (slot 1) waiting\n"
                       "tulip:   waits in tl_sleep for 0.000 s, wakes at "
                       "1.000 s");
    TL_EXPECT_OUT(out, "what you can do:");
    cr_expect_eq(tl_test_count_of(out, "stalled"), 1, "once per stall:\n%s",
                 out);
}

/* ---- the ignored-cancel report names its call site for addr2line -------- */

__attribute__((noinline)) static int ignore_cancels(void)
{
    int n = 0;
    for (int i = 0; i < 1100; i++)
        if (tl_sleep(1.0) == -ECANCELED) n++; /* checks nothing useful */
    sink = n;
    return sink;
}

static int ignorer_task(void *arg)
{
    (void)arg;
    return ignore_cancels();
}

static int ignored_main(void *arg)
{
    (void)arg;
    tl_task t = spawn_named("stubborn", ignorer_task, NULL);
    tl_cancel(t);
    int st;
    TL_IGNORE(tl_join(t, &st));
    Dl_info info;
    struct link_map *map = NULL;
    if (dladdr1((void *)ignore_cancels, &info, (void **)&map,
                RTLD_DL_LINKMAP) && map)
        F->fn_off[0] = (unsigned long)((uintptr_t)ignore_cancels -
                                       (uintptr_t)map->l_addr);
    return 0;
}

static void ignored_child(void *arg)
{
    (void)arg;
    F->rc[7] = run_virtual(ignored_main, NULL);
}

Test(dump, ignored_cancel_report_gives_the_call_site_as_module_offset,
     .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(ignored_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    const char *p = strstr(out, "last from tl_sleep() called at ");
    cr_assert(p != NULL, "%s", out);
    /* "<module>+0x<off>" (or "sym+0xN (<module>+0x<off>)"), module being
     * this program's path, off inside ignore_cancels. */
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = '\0';
    char want[600];
    snprintf(want, sizeof want, "%s+0x", exe);
    const char *m = strstr(p, want);
    cr_assert(m != NULL, "no \"%s\" in:\n%s", want, out);
    unsigned long off = strtoul(m + strlen(want), NULL, 16);
    cr_expect(off >= F->fn_off[0] && off < F->fn_off[0] + 200,
              "offset %#lx is not in ignore_cancels (%#lx):\n%s", off,
              F->fn_off[0], out);
    TL_EXPECT_NOT_OUT(out, "called at 0x");
}

/* ---- main's failure, and a generator's message ------------------------- */

static int failing_main(void *arg)
{
    (void)arg;
    return tl_fail(-EIO, "disk %d is gone", 3);
}

struct main_case {
    int quiet;
};

static void failing_child(void *arg)
{
    struct main_case *c = arg;
    tl_config cfg = {.virtual_clock = 1, .no_main_report = c->quiet};
    F->rc[0] = tl_run_with(&cfg, failing_main, NULL);
}

Test(dump, main_failure_is_printed_with_its_message, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    struct main_case c = {0};
    int st = tl_test_child(failing_child, &c, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], -EIO);
    TL_EXPECT_OUT(out, "tulip: main failed with -EIO (Input/output error): "
                       "disk 3 is gone\n");
}

Test(dump, main_failure_report_can_be_silenced, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    struct main_case c = {1};
    int st = tl_test_child(failing_child, &c, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], -EIO);
    TL_EXPECT_NOT_OUT(out, "main failed");
}

static int failing_producer(tl_gen *g, void *arg)
{
    (void)arg;
    int rc = tl_gen_yield(g, "one");
    if (rc < 0) return rc;
    return tl_fail(-EPROTO, "line %d: bad header", 2);
}

static int consumer(void *arg)
{
    (void)arg;
    tl_gen *g;
    if (tl_gen_new(&g, failing_producer, NULL, NULL) < 0) return -1;
    void *v;
    F->rc[1] = tl_gen_next(g, &v);
    int rc = tl_gen_next(g, &v);
    F->rc[2] = rc;
    const char *m = tl_fail_message(rc);
    snprintf((char *)&F->count[0], 24, "%s", m ? m : "(none)");
    TL_IGNORE(tl_gen_close(g));
    return rc; /* the message travels on with the code */
}

static int gen_main(void *arg)
{
    (void)arg;
    tl_task t = spawn_named("consumer", consumer, NULL);
    int st;
    tl_error err;
    F->rc[3] = tl_join_ex(t, &st, &err);
    F->rc[4] = st;
    printf("joined: %s\n", err.message);
    return 0;
}

static void gen_child(void *arg)
{
    (void)arg;
    F->rc[0] = run_virtual(gen_main, NULL);
}

Test(dump, generator_failure_message_reaches_the_consumer, .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(gen_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->rc[2], -EPROTO);
    cr_expect_str_eq((char *)&F->count[0], "line 2: bad header");
    cr_expect_eq(F->rc[3], 0);
    cr_expect_eq(F->rc[4], -EPROTO);
    TL_EXPECT_OUT(out, "joined: line 2: bad header\n");
}

/* ---- another thread: the task API and the primitives say tl_loop_call --- */

static tl_event xev;
static tl_sem xsem;

static void *other_thread(void *arg)
{
    (void)arg;
    F->rc[1] = tl_event_set(&xev);   /* nobody waits: still refused */
    F->rc[2] = tl_sem_release(&xsem);
    F->rc[3] = tl_sleep(0.1);        /* the task API */
    return NULL;
}

static int thread_main(void *arg)
{
    (void)arg;
    tl_event_init(&xev);
    tl_sem_init(&xsem, 0);
    pthread_t th;
    if (pthread_create(&th, NULL, other_thread, NULL) != 0) return -1;
    pthread_join(th, NULL); /* blocks the loop briefly; nothing else runs */
    F->rc[4] = tl_event_is_set(&xev);
    F->rc[5] = tl_sem_value(&xsem);
    return 0;
}

static void thread_child(void *arg)
{
    (void)arg;
    F->rc[0] = run_virtual(thread_main, NULL);
}

Test(dump, other_threads_are_refused_and_told_about_tl_loop_call,
     .timeout = 10)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(thread_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], -EXDEV);
    cr_expect_eq(F->rc[2], -EXDEV);
    cr_expect_eq(F->rc[3], TL_ENOTASK);
    cr_expect_eq(F->rc[4], 0, "the refused set changed nothing");
    cr_expect_eq(F->rc[5], 0, "the refused release changed nothing");
    TL_EXPECT_OUT(out, "tulip: tl_event_set: used from a thread that runs "
                       "no tulip loop, but a primitive belongs to one loop "
                       "(a loop, whose tasks use it): from another thread, "
                       "hand the work to that loop with tl_loop_call\n");
    TL_EXPECT_OUT(out, "tulip: tl_sem_release: used from a thread that runs "
                       "no tulip loop");
    TL_EXPECT_OUT(out, "tulip: tl_sleep() called outside a tulip task, from "
                       "a thread that runs no tulip loop: from another "
                       "thread, hand the work to a loop with tl_loop_call");
    TL_EXPECT_NOT_OUT(out, "await outside");
}
