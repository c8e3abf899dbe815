/* libtulip-tls (include/tulip/tls.h): TLS streams over OpenSSL 3.
 *
 * A TLS stream is a tl_stream over a transport (tl_stream_open_transport)
 * whose state is one SSL object on the fd's own socket BIO, non-blocking:
 * every SSL call either completes or says WANT_READ / WANT_WRITE, and the
 * task waits with tl_fd_wait (a cancellation point) and calls again. The
 * handshake runs that loop before the stream exists; afterwards the
 * stream's read calls SSL_read the same way, and its write calls SSL_write
 * once (never suspending: WANT_* is -EAGAIN, and the stream's writable
 * watcher calls again). SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER because the
 * stream's queue may move between retries; partial writes because the
 * stream counts what was taken. Renegotiation is refused, so a write
 * never has to read.
 *
 * OpenSSL's error queue is per thread and tasks of one loop share the
 * thread: every call clears it first and drains it after (into the
 * tl_fail message of the task that made the call), so nothing is left for
 * another task to misread.
 *
 * Session resumption. A client context keeps, per peer (the host name it
 * was asked for and the peer's address and port), the last session the
 * server gave it (SSL_CTX_sess_set_new_cb: in TLS 1.3 the tickets come
 * after the handshake, while the stream reads) and offers it on the next
 * handshake to that peer. A TLS 1.3 ticket is used once (RFC 8446 C.4:
 * reuse would let an observer link the connections): it leaves the cache
 * when offered, and the resumed connection brings new ones. A TLS 1.2
 * session stays until replaced. A failed handshake drops the peer's entry.
 * The cache is bounded (SESS_MAX peers, the oldest evicted) and shared by
 * the loops that use the context (a mutex). Connections hold a reference
 * on their context, so a ticket arriving after tl_tls_ctx_free still has
 * a cache to go to. A server context issues tickets (OpenSSL's stateless
 * TLS 1.3 tickets, two per full handshake) and keeps TLS 1.2 sessions in
 * OpenSSL's own server cache.
 *
 * Client certificates. A server context with a client CA file asks for a
 * certificate (SSL_VERIFY_PEER, and FAIL_IF_NO_PEER_CERT unless optional),
 * names the CAs in its request and verifies against that file alone. A
 * client context with a certificate and key presents them when asked.
 * Refusals are -EKEYREJECTED on both sides: the judge's own verification
 * result or "no certificate", and on the other side the alert it sent
 * (cert_refusal). TLS 1.3 moves the client's certificate after the
 * server's Finished, so the client's SSL_connect returns before the
 * verdict and the alert reaches it at its next SSL_read or SSL_write:
 * same code, one call later. The verified peer's subject is kept with
 * the connection (tl_tls_peer_subject); a resumed session carries it. */
#include <tulip.h>
#include <tulip/tls.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Peers whose session a client context remembers. */
#define SESS_MAX 64
/* "host|address|port" */
#define KEY_MAX 320

typedef struct sess_entry {
    char key[KEY_MAX];
    SSL_SESSION *sess;   /* owned; NULL: free slot */
    unsigned long stamp; /* when stored: the smallest is evicted first */
} sess_entry;

struct tl_tls_ctx {
    SSL_CTX *ssl;
    int server;
    int insecure;
    int no_resume;
    unsigned char *alpn; /* wire format (length-prefixed names) */
    unsigned alpn_len;
    atomic_int refs;     /* the owner's, and one per connection */
    pthread_mutex_t mu;  /* guards sessions and clock */
    sess_entry *sessions; /* SESS_MAX of them (client, unless no_resume) */
    unsigned long clock;
};

typedef struct tls_conn {
    SSL *ssl;
    tl_tls_ctx *ctx;     /* a reference */
    char key[KEY_MAX];   /* the session cache's key; "" none */
    char alpn[256];
    char *subject;       /* the verified peer's subject (heap), or NULL */
    char sni[256];       /* the SNI host name sent or received; "" none */
    int eof_sent;
} tls_conn;

