/* The operations on both backends: round trips of every call over
 * socketpairs, loopback TCP (v4, v6), UDP and Unix sockets and a file;
 * a cancel at each operation's suspension point (nothing lost, the
 * caller's buffer never written after the call returned); SIGPIPE never
 * raised; -EMFILE surfaced; no fd leaked. */
#include "net_helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

/* A listening loopback TCP socket (v4 or v6) on a free port. */
static int tcp_listener(int family, struct sockaddr_storage *ss,
                        socklen_t *len)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert_geq(fd, 0);
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        *len = sizeof *a;
    }
    cr_assert_eq(bind(fd, (struct sockaddr *)ss, *len), 0);
    cr_assert_eq(listen(fd, 16), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)ss, len), 0);
    return fd;
}

/* ---- round trips ---------------------------------------------------------- */

static int main_stream_ops(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, SOCK_NONBLOCK);
    char b[64];
    cr_expect_eq(tl_write(sv[0], "hello", 5), 5);
    cr_expect_eq(tl_read(sv[1], b, sizeof b), 5);
    cr_expect_eq(memcmp(b, "hello", 5), 0);

    struct iovec out[2] = {{"ab", 2}, {"cde", 3}};
    cr_expect_eq(tl_writev(sv[1], out, 2), 5);
    char x[2], y[3];
    struct iovec in[2] = {{x, 2}, {y, 3}};
    cr_expect_eq(tl_readv(sv[0], in, 2), 5);
    cr_expect_eq(memcmp(x, "ab", 2), 0);
    cr_expect_eq(memcmp(y, "cde", 3), 0);
    cr_expect_eq(tl_readv(sv[0], in, -1), -EINVAL);

    cr_expect_eq(tl_send(sv[0], "peek", 4, 0), 4);
    cr_expect_eq(tl_recv(sv[1], b, sizeof b, MSG_PEEK), 4);
    cr_expect_eq(tl_recv(sv[1], b, sizeof b, 0), 4);

    struct iovec mv = {"msg!", 4};
    struct msghdr m = {.msg_iov = &mv, .msg_iovlen = 1};
    cr_expect_eq(tl_sendmsg(sv[1], &m, 0), 4);
    char rb[8];
    struct iovec rv = {rb, sizeof rb};
    struct msghdr rm = {.msg_iov = &rv, .msg_iovlen = 1};
    cr_expect_eq(tl_recvmsg(sv[0], &rm, 0), 4);
    cr_expect_eq(memcmp(rb, "msg!", 4), 0);

    /* Half-close: the reader sees end of file. */
    cr_expect_eq(tl_shutdown(sv[0], SHUT_WR), 0);
    cr_expect_eq(tl_read(sv[1], b, sizeof b), 0);
    /* A peer that is gone: -EPIPE, and no SIGPIPE kills us. */
    cr_expect_eq(tl_close(sv[1]), 0);
    ssize_t n = tl_write(sv[0], "x", 1);
    cr_expect(n == -EPIPE || n == -ECONNRESET, "write to a gone peer: %zd", n);
    struct iovec one = {"x", 1};
    n = tl_writev(sv[0], &one, 1);
    cr_expect(n == -EPIPE || n == -ECONNRESET, "writev to a gone peer: %zd", n);
    cr_expect_eq(tl_close(sv[0]), 0);
    cr_expect_eq(tl_read(-1, b, 1), -EBADF);
    return 0;
}

Test(io_ops, stream_round_trips_and_no_sigpipe, .timeout = 10)
{
    signal(SIGPIPE, SIG_DFL);
    cr_assert_eq(tl_run(main_stream_ops, NULL), 0);
}

/* A pipe whose reader is gone: tl_write, tl_writev and a stream's write
 * get -EPIPE and the process lives on (MSG_NOSIGNAL is for sockets only:
 * the loop's thread blocks SIGPIPE while tl_run runs). */
static int main_pipe_epipe(void *arg)
{
    (void)arg;
    sigset_t cur;
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    cr_expect_eq(sigismember(&cur, SIGPIPE), 1, "SIGPIPE not blocked in the loop's thread");
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_expect_eq(tl_close(p[0]), 0);
    cr_expect_eq(tl_write(p[1], "x", 1), -EPIPE);
    struct iovec one = {"x", 1};
    cr_expect_eq(tl_writev(p[1], &one, 1), -EPIPE);
    cr_expect_eq(tl_close(p[1]), 0);

    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    tl_stream *s;
    cr_assert_eq(tl_stream_open(&s, p[1], NULL), 0);
    cr_expect_eq(tl_close(p[0]), 0);
    int rc = tl_stream_write(s, "x", 1);
    if (rc == 0) rc = tl_stream_drain(s);
    cr_expect_eq(rc, -EPIPE);
    (void)tl_stream_wait_closed(s);
    return 0;
}

