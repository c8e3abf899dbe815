/* Property tests: many tasks, random cancellations and random deadlines on
 * the virtual clock, then exact accounting (invariant 3: completed wins,
 * nothing lost, counts stay exact) for every primitive and every queue
 * kind.
 *
 * Deterministic: the loop is deterministic on the virtual clock and all
 * randomness comes from one seeded PRNG (splitmix64). The seed is printed;
 * TULIP_SEED=<n> repeats (or varies) a run. Each test runs several rounds
 * with parameters drawn from the seed (permits, parties, queue kind and
 * bound, shutdown mode).
 *
 * The chaos comes from two sides: a chaos task cancels random workers at
 * random times, and workers that just released something cancel a random
 * worker right away — which often hits a task that was just handed a
 * permit and has not run yet (the "completed wins" case; the tests count
 * how often it happened).
 */
#include "helpers.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

#define DEFAULT_SEED 20261127u
#define SCALE(n) (TULIP_TEST_SANITIZED ? (n) / 3 : (n))
#define ROUNDS 4

/* ---- PRNG ---------------------------------------------------------------- */

static uint32_t rnd(struct tl_test_rng *r, uint32_t n) { return (uint32_t)(tl_test_rng_next(r) % n); }

/* 0 .. max_ms milliseconds, microsecond steps (0 included: sleep(0)). */
static double rnd_secs(struct tl_test_rng *r, int max_ms)
{
    return (double)rnd(r, (uint32_t)max_ms * 1000u + 1u) / 1e6;
}

static uint64_t base_seed(const char *test, uint64_t salt)
{
    const char *e = getenv("TULIP_SEED");
    uint64_t s = e && *e ? strtoull(e, NULL, 0) : DEFAULT_SEED;
    printf("test_sync_property %s: seed=%" PRIu64
           " (TULIP_SEED=<n> to repeat or vary)\n", test, s);
    fflush(stdout);
    struct tl_test_rng r = {s ^ salt};
    return tl_test_rng_next(&r);
}

/* ---- chaos ----------------------------------------------------------------- */

struct chaos {
    tl_task *tasks;
    int n;
    struct tl_test_rng r;
    int max_ms;
    long cancels;
};

static int chaos_fn(void *arg)
{
    struct chaos *c = arg;
    for (;;) {
        if (tl_sleep(rnd_secs(&c->r, c->max_ms)) < 0) return 0;
        tl_cancel(c->tasks[rnd(&c->r, (uint32_t)c->n)]);
        c->cancels++;
    }
}

/* The order in which workers started to wait, as the test sees it: a
 * worker about to block (the object is taken) appends itself, and marks
 * itself gone when its wait returns. A worker that releases something
 * cancels the first one still marked waiting half of the time: usually
 * the very task it just handed the permit, lock or item to, which has not
 * run yet — the "completed wins" case. */
struct line {
    int *ring;
    int head, tail;
    unsigned char *waiting;
    tl_task *tasks;
};

static void line_init(struct line *l, int n, int max_waits, tl_task *tasks)
{
    l->ring = calloc((size_t)n * (size_t)max_waits + 1, sizeof *l->ring);
    l->waiting = calloc((size_t)n, 1);
    l->head = l->tail = 0;
    l->tasks = tasks;
}

static void line_free(struct line *l)
{
    free(l->ring);
    free(l->waiting);
}

static void line_enter(struct line *l, int id)
{
    l->ring[l->tail++] = id;
    l->waiting[id] = 1;
}

static void line_leave(struct line *l, int id) { l->waiting[id] = 0; }

static void line_cancel_first(struct line *l, struct tl_test_rng *r)
{
    while (l->head < l->tail && !l->waiting[l->ring[l->head]]) l->head++;
    if (l->head < l->tail && rnd(r, 2) == 0)
        tl_cancel(l->tasks[l->ring[l->head]]);
}

/* Workers count themselves out; the last one sets `all_done`. Joining
 * only then keeps every handle live while workers may still cancel each
 * other (a joined handle is stale). */
struct life {
    int alive;
    tl_event all_done;
};

static void life_init(struct life *lf, int n)
{
    lf->alive = n;
    cr_expect_eq(tl_event_init(&lf->all_done), 0);
}

