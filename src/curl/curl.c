/* libtulip-curl: HTTP(S) over libcurl's multi-socket interface.
 *
 * One multi handle per client. libcurl says which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION: a persistent tulip fd watcher per socket,
 * whose callback runs curl_multi_socket_action at once, on the loop's
 * stack, so a ready socket costs no task switch) and when its timer is
 * due (CURLMOPT_TIMERFUNCTION: only records the deadline and wakes the
 * client's driver task, which runs curl_multi_socket_action with
 * CURL_SOCKET_TIMEOUT — curl is never called from inside its own
 * callbacks). Finished transfers are collected with curl_multi_info_read
 * after every action, and their request task is woken through an event.
 *
 * File descriptors: libcurl opens and closes its sockets itself, and the
 * number of a closed socket comes back at once for the next one. tulip
 * keeps a record per fd, so every fd libcurl hands us is forgotten
 * (tl_fd_forget) when libcurl opens it, when it stops watching it and
 * before it closes it; a watcher whose fd was forgotten under it (the
 * resolver's socketpair, closed by libcurl without the close callback,
 * whose number a new connection took) reports TL_ECLOSED and is made
 * again. A watcher freed while the loop handles another socket's events
 * drops its own pending events (tl_fd_watch_free's contract).
 */
#include <tulip/curl.h>

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_HIGH (64u * 1024) /* body bytes a stream keeps before pausing */

struct sock {
    struct tl_curl *c;
    int fd;
    tl_fd_watch *w;
    struct sock *prev, *next;
};

struct tl_curl {
    CURLM *multi;
    uint32_t loop_id;
    tl_task driver;
    tl_event kick;   /* the timer moved: the driver re-reads timer_at */
    double timer_at; /* libcurl's deadline (tl_now scale); INFINITY: none */
    tl_sem turns;
    unsigned max_concurrent;
    unsigned in_flight; /* transfers in the multi handle */
    unsigned open;      /* calls and streams not yet finished */
    size_t max_body;
    char *ca_file;
    char *user_agent;
    int insecure;
    int http1_only;
    struct sock *socks;
};

struct xfer {
    tl_curl *c;
    CURL *easy;
    struct curl_slist *hdrs;
    tl_event ev;
    int added;      /* in the multi handle */
    int turn;       /* holds one of c->turns */
    int done;       /* curl_multi_info_read said so */
    CURLcode result;
    int err;        /* our own failure (-EFBIG, -ENOMEM) */
    int follow;
    int streaming;
    int headers_done;
    int paused;
    tl_curl_response resp;
    size_t body_cap;
    size_t hcap;
    /* streams: buf fills from libcurl, hand is the piece the reader has */
    char *buf, *hand;
    size_t buf_len, buf_cap, hand_cap;
    char errbuf[CURL_ERROR_SIZE];
};

struct tl_curl_stream {
    struct xfer x;
    int rc; /* the failure, once computed */
};

/* ---- small helpers ---------------------------------------------------- */

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int check_client(const tl_curl *c)
{
    tl_task me = tl_current();
    if (me.gen == 0) return TL_ENOTASK;
    if (!c) return -EINVAL;
    if (me.loop != c->loop_id) return -EXDEV;
    return 0;
}

static int map_code(CURLcode cc)
{
    switch (cc) {
    case CURLE_OK: return 0;
    case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return -EHOSTUNREACH;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: return -EKEYREJECTED;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP3:
        return -EPROTO;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE: return -ECONNRESET;
    case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_BAD_FUNCTION_ARGUMENT: return -EINVAL;
    case CURLE_OUT_OF_MEMORY: return -ENOMEM;
    case CURLE_FILESIZE_EXCEEDED: return -EFBIG;
    default: return -EIO;
    }
}

