/* Task stacks through the real runtime (tl_run), not the stack pool alone
 * (that is tests/test_arch.c): the stack size options, the overflow report
 * for each guard strategy, and TULIP_STACK_CENSUS=1.
 *
 * What each guard strategy gives (src/stack.c, src/task.c, src/loop.c):
 *   madvise, mprotect  the 1 MiB guard below the stack faults; the
 *                      SIGSEGV handler (installed by tl_run, on the
 *                      per-thread alternate stack) sees the fault lies in
 *                      the running task's guard and prints "stack overflow
 *                      in task '<name>' (fault at A, guard [LO, HI))", then
 *                      abort()s. Faults elsewhere go to the previous handler.
 *   canary             the 1 MiB gap stays mapped, so nothing faults; the
 *                      word at the stack's lowest bytes is checked when the
 *                      task next suspends and when it ends: "possible stack
 *                      overflow in task '<name>' (its stack canary was
 *                      overwritten)", then abort(). An overflow deeper than
 *                      the gap would corrupt a neighbour: canary overflows
 *                      here stay inside the gap.
 */
#include <sys/mman.h>

#include "helpers.h"
#include "core/stack.h"

#define KiB 1024
#define MiB (1024 * 1024)

struct facts {
    int rc[16];
    long used[4];
};

static struct facts *F;
static char out[16384];

/* ---- using the stack ---------------------------------------------------- */

/* Touch `bytes` of stack in one frame (with -fstack-clash-protection every
 * page of it is probed on entry) and return a checksum of it. */
static __attribute__((noinline)) long use_stack(size_t bytes)
{
    volatile char *buf = __builtin_alloca(bytes);
    for (size_t i = 0; i < bytes; i += 512) buf[i] = (char)(i >> 9);
    long sum = 0;
    for (size_t i = 0; i < bytes; i += 512) sum += buf[i];
    return sum;
}

static long expected_sum(size_t bytes)
{
    long sum = 0;
    for (size_t i = 0; i < bytes; i += 512) sum += (char)(i >> 9);
    return sum;
}

static int uses_400k(void *arg)
{
    (void)arg;
    TL_IGNORE(tl_sleep(0.01)); /* suspend with a deep stack too */
    long a = use_stack(400 * KiB);
    TL_IGNORE(tl_yield());
    long b = use_stack(400 * KiB);
    return a == expected_sum(400 * KiB) && a == b ? 0 : -EIO;
}

static int spawn_with_stack_main(void *arg)
{
    size_t size = *(size_t *)arg;
    tl_task t;
    int st = -1;
    int rc = tl_spawn_ex(&t, &(tl_spawn_opts){.name = "big", .stack_size = size},
                         uses_400k, NULL);
    if (rc < 0) return rc;
    rc = tl_join(t, &st);
    return rc < 0 ? rc : st;
}

Test(stack_rt, spawn_stack_size_is_honoured, .timeout = 30)
{
    size_t size = 1 * MiB;
    cr_expect_eq(run_virtual(spawn_with_stack_main, &size), 0);
}

Test(stack_rt, loop_default_stack_size_is_honoured, .timeout = 30)
{
    tl_config c = {.virtual_clock = 1, .stack_size = 1 * MiB};
    cr_expect_eq(tl_run_with(&c, uses_400k, NULL), 0); /* main itself */
}

static void small_stack_child(void *arg)
{
    (void)arg;
    size_t size = 128 * KiB;
    F->rc[0] = run_virtual(spawn_with_stack_main, &size);
    F->rc[1] = 1; /* not reached */
}

Test(stack_rt, a_stack_smaller_than_the_task_needs_overflows_loudly,
     .timeout = 30)
{
    if (tl__stack_guard_strategy() == TL__GUARD_CANARY)
        cr_skip_test("canary strategy: a 272 KiB overflow would run past the "
                     "gap");
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(small_stack_child, NULL, out, sizeof out);
    TL_EXPECT_ABORTED(st, out);
    cr_expect_eq(F->rc[1], 0);
    TL_EXPECT_OUT(out, "tulip: stack overflow in task 'big' (fault at ");
}

/* ---- overflow reports per guard strategy ---------------------------------- */

