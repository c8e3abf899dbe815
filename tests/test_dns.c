/* Name resolution (tl_getaddrinfo) and connecting by host and port with
 * Happy Eyeballs (tl_net_connect_host, tl_net_connect_addrs), on loopback
 * only. Runs on each backend.
 *
 * An address that never answers: a loopback TCP listener with a backlog
 * of 0 whose accept queue is already full (one connection nobody
 * accepted); Linux drops further SYNs, so a connect to it waits until it
 * is cancelled. An address that refuses at once: a bound TCP socket that
 * does not listen (the kernel answers with a reset). */
#include "net_helpers.h"

#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <semaphore.h>
#include <stdatomic.h>

extern void (*tl__dns_test_hook)(void);

/* ---- resolving --------------------------------------------------------- */

static int has_addr(const struct addrinfo *ai, int family, const char *ip)
{
    for (; ai; ai = ai->ai_next) {
        char buf[INET6_ADDRSTRLEN];
        if (ai->ai_family != family) continue;
        const void *a = family == AF_INET
            ? (const void *)&((const struct sockaddr_in *)ai->ai_addr)->sin_addr
            : (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)
                  ->sin6_addr;
        if (inet_ntop(family, a, buf, sizeof buf) && !strcmp(buf, ip))
            return 1;
    }
    return 0;
}

static int resolve_main(void *arg)
{
    (void)arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc = tl_getaddrinfo("localhost", "80", &hints, &ai);
    cr_expect_eq(rc, 0, "localhost: %s", tl_strerror(rc));
    cr_expect(ai && (has_addr(ai, AF_INET, "127.0.0.1") ||
                     has_addr(ai, AF_INET6, "::1")));
    if (ai) cr_expect_eq(ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port),
                         80);
    tl_freeaddrinfo(ai);

    ai = NULL;
    rc = tl_getaddrinfo("127.0.0.1", NULL, NULL, &ai);
    cr_expect_eq(rc, 0);
    cr_expect(has_addr(ai, AF_INET, "127.0.0.1"));
    tl_freeaddrinfo(ai);

    ai = NULL;
    hints = (struct addrinfo){.ai_flags = AI_NUMERICHOST,
                              .ai_socktype = SOCK_DGRAM};
    rc = tl_getaddrinfo("::1", "53", &hints, &ai);
    cr_expect_eq(rc, 0, "::1: %s", tl_strerror(rc));
    cr_expect(has_addr(ai, AF_INET6, "::1"));
    tl_freeaddrinfo(ai);
    tl_freeaddrinfo(NULL);
    return 0;
}

Test(dns, resolves_localhost_and_numeric_addresses, .timeout = 60)
{
    cr_expect_eq(tl_run(resolve_main, NULL), 0);
}

static int errors_main(void *arg)
{
    (void)arg;
    struct addrinfo *ai = (struct addrinfo *)&ai; /* must become NULL */
    /* A name that is not found, without asking any server (tests send
     * nothing beyond loopback): a name where a number must be. */
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST};
    int rc = tl_getaddrinfo("tulip-test.invalid", NULL, &hints, &ai);
    cr_expect_eq(rc, TL_ENONAME, "%s", tl_errname(rc));
    cr_expect_null(ai);
    const char *m = tl_fail_message(TL_ENONAME);
    cr_expect(m && strstr(m, "getaddrinfo(\"tulip-test.invalid\""), "%s",
              m ? m : "(none)");
    /* An unknown service (read from the services file, no network). */
    rc = tl_getaddrinfo("127.0.0.1", "no-such-tulip-service", NULL, &ai);
    cr_expect_eq(rc, TL_ENONAME, "%s", tl_errname(rc));
    /* Bad hints. */
    hints = (struct addrinfo){.ai_family = 12345};
    rc = tl_getaddrinfo("127.0.0.1", NULL, &hints, &ai);
    cr_expect_eq(rc, -EAFNOSUPPORT, "%s", tl_errname(rc));
    hints = (struct addrinfo){.ai_flags = 0x7fff0000};
    rc = tl_getaddrinfo("127.0.0.1", NULL, &hints, &ai);
    cr_expect_eq(rc, -EINVAL, "%s", tl_errname(rc));
    cr_expect_eq(tl_getaddrinfo(NULL, NULL, NULL, &ai), -EINVAL);
    cr_expect_eq(tl_getaddrinfo("localhost", NULL, NULL, NULL), -EINVAL);
    cr_expect_null(ai);
    cr_expect_str_eq(tl_strerror(TL_ENONAME), "name or service not known");
    return 0;
}

