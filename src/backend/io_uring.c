/* The io_uring backend (liburing): a completion backend. The I/O layer
 * hands it operations (tl__op: read, send, accept, poll, ...); each becomes
 * one SQE, and all SQEs prepared during an iteration reach the kernel with
 * the one io_uring_enter that also waits (io_uring_submit_and_wait_timeout):
 * batching is io_uring's whole advantage here (one entry per submit costs
 * 360-480 ns, 32 per submit 75 each).
 *
 * Rules (DESIGN.md, "What things cost" and "The I/O layer"):
 * - the ring is made with SINGLE_ISSUER | DEFER_TASKRUN (only the loop's
 *   thread submits, and completions are posted when the loop asks for them,
 *   not by interrupting it), with fewer flags on older kernels that say
 *   -EINVAL; its CQ is 16 times the SQ (IORING_SETUP_CQSIZE: multishot
 *   requests post many completions per submission) and its fd is
 *   registered (io_uring_register_ring_fd), so io_uring_enter skips the
 *   fd lookup;
 * - user_data: 0 a request whose completion tells nothing (cancel
 *   requests: invariant 1 waits for the cancelled op's own completion),
 *   1 the wake poll, LIBURING_UDATA_TIMEOUT liburing's own, else an op's
 *   slot + generation (tl__op_ud), checked by tl__op_complete, so a
 *   completion for an op slot that was reused is dropped;
 * - back-pressure: an op or cancel that finds the SQ full (after one
 *   flush) waits on the pending list, in order, and is prepared at the
 *   next poll; -EBUSY / -EAGAIN from io_uring_enter (CQ overflow, no
 *   memory for requests) mean "reap, then try again", never an error for
 *   a task; a CQ that overflowed (IORING_FEAT_NODROP keeps the completions
 *   in the kernel) is flushed with io_uring_get_events and reaped again;
 * - wake-ups: other threads and the SIGINT handler write l->wake_fd (an
 *   eventfd) with write(2), exactly as with epoll. The eventfd is never
 *   written THROUGH the ring (io_uring punts that to a worker thread: tens
 *   of microseconds). The ring watches it with one multishot POLL_ADD,
 *   armed again when a completion comes without IORING_CQE_F_MORE, and the
 *   loop drains it with read(2);
 * - any other error of io_uring_enter (EPERM from a seccomp profile added
 *   after the ring was made, EBADF, EFAULT) aborts with the errno named:
 *   operations are in the kernel, so there is no falling back to epoll
 *   midway, and spinning on the error would hide it.
 *
 * Compiled only when CMake found liburing (TL_HAVE_LIBURING). */
#ifdef TL_HAVE_LIBURING

#include "internal.h"

#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

_Static_assert(TL__CQE_F_BUFFER == IORING_CQE_F_BUFFER, "CQE flag");
_Static_assert(TL__CQE_F_MORE == IORING_CQE_F_MORE, "CQE flag");
_Static_assert(TL__CQE_BUFFER_SHIFT == IORING_CQE_BUFFER_SHIFT, "CQE flag");

#define UR_UD_IGNORE 0u
#define UR_UD_WAKE 1u

typedef struct uring_state {
    struct io_uring ring;
    unsigned setup_flags;  /* what the kernel accepted */
    int wake_armed;        /* the wake poll is in the kernel (or queued) */
    int wake_multishot;    /* 0 after the kernel refused multishot poll */
    tl__link pending;      /* ops (or their cancels) waiting for an SQE */
    unsigned busy_rounds;  /* back-pressure polls in a row with no
                              completion (a stuck ring is reported) */
    uint8_t has_openat, has_statx, has_fsync; /* the probe's answer */
    uint8_t has_accept_multi; /* multishot accept (5.19, as OP_SOCKET) */
    uint8_t has_recv_multi;   /* multishot recv and buffer rings (6.0, as
                                 OP_SEND_ZC) */
    /* The provided-buffer ring for multishot receives (group UR_BGID),
     * made on first use: nbufs buffers of UR_BUF_SIZE bytes. */
    struct io_uring_buf_ring *br;
    size_t br_len;
    char *bufs;
    unsigned nbufs;
    int bufs_err;             /* set when making it failed: not retried */
} uring_state;

