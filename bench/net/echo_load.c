/* The echo load client of tools/bench-net.sh: C, one thread, epoll, the
 * same for every server it drives (so the client is never the variable).
 *
 *   echo_load PORT [CONNS] [MSG_BYTES] [SECONDS] [WARMUP_SECONDS] [SERVER_PID]
 *
 * Opens CONNS (default 64) TCP connections to 127.0.0.1:PORT; each keeps
 * exactly one MSG_BYTES-byte (default 64) message in flight: send it,
 * read the whole echo back, check it, send the next. After WARMUP_SECONDS
 * (default 0.5) it counts the round trips completed during SECONDS
 * (default 3) and prints
 *
 *   echo_msgs: <round trips counted>
 *   echo_secs: <seconds counted>
 *   echo_rate: <messages/s>
 *
 * With SERVER_PID it also reads that process's CPU time (utime + stime
 * of all its threads, /proc/PID/stat) when the counted window opens and
 * when it closes, and prints
 *
 *   server_cpu: <CPU seconds the server used in the window>
 *   echo_cpu: <server CPU ns per message>
 *
 * Exit 0, or 1 with a message on stderr (connection refused, a
 * wrong or short echo, a server that hung up, no progress for 5 s).
 * Bounded: it always ends after WARMUP + SECONDS + 5 s at most.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t got;                /* bytes of the current echo received */
    unsigned char tag;         /* varies the message, so a stale echo shows */
    unsigned char buf[65536];
};

static size_t msg_len = 64;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of a whole process in seconds, or -1. */
static double proc_cpu(long pid)
{
    char path[64], line[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t len = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[len] = 0;
    char *p = strrchr(line, ')'); /* the name may hold spaces */
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    /* After ") ": state is field 3; utime and stime are fields 14, 15. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void die(const char *what)
{
    fprintf(stderr, "echo_load: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

static void fill(unsigned char *msg, unsigned char tag)
{
    for (size_t i = 0; i < msg_len; i++) msg[i] = (unsigned char)(tag + i);
}

static void send_msg(struct conn *c)
{
    unsigned char msg[65536];
    c->tag++;
    fill(msg, c->tag);
    size_t off = 0;
    while (off < msg_len) {
        ssize_t n = send(c->fd, msg + off, msg_len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        /* 64 bytes into an empty socket buffer: EAGAIN would mean the
         * server stopped reading while holding nothing of ours. */
        die("send");
    }
    c->got = 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: echo_load PORT [CONNS] [MSG_BYTES] [SECONDS] [WARMUP]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int nconn = argc > 2 ? atoi(argv[2]) : 64;
    msg_len = argc > 3 ? (size_t)atol(argv[3]) : 64;
    double secs = argc > 4 ? atof(argv[4]) : 3.0;
    double warm = argc > 5 ? atof(argv[5]) : 0.5;
    long pid = argc > 6 ? atol(argv[6]) : 0;
    if (port <= 0 || port > 65535 || nconn < 1 || nconn > 10000 || msg_len < 1 ||
        msg_len > 65536 || secs <= 0 || secs > 600 || warm < 0 || warm > 60 ||
        pid < 0) {
        fprintf(stderr, "echo_load: bad arguments\n");
        return 2;
    }

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    if (!conns) die("calloc");
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* Blocking connect, then non-blocking for the run. */
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
        conns[i].fd = fd;
        conns[i].tag = (unsigned char)(i * 7);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    }
    for (int i = 0; i < nconn; i++) send_msg(&conns[i]);

    double t0 = now(), start = t0 + warm, end = start + secs;
    double last_progress = t0, opened = 0, cpu0 = 0;
    long counted = 0;
    int counting = 0;
    struct epoll_event evs[256];
    for (;;) {
        double t = now();
        if (!counting && t >= start) {
            counting = 1;
            opened = t;
            if (pid && (cpu0 = proc_cpu(pid)) < 0) die("reading the server's CPU time");
        }
        if (counting && t >= end) break;
        if (t - last_progress > 5.0) {
            errno = 0;
            fprintf(stderr, "echo_load: no echo for 5 s\n");
            return 1;
        }
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            for (;;) {
                ssize_t r = recv(c->fd, c->buf + c->got, msg_len - c->got, 0);
                if (r < 0 && errno == EINTR) continue;
                if (r < 0 && errno == EAGAIN) break;
                if (r < 0) die("recv");
                if (r == 0) {
                    errno = 0;
                    fprintf(stderr, "echo_load: the server hung up\n");
                    return 1;
                }
                c->got += (size_t)r;
                if (c->got < msg_len) continue;
                unsigned char want[65536];
                fill(want, c->tag);
                if (memcmp(want, c->buf, msg_len) != 0) {
                    fprintf(stderr, "echo_load: the echo differs from the message\n");
                    return 1;
                }
                if (counting) counted++;
                last_progress = t;
                send_msg(c);
                break; /* one message in flight: nothing more to read now */
            }
        }
    }
    double closed = now();
    double cpu1 = pid ? proc_cpu(pid) : 0;
    if (cpu1 < 0) die("reading the server's CPU time");
    printf("echo_msgs: %ld\n", counted);
    printf("echo_secs: %.3f\n", closed - opened);
    printf("echo_rate: %.0f msg/s\n", (double)counted / (closed - opened));
    if (pid) {
        printf("server_cpu: %.2f s\n", cpu1 - cpu0);
        if (counted > 0) printf("echo_cpu: %.0f ns/msg\n", (cpu1 - cpu0) * 1e9 / (double)counted);
    }
    for (int i = 0; i < nconn; i++) close(conns[i].fd);
    free(conns);
    close(ep);
    return 0;
}
