/* Subprocesses (tulip/process.h): an echo round trip through cat's stdin
 * and stdout, 10 MiB each way through communicate, exit codes and
 * signals, a deadline that kills the child (tl_process_run) or leaves it
 * running (tl_process_wait), a cancelled wait, close that kills and
 * reaps, a missing program, stderr apart and merged, /dev/null and fds of
 * the caller's, environment and working directory, fds not inherited, a
 * blocked signal mask not inherited, a child that blocks and ignores
 * nothing of what the loop's thread blocks (a tl_signals watcher, SIGPIPE)
 * or the program ignores, a writer whose reader left dying of SIGPIPE
 * (yes | head), 50 children at once (16 under the sanitizers), and EMFILE at each fd the spawn
 * needs. After each: no child left (not even a zombie)
 * and no fd leaked. Runs on each backend (CTest: name@epoll,
 * name@io_uring). Timed cases use the virtual clock: a deadline fires as
 * soon as every task waits, so no test sleeps and hopes.
 */
#include "helpers.h"

#include <pthread.h>
#include <sys/resource.h>

/* No child of this process exists, running or zombie. */
static int no_children(void)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
           errno == ECHILD;
}

/* Run main_fn in a loop; before and after: fds counted, children none. */
static void run_clean(tl_fn fn, void *arg, int virtual_clock)
{
    int before = tl_test_count_fds();
    cr_assert(no_children());
    int rc = virtual_clock ? run_virtual(fn, arg) : tl_run(fn, arg);
    cr_assert_eq(rc, 0, "main returned %d (%s)", rc, tl_strerror(rc));
    cr_expect_eq(tl_test_count_fds(), before, "fds leaked");
    cr_expect(no_children(), "a child (or zombie) is left");
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* A child that runs until it is stopped (sleep 1000), its stdout as
 * stdout_mode says (enum tl_process_stdio); the spawn must succeed. */
static tl_process *spawn_sleeper(int stdout_mode)
{
    tl_process *p = NULL;
    int rc = tl_process_spawn(&p, &(tl_process_opts){
                                      .argv = ARGV("sleep", "1000"),
                                      .stdout_mode = stdout_mode});
    cr_expect_eq(rc, 0, "spawn sleep 1000: %d (%s)", rc, tl_strerror(rc));
    return p;
}

/* ---- echo round trip through cat --------------------------------------- */

static int echo_main(void *arg)
{
    (void)arg;
    tl_process *p;
    int rc = tl_process_spawn(&p, &(tl_process_opts){
                                      .argv = ARGV("cat"),
                                      .stdin_mode = TL_PROCESS_PIPE,
                                      .stdout_mode = TL_PROCESS_PIPE});
    cr_expect_eq(rc, 0, "%s", tl_strerror(rc));
    if (rc < 0) return rc;
    cr_expect_gt(tl_process_pid(p), 0);
    cr_expect_null(tl_process_stderr(p));
    tl_stream *in = tl_process_stdin(p), *out = tl_process_stdout(p);
    char line[64];
    for (int i = 0; i < 3; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "hello %d\n", i);
        cr_expect_eq(tl_stream_write(in, msg, (size_t)n), 0);
        cr_expect_eq(tl_stream_drain(in), 0);
        ssize_t got = tl_stream_readline(out, line, sizeof line);
        cr_expect_eq(got, n);
        cr_expect_str_eq(line, msg);
    }
    cr_expect_eq(tl_stream_write_eof(in), 0); /* cat reads EOF, exits */
    cr_expect_eq(tl_stream_read(out, line, sizeof line), 0);
    cr_expect_eq(tl_process_wait(p), 0);
    cr_expect_eq(tl_process_wait(p), 0, "the status stays");
    cr_expect_eq(tl_process_poll(p), 0);
    cr_expect_eq(tl_process_kill(p), -ESRCH, "reaped: nothing to signal");
    cr_expect_eq(tl_process_close(p), 0);
    return 0;
}

Test(process_spawn, echo_round_trip_through_cat, .timeout = 60)
{
    run_clean(echo_main, NULL, 0);
}

/* ---- 10 MiB each way ----------------------------------------------------- */

#define BIG (10u * 1024 * 1024)

