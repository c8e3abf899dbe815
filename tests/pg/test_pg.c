/* libtulip-pg against a real PostgreSQL: the program starts its own
 * server (initdb into a temporary folder, postgres listening on a unix
 * socket there and on localhost at a free port, as the `postgres` user
 * when run as root — the server refuses root), runs each case in a
 * forked child (tiny.h) and stops the server by its PID at the end. Skipped (77) when the server's
 * binaries are not installed (scripts/install-deps.sh installs them).
 *
 * initdb is slow on a loaded machine, so the first run keeps the fresh
 * cluster as a template in the build tree and later runs copy it (with
 * 1 MB WAL segments: a 24 MB copy instead of 39).
 *
 * tulip-test-timeout: 240 */
#include "fd_count.h"
#include "tiny.h"

#include <tulip/pg.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#ifndef TULIP_TEST_SANITIZED
#define TULIP_TEST_SANITIZED 0
#endif
#ifndef TULIP_BINARY_DIR
#define TULIP_BINARY_DIR "/tmp"
#endif

static char PG_BIN[200]; /* $TULIP_PG_BIN, else Debian's newest server */

static int find_bin(void)
{
    const char *e = getenv("TULIP_PG_BIN");
    if (e) {
        snprintf(PG_BIN, sizeof PG_BIN, "%s", e);
        return 0;
    }
    DIR *d = opendir("/usr/lib/postgresql");
    int best = -1;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (atoi(de->d_name) > best) best = atoi(de->d_name);
    if (d) closedir(d);
    if (best <= 0) return -1;
    snprintf(PG_BIN, sizeof PG_BIN, "/usr/lib/postgresql/%d/bin", best);
    return 0;
}

static const char *bin(const char *tool)
{
    static char path[2][256];
    static int k;
    k ^= 1;
    snprintf(path[k], sizeof path[k], "%s/%s", PG_BIN, tool);
    return path[k];
}

static char g_dir[64];
static int g_port;      /* the server's: TCP on localhost, and the socket's
                           name in g_dir */
static char g_ci[256];  /* the superuser's conninfo */
static pid_t g_pm = -1; /* the postmaster */
static uid_t g_uid;     /* who runs the server: postgres when root */
static gid_t g_gid;
static int g_drop;      /* running as root: drop to postgres */

/* ---- the server -------------------------------------------------------- */

static void drop_privileges(void)
{
    if (!g_drop) return;
    if (setgroups(0, NULL) != 0 || setgid(g_gid) != 0 || setuid(g_uid) != 0) {
        perror("drop privileges");
        _exit(126);
    }
}

/* Run argv (as the server's user if `as_pg`), output to `log`; returns
 * the exit status, or the pid when `background`. */
static int spawn(char *const argv[], int as_pg, const char *log, int background)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (as_pg) drop_privileges();
        /* The server goes with us if this program dies (after the uid
         * change, which clears the setting). */
        if (background) prctl(PR_SET_PDEATHSIG, SIGQUIT);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (background) return pid;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int sh(const char *cmd)
{
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    return spawn(argv, 0, "/dev/null", 0);
}

static void print_log(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "cat %s/log >&2", g_dir);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
}

static void stop_server(void)
{
    if (g_pm > 0) {
        kill(g_pm, SIGINT); /* fast shutdown */
        int st;
        for (int i = 0; i < 600; i++) {
            if (waitpid(g_pm, &st, WNOHANG) == g_pm) {
                g_pm = -1;
                break;
            }
            nanosleep(&(struct timespec){0, 50000000}, NULL);
        }
        if (g_pm > 0) {
            kill(g_pm, SIGKILL);
            waitpid(g_pm, &st, 0);
            g_pm = -1;
        }
    }
    if (g_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        sh(cmd);
        g_dir[0] = 0;
    }
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    fclose(f);
    if (g_drop && chown(path, g_uid, g_gid) != 0) return -1;
    return 0;
}

