/* The task dump (tl_dump): every task of a loop with its state, what it
 * waits on and since when, its scopes, its group and a backtrace; and the
 * dump signal (tl_config.dump_signal, $TULIP_DUMP_SIGNAL), Go's SIGQUIT.
 *
 * Backtraces of suspended tasks. A suspended task's registers sit on its
 * own stack (src/arch: the saved frame of tl__context_switch). The dump
 * runs a small function on that stack, below the saved frame, through
 * tl__context_peek, whose unwind info names the suspended context as its
 * caller; libgcc's unwinder (_Unwind_Backtrace), started there, then
 * walks the task's frames with the DWARF CFI every object carries by
 * default on x86-64 and AArch64 (.eh_frame). No frame pointers are
 * needed, so the library keeps the compiler's default
 * -fomit-frame-pointer and pays nothing on the switch path for this.
 * The walk needs some stack below the task's saved frame (the unwinder's
 * context is about 1-2 KiB, the frame search a few more); a task with
 * less than TL__PEEK_HEADROOM left is listed without a backtrace rather
 * than pushed into its guard page.
 *
 * The signal handler only sets a flag per loop and writes the loop's wake
 * eventfd (both async-signal-safe); the loop writes the dump at its next
 * iteration (src/core/loop.c, poll_once).
 */
#include "internal.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <unwind.h>

#define TL__BT_MAX 48
#define TL__PEEK_HEADROOM (24 * 1024)

/* ---- backtraces --------------------------------------------------------- */

struct bt {
    void *pc[TL__BT_MAX];
    int n;
    int skip;       /* frames still to drop before recording */
    int seek_peek;  /* drop frames up to tl__context_peek_ret */
    int first_ret;  /* pc[0] is a return address too (always, here) */
};

#if defined(__SANITIZE_ADDRESS__)
#define TL__NO_ASAN __attribute__((no_sanitize_address))
#else
#define TL__NO_ASAN
#endif

TL__NO_ASAN static _Unwind_Reason_Code bt_step(struct _Unwind_Context *uc,
                                               void *arg)
{
    struct bt *b = arg;
    int before = 0;
    uintptr_t ip = _Unwind_GetIPInfo(uc, &before);
    if (!ip) return _URC_END_OF_STACK;
#ifdef TL_CONTEXT_HAVE_PEEK
    if (b->seek_peek) {
        if (ip == (uintptr_t)tl__context_peek_ret) b->seek_peek = 0;
        return _URC_NO_REASON;
    }
#endif
    if (b->skip > 0) {
        b->skip--;
        return _URC_NO_REASON;
    }
    if (b->n >= TL__BT_MAX) return _URC_END_OF_STACK;
    b->pc[b->n++] = (void *)ip;
    return _URC_NO_REASON;
}

/* Not inlined, and something happens after the unwinder returns, so this
 * frame is really there (no tail call) when the caller counts frames to
 * skip. The unwinder's result is no use: it says "fatal" both when the
 * walk stops at a frame without unwind info and when bt_step stops it;
 * either way the frames collected so far are good. */
TL__NO_ASAN __attribute__((noinline)) static void bt_collect(void *arg)
{
    struct bt *b = arg;
    (void)_Unwind_Backtrace(bt_step, b);
    __asm__ volatile("" ::: "memory");
}

/* The backtrace of suspended task t, or a reason there is none. */
static const char *bt_of_suspended(const tl__task *t, struct bt *b)
{
#ifdef TL_CONTEXT_HAVE_PEEK
    const char *sp = t->fiber.ctx.sp;
    if (!t->stack || sp < t->stack->lo || sp > t->stack->hi)
        return "no saved stack";
    if ((size_t)(sp - t->stack->lo) < TL__PEEK_HEADROOM)
        return "stack nearly full; not walked";
    b->seek_peek = 1;
    tl__context_peek(&t->fiber.ctx, bt_collect, b);
    return b->n ? NULL : "unwinder found no frames";
#else
    (void)t;
    (void)b;
    return "not available with the ucontext context switch";
#endif
}

static void print_bt(FILE *f, const struct bt *b)
{
    for (int i = 0; i < b->n; i++) {
        char sym[512];
        fprintf(f, "    #%-2d %p in %s\n", i, b->pc[i],
                tl__symbolize(b->pc[i], 1, sym, sizeof sym));
    }
}

