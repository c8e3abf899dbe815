/* A cancel at each suspension point of each operation (issue 6, §5), on
 * both backends: one table row per suspending call, each run in three
 * phases —
 *
 *   (a) "before": the task is cancelled before it makes the call, and the
 *       call could complete at once (the peer already acted). It must
 *       return -ECANCELED from its checkpoint and do nothing: no byte
 *       read or sent, no connection taken, no file made, the caller's
 *       memory untouched.
 *   (b) "parked": the call waits (for a peer, the kernel or the pool) and
 *       is cancelled there. -ECANCELED, nothing done; the peer acts
 *       afterwards and the caller's buffer still holds what it held at the
 *       return (never written late); everything the peer sent is still
 *       there for the next reader.
 *   (c) "race": the peer acts (a plain system call, so the kernel has it
 *       at once), the loop runs one iteration (its poll wakes the call),
 *       and the cancel comes before the task runs again. Completed wins:
 *       the call returns its result, and the cancel shows at the task's
 *       next suspending call.
 *
 * After every run: nothing lost (bytes the peer wrote are all read later;
 * bytes a write reported are exactly what the peer reads) and no fd leaked
 * (/proc/self/fd counted before setup and after teardown).
 *
 * Calls that work on a regular file, on the thread pool or in a resolver
 * cannot be held "parked" by a peer: their (b) cancels one loop iteration
 * after the call started, and either outcome is right as long as it is
 * whole (the result and its effect, or -ECANCELED and no effect). They
 * have no (c). Calls that never wait (shutdown) or are no cancellation
 * points (close) have only (a). tl_process_spawn never suspends and is
 * no cancellation point: its row, and tl_process_close's (which reaps
 * whatever the cancel), have only (a) and expect success. */
#include "helpers.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define CANARY 0xA5
#define BUFSZ 256

typedef struct cp cp;

/* Row flags. */
#define PARKS 0x1u    /* the call waits until fire(): (b) and (c) apply */
#define EITHER 0x2u   /* (b) may also complete (files, pool, resolver) */
#define NOCANCEL 0x4u /* (a) expects success: no cancellation point, or
                         a cleanup call with nothing left to wait for */
#define RACE_ANY 0x8u /* (c) may also end cancelled (several iterations
                         between fire() and the wake) */
#define OWNWAIT 0x10u /* a cancel may have to wait for work that started
                         (a pool thread inside open(2)): fire() is retried
                         until the call returns */

typedef struct cp_case {
    const char *name;
    unsigned flags;
    void (*setup)(cp *);
    ssize_t (*op)(cp *);                /* in the task: the call */
    void (*fire)(cp *);                 /* main: what lets it complete */
    void (*done)(cp *, ssize_t rc);     /* it completed with rc >= 0 */
    void (*kept)(cp *);                 /* it was cancelled, fire() done:
                                           check nothing was lost */
    void (*teardown)(cp *);
} cp_case;

struct cp {
    const cp_case *c;
    char phase;
    int fd, peer, lfd, extra;
    int filled;          /* bytes put in the socket before the call */
    int fired;
    tl_stream *s;
    tl_signals *sig;
    tl_server *srv;
    tl_task serve;
    tl_process *proc;
    tl_process_result res;
    struct addrinfo *ai;
    tl_sockaddr addr;
    char path[64], path2[80];
    ssize_t rc, rc_next;
    int returned;
    unsigned char buf[BUFSZ] __attribute__((aligned(16))); /* the caller's memory */
    unsigned char snap[BUFSZ]; /* what it held when the call returned */
};

#define EXPECT(cond, ...)                                                      \
    cr_expect(cond, "%s (%c): " __VA_ARGS__)

/* ---- shared pieces ------------------------------------------------------ */

static const char MSG[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?";
#define MSGLEN 64

static void sock_pair(cp *x)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
                            SOCK_NONBLOCK, 0, sv), 0);
    x->fd = sv[0];
    x->peer = sv[1];
}

static void close_pair(cp *x)
{
    if (x->fd >= 0) cr_expect_eq(tl_close(x->fd), 0);
    if (x->peer >= 0) close(x->peer);
    x->fd = x->peer = -1;
}

/* Everything readable on fd now (plain non-blocking reads), appended to
 * out (may be NULL); returns the count; *eof set at end of stream. */
static int drain_now(int fd, unsigned char *out, size_t cap, int *eof)
{
    int total = 0;
    char b[8192];
    for (;;) {
        ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (n == 0 && eof) *eof = 1;
        if (n <= 0) break;
        if (out && (size_t)total + (size_t)n <= cap)
            memcpy(out + total, b, (size_t)n);
        total += (int)n;
    }
    return total;
}

/* Fill fd's send side until the kernel takes no more. */
static int fill(int fd)
{
    int small = 4096;
    cr_expect_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small),
                 0);
    static const char junk[512];
    int total = 0;
    for (;;) {
        ssize_t n = send(fd, junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0) break;
        total += (int)n;
    }
    for (;;) {
        ssize_t n = send(fd, junk, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0) break;
        total += (int)n;
    }
    return total;
}

static void canary_untouched(cp *x, size_t from)
{
    for (size_t i = from; i < BUFSZ; i++)
        if (x->buf[i] != CANARY) {
            cr_expect(0, "%s (%c): caller's buffer written at %zu",
                      x->c->name, x->phase, i);
            return;
        }
}

/* ---- read side over a socketpair ---------------------------------------- */

static void fire_abc(cp *x)
{
    cr_expect_eq(send(x->peer, "abc", 3, MSG_NOSIGNAL), 3);
}

static void done_abc(cp *x, ssize_t rc)
{
    EXPECT(rc == 3, "returned %zd", x->c->name, x->phase, rc);
    EXPECT(memcmp(x->buf, "abc", 3) == 0, "wrong bytes", x->c->name,
           x->phase);
    canary_untouched(x, 3);
}

