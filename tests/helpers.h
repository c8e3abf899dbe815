/* Shared helpers for the Criterion test programs.
 *
 * - run_virtual(fn, arg): tl_run with the virtual clock, so timing tests
 *   are exact and instant.
 * - run_child(fn, arg, out, len): run fn(arg) in a forked child with its
 *   stderr and stdout captured (for diagnostics that end in abort(), or
 *   that must be read back); returns the raw wait status.
 * - run_virtual_child(fn, arg, out, len): run_virtual(fn, arg) in a
 *   run_child() child that prints "rc=<its result>"; returns the wait
 *   status (for misuse that is reported on stderr).
 * - tl_test_child(fn, arg, out, len): run_child() with out cleared first
 *   and a failed fork() failing the test.
 * - tl_test_virtual_child(fn, rc, out, len): run_virtual(fn, NULL) in a
 *   tl_test_child() child; its result lands in *rc (in a shared page).
 * - TL_ASSERT_EXITED_OK(st, out) (the test stops there),
 *   TL_EXPECT_EXITED_OK(st, out), TL_EXPECT_ABORTED(st, out),
 *   TL_EXPECT_OUT(out, s), TL_EXPECT_NOT_OUT(out, s): expectations on a
 *   child's wait status and its captured output; the output buffer is an
 *   explicit argument and is printed when the expectation fails.
 * - tl_test_count_of(hay, needle): non-overlapping occurrences of needle.
 * - tl_test_shared_page(size): a zeroed MAP_SHARED page that a forked
 *   child writes its observations into and the parent reads back.
 * - tl_test_now_s(): CLOCK_MONOTONIC in seconds (real time, for the few
 *   tests that must spin on the CPU).
 * - struct tl_test_errcap, tl_test_errcap_begin/read/end(c): stderr into
 *   a private non-blocking pipe that the test's own code reads while it
 *   runs (a watchdog report seen while the task is still stuck); end puts
 *   stderr back and passes the text on to it.
 * - tl_test_count_fds(): how many fds the process has open (from
 *   /proc/self/fd, fd_count.h's counter, which the tiny.h tests use
 *   too); compare a count before and after to catch a leak.
 * - tl_test_run_no_leak(fn, arg, virtual_clock): tl_run (or run_virtual)
 *   must return 0 and leave as many fds open as before.
 *   Socket helpers are in net_helpers.h.
 * - tl_test_spawn(fn, arg), tl_test_join(t), tl_test_settle(): spawn and
 *   join that expect success (join returns the task's status, -12345 if
 *   it got none), and ten tl_yield()s to let every ready task run without
 *   moving the clock. Call them inside a task.
 * - struct tl_test_rng, tl_test_rng_next(r): a seeded PRNG (splitmix64)
 *   for the property tests: one seed, one run.
 * - tl_test_recurse(0): recursion without end (1 KiB a level), to
 *   overflow a task's stack.
 * - TL_IGNORE(call): discard a TL_NODISCARD result on purpose.
 * - TL_TEST_SCALE(n): n in a normal build, n/10 under sanitizers.
 * Inside tasks use cr_expect* (never cr_assert*: it longjmps out of the
 * task's stack).
 */
#ifndef TULIP_TEST_HELPERS_H
#define TULIP_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <tulip.h>
#include <unistd.h>

#include "fd_count.h"

#ifndef TULIP_TEST_SANITIZED
#define TULIP_TEST_SANITIZED 0
#endif
#define TL_TEST_SCALE(n) (TULIP_TEST_SANITIZED ? (n) / 10 : (n))

/* Ignore a TL_NODISCARD result on purpose (GCC's warn_unused_result is
 * not silenced by a (void) cast). */
#define TL_IGNORE(call)                                                        \
    do {                                                                       \
        int tl_ignored_ = (call);                                              \
        (void)tl_ignored_;                                                     \
    } while (0)

static inline int run_virtual(tl_fn fn, void *arg)
{
    tl_config c = {.virtual_clock = 1};
    return tl_run_with(&c, fn, arg);
}