/* ---- one task ----------------------------------------------------------- */

static const char *state_name(int s)
{
    switch (s) {
    case TL__T_READY: return "ready";
    case TL__T_RUNNING: return "running";
    case TL__T_WAITING: return "waiting";
    case TL__T_DONE: return "done";
    default: return "free";
    }
}

static const char *rec_kind_name(int k)
{
    switch (k) {
    case TL__R_TIMEOUT: return "timeout";
    case TL__R_MOVE_ON: return "move_on";
    case TL__R_SHIELD: return "shield";
    case TL__R_CANCEL: return "cancel scope";
    case TL__R_GROUP: return "task group";
    case TL__R_GATHER: return "gather";
    default: return "scope";
    }
}

static double secs(int64_t ns) { return (double)ns / 1e9; }

static void print_task(FILE *f, tl__loop *l, tl__task *t, int64_t now,
                       tl__task *joining)
{
    char label[48];
    fprintf(f, "task %s (slot %u) %s", tl__task_label(t, label, sizeof label),
            (unsigned)t->slot, state_name(t->state));
    if (t->state == TL__T_DONE)
        fprintf(f, ", status %d (%s), not yet joined", t->result,
                t->result < 0 ? tl_errname(t->result) : "OK");
    else if (t->state == TL__T_READY && !t->started)
        fprintf(f, ", not started");
    if (t->cancel_requested && t->state != TL__T_DONE)
        fprintf(f, ", cancel requested");
    fputc('\n', f);

    if (t->state == TL__T_WAITING || (t->state == TL__T_READY && t->wait_what)) {
        int64_t since = now - t->wait_since;
        fprintf(f, "  %s %s", t->state == TL__T_WAITING ? "waits in"
                                                         : "yielded in",
                t->wait_what ? t->wait_what : "?");
        if (t->state == TL__T_WAITING)
            fprintf(f, " for %.3f s", secs(since > 0 ? since : 0));
        if (joining) {
            char jl[48];
            fprintf(f, ": joining task %s (slot %u, %s)",
                    tl__task_label(joining, jl, sizeof jl),
                    (unsigned)joining->slot, state_name(joining->state));
        }
        if (t->timer.index != TL__TIMER_IDLE)
            fprintf(f, ", wakes at %.3f s (in %.3f s)",
                    secs(t->timer.deadline), secs(t->timer.deadline - now));
        if (t->wait_describe) {
            char d[256] = "";
            t->wait_describe(t, d, sizeof d);
            if (d[0]) fprintf(f, ": %s", d);
        }
        if (t->state == TL__T_WAITING && !t->on_cancel)
            fprintf(f, " (not cancellable)");
        fputc('\n', f);
    }
    if (t->group) {
        tl__rec *g = t->group;
        char gl[48];
        fprintf(f, "  in the %s of task %s entered at %s:%d\n",
                rec_kind_name(g->kind),
                g->owner ? tl__task_label(g->owner, gl, sizeof gl) : "?",
                g->file ? g->file : "?", g->line);
    }
    if (t->scope_top) {
        fprintf(f, "  open scopes, innermost first:\n");
        for (tl__rec *r = t->scope_top; r; r = r->parent) {
            fprintf(f, "    %s entered at %s:%d", rec_kind_name(r->kind),
                    r->file ? r->file : "?", r->line);
            if (r->deadline < INT64_MAX / 2)
                fprintf(f, ", deadline %.3f s (%s %.3f s)",
                        secs(r->deadline),
                        r->deadline > now ? "in" : "passed",
                        secs(r->deadline > now ? r->deadline - now
                                               : now - r->deadline));
            if (r->kind == TL__R_GROUP || r->kind == TL__R_GATHER)
                fprintf(f, ", %zu child%s", r->nchildren,
                        r->nchildren == 1 ? "" : "ren");
            if (r->cancelled) fprintf(f, ", cancelled");
            fputc('\n', f);
        }
    }

    struct bt b = {0};
    const char *why = NULL;
    if (t == l->current) {
        b.skip = 2; /* bt_collect, tl__dump */
        bt_collect(&b);
        if (!b.n) why = "unwinder found no frames";
    } else if (t->stack && t->started) {
        why = bt_of_suspended(t, &b);
    } else {
        return; /* not started or finished: no stack */
    }
    if (why) {
        fprintf(f, "  (no backtrace: %s)\n", why);
    } else {
        fprintf(f, "  backtrace, innermost first:\n");
        print_bt(f, &b);
    }
}

