/* A million tasks (DESIGN.md "Scale", "Tests within CI's budget"): one
 * million tasks sleeping at once on the virtual clock (100,000 under
 * sanitizers), woken in deadline order, with the resident memory each one
 * costs printed and bounded, and the process's mapping count kept far from
 * a stock kernel's vm.max_map_count (65,530); then 100,000 spawn + join.
 */
/* tulip-test-labels: slow bigmem */
/* tulip-test-timeout: 600 */
/* Criterion's own limit sits just under CTest's: a million fresh stacks
 * take 200-300 s on this 2-CPU VM when it is loaded (each first touch
 * of a page costs 12-16 us here), and this test is about order and
 * memory, not speed (bench/ has the speed). */
#include <stdint.h>
#include <time.h>

#include "helpers.h"
#include "core/stack.h"

/* Bounds: generous, but far below what a leak per task would cost. */
#define RSS_PER_TASK_MAX (16 * 1024)

static long page_size(void) { return sysconf(_SC_PAGESIZE); }

/* Resident pages of this process (/proc/self/statm, second field). */
static long rss_pages(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
    fclose(f);
    return res;
}

/* Lines of /proc/self/maps: the process's VMAs. */
static long map_count(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f) return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        if (c == '\n') n++;
    fclose(f);
    return n;
}

static long max_map_count(void)
{
    long v = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1) v = 65530;
        fclose(f);
    }
    return v;
}

/* ---- a million sleepers ---------------------------------------------------- */

struct sleepers {
    uint32_t n;
    uint32_t spawn_failed;
    uint32_t started, woke, not_zero, bad_order, bad_time;
    uint32_t last_ms, last_i;
    uint32_t asleep_at_peak, woke_at_peak;
    long rss_before, rss_peak, maps_peak;
    double spawn_s, wake_s;
};

static struct sleepers S;

/* 1000 distinct deadlines, 1 to 1000 ms, spread over the spawn order. */
static uint32_t deadline_ms(uint32_t i) { return 1 + (uint32_t)((i * 7919ull) % 1000); }

static int sleeper(void *arg)
{
    uint32_t i = (uint32_t)(uintptr_t)arg;
    uint32_t ms = deadline_ms(i);
    S.started++;
    int rc = tl_sleep(ms / 1000.0);
    if (rc != 0) S.not_zero++;
    /* Deadline order; equal deadlines in the order they were armed, which
     * is the spawn order (every task started in one FIFO pass). */
    if (S.woke > 0 &&
        !(ms > S.last_ms || (ms == S.last_ms && i > S.last_i)))
        S.bad_order++;
    double late_us = (tl_now() - ms / 1000.0) * 1e6;
    if (late_us < -1 || late_us > 1) S.bad_time++;
    S.last_ms = ms;
    S.last_i = i;
    S.woke++;
    return 0;
}

static int sleepers_main(void *arg)
{
    (void)arg;
    S.rss_before = rss_pages();
    double t0 = tl_test_now_s();
    for (uint32_t i = 0; i < S.n; i++) {
        if (tl_spawn(NULL, sleeper, (void *)(uintptr_t)i) != 0) /* detached */
            S.spawn_failed++;
        /* Let the batch start (and keep the watchdog quiet). */
        if (i % 10000 == 9999) TL_IGNORE(tl_yield());
    }
    /* Every task has run once (in spawn order) and parked before main runs
     * again: the run queue is FIFO and main is behind all of them; the
     * virtual clock stands still while anything is ready. */
    TL_IGNORE(tl_yield());
    S.spawn_s = tl_test_now_s() - t0;
    S.asleep_at_peak = S.started;
    S.woke_at_peak = S.woke;
    S.rss_peak = rss_pages();
    S.maps_peak = map_count();
    t0 = tl_test_now_s();
    int rc = tl_sleep(2.0); /* past the last deadline (1 s) */
    S.wake_s = tl_test_now_s() - t0;
    return rc;
}

