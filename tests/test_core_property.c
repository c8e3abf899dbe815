/* Property test of the core cancellation machinery: random programs of
 * tasks, scopes, groups and gathers on the virtual clock, checked against
 * an independent model of DESIGN.md's rules (invariants 2-6).
 *
 * A program is a tree of scripts generated up front from one seed: steps
 * are sleep(d), yield, a timeout / move-on / shield / cancel scope around
 * a sub-script (deadlines drawn from a small range, so inner and outer
 * ones expire before, at or after each other), a task group (children
 * that fail after a delay, children that ignore -ECANCELED a few times,
 * children that spawn siblings while the group waits, and a body), a
 * gather, a plain spawn + join, tl_cancel of a random live task (every
 * task records tl_current() in a shared table when it starts),
 * tl_scope_cancel of an enclosing scope or of another task's open scope,
 * tl_scope_reschedule of an enclosing deadline, tl_group_cancel, and
 * fail(code).
 *
 * The model is lazy where the runtime is eager: it never propagates a
 * cancel, it asks at each check "is this task cancelled here?" by walking
 * the test's own scope stacks — a scope is cancelled when the test
 * cancelled it, its deadline is <= now, or (groups) a child failed; a
 * shield stops the walk; the bottom is the task's own flag (tl_cancel), or
 * for a child the same question asked of its parent at the group, gather
 * or join it belongs to. The one asynchronous edge — a joiner forwards
 * its cancel to the joined task only when it next runs — is a "maybe"
 * that the first observation settles (and that must be settled before the
 * clock moves on).
 *
 * Checked at every step and after every suspending call: tl_cancelled()
 * and tl_scope_cancel_called() agree with the model (level-triggered
 * cancellation, shields); yield/sleep/join results; a sleep that returns
 * 0 woke exactly at its deadline and slept through no cancel, one cut
 * short woke at the very moment the model says the cancel took effect;
 * scope verdicts (-ETIMEDOUT only for a timeout scope whose own cancel is
 * the only one, an outer cancel wins); group verdicts and error lists
 * (codes and task names, finish order, never a child the group
 * cancelled) and status pointers; gather statuses and result (the first
 * real error, else -ECANCELED if a child unwound from a cancel, else 0;
 * a gatherer cancelled at the call runs nothing); joins (0 with the
 * kid's status once waited for, -ECANCELED and nothing consumed when the
 * joiner was cancelled at the call); every
 * task returns and the program's main returns its status to tl_run (or
 * to the driver that runs programs 250 to a loop); the output has no
 * "tulip:" line except the debug build's "a callee replaced -ECANCELED"
 * warnings the model predicts; no leaks (LeakSanitizer runs in the child
 * that ran the programs) and no UBSan report.
 *
 * Deterministic: TULIP_SEED=<n> changes the base seed (printed);
 * TULIP_PROGRAM=<program seed> runs one program and prints its script and
 * trace. A failing program is printed with its seed, script and trace,
 * then shrunk (steps switched off one by one while it still fails).
 */
#include "helpers.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define DEFAULT_SEED 20261127u
#define TICK 64.0 /* time unit: 1/64 s, exact in ns and in double */

/* ---- PRNG ------------------------------------------------------------------ */

static int rnd(struct tl_test_rng *r, int n) { return (int)(tl_test_rng_next(r) % (uint64_t)n); }

/* ---- programs -------------------------------------------------------------- */

enum op {
    OP_SLEEP,
    OP_YIELD,
    OP_SCOPE,       /* kind, a = deadline ticks (-1: none), body */
    OP_SCOPE_CANCEL, /* a = which enclosing scope */
    OP_GROUP,       /* kids, body */
    OP_GATHER,      /* kids */
    OP_SPAWN_JOIN,  /* kids[0] */
    OP_CANCEL,      /* a = which live task */
    OP_FAIL,        /* a = index into fail_codes */
    OP_SIBLING,     /* body: spawned into the group the task belongs to */
    OP_GROUP_CANCEL, /* a = which group: an enclosing one, or my own */
    OP_RESCHEDULE,  /* a = which deadline scope, kind = new deadline + 1
                       (0: none) */
};
enum { K_TIMEOUT = 1, K_MOVE_ON, K_SHIELD, K_CANCEL, K_GROUP, K_GATHER };

static const char *const kind_name[] = {"?", "timeout", "move_on", "shield",
                                        "cancel_scope", "group", "gather"};
static const int fail_codes[] = {-EIO, -ENOENT, -EPIPE, -ECONNRESET};

#define MAX_STEPS 96
#define MAX_SCRIPTS 64
#define MAX_LEN 8
#define MAX_KIDS 64

struct step {
    uint8_t op, kind, off;
    int a;
    int body;        /* script id */
    int kids, nkids; /* range of prog.kids (script ids) */
};

struct script {
    int steps[MAX_LEN], n;
    int stubborn; /* as a task's root: ignore -ECANCELED this many times */
};

struct prog {
    uint64_t seed;
    struct step steps[MAX_STEPS];
    int nsteps;
    struct script scripts[MAX_SCRIPTS];
    int nscripts;
    int kids[MAX_KIDS];
    int nkids;
};

/* Generator weights per test. */
struct mix {
    int sleep, yield, scope, scope_cancel, cancel, fail, group, gather,
        join, sibling, group_cancel, reschedule;
    int max_depth, budget;
};

struct gen {
    struct tl_test_rng r;
    struct prog *p;
    const struct mix *m;
    int budget; /* steps left */
};

static int gen_script(struct gen *g, int depth, int group_child);

static int new_script(struct gen *g)
{
    struct prog *p = g->p;
    struct script *s = &p->scripts[p->nscripts];
    memset(s, 0, sizeof *s);
    return p->nscripts++;
}

static int room(const struct gen *g, int scripts, int kids)
{
    return g->p->nsteps < MAX_STEPS - 1 &&
           g->p->nscripts + scripts <= MAX_SCRIPTS &&
           g->p->nkids + kids <= MAX_KIDS;
}

/* A child task's root script: sometimes "sleep, then fail". */
static int gen_child(struct gen *g, int depth, int group_child)
{
    int sid;
    if (rnd(&g->r, 3) == 0 && room(g, 1, 0) && g->p->nsteps < MAX_STEPS - 2) {
        sid = new_script(g);
        struct script *s = &g->p->scripts[sid];
        struct step *a = &g->p->steps[g->p->nsteps];
        *a = (struct step){.op = OP_SLEEP, .a = rnd(&g->r, 7)};
        s->steps[s->n++] = g->p->nsteps++;
        struct step *b = &g->p->steps[g->p->nsteps];
        *b = (struct step){.op = OP_FAIL, .a = rnd(&g->r, 4)};
        s->steps[s->n++] = g->p->nsteps++;
        g->budget -= 2;
    } else {
        sid = gen_script(g, depth, group_child);
    }
    if (rnd(&g->r, 4) == 0) g->p->scripts[sid].stubborn = 1 + rnd(&g->r, 3);
    return sid;
}