/* ---- the dump ----------------------------------------------------------- */

__attribute__((noinline)) size_t tl__dump(tl__loop *l, FILE *out,
                                          const char *prefix)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return 0;
    int64_t now = tl__loop_now(l);
    size_t n[5] = {0}, total = 0;
    /* joined_by[slot of a joiner] = 1 + slot of the task it joins. */
    uint32_t *joins = calloc(l->nslots ? l->nslots : 1, sizeof *joins);
    for (uint32_t s = 0; s < l->nslots; s++) {
        tl__task *t = tl__slot_task(l, s);
        if (t->state == TL__T_FREE) continue;
        n[t->state]++;
        total++;
        if (joins && t->joiner && t->state != TL__T_DONE)
            joins[t->joiner->slot] = t->slot + 1;
    }
    fprintf(f, "loop #%u (%s backend, %s clock at %.3f s): %zu task%s: "
            "%zu running, %zu ready, %zu waiting, %zu done but not joined; "
            "%d thread-pool job%s in flight\n", (unsigned)l->id,
            l->backend ? l->backend->name : "no", l->virtual_clock
            ? "virtual" : "real", secs(now), total, total == 1 ? "" : "s",
            n[TL__T_RUNNING], n[TL__T_READY], n[TL__T_WAITING],
            n[TL__T_DONE], l->inflight, l->inflight == 1 ? "" : "s");
    for (uint32_t s = 0; s < l->nslots; s++) {
        tl__task *t = tl__slot_task(l, s);
        if (t->state == TL__T_FREE) continue;
        tl__task *joining = joins && joins[s] ? tl__slot_task(l, joins[s] - 1)
                                              : NULL;
        print_task(f, l, t, now, joining);
    }
    free(joins);
    if (fclose(f) != 0 || !text) {
        free(text);
        return total;
    }
    /* Prefix every line; one fwrite, so dumps of two loops do not mix
     * line by line on a shared stream. */
    size_t plen = prefix ? strlen(prefix) : 0;
    if (plen == 0) {
        fwrite(text, 1, len, out);
    } else {
        size_t lines = 0;
        for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
        char *p = malloc(len + lines * plen + 1), *w = p;
        if (p) {
            for (char *line = text; *line;) {
                char *nl = strchr(line, '\n');
                size_t ll = nl ? (size_t)(nl - line) + 1 : strlen(line);
                memcpy(w, prefix, plen);
                memcpy(w + plen, line, ll);
                w += plen + ll;
                line += ll;
            }
            fwrite(p, 1, (size_t)(w - p), out);
            free(p);
        } else {
            fwrite(text, 1, len, out);
        }
    }
    fflush(out);
    free(text);
    return total;
}

void tl__dump_diag(tl__loop *l)
{
    /* stderr is unbuffered: the whole text goes out in tl__dump's one
     * fwrite, i.e. one write(2). */
    tl__dump(l, stderr, "tulip: ");
}