Test(io_ops, a_pipe_whose_reader_is_gone_gives_epipe_and_the_mask_comes_back,
     .timeout = 10)
{
    signal(SIGPIPE, SIG_DFL);
    cr_assert_eq(tl_run(main_pipe_epipe, NULL), 0);
    sigset_t cur, pend;
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    cr_expect_eq(sigismember(&cur, SIGPIPE), 0, "SIGPIPE still blocked after tl_run");
    cr_assert_eq(sigpending(&pend), 0);
    cr_expect_eq(sigismember(&pend, SIGPIPE), 0, "a SIGPIPE left pending after tl_run");
}

/* A program that blocked SIGPIPE itself keeps it blocked. */
Test(io_ops, sigpipe_blocked_by_the_program_stays_blocked, .timeout = 10)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    cr_assert_eq(tl_run(main_pipe_epipe, NULL), 0);
    sigset_t cur;
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    cr_expect_eq(sigismember(&cur, SIGPIPE), 1);
}

static int main_file_ops(void *arg)
{
    (void)arg;
    char path[] = "/tmp/tulip-io-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    cr_expect_eq(tl_pwrite(fd, "0123456789", 10, 0), 10);
    char b[8] = {0};
    cr_expect_eq(tl_pread(fd, b, 4, 3), 4);
    cr_expect_eq(memcmp(b, "3456", 4), 0);
    cr_expect_eq(tl_pread(fd, b, 4, -1), -EINVAL);
    cr_expect_eq(lseek(fd, 0, SEEK_SET), 0);
    cr_expect_eq(tl_read(fd, b, 2), 2);
    cr_expect_eq(tl_read(fd, b, 2), 2);
    cr_expect_eq(memcmp(b, "23", 2), 0);
    int sv[2];
    tl_test_socketpair(sv, SOCK_NONBLOCK);
    cr_expect_eq(tl_pread(sv[0], b, 1, 0), -ESPIPE);
    tl_close(sv[0]);
    tl_close(sv[1]);
    cr_expect_eq(tl_close(fd), 0);
    return 0;
}

Test(io_ops, pread_pwrite_and_the_file_position, .timeout = 10)
{
    cr_assert_eq(tl_run(main_file_ops, NULL), 0);
}

struct conn {
    int lfd;
    struct sockaddr_storage ss;
    socklen_t len;
    int family;
    int rc;
};

static int connect_task(void *arg)
{
    struct conn *c = arg;
    int fd = socket(c->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_expect_geq(fd, 0);
    c->rc = tl_connect(fd, (struct sockaddr *)&c->ss, c->len);
    cr_expect_eq(c->rc, 0, "connect: %s", tl_strerror(c->rc));
    char buf[16];
    cr_expect_eq(tl_send(fd, "ping", 4, 0), 4);
    cr_expect_eq(tl_recv(fd, buf, sizeof buf, 0), 4);
    cr_expect_eq(memcmp(buf, "pong", 4), 0);
    tl_close(fd);
    return 0;
}

static int main_tcp(void *arg)
{
    struct conn c = {.family = *(int *)arg};
    c.lfd = tcp_listener(c.family, &c.ss, &c.len);
    tl_task t = tl_test_spawn(connect_task, &c);
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    int fd = tl_accept(c.lfd, (struct sockaddr *)&peer, &pl);
    cr_assert_geq(fd, 0, "accept: %s", tl_strerror(fd));
    cr_expect_eq(peer.ss_family, c.family);
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    cr_expect(fl & O_NONBLOCK);
    cr_expect(fdfl & FD_CLOEXEC);
    char buf[16];
    cr_expect_eq(tl_recv(fd, buf, sizeof buf, 0), 4);
    cr_expect_eq(tl_send(fd, "pong", 4, 0), 4);
    tl_test_join(t);
    cr_expect_eq(tl_read(fd, buf, sizeof buf), 0);
    tl_close(fd);
    tl_close(c.lfd);
    /* Nobody listens any more. */
    int s = socket(c.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_expect_eq(tl_connect(s, (struct sockaddr *)&c.ss, c.len),
                 -ECONNREFUSED);
    tl_close(s);
    return 0;
}

Test(io_ops, tcp_v4_accept_connect_round_trip, .timeout = 10)
{
    int fam = AF_INET;
    cr_assert_eq(tl_run(main_tcp, &fam), 0);
}

Test(io_ops, tcp_v6_accept_connect_round_trip, .timeout = 10)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                             .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (probe < 0 || bind(probe, (struct sockaddr *)&a, sizeof a) < 0) {
        if (probe >= 0) close(probe);
        cr_skip_test("no IPv6 loopback here");
    }
    close(probe);
    int fam = AF_INET6;
    cr_assert_eq(tl_run(main_tcp, &fam), 0);
}

static int main_udp(void *arg)
{
    (void)arg;
    int a = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int b = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    cr_assert_eq(bind(a, (struct sockaddr *)&sa, sl), 0);
    cr_assert_eq(getsockname(a, (struct sockaddr *)&sa, &sl), 0);
    cr_expect_eq(tl_sendto(b, "dgram", 5, 0, (struct sockaddr *)&sa, sl), 5);
    char buf[16];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    cr_expect_eq(tl_recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from,
                             &fl), 5);
    cr_expect_eq(fl, sizeof from);
    cr_expect_eq(from.sin_family, AF_INET);
    cr_expect_eq(memcmp(buf, "dgram", 5), 0);
    /* Reply to the sender's address. */
    cr_expect_eq(tl_sendto(a, "back", 4, 0, (struct sockaddr *)&from, fl), 4);
    cr_expect_eq(tl_recvfrom(b, buf, sizeof buf, 0, NULL, NULL), 4);
    cr_expect_eq(tl_recvfrom(b, buf, sizeof buf, 0, NULL, &fl), -EINVAL);
    tl_close(a);
    tl_close(b);
    return 0;
}