static int gen_kids(struct gen *g, int n, int depth, int group_child,
                    struct step *st)
{
    int ids[8];
    int k = 0;
    for (int i = 0; i < n && i < 8 && g->budget > 0 && room(g, 1, n); i++)
        ids[k++] = gen_child(g, depth, group_child);
    st->kids = g->p->nkids;
    st->nkids = k;
    for (int i = 0; i < k; i++) g->p->kids[g->p->nkids++] = ids[i];
    return k;
}

static int gen_script(struct gen *g, int depth, int group_child)
{
    struct prog *p = g->p;
    int sid = new_script(g);
    int n = depth == 0 ? 3 + rnd(&g->r, MAX_LEN - 2) : 1 + rnd(&g->r, 4);
    const struct mix *m = g->m;
    for (int i = 0; i < n && g->budget > 0 && room(g, 0, 0); i++) {
        int w[12] = {m->sleep, m->yield, depth < m->max_depth ? m->scope : 0,
                     m->scope_cancel, m->cancel, m->fail,
                     depth < m->max_depth ? m->group : 0,
                     depth < m->max_depth ? m->gather : 0,
                     depth < m->max_depth ? m->join : 0,
                     group_child && depth < m->max_depth ? m->sibling : 0,
                     m->group_cancel, m->reschedule};
        static const uint8_t ops[12] = {OP_SLEEP,  OP_YIELD,  OP_SCOPE,
                                        OP_SCOPE_CANCEL, OP_CANCEL, OP_FAIL,
                                        OP_GROUP,  OP_GATHER, OP_SPAWN_JOIN,
                                        OP_SIBLING, OP_GROUP_CANCEL,
                                        OP_RESCHEDULE};
        int total = 0;
        for (int j = 0; j < 12; j++) total += w[j];
        int x = rnd(&g->r, total), op = 0;
        while (x >= w[op]) x -= w[op++];
        int idx = p->nsteps++;
        g->budget--;
        struct step st = {.op = ops[op]};
        switch (st.op) {
        case OP_SLEEP: st.a = rnd(&g->r, 9); break;
        case OP_SCOPE:
            st.kind = (uint8_t)(1 + rnd(&g->r, 4));
            st.a = (st.kind == K_TIMEOUT || st.kind == K_MOVE_ON)
                       ? (rnd(&g->r, 8) == 0 ? -1 : rnd(&g->r, 13))
                       : -1;
            if (!room(g, 1, 0)) { st.op = OP_YIELD; break; }
            st.body = gen_script(g, depth + 1, group_child);
            break;
        case OP_SCOPE_CANCEL: st.a = rnd(&g->r, 1000); break;
        case OP_CANCEL: st.a = rnd(&g->r, 1000); break;
        case OP_GROUP_CANCEL: st.a = rnd(&g->r, 1000); break;
        case OP_RESCHEDULE:
            st.a = rnd(&g->r, 1000);
            st.kind = (uint8_t)(rnd(&g->r, 8) == 0 ? 0 : 1 + rnd(&g->r, 13));
            break;
        case OP_FAIL: st.a = rnd(&g->r, 4); break;
        case OP_GROUP:
            if (!room(g, 2, 4)) { st.op = OP_YIELD; break; }
            gen_kids(g, rnd(&g->r, 4), depth + 1, 1, &st);
            st.body = gen_script(g, depth + 1, group_child);
            break;
        case OP_GATHER:
            if (!room(g, 1, 3) || gen_kids(g, 1 + rnd(&g->r, 3), depth + 1,
                                           0, &st) == 0)
                st.op = OP_YIELD;
            break;
        case OP_SPAWN_JOIN:
            st.a = rnd(&g->r, 4) == 0; /* cancel it before it first runs */
            if (!room(g, 1, 1) || gen_kids(g, 1, depth + 1, 0, &st) == 0)
                st.op = OP_YIELD;
            break;
        case OP_SIBLING:
            if (!room(g, 1, 0)) { st.op = OP_YIELD; break; }
            st.body = gen_child(g, depth + 1, 1);
            break;
        }
        p->steps[idx] = st;
        struct script *s = &p->scripts[sid];
        s->steps[s->n++] = idx;
    }
    return sid;
}

static void gen_prog(struct prog *p, uint64_t seed, const struct mix *m)
{
    memset(p, 0, sizeof *p);
    p->seed = seed;
    struct gen g = {.r = {seed}, .p = p, .m = m, .budget = m->budget};
    gen_script(&g, 0, 0); /* script 0: main */
}

/* ---- printing ------------------------------------------------------------- */

struct buf {
    char *s;
    size_t n, cap;
};

static void bprintf(struct buf *b, const char *fmt, ...) TL_PRINTF(2, 3);
static void bprintf(struct buf *b, const char *fmt, ...)
{
    if (b->n + 1 >= b->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k > 0) b->n += (size_t)k;
    if (b->n >= b->cap) b->n = b->cap - 1;
}

static void print_script(struct buf *b, const struct prog *p, int sid,
                         int ind);

static void print_kid(struct buf *b, const struct prog *p, int sid, int ind,
                      const char *what)
{
    bprintf(b, "%*s%s script%d%s", ind, "", what, sid,
            p->scripts[sid].stubborn ? "" : ":\n");
    if (p->scripts[sid].stubborn)
        bprintf(b, " (ignores -ECANCELED %d times):\n",
                p->scripts[sid].stubborn);
    print_script(b, p, sid, ind + 2);
}

static void print_script(struct buf *b, const struct prog *p, int sid,
                         int ind)
{
    const struct script *s = &p->scripts[sid];
    for (int i = 0; i < s->n; i++) {
        const struct step *st = &p->steps[s->steps[i]];
        if (st->off) continue;
        bprintf(b, "%*s[%d] ", ind, "", s->steps[i]);
        switch (st->op) {
        case OP_SLEEP: bprintf(b, "sleep(%d/64)\n", st->a); break;
        case OP_YIELD: bprintf(b, "yield\n"); break;
        case OP_SCOPE:
            if (st->a >= 0)
                bprintf(b, "%s(%d/64) {\n", kind_name[st->kind], st->a);
            else
                bprintf(b, "%s {\n", kind_name[st->kind]);
            print_script(b, p, st->body, ind + 4);
            bprintf(b, "%*s}\n", ind, "");
            break;
        case OP_SCOPE_CANCEL:
            bprintf(b, "tl_scope_cancel(%s, pick %d)\n",
                    st->a < 700 ? "enclosing scope" : "any task's scope",
                    st->a);
            break;
        case OP_CANCEL: bprintf(b, "tl_cancel(live task, pick %d)\n", st->a); break;
        case OP_RESCHEDULE:
            if (st->kind)
                bprintf(b, "tl_scope_reschedule(deadline scope, pick %d, "
                        "%d/64)\n", st->a, st->kind - 1);
            else
                bprintf(b, "tl_scope_reschedule(deadline scope, pick %d, "
                        "INFINITY)\n", st->a);
            break;
        case OP_GROUP_CANCEL:
            bprintf(b, "tl_group_cancel(enclosing or own group, pick %d)\n",
                    st->a);
            break;
        case OP_FAIL: bprintf(b, "return -%s\n", tl_errname(fail_codes[st->a])); break;
        case OP_GROUP:
            bprintf(b, "group {\n");
            for (int k = 0; k < st->nkids; k++)
                print_kid(b, p, p->kids[st->kids + k], ind + 4, "child");
            bprintf(b, "%*sbody:\n", ind + 4, "");
            print_script(b, p, st->body, ind + 6);
            bprintf(b, "%*s}\n", ind, "");
            break;
        case OP_GATHER:
            bprintf(b, "gather {\n");
            for (int k = 0; k < st->nkids; k++)
                print_kid(b, p, p->kids[st->kids + k], ind + 4, "call");
            bprintf(b, "%*s}\n", ind, "");
            break;
        case OP_SPAWN_JOIN:
            bprintf(b, st->a ? "spawn+cancel+join {\n" : "spawn+join {\n");
            print_kid(b, p, p->kids[st->kids], ind + 4, "task");
            bprintf(b, "%*s}\n", ind, "");
            break;
        case OP_SIBLING:
            bprintf(b, "spawn sibling into my group {\n");
            print_kid(b, p, st->body, ind + 4, "task");
            bprintf(b, "%*s}\n", ind, "");
            break;
        }
    }
}

