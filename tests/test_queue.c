/* Queues: FIFO, LIFO, priority; bounded waits; direct handoff; task_done
 * and join; graceful and immediate shutdown; cancellation that never
 * loses or duplicates an item. Virtual clock throughout.
 */
#include "helpers.h"

#include <criterion/redirect.h>
#include <stdint.h>

#define I(n) ((void *)(uintptr_t)(n))
#define N(p) ((int)(uintptr_t)(p))

/* ---- order --------------------------------------------------------------- */

Test(queue, fifo_lifo_priority_order_without_waiting, .timeout = 10,
     .init = cr_redirect_stderr)
{
    tl_queue f, l, p;
    cr_assert_eq(tl_queue_init(&f, TL_QUEUE_FIFO, 0), 0);
    cr_assert_eq(tl_queue_init(&l, TL_QUEUE_LIFO, 0), 0);
    cr_assert_eq(tl_queue_init(&p, TL_QUEUE_PRIORITY, 0), 0);
    static const int prio[6] = {5, 1, 4, 1, 9, 2};
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(tl_queue_try_put(&f, I(i + 1)), 0);
        cr_expect_eq(tl_queue_try_put(&l, I(i + 1)), 0);
        cr_expect_eq(tl_queue_try_put_prio(&p, I(i + 1), prio[i]), 0);
    }
    cr_expect_eq(tl_queue_size(&f), 6);
    /* priorities 1(#2) 1(#4) 2(#6) 4(#3) 5(#1) 9(#5): ties in put order */
    static const int pwant[6] = {2, 4, 6, 3, 1, 5};
    for (int i = 0; i < 6; i++) {
        void *x;
        cr_expect_eq(tl_queue_try_get(&f, &x), 0);
        cr_expect_eq(N(x), i + 1);
        cr_expect_eq(tl_queue_try_get(&l, &x), 0);
        cr_expect_eq(N(x), 6 - i);
        cr_expect_eq(tl_queue_try_get(&p, &x), 0);
        cr_expect_eq(N(x), pwant[i], "priority #%d: %d", i, N(x));
    }
    void *x = I(77);
    cr_expect_eq(tl_queue_try_get(&f, &x), TL_EEMPTY);
    cr_expect_eq(N(x), 77, "untouched");
    cr_expect_eq(tl_queue_empty(&f), 1);
    cr_expect_eq(tl_queue_unfinished(&f), 6);
    cr_expect_eq(tl_queue_try_put_prio(&f, I(1), 3), -EINVAL);
    cr_expect_eq(tl_queue_destroy(&f), 0);
    cr_expect_eq(tl_queue_destroy(&l), 0);
    cr_expect_eq(tl_queue_destroy(&p), 0);
}

static int by_value_desc(const void *a, const void *b, void *arg)
{
    (void)arg;
    return N(b) - N(a);
}

Test(queue, priority_with_a_compare_function, .timeout = 10)
{
    tl_queue q;
    tl_queue_opts o = {.kind = TL_QUEUE_PRIORITY, .cmp = by_value_desc};
    cr_assert_eq(tl_queue_init_ex(&q, &o), 0);
    uint32_t x = 12345;
    for (int i = 0; i < 500; i++) {
        x = x * 1103515245u + 12345u;
        cr_expect_eq(tl_queue_try_put(&q, I((x >> 8) % 1000 + 1)), 0);
    }
    int last = 1 << 30;
    for (int i = 0; i < 500; i++) {
        void *v;
        cr_expect_eq(tl_queue_try_get(&q, &v), 0);
        cr_expect_leq(N(v), last);
        last = N(v);
    }
    cr_expect_eq(tl_queue_destroy(&q), 0);
    tl_queue bad;
    o.kind = TL_QUEUE_FIFO;
    cr_expect_eq(tl_queue_init_ex(&bad, &o), -EINVAL, "cmp on a FIFO");
    cr_expect_eq(tl_queue_init(&bad, 7, 0), -EINVAL);
}

