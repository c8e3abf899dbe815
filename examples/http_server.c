/* http_server PORT [DELAY_MS]: an HTTP/1.1 keep-alive hello world.
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

struct conn {
    struct conn *prev, *next; /* the server's list of connections */
    tl_task task;             /* the connection's task (its handler's) */
    tl_stream *s;
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
    return tl_stream_buffered(c->s) > 0 ||
           (ioctl(tl_stream_fd(c->s), FIONREAD, &n) == 0 && n > 0);
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
static int handle(tl_server_conn *sc, void *arg)
{
    (void)arg;
    struct conn c = {.task = tl_current(), .s = tl_server_conn_stream(sc)};
    if (!c.s) return -ENOMEM;
    c.prev = server.list.prev, c.next = &server.list; /* link it */
    c.prev->next = &c, server.list.prev = &c;
    int rc = 0;
    /* Accepted as the stop began: answer only a request already sent. */
    if (!server.stopping || bytes_waiting(&c)) rc = serve_conn(&c);
    c.prev->next = c.next, c.next->prev = c.prev;
    return rc == -ECANCELED ? rc : 0; /* a client's misbehaviour is not ours */
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
        if (!c->busy && !bytes_waiting(c)) tl_cancel(c->task);
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
    int rc = tl_signals_open(&st.sig, &set);
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
    return rc;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    long port = argc > 1 ? strtol(argv[1], &end, 10) : -1;
    long ms = 0;
    if (argc == 3 && end && !*end) ms = strtol(argv[2], &end, 10);
    if (argc < 2 || argc > 3 || !end || *end || port < 0 || port > 65535 || ms < 0 ||
        ms > 600000) {
        fprintf(stderr, "usage: http_server PORT [DELAY_MS]   (PORT 0: any free port)\n");
        return 2;
    }
    delay_s = (double)ms / 1000.0;
    int rc = tl_run(main_task, (void *)(intptr_t)port);
    return rc == 0 ? 0 : 1;
}
