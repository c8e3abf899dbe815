/* libuv peer of bench/bench_core.c: the same scenarios and keys. libuv has
 * callbacks, not tasks, so each "task" is the nearest callback shape:
 *
 *   uv_peer spawn N     N one-shot 0 ms timers, all started before the
 *                       loop runs any; each callback closes its handle;
 *                       run the loop until all are closed         ns/task
 *   uv_peer pingpong N  two callback "tasks" handing a message through two
 *                       1-slot buffers; a put wakes the other side by
 *                       starting its idle handle (libuv's way to run a
 *                       callback on the next loop iteration)    ns/switch
 *   uv_peer yield N     one idle handle: a callback per loop iteration
 *                                                                ns/yield
 *   uv_peer sleep N     N one-shot 1 s timers (one uv_timer_t each, in an
 *                       array): wall s; resident B/timer once all are
 *                       started
 *   uv_peer sem N       N callback "tasks" through a 100-permit counting
 *                       semaphore written here (a counter and a FIFO of
 *                       waiters); each holds a permit for a 1 ms timer:
 *                       wall s
 *
 * Built by tools/bench.sh with `pkg-config --cflags --libs libuv`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static long n;
static uv_loop_t *loop;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count, size);
    if (!p) {
        fprintf(stderr, "uv_peer: out of memory\n");
        exit(1);
    }
    return p;
}

static int check(long got, const char *what)
{
    if (got == n) return 0;
    fprintf(stderr, "uv_peer: %s: %ld of %ld\n", what, got, n);
    return 1;
}

/* ---- spawn -------------------------------------------------------------- */

static long count;

static void on_closed_free(uv_handle_t *h)
{
    free(h);
}

static void on_spawned(uv_timer_t *t)
{
    count++;
    uv_close((uv_handle_t *)t, on_closed_free);
}

static int run_spawn(void)
{
    double t0 = now();
    for (long i = 0; i < n; i++) {
        uv_timer_t *t = xcalloc(1, sizeof *t);
        uv_timer_init(loop, t);
        uv_timer_start(t, on_spawned, 0, 0);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    double t1 = now();
    if (check(count, "spawn: callbacks run")) return 1;
    printf("spawn: %.1f ns/task\n", (t1 - t0) * 1e9 / (double)n);
    return 0;
}

/* ---- ping-pong ---------------------------------------------------------- */

struct side {
    uv_idle_t idle;   /* started: this side has a message to take */
    long slot;        /* the 1-slot buffer it reads from */
    int full;
    struct side *peer;
    long rounds;
};

static void pp_step(uv_idle_t *h)
{
    struct side *s = (struct side *)h;
    uv_idle_stop(h);
    if (!s->full) return;
    long msg = s->slot;
    s->full = 0;
    if (++s->rounds > n) return; /* both sides saw n messages: done */
    s->peer->slot = msg + 1;
    s->peer->full = 1;
    uv_idle_start(&s->peer->idle, pp_step);
}

static int run_pingpong(void)
{
    struct side a = {0}, b = {0};
    a.peer = &b;
    b.peer = &a;
    uv_idle_init(loop, &a.idle);
    uv_idle_init(loop, &b.idle);
    double t0 = now();
    a.slot = 0;
    a.full = 1;
    a.rounds = 0;
    uv_idle_start(&a.idle, pp_step);
    uv_run(loop, UV_RUN_DEFAULT);
    double t1 = now();
    uv_close((uv_handle_t *)&a.idle, NULL);
    uv_close((uv_handle_t *)&b.idle, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    if (check(b.rounds, "pingpong: round trips")) return 1;
    /* Each round trip: a -> b, b -> a: two hand-offs. */
    printf("pingpong: %.1f ns/switch\n", (t1 - t0) * 1e9 / (2.0 * (double)n));
    return 0;
}

/* ---- yield -------------------------------------------------------------- */

static void on_idle(uv_idle_t *h)
{
    if (++count == n) uv_idle_stop(h);
}

static int run_yield(void)
{
    uv_idle_t h;
    uv_idle_init(loop, &h);
    uv_idle_start(&h, on_idle);
    double t0 = now();
    uv_run(loop, UV_RUN_DEFAULT);
    double t1 = now();
    uv_close((uv_handle_t *)&h, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    if (check(count, "yield: callbacks")) return 1;
    printf("yield: %.1f ns/yield\n", (t1 - t0) * 1e9 / (double)n);
    return 0;
}

/* ---- sleep -------------------------------------------------------------- */

static void on_woke(uv_timer_t *t)
{
    (void)t;
    count++;
}

static int run_sleep(void)
{
    double base = rss_bytes();
    double t0 = now();
    uv_timer_t *v = xcalloc((size_t)n, sizeof *v);
    for (long i = 0; i < n; i++) {
        uv_timer_init(loop, &v[i]);
        uv_timer_start(&v[i], on_woke, 1000, 0);
    }
    double peak = rss_bytes();
    uv_run(loop, UV_RUN_DEFAULT);
    double t1 = now();
    for (long i = 0; i < n; i++) uv_close((uv_handle_t *)&v[i], NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    free(v);
    if (check(count, "sleep: timers fired")) return 1;
    printf("sleep_wall: %.3f s\n", t1 - t0);
    printf("sleep_rss: %.0f B/task\n", (peak - base) / (double)n);
    return 0;
}

/* ---- semaphore ---------------------------------------------------------- */

struct holder {
    uv_timer_t timer;
    struct holder *next; /* in the waiters' FIFO */
};

static struct {
    int permits;
    struct holder *head, *tail;
} sem = {100, NULL, NULL};

static void on_held(uv_timer_t *t);

static void hold(struct holder *h)
{
    uv_timer_start(&h->timer, on_held, 1, 0);
}

static void acquire(struct holder *h)
{
    if (sem.permits > 0 && !sem.head) {
        sem.permits--;
        hold(h);
        return;
    }
    h->next = NULL;
    if (sem.tail) sem.tail->next = h;
    else sem.head = h;
    sem.tail = h;
}

static void release(void)
{
    struct holder *w = sem.head;
    if (!w) {
        sem.permits++;
        return;
    }
    sem.head = w->next; /* the permit passes straight to the first waiter */
    if (!sem.head) sem.tail = NULL;
    hold(w);
}

static void on_held(uv_timer_t *t)
{
    count++;
    uv_close((uv_handle_t *)t, on_closed_free);
    release();
}

static int run_sem(void)
{
    double t0 = now();
    for (long i = 0; i < n; i++) {
        struct holder *h = xcalloc(1, sizeof *h);
        uv_timer_init(loop, &h->timer);
        acquire(h);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    double t1 = now();
    if (check(count, "sem: holders")) return 1;
    printf("sem_wall: %.3f s\n", t1 - t0);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(void);
    } scenarios[] = {
        {"spawn", run_spawn}, {"pingpong", run_pingpong},
        {"yield", run_yield}, {"sleep", run_sleep}, {"sem", run_sem},
    };
    int (*run)(void) = NULL;
    if (argc == 3) {
        for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
            if (strcmp(argv[1], scenarios[i].name) == 0) run = scenarios[i].run;
        n = atol(argv[2]);
    }
    if (!run || n < 1) {
        fprintf(stderr, "usage: uv_peer spawn|pingpong|yield|sleep|sem N\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    loop = uv_default_loop();
    int rc = run();
    uv_loop_close(loop);
    return rc;
}
