/* The seed's httpx snippet, live: a client, a GET, the JSON body printed.
 *
 *     async def main():
 *         async with httpx.AsyncClient() as client:
 *             resp = await client.get("https://api.example.com")
 *             data = resp.json()
 *
 * libtulip-curl (tulip/curl.h) is the AsyncClient: libcurl does the HTTP,
 * tulip waits on its sockets, so the GET suspends only this task. The
 * server is nginx (Debian's nginx-light), started here on a free loopback
 * port serving a JSON file, and stopped by its PID at the end. A second
 * GET on the same client reuses the kept-alive connection, and a request
 * to a port where nothing listens fails with a negative code and
 * libcurl's message, the C form of httpx.ConnectError.
 */
#include <stdio.h>

#include <tulip/curl.h>

#include "demo_servers.h"

static int port;

/* async def main() */
static int main_task(void *arg)
{
    (void)arg;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/item.json", port);

    /* async with httpx.AsyncClient() as client: */
    tl_curl *client;
    int rc = tl_curl_new(&client, NULL);
    if (rc < 0) return rc;

    /* resp = await client.get(url) */
    tl_curl_response resp;
    rc = tl_curl_get(client, url, &resp);
    if (rc == 0) {
        const char *type = tl_curl_header_get(&resp, "Content-Type");
        printf("GET %s\n  -> HTTP %ld, %s, %zu bytes, a new connection\n", url,
               resp.status, type ? type : "?", resp.body_len);
        printf("  resp.json(): %s", resp.body);
        if (resp.status != 200) rc = tl_fail(-EPROTO, "HTTP %ld", resp.status);
    }
    tl_curl_response_free(&resp);

    /* The same client again: httpx keeps the connection alive. */
    if (rc == 0) {
        rc = tl_curl_get(client, url, &resp);
        if (rc == 0)
            printf("GET again -> HTTP %ld, connections opened: %ld (reused)\n", resp.status,
                   resp.new_connections);
        if (rc == 0 && resp.new_connections != 0)
            rc = tl_fail(-EPROTO, "the second GET did not reuse the connection");
        tl_curl_response_free(&resp);
    }

    /* httpx.ConnectError: nothing listens on port 1. */
    if (rc == 0) {
        int err = tl_curl_get(client, "http://127.0.0.1:1/", &resp);
        printf("GET http://127.0.0.1:1/ -> %s (%s)\n", tl_errname(err),
               tl_fail_message(err));
        if (err != -ECONNREFUSED) rc = tl_fail(-EPROTO, "expected -ECONNREFUSED");
        tl_curl_response_free(&resp);
    }

    int crc = tl_curl_close(client); /* the `async with` ends */
    return rc < 0 ? rc : crc;
}

int main(void)
{
    demo_begin();
    puts("  # Python: async with httpx.AsyncClient() as client:");
    puts("  #             resp = await client.get(url); data = resp.json()");
    puts("  # C:      tl_curl_new(&client, NULL); tl_curl_get(client, url, &resp);");
    puts("  #         ... resp.body ...; tl_curl_response_free(&resp); tl_curl_close(client);");
    const char *const www[] = { /* nginx's root: name, content */
        "item.json",
        "{\"id\": 14, \"chapter\": \"Asyncio intro\", \"tags\": [\"async\", \"await\"]}\n",
        NULL};
    port = demo_nginx_start(www, NULL, 0);
    if (port == -DEMO_SKIPPED) return DEMO_SKIPPED;
    if (port < 0) return demo_start_failed();
    if (demo_servers_ready() < 0) return 1;
    printf("nginx listening on 127.0.0.1:%d (pid %d)\n", port, (int)demo_children[0].pid);
    int rc = tl_run(main_task, NULL);
    demo_stop_all();
    printf("nginx stopped (SIGTERM to its PID)\n");
    return rc == 0 ? 0 : 1;
}
