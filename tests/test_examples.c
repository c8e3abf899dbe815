/* examples/echo_server and examples/http_server driven by programs tulip
 * did not write: the real curl and wrk, a client on plain blocking
 * sockets, Python's own asyncio (python3, standard library only). Each
 * server runs as a child process on a port it picked itself (PORT 0: the
 * test reads "listening on 127.0.0.1:PORT" from its stdout), inherits
 * TULIP_BACKEND (so each backend is tested) and is stopped by its PID;
 * every wait is bounded. A client tool that is not installed skips its
 * test (scripts/install-deps.sh installs them). http_server --tls is
 * fetched over HTTPS by the real curl with a certificate the openssl
 * command makes in a temporary folder (when libtulip-tls is built).
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#define T_TIMEOUT 60

/* ---- children ------------------------------------------------------------ */

/* Path of a built example: <build>/examples/<name>, beside <build>/tests. */
static int example_path(const char *name, char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash) return -1;
    *slash = 0;
    int w = snprintf(out, len, "%s/../examples/%s", self, name);
    if (w < 0 || (size_t)w >= len) return -1;
    return access(out, X_OK);
}

static int have_tool(const char *name)
{
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    char file[PATH_MAX];
    while (*path) {
        size_t k = strcspn(path, ":");
        int w = snprintf(file, sizeof file, "%.*s/%s", k ? (int)k : 1, k ? path : ".", name);
        if (w > 0 && (size_t)w < sizeof file && access(file, X_OK) == 0) return 1;
        path += k;
        if (*path == ':') path++;
    }
    return 0;
}

/* Wait up to `secs` for pid to exit; its wait status, or -1 (still
 * running: it is killed with SIGKILL and reaped). */
static int wait_exit(pid_t pid, double secs)
{
    double end = tl_test_now_s() + secs;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        if (r < 0) return -1;
        if (tl_test_now_s() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(10000);
    }
}

/* Read from fd into out (NUL-terminated) until EOF or `secs` pass.
 * Returns the byte count, or -1 on timeout. */
static ssize_t read_all(int fd, char *out, size_t len, double secs)
{
    size_t got = 0;
    double end = tl_test_now_s() + secs;
    for (;;) {
        double left = end - tl_test_now_s();
        if (left <= 0) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        char scratch[4096];
        char *dst = got + 1 < len ? out + got : scratch;
        size_t room = got + 1 < len ? len - 1 - got : sizeof scratch;
        ssize_t n = read(fd, dst, room);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            out[got] = 0;
            return (ssize_t)got;
        }
        if (dst != scratch) got += (size_t)n;
    }
    out[got] = 0;
    return -1;
}

/* Run argv[0] (found on PATH) with stdout and stderr captured into out;
 * at most `secs`. Returns the wait status, or -1 (it did not finish: it
 * was killed). */
static int run_tool(char *const argv[], char *out, size_t len, double secs)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    ssize_t n = read_all(p[0], out, len, secs);
    close(p[0]);
    if (n < 0) kill(pid, SIGKILL);
    return wait_exit(pid, n < 0 ? 5 : secs);
}

struct server {
    pid_t pid;
    int port;
    int out; /* the rest of its stdout */
};

/* Start examples/<name> with the options pre (up to 3, NULL-terminated;
 * NULL: none), then PORT 0 and arg2 (NULL: none), and read its port from
 * the first line of its stdout. Skips the test if the example was not
 * built (no http-parser). */
static struct server start_server_with(const char *name, const char *const *pre,
                                       const char *arg2)
{
    char path[PATH_MAX];
    if (example_path(name, path, sizeof path) != 0)
        cr_skip_test("examples/%s was not built (libhttp-parser-dev missing?)", name);
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(p[1], 1);
        char *argv[8] = {path};
        int k = 1;
        for (int i = 0; pre && pre[i] && i < 3; i++) argv[k++] = (char *)pre[i];
        argv[k++] = "0";
        argv[k++] = (char *)arg2;
        argv[k] = NULL;
        execv(path, argv);
        _exit(127);
    }
    close(p[1]);
    char line[128];
    size_t got = 0;
    double end = tl_test_now_s() + 20;
    while (got < sizeof line - 1 && tl_test_now_s() < end) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t n = read(p[0], line + got, 1);
        if (n <= 0) break;
        if (line[got] == '\n') break;
        got++;
    }
    line[got] = 0;
    int port = 0;
    const char *colon = strrchr(line, ':');
    if (strncmp(line, "listening on 127.0.0.1:", 23) == 0 && colon) port = atoi(colon + 1);
    if (port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cr_assert_fail("%s printed '%s' instead of its port", name, line);
    }
    return (struct server){.pid = pid, .port = port, .out = p[0]};
}

