/* Nothing silent, nothing lost: what a task leaves behind is reported.
 *
 * - a generator or a wait set nobody closed is named at tl_run's end like
 *   an unjoined failed task, and freed (no leak under ASan).
 *
 * Each case runs in a child (run_child) so that its stderr can be read
 * back; the child records what it saw in a MAP_SHARED page.
 */
#include "helpers.h"

#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#define OUT_LEN 16384

struct facts {
    int rc[8];
    int seen[8];
    int leaks; /* LeakSanitizer found leaks after tl_run returned */
};

static struct facts *F;
static char out[OUT_LEN];

static void facts_init(void) { F = tl_test_shared_page(sizeof *F); }
static void facts_fini(void) { munmap(F, sizeof *F); }

/* Run main_fn on the virtual clock in a child; its status lands in
 * F->rc[7]. Under ASan, leaks are looked for right after tl_run (the
 * child leaves with _exit, which skips LeakSanitizer's own check). */
static void child_main(void *arg)
{
    F->rc[7] = run_virtual((tl_fn)arg, NULL);
#if defined(__SANITIZE_ADDRESS__)
    F->leaks = __lsan_do_recoverable_leak_check();
#endif
}

static int child_run(tl_fn main_fn)
{
    return tl_test_child(child_main, (void *)main_fn, out, sizeof out);
}

/* ---- generators and wait sets nobody closed ----------------------------- */

static int numbers(tl_gen *g, void *arg)
{
    (void)arg;
    static int v[4];
    for (int i = 0;; i++) {
        v[i % 4] = i;
        int rc = tl_gen_yield(g, &v[i % 4]);
        if (rc < 0) {
            F->seen[0]++; /* its cleanup ran (cancelled at teardown) */
            return rc;
        }
    }
}

static int main_leaves_a_generator(void *arg)
{
    (void)arg;
    tl_gen *g;
    if (tl_gen_new(&g, numbers, NULL, &(tl_gen_opts){.name = "numbers"}))
        return -1;
    void *v;
    F->rc[0] = tl_gen_next(g, &v);
    F->rc[1] = *(int *)v;
    return 0; /* no tl_gen_close */
}

Test(abandoned, unclosed_generator_is_reported_and_freed, .init = facts_init,
     .fini = facts_fini, .timeout = 10)
{
    int st = child_run(main_leaves_a_generator);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[7], 0, "%s", out);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->seen[0], 1, "the producer's cleanup ran");
    TL_EXPECT_OUT(out, "generator 'numbers' (made by task 'main') was never "
                       "closed");
    cr_expect_eq(F->leaks, 0, "%s", out);
}

static int main_closes_its_generator(void *arg)
{
    (void)arg;
    tl_gen *g;
    if (tl_gen_new(&g, numbers, NULL, NULL)) return -1;
    void *v;
    F->rc[0] = tl_gen_next(g, &v);
    return tl_gen_close(g);
}

Test(abandoned, closed_generator_is_not_reported, .init = facts_init,
     .fini = facts_fini, .timeout = 10)
{
    int st = child_run(main_closes_its_generator);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[7], 0, "%s", out);
    TL_EXPECT_NOT_OUT(out, "never closed");
    cr_expect_eq(F->leaks, 0, "%s", out);
}

static int fails_later(void *arg)
{
    (void)arg;
    int rc = tl_sleep(1);
    if (rc < 0) return rc;
    return tl_fail(-EIO, "disk on fire");
}

static int quick(void *arg)
{
    (void)arg;
    return 3;
}

static int main_leaves_a_wait_set(void *arg)
{
    (void)arg;
    tl_waitset *ws;
    if (tl_waitset_new(&ws)) return -1;
    tl_task mine;
    if (tl_spawn(&mine, quick, NULL)) return -2;
    if (tl_waitset_add_task(ws, mine, NULL)) return -3;
    if (tl_waitset_add_call(ws, TL_CALL(fails_later, NULL), NULL)) return -4;
    /* Let the failing member fail: its error is owed to someone. */
    if (tl_sleep(2)) return -5;
    return 0; /* no tl_waitset_close */
}

Test(abandoned, unclosed_wait_set_is_reported_and_freed, .init = facts_init,
     .fini = facts_fini, .timeout = 10)
{
    int st = child_run(main_leaves_a_wait_set);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[7], 0, "%s", out);
    TL_EXPECT_OUT(out, "a wait set (made by task 'main', 2 member(s) not "
                       "yielded) was never closed");
    /* The owned member's failure nobody saw is reported too. */
    TL_EXPECT_OUT(out, "task 'fails_later' failed with -EIO");
    TL_EXPECT_OUT(out, "disk on fire");
    cr_expect_eq(F->leaks, 0, "%s", out);
}
