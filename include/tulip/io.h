/* tulip/io.h — included by <tulip.h>; do not include directly.
 *
 * I/O: waiting for file descriptors, persistent fd watchers for other
 * libraries, and the operations (read, write, send, recv, accept,
 * connect, ...) as suspending calls.
 *
 * Model. Each operation suspends only the calling task until the kernel
 * has done it, and returns what the system call would (a byte count, a
 * new fd, 0) or a negative errno code — never -1 and errno. On the
 * io_uring backend an operation is a kernel request; on epoll the
 * non-blocking system call is tried first and the task parks only on
 * EAGAIN. Either way:
 *
 *   - every operation is a cancellation point (-ECANCELED, and timeouts
 *     through scopes: TL_WITH_TIMEOUT(2.0, &rc) { n = tl_read(...); });
 *   - memory (invariant 1): the call never returns while the kernel may
 *     still touch the caller's buffers. A cancelled io_uring request is
 *     cancelled in the kernel and the call waits for its own completion;
 *   - completed wins: if the kernel finished the operation before the
 *     cancel reached it, the call returns its result (bytes read are never
 *     lost); the cancel shows at the next call;
 *   - one reader and one writer per fd: a second task that reads (or
 *     accepts, or waits for readable) on an fd another task is already
 *     blocked reading gets -EBUSY, as in Trio;
 *   - closing an fd with tl_close wakes every task blocked on it with
 *     TL_ECLOSED ("object was closed");
 *   - a socket peer that hangs up never raises SIGPIPE: send-type calls
 *     use MSG_NOSIGNAL, and tl_write / tl_writev on a socket are sends.
 *
 * File descriptors. tulip keeps one record per fd it has done I/O on (on
 * epoll, one registration for the fd's life). Close such fds with
 * tl_close, or call tl_fd_forget before closing them another way (a
 * library's own close); a number that came back after a plain close(2)
 * is detected when tulip itself makes the new fd (accept, tl_socket), not
 * when some other code does. On the epoll backend tulip sets O_NONBLOCK
 * on an fd the first time it does I/O on it, as libuv does (the flag is
 * shared with every process holding the same open file: prefer fds of
 * your own over a shared terminal). Regular files are not pollable: their
 * reads and writes never wait for a peer but do wait for the disk, so
 * they run as io_uring requests, or on epoll on the thread pool, and take
 * no reader / writer slot (tulip/file.h: opening, stat, fsync, and how a
 * cancelled file read behaves).
 */
#ifndef TULIP_IO_H
#define TULIP_IO_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Waiting for file descriptors
 * ====================================================================== */

/* Readiness bits (tl_fd_wait, tl_fd_watch). */
#define TL_READABLE 0x1u
#define TL_WRITABLE 0x2u

/* Wait until fd is readable and/or writable (`events`: TL_READABLE,
 * TL_WRITABLE or both) — for code that makes its own non-blocking calls
 * (c-ares, libpq, OpenSSL). Level-triggered: it returns at once while the
 * fd is ready, so "wait, read some, wait again" never misses data that is
 * already there. An error or hang-up on the fd counts as every asked
 * event (the next call on the fd reports it). Timeouts come from the
 * enclosing scopes.
 *
 * Returns the ready events (> 0, a subset of `events`), -ECANCELED,
 * TL_ECLOSED (tl_close or tl_fd_forget of fd while waiting), -EBUSY
 * (another task already waits on fd in one of those directions),
 * -EINVAL (events empty or unknown bits), -EBADF (fd not open),
 * -ENOMEM, TL_ENOTASK, TL_EFORK. A regular file is always ready.
 * SUSPENDS (a cancellation point). */
TL_API TL_NODISCARD int tl_fd_wait(int fd, unsigned events);

/* Forget fd: take it out of tulip's tables (and the kernel's poll set)
 * without closing it, wake every task blocked on it with TL_ECLOSED and
 * cancel its kernel requests; a watcher on it goes dormant (it never
 * fires again; still free it). For fds that other code closes (libcurl's
 * close-socket callback): call this first. Returns 0 (also for an fd
 * tulip never saw), -EBADF (fd < 0). Never suspends; call it on the
 * loop's thread (a task or a watcher callback). Outside a loop it does
 * nothing and returns 0. */
TL_API int tl_fd_forget(int fd);