static int big_main(void *arg)
{
    (void)arg;
    char *in = malloc(BIG);
    cr_assert(in);
    for (size_t i = 0; i < BIG; i++) in[i] = (char)(i * 7 + i / 4096);
    tl_process *p;
    int rc = tl_process_spawn(&p, &(tl_process_opts){
                                      .argv = ARGV("cat"),
                                      .stdin_mode = TL_PROCESS_PIPE,
                                      .stdout_mode = TL_PROCESS_PIPE});
    cr_expect_eq(rc, 0);
    if (rc < 0) return rc;
    tl_process_result res;
    rc = tl_process_communicate(p, in, BIG, &res);
    cr_expect_eq(rc, 0, "%s", tl_strerror(rc));
    cr_expect_eq(res.status, 0);
    cr_expect_eq(res.out_len, BIG);
    cr_expect(res.out && memcmp(res.out, in, BIG) == 0, "the bytes differ");
    cr_expect_null(res.err);
    tl_process_result_free(&res);
    cr_expect_null(res.out);
    cr_expect_eq(tl_process_close(p), 0);

    /* Both directions at once through the shell: 10 MiB in to cat, whose
     * output goes to stdout, and 10 MiB more to stderr before it reads a
     * byte (a child that writes first would deadlock a sequential
     * write-then-read). */
    tl_process_result r2;
    rc = tl_process_run(&(tl_process_opts){
                            .argv = ARGV("sh", "-c",
                                         "head -c 10485760 /dev/zero >&2; cat"),
                            .stdout_mode = TL_PROCESS_PIPE,
                            .stderr_mode = TL_PROCESS_PIPE},
                        in, BIG, &r2);
    cr_expect_eq(rc, 0, "%s", tl_strerror(rc));
    cr_expect_eq(r2.out_len, BIG);
    cr_expect(r2.out && memcmp(r2.out, in, BIG) == 0);
    cr_expect_eq(r2.err_len, BIG);
    tl_process_result_free(&r2);
    free(in);
    return 0;
}

Test(process_spawn, ten_mib_each_way_through_communicate, .timeout = 60)
{
    run_clean(big_main, NULL, 0);
}

/* ---- exit codes and signals ---------------------------------------------- */

static int run_sh(const char *script)
{
    return tl_process_run(&(tl_process_opts){.argv = ARGV("sh", "-c", script)},
                          NULL, 0, NULL);
}

static int codes_main(void *arg)
{
    (void)arg;
    cr_expect_eq(run_sh("exit 0"), 0);
    int st = run_sh("exit 3");
    cr_expect_eq(st, 3);
    cr_expect_eq(TL_PROCESS_EXITCODE(st), 3);
    cr_expect_eq(TL_PROCESS_TERMSIG(st), 0);
    cr_expect_eq(run_sh("exit 255"), 255);
    st = run_sh("kill -TERM $$");
    cr_expect_eq(st, TL_PROCESS_SIGNALED_BASE + SIGTERM);
    cr_expect_eq(TL_PROCESS_TERMSIG(st), SIGTERM);
    cr_expect_eq(TL_PROCESS_EXITCODE(st), -1);

    tl_process *p;
    p = spawn_sleeper(TL_PROCESS_INHERIT);
    cr_expect_eq(tl_process_poll(p), -EAGAIN);
    cr_expect_eq(tl_process_signal(p, 0), 0, "signal 0: it exists");
    cr_expect_eq(tl_process_signal(p, -1), -EINVAL);
    cr_expect_eq(tl_process_terminate(p), 0);
    cr_expect_eq(tl_process_wait(p), TL_PROCESS_SIGNALED_BASE + SIGTERM);
    cr_expect_eq(tl_process_close(p), TL_PROCESS_SIGNALED_BASE + SIGTERM);

    p = spawn_sleeper(TL_PROCESS_INHERIT);
    cr_expect_eq(tl_process_kill(p), 0);
    cr_expect_eq(tl_process_wait(p), TL_PROCESS_SIGNALED_BASE + SIGKILL);
    cr_expect_eq(tl_process_close(p), TL_PROCESS_SIGNALED_BASE + SIGKILL);
    return 0;
}

