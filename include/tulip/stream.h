/* tulip/stream.h — included by <tulip.h>; do not include directly.
 *
 * Streams: asyncio's StreamReader and StreamWriter in one object, over a
 * connected fd (a TCP or Unix stream socket, a pipe, a terminal).
 *
 *     reader, writer = await asyncio.open_connection(...)
 *                                          int fd = tl_net_connect(&addr, SOCK_STREAM);
 *                                          tl_stream *s;
 *                                          tl_stream_open(&s, fd, NULL);
 *     writer.write(b"hello\n")             tl_stream_write(s, "hello\n", 6);
 *     await writer.drain()                 rc = tl_stream_drain(s);
 *     line = await reader.readline()       char line[256];
 *                                          n = tl_stream_readline(s, line, sizeof line);
 *     writer.close()                       tl_stream_close(s);
 *     await writer.wait_closed()           rc = tl_stream_wait_closed(s);   (frees s)
 *
 * Reading. The stream reads from its fd into a buffer of its own and
 * copies out to the caller: the kernel never writes the caller's memory
 * (invariant 1), and bytes that arrived are never lost. Every read that
 * fails — cancelled, timed out, a reset, a line over the limit, an end of
 * stream before the whole message — consumes nothing: what arrived stays
 * buffered for the next read (tl_stream_buffered counts it). One reader
 * at a time: a second task that reads while another is inside a read of
 * the same stream gets -EBUSY. On io_uring a stream socket receives in
 * the background through one multishot request into the loop's buffer
 * ring (up to 256 KiB buffered ahead of the reader, then the socket's own
 * buffer holds the peer back); TULIP_RING_RECV=0 reads only when asked.
 *
 * Writing. tl_stream_write never suspends: it sends what the kernel takes
 * at once and queues the rest in the stream, which sends it in the
 * background as the peer reads. tl_stream_drain is the flow control: it
 * suspends while the queue is above the high-water mark, until it is back
 * at the low-water mark (asyncio's pause_writing / resume_writing), so a
 * writer that drains after its writes holds at most high water plus one
 * write in memory, whatever the peer does. Writes from several tasks never
 * interleave inside one call. While output is queued the stream holds
 * the fd's watcher (tl_fd_watch): do not watch a stream's fd. A peer
 * that hangs up never raises SIGPIPE (sends use MSG_NOSIGNAL; pipe writes
 * block SIGPIPE around the call and consume their own): the write error
 * (-EPIPE, -ECONNRESET) is kept and returned by the next write, drain
 * and wait_closed.
 *
 * Errors are negative codes: -errno, TL_EOF (the stream ended in the
 * middle of a message), TL_ECLOSED (the stream was closed), -EBUSY (a
 * second reader), -ECANCELED. Misuse is reported on stderr as well.
 *
 * Every function runs on the loop's thread that made the stream (in a
 * task, except where a function says "never suspends"). The stream's
 * lower layer is a small transport (read, write, shutdown, close): the fd
 * transport is the default; tl_stream_open_transport plugs in another
 * (libtulip-tls's TLS streams, tulip/tls.h).
 */
#ifndef TULIP_STREAM_H
#define TULIP_STREAM_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Streams
 * ====================================================================== */

/* A stream (opaque; heap). Belongs to the loop that opened it. */
typedef struct tl_stream tl_stream;

/* Flags of tl_stream_opts. */
#define TL_STREAM_BORROW 0x1u /* the stream does not own the fd: ending the
                                 stream leaves it open (tulip forgets it,
                                 as tl_fd_forget does) with the O_NONBLOCK
                                 flag it had before the stream */

/* Options of tl_stream_open (NULL: every default). */
typedef struct tl_stream_opts {
    unsigned flags;    /* TL_STREAM_BORROW or 0 (the stream owns fd) */
    size_t limit;      /* readline / readuntil: the longest message, in
                          bytes, separator included; 0 = 64 KiB
                          (asyncio's default limit) */
    size_t high_water; /* drain suspends above this many queued output
                          bytes; 0 = 64 KiB */
    size_t low_water;  /* ... until the queue is down to this. With
                          high_water 0: 16 KiB. With high_water set it is
                          taken as given, so 0 means "until every byte was
                          handed to the kernel". Must be <= high_water. */
} tl_stream_opts;

