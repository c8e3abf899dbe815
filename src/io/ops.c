/* The operations: read, write, readv, writev, pread, pwrite, recv, send,
 * recvfrom, sendto, recvmsg, sendmsg, accept, connect, shutdown.
 *
 * Each is the shape of src/core/time.c: checkpoint (the cancellation
 * point), then either
 *   - io_uring: one kernel request (src/io/op.c): submitted with the
 *     loop's next io_uring_enter, the task parked until its completion;
 *   - epoll: the non-blocking system call, tried first; on EAGAIN the
 *     task parks on the fd record's slot until the next edge
 *     (src/io/fd.c), then tries again.
 * Writes on sockets are sends with MSG_NOSIGNAL (a peer that hung up
 * gives -EPIPE, never SIGPIPE); whether an fd is a socket is asked once
 * per fd life (fstat) and kept in its record.
 *
 * A task whose calls keep completing at once never waits, so it would
 * never let the others run: every 32nd such call in a row yields. */
#include "io/io.h"

#include <limits.h>
#include <string.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define STREAK_YIELD 32

typedef struct io_call {
    int kind;
    int fd;
    void *buf;
    size_t len;
    int64_t off;        /* -1: the file position */
    int flags;
    const struct iovec *iov;
    int iovcnt;
    struct msghdr *msg;
    void *addr;         /* recvfrom / accept: out; sendto / connect: in */
    socklen_t *addrlen;
    socklen_t alen;
} io_call;

/* r->is_sock: 0 not asked yet, 1 a socket, 2 a pipe or FIFO, 3 else
 * (a tty, an eventfd, ...: pollable), 4 a regular file or a block device
 * (never "not ready": src/io/file.c). */
#define KIND_FILE 4
static int fd_kind(tl__fd *r)
{
    if (!r->is_sock) {
        struct stat st;
        if (fstat(r->fd, &st) < 0)
            r->is_sock = 3;
        else
            r->is_sock = S_ISSOCK(st.st_mode) ? 1
                         : S_ISFIFO(st.st_mode) ? 2
                         : S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)
                             ? KIND_FILE : 3;
    }
    return r->is_sock;
}

static bool is_sock(tl__fd *r) { return fd_kind(r) == 1; }

int tl__fd_bytes(tl__fd *r)
{
    if (!r->bytes) {
        int k = fd_kind(r), type = 0;
        socklen_t tlen = sizeof type;
        if (k == 2)
            r->bytes = 1; /* a pipe or FIFO */
        else if (k == 1 && getsockopt(r->fd, SOL_SOCKET, SO_TYPE, &type,
                                      &tlen) == 0 && type == SOCK_STREAM)
            r->bytes = 1;
        else
            r->bytes = 2; /* datagrams, records, ttys, ... */
    }
    return r->bytes;
}

/* epoll: the bytes a read asks for, or 0 when this call is not a plain
 * read of the stream (a peek, a recvfrom, a positioned read): only those
 * may say "drained" by coming back short. */
static size_t plain_read_len(const io_call *c)
{
    if (c->off >= 0) return 0;
    switch (c->kind) {
    case TL__OP_READ:
        return c->len;
    case TL__OP_RECV:
        return c->flags || c->addr ? 0 : c->len;
    case TL__OP_READV: {
        size_t n = 0;
        for (int i = 0; i < c->iovcnt; i++) {
            if (c->iov[i].iov_len > SIZE_MAX - n) return 0;
            n += c->iov[i].iov_len;
        }
        return n;
    }
    default:
        return 0;
    }
}

