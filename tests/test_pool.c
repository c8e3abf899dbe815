/* tl_to_thread and the thread pool: exact results under concurrency,
 * cancellation that waits for the worker (invariant 1), the abandon flag,
 * pools shared by several loops, the virtual clock while a job is in
 * flight, clear errors instead of hangs, and teardown.
 *
 * A plain program (tiny.h): it runs under ThreadSanitizer too, where
 * Criterion cannot.
 */
/* tulip-test-labels: thread */
#include "tiny.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <tulip.h>

#include "thread/pool.h"

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0) {}
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep, ignoring the result (a cancelled caller's loop ends anyway). */
static void nap(double s)
{
    if (tl_sleep(s) < 0) {}
}

/* Wait (suspending, real clock) until *flag is set by a worker. */
static void await_flag(atomic_int *flag)
{
    while (!atomic_load(flag)) nap(0.001);
}

/* ---- many tasks at once, exact results ----------------------------------- */

#define MANY 48

static atomic_int max_running, running_now, tickets, partner_seen;

/* The first job waits (bounded: 5 s) until a second job is running: a
 * pool that ran jobs one at a time fails here, whatever the load, and a
 * loaded machine only makes the wait longer. The other jobs just run;
 * how many overlap beyond two is up to the OS, so only the pool's cap is
 * checked for them. */
static int square(void *arg)
{
    int v = *(int *)arg;
    int r = atomic_fetch_add(&running_now, 1) + 1;
    int m = atomic_load(&max_running);
    while (r > m && !atomic_compare_exchange_weak(&max_running, &m, r)) {}
    if (atomic_fetch_add(&tickets, 1) == 0) {
        double end = mono() + 5.0;
        while (atomic_load(&tickets) < 2 && mono() < end) msleep(1);
        /* The partner counted itself in running_now (and max_running)
         * before it took its ticket, while this job was still running. */
        atomic_store(&partner_seen, atomic_load(&tickets) >= 2);
    }
    atomic_fetch_sub(&running_now, 1);
    return v * v;
}

struct many_arg {
    int in, out, rc;
};

static int many_child(void *p)
{
    struct many_arg *a = p;
    a->out = -1;
    a->rc = tl_to_thread(square, &a->in, &a->out);
    return 0;
}

static int many_main(void *p)
{
    (void)p;
    struct many_arg a[MANY];
    tl_call calls[MANY];
    for (int i = 0; i < MANY; i++) {
        a[i] = (struct many_arg){.in = i + 1};
        calls[i] = TL_CALL(many_child, &a[i]);
    }
    int rc = tl_gather(MANY, calls, NULL);
    TINY_ASSERT_EQ(rc, 0);
    for (int i = 0; i < MANY; i++) {
        TINY_ASSERT_EQ(a[i].rc, 0);
        TINY_ASSERT_EQ(a[i].out, (i + 1) * (i + 1));
    }
    return 0;
}

TINY_TEST(many_tasks_exact_results)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int cap = cpus < 1 ? 5 : cpus + 4 < 32 ? (int)cpus + 4 : 32;
    TINY_ASSERT_EQ(tl_run(many_main, NULL), 0);
    /* A second job ran while the first waited for it: several threads. */
    TINY_ASSERT_EQ(atomic_load(&partner_seen), 1);
    TINY_ASSERT(atomic_load(&max_running) >= 2);
    /* Never more at once than the default pool's threads. */
    TINY_ASSERT(atomic_load(&max_running) <= cap);
}

/* ---- cancel while the worker runs: wait for it, and keep its result ----- */

static atomic_int worker_started;

static int slow_write(void *arg)
{
    atomic_store(&worker_started, 1);
    msleep(100);
    strcpy(arg, "written"); /* the caller's stack */
    return 7;
}

struct cancel_arg {
    int rc, result, saw_write, next_rc;
};

static int cancel_child(void *p)
{
    struct cancel_arg *c = p;
    char buf[16] = "";
    c->result = -1;
    c->rc = tl_to_thread(slow_write, buf, &c->result);
    /* The worker's write happened before the call returned. */
    c->saw_write = strcmp(buf, "written") == 0;
    c->next_rc = tl_yield();
    return 0;
}

