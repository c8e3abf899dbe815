/* Adversarial review of the runtime against DESIGN.md's invariants: each
 * test pins down a bug that was found and fixed (one behaviour per test).
 * Everything runs on the virtual clock.
 */
#include "helpers.h"

#include <criterion/redirect.h>

/* ---- condition: a cancelled waiter is still inside tl_cond_wait ---------- *
 *
 * A waiter cancelled before any notify must re-acquire the lock before it
 * returns. It used to leave the condition's wait list at the cancel and
 * touch the lock only when it ran again, so in between tl_cond_destroy saw
 * no waiter, agreed, and the waiter then re-acquired a destroyed lock (a
 * use-after-free when the condition lives in freed memory). */

struct cw {
    tl_cond *c;
    int rc;
    int owned_after; /* held the lock when tl_cond_wait returned */
    int release_rc;
};

static int cond_waiter(void *arg)
{
    struct cw *w = arg;
    tl_lock *l = tl_cond_lock(w->c);
    cr_expect_eq(tl_lock_acquire(l), 0);
    w->rc = tl_cond_wait(w->c);
    w->owned_after = tl_lock_owned(l);
    w->release_rc = tl_lock_release(l);
    return w->rc;
}

static int cond_destroy_main(void *arg)
{
    (void)arg;
    tl_cond c;
    cr_expect_eq(tl_cond_init(&c, NULL), 0);
    struct cw w = {.c = &c, .rc = 1};
    tl_task t;
    cr_expect_eq(tl_spawn(&t, cond_waiter, &w), 0);
    for (int i = 0; i < 3; i++) cr_expect_eq(tl_yield(), 0);
    cr_expect_eq(tl_cancel(t), 0);
    /* The waiter has not run since the cancel: it is still inside
     * tl_cond_wait and will hold the condition's lock when it returns. */
    cr_expect_eq(tl_cond_destroy(&c), -EBUSY);
    int st = 0;
    cr_expect_eq(tl_join(t, &st), 0);
    cr_expect_eq(st, -ECANCELED);
    cr_expect_eq(w.owned_after, 1);
    cr_expect_eq(w.release_rc, 0);
    cr_expect_eq(tl_cond_destroy(&c), 0);
    return 0;
}

Test(review, cond_destroy_refused_while_a_cancelled_waiter_reacquires,
     .timeout = 10)
{
    cr_redirect_stderr();
    cr_expect_eq(run_virtual(cond_destroy_main, NULL), 0);
}

/* The same with the lock held by someone else at the cancel: the
 * cancelled waiter queues for the lock behind the earlier waiters (no
 * barging) and returns -ECANCELED holding it. */
struct order3 {
    int ids[8];
    int n;
};

struct cw2 {
    tl_cond *c;
    struct order3 *o;
    int id;
    int rc;
};

static int lock_taker(void *arg)
{
    struct cw2 *w = arg;
    tl_lock *l = tl_cond_lock(w->c);
    w->rc = tl_lock_acquire(l);
    w->o->ids[w->o->n++] = w->id;
    cr_expect_eq(tl_lock_release(l), 0);
    return 0;
}

static int cond_waiter2(void *arg)
{
    struct cw2 *w = arg;
    tl_lock *l = tl_cond_lock(w->c);
    cr_expect_eq(tl_lock_acquire(l), 0);
    w->rc = tl_cond_wait(w->c);
    cr_expect_eq(tl_lock_owned(l), 1);
    w->o->ids[w->o->n++] = w->id;
    cr_expect_eq(tl_lock_release(l), 0);
    return 0;
}

