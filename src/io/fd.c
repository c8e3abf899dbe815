/* File descriptor records, readiness waits, persistent watchers, forget
 * and close, and the I/O layer's teardown.
 *
 * One record per fd number (l->io->fdchunks, indexed by the number, never
 * moved). Its generation is bumped each time tulip forgets the fd, so
 * every event, completion or watcher that names an older generation is
 * dropped instead of being applied to whatever now has that number.
 *
 * Readiness (epoll). A record is registered once, edge-triggered, the
 * first time something must wait on it. Edges set `ready` bits whether or
 * not a task waits (an edge with no waiter is not lost: the next wait
 * returns at once). A waiter consumes the bits it is woken with; an
 * operation that then meets EAGAIN clears its bit and waits for the next
 * edge. tl_fd_wait, for code that makes its own system calls (so tulip
 * never sees its EAGAIN), checks the level with poll(2) before it parks:
 * "wait, read part, wait" must not sleep on data that is already there.
 * While a watcher uses the fd, the registration is level-triggered with
 * the watcher's events (plus any direction a task waits in): the
 * libraries that use watchers expect level semantics.
 *
 * Readiness (io_uring). Waits and watchers are one-shot POLL_ADD requests
 * (level-triggered by nature); a watcher's poll is armed again after each
 * callback. Operations do not wait for readiness at all: they are kernel
 * requests (src/io/op.c).
 *
 * Slots. A record has a reader and a writer slot; a task holds a slot
 * while it is parked on the fd (or owns a kernel request on it), so a
 * second reader gets -EBUSY instead of a wake-up that the first one
 * would steal. */
#include "io/io.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct tl_fd_watch {
    tl__loop *loop;
    int fd;
    tl__fd *rec;         /* NULL once its fd was forgotten (dormant) */
    unsigned events;     /* TL__EV_IN | TL__EV_OUT watched */
    tl_fd_watch_fn fn;
    void *arg;
    uint64_t made_batch; /* l->io_batch when made: events fetched in that
                            batch predate the watcher */
    tl__op *poll;        /* io_uring: its armed poll request, or NULL */
    uint8_t in_cb;       /* fn is running */
    uint8_t dead;        /* freed from its own callback: free after it */
    tl__link link;       /* in l->io->watches */
};

tl__io *tl__io_get(tl__loop *l)
{
    if (l->io) return l->io;
    tl__io *io = calloc(1, sizeof *io);
    if (!io) return NULL;
    tl__list_init(&io->free_ops);
    tl__list_init(&io->watches);
    l->io = io;
    return io;
}

static tl__fd *rec_slot(tl__io *io, int fd, bool grow)
{
    uint32_t c = (uint32_t)fd / TL__FD_CHUNK;
    if (c >= io->nfdchunks) {
        if (!grow) return NULL;
        uint32_t n = io->nfdchunks ? io->nfdchunks : 4;
        while (n <= c) n *= 2;
        tl__fd **p = realloc(io->fdchunks, n * sizeof *p);
        if (!p) return NULL;
        memset(p + io->nfdchunks, 0, (n - io->nfdchunks) * sizeof *p);
        io->fdchunks = p;
        io->nfdchunks = n;
    }
    if (!io->fdchunks[c]) {
        if (!grow) return NULL;
        tl__fd *ch = calloc(TL__FD_CHUNK, sizeof *ch);
        if (!ch) return NULL;
        for (uint32_t i = 0; i < TL__FD_CHUNK; i++) {
            ch[i].fd = (int)(c * TL__FD_CHUNK + i);
            ch[i].gen = 1;
            tl__list_init(&ch[i].ops);
        }
        io->fdchunks[c] = ch;
    }
    return &io->fdchunks[c][(uint32_t)fd % TL__FD_CHUNK];
}

tl__fd *tl__fd_find(tl__loop *l, int fd)
{
    if (!l->io || fd < 0) return NULL;
    tl__fd *r = rec_slot(l->io, fd, false);
    return r && r->live ? r : NULL;
}