static void life_exit(struct life *lf)
{
    if (--lf->alive == 0) cr_expect_geq(tl_event_set(&lf->all_done), 0);
}

/* Wait for every worker, stop the chaos, join everything. */
static void life_join(struct life *lf, tl_task *tasks, int n, tl_task chaos)
{
    cr_expect_eq(tl_event_wait(&lf->all_done), 0);
    tl_cancel(chaos);
    cr_expect_eq(tl_join(chaos, NULL), 0);
    for (int i = 0; i < n; i++) {
        int st = -1;
        cr_expect_eq(tl_join(tasks[i], &st), 0);
        cr_expect_eq(st, 0);
    }
    cr_expect_eq(tl_event_destroy(&lf->all_done), 0);
}

/* Run op in a random deadline scope a third of the time. Returns the
 * verdict: the op's result, -ETIMEDOUT, or -ECANCELED. */
#define MAYBE_DEADLINE(r, max_ms, rc, op)                                    \
    do {                                                                    \
        if (rnd((r), 3) == 0) {                                             \
            tl_scope sc_ = tl_timeout_enter(rnd_secs((r), (max_ms)));       \
            (rc) = (op);                                                    \
            (rc) = tl_scope_exit(sc_, (rc));                                \
        } else {                                                            \
            (rc) = (op);                                                    \
        }                                                                   \
    } while (0)

/* Shared bookkeeping of one round. */
struct stats {
    long ok, timeouts, cancelled, kept_after_cancel, other;
};

static void stats_print(const char *what, int round, const char *params,
                        const struct stats *s, long chaos)
{
    printf("  %s round %d (%s): ok=%ld timed-out=%ld cancelled=%ld "
           "kept-after-cancel=%ld chaos-cancels=%ld\n",
           what, round, params, s->ok, s->timeouts, s->cancelled,
           s->kept_after_cancel, chaos);
    fflush(stdout);
}

/* Count a wait's result into st: 1 when it succeeded (the worker goes on
 * holding what it waited for), 0 when it timed out (the worker tries
 * again), -1 when the worker must stop (cancelled, or any other error). */
static int tally(struct stats *st, int rc)
{
    if (rc == -ETIMEDOUT) {
        st->timeouts++;
        return 0;
    }
    if (rc == -ECANCELED) {
        st->cancelled++;
        return -1;
    }
    if (rc != 0) {
        st->other++;
        return -1;
    }
    st->ok++;
    if (tl_cancelled()) st->kept_after_cancel++;
    return 1;
}

/* ======================================================================
 * Semaphore (bounded): at most N holders, the count exact at the end
 * ====================================================================== */

struct warg {
    void *w;
    struct tl_test_rng r;
    int id;
};

/* The workers of one round: n tasks running fn(&args[i]), where args[i]
 * is {the round's world, a random stream of its own, id i}, with the
 * waiting line and the life count sized for them; then the chaos task. */
struct crowd {
    tl_task *tasks;
    struct warg *args;
    int n;
    struct line *line;
    struct life *life;
    struct chaos chaos;
    tl_task chaos_task;
};

static void crowd_spawn(struct crowd *c, void *w, int n, int max_waits,
                        struct line *line, struct life *life, tl_fn fn,
                        struct tl_test_rng *r)
{
    c->n = n;
    c->line = line;
    c->life = life;
    c->tasks = calloc((size_t)n, sizeof *c->tasks);
    c->args = calloc((size_t)n, sizeof *c->args);
    line_init(line, n, max_waits, c->tasks);
    life_init(life, n);
    for (int i = 0; i < n; i++) {
        c->args[i] = (struct warg){w, {tl_test_rng_next(r)}, i};
        c->tasks[i] = tl_test_spawn(fn, &c->args[i]);
    }
}

/* The chaos task: cancels a random worker every 0..max_ms ms. */
static void crowd_chaos(struct crowd *c, struct tl_test_rng *r, int max_ms)
{
    c->chaos = (struct chaos){c->tasks, c->n, {tl_test_rng_next(r)}, max_ms, 0};
    c->chaos_task = tl_test_spawn(chaos_fn, &c->chaos);
}