#define UR_BGID 1
#define UR_BUF_SIZE 4096u
#define UR_NBUFS 256u

/* Setup flags, best first; a kernel that does not know one says -EINVAL.
 * SINGLE_ISSUER needs 6.0 and DEFER_TASKRUN (which needs it) 6.1;
 * COOP_TASKRUN (5.19) at least spares the loop's thread the IPIs. */
static const unsigned setup_tries[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_COOP_TASKRUN,
    0,
};

/* Entries: room for a burst of I/O requests; the CQ gets 16 times that
 * (multishot accept/recv post many completions per request). */
#define UR_ENTRIES 256
#define UR_CQ_ENTRIES (16 * UR_ENTRIES)

/* An SQE, submitting what is queued when the SQ is full. NULL when the
 * kernel cannot take more right now (back-pressure). */
static struct io_uring_sqe *ur_sqe(uring_state *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe && io_uring_submit(&s->ring) >= 0)
        sqe = io_uring_get_sqe(&s->ring);
    return sqe;
}

/* Queue the wake poll; it reaches the kernel with the next submit. */
static int arm_wake(tl__loop *l, uring_state *s)
{
    struct io_uring_sqe *sqe = ur_sqe(s);
    if (!sqe) return -EBUSY;
    if (s->wake_multishot)
        io_uring_prep_poll_multishot(sqe, l->wake_fd, POLLIN);
    else
        io_uring_prep_poll_add(sqe, l->wake_fd, POLLIN);
    io_uring_sqe_set_data64(sqe, UR_UD_WAKE);
    s->wake_armed = 1;
    l->io_queued = 1;
    return 0;
}

static int ur_open(tl__loop *l)
{
    uring_state *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    tl__list_init(&s->pending);
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof setup_tries / sizeof setup_tries[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = setup_tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = UR_CQ_ENTRIES;
        rc = io_uring_queue_init_params(UR_ENTRIES, &s->ring, &p);
        if (rc != -EINVAL) {
            s->setup_flags = setup_tries[i];
            break;
        }
    }
    if (rc < 0) {
        free(s); /* -ENOSYS, -EPERM (seccomp, io_uring_disabled), ... */
        return rc;
    }
    /* Optional: without it io_uring_enter looks the fd up each time. */
    (void)io_uring_register_ring_fd(&s->ring);
    /* Which file operations the kernel has (5.6 added OPENAT and STATX);
     * without a probe (before 5.6) files use the thread pool. */
    struct io_uring_probe *pr = io_uring_get_probe_ring(&s->ring);
    if (pr) {
        s->has_openat = io_uring_opcode_supported(pr, IORING_OP_OPENAT) > 0;
        s->has_statx = io_uring_opcode_supported(pr, IORING_OP_STATX) > 0;
        s->has_fsync = io_uring_opcode_supported(pr, IORING_OP_FSYNC) > 0;
        /* Flags are not in the probe: the opcodes of the same release
         * stand for them. */
        s->has_accept_multi =
            io_uring_opcode_supported(pr, IORING_OP_SOCKET) > 0;
        s->has_recv_multi =
            io_uring_opcode_supported(pr, IORING_OP_SEND_ZC) > 0;
        io_uring_free_probe(pr);
    }
    s->wake_multishot = 1;
    l->be = s;
    /* Submitted now, so that a ring that cannot poll is found out here,
     * where the loop can still fall back to epoll, not at the first wait. */
    rc = arm_wake(l, s);
    if (rc == 0) rc = io_uring_submit(&s->ring);
    if (rc < 0) {
        l->be = NULL;
        io_uring_queue_exit(&s->ring);
        free(s);
        return rc;
    }
    l->io_queued = 0;
    return 0;
}

static void ur_close(tl__loop *l)
{
    uring_state *s = l->be;
    if (!s) return;
    /* Exiting the ring cancels the wake poll; tl__io_loop_close made sure
     * no operation of the I/O layer is still owed before this (so the
     * kernel holds none of the provided buffers either). */
    io_uring_queue_exit(&s->ring);
    if (s->br) munmap(s->br, s->br_len);
    free(s->bufs);
    free(s);
    l->be = NULL;
}