/* ---- the model ---------------------------------------------------------- */

enum { NO = 0, YES = 1, MAYBE = 2 };

struct mtask;

struct ent { /* one open scope / group / gather of the test's own stack */
    struct ent *parent;
    int kind;
    int64_t deadline; /* ticks; INT64_MAX: none */
    int test_cancelled;
    int failed; /* group: a real failure cancelled it */
    int64_t tc_time, failed_time;
    tl_scope s;
};

struct mgroup { /* model of one task group */
    tl_group g;
    struct ent ent;
    struct mtask *owner;
    int nerr;
    int codes[16];
    char names[16][32];
};

#define mgroup_of(e)                                            \
    ((struct mgroup *)((char *)(e)-offsetof(struct mgroup, ent)))

struct mtask {
    int id;
    char name[32];
    tl_task h;
    int script;
    int started, done, ret, status;
    int own_cancel;        /* tl_cancel'ed (or a forward settled) */
    int64_t own_time;      /* since when */
    int64_t pend_since;    /* a pending forward: since when */
    struct mtask *ctx_owner; /* parent: group/gather owner or joiner */
    struct ent *ctx_ent;   /* where in the parent's stack */
    int ctx_join;          /* parent is a joiner: forwarding is late */
    struct mgroup *mg;     /* the group this task is a child of */
    struct ent *top;
    int stubborn_left;
};

struct run {
    const struct prog *p;
    int fails;
    struct buf msg, log;
    struct mtask **tasks;
    int ntasks, cap;
    int diag_min, diag_max; /* predicted debug warnings */
    int quiet_log;
};

static struct run R;

static int64_t now_ticks(void)
{
    double t = tl_now() * TICK;
    return (int64_t)t;
}

#define CHECK(me, cond, ...)                                                  \
    do {                                                                      \
        if (!(cond)) check_fail((me), __LINE__, __VA_ARGS__);                 \
    } while (0)

static void check_fail(const struct mtask *me, int line, const char *fmt, ...)
    TL_PRINTF(3, 4);
static void check_fail(const struct mtask *me, int line, const char *fmt, ...)
{
    if (R.fails++ >= 4) return;
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    bprintf(&R.msg, "  line %d, t=%g/64, task %s: %s\n", line,
            tl_current().gen ? tl_now() * TICK : -1.0, me ? me->name : "?",
            text);
    bprintf(&R.log, "      ^^^ FAILED: %s\n", text);
}

#define LOG(me, ...)                                                          \
    do {                                                                      \
        if (!R.quiet_log) log_line((me), __VA_ARGS__);                        \
    } while (0)
static void log_line(const struct mtask *me, const char *fmt, ...)
    TL_PRINTF(2, 3);
static void log_line(const struct mtask *me, const char *fmt, ...)
{
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    bprintf(&R.log, "  t=%2g/64 %-5s %s\n", tl_now() * TICK, me->name, text);
}

static const char *rcname(int rc)
{
    static char b[4][24];
    static int i;
    i = (i + 1) & 3;
    if (rc >= 0)
        snprintf(b[i], sizeof b[i], "%d", rc);
    else
        snprintf(b[i], sizeof b[i], "-%s", tl_errname(rc));
    return b[i];
}

static struct mtask *new_mtask(int script, struct mtask *ctx_owner,
                               struct ent *ctx_ent, int ctx_join,
                               struct mgroup *mg)
{
    if (R.ntasks == R.cap) {
        R.cap = R.cap ? R.cap * 2 : 16;
        R.tasks = realloc(R.tasks, (size_t)R.cap * sizeof *R.tasks);
        if (!R.tasks) abort();
    }
    struct mtask *t = calloc(1, sizeof *t);
    if (!t) abort();
    t->id = R.ntasks;
    snprintf(t->name, sizeof t->name, t->id ? "t%d" : "main", t->id);
    t->script = script;
    t->ctx_owner = ctx_owner;
    t->ctx_ent = ctx_ent;
    t->ctx_join = ctx_join;
    t->mg = mg;
    t->status = 0x7777;
    R.tasks[R.ntasks++] = t;
    return t;
}

static int ent_cancelled(const struct ent *e, int64_t now)
{
    return e->test_cancelled || e->failed || e->deadline <= now;
}

/* Since when e is cancelled (INT64_MAX: it is not). */
static int64_t ent_since(const struct ent *e, int64_t now)
{
    int64_t s = INT64_MAX;
    if (e->test_cancelled && e->tc_time < s) s = e->tc_time;
    if (e->failed && e->failed_time < s) s = e->failed_time;
    if (e->deadline <= now && e->deadline < s) s = e->deadline;
    return s;
}

static int task_flag(const struct mtask *t, struct mtask **pend,
                     int64_t *since);

/* Is `owner` cancelled as seen from inside e (e NULL: the bottom)? YES,
 * NO, or MAYBE (a joiner's forward that may not have arrived: *pend is
 * that joined task). *since: the earliest moment the answer became YES
 * (or MAYBE), by the lazy rules. */
static int cancelled_from(const struct mtask *owner, const struct ent *e,
                          struct mtask **pend, int64_t *since)
{
    int64_t now = now_ticks(), s = INT64_MAX;
    for (; e; e = e->parent) {
        int64_t t = ent_since(e, now);
        if (t < s) s = t;
        if (e->kind == K_SHIELD) {
            *since = s;
            return s == INT64_MAX ? NO : YES;
        }
    }
    int64_t bt = INT64_MAX;
    int b = task_flag(owner, pend, &bt);
    *since = bt < s ? bt : s;
    if (s != INT64_MAX) return YES;
    return b;
}

static int task_flag(const struct mtask *t, struct mtask **pend,
                     int64_t *since)
{
    int st = NO;
    int64_t s = INT64_MAX;
    if (t->own_cancel) st = YES, s = t->own_time;
    if (t->ctx_owner) {
        int64_t cs = INT64_MAX;
        int c = cancelled_from(t->ctx_owner, t->ctx_ent, pend, &cs);
        if (c != NO && cs < s) s = cs;
        if (st == NO && c == YES && t->ctx_join) {
            *pend = (struct mtask *)t; /* the joiner forwards when it runs */
            ((struct mtask *)t)->pend_since = cs;
            st = MAYBE;
        } else if (st == NO) {
            st = c;
        }
    }
    *since = s;
    return st;
}

