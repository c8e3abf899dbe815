/* Streams (include/tulip/stream.h): asyncio's StreamReader and
 * StreamWriter over a transport, the fd transport being the one built.
 *
 * Layers:
 *
 *   tl_stream_read / readexactly / readuntil / readline / write / drain
 *        |  a read buffer and a write queue, both runtime memory
 *   transport: read (suspends), write (never suspends: -EAGAIN), shutdown
 *        |  (write side), close — the seam where TLS plugs in later
 *   fd transport: tl_read, send(MSG_NOSIGNAL) / write (SIGPIPE blocked
 *        by the loop), shutdown(SHUT_WR), tl_close
 *
 * Reading. A read fills the stream's own buffer (rbuf[rstart, rend)) with
 * one transport read and copies out; a failing read consumes nothing, so a
 * cancel, a reset or a line over the limit leaves every byte that arrived
 * in rbuf. A transport read into rbuf that is cancelled follows tl_read's
 * rule (invariant 1: on io_uring it waits for its own completion, and a
 * result that raced the cancel is kept — appended to rbuf). Only the one
 * reader (s->reader) touches rbuf while it waits, so rbuf never moves
 * under the kernel.
 *
 * Writing. tl_stream_write tries the transport at once; what is left is
 * copied to the write queue (wbuf[wstart, wend)) and a writable watcher
 * (tl_fd_watch, on the loop's stack) sends it as the peer reads. The
 * watcher exists only while the queue is not empty: a paused watcher
 * would make the loop poll every iteration. Nothing the kernel may touch
 * lives in the queue (sends are non-blocking system calls), so it can be
 * grown and moved freely. drain waits on an event that is clear while the
 * queue is over the high-water mark ("paused") and set again at the low
 * mark, on a write error and on close.
 *
 * Life. `inside` counts the tasks in a read or drain of s. close wakes
 * them (the fd is forgotten or closed: a parked transport read returns
 * TL_ECLOSED; drainers see the event); the queue keeps draining in the
 * background, then the transport is closed. wait_closed waits for both
 * (the `idle` event) and frees s; a cancelled wait_closed closes the
 * transport at once and, if a task is still on its way out, leaves the
 * free to the last one (`dead`). */
#include "io/io.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_LIMIT ((size_t)64 * 1024)
#define DEFAULT_HIGH ((size_t)64 * 1024)
#define DEFAULT_LOW ((size_t)16 * 1024)
#define RBUF_INIT ((size_t)16 * 1024)
#define MIN_READ ((size_t)4096)
#define RBUF_KEEP ((size_t)256 * 1024) /* an empty buffer above this is freed */
#define IO_CAP ((size_t)0x7ffff000)

/* The transport: the stream's lower layer. */
typedef struct stream_transport {
    const char *name;
    /* Read up to len bytes into buf (the stream's own buffer). SUSPENDS.
     * > 0, 0 at the end, -ECANCELED (nothing read), TL_ECLOSED, -errno. */
    ssize_t (*read)(tl_stream *s, void *buf, size_t len);
    /* Write up to len bytes now. Never suspends: a count (> 0), -EAGAIN
     * (nothing taken: wait for writable), or -errno. Never SIGPIPE. */
    ssize_t (*write)(tl_stream *s, const void *buf, size_t len);
    /* Shut the write side (after the queue is empty). 0 or -errno. */
    int (*shutdown)(tl_stream *s);
    /* Release the lower layer (close or forget the fd). Never suspends. */
    void (*close)(tl_stream *s);
} stream_transport;

struct tl_stream {
    tl__loop *loop;
    const stream_transport *tp;
    int fd;
    uint8_t owns;        /* close fd at the end (not TL_STREAM_BORROW) */
    uint8_t made_nonblock; /* open set O_NONBLOCK on a pipe or terminal:
                              a borrowed fd gets it cleared at the end */
    uint8_t is_sock;     /* sends (MSG_NOSIGNAL) and shutdown(SHUT_WR) */
    /* read side */
    char *rbuf;
    size_t rcap, rstart, rend;
    size_t limit;
    uint8_t eof;         /* the transport said 0 */
    int rerr;            /* sticky read error, returned after the buffer */
    tl__task *reader;    /* the task inside a read, or NULL */
    /* write side */
    char *wbuf;
    size_t wcap, wstart, wend;
    size_t high, low;
    uint8_t paused;      /* queue went over high; drain waits */
    uint8_t eof_asked;   /* write_eof called */
    uint8_t eof_done;    /* ... and done */
    uint8_t lost;        /* a write error dropped queued bytes */
    int werr;            /* sticky write error */
    tl_fd_watch *watch;  /* writable watcher while the queue is not empty */
    /* io_uring: the queue goes out as SEND requests ("ring sends") */
    uint8_t ring;        /* on: writes queue and submit, never send(2) */
    tl__op *sop;         /* the send in flight, or NULL */
    char *fbuf;          /* its bytes, fbuf[fstart, fend): frozen (never
                            moved or grown) while sop is in flight; new
                            writes go to wbuf behind it */
    size_t fcap, fstart, fend;
    /* io_uring: reads come from one multishot RECV into the loop's
     * provided-buffer ring, copied into rbuf as they complete ("ring
     * receives") */
    uint8_t mrecv;       /* on: fill parks for ring_recvd instead of
                            reading into rbuf through the transport */
    tl__op *rop;         /* the armed request, until its last completion */
    tl__task *rwait;     /* the reader parked for bytes */
    size_t rwant;        /* ... and how many it needs buffered */
    tl_event drained;    /* set unless paused */
    /* life */
    uint8_t closing;     /* tl_stream_close was called */
    uint8_t tp_closed;   /* the transport is closed */
    uint8_t dead;        /* wait_closed gave up: the last task out frees */
    int inside;          /* tasks inside a read or drain */
    tl_event idle;       /* set once closing, tp_closed and inside == 0 */
    /* a caller's transport (tl_stream_open_transport), or NULL */
    const tl_stream_transport *utp;
    void *uctx;
};

