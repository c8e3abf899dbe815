/* Internal structures shared by the core files. Not installed.
 *
 * Ownership in one picture:
 *
 *   tl__loop (one per thread running tl_run)
 *     |- task table: chunks of tl__task, indexed by slot; never moves, so a
 *     |  tl__task* stays valid for the loop's life; handles carry slot+gen
 *     |- run queue: FIFO of READY tasks (intrusive, next_ready)
 *     |- timer heap: sleeps and scope deadlines
 *     |- scope records (tl__rec): runtime-owned, reused from a free list;
 *     |  each task has a stack of them (scope_top -> parent -> ...)
 *     |- stack pool, backend (epoll / io_uring), thread pool (lazy)
 *
 * All of it is touched only by the loop's own thread, except the fields
 * marked "atomic" (read by the watchdog) and the cross-thread inbox
 * (guarded by its mutex).
 */
#ifndef TL_INTERNAL_H
#define TL_INTERNAL_H

#include "tulip.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/fiber.h"
#include "core/stack.h"

typedef struct tl__loop tl__loop;
/* The FP control modes (src/core/loop.c, tl__fp_read): x86 MXCSR without
 * its sticky flags + the x87 control word; AArch64 FPCR (x87 unused). */
typedef struct tl__fpctl {
    uint32_t sse, x87;
} tl__fpctl;
typedef struct tl__task tl__task;
typedef struct tl__rec tl__rec;
typedef struct tl__timer tl__timer;

/* ---- intrusive doubly linked list (circular, with a sentinel) --------- */

typedef struct tl__link {
    struct tl__link *prev, *next;
} tl__link;

