/* Tests of the context switch, fibers and stacks (src/arch, src/fiber.c,
 * src/stack.c). Plain C on tests/tiny.h so that it also runs
 * cross-compiled under qemu-user.
 *
 * TULIP_EXPECT_GUARD=<madvise|mprotect|canary> makes `probe` assert the
 * probe's choice (the qemu run sets it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fiber.h"
#include "core/stack.h"
#include "tiny.h"

/* ASan builds keep released stacks out of reuse for a while (so a task
 * that uses a dead stack is reported): no stack comes back at once. */
#if defined(__SANITIZE_ADDRESS__)
#define REUSE_AT_ONCE 0
#else
#define REUSE_AT_ONCE 1
#endif

/* ---- helpers ----------------------------------------------------------- */

static tl__fiber main_fiber;

static tl__stack_pool *new_pool(int kind)
{
    tl__stack_pool *p = NULL;
    TINY_ASSERT_EQ(tl__stack_pool_new(&p, kind), 0);
    TINY_ASSERT(p != NULL);
    return p;
}

static tl__stack *get_stack(tl__stack_pool *p, size_t size)
{
    tl__stack *s = NULL;
    TINY_ASSERT_EQ(tl__stack_get(p, size, &s), 0);
    TINY_ASSERT(s != NULL);
    return s;
}

/* ---- ping-pong with callee-saved state --------------------------------- */

/* Many accumulators live across every switch, integer and floating point,
 * so the compiler must keep them in callee-saved registers (rbx, r12-r15,
 * x19-x28, d8-d15) or spill them: a switch that loses one changes the
 * result. With self == NULL it runs without switching (the reference). */
static __attribute__((noinline)) uint64_t work(int n, tl__fiber *self,
                                               tl__fiber *other)
{
    uint64_t a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8, k = 9;
    double x = 1.5, y = 2.5, z = 3.5, w = 4.5, u = 5.5, v = 6.5, q = 7.5,
           r = 8.5, t = 9.5;

    for (int i = 0; i < n; i++) {
        a = a * 31 + (uint64_t)i;
        b ^= a >> 3;
        c += b * 7;
        d = (d * 13) ^ c;
        e += d >> 5;
        f ^= e * 3;
        g += f + 1;
        h = h * 17 + g;
        k ^= h + a;
        x = x * 0.5 + i;
        y = y * 0.25 + x;
        z = z * 0.125 + y;
        w = w * 0.5 + z;
        u = u * 0.25 + w;
        v = v * 0.125 + u;
        q = q * 0.5 + v;
        r = r * 0.25 + q;
        t = t * 0.125 + r;
        if (self)
            tl__fiber_switch(self, other, 0);
    }
    return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ k ^
           (uint64_t)(x + y + z + w + u + v + q + r + t);
}

struct pp {
    tl__fiber fiber;
    int n;
    uint64_t result;
};

static void pp_entry(void *arg)
{
    struct pp *pp = arg;
    tl__fiber_started(&pp->fiber);
    pp->result = work(pp->n, &pp->fiber, &main_fiber);
    tl__fiber_switch(&pp->fiber, &main_fiber, 1);
    abort(); /* never resumed */
}

TINY_TEST(pingpong)
{
    tl__stack_pool *p = new_pool(TL__GUARD_AUTO);
    tl__stack *s = get_stack(p, 256 * 1024);
    struct pp pp = {.n = 200000};
    uint64_t ref = work(pp.n, NULL, NULL), mine;

    tl__fiber_init_thread(&main_fiber);
    tl__fiber_make(&pp.fiber, s->lo, (size_t)(s->hi - s->lo), pp_entry, &pp);
    mine = work(pp.n, &main_fiber, &pp.fiber);
    TINY_ASSERT_EQ(pp.result, 0); /* the fiber is still inside work() */
    tl__fiber_switch(&main_fiber, &pp.fiber, 0); /* let it finish */
    TINY_ASSERT_EQ(mine, ref);
    TINY_ASSERT_EQ(pp.result, ref);
    tl__fiber_release(&pp.fiber);
    tl__stack_put(p, s);
    tl__fiber_fini_thread(&main_fiber);
    tl__stack_pool_free(p);
}

