/* Task groups (asyncio.TaskGroup, Trio's nursery) and gather.
 *
 * A group is a record on its owner's scope stack (see scope.c) holding its
 * children. The first real failure — a child's negative status that the
 * group did not cause, or a negative body result — cancels the group: its
 * children, and the body (the record itself counts as cancelled for the
 * owner). tl_group_wait then waits for every child, ignoring cancellation
 * (the children may write the owner's memory: invariant 1), and decides by
 * the rule of tulip.h's Model (the work's outcome wins; real errors beat
 * cancellation; a cancel nobody unwound with shows at the next call):
 *
 *     errors          -> the first error
 *     else an enclosing scope or the owner is cancelled, and the body or
 *          a child ended with -ECANCELED           -> -ECANCELED
 *     else            -> 0 (everything completed)
 *
 * gather is the same record with two differences: failures cancel nobody,
 * and its verdict comes from the statuses (the first real error in
 * argument order, else -ECANCELED if a child ended cancelled, else 0).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void tl__group_cancel_children(tl__rec *g)
{
    for (tl__link *n = g->children.next; n != &g->children; n = n->next)
        tl__task_cancel(tl__container_of(n, tl__task, group_link));
}

void tl__group_cancel(tl__rec *g)
{
    if (g->cancelled) return;
    g->cancelled = 1;
    tl__group_cancel_children(g);
    tl__scope_propagate(g->owner, g);
    tl__task_poke(g->owner);
}

static void add_error(tl__rec *g, const tl__task *t, int code)
{
    if (g->nerrors == g->errors_cap) {
        size_t cap = g->errors_cap ? g->errors_cap * 2 : 4;
        tl_error *e = realloc(g->errors, cap * sizeof *e);
        if (!e) {
            /* Out of memory while recording a failure: keep the count
             * honest by overwriting the last slot, and say so. */
            if (!g->errors_cap) {
                tl__diag("task group: out of memory recording a failure "
                         "(-%s)", tl_errname(code));
                return;
            }
            g->nerrors = g->errors_cap - 1;
        } else {
            g->errors = e;
            g->errors_cap = cap;
        }
    }
    tl__error_fill(t, code, &g->errors[g->nerrors++]);
}

/* tl_group_start's wait, on the starter's stack: the child points at it
 * until it calls tl_started or ends (whichever first wakes the starter). */
struct tl__start {
    tl__task *starter;
    tl__task *child;
    intptr_t value;
    int rc;   /* 0 ready; else the child's outcome before it got ready */
    int over; /* the starter may go */
};

static void start_over(struct tl__start *st, int rc)
{
    st->child->start = NULL;
    st->rc = rc;
    st->over = 1;
    tl__wake(st->starter, 0);
}

void tl__group_child_done(tl__loop *l, tl__rec *g, tl__task *c)
{
    tl__list_remove(&c->group_link);
    g->nchildren--;
    int rc = c->result;
    if (c->start) {
        /* It ended before it was ready: its outcome is its starter's (as
         * in Trio, where the error is raised by nursery.start), so it is
         * not a failure of the group and cancels nobody. */
        start_over(c->start, rc < 0 ? rc : TL_ENOTSTARTED);
        tl__task_free(l, c);
        if (g->nchildren == 0 && g->waiter) tl__wake(g->waiter, 0);
        return;
    }
    if (rc == -ECANCELED) g->ncancelled++;
    /* A cancellation the group (or anyone cancelling the child) caused is
     * not a failure. */
    if (rc < 0 && !(rc == -ECANCELED && c->cancel_requested)) {
        add_error(g, c, rc);
        if (g->kind == TL__R_GROUP) tl__group_cancel(g);
    }
    tl__task_free(l, c);
    if (g->nchildren == 0 && g->waiter) tl__wake(g->waiter, 0);
}

void tl__group_drain(tl__task *self, tl__rec *g)
{
    while (g->nchildren > 0) {
        g->waiter = self;
        (void)tl__park(self, NULL, g->kind == TL__R_GATHER
                                       ? "tl_gather"
                                       : "tl_group_wait");
    }
    g->waiter = NULL;
}

int tl__group_enter(tl_group *g, const char *file, int line, void *frame)
{
    if (!g) return -EINVAL;
    *g = (tl_group){0};
    tl__task *self = tl__task_self("tl_group_enter");
    if (!self) return tl__not_task_error();
    tl__rec *r =
        tl__rec_alloc(self->loop, self, TL__R_GROUP, file, line, frame);
    if (!r) return -ENOMEM;
    tl__rec_push(self, r);
    *g = (tl_group){.rec = r, .gen = r->gen};
    return 0;
}