/* A task that overflows its stack (helpers.h's tl_test_recurse). */
static int deep(void *arg)
{
    (void)arg;
    F->rc[2] = 1; /* started */
    return tl_test_recurse(0);
}

static int overflow_main(void *arg)
{
    (void)arg;
    tl_task t;
    int st;
    int rc = tl_spawn_ex(&t, &(tl_spawn_opts){.name = "deep"}, deep, NULL);
    if (rc < 0) return rc;
    rc = tl_join(t, &st);
    F->rc[3] = 1; /* not reached */
    return rc;
}

static void overflow_child(void *arg)
{
    tl_config c = {.virtual_clock = 1, .guard = *(int *)arg};
    F->rc[0] = tl_run_with(&c, overflow_main, NULL);
    F->rc[1] = 1; /* not reached */
}

/* "stack overflow in task 'deep' (fault at A, guard [LO, HI)): <how to
 * fix it>": check the fault lies in the guard and the guard is `size`. */
static void expect_guard_report_of(unsigned long size);
static void expect_guard_report(void)
{
    expect_guard_report_of(TL__STACK_GUARD_SIZE);
}

static void expect_guard_report_of(unsigned long size)
{
    const char *p = strstr(out, "tulip: stack overflow in task 'deep' (fault at ");
    cr_assert(p, "no overflow report:\n%s", out);
    unsigned long fault = 0, lo = 0, hi = 0;
    int n = sscanf(p, "tulip: stack overflow in task 'deep' (fault at %lx, "
                      "guard [%lx, %lx))", &fault, &lo, &hi);
    cr_assert_eq(n, 3, "unparsable report:\n%s", out);
    cr_expect_eq(hi - lo, size, "guard [%#lx, %#lx), want %#lx", lo, hi, size);
    TL_EXPECT_OUT(out, ")): give the task a larger stack (tl_spawn_opts."
                       "stack_size, tl_config.stack_size) or move large "
                       "buffers to the heap\n");
    cr_expect(fault >= lo && fault < hi, "fault %#lx outside [%#lx, %#lx)",
              fault, lo, hi);
    cr_expect_eq(F->rc[2], 1);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->rc[3], 0);
}

Test(stack_rt, overflow_with_madvise_guard, .timeout = 30)
{
    F = tl_test_shared_page(sizeof *F);
    int guard = TL_GUARD_MADVISE;
    int st = tl_test_child(overflow_child, &guard, out, sizeof out);
    TL_EXPECT_ABORTED(st, out);
    expect_guard_report();
    if (tl__stack_guard_strategy() == TL__GUARD_MADVISE)
        TL_EXPECT_NOT_OUT(out, "unavailable");
    else /* an older kernel or qemu: the pool says so and uses mprotect */
        TL_EXPECT_OUT(out, "tulip: guard strategy 'madvise' unavailable");
}

Test(stack_rt, overflow_with_mprotect_guard, .timeout = 30)
{
    F = tl_test_shared_page(sizeof *F);
    int guard = TL_GUARD_MPROTECT;
    int st = tl_test_child(overflow_child, &guard, out, sizeof out);
    TL_EXPECT_ABORTED(st, out);
    expect_guard_report();
}

Test(stack_rt, overflow_with_the_probed_guard, .timeout = 30)
{
    if (tl__stack_guard_strategy() == TL__GUARD_CANARY)
        cr_skip_test("the probe chose the canary (tested below)");
    F = tl_test_shared_page(sizeof *F);
    int guard = TL_GUARD_AUTO;
    int st = tl_test_child(overflow_child, &guard, out, sizeof out);
    TL_EXPECT_ABORTED(st, out);
    expect_guard_report();
}

/* ---- a smaller guard (tl_config.stack_guard, TULIP_STACK_GUARD) ------------ */

/* An ordinary overflow (1 KiB frames, every page touched in order) still
 * meets a small guard and is reported; the size is rounded up to pages. */
static void small_guard_child(void *arg)
{
    tl_config c = {.virtual_clock = 1, .stack_guard = *(size_t *)arg};
    F->rc[0] = tl_run_with(&c, overflow_main, NULL);
    F->rc[1] = 1; /* not reached */
}

static void skip_if_canary(void)
{
    if (tl__stack_guard_strategy() == TL__GUARD_CANARY)
        cr_skip_test("the probe chose the canary: no guard faults here");
}