static int on_new_session(SSL *ssl, SSL_SESSION *sess);

/* Drain OpenSSL's queue into one line; returns the buffer. */
static const char *drain_errors(char *buf, size_t cap)
{
    buf[0] = 0;
    size_t n = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        if (n + 2 < cap) {
            if (n) {
                buf[n++] = ';';
                buf[n++] = ' ';
                buf[n] = 0;
            }
            ERR_error_string_n(e, buf + n, cap - n);
            n = strlen(buf);
        }
    }
    return buf;
}

/* Fail with code, the message "what: <OpenSSL's queue or why>". Drains
 * the queue. */
static int fail_ssl(int code, const char *what, const char *why)
{
    char q[512];
    drain_errors(q, sizeof q);
    return tl_fail(code, "tls: %s: %s", what, q[0] ? q : (why ? why : "failed"));
}

/* OpenSSL's socket BIO writes with plain send/write, which raises SIGPIPE
 * on a peer that is gone; tulip's streams never do. Every SSL call that
 * may write runs with SIGPIPE blocked in the thread, and the one it
 * raised is consumed (unless one was pending before: somebody else's). */
typedef struct pipe_guard {
    sigset_t old;
    int was_pending;
} pipe_guard;

static void guard_on(pipe_guard *g)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
    g->was_pending = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE);
}

static void guard_off(pipe_guard *g)
{
    int e = errno;
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    if (!g->was_pending && !sigismember(&g->old, SIGPIPE) &&
        sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
    errno = e;
}

/* ---- contexts --------------------------------------------------------- */

/* "h2,http/1.1" -> wire format. */
static int parse_alpn(tl_tls_ctx *c, const char *list)
{
    if (!list) return 0;
    size_t len = strlen(list);
    if (len == 0 || len > 1024) return -EINVAL;
    unsigned char *w = malloc(len + 1);
    if (!w) return -ENOMEM;
    size_t o = 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t k = comma ? (size_t)(comma - p) : strlen(p);
        if (k == 0 || k > 255) {
            free(w);
            return -EINVAL;
        }
        w[o++] = (unsigned char)k;
        memcpy(w + o, p, k);
        o += k;
        p += k;
        if (*p == ',') {
            p++;
            if (!*p) {
                free(w);
                return -EINVAL;
            }
        }
    }
    c->alpn = w;
    c->alpn_len = (unsigned)o;
    return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    (void)ssl;
    tl_tls_ctx *c = arg;
    unsigned char *sel;
    /* The server's order of preference. */
    if (SSL_select_next_proto(&sel, outlen, c->alpn, c->alpn_len, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static tl_tls_ctx *ctx_new(int server)
{
    tl_tls_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->server = server;
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->mu, NULL);
    ERR_clear_error();
    c->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c->ssl) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return c;
}

static int file_check(const char *what, const char *path)
{
    if (access(path, R_OK) == 0) return 0;
    int e = -errno;
    return tl_fail(e, "tls: %s %s: %s", what, path, strerror(-e));
}

/* A certificate chain and its key into c's SSL_CTX; a tl_fail code. */
static int load_cert_key(tl_tls_ctx *c, const char *cert_file,
                         const char *key_file)
{
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cert_file) != 1)
        return fail_ssl(-EPROTO, cert_file, NULL);
    if (SSL_CTX_use_PrivateKey_file(c->ssl, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c->ssl) != 1)
        return fail_ssl(-EPROTO, key_file, NULL);
    return 0;
}

/* OpenSSL computes a certificate's extension data (key identifiers,
 * purposes) lazily, at its first use in a verification, and stores it in
 * the shared X509 object. A context is shared by loops in several
 * threads, and two first handshakes at once then write and read that
 * data together (ThreadSanitizer saw it with one CA certificate and two
 * loops). So it is computed here, while the context is still the
 * caller's alone: every certificate the context holds — its trust store
 * (a CA file; a hashed directory's certificates load later, under
 * OpenSSL's own lock) and its own chain. */
