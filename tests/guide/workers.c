/* docs/guide.md, "A worker pool with shutdown": four workers drain a
 * bounded queue; closing it lets them finish what was queued and leave;
 * cancelling the pool stops them at once. On the virtual clock. */
#include <errno.h>
#include <math.h>
#include <tulip.h>

#include "check.h"

/* guide: pool */
struct job {
    int n;
    int result;
};

struct pool {
    tl_queue jobs; /* of struct job * */
    int done;      /* jobs finished */
};

static int worker(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        void *item;
        int rc = tl_queue_get(&p->jobs, &item);
        if (rc == TL_EQSHUTDOWN) return 0; /* closed and drained: leave */
        if (rc < 0) return rc;             /* cancelled */
        struct job *j = item;
        rc = tl_sleep(0.1 * j->n);         /* the work */
        if (rc == 0) {
            j->result = j->n * j->n;
            p->done++;
        }
        tl_queue_task_done(&p->jobs);
        if (rc < 0) return rc;
    }
}

/* Run n jobs on `nworkers` workers; returns how many were done. */
static int run_jobs(struct job *jobs, size_t n, int nworkers)
{
    struct pool p = {.done = 0};
    int rc = tl_queue_init(&p.jobs, TL_QUEUE_FIFO, 2 * (size_t)nworkers);
    if (rc < 0) return rc;
    tl_group g;
    TL_WITH_GROUP(&g, &rc) {
        for (int i = 0; i < nworkers && rc == 0; i++)
            rc = tl_group_spawn(g, worker, &p);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = tl_queue_put(&p.jobs, &jobs[i]); /* waits while full */
        tl_queue_shutdown(&p.jobs, 0); /* no more jobs: workers drain, leave */
    } /* waits for the workers; a failure or a cancel stops them all */
    tl_queue_destroy(&p.jobs);
    return rc < 0 ? rc : p.done;
}
/* guide: end */

#define NJOBS 40

static struct job jobs[NJOBS];
static int pool_rc;

static int run_all(void *arg)
{
    (void)arg;
    pool_rc = run_jobs(jobs, NJOBS, 4);
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    for (int i = 0; i < NJOBS; i++) jobs[i] = (struct job){.n = 1 + i % 4};

    /* Graceful: every job done, in (1+2+3+4)*10*0.1/4 = 2.5 s of virtual
     * time. */
    double t0 = tl_now();
    CHECK(run_jobs(jobs, NJOBS, 4) == NJOBS);
    CHECK(fabs(tl_now() - t0 - 2.5) < 0.5);
    for (int i = 0; i < NJOBS; i++) CHECK(jobs[i].result == jobs[i].n * jobs[i].n);

    /* Stop now: cancel the task running the pool at 1 s. */
    for (int i = 0; i < NJOBS; i++) jobs[i].result = 0;
    tl_task t;
    CHECK(tl_spawn(&t, run_all, NULL) == 0);
    CHECK(tl_sleep(1.0) == 0);
    t0 = tl_now();
    CHECK(tl_cancel(t) == 0);
    int status;
    CHECK(tl_join(t, &status) == 0 && status == 0);
    CHECK(pool_rc == -ECANCELED);
    CHECK(tl_now() - t0 < 1e-6); /* nobody waited for a job to end */
    int done = 0;
    for (int i = 0; i < NJOBS; i++) done += jobs[i].result != 0;
    CHECK(done > 0 && done < NJOBS);
    return 0;
}

int main(void)
{
    tl_config cfg = {.virtual_clock = 1};
    return tl_run_with(&cfg, main_task, NULL) == 0 ? 0 : 1;
}
