/* libtulip-curl against a real nginx: the program writes a certificate
 * authority and a server certificate with the openssl command into a
 * temporary folder, starts Debian's nginx (one process, in the
 * foreground, every path in that folder) on free loopback ports, plain
 * HTTP and HTTPS with HTTP/2, runs each case in a forked child (tiny.h)
 * and stops nginx by its PID at the end. The echo module (Debian's
 * libnginx-mod-http-echo) gives the slow and trickling endpoints.
 * Skipped (77) when nginx, its echo module or openssl is missing
 * (scripts/install-deps.sh installs them).
 *
 * tulip-test-timeout: 240 */
#include "tiny.h"

/* The CA and the server certificate nginx serves, in the folder nginx
 * runs in (g_dir; g_ca is the CA's file). */
#define TL_TEST_CERTS_DIR "/tmp/tulip-curl-XXXXXX"
#include "tls/tls_certs.h"

#include <tulip/curl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#ifndef TULIP_TEST_SANITIZED
#define TULIP_TEST_SANITIZED 0
#endif

#define ECHO_MODULE "/usr/lib/nginx/modules/ngx_http_echo_module.so"
#define NGINX "/usr/sbin/nginx"
#define TRICKLE_LINES 20
#define BIG_SIZE (2u << 20)     /* /big.bin */
#define STATIC_SIZE (100000u)   /* /static.txt */

static int g_port, g_tls_port;
static pid_t g_nginx = -1;

/* ---- the server ---------------------------------------------------------- */

static int sh(const char *cmd)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) < 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

