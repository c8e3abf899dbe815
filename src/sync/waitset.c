/* Wait sets (asyncio.as_completed) and tl_wait (asyncio.wait).
 *
 * Both hear of a finished task through the core's finish hook: a tl__watch
 * node on t->watchers, which task_finished unlinks and calls on the
 * scheduler's stack once t->result is set (src/loop.c). The callbacks only
 * move bookkeeping and wake the waiting task; all the rest happens in the
 * waiter, on its own stack.
 *
 * A wait set holds one entry per member:
 *
 *   ws->pending   members still running (their watch node is on the task)
 *   ws->done      members that finished, in completion order, not yet
 *                 yielded (the set is their joiner: they stay zombies)
 *
 * tl_waitset_next pops ws->done (joining the task: its slot is freed) or
 * parks until a watch callback moves an entry there. Members the set
 * spawned from deferred calls are `owned`: closing the set cancels those
 * still pending and waits for them (uncancellably: invariant 1); members
 * the caller gave go back to it unjoined.
 *
 * `busy` is the task inside tl_waitset_next from its first line to its
 * return; `waiter` is the task to wake (next's or close's), cleared by
 * whoever wakes it. They differ: once woken, a waiter is still busy until
 * it runs, and close must not free the set under it.
 */
#include "internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct ws_entry {
    tl__watch watch;         /* on task->watchers while pending */
    tl__link link;           /* in ws->pending or ws->done */
    struct tl_waitset *ws;
    tl__task *task;
    void *tag;
    int owned;               /* spawned by the set from a tl_call */
} ws_entry;

struct tl_waitset {
    tl__loop *loop;
    tl__link open_link;      /* in loop->waitsets until closed */
    char maker[48];          /* label of the task that made it (reports) */
    tl__link pending, done;
    size_t npending, ndone;
    size_t owned_pending;    /* owned members still running */
    tl__task *busy;          /* inside tl_waitset_next */
    tl__task *waiter;        /* parked, to be woken by a finish/timeout */
    tl__timer timer;         /* tl_waitset_next's deadline */
    int closing;
};

/* ---- helpers -------------------------------------------------------------- */

/* The running task if it may use ws, else NULL with *err set. */
static tl__task *ws_self(const tl_waitset *ws, const char *what, int *err)
{
    tl__task *self = tl__task_self_in(ws ? ws->loop : NULL, "wait set", what,
                                      err);
    if (self && !ws) {
        *err = -EINVAL;
        return NULL;
    }
    return self;
}

static void entry_done(tl__watch *w, tl__task *t)
{
    (void)t;
    ws_entry *e = tl__container_of(w, ws_entry, watch);
    tl_waitset *ws = e->ws;
    tl__list_remove(&e->link);
    ws->npending--;
    if (e->owned) ws->owned_pending--;
    tl__list_push(&ws->done, &e->link);
    ws->ndone++;
    tl__task *waiter = ws->waiter;
    if (waiter) {
        ws->waiter = NULL;
        tl__wake(waiter, 0);
    }
}

static void add_entry(tl_waitset *ws, ws_entry *e, tl__task *t, void *tag,
                      int owned)
{
    e->ws = ws;
    e->task = t;
    e->tag = tag;
    e->owned = owned;
    tl__list_init(&e->watch.link);
    t->has_joiner = 1; /* the set joins it; tl_join is refused meanwhile */
    if (t->state == TL__T_DONE) {
        tl__list_push(&ws->done, &e->link);
        ws->ndone++;
        return;
    }
    e->watch.fn = entry_done;
    tl__list_push(&t->watchers, &e->watch.link);
    tl__list_push(&ws->pending, &e->link);
    ws->npending++;
    if (owned) ws->owned_pending++;
}

/* Join a finished member: its slot is freed. */
static void reap(tl__loop *l, tl__task *t)
{
    l->zombies--;
    tl__task_free(l, t);
}

static void fill_item(const tl__task *t, void *tag, tl_waitset_item *out)
{
    memset(out, 0, sizeof *out);
    out->tag = tag;
    out->status = t->result;
    char name[sizeof t->name];
    memcpy(name, t->name, sizeof name);
    name[sizeof name - 1] = '\0';
    if (name[0])
        snprintf(out->name, sizeof out->name, "%s", name);
    else
        snprintf(out->name, sizeof out->name, "task #%u", (unsigned)t->slot);
    if (t->result < 0 && t->fail_msg && t->fail_code == t->result)
        snprintf(out->message, sizeof out->message, "%s", t->fail_msg);
}

