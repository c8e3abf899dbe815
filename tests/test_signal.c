/* Signal watchers (tulip/signal.h): signals raised on the loop's thread,
 * sent to the process and sent to the loop's thread from another thread
 * wake a waiting task; a signal that came before the wait is returned at
 * once; a cancelled or timed-out wait loses no signal; a second waiter
 * gets -EBUSY; close wakes the waiter with TL_ECLOSED; bad sets are
 * refused; no fd leaked; Ctrl-C still cancels the main task while a
 * watcher of other signals is open, and again once a SIGINT watcher is
 * closed; closing gives each signal its old mask state when its last
 * watcher goes. Runs on each backend (CTest:
 * name@epoll, name@io_uring). */
#include "helpers.h"

#include <pthread.h>

static sigset_t usr_set(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    return set;
}

/* Process-directed signals reach the watcher only if every thread blocks
 * them (signal.h): the test blocks them before tl_run, as a program
 * would in main before it creates threads. */
static void block_usr(void)
{
    sigset_t set = usr_set();
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
}

struct waiter {
    tl_signals *s;
    int rc;
    int done;
    struct signalfd_siginfo si;
};

static int wait_task(void *arg)
{
    struct waiter *w = arg;
    w->rc = tl_signals_wait(w->s, &w->si);
    w->done = 1;
    return 0;
}

/* ---- raise before the wait, on the loop's thread ------------------------ */

static int main_pending(void *arg)
{
    (void)arg;
    sigset_t set = usr_set();
    tl_signals *s;
    cr_assert_eq(tl_signals_open(&s, &set), 0);
    cr_expect_eq(raise(SIGUSR1), 0);
    cr_expect_eq(raise(SIGUSR2), 0);
    struct signalfd_siginfo si;
    int a = tl_signals_wait(s, &si);
    cr_expect_eq((int)si.ssi_signo, a);
    cr_expect_eq((pid_t)si.ssi_pid, getpid());
    int b = tl_signals_wait(s, NULL);
    cr_expect((a == SIGUSR1 && b == SIGUSR2) || (a == SIGUSR2 && b == SIGUSR1),
              "got %d and %d", a, b);
    /* Nothing left: the next wait waits (virtual clock deadline). */
    int rc;
    TL_WITH_TIMEOUT(1.0, &rc) {
        rc = tl_signals_wait(s, NULL);
    }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_signals_close(s), 0);
    return 0;
}

Test(signal, signals_raised_before_the_wait_are_returned_at_once, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_pending, NULL), 0);
}

/* ---- kill(getpid()) while a task waits ----------------------------------- */

static int main_kill(void *arg)
{
    (void)arg;
    sigset_t set = usr_set();
    struct waiter w = {0};
    cr_assert_eq(tl_signals_open(&w.s, &set), 0);
    tl_task t = tl_test_spawn(wait_task, &w);
    tl_test_settle();
    cr_expect_eq(w.done, 0, "the wait returned before any signal");
    cr_expect_eq(kill(getpid(), SIGUSR2), 0);
    tl_test_join(t);
    cr_expect_eq(w.rc, SIGUSR2);
    cr_expect_eq((pid_t)w.si.ssi_pid, getpid());
    cr_expect_eq(w.si.ssi_code, SI_USER);
    tl_signals_close(w.s);
    return 0;
}

Test(signal, a_signal_sent_to_the_process_wakes_the_waiting_task, .timeout = 10)
{
    block_usr();
    cr_assert_eq(tl_run(main_kill, NULL), 0);
}

/* ---- pthread_kill from another thread to the loop's thread --------------- */

struct killer {
    pthread_t target;
    int rc;
};

static void *killer_thread(void *arg)
{
    struct killer *k = arg;
    k->rc = pthread_kill(k->target, SIGUSR1);
    return NULL;
}

static int main_pthread_kill(void *arg)
{
    (void)arg;
    sigset_t set = usr_set();
    struct waiter w = {0};
    cr_assert_eq(tl_signals_open(&w.s, &set), 0);
    tl_task t = tl_test_spawn(wait_task, &w);
    tl_test_settle();
    struct killer k = {.target = pthread_self(), .rc = -1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, killer_thread, &k), 0);
    tl_test_join(t);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_expect_eq(k.rc, 0);
    cr_expect_eq(w.rc, SIGUSR1);
    cr_expect_eq(w.si.ssi_code, SI_TKILL);
    tl_signals_close(w.s);
    return 0;
}

