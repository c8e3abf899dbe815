/* Coordination primitives: semaphore, lock, event, condition, barrier
 * (asyncio's locks.py, with tulip's cancellation rules).
 *
 * Every wait follows src/waitq.h: checkpoint, fast path, link + park with
 * a cancel hook; the waker unlinks the waiter and tl__wake()s it with its
 * result. Two invariants make "nothing lost" and "no barging" hold:
 *
 *   semaphore   _value > 0  implies  no waiters   (a release with waiters
 *                                                  hands its permit over)
 *   lock        waiters     implies  _owner != NULL (a release with waiters
 *                                                  makes the first the owner)
 *
 * so a permit or the lock is never "free" while someone queues for it,
 * and a task arriving later always queues behind the waiters.
 *
 * Differences from asyncio, all deliberate: cancellation is level-triggered
 * (acquire on a free semaphore still returns -ECANCELED in a cancelled
 * task); a woken waiter keeps what it was given even if cancelled before
 * it runs (asyncio gives it back and wakes the next); the lock has an
 * owner; a barrier's indices stay unique when waiters leave a round.
 *
 * Abandoned locks. Each task keeps the locks it holds in t->locks (heap,
 * runtime-owned, kept with its slot), added in lock_set_owner and removed
 * when ownership moves on. A task whose record is not empty when it ends
 * abandoned them: tl__sync_task_ended reports each and wakes its waiters
 * with -EOWNERDEAD. An abandoned lock has no owner but keeps _site, so
 * later acquirers are refused at once instead of queueing forever. The
 * record only ever holds a lock while the lock names the task as owner;
 * room is reserved (held_reserve) before a task can be made an owner, so
 * handing a lock to a waiter never allocates.
 */
#include "waitq.h"

#include <limits.h>
#include <stdlib.h>

/* ---- misuse ------------------------------------------------------------- */

static int bad(const char *what, const char *kind, const void *p)
{
    tl__diag("%s: %p is not a live %s (never initialised, destroyed, or "
             "another kind of object)", what, p, kind);
    return -EINVAL;
}

#define CHECK(obj, magic, what, kind)                                       \
    do {                                                                    \
        if (!(obj) || (obj)->_magic != (magic)) return bad(what, kind, obj); \
    } while (0)

/* Predicates read a bad object as "no" (after the diagnostic): returning
 * -EINVAL from a yes/no function would read as "yes". */
#define CHECK_PRED(obj, magic, what, kind)                                  \
    do {                                                                    \
        if (!(obj) || (obj)->_magic != (magic)) {                           \
            bad(what, kind, obj);                                           \
            return 0;                                                       \
        }                                                                   \
    } while (0)

static int busy(const char *what, const char *kind, const void *p)
{
    tl__diag("%s: tasks still wait on %s %p; wake them (or let them finish) "
             "before destroying it", what, kind, p);
    return -EBUSY;
}

/* ======================================================================
 * Semaphore
 * ====================================================================== */

static int sem_init(tl_sem *s, int value, int bounded)
{
    if (!s || value < 0) return -EINVAL;
    *s = (tl_sem){0};
    tl__waitq_head(&s->_waiters);
    s->_value = value;
    s->_bound = bounded ? value : -1;
    s->_magic = TL__SEM_MAGIC;
    return 0;
}

int tl_sem_init(tl_sem *s, int value) { return sem_init(s, value, 0); }
int tl_sem_init_bounded(tl_sem *s, int value) { return sem_init(s, value, 1); }

int tl_sem_destroy(tl_sem *s)
{
    CHECK(s, TL__SEM_MAGIC, "tl_sem_destroy", "tl_sem");
    if (!tl__waitq_empty(&s->_waiters))
        return busy("tl_sem_destroy", "semaphore", s);
    s->_magic = 0;
    return 0;
}