static void kept_abc(cp *x)
{
    canary_untouched(x, 0);
    unsigned char b[16];
    int n = drain_now(x->fd, b, sizeof b, NULL);
    EXPECT(n == 3 && memcmp(b, "abc", 3) == 0, "%d bytes left, want abc",
           x->c->name, x->phase, n);
}

static ssize_t op_read(cp *x) { return tl_read(x->fd, x->buf, 16); }
static ssize_t op_recv(cp *x) { return tl_recv(x->fd, x->buf, 16, 0); }
static ssize_t op_readv(cp *x)
{
    struct iovec v[2] = {{x->buf, 2}, {x->buf + 2, 14}};
    return tl_readv(x->fd, v, 2);
}
static ssize_t op_recvfrom(cp *x)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    return tl_recvfrom(x->fd, x->buf, 16, 0, (struct sockaddr *)&ss, &sl);
}
static ssize_t op_recvmsg(cp *x)
{
    struct iovec v = {x->buf, 16};
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    return tl_recvmsg(x->fd, &m, 0);
}
static ssize_t op_wait_r(cp *x) { return tl_fd_wait(x->fd, TL_READABLE); }

static void done_wait_r(cp *x, ssize_t rc)
{
    EXPECT(rc == TL_READABLE, "returned %zd", x->c->name, x->phase, rc);
    kept_abc(x); /* a wait takes nothing */
}

/* ---- write side: the socket is full, the call waits for room ------------- */

static void setup_full(cp *x)
{
    sock_pair(x);
    x->filled = fill(x->fd);
    cr_expect_gt(x->filled, 0);
}

static void fire_drain(cp *x) { x->filled -= drain_now(x->peer, NULL, 0, NULL); }

/* What the peer receives from now on must be exactly `more` bytes beyond
 * what fill() left, and they must be MSG's first bytes. */
static void expect_received(cp *x, int more)
{
    cr_expect_eq(shutdown(x->fd, SHUT_WR), 0);
    static unsigned char b[1 << 20];
    int eof = 0, total = 0;
    for (int i = 0; i < 1000 && !eof; i++) {
        total += drain_now(x->peer, b + total, sizeof b - (size_t)total, &eof);
        if (!eof) TL_IGNORE(tl_yield());
    }
    EXPECT(eof, "no end of stream", x->c->name, x->phase);
    EXPECT(total == x->filled + more, "received %d, want %d + %d",
           x->c->name, x->phase, total, x->filled, more);
    if (more > 0 && total == x->filled + more)
        EXPECT(memcmp(b + x->filled, MSG, (size_t)more) == 0,
               "wrong bytes sent", x->c->name, x->phase);
}

static void done_sent(cp *x, ssize_t rc)
{
    EXPECT(rc > 0 && rc <= MSGLEN, "returned %zd", x->c->name, x->phase, rc);
    expect_received(x, (int)rc);
}

static void kept_sent(cp *x) { expect_received(x, 0); }

static ssize_t op_write(cp *x) { return tl_write(x->fd, MSG, MSGLEN); }
static ssize_t op_send(cp *x) { return tl_send(x->fd, MSG, MSGLEN, 0); }
static ssize_t op_sendto(cp *x)
{
    return tl_sendto(x->fd, MSG, MSGLEN, 0, NULL, 0);
}
static ssize_t op_writev(cp *x)
{
    struct iovec v[2] = {{(void *)MSG, 10}, {(void *)(MSG + 10), MSGLEN - 10}};
    return tl_writev(x->fd, v, 2);
}
static ssize_t op_sendmsg(cp *x)
{
    struct iovec v = {(void *)MSG, MSGLEN};
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    return tl_sendmsg(x->fd, &m, 0);
}
static ssize_t op_wait_w(cp *x) { return tl_fd_wait(x->fd, TL_WRITABLE); }

static void done_wait_w(cp *x, ssize_t rc)
{
    EXPECT(rc == TL_WRITABLE, "returned %zd", x->c->name, x->phase, rc);
    expect_received(x, 0);
}

/* ---- shutdown, close ------------------------------------------------------ */

static ssize_t op_shutdown(cp *x) { return tl_shutdown(x->fd, SHUT_WR); }

static void kept_shutdown(cp *x)
{
    char b[4];
    errno = 0;
    EXPECT(recv(x->peer, b, sizeof b, MSG_DONTWAIT) < 0 && errno == EAGAIN,
           "the peer saw a shutdown", x->c->name, x->phase);
}

static ssize_t op_close(cp *x) { return tl_close(x->fd); }

static void done_close(cp *x, ssize_t rc)
{
    EXPECT(rc == 0, "returned %zd", x->c->name, x->phase, rc);
    EXPECT(fcntl(x->fd, F_GETFD) < 0 && errno == EBADF, "fd still open",
           x->c->name, x->phase);
    x->fd = -1;
}

/* ---- accept and connect ---------------------------------------------------- */

static int cp_seq;

static void setup_listen(cp *x)
{
    char name[64];
    snprintf(name, sizeof name, "@tulip-cp-%d-%d", (int)getpid(), cp_seq++);
    cr_assert_eq(tl_sockaddr_unix(&x->addr, name), 0);
    x->lfd = tl_net_listen(&x->addr, SOCK_STREAM, 8, 0);
    cr_assert_geq(x->lfd, 0);
    x->fd = x->peer = -1;
}

static void fire_connect(cp *x)
{
    x->peer = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert_geq(x->peer, 0);
    cr_expect_eq(connect(x->peer, &x->addr.u.sa, x->addr.len), 0);
}

