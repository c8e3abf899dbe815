/* tulip-test-timeout: 200 */
/* tools/tulip-gdb.py: `tulip-tasks` lists the tasks of a core file and of
 * a stopped process, with backtraces that reach into the tasks' own
 * functions. Skipped (77) without gdb, in sanitized or emulated builds,
 * and where the kernel writes no core file here (a core_pattern that
 * pipes to a crash collector) or forbids attaching.
 */
#include "tiny.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <tulip.h>

#ifndef TULIP_TEST_SANITIZED
#define TULIP_TEST_SANITIZED 0
#endif
#ifndef TULIP_TEST_EMULATED
#define TULIP_TEST_EMULATED 0
#endif

#define SCRIPT TULIP_SOURCE_DIR "/tools/tulip-gdb.py"

static void skip_unless_gdb(void)
{
    if (TULIP_TEST_SANITIZED) TINY_SKIP("sanitized build: no core dumps");
    if (TULIP_TEST_EMULATED) TINY_SKIP("emulated: no gdb for the target");
    if (system("gdb --version >/dev/null 2>&1") != 0)
        TINY_SKIP("gdb is not installed");
    const char *be = getenv("TULIP_BACKEND");
    if (be && strcmp(be, "epoll") != 0)
        TINY_SKIP("the script does not depend on the backend: run on epoll "
                  "only");
}

/* ---- the program gdb looks at --------------------------------------------- */

static int ready_fd = -1;
static volatile int sink;

__attribute__((noinline)) static int gdb_parked_here(void)
{
    int rc = tl_sleep(1000);
    sink = rc; /* not a tail call: this frame stays on the stack */
    return sink;
}

static int alpha(void *arg)
{
    (void)arg;
    int rc = gdb_parked_here();
    sink = rc;
    return sink;
}

static int beta(void *arg)
{
    (void)arg;
    int rc = tl_sleep(2000);
    sink = rc;
    return sink;
}

static int victim_main(void *arg)
{
    int how = *(int *)arg; /* 0: abort (core), 1: stop and wait (attach) */
    tl_task a, b;
    tl_spawn_ex(&a, &(tl_spawn_opts){.name = "alpha"}, alpha, NULL);
    tl_spawn_ex(&b, &(tl_spawn_opts){.name = "beta"}, beta, NULL);
    if (tl_sleep(0.01) < 0) return -1;
    if (how == 0) abort();
    /* Blocks the loop on purpose: the process is looked at from outside. */
    char c = 'r';
    if (write(ready_fd, &c, 1) != 1) return -1;
    for (;;) pause();
}

static void run_victim(int how)
{
    setenv("TULIP_BLOCKING_MS", "0", 1); /* pause() blocks the loop */
    tl_config cfg = {.virtual_clock = 1};
    tl_run_with(&cfg, victim_main, &how);
    _exit(3);
}

/* Run gdb in batch mode on `target` ("EXE CORE" or "-p PID"); its output
 * (stdout and stderr) goes to `out`. */
static void run_gdb(const char *target, char *out, size_t len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "timeout 60 gdb -batch -nx -ex 'source %s' -ex 'tulip-tasks' "
             "%s 2>&1", SCRIPT, target);
    FILE *p = popen(cmd, "r");
    TINY_ASSERT(p != NULL);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    pclose(p);
}

static void check_listing(const char *out)
{
    TINY_ASSERT_STR_CONTAINS(out, "loop #");
    TINY_ASSERT_STR_CONTAINS(out, "task 'main' (slot 0) running");
    TINY_ASSERT_STR_CONTAINS(out, "task 'alpha' (slot 1) waiting, in tl_sleep");
    TINY_ASSERT_STR_CONTAINS(out, "task 'beta' (slot 2) waiting, in tl_sleep");
#ifdef TL_CONTEXT_UCONTEXT
    /* The ucontext switch saves no frame the script can walk: it says so
     * for each suspended task; the running one has gdb's own backtrace. */
    TINY_ASSERT_STR_CONTAINS(out, "(the ucontext build: no saved frame to walk)");
    TINY_ASSERT_STR_CONTAINS(out, "in victim_main at ");
#else
    /* The backtraces reach the tasks' own functions. */
    TINY_ASSERT_STR_CONTAINS(out, "in gdb_parked_here at ");
    TINY_ASSERT_STR_CONTAINS(out, "in alpha at ");
    TINY_ASSERT_STR_CONTAINS(out, "in beta at ");
    TINY_ASSERT_STR_CONTAINS(out, "in victim_main at ");
#endif
}

/* ---- a core file ----------------------------------------------------------- */

TINY_TEST(tasks_of_a_core_file)
{
    skip_unless_gdb();
    char pattern[256] = "";
    int fd = open("/proc/sys/kernel/core_pattern", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, pattern, sizeof pattern - 1);
        pattern[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    if (pattern[0] == '|' || strchr(pattern, '/'))
        TINY_SKIP("core_pattern sends cores elsewhere");
    struct rlimit rl;
    getrlimit(RLIMIT_CORE, &rl);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (64 << 20))
        TINY_SKIP("RLIMIT_CORE hard limit too small for a core file");
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_CORE, &rl);

    char dir[] = "/tmp/tulip-gdb-XXXXXX";
    TINY_ASSERT(mkdtemp(dir) != NULL);
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    TINY_ASSERT(n > 0);
    exe[n] = '\0';
    pid_t pid = fork();
    TINY_ASSERT(pid >= 0);
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(2);
        run_victim(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    TINY_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    char core[600] = "";
    DIR *d = opendir(dir);
    TINY_ASSERT(d != NULL);
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, "core", 4) == 0)
            snprintf(core, sizeof core, "%s/%s", dir, e->d_name);
    closedir(d);
    if (!WCOREDUMP(st) || !core[0]) {
        rmdir(dir);
        TINY_SKIP("no core file was written");
    }
    static char out[65536];
    char target[1200];
    snprintf(target, sizeof target, "%s %s", exe, core);
    run_gdb(target, out, sizeof out);
    unlink(core);
    rmdir(dir);
    printf("%s\n", out);
    check_listing(out);
}

/* ---- a stopped process ----------------------------------------------------- */

TINY_TEST(tasks_of_a_running_process)
{
    skip_unless_gdb();
    int p[2];
    TINY_ASSERT(pipe(p) == 0);
    pid_t pid = fork();
    TINY_ASSERT(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        ready_fd = p[1];
        /* Let gdb (a sibling, not an ancestor) attach under Yama. */
        prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
        run_victim(1);
    }
    close(p[1]);
    char c;
    TINY_ASSERT_EQ(read(p[0], &c, 1), 1);
    close(p[0]);
    static char out[65536];
    char target[64];
    snprintf(target, sizeof target, "-p %d", (int)pid);
    run_gdb(target, out, sizeof out);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    printf("%s\n", out);
    if (strstr(out, "ptrace: Operation not permitted"))
        TINY_SKIP("attaching is not permitted here");
    check_listing(out);
}

int main(int argc, char **argv)
{
    /* gdb reads debug information for a few seconds; on a loaded machine
     * more than tiny's default 10 s per case. */
    setenv("TINY_TIMEOUT", "90", 0);
    return tiny_main("test_gdb", argc, argv);
}