static unsigned rw_len(size_t len)
{
    /* The kernel moves at most 0x7ffff000 bytes per read/write anyway. */
    return len > 0x7ffff000u ? 0x7ffff000u : (unsigned)len;
}

static void prep_op(struct io_uring_sqe *sqe, tl__op *op)
{
    switch (op->kind) {
    case TL__OP_POLL:
        io_uring_prep_poll_add(sqe, op->fd, op->poll_mask);
        break;
    case TL__OP_READ:
        io_uring_prep_read(sqe, op->fd, op->buf, rw_len(op->len),
                           (uint64_t)op->off);
        break;
    case TL__OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, rw_len(op->len),
                            (uint64_t)op->off);
        break;
    case TL__OP_READV:
        io_uring_prep_readv(sqe, op->fd, op->msg.msg_iov,
                            (unsigned)op->msg.msg_iovlen, (uint64_t)op->off);
        break;
    case TL__OP_WRITEV:
        io_uring_prep_writev(sqe, op->fd, op->msg.msg_iov,
                             (unsigned)op->msg.msg_iovlen, (uint64_t)op->off);
        break;
    case TL__OP_RECV:
        io_uring_prep_recv(sqe, op->fd, op->buf, op->len, op->flags);
        break;
    case TL__OP_SEND:
        io_uring_prep_send(sqe, op->fd, op->buf, op->len,
                           op->flags | MSG_NOSIGNAL);
        break;
    case TL__OP_RECVMSG:
        io_uring_prep_recvmsg(sqe, op->fd, op->msgp, (unsigned)op->flags);
        break;
    case TL__OP_SENDMSG:
        io_uring_prep_sendmsg(sqe, op->fd, op->msgp,
                              (unsigned)op->flags | MSG_NOSIGNAL);
        break;
    case TL__OP_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, op->addr, op->addrlen, op->flags);
        break;
    case TL__OP_CONNECT:
        io_uring_prep_connect(sqe, op->fd, op->addr, op->alen);
        break;
    case TL__OP_SHUTDOWN:
        io_uring_prep_shutdown(sqe, op->fd, op->flags);
        break;
    case TL__OP_OPENAT:
        io_uring_prep_openat(sqe, op->fd, op->addr, op->flags,
                             (mode_t)op->len);
        break;
    case TL__OP_STATX:
        io_uring_prep_statx(sqe, op->fd, op->addr, op->flags, op->poll_mask,
                            op->buf);
        break;
    case TL__OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd,
                            op->flags ? IORING_FSYNC_DATASYNC : 0);
        break;
    case TL__OP_ACCEPT_MULTI:
        io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, op->flags);
        break;
    case TL__OP_RECV_MULTI:
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = UR_BGID;
        break;
    default:
        tl__fatal("io_uring: unknown operation kind %d", op->kind);
    }
    io_uring_sqe_set_data64(sqe, tl__op_ud(op));
}

static void prep_cancel(struct io_uring_sqe *sqe, tl__op *op)
{
    io_uring_prep_cancel64(sqe, tl__op_ud(op), 0);
    io_uring_sqe_set_data64(sqe, UR_UD_IGNORE);
}

static void ur_submit(tl__loop *l, tl__op *op)
{
    uring_state *s = l->be;
    l->io_queued = 1;
    struct io_uring_sqe *sqe = tl__list_empty(&s->pending) ? ur_sqe(s) : NULL;
    if (!sqe) { /* keep the order: behind what already waits */
        op->state = TL__OPS_PENDING;
        tl__list_push(&s->pending, &op->pend_link);
        return;
    }
    prep_op(sqe, op);
    op->state = TL__OPS_SUBMITTED;
}

static int ur_cancel(tl__loop *l, tl__op *op)
{
    uring_state *s = l->be;
    if (op->state == TL__OPS_PENDING) { /* the kernel never saw it */
        tl__list_remove(&op->pend_link);
        return 1;
    }
    op->state = TL__OPS_CANCELLING;
    l->io_queued = 1;
    struct io_uring_sqe *sqe = tl__list_empty(&s->pending) ? ur_sqe(s) : NULL;
    if (!sqe) {
        op->cancel_pending = 1;
        tl__list_push(&s->pending, &op->pend_link);
        return 0;
    }
    prep_cancel(sqe, op);
    return 0;
}

