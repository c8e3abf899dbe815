/* tulip/server.h — included by <tulip.h>; do not include directly.
 *
 * Servers: asyncio.start_server and Trio's serve_tcp. A server accepts
 * connections on a listening socket (TCP over IPv4 or IPv6, or a Unix
 * stream socket) and runs a handler for each one as a task in the
 * server's own task group, so no connection outlives the server.
 *
 *     static int echo(tl_server_conn *c, void *arg)
 *     {
 *         tl_stream *s = tl_server_conn_stream(c);
 *         char line[1024];
 *         ssize_t n;
 *         while ((n = tl_stream_readline(s, line, sizeof line)) > 0) {
 *             tl_stream_write(s, line, (size_t)n);
 *             if ((n = tl_stream_drain(s)) < 0) break;
 *         }
 *         return n < 0 ? (int)n : 0;
 *     }
 *
 *     tl_sockaddr a;
 *     tl_sockaddr_ip(&a, "127.0.0.1", 0);
 *     tl_server_opts o = {.addr = &a, .handler = echo};
 *     intptr_t port;
 *     rc = tl_group_start(g, tl_serve, &o, &port);   (nursery.start(serve_tcp))
 *
 * or, to shut it down gracefully later (asyncio's server.close() and
 * wait_closed(), with a grace period):
 *
 *     tl_server *srv;
 *     tl_server_open(&srv, &o);        bound: tl_server_port(srv)
 *     tl_group_spawn(g, serve_task, srv);   (calls tl_server_serve(srv))
 *     ...
 *     tl_server_shutdown(srv, 5.0);    stop accepting, 5 s for the rest
 *     n = tl_server_wait_closed(srv);  connections cancelled after 5 s
 *     tl_server_free(srv);
 *
 * Connections. Each accepted connection becomes a task (named after the
 * peer's address) that calls handler(conn, arg). The connection's fd
 * belongs to the runtime: it is closed after the handler returns (do not
 * close it yourself). A handler's negative return is its failure: it is
 * counted (tl_server_stats) and reported on stderr, except the codes a
 * peer or a deadline causes (-ECANCELED, -ETIMEDOUT, -ECONNRESET, -EPIPE,
 * TL_EOF, TL_ECLOSED), and it never cancels the server or the other
 * connections (asyncio logs such an exception and keeps serving). Give
 * a handler a deadline with the scopes (TL_WITH_TIMEOUT around a read: a
 * client that connects and stays silent) or with conn_timeout.
 *
 * Accepting. The server accepts in a loop that drains the backlog at each
 * wakeup (one readiness wait per burst, not per connection), pauses at
 * max_conns live connections and resumes when one ends. A full fd table
 * (EMFILE, ENFILE) or kernel memory shortage (ENOBUFS, ENOMEM) does not
 * stop it: it reports once per episode on stderr, backs off (10 ms,
 * doubling to 1 s, or until one of its connections ends) and keeps
 * serving; a client that reset before it was accepted (ECONNABORTED) and
 * the network errors accept(2) passes on are skipped. On io_uring, where
 * the kernel has it (5.19), one multishot accept request brings every
 * connection (no system call per accept; TULIP_MULTISHOT_ACCEPT=0 turns
 * it off); connections it accepted that the server never took are closed
 * when the server stops.
 *
 * Every function runs on the loop's thread that opened the server.
 */
#ifndef TULIP_SERVER_H
#define TULIP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Servers
 * ====================================================================== */

/* A server (opaque; heap). Belongs to the loop that opened it. */
typedef struct tl_server tl_server;

/* One accepted connection, handed to the handler (opaque; valid until the
 * handler returns). */
typedef struct tl_server_conn tl_server_conn;

/* A connection handler: runs in the connection's own task. Returns 0, or
 * a negative code (its failure: see the top of this page). */
typedef int (*tl_server_fn)(tl_server_conn *c, void *arg);

/* What tl_server_open and tl_serve make. Zero fields are defaults. */
typedef struct tl_server_opts {
    const tl_sockaddr *addr; /* listen here (port 0: a free port); NULL:
                                serve `fd` instead */
    int fd;                  /* with addr NULL: a listening stream socket
                                to serve; the server takes it over (it
                                closes it) once tl_server_open succeeded,
                                and makes it non-blocking (O_NONBLOCK) */
    tl_server_fn handler;    /* required */
    void *arg;               /* handler's second argument */
    int backlog;             /* listen(2) backlog; <= 0: SOMAXCONN */
    unsigned flags;          /* TL_NET_* of tl_net_listen (REUSEPORT,
                                V6ONLY, NO_UNLINK) */
    int max_conns;           /* live connections at most; accept pauses at
                                the cap (the kernel's backlog holds the
                                rest); 0 = no limit */
    double conn_timeout;     /* > 0: each handler runs inside a timeout
                                scope of this many seconds (a handler
                                still running then is cancelled); 0 =
                                none */
} tl_server_opts;

/* Counters of a server (tl_server_stats). */
typedef struct tl_server_stats {
    uint64_t accepted;    /* connections accepted */
    uint64_t active;      /* handlers running now */
    uint64_t peak;        /* most handlers running at once */
    uint64_t failed;      /* handlers that returned a failure */
    uint64_t cancelled;   /* connections cancelled by shutdown's deadline
                             (or by the serving task's cancellation) */
    uint64_t aborted;     /* clients gone before accept (ECONNABORTED, ...) */
    uint64_t fd_full;     /* episodes of a full fd table or no kernel
                             memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) */
} tl_server_stats;