/* Fork; in the child redirect stdout+stderr into a pipe, run fn(arg) and
 * _exit(0). The parent collects up to len-1 bytes of output into out. */
static inline int run_child(void (*fn)(void *), void *arg, char *out,
                            size_t len)
{
    int p[2];
    if (pipe(p) < 0) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[1]);
        alarm(60);
        fn(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(p[0], out + n, len - 1 - n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            break;
        }
        n += (size_t)r;
        if (n == len - 1) {
            char sink[512];
            while (read(p[0], sink, sizeof sink) > 0) {}
            break;
        }
    }
    out[n] = '\0';
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return st;
}

struct tl_test_virtual_call {
    tl_fn fn;
    void *arg;
};

static inline void tl_test_print_virtual_rc(void *call)
{
    struct tl_test_virtual_call *c = call;
    printf("rc=%d\n", run_virtual(c->fn, c->arg));
}

/* run_virtual(fn, arg) in a forked child (run_child) that prints
 * "rc=<run_virtual's result>\n"; out gets that line and whatever the
 * run wrote to stdout and stderr. Returns the child's wait status. */
static inline int run_virtual_child(tl_fn fn, void *arg, char *out,
                                    size_t len)
{
    struct tl_test_virtual_call c = {fn, arg};
    return run_child(tl_test_print_virtual_rc, &c, out, len);
}

/* tl_spawn that expects success. */
static inline tl_task tl_test_spawn(tl_fn fn, void *arg)
{
    tl_task t;
    cr_expect_eq(tl_spawn(&t, fn, arg), 0);
    return t;
}

/* tl_join that expects success; returns the task's status. */
static inline int tl_test_join(tl_task t)
{
    int st = -12345;
    cr_expect_eq(tl_join(t, &st), 0);
    return st;
}

/* Let every ready task run a few times (without moving the clock). */
static inline void tl_test_settle(void)
{
    for (int i = 0; i < 10; i++) cr_expect_eq(tl_yield(), 0);
}

/* run_child() for a Test(): clears out first, fails the test if fork()
 * fails, returns the child's wait status. */
static inline int tl_test_child(void (*fn)(void *), void *arg, char *out,
                                size_t len)
{
    memset(out, 0, len);
    int st = run_child(fn, arg, out, len);
    cr_assert(st != -1, "fork failed");
    return st;
}

struct tl_test_virtual_rc {
    tl_fn fn;
    int *rc;
};

static inline void tl_test_store_virtual_rc(void *call)
{
    struct tl_test_virtual_rc *c = call;
    *c->rc = run_virtual(c->fn, NULL);
}

/* run_virtual(fn, NULL) in a tl_test_child() child, which stores its
 * result in *rc: rc must point into a tl_test_shared_page() for the
 * parent to see it. Returns the child's wait status. */
static inline int tl_test_virtual_child(tl_fn fn, int *rc, char *out,
                                        size_t len)
{
    struct tl_test_virtual_rc c = {fn, rc};
    return tl_test_child(tl_test_store_virtual_rc, &c, out, len);
}

/* Expectations on a child's wait status `st` and on its captured output
 * `out` (a NUL-terminated buffer filled by run_child / tl_test_child); a
 * failure message shows the whole output. */
#define TL_ASSERT_EXITED_OK(st, out)                                           \
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,                           \
              "child did not exit normally (status %#x); output:\n%s", (st),   \
              (out))
#define TL_EXPECT_EXITED_OK(st, out)                                           \
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,                           \
              "child did not exit normally (status %#x); output:\n%s", (st),   \
              (out))
#define TL_EXPECT_ABORTED(st, out)                                             \
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,                      \
              "child was not killed by SIGABRT (status %#x); output:\n%s",     \
              (st), (out))
#define TL_EXPECT_OUT(out, s)                                                  \
    cr_expect(strstr((out), (s)) != NULL, "missing \"%s\" in:\n%s", (s), (out))
