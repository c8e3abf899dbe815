/* Process-wide safety: what tulip installs in a process (the SIGSEGV/SIGBUS
 * handler, the SIGINT handler, the watchdog thread) must behave with the
 * handlers a program installed before it, and with a libtulip.so that is
 * dlclose()d. Each case runs in a forked child (run_child): they change
 * signal dispositions, fault on purpose, or die.
 */
#include <dlfcn.h>
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

/* ---- dlclose() of libtulip.so: a handler that repairs faults ------------ */

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
