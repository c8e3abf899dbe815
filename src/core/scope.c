/* Scopes: deadline, move-on, shield and plain cancel scopes, the block
 * macros, wait_for, and how a cancel spreads through a task's scope stack.
 *
 * Each task has a stack of runtime-owned records (tl__rec), innermost at
 * task->scope_top. Groups and gathers are records too, so one walk answers
 * "is this task cancelled here?" (tl__task_cancelled): the first cancelled
 * record wins, a shield stops the walk, and the bottom is the task's own
 * cancel flag. Records are never freed while the loop lives (they are
 * recycled with a bumped generation), so a stale handle is detected, never
 * dereferenced into freed memory.
 *
 * Whose cancel is it (invariant 4)? A scope's exit absorbs -ECANCELED only
 * if that scope was cancelled and nothing outside it is; then a timeout
 * scope reports -ETIMEDOUT and the others 0. Any other combination passes
 * the body's result through, so an outer cancel beats an inner deadline.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void deadline_fire(tl__loop *l, tl__timer *tm);

/* The return address saved in a frame record ({fp, lr} at the frame
 * pointer on x86-64 and AArch64), or NULL where the layout is unknown.
 * Frames entering scopes always have a frame pointer: the enter macros
 * take __builtin_frame_address(0), which forces one. */
#if defined(__SANITIZE_ADDRESS__)
__attribute__((no_sanitize_address))
#endif
static void *frame_ret_slot(const void *frame)
{
#if defined(__x86_64__) || defined(__aarch64__)
    if (!frame) return NULL;
    /* A plain load (not memcpy, which ASan intercepts even here): the
     * slot may belong to a dead frame, which is the point. */
    return *(void *const *)((const char *)frame + sizeof(void *));
#else
    (void)frame;
    return NULL;
#endif
}

bool tl__rec_frame_gone(const tl__rec *r, const void *sp)
{
    if (!r->frame) return false;
    if ((const char *)sp > (const char *)r->frame) return true;
    return r->frame_ret && frame_ret_slot(r->frame) != r->frame_ret;
}

tl__rec *tl__rec_alloc(tl__loop *l, tl__task *owner, int kind,
                       const char *file, int line, void *frame)
{
    tl__rec *r = l->free_recs;
    if (r) {
        l->free_recs = r->parent;
    } else {
        r = calloc(1, sizeof *r);
        if (!r) return NULL;
        r->gen = 1;
    }
    r->parent = NULL;
    r->owner = owner;
    r->kind = (uint8_t)kind;
    r->live = 1;
    r->cancelled = 0;
    r->finished = 0;
    r->deadline = INT64_MAX / 2;
    tl__timer_init(&r->timer, deadline_fire);
    r->file = file;
    r->line = line;
    r->frame = frame;
    r->frame_ret = frame_ret_slot(frame);
    tl__list_init(&r->children);
    r->nchildren = 0;
    r->waiter = NULL;
    r->nerrors = 0;
    r->ncancelled = 0;
    return r;
}

void tl__rec_free(tl__loop *l, tl__rec *r)
{
    if (r->timer.index != TL__TIMER_IDLE) tl__timer_disarm(l, &r->timer);
    r->live = 0;
    r->gen++;
    r->owner = NULL;
    r->parent = l->free_recs;
    l->free_recs = r;
}

void tl__rec_push(tl__task *t, tl__rec *r)
{
    r->parent = t->scope_top;
    t->scope_top = r;
}

void tl__rec_pop(tl__task *t, tl__rec *r, const char *what)
{
    if (t->scope_top != r) {
        tl__rec *top = t->scope_top;
        char label[48];
        tl__fatal("%s: task %s exits the scope entered at %s:%d, but the "
                  "innermost open scope (entered at %s:%d) was never exited "
                  "(scope stack corrupted)", what,
                  tl__task_label(t, label, sizeof label), r->file, r->line,
                  top ? top->file : "?", top ? top->line : 0);
    }
    t->scope_top = r->parent;
}

/* Is the owner cancelled as seen from inside record r: r or an enclosing
 * record cancelled, or the owner task itself (tl_cancel, its group), with
 * no shield in between? The one walk behind tl__task_cancelled too. */