static ssize_t op_accept(cp *x) { return tl_accept(x->lfd, NULL, NULL); }

static void done_accept(cp *x, ssize_t rc)
{
    EXPECT(rc >= 0, "returned %zd", x->c->name, x->phase, rc);
    if (rc >= 0) cr_expect_eq(tl_close((int)rc), 0);
}

static void kept_accept(cp *x)
{
    int fd = accept4(x->lfd, NULL, NULL, SOCK_CLOEXEC);
    EXPECT(fd >= 0, "the connection was lost", x->c->name, x->phase);
    if (fd >= 0) close(fd);
}

static void teardown_listen(cp *x)
{
    cr_expect_eq(tl_close(x->lfd), 0);
    if (x->peer >= 0) close(x->peer);
    if (x->fd >= 0) cr_expect_eq(tl_close(x->fd), 0);
}

/* A TCP listener with backlog 0 and one connection queued: the kernel
 * drops the next SYN, so a connect to it waits (the client retransmits
 * after a second; no test here lasts that long). */
static void setup_full_backlog(cp *x)
{
    x->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert_geq(x->lfd, 0);
    cr_assert_eq(tl_sockaddr_ip(&x->addr, "127.0.0.1", 0), 0);
    cr_assert_eq(bind(x->lfd, &x->addr.u.sa, x->addr.len), 0);
    cr_assert_eq(listen(x->lfd, 0), 0);
    cr_assert_eq(tl_sockaddr_local(x->lfd, &x->addr), 0);
    x->peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int r = connect(x->peer, &x->addr.u.sa, x->addr.len);
    cr_assert(r == 0 || errno == EINPROGRESS);
    x->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert_geq(x->fd, 0);
}

static ssize_t op_connect(cp *x)
{
    return tl_connect(x->fd, &x->addr.u.sa, x->addr.len);
}

static void kept_connect(cp *x)
{
    if (x->phase != 'a') return; /* a cancelled connect: close the socket */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    EXPECT(getpeername(x->fd, (struct sockaddr *)&ss, &sl) < 0 &&
               errno == ENOTCONN,
           "connected anyway", x->c->name, x->phase);
}

static ssize_t op_connect_host(cp *x)
{
    return tl_net_connect_host("127.0.0.1", tl_sockaddr_port(&x->addr),
                               SOCK_STREAM, NULL);
}

static void done_fd(cp *x, ssize_t rc)
{
    EXPECT(rc >= 0, "returned %zd", x->c->name, x->phase, rc);
    if (rc >= 0) cr_expect_eq(tl_close((int)rc), 0);
}

/* ---- streams ---------------------------------------------------------------- */

static void setup_stream(cp *x)
{
    sock_pair(x);
    tl_stream_opts o = {.high_water = 1, .low_water = 0};
    cr_assert_eq(tl_stream_open(&x->s, x->fd, &o), 0);
    x->fd = -1; /* the stream's */
}

static void setup_stream_partial(cp *x)
{
    setup_stream(x);
    cr_expect_eq(send(x->peer, "ab", 2, MSG_NOSIGNAL), 2);
}

static void teardown_stream(cp *x)
{
    if (x->s) cr_expect_eq(tl_stream_wait_closed(x->s), 0);
    x->s = NULL;
    close_pair(x);
}

/* Read n bytes back from the stream (main is not cancelled). */
static void stream_expect(cp *x, const char *want)
{
    size_t n = strlen(want);
    char b[64] = {0};
    size_t partial = 0;
    ssize_t rc = tl_stream_readexactly(x->s, b, n, &partial);
    EXPECT(rc == (ssize_t)n && memcmp(b, want, n) == 0,
           "read back %zd (%zu): %.*s, want %s", x->c->name, x->phase, rc,
           partial, (int)n, b, want);
}

static ssize_t op_s_read(cp *x) { return tl_stream_read(x->s, x->buf, 16); }
static void kept_s_abc(cp *x)
{
    canary_untouched(x, 0);
    stream_expect(x, "abc");
}

static void fire_cde(cp *x)
{
    cr_expect_eq(send(x->peer, "c\r\nde", 5, MSG_NOSIGNAL), 5);
}

static ssize_t op_s_exactly(cp *x)
{
    size_t partial = 99;
    ssize_t rc = tl_stream_readexactly(x->s, x->buf, 5, &partial);
    /* Cancelled: *partial counts what the stream had buffered. */
    if (rc == -ECANCELED)
        cr_expect_eq(partial, tl_stream_buffered(x->s), "%s: partial %zu",
                     x->c->name, partial);
    return rc;
}
static void done_s_exactly(cp *x, ssize_t rc)
{
    EXPECT(rc == 5 && memcmp(x->buf, "abc\r\n", 5) == 0, "returned %zd",
           x->c->name, x->phase, rc);
    canary_untouched(x, 5);
    stream_expect(x, "de");
}
static void kept_s_exactly(cp *x)
{
    canary_untouched(x, 0);
    stream_expect(x, "abc\r\nde");
}

static ssize_t op_s_until(cp *x)
{
    return tl_stream_readuntil(x->s, "\r\n", 2, x->buf, 32);
}
static ssize_t op_s_line(cp *x)
{
    return tl_stream_readline(x->s, (char *)x->buf, 32);
}
static void done_s_line(cp *x, ssize_t rc)
{
    EXPECT(rc == 5 && memcmp(x->buf, "abc\r\n", 6) == 0, "returned %zd",
           x->c->name, x->phase, rc);
    canary_untouched(x, 6);
    stream_expect(x, "de");
}

/* drain / wait_closed: the socket is full and 64 bytes are queued in the
 * stream over high water (1). */
