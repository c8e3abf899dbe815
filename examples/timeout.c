/* Timeouts — asyncio.timeout (3.11+).
 *
 *     async def main():
 *         try:
 *             async with asyncio.timeout(5):
 *                 data = await fetch("https://slow.example.com")
 *         except TimeoutError:
 *             print("didn't make it in 5 seconds")
 *
 * Scaled down: a 0.5 s timeout around a fetch that takes 1 s. Inside the
 * block the cancelled wait returns -ECANCELED (asyncio's CancelledError);
 * at the block's boundary the verdict is -ETIMEDOUT (TimeoutError). The
 * older form, asyncio.wait_for(coro, timeout), is tl_wait_for.
 */
#include <errno.h>
#include <stdio.h>

#include <tulip.h>

struct fetch {
    const char *url;
    double seconds;
    char result[48];
    int inner_rc; /* what the cancelled wait returned inside the block */
};

static int fetch(void *arg)
{
    struct fetch *f = arg;
    int rc = tl_sleep(f->seconds);
    f->inner_rc = rc;
    if (rc < 0) return rc;
    snprintf(f->result, sizeof f->result, "data from %s", f->url);
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    double t0 = tl_now();
    struct fetch slow = {"https://slow.example.com", 1.0, "", 0};
    int rc;
    TL_WITH_TIMEOUT(0.5, &rc) {
        rc = fetch(&slow); /* data = await fetch(...) */
    }
    printf("[%.2f s] inside the block the wait returned -%s; the block's "
           "verdict is -%s\n", tl_now() - t0, tl_errname(slow.inner_rc),
           tl_errname(rc));
    if (rc == -ETIMEDOUT) puts("didn't make it in 0.5 seconds");
    int ok = rc == -ETIMEDOUT && slow.inner_rc == -ECANCELED;

    /* A fast one makes it: the verdict is the body's own result. */
    struct fetch fast = {"https://fast.example.com", 0.1, "", 0};
    TL_WITH_TIMEOUT(0.5, &rc) {
        rc = fetch(&fast);
    }
    printf("fast fetch under the same timeout -> %d: '%s'\n", rc,
           fast.result);
    ok = ok && rc == 0;

    /* asyncio.wait_for(fetch(url), timeout=0.5) */
    struct fetch slow2 = {"https://slow.example.com", 1.0, "", 0};
    rc = tl_wait_for(TL_CALL(fetch, &slow2), 0.5);
    printf("tl_wait_for(TL_CALL(fetch, &slow), 0.5) -> -%s\n",
           tl_errname(rc));
    return ok && rc == -ETIMEDOUT ? 0 : 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: async with asyncio.timeout(5): data = await "
         "fetch(\"https://slow.example.com\")");
    puts("  # C:      TL_WITH_TIMEOUT(0.5, &rc) { rc = fetch(&slow); }  "
         "if (rc == -ETIMEDOUT) ...");
    return tl_run(main_task, NULL) == 0 ? 0 : 1;
}