Test(dns, bad_names_give_clear_errors, .timeout = 60)
{
    cr_expect_eq(tl_run(errors_main, NULL), 0);
    struct addrinfo *ai;
    cr_expect_eq(tl_getaddrinfo("localhost", NULL, NULL, &ai), TL_ENOTASK);
}

/* Cancel mid-flight: the worker is held inside the lookup by the hook
 * until after the cancelled caller returned and its out-pointer's memory
 * was freed; ASan reports any late write to it. */
static sem_t hook_entered, hook_go;
static atomic_int hook_armed;

static void holding_hook(void)
{
    if (!atomic_exchange(&hook_armed, 0)) return;
    sem_post(&hook_entered);
    while (sem_wait(&hook_go) < 0) {
    }
}

static int resolver(void *arg)
{
    struct addrinfo **out = arg;
    return tl_getaddrinfo("localhost", "80", NULL, out);
}

static int cancel_main(void *arg)
{
    (void)arg;
    struct addrinfo **out = malloc(sizeof *out);
    cr_assert_not_null(out);
    *out = NULL;
    atomic_store(&hook_armed, 1);
    tl_task t = tl_test_spawn(resolver, out);
    tl_test_settle(); /* it submitted and parked */
    /* Wait (the thread, briefly) until the worker is inside the lookup. */
    while (sem_wait(&hook_entered) < 0) {
    }
    double t0 = tl_test_now_s();
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_test_join(t), -ECANCELED);
    cr_expect_lt(tl_test_now_s() - t0, 5.0); /* at once, not after it */
    cr_expect_null(*out);
    free(out); /* a late write by the job would now be a use after free */
    sem_post(&hook_go);
    /* The pool goes on: a second lookup works while the first finishes. */
    struct addrinfo *ai = NULL;
    cr_expect_eq(tl_getaddrinfo("127.0.0.1", "1", NULL, &ai), 0);
    tl_freeaddrinfo(ai);
    /* A caller already cancelled gets -ECANCELED and no lookup runs. */
    tl_cancel(tl_current());
    cr_expect_eq(tl_getaddrinfo("localhost", NULL, NULL, &ai), -ECANCELED);
    return 0;
}

Test(dns, cancelled_resolve_returns_at_once_and_touches_nothing,
     .timeout = 60)
{
    sem_init(&hook_entered, 0, 0);
    sem_init(&hook_go, 0, 0);
    tl__dns_test_hook = holding_hook;
    cr_expect_eq(tl_run(cancel_main, NULL), 0);
    tl__dns_test_hook = NULL;
}

/* ---- Happy Eyeballs ---------------------------------------------------- */

/* A loopback TCP port that never answers a connect: listen(fd, 0) and one
 * connection queued and never accepted. Keeps the fds in h[0..2]. */
static void hanging_addr(int family, tl_sockaddr *out, int h[3])
{
    h[0] = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(h[0], 0);
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, family == AF_INET ? "127.0.0.1" : "::1",
                                0), 0);
    cr_assert_eq(bind(h[0], &a.u.sa, a.len), 0);
    cr_assert_eq(listen(h[0], 0), 0);
    cr_assert_eq(tl_sockaddr_local(h[0], out), 0);
    /* The first filler fills the queue (it completes), the second's SYN
     * is dropped from then on, as every later one is. */
    for (int i = 1; i < 3; i++) {
        h[i] = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        cr_assert_geq(h[i], 0);
        int rc = connect(h[i], &out->u.sa, out->len);
        cr_assert(rc == 0 || errno == EINPROGRESS);
        struct pollfd p = {.fd = h[i], .events = POLLOUT};
        (void)poll(&p, 1, i == 1 ? 2000 : 0);
    }
}

