/* tulip's side of the comparison benchmarks (tools/bench.sh runs it next to
 * the programs in bench/peers/, which implement the same scenarios, each in
 * its own runtime's idiomatic code):
 *
 *   bench_core spawn N     N tasks spawned into a group, all existing before
 *                          any runs (a spawned task runs only when the
 *                          spawner suspends), then wait for all   ns/task
 *   bench_core pingpong N  two tasks bouncing a message through two 1-slot
 *                          queues, N round trips                ns/switch
 *   bench_core yield N     a lone task calling tl_yield N times  ns/yield
 *   bench_core sleep N     N tasks each tl_sleep(1.0), all asleep at once:
 *                          wall time from the first spawn to the last
 *                          wake-up (s) and resident bytes per sleeping
 *                          task, read once every task is asleep  B/task
 *                          ("note: ..." if some had already woken then)
 *   bench_core sem N       N tasks through a 100-permit semaphore, each
 *                          holding it for tl_sleep(0.001): wall   s
 *   bench_core burst N     N sleepers asleep at once, an idle 0.5 s, then N
 *                          again: time until all are asleep, each burst
 *                          (tulip only: the pool's reuse)       ns/task
 *
 * Each run prints "key: value unit" lines (the keys tools/bench.sh reads)
 * and exits 1 on any failure. Every scenario uses tulip's defaults (stack
 * size, guard, backend); tools/bench.sh runs each in a fresh process so
 * every stack is fresh. An alarm ends a run that takes over 10 minutes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tulip.h>

#include "bench_util.h"

static long n;

static int fail(const char *what, int rc)
{
    fprintf(stderr, "bench_core: %s: %s\n", what, tl_strerror(rc));
    return 1;
}

/* ---- spawn: N live tasks, then wait for all ----------------------------- */

static long ran;

static int nothing(void *arg)
{
    (void)arg;
    ran++;
    return 0;
}

static int run_spawn(void)
{
    tl_group g;
    int rc = tl_group_enter(&g);
    if (rc < 0) return fail("tl_group_enter", rc);
    double t0 = tl_now();
    for (long i = 0; i < n && rc == 0; i++)
        rc = tl_group_spawn(g, nothing, NULL);
    long before = ran; /* 0: none ran while the others were spawned */
    rc = tl_group_wait(g, rc, NULL);
    double t1 = tl_now();
    if (rc < 0) return fail("spawn", rc);
    if (before != 0 || ran != n) {
        fprintf(stderr, "bench_core: spawn: %ld ran early, %ld of %ld ran\n",
                before, ran, n);
        return 1;
    }
    printf("spawn: %.1f ns/task\n", (t1 - t0) * 1e9 / (double)n);
    return 0;
}

/* ---- ping-pong through 1-slot queues ------------------------------------ */

static tl_queue ping, pong;

static int ponger(void *arg)
{
    (void)arg;
    for (long i = 0; i < n; i++) {
        void *msg;
        int rc = tl_queue_get(&ping, &msg);
        if (rc == 0) rc = tl_queue_put(&pong, msg);
        if (rc < 0) return rc;
    }
    return 0;
}

static int run_pingpong(void)
{
    if (tl_queue_init(&ping, TL_QUEUE_FIFO, 1) < 0 ||
        tl_queue_init(&pong, TL_QUEUE_FIFO, 1) < 0)
        return fail("tl_queue_init", -EINVAL);
    tl_task t;
    int rc = tl_spawn(&t, ponger, NULL);
    if (rc < 0) return fail("tl_spawn", rc);
    double t0 = tl_now();
    for (long i = 0; i < n && rc == 0; i++) {
        void *msg;
        rc = tl_queue_put(&ping, &ping);
        if (rc == 0) rc = tl_queue_get(&pong, &msg);
    }
    double t1 = tl_now();
    int st = 0;
    int jrc = tl_join(t, &st);
    if (rc < 0 || jrc < 0 || st < 0)
        return fail("pingpong", rc < 0 ? rc : jrc < 0 ? jrc : st);
    tl_queue_destroy(&ping);
    tl_queue_destroy(&pong);
    /* A round trip is two switches: to the ponger and back. */
    printf("pingpong: %.1f ns/switch\n", (t1 - t0) * 1e9 / (2.0 * (double)n));
    return 0;
}

/* ---- a lone task's yield ------------------------------------------------ */

static int run_yield(void)
{
    double t0 = tl_now();
    for (long i = 0; i < n; i++) {
        int rc = tl_yield();
        if (rc < 0) return fail("tl_yield", rc);
    }
    double t1 = tl_now();
    printf("yield: %.1f ns/yield\n", (t1 - t0) * 1e9 / (double)n);
    return 0;
}

/* ---- N tasks asleep at once --------------------------------------------- */