Test(io_ops, udp_sendto_recvfrom_round_trip, .timeout = 10)
{
    cr_assert_eq(tl_run(main_udp, NULL), 0);
}

struct unix_conn {
    char path[108];
    int type;
};

static int unix_client(void *arg)
{
    struct unix_conn *u = arg;
    int fd = socket(AF_UNIX, u->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, u->path);
    cr_expect_eq(tl_connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_expect_eq(tl_send(fd, "unix", 4, 0), 4);
    tl_close(fd);
    return 0;
}

static int main_unix(void *arg)
{
    (void)arg;
    struct unix_conn u = {.type = SOCK_STREAM};
    snprintf(u.path, sizeof u.path, "/tmp/tulip-io-%d.sock", (int)getpid());
    unlink(u.path);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, u.path);
    cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(l, 4), 0);
    tl_task t = tl_test_spawn(unix_client, &u);
    int fd = tl_accept(l, NULL, NULL);
    cr_assert_geq(fd, 0);
    char buf[8];
    cr_expect_eq(tl_read(fd, buf, sizeof buf), 4);
    cr_expect_eq(tl_read(fd, buf, sizeof buf), 0);
    tl_test_join(t);
    tl_close(fd);
    tl_close(l);
    unlink(u.path);
    return 0;
}

Test(io_ops, unix_stream_round_trip, .timeout = 10)
{
    cr_assert_eq(tl_run(main_unix, NULL), 0);
}

/* ---- a cancel at each suspension point ------------------------------------- */

struct op_task {
    int kind; /* 0 read, 1 recv, 2 recvfrom, 3 recvmsg, 4 readv, 5 wait */
    int fd;
    ssize_t rc;
    int done;
    unsigned char buf[16];
};

static int blocked_reader(void *arg)
{
    struct op_task *o = arg;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    struct iovec v = {o->buf, sizeof o->buf};
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    switch (o->kind) {
    case 0: o->rc = tl_read(o->fd, o->buf, sizeof o->buf); break;
    case 1: o->rc = tl_recv(o->fd, o->buf, sizeof o->buf, 0); break;
    case 2:
        o->rc = tl_recvfrom(o->fd, o->buf, sizeof o->buf, 0,
                            (struct sockaddr *)&ss, &sl);
        break;
    case 3: o->rc = tl_recvmsg(o->fd, &m, 0); break;
    case 4: o->rc = tl_readv(o->fd, &v, 1); break;
    default: o->rc = tl_fd_wait(o->fd, TL_READABLE); break;
    }
    o->done = 1;
    return 0;
}

/* Cancel a blocked read-side call, then write: the bytes go to the next
 * read, and the cancelled call's buffer stays untouched. */