#define TL_EXPECT_NOT_OUT(out, s)                                              \
    cr_expect(strstr((out), (s)) == NULL, "unexpected \"%s\" in:\n%s", (s),    \
              (out))

/* How many times needle occurs in hay, without overlaps. */
static inline int tl_test_count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* A zeroed page of `size` bytes shared with children forked afterwards
 * (MAP_SHARED | MAP_ANONYMOUS): a child records what it saw there, the
 * parent asserts on it. Fails the test if it cannot be mapped. Lives
 * until the test process ends (munmap it to free it sooner). */
static inline void *tl_test_shared_page(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(p != MAP_FAILED, "mmap of a shared page failed");
    memset(p, 0, size);
    return p;
}

/* CLOCK_MONOTONIC in seconds. */
static inline double tl_test_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* stderr captured for reading back live. begin: fd 2 goes into a private
 * non-blocking pipe (-errno if the pipe cannot be made; fd 2 is then left
 * alone); read: what arrived so far, appended to c->text (NUL-terminated,
 * the excess of a full buffer left in the pipe); end: fd 2 back, the text
 * read and passed on to it. */
struct tl_test_errcap {
    int rd, wr, saved;
    size_t len;
    char text[16384];
};

static inline int tl_test_errcap_begin(struct tl_test_errcap *c)
{
    int q[2];
    c->len = 0;
    c->text[0] = '\0';
    if (pipe(q) < 0) return -errno;
    fcntl(q[0], F_SETFL, O_NONBLOCK);
    c->rd = q[0];
    c->wr = q[1];
    c->saved = dup(2);
    dup2(c->wr, 2);
    return 0;
}

static inline const char *tl_test_errcap_read(struct tl_test_errcap *c)
{
    for (;;) {
        ssize_t r = read(c->rd, c->text + c->len, sizeof c->text - 1 - c->len);
        if (r <= 0) break;
        c->len += (size_t)r;
    }
    c->text[c->len] = '\0';
    return c->text;
}

static inline void tl_test_errcap_end(struct tl_test_errcap *c)
{
    dup2(c->saved, 2);
    close(c->saved);
    close(c->wr);
    tl_test_errcap_read(c);
    close(c->rd);
    TL_IGNORE((int)write(2, c->text, c->len));
}

/* How many fds the process has open (fd_count.h's tl_test_open_fds).
 * Fails the test (cr_expect: safe in a task) and returns -1 if
 * /proc/self/fd cannot be read. */
static inline int tl_test_count_fds(void)
{
    int n = tl_test_open_fds();
    cr_expect(n >= 0, "cannot open /proc/self/fd to count fds");
    return n;
}

/* Runs fn(arg) in a loop (on the virtual clock if virtual_clock): it must
 * return 0 (else the test stops there) and leave no fd open. */
static inline void tl_test_run_no_leak(tl_fn fn, void *arg, int virtual_clock)
{
    int before = tl_test_count_fds();
    int rc = virtual_clock ? run_virtual(fn, arg) : tl_run(fn, arg);
    cr_assert_eq(rc, 0, "tl_run: %d (%s)", rc, tl_strerror(rc));
    int after = tl_test_count_fds();
    cr_expect_eq(after, before, "fds leaked: before %d, after %d", before,
                 after);
}

/* splitmix64: small, fast, and every seed gives a full-period stream, so
 * a failing property test reruns exactly from the seed it prints. */
struct tl_test_rng {
    uint64_t s;
};

static inline uint64_t tl_test_rng_next(struct tl_test_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Unbounded recursion, 1 KiB per level: called from a task, it overflows
 * the task's stack (the limit only hides that from the compiler: 1 KiB
 * per level reaches any stack's end first). noinline, and not a tail
 * call, so every level keeps its frame. */
static __attribute__((noinline, unused)) int tl_test_recurse(int depth)
{
    static volatile int limit = 1 << 30;
    volatile char frame[1024];
    memset((char *)frame, depth & 0xff, sizeof frame);
    if (depth >= limit) return frame[0];
    return tl_test_recurse(depth + 1) + frame[depth & 1023];
}

#endif