/* Close fd: tl_fd_forget (waiters wake with TL_ECLOSED, kernel requests
 * are cancelled; each such task still waits for its own request's end,
 * invariant 1), then close(2). Always closes, also in a cancelled task,
 * so cleanup code cannot leak fds: unlike the other calls here it is not
 * a cancellation point and never suspends (Trio's aclose closes even when
 * cancelled). Returns 0 or -errno of close(2) (-EBADF; -EIO from some
 * files: the fd is closed anyway). EINTR is reported as 0 (on Linux the
 * fd is closed). Any thread; outside a loop, or in a child after fork(),
 * it is close(2). */
TL_API int tl_close(int fd);

/* A persistent watcher: fn(fd, revents, arg) runs on the loop each time
 * the fd is ready for one of its events (libuv's uv_poll), for libraries
 * that drive their own sockets (libcurl's multi_socket API, libpq).
 * Level-triggered: it keeps firing, once per loop iteration, while the fd
 * stays ready. revents holds the ready events among those watched (an
 * error or hang-up sets every watched event).
 *
 * fn runs on the loop's own stack, not in a task: it must not suspend (a
 * suspending call returns TL_ENOTASK there); it may spawn tasks, set
 * events (tl_event_set wakes a waiting task: the "wake a task" style),
 * change or free any watcher — its own included — and forget or close
 * fds. Freeing a watcher also drops the events already fetched for it in
 * the current batch: fn is never called after tl_fd_watch_free returned.
 * A watcher made during a batch does not see that batch's events.
 */
typedef struct tl_fd_watch tl_fd_watch;
typedef void (*tl_fd_watch_fn)(int fd, unsigned revents, void *arg);

/* Make a watcher of fd for `events` (TL_READABLE | TL_WRITABLE; 0 makes
 * it paused). At most one watcher per fd. The watcher belongs to the
 * running loop; free it with tl_fd_watch_free before tl_run returns
 * (watchers left then are freed by tl_run with a diagnostic, and the
 * pointers die with them). Returns 0 and *out, -EINVAL (out or fn NULL,
 * unknown bits), -EBADF (fd not open), -EBUSY (fd already has a
 * watcher), -EPERM (epoll: the fd cannot be polled, e.g. a regular file),
 * -ENOMEM, TL_ENOTASK (no loop on this thread), TL_EFORK. Never suspends;
 * the loop's thread only. */
TL_API int tl_fd_watch_new(tl_fd_watch **out, int fd, unsigned events,
                           tl_fd_watch_fn fn, void *arg);

/* Change the events watched (0 pauses it). Returns 0, -EINVAL (w NULL or
 * unknown bits), TL_ECLOSED (its fd was forgotten or closed through
 * tulip: the watcher is dormant), or an error from the kernel's poll set.
 * Never suspends; the loop's thread only. */
TL_API int tl_fd_watch_set(tl_fd_watch *w, unsigned events);

/* Stop and free a watcher (NULL: no-op). From its own callback too: fn
 * is not called again, not even for events fetched in the same batch.
 * Never suspends; the loop's thread only. */
TL_API void tl_fd_watch_free(tl_fd_watch *w);

/* ======================================================================
 * Operations
 * ====================================================================== */

/* Every function below SUSPENDS until the operation is done and is a
 * cancellation point; each returns the system call's result or a
 * negative code, from this common set plus the call's own errno values:
 *
 *   -ECANCELED   the task (or a scope around the call) was cancelled and
 *                the operation did not complete: nothing was read, sent
 *                or accepted (the kernel was stopped first);
 *   TL_ECLOSED   the fd was closed (tl_close) or forgotten while waiting;
 *   -EBUSY       another task is already blocked on the same fd in the
 *                same direction (read side: read, recv*, accept, wait
 *                readable; write side: write, send*, connect, wait
 *                writable);
 *   -EBADF, -ENOTSOCK, ...  what the system call says;
 *   -ENOMEM      no memory for the operation's record;
 *   TL_ENOTASK   called outside a task; TL_EFORK in a forked child.
 *
 * Buffers are borrowed for the call only. Counts are capped at
 * 0x7ffff000 bytes per call, as by the kernel. A call that completes
 * without waiting may return without letting other tasks run, but a task
 * that keeps completing calls without ever waiting yields every 32nd
 * call, so it cannot starve the loop. */

/* read(2): bytes read (0: end of file), or a code above. */
TL_API TL_NODISCARD ssize_t tl_read(int fd, void *buf, size_t len);
/* write(2) (a send with MSG_NOSIGNAL on a socket): bytes written, which
 * may be fewer than len; or a code above (-EPIPE when the peer is gone). */