static ssize_t sys_call(io_call *c, tl__fd *r)
{
    struct msghdr m;
    switch (c->kind) {
    case TL__OP_READ:
        return c->off < 0 ? read(c->fd, c->buf, c->len)
                          : pread(c->fd, c->buf, c->len, (off_t)c->off);
    case TL__OP_WRITE:
        if (c->off < 0 && is_sock(r))
            return send(c->fd, c->buf, c->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        return c->off < 0 ? write(c->fd, c->buf, c->len)
                          : pwrite(c->fd, c->buf, c->len, (off_t)c->off);
    case TL__OP_READV:
        return c->off < 0 ? readv(c->fd, c->iov, c->iovcnt)
                          : preadv(c->fd, c->iov, c->iovcnt, (off_t)c->off);
    case TL__OP_WRITEV:
        if (c->off < 0 && is_sock(r)) {
            memset(&m, 0, sizeof m);
            m.msg_iov = (struct iovec *)c->iov;
            m.msg_iovlen = (size_t)c->iovcnt;
            return sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        return c->off < 0 ? writev(c->fd, c->iov, c->iovcnt)
                          : pwritev(c->fd, c->iov, c->iovcnt, (off_t)c->off);
    case TL__OP_RECV:
        return recvfrom(c->fd, c->buf, c->len, c->flags | MSG_DONTWAIT,
                        c->addr, c->addrlen);
    case TL__OP_SEND:
        return sendto(c->fd, c->buf, c->len,
                      c->flags | MSG_NOSIGNAL | MSG_DONTWAIT, c->addr,
                      c->alen);
    case TL__OP_RECVMSG:
        return recvmsg(c->fd, c->msg, c->flags | MSG_DONTWAIT);
    case TL__OP_SENDMSG:
        return sendmsg(c->fd, c->msg, c->flags | MSG_NOSIGNAL | MSG_DONTWAIT);
    case TL__OP_ACCEPT:
        return accept4(c->fd, c->addr, c->addrlen,
                       SOCK_CLOEXEC | SOCK_NONBLOCK);
    default:
        errno = EINVAL;
        return -1;
    }
}

/* MSG_WAITALL on the epoll backend. The non-blocking try returns what
 * the socket holds; the call must instead return only once len bytes (or
 * the iovecs of recvmsg) are full, the peer ended, an error came, or the
 * task was cancelled — what a blocking recv(2) and io_uring's retrying
 * request do. The kernel fills on SOCK_STREAM and, in io_uring's retry,
 * on SOCK_SEQPACKET: those two are filled here (asked only after a short
 * first try). */
static bool waitall_fills(tl__fd *r)
{
    if (!is_sock(r)) return false;
    int type = 0;
    socklen_t tlen = sizeof type;
    return getsockopt(r->fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 &&
           (type == SOCK_STREAM || type == SOCK_SEQPACKET);
}

static size_t waitall_len(const io_call *c)
{
    if (c->kind == TL__OP_RECV) return c->len;
    size_t n = 0;
    for (size_t i = 0; i < c->msg->msg_iovlen; i++) {
        if (c->msg->msg_iov[i].iov_len > SIZE_MAX - n) return SIZE_MAX;
        n += c->msg->msg_iov[i].iov_len;
    }
    return n;
}

/* One more non-blocking receive after `got` bytes: into the rest of buf,
 * or of recvmsg's iovecs — the caller's array from the first entry not
 * yet full (a one-entry copy for the part of an entry that is). Names and
 * control data came with the first receive; later ones take none (as
 * io_uring's retry). */
static ssize_t waitall_more(const io_call *c, size_t got)
{
    int fl = (c->flags & ~MSG_WAITALL) | MSG_DONTWAIT;
    if (c->kind == TL__OP_RECV)
        return recv(c->fd, (char *)c->buf + got, c->len - got, fl);
    struct msghdr m;
    struct iovec part;
    memset(&m, 0, sizeof m);
    size_t i = 0, n = c->msg->msg_iovlen;
    const struct iovec *v = c->msg->msg_iov;
    while (i < n && got >= v[i].iov_len) got -= v[i++].iov_len;
    if (i == n) return 0;
    if (got) {
        part.iov_base = (char *)v[i].iov_base + got;
        part.iov_len = v[i].iov_len - got;
        m.msg_iov = &part;
        m.msg_iovlen = 1;
    } else {
        m.msg_iov = (struct iovec *)&v[i];
        m.msg_iovlen = n - i;
    }
    return recvmsg(c->fd, &m, fl);
}

/* After a short first receive of `got` bytes: go on until full. Returns
 * the bytes received in all: a cancel, a close or an error after some
 * bytes arrived returns what arrived (completed wins: those bytes are
 * the caller's now; the cancel shows at the next call, and an error or
 * end is what the next receive sees, as after io_uring's partial
 * completion). */
static ssize_t waitall_rest(tl__task *self, io_call *c, tl__fd *r, size_t got,
                            const char *what)
{
    size_t want = waitall_len(c);
    while (got < want) {
        ssize_t m = waitall_more(c, got);
        if (m > 0) {
            got += (size_t)m;
            continue;
        }
        if (m == 0) break; /* the peer ended */
        int e = errno;
        if (e == EINTR) continue;
        if (e != EAGAIN && e != EWOULDBLOCK) break;
        r->ready &= (uint8_t)~TL__EV_IN;
        if (tl__fd_wait_ready(self, r, TL__EV_IN, 0, what) < 0) break;
    }
    return (ssize_t)got;
}

/* io_uring: one request. The msghdr / iovec built here for recvfrom,
 * sendto and socket writev live in this frame, which outlives the
 * request (the task waits for its completion: invariant 1). */
static ssize_t uring_call(tl__task *self, tl__fd *r, io_call *c,
                          unsigned dir, const char *what)
{
    /* io_uring ignores the offset of a stream and would wait for data;
     * pread(2) says ESPIPE. */
    if (c->kind >= TL__OP_READ && c->kind <= TL__OP_WRITEV && c->off >= 0 &&
        fd_kind(r) <= 2)
        return -ESPIPE;
    tl__op *op = tl__op_new(self->loop, c->kind, r);
    if (!op) return -ENOMEM;
    struct msghdr m;
    struct iovec v;
    memset(&m, 0, sizeof m);
    op->buf = c->buf;
    op->len = c->len;
    op->off = c->off;
    op->flags = c->flags;
    op->addr = c->addr;
    op->addrlen = c->addrlen;
    op->alen = c->alen;
    op->msgp = c->msg;
    switch (c->kind) {
    case TL__OP_WRITE:
        if (c->off < 0 && is_sock(r)) {
            op->kind = TL__OP_SEND; /* MSG_NOSIGNAL */
            op->flags = 0;
        }
        break;
    case TL__OP_READV:
    case TL__OP_WRITEV:
        op->msg.msg_iov = (struct iovec *)c->iov;
        op->msg.msg_iovlen = (size_t)c->iovcnt;
        if (c->kind == TL__OP_WRITEV && c->off < 0 && is_sock(r)) {
            m.msg_iov = (struct iovec *)c->iov;
            m.msg_iovlen = (size_t)c->iovcnt;
            op->kind = TL__OP_SENDMSG;
            op->msgp = &m;
            op->flags = 0;
        }
        break;
    case TL__OP_RECV:
    case TL__OP_SEND:
        if (!c->addr) break;
        /* recvfrom / sendto: io_uring has them only as recvmsg/sendmsg. */
        v.iov_base = c->buf;
        v.iov_len = c->len;
        m.msg_iov = &v;
        m.msg_iovlen = 1;
        m.msg_name = c->addr;
        m.msg_namelen = c->kind == TL__OP_RECV ? *c->addrlen : c->alen;
        op->kind = c->kind == TL__OP_RECV ? TL__OP_RECVMSG : TL__OP_SENDMSG;
        op->msgp = &m;
        break;
    case TL__OP_ACCEPT:
        op->flags = SOCK_CLOEXEC | SOCK_NONBLOCK;
        break;
    default:
        break;
    }
    unsigned dirs = 1u << dir;
    if (fd_kind(r) == KIND_FILE) {
        /* A file request waits for the disk, never for a peer: the
         * kernel owes its completion, so the virtual clock waits for it
         * (l->inflight). Files take no reader / writer slot: concurrent
         * preads of one file are fine. */
        op->counted = 1;
        self->loop->inflight++;
        dirs = 0;
    }
    int res = tl__op_run(self, op, dirs, what);
    if (c->kind == TL__OP_RECV && c->addr && res >= 0)
        *c->addrlen = m.msg_namelen;
    return res;
}

/* The common path of every operation. */
static ssize_t io_do(io_call *c, unsigned dir, const char *what, void *site)
{
    tl__task *self = tl__task_self(what);
    if (!self) return tl__not_task_error();
    int rc = tl__checkpoint(self, what, site);
    if (rc < 0) return rc;
    tl__loop *l = self->loop;
    tl__fd *r = tl__fd_get(l, c->fd, &rc);
    if (!r) return rc;
    if (r->waiter[dir]) return -EBUSY;
    ssize_t n;
    if (l->backend->completion) {
        n = uring_call(self, r, c, dir, what);
    } else if (fd_kind(r) == KIND_FILE &&
               (c->kind >= TL__OP_READ && c->kind <= TL__OP_WRITEV)) {
        /* A regular file is never "not ready": its read would block the
         * loop's thread on the disk. The thread pool does it. */
        n = tl__file_pool_io(c->kind, c->fd, c->buf, c->len, c->off, c->iov,
                             c->iovcnt);
    } else {
        unsigned bit = dir == TL__DIR_R ? TL__EV_IN : TL__EV_OUT;
        size_t want = plain_read_len(c);
        /* The last read of this byte stream came back short and no edge
         * came since (fd.c clears `drained` on every IN edge, error,
         * hang-up and re-registration): the call would say EAGAIN. Park
         * first, as libuv does, and save that system call. */
        if (want && r->drained && r->edge_in && !r->hup &&
            !(r->ready & (TL__EV_IN | TL__EV_ERR))) {
            int w = tl__fd_wait_ready(self, r, TL__EV_IN, 0, what);
            if (w < 0) return w;
        }
        for (;;) {
            n = sys_call(c, r);
            if (n >= 0) break;
            int e = errno;
            if (e == EINTR) continue;
            if (e != EAGAIN && e != EWOULDBLOCK) return -e;
            r->ready &= (uint8_t)~bit;
            int w = tl__fd_wait_ready(self, r, bit, 0, what);
            if (w < 0) return w;
        }
        if (n > 0 && (c->flags & MSG_WAITALL) &&
            (c->kind == TL__OP_RECV || c->kind == TL__OP_RECVMSG) &&
            (size_t)n < waitall_len(c) && waitall_fills(r))
            n = waitall_rest(self, c, r, (size_t)n, what);
        /* A short read of a byte stream emptied the kernel's buffer (a
         * TCP or Unix stream socket, a pipe: it stops only there). With
         * an edge-triggered registration, anything that arrives later
         * brings an edge; edges already fetched were for bytes this read
         * took. An end or error already seen (hup) is still readable:
         * never drained then. */
        if (want && n > 0 && (size_t)n < want && r->edge_in && !r->hup &&
            !(r->ready & TL__EV_ERR) && tl__fd_bytes(r) == 1) {
            r->drained = 1;
            r->ready &= (uint8_t)~TL__EV_IN;
        }
        if (++self->io_streak >= STREAK_YIELD) {
            self->io_streak = 0;
            tl__yield_now(self); /* let the others run; result kept */
        }
    }
    if (c->kind == TL__OP_ACCEPT && n >= 0) {
        tl__fd_fresh(l, (int)n, 1, tl__fd_bytes(r)); /* the listener's type */
    }
    return n;
}

#define SITE __builtin_return_address(0)

ssize_t tl_read(int fd, void *buf, size_t len)
{
    io_call c = {.kind = TL__OP_READ, .fd = fd, .buf = buf, .len = len,
                 .off = -1};
    return io_do(&c, TL__DIR_R, "tl_read", SITE);
}

ssize_t tl_write(int fd, const void *buf, size_t len)
{
    io_call c = {.kind = TL__OP_WRITE, .fd = fd, .buf = (void *)buf,
                 .len = len, .off = -1};
    return io_do(&c, TL__DIR_W, "tl_write", SITE);
}

ssize_t tl_readv(int fd, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX || (!iov && iovcnt)) return -EINVAL;
    io_call c = {.kind = TL__OP_READV, .fd = fd, .iov = iov,
                 .iovcnt = iovcnt, .off = -1};
    return io_do(&c, TL__DIR_R, "tl_readv", SITE);
}

ssize_t tl_writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX || (!iov && iovcnt)) return -EINVAL;
    io_call c = {.kind = TL__OP_WRITEV, .fd = fd, .iov = iov,
                 .iovcnt = iovcnt, .off = -1};
    return io_do(&c, TL__DIR_W, "tl_writev", SITE);
}