static int model_since(struct mtask *me, struct mtask **pend, int64_t *since)
{
    return cancelled_from(me, me->top, pend, since);
}

static int model(struct mtask *me, struct mtask **pend)
{
    int64_t since;
    return cancelled_from(me, me->top, pend, &since);
}

/* Settle a "maybe" with what the runtime did: a forward that arrived
 * arrived when the joiner was cancelled (the clock cannot move first). */
static void settle(struct mtask *pend, int observed_cancelled)
{
    if (pend && observed_cancelled && !pend->own_cancel) {
        pend->own_cancel = 1;
        pend->own_time = pend->pend_since;
    }
}

/* tl_cancelled() and every open scope's tl_scope_cancel_called() against
 * the model; the clock is on the 1/64 s grid. */
static void check_state(struct mtask *me, const char *where)
{
    double t = tl_now() * TICK;
    CHECK(me, t == floor(t), "%s: tl_now()=%.9f is off the 1/64 s grid",
          where, tl_now());
    struct mtask *pend = NULL;
    int m = model(me, &pend);
    int r = tl_cancelled();
    if (m == MAYBE) {
        settle(pend, r);
        CHECK(me, r || now_ticks() <= pend->pend_since, "%s: the joiner of "
              "%s was cancelled at %" PRId64 "/64 and has not forwarded it "
              "yet (the clock moved on)", where, pend->name,
              pend->pend_since);
    } else
        CHECK(me, r == m, "%s: tl_cancelled()=%d, model says %d", where, r, m);
    int64_t now = now_ticks();
    for (struct ent *e = me->top; e; e = e->parent)
        if (e->kind <= K_CANCEL)
            CHECK(me, tl_scope_cancel_called(e->s) == ent_cancelled(e, now),
                  "%s: tl_scope_cancel_called(%s scope)=%d, model says %d",
                  where, kind_name[e->kind], tl_scope_cancel_called(e->s),
                  ent_cancelled(e, now));
}

/* ---- the interpreter ----------------------------------------------------- */

static int run_script(struct mtask *me, int sid);
static int task_fn(void *arg);

static struct ent *push(struct mtask *me, struct ent *e)
{
    e->parent = me->top;
    me->top = e;
    return e;
}

static void pop(struct mtask *me, struct ent *e)
{
    CHECK(me, me->top == e, "model scope stack out of order");
    me->top = e->parent;
}

/* A task leaves: classify its result for its group (the model's version
 * of "a real failure": negative, and not -ECANCELED of a cancelled task). */
static void task_leaves(struct mtask *me, int rc)
{
    CHECK(me, me->top == NULL, "returns with model scopes open");
    if (me->mg && rc < 0) {
        struct mtask *pend = NULL;
        int64_t since;
        int c = task_flag(me, &pend, &since);
        if (c == MAYBE) { /* no scopes open: tl_cancelled() is the flag */
            settle(pend, tl_cancelled());
            c = tl_cancelled() ? YES : NO;
        }
        if (!(rc == -ECANCELED && c != NO)) {
            struct mgroup *mg = me->mg;
            if (mg->nerr < 16) {
                mg->codes[mg->nerr] = rc;
                snprintf(mg->names[mg->nerr], 32, "%s", me->name);
            }
            mg->nerr++;
            if (!mg->ent.failed) mg->ent.failed_time = now_ticks();
            mg->ent.failed = 1;
        }
    }
    me->ret = rc;
    me->done = 1;
    LOG(me, "returns %s", rcname(rc));
}

static int task_fn(void *arg)
{
    struct mtask *me = arg;
    me->h = tl_current();
    me->started = 1;
    me->stubborn_left = R.p->scripts[me->script].stubborn;
    LOG(me, "starts script%d", me->script);
    check_state(me, "task start");
    int rc = run_script(me, me->script);
    task_leaves(me, rc);
    return rc;
}

static int op_sleep(struct mtask *me, int d)
{
    int64_t t0 = now_ticks(), since = INT64_MAX;
    struct mtask *pend = NULL;
    int pre = model(me, &pend);
    int rc = tl_sleep(d / TICK);
    int64_t now = now_ticks();
    pend = NULL;
    int post = model_since(me, &pend, &since);
    LOG(me, "sleep(%d/64) from %" PRId64 " -> %s", d, t0, rcname(rc));
    CHECK(me, rc == 0 || rc == -ECANCELED, "sleep returned %s", rcname(rc));
    if (pre == YES)
        CHECK(me, rc == -ECANCELED, "sleep while cancelled returned %s",
              rcname(rc));
    if (rc == 0) {
        CHECK(me, now == t0 + d, "sleep(%d/64) from %" PRId64
              "/64 returned 0 at %" PRId64 "/64", d, t0, now);
        /* Completed wins only at the wake-up instant itself. */
        if (post != NO)
            CHECK(me, since >= now, "sleep(%d/64) from %" PRId64 "/64 "
                  "slept through a cancel at %" PRId64 "/64", d, t0, since);
    } else if (rc == -ECANCELED) {
        if (post == MAYBE) settle(pend, 1);
        else CHECK(me, post == YES, "sleep returned -ECANCELED, model "
                   "says not cancelled");
        CHECK(me, now <= t0 + d, "cancelled sleep woke late");
        if (pre == NO)
            CHECK(me, now == since, "sleep from %" PRId64 "/64 cancelled at "
                  "%" PRId64 "/64 woke at %" PRId64 "/64", t0, since, now);
    }
    return rc;
}

static int op_yield(struct mtask *me)
{
    struct mtask *pend = NULL;
    int pre = model(me, &pend);
    int64_t t0 = now_ticks();
    int rc = tl_yield();
    LOG(me, "yield -> %s", rcname(rc));
    if (pre == MAYBE)
        settle(pend, rc == -ECANCELED);
    else
        CHECK(me, rc == (pre == YES ? -ECANCELED : 0),
              "yield returned %s, model says cancelled=%d", rcname(rc), pre);
    CHECK(me, now_ticks() == t0, "yield moved the clock");
    return rc;
}

static int op_scope(struct mtask *me, const struct step *st)
{
    struct ent e = {.kind = st->kind, .deadline = INT64_MAX};
    double secs = st->a >= 0 ? st->a / TICK : INFINITY;
    int64_t now = now_ticks();
    switch (st->kind) {
    case K_TIMEOUT: e.s = tl_timeout_enter(secs); break;
    case K_MOVE_ON: e.s = tl_move_on_enter(secs); break;
    case K_SHIELD: e.s = tl_shield_enter(); break;
    default: e.s = tl_cancel_scope_enter(); break;
    }
    CHECK(me, e.s.rec != NULL, "scope enter failed");
    if (!e.s.rec) return -ENOMEM;
    if (st->a >= 0 && st->kind <= K_MOVE_ON) e.deadline = now + st->a;
    push(me, &e);
    LOG(me, "enter %s(deadline %" PRId64 ")", kind_name[st->kind],
        e.deadline == INT64_MAX ? -1 : e.deadline);
    check_state(me, "scope entered");
    int rc = run_script(me, st->body);
    check_state(me, "scope body done");
    int c = ent_cancelled(&e, now_ticks());
    pop(me, &e);
    struct mtask *pend = NULL;
    int outer = model(me, &pend);
    int v = tl_scope_exit(e.s, rc);
    LOG(me, "exit %s(body %s) -> %s", kind_name[st->kind], rcname(rc),
        rcname(v));
    int absorbed = st->kind == K_TIMEOUT ? -ETIMEDOUT : 0;
    if (c && rc == -ECANCELED) {
        if (outer == MAYBE) {
            settle(pend, v == -ECANCELED);
            CHECK(me, v == -ECANCELED || v == absorbed,
                  "scope exit returned %s", rcname(v));
        } else {
            CHECK(me, v == (outer == YES ? -ECANCELED : absorbed),
                  "%s scope (cancelled; outer cancelled=%d) exit of "
                  "-ECANCELED returned %s", kind_name[st->kind], outer,
                  rcname(v));
        }
    } else {
        CHECK(me, v == rc, "%s scope (cancelled=%d) exit of %s returned %s",
              kind_name[st->kind], c, rcname(rc), rcname(v));
    }
    if (c && rc < 0 && rc != -ECANCELED) {
        if (outer == NO) R.diag_min++;
        if (outer != YES) R.diag_max++;
    }
    return v;
}

