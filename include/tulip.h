/* tulip — asyncio for C.
 *
 * One header for the whole library. Sections (each generates a page of the
 * API reference in docs/api.md, see tools/gendocs.sh):
 *
 *   Errors           codes, messages, tl_strerror
 *   Running          tl_run, the loop configuration
 *   Tasks            spawn, join, detach, cancel, names
 *   Time             sleep, yield, now
 *   Deferred calls   tl_call, the "coroutine object" of C
 *   Gather           tl_gather
 *   Task groups      tl_group (asyncio.TaskGroup, Trio's nursery)
 *   Scopes           deadlines, move-on, shields, wait_for, block macros
 *
 * Model. A task is `int fn(void *arg)` running on its own stack. Every call
 * marked SUSPENDS below may switch to other tasks before it returns; each is
 * a cancellation point. Calling a task function directly from another task
 * is C's `await f()`: it runs in the caller's task. Concurrency comes only
 * from spawning (tl_spawn, tl_gather, tl_group_spawn).
 *
 * Results. Functions return int: >= 0 success, < 0 a negative errno-style
 * code (-ECANCELED, -ETIMEDOUT, ...) or one of tulip's own codes below.
 * errno is never the result channel.
 *
 * Cancellation is level-triggered: once a task (or a scope around the
 * call) is cancelled, every suspending call returns -ECANCELED until the
 * task leaves the cancelled scope, except inside a shield. A call that
 * returns -ECANCELED has yielded once, so a task that ignores it cannot
 * freeze the loop. One rule decides what a cancelled call returns:
 *   1. Checkpoint first. A call made while a cancel is in force returns
 *      -ECANCELED (after its one yield) and consumes nothing: no permit
 *      or item taken, no call started, a task handle still joinable.
 *      (Two calls must still finish a duty first: tl_join of a running
 *      task forwards the cancel and waits for it, since the task may
 *      write the joiner's memory; tl_to_thread_ex with
 *      TL_THREAD_ABANDON_ON_CANCEL hands arg over all the same. The calls
 *      that close something — tl_group_wait, tl_gen_close,
 *      tl_waitset_close — always do their work.)
 *   2. Completed wins. A wait whose work completed returns that work's
 *      outcome — a permit, an item, a joined task's status, a worker's
 *      result, a generator's value, the children of a gather or group —
 *      even if the cancel arrived meanwhile (some waits cannot be left
 *      half way, see invariant 1: join, gather, group wait, tl_to_thread
 *      and tl_gen_next wait for the work they forwarded the cancel to).
 *   3. A real error beats a cancellation: when the work ended with an
 *      error other than -ECANCELED, that error is the outcome.
 *   4. The cancel itself shows at the next suspending call (it is level-
 *      triggered, so it cannot be lost).
 * So -ECANCELED from a call means "nothing was done" or "the work itself
 * unwound from the cancel", never "the work is lost".
 * Calls whose result must be checked are TL_NODISCARD (GCC's
 * warn_unused_result, which a plain (void) cast does not silence: write
 * `(void)!tl_sleep(1)` where ignoring it is really meant).
 *
 * Time. Durations and deadlines are doubles in seconds; deadlines are on
 * tl_now()'s clock (the loop's, starting at 0). One rule for every time
 * argument (tl_sleep, tl_sleep_until, the deadline scopes and their
 * reschedule, tl_wait_for, tl_waitset_next, tl_wait): NaN is refused with
 * -EINVAL and a diagnostic, before anything else happens; a duration <= 0
 * (or -INFINITY) and a deadline already past mean "now" (no wait); and
 * +INFINITY — or anything beyond about 292 years — means "forever".
 *
 * Threads. One loop per thread; tasks never migrate. Unless a function says
 * otherwise, call it only from a task (or, where noted, from the thread
 * that runs the loop).
 *
 * Shared thread state. The tasks of a loop share their thread: errno is
 * saved per task, but the FP control state (rounding mode, flush-to-zero,
 * denormals-are-zero, exception masks, x87 precision; MXCSR, the x87
 * control word, AArch64 FPCR) is not switched — it would double the cost
 * of a switch. A task that changes it must restore it before any
 * suspending call; set it before tl_run to give every task the same.
 * Debug builds (no NDEBUG) check it at every switch, name a task that
 * broke the rule and restore the loop's state. Thread-local variables,
 * the locale and the signal mask are per loop, not per task.
 */
#ifndef TULIP_H
#define TULIP_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TL_API __attribute__((visibility("default")))
#define TL_NODISCARD __attribute__((warn_unused_result))
#define TL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TL_API
#define TL_NODISCARD
#define TL_PRINTF(f, a)
#endif