/* 0 ready, 77 skip, else failure. */
static int start_server(void)
{
    if (find_bin() != 0 || access(bin("postgres"), X_OK) != 0 ||
        access(bin("initdb"), X_OK) != 0) {
        fprintf(stderr, "skipped: no PostgreSQL server (postgres, initdb) "
                        "in %s; set TULIP_PG_BIN\n",
                PG_BIN[0] ? PG_BIN : "/usr/lib/postgresql/*/bin");
        return 77;
    }
    g_drop = geteuid() == 0;
    if (g_drop) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw) {
            fprintf(stderr, "skipped: running as root, no postgres user\n");
            return 77;
        }
        g_uid = pw->pw_uid;
        g_gid = pw->pw_gid;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/tulip-pg.XXXXXX");
    if (!mkdtemp(g_dir)) {
        g_dir[0] = 0;
        return 1;
    }
    if (g_drop && chown(g_dir, g_uid, g_gid) != 0) return 1;
    char data[128], log[128], cmd[4096];
    snprintf(data, sizeof data, "%s/data", g_dir);
    snprintf(log, sizeof log, "%s/log", g_dir);
    /* One template per server build (named after its folder). */
    char tmpl[400], probe[420];
    snprintf(tmpl, sizeof tmpl, "%s/pg-template-w1", TULIP_BINARY_DIR);
    for (const char *q = PG_BIN; *q; q++) {
        size_t l = strlen(tmpl);
        if (l + 2 >= sizeof tmpl) break;
        tmpl[l] = *q == '/' ? '-' : *q;
        tmpl[l + 1] = 0;
    }
    snprintf(probe, sizeof probe, "%s/PG_VERSION", tmpl);
    struct stat sb;
    if (stat(probe, &sb) != 0) {
        char *argv[] = {(char *)bin("initdb"), "-D", data, "-U", "tulip",
                        "-A", "trust", "-E", "UTF8", "--no-sync",
                        "--wal-segsize=1",
                        "--no-instructions", NULL};
        if (spawn(argv, 1, log, 0) != 0) {
            print_log();
            return 1;
        }
        /* Keep it for the next runs; of two runs racing, one rename wins. */
        snprintf(cmd, sizeof cmd,
                 "cp -a '%s' '%s.%d' && { mv -T '%s.%d' '%s' 2>/dev/null || "
                 "rm -rf '%s.%d'; }",
                 data, tmpl, (int)getpid(), tmpl, (int)getpid(), tmpl, tmpl,
                 (int)getpid());
        sh(cmd);
    } else {
        snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", tmpl, data);
        if (sh(cmd) != 0) return 1;
    }
    char hba[160];
    snprintf(hba, sizeof hba, "%s/pg_hba.conf", data);
    if (write_file(hba, "local all pwuser scram-sha-256\n"
                        "local all all trust\n"
                        "host all tulip 127.0.0.1/32 trust\n"
                        "host all tulip ::1/128 trust\n") != 0)
        return 1;
    /* A free loopback port, for the TCP listener (host names). */
    int ps = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in pa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t plen = sizeof pa;
    if (ps < 0 || bind(ps, (struct sockaddr *)&pa, sizeof pa) != 0 ||
        getsockname(ps, (struct sockaddr *)&pa, &plen) != 0)
        return 1;
    close(ps);
    g_port = ntohs(pa.sin_port);
    char port[16];
    snprintf(port, sizeof port, "%d", g_port);
    if (g_drop && chown(log, g_uid, g_gid) != 0) { /* may not exist yet */
    }
    char *argv[] = {(char *)bin("postgres"), "-D", data, "-k", g_dir,
                    "-c", "listen_addresses=localhost", "-p", port,
                    "-F", "-c", "max_connections=40",
                    "-c", "shared_buffers=8MB", NULL};
    g_pm = spawn(argv, 1, log, 1);
    if (g_pm < 0) return 1;
    snprintf(g_ci, sizeof g_ci,
             "host=%s port=%d user=tulip dbname=postgres "
             "sslmode=disable gssencmode=disable",
             g_dir, g_port);
    /* Bounded start-up wait. */
    for (int i = 0;; i++) {
        if (PQping(g_ci) == PQPING_OK) break;
        int st;
        if (waitpid(g_pm, &st, WNOHANG) == g_pm || i == 1200) {
            if (g_pm > 0 && i == 1200) kill(g_pm, SIGKILL);
            fprintf(stderr, "postgres did not start:\n");
            print_log();
            g_pm = -1;
            return 1;
        }
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    PGconn *c = PQconnectdb(g_ci);
    PGresult *r = PQexec(c, "CREATE ROLE pwuser LOGIN PASSWORD 'right';"
                            "CREATE TABLE t_tx (tag text)");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "setup: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : 1;
}

/* ---- helpers --------------------------------------------------------- */

static tl_pg *open_conn(void)
{
    tl_pg *c = NULL;
    int rc = tl_pg_connect(&c, g_ci);
    if (rc != 0) fprintf(stderr, "connect: %s\n", tl_fail_message(rc));
    TINY_ASSERT_EQ(rc, 0);
    return c;
}

/* The first column of the first row of a one-value query, into buf. */
static char *one(tl_pg *c, const char *sql, char *buf, size_t len)
{
    PGresult *r = NULL;
    int rc = tl_pg_query(c, &r, sql, 0, NULL);
    if (rc != 0) fprintf(stderr, "%s: %s\n", sql, tl_fail_message(rc));
    TINY_ASSERT_EQ(rc, 0);
    TINY_ASSERT_EQ(PQntuples(r), 1);
    snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

static void expect_usable(tl_pg *c)
{
    char b[16];
    TINY_ASSERT_EQ(tl_pg_broken(c), 0);
    TINY_ASSERT_STR_EQ(one(c, "SELECT 7", b, sizeof b), "7");
    TINY_ASSERT_EQ(PQtransactionStatus(tl_pg_conn(c)), PQTRANS_IDLE);
}

/* tl_test_open_fds (fd_count.h), which must be able to read /proc/self/fd. */
static int count_fds(void)
{
    int n = tl_test_open_fds();
    TINY_ASSERT(n >= 0);
    return n;
}

static void run(tl_fn fn)
{
    TINY_ASSERT_EQ(tl_run(fn, NULL), 0);
}

/* ---- connect and query ------------------------------------------------- */

static int main_simple(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn();
    PGresult *r = NULL;
    TINY_ASSERT_EQ(tl_pg_query(c, &r, "SELECT 1 + 1 AS two, 'x'::text AS s",
                               0, NULL), 0);
    TINY_ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    TINY_ASSERT_EQ(PQntuples(r), 1);
    TINY_ASSERT_EQ(PQnfields(r), 2);
    TINY_ASSERT_STR_EQ(PQfname(r, 0), "two");
    TINY_ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "2");
    TINY_ASSERT_STR_EQ(PQgetvalue(r, 0, 1), "x");
    PQclear(r);
    TINY_ASSERT_EQ(tl_pg_close(c), 0);
    return 0;
}
TINY_TEST(connect_and_simple_query) { run(main_simple); }

