/* Tasks: the table of slots, spawn, join, detach, cancel, and the three
 * moves every suspending call is made of — checkpoint, park, wake.
 *
 * States:  READY -> RUNNING -> (WAITING -> READY -> RUNNING)* -> DONE
 * A task takes its stack when it first runs (src/loop.c) and gives it back
 * when it ends; its slot lives on until it is joined, detached or reaped by
 * its group, so a handle can always be checked against the slot's
 * generation (a stale handle is an error, never a use-after-free).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Calling a suspending function while already cancelled this many times
 * means the task ignores -ECANCELED: say so once (invariant 2a). */
#define TL__IGNORED_CANCEL_LIMIT 1000

/* ---- names -------------------------------------------------------------- */

/* The watchdog thread reads names while the loop may rewrite them (slot
 * reuse), so names are stored and loaded byte by byte with relaxed
 * atomics: a torn name in a diagnostic is harmless, a data race is not. */
void tl__task_set_name(tl__task *t, const char *name)
{
    size_t i = 0;
    if (name)
        for (; name[i] && i < sizeof t->name - 1; i++)
            __atomic_store_n(&t->name[i], name[i], __ATOMIC_RELAXED);
    __atomic_store_n(&t->name[i], '\0', __ATOMIC_RELAXED);
}

const char *tl__task_label(const tl__task *t, char *buf, size_t len)
{
    char name[sizeof t->name];
    for (size_t i = 0; i < sizeof name; i++)
        name[i] = __atomic_load_n(&t->name[i], __ATOMIC_RELAXED);
    name[sizeof name - 1] = '\0';
    if (name[0])
        snprintf(buf, len, "'%s'", name);
    else
        snprintf(buf, len, "#%u", (unsigned)t->slot);
    return buf;
}

/* ---- lookup ------------------------------------------------------------- */

tl__task *tl__task_self_slow(const char *what)
{
    tl__loop *l = tl__self;
    if (l && tl__loop_forked(l)) {
        tl__diag("%s: loop inherited across fork(); start a new tl_run in "
                 "the child", what);
        return NULL;
    }
    if (!l) {
        /* Most often another thread of a program whose loop runs
         * elsewhere: name the way in, not Python's error. */
        tl__diag("%s() called outside a tulip task, from a thread that "
                 "runs no tulip loop: from another thread, hand the work to "
                 "a loop with tl_loop_call (a task gets the handle with "
                 "tl_loop_ref); on this thread, start one with tl_run()",
                 what);
        return NULL;
    }
    if (!l->current) {
        tl__diag("%s() called outside a tulip task (the C form of 'await "
                 "outside async def'): call it from a task started by "
                 "tl_run()", what);
        return NULL;
    }
    return l->current;
}

/* The error to return when tl__task_self failed: TL_EFORK for a loop
 * inherited across fork(), TL_ENOTASK outside a task; 0 if it would not
 * fail. */
int tl__not_task_error(void)
{
    tl__loop *l = tl__self;
    if (l && tl__loop_forked(l))
        return TL_EFORK;
    return l && l->current ? 0 : TL_ENOTASK;
}

tl__task *tl__task_self_in(const tl__loop *owner, const char *object,
                           const char *what, int *err)
{
    tl__task *self = tl__task_self(what);
    if (!self) {
        *err = tl__not_task_error();
        return NULL;
    }
    if (owner && owner != self->loop) {
        tl__diag("%s: the %s belongs to loop #%u, but this thread runs loop "
                 "#%u (tasks and their objects never move between threads)",
                 what, object, (unsigned)owner->id,
                 (unsigned)self->loop->id);
        *err = -EXDEV;
        return NULL;
    }
    return self;
}

