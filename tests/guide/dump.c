/* docs/guide.md, "Where is it stuck? tl_dump": a job stuck on an event
 * nobody sets; a stall watchdog notices that nothing progressed and
 * writes the task dump, which names the stuck task and what it waits on.
 * On the virtual clock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tulip.h>

#include "check.h"

/* guide: dump */
struct progress {
    int done;  /* jobs finished so far */
    FILE *log; /* where the dump goes: stderr, say */
};

/* A stall watchdog: when no job finished for 10 s, write every task of
 * the loop (what it waits on, for how long, its scopes and group, and a
 * backtrace) to the log, once per stall. */
static int stall_watch(void *arg)
{
    struct progress *p = arg;
    int last = p->done, dumped = 0, rc;
    while ((rc = tl_sleep(10.0)) == 0) {
        if (p->done != last) dumped = 0;
        else if (!dumped++) tl_dump(p->log);
        last = p->done;
    }
    return rc;
}
/* guide: end */

static tl_event never;

static int stuck_job(void *arg)
{
    struct progress *p = arg;
    int rc = tl_event_wait(&never);
    if (rc == 0) p->done++;
    return rc;
}

static int main_task(void *arg)
{
    (void)arg;
    char *text = NULL;
    size_t len = 0;
    struct progress p = {0, open_memstream(&text, &len)};
    CHECK(p.log != NULL);
    CHECK(tl_event_init(&never) == 0);
    tl_task job, watch;
    tl_spawn_opts jo = {.name = "stuck-job"}, wo = {.name = "stall-watch"};
    CHECK(tl_spawn_ex(&job, &jo, stuck_job, &p) == 0);
    CHECK(tl_spawn_ex(&watch, &wo, stall_watch, &p) == 0);
    CHECK(tl_sleep(25.0) == 0); /* two stalled rounds: one dump */
    CHECK(tl_cancel(watch) == 0);
    int status;
    CHECK(tl_join(watch, &status) == 0);
    fflush(p.log);
    fputs(text, stderr);
    const char *job_part = strstr(text, "'stuck-job'");
    CHECK(job_part != NULL && strstr(job_part, "tl_event_wait") != NULL);
    CHECK(strstr(text, "'stall-watch'") != NULL);
    const char *second = strstr(text, "loop #");
    CHECK(second != NULL && strstr(second + 1, "loop #") == NULL); /* once */
    tl_event_set(&never);
    CHECK(tl_join(job, &status) == 0 && status == 0 && p.done == 1);
    fclose(p.log);
    free(text);
    return 0;
}

int main(void)
{
    tl_config cfg = {.virtual_clock = 1};
    return tl_run_with(&cfg, main_task, NULL) == 0 ? 0 : 1;
}
