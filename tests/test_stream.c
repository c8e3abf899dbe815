/* Streams (tulip/stream.h): read, readexactly, readuntil, readline,
 * write + drain with water marks, write_eof, close / wait_closed, the
 * lines generator; what a cancel, a reset, an end of stream or a line over
 * the limit leaves behind; a tulip client against Python's own asyncio
 * server; no fd leaked. Runs on each backend. */
#include "net_helpers.h"

#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>

extern char **environ;

/* Wait (bounded: 10 s) until cond holds, polling with short sleeps: for
 * conditions another process or the kernel makes true. */
#define WAIT_UNTIL(cond)                                                       \
    do {                                                                       \
        for (int wu_i_ = 0; wu_i_ < 5000 && !(cond); wu_i_++)                  \
            TL_IGNORE(tl_sleep(0.002));                                        \
        cr_expect((cond), "timed out waiting for %s", #cond);                  \
    } while (0)

/* A stream over one end of a socketpair; *peer gets the other end. */
static tl_stream *pair_stream(int *peer, const tl_stream_opts *o)
{
    int sv[2];
    cr_assert_eq(tl_socketpair(SOCK_STREAM, sv), 0);
    tl_stream *s = NULL;
    int rc = tl_stream_open(&s, sv[0], o);
    cr_assert_eq(rc, 0, "open: %s", tl_strerror(rc));
    *peer = sv[1];
    return s;
}

/* A loopback TCP connection: *l the listener, *srv the accepted end (the
 * peer), returns the connecting end. rcvbuf > 0: the listener's (so the
 * peer's) receive buffer, and the connecting end's send buffer, are that
 * small, so that a large write stays in flight. */
static int tcp_pair(int *l, int *srv, int rcvbuf)
{
    tl_sockaddr a;
    *l = tl_test_listen("127.0.0.1", SOCK_STREAM, &a);
    if (rcvbuf > 0)
        cr_expect_eq(setsockopt(*l, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
                                sizeof rcvbuf), 0);
    int c = tl_net_connect(&a, SOCK_STREAM);
    cr_assert_geq(c, 0);
    *srv = tl_accept(*l, NULL, NULL);
    cr_assert_geq(*srv, 0);
    if (rcvbuf > 0)
        cr_expect_eq(setsockopt(c, SOL_SOCKET, SO_SNDBUF, &rcvbuf,
                                sizeof rcvbuf), 0);
    return c;
}

/* The peer resets the connection: SO_LINGER 0 makes close send an RST. */
static void reset_peer(int srv)
{
    struct linger lg = {1, 0};
    cr_expect_eq(setsockopt(srv, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    cr_expect_eq(tl_close(srv), 0);
}

static void put(int fd, const char *text)
{
    size_t len = strlen(text);
    cr_expect_eq(tl_write(fd, text, len), (ssize_t)len);
}

/* ---- reading ---------------------------------------------------------- */

static int main_read_kinds(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    put(peer, "hello\nwor");
    char line[64];
    cr_expect_eq(tl_stream_readline(s, line, sizeof line), 6);
    cr_expect_str_eq(line, "hello\n");
    cr_expect_eq(tl_stream_buffered(s), 3);
    put(peer, "ld\r\nab--cd");
    cr_expect_eq(tl_stream_readline(s, line, sizeof line), 7);
    cr_expect_str_eq(line, "world\r\n");
    cr_expect_eq(tl_stream_readuntil(s, "--", 2, line, sizeof line), 4);
    cr_expect_str_eq(line, "ab--");
    char b[16];
    size_t part = 99;
    cr_expect_eq(tl_stream_readexactly(s, b, 2, &part), 2);
    cr_expect_eq(part, 2);
    cr_expect_eq(memcmp(b, "cd", 2), 0);
    put(peer, "xyz");
    cr_expect_eq(tl_stream_read(s, b, sizeof b), 3);
    cr_expect_eq(memcmp(b, "xyz", 3), 0);
    cr_expect_eq(tl_stream_read(s, b, 0), 0);
    /* the write side */
    cr_expect_eq(tl_stream_write(s, "pong\n", 5), 0);
    cr_expect_eq(tl_stream_drain(s), 0);
    cr_expect_eq(tl_read(peer, b, sizeof b), 5);
    cr_expect_eq(memcmp(b, "pong\n", 5), 0);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_close(peer), 0);
    return 0;
}

Test(stream, read_readline_readuntil_readexactly_write, .timeout = 60)
{
    tl_test_run_no_leak(main_read_kinds, NULL, 0);
}

static int main_eof(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    put(peer, "12345");
    cr_expect_eq(tl_close(peer), 0);
    char b[16];
    size_t part = 0;
    /* readexactly: TL_EOF, the partial count, the bytes kept */
    cr_expect_eq(tl_stream_readexactly(s, b, 10, &part), TL_EOF);
    cr_expect_eq(part, 5);
    cr_expect_eq(tl_stream_buffered(s), 5);
    cr_expect_not(tl_stream_at_eof(s));
    /* readuntil: TL_EOF without a separator, kept too */
    cr_expect_eq(tl_stream_readuntil(s, "\n", 1, b, sizeof b), TL_EOF);
    cr_expect_eq(tl_stream_read(s, b, sizeof b), 5);
    cr_expect_eq(memcmp(b, "12345", 5), 0);
    cr_expect(tl_stream_at_eof(s));
    /* reads after EOF return 0, every time */
    cr_expect_eq(tl_stream_read(s, b, sizeof b), 0);
    cr_expect_eq(tl_stream_read(s, b, sizeof b), 0);
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 0);
    cr_expect_eq(tl_stream_readuntil(s, "x", 1, b, sizeof b), 0);
    cr_expect_eq(tl_stream_readexactly(s, b, 1, &part), TL_EOF);
    cr_expect_eq(part, 0);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    return 0;
}

Test(stream, end_of_stream_keeps_partial_data, .timeout = 60)
{
    tl_test_run_no_leak(main_eof, NULL, 0);
}

static int main_last_line(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    put(peer, "one\ntwo");
    cr_expect_eq(tl_close(peer), 0);
    char b[16];
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 4);
    cr_expect_str_eq(b, "one\n");
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 3);
    cr_expect_str_eq(b, "two");
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 0);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    return 0;
}

Test(stream, readline_returns_last_line_without_newline, .timeout = 60)
{
    tl_test_run_no_leak(main_last_line, NULL, 0);
}