#define SITE __builtin_return_address(0)

/* ---- the fd transport ------------------------------------------------- */

static ssize_t fd_read(tl_stream *s, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = tl_read(s->fd, buf, len);
        if (n != -EAGAIN) return n;
        /* io_uring on kernels that answer a read of an O_NONBLOCK file
         * with -EAGAIN instead of waiting (the stream makes pipes
         * non-blocking for its own writes): wait, then read again. */
        int rc = tl_fd_wait(s->fd, TL_READABLE);
        if (rc < 0) return rc;
    }
}

static ssize_t fd_write(tl_stream *s, const void *buf, size_t len)
{
    if (len > IO_CAP) len = IO_CAP;
    for (;;) {
        ssize_t n = s->is_sock
                        ? send(s->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT)
                        : write(s->fd, buf, len); /* SIGPIPE: blocked by the
                                                    loop (-EPIPE) */
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return -EAGAIN;
        return -errno;
    }
}

static int fd_shutdown(tl_stream *s)
{
    if (s->is_sock) {
        if (shutdown(s->fd, SHUT_WR) == 0 || errno == ENOTCONN) return 0;
        return -errno;
    }
    /* A pipe has no half-close: its writer closing is the end of stream
     * (tl_stream_write_eof refuses borrowed non-sockets). */
    int rc = tl_close(s->fd);
    s->fd = -1;
    return rc;
}

/* The end of the stream's fd, for both transports, once tulip forgot it
 * (its record assumes a non-blocking fd) and the transport let go of it:
 * an owned fd is closed; a borrowed one goes back to its owner as it
 * came, with the file status flag the stream changed put back — the open
 * file is shared with whoever else holds it (a shell's terminal, the
 * other end's process), and a blocking reader there would get EAGAIN. */
static void give_back_fd(tl_stream *s, int fd)
{
    if (s->owns) {
        (void)tl_close(fd);
    } else if (s->made_nonblock) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
}

static void fd_close(tl_stream *s)
{
    if (s->fd < 0) return;
    int fd = s->fd;
    s->fd = -1;
    (void)tl_fd_forget(fd);
    give_back_fd(s, fd);
}

static const stream_transport fd_transport = {
    .name = "fd",
    .read = fd_read,
    .write = fd_write,
    .shutdown = fd_shutdown,
    .close = fd_close,
};

/* ---- a caller's transport (tl_stream_open_transport) ------------------ */

static ssize_t user_read(tl_stream *s, void *buf, size_t len)
{
    if (s->fd < 0) return TL_ECLOSED;
    return s->utp->read(s->uctx, s->fd, buf, len);
}

static ssize_t user_write(tl_stream *s, const void *buf, size_t len)
{
    if (len > IO_CAP) len = IO_CAP;
    return s->utp->write(s->uctx, s->fd, buf, len);
}

static int user_shutdown(tl_stream *s)
{
    return s->utp->shutdown ? s->utp->shutdown(s->uctx, s->fd) : 0;
}

static void user_close(tl_stream *s)
{
    if (s->fd < 0) return;
    int fd = s->fd;
    s->fd = -1;
    /* Wake a reader parked in the transport (on this fd) with TL_ECLOSED
     * before the transport releases its state. */
    (void)tl_fd_forget(fd);
    s->utp->close(s->uctx, fd);
    s->uctx = NULL;
    give_back_fd(s, fd);
}

static const stream_transport user_transport = {
    .name = "user",
    .read = user_read,
    .write = user_write,
    .shutdown = user_shutdown,
    .close = user_close,
};

/* ---- life ------------------------------------------------------------- */

static void destroy(tl_stream *s)
{
    (void)tl_event_destroy(&s->drained);
    (void)tl_event_destroy(&s->idle);
    free(s->rbuf);
    free(s->wbuf);
    if (s->sop)
        s->sop->data = NULL; /* the kernel may still read fbuf: the send's
                                completion frees it (invariant 1) */
    else
        free(s->fbuf);
    if (s->rop) s->rop->data = NULL; /* its last completion frees it */
    free(s);
}

static void check_idle(tl_stream *s)
{
    if (!s->closing || !s->tp_closed || s->inside > 0 || s->rop) return;
    if (s->dead)
        destroy(s);
    else
        (void)tl_event_set(&s->idle);
}

static void drop_watch(tl_stream *s)
{
    tl_fd_watch *w = s->watch;
    s->watch = NULL;
    tl_fd_watch_free(w); /* also from its own callback */
}

/* Close the transport now: the queue is empty, failed, or given up. */
static void finish_transport(tl_stream *s)
{
    if (s->tp_closed) return;
    s->tp_closed = 1;
    drop_watch(s);
    s->tp->close(s);
    check_idle(s);
}

static void resume_writers(tl_stream *s)
{
    if (s->paused) {
        s->paused = 0;
        (void)tl_event_set(&s->drained);
    }
}