static int main_cancel_reads(void *arg)
{
    (void)arg;
    for (int kind = 0; kind <= 5; kind++) {
        int sv[2];
        tl_test_socketpair(sv, SOCK_NONBLOCK);
        struct op_task o = {.kind = kind, .fd = sv[0]};
        memset(o.buf, 0xAA, sizeof o.buf);
        tl_task t = tl_test_spawn(blocked_reader, &o);
        tl_test_settle();
        cr_expect_eq(o.done, 0, "kind %d returned early: %zd", kind, o.rc);
        cr_expect_eq(tl_cancel(t), 0);
        tl_test_join(t);
        cr_expect_eq(o.rc, -ECANCELED, "kind %d: %zd", kind, o.rc);
        cr_expect_eq(tl_write(sv[1], "abc", 3), 3);
        tl_test_settle(); /* a late kernel write would land now */
        for (size_t i = 0; i < sizeof o.buf; i++)
            cr_expect_eq(o.buf[i], 0xAA, "kind %d: buffer written after "
                         "return at %zu", kind, i);
        char b[8];
        cr_expect_eq(tl_read(sv[0], b, sizeof b), 3, "kind %d: bytes lost",
                     kind);
        tl_close(sv[0]);
        tl_close(sv[1]);
    }
    return 0;
}

Test(io_ops, a_cancelled_read_loses_nothing_and_never_writes_late,
     .timeout = 10)
{
    cr_assert_eq(tl_run(main_cancel_reads, NULL), 0);
}

/* Cancel and data arriving in the same iteration: either the read
 * completed (3 bytes, the cancel shows later) or it was cancelled and the
 * bytes are still there: never both lost. */
static int main_cancel_race(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        int sv[2];
        tl_test_socketpair(sv, SOCK_NONBLOCK);
        struct op_task o = {.kind = 0, .fd = sv[0]};
        tl_task t = tl_test_spawn(blocked_reader, &o);
        tl_test_settle();
        cr_expect_eq(send(sv[1], "xyz", 3, 0), 3);
        cr_expect_eq(tl_cancel(t), 0);
        tl_test_join(t);
        if (o.rc == -ECANCELED) {
            char b[8];
            cr_expect_eq(tl_read(sv[0], b, sizeof b), 3);
        } else {
            cr_expect_eq(o.rc, 3, "%zd", o.rc);
            cr_expect_eq(memcmp(o.buf, "xyz", 3), 0);
        }
        tl_close(sv[0]);
        tl_close(sv[1]);
    }
    return 0;
}

Test(io_ops, a_result_that_raced_the_cancel_is_kept, .timeout = 10)
{
    cr_assert_eq(tl_run(main_cancel_race, NULL), 0);
}

/* ---- MSG_WAITALL ------------------------------------------------------------ */