/* tl_scope_cancel of an open scope: picks below 700 one of mine (an
 * enclosing scope), the others one of any live task's (tl_scope_cancel
 * works across tasks). */
static void op_scope_cancel(struct mtask *me, int pick)
{
    int n = 0;
    for (int i = 0; i < R.ntasks; i++) {
        struct mtask *t = R.tasks[i];
        if (pick < 700 && t != me) continue;
        if (!t->started || t->done) continue;
        for (struct ent *e = t->top; e; e = e->parent)
            if (e->kind <= K_CANCEL) n++;
    }
    if (!n) return;
    pick %= n;
    for (int i = 0; i < R.ntasks; i++) {
        struct mtask *t = R.tasks[i];
        if ((pick < 700 && t != me) || !t->started || t->done) continue;
        for (struct ent *e = t->top; e; e = e->parent) {
            if (e->kind > K_CANCEL || pick-- != 0) continue;
            int rc = tl_scope_cancel(e->s);
            CHECK(me, rc == 0, "tl_scope_cancel returned %s", rcname(rc));
            if (!e->test_cancelled) e->tc_time = now_ticks();
            e->test_cancelled = 1;
            LOG(me, "tl_scope_cancel(%s of %s)", kind_name[e->kind],
                t->name);
            return;
        }
    }
}

static void op_cancel(struct mtask *me, int pick)
{
    int n = 0;
    for (int i = 0; i < R.ntasks; i++)
        if (R.tasks[i]->started && !R.tasks[i]->done) n++;
    pick %= n; /* n >= 1: me */
    for (int i = 0; i < R.ntasks; i++) {
        struct mtask *t = R.tasks[i];
        if (!t->started || t->done || pick-- != 0) continue;
        int rc = tl_cancel(t->h);
        CHECK(me, rc == 0, "tl_cancel(%s) returned %s", t->name, rcname(rc));
        if (!t->own_cancel) t->own_time = now_ticks();
        t->own_cancel = 1;
        LOG(me, "tl_cancel(%s)", t->name);
        break;
    }
}

/* tl_scope_reschedule of an enclosing timeout / move-on scope: -EINVAL
 * once it was cancelled (expired or tl_scope_cancel), else the new
 * deadline counts from now. */
static void op_reschedule(struct mtask *me, int pick, int d1)
{
    int n = 0;
    for (struct ent *e = me->top; e; e = e->parent)
        if (e->kind == K_TIMEOUT || e->kind == K_MOVE_ON) n++;
    if (!n) return;
    pick %= n;
    for (struct ent *e = me->top; e; e = e->parent) {
        if ((e->kind != K_TIMEOUT && e->kind != K_MOVE_ON) || pick-- != 0)
            continue;
        int64_t now = now_ticks();
        int was = ent_cancelled(e, now);
        int rc = tl_scope_reschedule(e->s, d1 ? (d1 - 1) / TICK : INFINITY);
        LOG(me, "tl_scope_reschedule(%s, %d) -> %s", kind_name[e->kind],
            d1 - 1, rcname(rc));
        CHECK(me, rc == (was ? -EINVAL : 0), "tl_scope_reschedule of a "
              "scope (cancelled=%d) returned %s", was, rcname(rc));
        if (rc == 0) e->deadline = d1 ? now + d1 - 1 : INT64_MAX;
        return;
    }
}

/* tl_group_cancel of a group of mine or of the group I belong to. */
static void op_group_cancel(struct mtask *me, int pick)
{
    struct mgroup *cands[16];
    int n = 0;
    for (struct ent *e = me->top; e && n < 15; e = e->parent)
        if (e->kind == K_GROUP)
            cands[n++] = mgroup_of(e);
    if (me->mg) cands[n++] = me->mg;
    if (!n) return;
    struct mgroup *mg = cands[pick % n];
    int rc = tl_group_cancel(mg->g);
    CHECK(me, rc == 0, "tl_group_cancel returned %s", rcname(rc));
    if (!mg->ent.test_cancelled) mg->ent.tc_time = now_ticks();
    mg->ent.test_cancelled = 1;
    LOG(me, "tl_group_cancel(group of %s)", mg->owner->name);
}

/* Spawn a child into mg; the result the model expects is checked. */
static void group_child(struct mtask *me, struct mgroup *mg, int sid)
{
    struct mtask *pend = NULL;
    int64_t since;
    int c = cancelled_from(mg->owner, &mg->ent, &pend, &since);
    struct mtask *kid = new_mtask(sid, mg->owner, &mg->ent, 0, mg);
    int rc = tl_group_spawn_ex(mg->g, &(tl_spawn_opts){.name = kid->name},
                               task_fn, kid, &kid->status);
    LOG(me, "tl_group_spawn(%s, script%d) -> %s", kid->name, sid, rcname(rc));
    if (c == MAYBE)
        settle(pend, rc == -ESHUTDOWN);
    else
        CHECK(me, rc == (c == YES ? -ESHUTDOWN : 0),
              "tl_group_spawn returned %s, model says cancelled=%d",
              rcname(rc), c);
    if (rc < 0) { /* never runs: no longer a candidate for anything */
        kid->started = kid->done = 1;
        kid->ret = kid->status = 0;
        kid->mg = NULL;
    }
}

