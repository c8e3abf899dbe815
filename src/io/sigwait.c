/* Signal watchers (include/tulip/signal.h): a signalfd per watcher, the
 * set blocked in the loop's thread.
 *
 * The wait is tl_fd_wait(READABLE) followed by a non-blocking read(2) of
 * one signalfd_siginfo, not a read request: on io_uring a cancelled read
 * may already have taken a signal out of the kernel, and the signal would
 * then have to be carried to the next call. Waiting for readiness takes
 * nothing, so a cancel at that point loses nothing; the read runs only
 * once the task is running again and will return what it reads. A read
 * that finds nothing (another reader of the same signal, or a thread-
 * directed signal that the poll saw for a moment) waits again.
 *
 * The mask. Several watchers of one thread may share a signal, so the
 * thread keeps a count of its open watchers per signal, and remembers
 * for each signal whether it was already blocked when its first watcher
 * opened. The last close of a signal that was not blocked before unblocks
 * it again (SIGINT goes back to tl_run's Ctrl-C handler, SIGTERM back to
 * its disposition); one that was blocked before (by the program, or by
 * the loop itself, as SIGPIPE) stays blocked. Before unblocking, close
 * takes out what is still pending of those signals: they arrived while
 * the program said it would handle them, and delivering them at close
 * would hand a program that shuts down on its first SIGTERM a second one
 * that kills it. Counts are per thread because masks are: a loop and its
 * watchers live on one thread. */
#include "io/io.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tl_signals {
    tl__loop *loop;
    int fd;
    sigset_t set; /* what it watches (counted in `watched`) */
};

/* This thread's watchers (see The mask, above). */
static _Thread_local struct {
    unsigned count[NSIG];  /* open watchers of each signal */
    sigset_t was_blocked;  /* of the signals counted: blocked before the
                              first of their watchers opened */
} watched;

/* Count s's signals; `old` is the mask from before open blocked them. */
static void watch(const sigset_t *set, const sigset_t *old)
{
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(set, sig) != 1) continue;
        if (watched.count[sig]++ == 0) {
            if (sigismember(old, sig) == 1)
                sigaddset(&watched.was_blocked, sig);
            else
                sigdelset(&watched.was_blocked, sig);
        }
    }
}

/* Uncount s's signals; unblock those whose last watcher this was and
 * that were not blocked before, after taking out their pending ones. */
static void unwatch(const sigset_t *set)
{
    sigset_t unblock;
    sigemptyset(&unblock);
    bool any = false;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(set, sig) != 1 || watched.count[sig] == 0) continue;
        if (--watched.count[sig] == 0 &&
            sigismember(&watched.was_blocked, sig) != 1) {
            sigaddset(&unblock, sig);
            any = true;
        }
    }
    if (!any) return;
    /* Bounded: real-time signals queue (up to RLIMIT_SIGPENDING). */
    struct timespec zero = {0, 0};
    for (int i = 0; i < 100000; i++) {
        if (sigtimedwait(&unblock, NULL, &zero) < 0 && errno != EINTR) break;
    }
    pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
}

int tl_signals_open(tl_signals **out, const sigset_t *set)
{
    if (out) *out = NULL;
    tl__task *self = tl__task_self("tl_signals_open");
    if (!self) return tl__not_task_error();
    if (!out || !set) return -EINVAL;
    if (sigismember(set, SIGKILL) == 1 || sigismember(set, SIGSTOP) == 1)
        return -EINVAL;
    if (sigisemptyset(set)) return -EINVAL;
    tl_signals *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    sigset_t old;
    int rc = pthread_sigmask(SIG_BLOCK, set, &old);
    if (rc) {
        free(s);
        return -rc;
    }
    /* Blocked before the signalfd exists: a signal sent in between stays
     * pending and the new fd sees it. */
    s->fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->fd < 0) {
        rc = -errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        free(s);
        return rc;
    }
    /* A record left for this number by a plain close(2) elsewhere must
     * not be taken for the new fd. */
    tl__fd_fresh(self->loop, s->fd, 0, 0);
    s->loop = self->loop;
    s->set = *set;
    watch(set, &old);
    *out = s;
    return 0;
}

int tl_signals_wait(tl_signals *s, struct signalfd_siginfo *info)
{
    int rc = 0;
    tl__task *self = tl__task_self_in(s ? s->loop : NULL, "signal watcher",
                                      "tl_signals_wait", &rc);
    if (!self) return rc;
    if (!s) return -EINVAL;
    for (;;) {
        rc = tl_fd_wait(s->fd, TL_READABLE);
        if (rc < 0) return rc;
        struct signalfd_siginfo si;
        ssize_t n = read(s->fd, &si, sizeof si);
        if (n == (ssize_t)sizeof si) {
            if (info) *info = si;
            return (int)si.ssi_signo;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) return -errno;
        if (n >= 0) return -EIO; /* a short record: never from Linux */
    }
}

int tl_signals_close(tl_signals *s)
{
    if (!s) return 0;
    (void)tl_close(s->fd);
    if (tl__self == s->loop)
        unwatch(&s->set);
    else /* off its thread: that thread's mask is not ours to change */
        tl__diag("tl_signals_close: called off the thread of the loop that "
                 "opened it; its signals stay blocked there");
    free(s);
    return 0;
}
