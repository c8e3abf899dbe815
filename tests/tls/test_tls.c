/* libtulip-tls (tulip/tls.h): a tulip TLS server and a tulip TLS client
 * in one loop, over loopback TCP or a socketpair, with a CA and
 * certificates the test makes with the openssl command: lines echoed
 * through tl_stream; an unknown CA and a wrong host name refused with
 * -EKEYREJECTED; SNI received for names and not for addresses; ALPN
 * agreed; a handshake against a silent peer ended by
 * a timeout scope with no fd leaked; a peer that closes without
 * close_notify reported as a truncation; the second connection to a
 * server resumes the first one's session; a cancel mid-handshake and
 * mid-record (a relay task holding back part of the server's bytes)
 * loses nothing and leaks nothing; client certificates (mutual TLS):
 * one the server's CA signed accepted and named on both sides (also on a
 * resumed session), none or one from another CA refused with
 * -EKEYREJECTED and OpenSSL's words on both sides, the optional mode
 * letting a client without one in. Skipped (77) without openssl.
 * Runs on each backend. */
#include "tiny.h"

#include <tulip/tls.h>

#include <errno.h>

#ifndef TULIP_TEST_SANITIZED
#define TULIP_TEST_SANITIZED 0
#endif

#define TL_IGNORE(call)                                                        \
    do {                                                                       \
        if (call) {}                                                           \
    } while (0)

/* Criterion-like checks in tiny.h's terms (a failure ends the test's
 * child; the message arguments are only for reading). */
#define cr_assert_eq(a, b, ...) TINY_ASSERT_EQ(a, b)
#define cr_expect_eq(a, b, ...) TINY_ASSERT_EQ(a, b)
#define cr_assert(c, ...) TINY_ASSERT(c)
#define cr_expect(c, ...) TINY_ASSERT(c)
#define cr_assert_geq(a, b, ...) TINY_ASSERT((a) >= (b))
#define cr_expect_lt(a, b, ...) TINY_ASSERT((a) < (b))
#define cr_expect_not_null(p, ...) TINY_ASSERT((p) != NULL)
#define cr_expect_null(p, ...) TINY_ASSERT((p) == NULL)
#define cr_expect_str_eq(a, b, ...) TINY_ASSERT_STR_EQ(a, b)

/* The OpenSSL words attached to rc, or "". */
static const char *why(int rc)
{
    const char *m = tl_fail_message(rc);
    return m ? m : "";
}

#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fd_count.h"
#include "tls_certs.h"

/* tl_test_open_fds (fd_count.h), which must be able to read /proc/self/fd. */
static int count_fds(void)
{
    int n = tl_test_open_fds();
    TINY_ASSERT(n >= 0);
    return n;
}

static void run_checked(tl_fn fn, void *arg)
{
    int before = count_fds();
    int rc = tl_run(fn, arg);
    cr_expect_eq(rc, 0, "tl_run: %d (%s)", rc, tl_strerror(rc));
    cr_expect_eq(count_fds(), before, "fds before %d, after %d", before,
                 count_fds());
}


/* ---- a server task ---------------------------------------------------- */

typedef struct server {
    tl_tls_ctx *ctx;
    int fd;          /* the accepted (or socketpair) fd */
    int rc;          /* the handshake's result */
    size_t bytes;    /* bytes echoed */
    char alpn[32];
    int resumed;     /* tl_tls_resumed after the handshake */
    char subject[128]; /* tl_tls_peer_subject after the handshake, or "" */
    char why[256];   /* the handshake's tl_fail message, or "" */
    char sni[64];    /* tl_tls_server_name after the handshake, or "" */
} server;

/* Handshake, then echo what comes until the end of the stream. */
static int server_task(void *arg)
{
    server *sv = arg;
    tl_stream *s = NULL;
    sv->rc = tl_tls_accept(&s, sv->ctx, sv->fd, NULL);
    if (sv->rc < 0) {
        snprintf(sv->why, sizeof sv->why, "%s", why(sv->rc));
        TL_IGNORE(tl_close(sv->fd));
        return 0;
    }
    sv->resumed = tl_tls_resumed(s);
    const char *sn = tl_tls_server_name(s);
    if (sn) snprintf(sv->sni, sizeof sv->sni, "%s", sn);
    const char *subj = tl_tls_peer_subject(s);
    if (subj) snprintf(sv->subject, sizeof sv->subject, "%s", subj);
    const char *a = tl_tls_alpn(s);
    if (a) snprintf(sv->alpn, sizeof sv->alpn, "%s", a);
    char buf[4096];
    ssize_t n;
    while ((n = tl_stream_read(s, buf, sizeof buf)) > 0) {
        cr_expect_eq(tl_stream_write(s, buf, (size_t)n), 0);
        cr_expect_eq(tl_stream_drain(s), 0);
        sv->bytes += (size_t)n;
    }
    cr_expect_eq(n, 0, "server read: %zd %s", n, tl_strerror((int)n));
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    return 0;
}