static int op_group(struct mtask *me, const struct step *st)
{
    struct mgroup mg = {.owner = me};
    mg.ent.kind = K_GROUP;
    mg.ent.deadline = INT64_MAX;
    int rc = tl_group_enter(&mg.g);
    CHECK(me, rc == 0, "tl_group_enter returned %s", rcname(rc));
    if (rc < 0) return rc;
    push(me, &mg.ent);
    LOG(me, "enter group");
    int first = R.ntasks;
    for (int k = 0; k < st->nkids; k++)
        group_child(me, &mg, R.p->kids[st->kids + k]);
    int body = run_script(me, st->body);
    check_state(me, "group body done");
    struct mtask *pend = NULL;
    int64_t since;
    int c = cancelled_from(me, &mg.ent, &pend, &since);
    if (c == MAYBE) { /* the group is the innermost record */
        settle(pend, tl_cancelled());
        c = tl_cancelled() ? YES : NO;
    }
    if (body < 0 && !(body == -ECANCELED && c != NO)) {
        if (mg.nerr < 16) {
            mg.codes[mg.nerr] = body;
            snprintf(mg.names[mg.nerr], 32, "%s", me->name);
        }
        mg.nerr++;
        if (!mg.ent.failed) mg.ent.failed_time = now_ticks();
        mg.ent.failed = 1;
    }
    tl_errors errs = {0};
    int v = tl_group_wait(mg.g, body, &errs);
    pop(me, &mg.ent);
    pend = NULL;
    int outer = model(me, &pend);
    LOG(me, "group_wait(body %s) -> %s (%zu errors)", rcname(body),
        rcname(v), errs.count);
    int unwound = body == -ECANCELED;
    for (int i = first; i < R.ntasks; i++) {
        struct mtask *t = R.tasks[i];
        if (t->mg != &mg) continue;
        CHECK(me, t->done, "group_wait returned before child %s finished",
              t->name);
        CHECK(me, t->status == t->ret, "child %s returned %s, its status "
              "pointer holds %s", t->name, rcname(t->ret), rcname(t->status));
        t->mg = NULL;
        if (t->ret == -ECANCELED) unwound = 1;
    }
    /* Did anyone unwind from a cancel (the body, or a child)? If not,
     * the work completed and the verdict is 0 even under an outer cancel
     * (tulip.h's rule: it shows at the next suspending call). */
    if (mg.nerr) {
        CHECK(me, v == mg.codes[0], "group verdict %s, expected the first "
              "failure %s", rcname(v), rcname(mg.codes[0]));
    } else if (outer == MAYBE) {
        settle(pend, v == -ECANCELED);
        CHECK(me, v == 0 || (v == -ECANCELED && unwound), "group verdict %s",
              rcname(v));
    } else {
        CHECK(me, v == (outer == YES && unwound ? -ECANCELED : 0),
              "group verdict %s, no failures, outer cancelled=%d, "
              "unwound=%d", rcname(v), outer, unwound);
    }
    {
        CHECK(me, errs.count == (size_t)mg.nerr, "group error list has %zu "
              "entries, model %d", errs.count, mg.nerr);
        for (size_t i = 0; i < errs.count && i < (size_t)mg.nerr && i < 16;
             i++)
            CHECK(me, errs.items[i].code == mg.codes[i] &&
                      strcmp(errs.items[i].task, mg.names[i]) == 0,
                  "group error %zu is %s of %s, model %s of %s", i,
                  rcname(errs.items[i].code), errs.items[i].task,
                  rcname(mg.codes[i]), mg.names[i]);
    }
    tl_errors_free(&errs);
    return v;
}

static int op_gather(struct mtask *me, const struct step *st)
{
    int n = st->nkids;
    struct ent e = {.kind = K_GATHER, .deadline = INT64_MAX};
    tl_call calls[8];
    int statuses[8];
    struct mtask *kids[8];
    push(me, &e);
    for (int k = 0; k < n; k++) {
        kids[k] = new_mtask(R.p->kids[st->kids + k], me, &e, 0, NULL);
        calls[k] = TL_CALL_NAMED(task_fn, kids[k], kids[k]->name);
        statuses[k] = 0x7777;
    }
    LOG(me, "gather %s..%s", kids[0]->name, kids[n - 1]->name);
    struct mtask *pend = NULL;
    int pre = model(me, &pend);
    int rc = tl_gather((size_t)n, calls, statuses);
    pop(me, &e);
    if (pre == YES)
        CHECK(me, rc == -ECANCELED && !kids[0]->started, "gather while "
              "cancelled returned %s, kid started=%d", rcname(rc),
              kids[0]->started);
    if (!kids[0]->started) { /* refused at its checkpoint: none ran */
        if (pre == MAYBE) settle(pend, 1);
        CHECK(me, rc == -ECANCELED, "gather ran nothing, returned %s",
              rcname(rc));
        for (int k = 0; k < n; k++) {
            CHECK(me, !kids[k]->started && statuses[k] == -ECANCELED,
                  "refused gather: %s started=%d, statuses[%d]=%s",
                  kids[k]->name, kids[k]->started, k, rcname(statuses[k]));
            kids[k]->started = kids[k]->done = 1;
            kids[k]->ret = -ECANCELED;
        }
        return rc;
    }
    pend = NULL;
    int outer = model(me, &pend);
    LOG(me, "gather -> %s", rcname(rc));
    int first = 0, cancelled = 0;
    for (int k = 0; k < n; k++) {
        CHECK(me, kids[k]->done, "gather returned before %s finished",
              kids[k]->name);
        CHECK(me, statuses[k] == kids[k]->ret, "gather statuses[%d]=%s, %s "
              "returned %s", k, rcname(statuses[k]), kids[k]->name,
              rcname(kids[k]->ret));
        if (!first && kids[k]->ret < 0 && kids[k]->ret != -ECANCELED)
            first = kids[k]->ret;
        if (kids[k]->ret == -ECANCELED) cancelled = 1;
    }
    if (outer == MAYBE) { /* the gather is over: tl_cancelled() says */
        int r = tl_cancelled();
        settle(pend, r);
        outer = r ? YES : NO;
    }
    /* The children's outcome, whether or not the gatherer was cancelled:
     * the first real error, else -ECANCELED if one unwound, else 0. */
    int want = first ? first : cancelled ? -ECANCELED : 0;
    CHECK(me, rc == want, "gather returned %s, model: cancelled=%d first "
          "error %s, a child cancelled=%d", rcname(rc), outer,
          rcname(first), cancelled);
    return rc;
}

static int op_spawn_join(struct mtask *me, const struct step *st)
{
    struct mtask *kid = new_mtask(R.p->kids[st->kids], me, me->top, 1, NULL);
    tl_task h;
    int rc = tl_spawn_ex(&h, &(tl_spawn_opts){.name = kid->name}, task_fn,
                         kid);
    CHECK(me, rc == 0, "tl_spawn returned %s", rcname(rc));
    if (rc < 0) {
        kid->started = kid->done = 1;
        return rc;
    }
    if (st->a) { /* cancelled before its first run: it still runs */
        rc = tl_cancel(h);
        CHECK(me, rc == 0, "tl_cancel(%s) returned %s", kid->name,
              rcname(rc));
        kid->own_cancel = 1;
        kid->own_time = now_ticks();
        LOG(me, "tl_cancel(%s) before it ran", kid->name);
    }
    struct mtask *pend = NULL;
    int pre = model(me, &pend);
    if (pre == YES && !kid->own_cancel) { /* forwarded at once */
        kid->own_cancel = 1;
        kid->own_time = now_ticks();
    }
    int st_ = 0x7777;
    rc = tl_join(h, &st_);
    pend = NULL;
    int post = model(me, &pend);
    LOG(me, "join(%s) -> %s, status %s", kid->name, rcname(rc), rcname(st_));
    CHECK(me, kid->done, "join returned before %s finished", kid->name);
    if (pre == YES)
        CHECK(me, rc == -ECANCELED, "join while cancelled returned %s",
              rcname(rc));
    if (rc == -ECANCELED) {
        /* Refused at its checkpoint (after waiting for the kid it
         * forwarded the cancel to): nothing consumed; a join from a
         * shield gets the status. */
        if (post == MAYBE) settle(pend, 1);
        else CHECK(me, post == YES, "join returned -ECANCELED, model says "
                   "not cancelled");
        CHECK(me, st_ == 0x7777, "a refused join wrote status %s",
              rcname(st_));
        tl_scope sh = tl_shield_enter();
        int rc2 = tl_join(h, &st_);
        CHECK(me, tl_scope_exit(sh, rc2) == 0 && rc2 == 0,
              "join from a shield after a refused one returned %s",
              rcname(rc2));
    } else {
        /* Joined: the wait completed, so 0 even if the joiner was
         * cancelled meanwhile (the kid's outcome is in the status). */
        CHECK(me, rc == 0, "join returned %s", rcname(rc));
    }
    CHECK(me, st_ == kid->ret, "join status %s, %s returned %s", rcname(st_),
          kid->name, rcname(kid->ret));
    return rc;
}