/* ---- the set ---------------------------------------------------------------- */

static void ws_timer_fire(tl__loop *l, tl__timer *tm)
{
    (void)l;
    tl_waitset *ws = tl__container_of(tm, tl_waitset, timer);
    tl__task *waiter = ws->waiter;
    if (waiter) {
        ws->waiter = NULL;
        tl__wake(waiter, -ETIMEDOUT);
    }
}

static void ws_cancel(tl__task *t)
{
    tl_waitset *ws = t->wait_data;
    if (ws->timer.index != TL__TIMER_IDLE) tl__timer_disarm(ws->loop, &ws->timer);
    ws->waiter = NULL;
    tl__wake(t, -ECANCELED);
}

int tl_waitset_new(tl_waitset **out)
{
    if (!out) return -EINVAL;
    *out = NULL;
    tl__task *self = tl__task_self("tl_waitset_new");
    if (!self) return tl__not_task_error();
    tl_waitset *ws = calloc(1, sizeof *ws);
    if (!ws) return -ENOMEM;
    ws->loop = self->loop;
    tl__list_init(&ws->pending);
    tl__list_init(&ws->done);
    tl__timer_init(&ws->timer, ws_timer_fire);
    tl__task_label(self, ws->maker, sizeof ws->maker);
    tl__list_push(&ws->loop->waitsets, &ws->open_link);
    *out = ws;
    return 0;
}

int tl_waitset_add_task(tl_waitset *ws, tl_task h, void *tag)
{
    int err;
    tl__task *self = ws_self(ws, "tl_waitset_add_task", &err);
    if (!self) return err;
    tl__task *t = tl__task_lookup(h, "tl_waitset_add_task", &err);
    if (!t) return err;
    char label[48];
    if (t == self) {
        tl__diag("tl_waitset_add_task: task %s added itself (it would wait "
                 "for itself)", tl__task_label(t, label, sizeof label));
        return -EDEADLK;
    }
    if (t->group || t->detached || t->has_joiner) {
        tl__diag("tl_waitset_add_task: task %s is %s", tl__task_label(t,
                 label, sizeof label), t->group ? "a group member (its "
                 "group waits for it)" : t->detached ? "detached" :
                 "already being joined (or in a wait set)");
        return -EINVAL;
    }
    if (ws->closing) return -ESHUTDOWN;
    ws_entry *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    add_entry(ws, e, t, tag, 0);
    return 0;
}

int tl_waitset_add_call(tl_waitset *ws, tl_call call, void *tag)
{
    int err;
    tl__task *self = ws_self(ws, "tl_waitset_add_call", &err);
    if (!self) return err;
    if (!call.fn) return -EINVAL;
    if (ws->closing) return -ESHUTDOWN;
    ws_entry *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    tl__task *t = tl__task_alloc(self->loop, call.fn, call.arg,
                                 &(tl_spawn_opts){.name = call.name});
    if (!t) {
        free(e);
        return -ENOMEM;
    }
    add_entry(ws, e, t, tag, 1);
    tl__task_enqueue(self->loop, t);
    return 0;
}

static int next_until_ns(tl_waitset *ws, int64_t deadline,
                         tl_waitset_item *out, void *site)
{
    int err;
    tl__task *self = ws_self(ws, "tl_waitset_next", &err);
    if (!self) return err;
    if (!out) return -EINVAL;
    if (ws->busy) {
        char label[48];
        tl__diag("tl_waitset_next: task %s is already waiting on this set",
                 tl__task_label(ws->busy, label, sizeof label));
        return -EBUSY;
    }
    int rc = tl__checkpoint(self, "tl_waitset_next", site);
    if (rc < 0) return rc;
    if (tl__list_empty(&ws->done)) {
        if (ws->npending == 0) return TL_EOF;
        tl__loop *l = self->loop;
        if (deadline <= tl__loop_now(l)) return -ETIMEDOUT;
        if (deadline < TL__FOREVER) {
            rc = tl__timer_arm(l, &ws->timer, deadline);
            if (rc < 0) return rc;
        }
        ws->busy = self;
        ws->waiter = self;
        self->wait_data = ws;
        rc = tl__park(self, ws_cancel, "tl_waitset_next");
        self->wait_data = NULL;
        ws->waiter = NULL;
        ws->busy = NULL;
        if (ws->timer.index != TL__TIMER_IDLE) tl__timer_disarm(l, &ws->timer);
        if (rc < 0) return rc; /* -ETIMEDOUT, -ECANCELED */
    }
    /* A member finished (completed wins over a later cancel). */
    ws_entry *e = tl__container_of(tl__list_pop(&ws->done), ws_entry, link);
    ws->ndone--;
    fill_item(e->task, e->tag, out);
    reap(self->loop, e->task);
    free(e);
    return 0;
}

