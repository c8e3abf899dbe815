/* Generator benchmark: what an `async for` step costs. One line per
 * figure, "key: value unit  (what)" like the other bench programs:
 *
 *   gen_next   tl_gen_next + tl_gen_yield round trip (the producer and
 *              the consumer switch directly, through the scheduler once
 *              per TL__HANDOFF_CAP switches)                 ns/value
 *
 * Usage: bench_gen [values]   (default 10,000,000). Fixed work; an alarm
 * ends a run that takes over 2 min. Timing uses tl_now (CLOCK_MONOTONIC).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <tulip.h>

static long values = 10000000L;

static int numbers(tl_gen *g, void *arg)
{
    (void)arg;
    static long v;
    for (v = 0;; v++)
        if (tl_gen_yield(g, &v) < 0) return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    tl_gen *g;
    int rc = tl_gen_new(&g, numbers, NULL, NULL);
    if (rc < 0) return rc;
    void *v = NULL;
    /* Warm up: start the producer, fault its stack in. */
    for (int i = 0; i < 1000 && rc == 0; i++) rc = tl_gen_next(g, &v);
    double t0 = tl_now();
    long sum = 0;
    for (long i = 0; i < values && rc == 0; i++) {
        rc = tl_gen_next(g, &v);
        sum += *(long *)v;
    }
    double t1 = tl_now();
    int crc = tl_gen_close(g);
    if (rc < 0 || crc < 0) return rc < 0 ? rc : crc;
    printf("gen_next: %.1f ns/value  (tl_gen_next + tl_gen_yield round "
           "trip, %ld values)\n", (t1 - t0) * 1e9 / (double)values, values);
    return sum > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1) values = atol(argv[1]);
    if (values < 1) values = 1;
    alarm(120);
    int rc = tl_run(main_task, NULL);
    if (rc != 0) fprintf(stderr, "bench_gen: %s\n", tl_strerror(rc));
    return rc == 0 ? 0 : 1;
}
