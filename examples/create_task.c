/* Task — running a coroutine in the background.
 *
 *     async def main():
 *         task = asyncio.create_task(fetch("a"))
 *         # task is already running here
 *
 *         other_work()              # do other work
 *
 *         result = await task        # collect the result when needed
 *
 * tl_spawn is create_task: the task is scheduled at once and runs as soon
 * as main next suspends (exactly like asyncio: nothing runs "beside" main
 * until main waits on something). tl_join is `await task`. Here the other
 * work is itself asynchronous (0.5 s of waiting), so the two overlap and
 * the whole thing takes 1 s, not 1.5 s.
 */
#include <stdio.h>

#include <tulip.h>

struct fetch {
    const char *url;
    char result[32];
};

static double t0;

static int fetch(void *arg)
{
    struct fetch *f = arg;
    printf("[%.2f s] fetch %s: started (in the background)\n", tl_now() - t0,
           f->url);
    int rc = tl_sleep(1.0);
    if (rc < 0) return rc;
    snprintf(f->result, sizeof f->result, "data from %s", f->url);
    printf("[%.2f s] fetch %s: done\n", tl_now() - t0, f->url);
    return 0;
}

static int other_work(void)
{
    printf("[%.2f s] main: other work...\n", tl_now() - t0);
    int rc = tl_sleep(0.5);
    printf("[%.2f s] main: other work done\n", tl_now() - t0);
    return rc;
}

static int main_task(void *arg)
{
    (void)arg;
    t0 = tl_now();
    struct fetch a = {"a", ""};
    tl_task task;
    int rc = tl_spawn(&task, fetch, &a); /* asyncio.create_task(fetch("a")) */
    if (rc < 0) return rc;

    rc = other_work();
    if (rc < 0) return rc;

    int status;
    rc = tl_join(task, &status); /* result = await task */
    if (rc < 0) return rc;
    printf("[%.2f s] main: join -> status %d, result '%s'\n", tl_now() - t0,
           status, a.result);
    double took = tl_now() - t0;
    return status == 0 && took < 1.4 ? 0 : 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: task = asyncio.create_task(fetch(\"a\")); "
         "other_work(); result = await task");
    puts("  # C:      tl_spawn(&task, fetch, &a); other_work(); "
         "tl_join(task, &status);");
    return tl_run(main_task, NULL) == 0 ? 0 : 1;
}
