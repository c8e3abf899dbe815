/* Out of memory: a clear error, nothing lost, no crash.
 *
 * Each case runs in a child whose address space is capped (RLIMIT_AS), so
 * the kernel and malloc really refuse. Sanitizers reserve terabytes of
 * shadow memory and cannot run under such a cap: skipped there. */
#include "helpers.h"

#include <sys/resource.h>

#define SKIP_UNDER_SANITIZERS()                                       \
    do {                                                              \
        if (TULIP_TEST_SANITIZED || getenv("TULIP_TEST_VALGRIND"))    \
            cr_skip_test("RLIMIT_AS cannot be used under sanitizers"); \
    } while (0)

static void cap_address_space(size_t extra)
{
    /* Current size from /proc/self/statm (pages), plus `extra`. */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1) pages = 0;
        fclose(f);
    }
    size_t cur = pages * (size_t)sysconf(_SC_PAGESIZE);
    struct rlimit rl = {.rlim_cur = cur + extra, .rlim_max = RLIM_INFINITY};
    setrlimit(RLIMIT_AS, &rl);
}

static int small(void *arg)
{
    (void)arg;
    return tl_sleep(0.001) == 0 ? 1 : -1;
}

/* A task whose stack cannot be mapped: it never runs, its status is
 * -ENOMEM, the joiner learns it, and other tasks are unaffected. */
static int huge_stack_main(void *arg)
{
    (void)arg;
    tl_task big, ok;
    tl_spawn_opts o = {.name = "big", .stack_size = (size_t)1 << 33};
    if (tl_spawn_ex(&big, &o, small, NULL) != 0) return 10;
    if (tl_spawn(&ok, small, NULL) != 0) return 11;
    int sb = 0, so = 0;
    if (tl_join(big, &sb) != 0) return 12;
    if (tl_join(ok, &so) != 0) return 13;
    printf("big=%d ok=%d\n", sb, so);
    return sb == -ENOMEM && so == 1 ? 0 : 14;
}

static void run_huge_stack(void *arg)
{
    (void)arg;
    cap_address_space((size_t)512 << 20);
    tl_config c = {.virtual_clock = 1, .guard = TL_GUARD_CANARY};
    printf("rc=%d\n", tl_run_with(&c, huge_stack_main, NULL));
}

Test(oom, stack_that_cannot_be_mapped_fails_the_task_not_the_loop,
     .timeout = 60)
{
    SKIP_UNDER_SANITIZERS();
    char out[4096];
    int st = run_child(run_huge_stack, NULL, out, sizeof out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child died: %d\n%s",
              st, out);
    cr_expect(strstr(out, "big=-12 ok=1") != NULL, "output:\n%s", out);
    cr_expect(strstr(out, "rc=0") != NULL, "output:\n%s", out);
    cr_expect(strstr(out, "task 'big' could not get a stack: Cannot "
                          "allocate memory; it never ran") != NULL,
              "output:\n%s", out);
}

/* Spawning until memory runs out: tl_spawn says -ENOMEM, every task that
 * was made still runs and is joined, and the loop ends cleanly. */
static int spawn_until_enomem(void *arg)
{
    (void)arg;
    size_t cap = 1 << 16, n = 0;
    tl_task *ts = malloc(cap * sizeof *ts);
    if (!ts) return 20;
    int rc = 0;
    for (;;) {
        if (n == cap) {
            tl_task *more = realloc(ts, 2 * cap * sizeof *ts);
            if (!more) {
                rc = -ENOMEM; /* our own array ran out first: also fine */
                break;
            }
            ts = more;
            cap *= 2;
        }
        rc = tl_spawn(&ts[n], small, NULL);
        if (rc < 0) break;
        n++;
        if (n > 50u * 1000 * 1000) break; /* the cap did not bite */
    }
    size_t ok = 0, nomem = 0;
    for (size_t i = 0; i < n; i++) {
        int st = 0;
        if (tl_join(ts[i], &st) != 0) return 21;
        if (st == 1) ok++;
        else if (st == -ENOMEM) nomem++;
    }
    free(ts);
    printf("spawned=%zu ok=%zu nomem=%zu last=%d\n", n, ok, nomem, rc);
    return rc == -ENOMEM && ok + nomem == n && n > 0 ? 0 : 22;
}

static void run_spawn_until(void *arg)
{
    (void)arg;
    setenv("TULIP_BLOCKING_MS", "0", 1); /* spawning 10^6 tasks is slow */
    cap_address_space((size_t)256 << 20);
    tl_config c = {.virtual_clock = 1, .stack_size = 16 * 1024};
    printf("rc=%d\n", tl_run_with(&c, spawn_until_enomem, NULL));
}

Test(oom, spawning_until_enomem_loses_nothing, .timeout = 60)
{
    SKIP_UNDER_SANITIZERS();
    static char out[1 << 20];
    int st = run_child(run_spawn_until, NULL, out, sizeof out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child died: %d\n%s",
              st, out);
    cr_expect(strstr(out, "rc=0") != NULL, "output:\n%s", out);
    cr_expect(strstr(out, "more task(s) could not get a stack") != NULL,
              "output:\n%s", out);
}