/* Wait for every worker, stop the chaos, join everything. */
static void crowd_join(struct crowd *c)
{
    life_join(c->life, c->tasks, c->n, c->chaos_task);
}

static void crowd_free(struct crowd *c)
{
    line_free(c->line);
    free(c->tasks);
    free(c->args);
}

struct sem_world {
    tl_sem s;
    int permits;
    int in_use, max_in_use;
    long acquired, released;
    struct stats st;
    struct line line;
    struct life life;
    int n;
};

#define SEM_ITERS 20

static int sem_worker(void *arg)
{
    struct warg *a = arg;
    struct sem_world *w = a->w;
    int iters = 1 + (int)rnd(&a->r, SEM_ITERS);
    for (int i = 0; i < iters; i++) {
        int rc;
        int blocks = tl_sem_value(&w->s) == 0 && !tl_cancelled();
        if (blocks) line_enter(&w->line, a->id);
        MAYBE_DEADLINE(&a->r, 3, rc, tl_sem_acquire(&w->s));
        line_leave(&w->line, a->id);
        int verdict = tally(&w->st, rc);
        if (verdict == 0) continue;
        if (verdict < 0) break;
        w->acquired++;
        w->in_use++;
        if (w->in_use > w->max_in_use) w->max_in_use = w->in_use;
        cr_expect_leq(w->in_use, w->permits);
        int s = tl_sleep(rnd_secs(&a->r, 2));
        w->in_use--;
        cr_expect_eq(tl_sem_release(&w->s), 0);
        w->released++;
        line_cancel_first(&w->line, &a->r);
        if (s < 0) break;
    }
    life_exit(&w->life);
    return 0;
}

struct round_arg {
    uint64_t seed;
    int round;
};

static int sem_round(void *arg)
{
    struct round_arg *ra = arg;
    struct tl_test_rng r = {ra->seed};
    struct sem_world w = {0};
    w.permits = 1 + (int)rnd(&r, 6);
    w.n = SCALE(600);
    cr_assert_eq(tl_sem_init_bounded(&w.s, w.permits), 0);
    struct crowd c;
    crowd_spawn(&c, &w, w.n, SEM_ITERS, &w.line, &w.life, sem_worker, &r);
    crowd_chaos(&c, &r, 2);
    crowd_join(&c);

    char params[64];
    snprintf(params, sizeof params, "permits=%d tasks=%d", w.permits, w.n);
    stats_print("sem", ra->round, params, &w.st, c.chaos.cancels);
    cr_expect_eq(w.st.other, 0);
    cr_expect_eq(w.in_use, 0);
    cr_expect_eq(w.acquired, w.released);
    cr_expect_leq(w.max_in_use, w.permits);
    cr_expect_eq(tl_sem_value(&w.s), w.permits, "value %d, want %d",
                 tl_sem_value(&w.s), w.permits);
    cr_expect_eq(tl_sem_destroy(&w.s), 0, "nobody left waiting");
    cr_expect_gt(w.st.ok, 0);
    crowd_free(&c);
    return (int)w.st.kept_after_cancel;
}

/* Over all rounds the "handed, then cancelled before it ran" case must
 * have happened, or the test is not testing what it claims. */
#define RUN_ROUNDS(name, salt, fn, rounds)                                  \
    do {                                                                    \
        uint64_t seed_ = base_seed(name, salt);                             \
        long kept_ = 0;                                                     \
        for (int i_ = 0; i_ < (rounds); i_++) {                             \
            struct round_arg ra_ = {seed_ + (uint64_t)i_, i_};              \
            int rc_ = run_virtual(fn, &ra_);                                \
            cr_assert_geq(rc_, 0);                                          \
            kept_ += rc_;                                                   \
        }                                                                   \
        if (!getenv("TULIP_SEED"))                                          \
            cr_expect_gt(kept_, 0, "no waiter was cancelled after being "  \
                         "satisfied: the chaos missed the case");           \
    } while (0)

Test(property, semaphore_counts_stay_exact, .timeout = 60)
{
    RUN_ROUNDS("semaphore", 0x53454d, sem_round, ROUNDS);
}

/* ======================================================================
 * Lock: mutual exclusion, no lost update
 * ====================================================================== */