static void settle_certs(tl_tls_ctx *c)
{
    X509_STORE *st = SSL_CTX_get_cert_store(c->ssl);
    STACK_OF(X509_OBJECT) *objs = st ? X509_STORE_get0_objects(st) : NULL;
    for (int i = 0; objs && i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (x) (void)X509_check_purpose(x, -1, 0);
    }
    X509 *own = SSL_CTX_get0_certificate(c->ssl);
    if (own) (void)X509_check_purpose(own, -1, 0);
    STACK_OF(X509) *chain = NULL;
    if (SSL_CTX_get0_chain_certs(c->ssl, &chain) == 1)
        for (int i = 0; chain && i < sk_X509_num(chain); i++)
            (void)X509_check_purpose(sk_X509_value(chain, i), -1, 0);
    ERR_clear_error();
}

int tl_tls_client_ctx(tl_tls_ctx **out, const tl_tls_client_opts *opts)
{
    if (!out) return -EINVAL;
    tl_tls_client_opts o = {0};
    if (opts) o = *opts;
    if (o.ca_file) {
        int rc = file_check("CA file", o.ca_file);
        if (rc < 0) return rc;
    }
    if (!o.cert_file != !o.key_file)
        return tl_fail(-EINVAL, "tls: a client certificate needs both "
                                "cert_file and key_file");
    if (o.cert_file) {
        int rc = file_check("certificate", o.cert_file);
        if (rc < 0) return rc;
        rc = file_check("key", o.key_file);
        if (rc < 0) return rc;
    }
    tl_tls_ctx *c = ctx_new(0);
    if (!c) return fail_ssl(-ENOMEM, "SSL_CTX_new", NULL);
    c->insecure = o.insecure != 0;
    c->no_resume = o.no_resume != 0;
    if (!c->no_resume) {
        c->sessions = calloc(SESS_MAX, sizeof *c->sessions);
        if (!c->sessions) {
            tl_tls_ctx_free(c);
            return tl_fail(-ENOMEM, "tls: session cache");
        }
        /* Sessions go to on_new_session only, never OpenSSL's own
         * (internal) client cache, which nothing would look up. */
        SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_CLIENT |
                                                   SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c->ssl, on_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_OFF);
    }
    int rc = parse_alpn(c, o.alpn);
    if (rc < 0) {
        tl_tls_ctx_free(c);
        return tl_fail(rc, "tls: bad ALPN list \"%s\"", o.alpn);
    }
    if (c->alpn && SSL_CTX_set_alpn_protos(c->ssl, c->alpn, c->alpn_len) != 0) {
        tl_tls_ctx_free(c);
        return fail_ssl(-ENOMEM, "SSL_CTX_set_alpn_protos", NULL);
    }
    if (!c->insecure) {
        SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
        ERR_clear_error();
        int ok = o.ca_file
                     ? SSL_CTX_load_verify_locations(c->ssl, o.ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(c->ssl);
        if (ok != 1) {
            tl_tls_ctx_free(c);
            return fail_ssl(-EPROTO, o.ca_file ? o.ca_file : "system CA store",
                            NULL);
        }
    }
    if (o.cert_file) {
        rc = load_cert_key(c, o.cert_file, o.key_file);
        if (rc < 0) {
            tl_tls_ctx_free(c);
            return rc;
        }
    }
    settle_certs(c);
    *out = c;
    return 0;
}