/* Make a stream over fd, a connected stream socket, a pipe end or a
 * terminal (opts may be NULL). The stream owns fd, unless
 * TL_STREAM_BORROW: tl_stream_wait_closed closes it. On failure nothing
 * changed: fd is still the caller's (close it). A pipe or terminal fd is
 * made non-blocking (shared with every process holding the same open
 * file, as with tl_read on the epoll backend); a borrowed one is made
 * blocking again when the stream ends, if it was blocking before.
 * Returns 0 and *out, -EINVAL (out NULL, flags unknown, low_water above
 * high_water), -EBADF (fd not open), -ENOMEM, TL_ENOTASK (no loop on
 * this thread), TL_EFORK. Never suspends. Every stream must be ended with
 * tl_stream_wait_closed (which frees it). */
TL_API int tl_stream_open(tl_stream **out, int fd, const tl_stream_opts *opts);

/* A transport: the stream's lower layer, for a library that puts a
 * protocol between the stream and its fd (TLS). Every function gets the
 * ctx given to tl_stream_open_transport and the stream's fd, and runs on
 * the stream's loop thread.
 *   read      up to len bytes into buf (the stream's own buffer): > 0,
 *             0 at the end of the stream, or a negative code. May
 *             suspend (tl_fd_wait: a cancellation point); after a failed
 *             wait it must return at once without touching ctx (the
 *             stream may have been closed, and ctx released, meanwhile).
 *   write     up to len bytes now, never suspending: a count (> 0),
 *             -EAGAIN (nothing taken; the stream waits for the fd to be
 *             writable and calls again, possibly with the buffer moved),
 *             or a negative code (sticky write error). Never SIGPIPE.
 *   shutdown  the write side, once the queue is empty (write_eof); 0 or
 *             a negative code. NULL: nothing to do.
 *   close     release ctx; never suspends. The stream forgets the fd
 *             (tl_fd_forget) before and, after, closes it or (with
 *             TL_STREAM_BORROW) gives it back as tl_stream_open does,
 *             blocking again if it was blocking; so close must not
 *             close it.
 * The struct must outlive every stream made with it (make it static). */
typedef struct tl_stream_transport {
    ssize_t (*read)(void *ctx, int fd, void *buf, size_t len);
    ssize_t (*write)(void *ctx, int fd, const void *buf, size_t len);
    int (*shutdown)(void *ctx, int fd);
    void (*close)(void *ctx, int fd);
} tl_stream_transport;

/* tl_stream_open with tp (borrowed, see above) as the lower layer over
 * fd, and ctx its state (owned by the stream from a successful return:
 * released with tp->close). Returns what tl_stream_open returns, and
 * -EINVAL for tp NULL or without read, write or close. On failure ctx and
 * fd are still the caller's. Never suspends. */
TL_API int tl_stream_open_transport(tl_stream **out, int fd,
                                    const tl_stream_transport *tp, void *ctx,
                                    const tl_stream_opts *opts);

/* The ctx of s if s was opened over tp, else NULL (also for s or tp
 * NULL, and once the transport was closed). Never suspends. */
TL_API void *tl_stream_transport_ctx(const tl_stream *s,
                                     const tl_stream_transport *tp);

/* reader.read(n): up to n bytes into buf. Returns at once with what is
 * buffered, if anything; otherwise waits until some bytes arrive.
 * Returns the count (1..n), 0 at the end of the stream (and on every call
 * after it; also for n == 0), or -ECANCELED, TL_ECLOSED, -EBUSY (another
 * task is reading), -ECONNRESET, -EIO, ... (the system's error, returned
 * once everything before it was read; then again on every call),
 * -EINVAL (s NULL, or buf NULL with n > 0), TL_ENOTASK. buf is borrowed
 * for the call. SUSPENDS (a cancellation point). */
TL_API TL_NODISCARD ssize_t tl_stream_read(tl_stream *s, void *buf, size_t n);