/* A write error: nothing more is sent; the queue is dropped. */
static void set_werr(tl_stream *s, int code)
{
    if (!s->werr) s->werr = code;
    if (s->wend > s->wstart || s->fend > s->fstart) s->lost = 1;
    s->wstart = s->wend = 0;
    if (!s->sop) s->fstart = s->fend = 0; /* else its completion drops it */
    drop_watch(s);
    resume_writers(s);
    (void)tl_event_set(&s->drained);
    if (s->closing) finish_transport(s);
}

static size_t queued(const tl_stream *s)
{
    return (s->fend - s->fstart) + (s->wend - s->wstart);
}

static void do_eof(tl_stream *s)
{
    if (s->eof_done || s->tp_closed) return;
    s->eof_done = 1;
    int rc = s->tp->shutdown(s);
    if (rc < 0 && !s->werr) s->werr = rc;
    if (s->fd < 0) {
        /* A non-socket: write_eof closed it. */
        s->tp_closed = 1;
        check_idle(s);
    }
}

static void on_writable(int fd, unsigned events, void *arg);
static void flush(tl_stream *s);

/* ---- ring sends (io_uring) ----------------------------------------------
 * On io_uring a socket stream does not send(2) at all: a write appends to
 * the queue and, when no send is in flight, the queue is frozen (swapped
 * into fbuf) and submitted as one SEND request, which reaches the kernel
 * with the loop's next io_uring_enter together with the reads: one system
 * call per loop iteration for every stream, not one per write. One send
 * is in flight per stream, so bytes keep their order; its completion
 * (ring_sent, on the loop's stack) advances fbuf, sends what is left or
 * what was queued meanwhile, and does what flush does once the queue is
 * empty (write_eof, the close). The send counts as a watcher
 * (l->io_watchers: the loop polls, the virtual clock does not wait for a
 * peer). fbuf is never moved or freed while the kernel may read it: a
 * stream freed meanwhile leaves it to the completion. */

static void ring_kick(tl_stream *s);

/* The queue is empty: what flush does at that point. May free s. */
static void queue_empty(tl_stream *s)
{
    s->wstart = s->wend = 0;
    s->fstart = s->fend = 0;
    if (s->wcap > RBUF_KEEP) {
        free(s->wbuf);
        s->wbuf = NULL;
        s->wcap = 0;
    }
    if (s->fcap > RBUF_KEEP && !s->sop) {
        free(s->fbuf);
        s->fbuf = NULL;
        s->fcap = 0;
    }
    drop_watch(s);
    if (s->eof_asked) do_eof(s);
    if (s->closing) finish_transport(s);
}

/* Put the frozen bytes back in front of the queue (leaving ring sends:
 * the kernel said EAGAIN, see ring_sent). */
static int unfreeze(tl_stream *s)
{
    size_t f = s->fend - s->fstart, q = s->wend - s->wstart;
    if (!f) return 0;
    size_t cap = f + q > RBUF_INIT ? f + q : RBUF_INIT;
    char *nb = malloc(cap);
    if (!nb) return -ENOMEM;
    memcpy(nb, s->fbuf + s->fstart, f);
    if (q) memcpy(nb + f, s->wbuf + s->wstart, q);
    free(s->wbuf);
    s->wbuf = nb;
    s->wcap = cap;
    s->wstart = 0;
    s->wend = f + q;
    s->fstart = s->fend = 0;
    return 0;
}

static void ring_sent(tl__loop *l, tl__op *op, int res, unsigned flags)
{
    (void)flags;
    tl_stream *s = op->data;
    char *base = op->addr;
    bool closed = op->closed;
    l->io_watchers--;
    tl__op_free(l, op);
    if (!s) { /* the stream was freed while the kernel held fbuf */
        free(base);
        return;
    }
    s->sop = NULL;
    if (s->werr || s->tp_closed) { /* given up meanwhile: drop the rest */
        s->fstart = s->fend = 0;
        return;
    }
    if (res > 0) {
        s->fstart += (size_t)res;
    } else if (res == 0) {
        /* nothing taken, nothing wrong: try again */
    } else if ((res == -ECANCELED || res == -EINTR) && closed &&
               s->closing && !l->closing && s->fd >= 0) {
        /* tl_stream_close forgot the fd to wake a parked reader; the
         * queue still goes out (resubmitted below) */
    } else if (res == -EAGAIN) {
        /* A kernel that answers a send on an O_NONBLOCK socket with
         * EAGAIN instead of waiting: send(2) and the watcher from now. */
        s->ring = 0;
        int rc = unfreeze(s);
        if (rc < 0) {
            set_werr(s, rc);
            return;
        }
        flush(s); /* may free s */
        return;
    } else {
        if (res == -ECANCELED) res = closed ? TL_ECLOSED : -EIO;
        set_werr(s, res); /* may free s (closing: the transport closes) */
        return;
    }
    if (s->fstart == s->fend) s->fstart = s->fend = 0;
    if (s->paused && queued(s) <= s->low) resume_writers(s);
    if (queued(s) > 0)
        ring_kick(s);
    else
        queue_empty(s); /* may free s */
}