/* A loopback TCP pair (plain system calls; sv[0] non-blocking). */
static void tcp_pair(int sv[2])
{
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tcp_listener(AF_INET, &ss, &len);
    sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_expect_eq(connect(sv[1], (struct sockaddr *)&ss, len), 0);
    int one = 1;
    cr_expect_eq(setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    cr_expect_eq(poll(&p, 1, 10000), 1);
    sv[0] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    cr_expect_geq(sv[0], 0);
    close(lfd);
}

struct waitall {
    int fd;
    int msg;     /* 0 tl_recv, 1 tl_recvmsg over two iovecs (5 + 7) */
    ssize_t rc;
    int done;
    char buf[12];
};

static int waitall_reader(void *arg)
{
    struct waitall *w = arg;
    if (w->msg) {
        struct iovec v[2] = {{w->buf, 5}, {w->buf + 5, 7}};
        struct msghdr m = {.msg_iov = v, .msg_iovlen = 2};
        w->rc = tl_recvmsg(w->fd, &m, MSG_WAITALL);
    } else {
        w->rc = tl_recv(w->fd, w->buf, sizeof w->buf, MSG_WAITALL);
    }
    w->done = 1;
    return 0;
}

/* Starts a MSG_WAITALL reader of fd into *w (msg: tl_recvmsg). */
static tl_task waitall_start(struct waitall *w, int fd, int msg)
{
    *w = (struct waitall){.fd = fd, .msg = msg};
    return tl_test_spawn(waitall_reader, w);
}

/* Lets the reader run and expects it still waiting (it may not return
 * before its 12 bytes or an end), then sends piece from peer (if any). */
static void waitall_feed(const struct waitall *w, int peer, const char *piece)
{
    tl_test_settle();
    cr_expect_eq(w->done, 0, "msg %d: returned %zd before \"%s\" was sent",
                 w->msg, w->rc, piece ? piece : "(nothing more)");
    if (piece) {
        ssize_t n = (ssize_t)strlen(piece);
        cr_expect_eq(send(peer, piece, (size_t)n, 0), n);
    }
}

/* The peer sends in pieces (4, 4, then 4 bytes), letting the reader run
 * between them: the call returns only once the buffer is full, with every
 * byte in order. */
static int main_waitall_pieces(void *arg)
{
    (void)arg;
    for (int tcp = 0; tcp <= 1; tcp++) {
        for (int msg = 0; msg <= 1; msg++) {
            int sv[2];
            if (tcp)
                tcp_pair(sv);
            else
                tl_test_socketpair(sv, SOCK_NONBLOCK);
            struct waitall w;
            tl_task t = waitall_start(&w, sv[0], msg);
            waitall_feed(&w, sv[1], "abcd");
            waitall_feed(&w, sv[1], "efgh");
            waitall_feed(&w, sv[1], "ijkl");
            tl_test_join(t);
            cr_expect_eq(w.rc, 12, "tcp %d msg %d: %zd", tcp, msg, w.rc);
            cr_expect_eq(memcmp(w.buf, "abcdefghijkl", 12), 0);
            tl_close(sv[0]);
            close(sv[1]);
        }
    }
    return 0;
}

Test(io_ops, waitall_returns_once_the_buffer_is_full, .timeout = 10)
{
    cr_assert_eq(tl_run(main_waitall_pieces, NULL), 0);
}

/* The peer ends after 4 of 12 bytes: the call returns the 4, and the next
 * one sees the end. */
static int main_waitall_eof(void *arg)
{
    (void)arg;
    for (int msg = 0; msg <= 1; msg++) {
        int sv[2];
        tl_test_socketpair(sv, SOCK_NONBLOCK);
        struct waitall w;
        tl_task t = waitall_start(&w, sv[0], msg);
        waitall_feed(&w, sv[1], "abcd");
        waitall_feed(&w, sv[1], NULL);
        cr_expect_eq(shutdown(sv[1], SHUT_WR), 0);
        tl_test_join(t);
        cr_expect_eq(w.rc, 4, "msg %d: %zd", msg, w.rc);
        cr_expect_eq(memcmp(w.buf, "abcd", 4), 0);
        char b[4];
        cr_expect_eq(tl_recv(sv[0], b, sizeof b, MSG_WAITALL), 0);
        tl_close(sv[0]);
        close(sv[1]);
    }
    return 0;
}

Test(io_ops, waitall_returns_the_bytes_before_an_end, .timeout = 10)
{
    cr_assert_eq(tl_run(main_waitall_eof, NULL), 0);
}

/* Cancelled after 4 of 12 bytes arrived: the call returns the 4 (they are
 * the caller's: completed wins), the cancel shows at the task's next call,
 * and bytes sent afterwards go to the next receive. Before any byte, the
 * cancel is -ECANCELED and takes nothing. */
static int main_waitall_cancel(void *arg)
{
    (void)arg;
    for (int msg = 0; msg <= 1; msg++) {
        int sv[2];
        tl_test_socketpair(sv, SOCK_NONBLOCK);
        struct waitall w;
        tl_task t = waitall_start(&w, sv[0], msg);
        waitall_feed(&w, sv[1], NULL);
        cr_expect_eq(tl_cancel(t), 0);
        tl_test_join(t);
        cr_expect_eq(w.rc, -ECANCELED, "msg %d: %zd", msg, w.rc);

        struct waitall w2;
        t = waitall_start(&w2, sv[0], msg);
        waitall_feed(&w2, sv[1], "abcd");
        waitall_feed(&w2, sv[1], NULL);
        cr_expect_eq(tl_cancel(t), 0);
        tl_test_join(t);
        cr_expect_eq(w2.rc, 4, "msg %d: %zd (bytes lost to the cancel?)", msg,
                     w2.rc);
        cr_expect_eq(memcmp(w2.buf, "abcd", 4), 0);
        cr_expect_eq(send(sv[1], "xyz", 3, 0), 3);
        char b[8];
        cr_expect_eq(tl_recv(sv[0], b, 3, MSG_WAITALL), 3, "msg %d", msg);
        cr_expect_eq(memcmp(b, "xyz", 3), 0);
        tl_close(sv[0]);
        close(sv[1]);
    }
    return 0;
}

Test(io_ops, waitall_cancelled_midway_returns_what_arrived, .timeout = 10)
{
    cr_assert_eq(tl_run(main_waitall_cancel, NULL), 0);
}

/* A peek that waits for all is refused, on both backends alike, and
 * takes nothing. */
static int main_waitall_peek(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, SOCK_NONBLOCK);
    cr_expect_eq(send(sv[1], "abcd", 4, 0), 4);
    char b[12];
    struct iovec v = {b, sizeof b};
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    int f = MSG_PEEK | MSG_WAITALL;
    cr_expect_eq(tl_recv(sv[0], b, sizeof b, f), -EINVAL);
    cr_expect_eq(tl_recvfrom(sv[0], b, sizeof b, f, NULL, NULL), -EINVAL);
    cr_expect_eq(tl_recvmsg(sv[0], &m, f), -EINVAL);
    cr_expect_eq(tl_recv(sv[0], b, sizeof b, MSG_PEEK), 4);
    cr_expect_eq(tl_recv(sv[0], b, 4, MSG_WAITALL), 4);
    tl_close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_ops, waitall_with_peek_is_einval, .timeout = 10)
{
    cr_assert_eq(tl_run(main_waitall_peek, NULL), 0);
}