int tl_tls_server_ctx(tl_tls_ctx **out, const char *cert_file,
                      const char *key_file, const tl_tls_server_opts *opts)
{
    if (!out || !cert_file || !key_file) return -EINVAL;
    int rc = file_check("certificate", cert_file);
    if (rc < 0) return rc;
    rc = file_check("key", key_file);
    if (rc < 0) return rc;
    const char *client_ca = opts ? opts->client_ca_file : NULL;
    if (client_ca) {
        rc = file_check("client CA file", client_ca);
        if (rc < 0) return rc;
    }
    tl_tls_ctx *c = ctx_new(1);
    if (!c) return fail_ssl(-ENOMEM, "SSL_CTX_new", NULL);
    rc = parse_alpn(c, opts ? opts->alpn : NULL);
    if (rc < 0) {
        tl_tls_ctx_free(c);
        return tl_fail(rc, "tls: bad ALPN list \"%s\"", opts->alpn);
    }
    if (c->alpn) SSL_CTX_set_alpn_select_cb(c->ssl, alpn_select, c);
    /* Resumption: TLS 1.3 tickets (stateless, two per full handshake) and
     * TLS 1.2 sessions in OpenSSL's server cache, under one id context. */
    SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_num_tickets(c->ssl, 2);
    ERR_clear_error();
    if (SSL_CTX_set_session_id_context(c->ssl, (const unsigned char *)"tulip-tls",
                                       9) != 1) {
        tl_tls_ctx_free(c);
        return fail_ssl(-ENOMEM, "session id context", NULL);
    }
    rc = load_cert_key(c, cert_file, key_file);
    if (rc < 0) {
        tl_tls_ctx_free(c);
        return rc;
    }
    if (client_ca) {
        /* Trust these CAs (and only these: no system store) for client
         * certificates, and name them in the certificate request so a
         * client with several can pick. */
        ERR_clear_error();
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
        if (!names || SSL_CTX_load_verify_locations(c->ssl, client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            tl_tls_ctx_free(c);
            return fail_ssl(-EPROTO, client_ca, "no certificate in it");
        }
        SSL_CTX_set_client_CA_list(c->ssl, names);
        SSL_CTX_set_verify(c->ssl,
                           SSL_VERIFY_PEER |
                               (opts->client_cert_optional
                                    ? 0
                                    : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
                           NULL);
    }
    settle_certs(c);
    *out = c;
    return 0;
}

static void ctx_unref(tl_tls_ctx *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (c->sessions)
        for (int i = 0; i < SESS_MAX; i++) SSL_SESSION_free(c->sessions[i].sess);
    free(c->sessions);
    SSL_CTX_free(c->ssl);
    pthread_mutex_destroy(&c->mu);
    free(c->alpn);
    free(c);
}

void tl_tls_ctx_free(tl_tls_ctx *c)
{
    if (c) ctx_unref(c);
}

/* ---- the client's session cache ---------------------------------------- */

static sess_entry *sess_find(tl_tls_ctx *c, const char *key)
{
    for (int i = 0; i < SESS_MAX; i++)
        if (c->sessions[i].sess && strcmp(c->sessions[i].key, key) == 0)
            return &c->sessions[i];
    return NULL;
}

/* A new session (or TLS 1.3 ticket) for ssl's peer: remember it. Runs
 * inside SSL_connect or SSL_read. Returns 1: the reference is ours. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    tls_conn *conn = SSL_get_app_data(ssl);
    if (!conn || !conn->key[0] || !SSL_SESSION_is_resumable(sess)) return 0;
    tl_tls_ctx *c = conn->ctx;
    pthread_mutex_lock(&c->mu);
    sess_entry *e = sess_find(c, conn->key);
    for (int i = 0; !e && i < SESS_MAX; i++)
        if (!c->sessions[i].sess) e = &c->sessions[i];
    if (!e) { /* full: evict the oldest */
        e = &c->sessions[0];
        for (int i = 1; i < SESS_MAX; i++)
            if (c->sessions[i].stamp < e->stamp) e = &c->sessions[i];
    }
    SSL_SESSION *old = e->sess;
    snprintf(e->key, sizeof e->key, "%s", conn->key);
    e->sess = sess;
    e->stamp = ++c->clock;
    pthread_mutex_unlock(&c->mu);
    SSL_SESSION_free(old);
    return 1;
}

