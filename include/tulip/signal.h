/* tulip/signal.h — included by <tulip.h>; do not include directly.
 *
 * Waiting for signals in a task (asyncio's loop.add_signal_handler, as a
 * wait instead of a callback; Trio's open_signal_receiver).
 *
 *     sigset_t set;                        tl_signals *sig;
 *     sigemptyset(&set);                   tl_signals_open(&sig, &set)
 *     sigaddset(&set, SIGTERM);            ...
 *     sigaddset(&set, SIGHUP);             int signo = tl_signals_wait(sig, NULL);
 *                                          tl_signals_close(sig);
 *
 * Why an object and not a one-shot wait: a program that loops "wait for
 * SIGHUP, reload" must not lose a signal that arrives while it reloads,
 * nor one that arrives while no task waits. A tl_signals holds the set
 * blocked in the loop's thread from open to close, so such a signal stays
 * pending in the kernel until the next tl_signals_wait reads it (standard
 * signals of one number coalesce while pending, as always; real-time
 * signals queue).
 *
 * How signals reach it. tl_signals_open blocks the set in the calling
 * (loop) thread with pthread_sigmask and reads them through a signalfd. A
 * signalfd sees the signals pending for the process and for the thread
 * that reads it, so:
 *   - a signal sent to the process (kill(getpid(), ...), kill(1) from a
 *     shell, Ctrl-C's SIGINT) reaches it only if no thread leaves that
 *     signal unblocked: the kernel delivers a process-directed signal to
 *     any thread that does not block it. tulip's own threads (thread
 *     pool, tl_thread_start loops) block every signal; block the set in
 *     the program's own threads too — simplest: block it in main before
 *     creating any thread, as with sigwait(3);
 *   - a signal sent to the loop's thread (raise(), pthread_kill to it) is
 *     always seen; one sent to another thread is that thread's alone.
 * Several watchers may watch one signal (each open counts it in the
 * thread), but each occurrence goes to one of them (their signalfds race
 * for it): watch a signal with one watcher where every occurrence
 * matters.
 *
 * SIGINT. Watching SIGINT takes Ctrl-C over, as add_signal_handler does
 * in asyncio: SIGINT is blocked in the loop's thread, so tl_run's
 * handler (which cancels the main task) does not run for it while the
 * watcher is open; the watcher's task decides what Ctrl-C does.
 *
 * Closing. The last tl_signals_close of a signal in a thread gives the
 * signal its old state there: a signal that was not blocked before its
 * first watcher opened is unblocked (a closed SIGINT watcher gives Ctrl-C
 * back to tl_run's handler, as asyncio's remove_signal_handler does); one
 * that was blocked (by the program, or SIGPIPE by the loop) stays
 * blocked. Occurrences still pending when it is unblocked are discarded,
 * not delivered: they arrived while the program said it would handle
 * them (a program that shuts down on its first SIGTERM must not be
 * killed by a second one at close). A watcher still open keeps its
 * signals blocked.
 *
 * Errors are negative codes: -errno or TL_E*.
 */
#ifndef TULIP_SIGNAL_H
#define TULIP_SIGNAL_H

#include <signal.h>
#include <sys/signalfd.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tl_signals tl_signals;

/* Open a signal watcher for `set` on the calling task's loop: block the
 * set in this thread, then make a signalfd for it (close-on-exec, so a
 * spawned program does not inherit it). The set's signals stay blocked
 * in this thread until the last watcher of each is closed (see Closing
 * above). *out receives the watcher;
 * the caller owns it and frees it with tl_signals_close.
 *
 * Returns 0, -EINVAL (NULL argument, an empty set, or SIGKILL / SIGSTOP
 * in it: those cannot be caught), -ENOMEM, -EMFILE / -ENFILE (no fd for
 * the signalfd), TL_ENOTASK (not called from a task), TL_EFORK (the loop
 * was inherited across fork()). On error *out is NULL and the signal mask
 * is as it was. Never suspends. */
TL_API TL_NODISCARD int tl_signals_open(tl_signals **out, const sigset_t *set);

/* Wait until one of the watcher's signals is pending, take it (it is
 * consumed: no handler runs for it) and return its number. If `info` is
 * not NULL it receives the kernel's record of the signal (ssi_pid and
 * ssi_uid of the sender, ssi_code, ssi_int for sigqueue values, ...). A
 * signal that was already pending — sent before the call, or between two
 * calls — is returned at once.
 *
 * Cancelling loses nothing: the call takes a signal only after it has
 * decided to return it, so a signal that arrives as the wait is cancelled
 * stays pending for the next call. Timeouts come from the enclosing
 * scopes (TL_WITH_TIMEOUT).
 *
 * Returns the signal number (> 0), -ECANCELED, -EBUSY (another task is
 * already waiting on this watcher), -EXDEV (called from a task of another
 * loop than the one that opened it), -EINVAL (s NULL), TL_ENOTASK,
 * TL_EFORK, or another -errno from reading the signalfd.
 * SUSPENDS (a cancellation point). */
TL_API TL_NODISCARD int tl_signals_wait(tl_signals *s,
                                        struct signalfd_siginfo *info);

/* Close the watcher: wake a task waiting in tl_signals_wait with
 * TL_ECLOSED, close the signalfd and free s. Each signal of the set that
 * no other watcher of this thread watches gets its old state back:
 * unblocked, its pending occurrences discarded, if it was not blocked
 * when its first watcher opened; else it stays blocked (see Closing
 * above). Returns 0; NULL does nothing. Call it on the loop's thread that opened it (a task or a
 * callback of that loop); it never suspends and is not a cancellation
 * point, so cleanup code may call it in a cancelled task. */
TL_API int tl_signals_close(tl_signals *s);

#ifdef __cplusplus
}
#endif

#endif