/* ======================================================================
 * Errors
 * ====================================================================== */

/* tulip's own codes live in a reserved negative band below every errno
 * value, so they never collide with -errno. */
#define TL__ERR_BASE 0x7400
#define TL_ERRORS(X)                                                        \
    X(TL_EOF, TL__ERR_BASE + 1, "end of stream")                            \
    X(TL_ECLOSED, TL__ERR_BASE + 2, "object was closed")                    \
    X(TL_EQSHUTDOWN, TL__ERR_BASE + 3, "queue was shut down")               \
    X(TL_EFULL, TL__ERR_BASE + 4, "queue is full")                          \
    X(TL_EEMPTY, TL__ERR_BASE + 5, "queue is empty")                        \
    X(TL_EBROKEN, TL__ERR_BASE + 6, "barrier is broken")                    \
    X(TL_EFORK, TL__ERR_BASE + 7, "loop inherited across fork()")           \
    X(TL_ENOTASK, TL__ERR_BASE + 8, "not called from a tulip task")         \
    X(TL_EGENDONE, TL__ERR_BASE + 9, "generator is exhausted")              \
    X(TL_ENOTSTARTED, TL__ERR_BASE + 10,                                    \
      "task returned without calling tl_started")                           \
    X(TL_ENONAME, TL__ERR_BASE + 11, "name or service not known")

enum {
#define TL__ERR_ENUM(name, value, text) name = -(value),
    TL_ERRORS(TL__ERR_ENUM)
#undef TL__ERR_ENUM
};

/* A short description of `code` (negative errno or TL_*). Never NULL; the
 * string is static. Thread-safe. */
TL_API const char *tl_strerror(int code);

/* The symbolic name of `code`: "ECANCELED", "TL_EOF", ... Static string. */
TL_API const char *tl_errname(int code);

/* Attach a message to error `code` for the running task and return `code`,
 * so that `return tl_fail(-EIO, "fetch %s: %s", url, why);` reads like a
 * raise. The message travels with the code: it is shown (by join, groups,
 * the never-joined report) only if the task's final status is that same
 * code; a later tl_fail replaces it. Outside a task it just returns code.
 * Never suspends. */
TL_API int tl_fail(int code, const char *fmt, ...) TL_PRINTF(2, 3);

/* The message attached by the latest tl_fail of the running task if its
 * code equals `code`, else NULL. Valid until the next tl_fail. */
TL_API const char *tl_fail_message(int code);

/* One failure: which task, what code, what message. */
typedef struct tl_error {
    int code;          /* negative error code */
    char task[32];     /* task name, or "#<slot>" if it has none */
    char message[200]; /* tl_fail message, or "" */
} tl_error;

/* A list of failures (a task group's ExceptionGroup). Owned by the caller
 * once returned; free with tl_errors_free(). */
typedef struct tl_errors {
    size_t count;
    tl_error *items;
} tl_errors;

TL_API void tl_errors_free(tl_errors *errs);
/* Print the list in the shape of Python's ExceptionGroup traceback. */
TL_API void tl_errors_print(const tl_errors *errs, FILE *out);

/* ======================================================================
 * Running
 * ====================================================================== */

typedef int (*tl_fn)(void *arg);

/* Guard below each task stack (see docs/design.md "Stacks"). */
enum tl_guard {
    TL_GUARD_AUTO = 0, /* probe: madvise guard, else mprotect, else canary */
    TL_GUARD_MADVISE,
    TL_GUARD_MPROTECT,
    TL_GUARD_CANARY,
};

typedef struct tl_config {
    size_t stack_size;   /* default task stack; 0 = 256 KiB (x2 under ASan) */
    int virtual_clock;   /* non-zero: time jumps to the next timer when no
                            task is ready and nothing is in flight */
    const char *backend; /* "epoll", "io_uring", or NULL: $TULIP_BACKEND,
                            else the best that works */
    int guard;           /* enum tl_guard; $TULIP_GUARD overrides AUTO */
    int no_sigint;       /* non-zero: never install the Ctrl-C handler */
    struct tl_pool *pool; /* thread pool to share, or NULL for a lazy own */
    int no_main_report;  /* non-zero: tl_run does not print main's
                            failure (see tl_run) */
    int dump_signal;     /* a signal (SIGQUIT, SIGUSR1...) that makes the
                            loop write tl_dump to stderr, like Go's
                            SIGQUIT; 0: $TULIP_DUMP_SIGNAL ("SIGUSR1",
                            "QUIT", "10"), else none; -1: none */
    size_t call_capacity; /* tl_loop_call inbox bound; 0 = TL_LOOP_CALL_CAPACITY */
    size_t stack_guard;  /* bytes of guard below every task stack, rounded
                            up to whole pages (at least one; at most 64 MiB,
                            else tl_run_with returns -EINVAL); 0:
                            $TULIP_STACK_GUARD ("64K", "1M", bytes; an
                            invalid one is named on stderr and ignored),
                            else 1 MiB. See "Stack guards" below. */
} tl_config;

