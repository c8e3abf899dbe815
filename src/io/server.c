/* Servers (include/tulip/server.h): an accept loop in the serving task,
 * one task per connection in a task group the serving task owns.
 *
 * Shape of tl_server_serve, in the serving task:
 *
 *     group enter                     every connection is a child
 *       cancel scope enter            tl_server_shutdown cancels it
 *         accept loop                 drain the backlog, wait readable
 *       cancel scope exit
 *       close the listener            new clients are refused
 *       wait (deadline) for live == 0 the shutdown's grace period
 *       cancel the live connections   counted: wait_closed's result
 *     group wait                      never returns before the last one
 *
 * The accept loop calls accept4(2) itself, non-blocking, until EAGAIN,
 * and only then waits for the listener to be readable (one wait per
 * burst, on both backends: an epoll edge, or one io_uring poll), so a
 * backlog of N connections costs N + 1 accept calls and one wait.
 * On io_uring (where the kernel has it) the loop arms one multishot
 * accept instead: each connection comes as a completion carrying its fd,
 * queued in the server (aq) until the serving task takes it, so nothing is
 * lost while the task is busy; a completion without F_MORE (an error, an
 * overflow) ends the request and the loop arms a new one once its error
 * was handled. Stopping cancels it and waits for its last completion, then
 * closes what was accepted and never taken. TULIP_MULTISHOT_ACCEPT=0
 * keeps accept4(2).
 * Connection handlers return their failures to a wrapper that reports
 * them and returns 0, so one connection's failure is never the group's
 * (a group cancels everything at its first failure). */
#include "io/io.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ACCEPT_BATCH 64        /* yield after this many accepts in a row */
#define BACKOFF_MIN 0.01       /* EMFILE back-off, doubling ... */
#define BACKOFF_MAX 1.0        /* ... up to this */

struct tl_server_conn {
    tl_server *srv;
    struct tl_server_conn *prev, *next; /* live list */
    tl_task task;
    int fd;
    int cancelled; /* cancelled by the server (shutdown or its cancel) */
    tl_stream *stream;
    tl_sockaddr peer;
};

struct tl_server {
    tl_server_opts o;
    tl_sockaddr local;
    int lfd;          /* -1 once closed */
    int serving;      /* inside tl_server_serve */
    int closing;      /* tl_server_shutdown was called */
    int in_accept;    /* accept_scope is live */
    int in_drain;     /* drain_scope is live */
    int fd_full;      /* inside an EMFILE episode */
    double deadline;  /* end of the grace period (tl_now clock) */
    tl_scope accept_scope, drain_scope;
    tl_event changed; /* pulsed when a connection ends */
    tl_event stopped; /* pulsed when serve returns */
    struct tl_server_conn *live; /* list head */
    int shutdown_cancelled;
    tl_server_stats st;
    char name[64];    /* "127.0.0.1:8080" for reports */
    /* multishot accept (io_uring) */
    int ms;           /* in use: 1; 0 off (epoll, refused, switched off) */
    tl__op *aop;      /* the armed request, until its last completion */
    int *aq;          /* accepted fds not yet taken: aq[ahead..+alen) mod */
    size_t ahead, alen, acap;
    int aerr;         /* a last completion's error, not yet handled */
    int aok;          /* the request accepted at least once */
    tl__task *await;  /* the serving task, parked for the next fd */
    tl__task *afinal; /* ... or for the request's last completion */
};

static void pulse(tl_event *e)
{
    (void)tl_event_set(e);
    (void)tl_event_clear(e);
}

/* ---- open / free --------------------------------------------------------- */

int tl_server_open(tl_server **out, const tl_server_opts *opts)
{
    if (!out || !opts || !opts->handler || opts->max_conns < 0 ||
        !(opts->conn_timeout >= 0) || (!opts->addr && opts->fd < 0))
        return -EINVAL;
    tl__task *self = tl__task_self("tl_server_open");
    if (!self) return tl__not_task_error();
    tl_server *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->o = *opts;
    s->o.addr = NULL;
    int fd;
    if (opts->addr) {
        fd = tl_net_listen(opts->addr, SOCK_STREAM, opts->backlog,
                           opts->flags);
        if (fd < 0) {
            free(s);
            return fd;
        }
    } else {
        fd = opts->fd;
        int v = 0;
        socklen_t len = sizeof v;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0) {
            int e = errno;
            free(s);
            return -e;
        }
        if (!v) {
            free(s);
            return -EINVAL;
        }
        /* The accept loop calls accept4(2) on the loop's thread until
         * EAGAIN: on a blocking listener (socket(2) without
         * SOCK_NONBLOCK) the call after the backlog's last connection
         * would stop the whole loop until the next client. */
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || (!(fl & O_NONBLOCK) &&
                       fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
            int e = errno;
            free(s);
            return -e;
        }
    }
    int rc = tl_sockaddr_local(fd, &s->local);
    if (rc < 0) {
        if (opts->addr) (void)tl_close(fd);
        free(s);
        return rc;
    }
    s->lfd = fd;
    s->deadline = INFINITY;
    tl__loop *l = self->loop;
    const char *ms = getenv("TULIP_MULTISHOT_ACCEPT");
    s->ms = l->backend->completion && l->backend->has_op &&
            l->backend->has_op(l, TL__OP_ACCEPT_MULTI) &&
            !(ms && ms[0] == '0');
    (void)tl_event_init(&s->changed);
    (void)tl_event_init(&s->stopped);
    (void)tl_sockaddr_format(&s->local, s->name, sizeof s->name);
    *out = s;
    return 0;
}

