/* Multishot requests on io_uring (and the same behaviour on epoll, where
 * the paths they replace run): a server's multishot accept — a burst of
 * clients larger than the accept loop takes in one go, a shutdown in the
 * middle of it (fds accepted and never taken are closed, none leaks), a
 * connection limit that ends and re-arms the request for every client —
 * and the off switch (TULIP_MULTISHOT_ACCEPT=0). Runs on each backend. */
#include "net_helpers.h"

#include <poll.h>
#include <stdlib.h>

#define T_OUT 60 /* one timeout for every test of the file */

/* ---- multishot accept ------------------------------------------------ */

static int echo_once(tl_server_conn *c, void *arg)
{
    int *served = arg;
    tl_stream *s = tl_server_conn_stream(c);
    char line[64];
    ssize_t n = tl_stream_readline(s, line, sizeof line);
    if (n <= 0) return (int)n;
    int rc = tl_stream_write(s, line, (size_t)n);
    if (rc == 0) (*served)++;
    return rc;
}

static int serve_task(void *arg) { return tl_server_serve(arg); }

#define BURST 150

struct burst {
    int served;
    int answered, ended; /* clients that got their line back / an end */
    int backlog_ok;
};

/* BURST clients connect at once (plain non-blocking connects: the kernel
 * completes them into the backlog) and each sends a line; the server is
 * shut down while the burst is being accepted. Every client gets its
 * line back or the end of the stream (a reset counts as an end): none
 * hangs, and once the server is closed no fd is left. */
static int main_burst(void *arg)
{
    struct burst *b = arg;
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    tl_server_opts o = {.addr = &a, .handler = echo_once, .arg = &b->served,
                        .backlog = 512};
    tl_server *srv;
    cr_assert_eq(tl_server_open(&srv, &o), 0);
    const tl_sockaddr *sa = tl_server_addr(srv);
    tl_task st = tl_test_spawn(serve_task, srv);
    cr_expect_eq(tl_yield(), 0); /* the server arms its accept */
    int fds[BURST];
    for (int i = 0; i < BURST; i++) {
        fds[i] = socket(sa->u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fds[i], 0);
        cr_assert_eq(connect(fds[i], &sa->u.sa, sa->len), 0, "connect: %s",
                     strerror(errno));
        cr_assert_eq(send(fds[i], "hi\n", 3, MSG_NOSIGNAL), 3);
    }
    /* Let some connections in, then stop in the middle of the burst. */
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_server_shutdown(srv, 5.0), 0);
    cr_expect_geq(tl_server_wait_closed(srv), 0);
    cr_expect_eq(tl_test_join(st), 0);
    cr_expect_eq(tl_server_free(srv), 0);
    int wait_ms = 10000; /* once one client hangs, do not wait for more */
    for (int i = 0; i < BURST; i++) {
        char got[8];
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        if (poll(&p, 1, wait_ms) != 1) {
            cr_expect(0, "client %d hangs", i);
            wait_ms = 0;
        }
        ssize_t n = recv(fds[i], got, sizeof got, MSG_DONTWAIT);
        if (n == 3 && memcmp(got, "hi\n", 3) == 0)
            b->answered++;
        else if (n == 0 || (n < 0 && errno == ECONNRESET))
            b->ended++;
        else
            cr_expect(0, "client %d: recv says %zd (%s)", i, n,
                      n < 0 ? strerror(errno) : "");
        close(fds[i]);
    }
    return 0;
}

static void run_burst(void)
{
    int before = tl_test_count_fds();
    struct burst b = {0};
    cr_assert_eq(tl_run(main_burst, &b), 0);
    cr_expect_eq(b.answered + b.ended, BURST);
    cr_expect_eq(b.answered, b.served);
    cr_expect_eq(tl_test_count_fds(), before, "fds leaked");
}

Test(multishot, accept_burst_with_a_shutdown_midway_loses_and_leaks_nothing,
     .timeout = T_OUT)
{
    run_burst();
}

Test(multishot, accept_burst_with_the_switch_off, .timeout = T_OUT)
{
    setenv("TULIP_MULTISHOT_ACCEPT", "0", 1);
    run_burst();
}

/* max_conns 1: the request ends (cancelled) each time the limit is
 * reached and is armed again when the connection ends; clients waiting in
 * the backlog meanwhile are all served, one at a time. */
#define SEQ 20

static int main_limit(void *arg)
{
    int *served = arg;
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    tl_server_opts o = {.addr = &a, .handler = echo_once, .arg = served,
                        .max_conns = 1};
    tl_server *srv;
    cr_assert_eq(tl_server_open(&srv, &o), 0);
    const tl_sockaddr *sa = tl_server_addr(srv);
    tl_task st = tl_test_spawn(serve_task, srv);
    int fds[SEQ];
    for (int i = 0; i < SEQ; i++) {
        fds[i] = tl_net_connect(sa, SOCK_STREAM);
        cr_assert_geq(fds[i], 0);
        cr_assert_eq(tl_send(fds[i], "hi\n", 3, 0), 3);
    }
    for (int i = 0; i < SEQ; i++) {
        char got[8];
        cr_expect_eq(tl_recv(fds[i], got, 3, MSG_WAITALL), 3);
        cr_expect_eq(memcmp(got, "hi\n", 3), 0);
        cr_expect_eq(tl_close(fds[i]), 0);
    }
    tl_server_stats s;
    cr_assert_eq(tl_server_stats_get(srv, &s), 0);
    cr_expect_eq(s.peak, 1, "one connection at a time");
    cr_expect_eq(tl_server_shutdown(srv, 0), 0);
    cr_expect_eq(tl_server_wait_closed(srv), 0);
    cr_expect_eq(tl_test_join(st), 0);
    cr_expect_eq(tl_server_free(srv), 0);
    return 0;
}

Test(multishot, accept_rearmed_around_a_connection_limit, .timeout = T_OUT)
{
    int before = tl_test_count_fds();
    int served = 0;
    cr_assert_eq(tl_run(main_limit, &served), 0);
    cr_expect_eq(served, SEQ);
    cr_expect_eq(tl_test_count_fds(), before, "fds leaked");
}
