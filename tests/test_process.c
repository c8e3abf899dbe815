/* Process-wide safety: what tulip installs in a process (the SIGSEGV/SIGBUS
 * handler, the SIGINT handler, the watchdog thread) must behave with the
 * handlers a program installed before it, and with a libtulip.so that is
 * dlclose()d. Each case runs in a forked child (run_child): they change
 * signal dispositions, fault on purpose, or die.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "helpers.h"

struct facts {
    volatile int calls;        /* deliveries to the previous handler */
    volatile int on_altstack;  /* ... of which ran on an alternate stack */
    volatile int usr1_blocked; /* ... of which had SIGUSR1 blocked */
    volatile int right_addr;   /* ... of which had the faulting address */
    volatile int code, value;
    volatile int rc[8];
};

static struct facts *F;
static char out[16384];
static char *page; /* PROT_NONE: the fault that is not tulip's */

static void facts_init(void)
{
    F = tl_test_shared_page(sizeof *F);
    long pg = sysconf(_SC_PAGESIZE);
    page = mmap(NULL, (size_t)pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                0);
    cr_assert(page != MAP_FAILED);
}

static void note_delivery(siginfo_t *si)
{
    stack_t ss;
    sigset_t cur;
    F->calls++;
    if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK))
        F->on_altstack++;
    if (sigprocmask(SIG_BLOCK, NULL, &cur) == 0 && sigismember(&cur, SIGUSR1))
        F->usr1_blocked++;
    if ((char *)si->si_addr == page) F->right_addr++;
}

static void install(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    cr_assert_eq(sigaction(sig, &sa, NULL), 0);
}

/* ---- a crash reporter installed before tulip ----------------------------- */

/* Reports and returns; SA_RESETHAND made the next delivery the default
 * action, so the re-executed fault dumps core. Bounded: an old tulip
 * called it again and again. */
static void reporter(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    note_delivery(si);
    if (F->calls > 3) _exit(3);
}

static int faulting_task(void *arg)
{
    (void)arg;
    F->rc[1] = 1;
    *(volatile char *)page = 1;
    F->rc[2] = 1; /* not reached */
    return 0;
}

static int fault_main(void *arg)
{
    (void)arg;
    tl_task t;
    if (tl_spawn(&t, faulting_task, NULL) < 0) return -1;
    return tl_join(t, NULL);
}

/* The kernel writes "core" (maybe with the pid) into the working
 * directory when core_pattern is that plain name: then the test can see
 * the dump, in a directory of its own. Else only the signal is checked. */
static int core_pattern_is_plain(void)
{
    char buf[128] = "";
    FILE *f = fopen("/proc/sys/kernel/core_pattern", "re");
    if (!f) return 0;
    if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return strcmp(buf, "core") == 0;
}

static void reporter_child(void *arg)
{
    const char *dir = arg;
    if (dir) {
        struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
        if (setrlimit(RLIMIT_CORE, &rl) != 0 || chdir(dir) != 0) _exit(4);
    }
    install(SIGSEGV, reporter, SA_RESETHAND); /* before tulip: no SA_ONSTACK */
    F->rc[0] = run_virtual(fault_main, NULL);
    F->rc[3] = 1; /* not reached */
}

static void remove_dir(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    TL_IGNORE(system(cmd));
}

Test(process, crash_reporter_installed_first_gets_one_delivery_then_the_core,
     .timeout = 30)
{
    facts_init();
    char dir[] = "/tmp/tulip-core-XXXXXX";
    int plain = core_pattern_is_plain();
    if (plain) cr_assert(mkdtemp(dir) != NULL);
    int st = tl_test_child(reporter_child, plain ? dir : NULL, out, sizeof out);
    if (plain) remove_dir(dir);
    cr_expect_eq(F->rc[1], 1, "the task ran");
    cr_expect_eq(F->rc[2], 0);
    cr_expect_eq(F->rc[3], 0);
    cr_expect_eq(F->calls, 1, "%d deliveries to the reporter", F->calls);
    cr_expect_eq(F->right_addr, 1);
    cr_expect_eq(F->on_altstack, 0,
                 "the reporter ran on tulip's alternate stack");
    cr_expect_eq(F->usr1_blocked, 1, "its sa_mask was not honoured");
    TL_EXPECT_NOT_OUT(out, "stack overflow");
#if TULIP_TEST_SANITIZED
    /* ASan's own handler may be what the default action reaches. */
    cr_expect(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "status %#x", st);
#else
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
              "not killed by SIGSEGV (status %#x):\n%s", st, out);
    if (plain)
        cr_expect(WCOREDUMP(st), "no core dump (status %#x)", st);
#endif
}