/* The session to offer to key's peer (a reference), or NULL. */
static SSL_SESSION *sess_take(tl_tls_ctx *c, const char *key)
{
    pthread_mutex_lock(&c->mu);
    sess_entry *e = sess_find(c, key);
    SSL_SESSION *s = NULL;
    if (e) {
        s = e->sess;
        if (SSL_SESSION_get_protocol_version(s) >= TLS1_3_VERSION)
            e->sess = NULL; /* a ticket is used once */
        else
            SSL_SESSION_up_ref(s);
    }
    pthread_mutex_unlock(&c->mu);
    return s;
}

static void sess_drop(tl_tls_ctx *c, const char *key)
{
    pthread_mutex_lock(&c->mu);
    sess_entry *e = sess_find(c, key);
    SSL_SESSION *s = NULL;
    if (e) {
        s = e->sess;
        e->sess = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    SSL_SESSION_free(s);
}

/* "host|address|port" of fd's peer into key; "" when the peer has no
 * address worth naming (then nothing is cached). */
static void sess_key(char *key, size_t cap, int fd, const char *host)
{
    key[0] = 0;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) return;
    char addr[NI_MAXHOST] = "", port[NI_MAXSERV] = "";
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
        if (getnameinfo((struct sockaddr *)&ss, len, addr, sizeof addr, port,
                        sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
            return;
    } else if (ss.ss_family == AF_UNIX) {
        /* A socketpair or an unnamed peer: the host name alone says who. */
        snprintf(addr, sizeof addr, "unix");
    } else {
        return;
    }
    int w = snprintf(key, cap, "%s|%s|%s", host ? host : "", addr, port);
    if (w < 0 || (size_t)w >= cap) key[0] = 0;
}

/* ---- the transport ---------------------------------------------------- */

/* Whether OpenSSL error e says a certificate was refused: a client that
 * sent none to a server requiring one (the server's side), or the alert a
 * peer sends when it refuses ours (the other side's). */
static int cert_refusal(unsigned long e)
{
    if (!e || ERR_GET_LIB(e) != ERR_LIB_SSL) return 0;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        return 1;
    default:
        return 0;
    }
}

/* After an SSL call returned r <= 0: what to do. Returns TL_READABLE or
 * TL_WRITABLE to wait for, 0 for a clean end (close_notify), or a
 * negative code (with a tl_fail message; the queue drained). */
static int ssl_status(SSL *ssl, int r, const char *what)
{
    int e = SSL_get_error(ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return TL_READABLE;
    case SSL_ERROR_WANT_WRITE:
        return TL_WRITABLE;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL: {
        int se = errno;
        char q[256];
        drain_errors(q, sizeof q);
        if (se == 0 || se == EAGAIN) se = ECONNABORTED;
        return tl_fail(-se, "tls: %s: %s", what, strerror(se));
    }
    case SSL_ERROR_SSL: {
        unsigned long top = ERR_peek_error();
        if (ERR_GET_REASON(top) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return fail_ssl(-ECONNABORTED, what,
                            "the peer closed without close_notify");
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK) {
            char q[256];
            drain_errors(q, sizeof q);
            return tl_fail(-EKEYREJECTED, "tls: %s: certificate verify failed: %s",
                           what, X509_verify_cert_error_string(v));
        }
        if (cert_refusal(top) || cert_refusal(ERR_peek_last_error()))
            return fail_ssl(-EKEYREJECTED, what, NULL);
        return fail_ssl(-EPROTO, what, NULL);
    }
    default:
        return fail_ssl(-EPROTO, what, NULL);
    }
}

