/* libtulip-tls (tulip/tls.h): a tulip TLS server and a tulip TLS client
 * in one loop, over loopback TCP or a socketpair, with a CA and
 * certificates the test makes with the openssl command: lines echoed
 * through tl_stream; an unknown CA and a wrong host name refused with
 * -EKEYREJECTED; ALPN agreed; a handshake against a silent peer ended by
 * a timeout scope with no fd leaked; a peer that closes without
 * close_notify reported as a truncation. Skipped (77) without openssl.
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

#include <dirent.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static char g_dir[64];
static char g_ca[128], g_crt[128], g_key[128], g_self_crt[128], g_self_key[128];

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;
}

static void run_checked(tl_fn fn, void *arg)
{
    int before = count_fds();
    int rc = tl_run(fn, arg);
    cr_expect_eq(rc, 0, "tl_run: %d (%s)", rc, tl_strerror(rc));
    cr_expect_eq(count_fds(), before, "fds before %d, after %d", before,
                 count_fds());
}

/* A CA, a server certificate it signs for localhost and 127.0.0.1, and a
 * self-signed certificate for localhost. Once per process. */
static void make_certs(void)
{
    if (g_dir[0]) return;
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skipped: openssl not installed\n");
        exit(77);
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/tulip-tls-XXXXXX");
    cr_assert(mkdtemp(g_dir));
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "(cd %s && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
             "-nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=tulip-test-ca "
             "-addext basicConstraints=critical,CA:TRUE "
             "-addext keyUsage=critical,keyCertSign,cRLSign && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout server.key -out server.csr -subj /CN=localhost && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
             "-CAcreateserial -out server.crt -days 2 -extfile ext.cnf && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
             "-nodes -keyout self.key -out self.crt -days 2 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost,IP:127.0.0.1"
             ") >/dev/null 2>&1",
             g_dir);
    cr_assert_eq(system(cmd), 0, "openssl failed");
    snprintf(g_ca, sizeof g_ca, "%s/ca.crt", g_dir);
    snprintf(g_crt, sizeof g_crt, "%s/server.crt", g_dir);
    snprintf(g_key, sizeof g_key, "%s/server.key", g_dir);
    snprintf(g_self_crt, sizeof g_self_crt, "%s/self.crt", g_dir);
    snprintf(g_self_key, sizeof g_self_key, "%s/self.key", g_dir);
}

static void remove_certs(void)
{
    if (!g_dir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    TL_IGNORE(system(cmd));
    g_dir[0] = 0;
}


/* ---- a server task ---------------------------------------------------- */

typedef struct server {
    tl_tls_ctx *ctx;
    int fd;          /* the accepted (or socketpair) fd */
    int rc;          /* the handshake's result */
    size_t bytes;    /* bytes echoed */
    char alpn[32];
} server;

/* Handshake, then echo what comes until the end of the stream. */
static int server_task(void *arg)
{
    server *sv = arg;
    tl_stream *s = NULL;
    sv->rc = tl_tls_accept(&s, sv->ctx, sv->fd, NULL);
    if (sv->rc < 0) {
        TL_IGNORE(tl_close(sv->fd));
        return 0;
    }
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
    tl_tls_ctx *cc = client_ctx(g_ca, NULL);
    tl_stream *s;
    cr_expect_eq(tl_tls_accept(&s, cc, 0, NULL), -EINVAL); /* client ctx */
    cr_expect_eq(tl_tls_connect(&s, cc, -1, "x", NULL), -EINVAL);
    cr_expect_null(tl_tls_alpn(NULL));
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