Test(process_spawn, exit_codes_and_signals, .timeout = 60)
{
    run_clean(codes_main, NULL, 0);
}

/* ---- deadlines ----------------------------------------------------------- */

static int timeout_main(void *arg)
{
    (void)arg;
    /* tl_process_run under a deadline: the child is killed and reaped. */
    double t0 = tl_now();
    int rc;
    TL_WITH_TIMEOUT(5.0, &rc) {
        rc = tl_process_run(&(tl_process_opts){.argv = ARGV("sleep", "1000")},
                            NULL, 0, NULL);
    }
    cr_expect_eq(rc, -ETIMEDOUT, "%s", tl_strerror(rc));
    cr_expect(tl_now() - t0 >= 5.0);
    cr_expect(no_children(), "tl_process_run left its child");

    /* The same for a child that is busy writing into communicate. */
    tl_process_result res;
    TL_WITH_TIMEOUT(5.0, &rc) {
        rc = tl_process_run(&(tl_process_opts){.argv = ARGV("sleep", "1000"),
                                               .stdout_mode = TL_PROCESS_PIPE},
                            "x", 1, &res);
    }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_null(res.out);
    cr_expect(no_children());

    /* tl_process_wait under a deadline: asyncio's behaviour, the child
     * keeps running; tl_process_close then kills it. */
    tl_process *p;
    p = spawn_sleeper(TL_PROCESS_INHERIT);
    TL_WITH_TIMEOUT(1.0, &rc) { rc = tl_process_wait(p); }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_process_poll(p), -EAGAIN, "the child still runs");
    cr_expect_eq(tl_process_close(p), TL_PROCESS_SIGNALED_BASE + SIGKILL);
    return 0;
}

Test(process_spawn, a_deadline_kills_the_child_of_run_not_of_wait,
     .timeout = 60)
{
    run_clean(timeout_main, NULL, 1);
}

/* ---- cancel during wait, several waiters --------------------------------- */

struct waiter {
    tl_process *p;
    int rc;
};

static int wait_task(void *arg)
{
    struct waiter *w = arg;
    w->rc = tl_process_wait(w->p);
    return 0;
}

static int cancel_main(void *arg)
{
    (void)arg;
    tl_process *p;
    p = spawn_sleeper(TL_PROCESS_INHERIT);
    struct waiter w[3] = {{p, 1}, {p, 1}, {p, 1}};
    tl_task t[3];
    for (int i = 0; i < 3; i++) t[i] = tl_test_spawn(wait_task, &w[i]);
    tl_test_settle();
    /* Cancel the first (the one parked on the pidfd): the pidfd passes
     * to the next waiter, nothing is lost. */
    cr_expect_eq(tl_cancel(t[0]), 0);
    cr_expect_eq(tl_test_join(t[0]), 0);
    cr_expect_eq(w[0].rc, -ECANCELED);
    cr_expect_eq(tl_process_poll(p), -EAGAIN, "a cancelled wait kills nothing");
    tl_test_settle();
    cr_expect_eq(w[1].rc, 1, "still waiting");
    cr_expect_eq(tl_process_kill(p), 0);
    cr_expect_eq(tl_test_join(t[1]), 0);
    cr_expect_eq(tl_test_join(t[2]), 0);
    cr_expect_eq(w[1].rc, TL_PROCESS_SIGNALED_BASE + SIGKILL);
    cr_expect_eq(w[2].rc, TL_PROCESS_SIGNALED_BASE + SIGKILL);
    cr_expect_eq(tl_process_close(p), TL_PROCESS_SIGNALED_BASE + SIGKILL);
    return 0;
}

Test(process_spawn, a_cancelled_wait_leaves_the_child_to_the_others,
     .timeout = 60)
{
    run_clean(cancel_main, NULL, 0);
}

/* ---- close ------------------------------------------------------------- */

struct closer {
    tl_process *p;
    int rc;
};

static int close_task(void *arg)
{
    struct closer *c = arg;
    /* Cancelled before it closes: the close still kills and reaps. */
    int rc = tl_sleep(1000.0);
    cr_expect_eq(rc, -ECANCELED);
    c->rc = tl_process_close(c->p);
    return rc;
}