static tl_tls_ctx *server_ctx(const char *crt, const char *key, const char *alpn)
{
    tl_tls_ctx *c = NULL;
    tl_tls_server_opts o = {.alpn = alpn};
    int rc = tl_tls_server_ctx(&c, crt, key, &o);
    cr_assert_eq(rc, 0, "server ctx: %s %s", tl_strerror(rc),
                 tl_fail_message(rc) ? tl_fail_message(rc) : "");
    return c;
}

static tl_tls_ctx *client_ctx(const char *ca, const char *alpn)
{
    tl_tls_ctx *c = NULL;
    tl_tls_client_opts o = {.ca_file = ca, .alpn = alpn};
    int rc = tl_tls_client_ctx(&c, &o);
    cr_assert_eq(rc, 0, "client ctx: %s", tl_strerror(rc));
    return c;
}

/* ---- echo over loopback TCP ------------------------------------------- */

static int main_echo(void *arg)
{
    (void)arg;
    tl_sockaddr addr;
    cr_assert_eq(tl_sockaddr_ip(&addr, "127.0.0.1", 0), 0);
    int lfd = tl_net_listen(&addr, SOCK_STREAM, 4, 0);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(tl_sockaddr_local(lfd, &addr), 0);

    int cfd = tl_net_connect(&addr, SOCK_STREAM);
    cr_assert_geq(cfd, 0);
    server sv = {.ctx = server_ctx(g_crt, g_key, NULL)};
    sv.fd = tl_accept(lfd, NULL, NULL);
    cr_assert_geq(sv.fd, 0);
    tl_task t;
    cr_assert_eq(tl_spawn(&t, server_task, &sv), 0);

    tl_tls_ctx *cc = client_ctx(g_ca, NULL);
    tl_stream *s = NULL;
    int rc = tl_tls_connect(&s, cc, cfd, "localhost", NULL);
    cr_assert_eq(rc, 0, "connect: %s: %s", tl_strerror(rc),
                 tl_fail_message(rc) ? tl_fail_message(rc) : "");
    cr_expect_not_null(tl_tls_version(s));
    cr_expect_null(tl_tls_alpn(s));
    cr_expect_not_null(tl_tls_server_name(s));
    if (tl_tls_server_name(s))
        cr_expect_str_eq(tl_tls_server_name(s), "localhost");
    char line[256];
    size_t sent = 0;
    for (int i = 0; i < 50; i++) {
        char msg[64];
        int k = snprintf(msg, sizeof msg, "line %d over TLS\n", i);
        cr_assert_eq(tl_stream_write(s, msg, (size_t)k), 0);
        cr_assert_eq(tl_stream_drain(s), 0);
        sent += (size_t)k;
        cr_assert_eq(tl_stream_readline(s, line, sizeof line), k);
        cr_expect_str_eq(line, msg);
    }
    /* A message bigger than one TLS record, through readexactly. */
    size_t big = 100000;
    char *out = malloc(big + 1), *in = malloc(big + 1);
    for (size_t i = 0; i < big; i++) out[i] = (char)('a' + i % 26);
    out[big] = '\n';
    cr_assert_eq(tl_stream_write(s, out, big + 1), 0);
    cr_assert_eq(tl_stream_drain(s), 0);
    size_t part = 0;
    cr_expect_eq(tl_stream_readexactly(s, in, big + 1, &part), (ssize_t)big + 1);
    cr_expect_eq(memcmp(in, out, big + 1), 0);
    free(out);
    free(in);
    cr_expect_eq(tl_stream_write_eof(s), 0); /* close_notify: the server ends */
    cr_expect_eq(tl_stream_read(s, line, sizeof line), 0); /* its close_notify */
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_eq(sv.rc, 0);
    cr_expect_eq(sv.bytes, sent + big + 1);
    cr_expect_str_eq(sv.sni, "localhost"); /* the server got the SNI */
    tl_tls_ctx_free(cc);
    tl_tls_ctx_free(sv.ctx);
    cr_expect_eq(tl_close(lfd), 0);
    return 0;
}

