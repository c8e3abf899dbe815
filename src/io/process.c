/* Subprocesses (include/tulip/process.h): posix_spawn + pidfd.
 *
 * Why posix_spawn. glibc's posix_spawn clones with CLONE_VM | CLONE_VFORK
 * on a stack of its own and execs at once; the child never runs a copy of
 * the parent's code, so it can never re-enter a loop (no atfork handler
 * runs, no lock taken by another thread can be held in it), and exec
 * failures come back as posix_spawn's return value (ENOENT for a missing
 * program) instead of a child that exits 127. The pidfd comes right after
 * from pidfd_open: the child is ours and unreaped, so its pid cannot be
 * reused in between (unless SIGCHLD is ignored: see the header).
 *
 * Fds. Every pipe is made close-on-exec, and both ends are kept at 3 or
 * above, so the dup2 file actions into 0, 1, 2 never overwrite another
 * of our own ends (a program that closed its stdin gets fd 0 from pipe2).
 * The parent's ends and the pidfd are announced to the I/O layer as fresh
 * (tl__fd_fresh): the kernel just handed out those numbers, so a record
 * left under one of them by a close behind tulip's back is forgotten,
 * never inherited. The child's ends are closed here once the child holds
 * them. Any failure before the child exists closes what was made; after
 * it (pidfd_open or a stream failing), the child is killed and reaped at
 * once: nothing leaks, no zombie remains.
 *
 * Waiting. One task at a time waits on the pidfd's readiness (the
 * "poller": a readiness slot takes one waiter); the others wait on
 * `changed`, an event pulsed (set, then cleared) whenever the child is
 * reaped, the poller leaves, or a task leaves a call on p. Each waiter
 * loops on "reaped? else become the poller, else wait for a pulse", so a
 * cancelled poller hands the pidfd over to the next waiter. Reaping is
 * waitid(P_PIDFD, WEXITED | WNOHANG): never a blocking call on the loop.
 *
 * Closing. tl_process_close marks p closing, closes its streams (waking
 * their readers), kills the child if it has not ended, and then, shielded,
 * waits until the child was reaped and no task is inside a call on p
 * (`inside`), before it ends the streams and frees p.
 */

#include "io/io.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

struct tl_process {
    tl__loop *loop;
    pid_t pid;
    int pidfd;
    int status;          /* the child's status once reaped, or -ECHILD */
    uint8_t reaped;      /* waitid took it (or someone else did: -ECHILD) */
    uint8_t closing;     /* tl_process_close started */
    uint8_t communicating;
    tl__task *poller;    /* the task parked on the pidfd, or NULL */
    int inside;          /* tasks inside wait / communicate */
    tl_event changed;    /* pulsed: reaped, poller left, a task left */
    tl_stream *io[3];    /* stdin, stdout, stderr streams (pipes) or NULL */
};

/* ---- small helpers ----------------------------------------------------- */

static int sys_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int sys_pidfd_send_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

static void pulse(tl_process *p)
{
    (void)tl_event_set(&p->changed);
    (void)tl_event_clear(&p->changed);
}

static int status_of(const siginfo_t *si)
{
    if (si->si_code == CLD_EXITED) return si->si_status & 0xff;
    return TL_PROCESS_SIGNALED_BASE + si->si_status; /* KILLED, DUMPED */
}

/* Reap p if its child has ended (never blocks unless `block`). Returns
 * the status, -EAGAIN (still running), -ECHILD, -errno. */
static int reap(tl_process *p, bool block)
{
    if (p->reaped) return p->status;
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        int r = waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si,
                       WEXITED | (block ? 0 : WNOHANG));
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == ECHILD) {
                p->reaped = 1;
                p->status = -ECHILD;
                return -ECHILD;
            }
            return -errno;
        }
        if (si.si_pid == 0) return -EAGAIN;
        p->reaped = 1;
        p->status = status_of(&si);
        return p->status;
    }
}

/* Wait, as the poller or for a pulse, until p is reaped. Returns the
 * status, -ECHILD, -ECANCELED, -errno. SUSPENDS. */