/* A loopback TCP port that refuses at once: bound, not listening. */
static int refusing_addr(int family, tl_sockaddr *out)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, family == AF_INET ? "127.0.0.1" : "::1",
                                0), 0);
    cr_assert_eq(bind(fd, &a.u.sa, a.len), 0);
    cr_assert_eq(tl_sockaddr_local(fd, out), 0);
    return fd;
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
}

static int same_port(int fd, const tl_sockaddr *a)
{
    tl_sockaddr p;
    return tl_sockaddr_peer(fd, &p) == 0 &&
           tl_sockaddr_port(&p) == tl_sockaddr_port(a);
}

static int he_orders_main(void *arg)
{
    (void)arg;
    int hang[3];
    tl_sockaddr a[2];
    hanging_addr(AF_INET, &a[0], hang);
    int lis = tl_net_listen(&(tl_sockaddr){0}, SOCK_STREAM, 0, 0);
    cr_expect_eq(lis, -EINVAL); /* a zeroed address is refused */
    lis = tl_test_listen("127.0.0.1", SOCK_STREAM, &a[1]);
    int fds0 = tl_test_count_fds();

    /* The silent address first: the second attempt starts after the
     * delay and wins; the first is cancelled and closed. */
    double t0 = tl_now();
    int fd = tl_net_connect_addrs(a, 2, SOCK_STREAM, NULL);
    cr_expect_geq(fd, 0, "%s", tl_strerror(fd));
    cr_expect_geq(tl_now() - t0, 0.25 - 1e-9);
    cr_expect(same_port(fd, &a[1]));
    cr_expect_eq(tl_test_count_fds(), fds0 + 1);
    cr_expect_eq(tl_close(fd), 0);

    /* The working address first: it wins, the silent one is closed. */
    tl_sockaddr b[2] = {a[1], a[0]};
    fd = tl_net_connect_addrs(b, 2, SOCK_STREAM,
                              &(tl_connect_opts){.delay = 0.05});
    cr_expect_geq(fd, 0, "%s", tl_strerror(fd));
    cr_expect(same_port(fd, &a[1]));
    cr_expect_eq(tl_close(fd), 0);

    /* A custom delay is honoured. */
    t0 = tl_now();
    fd = tl_net_connect_addrs(a, 2, SOCK_STREAM,
                              &(tl_connect_opts){.delay = 3.0});
    cr_expect_geq(fd, 0);
    cr_expect_geq(tl_now() - t0, 3.0 - 1e-9);
    cr_expect(same_port(fd, &a[1]));
    TL_IGNORE(tl_close(fd));

    for (int i = 0; i < 3; i++) {
        int c = tl_accept(lis, NULL, NULL);
        cr_expect_geq(c, 0);
        TL_IGNORE(tl_close(c));
    }
    cr_expect_eq(tl_test_count_fds(), fds0);
    TL_IGNORE(tl_close(lis));
    close_all(hang, 3);
    return 0;
}

Test(dns, happy_eyeballs_silent_and_working_address_in_both_orders,
     .timeout = 60)
{
    cr_expect_eq(run_virtual(he_orders_main, NULL), 0);
}