static int cancel_main(void *p)
{
    (void)p;
    struct cancel_arg c = {0};
    tl_task t;
    TINY_ASSERT_EQ(tl_spawn(&t, cancel_child, &c), 0);
    await_flag(&worker_started);
    double t0 = mono();
    TINY_ASSERT_EQ(tl_cancel(t), 0);
    int st = -1;
    TINY_ASSERT_EQ(tl_join(t, &st), 0);
    /* The work completed: its result wins (tulip.h's rule), and the
     * cancel shows at the caller's next suspending call. */
    TINY_ASSERT_EQ(c.rc, 0);
    TINY_ASSERT_EQ(c.saw_write, 1);
    TINY_ASSERT_EQ(c.result, 7);
    TINY_ASSERT_EQ(c.next_rc, -ECANCELED);
    TINY_ASSERT(mono() - t0 > 0.05); /* it did wait for the worker */
    return 0;
}

TINY_TEST(cancel_waits_for_worker)
{
    TINY_ASSERT_EQ(tl_run(cancel_main, NULL), 0);
}

/* ---- cancel before a worker took the job: withdrawn ---------------------- */

static atomic_int gate, blocker_started, ran_count;

static int blocker(void *arg)
{
    (void)arg;
    atomic_store(&blocker_started, 1);
    while (!atomic_load(&gate)) msleep(1);
    return 1;
}

static int counted(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran_count, 1);
    return 5;
}

static int blocker_task(void *p)
{
    int r = 0;
    int rc = tl_to_thread(blocker, NULL, &r);
    *(int *)p = rc == 0 ? r : rc;
    return 0;
}

struct queued_arg {
    int rc, result;
};

static int queued_child(void *p)
{
    struct queued_arg *q = p;
    q->result = 12345; /* sentinel */
    q->rc = tl_to_thread(counted, NULL, &q->result);
    return 0;
}

static int queued_main(void *p)
{
    (void)p;
    int brc = -1;
    tl_task b, t;
    TINY_ASSERT_EQ(tl_spawn(&b, blocker_task, &brc), 0);
    await_flag(&blocker_started); /* the only thread is busy */
    struct queued_arg q = {0};
    TINY_ASSERT_EQ(tl_spawn(&t, queued_child, &q), 0);
    TINY_ASSERT_EQ(tl_sleep(0.01), 0); /* q's job is queued now */
    TINY_ASSERT_EQ(tl_cancel(t), 0);
    TINY_ASSERT_EQ(tl_join(t, NULL), 0);
    TINY_ASSERT_EQ(q.rc, -ECANCELED);
    TINY_ASSERT_EQ(q.result, 12345); /* untouched: fn never ran */
    atomic_store(&gate, 1);
    TINY_ASSERT_EQ(tl_join(b, NULL), 0);
    TINY_ASSERT_EQ(brc, 1);
    TINY_ASSERT_EQ(atomic_load(&ran_count), 0);
    return 0;
}

TINY_TEST(cancel_queued_job_is_withdrawn)
{
    tl_pool *pool;
    TINY_ASSERT_EQ(tl_pool_new(&pool, 1), 0);
    tl_config cfg = {.pool = pool};
    TINY_ASSERT_EQ(tl_run_with(&cfg, queued_main, NULL), 0);
    TINY_ASSERT_EQ(tl_pool_free(pool), 0);
    TINY_ASSERT_EQ(atomic_load(&ran_count), 0);
}

/* ---- the abandon flag: return at once, fn frees its arg ------------------ */

static atomic_int abandoned_done;

struct heap_arg {
    atomic_int refs; /* caller + fn */
    atomic_int started;
    int out;
};

static void heap_put(struct heap_arg *h)
{
    if (atomic_fetch_sub(&h->refs, 1) == 1) free(h);
}

static int slow_heap(void *arg)
{
    struct heap_arg *h = arg;
    atomic_store(&h->started, 1);
    msleep(150);
    h->out = 99;
    atomic_store(&abandoned_done, 1);
    heap_put(h); /* fn owns (its reference to) arg */
    return 3;
}

struct abandon_arg {
    struct heap_arg *h;
    int rc, result;
    int done_at_return;
};

static int abandon_child(void *p)
{
    struct abandon_arg *a = p;
    a->result = -1;
    a->rc = tl_to_thread_ex(slow_heap, a->h, &a->result,
                            TL_THREAD_ABANDON_ON_CANCEL);
    a->done_at_return = atomic_load(&abandoned_done);
    heap_put(a->h); /* the caller's own reference */
    return 0;
}