static tl__fd *rec_make(tl__loop *l, int fd, int is_sock, int *err)
{
    if (fd < 0) {
        *err = -EBADF;
        return NULL;
    }
    tl__io *io = tl__io_get(l);
    tl__fd *r = io ? rec_slot(io, fd, true) : NULL;
    if (!r) {
        *err = -ENOMEM;
        return NULL;
    }
    if (r->live) return r;
    if (!l->backend->completion && !is_sock) {
        /* Readiness backend: the calls are made on the loop's thread, so
         * the fd must not block. One fcntl per fd life, which also tells
         * a closed fd (EBADF) from an open one. */
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0) {
            *err = -errno;
            return NULL;
        }
        if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            *err = -errno;
            return NULL;
        }
    }
    r->live = 1;
    r->ready = 0;
    r->registered = 0;
    r->mode = 0;
    r->edge_in = 0;
    r->drained = 0;
    r->hup = 0;
    r->bytes = 0;
    r->is_sock = is_sock ? 1 : 0;
    r->waiter[0] = r->waiter[1] = NULL;
    r->watch = NULL;
    return r;
}

tl__fd *tl__fd_get(tl__loop *l, int fd, int *err)
{
    return rec_make(l, fd, 0, err);
}

void tl__fd_fresh(tl__loop *l, int fd, int is_sock, int bytes)
{
    tl__fd *r = tl__fd_find(l, fd);
    /* The kernel just handed out this number, so whatever tulip knew
     * under it was closed behind its back. */
    if (r) tl__fd_forget(l, r, TL_ECLOSED);
    int err;
    if (is_sock && (r = rec_make(l, fd, 1, &err)))
        r->bytes = (uint8_t)bytes; /* known from how it was made: no
                                      getsockopt in tl__fd_bytes */
}

unsigned tl__ev_from_poll(unsigned re)
{
    unsigned b = 0;
    if (re & (POLLIN | POLLPRI | POLLRDHUP)) b |= TL__EV_IN;
    if (re & POLLOUT) b |= TL__EV_OUT;
    if (re & (POLLERR | POLLHUP | POLLNVAL))
        b |= TL__EV_ERR | TL__EV_IN | TL__EV_OUT;
    return b;
}

unsigned tl__ev_to_poll(unsigned ev)
{
    return ((ev & TL__EV_IN) ? (unsigned)(POLLIN | POLLRDHUP) : 0u) |
           ((ev & TL__EV_OUT) ? (unsigned)POLLOUT : 0u);
}

/* What a waiter for `events` sees of `bits`: an error or hang-up counts
 * as every event asked. */
static unsigned seen(unsigned bits, unsigned events)
{
    return (bits & TL__EV_ERR) ? events : bits & events;
}

/* ---- the epoll registration ------------------------------------------ */

/* Bring r's registration in line with who uses it: level-triggered with
 * the watcher's events (+ the directions tasks wait in) while a watcher
 * is active, else edge-triggered IN|OUT once anyone ever waited. */
static int sync_mode(tl__loop *l, tl__fd *r)
{
    if (l->backend->completion || !r->live) return 0;
    struct tl_fd_watch *w = r->watch;
    if (w && w->events && !w->dead) {
        unsigned ev = w->events;
        if (r->waiter[TL__DIR_R]) ev |= TL__EV_IN;
        if (r->waiter[TL__DIR_W]) ev |= TL__EV_OUT;
        return l->backend->fd_ctl(l, r, ev, 0);
    }
    if (!r->registered && !r->waiter[0] && !r->waiter[1]) return 0;
    return l->backend->fd_ctl(l, r, TL__EV_IN | TL__EV_OUT, 1);
}

void tl__fd_release(tl__fd *r, tl__task *t)
{
    if (!t) return;
    if (r->waiter[TL__DIR_R] == t) r->waiter[TL__DIR_R] = NULL;
    if (r->waiter[TL__DIR_W] == t) r->waiter[TL__DIR_W] = NULL;
}

/* ---- parked readiness waiters (epoll) --------------------------------- */

typedef struct fd_waiter {
    tl__fd *r;
    unsigned events;
} fd_waiter;

static void waiter_wake(tl__loop *l, tl__fd *r, tl__task *t, int result)
{
    tl__fd_release(r, t);
    l->io_waiters--;
    tl__wake(t, result);
}