Test(million, a_million_tasks_sleep_at_once_and_wake_in_deadline_order,
     .timeout = 580)
{
    memset(&S, 0, sizeof S);
    S.n = TL_TEST_SCALE(1000000);
    long maps_before = map_count();
    cr_assert_eq(run_virtual(sleepers_main, NULL), 0);

    double per_task = (double)(S.rss_peak - S.rss_before) * page_size() / S.n;
    int strategy = tl__stack_guard_strategy();
    printf("million: %u tasks asleep at once: %.0f bytes RSS per task, "
           "%ld mappings at the peak (%ld before; limit %ld; guard %s); "
           "spawn+start %.2f s, wake all %.2f s\n",
           S.n, per_task, S.maps_peak, maps_before, max_map_count(),
           tl__stack_guard_name(strategy), S.spawn_s, S.wake_s);
    fflush(stdout);

    cr_expect_eq(S.spawn_failed, 0);
    cr_expect_eq(S.asleep_at_peak, S.n, "only %u of %u started",
                 S.asleep_at_peak, S.n);
    cr_expect_eq(S.woke_at_peak, 0);
    cr_expect_eq(S.started, S.n);
    cr_expect_eq(S.woke, S.n);
    cr_expect_eq(S.not_zero, 0);
    cr_expect_eq(S.bad_order, 0, "%u wake-ups out of deadline order",
                 S.bad_order);
    cr_expect_eq(S.bad_time, 0, "%u wake-ups off their deadline", S.bad_time);
    cr_expect_eq(S.last_ms, 1000);
    cr_expect_lt(per_task, RSS_PER_TASK_MAX, "%.0f bytes per sleeping task",
                 per_task);
    cr_expect_gt(per_task, 0);
    /* A stock kernel allows 65,530 mappings. madvise guards add none;
     * mprotect guards are rationed to stay under the limit (past the
     * budget, stacks get a canary). */
    if (strategy == TL__GUARD_MPROTECT)
        cr_expect_lt(S.maps_peak, max_map_count() - 2000,
                     "%ld mappings", S.maps_peak);
    else
        cr_expect_lt(S.maps_peak, 2000, "%ld mappings", S.maps_peak);
}

/* ---- 100,000 spawn + join ------------------------------------------------- */

#define JOINS TL_TEST_SCALE(100000)

static int returns_index(void *arg)
{
    uint32_t i = (uint32_t)(uintptr_t)arg;
    if (i % 3 == 0) TL_IGNORE(tl_yield()); /* some finish later than others */
    return (int)(i & 0xffff);
}

struct joins {
    uint32_t spawned, joined, bad_status, join_failed;
    long maps_peak;
    double seconds;
};

static struct joins J;

static int joins_main(void *arg)
{
    (void)arg;
    tl_task *t = calloc(JOINS, sizeof *t);
    if (!t) return -ENOMEM;
    double t0 = tl_test_now_s();
    for (uint32_t i = 0; i < JOINS; i++)
        if (tl_spawn(&t[i], returns_index, (void *)(uintptr_t)i) == 0)
            J.spawned++;
    for (uint32_t i = 0; i < JOINS; i++) {
        int st = -1;
        if (i == JOINS / 2) J.maps_peak = map_count();
        if (tl_join(t[i], &st) != 0) {
            J.join_failed++;
            continue;
        }
        J.joined++;
        if (st != (int)(i & 0xffff)) J.bad_status++;
    }
    J.seconds = tl_test_now_s() - t0;
    free(t);
    return 0;
}

/* The same .timeout as above: Criterion 2.4.1's runner leaks 48 bytes
 * (LeakSanitizer) when tests with different timeouts run side by side. */
Test(million, spawn_and_join_a_hundred_thousand, .timeout = 580)
{
    memset(&J, 0, sizeof J);
    cr_assert_eq(run_virtual(joins_main, NULL), 0);
    printf("million: %u spawn+join in %.2f s (%ld mappings half way)\n",
           J.joined, J.seconds, J.maps_peak);
    fflush(stdout);
    cr_expect_eq(J.spawned, JOINS);
    cr_expect_eq(J.joined, JOINS);
    cr_expect_eq(J.join_failed, 0);
    cr_expect_eq(J.bad_status, 0);
    cr_expect_lt(J.maps_peak, max_map_count() - 2000);
}
