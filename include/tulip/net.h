/* tulip/net.h — included by <tulip.h>; do not include directly.
 *
 * Sockets: addresses, and helpers that make listening, bound and
 * connected sockets for TCP over IPv4 and IPv6, UDP, and Unix stream and
 * datagram sockets. Every fd made here is close-on-exec and non-blocking;
 * the caller owns it and closes it with tl_close. Data moves with the
 * operations of tulip/io.h (tl_read, tl_send, tl_recvfrom, tl_accept, ...).
 * tl_sockaddr_ip takes numeric addresses only; names are resolved by
 * tl_getaddrinfo (on the thread pool), and tl_net_connect_host resolves
 * and connects with Happy Eyeballs.
 */
#ifndef TULIP_NET_H
#define TULIP_NET_H

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Sockets
 * ====================================================================== */

/* A socket address of any family, with its length. Plain data: copy it,
 * keep it on the stack. */
typedef struct tl_sockaddr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage ss;
    } u;
    socklen_t len;
} tl_sockaddr;

/* A numeric IPv4 or IPv6 address and a port: "127.0.0.1", "::1",
 * "fe80::1%eth0" (a scope), or NULL / "" for the IPv4 wildcard 0.0.0.0
 * ("::" for the IPv6 one). Returns 0, or -EINVAL (out NULL, not a numeric
 * address — resolve names first —, port outside 0..65535). Never
 * suspends; any thread. */
TL_API int tl_sockaddr_ip(tl_sockaddr *out, const char *ip, int port);

/* A Unix socket path; a leading '@' makes it an abstract address (Linux:
 * no file, gone with the last socket). Returns 0, -EINVAL (out or path
 * NULL, empty path), -ENAMETOOLONG (108 bytes or more). Never suspends;
 * any thread. */
TL_API int tl_sockaddr_unix(tl_sockaddr *out, const char *path);

/* getsockname / getpeername into *out. 0 or -errno (-EBADF, -ENOTSOCK,
 * -ENOTCONN for the peer of an unconnected socket). Never suspends. */
TL_API int tl_sockaddr_local(int fd, tl_sockaddr *out);
TL_API int tl_sockaddr_peer(int fd, tl_sockaddr *out);

/* The port of an IPv4 / IPv6 address (host order), or -EAFNOSUPPORT. */
TL_API int tl_sockaddr_port(const tl_sockaddr *a);

/* Write "127.0.0.1:8080", "[::1]:8080", "/run/x.sock" or "@abstract" into
 * buf (len bytes, truncated if short) and return buf. Never NULL for a
 * non-NULL buf; "?" for an unknown family. Any thread. */
TL_API const char *tl_sockaddr_format(const tl_sockaddr *a, char *buf,
                                      size_t len);

/* socket(2) with SOCK_CLOEXEC | SOCK_NONBLOCK added: the new fd, or
 * -errno (-EMFILE, -EAFNOSUPPORT, ...). Never suspends. */
TL_API int tl_socket(int domain, int type, int protocol);

/* socketpair(2) with SOCK_CLOEXEC | SOCK_NONBLOCK added (domain
 * AF_UNIX): 0 and sv[0], sv[1], or -errno. Never suspends. */
TL_API int tl_socketpair(int type, int sv[2]);

/* Flags of tl_net_listen. */
#define TL_NET_REUSEADDR 0x1u /* SO_REUSEADDR (TCP servers: restart while
                                 old connections linger in TIME_WAIT) */
#define TL_NET_REUSEPORT 0x2u /* SO_REUSEPORT: several sockets (one per
                                 loop) share the port; the kernel spreads
                                 connections or datagrams among them */
#define TL_NET_V6ONLY 0x4u    /* IPV6_V6ONLY: an IPv6 wildcard that does not
                                 also take IPv4 */
#define TL_NET_NO_UNLINK 0x8u /* Unix: do not remove a stale socket file
                                 at the path before binding */

/* A socket bound to `addr`: type SOCK_STREAM is also listening (backlog
 * <= 0: SOMAXCONN), SOCK_DGRAM is bound (ready for tl_recvfrom). TCP
 * listeners get TL_NET_REUSEADDR whatever the flags say (as asyncio and
 * Trio do). For a Unix path, a socket file left at the path by an earlier
 * run is removed first (as asyncio does; TL_NET_NO_UNLINK keeps it; a
 * file that is not a socket is never removed: -EADDRINUSE). Port 0 picks
 * a free port: read it back with tl_sockaddr_local.
 * Returns the fd (owned by the caller: tl_close), or -EINVAL (addr NULL,
 * unknown type or flags), -EADDRINUSE, -EACCES, -EADDRNOTAVAIL, -EMFILE,
 * ... Never suspends. */
TL_API int tl_net_listen(const tl_sockaddr *addr, int type, int backlog,
                         unsigned flags);

/* A socket of `type` connected to `addr`: TCP and Unix stream sockets
 * wait until the connection is made; datagram sockets are connected at
 * once (the default peer of tl_send / tl_recv). On any failure,
 * cancellation included, the socket is closed. Returns the fd (owned by
 * the caller), -ECANCELED, -ECONNREFUSED, -ENOENT (no such Unix path),
 * -ETIMEDOUT, -EINVAL, -EMFILE, ... or the codes of tl_connect.
 * SUSPENDS (a cancellation point; timeouts through scopes). */
TL_API TL_NODISCARD int tl_net_connect(const tl_sockaddr *addr, int type);

/* ======================================================================
 * Name resolution and connecting by name
 * ====================================================================== */