Test(signal, pthread_kill_to_the_loop_thread_wakes_the_waiting_task,
     .timeout = 10)
{
    block_usr();
    cr_assert_eq(tl_run(main_pthread_kill, NULL), 0);
}

/* ---- cancel loses nothing ------------------------------------------------ */

/* The signal becomes pending and the waiter is cancelled before the loop
 * polls again: whether the waiter returns the signal (completed wins) or
 * -ECANCELED, the signal is seen exactly once. Then the same with a
 * deadline that expires first. */
static int main_cancel(void *arg)
{
    (void)arg;
    sigset_t set = usr_set();
    tl_signals *s;
    cr_assert_eq(tl_signals_open(&s, &set), 0);
    for (int i = 0; i < 20; i++) {
        struct waiter w = {.s = s};
        tl_task t = tl_test_spawn(wait_task, &w);
        tl_test_settle();
        cr_expect_eq(raise(SIGUSR1), 0);
        cr_expect_eq(tl_cancel(t), 0);
        tl_test_join(t);
        int seen = w.rc == SIGUSR1;
        cr_expect(w.rc == SIGUSR1 || w.rc == -ECANCELED, "rc %d", w.rc);
        if (!seen) {
            int rc;
            TL_WITH_TIMEOUT(5.0, &rc) {
                rc = tl_signals_wait(s, NULL);
            }
            cr_expect_eq(rc, SIGUSR1, "round %d: the signal was lost (%d)", i,
                         rc);
        }
        int rc;
        TL_WITH_TIMEOUT(0.5, &rc) {
            rc = tl_signals_wait(s, NULL);
        }
        cr_expect_eq(rc, -ETIMEDOUT, "round %d: seen twice", i);
    }
    /* A timed-out wait, then the signal: the next wait has it. */
    int rc;
    TL_WITH_TIMEOUT(1.0, &rc) {
        rc = tl_signals_wait(s, NULL);
    }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(raise(SIGUSR2), 0);
    cr_expect_eq(tl_signals_wait(s, NULL), SIGUSR2);
    tl_signals_close(s);
    return 0;
}

Test(signal, a_cancelled_wait_loses_no_signal, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel, NULL), 0);
}

/* ---- busy, close, bad input, fds ----------------------------------------- */

static int main_misc(void *arg)
{
    (void)arg;
    int fds = tl_test_count_fds();
    sigset_t set = usr_set();
    struct waiter w = {0};
    cr_assert_eq(tl_signals_open(&w.s, &set), 0);
    tl_task t = tl_test_spawn(wait_task, &w);
    tl_test_settle();
    cr_expect_eq(tl_signals_wait(w.s, NULL), -EBUSY);
    cr_expect_eq(tl_signals_close(w.s), 0);
    tl_test_join(t);
    cr_expect_eq(w.rc, TL_ECLOSED);
    cr_expect_eq(tl_signals_close(NULL), 0);

    tl_signals *s = (tl_signals *)1;
    sigset_t empty;
    sigemptyset(&empty);
    cr_expect_eq(tl_signals_open(&s, &empty), -EINVAL);
    cr_expect_null(s);
    sigset_t bad = usr_set();
    sigaddset(&bad, SIGKILL);
    cr_expect_eq(tl_signals_open(&s, &bad), -EINVAL);
    cr_expect_eq(tl_signals_open(&s, NULL), -EINVAL);
    cr_expect_eq(tl_signals_open(NULL, &set), -EINVAL);
    cr_expect_eq(tl_signals_wait(NULL, NULL), -EINVAL);
    cr_expect_eq(tl_test_count_fds(), fds, "an fd leaked");
    return 0;
}

Test(signal, busy_close_bad_sets_and_no_fd_leaked, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_misc, NULL), 0);
}

Test(signal, open_outside_a_task_is_refused, .timeout = 10)
{
    sigset_t set = usr_set();
    tl_signals *s;
    cr_expect_eq(tl_signals_open(&s, &set), TL_ENOTASK);
}

