/* Core benchmark: what the scheduler costs, through the public API only.
 * One line per figure, "key: value unit  (what)", which tools/bench.sh
 * reads to put tulip beside its peers (bench/peers/ print the same keys):
 *
 *   yield1          tl_yield round trip, 1 task                  ns/yield
 *   yield10k        tl_yield round trip, 10,000 tasks            ns/yield
 *   spawn_join      tl_spawn + run + tl_join, one at a time      ns/task
 *   spawn_join100   the same in batches of 100 (spawn 100, join 100)
 *   sleepers_wall   N tasks each tl_sleep(0.01) on the real clock: spawn
 *                   them all and run them to completion          s
 *   sleepers_rss    resident memory per sleeping task, from
 *                   /proc/self/statm at the peak                 KiB/task
 *
 * Usage: bench_core [sleepers]   (default 1,000,000). Every part has a
 * fixed amount of work, and an alarm ends a run that takes over 10 min.
 * Timing uses the loop's clock (tl_now: CLOCK_MONOTONIC).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tulip.h>

static long sleepers = 1000000;

static double rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

/* ---- yield -------------------------------------------------------------- */

static long yields_each;

static int yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < yields_each; i++)
        if (tl_yield() < 0) return -1;
    return 0;
}

static int bench_yield(long ntasks, long total, const char *key)
{
    yields_each = total / ntasks;
    tl_group g;
    int rc = tl_group_enter(&g);
    if (rc < 0) return rc;
    double t0 = tl_now();
    for (long i = 0; i < ntasks && rc == 0; i++)
        rc = tl_group_spawn(g, yielder, NULL);
    rc = tl_group_wait(g, rc, NULL);
    double t1 = tl_now();
    if (rc < 0) return rc;
    printf("%s: %.1f ns/yield  (tl_yield round trip, %ld task%s)\n", key,
           (t1 - t0) * 1e9 / (double)(yields_each * ntasks), ntasks,
           ntasks == 1 ? "" : "s");
    return 0;
}

/* ---- spawn + join ------------------------------------------------------- */

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static int bench_spawn_join(long n, long batch, const char *key)
{
    tl_task t[100];
    if (batch > 100) batch = 100;
    double t0 = tl_now();
    for (long done = 0; done < n; done += batch) {
        for (long i = 0; i < batch; i++)
            if (tl_spawn(&t[i], nothing, NULL) < 0) return -1;
        for (long i = 0; i < batch; i++) {
            int st;
            if (tl_join(t[i], &st) < 0) return -1;
        }
    }
    double t1 = tl_now();
    printf("%s: %.1f ns/task  (tl_spawn + run + tl_join, %s)\n", key,
           (t1 - t0) * 1e9 / (double)n,
           batch == 1 ? "one at a time" : "in batches of 100");
    return 0;
}

/* ---- a million sleepers ------------------------------------------------- */

static double peak_rss;

static int sleeper(void *arg)
{
    (void)arg;
    return tl_sleep(0.01);
}

/* Spawned after every sleeper: when it runs, all of them have started and
 * sit in tl_sleep with their stacks touched. */
static int probe(void *arg)
{
    (void)arg;
    peak_rss = rss_bytes();
    return 0;
}

static int bench_sleepers(void)
{
    double base = rss_bytes();
    tl_group g;
    int rc = tl_group_enter(&g);
    if (rc < 0) return rc;
    double t0 = tl_now();
    for (long i = 0; i < sleepers && rc == 0; i++)
        rc = tl_group_spawn(g, sleeper, NULL);
    if (rc == 0) rc = tl_group_spawn(g, probe, NULL);
    rc = tl_group_wait(g, rc, NULL);
    double t1 = tl_now();
    if (rc < 0) {
        fprintf(stderr, "bench_core: sleepers: %s\n", tl_strerror(rc));
        return rc;
    }
    printf("sleepers_wall: %.2f s  (%ld tasks each sleeping 10 ms: spawn "
           "and run to completion)\n", t1 - t0, sleepers);
    printf("sleepers_rss: %.2f KiB/task  (resident memory per sleeping "
           "task, /proc/self/statm)\n",
           (peak_rss - base) / 1024.0 / (double)sleepers);
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    if (bench_yield(1, 2000000, "yield1") < 0) return 1;
    if (bench_yield(10000, 4000000, "yield10k") < 0) return 1;
    if (bench_spawn_join(1000000, 1, "spawn_join") < 0) return 1;
    if (bench_spawn_join(1000000, 100, "spawn_join100") < 0) return 1;
    if (bench_sleepers() < 0) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) sleepers = atol(argv[1]);
    if (sleepers < 1) sleepers = 1;
    alarm(600); /* bounded: a stuck run dies instead of hanging CI */
    int rc = tl_run(main_task, NULL);
    if (rc != 0) {
        fprintf(stderr, "bench_core: failed (%d)\n", rc);
        return 1;
    }
    return 0;
}