static struct server start_server(const char *name, const char *arg2)
{
    return start_server_with(name, NULL, arg2);
}

/* Send sig to the server; expect exit status 0 within 10 s. */
static void stop_server(struct server *s, int sig)
{
    cr_assert_eq(kill(s->pid, sig), 0);
    int st = wait_exit(s->pid, 10);
    close(s->out);
    cr_assert_neq(st, -1, "the server did not exit within 10 s of signal %d", sig);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the server ended with status 0x%x after signal %d", st, sig);
}

/* A blocking TCP connection to the server, with 10 s I/O timeouts. */
static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s",
                 strerror(errno));
    return fd;
}

/* Wait (bounded: 10 s) until the server has read everything the client
 * on fd sent: the server end's receive queue in /proc/net/tcp is empty.
 * This is what "the request is in progress" means to the server, with
 * no guess about how long it takes to get there. */
static int server_has_read(int fd, int server_port)
{
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    if (getsockname(fd, (struct sockaddr *)&me, &len) < 0) return 0;
    unsigned client_port = ntohs(me.sin_port);
    for (int tries = 0; tries < 1000; tries++) {
        FILE *f = fopen("/proc/net/tcp", "r");
        if (!f) return 0;
        char line[256];
        int found = 0;
        unsigned long rxq = 1;
        while (fgets(line, sizeof line, f)) {
            unsigned lport, rport;
            unsigned long txq, rx;
            if (sscanf(line, " %*d: %*8X:%X %*8X:%X %*X %lX:%lX", &lport,
                       &rport, &txq, &rx) == 4 &&
                lport == (unsigned)server_port && rport == client_port) {
                found = 1;
                rxq = rx;
            }
        }
        fclose(f);
        if (found && rxq == 0) return 1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        cr_assert_gt(n, 0, "send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static void recv_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        cr_assert_gt(n, 0, "recv: %s", n == 0 ? "end of stream" : strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static char url[64];
static const char *url_of(const struct server *s, const char *path)
{
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    return url;
}

/* ---- HTTP ----------------------------------------------------------------- */

Test(examples, curl_fetches_hello_twice_over_one_connection, .timeout = T_TIMEOUT)
{
    if (!have_tool("curl")) cr_skip_test("curl not installed");
    struct server s = start_server("http_server", NULL);
    char u1[64], u2[64], out[4096];
    snprintf(u1, sizeof u1, "%s", url_of(&s, "/"));
    snprintf(u2, sizeof u2, "%s", url_of(&s, "/second?x=1"));
    char *argv[] = {"curl", "-sS", "--max-time", "20", "-w", "[%{http_code} %{num_connects}]\n",
                    u1, u2, NULL};
    int st = run_tool(argv, out, sizeof out, 30);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "curl: 0x%x: %s", st, out);
    /* The second fetch reuses the first one's connection (keep-alive). */
    cr_expect_str_eq(out, "Hello, World!\n[200 1]\nHello, World!\n[200 0]\n");
    stop_server(&s, SIGTERM);
}

Test(examples, curl_connection_close_and_http10, .timeout = T_TIMEOUT)
{
    if (!have_tool("curl")) cr_skip_test("curl not installed");
    struct server s = start_server("http_server", NULL);
    char out[4096];
    char *argv[] = {"curl", "-sS", "-i", "--max-time", "20", "-H", "Connection: close",
                    (char *)url_of(&s, "/"), NULL};
    int st = run_tool(argv, out, sizeof out, 30);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "curl: 0x%x: %s", st, out);
    cr_expect(strstr(out, "HTTP/1.1 200 OK\r\n") == out, "%s", out);
    cr_expect(strstr(out, "Connection: close\r\n"), "%s", out);
    cr_expect(strstr(out, "\r\n\r\nHello, World!\n"), "%s", out);
    char *argv10[] = {"curl", "-sS", "--http1.0", "--max-time", "20", (char *)url_of(&s, "/"), NULL};
    st = run_tool(argv10, out, sizeof out, 30);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "curl: 0x%x: %s", st, out);
    cr_expect_str_eq(out, "Hello, World!\n");
    stop_server(&s, SIGTERM);
}