/* ---- a handler that repairs the fault, then a stack overflow ------------- */

/* Like a garbage collector's write barrier: open the page, return, the
 * write is retried. */
static void repairer(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    note_delivery(si);
    if ((char *)si->si_addr == page)
        mprotect(page, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE);
    else
        _exit(5); /* a fault it does not know: tulip should have had it */
}

static int deep(void *arg)
{
    (void)arg;
    return tl_test_recurse(0);
}

static int repair_main(void *arg)
{
    (void)arg;
    tl_task t;
    *(volatile char *)page = 7; /* repaired by the previous handler */
    F->rc[1] = page[0];
    TL_IGNORE(tl_yield()); /* the loop puts tulip's handler back */
    if (tl_spawn_ex(&t, &(tl_spawn_opts){.name = "deep"}, deep, NULL) < 0)
        return -1;
    return tl_join(t, NULL);
}

static void repair_child(void *arg)
{
    (void)arg;
    install(SIGSEGV, repairer, 0);
    tl_config c = {.virtual_clock = 1, .guard = TL_GUARD_MPROTECT};
    F->rc[0] = tl_run_with(&c, repair_main, NULL);
    F->rc[3] = 1; /* not reached */
}

Test(process, handler_that_repairs_a_fault_keeps_it_and_overflows_still_report,
     .timeout = 30)
{
    facts_init();
    int st = tl_test_child(repair_child, NULL, out, sizeof out);
    cr_expect_eq(F->calls, 1, "%d deliveries to the repairer", F->calls);
    cr_expect_eq(F->rc[1], 7);
    cr_expect_eq(F->on_altstack, 0);
    cr_expect_eq(F->usr1_blocked, 1);
    TL_EXPECT_ABORTED(st, out);
    TL_EXPECT_OUT(out, "tulip: stack overflow in task 'deep'");
    cr_expect_eq(F->rc[3], 0);
}

/* ---- a SIGSEGV sent with sigqueue ---------------------------------------- */

static void counter(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    note_delivery(si);
    F->code = si->si_code;
    F->value = si->si_value.sival_int;
}

static int send_main(void *arg)
{
    (void)arg;
    union sigval v = {.sival_int = 77};
    F->rc[1] = sigqueue(getpid(), SIGSEGV, v);
    TL_IGNORE(tl_yield());
    return 0;
}

static void send_child(void *arg)
{
    (void)arg;
    install(SIGSEGV, counter, 0);
    F->rc[0] = run_virtual(send_main, NULL);
    F->rc[3] = 1;
}

Test(process, sent_sigsegv_reaches_the_previous_handler_once_with_its_siginfo,
     .timeout = 30)
{
    facts_init();
    int st = tl_test_child(send_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->rc[3], 1);
    cr_expect_eq(F->calls, 1);
    cr_expect_eq(F->code, SI_QUEUE);
    cr_expect_eq(F->value, 77);
    cr_expect_eq(F->on_altstack, 0);
}

/* ---- dlclose() of libtulip.so -------------------------------------------- */

/* The shared library is built beside the tests; CTest names it. */
typedef int (*run_fn)(tl_fn, void *);
typedef int (*sleep_fn)(double);
static sleep_fn so_sleep;

static int so_main(void *arg)
{
    (void)arg;
    return so_sleep(0.01); /* the watchdog thread is running by now */
}

static void dlclose_child(void *arg)
{
    const char *path = arg;
    install(SIGSEGV, repairer, 0);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("dlopen: %s\n", dlerror());
        _exit(6);
    }
    run_fn run = (run_fn)dlsym(h, "tl_run");
    so_sleep = (sleep_fn)dlsym(h, "tl_sleep");
    if (!run || !so_sleep) _exit(7);
    F->rc[0] = run(so_main, NULL);
    F->rc[1] = dlclose(h);
    /* Still mapped: the watchdog thread and the SIGSEGV handler point
     * into it. */
    F->rc[2] = dlopen(path, RTLD_NOW | RTLD_NOLOAD) != NULL;
    /* The watchdog samples every 25 ms (100 ms threshold / 4): give it
     * many chances to run, then fault through tulip's handler. */
    struct timespec ts = {0, 200 * 1000000};
    nanosleep(&ts, NULL);
    *(volatile char *)page = 9;
    F->rc[3] = page[0];
}

Test(process, dlclose_of_libtulip_leaves_it_loaded, .timeout = 30)
{
    const char *path = getenv("TULIP_TEST_SHARED_LIB");
    if (!path || !*path) cr_skip_test("no shared library in this build");
    facts_init();
    setenv("TULIP_BLOCKING_MS", "100", 1);
    int st = tl_test_child(dlclose_child, (void *)path, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[1], 0);
    cr_expect_eq(F->rc[2], 1, "libtulip.so was unmapped by dlclose");
    cr_expect_eq(F->rc[3], 9);
    cr_expect_eq(F->calls, 1);
}