TINY_TEST(echo_lines_over_loopback)
{
    run_checked(main_echo, NULL);
}

/* ---- refusals --------------------------------------------------------- */

typedef struct refuse {
    const char *crt, *key; /* the server's */
    const char *ca;        /* the client's CA file (NULL: the system's) */
    const char *host;
    const char *calpn, *salpn;
    int want;              /* the client's expected result */
    const char *want_alpn;
} refuse;

static int main_handshake(void *arg)
{
    refuse *r = arg;
    int sp[2];
    cr_assert_eq(tl_socketpair(SOCK_STREAM, sp), 0);
    server sv = {.ctx = server_ctx(r->crt, r->key, r->salpn), .fd = sp[1]};
    tl_task t;
    cr_assert_eq(tl_spawn(&t, server_task, &sv), 0);
    tl_tls_ctx *cc = client_ctx(r->ca, r->calpn);
    tl_stream *s = NULL;
    int rc = tl_tls_connect(&s, cc, sp[0], r->host, NULL);
    const char *m = tl_fail_message(rc);
    fprintf(stderr, "  connect %s: %d (%s) %s\n", r->host ? r->host : "-", rc,
            tl_strerror(rc), m ? m : "");
    cr_expect_eq(rc, r->want, "connect: %d %s: %s", rc, tl_strerror(rc),
                 m ? m : "(no message)");
    if (rc < 0) {
        cr_expect_not_null(m, "no OpenSSL message for %d", rc);
        TL_IGNORE(tl_close(sp[0])); /* the server sees the end */
    } else {
        if (r->want_alpn) {
            cr_expect_not_null(tl_tls_alpn(s));
            if (tl_tls_alpn(s)) cr_expect_str_eq(tl_tls_alpn(s), r->want_alpn);
        }
        cr_expect_eq(tl_stream_write(s, "x\n", 2), 0);
        char b[8];
        cr_expect_eq(tl_stream_readline(s, b, sizeof b), 2);
        cr_expect_eq(tl_stream_wait_closed(s), 0);
    }
    cr_expect_eq(tl_join(t, NULL), 0);
    if (r->want_alpn) cr_expect_str_eq(sv.alpn, r->want_alpn);
    if (rc < 0) cr_expect_lt(sv.rc, 0);
    /* SNI carries names, never address literals (RFC 6066). */
    if (rc == 0) {
        unsigned char ip[16];
        int is_ip = inet_pton(AF_INET, r->host, ip) == 1;
        cr_expect_str_eq(sv.sni, is_ip ? "" : r->host);
    }
    tl_tls_ctx_free(cc);
    tl_tls_ctx_free(sv.ctx);
    return 0;
}

TINY_TEST(unknown_ca_refused_by_default)
{
    /* Verification against the system store: our test CA is unknown. */
    refuse r = {g_crt, g_key, NULL, "localhost", NULL, NULL, -EKEYREJECTED, NULL};
    run_checked(main_handshake, &r);
}

TINY_TEST(self_signed_refused)
{
    refuse r = {g_self_crt, g_self_key, g_ca, "localhost", NULL, NULL,
                -EKEYREJECTED, NULL};
    run_checked(main_handshake, &r);
}

TINY_TEST(wrong_host_name_refused)
{
    refuse r = {g_crt, g_key, g_ca, "example.org", NULL, NULL, -EKEYREJECTED,
                NULL};
    run_checked(main_handshake, &r);
}

TINY_TEST(ip_address_verified)
{
    refuse r = {g_crt, g_key, g_ca, "127.0.0.1", NULL, NULL, 0, NULL};
    run_checked(main_handshake, &r);
}

TINY_TEST(alpn_negotiated)
{
    refuse r = {g_crt, g_key, g_ca, "localhost", "h2,http/1.1",
                "http/1.1,h2", 0, "http/1.1"};
    run_checked(main_handshake, &r);
}

TINY_TEST(alpn_without_common_protocol_refused)
{
    refuse r = {g_crt, g_key, g_ca, "localhost", "h2", "http/1.1", -EPROTO,
                NULL};
    run_checked(main_handshake, &r);
}

/* ---- session resumption ------------------------------------------------ */

typedef struct resume {
    int no_resume;     /* the client context's option */
    int resumed[3];    /* per connection: the client's tl_tls_resumed */
    int sresumed[3];   /* the server's */
} resume;

/* Three connections to one server over loopback TCP with one client
 * context; each echoes a line, which also reads the TLS 1.3 tickets. */