/* reader.readexactly(n): exactly n bytes into buf. Returns n, or
 *   TL_EOF     the stream ended after fewer than n bytes (asyncio's
 *              IncompleteReadError): *partial is how many arrived; they
 *              stay buffered (tl_stream_read returns them), nothing is
 *              written to buf;
 *   any code of tl_stream_read: nothing consumed, the bytes that arrived
 *              stay buffered (*partial counts them; 0 once the stream
 *              was closed).
 * partial may be NULL; it is set on every return (n on success). A
 * message larger than the stream's buffer is fine: the buffer grows to n.
 * SUSPENDS (a cancellation point). */
TL_API TL_NODISCARD ssize_t tl_stream_readexactly(tl_stream *s, void *buf,
                                                  size_t n, size_t *partial);

/* reader.readuntil(separator): the bytes up to and including the first
 * occurrence of sep (seplen >= 1 bytes), copied to buf and followed by a
 * NUL. The longest message taken is the smaller of the stream's limit and
 * cap - 1 (room for the NUL). Returns its length (NUL not counted), or
 *   0           the stream ended with nothing buffered;
 *   TL_EOF      the stream ended before a separator: the rest stays
 *               buffered (tl_stream_read, tl_stream_buffered);
 *   -EMSGSIZE   no separator within that many bytes: nothing consumed,
 *               the data stays buffered (read it with tl_stream_read, or
 *               give up on the stream);
 *   -EINVAL     sep NULL or seplen 0, buf NULL, cap < 2;
 *   any code of tl_stream_read (nothing consumed).
 * SUSPENDS (a cancellation point). */
TL_API TL_NODISCARD ssize_t tl_stream_readuntil(tl_stream *s, const void *sep,
                                                size_t seplen, void *buf,
                                                size_t cap);

/* reader.readline(): tl_stream_readuntil with "\n", except that at the
 * end of the stream the last bytes come back as a line without '\n' (as
 * asyncio's readline does) instead of TL_EOF. buf gets the line, '\n'
 * included, and a NUL. Returns its length, 0 at the end of the stream,
 * -EMSGSIZE (no '\n' within min(limit, cap - 1) bytes: nothing consumed,
 * the data stays buffered), or the codes of tl_stream_readuntil.
 * SUSPENDS (a cancellation point). */
TL_API TL_NODISCARD ssize_t tl_stream_readline(tl_stream *s, char *buf,
                                               size_t cap);

/* writer.write(data): send len bytes of buf — what the kernel takes now,
 * the rest queued in the stream (copied: buf is borrowed for the call
 * only) and sent in the background. On io_uring a socket stream queues
 * all of it and sends it as a ring request with the loop's next
 * submission (no system call of its own); a send error then shows in a
 * later call. Returns 0 (all of it sent or queued),
 * TL_ECLOSED (the stream was closed), -ESHUTDOWN (after
 * tl_stream_write_eof), the write error met earlier (-EPIPE,
 * -ECONNRESET, ...: nothing more is sent), -ENOMEM (what the kernel took
 * at once was sent, the rest was not queued),
 * -EINVAL (s NULL, buf NULL with len > 0), -EXDEV (another loop's
 * stream). Never suspends and is not a cancellation point: pair it with
 * tl_stream_drain, or the queue grows as long as the peer does not read.
 * The loop's thread only. */
TL_API int tl_stream_write(tl_stream *s, const void *buf, size_t len);

/* await writer.drain(): wait while the output queue is above the
 * high-water mark, until the background sends bring it down to the
 * low-water mark. Returns 0 at once when the queue is not over the mark.
 * Returns 0, the write error (-EPIPE, -ECONNRESET, ...: the queued bytes
 * were dropped), TL_ECLOSED (the stream was closed while waiting),
 * -ECANCELED (nothing is lost: what was queued stays queued and keeps
 * going out; tl_stream_write_buffered says how much), -EINVAL, TL_ENOTASK.
 * Any number of tasks may drain at once. SUSPENDS (a cancellation
 * point). */
TL_API TL_NODISCARD int tl_stream_drain(tl_stream *s);

