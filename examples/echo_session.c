/* An echo session: three clients talk to examples/echo_server at once.
 *
 *     async def client(name, lines):
 *         reader, writer = await asyncio.open_connection(host, port)
 *         for line in lines:
 *             writer.write(line.encode()); await writer.drain()
 *             print(name, "got", (await reader.readline()).decode())
 *             await asyncio.sleep(0.1)
 *         writer.write_eof()                       # half-close
 *         assert await reader.read() == b""        # the server closes too
 *         writer.close(); await writer.wait_closed()
 *
 *     await asyncio.gather(client("ann", ...), client("bob", ...), ...)
 *
 * The server is started here on a free loopback port and stopped with
 * SIGTERM at the end. The clients' lines interleave: each waits on its
 * own connection while the others run.
 *
 *     echo_session [SERVER]   (default: echo_server beside this program)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tulip.h>

#include "sibling_server.h"

static int port;
static double t0;

static double perf_counter(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct client {
    const char *name;
    double pause;         /* between lines */
    const char *lines[3];
};

/* async def client(name, lines) */
static int client(void *arg)
{
    struct client *c = arg;
    tl_sockaddr addr;
    int rc = tl_sockaddr_ip(&addr, "127.0.0.1", port);
    if (rc < 0) return rc;
    int fd = tl_net_connect(&addr, SOCK_STREAM);
    if (fd < 0) return tl_fail(fd, "%s: connect", c->name);
    tl_stream *s;
    if ((rc = tl_stream_open(&s, fd, NULL)) < 0) {
        tl_close(fd);
        return rc;
    }
    for (int i = 0; i < 3 && rc == 0; i++) {
        char line[128], back[128];
        int len = snprintf(line, sizeof line, "%s\n", c->lines[i]);
        rc = tl_stream_write(s, line, (size_t)len);
        if (rc == 0) rc = tl_stream_drain(s);
        ssize_t n = rc == 0 ? tl_stream_readline(s, back, sizeof back) : rc;
        if (n <= 0) {
            rc = n < 0 ? (int)n : tl_fail(-EPROTO, "%s: the server hung up", c->name);
            break;
        }
        back[strcspn(back, "\n")] = 0;
        printf("  %5.2f s  %-3s sent %-22s got back \"%s\"\n", perf_counter() - t0, c->name,
               c->lines[i], back);
        if (strncmp(back, line, (size_t)len - 1) != 0)
            rc = tl_fail(-EPROTO, "%s: the echo differs", c->name);
        else
            rc = tl_sleep(c->pause);
    }
    if (rc == 0) rc = tl_stream_write_eof(s); /* half-close: "that's all" */
    if (rc == 0) {
        char rest[16];
        ssize_t n = tl_stream_read(s, rest, sizeof rest);
        if (n != 0) rc = n < 0 ? (int)n : tl_fail(-EPROTO, "%s: bytes after the end", c->name);
        else printf("  %5.2f s  %-3s half-closed; the server closed its side too\n",
                    perf_counter() - t0, c->name);
    }
    int crc = tl_stream_wait_closed(s);
    return rc ? rc : crc;
}

static int main_task(void *arg)
{
    (void)arg;
    struct client ann = {"ann", 0.10, {"hello", "how are you?", "bye"}};
    struct client bob = {"bob", 0.15, {"ping", "ping again", "done"}};
    struct client cy = {"cy", 0.07, {"one", "two", "three"}};
    tl_call calls[] = {TL_CALL(client, &ann), TL_CALL(client, &bob), TL_CALL(client, &cy)};
    int statuses[3];
    t0 = perf_counter();
    return tl_gather(3, calls, statuses);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char path[4096];
    if (sibling_path(argc > 1 ? argv[1] : NULL, "echo_server", path, sizeof path) < 0)
        return 1;
    pid_t server = sibling_start("echo_session", (char *[]){path, "0", NULL}, &port);
    if (server < 0) return 1;
    printf("echo_server on 127.0.0.1:%d; three clients at once (tl_gather):\n\n", port);
    int rc = tl_run(main_task, NULL);
    int st = -1;
    kill(server, SIGTERM);
    waitpid(server, &st, 0);
    printf("\necho_server stopped by SIGTERM: exit status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