static int main_resume(void *arg)
{
    resume *r = arg;
    tl_sockaddr addr;
    cr_assert_eq(tl_sockaddr_ip(&addr, "127.0.0.1", 0), 0);
    int lfd = tl_net_listen(&addr, SOCK_STREAM, 4, 0);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(tl_sockaddr_local(lfd, &addr), 0);
    tl_tls_ctx *sc = server_ctx(g_crt, g_key, NULL);
    tl_tls_ctx *cc = NULL;
    tl_tls_client_opts o = {.ca_file = g_ca, .no_resume = r->no_resume};
    cr_assert_eq(tl_tls_client_ctx(&cc, &o), 0);
    for (int i = 0; i < 3; i++) {
        int cfd = tl_net_connect(&addr, SOCK_STREAM);
        cr_assert_geq(cfd, 0);
        server sv = {.ctx = sc};
        sv.fd = tl_accept(lfd, NULL, NULL);
        cr_assert_geq(sv.fd, 0);
        tl_task t;
        cr_assert_eq(tl_spawn(&t, server_task, &sv), 0);
        tl_stream *s = NULL;
        int rc = tl_tls_connect(&s, cc, cfd, "localhost", NULL);
        cr_assert_eq(rc, 0, "connect %d: %s", i, why(rc));
        cr_expect_eq(tl_stream_write(s, "x\n", 2), 0);
        char b[8];
        cr_expect_eq(tl_stream_readline(s, b, sizeof b), 2);
        r->resumed[i] = tl_tls_resumed(s);
        cr_expect_eq(tl_stream_wait_closed(s), 0);
        cr_expect_eq(tl_join(t, NULL), 0);
        cr_expect_eq(sv.rc, 0);
        r->sresumed[i] = sv.resumed;
    }
    cr_expect_eq(tl_tls_resumed(NULL), 0);
    /* The context goes first: streams and the cache outlive it safely. */
    tl_tls_ctx_free(cc);
    tl_tls_ctx_free(sc);
    TL_IGNORE(tl_close(lfd));
    return 0;
}

TINY_TEST(second_connection_resumes_the_session)
{
    resume r = {0};
    run_checked(main_resume, &r);
    fprintf(stderr, "  resumed: client %d %d %d, server %d %d %d\n", r.resumed[0],
            r.resumed[1], r.resumed[2], r.sresumed[0], r.sresumed[1], r.sresumed[2]);
    cr_expect_eq(r.resumed[0], 0);
    cr_expect_eq(r.sresumed[0], 0);
    /* The second uses a ticket of the first, the third one of the second
     * (TLS 1.3 tickets are used once). */
    for (int i = 1; i < 3; i++) {
        cr_expect_eq(r.resumed[i], 1);
        cr_expect_eq(r.sresumed[i], 1);
    }
}

TINY_TEST(no_resume_means_full_handshakes)
{
    resume r = {.no_resume = 1};
    run_checked(main_resume, &r);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(r.resumed[i], 0);
        cr_expect_eq(r.sresumed[i], 0);
    }
}

/* ---- cancels mid-handshake and mid-record ------------------------------ */

/* A relay between the client's socket and the server's, one task per
 * direction. With hold set, the next bytes from the server go on only in
 * part (the first 5: a record header), then `partial` is set and the rest
 * waits for `release`. */
typedef struct relay {
    int from, to;
    int hold;
    tl_event partial, release;
} relay;

static int relay_task(void *arg)
{
    relay *r = arg;
    char buf[16384];
    for (;;) {
        ssize_t n = tl_read(r->from, buf, sizeof buf);
        if (n <= 0) break;
        size_t off = 0;
        if (r->hold && n > 5) {
            r->hold = 0;
            if (tl_write(r->to, buf, 5) != 5) break;
            off = 5;
            tl_event_set(&r->partial);
            if (tl_event_wait(&r->release) < 0) break;
        }
        while (off < (size_t)n) {
            ssize_t w = tl_write(r->to, buf + off, (size_t)n - off);
            if (w <= 0) goto out;
            off += (size_t)w;
        }
    }
out:
    TL_IGNORE(shutdown(r->to, SHUT_WR));
    return 0;
}

typedef struct relayed {
    int cfd;                /* the client's end */
    int ends[2];            /* the relay's ends: to the client, the server */
    server sv;
    relay up, down;         /* client -> server, server -> client */
    tl_task tasks[3];       /* server, up, down */
} relayed;

