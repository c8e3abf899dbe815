/* Micro benchmark: the raw context switch, the fiber switch (the same
 * plus the tool hooks, which are empty outside sanitizer builds) and a
 * pooled stack get+put. One line per figure, e.g. "context switch: 3.1 ns".
 * Usage: bench_switch [switches]   (default 20,000,000)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/fiber.h"
#include "core/stack.h"

static tl__fiber main_f, peer_f;
static long iters;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Raw: bounce straight back, forever. */
static void raw_entry(void *arg)
{
    (void)arg;
    for (;;)
        tl__context_switch(&peer_f.ctx, &main_f.ctx);
}

static void fiber_entry(void *arg)
{
    (void)arg;
    tl__fiber_started(&peer_f);
    for (;;)
        tl__fiber_switch(&peer_f, &main_f, 0);
}

int main(int argc, char **argv)
{
    tl__stack_pool *pool;
    tl__stack *s, *t;
    double t0, t1;
    long n;

    iters = argc > 1 ? atol(argv[1]) : 20000000L;
    if (iters <= 0)
        iters = 1;
    if (tl__stack_pool_new(&pool, TL__GUARD_AUTO) < 0 ||
        tl__stack_get(pool, 64 * 1024, &s) < 0) {
        fprintf(stderr, "bench_switch: cannot get a stack\n");
        return 1;
    }
    tl__fiber_init_thread(&main_f);

    /* Each round trip is two switches. */
    tl__fiber_make(&peer_f, s->lo, (size_t)(s->hi - s->lo), raw_entry, NULL);
    tl__context_switch(&main_f.ctx, &peer_f.ctx); /* warm up */
    t0 = now();
    for (n = 0; n < iters; n++)
        tl__context_switch(&main_f.ctx, &peer_f.ctx);
    t1 = now();
    printf("context switch: %.1f ns\n", (t1 - t0) / (2.0 * (double)iters));
    tl__fiber_release(&peer_f);

    tl__fiber_make(&peer_f, s->lo, (size_t)(s->hi - s->lo), fiber_entry, NULL);
    tl__fiber_switch(&main_f, &peer_f, 0);
    t0 = now();
    for (n = 0; n < iters; n++)
        tl__fiber_switch(&main_f, &peer_f, 0);
    t1 = now();
    printf("fiber switch: %.1f ns\n", (t1 - t0) / (2.0 * (double)iters));
    tl__fiber_release(&peer_f);

    /* The peer is parked forever inside its loop: its stack is simply
     * returned (nothing on it needs unwinding). */
    tl__stack_put(pool, s);
    t0 = now();
    for (n = 0; n < iters / 10; n++) {
        if (tl__stack_get(pool, 64 * 1024, &t) < 0)
            return 1;
        tl__stack_put(pool, t);
    }
    t1 = now();
    printf("stack get+put (pooled): %.1f ns\n",
           (t1 - t0) / (double)(iters / 10 ? iters / 10 : 1));

    tl__fiber_fini_thread(&main_f);
    tl__stack_pool_free(pool);
    return 0;
}
