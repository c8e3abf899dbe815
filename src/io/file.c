/* Files: open, stat, fsync as suspending calls, and the conveniences
 * above them (read a whole file, write one atomically, its lines as a
 * generator). Reads and writes of files are the operations of ops.c
 * (tl_read, tl_pwrite, ...), which send regular files here too.
 *
 * Where each call runs:
 *   - io_uring: one kernel request (IORING_OP_OPENAT, STATX, FSYNC, and
 *     READ / WRITE / READV / WRITEV for the data) when the ring's probe
 *     lists it, counted in l->inflight (the kernel owes the completion
 *     whatever any peer does, so the virtual clock waits for it);
 *   - epoll, or an opcode the probe does not list: the system call on the
 *     thread pool through tl_to_thread (a regular file is never "not
 *     ready", so on the loop's thread it would block every task).
 *
 * Memory (invariant 1) — the caller's buffers, path and struct statx are
 * used in place, never copied, and the call never returns while the
 * kernel or a pool thread may still touch them:
 *   - io_uring: a cancelled request is cancelled in the kernel and the
 *     task waits for its own completion (tl__op_run);
 *   - pool: tl_to_thread's rule: a job not yet started is withdrawn
 *     (-ECANCELED, nothing done), a running one is waited for.
 * Either way a result that raced the cancel is returned (completed wins:
 * bytes read are the caller's, an fd opened is the caller's), so a
 * cancelled file call never loses data and never leaks an fd.
 *
 * The pool job works on a dup of the fd, made on the loop's thread and
 * closed there after the job: tl_close of the fd meanwhile cannot hand
 * its number to another file under the job. */
#include "io/io.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define SITE __builtin_return_address(0)

/* Pool-only jobs (no io_uring request of theirs is used). */
enum { FJ_RENAME = 100 };

/* ---- the pool path ---------------------------------------------------- */

typedef struct fjob {
    int kind;           /* TL__OP_* */
    int fd;             /* a dup, or a dirfd (not dup'ed: AT_FDCWD) */
    const char *path;
    int flags;
    unsigned mode;      /* open's mode, statx's mask */
    void *buf;
    size_t len;
    int64_t off;
    const struct iovec *iov;
    int iovcnt;
    ssize_t res;        /* the system call's result or -errno */
} fjob;

static int fjob_run(void *arg)
{
    fjob *j = arg;
    ssize_t n;
    do {
        switch (j->kind) {
        case TL__OP_READ:
            n = j->off < 0 ? read(j->fd, j->buf, j->len)
                           : pread(j->fd, j->buf, j->len, (off_t)j->off);
            break;
        case TL__OP_WRITE:
            n = j->off < 0 ? write(j->fd, j->buf, j->len)
                           : pwrite(j->fd, j->buf, j->len, (off_t)j->off);
            break;
        case TL__OP_READV:
            n = j->off < 0 ? readv(j->fd, j->iov, j->iovcnt)
                           : preadv(j->fd, j->iov, j->iovcnt, (off_t)j->off);
            break;
        case TL__OP_WRITEV:
            n = j->off < 0 ? writev(j->fd, j->iov, j->iovcnt)
                           : pwritev(j->fd, j->iov, j->iovcnt, (off_t)j->off);
            break;
        case TL__OP_OPENAT:
            n = openat(j->fd, j->path, j->flags, (mode_t)j->mode);
            break;
        case TL__OP_STATX:
            n = statx(j->fd, j->path, j->flags, j->mode, j->buf);
            break;
        case TL__OP_FSYNC:
            n = j->flags ? fdatasync(j->fd) : fsync(j->fd);
            break;
        case FJ_RENAME:
            n = rename(j->path, j->buf);
            break;
        default:
            n = -1;
            errno = EINVAL;
            break;
        }
    } while (n < 0 && errno == EINTR);
    j->res = n < 0 ? -errno : n;
    return 0;
}

