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

/* ---- multishot receive with the buffer ring -------------------------- */

/* A pattern byte of client c at offset i: every byte checked in place. */
static unsigned char pat(int c, size_t i)
{
    return (unsigned char)(i * 7 + (size_t)c * 13 + (i >> 9));
}

static int echo_all(tl_server_conn *c, void *arg)
{
    (void)arg;
    tl_stream *s = tl_server_conn_stream(c);
    char buf[3000]; /* not a multiple of the ring's buffers */
    ssize_t n;
    while ((n = tl_stream_read(s, buf, sizeof buf)) > 0) {
        int rc = tl_stream_write(s, buf, (size_t)n);
        if (rc == 0) rc = tl_stream_drain(s);
        if (rc < 0) return rc;
    }
    if (n == 0) return tl_stream_write_eof(s);
    return (int)n;
}

#define NCONN 12
#define PER_CONN ((size_t)96 * 1024)

struct echo_client {
    const tl_sockaddr *addr;
    int c;
    int ok;
};

static int echo_client(void *arg)
{
    struct echo_client *ec = arg;
    int fd = tl_net_connect(ec->addr, SOCK_STREAM);
    cr_expect_geq(fd, 0);
    if (fd < 0) return fd;
    unsigned char *out = malloc(PER_CONN), *in = malloc(PER_CONN);
    for (size_t i = 0; i < PER_CONN; i++) out[i] = pat(ec->c, i);
    /* Send in pieces, reading what came back as we go (the server writes
     * without waiting for the client to read). */
    size_t sent = 0, got = 0;
    while (sent < PER_CONN) {
        size_t k = PER_CONN - sent < 7000 ? PER_CONN - sent : 7000;
        ssize_t n = tl_send(fd, out + sent, k, 0);
        cr_expect_gt(n, 0, "send: %s", tl_strerror((int)n));
        if (n <= 0) break;
        sent += (size_t)n;
        n = tl_recv(fd, in + got, PER_CONN - got, MSG_DONTWAIT);
        if (n > 0) got += (size_t)n;
    }
    cr_expect_eq(tl_shutdown(fd, SHUT_WR), 0);
    while (got < PER_CONN) {
        ssize_t n = tl_recv(fd, in + got, PER_CONN - got, 0);
        cr_expect_gt(n, 0, "recv: %s after %zu", tl_strerror((int)n), got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got == PER_CONN) {
        char x;
        cr_expect_eq(tl_recv(fd, &x, 1, 0), 0, "the end after every byte");
    }
    size_t bad = PER_CONN;
    for (size_t i = 0; i < got; i++)
        if (in[i] != out[i]) {
            bad = i;
            break;
        }
    cr_expect_eq(bad, PER_CONN, "client %d: byte %zu differs", ec->c, bad);
    ec->ok = got == PER_CONN && bad == PER_CONN;
    free(out);
    free(in);
    (void)tl_close(fd);
    return 0;
}

static int main_echo_many(void *arg)
{
    int *ok = arg;
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    tl_server_opts o = {.addr = &a, .handler = echo_all};
    tl_server *srv;
    cr_assert_eq(tl_server_open(&srv, &o), 0);
    tl_task st = tl_test_spawn(serve_task, srv);
    struct echo_client ec[NCONN];
    tl_group g;
    cr_assert_eq(tl_group_enter(&g), 0);
    for (int i = 0; i < NCONN; i++) {
        ec[i] = (struct echo_client){.addr = tl_server_addr(srv), .c = i};
        cr_assert_eq(tl_group_spawn(g, echo_client, &ec[i]), 0);
    }
    cr_expect_eq(tl_group_wait(g, 0, NULL), 0);
    for (int i = 0; i < NCONN; i++) *ok += ec[i].ok;
    cr_expect_eq(tl_server_shutdown(srv, 5.0), 0);
    cr_expect_eq(tl_server_wait_closed(srv), 0);
    cr_expect_eq(tl_test_join(st), 0);
    tl_server_stats s;
    cr_assert_eq(tl_server_stats_get(srv, &s), 0);
    cr_expect_eq(s.failed, 0, "no handler failed");
    cr_expect_eq(tl_server_free(srv), 0);
    return 0;
}

static void run_echo_many(void)
{
    int before = tl_test_count_fds();
    int ok = 0;
    cr_assert_eq(tl_run(main_echo_many, &ok), 0);
    cr_expect_eq(ok, NCONN, "every byte of every connection came back");
    cr_expect_eq(tl_test_count_fds(), before, "fds leaked");
}

/* The default ring: many completions per loop iteration. */
Test(multishot, recv_echo_of_many_connections_is_byte_exact, .timeout = T_OUT)
{
    run_echo_many();
}

/* Two buffers for twelve busy connections: the ring runs dry all the
 * time (-ENOBUFS ends the requests, which are armed again); nothing is
 * lost or reordered. */
Test(multishot, recv_with_a_ring_of_two_buffers_survives_enobufs,
     .timeout = T_OUT)
{
    setenv("TULIP_RING_RECV_BUFS", "2", 1);
    run_echo_many();
}

Test(multishot, recv_echo_with_the_switch_off, .timeout = T_OUT)
{
    setenv("TULIP_RING_RECV", "0", 1);
    run_echo_many();
}

/* A peer that sends 1 MiB while nobody reads: the receive stops once the
 * stream holds its cap (the rest waits in the socket: back-pressure), is
 * armed again as the reader takes bytes, and every byte arrives in order.
 * A read cancelled while the request is armed loses nothing. */
#define BIG ((size_t)1024 * 1024)

static int big_writer(void *arg)
{
    int fd = *(int *)arg;
    unsigned char *b = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) b[i] = pat(99, i);
    size_t off = 0;
    while (off < BIG) {
        ssize_t n = tl_send(fd, b + off, BIG - off, 0);
        if (n <= 0) break;
        off += (size_t)n;
    }
    free(b);
    cr_expect_eq(off, BIG);
    return tl_close(fd);
}