/* Stack guards (tl_config.stack_guard). Below every task stack lies a
 * guard that faults: a task that runs off its stack gets "stack overflow
 * in task '<name>'" and the process aborts, never a silent write into
 * another task's stack. A frame skips at most its own size of stack
 * before it touches it, and compilers that do not probe large frames
 * (GCC and clang without -fstack-clash-protection, Debian's default) can
 * jump any guard smaller than the frame; so the default guard is 1 MiB,
 * which catches frames up to 1 MiB from such code. Its price is address
 * space and page tables, not memory: stack tops 1.25 MiB apart (with the
 * default 256 KiB stacks) share a page-table page with fewer neighbours,
 * about 2.5 KiB of kernel memory per stack instead of 0.6, and fresh
 * stacks cost more CPU to fault in (docs/design.md, "Stacks and guards").
 * A program whose task code is all built with -fstack-clash-protection
 * (every page of a large frame probed in order; tulip's pkg-config and
 * CMake package pass it) can take a small guard — one page up — and
 * still gets the report for any overflow; with code built without it, a
 * frame larger than the guard may corrupt the stack below, silently. */

/* Default bound of a loop's cross-thread inbox (tl_config.call_capacity):
 * calls accepted by tl_loop_call that the loop has not taken yet. */
#define TL_LOOP_CALL_CAPACITY 65536

/* asyncio.run: make a loop on this thread, run main(arg) as the first task
 * (named "main"), and when it returns cancel every task still running and
 * wait for all of them (naming any still running 5 s into teardown), then
 * report failed tasks nobody joined, tear down and return main's status.
 * A negative status of main is printed on stderr, the way asyncio.run
 * shows the traceback of the exception it re-raises: "tulip: main failed
 * with -EIO (Input/output error): <its tl_fail message>" (a -ECANCELED
 * from Ctrl-C says so); tl_config.no_main_report silences it.
 * On the process's main thread Ctrl-C cancels the main task (a second
 * Ctrl-C kills the process), unless SIGINT already had a handler.
 * Returns main's status, or -ENOMEM/-EMFILE/... if the loop could not be
 * made, -EINVAL for a tl_config it refuses (an unknown guard strategy or
 * backend name, a stack_guard over 64 MiB), or -EBUSY if this thread is
 * already running a loop. Several threads
 * may each run their own tl_run at once. Blocks the calling thread; it must
 * not be called from a task.
 * fork(): in a child forked from a task, the loop is dead (its poller,
 * eventfd and ring are the parent's): every tulip call there returns
 * TL_EFORK, and when the forking task returns (or anything else reaches
 * the scheduler) this tl_run returns TL_EFORK at once, with a diagnostic,
 * running no other task and polling, writing, closing and freeing nothing
 * of the loop (its memory stays allocated in the child). A new tl_run in
 * the child makes a fresh loop and works. */
TL_API int tl_run(tl_fn main, void *arg);
TL_API int tl_run_with(const tl_config *cfg, tl_fn main, void *arg);

/* The backend this thread's loop uses ("epoll", "io_uring"), or NULL
 * outside a loop. */
TL_API const char *tl_backend_name(void);

/* A reference to a running loop, for other threads (invariant 8: the task
 * API belongs to the loop's own thread; other threads hand work over with
 * tl_loop_call). Reference-counted: valid until tl_loop_unref, even after
 * the loop's tl_run has returned (calls then fail with -ESHUTDOWN). */
typedef struct tl_loop tl_loop;

/* From a task: a new reference to the running loop, or NULL (TL_ENOTASK
 * diagnostic, or out of memory). Never suspends. */
