/* The install_consumer test's libtulip-curl program: built against the
 * installed prefix with `pkg-config tulip-curl` and with
 * find_package(tulip COMPONENTS curl) (no server needed:
 * a GET to a loopback port nobody listens on must fail cleanly). */
#include <stdio.h>
#include <tulip/curl.h>

static int run(void *arg)
{
    (void)arg;
    tl_curl *c = NULL;
    if (tl_curl_new(&c, NULL) != 0) return 1;
    tl_curl_response r = {0};
    int rc = tl_curl_get(c, "http://127.0.0.1:1/", &r);
    tl_curl_response_free(&r);
    if (tl_curl_close(c) != 0) return 1;
    return rc == -ECONNREFUSED ? 0 : 1;
}

int main(void)
{
    if (tl_run(run, NULL) != 0) return 1;
    puts("tulip consumer ok");
    return 0;
}