static int main_limit(void *arg)
{
    (void)arg;
    int peer;
    tl_stream_opts o = {.limit = 16};
    tl_stream *s = pair_stream(&peer, &o);
    put(peer, "0123456789abcdefghij\nrest\n");
    char b[64];
    /* over the stream's limit: -EMSGSIZE, nothing consumed */
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), -EMSGSIZE);
    cr_expect_neq(tl_fail_message(-EMSGSIZE), NULL);
    cr_expect_geq(tl_stream_buffered(s), 16);
    cr_expect_eq(tl_stream_readuntil(s, "\n", 1, b, sizeof b), -EMSGSIZE);
    /* the data is still there, in order */
    cr_expect_eq(tl_stream_read(s, b, 10), 10);
    cr_expect_eq(memcmp(b, "0123456789", 10), 0);
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 11);
    cr_expect_str_eq(b, "abcdefghij\n");
    /* a caller's buffer smaller than the line is a limit too */
    char small[4];
    cr_expect_eq(tl_stream_readline(s, small, sizeof small), -EMSGSIZE);
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 5);
    cr_expect_str_eq(b, "rest\n");
    cr_expect_eq(tl_stream_readuntil(s, "", 0, b, sizeof b), -EINVAL);
    cr_expect_eq(tl_stream_readline(s, b, 1), -EINVAL);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_close(peer), 0);
    return 0;
}

Test(stream, readuntil_limit_keeps_data, .timeout = 60)
{
    tl_test_run_no_leak(main_limit, NULL, 0);
}

/* ---- cancel ----------------------------------------------------------- */

struct reader {
    tl_stream *s;
    size_t n;
    size_t partial;
    ssize_t rc;
    char buf[64];
};

static int reader_exactly(void *arg)
{
    struct reader *r = arg;
    r->rc = tl_stream_readexactly(r->s, r->buf, r->n, &r->partial);
    return 0;
}

static int main_cancel_keeps(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    struct reader r = {.s = s, .n = 10, .rc = 12345};
    tl_task t = tl_test_spawn(reader_exactly, &r);
    tl_test_settle();
    put(peer, "abcd");
    WAIT_UNTIL(tl_stream_buffered(s) == 4);
    cr_expect_eq(r.rc, 12345, "the reader returned early: %zd", r.rc);
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(r.rc, -ECANCELED);
    cr_expect_eq(r.partial, 4);
    /* nothing lost: the four bytes come first */
    put(peer, "efghij");
    char b[16];
    size_t part;
    cr_expect_eq(tl_stream_readexactly(s, b, 10, &part), 10);
    cr_expect_eq(memcmp(b, "abcdefghij", 10), 0);
    /* a reader cancelled before anything arrived */
    r.rc = 12345;
    t = tl_test_spawn(reader_exactly, &r);
    tl_test_settle();
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(r.rc, -ECANCELED);
    put(peer, "k\n");
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 2);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_close(peer), 0);
    return 0;
}

Test(stream, cancelled_read_keeps_bytes, .timeout = 60)
{
    tl_test_run_no_leak(main_cancel_keeps, NULL, 0);
}

static int main_timeout_read(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    put(peer, "par");
    char b[16];
    int rc;
    TL_WITH_TIMEOUT(0.05, &rc) { rc = (int)tl_stream_readline(s, b, sizeof b); }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_stream_buffered(s), 3);
    put(peer, "tial\n");
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 8);
    cr_expect_str_eq(b, "partial\n");
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_close(peer), 0);
    return 0;
}

Test(stream, timed_out_readline_keeps_bytes, .timeout = 60)
{
    tl_test_run_no_leak(main_timeout_read, NULL, 0);
}

/* ---- misuse ----------------------------------------------------------- */

static int main_misuse(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    struct reader r = {.s = s, .n = 4, .rc = 12345};
    tl_task t = tl_test_spawn(reader_exactly, &r);
    tl_test_settle();
    char b[8];
    /* a second reader */
    cr_expect_eq(tl_stream_read(s, b, sizeof b), -EBUSY);
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), -EBUSY);
    /* close wakes the reader */
    cr_expect_eq(tl_stream_close(s), 0);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(r.rc, TL_ECLOSED);
    /* use after close */
    cr_expect_eq(tl_stream_read(s, b, sizeof b), TL_ECLOSED);
    cr_expect_eq(tl_stream_write(s, "x", 1), TL_ECLOSED);
    cr_expect_eq(tl_stream_drain(s), TL_ECLOSED);
    cr_expect_eq(tl_stream_write_eof(s), TL_ECLOSED);
    cr_expect_eq(tl_stream_close(s), 0);
    cr_expect_eq(tl_stream_fd(s), -1);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    /* the peer sees the end */
    cr_expect_eq(tl_read(peer, b, sizeof b), 0);
    cr_expect_eq(tl_close(peer), 0);
    /* bad arguments */
    cr_expect_eq(tl_stream_read(NULL, b, 1), -EINVAL);
    cr_expect_eq(tl_stream_write(NULL, b, 1), -EINVAL);
    cr_expect_eq(tl_stream_wait_closed(NULL), 0);
    cr_expect_eq(tl_stream_close(NULL), 0);
    tl_stream *x;
    cr_expect_eq(tl_stream_open(&x, 12345, NULL), -EBADF);
    tl_stream_opts bad = {.high_water = 10, .low_water = 20};
    cr_expect_eq(tl_stream_open(&x, 0, &bad), -EINVAL);
    tl_stream_opts badf = {.flags = 0x100};
    cr_expect_eq(tl_stream_open(&x, 0, &badf), -EINVAL);
    cr_expect_eq(tl_stream_open(NULL, 0, NULL), -EINVAL);
    return 0;
}

Test(stream, misuse_two_readers_and_use_after_close, .timeout = 60)
{
    tl_test_run_no_leak(main_misuse, NULL, 0);
}

/* ---- writing: drain and the water marks ------------------------------- */

struct writer {
    tl_stream *s;
    size_t total;   /* bytes to write */
    size_t chunk;
    size_t written; /* handed to tl_stream_write */
    size_t max_queued;
    int drains_waited; /* drains that found the queue over high water */
    int rc;
    int done;
};

static int writer_task(void *arg)
{
    struct writer *w = arg;
    char *buf = malloc(w->chunk);
    memset(buf, 'w', w->chunk);
    while (w->written < w->total) {
        int rc = tl_stream_write(w->s, buf, w->chunk);
        if (rc < 0) {
            w->rc = rc;
            break;
        }
        w->written += w->chunk;
        size_t q = tl_stream_write_buffered(w->s);
        if (q > w->max_queued) w->max_queued = q;
        if (q > 64 * 1024) w->drains_waited++;
        rc = tl_stream_drain(w->s);
        if (rc < 0) {
            w->rc = rc;
            break;
        }
    }
    free(buf);
    w->done = 1;
    return 0;
}