static void ur_flush(tl__loop *l)
{
    uring_state *s = l->be;
    if (io_uring_sq_ready(&s->ring)) (void)io_uring_submit(&s->ring);
}

/* Move what waits on the pending list into the SQ while there is room. */
static void flush_pending(uring_state *s)
{
    tl__link *n;
    while (!tl__list_empty(&s->pending)) {
        struct io_uring_sqe *sqe = ur_sqe(s);
        if (!sqe) return;
        n = tl__list_pop(&s->pending);
        tl__op *op = tl__container_of(n, tl__op, pend_link);
        if (op->cancel_pending) {
            op->cancel_pending = 0;
            prep_cancel(sqe, op);
        } else {
            prep_op(sqe, op);
            op->state = TL__OPS_SUBMITTED;
        }
    }
}

/* One completion. Returns 1 if it was an event for the loop. */
static int uring_dispatch(tl__loop *l, uring_state *s,
                          const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    if (ud == UR_UD_WAKE) {
        if (!(cqe->flags & IORING_CQE_F_MORE)) s->wake_armed = 0;
        if (cqe->res == -EINVAL && s->wake_multishot) {
            /* Before 5.13 a poll cannot be multishot: one-shot from now. */
            s->wake_multishot = 0;
            return 0;
        }
        if (cqe->res < 0) return 0; /* e.g. -ECANCELED: armed again */
        tl__loop_wake_drain(l);
        return 1;
    }
    if (ud == UR_UD_IGNORE || ud == LIBURING_UDATA_TIMEOUT) return 0;
    if ((ud & 3u) == 2u) {
        tl__op_complete(l, ud, cqe->res, cqe->flags);
        return 1;
    }
    return 0;
}

static unsigned reap(tl__loop *l, uring_state *s, int *handled)
{
    unsigned total = 0;
    for (int round = 0; round < 8; round++) {
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&s->ring, head, cqe) {
            seen++;
            *handled += uring_dispatch(l, s, cqe);
        }
        io_uring_cq_advance(&s->ring, seen);
        total += seen;
        /* Completions the CQ had no room for wait in the kernel
         * (IORING_FEAT_NODROP): have them posted, reap again. */
        if (!io_uring_cq_has_overflow(&s->ring) && seen == 0) break;
        if (io_uring_cq_has_overflow(&s->ring))
            (void)io_uring_get_events(&s->ring);
        else if (seen == 0)
            break;
    }
    return total;
}

static int ur_poll(tl__loop *l, int64_t timeout_ns)
{
    uring_state *s = l->be;
    flush_pending(s);
    if (!s->wake_armed) (void)arm_wake(l, s);
    struct __kernel_timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts; /* 0: submit and reap, do not wait */
    }
    struct io_uring_cqe *first = NULL;
    /* >= 0 (possibly the number submitted), -ETIME (the timeout passed),
     * -EINTR (a signal: the SIGINT handler's flag is read by the loop),
     * -EBUSY / -EAGAIN (back-pressure: reap, retry next time), or a real
     * error. */
    int rc = io_uring_submit_and_wait_timeout(&s->ring, &first, 1, tsp, NULL);
    l->io_batch++;
    int handled = 0;
    unsigned seen = reap(l, s, &handled);
    l->io_queued = io_uring_sq_ready(&s->ring) > 0 ||
                   !tl__list_empty(&s->pending);
    if (rc >= 0 || rc == -ETIME || rc == -EINTR) {
        s->busy_rounds = 0;
        return handled;
    }
    if (rc == -EBUSY || rc == -EAGAIN) {
        if (seen) {
            s->busy_rounds = 0;
        } else if (++s->busy_rounds >= 10000) {
            tl__fatal("io_uring_enter keeps saying %s with nothing to reap "
                      "(%u times); the ring is stuck", tl_errname(rc),
                      s->busy_rounds);
        } else {
            l->io_queued = 1; /* the next iteration tries again */
        }
        return handled;
    }
    tl__fatal("io_uring_enter failed: %s (%s); operations are in the "
              "kernel, so the loop cannot go on (TULIP_BACKEND=epoll "
              "avoids io_uring)", tl_errname(rc), strerror(-rc));
}

