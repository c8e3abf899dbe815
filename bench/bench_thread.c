/* Thread-pool benchmark: what tl_to_thread costs. One line per figure,
 * "key: value unit  (what)" like the other bench programs:
 *
 *   to_thread       tl_to_thread of an empty function, one at a time:
 *                   queue, wake a worker, run, post the completion, wake
 *                   the loop through its eventfd               us/call
 *   to_thread64     the same with 64 tasks calling at once (completions
 *                   are batched: one loop wake-up per burst)   us/call
 *
 * Usage: bench_thread [calls]   (default 20,000). Fixed work; an alarm
 * ends a run that takes over 2 min. Timing uses tl_now (CLOCK_MONOTONIC).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <tulip.h>

static long calls = 20000;

static int empty(void *arg) { return arg != NULL; }

static int caller(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        int r;
        int rc = tl_to_thread(empty, NULL, &r);
        if (rc < 0) return rc;
    }
    return 0;
}

static int run_concurrent(int ntasks, long total, const char *key)
{
    long each = total / ntasks;
    tl_group g;
    int rc = tl_group_enter(&g);
    if (rc < 0) return rc;
    double t0 = tl_now();
    for (int i = 0; i < ntasks && rc == 0; i++)
        rc = tl_group_spawn(g, caller, &each);
    rc = tl_group_wait(g, rc, NULL);
    double t1 = tl_now();
    if (rc < 0) return rc;
    printf("%s: %.2f us/call  (tl_to_thread round trip, %d task%s calling)\n",
           key, (t1 - t0) * 1e6 / (double)(each * ntasks), ntasks,
           ntasks == 1 ? "" : "s");
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    long warm = 100;
    int rc = caller(&warm); /* start the pool's threads */
    if (rc == 0) rc = run_concurrent(1, calls, "to_thread");
    if (rc == 0) rc = run_concurrent(64, calls, "to_thread64");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1) calls = atol(argv[1]);
    if (calls < 64) calls = 64;
    alarm(120);
    int rc = tl_run(main_task, NULL);
    if (rc != 0) fprintf(stderr, "bench_thread: %s\n", tl_strerror(rc));
    return rc == 0 ? 0 : 1;
}
