/* Sockets (tulip/net.h): numeric addresses and their formatting, the
 * listen / connect helpers for TCP over IPv4 and IPv6, UDP and Unix
 * stream and datagram sockets, SO_REUSEPORT, socket options, and the
 * flags every fd gets (close-on-exec, non-blocking). Runs on each
 * backend. */
#include "net_helpers.h"

#include <netinet/tcp.h>
#include <sys/stat.h>

static void expect_flags(int fd)
{
    cr_expect(fcntl(fd, F_GETFL) & O_NONBLOCK, "fd %d blocks", fd);
    cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC, "fd %d not CLOEXEC", fd);
}

Test(io_net, addresses_parse_and_format, .timeout = 10)
{
    tl_sockaddr a;
    char buf[64];
    cr_expect_eq(tl_sockaddr_ip(&a, "127.0.0.1", 8080), 0);
    cr_expect_str_eq(tl_sockaddr_format(&a, buf, sizeof buf),
                     "127.0.0.1:8080");
    cr_expect_eq(tl_sockaddr_port(&a), 8080);
    cr_expect_eq(tl_sockaddr_ip(&a, "::1", 80), 0);
    cr_expect_str_eq(tl_sockaddr_format(&a, buf, sizeof buf), "[::1]:80");
    cr_expect_eq(a.len, sizeof(struct sockaddr_in6));
    cr_expect_eq(tl_sockaddr_ip(&a, NULL, 0), 0);
    cr_expect_str_eq(tl_sockaddr_format(&a, buf, sizeof buf), "0.0.0.0:0");
    cr_expect_eq(tl_sockaddr_ip(&a, "localhost", 80), -EINVAL);
    cr_expect_eq(tl_sockaddr_ip(&a, "1.2.3.4", 65536), -EINVAL);
    cr_expect_eq(tl_sockaddr_ip(&a, "::1%", 1), -EINVAL);
    cr_expect_eq(tl_sockaddr_ip(NULL, "1.2.3.4", 1), -EINVAL);
    cr_expect_eq(tl_sockaddr_unix(&a, "/tmp/x.sock"), 0);
    cr_expect_str_eq(tl_sockaddr_format(&a, buf, sizeof buf), "/tmp/x.sock");
    cr_expect_eq(tl_sockaddr_port(&a), -EAFNOSUPPORT);
    cr_expect_eq(tl_sockaddr_unix(&a, "@abstract"), 0);
    cr_expect_str_eq(tl_sockaddr_format(&a, buf, sizeof buf), "@abstract");
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    cr_expect_eq(tl_sockaddr_unix(&a, longp), -ENAMETOOLONG);
    cr_expect_eq(tl_sockaddr_unix(&a, ""), -EINVAL);
}

struct peer {
    tl_sockaddr addr;
    int type;
    int rc;
};

static int echo_client(void *arg)
{
    struct peer *p = arg;
    int fd = tl_net_connect(&p->addr, p->type);
    p->rc = fd;
    if (fd < 0) return fd;
    expect_flags(fd);
    cr_expect_eq(tl_send(fd, "hi", 2, 0), 2);
    char b[8];
    cr_expect_eq(tl_recv(fd, b, sizeof b, 0), 2);
    cr_expect_eq(memcmp(b, "HI", 2), 0);
    cr_expect_eq(tl_close(fd), 0);
    return 0;
}

/* Listen on `a` (port 0 / a path), connect a client, echo upper-cased. */
static void stream_round_trip(tl_sockaddr *a)
{
    int l = tl_net_listen(a, SOCK_STREAM, 0, 0);
    cr_assert_geq(l, 0, "listen: %s", tl_strerror(l));
    expect_flags(l);
    struct peer p = {.type = SOCK_STREAM};
    cr_expect_eq(tl_sockaddr_local(l, &p.addr), 0);
    tl_task t = tl_test_spawn(echo_client, &p);
    int fd = tl_accept(l, NULL, NULL);
    cr_assert_geq(fd, 0);
    expect_flags(fd);
    char b[8];
    cr_expect_eq(tl_recv(fd, b, sizeof b, 0), 2);
    cr_expect_eq(tl_send(fd, "HI", 2, 0), 2);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(tl_close(fd), 0);
    cr_expect_eq(tl_close(l), 0);
}

