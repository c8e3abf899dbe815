/* When a sync function takes a long time — to_thread.
 *
 *     def heavy_calc(n: int) -> int:
 *         # CPU-bound or blocking I/O
 *         ...
 *
 *     async def main():
 *         result = await asyncio.to_thread(heavy_calc, 100)
 *
 * tl_to_thread runs a blocking function on the loop's thread pool and
 * suspends only the calling task until it returns. Here heavy_calc burns
 * about 0.3 s of CPU (plus a blocking nanosleep, standing in for a
 * synchronous library call) while a ticker task keeps printing every
 * 0.1 s: the loop never stopped. Calling heavy_calc directly from the task
 * instead would freeze the ticker (and the loop watchdog would name the
 * task: see the pitfalls example).
 *
 * heavy_calc's argument lives on main's stack: that is safe because
 * tl_to_thread never returns while the worker may still use it — even if
 * main were cancelled meanwhile (invariant 1).
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <tulip.h>

static double t0;

struct calc {
    int n;
    uint64_t result;
};

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A blocking function: it knows nothing about tulip. */
static int heavy_calc(void *arg)
{
    struct calc *c = arg;
    /* Blocking I/O, as a synchronous library would do it. */
    nanosleep(&(struct timespec){0, 100 * 1000000}, NULL);
    /* CPU-bound: about 0.2 s of arithmetic. */
    uint64_t x = (uint64_t)c->n;
    double until = wall() + 0.2;
    while (wall() < until)
        for (int i = 0; i < 100000; i++) x = x * 6364136223846793005u + 1;
    c->result = x % 1000;
    return 0;
}

static int ticker(void *arg)
{
    int *ticks = arg;
    for (;;) {
        if (tl_sleep(0.1) < 0) return 0; /* cancelled: done */
        ++*ticks;
        printf("[%.2f s] ticker: tick %d (the loop is alive)\n",
               tl_now() - t0, *ticks);
    }
}

static int main_task(void *arg)
{
    (void)arg;
    t0 = tl_now();
    int ticks = 0;
    tl_task tk;
    int rc = tl_spawn(&tk, ticker, &ticks);
    if (rc < 0) return rc;

    struct calc c = {.n = 100};
    printf("[%.2f s] main: result = await to_thread(heavy_calc, 100)\n",
           tl_now() - t0);
    int status = 0;
    rc = tl_to_thread(heavy_calc, &c, &status);
    if (rc < 0) return rc;
    printf("[%.2f s] main: heavy_calc returned %d, result %llu\n",
           tl_now() - t0, status, (unsigned long long)c.result);

    tl_cancel(tk);
    if ((rc = tl_join(tk, NULL)) < 0) return rc;
    printf("[%.2f s] main: the ticker ticked %d times while heavy_calc "
           "ran\n", tl_now() - t0, ticks);
    return ticks >= 1 ? 0 : 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: result = await asyncio.to_thread(heavy_calc, 100)");
    puts("  # C:      rc = tl_to_thread(heavy_calc, &c, &status);");
    return tl_run(main_task, NULL) == 0 ? 0 : 1;
}