Test(stack_rt, overflow_with_a_one_page_guard_is_reported, .timeout = 30)
{
    skip_if_canary();
    F = tl_test_shared_page(sizeof *F);
    size_t g = 1; /* rounded up to one page */
    int st = tl_test_child(small_guard_child, &g, out, sizeof out);
    TL_EXPECT_ABORTED(st, out);
    expect_guard_report_of((unsigned long)sysconf(_SC_PAGESIZE));
}

Test(stack_rt, overflow_with_a_64k_guard_is_reported, .timeout = 30)
{
    skip_if_canary();
    F = tl_test_shared_page(sizeof *F);
    size_t g = 64 * KiB;
    int st = tl_test_child(small_guard_child, &g, out, sizeof out);
    TL_EXPECT_ABORTED(st, out);
    expect_guard_report_of(64 * KiB);
}

static void env_guard_child(void *arg)
{
    setenv("TULIP_STACK_GUARD", (const char *)arg, 1);
    size_t g = 0;
    small_guard_child(&g);
}

Test(stack_rt, tulip_stack_guard_sets_the_guard, .timeout = 30)
{
    skip_if_canary();
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(env_guard_child, "128KiB", out, sizeof out);
    TL_EXPECT_ABORTED(st, out);
    expect_guard_report_of(128 * KiB);
    TL_EXPECT_NOT_OUT(out, "TULIP_STACK_GUARD");
}

Test(stack_rt, an_invalid_tulip_stack_guard_warns_and_keeps_1m, .timeout = 30)
{
    skip_if_canary();
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(env_guard_child, "64Q", out, sizeof out);
    TL_EXPECT_ABORTED(st, out);
    TL_EXPECT_OUT(out, "tulip: TULIP_STACK_GUARD='64Q' is not a guard size");
    expect_guard_report_of(TL__STACK_GUARD_SIZE);
    F = tl_test_shared_page(sizeof *F);
    st = tl_test_child(env_guard_child, "65M", out, sizeof out);
    TL_EXPECT_ABORTED(st, out);
    TL_EXPECT_OUT(out, "tulip: TULIP_STACK_GUARD='65M' is not a guard size");
    expect_guard_report_of(TL__STACK_GUARD_SIZE);
}

static int never_runs(void *arg)
{
    (void)arg;
    return 7;
}

/* Too large a guard: tl_run_with says -EINVAL and why, and runs nothing;
 * the configuration wins over the environment. */
static void too_large_child(void *arg)
{
    (void)arg;
    setenv("TULIP_STACK_GUARD", "64K", 1);
    tl_config c = {.stack_guard = TL__STACK_GUARD_MAX + 1};
    F->rc[0] = tl_run_with(&c, never_runs, NULL);
    c.stack_guard = TL__STACK_GUARD_MAX;
    F->rc[1] = tl_run_with(&c, never_runs, NULL);
}

Test(stack_rt, a_guard_over_64m_is_einval, .timeout = 30)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(too_large_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], -EINVAL);
    cr_expect_eq(F->rc[1], 7);
    TL_EXPECT_OUT(out, "tl_run_with: tl_config.stack_guard is 67108865 bytes, "
                       "more than the 64 MiB a guard may have");
}

/* Canary: overflow by a bounded amount (into the mapped gap, never past
 * it), then suspend or return. The canary sits at the stack's lowest
 * bytes; `smash` writes 16 KiB downwards from ~8 KiB above them. */
#define CANARY_STACK (64 * KiB)
static char *canary_top;

static __attribute__((noinline)) void smash(void)
{
    volatile char big[16 * KiB];
    for (size_t i = 0; i < sizeof big; i++) big[i] = 0x5a; /* every byte */
    F->used[0] = canary_top - (char *)big;
}

static __attribute__((noinline)) int recurse_to(int depth)
{
    volatile char frame[1024];
    memset((char *)frame, depth & 0xff, sizeof frame);
    if (canary_top - (char *)frame < CANARY_STACK - 8 * KiB)
        return recurse_to(depth + 1) + frame[0];
    smash();
    return frame[0];
}