TL_API tl_loop *tl_loop_ref(void);
/* Drop a reference (NULL: no-op). Any thread. */
TL_API void tl_loop_unref(tl_loop *loop);
/* Thread-safe: run fn(arg) as a new detached task on `loop` (named
 * "call"). Returns 0 once accepted: fn then runs exactly once, also when
 * the loop's main returns before the loop took the call — it runs during
 * tl_run's teardown as a task that starts cancelled (its suspending calls
 * return -ECANCELED), so its cleanup still runs and can free `arg`. The
 * one exception is the loop running out of memory for the task itself;
 * a diagnostic then names the lost call. Errors (fn will not run, the
 * caller still owns arg): -ESHUTDOWN once the loop's main has returned or
 * the loop has ended; TL_EFORK for a handle made before this process was
 * forked (the loop is the parent's; nothing is posted); -EAGAIN if the
 * inbox is full (call_capacity calls,
 * default TL_LOOP_CALL_CAPACITY, wait for the loop to take them: it takes all
 * of them at each iteration); -ENOMEM; -EINVAL. The inbox is bounded and
 * refuses rather than blocks, so a flood from other threads cannot grow
 * the loop's memory without end, and the poster — not the loop — decides
 * what a full loop means (retry later, drop, block on its own condition);
 * a blocking variant would stall a thread-pool worker behind a busy loop.
 * A failure of fn is reported like any detached task's. The caller owns
 * `arg` until fn is done with it. Never suspends; callable from any
 * thread, including the loop's own. */
TL_API int tl_loop_call(tl_loop *loop, tl_fn fn, void *arg);

/* The task dump: asyncio.all_tasks() with print_stack, Go's SIGQUIT
 * dump. Writes to `out` a header (loop id, backend, clock, task count by
 * state, thread-pool jobs in flight) and then every task of this thread's
 * loop: name and slot, state, what it waits on (a sleep until t, a lock
 * and its holder, a queue, a join of which task, a pool job, ...) and
 * for how long (on the loop clock, to within an iteration), its open
 * scopes innermost first with their deadlines, its task group, and a
 * backtrace (innermost first) of its stack. Each frame reads
 * "#i 0xADDR in sym+0xN (module+0xOFF)": `addr2line -f -e module 0xOFF`
 * gives the file and line (the offset is that of the call instruction);
 * sym is known only for exported symbols (link with -rdynamic to see
 * your own). Backtraces need unwind tables (the default on x86-64 and
 * AArch64) and the assembly context switch (the ucontext build prints
 * none). The same dump goes to stderr on the signal tl_config.dump_signal
 * names, in the deadlock report of the virtual clock, and when tasks are
 * still running 5 s into tl_run's teardown. Returns the number of tasks
 * written (finished tasks not yet joined included), TL_ENOTASK when this
 * thread runs no loop, -EINVAL if out is NULL. Call it from a task or
 * from the loop's thread (not from a signal handler: use dump_signal).
 * Never suspends. */
TL_API int tl_dump(FILE *out);

/* len(asyncio.all_tasks()): how many tasks of this thread's loop have not
 * finished (the running one included); 0 outside a loop. Never suspends. */
TL_API size_t tl_task_count(void);

/* ======================================================================
 * Tasks
 * ====================================================================== */

/* A value handle: slot + generation (+ loop). A stale handle (the task was
 * joined or freed) is detected and refused with -ESRCH, never a
 * use-after-free, and never names a later task: a slot whose generation
 * would wrap is retired for the loop's life. The zero value is "no
 * task". */
typedef struct tl_task {
    uint32_t slot;
    uint32_t gen;  /* 0 = no task */
    uint32_t loop; /* id of the loop that owns the task */
} tl_task;

typedef struct tl_spawn_opts {
    const char *name;  /* copied (up to 31 bytes); NULL = "task #<slot>" */
    size_t stack_size; /* 0 = the loop's default */
} tl_spawn_opts;

/* asyncio.create_task: start fn(arg) as a new task. It is scheduled after
 * the tasks already ready and runs when the spawner next suspends. Plain
 * spawned tasks belong to the loop, not to the spawner: they outlive it and
 * inherit none of its scopes. The task must be joined (tl_join) or detached
 * (tl_detach); a finished task that is neither keeps its slot (like a
 * joinable thread) until tl_run ends. `arg` is the caller's to keep alive
 * until the task is done with it. `out` may be NULL (then the task is
 * detached). Returns 0, -ENOMEM, or TL_ENOTASK/-EPERM outside a loop.
 * Never suspends. */
TL_API int tl_spawn(tl_task *out, tl_fn fn, void *arg);
TL_API int tl_spawn_ex(tl_task *out, const tl_spawn_opts *opts, tl_fn fn,
                       void *arg);

