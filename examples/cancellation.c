/* Cancellation.
 *
 *     task = asyncio.create_task(fetch("a"))
 *     await asyncio.sleep(0.5)
 *     task.cancel()    # CancelledError is raised inside the task
 *
 * In C, tl_cancel(task) makes every suspending call in that task return
 * -ECANCELED from then on (level-triggered: not just once), so the task
 * unwinds through its ordinary error paths and runs its cleanup — the
 * `try/except CancelledError` pattern. Its join then reports the task's
 * status: -ECANCELED.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tulip.h>

static double t0;

struct fetch {
    const char *url;
    char *buffer; /* a resource the task must release */
};

static int fetch(void *arg)
{
    struct fetch *f = arg;
    printf("[%.2f s] fetch %s: connecting (takes 1 s)\n", tl_now() - t0,
           f->url);
    f->buffer = malloc(4096);
    if (!f->buffer) return -ENOMEM;
    int rc = tl_sleep(1.0);
    if (rc == -ECANCELED) {
        printf("[%.2f s] fetch %s: cancelled -> cleanup: free the buffer, "
               "close the socket\n", tl_now() - t0, f->url);
        /* Level-triggered: any further wait fails at once too. */
        int again = tl_sleep(1.0);
        printf("[%.2f s] fetch %s: a second wait in cleanup returns -%s at "
               "once\n", tl_now() - t0, f->url, tl_errname(again));
    } else if (rc == 0) {
        strcpy(f->buffer, "data from a");
        printf("fetch %s: %s\n", f->url, f->buffer);
    }
    free(f->buffer);
    f->buffer = NULL;
    return rc;
}

static int main_task(void *arg)
{
    (void)arg;
    t0 = tl_now();
    struct fetch a = {"a", NULL};
    tl_task task;
    int rc = tl_spawn(&task, fetch, &a);
    if (rc < 0) return rc;
    rc = tl_sleep(0.5);
    if (rc < 0) return rc;
    printf("[%.2f s] main: tl_cancel(task)\n", tl_now() - t0);
    tl_cancel(task);
    int status;
    rc = tl_join(task, &status);
    printf("[%.2f s] main: tl_join -> %d, the task's status: -%s\n",
           tl_now() - t0, rc, tl_errname(status));
    return rc == 0 && status == -ECANCELED && !a.buffer ? 0 : 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: task = asyncio.create_task(fetch(\"a\")); await "
         "asyncio.sleep(0.5); task.cancel()");
    puts("  # C:      tl_spawn(&task, fetch, &a); tl_sleep(0.5); "
         "tl_cancel(task); tl_join(task, &status);");
    return tl_run(main_task, NULL) == 0 ? 0 : 1;
}