static int deep_canary(void *arg)
{
    int suspend_after = *(int *)arg;
    canary_top = __builtin_frame_address(0);
    F->rc[2] = 1;
    F->rc[4] = recurse_to(0) >= 0;
    if (suspend_after) {
        F->rc[5] = 1;
        TL_IGNORE(tl_yield()); /* the canary is checked here */
        F->rc[6] = 1;       /* not reached */
    }
    return 0; /* ...or when the task ends */
}

static int canary_main(void *arg)
{
    tl_task t;
    int st;
    int rc = tl_spawn_ex(&t, &(tl_spawn_opts){.name = "deep",
                                              .stack_size = CANARY_STACK},
                         deep_canary, arg);
    if (rc < 0) return rc;
    rc = tl_join(t, &st);
    F->rc[3] = 1; /* not reached */
    return rc;
}

static void canary_child(void *arg)
{
    tl_config c = {.virtual_clock = 1, .guard = TL_GUARD_CANARY};
    F->rc[0] = tl_run_with(&c, canary_main, arg);
    F->rc[1] = 1; /* not reached */
}

static void expect_canary_report(int st)
{
    TL_EXPECT_ABORTED(st, out);
    TL_EXPECT_OUT(out,
                  "tulip: possible stack overflow in task 'deep' (its stack "
                  "canary was overwritten)\n");
    TL_EXPECT_NOT_OUT(out, "(fault at");
    cr_expect_eq(F->rc[2], 1);
    cr_expect_eq(F->rc[4], 1);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->rc[3], 0);
    /* The overflow reached below the stack but stayed inside the gap. */
    cr_expect(F->used[0] + 16 * KiB > CANARY_STACK &&
                  F->used[0] + 16 * KiB < CANARY_STACK + (long)TL__STACK_GUARD_SIZE,
              "wrote down to %ld bytes below the top of a %d byte stack",
              F->used[0] + 16 * KiB, CANARY_STACK);
}

Test(stack_rt, overflow_with_canary_is_caught_at_the_next_suspend,
     .timeout = 30)
{
    F = tl_test_shared_page(sizeof *F);
    int suspend_after = 1;
    int st = tl_test_child(canary_child, &suspend_after, out, sizeof out);
    expect_canary_report(st);
    cr_expect_eq(F->rc[5], 1);
    cr_expect_eq(F->rc[6], 0);
}

Test(stack_rt, overflow_with_canary_is_caught_when_the_task_ends,
     .timeout = 30)
{
    F = tl_test_shared_page(sizeof *F);
    int suspend_after = 0;
    int st = tl_test_child(canary_child, &suspend_after, out, sizeof out);
    expect_canary_report(st);
    cr_expect_eq(F->rc[5], 0);
}

/* ---- frames that skip pages (no -fstack-clash-protection) ----------------- */

/* User code is built with the compiler's defaults, and Debian's GCC and
 * clang do not probe large frames: the stack pointer moves by the whole
 * frame, and the first access may be at its lowest byte, far below the
 * stack. These functions are compiled that way (GCC's per-function
 * option; clang has none and probes them, which the guard catches too).
 * Each writes its array's lowest byte first. */
#if defined(__GNUC__) && !defined(__clang__)
#define TL_NO_STACK_CLASH __attribute__((optimize("no-stack-clash-protection")))
#else
#define TL_NO_STACK_CLASH
#endif

static TL_NO_STACK_CLASH __attribute__((noinline)) int frame_400k(int i)
{
    volatile char a[400 * KiB];
    a[i] = 1;
    a[sizeof a - 1 - (size_t)i] = 2;
    return a[i] + a[sizeof a - 1 - (size_t)i];
}

static TL_NO_STACK_CLASH __attribute__((noinline)) int frame_1m(int i)
{
    volatile char a[1 * MiB - 8 * KiB]; /* the frame stays within 1 MiB */
    a[i] = 1;
    a[sizeof a - 1 - (size_t)i] = 2;
    return a[i] + a[sizeof a - 1 - (size_t)i];
}

static volatile int zero_index;

/* Which frame, and how many stacks of the big frame's size class are
 * carved (and stay live) before its own. */
struct big_frame_case {
    int which; /* 0: 400 KiB, 1: 1 MiB */
    int before;
};