ssize_t tl_pread(int fd, void *buf, size_t len, off_t offset)
{
    if (offset < 0) return -EINVAL;
    io_call c = {.kind = TL__OP_READ, .fd = fd, .buf = buf, .len = len,
                 .off = offset};
    return io_do(&c, TL__DIR_R, "tl_pread", SITE);
}

ssize_t tl_pwrite(int fd, const void *buf, size_t len, off_t offset)
{
    if (offset < 0) return -EINVAL;
    io_call c = {.kind = TL__OP_WRITE, .fd = fd, .buf = (void *)buf,
                 .len = len, .off = offset};
    return io_do(&c, TL__DIR_W, "tl_pwrite", SITE);
}

/* MSG_PEEK | MSG_WAITALL is refused on both backends: io_uring's retry
 * of a short peek advances the buffer and peeks the same bytes again
 * (seen on 6.18: "abcdabcdabcd" for three 4-byte sends), and waiting for
 * a peek to fill would need a poll-and-peek loop nobody has asked for. */
#define PEEK_WAITALL(flags) \
    (((flags) & (MSG_PEEK | MSG_WAITALL)) == (MSG_PEEK | MSG_WAITALL))

ssize_t tl_recv(int fd, void *buf, size_t len, int flags)
{
    if (PEEK_WAITALL(flags)) return -EINVAL;
    io_call c = {.kind = TL__OP_RECV, .fd = fd, .buf = buf, .len = len,
                 .flags = flags & ~MSG_DONTWAIT};
    return io_do(&c, TL__DIR_R, "tl_recv", SITE);
}