/* Make a server: a socket listening on opts->addr (tl_net_listen, with
 * opts->backlog and opts->flags), or take over the listening socket
 * opts->fd. Nothing is accepted until tl_server_serve. The options are
 * copied (addr too). Returns 0 and *out (free it with tl_server_free), or
 * -EINVAL (out, opts or handler NULL, max_conns < 0, conn_timeout < 0 or
 * NaN, a negative fd), -ENOTSOCK / -EINVAL (opts->fd is not a listening
 * stream socket: it stays the caller's), -ENOMEM, TL_ENOTASK (no loop
 * on this thread), TL_EFORK, or tl_net_listen's errors (-EADDRINUSE,
 * -EACCES, -EMFILE, ...). Never suspends. */
TL_API int tl_server_open(tl_server **out, const tl_server_opts *opts);

/* Serve: accept connections and run a task per connection in the
 * server's own task group until tl_server_shutdown (or the calling task
 * is cancelled), then end every connection and return — the connections
 * never outlive this call. When the calling task was started with
 * tl_group_start and has not called tl_started yet, this calls
 * tl_started(port) once it is accepting (the port of the listening
 * address; 0 for a Unix socket), so `tl_group_start(g, fn, srv, &port)`
 * returns when the server is ready.
 * On shutdown: stop accepting and close the listening socket (new
 * clients are refused), wait until the live connections end or the
 * shutdown's grace period ends, then cancel those left and wait for them.
 * On a cancel of the calling task: cancel every connection and wait.
 * Returns 0 (shut down), -ECANCELED (the task was cancelled), TL_ECLOSED
 * (shut down before it started), -EBUSY (already serving), -EINVAL (s
 * NULL), -ENOMEM, TL_ENOTASK, or an accept error that cannot be retried
 * (-EBADF, -EINVAL: the socket is not listening). SUSPENDS until the
 * server stops. */
TL_API TL_NODISCARD int tl_server_serve(tl_server *s);

/* Start a graceful shutdown: the server stops accepting at once; live
 * connections get `grace` seconds (0: none; INFINITY: as long as they
 * take) from now to end, and those still running then are cancelled. A
 * second call only shortens the grace period. Returns 0, -EINVAL (s NULL,
 * grace NaN). Never suspends, so a handler may call it (a "quit" command);
 * tl_server_wait_closed waits for the end. */
TL_API int tl_server_shutdown(tl_server *s, double grace);

/* Wait until the server has stopped serving (tl_server_serve returned),
 * every connection ended. Returns the number of connections cancelled by
 * the shutdown's deadline (>= 0), or -ECANCELED (the server goes on
 * shutting down), -EINVAL, TL_ENOTASK. Returns at once for a server that
 * is not serving. Do not call it from a handler of the same server (it
 * would wait for itself until the deadline). SUSPENDS. */
TL_API TL_NODISCARD int tl_server_wait_closed(tl_server *s);

/* Free the server: closes its listening socket if still open. Returns 0,
 * -EBUSY (still serving: shut it down and wait first; nothing done).
 * NULL: 0. Never suspends. */
TL_API int tl_server_free(tl_server *s);

/* The address the server listens on (its port is the bound one when
 * opened with port 0), or NULL for NULL. Never suspends. */
TL_API const tl_sockaddr *tl_server_addr(const tl_server *s);

/* The bound port (host order), 0 for a Unix socket, -EINVAL for NULL. */
TL_API int tl_server_port(const tl_server *s);

/* Copy the server's counters into *out. 0, -EINVAL. Never suspends. */
TL_API int tl_server_stats_get(const tl_server *s, tl_server_stats *out);

/* Trio's serve_tcp, as a task function: `arg` is a tl_server_opts
 * (read before the first suspension: it may live on the caller's stack
 * for tl_group_start). Opens the server, signals ready with
 * tl_started(port) when started by tl_group_start, serves until the task
 * is cancelled (cancel the group or the task), frees the server. Returns
 * tl_server_open's or tl_server_serve's result. SUSPENDS. */
TL_API int tl_serve(void *opts);

/* ---- the connection, inside a handler ------------------------------- */

/* The connection's fd (a connected stream socket, non-blocking). Use it
 * with tl_read / tl_send / ...; never close it (the runtime does, after
 * the handler). -1 once a stream took it over. Never suspends. */
TL_API int tl_server_conn_fd(const tl_server_conn *c);

/* The peer's address (from accept; for a Unix socket usually an unnamed
 * address). Never NULL for a valid c. Never suspends. */
TL_API const tl_sockaddr *tl_server_conn_peer(const tl_server_conn *c);

/* The connection as a stream (tulip/stream.h), made on first call; the
 * stream then owns the fd and the runtime ends it after the handler
 * (tl_stream_wait_closed: queued output is sent first; a connection
 * cancelled by shutdown drops it). Do not close or wait_closed it
 * yourself. Returns the same stream on every call, or NULL (out of
 * memory: -ENOMEM from tl_stream_open; the fd stays usable). Never
 * suspends. */
TL_API tl_stream *tl_server_conn_stream(tl_server_conn *c);

/* The server the connection belongs to. Never suspends. */
TL_API tl_server *tl_server_conn_server(const tl_server_conn *c);

#ifdef __cplusplus
}
#endif

#endif /* TULIP_SERVER_H */
