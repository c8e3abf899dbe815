/* TaskGroup (3.11+) — the new standard, and exercise 2.
 *
 *     async def main():
 *         async with asyncio.TaskGroup() as tg:
 *             a = tg.create_task(fetch("a"))
 *             b = tg.create_task(fetch("b"))
 *             c = tg.create_task(fetch("c"))
 *
 *         print(a.result(), b.result(), c.result())
 *
 * Exercise 2: make one task raise, and watch the others get cleaned up and
 * the failures bundled into an ExceptionGroup.
 *
 * In C the `async with` block is tl_group_enter ... tl_group_wait; the
 * group's verdict is the first real failure, and tl_group_wait can hand
 * back every failure (task name, code, tl_fail message): the
 * ExceptionGroup. tl_errors_print prints it in Python's shape.
 */
#include <errno.h>
#include <stdio.h>

#include <tulip.h>

struct fetch {
    const char *url;
    double until; /* absolute tl_now() time the "response" arrives */
    int fail;     /* negative: fail with this code when it arrives */
    char result[32];
    int cleaned_up;
};

static double t0;

static int fetch(void *arg)
{
    struct fetch *f = arg;
    int rc = tl_sleep_until(f->until);
    if (rc == -ECANCELED) {
        /* except CancelledError: clean up, then let it propagate */
        printf("[%.2f s] fetch %s: cancelled -> closing its connection\n",
               tl_now() - t0, f->url);
        f->cleaned_up = 1;
        return rc;
    }
    if (rc < 0) return rc;
    if (f->fail) {
        printf("[%.2f s] fetch %s: raises -%s\n", tl_now() - t0, f->url,
               tl_errname(f->fail));
        return tl_fail(f->fail, "fetch %s: %s", f->url,
                       f->fail == -ECONNREFUSED ? "server said no"
                                                : "bad response");
    }
    snprintf(f->result, sizeof f->result, "data from %s", f->url);
    return 0;
}

/* tg.create_task(fetch(url)), with the task named after its URL. */
static int create_task(tl_group tg, struct fetch *f, int *status)
{
    char name[32];
    snprintf(name, sizeof name, "fetch %s", f->url);
    return tl_group_spawn_call(tg, TL_CALL_NAMED(fetch, f, name), status);
}

static int happy_path(void)
{
    t0 = tl_now();
    struct fetch a = {"a", t0 + 1, 0, "", 0}, b = {"b", t0 + 1, 0, "", 0},
                 c = {"c", t0 + 1, 0, "", 0};
    int sa, sb, sc;
    tl_group tg;
    int rc = tl_group_enter(&tg); /* async with TaskGroup() as tg: */
    if (rc < 0) return rc;
    create_task(tg, &a, &sa);
    create_task(tg, &b, &sb);
    create_task(tg, &c, &sc);
    rc = tl_group_wait(tg, 0, NULL); /* end of the async with block */
    printf("group -> %d after %.2f s: %s, %s, %s\n", rc, tl_now() - t0,
           a.result, b.result, c.result);
    return rc;
}

static int exercise2(void)
{
    /* "b" and "c" fail at the same instant (0.3 s); "a" and "d" are still
     * waiting then, so the group cancels them and they clean up. */
    t0 = tl_now();
    struct fetch a = {"a", t0 + 1.0, 0, "", 0},
                 b = {"b", t0 + 0.3, -ECONNREFUSED, "", 0},
                 c = {"c", t0 + 0.3, -EPROTO, "", 0},
                 d = {"d", t0 + 2.0, 0, "", 0};
    int sa, sb, sc, sd;
    tl_group tg;
    int rc = tl_group_enter(&tg);
    if (rc < 0) return rc;
    create_task(tg, &a, &sa);
    create_task(tg, &b, &sb);
    create_task(tg, &c, &sc);
    create_task(tg, &d, &sd);
    tl_errors errs;
    rc = tl_group_wait(tg, 0, &errs);
    printf("[%.2f s] group -> -%s (the first failure); statuses a=-%s "
           "b=-%s c=-%s d=-%s\n", tl_now() - t0, tl_errname(rc),
           tl_errname(sa), tl_errname(sb), tl_errname(sc), tl_errname(sd));
    puts("ExceptionGroup (tl_group_wait's error list):");
    tl_errors_print(&errs, stdout);
    int ok = rc == -ECONNREFUSED && errs.count == 2 && a.cleaned_up &&
             d.cleaned_up && sa == -ECANCELED && sd == -ECANCELED;
    tl_errors_free(&errs);
    return ok ? 0 : -EPROTO;
}

static int main_task(void *arg)
{
    (void)arg;
    if (happy_path() != 0) return 1;
    puts("-- exercise 2: two tasks fail, the group cancels the rest:");
    return exercise2() == 0 ? 0 : 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: async with asyncio.TaskGroup() as tg: "
         "a = tg.create_task(fetch(\"a\")) ...");
    puts("  # C:      tl_group_enter(&tg); tl_group_spawn_call(tg, "
         "TL_CALL(fetch, &a), &status); ... tl_group_wait(tg, 0, &errs);");
    return tl_run(main_task, NULL) == 0 ? 0 : 1;
}