struct writer {
    int fd;
    ssize_t total;
    ssize_t rc;
    int kind; /* 0 write, 1 send, 2 writev, 3 sendmsg, 4 sendto */
};

static int blocked_writer(void *arg)
{
    struct writer *w = arg;
    static char chunk[65536];
    for (;;) {
        struct iovec v = {chunk, sizeof chunk};
        struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
        ssize_t n;
        switch (w->kind) {
        case 0: n = tl_write(w->fd, chunk, sizeof chunk); break;
        case 1: n = tl_send(w->fd, chunk, sizeof chunk, 0); break;
        case 2: n = tl_writev(w->fd, &v, 1); break;
        case 3: n = tl_sendmsg(w->fd, &m, 0); break;
        default: n = tl_sendto(w->fd, chunk, sizeof chunk, 0, NULL, 0); break;
        }
        if (n < 0) {
            w->rc = n;
            return 0;
        }
        w->total += n;
    }
}

/* Fill the socket until a write blocks, cancel it: every byte the writer
 * was told it wrote arrives, no more and no less. */
static int main_cancel_writes(void *arg)
{
    (void)arg;
    for (int kind = 0; kind <= 4; kind++) {
        int sv[2];
        tl_test_socketpair(sv, SOCK_NONBLOCK);
        int small = 4096;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        struct writer w = {.fd = sv[0], .kind = kind};
        tl_task t = tl_test_spawn(blocked_writer, &w);
        tl_test_settle();
        cr_expect_eq(tl_cancel(t), 0);
        tl_test_join(t);
        cr_expect_eq(w.rc, -ECANCELED, "kind %d: %zd", kind, w.rc);
        cr_expect_eq(tl_shutdown(sv[0], SHUT_WR), 0);
        ssize_t got = 0;
        char b[65536];
        for (;;) {
            ssize_t n = tl_read(sv[1], b, sizeof b);
            cr_assert_geq(n, 0);
            if (n == 0) break;
            got += n;
        }
        cr_expect_eq(got, w.total, "kind %d: told %zd, received %zd", kind,
                     w.total, got);
        tl_close(sv[0]);
        tl_close(sv[1]);
    }
    return 0;
}

Test(io_ops, a_cancelled_write_reports_exactly_what_was_sent, .timeout = 10)
{
    cr_assert_eq(tl_run(main_cancel_writes, NULL), 0);
}

struct acceptor {
    int lfd;
    int rc;
};

static int blocked_accept(void *arg)
{
    struct acceptor *a = arg;
    a->rc = tl_accept(a->lfd, NULL, NULL);
    return 0;
}

static int main_cancel_accept(void *arg)
{
    (void)arg;
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tcp_listener(AF_INET, &ss, &len);
    struct acceptor a = {.lfd = l};
    tl_task t = tl_test_spawn(blocked_accept, &a);
    tl_test_settle();
    cr_expect_eq(tl_cancel(t), 0);
    tl_test_join(t);
    cr_expect_eq(a.rc, -ECANCELED);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_expect_eq(tl_connect(c, (struct sockaddr *)&ss, len), 0);
    int fd = tl_accept(l, NULL, NULL);
    cr_expect_geq(fd, 0, "the connection was lost: %d", fd);
    tl_close(fd);
    tl_close(c);
    tl_close(l);
    return 0;
}

Test(io_ops, a_cancelled_accept_loses_no_connection, .timeout = 10)
{
    cr_assert_eq(tl_run(main_cancel_accept, NULL), 0);
}

/* A deadline around a read that no peer will satisfy fires on the
 * virtual clock (the wait for a peer does not hold the clock). */
static int main_read_deadline(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, SOCK_NONBLOCK);
    char b[4];
    int rc;
    TL_WITH_TIMEOUT(3.0, &rc) {
        rc = (int)tl_read(sv[0], b, sizeof b);
    }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_now(), 3.0);
    tl_close(sv[0]);
    tl_close(sv[1]);
    return 0;
}

Test(io_ops, a_read_deadline_fires_on_the_virtual_clock, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_read_deadline, NULL), 0);
}

/* ---- short reads (epoll: a short read of a byte stream parks the next
 * read before it tries) ----------------------------------------------- */

struct short_reader {
    int fd;
    int kind;          /* 0 tl_read, 1 tl_readv, 2 tl_recv */
    int reads;         /* reads to make (0: until end or error) */
    size_t total;
    ssize_t last;
};