/* ---- errno is not the raw switch's business ---------------------------- */

static tl__fiber errno_fiber;
static int errno_seen;

static void errno_entry(void *arg)
{
    (void)arg;
    tl__fiber_started(&errno_fiber);
    errno_seen = errno; /* what main left */
    errno = 4321;
    tl__fiber_switch(&errno_fiber, &main_fiber, 0);
    errno_seen = errno;
    errno = 8765;
    tl__fiber_switch(&errno_fiber, &main_fiber, 1);
    abort();
}

TINY_TEST(errno_untouched)
{
    tl__stack_pool *p = new_pool(TL__GUARD_AUTO);
    tl__stack *s = get_stack(p, 64 * 1024);

    tl__fiber_init_thread(&main_fiber);
    tl__fiber_make(&errno_fiber, s->lo, (size_t)(s->hi - s->lo), errno_entry,
                   NULL);
    errno = 1234;
    tl__fiber_switch(&main_fiber, &errno_fiber, 0);
    TINY_ASSERT_EQ(errno_seen, 1234);
    TINY_ASSERT_EQ(errno, 4321); /* the fiber's value leaks through */
    errno = 5678;
    tl__fiber_switch(&main_fiber, &errno_fiber, 0);
    TINY_ASSERT_EQ(errno_seen, 5678);
    TINY_ASSERT_EQ(errno, 8765);
    tl__fiber_release(&errno_fiber);
    tl__stack_put(p, s);
    tl__stack_pool_free(p);
}

/* ---- the signal mask belongs to the thread ------------------------------ */

/* The mask is shared by every fiber of a thread, like FP control state
 * (context.h): a switch never changes it. glibc's swapcontext did (one
 * rt_sigprocmask per switch, the ucontext build's main cost). */
static tl__fiber mask_fiber;
static int mask_blocked_in_fiber;

static int usr2_blocked(void)
{
    sigset_t cur;
    if (pthread_sigmask(SIG_BLOCK, NULL, &cur) != 0) return -1;
    return sigismember(&cur, SIGUSR2);
}

static void mask_entry(void *arg)
{
    sigset_t usr2;
    (void)arg;
    tl__fiber_started(&mask_fiber);
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    tl__fiber_switch(&mask_fiber, &main_fiber, 0);
    mask_blocked_in_fiber = usr2_blocked(); /* main unblocked it meanwhile */
    tl__fiber_switch(&mask_fiber, &main_fiber, 1);
    abort();
}

TINY_TEST(signal_mask_is_the_threads)
{
    tl__stack_pool *p = new_pool(TL__GUARD_AUTO);
    tl__stack *s = get_stack(p, 64 * 1024);
    sigset_t usr2;

    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    TINY_ASSERT_EQ(usr2_blocked(), 0);
    tl__fiber_init_thread(&main_fiber);
    tl__fiber_make(&mask_fiber, s->lo, (size_t)(s->hi - s->lo), mask_entry,
                   NULL);
    tl__fiber_switch(&main_fiber, &mask_fiber, 0);
    TINY_ASSERT_EQ(usr2_blocked(), 1); /* the fiber's change stays */
    pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
    mask_blocked_in_fiber = -1;
    tl__fiber_switch(&main_fiber, &mask_fiber, 0);
    TINY_ASSERT_EQ(mask_blocked_in_fiber, 0);
    TINY_ASSERT_EQ(usr2_blocked(), 0);
    tl__fiber_release(&mask_fiber);
    tl__stack_put(p, s);
    tl__stack_pool_free(p);
}

/* ---- one stack, many fibers in turn ----------------------------------- */

