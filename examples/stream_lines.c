/* The seed's stream_lines, live: lines of a response as they arrive.
 *
 *     async def stream_lines(url: str):
 *         async with httpx.AsyncClient() as client:
 *             async with client.stream("GET", url) as resp:
 *                 async for line in resp.aiter_lines():
 *                     yield line
 *
 *     async for line in stream_lines(url):
 *         print(line)
 *
 * The C async generator (tl_gen) holds the client and the stream in its
 * producer task; tl_curl_stream_lines is resp.aiter_lines(). The server
 * is nginx, started here on a free loopback port, whose /events endpoint
 * (the echo module) sends a line every 0.2 s: each line is printed when
 * it arrives, not when the response ends. The second consumer stops after
 * two lines: closing the generator cancels the producer, whose cleanup
 * (the `async with` blocks exiting) closes the stream and the client
 * before tl_gen_close returns.
 */
#include <stdio.h>

#include <tulip/curl.h>

#include "demo_servers.h"

#define NLINES 5

static char url[128];
static double t0;

/* async def stream_lines(url) */
static int stream_lines(tl_gen *g, void *arg)
{
    const char *u = arg;
    tl_curl *client; /* async with httpx.AsyncClient() as client: */
    int rc = tl_curl_new(&client, NULL);
    if (rc < 0) return rc;
    tl_curl_stream *resp; /* async with client.stream("GET", url) as resp: */
    tl_curl_request req = {.url = u};
    rc = tl_curl_stream_open(client, &req, &resp);
    if (rc == 0) {
        printf("[%.2f s]   producer: HTTP %ld, reading lines\n", tl_now() - t0,
               tl_curl_stream_response(resp)->status);
        tl_gen *lines; /* resp.aiter_lines() */
        rc = tl_curl_stream_lines(resp, &lines);
        if (rc == 0) {
            const char *line;
            TL_GEN_FOREACH(lines, line, &rc) {
                if ((rc = tl_gen_yield(g, (void *)line)) < 0) break; /* yield line */
            }
            int crc = tl_gen_close(lines);
            if (rc == 0) rc = crc;
        }
        tl_curl_stream_close(resp);
    }
    int crc = tl_curl_close(client);
    printf("[%.2f s]   producer: stream and client closed (%s)\n", tl_now() - t0,
           rc == -ECANCELED ? "the consumer stopped early" : "the body ended");
    if (rc == 0) rc = crc;
    return rc;
}

static int main_task(void *arg)
{
    (void)arg;
    t0 = tl_now();
    /* async for line in stream_lines(url): print(line) */
    tl_gen *g;
    int rc = tl_gen_new(&g, stream_lines, url, NULL);
    if (rc < 0) return rc;
    const char *line;
    int n = 0;
    TL_GEN_FOREACH(g, line, &rc) {
        printf("[%.2f s] consumer: %s\n", tl_now() - t0, line);
        n++;
    }
    int crc = tl_gen_close(g);
    if (rc == 0) rc = crc;
    if (rc < 0) return rc;
    printf("[%.2f s] consumer: the stream ended after %d lines\n\n", tl_now() - t0, n);
    if (n != NLINES) return tl_fail(-EPROTO, "%d lines, expected %d", n, NLINES);

    /* Again, but stop after two lines: aclose() runs the producer's cleanup. */
    t0 = tl_now();
    if ((rc = tl_gen_new(&g, stream_lines, url, NULL)) < 0) return rc;
    n = 0;
    TL_GEN_FOREACH(g, line, &rc) {
        printf("[%.2f s] consumer: %s\n", tl_now() - t0, line);
        if (++n == 2) break;
    }
    printf("[%.2f s] consumer: break after %d lines; closing the generator\n",
           tl_now() - t0, n);
    crc = tl_gen_close(g);
    printf("[%.2f s] consumer: closed\n", tl_now() - t0);
    return rc < 0 ? rc : crc;
}

int main(void)
{
    demo_begin();
    puts("  # Python: async def stream_lines(url):");
    puts("  #             async with httpx.AsyncClient() as client:");
    puts("  #                 async with client.stream(\"GET\", url) as resp:");
    puts("  #                     async for line in resp.aiter_lines(): yield line");
    puts("  # C:      a tl_gen producer: tl_curl_new, tl_curl_stream_open,");
    puts("  #         TL_GEN_FOREACH over tl_curl_stream_lines, tl_gen_yield each line");
    char loc[1024];
    int k = snprintf(loc, sizeof loc, "    location = /events { default_type text/plain; ");
    for (int i = 1; i <= NLINES; i++)
        k += snprintf(loc + k, sizeof loc - (size_t)k,
                      "echo \"event %d\"; echo_flush; %s", i,
                      i < NLINES ? "echo_sleep 0.2; " : "");
    snprintf(loc + k, sizeof loc - (size_t)k, "}\n");
    int port = demo_nginx_start(NULL, loc, 1);
    if (port == -DEMO_SKIPPED) return DEMO_SKIPPED;
    if (port < 0) return demo_start_failed();
    if (demo_servers_ready() < 0) return 1;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/events", port);
    printf("nginx listening on 127.0.0.1:%d (pid %d); GET /events sends a line every 0.2 s\n\n",
           port, (int)demo_children[0].pid);
    int rc = tl_run(main_task, NULL);
    demo_stop_all();
    printf("nginx stopped (SIGTERM to its PID)\n");
    return rc == 0 ? 0 : 1;
}
