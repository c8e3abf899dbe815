/* docs/guide.md, "Testing with the virtual clock": an hour-long timeout
 * tested in microseconds of real time. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <tulip.h>

#include "check.h"

/* guide: virtual */
static int slow_service(void *arg) /* answers after an hour */
{
    (void)arg;
    return tl_sleep(3600.0);
}

static int test_timeout_fires(void *arg)
{
    (void)arg;
    double t0 = tl_now();
    int rc = tl_wait_for(TL_CALL(slow_service, NULL), 30.0);
    CHECK(rc == -ETIMEDOUT);
    CHECK(fabs(tl_now() - t0 - 30.0) < 1e-9); /* 30 s on the loop's clock */
    return 0;
}

int main(void)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    tl_config cfg = {.virtual_clock = 1};
    int rc = tl_run_with(&cfg, test_timeout_fires, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double real = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("30 s of timeout took %.3f s\n", real); /* a few ms */
    return rc == 0 ? 0 : 1;
}
/* guide: end */