static ssize_t read_kind(int kind, int fd, char *b, size_t n)
{
    if (kind == 1) {
        struct iovec v[2] = {{b, n / 2}, {b + n / 2, n - n / 2}};
        return tl_readv(fd, v, 2);
    }
    return kind == 2 ? tl_recv(fd, b, n, 0) : tl_read(fd, b, n);
}

static int short_reader_task(void *arg)
{
    struct short_reader *sr = arg;
    char b[64];
    for (int i = 0; sr->reads == 0 || i < sr->reads; i++) {
        sr->last = read_kind(sr->kind, sr->fd, b, sizeof b);
        if (sr->last <= 0) break;
        sr->total += (size_t)sr->last;
    }
    return 0;
}

/* Data and the end (or the peer's close, or several datagrams) arrive
 * together while a reader is parked: the read that takes the data comes
 * back short, and the next one must still see the end or the next
 * datagram at once; no edge will come for what is already there. */
static int main_short_then_more(void *arg)
{
    (void)arg;
    for (int kind = 0; kind < 3; kind++) {
        for (int how = 0; how < 2; how++) {
            int sv[2];
            tl_test_socketpair(sv, SOCK_NONBLOCK);
            struct short_reader sr = {.fd = sv[0], .kind = kind};
            tl_task t = tl_test_spawn(short_reader_task, &sr);
            tl_test_settle(); /* parked, registered */
            cr_expect_eq(send(sv[1], "abc", 3, 0), 3);
            if (how == 0)
                cr_expect_eq(shutdown(sv[1], SHUT_WR), 0);
            else
                cr_expect_eq(close(sv[1]), 0);
            tl_test_join(t);
            cr_expect_eq(sr.total, 3, "kind %d how %d", kind, how);
            cr_expect(sr.last == 0 || sr.last == -ECONNRESET,
                      "kind %d how %d: %zd", kind, how, sr.last);
            tl_close(sv[0]);
            if (how == 0) tl_close(sv[1]);
        }
        /* Records: a short read is one datagram, not an empty socket. */
        int types[2] = {SOCK_DGRAM, SOCK_SEQPACKET};
        for (int ti = 0; ti < 2; ti++) {
            int sv[2];
            cr_assert_eq(socketpair(AF_UNIX, types[ti] | SOCK_CLOEXEC |
                                    SOCK_NONBLOCK, 0, sv), 0);
            struct short_reader sr = {.fd = sv[0], .kind = kind, .reads = 2};
            tl_task t = tl_test_spawn(short_reader_task, &sr);
            tl_test_settle();
            cr_expect_eq(send(sv[1], "one", 3, 0), 3);
            cr_expect_eq(send(sv[1], "two", 3, 0), 3);
            tl_test_join(t);
            cr_expect_eq(sr.total, 6, "kind %d type %d", kind, types[ti]);
            tl_close(sv[0]);
            tl_close(sv[1]);
        }
    }
    return 0;
}

Test(io_ops, a_short_read_never_hides_an_end_or_the_next_datagram,
     .timeout = 10)
{
    cr_assert_eq(tl_run(main_short_then_more, NULL), 0);
}

/* Many small round trips over TCP, a pipe and a Unix socket: every read
 * is short, so on epoll every next read parks before it tries; none may
 * sleep through the bytes that came. */
struct pinger {
    int rfd, wfd, rounds, kind;
    int done;
};

static int pong_task(void *arg)
{
    struct pinger *p = arg;
    char b[64];
    for (int i = 0; i < p->rounds; i++) {
        size_t want = 1 + (size_t)(i % 40), got = 0;
        while (got < want) {
            ssize_t n = read_kind(p->kind == 1 && p->rfd != p->wfd ? 0
                                                                   : p->kind,
                                  p->rfd, b, sizeof b);
            if (n <= 0) return (int)(n ? n : -EPIPE);
            got += (size_t)n;
        }
        if (tl_write(p->wfd, b, 1) != 1) return -EIO;
    }
    p->done = 1;
    return 0;
}