/* Run j on the pool; j->fd is the caller's fd (dup'ed here) unless
 * `dirfd`. Returns the call's result, -ECANCELED (it never ran), or the
 * pool's -ENOMEM / -EAGAIN. */
static ssize_t pool_run(fjob *j, bool dirfd)
{
    int own = -1;
    if (!dirfd && j->fd >= 0) {
        own = fcntl(j->fd, F_DUPFD_CLOEXEC, 0);
        if (own < 0) return -errno;
        j->fd = own;
    }
    int rc = tl_to_thread(fjob_run, j, NULL);
    if (own >= 0) close(own);
    return rc < 0 ? rc : j->res;
}

ssize_t tl__file_pool_io(int kind, int fd, void *buf, size_t len,
                         int64_t off, const struct iovec *iov, int iovcnt)
{
    fjob j = {.kind = kind, .fd = fd, .buf = buf, .len = len, .off = off,
              .iov = iov, .iovcnt = iovcnt};
    return pool_run(&j, false);
}

/* ---- the io_uring path ------------------------------------------------ */

static bool uring_can(tl__loop *l, int kind)
{
    return l->backend->completion && l->backend->has_op &&
           l->backend->has_op(l, kind);
}

/* Run a counted file request (the kernel owes its completion whatever a
 * peer does). r: the fd's record (its tl_close cancels the request), or
 * NULL with op->fd set by the caller. */
static int uring_file(tl__task *self, tl__op *op, const char *what)
{
    op->counted = 1;
    self->loop->inflight++;
    return tl__op_run(self, op, 0, what);
}

/* ---- open, stat, fsync ------------------------------------------------ */

int tl_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    tl__task *self = tl__task_self("tl_openat");
    if (!self) return tl__not_task_error();
    if (!path) return -EINVAL;
    int rc = tl__checkpoint(self, "tl_openat", SITE);
    if (rc < 0) return rc;
    tl__loop *l = self->loop;
    flags |= O_CLOEXEC;
    int fd;
    if (uring_can(l, TL__OP_OPENAT)) {
        tl__op *op = tl__op_new(l, TL__OP_OPENAT, NULL);
        if (!op) return -ENOMEM;
        op->fd = dirfd;
        op->addr = (void *)path;
        op->flags = flags;
        op->len = mode;
        fd = uring_file(self, op, "tl_openat");
        /* io_uring first tries every open with O_NONBLOCK added, and
         * passes the ENXIO that gives for a FIFO with no reader on to us
         * instead of waiting as open(2) does. Only a write-only open
         * without O_NONBLOCK can mean that: do it on the pool, where
         * open(2) waits for the reader. */
        if (fd == -ENXIO && (flags & O_ACCMODE) == O_WRONLY &&
            !(flags & O_NONBLOCK)) {
            fjob j = {.kind = TL__OP_OPENAT, .fd = dirfd, .path = path,
                      .flags = flags, .mode = mode};
            fd = (int)pool_run(&j, true);
        }
    } else {
        fjob j = {.kind = TL__OP_OPENAT, .fd = dirfd, .path = path,
                  .flags = flags, .mode = mode};
        fd = (int)pool_run(&j, true);
    }
    if (fd >= 0) tl__fd_fresh(l, fd, 0, 0);
    return fd;
}

int tl_open(const char *path, int flags, mode_t mode)
{
    return tl_openat(AT_FDCWD, path, flags, mode);
}

static void stat_from_statx(struct stat *o, const struct statx *x)
{
    memset(o, 0, sizeof *o);
    o->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
    o->st_ino = x->stx_ino;
    o->st_mode = x->stx_mode;
    o->st_nlink = x->stx_nlink;
    o->st_uid = x->stx_uid;
    o->st_gid = x->stx_gid;
    o->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
    o->st_size = (off_t)x->stx_size;
    o->st_blksize = (blksize_t)x->stx_blksize;
    o->st_blocks = (blkcnt_t)x->stx_blocks;
    o->st_atim.tv_sec = x->stx_atime.tv_sec;
    o->st_atim.tv_nsec = x->stx_atime.tv_nsec;
    o->st_mtim.tv_sec = x->stx_mtime.tv_sec;
    o->st_mtim.tv_nsec = x->stx_mtime.tv_nsec;
    o->st_ctim.tv_sec = x->stx_ctime.tv_sec;
    o->st_ctim.tv_nsec = x->stx_ctime.tv_nsec;
}

