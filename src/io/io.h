/* The I/O layer's private interface (src/io/): what streams, servers,
 * DNS, files, signals and subprocesses build on. Not installed.
 *
 * Records (see internal.h for the structs):
 *   tl__fd_get(l, fd, &err)  the record of fd, made live on first use
 *   tl__fd_find(l, fd)       the live record, or NULL
 *   tl__fd_fresh(l, fd, is_sock, bytes)
 *                            a new fd the kernel just gave us (accept,
 *                            socket): any live record with that number is
 *                            stale (closed behind tulip's back): forget it;
 *                            a socket gets a record, with `bytes` as
 *                            tl__fd_bytes would say it (0: ask later)
 *   tl__fd_forget(l, r, code) deregister, wake its users with `code`,
 *                            cancel its kernel requests, bump the gen
 *
 * Waiting for readiness (both backends; the calling task must hold no
 * slot of r in the directions asked):
 *   tl__fd_wait_ready(self, r, events, level, what)  park until an edge (epoll)
 *       or a poll completion (io_uring); level: check with poll(2) first
 *       (epoll), for callers that did not just see EAGAIN. Returns the
 *       TL__EV_* bits seen, TL_ECLOSED, -ECANCELED, -EBUSY (another task
 *       uses that direction), -errno.
 *
 * Kernel requests (io_uring only; l->backend->completion):
 *   op = tl__op_new(l, kind, r)   fill the argument fields, set
 *       op->abandon if it touches runtime memory only, op->done for a
 *       custom completion (multishot: the op lives until a completion
 *       without IORING_CQE_F_MORE; done frees it with tl__op_free);
 *   rc = tl__op_run(self, op, dirs, "tl_read")  submit, park, and return
 *       the result as the task must see it (invariant 4: the kernel's
 *       -ECANCELED becomes the task's own -ECANCELED only if the task was
 *       cancelled, TL_ECLOSED if the fd was closed through tulip; a result
 *       that raced the cancel is kept); frees the op.
 *
 * Counting rules (the virtual clock and teardown depend on them):
 *   l->io_waiters  tasks parked on an fd or an op (the loop polls every
 *                  iteration while > 0);
 *   l->inflight    ops the kernel owes us a completion for *regardless of
 *                  any peer*: cancelled ops and orphans (and, for the next
 *                  helpers, file operations: set op->counted and
 *                  l->inflight++ before tl__op_run). A socket read waiting
 *                  for a peer is not counted, so the virtual clock can
 *                  still jump to a deadline while it waits;
 *   tl__io_owed    every op not yet completed (teardown waits for 0). */
#ifndef TL_IO_H
#define TL_IO_H

#include "internal.h"

#define TL__FD_CHUNK 256
#define TL__OP_CHUNK 256

typedef struct tl__io {
    tl__fd **fdchunks;      /* record of fd n: fdchunks[n / 256][n % 256] */
    uint32_t nfdchunks;
    tl__op **opchunks;      /* op slot s: opchunks[s / 256][s % 256] */
    uint32_t nopchunks;
    tl__link free_ops;      /* FREE ops, linked by pend_link */
    size_t owed;            /* ops not FREE */
    tl__link watches;       /* live tl_fd_watch objects (teardown) */
    int nonblock_warned;
} tl__io;

tl__io *tl__io_get(tl__loop *l);

tl__fd *tl__fd_get(tl__loop *l, int fd, int *err);
tl__fd *tl__fd_find(tl__loop *l, int fd);
void tl__fd_fresh(tl__loop *l, int fd, int is_sock, int bytes);
void tl__fd_forget(tl__loop *l, tl__fd *r, int code);
int tl__fd_wait_ready(tl__task *self, tl__fd *r, unsigned events, int level,
                      const char *what);
/* 1 if r is a byte stream (a SOCK_STREAM socket, a pipe), else 2; asked
 * once per fd life (src/io/ops.c). */
int tl__fd_bytes(tl__fd *r);
/* A parked fd waiter or op owner leaves r's slots (dirs bits). */
void tl__fd_release(tl__fd *r, tl__task *t);

tl__op *tl__op_new(tl__loop *l, int kind, tl__fd *r);
void tl__op_free(tl__loop *l, tl__op *op);
int tl__op_run(tl__task *self, tl__op *op, unsigned dirs, const char *what);

/* Files (src/io/file.c): a read or write (TL__OP_READ .. TL__OP_WRITEV)
 * of a regular file on the thread pool, for the readiness backend; the
 * caller's buffers are used in place (the caller waits for a running job:
 * tl_to_thread's rule). Returns the count, -errno, -ECANCELED (never
 * ran), -ENOMEM, -EAGAIN. SUSPENDS. */
ssize_t tl__file_pool_io(int kind, int fd, void *buf, size_t len,
                         int64_t off, const struct iovec *iov, int iovcnt);

/* poll(2) bits <-> TL__EV_* */
unsigned tl__ev_from_poll(unsigned revents);
unsigned tl__ev_to_poll(unsigned ev);

#endif
