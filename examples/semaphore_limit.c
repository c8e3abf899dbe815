/* Exercise 3: cap concurrency with a Semaphore, and compare 1 / 5 / 100.
 *
 *     async def fetch_all(urls: list[str], concurrency: int = 10):
 *         sem = asyncio.Semaphore(concurrency)
 *
 *         async def fetch_one(url):
 *             async with sem:
 *                 return await fetch(url)
 *
 *         return await asyncio.gather(*[fetch_one(u) for u in urls])
 *
 * In C the semaphore is a tl_sem on fetch_all's stack (it lives as long as
 * the gather that uses it), and `async with sem:` is TL_WITH_SEM: the
 * permit is released however the block is left. Each fetch is a 50 ms
 * tl_sleep on the real clock (the exercise's 100 URLs at 1 s each would
 * take minutes), so the ideal totals are 100 x 50 ms / concurrency:
 * 5 s, 1 s and 50 ms.
 */
#include <stdio.h>
#include <time.h>

#include <tulip.h>

#define NURLS 100
#define FETCH_SECONDS 0.05

struct job {
    struct fetch_all *all;
    int id;
    char result[32];
};

struct fetch_all {
    tl_sem sem;
    int in_flight, max_in_flight;
    struct job jobs[NURLS];
};

static double perf_counter(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* async def fetch(url): await asyncio.sleep(...); return "..." */
static int fetch(struct job *j)
{
    int rc = tl_sleep(FETCH_SECONDS);
    if (rc < 0) return rc;
    snprintf(j->result, sizeof j->result, "page %d", j->id);
    return 0;
}

/* async def fetch_one(url): async with sem: return await fetch(url) */
static int fetch_one(void *arg)
{
    struct job *j = arg;
    struct fetch_all *a = j->all;
    int rc;
    TL_WITH_SEM(&a->sem, &rc)
    {
        if (++a->in_flight > a->max_in_flight) a->max_in_flight = a->in_flight;
        rc = fetch(j);
        a->in_flight--;
    }
    return rc;
}

struct run {
    int concurrency;
    int max_in_flight;
    int failed;
};

/* async def fetch_all(urls, concurrency) */
static int fetch_all(void *arg)
{
    struct run *r = arg;
    struct fetch_all a = {0}; /* on this task's stack: ~5 KiB */
    tl_call calls[NURLS];
    int statuses[NURLS];
    if (tl_sem_init(&a.sem, r->concurrency) < 0) return -EINVAL;
    for (int i = 0; i < NURLS; i++) {
        a.jobs[i] = (struct job){.all = &a, .id = i};
        calls[i] = TL_CALL(fetch_one, &a.jobs[i]);
    }
    int rc = tl_gather(NURLS, calls, statuses);
    for (int i = 0; i < NURLS; i++) r->failed += statuses[i] != 0;
    r->max_in_flight = a.max_in_flight;
    tl_sem_destroy(&a.sem);
    return rc;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const int levels[] = {1, 5, 100};
    int ok = 1;
    printf("%d fetches of %.0f ms each, concurrency capped by tl_sem:\n\n",
           NURLS, FETCH_SECONDS * 1000);
    printf("concurrency | total time | ideal  | max in flight\n");
    printf("------------+------------+--------+--------------\n");
    for (size_t k = 0; k < sizeof levels / sizeof *levels; k++) {
        struct run r = {.concurrency = levels[k]};
        double start = perf_counter();
        int rc = tl_run(fetch_all, &r);
        double took = perf_counter() - start;
        int rounds = (NURLS + r.concurrency - 1) / r.concurrency;
        double ideal = rounds * FETCH_SECONDS;
        printf("%11d | %8.3f s | %4.2f s | %d\n", r.concurrency, took, ideal,
               r.max_in_flight);
        /* The cap must hold exactly; the time can only be late, never
         * early (a loaded machine makes it later). */
        if (rc != 0 || r.failed || r.max_in_flight != r.concurrency ||
            took < ideal * 0.99)
            ok = 0;
    }
    printf("\nThe total is about (fetches / concurrency) x fetch time: the "
           "semaphore decides how\nmany fetches wait at once. Choosing the "
           "value: the time falls until the server\nor your own sockets and "
           "memory become the bottleneck, so pick the largest value\nthe "
           "server tolerates (its rate limit, a connection pool's size: "
           "often 5-20 per\nhost), not the largest that fits in memory.\n");
    return ok ? 0 : 1;
}
