/* Exercise 3 for real: 100 HTTP fetches against a live server, concurrency
 * capped at 1 / 5 / 100 by a semaphore.
 *
 *     async def fetch(url):
 *         reader, writer = await asyncio.open_connection(host, port)
 *         writer.write(f"GET {path} HTTP/1.1\r\nHost: ...\r\n"
 *                      "Connection: close\r\n\r\n".encode())
 *         response = await reader.read()        # until the server closes
 *         writer.close(); await writer.wait_closed()
 *         return parse(response)
 *
 *     async def fetch_one(url):
 *         async with sem:
 *             return await fetch(url)
 *
 * The server is examples/http_server, started here on a free loopback
 * port with a 50 ms delay per request (the seed's slow server), and
 * stopped with SIGTERM at the end. Each fetch is a new connection: connect,
 * a request written on a tl_stream, the whole response read, parsed by
 * http-parser. The ideal totals are 100 x 50 ms / concurrency: 5 s, 1 s,
 * 50 ms, plus what the network itself costs.
 *
 *     http_fetch [SERVER]   (default: http_server beside this program)
 */
#include <errno.h>
#include <http_parser.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tulip.h>

#include "sibling_server.h"

#define NURLS 100
#define DELAY_MS 50

static int port;

struct job {
    struct fetch_all *all;
    int id;
    int status;    /* the HTTP status */
    char body[64]; /* the response body */
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

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct job *j = p->data;
    size_t have = strlen(j->body);
    if (have + len >= sizeof j->body) len = sizeof j->body - 1 - have;
    memcpy(j->body + have, at, len);
    j->body[have + len] = 0;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct job *j = p->data;
    j->status = (int)p->status_code;
    return 0;
}

static const http_parser_settings settings = {
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* async def fetch(url) */
static int fetch(struct job *j)
{
    tl_sockaddr addr;
    int rc = tl_sockaddr_ip(&addr, "127.0.0.1", port);
    if (rc < 0) return rc;
    int fd = tl_net_connect(&addr, SOCK_STREAM);
    if (fd < 0) return fd;
    tl_stream *s;
    if ((rc = tl_stream_open(&s, fd, NULL)) < 0) {
        tl_close(fd);
        return rc;
    }
    char req[128];
    int len = snprintf(req, sizeof req,
                       "GET /item/%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                       "Connection: close\r\n\r\n", j->id, port);
    rc = tl_stream_write(s, req, (size_t)len);
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = j;
    char buf[4096];
    while (rc == 0) { /* reader.read(): until the server closes */
        ssize_t n = tl_stream_read(s, buf, sizeof buf);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        size_t used = http_parser_execute(&p, &settings, buf, (size_t)n);
        if (used != (size_t)n || HTTP_PARSER_ERRNO(&p) != HPE_OK)
            rc = tl_fail(-EPROTO, "item %d: %s", j->id,
                         http_errno_description(HTTP_PARSER_ERRNO(&p)));
        if (n == 0) break;
    }
    int crc = tl_stream_wait_closed(s);
    if (rc == 0) rc = crc;
    if (rc == 0 && j->status != 200) rc = tl_fail(-EPROTO, "item %d: HTTP %d", j->id, j->status);
    return rc;
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
    char first_body[64];
};

/* async def fetch_all(urls, concurrency) */
static int fetch_all(void *arg)
{
    struct run *r = arg;
    static struct fetch_all a;
    tl_call calls[NURLS];
    int statuses[NURLS];
    memset(&a, 0, sizeof a);
    if (tl_sem_init(&a.sem, r->concurrency) < 0) return -EINVAL;
    for (int i = 0; i < NURLS; i++) {
        a.jobs[i] = (struct job){.all = &a, .id = i};
        calls[i] = TL_CALL(fetch_one, &a.jobs[i]);
    }
    int rc = tl_gather(NURLS, calls, statuses);
    for (int i = 0; i < NURLS; i++) r->failed += statuses[i] != 0;
    r->max_in_flight = a.max_in_flight;
    snprintf(r->first_body, sizeof r->first_body, "%s", a.jobs[0].body);
    tl_sem_destroy(&a.sem);
    return rc;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char path[4096];
    if (sibling_path(argc > 1 ? argv[1] : NULL, "http_server", path, sizeof path) < 0)
        return 1;
    char delay[16];
    snprintf(delay, sizeof delay, "%d", DELAY_MS);
    pid_t server = sibling_start("http_fetch", (char *[]){path, "0", delay, NULL}, &port);
    if (server < 0) return 1;

    static const int levels[] = {1, 5, 100};
    int ok = 1;
    printf("%d HTTP fetches from http_server on 127.0.0.1:%d (%d ms per request),\n"
           "each on a new connection, concurrency capped by tl_sem:\n\n",
           NURLS, port, DELAY_MS);
    printf("concurrency | total time | ideal  | max in flight | failed\n");
    printf("------------+------------+--------+---------------+-------\n");
    char body[64] = "";
    for (size_t k = 0; k < sizeof levels / sizeof *levels; k++) {
        struct run r = {.concurrency = levels[k]};
        double start = perf_counter();
        int rc = tl_run(fetch_all, &r);
        double took = perf_counter() - start;
        int rounds = (NURLS + r.concurrency - 1) / r.concurrency;
        double ideal = rounds * DELAY_MS / 1000.0;
        printf("%11d | %8.3f s | %4.2f s | %13d | %d\n", r.concurrency, took, ideal,
               r.max_in_flight, r.failed);
        snprintf(body, sizeof body, "%s", r.first_body);
        if (rc != 0 || r.failed || r.max_in_flight != r.concurrency || took < ideal * 0.99)
            ok = 0;
    }
    printf("\nFirst response body: %s", body[0] ? body : "(none)\n");

    /* Stop the server as a user would, and check it shut down cleanly. */
    int st = -1;
    kill(server, SIGTERM);
    waitpid(server, &st, 0);
    printf("http_server stopped by SIGTERM: exit status %d\n",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ok = 0;
    return ok ? 0 : 1;
}