static ssize_t tls_read(void *ctx, int fd, void *buf, size_t len)
{
    tls_conn *c = ctx;
    for (;;) {
        size_t got = 0;
        pipe_guard g;
        guard_on(&g);
        ERR_clear_error();
        int r = SSL_read_ex(c->ssl, buf, len, &got);
        guard_off(&g);
        if (r == 1) {
            ERR_clear_error();
            return (ssize_t)got;
        }
        int st = ssl_status(c->ssl, r, "read");
        if (st <= 0) return st;
        /* c may be released while waiting (the stream closed): a failed
         * wait returns without touching it. */
        int rc = tl_fd_wait(fd, (unsigned)st);
        if (rc < 0) return rc;
    }
}

static ssize_t tls_write(void *ctx, int fd, const void *buf, size_t len)
{
    (void)fd;
    tls_conn *c = ctx;
    if (len > INT32_MAX) len = INT32_MAX;
    size_t put = 0;
    pipe_guard g;
    guard_on(&g);
    ERR_clear_error();
    int r = SSL_write_ex(c->ssl, buf, len, &put);
    guard_off(&g);
    if (r == 1) {
        ERR_clear_error();
        return (ssize_t)put;
    }
    int st = ssl_status(c->ssl, r, "write");
    if (st > 0) return -EAGAIN;
    return st == 0 ? -EPIPE : st;
}

/* close_notify, once, best effort: never waits. */
static void send_close_notify(tls_conn *c)
{
    if (c->eof_sent) return;
    c->eof_sent = 1;
    pipe_guard g;
    guard_on(&g);
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
    guard_off(&g);
}

static int tls_shutdown(void *ctx, int fd)
{
    (void)fd;
    send_close_notify(ctx);
    return 0;
}

static void tls_close(void *ctx, int fd)
{
    (void)fd;
    tls_conn *c = ctx;
    send_close_notify(c);
    SSL_free(c->ssl);
    ctx_unref(c->ctx);
    free(c->subject);
    free(c);
}

static const tl_stream_transport tls_transport = {
    .read = tls_read,
    .write = tls_write,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

/* ---- handshakes ------------------------------------------------------- */

/* After a handshake: keep the verified peer's subject (RFC 2253) in c. */
static int keep_subject(tls_conn *c)
{
    if (c->ctx->insecure) return 0;
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    if (!peer || SSL_get_verify_result(c->ssl) != X509_V_OK) return 0;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) return fail_ssl(-ENOMEM, "peer subject", NULL);
    int rc = 0;
    if (X509_NAME_print_ex(b, X509_get_subject_name(peer), 0,
                           XN_FLAG_RFC2253) < 0) {
        rc = fail_ssl(-ENOMEM, "peer subject", NULL);
    } else {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        c->subject = malloc((size_t)n + 1);
        if (!c->subject) {
            rc = tl_fail(-ENOMEM, "tls: peer subject");
        } else {
            memcpy(c->subject, data, (size_t)n);
            c->subject[n] = 0;
        }
    }
    BIO_free(b);
    ERR_clear_error();
    return rc;
}