static int op_sibling(struct mtask *me, const struct step *st)
{
    if (!me->mg) return 0;
    group_child(me, me->mg, st->body);
    return 0;
}

static int exec_step(struct mtask *me, const struct step *st)
{
    switch (st->op) {
    case OP_SLEEP: return op_sleep(me, st->a);
    case OP_YIELD: return op_yield(me);
    case OP_SCOPE: return op_scope(me, st);
    case OP_SCOPE_CANCEL: op_scope_cancel(me, st->a); return 0;
    case OP_CANCEL: op_cancel(me, st->a); return 0;
    case OP_FAIL:
        LOG(me, "fails with %s", rcname(fail_codes[st->a]));
        return fail_codes[st->a];
    case OP_GROUP: return op_group(me, st);
    case OP_GATHER: return op_gather(me, st);
    case OP_SPAWN_JOIN: return op_spawn_join(me, st);
    case OP_SIBLING: return op_sibling(me, st);
    case OP_GROUP_CANCEL: op_group_cancel(me, st->a); return 0;
    case OP_RESCHEDULE: op_reschedule(me, st->a, st->kind); return 0;
    }
    return 0;
}

static int run_script(struct mtask *me, int sid)
{
    const struct script *s = &R.p->scripts[sid];
    for (int i = 0; i < s->n; i++) {
        const struct step *st = &R.p->steps[s->steps[i]];
        if (st->off) continue;
        check_state(me, "before a step");
        int rc = exec_step(me, st);
        if (rc < 0) {
            if (rc == -ECANCELED && me->stubborn_left > 0) {
                me->stubborn_left--;
                LOG(me, "ignores -ECANCELED");
                continue;
            }
            return rc;
        }
    }
    return 0;
}

/* ---- running a program -------------------------------------------------- */

static int main_fn(void *arg)
{
    (void)arg;
    return task_fn(R.tasks[0]);
}

static void prog_begin(const struct prog *p, int quiet)
{
    for (int i = 0; i < R.ntasks; i++) free(R.tasks[i]);
    free(R.tasks);
    free(R.msg.s);
    free(R.log.s);
    memset(&R, 0, sizeof R);
    R.p = p;
    R.quiet_log = quiet;
    R.msg = (struct buf){malloc(4096), 0, 4096};
    R.log = (struct buf){malloc(32768), 0, 32768};
    if (!R.msg.s || !R.log.s) abort();
    R.msg.s[0] = R.log.s[0] = '\0';
    new_mtask(0, NULL, NULL, 0, NULL);
}

/* The program's root returned with status rc (tl_run's or tl_join's). */
static int prog_end(int rc, const char *how)
{
    struct mtask *m0 = R.tasks[0];
    CHECK(m0, m0->done, "main never returned");
    CHECK(m0, rc == m0->ret, "%s returned %s, main returned %s", how,
          rcname(rc), rcname(m0->ret));
    for (int i = 0; i < R.ntasks; i++)
        CHECK(R.tasks[i], R.tasks[i]->started && R.tasks[i]->done,
              "task %s started=%d done=%d after main returned",
              R.tasks[i]->name, R.tasks[i]->started, R.tasks[i]->done);
    return R.fails;
}

/* Run p alone, as tl_run's main; returns the number of failed checks. */
static int run_prog(const struct prog *p, int quiet)
{
    prog_begin(p, quiet);
    /* Main's failure is the checked result here, not a diagnostic. */
    tl_config c = {.virtual_clock = 1, .no_main_report = 1};
    return prog_end(tl_run_with(&c, main_fn, NULL), "tl_run");
}

static void run_free(void)
{
    for (int i = 0; i < R.ntasks; i++) free(R.tasks[i]);
    free(R.tasks);
    free(R.msg.s);
    free(R.log.s);
    memset(&R, 0, sizeof R);
}

static void print_prog(struct prog *p, const char *title)
{
    struct buf b = {malloc(32768), 0, 32768};
    if (!b.s) return;
    b.s[0] = '\0';
    print_script(&b, p, 0, 4);
    printf("%s (program seed %" PRIu64 "):\n  main:\n%s", title, p->seed,
           b.s);
    free(b.s);
}

/* Report a failing program: seed, failures, script, trace; then shrink it
 * by switching steps off while it still fails, and print what is left. */
static int report_failure(struct prog *p)
{
    int fails = run_prog(p, 0);
    printf("\nFAILED: program seed %" PRIu64
           " (TULIP_PROGRAM=%" PRIu64 " replays it)\n%s",
           p->seed, p->seed, R.msg.s);
    print_prog(p, "script");
    printf("trace:\n%s", R.log.s);
    int shrunk = 0;
    for (int i = 0; i < p->nsteps; i++) {
        p->steps[i].off = 1;
        if (run_prog(p, 1) > 0)
            shrunk++;
        else
            p->steps[i].off = 0;
    }
    if (shrunk) {
        run_prog(p, 0);
        printf("shrunk (%d steps off):\n%s", shrunk, R.msg.s);
        print_prog(p, "shrunk script");
        printf("trace:\n%s", R.log.s);
    }
    fflush(stdout);
    return fails;
}

/* ---- the tests ------------------------------------------------------------ */

struct shared {
    int programs, failed;
    int diag_min, diag_max;
    int64_t steps, tasks;
    uint64_t current; /* seed of the program running (for crashes) */
};

struct batch {
    const char *test;
    const struct mix *m;
    int n;
    uint64_t base;
    struct shared *sh;
};

static void account(struct batch *b, const struct prog *p, int fails,
                    uint64_t *failed_seeds)
{
    b->sh->programs++;
    b->sh->steps += p->nsteps;
    b->sh->tasks += R.ntasks;
    b->sh->diag_min += R.diag_min;
    b->sh->diag_max += R.diag_max;
    if (fails) {
        if (b->sh->failed < 8) failed_seeds[b->sh->failed] = p->seed;
        b->sh->failed++;
    }
}

/* Programs share a loop, CHUNK at a time (a loop per program would make a
 * kernel ring per program under io_uring, whose teardown the kernel defers:
 * tens of thousands of them pile up as unreclaimable memory). The first
 * program of each chunk runs alone as tl_run's main. */
#define CHUNK 250