/* Resolve a group handle. *err: -ESRCH (garbage) or -ESHUTDOWN (this
 * group already finished: its record moved on to a later generation). */
static tl__rec *group_of(tl_group g, const char *what, int *err)
{
    tl__task *self = tl__task_self(what);
    *err = tl__not_task_error();
    if (!self) return NULL;
    tl__rec *r = g.rec;
    *err = -ESRCH;
    if (!r) {
        tl__diag("%s: the zero group handle (did tl_group_enter fail?)",
                 what);
        return NULL;
    }
    if (r->gen != g.gen || !r->live) {
        if (r->gen > g.gen) {
            *err = -ESHUTDOWN;
            return NULL; /* finished: an ordinary outcome, no diagnostic */
        }
        tl__diag("%s: invalid group handle", what);
        return NULL;
    }
    if (r->kind != TL__R_GROUP || r->owner->loop != self->loop) {
        tl__diag("%s: not a task group of this loop", what);
        return NULL;
    }
    return r;
}

int tl_group_spawn_ex(tl_group g, const tl_spawn_opts *opts, tl_fn fn,
                      void *arg, int *status)
{
    int err;
    tl__rec *r = group_of(g, "tl_group_spawn", &err);
    if (!r) return err;
    if (!fn) return -EINVAL;
    if (r->finished && r->nchildren == 0) return -ESHUTDOWN;
    if (tl__rec_cancelled(r)) return -ESHUTDOWN;
    tl__loop *l = r->owner->loop;
    tl__task *t = tl__task_alloc(l, fn, arg, opts);
    if (!t) return -ENOMEM;
    t->group = r;
    t->status_out = status;
    tl__list_push(&r->children, &t->group_link);
    r->nchildren++;
    tl__task_enqueue(l, t);
    return 0;
}

/* ---- nursery.start -------------------------------------------------------- */

/* The starter was cancelled while it waited: forward the cancel and keep
 * waiting (the hook is cleared, so the rest of the wait ignores cancel)
 * for the child to get ready anyway or to end. */
static void start_cancel(tl__task *t)
{
    struct tl__start *st = t->wait_data;
    t->wait_what = "tl_group_start (cancelled; waiting for the child)";
    tl__task_cancel(st->child);
}

int tl_group_start_ex(tl_group g, const tl_spawn_opts *opts, tl_fn fn,
                      void *arg, int *status, intptr_t *value)
{
    int err;
    tl__rec *r = group_of(g, "tl_group_start", &err);
    if (!r) return err;
    if (!fn) return -EINVAL;
    tl__task *self = r->owner->loop->current;
    err = tl__checkpoint(self, "tl_group_start", __builtin_return_address(0));
    if (err < 0) return err; /* nothing spawned */
    err = tl_group_spawn_ex(g, opts, fn, arg, status);
    if (err < 0) return err;
    /* The child is the last one linked (tl_group_spawn_ex pushes). */
    struct tl__start st = {
        .starter = self,
        .child = tl__container_of(r->children.prev, tl__task, group_link),
    };
    st.child->start = &st;
    self->wait_data = &st;
    while (!st.over)
        (void)tl__park(self, start_cancel, "tl_group_start");
    self->wait_data = NULL;
    if (st.rc == 0 && value) *value = st.value;
    return st.rc;
}

int tl_group_start(tl_group g, tl_fn fn, void *arg, intptr_t *value)
{
    return tl_group_start_ex(g, NULL, fn, arg, NULL, value);
}

int tl_started(intptr_t value)
{
    tl__task *self = tl__task_self("tl_started");
    if (!self) return tl__not_task_error();
    struct tl__start *st = self->start;
    if (!st) {
        char label[48];
        tl__diag("tl_started: task %s was not started with tl_group_start, "
                 "or already called tl_started",
                 tl__task_label(self, label, sizeof label));
        return -EINVAL;
    }
    st->value = value;
    start_over(st, 0);
    return 0;
}

int tl_group_spawn_call(tl_group g, tl_call call, int *status)
{
    return tl_group_spawn_ex(g, &(tl_spawn_opts){.name = call.name}, call.fn,
                             call.arg, status);
}

int tl_group_spawn(tl_group g, tl_fn fn, void *arg)
{
    return tl_group_spawn_ex(g, NULL, fn, arg, NULL);
}

int tl_group_cancel(tl_group g)
{
    int err;
    tl__rec *r = group_of(g, "tl_group_cancel", &err);
    if (!r) return err;
    tl__group_cancel(r);
    return 0;
}