static int wait_reaped(tl_process *p)
{
    for (;;) {
        int rc = reap(p, false);
        if (rc != -EAGAIN) return rc;
        if (!p->poller) {
            p->poller = p->loop->current;
            rc = tl_fd_wait(p->pidfd, TL_READABLE);
            p->poller = NULL;
            pulse(p); /* the next waiter may take the pidfd over */
            if (rc < 0) return rc;
            continue;
        }
        rc = tl_event_wait(&p->changed);
        if (rc < 0) return rc;
    }
}

/* A child that must not outlive a failed spawn: SIGKILL and reap it now
 * (it has only just exec'ed; its death takes microseconds). */
static void kill_and_reap_now(pid_t pid)
{
    (void)kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

/* A close-on-exec pipe with both ends at 3 or above. 0 or -errno (then
 * nothing is left open). */
static int make_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 3) continue;
        int nfd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (nfd < 0) {
            int e = -errno;
            close(fds[0]);
            close(fds[1]);
            return e;
        }
        close(fds[i]);
        fds[i] = nfd;
    }
    return 0;
}

static int check_mode(int mode, int fd, int which)
{
    switch (mode) {
    case TL_PROCESS_INHERIT:
    case TL_PROCESS_PIPE:
    case TL_PROCESS_DEVNULL:
        return 0;
    case TL_PROCESS_FD:
        return fd >= 0 ? 0 : -EINVAL;
    case TL_PROCESS_STDOUT:
        return which == 2 ? 0 : -EINVAL;
    default:
        return -EINVAL;
    }
}

/* ---- spawn ------------------------------------------------------------- */

/* File actions and attributes for opts; `theirs` are the child's pipe
 * ends. Returns 0 or a positive errno (posix_spawn's convention). */