int tl_waitset_next(tl_waitset *ws, double timeout, tl_waitset_item *out)
{
    tl__loop *l = tl__self;
    int64_t deadline = TL__FOREVER;
    if (l) {
        int rc = tl__time_after(l, timeout, "tl_waitset_next", &deadline);
        if (rc < 0) return rc;
    }
    return next_until_ns(ws, deadline, out, __builtin_return_address(0));
}

int tl_waitset_next_until(tl_waitset *ws, double when, tl_waitset_item *out)
{
    int64_t deadline;
    int rc = tl__time_at(when, "tl_waitset_next_until", &deadline);
    if (rc < 0) return rc;
    return next_until_ns(ws, deadline, out, __builtin_return_address(0));
}

size_t tl_waitset_count(const tl_waitset *ws)
{
    return ws ? ws->npending + ws->ndone : 0;
}

/* The end of a close: owned members the set never yielded are joined (a
 * failure among them is reported, nobody saw it); the caller's go back
 * to it unjoined. Every member has finished. */
static void ws_free(tl__loop *l, tl_waitset *ws)
{
    for (tl__link *n; (n = tl__list_pop(&ws->done));) {
        ws_entry *e = tl__container_of(n, ws_entry, link);
        if (e->owned) {
            tl__report_unjoined(e->task); /* a failure nobody saw */
            reap(l, e->task);
        } else {
            e->task->has_joiner = 0;
        }
        free(e);
    }
    tl__list_remove(&ws->open_link);
    free(ws);
}

int tl_waitset_close(tl_waitset *ws)
{
    if (!ws) return 0;
    int err;
    tl__task *self = ws_self(ws, "tl_waitset_close", &err);
    if (!self) return err;
    if (ws->busy || ws->closing) {
        tl__diag("tl_waitset_close: another task is %s this set",
                 ws->busy ? "waiting on" : "closing");
        return -EBUSY;
    }
    tl__loop *l = self->loop;
    ws->closing = 1;
    /* Hand the caller's tasks back: unwatch them, unjoined. */
    for (tl__link *n = ws->pending.next, *next; n != &ws->pending; n = next) {
        next = n->next;
        ws_entry *e = tl__container_of(n, ws_entry, link);
        if (e->owned) {
            tl__task_cancel(e->task);
            continue;
        }
        tl__list_remove(&e->watch.link);
        tl__list_remove(&e->link);
        ws->npending--;
        e->task->has_joiner = 0;
        free(e);
    }
    /* Wait for the calls we cancelled (invariant 1: uncancellable). */
    while (ws->owned_pending > 0) {
        ws->waiter = self;
        (void)tl__park(self, NULL, "tl_waitset_close");
    }
    ws->waiter = NULL;
    ws_free(l, ws);
    return 0;
}

void tl__waitset_reap_unclosed(tl__loop *l)
{
    for (tl__link *n; (n = l->waitsets.next) != &l->waitsets;) {
        tl_waitset *ws = tl__container_of(n, tl_waitset, open_link);
        tl__diag("a wait set (made by task %s, %zu member(s) not yielded) "
                 "was never closed: call tl_waitset_close when done with "
                 "it; freed at tl_run's end", ws->maker,
                 ws->npending + ws->ndone);
        /* No task is live: every member finished and sits in ws->done. */
        ws_free(l, ws);
    }
}

/* ---- tl_wait ---------------------------------------------------------------- */

typedef struct wait_state {
    tl__task *waiter;
    tl__loop *loop;
    int mode;
    size_t n, ndone, nfail;
    int *flags;
    tl__timer timer;
} wait_state;

typedef struct wait_node {
    tl__watch watch;
    wait_state *st;
    size_t i;
} wait_node;