bool tl__rec_cancelled(const tl__rec *r)
{
    const tl__task *owner = r->owner;
    for (; r; r = r->parent) {
        if (r->cancelled) return true;
        if (r->kind == TL__R_SHIELD) return false;
    }
    return owner->cancel_requested;
}

void tl__scope_propagate(tl__task *t, tl__rec *r)
{
    /* Groups opened above r, with no shield between them and r, lose
     * their children too (Trio: a nursery's children live inside the
     * nursery's enclosing cancel scopes). */
    size_t shields = 0;
    for (tl__rec *x = t->scope_top; x && x != r; x = x->parent)
        if (x->kind == TL__R_SHIELD) shields++;
    for (tl__rec *x = t->scope_top; x && x != r; x = x->parent) {
        if (x->kind == TL__R_SHIELD) {
            shields--;
            continue;
        }
        if (shields == 0 &&
            (x->kind == TL__R_GROUP || x->kind == TL__R_GATHER))
            tl__group_cancel_children(x);
    }
}

static void cancel_record(tl__rec *r)
{
    if (r->cancelled) return;
    r->cancelled = 1;
    if (r->timer.index != TL__TIMER_IDLE)
        tl__timer_disarm(r->owner->loop, &r->timer);
    tl__scope_propagate(r->owner, r);
    tl__task_poke(r->owner);
}

static void deadline_fire(tl__loop *l, tl__timer *tm)
{
    (void)l;
    cancel_record(tl__container_of(tm, tl__rec, timer));
}

bool tl__scope_expire(tl__task *t)
{
    int64_t now = -1; /* read lazily: most scopes have no deadline */
    for (tl__rec *r = t->scope_top; r; r = r->parent) {
        if (r->kind == TL__R_SHIELD) break;
        if (r->cancelled || r->timer.index == TL__TIMER_IDLE) continue;
        if (now < 0) now = tl__loop_now(t->loop);
        if (r->deadline <= now) cancel_record(r); /* fire it early */
    }
    return tl__task_cancelled(t);
}

static int arm_deadline(tl__rec *r, int64_t deadline)
{
    tl__loop *l = r->owner->loop;
    r->deadline = deadline; /* kept after the timer fires (asyncio when()) */
    if (deadline >= INT64_MAX / 2) {
        tl__timer_disarm(l, &r->timer);
        return 0;
    }
    if (deadline <= tl__loop_now(l)) {
        /* Already past: cancelled from the first suspending call on. */
        cancel_record(r);
        return 0;
    }
    return tl__timer_arm(l, &r->timer, deadline);
}

static int deadline_from(const tl__loop *l, double t, int absolute,
                         const char *what, int64_t *out)
{
    return absolute ? tl__time_at(t, what, out)
                    : tl__time_after(l, t, what, out);
}

/* A failed enter: the zero record with the reason in gen, so that
 * tl_scope_exit (and the block macros) can hand it back. */
static tl_scope failed_scope(int err)
{
    return (tl_scope){.rec = NULL, .gen = (uint64_t)-(int64_t)err};
}

static int failed_scope_error(tl_scope s)
{
    return s.gen ? (int)-(int64_t)s.gen : 0;
}

tl_scope tl__scope_enter(int kind, double t, int absolute, const char *file,
                         int line, void *frame)
{
    tl__task *self = tl__task_self("tl_scope_enter");
    if (!self) return failed_scope(tl__not_task_error());
    if (kind < TL__R_TIMEOUT || kind > TL__R_CANCEL)
        return failed_scope(-EINVAL);
    int64_t deadline = TL__FOREVER;
    if (kind == TL__R_TIMEOUT || kind == TL__R_MOVE_ON) {
        int rc = deadline_from(self->loop, t, absolute,
                               kind == TL__R_TIMEOUT ? "tl_timeout_enter"
                                                     : "tl_move_on_enter",
                               &deadline);
        if (rc < 0) return failed_scope(rc);
    }
    tl__rec *r = tl__rec_alloc(self->loop, self, kind, file, line, frame);
    if (!r) return failed_scope(-ENOMEM);
    tl__rec_push(self, r);
    if (kind == TL__R_TIMEOUT || kind == TL__R_MOVE_ON) {
        int rc = arm_deadline(r, deadline);
        if (rc < 0) {
            tl__rec_pop(self, r, "tl_scope_enter");
            tl__rec_free(self->loop, r);
            return failed_scope(rc);
        }
    }
    return (tl_scope){.rec = r, .gen = r->gen};
}