/* The failure of a finished (or never started) transfer, message attached. */
static int xfer_fail(struct xfer *x, CURLcode cc)
{
    if (x->err == -EFBIG)
        return tl_fail(-EFBIG, "tulip-curl: the body exceeds max_body (%zu bytes)",
                       x->c->max_body);
    if (x->err) return tl_fail(x->err, "tulip-curl: %s", strerror(-x->err));
    int rc = map_code(cc);
    if (rc == 0) rc = -EIO;
    /* The error buffer, when curl filled it, already ends with what
     * curl_easy_strerror says ("Failed to connect to ... port 1 after
     * 0 ms: Couldn't connect to server"): attach it alone. */
    return tl_fail(rc, "curl: %s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
}

static void headers_free(tl_curl_response *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    r->headers = NULL;
    r->nheaders = 0;
}

void tl_curl_response_free(tl_curl_response *r)
{
    if (!r) return;
    headers_free(r);
    free(r->body);
    memset(r, 0, sizeof *r);
}

const char *tl_curl_header_get(const tl_curl_response *r, const char *name)
{
    if (!r || !name) return NULL;
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    return NULL;
}

/* ---- libcurl's callbacks --------------------------------------------- */

static void finish(tl_curl *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        struct xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (!x) continue;
        x->done = 1;
        x->result = m->data.result;
        x->headers_done = 1;
        tl_event_set(&x->ev);
    }
}

static void on_ready(int fd, unsigned revents, void *arg)
{
    struct sock *s = arg;
    tl_curl *c = s->c; /* s may be freed inside the action */
    int flags = 0, running;
    if (revents & TL_READABLE) flags |= CURL_CSELECT_IN;
    if (revents & TL_WRITABLE) flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    finish(c);
}

static void sock_free(tl_curl *c, struct sock *s)
{
    tl_fd_watch_free(s->w);
    if (s->prev) s->prev->next = s->next;
    else c->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    free(s);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp,
                     void *socketp)
{
    (void)e;
    tl_curl *c = userp;
    struct sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            sock_free(c, s);
            curl_multi_assign(c->multi, fd, NULL);
        }
        tl_fd_forget(fd);
        return 0;
    }
    unsigned ev = 0;
    if (what & CURL_POLL_IN) ev |= TL_READABLE;
    if (what & CURL_POLL_OUT) ev |= TL_WRITABLE;
    if (s) {
        int rc = tl_fd_watch_set(s->w, ev);
        if (rc == 0) return 0;
        /* Forgotten under us (the number was closed and taken again):
         * make the watcher anew below. */
        sock_free(c, s);
        curl_multi_assign(c->multi, fd, NULL);
        if (rc != TL_ECLOSED) return -1;
    }
    s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->c = c;
    s->fd = fd;
    tl_fd_forget(fd); /* a stale record of an earlier fd of this number */
    if (tl_fd_watch_new(&s->w, fd, ev, on_ready, s) < 0) {
        free(s);
        return -1;
    }
    s->next = c->socks;
    if (c->socks) c->socks->prev = s;
    c->socks = s;
    curl_multi_assign(c->multi, fd, s);
    return 0;
}

static int on_timer(CURLM *m, long ms, void *userp)
{
    (void)m;
    tl_curl *c = userp;
    c->timer_at = ms < 0 ? INFINITY : tl_now() + (double)ms / 1000.0;
    tl_event_set(&c->kick);
    return 0;
}

static curl_socket_t on_open(void *clientp, curlsocktype purpose,
                             struct curl_sockaddr *a)
{
    (void)clientp;
    (void)purpose;
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0) return CURL_SOCKET_BAD;
    tl_fd_forget(fd); /* the number may have been closed by plain close(2) */
    return fd;
}

static int on_close(void *clientp, curl_socket_t fd)
{
    (void)clientp;
    tl_fd_forget(fd);
    return close(fd);
}

