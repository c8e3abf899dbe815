/* tulip/process.h — included by <tulip.h>; do not include directly.
 *
 * Subprocesses: asyncio.create_subprocess_exec, Process.wait /
 * communicate / send_signal, and Trio's run_process.
 *
 *     proc = await asyncio.create_subprocess_exec(
 *         "sort", "-r", stdin=PIPE, stdout=PIPE)
 *                                     const char *argv[] = {"sort", "-r", NULL};
 *                                     tl_process *p;
 *                                     tl_process_spawn(&p, &(tl_process_opts){
 *                                         .argv = argv,
 *                                         .stdin_mode = TL_PROCESS_PIPE,
 *                                         .stdout_mode = TL_PROCESS_PIPE});
 *     out, _ = await proc.communicate(b"b\na\n")
 *                                     tl_process_result res;
 *                                     rc = tl_process_communicate(p, "b\na\n", 4, &res);
 *     proc.returncode                 res.status (also rc), res.out, res.out_len
 *                                     tl_process_result_free(&res);
 *                                     tl_process_close(p);
 *
 * How a child is made. posix_spawn(3) (glibc clones with CLONE_VM |
 * CLONE_VFORK and execs at once: no copy of the parent runs, so a forked
 * loop can never run in the child, whatever threads the program has),
 * then pidfd_open(2). The child inherits no fd but its stdin, stdout and
 * stderr (close_fds, as Python's default: every fd from 3 up is closed
 * in the child, unless TL_PROCESS_KEEP_FDS), and the environment given or
 * the parent's. tulip's own pipes are close-on-exec. Spawning blocks the
 * calling thread until the exec (posix_spawn's vfork; about a
 * millisecond), as asyncio's does.
 *
 * Signals in the child. It starts with an EMPTY signal mask
 * (POSIX_SPAWN_SETSIGMASK), whatever the spawning thread blocks: a loop's
 * thread blocks SIGPIPE for tl_run's life and a tl_signals watcher blocks
 * its set, and a child that inherited those would never die of SIGPIPE
 * (`yes | head` would run on) and would ignore SIGINT and SIGTERM. Empty
 * rather than "the mask the thread had before tulip blocked anything":
 * a program starts with nothing blocked, as a shell starts it (and as
 * libuv's children start); a program that wants a signal blocked in its
 * children blocks it in the child's own code. SIGPIPE and SIGXFSZ are
 * set to their default action (POSIX_SPAWN_SETSIGDEF), undoing a
 * program's SIG_IGN, as Python's restore_signals does; any other signal
 * the program ignores stays ignored (nohup's contract), and every
 * handled signal — tulip's Ctrl-C and stack-overflow handlers included —
 * is back to its default by exec itself. tulip ignores no signal.
 *
 * Waiting. Each child is watched through its pidfd: no SIGCHLD handler is
 * installed, and no other child of the program is reaped by tulip. The
 * wait suspends on the pidfd's readiness, then reaps with waitid(P_PIDFD,
 * WEXITED), so no zombie is left. Do not reap tulip's children yourself
 * (waitpid(-1), or SIGCHLD set to SIG_IGN, which makes the kernel reap
 * them): their status is then lost and the wait returns -ECHILD.
 *
 * Status. A child's end is one int >= 0, asyncio's returncode in a form
 * that leaves negative numbers to errors: its exit code (0..255), or
 * TL_PROCESS_SIGNALED_BASE + the signal number when a signal killed it.
 * TL_PROCESS_EXITCODE(st) and TL_PROCESS_TERMSIG(st) take it apart.
 *
 * What a cancel does to the child.
 *   - tl_process_wait and tl_process_communicate (asyncio's wait and
 *     communicate): the call returns -ECANCELED and the child goes on
 *     running, as in asyncio; kill it, or close the process, as you wish.
 *   - tl_process_run (Trio's run_process): the child is killed (SIGKILL)
 *     and reaped before the call returns -ECANCELED. So a deadline around
 *     it kills the child: TL_WITH_TIMEOUT(5.0, &rc) rc = tl_process_run(...)
 *     leaves rc == -ETIMEDOUT and no process behind.
 *   - tl_process_close: always reaps. A child still running is killed
 *     (SIGKILL) and waited for — the task suspends, the loop does not
 *     block — so after it no process and no zombie remain.
 *
 * Streams. Each of stdin, stdout and stderr is inherited, /dev/null, an
 * fd of the caller's, a pipe, or (stderr only) the same as stdout. A pipe
 * is a tl_stream (tulip/stream.h) on the parent's end, owned by the
 * process: read and write it with the tl_stream_* calls, end stdin early
 * with tl_stream_write_eof (the child reads end of file) or
 * tl_stream_close, but never tl_stream_wait_closed (it would free what the
 * process still owns): tl_process_close ends them.
 *
 * Threads. A process belongs to the loop that spawned it: call these
 * functions on that loop's thread (in a task unless a function says
 * otherwise). Errors are negative codes: -errno or TL_E*.
 */