/* Resolve a scope handle; owner_only: the caller must be the owner. */
static tl__rec *scope_of(tl_scope s, const char *what, int owner_only)
{
    tl__task *self = tl__task_self(what);
    if (!self) return NULL;
    tl__rec *r = s.rec;
    if (!r) {
        tl__diag("%s: the zero scope handle (did the enter fail?)", what);
        return NULL;
    }
    if (r->gen != s.gen || !r->live || r->owner->loop != self->loop) {
        tl__diag("%s: stale scope handle (the scope was already exited)",
                 what);
        return NULL;
    }
    if (r->kind == TL__R_GROUP || r->kind == TL__R_GATHER) {
        tl__diag("%s: that handle is a task group; use tl_group_*", what);
        return NULL;
    }
    if (owner_only && r->owner != self) {
        char a[48], b[48];
        tl__diag("%s: the scope entered at %s:%d belongs to task %s, not to "
                 "the running task %s", what, r->file, r->line,
                 tl__task_label(r->owner, a, sizeof a),
                 tl__task_label(self, b, sizeof b));
        return NULL;
    }
    return r;
}

int tl_scope_exit(tl_scope s, int rc)
{
    /* The enter failed (and said why): its error is the scope's result. */
    if (!s.rec && failed_scope_error(s)) return failed_scope_error(s);
    tl__rec *r = scope_of(s, "tl_scope_exit", 1);
    if (!r) return s.rec ? -ESRCH : rc;
    tl__task *self = r->owner;
    tl__rec_pop(self, r, "tl_scope_exit");
    /* The task handled this scope's cancel and left it: the cancels it met
     * inside were not ignored (the count is for a task that keeps calling
     * while a cancel stays in force, invariant 2a). */
    if (r->cancelled && !tl__task_cancelled(self)) self->ignored_cancels = 0;
    int verdict = rc;
    if (r->cancelled && rc == -ECANCELED && !tl__task_cancelled(self))
        verdict = r->kind == TL__R_TIMEOUT ? -ETIMEDOUT : 0;
#ifndef NDEBUG
    else if (r->cancelled && rc < 0 && rc != -ECANCELED &&
             !tl__task_cancelled(self))
        tl__diag("scope entered at %s:%d was cancelled but its body returned "
                 "-%s, not -ECANCELED: a callee replaced -ECANCELED (unless "
                 "a task group's real error beat the cancel)",
                 r->file, r->line, tl_errname(rc));
#endif
    tl__rec_free(self->loop, r);
    return verdict;
}

int tl_scope_reschedule_at(tl_scope s, double when)
{
    tl__rec *r = scope_of(s, "tl_scope_reschedule", 0);
    if (!r) return -ESRCH;
    if (r->kind != TL__R_TIMEOUT && r->kind != TL__R_MOVE_ON) return -EINVAL;
    if (r->cancelled) return -EINVAL; /* asyncio: reschedule after expiry */
    int64_t deadline;
    int rc = deadline_from(r->owner->loop, when, 1, "tl_scope_reschedule_at",
                           &deadline);
    return rc < 0 ? rc : arm_deadline(r, deadline);
}

int tl_scope_reschedule(tl_scope s, double seconds)
{
    tl__rec *r = scope_of(s, "tl_scope_reschedule", 0);
    if (!r) return -ESRCH;
    if (r->kind != TL__R_TIMEOUT && r->kind != TL__R_MOVE_ON) return -EINVAL;
    if (r->cancelled) return -EINVAL;
    int64_t deadline;
    int rc = deadline_from(r->owner->loop, seconds, 0, "tl_scope_reschedule",
                           &deadline);
    return rc < 0 ? rc : arm_deadline(r, deadline);
}