static int main_drain(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL); /* 64 KiB high, 16 KiB low */
    struct writer w = {.s = s, .total = 4 << 20, .chunk = 8192};
    tl_task t = tl_test_spawn(writer_task, &w);
    /* The peer does not read: the writer ends up suspended in drain with
     * the queue just over the high-water mark, not growing. */
    WAIT_UNTIL(tl_stream_write_buffered(s) > 64 * 1024);
    /* On io_uring the queue's send is a ring request: the queue may pass
     * the mark while the kernel still has room, so wait until the writer
     * stopped (bounded), then check that it stays stopped. */
    size_t at = w.written;
    for (int k = 0; k < 500; k++) {
        at = w.written;
        for (int i = 0; i < 5; i++) TL_IGNORE(tl_sleep(0.001));
        if (w.written == at && tl_stream_write_buffered(s) > 64 * 1024) break;
    }
    for (int i = 0; i < 20; i++) TL_IGNORE(tl_sleep(0.001));
    cr_expect_eq(w.written, at, "the writer went on without the peer");
    cr_expect_not(w.done);
    cr_expect_leq(w.max_queued, 64 * 1024 + 8192);
    cr_expect_leq(tl_stream_write_buffered(s), 64 * 1024 + 8192);
    /* The peer reads everything: the writer resumes and finishes. */
    char *buf = malloc(65536);
    size_t got = 0;
    while (got < w.total) {
        ssize_t n = tl_read(peer, buf, 65536);
        cr_assert_gt(n, 0, "peer read: %zd", n);
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != 'w') cr_assert_fail("byte %zu is %d", got + i, buf[i]);
        got += (size_t)n;
    }
    free(buf);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(w.rc, 0);
    cr_expect(w.done);
    cr_expect_gt(w.drains_waited, 0);
    cr_expect_leq(w.max_queued, 64 * 1024 + 8192);
    cr_expect_eq(tl_stream_write_buffered(s), 0);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_close(peer), 0);
    return 0;
}

Test(stream, drain_suspends_for_a_peer_that_does_not_read, .timeout = 60)
{
    tl_test_run_no_leak(main_drain, NULL, 0);
}

static int main_drain_cancel(void *arg)
{
    (void)arg;
    int peer;
    tl_stream_opts o = {.high_water = 1024, .low_water = 0};
    tl_stream *s = pair_stream(&peer, &o);
    char *big = malloc(1 << 20);
    memset(big, 'q', 1 << 20);
    cr_expect_eq(tl_stream_write(s, big, 1 << 20), 0);
    size_t q = tl_stream_write_buffered(s);
    cr_expect_gt(q, 1024);
    int rc;
    TL_WITH_TIMEOUT(0.05, &rc) { rc = tl_stream_drain(s); }
    cr_expect_eq(rc, -ETIMEDOUT);
    /* nothing lost: the queue is intact (on io_uring its first send
     * may have handed the kernel part of it meanwhile) and still goes
     * out */
    cr_expect_leq(tl_stream_write_buffered(s), q);
    cr_expect_gt(tl_stream_write_buffered(s), 1024);
    size_t got = 0;
    char *buf = malloc(65536);
    while (got < (1u << 20)) {
        ssize_t n = tl_read(peer, buf, 65536);
        cr_assert_gt(n, 0);
        got += (size_t)n;
    }
    cr_expect_eq(got, 1u << 20);
    /* low water 0: drain returns once every byte was handed over */
    cr_expect_eq(tl_stream_drain(s), 0);
    cr_expect_eq(tl_stream_write_buffered(s), 0);
    free(buf);
    free(big);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_close(peer), 0);
    return 0;
}

Test(stream, cancelled_drain_keeps_the_queue, .timeout = 60)
{
    tl_test_run_no_leak(main_drain_cancel, NULL, 0);
}

static int wait_closed_task(void *arg) { return tl_stream_wait_closed(arg); }

/* wait_closed sends what is queued first; with a peer that never reads
 * a timeout around it closes anyway. */
static int main_wait_closed(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    char *big = malloc(1 << 20);
    memset(big, 'z', 1 << 20);
    cr_expect_eq(tl_stream_write(s, big, 1 << 20), 0);
    cr_expect_gt(tl_stream_write_buffered(s), 0);
    int rc;
    TL_WITH_TIMEOUT(0.05, &rc) { rc = tl_stream_wait_closed(s); }
    cr_expect_eq(rc, -ETIMEDOUT);
    /* s is gone; the peer reads what got through, then the end */
    char *buf = malloc(65536);
    size_t got = 0;
    ssize_t n;
    while ((n = tl_read(peer, buf, 65536)) > 0) got += (size_t)n;
    cr_expect_eq(n, 0);
    cr_expect_lt(got, 1u << 20);
    cr_expect_eq(tl_close(peer), 0);

    /* the same with a reading peer: every byte, then the end */
    s = pair_stream(&peer, NULL);
    cr_expect_eq(tl_stream_write(s, big, 1 << 20), 0);
    cr_expect_eq(tl_stream_close(s), 0);
    cr_expect_eq(tl_stream_write(s, "x", 1), TL_ECLOSED);
    /* read in this task while a child waits for the close */
    tl_task t = tl_test_spawn(wait_closed_task, s);
    got = 0;
    while ((n = tl_read(peer, buf, 65536)) > 0) got += (size_t)n;
    cr_expect_eq(n, 0);
    cr_expect_eq(got, 1u << 20);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(tl_close(peer), 0);
    free(buf);
    free(big);
    return 0;
}

Test(stream, wait_closed_flushes_or_gives_up_in_a_timeout, .timeout = 60)
{
    tl_test_run_no_leak(main_wait_closed, NULL, 0);
}

/* ---- write_eof, reset, pipes ------------------------------------------ */

static int main_write_eof(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    cr_expect_eq(tl_stream_write(s, "last words", 10), 0);
    cr_expect_eq(tl_stream_write_eof(s), 0);
    cr_expect_eq(tl_stream_write_eof(s), 0);
    cr_expect_eq(tl_stream_write(s, "more", 4), -ESHUTDOWN);
    char b[32];
    size_t got = 0;
    ssize_t n;
    while ((n = tl_read(peer, b + got, sizeof b - got)) > 0) got += (size_t)n;
    cr_expect_eq(n, 0, "the peer saw %zd, not the end", n);
    cr_expect_eq(got, 10);
    /* half-close: the other direction still works */
    put(peer, "reply\n");
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 6);
    cr_expect_str_eq(b, "reply\n");
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_close(peer), 0);
    return 0;
}

Test(stream, write_eof_is_seen_as_end_by_the_peer, .timeout = 60)
{
    tl_test_run_no_leak(main_write_eof, NULL, 0);
}