int tl_server_free(tl_server *s)
{
    if (!s) return 0;
    if (s->serving) {
        tl__diag("tl_server_free: server %s is still serving (shut it down "
                 "and wait for tl_server_wait_closed first)", s->name);
        return -EBUSY;
    }
    if (s->lfd >= 0) (void)tl_close(s->lfd);
    free(s->aq);
    (void)tl_event_destroy(&s->changed);
    (void)tl_event_destroy(&s->stopped);
    free(s);
    return 0;
}

const tl_sockaddr *tl_server_addr(const tl_server *s)
{
    return s ? &s->local : NULL;
}

int tl_server_port(const tl_server *s)
{
    if (!s) return -EINVAL;
    int p = tl_sockaddr_port(&s->local);
    return p < 0 ? 0 : p;
}

int tl_server_stats_get(const tl_server *s, tl_server_stats *out)
{
    if (!s || !out) return -EINVAL;
    *out = s->st;
    return 0;
}

/* ---- connections --------------------------------------------------------- */

int tl_server_conn_fd(const tl_server_conn *c)
{
    return c && !c->stream ? c->fd : -1;
}

const tl_sockaddr *tl_server_conn_peer(const tl_server_conn *c)
{
    return c ? &c->peer : NULL;
}

tl_server *tl_server_conn_server(const tl_server_conn *c)
{
    return c ? c->srv : NULL;
}

tl_stream *tl_server_conn_stream(tl_server_conn *c)
{
    if (!c) return NULL;
    if (!c->stream && tl_stream_open(&c->stream, c->fd, NULL) < 0)
        c->stream = NULL;
    return c->stream;
}

/* Codes a peer or a deadline causes: not the handler's bug. */
static int quiet_failure(int rc)
{
    return rc == -ECANCELED || rc == -ETIMEDOUT || rc == -ECONNRESET ||
           rc == -EPIPE || rc == TL_EOF || rc == TL_ECLOSED;
}

static int conn_main(void *arg)
{
    struct tl_server_conn *c = arg;
    tl_server *s = c->srv;
    c->task = tl_current();
    int rc;
    if (c->cancelled) {
        rc = -ECANCELED; /* cancelled before it ever ran */
    } else if (s->o.conn_timeout > 0) {
        TL_WITH_TIMEOUT(s->o.conn_timeout, &rc) {
            rc = s->o.handler(c, s->o.arg);
        }
    } else {
        rc = s->o.handler(c, s->o.arg);
    }
    if (rc < 0) {
        s->st.failed++;
        if (!quiet_failure(rc)) {
            char peer[64];
            const char *msg = tl_fail_message(rc);
            tl__diag("server %s: handler for %s failed with %s (%s)%s%s",
                     s->name,
                     tl_sockaddr_format(&c->peer, peer, sizeof peer),
                     tl_errname(rc), tl_strerror(rc), msg ? ": " : "",
                     msg ? msg : "");
        }
    }
    /* The fd is the runtime's: end it whatever the handler did. A stream
     * sends what is queued first, unless this task was cancelled (then it
     * closes at once). */
    if (c->stream)
        (void)tl_stream_wait_closed(c->stream);
    else
        (void)tl_close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->live = c->next;
    if (c->next) c->next->prev = c->prev;
    s->st.active--;
    pulse(&s->changed);
    free(c);
    return 0; /* a connection's failure is never the server's */
}

/* ---- accepting ------------------------------------------------------------ */

