/* Backend selection: every run uses the backend its name says (CTest runs
 * each test as <name>@epoll and <name>@io_uring with TULIP_BACKEND set),
 * an unknown name is refused, and io_uring forced where the kernel refuses
 * it falls back to epoll with a one-line notice naming the errno. A plain
 * program, so that it also runs under ThreadSanitizer and qemu. */
/* tulip-test-labels: thread */
#include "tiny.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <tulip.h>

#if defined(TL_HAVE_LIBURING) && defined(__linux__) &&                     \
    (defined(__x86_64__) || defined(__aarch64__))
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#define HAVE_SECCOMP_TEST 1
#endif

static const char *seen_backend;

static int record_backend(void *arg)
{
    (void)arg;
    seen_backend = tl_backend_name();
    return 7;
}

/* Does the kernel let this process make an io_uring? entries = 0 is
 * always -EINVAL where io_uring exists and is allowed; seccomp and
 * kernel.io_uring_disabled say EPERM, kernels without it ENOSYS. */
static int kernel_refuses_io_uring(void)
{
#ifdef __NR_io_uring_setup
    long r = syscall(__NR_io_uring_setup, 0, NULL);
    return r < 0 && (errno == ENOSYS || errno == EPERM);
#else
    return 1;
#endif
}

/* Everything written to stderr from now on (this is a forked child). */
static FILE *capture_stderr(void)
{
    FILE *f = tmpfile();
    TINY_ASSERT(f != NULL);
    fflush(stderr);
    TINY_ASSERT(dup2(fileno(f), 2) == 2);
    return f;
}

static char *captured(FILE *f)
{
    static char buf[4096];
    fflush(stderr);
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    return buf;
}

TINY_TEST(run_uses_the_backend_named_in_TULIP_BACKEND)
{
    const char *want = getenv("TULIP_BACKEND");
    if (!want || !*want) TINY_SKIP("TULIP_BACKEND is not set");
#ifndef TL_HAVE_LIBURING
    if (strcmp(want, "io_uring") == 0)
        TINY_SKIP("io_uring is not built into this tulip");
#endif
    if (strcmp(want, "io_uring") == 0 && kernel_refuses_io_uring())
        TINY_SKIP("the kernel refuses io_uring here");
    TINY_ASSERT_EQ(tl_run(record_backend, NULL), 7);
    TINY_ASSERT_STR_EQ(seen_backend, want);
    TINY_ASSERT(tl_backend_name() == NULL); /* outside a loop */
}

TINY_TEST(config_backend_wins_over_the_environment)
{
    setenv("TULIP_BACKEND", "io_uring", 1);
    tl_config c = {.backend = "epoll"};
    TINY_ASSERT_EQ(tl_run_with(&c, record_backend, NULL), 7);
    TINY_ASSERT_STR_EQ(seen_backend, "epoll");
}

TINY_TEST(auto_picks_io_uring_when_it_works)
{
    unsetenv("TULIP_BACKEND");
    FILE *f = capture_stderr();
    TINY_ASSERT_EQ(tl_run(record_backend, NULL), 7);
#ifdef TL_HAVE_LIBURING
    TINY_ASSERT_STR_EQ(seen_backend,
                       kernel_refuses_io_uring() ? "epoll" : "io_uring");
#else
    TINY_ASSERT_STR_EQ(seen_backend, "epoll");
#endif
    TINY_ASSERT_STR_EQ(captured(f), ""); /* the automatic choice is silent */
}

TINY_TEST(unknown_backend_is_EINVAL)
{
    setenv("TULIP_BACKEND", "kqueue", 1);
    FILE *f = capture_stderr();
    seen_backend = NULL;
    TINY_ASSERT_EQ(tl_run(record_backend, NULL), -EINVAL);
    TINY_ASSERT(seen_backend == NULL); /* main never ran */
    TINY_ASSERT_STR_CONTAINS(captured(f), "unknown backend 'kqueue'");

    unsetenv("TULIP_BACKEND");
    tl_config c = {.backend = "uring"};
    TINY_ASSERT_EQ(tl_run_with(&c, record_backend, NULL), -EINVAL);
    TINY_ASSERT(seen_backend == NULL);
}

#ifdef HAVE_SECCOMP_TEST
/* Make io_uring_setup fail with err for this process, as a container's
 * seccomp profile does (Docker's says EPERM; a kernel without io_uring
 * says ENOSYS). Returns 0, or -1 if seccomp filters are not available. */
static int forbid_io_uring(int err)
{
#if defined(__x86_64__)
    const uint32_t arch = AUDIT_ARCH_X86_64;
#else
    const uint32_t arch = AUDIT_ARCH_AARCH64;
#endif
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K,
                 SECCOMP_RET_ERRNO | ((uint32_t)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
        return -1;
    return 0;
}

static void forced_io_uring_falls_back(int err, const char *name)
{
    if (kernel_refuses_io_uring())
        TINY_SKIP("the kernel refuses io_uring here already");
    if (forbid_io_uring(err) < 0) TINY_SKIP("no seccomp filters here");
    TINY_ASSERT(kernel_refuses_io_uring());

    /* Automatic: epoll, silently. */
    unsetenv("TULIP_BACKEND");
    FILE *f = capture_stderr();
    TINY_ASSERT_EQ(tl_run(record_backend, NULL), 7);
    TINY_ASSERT_STR_EQ(seen_backend, "epoll");
    TINY_ASSERT_STR_EQ(captured(f), "");

    /* Forced: epoll, with one line naming the errno. */
    setenv("TULIP_BACKEND", "io_uring", 1);
    seen_backend = NULL;
    TINY_ASSERT_EQ(tl_run(record_backend, NULL), 7);
    TINY_ASSERT_STR_EQ(seen_backend, "epoll");
    char want[128];
    snprintf(want, sizeof want,
             "tulip: backend 'io_uring' is not available (%s: %s); "
             "using epoll\n", name, strerror(err));
    TINY_ASSERT_STR_EQ(captured(f), want);
}

TINY_TEST(forced_io_uring_forbidden_by_seccomp_falls_back_to_epoll)
{
    forced_io_uring_falls_back(EPERM, "EPERM");
}

TINY_TEST(forced_io_uring_missing_from_the_kernel_falls_back_to_epoll)
{
    forced_io_uring_falls_back(ENOSYS, "ENOSYS");
}
#endif

#ifndef TL_HAVE_LIBURING
TINY_TEST(forced_io_uring_not_built_falls_back_to_epoll)
{
    setenv("TULIP_BACKEND", "io_uring", 1);
    FILE *f = capture_stderr();
    TINY_ASSERT_EQ(tl_run(record_backend, NULL), 7);
    TINY_ASSERT_STR_EQ(seen_backend, "epoll");
    TINY_ASSERT_STR_CONTAINS(captured(f),
                             "backend 'io_uring' is not built into this "
                             "tulip; using epoll");
}
#endif

int main(int argc, char **argv)
{
    return tiny_main("test_backend", argc, argv);
}