static int main_params(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn();
    PGresult *r = NULL;
    const char *p1[] = {"40", "2"};
    TINY_ASSERT_EQ(tl_pg_query(c, &r, "SELECT $1::int + $2::int", 2, p1), 0);
    TINY_ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    /* Text is sent as a value, never spliced into the SQL. */
    const char *p2[] = {"it's'; DROP TABLE t_tx; --", NULL};
    TINY_ASSERT_EQ(tl_pg_query(c, &r, "SELECT $1::text, $2::text IS NULL", 2,
                               p2), 0);
    TINY_ASSERT_STR_EQ(PQgetvalue(r, 0, 0), p2[0]);
    TINY_ASSERT_STR_EQ(PQgetvalue(r, 0, 1), "t");
    PQclear(r);
    /* Several statements through the simple protocol. */
    TINY_ASSERT_EQ(tl_pg_exec(c, "CREATE TEMP TABLE x (a int);"
                                 "INSERT INTO x VALUES (1), (2), (3)"), 0);
    TINY_ASSERT_EQ(tl_pg_query(c, &r, "INSERT INTO x VALUES ($1)", 1,
                               (const char *[]){"4"}), 0);
    TINY_ASSERT_STR_EQ(PQcmdTuples(r), "1");
    PQclear(r);
    char b[16];
    TINY_ASSERT_STR_EQ(one(c, "SELECT sum(a) FROM x", b, sizeof b), "10");
    TINY_ASSERT_EQ(tl_pg_query(c, NULL, "SELECT 1", 0, NULL), 0);
    TINY_ASSERT_EQ(tl_pg_query(c, NULL, NULL, 0, NULL), -EINVAL);
    TINY_ASSERT_EQ(tl_pg_query(c, NULL, "SELECT $1", 1, NULL), -EINVAL);
    tl_pg_close(c);
    return 0;
}
TINY_TEST(parameters) { run(main_params); }

static int main_server_error(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn();
    PGresult *r = (PGresult *)1;
    int rc = tl_pg_query(c, &r, "SELECT * FROM no_such_table", 0, NULL);
    TINY_ASSERT_EQ(rc, -EREMOTEIO);
    TINY_ASSERT_EQ(r, NULL);
    TINY_ASSERT_STR_EQ(tl_pg_sqlstate(c), "42P01");
    TINY_ASSERT_STR_CONTAINS(tl_fail_message(rc), "does not exist");
    TINY_ASSERT_STR_CONTAINS(tl_fail_message(rc), "42P01");
    TINY_ASSERT_STR_CONTAINS(tl_pg_errmsg(c), "no_such_table");
    rc = tl_pg_exec(c, "SELECT 1; SELECT 1/0; SELECT 3");
    TINY_ASSERT_EQ(rc, -EREMOTEIO);
    TINY_ASSERT_STR_EQ(tl_pg_sqlstate(c), "22012");
    expect_usable(c);
    TINY_ASSERT_STR_EQ(tl_pg_sqlstate(c), "");
    tl_pg_close(c);
    return 0;
}
TINY_TEST(server_error_with_sqlstate) { run(main_server_error); }

/* ---- streaming --------------------------------------------------------- */

static long vm_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static int main_stream(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn();
    const long n = TULIP_TEST_SANITIZED ? 2000 : 1000000;
    char nbuf[32];
    snprintf(nbuf, sizeof nbuf, "%ld", n);
    const char *p[] = {nbuf};
    long base = vm_hwm_kb();
    double t0 = tl_now();
    tl_gen *g;
    TINY_ASSERT_EQ(tl_pg_stream(&g, c, "SELECT i, repeat('x', 100) "
                                       "FROM generate_series(1, $1::int) i",
                                1, p), 0);
    /* The connection belongs to the stream meanwhile. */
    TINY_ASSERT_EQ(tl_pg_query(c, NULL, "SELECT 1", 0, NULL), -EBUSY);
    TINY_ASSERT_EQ(tl_pg_close(c), -EBUSY);
    PGresult *row;
    int rc;
    long count = 0, sum_ok = 1;
    TL_GEN_FOREACH(g, row, &rc)
    {
        count++;
        if (PQntuples(row) != 1 || atol(PQgetvalue(row, 0, 0)) != count ||
            strlen(PQgetvalue(row, 0, 1)) != 100)
            sum_ok = 0;
    }
    TINY_ASSERT_EQ(rc, 0);
    TINY_ASSERT_EQ(tl_gen_close(g), 0);
    TINY_ASSERT_EQ(count, n);
    TINY_ASSERT(sum_ok);
    /* The whole result would take well over 100 MB; streamed, the peak
     * grows by a few buffers. (ASan's quarantine keeps freed rows, so
     * the bound is checked in plain builds only.) */
    long grew = vm_hwm_kb() - base;
    fprintf(stderr, "stream: %ld rows in %.2f s, peak RSS grew %ld KiB\n", n,
            tl_now() - t0, grew);
    if (!TULIP_TEST_SANITIZED) TINY_ASSERT(grew < 32 * 1024);
    expect_usable(c);
    tl_pg_close(c);
    return 0;
}
TINY_TEST(stream_rows_bounded_memory) { run(main_stream); }