int tl_fstatat(int dirfd, const char *path, struct stat *out, int flags)
{
    tl__task *self = tl__task_self("tl_fstatat");
    if (!self) return tl__not_task_error();
    if (!path || !out ||
        (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT)))
        return -EINVAL;
    int rc = tl__checkpoint(self, "tl_fstatat", SITE);
    if (rc < 0) return rc;
    tl__loop *l = self->loop;
    /* The kernel (or the pool thread) writes x, in this frame, which
     * outlives the request: the call waits for its completion. */
    struct statx x;
    bool by_fd = !*path && (flags & AT_EMPTY_PATH);
    if (uring_can(l, TL__OP_STATX)) {
        tl__fd *r = NULL;
        if (by_fd) {
            r = tl__fd_get(l, dirfd, &rc);
            if (!r) return rc;
        }
        tl__op *op = tl__op_new(l, TL__OP_STATX, r);
        if (!op) return -ENOMEM;
        op->fd = dirfd;
        op->addr = (void *)path;
        op->flags = flags;
        op->poll_mask = STATX_BASIC_STATS;
        op->buf = &x;
        rc = uring_file(self, op, "tl_fstatat");
    } else {
        fjob j = {.kind = TL__OP_STATX, .fd = dirfd, .path = path,
                  .flags = flags, .mode = STATX_BASIC_STATS, .buf = &x};
        rc = (int)pool_run(&j, !by_fd);
    }
    if (rc == 0) stat_from_statx(out, &x);
    return rc;
}

int tl_stat(const char *path, struct stat *out)
{
    return tl_fstatat(AT_FDCWD, path, out, 0);
}

int tl_fstat(int fd, struct stat *out)
{
    if (fd < 0) return -EBADF;
    return tl_fstatat(fd, "", out, AT_EMPTY_PATH);
}

static int do_fsync(int fd, int datasync, const char *what, void *site)
{
    tl__task *self = tl__task_self(what);
    if (!self) return tl__not_task_error();
    int rc = tl__checkpoint(self, what, site);
    if (rc < 0) return rc;
    tl__loop *l = self->loop;
    if (uring_can(l, TL__OP_FSYNC)) {
        tl__fd *r = tl__fd_get(l, fd, &rc);
        if (!r) return rc;
        tl__op *op = tl__op_new(l, TL__OP_FSYNC, r);
        if (!op) return -ENOMEM;
        op->flags = datasync;
        return uring_file(self, op, what);
    }
    if (fcntl(fd, F_GETFD) < 0) return -errno;
    fjob j = {.kind = TL__OP_FSYNC, .fd = fd, .flags = datasync};
    return (int)pool_run(&j, false);
}

int tl_fsync(int fd) { return do_fsync(fd, 0, "tl_fsync", SITE); }
int tl_fdatasync(int fd) { return do_fsync(fd, 1, "tl_fdatasync", SITE); }

/* rename(2) on the pool (it may wait on the disk too). */
static int path_call(int kind, const char *a, const char *b)
{
    fjob j = {.kind = kind, .path = a, .buf = (void *)b};
    return (int)pool_run(&j, true);
}

/* ---- whole files -------------------------------------------------------- */

#define READ_CHUNK (64 * 1024)