/* Submit the queue if no send is in flight. */
static void ring_kick(tl_stream *s)
{
    if (s->sop || s->werr || s->tp_closed || s->fd < 0) return;
    if (s->fstart == s->fend) {
        if (s->wstart == s->wend) return;
        /* freeze what is queued: swap the buffers */
        char *b = s->fbuf;
        size_t cap = s->fcap;
        s->fbuf = s->wbuf;
        s->fcap = s->wcap;
        s->fstart = s->wstart;
        s->fend = s->wend;
        s->wbuf = b;
        s->wcap = cap;
        s->wstart = s->wend = 0;
    }
    tl__loop *l = s->loop;
    int err = -ENOMEM;
    tl__fd *r = tl__fd_get(l, s->fd, &err);
    tl__op *op = r ? tl__op_new(l, TL__OP_SEND, r) : NULL;
    if (!op) {
        set_werr(s, err);
        return;
    }
    size_t len = s->fend - s->fstart;
    op->buf = s->fbuf + s->fstart;
    op->len = len > IO_CAP ? IO_CAP : len;
    op->flags = 0; /* MSG_NOSIGNAL is the backend's */
    op->addr = s->fbuf;
    op->abandon = 1;
    op->done = ring_sent;
    op->data = s;
    tl__list_push(&r->ops, &op->fd_link); /* tl_close cancels it */
    s->sop = op;
    l->io_watchers++;
    l->backend->submit(l, op);
}

/* Send from the queue until it is empty or the kernel says EAGAIN. May
 * free s (a dead stream whose transport it closes): the caller must not
 * touch s afterwards. */
static void flush(tl_stream *s)
{
    if (s->ring) {
        ring_kick(s);
        return;
    }
    while (queued(s) > 0) {
        ssize_t n = s->tp->write(s, s->wbuf + s->wstart, queued(s));
        if (n == -EAGAIN) break;
        if (n < 0) {
            set_werr(s, (int)n);
            return;
        }
        s->wstart += (size_t)n;
    }
    if (s->paused && queued(s) <= s->low) resume_writers(s);
    if (queued(s) > 0) {
        if (!s->watch) {
            int rc = tl_fd_watch_new(&s->watch, s->fd, TL_WRITABLE,
                                     on_writable, s);
            if (rc < 0) {
                s->watch = NULL;
                set_werr(s, rc);
            }
        }
        return;
    }
    queue_empty(s);
}

static void on_writable(int fd, unsigned events, void *arg)
{
    (void)fd;
    (void)events;
    flush(arg);
}

/* ---- ring receives (io_uring) -------------------------------------------
 * A socket stream on io_uring reads through one multishot RECV whose
 * completions each carry a buffer of the loop's provided-buffer ring
 * (TL__OP_RECV_MULTI): ring_recvd, on the loop's stack, appends the bytes
 * to rbuf at once and hands the buffer back to the kernel, so a read
 * costs no request while the data keeps coming. The kernel writes only
 * into the ring's buffers (runtime memory of the loop), never into rbuf,
 * so rbuf may move and a reader parked for bytes (rwait) owns nothing in
 * the kernel: cancelling it only unparks it, and what arrives later stays
 * in rbuf for the next read. The request stays armed while rbuf holds less
 * than RING_CAP (or what the reader needs); past that it is cancelled
 * (the peer waits in the socket's buffer again: back-pressure) and fill
 * arms it anew. A completion without F_MORE ends the request: the end of
 * the stream (0), an error (sticky in rerr), -ECANCELED (asked for), or
 * -ENOBUFS / a CQ overflow with the request merely stopped — then it is
 * armed again at once: every buffer it used was handed back before this
 * completion was read, so that is no busy loop. TULIP_RING_RECV=0 keeps
 * one-shot reads into rbuf. */

#define RING_CAP RBUF_KEEP

static size_t ring_cap(const tl_stream *s)
{
    return s->rwant > RING_CAP ? s->rwant : RING_CAP;
}

static void ring_recvd(tl__loop *l, tl__op *op, int res, unsigned flags);

static int ring_arm(tl_stream *s)
{
    tl__loop *l = s->loop;
    int err = -ENOMEM;
    tl__fd *r = tl__fd_get(l, s->fd, &err);
    tl__op *op = r ? tl__op_new(l, TL__OP_RECV_MULTI, r) : NULL;
    if (!op) return err;
    op->abandon = 1;
    op->done = ring_recvd;
    op->data = s;
    tl__list_push(&r->ops, &op->fd_link); /* tl_close cancels it */
    s->rop = op;
    l->backend->submit(l, op);
    return 0;
}

/* Ask the kernel to end the request; its last completion follows. */
static void ring_stop(tl_stream *s)
{
    tl__op *op = s->rop;
    tl__loop *l = s->loop;
    if (!op || op->state == TL__OPS_CANCELLING) return;
    if (l->backend->cancel(l, op) == 1) { /* never reached the kernel */
        ring_recvd(l, op, -ECANCELED, 0); /* may free s */
        return;
    }
    if (!op->counted) {
        op->counted = 1;
        l->inflight++; /* owed regardless of any peer */
    }
}

static void ring_wake(tl_stream *s, int result)
{
    tl__task *t = s->rwait;
    if (!t) return;
    s->rwait = NULL;
    s->loop->io_waiters--;
    tl__wake(t, result);
}

static int make_room(tl_stream *s, size_t want);
static size_t buffered(const tl_stream *s);