static int cancelled_read(void *arg)
{
    tl_stream *s = arg;
    char b[16];
    return (int)tl_stream_read(s, b, sizeof b);
}

static int main_big(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, 0);
    tl_stream *s;
    cr_assert_eq(tl_stream_open(&s, sv[0], NULL), 0);
    /* A reader parked with the request armed, cancelled before any byte
     * came. */
    tl_task r = tl_test_spawn(cancelled_read, s);
    cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_cancel(r), 0);
    cr_expect_eq(tl_test_join(r), -ECANCELED);
    tl_task w = tl_test_spawn(big_writer, &sv[1]);
    for (int i = 0; i < 20; i++) cr_expect_eq(tl_sleep(0.005), 0);
    cr_expect_leq(tl_stream_buffered(s), (size_t)512 * 1024,
                  "the stream stopped receiving at its cap");
    unsigned char *in = malloc(BIG + 1);
    size_t got = 0;
    for (;;) {
        ssize_t n = tl_stream_read(s, in + got, BIG + 1 - got);
        if (n <= 0) {
            cr_expect_eq(n, 0);
            break;
        }
        got += (size_t)n;
    }
    cr_expect_eq(got, BIG);
    size_t bad = BIG;
    for (size_t i = 0; i < got; i++)
        if (in[i] != pat(99, i)) {
            bad = i;
            break;
        }
    cr_expect_eq(bad, BIG, "byte %zu differs", bad);
    free(in);
    cr_expect_eq(tl_test_join(w), 0);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    return 0;
}

Test(multishot, recv_stops_at_the_cap_and_loses_nothing, .timeout = T_OUT)
{
    int before = tl_test_count_fds();
    cr_assert_eq(tl_run(main_big, NULL), 0);
    cr_expect_eq(tl_test_count_fds(), before, "fds leaked");
}

/* Closing the stream under a reader parked with the request armed wakes
 * it with TL_ECLOSED; wait_closed returns once the request's last
 * completion came; no fd is left. */
static int closed_read(void *arg)
{
    tl_stream *s = arg;
    char b[16];
    return (int)tl_stream_read(s, b, sizeof b);
}

static int main_close_armed(void *arg)
{
    (void)arg;
    for (int round = 0; round < 50; round++) {
        int sv[2];
        tl_test_socketpair(sv, 0);
        tl_stream *s;
        cr_assert_eq(tl_stream_open(&s, sv[0], NULL), 0);
        tl_task r = tl_test_spawn(closed_read, s);
        cr_expect_eq(tl_yield(), 0);
        if (round % 2) cr_expect_eq(send(sv[1], "x", 1, 0), 1);
        cr_expect_eq(tl_stream_wait_closed(s), 0);
        int rc = tl_test_join(r);
        cr_expect(rc == TL_ECLOSED || rc == 1, "reader: %d", rc);
        cr_expect_eq(tl_close(sv[1]), 0);
    }
    return 0;
}

Test(multishot, recv_close_while_armed_wakes_the_reader, .timeout = T_OUT)
{
    int before = tl_test_count_fds();
    cr_assert_eq(tl_run(main_close_armed, NULL), 0);
    cr_expect_eq(tl_test_count_fds(), before, "fds leaked");
}