Test(queue, ring_wraps_and_grows_in_order, .timeout = 10)
{
    /* maxsize 10: the ring grows 8 -> 10 while wrapped (head 5). */
    tl_queue q;
    cr_assert_eq(tl_queue_init(&q, TL_QUEUE_FIFO, 10), 0);
    int next_in = 0, next_out = 0;
    void *v;
    for (int i = 0; i < 8; i++) cr_expect_eq(tl_queue_try_put(&q, I(next_in++)), 0);
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(tl_queue_try_get(&q, &v), 0);
        cr_expect_eq(N(v), next_out++);
    }
    for (int i = 0; i < 7; i++) cr_expect_eq(tl_queue_try_put(&q, I(next_in++)), 0);
    cr_expect_eq(tl_queue_full(&q), 1);
    cr_expect_eq(tl_queue_try_put(&q, I(99)), TL_EFULL);
    while (tl_queue_try_get(&q, &v) == 0) cr_expect_eq(N(v), next_out++);
    cr_expect_eq(next_out, next_in);
    /* Unbounded: many wraps and doublings. */
    tl_queue u;
    cr_assert_eq(tl_queue_init(&u, TL_QUEUE_FIFO, 0), 0);
    next_in = next_out = 0;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 3 * round + 1; i++)
            cr_expect_eq(tl_queue_try_put(&u, I(next_in++)), 0);
        for (int i = 0; i < 2 * round; i++) {
            cr_expect_eq(tl_queue_try_get(&u, &v), 0);
            cr_expect_eq(N(v), next_out++);
        }
    }
    while (tl_queue_try_get(&u, &v) == 0) cr_expect_eq(N(v), next_out++);
    cr_expect_eq(next_out, next_in);
    cr_expect_eq(tl_queue_destroy(&q), 0);
    cr_expect_eq(tl_queue_destroy(&u), 0);
}

/* ---- waiting ------------------------------------------------------------- */

struct qw {
    tl_queue *q;
    int id;
    void *item;
    int rc;
    int after_rc;
    double at;
};

static int getter(void *arg)
{
    struct qw *w = arg;
    w->item = I(-1);
    w->rc = tl_queue_get(w->q, &w->item);
    w->at = tl_now();
    w->after_rc = tl_sleep(0.0);
    return w->rc;
}

static int putter(void *arg)
{
    struct qw *w = arg;
    w->rc = tl_queue_put(w->q, w->item);
    w->at = tl_now();
    w->after_rc = tl_sleep(0.0);
    return w->rc;
}

static int main_get_waits(void *arg)
{
    (void)arg;
    tl_queue q;
    cr_assert_eq(tl_queue_init(&q, TL_QUEUE_FIFO, 0), 0);
    struct qw g[3];
    tl_task t[3];
    for (int i = 0; i < 3; i++) {
        g[i] = (struct qw){.q = &q, .id = i};
        t[i] = tl_test_spawn(getter, &g[i]);
    }
    tl_test_settle();
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(tl_sleep(1.0), 0);
        cr_expect_eq(tl_queue_put(&q, I(100 + i)), 0);
        /* Handed straight to the getter: nobody can take it back. */
        void *x;
        cr_expect_eq(tl_queue_try_get(&q, &x), TL_EEMPTY);
        cr_expect_eq(tl_queue_size(&q), 0);
    }
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(tl_test_join(t[i]), 0);
        cr_expect_eq(N(g[i].item), 100 + i, "FIFO getters");
        cr_expect_eq(g[i].at, (double)(i + 1));
    }
    cr_expect_eq(tl_queue_unfinished(&q), 3);
    cr_expect_eq(tl_queue_destroy(&q), 0);
    return 0;
}

Test(queue, get_waits_and_put_hands_over_to_the_first_getter,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_get_waits, NULL), 0);
}

static int main_put_waits(void *arg)
{
    (void)arg;
    tl_queue q;
    cr_assert_eq(tl_queue_init(&q, TL_QUEUE_FIFO, 2), 0);
    cr_expect_eq(tl_queue_put(&q, I(1)), 0);
    cr_expect_eq(tl_queue_put(&q, I(2)), 0);
    struct qw p[3];
    tl_task t[3];
    for (int i = 0; i < 3; i++) {
        p[i] = (struct qw){.q = &q, .id = i, .item = I(10 + i)};
        t[i] = tl_test_spawn(putter, &p[i]);
    }
    tl_test_settle();
    cr_expect_eq(tl_queue_try_put(&q, I(99)), TL_EFULL);
    int want[] = {1, 2, 10, 11, 12};
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(tl_sleep(1.0), 0);
        void *x;
        cr_expect_eq(tl_queue_get(&q, &x), 0);
        cr_expect_eq(N(x), want[i], "get %d: %d", i, N(x));
        if (i < 3) {
            /* the first putter's item was taken in: still full */
            cr_expect_eq(tl_queue_size(&q), 2);
            cr_expect_eq(tl_queue_try_put(&q, I(99)), TL_EFULL,
                         "no barging past waiting putters");
        }
    }
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(tl_test_join(t[i]), 0);
        cr_expect_eq(p[i].at, (double)(i + 1));
    }
    cr_expect_eq(tl_queue_unfinished(&q), 5);
    cr_expect_eq(tl_queue_destroy(&q), 0);
    return 0;
}