struct lock_world {
    tl_lock l;
    int inside;
    long counter, sections;
    struct stats st;
    struct line line;
    struct life life;
    int n;
};

#define LOCK_ITERS 15

static int lock_worker(void *arg)
{
    struct warg *a = arg;
    struct lock_world *w = a->w;
    int iters = 1 + (int)rnd(&a->r, LOCK_ITERS);
    for (int i = 0; i < iters; i++) {
        int rc;
        if (tl_lock_locked(&w->l) && !tl_cancelled())
            line_enter(&w->line, a->id);
        MAYBE_DEADLINE(&a->r, 3, rc, tl_lock_acquire(&w->l));
        line_leave(&w->line, a->id);
        int verdict = tally(&w->st, rc);
        if (verdict == 0) continue;
        if (verdict < 0) break;
        cr_expect(tl_lock_owned(&w->l));
        cr_expect_eq(w->inside, 0, "two tasks inside the lock");
        w->inside++;
        long v = w->counter; /* read, suspend, write: a lost update shows */
        int s = tl_sleep(rnd_secs(&a->r, 1));
        w->counter = v + 1;
        w->sections++;
        w->inside--;
        cr_expect_eq(tl_lock_release(&w->l), 0);
        line_cancel_first(&w->line, &a->r);
        if (s < 0) break;
    }
    life_exit(&w->life);
    return 0;
}

static int lock_round(void *arg)
{
    struct round_arg *ra = arg;
    struct tl_test_rng r = {ra->seed};
    struct lock_world w = {0};
    w.n = SCALE(450);
    cr_assert_eq(tl_lock_init(&w.l), 0);
    struct crowd c;
    crowd_spawn(&c, &w, w.n, LOCK_ITERS, &w.line, &w.life, lock_worker, &r);
    crowd_chaos(&c, &r, 3);
    crowd_join(&c);
    char params[64];
    snprintf(params, sizeof params, "tasks=%d", w.n);
    stats_print("lock", ra->round, params, &w.st, c.chaos.cancels);
    cr_expect_eq(w.st.other, 0);
    cr_expect_eq(w.counter, w.sections, "lost updates");
    cr_expect_eq(w.sections, w.st.ok);
    cr_expect_eq(tl_lock_locked(&w.l), 0);
    cr_expect_eq(tl_lock_destroy(&w.l), 0);
    crowd_free(&c);
    return (int)w.st.kept_after_cancel;
}

Test(property, lock_excludes_and_loses_no_update, .timeout = 60)
{
    RUN_ROUNDS("lock", 0x4c4f434b, lock_round, ROUNDS);
}

/* ======================================================================
 * Event: a wait succeeds only after a set, and nobody is left waiting
 * ====================================================================== */

struct event_world {
    tl_event e;
    long sets; /* how many times it was set */
    int stop;
    struct stats st;
    struct line line;
    struct life life;
    int n;
};

#define EVENT_ITERS 10

static int event_worker(void *arg)
{
    struct warg *a = arg;
    struct event_world *w = a->w;
    int iters = 1 + (int)rnd(&a->r, EVENT_ITERS);
    for (int i = 0; i < iters; i++) {
        long before = w->sets;
        int was_set = tl_event_is_set(&w->e);
        int rc;
        if (!was_set && !tl_cancelled()) line_enter(&w->line, a->id);
        MAYBE_DEADLINE(&a->r, 4, rc, tl_event_wait(&w->e));
        line_leave(&w->line, a->id);
        int verdict = tally(&w->st, rc);
        if (verdict == 0) continue;
        if (verdict < 0) break;
        cr_expect(was_set || w->sets > before, "woken without a set");
        if (tl_sleep(rnd_secs(&a->r, 1)) < 0) break;
    }
    life_exit(&w->life);
    return 0;
}

static int event_setter(void *arg)
{
    struct warg *a = arg;
    struct event_world *w = a->w;
    while (!w->stop) {
        if (tl_sleep(rnd_secs(&a->r, 3)) < 0) return -ECANCELED;
        int n = tl_event_set(&w->e);
        cr_expect_geq(n, 0);
        w->sets++;
        for (int k = 0; k < 3; k++) line_cancel_first(&w->line, &a->r);
        if (rnd(&a->r, 4) != 0) cr_expect_eq(tl_event_clear(&w->e), 0);
    }
    return 0;
}

