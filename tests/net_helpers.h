/* Socket helpers for the test programs that talk over loopback; include
 * after helpers.h. Every address is loopback: tests send nothing beyond
 * the machine.
 *
 * - tl_test_have_ipv6(): 1 if ::1 can be bound here (containers often
 *   have no IPv6 loopback), 0 otherwise; tests skip their IPv6 part on 0.
 * - tl_test_listen(ip, type, bound): tl_net_listen on ip ("127.0.0.1",
 *   "::1") port 0 with the default backlog and no flags; *bound gets the
 *   address it got (the port the kernel chose). Returns the fd; a failure
 *   fails the test and returns the negative errno.
 * - tl_test_socketpair(sv, flags): an AF_UNIX stream socketpair(2)
 *   from the plain syscall (not tl_socketpair: for tests of fds tulip did
 *   not make), SOCK_CLOEXEC plus flags (0 or SOCK_NONBLOCK); a failure
 *   fails the test and leaves sv = {-1, -1}.
 * All of them report with cr_expect, so they are safe inside a task.
 */
#ifndef TULIP_TEST_NET_HELPERS_H
#define TULIP_TEST_NET_HELPERS_H

#include "helpers.h"

#include <sys/socket.h>

static inline int tl_test_have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    tl_sockaddr a;
    int ok = tl_sockaddr_ip(&a, "::1", 0) == 0 &&
             bind(fd, &a.u.sa, a.len) == 0;
    close(fd);
    return ok;
}

static inline int tl_test_listen(const char *ip, int type, tl_sockaddr *bound)
{
    memset(bound, 0, sizeof *bound);
    tl_sockaddr a;
    int rc = tl_sockaddr_ip(&a, ip, 0);
    cr_expect_eq(rc, 0, "address %s: %s", ip, tl_strerror(rc));
    if (rc < 0) return rc;
    int fd = tl_net_listen(&a, type, 0, 0);
    cr_expect_geq(fd, 0, "listen on %s: %s", ip, tl_strerror(fd));
    if (fd < 0) return fd;
    rc = tl_sockaddr_local(fd, bound);
    cr_expect_eq(rc, 0, "local address: %s", tl_strerror(rc));
    return fd;
}

static inline void tl_test_socketpair(int sv[2], int flags)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0, sv) < 0) {
        cr_expect_fail("socketpair: %s", strerror(errno));
        sv[0] = sv[1] = -1;
    }
}

#endif
