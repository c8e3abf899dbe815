/* http_server [--tls CERT KEY] PORT [DELAY_MS]: an HTTP/1.1 keep-alive
 * hello world, over TLS (HTTPS) with --tls.
 *
 * Every request gets "Hello, World!\n", DELAY_MS milliseconds after it
 * arrived (default 0: at once; `make demo` uses a delay to play the seed's
 * slow server). Requests are parsed by http-parser (Debian's
 * libhttp-parser), connections stay open as HTTP/1.1 asks, pipelined
 * requests are answered in order. PORT 0 picks a free port; the first line
 * on stdout says where it listens ("listening on 127.0.0.1:PORT").
 * SIGINT or SIGTERM: stop accepting, close the idle connections, let
 * requests in progress finish (2 s at most), exit 0.
 *
 * --tls CERT KEY: HTTPS with that PEM certificate chain and private key
 * (libtulip-tls, tulip/tls.h; ALPN "http/1.1"; clients may resume their
 * sessions); each connection's handler does the handshake first (10 s at
 * most). Built in only when libtulip-tls is (OpenSSL 3 found); otherwise
 * --tls is refused. A certificate to try it with:
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
 *     -nodes -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost \
 *     -addext subjectAltName=DNS:localhost,IP:127.0.0.1
 *   http_server --tls cert.pem key.pem 8443 &
 *   curl --cacert cert.pem https://127.0.0.1:8443/
 *
 * The parser's callbacks run on the connection task's own stack, so the
 * one that sees a whole request can simply sleep and write the answer:
 * straight-line code inside a callback API. tl_server does the accepting
 * (a task per connection, in the server's own group, and the grace period
 * of the graceful stop); a tl_signals watcher turns the signal into the
 * stop.
 */
#include <errno.h>
#include <http_parser.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <tulip.h>
#ifdef TULIP_HAVE_TLS
#include <tulip/tls.h>
#endif

static const char hello[] = "HTTP/1.1 200 OK\r\n"
                            "Content-Type: text/plain\r\n"
                            "Content-Length: 14\r\n"
                            "\r\n"
                            "Hello, World!\n";
static const char hello_close[] = "HTTP/1.1 200 OK\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: 14\r\n"
                                  "Connection: close\r\n"
                                  "\r\n"
                                  "Hello, World!\n";
static const char bad_request[] = "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Length: 0\r\n"
                                  "Connection: close\r\n"
                                  "\r\n";

static double delay_s;
static const char *tls_cert, *tls_key; /* --tls: serve HTTPS */
#ifdef TULIP_HAVE_TLS
static tl_tls_ctx *tls;
#endif

struct conn {
    struct conn *prev, *next; /* the server's list of connections */
    tl_task task;             /* the connection's task (its handler's) */
    tl_stream *s;             /* NULL while the TLS handshake runs */
    int fd;
    int busy; /* inside a request: a graceful stop lets it finish */
    int rc;   /* first error met while answering */
    int done; /* the client asked to close, the server is stopping, or an
                 error */
};

static struct {
    struct conn list; /* circular, list.next is the oldest */
    int stopping;
} server;

/* Bytes of a request that arrived and are not read yet. */
static int bytes_waiting(struct conn *c)
{
    int n = 0;
    return (c->s && tl_stream_buffered(c->s) > 0) ||
           (ioctl(c->fd, FIONREAD, &n) == 0 && n > 0);
}

static int on_message_begin(http_parser *p)
{
    ((struct conn *)p->data)->busy = 1;
    return 0;
}

/* A whole request has been parsed: answer it. Runs inside
 * http_parser_execute, on this connection's task: it may suspend. */
static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    int keep = http_should_keep_alive(p);
    if (delay_s > 0 && (c->rc = tl_sleep(delay_s)) < 0) {
        c->done = 1; /* cancelled: the server is going away */
        return -1;
    }
    c->rc = keep ? tl_stream_write(c->s, hello, sizeof hello - 1)
                 : tl_stream_write(c->s, hello_close, sizeof hello_close - 1);
    if (c->rc == 0) c->rc = tl_stream_drain(c->s);
    c->busy = 0;
    if (c->rc < 0 || !keep || server.stopping) {
        c->done = 1;
        return -1; /* stop parsing: nothing after this request is answered */
    }
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_message_complete = on_message_complete,
};

/* One connection: read, parse, answer, until the client closes. */
static int serve_conn(struct conn *c)
{
    tl_stream *s = c->s;
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = c;
    char buf[16384];
    for (;;) {
        ssize_t n = tl_stream_read(s, buf, sizeof buf);
        if (n < 0) return (int)n == -ECONNRESET ? 0 : (int)n;
        /* n == 0 tells the parser that the stream ended. */
        size_t used = http_parser_execute(&p, &settings, buf, (size_t)n);
        if (c->done) return c->rc < 0 ? c->rc : 0;
        if (used != (size_t)n || HTTP_PARSER_ERRNO(&p) != HPE_OK) {
            /* Not HTTP (or an upgrade, which this server does not speak). */
            if (tl_stream_write(s, bad_request, sizeof bad_request - 1) == 0)
                (void)!tl_stream_drain(s);
            return 0;
        }
        if (n == 0) return 0;
    }
}

/* ---- the server: a handler per connection, a graceful stop ------------- */

/* A connection's handler, in its own task (tl_server made it). The
 * connection is listed while it runs, so that a graceful stop can tell
 * the idle ones from those inside a request. */