int tl_dump(FILE *out)
{
    tl__loop *l = tl__self;
    if (!l) {
        tl__diag("tl_dump() called on a thread that runs no tulip loop "
                 "(call it from a task, or set tl_config.dump_signal)");
        return TL_ENOTASK;
    }
    if (!out) return -EINVAL;
    size_t n = tl__dump(l, out, NULL);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

size_t tl_task_count(void)
{
    tl__loop *l = tl__self;
    return l ? l->live : 0;
}

/* ---- the dump signal ---------------------------------------------------- */

/* Loops that asked for the dump signal. The handler may run on any
 * thread, at any time, so it only reads this array of atomics; a loop
 * leaving the table waits until no handler is inside it (hold_count) before
 * its eventfd can be closed. Guarded by table_lock for writers. */
#define TL__DUMP_LOOPS 64
static _Atomic(tl__loop *) dump_loops[TL__DUMP_LOOPS];
static _Atomic int hold_count;    /* handlers running right now */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static int installed_sig;         /* guarded by table_lock */
static int installed_users;
static struct sigaction old_action;

static void on_dump_signal(int sig)
{
    (void)sig;
    int saved = errno;
    /* seq_cst: this increment must be ordered before the loads below, as
     * tl__dump_signal_remove's store of NULL is before its load of
     * hold_count (store-load: only seq_cst orders it). */
    atomic_fetch_add(&hold_count, 1);
    unsigned gen = atomic_load_explicit(&tl__fork_gen, memory_order_relaxed);
    for (int i = 0; i < TL__DUMP_LOOPS; i++) {
        tl__loop *l = atomic_load(&dump_loops[i]);
        /* In a child after fork() the loops (and their eventfds) are the
         * parent's: leave them alone. */
        if (!l || l->fork_gen != gen) continue;
        atomic_store_explicit(&l->dump_pending, 1, memory_order_relaxed);
        tl__loop_wake(l); /* write(2) on an eventfd: async-signal-safe */
    }
    atomic_fetch_sub(&hold_count, 1);
    errno = saved;
}

static int parse_signal(const char *s)
{
    static const struct {
        const char *name;
        int sig;
    } names[] = {{"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
                 {"HUP", SIGHUP},   {"WINCH", SIGWINCH}, {"PWR", SIGPWR},
                 {"TSTP", SIGTSTP}, {"URG", SIGURG},  {"INFO", SIGPWR}};
    if (!s || !*s) return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end == '\0') return v > 0 && v < NSIG ? (int)v : -1;
    if (strncasecmp(s, "SIG", 3) == 0) s += 3;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0) return names[i].sig;
    return -1;
}

void tl__dump_signal_install(tl__loop *l, int cfg_signal)
{
    int sig = cfg_signal;
    if (sig == 0) {
        const char *e = getenv("TULIP_DUMP_SIGNAL");
        sig = parse_signal(e);
        if (sig < 0) {
            tl__diag("TULIP_DUMP_SIGNAL='%s' names no signal this tulip "
                     "knows (try SIGQUIT, SIGUSR1, SIGUSR2 or a number); "
                     "no dump signal", e);
            return;
        }
    }
    if (sig <= 0) return;
    if (sig >= NSIG || sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV ||
        sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGINT) {
        tl__diag("dump signal %d cannot be used (not catchable, a fault, or "
                 "SIGINT, which cancels main); no dump signal", sig);
        return;
    }
    pthread_mutex_lock(&table_lock);
    if (installed_users > 0 && installed_sig != sig) {
        tl__diag("dump signal %d: another loop of this process already "
                 "dumps on signal %d; this loop dumps on that one too", sig,
                 installed_sig);
        sig = installed_sig;
    }
    int slot = -1;
    for (int i = 0; i < TL__DUMP_LOOPS && slot < 0; i++)
        if (!atomic_load_explicit(&dump_loops[i], memory_order_relaxed))
            slot = i;
    if (slot < 0) {
        pthread_mutex_unlock(&table_lock);
        tl__diag("dump signal: more than %d loops asked for it; loop #%u "
                 "will not dump", TL__DUMP_LOOPS, (unsigned)l->id);
        return;
    }
    if (installed_users == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_dump_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        if (sigaction(sig, &sa, &old_action) < 0) {
            pthread_mutex_unlock(&table_lock);
            tl__diag("dump signal %d: sigaction failed; no dump signal", sig);
            return;
        }
        installed_sig = sig;
    }
    installed_users++;
    l->dump_signal = sig;
    atomic_store(&dump_loops[slot], l);
    pthread_mutex_unlock(&table_lock);
}

void tl__dump_signal_remove(tl__loop *l)
{
    if (!l->dump_signal) return;
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < TL__DUMP_LOOPS; i++)
        if (atomic_load_explicit(&dump_loops[i], memory_order_relaxed) == l)
            atomic_store(&dump_loops[i], NULL);
    if (--installed_users == 0) {
        sigaction(installed_sig, &old_action, NULL);
        installed_sig = 0;
    }
    pthread_mutex_unlock(&table_lock);
    /* A handler that read l before it left the table may still write its
     * eventfd: wait it out (a handler is a few instructions, never
     * blocks) so the fd is not closed under it. */
    while (atomic_load(&hold_count) > 0)
        sched_yield();
    l->dump_signal = 0;
}