static int main_stream_close_early(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn();
    tl_gen *g;
    double t0 = tl_now();
    TINY_ASSERT_EQ(tl_pg_stream(&g, c, "SELECT i, pg_sleep(0.001) FROM "
                                       "generate_series(1, 100000) i",
                                0, NULL), 0);
    PGresult *row;
    int rc, k = 0;
    TL_GEN_FOREACH(g, row, &rc)
    {
        if (++k == 5) break;
    }
    TINY_ASSERT_EQ(rc, 0);
    TINY_ASSERT_EQ(tl_gen_close(g), 0); /* cancels the query, drains */
    TINY_ASSERT(tl_now() - t0 < 20);
    expect_usable(c);
    /* A failure midway reaches the consumer. */
    TINY_ASSERT_EQ(tl_pg_stream(&g, c, "SELECT 10 / (3 - i) FROM "
                                       "generate_series(1, 5) i",
                                0, NULL), 0);
    k = 0;
    TL_GEN_FOREACH(g, row, &rc) k += PQntuples(row);
    TINY_ASSERT_EQ(k, 2);
    TINY_ASSERT_EQ(rc, -EREMOTEIO);
    TINY_ASSERT_STR_CONTAINS(tl_fail_message(rc), "division by zero");
    TINY_ASSERT_EQ(tl_gen_close(g), 0);
    expect_usable(c);
    tl_pg_close(c);
    return 0;
}
TINY_TEST(stream_closed_early_cancels) { run(main_stream_close_early); }

/* ---- pipeline --------------------------------------------------------- */

static int main_pipeline(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn();
    const char *p[] = {"21"};
    tl_pg_stmt ok[] = {{"SELECT $1::int * 2", 1, p},
                       {"SELECT 'b'", 0, NULL},
                       {"SELECT generate_series(1, 3)", 0, NULL}};
    PGresult *res[3];
    TINY_ASSERT_EQ(tl_pg_pipeline(c, 3, ok, res), 0);
    TINY_ASSERT_STR_EQ(PQgetvalue(res[0], 0, 0), "42");
    TINY_ASSERT_STR_EQ(PQgetvalue(res[1], 0, 0), "b");
    TINY_ASSERT_EQ(PQntuples(res[2]), 3);
    for (int i = 0; i < 3; i++) PQclear(res[i]);
    TINY_ASSERT_EQ(PQpipelineStatus(tl_pg_conn(c)), PQ_PIPELINE_OFF);

    tl_pg_stmt bad[] = {{"SELECT 1", 0, NULL},
                        {"SELECT 1/0", 0, NULL},
                        {"SELECT 3", 0, NULL}};
    int rc = tl_pg_pipeline(c, 3, bad, res);
    TINY_ASSERT_EQ(rc, -EREMOTEIO);
    TINY_ASSERT_STR_EQ(tl_pg_sqlstate(c), "22012");
    TINY_ASSERT_EQ(PQresultStatus(res[0]), PGRES_TUPLES_OK);
    TINY_ASSERT_EQ(PQresultStatus(res[1]), PGRES_FATAL_ERROR);
    TINY_ASSERT_EQ(PQresultStatus(res[2]), PGRES_PIPELINE_ABORTED);
    for (int i = 0; i < 3; i++) PQclear(res[i]);
    expect_usable(c);

    /* Cancelled midway: drained, usable. */
    tl_pg_stmt slow[] = {{"SELECT 1", 0, NULL},
                         {"SELECT pg_sleep(100)", 0, NULL},
                         {"SELECT 3", 0, NULL}};
    TL_WITH_TIMEOUT(0.3, &rc) { rc = tl_pg_pipeline(c, 3, slow, res); }
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    for (int i = 0; i < 3; i++) PQclear(res[i]);
    expect_usable(c);
    TINY_ASSERT_EQ(PQpipelineStatus(tl_pg_conn(c)), PQ_PIPELINE_OFF);
    tl_pg_close(c);
    return 0;
}
TINY_TEST(pipeline) { run(main_pipeline); }

/* ---- LISTEN / NOTIFY -------------------------------------------------- */

static int notifier(void *arg)
{
    tl_pg *b = arg;
    TINY_ASSERT_EQ(tl_sleep(0.05), 0);
    TINY_ASSERT_EQ(tl_pg_exec(b, "NOTIFY ch, 'hello'"), 0);
    return 0;
}

static int main_notify(void *arg)
{
    (void)arg;
    tl_pg *a = open_conn(), *b = open_conn();
    TINY_ASSERT_EQ(tl_pg_exec(a, "LISTEN ch"), 0);
    tl_task t;
    TINY_ASSERT_EQ(tl_spawn(&t, notifier, b), 0);
    PGnotify *n = NULL;
    int rc;
    TL_WITH_TIMEOUT(30, &rc) { rc = tl_pg_notify_wait(a, &n); }
    TINY_ASSERT_EQ(rc, 0);
    TINY_ASSERT_STR_EQ(n->relname, "ch");
    TINY_ASSERT_STR_EQ(n->extra, "hello");
    TINY_ASSERT_EQ(n->be_pid, PQbackendPID(tl_pg_conn(b)));
    PQfreemem(n);
    int st;
    TINY_ASSERT_EQ(tl_join(t, &st), 0);
    TINY_ASSERT_EQ(st, 0);
    /* Nothing more: the wait times out through its scope. */
    double t0 = tl_now();
    TL_WITH_TIMEOUT(0.2, &rc) { rc = tl_pg_notify_wait(a, &n); }
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    TINY_ASSERT(tl_now() - t0 >= 0.19);
    /* Notifications that arrive during a query are kept for the wait. */
    TINY_ASSERT_EQ(tl_pg_exec(b, "NOTIFY ch, 'one'; NOTIFY ch, 'two'"), 0);
    TINY_ASSERT_EQ(tl_pg_exec(a, "SELECT pg_sleep(0.1)"), 0);
    TINY_ASSERT_EQ(tl_pg_notify_wait(a, &n), 0);
    TINY_ASSERT_STR_EQ(n->extra, "one");
    PQfreemem(n);
    TINY_ASSERT_EQ(tl_pg_notify_wait(a, &n), 0);
    TINY_ASSERT_STR_EQ(n->extra, "two");
    PQfreemem(n);
    expect_usable(a);
    tl_pg_close(a);
    tl_pg_close(b);
    return 0;
}
TINY_TEST(listen_notify) { run(main_notify); }