int tl_sem_acquire(tl_sem *s)
{
    tl__task *self = tl__task_self("tl_sem_acquire");
    if (!self) return tl__not_task_error();
    CHECK(s, TL__SEM_MAGIC, "tl_sem_acquire", "tl_sem");
    int rc = tl__checkpoint(self, "tl_sem_acquire",
                            __builtin_return_address(0));
    if (rc < 0) return rc;
    if (s->_value > 0) { /* no waiters then: nobody to barge past */
        s->_value--;
        return 0;
    }
    rc = tl__waitq_check_loop(&s->_waiters, "tl_sem_acquire");
    if (rc < 0) return rc;
    /* Woken with 0 by a release: the permit was handed to us. */
    return tl__waitq_park(&s->_waiters, self, s, tl__waitq_cancel,
                          "tl_sem_acquire");
}

int tl_sem_try_acquire(tl_sem *s)
{
    CHECK(s, TL__SEM_MAGIC, "tl_sem_try_acquire", "tl_sem");
    if (s->_value == 0) return -EAGAIN;
    s->_value--;
    return 0;
}

int tl_sem_release(tl_sem *s)
{
    CHECK(s, TL__SEM_MAGIC, "tl_sem_release", "tl_sem");
    int rc = tl__waitq_check_loop(&s->_waiters, "tl_sem_release");
    if (rc < 0) return rc;
    if (!tl__waitq_empty(&s->_waiters)) {
        tl__wake(tl__waitq_pop(&s->_waiters), 0); /* direct handoff */
        return 0;
    }
    if (s->_bound >= 0 && s->_value >= s->_bound) {
        tl__diag("tl_sem_release: bounded semaphore %p released too many "
                 "times (already at its initial value %d): a permit was "
                 "released that was never acquired", (void *)s, s->_bound);
        return -EOVERFLOW;
    }
    if (s->_value == INT_MAX) {
        tl__diag("tl_sem_release: semaphore %p count would overflow",
                 (void *)s);
        return -EOVERFLOW;
    }
    s->_value++;
    return 0;
}

int tl_sem_value(const tl_sem *s)
{
    CHECK(s, TL__SEM_MAGIC, "tl_sem_value", "tl_sem");
    return s->_value;
}

int tl_sem_locked(const tl_sem *s)
{
    CHECK_PRED(s, TL__SEM_MAGIC, "tl_sem_locked", "tl_sem");
    return s->_value == 0;
}

/* ======================================================================
 * Lock
 * ====================================================================== */

static bool lock_owned_by(const tl_lock *l, const tl__task *t)
{
    return t && l->_owner == t && l->_owner_gen == t->gen;
}

static bool lock_abandoned(const tl_lock *l) { return !l->_owner && l->_site; }

/* Room in t's record for one more lock: 0 or -ENOMEM. */
static int held_reserve(tl__task *t)
{
    if (t->nlocks < t->locks_cap) return 0;
    uint32_t cap = t->locks_cap ? t->locks_cap * 2 : 4;
    void **n = realloc(t->locks, cap * sizeof *n);
    if (!n) return -ENOMEM;
    t->locks = n;
    t->locks_cap = cap;
    return 0;
}

static void held_remove(tl__task *t, const tl_lock *l)
{
    /* Newest first: locks are mostly released in reverse order. */
    for (uint32_t i = t->nlocks; i-- > 0;)
        if (t->locks[i] == l) {
            t->locks[i] = t->locks[--t->nlocks];
            return;
        }
}

/* Make t (NULL: nobody) the owner; site is where t asked for it. The
 * previous owner's record forgets the lock. t must have room reserved. */
static void lock_set_owner(tl_lock *l, tl__task *t, void *site)
{
    tl__task *o = l->_owner;
    if (o && l->_owner_gen == o->gen) held_remove(o, l);
    l->_owner = t;
    l->_owner_gen = t ? t->gen : 0;
    l->_site = t ? site : NULL;
    if (t) t->locks[t->nlocks++] = l;
}

static int abandoned_error(const tl_lock *l, const char *what)
{
    char where[320];
    tl__diag("%s: lock %p was abandoned: a task ended while holding it "
             "(acquired at %s); re-initialise it with tl_lock_init once the "
             "data it guards is repaired", what, (const void *)l,
             tl__symbolize(l->_site, 1, where, sizeof where));
    return -EOWNERDEAD;
}