Test(queue, put_waits_when_full_and_get_takes_the_first_putter_in,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_put_waits, NULL), 0);
}

static int main_lifo_putters(void *arg)
{
    (void)arg;
    tl_queue q;
    cr_assert_eq(tl_queue_init(&q, TL_QUEUE_LIFO, 2), 0);
    cr_expect_eq(tl_queue_put(&q, I(1)), 0);
    cr_expect_eq(tl_queue_put(&q, I(2)), 0);
    struct qw p = {.q = &q, .item = I(3)};
    tl_task t = tl_test_spawn(putter, &p);
    tl_test_settle();
    void *x;
    cr_expect_eq(tl_queue_get(&q, &x), 0);
    cr_expect_eq(N(x), 2);
    cr_expect_eq(tl_queue_get(&q, &x), 0);
    cr_expect_eq(N(x), 3, "the waiting putter's item went on top");
    cr_expect_eq(tl_queue_get(&q, &x), 0);
    cr_expect_eq(N(x), 1);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(tl_queue_destroy(&q), 0);
    return 0;
}

Test(queue, lifo_bounded_with_a_waiting_putter, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_lifo_putters, NULL), 0);
}

/* ---- cancellation: nothing lost ------------------------------------------ */

static int main_getter_handoff_cancel(void *arg)
{
    (void)arg;
    tl_queue q;
    cr_assert_eq(tl_queue_init(&q, TL_QUEUE_FIFO, 0), 0);
    struct qw g = {.q = &q};
    tl_task t = tl_test_spawn(getter, &g);
    tl_test_settle();
    cr_expect_eq(tl_queue_put(&q, I(5)), 0); /* g is READY with the item */
    cr_expect_eq(tl_cancel(t), 0);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(g.rc, 0, "a getter handed an item keeps it");
    cr_expect_eq(N(g.item), 5);
    cr_expect_eq(g.after_rc, -ECANCELED);
    cr_expect_eq(tl_queue_size(&q), 0);
    cr_expect_eq(tl_queue_destroy(&q), 0);
    return 0;
}

Test(queue, get_then_cancel_before_run_keeps_the_item, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_getter_handoff_cancel, NULL), 0);
}

static int main_cancel_waiters(void *arg)
{
    (void)arg;
    tl_queue q;
    cr_assert_eq(tl_queue_init(&q, TL_QUEUE_FIFO, 1), 0);
    struct qw g1 = {.q = &q}, g2 = {.q = &q};
    tl_task t1 = tl_test_spawn(getter, &g1), t2 = tl_test_spawn(getter, &g2);
    tl_test_settle();
    cr_expect_eq(tl_cancel(t1), 0);
    cr_expect_eq(tl_test_join(t1), -ECANCELED);
    cr_expect_eq(N(g1.item), -1, "a cancelled getter took nothing");
    cr_expect_eq(tl_queue_put(&q, I(7)), 0);
    cr_expect_eq(tl_test_join(t2), 0);
    cr_expect_eq(N(g2.item), 7, "the item went to the next getter");

    cr_expect_eq(tl_queue_put(&q, I(8)), 0); /* full now */
    struct qw p1 = {.q = &q, .item = I(9)}, p2 = {.q = &q, .item = I(10)};
    tl_task u1 = tl_test_spawn(putter, &p1), u2 = tl_test_spawn(putter, &p2);
    tl_test_settle();
    cr_expect_eq(tl_cancel(u1), 0);
    cr_expect_eq(tl_test_join(u1), -ECANCELED,
                 "a cancelled putter put nothing");
    void *x;
    cr_expect_eq(tl_queue_get(&q, &x), 0);
    cr_expect_eq(N(x), 8);
    cr_expect_eq(tl_cancel(u2), 0); /* its item was taken in: it keeps 0 */
    cr_expect_eq(tl_test_join(u2), 0);
    cr_expect_eq(p2.rc, 0);
    cr_expect_eq(p2.after_rc, -ECANCELED);
    cr_expect_eq(tl_queue_get(&q, &x), 0);
    cr_expect_eq(N(x), 10);
    cr_expect_eq(tl_queue_size(&q), 0);
    cr_expect_eq(tl_queue_unfinished(&q), 3, "puts of 7, 8 and 10");
    cr_expect_eq(tl_queue_destroy(&q), 0);
    return 0;
}