/* Fibers that run one after another on the same stack, as pooled stacks
 * are handed out again (the ucontext switch starts a reused stack's fiber
 * from a park point at the stack's top, and launches it afresh when the
 * stack's memory was given back), each with callee-saved state checked. */
struct seq {
    tl__fiber fiber;
    int id, ran;
    uint64_t result;
};

static void seq_entry(void *arg)
{
    struct seq *me = arg;
    tl__fiber_started(&me->fiber);
    me->ran = me->id;
    me->result = work(1000 + me->id, &me->fiber, &main_fiber);
    tl__fiber_switch(&me->fiber, &main_fiber, 1);
    abort();
}

TINY_TEST(stack_reused_by_fiber_after_fiber)
{
    tl__stack_pool *p = new_pool(TL__GUARD_AUTO);
    tl__stack *s = get_stack(p, 64 * 1024);
    long pg = sysconf(_SC_PAGESIZE);
    size_t size = (size_t)(s->hi - s->lo);

    tl__fiber_init_thread(&main_fiber);
    for (int id = 1; id <= 8; id++) {
        struct seq q = {.id = id};
        uint64_t ref = work(1000 + id, NULL, NULL);
        /* 3: all but the top page given back (the pool's trim); 5: all
         * of it (zero-filled when next touched). */
        if (id == 3)
            TINY_ASSERT_EQ(madvise(s->lo, size - (size_t)pg, MADV_DONTNEED), 0);
        if (id == 5) TINY_ASSERT_EQ(madvise(s->lo, size, MADV_DONTNEED), 0);
        tl__fiber_make(&q.fiber, s->lo, size, seq_entry, &q);
        uint64_t mine = work(1000 + id, &main_fiber, &q.fiber);
        tl__fiber_switch(&main_fiber, &q.fiber, 0); /* let it finish */
        TINY_ASSERT_EQ(q.ran, id);
        TINY_ASSERT_EQ(mine, ref);
        TINY_ASSERT_EQ(q.result, ref);
        tl__fiber_release(&q.fiber);
    }
    tl__stack_put(p, s);
    tl__fiber_fini_thread(&main_fiber);
    tl__stack_pool_free(p);
}

/* ---- an entry that returns aborts ------------------------------------- */

static tl__fiber ret_fiber;

static void returning_entry(void *arg)
{
    tl__fiber_started(&ret_fiber);
    *(int *)arg = 1;
    /* returns: a bug the trampoline turns into abort() */
}

TINY_TEST(entry_return_aborts)
{
    int status, ran = 0;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    TINY_ASSERT(pid >= 0);
    if (pid == 0) {
        tl__stack_pool *p = new_pool(TL__GUARD_AUTO);
        tl__stack *s = get_stack(p, 64 * 1024);
        tl__fiber_init_thread(&main_fiber);
        tl__fiber_make(&ret_fiber, s->lo, (size_t)(s->hi - s->lo),
                       returning_entry, &ran);
        tl__fiber_switch(&main_fiber, &ret_fiber, 0);
        _exit(ran ? 3 : 4); /* unreachable */
    }
    TINY_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    TINY_ASSERT(WIFSIGNALED(status));
    TINY_ASSERT_EQ(WTERMSIG(status), SIGABRT);
}

/* ---- 10,000 fibers round-robin ----------------------------------------- */

/* ThreadSanitizer makes each fiber a thread of its own and dies past
 * 8,128 of them (and creating one costs milliseconds): fewer there. */
#if defined(__SANITIZE_THREAD__)
#define RR_FIBERS 1000
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RR_FIBERS 1000
#endif
#endif
#ifndef RR_FIBERS
#define RR_FIBERS 10000
#endif
#define RR_ROUNDS 10

struct rr {
    tl__fiber fiber;
    tl__stack *stack;
    int id;
    int runs;
};

static struct rr *rr;
static long rr_step; /* global order: fiber i must see step == round*N + i */
static int rr_bad;