static int can_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static void write_file(const char *name, const char *text, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* The content of /static.txt: numbered lines. */
static char *static_text(size_t *len)
{
    char *t = malloc(STATIC_SIZE + 1);
    size_t n = 0;
    for (int i = 0; n < STATIC_SIZE; i++) {
        char line[32];
        int k = snprintf(line, sizeof line, "line %d\n", i);
        size_t take = STATIC_SIZE - n < (size_t)k ? STATIC_SIZE - n : (size_t)k;
        memcpy(t + n, line, take);
        n += take;
    }
    t[n] = 0;
    *len = n;
    return t;
}

static int start_server(void)
{
    if (access(NGINX, X_OK) != 0) return 77;
    if (access(ECHO_MODULE, R_OK) != 0) return 77;
    if (sh("command -v openssl") != 0) return 77;
    /* A CA, and a server certificate it signs for 127.0.0.1 and localhost
     * (server.crt, server.key), in g_dir. */
    make_certs();
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p www tmp && head -c %u /dev/urandom > www/big.bin",
             g_dir, BIG_SIZE);
    if (sh(cmd) != 0) {
        fprintf(stderr, "could not fill the web root\n");
        return -1;
    }
    size_t sl;
    char *st = static_text(&sl);
    write_file("www/static.txt", st, sl);
    free(st);
    write_file("www/small.json", "{\"ok\": true}\n", 13);

    g_port = free_port();
    g_tls_port = free_port();
    if (g_port <= 0 || g_tls_port <= 0 || g_port == g_tls_port) return -1;

    char trickle[2048] = "";
    size_t tl = 0;
    for (int i = 1; i <= TRICKLE_LINES; i++)
        tl += (size_t)snprintf(trickle + tl, sizeof trickle - tl,
                               "echo \"line %d\"; echo_flush; echo_sleep 0.01; ", i);
    snprintf(trickle + tl, sizeof trickle - tl, "echo -n \"last\";");

    char conf[8192];
    int n = snprintf(conf, sizeof conf,
        "load_module %s;\n"
        "daemon off;\nmaster_process off;\n"
        "pid %s/nginx.pid;\nerror_log %s/error.log warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "  access_log %s/access.log;\n"
        "  client_body_temp_path %s/tmp/body; proxy_temp_path %s/tmp/proxy;\n"
        "  fastcgi_temp_path %s/tmp/fcgi; uwsgi_temp_path %s/tmp/uwsgi;\n"
        "  scgi_temp_path %s/tmp/scgi;\n"
        "  keepalive_requests 100000;\n"
        "  types { text/plain txt; application/json json; }\n"
        "  default_type application/octet-stream;\n"
        "  server {\n"
        "    listen 127.0.0.1:%d;\n"
        "    listen 127.0.0.1:%d ssl http2;\n"
        "    ssl_certificate %s/server.crt; ssl_certificate_key %s/server.key;\n"
        "    root %s/www;\n"
        "    location = /slow { echo_sleep 60; echo late; }\n"
        "    location = /trickle { default_type text/plain; %s }\n"
        "    location = /post { echo_read_request_body; echo_request_body; }\n"
        "    location = /hdr { add_header X-Tulip yes; echo hi; }\n"
        "    location = /limited { limit_rate 200k; alias %s/www/big.bin; }\n"
        "    location /close/ { keepalive_timeout 0; alias %s/www/; }\n"
        "  }\n"
        "}\n",
        ECHO_MODULE, g_dir, g_dir, g_dir, g_dir, g_dir, g_dir, g_dir, g_dir,
        g_port, g_tls_port, g_dir, g_dir, g_dir, trickle, g_dir, g_dir);
    write_file("nginx.conf", conf, (size_t)n);

    g_nginx = fork();
    if (g_nginx < 0) return -1;
    if (g_nginx == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* nginx goes with us */
        char log[128], conf_path[128];
        snprintf(log, sizeof log, "%s/stderr.log", g_dir);
        snprintf(conf_path, sizeof conf_path, "%s/nginx.conf", g_dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(NGINX, "nginx", "-p", g_dir, "-c", conf_path, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        if (can_connect(g_port) && can_connect(g_tls_port)) return 0;
        int st;
        if (waitpid(g_nginx, &st, WNOHANG) == g_nginx) {
            g_nginx = -1;
            break;
        }
        nanosleep(&(struct timespec){0, 25000000}, NULL);
    }
    snprintf(cmd, sizeof cmd, "cat %s/stderr.log %s/error.log >&2", g_dir, g_dir);
    if (system(cmd)) {}
    return -1;
}

static void stop_server(void)
{
    if (g_nginx > 0) {
        kill(g_nginx, SIGTERM);
        int st;
        while (waitpid(g_nginx, &st, 0) < 0 && errno == EINTR)
            ;
        g_nginx = -1;
    }
    remove_certs();
}

/* ---- helpers -------------------------------------------------------------- */

static char *url(const char *path)
{
    static char buf[4][160];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "http://127.0.0.1:%d%s", g_port, path);
    return buf[k];
}

static char *surl(const char *path)
{
    static char buf[4][160];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "https://127.0.0.1:%d%s", g_tls_port, path);
    return buf[k];
}

static void run(tl_fn fn)
{
    TINY_ASSERT_EQ(tl_run(fn, NULL), 0);
}

/* FETCH(c, u, want, r): GET u with c and expect the call to succeed with
 * HTTP status `want`. Otherwise the test fails with the caller's file and
 * line, the URL, and the error (with tl_fail_message's text) or the
 * status that came instead. With r, *r keeps the response for more
 * checks and the caller frees it; with r NULL it is freed here. */
#define FETCH(c, u, want, r)                                                   \
    fetch_check(__FILE__, __LINE__, (c), (u), (want), (r))

static void fetch_check(const char *file, int line, tl_curl *c, const char *u,
                        long want, tl_curl_response *r)
{
    tl_curl_response own;
    tl_curl_response *rp = r ? r : &own;
    int rc = tl_curl_get(c, u, rp);
    if (rc != 0) {
        const char *m = tl_fail_message(rc);
        fprintf(stderr, "%s:%d: GET %s failed: %s (%s)\n", file, line, u,
                tl_strerror(rc), m ? m : "no message");
        exit(1);
    }
    if (rp->status != want) {
        fprintf(stderr, "%s:%d: GET %s: status %ld, want %ld\n", file, line,
                u, rp->status, want);
        exit(1);
    }
    if (!r) tl_curl_response_free(&own);
}

/* ---- cases ---------------------------------------------------------------- */

