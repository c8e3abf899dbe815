/* Cross-thread calls into a loop: tl_loop_ref / tl_loop_call / unref.
 * A plain program so that ThreadSanitizer runs it (Criterion cannot). */
/* tulip-test-labels: thread */
#include "tiny.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <tulip.h>

#ifndef TULIP_TEST_SANITIZED
#define TULIP_TEST_SANITIZED 0
#endif

/* ThreadSanitizer makes every task a fiber of its own, at several ms
 * each on a loaded machine: fewer calls there, or the case outlives its
 * alarm without being wrong. */
enum { CALLS = TULIP_TEST_SANITIZED ? 200 : 2000 };

static int counter;      /* touched only on the loop's thread */
static int order_ok = 1; /* calls from one thread run in posting order */
static int last_seen = -1;
static tl_loop *shared_ref;

static int count_call(void *arg)
{
    int i = (int)(intptr_t)arg;
    if (i != last_seen + 1) order_ok = 0;
    last_seen = i;
    counter++;
    return 0;
}

static void *poster(void *arg)
{
    tl_loop *l = arg;
    for (int i = 0; i < CALLS; i++)
        if (tl_loop_call(l, count_call, (void *)(intptr_t)i) != 0) abort();
    tl_loop_unref(l);
    return NULL;
}

static int main_calls(void *arg)
{
    (void)arg;
    tl_loop *l = tl_loop_ref();
    if (!l) return -1;
    shared_ref = tl_loop_ref(); /* kept past tl_run for the next test */
    pthread_t th;
    if (pthread_create(&th, NULL, poster, l) != 0) return -2;
    /* Bounded wait for a condition, not a timing guess. */
    for (int i = 0; i < 10000 && counter < CALLS; i++)
        if (tl_sleep(0.001) < 0) break;
    pthread_join(th, NULL);
    return counter;
}

TINY_TEST(calls_from_another_thread_run_on_the_loop_in_order)
{
    counter = 0;
    last_seen = -1;
    TINY_ASSERT_EQ(tl_run(main_calls, NULL), CALLS);
    TINY_ASSERT_EQ(order_ok, 1);
    /* The loop has ended: the handle lives on, calls are refused. */
    TINY_ASSERT_EQ(tl_loop_call(shared_ref, count_call, NULL), -ESHUTDOWN);
    tl_loop_unref(shared_ref);
}

TINY_TEST(ref_outside_a_task_is_refused)
{
    TINY_ASSERT_EQ(tl_loop_ref() == NULL, 1);
    TINY_ASSERT_EQ(tl_loop_call(NULL, count_call, NULL), -EINVAL);
    tl_loop_unref(NULL); /* no-op */
}

static int from_own_thread(void *arg)
{
    (void)arg;
    tl_loop *l = tl_loop_ref();
    counter = 0;
    last_seen = -1;
    for (int i = 0; i < 10; i++)
        if (tl_loop_call(l, count_call, (void *)(intptr_t)i) != 0) return -1;
    tl_loop_unref(l);
    for (int i = 0; i < 1000 && counter < 10; i++)
        if (tl_sleep(0.001) < 0) break;
    return counter;
}

TINY_TEST(calls_from_the_loops_own_thread_work_too)
{
    TINY_ASSERT_EQ(tl_run(from_own_thread, NULL), 10);
}

/* ---- nothing accepted is lost at shutdown ---------------------------- */

static int ran;             /* calls that ran (loop thread only) */
static int ran_cancelled;   /* of those, started cancelled */

/* Owns its heap argument, as a real poster's call would. */
static int owning_call(void *arg)
{
    free(arg);
    ran++;
    if (tl_cancelled()) ran_cancelled++;
    return 0;
}

enum { LAST_MINUTE = 100 };