static int main_reset(void *arg)
{
    (void)arg;
    int l, srv;
    int c = tcp_pair(&l, &srv, 0);
    tl_stream *s;
    cr_assert_eq(tl_stream_open(&s, c, NULL), 0);
    struct reader r = {.s = s, .n = 10, .rc = 12345};
    tl_task t = tl_test_spawn(reader_exactly, &r);
    put(srv, "half!");
    WAIT_UNTIL(tl_stream_buffered(s) == 5);
    reset_peer(srv); /* mid-message */
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(r.rc, -ECONNRESET, "readexactly: %zd (%s)", r.rc,
                 tl_strerror((int)r.rc));
    cr_expect_eq(r.partial, 5);
    /* what was buffered is still readable, then the error again */
    char b[16];
    cr_expect_eq(tl_stream_read(s, b, sizeof b), 5);
    cr_expect_eq(memcmp(b, "half!", 5), 0);
    cr_expect_eq(tl_stream_read(s, b, sizeof b), -ECONNRESET);
    cr_expect_eq(tl_stream_read(s, b, sizeof b), -ECONNRESET);
    /* writing to the reset connection: an error, never SIGPIPE */
    int wrc = 0;
    for (int i = 0; i < 10 && wrc == 0; i++) {
        wrc = tl_stream_write(s, "x", 1);
        if (wrc == 0) wrc = tl_stream_drain(s);
        /* the error is reported by a later call once the loop has seen
         * it (on io_uring the send is a ring request) */
        if (wrc == 0) cr_expect_eq(tl_sleep(0.01), 0);
    }
    cr_expect(wrc == -EPIPE || wrc == -ECONNRESET, "write: %d", wrc);
    int wc = tl_stream_wait_closed(s);
    cr_expect(wc == 0 || wc == -EPIPE || wc == -ECONNRESET, "%d", wc);
    cr_expect_eq(tl_close(l), 0);
    return 0;
}

/* Many writes while the stream's send is in flight (on io_uring a ring
 * request over a frozen buffer, new writes queued behind it): a reader
 * task gets every byte, in order, and the end after close. */
struct order_reader {
    int fd;
    size_t got;
    int bad;
};

static int order_reader_task(void *arg)
{
    struct order_reader *o = arg;
    char b[700];
    for (;;) {
        ssize_t n = tl_read(o->fd, b, 1 + o->got % sizeof b);
        if (n <= 0) return (int)n;
        for (ssize_t k = 0; k < n; k++)
            if (b[k] != (char)((o->got + (size_t)k) % 251)) o->bad++;
        o->got += (size_t)n;
    }
}

static int main_write_order(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    struct order_reader o = {.fd = peer};
    tl_task t = tl_test_spawn(order_reader_task, &o);
    const int writes = TL_TEST_SCALE(5000);
    size_t total = 0;
    for (int i = 0; i < writes; i++) {
        char chunk[300];
        size_t n = 1 + (size_t)(i * 7919) % sizeof chunk;
        for (size_t k = 0; k < n; k++) chunk[k] = (char)((total + k) % 251);
        cr_assert_eq(tl_stream_write(s, chunk, n), 0);
        total += n;
        if (i % 7 == 0) cr_assert_eq(tl_yield(), 0); /* sends complete */
        if (i % 50 == 0) cr_assert_eq(tl_stream_drain(s), 0);
    }
    /* what is queued still goes out after close, then the end */
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(o.got, total);
    cr_expect_eq(o.bad, 0);
    cr_expect_eq(tl_close(peer), 0);
    return 0;
}

Test(stream, writes_behind_a_send_in_flight_keep_their_order, .timeout = 60)
{
    tl_test_run_no_leak(main_write_order, NULL, 0);
}

/* A stream freed while its send is in the kernel (a peer that does not
 * read, wait_closed cut short by a deadline): the bytes the kernel holds
 * are released by the send's own completion, never under it; repeated,
 * under ASan this catches a use after free or a leak. */
static int main_free_with_send_in_flight(void *arg)
{
    (void)arg;
    char *big = malloc(1 << 20);
    memset(big, 'z', 1 << 20);
    for (int i = 0; i < 20; i++) {
        int peer;
        tl_stream *s = pair_stream(&peer, NULL);
        cr_assert_eq(tl_stream_write(s, big, 1 << 20), 0);
        cr_assert_eq(tl_yield(), 0); /* the send reaches the kernel */
        int rc = 0;
        TL_WITH_TIMEOUT(0.01, &rc) { rc = tl_stream_wait_closed(s); }
        cr_expect_eq(rc, -ETIMEDOUT, "round %d: %s", i, tl_strerror(rc));
        if (i % 2) { /* the peer drains what was sent, then sees the end */
            char b[65536];
            ssize_t n;
            while ((n = tl_read(peer, b, sizeof b)) > 0) {}
            cr_expect(n == 0 || n == -ECONNRESET, "%zd", n);
        }
        cr_expect_eq(tl_close(peer), 0);
    }
    free(big);
    return 0;
}

Test(stream, freed_with_a_send_in_flight, .timeout = 60)
{
    tl_test_run_no_leak(main_free_with_send_in_flight, NULL, 0);
}

/* A peer that resets while the stream's send is in the kernel (on
 * io_uring a ring request over the frozen buffer), in each state the
 * stream can be in then: a task parked in drain; a drain cancelled
 * first; closed (tl_stream_close) with the queue still going out; closed
 * while a reader is parked (the fd is forgotten to wake it, the send
 * cancelled and sent again). The send's completion carries the error;
 * the buffer the kernel read is freed only after it (ASan checks), no
 * fd leaks (tl_test_run_no_leak), wait_closed reports the error or 0. */
struct drainer {
    tl_stream *s;
    int rc;
};

static int drainer_task(void *arg)
{
    struct drainer *d = arg;
    d->rc = tl_stream_drain(d->s);
    return 0;
}

static int parked_reader(void *arg)
{
    struct reader *r = arg;
    r->rc = tl_stream_read(r->s, r->buf, sizeof r->buf);
    return 0;
}

static bool write_error(int rc)
{
    return rc == -ECONNRESET || rc == -EPIPE;
}