/* await task: wait for t to finish and store its return value in *status
 * (may be NULL), then free its slot. At most one joiner. Cancellation
 * (the rule in the Model above):
 *   - the joiner is cancelled while it waits: the cancel is forwarded to
 *     t, the joiner waits for t to finish (t may write its memory), and
 *     the join completes: 0, with t's outcome in *status — its result, its
 *     real error, or the -ECANCELED it unwound with. Pass it on with
 *     `if (rc < 0) return rc; if (st < 0) return st;`;
 *   - the joiner was already cancelled when it called: -ECANCELED, and
 *     nothing is consumed: *status is not written and t stays joinable
 *     (join it from a shield to read its status, or detach it). If t was
 *     still running, the cancel was forwarded and the call waited for t to
 *     finish first, so it never returns while t runs.
 * Returns 0; -ECANCELED (above); -ESRCH stale handle; -EINVAL already
 * being joined, detached, or a group member; -EDEADLK joining oneself;
 * -EXDEV a handle of another loop. SUSPENDS. */
TL_API TL_NODISCARD int tl_join(tl_task t, int *status);

/* As tl_join, and copies t's failure (name, code, message) into *err when
 * its status is negative (err may be NULL). */
TL_API TL_NODISCARD int tl_join_ex(tl_task t, int *status, tl_error *err);

/* Let t run on its own: its slot is freed when it finishes; a failure is
 * reported on stderr then (nobody can join it). 0, -ESRCH, -EINVAL. */
TL_API int tl_detach(tl_task t);

/* task.cancel(): from now on every suspending call in t returns
 * -ECANCELED (outside shields). A task cancelled before it first ran still
 * runs and meets -ECANCELED at its first suspending call. Cancelling a
 * finished task does nothing. Returns 0, -ESRCH. Never suspends. */
TL_API int tl_cancel(tl_task t);

/* The running task (zero handle outside a task). */
TL_API tl_task tl_current(void);

/* Copy t's name into buf (always NUL-terminated). Returns buf, or NULL for
 * a stale handle. */
TL_API const char *tl_task_name(tl_task t, char *buf, size_t len);

/* Non-zero if t finished (and is not yet joined). */
TL_API int tl_task_done(tl_task t);

/* Non-zero if the running task is cancelled at this point (its next
 * suspending call would return -ECANCELED). Never suspends. */
TL_API int tl_cancelled(void);

/* ======================================================================
 * Time
 * ====================================================================== */

/* asyncio.sleep(seconds): 0 when the time has passed, -ECANCELED.
 * <= 0 is sleep(0): yields once; INFINITY sleeps until cancelled; NaN:
 * -EINVAL (see "Time" above). SUSPENDS. */
TL_API TL_NODISCARD int tl_sleep(double seconds);

/* Sleep until the loop clock reads `when` (tl_now's scale); a time
 * already past yields once. 0, -ECANCELED, -EINVAL (NaN). SUSPENDS. */
TL_API TL_NODISCARD int tl_sleep_until(double when);

/* asyncio.sleep(0): let every other ready task run once. 0 or
 * -ECANCELED. SUSPENDS. */
TL_API int tl_yield(void);

/* The loop's monotonic clock in seconds (virtual under virtual_clock).
 * Outside a loop, the process's monotonic clock. */
TL_API double tl_now(void);

/* ======================================================================
 * Deferred calls
 * ====================================================================== */

/* A function and its argument that run only when spawned or gathered:
 * C's coroutine object. TL_CALL(fetch, "a") also names the task "fetch". */
typedef struct tl_call {
    tl_fn fn;
    void *arg;
    const char *name; /* task name, may be NULL */
} tl_call;

#define TL_CALL(f, a) ((tl_call){(f), (void *)(a), #f})
#define TL_CALL_NAMED(f, a, n) ((tl_call){(f), (void *)(a), (n)})

/* ======================================================================
 * Gather
 * ====================================================================== */

/* asyncio.gather(*calls, return_exceptions=True): run the n calls as
 * concurrent tasks and wait for all of them. statuses[i] (if statuses is
 * not NULL) receives call i's return value. A failure does not cancel the
 * others; a cancel of the gatherer while it waits cancels them all. The
 * result comes from the statuses, whether or not the gatherer was
 * cancelled meanwhile (the rule in the Model): the first real error (< 0,
 * not -ECANCELED) in argument order; else -ECANCELED if a child ended
 * with it (cancelled by the gatherer's cancel or by anyone, as a
 * cancelled awaitable makes asyncio.gather raise CancelledError); else 0
 * — always only after every child finished (asyncio returns at the first
 * error and leaves the rest running; C cannot, since the children write
 * the caller's memory). A gatherer already cancelled when it calls gets
 * -ECANCELED and none of the calls runs (each statuses[i] = -ECANCELED).
 * -ENOMEM if the tasks could not be made (none ran); -EINVAL calls NULL
 * or a call's fn NULL (nothing ran). SUSPENDS. */
