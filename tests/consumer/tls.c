/* The install_consumer test's libtulip-tls program: built against the
 * installed prefix with `pkg-config tulip-tls` and with
 * find_package(tulip COMPONENTS tls) (no peer needed: a
 * client context with the system's CAs, and a server context whose files
 * do not exist refused cleanly). */
#include <stdio.h>
#include <tulip/tls.h>

static int run(void *arg)
{
    (void)arg;
    tl_tls_ctx *c = NULL;
    if (tl_tls_client_ctx(&c, NULL) != 0) return 1;
    tl_tls_ctx_free(c);
    c = NULL;
    int rc = tl_tls_server_ctx(&c, "/nonexistent-tulip-consumer.crt",
                               "/nonexistent-tulip-consumer.key", NULL);
    return rc == -ENOENT && c == NULL ? 0 : 1;
}

int main(void)
{
    if (tl_run(run, NULL) != 0) return 1;
    puts("tulip consumer ok");
    return 0;
}
