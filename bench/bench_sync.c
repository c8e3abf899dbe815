/* Coordination benchmark: semaphores, locks and queues through the public
 * API. One line per figure, "key: value unit  (what)":
 *
 *   sem_total       100,000 tasks, each holding one of 100 permits for
 *                   1 ms (tl_sleep, real clock), spawned at once: wall
 *                   time from the first spawn to the last release    s
 *                   (ideal 1.000 s: 1,000 rounds of 1 ms)
 *   sem_startup     of which: spawning the tasks and running each to its
 *                   first wait (each takes a stack then)             s
 *   sem_round       one round of 100 permit holders once all tasks
 *                   wait: sleep, release, hand-off, next sleep       ms
 *                   (ideal 1.000 ms; the excess is the timer's wake-up
 *                   latency plus running 200 tasks)
 *   sem_rss         resident memory per waiting task                 KiB
 *   sem_uncontended tl_sem_acquire + tl_sem_release, no waiter    ns/pair
 *   lock_handoff    100 tasks taking turns on one tl_lock (every
 *                   release hands it to the next waiter)       ns/handoff
 *                   (only one task is ready at a time, so each turn is
 *                   also one loop iteration with its zero-timeout poll:
 *                   this is mostly that syscall)
 *   queue_1x1       one producer, one consumer, bounded FIFO (1,024)
 *                                                                items/s
 *   queue_4x4       four producers, four consumers, same queue    items/s
 *
 * Usage: bench_sync [tasks]   (default 100,000). Each part does a fixed
 * amount of work sized to take about a second; an alarm ends a run that
 * takes over 60 s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <tulip.h>

#include "bench_util.h"

static long ntasks = 100000;

/* ---- semaphore: 100,000 tasks through 100 permits ------------------------ */

#define PERMITS 100
#define HOLD 0.001

static struct {
    tl_sem sem;
    long started, done;
    double t_first_round, t_end;
} S;

static int holder(void *arg)
{
    (void)arg;
    S.started++;
    int rc;
    TL_WITH_SEM(&S.sem, &rc) { rc = tl_sleep(HOLD); }
    if (rc == 0 && ++S.done == PERMITS) S.t_first_round = tl_now();
    if (S.done == ntasks) S.t_end = tl_now();
    return rc;
}

static int bench_sem(void *arg)
{
    (void)arg;
    if (tl_sem_init(&S.sem, PERMITS) < 0) return 1;
    tl_spawn_opts o = {.name = "holder", .stack_size = 32 * 1024};
    double base = bench_rss_bytes();
    double t0 = tl_now();
    for (long i = 0; i < ntasks; i++)
        if (tl_spawn_ex(NULL, &o, holder, NULL) < 0) return 1;
    while (S.started < ntasks) /* all of them run to their first wait */
        if (tl_yield() < 0) return 1;
    double t_started = tl_now();
    double rss = bench_rss_bytes() - base;
    while (S.done < ntasks)
        if (tl_sleep(0.01) < 0) return 1;
    double total = S.t_end - t0;
    long rounds = ntasks / PERMITS;
    double ideal = (double)rounds * HOLD;
    double round = (S.t_end - S.t_first_round) / (double)(rounds - 1);
    printf("sem_total: %.3f s  (%ld tasks, %d permits, %.0f ms each; "
           "ideal %.3f s, %.1f%% over)\n", total, ntasks, PERMITS,
           HOLD * 1e3, ideal, (total - ideal) / ideal * 100);
    printf("sem_startup: %.3f s  (spawning %ld tasks and running each to "
           "its first wait; %.2f us/task)\n", t_started - t0, ntasks,
           (t_started - t0) / (double)ntasks * 1e6);
    printf("sem_round: %.3f ms  (a round of %d holders once all wait: "
           "sleep 1 ms, release, hand-off; ideal %.3f ms)\n", round * 1e3,
           PERMITS, HOLD * 1e3);
    printf("sem_rss: %.2f KiB/task  (resident memory with all %ld tasks "
           "waiting)\n", rss / 1024.0 / (double)ntasks, ntasks);
    return tl_sem_destroy(&S.sem) == 0 ? 0 : 1;
}

static int bench_sem_uncontended(void *arg)
{
    (void)arg;
    tl_sem s;
    tl_sem_init(&s, 1);
    long n = 20000000;
    double t0 = tl_now();
    for (long i = 0; i < n; i++) {
        if (tl_sem_acquire(&s) < 0) return 1;
        tl_sem_release(&s);
        /* Never run 100 ms without yielding (the loop watchdog). */
        if ((i & 0xfffff) == 0 && tl_yield() < 0) return 1;
    }
    double t = tl_now() - t0;
    printf("sem_uncontended: %.1f ns/pair  (tl_sem_acquire + "
           "tl_sem_release, nobody waiting)\n", t / (double)n * 1e9);
    return 0;
}