static int spawn_conn(tl_server *s, tl_group g, int fd,
                      const tl_sockaddr *peer)
{
    struct tl_server_conn *c = calloc(1, sizeof *c);
    if (!c) {
        (void)tl_close(fd);
        return -ENOMEM;
    }
    c->srv = s;
    c->fd = fd;
    c->peer = *peer;
    char name[32];
    (void)tl_sockaddr_format(peer, name, sizeof name);
    tl_spawn_opts so = {.name = name};
    int rc = tl_group_spawn_ex(g, &so, conn_main, c, NULL);
    if (rc < 0) {
        (void)tl_close(fd);
        free(c);
        return rc;
    }
    c->next = s->live;
    if (s->live) s->live->prev = c;
    s->live = c;
    s->st.accepted++;
    if (++s->st.active > s->st.peak) s->st.peak = s->st.active;
    return 0;
}

/* Park until the listener is readable (after accept4 said EAGAIN). */
static int wait_listener(tl__task *self, tl_server *s)
{
    int rc = tl__checkpoint(self, "tl_server_serve", NULL);
    if (rc < 0) return rc;
    tl__fd *r = tl__fd_get(self->loop, s->lfd, &rc);
    if (!r) return rc;
    if (r->waiter[TL__DIR_R]) return -EBUSY;
    r->ready &= (uint8_t)~TL__EV_IN;
    rc = tl__fd_wait_ready(self, r, TL__EV_IN, 0, "tl_server_serve");
    return rc < 0 ? rc : 0;
}

/* The fd table is full (or the kernel is short of memory): wait a while,
 * or until one of our own connections ends and frees an fd. */
static int back_off(tl_server *s, double *delay, int e)
{
    if (!s->fd_full) {
        s->fd_full = 1;
        s->st.fd_full++;
        tl__diag("server %s: accept failed with %s (%s); backing off and "
                 "retrying, still serving",
                 s->name, tl_errname(-e), tl_strerror(-e));
    }
    int rc;
    TL_WITH_MOVE_ON(*delay, &rc) {
        rc = tl_event_wait(&s->changed);
    }
    *delay = *delay * 2 > BACKOFF_MAX ? BACKOFF_MAX : *delay * 2;
    return rc;
}

/* ---- multishot accept (io_uring) ------------------------------------------ */

/* Wake the serving task parked for an fd or for the last completion. */
static void ms_wake(tl__loop *l, tl__task **slot)
{
    tl__task *t = *slot;
    if (!t) return;
    *slot = NULL;
    l->io_waiters--;
    tl__wake(t, 0);
}

static int ms_push(tl_server *s, int fd)
{
    if (s->alen == s->acap) {
        size_t cap = s->acap ? s->acap * 2 : 64;
        int *q = malloc(cap * sizeof *q);
        if (!q) return -ENOMEM;
        for (size_t i = 0; i < s->alen; i++)
            q[i] = s->aq[(s->ahead + i) % s->acap];
        free(s->aq);
        s->aq = q;
        s->acap = cap;
        s->ahead = 0;
    }
    s->aq[(s->ahead + s->alen) % s->acap] = fd;
    s->alen++;
    return 0;
}

static int ms_pop(tl_server *s)
{
    int fd = s->aq[s->ahead];
    s->ahead = (s->ahead + 1) % s->acap;
    s->alen--;
    return fd;
}

/* A completion of the multishot accept, on the loop's stack. */
static void ms_accepted(tl__loop *l, tl__op *op, int res, unsigned flags)
{
    tl_server *s = op->data;
    bool last = !(flags & TL__CQE_F_MORE);
    if (last) {
        if (op->counted) {
            op->counted = 0;
            l->inflight--;
        }
        tl__op_free(l, op);
        if (s) s->aop = NULL;
    }
    if (!s) { /* the server let go of it: nobody takes the fd */
        if (res >= 0) (void)close(res);
        return;
    }
    if (res >= 0) {
        s->aok = 1;
        tl__fd *lr = tl__fd_find(l, s->lfd);
        tl__fd_fresh(l, res, 1, lr ? tl__fd_bytes(lr) : 0);
        if (ms_push(s, res) < 0) {
            tl__diag("server %s: dropped a connection: %s", s->name,
                     tl_strerror(-ENOMEM));
            (void)tl_close(res);
        }
    } else if (last && res == -EINVAL && !s->aok) {
        s->ms = 0; /* a kernel without multishot accept: accept4 from now
                      (a listener that is not listening says so there) */
    } else if (last && res != -ECANCELED) {
        s->aerr = -res;
    }
    ms_wake(l, &s->await);
    if (last) ms_wake(l, &s->afinal);
}

