/* Servers (tulip/server.h): a handler task per connection over TCP v4,
 * v6 and Unix sockets, the bound port through tl_group_start, graceful
 * shutdown (a busy connection finishes within the grace period, an idle
 * one is cancelled after it), the connection limit, a silent client cut
 * off by a server-side deadline, a client that resets before it is
 * accepted, a full fd table in a child process (the server reports once
 * and keeps serving), and 10,000 concurrent connections — with no fd
 * leaked. Runs on each backend. */
#include "net_helpers.h"

#include <math.h>
#include <sys/resource.h>

#define T_OUT 60 /* one timeout for every test of the file */

/* ---- echo: a line back, upper-cased, per connection ------------------- */

struct counts {
    int handlers;   /* handlers started */
    int live, peak; /* handlers running now / at most */
    int done;       /* handlers that returned */
    int last_rc;
};

static int echo_line(tl_server_conn *c, void *arg)
{
    struct counts *k = arg;
    k->handlers++;
    if (++k->live > k->peak) k->peak = k->live;
    tl_stream *s = tl_server_conn_stream(c);
    cr_assert(s != NULL);
    cr_expect_eq(tl_server_conn_fd(c), -1, "the stream owns the fd");
    char line[128];
    ssize_t n;
    while ((n = tl_stream_readline(s, line, sizeof line)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if (line[i] >= 'a' && line[i] <= 'z') line[i] -= 32;
        cr_expect_eq(tl_stream_write(s, line, (size_t)n), 0);
        if ((n = tl_stream_drain(s)) < 0) break;
    }
    k->live--;
    k->done++;
    return n < 0 ? (int)n : 0;
}

/* A client: connect, send "hello <i>\n", expect it back upper-cased. */
struct client {
    tl_sockaddr addr;
    int i;
    int ok;
};

static int client_once(void *arg)
{
    struct client *cl = arg;
    int fd = tl_net_connect(&cl->addr, SOCK_STREAM);
    cr_assert_geq(fd, 0, "connect: %s", tl_strerror(fd));
    char msg[32], want[32], got[32];
    int len = snprintf(msg, sizeof msg, "hello %d\n", cl->i);
    snprintf(want, sizeof want, "HELLO %d\n", cl->i);
    cr_assert_eq(tl_send(fd, msg, (size_t)len, 0), len);
    int have = 0;
    while (have < len) {
        ssize_t n = tl_recv(fd, got + have, (size_t)(len - have), 0);
        cr_assert_gt(n, 0, "recv: %s", tl_strerror((int)n));
        have += (int)n;
    }
    cr_expect_eq(memcmp(got, want, (size_t)len), 0);
    cr_expect_eq(tl_close(fd), 0);
    cl->ok = 1;
    return 0;
}

struct family_case {
    tl_sockaddr addr;
    struct counts k;
    int port;
};

#define NCLIENTS 20

static int main_family(void *arg)
{
    struct family_case *fc = arg;
    tl_server_opts o = {.addr = &fc->addr, .handler = echo_line,
                        .arg = &fc->k};
    int rc;
    tl_group g;
    cr_assert_eq(tl_group_enter(&g), 0);
    intptr_t port = -1;
    rc = tl_group_start(g, tl_serve, &o, &port);
    cr_assert_eq(rc, 0, "start: %s", tl_strerror(rc));
    fc->port = (int)port;
    struct client cl[NCLIENTS];
    tl_group cg;
    cr_assert_eq(tl_group_enter(&cg), 0);
    for (int i = 0; i < NCLIENTS; i++) {
        cl[i] = (struct client){.addr = fc->addr, .i = i};
        if (fc->addr.u.sa.sa_family != AF_UNIX)
            cr_assert_eq(tl_sockaddr_port(&fc->addr), 0);
        if (fc->addr.u.sa.sa_family == AF_INET)
            cl[i].addr.u.in.sin_port = htons((uint16_t)port);
        else if (fc->addr.u.sa.sa_family == AF_INET6)
            cl[i].addr.u.in6.sin6_port = htons((uint16_t)port);
        cr_assert_eq(tl_group_spawn(cg, client_once, &cl[i]), 0);
    }
    cr_assert_eq(tl_group_wait(cg, 0, NULL), 0);
    for (int i = 0; i < NCLIENTS; i++) cr_expect(cl[i].ok);
    /* The clients are gone; the handlers see the end and return. */
    while (fc->k.done < NCLIENTS) cr_assert_eq(tl_sleep(0.001), 0);
    tl_group_cancel(g);
    return tl_group_wait(g, 0, NULL);
}

static void run_family(tl_sockaddr *a, int want_port)
{
    struct family_case fc = {.addr = *a};
    tl_test_run_no_leak(main_family, &fc, 0);
    cr_expect_eq(fc.k.handlers, NCLIENTS, "one handler per connection");
    cr_expect_eq(fc.k.done, NCLIENTS);
    if (want_port)
        cr_expect_gt(fc.port, 0, "the bound port comes back from start");
    else
        cr_expect_eq(fc.port, 0);
}

Test(server, tcp4_handler_per_connection_port_through_group_start,
     .timeout = T_OUT)
{
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    run_family(&a, 1);
}

Test(server, tcp6_and_unix_servers, .timeout = T_OUT)
{
    tl_sockaddr a;
    if (tl_test_have_ipv6()) {
        cr_assert_eq(tl_sockaddr_ip(&a, "::1", 0), 0);
        run_family(&a, 1);
    } else {
        cr_log_warn("no IPv6 loopback here: IPv6 part skipped");
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/tulip-server-%d.sock", (int)getpid());
    cr_assert_eq(tl_sockaddr_unix(&a, path), 0);
    run_family(&a, 0);
    unlink(path);
    snprintf(path, sizeof path, "@tulip-server-%d", (int)getpid());
    cr_assert_eq(tl_sockaddr_unix(&a, path), 0);
    run_family(&a, 0);
}

/* ---- bad input ------------------------------------------------------- */

static int nop_handler(tl_server_conn *c, void *arg)
{
    (void)c;
    (void)arg;
    return 0;
}

static int main_bad_input(void *arg)
{
    (void)arg;
    tl_server *s = NULL;
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    tl_server_opts o = {.addr = &a, .handler = nop_handler};
    cr_expect_eq(tl_server_open(NULL, &o), -EINVAL);
    cr_expect_eq(tl_server_open(&s, NULL), -EINVAL);
    o.handler = NULL;
    cr_expect_eq(tl_server_open(&s, &o), -EINVAL);
    o.handler = nop_handler;
    o.max_conns = -1;
    cr_expect_eq(tl_server_open(&s, &o), -EINVAL);
    o.max_conns = 0;
    o.conn_timeout = NAN;
    cr_expect_eq(tl_server_open(&s, &o), -EINVAL);
    o.conn_timeout = 0;
    /* A socket that is not listening stays the caller's. */
    int fd = tl_socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    tl_server_opts of = {.fd = fd, .handler = nop_handler};
    cr_expect_eq(tl_server_open(&s, &of), -EINVAL);
    cr_expect_eq(tl_close(fd), 0);
    of.fd = -1;
    cr_expect_eq(tl_server_open(&s, &of), -EINVAL);
    /* An address in use. */
    cr_assert_eq(tl_server_open(&s, &o), 0);
    tl_sockaddr used = *tl_server_addr(s);
    tl_server *s2;
    tl_server_opts o2 = {.addr = &used, .handler = nop_handler};
    cr_expect_eq(tl_server_open(&s2, &o2), -EADDRINUSE);
    cr_expect_gt(tl_server_port(s), 0);
    /* Shut down before serving: serve refuses, wait_closed returns. */
    cr_expect_eq(tl_server_shutdown(s, NAN), -EINVAL);
    cr_expect_eq(tl_server_shutdown(s, 1.0), 0);
    cr_expect_eq(tl_server_serve(s), TL_ECLOSED);
    cr_expect_eq(tl_server_wait_closed(s), 0);
    cr_expect_eq(tl_server_free(s), 0);
    cr_expect_eq(tl_server_free(NULL), 0);
    cr_expect_eq(tl_server_serve(NULL), -EINVAL);
    cr_expect_eq(tl_server_port(NULL), -EINVAL);
    return 0;
}

Test(server, bad_input_gets_clear_errors, .timeout = T_OUT)
{
    tl_test_run_no_leak(main_bad_input, NULL, 0);
}

/* ---- graceful shutdown ------------------------------------------------- */

struct grace {
    tl_server *srv;
    int busy_in, busy_done, idle_in, idle_rc;
};

/* "busy\n": work for 1 s, answer "done\n". Anything else: wait for more
 * (an idle connection). */
static int grace_handler(tl_server_conn *c, void *arg)
{
    struct grace *gr = arg;
    tl_stream *s = tl_server_conn_stream(c);
    char line[64];
    ssize_t n = tl_stream_readline(s, line, sizeof line);
    if (n > 0 && strcmp(line, "busy\n") == 0) {
        gr->busy_in = 1;
        int rc = tl_sleep(1.0);
        cr_expect_eq(rc, 0, "the busy handler must finish: %s",
                     tl_strerror(rc));
        cr_expect_eq(tl_stream_write(s, "done\n", 5), 0);
        gr->busy_done = 1;
        return 0;
    }
    gr->idle_in = 1;
    n = tl_stream_readline(s, line, sizeof line);
    gr->idle_rc = (int)n;
    return (int)n;
}

static int serve_task(void *arg) { return tl_server_serve(arg); }

/* Shut srv down (grace seconds), wait until it is closed, join its serve
 * task st and free it, each step succeeding. */
static void stop_server(tl_server *srv, double grace, tl_task st)
{
    cr_expect_eq(tl_server_shutdown(srv, grace), 0);
    cr_expect_eq(tl_server_wait_closed(srv), 0);
    cr_expect_eq(tl_test_join(st), 0);
    cr_expect_eq(tl_server_free(srv), 0);
}

static int main_grace(void *arg)
{
    struct grace *gr = arg;
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    tl_server_opts o = {.addr = &a, .handler = grace_handler, .arg = gr};
    cr_assert_eq(tl_server_open(&gr->srv, &o), 0);
    tl_sockaddr addr = *tl_server_addr(gr->srv);
    tl_task st = tl_test_spawn(serve_task, gr->srv);
    int busy = tl_net_connect(&addr, SOCK_STREAM);
    int idle = tl_net_connect(&addr, SOCK_STREAM);
    cr_assert_geq(busy, 0);
    cr_assert_geq(idle, 0);
    cr_assert_eq(tl_send(busy, "busy\n", 5, 0), 5);
    cr_assert_eq(tl_send(idle, "idle\n", 5, 0), 5);
    while (!gr->busy_in || !gr->idle_in) cr_assert_eq(tl_sleep(0.001), 0);
    double t0 = tl_now();
    cr_expect_eq(tl_server_shutdown(gr->srv, 5.0), 0);
    /* Not accepting any more: the listener is closed. */
    tl_test_settle();
    int late = tl_net_connect(&addr, SOCK_STREAM);
    cr_expect_eq(late, -ECONNREFUSED, "a connect after shutdown: %s",
                 tl_strerror(late));
    if (late >= 0) TL_IGNORE(tl_close(late));
    int ncancelled = tl_server_wait_closed(gr->srv);
    double took = tl_now() - t0;
    cr_expect_eq(ncancelled, 1, "the idle connection is cancelled");
    cr_expect(took >= 5.0 && took < 6.0, "shutdown took %.3f s", took);
    cr_expect(gr->busy_done);
    cr_expect_eq(gr->idle_rc, -ECANCELED);
    char b[8];
    cr_expect_eq(tl_recv(busy, b, sizeof b, 0), 5);
    cr_expect_eq(memcmp(b, "done\n", 5), 0);
    cr_expect_eq(tl_recv(busy, b, sizeof b, 0), 0);
    cr_expect_eq(tl_recv(idle, b, sizeof b, 0), 0, "idle: closed");
    tl_server_stats s;
    cr_assert_eq(tl_server_stats_get(gr->srv, &s), 0);
    cr_expect_eq(s.accepted, 2);
    cr_expect_eq(s.cancelled, 1);
    cr_expect_eq(s.active, 0);
    cr_expect_eq(tl_test_join(st), 0, "serve returns 0 after a shutdown");
    cr_expect_eq(tl_server_free(gr->srv), 0);
    cr_expect_eq(tl_close(busy), 0);
    cr_expect_eq(tl_close(idle), 0);
    return 0;
}

Test(server, graceful_shutdown_lets_busy_finish_and_cancels_idle,
     .timeout = T_OUT)
{
    struct grace gr = {0};
    tl_test_run_no_leak(main_grace, &gr, 1);
}

/* A server whose task is cancelled (Trio style) cancels its connections,
 * and a second shutdown with a shorter grace period wins. */
static int main_cancel_serve(void *arg)
{
    struct grace *gr = arg;
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    tl_server_opts o = {.addr = &a, .handler = grace_handler, .arg = gr};
    cr_assert_eq(tl_server_open(&gr->srv, &o), 0);
    tl_sockaddr addr = *tl_server_addr(gr->srv);
    tl_task st = tl_test_spawn(serve_task, gr->srv);
    int idle = tl_net_connect(&addr, SOCK_STREAM);
    cr_assert_geq(idle, 0);
    cr_assert_eq(tl_send(idle, "idle\n", 5, 0), 5);
    while (!gr->idle_in) cr_assert_eq(tl_sleep(0.001), 0);
    double t0 = tl_now();
    cr_expect_eq(tl_server_shutdown(gr->srv, 100.0), 0);
    cr_assert_eq(tl_sleep(1.0), 0);
    cr_expect_eq(tl_server_shutdown(gr->srv, 1.0), 0); /* sooner */
    cr_expect_eq(tl_server_wait_closed(gr->srv), 1);
    double took = tl_now() - t0;
    cr_expect(took >= 2.0 && took < 3.0, "took %.3f s", took);
    cr_expect_eq(tl_test_join(st), 0);
    cr_expect_eq(tl_server_free(gr->srv), 0);
    TL_IGNORE(tl_close(idle));
    /* Cancel the serving task: the connection is cancelled too. */
    gr->idle_in = 0;
    cr_assert_eq(tl_server_open(&gr->srv, &o), 0);
    addr = *tl_server_addr(gr->srv);
    st = tl_test_spawn(serve_task, gr->srv);
    idle = tl_net_connect(&addr, SOCK_STREAM);
    cr_assert_geq(idle, 0);
    cr_assert_eq(tl_send(idle, "idle\n", 5, 0), 5);
    while (!gr->idle_in) cr_assert_eq(tl_sleep(0.001), 0);
    cr_expect_eq(tl_server_free(gr->srv), -EBUSY, "still serving");
    cr_expect_eq(tl_cancel(st), 0);
    cr_expect_eq(tl_test_join(st), -ECANCELED);
    cr_expect_eq(gr->idle_rc, -ECANCELED);
    char b[4];
    cr_expect_eq(tl_recv(idle, b, sizeof b, 0), 0);
    cr_expect_eq(tl_server_free(gr->srv), 0);
    TL_IGNORE(tl_close(idle));
    return 0;
}

Test(server, cancelling_the_server_task_or_a_shorter_grace, .timeout = T_OUT)
{
    struct grace gr = {0};
    tl_test_run_no_leak(main_cancel_serve, &gr, 1);
}

/* ---- the connection limit ----------------------------------------------- */

struct limit {
    int live, peak, served;
};

static int limited_handler(tl_server_conn *c, void *arg)
{
    struct limit *lm = arg;
    if (++lm->live > lm->peak) lm->peak = lm->live;
    int rc = tl_sleep(0.1);
    lm->live--;
    if (rc < 0) return rc;
    lm->served++;
    return tl_send(tl_server_conn_fd(c), "ok", 2, 0) == 2 ? 0 : -EIO;
}

static int limit_client(void *arg)
{
    int fd = tl_net_connect(arg, SOCK_STREAM);
    cr_assert_geq(fd, 0);
    char b[4];
    cr_expect_eq(tl_recv(fd, b, sizeof b, 0), 2);
    cr_expect_eq(tl_close(fd), 0);
    return 0;
}

static int main_limit(void *arg)
{
    struct limit *lm = arg;
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    tl_server_opts o = {.addr = &a, .handler = limited_handler, .arg = lm,
                        .max_conns = 3};
    tl_server *srv;
    cr_assert_eq(tl_server_open(&srv, &o), 0);
    tl_sockaddr addr = *tl_server_addr(srv);
    tl_task st = tl_test_spawn(serve_task, srv);
    tl_group g;
    cr_assert_eq(tl_group_enter(&g), 0);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(tl_group_spawn(g, limit_client, &addr), 0);
    cr_assert_eq(tl_group_wait(g, 0, NULL), 0);
    tl_server_stats s;
    cr_assert_eq(tl_server_stats_get(srv, &s), 0);
    cr_expect_eq(s.peak, 3);
    cr_expect_eq(s.accepted, 12);
    stop_server(srv, 1.0, st);
    return 0;
}

Test(server, connection_limit_is_honoured, .timeout = T_OUT)
{
    struct limit lm = {0};
    tl_test_run_no_leak(main_limit, &lm, 1);
    cr_expect_eq(lm.peak, 3, "at most 3 handlers at once");
    cr_expect_eq(lm.served, 12);
}

/* ---- faults -------------------------------------------------------------- */

static int silent_handler(tl_server_conn *c, void *arg)
{
    int *rc = arg;
    char b[8];
    *rc = (int)tl_recv(tl_server_conn_fd(c), b, sizeof b, 0);
    return *rc;
}

static int main_silent(void *arg)
{
    int *hrc = arg;
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    tl_server_opts o = {.addr = &a, .handler = silent_handler, .arg = hrc,
                        .conn_timeout = 2.0};
    tl_server *srv;
    cr_assert_eq(tl_server_open(&srv, &o), 0);
    tl_sockaddr addr = *tl_server_addr(srv);
    tl_task st = tl_test_spawn(serve_task, srv);
    int fd = tl_net_connect(&addr, SOCK_STREAM);
    cr_assert_geq(fd, 0);
    double t0 = tl_now();
    char b[4];
    cr_expect_eq(tl_recv(fd, b, sizeof b, 0), 0, "the server hangs up");
    double took = tl_now() - t0;
    cr_expect(took >= 2.0 && took < 3.0, "cut off after %.3f s", took);
    tl_server_stats s;
    cr_assert_eq(tl_server_stats_get(srv, &s), 0);
    cr_expect_eq(s.failed, 1);
    stop_server(srv, 0, st);
    cr_expect_eq(tl_close(fd), 0);
    return 0;
}

Test(server, a_silent_client_is_cut_off_by_the_server_deadline,
     .timeout = T_OUT)
{
    int hrc = 1;
    tl_test_run_no_leak(main_silent, &hrc, 1);
    cr_expect_eq(hrc, -ECANCELED, "the handler's read was cancelled");
}

static int main_reset(void *arg)
{
    struct counts *k = arg;
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    tl_server_opts o = {.addr = &a, .handler = echo_line, .arg = k};
    tl_server *srv;
    cr_assert_eq(tl_server_open(&srv, &o), 0);
    tl_sockaddr addr = *tl_server_addr(srv);
    /* Clients that connect (the kernel's backlog takes them) and reset
     * before the server accepts them. */
    for (int i = 0; i < 5; i++) {
        int fd = tl_net_connect(&addr, SOCK_STREAM);
        cr_assert_geq(fd, 0);
        struct linger lg = {1, 0};
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg),
                     0);
        cr_expect_eq(tl_close(fd), 0); /* RST */
    }
    tl_task st = tl_test_spawn(serve_task, srv);
    struct client cl = {.addr = addr, .i = 7};
    cr_expect_eq(client_once(&cl), 0);
    cr_expect(cl.ok, "the server keeps serving");
    stop_server(srv, 5.0, st);
    return 0;
}

