/* The blocking watchdog (invariant 9): "time.sleep blocks async", caught
 * live. One thread per process samples every loop's pulse (bumped at each
 * task resume) and running task; when a task has held its loop for longer
 * than the threshold it prints, while the task is still stuck:
 *
 *     tulip: task 'parse' has run 230 ms without yielding (loop #1)
 *
 * Threshold: TULIP_BLOCKING_MS (default 100; 0 disables), multiplied by 5
 * under sanitizers. The thread blocks every signal and sleeps between
 * samples; it never touches a loop's state except the atomics and the
 * task name (itself read with relaxed atomic loads).
 *
 * Lock order: registry lock only; the loop never waits on the watchdog.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static tl__loop *wd_loops;   /* registry, guarded by wd_lock */
static int wd_started;       /* guarded by wd_lock */
static int64_t wd_threshold_ns = -1;

static int64_t threshold_ns(void)
{
    const char *e = getenv("TULIP_BLOCKING_MS");
    int64_t ms = 100;
    if (e && *e) ms = strtoll(e, NULL, 10);
    if (ms <= 0) return 0;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    ms *= 5;
#endif
    return ms * 1000000;
}

static void sample(tl__loop *l, int64_t now)
{
    tl__task *t = atomic_load_explicit(&l->running_task, memory_order_relaxed);
    uint64_t pulse = atomic_load_explicit(&l->pulse, memory_order_relaxed);
    if (!t || pulse != l->wd_seen_pulse) {
        l->wd_seen_pulse = pulse;
        l->wd_since_ns = now;
        l->wd_reported = 0;
        return;
    }
    int64_t ran = now - l->wd_since_ns;
    /* Report at the threshold, then again each time the stall doubles. */
    if (ran >= wd_threshold_ns << l->wd_reported && l->wd_reported < 20) {
        /* Only atomics here: the name bytes (relaxed loads) and the slot
         * the loop published; the rest of *t belongs to the loop. */
        char name[sizeof t->name], label[48];
        for (size_t i = 0; i < sizeof name; i++)
            name[i] = __atomic_load_n(&t->name[i], __ATOMIC_RELAXED);
        name[sizeof name - 1] = '\0';
        uint32_t slot = atomic_load_explicit(&l->running, memory_order_relaxed);
        if (name[0])
            snprintf(label, sizeof label, "'%s'", name);
        else
            snprintf(label, sizeof label, "#%u", (unsigned)(slot ? slot - 1 : 0));
        tl__diag("task %s has run %lld ms without yielding (loop #%u): "
                 "a blocking call in a task stops every other task; use "
                 "tl_sleep / tl_to_thread", label, (long long)(ran / 1000000),
                 (unsigned)l->id);
        l->wd_reported++;
    }
}

static void *wd_main(void *arg)
{
    (void)arg;
    struct timespec period = {.tv_sec = 0,
                              .tv_nsec = (long)(wd_threshold_ns / 4)};
    if (period.tv_nsec >= 1000000000) period.tv_sec = period.tv_nsec / 1000000000,
                                      period.tv_nsec %= 1000000000;
    pthread_mutex_lock(&wd_lock);
    for (;;) {
        while (!wd_loops) pthread_cond_wait(&wd_cond, &wd_lock);
        int64_t now = tl__clock_ns();
        for (tl__loop *l = wd_loops; l; l = l->wd_next) sample(l, now);
        pthread_mutex_unlock(&wd_lock);
        nanosleep(&period, NULL);
        pthread_mutex_lock(&wd_lock);
    }
    return NULL;
}

/* fork(): the child has no watchdog thread and every loop it inherited is
 * dead, and the lock may have been held by the watchdog at the fork. Take
 * the lock across the fork, then give the child a clean registry so a new
 * tl_run there starts its own watchdog. */
static void wd_prepare(void) { pthread_mutex_lock(&wd_lock); }
static void wd_parent(void) { pthread_mutex_unlock(&wd_lock); }
static void wd_child(void)
{
    wd_loops = NULL;
    wd_started = 0;
    pthread_cond_init(&wd_cond, NULL); /* its waiter did not survive */
    pthread_mutex_unlock(&wd_lock);
}
static pthread_once_t wd_fork_once = PTHREAD_ONCE_INIT;
static void wd_install_fork(void)
{
    pthread_atfork(wd_prepare, wd_parent, wd_child);
}

void tl__watchdog_register(tl__loop *l)
{
    pthread_once(&wd_fork_once, wd_install_fork);
    pthread_mutex_lock(&wd_lock);
    if (wd_threshold_ns < 0) wd_threshold_ns = threshold_ns();
    if (wd_threshold_ns == 0) {
        pthread_mutex_unlock(&wd_lock);
        return;
    }
    l->wd_seen_pulse = 0;
    l->wd_since_ns = tl__clock_ns();
    l->wd_reported = 0;
    l->wd_next = wd_loops;
    wd_loops = l;
    if (!wd_started) {
        pthread_t th;
        pthread_attr_t a;
        sigset_t all, old;
        sigfillset(&all);
        /* The thread inherits this mask: it must never take a signal. */
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 64 * 1024);
        int e = pthread_create(&th, &a, wd_main, NULL);
        if (e == 0)
            wd_started = 1;
        else /* failures never silent: say the watchdog is off */
            tl__diag("the blocking watchdog could not start its thread "
                     "(%s): blocking calls in tasks go unreported; the "
                     "next tl_run tries again", strerror(e));
        pthread_attr_destroy(&a);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_cond_signal(&wd_cond);
    pthread_mutex_unlock(&wd_lock);
}

void tl__watchdog_unregister(tl__loop *l)
{
    pthread_mutex_lock(&wd_lock);
    for (tl__loop **p = &wd_loops; *p; p = &(*p)->wd_next)
        if (*p == l) {
            *p = l->wd_next;
            break;
        }
    pthread_mutex_unlock(&wd_lock);
}