#ifndef TULIP_PROCESS_H
#define TULIP_PROCESS_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Subprocesses
 * ====================================================================== */

/* A child process (opaque; heap). Belongs to the loop that spawned it. */
typedef struct tl_process tl_process;

/* What one of the child's stdin, stdout, stderr is (the *_mode fields of
 * tl_process_opts): TL_PROCESS_INHERIT, the parent's own (the default);
 * TL_PROCESS_PIPE, a pipe whose parent's end is a tl_stream;
 * TL_PROCESS_DEVNULL, /dev/null; TL_PROCESS_FD, the fd in stdin_fd /
 * stdout_fd / stderr_fd, dup'ed into place (the caller keeps it);
 * TL_PROCESS_STDOUT, stderr only: wherever stdout goes (Python's
 * stderr=STDOUT). */
enum tl_process_stdio {
    TL_PROCESS_INHERIT = 0,
    TL_PROCESS_PIPE = 1,
    TL_PROCESS_DEVNULL = 2,
    TL_PROCESS_FD = 3,
    TL_PROCESS_STDOUT = 4,
};

/* Flags of tl_process_opts. TL_PROCESS_KEEP_FDS: do not close fds 3 and
 * up in the child (close-on-exec ones still close; Python's
 * close_fds=False). TL_PROCESS_NEW_SESSION: setsid() in the child, so it
 * has its own session and process group, away from the terminal's
 * Ctrl-C. */
#define TL_PROCESS_KEEP_FDS 0x1u
#define TL_PROCESS_NEW_SESSION 0x2u

/* Options of tl_process_spawn and tl_process_run. Zero-initialise, then
 * set what you need: every field's zero is the default. argv[0] is
 * looked up in PATH unless it contains '/'; argv is required, the rest
 * optional. */
typedef struct tl_process_opts {
    const char *const *argv; /* the program and its arguments, NULL-ended */
    const char *const *envp; /* NULL-ended; NULL: the parent's environ */
    const char *cwd;         /* working directory; NULL: the parent's */
    int stdin_mode;          /* enum tl_process_stdio (not _STDOUT) */
    int stdout_mode;         /* enum tl_process_stdio (not _STDOUT) */
    int stderr_mode;         /* enum tl_process_stdio */
    int stdin_fd;            /* the fd, with TL_PROCESS_FD */
    int stdout_fd;           /* the fd, with TL_PROCESS_FD */
    int stderr_fd;           /* the fd, with TL_PROCESS_FD */
    unsigned flags;          /* TL_PROCESS_KEEP_FDS, TL_PROCESS_NEW_SESSION */
    const struct tl_stream_opts *stream_opts; /* the pipes'; NULL: defaults */
} tl_process_opts;

/* A status (tl_process_wait) says "killed by a signal" when >= this. */
#define TL_PROCESS_SIGNALED_BASE 0x100
/* The exit code of a status, or -1 if a signal killed the child. */
#define TL_PROCESS_EXITCODE(st) \
    ((st) >= 0 && (st) < TL_PROCESS_SIGNALED_BASE ? (st) : -1)
/* The signal that killed the child, or 0 if it exited. */
#define TL_PROCESS_TERMSIG(st) \
    ((st) >= TL_PROCESS_SIGNALED_BASE ? (st) - TL_PROCESS_SIGNALED_BASE : 0)