static void relayed_start(relayed *x)
{
    int a[2], b[2];
    cr_assert_eq(tl_socketpair(SOCK_STREAM, a), 0);
    cr_assert_eq(tl_socketpair(SOCK_STREAM, b), 0);
    x->cfd = a[0];
    x->ends[0] = a[1];
    x->ends[1] = b[0];
    x->sv = (server){.ctx = server_ctx(g_crt, g_key, NULL), .fd = b[1]};
    x->up = (relay){.from = a[1], .to = b[0]};
    x->down = (relay){.from = b[0], .to = a[1]};
    tl_event_init(&x->down.partial);
    tl_event_init(&x->down.release);
    tl_event_init(&x->up.partial);
    tl_event_init(&x->up.release);
    cr_assert_eq(tl_spawn(&x->tasks[0], server_task, &x->sv), 0);
    cr_assert_eq(tl_spawn(&x->tasks[1], relay_task, &x->up), 0);
    cr_assert_eq(tl_spawn(&x->tasks[2], relay_task, &x->down), 0);
}

/* Once the client's end is closed: everything ends by itself. */
static void relayed_finish(relayed *x)
{
    for (int i = 0; i < 3; i++) cr_expect_eq(tl_join(x->tasks[i], NULL), 0);
    cr_expect_eq(tl_close(x->ends[0]), 0);
    cr_expect_eq(tl_close(x->ends[1]), 0);
    tl_event_destroy(&x->down.partial);
    tl_event_destroy(&x->down.release);
    tl_event_destroy(&x->up.partial);
    tl_event_destroy(&x->up.release);
    tl_tls_ctx_free(x->sv.ctx);
}

static int main_cancel_mid_record(void *arg)
{
    (void)arg;
    relayed x;
    relayed_start(&x);
    tl_tls_ctx *cc = client_ctx(g_ca, NULL);
    tl_stream *s = NULL;
    int rc = tl_tls_connect(&s, cc, x.cfd, "localhost", NULL);
    cr_assert_eq(rc, 0, "connect: %s", why(rc));
    char b[64];
    /* One round trip first: the server's tickets are read and gone. */
    cr_expect_eq(tl_stream_write(s, "ping\n", 5), 0);
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 5);
    /* The echo of the next line arrives in two parts: the read is
     * cancelled while OpenSSL holds the first. */
    x.down.hold = 1;
    cr_expect_eq(tl_stream_write(s, "hello world\n", 12), 0);
    cr_expect_eq(tl_stream_drain(s), 0);
    cr_assert_eq(tl_event_wait(&x.down.partial), 0);
    ssize_t n = 1;
    TL_WITH_TIMEOUT(0.2, &rc) {
        n = tl_stream_readline(s, b, sizeof b);
        rc = n < 0 ? (int)n : 0;
    }
    cr_expect_eq(rc, -ETIMEDOUT, "read: %zd %s", n, tl_strerror(rc));
    tl_event_set(&x.down.release);
    n = tl_stream_readline(s, b, sizeof b);
    cr_expect_eq(n, 12, "read after the cancel: %zd %s", n, why((int)n));
    if (n == 12) cr_expect(memcmp(b, "hello world\n", 12) == 0);
    /* And the stream goes on. */
    cr_expect_eq(tl_stream_write(s, "again\n", 6), 0);
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 6);
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    relayed_finish(&x);
    cr_expect_eq(x.sv.bytes, 5u + 12u + 6u);
    tl_tls_ctx_free(cc);
    return 0;
}

TINY_TEST(cancel_mid_record_loses_nothing)
{
    run_checked(main_cancel_mid_record, NULL);
}

static int main_cancel_mid_handshake(void *arg)
{
    (void)arg;
    relayed x;
    relayed_start(&x);
    x.down.hold = 1; /* the server's first flight: 5 bytes of it */
    tl_tls_ctx *cc = client_ctx(g_ca, NULL);
    tl_stream *s = NULL;
    int rc = 1;
    TL_WITH_TIMEOUT(0.3, &rc) { rc = tl_tls_connect(&s, cc, x.cfd, "localhost", NULL); }
    cr_expect_eq(rc, -ETIMEDOUT, "connect: %d %s", rc, tl_strerror(rc));
    cr_expect_null(s);
    cr_expect(tl_event_is_set(&x.down.partial));
    /* The fd is still the caller's: closing it ends the server's
     * handshake with an error. */
    cr_expect_eq(tl_close(x.cfd), 0);
    tl_event_set(&x.down.release);
    relayed_finish(&x);
    cr_expect_lt(x.sv.rc, 0);
    tl_tls_ctx_free(cc);
    return 0;
}