int tl_group_wait(tl_group g, int body_rc, tl_errors *errs)
{
    if (errs) *errs = (tl_errors){0};
    int err;
    tl__rec *r = group_of(g, "tl_group_wait", &err);
    if (!r) return err;
    tl__task *self = r->owner;
    if (self != self->loop->current) {
        char a[48];
        tl__diag("tl_group_wait: the group entered at %s:%d belongs to task "
                 "%s; only it can close the group", r->file, r->line,
                 tl__task_label(self, a, sizeof a));
        return -EPERM;
    }
    if (self->scope_top != r) tl__rec_pop(self, r, "tl_group_wait"); /* aborts */

    /* The body's own failure counts like a child's. */
    if (body_rc < 0 && !(body_rc == -ECANCELED && tl__rec_cancelled(r))) {
        add_error(r, self, body_rc);
        tl__group_cancel(r);
    }
    r->finished = 1;
    int waited = r->nchildren > 0;
    tl__group_drain(self, r);
    tl__rec_pop(self, r, "tl_group_wait");
    /* As tl_scope_exit: the group's own cancel was handled here. */
    if (r->cancelled && !tl__task_cancelled(self)) self->ignored_cancels = 0;

    int verdict = 0;
    if (r->nerrors)
        verdict = r->errors[0].code;
    else if (tl__task_cancelled(self) &&
             (body_rc == -ECANCELED || r->ncancelled > 0))
        verdict = -ECANCELED; /* else all completed: the cancel shows next */
    if (errs && r->nerrors) {
        errs->items = malloc(r->nerrors * sizeof *errs->items);
        if (errs->items) {
            memcpy(errs->items, r->errors, r->nerrors * sizeof *errs->items);
            errs->count = r->nerrors;
        }
    }
    tl__rec_free(self->loop, r);
    /* Invariant 2a: -ECANCELED is only returned after a yield. */
    if (verdict == -ECANCELED && !waited) tl__yield_now(self);
    return verdict;
}

int tl_gather(size_t n, const tl_call *calls, int *statuses)
{
    tl__task *self = tl__task_self("tl_gather");
    if (!self) return tl__not_task_error();
    if (n == 0) return tl__checkpoint(self, "tl_gather",
                                      __builtin_return_address(0));
    if (!calls) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!calls[i].fn) return -EINVAL; /* before touching statuses */
    /* Checkpoint first: a gatherer cancelled before the call runs none of
     * the calls. */
    int rc = tl__checkpoint(self, "tl_gather", __builtin_return_address(0));
    if (rc < 0) {
        if (statuses)
            for (size_t i = 0; i < n; i++) statuses[i] = -ECANCELED;
        return rc;
    }
    tl__loop *l = self->loop;
    int *st = statuses ? statuses : malloc(n * sizeof *st);
    if (!st) return -ENOMEM;
    tl__rec *r = tl__rec_alloc(l, self, TL__R_GATHER, "tl_gather", 0, NULL);
    if (!r) {
        if (st != statuses) free(st);
        return -ENOMEM;
    }
    /* Make every task before starting any, so -ENOMEM means none ran. */
    for (size_t i = 0; i < n; i++) {
        st[i] = 0;
        tl__task *t = tl__task_alloc(l, calls[i].fn, calls[i].arg,
                                     &(tl_spawn_opts){.name = calls[i].name});
        if (!t) {
            while (!tl__list_empty(&r->children)) {
                tl__task *c = tl__container_of(tl__list_pop(&r->children),
                                               tl__task, group_link);
                l->live--;
                tl__task_free(l, c);
            }
            tl__rec_free(l, r);
            if (st != statuses) free(st);
            return -ENOMEM;
        }
        t->group = r;
        t->status_out = &st[i];
        tl__list_push(&r->children, &t->group_link);
        r->nchildren++;
    }
    for (tl__link *x = r->children.next; x != &r->children; x = x->next)
        tl__task_enqueue(l, tl__container_of(x, tl__task, group_link));
    tl__rec_push(self, r);
    /* A cancel of the gatherer from here on reaches the children through
     * the record (tl__scope_propagate); the drain itself ignores it. */
    tl__group_drain(self, r);
    tl__rec_pop(self, r, "tl_gather");
    tl__rec_free(l, r);

    /* The children's outcome is the result, whether or not the gatherer
     * was cancelled meanwhile: the first real error in argument order
     * (errors beat cancellation), else -ECANCELED if a child unwound from
     * a cancel, else 0. */
    for (size_t i = 0; i < n && rc == 0; i++)
        if (st[i] < 0 && st[i] != -ECANCELED) rc = st[i];
    for (size_t i = 0; i < n && rc == 0; i++)
        if (st[i] == -ECANCELED) rc = -ECANCELED;
    if (st != statuses) free(st);
    return rc;
}
