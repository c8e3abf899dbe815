/* Ctrl-C, as asyncio.run does it (DESIGN.md "Process-wide state"):
 * the first tl_run on the process's main thread installs a SIGINT handler
 * only if SIGINT is still at SIG_DFL; the first Ctrl-C cancels the main
 * task, the second restores SIG_DFL and re-raises (the process dies the
 * ordinary way); tl_run restores the old disposition when it returns.
 *
 * SIGINT is sent to the process, so the handler may run on any thread that
 * does not block it (tulip's own threads block everything; a program's may
 * not), at the same time as the main thread's tl_run returns and frees its
 * loop. So the handler counts itself in `busy` around its use of the loop,
 * and tl__sigint_restore, after unhooking the loop, waits for `busy` to
 * drain before tl_run may free it. The handler may also be called by a
 * handler installed after tulip's that chains to it (it saved ours as its
 * previous action): tl_run then leaves that handler in place, and ours,
 * with no loop to talk to, does what the disposition it displaced
 * (SIG_DFL) would have done.
 */
#include "internal.h"

#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The loop the handler talks to; NULL when none. Seq_cst, with busy, so
 * that restore's store and its reading of busy cannot pass each other. */
static _Atomic(tl__loop *) sigint_loop;
static _Atomic int busy; /* handlers between loading sigint_loop and done */
static volatile sig_atomic_t sigint_count;
static struct sigaction sigint_old;

/* Test hook: called inside the handler while it holds the loop. */
void (*volatile tl__sigint_test_hook)(void);

static void on_sigint(int sig)
{
    int saved = errno; /* a handler must not clobber the task's errno */
    atomic_fetch_add(&busy, 1);
    tl__loop *l = atomic_load(&sigint_loop);
    if (l && sigint_count++ == 0) {
        void (*hook)(void) = tl__sigint_test_hook;
        if (hook) hook();
        l->sigint_pending = 1;
        tl__loop_wake(l); /* eventfd write: async-signal-safe */
        atomic_fetch_sub(&busy, 1);
    } else {
        /* A second Ctrl-C, or no loop (tl_run has returned and a handler
         * chained in front of ours called us): the default action. */
        atomic_fetch_sub(&busy, 1);
        signal(sig, SIG_DFL);
        raise(sig);
    }
    errno = saved;
}

static int is_ours(const struct sigaction *sa)
{
    return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == on_sigint;
}

int tl__sigint_install(tl__loop *l)
{
    if (getpid() != (pid_t)syscall(SYS_gettid)) return 0; /* not main */
    if (atomic_load(&sigint_loop)) return 0; /* an outer loop owns it */
    struct sigaction cur;
    if (sigaction(SIGINT, NULL, &cur) < 0) return -errno;
    if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler != SIG_DFL) return 0;
    if ((cur.sa_flags & SA_SIGINFO)) return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigint_count = 0;
    atomic_store(&sigint_loop, l);
    if (sigaction(SIGINT, &sa, &sigint_old) < 0) {
        atomic_store(&sigint_loop, NULL);
        return -errno;
    }
    l->sigint_installed = 1;
    return 0;
}

void tl__sigint_restore(tl__loop *l)
{
    if (!l->sigint_installed) return;
    /* Give back the old disposition only if ours is still installed: a
     * handler installed since (which may chain to ours) stays. */
    struct sigaction cur;
    if (sigaction(SIGINT, NULL, &cur) == 0 && is_ours(&cur))
        sigaction(SIGINT, &sigint_old, NULL);
    atomic_store(&sigint_loop, NULL);
    /* A handler on another thread may still hold l: wait until it is done
     * (a few instructions; bounded by the handler, which never blocks). */
    while (atomic_load(&busy) > 0) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    l->sigint_installed = 0;
}

void tl__sigint_dispatch(tl__loop *l)
{
    l->sigint_pending = 0;
    if (l->main_task) {
        tl__diag("Ctrl-C: cancelling the main task (press again to kill)");
        l->sigint_cancelled = 1;
        tl__task_cancel(l->main_task);
    }
}

/* In a child after fork(): the loop our handler talks to is the parent's.
 * Give SIGINT back its pre-tulip disposition (sigaction is async-signal-
 * safe, as an atfork child handler requires), so that a new tl_run in the
 * child installs its own handler and a Ctrl-C never writes into the
 * parent's eventfd. Only one thread exists here: no handler is running. */
void tl__sigint_atfork_child(void)
{
    tl__loop *l = atomic_load(&sigint_loop);
    if (!l) return;
    struct sigaction cur;
    if (sigaction(SIGINT, NULL, &cur) == 0 && is_ours(&cur))
        sigaction(SIGINT, &sigint_old, NULL);
    atomic_store(&sigint_loop, NULL);
    atomic_store(&busy, 0);
    sigint_count = 0;
    l->sigint_installed = 0;
}

/* ---- SIGPIPE ------------------------------------------------------------
 *
 * write(2) to a pipe whose reader is gone raises SIGPIPE, whose default
 * action ends the process; MSG_NOSIGNAL exists only for sockets. Blocking
 * SIGPIPE around each pipe write costs three system calls a write, so the
 * loop's thread blocks it once for the loop's life instead (the kernel
 * raises SIGPIPE in the writing thread: blocked, it stays pending there
 * and the write returns -EPIPE). When tl_run returns, the SIGPIPEs left
 * pending by its writes are taken out, then the thread's mask is as it
 * was. A thread that had SIGPIPE blocked already is left alone, pending
 * SIGPIPEs included: they are the program's. */

static sigset_t sigpipe_set(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    return s;
}

void tl__sigpipe_block(tl__loop *l)
{
    sigset_t s = sigpipe_set(), old;
    if (pthread_sigmask(SIG_BLOCK, &s, &old) != 0) {
        l->sigpipe_was_blocked = 1; /* nothing changed: nothing to undo */
        return;
    }
    l->sigpipe_was_blocked = sigismember(&old, SIGPIPE) == 1;
}

void tl__sigpipe_restore(tl__loop *l)
{
    if (l->sigpipe_was_blocked) return;
    sigset_t s = sigpipe_set();
    struct timespec zero = {0, 0};
    /* A standard signal is pending once per thread and once per process:
     * a few rounds take every copy out (bounded in case of a sender). */
    for (int i = 0; i < 16; i++)
        if (sigtimedwait(&s, NULL, &zero) < 0 && errno != EINTR) break;
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}