static int abandon_main(void *p)
{
    (void)p;
    struct heap_arg *h = calloc(1, sizeof *h);
    atomic_init(&h->refs, 2);
    struct abandon_arg a = {.h = h};
    tl_task t;
    TINY_ASSERT_EQ(tl_spawn(&t, abandon_child, &a), 0);
    while (!atomic_load(&h->started)) nap(0.001);
    double t0 = mono();
    TINY_ASSERT_EQ(tl_cancel(t), 0);
    TINY_ASSERT_EQ(tl_join(t, NULL), 0);
    double took = mono() - t0;
    TINY_ASSERT_EQ(a.rc, -ECANCELED);
    TINY_ASSERT_EQ(a.result, -1);         /* never written */
    TINY_ASSERT_EQ(a.done_at_return, 0);  /* returned before fn finished */
    TINY_ASSERT(took < 0.1);
    return 0;
}

TINY_TEST(abandon_returns_early)
{
    TINY_ASSERT_EQ(tl_run(abandon_main, NULL), 0);
    /* tl_run waited for the abandoned job before returning. */
    TINY_ASSERT_EQ(atomic_load(&abandoned_done), 1);
}

/* With the flag and no cancel, the result arrives as usual. */
static int plain_heap(void *arg)
{
    int *v = arg;
    int r = *v * 2;
    free(v);
    return r;
}

static int abandon_ok_main(void *p)
{
    (void)p;
    int *v = malloc(sizeof *v);
    *v = 21;
    int r = 0;
    TINY_ASSERT_EQ(tl_to_thread_ex(plain_heap, v, &r,
                                   TL_THREAD_ABANDON_ON_CANCEL), 0);
    TINY_ASSERT_EQ(r, 42);
    /* Already cancelled: fn still runs (it owns arg), the call says so. */
    v = malloc(sizeof *v);
    *v = 1;
    TINY_ASSERT_EQ(tl_cancel(tl_current()), 0);
    r = -1;
    TINY_ASSERT_EQ(tl_to_thread_ex(plain_heap, v, &r,
                                   TL_THREAD_ABANDON_ON_CANCEL), -ECANCELED);
    TINY_ASSERT_EQ(r, -1);
    return 0;
}

TINY_TEST(abandon_flag_without_cancel)
{
    TINY_ASSERT_EQ(tl_run(abandon_ok_main, NULL), 0);
}

/* ---- several loops share one pool ---------------------------------------- */

#define LOOP_JOBS 40

static int add_one(void *arg) { return *(int *)arg + 1; }

struct loop_arg {
    tl_pool *pool;
    int base, ok, busy_rc;
};

static int loop_main(void *p)
{
    struct loop_arg *a = p;
    a->busy_rc = tl_pool_free(a->pool); /* in use: refused */
    for (int i = 0; i < LOOP_JOBS; i++) {
        int v = a->base + i, r = 0;
        if (tl_to_thread(add_one, &v, &r) != 0 || r != v + 1) return -EIO;
    }
    a->ok = 1;
    return 0;
}

static void *loop_thread(void *p)
{
    struct loop_arg *a = p;
    tl_config cfg = {.pool = a->pool, .no_sigint = 1};
    int rc = tl_run_with(&cfg, loop_main, a);
    return (void *)(intptr_t)rc;
}