/* getaddrinfo(3) off the loop: the lookup runs on the loop's thread pool
 * (tulip/thread.h) and only the calling task waits. host and service
 * (either may be NULL, not both) and hints (may be NULL; only ai_flags,
 * ai_family, ai_socktype and ai_protocol are read) are copied before the
 * call suspends.
 *
 * Memory (invariant 1): the lookup works on runtime memory only, so a
 * cancelled call returns -ECANCELED at once; the lookup goes on in its
 * thread and frees its own result when it ends. *out is set to NULL
 * before the call suspends and gets the list only on success, so it is
 * NULL after every failure (cancellation included).
 *
 * Returns 0 and *out, the list getaddrinfo made (owned by the caller:
 * tl_freeaddrinfo), or
 *   TL_ENONAME   the name or service is not known (EAI_NONAME,
 *                EAI_NODATA, EAI_ADDRFAMILY, EAI_SERVICE);
 *   -EAGAIN      temporary failure (EAI_AGAIN: the server did not answer);
 *   -EIO         unrecoverable failure (EAI_FAIL);
 *   -EAFNOSUPPORT, -ESOCKTNOSUPPORT, -EINVAL (bad hints: EAI_FAMILY,
 *                EAI_SOCKTYPE, EAI_BADFLAGS; or out NULL, host and
 *                service both NULL);
 *   -ENOMEM, -errno of EAI_SYSTEM;
 *   -ECANCELED, TL_ENOTASK, TL_EFORK, and -EAGAIN of the thread pool.
 * Every lookup failure carries getaddrinfo's own words as the tl_fail
 * message ("getaddrinfo(\"x.invalid\", 80): Name or service not known";
 * tl_fail_message(code) reads it). SUSPENDS (a cancellation point;
 * timeouts through scopes). */
TL_API TL_NODISCARD int tl_getaddrinfo(const char *host, const char *service,
                                       const struct addrinfo *hints,
                                       struct addrinfo **out);

/* Free a list from tl_getaddrinfo (NULL: no-op). Any thread. */
TL_API void tl_freeaddrinfo(struct addrinfo *ai);

/* Options of tl_net_connect_host / tl_net_connect_addrs; NULL or a
 * zeroed struct gives the defaults. */
typedef struct tl_connect_opts {
    double delay;   /* Happy Eyeballs: seconds between starting one
                       attempt and the next while the earlier ones are
                       still pending (asyncio's happy_eyeballs_delay).
                       0: 0.25 (RFC 8305's recommendation); < 0: one
                       attempt at a time (the next starts only when the
                       previous failed); NaN: -EINVAL */
    int family;     /* AF_UNSPEC (0): any; AF_INET or AF_INET6 only */
    int interleave; /* addresses of the first family tried before the
                       first of the other (asyncio's interleave); 0: 1 */
} tl_connect_opts;

/* asyncio.open_connection(host, port) / Trio's open_tcp_stream: resolve
 * host (a name or a numeric address; tl_getaddrinfo with the socket
 * type), then connect to its addresses with Happy Eyeballs (RFC 8305):
 * the addresses are reordered to alternate IPv6 and IPv4 (opts->
 * interleave), the first attempt starts at once, the next one when the
 * previous failed or opts->delay passed, whichever comes first; the
 * first connection made wins, and every other attempt is cancelled and
 * its socket closed before the call returns. A cancel or a scope
 * deadline of the caller cancels every attempt and closes every socket
 * before the call returns. A connection made before the cancel arrived
 * is returned (completed wins: close it).
 *
 * Returns the connected fd (close-on-exec, non-blocking; owned by the
 * caller: tl_close), or
 *   -EINVAL      host NULL or "", port outside 0..65535, type other
 *                than SOCK_STREAM / SOCK_DGRAM, bad opts (family, NaN
 *                delay);
 *   the codes of tl_getaddrinfo (TL_ENONAME, -EAGAIN, ...);
 *   every attempt failed: the first attempt's code (-ECONNREFUSED,
 *                -ETIMEDOUT, -ENETUNREACH, ...), with a tl_fail message
 *                naming each address and its error ("connect to
 *                localhost:80: [::1]:80: Connection refused; 127.0.0.1:80:
 *                Connection refused");
 *   -EAFNOSUPPORT no address of opts->family; -ENOMEM; -ECANCELED;
 *   TL_ENOTASK, TL_EFORK.
 * SUSPENDS (a cancellation point; timeouts through scopes). */
TL_API TL_NODISCARD int tl_net_connect_host(const char *host, int port,
                                            int type,
                                            const tl_connect_opts *opts);

/* Happy Eyeballs over addresses the caller already has (n >= 1; IPv4,
 * IPv6 or Unix; the list is copied before the call suspends), exactly as
 * tl_net_connect_host does after resolving. Returns the fd, or -EINVAL
 * (addrs NULL, n 0, an address of an unknown family or length, bad type
 * or opts) and the other codes of tl_net_connect_host. SUSPENDS. */
TL_API TL_NODISCARD int tl_net_connect_addrs(const tl_sockaddr *addrs,
                                             size_t n, int type,
                                             const tl_connect_opts *opts);

/* setsockopt / getsockopt of an int option (SO_RCVBUF, TCP_NODELAY, ...):
 * 0 or -errno. Never suspend. */
TL_API int tl_sockopt_set(int fd, int level, int name, int value);
TL_API int tl_sockopt_get(int fd, int level, int name, int *value);

#ifdef __cplusplus
}
#endif

#endif /* TULIP_NET_H */