static void fd_wait_cancel(tl__task *t)
{
    fd_waiter *fw = t->wait_data;
    tl__loop *l = t->loop;
    waiter_wake(l, fw->r, t, -ECANCELED);
    (void)sync_mode(l, fw->r);
}

static void watch_fire(tl__loop *l, struct tl_fd_watch *w, unsigned bits);
static void watch_destroy(tl__loop *l, struct tl_fd_watch *w);

void tl__fd_event(tl__loop *l, uint64_t tag, unsigned ev)
{
    if (!l->io) return;
    int fd = (int)(uint32_t)tag;
    tl__fd *r = rec_slot(l->io, fd, false);
    /* Forgotten earlier in this batch (maybe reopened as a new record):
     * the event belongs to a generation that no longer exists. */
    if (!r || !r->live || r->gen != (uint32_t)(tag >> 32)) return;
    if (ev & TL__EV_HUP) r->hup = 1;
    ev &= ~TL__EV_HUP;
    if (ev & (TL__EV_IN | TL__EV_ERR)) r->drained = 0; /* new data */
    r->ready |= (uint8_t)ev;
    bool resync = false;
    for (int d = 0; d < 2; d++) {
        tl__task *t = r->waiter[d];
        unsigned dir = d == TL__DIR_R ? TL__EV_IN : TL__EV_OUT;
        if (!t || !(ev & (dir | TL__EV_ERR))) continue;
        fd_waiter *fw = t->wait_data;
        unsigned got = seen(r->ready, fw->events);
        r->ready &= (uint8_t)~(got | TL__EV_ERR);
        waiter_wake(l, r, t, (int)got);
        resync = true;
    }
    if (resync && r->watch) (void)sync_mode(l, r);
    struct tl_fd_watch *w = r->watch;
    if (w && !w->dead && w->made_batch != l->io_batch) {
        unsigned hit = seen(ev, w->events);
        if (hit) watch_fire(l, w, hit);
        if (w->dead) watch_destroy(l, w); /* freed by its own callback */
    }
}

static int wait_poll_op(tl__task *self, tl__fd *r, unsigned events,
                        const char *what)
{
    tl__op *op = tl__op_new(self->loop, TL__OP_POLL, r);
    if (!op) return -ENOMEM;
    op->poll_mask = tl__ev_to_poll(events);
    op->abandon = 1; /* touches no caller memory: a cancel leaves at once */
    unsigned dirs = ((events & TL__EV_IN) ? 1u << TL__DIR_R : 0u) |
                    ((events & TL__EV_OUT) ? 1u << TL__DIR_W : 0u);
    int rc = tl__op_run(self, op, dirs, what);
    if (rc < 0) return rc;
    if ((unsigned)rc & POLLNVAL) return -EBADF;
    unsigned got = seen(tl__ev_from_poll((unsigned)rc), events);
    return got ? (int)got : (int)events;
}

int tl__fd_wait_ready(tl__task *self, tl__fd *r, unsigned events, int level,
                      const char *what)
{
    tl__loop *l = self->loop;
    events &= TL__EV_IN | TL__EV_OUT;
    if (!events) return -EINVAL;
    if (((events & TL__EV_IN) && r->waiter[TL__DIR_R]) ||
        ((events & TL__EV_OUT) && r->waiter[TL__DIR_W]))
        return -EBUSY;
    if (l->backend->completion) return wait_poll_op(self, r, events, what);

    unsigned got = seen(r->ready, events);
    if (got == events || (got && !level)) {
        /* an edge that came while nobody waited */
        r->ready &= (uint8_t)~(got | TL__EV_ERR);
        return (int)got;
    }
    if (level) {
        /* Not every event asked is known ready: ask the kernel (poll(2)
         * is level-triggered), keeping what the edges already said. */
        r->ready &= (uint8_t)~(got | TL__EV_ERR);
        struct pollfd p = {.fd = r->fd, .events = (short)tl__ev_to_poll(events)};
        int n = poll(&p, 1, 0);
        if (n < 0 && errno != EINTR) return -errno;
        if (n > 0) {
            if (p.revents & POLLNVAL) return -EBADF;
            got |= seen(tl__ev_from_poll((unsigned)p.revents), events);
        }
        if (got) return (int)got;
    }
    if (events & TL__EV_IN) r->waiter[TL__DIR_R] = self;
    if (events & TL__EV_OUT) r->waiter[TL__DIR_W] = self;
    int rc = sync_mode(l, r);
    if (rc < 0) {
        tl__fd_release(r, self);
        /* EPERM: not pollable (a regular file): always ready, as poll(2)
         * says of one. */
        return rc == -EPERM ? (int)events : rc;
    }
    fd_waiter fw = {.r = r, .events = events};
    self->wait_data = &fw;
    self->io_streak = 0;
    l->io_waiters++;
    return tl__park(self, fd_wait_cancel, what);
}

