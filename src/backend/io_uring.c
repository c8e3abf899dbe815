/* The io_uring backend (liburing). For now it waits for timers and
 * wake-ups, like epoll.c; the I/O layer will submit its requests here and
 * get their completions back through uring_dispatch.
 *
 * Rules (DESIGN.md, "What things cost"):
 * - the ring is made with SINGLE_ISSUER | DEFER_TASKRUN (only the loop's
 *   thread submits, and completions are posted when the loop asks for them,
 *   not by interrupting it), with fewer flags on older kernels that say
 *   -EINVAL; its fd is registered (io_uring_register_ring_fd), so
 *   io_uring_enter skips the fd lookup;
 * - wake-ups: other threads and the SIGINT handler write l->wake_fd (an
 *   eventfd) with write(2), exactly as with epoll. The eventfd is never
 *   written THROUGH the ring (io_uring punts that to a worker thread: tens
 *   of microseconds). The ring watches it with one multishot POLL_ADD, armed
 *   again when a completion comes without IORING_CQE_F_MORE, and the loop
 *   drains it with read(2);
 * - waiting is io_uring_submit_and_wait_timeout: whatever was prepared is
 *   submitted by the same system call that waits.
 *
 * Compiled only when CMake found liburing (TL_HAVE_LIBURING). */
#ifdef TL_HAVE_LIBURING

#include "internal.h"

#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* user_data of a request:
 *   UR_UD_IGNORE   a request whose own completion tells nothing (the
 *                  cancel requests of the I/O layer: invariant 1 waits for
 *                  the cancelled operation's own completion, not these);
 *   UR_UD_WAKE     the multishot poll on l->wake_fd;
 *   LIBURING_UDATA_TIMEOUT  liburing's own timeout on kernels without
 *                  IORING_FEAT_EXT_ARG (skipped);
 *   anything else  the address of a tl__uring_op. */
#define UR_UD_IGNORE 0u
#define UR_UD_WAKE 1u

/* One request of the (future) I/O layer: it embeds this struct in its own
 * operation record, sets done, and passes the struct's address as the
 * request's user_data; uring_dispatch calls done with the completion.
 * The op must stay alive until its completion arrives (also after a
 * cancel: invariant 1), and l->inflight counts it until then.
 * done() must never hand the kernel's -ECANCELED to a task: a cancelled
 * request completes with -ECANCELED (or -EINTR, or even succeeds when the
 * cancel came too late); the waiting task is woken with the status its own
 * cancellation dictates (see the cancel hook in src/time.c), and a result
 * that raced the cancel is kept, not lost. */
typedef struct tl__uring_op tl__uring_op;
struct tl__uring_op {
    void (*done)(tl__loop *l, tl__uring_op *op, int res, unsigned cqe_flags);
};

typedef struct uring_state {
    struct io_uring ring;
    unsigned setup_flags;  /* what the kernel accepted */
    int wake_armed;        /* the wake poll is in the kernel (or queued) */
    int wake_multishot;    /* 0 after the kernel refused multishot poll */
} uring_state;

/* Setup flags, best first; a kernel that does not know one says -EINVAL.
 * SINGLE_ISSUER needs 6.0 and DEFER_TASKRUN (which needs it) 6.1;
 * COOP_TASKRUN (5.19) at least spares the loop's thread the IPIs. */
static const unsigned setup_tries[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_COOP_TASKRUN,
    0,
};

/* Entries: room for a burst of I/O requests; the CQ gets twice that. */
#define UR_ENTRIES 256

/* An SQE, submitting what is queued when the SQ is full. NULL only if the
 * ring is broken. */
static struct io_uring_sqe *ur_sqe(uring_state *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
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
    return 0;
}

static int ur_open(tl__loop *l)
{
    uring_state *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof setup_tries / sizeof setup_tries[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = setup_tries[i];
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
    return 0;
}

static void ur_close(tl__loop *l)
{
    uring_state *s = l->be;
    if (!s) return;
    /* Exiting the ring cancels the wake poll; the I/O layer makes sure no
     * operation of its own is still owed (l->inflight) before this. */
    io_uring_queue_exit(&s->ring);
    free(s);
    l->be = NULL;
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
    /* An I/O request (none yet): its owner decides what the task sees,
     * and never passes the kernel's -ECANCELED on (see tl__uring_op). */
    tl__uring_op *op = (tl__uring_op *)(uintptr_t)ud;
    op->done(l, op, cqe->res, cqe->flags);
    return 1;
}

static int ur_poll(tl__loop *l, int64_t timeout_ns)
{
    uring_state *s = l->be;
    if (!s->wake_armed) arm_wake(l, s);
    struct __kernel_timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts; /* 0: submit and reap, do not wait */
    }
    struct io_uring_cqe *first = NULL;
    /* >= 0 (possibly the number submitted), -ETIME (the timeout passed),
     * -EINTR (a signal: the SIGINT handler's flag is read by the loop), or
     * a real error such as -EBUSY (CQ overflow: reap below, then retry). */
    int rc = io_uring_submit_and_wait_timeout(&s->ring, &first, 1, tsp, NULL);
    int handled = 0;
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&s->ring, head, cqe) {
        seen++;
        handled += uring_dispatch(l, s, cqe);
    }
    io_uring_cq_advance(&s->ring, seen);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && seen == 0) return rc;
    return handled;
}

const tl__backend tl__backend_io_uring = {
    .name = "io_uring",
    .open = ur_open,
    .close = ur_close,
    .poll = ur_poll,
};

#endif /* TL_HAVE_LIBURING */
