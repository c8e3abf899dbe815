/* Nothing silent, nothing lost: what a task leaves behind is reported.
 *
 * - a generator or a wait set nobody closed is named at tl_run's end like
 *   an unjoined failed task, and freed (no leak under ASan);
 * - a task that suspends with a changed FP control state (flush-to-zero,
 *   denormals-are-zero, x87 precision) is named in debug builds and the
 *   state restored, so other tasks' arithmetic is not changed;
 * - a task that ends holding a tl_lock is named with where it acquired it,
 *   and the lock's waiters and later acquirers get -EOWNERDEAD, never a
 *   hang.
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

/* ---- FP control state ----------------------------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
#define HAVE_FP_TEST 1
static unsigned mxcsr_get(void)
{
    unsigned m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    return m;
}
static void mxcsr_set(unsigned m) { __asm__ volatile("ldmxcsr %0" : : "m"(m)); }
static unsigned short x87_get(void)
{
    unsigned short cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return cw;
}
static void x87_set(unsigned short cw) { __asm__ volatile("fldcw %0" : : "m"(cw)); }
#define FTZ_DAZ ((1u << 15) | (1u << 6))
#elif defined(__aarch64__)
#define HAVE_FP_TEST 1
static unsigned long fpcr_get(void)
{
    unsigned long v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
}
static void fpcr_set(unsigned long v) { __asm__ volatile("msr fpcr, %0" : : "r"(v)); }
#else
#define HAVE_FP_TEST 0
#endif

#if HAVE_FP_TEST
/* Sets flush-to-zero (and denormals-are-zero on x86) and suspends. */
static int sets_ftz(void *arg)
{
    (void)arg;
#if defined(__aarch64__)
    fpcr_set(fpcr_get() | (1ul << 24));
#else
    mxcsr_set(mxcsr_get() | FTZ_DAZ);
#endif
    return tl_yield();
}

/* Runs after sets_ftz suspended: is a denormal still a denormal? */
static int computes(void *arg)
{
    (void)arg;
    volatile double tiny = 1e-310, one = 1.0;
    F->seen[1] = tiny * one != 0.0;
#if defined(__aarch64__)
    F->seen[2] = (fpcr_get() & (1ul << 24)) != 0;
#else
    F->seen[2] = (mxcsr_get() & FTZ_DAZ) != 0;
#endif
    return 0;
}

__attribute__((unused)) static int main_ftz(void *arg)
{
    (void)arg;
    tl_task a, b;
    if (tl_spawn_ex(&a, &(tl_spawn_opts){.name = "ftz"}, sets_ftz, NULL) ||
        tl_spawn(&b, computes, NULL))
        return -1;
    F->rc[0] = tl_join(a, NULL);
    F->rc[1] = tl_join(b, NULL);
    return 0;
}
#endif

Test(abandoned, flush_to_zero_does_not_leak_into_other_tasks,
     .init = facts_init, .fini = facts_fini, .timeout = 10)
{
#if !HAVE_FP_TEST
    cr_skip_test("FP control registers are read on x86 and AArch64 only");
#elif defined(NDEBUG)
    cr_skip_test("the FP control check is a debug-build check");
#else
    int st = child_run(main_ftz);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[7], 0, "%s", out);
    cr_expect_eq(F->seen[1], 1, "the other task saw denormals flushed");
    cr_expect_eq(F->seen[2], 0, "the other task inherited flush-to-zero");
    TL_EXPECT_OUT(out, "task 'ftz' suspended with a changed FP control "
                       "state (flush-to-zero set");
#if !defined(__aarch64__)
    TL_EXPECT_OUT(out, "denormals-are-zero set (MXCSR.DAZ)");
#endif
#endif
}

#if defined(__x86_64__) || defined(__i386__)
static int sets_x87_precision(void *arg)
{
    (void)arg;
    x87_set((unsigned short)(x87_get() & ~(3u << 8))); /* 24-bit mantissa */
    return tl_yield();
}

static int reads_x87(void *arg)
{
    (void)arg;
    F->seen[3] = (x87_get() >> 8) & 3;
    return 0;
}

__attribute__((unused)) static int main_x87(void *arg)
{
    (void)arg;
    tl_task a, b;
    if (tl_spawn_ex(&a, &(tl_spawn_opts){.name = "x87"}, sets_x87_precision,
                    NULL) ||
        tl_spawn(&b, reads_x87, NULL))
        return -1;
    F->seen[4] = (x87_get() >> 8) & 3; /* main's own precision */
    F->rc[0] = tl_join(a, NULL);
    F->rc[1] = tl_join(b, NULL);
    return 0;
}
#endif

Test(abandoned, x87_precision_does_not_leak_into_other_tasks,
     .init = facts_init, .fini = facts_fini, .timeout = 10)
{
#if !defined(__x86_64__) && !defined(__i386__)
    cr_skip_test("x86 only");
#elif defined(NDEBUG)
    cr_skip_test("the FP control check is a debug-build check");
#else
    int st = child_run(main_x87);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->seen[3], F->seen[4], "precision control leaked");
    TL_EXPECT_OUT(out, "task 'x87' suspended with a changed FP control "
                       "state (x87 precision control)");
#endif
}

/* ---- a task that ends holding a lock -------------------------------------- */

static tl_lock L;
static tl_cond C;

