/* One small run through every area, as a plain program, so that the tools
 * that cannot host Criterion run it: ThreadSanitizer (several loops on
 * several threads, the thread pool) and Valgrind (stack switching
 * registered, no invalid accesses, no leaks). Counts stay small: TSan
 * counts each fiber as a thread. */
/* tulip-test-labels: thread valgrind */
#include "tiny.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <tulip.h>

static void quiet_watchdog(void)
{
    /* Valgrind runs everything ~50x slower; the watchdog is tested
     * elsewhere. */
    if (getenv("TULIP_TEST_VALGRIND")) setenv("TULIP_BLOCKING_MS", "0", 1);
}

/* ---- the core: spawn, join, gather, groups, scopes, errno -------------- */

static int fetch(void *arg)
{
    int n = (int)(intptr_t)arg;
    if (tl_sleep(0.001 * n) < 0) return -ECANCELED;
    return n;
}

static int failing(void *arg)
{
    (void)arg;
    if (tl_sleep(0.002) < 0) return -ECANCELED;
    return tl_fail(-EIO, "disk on fire");
}

static int errno_keeper(void *arg)
{
    int mine = (int)(intptr_t)arg;
    errno = mine;
    for (int i = 0; i < 5; i++)
        if (tl_yield() < 0 || errno != mine) return -1;
    return 0;
}

static int core_main(void *arg)
{
    (void)arg;
    tl_call calls[4];
    int st[4];
    for (int i = 0; i < 4; i++)
        calls[i] = TL_CALL(fetch, (intptr_t)(i + 1));
    if (tl_gather(4, calls, st) != 0) return 1;
    for (int i = 0; i < 4; i++)
        if (st[i] != i + 1) return 2;

    tl_group g;
    if (tl_group_enter(&g) != 0) return 3;
    (void)tl_group_spawn(g, fetch, (void *)(intptr_t)50);
    (void)tl_group_spawn(g, failing, NULL);
    tl_errors errs;
    int rc = tl_group_wait(g, 0, &errs);
    if (rc != -EIO || errs.count != 1) return 4;
    tl_errors_free(&errs);

    TL_WITH_TIMEOUT(0.005, &rc) { rc = tl_sleep(1); }
    if (rc != -ETIMEDOUT) return 5;

    tl_task a, b;
    if (tl_spawn(&a, errno_keeper, (void *)(intptr_t)11) != 0) return 6;
    if (tl_spawn(&b, errno_keeper, (void *)(intptr_t)22) != 0) return 6;
    int sa = -1, sb = -1;
    if (tl_join(a, &sa) != 0 || tl_join(b, &sb) != 0) return 7;
    if (sa != 0 || sb != 0) return 8;

    tl_task c;
    if (tl_spawn(&c, fetch, (void *)(intptr_t)1000) != 0) return 9;
    (void)tl_cancel(c);
    int sc = 0;
    if (tl_join(c, &sc) != 0 || sc != -ECANCELED) return 10;
    return 0;
}

TINY_TEST(core_runs_clean)
{
    quiet_watchdog();
    TINY_ASSERT_EQ(tl_run(core_main, NULL), 0);
}

/* ---- several loops at once, one per thread ------------------------------ */

static void *loop_thread(void *arg)
{
    intptr_t rc = tl_run(core_main, NULL);
    (void)arg;
    return (void *)rc;
}

TINY_TEST(four_loops_on_four_threads)
{
    quiet_watchdog();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        TINY_ASSERT_EQ(pthread_create(&th[i], NULL, loop_thread, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        TINY_ASSERT_EQ((intptr_t)rc, 0);
    }
}

/* ---- coordination: semaphore, queue, generator --------------------------- */

static tl_sem sem;
static tl_queue q;
static int in_flight, max_in_flight;

static int limited(void *arg)
{
    (void)arg;
    if (tl_sem_acquire(&sem) < 0) return -ECANCELED;
    if (++in_flight > max_in_flight) max_in_flight = in_flight;
    int rc = tl_sleep(0.001);
    in_flight--;
    tl_sem_release(&sem);
    return rc;
}

static int producer(void *arg)
{
    (void)arg;
    for (intptr_t i = 1; i <= 100; i++)
        if (tl_queue_put(&q, (void *)i) < 0) return -ECANCELED;
    return 0;
}

static int counter_gen(tl_gen *g, void *arg)
{
    (void)arg;
    for (intptr_t i = 1; i <= 50; i++)
        if (tl_gen_yield(g, (void *)i) < 0) return -ECANCELED;
    return 0;
}

static int coord_main(void *arg)
{
    (void)arg;
    tl_sem_init(&sem, 3);
    tl_call calls[20];
    for (int i = 0; i < 20; i++) calls[i] = TL_CALL(limited, NULL);
    if (tl_gather(20, calls, NULL) != 0) return 1;
    if (max_in_flight != 3) return 2;
    tl_sem_destroy(&sem);

    tl_queue_init(&q, TL_QUEUE_FIFO, 4);
    tl_task p;
    if (tl_spawn(&p, producer, NULL) != 0) return 3;
    intptr_t sum = 0;
    for (int i = 0; i < 100; i++) {
        void *item;
        if (tl_queue_get(&q, &item) != 0) return 4;
        sum += (intptr_t)item;
    }
    int ps;
    if (tl_join(p, &ps) != 0 || ps != 0 || sum != 5050) return 5;
    tl_queue_destroy(&q);

    tl_gen *g;
    if (tl_gen_new(&g, counter_gen, NULL, NULL) != 0) return 6;
    void *v;
    int rc;
    intptr_t gsum = 0;
    while ((rc = tl_gen_next(g, &v)) == 0) gsum += (intptr_t)v;
    tl_gen_close(g);
    if (rc != TL_EGENDONE || gsum != 1275) return 7;
    return 0;
}

TINY_TEST(coordination_runs_clean)
{
    quiet_watchdog();
    TINY_ASSERT_EQ(tl_run(coord_main, NULL), 0);
}

/* ---- the thread pool ----------------------------------------------------- */

static int square(void *arg)
{
    int *x = arg;
    return *x * *x;
}

static int pool_main(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 10; i++) {
        int x = i, r = 0;
        if (tl_to_thread(square, &x, &r) != 0 || r != i * i) return i;
    }
    return 0;
}

TINY_TEST(thread_pool_runs_clean)
{
    quiet_watchdog();
    TINY_ASSERT_EQ(tl_run(pool_main, NULL), 0);
}

int main(int argc, char **argv) { return tiny_main("test_smoke", argc, argv); }