double tl_scope_deadline(tl_scope s)
{
    tl__rec *r = scope_of(s, "tl_scope_deadline", 0);
    if (!r) return NAN;
    if (r->deadline >= INT64_MAX / 2) return INFINITY;
    return (double)r->deadline / 1e9;
}

int tl_scope_cancel(tl_scope s)
{
    tl__rec *r = scope_of(s, "tl_scope_cancel", 0);
    if (!r) return -ESRCH;
    cancel_record(r);
    return 0;
}

int tl_scope_cancel_called(tl_scope s)
{
    tl__rec *r = scope_of(s, "tl_scope_cancel_called", 0);
    return r && r->cancelled;
}

int tl_wait_for(tl_call call, double seconds)
{
    if (!call.fn) return -EINVAL;
    int64_t unused;
    if (isnan(seconds)) return tl__time_at(seconds, "tl_wait_for", &unused);
    tl_scope s = tl__scope_enter(TL__R_TIMEOUT, seconds, 0, "tl_wait_for", 0,
                                 __builtin_frame_address(0));
    if (!s.rec) return failed_scope_error(s); /* the call never ran */
    return tl_scope_exit(s, call.fn(call.arg));
}

/* ---- block macros ------------------------------------------------------- */

struct tl__with tl__with_begin(int kind, double t, int *rcp, tl_group *g,
                               const char *file, int line, void *frame)
{
    struct tl__with w = {0};
    w.rcp = rcp;
    if (rcp) *rcp = 0;
    if (kind == TL__R_GROUP) {
        int rc = tl__group_enter(g, file, line, frame);
        if (rc < 0) {
            if (rcp) *rcp = rc;
            return w;
        }
        w.group = g;
        w.once = 1;
        return w;
    }
    w.scope = tl__scope_enter(kind, t, 0, file, line, frame);
    if (!w.scope.rec) { /* the body does not run */
        if (rcp) *rcp = failed_scope_error(w.scope);
        return w;
    }
    w.once = 1;
    return w;
}

void tl__with_end(struct tl__with *w)
{
    int body = w->rcp ? *w->rcp : 0, verdict;
    if (w->group) {
        tl_errors errs = {0};
        verdict = tl_group_wait(*w->group, body, &errs);
        if (errs.count > 1) tl_errors_print(&errs, stderr);
        tl_errors_free(&errs);
    } else if (w->scope.rec) {
        verdict = tl_scope_exit(w->scope, body);
    } else {
        return; /* the enter failed; *rcp already holds why */
    }
    if (w->rcp) *w->rcp = verdict;
}

/* ---- a task returned with scopes open ------------------------------------ */

void tl__scopes_unwind(tl__task *t)
{
    char label[48];
    while (t->scope_top) {
        tl__rec *r = t->scope_top;
        r->frame = NULL; /* the entering frame is gone; don't trip on it */
        if (r->kind == TL__R_GROUP) {
            tl__diag("task %s returned with the task group entered at %s:%d "
                     "still open; cancelling and waiting for its children",
                     tl__task_label(t, label, sizeof label), r->file,
                     r->line);
            /* The status pointers were promised valid only until
             * tl_group_wait returned; it never will, and they may point
             * into the frame that returned (on this very stack). */
            for (tl__link *n = r->children.next; n != &r->children;
                 n = n->next)
                tl__container_of(n, tl__task, group_link)->status_out = NULL;
            tl__group_cancel(r);
            tl__group_drain(t, r);
            for (size_t i = 0; i < r->nerrors; i++)
                tl__diag("  lost failure: task '%s': -%s%s%s",
                         r->errors[i].task, tl_errname(r->errors[i].code),
                         r->errors[i].message[0] ? ": " : "",
                         r->errors[i].message);
        } else {
            tl__diag("task %s returned without exiting the scope entered at "
                     "%s:%d", tl__task_label(t, label, sizeof label),
                     r->file, r->line);
        }
        t->scope_top = r->parent;
        tl__rec_free(t->loop, r);
    }
}