static int reader_task(void *arg)
{
    struct closer *c = arg;
    char buf[16];
    c->rc = (int)tl_stream_read(tl_process_stdout(c->p), buf, sizeof buf);
    return 0;
}

static int close_main(void *arg)
{
    (void)arg;
    /* A close in a cancelled task. */
    struct closer c = {0};
    c.p = spawn_sleeper(TL_PROCESS_PIPE);
    tl_task t = tl_test_spawn(close_task, &c);
    tl_test_settle();
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_test_join(t), -ECANCELED);
    cr_expect_eq(c.rc, TL_PROCESS_SIGNALED_BASE + SIGKILL);
    cr_expect(no_children());

    /* A close while another task reads the child's stdout and a third
     * waits: they return, then the process is freed. */
    struct closer r = {0};
    r.p = spawn_sleeper(TL_PROCESS_PIPE);
    struct waiter w = {r.p, 1};
    tl_task rt = tl_test_spawn(reader_task, &r);
    tl_task wt = tl_test_spawn(wait_task, &w);
    tl_test_settle();
    cr_expect_eq(tl_process_close(r.p), TL_PROCESS_SIGNALED_BASE + SIGKILL);
    cr_expect_eq(tl_test_join(rt), 0);
    cr_expect_eq(tl_test_join(wt), 0);
    cr_expect_eq(r.rc, TL_ECLOSED);
    cr_expect_eq(w.rc, TL_PROCESS_SIGNALED_BASE + SIGKILL);
    return 0;
}

Test(process_spawn, close_kills_and_reaps_even_when_cancelled, .timeout = 60)
{
    run_clean(close_main, NULL, 0);
}

/* ---- spawn errors ---------------------------------------------------------- */

static int missing_main(void *arg)
{
    (void)arg;
    tl_process *p = (tl_process *)1;
    int rc = tl_process_spawn(&p, &(tl_process_opts){
                                      .argv = ARGV("no-such-program-tulip"),
                                      .stdin_mode = TL_PROCESS_PIPE,
                                      .stdout_mode = TL_PROCESS_PIPE,
                                      .stderr_mode = TL_PROCESS_PIPE});
    cr_expect_eq(rc, -ENOENT, "%s", tl_strerror(rc));
    cr_expect_null(p);
    const char *m = tl_fail_message(rc);
    cr_expect(m && strstr(m, "spawn no-such-program-tulip: "),
              "the message names the program: %s", m ? m : "(none)");
    cr_expect_eq(tl_process_run(&(tl_process_opts){
                                    .argv = ARGV("/no/such/dir/prog")},
                                NULL, 0, NULL),
                 -ENOENT);
    cr_expect_eq(tl_process_run(&(tl_process_opts){
                                    .argv = ARGV("true"),
                                    .cwd = "/no/such/dir"},
                                NULL, 0, NULL),
                 -ENOENT);
    m = tl_fail_message(-ENOENT);
    cr_expect(m && strstr(m, "spawn true (in /no/such/dir): "),
              "the message names the directory: %s", m ? m : "(none)");
    cr_expect_eq(tl_process_run(&(tl_process_opts){.argv = ARGV("/dev/null")},
                                NULL, 0, NULL),
                 -EACCES);
    cr_expect_eq(tl_process_spawn(&p, NULL), -EINVAL);
    cr_expect_eq(tl_process_spawn(&p, &(tl_process_opts){0}), -EINVAL);
    cr_expect_eq(tl_process_spawn(&p, &(tl_process_opts){
                                          .argv = ARGV("true"),
                                          .stdout_mode = TL_PROCESS_STDOUT}),
                 -EINVAL);
    cr_expect_eq(tl_process_spawn(&p, &(tl_process_opts){
                                          .argv = ARGV("true"),
                                          .stdin_mode = TL_PROCESS_FD,
                                          .stdin_fd = -1}),
                 -EINVAL);
    cr_expect_eq(tl_process_spawn(&p, &(tl_process_opts){.argv = ARGV("true"),
                                                          .flags = 0x80}),
                 -EINVAL);
    /* Input for a stdin that is not a pipe. */
    cr_expect_eq(tl_process_spawn(&p, &(tl_process_opts){.argv = ARGV("true")}),
                 0);
    tl_process_result res;
    cr_expect_eq(tl_process_communicate(p, "x", 1, &res), -EINVAL);
    cr_expect_eq(tl_process_wait(p), 0);
    cr_expect_eq(tl_process_close(p), 0);
    return 0;
}