static int ms_arm(tl__loop *l, tl_server *s)
{
    int rc;
    tl__fd *r = tl__fd_get(l, s->lfd, &rc);
    if (!r) return rc;
    tl__op *op = tl__op_new(l, TL__OP_ACCEPT_MULTI, r);
    if (!op) return -ENOMEM;
    op->flags = SOCK_CLOEXEC | SOCK_NONBLOCK;
    op->abandon = 1;
    op->done = ms_accepted;
    op->data = s;
    tl__list_push(&r->ops, &op->fd_link); /* tl_close cancels it */
    s->aop = op;
    l->backend->submit(l, op);
    return 0;
}

/* Ask the kernel to end the armed request; its last completion follows. */
static void ms_disarm(tl__loop *l, tl_server *s)
{
    tl__op *op = s->aop;
    if (!op || op->state == TL__OPS_CANCELLING) return;
    if (l->backend->cancel(l, op) == 1) { /* never reached the kernel */
        ms_accepted(l, op, -ECANCELED, 0);
        return;
    }
    if (!op->counted) {
        op->counted = 1;
        l->inflight++; /* owed regardless of any peer */
    }
}

static void ms_park_cancel(tl__task *t)
{
    tl_server *s = t->wait_data;
    s->await = NULL;
    t->loop->io_waiters--;
    tl__wake(t, -ECANCELED);
}

/* Park until the multishot request brings something (a cancellation
 * point). */
static int ms_wait(tl__task *self, tl_server *s)
{
    int rc = tl__checkpoint(self, "tl_server_serve", NULL);
    if (rc < 0) return rc;
    s->await = self;
    self->loop->io_waiters++;
    self->wait_data = s;
    rc = tl__park(self, ms_park_cancel, "tl_server_serve");
    return rc < 0 ? rc : 0;
}

/* Stop: end the request, wait (uncancellably: it is quick) for its last
 * completion, so nothing arrives for this server once serve goes on;
 * then close what was accepted and never taken. */
static void ms_stop(tl__task *self, tl_server *s)
{
    tl__loop *l = self->loop;
    ms_disarm(l, s);
    while (s->aop) {
        s->afinal = self;
        l->io_waiters++;
        (void)tl__park(self, NULL, "tl_server_serve (stopping accept)");
    }
    while (s->alen) (void)tl_close(ms_pop(s));
    s->aerr = 0;
}

/* accept(2)'s error e: go on (0: counted, backed off) or end (< 0). */
static int accept_error(tl_server *s, int e, double *delay)
{
    switch (e) {
    case EINTR:
        return 0;
    case ECONNABORTED: /* the client reset before we accepted it */
    case EPROTO:       /* and what accept(2) passes on from the */
    case ENETDOWN:     /* network for a connection already gone: */
    case ENOPROTOOPT:  /* retry, as the man page says */
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM:        /* a firewall rule refused it */
        s->st.aborted++;
        return 0;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        return back_off(s, delay, e);
    default:
        return tl_fail(-e, "server %s: accept: %s", s->name,
                       tl_strerror(-e));
    }
}

/* The next accepted fd and its peer: 1, 0 to look again (an error was
 * handled, or the multishot request was armed or waited for), < 0 to end
 * serving. */
static int next_conn(tl__task *self, tl_server *s, double *delay,
                     int *streak, int *fdp, tl_sockaddr *peer)
{
    tl__loop *l = self->loop;
    socklen_t len = sizeof peer->u.ss;
    memset(peer, 0, sizeof *peer);
    if (s->ms) {
        if (s->alen) {
            int fd = ms_pop(s);
            /* The request's address buffer would be shared by every
             * connection it accepts: ask for this one's. */
            if (getpeername(fd, &peer->u.sa, &len) == 0) peer->len = len;
            *fdp = fd;
            return 1;
        }
        if (s->aerr) {
            int e = s->aerr;
            s->aerr = 0;
            return accept_error(s, e, delay);
        }
        if (!s->aop) {
            int rc = ms_arm(l, s);
            if (rc < 0) return accept_error(s, -rc, delay);
        }
        *streak = 0;
        return ms_wait(self, s);
    }
    int fd = accept4(s->lfd, &peer->u.sa, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
        peer->len = len;
        tl__fd *lr = tl__fd_find(l, s->lfd);
        tl__fd_fresh(l, fd, 1, lr ? tl__fd_bytes(lr) : 0);
        *fdp = fd;
        return 1;
    }
    int e = errno;
    if (e == EAGAIN) {
        *streak = 0;
        return wait_listener(self, s);
    }
    return accept_error(s, e, delay);
}