void tl__sync_task_ended(tl__task *t)
{
    char label[48], where[320];
    tl__task_label(t, label, sizeof label);
    while (t->nlocks) {
        tl_lock *l = t->locks[--t->nlocks];
        /* The record names only locks that name t as owner, unless the
         * user reused the lock's memory without releasing it. */
        if (l->_magic != TL__LOCK_MAGIC || !lock_owned_by(l, t)) {
            tl__diag("task %s ended holding lock %p, whose memory was since "
                     "reused or destroyed", label, (void *)l);
            continue;
        }
        size_t n = 0;
        for (tl__link *k = tl__waitq_head(&l->_waiters)->next;
             k != tl__waitq_head(&l->_waiters); k = k->next)
            n++;
        tl__diag("task %s ended holding lock %p (acquired at %s): the lock "
                 "is abandoned; %zu waiter(s) and every later acquire get "
                 "-EOWNERDEAD", label, (void *)l,
                 tl__symbolize(l->_site, 1, where, sizeof where), n);
        l->_owner = NULL; /* abandoned: no owner, _site kept */
        l->_owner_gen = 0;
        for (tl__task *w; (w = tl__waitq_pop(&l->_waiters));)
            tl__wake(w, -EOWNERDEAD);
    }
}

/* Marks (in wait_data) a condition waiter that was cancelled before any
 * notify and queues for the lock: it is woken holding it with -ECANCELED. */
static char cond_cancelled_mark;

/* Unlock on behalf of the owner: with waiters the first becomes the owner
 * and is woken holding the lock (no barging). */
static void lock_release_held(tl_lock *l)
{
    tl__task *w = tl__waitq_pop(&l->_waiters);
    lock_set_owner(l, w, w ? w->wait_site : NULL);
    if (w)
        tl__wake(w, w->wait_data == &cond_cancelled_mark ? -ECANCELED : 0);
}

int tl_lock_init(tl_lock *l)
{
    if (!l) return -EINVAL;
    *l = (tl_lock){0};
    tl__waitq_head(&l->_waiters);
    l->_magic = TL__LOCK_MAGIC;
    return 0;
}

int tl_lock_destroy(tl_lock *l)
{
    CHECK(l, TL__LOCK_MAGIC, "tl_lock_destroy", "tl_lock");
    if (!tl__waitq_empty(&l->_waiters))
        return busy("tl_lock_destroy", "lock", l);
    if (l->_owner) { /* an abandoned lock may be destroyed */
        tl__diag("tl_lock_destroy: lock %p is still held; release it "
                 "before destroying it", (void *)l);
        return -EBUSY;
    }
    l->_magic = 0;
    return 0;
}

/* The task dump's detail for a task waiting in tl_lock_acquire. */
static void lock_describe(const tl__task *t, char *buf, size_t len)
{
    const tl_lock *l = t->wait_data;
    const tl__task *o = l ? l->_owner : NULL;
    char label[48];
    char where[320];
    if (o && o->gen == l->_owner_gen)
        snprintf(buf, len, "lock %p held by task %s (slot %u), acquired at "
                 "%s", (void *)l, tl__task_label(o, label, sizeof label),
                 (unsigned)o->slot,
                 tl__symbolize(l->_site, 1, where, sizeof where));
    else
        snprintf(buf, len, "lock %p", (void *)l);
}

/* tl_lock_acquire, with the user's call site (TL_WITH_LOCK passes its
 * own caller's, not tl__held_begin's). */
