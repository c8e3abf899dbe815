/* libuv peer of bench/bench_core.c: the same keys where libuv has an
 * equivalent (it has callbacks, not tasks, so there is no spawn_join):
 *
 *   yield1 / yield10k  an idle-handle callback per loop iteration, with
 *                      1 / 10,000 idle handles                 ns/callback
 *   sleepers_wall      N one-shot 10 ms timers: start them all and run
 *                      the loop until every one fired          s
 *   sleepers_rss       resident memory per started timer (its uv_timer_t
 *                      and heap entry), /proc/self/statm       KiB/timer
 *
 * Built by tools/bench.sh with `pkg-config --cflags --libs libuv`.
 * usage: uv_peer [sleepers]   (default 1,000,000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static long each;

struct idler {
    uv_idle_t h;
    long left;
};

static void on_idle(uv_idle_t *h)
{
    struct idler *i = (struct idler *)h;
    if (--i->left == 0) uv_idle_stop(h);
}

static void bench_idle(long n, long total, const char *key)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct idler *v = calloc((size_t)n, sizeof *v);
    each = total / n;
    for (long i = 0; i < n; i++) {
        uv_idle_init(&loop, &v[i].h);
        v[i].left = each;
        uv_idle_start(&v[i].h, on_idle);
    }
    double t0 = now();
    uv_run(&loop, UV_RUN_DEFAULT);
    double t1 = now();
    printf("%s: %.1f ns/yield  (idle callback per loop iteration, %ld "
           "handle%s)\n", key, (t1 - t0) * 1e9 / (double)(each * n), n,
           n == 1 ? "" : "s");
    for (long i = 0; i < n; i++) uv_close((uv_handle_t *)&v[i].h, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(v);
}

static long fired;

static void on_timer(uv_timer_t *t)
{
    (void)t;
    fired++;
}

static void bench_timers(long n)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    double base = rss_bytes();
    double t0 = now();
    uv_timer_t *v = malloc((size_t)n * sizeof *v);
    for (long i = 0; i < n; i++) {
        uv_timer_init(&loop, &v[i]);
        uv_timer_start(&v[i], on_timer, 10, 0);
    }
    double peak = rss_bytes();
    uv_run(&loop, UV_RUN_DEFAULT);
    double t1 = now();
    printf("sleepers_wall: %.2f s  (%ld one-shot 10 ms timers: start and "
           "run to completion; %ld fired)\n", t1 - t0, n, fired);
    printf("sleepers_rss: %.2f KiB/task  (resident memory per started "
           "timer, /proc/self/statm)\n", (peak - base) / 1024.0 / (double)n);
    for (long i = 0; i < n; i++) uv_close((uv_handle_t *)&v[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(v);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n < 1) n = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    bench_idle(1, 2000000, "yield1");
    bench_idle(10000, 4000000, "yield10k");
    bench_timers(n);
    return 0;
}