Test(queue, cancelled_getters_take_nothing_cancelled_putters_put_nothing,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_cancel_waiters, NULL), 0);
}

static int main_cancelled_with_items(void *arg)
{
    tl_queue *q = arg;
    tl_cancel(tl_current());
    void *x;
    cr_expect_eq(tl_queue_get(q, &x), -ECANCELED, "level-triggered");
    cr_expect_eq(tl_queue_put(q, I(3)), -ECANCELED);
    cr_expect_eq(tl_queue_join(q), -ECANCELED);
    cr_expect_eq(tl_queue_size(q), 1);
    /* The non-suspending variants do not look at cancellation. */
    cr_expect_eq(tl_queue_try_get(q, &x), 0);
    cr_expect_eq(N(x), 1);
    return 0;
}

Test(queue, cancelled_task_gets_ECANCELED_even_with_items, .timeout = 10)
{
    tl_queue q;
    cr_assert_eq(tl_queue_init(&q, TL_QUEUE_FIFO, 0), 0);
    cr_assert_eq(tl_queue_try_put(&q, I(1)), 0);
    cr_assert_eq(run_virtual(main_cancelled_with_items, &q), 0);
    cr_expect_eq(tl_queue_destroy(&q), 0);
}

static int main_get_timeout(void *arg)
{
    (void)arg;
    tl_queue q;
    cr_assert_eq(tl_queue_init(&q, TL_QUEUE_FIFO, 0), 0);
    int rc;
    void *x = NULL;
    TL_WITH_TIMEOUT(2.0, &rc) { rc = tl_queue_get(&q, &x); }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_now(), 2.0);
    cr_expect_eq(tl_queue_destroy(&q), 0, "the getter left");
    return 0;
}

Test(queue, get_with_a_deadline, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_get_timeout, NULL), 0);
}

/* ---- task_done / join ------------------------------------------------------ */

struct worker {
    tl_queue *q;
    int done;
};

static int worker(void *arg)
{
    struct worker *w = arg;
    for (;;) {
        void *x;
        int rc = tl_queue_get(w->q, &x);
        if (rc < 0) return rc == TL_EQSHUTDOWN ? 0 : rc;
        if (tl_sleep(N(x) * 0.5) < 0) return -ECANCELED;
        w->done++;
        cr_expect_eq(tl_queue_task_done(w->q), 0);
    }
}

static int main_join(void *arg)
{
    (void)arg;
    tl_queue q;
    cr_assert_eq(tl_queue_init(&q, TL_QUEUE_FIFO, 0), 0);
    cr_expect_eq(tl_queue_join(&q), 0, "nothing pending: at once");
    struct worker w = {.q = &q};
    tl_task t = tl_test_spawn(worker, &w);
    for (int i = 1; i <= 4; i++) cr_expect_eq(tl_queue_put(&q, I(i)), 0);
    cr_expect_eq(tl_queue_unfinished(&q), 4);
    cr_expect_eq(tl_queue_join(&q), 0);
    cr_expect_eq(tl_now(), 5.0, "0.5 + 1 + 1.5 + 2");
    cr_expect_eq(w.done, 4);
    cr_expect_eq(tl_queue_unfinished(&q), 0);
    cr_expect_eq(tl_queue_task_done(&q), -EINVAL, "more than were put");
    cr_expect_eq(tl_queue_shutdown(&q, 0), 0);
    cr_expect_eq(tl_test_join(t), 0);
    cr_expect_eq(tl_queue_destroy(&q), 0);
    return 0;
}

Test(queue, join_waits_for_every_task_done, .timeout = 10)
{
    char out[2048];
    int st = run_virtual_child(main_join, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "rc=0");
    TL_EXPECT_OUT(out, "called more times than items were put");
}

static int joiner(void *arg) { return tl_queue_join(arg); }