static int main_reset_with_send_in_flight(void *arg)
{
    (void)arg;
    const size_t big = 1 << 20;
    char *data = malloc(big);
    memset(data, 'r', big);
    for (int mode = 0; mode < 4; mode++) {
        int l, srv;
        int c = tcp_pair(&l, &srv, 16 * 1024);
        tl_stream *s;
        cr_assert_eq(tl_stream_open(&s, c, NULL), 0);
        cr_assert_eq(tl_stream_write(s, data, big), 0);
        tl_test_settle(); /* the send reaches the kernel */
        cr_expect_gt(tl_stream_write_buffered(s), 0, "mode %d", mode);
        struct drainer d = {.s = s, .rc = 12345};
        struct reader r = {.s = s, .rc = 12345};
        tl_task t = {0};
        bool joined = mode >= 2; /* no drainer */
        if (mode <= 1) {
            t = tl_test_spawn(drainer_task, &d);
            tl_test_settle();
            cr_expect_eq(d.rc, 12345, "mode %d: drain returned early",
                         mode);
            if (mode == 1) {
                cr_expect_eq(tl_cancel(t), 0);
                cr_expect_eq(tl_test_join(t), 0);
                joined = true;
                cr_expect_eq(d.rc, -ECANCELED);
                /* nothing lost: the queue keeps going out */
                cr_expect_gt(tl_stream_write_buffered(s), 0);
            }
        } else if (mode == 2) {
            cr_expect_eq(tl_stream_close(s), 0);
            tl_test_settle();
        } else {
            t = tl_test_spawn(parked_reader, &r);
            tl_test_settle();
            cr_expect_eq(tl_stream_close(s), 0);
            cr_expect_eq(tl_test_join(t), 0);
            cr_expect_eq(r.rc, TL_ECLOSED, "read: %zd", r.rc);
            tl_test_settle(); /* the send goes back to the kernel */
        }
        reset_peer(srv); /* with unread bytes too */
        if (!joined) {
            cr_expect_eq(tl_test_join(t), 0);
            cr_expect(write_error(d.rc), "mode %d: drain: %d (%s)", mode,
                      d.rc, tl_strerror(d.rc));
        }
        int wc = tl_stream_wait_closed(s);
        cr_expect(wc == 0 || write_error(wc), "mode %d: wait_closed: %d",
                  mode, wc);
        cr_expect_eq(tl_close(l), 0);
    }
    free(data);
    return 0;
}

Test(stream, peer_reset_with_a_send_in_flight, .timeout = 60)
{
    tl_test_run_no_leak(main_reset_with_send_in_flight, NULL, 0);
}

Test(stream, reset_mid_message_keeps_buffered_bytes, .timeout = 60)
{
    tl_test_run_no_leak(main_reset, NULL, 0);
}

static int main_pipe(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    tl_stream *in, *out;
    cr_assert_eq(tl_stream_open(&in, p[0], NULL), 0);
    cr_assert_eq(tl_stream_open(&out, p[1], NULL), 0);
    cr_expect_eq(tl_stream_write(out, "via pipe\n", 9), 0);
    cr_expect_eq(tl_stream_write_eof(out), 0); /* closes the write end */
    char b[32];
    cr_expect_eq(tl_stream_readline(in, b, sizeof b), 9);
    cr_expect_eq(tl_stream_readline(in, b, sizeof b), 0);
    cr_expect_eq(tl_stream_wait_closed(out), 0);
    cr_expect_eq(tl_stream_wait_closed(in), 0);

    /* a pipe whose reader is gone: -EPIPE, and no SIGPIPE kills us */
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert_eq(tl_stream_open(&out, p[1], NULL), 0);
    close(p[0]);
    cr_expect_eq(tl_stream_write(out, "x", 1), -EPIPE);
    cr_expect_eq(tl_stream_write(out, "x", 1), -EPIPE);
    cr_expect_eq(tl_stream_drain(out), -EPIPE);
    cr_expect_eq(tl_stream_wait_closed(out), 0);
    /* (The SIGPIPE the write raised stays pending in the loop's thread
     * until tl_run returns and takes it out: test_io_ops checks that.) */

    /* borrowed: the fd stays open */
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    tl_stream_opts o = {.flags = TL_STREAM_BORROW};
    cr_assert_eq(tl_stream_open(&out, p[1], &o), 0);
    cr_expect_eq(tl_stream_write_eof(out), -EOPNOTSUPP);
    cr_expect_eq(tl_stream_wait_closed(out), 0);
    cr_expect_geq(fcntl(p[1], F_GETFD), 0, "a borrowed fd was closed");
    cr_expect_eq(tl_close(p[0]), 0);
    cr_expect_eq(tl_close(p[1]), 0);
    return 0;
}

Test(stream, pipes_write_eof_epipe_and_borrowed_fds, .timeout = 60)
{
    tl_test_run_no_leak(main_pipe, NULL, 0);
}

/* A borrowed pipe goes back with the file status flags it came with: a
 * blocking end is blocking again once the stream ended (the open file is
 * shared: a blocking reader elsewhere must not get EAGAIN), one that was
 * already non-blocking stays so, and the fd still works with tulip. */
static int main_borrow_flags(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    int fl0 = fcntl(p[0], F_GETFL), fl1 = fcntl(p[1], F_GETFL);
    cr_assert(!(fl0 & O_NONBLOCK) && !(fl1 & O_NONBLOCK));
    tl_stream_opts o = {.flags = TL_STREAM_BORROW};
    tl_stream *in, *out;
    cr_assert_eq(tl_stream_open(&in, p[0], &o), 0);
    cr_assert_eq(tl_stream_open(&out, p[1], &o), 0);
    cr_expect_eq(tl_stream_write(out, "ping\n", 5), 0);
    cr_expect_eq(tl_stream_drain(out), 0);
    char b[16];
    cr_expect_eq(tl_stream_readline(in, b, sizeof b), 5);
    cr_expect_eq(tl_stream_wait_closed(out), 0);
    cr_expect_eq(tl_stream_wait_closed(in), 0);
    cr_expect_eq(fcntl(p[0], F_GETFL), fl0, "read end: flags %#x, were %#x",
                 fcntl(p[0], F_GETFL), fl0);
    cr_expect_eq(fcntl(p[1], F_GETFL), fl1, "write end: flags %#x, were %#x",
                 fcntl(p[1], F_GETFL), fl1);
    /* Still usable: tulip made a fresh record for it. */
    cr_expect_eq(tl_write(p[1], "z", 1), 1);
    cr_expect_eq(tl_read(p[0], b, 1), 1);
    cr_expect_eq(tl_close(p[0]), 0);
    cr_expect_eq(tl_close(p[1]), 0);

    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    cr_assert_eq(tl_stream_open(&out, p[1], &o), 0);
    cr_expect_eq(tl_stream_wait_closed(out), 0);
    cr_expect(fcntl(p[1], F_GETFL) & O_NONBLOCK, "a non-blocking fd lost its flag");
    cr_expect_eq(tl_close(p[0]), 0);
    cr_expect_eq(tl_close(p[1]), 0);
    return 0;
}

Test(stream, a_borrowed_pipe_gets_its_blocking_mode_back, .timeout = 60)
{
    tl_test_run_no_leak(main_borrow_flags, NULL, 0);
}

/* The same for a caller's transport (tl_stream_open_transport): a plain
 * pass-through over a borrowed blocking pipe. Its close runs while the fd
 * is still open and non-blocking; after the stream ended the fd is open
 * with the flags it came with. Owned, the fd is closed after close. */
struct pass {
    int closes;
    int fd_open_at_close;
};

static ssize_t pass_read(void *ctx, int fd, void *buf, size_t len)
{
    (void)ctx;
    for (;;) {
        ssize_t n = tl_read(fd, buf, len);
        if (n != -EAGAIN) return n;
        int rc = tl_fd_wait(fd, TL_READABLE);
        if (rc < 0) return rc;
    }
}

