/* docs/guide.md, "Retry with backoff": on the virtual clock, a call that
 * fails three times succeeds on the fourth try after 0.5 + 1 + 2 s of
 * backoff (plus jitter); the overall deadline stops one that never does. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <tulip.h>

#include "check.h"

/* guide: retry */
/* Call fn(arg) in this task until it succeeds, at most `attempts` times,
 * sleeping base, 2*base, 4*base, ... seconds (at most 30, plus up to 10%
 * of jitter) between tries. A cancellation is never retried. */
static int retry(tl_fn fn, void *arg, int attempts, double base)
{
    double delay = base;
    int rc = -EINVAL;
    for (int i = 0; i < attempts; i++) {
        rc = fn(arg); /* await fn(arg) */
        if (rc >= 0 || rc == -ECANCELED) return rc;
        if (i + 1 == attempts) break;
        double jitter = delay * 0.1 * rand() / RAND_MAX;
        int src = tl_sleep(delay + jitter);
        if (src < 0) return src; /* cancelled (or out of time) */
        delay = fmin(2 * delay, 30.0);
    }
    return rc; /* the last failure */
}
/* guide: end */

struct conn {
    int failures_left; /* connect fails this many times first */
    int tries;
};

static int flaky_connect(void *arg)
{
    struct conn *c = arg;
    c->tries++;
    int rc = tl_sleep(0.01); /* the attempt itself takes a little time */
    if (rc < 0) return rc;
    if (c->failures_left > 0) {
        c->failures_left--;
        return tl_fail(-ECONNREFUSED, "try %d refused", c->tries);
    }
    return 0;
}

static int connect_with_deadline(struct conn *conn)
{
    /* guide: retry-use */
    int rc;
    TL_WITH_TIMEOUT(10.0, &rc) { /* all the tries together: 10 s */
        rc = retry(flaky_connect, conn, 8, 0.5);
    }
    /* guide: end */
    return rc;
}

static int main_task(void *arg)
{
    (void)arg;
    srand(1);
    struct conn c = {.failures_left = 3};
    double t0 = tl_now();
    CHECK(connect_with_deadline(&c) == 0);
    CHECK(c.tries == 4);
    double took = tl_now() - t0; /* 3.5 s of backoff, 0.04 s of tries */
    CHECK(took >= 3.54 - 1e-9 && took <= 3.54 + 0.35 + 1e-9);

    /* Never succeeds: 0.5 + 1 + 2 + 4 s of backoff and then the 10 s
     * deadline interrupts the 8 s sleep. */
    c = (struct conn){.failures_left = 1000};
    t0 = tl_now();
    CHECK(connect_with_deadline(&c) == -ETIMEDOUT);
    CHECK(fabs(tl_now() - t0 - 10.0) < 1e-6);
    CHECK(c.tries == 5);

    /* Too few attempts: the last failure comes back. */
    c = (struct conn){.failures_left = 1000};
    CHECK(retry(flaky_connect, &c, 2, 0.5) == -ECONNREFUSED);
    CHECK(c.tries == 2);
    return 0;
}

int main(void)
{
    tl_config cfg = {.virtual_clock = 1};
    return tl_run_with(&cfg, main_task, NULL) == 0 ? 0 : 1;
}