static int he_refused_main(void *arg)
{
    (void)arg;
    tl_sockaddr a[2];
    int ref = refusing_addr(AF_INET, &a[0]);
    int lis = tl_test_listen("127.0.0.1", SOCK_STREAM, &a[1]);
    /* A refusal starts the next attempt at once, not after the delay. */
    double t0 = tl_test_now_s();
    int fd = tl_net_connect_addrs(a, 2, SOCK_STREAM,
                                  &(tl_connect_opts){.delay = 60.0});
    cr_expect_geq(fd, 0, "%s", tl_strerror(fd));
    cr_expect_lt(tl_test_now_s() - t0, 30.0);
    cr_expect(same_port(fd, &a[1]));
    TL_IGNORE(tl_close(fd));
    /* Sequential mode (delay < 0) the same. */
    fd = tl_net_connect_addrs(a, 2, SOCK_STREAM,
                              &(tl_connect_opts){.delay = -1});
    cr_expect(same_port(fd, &a[1]));
    TL_IGNORE(tl_close(fd));
    TL_IGNORE(tl_close(lis));
    close(ref);
    return 0;
}

Test(dns, happy_eyeballs_refusal_starts_the_next_attempt_at_once,
     .timeout = 60)
{
    cr_expect_eq(tl_run(he_refused_main, NULL), 0);
}

static int he_all_fail_main(void *arg)
{
    (void)arg;
    int v6 = tl_test_have_ipv6();
    tl_sockaddr a[4];
    int fds[4] = {-1, -1, -1, -1};
    fds[0] = refusing_addr(AF_INET, &a[0]);
    fds[1] = refusing_addr(AF_INET, &a[1]);
    size_t n = 2;
    if (v6) {
        fds[2] = refusing_addr(AF_INET6, &a[2]);
        fds[3] = refusing_addr(AF_INET6, &a[3]);
        n = 4;
    }
    int before = tl_test_count_fds();
    int rc = tl_net_connect_addrs(a, n, SOCK_STREAM, NULL);
    cr_expect_eq(rc, -ECONNREFUSED, "%s", tl_errname(rc));
    const char *m = tl_fail_message(rc);
    cr_assert_not_null(m);
    char want[512], s[64];
    /* Families alternate (RFC 8305): v4, v6, v4, v6. */
    size_t ord[4] = {0, 2, 1, 3};
    snprintf(want, sizeof want, "connect: ");
    for (size_t i = 0; i < n; i++) {
        size_t k = v6 ? ord[i] : i;
        snprintf(want + strlen(want), sizeof want - strlen(want),
                 "%s%s: Connection refused", i ? "; " : "",
                 tl_sockaddr_format(&a[k], s, sizeof s));
    }
    cr_expect_str_eq(m, want);
    cr_expect_eq(tl_test_count_fds(), before);

    /* By name: the message names the host. */
    rc = tl_net_connect_host("127.0.0.1", tl_sockaddr_port(&a[0]),
                             SOCK_STREAM, NULL);
    cr_expect_eq(rc, -ECONNREFUSED);
    m = tl_fail_message(rc);
    cr_expect(m && strstr(m, "connect to 127.0.0.1:") &&
              strstr(m, "Connection refused"), "%s", m ? m : "(none)");
    /* Bad input. */
    cr_expect_eq(tl_net_connect_addrs(a, 0, SOCK_STREAM, NULL), -EINVAL);
    cr_expect_eq(tl_net_connect_addrs(NULL, 1, SOCK_STREAM, NULL), -EINVAL);
    cr_expect_eq(tl_net_connect_addrs(a, 1, SOCK_RAW, NULL), -EINVAL);
    cr_expect_eq(tl_net_connect_addrs(a, 1, SOCK_STREAM,
                                      &(tl_connect_opts){.delay = NAN}),
                 -EINVAL);
    cr_expect_eq(tl_net_connect_addrs(a, 1, SOCK_STREAM,
                                      &(tl_connect_opts){.family = AF_INET6}),
                 -EAFNOSUPPORT);
    cr_expect_eq(tl_net_connect_host(NULL, 80, SOCK_STREAM, NULL), -EINVAL);
    cr_expect_eq(tl_net_connect_host("localhost", 70000, SOCK_STREAM, NULL),
                 -EINVAL);
    cr_expect_eq(tl_net_connect_host("localhost", 80, SOCK_STREAM,
                                     &(tl_connect_opts){.family = AF_UNIX}),
                 -EINVAL);
    close_all(fds, 4);
    return 0;
}