TINY_TEST(cancel_mid_handshake_leaks_nothing)
{
    run_checked(main_cancel_mid_handshake, NULL);
}

/* ---- client certificates (mutual TLS) --------------------------------- */

typedef struct mtls {
    const char *crt, *key; /* the client's certificate (NULL: none) */
    int optional;          /* the server's client_cert_optional */
    int conns;             /* connections to make, one after the other */
    int want;              /* 0, or -EKEYREJECTED on both sides */
    const char *want_subject; /* what the server sees ("": none) */
} mtls;

static int main_mtls(void *arg)
{
    mtls *m = arg;
    tl_tls_server_opts so = {.client_ca_file = g_ca,
                             .client_cert_optional = m->optional};
    tl_tls_ctx *sc = NULL;
    int rc = tl_tls_server_ctx(&sc, g_crt, g_key, &so);
    cr_assert_eq(rc, 0, "server ctx: %s", why(rc));
    tl_tls_client_opts co = {.ca_file = g_ca, .cert_file = m->crt,
                             .key_file = m->key};
    tl_tls_ctx *cc = NULL;
    rc = tl_tls_client_ctx(&cc, &co);
    cr_assert_eq(rc, 0, "client ctx: %s", why(rc));
    for (int i = 0; i < m->conns; i++) {
        int sp[2];
        cr_assert_eq(tl_socketpair(SOCK_STREAM, sp), 0);
        server sv = {.ctx = sc, .fd = sp[1]};
        tl_task t;
        cr_assert_eq(tl_spawn(&t, server_task, &sv), 0);
        tl_stream *s = NULL;
        rc = tl_tls_connect(&s, cc, sp[0], "localhost", NULL);
        /* TLS 1.3: the client's side of the handshake ends before the
         * server has judged its certificate; the verdict comes with the
         * next read. */
        ssize_t n = 0;
        char b[8];
        if (rc == 0) {
            cr_expect_eq(tl_stream_write(s, "x\n", 2), 0);
            n = tl_stream_readline(s, b, sizeof b);
            if (n < 0) rc = (int)n;
            TL_IGNORE(tl_stream_wait_closed(s));
        } else {
            TL_IGNORE(tl_close(sp[0]));
        }
        cr_expect_eq(tl_join(t, NULL), 0);
        fprintf(stderr, "  conn %d: client %d %s | server %d %s | subject \"%s\"\n",
                i, rc, why(rc), sv.rc, sv.why, sv.subject);
        cr_expect_eq(rc, m->want, "client: %d %s", rc, why(rc));
        cr_expect_eq(sv.rc, m->want, "server: %d %s", sv.rc, sv.why);
        if (m->want < 0) {
            /* OpenSSL's reason on both sides: the client has the alert,
             * the server what it found. */
            cr_expect(strstr(why(rc), "alert") != NULL);
            cr_expect(strstr(sv.why, m->crt ? "certificate verify failed"
                                            : "did not return a certificate") != NULL);
        } else {
            cr_expect_eq(n, 2);
            cr_expect_str_eq(sv.subject, m->want_subject);
            if (i > 0) cr_expect_eq(sv.resumed, 1); /* and still named */
        }
    }
    tl_tls_ctx_free(cc);
    tl_tls_ctx_free(sc);
    return 0;
}

/* One mutual-TLS case: main_mtls over these values, no fd left behind. */
static void mtls_case(const char *crt, const char *key, int optional,
                      int conns, int want, const char *want_subject)
{
    mtls m = {crt, key, optional, conns, want, want_subject};
    run_checked(main_mtls, &m);
}

TINY_TEST(client_certificate_accepted_and_named)
{
    mtls_case(g_alice_crt, g_alice_key, 0, 2, 0, "CN=alice,O=tulip");
}

TINY_TEST(missing_client_certificate_refused)
{
    mtls_case(NULL, NULL, 0, 1, -EKEYREJECTED, "");
}

TINY_TEST(client_certificate_from_another_ca_refused)
{
    mtls_case(g_mallory_crt, g_mallory_key, 0, 1, -EKEYREJECTED, "");
}

TINY_TEST(optional_client_certificate_lets_none_in)
{
    mtls_case(NULL, NULL, 1, 1, 0, "");
}

TINY_TEST(optional_client_certificate_still_verified)
{
    mtls_case(g_mallory_crt, g_mallory_key, 1, 1, -EKEYREJECTED, "");
}