static ssize_t pass_write(void *ctx, int fd, const void *buf, size_t len)
{
    (void)ctx;
    ssize_t n = write(fd, buf, len);
    return n < 0 ? -errno : n;
}

static void pass_close(void *ctx, int fd)
{
    struct pass *p = ctx;
    p->closes++;
    p->fd_open_at_close = fcntl(fd, F_GETFL) >= 0;
}

static const tl_stream_transport pass_tp = {
    .read = pass_read, .write = pass_write, .close = pass_close};

static int main_transport_borrow_flags(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    int fl0 = fcntl(p[0], F_GETFL), fl1 = fcntl(p[1], F_GETFL);
    cr_assert(!(fl0 & O_NONBLOCK) && !(fl1 & O_NONBLOCK));
    tl_stream_opts o = {.flags = TL_STREAM_BORROW};
    struct pass pin = {0}, pout = {0};
    tl_stream *in, *out;
    cr_assert_eq(tl_stream_open_transport(&in, p[0], &pass_tp, &pin, &o), 0);
    cr_assert_eq(tl_stream_open_transport(&out, p[1], &pass_tp, &pout, &o), 0);
    cr_expect(fcntl(p[0], F_GETFL) & O_NONBLOCK, "the stream runs non-blocking");
    cr_expect_eq(tl_stream_write(out, "ping\n", 5), 0);
    cr_expect_eq(tl_stream_drain(out), 0);
    char b[16];
    cr_expect_eq(tl_stream_readline(in, b, sizeof b), 5);
    cr_expect_eq(tl_stream_wait_closed(out), 0);
    cr_expect_eq(tl_stream_wait_closed(in), 0);
    cr_expect_eq(pin.closes, 1);
    cr_expect_eq(pout.closes, 1);
    cr_expect(pin.fd_open_at_close && pout.fd_open_at_close,
              "the transport's close saw a closed fd");
    cr_expect_eq(fcntl(p[0], F_GETFL), fl0, "read end: flags %#x, were %#x",
                 fcntl(p[0], F_GETFL), fl0);
    cr_expect_eq(fcntl(p[1], F_GETFL), fl1, "write end: flags %#x, were %#x",
                 fcntl(p[1], F_GETFL), fl1);
    cr_expect_eq(tl_write(p[1], "z", 1), 1);
    cr_expect_eq(tl_read(p[0], b, 1), 1);
    cr_expect_eq(tl_close(p[0]), 0);

    /* Owned: closed once the transport let go. */
    struct pass pown = {0};
    cr_assert_eq(tl_stream_open_transport(&out, p[1], &pass_tp, &pown, NULL), 0);
    cr_expect_eq(tl_stream_wait_closed(out), 0);
    cr_expect_eq(pown.closes, 1);
    cr_expect(pown.fd_open_at_close, "the transport's close saw a closed fd");
    cr_expect_lt(fcntl(p[1], F_GETFD), 0, "an owned fd stayed open");
    return 0;
}

Test(stream, a_borrowed_pipe_under_a_transport_gets_its_blocking_mode_back,
     .timeout = 60)
{
    tl_test_run_no_leak(main_transport_borrow_flags, NULL, 0);
}

/* ---- the lines generator ---------------------------------------------- */

struct trickle {
    int fd;
    tl_event got; /* the consumer took a line: send the next piece */
    int pieces;
};

/* Sends lines in pieces, each after the consumer took the previous line:
 * events, not sleeps, pace it. */
static int trickler(void *arg)
{
    struct trickle *tr = arg;
    static const char *const pieces[] = {"alpha\n", "be", "ta\r\n",
                                         "gam", "ma\n", "last"};
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
        put(tr->fd, pieces[i]);
        tr->pieces++;
        if (strchr(pieces[i], '\n')) {
            int rc = tl_event_wait(&tr->got);
            if (rc < 0) return rc;
            TL_IGNORE(tl_event_clear(&tr->got));
        } else {
            tl_test_settle(); /* let a partial line reach the reader */
        }
    }
    return tl_close(tr->fd);
}

static int main_lines(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    struct trickle tr = {.fd = peer};
    cr_assert_eq(tl_event_init(&tr.got), 0);
    tl_task t = tl_test_spawn(trickler, &tr);
    tl_gen *g;
    cr_assert_eq(tl_stream_lines(&g, s), 0);
    static const char *const want[] = {"alpha", "beta", "gamma", "last"};
    size_t i = 0;
    const char *line;
    int rc;
    TL_GEN_FOREACH(g, line, &rc)
    {
        cr_expect_lt(i, 4);
        if (i < 4) cr_expect_str_eq(line, want[i]);
        i++;
        TL_IGNORE(tl_event_set(&tr.got));
    }
    cr_expect_eq(rc, 0, "lines: %d (%s)", rc, tl_strerror(rc));
    cr_expect_eq(i, 4);
    cr_expect_eq(tl_gen_close(g), 0);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(tl_stream_wait_closed(s), 0);

    /* closed early: the stream stays usable */
    s = pair_stream(&peer, NULL);
    put(peer, "one\ntwo\n");
    cr_assert_eq(tl_stream_lines(&g, s), 0);
    void *v;
    cr_expect_eq(tl_gen_next(g, &v), 0);
    cr_expect_str_eq(v, "one");
    cr_expect_eq(tl_gen_close(g), 0);
    char b[16];
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 4);
    cr_expect_str_eq(b, "two\n");
    /* a line over the limit fails the generator */
    tl_stream_opts o = {.limit = 8};
    tl_stream *s2 = NULL;
    int p2;
    s2 = pair_stream(&p2, &o);
    put(p2, "much too long a line\n");
    cr_assert_eq(tl_stream_lines(&g, s2), 0);
    cr_expect_eq(tl_gen_next(g, &v), -EMSGSIZE);
    cr_expect_eq(tl_gen_close(g), 0);
    cr_expect_eq(tl_stream_buffered(s2), 21);
    cr_expect_eq(tl_stream_wait_closed(s2), 0);
    cr_expect_eq(tl_close(p2), 0);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_close(peer), 0);
    return 0;
}

Test(stream, lines_generator_over_a_trickling_peer, .timeout = 60)
{
    tl_test_run_no_leak(main_lines, NULL, 0);
}

/* ---- a tulip client against Python's own asyncio server ---------------- */

static const char py_server[] =
    "import asyncio, sys\n"
    "async def main():\n"
    "    done = asyncio.Event()\n"
    "    async def handle(r, w):\n"
    "        while True:\n"
    "            line = await r.readline()\n"
    "            if not line: break\n"
    "            w.write(line)\n"
    "            await w.drain()\n"
    "        w.close()\n"
    "        await w.wait_closed()\n"
    "        done.set()\n"
    "    srv = await asyncio.start_server(handle, '127.0.0.1', 0)\n"
    "    print(srv.sockets[0].getsockname()[1], flush=True)\n"
    "    await asyncio.wait_for(done.wait(), 20)\n"
    "    srv.close()\n"
    "    await srv.wait_closed()\n"
    "asyncio.run(main())\n";