static int main_streams(void *arg)
{
    (void)arg;
    tl_sockaddr a;
    cr_expect_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    stream_round_trip(&a);
    if (tl_test_have_ipv6()) {
        cr_expect_eq(tl_sockaddr_ip(&a, "::1", 0), 0);
        stream_round_trip(&a);
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/tulip-net-%d.sock", (int)getpid());
    cr_expect_eq(tl_sockaddr_unix(&a, path), 0);
    stream_round_trip(&a);
    /* The socket file is left; a second listen removes it (stale). */
    stream_round_trip(&a);
    int l = tl_net_listen(&a, SOCK_STREAM, 0, TL_NET_NO_UNLINK);
    cr_expect_eq(l, -EADDRINUSE);
    unlink(path);
    /* A plain file at the path is never removed. */
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fclose(f);
    cr_expect_eq(tl_net_listen(&a, SOCK_STREAM, 0, 0), -EADDRINUSE);
    unlink(path);
    snprintf(path, sizeof path, "@tulip-net-%d", (int)getpid());
    cr_expect_eq(tl_sockaddr_unix(&a, path), 0);
    stream_round_trip(&a);
    return 0;
}

Test(io_net, tcp_v4_v6_and_unix_stream_listen_connect, .timeout = 10)
{
    cr_assert_eq(tl_run(main_streams, NULL), 0);
}

static void dgram_round_trip(tl_sockaddr *a)
{
    int s = tl_net_listen(a, SOCK_DGRAM, 0, 0);
    cr_assert_geq(s, 0, "bind: %s", tl_strerror(s));
    expect_flags(s);
    tl_sockaddr bound;
    cr_expect_eq(tl_sockaddr_local(s, &bound), 0);
    int c = tl_net_connect(&bound, SOCK_DGRAM);
    cr_assert_geq(c, 0, "%s", tl_strerror(c));
    cr_expect_eq(tl_send(c, "dg", 2, 0), 2);
    char b[8];
    tl_sockaddr from;
    from.len = sizeof from.u.ss;
    cr_expect_eq(tl_recvfrom(s, b, sizeof b, 0, &from.u.sa, &from.len), 2);
    if (a->u.sa.sa_family != AF_UNIX) {
        cr_expect_eq(tl_sendto(s, "DG", 2, 0, &from.u.sa, from.len), 2);
        cr_expect_eq(tl_recv(c, b, sizeof b, 0), 2);
    }
    tl_close(c);
    tl_close(s);
}

static int main_dgrams(void *arg)
{
    (void)arg;
    tl_sockaddr a;
    cr_expect_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    dgram_round_trip(&a);
    char path[64];
    snprintf(path, sizeof path, "/tmp/tulip-dg-%d.sock", (int)getpid());
    cr_expect_eq(tl_sockaddr_unix(&a, path), 0);
    dgram_round_trip(&a);
    unlink(path);
    return 0;
}

Test(io_net, udp_and_unix_datagram_bind_connect, .timeout = 10)
{
    cr_assert_eq(tl_run(main_dgrams, NULL), 0);
}

static int main_reuse(void *arg)
{
    (void)arg;
    tl_sockaddr a;
    cr_expect_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    int l1 = tl_net_listen(&a, SOCK_STREAM, 0, TL_NET_REUSEPORT);
    cr_assert_geq(l1, 0);
    tl_sockaddr bound;
    cr_expect_eq(tl_sockaddr_local(l1, &bound), 0);
    int l2 = tl_net_listen(&bound, SOCK_STREAM, 0, TL_NET_REUSEPORT);
    cr_expect_geq(l2, 0, "a second REUSEPORT listener: %s", tl_strerror(l2));
    int l3 = tl_net_listen(&bound, SOCK_STREAM, 0, 0);
    cr_expect_eq(l3, -EADDRINUSE);
    int v = 0;
    cr_expect_eq(tl_sockopt_get(l1, SOL_SOCKET, SO_REUSEADDR, &v), 0);
    cr_expect_neq(v, 0, "TCP listeners get SO_REUSEADDR");
    cr_expect_eq(tl_sockopt_get(l1, SOL_SOCKET, SO_REUSEPORT, &v), 0);
    cr_expect_neq(v, 0);
    int c = tl_net_connect(&bound, SOCK_STREAM);
    cr_assert_geq(c, 0);
    cr_expect_eq(tl_sockopt_set(c, IPPROTO_TCP, TCP_NODELAY, 1), 0);
    cr_expect_eq(tl_sockopt_get(c, IPPROTO_TCP, TCP_NODELAY, &v), 0);
    cr_expect_neq(v, 0);
    cr_expect_eq(tl_sockopt_set(-1, SOL_SOCKET, SO_REUSEADDR, 1), -EBADF);
    cr_expect_eq(tl_sockopt_get(c, SOL_SOCKET, SO_REUSEADDR, NULL), -EINVAL);
    tl_sockaddr peer;
    cr_expect_eq(tl_sockaddr_peer(c, &peer), 0);
    cr_expect_eq(tl_sockaddr_port(&peer), tl_sockaddr_port(&bound));
    tl_close(c);
    tl_close(l1);
    if (l2 >= 0) tl_close(l2);
    /* Refused, and the failed socket is closed. */
    int before = tl_socket(AF_INET, SOCK_STREAM, 0);
    tl_close(before);
    cr_expect_eq(tl_net_connect(&bound, SOCK_STREAM), -ECONNREFUSED);
    int after = tl_socket(AF_INET, SOCK_STREAM, 0);
    cr_expect_eq(after, before, "tl_net_connect leaked its socket");
    tl_close(after);
    cr_expect_eq(tl_net_listen(NULL, SOCK_STREAM, 0, 0), -EINVAL);
    cr_expect_eq(tl_net_listen(&bound, SOCK_RAW, 0, 0), -EINVAL);
    cr_expect_eq(tl_net_listen(&bound, SOCK_STREAM, 0, 0x100), -EINVAL);
    int sv[2];
    cr_expect_eq(tl_socketpair(SOCK_STREAM, sv), 0);
    expect_flags(sv[0]);
    tl_close(sv[0]);
    tl_close(sv[1]);
    return 0;
}

Test(io_net, reuseport_options_and_a_refused_connect, .timeout = 10)
{
    cr_assert_eq(tl_run(main_reuse, NULL), 0);
}

static int main_connect_timeout(void *arg)
{
    (void)arg;
    /* A listener with a full backlog drops new SYNs: connect waits. */
    tl_sockaddr a;
    cr_expect_eq(tl_sockaddr_ip(&a, "127.0.0.1", 0), 0);
    int l = tl_net_listen(&a, SOCK_STREAM, 1, 0);
    cr_assert_geq(l, 0);
    tl_sockaddr bound;
    cr_expect_eq(tl_sockaddr_local(l, &bound), 0);
    int fds[8], n = 0, rc = 0;
    for (int i = 0; i < 8 && rc == 0; i++) {
        TL_WITH_MOVE_ON(0.5, &rc) {
            rc = tl_net_connect(&bound, SOCK_STREAM);
            if (rc >= 0) fds[n++] = rc, rc = 0;
        }
        if (rc == 0 && n == i) rc = 1; /* moved on: that one waited */
    }
    cr_expect_lt(n, 8, "no connect ever waited on a full backlog");
    for (int i = 0; i < n; i++) tl_close(fds[i]);
    tl_close(l);
    return 0;
}

Test(io_net, a_connect_that_waits_is_cancelled_by_its_scope, .timeout = 10)
{
    cr_assert_eq(tl_run(main_connect_timeout, NULL), 0);
}
