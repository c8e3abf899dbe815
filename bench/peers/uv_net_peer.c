/* libuv peer of tools/bench-net.sh: an echo server and an HTTP/1.1
 * keep-alive hello world, each the way libuv's own examples write them.
 *
 *   uv_net_peer echo PORT   TCP echo on 127.0.0.1:PORT: uv_read_start,
 *                           and each chunk read is written back with
 *                           uv_write (the buffer released in its
 *                           callback)
 *   uv_net_peer http PORT   "Hello, World!" to every request, requests
 *                           parsed by http-parser (the parser Node used
 *                           before llhttp), keep-alive as the request asks
 *
 * Read buffers come from a free list of 64 KiB blocks rather than a
 * malloc and free per read as in libuv's book: on this VM a fresh page
 * costs a 15 us fault, and malloc gives 64 KiB blocks back to the kernel
 * often enough that the book's version spent most of its time faulting.
 *
 * One loop, one thread; runs until killed. Built by tools/bench-net.sh
 * with `pkg-config --cflags --libs libuv` and -lhttp_parser.
 */
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static uv_loop_t *loop;
static int http_mode;

static const char response[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 14\r\n"
    "\r\n"
    "Hello, World!\n";

struct client {
    uv_tcp_t tcp;
    http_parser parser;
};

static http_parser_settings settings;

#define BUF_SIZE 65536
struct block {
    struct block *next;
};
static struct block *free_blocks;

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h, (void)suggested;
    struct block *b = free_blocks;
    if (b) free_blocks = b->next;
    else b = malloc(BUF_SIZE);
    buf->base = (char *)b;
    buf->len = b ? BUF_SIZE : 0;
}

static void release(char *base)
{
    if (!base) return;
    struct block *b = (struct block *)base;
    b->next = free_blocks;
    free_blocks = b;
}

static void close_cb(uv_handle_t *h) { free(h); }

static void echo_write_cb(uv_write_t *req, int status)
{
    (void)status;
    release(req->data);
    free(req);
}

static void http_write_cb(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static int on_message_complete(http_parser *p)
{
    struct client *c = p->data;
    uv_write_t *req = malloc(sizeof *req);
    if (!req) return -1;
    uv_buf_t b = uv_buf_init((char *)response, sizeof response - 1);
    if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, http_write_cb) < 0) {
        free(req);
        return -1;
    }
    if (!http_should_keep_alive(p)) uv_close((uv_handle_t *)&c->tcp, close_cb);
    return 0;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct client *c = (struct client *)s;
    if (n < 0) {
        release(buf->base);
        if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, close_cb);
        return;
    }
    if (n == 0) {
        release(buf->base);
        return;
    }
    if (!http_mode) {
        uv_write_t *req = malloc(sizeof *req);
        if (!req) abort();
        req->data = buf->base;
        uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
        if (uv_write(req, s, &b, 1, echo_write_cb) < 0) {
            release(buf->base);
            free(req);
            uv_close((uv_handle_t *)s, close_cb);
        }
        return;
    }
    size_t done = http_parser_execute(&c->parser, &settings, buf->base, (size_t)n);
    release(buf->base);
    if ((ssize_t)done != n || c->parser.http_errno != HPE_OK) {
        if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, close_cb);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) return;
    struct client *c = calloc(1, sizeof *c);
    if (!c) abort();
    uv_tcp_init(loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, close_cb);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "echo") && strcmp(argv[1], "http"))) {
        fprintf(stderr, "usage: uv_net_peer echo|http PORT\n");
        return 2;
    }
    http_mode = !strcmp(argv[1], "http");
    settings.on_message_complete = on_message_complete;
    loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", atoi(argv[2]), &addr);
    uv_tcp_init(loop, &server);
    int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&server, 1024, on_connection);
    if (rc) {
        fprintf(stderr, "uv_net_peer: listen: %s\n", uv_strerror(rc));
        return 1;
    }
    printf("listening on 127.0.0.1:%s\n", argv[2]);
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
