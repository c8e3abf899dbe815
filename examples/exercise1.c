/* Exercise 1: sequential await vs gather, timed.
 *
 *     async def fetch(url: str) -> str:
 *         await asyncio.sleep(1)
 *         return f"dummy result for {url}"
 *
 *     async def sequential(urls):
 *         return [await fetch(u) for u in urls]
 *
 *     async def concurrent(urls):
 *         return await asyncio.gather(*(fetch(u) for u in urls))
 *
 *     start = time.perf_counter(); asyncio.run(sequential(URLS))
 *     print(time.perf_counter() - start)        # ~3 s
 *     start = time.perf_counter(); asyncio.run(concurrent(URLS))
 *     print(time.perf_counter() - start)        # ~1 s
 *
 * `await fetch(u)` in C is simply the call fetch(&u) inside a task: the
 * task suspends in tl_sleep and resumes there. time.perf_counter() is
 * clock_gettime(CLOCK_MONOTONIC).
 */
#include <stdio.h>
#include <time.h>

#include <tulip.h>

#define NURLS 3

struct fetch {
    const char *url;
    char result[40];
};

static double perf_counter(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fetch(void *arg)
{
    struct fetch *f = arg;
    int rc = tl_sleep(1.0);
    if (rc < 0) return rc;
    snprintf(f->result, sizeof f->result, "dummy result for %s", f->url);
    return 0;
}

static int sequential(void *arg)
{
    struct fetch *f = arg;
    for (int i = 0; i < NURLS; i++) {
        int rc = fetch(&f[i]); /* await fetch(u) */
        if (rc < 0) return rc;
    }
    return 0;
}

static int concurrent(void *arg)
{
    struct fetch *f = arg;
    tl_call calls[NURLS];
    int st[NURLS];
    for (int i = 0; i < NURLS; i++) calls[i] = TL_CALL(fetch, &f[i]);
    return tl_gather(NURLS, calls, st);
}

static double timed(const char *label, tl_fn fn)
{
    struct fetch f[NURLS] = {{"a", ""}, {"b", ""}, {"c", ""}};
    double start = perf_counter();
    int rc = tl_run(fn, f);
    double took = perf_counter() - start;
    printf("%-12s %.3f s  rc=%d  ['%s', '%s', '%s']\n", label, took, rc,
           f[0].result, f[1].result, f[2].result);
    return rc == 0 ? took : -1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: [await fetch(u) for u in urls]  vs  await "
         "asyncio.gather(*(fetch(u) for u in urls)), timed");
    puts("  # C:      for (...) fetch(&f[i]);          vs  tl_gather(3, "
         "calls, st), timed with clock_gettime");
    double seq = timed("sequential", sequential);
    double con = timed("gather", concurrent);
    if (seq < 0 || con < 0) return 1;
    printf("gather is %.1fx faster: the three waits overlap.\n", seq / con);
    return seq >= 2.99 && con >= 0.99 && con < 2.0 ? 0 : 1;
}
