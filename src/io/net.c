/* Sockets: numeric addresses, and helpers that make bound, listening and
 * connected sockets. Every fd made here is SOCK_CLOEXEC | SOCK_NONBLOCK
 * and recorded as a fresh socket (tl__fd_fresh: a stale record with the
 * same number is forgotten, and no fstat is needed later). */
#include "io/io.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tl_sockaddr_ip(tl_sockaddr *out, const char *ip, int port)
{
    if (!out || port < 0 || port > 65535) return -EINVAL;
    memset(out, 0, sizeof *out);
    if (!ip || !*ip) ip = "0.0.0.0";
    if (inet_pton(AF_INET, ip, &out->u.in.sin_addr) == 1) {
        out->u.in.sin_family = AF_INET;
        out->u.in.sin_port = htons((uint16_t)port);
        out->len = sizeof out->u.in;
        return 0;
    }
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    const char *pct = strchr(ip, '%');
    unsigned scope = 0;
    if (pct) {
        size_t n = (size_t)(pct - ip);
        if (n >= INET6_ADDRSTRLEN) return -EINVAL;
        memcpy(buf, ip, n);
        buf[n] = '\0';
        scope = if_nametoindex(pct + 1);
        if (!scope) {
            char *end;
            unsigned long v = strtoul(pct + 1, &end, 10);
            if (!pct[1] || *end) return -EINVAL;
            scope = (unsigned)v;
        }
        ip = buf;
    }
    if (inet_pton(AF_INET6, ip, &out->u.in6.sin6_addr) != 1) return -EINVAL;
    out->u.in6.sin6_family = AF_INET6;
    out->u.in6.sin6_port = htons((uint16_t)port);
    out->u.in6.sin6_scope_id = scope;
    out->len = sizeof out->u.in6;
    return 0;
}