static inline void tl__list_init(tl__link *h) { h->prev = h->next = h; }
static inline bool tl__list_empty(const tl__link *h) { return h->next == h; }
static inline void tl__list_push(tl__link *h, tl__link *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void tl__list_remove(tl__link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
static inline tl__link *tl__list_pop(tl__link *h)
{
    tl__link *n = h->next;
    if (n == h) return NULL;
    tl__list_remove(n);
    return n;
}
#define tl__container_of(p, type, member) \
    ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* ---- timers (src/timer.c) --------------------------------------------- */

struct tl__timer {
    int64_t deadline;  /* ns on the loop clock */
    uint64_t seq;      /* tie-break: equal deadlines fire in arm order */
    uint32_t index;    /* position in the heap, TL__TIMER_IDLE if unarmed */
    void (*fire)(tl__loop *l, tl__timer *t);
};
#define TL__TIMER_IDLE UINT32_MAX

typedef struct tl__timer_heap {
    tl__timer **items;
    uint32_t count, cap;
    uint64_t seq;
} tl__timer_heap;

void tl__timer_init(tl__timer *t, void (*fire)(tl__loop *, tl__timer *));
int tl__timer_arm(tl__loop *l, tl__timer *t, int64_t deadline);
void tl__timer_disarm(tl__loop *l, tl__timer *t);
/* Earliest deadline, or INT64_MAX. */
int64_t tl__timer_next(const tl__loop *l);
/* Fire every timer whose deadline <= now. Returns how many fired. */
size_t tl__timer_run(tl__loop *l, int64_t now);
void tl__timer_heap_free(tl__timer_heap *h);

/* ---- tasks (src/task.c) ----------------------------------------------- */

enum tl__task_state {
    TL__T_FREE = 0, /* slot unused */
    TL__T_READY,    /* in the run queue (also: spawned, not yet started) */
    TL__T_RUNNING,
    TL__T_WAITING,  /* parked; woken by tl__wake */
    TL__T_DONE,     /* finished, result valid; slot kept until joined */
};

/* How to abort a wait when the task is cancelled. It must undo the wait's
 * registration and (now or later) call tl__wake(t, -ECANCELED). NULL: the
 * wait ignores cancellation. */
typedef void (*tl__cancel_fn)(tl__task *t);

/* A finish notification (wait sets, tl_wait: src/waitset.c). task_finished
 * unlinks each node from t->watchers and calls fn(w, t) once t->result is
 * set, before the joiner is woken and before a group or detached task's
 * slot is freed. fn runs on the scheduler's stack: it may wake tasks,
 * never suspend. A watcher that stops waiting first unlinks its node
 * (tl__list_remove; harmless on an already unlinked node). */
typedef struct tl__watch {
    tl__link link;
    void (*fn)(struct tl__watch *w, tl__task *t);
} tl__watch;

struct tl__task {
    tl__fiber fiber;
    tl__stack *stack;       /* NULL until first run and after finish */
    tl__loop *loop;
    tl_fn fn;
    void *arg;
    tl__task *next_ready;   /* run queue / free-slot list link */

    uint32_t slot, gen;
    uint8_t state;          /* enum tl__task_state */
    uint8_t started;        /* fn has been entered */
    uint8_t detached;       /* free the slot when done */
    uint8_t has_joiner;     /* a tl_join is (or was) waiting */
    uint8_t cancel_requested; /* tl_cancel, or cancelled by its group */
    uint8_t reported;       /* never-joined failure already reported */
    uint8_t cancel_reported; /* ignored-cancel warning printed */
    int result;             /* return value once DONE */
    int wake_result;        /* what tl__park returns */

    tl__cancel_fn on_cancel; /* while WAITING; NULL = uncancellable */
    const char *wait_what;   /* what it waits on (diagnostics) */
    void *wait_site;         /* the user's call site of a lock wait (the
                                lock records it when it is handed over) */
    /* Optional detail for the task dump (src/core/dump.c): what exactly
     * the wait is on (the lock's owner, the pool job...). Set before
     * tl__park by the waiting call, cleared when the task wakes. Writes
     * at most len bytes (NUL included) into buf; runs on the loop's
     * thread while the task is suspended. The I/O layer fills it too
     * ("read on fd 7"). */
    void (*wait_describe)(const tl__task *t, char *buf, size_t len);
    int64_t wait_since;      /* loop tick (l->tick_ns) when it parked */
    tl__link wait_link;      /* for wait queues of primitives */
    void *wait_data;         /* per-primitive payload of the wait */

    tl__task *joiner;        /* the task blocked in tl_join on us */
    tl__link watchers;       /* tl__watch nodes told when we finish */
    tl__rec *scope_top;      /* innermost open scope record */
    tl__rec *group;          /* group we belong to (NULL: the loop's root) */
    tl__link group_link;     /* in group->children */
    int *status_out;         /* group_spawn_ex / gather result pointer */
    struct tl__start *start; /* tl_group_start's waiter, until tl_started
                                or the end (src/group.c) */

    tl__timer timer;         /* tl_sleep */
    int saved_errno;         /* invariant 10 */
    uint32_t ignored_cancels;
    uint32_t io_streak;      /* I/O calls that completed without parking
                                in a row (src/io/op.c yields after a few) */
    int fail_code;           /* code of the latest tl_fail, 0 if none (here,
                                beside the other 4-byte fields: no padding) */
    size_t stack_size;       /* requested; 0 = loop default */
    char *fail_msg;          /* heap, owned */
    char name[32];           /* written with relaxed atomics: the watchdog
                                reads it from another thread */

    /* Kept across slot reuse (after `name`, so task_alloc's memset leaves
     * them): the tl_locks this task holds, so that a task ending with one
     * is reported and the lock's waiters woken (src/sync/sync.c). */
    void **locks;
    uint32_t nlocks, locks_cap;
};

/* ---- scope records (src/scope.c, src/group.c) ------------------------- */

enum tl__rec_kind {
    TL__R_TIMEOUT = 1,
    TL__R_MOVE_ON = 2,
    TL__R_SHIELD = 3,
    TL__R_CANCEL = 4,
    TL__R_GROUP = 5,
    TL__R_GATHER = 6, /* a group whose failures cancel nobody */
};

struct tl__rec {
    tl__rec *parent;     /* next outer record of the owner (or free list) */
    tl__task *owner;
    uint64_t gen;        /* handle generation; bumped when freed */
    uint8_t kind;
    uint8_t live;
    uint8_t cancelled;   /* cancel called: deadline passed, tl_scope_cancel,
                            or (groups) a failure / tl_group_cancel */
    uint8_t finished;    /* group: wait has begun to close it */
    tl__timer timer;     /* deadline (timeout / move-on scopes) */
    int64_t deadline;    /* ns; INT64_MAX / 2 = none */
    const char *file;    /* enter site, for diagnostics */
    int line;
    void *frame;         /* frame address of the entering function */
    void *frame_ret;     /* the return address in that frame's record at
                            enter time; if the slot changes, the function
                            returned (tl__rec_frame_gone) */

    /* groups */
    tl__link children;
    size_t nchildren;
    tl__task *waiter;    /* the owner, parked in tl_group_wait */
    tl_error *errors;    /* real failures, in the order they happened */
    size_t nerrors, errors_cap;
    size_t ncancelled;   /* children that ended with -ECANCELED */
};

/* ---- I/O records shared by the I/O layer and the backends (src/io/) -- *
 *
 *   tl__fd   one per file descriptor tulip has seen, in a table indexed by
 *            the fd number (l->io->fds); its generation is bumped when
 *            tulip forgets the fd (tl_close, tl_fd_forget), so an event
 *            tagged with an older generation is dropped, never applied to
 *            whatever now has that number;
 *   tl__op   one kernel request of the completion backend (io_uring), in a
 *            table of slots (l->io->ops); runtime memory that lives until
 *            the request's own completion arrived, also after a cancel
 *            (invariant 1); its user_data is slot + generation.
 *
 * The backends call up into the I/O layer through exactly two entry
 * points, tl__fd_event (readiness, epoll) and tl__op_complete (a
 * completion, io_uring); everything else goes down through tl__backend. */

/* Readiness bits (the public TL_READABLE / TL_WRITABLE are the first two). */
#define TL__EV_IN 0x1u
#define TL__EV_OUT 0x2u
#define TL__EV_ERR 0x4u /* error or hang-up: both directions may proceed */
#define TL__EV_HUP 0x8u /* epoll: the event said RDHUP, HUP, ERR or PRI (an
                           end, an error or urgent data is readable: a short
                           read no longer means the socket is drained);
                           kept in tl__fd.hup, never in ready */

enum { TL__DIR_R = 0, TL__DIR_W = 1 };

typedef struct tl__fd {
    int fd;
    uint32_t gen;          /* >= 1; bumped when tulip forgets the fd */
    uint8_t live;          /* tulip knows this fd */
    uint8_t registered;    /* epoll: in the epoll set */
    uint8_t ready;         /* TL__EV_* edges seen and not yet consumed: an
                              edge that came with no waiter is kept here */
    uint8_t is_sock;       /* 0 unknown, 1 a socket, 2 a pipe or FIFO,
                              3 anything else pollable, 4 a regular file
                              or block device (src/io/ops.c) */
    uint32_t mode;         /* epoll: the events currently registered */
    uint8_t edge_in;       /* epoll: registered edge-triggered with IN */
    uint8_t bytes;         /* 0 unknown, 1 a byte stream (SOCK_STREAM
                              socket, pipe), 2 anything else */
    uint8_t drained;       /* epoll: a read of this byte stream came back
                              short while edge_in, and no IN edge, no
                              re-registration since: the next read parks
                              before trying (the EAGAIN it would meet
                              costs a system call) */
    uint8_t hup;           /* epoll: an event said HUP/RDHUP/ERR/PRI
                              (sticky for the fd's life): never drained */
    tl__task *waiter[2];   /* the task using each direction (parked for
                              readiness, or owning an op): one at a time */
    tl__link ops;          /* io_uring: this fd's ops in the kernel */
    struct tl_fd_watch *watch; /* the persistent watcher, or NULL */
} tl__fd;

/* Tags: epoll_event.data.u64 of a record is gen << 32 | fd (0 is the
 * wake eventfd: generations start at 1); an op's user_data is
 * gen << 32 | slot << 2 | 2 (0 and 1 are the backend's own). */
static inline uint64_t tl__fd_tag(const tl__fd *r)
{
    return (uint64_t)r->gen << 32 | (uint32_t)r->fd;
}

enum tl__op_kind {
    TL__OP_POLL = 1, /* poll_mask; level-triggered one-shot */
    TL__OP_READ,     /* buf, len, off (-1: the file position) */
    TL__OP_WRITE,
    TL__OP_READV,    /* msg.msg_iov / msg_iovlen, off */
    TL__OP_WRITEV,
    TL__OP_RECV,     /* buf, len, flags */
    TL__OP_SEND,
    TL__OP_RECVMSG,  /* msgp, flags */
    TL__OP_SENDMSG,
    TL__OP_ACCEPT,   /* addr, addrlen, flags */
    TL__OP_CONNECT,  /* addr, alen */
    TL__OP_SHUTDOWN, /* flags = how */
    TL__OP_OPENAT,   /* fd = dirfd, addr = path, flags, len = mode */
    TL__OP_STATX,    /* fd = dirfd, addr = path, flags, poll_mask = mask,
                        buf = struct statx */
    TL__OP_FSYNC,    /* flags: 1 = fdatasync */
    TL__OP_ACCEPT_MULTI, /* multishot accept4(flags), no address: one
                            completion per connection, F_MORE while armed */
    TL__OP_RECV_MULTI,   /* multishot recv into the loop's provided-buffer
                            ring: each completion names a buffer (F_BUFFER,
                            its id in flags >> TL__CQE_BUFFER_SHIFT) */
};

/* Completion flags as io_uring posts them (the values of IORING_CQE_F_*,
 * checked in src/backend/io_uring.c), for ops with their own done. */
#define TL__CQE_F_BUFFER 0x1u  /* a provided buffer was used */
#define TL__CQE_F_MORE 0x2u    /* a multishot op stays armed */
#define TL__CQE_BUFFER_SHIFT 16

enum tl__op_state {
    TL__OPS_FREE = 0,
    TL__OPS_PENDING,    /* waiting for room in the submission queue */
    TL__OPS_SUBMITTED,  /* in the SQ or in the kernel */
    TL__OPS_CANCELLING, /* a cancel was asked for; its completion follows */
};

typedef struct tl__op tl__op;
struct tl__op {
    uint32_t slot, gen;     /* user_data: see tl__op_ud */
    uint8_t kind;           /* enum tl__op_kind */
    uint8_t state;          /* enum tl__op_state */
    uint8_t orphan;         /* nobody waits: free it at its completion */
    uint8_t closed;         /* its fd was closed through tulip */
    uint8_t cancel_pending; /* the cancel request waits for an SQE */
    uint8_t counted;        /* counted in l->inflight */
    uint8_t abandon;        /* touches only runtime memory: a cancelled
                               owner leaves at once, the op becomes an
                               orphan (fd waits, runtime-owned buffers) */
    uint8_t cancel_asked;   /* the owner was cancelled; waits for the
                               op's own completion (invariant 1) */
    uint8_t dirs;           /* record slots it holds: 1 << TL__DIR_* */
    int fd;
    tl__fd *rec;            /* its record (records never move) */
    uint32_t fd_gen;        /* the record's generation at submit */
    tl__task *owner;        /* parked on it, or NULL */
    /* Called with the completion; the default (NULL) wakes the owner. */
    void (*done)(tl__loop *l, tl__op *op, int res, unsigned flags);
    void *data;             /* done's own (a watcher) */
    tl__link fd_link;       /* in its record's ops */
    tl__link pend_link;     /* in the backend's pending list (and the
                               I/O layer's free list while FREE) */
    /* Arguments. Caller memory (buf, iov, addr) lives as long as the op:
     * its owner waits for the completion (invariant 1). */
    void *buf;
    size_t len;
    int64_t off;
    int flags;
    unsigned poll_mask;
    struct msghdr *msgp;    /* RECVMSG/SENDMSG: &msg or the caller's */
    void *addr;
    socklen_t *addrlen;
    socklen_t alen;
    struct msghdr msg;      /* runtime-owned header (recvfrom, sendto,
                               readv on sockets) */
    struct iovec iov;
    int res;                /* the completion's result */
};

static inline uint64_t tl__op_ud(const tl__op *op)
{
    return (uint64_t)op->gen << 32 | (uint64_t)op->slot << 2 | 2u;
}

/* Entry points the backends call (src/io/fd.c, src/io/op.c). On the
 * scheduler's stack, from the backend's poll. */
void tl__fd_event(tl__loop *l, uint64_t tag, unsigned ev);
void tl__op_complete(tl__loop *l, uint64_t ud, int res, unsigned flags);

/* ---- backend (src/backend/) ------------------------------------------- */

typedef struct tl__backend {
    const char *name;
    /* Make the backend's state in l->be. 0 or -errno (e.g. -ENOSYS, -EPERM
     * when the kernel interface is missing or forbidden). */
    int (*open)(tl__loop *l);
    void (*close)(tl__loop *l);
    /* Wait up to timeout_ns (-1: forever, 0: just look) for I/O and
     * wake-ups; submit what is queued first, in the same system call where
     * the kernel allows; dispatch what is ready (tl__fd_event,
     * tl__op_complete). Returns events handled or -errno. An unexpected
     * error of the kernel wait is handled inside: fall back, or abort
     * loudly; never returned to be spun on. */
    int (*poll)(tl__loop *l, int64_t timeout_ns);

    /* 1: operations are kernel requests (submit/cancel); 0: readiness
     * (fd_ctl), the I/O layer makes the system calls itself. */
    int completion;
    /* Readiness backends: put r's fd in the kernel's set with `events`
     * (TL__EV_IN|OUT), edge-triggered if `edge`, else level-triggered;
     * events 0 takes it out. 0 or -errno. */
    int (*fd_ctl)(tl__loop *l, tl__fd *r, unsigned events, int edge);
    /* Completion backends: queue op (an SQE now, or on the pending list
     * when the submission queue is full: back-pressure, never an error);
     * it reaches the kernel at the next poll. */
    void (*submit)(tl__loop *l, tl__op *op);
    /* Ask the kernel to cancel op (already submitted); the op's own
     * completion follows. A cancel that finds the SQ full is kept on the
     * pending list. An op still on the pending list is taken off it and
     * 1 returned (the kernel never saw it); else 0. */
    int (*cancel)(tl__loop *l, tl__op *op);
    /* Hand what is queued to the kernel now (tl_close: before close(2),
     * so no queued request can meet a reused fd number). */
    void (*flush)(tl__loop *l);
    /* Completion backends: 1 if the kernel can do ops of `kind` (the
     * ring's probe), else 0 (the caller uses the thread pool). */
    int (*has_op)(tl__loop *l, int kind);
    /* Completion backends: the loop's provided-buffer ring for
     * TL__OP_RECV_MULTI, made on first use. bufs_ready: 0, or -errno
     * (-EOPNOTSUPP where the kernel lacks buffer rings). buf_addr: the
     * bytes of buffer `bid` (a completion's flags >> TL__CQE_BUFFER_SHIFT);
     * buf_put hands it back to the kernel once they were copied out. */
    int (*bufs_ready)(tl__loop *l);
    void *(*buf_addr)(tl__loop *l, unsigned bid);
    void (*buf_put)(tl__loop *l, unsigned bid);
} tl__backend;

/* Wake-ups from other threads and signal handlers: the loop owns one
 * eventfd (l->wake_fd) that every backend watches for readability.
 * tl__loop_wake writes it with write(2) — any thread, async-signal-safe,
 * and never through io_uring (punted to a worker: tens of µs); a backend
 * that sees it readable calls tl__loop_wake_drain. */
void tl__loop_wake(tl__loop *l);
void tl__loop_wake_drain(tl__loop *l);

extern const tl__backend tl__backend_epoll;
#ifdef TL_HAVE_LIBURING
extern const tl__backend tl__backend_io_uring;
#endif

/* ---- the loop (src/loop.c) -------------------------------------------- */

/* A function queued from another thread (tl__loop_post), run on the loop. */
typedef struct tl__post {
    struct tl__post *next;
    void (*fn)(tl__loop *l, void *arg);
    void *arg;
} tl__post;

struct tl__loop {
    uint32_t id;
    unsigned fork_gen;       /* tl__fork_gen when made; differs => dead */
    tl__task *current;       /* running task, NULL in the scheduler */
    tl__fiber sched;         /* the thread's own stack */

    tl__task *runq_head, *runq_tail; /* READY tasks, FIFO */
    tl__task *batch;         /* the rest of this iteration's READY tasks
                                (run_ready); a suspending task switches
                                straight to the next one */

    tl__task **chunks;       /* task table: chunks of TL__CHUNK tasks */
    uint32_t nchunks, nslots;
    void **tbl_maps;         /* huge-page regions later chunks are cut
                                from (task.c, chunk_alloc) */
    size_t *tbl_map_lens;
    uint32_t ntbl_maps;
    char *tbl_cur;           /* the newest region's uncut part */
    size_t tbl_left;
    tl__task *free_slots;    /* linked by next_ready */
    uint32_t retired_slots;  /* slots whose generation ran out (task.c) */
    size_t live;             /* tasks not DONE */
    size_t zombies;          /* DONE, not yet joined/freed */
    tl__task *main_task;

    tl__rec *free_recs;      /* scope record free list */

    tl__timer_heap timers;
    int virtual_clock;
    int64_t vnow;            /* virtual clock, ns */
    int64_t epoch;           /* real monotonic ns at loop start */
    int inflight;            /* I/O and pool jobs the kernel/threads owe us */
    int io_waiters;          /* tasks waiting on fds registered with the
                                backend; while > 0 the kernel is polled
                                every iteration (see must_poll) */
    int io_watchers;         /* active fd watchers (tl_fd_watch): like
                                io_waiters, the kernel is polled every
                                iteration while > 0 */
    int io_queued;           /* requests prepared for the kernel and not
                                yet submitted (io_uring SQEs, pending
                                cancels): the next iteration polls */
    uint64_t io_batch;       /* bumped by each backend poll: a watcher
                                made during a batch ignores its events */
    struct tl__io *io;       /* the I/O layer's tables (src/io/), lazy */

    const tl__backend *backend;
    void *be;                /* backend state */
    int wake_fd;             /* eventfd: tl__loop_wake, watched by the
                                backend */

    tl__stack_pool *stacks;
    size_t stack_default;
    int guard;
    struct tl__census *census; /* TULIP_STACK_CENSUS=1 (src/stack_report.c), else NULL */

    struct tl_pool *pool;    /* thread pool (lazy), see src/pool.c */
    int own_pool;

    pthread_mutex_t inbox_lock;
    tl__post *inbox;         /* cross-thread calls, guarded by inbox_lock */
    _Atomic int inbox_pending; /* set after a post (release), cleared by the
                                  loop before it drains (acquire): lets an
                                  idle iteration skip the mutex */
    _Atomic size_t calls_queued; /* tl_loop_call posts not yet taken
                                    (src/call.c), bounded by call_cap */
    size_t call_cap;

    int sigint_installed;
    int sigpipe_was_blocked; /* SIGPIPE was blocked in the thread before
                                tl_run blocked it (then left so after) */
    volatile sig_atomic_t sigint_pending; /* set by the SIGINT handler */
    int sigint_cancelled;    /* Ctrl-C cancelled main (its report says so) */
    int closing;             /* tl_run is tearing down: new tasks start
                                cancelled */
    int deadlock_reported;
    int64_t tick_ns;         /* loop clock at a recent iteration (every
                                iteration that polls or has timers, else
                                every 64th): wait_since's source, so that
                                parking reads no clock (invariant 9) */
    unsigned tick_skips;
    int dump_signal;         /* signal that asks for a dump, 0 none */
    _Atomic int dump_pending; /* set by that signal's handler (any
                                 thread), cleared by the loop before it
                                 writes the dump */
    int64_t stall_since;     /* virtual clock: nothing ready, nothing
                                moving since (real ns), or 0 */
    int64_t trim_put_off;    /* loop clock when an idle trim was first put
                                off for a timer due soon, or 0 */
    tl__link gens;           /* tl_gen objects not yet closed (src/sync/gen.c) */
    tl__link waitsets;       /* tl_waitset objects not yet closed */
    unsigned handoffs;       /* direct handoffs this iteration (capped) */
    tl__fpctl fp_ctl;        /* FP control state at start (debug check) */
    int *errno_loc;          /* &errno of the loop's thread: a switch saves
                                and restores it without two calls to
                                __errno_location (invariant 10) */
    size_t nostack;          /* tasks that could not get a stack */
    struct tl_loop *handle;  /* tl_loop_ref's handle (src/call.c), or NULL */

    /* Watchdog (invariant 9). The loop stores, the watchdog loads; relaxed
     * is enough: the watchdog only needs to see that they stopped moving. */
    _Atomic uint64_t pulse;      /* bumped at every task resume */
    _Atomic uint32_t running;    /* slot+1 of the running task, 0 = none */
    _Atomic(tl__task *) running_task;
    struct tl__loop *wd_next;    /* watchdog registry link (its mutex) */
    uint64_t wd_seen_pulse;      /* watchdog's own state */
    int64_t wd_since_ns;
    int wd_reported;
    pthread_t thread;
    struct tl__loop *reg_next; /* tl__loop_registry link (its lock) */
};

/* Every loop between tl_run's start and end, newest first: what a
 * debugger walks to list tasks (tools/tulip-gdb.py), since a core file or
 * a stopped process has no running code to ask. Guarded by a mutex in
 * src/core/loop.c; a debugger reads it with the process stopped. */
extern tl__loop *tl__loop_registry;
/* How many loops the registry holds: read without its lock by code that
 * asks "does any loop run in this process?" (src/sync/waitq.h). */
extern _Atomic int tl__loops_running;

/* Make t the running task. The watchdog reads these with relaxed loads;
 * no clock is read on the switch path (invariant 9). */
static inline void tl__set_running(tl__loop *l, tl__task *t)
{
    l->current = t;
    t->state = TL__T_RUNNING;
    atomic_store_explicit(&l->running_task, t, memory_order_relaxed);
    atomic_store_explicit(&l->running, t->slot + 1, memory_order_relaxed);
    atomic_store_explicit(&l->pulse,
                          atomic_load_explicit(&l->pulse,
                                               memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Debug builds: name a task that suspends with a changed FP control
 * state — rounding, flush-to-zero, denormals-are-zero, exception masks,
 * x87 precision (FP control state is not switched, invariant 10) — and
 * restore the loop's. A no-op with NDEBUG. */
#ifdef NDEBUG
static inline void tl__fp_check(tl__loop *l, tl__task *t)
{
    (void)l; /* a call to an empty function at every switch otherwise */
    (void)t;
}
#else
void tl__fp_check(tl__loop *l, tl__task *t);
#endif
tl__fpctl tl__fp_read(void);

#define TL__CHUNK_BITS 10
#define TL__CHUNK (1u << TL__CHUNK_BITS)

/* The running loop of this thread (NULL outside tl_run). */
extern __thread tl__loop *tl__self;

static inline tl__task *tl__slot_task(tl__loop *l, uint32_t slot)
{
    return &l->chunks[slot >> TL__CHUNK_BITS][slot & (TL__CHUNK - 1)];
}

/* Monotonic real clock in ns. */
int64_t tl__clock_ns(void);
/* The loop clock in ns (virtual or real since the loop began). */
int64_t tl__loop_now(const tl__loop *l);
int64_t tl__seconds_to_ns(double s);
/* "Forever" on the loop clock (no timer is armed for it). */
#define TL__FOREVER (INT64_MAX / 2)
/* The one rule for time arguments (tulip.h, Model: "Time"), src/time.c:
 * NaN -> -EINVAL (with a diagnostic naming `what`); a duration <= 0 or a
 * deadline already past -> now; +INFINITY (or past ~292 years) ->
 * TL__FOREVER. *out: the deadline in ns on l's clock. 0 or -EINVAL. */
int tl__time_after(const tl__loop *l, double seconds, const char *what,
                   int64_t *out);
int tl__time_at(double when, const char *what, int64_t *out);

/* The running task, or NULL after printing the "outside a task" misuse
 * diagnostic naming `what` (invariant 8). Also refuses a loop inherited
 * across fork(). Inline below (after tl__loop_forked): every suspending
 * call starts with it; the slow path only prints. */
static inline tl__task *tl__task_self(const char *what);
tl__task *tl__task_self_slow(const char *what);
/* What a call must return when tl__task_self failed: TL_EFORK (the loop
 * was inherited across fork()) or TL_ENOTASK; 0 when it would succeed. */
int tl__not_task_error(void);

/* The running task, if it may use an object that belongs to loop `owner`
 * (NULL: not known yet); else NULL with *err = TL_ENOTASK / TL_EFORK /
 * -EXDEV and a diagnostic naming `object`. */
tl__task *tl__task_self_in(const tl__loop *owner, const char *object,
                           const char *what, int *err);

/* Resolve a handle to its live task, or NULL after a diagnostic; *err gets
 * -ESRCH (stale), -EXDEV (another loop), TL_ENOTASK. */
tl__task *tl__task_lookup(tl_task h, const char *what, int *err);

/* Allocate a task (state READY but not queued). NULL on ENOMEM. */
tl__task *tl__task_alloc(tl__loop *l, tl_fn fn, void *arg,
                         const tl_spawn_opts *opts);
void tl__task_enqueue(tl__loop *l, tl__task *t);
/* Free a DONE task's slot (bumps the generation). */
void tl__task_free(tl__loop *l, tl__task *t);
/* Frees the task table: every chunk, its records' heap blocks, its regions. */
void tl__task_table_free(tl__loop *l);
/* The largest generation a task slot may reach (UINT32_MAX; tests lower
 * it): a slot that would pass it is retired, so no handle ever aliases. */
extern uint32_t tl__task_gen_limit;
/* Describe a task: "'name'" or "#slot". */
const char *tl__task_label(const tl__task *t, char *buf, size_t len);
void tl__task_set_name(tl__task *t, const char *name);
/* Describe t's failure `code` (name or "#slot", its tl_fail message if it
 * belongs to that code). */
void tl__error_fill(const tl__task *t, int code, tl_error *err);
/* `from` failed with `code` and `to` is handed that failure (a generator's
 * consumer): give `to` the tl_fail message too, as if it had called
 * tl_fail(code, msg) itself, so tl_fail_message(code) finds it there and
 * it travels on with the code. No-op without a message for that code. */
void tl__fail_pass(tl__task *to, const tl__task *from, int code);
/* Report a failed task nobody joined (invariant 7), once. */
void tl__report_unjoined(tl__task *t);

/* Suspend the running task until tl__wake. on_cancel NULL = uncancellable.
 * Returns the wake result. */
int tl__park(tl__task *t, tl__cancel_fn on_cancel, const char *what);
/* Make a WAITING task READY with `result`. */
void tl__wake(tl__task *t, int result);
/* The cancellation point every suspending call starts with: 0, or
 * -ECANCELED after yielding once (invariant 2a). */
int tl__checkpoint_slow(tl__task *t, const char *what, void *site);
static inline int tl__checkpoint(tl__task *t, const char *what, void *site)
{
    /* Inline: the test every suspending call makes, true almost always. */
    if (__builtin_expect(!t->scope_top && !t->cancel_requested, 1)) return 0;
    return tl__checkpoint_slow(t, what, site);
}
/* Canary strategy: abort with "possible stack overflow in task ..." if
 * t's canary was overwritten (a no-op for guarded stacks). Called at every
 * suspension, handoff and task end. */
void tl__task_check_stack(const tl__task *t);
/* Yield: requeue at the tail and switch to the scheduler. */
void tl__yield_now(tl__task *t);
/* Park self (as tl__park) and switch straight to `to`, a WAITING task that
 * is woken with `to_result`, without a trip through the scheduler
 * (generators). Falls back to wake + park once TL__HANDOFF_CAP handoffs
 * ran in this loop iteration, or when `to` never ran, so a pair of tasks
 * never starves the rest or the poller (invariant 9). */
#define TL__HANDOFF_CAP 64
int tl__handoff(tl__task *self, tl__cancel_fn on_cancel, const char *what,
                tl__task *to, int to_result);

/* Is t cancelled at its current scope depth? */
bool tl__task_cancelled(const tl__task *t);
/* Fire the deadlines of t's visible scopes (innermost out to the first
 * shield) that have passed on the loop clock but whose timers have not run
 * yet (the task ran past them without suspending). Reads the clock only
 * when such a scope has a deadline. Returns tl__task_cancelled(t). */
bool tl__scope_expire(tl__task *t);
/* tl_cancel's core: mark, propagate into its groups, abort its wait. */
void tl__task_cancel(tl__task *t);
/* A cancel became effective somewhere in t's scope stack: abort its wait
 * if it is waiting cancellably and is now cancelled. */
void tl__task_poke(tl__task *t);

/* Cancel everything inside record r of t (r NULL: the whole task): mark
 * group records above r (not behind a shield) and cancel their children. */
void tl__scope_propagate(tl__task *t, tl__rec *r);

/* Record allocation (src/scope.c). */
tl__rec *tl__rec_alloc(tl__loop *l, tl__task *owner, int kind,
                       const char *file, int line, void *frame);
void tl__rec_free(tl__loop *l, tl__rec *r);
void tl__rec_push(tl__task *t, tl__rec *r);
/* Has the function that entered r returned (while r is still open)?
 * Cheap: the entering frame's address is above the caller's stack pointer,
 * or (x86-64, AArch64: the frame record is {saved fp, return address}) the
 * return-address slot of that frame no longer holds what it held at enter
 * time because a later call reused the memory. */
bool tl__rec_frame_gone(const tl__rec *r, const void *sp);
/* Check that r is t's innermost record; else diagnose + abort. */
void tl__rec_pop(tl__task *t, tl__rec *r, const char *what);
/* Called when a task's function returned: report open scopes, cancel and
 * wait for open groups. Runs on the task's stack. */
void tl__scopes_unwind(tl__task *t);

/* Groups (src/group.c). */
int tl__group_spawn(tl__rec *g, tl__task *t);
/* Scheduler hook: a child of group g finished. */
void tl__group_child_done(tl__loop *l, tl__rec *g, tl__task *c);
/* Wait for every child of g (uncancellable). */
void tl__group_drain(tl__task *self, tl__rec *g);
/* The group failed or was cancelled: mark it, cancel children and body. */
void tl__group_cancel(tl__rec *g);
/* Cancel the children only (an enclosing scope was cancelled). */
void tl__group_cancel_children(tl__rec *g);
/* Is r's owner cancelled as seen from inside r (records outward to the
 * first shield, then the task's own flag)? */
bool tl__rec_cancelled(const tl__rec *r);

/* Loop (src/loop.c). */
int tl__loop_post(tl__loop *l, void (*fn)(tl__loop *, void *), void *arg);
void tl__loop_drain_inbox(tl__loop *l);

/* Misuse and diagnostics (src/diag.c): one line on stderr, prefixed
 * "tulip: ". */
void tl__diag(const char *fmt, ...) TL_PRINTF(1, 2);
/* A code address as addr2line takes it: "sym+0x1f (module+0x11f2)" or
 * "module+0x11f2" where no symbol covers it; the offset is relative to
 * the module's load bias (addr2line -e module 0x11f2). `ret` non-zero:
 * pc is a return address, so the call instruction (pc - 1) is looked up.
 * Returns buf. */
const char *tl__symbolize(const void *pc, int ret, char *buf, size_t len);

/* The task dump (src/core/dump.c). Writes the dump of loop l to out;
 * every line starts with `prefix`. Returns the number of tasks. */
size_t tl__dump(tl__loop *l, FILE *out, const char *prefix);
/* The dump as tulip diagnostics: one write(2) of the whole text to
 * stderr, every line prefixed "tulip: ". */
void tl__dump_diag(tl__loop *l);
/* The dump signal: install the handler for l (cfg: enum in tl_config,
 * else $TULIP_DUMP_SIGNAL), and undo it at tl_run's end. */
void tl__dump_signal_install(tl__loop *l, int cfg_signal);
void tl__dump_signal_remove(tl__loop *l);
_Noreturn void tl__fatal(const char *fmt, ...) TL_PRINTF(1, 2);

/* tl_run's end, once no task is live: report every generator and wait
 * set nobody closed, and free them (src/sync/gen.c, src/sync/waitset.c). */
void tl__gen_reap_unclosed(tl__loop *l);
void tl__waitset_reap_unclosed(tl__loop *l);

/* t ended holding tl_locks (t->nlocks > 0): report each and abandon it,
 * waking its waiters with -EOWNERDEAD (src/sync/sync.c). Runs on the
 * scheduler's stack from task_finished. */
void tl__sync_task_ended(tl__task *t);

/* tl_run's end: detach the tl_loop handle (src/call.c). */
void tl__loop_handle_close(tl__loop *l);

/* Fork detection (src/loop.c). */
extern _Atomic unsigned tl__fork_gen;

/* Was l inherited across fork()? Then it is dead in this process: its
 * poller, eventfd and ring are the parent's, so nothing may run, poll or
 * write through it (src/loop.c stops its scheduler, every call refuses
 * with TL_EFORK). One relaxed load: checked at every suspension. */
static inline bool tl__loop_forked(const tl__loop *l)
{
    return l->fork_gen !=
           atomic_load_explicit(&tl__fork_gen, memory_order_relaxed);
}

static inline tl__task *tl__task_self(const char *what)
{
    tl__loop *l = tl__self;
    if (__builtin_expect(l && l->current && !tl__loop_forked(l), 1))
        return l->current;
    return tl__task_self_slow(what);
}

/* Ctrl-C (src/signal.c). */
int tl__sigint_install(tl__loop *l);
void tl__sigint_restore(tl__loop *l);
/* SIGPIPE blocked in the loop's thread for the loop's life (signal.c). */
void tl__sigpipe_block(tl__loop *l);
void tl__sigpipe_restore(tl__loop *l);
void tl__sigint_dispatch(tl__loop *l);
void tl__sigint_atfork_child(void);
/* Test hook: called by the SIGINT handler while it holds the loop. */
extern void (*volatile tl__sigint_test_hook)(void);

/* Stack reports (src/stack_report.c): install the overflow report's
 * SIGSEGV handler once per process; the per-loop stack census. */
void tl__stack_report_install(void);
struct tl__census *tl__census_new(void); /* NULL unless TULIP_STACK_CENSUS */
void tl__census_note(struct tl__census *c, const tl__task *t);
void tl__census_print(tl__loop *l);
void tl__census_free(tl__loop *l);

/* The I/O layer (src/io/). tl__io_owed: kernel requests not yet
 * completed. tl__io_loop_close: after teardown, wait (bounded, naming
 * what is left) until the kernel owes nothing, then free the tables; a
 * request still owed after the bound keeps its memory (leaked rather
 * than freed under the kernel). */
size_t tl__io_owed(const tl__loop *l);
void tl__io_loop_close(tl__loop *l);

/* Watchdog (src/watchdog.c). */
void tl__watchdog_register(tl__loop *l);
void tl__watchdog_unregister(tl__loop *l);

#endif