static int grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need) n *= 2;
    char *q = realloc(*p, n);
    if (!q) return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * nmemb;
    if (x->streaming) {
        x->headers_done = 1;
        if (x->buf_len > 0 && x->buf_len + len > STREAM_HIGH) {
            x->paused = 1; /* libcurl keeps this piece for later */
            return CURL_WRITEFUNC_PAUSE;
        }
        if (grow(&x->buf, &x->buf_cap, x->buf_len + len) < 0) {
            x->err = -ENOMEM;
            return 0;
        }
        memcpy(x->buf + x->buf_len, p, len);
        x->buf_len += len;
        tl_event_set(&x->ev);
        return len;
    }
    tl_curl_response *r = &x->resp;
    if (r->body_len + len > x->c->max_body) {
        x->err = -EFBIG;
        return 0;
    }
    if (grow(&r->body, &x->body_cap, r->body_len + len + 1) < 0) {
        x->err = -ENOMEM;
        return 0;
    }
    memcpy(r->body + r->body_len, p, len);
    r->body_len += len;
    r->body[r->body_len] = 0;
    return len;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t total = size * nmemb, len = total;
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r')) len--;
    tl_curl_response *r = &x->resp;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new response (after a 1xx or a redirect): keep only the last. */
        headers_free(r);
        x->hcap = 0;
        const char *sp = memchr(p, ' ', len);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        return total;
    }
    if (len == 0) {
        long st = r->status;
        int redirect = x->follow && st >= 300 && st < 400;
        if (st >= 200 && !redirect && !x->headers_done) {
            x->headers_done = 1;
            tl_event_set(&x->ev);
        }
        return total;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon) return total; /* a folded line: ignored */
    if (r->nheaders == x->hcap) {
        size_t n = x->hcap ? x->hcap * 2 : 16;
        tl_curl_header *h = realloc(r->headers, n * sizeof *h);
        if (!h) goto nomem;
        r->headers = h;
        x->hcap = n;
    }
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    char *name = strndup(p, (size_t)(colon - p));
    char *value = strndup(v, (size_t)(end - v));
    if (!name || !value) {
        free(name);
        free(value);
        goto nomem;
    }
    r->headers[r->nheaders].name = name;
    r->headers[r->nheaders].value = value;
    r->nheaders++;
    return total;
nomem:
    x->err = -ENOMEM;
    return 0;
}

/* ---- the driver: libcurl's timer ---------------------------------------- */

static int driver(void *arg)
{
    tl_curl *c = arg;
    for (;;) {
        tl_event_clear(&c->kick);
        if (c->timer_at <= tl_now()) {
            int running;
            c->timer_at = INFINITY;
            curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            finish(c);
            /* A timer of 0 again (a resumed transfer) must not starve
             * the loop. */
            if (tl_yield() == -ECANCELED) return 0;
            continue;
        }
        tl_scope s = tl_timeout_at_enter(c->timer_at);
        int rc = tl_event_wait(&c->kick);
        rc = tl_scope_exit(s, rc);
        if (rc == -ECANCELED) return 0;
        if (rc < 0 && rc != -ETIMEDOUT && tl_yield() == -ECANCELED) return 0;
    }
}

/* ---- the client --------------------------------------------------------- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc;
static int g_inited; /* atomic: g_once has run */

static void global_init(void)
{
    g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    __atomic_store_n(&g_inited, 1, __ATOMIC_RELEASE);
}

static int global_init_job(void *arg)
{
    (void)arg;
    pthread_once(&g_once, global_init);
    return 0;
}

/* libcurl's global init loads OpenSSL and its configuration: ~0.1 s, too
 * long for the loop, so the first client of the process runs it on the
 * thread pool (pthread_once serialises concurrent first clients). */
static int ensure_global_init(void)
{
    if (!__atomic_load_n(&g_inited, __ATOMIC_ACQUIRE)) {
        int res;
        int rc = tl_to_thread(global_init_job, NULL, &res);
        if (rc == -ECANCELED) return rc;
        if (rc < 0) pthread_once(&g_once, global_init); /* no pool: here */
    }
    if (g_init_rc != CURLE_OK)
        return tl_fail(-EIO, "curl_global_init: %s", curl_easy_strerror(g_init_rc));
    return 0;
}

int tl_curl_new(tl_curl **out, const tl_curl_opts *opts)
{
    tl_task me = tl_current();
    if (me.gen == 0) return TL_ENOTASK;
    if (!out) return -EINVAL;
    *out = NULL;
    int rc = ensure_global_init();
    if (rc < 0) return rc;
    tl_curl_opts o = {0};
    if (opts) o = *opts;
    tl_curl *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->loop_id = me.loop;
    c->max_concurrent = o.max_concurrent ? o.max_concurrent : 10;
    if (c->max_concurrent > INT32_MAX) c->max_concurrent = INT32_MAX;
    c->max_body = o.max_body ? o.max_body : (size_t)64 << 20;
    c->insecure = o.insecure;
    c->http1_only = o.http1_only;
    c->timer_at = INFINITY;
    c->ca_file = dupstr(o.ca_file);
    c->user_agent = strdup(o.user_agent ? o.user_agent : "tulip-curl");
    c->multi = curl_multi_init();
    rc = -ENOMEM;
    if (!c->user_agent || (o.ca_file && !c->ca_file) || !c->multi) goto fail;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* Keep an idle connection per turn (libcurl's default follows the
     * number of easy handles added, which shrinks between requests). */
    long keep = c->max_concurrent < 16 ? 16 : (long)c->max_concurrent;
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, keep);
    if ((rc = tl_sem_init(&c->turns, (int)c->max_concurrent)) < 0) goto fail;
    if ((rc = tl_event_init(&c->kick)) < 0) {
        tl_sem_destroy(&c->turns);
        goto fail;
    }
    tl_spawn_opts so = {.name = "tl_curl driver"};
    if ((rc = tl_spawn_ex(&c->driver, &so, driver, c)) < 0) {
        tl_event_destroy(&c->kick);
        tl_sem_destroy(&c->turns);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (c->multi) curl_multi_cleanup(c->multi);
    free(c->ca_file);
    free(c->user_agent);
    free(c);
    return rc;
}