static void rr_entry(void *arg)
{
    struct rr *me = arg;
    tl__fiber_started(&me->fiber);
    for (int round = 0; round < RR_ROUNDS; round++) {
        if (rr_step != (long)round * RR_FIBERS + me->id)
            rr_bad++;
        rr_step++;
        me->runs++;
        tl__fiber_switch(&me->fiber, &main_fiber, 0);
    }
    tl__fiber_switch(&me->fiber, &main_fiber, 1);
    abort();
}

TINY_TEST(round_robin_10000)
{
    tl__stack_pool *p = new_pool(TL__GUARD_AUTO);

    rr = calloc(RR_FIBERS, sizeof *rr);
    TINY_ASSERT(rr != NULL);
    tl__fiber_init_thread(&main_fiber);
    for (int i = 0; i < RR_FIBERS; i++) {
        rr[i].id = i;
        rr[i].stack = get_stack(p, 16 * 1024);
        tl__fiber_make(&rr[i].fiber, rr[i].stack->lo,
                       (size_t)(rr[i].stack->hi - rr[i].stack->lo), rr_entry,
                       &rr[i]);
    }
    for (int round = 0; round <= RR_ROUNDS; round++) /* +1: the exits */
        for (int i = 0; i < RR_FIBERS; i++)
            tl__fiber_switch(&main_fiber, &rr[i].fiber, 0);
    TINY_ASSERT_EQ(rr_bad, 0);
    TINY_ASSERT_EQ(rr_step, (long)RR_FIBERS * RR_ROUNDS);
    for (int i = 0; i < RR_FIBERS; i++) {
        TINY_ASSERT_EQ(rr[i].runs, RR_ROUNDS);
        TINY_ASSERT_EQ(tl__stack_check(rr[i].stack), 0);
        tl__fiber_release(&rr[i].fiber);
        tl__stack_put(p, rr[i].stack);
    }
    free(rr);
    tl__stack_pool_free(p);
}

/* ---- pool behaviour ---------------------------------------------------- */

TINY_TEST(pool_reuse)
{
    tl__stack_pool *p = new_pool(TL__GUARD_AUTO);
    tl__stack *a = get_stack(p, 256 * 1024), *b, *many[40];
    long pg = sysconf(_SC_PAGESIZE);

    TINY_ASSERT((size_t)(a->hi - a->lo) >= 256 * 1024);
    TINY_ASSERT_EQ(a->lo - a->guard_lo, (ptrdiff_t)TL__STACK_GUARD_SIZE);
    TINY_ASSERT_EQ(((uintptr_t)a->lo) % (uintptr_t)pg, 0);
    TINY_ASSERT_EQ(a->pooled, 0);
    tl__stack_put(p, a);
    TINY_ASSERT_EQ(a->pooled, 1);
    b = get_stack(p, 200 * 1024); /* same class: the same stack back */
    if (REUSE_AT_ONCE) TINY_ASSERT_EQ(b, a);
    TINY_ASSERT_EQ(b->pooled, 0);
    tl__stack_put(p, b);

    /* Another class does not take it. */
    b = get_stack(p, 1024 * 1024);
    TINY_ASSERT_NE(b, a);
    TINY_ASSERT((size_t)(b->hi - b->lo) >= 1024 * 1024);
    tl__stack_put(p, b);

    /* Past the hot count, stacks are trimmed but still reused; data in the
     * top page survives, and a canary comes back intact. */
    for (int i = 0; i < 40; i++) {
        many[i] = get_stack(p, 64 * 1024);
        many[i]->hi[-1] = (char)i;
    }
    for (int i = 0; i < 40; i++)
        tl__stack_put(p, many[i]);
    for (int i = 0; i < 40; i++) {
        tl__stack *s = get_stack(p, 64 * 1024);
        int found = 0;
        for (int j = 0; j < 40; j++)
            found |= s == many[j];
        if (REUSE_AT_ONCE) TINY_ASSERT(found);
        TINY_ASSERT_EQ(tl__stack_check(s), 0);
    }
    /* (all 40 are out again; the pool is freed with them out, which only
     * the leak-checking scheduler would mind) */
    tl__stack_pool_free(p);
}