/* ---- forget, close ---------------------------------------------------- */

static void watch_detach_poll(tl__loop *l, struct tl_fd_watch *w);

void tl__fd_forget(tl__loop *l, tl__fd *r, int code)
{
    if (!r->live) return;
    /* Deregister first: nothing may arrive for this fd under its old
     * generation once we return. */
    if (!l->backend->completion && r->registered)
        (void)l->backend->fd_ctl(l, r, 0, 0);
    r->live = 0;
    r->ready = 0;
    r->drained = 0;
    r->gen = r->gen + 1 ? r->gen + 1 : 1;
    struct tl_fd_watch *w = r->watch;
    if (w) {
        r->watch = NULL;
        w->rec = NULL; /* dormant */
        watch_detach_poll(l, w);
    }
    /* Tasks parked for readiness (epoll). */
    for (int d = 0; d < 2; d++) {
        tl__task *t = r->waiter[d];
        if (t && t->state == TL__T_WAITING && t->on_cancel == fd_wait_cancel)
            waiter_wake(l, r, t, code);
    }
    /* Kernel requests (io_uring): cancel each; its owner wakes at the
     * request's own completion, which says TL_ECLOSED for -ECANCELED. */
    tl__link *n;
    while ((n = tl__list_pop(&r->ops))) {
        tl__op *op = tl__container_of(n, tl__op, fd_link);
        op->closed = 1;
        if (op->state == TL__OPS_CANCELLING) continue;
        if (l->backend->cancel(l, op) == 1) {
            /* Never reached the kernel: over now. An op with its own
             * completion (a stream's send) hears it like one. */
            if (op->done) {
                op->done(l, op, -ECANCELED, 0);
                continue;
            }
            tl__task *t = op->owner;
            tl__op_free(l, op);
            if (t) {
                l->io_waiters--;
                tl__wake(t, code);
            }
        } else if (!op->counted) {
            op->counted = 1;
            l->inflight++; /* the kernel owes it, peer or no peer */
        }
    }
    r->waiter[0] = r->waiter[1] = NULL;
}

static tl__loop *loop_here(void)
{
    tl__loop *l = tl__self;
    if (!l || l->fork_gen != atomic_load_explicit(&tl__fork_gen,
                                                  memory_order_relaxed))
        return NULL;
    return l;
}

int tl_fd_forget(int fd)
{
    if (fd < 0) return -EBADF;
    tl__loop *l = loop_here();
    if (!l) return 0;
    tl__fd *r = tl__fd_find(l, fd);
    if (r) tl__fd_forget(l, r, TL_ECLOSED);
    return 0;
}

int tl_close(int fd)
{
    if (fd < 0) return -EBADF;
    tl__loop *l = loop_here();
    if (l) {
        tl__fd *r = tl__fd_find(l, fd);
        if (r) {
            bool had_ops = !tl__list_empty(&r->ops) || r->watch;
            tl__fd_forget(l, r, TL_ECLOSED);
            /* Requests still queued for the kernel name the fd by number:
             * hand them (and their cancels) over before the number can be
             * reused. */
            if (had_ops && l->backend->completion) l->backend->flush(l);
        }
    }
    if (close(fd) == 0 || errno == EINTR) return 0;
    return -errno;
}

/* ---- tl_fd_wait ------------------------------------------------------- */