int tl_curl_close(tl_curl *c)
{
    if (!c) return 0;
    int rc = check_client(c);
    if (rc < 0) return rc;
    if (c->open) return -EBUSY;
    tl_cancel(c->driver);
    int st = 0;
    TL_WITH_SHIELD(&rc) {
        rc = tl_join(c->driver, &st);
    }
    /* Closes the cached connections through on_close (tl_fd_forget). */
    curl_multi_cleanup(c->multi);
    while (c->socks) sock_free(c, c->socks);
    tl_event_destroy(&c->kick);
    tl_sem_destroy(&c->turns);
    free(c->ca_file);
    free(c->user_agent);
    free(c);
    return 0;
}

unsigned tl_curl_in_flight(const tl_curl *c)
{
    return c ? c->in_flight : 0;
}

/* ---- transfers ---------------------------------------------------------- */

static void xfer_end(struct xfer *x)
{
    tl_curl *c = x->c;
    if (x->added) {
        curl_multi_remove_handle(c->multi, x->easy);
        c->in_flight--;
        x->added = 0;
    }
    if (x->easy) curl_easy_cleanup(x->easy);
    x->easy = NULL;
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    if (x->turn) tl_sem_release(&c->turns);
    x->turn = 0;
    tl_event_destroy(&x->ev);
    free(x->buf);
    free(x->hand);
    x->buf = x->hand = NULL;
    c->open--;
}

static int set_opts(struct xfer *x, const tl_curl_request *req)
{
    tl_curl *c = x->c;
    CURL *e = x->easy;
    CURLcode cc = CURLE_OK;
#define SET(opt, val)                                                       \
    do {                                                                    \
        if (cc == CURLE_OK) cc = curl_easy_setopt(e, opt, val);             \
    } while (0)
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_PRIVATE, (void *)x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)x);
    SET(CURLOPT_OPENSOCKETFUNCTION, on_open);
    SET(CURLOPT_OPENSOCKETDATA, (void *)c);
    SET(CURLOPT_CLOSESOCKETFUNCTION, on_close);
    SET(CURLOPT_CLOSESOCKETDATA, (void *)c);
    SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_PIPEWAIT, 1L);
    SET(CURLOPT_HTTP_VERSION,
        c->http1_only ? (long)CURL_HTTP_VERSION_1_1 : (long)CURL_HTTP_VERSION_2TLS);
    if (c->ca_file) SET(CURLOPT_CAINFO, c->ca_file);
    if (c->insecure) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (req->follow_redirects) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, 10L);
    }
    if (req->body) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        /* A stream outlives the call that lent the body: copy it then. */
        if (x->streaming) SET(CURLOPT_COPYPOSTFIELDS, req->body);
        else SET(CURLOPT_POSTFIELDS, req->body);
    }
    if (req->method) {
        if (strcmp(req->method, "HEAD") == 0) SET(CURLOPT_NOBODY, 1L);
        else if (strcmp(req->method, "GET") == 0 && !req->body) SET(CURLOPT_HTTPGET, 1L);
        else SET(CURLOPT_CUSTOMREQUEST, req->method);
    }
    for (const char *const *h = req->headers; h && *h; h++) {
        struct curl_slist *n = curl_slist_append(x->hdrs, *h);
        if (!n) return -ENOMEM;
        x->hdrs = n;
    }
    if (x->hdrs) SET(CURLOPT_HTTPHEADER, x->hdrs);
#undef SET
    if (cc != CURLE_OK) return xfer_fail(x, cc);
    return 0;
}

