/* The install_consumer test's libtulip-pg program: built against the
 * installed prefix with `pkg-config tulip-pg` and with
 * find_package(tulip COMPONENTS pg) (no server needed:
 * a connect to a socket folder that does not exist must fail cleanly). */
#include <stdio.h>
#include <tulip/pg.h>

static int run(void *arg)
{
    (void)arg;
    tl_pg *c = NULL;
    int rc = tl_pg_connect(&c, "host=/nonexistent-tulip-consumer user=x");
    return rc == -ECONNREFUSED && c == NULL ? 0 : 1;
}

int main(void)
{
    if (tl_run(run, NULL) != 0) return 1;
    puts("tulip consumer ok");
    return 0;
}