TINY_TEST(high_water)
{
    tl__stack_pool *p = new_pool(TL__GUARD_AUTO);
    tl__stack *s = get_stack(p, 256 * 1024);
    long pg = sysconf(_SC_PAGESIZE);
    size_t hw;

    /* A fresh stack is untouched; touch three pages from the top. */
    memset(s->hi - 3 * pg, 1, (size_t)(3 * pg));
    hw = tl__stack_high_water(s);
    TINY_ASSERT_EQ(hw, 3 * pg);
    tl__stack_put(p, s);
    tl__stack_pool_free(p);
}

/* ---- guard strategies -------------------------------------------------- */

TINY_TEST(probe)
{
    int g = tl__stack_guard_strategy();
    const char *want = getenv("TULIP_EXPECT_GUARD");

    printf("    guard strategy chosen by the probe: %s\n",
           tl__stack_guard_name(g));
    fflush(stdout);
    TINY_ASSERT(g == TL__GUARD_MADVISE || g == TL__GUARD_MPROTECT ||
                g == TL__GUARD_CANARY);
    TINY_ASSERT_EQ(tl__stack_guard_strategy(), g); /* once per process */
    if (want && *want)
        TINY_ASSERT_STR_EQ(tl__stack_guard_name(g), want);
}

TINY_TEST(guard_forcing)
{
    tl__stack_pool *p;
    tl__stack *s;

    /* The env picks the strategy of an AUTO pool... */
    setenv("TULIP_GUARD", "canary", 1);
    p = new_pool(TL__GUARD_AUTO);
    s = get_stack(p, 64 * 1024);
    TINY_ASSERT_EQ(s->guard, TL__GUARD_CANARY);
    TINY_ASSERT_EQ(tl__stack_check(s), 0);
    tl__stack_put(p, s);
    tl__stack_pool_free(p);
    /* ...but a forced pool wins over the env. */
    p = new_pool(TL__GUARD_MPROTECT);
    s = get_stack(p, 64 * 1024);
    TINY_ASSERT_EQ(s->guard, TL__GUARD_MPROTECT);
    tl__stack_put(p, s);
    tl__stack_pool_free(p);
    TINY_ASSERT(tl__stack_pool_new(&p, 42) < 0);
}

/* The overflow test: the lookup knows the one task, "deep". */
static tl__stack *deep_stack;
static tl__fiber deep_fiber;
static volatile long deep_limit = 1L << 30;

static int test_lookup(void *addr, char *name, size_t len)
{
    const char *n = "deep";
    size_t i;

    if (!deep_stack || (char *)addr < deep_stack->guard_lo ||
        (char *)addr >= deep_stack->lo)
        return 0;
    for (i = 0; n[i] && i + 1 < len; i++)
        name[i] = n[i];
    name[i] = '\0';
    return 1;
}

static __attribute__((noinline)) long recurse(long n)
{
    volatile char buf[1024];
    buf[0] = (char)n;
    buf[sizeof buf - 1] = (char)n;
    if (n >= deep_limit)
        return 0;
    return recurse(n + 1) + buf[0] + buf[sizeof buf - 1];
}

static void deep_entry(void *arg)
{
    (void)arg;
    tl__fiber_started(&deep_fiber);
    recurse(0);
    tl__fiber_switch(&deep_fiber, &main_fiber, 1);
    abort();
}

/* Overflow a fiber stack with the given guard in a child; the report and
 * SIGABRT are what the parent expects. */
