/* Sync vs async — one picture (the seed's first two listings).
 *
 *     # Sync — sequential
 *     def fetch(url: str) -> str:
 *         time.sleep(1)             # wait for network response (1 second)
 *         return f"data from {url}"
 *
 *     def main():
 *         a = fetch("a")            # 1 second
 *         b = fetch("b")            # 1 second
 *         c = fetch("c")            # 1 second
 *         print(a, b, c)            # total 3 seconds
 *
 *     # Async — concurrent
 *     async def fetch(url: str) -> str:
 *         await asyncio.sleep(1)
 *         return f"data from {url}"
 *
 *     async def main():
 *         results = await asyncio.gather(fetch("a"), fetch("b"), fetch("c"))
 *         print(results)            # total 1 second
 *
 *     asyncio.run(main())
 *
 * In C a task function is `int fn(void *arg)`: its result (a string here)
 * travels through `arg`, its return value is 0 or a negative error code.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <tulip.h>

struct fetch {
    const char *url;
    char result[32];
};

static double perf_counter(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* def fetch(url): time.sleep(1) — plain C, no tulip at all. */
static void fetch_sync(struct fetch *f)
{
    sleep(1); /* wait for network response (1 second) */
    snprintf(f->result, sizeof f->result, "data from %s", f->url);
}

/* async def fetch(url): await asyncio.sleep(1) */
static int fetch(void *arg)
{
    struct fetch *f = arg;
    int rc = tl_sleep(1.0);
    if (rc < 0) return rc; /* cancelled: pass it on */
    snprintf(f->result, sizeof f->result, "data from %s", f->url);
    return 0;
}

static int async_main(void *arg)
{
    struct fetch *f = arg; /* three of them */
    tl_call calls[] = {TL_CALL(fetch, &f[0]), TL_CALL(fetch, &f[1]),
                       TL_CALL(fetch, &f[2])};
    int statuses[3];
    int rc = tl_gather(3, calls, statuses);
    if (rc < 0) return rc;
    printf("['%s', '%s', '%s']\n", f[0].result, f[1].result, f[2].result);
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: a = fetch(\"a\"); b = fetch(\"b\"); c = fetch(\"c\")      "
         "(time.sleep(1) each)");
    puts("  #         await asyncio.gather(fetch(\"a\"), fetch(\"b\"), "
         "fetch(\"c\"))  (asyncio.sleep(1) each)");
    puts("  # C:      fetch_sync(&a); ...  vs  tl_run(main) -> tl_gather(3, "
         "calls, statuses)");

    struct fetch s[3] = {{"a", ""}, {"b", ""}, {"c", ""}};
    double t0 = perf_counter();
    fetch_sync(&s[0]);
    fetch_sync(&s[1]);
    fetch_sync(&s[2]);
    double sync_s = perf_counter() - t0;
    printf("%s %s %s\n", s[0].result, s[1].result, s[2].result);
    printf("sync, sequential:   %.2f s\n", sync_s);

    struct fetch a[3] = {{"a", ""}, {"b", ""}, {"c", ""}};
    t0 = perf_counter();
    int rc = tl_run(async_main, a);
    double async_s = perf_counter() - t0;
    if (rc < 0) {
        fprintf(stderr, "tl_run: %s\n", tl_strerror(rc));
        return 1;
    }
    printf("async, tl_gather:   %.2f s\n", async_s);
    printf("The waits overlap: %.1fx faster, because the bottleneck is "
           "waiting, not the CPU.\n", sync_s / async_s);
    /* Anything far from 3 s vs 1 s is unexpected. */
    return sync_s >= 2.9 && async_s >= 0.99 && async_s < 2.0 ? 0 : 1;
}