/* ---- lock: 100 tasks taking turns --------------------------------------- */

#define LOCKERS 100

static struct {
    tl_lock lock;
    long turns; /* per task */
} L;

static int locker(void *arg)
{
    (void)arg;
    for (long i = 0; i < L.turns; i++) {
        if (tl_lock_acquire(&L.lock) < 0) return 1;
        /* Yield while holding it: everyone else queues up, and each
         * release hands the lock to the next in line. */
        if (tl_yield() < 0) return 1;
        tl_lock_release(&L.lock);
    }
    return 0;
}

static int bench_lock(void *arg)
{
    (void)arg;
    tl_lock_init(&L.lock);
    L.turns = 20000;
    tl_task t[LOCKERS];
    double t0 = tl_now();
    for (int i = 0; i < LOCKERS; i++)
        if (tl_spawn(&t[i], locker, NULL) < 0) return 1;
    for (int i = 0; i < LOCKERS; i++) {
        int st = 0;
        if (tl_join(t[i], &st) < 0 || st) return 1;
    }
    double el = tl_now() - t0;
    long n = L.turns * LOCKERS;
    printf("lock_handoff: %.1f ns/handoff  (%d tasks taking turns on one "
           "tl_lock, %ld turns: acquire, yield, release to the next; one "
           "loop iteration and poll per turn)\n", el / (double)n * 1e9,
           LOCKERS, n);
    return tl_lock_destroy(&L.lock) == 0 ? 0 : 1;
}

/* ---- queue throughput ----------------------------------------------------- */

static struct {
    tl_queue q;
    long per_producer;
    long consumed;
} Q;

static int producer(void *arg)
{
    (void)arg;
    for (long i = 1; i <= Q.per_producer; i++)
        if (tl_queue_put(&Q.q, (void *)i) < 0) return 1;
    return 0;
}

static int consumer(void *arg)
{
    (void)arg;
    for (;;) {
        void *x;
        int rc = tl_queue_get(&Q.q, &x);
        if (rc == TL_EQSHUTDOWN) return 0;
        if (rc < 0) return 1;
        Q.consumed++;
    }
}

static int bench_queue(int np, int nc, long total, const char *key)
{
    if (tl_queue_init(&Q.q, TL_QUEUE_FIFO, 1024) < 0) return 1;
    Q.per_producer = total / np;
    Q.consumed = 0;
    tl_task p[8], c[8];
    double t0 = tl_now();
    for (int i = 0; i < nc; i++)
        if (tl_spawn(&c[i], consumer, NULL) < 0) return 1;
    for (int i = 0; i < np; i++)
        if (tl_spawn(&p[i], producer, NULL) < 0) return 1;
    int st, bad = 0;
    for (int i = 0; i < np; i++)
        if (tl_join(p[i], &st) < 0 || st) bad = 1;
    tl_queue_shutdown(&Q.q, 0); /* consumers drain, then stop */
    for (int i = 0; i < nc; i++)
        if (tl_join(c[i], &st) < 0 || st) bad = 1;
    double t = tl_now() - t0;
    long n = Q.per_producer * np;
    if (bad || Q.consumed != n) return 1;
    printf("%s: %.0f items/s  (%d producer%s, %d consumer%s, bounded FIFO "
           "of 1,024, %ld items; %.1f ns/item)\n", key, (double)n / t, np,
           np > 1 ? "s" : "", nc, nc > 1 ? "s" : "", n, t / (double)n * 1e9);
    return tl_queue_destroy(&Q.q) == 0 ? 0 : 1;
}

static int bench_queues(void *arg)
{
    (void)arg;
    return bench_queue(1, 1, 5000000, "queue_1x1") ||
           bench_queue(4, 4, 5000000, "queue_4x4");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) ntasks = atol(argv[1]);
    if (ntasks < PERMITS) ntasks = PERMITS;
    alarm(60);
    tl_config cfg = {.no_sigint = 1};
    int rc = tl_run_with(&cfg, bench_sem, NULL);
    rc |= tl_run_with(&cfg, bench_sem_uncontended, NULL);
    rc |= tl_run_with(&cfg, bench_lock, NULL);
    rc |= tl_run_with(&cfg, bench_queues, NULL);
    if (rc) fprintf(stderr, "bench_sync: a part failed\n");
    return rc ? 1 : 0;
}