Test(process_spawn, a_missing_program_is_enoent_and_leaks_nothing,
     .timeout = 60)
{
    run_clean(missing_main, NULL, 0);
    tl_process *p = (tl_process *)1;
    cr_expect_eq(tl_process_spawn(&p, &(tl_process_opts){.argv = ARGV("true")}),
                 TL_ENOTASK, "outside a task");
    cr_expect_null(p);
}

/* ---- stderr apart and merged; /dev/null; a caller's fd -------------------- */

static int stdio_main(void *arg)
{
    (void)arg;
    const char *const *both = ARGV("sh", "-c", "echo out; echo err >&2");
    tl_process_result res;
    int rc = tl_process_run(&(tl_process_opts){.argv = both,
                                               .stdout_mode = TL_PROCESS_PIPE,
                                               .stderr_mode = TL_PROCESS_PIPE},
                            NULL, 0, &res);
    cr_expect_eq(rc, 0);
    cr_expect_str_eq(res.out, "out\n");
    cr_expect_str_eq(res.err, "err\n");
    tl_process_result_free(&res);

    rc = tl_process_run(&(tl_process_opts){.argv = both,
                                           .stdout_mode = TL_PROCESS_PIPE,
                                           .stderr_mode = TL_PROCESS_STDOUT},
                        NULL, 0, &res);
    cr_expect_eq(rc, 0);
    cr_expect_str_eq(res.out, "out\nerr\n");
    cr_expect_null(res.err);
    tl_process_result_free(&res);

    rc = tl_process_run(&(tl_process_opts){.argv = both,
                                           .stdout_mode = TL_PROCESS_PIPE,
                                           .stderr_mode = TL_PROCESS_DEVNULL},
                        NULL, 0, &res);
    cr_expect_str_eq(res.out, "out\n");
    tl_process_result_free(&res);

    /* stdin /dev/null: cat ends at once. */
    rc = tl_process_run(&(tl_process_opts){.argv = ARGV("cat"),
                                           .stdin_mode = TL_PROCESS_DEVNULL,
                                           .stdout_mode = TL_PROCESS_PIPE},
                        NULL, 0, &res);
    cr_expect_eq(rc, 0);
    cr_expect_eq(res.out_len, 0);
    cr_expect_str_eq(res.out, "");
    tl_process_result_free(&res);

    /* seq 1 5 | sort -r through a pipe of the caller's (TL_PROCESS_FD). */
    int pp[2];
    cr_expect_eq(pipe2(pp, O_CLOEXEC), 0);
    tl_process *seq;
    cr_expect_eq(tl_process_spawn(&seq, &(tl_process_opts){
                                            .argv = ARGV("seq", "1", "5"),
                                            .stdout_mode = TL_PROCESS_FD,
                                            .stdout_fd = pp[1]}),
                 0);
    close(pp[1]);
    rc = tl_process_run(&(tl_process_opts){.argv = ARGV("sort", "-rn"),
                                           .stdin_mode = TL_PROCESS_FD,
                                           .stdin_fd = pp[0],
                                           .stdout_mode = TL_PROCESS_PIPE},
                        NULL, 0, &res);
    close(pp[0]);
    cr_expect_eq(rc, 0);
    cr_expect_str_eq(res.out, "5\n4\n3\n2\n1\n");
    tl_process_result_free(&res);
    cr_expect_eq(tl_process_wait(seq), 0);
    cr_expect_eq(tl_process_close(seq), 0);
    return 0;
}

Test(process_spawn, stderr_apart_merged_or_devnull_and_callers_fds,
     .timeout = 60)
{
    run_clean(stdio_main, NULL, 0);
}

/* ---- environment, cwd, fds and the signal mask --------------------------- */