static void setup_stream_queued(cp *x)
{
    setup_full(x);
    tl_stream_opts o = {.high_water = 1, .low_water = 0};
    cr_assert_eq(tl_stream_open(&x->s, x->fd, &o), 0);
    x->extra = x->fd; /* the stream's now */
    x->fd = -1;
    cr_expect_eq(tl_stream_write(x->s, MSG, MSGLEN), 0);
    cr_expect_eq(tl_stream_write_buffered(x->s), (size_t)MSGLEN);
}

static ssize_t op_s_drain(cp *x) { return tl_stream_drain(x->s); }

/* The peer reads until it has filled + MSGLEN bytes (the stream's
 * background writer sends as it reads). */
static void stream_received(cp *x, int more, int until_eof)
{
    static unsigned char b[1 << 20];
    int eof = 0, total = 0;
    for (int i = 0; i < 2000 && !eof &&
                    (until_eof || total < x->filled + more);
         i++) {
        total += drain_now(x->peer, b + total, sizeof b - (size_t)total, &eof);
        TL_IGNORE(tl_yield());
    }
    EXPECT(total == x->filled + more, "received %d, want %d + %d",
           x->c->name, x->phase, total, x->filled, more);
    if (until_eof) EXPECT(eof, "no end of stream", x->c->name, x->phase);
    if (more > 0 && total == x->filled + more)
        EXPECT(memcmp(b + x->filled, MSG, (size_t)more) == 0,
               "wrong bytes sent", x->c->name, x->phase);
}

static void done_s_drain(cp *x, ssize_t rc)
{
    EXPECT(rc == 0, "returned %zd", x->c->name, x->phase, rc);
    EXPECT(tl_stream_write_buffered(x->s) == 0, "still queued",
           x->c->name, x->phase);
    stream_received(x, MSGLEN, 0);
}
static void kept_s_drain(cp *x) { stream_received(x, MSGLEN, 0); }

static ssize_t op_s_wait_closed(cp *x)
{
    tl_stream *s = x->s;
    x->s = NULL; /* freed whatever it returns */
    return tl_stream_wait_closed(s);
}
static void done_s_wait_closed(cp *x, ssize_t rc)
{
    EXPECT(rc == 0, "returned %zd", x->c->name, x->phase, rc);
    stream_received(x, MSGLEN, 1);
}
static void kept_s_wait_closed(cp *x)
{
    /* Cancelled: the queued output is dropped and the fd closed at once
     * (stream.h); the peer sees what the kernel had, then the end. */
    stream_received(x, 0, 1);
}

/* ---- files ---------------------------------------------------------------- */