static int big_frame(void *arg)
{
    F->rc[2] = 1; /* started */
    return ((struct big_frame_case *)arg)->which == 1
               ? frame_1m(zero_index) : frame_400k(zero_index);
}

/* A neighbour whose stack lies below the big frame's (carved just before
 * it) and stays live while the big frame runs: without a guard as deep as
 * the frame, its stack is what the frame would overwrite. */
static int neighbour(void *arg)
{
    (void)arg;
    return tl_sleep(10.0);
}

/* 256 KiB in every build (ASan's default is 512 KiB, which a 400 KiB
 * frame fits in), for the big frame and every stack carved before it. */
#define BIG_FRAME_STACK (256 * KiB)

static int big_frame_main(void *arg)
{
    struct big_frame_case *bc = arg;
    tl_task n, t;
    tl_group g;
    int st;
    /* Live sleepers first, so that the big frame's stack is carved after
     * theirs (a released stack would be reused instead). */
    int rc = tl_group_enter(&g);
    for (int i = 0; i < bc->before && rc == 0; i++)
        rc = tl_group_spawn_ex(g, &(tl_spawn_opts){.stack_size =
                                                       BIG_FRAME_STACK},
                               neighbour, NULL, NULL);
    if (rc < 0) return rc;
    rc = tl_spawn_ex(&n, &(tl_spawn_opts){.name = "neighbour",
                                          .stack_size = BIG_FRAME_STACK},
                     neighbour, NULL);
    if (rc < 0) return rc;
    TL_IGNORE(tl_yield()); /* the neighbours take their stacks first */
    rc = tl_spawn_ex(&t, &(tl_spawn_opts){.name = "big",
                                          .stack_size = BIG_FRAME_STACK},
                     big_frame, arg);
    if (rc < 0) return rc;
    rc = tl_join(t, &st);
    F->rc[3] = 1; /* not reached */
    return rc;
}

static void big_frame_child(void *arg)
{
    F->rc[0] = run_virtual(big_frame_main, arg);
    F->rc[1] = 1; /* not reached */
}

static void expect_big_frame_report(int which, int before)
{
    if (tl__stack_guard_strategy() == TL__GUARD_CANARY)
        cr_skip_test("canary strategy: a frame that jumps the canary is not "
                     "seen (it lands in the gap)");
    struct big_frame_case bc = {which, before};
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(big_frame_child, &bc, out, sizeof out);
    TL_EXPECT_ABORTED(st, out);
    TL_EXPECT_OUT(out, "tulip: stack overflow in task 'big' (fault at ");
    TL_EXPECT_OUT(out, "give the task a larger stack");
    cr_expect_eq(F->rc[2], 1);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->rc[3], 0);
}

Test(stack_rt, a_400k_frame_without_stack_clash_protection_is_reported,
     .timeout = 30)
{
    expect_big_frame_report(0, 0);
}

Test(stack_rt, a_1m_frame_without_stack_clash_protection_is_reported,
     .timeout = 30)
{
    expect_big_frame_report(1, 0);
}

/* Every stack has the whole guard, not only the first few thousand of a
 * size class: the frames again, on a stack carved after 10,000 others
 * that are all live. */
Test(stack_rt, a_400k_frame_is_reported_on_a_stack_carved_after_10000,
     .timeout = 30)
{
    expect_big_frame_report(0, 10000);
}

Test(stack_rt, a_1m_frame_is_reported_on_a_stack_carved_after_10000,
     .timeout = 30)
{
    expect_big_frame_report(1, 10000);
}

/* ---- the pool gives memory back ------------------------------------------- */

#define BURST 2000
#define BURST_STACK (48 * KiB)