/* ---- SIGINT: a handler chained in front of tulip's ----------------------- */

static struct sigaction int_prev; /* what user_int displaced: tulip's */

static void user_int(int sig)
{
    F->calls++;
    if (!(int_prev.sa_flags & SA_SIGINFO) && int_prev.sa_handler != SIG_DFL &&
        int_prev.sa_handler != SIG_IGN)
        int_prev.sa_handler(sig); /* chain, as a well-behaved handler does */
}

static int is_user_int(void)
{
    struct sigaction cur;
    return sigaction(SIGINT, NULL, &cur) == 0 &&
           !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == user_int;
}

static int chained_main(void *arg)
{
    (void)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = user_int;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, &int_prev) != 0) return -1;
    F->rc[1] = int_prev.sa_handler != SIG_DFL; /* tulip's was in place */
    raise(SIGINT); /* Ctrl-C: through user_int to tulip: main is cancelled */
    return tl_sleep(10.0);
}

static void chained_child(void *arg)
{
    (void)arg;
    signal(SIGINT, SIG_DFL);
    F->rc[0] = tl_run(chained_main, NULL);
    F->rc[2] = is_user_int(); /* tl_run left the newer handler alone */
    fflush(NULL);
    raise(SIGINT); /* no loop now: tulip's part is the default action */
    F->rc[3] = 1;  /* not reached */
}

Test(process, sigint_handler_chained_in_front_of_tulips_stays, .timeout = 30)
{
    facts_init();
    int st = tl_test_child(chained_child, NULL, out, sizeof out);
    cr_expect_eq(F->rc[1], 1);
    cr_expect_eq(F->rc[0], -ECANCELED, "%s", out);
    TL_EXPECT_OUT(out, "Ctrl-C: cancelling the main task");
    cr_expect_eq(F->rc[2], 1, "tl_run replaced a handler installed after it");
    cr_expect_eq(F->calls, 2);
    cr_expect_eq(F->rc[3], 0);
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT,
              "not killed by SIGINT (status %#x):\n%s", st, out);
}

/* ---- SIGINT on another thread while tl_run returns ----------------------- */

/* The handler runs on a thread of the program while the main thread's
 * tl_run returns: it must finish with the loop before the loop is freed.
 * The test hook holds the handler inside (bounded: 300 ms) and records
 * whether tl_run returned meanwhile. */
extern void (*volatile tl__sigint_test_hook)(void);
static atomic_int in_handler, run_returned, returned_while_inside;

static void hold_handler(void)
{
    atomic_store(&in_handler, 1);
    double end = tl_test_now_s() + 0.3;
    while (!atomic_load(&run_returned) && tl_test_now_s() < end) {}
    atomic_store(&returned_while_inside, atomic_load(&run_returned));
}

static void *int_thread(void *arg)
{
    (void)arg;
    pthread_kill(pthread_self(), SIGINT); /* delivered on this thread */
    return NULL;
}

static int race_main(void *arg)
{
    pthread_t *th = arg;
    if (pthread_create(th, NULL, int_thread, NULL) != 0) return -1;
    for (int i = 0; i < 2000 && !atomic_load(&in_handler); i++)
        TL_IGNORE(tl_sleep(0.001));
    F->rc[1] = atomic_load(&in_handler);
    return 0; /* tl_run now tears down while the handler holds the loop */
}

static void race_child(void *arg)
{
    (void)arg;
    pthread_t th;
    sigset_t int_set;
    signal(SIGINT, SIG_DFL);
    sigemptyset(&int_set);
    sigaddset(&int_set, SIGINT);
    tl__sigint_test_hook = hold_handler;
    F->rc[0] = tl_run(race_main, &th);
    atomic_store(&run_returned, 1);
    /* tl_run gave SIGINT back its default: keep the main thread out of it */
    pthread_sigmask(SIG_BLOCK, &int_set, NULL);
    pthread_join(th, NULL);
    F->rc[2] = atomic_load(&returned_while_inside);
}

Test(process, sigint_on_another_thread_finishes_before_the_loop_is_freed,
     .timeout = 30)
{
    facts_init();
    int st = tl_test_child(race_child, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    cr_expect_eq(F->rc[1], 1, "the handler never ran");
    cr_expect_eq(F->rc[0], 0);
    cr_expect_eq(F->rc[2], 0, "tl_run freed its loop while the SIGINT "
                              "handler still used it");
}