/* The client sees the server's subject; an insecure client sees none. */
static int main_server_subject(void *arg)
{
    int insecure = *(int *)arg;
    int sp[2];
    cr_assert_eq(tl_socketpair(SOCK_STREAM, sp), 0);
    server sv = {.ctx = server_ctx(g_crt, g_key, NULL), .fd = sp[1]};
    tl_task t;
    cr_assert_eq(tl_spawn(&t, server_task, &sv), 0);
    tl_tls_ctx *cc = NULL;
    tl_tls_client_opts o = {.ca_file = g_ca, .insecure = insecure};
    cr_assert_eq(tl_tls_client_ctx(&cc, &o), 0);
    tl_stream *s = NULL;
    int rc = tl_tls_connect(&s, cc, sp[0], "localhost", NULL);
    cr_assert_eq(rc, 0, "connect: %s", why(rc));
    if (insecure) {
        cr_expect_null(tl_tls_peer_subject(s));
    } else {
        cr_expect_not_null(tl_tls_peer_subject(s));
        if (tl_tls_peer_subject(s))
            cr_expect_str_eq(tl_tls_peer_subject(s), "CN=localhost");
    }
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_join(t, NULL), 0);
    cr_expect_str_eq(sv.subject, ""); /* no client certificate asked for */
    cr_expect_null(tl_tls_peer_subject(NULL));
    tl_tls_ctx_free(cc);
    tl_tls_ctx_free(sv.ctx);
    return 0;
}

TINY_TEST(client_sees_server_subject)
{
    int insecure = 0;
    run_checked(main_server_subject, &insecure);
    insecure = 1;
    run_checked(main_server_subject, &insecure);
}

/* ---- a silent peer; truncation; bad input ----------------------------- */

static int main_silent(void *arg)
{
    (void)arg;
    int sp[2];
    cr_assert_eq(tl_socketpair(SOCK_STREAM, sp), 0);
    tl_tls_ctx *cc = client_ctx(g_ca, NULL);
    tl_stream *s = NULL;
    int rc = 1;
    double t0 = tl_now();
    TL_WITH_TIMEOUT(0.2, &rc) { rc = tl_tls_connect(&s, cc, sp[0], "localhost", NULL); }
    cr_expect_eq(rc, -ETIMEDOUT, "connect: %d %s", rc, tl_strerror(rc));
    cr_expect_null(s);
    cr_expect_lt(tl_now() - t0, 10.0);
    /* The fd is still the caller's. */
    cr_expect_eq(tl_close(sp[0]), 0);
    cr_expect_eq(tl_close(sp[1]), 0);
    tl_tls_ctx_free(cc);
    return 0;
}

TINY_TEST(handshake_timeout_against_silent_peer)
{
    run_checked(main_silent, NULL);
}

typedef struct trunc {
    tl_tls_ctx *ctx;
    int fd;
} trunc_arg;

/* Handshake, send one line, then close the socket without close_notify. */
static int truncating_server(void *arg)
{
    trunc_arg *a = arg;
    tl_stream *s = NULL;
    int rc = tl_tls_accept(&s, a->ctx, a->fd,
                           &(tl_stream_opts){.flags = TL_STREAM_BORROW});
    cr_assert_eq(rc, 0, "accept: %s", tl_strerror(rc));
    cr_expect_eq(tl_stream_write(s, "last\n", 5), 0);
    cr_expect_eq(tl_stream_drain(s), 0);
    /* Hang up under the stream: no close_notify goes out. */
    cr_expect_eq(shutdown(a->fd, SHUT_RDWR), 0);
    char b[8];
    TL_IGNORE(tl_stream_read(s, b, sizeof b));
    cr_expect_eq(tl_stream_wait_closed(s), 0);
    cr_expect_eq(tl_close(a->fd), 0);
    return 0;
}