static long rss_bytes(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

static int burst_task(void *arg)
{
    (void)arg;
    long sum = use_stack(BURST_STACK);
    /* Everyone holds a stack at once: the burst needs BURST stacks. */
    int rc = tl_sleep(0.5);
    return rc == 0 && sum == expected_sum(BURST_STACK) ? 0 : -EIO;
}

static int one_burst(void)
{
    tl_group g;
    int rc = tl_group_enter(&g);
    for (int i = 0; i < BURST && rc == 0; i++)
        rc = tl_group_spawn(g, burst_task, NULL);
    return tl_group_wait(g, rc, NULL);
}

static long rss_base, rss_peak, rss_after, rss_after2;

static int bursts_main(void *arg)
{
    (void)arg;
    rss_base = rss_bytes();
    int rc = one_burst();
    rss_after = rss_bytes();
    if (rc == 0) rc = one_burst(); /* reuses the pool */
    rss_after2 = rss_bytes();
    return rc;
}

static int peak_probe(void *arg)
{
    (void)arg;
    rss_peak = rss_bytes();
    return 0;
}

static int bursts_with_peak_main(void *arg)
{
    (void)arg;
    /* Measure the peak while the first burst sleeps. */
    rss_base = rss_bytes();
    tl_group g;
    int rc = tl_group_enter(&g);
    for (int i = 0; i < BURST && rc == 0; i++)
        rc = tl_group_spawn(g, burst_task, NULL);
    if (rc == 0) {
        TL_IGNORE(tl_sleep(0.25)); /* all started and asleep */
        rc = peak_probe(NULL);
    }
    rc = tl_group_wait(g, rc, NULL);
    rss_after = rss_bytes();
    if (rc == 0) rc = one_burst(); /* reuses the pool */
    rss_after2 = rss_bytes();
    return rc;
}

Test(stack_rt, the_pool_returns_memory_after_a_burst, .timeout = 30)
{
    (void)bursts_main;
    cr_assert_eq(run_virtual(bursts_with_peak_main, NULL), 0);
    long grown = rss_peak - rss_base;
    printf("stack_rt: burst of %d tasks using %d KiB each: RSS +%ld KiB at "
           "the peak, +%ld KiB after it, +%ld KiB after a second burst\n",
           BURST, BURST_STACK / KiB, grown / KiB, (rss_after - rss_base) / KiB,
           (rss_after2 - rss_base) / KiB);
    fflush(stdout);
    cr_expect_gt(grown, (long)BURST * BURST_STACK / 2, "the burst used %ld "
                 "KiB", grown / KiB);
    /* The top page of each stack and a few whole stacks stay: far less
     * than the burst. Under ASan the shadow of the released stacks stays
     * too (they are poisoned). */
    long keep = TULIP_TEST_SANITIZED ? grown / 2 : grown / 4;
    cr_expect_lt(rss_after - rss_base, keep, "%ld KiB kept of %ld KiB",
                 (rss_after - rss_base) / KiB, grown / KiB);
    cr_expect_lt(rss_after2 - rss_base, keep, "%ld KiB kept of %ld KiB",
                 (rss_after2 - rss_base) / KiB, grown / KiB);
}

/* A burst of 20,000 tasks (5,000 under sanitizers) asleep at once, each
 * on a fresh stack of the default size: once it is over and the loop
 * idles, the pool keeps a bounded warm cache and gives back the top pages
 * of the rest; a second burst reuses them. */
#define BIG_BURST (TULIP_TEST_SANITIZED ? 5000 : 20000)

static long big_burst_rss[4]; /* base, peak, after, after the second */

static int light_sleeper(void *arg)
{
    (void)arg;
    return tl_sleep(0.5);
}

static int light_burst(long *peak)
{
    tl_group g;
    int rc = tl_group_enter(&g);
    for (int i = 0; i < BIG_BURST && rc == 0; i++)
        rc = tl_group_spawn(g, light_sleeper, NULL);
    if (rc == 0) {
        rc = tl_sleep(0.25); /* all started and asleep */
        if (peak) *peak = rss_bytes();
    }
    return tl_group_wait(g, rc, NULL);
}

/* Idle (the virtual clock makes each sleep one idle loop iteration) until
 * RSS is back within `bound` of the base, for at most 1,000 iterations. */
static long settle_rss(long bound)
{
    long r = rss_bytes();
    for (int i = 0; i < 1000 && r - big_burst_rss[0] > bound; i++) {
        if (tl_sleep(0.01) < 0) break;
        r = rss_bytes();
    }
    return r;
}

static int big_burst_main(void *arg)
{
    (void)arg;
    big_burst_rss[0] = rss_bytes();
    int rc = light_burst(&big_burst_rss[1]);
    long bound = (big_burst_rss[1] - big_burst_rss[0]) / 4;
    big_burst_rss[2] = settle_rss(bound);
    if (rc == 0) rc = light_burst(NULL);
    big_burst_rss[3] = settle_rss(bound);
    return rc;
}

Test(stack_rt, rss_falls_after_a_burst_of_20000_tasks, .timeout = 30)
{
    cr_assert_eq(run_virtual(big_burst_main, NULL), 0);
    long *r = big_burst_rss, grown = r[1] - r[0];
    printf("stack_rt: burst of %d sleepers: RSS +%ld KiB at the peak, +%ld "
           "KiB once idle, +%ld KiB after a second burst\n", BIG_BURST,
           grown / KiB, (r[2] - r[0]) / KiB, (r[3] - r[0]) / KiB);
    fflush(stdout);
    /* Each sleeper touched at least its stack's top page. */
    cr_expect_gt(grown, (long)BIG_BURST * 4 * KiB / 2, "the burst used %ld "
                 "KiB", grown / KiB);
    /* Under ASan what stays is ASan's: the shadow of each released
     * stack's poisoned top (a shadow page of its own per stack, the
     * stacks being 1.5 MiB apart) and the allocator's quarantine. */
    if (TULIP_TEST_SANITIZED) return;
    /* The warm cache (1,024 top pages a size class, 4 MiB) and a few
     * whole stacks stay, and the task table: far less than the burst. */
    cr_expect_lt(r[2] - r[0], grown / 4, "%ld KiB kept of %ld KiB",
                 (r[2] - r[0]) / KiB, grown / KiB);
    cr_expect_lt(r[3] - r[0], grown / 4, "%ld KiB kept of %ld KiB",
                 (r[3] - r[0]) / KiB, grown / KiB);
}

/* ---- ASan: a finished task's stack is poisoned ---------------------------- */

#if TULIP_TEST_SANITIZED && defined(__SANITIZE_ADDRESS__)
void __sanitizer_set_report_path(const char *path);
#endif

/* A detached child given a pointer into its spawner's frame, used after
 * the spawner finished: a bug ASan must name. */
static int dead_reader(void *arg)
{
    volatile int *p = arg;
    TL_IGNORE(tl_yield()); /* the owner is gone by now */
    F->rc[2] = 1;
    F->rc[4] = *p;
    F->rc[3] = 1; /* not reached under ASan */
    return 0;
}

static __attribute__((noinline)) int owner(void *arg)
{
    (void)arg;
    volatile int local = 42;
    if (tl_spawn(NULL, dead_reader, (void *)&local) < 0) return -1;
    return local - 42; /* returns before the reader runs */
}

static int dead_stack_main(void *arg)
{
    (void)arg;
    tl_task t;
    int st;
    if (tl_spawn_ex(&t, &(tl_spawn_opts){.name = "owner"}, owner, NULL) < 0)
        return -1;
    if (tl_join(t, &st) < 0) return -1;
    return tl_sleep(0.1); /* the reader runs meanwhile */
}

static void dead_stack_child(void *arg)
{
    (void)arg;
#if TULIP_TEST_SANITIZED && defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_report_path("stderr"); /* into `out`, not a log file */
#endif
    F->rc[0] = run_virtual(dead_stack_main, NULL);
    F->rc[1] = 1;
}

Test(stack_rt, asan_names_a_use_of_a_finished_tasks_stack, .timeout = 30)
{
#if !(TULIP_TEST_SANITIZED && defined(__SANITIZE_ADDRESS__))
    cr_skip_test("AddressSanitizer builds only");
#endif
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(dead_stack_child, NULL, out, sizeof out);
    cr_expect(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "status %#x:\n%s", st,
              out);
    TL_EXPECT_OUT(out, "AddressSanitizer: use-after-poison");
    cr_expect_eq(F->rc[2], 1);
    cr_expect_eq(F->rc[3], 0);
}

/* Faults outside any guard are not ours: they reach the previous handler
 * (the default: the process dies of SIGSEGV; ASan's under ASan). */
static int *volatile wild_ptr = (int *)16;

static int wild(void *arg)
{
    (void)arg;
    F->rc[2] = 1;
    *wild_ptr = 1;
    return 0;
}

static int wild_main(void *arg)
{
    (void)arg;
    tl_task t;
    int st;
    if (tl_spawn_ex(&t, &(tl_spawn_opts){.name = "wild"}, wild, NULL) < 0)
        return -1;
    return tl_join(t, &st);
}

static void wild_child(void *arg)
{
    (void)arg;
    F->rc[0] = run_virtual(wild_main, NULL);
    F->rc[1] = 1;
}

Test(stack_rt, other_faults_go_to_the_previous_handler, .timeout = 30)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(wild_child, NULL, out, sizeof out);
    cr_expect_eq(F->rc[2], 1);
    cr_expect_eq(F->rc[1], 0);
    TL_EXPECT_NOT_OUT(out, "stack overflow");
#if TULIP_TEST_SANITIZED
    cr_expect(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "status %#x", st);
    TL_EXPECT_OUT(out, "AddressSanitizer"); /* its handler got the fault */
#else
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
              "not killed by SIGSEGV (status %#x):\n%s", st, out);