/* HTTPS: the handshake on c->fd, bounded (a client that stalls in it
 * goes after 10 s), makes c->s: a TLS stream that borrows the fd (the
 * server closes it after the handler). */
static int tls_handshake(struct conn *c)
{
#ifdef TULIP_HAVE_TLS
    int rc;
    TL_WITH_TIMEOUT(10.0, &rc) {
        rc = tl_tls_accept(&c->s, tls, c->fd, &(tl_stream_opts){.flags = TL_STREAM_BORROW});
    }
    return rc;
#else
    (void)c;
    return -ENOTSUP;
#endif
}

static int handle(tl_server_conn *sc, void *arg)
{
    (void)arg;
    struct conn c = {.task = tl_current(), .fd = tl_server_conn_fd(sc)};
    c.prev = server.list.prev, c.next = &server.list; /* link it */
    c.prev->next = &c, server.list.prev = &c;
    int rc = 0;
    if (tls_cert) {
        /* A refused handshake is the client's business (the server's
         * side of it: a certificate it does not trust, plain HTTP, ...). */
        if (!server.stopping) rc = tls_handshake(&c);
    } else {
        c.s = tl_server_conn_stream(sc); /* the server ends it */
        if (!c.s) rc = -ENOMEM;
    }
    /* Accepted as the stop began: answer only a request already sent. */
    if (c.s && (!server.stopping || bytes_waiting(&c))) rc = serve_conn(&c);
    /* close_notify, then the stream is freed (the fd stays the server's). */
    if (c.s && tls_cert) (void)tl_stream_wait_closed(c.s);
    c.prev->next = c.next, c.next->prev = c.prev;
    return rc == -ECANCELED || rc == -ENOMEM ? rc : 0; /* a client's misbehaviour is not ours */
}

struct stopper {
    tl_signals *sig;
    tl_server *srv;
};

/* Wait for SIGINT or SIGTERM, then stop gracefully: the server stops
 * accepting and gives the connections 2 s to end, then cancels those
 * left; connections waiting for a request are closed now; those inside
 * one finish it (each closes after its answer). */
static int wait_signal(void *arg)
{
    struct stopper *st = arg;
    int rc = tl_signals_wait(st->sig, NULL);
    if (rc < 0) return rc;
    server.stopping = 1;
    rc = tl_server_shutdown(st->srv, 2.0);
    for (struct conn *c = server.list.next; c != &server.list; c = c->next)
        if (!c->s || (!c->busy && !bytes_waiting(c)))
            tl_cancel(c->task); /* idle, or still in its handshake */
    return rc;
}

static int main_task(void *arg)
{
    int port = (int)(intptr_t)arg;
    server.list.next = server.list.prev = &server.list;
    /* Watch the signals before saying where we listen: a client that
     * sends SIGTERM as soon as it knows the port finds them watched. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    struct stopper st;
    int rc;
#ifdef TULIP_HAVE_TLS
    if (tls_cert) {
        tl_tls_server_opts to = {.alpn = "http/1.1"};
        rc = tl_tls_server_ctx(&tls, tls_cert, tls_key, &to);
        if (rc < 0) return rc; /* tl_run reports it, with OpenSSL's words */
    }
#endif
    rc = tl_signals_open(&st.sig, &set);
    if (rc < 0) return tl_fail(rc, "watch SIGINT and SIGTERM");
    tl_sockaddr addr;
    rc = tl_sockaddr_ip(&addr, "127.0.0.1", port);
    tl_server_opts o = {.addr = &addr, .handler = handle};
    if (rc == 0) rc = tl_server_open(&st.srv, &o);
    if (rc < 0) {
        tl_signals_close(st.sig);
        return tl_fail(rc, "listen on 127.0.0.1:%d", port);
    }
    char name[64];
    printf("listening on %s\n", tl_sockaddr_format(tl_server_addr(st.srv), name, sizeof name));
    fflush(stdout);

    tl_group g; /* the signal's task: it does not outlive main */
    tl_group_enter(&g);
    rc = tl_group_spawn(g, wait_signal, &st);
    if (rc == 0) rc = tl_server_serve(st.srv); /* until the stop is done */
    tl_group_cancel(g); /* the server stopped on its own: no more signal */
    rc = tl_group_wait(g, rc, NULL);
    tl_server_free(st.srv);
    tl_signals_close(st.sig);
#ifdef TULIP_HAVE_TLS
    tl_tls_ctx_free(tls);
#endif
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--tls") == 0) {
#ifndef TULIP_HAVE_TLS
        fprintf(stderr, "http_server: built without TLS (libtulip-tls needs "
                        "OpenSSL 3: scripts/install-deps.sh)\n");
        return 2;
#endif
        if (argc < 4) {
            argc = 1; /* usage */
        } else {
            tls_cert = argv[2];
            tls_key = argv[3];
            argv += 3;
            argc -= 3;
        }
    }
    char *end = NULL;
    long port = argc > 1 ? strtol(argv[1], &end, 10) : -1;
    long ms = 0;
    if (argc == 3 && end && !*end) ms = strtol(argv[2], &end, 10);
    if (argc < 2 || argc > 3 || !end || *end || port < 0 || port > 65535 || ms < 0 ||
        ms > 600000) {
        fprintf(stderr, "usage: http_server [--tls CERT KEY] PORT [DELAY_MS]   "
                        "(PORT 0: any free port)\n");
        return 2;
    }
    delay_s = (double)ms / 1000.0;
    int rc = tl_run(main_task, (void *)(intptr_t)port);
    return rc == 0 ? 0 : 1;
}