tl__task *tl__task_lookup(tl_task h, const char *what, int *err)
{
    tl__task *self = tl__task_self(what);
    if (!self) {
        *err = tl__not_task_error();
        return NULL;
    }
    tl__loop *l = self->loop;
    if (h.gen == 0) {
        tl__diag("%s: the zero task handle names no task", what);
        *err = -ESRCH;
        return NULL;
    }
    if (h.loop != l->id) {
        tl__diag("%s: task handle belongs to loop #%u, but this thread runs "
                 "loop #%u (tasks never move between threads)", what,
                 (unsigned)h.loop, (unsigned)l->id);
        *err = -EXDEV;
        return NULL;
    }
    tl__task *t = h.slot < l->nslots ? tl__slot_task(l, h.slot) : NULL;
    if (!t || t->gen != h.gen || t->state == TL__T_FREE) {
        tl__diag("%s: stale task handle (slot %u, generation %u): the task "
                 "was already joined or freed", what, (unsigned)h.slot,
                 (unsigned)h.gen);
        *err = -ESRCH;
        return NULL;
    }
    return t;
}

static tl_task handle_of(const tl__task *t)
{
    return (tl_task){.slot = t->slot, .gen = t->gen, .loop = t->loop->id};
}

/* ---- allocation --------------------------------------------------------- */

/* The task table's memory. Every record of a new chunk is written at
 * once (the free-list push below), and a million tasks write 368 MB of
 * records: page by page that is a fault per 4 KiB (13-16 us apiece on a
 * VM with shadow page tables, far less elsewhere but still the bulk of
 * spawning). So the first TABLE_HEAP_CHUNKS chunks (a few thousand tasks:
 * every small program) come from the heap, committed with one
 * MADV_POPULATE_WRITE each, and the chunks after them are cut from
 * 2 MiB-aligned regions of 2, 4, ... 32 MiB with transparent huge pages
 * asked for and committed in one call: measured on that VM, 1-2 us per
 * 4 KiB all told against 15-30 us faulted in. A region is committed
 * ahead of its use by at most its size, which is at most a tenth of the
 * table by then. Kernels without THP or populate fall back to faults.
 * Not under AddressSanitizer: its leak checker does not scan mmap'ed
 * memory, and the records own heap blocks (fail_msg, locks). */
#if defined(__SANITIZE_ADDRESS__)
#define TL_TASK_TABLE_HEAP_ONLY 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TL_TASK_TABLE_HEAP_ONLY 1
#endif
#endif

#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif

enum {
    TABLE_HEAP_CHUNKS = 4,
    TABLE_ALIGN = 2 << 20,            /* a huge page */
    TABLE_MAP_FIRST = 2 << 20,
    TABLE_MAP_MAX = 32 << 20
};