static int lock_acquire(tl_lock *l, void *site)
{
    tl__task *self = tl__task_self("tl_lock_acquire");
    if (!self) return tl__not_task_error();
    CHECK(l, TL__LOCK_MAGIC, "tl_lock_acquire", "tl_lock");
    if (lock_owned_by(l, self)) {
        char label[48];
        tl__diag("tl_lock_acquire: task %s already holds lock %p (a tl_lock "
                 "is not recursive; this would wait forever)",
                 tl__task_label(self, label, sizeof label), (void *)l);
        return -EDEADLK;
    }
    int rc = tl__checkpoint(self, "tl_lock_acquire", site);
    if (rc < 0) return rc;
    if (lock_abandoned(l)) return abandoned_error(l, "tl_lock_acquire");
    if ((rc = held_reserve(self)) < 0) return rc;
    if (!l->_owner) {
        lock_set_owner(l, self, site);
        return 0;
    }
    rc = tl__waitq_check_loop(&l->_waiters, "tl_lock_acquire");
    if (rc < 0) return rc;
    self->wait_describe = lock_describe;
    /* Woken with 0 by a release: we are the owner already (site recorded
     * from wait_site); -EOWNERDEAD: the owner ended holding it. */
    self->wait_site = site;
    rc = tl__waitq_park(&l->_waiters, self, l, tl__waitq_cancel,
                        "tl_lock_acquire");
    self->wait_site = NULL;
    return rc;
}

int tl_lock_acquire(tl_lock *l)
{
    return lock_acquire(l, __builtin_return_address(0));
}

int tl_lock_try_acquire(tl_lock *l)
{
    tl__task *self = tl__task_self("tl_lock_try_acquire");
    if (!self) return tl__not_task_error();
    CHECK(l, TL__LOCK_MAGIC, "tl_lock_try_acquire", "tl_lock");
    if (l->_owner) return -EBUSY;
    if (lock_abandoned(l)) return abandoned_error(l, "tl_lock_try_acquire");
    int rc = held_reserve(self);
    if (rc < 0) return rc;
    lock_set_owner(l, self, __builtin_return_address(0));
    return 0;
}

int tl_lock_release(tl_lock *l)
{
    CHECK(l, TL__LOCK_MAGIC, "tl_lock_release", "tl_lock");
    tl__loop *lp = tl__self;
    tl__task *self = lp ? lp->current : NULL;
    if (!lock_owned_by(l, self)) {
        char label[48], olabel[48];
        tl__task *o = l->_owner;
        tl__diag("tl_lock_release: %s%s releases lock %p, which %s%s",
                 self ? "task " : "",
                 self ? tl__task_label(self, label, sizeof label)
                      : "code outside any task",
                 (void *)l, o ? "is held by task "
                            : lock_abandoned(l) ? "was abandoned by a task "
                                                  "that ended holding it"
                                                : "is not locked",
                 o ? tl__task_label(o, olabel, sizeof olabel) : "");
        return -EPERM;
    }
    int rc = tl__waitq_check_loop(&l->_waiters, "tl_lock_release");
    if (rc < 0) return rc;
    lock_release_held(l);
    return 0;
}

int tl_lock_locked(const tl_lock *l)
{
    CHECK_PRED(l, TL__LOCK_MAGIC, "tl_lock_locked", "tl_lock");
    return l->_owner != NULL || lock_abandoned(l);
}

int tl_lock_owned(const tl_lock *l)
{
    CHECK_PRED(l, TL__LOCK_MAGIC, "tl_lock_owned", "tl_lock");
    tl__loop *lp = tl__self;
    return lock_owned_by(l, lp ? lp->current : NULL);
}

/* ======================================================================
 * Event
 * ====================================================================== */

int tl_event_init(tl_event *e)
{
    if (!e) return -EINVAL;
    *e = (tl_event){0};
    tl__waitq_head(&e->_waiters);
    e->_magic = TL__EVENT_MAGIC;
    return 0;
}

int tl_event_destroy(tl_event *e)
{
    CHECK(e, TL__EVENT_MAGIC, "tl_event_destroy", "tl_event");
    if (!tl__waitq_empty(&e->_waiters))
        return busy("tl_event_destroy", "event", e);
    e->_magic = 0;
    return 0;
}

int tl_event_set(tl_event *e)
{
    CHECK(e, TL__EVENT_MAGIC, "tl_event_set", "tl_event");
    int rc = tl__waitq_check_loop(&e->_waiters, "tl_event_set");
    if (rc < 0) return rc;
    e->_set = 1;
    int n = 0;
    tl__task *w;
    while ((w = tl__waitq_pop(&e->_waiters))) {
        tl__wake(w, 0);
        n++;
    }
    return n;
}