static int main_ping_pong(void *arg)
{
    (void)arg;
    int rounds = TL_TEST_SCALE(2000);
    char msg[64];
    memset(msg, 'p', sizeof msg);
    for (int kind = 0; kind < 3; kind++) {
        for (int trans = 0; trans < 3; trans++) {
            int a_r, a_w, b_r, b_w, extra[2] = {-1, -1};
            if (trans == 0) { /* TCP */
                struct sockaddr_storage ss;
                socklen_t len;
                int l = tcp_listener(AF_INET, &ss, &len);
                int c = tl_socket(AF_INET, SOCK_STREAM, 0);
                cr_assert_geq(c, 0);
                cr_assert_eq(tl_connect(c, (struct sockaddr *)&ss, len), 0);
                int s = tl_accept(l, NULL, NULL);
                cr_assert_geq(s, 0);
                tl_close(l);
                /* no Nagle: a message sent in two pieces must not wait
                 * for a delayed ACK */
                cr_expect_eq(tl_sockopt_set(c, IPPROTO_TCP, TCP_NODELAY, 1), 0);
                cr_expect_eq(tl_sockopt_set(s, IPPROTO_TCP, TCP_NODELAY, 1), 0);
                a_r = a_w = c;
                b_r = b_w = s;
            } else if (trans == 1) { /* pipes (tl_recv does not apply) */
                if (kind == 2) continue;
                int p1[2], p2[2];
                cr_assert_eq(pipe2(p1, O_CLOEXEC), 0);
                cr_assert_eq(pipe2(p2, O_CLOEXEC), 0);
                a_w = p1[1];
                b_r = p1[0];
                b_w = p2[1];
                a_r = p2[0];
                extra[0] = p1[1];
                extra[1] = p2[1];
            } else {
                int sv[2];
                cr_assert_eq(tl_socketpair(SOCK_STREAM, sv), 0);
                a_r = a_w = sv[0];
                b_r = b_w = sv[1];
            }
            struct pinger p = {.rfd = b_r, .wfd = b_w, .rounds = rounds,
                               .kind = kind};
            tl_task t = tl_test_spawn(pong_task, &p);
            char b[8];
            for (int i = 0; i < rounds; i++) {
                size_t want = 1 + (size_t)(i % 40);
                /* in two pieces now and then, a yield between */
                size_t first = i % 3 == 0 && want > 1 ? want / 2 : want;
                cr_assert_eq(tl_write(a_w, msg, first), (ssize_t)first);
                if (first < want) {
                    cr_assert_eq(tl_yield(), 0);
                    cr_assert_eq(tl_write(a_w, msg, want - first),
                                 (ssize_t)(want - first));
                }
                ssize_t n = read_kind(trans == 1 ? 0 : kind, a_r, b, 1);
                cr_assert_eq(n, 1, "kind %d transport %d round %d: %zd",
                             kind, trans, i, n);
            }
            cr_expect_eq(tl_test_join(t), 0);
            cr_expect(p.done, "kind %d transport %d", kind, trans);
            tl_close(a_r);
            if (a_w != a_r) tl_close(a_w);
            tl_close(b_r);
            if (b_w != b_r) tl_close(b_w);
            (void)extra;
        }
    }
    return 0;
}

Test(io_ops, short_read_round_trips_never_stall, .timeout = 10)
{
    cr_assert_eq(tl_run(main_ping_pong, NULL), 0);
}

/* ---- resources ------------------------------------------------------------ */

static int main_emfile(void *arg)
{
    (void)arg;
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tcp_listener(AF_INET, &ss, &len);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_expect_eq(tl_connect(c, (struct sockaddr *)&ss, len), 0);
    /* Fill the fd table. */
    int fill[4096], n = 0;
    while (n < 4096) {
        int d = dup(0);
        if (d < 0) break;
        fill[n++] = d;
    }
    int fd = tl_accept(l, NULL, NULL);
    cr_expect_eq(fd, -EMFILE, "%d", fd);
    for (int i = 0; i < n; i++) close(fill[i]);
    fd = tl_accept(l, NULL, NULL); /* the connection waited in the queue */
    cr_expect_geq(fd, 0);
    tl_close(fd);
    tl_close(c);
    tl_close(l);
    return 0;
}

Test(io_ops, a_full_fd_table_is_emfile, .timeout = 10)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = (rlim_t)tl_test_count_fds() + 64;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    cr_assert_eq(tl_run(main_emfile, NULL), 0);
}

static int main_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        int l = tcp_listener(AF_INET, &ss, &len);
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        cr_expect_eq(tl_connect(c, (struct sockaddr *)&ss, len), 0);
        int fd = tl_accept(l, NULL, NULL);
        cr_expect_geq(fd, 0);
        cr_expect_eq(tl_write(c, "x", 1), 1);
        char b;
        cr_expect_eq(tl_read(fd, &b, 1), 1);
        tl_close(fd);
        tl_close(c);
        tl_close(l);
    }
    return 0;
}

Test(io_ops, no_fd_is_leaked, .timeout = 10)
{
    int before = tl_test_count_fds();
    for (int i = 0; i < 3; i++) cr_assert_eq(tl_run(main_many, NULL), 0);
    cr_expect_eq(tl_test_count_fds(), before);
}
