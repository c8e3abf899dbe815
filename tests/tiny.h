/* tiny.h: a minimal test harness for programs that cannot use Criterion
 * (cross-compiled AArch64 binaries run under qemu-user, for one).
 *
 *   TINY_TEST(name) { TINY_ASSERT_EQ(f(), 3); }
 *   int main(int argc, char **argv)
 *   { return tiny_main("test_x", argc, argv); }
 *
 * Each test runs in a forked child with an alarm() timeout (10 s, or
 * TINY_TIMEOUT seconds; 0 disables), so a crash or a hang fails that test
 * only. A child that exits 77 (TINY_SKIP) is skipped. Command-line
 * arguments, if any, name the tests to run. The last line printed is
 * "<prog>: N passed, N failed"; the exit status is 1 if any test failed,
 * 77 if every selected test was skipped, else 0.
 */
#ifndef TINY_H
#define TINY_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void (*tiny_fn)(void);

struct tiny_case {
    const char *name;
    tiny_fn fn;
};

#define TINY_MAX_CASES 128
static struct tiny_case tiny_cases[TINY_MAX_CASES];
static int tiny_ncases;

/* Registered by a constructor, in definition order. */
#define TINY_TEST(tname)                                                  \
    static void tiny_test_##tname(void);                                  \
    __attribute__((constructor)) static void tiny_register_##tname(void)  \
    {                                                                    \
        if (tiny_ncases < TINY_MAX_CASES) {                              \
            tiny_cases[tiny_ncases].name = #tname;                        \
            tiny_cases[tiny_ncases++].fn = tiny_test_##tname;             \
        }                                                                \
    }                                                                    \
    static void tiny_test_##tname(void)

__attribute__((noreturn, unused)) static void
tiny_fail_eq(const char *file, int line, const char *expr, long long a,
             long long b)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n"
                    "    left:  %lld (0x%llx)\n    right: %lld (0x%llx)\n",
            file, line, expr, a, (unsigned long long)a, b,
            (unsigned long long)b);
    exit(1);
}

__attribute__((noreturn, unused)) static void
tiny_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    exit(1);
}

/* Integers and pointers (compared as 64-bit values). */
#define TINY_ASSERT_EQ(a, b)                                             \
    do {                                                                 \
        long long tiny_a_ = (long long)(a), tiny_b_ = (long long)(b);    \
        if (tiny_a_ != tiny_b_)                                          \
            tiny_fail_eq(__FILE__, __LINE__, #a " == " #b, tiny_a_,      \
                         tiny_b_);                                       \
    } while (0)

#define TINY_ASSERT_NE(a, b)                                             \
    do {                                                                 \
        long long tiny_a_ = (long long)(a), tiny_b_ = (long long)(b);    \
        if (tiny_a_ == tiny_b_)                                          \
            tiny_fail_eq(__FILE__, __LINE__, #a " != " #b, tiny_a_,      \
                         tiny_b_);                                       \
    } while (0)

#define TINY_ASSERT(cond)                                                \
    do {                                                                 \
        if (!(cond))                                                     \
            tiny_fail(__FILE__, __LINE__, #cond);                        \
    } while (0)

#define TINY_ASSERT_STR_CONTAINS(hay, needle)                            \
    do {                                                                 \
        const char *tiny_h_ = (hay), *tiny_n_ = (needle);                \
        if (!tiny_h_ || !strstr(tiny_h_, tiny_n_)) {                     \
            fprintf(stderr, "%s:%d: assertion failed: %s contains %s\n"  \
                            "    haystack: \"%s\"\n    needle:   \"%s\"\n", \
                    __FILE__, __LINE__, #hay, #needle,                   \
                    tiny_h_ ? tiny_h_ : "(null)", tiny_n_);              \
            exit(1);                                                     \
        }                                                                \
    } while (0)

#define TINY_ASSERT_STR_EQ(a, b)                                         \
    do {                                                                 \
        const char *tiny_a_ = (a), *tiny_b_ = (b);                       \
        if (!tiny_a_ || !tiny_b_ || strcmp(tiny_a_, tiny_b_) != 0) {     \
            fprintf(stderr, "%s:%d: assertion failed: %s == %s\n"        \
                            "    left:  \"%s\"\n    right: \"%s\"\n",   \
                    __FILE__, __LINE__, #a, #b,                          \
                    tiny_a_ ? tiny_a_ : "(null)",                        \
                    tiny_b_ ? tiny_b_ : "(null)");                       \
            exit(1);                                                     \
        }                                                                \
    } while (0)

#define TINY_SKIP(why)                                                   \
    do {                                                                 \
        fprintf(stderr, "skipped: %s\n", (why));                         \
        exit(77);                                                        \
    } while (0)

static int tiny_selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name))
            return 1;
    return 0;
}

__attribute__((unused)) static int tiny_main(const char *prog, int argc,
                                             char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    const char *t = getenv("TINY_TIMEOUT");
    unsigned timeout = t ? (unsigned)strtoul(t, NULL, 10) : 10;

    for (int i = 0; i < tiny_ncases; i++) {
        struct tiny_case *c = &tiny_cases[i];
        int status;
        pid_t pid;

        if (!tiny_selected(c->name, argc, argv))
            continue;
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            alarm(timeout);
            c->fn();
            fflush(NULL);
            _exit(0);
        }
        while (waitpid(pid, &status, 0) < 0)
            ;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("PASS %s\n", c->name);
            passed++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            printf("SKIP %s\n", c->name);
            skipped++;
        } else if (WIFEXITED(status)) {
            printf("FAIL %s (exit status %d)\n", c->name, WEXITSTATUS(status));
            failed++;
        } else {
            int sig = WTERMSIG(status);
            printf("FAIL %s (killed by signal %d, %s%s)\n", c->name, sig,
                   strsignal(sig), sig == SIGALRM ? ": timeout" : "");
            failed++;
        }
    }
    if (skipped)
        printf("%s: %d skipped\n", prog, skipped);
    printf("%s: %d passed, %d failed\n", prog, passed, failed);
    if (failed)
        return 1;
    return passed == 0 && skipped > 0 ? 77 : 0;
}

#endif