/* writer.write_eof(): half-close. Once the queued output is sent, the
 * write side is shut down (shutdown(SHUT_WR) on a socket: the peer reads
 * end of stream and may still send; reading goes on). On a pipe or other
 * non-socket fd the stream owns, the fd is closed then instead (a pipe's
 * reader sees end of stream; later reads return TL_ECLOSED). Returns 0
 * (also when already called), -EOPNOTSUPP (a non-socket fd the stream
 * borrows), TL_ECLOSED, the write error met earlier, -EINVAL. Never
 * suspends; the loop's thread only. */
TL_API int tl_stream_write_eof(tl_stream *s);

/* writer.close(): start closing. From now on every call on s but
 * tl_stream_wait_closed returns TL_ECLOSED; tasks inside a read or drain
 * of s wake with TL_ECLOSED (reads keep nothing: the buffered input is
 * dropped with the stream). Queued output keeps going out in the
 * background, then the fd is closed (or forgotten, if borrowed).
 * Returns 0 (also when already closing; tl_stream_close(NULL) does
 * nothing), -EXDEV (another loop's stream). s stays valid until
 * tl_stream_wait_closed. Never suspends; not a cancellation point; the
 * loop's thread only. */
TL_API int tl_stream_close(tl_stream *s);

/* await writer.wait_closed(): close s (if tl_stream_close was not called
 * yet), wait until the queued output was sent (or failed) and every task
 * inside a call on s has left, close the fd (unless borrowed), and free
 * s. Always frees s, whatever it returns: do not use s afterwards.
 * Returns 0; the write error that lost queued output (-EPIPE,
 * -ECONNRESET, ...); -ECANCELED (the task or a scope around the call was
 * cancelled: the queued output was dropped and the fd closed at once — a
 * peer that never reads cannot hold it, so put the call in a timeout
 * scope when the peer is not trusted).
 * tl_stream_wait_closed(NULL) returns 0. TL_ENOTASK outside a task (s is
 * then closed at once and freed as soon as nothing uses it). SUSPENDS
 * (only while output is queued or other tasks are inside s). */
TL_API int tl_stream_wait_closed(tl_stream *s);

/* Bytes read from the fd and not yet taken by a read (asyncio's
 * len(reader._buffer)); 0 for NULL. Never suspends; any time. */
TL_API size_t tl_stream_buffered(const tl_stream *s);

/* Bytes given to tl_stream_write that the kernel has not taken yet
 * (transport.get_write_buffer_size()); 0 for NULL. Never suspends. */
TL_API size_t tl_stream_write_buffered(const tl_stream *s);

/* reader.at_eof(): non-zero once the end of the stream was read and
 * nothing is buffered. Never suspends. */
TL_API int tl_stream_at_eof(const tl_stream *s);

/* The stream's fd (for tl_sockaddr_peer, socket options); -1 once it was
 * closed. Do not read, write or close it yourself. Never suspends. */
TL_API int tl_stream_fd(const tl_stream *s);

/* "async for line in reader": a generator (tulip/gen.h) that yields each
 * line of s as a NUL-terminated `const char *` without its "\n" (or
 * "\r\n"), valid until the next tl_gen_next or tl_gen_close. A last line
 * without '\n' is yielded too. The generator ends (TL_EGENDONE) at the
 * end of the stream, or fails with the code of tl_stream_readline
 * (-EMSGSIZE for a line over the stream's limit, -ECONNRESET, ...). s is
 * borrowed: it must outlive the generator, which does not close it; while
 * the generator runs, it is the stream's reader.
 *
 *     tl_gen *g; const char *line; int rc;
 *     tl_stream_lines(&g, s);
 *     TL_GEN_FOREACH(g, line, &rc) printf("got %s\n", line);
 *     int crc = tl_gen_close(g);
 *
 * Returns 0 and *out, -EINVAL (out or s NULL), -ENOMEM, TL_ENOTASK.
 * Never suspends (the generator reads when asked for lines). */
TL_API int tl_stream_lines(tl_gen **out, tl_stream *s);

#ifdef __cplusplus
}
#endif

#endif /* TULIP_STREAM_H */
