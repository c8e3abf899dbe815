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
 * straight-line code inside a callback API.
 */
#include <errno.h>
#include <http_parser.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>
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
    tl_task task;
    tl_stream *s;
    int busy; /* inside a request: a graceful stop lets it finish */
    int rc;   /* first error met while answering */
    int done; /* the client asked to close, the server is stopping, or an
                 error */
};

static struct {
    struct conn list; /* circular, list.next is the oldest */
    int count;
    int stopping;
    tl_event all_gone; /* set when stopping and count reaches 0 */
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

/* ---- the server: a task per connection, a graceful stop ---------------- */

static int conn_task(void *arg)
{
    struct conn *c = arg;
    c->task = tl_current();
    int rc = 0;
    if (!server.stopping || bytes_waiting(c)) rc = serve_conn(c);
    (void)tl_stream_wait_closed(c->s);
    c->prev->next = c->next, c->next->prev = c->prev;
    if (--server.count == 0 && server.stopping) tl_event_set(&server.all_gone);
    free(c);
    return rc == -ECANCELED ? rc : 0; /* a client's misbehaviour is not ours */
}

static int lfd = -1;
static int sigfd;

/* Wait for SIGINT or SIGTERM, then stop accepting: closing the listening
 * socket wakes the accept with TL_ECLOSED. */
static int wait_signal(void *arg)
{
    (void)arg;
    struct signalfd_siginfo si;
    ssize_t n = tl_read(sigfd, &si, sizeof si);
    if (n < 0) return (int)n;
    server.stopping = 1;
    tl_close(lfd);
    return 0;
}

/* The graceful stop: connections waiting for a request are closed now;
 * those inside one finish it (each closes after its answer); after 2 s
 * the rest are cancelled. */
static void stop(tl_group conns)
{
    for (struct conn *c = server.list.next; c != &server.list; c = c->next)
        if (c->task.gen && !c->busy && !bytes_waiting(c)) tl_cancel(c->task);
    if (server.count > 0) {
        int rc;
        TL_WITH_MOVE_ON(2.0, &rc) rc = tl_event_wait(&server.all_gone);
    }
    tl_group_cancel(conns);
}

static int main_task(void *arg)
{
    int port = (int)(intptr_t)arg;
    tl_sockaddr addr;
    int rc = tl_sockaddr_ip(&addr, "127.0.0.1", port);
    if (rc < 0) return rc;
    lfd = tl_net_listen(&addr, SOCK_STREAM, 0, 0);
    if (lfd < 0) return tl_fail(lfd, "listen on 127.0.0.1:%d", port);
    tl_sockaddr bound;
    char name[64];
    tl_sockaddr_local(lfd, &bound);
    printf("listening on %s\n", tl_sockaddr_format(&bound, name, sizeof name));
    fflush(stdout);
    server.list.next = server.list.prev = &server.list;
    tl_event_init(&server.all_gone);

    tl_group conns;
    tl_group_enter(&conns);
    rc = tl_group_spawn(conns, wait_signal, NULL);
    while (rc == 0) {
        int fd = tl_accept(lfd, NULL, NULL);
        if (fd == TL_ECLOSED) break; /* the signal: stop accepting */
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
            rc = tl_sleep(0.1); /* out of fds: back off, keep serving */
            continue;
        }
        if (fd < 0) {
            rc = fd == -ECONNABORTED || fd == -EPERM ? 0 : fd;
            continue;
        }
        struct conn *c = calloc(1, sizeof *c);
        if (!c || tl_stream_open(&c->s, fd, NULL) < 0) {
            free(c);
            tl_close(fd);
            continue;
        }
        c->prev = server.list.prev, c->next = &server.list; /* link it */
        c->prev->next = c, server.list.prev = c;
        server.count++;
        if (tl_group_spawn(conns, conn_task, c) < 0) {
            c->prev->next = c->next, c->next->prev = c->prev;
            server.count--;
            (void)tl_stream_wait_closed(c->s);
            free(c);
        }
    }
    if (rc == 0) stop(conns);
    rc = tl_group_wait(conns, rc, NULL);
    if (!server.stopping) tl_close(lfd);
    tl_event_destroy(&server.all_gone);
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
    /* SIGINT and SIGTERM arrive through a signalfd that a task reads:
     * blocked here, before tulip starts any thread, so every thread
     * inherits the mask and none of them takes the signal itself. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0) {
        perror("http_server: signalfd");
        return 1;
    }
    tl_config cfg = {.no_sigint = 1};
    int rc = tl_run_with(&cfg, main_task, (void *)(intptr_t)port);
    close(sigfd);
    return rc == 0 ? 0 : 1;
}