/* Commit [p, p+len)'s whole pages in one call; errno is kept. */
static void populate(void *p, size_t len)
{
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t hi = ((uintptr_t)p + len) & ~((uintptr_t)pg - 1);
    int saved = errno;
    if (pg > 0 && hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
    errno = saved;
}

#ifndef TL_TASK_TABLE_HEAP_ONLY
/* A new region of at least `need` bytes; 0 or -ENOMEM. */
static int table_region(tl__loop *l, size_t need)
{
    size_t len = l->ntbl_maps ? TABLE_MAP_FIRST << l->ntbl_maps
                              : TABLE_MAP_FIRST;
    if (len > TABLE_MAP_MAX || len < TABLE_MAP_FIRST) len = TABLE_MAP_MAX;
    while (len < need) len *= 2;
    void **maps = realloc(l->tbl_maps, (l->ntbl_maps + 1) * sizeof *maps);
    if (!maps) return -ENOMEM;
    l->tbl_maps = maps;
    size_t *lens = realloc(l->tbl_map_lens,
                           (l->ntbl_maps + 1) * sizeof *lens);
    if (!lens) return -ENOMEM;
    l->tbl_map_lens = lens;
    int saved = errno;
    /* Over-map by the alignment and cut the slack off both ends. */
    char *m = mmap(NULL, len + TABLE_ALIGN, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        errno = saved;
        return -ENOMEM;
    }
    char *a = (char *)(((uintptr_t)m + TABLE_ALIGN - 1) &
                       ~(uintptr_t)(TABLE_ALIGN - 1));
    if (a > m) munmap(m, (size_t)(a - m));
    if (a + len < m + len + TABLE_ALIGN)
        munmap(a + len, (size_t)(m + len + TABLE_ALIGN - (a + len)));
    (void)madvise(a, len, MADV_HUGEPAGE);
    populate(a, len);
    errno = saved;
    maps[l->ntbl_maps] = a;
    lens[l->ntbl_maps] = len;
    l->ntbl_maps++;
    l->tbl_cur = a;
    l->tbl_left = len;
    return 0;
}
#endif

static tl__task *chunk_alloc(tl__loop *l)
{
    size_t bytes = TL__CHUNK * sizeof(tl__task);
#ifndef TL_TASK_TABLE_HEAP_ONLY
    if (l->nchunks >= TABLE_HEAP_CHUNKS &&
        (l->tbl_left >= bytes || table_region(l, bytes) == 0)) {
        tl__task *c = (tl__task *)(void *)l->tbl_cur; /* zero: fresh map */
        l->tbl_cur += bytes;
        l->tbl_left -= bytes;
        return c;
    }
#else
    (void)l;
#endif
    tl__task *c = calloc(TL__CHUNK, sizeof *c);
    if (c) populate(c, bytes);
    return c;
}

void tl__task_table_free(tl__loop *l)
{
    for (uint32_t c = 0; c < l->nchunks; c++) {
        tl__task *ch = l->chunks[c];
        for (uint32_t i = 0; i < TL__CHUNK; i++) {
            free(ch[i].fail_msg);
            free(ch[i].locks);
        }
        int mapped = 0;
        for (uint32_t m = 0; m < l->ntbl_maps && !mapped; m++)
            mapped = (char *)ch >= (char *)l->tbl_maps[m] &&
                     (char *)ch < (char *)l->tbl_maps[m] + l->tbl_map_lens[m];
        if (!mapped) free(ch);
    }
    free(l->chunks);
    l->chunks = NULL;
    l->nchunks = 0;
    for (uint32_t m = 0; m < l->ntbl_maps; m++)
        munmap(l->tbl_maps[m], l->tbl_map_lens[m]);
    free(l->tbl_maps);
    free(l->tbl_map_lens);
    l->tbl_maps = NULL;
    l->tbl_map_lens = NULL;
    l->ntbl_maps = 0;
    l->tbl_cur = NULL;
    l->tbl_left = 0;
}

static int grow_table(tl__loop *l)
{
    if (l->nslots >= UINT32_MAX - TL__CHUNK) return -ENOMEM;
    tl__task **chunks =
        realloc(l->chunks, (l->nchunks + 1) * sizeof *chunks);
    if (!chunks) return -ENOMEM;
    l->chunks = chunks;
    tl__task *c = chunk_alloc(l);
    if (!c) return -ENOMEM;
    chunks[l->nchunks++] = c;
    /* Push in reverse so low slots are handed out first. */
    for (uint32_t i = TL__CHUNK; i-- > 0;) {
        tl__task *t = &c[i];
        t->slot = l->nslots + i;
        t->gen = 0;
        t->next_ready = l->free_slots;
        l->free_slots = t;
    }
    l->nslots += TL__CHUNK;
    return 0;
}

/* The largest generation a slot may reach. A test hook: tests lower it to
 * see retirement without 2^32 spawns. */
uint32_t tl__task_gen_limit = UINT32_MAX;

tl__task *tl__task_alloc(tl__loop *l, tl_fn fn, void *arg,
                         const tl_spawn_opts *opts)
{
    if (!l->free_slots && grow_table(l) < 0) return NULL;
    tl__task *t = l->free_slots;
    l->free_slots = t->next_ready;

    uint32_t slot = t->slot, gen = t->gen + 1; /* never wraps: see free */
    memset(t, 0, offsetof(tl__task, name));
    t->slot = slot;
    t->gen = gen;
    t->loop = l;
    t->fn = fn;
    t->arg = arg;
    t->state = TL__T_READY;
    tl__list_init(&t->wait_link);
    tl__list_init(&t->group_link);
    tl__list_init(&t->watchers);
    t->timer.index = TL__TIMER_IDLE;
    t->stack_size = opts ? opts->stack_size : 0;
    tl__task_set_name(t, opts ? opts->name : NULL);
    t->nlocks = 0;
    l->live++;
    if (l->closing) t->cancel_requested = 1; /* tl_run is tearing down */
    return t;
}

void tl__task_free(tl__loop *l, tl__task *t)
{
    free(t->fail_msg);
    t->fail_msg = NULL;
    t->state = TL__T_FREE;
    /* A handle is (slot, 32-bit generation): a generation that wrapped
     * would let a stale handle name a later task of the slot (a tight
     * spawn/join loop gets there in minutes). Free bumps it once and
     * alloc once more, so a slot that cannot take both is retired for the
     * loop's life: FREE, off the free list, every old handle refused.
     * That costs one slot per 2^31 tasks it ran. */
    if (t->gen >= tl__task_gen_limit - 1) {
        l->retired_slots++;
        return;
    }
    t->gen++;
    t->next_ready = l->free_slots;
    l->free_slots = t;
}

void tl__task_enqueue(tl__loop *l, tl__task *t)
{
    t->state = TL__T_READY;
    t->next_ready = NULL;
    if (l->runq_tail)
        l->runq_tail->next_ready = t;
    else
        l->runq_head = t;
    l->runq_tail = t;
}

/* ---- spawn / join / detach / cancel ------------------------------------- */

int tl_spawn_ex(tl_task *out, const tl_spawn_opts *opts, tl_fn fn, void *arg)
{
    if (out) *out = (tl_task){0};
    tl__task *self = tl__task_self("tl_spawn");
    if (!self) return tl__not_task_error();
    if (!fn) return -EINVAL;
    tl__loop *l = self->loop;
    tl__task *t = tl__task_alloc(l, fn, arg, opts);
    if (!t) return -ENOMEM;
    if (out)
        *out = handle_of(t);
    else
        t->detached = 1;
    tl__task_enqueue(l, t);
    return 0;
}

int tl_spawn(tl_task *out, tl_fn fn, void *arg)
{
    return tl_spawn_ex(out, NULL, fn, arg);
}

void tl__error_fill(const tl__task *t, int code, tl_error *err)
{
    memset(err, 0, sizeof *err);
    err->code = code;
    if (t->name[0])
        snprintf(err->task, sizeof err->task, "%s", t->name);
    else
        snprintf(err->task, sizeof err->task, "#%u", (unsigned)t->slot);
    if (t->fail_msg && t->fail_code == code)
        snprintf(err->message, sizeof err->message, "%s", t->fail_msg);
}

/* Join's wait was cancelled: just wake the joiner; it forwards the cancel. */
static void join_cancel(tl__task *joiner) { tl__wake(joiner, -ECANCELED); }

/* The rule (tulip.h, Model: "Cancellation"). A joiner cancelled before it
 * calls refuses at its checkpoint and consumes nothing: t stays joinable,
 * *status is not written, so a later join (from a shield) gets it. If t
 * is still running, the refusal first forwards the cancel and waits for
 * t to finish: returning while t may still write memory the joiner owns
 * would break invariant 1 (a joiner's frame is the usual home of t's arg).
 * A joiner cancelled while it waits forwards the cancel, waits the same
 * way, and then joins t like any other: the wait completed, so join
 * returns 0 and t's outcome — a result, a real error, or the -ECANCELED
 * it unwound with — is in *status; the joiner's own cancel shows at its
 * next suspending call. */
static void forward_and_wait(tl__task *self, tl__task *t)
{
    tl__task_cancel(t);
    while (t->state != TL__T_DONE)
        (void)tl__park(self, NULL, "tl_join (cancel forwarded)");
}

static int join(tl_task h, int *status, tl_error *err, void *site)
{
    int rc = 0;
    tl__task *t = tl__task_lookup(h, "tl_join", &rc);
    if (!t) return rc;
    tl__task *self = t->loop->current;
    char label[48];
    if (t == self) {
        tl__diag("tl_join: task %s tried to join itself (it would wait "
                 "forever)", tl__task_label(t, label, sizeof label));
        return -EDEADLK;
    }
    if (t->group) {
        tl__diag("tl_join: task %s belongs to a task group; the group "
                 "waits for it", tl__task_label(t, label, sizeof label));
        return -EINVAL;
    }
    if (t->detached || t->has_joiner) {
        tl__diag("tl_join: task %s is %s", tl__task_label(t, label,
                 sizeof label), t->detached ? "detached" : "already being "
                 "joined (at most one joiner)");
        return -EINVAL;
    }
    t->has_joiner = 1; /* no other joiner, detach or wait set meanwhile */
    if (tl__scope_expire(self)) {
        if (t->state != TL__T_DONE) {
            t->joiner = self;
            forward_and_wait(self, t);
            t->joiner = NULL;
        }
        t->has_joiner = 0;
        rc = tl__checkpoint(self, "tl_join", site);
        if (rc < 0) return rc; /* nothing consumed: t is still joinable */
        t->has_joiner = 1;
    }
    if (t->state != TL__T_DONE) {
        t->joiner = self;
        if (tl__park(self, join_cancel, "tl_join") == -ECANCELED)
            forward_and_wait(self, t);
        t->joiner = NULL;
    }
    if (status) *status = t->result;
    if (err) {
        if (t->result < 0)
            tl__error_fill(t, t->result, err);
        else
            memset(err, 0, sizeof *err);
    }
    t->loop->zombies--;
    tl__task_free(t->loop, t);
    return 0;
}

int tl_join_ex(tl_task h, int *status, tl_error *err)
{
    return join(h, status, err, __builtin_return_address(0));
}

int tl_join(tl_task h, int *status)
{
    return join(h, status, NULL, __builtin_return_address(0));
}

/* A failure nobody will ever see otherwise (invariant 7). */
void tl__report_unjoined(tl__task *t)
{
    char label[48];
    if (t->reported || t->result >= 0) return;
    if (t->result == -ECANCELED && t->cancel_requested) return;
    t->reported = 1;
    const char *msg = t->fail_msg && t->fail_code == t->result ? t->fail_msg
                                                                : NULL;
    tl__diag("task %s failed with -%s (%s)%s%s and nobody joined it",
             tl__task_label(t, label, sizeof label), tl_errname(t->result),
             tl_strerror(t->result), msg ? ": " : "", msg ? msg : "");
}

int tl_detach(tl_task h)
{
    int rc = 0;
    tl__task *t = tl__task_lookup(h, "tl_detach", &rc);
    if (!t) return rc;
    if (t->group || t->has_joiner || t->detached) return -EINVAL;
    t->detached = 1;
    if (t->state == TL__T_DONE) {
        tl__report_unjoined(t);
        t->loop->zombies--;
        tl__task_free(t->loop, t);
    }
    return 0;
}

bool tl__task_cancelled(const tl__task *t)
{
    return t->scope_top ? tl__rec_cancelled(t->scope_top)
                        : t->cancel_requested;
}

void tl__task_poke(tl__task *t)
{
    if (t->state == TL__T_WAITING && t->on_cancel && tl__task_cancelled(t)) {
        tl__cancel_fn fn = t->on_cancel;
        t->on_cancel = NULL;
        fn(t);
    }
}

void tl__task_cancel(tl__task *t)
{
    if (t->state == TL__T_DONE || t->state == TL__T_FREE) return;
    if (t->cancel_requested) return;
    t->cancel_requested = 1;
    tl__scope_propagate(t, NULL);
    tl__task_poke(t);
}

int tl_cancel(tl_task h)
{
    int rc = 0;
    tl__task *t = tl__task_lookup(h, "tl_cancel", &rc);
    if (!t) return rc;
    tl__task_cancel(t);
    return 0;
}

tl_task tl_current(void)
{
    tl__loop *l = tl__self;
    if (!l || !l->current) return (tl_task){0};
    return handle_of(l->current);
}

const char *tl_task_name(tl_task h, char *buf, size_t len)
{
    int rc;
    tl__task *t = tl__task_lookup(h, "tl_task_name", &rc);
    if (!t || !buf || !len) return NULL;
    if (t->name[0])
        snprintf(buf, len, "%s", t->name);
    else
        snprintf(buf, len, "task #%u", (unsigned)t->slot);
    return buf;
}

int tl_task_done(tl_task h)
{
    int rc;
    tl__task *t = tl__task_lookup(h, "tl_task_done", &rc);
    return t && t->state == TL__T_DONE;
}

int tl_cancelled(void)
{
    tl__loop *l = tl__self;
    if (!l || !l->current) return 0;
    return tl__task_cancelled(l->current) || tl__scope_expire(l->current);
}

/* ---- suspension --------------------------------------------------------- */

void tl__task_check_stack(const tl__task *t)
{
    if (t->stack && tl__stack_check(t->stack) != 0) {
        char label[48];
        tl__fatal("possible stack overflow in task %s (its stack canary "
                  "was overwritten)", tl__task_label(t, label, sizeof label));
    }
}

/* Pass the CPU from the running task `from` straight to `to` (READY, or
 * WAITING for a handoff), with the scheduler's bookkeeping: errno per task
 * (invariant 10), the watchdog's pulse, the FP check. */
static void switch_to_task(tl__task *from, tl__task *to)
{
    tl__loop *l = from->loop;
    from->saved_errno = *l->errno_loc;
    tl__fp_check(l, from);
    tl__set_running(l, to);
    *l->errno_loc = to->saved_errno;
    tl__fiber_switch(&from->fiber, &to->fiber, 0);
}

/* The batch is done and the loop iteration that would come next has
 * nothing to do but start the next one: no fd waits, watchers or queued
 * requests (the kernel is asked only for those while tasks are ready:
 * must_poll in loop.c), no post, Ctrl-C or dump flagged, no timer due (the
 * clock is read only when one is armed).
 * Then the suspending task starts that batch itself and passes the CPU
 * straight on, saving the two switches through the scheduler (a lone
 * yielding task, a pair handing a queue back and forth). Not when the
 * next task must first get a stack, not during teardown (which watches
 * for tasks that never finish), and at most TL__HANDOFF_CAP times per
 * scheduler iteration (counted with the handoffs), so the scheduler still
 * runs its iteration regularly. Returns the first task of the new batch,
 * or NULL. */
static tl__task *next_batch_here(tl__loop *l)
{
    tl__task *next = l->runq_head;
    if (!next || !next->stack || l->closing ||
        l->handoffs >= TL__HANDOFF_CAP ||
        l->io_waiters > 0 || l->io_watchers > 0 || l->io_queued ||
        l->sigint_pending ||
        atomic_load_explicit(&l->inbox_pending, memory_order_relaxed) ||
        atomic_load_explicit(&l->dump_pending, memory_order_relaxed))
        return NULL;
    if (l->timers.count && tl__timer_next(l) <= tl__loop_now(l))
        return NULL;
    l->handoffs++;
    l->batch = next->next_ready;
    l->runq_head = l->runq_tail = NULL;
    return next;
}

/* Switch from the running task to the next one of the batch, or to the
 * scheduler. The checks here run at
 * every suspension, so they are cheap: one compare for the scope frame,
 * one for the canary. */
static void suspend(tl__task *t)
{
    tl__rec *top = t->scope_top;
    if (top && tl__rec_frame_gone(top, __builtin_frame_address(0))) {
        char label[48];
        tl__fatal("task %s: the function that entered the scope at %s:%d "
                  "returned without exiting it (scope stack corrupted)",
                  tl__task_label(t, label, sizeof label), top->file,
                  top->line);
    }
    tl__task_check_stack(t);
    tl__loop *l = t->loop;
    tl__task *next = l->batch;
    /* In a child forked from a task, no other task may run: the
     * scheduler notices the fork and leaves the dead loop. */
    if (next && next->stack && !tl__loop_forked(l)) {
        l->batch = next->next_ready;
        switch_to_task(t, next);
    } else if (!next && (next = next_batch_here(l))) {
        if (next == t) /* it was alone: it runs on, as the scheduler */
            tl__set_running(l, t); /* would resume it (a watchdog pulse) */
        else
            switch_to_task(t, next);
    } else {
        tl__fiber_switch(&t->fiber, &l->sched, 0);
    }
}

int tl__park(tl__task *t, tl__cancel_fn on_cancel, const char *what)
{
    t->state = TL__T_WAITING;
    t->on_cancel = on_cancel;
    t->wait_what = what;
    t->wait_since = t->loop->tick_ns;
    /* A cancel that is already in force must not be slept through. */
    if (on_cancel && tl__task_cancelled(t)) {
        t->on_cancel = NULL;
        on_cancel(t);
    }
    suspend(t);
    t->wait_what = NULL;
    t->wait_describe = NULL;
    return t->wake_result;
}

void tl__wake(tl__task *t, int result)
{
    if (t->state != TL__T_WAITING) return;
    t->on_cancel = NULL;
    t->wake_result = result;
    tl__task_enqueue(t->loop, t);
}

void tl__yield_now(tl__task *t)
{
    tl__task_enqueue(t->loop, t);
    t->wait_what = "tl_yield";
    suspend(t);
    t->wait_what = NULL;
}

static void report_ignored(tl__task *t, const char *what, void *site)
{
    char label[48], where[512];
    t->cancel_reported = 1;
    /* The call site as addr2line takes it (module+offset): a raw address
     * of a position-independent program means nothing after it exits. */
    tl__diag("task %s ignored -ECANCELED %u times; last from %s() called "
             "at %s: check the result of suspending calls and return when "
             "cancelled", tl__task_label(t, label, sizeof label),
             (unsigned)t->ignored_cancels, what,
             tl__symbolize(site, 1, where, sizeof where));
}

int tl__checkpoint_slow(tl__task *t, const char *what, void *site)
{
    /* The fast path (no scope, no cancel) is inline in internal.h. */
    /* A deadline that passed while the task ran (no suspension since, so
     * its timer has not fired yet) counts now, not one call later. */
    if (!tl__task_cancelled(t) && !tl__scope_expire(t)) return 0;
    /* Invariant 2a: a -ECANCELED return always yields once, so a task
     * that ignores it burns its own slice but never freezes the loop. */
    if (++t->ignored_cancels >= TL__IGNORED_CANCEL_LIMIT &&
        !t->cancel_reported)
        report_ignored(t, what, site);
    /* Yield as tl__yield_now does, but name the call the task is looping
     * on, so teardown and deadlock reports say "tl_sleep", not "tl_yield". */
    tl__task_enqueue(t->loop, t);
    t->wait_what = what;
    suspend(t);
    t->wait_what = NULL;
    return -ECANCELED;
}

int tl__handoff(tl__task *self, tl__cancel_fn on_cancel, const char *what,
                tl__task *to, int to_result)
{
    tl__loop *l = self->loop;
    if (to->state != TL__T_WAITING || !to->started || !to->stack ||
        l->handoffs >= TL__HANDOFF_CAP || (on_cancel && tl__task_cancelled(self))) {
        tl__wake(to, to_result);
        return tl__park(self, on_cancel, what);
    }
    l->handoffs++;
    tl__task_check_stack(self);
    to->on_cancel = NULL;
    to->wake_result = to_result;
    self->state = TL__T_WAITING;
    self->on_cancel = on_cancel;
    self->wait_what = what;
    self->wait_since = l->tick_ns;
    switch_to_task(self, to);
    self->wait_what = NULL;
    self->wait_describe = NULL;
    return self->wake_result;
}