int tl_event_clear(tl_event *e)
{
    CHECK(e, TL__EVENT_MAGIC, "tl_event_clear", "tl_event");
    e->_set = 0;
    return 0;
}

int tl_event_is_set(const tl_event *e)
{
    CHECK_PRED(e, TL__EVENT_MAGIC, "tl_event_is_set", "tl_event");
    return e->_set != 0;
}

int tl_event_wait(tl_event *e)
{
    tl__task *self = tl__task_self("tl_event_wait");
    if (!self) return tl__not_task_error();
    CHECK(e, TL__EVENT_MAGIC, "tl_event_wait", "tl_event");
    int rc = tl__checkpoint(self, "tl_event_wait",
                            __builtin_return_address(0));
    if (rc < 0) return rc;
    if (e->_set) return 0;
    rc = tl__waitq_check_loop(&e->_waiters, "tl_event_wait");
    if (rc < 0) return rc;
    return tl__waitq_park(&e->_waiters, self, e, tl__waitq_cancel,
                          "tl_event_wait");
}

/* ======================================================================
 * Condition
 * ====================================================================== */

static tl_lock *cond_lock(tl_cond *c) { return c->_lock ? c->_lock : &c->_own; }

int tl_cond_init(tl_cond *c, tl_lock *lock)
{
    if (!c) return -EINVAL;
    if (lock && lock->_magic != TL__LOCK_MAGIC)
        return bad("tl_cond_init", "tl_lock", lock);
    *c = (tl_cond){0};
    tl__waitq_head(&c->_waiters);
    c->_lock = lock;
    tl_lock_init(&c->_own);
    c->_magic = TL__COND_MAGIC;
    return 0;
}

int tl_cond_destroy(tl_cond *c)
{
    CHECK(c, TL__COND_MAGIC, "tl_cond_destroy", "tl_cond");
    if (!tl__waitq_empty(&c->_waiters))
        return busy("tl_cond_destroy", "condition", c);
    int rc = tl_lock_destroy(&c->_own);
    if (rc < 0) return rc;
    c->_magic = 0;
    return 0;
}

tl_lock *tl_cond_lock(tl_cond *c)
{
    if (!c || c->_magic != TL__COND_MAGIC) {
        bad("tl_cond_lock", "tl_cond", c);
        return NULL;
    }
    return cond_lock(c);
}

static int cond_check_held(tl_cond *c, tl__task *self, const char *what,
                           const char *verb)
{
    tl_lock *l = cond_lock(c);
    if (l->_magic != TL__LOCK_MAGIC) return bad(what, "tl_lock", l);
    if (lock_owned_by(l, self)) return 0;
    tl__diag("%s: the caller must hold the condition's lock (asyncio: "
             "'cannot %s on un-acquired lock')", what, verb);
    return -EPERM;
}

/* A waiter cancelled before any notify: it re-acquires the lock before it
 * returns, ignoring cancellation (invariant 1), so the caller's code after
 * the wait runs under the lock whatever the wait returned. The re-acquire
 * starts here, at the cancel, not when the waiter next runs: a task inside
 * tl_cond_wait is always on the condition's or the lock's queue or owns the
 * lock, so tl_cond_destroy sees it; and it queues behind the lock's
 * earlier waiters (no barging). */
static void cond_cancel(tl__task *t)
{
    tl_lock *l = cond_lock(t->wait_data);
    tl__list_remove(&t->wait_link);
    if (lock_abandoned(l)) { /* returns without the lock */
        tl__wake(t, -EOWNERDEAD);
        return;
    }
    if (!l->_owner) { /* no owner means no waiters either */
        lock_set_owner(l, t, t->wait_site);
        tl__wake(t, -ECANCELED);
        return;
    }
    t->wait_what = "tl_cond_wait (cancelled, re-acquiring the lock)";
    t->wait_data = &cond_cancelled_mark;
    tl__list_push(tl__waitq_head(&l->_waiters), &t->wait_link);
    /* Stays parked; the hook is cleared, so the rest ignores cancel. */
}