static int t_get(void *arg)
{
    (void)arg;
    tl_curl *c;
    TINY_ASSERT_EQ(tl_curl_new(&c, NULL), 0);
    tl_curl_response r;
    FETCH(c, url("/static.txt"), 200, &r);
    TINY_ASSERT_EQ(r.http_version, 11);
    size_t sl;
    char *st = static_text(&sl);
    TINY_ASSERT_EQ(r.body_len, sl);
    TINY_ASSERT(memcmp(r.body, st, sl) == 0);
    free(st);
    TINY_ASSERT_STR_EQ(tl_curl_header_get(&r, "content-type"), "text/plain");
    TINY_ASSERT_EQ(strtol(tl_curl_header_get(&r, "Content-Length"), NULL, 10), sl);
    tl_curl_response_free(&r);

    /* A 404 is a response; a name ("localhost" libcurl answers itself,
     * without its resolver: see threaded_resolver). */
    char u[128];
    snprintf(u, sizeof u, "http://localhost:%d/nothing-here", g_port);
    FETCH(c, u, 404, NULL);

    FETCH(c, url("/hdr"), 200, &r);
    TINY_ASSERT_STR_EQ(tl_curl_header_get(&r, "x-tulip"), "yes");
    TINY_ASSERT_STR_EQ(r.body, "hi\n");
    tl_curl_response_free(&r);
    TINY_ASSERT_EQ(tl_curl_in_flight(c), 0);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(get) { run(t_get); }

static int t_post(void *arg)
{
    (void)arg;
    tl_curl *c;
    TINY_ASSERT_EQ(tl_curl_new(&c, NULL), 0);
    size_t n = 200000;
    char *body = malloc(n);
    for (size_t i = 0; i < n; i++) body[i] = (char)('a' + i % 26);
    tl_curl_response r;
    TINY_ASSERT_EQ(tl_curl_post(c, url("/post"), body, n, "text/plain", &r), 0);
    free(body); /* the call borrowed it only */
    TINY_ASSERT_EQ(r.status, 200);
    TINY_ASSERT_EQ(r.body_len, n);
    for (size_t i = 0; i < n; i++)
        if (r.body[i] != (char)('a' + i % 26)) TINY_ASSERT(0);
    tl_curl_response_free(&r);
    TINY_ASSERT_EQ(tl_curl_post(c, url("/post"), "x=1", 3, NULL, &r), 0);
    TINY_ASSERT_STR_EQ(r.body, "x=1");
    tl_curl_response_free(&r);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(post) { run(t_post); }

/* Keep-alive: ten requests in a row open one connection. */
static int t_reuse(void *arg)
{
    (void)arg;
    tl_curl *c;
    TINY_ASSERT_EQ(tl_curl_new(&c, NULL), 0);
    long opened = 0;
    for (int i = 0; i < 10; i++) {
        tl_curl_response r;
        FETCH(c, url("/small.json"), 200, &r);
        opened += r.new_connections;
        tl_curl_response_free(&r);
    }
    TINY_ASSERT_EQ(opened, 1);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(reuse) { run(t_reuse); }

static int t_stream_lines(void *arg)
{
    (void)arg;
    tl_curl *c;
    TINY_ASSERT_EQ(tl_curl_new(&c, NULL), 0);
    tl_curl_request req = {.url = url("/trickle")};
    tl_curl_stream *s;
    TINY_ASSERT_EQ(tl_curl_stream_open(c, &req, &s), 0);
    TINY_ASSERT_EQ(tl_curl_stream_response(s)->status, 200);
    tl_gen *g;
    TINY_ASSERT_EQ(tl_curl_stream_lines(s, &g), 0);
    const char *line;
    int rc, i = 0;
    TL_GEN_FOREACH(g, line, &rc) {
        char want[32];
        i++;
        if (i <= TRICKLE_LINES) snprintf(want, sizeof want, "line %d", i);
        else snprintf(want, sizeof want, "last");
        TINY_ASSERT_STR_EQ(line, want);
    }
    TINY_ASSERT_EQ(rc, 0);
    TINY_ASSERT_EQ(i, TRICKLE_LINES + 1);
    TINY_ASSERT_EQ(tl_gen_close(g), 0);
    tl_curl_stream_close(s);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(stream_lines) { run(t_stream_lines); }

/* A lines consumer cut short by a deadline: the generator's producer
 * unwinds, and the stream, the generator and the client close cleanly.
 * A chunk reader cut short keeps its stream readable. */
static int t_stream_cancel(void *arg)
{
    (void)arg;
    tl_curl *c;
    TINY_ASSERT_EQ(tl_curl_new(&c, NULL), 0);
    tl_curl_request req = {.url = url("/trickle")};
    tl_curl_stream *s;
    TINY_ASSERT_EQ(tl_curl_stream_open(c, &req, &s), 0);
    tl_gen *g;
    TINY_ASSERT_EQ(tl_curl_stream_lines(s, &g), 0);
    int rc, n = 0;
    TL_WITH_TIMEOUT(0.05, &rc) { /* the trickle takes 0.2 s or more */
        const char *line;
        TL_GEN_FOREACH(g, line, &rc) n += line[0] != 0;
    }
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    TINY_ASSERT(n < TRICKLE_LINES + 1);
    TINY_ASSERT_EQ(tl_gen_close(g), 0);
    tl_curl_stream_close(s);
    TINY_ASSERT_EQ(tl_curl_in_flight(c), 0);

    req.url = url("/limited");
    TINY_ASSERT_EQ(tl_curl_stream_open(c, &req, &s), 0);
    const char *d;
    size_t len, got = 0;
    TL_WITH_TIMEOUT(0.3, &rc) {
        while ((rc = tl_curl_stream_read(s, &d, &len)) == 1) got += len;
    }
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    TINY_ASSERT(got > 0 && got < BIG_SIZE);
    TINY_ASSERT_EQ(tl_curl_stream_read(s, &d, &len), 1); /* still readable */
    tl_curl_stream_close(s);
    TINY_ASSERT_EQ(tl_curl_in_flight(c), 0);
    FETCH(c, url("/small.json"), 200, NULL);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(stream_cancel) { run(t_stream_cancel); }

/* Backpressure: a reader that sleeps between pieces gets every byte, in
 * pieces no bigger than the stream's bound (plus one of libcurl's). */
static int t_stream_chunks(void *arg)
{
    int tls = arg != NULL;
    tl_curl *c;
    tl_curl_opts o = {.ca_file = g_ca};
    TINY_ASSERT_EQ(tl_curl_new(&c, &o), 0);
    tl_curl_request req = {.url = tls ? surl("/big.bin") : url("/big.bin")};
    tl_curl_stream *s;
    TINY_ASSERT_EQ(tl_curl_stream_open(c, &req, &s), 0);
    size_t total = 0, biggest = 0;
    const char *d;
    size_t n;
    int rc, k = 0;
    while ((rc = tl_curl_stream_read(s, &d, &n)) == 1) {
        total += n;
        if (n > biggest) biggest = n;
        if (k++ < 20) TINY_ASSERT_EQ(tl_sleep(0.01), 0);
    }
    TINY_ASSERT_EQ(rc, 0);
    TINY_ASSERT_EQ(tl_curl_stream_response(s)->http_version, tls ? 20 : 11);
    TINY_ASSERT_EQ(total, BIG_SIZE);
    TINY_ASSERT(biggest <= 64 * 1024 + 16384);
    tl_curl_stream_close(s);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(stream_chunks) { run(t_stream_chunks); }
TINY_TEST(stream_chunks_http2) { TINY_ASSERT_EQ(tl_run(t_stream_chunks, "h2"), 0); }

static int t_timeout(void *arg)
{
    (void)arg;
    tl_curl *c;
    TINY_ASSERT_EQ(tl_curl_new(&c, NULL), 0);
    tl_curl_response r;
    double t0 = tl_now();
    int rc;
    TL_WITH_TIMEOUT(0.3, &rc) {
        rc = tl_curl_get(c, url("/slow"), &r);
    }
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    TINY_ASSERT(tl_now() - t0 < 10.0);
    TINY_ASSERT_EQ(r.body, NULL);
    TINY_ASSERT_EQ(tl_curl_in_flight(c), 0);
    /* The client goes on. */
    FETCH(c, url("/small.json"), 200, NULL);
    /* A stream that waits for headers times out too. */
    tl_curl_stream *s = NULL;
    tl_curl_request req = {.url = url("/slow")};
    TL_WITH_TIMEOUT(0.3, &rc) {
        rc = tl_curl_stream_open(c, &req, &s);
    }
    TINY_ASSERT_EQ(rc, -ETIMEDOUT);
    TINY_ASSERT_EQ(s, NULL);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(timeout) { run(t_timeout); }

struct getter {
    tl_curl *c;
    char u[160];
    int rc;
    long status;
    long opened;
    size_t len;
};

static void getter_init(struct getter *g, tl_curl *c, const char *u)
{
    memset(g, 0, sizeof *g);
    g->c = c;
    snprintf(g->u, sizeof g->u, "%s", u);
}

static int getter_fn(void *arg)
{
    struct getter *g = arg;
    tl_curl_response r;
    g->rc = tl_curl_get(g->c, g->u, &r);
    g->status = r.status;
    g->opened = r.new_connections;
    g->len = r.body_len;
    tl_curl_response_free(&r);
    return g->rc;
}

/* Start n getters on c, the even ones fetching `even`, the odd ones
 * `odd` (the URLs are copied). */
static void getters_start(struct getter *g, tl_task *t, int n, tl_curl *c,
                          const char *even, const char *odd)
{
    for (int i = 0; i < n; i++) {
        getter_init(&g[i], c, i % 2 ? odd : even);
        TINY_ASSERT_EQ(tl_spawn(&t[i], getter_fn, &g[i]), 0);
    }
}

/* Join the n getters of getters_start, each of which must have fetched
 * its URL with status 200; returns the connections they opened. */
static long getters_join(struct getter *g, tl_task *t, int n)
{
    long opened = 0;
    for (int i = 0; i < n; i++) {
        int st;
        TINY_ASSERT_EQ(tl_join(t[i], &st), 0);
        if (st != 0 || g[i].status != 200) {
            fprintf(stderr, "getter %d: GET %s: %s, status %ld, want 200\n",
                    i, g[i].u, st ? tl_strerror(st) : "done", g[i].status);
            exit(1);
        }
        opened += g[i].opened;
    }
    return opened;
}

/* Cancelled mid-body: the call returns at once, the client is idle, and
 * the next request works. */
static int t_cancel(void *arg)
{
    (void)arg;
    tl_curl *c;
    TINY_ASSERT_EQ(tl_curl_new(&c, NULL), 0);
    struct getter g;
    getter_init(&g, c, url("/limited"));
    tl_task t;
    TINY_ASSERT_EQ(tl_spawn(&t, getter_fn, &g), 0);
    TINY_ASSERT_EQ(tl_sleep(0.5), 0); /* some of the 2 MiB at 200 kB/s */
    TINY_ASSERT_EQ(tl_curl_in_flight(c), 1);
    double t0 = tl_now();
    TINY_ASSERT_EQ(tl_cancel(t), 0);
    int st;
    TINY_ASSERT_EQ(tl_join(t, &st), 0);
    TINY_ASSERT_EQ(st, -ECANCELED);
    TINY_ASSERT(tl_now() - t0 < 2.0);
    TINY_ASSERT_EQ(tl_curl_in_flight(c), 0);
    FETCH(c, url("/small.json"), 200, NULL);

    /* A stream closed mid-body. */
    tl_curl_request req = {.url = url("/limited")};
    tl_curl_stream *s;
    TINY_ASSERT_EQ(tl_curl_stream_open(c, &req, &s), 0);
    const char *d;
    size_t n;
    TINY_ASSERT_EQ(tl_curl_stream_read(s, &d, &n), 1);
    tl_curl_stream_close(s);
    TINY_ASSERT_EQ(tl_curl_in_flight(c), 0);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(cancel) { run(t_cancel); }

struct many {
    tl_curl *c;
    unsigned peak;
    int stop;
};

static int monitor_fn(void *arg)
{
    struct many *m = arg;
    while (!m->stop) {
        unsigned n = tl_curl_in_flight(m->c);
        if (n > m->peak) m->peak = n;
        if (tl_sleep(0.0005) < 0) break;
    }
    return 0;
}

/* 1,000 fetches, at most 20 at once: all succeed, the cap holds and is
 * reached, and connections are reused (about 20 opened, not 1,000). */
static int t_many(void *arg)
{
    (void)arg;
    enum { N = 1000 };
    tl_curl *c;
    tl_curl_opts o = {.max_concurrent = 20};
    TINY_ASSERT_EQ(tl_curl_new(&c, &o), 0);
    struct getter *g = calloc(N, sizeof *g);
    tl_task *t = calloc(N, sizeof *t);
    struct many m = {.c = c};
    tl_task mon;
    TINY_ASSERT_EQ(tl_spawn(&mon, monitor_fn, &m), 0);
    double t0 = tl_now();
    getters_start(g, t, N, c, url("/small.json"), url("/small.json"));
    long opened = getters_join(g, t, N);
    for (int i = 0; i < N; i++) TINY_ASSERT_EQ(g[i].len, 13);
    double dt = tl_now() - t0;
    m.stop = 1;
    int st;
    TINY_ASSERT_EQ(tl_join(mon, &st), 0);
    fprintf(stderr, "many: %d fetches in %.2f s, %ld connections, peak %u in flight\n",
            N, dt, opened, m.peak);
    TINY_ASSERT(m.peak <= 20);
    TINY_ASSERT(m.peak >= 10);
    TINY_ASSERT(opened >= 1 && opened <= 100);
    free(g);
    free(t);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(many_capped) { run(t_many); }

/* Connections the server closes after each response: fd numbers come
 * back at once for the next socket, while other sockets are handled in
 * the same batch. */
static int t_fd_reuse(void *arg)
{
    (void)arg;
    enum { N = TULIP_TEST_SANITIZED ? 100 : 300 };
    tl_curl *c;
    tl_curl_opts o = {.max_concurrent = 8};
    TINY_ASSERT_EQ(tl_curl_new(&c, &o), 0);
    struct getter *g = calloc(N, sizeof *g);
    tl_task *t = calloc(N, sizeof *t);
    getters_start(g, t, N, c, url("/close/static.txt"),
                  url("/close/small.json"));
    TINY_ASSERT_EQ(getters_join(g, t, N), N);
    for (int i = 0; i < N; i++)
        TINY_ASSERT_EQ(g[i].len, i % 2 ? 13 : STATIC_SIZE);
    free(g);
    free(t);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(fd_reuse) { run(t_fd_reuse); }

/* A name that only libcurl's threaded resolver can answer: libcurl (since
 * 7.85) answers "localhost" and "*.localhost" itself, so the tests' other
 * names never reach the resolver thread and its socketpair. Another name
 * /etc/hosts maps to 127.0.0.1 (a machine's own name usually is), checked
 * with getaddrinfo, which reads /etc/hosts first. "": none. */
static char g_resolve_name[256];

static void find_resolvable_name(void)
{
    FILE *f = fopen("/etc/hosts", "r");
    if (!f) return;
    char line[512];
    while (!g_resolve_name[0] && fgets(line, sizeof line, f)) {
        char *save = NULL, *n = strtok_r(line, " \t\n", &save);
        if (!n || strcmp(n, "127.0.0.1") != 0) continue;
        while (!g_resolve_name[0] && (n = strtok_r(NULL, " \t\n", &save)) &&
               n[0] != '#') {
            if (strcasestr(n, "localhost")) continue;
            struct addrinfo hints = {.ai_family = AF_INET,
                                     .ai_socktype = SOCK_STREAM}, *res;
            if (getaddrinfo(n, NULL, &hints, &res) != 0) continue;
            struct sockaddr_in *a = (struct sockaddr_in *)res->ai_addr;
            if (a->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
                snprintf(g_resolve_name, sizeof g_resolve_name, "%s", n);
            freeaddrinfo(res);
        }
    }
    fclose(f);
}

/* Each client resolves the name once (libcurl caches it per client) on
 * its resolver thread, whose socketpair libcurl watches through tulip and
 * then closes without the close callback, while the other clients'
 * connections, closed after every response, open and close: numbers of
 * the socketpair come back at once as connections. */
static int resolving_client(void *arg)
{
    (void)arg;
    enum { N = 6 };
    tl_curl *c;
    TINY_ASSERT_EQ(tl_curl_new(&c, NULL), 0);
    for (int i = 0; i < N; i++) {
        char u[400];
        snprintf(u, sizeof u, "http://%s:%d%s", g_resolve_name, g_port,
                 i % 2 ? "/close/small.json" : "/close/static.txt");
        tl_curl_response r;
        FETCH(c, u, 200, &r);
        TINY_ASSERT_EQ(r.body_len, i % 2 ? 13 : STATIC_SIZE);
        tl_curl_response_free(&r);
    }
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}

static int t_resolver(void *arg)
{
    (void)arg;
    enum { K = TULIP_TEST_SANITIZED ? 6 : 16 };
    tl_task t[K];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < K; i++)
            TINY_ASSERT_EQ(tl_spawn(&t[i], resolving_client, NULL), 0);
        for (int i = 0; i < K; i++) {
            int st = -1;
            TINY_ASSERT_EQ(tl_join(t[i], &st), 0);
            TINY_ASSERT_EQ(st, 0);
        }
    }
    return 0;
}

TINY_TEST(threaded_resolver)
{
    find_resolvable_name();
    if (!g_resolve_name[0])
        TINY_SKIP("no name but localhost maps to 127.0.0.1 in /etc/hosts");
    fprintf(stderr, "  resolving \"%s\"\n", g_resolve_name);
    run(t_resolver);
}

static int t_https_refused(void *arg)
{
    (void)arg;
    tl_curl *c;
    TINY_ASSERT_EQ(tl_curl_new(&c, NULL), 0); /* the system's CAs only */
    tl_curl_response r;
    int rc = tl_curl_get(c, surl("/small.json"), &r);
    TINY_ASSERT_EQ(rc, -EKEYREJECTED);
    TINY_ASSERT_STR_CONTAINS(tl_fail_message(rc), "certificate");
    TINY_ASSERT_EQ(r.body, NULL);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(https_refused) { run(t_https_refused); }

static int t_https_verified(void *arg)
{
    (void)arg;
    tl_curl *c;
    tl_curl_opts o = {.ca_file = g_ca};
    TINY_ASSERT_EQ(tl_curl_new(&c, &o), 0);
    tl_curl_response r;
    FETCH(c, surl("/static.txt"), 200, &r);
    TINY_ASSERT_EQ(r.http_version, 20);
    TINY_ASSERT_EQ(r.body_len, STATIC_SIZE);
    tl_curl_response_free(&r);
    /* The name in the certificate, through the resolver. */
    char u[128];
    snprintf(u, sizeof u, "https://localhost:%d/small.json", g_tls_port);
    FETCH(c, u, 200, &r);
    TINY_ASSERT_STR_EQ(r.body, "{\"ok\": true}\n");
    tl_curl_response_free(&r);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(https_verified) { run(t_https_verified); }

/* HTTP/2: twenty concurrent requests share one connection; then a slow
 * one rides on it beside twenty more, and is cancelled (its stream reset)
 * without disturbing the connection. */
static long h2_batch(tl_curl *c, int n, int *ok)
{
    struct getter g[20];
    tl_task t[20];
    getters_start(g, t, n, c, surl("/trickle"), surl("/static.txt"));
    long opened = getters_join(g, t, n);
    *ok += n; /* getters_join fails the test unless all answered 200 */
    return opened;
}

static int t_http2_multiplex(void *arg)
{
    (void)arg;
    tl_curl *c;
    tl_curl_opts o = {.ca_file = g_ca, .max_concurrent = 21};
    TINY_ASSERT_EQ(tl_curl_new(&c, &o), 0);
    int ok = 0;
    TINY_ASSERT_EQ(h2_batch(c, 20, &ok), 1);

    struct getter slow;
    getter_init(&slow, c, surl("/slow"));
    tl_task ts;
    TINY_ASSERT_EQ(tl_spawn(&ts, getter_fn, &slow), 0);
    while (tl_curl_in_flight(c) == 0) TINY_ASSERT_EQ(tl_sleep(0.01), 0);
    TINY_ASSERT_EQ(h2_batch(c, 20, &ok), 0);
    TINY_ASSERT_EQ(tl_curl_in_flight(c), 1);
    TINY_ASSERT_EQ(tl_cancel(ts), 0);
    int st;
    TINY_ASSERT_EQ(tl_join(ts, &st), 0);
    TINY_ASSERT_EQ(st, -ECANCELED);
    tl_curl_response r;
    FETCH(c, surl("/small.json"), 200, &r);
    TINY_ASSERT_EQ(r.http_version, 20);
    TINY_ASSERT_EQ(r.new_connections, 0);
    tl_curl_response_free(&r);
    TINY_ASSERT_EQ(ok, 40);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(http2_multiplex) { run(t_http2_multiplex); }

static int t_errors(void *arg)
{
    (void)arg;
    tl_curl *c;
    tl_curl_opts o = {.max_body = 1000};
    TINY_ASSERT_EQ(tl_curl_new(&c, &o), 0);
    tl_curl_response r;
    char u[64];
    int port = free_port();
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", port);
    int rc = tl_curl_get(c, u, &r);
    TINY_ASSERT_EQ(rc, -ECONNREFUSED);
    /* curl's own words, once: the error buffer names the address. */
    const char *m = tl_fail_message(rc);
    char want[64];
    snprintf(want, sizeof want, "curl: Failed to connect to 127.0.0.1 port %d", port);
    TINY_ASSERT(m != NULL && strncmp(m, want, strlen(want)) == 0);
    const char *once = strstr(m, "Couldn't connect to server");
    TINY_ASSERT(once != NULL && strstr(once + 1, "Couldn't connect to server") == NULL);
    TINY_ASSERT_EQ(tl_curl_get(c, "not a url at all", &r), -EINVAL);
    TINY_ASSERT_EQ(tl_curl_get(c, "file:///etc/passwd", &r), -EINVAL);
    TINY_ASSERT_EQ(tl_curl_get(c, url("/static.txt"), &r), -EFBIG);
    TINY_ASSERT_EQ(tl_curl_get(c, NULL, &r), -EINVAL);
    TINY_ASSERT_EQ(tl_curl_get(NULL, url("/"), &r), -EINVAL);
    /* Busy while a stream is open. */
    tl_curl_request req = {.url = url("/small.json")};
    tl_curl_stream *s;
    TINY_ASSERT_EQ(tl_curl_stream_open(c, &req, &s), 0);
    TINY_ASSERT_EQ(tl_curl_close(c), -EBUSY);
    tl_curl_stream_close(s);
    TINY_ASSERT_EQ(tl_curl_close(c), 0);
    return 0;
}
TINY_TEST(errors) { run(t_errors); }

TINY_TEST(outside_a_task)
{
    tl_curl *c;
    TINY_ASSERT_EQ(tl_curl_new(&c, NULL), TL_ENOTASK);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int rc = start_server();
    if (rc == 77) {
        fprintf(stderr, "skipped: nginx (with its echo module) or openssl not installed\n");
        return 77;
    }
    if (rc != 0) {
        fprintf(stderr, "could not start nginx\n");
        stop_server();
        return 1;
    }
    if (!getenv("TINY_TIMEOUT"))
        setenv("TINY_TIMEOUT", TULIP_TEST_SANITIZED ? "90" : "30", 1);
    rc = tiny_main("test_curl", argc, argv);
    stop_server();
    return rc;
}