Test(examples, garbage_gets_400_and_the_server_keeps_serving, .timeout = T_TIMEOUT)
{
    struct server s = start_server("http_server", NULL);
    int fd = dial(s.port);
    send_all(fd, "NOT HTTP AT ALL\r\n\r\n", 19);
    char buf[512];
    ssize_t n = read_all(fd, buf, sizeof buf, 10);
    cr_expect_geq(n, 0, "the server did not close the connection");
    cr_expect(strncmp(buf, "HTTP/1.1 400 ", 13) == 0, "got '%s'", buf);
    close(fd);
    fd = dial(s.port);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, req, sizeof req - 1); /* two pipelined requests */
    const char one[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 14\r\n\r\nHello, World!\n";
    char two[2 * (sizeof one - 1) + 1] = {0};
    recv_all(fd, two, sizeof two - 1);
    cr_expect(strncmp(two, one, sizeof one - 1) == 0 &&
                  strncmp(two + sizeof one - 1, one, sizeof one - 1) == 0,
              "got '%s'", two);
    close(fd);
    stop_server(&s, SIGTERM);
}

Test(examples, wrk_three_seconds_without_an_error, .timeout = T_TIMEOUT)
{
    if (!have_tool("wrk")) cr_skip_test("wrk not installed");
    struct server s = start_server("http_server", NULL);
    char out[8192];
    char *argv[] = {"wrk", "-c64", "-t1", "-d3s", "--timeout", "10s", (char *)url_of(&s, "/"),
                    NULL};
    int st = run_tool(argv, out, sizeof out, 40);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "wrk: 0x%x: %s", st, out);
    const char *p = strstr(out, " requests in ");
    long requests = 0;
    if (p) {
        while (p > out && p[-1] != ' ' && p[-1] != '\n') p--;
        requests = atol(p);
    }
    cr_expect_gt(requests, 0, "%s", out);
    /* wrk prints these lines only when there were such errors. */
    cr_expect_null(strstr(out, "Non-2xx"), "%s", out);
    cr_expect_null(strstr(out, "Socket errors"), "%s", out);
    stop_server(&s, SIGTERM);
}

/* SIGTERM while a request is being answered (a 1 s per-request delay):
 * the answer still arrives whole, then the server exits 0. */
Test(examples, sigterm_mid_request_finishes_it_then_exits_zero, .timeout = T_TIMEOUT)
{
    struct server s = start_server("http_server", "1000");
    int fd = dial(s.port);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    /* SIGTERM once the server is inside the request (its 1 s delay):
     * sent earlier, the connection is still idle to the server, and a
     * graceful stop rightly closes idle connections. */
    cr_assert(server_has_read(fd, s.port), "the server never read the request");
    cr_assert_eq(kill(s.pid, SIGTERM), 0);
    char buf[512];
    ssize_t n = read_all(fd, buf, sizeof buf, 15);
    cr_expect_geq(n, 0, "the server did not close the connection after answering");
    cr_expect(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf && strstr(buf, "Hello, World!\n"),
              "got '%s'", buf);
    close(fd);
    int st = wait_exit(s.pid, 10);
    close(s.out);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
}

Test(examples, http_server_sigint_exits_zero, .timeout = T_TIMEOUT)
{
    struct server s = start_server("http_server", NULL);
    int idle = dial(s.port); /* an idle keep-alive client does not hold it */
    stop_server(&s, SIGINT);
    close(idle);
}

/* ---- HTTPS (http_server --tls) -------------------------------------------- */

#ifndef TULIP_EXAMPLES_TLS
#define TULIP_EXAMPLES_TLS 0
#endif

static char tls_dir[64], tls_cert[128], tls_key[128];

/* A self-signed certificate for localhost and 127.0.0.1, made by the
 * openssl command in a fresh temporary folder. Skips the test without
 * curl, openssl or TLS in the example. */
static void make_cert(void)
{
    if (!TULIP_EXAMPLES_TLS) cr_skip_test("libtulip-tls not built (OpenSSL 3 missing?)");
    if (!have_tool("curl")) cr_skip_test("curl not installed");
    if (!have_tool("openssl")) cr_skip_test("openssl not installed");
    snprintf(tls_dir, sizeof tls_dir, "/tmp/tulip-https-XXXXXX");
    cr_assert(mkdtemp(tls_dir), "mkdtemp: %s", strerror(errno));
    snprintf(tls_cert, sizeof tls_cert, "%s/cert.pem", tls_dir);
    snprintf(tls_key, sizeof tls_key, "%s/key.pem", tls_dir);
    char out[4096];
    char *argv[] = {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", tls_key,
                    "-out", tls_cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", NULL};
    int st = run_tool(argv, out, sizeof out, 30);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "openssl: 0x%x: %s", st, out);
}

