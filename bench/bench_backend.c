/* Backend benchmark: what one wait in the kernel costs, on the backend the
 * loop picked (TULIP_BACKEND=epoll|io_uring selects one). One line per
 * figure, "key: value unit  (what)":
 *
 *   backend_sleep   tl_sleep(1 us) by a lone task: each is one backend
 *                   wait with a timeout (the kernel's timer, its slack,
 *                   the wake-up)                                 ns/sleep
 *   backend_yield   tl_yield by a lone task: no backend call at all (the
 *                   loop polls only when it can have news), for scale
 *                                                                ns/yield
 *   backend_wake    tl_to_thread of an empty function: a pool worker's
 *                   wake-up, then the loop's (an eventfd write the backend
 *                   sees)                                        ns/call
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <tulip.h>
#include <tulip/thread.h>

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    const char *be = tl_backend_name();
    long n = 20000;
    double t0 = tl_now();
    for (long i = 0; i < n; i++)
        if (tl_sleep(1e-6) < 0) return 1;
    double t1 = tl_now();
    printf("backend_sleep: %.0f ns/sleep  (tl_sleep(1 us), 1 task, %s)\n",
           (t1 - t0) * 1e9 / (double)n, be);

    long ny = 1000000;
    t0 = tl_now();
    for (long i = 0; i < ny; i++)
        if (tl_yield() < 0) return 1;
    t1 = tl_now();
    printf("backend_yield: %.1f ns/yield  (tl_yield, 1 task: no backend "
           "call, %s)\n", (t1 - t0) * 1e9 / (double)ny, be);

    t0 = tl_now();
    for (long i = 0; i < n; i++) {
        int r;
        if (tl_to_thread(nothing, NULL, &r) < 0) return 1;
    }
    t1 = tl_now();
    printf("backend_wake: %.0f ns/call  (tl_to_thread round trip, 1 "
           "caller, %s)\n", (t1 - t0) * 1e9 / (double)n, be);
    return 0;
}

int main(void)
{
    alarm(600); /* bounded: a stuck run dies instead of hanging CI */
    int rc = tl_run(main_task, NULL);
    if (rc != 0) fprintf(stderr, "bench_backend: tl_run returned %d\n", rc);
    return rc == 0 ? 0 : 1;
}
