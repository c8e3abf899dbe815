/* tulip/file.h — included by <tulip.h>; do not include directly.
 *
 * Files: open, stat and fsync as suspending calls, and aiofiles'
 * conveniences (read a whole file, write one atomically, iterate over its
 * lines). A file's data moves with the operations of tulip/io.h —
 * tl_read, tl_write, tl_pread, tl_pwrite, tl_readv, tl_writev — and its fd
 * is closed with tl_close.
 *
 * Where the work happens. A regular file is never "not ready", so on the
 * loop's thread its reads would stall every task while the disk works.
 * On the io_uring backend every call here, and every read and write of a
 * regular file, is one kernel request (IORING_OP_OPENAT, STATX, FSYNC,
 * READ, WRITE, ...; an opcode the kernel's probe does not list falls back
 * to the thread pool); on epoll it runs on the loop's thread pool
 * (tulip/thread.h). Either way only the calling task waits.
 *
 * Cancellation and memory (invariant 1). Every call is a cancellation
 * point, and none returns while the kernel or a pool thread may still
 * touch the caller's memory (buffers, paths, the struct stat) — a read
 * into a task's stack buffer that is cancelled never writes after the
 * call returned. The caller's memory is used in place (no bounce buffer),
 * so a cancel has to wait for what already started:
 *   - io_uring: the request is cancelled in the kernel and the call waits
 *     for its own completion;
 *   - thread pool: a job not yet started is withdrawn; one running is
 *     waited for (tl_to_thread's rule).
 * A call whose work completed before the cancel took effect returns its
 * result (completed wins: bytes read are returned, an fd opened is the
 * caller's to close; the cancel shows at the next call); -ECANCELED means
 * nothing was done. So a cancel never loses data and never leaks an fd.
 *
 * Concurrency. Files take no reader / writer slot: several tasks may
 * tl_pread one file at once (no -EBUSY). On epoll a call in flight works
 * on its own duplicate of the fd, so a tl_close meanwhile lets it finish
 * on the same file (never on a reused number); on io_uring tl_close
 * cancels it (TL_ECLOSED, or its result if it completed first).
 */
#ifndef TULIP_FILE_H
#define TULIP_FILE_H

#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Files
 * ====================================================================== */

/* openat(2) relative to dirfd (AT_FDCWD: the working directory), with
 * O_CLOEXEC added; flags and mode as for open(2) (mode counts with
 * O_CREAT / O_TMPFILE). The new fd is the caller's: tl_close it. Reads
 * and writes of a regular file opened here go through the kernel ring or
 * the pool as described above; O_NONBLOCK changes nothing for them.
 * Returns the fd, or -ENOENT, -EACCES, -EEXIST (O_CREAT | O_EXCL),
 * -EISDIR, -ENOTDIR, -ELOOP, -EMFILE, -ENAMETOOLONG, ... (open's errno),
 * -EINVAL (path NULL), -ECANCELED (nothing opened), -ENOMEM, -EAGAIN (the
 * pool's queue is full), TL_ENOTASK, TL_EFORK. A FIFO opened write-only
 * without O_NONBLOCK waits for a reader on both backends (on the pool: a
 * cancel then waits until a reader comes, tl_to_thread's rule); opened
 * read-only, io_uring returns it at once (reads then wait for a writer)
 * where open(2) on the pool waits for the writer. SUSPENDS. */
TL_API TL_NODISCARD int tl_openat(int dirfd, const char *path, int flags,
                                  mode_t mode);
/* tl_openat(AT_FDCWD, path, flags, mode). SUSPENDS. */
TL_API TL_NODISCARD int tl_open(const char *path, int flags, mode_t mode);

/* fstatat(2), done with statx(2) (STATX_BASIC_STATS) and converted:
 * flags 0, AT_SYMLINK_NOFOLLOW (lstat), AT_EMPTY_PATH with path "" (the
 * fd dirfd itself), AT_NO_AUTOMOUNT. *out is written only on success.
 * Returns 0, -ENOENT, -EACCES, -ENOTDIR, -ELOOP, -EBADF, ... (statx's
 * errno), -EINVAL (path or out NULL, unknown flags), -ECANCELED,
 * -ENOMEM, -EAGAIN, TL_ENOTASK, TL_EFORK. SUSPENDS. */