static void remove_cert(void)
{
    unlink(tls_cert);
    unlink(tls_key);
    rmdir(tls_dir);
}

static struct server start_https(void)
{
    const char *pre[] = {"--tls", tls_cert, tls_key, NULL};
    return start_server_with("http_server", pre, NULL);
}

Test(examples, https_curl_verifies_and_fetches_twice_over_one_connection,
     .timeout = T_TIMEOUT)
{
    make_cert();
    struct server s = start_https();
    char u1[64], u2[64], out[4096];
    snprintf(u1, sizeof u1, "https://127.0.0.1:%d/", s.port);
    snprintf(u2, sizeof u2, "https://127.0.0.1:%d/second?x=1", s.port);
    /* Verification on (curl's default), against the test's certificate. */
    char *argv[] = {"curl", "-sS", "--max-time", "20", "--cacert", tls_cert, "-w",
                    "[%{http_code} %{num_connects} %{ssl_verify_result}]\n", u1, u2, NULL};
    int st = run_tool(argv, out, sizeof out, 30);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "curl: 0x%x: %s", st, out);
    cr_expect_str_eq(out, "Hello, World!\n[200 1 0]\nHello, World!\n[200 0 0]\n");
    /* By name as well: the certificate names localhost (SNI sent). */
    char u3[96];
    snprintf(u3, sizeof u3, "https://localhost:%d/", s.port);
    char resolve[64];
    snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", s.port);
    char *argv3[] = {"curl", "-sS", "--max-time", "20", "--cacert", tls_cert,
                     "--resolve", resolve, u3, NULL};
    st = run_tool(argv3, out, sizeof out, 30);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "curl: 0x%x: %s", st, out);
    cr_expect_str_eq(out, "Hello, World!\n");
    stop_server(&s, SIGTERM);
    remove_cert();
}

Test(examples, https_unknown_certificate_refused_by_curl, .timeout = T_TIMEOUT)
{
    make_cert();
    struct server s = start_https();
    char u[64], out[4096];
    snprintf(u, sizeof u, "https://127.0.0.1:%d/", s.port);
    /* No --cacert: the self-signed certificate is nobody the system
     * trusts; curl refuses it (60: peer certificate cannot be verified). */
    char *argv[] = {"curl", "-sS", "--max-time", "20", u, NULL};
    int st = run_tool(argv, out, sizeof out, 30);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 60, "curl: 0x%x: %s", st, out);
    cr_expect_null(strstr(out, "Hello"), "%s", out);
    /* Plain HTTP to the HTTPS port: no answer, and the server goes on. */
    char plain[64];
    snprintf(plain, sizeof plain, "http://127.0.0.1:%d/", s.port);
    char *argvp[] = {"curl", "-sS", "--max-time", "20", plain, NULL};
    st = run_tool(argvp, out, sizeof out, 30);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0, "curl: 0x%x: %s", st, out);
    char *argv2[] = {"curl", "-sS", "--max-time", "20", "--cacert", tls_cert, u, NULL};
    st = run_tool(argv2, out, sizeof out, 30);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "curl: 0x%x: %s", st, out);
    cr_expect_str_eq(out, "Hello, World!\n");
    stop_server(&s, SIGTERM);
    remove_cert();
}

Test(examples, https_sigterm_with_a_client_mid_handshake_exits_zero, .timeout = T_TIMEOUT)
{
    make_cert();
    struct server s = start_https();
    int idle = dial(s.port);
    /* The first bytes of a ClientHello, and no more: once the server has
     * read them, its connection task is inside the handshake. */
    send_all(idle, "\x16\x03\x01\x00", 4);
    cr_assert(server_has_read(idle, s.port), "the server never read the hello");
    stop_server(&s, SIGTERM);
    close(idle);
    remove_cert();
}

Test(examples, http_server_tls_bad_key_fails_clearly, .timeout = T_TIMEOUT)
{
    make_cert();
    char path[PATH_MAX], out[4096];
    if (example_path("http_server", path, sizeof path) != 0)
        cr_skip_test("examples/http_server was not built");
    /* The certificate as its own key: refused before listening. */
    char *argv[] = {path, "--tls", tls_cert, tls_cert, "0", NULL};
    int st = run_tool(argv, out, sizeof out, 30);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "status 0x%x: %s", st, out);
    /* tl_run's report of main's failure, with OpenSSL's words. */
    cr_expect(strstr(out, "-EPROTO") && strstr(out, "tls: "), "%s", out);
    cr_expect_null(strstr(out, "listening"), "%s", out);
    remove_cert();
}

