/* echo_server PORT: a TCP echo server. Every connection is a task that
 * reads what arrives and writes it back, until the client closes. PORT 0
 * picks a free port; the first line on stdout says where it listens
 * ("listening on 127.0.0.1:PORT"). SIGINT or SIGTERM: stop accepting,
 * close the connections, exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <tulip.h>

/* One connection: echo until the client closes or resets. */
static int echo(tl_stream *s)
{
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

static int conn_task(void *arg)
{
    tl_stream *s = arg;
    int rc = echo(s);
    (void)tl_stream_wait_closed(s);
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
    tl_close(lfd);
    lfd = -1;
    return 0;
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

    tl_group conns; /* every connection's task: none outlives main */
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
        tl_stream *s;
        if (tl_stream_open(&s, fd, NULL) < 0) {
            tl_close(fd);
            continue;
        }
        if (tl_group_spawn(conns, conn_task, s) < 0) (void)tl_stream_wait_closed(s);
    }
    tl_group_cancel(conns); /* close every connection */
    rc = tl_group_wait(conns, rc, NULL);
    if (lfd >= 0) tl_close(lfd);
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
        perror("echo_server: signalfd");
        return 1;
    }
    tl_config cfg = {.no_sigint = 1};
    int rc = tl_run_with(&cfg, main_task, (void *)(intptr_t)port);
    close(sigfd);
    return rc == 0 ? 0 : 1;
}
