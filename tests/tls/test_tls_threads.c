/* libtulip-tls across threads: two loops, each in its own pthread, make
 * TLS connections one after the other through one client context and one
 * server context that both loops share, so the client context's session
 * cache (one mutex, one entry per peer: both loops' peers have the same
 * key here) takes and stores tickets from both threads while OpenSSL
 * handshakes in both. Every handshake must succeed and some resume. Run
 * by the TSan stage (label thread), where a race in the cache, the
 * contexts' reference counts or a connection's teardown is a report.
 * Skipped (77) without openssl. */
/* tulip-test-labels: thread */
#include "tiny.h"

#include <tulip/tls.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "tls_certs.h"

#ifndef TULIP_TEST_SANITIZED
#define TULIP_TEST_SANITIZED 0
#endif

/* Connections per thread: TSan counts every fiber as a thread and runs
 * OpenSSL's handshakes slowly. */
#define CONNS (TULIP_TEST_SANITIZED ? 12 : 40)
#define THREADS 2

static tl_tls_ctx *g_sc, *g_cc;
static pthread_barrier_t g_start;
static atomic_int g_resumed, g_done;

typedef struct server {
    int fd;
    int rc;
} server;

/* Handshake, echo one line, end. */
static int server_task(void *arg)
{
    server *sv = arg;
    tl_stream *s = NULL;
    sv->rc = tl_tls_accept(&s, g_sc, sv->fd, NULL);
    if (sv->rc < 0) {
        if (tl_close(sv->fd)) {}
        return 0;
    }
    char b[64];
    ssize_t n = tl_stream_readline(s, b, sizeof b);
    if (n > 0 && tl_stream_write(s, b, (size_t)n) == 0) {
        if (tl_stream_drain(s)) {}
    }
    /* The client's close_notify, so the connection ends cleanly. */
    while (tl_stream_read(s, b, sizeof b) > 0) {}
    if (tl_stream_wait_closed(s)) {}
    return 0;
}

static int loop_main(void *arg)
{
    int id = *(int *)arg;
    for (int i = 0; i < CONNS; i++) {
        int sp[2];
        TINY_ASSERT_EQ(tl_socketpair(SOCK_STREAM, sp), 0);
        server sv = {.fd = sp[1]};
        tl_task t;
        TINY_ASSERT_EQ(tl_spawn(&t, server_task, &sv), 0);
        tl_stream *s = NULL;
        int rc = tl_tls_connect(&s, g_cc, sp[0], "localhost", NULL);
        if (rc < 0) {
            const char *m = tl_fail_message(rc);
            fprintf(stderr, "thread %d conn %d: %d %s\n", id, i, rc, m ? m : "");
        }
        TINY_ASSERT_EQ(rc, 0);
        char line[64], back[64];
        int k = snprintf(line, sizeof line, "thread %d conn %d\n", id, i);
        TINY_ASSERT_EQ(tl_stream_write(s, line, (size_t)k), 0);
        /* Reading the echo also takes in the server's tickets, which go to
         * the shared cache from this thread. */
        TINY_ASSERT_EQ(tl_stream_readline(s, back, sizeof back), k);
        TINY_ASSERT_STR_EQ(back, line);
        if (tl_tls_resumed(s)) atomic_fetch_add(&g_resumed, 1);
        TINY_ASSERT_EQ(tl_stream_wait_closed(s), 0);
        TINY_ASSERT_EQ(tl_join(t, NULL), 0);
        TINY_ASSERT_EQ(sv.rc, 0);
        atomic_fetch_add(&g_done, 1);
    }
    return 0;
}

static void *thread_main(void *arg)
{
    pthread_barrier_wait(&g_start);
    return (void *)(intptr_t)tl_run(loop_main, arg);
}

TINY_TEST(two_loops_share_one_client_context)
{
    tl_tls_server_opts so = {0};
    TINY_ASSERT_EQ(tl_tls_server_ctx(&g_sc, g_crt, g_key, &so), 0);
    tl_tls_client_opts co = {.ca_file = g_ca};
    TINY_ASSERT_EQ(tl_tls_client_ctx(&g_cc, &co), 0);
    TINY_ASSERT_EQ(pthread_barrier_init(&g_start, NULL, THREADS), 0);
    pthread_t th[THREADS];
    int ids[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ids[i] = i;
        TINY_ASSERT_EQ(pthread_create(&th[i], NULL, thread_main, &ids[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        void *rc;
        TINY_ASSERT_EQ(pthread_join(th[i], &rc), 0);
        TINY_ASSERT_EQ((intptr_t)rc, 0);
    }
    pthread_barrier_destroy(&g_start);
    fprintf(stderr, "  %d connections, %d resumed\n", atomic_load(&g_done),
            atomic_load(&g_resumed));
    TINY_ASSERT_EQ(atomic_load(&g_done), THREADS * CONNS);
    /* Each thread's later connections find a ticket unless the other
     * thread just took it: at least some resume, whatever the timing. */
    TINY_ASSERT(atomic_load(&g_resumed) > 0);
    tl_tls_ctx_free(g_cc);
    tl_tls_ctx_free(g_sc);
}

int main(int argc, char **argv)
{
    make_certs();
    if (!getenv("TINY_TIMEOUT"))
        setenv("TINY_TIMEOUT", TULIP_TEST_SANITIZED ? "120" : "60", 1);
    int rc = tiny_main("test_tls_threads", argc, argv);
    remove_certs();
    return rc;
}