static int event_round(void *arg)
{
    struct round_arg *ra = arg;
    struct tl_test_rng r = {ra->seed};
    struct event_world w = {0};
    w.n = SCALE(450);
    cr_assert_eq(tl_event_init(&w.e), 0);
    struct crowd c;
    crowd_spawn(&c, &w, w.n, EVENT_ITERS, &w.line, &w.life, event_worker, &r);
    struct warg setter_arg = {&w, {tl_test_rng_next(&r)}, w.n};
    tl_task setter = tl_test_spawn(event_setter, &setter_arg);
    crowd_chaos(&c, &r, 3);
    crowd_join(&c);
    w.stop = 1;
    cr_expect_eq(tl_join(setter, NULL), 0);
    char params[64];
    snprintf(params, sizeof params, "tasks=%d sets=%ld", w.n, w.sets);
    stats_print("event", ra->round, params, &w.st, c.chaos.cancels);
    cr_expect_eq(w.st.other, 0);
    cr_expect_gt(w.st.ok, 0);
    cr_expect_eq(tl_event_destroy(&w.e), 0, "nobody left waiting");
    crowd_free(&c);
    return (int)w.st.kept_after_cancel;
}

Test(property, event_wakes_only_after_a_set, .timeout = 60)
{
    RUN_ROUNDS("event", 0x45564e54, event_round, ROUNDS);
}

/* ======================================================================
 * Condition: producers/consumers of a counter under the lock; every wait
 * returns with the lock held; produced == consumed + left
 * ====================================================================== */

struct cond_world {
    tl_cond c;
    long items, produced, consumed;
    int done;
    long not_held; /* a wait returned without the lock */
    struct stats st;
    struct line line;
    struct life life;
    int n;
};

#define COND_ITERS 12

static int cond_ready(void *arg)
{
    struct cond_world *w = arg;
    return w->items > 0 || w->done;
}

static int cond_worker(void *arg)
{
    struct warg *a = arg;
    struct cond_world *w = a->w;
    tl_lock *l = tl_cond_lock(&w->c);
    int producer = a->id % 3 == 0;
    int iters = 1 + (int)rnd(&a->r, COND_ITERS);
    for (int i = 0; i < iters; i++) {
        int rc = tl_lock_acquire(l);
        if (rc < 0) {
            w->st.cancelled++;
            break;
        }
        if (producer) {
            w->items++;
            w->produced++;
            cr_expect_geq(tl_cond_notify(&w->c, 1 + (int)rnd(&a->r, 2)), 0);
            cr_expect_eq(tl_lock_release(l), 0);
            line_cancel_first(&w->line, &a->r);
            if (tl_sleep(rnd_secs(&a->r, 2)) < 0) break;
            continue;
        }
        if (!cond_ready(w) && !tl_cancelled()) line_enter(&w->line, a->id);
        MAYBE_DEADLINE(&a->r, 4, rc, tl_cond_wait_for(&w->c, cond_ready, w));
        line_leave(&w->line, a->id);
        if (!tl_lock_owned(l)) w->not_held++;
        if (rc == 0 && w->items > 0) {
            w->items--;
            w->consumed++;
            w->st.ok++;
            if (tl_cancelled()) w->st.kept_after_cancel++;
        } else if (rc == -ETIMEDOUT) {
            w->st.timeouts++;
        } else if (rc == -ECANCELED) {
            w->st.cancelled++;
        } else if (rc != 0) {
            w->st.other++;
        }
        if (tl_lock_owned(l)) cr_expect_eq(tl_lock_release(l), 0);
        if (rc == -ECANCELED || w->done) break;
        if (tl_sleep(rnd_secs(&a->r, 1)) < 0) break;
    }
    life_exit(&w->life);
    return 0;
}