#define PY_LINES TL_TEST_SCALE(2000)

struct py_client {
    tl_stream *s;
    int rc;
};

static void py_line(char *buf, size_t cap, int i)
{
    /* lines of varying length, up to a few KiB */
    int len = snprintf(buf, cap, "line %d:", i);
    int extra = (i * 37) % 3000;
    for (int k = 0; k < extra && len < (int)cap - 2; k++)
        buf[len++] = (char)('a' + (i + k) % 26);
    buf[len++] = '\n';
    buf[len] = '\0';
}

static int py_writer(void *arg)
{
    struct py_client *c = arg;
    char line[4096];
    for (int i = 0; i < PY_LINES; i++) {
        py_line(line, sizeof line, i);
        int rc = tl_stream_write(c->s, line, strlen(line));
        if (rc == 0) rc = tl_stream_drain(c->s);
        if (rc < 0) return c->rc = rc;
    }
    return c->rc = tl_stream_write_eof(c->s);
}

struct py_run {
    pid_t pid;
};

static int main_python(void *arg)
{
    struct py_run *pr = arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    char *argv[] = {"python3", "-c", (char *)py_server, NULL};
    int rc = posix_spawnp(&pr->pid, "python3", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    cr_assert_eq(rc, 0, "spawn python3: %s", strerror(rc));
    /* the port, from the child's stdout: a stream over a pipe */
    tl_stream *out;
    cr_assert_eq(tl_stream_open(&out, p[0], NULL), 0);
    char port[32];
    ssize_t n;
    TL_WITH_TIMEOUT(20.0, &rc) { rc = (int)tl_stream_readline(out, port, sizeof port); }
    cr_assert_gt(rc, 0, "python's port: %d (%s)", rc, tl_strerror(rc));
    tl_sockaddr a;
    cr_assert_eq(tl_sockaddr_ip(&a, "127.0.0.1", atoi(port)), 0);
    int fd = tl_net_connect(&a, SOCK_STREAM);
    cr_assert_geq(fd, 0, "connect: %s", tl_strerror(fd));
    tl_stream *s;
    cr_assert_eq(tl_stream_open(&s, fd, NULL), 0);
    struct py_client c = {.s = s};
    tl_task w = tl_test_spawn(py_writer, &c);
    char want[4096], got[4096];
    int lines = 0;
    TL_WITH_TIMEOUT(20.0, &rc)
    {
        for (; lines < PY_LINES; lines++) {
            py_line(want, sizeof want, lines);
            n = tl_stream_readline(s, got, sizeof got);
            if (n <= 0) {
                rc = (int)n;
                break;
            }
            if (strcmp(got, want) != 0) {
                cr_expect_str_eq(got, want, "line %d", lines);
                break;
            }
        }
        if (rc == 0) rc = (int)tl_stream_read(s, got, sizeof got);
    }
    cr_expect_eq(lines, PY_LINES);
    cr_expect_eq(rc, 0, "after the echo: %d (%s), not the end", rc,
                 tl_strerror(rc));
    cr_expect_eq(tl_test_join(w), 0);
    cr_expect_eq(c.rc, 0);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    /* the server exits after its one client: its stdout ends */
    TL_WITH_TIMEOUT(20.0, &rc) { rc = (int)tl_stream_read(out, got, sizeof got); }
    cr_expect_eq(rc, 0);
    cr_expect_eq(tl_stream_wait_closed(out), 0);
    return 0;
}

Test(stream, client_against_python_asyncio_server, .timeout = 60)
{
    if (access("/usr/bin/python3", X_OK) != 0) cr_skip_test("no python3");
    struct py_run pr = {0};
    tl_test_run_no_leak(main_python, &pr, 0);
    if (pr.pid > 0) {
        int st = 0;
        pid_t r = 0;
        for (int i = 0; i < 2000 && (r = waitpid(pr.pid, &st, WNOHANG)) == 0; i++)
            usleep(10000);
        if (r == 0) {
            kill(pr.pid, SIGKILL);
            waitpid(pr.pid, &st, 0);
            cr_expect_fail("python did not exit");
        } else {
            cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "python's status %#x", st);
        }
    }
}

/* ---- close while tasks are inside ------------------------------------- */

static int reader_line(void *arg)
{
    struct reader *r = arg;
    r->rc = tl_stream_readline(r->s, r->buf, sizeof r->buf);
    return 0;
}

static int main_close_busy(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    /* a reader parked, a drainer parked, a megabyte queued */
    struct reader r = {.s = s, .rc = 12345};
    tl_task rt = tl_test_spawn(reader_line, &r);
    char *big = malloc(1 << 20);
    memset(big, 'c', 1 << 20);
    cr_expect_eq(tl_stream_write(s, big, 1 << 20), 0);
    struct writer w = {.s = s, .total = 1, .chunk = 1};
    tl_task wt = tl_test_spawn(writer_task, &w);
    tl_test_settle();
    cr_expect_not(w.done);
    cr_expect_eq(tl_stream_close(s), 0);
    cr_expect_eq(tl_test_join(rt), 0);
    cr_expect_eq(r.rc, TL_ECLOSED);
    cr_expect_eq(tl_test_join(wt), 0);
    cr_expect_eq(w.rc, TL_ECLOSED);
    /* the queue still goes out, then the end */
    tl_task ct = tl_test_spawn(wait_closed_task, s);
    char *buf = malloc(65536);
    size_t got = 0;
    ssize_t n;
    while ((n = tl_read(peer, buf, 65536)) > 0) got += (size_t)n;
    cr_expect_eq(n, 0);
    cr_expect_eq(got, (1u << 20) + 1);
    cr_expect_eq(tl_test_join(ct), 0);
    cr_expect_eq(tl_close(peer), 0);

    /* wait_closed cancelled while a reader is still on its way out */
    s = pair_stream(&peer, NULL);
    r.s = s;
    r.rc = 12345;
    rt = tl_test_spawn(reader_line, &r);
    tl_test_settle();
    cr_expect_eq(tl_stream_write(s, big, 1 << 20), 0);
    int rc;
    TL_WITH_TIMEOUT(0.02, &rc) { rc = tl_stream_wait_closed(s); }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_test_join(rt), 0);
    cr_expect_eq(r.rc, TL_ECLOSED);
    while ((n = tl_read(peer, buf, 65536)) > 0) {}
    cr_expect_eq(n, 0);
    cr_expect_eq(tl_close(peer), 0);
    free(buf);
    free(big);
    return 0;
}

Test(stream, close_wakes_readers_and_drainers_and_still_flushes, .timeout = 60)
{
    tl_test_run_no_leak(main_close_busy, NULL, 0);
}

/* A read that waits on a pipe before anything was written (the stream
 * made the pipe non-blocking). */