int tl_cond_wait(tl_cond *c)
{
    tl__task *self = tl__task_self("tl_cond_wait");
    if (!self) return tl__not_task_error();
    CHECK(c, TL__COND_MAGIC, "tl_cond_wait", "tl_cond");
    int rc = cond_check_held(c, self, "tl_cond_wait", "wait");
    if (rc < 0) return rc;
    rc = tl__checkpoint(self, "tl_cond_wait", __builtin_return_address(0));
    if (rc < 0) return rc; /* still holding the lock */
    rc = tl__waitq_check_loop(&c->_waiters, "tl_cond_wait");
    if (rc < 0) return rc;
    /* Releasing leaves room in our record for the re-acquire. */
    void *site = cond_lock(c)->_site;
    lock_release_held(cond_lock(c));
    /* Woken owning the lock either way: 0 notified, -ECANCELED cancelled
     * first (cond_cancel); or -EOWNERDEAD without it, if a task abandoned
     * the lock while we waited to re-acquire it. The re-acquired lock
     * keeps the site of the original acquire. */
    self->wait_site = site;
    rc = tl__waitq_park(&c->_waiters, self, c, cond_cancel, "tl_cond_wait");
    self->wait_site = NULL;
    return rc;
}

int tl_cond_wait_for(tl_cond *c, int (*pred)(void *arg), void *arg)
{
    tl__task *self = tl__task_self("tl_cond_wait_for");
    if (!self) return tl__not_task_error();
    CHECK(c, TL__COND_MAGIC, "tl_cond_wait_for", "tl_cond");
    if (!pred) return -EINVAL;
    int rc = cond_check_held(c, self, "tl_cond_wait_for", "wait");
    if (rc < 0) return rc;
    rc = tl__checkpoint(self, "tl_cond_wait_for",
                        __builtin_return_address(0));
    if (rc < 0) return rc;
    while (!pred(arg)) {
        rc = tl_cond_wait(c);
        if (rc < 0) return rc;
    }
    return 0;
}

int tl_cond_notify(tl_cond *c, int n)
{
    CHECK(c, TL__COND_MAGIC, "tl_cond_notify", "tl_cond");
    tl__loop *lp = tl__self;
    int rc = cond_check_held(c, lp ? lp->current : NULL, "tl_cond_notify",
                             "notify");
    if (rc < 0) return rc;
    rc = tl__waitq_check_loop(&c->_waiters, "tl_cond_notify");
    if (rc < 0) return rc;
    /* Wait morphing: the notifier holds the lock, so a notified waiter
     * could only queue for it anyway. Move it straight onto the lock's
     * queue, uncancellable from now on (it was notified: completed wins,
     * and the re-acquire ignores cancellation). It wakes once, owning the
     * lock, in notify order, and no task can barge in between. */
    tl_lock *l = cond_lock(c);
    tl__link *lq = tl__waitq_head(&l->_waiters);
    int woken = 0;
    tl__task *w;
    while (woken < n && (w = tl__waitq_pop(&c->_waiters))) {
        w->on_cancel = NULL;
        w->wait_what = "tl_cond_wait (notified, re-acquiring the lock)";
        w->wait_data = l;
        tl__list_push(lq, &w->wait_link);
        woken++;
    }
    return woken;
}

int tl_cond_notify_all(tl_cond *c) { return tl_cond_notify(c, INT_MAX); }

/* ======================================================================
 * Barrier
 * ====================================================================== */

int tl_barrier_init(tl_barrier *b, int parties)
{
    if (!b || parties < 1) return -EINVAL;
    *b = (tl_barrier){0};
    tl__waitq_head(&b->_waiters);
    b->_parties = parties;
    b->_magic = TL__BARRIER_MAGIC;
    return 0;
}