static int build(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at,
                 const tl_process_opts *o, const int theirs[3])
{
    const int mode[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
    const int ufd[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
    int e = 0;
    for (int i = 0; i < 3 && !e; i++) {
        switch (mode[i]) {
        case TL_PROCESS_PIPE:
            e = posix_spawn_file_actions_adddup2(fa, theirs[i], i);
            break;
        case TL_PROCESS_DEVNULL:
            e = posix_spawn_file_actions_addopen(
                fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
            break;
        case TL_PROCESS_FD:
            e = posix_spawn_file_actions_adddup2(fa, ufd[i], i);
            break;
        case TL_PROCESS_STDOUT: /* after stdout is in place */
            e = posix_spawn_file_actions_adddup2(fa, 1, 2);
            break;
        default:
            break;
        }
    }
    if (!e && o->cwd) {
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 29)
        e = posix_spawn_file_actions_addchdir_np(fa, o->cwd);
#else
        e = ENOSYS;
#endif
    }
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
    /* Python's close_fds: the child gets 0, 1, 2 and nothing else. */
    if (!e && !(o->flags & TL_PROCESS_KEEP_FDS))
        e = posix_spawn_file_actions_addclosefrom_np(fa, 3);
#endif
    if (e) return e;
    /* The loop's thread blocks SIGPIPE (for tl_run's life) and whatever
     * its tl_signals watchers wait for, and the program may ignore
     * SIGPIPE: a child starts with none of it — an empty mask, SIGPIPE
     * and SIGXFSZ at their defaults (Python's restore_signals) — so `yes
     * | head` ends and SIGTERM kills (process.h, "Signals in the
     * child"). Handlers need nothing: exec resets them. */
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    sigaddset(&dfl, SIGXFSZ);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
#ifdef POSIX_SPAWN_SETSID
    if (o->flags & TL_PROCESS_NEW_SESSION) flags |= POSIX_SPAWN_SETSID;
#endif
    if ((e = posix_spawnattr_setsigmask(at, &none))) return e;
    if ((e = posix_spawnattr_setsigdefault(at, &dfl))) return e;
    return posix_spawnattr_setflags(at, flags);
}

/* A spawn that failed once its input was checked: the code, with a
 * message naming the program (and the directory), so "-ENOENT" says
 * which of the two is missing to whoever prints tl_fail_message. */
static int spawn_failed(const tl_process_opts *o, int rc)
{
    if (o->cwd)
        return tl_fail(rc, "spawn %s (in %s): %s", o->argv[0], o->cwd,
                       tl_strerror(rc));
    return tl_fail(rc, "spawn %s: %s", o->argv[0], tl_strerror(rc));
}

int tl_process_spawn(tl_process **out, const tl_process_opts *o)
{
    if (out) *out = NULL;
    tl__task *self = tl__task_self("tl_process_spawn");
    if (!self) return tl__not_task_error();
    if (!out || !o || !o->argv || !o->argv[0]) return -EINVAL;
    if (o->flags & ~(TL_PROCESS_KEEP_FDS | TL_PROCESS_NEW_SESSION))
        return -EINVAL;
#ifndef POSIX_SPAWN_SETSID
    if (o->flags & TL_PROCESS_NEW_SESSION) return -ENOSYS;
#endif
    const int mode[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
    const int ufd[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
    for (int i = 0; i < 3; i++)
        if (check_mode(mode[i], ufd[i], i) < 0) return -EINVAL;
    tl__loop *l = self->loop;

    tl_process *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->loop = l;
    p->pidfd = -1;
    (void)tl_event_init(&p->changed);

    int mine[3] = {-1, -1, -1}, theirs[3] = {-1, -1, -1};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (mode[i] != TL_PROCESS_PIPE) continue;
        int fds[2];
        rc = make_pipe(fds);
        if (rc < 0) break;
        /* stdin: the child reads fds[0]; stdout, stderr: it writes fds[1] */
        mine[i] = i == 0 ? fds[1] : fds[0];
        theirs[i] = i == 0 ? fds[0] : fds[1];
    }
    pid_t pid = 0;
    if (rc == 0) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        int e = posix_spawn_file_actions_init(&fa);
        if (!e && (e = posix_spawnattr_init(&at)))
            posix_spawn_file_actions_destroy(&fa);
        if (!e) {
            e = build(&fa, &at, o, theirs);
            char *const *envp = o->envp ? (char *const *)o->envp : environ;
            if (!e)
                e = posix_spawnp(&pid, o->argv[0], &fa, &at,
                                 (char *const *)o->argv, envp);
            posix_spawnattr_destroy(&at);
            posix_spawn_file_actions_destroy(&fa);
        }
        rc = -e;
    }
    for (int i = 0; i < 3; i++)
        if (theirs[i] >= 0) close(theirs[i]); /* the child has its own */
    if (rc == 0) {
        p->pid = pid;
        p->pidfd = sys_pidfd_open(pid);
        if (p->pidfd < 0) {
            rc = -errno;
            kill_and_reap_now(pid);
        }
    }
    if (rc < 0) {
        for (int i = 0; i < 3; i++)
            if (mine[i] >= 0) close(mine[i]);
        (void)tl_event_destroy(&p->changed);
        free(p);
        return spawn_failed(o, rc);
    }
    /* The kernel just gave out these numbers: no old record may stand. */
    tl__fd_fresh(l, p->pidfd, 0, 0);
    for (int i = 0; i < 3; i++) {
        if (mine[i] < 0) continue;
        tl__fd_fresh(l, mine[i], 0, 0);
        rc = tl_stream_open(&p->io[i], mine[i], o->stream_opts);
        if (rc < 0) {
            close(mine[i]);
            for (int j = i + 1; j < 3; j++)
                if (mine[j] >= 0) close(mine[j]);
            break;
        }
    }
    if (rc < 0) {
        kill_and_reap_now(pid);
        for (int i = 0; i < 3; i++)
            if (p->io[i]) (void)tl_stream_wait_closed(p->io[i]);
        (void)tl_close(p->pidfd);
        (void)tl_event_destroy(&p->changed);
        free(p);
        return spawn_failed(o, rc);
    }
    *out = p;
    return 0;
}

/* ---- accessors, poll, signals ------------------------------------------ */

pid_t tl_process_pid(const tl_process *p) { return p ? p->pid : 0; }
tl_stream *tl_process_stdin(const tl_process *p) { return p ? p->io[0] : NULL; }
tl_stream *tl_process_stdout(const tl_process *p) { return p ? p->io[1] : NULL; }
tl_stream *tl_process_stderr(const tl_process *p) { return p ? p->io[2] : NULL; }

int tl_process_poll(tl_process *p)
{
    if (!p) return -EINVAL;
    int rc = reap(p, false);
    if (p->reaped) pulse(p);
    return rc;
}

int tl_process_signal(tl_process *p, int sig)
{
    if (!p || sig < 0 || sig >= NSIG) return -EINVAL;
    if (p->reaped) return -ESRCH;
    if (sys_pidfd_send_signal(p->pidfd, sig) < 0) return -errno;
    return 0;
}

int tl_process_terminate(tl_process *p) { return tl_process_signal(p, SIGTERM); }
int tl_process_kill(tl_process *p) { return tl_process_signal(p, SIGKILL); }

/* ---- wait -------------------------------------------------------------- */

/* The prologue of wait and communicate: the loop check, closing, the
 * cancellation point; then p->inside counts the caller. */
static int enter(tl_process *p, const char *what, void *site)
{
    int err = 0;
    if (!p) return -EINVAL;
    tl__task *self = tl__task_self_in(p->loop, "process", what, &err);
    if (!self) return err;
    if (p->closing) return TL_ECLOSED;
    int rc = tl__checkpoint(self, what, site);
    if (rc < 0) return rc;
    if (p->closing) return TL_ECLOSED;
    p->inside++;
    return 0;
}

/* The last thing a call on p does: after it, p may be freed. */
static void leave(tl_process *p)
{
    p->inside--;
    pulse(p);
}

int tl_process_wait(tl_process *p)
{
    int rc = enter(p, "tl_process_wait", __builtin_return_address(0));
    if (rc < 0) return rc;
    rc = wait_reaped(p);
    leave(p);
    return rc;
}

/* ---- communicate ------------------------------------------------------- */

#define CHUNK (64 * 1024)

typedef struct comm {
    tl_process *p;
    const char *in;
    size_t len;
    char *buf[2];
    size_t n[2];
} comm;

static int feed(void *arg)
{
    comm *c = arg;
    /* Taken out of p first: only this task ends it now. */
    tl_stream *s = c->p->io[0];
    c->p->io[0] = NULL;
    int rc = 0;
    for (size_t off = 0; off < c->len && rc == 0;) {
        size_t k = c->len - off < CHUNK ? c->len - off : CHUNK;
        rc = tl_stream_write(s, c->in + off, k);
        if (rc == 0) {
            off += k;
            rc = tl_stream_drain(s);
        }
    }
    int wrc = tl_stream_wait_closed(s); /* closes stdin: the child's EOF */
    if (rc == 0) rc = wrc;
    /* The child closed its stdin early (head): what it did not read is
     * dropped, as asyncio's communicate does. */
    if (rc == -EPIPE || rc == -ECONNRESET) rc = 0;
    return rc;
}

static int collect(comm *c, int i)
{
    tl_stream *s = c->p->io[i + 1];
    size_t cap = 0;
    for (;;) {
        if (cap - c->n[i] < CHUNK + 1) {
            size_t ncap = cap ? cap * 2 : 2 * CHUNK;
            char *nb = realloc(c->buf[i], ncap);
            if (!nb) return -ENOMEM;
            c->buf[i] = nb;
            cap = ncap;
        }
        ssize_t r = tl_stream_read(s, c->buf[i] + c->n[i], cap - c->n[i] - 1);
        if (r < 0) return (int)r;
        if (r == 0) break;
        c->n[i] += (size_t)r;
    }
    c->buf[i][c->n[i]] = '\0';
    return 0;
}

static int collect_out(void *arg) { return collect(arg, 0); }
static int collect_err(void *arg) { return collect(arg, 1); }

int tl_process_communicate(tl_process *p, const void *input, size_t len,
                           tl_process_result *res)
{
    if (res) {
        memset(res, 0, sizeof *res);
        res->status = -1;
    }
    if (!p || !res || (len && !input)) return -EINVAL;
    if (len && !p->io[0]) return -EINVAL;
    int rc = enter(p, "tl_process_communicate", __builtin_return_address(0));
    if (rc < 0) return rc;
    if (p->communicating) {
        leave(p);
        return -EBUSY;
    }
    p->communicating = 1;
    comm c = {.p = p, .in = input, .len = len};
    tl_group g;
    rc = tl_group_enter(&g);
    if (rc == 0) {
        int src = 0;
        if (p->io[0]) src = tl_group_spawn(g, feed, &c);
        if (src == 0 && p->io[1]) src = tl_group_spawn(g, collect_out, &c);
        if (src == 0 && p->io[2]) src = tl_group_spawn(g, collect_err, &c);
        rc = tl_group_wait(g, src, NULL);
    }
    if (rc == 0) rc = wait_reaped(p);
    if (rc < 0) {
        free(c.buf[0]);
        free(c.buf[1]);
    } else {
        res->status = rc;
        res->out = c.buf[0];
        res->out_len = c.n[0];
        res->err = c.buf[1];
        res->err_len = c.n[1];
    }
    p->communicating = 0;
    leave(p);
    return rc;
}

void tl_process_result_free(tl_process_result *res)
{
    if (!res) return;
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof *res);
    res->status = -1;
}

/* ---- close ------------------------------------------------------------- */

int tl_process_close(tl_process *p)
{
    if (!p) return 0;
    tl__loop *l = tl__self;
    if (l && l != p->loop) {
        tl__diag("tl_process_close: the process belongs to another loop");
        return -EXDEV;
    }
    bool in_task = l && l->current && !tl__loop_forked(l);
    p->closing = 1;
    for (int i = 0; i < 3; i++)
        if (p->io[i]) (void)tl_stream_close(p->io[i]); /* wakes readers */
    if (reap(p, false) == -EAGAIN) (void)sys_pidfd_send_signal(p->pidfd, SIGKILL);
    if (in_task) {
        /* A cleanup that must finish: a cancel cannot stop it. */
        tl_scope sh = tl_shield_enter();
        while (!p->reaped || p->inside > 0) {
            if (!p->reaped && !p->poller) {
                /* Shielded, so only a broken pidfd fails it: then reap
                 * blocking (the child was sent SIGKILL). */
                if (wait_reaped(p) < 0 && !p->reaped) (void)reap(p, true);
                continue;
            }
            (void)!tl_event_wait(&p->changed);
        }
        for (int i = 0; i < 3; i++)
            if (p->io[i]) (void)tl_stream_wait_closed(p->io[i]);
        (void)tl_scope_exit(sh, 0);
    } else {
        /* No task to suspend: the killed child dies in microseconds. */
        (void)reap(p, true);
        for (int i = 0; i < 3; i++)
            if (p->io[i]) (void)tl_stream_wait_closed(p->io[i]);
    }
    int status = p->status;
    (void)tl_close(p->pidfd);
    (void)tl_event_destroy(&p->changed);
    free(p);
    return status;
}

/* ---- run --------------------------------------------------------------- */

int tl_process_run(const tl_process_opts *opts, const void *input, size_t len,
                   tl_process_result *res)
{
    tl_process_result mine;
    if (res) {
        memset(res, 0, sizeof *res);
        res->status = -1;
    }
    if (!opts) return -EINVAL;
    tl__task *self = tl__task_self("tl_process_run");
    if (!self) return tl__not_task_error();
    /* The cancellation point comes before the spawn: a cancelled caller
     * starts no child (which could read the caller's stdin_fd before it
     * was killed). */
    int rc = tl__checkpoint(self, "tl_process_run", __builtin_return_address(0));
    if (rc < 0) return rc;
    tl_process_opts o = *opts;
    if (input || len) o.stdin_mode = TL_PROCESS_PIPE;
    tl_process *p;
    rc = tl_process_spawn(&p, &o);
    if (rc < 0) return rc;
    rc = tl_process_communicate(p, input, len, &mine);
    /* Trio's run_process: whatever went wrong (a cancel, a deadline, no
     * memory), the child does not outlive the call. tl_process_close
     * kills it and reaps it, shielded. */
    (void)tl_process_close(p);
    if (rc >= 0) {
        if (res) *res = mine;
        else tl_process_result_free(&mine);
    }
    return rc;
}