TL_API TL_NODISCARD int tl_gather(size_t n, const tl_call *calls,
                                  int *statuses);

/* ======================================================================
 * Task groups
 * ====================================================================== */

/* The frame that enters a scope or a group is recorded, so that a function
 * returning without closing it is caught at the task's next suspension
 * (see "Scopes"). An inlined function has no frame of its own, so the
 * entering macros make their function non-inlinable: with GCC by
 * __builtin_apply_args (it saves the argument registers once at function
 * entry, ~15 stores), with clang by the returns_twice attribute on the
 * enter calls (no warning there; GCC would warn -Wclobbered). Not API. */
#if defined(__clang__)
#define TL__PIN_FRAME() ((void)0)
#define TL__ENTERS_FRAME __attribute__((returns_twice))
#elif defined(__GNUC__)
#define TL__PIN_FRAME() \
    (__extension__({ __asm__ volatile("" : : "r"(__builtin_apply_args())); }))
#define TL__ENTERS_FRAME
#else
#define TL__PIN_FRAME() ((void)0)
#define TL__ENTERS_FRAME
#endif
#define TL__FRAME() (TL__PIN_FRAME(), __builtin_frame_address(0))

/* A handle to a runtime-owned group record (it cannot dangle). */
typedef struct tl_group {
    void *rec;
    uint64_t gen;
} tl_group;

/* async with TaskGroup() as g: open a group in the running task. Children
 * spawned into it run concurrently; the first real failure (a child or the
 * body) cancels the siblings and the body. Groups nest (each is a scope on
 * the task's scope stack) and must be closed with tl_group_wait in LIFO
 * order with the other scopes. Returns 0, -ENOMEM, TL_ENOTASK. Never
 * suspends. */
#define tl_group_enter(g) \
    tl__group_enter((g), __FILE__, __LINE__, TL__FRAME())

/* tg.create_task: spawn fn(arg) into g. Children may spawn siblings while
 * the body waits. -ESHUTDOWN once g was cancelled or finished; -ESRCH a
 * stale handle. `status` (may be NULL) receives the child's return value
 * when it finishes; it must stay valid until tl_group_wait returns (it is
 * written before then; never, if the owner returns without tl_group_wait).
 * Never suspends. */
TL_API int tl_group_spawn(tl_group g, tl_fn fn, void *arg);
TL_API int tl_group_spawn_ex(tl_group g, const tl_spawn_opts *opts,
                             tl_fn fn, void *arg, int *status);
/* The same from a deferred call, as in `tg.create_task(fetch("a"))`:
 * tl_group_spawn_call(g, TL_CALL(fetch, &a), &status). The task is named
 * after call.name. */
TL_API int tl_group_spawn_call(tl_group g, tl_call call, int *status);

/* Leave the `async with` block: body_rc is the body's own result (< 0
 * counts as the body's failure and cancels the children). Waits for every
 * child (this wait ignores cancellation), then returns: the first real
 * failure if any (errors beat cancellation); else -ECANCELED if a scope
 * around the group (or the task) is cancelled and the body or a child
 * unwound from it (ended with -ECANCELED); else 0 — everything completed,
 * and an outer cancel shows at the next suspending call (the rule in the
 * Model). Cancellations the group caused are not failures. If errs is not
 * NULL it receives every failure (caller frees with tl_errors_free).
 * SUSPENDS. */
TL_API int tl_group_wait(tl_group g, int body_rc, tl_errors *errs);

/* Cancel every child and the body (the group's verdict is then 0 unless
 * something failed: like Trio's nursery.cancel_scope.cancel()). */
TL_API int tl_group_cancel(tl_group g);

/* Trio's nursery.start: spawn fn(arg) into g, as tl_group_spawn does, and
 * wait until it says it is ready with tl_started(value) — a server that
 * has bound its port, say: `tl_group_start(g, serve, &cfg, &port)`
 * returns once `serve` called tl_started(port), and serve goes on
 * running in g. *value (may be NULL) receives the value. Until it is
 * ready the child's outcome belongs to the caller, not to the group:
 *   - it fails first: its error is returned to the caller (it is not a
 *     failure of g and cancels nobody);
 *   - it returns >= 0 without calling tl_started: TL_ENOTSTARTED;
 * so the caller never hangs on a child that will not signal. The rule in
 * the Model: a caller already cancelled gets -ECANCELED and nothing is
 * spawned; a caller cancelled while it waits forwards the cancel to the
 * child and keeps waiting: if the child still signals ready the start
 * completed (0, *value; the cancel shows at the caller's next call, the
 * child unwinds in g), else its outcome is returned (-ECANCELED, or its
 * real error). Any task that may spawn into g may call it (the owner in
 * the body, or a child). Returns 0, the child's error, TL_ENOTSTARTED,
 * -ECANCELED, or what tl_group_spawn returns (-ESHUTDOWN, -ESRCH,
 * -EINVAL, -ENOMEM: nothing ran). SUSPENDS. */