static int accept_loop(tl__task *self, tl_server *s, tl_group g)
{
    double delay = BACKOFF_MIN;
    int streak = 0;
    for (;;) {
        if (s->o.max_conns && s->st.active >= (uint64_t)s->o.max_conns) {
            /* The kernel's backlog holds the clients meanwhile. */
            ms_disarm(self->loop, s);
            int rc = tl_event_wait(&s->changed);
            if (rc < 0) return rc;
            continue;
        }
        int fd = -1;
        tl_sockaddr peer;
        int rc = next_conn(self, s, &delay, &streak, &fd, &peer);
        if (rc < 0) return rc;
        if (rc == 0) continue;
        s->fd_full = 0;
        delay = BACKOFF_MIN;
        rc = spawn_conn(s, g, fd, &peer);
        if (rc < 0) {
            tl__diag("server %s: dropped a connection: %s", s->name,
                     tl_strerror(rc));
            if (rc != -ENOMEM) return rc;
        }
        /* Drain the backlog, but let the connections (and everyone
         * else) run now and then; a cancellation point too. */
        if (++streak >= ACCEPT_BATCH) {
            streak = 0;
            rc = tl_yield();
            if (rc < 0) return rc;
        }
    }
}

/* ---- serving -------------------------------------------------------------- */

static void cancel_live(tl_server *s)
{
    for (struct tl_server_conn *c = s->live; c; c = c->next) {
        if (c->cancelled) continue;
        c->cancelled = 1;
        s->st.cancelled++;
        s->shutdown_cancelled++;
        (void)tl_cancel(c->task);
    }
}

/* After the accept loop: the grace period, then the cancel. */
static int drain(tl_server *s)
{
    if (s->st.active == 0) return 0;
    int rc = 0;
    s->drain_scope = tl_timeout_at_enter(s->deadline);
    s->in_drain = 1;
    while (s->st.active > 0 && rc == 0) rc = tl_event_wait(&s->changed);
    s->in_drain = 0;
    rc = tl_scope_exit(s->drain_scope, rc);
    if (s->st.active > 0) cancel_live(s);
    return rc == -ETIMEDOUT ? 0 : rc;
}

static void serve_end(tl_server *s)
{
    s->serving = 0;
    s->in_accept = 0;
    pulse(&s->stopped);
}

int tl_server_serve(tl_server *s)
{
    if (!s) return -EINVAL;
    tl__task *self = tl__task_self("tl_server_serve");
    if (!self) return tl__not_task_error();
    if (s->serving) return -EBUSY;
    if (s->closing || s->lfd < 0) return TL_ECLOSED;
    s->serving = 1;
    s->shutdown_cancelled = 0;
    tl_group g;
    int rc = tl_group_enter(&g);
    if (rc < 0) {
        serve_end(s);
        return rc;
    }
    s->accept_scope = tl_cancel_scope_enter();
    s->in_accept = 1;
    if (self->start) (void)tl_started(tl_server_port(s));
    rc = accept_loop(self, s, g);
    s->in_accept = 0;
    ms_stop(self, s);
    rc = tl_scope_exit(s->accept_scope, rc);
    /* Stop accepting: clients connecting from now on are refused. */
    (void)tl_close(s->lfd);
    s->lfd = -1;
    if (rc == 0 && s->closing) rc = drain(s);
    if (rc < 0) cancel_live(s); /* cancelled, or accept failed */
    int grc = tl_group_wait(g, rc, NULL);
    serve_end(s);
    return grc < 0 ? grc : rc;
}

int tl_server_shutdown(tl_server *s, double grace)
{
    if (!s || isnan(grace)) return -EINVAL;
    double when = grace <= 0 ? tl_now() : tl_now() + grace;
    if (when < s->deadline) {
        s->deadline = when;
        if (s->in_drain) (void)tl_scope_reschedule_at(s->drain_scope, when);
    }
    if (!s->closing) {
        s->closing = 1;
        if (s->in_accept) (void)tl_scope_cancel(s->accept_scope);
    }
    return 0;
}

int tl_server_wait_closed(tl_server *s)
{
    if (!s) return -EINVAL;
    tl__task *self = tl__task_self("tl_server_wait_closed");
    if (!self) return tl__not_task_error();
    while (s->serving) {
        int rc = tl_event_wait(&s->stopped);
        if (rc < 0) return rc;
    }
    return s->shutdown_cancelled;
}

int tl_serve(void *arg)
{
    const tl_server_opts *o = arg;
    tl_server *s;
    int rc = tl_server_open(&s, o);
    if (rc < 0) return rc;
    rc = tl_server_serve(s);
    (void)tl_server_free(s);
    return rc;
}