int tl_sockaddr_unix(tl_sockaddr *out, const char *path)
{
    if (!out || !path || !*path) return -EINVAL;
    size_t n = strlen(path);
    if (n >= sizeof out->u.un.sun_path) return -ENAMETOOLONG;
    memset(out, 0, sizeof *out);
    out->u.un.sun_family = AF_UNIX;
    memcpy(out->u.un.sun_path, path, n);
    if (path[0] == '@') {
        out->u.un.sun_path[0] = '\0'; /* abstract: no file, no NUL end */
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

static int name_of(int fd, tl_sockaddr *out, int peer)
{
    if (!out) return -EINVAL;
    memset(out, 0, sizeof *out);
    socklen_t len = sizeof out->u.ss;
    int rc = peer ? getpeername(fd, &out->u.sa, &len)
                  : getsockname(fd, &out->u.sa, &len);
    if (rc < 0) return -errno;
    out->len = len;
    return 0;
}

int tl_sockaddr_local(int fd, tl_sockaddr *out) { return name_of(fd, out, 0); }
int tl_sockaddr_peer(int fd, tl_sockaddr *out) { return name_of(fd, out, 1); }

int tl_sockaddr_port(const tl_sockaddr *a)
{
    if (!a) return -EINVAL;
    if (a->u.sa.sa_family == AF_INET) return ntohs(a->u.in.sin_port);
    if (a->u.sa.sa_family == AF_INET6) return ntohs(a->u.in6.sin6_port);
    return -EAFNOSUPPORT;
}

const char *tl_sockaddr_format(const tl_sockaddr *a, char *buf, size_t len)
{
    if (!buf || !len) return buf;
    char ip[INET6_ADDRSTRLEN];
    if (!a) {
        snprintf(buf, len, "?");
    } else if (a->u.sa.sa_family == AF_INET &&
               inet_ntop(AF_INET, &a->u.in.sin_addr, ip, sizeof ip)) {
        snprintf(buf, len, "%s:%u", ip, ntohs(a->u.in.sin_port));
    } else if (a->u.sa.sa_family == AF_INET6 &&
               inet_ntop(AF_INET6, &a->u.in6.sin6_addr, ip, sizeof ip)) {
        snprintf(buf, len, "[%s]:%u", ip, ntohs(a->u.in6.sin6_port));
    } else if (a->u.sa.sa_family == AF_UNIX) {
        size_t n = a->len > offsetof(struct sockaddr_un, sun_path)
                       ? a->len - offsetof(struct sockaddr_un, sun_path) : 0;
        if (n == 0)
            snprintf(buf, len, "(unnamed)");
        else if (a->u.un.sun_path[0] == '\0')
            snprintf(buf, len, "@%.*s", (int)n - 1, a->u.un.sun_path + 1);
        else
            snprintf(buf, len, "%.*s", (int)strnlen(a->u.un.sun_path, n),
                     a->u.un.sun_path);
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

/* The new fd is a socket tulip made: record it (on the loop's thread). */
static void note_fd(int fd, int type)
{
    tl__loop *l = tl__self;
    if (!l || l->fork_gen != atomic_load_explicit(&tl__fork_gen,
                                                  memory_order_relaxed))
        return;
    /* the type asked for (its flag bits aside): no getsockopt later */
    tl__fd_fresh(l, fd, 1, (type & 0xf) == SOCK_STREAM ? 1 : 2);
}

int tl_socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
    if (fd < 0) return -errno;
    note_fd(fd, type);
    return fd;
}

int tl_socketpair(int type, int sv[2])
{
    if (!sv) return -EINVAL;
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        return -errno;
    note_fd(sv[0], type);
    note_fd(sv[1], type);
    return 0;
}

int tl_sockopt_set(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0
                                                                   : -errno;
}

int tl_sockopt_get(int fd, int level, int name, int *value)
{
    if (!value) return -EINVAL;
    socklen_t len = sizeof *value;
    return getsockopt(fd, level, name, value, &len) == 0 ? 0 : -errno;
}

static bool valid(const tl_sockaddr *a, int type)
{
    if (!a || (type != SOCK_STREAM && type != SOCK_DGRAM)) return false;
    int f = a->u.sa.sa_family;
    return (f == AF_INET || f == AF_INET6 || f == AF_UNIX) && a->len > 0 &&
           a->len <= sizeof a->u.ss;
}

int tl_net_listen(const tl_sockaddr *addr, int type, int backlog,
                  unsigned flags)
{
    if (!valid(addr, type) ||
        (flags & ~(TL_NET_REUSEADDR | TL_NET_REUSEPORT | TL_NET_V6ONLY |
                   TL_NET_NO_UNLINK)))
        return -EINVAL;
    int family = addr->u.sa.sa_family;
    int fd = tl_socket(family, type, 0);
    if (fd < 0) return fd;
    int rc = 0;
    if (family != AF_UNIX) {
        if (type == SOCK_STREAM || (flags & TL_NET_REUSEADDR))
            rc = tl_sockopt_set(fd, SOL_SOCKET, SO_REUSEADDR, 1);
        if (rc == 0 && (flags & TL_NET_REUSEPORT))
            rc = tl_sockopt_set(fd, SOL_SOCKET, SO_REUSEPORT, 1);
        if (rc == 0 && family == AF_INET6)
            rc = tl_sockopt_set(fd, IPPROTO_IPV6, IPV6_V6ONLY,
                                (flags & TL_NET_V6ONLY) ? 1 : 0);
    } else if (!(flags & TL_NET_NO_UNLINK) && addr->u.un.sun_path[0]) {
        /* A socket file left by an earlier run (asyncio removes it too);
         * anything else at the path is not ours to remove. */
        struct stat st;
        if (stat(addr->u.un.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(addr->u.un.sun_path);
    }
    if (rc == 0 && bind(fd, &addr->u.sa, addr->len) < 0) rc = -errno;
    if (rc == 0 && type == SOCK_STREAM &&
        listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
        rc = -errno;
    if (rc < 0) {
        tl_close(fd);
        return rc;
    }
    return fd;
}

int tl_net_connect(const tl_sockaddr *addr, int type)
{
    tl__task *self = tl__task_self("tl_net_connect");
    if (!self) return tl__not_task_error();
    if (!valid(addr, type)) return -EINVAL;
    int fd = tl_socket(addr->u.sa.sa_family, type, 0);
    if (fd < 0) return fd;
    int rc = tl_connect(fd, &addr->u.sa, addr->len);
    if (rc < 0) {
        tl_close(fd);
        return rc;
    }
    return fd;
}