static int cond_round(void *arg)
{
    struct round_arg *ra = arg;
    struct tl_test_rng r = {ra->seed};
    struct cond_world w = {0};
    w.n = SCALE(450);
    cr_assert_eq(tl_cond_init(&w.c, NULL), 0);
    struct crowd c;
    crowd_spawn(&c, &w, w.n, COND_ITERS, &w.line, &w.life, cond_worker, &r);
    crowd_chaos(&c, &r, 3);
    /* Let producers run out, then release every consumer still waiting. */
    cr_expect_eq(tl_sleep(0.5), 0);
    tl_lock *l = tl_cond_lock(&w.c);
    cr_expect_eq(tl_lock_acquire(l), 0);
    w.done = 1;
    cr_expect_geq(tl_cond_notify_all(&w.c), 0);
    cr_expect_eq(tl_lock_release(l), 0);
    crowd_join(&c);
    char params[96];
    snprintf(params, sizeof params, "tasks=%d produced=%ld left=%ld", w.n,
             w.produced, w.items);
    stats_print("cond", ra->round, params, &w.st, c.chaos.cancels);
    cr_expect_eq(w.st.other, 0);
    cr_expect_eq(w.not_held, 0, "a wait returned without the lock");
    cr_expect_eq(w.produced, w.consumed + w.items, "items lost or doubled");
    cr_expect_gt(w.consumed, 0);
    cr_expect_eq(tl_lock_locked(l), 0);
    cr_expect_eq(tl_cond_destroy(&w.c), 0, "nobody left waiting");
    crowd_free(&c);
    return (int)w.st.kept_after_cancel;
}

Test(property, condition_keeps_the_lock_and_every_item, .timeout = 60)
{
    RUN_ROUNDS("condition", 0x434f4e44, cond_round, ROUNDS);
}

/* ======================================================================
 * Barrier: every tripped round hands out each index exactly once
 * ====================================================================== */

struct barrier_world {
    tl_barrier b;
    int parties;
    long index_count[8];
    long broken;
    struct stats st;
    struct line line;
    struct life life;
    int n;
};

#define BARRIER_ITERS 10

static int barrier_worker(void *arg)
{
    struct warg *a = arg;
    struct barrier_world *w = a->w;
    int iters = 1 + (int)rnd(&a->r, BARRIER_ITERS);
    for (int i = 0; i < iters; i++) {
        int rc;
        if (!tl_cancelled() && !tl_barrier_broken(&w->b) &&
            tl_barrier_n_waiting(&w->b) + 1 < w->parties)
            line_enter(&w->line, a->id);
        MAYBE_DEADLINE(&a->r, 4, rc, tl_barrier_wait(&w->b));
        line_leave(&w->line, a->id);
        if (rc == -ETIMEDOUT) {
            w->st.timeouts++;
            continue;
        }
        if (rc == -ECANCELED) {
            w->st.cancelled++;
            break;
        }
        if (rc == TL_EBROKEN) {
            w->broken++;
            break;
        }
        if (rc < 0 || rc >= w->parties) {
            w->st.other++;
            break;
        }
        w->st.ok++;
        if (tl_cancelled()) w->st.kept_after_cancel++;
        w->index_count[rc]++;
        if (rc == w->parties - 1)
            for (int k = 0; k < w->parties; k++)
                line_cancel_first(&w->line, &a->r);
        if (tl_sleep(rnd_secs(&a->r, 1)) < 0) break;
    }
    life_exit(&w->life);
    return 0;
}