ssize_t tl_send(int fd, const void *buf, size_t len, int flags)
{
    io_call c = {.kind = TL__OP_SEND, .fd = fd, .buf = (void *)buf,
                 .len = len, .flags = flags & ~MSG_DONTWAIT};
    return io_do(&c, TL__DIR_W, "tl_send", SITE);
}

ssize_t tl_recvfrom(int fd, void *buf, size_t len, int flags,
                    struct sockaddr *addr, socklen_t *addrlen)
{
    if (!addr != !addrlen || PEEK_WAITALL(flags)) return -EINVAL;
    io_call c = {.kind = TL__OP_RECV, .fd = fd, .buf = buf, .len = len,
                 .flags = flags & ~MSG_DONTWAIT, .addr = addr,
                 .addrlen = addrlen};
    return io_do(&c, TL__DIR_R, "tl_recvfrom", SITE);
}

ssize_t tl_sendto(int fd, const void *buf, size_t len, int flags,
                  const struct sockaddr *addr, socklen_t addrlen)
{
    io_call c = {.kind = TL__OP_SEND, .fd = fd, .buf = (void *)buf,
                 .len = len, .flags = flags & ~MSG_DONTWAIT,
                 .addr = (void *)addr, .alen = addr ? addrlen : 0};
    return io_do(&c, TL__DIR_W, "tl_sendto", SITE);
}