/* ---- cancel ----------------------------------------------------------- */

static int main_cancel(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn(), *b = open_conn();
    double t0 = tl_now();
    int rc;
    TL_WITH_TIMEOUT(0.3, &rc)
    {
        rc = tl_pg_query(c, NULL, "SELECT pg_sleep(100)", 0, NULL);
    }
    double took = tl_now() - t0;
    fprintf(stderr, "cancel: returned after %.3f s\n", took);
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    TINY_ASSERT(took < 20);
    expect_usable(c);
    /* A script cancelled in its second statement: cancelled too, not
     * taken for done because the first one's result was in. */
    t0 = tl_now();
    TL_WITH_TIMEOUT(0.3, &rc)
    {
        rc = tl_pg_exec(c, "SELECT 1; SELECT pg_sleep(100); SELECT 2");
    }
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    TINY_ASSERT(tl_now() - t0 < 20);
    expect_usable(c);
    /* The server is not running it any more. */
    char buf[16];
    TINY_ASSERT_STR_EQ(one(b, "SELECT count(*) FROM pg_stat_activity "
                              "WHERE query LIKE '%pg_sleep(100)%' "
                              "AND pid <> pg_backend_pid() "
                              "AND state = 'active'",
                           buf, sizeof buf),
                       "0");
    tl_pg_close(c);
    tl_pg_close(b);
    return 0;
}
TINY_TEST(cancel_by_timeout) { run(main_cancel); }

static int sleeper(void *arg)
{
    return tl_pg_query(arg, NULL, "SELECT pg_sleep(100)", 0, NULL);
}

static int main_cancel_task(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn();
    tl_task t;
    TINY_ASSERT_EQ(tl_spawn(&t, sleeper, c), 0);
    TINY_ASSERT_EQ(tl_sleep(0.2), 0);
    TINY_ASSERT_EQ(tl_cancel(t), 0);
    int st;
    TINY_ASSERT_EQ(tl_join(t, &st), 0);
    TINY_ASSERT_EQ(st, -ECANCELED);
    expect_usable(c);
    tl_pg_close(c);
    return 0;
}
TINY_TEST(cancel_of_task) { run(main_cancel_task); }

/* A postmaster that never takes the cancel request (stopped by SIGSTOP;
 * the backend running the query is not): the cancel gives up after
 * TL_PG_CANCEL_TIMEOUT instead of waiting forever as PQcancel does, and
 * the connection is broken, not drained. */
static int main_cancel_unanswered(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn();
    int pid = PQbackendPID(tl_pg_conn(c));
    TINY_ASSERT_EQ(kill(g_pm, SIGSTOP), 0);
    double t0 = tl_now();
    int rc;
    TL_WITH_TIMEOUT(0.3, &rc)
    {
        rc = tl_pg_query(c, NULL, "SELECT pg_sleep(20)", 0, NULL);
    }
    double took = tl_now() - t0;
    kill(g_pm, SIGCONT); /* before anything may fail */
    fprintf(stderr, "unanswered cancel: returned after %.3f s: %s\n", took,
            tl_pg_errmsg(c));
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    TINY_ASSERT(took >= TL_PG_CANCEL_TIMEOUT * 0.9);
    TINY_ASSERT(took < TL_PG_CANCEL_TIMEOUT + 10);
    TINY_ASSERT(tl_pg_broken(c));
    TINY_ASSERT(strstr(tl_pg_errmsg(c), "cancel request") != NULL);
    TINY_ASSERT_EQ(tl_pg_query(c, NULL, "SELECT 1", 0, NULL), -ECONNRESET);
    TINY_ASSERT_EQ(tl_pg_close(c), 0);
    /* The server serves again. (Resumed, the postmaster reads the
     * request still queued on its socket and cancels the query then; the
     * backend may even be gone already, so it is ended only if not.) */
    tl_pg *b = open_conn();
    char q[96], buf[16];
    snprintf(q, sizeof q, "SELECT count(pg_terminate_backend(pid)) FROM "
                          "pg_stat_activity WHERE pid = %d", pid);
    (void)one(b, q, buf, sizeof buf);
    expect_usable(b);
    tl_pg_close(b);
    return 0;
}
TINY_TEST(cancel_unanswered_is_bounded) { run(main_cancel_unanswered); }

/* The server ends the session mid-query: a clear error, then -ECONNRESET. */
static int main_terminated(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn(), *b = open_conn();
    tl_task t;
    TINY_ASSERT_EQ(tl_spawn(&t, sleeper, c), 0);
    TINY_ASSERT_EQ(tl_sleep(0.2), 0);
    char q[96], buf[16];
    snprintf(q, sizeof q, "SELECT pg_terminate_backend(%d)",
             PQbackendPID(tl_pg_conn(c)));
    TINY_ASSERT_STR_EQ(one(b, q, buf, sizeof buf), "t");
    int st;
    TINY_ASSERT_EQ(tl_join(t, &st), 0);
    TINY_ASSERT(st == -ECONNRESET || st == -EREMOTEIO);
    TINY_ASSERT(tl_pg_broken(c));
    TINY_ASSERT_EQ(tl_pg_query(c, NULL, "SELECT 1", 0, NULL), -ECONNRESET);
    TINY_ASSERT_EQ(tl_pg_close(c), 0);
    expect_usable(b);
    tl_pg_close(b);
    return 0;
}
TINY_TEST(server_ends_session_mid_query) { run(main_terminated); }

/* ---- transactions ------------------------------------------------------ */

struct tx {
    const char *tag;
    int fail;  /* return an error after the insert */
    int sleep; /* then run a long query */
};