static void overflow_with(int kind)
{
    int fds[2], status;
    char out[4096];
    size_t got = 0;
    ssize_t n;
    pid_t pid;

    TINY_ASSERT_EQ(pipe(fds), 0);
    fflush(NULL);
    pid = fork();
    TINY_ASSERT(pid >= 0);
    if (pid == 0) {
        tl__stack_pool *p;
        close(fds[0]);
        dup2(fds[1], 2);
        p = new_pool(kind);
        deep_stack = get_stack(p, 64 * 1024);
        if (deep_stack->guard != kind)
            _exit(77); /* fell back: the strategy is not available here */
        TINY_ASSERT_EQ(tl__stack_install_handler(test_lookup), 0);
        TINY_ASSERT_EQ(tl__stack_thread_init(), 0);
        tl__fiber_init_thread(&main_fiber);
        tl__fiber_make(&deep_fiber, deep_stack->lo,
                       (size_t)(deep_stack->hi - deep_stack->lo), deep_entry,
                       NULL);
        tl__fiber_switch(&main_fiber, &deep_fiber, 0);
        _exit(3); /* the recursion came back: no guard fired */
    }
    close(fds[1]);
    while (got + 1 < sizeof out &&
           (n = read(fds[0], out + got, sizeof out - 1 - got)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    out[got] = '\0';
    close(fds[0]);
    TINY_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        TINY_SKIP(tl__stack_guard_name(kind));
    printf("    child said: %s", out);
    fflush(stdout);
    TINY_ASSERT_STR_CONTAINS(out, "stack overflow in task 'deep'");
    TINY_ASSERT(WIFSIGNALED(status));
    TINY_ASSERT_EQ(WTERMSIG(status), SIGABRT);
}

TINY_TEST(overflow_madvise)
{
    if (tl__stack_guard_strategy() != TL__GUARD_MADVISE)
        TINY_SKIP("MADV_GUARD_INSTALL unavailable");
    overflow_with(TL__GUARD_MADVISE);
}

TINY_TEST(overflow_mprotect)
{
    overflow_with(TL__GUARD_MPROTECT);
}

/* Canary: no fault; a write that runs down over the canary is caught by
 * tl__stack_check at the next switch. */
static tl__fiber canary_fiber;
static tl__stack *canary_stack;

static void canary_entry(void *arg)
{
    (void)arg;
    tl__fiber_started(&canary_fiber);
    tl__fiber_switch(&canary_fiber, &main_fiber, 0);
    /* A controlled descending overflow: from just above the canary down
     * into the untouched gap below the stack. */
    for (volatile char *c = canary_stack->lo + 64; c >= canary_stack->lo - 64;
         c--)
        *c = (char)0xa5;
    tl__fiber_switch(&canary_fiber, &main_fiber, 1);
    abort();
}

TINY_TEST(overflow_canary)
{
    tl__stack_pool *p = new_pool(TL__GUARD_CANARY);
    tl__stack *again;

    canary_stack = get_stack(p, 64 * 1024);
    TINY_ASSERT_EQ(canary_stack->guard, TL__GUARD_CANARY);
    tl__fiber_init_thread(&main_fiber);
    tl__fiber_make(&canary_fiber, canary_stack->lo,
                   (size_t)(canary_stack->hi - canary_stack->lo),
                   canary_entry, NULL);
    tl__fiber_switch(&main_fiber, &canary_fiber, 0);
    TINY_ASSERT_EQ(tl__stack_check(canary_stack), 0);
    tl__fiber_switch(&main_fiber, &canary_fiber, 0);
    TINY_ASSERT_EQ(tl__stack_check(canary_stack), -1);
    tl__fiber_release(&canary_fiber);
    tl__stack_put(p, canary_stack);
    again = get_stack(p, 64 * 1024); /* reused, canary rewritten */
    if (REUSE_AT_ONCE) TINY_ASSERT_EQ(again, canary_stack);
    TINY_ASSERT_EQ(tl__stack_check(again), 0);
    tl__stack_put(p, again);
    tl__stack_pool_free(p);
}

/* ---- faults that are not ours are chained ------------------------------ */

static volatile sig_atomic_t prev_called;
static char *prot_page;
static long prot_len;

static void prev_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    if ((char *)si->si_addr >= prot_page &&
        (char *)si->si_addr < prot_page + prot_len) {
        prev_called++;
        mprotect(prot_page, (size_t)prot_len, PROT_READ | PROT_WRITE);
    }
}

TINY_TEST(chain_previous_handler)
{
    struct sigaction sa;
    tl__stack_pool *p = new_pool(TL__GUARD_AUTO);

    prot_len = sysconf(_SC_PAGESIZE);
    prot_page = mmap(NULL, (size_t)prot_len, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TINY_ASSERT(prot_page != MAP_FAILED);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = prev_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    TINY_ASSERT_EQ(sigaction(SIGSEGV, &sa, NULL), 0);
    /* A task with a guard exists, but the fault is elsewhere. */
    deep_stack = get_stack(p, 64 * 1024);
    TINY_ASSERT_EQ(tl__stack_install_handler(test_lookup), 0);
    TINY_ASSERT_EQ(tl__stack_thread_init(), 0);
    /* faults, chains, the page is opened, the write retried */
    *(volatile char *)&prot_page[10] = 42;
    TINY_ASSERT_EQ(prev_called, 1);
    TINY_ASSERT_EQ(prot_page[10], 42);
    tl__stack_thread_fini();
    tl__stack_put(p, deep_stack);
    tl__stack_pool_free(p);
}

TINY_TEST(chain_default_action)
{
    int status;
    struct sigaction old;
    pid_t pid;

    TINY_ASSERT_EQ(sigaction(SIGSEGV, NULL, &old), 0);
    fflush(NULL);
    pid = fork();
    TINY_ASSERT(pid >= 0);
    if (pid == 0) {
        char *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
                          -1, 0);
        /* silence a sanitizer's report in the grandchild */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        tl__stack_install_handler(test_lookup);
        tl__stack_thread_init();
        page[0] = 1;
        _exit(0);
    }
    TINY_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    TINY_ASSERT(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
        /* Nobody before us: the fault meets the default action. */
        TINY_ASSERT(WIFSIGNALED(status));
        TINY_ASSERT_EQ(WTERMSIG(status), SIGSEGV);
    } else {
        /* A sanitizer's handler was first: it reports and exits. */
        TINY_ASSERT(!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT);
    }
}

/* ---- scale: 200,000 stacks with MADV_GUARD_INSTALL --------------------- */

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    int n = 0, c;
    TINY_ASSERT(f != NULL);
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

TINY_TEST(many_stacks_madvise)
{
    /* More than vm.max_map_count (65,530), and no more: every stack's
     * 1 MiB guard is 256 page-table markers and most of a page-table page,
     * and 200,000 of them took 10 s at load 18. */
    enum { N = 70000 };
    tl__stack_pool *p;
    tl__stack **all;
    int before, after;

    if (tl__stack_guard_strategy() != TL__GUARD_MADVISE)
        TINY_SKIP("MADV_GUARD_INSTALL unavailable");
    if (!getenv("TINY_TIMEOUT"))
        alarm(60); /* 1.6 s alone, but all page-table work: slow at load 16 */
    p = new_pool(TL__GUARD_MADVISE);
    /* Nothing here touches the stacks: committing their top pages ahead
     * (what a task would touch at once) would only add 200,000 pages. */
    tl__stack_pool_set_populate(p, 0);
    all = malloc(N * sizeof *all);
    TINY_ASSERT(all != NULL);
    before = count_maps();
    for (int i = 0; i < N; i++) {
        all[i] = get_stack(p, 256 * 1024);
        TINY_ASSERT_EQ(all[i]->guard, TL__GUARD_MADVISE);
    }
    after = count_maps();
    printf("    %d stacks of 256 KiB: /proc/self/maps %d -> %d lines\n", N,
           before, after);
    fflush(stdout);
    TINY_ASSERT(after < 2000);
    for (int i = 0; i < N; i++)
        tl__stack_put(p, all[i]);
    free(all);
    tl__stack_pool_free(p);
}

int main(int argc, char **argv)
{
    return tiny_main("test_arch", argc, argv);
}