TL_API TL_NODISCARD ssize_t tl_write(int fd, const void *buf, size_t len);
/* readv(2) / writev(2) (a sendmsg with MSG_NOSIGNAL on a socket). iov and
 * the memory it points to are borrowed for the call. -EINVAL for
 * iovcnt < 0 or > IOV_MAX. */
TL_API TL_NODISCARD ssize_t tl_readv(int fd, const struct iovec *iov,
                                     int iovcnt);
TL_API TL_NODISCARD ssize_t tl_writev(int fd, const struct iovec *iov,
                                      int iovcnt);
/* pread(2) / pwrite(2) at `offset` (>= 0, else -EINVAL); the file position
 * is not used or moved. -ESPIPE on pipes and sockets. */
TL_API TL_NODISCARD ssize_t tl_pread(int fd, void *buf, size_t len,
                                     off_t offset);
TL_API TL_NODISCARD ssize_t tl_pwrite(int fd, const void *buf, size_t len,
                                      off_t offset);
/* recv(2) / send(2) with `flags` (MSG_PEEK, MSG_WAITALL, ...; send adds
 * MSG_NOSIGNAL always; MSG_DONTWAIT is implied — the task waits, not the
 * thread).
 * MSG_WAITALL (tl_recv, tl_recvfrom, tl_recvmsg) on a stream or
 * seqpacket socket, on both backends: the call returns once the whole
 * buffer (every iovec of recvmsg) is full, or earlier with the bytes
 * received so far when the peer ends, an error comes, or the task is
 * cancelled or its fd closed after some bytes arrived — those bytes are
 * the caller's (completed wins: the cancel shows at the next suspending
 * call; the end or error at the next receive, as the kernel leaves it).
 * A cancel before any byte is -ECANCELED and takes nothing. Names and
 * control data (recvmsg) come with the first piece only. MSG_PEEK
 * together with MSG_WAITALL is -EINVAL. */
TL_API TL_NODISCARD ssize_t tl_recv(int fd, void *buf, size_t len,
                                    int flags);
TL_API TL_NODISCARD ssize_t tl_send(int fd, const void *buf, size_t len,
                                    int flags);
/* recvfrom(2): *addrlen (in: the size of addr, out: the sender's address
 * length) as for recvfrom; addr and addrlen may both be NULL. */
TL_API TL_NODISCARD ssize_t tl_recvfrom(int fd, void *buf, size_t len,
                                        int flags, struct sockaddr *addr,
                                        socklen_t *addrlen);
/* sendto(2) (MSG_NOSIGNAL added). addr NULL: the connected peer. */
TL_API TL_NODISCARD ssize_t tl_sendto(int fd, const void *buf, size_t len,
                                      int flags,
                                      const struct sockaddr *addr,
                                      socklen_t addrlen);
/* recvmsg(2) / sendmsg(2) (MSG_NOSIGNAL added): msg and everything it
 * points to (iov, name, control) are borrowed for the call; recvmsg
 * updates msg_namelen, msg_controllen and msg_flags as the system call
 * does. */
TL_API TL_NODISCARD ssize_t tl_recvmsg(int fd, struct msghdr *msg,
                                       int flags);
TL_API TL_NODISCARD ssize_t tl_sendmsg(int fd, const struct msghdr *msg,
                                       int flags);
/* accept4(2) with SOCK_CLOEXEC | SOCK_NONBLOCK: the new connection's fd
 * (owned by the caller: tl_close it), or a code above — -EMFILE / -ENFILE
 * when the fd table is full (the pending connection stays queued),
 * -ECONNABORTED for a client that reset before it was accepted, -EINVAL
 * when fd is not listening. addr / addrlen as for accept (may be NULL). */
TL_API TL_NODISCARD int tl_accept(int fd, struct sockaddr *addr,
                                  socklen_t *addrlen);
/* connect(2), waiting until the connection is made: 0, or -ECONNREFUSED,
 * -ETIMEDOUT, -ENETUNREACH, ... A connect cancelled midway leaves the
 * socket in an unspecified state: close it. */
TL_API TL_NODISCARD int tl_connect(int fd, const struct sockaddr *addr,
                                   socklen_t addrlen);
/* shutdown(2) (SHUT_RD, SHUT_WR, SHUT_RDWR): 0 or -errno (-ENOTCONN).
 * Does not wait for the peer; blocked readers of the fd see end of file
 * (SHUT_RD) as the kernel delivers it. */
TL_API TL_NODISCARD int tl_shutdown(int fd, int how);

#ifdef __cplusplus
}
#endif

#endif /* TULIP_IO_H */