static int main_pipe_wait(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    tl_stream *in;
    cr_assert_eq(tl_stream_open(&in, p[0], NULL), 0);
    struct reader r = {.s = in, .rc = 12345};
    tl_task t = tl_test_spawn(reader_line, &r);
    tl_test_settle();
    cr_expect_eq(r.rc, 12345);
    put(p[1], "late\n");
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(r.rc, 5, "readline: %zd (%s)", r.rc, tl_strerror((int)r.rc));
    cr_expect_str_eq(r.buf, "late\n");
    cr_expect_eq(tl_stream_wait_closed(in), 0);
    cr_expect_eq(tl_close(p[1]), 0);
    return 0;
}

Test(stream, pipe_read_waits_for_data, .timeout = 60)
{
    tl_test_run_no_leak(main_pipe_wait, NULL, 0);
}

/* A consumer of the lines generator that times out: the producer's
 * readline is cancelled and the half line it had stays in the stream. */
static int main_lines_cancel(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    put(peer, "whole\nhal");
    tl_gen *g;
    cr_assert_eq(tl_stream_lines(&g, s), 0);
    void *v;
    cr_expect_eq(tl_gen_next(g, &v), 0);
    cr_expect_str_eq(v, "whole");
    int rc;
    TL_WITH_TIMEOUT(0.05, &rc) { rc = tl_gen_next(g, &v); }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_gen_close(g), 0);
    cr_expect_eq(tl_stream_buffered(s), 3);
    put(peer, "f\n");
    char b[16];
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 5);
    cr_expect_str_eq(b, "half\n");
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_close(peer), 0);
    return 0;
}

Test(stream, lines_consumer_timeout_keeps_the_half_line, .timeout = 60)
{
    tl_test_run_no_leak(main_lines_cancel, NULL, 0);
}

/* ---- many streams, reads cut short over and over ---------------------- */

#define CHAOS_PAIRS 16
#define CHAOS_LINES 300

struct chaos {
    tl_stream *w, *r;
    int next;     /* the line the reader expects */
    int timeouts; /* reads cut short by a deadline */
    int bad;
};

static int chaos_writer(void *arg)
{
    struct chaos *c = arg;
    char line[128];
    for (int i = 0; i < CHAOS_LINES; i++) {
        int n = snprintf(line, sizeof line, "%d:%0*d\n", i, i % 90, 7);
        /* in two pieces, so reads meet half lines */
        int rc = tl_stream_write(c->w, line, (size_t)n / 2);
        if (rc == 0) rc = tl_stream_drain(c->w);
        if (rc == 0 && i % 3 == 0) TL_IGNORE(tl_yield());
        if (rc == 0 && i % 10 == 0) TL_IGNORE(tl_sleep(0.002)); /* half a line waits */
        if (rc == 0) rc = tl_stream_write(c->w, line + n / 2, (size_t)(n - n / 2));
        if (rc == 0) rc = tl_stream_drain(c->w);
        if (rc < 0) return rc;
    }
    return tl_stream_write_eof(c->w);
}

static int chaos_reader(void *arg)
{
    struct chaos *c = arg;
    char line[128];
    for (;;) {
        int rc;
        ssize_t n = 0;
        TL_WITH_TIMEOUT(0.0002 * (1 + c->next % 5), &rc)
        {
            n = tl_stream_readline(c->r, line, sizeof line);
            rc = n < 0 ? (int)n : 0;
        }
        if (rc == -ETIMEDOUT) {
            c->timeouts++;
            continue;
        }
        if (rc < 0) return rc;
        if (n == 0) break;
        int idx = atoi(line);
        if (idx != c->next) c->bad++;
        c->next++;
    }
    return 0;
}

static int main_chaos(void *arg)
{
    (void)arg;
    static struct chaos cs[CHAOS_PAIRS];
    tl_task ts[2 * CHAOS_PAIRS];
    for (int i = 0; i < CHAOS_PAIRS; i++) {
        int sv[2];
        cr_assert_eq(tl_socketpair(SOCK_STREAM, sv), 0);
        tl_stream_opts o = {.high_water = 256, .low_water = 64};
        cs[i] = (struct chaos){0};
        cr_assert_eq(tl_stream_open(&cs[i].w, sv[0], &o), 0);
        cr_assert_eq(tl_stream_open(&cs[i].r, sv[1], NULL), 0);
        ts[2 * i] = tl_test_spawn(chaos_writer, &cs[i]);
        ts[2 * i + 1] = tl_test_spawn(chaos_reader, &cs[i]);
    }
    int timeouts = 0;
    for (int i = 0; i < CHAOS_PAIRS; i++) {
        cr_expect_eq(tl_test_join(ts[2 * i]), 0);
        cr_expect_eq(tl_test_join(ts[2 * i + 1]), 0);
        cr_expect_eq(cs[i].next, CHAOS_LINES, "pair %d got %d lines", i,
                     cs[i].next);
        cr_expect_eq(cs[i].bad, 0, "pair %d: lines out of order", i);
        timeouts += cs[i].timeouts;
        cr_expect_eq(tl_stream_wait_closed(cs[i].w), 0);
        cr_expect_eq(tl_stream_wait_closed(cs[i].r), 0);
    }
    cr_log_info("%d reads cut short by a deadline", timeouts);
    return 0;
}

Test(stream, many_streams_with_reads_cut_short_lose_nothing, .timeout = 60)
{
    tl_test_run_no_leak(main_chaos, NULL, 0);
}

/* On the virtual clock a deadline around a stream read waiting for a
 * silent peer fires at once (the wait does not hold the clock), and the
 * stream is usable afterwards. */
static int main_virtual(void *arg)
{
    (void)arg;
    int peer;
    tl_stream *s = pair_stream(&peer, NULL);
    put(peer, "x");
    double t0 = tl_now();
    char b[8];
    int rc;
    TL_WITH_TIMEOUT(30.0, &rc) { rc = (int)tl_stream_readline(s, b, sizeof b); }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_now() - t0, 30.0);
    char *big = malloc(1 << 20);
    memset(big, 'v', 1 << 20);
    cr_expect_eq(tl_stream_write(s, big, 1 << 20), 0);
    TL_WITH_TIMEOUT(5.0, &rc) { rc = tl_stream_drain(s); }
    cr_expect_eq(rc, -ETIMEDOUT);
    free(big);
    put(peer, "\n");
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 2);
    TL_WITH_TIMEOUT(1.0, &rc) { rc = tl_stream_wait_closed(s); }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_close(peer), 0);
    return 0;
}

Test(stream, virtual_clock_deadlines_fire_around_stream_waits, .timeout = 60)
{
    int before = tl_test_count_fds();
    cr_expect_eq(run_virtual(main_virtual, NULL), 0);
    cr_expect_eq(tl_test_count_fds(), before);
}