int tl_barrier_destroy(tl_barrier *b)
{
    CHECK(b, TL__BARRIER_MAGIC, "tl_barrier_destroy", "tl_barrier");
    if (!tl__waitq_empty(&b->_waiters))
        return busy("tl_barrier_destroy", "barrier", b);
    b->_magic = 0;
    return 0;
}

/* A waiter leaves its round: the round waits for one more arrival. */
static void barrier_cancel(tl__task *t)
{
    tl_barrier *b = t->wait_data;
    b->_count--;
    tl__waitq_cancel(t);
}

/* Wake every waiter with `result` (>= 0: its arrival index). */
static void barrier_wake_all(tl_barrier *b, int result)
{
    int i = 0;
    tl__task *w;
    while ((w = tl__waitq_pop(&b->_waiters)))
        tl__wake(w, result >= 0 ? i++ : result);
    b->_count = 0;
}

int tl_barrier_wait(tl_barrier *b)
{
    tl__task *self = tl__task_self("tl_barrier_wait");
    if (!self) return tl__not_task_error();
    CHECK(b, TL__BARRIER_MAGIC, "tl_barrier_wait", "tl_barrier");
    int rc = tl__checkpoint(self, "tl_barrier_wait",
                            __builtin_return_address(0));
    if (rc < 0) return rc;
    if (b->_broken) return TL_EBROKEN;
    rc = tl__waitq_check_loop(&b->_waiters, "tl_barrier_wait");
    if (rc < 0) return rc;
    if (b->_count + 1 == b->_parties) {
        /* We trip it: the waiters get 0..parties-2 in arrival order (the
         * list order, so indices stay unique when someone left the round,
         * unlike asyncio's count-based index), we get parties-1. */
        barrier_wake_all(b, 0);
        return b->_parties - 1;
    }
    b->_count++;
    return tl__waitq_park(&b->_waiters, self, b, barrier_cancel,
                          "tl_barrier_wait");
}

int tl_barrier_abort(tl_barrier *b)
{
    CHECK(b, TL__BARRIER_MAGIC, "tl_barrier_abort", "tl_barrier");
    int rc = tl__waitq_check_loop(&b->_waiters, "tl_barrier_abort");
    if (rc < 0) return rc;
    b->_broken = 1;
    barrier_wake_all(b, TL_EBROKEN);
    return 0;
}

int tl_barrier_reset(tl_barrier *b)
{
    CHECK(b, TL__BARRIER_MAGIC, "tl_barrier_reset", "tl_barrier");
    int rc = tl__waitq_check_loop(&b->_waiters, "tl_barrier_reset");
    if (rc < 0) return rc;
    barrier_wake_all(b, TL_EBROKEN);
    b->_broken = 0;
    return 0;
}

int tl_barrier_parties(const tl_barrier *b)
{
    CHECK(b, TL__BARRIER_MAGIC, "tl_barrier_parties", "tl_barrier");
    return b->_parties;
}

int tl_barrier_n_waiting(const tl_barrier *b)
{
    CHECK(b, TL__BARRIER_MAGIC, "tl_barrier_n_waiting", "tl_barrier");
    return b->_count;
}

int tl_barrier_broken(const tl_barrier *b)
{
    CHECK_PRED(b, TL__BARRIER_MAGIC, "tl_barrier_broken", "tl_barrier");
    return b->_broken != 0;
}

/* ======================================================================
 * TL_WITH_LOCK / TL_WITH_SEM
 * ====================================================================== */

struct tl__held tl__held_begin(int kind, void *obj, int *rcp)
{
    struct tl__held h = {0};
    h.kind = kind;
    h.obj = obj;
    int rc = kind == 1 ? lock_acquire(obj, __builtin_return_address(0))
                       : tl_sem_acquire(obj);
    if (rcp) *rcp = rc;
    if (rc == 0) h.once = h.held = 1;
    return h;
}

void tl__held_end(struct tl__held *h)
{
    if (!h->held) return;
    h->held = 0;
    if (h->kind == 1)
        (void)tl_lock_release(h->obj);
    else
        (void)tl_sem_release(h->obj);
}