static int barrier_round(void *arg)
{
    struct round_arg *ra = arg;
    struct tl_test_rng r = {ra->seed};
    struct barrier_world w = {0};
    w.parties = 2 + (int)rnd(&r, 4);
    w.n = SCALE(450);
    cr_assert_eq(tl_barrier_init(&w.b, w.parties), 0);
    struct crowd c;
    crowd_spawn(&c, &w, w.n, BARRIER_ITERS, &w.line, &w.life, barrier_worker,
                &r);
    crowd_chaos(&c, &r, 3);
    /* Long after the last arrival: whoever still waits is stuck in a round
     * that can no longer fill. */
    cr_expect_eq(tl_sleep(1.0), 0);
    int stuck = tl_barrier_n_waiting(&w.b);
    cr_expect_lt(stuck, w.parties);
    cr_expect_eq(tl_barrier_abort(&w.b), 0);
    crowd_join(&c);
    char params[64];
    snprintf(params, sizeof params, "parties=%d tasks=%d", w.parties, w.n);
    stats_print("barrier", ra->round, params, &w.st, c.chaos.cancels);
    cr_expect_eq(w.st.other, 0);
    long rounds = w.index_count[w.parties - 1];
    cr_expect_gt(rounds, 0);
    for (int i = 0; i < w.parties; i++)
        cr_expect_eq(w.index_count[i], rounds, "index %d given %ld times "
                     "in %ld rounds", i, w.index_count[i], rounds);
    cr_expect_eq(w.st.ok, rounds * w.parties);
    cr_expect_eq(w.broken, stuck, "the waiters at the abort");
    cr_expect_eq(tl_barrier_n_waiting(&w.b), 0);
    cr_expect_eq(tl_barrier_destroy(&w.b), 0);
    crowd_free(&c);
    return (int)w.st.kept_after_cancel;
}

Test(property, barrier_hands_out_each_index_once_per_round, .timeout = 60)
{
    RUN_ROUNDS("barrier", 0x42415252, barrier_round, ROUNDS);
}

/* ======================================================================
 * Queues: every item put is got exactly once, dropped, or still there
 * ====================================================================== */

enum { ABSENT = 0, QUEUED, TAKEN, DROPPED };

struct queue_world {
    tl_queue q;
    int kind;
    size_t maxsize;
    unsigned char *state; /* per item id */
    int ids_per_producer;
    long put_ok, put_failed, got, dropped, phantom, duplicate;
    long shutdown_seen;
    struct stats st;
    struct line line;
    struct life life;
    int n;
};

static void mark_taken(struct queue_world *w, void *item)
{
    uintptr_t id = (uintptr_t)item;
    if (w->state[id] == QUEUED) {
        w->state[id] = TAKEN;
    } else if (w->state[id] == ABSENT) {
        w->phantom++;
    } else {
        w->duplicate++;
    }
}

static void on_drop(void *item, void *arg)
{
    struct queue_world *w = arg;
    uintptr_t id = (uintptr_t)item;
    if (w->state[id] == QUEUED)
        w->state[id] = DROPPED;
    else
        w->phantom++;
    w->dropped++;
}

static int queue_worker(void *arg)
{
    struct warg *a = arg;
    struct queue_world *w = a->w;
    int producer = a->id % 2 == 0;
    int iters = 1 + (int)rnd(&a->r, (uint32_t)w->ids_per_producer);
    for (int i = 0; i < iters; i++) {
        int rc;
        int blocks = !tl_cancelled() && !tl_queue_is_shutdown(&w->q) &&
                     (producer ? tl_queue_full(&w->q) : tl_queue_empty(&w->q));
        if (blocks) line_enter(&w->line, a->id);
        if (producer) {
            uintptr_t id = (uintptr_t)a->id * (uintptr_t)w->ids_per_producer +
                           (uintptr_t)i + 1;
            /* QUEUED before the put: a getter handed the item runs only
             * after we suspend; a failed put turns it back to ABSENT. */
            w->state[id] = QUEUED;
            if (w->kind == TL_QUEUE_PRIORITY)
                MAYBE_DEADLINE(&a->r, 3, rc,
                               tl_queue_put_prio(&w->q, (void *)id,
                                                 (int64_t)rnd(&a->r, 10)));
            else
                MAYBE_DEADLINE(&a->r, 3, rc, tl_queue_put(&w->q, (void *)id));
            line_leave(&w->line, a->id);
            if (rc == 0) {
                w->put_ok++;
                w->st.ok++;
                if (tl_cancelled()) w->st.kept_after_cancel++;
                line_cancel_first(&w->line, &a->r); /* a getter, likely */
            } else {
                if (w->state[id] != QUEUED) w->phantom++;
                w->state[id] = ABSENT;
                w->put_failed++;
            }
        } else {
            void *item = NULL;
            MAYBE_DEADLINE(&a->r, 3, rc, tl_queue_get(&w->q, &item));
            line_leave(&w->line, a->id);
            if (rc == 0) {
                mark_taken(w, item);
                w->got++;
                w->st.ok++;
                if (tl_cancelled()) w->st.kept_after_cancel++;
                cr_expect_eq(tl_queue_task_done(&w->q), 0);
                line_cancel_first(&w->line, &a->r); /* a putter, likely */
            }
        }
        if (rc == -ETIMEDOUT) {
            w->st.timeouts++;
            continue;
        }
        if (rc == -ECANCELED) {
            w->st.cancelled++;
            break;
        }
        if (rc == TL_EQSHUTDOWN) {
            w->shutdown_seen++;
            break;
        }
        if (rc != 0) {
            w->st.other++;
            break;
        }
        if (tl_sleep(rnd_secs(&a->r, 1)) < 0) break;
    }
    life_exit(&w->life);
    return 0;
}