static void setup_file(cp *x)
{
    snprintf(x->path, sizeof x->path, "/tmp/tulip-cp-%d-%d", (int)getpid(),
             cp_seq++);
    x->fd = open(x->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    cr_assert_geq(x->fd, 0);
    cr_assert_eq(write(x->fd, "0123456789", 10), 10);
    cr_assert_eq(lseek(x->fd, 0, SEEK_SET), 0);
    x->peer = -1;
    snprintf(x->path2, sizeof x->path2, "%s.new", x->path);
}

static void setup_empty_file(cp *x)
{
    setup_file(x);
    cr_assert_eq(ftruncate(x->fd, 0), 0);
}

static void teardown_file(cp *x)
{
    if (x->fd >= 0) cr_expect_eq(tl_close(x->fd), 0);
    x->fd = -1;
    unlink(x->path);
    unlink(x->path2);
}

static ssize_t op_f_read(cp *x) { return tl_read(x->fd, x->buf, 16); }
static void done_f_read(cp *x, ssize_t rc)
{
    EXPECT(rc == 10 && memcmp(x->buf, "0123456789", 10) == 0,
           "returned %zd", x->c->name, x->phase, rc);
    canary_untouched(x, 10);
    EXPECT(lseek(x->fd, 0, SEEK_CUR) == 10, "position", x->c->name,
           x->phase);
}
static void kept_f_read(cp *x)
{
    canary_untouched(x, 0);
    EXPECT(lseek(x->fd, 0, SEEK_CUR) == 0, "the position moved",
           x->c->name, x->phase);
}

static ssize_t op_f_pread(cp *x) { return tl_pread(x->fd, x->buf, 16, 4); }
static void done_f_pread(cp *x, ssize_t rc)
{
    EXPECT(rc == 6 && memcmp(x->buf, "456789", 6) == 0, "returned %zd",
           x->c->name, x->phase, rc);
    canary_untouched(x, 6);
}
static void kept_untouched(cp *x) { canary_untouched(x, 0); }

static off_t file_size(cp *x)
{
    struct stat st;
    cr_expect_eq(fstat(x->fd, &st), 0);
    return st.st_size;
}

static ssize_t op_f_write(cp *x) { return tl_write(x->fd, MSG, MSGLEN); }
static ssize_t op_f_pwrite(cp *x)
{
    return tl_pwrite(x->fd, MSG, MSGLEN, 0);
}
static void done_f_write(cp *x, ssize_t rc)
{
    EXPECT(rc == MSGLEN && file_size(x) == MSGLEN, "returned %zd", x->c->name,
           x->phase, rc);
    char b[MSGLEN];
    EXPECT(pread(x->fd, b, MSGLEN, 0) == MSGLEN && !memcmp(b, MSG, MSGLEN),
           "wrong bytes", x->c->name, x->phase);
}
static void kept_f_write(cp *x)
{
    EXPECT(file_size(x) == 0, "written anyway", x->c->name, x->phase);
}

static ssize_t op_f_fsync(cp *x) { return tl_fsync(x->fd); }
static void done_zero(cp *x, ssize_t rc)
{
    EXPECT(rc == 0, "returned %zd", x->c->name, x->phase, rc);
}
static void kept_nothing(cp *x) { (void)x; }

static ssize_t op_f_open(cp *x)
{
    return tl_open(x->path2, O_RDWR | O_CREAT | O_EXCL, 0600);
}
static void done_f_open(cp *x, ssize_t rc)
{
    done_fd(x, rc);
    EXPECT(access(x->path2, F_OK) == 0, "no file made", x->c->name, x->phase);
}
static void kept_f_open(cp *x)
{
    EXPECT(access(x->path2, F_OK) < 0, "a file was made", x->c->name,
           x->phase);
}

static ssize_t op_f_stat(cp *x)
{
    return tl_stat(x->path, (struct stat *)(void *)x->buf);
}
static void done_f_stat(cp *x, ssize_t rc)
{
    struct stat st;
    memcpy(&st, x->buf, sizeof st);
    EXPECT(rc == 0 && st.st_size == 10, "returned %zd", x->c->name, x->phase,
           rc);
    canary_untouched(x, sizeof st);
}

/* A FIFO: open(2) for writing waits until a reader opens it (on a pool
 * thread) — the one open that stays in flight. */
static void setup_fifo(cp *x)
{
    setup_file(x);
    cr_assert_eq(tl_close(x->fd), 0);
    x->fd = -1;
    unlink(x->path);
    cr_assert_eq(mkfifo(x->path, 0600), 0);
}

/* Open the reader end (never waits with O_NONBLOCK). */
static void fire_fifo(cp *x)
{
    if (x->peer < 0)
        x->peer = open(x->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

static ssize_t op_fifo_open(cp *x) { return tl_open(x->path, O_WRONLY, 0); }

static void teardown_fifo(cp *x)
{
    if (x->peer >= 0) close(x->peer);
    x->peer = -1;
    teardown_file(x);
}

/* ---- name resolution ---------------------------------------------------------- */

static void setup_none(cp *x)
{
    x->fd = x->peer = -1;
    x->ai = (struct addrinfo *)&x->snap; /* a sentinel: NULL on failure */
}

static ssize_t op_getaddrinfo(cp *x)
{
    struct addrinfo h = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                         .ai_socktype = SOCK_STREAM};
    return tl_getaddrinfo("127.0.0.1", "80", &h, &x->ai);
}
static void done_getaddrinfo(cp *x, ssize_t rc)
{
    EXPECT(rc == 0 && x->ai && x->ai != (void *)&x->snap, "returned %zd",
           x->c->name, x->phase, rc);
    if (rc == 0) tl_freeaddrinfo(x->ai);
}
static void kept_getaddrinfo(cp *x)
{
    EXPECT(x->ai == NULL, "*out not NULL", x->c->name, x->phase);
}

/* ---- signals ---------------------------------------------------------------- */

static void setup_sig(cp *x)
{
    x->fd = x->peer = -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    cr_assert_eq(tl_signals_open(&x->sig, &set), 0);
}

static void fire_sig(cp *x)
{
    (void)x;
    cr_expect_eq(raise(SIGUSR2), 0);
}

static ssize_t op_sig(cp *x)
{
    return tl_signals_wait(x->sig, (struct signalfd_siginfo *)(void *)x->buf);
}
static void done_sig(cp *x, ssize_t rc)
{
    EXPECT(rc == SIGUSR2, "returned %zd", x->c->name, x->phase, rc);
    sigset_t p;
    sigpending(&p);
    EXPECT(!sigismember(&p, SIGUSR2), "still pending", x->c->name, x->phase);
}
static void kept_sig(cp *x)
{
    canary_untouched(x, 0);
    sigset_t p;
    sigpending(&p);
    EXPECT(sigismember(&p, SIGUSR2), "the signal was lost", x->c->name,
           x->phase);
    struct signalfd_siginfo si;
    EXPECT(tl_signals_wait(x->sig, &si) == SIGUSR2, "not delivered later",
           x->c->name, x->phase);
}
static void teardown_sig(cp *x) { cr_expect_eq(tl_signals_close(x->sig), 0); }

/* ---- server shutdown ------------------------------------------------------- */

static int hold_handler(tl_server_conn *c, void *arg)
{
    (void)arg;
    char b[8];
    ssize_t n;
    while ((n = tl_read(tl_server_conn_fd(c), b, sizeof b)) > 0) {}
    return 0;
}

static int serve_task(void *arg) { return tl_server_serve(arg); }

static void setup_server(cp *x)
{
    setup_listen(x);
    tl_server_opts o = {.fd = x->lfd, .handler = hold_handler};
    cr_assert_eq(tl_server_open(&x->srv, &o), 0);
    x->lfd = -1;
    x->serve = tl_test_spawn(serve_task, x->srv);
    tl_test_settle();
    x->peer = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(x->peer, 0);
    cr_assert_eq(connect(x->peer, &x->addr.u.sa, x->addr.len), 0);
    tl_server_stats st = {0};
    for (int i = 0; i < 1000 && st.active == 0; i++) {
        TL_IGNORE(tl_yield());
        tl_server_stats_get(x->srv, &st);
    }
    cr_expect_eq(st.active, 1u);
    cr_expect_eq(tl_server_shutdown(x->srv, INFINITY), 0);
}

static void fire_server(cp *x)
{
    close(x->peer);
    x->peer = -1;
}

static ssize_t op_server_wait(cp *x) { return tl_server_wait_closed(x->srv); }

static void kept_server(cp *x)
{
    if (x->peer >= 0) fire_server(x);
    int rc = tl_server_wait_closed(x->srv);
    EXPECT(rc == 0, "wait_closed then: %d", x->c->name, x->phase, rc);
}

static void teardown_server(cp *x)
{
    if (x->peer >= 0) close(x->peer);
    x->peer = -1;
    EXPECT(tl_test_join(x->serve) == 0, "serve failed", x->c->name, x->phase);
    cr_expect_eq(tl_server_free(x->srv), 0);
}

/* ---- subprocesses ---------------------------------------------------------- */

/* `cat` reading a pipe whose write end the test holds (x->peer; the
 * read end, x->extra, is the child's stdin), its stdout a pipe the
 * process owns. */
static void setup_pipe_in(cp *x)
{
    int pp[2];
    cr_assert_eq(pipe2(pp, O_CLOEXEC), 0);
    x->extra = pp[0];
    x->peer = pp[1];
    x->fd = -1;
}

static const tl_process_opts *cat_opts(cp *x)
{
    static const char *const argv[] = {"cat", NULL};
    static tl_process_opts o;
    o = (tl_process_opts){.argv = argv,
                          .stdin_mode = TL_PROCESS_FD,
                          .stdin_fd = x->extra,
                          .stdout_mode = TL_PROCESS_PIPE};
    return &o;
}

static void setup_proc(cp *x)
{
    setup_pipe_in(x);
    cr_assert_eq(tl_process_spawn(&x->proc, cat_opts(x)), 0);
    close(x->extra); /* the child has its own */
    x->extra = -1;
}

/* The peer writes "abc" and ends cat's input; for a spawned child, wait
 * (blocking, WNOWAIT: it stays unreaped for tulip) until cat copied it
 * and ended, so the loop's next poll finds the output and the pidfd. */
static void fire_proc(cp *x)
{
    cr_expect_eq(write(x->peer, "abc", 3), 3);
    close(x->peer);
    x->peer = -1;
    if (!x->proc) return;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    cr_expect_eq(waitid(P_PID, (id_t)tl_process_pid(x->proc), &si,
                        WEXITED | WNOWAIT), 0);
}

/* cat's output is still in its stdout pipe, and its status is 0. */
static void kept_proc(cp *x)
{
    char b[8] = {0};
    size_t partial = 0;
    ssize_t rc = tl_stream_readexactly(tl_process_stdout(x->proc), b, 3,
                                       &partial);
    EXPECT(rc == 3 && memcmp(b, "abc", 3) == 0,
           "cat's output: %zd (%zu) %.3s", x->c->name, x->phase, rc, partial,
           b);
    int st = tl_process_wait(x->proc);
    EXPECT(st == 0, "status %d", x->c->name, x->phase, st);
}

static ssize_t op_p_wait(cp *x) { return tl_process_wait(x->proc); }
static void done_p_wait(cp *x, ssize_t rc)
{
    EXPECT(rc == 0, "status %zd", x->c->name, x->phase, rc);
    kept_proc(x); /* a wait reads nothing */
}

static ssize_t op_p_communicate(cp *x)
{
    return tl_process_communicate(x->proc, NULL, 0, &x->res);
}
static void done_p_communicate(cp *x, ssize_t rc)
{
    EXPECT(rc == 0 && x->res.status == 0 && x->res.out_len == 3 &&
               memcmp(x->res.out, "abc", 3) == 0,
           "returned %zd", x->c->name, x->phase, rc);
    tl_process_result_free(&x->res);
}
static void kept_p_communicate(cp *x)
{
    EXPECT(x->res.out == NULL && x->res.status == -1, "*res not empty",
           x->c->name, x->phase);
    /* A cancel as the output arrives (c) may drop what the call had read
     * (process.h); parked (b) or before (a), it read nothing. */
    if (x->phase != 'c') {
        kept_proc(x);
        return;
    }
    int st = tl_process_wait(x->proc);
    EXPECT(st == 0, "status %d", x->c->name, x->phase, st);
}

static ssize_t op_p_run(cp *x)
{
    return tl_process_run(cat_opts(x), NULL, 0, &x->res);
}
static void done_p_run(cp *x, ssize_t rc) { done_p_communicate(x, rc); }
/* A cancelled run leaves no child; one cancelled before it or while cat
 * waited for input consumed nothing: "abc" is still in the pipe. */
static void kept_p_run(cp *x)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    EXPECT(waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
               errno == ECHILD,
           "a child is left", x->c->name, x->phase);
    EXPECT(x->res.out == NULL, "*res not empty", x->c->name, x->phase);
    if (x->phase == 'c') return; /* cat may have read it before the kill */
    char b[8] = {0};
    cr_expect_eq(fcntl(x->extra, F_SETFL, O_NONBLOCK), 0);
    ssize_t n = read(x->extra, b, sizeof b);
    EXPECT(n == 3 && memcmp(b, "abc", 3) == 0, "the pipe holds %zd bytes",
           x->c->name, x->phase, n);
}

/* Had the run spawned before its cancellation point, this would be
 * -ENOENT: (a) proves the cancel comes first, deterministically. */
static ssize_t op_p_run_missing(cp *x)
{
    (void)x;
    static const char *const argv[] = {"no-such-program-tulip", NULL};
    return tl_process_run(&(tl_process_opts){.argv = argv}, NULL, 0, NULL);
}

static ssize_t op_p_close(cp *x)
{
    tl_process *p = x->proc;
    x->proc = NULL; /* freed whatever it returns */
    return tl_process_close(p);
}
static void done_p_close(cp *x, ssize_t rc)
{
    EXPECT(rc == TL_PROCESS_SIGNALED_BASE + SIGKILL, "returned %zd",
           x->c->name, x->phase, rc);
}

static ssize_t op_p_spawn(cp *x)
{
    int rc = tl_process_spawn(&x->proc, cat_opts(x));
    close(x->extra);
    x->extra = -1;
    return rc;
}
static void done_p_spawn(cp *x, ssize_t rc)
{
    EXPECT(rc == 0 && x->proc, "returned %zd", x->c->name, x->phase, rc);
}

static void teardown_proc(cp *x)
{
    if (x->peer >= 0) close(x->peer);
    if (x->extra >= 0) close(x->extra);
    x->peer = x->extra = -1;
    if (x->proc) (void)tl_process_close(x->proc);
    x->proc = NULL;
    tl_process_result_free(&x->res);
}

/* ---- the table -------------------------------------------------------------- */

static const cp_case cases[] = {
    /* read side: the peer sends "abc" */
    {"tl_read", PARKS, sock_pair, op_read, fire_abc, done_abc, kept_abc, close_pair},
    {"tl_readv", PARKS, sock_pair, op_readv, fire_abc, done_abc, kept_abc, close_pair},
    {"tl_recv", PARKS, sock_pair, op_recv, fire_abc, done_abc, kept_abc, close_pair},
    {"tl_recvfrom", PARKS, sock_pair, op_recvfrom, fire_abc, done_abc, kept_abc, close_pair},
    {"tl_recvmsg", PARKS, sock_pair, op_recvmsg, fire_abc, done_abc, kept_abc, close_pair},
    {"tl_fd_wait(R)", PARKS, sock_pair, op_wait_r, fire_abc, done_wait_r, kept_abc, close_pair},
    /* write side: the socket is full until the peer reads */
    {"tl_write", PARKS, setup_full, op_write, fire_drain, done_sent, kept_sent, close_pair},
    {"tl_writev", PARKS, setup_full, op_writev, fire_drain, done_sent, kept_sent, close_pair},
    {"tl_send", PARKS, setup_full, op_send, fire_drain, done_sent, kept_sent, close_pair},
    {"tl_sendto", PARKS, setup_full, op_sendto, fire_drain, done_sent, kept_sent, close_pair},
    {"tl_sendmsg", PARKS, setup_full, op_sendmsg, fire_drain, done_sent, kept_sent, close_pair},
    {"tl_fd_wait(W)", PARKS, setup_full, op_wait_w, fire_drain, done_wait_w, kept_sent, close_pair},
    /* never wait / no cancellation point */
    {"tl_shutdown", 0, sock_pair, op_shutdown, NULL, NULL, kept_shutdown, close_pair},
    {"tl_close", NOCANCEL, sock_pair, op_close, NULL, done_close, NULL, close_pair},
    /* connections */
    {"tl_accept", PARKS, setup_listen, op_accept, fire_connect, done_accept, kept_accept, teardown_listen},
    {"tl_connect", PARKS, setup_full_backlog, op_connect, NULL, NULL, kept_connect, teardown_listen},
    {"tl_net_connect_host", PARKS, setup_full_backlog, op_connect_host, NULL, done_fd, kept_nothing, teardown_listen},
    /* streams */
    {"tl_stream_read", PARKS, setup_stream, op_s_read, fire_abc, done_abc, kept_s_abc, teardown_stream},
    {"tl_stream_readexactly", PARKS, setup_stream_partial, op_s_exactly, fire_cde, done_s_exactly, kept_s_exactly, teardown_stream},
    {"tl_stream_readuntil", PARKS, setup_stream_partial, op_s_until, fire_cde, done_s_line, kept_s_exactly, teardown_stream},
    {"tl_stream_readline", PARKS, setup_stream_partial, op_s_line, fire_cde, done_s_line, kept_s_exactly, teardown_stream},
    {"tl_stream_drain", PARKS, setup_stream_queued, op_s_drain, fire_drain, done_s_drain, kept_s_drain, teardown_stream},
    {"tl_stream_wait_closed(queued)", 0, setup_stream_queued, op_s_wait_closed, NULL, NULL, kept_s_wait_closed, teardown_stream},
    {"tl_stream_wait_closed", PARKS | NOCANCEL, setup_stream_queued, op_s_wait_closed, fire_drain, done_s_wait_closed, kept_s_wait_closed, teardown_stream},
    /* files, the resolver */
    {"tl_read(file)", EITHER, setup_file, op_f_read, NULL, done_f_read, kept_f_read, teardown_file},
    {"tl_pread(file)", EITHER, setup_file, op_f_pread, NULL, done_f_pread, kept_untouched, teardown_file},
    {"tl_write(file)", EITHER, setup_empty_file, op_f_write, NULL, done_f_write, kept_f_write, teardown_file},
    {"tl_pwrite(file)", EITHER, setup_empty_file, op_f_pwrite, NULL, done_f_write, kept_f_write, teardown_file},
    {"tl_fsync", EITHER, setup_file, op_f_fsync, NULL, done_zero, kept_nothing, teardown_file},
    {"tl_open", EITHER, setup_file, op_f_open, NULL, done_f_open, kept_f_open, teardown_file},
    {"tl_open(fifo)", PARKS | RACE_ANY | EITHER | OWNWAIT, setup_fifo, op_fifo_open, fire_fifo, done_fd, kept_nothing, teardown_fifo},
    {"tl_stat", EITHER, setup_file, op_f_stat, NULL, done_f_stat, kept_untouched, teardown_file},
    {"tl_getaddrinfo", EITHER, setup_none, op_getaddrinfo, NULL, done_getaddrinfo, kept_getaddrinfo, NULL},
    /* signals, servers */
    {"tl_signals_wait", PARKS, setup_sig, op_sig, fire_sig, done_sig, kept_sig, teardown_sig},
    {"tl_server_wait_closed(busy)", 0, setup_server, op_server_wait, NULL, NULL, kept_server, teardown_server},
    {"tl_server_wait_closed", PARKS | NOCANCEL | RACE_ANY, setup_server, op_server_wait, fire_server, done_zero, kept_server, teardown_server},
    /* subprocesses: cat copies "abc" from the peer's pipe, then ends */
    {"tl_process_wait", PARKS, setup_proc, op_p_wait, fire_proc, done_p_wait, kept_proc, teardown_proc},
    {"tl_process_communicate", PARKS | RACE_ANY, setup_proc, op_p_communicate, fire_proc, done_p_communicate, kept_p_communicate, teardown_proc},
    {"tl_process_run", PARKS | RACE_ANY, setup_pipe_in, op_p_run, fire_proc, done_p_run, kept_p_run, teardown_proc},
    {"tl_process_run(no program)", 0, setup_none, op_p_run_missing, NULL, NULL, kept_nothing, NULL},
    {"tl_process_close", NOCANCEL, setup_proc, op_p_close, NULL, done_p_close, NULL, teardown_proc},
    {"tl_process_spawn", NOCANCEL, setup_pipe_in, op_p_spawn, NULL, done_p_spawn, NULL, teardown_proc},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* ---- the phases ------------------------------------------------------------ */

static int cp_task(void *arg)
{
    cp *x = arg;
    x->rc = x->c->op(x);
    memcpy(x->snap, x->buf, BUFSZ);
    x->returned = 1;
    /* Completed wins, and the cancel shows at the next suspending call. */
    x->rc_next = tl_sleep(0);
    return 0;
}

static void after_cancelled(cp *x)
{
    if (x->c->fire && !x->fired) {
        x->fired = 1;
        x->c->fire(x);
    }
    tl_test_settle(); /* a late kernel or pool write would land now */
    EXPECT(memcmp(x->buf, x->snap, BUFSZ) == 0,
           "the caller's buffer was written after the call returned",
           x->c->name, x->phase);
    if (x->c->kept) x->c->kept(x);
}

static void run_case(const cp_case *c, char phase)
{
    if (phase != 'a' && !(c->flags & (PARKS | EITHER))) return;
    if (phase == 'c' && (!(c->flags & PARKS) || !c->fire)) return;
    int fds = tl_test_count_fds();
    static cp x;
    memset(&x, 0, sizeof x);
    x.c = c;
    x.phase = phase;
    x.fd = x.peer = x.lfd = -1;
    memset(x.buf, CANARY, BUFSZ);
    c->setup(&x);
    tl_task t;
    if (phase == 'a') {
        if (c->fire) {
            x.fired = 1;
            c->fire(&x); /* the call could complete at once */
            tl_test_settle();
        }
        t = tl_test_spawn(cp_task, &x);
        cr_expect_eq(tl_cancel(t), 0);
    } else {
        t = tl_test_spawn(cp_task, &x);
        if (c->flags & PARKS) {
            tl_test_settle();
            EXPECT(!x.returned, "returned without waiting: %zd", c->name,
                   phase, x.rc);
        } else {
            TL_IGNORE(tl_yield()); /* started, maybe done */
        }
        if (phase == 'c') {
            x.fired = 1;
            c->fire(&x);
            TL_IGNORE(tl_yield()); /* one iteration: its poll wakes the call */
        }
        cr_expect_eq(tl_cancel(t), 0);
        double until = tl_test_now_s() + 10;
        while ((c->flags & OWNWAIT) && !x.returned &&
               tl_test_now_s() < until) {
            TL_IGNORE(tl_sleep(0.001));
            c->fire(&x);
        }
    }
    cr_expect_eq(tl_test_join(t), 0);
    EXPECT(x.returned, "never returned", c->name, phase);
    bool completed = x.rc >= 0;
    if (phase == 'a' && (c->flags & NOCANCEL)) {
        EXPECT(completed, "returned %zd", c->name, phase, x.rc);
    } else if (phase == 'a' || (phase == 'b' && !(c->flags & EITHER))) {
        EXPECT(x.rc == -ECANCELED, "returned %zd (%s), want -ECANCELED",
               c->name, phase, x.rc, tl_errname((int)x.rc));
    } else if (phase == 'c' && !(c->flags & RACE_ANY)) {
        EXPECT(completed, "returned %zd (%s): a completed call lost to the "
               "cancel", c->name, phase, x.rc, tl_errname((int)x.rc));
    } else {
        EXPECT(completed || x.rc == -ECANCELED, "returned %zd (%s)", c->name,
               phase, x.rc, tl_errname((int)x.rc));
    }
    EXPECT(x.rc_next == -ECANCELED, "the next call returned %zd", c->name,
           phase, x.rc_next);
    if (completed) {
        tl_test_settle();
        EXPECT(memcmp(x.buf, x.snap, BUFSZ) == 0,
               "the caller's buffer was written after the call returned",
               c->name, phase);
        if (c->done) c->done(&x, x.rc);
    } else if (x.rc == -ECANCELED) {
        after_cancelled(&x);
    }
    if (c->teardown) c->teardown(&x);
    tl_test_settle();
    int now = tl_test_count_fds();
    EXPECT(now == fds, "fds before %d, after %d", c->name, phase, fds, now);
}

static int main_phase(void *arg)
{
    char phase = (char)(intptr_t)arg;
    for (size_t i = 0; i < NCASES; i++) run_case(&cases[i], phase);
    return 0;
}

static void run_phase(char phase)
{
    signal(SIGPIPE, SIG_DFL);
    int fds = tl_test_count_fds();
    cr_assert_eq(tl_run(main_phase, (void *)(intptr_t)phase), 0);
    cr_expect_eq(tl_test_count_fds(), fds, "fds before tl_run %d, after %d", fds,
                 tl_test_count_fds());
}

Test(cancel_points, a_cancel_in_force_before_the_call_does_nothing,
     .timeout = 60)
{
    run_phase('a');
}

Test(cancel_points, a_cancel_while_parked_loses_nothing, .timeout = 60)
{
    run_phase('b');
}

Test(cancel_points, a_completion_that_meets_the_cancel_wins, .timeout = 60)
{
    run_phase('c');
}