static int cond_cancel_queue_main(void *arg)
{
    (void)arg;
    tl_cond c;
    cr_expect_eq(tl_cond_init(&c, NULL), 0);
    tl_lock *l = tl_cond_lock(&c);
    struct order3 o = {{0}, 0};
    struct cw2 w = {.c = &c, .o = &o, .id = 1, .rc = 1};
    struct cw2 x = {.c = &c, .o = &o, .id = 2, .rc = 1};
    struct cw2 y = {.c = &c, .o = &o, .id = 3, .rc = 1};
    tl_task tw, tx, ty;
    cr_expect_eq(tl_spawn(&tw, cond_waiter2, &w), 0);
    for (int i = 0; i < 3; i++) cr_expect_eq(tl_yield(), 0); /* w waits */
    cr_expect_eq(tl_lock_acquire(l), 0);
    cr_expect_eq(tl_spawn(&tx, lock_taker, &x), 0);
    for (int i = 0; i < 3; i++) cr_expect_eq(tl_yield(), 0); /* x queues */
    cr_expect_eq(tl_cancel(tw), 0);  /* w queues behind x */
    cr_expect_eq(tl_spawn(&ty, lock_taker, &y), 0);
    for (int i = 0; i < 3; i++) cr_expect_eq(tl_yield(), 0); /* y queues */
    cr_expect_eq(tl_lock_release(l), 0);
    cr_expect_eq(tl_join(tw, NULL), 0);
    cr_expect_eq(tl_join(tx, NULL), 0);
    cr_expect_eq(tl_join(ty, NULL), 0);
    cr_expect_eq(w.rc, -ECANCELED);
    cr_expect_eq(x.rc, 0);
    cr_expect_eq(y.rc, 0);
    cr_expect_eq(o.n, 3);
    cr_expect_eq(o.ids[0], 2);
    cr_expect_eq(o.ids[1], 1);
    cr_expect_eq(o.ids[2], 3);
    cr_expect_eq(tl_cond_destroy(&c), 0);
    return 0;
}

Test(review, cond_cancelled_waiter_queues_for_the_lock_in_cancel_order,
     .timeout = 10)
{
    cr_expect_eq(run_virtual(cond_cancel_queue_main, NULL), 0);
}

/* ---- a task returns with a group open: children's status pointers -------- *
 *
 * A child's `status` pointer is promised valid only until tl_group_wait
 * returns. When the owner returns without waiting, the runtime cancels and
 * joins the children on the owner's stack (invariant 6) — the stack where
 * the returned frame's `int status` lived. Writing the children's results
 * there scribbled over dead memory, possibly over the unwinding frames
 * themselves. */

static volatile int *dead_status;  /* &status in the returned frame */
static volatile int child_done;
static volatile int seen_after_child = -1;

static int unwind_child(void *arg)
{
    (void)arg;
    int rc = tl_sleep(100.0); /* until the unwind cancels it */
    cr_expect_eq(rc, -ECANCELED);
    child_done = 1;
    return 777;
}

static __attribute__((noinline)) int forgets_its_group(void *arg)
{
    (void)arg;
    /* Deep in this frame, far below anything the unwind calls. */
    volatile int area[4096];
    area[0] = 0;
    dead_status = &area[0];
    tl_group g;
    cr_expect_eq(tl_group_enter(&g), 0);
    cr_expect_eq(tl_group_spawn_ex(g, NULL, unwind_child, NULL,
                                   (int *)&area[0]), 0);
    return area[4095] = 0; /* no tl_group_wait */
}

/* Runs every iteration until the child is done, then reads the dead slot
 * once: in the iteration after the child finished, ahead of the owner
 * (woken by the child's end), whose stack is still in use. */
static int observer(void *arg)
{
    (void)arg;
    while (!child_done) (void)tl_yield();
    seen_after_child = *dead_status;
    return 0;
}

static int unwind_status_main(void *arg)
{
    (void)arg;
    tl_task obs, owner;
    cr_expect_eq(tl_spawn(&obs, observer, NULL), 0);
    cr_expect_eq(tl_spawn(&owner, forgets_its_group, NULL), 0);
    int st = -1;
    cr_expect_eq(tl_join(owner, &st), 0);
    cr_expect_eq(st, 0);
    cr_expect_eq(tl_join(obs, NULL), 0);
    return 0;
}

Test(review, unwound_group_does_not_write_child_status_into_dead_frame,
     .timeout = 10)
{
    cr_redirect_stderr();
    cr_expect_eq(run_virtual(unwind_status_main, NULL), 0);
    cr_expect_eq(child_done, 1);
    cr_expect_eq(seen_after_child, 0);
}