int tl_file_read_all(const char *path, char **data, size_t *len, size_t max)
{
    tl__task *self = tl__task_self("tl_file_read_all");
    if (!self) return tl__not_task_error();
    if (!path || !data) return -EINVAL;
    *data = NULL;
    if (len) *len = 0;
    if (max >= SIZE_MAX / 4) max = 0; /* no cap that the sums below wrap */
    int fd = tl_open(path, O_RDONLY, 0);
    if (fd < 0) return tl_fail(fd, "open %s: %s", path, tl_strerror(fd));
    struct stat st;
    size_t cap = READ_CHUNK;
    int rc = tl_fstat(fd, &st);
    if (rc == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size + 1 > cap &&
        (uint64_t)st.st_size < (uint64_t)SIZE_MAX / 2)
        cap = (size_t)st.st_size + 1; /* +1: end of file in one read */
    if (max && cap > max + 1) cap = max + 1;
    char *buf = rc == 0 ? malloc(cap + 1) : NULL;
    if (rc == 0 && !buf) rc = -ENOMEM;
    size_t n = 0;
    while (rc == 0) {
        if (n == cap) {
            if (max && cap > max) {
                rc = tl_fail(-EFBIG, "%s: larger than %zu bytes", path, max);
                break;
            }
            size_t ncap = cap * 2;
            if (max && ncap > max + 1) ncap = max + 1;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t k = tl_read(fd, buf + n, cap - n);
        if (k < 0) {
            rc = (int)k;
            break;
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    if (rc == 0 && max && n > max)
        rc = tl_fail(-EFBIG, "%s: larger than %zu bytes", path, max);
    (void)tl_close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    if (len) *len = n;
    return 0;
}

/* Write all of buf at the file position. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t k = tl_write(fd, buf, len);
        if (k < 0) return (int)k;
        if (k == 0) return -EIO;
        buf += k;
        len -= (size_t)k;
    }
    return 0;
}

int tl_file_write_atomic(const char *path, const void *data, size_t len,
                         mode_t mode)
{
    tl__task *self = tl__task_self("tl_file_write_atomic");
    if (!self) return tl__not_task_error();
    if (!path || !*path || (!data && len)) return -EINVAL;
    size_t plen = strlen(path);
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    const char *base = slash ? slash + 1 : path;
    if (!*base) return -EISDIR;
    /* The temporary file: in the same directory (rename(2) is atomic only
     * within one file system), hidden, with a random suffix. */
    char *tmp = malloc(plen + 32);
    char *dir = malloc(dlen + 2);
    if (!tmp || !dir) {
        free(tmp), free(dir);
        return -ENOMEM;
    }
    if (slash) {
        memcpy(dir, path, dlen ? dlen : 1); /* "/x": the root */
        dir[dlen ? dlen : 1] = '\0';
    } else {
        strcpy(dir, ".");
    }
    int fd = -1, rc;
    for (int tries = 0;; tries++) {
        uint64_t rnd = 0;
        if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
            rnd = (uint64_t)(uintptr_t)&rnd ^ (uint64_t)tries * 0x9e3779b97f4a7c15u;
        snprintf(tmp, plen + 32, "%.*s%s.%s.tmp%06llx", (int)dlen, path,
                 slash ? "/" : "", base, (unsigned long long)(rnd & 0xffffff));
        fd = tl_open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
        if (fd != -EEXIST || tries == 100) break;
    }
    if (fd < 0) {
        rc = tl_fail(fd, "%s: create a temporary file: %s", path,
                     tl_strerror(fd));
        goto out;
    }
    rc = write_all(fd, data, len);
    if (rc == 0) rc = tl_fsync(fd);
    int crc = tl_close(fd);
    if (rc == 0) rc = crc;
    if (rc == 0) rc = path_call(FJ_RENAME, tmp, path);
    if (rc < 0) {
        /* The old file is untouched; the temporary one goes, also when
         * this task is cancelled (unlink does not wait for any peer). */
        (void)unlink(tmp);
        if (rc != -ECANCELED)
            rc = tl_fail(rc, "%s: %s", path, tl_strerror(rc));
        goto out;
    }
    /* Renamed: the new contents are in place. Make the rename itself
     * durable; a cancel now would only lose that, so it waits. */
    int drc = 0;
    TL_WITH_SHIELD(&drc) {
        int dfd = tl_open(dir, O_RDONLY | O_DIRECTORY, 0);
        drc = dfd;
        if (dfd >= 0) {
            drc = tl_fsync(dfd);
            (void)tl_close(dfd);
        }
    }
    if (drc < 0 && drc != -EINVAL && drc != -EROFS)
        rc = tl_fail(drc, "%s: written, but fsync of %s failed: %s", path, dir,
                     tl_strerror(drc));
out:
    free(tmp);
    free(dir);
    return rc;
}

/* ---- lines -------------------------------------------------------------- */

#define LINE_MAX_LEN (1024 * 1024)

typedef struct flines {
    char *path;
    char *buf;
    size_t cap, start, end; /* unread bytes: buf[start..end) */
} flines;

static int flines_produce(tl_gen *g, void *arg)
{
    flines *fl = arg;
    int rc = 0;
    int fd = tl_open(fl->path, O_RDONLY, 0);
    if (fd < 0) {
        rc = tl_fail(fd, "open %s: %s", fl->path, tl_strerror(fd));
        goto out;
    }
    bool eof = false;
    size_t scanned = 0; /* bytes after start known to hold no '\n' */
    for (;;) {
        char *nl = memchr(fl->buf + fl->start + scanned, '\n',
                          fl->end - fl->start - scanned);
        if (!nl && eof && fl->end == fl->start) break;
        if (!nl && !eof) {
            scanned = fl->end - fl->start;
            if (fl->start > 0) { /* compact */
                memmove(fl->buf, fl->buf + fl->start, fl->end - fl->start);
                fl->end -= fl->start;
                fl->start = 0;
            }
            if (fl->end == fl->cap) {
                if (fl->cap > LINE_MAX_LEN) {
                    rc = tl_fail(-EMSGSIZE, "%s: a line longer than %d bytes",
                                 fl->path, LINE_MAX_LEN);
                    break;
                }
                char *nb = realloc(fl->buf, fl->cap * 2 + 1);
                if (!nb) {
                    rc = -ENOMEM;
                    break;
                }
                fl->buf = nb;
                fl->cap *= 2;
            }
            ssize_t k = tl_read(fd, fl->buf + fl->end, fl->cap - fl->end);
            if (k < 0) {
                rc = (int)k;
                break;
            }
            if (k == 0) eof = true;
            fl->end += (size_t)k;
            continue;
        }
        char *line = fl->buf + fl->start;
        size_t n = nl ? (size_t)(nl - line) : fl->end - fl->start;
        fl->start += n + (nl ? 1 : 0);
        scanned = 0;
        if (n > 0 && line[n - 1] == '\r') n--;
        line[n] = '\0'; /* the '\n', or the spare byte after end */
        rc = tl_gen_yield(g, line);
        if (rc < 0) break;
    }
    (void)tl_close(fd);
out:
    free(fl->buf);
    free(fl->path);
    free(fl);
    return rc;
}

int tl_file_lines(tl_gen **out, const char *path)
{
    if (!out || !path) return -EINVAL;
    flines *fl = calloc(1, sizeof *fl);
    if (!fl) return -ENOMEM;
    fl->path = strdup(path);
    fl->cap = READ_CHUNK;
    fl->buf = malloc(fl->cap + 1); /* +1: room for a last line's NUL */
    if (!fl->path || !fl->buf) {
        free(fl->path), free(fl->buf), free(fl);
        return -ENOMEM;
    }
    tl_gen_opts o = {.name = "file lines"};
    int rc = tl_gen_new(out, flines_produce, fl, &o);
    if (rc < 0) {
        free(fl->path), free(fl->buf), free(fl);
    }
    return rc;
}