#endif
}

/* ---- TULIP_STACK_CENSUS=1 -------------------------------------------------- */

static int census_task(void *arg)
{
    size_t bytes = *(size_t *)arg;
    long sum = use_stack(bytes);
    /* Hold the stack so that every task of the census has its own. */
    TL_IGNORE(tl_sleep(1.0));
    return sum == expected_sum(bytes) ? 0 : -EIO;
}

static int census_main(void *arg)
{
    (void)arg;
    static size_t big = 100 * KiB, small = 1 * KiB;
    tl_task t[4];
    int rc = tl_spawn_ex(&t[0], &(tl_spawn_opts){.name = "big"}, census_task,
                         &big);
    for (int i = 1; i < 4 && rc == 0; i++)
        rc = tl_spawn_ex(&t[i], &(tl_spawn_opts){.name = "small"},
                         census_task, &small);
    if (rc < 0) return rc;
    for (int i = 0; i < 4; i++) {
        int st = -1;
        if (tl_join(t[i], &st) < 0 || st != 0) return -1;
    }
    return 0;
}

static void census_child(void *arg)
{
    if (arg) setenv("TULIP_STACK_CENSUS", "1", 1);
    F->rc[0] = run_virtual(census_main, NULL);
}

/* The census line for `name`: KiB used, KiB size, task count. */
static int census_line(const char *name, long *used, long *size, long *tasks)
{
    char want[64];
    snprintf(want, sizeof want, "tulip:   '%s': ", name);
    const char *p = strstr(out, want);
    if (!p) return 0;
    return sscanf(p + strlen(want), "%ld KiB of %ld KiB (%ld task", used,
                  size, tasks) == 3;
}