/* ---- echo ------------------------------------------------------------------ */

Test(examples, echo_with_blocking_sockets, .timeout = T_TIMEOUT)
{
    struct server s = start_server("echo_server", NULL);
    int fds[3];
    for (int i = 0; i < 3; i++) fds[i] = dial(s.port);
    /* Interleaved small messages on three connections. */
    for (int round = 0; round < 50; round++)
        for (int i = 0; i < 3; i++) {
            char msg[64], back[64];
            size_t len = 1 + (size_t)(round * 7 + i) % sizeof msg;
            for (size_t k = 0; k < len; k++) msg[k] = (char)(round + i + k);
            send_all(fds[i], msg, len);
            recv_all(fds[i], back, len);
            cr_expect(memcmp(msg, back, len) == 0, "round %d conn %d", round, i);
        }
    /* 1 MiB in 16 KiB chunks, each read back before the next. */
    static char big[16384], back[16384];
    for (int chunk = 0; chunk < 64; chunk++) {
        for (size_t k = 0; k < sizeof big; k++) big[k] = (char)(k * 31 + (size_t)chunk);
        send_all(fds[0], big, sizeof big);
        recv_all(fds[0], back, sizeof back);
        cr_assert(memcmp(big, back, sizeof big) == 0, "chunk %d", chunk);
    }
    /* Half-close: the server sees the end, sends the rest, closes. */
    send_all(fds[1], "last", 4);
    cr_assert_eq(shutdown(fds[1], SHUT_WR), 0);
    char tail[16];
    ssize_t n = read_all(fds[1], tail, sizeof tail, 10);
    cr_expect_eq(n, 4, "after a half-close: %zd bytes", n);
    cr_expect(n == 4 && memcmp(tail, "last", 4) == 0);
    for (int i = 0; i < 3; i++) close(fds[i]);
    stop_server(&s, SIGTERM);
}

static const char asyncio_client[] =
    "import asyncio, sys\n"
    "port = int(sys.argv[1])\n"
    "async def one(i):\n"
    "    r, w = await asyncio.open_connection('127.0.0.1', port)\n"
    "    for k in range(20):\n"
    "        line = f'conn {i} line {k}\\n'.encode()\n"
    "        w.write(line)\n"
    "        await w.drain()\n"
    "        got = await r.readline()\n"
    "        assert got == line, (got, line)\n"
    "    blob = (bytes(range(i, 256)) + bytes(range(i))) * 400\n"
    "    w.write(blob)\n"
    "    await w.drain()\n"
    "    assert await r.readexactly(len(blob)) == blob\n"
    "    w.write_eof()\n"
    "    assert await r.read() == b''\n"
    "    w.close()\n"
    "    await w.wait_closed()\n"
    "async def main():\n"
    "    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(20))), 20)\n"
    "    print('asyncio client: ok')\n"
    "asyncio.run(main())\n";

Test(examples, python_asyncio_client_against_echo_server, .timeout = T_TIMEOUT)
{
    /* Debian's own python3 first (the issue asks for it; a version
     * manager's shim on PATH may take seconds to start). */
    char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    if (py[0] != '/' && !have_tool("python3")) cr_skip_test("python3 not installed");
    struct server s = start_server("echo_server", NULL);
    char port[16], out[8192];
    snprintf(port, sizeof port, "%d", s.port);
    char *argv[] = {py, "-c", (char *)asyncio_client, port, NULL};
    int st = run_tool(argv, out, sizeof out, 40);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "python3: 0x%x: %s", st, out);
    cr_expect_str_eq(out, "asyncio client: ok\n");
    stop_server(&s, SIGTERM);
}

Test(examples, echo_server_sigint_with_clients_connected_exits_zero, .timeout = T_TIMEOUT)
{
    struct server s = start_server("echo_server", NULL);
    int fd = dial(s.port);
    send_all(fd, "x", 1);
    char c;
    recv_all(fd, &c, 1);
    stop_server(&s, SIGINT);
    /* The server closed the connection on its way out. */
    char buf[8];
    cr_expect_eq(read_all(fd, buf, sizeof buf, 10), 0);
    close(fd);
}