/* What tl_process_communicate and tl_process_run collected. out and err
 * are malloc'ed, NUL-terminated (the NUL not counted in the length), NULL
 * when that stream was not a pipe; free them with
 * tl_process_result_free. */
typedef struct tl_process_result {
    int status;     /* the child's status, as tl_process_wait returns */
    char *out;      /* everything the child wrote to stdout */
    size_t out_len; /* its length */
    char *err;      /* everything it wrote to stderr */
    size_t err_len; /* its length */
} tl_process_result;

/* asyncio.create_subprocess_exec: start opts->argv as a child process.
 * *out receives the process; the caller owns it and must end it with
 * tl_process_close (which reaps the child). Nothing of the caller's is
 * kept: argv, envp, cwd and the TL_PROCESS_FD fds are used during the
 * call only (close your copy of an fd you passed once this returns).
 * Returns 0, or (nothing started, no fd leaked, *out NULL):
 *   -ENOENT       the program was not found (or cwd does not exist);
 *   -EACCES, -ENOEXEC, -E2BIG, ...  exec's error, as posix_spawn reports it;
 *   -EMFILE, -ENFILE  no fd left for a pipe or the pidfd;
 *   -EINVAL       out, opts or argv NULL, argv[0] NULL, an unknown mode
 *                 or flag, TL_PROCESS_STDOUT for stdin or stdout, a
 *                 negative fd with TL_PROCESS_FD;
 *   -ENOMEM, -EAGAIN (no process could be made: RLIMIT_NPROC, ...),
 *   -ENOSYS       the kernel has no pidfd (Linux before 5.3; the wait
 *                 also needs waitid(P_PIDFD), Linux 5.4);
 *   TL_ENOTASK    not called from a task; TL_EFORK.
 * A failure after the checks (from -ENOENT on) carries a tl_fail message
 * naming the program, and cwd when one was given ("spawn prog (in dir):
 * No such file or directory"): tl_fail_message(rc) reads it.
 * Never suspends, so it is no cancellation point: a cancelled task
 * still spawns (close what it spawned). (see "How a child is made": it blocks for the exec). */
TL_API TL_NODISCARD int tl_process_spawn(tl_process **out,
                                         const tl_process_opts *opts);

/* The child's pid (it stays reserved until the child is reaped by
 * tulip). Never suspends; any thread. 0 for NULL. */
TL_API pid_t tl_process_pid(const tl_process *p);

/* proc.stdin / proc.stdout / proc.stderr: the parent's end of that pipe
 * as a stream the process owns (see Streams above), or NULL when it is
 * not a pipe (or p is NULL). Never suspends. */
TL_API tl_stream *tl_process_stdin(const tl_process *p);
TL_API tl_stream *tl_process_stdout(const tl_process *p);
TL_API tl_stream *tl_process_stderr(const tl_process *p);

/* await proc.wait(): wait until the child ends, reap it, and return its
 * status (>= 0, see Status above). Once reaped, every later call returns
 * the same status at once. Any number of tasks may wait at once. A
 * child that writes more than a pipe holds to a pipe nobody reads
 * blocks: read its output (or use tl_process_communicate) first.
 * Returns the status, -ECANCELED (the child keeps running: asyncio's
 * behaviour), -ECHILD (someone else reaped it), -EINVAL (p NULL),
 * TL_ECLOSED (p is being closed by tl_process_close), -EXDEV (another
 * loop's process), TL_ENOTASK. SUSPENDS (a cancellation point). */
TL_API TL_NODISCARD int tl_process_wait(tl_process *p);

/* Popen.poll(): reap the child if it has ended, without waiting. Returns
 * its status (>= 0), -EAGAIN (still running), -ECHILD, -EINVAL. Never
 * suspends; the loop's thread. */
TL_API int tl_process_poll(tl_process *p);

/* proc.send_signal(sig), through pidfd_send_signal(2), so the signal can
 * never reach another process that reused the pid. proc.terminate() is
 * tl_process_signal(p, SIGTERM), proc.kill() is SIGKILL. Returns 0,
 * -ESRCH (the child was reaped already: nothing sent; a child that ended
 * but was not reaped yet takes the signal harmlessly), -EINVAL (p NULL,
 * bad signal), -EPERM. Never suspends; the loop's thread. */