static int main_truncated(void *arg)
{
    (void)arg;
    int sp[2];
    cr_assert_eq(tl_socketpair(SOCK_STREAM, sp), 0);
    trunc_arg a = {server_ctx(g_crt, g_key, NULL), sp[1]};
    tl_task t;
    cr_assert_eq(tl_spawn(&t, truncating_server, &a), 0);
    tl_tls_ctx *cc = client_ctx(g_ca, NULL);
    tl_stream *s = NULL;
    int rc = tl_tls_connect(&s, cc, sp[0], "localhost", NULL);
    cr_assert_eq(rc, 0, "connect: %s", tl_strerror(rc));
    char b[64];
    cr_expect_eq(tl_stream_readline(s, b, sizeof b), 5);
    ssize_t n = tl_stream_readline(s, b, sizeof b);
    fprintf(stderr, "  truncated read: %zd %s\n", n, why((int)n));
    cr_expect_eq(n, -ECONNABORTED, "read: %zd %s", n, tl_strerror((int)n));
    cr_expect_not_null(tl_fail_message((int)n));
    TL_IGNORE(tl_stream_wait_closed(s));
    cr_expect_eq(tl_join(t, NULL), 0);
    tl_tls_ctx_free(cc);
    tl_tls_ctx_free(a.ctx);
    return 0;
}

TINY_TEST(close_without_close_notify_is_truncation)
{
    run_checked(main_truncated, NULL);
}

static int main_bad_input(void *arg)
{
    (void)arg;
    tl_tls_ctx *c = NULL;
    int rc = tl_tls_server_ctx(&c, "/nonexistent/x.crt", g_key, NULL);
    cr_expect_eq(rc, -ENOENT);
    cr_expect_not_null(tl_fail_message(rc));
    cr_expect_eq(tl_tls_server_ctx(&c, g_key, g_key, NULL), -EPROTO);
    cr_expect_eq(tl_tls_server_ctx(&c, g_crt, g_self_key, NULL), -EPROTO);
    cr_expect_eq(tl_tls_server_ctx(NULL, g_crt, g_key, NULL), -EINVAL);
    tl_tls_client_opts o = {.alpn = "h2,,x"};
    cr_expect_eq(tl_tls_client_ctx(&c, &o), -EINVAL);
    o = (tl_tls_client_opts){.ca_file = "/nonexistent/ca.crt"};
    cr_expect_eq(tl_tls_client_ctx(&c, &o), -ENOENT);
    /* Client certificates: both files or neither; files that exist and
     * match. */
    o = (tl_tls_client_opts){.cert_file = g_alice_crt};
    cr_expect_eq(tl_tls_client_ctx(&c, &o), -EINVAL);
    cr_expect_not_null(tl_fail_message(-EINVAL));
    o = (tl_tls_client_opts){.key_file = g_alice_key};
    cr_expect_eq(tl_tls_client_ctx(&c, &o), -EINVAL);
    o = (tl_tls_client_opts){.cert_file = "/nonexistent/c.crt",
                             .key_file = g_alice_key};
    cr_expect_eq(tl_tls_client_ctx(&c, &o), -ENOENT);
    o = (tl_tls_client_opts){.cert_file = g_alice_crt, .key_file = g_mallory_key};
    rc = tl_tls_client_ctx(&c, &o);
    cr_expect_eq(rc, -EPROTO);
    cr_expect_not_null(tl_fail_message(rc));
    o = (tl_tls_client_opts){.cert_file = g_alice_key, .key_file = g_alice_key};
    cr_expect_eq(tl_tls_client_ctx(&c, &o), -EPROTO);
    tl_tls_server_opts so = {.client_ca_file = "/nonexistent/ca.crt"};
    cr_expect_eq(tl_tls_server_ctx(&c, g_crt, g_key, &so), -ENOENT);
    so = (tl_tls_server_opts){.client_ca_file = g_key}; /* no certificate */
    rc = tl_tls_server_ctx(&c, g_crt, g_key, &so);
    cr_expect_eq(rc, -EPROTO);
    cr_expect_not_null(tl_fail_message(rc));
    tl_tls_ctx *cc = client_ctx(g_ca, NULL);
    tl_stream *s;
    cr_expect_eq(tl_tls_accept(&s, cc, 0, NULL), -EINVAL); /* client ctx */
    cr_expect_eq(tl_tls_connect(&s, cc, -1, "x", NULL), -EINVAL);
    cr_expect_null(tl_tls_alpn(NULL));
    cr_expect_null(tl_tls_server_name(NULL));
    tl_tls_ctx_free(cc);
    tl_tls_ctx_free(NULL);
    return 0;
}

TINY_TEST(bad_input)
{
    run_checked(main_bad_input, NULL);
}

int main(int argc, char **argv)
{
    /* SIGPIPE left at its default: a TLS stream must never raise it. */
    make_certs();
    if (!getenv("TINY_TIMEOUT"))
        setenv("TINY_TIMEOUT", TULIP_TEST_SANITIZED ? "60" : "30", 1);
    int rc = tiny_main("test_tls", argc, argv);
    remove_certs();
    return rc;
}
