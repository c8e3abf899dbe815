/* Ctrl-C, as asyncio.run does it (DESIGN.md "Process-wide state"):
 * the first tl_run on the process's main thread installs a SIGINT handler
 * only if SIGINT is still at SIG_DFL; the first Ctrl-C cancels the main
 * task, the second restores SIG_DFL and re-raises (the process dies the
 * ordinary way); tl_run restores the old disposition when it returns. */
#include "internal.h"

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The loop the handler talks to; NULL when no handler is ours. Written by
 * the main thread, read by the handler on the same thread. */
static tl__loop *volatile sigint_loop;
static volatile sig_atomic_t sigint_count;
static struct sigaction sigint_old;

static void on_sigint(int sig)
{
    int saved = errno; /* a handler must not clobber the task's errno */
    tl__loop *l = sigint_loop;
    if (sigint_count++ == 0 && l) {
        l->sigint_pending = 1;
        tl__loop_wake(l); /* eventfd write: async-signal-safe */
    } else {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    errno = saved;
}

int tl__sigint_install(tl__loop *l)
{
    if (getpid() != (pid_t)syscall(SYS_gettid)) return 0; /* not main */
    if (sigint_loop) return 0; /* an outer loop owns it */
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
    sigint_loop = l;
    if (sigaction(SIGINT, &sa, &sigint_old) < 0) {
        sigint_loop = NULL;
        return -errno;
    }
    l->sigint_installed = 1;
    return 0;
}

void tl__sigint_restore(tl__loop *l)
{
    if (!l->sigint_installed) return;
    sigaction(SIGINT, &sigint_old, NULL);
    sigint_loop = NULL;
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
 * parent's eventfd. */
void tl__sigint_atfork_child(void)
{
    tl__loop *l = sigint_loop;
    if (!l) return;
    sigaction(SIGINT, &sigint_old, NULL);
    sigint_loop = NULL;
    sigint_count = 0;
    l->sigint_installed = 0;
}