Test(dns, happy_eyeballs_all_fail_reports_every_address, .timeout = 60)
{
    cr_expect_eq(tl_run(he_all_fail_main, NULL), 0);
}

static int by_name_main(void *arg)
{
    (void)arg;
    tl_sockaddr a;
    int lis = tl_test_listen("127.0.0.1", SOCK_STREAM, &a);
    int port = tl_sockaddr_port(&a);
    const char *names[] = {"localhost", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        int fd = tl_net_connect_host(names[i], port, SOCK_STREAM, NULL);
        cr_expect_geq(fd, 0, "%s: %s", names[i], tl_strerror(fd));
        if (fd < 0) continue;
        cr_expect_eq(tl_send(fd, "x", 1, 0), 1);
        int c = tl_accept(lis, NULL, NULL);
        char b;
        cr_expect_eq(tl_recv(c, &b, 1, 0), 1);
        TL_IGNORE(tl_close(c));
        TL_IGNORE(tl_close(fd));
    }
    TL_IGNORE(tl_close(lis));
    if (tl_test_have_ipv6()) {
        lis = tl_test_listen("::1", SOCK_STREAM, &a);
        int fd = tl_net_connect_host("::1", tl_sockaddr_port(&a),
                                     SOCK_STREAM, NULL);
        cr_expect_geq(fd, 0, "::1: %s", tl_strerror(fd));
        if (fd >= 0) TL_IGNORE(tl_close(fd));
        TL_IGNORE(tl_close(lis));
    }
    /* UDP: connected at once. */
    int u = tl_test_listen("127.0.0.1", SOCK_DGRAM, &a);
    int fd = tl_net_connect_host("127.0.0.1", tl_sockaddr_port(&a),
                                 SOCK_DGRAM, NULL);
    cr_expect_geq(fd, 0);
    cr_expect_eq(tl_send(fd, "d", 1, 0), 1);
    char b;
    cr_expect_eq(tl_recv(u, &b, 1, 0), 1);
    TL_IGNORE(tl_close(fd));
    TL_IGNORE(tl_close(u));
    return 0;
}

Test(dns, connect_by_name_v4_v6_and_udp, .timeout = 60)
{
    cr_expect_eq(tl_run(by_name_main, NULL), 0);
}

struct he_call {
    tl_sockaddr a[2];
    int rc;
};

static int he_caller(void *arg)
{
    struct he_call *c = arg;
    c->rc = tl_net_connect_addrs(c->a, 2, SOCK_STREAM,
                                 &(tl_connect_opts){.delay = 0.1});
    return c->rc;
}

static int he_cancel_main(void *arg)
{
    (void)arg;
    int h1[3], h2[3];
    struct he_call c;
    hanging_addr(AF_INET, &c.a[0], h1);
    hanging_addr(AF_INET, &c.a[1], h2);
    int before = tl_test_count_fds();
    /* Cancelled while both attempts wait. */
    tl_task t = tl_test_spawn(he_caller, &c);
    cr_expect_eq(tl_sleep(1.0), 0);
    cr_expect_eq(tl_test_count_fds(), before + 2); /* both attempts started */
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_test_join(t), -ECANCELED);
    cr_expect_eq(tl_test_count_fds(), before);
    /* Cancelled before the second attempt started. */
    t = tl_test_spawn(he_caller, &c);
    tl_test_settle();
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_test_join(t), -ECANCELED);
    cr_expect_eq(tl_test_count_fds(), before);
    /* A deadline around it. */
    int rc;
    TL_WITH_TIMEOUT(0.5, &rc) { rc = he_caller(&c); }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_test_count_fds(), before);
    close_all(h1, 3);
    close_all(h2, 3);
    return 0;
}

Test(dns, happy_eyeballs_cancel_closes_every_attempt, .timeout = 60)
{
    cr_expect_eq(run_virtual(he_cancel_main, NULL), 0);
}