static int post_then_return(void *arg)
{
    (void)arg;
    tl_loop *l = tl_loop_ref();
    for (int i = 0; i < LAST_MINUTE; i++) {
        int *p = malloc(sizeof *p);
        if (!p || tl_loop_call(l, owning_call, p) != 0) return -1;
    }
    tl_loop_unref(l);
    return 0; /* before the loop took any of them */
}

TINY_TEST(calls_accepted_before_main_returns_all_run_cancelled)
{
    ran = ran_cancelled = 0;
    TINY_ASSERT_EQ(tl_run(post_then_return, NULL), 0);
    TINY_ASSERT_EQ(ran, LAST_MINUTE);
    TINY_ASSERT_EQ(ran_cancelled, LAST_MINUTE);
}

static int fill_the_inbox(void *arg)
{
    (void)arg;
    tl_loop *l = tl_loop_ref();
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        rc = tl_loop_call(l, count_call, (void *)(intptr_t)i);
    if (rc != 0) return -100 + rc;
    int full = tl_loop_call(l, count_call, NULL); /* the fifth */
    /* One iteration later the loop has taken the four: room again. */
    if (tl_yield() != 0) return -200;
    rc = tl_loop_call(l, count_call, (void *)(intptr_t)4);
    tl_loop_unref(l);
    if (rc != 0) return -300 + rc;
    return full;
}

TINY_TEST(a_full_inbox_refuses_with_eagain)
{
    counter = 0;
    last_seen = -1;
    tl_config cfg = {.call_capacity = 4};
    TINY_ASSERT_EQ(tl_run_with(&cfg, fill_the_inbox, NULL), -EAGAIN);
    TINY_ASSERT_EQ(counter, 5);
    TINY_ASSERT_EQ(order_ok, 1);
}

enum { POSTERS = 2, ENOUGH = 50 };

static _Atomic long accepted, refused;
static pthread_t posters[POSTERS];

/* Posts until the loop says it has shut down. Never assumes it runs at
 * the same time as the loop: if it only starts after main returned, its
 * first call is refused and nothing was accepted. */
static void *shutdown_poster(void *arg)
{
    tl_loop *l = arg;
    for (;;) {
        int *p = malloc(sizeof *p);
        if (!p) abort();
        int rc = tl_loop_call(l, owning_call, p);
        if (rc == 0) {
            atomic_fetch_add(&accepted, 1);
            continue;
        }
        free(p); /* refused: still ours */
        if (rc == -ESHUTDOWN) break;
        if (rc != -EAGAIN) abort();
        atomic_fetch_add(&refused, 1);
        sched_yield();
    }
    tl_loop_unref(l);
    return NULL;
}

static int main_shutdown_race(void *arg)
{
    (void)arg;
    for (int i = 0; i < POSTERS; i++)
        if (pthread_create(&posters[i], NULL, shutdown_poster,
                           tl_loop_ref()) != 0)
            return -1;
    /* Wait for a condition, not a time: some calls have been accepted. */
    while (atomic_load(&accepted) < ENOUGH)
        if (tl_sleep(0.005) < 0) return -2;
    return 0; /* posters are still posting */
}

TINY_TEST(threads_posting_while_the_loop_shuts_down_lose_nothing)
{
    ran = ran_cancelled = 0;
    atomic_store(&accepted, 0);
    atomic_store(&refused, 0);
    /* A small inbox, so that the posters also meet a full one. */
    tl_config cfg = {.call_capacity = 64};
    TINY_ASSERT_EQ(tl_run_with(&cfg, main_shutdown_race, NULL), 0);
    for (int i = 0; i < POSTERS; i++) pthread_join(posters[i], NULL);
    /* Every accepted call ran exactly once; each freed its argument. */
    TINY_ASSERT_EQ(ran, atomic_load(&accepted));
    fprintf(stderr, "accepted %ld, refused (full) %ld, ran cancelled %d\n",
            (long)atomic_load(&accepted), (long)atomic_load(&refused),
            ran_cancelled);
}

int main(int argc, char **argv) { return tiny_main("test_loop_call", argc, argv); }
