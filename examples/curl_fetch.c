/* Exercise 3 through libcurl: 100 HTTP fetches, concurrency 1 / 5 / 100.
 *
 *     async def fetch_all(urls, concurrency):
 *         sem = asyncio.Semaphore(concurrency)
 *         async with httpx.AsyncClient(limits=httpx.Limits(
 *                 max_connections=concurrency)) as client:
 *             async def fetch_one(url):
 *                 async with sem:
 *                     return (await client.get(url)).text
 *             return await asyncio.gather(*[fetch_one(u) for u in urls])
 *
 * The same exercise as http_fetch, with httpx's client instead of a
 * hand-written one: libtulip-curl (tulip/curl.h) drives libcurl, whose
 * connection cache keeps the connections alive, so each run opens at
 * most `concurrency` connections for its 100 requests. The server is
 * examples/http_server (the seed's slow server: 50 ms a request), started
 * here on a free loopback port and stopped with SIGTERM at the end. The
 * ideal totals are 100 x 50 ms / concurrency: 5 s, 1 s, 50 ms.
 */
#include <stdio.h>
#include <time.h>

#include <tulip/curl.h>

#include "demo_servers.h"

#define MAX_URLS 100
#define DELAY_MS 50

static int port;
static int nurls = MAX_URLS; /* curl_fetch [N]: fewer (the test's quick run) */

struct run {
    int concurrency;
    tl_curl *client;
    tl_sem sem;
    int in_flight, max_in_flight;
    long connections;
    int failed;
    char first_body[64];
};

struct job {
    struct run *r;
    int id;
};

/* async def fetch_one(url): async with sem: return await client.get(url) */
static int fetch_one(void *arg)
{
    struct job *j = arg;
    struct run *r = j->r;
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/item/%d", port, j->id);
    int rc;
    TL_WITH_SEM(&r->sem, &rc)
    {
        if (++r->in_flight > r->max_in_flight) r->max_in_flight = r->in_flight;
        tl_curl_response resp;
        rc = tl_curl_get(r->client, url, &resp);
        r->in_flight--;
        if (rc == 0) {
            r->connections += resp.new_connections;
            if (resp.status != 200) rc = tl_fail(-EPROTO, "%s: HTTP %ld", url, resp.status);
            if (j->id == 0) snprintf(r->first_body, sizeof r->first_body, "%s", resp.body);
        }
        tl_curl_response_free(&resp);
    }
    if (rc < 0) r->failed++;
    return rc;
}

/* async def fetch_all(urls, concurrency) */
static int fetch_all(void *arg)
{
    struct run *r = arg;
    static struct job jobs[MAX_URLS];
    tl_call calls[MAX_URLS];
    int statuses[MAX_URLS];
    tl_curl_opts opts = {.max_concurrent = (unsigned)r->concurrency};
    int rc = tl_curl_new(&r->client, &opts);
    if (rc < 0) return rc;
    if ((rc = tl_sem_init(&r->sem, r->concurrency)) < 0) {
        (void)tl_curl_close(r->client);
        return rc;
    }
    for (int i = 0; i < nurls; i++) {
        jobs[i] = (struct job){r, i};
        calls[i] = TL_CALL(fetch_one, &jobs[i]);
    }
    rc = tl_gather((size_t)nurls, calls, statuses);
    tl_sem_destroy(&r->sem);
    int crc = tl_curl_close(r->client);
    return rc < 0 ? rc : crc;
}

static double perf_counter(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc > 1) nurls = atoi(argv[1]);
    if (argc > 2 || nurls < 1 || nurls > MAX_URLS) {
        fprintf(stderr, "usage: curl_fetch [N]   (N GETs a run, 1..%d; default %d)\n",
                MAX_URLS, MAX_URLS);
        return 2;
    }
    demo_begin();
    puts("  # Python: sem = asyncio.Semaphore(n); async with httpx.AsyncClient() as client:");
    puts("  #             await asyncio.gather(*[fetch_one(u) for u in urls])");
    puts("  # C:      tl_curl_new(&client, &opts); tl_gather(100, calls, statuses);");
    puts("  #         fetch_one: TL_WITH_SEM(&sem, &rc) rc = tl_curl_get(client, url, &resp);");
    port = demo_http_server_start(DELAY_MS);
    if (port == -DEMO_SKIPPED) return DEMO_SKIPPED;
    if (port < 0) return demo_start_failed();
    if (demo_servers_ready() < 0) return 1;
    printf("%d GETs through one libcurl client per run, from http_server on 127.0.0.1:%d\n"
           "(pid %d, %d ms per request), concurrency capped by tl_sem:\n\n",
           nurls, port, (int)demo_children[0].pid, DELAY_MS);
    printf("concurrency | total time | ideal  | max in flight | connections | failed\n");
    printf("------------+------------+--------+---------------+-------------+-------\n");
    static const int levels[] = {1, 5, 100};
    int ok = 1;
    char body[64] = "";
    for (size_t k = 0; k < sizeof levels / sizeof *levels && ok; k++) {
        struct run r = {.concurrency = levels[k]};
        double start = perf_counter();
        int rc = tl_run(fetch_all, &r);
        double took = perf_counter() - start;
        double ideal = (nurls + r.concurrency - 1) / r.concurrency * DELAY_MS / 1000.0;
        printf("%11d | %8.3f s | %4.2f s | %13d | %11ld | %d\n", r.concurrency, took, ideal,
               r.max_in_flight, r.connections, r.failed);
        snprintf(body, sizeof body, "%s", r.first_body);
        int cap = r.concurrency < nurls ? r.concurrency : nurls;
        if (rc != 0 || r.failed || r.max_in_flight != cap ||
            r.connections > r.concurrency || took < ideal * 0.99)
            ok = 0;
    }
    printf("\nFirst response body: %s", body[0] ? body : "(none)\n");
    printf("Each run opened at most `concurrency` connections: libcurl kept them alive.\n");
    demo_stop_all();
    printf("http_server stopped (SIGTERM to its PID)\n");
    return ok ? 0 : 1;
}