int tl_fd_wait(int fd, unsigned events)
{
    tl__task *self = tl__task_self("tl_fd_wait");
    if (!self) return tl__not_task_error();
    if (!events || (events & ~(TL_READABLE | TL_WRITABLE))) return -EINVAL;
    int rc = tl__checkpoint(self, "tl_fd_wait", __builtin_return_address(0));
    if (rc < 0) return rc;
    tl__fd *r = tl__fd_get(self->loop, fd, &rc);
    if (!r) return rc;
    return tl__fd_wait_ready(self, r, events, 1, "tl_fd_wait");
}

/* ---- watchers --------------------------------------------------------- */

static void watch_destroy(tl__loop *l, struct tl_fd_watch *w)
{
    tl__list_remove(&w->link);
    l->io_watchers--;
    watch_detach_poll(l, w);
    if (w->rec && w->rec->watch == w) {
        w->rec->watch = NULL;
        (void)sync_mode(l, w->rec);
    }
    free(w);
}

static void watch_fire(tl__loop *l, struct tl_fd_watch *w, unsigned bits)
{
    (void)l;
    w->in_cb = 1;
    w->fn(w->fd, bits, w->arg);
    w->in_cb = 0;
}

static void watch_arm(tl__loop *l, struct tl_fd_watch *w);

/* io_uring: the watcher's poll completed. */
static void watch_poll_done(tl__loop *l, tl__op *op, int res, unsigned flags)
{
    (void)flags;
    struct tl_fd_watch *w = op->data;
    tl__list_remove(&op->fd_link);
    tl__op_free(l, op); /* and l->inflight-- if it was counted */
    if (!w) return; /* orphaned: freed, changed or forgotten */
    w->poll = NULL;
    if (res == -ECANCELED) return;
    unsigned hit;
    if (res < 0) {
        /* -EBADF: closed behind tulip's back. Report it once as every
         * event (the library's next call sees the error); no re-arm. */
        hit = w->events;
        if (hit) watch_fire(l, w, hit);
        if (w->dead) watch_destroy(l, w);
        return;
    }
    hit = seen(tl__ev_from_poll((unsigned)res), w->events);
    if (hit) watch_fire(l, w, hit);
    if (w->dead) {
        watch_destroy(l, w);
        return;
    }
    watch_arm(l, w); /* level-triggered: fires again while still ready */
}

static void watch_arm(tl__loop *l, struct tl_fd_watch *w)
{
    if (!l->backend->completion || w->poll || !w->events || !w->rec) return;
    tl__op *op = tl__op_new(l, TL__OP_POLL, w->rec);
    if (!op) {
        tl__diag("fd watcher on fd %d: no memory to arm its poll; it stops",
                 w->fd);
        return;
    }
    op->poll_mask = tl__ev_to_poll(w->events);
    op->abandon = 1;
    op->done = watch_poll_done;
    op->data = w;
    tl__list_push(&w->rec->ops, &op->fd_link);
    w->poll = op;
    l->backend->submit(l, op);
}

/* io_uring: drop the watcher's armed poll (it completes as an orphan). */
static void watch_detach_poll(tl__loop *l, struct tl_fd_watch *w)
{
    tl__op *op = w->poll;
    if (!op) return;
    w->poll = NULL;
    op->data = NULL;
    if (op->state == TL__OPS_CANCELLING) return;
    tl__list_remove(&op->fd_link);
    if (l->backend->cancel(l, op) == 1) {
        tl__op_free(l, op);
    } else if (!op->counted) {
        op->counted = 1;
        l->inflight++;
    }
}

int tl_fd_watch_new(tl_fd_watch **out, int fd, unsigned events,
                    tl_fd_watch_fn fn, void *arg)
{
    tl__loop *l = tl__self;
    if (!l) {
        tl__diag("tl_fd_watch_new: no loop runs on this thread");
        return TL_ENOTASK;
    }
    if (!loop_here()) {
        tl__diag("loop inherited across fork(); start a new tl_run in the "
                 "child");
        return TL_EFORK;
    }
    if (!out || !fn || (events & ~(TL_READABLE | TL_WRITABLE)))
        return -EINVAL;
    int rc;
    tl__fd *r = tl__fd_get(l, fd, &rc);
    if (!r) return rc;
    if (r->watch) return -EBUSY;
    struct tl_fd_watch *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->loop = l;
    w->fd = fd;
    w->rec = r;
    w->events = events;
    w->fn = fn;
    w->arg = arg;
    w->made_batch = l->io_batch;
    r->watch = w;
    rc = sync_mode(l, r);
    if (rc < 0) {
        r->watch = NULL;
        free(w);
        return rc;
    }
    tl__list_push(&l->io->watches, &w->link);
    l->io_watchers++;
    watch_arm(l, w);
    *out = w;
    return 0;
}

