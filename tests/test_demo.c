/* The seed's live parts of `make demo` (examples/httpx_get, stream_lines,
 * db_transaction, curl_fetch), run as the tour runs them and checked by
 * their output: each starts its own server (nginx, PostgreSQL,
 * examples/http_server) on a free loopback port and must stop it by its
 * PID, also when interrupted with Ctrl-C (SIGINT) midway. Each example
 * inherits TULIP_BACKEND, so both backends are covered. A part whose
 * library was not built, or that skipped itself (exit 77: its server is
 * not installed), skips its test (scripts/install-deps.sh installs all).
 * Every wait is bounded.
 */
#include "helpers.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>

#define T_TIMEOUT 120

struct result {
    int status; /* exit status; -1: killed after the bound */
    pid_t pid;  /* the example's */
    char out[16384];
};

static void example_path(const char *name, char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(n, 0);
    self[n] = 0;
    char *slash = strrchr(self, '/');
    cr_assert_not_null(slash);
    *slash = 0;
    int w = snprintf(out, len, "%s/../examples/%s", self, name);
    cr_assert(w > 0 && (size_t)w < len);
    if (access(out, X_OK) != 0)
        cr_skip_test("examples/%s was not built (its integration library is missing)", name);
}

/* Run examples/<name> [arg] for at most `secs`; once its output contains
 * `interrupt_at` (unless NULL), send it `sig` (SIGINT: a Ctrl-C). */
static void run_example_sig(const char *name, const char *arg, const char *interrupt_at,
                            int sig, double secs, struct result *r)
{
    char path[PATH_MAX];
    example_path(name, path, sizeof path);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) dup2(in, 0);
        /* Criterion may block or ignore signals: the demo sees what a
         * shell would give it. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        execl(path, name, arg, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    r->pid = pid;
    size_t got = 0;
    int sent = 0;
    double end = tl_test_now_s() + secs;
    r->out[0] = 0;
    for (;;) {
        double left = end - tl_test_now_s();
        if (left <= 0) break;
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int n = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        ssize_t k = read(p[0], r->out + got, sizeof r->out - 1 - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
        r->out[got] = 0;
        if (interrupt_at && !sent && strstr(r->out, interrupt_at)) {
            kill(pid, sig);
            sent = 1;
        }
        if (got == sizeof r->out - 1) break;
    }
    close(p[0]);
    r->status = -1;
    for (;;) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (tl_test_now_s() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        usleep(10000);
    }
    if (r->status == 77) cr_skip_test("%s skipped itself: %s", name, r->out);
    if (interrupt_at && !sent) cr_log_error("%s never printed '%s'", name, interrupt_at);
}

static void run_example(const char *name, const char *arg, const char *interrupt_at,
                        double secs, struct result *r)
{
    run_example_sig(name, arg, interrupt_at, SIGINT, secs, r);
}

/* The server's pid from "<what> (pid N" in the output. */
static int server_pid(const struct result *r)
{
    const char *at = strstr(r->out, "(pid ");
    cr_assert_not_null(at, "no server pid in:\n%s", r->out);
    int pid = atoi(at + 5);
    cr_assert_gt(pid, 1);
    return pid;
}

/* The server must be gone (stopped and reaped by the example). */
static void expect_server_gone(const struct result *r)
{
    int pid = server_pid(r);
    errno = 0;
    cr_expect(kill(pid, 0) < 0 && errno == ESRCH, "server pid %d still exists after:\n%s", pid,
              r->out);
}

#define EXPECT_OUT(r, s) cr_expect(strstr((r)->out, (s)) != NULL, "no '%s' in:\n%s", (s), (r)->out)

/* Run the example to its end (arguments as run_example's): it must exit 0
 * and print every string of want (NULL-terminated). */
static void run_example_ok(const char *name, const char *arg, double secs, struct result *r,
                           const char *const *want)
{
    run_example(name, arg, NULL, secs, r);
    cr_expect_eq(r->status, 0, "exit status %d:\n%s", r->status, r->out);
    for (; *want; want++) EXPECT_OUT(r, *want);
}

#define WANT(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(demo, httpx_get_prints_the_json_body_and_reuses_the_connection, .timeout = T_TIMEOUT)
{
    static struct result r;
    run_example_ok("httpx_get", NULL, 60, &r,
                   WANT("# Python: async with httpx.AsyncClient() as client:",
                        "-> HTTP 200, application/json",
                        "resp.json(): {\"id\": 14, \"chapter\": \"Asyncio intro\"",
                        "connections opened: 0 (reused)", "-> ECONNREFUSED",
                        "nginx stopped"));
    expect_server_gone(&r);
}