TL_API TL_NODISCARD int tl_group_start(tl_group g, tl_fn fn, void *arg,
                                       intptr_t *value);
/* The same with spawn options (name, stack size) and a status pointer as
 * tl_group_spawn_ex's (written when the child finishes, whether or not it
 * got ready). SUSPENDS. */
TL_API TL_NODISCARD int tl_group_start_ex(tl_group g,
                                          const tl_spawn_opts *opts,
                                          tl_fn fn, void *arg, int *status,
                                          intptr_t *value);

/* Trio's task_status.started(value): called by a child started with
 * tl_group_start, once, when it is ready: its starter resumes with
 * `value`, and from then on the child is an ordinary member of its group
 * (its failures are the group's). Returns 0; -EINVAL (with a diagnostic)
 * if the running task was not started with tl_group_start or already
 * called it; TL_ENOTASK. Never suspends. */
TL_API int tl_started(intptr_t value);

/* ======================================================================
 * Scopes: deadlines, move-on, shields
 * ====================================================================== */

/* A handle to a runtime-owned scope record on the running task's scope
 * stack. Enter and exit in LIFO order; exiting out of order, or a function
 * returning without exiting its scope, is a misuse reported with the enter
 * site (file:line) followed by abort(), at the task's next suspension.
 * The early return is seen by the frame of the function that entered the
 * scope, so the enter macros keep that function from being inlined into
 * its caller (with GCC and clang; with another compiler an inlined
 * function shares its caller's frame and the leak is caught only when the
 * caller returns). Where a function may return early, the TL_WITH_* block
 * macros exit on every path, return included. */
typedef struct tl_scope {
    void *rec;
    uint64_t gen;
} tl_scope;

/* asyncio.timeout(seconds) / Trio's fail_after: when the deadline passes,
 * suspending calls inside return -ECANCELED, and tl_scope_exit turns that
 * into -ETIMEDOUT. +INFINITY means no deadline (reschedule later); <= 0
 * means cancelled from the first suspending call on. A deadline that
 * passes while the task runs without suspending counts at its next
 * suspending call (and in tl_cancelled()).
 *
 * If an enter fails — NaN time (-EINVAL), -ENOMEM, TL_ENOTASK — it
 * returns a handle whose rec is NULL; tl_scope_exit(s, rc) then returns
 * that error instead of rc (the code between ran without the scope), and
 * the TL_WITH_* macros skip their body and store it in *rc. Never
 * suspends. */
#define tl_timeout_enter(seconds) \
    tl__scope_enter(1, (seconds), 0, __FILE__, __LINE__, TL__FRAME())
/* Deadline at an absolute tl_now() time. */
#define tl_timeout_at_enter(when) \
    tl__scope_enter(1, (when), 1, __FILE__, __LINE__, TL__FRAME())
/* Trio's move_on_after: like a timeout, but the exit reports 0. */
#define tl_move_on_enter(seconds) \
    tl__scope_enter(2, (seconds), 0, __FILE__, __LINE__, TL__FRAME())
/* asyncio.shield: cancellation from outside does not reach inside (a
 * deadline of the shield's own inner scopes still does). */
#define tl_shield_enter() \
    tl__scope_enter(3, 0.0, 0, __FILE__, __LINE__, TL__FRAME())
/* A scope with no deadline, cancelled only by tl_scope_cancel; its exit
 * absorbs its own cancellation (reports 0), like Trio's CancelScope. */
#define tl_cancel_scope_enter() \
    tl__scope_enter(4, 0.0, 0, __FILE__, __LINE__, TL__FRAME())

/* Close the scope. rc is the body's result. If this scope was cancelled
 * (deadline or tl_scope_cancel) and no enclosing unshielded scope (nor the
 * task) was cancelled too, an rc of -ECANCELED is absorbed: the result is
 * -ETIMEDOUT for a timeout scope, 0 for the others (move-on, cancel
 * scopes, and a shield cancelled with tl_scope_cancel).
 * Otherwise rc passes through unchanged (so an outer cancel wins over an
 * inner deadline). Never suspends. */
TL_API int tl_scope_exit(tl_scope s, int rc);