static int tx_body(tl_pg *c, void *arg)
{
    struct tx *t = arg;
    const char *p[] = {t->tag};
    int rc = tl_pg_query(c, NULL, "INSERT INTO t_tx VALUES ($1)", 1, p);
    if (rc < 0) return rc;
    if (t->fail) return tl_fail(-EIO, "body failed on purpose");
    if (t->sleep) return tl_pg_query(c, NULL, "SELECT pg_sleep(100)", 0, NULL);
    return 5;
}

static long seen(tl_pg *b, const char *tag)
{
    PGresult *r;
    const char *p[] = {tag};
    TINY_ASSERT_EQ(tl_pg_query(b, &r, "SELECT count(*) FROM t_tx WHERE tag = $1",
                               1, p), 0);
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static int main_tx(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn(), *b = open_conn();
    char tag[3][48];
    for (int i = 0; i < 3; i++)
        snprintf(tag[i], sizeof tag[i], "%s-%d-%d",
                 tl_backend_name(), (int)getpid(), i);
    /* Commit on success: the body's result comes back. */
    struct tx ok = {tag[0], 0, 0};
    TINY_ASSERT_EQ(tl_pg_transaction(c, tx_body, &ok), 5);
    TINY_ASSERT_EQ(seen(b, tag[0]), 1);
    /* Rollback on error, with the body's message kept. */
    struct tx bad = {tag[1], 1, 0};
    int rc = tl_pg_transaction(c, tx_body, &bad);
    TINY_ASSERT_EQ(rc, -EIO);
    TINY_ASSERT_STR_CONTAINS(tl_fail_message(rc), "on purpose");
    TINY_ASSERT_EQ(seen(b, tag[1]), 0);
    expect_usable(c);
    /* Rollback on cancel (a timeout) while the body's query runs. */
    struct tx slow = {tag[2], 0, 1};
    double t0 = tl_now();
    TL_WITH_TIMEOUT(0.3, &rc) { rc = tl_pg_transaction(c, tx_body, &slow); }
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    TINY_ASSERT(tl_now() - t0 < 20);
    TINY_ASSERT_EQ(seen(b, tag[2]), 0);
    expect_usable(c);
    /* A deadline that passes while the server commits (a deferred
     * trigger makes COMMIT take 1 s): the commit is seen through. */
    TINY_ASSERT_EQ(tl_pg_exec(c,
        "CREATE TEMP TABLE t_slow (tag text);"
        "CREATE FUNCTION pg_temp.slow() RETURNS trigger AS "
        "$$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$ LANGUAGE plpgsql;"
        "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t_slow "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        "EXECUTE FUNCTION pg_temp.slow()"), 0);
    TINY_ASSERT_EQ(tl_pg_begin(c), 0);
    TINY_ASSERT_EQ(tl_pg_exec(c, "INSERT INTO t_slow VALUES ('in')"), 0);
    t0 = tl_now();
    TL_WITH_TIMEOUT(0.2, &rc) { rc = tl_pg_end(c, 6); }
    TINY_ASSERT_EQ(rc, 6);
    TINY_ASSERT(tl_now() - t0 >= 0.9);
    char buf[16];
    TINY_ASSERT_STR_EQ(one(c, "SELECT count(*) FROM t_slow", buf, sizeof buf),
                       "1");
    /* Cancelled before COMMIT is sent: rolled back. */
    TINY_ASSERT_EQ(tl_pg_begin(c), 0);
    TINY_ASSERT_EQ(tl_pg_exec(c, "INSERT INTO t_slow VALUES ('out')"), 0);
    TL_WITH_TIMEOUT(0.05, &rc)
    {
        TINY_ASSERT_EQ(tl_sleep(1), -ECANCELED);
        rc = tl_pg_end(c, 0);
    }
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    TINY_ASSERT_STR_EQ(one(c, "SELECT count(*) FROM t_slow", buf, sizeof buf),
                       "1");
    expect_usable(c);
    /* A statement failed inside, the body said "fine": not committed. */
    TINY_ASSERT_EQ(tl_pg_begin(c), 0);
    TINY_ASSERT_EQ(tl_pg_exec(c, "INSERT INTO t_tx VALUES ('never')"), 0);
    TINY_ASSERT_EQ(tl_pg_exec(c, "SELECT 1/0"), -EREMOTEIO);
    TINY_ASSERT_EQ(tl_pg_end(c, 0), -EREMOTEIO);
    TINY_ASSERT_EQ(seen(b, "never"), 0);
    expect_usable(c);
    tl_pg_close(c);
    tl_pg_close(b);
    return 0;
}
TINY_TEST(transaction_commit_and_rollbacks) { run(main_tx); }

/* ---- pool ------------------------------------------------------------- */

struct pool_run {
    tl_pg_pool *pool;
    int cur, max, done;
    tl_event full; /* set when the cap's worth of connections is out */
    tl_pg *seen[64];
    int nseen;
};

static int pool_user(void *arg)
{
    struct pool_run *p = arg;
    tl_pg *c;
    int rc = tl_pg_pool_acquire(p->pool, &c);
    if (rc < 0) return rc;
    if (++p->cur > p->max) p->max = p->cur;
    /* The first holders wait until the cap's worth is out, so the cap is
     * reached however slowly the machine connects (a 10 ms query could
     * otherwise end before the third connection is made). Bounded: a pool
     * that never hands out the third fails the max check instead. */
    if (p->cur == 3) tl_event_set(&p->full);
    int wrc;
    TL_WITH_TIMEOUT(10.0, &wrc) { wrc = tl_event_wait(&p->full); }
    (void)wrc;
    int known = 0;
    for (int i = 0; i < p->nseen; i++) known |= p->seen[i] == c;
    if (!known && p->nseen < 64) p->seen[p->nseen++] = c;
    rc = tl_pg_query(c, NULL, "SELECT pg_sleep(0.01)", 0, NULL);
    p->cur--;
    TINY_ASSERT_EQ(tl_pg_pool_release(p->pool, c), 0);
    p->done++;
    return rc;
}

static int main_pool(void *arg)
{
    (void)arg;
    struct pool_run p = {0};
    tl_event_init(&p.full);
    TINY_ASSERT_EQ(tl_pg_pool_new(&p.pool, g_ci, 3), 0);
    enum { N = 16 };
    tl_task t[N];
    for (int i = 0; i < N; i++) TINY_ASSERT_EQ(tl_spawn(&t[i], pool_user, &p), 0);
    for (int i = 0; i < N; i++) {
        int st;
        TINY_ASSERT_EQ(tl_join(t[i], &st), 0);
        TINY_ASSERT_EQ(st, 0);
    }
    TINY_ASSERT_EQ(p.done, N);
    TINY_ASSERT_EQ(p.max, 3);   /* the cap, and reached */
    TINY_ASSERT_EQ(p.nseen, 3); /* connections were reused */
    /* At the cap, acquire waits: a timeout scope ends the wait. */
    tl_pg *held[3];
    for (int i = 0; i < 3; i++)
        TINY_ASSERT_EQ(tl_pg_pool_acquire(p.pool, &held[i]), 0);
    int rc;
    tl_pg *extra = NULL;
    TL_WITH_TIMEOUT(0.1, &rc) { rc = tl_pg_pool_acquire(p.pool, &extra); }
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    TINY_ASSERT_EQ(extra, NULL);
    /* One of them is ended by the server while idle in the pool: the next
     * acquire notices and hands out a working connection. */
    int pid = PQbackendPID(tl_pg_conn(held[0]));
    for (int i = 0; i < 3; i++)
        TINY_ASSERT_EQ(tl_pg_pool_release(p.pool, held[i]), 0);
    tl_pg *b = open_conn();
    char q[96], buf[16];
    snprintf(q, sizeof q, "SELECT pg_terminate_backend(%d, 10000)", pid);
    TINY_ASSERT_STR_EQ(one(b, q, buf, sizeof buf), "t");
    tl_pg_close(b);
    for (int i = 0; i < 3; i++) {
        TINY_ASSERT_EQ(tl_pg_pool_acquire(p.pool, &held[i]), 0);
        expect_usable(held[i]);
    }
    for (int i = 0; i < 3; i++)
        TINY_ASSERT_EQ(tl_pg_pool_release(p.pool, held[i]), 0);
    TINY_ASSERT_EQ(tl_pg_pool_free(p.pool), 0);
    tl_event_destroy(&p.full);
    return 0;
}
TINY_TEST(pool_cap) { run(main_pool); }

/* ---- connection errors ------------------------------------------------- */

static int main_bad_password(void *arg)
{
    (void)arg;
    char ci[320];
    tl_pg *c = (tl_pg *)1;
    snprintf(ci, sizeof ci, "host=%s port=%d user=pwuser password=wrong "
                            "dbname=postgres sslmode=disable",
             g_dir, g_port);
    int rc = tl_pg_connect(&c, ci);
    TINY_ASSERT_EQ(rc, -EACCES);
    TINY_ASSERT_EQ(c, NULL);
    TINY_ASSERT_STR_CONTAINS(tl_fail_message(rc),
                             "password authentication failed");
    snprintf(ci, sizeof ci, "host=%s port=%d user=pwuser password=right "
                            "dbname=postgres sslmode=disable",
             g_dir, g_port);
    TINY_ASSERT_EQ(tl_pg_connect(&c, ci), 0);
    expect_usable(c);
    tl_pg_close(c);
    snprintf(ci, sizeof ci, "host=%s port=%d user=tulip dbname=nodb", g_dir,
             g_port);
    rc = tl_pg_connect(&c, ci);
    TINY_ASSERT_EQ(rc, -ECONNABORTED);
    TINY_ASSERT_STR_CONTAINS(tl_fail_message(rc), "does not exist");
    TINY_ASSERT_EQ(tl_pg_connect(&c, "not a conninfo"), -ECONNABORTED);
    return 0;
}
TINY_TEST(bad_password_and_bad_conninfo) { run(main_bad_password); }

static int main_unreachable(void *arg)
{
    (void)arg;
    /* A loopback port nobody listens on. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    TINY_ASSERT_EQ(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    TINY_ASSERT_EQ(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    char ci[160];
    snprintf(ci, sizeof ci, "hostaddr=127.0.0.1 port=%d user=x dbname=x "
                            "sslmode=disable connect_timeout=10",
             ntohs(a.sin_port));
    tl_pg *c;
    double t0 = tl_now();
    int rc = tl_pg_connect(&c, ci);
    TINY_ASSERT_EQ(rc, -ECONNREFUSED);
    TINY_ASSERT_STR_CONTAINS(tl_fail_message(rc), "refused");
    TINY_ASSERT(tl_now() - t0 < 10);
    rc = tl_pg_connect(&c, "host=/nonexistent-dir port=5432 user=x");
    TINY_ASSERT_EQ(rc, -ECONNREFUSED);
    /* Two hosts, the first dead: libpq moves to another socket. */
    snprintf(ci, sizeof ci, "host=127.0.0.1,%s port=%d,%d user=tulip "
                            "dbname=postgres sslmode=disable",
             g_dir, ntohs(a.sin_port), g_port);
    TINY_ASSERT_EQ(tl_pg_connect(&c, ci), 0);
    expect_usable(c);
    tl_pg_close(c);
    return 0;
}
TINY_TEST(unreachable_server) { run(main_unreachable); }

/* A host name, not an address or a socket folder: libpq resolves it in
 * PQconnectStart, which tulip runs on the thread pool, then connects over
 * TCP (to 127.0.0.1 or ::1, whichever the name gives first). Twice at
 * once, so the two resolutions are in flight together. */
static int connect_by_name(void *arg)
{
    (void)arg;
    char ci[200];
    snprintf(ci, sizeof ci, "host=localhost port=%d user=tulip "
                            "dbname=postgres sslmode=disable gssencmode=disable",
             g_port);
    tl_pg *c = NULL;
    int rc = tl_pg_connect(&c, ci);
    if (rc != 0) fprintf(stderr, "by name: %d %s\n", rc, tl_fail_message(rc));
    TINY_ASSERT_EQ(rc, 0);
    expect_usable(c);
    tl_pg_close(c);
    return 0;
}

static int main_host_name(void *arg)
{
    (void)arg;
    tl_task t[2];
    for (int i = 0; i < 2; i++)
        TINY_ASSERT_EQ(tl_spawn(&t[i], connect_by_name, NULL), 0);
    for (int i = 0; i < 2; i++) TINY_ASSERT_EQ(tl_join(t[i], NULL), 0);
    /* A name whose port nobody listens on: refused, named. */
    char ci[200];
    snprintf(ci, sizeof ci, "host=localhost port=1 user=x dbname=x "
                            "sslmode=disable gssencmode=disable");
    tl_pg *c = (tl_pg *)1;
    int rc = tl_pg_connect(&c, ci);
    TINY_ASSERT_EQ(rc, -ECONNREFUSED);
    TINY_ASSERT_EQ(c, NULL);
    TINY_ASSERT_STR_CONTAINS(tl_fail_message(rc), "localhost");
    return 0;
}

TINY_TEST(host_name_resolved_and_connected)
{
    int before = count_fds();
    run(main_host_name);
    TINY_ASSERT_EQ(count_fds(), before);
}

/* ---- no fd leaked ------------------------------------------------------ */

static int main_everything(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn();
    int rc;
    TL_WITH_TIMEOUT(0.2, &rc)
    {
        rc = tl_pg_query(c, NULL, "SELECT pg_sleep(100)", 0, NULL);
    }
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    tl_gen *g;
    TINY_ASSERT_EQ(tl_pg_stream(&g, c, "SELECT generate_series(1, 10000)",
                                0, NULL), 0);
    void *v;
    TINY_ASSERT_EQ(tl_gen_next(g, &v), 0);
    TINY_ASSERT_EQ(tl_gen_close(g), 0);
    expect_usable(c);
    tl_pg_close(c);
    tl_pg *bad;
    TINY_ASSERT(tl_pg_connect(&bad, "host=/nonexistent-dir user=x") < 0);
    tl_pg_pool *p;
    TINY_ASSERT_EQ(tl_pg_pool_new(&p, g_ci, 2), 0);
    TINY_ASSERT_EQ(tl_pg_pool_acquire(p, &c), 0);
    TINY_ASSERT_EQ(tl_pg_pool_free(p), -EBUSY);
    TINY_ASSERT_EQ(tl_pg_pool_release(p, c), 0);
    TINY_ASSERT_EQ(tl_pg_pool_free(p), 0);
    return 0;
}

TINY_TEST(no_fd_leaked)
{
    int before = count_fds();
    run(main_everything);
    TINY_ASSERT_EQ(count_fds(), before);
}

/* ---- the server stops mid-query (last: it stops the server) ---------- */

static int main_server_stops(void *arg)
{
    (void)arg;
    tl_pg *c = open_conn();
    tl_task t;
    TINY_ASSERT_EQ(tl_spawn(&t, sleeper, c), 0);
    TINY_ASSERT_EQ(tl_sleep(0.2), 0);
    TINY_ASSERT_EQ(kill(g_pm, SIGINT), 0); /* fast shutdown */
    int st;
    TINY_ASSERT_EQ(tl_join(t, &st), 0);
    TINY_ASSERT(st == -ECONNRESET || st == -EREMOTEIO);
    TINY_ASSERT(tl_pg_broken(c));
    TINY_ASSERT_EQ(tl_pg_close(c), 0);
    /* And it is gone: a clear error, not a hang. */
    for (int i = 0; i < 200 && kill(g_pm, 0) == 0; i++) {
        /* the postmaster is our parent's child: wait until it stops
         * answering (its socket goes away) */
        tl_pg *d;
        int rc = tl_pg_connect(&d, g_ci);
        if (rc < 0) break;
        tl_pg_close(d);
        TINY_ASSERT_EQ(tl_sleep(0.05), 0);
    }
    tl_pg *d = NULL;
    int rc = tl_pg_connect(&d, g_ci);
    TINY_ASSERT(rc == -ECONNREFUSED || rc == -ECONNABORTED);
    TINY_ASSERT_EQ(d, NULL);
    return 0;
}

TINY_TEST(server_stopped_mid_query)
{
    int before = count_fds();
    run(main_server_stops);
    TINY_ASSERT_EQ(count_fds(), before);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = start_server();
    if (rc != 0) {
        stop_server();
        return rc;
    }
    if (!getenv("TINY_TIMEOUT"))
        setenv("TINY_TIMEOUT", TULIP_TEST_SANITIZED ? "60" : "30", 1);
    rc = tiny_main("test_pg", argc, argv);
    stop_server();
    return rc;
}