Test(demo, stream_lines_yields_each_line_as_it_arrives_and_closes_early, .timeout = T_TIMEOUT)
{
    static struct result r;
    run_example_ok("stream_lines", NULL, 60, &r,
                   WANT("async for line in resp.aiter_lines(): yield line",
                        "consumer: event 1", "consumer: event 5",
                        "the stream ended after 5 lines", "break after 2 lines",
                        "stream and client closed (the consumer stopped early)"));
    expect_server_gone(&r);
}

Test(demo, stream_lines_ctrl_c_stops_nginx, .timeout = T_TIMEOUT)
{
    static struct result r;
    run_example("stream_lines", NULL, "consumer: event 2", 60, &r);
    cr_expect_neq(r.status, 0, "exited 0 despite the Ctrl-C:\n%s", r.out);
    cr_expect_neq(r.status, -1, "did not exit after the Ctrl-C:\n%s", r.out);
    cr_expect(strstr(r.out, "the stream ended after 5 lines") == NULL, "%s", r.out);
    EXPECT_OUT(&r, "nginx stopped");
    expect_server_gone(&r);
}

Test(demo, db_transaction_commits_and_rolls_back_on_failure_and_timeout,
     .timeout = T_TIMEOUT)
{
    static struct result r;
    run_example_ok("db_transaction", NULL, 100, &r,
                   WANT("# Python: async with db_transaction(conn)",
                        "-> ok: committed\n    balances: alice 70 bob 30",
                        "-> EREMOTEIO: rolled back", "accounts_balance_check",
                        "SELECT pg_sleep(10): ECANCELED", "-> ETIMEDOUT after",
                        "postgres stopped"));
    cr_expect_eq(tl_test_count_of(r.out, "balances: alice 70 bob 30 (transaction status: idle)"),
                 3, "%s", r.out);
    expect_server_gone(&r);
}

Test(demo, curl_fetch_caps_concurrency_and_keeps_connections_alive, .timeout = T_TIMEOUT)
{
    static struct result r;
    run_example_ok("curl_fetch", "20", 60, &r,
                   WANT("First response body: Hello, World!", "http_server stopped"));
    /* concurrency | total | ideal | max in flight | connections | failed */
    int conc, inflight, failed;
    long conns;
    double took, ideal;
    const char *line = strstr(r.out, "------------+");
    cr_assert_not_null(line, "%s", r.out);
    int rows = 0;
    while ((line = strchr(line, '\n')) &&
           sscanf(line + 1, "%d | %lf s | %lf s | %d | %ld | %d", &conc, &took, &ideal,
                  &inflight, &conns, &failed) == 6) {
        int cap = conc < 20 ? conc : 20;
        cr_expect_eq(inflight, cap, "concurrency %d: %d in flight", conc, inflight);
        cr_expect_leq(conns, cap, "concurrency %d: %ld connections", conc, conns);
        cr_expect_geq(conns, 1);
        cr_expect_eq(failed, 0);
        cr_expect_geq(took, ideal * 0.99);
        rows++;
        line++;
    }
    cr_expect_eq(rows, 3, "%s", r.out);
    expect_server_gone(&r);
}

/* pid has ended: no such process, or a zombie (an orphan's reaper may be
 * slow or absent in a container). */
static int process_ended(int pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *rp = strrchr(buf, ')');
    return rp && (rp[2] == 'Z' || rp[2] == 'X');
}

/* Folders /tmp/tulip-demo-<what>.<pid>.* of the example run `pid`. */
static int demo_folders_of(int pid)
{
    char tail[32];
    snprintf(tail, sizeof tail, ".%d.", pid);
    DIR *d = opendir("/tmp");
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d)))
        if (strncmp(de->d_name, "tulip-demo-", 11) == 0 && strstr(de->d_name, tail)) n++;
    if (d) closedir(d);
    return n;
}

/* A run killed outright (SIGKILL: none of its exit paths runs): its nginx
 * ends anyway (the kernel's parent-death signal), and the next run removes
 * the temporary folder it left. */
Test(demo, a_killed_run_leaves_no_server_and_the_next_run_its_folder, .timeout = T_TIMEOUT)
{
    static struct result r, next;
    run_example_sig("stream_lines", NULL, "consumer: event 2", SIGKILL, 60, &r);
    cr_expect_eq(r.status, 128 + SIGKILL, "status %d:\n%s", r.status, r.out);
    int server = server_pid(&r);
    double end = tl_test_now_s() + 30;
    while (!process_ended(server) && tl_test_now_s() < end) usleep(20000);
    cr_expect(process_ended(server), "nginx (pid %d) outlived the killed demo", server);
    run_example_ok("httpx_get", NULL, 60, &next, WANT("nginx stopped"));
    cr_expect_eq(demo_folders_of(r.pid), 0, "the killed run's folder is still in /tmp");
    expect_server_gone(&next);
}