Test(stack_rt, census_prints_high_water_marks_per_name, .timeout = 30)
{
    F = tl_test_shared_page(sizeof *F);
    int st = tl_test_child(census_child, (void *)1, out, sizeof out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x:\n%s", st,
              out);
    cr_expect_eq(F->rc[0], 0);
    TL_EXPECT_OUT(out, "tulip: stack census (TULIP_STACK_CENSUS=1), loop #");
    long used, size, tasks;
    long def = TULIP_TEST_SANITIZED ? 512 : 256; /* KiB, doubled by ASan */
    cr_assert(census_line("big", &used, &size, &tasks), "%s", out);
    cr_expect(used >= 100 && used <= def, "big used %ld KiB", used);
    cr_expect_eq(size, def);
    cr_expect_eq(tasks, 1);
    long big_used = used;
    cr_assert(census_line("small", &used, &size, &tasks), "%s", out);
    cr_expect(used >= 4 && used < 32, "small used %ld KiB", used);
    cr_expect_eq(size, def);
    cr_expect_eq(tasks, 3);
    cr_assert(census_line("main", &used, &size, &tasks), "%s", out);
    cr_expect_eq(tasks, 1);
    /* Deepest first. */
    cr_expect_lt(strstr(out, "'big'"), strstr(out, "'small'"), "%s", out);
    cr_expect_gt(big_used, used);
}

Test(stack_rt, no_census_unless_asked, .timeout = 30)
{
    F = tl_test_shared_page(sizeof *F);
    unsetenv("TULIP_STACK_CENSUS");
    int st = tl_test_child(census_child, NULL, out, sizeof out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x:\n%s", st,
              out);
    cr_expect_eq(F->rc[0], 0);
    TL_EXPECT_NOT_OUT(out, "census");
}
