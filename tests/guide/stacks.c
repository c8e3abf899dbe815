/* docs/guide.md, "Stack sizes": a small default for the many, a big stack
 * for the one task that recurses deeply. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <tulip.h>

#include "check.h"

/* About 1 KiB of stack per level, as a recursive-descent parser might
 * use: 500 levels need about half a MiB. */
static int depth(int n)
{
    volatile char frame[1024];
    memset((char *)frame, n & 0xff, sizeof frame);
    return n == 0 ? frame[0] : depth(n - 1) + frame[n % sizeof frame] - (n & 0xff);
}

struct doc {
    int levels;
    int result;
};

static int parse_deep(void *arg)
{
    struct doc *d = arg;
    d->result = depth(d->levels);
    return 0;
}

static int small_task(void *arg)
{
    (void)arg;
    return tl_sleep(0.01);
}

/* guide: stack-spawn */
static int main_task(void *arg)
{
    (void)arg;
    tl_call small[100];
    for (int i = 0; i < 100; i++) small[i] = TL_CALL(small_task, NULL);
    int rc = tl_gather(100, small, NULL); /* 100 tasks, 128 KiB each */
    if (rc < 0) return rc;

    struct doc d = {.levels = 500};
    tl_spawn_opts big = {.name = "parser", .stack_size = 4 << 20};
    tl_task t;
    rc = tl_spawn_ex(&t, &big, parse_deep, &d); /* this one: 4 MiB */
    if (rc < 0) return rc;
    int status;
    rc = tl_join(t, &status);
    return rc < 0 ? rc : status;
}

int main(void)
{
    tl_config cfg = {.stack_size = 128 << 10}; /* every task: 128 KiB */
    return tl_run_with(&cfg, main_task, NULL) == 0 ? 0 : 1;
}
/* guide: end */
