/* docs/guide.md, "Streams: a line protocol": a server task answers each
 * line it reads with the line upper-cased; a client sends a few lines,
 * half-closes, and reads the answers with the lines generator. Over a
 * socketpair, so the program needs no port. */
#include <ctype.h>
#include <string.h>
#include <sys/socket.h>
#include <tulip.h>

#include "check.h"

/* guide: serve */
/* One connection: answer every line with the line upper-cased, until the
 * client stops sending. The stream owns fd and closes it. */
static int serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    tl_stream *s;
    int rc = tl_stream_open(&s, fd, NULL);
    if (rc < 0) {
        tl_close(fd);
        return rc;
    }
    char line[1024];
    ssize_t n;
    while ((n = tl_stream_readline(s, line, sizeof line)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            line[i] = (char)toupper((unsigned char)line[i]);
        rc = tl_stream_write(s, line, (size_t)n); /* never waits */
        if (rc == 0) rc = tl_stream_drain(s);     /* waits if the client lags */
        if (rc < 0) break;
    }
    if (n < 0) rc = (int)n; /* -EMSGSIZE: a line over 1 KiB, -ECONNRESET, ... */
    int crc = tl_stream_wait_closed(s); /* sends what is queued, closes */
    return rc < 0 ? rc : crc;
}
/* guide: end */

static int client(int fd, int *count)
{
    tl_stream *s;
    CHECK(tl_stream_open(&s, fd, NULL) == 0);
    /* guide: client */
    const char *words[] = {"asyncio\n", "for\n", "c\n"};
    for (int i = 0; i < 3; i++)
        tl_stream_write(s, words[i], strlen(words[i]));
    tl_stream_write_eof(s); /* the server's readline returns 0 at the end */

    tl_gen *g;
    const char *answer;
    int rc;
    tl_stream_lines(&g, s); /* async for line in reader: */
    TL_GEN_FOREACH(g, answer, &rc) {
        printf("%s\n", answer); /* ASYNCIO, FOR, C: no '\n' */
        (*count)++;
    }
    int crc = tl_gen_close(g);
    if (rc == 0) rc = crc;
    /* guide: end */
    CHECK(tl_stream_wait_closed(s) == 0);
    return rc;
}

static int main_task(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK(tl_socketpair(SOCK_STREAM, sv) == 0);
    tl_task t;
    CHECK(tl_spawn(&t, serve, (void *)(intptr_t)sv[1]) == 0);
    int count = 0;
    CHECK(client(sv[0], &count) == 0);
    CHECK(count == 3);
    int st = -1;
    CHECK(tl_join(t, &st) == 0);
    CHECK(st == 0);
    return 0;
}

int main(void) { return tl_run(main_task, NULL) == 0 ? 0 : 1; }