ssize_t tl_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (!msg || PEEK_WAITALL(flags)) return -EINVAL;
    io_call c = {.kind = TL__OP_RECVMSG, .fd = fd, .msg = msg,
                 .flags = flags & ~MSG_DONTWAIT};
    return io_do(&c, TL__DIR_R, "tl_recvmsg", SITE);
}

ssize_t tl_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!msg) return -EINVAL;
    io_call c = {.kind = TL__OP_SENDMSG, .fd = fd,
                 .msg = (struct msghdr *)msg, .flags = flags & ~MSG_DONTWAIT};
    return io_do(&c, TL__DIR_W, "tl_sendmsg", SITE);
}

int tl_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    if (!addr != !addrlen) return -EINVAL;
    io_call c = {.kind = TL__OP_ACCEPT, .fd = fd, .addr = addr,
                 .addrlen = addrlen};
    return (int)io_do(&c, TL__DIR_R, "tl_accept", SITE);
}

/* epoll: connect(2) in progress; wait for writable, then ask SO_ERROR.
 * Readiness bits from before the connect say nothing about it, so they
 * are cleared first, and a wake-up that finds the socket not yet
 * connected (getpeername: ENOTCONN) waits again. */
static int connect_wait(tl__task *self, tl__fd *r)
{
    for (;;) {
        r->ready &= (uint8_t)~(TL__EV_OUT | TL__EV_ERR);
        int w = tl__fd_wait_ready(self, r, TL__EV_OUT, 0, "tl_connect");
        if (w < 0) return w;
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
            return -errno;
        if (err) return -err;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getpeername(r->fd, (struct sockaddr *)&ss, &sl) == 0) return 0;
        if (errno != ENOTCONN) return -errno;
    }
}

int tl_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    tl__task *self = tl__task_self("tl_connect");
    if (!self) return tl__not_task_error();
    if (!addr) return -EINVAL;
    int rc = tl__checkpoint(self, "tl_connect", SITE);
    if (rc < 0) return rc;
    tl__loop *l = self->loop;
    tl__fd *r = tl__fd_get(l, fd, &rc);
    if (!r) return rc;
    if (r->waiter[TL__DIR_W]) return -EBUSY;
    if (l->backend->completion) {
        io_call c = {.kind = TL__OP_CONNECT, .fd = fd, .addr = (void *)addr,
                     .alen = addrlen};
        return (int)uring_call(self, r, &c, TL__DIR_W, "tl_connect");
    }
    for (;;) {
        if (connect(fd, addr, addrlen) == 0) return 0;
        int e = errno;
        if (e == EINPROGRESS || e == EINTR) return connect_wait(self, r);
        if (e != EAGAIN) return -e;
        /* A Unix socket whose listener's backlog is full: wait, retry. */
        r->ready &= (uint8_t)~TL__EV_OUT;
        int w = tl__fd_wait_ready(self, r, TL__EV_OUT, 0, "tl_connect");
        if (w < 0) return w;
    }
}

int tl_shutdown(int fd, int how)
{
    tl__task *self = tl__task_self("tl_shutdown");
    if (!self) return tl__not_task_error();
    int rc = tl__checkpoint(self, "tl_shutdown", SITE);
    if (rc < 0) return rc;
    /* Never waits for anything, on either backend: one system call is
     * what an io_uring request would cost, without the park. */
    return shutdown(fd, how) == 0 ? 0 : -errno;
}