static int queue_round(void *arg)
{
    struct round_arg *ra = arg;
    struct tl_test_rng r = {ra->seed};
    struct queue_world w = {0};
    w.kind = ra->round % 3; /* FIFO, LIFO, PRIORITY in turn */
    w.maxsize = rnd(&r, 3) == 0 ? 0 : 1 + rnd(&r, 5);
    int immediate = (int)rnd(&r, 2);
    w.n = SCALE(450);
    w.ids_per_producer = 12;
    size_t nids = (size_t)(w.n + 1) * (size_t)w.ids_per_producer + 1;
    w.state = calloc(nids, 1);
    tl_queue_opts o = {.kind = w.kind, .maxsize = w.maxsize,
                       .drop = on_drop, .drop_arg = &w};
    cr_assert_eq(tl_queue_init_ex(&w.q, &o), 0);
    struct crowd c;
    crowd_spawn(&c, &w, w.n, w.ids_per_producer, &w.line, &w.life,
                queue_worker, &r);
    crowd_chaos(&c, &r, 3);
    /* Shut down in the middle of the traffic. */
    cr_expect_eq(tl_sleep(0.002 + rnd_secs(&r, 12)), 0);
    int dropped = tl_queue_shutdown(&w.q, immediate);
    cr_expect_geq(dropped, 0);
    crowd_join(&c);
    /* Whatever the consumers left: drain it and finish it. */
    long drained = 0;
    void *item;
    while (tl_queue_try_get(&w.q, &item) == 0) {
        mark_taken(&w, item);
        cr_expect_eq(tl_queue_task_done(&w.q), 0);
        drained++;
    }
    cr_expect_eq(tl_queue_size(&w.q), 0);
    cr_expect_eq(tl_queue_unfinished(&w.q), 0, "task_done count");
    if (tl_queue_unfinished(&w.q) == 0) /* else it would wait forever */
        cr_expect_eq(tl_queue_join(&w.q), 0);

    static const char *kinds[] = {"fifo", "lifo", "priority"};
    char params[160];
    snprintf(params, sizeof params, "%s maxsize=%zu %s shutdown, put=%ld "
             "dropped=%ld drained=%ld saw-shutdown=%ld", kinds[w.kind],
             w.maxsize, immediate ? "immediate" : "graceful", w.put_ok,
             w.dropped, drained, w.shutdown_seen);
    stats_print("queue", ra->round, params, &w.st, c.chaos.cancels);
    cr_expect_eq(w.st.other, 0);
    cr_expect_eq(w.phantom, 0, "an item that was never put came out");
    cr_expect_eq(w.duplicate, 0, "an item came out twice");
    cr_expect_eq(w.dropped, dropped);
    if (!immediate) cr_expect_eq(w.dropped, 0);
    cr_expect_eq(w.put_ok, w.got + drained + w.dropped, "items lost");
    long queued = 0;
    for (size_t i = 0; i < nids; i++)
        if (w.state[i] == QUEUED) queued++;
    cr_expect_eq(queued, 0, "items neither taken nor dropped");
    cr_expect_gt(w.got, 0);
    cr_expect_eq(tl_queue_destroy(&w.q), 0);
    free(w.state);
    crowd_free(&c);
    return (int)w.st.kept_after_cancel;
}

Test(property, queues_lose_and_duplicate_nothing, .timeout = 60)
{
    RUN_ROUNDS("queue", 0x51554555, queue_round, 3 * ROUNDS);
}