Test(server, clients_that_reset_before_accept, .timeout = T_OUT)
{
    struct counts k = {0};
    tl_test_run_no_leak(main_reset, &k, 0);
}

/* A full fd table, in a child with RLIMIT_NOFILE lowered: the server
 * reports once, backs off, and serves every client once fds free up. */
#define NFULL 4

static int main_fd_full(void *arg)
{
    (void)arg;
    struct counts k = {0};
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    tl_server_opts o = {.addr = &a, .handler = echo_line, .arg = &k};
    tl_server *srv;
    cr_assert_eq(tl_server_open(&srv, &o), 0);
    tl_sockaddr addr = *tl_server_addr(srv);
    tl_task st = tl_test_spawn(serve_task, srv);
    int cfd[NFULL];
    for (int i = 0; i < NFULL; i++) {
        cfd[i] = tl_socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_geq(cfd[i], 0);
    }
    static int fill[512];
    int nfill = 0;
    while (nfill < 512) {
        int d = dup(0);
        if (d < 0) break;
        fill[nfill++] = d;
    }
    cr_assert(nfill > 0 && nfill < 512, "the table filled (%d)", nfill);
    for (int i = 0; i < NFULL; i++)
        cr_assert_eq(tl_connect(cfd[i], &addr.u.sa, addr.len), 0);
    cr_assert_eq(tl_sleep(0.5), 0); /* accept meets EMFILE, backs off */
    for (int i = 0; i < nfill; i++) close(fill[i]);
    for (int i = 0; i < NFULL; i++) {
        cr_assert_eq(tl_send(cfd[i], "hi\n", 3, 0), 3);
        char b[4];
        cr_expect_eq(tl_recv(cfd[i], b, sizeof b, 0), 3);
        cr_expect_eq(memcmp(b, "HI\n", 3), 0);
        cr_expect_eq(tl_close(cfd[i]), 0);
    }
    tl_server_stats s;
    cr_assert_eq(tl_server_stats_get(srv, &s), 0);
    stop_server(srv, 5.0, st);
    printf("served=%llu episodes=%llu\n", (unsigned long long)s.accepted,
           (unsigned long long)s.fd_full);
    return 0;
}