/* Take a turn and put the transfer into the multi handle. On failure the
 * transfer is ended (nothing to undo for the caller). */
static int xfer_start(tl_curl *c, struct xfer *x, const tl_curl_request *req,
                      int streaming)
{
    memset(x, 0, sizeof *x);
    x->c = c;
    x->streaming = streaming;
    x->follow = req->follow_redirects;
    int rc = tl_event_init(&x->ev);
    if (rc < 0) return rc;
    c->open++;
    rc = tl_sem_acquire(&c->turns);
    if (rc < 0) goto fail;
    x->turn = 1;
    x->easy = curl_easy_init();
    if (!x->easy) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = set_opts(x, req)) < 0) goto fail;
    CURLMcode mc = curl_multi_add_handle(c->multi, x->easy);
    if (mc != CURLM_OK) {
        rc = tl_fail(mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO,
                     "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        goto fail;
    }
    x->added = 1;
    c->in_flight++;
    return 0;
fail:
    xfer_end(x);
    return rc;
}

static void fill_info(struct xfer *x)
{
    long v = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &v);
    if (v) x->resp.status = v;
    v = 0;
    curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &v);
    switch (v) {
    case CURL_HTTP_VERSION_1_0: x->resp.http_version = 10; break;
    case CURL_HTTP_VERSION_1_1: x->resp.http_version = 11; break;
    case CURL_HTTP_VERSION_2_0: x->resp.http_version = 20; break;
    case CURL_HTTP_VERSION_3: x->resp.http_version = 30; break;
    default: break;
    }
    v = 0;
    curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &v);
    x->resp.new_connections = v;
}

static int check_req(const tl_curl *c, const tl_curl_request *req)
{
    int rc = check_client(c);
    if (rc < 0) return rc;
    if (!req || !req->url || (req->body_len && !req->body)) return -EINVAL;
    return 0;
}

int tl_curl_fetch(tl_curl *c, const tl_curl_request *req, tl_curl_response *out)
{
    if (out) memset(out, 0, sizeof *out);
    int rc = check_req(c, req);
    if (rc < 0) return rc;
    if (!out) return -EINVAL;
    struct xfer x;
    if ((rc = xfer_start(c, &x, req, 0)) < 0) return rc;
    while (!x.done) {
        rc = tl_event_wait(&x.ev);
        if (rc < 0 && !x.done) break; /* cancelled: a finished one wins */
        tl_event_clear(&x.ev);
    }
    if (x.done) {
        if (x.result == CURLE_OK && !x.err) {
            fill_info(&x);
            if (!x.resp.body) x.resp.body = calloc(1, 1);
            if (!x.resp.body) {
                rc = -ENOMEM;
            } else {
                *out = x.resp;
                memset(&x.resp, 0, sizeof x.resp);
                rc = 0;
            }
        } else {
            rc = xfer_fail(&x, x.result);
        }
    }
    tl_curl_response_free(&x.resp);
    xfer_end(&x);
    return rc;
}

int tl_curl_get(tl_curl *c, const char *url, tl_curl_response *out)
{
    tl_curl_request req = {.url = url};
    return tl_curl_fetch(c, &req, out);
}

int tl_curl_post(tl_curl *c, const char *url, const void *body, size_t len,
                 const char *content_type, tl_curl_response *out)
{
    char ct[256];
    snprintf(ct, sizeof ct, "Content-Type: %s",
             content_type ? content_type : "application/octet-stream");
    const char *hdrs[] = {ct, NULL};
    /* An empty body is still a POST with Content-Length: 0. */
    tl_curl_request req = {.url = url, .method = "POST", .body = body ? body : "",
                           .body_len = len, .headers = hdrs};
    if (len && !body) req.body = NULL;
    return tl_curl_fetch(c, &req, out);
}

/* ---- streams ------------------------------------------------------------ */

int tl_curl_stream_open(tl_curl *c, const tl_curl_request *req,
                        tl_curl_stream **out)
{
    if (out) *out = NULL;
    int rc = check_req(c, req);
    if (rc < 0) return rc;
    if (!out) return -EINVAL;
    tl_curl_stream *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    struct xfer *x = &s->x;
    if ((rc = xfer_start(c, x, req, 1)) < 0) {
        free(s);
        return rc;
    }
    while (!x->headers_done) {
        rc = tl_event_wait(&x->ev);
        if (rc < 0 && !x->headers_done) break;
        tl_event_clear(&x->ev);
    }
    if (x->headers_done && x->done && (x->result != CURLE_OK || x->err))
        rc = xfer_fail(x, x->result);
    else if (x->headers_done)
        rc = 0;
    if (rc < 0) {
        tl_curl_response_free(&x->resp);
        xfer_end(x);
        free(s);
        return rc;
    }
    fill_info(x);
    *out = s;
    return 0;
}