static void ring_recvd(tl__loop *l, tl__op *op, int res, unsigned flags)
{
    tl_stream *s = op->data;
    bool last = !(flags & TL__CQE_F_MORE);
    if (flags & TL__CQE_F_BUFFER) {
        unsigned bid = flags >> TL__CQE_BUFFER_SHIFT;
        if (s && res > 0 && !s->closing && !s->rerr) {
            if (make_room(s, buffered(s) + (size_t)res) == 0) {
                memcpy(s->rbuf + s->rend, l->backend->buf_addr(l, bid),
                       (size_t)res);
                s->rend += (size_t)res;
            } else {
                s->rerr = tl_fail(-ENOMEM, "stream: no memory for %d "
                                  "received bytes; the stream's input is "
                                  "broken", res);
            }
        }
        l->backend->buf_put(l, bid);
    }
    if (last) {
        if (op->counted) {
            op->counted = 0;
            l->inflight--;
        }
        tl__op_free(l, op);
        if (!s) return;
        s->rop = NULL;
    }
    if (!s) return;
    if (res == 0 && last) {
        s->eof = 1;
    } else if (res < 0 && res != -ECANCELED && res != -ENOBUFS &&
               res != -EINTR) {
        if (!s->rerr && !s->closing) s->rerr = res;
    }
    bool more = !s->eof && !s->rerr && !s->closing && !s->tp_closed &&
                s->fd >= 0 && buffered(s) < ring_cap(s);
    if (last && more && (res != -ECANCELED || s->rwait)) {
        if (ring_arm(s) < 0) s->rerr = -ENOMEM;
    } else if (!last && !more) {
        ring_stop(s);
    }
    if (s->rwait && (res > 0 || !s->rop)) ring_wake(s, 0);
    if (last) check_idle(s); /* may free s */
}

static void ring_wait_cancel(tl__task *t)
{
    tl_stream *s = t->wait_data;
    s->rwait = NULL;
    t->loop->io_waiters--;
    tl__wake(t, -ECANCELED);
}

/* fill's ring form: wait until ring_recvd added bytes (how many), the
 * end (0) or an error. Nothing of the caller's is in the kernel. */
static ssize_t ring_fill(tl_stream *s, size_t want)
{
    tl__task *self = s->loop->current;
    size_t before = buffered(s);
    for (;;) {
        if (buffered(s) > before) return (ssize_t)(buffered(s) - before);
        if (s->eof) return 0;
        if (s->rerr) return s->rerr;
        if (s->closing || s->tp_closed || s->fd < 0) return TL_ECLOSED;
        s->rwant = want;
        if (!s->rop) {
            int rc = ring_arm(s);
            if (rc < 0) return rc;
        }
        s->rwait = self;
        s->loop->io_waiters++;
        self->wait_data = s;
        int w = tl__park(self, ring_wait_cancel, "tl_stream_read");
        s->rwant = 0;
        if (w < 0) return w; /* -ECANCELED, TL_ECLOSED: nothing consumed */
    }
}

/* ---- open ------------------------------------------------------------- */

static int open_common(tl_stream **out, int fd, const tl_stream_opts *opts,
                       const tl_stream_transport *tp, void *ctx);

int tl_stream_open(tl_stream **out, int fd, const tl_stream_opts *opts)
{
    return open_common(out, fd, opts, NULL, NULL);
}

int tl_stream_open_transport(tl_stream **out, int fd,
                             const tl_stream_transport *tp, void *ctx,
                             const tl_stream_opts *opts)
{
    if (!tp || !tp->read || !tp->write || !tp->close) return -EINVAL;
    return open_common(out, fd, opts, tp, ctx);
}

void *tl_stream_transport_ctx(const tl_stream *s, const tl_stream_transport *tp)
{
    if (!s || !tp || s->utp != tp) return NULL;
    return s->uctx;
}

static int open_common(tl_stream **out, int fd, const tl_stream_opts *opts,
                       const tl_stream_transport *tp, void *ctx)
{
    tl__loop *l = tl__self;
    if (!l) {
        tl__diag("tl_stream_open: no loop runs on this thread");
        return TL_ENOTASK;
    }
    if (tl__loop_forked(l)) return TL_EFORK;
    if (!out) return -EINVAL;
    tl_stream_opts o = {0};
    if (opts) o = *opts;
    if (o.flags & ~TL_STREAM_BORROW) return -EINVAL;
    size_t high = o.high_water ? o.high_water : DEFAULT_HIGH;
    size_t low = o.high_water ? o.low_water : DEFAULT_LOW;
    if (low > high) return -EINVAL;
    /* A socket tulip made (tl_accept, tl_socket, tl_net_connect) is known
     * open, non-blocking and a socket: no system call (a server opens one
     * stream per connection). Else ask. */
    tl__fd *r = tl__fd_find(l, fd);
    bool sock = r && r->is_sock == 1;
    bool stream_type = sock && tl__fd_bytes(r) == 1;
    int fl = 0;
    if (!sock) {
        fl = fcntl(fd, F_GETFL);
        if (fl < 0) return -errno;
        int type;
        socklen_t tlen = sizeof type;
        sock = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0;
        stream_type = sock && type == SOCK_STREAM;
    }
    tl_stream *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    if (!sock && !(fl & O_NONBLOCK) &&
        fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = -errno;
        free(s);
        return e;
    }
    s->loop = l;
    s->tp = tp ? &user_transport : &fd_transport;
    s->utp = tp;
    s->uctx = ctx;
    s->fd = fd;
    s->owns = !(o.flags & TL_STREAM_BORROW);
    s->made_nonblock = !sock && !(fl & O_NONBLOCK);
    s->is_sock = sock;
    /* io_uring: a socket's writes on the fd transport become ring
     * requests (see ring_kick; a caller's transport, TLS, writes itself);
     * TULIP_RING_SEND=0 keeps send(2), for comparison. */
    const char *rs = getenv("TULIP_RING_SEND");
    s->ring = sock && !tp && l->backend->completion && !(rs && rs[0] == '0');
    /* ... and its reads come from a multishot receive (ring_fill) on a
     * byte stream, where the kernel has it; TULIP_RING_RECV=0 keeps
     * one-shot reads. */
    const char *rr = getenv("TULIP_RING_RECV");
    s->mrecv = sock && !tp && l->backend->completion && stream_type &&
               !(rr && rr[0] == '0') && l->backend->has_op &&
               l->backend->has_op(l, TL__OP_RECV_MULTI) &&
               l->backend->bufs_ready(l) == 0;
    s->limit = o.limit ? o.limit : DEFAULT_LIMIT;
    s->high = high;
    s->low = low;
    (void)tl_event_init(&s->drained);
    (void)tl_event_set(&s->drained);
    (void)tl_event_init(&s->idle);
    *out = s;
    return 0;
}