TL_API int tl_process_signal(tl_process *p, int sig);
/* proc.terminate(): SIGTERM. Returns as tl_process_signal. */
TL_API int tl_process_terminate(tl_process *p);
/* proc.kill(): SIGKILL. Returns as tl_process_signal. */
TL_API int tl_process_kill(tl_process *p);

/* await proc.communicate(input): write len bytes of input to the child's
 * stdin and then close it (the child reads end of file), while reading
 * its stdout and stderr to their end, all three at once (one task each),
 * so a child that writes a lot before it reads, or reads a lot before it
 * writes, never deadlocks; then wait for it. *res receives the output of
 * each pipe and the status; free it with tl_process_result_free. input
 * is borrowed for the call (NULL with len 0: just close stdin).
 * A child that closes its stdin early (head) is not an error: the input
 * it did not read is dropped, as asyncio does. Call it once per process,
 * with no other task reading the pipes.
 * After it, stdin is closed (tl_process_stdin returns NULL).
 * Returns the status (>= 0, also in res->status), or: -ECANCELED (the
 * child keeps running, as in asyncio: tl_process_run kills it; stdin may
 * be closed already; output the call had read is dropped, output still
 * in the pipes stays there for the streams' readers), -EINVAL
 * (p or res NULL, input given but stdin is not a pipe), -ENOMEM, -EBUSY
 * (another task reads a pipe, or communicate runs already), the pipes'
 * read errors, the codes of tl_process_wait. On error *res is empty
 * (both pointers NULL, nothing to free) and status is -1.
 * SUSPENDS (a cancellation point). */
TL_API TL_NODISCARD int tl_process_communicate(tl_process *p,
                                               const void *input, size_t len,
                                               tl_process_result *res);

/* Free what a tl_process_result holds and empty it (the struct itself is
 * the caller's). NULL does nothing. Never suspends; any thread. */
TL_API void tl_process_result_free(tl_process_result *res);

/* Trio's run_process / subprocess.run: spawn opts->argv, feed it input
 * (the child's stdin is then a pipe whatever opts says; without input,
 * stdin is as opts says), collect what opts makes pipes, wait, and close
 * the process. res may be NULL when nothing is captured; otherwise free
 * it with tl_process_result_free. If the calling task is cancelled (a
 * deadline scope around the call, tl_cancel) the child is killed with
 * SIGKILL and reaped before the call returns -ECANCELED: nothing outlives
 * the call; a task cancelled before the call spawns nothing (the
 * cancellation point comes first). Returns the status (>= 0; a non-zero
 * exit code is not an error here: check it), -ECANCELED, or the errors
 * of tl_process_spawn and tl_process_communicate, TL_ENOTASK, TL_EFORK.
 * SUSPENDS (a cancellation point). */
TL_API TL_NODISCARD int tl_process_run(const tl_process_opts *opts,
                                       const void *input, size_t len,
                                       tl_process_result *res);

/* Close the process: end its pipes' streams (queued input is dropped),
 * reap the child — killing it with SIGKILL first if it still runs — and
 * free p. Waits, if it must, for tasks inside other calls on p (they
 * return TL_ECLOSED, or the status once reaped) and for the killed child
 * to die: the task suspends, ignoring cancellation (a cleanup that must
 * happen: a killed child dies in milliseconds), so it is fine in cleanup
 * code of a cancelled task. Outside a task (after tl_run, say) it blocks
 * the thread instead, for as long. Returns the child's status (>= 0,
 * TL_PROCESS_SIGNALED_BASE + SIGKILL if it was killed here), -ECHILD
 * (someone else reaped it), -EXDEV (another loop's process: nothing
 * done). Always frees p (but for -EXDEV). NULL returns 0. SUSPENDS
 * (only when the child had not ended or other tasks were inside p). */
TL_API int tl_process_close(tl_process *p);

#ifdef __cplusplus
}
#endif

#endif /* TULIP_PROCESS_H */