TL_API TL_NODISCARD int tl_fstatat(int dirfd, const char *path,
                                   struct stat *out, int flags);
/* stat(2): tl_fstatat(AT_FDCWD, path, out, 0). SUSPENDS. */
TL_API TL_NODISCARD int tl_stat(const char *path, struct stat *out);
/* fstat(2) of fd (-EBADF for fd < 0). SUSPENDS. */
TL_API TL_NODISCARD int tl_fstat(int fd, struct stat *out);

/* fsync(2) / fdatasync(2): 0, or -EBADF, -EIO, -EROFS / -EINVAL (fd
 * cannot be synced), -ENOSPC, -ECANCELED (a cancel that came first: not
 * synced; one that came while the kernel was syncing waits for it and
 * returns its result), -ENOMEM, -EAGAIN, TL_ENOTASK, TL_EFORK.
 * SUSPENDS. */
TL_API TL_NODISCARD int tl_fsync(int fd);
TL_API TL_NODISCARD int tl_fdatasync(int fd);

/* ======================================================================
 * Whole files (aiofiles' conveniences)
 * ====================================================================== */

/* Read the whole file at path into a new buffer: 0, *data (malloc'd,
 * NUL-terminated after the last byte so text can be used as a string;
 * the caller frees it) and *len (may be NULL) its length. max > 0 caps
 * the size: a longer file gives -EFBIG and nothing. On any failure,
 * cancellation included, *data is NULL, the buffer is freed and the file
 * closed. Returns 0, the codes of tl_open (-ENOENT, -EACCES, -EISDIR on
 * some file systems, ...) and tl_read (-EISDIR), -EFBIG, -EINVAL (path or
 * data NULL), -ENOMEM, -ECANCELED, TL_ENOTASK; failures carry a tl_fail
 * message naming the path. SUSPENDS. */
TL_API TL_NODISCARD int tl_file_read_all(const char *path, char **data,
                                         size_t *len, size_t max);

/* Replace the file at path with len bytes of data, atomically: the data
 * goes to a new hidden file in the same directory (".NAME.tmpXXXXXX",
 * made with O_EXCL and `mode`, less the umask), which is fsync'ed, then
 * renamed over path, then the directory is fsync'ed so the rename
 * survives a crash. Readers see the old file or the new one, never a
 * mixture; a failure or a cancel before the rename leaves the old file
 * (or no file) as it was and removes the temporary one. Once the rename
 * is done the call finishes the directory sync even if cancelled (a
 * shield) and returns 0: the new contents are in place. data is borrowed
 * for the call. Returns 0, -EINVAL (path NULL or "", data NULL with
 * len > 0), -EISDIR (path ends in '/'), -ENOENT (no such directory),
 * -EACCES, -ENOSPC, -EDQUOT, -EIO, -EXDEV, ... (errors of open, write,
 * fsync, rename; the fsync of the directory too, after the rename),
 * -ECANCELED (nothing changed), -ENOMEM, TL_ENOTASK; failures carry a
 * tl_fail message naming the path. SUSPENDS. */
TL_API TL_NODISCARD int tl_file_write_atomic(const char *path,
                                             const void *data, size_t len,
                                             mode_t mode);

/* "async for line in file": a generator (tulip/gen.h) over the lines of
 * the file at path, each a NUL-terminated `char *` without its "\n" (or
 * "\r\n"), valid until the next tl_gen_next or tl_gen_close; a last line
 * without '\n' is yielded too. The file is opened at the first
 * tl_gen_next and closed when the generator ends or is closed. The
 * generator fails with the codes of tl_open and tl_read (the open's with
 * a tl_fail message naming the path) or -EMSGSIZE (a line over 1 MiB).
 * path is copied. Returns 0 and *out (close it with tl_gen_close),
 * -EINVAL (out or path NULL), -ENOMEM, TL_ENOTASK. Never suspends (the
 * generator reads when asked for lines). */
TL_API int tl_file_lines(tl_gen **out, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* TULIP_FILE_H */