/* ---- Ctrl-C keeps its asyncio.run behaviour ----------------------------- */

static int main_ctrl_c(void *arg)
{
    (void)arg;
    sigset_t set = usr_set();
    tl_signals *s;
    cr_assert_eq(tl_signals_open(&s, &set), 0);
    cr_expect_eq(raise(SIGINT), 0);
    int rc = tl_sleep(1000.0); /* virtual: only the cancel ends it */
    tl_signals_close(s);
    return rc;
}

Test(signal, ctrl_c_still_cancels_the_main_task_with_a_watcher_open,
     .timeout = 10)
{
    signal(SIGINT, SIG_DFL);
    int rc = run_virtual(main_ctrl_c, NULL);
    cr_expect_eq(rc, -ECANCELED, "tl_run returned %d", rc);
}

/* ---- close gives the signal back ------------------------------------------ */

static int blocked_here(int sig)
{
    sigset_t cur;
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    return sigismember(&cur, sig);
}

/* A watcher of SIGINT takes Ctrl-C over; once closed, Ctrl-C cancels the
 * main task again (asyncio's remove_signal_handler(SIGINT)). */
static int main_sigint_back(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    tl_signals *s;
    cr_assert_eq(tl_signals_open(&s, &set), 0);
    cr_expect_eq(raise(SIGINT), 0);
    cr_expect_eq(tl_signals_wait(s, NULL), SIGINT);
    cr_expect_eq(tl_sleep(1.0), 0, "the watched SIGINT cancelled main");
    cr_expect_eq(tl_signals_close(s), 0);
    cr_expect_eq(blocked_here(SIGINT), 0, "SIGINT still blocked after close");
    cr_expect_eq(raise(SIGINT), 0);
    return tl_sleep(1000.0); /* virtual: only the cancel ends it early */
}

Test(signal, after_closing_a_sigint_watcher_ctrl_c_cancels_main_again,
     .timeout = 10)
{
    signal(SIGINT, SIG_DFL);
    int rc = run_virtual(main_sigint_back, NULL);
    cr_expect_eq(rc, -ECANCELED, "tl_run returned %d", rc);
}

/* Two watchers of one signal: closing one keeps the signal blocked and
 * the other one's; closing the last unblocks it. A signal still pending
 * at the last close is taken out, not delivered (SIGUSR1's default
 * action would end the test process). */
static int main_two_watchers(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    tl_signals *a, *b;
    cr_assert_eq(tl_signals_open(&a, &set), 0);
    cr_assert_eq(tl_signals_open(&b, &set), 0);
    cr_expect_eq(tl_signals_close(a), 0);
    cr_expect_eq(blocked_here(SIGUSR1), 1, "closing one watcher unblocked the other's signal");
    cr_expect_eq(raise(SIGUSR1), 0);
    int rc;
    TL_WITH_TIMEOUT(5.0, &rc) {
        rc = tl_signals_wait(b, NULL);
    }
    cr_expect_eq(rc, SIGUSR1);
    cr_expect_eq(raise(SIGUSR1), 0); /* pending at close */
    cr_expect_eq(tl_signals_close(b), 0);
    cr_expect_eq(blocked_here(SIGUSR1), 0, "SIGUSR1 still blocked after the last close");
    sigset_t pend;
    sigpending(&pend);
    cr_expect_eq(sigismember(&pend, SIGUSR1), 0);
    return 0;
}

Test(signal, two_watchers_of_one_signal_and_the_last_close_unblocks,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_two_watchers, NULL), 0);
}

/* A signal the program blocked itself stays blocked after close. */
static int main_kept_blocked(void *arg)
{
    (void)arg;
    sigset_t set = usr_set();
    tl_signals *s;
    cr_assert_eq(tl_signals_open(&s, &set), 0);
    cr_expect_eq(tl_signals_close(s), 0);
    cr_expect_eq(blocked_here(SIGUSR1), 1);
    cr_expect_eq(blocked_here(SIGUSR2), 1);
    return 0;
}

Test(signal, a_signal_blocked_before_the_watcher_stays_blocked, .timeout = 10)
{
    block_usr();
    cr_assert_eq(run_virtual(main_kept_blocked, NULL), 0);
}