/* ---- entering and leaving --------------------------------------------- */

/* The common prologue of the suspending calls: the loop check, closed,
 * the cancellation point; then s->inside counts the caller. */
static tl__task *enter(tl_stream *s, const char *what, void *site, int *err)
{
    if (!s) {
        *err = -EINVAL;
        return NULL;
    }
    tl__task *self = tl__task_self_in(s->loop, "stream", what, err);
    if (!self) return NULL;
    if (s->closing) {
        *err = TL_ECLOSED;
        return NULL;
    }
    int rc = tl__checkpoint(self, what, site);
    if (rc < 0) {
        *err = rc;
        return NULL;
    }
    if (s->closing) { /* closed while the checkpoint yielded */
        *err = TL_ECLOSED;
        return NULL;
    }
    s->inside++;
    return self;
}

static tl__task *enter_reader(tl_stream *s, const char *what, void *site,
                              int *err)
{
    if (s && s->reader) {
        char buf[64];
        tl__diag("%s: task %s is already reading this stream; one reader "
                 "at a time (-EBUSY)", what,
                 tl__task_label(s->reader, buf, sizeof buf));
        *err = -EBUSY;
        return NULL;
    }
    tl__task *self = enter(s, what, site, err);
    if (self) s->reader = self;
    return self;
}

static void leave(tl_stream *s, tl__task *self)
{
    if (s->reader == self) s->reader = NULL;
    s->inside--;
    check_idle(s);
}

/* ---- reading ---------------------------------------------------------- */

static size_t buffered(const tl_stream *s) { return s->rend - s->rstart; }

static void consume(tl_stream *s, size_t n)
{
    s->rstart += n;
    if (s->rstart == s->rend) {
        s->rstart = s->rend = 0;
        if (s->rcap > RBUF_KEEP) {
            free(s->rbuf);
            s->rbuf = NULL;
            s->rcap = 0;
        }
    }
}

/* Grow the buffer *buf of capacity *cap (doubling, from RBUF_INIT) until
 * `more` bytes fit after the first `used`: -ENOMEM if the size would
 * overflow or realloc fails, the buffer then kept as it was. One
 * mechanism for the read and the write buffers. */
static int grow_buf(char **buf, size_t *cap, size_t used, size_t more)
{
    size_t c = *cap ? *cap : RBUF_INIT;
    while (c - used < more) {
        if (c > SIZE_MAX / 2) return -ENOMEM;
        c *= 2;
    }
    char *p = realloc(*buf, c);
    if (!p) return -ENOMEM;
    *buf = p;
    *cap = c;
    return 0;
}

/* Room to read: the buffer can hold `want` bytes from rstart, and at
 * least MIN_READ more than it holds now. */
static int make_room(tl_stream *s, size_t want)
{
    size_t have = buffered(s);
    if (want < have + MIN_READ) want = have + MIN_READ;
    if (s->rcap - s->rstart >= want) return 0;
    if (s->rstart) {
        memmove(s->rbuf, s->rbuf + s->rstart, have);
        s->rstart = 0;
        s->rend = have;
        if (s->rcap >= want) return 0;
    }
    return grow_buf(&s->rbuf, &s->rcap, 0, want);
}

/* One transport read into the buffer. Returns > 0 (bytes added), 0 (end
 * of stream, remembered), or a code: the sticky ones are remembered in
 * rerr; -ECANCELED, TL_ECLOSED, -EBUSY, -ENOMEM are not. */
static ssize_t fill(tl_stream *s, size_t want)
{
    if (s->eof) return 0;
    if (s->rerr) return s->rerr;
    if (s->tp_closed) return TL_ECLOSED; /* a pipe closed by write_eof */
    if (s->mrecv) return ring_fill(s, want);
    int rc = make_room(s, want);
    if (rc < 0) return rc;
    size_t room = s->rcap - s->rend;
    if (room > IO_CAP) room = IO_CAP;
    ssize_t n = s->tp->read(s, s->rbuf + s->rend, room);
    if (n > 0) s->rend += (size_t)n;
    if (s->closing) return TL_ECLOSED; /* what came is dropped with s */
    if (n > 0) return n;
    if (n == 0) {
        s->eof = 1;
        return 0;
    }
    if (n != -ECANCELED && n != TL_ECLOSED && n != -EBUSY && n != -ENOMEM &&
        n != TL_ENOTASK && n != TL_EFORK)
        s->rerr = (int)n;
    return n;
}