static int env_main(void *arg)
{
    (void)arg;
    tl_process_result res;
    int rc = tl_process_run(
        &(tl_process_opts){
            .argv = ARGV("sh", "-c", "echo \"$FOO\"; pwd"),
            .envp = ARGV("FOO=bar baz", "PATH=/usr/bin:/bin"),
            .cwd = "/",
            .stdout_mode = TL_PROCESS_PIPE},
        NULL, 0, &res);
    cr_expect_eq(rc, 0);
    cr_expect_str_eq(res.out, "bar baz\n/\n");
    tl_process_result_free(&res);

    /* An fd the program opened without O_CLOEXEC is not inherited, unless
     * TL_PROCESS_KEEP_FDS. */
    int fd = dup2(2, 100);
    cr_expect_eq(fd, 100);
    const char *const *probe =
        ARGV("sh", "-c", "if [ -e /proc/self/fd/100 ]; then echo open; "
                         "else echo closed; fi");
    rc = tl_process_run(&(tl_process_opts){.argv = probe,
                                           .stdout_mode = TL_PROCESS_PIPE},
                        NULL, 0, &res);
    cr_expect_str_eq(res.out, "closed\n");
    tl_process_result_free(&res);
    rc = tl_process_run(&(tl_process_opts){.argv = probe,
                                           .stdout_mode = TL_PROCESS_PIPE,
                                           .flags = TL_PROCESS_KEEP_FDS},
                        NULL, 0, &res);
    cr_expect_str_eq(res.out, "open\n");
    tl_process_result_free(&res);
    close(fd);

    /* The loop's thread blocks SIGTERM (as tl_signals_open would): the
     * child still dies of it. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    tl_process *p;
    p = spawn_sleeper(TL_PROCESS_INHERIT);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    cr_expect_eq(tl_process_terminate(p), 0);
    TL_WITH_TIMEOUT(10.0, &rc) { rc = tl_process_wait(p); }
    cr_expect_eq(rc, TL_PROCESS_SIGNALED_BASE + SIGTERM, "%d", rc);
    cr_expect_geq(tl_process_close(p), 0);

    /* A new session. */
    rc = tl_process_run(&(tl_process_opts){
                            .argv = ARGV("sh", "-c",
                                         "[ $(ps -o sid= -p $$) -eq $$ ]"),
                            .flags = TL_PROCESS_NEW_SESSION},
                        NULL, 0, NULL);
    cr_expect(rc == 0 || rc == 127, "rc %d", rc); /* 127: no ps */
    return 0;
}

Test(process_spawn, environment_cwd_fds_and_signal_mask, .timeout = 60)
{
    run_clean(env_main, NULL, 0);
}

/* ---- the child's signal state -------------------------------------------- */

/* The SigBlk and SigIgn masks of a child, read by grep from its own
 * /proc/self/status. 0, or the error. */
static int child_sig_state(unsigned long long *blk, unsigned long long *ign)
{
    tl_process_result res;
    int rc = tl_process_run(
        &(tl_process_opts){.argv = ARGV("grep", "-E", "^Sig(Blk|Ign):",
                                        "/proc/self/status"),
                           .stdout_mode = TL_PROCESS_PIPE},
        NULL, 0, &res);
    if (rc != 0) return rc < 0 ? rc : -EPROTO;
    const char *b = strstr(res.out, "SigBlk:"), *i = strstr(res.out, "SigIgn:");
    int ok = b && i && sscanf(b, "SigBlk: %llx", blk) == 1 &&
             sscanf(i, "SigIgn: %llx", ign) == 1;
    tl_process_result_free(&res);
    return ok ? 0 : -EPROTO;
}

#define SIGBIT(sig) (1ull << ((sig) - 1))