static void child_fd_full(void *arg)
{
    (void)arg;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 128;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        printf("setrlimit failed\n");
        return;
    }
    printf("rc=%d\n", tl_run(main_fd_full, NULL));
}

Test(server, a_full_fd_table_is_survived_and_reported_once, .timeout = T_OUT)
{
    char out[8192];
    int st = tl_test_child(child_fd_full, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "rc=0");
    TL_EXPECT_OUT(out, "served=4 episodes=1");
    cr_expect_eq(tl_test_count_of(out, "accept failed with EMFILE"), 1,
                 "reported once:\n%s", out);
}

/* ---- many connections at once ------------------------------------------- */

static int many_n;
static int many_connected;
static tl_event many_go;
static tl_sem many_connecting;

static int many_client(void *arg)
{
    /* Connect a few hundred at a time: thousands of SYNs at once overflow
     * the listen queue (somaxconn), and the kernel drops the SYNs that
     * the clients then resend only after 1, 3, 7... seconds. */
    int fd = tl_sem_acquire(&many_connecting);
    if (fd < 0) return fd;
    fd = tl_net_connect(arg, SOCK_STREAM);
    TL_IGNORE(tl_sem_release(&many_connecting));
    if (fd < 0) return fd;
    many_connected++;
    int rc = tl_event_wait(&many_go); /* every connection open at once */
    char got[8];
    if (rc == 0 && tl_send(fd, "many\n", 5, 0) != 5) rc = -EIO;
    if (rc == 0 && tl_recv(fd, got, 5, 0) != 5)
        rc = -EPROTO;
    if (rc == 0 && memcmp(got, "MANY\n", 5) != 0) rc = -EPROTO;
    TL_IGNORE(tl_close(fd));
    return rc;
}