ssize_t tl_stream_read(tl_stream *s, void *buf, size_t n)
{
    int err;
    if (s && !buf && n) return -EINVAL;
    tl__task *self = enter_reader(s, "tl_stream_read", SITE, &err);
    if (!self) return err;
    ssize_t rc = 0;
    if (n == 0) goto out;
    if (!buffered(s)) {
        rc = fill(s, 0);
        if (rc <= 0) goto out;
    }
    rc = (ssize_t)(buffered(s) < n ? buffered(s) : n);
    memcpy(buf, s->rbuf + s->rstart, (size_t)rc);
    consume(s, (size_t)rc);
out:
    leave(s, self);
    return rc;
}

ssize_t tl_stream_readexactly(tl_stream *s, void *buf, size_t n,
                              size_t *partial)
{
    int err;
    if (partial) *partial = 0;
    if (s && !buf && n) return -EINVAL;
    if (n > (size_t)SSIZE_MAX) return -EINVAL;
    tl__task *self = enter_reader(s, "tl_stream_readexactly", SITE, &err);
    if (!self) return err;
    ssize_t rc = 0;
    while (buffered(s) < n) {
        rc = fill(s, n);
        if (rc == 0) rc = TL_EOF;
        if (rc < 0) {
            if (partial) *partial = s->closing ? 0 : buffered(s);
            goto out;
        }
    }
    memcpy(buf, s->rbuf + s->rstart, n);
    consume(s, n);
    rc = (ssize_t)n;
    if (partial) *partial = n;
out:
    leave(s, self);
    return rc;
}

static ssize_t read_until(tl_stream *s, const void *sep, size_t seplen,
                          char *buf, size_t cap, bool line,
                          const char *what, void *site)
{
    int err;
    if (s && (!sep || !seplen || !buf || cap < 2)) return -EINVAL;
    tl__task *self = enter_reader(s, what, site, &err);
    if (!self) return err;
    size_t max = cap - 1 < s->limit ? cap - 1 : s->limit;
    size_t scanned = 0; /* no separator starts before this offset */
    ssize_t rc;
    for (;;) {
        size_t have = buffered(s);
        size_t win = have < max ? have : max;
        if (win >= seplen && win - seplen + 1 > scanned) {
            const char *base = s->rbuf + s->rstart;
            const char *hit = memmem(base + scanned, win - scanned, sep,
                                     seplen);
            if (hit) {
                rc = (ssize_t)(hit - base) + (ssize_t)seplen;
                memcpy(buf, base, (size_t)rc);
                buf[rc] = '\0';
                consume(s, (size_t)rc);
                break;
            }
            scanned = win - seplen + 1;
        }
        if (have >= max) {
            rc = tl_fail(-EMSGSIZE,
                         "%s: no separator within %zu bytes (the %s); the "
                         "data stays buffered", what, max,
                         max == s->limit ? "stream's limit"
                                         : "buffer's size");
            break;
        }
        rc = fill(s, max + 1);
        if (rc > 0) continue;
        if (rc < 0) break;
        /* end of stream before a separator */
        have = buffered(s);
        if (have == 0) break; /* rc == 0 */
        if (!line) {
            rc = TL_EOF;
            break;
        }
        memcpy(buf, s->rbuf + s->rstart, have);
        buf[have] = '\0';
        consume(s, have);
        rc = (ssize_t)have;
        break;
    }
    leave(s, self);
    return rc;
}

ssize_t tl_stream_readuntil(tl_stream *s, const void *sep, size_t seplen,
                            void *buf, size_t cap)
{
    return read_until(s, sep, seplen, buf, cap, false, "tl_stream_readuntil",
                      SITE);
}

ssize_t tl_stream_readline(tl_stream *s, char *buf, size_t cap)
{
    return read_until(s, "\n", 1, buf, cap, true, "tl_stream_readline",
                      SITE);
}

/* ---- writing ---------------------------------------------------------- */

/* Non-suspending calls: the stream's own loop, on its thread. */
static int loop_check(const tl_stream *s, const char *what)
{
    if (!s) return -EINVAL;
    if (tl__self != s->loop) {
        tl__diag("%s: the stream belongs to another loop or thread "
                 "(-EXDEV)", what);
        return -EXDEV;
    }
    return 0;
}

int tl_stream_write(tl_stream *s, const void *buf, size_t len)
{
    int rc = loop_check(s, "tl_stream_write");
    if (rc < 0) return rc;
    if (!buf && len) return -EINVAL;
    if (s->closing) return TL_ECLOSED;
    if (s->eof_asked) return -ESHUTDOWN;
    if (s->werr) return s->werr;
    const char *p = buf;
    if (!queued(s) && !s->ring) {
        /* The usual case: the kernel takes it all, nothing is copied. */
        while (len > 0) {
            ssize_t n = s->tp->write(s, p, len);
            if (n == -EAGAIN) break;
            if (n < 0) {
                set_werr(s, (int)n);
                return (int)n;
            }
            p += n;
            len -= (size_t)n;
        }
        if (len == 0) return 0;
    }
    if (s->wcap - s->wend < len) {
        size_t q = s->wend - s->wstart; /* wbuf only: fbuf is frozen */
        if (s->wstart) {
            memmove(s->wbuf, s->wbuf + s->wstart, q);
            s->wstart = 0;
            s->wend = q;
        }
        if (s->wcap - s->wend < len) {
            rc = grow_buf(&s->wbuf, &s->wcap, q, len);
            if (rc < 0) return rc;
        }
    }
    memcpy(s->wbuf + s->wend, p, len);
    s->wend += len;
    if (queued(s) > s->high && !s->paused) {
        s->paused = 1;
        (void)tl_event_clear(&s->drained);
    }
    if (s->ring) {
        ring_kick(s);
        return s->werr && s->werr != TL_ECLOSED ? s->werr : 0;
    }
    if (!s->watch) {
        rc = tl_fd_watch_new(&s->watch, s->fd, TL_WRITABLE, on_writable, s);
        if (rc < 0) {
            s->watch = NULL;
            set_werr(s, rc);
            return rc;
        }
    }
    return 0;
}