static int handshake(tl_stream **out, tl_tls_ctx *ctx, int fd,
                     const char *host, const tl_stream_opts *opts, int server)
{
    if (!out || !ctx || fd < 0 || ctx->server != server) return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    tls_conn *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    ERR_clear_error();
    c->ssl = SSL_new(ctx->ssl);
    if (!c->ssl) {
        free(c);
        return fail_ssl(-ENOMEM, "SSL_new", NULL);
    }
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    c->ctx = ctx;
    SSL_set_app_data(c->ssl, c);
    int rc = 0;
    if (SSL_set_fd(c->ssl, fd) != 1) {
        rc = fail_ssl(-ENOMEM, "SSL_set_fd", NULL);
        goto fail;
    }
    if (!server && host) {
        /* SNI only for names, never for address literals (RFC 6066). */
        unsigned char ip[16];
        int is_ip = inet_pton(AF_INET, host, ip) == 1 ||
                    inet_pton(AF_INET6, host, ip) == 1;
        if (!is_ip && SSL_set_tlsext_host_name(c->ssl, host) != 1) {
            rc = fail_ssl(-EINVAL, "SNI", NULL);
            goto fail;
        }
        if (!ctx->insecure) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
            X509_VERIFY_PARAM_set_hostflags(vp,
                X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
                           : X509_VERIFY_PARAM_set1_host(vp, host, 0);
            if (ok != 1) {
                rc = fail_ssl(-EINVAL, "host name", NULL);
                goto fail;
            }
        }
    }
    if (!server && ctx->sessions) {
        sess_key(c->key, sizeof c->key, fd, host);
        SSL_SESSION *sess = c->key[0] ? sess_take(ctx, c->key) : NULL;
        if (sess) {
            /* A session the server no longer knows costs nothing: the
             * handshake is simply a full one. */
            (void)SSL_set_session(c->ssl, sess);
            SSL_SESSION_free(sess);
            ERR_clear_error();
        }
    }
    for (;;) {
        pipe_guard g;
        guard_on(&g);
        ERR_clear_error();
        int r = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
        guard_off(&g);
        if (r == 1) break;
        int st = ssl_status(c->ssl, r, "handshake");
        if (st == 0) st = tl_fail(-ECONNABORTED, "tls: handshake: the peer closed");
        if (st < 0) {
            rc = st;
            goto fail;
        }
        rc = tl_fd_wait(fd, (unsigned)st);
        if (rc < 0) goto fail;
    }
    ERR_clear_error();
    const unsigned char *p = NULL;
    unsigned plen = 0;
    SSL_get0_alpn_selected(c->ssl, &p, &plen);
    if (p && plen < sizeof c->alpn) {
        memcpy(c->alpn, p, plen);
        c->alpn[plen] = 0;
    }
    const char *sn = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
    if (sn && strlen(sn) < sizeof c->sni) strcpy(c->sni, sn);
    rc = keep_subject(c);
    if (rc < 0) goto fail;
    rc = tl_stream_open_transport(out, fd, &tls_transport, c, opts);
    if (rc < 0) goto fail;
    return 0;
fail:
    ERR_clear_error();
    /* A refused session, or a peer that changed: start afresh next time
     * (a cancel says nothing about the session, but costs one full
     * handshake at most). */
    if (c->key[0]) sess_drop(ctx, c->key);
    SSL_set_app_data(c->ssl, NULL);
    SSL_free(c->ssl);
    ctx_unref(ctx);
    free(c->subject);
    free(c);
    /* tl_fd_wait registered fd with the loop; the caller closes it. */
    return rc;
}

int tl_tls_connect(tl_stream **out, tl_tls_ctx *ctx, int fd, const char *host,
                   const tl_stream_opts *opts)
{
    return handshake(out, ctx, fd, host, opts, 0);
}

int tl_tls_accept(tl_stream **out, tl_tls_ctx *ctx, int fd,
                  const tl_stream_opts *opts)
{
    return handshake(out, ctx, fd, NULL, opts, 1);
}

const char *tl_tls_alpn(const tl_stream *s)
{
    tls_conn *c = tl_stream_transport_ctx(s, &tls_transport);
    return c && c->alpn[0] ? c->alpn : NULL;
}

int tl_tls_resumed(const tl_stream *s)
{
    tls_conn *c = tl_stream_transport_ctx(s, &tls_transport);
    return c ? SSL_session_reused(c->ssl) == 1 : 0;
}

const char *tl_tls_peer_subject(const tl_stream *s)
{
    tls_conn *c = tl_stream_transport_ctx(s, &tls_transport);
    return c ? c->subject : NULL;
}

const char *tl_tls_server_name(const tl_stream *s)
{
    tls_conn *c = tl_stream_transport_ctx(s, &tls_transport);
    return c && c->sni[0] ? c->sni : NULL;
}

const char *tl_tls_version(const tl_stream *s)
{
    tls_conn *c = tl_stream_transport_ctx(s, &tls_transport);
    return c ? SSL_get_version(c->ssl) : NULL;
}
