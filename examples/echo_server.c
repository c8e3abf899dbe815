/* echo_server PORT: a TCP echo server. Every connection is a task that
 * reads what arrives and writes it back, until the client closes. PORT 0
 * picks a free port; the first line on stdout says where it listens
 * ("listening on 127.0.0.1:PORT"). SIGINT or SIGTERM: stop accepting,
 * close the connections, exit 0.
 *
 * tl_server does the accepting (a task per connection, in the server's
 * own group); a tl_signals watcher turns the signal into a shutdown.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <tulip.h>

/* One connection: echo until the client closes or resets. */
static int echo(tl_server_conn *c, void *arg)
{
    (void)arg;
    tl_stream *s = tl_server_conn_stream(c);
    if (!s) return -ENOMEM;
    char buf[16384];
    for (;;) {
        ssize_t n = tl_stream_read(s, buf, sizeof buf);
        if (n <= 0) return n == 0 || n == -ECONNRESET ? 0 : (int)n;
        int rc = tl_stream_write(s, buf, (size_t)n);
        if (rc == 0) rc = tl_stream_drain(s); /* a client that stops reading
                                                 stops us, not our memory */
        if (rc < 0) return rc == -EPIPE || rc == -ECONNRESET ? 0 : rc;
    }
}

struct stopper {
    tl_signals *sig;
    tl_server *srv;
};

/* Wait for SIGINT or SIGTERM, then shut the server down: it stops
 * accepting and cancels every connection at once (no grace period). */
static int wait_signal(void *arg)
{
    struct stopper *st = arg;
    int rc = tl_signals_wait(st->sig, NULL);
    if (rc < 0) return rc;
    return tl_server_shutdown(st->srv, 0);
}

static int main_task(void *arg)
{
    int port = (int)(intptr_t)arg;
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
    tl_server_opts o = {.addr = &addr, .handler = echo};
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
    if (rc == 0) rc = tl_server_serve(st.srv); /* until the signal */
    tl_group_cancel(g); /* the server stopped on its own: no more signal */
    rc = tl_group_wait(g, rc, NULL);
    tl_server_free(st.srv);
    tl_signals_close(st.sig);
    return rc;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 2 || *end || port < 0 || port > 65535) {
        fprintf(stderr, "usage: echo_server PORT   (PORT 0: any free port)\n");
        return 2;
    }
    int rc = tl_run(main_task, (void *)(intptr_t)port);
    return rc == 0 ? 0 : 1;
}