int tl_fd_watch_set(tl_fd_watch *w, unsigned events)
{
    if (!w || (events & ~(TL_READABLE | TL_WRITABLE))) return -EINVAL;
    if (!w->rec) return TL_ECLOSED;
    tl__loop *l = w->loop;
    if (events == w->events) return 0;
    w->events = events;
    if (l->backend->completion) {
        watch_detach_poll(l, w); /* the old mask's poll */
        if (!w->in_cb) watch_arm(l, w); /* else armed after the callback */
        return 0;
    }
    return sync_mode(l, w->rec);
}

void tl_fd_watch_free(tl_fd_watch *w)
{
    if (!w) return;
    if (w->in_cb) { /* its own callback: finish there */
        w->dead = 1;
        w->events = 0;
        watch_detach_poll(w->loop, w);
        if (w->rec) (void)sync_mode(w->loop, w->rec);
        return;
    }
    watch_destroy(w->loop, w);
}

/* ---- teardown --------------------------------------------------------- */

size_t tl__io_owed(const tl__loop *l) { return l->io ? l->io->owed : 0; }

static const char *op_name(int kind)
{
    static const char *const names[] = {
        "?", "poll", "read", "write", "readv", "writev", "recv", "send",
        "recvmsg", "sendmsg", "accept", "connect", "shutdown", "openat",
        "statx", "fsync", "multishot accept", "multishot recv"};
    return kind > 0 && kind <= TL__OP_RECV_MULTI ? names[kind] : "?";
}

void tl__io_loop_close(tl__loop *l)
{
    tl__io *io = l->io;
    if (!io) return;
    tl__link *n;
    while ((n = tl__list_pop(&io->watches))) {
        struct tl_fd_watch *w = tl__container_of(n, struct tl_fd_watch, link);
        tl__list_init(&w->link);
        tl__diag("fd watcher on fd %d was never freed (tl_fd_watch_free); "
                 "tl_run frees it", w->fd);
        watch_destroy(l, w);
    }
    for (uint32_t c = 0; c < io->nfdchunks; c++) {
        if (!io->fdchunks[c]) continue;
        for (uint32_t i = 0; i < TL__FD_CHUNK; i++)
            if (io->fdchunks[c][i].live)
                tl__fd_forget(l, &io->fdchunks[c][i], TL_ECLOSED);
    }
    /* Every task is done, so what is left are orphans and cancelled
     * requests: the kernel owes them a completion soon. Wait, bounded. */
    int64_t start = tl__clock_ns();
    bool leak = false;
    while (io->owed > 0) {
        if (tl__clock_ns() - start > 5 * (int64_t)1000000000) {
            tl__diag("tl_run: %zu I/O request(s) still in the kernel 5 s "
                     "into teardown; their memory is leaked, not freed "
                     "under the kernel:", io->owed);
            for (uint32_t c = 0; c < io->nopchunks; c++)
                for (uint32_t i = 0; io->opchunks[c] && i < TL__OP_CHUNK; i++) {
                    tl__op *op = &io->opchunks[c][i];
                    if (op->state != TL__OPS_FREE)
                        tl__diag("  %s on fd %d%s", op_name(op->kind),
                                 op->fd, op->state == TL__OPS_CANCELLING
                                         ? " (cancel requested)" : "");
                }
            leak = true;
            break;
        }
        l->backend->poll(l, 100 * 1000000);
    }
    for (uint32_t c = 0; c < io->nfdchunks; c++) free(io->fdchunks[c]);
    free(io->fdchunks);
    if (!leak) {
        for (uint32_t c = 0; c < io->nopchunks; c++) free(io->opchunks[c]);
        free(io->opchunks);
        free(io);
    }
    l->io = NULL;
}