static int holder(void *arg)
{
    (void)arg;
    if (tl_lock_acquire(&L) != 0) return -1;
    F->seen[5] = 1;
    (void)!tl_sleep(1);
    return 0; /* forgets tl_lock_release */
}

static int waiter(void *arg)
{
    (void)arg;
    F->rc[2] = tl_lock_acquire(&L); /* queued behind holder */
    return 0;
}

static int main_abandons_a_lock(void *arg)
{
    (void)arg;
    tl_lock_init(&L);
    tl_task h, w;
    if (tl_spawn_ex(&h, &(tl_spawn_opts){.name = "holder"}, holder, NULL) ||
        tl_spawn(&w, waiter, NULL))
        return -1;
    if (tl_join(h, NULL) || tl_join(w, NULL)) return -2;
    F->rc[3] = tl_lock_acquire(&L);     /* a later acquirer */
    F->rc[4] = tl_lock_try_acquire(&L);
    F->rc[5] = tl_lock_locked(&L);
    /* Repaired: a new lock works. */
    tl_lock_init(&L);
    int rc = tl_lock_acquire(&L);
    if (rc == 0) rc = tl_lock_release(&L);
    F->rc[6] = rc;
    return 0;
}

Test(abandoned, task_ending_with_a_lock_is_reported_and_nobody_hangs,
     .init = facts_init, .fini = facts_fini, .timeout = 10)
{
    int st = child_run(main_abandons_a_lock);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[7], 0, "%s", out);
    cr_expect_eq(F->seen[5], 1);
    cr_expect_eq(F->rc[2], -EOWNERDEAD, "waiter: %d\n%s", F->rc[2], out);
    cr_expect_eq(F->rc[3], -EOWNERDEAD, "later acquire: %d", F->rc[3]);
    cr_expect_eq(F->rc[4], -EOWNERDEAD, "try_acquire: %d", F->rc[4]);
    cr_expect_neq(F->rc[5], 0, "an abandoned lock reads as locked");
    cr_expect_eq(F->rc[6], 0, "re-initialised lock: %d", F->rc[6]);
    /* Named once, at the owner's end, with where it acquired the lock
     * (module+offset: this test program). */
    TL_EXPECT_OUT(out, "task 'holder' ended holding lock ");
    TL_EXPECT_OUT(out, "(acquired at ");
    TL_EXPECT_OUT(out, "test_abandoned+0x");
    TL_EXPECT_OUT(out, "1 waiter(s) and every later acquire get -EOWNERDEAD");
    cr_expect_eq(tl_test_count_of(out, "ended holding lock"), 1, "%s", out);
    TL_EXPECT_OUT(out, "tl_lock_acquire: lock ");
}

static int with_lock_holder(void *arg)
{
    (void)arg;
    int rc;
    TL_WITH_LOCK(&L, &rc)
    {
        /* Leaves the task, not the block: the cleanup releases the lock
         * on the way out of the function, so nothing is abandoned. */
        return tl_sleep(0.5);
    }
    return rc;
}

static int main_with_lock(void *arg)
{
    (void)arg;
    tl_lock_init(&L);
    tl_task h;
    if (tl_spawn(&h, with_lock_holder, NULL)) return -1;
    F->rc[0] = tl_lock_acquire(&L); /* waits for the block's release */
    if (F->rc[0] == 0) (void)tl_lock_release(&L);
    return tl_join(h, NULL);
}

Test(abandoned, a_lock_released_by_its_block_is_not_abandoned,
     .init = facts_init, .fini = facts_fini, .timeout = 10)
{
    int st = child_run(main_with_lock);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[7], 0, "%s", out);
    cr_expect_eq(F->rc[0], 0);
    TL_EXPECT_NOT_OUT(out, "abandon");
}

static int notifier_forgets(void *arg)
{
    (void)arg;
    if (tl_lock_acquire(tl_cond_lock(&C)) != 0) return -1;
    (void)tl_cond_notify_all(&C); /* the waiter now queues for the lock */
    return 0;                     /* ... which is never released */
}

static int cond_waiter(void *arg)
{
    (void)arg;
    if (tl_lock_acquire(tl_cond_lock(&C)) != 0) return -1;
    F->rc[1] = tl_cond_wait(&C);
    F->seen[6] = tl_lock_owned(tl_cond_lock(&C));
    if (F->rc[1] == 0) (void)tl_lock_release(tl_cond_lock(&C));
    return 0;
}

static int main_cond_abandoned(void *arg)
{
    (void)arg;
    tl_cond_init(&C, NULL);
    tl_task w, n;
    if (tl_spawn(&w, cond_waiter, NULL)) return -1;
    (void)!tl_yield(); /* the waiter is in tl_cond_wait */
    if (tl_spawn_ex(&n, &(tl_spawn_opts){.name = "notifier"},
                    notifier_forgets, NULL))
        return -2;
    if (tl_join(n, NULL) || tl_join(w, NULL)) return -3;
    return 0;
}

Test(abandoned, cond_waiter_sees_an_abandoned_lock, .init = facts_init,
     .fini = facts_fini, .timeout = 10)
{
    int st = child_run(main_cond_abandoned);
    TL_ASSERT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[7], 0, "%s", out);
    cr_expect_eq(F->rc[1], -EOWNERDEAD, "%d\n%s", F->rc[1], out);
    cr_expect_eq(F->seen[6], 0, "returned without the lock");
    TL_EXPECT_OUT(out, "task 'notifier' ended holding lock ");
}