static int main_join_cancel(void *arg)
{
    (void)arg;
    tl_queue q;
    cr_assert_eq(tl_queue_init(&q, TL_QUEUE_FIFO, 0), 0);
    cr_expect_eq(tl_queue_put(&q, I(1)), 0);
    tl_task a = tl_test_spawn(joiner, &q), b = tl_test_spawn(joiner, &q);
    tl_test_settle();
    cr_expect_eq(tl_cancel(a), 0);
    cr_expect_eq(tl_test_join(a), -ECANCELED);
    void *x;
    cr_expect_eq(tl_queue_get(&q, &x), 0);
    cr_expect_eq(tl_queue_task_done(&q), 0);
    cr_expect_eq(tl_cancel(b), 0); /* woken first: keeps its 0 */
    cr_expect_eq(tl_test_join(b), 0);
    cr_expect_eq(tl_queue_destroy(&q), 0);
    return 0;
}

Test(queue, join_cancel_before_and_after_done, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_join_cancel, NULL), 0);
}

/* ---- shutdown -------------------------------------------------------------- */

static int main_shutdown_graceful(void *arg)
{
    (void)arg;
    tl_queue q;
    cr_assert_eq(tl_queue_init(&q, TL_QUEUE_FIFO, 2), 0);
    cr_expect_eq(tl_queue_put(&q, I(1)), 0);
    cr_expect_eq(tl_queue_put(&q, I(2)), 0);
    struct qw p = {.q = &q, .item = I(3)};
    tl_task tp = tl_test_spawn(putter, &p);
    tl_test_settle();
    cr_expect_eq(tl_queue_shutdown(&q, 0), 0);
    cr_expect_eq(tl_queue_is_shutdown(&q), 1);
    cr_expect_eq(tl_test_join(tp), TL_EQSHUTDOWN, "the waiting putter fails");
    cr_expect_eq(tl_queue_put(&q, I(4)), TL_EQSHUTDOWN);
    cr_expect_eq(tl_queue_try_put(&q, I(4)), TL_EQSHUTDOWN);
    void *x;
    cr_expect_eq(tl_queue_get(&q, &x), 0, "items left are drained");
    cr_expect_eq(N(x), 1);
    cr_expect_eq(tl_queue_try_get(&q, &x), 0);
    cr_expect_eq(N(x), 2);
    cr_expect_eq(tl_queue_get(&q, &x), TL_EQSHUTDOWN, "then it fails");
    cr_expect_eq(tl_queue_try_get(&q, &x), TL_EQSHUTDOWN);
    cr_expect_eq(tl_queue_unfinished(&q), 2);

    /* Waiting getters of an empty queue fail at once. */
    tl_queue e;
    cr_assert_eq(tl_queue_init(&e, TL_QUEUE_FIFO, 0), 0);
    struct qw g[2] = {{.q = &e}, {.q = &e}};
    tl_task tg[2] = {tl_test_spawn(getter, &g[0]),
                     tl_test_spawn(getter, &g[1])};
    tl_test_settle();
    cr_expect_eq(tl_queue_shutdown(&e, 0), 0);
    for (int i = 0; i < 2; i++)
        cr_expect_eq(tl_test_join(tg[i]), TL_EQSHUTDOWN);
    cr_expect_eq(tl_queue_destroy(&q), 0);
    cr_expect_eq(tl_queue_destroy(&e), 0);
    return 0;
}

Test(queue, graceful_shutdown_fails_puts_and_drains_gets, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_shutdown_graceful, NULL), 0);
}

static void count_drop(void *item, void *arg)
{
    int *sum = arg;
    *sum += N(item);
}