const tl_curl_response *tl_curl_stream_response(const tl_curl_stream *s)
{
    return s ? &s->x.resp : NULL;
}

int tl_curl_stream_read(tl_curl_stream *s, const char **data, size_t *len)
{
    if (!s || !data || !len) return -EINVAL;
    struct xfer *x = &s->x;
    *data = NULL;
    *len = 0;
    if (s->rc < 0) return s->rc;
    if (x->paused && !x->done) {
        /* The reader is back: let libcurl deliver what it held (it may
         * call on_body right here, which fills x->buf). */
        x->paused = 0;
        curl_easy_pause(x->easy, CURLPAUSE_CONT);
    }
    for (;;) {
        if (x->buf_len) {
            /* Hand the filled buffer over; libcurl fills the other. */
            char *t = x->hand;
            size_t tc = x->hand_cap;
            x->hand = x->buf;
            x->hand_cap = x->buf_cap;
            x->buf = t;
            x->buf_cap = tc;
            *data = x->hand;
            *len = x->buf_len;
            x->buf_len = 0;
            return 1;
        }
        if (x->done) {
            if (x->result != CURLE_OK || x->err)
                return s->rc = xfer_fail(x, x->result);
            return 0;
        }
        tl_event_clear(&x->ev);
        int rc = tl_event_wait(&x->ev);
        if (rc < 0 && !x->buf_len && !x->done) return rc;
    }
}

void tl_curl_stream_close(tl_curl_stream *s)
{
    if (!s) return;
    tl_curl_response_free(&s->x.resp);
    xfer_end(&s->x);
    free(s);
}

struct lines {
    tl_curl_stream *s;
    char *acc;
    size_t len, cap;
};

static int lines_fn(tl_gen *g, void *arg)
{
    struct lines *L = arg;
    size_t pos = 0;
    int rc = 0;
    for (;;) {
        char *nl;
        while (L->len > pos && (nl = memchr(L->acc + pos, '\n', L->len - pos))) {
            size_t n = (size_t)(nl - (L->acc + pos));
            *nl = 0;
            if (n && L->acc[pos + n - 1] == '\r') L->acc[pos + n - 1] = 0;
            rc = tl_gen_yield(g, L->acc + pos);
            pos += n + 1;
            if (rc < 0) goto out;
        }
        if (pos) {
            memmove(L->acc, L->acc + pos, L->len - pos);
            L->len -= pos;
            pos = 0;
        }
        if (L->len > TL_CURL_MAX_LINE) {
            rc = tl_fail(-E2BIG, "tulip-curl: a line longer than %u bytes",
                         TL_CURL_MAX_LINE);
            goto out;
        }
        const char *d;
        size_t n;
        int r = tl_curl_stream_read(L->s, &d, &n);
        if (r < 0) {
            rc = r;
            goto out;
        }
        if (r == 0) {
            if (L->len) {
                L->acc[L->len] = 0;
                if (L->acc[L->len - 1] == '\r') L->acc[L->len - 1] = 0;
                rc = tl_gen_yield(g, L->acc);
            }
            goto out;
        }
        if (grow(&L->acc, &L->cap, L->len + n + 1) < 0) {
            rc = -ENOMEM;
            goto out;
        }
        memcpy(L->acc + L->len, d, n);
        L->len += n;
    }
out:
    free(L->acc);
    free(L);
    return rc < 0 ? rc : 0;
}

int tl_curl_stream_lines(tl_curl_stream *s, tl_gen **out)
{
    if (out) *out = NULL;
    if (!s || !out) return -EINVAL;
    struct lines *L = calloc(1, sizeof *L);
    if (!L) return -ENOMEM;
    L->s = s;
    tl_gen_opts go = {.name = "tl_curl lines"};
    int rc = tl_gen_new(out, lines_fn, L, &go);
    if (rc < 0) free(L);
    return rc;
}