struct chunk {
    struct batch *b;
    struct tl_test_rng *r;
    struct prog *p;
    int n;
    uint64_t *failed_seeds;
};

static int chunk_fn(void *arg)
{
    struct chunk *c = arg;
    int last = 0;
    for (int i = 0; i < c->n; i++) {
        gen_prog(c->p, tl_test_rng_next(c->r), c->b->m);
        c->b->sh->current = c->p->seed;
        prog_begin(c->p, 1);
        tl_task h;
        int rc = tl_spawn_ex(&h, &(tl_spawn_opts){.name = "main"}, task_fn,
                             R.tasks[0]);
        int st = -12345;
        if (rc == 0) rc = tl_join(h, &st);
        CHECK(R.tasks[0], rc == 0, "driver: spawn/join returned %s",
              rcname(rc));
        account(c->b, c->p, prog_end(st, "tl_join"), c->failed_seeds);
        last = st;
    }
    return last;
}

static void run_batch(void *arg)
{
    struct batch *b = arg;
    const char *one = getenv("TULIP_PROGRAM");
    struct tl_test_rng r = {b->base};
    struct prog *p = malloc(sizeof *p);
    uint64_t failed_seeds[8];
    if (!p) abort();
    if (one && *one) {
        gen_prog(p, strtoull(one, NULL, 0), b->m);
        int fails = run_prog(p, 0);
        print_prog(p, "script");
        printf("trace:\n%s%s", R.log.s, R.msg.s);
        account(b, p, fails, failed_seeds);
    }
    for (int i = 0; i < b->n && !(one && *one); i += CHUNK) {
        gen_prog(p, tl_test_rng_next(&r), b->m);
        b->sh->current = p->seed;
        account(b, p, run_prog(p, 1), failed_seeds);
        int n = b->n - i - 1 < CHUNK - 1 ? b->n - i - 1 : CHUNK - 1;
        struct chunk c = {b, &r, p, n, failed_seeds};
        tl_config vc = {.virtual_clock = 1, .no_main_report = 1};
        int rc = tl_run_with(&vc, chunk_fn, &c);
        if (n > 0 && rc != R.tasks[0]->ret) {
            printf("FAILED: tl_run of a chunk returned %s, its main %s\n",
                   rcname(rc), rcname(R.tasks[0]->ret));
            b->sh->failed++;
        }
    }
    for (int i = 0; i < b->sh->failed && i < 8 && !(one && *one); i++) {
        gen_prog(p, failed_seeds[i], b->m);
        if (i < 2) {
            if (report_failure(p) == 0)
                printf("(program seed %" PRIu64 " passes in a fresh loop: "
                       "it failed after other programs in the same loop)\n",
                       p->seed);
        } else {
            printf("FAILED: program seed %" PRIu64 "\n", p->seed);
        }
    }
    run_free();
    free(p);
    b->sh->current = 0;
    fflush(stdout);
#ifdef HAVE_LSAN
    if (__lsan_do_recoverable_leak_check())
        printf("LEAK: LeakSanitizer found leaks\n");
#endif
}

#define OUT_LEN (1u << 20)

static void run_test(const char *test, const struct mix *m, int n,
                     uint64_t salt)
{
    const char *e = getenv("TULIP_SEED");
    uint64_t s = e && *e ? strtoull(e, NULL, 0) : DEFAULT_SEED;
    struct tl_test_rng r = {s ^ salt};
    struct shared *sh = tl_test_shared_page(4096);
    struct batch b = {test, m, n, tl_test_rng_next(&r), sh};
    char *out = calloc(1, OUT_LEN);
    cr_assert(out);
    int st = tl_test_child(run_batch, &b, out, OUT_LEN);
    printf("test_core_property %s: seed=%" PRIu64 " (TULIP_SEED=<n> to vary), "
           "%d programs, %" PRId64 " steps, %" PRId64 " tasks, %d failed, "
           "%d-%d debug warnings predicted\n",
           test, s, sh->programs, sh->steps, sh->tasks, sh->failed,
           sh->diag_min, sh->diag_max);
    if (getenv("TULIP_PROGRAM")) printf("%s", out);
    fflush(stdout);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the batch crashed (status %#x) in program seed %" PRIu64
              "; output:\n%.20000s", st, sh->current, out);
    cr_expect(sh->failed == 0, "%d programs failed:\n%.60000s", sh->failed,
              out);
    cr_expect(strstr(out, "LEAK:") == NULL, "leaks:\n%.20000s", out);
    cr_expect(strstr(out, "runtime error") == NULL,
              "undefined behaviour:\n%.20000s", out);
    /* The only diagnostics a legal program may print: the debug build's
     * warning at a cancelled scope whose body returned another error. */
    int warnings = 0, other = 0;
    for (char *line = out; line && *line;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, "tulip:", 6) == 0 || strstr(line, " tulip: ")) {
            if (strstr(line, "a callee replaced -ECANCELED"))
                warnings++;
            else if (other++ < 5)
                cr_expect(0, "unexpected diagnostic: %.*s",
                          (int)(nl ? nl - line : (long)strlen(line)), line);
        }
        line = nl ? nl + 1 : NULL;
    }
    if (!getenv("TULIP_PROGRAM") && sh->failed == 0) {
#ifdef NDEBUG
        cr_expect(warnings == 0, "%d debug warnings in a release build",
                  warnings);
#else
        cr_expect(warnings >= sh->diag_min && warnings <= sh->diag_max,
                  "%d 'callee replaced -ECANCELED' warnings, model predicts "
                  "%d-%d", warnings, sh->diag_min, sh->diag_max);
#endif
    }
    free(out);
    munmap(sh, 4096);
}


/* One task: nested deadline / move-on / shield / cancel scopes, sleeps,
 * yields, scope cancels and self-cancels. */
static const struct mix scopes_mix = {
    .sleep = 6, .yield = 2, .scope = 6, .scope_cancel = 2, .cancel = 1,
    .fail = 1, .reschedule = 2, .max_depth = 5, .budget = 30};

/* Groups, gathers, joins and cancels between tasks, inside scopes. */
static const struct mix tasks_mix = {
    .sleep = 5, .yield = 2, .scope = 3, .scope_cancel = 1, .cancel = 2,
    .fail = 1, .group = 3, .gather = 2, .join = 2, .sibling = 3,
    .group_cancel = 1, .max_depth = 4, .budget = 45};

/* Everything, cancel-heavy. */
static const struct mix chaos_mix = {
    .sleep = 4, .yield = 2, .scope = 4, .scope_cancel = 3, .cancel = 4,
    .fail = 2, .group = 3, .gather = 2, .join = 2, .sibling = 2,
    .group_cancel = 1, .reschedule = 1, .max_depth = 4, .budget = 50};

Test(core_property, nested_scopes_in_one_task, .timeout = 30)
{
    run_test("nested_scopes_in_one_task", &scopes_mix, TL_TEST_SCALE(20000), 1);
}

Test(core_property, groups_gathers_and_joins, .timeout = 30)
{
    run_test("groups_gathers_and_joins", &tasks_mix, TL_TEST_SCALE(20000), 2);
}

Test(core_property, cancel_heavy_mix, .timeout = 30)
{
    run_test("cancel_heavy_mix", &chaos_mix, TL_TEST_SCALE(20000), 3);
}