static int main_shutdown_immediate(void *arg)
{
    (void)arg;
    tl_queue q;
    int dropped_sum = 0;
    tl_queue_opts o = {.kind = TL_QUEUE_FIFO, .maxsize = 3,
                       .drop = count_drop, .drop_arg = &dropped_sum};
    cr_assert_eq(tl_queue_init_ex(&q, &o), 0);
    for (int i = 1; i <= 3; i++) cr_expect_eq(tl_queue_put(&q, I(i)), 0);
    struct qw p = {.q = &q, .item = I(100)};
    tl_task tp = tl_test_spawn(putter, &p);
    tl_task tj = tl_test_spawn(joiner, &q);
    tl_test_settle();
    void *x;
    cr_expect_eq(tl_queue_get(&q, &x), 0); /* 1 out, the putter's 100 in */
    cr_expect_eq(tl_queue_task_done(&q), 0);
    cr_expect_eq(tl_queue_unfinished(&q), 3);
    cr_expect_eq(tl_queue_shutdown(&q, 1), 3, "2, 3 and 100 dropped");
    cr_expect_eq(dropped_sum, 105);
    cr_expect_eq(tl_queue_unfinished(&q), 0, "dropped items count as done");
    cr_expect_eq(tl_test_join(tp), 0,
                 "its item was taken in before the shutdown");
    cr_expect_eq(tl_test_join(tj), 0, "join woke");
    cr_expect_eq(tl_queue_get(&q, &x), TL_EQSHUTDOWN);
    cr_expect_eq(tl_queue_put(&q, I(1)), TL_EQSHUTDOWN);

    tl_queue e;
    cr_assert_eq(tl_queue_init(&e, TL_QUEUE_FIFO, 1), 0);
    struct qw g = {.q = &e};
    tl_task tg = tl_test_spawn(getter, &g);
    tl_test_settle();
    cr_expect_eq(tl_queue_put(&e, I(1)), 0); /* handed to g */
    cr_expect_eq(tl_queue_put(&e, I(2)), 0);
    struct qw p2 = {.q = &e, .item = I(3)};
    tl_task tp2 = tl_test_spawn(putter, &p2);
    struct qw g2 = {.q = &e};
    tl_test_settle();
    cr_expect_eq(tl_queue_shutdown(&e, 1), 1);
    cr_expect_eq(tl_test_join(tg), 0,
                 "woken with its item before the shutdown");
    cr_expect_eq(N(g.item), 1);
    cr_expect_eq(tl_test_join(tp2), TL_EQSHUTDOWN, "the waiting putter fails");
    tl_task tg2 = tl_test_spawn(getter, &g2);
    cr_expect_eq(tl_test_join(tg2), TL_EQSHUTDOWN);
    cr_expect_eq(tl_queue_destroy(&q), 0);
    cr_expect_eq(tl_queue_destroy(&e), 0);
    return 0;
}

Test(queue, immediate_shutdown_drops_items_and_wakes_everyone,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_shutdown_immediate, NULL), 0);
}

static int main_destroy(void *arg)
{
    (void)arg;
    tl_queue q;
    int sum = 0;
    tl_queue_opts o = {.kind = TL_QUEUE_LIFO, .drop = count_drop,
                       .drop_arg = &sum};
    cr_assert_eq(tl_queue_init_ex(&q, &o), 0);
    tl_queue e;
    cr_assert_eq(tl_queue_init(&e, TL_QUEUE_FIFO, 0), 0);
    struct qw g = {.q = &e};
    tl_task t = tl_test_spawn(getter, &g);
    tl_test_settle();
    cr_expect_eq(tl_queue_destroy(&e), -EBUSY);
    cr_expect_eq(tl_queue_shutdown(&e, 0), 0);
    cr_expect_eq(tl_test_join(t), TL_EQSHUTDOWN);
    cr_expect_eq(tl_queue_destroy(&e), 0);
    cr_expect_eq(tl_queue_try_put(&e, I(1)), -EINVAL, "destroyed");
    for (int i = 1; i <= 4; i++) cr_expect_eq(tl_queue_put(&q, I(i)), 0);
    cr_expect_eq(tl_queue_destroy(&q), 0);
    cr_expect_eq(sum, 10, "destroy hands the items left to drop");
    return 0;
}

Test(queue, destroy_with_waiters_is_EBUSY_and_drops_items, .timeout = 10)
{
    char out[2048];
    int st = run_virtual_child(main_destroy, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "rc=0");
    TL_EXPECT_OUT(out, "tasks still wait on queue");
    TL_EXPECT_OUT(out, "not a live tl_queue");
}

static void outside_child(void *arg)
{
    (void)arg;
    tl_queue q;
    tl_queue_init(&q, TL_QUEUE_FIFO, 0);
    void *x;
    printf("get=%d\n", tl_queue_get(&q, &x));
    printf("try=%d\n", tl_queue_try_put(&q, I(1)));
    tl_queue_destroy(&q);
}

Test(queue, get_outside_a_task_is_refused, .timeout = 10)
{
    char out[2048];
    int st = run_child(outside_child, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    char want[32];
    snprintf(want, sizeof want, "get=%d", TL_ENOTASK);
    TL_EXPECT_OUT(out, want);
    TL_EXPECT_OUT(out, "try=0");
}