static int ur_has_op(tl__loop *l, int kind)
{
    uring_state *s = l->be;
    switch (kind) {
    case TL__OP_OPENAT: return s->has_openat;
    case TL__OP_STATX: return s->has_statx;
    case TL__OP_FSYNC: return s->has_fsync;
    case TL__OP_ACCEPT_MULTI: return s->has_accept_multi;
    case TL__OP_RECV_MULTI: return s->has_recv_multi;
    default: return 1;
    }
}

/* The buffer count: UR_NBUFS, or TULIP_RING_RECV_BUFS (a power of two up
 * to 32768; tests make it tiny to run the ring dry). */
static unsigned nbufs_wanted(void)
{
    const char *e = getenv("TULIP_RING_RECV_BUFS");
    if (!e || !*e) return UR_NBUFS;
    char *end;
    unsigned long n = strtoul(e, &end, 10);
    if (*end || n == 0 || n > 32768 || (n & (n - 1))) {
        tl__diag("TULIP_RING_RECV_BUFS=%s is not a power of two from 1 to "
                 "32768; using %u", e, UR_NBUFS);
        return UR_NBUFS;
    }
    return (unsigned)n;
}

static int ur_bufs_ready(tl__loop *l)
{
    uring_state *s = l->be;
    if (s->br) return 0;
    if (s->bufs_err) return s->bufs_err;
    if (!s->has_recv_multi) return s->bufs_err = -EOPNOTSUPP;
    unsigned n = nbufs_wanted();
    size_t len = n * sizeof(struct io_uring_buf);
    long pg = sysconf(_SC_PAGESIZE);
    if (pg > 0) len = (len + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
    void *br = mmap(NULL, len, PROT_READ | PROT_WRITE,
                    MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED) return -ENOMEM; /* retried next time */
    char *bufs = malloc((size_t)n * UR_BUF_SIZE);
    if (!bufs) {
        munmap(br, len);
        return -ENOMEM;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)(uintptr_t)br;
    reg.ring_entries = n;
    reg.bgid = UR_BGID;
    int rc = io_uring_register_buf_ring(&s->ring, &reg, 0);
    if (rc < 0) {
        munmap(br, len);
        free(bufs);
        s->bufs_err = rc == -ENOMEM ? 0 : -EOPNOTSUPP;
        return rc == -ENOMEM ? rc : -EOPNOTSUPP;
    }
    s->br = br;
    s->br_len = len;
    s->bufs = bufs;
    s->nbufs = n;
    io_uring_buf_ring_init(s->br);
    int mask = io_uring_buf_ring_mask(n);
    for (unsigned i = 0; i < n; i++)
        io_uring_buf_ring_add(s->br, bufs + (size_t)i * UR_BUF_SIZE,
                              UR_BUF_SIZE, (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(s->br, (int)n);
    return 0;
}

static void *ur_buf_addr(tl__loop *l, unsigned bid)
{
    uring_state *s = l->be;
    if (!s->br || bid >= s->nbufs)
        tl__fatal("io_uring: a completion names buffer %u of %u", bid,
                  s->nbufs);
    return s->bufs + (size_t)bid * UR_BUF_SIZE;
}

static void ur_buf_put(tl__loop *l, unsigned bid)
{
    uring_state *s = l->be;
    io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * UR_BUF_SIZE,
                          UR_BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(s->nbufs), 0);
    io_uring_buf_ring_advance(s->br, 1);
}

const tl__backend tl__backend_io_uring = {
    .name = "io_uring",
    .open = ur_open,
    .close = ur_close,
    .poll = ur_poll,
    .completion = 1,
    .submit = ur_submit,
    .cancel = ur_cancel,
    .flush = ur_flush,
    .has_op = ur_has_op,
    .bufs_ready = ur_bufs_ready,
    .buf_addr = ur_buf_addr,
    .buf_put = ur_buf_put,
};

#endif /* TL_HAVE_LIBURING */