static int sigstate_main(void *arg)
{
    (void)arg;
    /* What a program serving signals has: SIGPIPE blocked by the loop,
     * SIGTERM and SIGINT blocked by a tl_signals watcher, SIGPIPE
     * ignored by the program itself. */
    tl_signals *w;
    sigset_t set, now;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    cr_assert_eq(tl_signals_open(&w, &set), 0);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    cr_assert_eq(sigaction(SIGPIPE, &ign, &old), 0);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, NULL, &now), 0);
    cr_expect(sigismember(&now, SIGTERM) && sigismember(&now, SIGINT) &&
                  sigismember(&now, SIGPIPE),
              "the loop's thread should block SIGTERM, SIGINT and SIGPIPE");

    unsigned long long blk = ~0ull, ig = ~0ull;
    int rc = child_sig_state(&blk, &ig);
    cr_expect_eq(rc, 0, "%s", tl_strerror(rc));
    cr_expect_eq(blk, 0ull, "the child blocks %016llx", blk);
    cr_expect_eq(ig & SIGBIT(SIGPIPE), 0ull, "the child ignores SIGPIPE");

    /* So SIGTERM and SIGINT end it, the watcher open or not. */
    for (int k = 0; k < 2; k++) {
        int sig = k ? SIGINT : SIGTERM;
        tl_process *p;
        p = spawn_sleeper(TL_PROCESS_INHERIT);
        cr_expect_eq(tl_process_signal(p, sig), 0);
        TL_WITH_TIMEOUT(10.0, &rc) { rc = tl_process_wait(p); }
        cr_expect_eq(rc, TL_PROCESS_SIGNALED_BASE + sig, "signal %d: %d", sig,
                     rc);
        (void)tl_process_close(p);
    }
    cr_expect_eq(sigaction(SIGPIPE, &old, NULL), 0);
    cr_expect_eq(tl_signals_close(w), 0);
    return 0;
}

Test(process_spawn, the_child_blocks_and_ignores_nothing_of_the_loops,
     .timeout = 60)
{
    run_clean(sigstate_main, NULL, 0);
}

/* yes | head -n 1: head exits after one line, and yes, the writer of a
 * pipe with no reader left, dies of SIGPIPE as in a shell — not of
 * "write error: Broken pipe" with SIGPIPE blocked as in the loop's
 * thread. */
static int sigpipe_main(void *arg)
{
    (void)arg;
    int pp[2];
    cr_assert_eq(pipe2(pp, O_CLOEXEC), 0);
    tl_process *yes, *head;
    cr_assert_eq(tl_process_spawn(&yes, &(tl_process_opts){
                                            .argv = ARGV("yes"),
                                            .stdout_mode = TL_PROCESS_FD,
                                            .stdout_fd = pp[1],
                                            .stderr_mode = TL_PROCESS_DEVNULL}),
                 0);
    close(pp[1]);
    cr_assert_eq(tl_process_spawn(&head, &(tl_process_opts){
                                             .argv = ARGV("head", "-n", "1"),
                                             .stdin_mode = TL_PROCESS_FD,
                                             .stdin_fd = pp[0],
                                             .stdout_mode = TL_PROCESS_PIPE}),
                 0);
    close(pp[0]); /* head holds the only read end */
    tl_process_result res;
    int rc;
    TL_WITH_TIMEOUT(30.0, &rc) { rc = tl_process_communicate(head, NULL, 0, &res); }
    cr_expect_eq(rc, 0, "head: %d", rc);
    cr_expect_str_eq(res.out ? res.out : "(null)", "y\n");
    tl_process_result_free(&res);
    TL_WITH_TIMEOUT(30.0, &rc) { rc = tl_process_wait(yes); }
    cr_expect_eq(rc, TL_PROCESS_SIGNALED_BASE + SIGPIPE,
                 "yes ended with %d, not SIGPIPE (%d)", rc,
                 TL_PROCESS_SIGNALED_BASE + SIGPIPE);
    (void)tl_process_close(head);
    (void)tl_process_close(yes);

    /* The same in a shell the child runs: its own children inherit the
     * clean state (141 = 128 + SIGPIPE). */
    rc = tl_process_run(&(tl_process_opts){
                            .argv = ARGV("sh", "-c",
                                         "{ yes 2>/dev/null; echo \"yes $?\" >&2; } "
                                         "| head -n 1 >/dev/null"),
                            .stderr_mode = TL_PROCESS_PIPE},
                        NULL, 0, &res);
    cr_expect_eq(rc, 0, "sh: %d", rc);
    cr_expect_str_eq(res.err ? res.err : "(null)", "yes 141\n");
    tl_process_result_free(&res);
    return 0;
}

Test(process_spawn, a_writer_whose_reader_left_dies_of_sigpipe,
     .timeout = 60)
{
    run_clean(sigpipe_main, NULL, 0);
}

/* ---- many children at once ----------------------------------------------- */

/* 50 children; 16 under the sanitizers, whose spawns cost ~10x. */
#define MANY (TULIP_TEST_SANITIZED ? 16 : 50)