static long started, woke;

static int sleeper(void *arg)
{
    (void)arg;
    started++;
    int rc = tl_sleep(1.0);
    if (rc == 0) woke++;
    return rc;
}

static int run_sleep(void)
{
    double base = bench_rss_bytes();
    tl_group g;
    int rc = tl_group_enter(&g);
    if (rc < 0) return fail("tl_group_enter", rc);
    double t0 = tl_now();
    for (long i = 0; i < n && rc == 0; i++)
        rc = tl_group_spawn(g, sleeper, NULL);
    /* One yield runs every sleeper up to its tl_sleep (FIFO); the loop
     * covers a scheduler that needs more. */
    while (rc == 0 && started < n) rc = tl_yield();
    double peak = bench_rss_bytes();
    long early = woke; /* > 0: not all asleep at once (a slow machine) */
    rc = tl_group_wait(g, rc, NULL);
    double t1 = tl_now();
    if (rc < 0) return fail("sleep", rc);
    if (woke != n) {
        fprintf(stderr, "bench_core: sleep: %ld of %ld woke\n", woke, n);
        return 1;
    }
    printf("sleep_wall: %.3f s\n", t1 - t0);
    printf("sleep_rss: %.0f B/task\n", (peak - base) / (double)n);
    if (early > 0)
        printf("note: %ld of %ld tasks woke before the last one slept: not "
               "all asleep at once\n", early, n);
    return 0;
}

/* ---- N tasks through a 100-permit semaphore ----------------------------- */

static tl_sem sem;
static long held;

static int holder(void *arg)
{
    (void)arg;
    int rc;
    TL_WITH_SEM(&sem, &rc) {
        rc = tl_sleep(0.001);
        if (rc == 0) held++;
    }
    return rc;
}

static int run_sem(void)
{
    int rc = tl_sem_init(&sem, 100);
    if (rc < 0) return fail("tl_sem_init", rc);
    tl_group g;
    rc = tl_group_enter(&g);
    if (rc < 0) return fail("tl_group_enter", rc);
    double t0 = tl_now();
    for (long i = 0; i < n && rc == 0; i++)
        rc = tl_group_spawn(g, holder, NULL);
    rc = tl_group_wait(g, rc, NULL);
    double t1 = tl_now();
    if (rc < 0) return fail("sem", rc);
    if (held != n) {
        fprintf(stderr, "bench_core: sem: %ld of %ld held it\n", held, n);
        return 1;
    }
    tl_sem_destroy(&sem);
    printf("sem_wall: %.3f s\n", t1 - t0);
    return 0;
}

/* ---- a burst after a burst ---------------------------------------------- */

/* N sleepers asleep at once, twice, with a pause between in which the
 * loop idles (and the stack pool gives back what it keeps beyond its warm
 * cache): how long each burst took to get every task asleep. */
static int burst_once(double *ns_per_task)
{
    tl_group g;
    long base = started;
    int rc = tl_group_enter(&g);
    if (rc < 0) return rc;
    double t0 = tl_now();
    for (long i = 0; i < n && rc == 0; i++)
        rc = tl_group_spawn(g, sleeper, NULL);
    while (rc == 0 && started - base < n) rc = tl_yield();
    *ns_per_task = (tl_now() - t0) * 1e9 / (double)n;
    return tl_group_wait(g, rc, NULL);
}

static int run_burst(void)
{
    double first, second;
    int rc = burst_once(&first);
    if (rc == 0) rc = tl_sleep(0.5); /* idle */
    if (rc == 0) rc = burst_once(&second);
    if (rc < 0) return fail("burst", rc);
    printf("burst_first: %.1f ns/task\n", first);
    printf("burst_second: %.1f ns/task\n", second);
    return 0;
}

/* ---- main ---------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*run)(void);
} scenarios[] = {
    {"spawn", run_spawn}, {"pingpong", run_pingpong}, {"yield", run_yield},
    {"sleep", run_sleep}, {"sem", run_sem}, {"burst", run_burst},
};
static int chosen = -1;

static int main_task(void *arg)
{
    (void)arg;
    return scenarios[chosen].run();
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3) {
        for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
            if (strcmp(argv[1], scenarios[i].name) == 0) chosen = (int)i;
        n = atol(argv[2]);
    }
    if (chosen < 0 || n < 1) {
        fprintf(stderr, "usage: bench_core spawn|pingpong|yield|sleep|sem|burst N\n");
        return 2;
    }
    alarm(600); /* bounded: a stuck run dies instead of hanging */
    int rc = tl_run(main_task, NULL);
    if (rc != 0) {
        fprintf(stderr, "bench_core: %s failed (%d)\n", argv[1], rc);
        return 1;
    }
    return 0;
}