static bool is_failure(const tl__task *t)
{
    return t->result < 0 && !(t->result == -ECANCELED && t->cancel_requested);
}

static bool wait_satisfied(const wait_state *st)
{
    switch (st->mode) {
    case TL_WAIT_FIRST_COMPLETED:
        return st->ndone > 0 || st->n == 0;
    case TL_WAIT_FIRST_EXCEPTION:
        return st->nfail > 0 || st->ndone == st->n;
    default:
        return st->ndone == st->n;
    }
}

static void wait_node_done(tl__watch *w, tl__task *t)
{
    wait_node *node = tl__container_of(w, wait_node, watch);
    wait_state *st = node->st;
    st->flags[node->i] = 1;
    st->ndone++;
    if (is_failure(t)) st->nfail++;
    if (st->waiter && wait_satisfied(st)) {
        tl__task *w8 = st->waiter;
        st->waiter = NULL;
        tl__wake(w8, 0);
    }
}

static void wait_timer_fire(tl__loop *l, tl__timer *tm)
{
    (void)l;
    wait_state *st = tl__container_of(tm, wait_state, timer);
    if (st->waiter) {
        tl__task *w = st->waiter;
        st->waiter = NULL;
        tl__wake(w, -ETIMEDOUT);
    }
}

static void wait_cancel(tl__task *t)
{
    wait_state *st = t->wait_data;
    if (st->timer.index != TL__TIMER_IDLE)
        tl__timer_disarm(st->loop, &st->timer);
    st->waiter = NULL;
    tl__wake(t, -ECANCELED);
}

int tl_wait(size_t n, const tl_task *tasks, int mode, double timeout,
            int *done_flags)
{
    tl__task *self = tl__task_self("tl_wait");
    if (!self) return tl__not_task_error();
    if ((n > 0 && !tasks) || n > INT_MAX || mode < TL_WAIT_FIRST_COMPLETED ||
        mode > TL_WAIT_ALL_COMPLETED)
        return -EINVAL;
    tl__loop *l = self->loop;
    int64_t deadline;
    int err = tl__time_after(l, timeout, "tl_wait", &deadline);
    if (err < 0) return err;
    /* Resolve every handle before waiting on any. */
    for (size_t i = 0; i < n; i++)
        if (!tl__task_lookup(tasks[i], "tl_wait", &err)) return err;

    wait_node small[8];
    wait_node *nodes = n <= 8 ? small : malloc(n * sizeof *nodes);
    int *flags = done_flags ? done_flags : calloc(n ? n : 1, sizeof *flags);
    if (!nodes || !flags) {
        if (nodes != small) free(nodes);
        if (flags != done_flags) free(flags);
        return -ENOMEM;
    }
    wait_state st = {.loop = l, .mode = mode, .n = n, .flags = flags};
    tl__timer_init(&st.timer, wait_timer_fire);
    for (size_t i = 0; i < n; i++) {
        tl__task *t = tl__slot_task(l, tasks[i].slot);
        flags[i] = 0;
        nodes[i].st = &st;
        nodes[i].i = i;
        nodes[i].watch.fn = wait_node_done;
        tl__list_init(&nodes[i].watch.link);
        if (t->state == TL__T_DONE) {
            flags[i] = 1;
            st.ndone++;
            if (is_failure(t)) st.nfail++;
        } else {
            tl__list_push(&t->watchers, &nodes[i].watch.link);
        }
    }

    int rc = tl__checkpoint(self, "tl_wait", __builtin_return_address(0));
    if (rc == 0 && !wait_satisfied(&st) && deadline > tl__loop_now(l)) {
        if (deadline < TL__FOREVER)
            rc = tl__timer_arm(l, &st.timer, deadline);
        if (rc == 0) {
            st.waiter = self;
            self->wait_data = &st;
            rc = tl__park(self, wait_cancel, "tl_wait");
            self->wait_data = NULL;
            st.waiter = NULL;
            if (st.timer.index != TL__TIMER_IDLE)
                tl__timer_disarm(l, &st.timer);
            if (rc == -ETIMEDOUT) rc = 0;
        }
    }
    /* Our nodes live in this frame: unlink every one still watching. */
    for (size_t i = 0; i < n; i++) tl__list_remove(&nodes[i].watch.link);
    size_t done = st.ndone;
    if (nodes != small) free(nodes);
    if (flags != done_flags) free(flags);
    return rc < 0 ? rc : (int)done;
}
