/* asyncio.gather — classic form.
 *
 *     async def main():
 *         a, b, c = await asyncio.gather(
 *             fetch("a"),
 *             fetch("b"),
 *             fetch("c"),
 *         )
 *
 * gather starts the calls concurrently and returns once they all finished.
 * In C each call is a tl_call (a function and its argument: C's coroutine
 * object) and statuses[i] receives call i's return value, like
 * gather(..., return_exceptions=True). A failure does not cancel the
 * others: "gather (without options) just keeps going", which the second
 * half shows.
 */
#include <errno.h>
#include <stdio.h>

#include <tulip.h>

struct fetch {
    const char *url;
    double delay; /* seconds the "network" takes */
    int fail;     /* non-zero: the server refuses */
    char result[32];
};

static double t0;

static int fetch(void *arg)
{
    struct fetch *f = arg;
    int rc = tl_sleep(f->delay);
    if (rc < 0) return rc;
    if (f->fail) {
        printf("[%.2f s] fetch %s: connection refused\n", tl_now() - t0,
               f->url);
        return tl_fail(-ECONNREFUSED, "fetch %s: connection refused", f->url);
    }
    snprintf(f->result, sizeof f->result, "data from %s", f->url);
    printf("[%.2f s] fetch %s: done\n", tl_now() - t0, f->url);
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    t0 = tl_now();

    /* a, b, c = await asyncio.gather(fetch("a"), fetch("b"), fetch("c")) */
    struct fetch a = {"a", 1.0, 0, ""}, b = {"b", 1.0, 0, ""},
                 c = {"c", 1.0, 0, ""};
    tl_call calls[] = {TL_CALL(fetch, &a), TL_CALL(fetch, &b),
                       TL_CALL(fetch, &c)};
    int st[3];
    int rc = tl_gather(3, calls, st);
    printf("gather -> %d; a, b, c = '%s', '%s', '%s' after %.2f s\n", rc,
           a.result, b.result, c.result, tl_now() - t0);
    if (rc != 0) return 1;

    /* One call fails at 0.3 s; the other two keep going to the end. */
    puts("-- fetch(\"y\") fails; gather does not cancel the others:");
    t0 = tl_now();
    struct fetch x = {"x", 1.0, 0, ""}, y = {"y", 0.3, 1, ""},
                 z = {"z", 1.0, 0, ""};
    tl_call calls2[] = {TL_CALL(fetch, &x), TL_CALL(fetch, &y),
                        TL_CALL(fetch, &z)};
    rc = tl_gather(3, calls2, st);
    printf("gather -> -%s after %.2f s; statuses: [%d, -%s, %d]\n",
           tl_errname(rc), tl_now() - t0, st[0], tl_errname(st[1]), st[2]);
    /* Unlike asyncio, tl_gather returns only once every child finished:
     * the children write the caller's memory (x, y, z live on this stack). */
    return rc == -ECONNREFUSED && st[0] == 0 && st[2] == 0 ? 0 : 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: a, b, c = await asyncio.gather(fetch(\"a\"), "
         "fetch(\"b\"), fetch(\"c\"))");
    puts("  # C:      rc = tl_gather(3, (tl_call[]){TL_CALL(fetch, &a), ...}, "
         "statuses);");
    int rc = tl_run(main_task, NULL);
    return rc == 0 ? 0 : 1;
}
