/* Shared helpers for the Criterion test programs.
 *
 * - run_virtual(fn, arg): tl_run with the virtual clock, so timing tests
 *   are exact and instant.
 * - run_child(fn, arg, out, len): run fn(arg) in a forked child with its
 *   stderr and stdout captured (for diagnostics that end in abort(), or
 *   that must be read back); returns the raw wait status.
 * - TL_TEST_SCALE(n): n in a normal build, n/10 under sanitizers.
 * Inside tasks use cr_expect* (never cr_assert*: it longjmps out of the
 * task's stack).
 */
#ifndef TULIP_TEST_HELPERS_H
#define TULIP_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <tulip.h>
#include <unistd.h>

#ifndef TULIP_TEST_SANITIZED
#define TULIP_TEST_SANITIZED 0
#endif
#define TL_TEST_SCALE(n) (TULIP_TEST_SANITIZED ? (n) / 10 : (n))

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

#endif