/* Move the deadline to `seconds` from now (INFINITY: none; <= 0: now).
 * 0, -ESRCH, -EINVAL (not a deadline scope, already expired, or NaN). */
TL_API int tl_scope_reschedule(tl_scope s, double seconds);
TL_API int tl_scope_reschedule_at(tl_scope s, double when);
/* The deadline (INFINITY if none), or NaN for a stale handle. */
TL_API double tl_scope_deadline(tl_scope s);
/* Cancel the scope now (any kind). */
TL_API int tl_scope_cancel(tl_scope s);
/* Non-zero if the scope was cancelled (its deadline passed, or
 * tl_scope_cancel) — asyncio's Timeout.expired(). */
TL_API int tl_scope_cancel_called(tl_scope s);

/* asyncio.wait_for(call, seconds): run call.fn(call.arg) in the running
 * task inside a timeout scope. Returns its result, or -ETIMEDOUT;
 * -EINVAL (fn NULL, or seconds NaN: the call does not run). SUSPENDS (as
 * much as the call does). */
TL_API TL_NODISCARD int tl_wait_for(tl_call call, double seconds);

/* Block macros: `async with asyncio.timeout(5):` in C.
 *
 *     int rc;
 *     TL_WITH_TIMEOUT(5.0, &rc) {
 *         rc = fetch("slow");
 *     }
 *     if (rc == -ETIMEDOUT) puts("didn't make it in 5 seconds");
 *
 * *rc is set to 0 on entry; the body stores its result in it; on leaving
 * the block — normally, by break, return or goto — the scope exits with
 * that value and *rc receives the verdict. A `break` in the body leaves
 * this block (not an enclosing loop). So does `continue`, silently: it
 * also ends the block (the scope exits with *rc as it stands) instead of
 * going on with an enclosing loop's next iteration, unlike `continue` in
 * TL_GEN_FOREACH, which is a real loop. Inside a loop, set a flag and
 * `break`, then `continue` after the block. */
#define TL_WITH_TIMEOUT(seconds, rcp) TL__WITH(1, (seconds), (rcp), NULL)
#define TL_WITH_MOVE_ON(seconds, rcp) TL__WITH(2, (seconds), (rcp), NULL)
#define TL_WITH_SHIELD(rcp) TL__WITH(3, 0.0, (rcp), NULL)
/* `async with TaskGroup() as g:` — g is a tl_group* that the block fills;
 * the group's verdict lands in *rcp, and its failures are printed to
 * stderr if there were several (use tl_group_wait for the list). */
#define TL_WITH_GROUP(gp, rcp) TL__WITH(5, 0.0, (rcp), (gp))

/* ---------------------------------------------------------------------- */
/* Implementation details of the macros above; not API.                    */

TL_API TL__ENTERS_FRAME int tl__group_enter(tl_group *g, const char *file,
                                            int line, void *frame);
TL_API TL__ENTERS_FRAME tl_scope tl__scope_enter(int kind, double t,
                                                 int absolute,
                                                 const char *file, int line,
                                                 void *frame);

struct tl__with {
    int once;
    int *rcp;
    tl_scope scope;
    tl_group *group;
};
TL_API TL__ENTERS_FRAME struct tl__with
tl__with_begin(int kind, double t, int *rcp, tl_group *g, const char *file,
               int line, void *frame);
TL_API void tl__with_end(struct tl__with *w);

#define TL__CAT2(a, b) a##b
#define TL__CAT(a, b) TL__CAT2(a, b)
#define TL__WITH(kind, t, rcp, gp)                                           \
    for (struct tl__with TL__CAT(tl__w_, __LINE__)                           \
             __attribute__((cleanup(tl__with_end))) =                        \
             tl__with_begin((kind), (t), (rcp), (gp), __FILE__, __LINE__,    \
                            TL__FRAME());                                    \
         TL__CAT(tl__w_, __LINE__).once; TL__CAT(tl__w_, __LINE__).once = 0)

#ifdef __cplusplus
}
#endif

/* Topic headers: coordination primitives, queues, threads, wait sets,
 * generators, the version, I/O, sockets, files, streams, servers, signal
 * watchers. Each is part of the one public API. */
#include "tulip/sync.h"
#include "tulip/queue.h"
#include "tulip/thread.h"
#include "tulip/wait.h"
#include "tulip/gen.h"
#include "tulip/version.h"
#include "tulip/io.h"
#include "tulip/net.h"
#include "tulip/file.h"
#include "tulip/stream.h"
#include "tulip/server.h"
#include "tulip/signal.h"
#include "tulip/process.h"

#endif /* TULIP_H */