TINY_TEST(loops_share_a_pool)
{
    tl_pool *pool;
    TINY_ASSERT_EQ(tl_pool_new(&pool, 2), 0);
    struct loop_arg a[2] = {{pool, 0, 0, 0}, {pool, 1000, 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        TINY_ASSERT_EQ(pthread_create(&th[i], NULL, loop_thread, &a[i]), 0);
    for (int i = 0; i < 2; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        TINY_ASSERT_EQ((intptr_t)rc, 0);
        TINY_ASSERT_EQ(a[i].ok, 1);
        TINY_ASSERT_EQ(a[i].busy_rc, -EBUSY);
    }
    TINY_ASSERT_EQ(tl_pool_free(pool), 0);
}

/* ---- the virtual clock waits for a job in flight ------------------------- */

static int real_50ms(void *arg)
{
    (void)arg;
    msleep(50);
    return 42;
}

static int job_task(void *arg)
{
    (void)arg;
    int r = 0;
    int rc = tl_to_thread(real_50ms, NULL, &r);
    return rc < 0 ? rc : r;
}

static int vclock_main(void *p)
{
    (void)p;
    double t0 = tl_now();
    TINY_ASSERT_EQ(tl_wait_for(TL_CALL(job_task, NULL), 0.5), 42);
    TINY_ASSERT(tl_now() - t0 < 0.5); /* time did not jump to the deadline */
    return 0;
}

TINY_TEST(virtual_clock_waits_for_job)
{
    tl_config cfg = {.virtual_clock = 1};
    TINY_ASSERT_EQ(tl_run_with(&cfg, vclock_main, NULL), 0);
}

/* ---- a full queue is an error, not a hang -------------------------------- */

static int full_main(void *p)
{
    tl_pool *pool = p;
    tl__pool_set_queue_max(pool, 1);
    int brc = -1, r = 0;
    tl_task b, q;
    TINY_ASSERT_EQ(tl_spawn(&b, blocker_task, &brc), 0);
    await_flag(&blocker_started);
    struct queued_arg qa = {0};
    TINY_ASSERT_EQ(tl_spawn(&q, queued_child, &qa), 0);
    TINY_ASSERT_EQ(tl_sleep(0.01), 0); /* the queue holds qa's job */
    TINY_ASSERT_EQ(tl_to_thread(counted, NULL, &r), -EAGAIN);
    atomic_store(&gate, 1);
    TINY_ASSERT_EQ(tl_join(b, NULL), 0);
    TINY_ASSERT_EQ(tl_join(q, NULL), 0);
    TINY_ASSERT_EQ(qa.rc, 0);
    TINY_ASSERT_EQ(qa.result, 5);
    TINY_ASSERT_EQ(atomic_load(&ran_count), 1);
    return 0;
}

TINY_TEST(full_queue_is_eagain)
{
    tl_pool *pool;
    TINY_ASSERT_EQ(tl_pool_new(&pool, 1), 0);
    tl_config cfg = {.pool = pool};
    TINY_ASSERT_EQ(tl_run_with(&cfg, full_main, pool), 0);
    TINY_ASSERT_EQ(tl_pool_free(pool), 0);
}

/* ---- pool threads block every signal ------------------------------------- */

static int mask_check(void *arg)
{
    (void)arg;
    sigset_t cur;
    pthread_sigmask(SIG_SETMASK, NULL, &cur);
    return sigismember(&cur, SIGINT) && sigismember(&cur, SIGTERM) &&
           sigismember(&cur, SIGCHLD) && sigismember(&cur, SIGUSR1);
}

static int mask_main(void *p)
{
    (void)p;
    int r = 0;
    TINY_ASSERT_EQ(tl_to_thread(mask_check, NULL, &r), 0);
    TINY_ASSERT_EQ(r, 1);
    return 0;
}

TINY_TEST(workers_block_signals)
{
    TINY_ASSERT_EQ(tl_run(mask_main, NULL), 0);
}

/* ---- the runtime's own jobs: the waiter leaves at once ------------------- */

static atomic_int internal_released, internal_worked;

struct ijob {
    tl__job job;
    atomic_int started;
    int ms;
};

static void ijob_work(tl__job *j)
{
    struct ijob *x = (struct ijob *)j;
    atomic_store(&x->started, 1);
    msleep(x->ms);
    atomic_fetch_add(&internal_worked, 1);
}

static void ijob_release(tl__job *j)
{
    atomic_fetch_add(&internal_released, 1);
    free(j);
}

static int ijob_child(void *p)
{
    struct ijob *x = p;
    return tl__pool_submit(tl__self, &x->job);
}

static int internal_main(void *p)
{
    (void)p;
    /* Completes normally: the caller owns the job again. */
    struct ijob *x = calloc(1, sizeof *x);
    x->job.work = ijob_work;
    x->job.release = ijob_release;
    x->ms = 1;
    TINY_ASSERT_EQ(tl__pool_submit(tl__self, &x->job), 0);
    TINY_ASSERT_EQ(atomic_load(&internal_worked), 1);
    free(x);

    /* Cancelled while it runs: leaves at once, released after work. */
    x = calloc(1, sizeof *x);
    x->job.work = ijob_work;
    x->job.release = ijob_release;
    x->ms = 100;
    tl_task t;
    TINY_ASSERT_EQ(tl_spawn(&t, ijob_child, x), 0);
    while (!atomic_load(&x->started)) nap(0.001);
    double t0 = mono();
    TINY_ASSERT_EQ(tl_cancel(t), 0);
    int st = 0;
    TINY_ASSERT_EQ(tl_join(t, &st), 0);
    TINY_ASSERT_EQ(st, -ECANCELED);
    TINY_ASSERT(mono() - t0 < 0.08);
    TINY_ASSERT_EQ(atomic_load(&internal_released), 0);
    while (atomic_load(&internal_released) == 0) nap(0.005);
    TINY_ASSERT_EQ(atomic_load(&internal_worked), 2);
    return 0;
}

TINY_TEST(internal_job_abandoned_on_cancel)
{
    TINY_ASSERT_EQ(tl_run(internal_main, NULL), 0);
    TINY_ASSERT_EQ(atomic_load(&internal_released), 1);
}

/* ---- teardown waits for a worker, then returns --------------------------- */

static atomic_int teardown_done;

static int slow_flag(void *arg)
{
    (void)arg;
    atomic_store(&worker_started, 1);
    msleep(60);
    atomic_store(&teardown_done, 1);
    return 0;
}

static int straggler(void *p)
{
    (void)p;
    char buf[8];
    (void)buf;
    int r;
    return tl_to_thread(slow_flag, buf, &r);
}

static int teardown_main(void *p)
{
    (void)p;
    TINY_ASSERT_EQ(tl_spawn(NULL, straggler, NULL), 0);
    await_flag(&worker_started);
    return 0; /* tl_run cancels the straggler and waits for its worker */
}

TINY_TEST(teardown_waits_for_worker)
{
    TINY_ASSERT_EQ(tl_run(teardown_main, NULL), 0);
    TINY_ASSERT_EQ(atomic_load(&teardown_done), 1);
}

/* ---- a pool inherited across fork() -------------------------------------- */

static int fork_child_main(void *p)
{
    (void)p;
    int r = 0;
    return tl_to_thread(add_one, &r, &r);
}

TINY_TEST(pool_inherited_across_fork)
{
#if defined(__SANITIZE_THREAD__)
    /* The child's tl_run starts the watchdog thread, which TSan refuses
     * after a multi-threaded fork. */
    TINY_SKIP("TSan: no threads after a multi-threaded fork");
#endif
#if defined(TULIP_TEST_EMULATED)
    /* qemu-user asserts (cpu == current_cpu) when a multi-threaded guest
     * forks and the child starts threads: an emulator bug, not ours. */
    TINY_SKIP("qemu-user cannot fork a multi-threaded guest reliably");
#endif
    tl_pool *pool;
    TINY_ASSERT_EQ(tl_pool_new(&pool, 2), 0);
    tl_config cfg = {.pool = pool, .no_sigint = 1};
    TINY_ASSERT_EQ(tl_run_with(&cfg, mask_main, NULL), 0); /* threads up */
    fflush(NULL);
    pid_t pid = fork();
    TINY_ASSERT(pid >= 0);
    if (pid == 0) {
        /* The threads stayed in the parent: a clear error, not a hang. */
        int rc = tl_run_with(&cfg, fork_child_main, NULL);
        int frc = tl_pool_free(pool); /* frees memory only */
        _exit(rc == TL_EFORK && frc == 0 ? 0 : 1);
    }
    int st = 0;
    TINY_ASSERT_EQ(waitpid(pid, &st, 0), pid);
    TINY_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The parent's pool is untouched. */
    TINY_ASSERT_EQ(tl_run_with(&cfg, mask_main, NULL), 0);
    TINY_ASSERT_EQ(tl_pool_free(pool), 0);
}

/* ---- misuse -------------------------------------------------------------- */

TINY_TEST(misuse_and_arguments)
{
    int r;
    TINY_ASSERT_EQ(tl_to_thread(add_one, &r, &r), TL_ENOTASK);
    tl_pool *p = (tl_pool *)&r;
    TINY_ASSERT_EQ(tl_pool_new(&p, -1), -EINVAL);
    TINY_ASSERT(p == NULL);
    TINY_ASSERT_EQ(tl_pool_free(NULL), 0);
    TINY_ASSERT_EQ(tl_pool_new(&p, 0), 0);
    TINY_ASSERT_EQ(tl_pool_free(p), 0); /* never started a thread */
}

int main(int argc, char **argv) { return tiny_main("test_pool", argc, argv); }
