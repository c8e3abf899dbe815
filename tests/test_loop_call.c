/* Cross-thread calls into a loop: tl_loop_ref / tl_loop_call / unref.
 * A plain program so that ThreadSanitizer runs it (Criterion cannot). */
/* tulip-test-labels: thread */
#include "tiny.h"

#include <errno.h>
#include <pthread.h>
#include <tulip.h>

enum { CALLS = 2000 };

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

int main(int argc, char **argv) { return tiny_main("test_loop_call", argc, argv); }