int tl_stream_drain(tl_stream *s)
{
    int err;
    tl__task *self = enter(s, "tl_stream_drain", SITE, &err);
    if (!self) return err;
    int rc = 0;
    for (;;) {
        if (s->werr) {
            rc = s->werr;
            break;
        }
        if (s->closing) {
            rc = TL_ECLOSED;
            break;
        }
        if (!s->paused) break;
        rc = tl_event_wait(&s->drained);
        if (rc < 0) break;
    }
    leave(s, self);
    return rc;
}

int tl_stream_write_eof(tl_stream *s)
{
    int rc = loop_check(s, "tl_stream_write_eof");
    if (rc < 0) return rc;
    if (s->closing) return TL_ECLOSED;
    if (s->eof_asked) return 0;
    if (s->werr) return s->werr;
    if (!s->is_sock && !s->owns) return -EOPNOTSUPP;
    s->eof_asked = 1;
    if (!queued(s)) do_eof(s);
    return 0;
}

/* ---- closing ---------------------------------------------------------- */

int tl_stream_close(tl_stream *s)
{
    if (!s) return 0;
    int rc = loop_check(s, "tl_stream_close");
    if (rc < 0) return rc;
    if (s->closing) return 0;
    s->closing = 1;
    (void)tl_event_set(&s->drained); /* drainers see TL_ECLOSED */
    if (s->tp_closed) {
        check_idle(s);
        return 0;
    }
    /* A reader parked in the transport wakes (TL_ECLOSED) when its fd is
     * forgotten: tl_close does that for an owned fd. One parked for ring
     * receives is woken here, and the receive ends. */
    ring_wake(s, TL_ECLOSED);
    ring_stop(s);
    bool wake_reader = !s->mrecv && s->reader &&
                       s->loop->current != s->reader && s->fd >= 0;
    if (!queued(s) || s->werr) {
        if (wake_reader && !s->owns) (void)tl_fd_forget(s->fd);
        finish_transport(s);
        return 0;
    }
    /* Output still queued: the fd stays open until it went out. Forgetting
     * the fd also silences the writable watcher: flush makes it anew. */
    if (wake_reader) {
        drop_watch(s);
        (void)tl_fd_forget(s->fd);
        flush(s);
    }
    return 0;
}

int tl_stream_wait_closed(tl_stream *s)
{
    if (!s) return 0;
    int err;
    tl__task *self = tl__task_self_in(s->loop, "stream",
                                      "tl_stream_wait_closed", &err);
    (void)tl_stream_close(s);
    int rc = 0;
    if (self) {
        while (!tl_event_is_set(&s->idle)) {
            rc = tl_event_wait(&s->idle);
            if (rc < 0) break;
        }
    } else {
        rc = err;
    }
    if (rc < 0) {
        /* Cancelled (or no task to wait in): give up on the queue. */
        if (queued(s)) s->lost = 1;
        s->wstart = s->wend = 0;
        if (!s->sop) s->fstart = s->fend = 0; /* else its completion does */
        finish_transport(s);
        if (s->inside > 0) {
            s->dead = 1; /* the last task out frees it */
            return rc;
        }
        destroy(s);
        return rc;
    }
    rc = s->lost ? s->werr : 0;
    destroy(s);
    return rc;
}

/* ---- accessors -------------------------------------------------------- */

size_t tl_stream_buffered(const tl_stream *s) { return s ? buffered(s) : 0; }

size_t tl_stream_write_buffered(const tl_stream *s)
{
    return s ? queued(s) : 0;
}

int tl_stream_at_eof(const tl_stream *s)
{
    return s && s->eof && !buffered(s);
}

int tl_stream_fd(const tl_stream *s) { return s && !s->tp_closed ? s->fd : -1; }

/* ---- lines ------------------------------------------------------------ */

typedef struct lines_arg {
    tl_stream *s;
    char *buf;
    size_t cap;
} lines_arg;

static int lines_produce(tl_gen *g, void *arg)
{
    lines_arg *la = arg;
    int rc;
    for (;;) {
        ssize_t n = tl_stream_readline(la->s, la->buf, la->cap);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        if (la->buf[n - 1] == '\n') la->buf[--n] = '\0';
        if (n > 0 && la->buf[n - 1] == '\r') la->buf[--n] = '\0';
        rc = tl_gen_yield(g, la->buf);
        if (rc < 0) break;
    }
    free(la->buf);
    free(la);
    return rc;
}

int tl_stream_lines(tl_gen **out, tl_stream *s)
{
    if (!out || !s) return -EINVAL;
    lines_arg *la = calloc(1, sizeof *la);
    if (!la) return -ENOMEM;
    la->s = s;
    la->cap = s->limit + 1;
    la->buf = malloc(la->cap);
    if (!la->buf) {
        free(la);
        return -ENOMEM;
    }
    tl_gen_opts o = {.name = "stream lines"};
    int rc = tl_gen_new(out, lines_produce, la, &o);
    if (rc < 0) {
        free(la->buf);
        free(la);
    }
    return rc;
}