static int main_many(void *arg)
{
    struct counts *k = arg;
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    tl_server_opts o = {.addr = &a, .handler = echo_line, .arg = k,
                        .backlog = 4096};
    tl_server *srv;
    cr_assert_eq(tl_server_open(&srv, &o), 0);
    tl_sockaddr addr = *tl_server_addr(srv);
    tl_task st = tl_test_spawn(serve_task, srv);
    cr_assert_eq(tl_event_init(&many_go), 0);
    cr_assert_eq(tl_sem_init(&many_connecting, 256), 0);
    tl_group g;
    int rc = 0;
    TL_WITH_GROUP(&g, &rc) {
        for (int i = 0; i < many_n && rc == 0; i++)
            rc = tl_group_spawn(g, many_client, &addr);
        /* Bounded (60 s of 2 ms naps), for a loaded machine. */
        for (int i = 0; i < 30000 && rc == 0 &&
                        !(many_connected == many_n && k->handlers == many_n);
             i++)
            rc = tl_sleep(0.002);
        cr_expect_eq(many_connected, many_n);
        cr_expect_eq(k->handlers, many_n);
        cr_expect_eq(k->peak, many_n, "all %d connections open at once",
                     many_n);
        TL_IGNORE(tl_event_set(&many_go));
    }
    cr_expect_eq(rc, 0, "clients: %s", tl_strerror(rc));
    cr_expect_eq(tl_server_shutdown(srv, 10.0), 0);
    cr_expect_eq(tl_server_wait_closed(srv), 0);
    cr_expect_eq(tl_test_join(st), 0);
    cr_expect_eq(k->done, many_n);
    TL_IGNORE(tl_event_destroy(&many_go));
    TL_IGNORE(tl_sem_destroy(&many_connecting));
    cr_expect_eq(tl_server_free(srv), 0);
    return 0;
}

