/* Async iterators — async for.
 *
 *     async def stream_lines(url: str):
 *         async with httpx.AsyncClient() as client:
 *             async with client.stream("GET", url) as resp:
 *                 async for line in resp.aiter_lines():
 *                     yield line
 *
 *     async for line in stream_lines(url):
 *         ...
 *
 * A tl_gen is an async generator: the producer is a function that calls
 * tl_gen_yield for each value, and runs in its own task; the consumer
 * loops on tl_gen_next (TL_GEN_FOREACH is `async for`). The two switch
 * straight to each other, so a value costs two context switches, not two
 * trips through the scheduler.
 *
 * The first stream is read to its end. The second is abandoned after two
 * lines: closing the generator cancels the producer, whose tl_gen_yield
 * returns -ECANCELED, and its cleanup ("closing the stream") runs before
 * tl_gen_close returns — the C form of the generator's `async with`
 * exiting on aclose().
 */
#include <stdio.h>
#include <string.h>

#include <tulip.h>

static double t0;

/* A "response" that arrives one line at a time. */
static const char *const body[] = {
    "HTTP/1.1 200 OK", "content-type: text/plain", "", "line one",
    "line two", "line three",
};

static int stream_lines(tl_gen *g, void *arg)
{
    const char *url = arg;
    printf("[%.2f s]   producer: opening the stream to %s\n", tl_now() - t0,
           url);
    int rc = 0;
    for (size_t i = 0; i < sizeof body / sizeof body[0]; i++) {
        if ((rc = tl_sleep(0.05)) < 0) break; /* the next chunk arrives */
        if ((rc = tl_gen_yield(g, (void *)body[i])) < 0) break;
    }
    /* Cleanup: runs at the end, and when the consumer stops early. */
    printf("[%.2f s]   producer: closing the stream to %s (%s)\n",
           tl_now() - t0, url, rc < 0 ? "cancelled" : "finished");
    return rc < 0 ? rc : 0;
}

static int main_task(void *arg)
{
    (void)arg;
    t0 = tl_now();

    /* async for line in stream_lines(url): print(line) */
    tl_gen *g;
    int rc = tl_gen_new(&g, stream_lines, "example.com/a", NULL);
    if (rc < 0) return rc;
    const char *line;
    int n = 0;
    TL_GEN_FOREACH(g, line, &rc) {
        printf("[%.2f s] consumer: got '%s'\n", tl_now() - t0, line);
        n++;
    }
    int crc = tl_gen_close(g);
    if (rc < 0 || crc < 0) return rc < 0 ? rc : crc;
    printf("[%.2f s] consumer: stream a ended after %d lines\n\n",
           tl_now() - t0, n);

    /* Stop early: only the status line and one header are wanted. */
    rc = tl_gen_new(&g, stream_lines, "example.com/b", NULL);
    if (rc < 0) return rc;
    n = 0;
    TL_GEN_FOREACH(g, line, &rc) {
        printf("[%.2f s] consumer: got '%s'\n", tl_now() - t0, line);
        if (++n == 2) break;
    }
    printf("[%.2f s] consumer: breaking out after %d lines; closing\n",
           tl_now() - t0, n);
    crc = tl_gen_close(g); /* the producer's cleanup runs before this returns */
    printf("[%.2f s] consumer: closed (rc %d)\n", tl_now() - t0, crc);
    return rc < 0 ? rc : crc;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: async for line in stream_lines(url): ...");
    puts("  # C:      TL_GEN_FOREACH(g, line, &rc) { ... } tl_gen_close(g);");
    return tl_run(main_task, NULL) == 0 ? 0 : 1;
}
