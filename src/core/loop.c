/* The loop: tl_run, one iteration, teardown, the clock, cross-thread posts
 * and fork detection.
 *
 * One iteration (the order matters; see DESIGN.md "sched.c"):
 *
 *   1. run every task that was READY when the iteration began, FIFO; tasks
 *      that become ready meanwhile wait for the next iteration, so a task
 *      that yields in a loop cannot starve the poller;
 *   2. poll the backend: timeout 0 if something is ready, else until the
 *      next timer (virtual clock: look, then jump to the next timer when
 *      nothing is ready and nothing is in flight);
 *   3. run cross-thread posts and Ctrl-C;
 *   4. fire due timers (sleeps wake, deadlines cancel their scopes).
 */
#include "internal.h"

#include <fenv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

__thread tl__loop *tl__self;
__attribute__((used)) tl__loop *tl__loop_registry;
_Atomic int tl__loops_running;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static void registry_add(tl__loop *l)
{
    pthread_mutex_lock(&registry_lock);
    l->reg_next = tl__loop_registry;
    tl__loop_registry = l;
    atomic_fetch_add_explicit(&tl__loops_running, 1, memory_order_relaxed);
    pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(tl__loop *l)
{
    pthread_mutex_lock(&registry_lock);
    for (tl__loop **p = &tl__loop_registry; *p; p = &(*p)->reg_next)
        if (*p == l) {
            *p = l->reg_next;
            atomic_fetch_sub_explicit(&tl__loops_running, 1,
                                      memory_order_relaxed);
            break;
        }
    pthread_mutex_unlock(&registry_lock);
}
_Atomic unsigned tl__fork_gen;
static _Atomic uint32_t next_loop_id = 1;

/* Thread pool hooks (src/pool.c): attach to a shared tl_config.pool;
 * wait for the jobs this loop is still owed and free its own pool. */
void tl__pool_loop_open(tl__loop *l) __attribute__((weak));
void tl__pool_loop_close(tl__loop *l) __attribute__((weak));

/* ---- clock -------------------------------------------------------------- */

int64_t tl__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t tl__loop_now(const tl__loop *l)
{
    return l->virtual_clock ? l->vnow : tl__clock_ns() - l->epoch;
}

int64_t tl__seconds_to_ns(double s)
{
    if (isnan(s) || s <= 0) return 0;
    if (s >= 9.2e9) return INT64_MAX / 2; /* "forever", with room to add */
    return (int64_t)(s * 1e9);
}

double tl_now(void)
{
    tl__loop *l = tl__self;
    if (!l) return (double)tl__clock_ns() / 1e9;
    return (double)tl__loop_now(l) / 1e9;
}

/* ---- fork --------------------------------------------------------------- */

static void on_fork_child(void)
{
    /* Every loop inherited by this child is dead: its epoll set and rings
     * belong to the parent. Tasks notice at their next tulip call. */
    atomic_fetch_add_explicit(&tl__fork_gen, 1, memory_order_relaxed);
    /* Another thread may have held the registry lock at the fork; the
     * inherited loops are dead here anyway. */
    pthread_mutex_init(&registry_lock, NULL);
    tl__loop_registry = NULL;
    atomic_store_explicit(&tl__loops_running, 0, memory_order_relaxed);
    tl__sigint_atfork_child();
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void install_fork_handler(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

/* ---- wake-ups ----------------------------------------------------------- */

void tl__loop_wake(tl__loop *l)
{
    uint64_t one = 1;
    ssize_t r = write(l->wake_fd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is saturated, the loop wakes anyway */
}

void tl__loop_wake_drain(tl__loop *l)
{
    uint64_t v;
    ssize_t r = read(l->wake_fd, &v, sizeof v);
    (void)r; /* EAGAIN: an earlier drain took it already */
}

/* ---- cross-thread posts ------------------------------------------------- */

int tl__loop_post(tl__loop *l, void (*fn)(tl__loop *, void *), void *arg)
{
    tl__post *p = malloc(sizeof *p);
    if (!p) return -ENOMEM;
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&l->inbox_lock);
    p->next = l->inbox;
    l->inbox = p;
    pthread_mutex_unlock(&l->inbox_lock);
    atomic_store_explicit(&l->inbox_pending, 1, memory_order_release);
    tl__loop_wake(l);
    return 0;
}

void tl__loop_drain_inbox(tl__loop *l)
{
    /* A plain load first: the exchange is a locked instruction, too dear
     * for every iteration of a busy loop. */
    if (!atomic_load_explicit(&l->inbox_pending, memory_order_relaxed) ||
        !atomic_exchange_explicit(&l->inbox_pending, 0, memory_order_acquire))
        return;
    pthread_mutex_lock(&l->inbox_lock);
    tl__post *p = l->inbox;
    l->inbox = NULL;
    pthread_mutex_unlock(&l->inbox_lock);
    /* Reverse to run posts in the order they were made. */
    tl__post *rev = NULL;
    while (p) {
        tl__post *n = p->next;
        p->next = rev;
        rev = p;
        p = n;
    }
    while (rev) {
        tl__post *n = rev->next;
        rev->fn(l, rev->arg);
        free(rev);
        rev = n;
    }
}

/* ---- running tasks ------------------------------------------------------ */

static void task_main(void *arg)
{
    tl__task *t = arg;
    tl__fiber_started(&t->fiber);
    t->started = 1;
    int rc = t->fn(t->arg);
    tl__scopes_unwind(t); /* report open scopes, close open groups */
    t->result = rc;
    t->state = TL__T_DONE;
    tl__fiber_switch(&t->fiber, &t->loop->sched, 1);
    abort(); /* a finished task is never resumed */
}


/* The task returned (or could not start): release its stack, tell whoever
 * waits. Runs on the scheduler's stack. */
static void task_finished(tl__loop *l, tl__task *t)
{
    if (t->stack) {
        /* A canary-guarded task that overflowed and returned without
         * suspending again: the last chance to say so. */
        tl__task_check_stack(t);
        if (l->census) tl__census_note(l->census, t);
        tl__fiber_release(&t->fiber);
        tl__stack_put(l->stacks, t->stack);
        t->stack = NULL;
    }
    if (t->timer.index != TL__TIMER_IDLE) tl__timer_disarm(l, &t->timer);
    if (t->nlocks) tl__sync_task_ended(t); /* it abandoned tl_locks */
    l->live--;
    if (t->status_out) *t->status_out = t->result;
    /* Whoever watches t (wait sets, tl_wait): each node is unlinked before
     * its callback runs, so the callback may free it. */
    for (tl__link *n; (n = tl__list_pop(&t->watchers));) {
        tl__watch *w = tl__container_of(n, tl__watch, link);
        w->fn(w, t);
    }
    if (t->group) {
        tl__group_child_done(l, t->group, t); /* reaps the slot */
        return;
    }
    if (t->detached) {
        tl__report_unjoined(t);
        tl__task_free(l, t);
        return;
    }
    l->zombies++;
    if (t->joiner && t->joiner->state == TL__T_WAITING) tl__wake(t->joiner, 0);
}

static int start_task(tl__loop *l, tl__task *t)
{
    size_t size = t->stack_size ? t->stack_size : l->stack_default;
    int rc = tl__stack_get(l->stacks, size, &t->stack);
    if (rc < 0) {
        t->stack = NULL;
        return rc;
    }
    tl__fiber_make(&t->fiber, t->stack->lo, (size_t)(t->stack->hi -
                   t->stack->lo), task_main, t);
    return 0;
}

static void resume(tl__loop *l, tl__task *t)
{
    if (!t->stack && !t->started) {
        int rc = start_task(l, t);
        if (rc < 0) {
            /* Under memory pressure thousands of tasks may fail at once:
             * name the first few, count the rest (reported at teardown). */
            char label[48];
            if (l->nostack++ < 3)
                tl__diag("task %s could not get a stack: %s; it never ran "
                         "(its status is %d)", tl__task_label(t, label,
                         sizeof label), tl_strerror(rc), rc);
            t->result = rc;
            t->state = TL__T_DONE;
            task_finished(l, t);
            return;
        }
    }
    tl__set_running(l, t);
    *l->errno_loc = t->saved_errno; /* invariant 10 */
    tl__fiber_switch(&l->sched, &t->fiber, 0);
    if (tl__loop_forked(l)) {
        /* A child forked from a task, back in its copy of the scheduler
         * (the task returned, or suspended past every check): the loop is
         * the parent's. Stop the batch; tl_run leaves. */
        l->batch = NULL;
        return;
    }
    /* Tasks may have passed the CPU among themselves (the rest of the
     * batch, tl__handoff), so the one coming back is l->current. */
    t = l->current;
    t->saved_errno = *l->errno_loc;
    tl__fp_check(l, t);
    atomic_store_explicit(&l->running_task, NULL, memory_order_relaxed);
    atomic_store_explicit(&l->running, 0, memory_order_relaxed);
    l->current = NULL;
    if (t->state == TL__T_DONE) task_finished(l, t);
}

/* The FP control state tasks share (invariant 10: not switched, it would
 * double the cost of a switch): every mode bit that changes another
 * task's arithmetic. The sticky exception flags (MXCSR bits 0-5, FPSR) are
 * results, not modes, and are left alone. */
tl__fpctl tl__fp_read(void)
{
    tl__fpctl c = {0, 0};
#if defined(__x86_64__) || defined(__i386__)
    uint32_t mxcsr;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    c.sse = mxcsr & ~UINT32_C(0x3f);
    c.x87 = cw;
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    c.sse = (uint32_t)fpcr;
#else
    c.sse = (uint32_t)fegetround();
#endif
    return c;
}

__attribute__((unused)) static void fp_write(tl__fpctl c)
{
#if defined(__x86_64__) || defined(__i386__)
    uint32_t mxcsr;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    mxcsr = (mxcsr & UINT32_C(0x3f)) | c.sse; /* keep the sticky flags */
    uint16_t cw = (uint16_t)c.x87;
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
    __asm__ volatile("fldcw %0" : : "m"(cw));
#elif defined(__aarch64__)
    uint64_t fpcr = c.sse;
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
#else
    fesetround((int)c.sse);
#endif
}

/* What changed, in words a user can search for. */
__attribute__((unused)) static void fp_describe(tl__fpctl was, tl__fpctl now, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
#define FP_SAY(cond, text)                                                  \
    do {                                                                    \
        if ((cond) && n < len)                                              \
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "",  \
                                  text);                                    \
    } while (0)
#if defined(__x86_64__) || defined(__i386__)
    uint32_t d = was.sse ^ now.sse;
    FP_SAY(d & (1u << 15), (now.sse & (1u << 15)) ? "flush-to-zero set (MXCSR.FZ)"
                                                  : "flush-to-zero cleared (MXCSR.FZ)");
    FP_SAY(d & (1u << 6), (now.sse & (1u << 6)) ? "denormals-are-zero set (MXCSR.DAZ)"
                                                : "denormals-are-zero cleared (MXCSR.DAZ)");
    FP_SAY(d & (3u << 13), "SSE rounding mode (MXCSR.RC)");
    FP_SAY(d & (0x3fu << 7), "SSE exception masks (MXCSR)");
    uint32_t x = was.x87 ^ now.x87;
    FP_SAY(x & (3u << 10), "x87 rounding mode");
    FP_SAY(x & (3u << 8), "x87 precision control");
    FP_SAY(x & ~(0xfu << 8), "x87 exception masks");
#elif defined(__aarch64__)
    uint32_t d = was.sse ^ now.sse;
    FP_SAY(d & (1u << 24), (now.sse & (1u << 24)) ? "flush-to-zero set (FPCR.FZ)"
                                                  : "flush-to-zero cleared (FPCR.FZ)");
    FP_SAY(d & (1u << 19), "half-precision flush-to-zero (FPCR.FZ16)");
    FP_SAY(d & (1u << 25), "default NaN (FPCR.DN)");
    FP_SAY(d & (3u << 22), "rounding mode (FPCR.RMode)");
    FP_SAY(d & ~((1u << 24) | (1u << 19) | (1u << 25) | (3u << 22)),
           "other FPCR bits (trap enables, AHP)");
#else
    FP_SAY(was.sse != now.sse, "rounding mode");
#endif
#undef FP_SAY
    (void)was;
    (void)now;
    if (!n) snprintf(buf, len, "FP control state");
}

#ifndef NDEBUG /* with NDEBUG it is an empty inline (internal.h) */
void tl__fp_check(tl__loop *l, tl__task *t)
{
    tl__fpctl now = tl__fp_read();
    if (now.sse != l->fp_ctl.sse || now.x87 != l->fp_ctl.x87) {
        char label[48], what[256];
        fp_describe(l->fp_ctl, now, what, sizeof what);
        tl__diag("task %s suspended with a changed FP control state (%s); "
                 "restored. Tasks share the thread's FP control state: "
                 "restore it before a suspending call, or set it before "
                 "tl_run", tl__task_label(t, label, sizeof label), what);
        fp_write(l->fp_ctl);
    }
}
#endif

/* Run this iteration's batch: the tasks READY when it began. A task that
 * suspends takes the next one itself (task.c, suspend) when it can, so
 * most switches go task to task; the scheduler gets the CPU back for
 * tasks that must start or finish, and when the batch is done. */
static void run_ready(tl__loop *l)
{
    l->handoffs = 0;
    l->batch = l->runq_head;
    l->runq_head = l->runq_tail = NULL;
    tl__task *t;
    while ((t = l->batch)) {
        l->batch = t->next_ready; /* read first: t may be requeued */
        resume(l, t);
    }
}

static void report_deadlock(tl__loop *l)
{
    if (l->deadlock_reported) return;
    l->deadlock_reported = 1;
    tl__diag("loop #%u: deadlock: every task is waiting and nothing can "
             "wake them (no timers, no I/O, no thread-pool jobs); the tasks "
             "and what each waits on:", (unsigned)l->id);
    tl__dump_diag(l);
    tl__diag("loop #%u: each task above waits for another one of them (or "
             "for something no task will ever do): cancel one of them or "
             "add a deadline (tl_timeout_enter)", (unsigned)l->id);
}

/* Virtual clock: time moves only when nothing is in flight, so a
 * thread-pool job (or another thread) that waits for something a virtual
 * timer drives never finishes, and the loop waits for it for ever. Say so
 * once per stall, after TL__STALL_NS of real time with nothing ready,
 * jobs in flight, timers pending and nothing moving. */
static int64_t stall_ns(void)
{
    /* $TULIP_VIRTUAL_STALL_MS (for tests), else 5 s; loops of several
     * threads may race to compute it: same value, atomic store. */
    static _Atomic int64_t cached;
    int64_t ns = atomic_load_explicit(&cached, memory_order_relaxed);
    if (!ns) {
        const char *e = getenv("TULIP_VIRTUAL_STALL_MS");
        long long ms = e && *e ? strtoll(e, NULL, 10) : 5000;
        ns = (ms > 0 ? ms : 5000) * (int64_t)1000000;
        atomic_store_explicit(&cached, ns, memory_order_relaxed);
    }
    return ns;
}
#define TL__STALL_NS stall_ns()
static void report_virtual_stall(tl__loop *l, int64_t next)
{
    tl__diag("loop #%u: virtual clock stalled for %.1f s: no task is "
             "ready and %d thread-pool job(s) are in flight, so the clock "
             "will not jump to the next timer (%.3f s); if a job waits for "
             "something only a timer of this loop brings about, this never "
             "ends. The tasks:", (unsigned)l->id,
             (double)TL__STALL_NS / 1e9, l->inflight, (double)next / 1e9);
    tl__dump_diag(l);
    tl__diag("loop #%u: what you can do: do not make a pool job wait on the "
             "loop (give it what it needs before submitting, or hand the "
             "waiting back to a task with tl_loop_call), or run this code "
             "on the real clock (tl_config.virtual_clock = 0)",
             (unsigned)l->id);
}

/* Work the loop does between polls for a signal-requested dump. */
static void dump_if_asked(tl__loop *l)
{
    if (!atomic_load_explicit(&l->dump_pending, memory_order_relaxed))
        return;
    atomic_store_explicit(&l->dump_pending, 0, memory_order_relaxed);
    tl__diag("loop #%u: task dump (signal %d):", (unsigned)l->id,
             l->dump_signal);
    tl__dump_diag(l);
}

/* Ask the kernel only when it can have news for us: when the loop is about
 * to wait, while tasks wait on file descriptors or kernel requests
 * (io_waiters) or watchers are active (io_watchers), so that ready
 * tasks never starve I/O, or when requests
 * were prepared and not yet submitted (io_queued: an io_uring SQE, a
 * cancel on the pending list). Otherwise every wake-up we could get
 * arrives through flags read without a syscall (inbox_pending,
 * sigint_pending) and timers, so a lone yielding task costs two switches,
 * not a system call per iteration. */
static bool must_poll(const tl__loop *l)
{
    return !l->runq_head || l->io_waiters > 0 || l->io_watchers > 0 ||
           l->io_queued;
}

/* An idle trim waits for a wait of at least this long ahead (a batch
 * gives back 64 top pages: 0.6 ms of CPU on the VM of the Figures,
 * several times that under load), but is put off for at most
 * TRIM_MAX_PUT_OFF_NS while timers keep falling due sooner. */
#define TRIM_MIN_WAIT_NS ((int64_t)2000000)
#define TRIM_MAX_PUT_OFF_NS ((int64_t)100000000)

/* About to wait `wait_ns` (-1: no timer) with no task ready: give the
 * stack pool's surplus back, a batch at a time (tl__stack_pool_idle).
 * True while more remains: the loop then polls without blocking and comes
 * back for the next batch, so an event waits for one batch at most. Not
 * when a timer falls due within TRIM_MIN_WAIT_NS: while a burst of
 * sleepers wakes (a timer every few microseconds), each gap looked idle
 * and a trim ran in it, taking back a top page per finished task (as
 * costly as faulting it in) while the wake-ups queued behind it; now the
 * trims wait until the burst is over, or run one batch per
 * TRIM_MAX_PUT_OFF_NS under a stream of timers that never leaves a gap. */
static bool idle_trim(tl__loop *l, int64_t wait_ns, int64_t now)
{
    if (!l->stacks) return false;
    if (wait_ns >= 0 && wait_ns < TRIM_MIN_WAIT_NS) {
        if (!l->trim_put_off) l->trim_put_off = now ? now : 1;
        if (now - l->trim_put_off < TRIM_MAX_PUT_OFF_NS) return false;
    }
    l->trim_put_off = 0;
    return tl__stack_pool_idle(l->stacks);
}

static void poll_once(tl__loop *l)
{
    int64_t next = tl__timer_next(l);
    bool polled = must_poll(l);
    if (l->virtual_clock) {
        /* Time may jump only when no task is ready, a look at the kernel
         * finds nothing and nothing is in flight; otherwise a wait_for test
         * becomes a lottery. In flight means owed regardless of any peer
         * (pool jobs, cancelled kernel requests): a task waiting for a
         * socket peer does not hold the clock, so a deadline around it
         * still fires once nothing else can run. */
        int64_t timeout = l->runq_head ? 0 : (l->inflight > 0 ? -1 : 0);
        int64_t wait = next == INT64_MAX ? -1
                       : next > l->vnow ? next - l->vnow : 0;
        bool trim = !l->runq_head && idle_trim(l, wait, l->vnow);
        if (!l->runq_head && l->inflight == 0 && next == INT64_MAX) {
            timeout = -1; /* 0 while trimming, below */
            /* Tasks waiting on fds wait for a peer (maybe outside this
             * process): not a deadlock. */
            if (l->io_waiters == 0 && l->io_watchers == 0) report_deadlock(l);
        }
        /* Jobs in flight and a timer waiting: wait in slices, to notice
         * a stall (report_virtual_stall). */
        bool stall = !l->runq_head && l->inflight > 0 && next != INT64_MAX;
        if (trim) timeout = 0;
        if (stall && l->stall_since >= 0) {
            int64_t real = tl__clock_ns();
            if (l->stall_since == 0) l->stall_since = real;
            if (real - l->stall_since >= TL__STALL_NS) {
                report_virtual_stall(l, next);
                l->stall_since = -1; /* once per stall */
            } else {
                timeout = l->stall_since + TL__STALL_NS - real;
            }
        }
        if (polled) l->backend->poll(l, timeout);
        if (l->sigint_pending) tl__sigint_dispatch(l);
        tl__loop_drain_inbox(l);
        if (l->runq_head || !stall) l->stall_since = 0; /* moved */
        if (!l->runq_head && l->inflight == 0 && next != INT64_MAX &&
            next > l->vnow)
            l->vnow = next;
    } else {
        int64_t timeout = 0;
        if (!l->runq_head) {
            int64_t now = tl__loop_now(l);
            if (next == INT64_MAX)
                timeout = -1;
            else {
                timeout = next - now;
                if (timeout < 0) timeout = 0;
            }
            if (idle_trim(l, timeout, now)) timeout = 0;
        }
        if (polled) l->backend->poll(l, timeout);
        if (l->sigint_pending) tl__sigint_dispatch(l);
        tl__loop_drain_inbox(l);
    }
    dump_if_asked(l);
    /* The tick parked tasks stamp (wait_since): read the clock when this
     * iteration needs it anyway, else every 64th, so a loop of yielding
     * tasks reads no clock per switch (invariant 9). */
    if (l->timers.count || polled || (++l->tick_skips & 63) == 0) {
        l->tick_ns = tl__loop_now(l);
        if (l->timers.count) tl__timer_run(l, l->tick_ns);
    }
    tl__stack_handler_rearm(); /* after a fault chained to another handler */
}

/* ---- loop lifetime ------------------------------------------------------ */

/* cfg->backend, else $TULIP_BACKEND, else the best that works: io_uring
 * if its ring can be made, else epoll (io_uring missing from the kernel,
 * or forbidden: seccomp in many containers, kernel.io_uring_disabled).
 * An explicit "io_uring" that cannot be had falls back to epoll with one
 * line naming the reason; an unknown name is -EINVAL. */
static int choose_backend(tl__loop *l, const tl_config *cfg)
{
    const char *want = cfg->backend;
    if (!want || !*want) want = getenv("TULIP_BACKEND");
    if (want && !*want) want = NULL;
    if (want && strcmp(want, "epoll") != 0 && strcmp(want, "io_uring") != 0) {
        tl__diag("unknown backend '%s' (expected epoll or io_uring)", want);
        return -EINVAL;
    }
    if (!want || strcmp(want, "io_uring") == 0) {
#ifdef TL_HAVE_LIBURING
        l->backend = &tl__backend_io_uring;
        int rc = l->backend->open(l);
        if (rc == 0) return 0;
        l->backend = NULL;
        if (want) {
            const char *name = NULL;
#ifdef __GLIBC__
#if __GLIBC_PREREQ(2, 32)
            name = strerrorname_np(-rc);
#endif
#endif
            tl__diag("backend 'io_uring' is not available (%s: %s); "
                     "using epoll", name ? name : "errno", strerror(-rc));
        }
#else
        if (want)
            tl__diag("backend 'io_uring' is not built into this tulip; "
                     "using epoll");
#endif
    }
    l->backend = &tl__backend_epoll;
    return l->backend->open(l);
}

static void loop_free(tl__loop *l)
{
    if (l->backend) l->backend->close(l);
    if (l->wake_fd >= 0) close(l->wake_fd);
    tl__task_table_free(l);
    while (l->free_recs) {
        tl__rec *r = l->free_recs;
        l->free_recs = r->parent;
        free(r->errors);
        free(r);
    }
    tl__timer_heap_free(&l->timers);
    tl__census_free(l);
    if (l->stacks) tl__stack_pool_free(l->stacks);
    pthread_mutex_destroy(&l->inbox_lock);
    free(l);
}

static int loop_new(const tl_config *cfg, tl__loop **out)
{
    pthread_once(&fork_once, install_fork_handler);
    tl__loop *l = calloc(1, sizeof *l);
    if (!l) return -ENOMEM;
    l->id = atomic_fetch_add_explicit(&next_loop_id, 1, memory_order_relaxed);
    l->fork_gen = atomic_load_explicit(&tl__fork_gen, memory_order_relaxed);
    l->virtual_clock = cfg->virtual_clock;
    l->epoch = tl__clock_ns();
    l->wake_fd = -1;
    l->thread = pthread_self();
    l->fp_ctl = tl__fp_read();
    l->errno_loc = &errno;
    pthread_mutex_init(&l->inbox_lock, NULL);
    tl__list_init(&l->gens);
    tl__list_init(&l->waitsets);
    size_t def = cfg->stack_size ? cfg->stack_size : 256 * 1024;
#if defined(__SANITIZE_ADDRESS__)
    if (!cfg->stack_size) def *= 2; /* ASan roughly doubles frames */
#endif
    l->stack_default = def;
    l->guard = cfg->guard;
    l->pool = cfg->pool;
    l->call_cap = cfg->call_capacity ? cfg->call_capacity
                                     : TL_LOOP_CALL_CAPACITY;
    l->census = tl__census_new();
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = l->wake_fd < 0 ? -errno : 0;
    if (rc == 0) rc = tl__stack_pool_new(&l->stacks, cfg->guard);
    if (rc == 0) {
        rc = tl__stack_pool_set_guard_size(l->stacks, cfg->stack_guard);
        if (rc < 0)
            tl__diag("tl_run_with: tl_config.stack_guard is %zu bytes, more "
                     "than the %zu MiB a guard may have", cfg->stack_guard,
                     TL__STACK_GUARD_MAX >> 20);
    }
    if (rc == 0) rc = choose_backend(l, cfg);
    if (rc < 0) {
        loop_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

/* After main returned: cancel everything, run until every task is done,
 * naming the stragglers 5 s in (invariant 1, 5). */
static void teardown(tl__loop *l)
{
    l->closing = 1;
    for (uint32_t s = 0; s < l->nslots; s++) {
        tl__task *t = tl__slot_task(l, s);
        if (t->state != TL__T_FREE && t->state != TL__T_DONE)
            tl__task_cancel(t);
    }
    int64_t start = tl__clock_ns();
    int named = 0;
    /* Calls tl_loop_call accepted before main returned may still be in
     * the inbox: they become tasks (cancelled from the start) and run
     * before the loop may end. */
    tl__loop_drain_inbox(l);
    while (l->live > 0) {
        run_ready(l);
        if (l->live == 0 || tl__loop_forked(l)) break;
        if (!named && tl__clock_ns() - start > 5 * (int64_t)1000000000) {
            named = 1;
            tl__diag("tl_run: %zu task(s) still running 5 s into teardown "
                     "(main returned and every task was cancelled; these "
                     "ignore it or wait in a call that cannot be "
                     "cancelled):", l->live);
            tl__dump_diag(l);
        }
        poll_once(l);
    }
    if (l->nostack > 3)
        tl__diag("%zu more task(s) could not get a stack and never ran",
                 l->nostack - 3);
    /* Generators and wait sets nobody closed: named like an unjoined
     * failure, then freed (their tasks are done; this frees their slots or
     * hands them to the loop below). */
    tl__gen_reap_unclosed(l);
    tl__waitset_reap_unclosed(l);
    /* Failed tasks nobody joined (invariant 7). */
    for (uint32_t s = 0; s < l->nslots; s++) {
        tl__task *t = tl__slot_task(l, s);
        if (t->state == TL__T_DONE) {
            tl__report_unjoined(t);
            tl__task_free(l, t);
        }
    }
}

/* asyncio.run re-raises main's exception and the interpreter prints its
 * traceback; tl_run returns the status, which a caller may drop: say it
 * (invariant 7), with the tl_fail message main attached to that code. */
static void report_main(tl__loop *l, tl__task *m)
{
    tl_error e;
    tl__error_fill(m, m->result, &e);
    tl__diag("main failed with -%s (%s)%s%s%s", tl_errname(m->result),
             tl_strerror(m->result), e.message[0] ? ": " : "", e.message,
             m->result == -ECANCELED && l->sigint_cancelled
                 ? " (cancelled by Ctrl-C)" : "");
}

/* tl_run in a child forked from one of l's tasks, when that task returned
 * to the scheduler: l's poller, eventfd, ring, pool and timers belong to
 * the parent, so nothing of it is run, polled, written, closed or freed
 * (the copy's memory is the child's and stays allocated; its descriptors
 * are close-on-exec). */
static int leave_forked_loop(tl__loop *l, tl__loop *outer)
{
    tl__diag("tl_run: this loop was inherited across fork() and a task "
             "returned to it in the child; returning TL_EFORK without "
             "touching it (the parent's loop runs on)");
    tl__sigpipe_restore(l); /* the thread's mask is the child's own */
    tl__stack_thread_fini();
    tl__self = outer;
    return TL_EFORK;
}

int tl_run_with(const tl_config *cfg_in, tl_fn main_fn, void *arg)
{
    tl_config cfg = {0};
    if (cfg_in) cfg = *cfg_in;
    if (!main_fn) return -EINVAL;
    tl__loop *outer = tl__self;
    if (outer && !tl__loop_forked(outer)) {
        tl__diag("tl_run: this thread already runs a loop; spawn a task "
                 "instead (tl_spawn)");
        return -EBUSY;
    }
    tl__loop *l;
    int rc = loop_new(&cfg, &l);
    if (rc < 0) return rc;
    tl__self = l;
    tl__sigpipe_block(l); /* pipe writes: -EPIPE, never a SIGPIPE death */
    registry_add(l);
    tl__fiber_init_thread(&l->sched);
    tl__stack_thread_init();
    tl__list_init(&l->gens);
    tl__list_init(&l->waitsets);
    tl__stack_report_install();
    if (!cfg.no_sigint) tl__sigint_install(l);
    tl__dump_signal_install(l, cfg.dump_signal);
    tl__watchdog_register(l);
    if (tl__pool_loop_open) tl__pool_loop_open(l);

    tl__task *m = tl__task_alloc(l, main_fn, arg,
                                 &(tl_spawn_opts){.name = "main"});
    if (!m) {
        rc = -ENOMEM;
    } else {
        l->main_task = m;
        m->has_joiner = 1; /* tl_run collects its status */
        tl__task_enqueue(l, m);
        while (m->state != TL__T_DONE) {
            run_ready(l);
            if (tl__loop_forked(l)) return leave_forked_loop(l, outer);
            if (m->state == TL__T_DONE) break;
            poll_once(l);
        }
        rc = m->result;
        if (rc < 0 && !cfg.no_main_report) report_main(l, m);
        l->zombies--;
        tl__task_free(l, m);
        l->main_task = NULL;
        tl__loop_handle_close(l); /* tl_loop_call now says -ESHUTDOWN */
        teardown(l);
        if (tl__loop_forked(l)) return leave_forked_loop(l, outer);
    }
    tl__io_loop_close(l); /* every task is done: wait out the kernel */
    if (l->census) tl__census_print(l);
    if (tl__pool_loop_close) tl__pool_loop_close(l);
    tl__loop_handle_close(l);
    l->closing = 1;
    /* Thread-pool completions that arrived after teardown; tl_loop_call
     * posts cannot be among them (the handle closed before teardown). */
    tl__loop_drain_inbox(l);
    tl__watchdog_unregister(l);
    tl__sigint_restore(l);
    tl__sigpipe_restore(l);
    tl__dump_signal_remove(l);
    tl__stack_thread_fini();
    tl__fiber_fini_thread(&l->sched);
    tl__self = outer;
    registry_remove(l);
    loop_free(l);
    return rc;
}

int tl_run(tl_fn main_fn, void *arg) { return tl_run_with(NULL, main_fn, arg); }

const char *tl_backend_name(void)
{
    tl__loop *l = tl__self;
    return l && l->backend ? l->backend->name : NULL;
}