struct child {
    int i;
    int ok;
};

static int one_child(void *arg)
{
    struct child *c = arg;
    char in[32], want[64];
    int n = snprintf(in, sizeof in, "child %d\n", c->i);
    snprintf(want, sizeof want, "%s%s", in, in);
    tl_process_result res;
    /* The child echoes its line twice: input and output both cross. */
    int rc = tl_process_run(&(tl_process_opts){
                                .argv = ARGV("sh", "-c", "read l; echo \"$l\"; "
                                                         "echo \"$l\""),
                                .stdout_mode = TL_PROCESS_PIPE},
                            in, (size_t)n, &res);
    c->ok = rc == 0 && res.out && strcmp(res.out, want) == 0;
    tl_process_result_free(&res);
    return rc;
}

static int many_main(void *arg)
{
    (void)arg;
    static struct child c[MANY];
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    for (int i = 0; i < MANY; i++) {
        c[i].i = i;
        cr_expect_eq(tl_group_spawn(g, one_child, &c[i]), 0);
    }
    int rc = tl_group_wait(g, 0, NULL);
    cr_expect_eq(rc, 0, "%s", tl_strerror(rc));
    for (int i = 0; i < MANY; i++) cr_expect(c[i].ok, "child %d", i);
    return 0;
}

Test(process_spawn, many_children_at_once, .timeout = 60)
{
    run_clean(many_main, NULL, 0);
}

/* ---- EMFILE at each fd the spawn needs -------------------------------------- */

static int emfile_main(void *arg)
{
    (void)arg;
    /* Fill the fd table, then free k slots. Three pipes take six fds at
     * once (the child's ends are closed before the pidfd is made), so
     * k = 0..5 fail at each pipe in turn and k = 6 succeeds. */
    int fill[256], nfill = 0;
    struct rlimit old, lim;
    getrlimit(RLIMIT_NOFILE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)tl_test_count_fds() + 64;
    cr_expect_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
    int fd;
    while (nfill < 256 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        fill[nfill++] = fd;
    cr_expect_eq(errno, EMFILE);
    /* No slot at all: the child is spawned, then pidfd_open fails; the
     * child must be killed and reaped, not left behind. */
    tl_process *p = (tl_process *)1;
    int rc = tl_process_spawn(&p, &(tl_process_opts){.argv = ARGV("sleep",
                                                                  "1000")});
    cr_expect_eq(rc, -EMFILE, "no slot for the pidfd: %d (%s)", rc,
                 tl_strerror(rc));
    cr_expect_null(p);
    cr_expect(no_children(), "the child of a failed spawn is left");
    int freed = 0;
    for (int k = 1; k <= 6; k++) {
        while (freed < k) close(fill[--nfill]), freed++;
        int before = tl_test_count_fds();
        p = (tl_process *)1;
        rc = tl_process_spawn(&p, &(tl_process_opts){
                                      .argv = ARGV("cat"),
                                      .stdin_mode = TL_PROCESS_PIPE,
                                      .stdout_mode = TL_PROCESS_PIPE,
                                      .stderr_mode = TL_PROCESS_PIPE});
        if (k < 6) {
            cr_expect_eq(rc, -EMFILE, "k=%d: %d (%s)", k, rc, tl_strerror(rc));
            cr_expect_null(p);
        } else {
            cr_expect_eq(rc, 0, "k=%d: %s", k, tl_strerror(rc));
            if (rc == 0) {
                tl_process_result res;
                cr_expect_eq(tl_process_communicate(p, "ok", 2, &res), 0);
                cr_expect_str_eq(res.out, "ok");
                tl_process_result_free(&res);
                cr_expect_eq(tl_process_close(p), 0);
            }
        }
        cr_expect_eq(tl_test_count_fds(), before, "k=%d: fd leaked", k);
        cr_expect(no_children(), "k=%d: child left", k);
    }
    while (nfill > 0) close(fill[--nfill]);
    setrlimit(RLIMIT_NOFILE, &old);
    return 0;
}

Test(process_spawn, emfile_at_each_step_leaks_nothing, .timeout = 60)
{
    run_clean(emfile_main, NULL, 0);
}