Test(server, ten_thousand_concurrent_connections, .timeout = T_OUT)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    many_n = TL_TEST_SCALE(10000);
    if ((rlim_t)(2 * many_n + 100) > rl.rlim_cur)
        many_n = ((int)rl.rlim_cur - 100) / 2;
    if (many_n < 100)
        cr_skip_test("RLIMIT_NOFILE too low (%ld)", (long)rl.rlim_cur);
    struct counts k = {0};
    tl_test_run_no_leak(main_many, &k, 0);
}

/* A listening socket the caller made with plain socket(2) (blocking):
 * the accept loop must never block the loop's thread in accept4 once the
 * backlog is empty. It serves one client, then shuts down; with a
 * blocking accept4 the loop would hang (and this test time out). */
static int main_blocking_listener(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    cr_assert_eq(bind(fd, &a.u.sa, a.len), 0);
    cr_assert_eq(listen(fd, 16), 0);
    struct counts k = {0};
    tl_server *s;
    tl_server_opts o = {.fd = fd, .handler = echo_line, .arg = &k};
    cr_assert_eq(tl_server_open(&s, &o), 0);
    tl_task t = tl_test_spawn((tl_fn)tl_server_serve, s);
    tl_test_settle(); /* the backlog is empty: the server must wait */
    struct client cl = {.addr = *tl_server_addr(s)};
    client_once(&cl);
    cr_expect(cl.ok);
    cr_expect_eq(tl_server_shutdown(s, 5.0), 0);
    cr_expect_geq(tl_server_wait_closed(s), 0);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(tl_server_free(s), 0);
    return 0;
}

Test(server, a_blocking_listener_never_blocks_the_loop, .timeout = T_OUT)
{
    tl_test_run_no_leak(main_blocking_listener, NULL, 0);
}
