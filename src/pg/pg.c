/* libtulip-pg: PostgreSQL over libpq's non-blocking API (include/tulip/pg.h).
 *
 * Uses only tulip's public API: the connection's socket is waited on with
 * tl_fd_wait; libpq does the protocol. The one rule that keeps the loop's
 * fd table true: libpq opens and closes its sockets itself, so the fd
 * tulip knows is forgotten before libpq may close it (during connect,
 * before each PQconnectPoll; afterwards, before PQfinish) and whenever
 * PQsocket no longer names it (libpq dropped a lost connection). */
#include <tulip/pg.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

struct tl_pg {
    PGconn *conn;
    int fd;         /* the socket tulip has a record of, or -1 */
    int busy;       /* a call or a stream is using the connection */
    int broken;     /* unusable: every call fails with -ECONNRESET */
    int in_query;   /* a query was sent and its results not all read */
    int pipeline;   /* in pipeline mode, with one sync outstanding */
    char sqlstate[6];
    char errmsg[512];
};

/* ---- errors ------------------------------------------------------------- */

static void set_msg(tl_pg *c, const char *msg)
{
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
    if (n >= sizeof c->errmsg) n = sizeof c->errmsg - 1;
    memcpy(c->errmsg, msg, n);
    c->errmsg[n] = 0;
}

static void clear_err(tl_pg *c)
{
    c->sqlstate[0] = 0;
    c->errmsg[0] = 0;
}

static void sync_fd(tl_pg *c);

/* A failure of the connection itself (libpq's message): it is lost. */
static int conn_error(tl_pg *c, const char *what)
{
    sync_fd(c); /* libpq may just have closed its socket */
    set_msg(c, PQerrorMessage(c->conn));
    c->broken = 1;
    return tl_fail(-ECONNRESET, "postgres %s: %s", what,
                   c->errmsg[0] ? c->errmsg : "connection lost");
}

static int broken_error(tl_pg *c)
{
    return tl_fail(-ECONNRESET, "postgres: connection is broken%s%s",
                   c->errmsg[0] ? ": " : "", c->errmsg);
}

/* The server's error for a statement: -EREMOTEIO with its SQLSTATE. */
static int result_error(tl_pg *c, const PGresult *r)
{
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", st ? st : "");
    const char *m = PQresultErrorMessage(r);
    set_msg(c, m && *m ? m : PQresStatus(PQresultStatus(r)));
    if (PQstatus(c->conn) == CONNECTION_BAD) {
        c->broken = 1;
        return tl_fail(-ECONNRESET, "postgres: %s (SQLSTATE %s)", c->errmsg,
                       c->sqlstate);
    }
    return tl_fail(-EREMOTEIO, "postgres: %s (SQLSTATE %s)", c->errmsg,
                   c->sqlstate);
}

static int result_failed(const PGresult *r)
{
    switch (PQresultStatus(r)) {
    case PGRES_BAD_RESPONSE:
    case PGRES_NONFATAL_ERROR:
    case PGRES_FATAL_ERROR:
        return 1;
    default:
        return 0;
    }
}

/* Checkpoint first (tulip.h's Model): a call made while cancelled does
 * nothing, after one yield. */
static int checkpoint(void)
{
    if (tl_current().gen == 0) return TL_ENOTASK;
    if (tl_cancelled()) {
        (void)tl_yield();
        return -ECANCELED;
    }
    return 0;
}

/* Common entry of every call that talks to the server. */
static int enter(tl_pg *c)
{
    if (!c) return -EINVAL;
    int rc = checkpoint();
    if (rc < 0) return rc;
    if (c->busy)
        return tl_fail(-EBUSY, "postgres: the connection is in use by "
                               "another call or an open stream");
    clear_err(c);
    if (c->broken) return broken_error(c);
    return 0;
}

/* ---- waiting on the socket -------------------------------------------- */

/* Keep tulip's record in step with libpq's socket. */
static void sync_fd(tl_pg *c)
{
    int s = PQsocket(c->conn);
    if (s != c->fd) {
        if (c->fd >= 0) tl_fd_forget(c->fd);
        c->fd = s;
    }
}

static int wait_io(tl_pg *c, unsigned events)
{
    sync_fd(c);
    if (c->fd < 0) return conn_error(c, "wait");
    return tl_fd_wait(c->fd, events);
}

/* Send what libpq buffered, reading meanwhile (the server may need us to
 * read before it reads more). 0 or a wait's error / -ECONNRESET. */
static int flush_out(tl_pg *c)
{
    for (;;) {
        int f = PQflush(c->conn);
        if (f == 0) return 0;
        if (f < 0) return conn_error(c, "send");
        int rc = wait_io(c, TL_READABLE | TL_WRITABLE);
        if (rc < 0) return rc;
        if ((rc & TL_READABLE) && !PQconsumeInput(c->conn))
            return conn_error(c, "receive");
    }
}

/* The next result (NULL: the end of the current query's results). */
static int next_result(tl_pg *c, PGresult **out)
{
    *out = NULL;
    while (PQisBusy(c->conn)) {
        int rc = wait_io(c, TL_READABLE);
        if (rc < 0) return rc;
        if (!PQconsumeInput(c->conn)) return conn_error(c, "receive");
    }
    *out = PQgetResult(c->conn);
    return 0;
}

/* ---- cancel and drain --------------------------------------------------- */

/* The cancel request. libpq 15's PQcancel connects to the server, sends
 * the request and then waits, without any bound, for the server to close
 * that connection: against a postmaster that is stopped (SIGSTOP, a hung
 * machine behind a live TCP stack) it never returns, and a pool thread
 * would be lost for good. So the request is made here, on the loop, with
 * libpq's own data: the address and key PQgetCancel copied into its
 * PGcancel, read through the layout every libpq up to 17 has (checked
 * against the connection before use: the backend's PID and the peer's
 * address must match), and the wait for the server's close is bounded by
 * TL_PG_CANCEL_TIMEOUT. A libpq whose layout does not check out gets
 * PQcancel on the thread pool, abandoned after the same bound. */

/* The head of libpq's struct pg_cancel (libpq-int.h, 9.x to 17): a
 * SockAddr (itself a struct: its padding counts), then the key. */
struct pq_cancel_head {
    struct {
        struct sockaddr_storage addr;
        socklen_t salen;
    } raddr;
    int be_pid;
    int be_key;
};

struct cancel_req {
    struct sockaddr_storage addr;
    socklen_t salen;
    uint32_t pid, key;
};

/* Does the address PQgetCancel kept name the connection's peer? */
static int same_peer(int fd, const struct sockaddr_storage *a, socklen_t alen)
{
    struct sockaddr_storage p;
    socklen_t plen = sizeof p;
    memset(&p, 0, sizeof p);
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&p, &plen) != 0) return 0;
    if (p.ss_family != a->ss_family) return 0;
    switch (a->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)&p;
        return alen >= sizeof *x && x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)&p;
        return alen >= sizeof *x && x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    case AF_UNIX: {
        const struct sockaddr_un *x = (const void *)a, *y = (const void *)&p;
        return alen > offsetof(struct sockaddr_un, sun_path) &&
               strncmp(x->sun_path, y->sun_path, sizeof x->sun_path) == 0;
    }
    default:
        return 0;
    }
}

/* Fill *rq from pc when its layout checks out against c: 1, else 0. */
static int cancel_req_from(tl_pg *c, const PGcancel *pc, struct cancel_req *rq)
{
    int v = PQlibVersion();
    if (v < 90300 || v >= 180000) return 0; /* 18 changed the key */
    struct pq_cancel_head h;
    memcpy(&h, pc, sizeof h);
    if (h.raddr.salen == 0 || h.raddr.salen > sizeof h.raddr.addr || h.be_pid <= 0 ||
        h.be_pid != PQbackendPID(c->conn) ||
        !same_peer(PQsocket(c->conn), &h.raddr.addr, h.raddr.salen))
        return 0;
    memcpy(&rq->addr, &h.raddr.addr, sizeof rq->addr);
    rq->salen = h.raddr.salen;
    rq->pid = (uint32_t)h.be_pid;
    rq->key = (uint32_t)h.be_key;
    return 1;
}

/* Send the CancelRequest (the protocol's 16 bytes) on a new connection
 * and wait until the server closes it, as PQcancel does. SUSPENDS; the
 * caller bounds it. 0 or a negative code. */
static int cancel_request(const struct cancel_req *rq)
{
    int fd = socket(rq->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int rc = 0;
    while (connect(fd, (const struct sockaddr *)&rq->addr, rq->salen) != 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) { /* a full unix-socket backlog: try again */
            if ((rc = tl_sleep(0.01)) < 0) break;
            continue;
        }
        if (errno != EINPROGRESS) {
            rc = -errno;
            break;
        }
        if ((rc = tl_fd_wait(fd, TL_WRITABLE)) < 0) break;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        rc = err ? -err : 0;
        break;
    }
    uint32_t pkt[4] = {htonl(16), htonl(80877102u) /* 1234 << 16 | 5678 */,
                       htonl(rq->pid), htonl(rq->key)};
    size_t sent = 0;
    while (rc >= 0 && sent < sizeof pkt) {
        ssize_t n = send(fd, (const char *)pkt + sent, sizeof pkt - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (errno == EAGAIN) rc = tl_fd_wait(fd, TL_WRITABLE);
        } else {
            rc = n < 0 ? -errno : -ECONNRESET;
        }
    }
    /* The server closes the connection once it has taken the request. */
    while (rc >= 0) {
        char b;
        ssize_t n = recv(fd, &b, 1, 0);
        if (n == 0) break;
        if (n > 0 || errno == EINTR) continue;
        if (errno != EAGAIN) break; /* as PQcancel: a reset is the end too */
        rc = tl_fd_wait(fd, TL_READABLE);
    }
    tl_close(fd);
    return rc < 0 ? rc : 0;
}

struct cancel_job {
    PGcancel *pc;
    char err[256];
};

/* On a pool thread: PQcancel (the fallback). The job is handed over
 * (abandon on cancel): it frees itself. */
static int cancel_on_thread(void *arg)
{
    struct cancel_job *j = arg;
    int ok = PQcancel(j->pc, j->err, sizeof j->err);
    PQfreeCancel(j->pc);
    free(j);
    return ok ? 0 : -EIO;
}

static int send_cancel(tl_pg *c)
{
    PGcancel *pc = PQgetCancel(c->conn);
    if (!pc) return -ENOMEM;
    struct cancel_req rq;
    int rc, res = 0;
    tl_scope to = tl_timeout_enter(TL_PG_CANCEL_TIMEOUT);
    if (cancel_req_from(c, pc, &rq)) {
        PQfreeCancel(pc);
        rc = cancel_request(&rq);
    } else {
        struct cancel_job *j = calloc(1, sizeof *j);
        if (!j) {
            PQfreeCancel(pc);
            rc = -ENOMEM;
        } else {
            j->pc = pc;
            rc = tl_to_thread_ex(cancel_on_thread, j, &res, TL_THREAD_ABANDON_ON_CANCEL);
            if (rc == -EINVAL || rc == -ENOMEM || rc == -EAGAIN) {
                PQfreeCancel(j->pc);
                free(j);
            }
        }
    }
    rc = tl_scope_exit(to, rc < 0 ? rc : res);
    if (rc == -ETIMEDOUT)
        snprintf(c->errmsg, sizeof c->errmsg,
                 "the server did not take the cancel request within %g s",
                 TL_PG_CANCEL_TIMEOUT);
    return rc;
}

/* Read and drop results until the connection is idle (pipeline: until
 * the sync's result). */
static int drain(tl_pg *c)
{
    PGresult *r;
    int rc;
    if (c->pipeline) {
        for (;;) {
            if ((rc = next_result(c, &r)) < 0) return rc;
            if (!r) {
                if (PQstatus(c->conn) == CONNECTION_BAD)
                    return conn_error(c, "drain");
                continue;
            }
            ExecStatusType st = PQresultStatus(r);
            PQclear(r);
            if (st == PGRES_PIPELINE_SYNC) break;
        }
        c->pipeline = 0;
        if (!PQexitPipelineMode(c->conn)) return conn_error(c, "pipeline");
    } else {
        do {
            if ((rc = next_result(c, &r)) < 0) return rc;
            PQclear(r);
        } while (r);
    }
    c->in_query = 0;
    return 0;
}

/* Run step(c, arg) shielded from cancellation and bounded by
 * TL_PG_DRAIN_TIMEOUT: what must be seen through once begun (COMMIT,
 * ROLLBACK, the cancel-and-drain after a failed wait) is, and the caller
 * learns whether it took. Returns step's result, or -ETIMEDOUT. A step
 * may bound a part of itself more tightly (send_cancel's
 * TL_PG_CANCEL_TIMEOUT). */
static int shielded(tl_pg *c, int (*step)(tl_pg *c, const void *arg), const void *arg)
{
    tl_scope sh = tl_shield_enter();
    tl_scope to = tl_timeout_enter(TL_PG_DRAIN_TIMEOUT);
    int rc = step(c, arg);
    rc = tl_scope_exit(to, rc);
    return tl_scope_exit(sh, rc);
}

/* Finish sending, ask the server to cancel (unless *cancel is 0: the
 * results are all there, only the tail is missing), drain. */
static int cancel_and_drain(tl_pg *c, const void *cancel)
{
    int rc = flush_out(c);
    if (rc >= 0 && *(const int *)cancel) rc = send_cancel(c);
    if (rc >= 0) rc = drain(c);
    return rc;
}

/* After a wait of a running query failed (cancel, timeout, closed fd):
 * cancel_and_drain, shielded and bounded; on failure the connection is
 * broken. */
static void abort_query(tl_pg *c, int cancel)
{
    if (c->broken || !c->in_query) return;
    if (shielded(c, cancel_and_drain, &cancel) < 0) {
        if (!c->errmsg[0])
            set_msg(c, "the connection could not be brought back to idle "
                       "after a cancel");
        c->broken = 1;
    }
    c->in_query = 0;
    c->pipeline = 0;
}

/* ---- connect ----------------------------------------------------------- */

struct start_job {
    const char *conninfo;
    PGconn *conn;
};

static int start_on_thread(void *arg)
{
    struct start_job *j = arg;
    j->conn = PQconnectStart(j->conninfo);
    return 0;
}

static int connect_error(PGconn *conn)
{
    const char *m = PQerrorMessage(conn);
    int code = -ECONNABORTED;
    if (strstr(m, "authentication failed") || strstr(m, "no password") ||
        strstr(m, "password is required"))
        code = -EACCES;
    else if (strstr(m, "Connection refused") ||
             strstr(m, "No such file or directory"))
        code = -ECONNREFUSED;
    else if (strstr(m, "timeout expired"))
        code = -ETIMEDOUT;
    size_t n = strlen(m);
    while (n && m[n - 1] == '\n') n--;
    return tl_fail(code, "postgres connect: %.*s", (int)n, m);
}

int tl_pg_connect(tl_pg **out, const char *conninfo)
{
    if (!out || !conninfo) return -EINVAL;
    *out = NULL;
    int rc = checkpoint();
    if (rc < 0) return rc;
    struct start_job j = {conninfo, NULL};
    rc = tl_to_thread(start_on_thread, &j, NULL);
    if (rc < 0) return rc;
    PGconn *conn = j.conn;
    if (!conn) return -ENOMEM;
    if (PQstatus(conn) == CONNECTION_BAD) {
        rc = connect_error(conn);
        PQfinish(conn);
        return rc;
    }
    PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
    for (;;) {
        int s = PQsocket(conn);
        if (s < 0) {
            rc = connect_error(conn);
            break;
        }
        rc = tl_fd_wait(s, ps == PGRES_POLLING_READING ? TL_READABLE
                                                       : TL_WRITABLE);
        /* The next poll may close this socket and open another, maybe
         * under the same number: tulip must not keep the old record. */
        tl_fd_forget(s);
        if (rc < 0) break;
        ps = PQconnectPoll(conn);
        if (ps == PGRES_POLLING_OK) {
            rc = 0;
            break;
        }
        if (ps == PGRES_POLLING_FAILED) {
            rc = connect_error(conn);
            break;
        }
    }
    if (rc < 0) {
        PQfinish(conn);
        return rc;
    }
    tl_pg *c = calloc(1, sizeof *c);
    if (!c || PQsetnonblocking(conn, 1) != 0) {
        free(c);
        PQfinish(conn);
        return -ENOMEM;
    }
    c->conn = conn;
    c->fd = PQsocket(conn);
    *out = c;
    return 0;
}

int tl_pg_close(tl_pg *c)
{
    if (!c) return 0;
    if (c->busy) return -EBUSY;
    sync_fd(c);
    if (c->fd >= 0) tl_fd_forget(c->fd);
    PQfinish(c->conn);
    free(c);
    return 0;
}

PGconn *tl_pg_conn(tl_pg *c) { return c ? c->conn : NULL; }
const char *tl_pg_sqlstate(const tl_pg *c) { return c ? c->sqlstate : ""; }
const char *tl_pg_errmsg(const tl_pg *c) { return c ? c->errmsg : ""; }
int tl_pg_broken(const tl_pg *c) { return !c || c->broken; }

/* ---- queries ---------------------------------------------------------- */

/* The query was handed to libpq: push it out. On failure the query is
 * aborted (a cancel that came while sending still leaves an idle
 * connection). */
static int sent(tl_pg *c, int ok)
{
    if (!ok) return conn_error(c, "send");
    c->in_query = 1;
    int rc = flush_out(c);
    if (rc < 0) abort_query(c, 1);
    return rc;
}

/* Collect every result of the query; keep the last one (or the first
 * error). `single`: one statement (extended protocol), so once its result
 * is in only the end marker is missing. */
static int collect(tl_pg *c, PGresult **out, int single)
{
    PGresult *keep = NULL, *r;
    int err = 0;
    for (;;) {
        int rc = next_result(c, &r);
        if (rc < 0) {
            /* All results read but the end: completed wins. */
            int done = single && keep && !err;
            abort_query(c, !done);
            if (!done) {
                PQclear(keep);
                return rc;
            }
            break;
        }
        if (!r) break;
        if (err) {
            PQclear(r);
        } else if (result_failed(r)) {
            err = result_error(c, r);
            PQclear(keep);
            keep = NULL;
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
        if (PQstatus(c->conn) == CONNECTION_BAD) {
            if (!err) err = conn_error(c, "receive");
            break;
        }
    }
    c->in_query = 0;
    if (err) {
        PQclear(keep);
        return err;
    }
    if (out)
        *out = keep;
    else
        PQclear(keep);
    return 0;
}

int tl_pg_query(tl_pg *c, PGresult **out, const char *sql, int nparams,
                const char *const *params)
{
    if (out) *out = NULL;
    if (!sql || nparams < 0 || (nparams > 0 && !params)) return -EINVAL;
    int rc = enter(c);
    if (rc < 0) return rc;
    c->busy = 1;
    rc = sent(c, PQsendQueryParams(c->conn, sql, nparams, NULL, params,
                                   NULL, NULL, 0));
    if (rc >= 0) rc = collect(c, out, 1);
    c->busy = 0;
    return rc;
}

int tl_pg_exec(tl_pg *c, const char *sql)
{
    if (!sql) return -EINVAL;
    int rc = enter(c);
    if (rc < 0) return rc;
    c->busy = 1;
    rc = sent(c, PQsendQuery(c->conn, sql));
    if (rc >= 0) rc = collect(c, NULL, 0);
    c->busy = 0;
    return rc;
}

int tl_pg_pipeline(tl_pg *c, size_t n, const tl_pg_stmt *stmts,
                   PGresult **results)
{
    if (!n || !stmts || !results) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        results[i] = NULL;
        if (!stmts[i].sql || stmts[i].nparams < 0 ||
            (stmts[i].nparams > 0 && !stmts[i].params))
            return -EINVAL;
    }
    int rc = enter(c);
    if (rc < 0) return rc;
    c->busy = 1;
    if (!PQenterPipelineMode(c->conn)) {
        rc = conn_error(c, "pipeline");
        goto out;
    }
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = PQsendQueryParams(c->conn, stmts[i].sql, stmts[i].nparams, NULL,
                               stmts[i].params, NULL, NULL, 0);
    ok = ok && PQpipelineSync(c->conn);
    if (!ok) {
        /* Nothing reached the server unless it was flushed: give up on
         * the connection rather than guess. */
        rc = conn_error(c, "pipeline");
        goto out;
    }
    c->pipeline = 1;
    rc = sent(c, 1);
    if (rc < 0) goto out;
    size_t k = 0;
    int err = 0;
    for (;;) {
        PGresult *r;
        rc = next_result(c, &r);
        if (rc < 0) {
            abort_query(c, 1);
            goto out;
        }
        if (!r) {
            if (PQstatus(c->conn) == CONNECTION_BAD) {
                rc = conn_error(c, "receive");
                goto out;
            }
            continue; /* the end of one statement's results */
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (!err && result_failed(r)) err = result_error(c, r);
        if (k < n)
            results[k++] = r;
        else
            PQclear(r);
    }
    c->pipeline = 0;
    c->in_query = 0;
    if (!PQexitPipelineMode(c->conn)) {
        rc = conn_error(c, "pipeline");
        goto out;
    }
    rc = err;
out:
    c->busy = 0;
    return rc;
}

/* ---- streaming -------------------------------------------------------- */

struct stream {
    tl_pg *c;
};

static int stream_producer(tl_gen *g, void *arg)
{
    struct stream *s = arg;
    tl_pg *c = s->c;
    free(s);
    int err = 0, rc = 0;
    for (;;) {
        PGresult *r;
        rc = next_result(c, &r);
        if (rc < 0) {
            abort_query(c, 1);
            break;
        }
        if (!r) break;
        if (PQresultStatus(r) == PGRES_SINGLE_TUPLE && !err) {
            rc = tl_gen_yield(g, r);
            PQclear(r);
            if (rc < 0) {
                abort_query(c, 1);
                break;
            }
            continue;
        }
        if (!err && result_failed(r)) err = result_error(c, r);
        PQclear(r);
        if (PQstatus(c->conn) == CONNECTION_BAD) {
            if (!err) err = conn_error(c, "receive");
            break;
        }
    }
    c->in_query = 0;
    c->busy = 0;
    if (rc < 0) return rc;
    return err;
}

int tl_pg_stream(tl_gen **out, tl_pg *c, const char *sql, int nparams,
                 const char *const *params)
{
    if (!out) return -EINVAL;
    *out = NULL;
    if (!sql || nparams < 0 || (nparams > 0 && !params)) return -EINVAL;
    int rc = enter(c);
    if (rc < 0) return rc;
    struct stream *s = malloc(sizeof *s);
    if (!s) return -ENOMEM;
    s->c = c;
    c->busy = 1;
    if (!PQsendQueryParams(c->conn, sql, nparams, NULL, params, NULL, NULL,
                           0)) {
        rc = conn_error(c, "send");
        goto fail;
    }
    if (!PQsetSingleRowMode(c->conn)) {
        c->in_query = 1;
        abort_query(c, 1);
        rc = tl_fail(-ECONNABORTED, "postgres: single-row mode refused");
        goto fail;
    }
    rc = sent(c, 1);
    if (rc < 0) goto fail;
    tl_gen_opts o = {.name = "pg stream"};
    rc = tl_gen_new(out, stream_producer, s, &o);
    if (rc < 0) {
        abort_query(c, 1);
        goto fail;
    }
    return 0; /* the producer clears busy and frees s */
fail:
    free(s);
    c->busy = 0;
    return rc;
}

/* ---- notifications ----------------------------------------------------- */

int tl_pg_notify_wait(tl_pg *c, PGnotify **out)
{
    if (!out) return -EINVAL;
    *out = NULL;
    int rc = enter(c);
    if (rc < 0) return rc;
    c->busy = 1;
    for (;;) {
        PGnotify *n = PQnotifies(c->conn);
        if (n) {
            *out = n;
            rc = 0;
            break;
        }
        rc = wait_io(c, TL_READABLE);
        if (rc < 0) break;
        if (!PQconsumeInput(c->conn)) {
            rc = conn_error(c, "receive");
            break;
        }
    }
    c->busy = 0;
    return rc;
}

/* ---- transactions ------------------------------------------------------ */

int tl_pg_begin(tl_pg *c) { return tl_pg_exec(c, "BEGIN"); }

/* COMMIT and ROLLBACK run shielded: once sent, seen through. */
static int exec_step(tl_pg *c, const void *sql) { return tl_pg_exec(c, sql); }

static void rollback(tl_pg *c)
{
    if (c->broken || PQtransactionStatus(c->conn) == PQTRANS_IDLE) return;
    /* Keep the body's message: the rollback's own failure is reported
     * only through tl_pg_errmsg and the broken state. */
    char keep[sizeof c->errmsg], keep_state[sizeof c->sqlstate];
    memcpy(keep, c->errmsg, sizeof keep);
    memcpy(keep_state, c->sqlstate, sizeof keep_state);
    if (shielded(c, exec_step, "ROLLBACK") < 0) {
        c->broken = 1;
        return;
    }
    memcpy(c->errmsg, keep, sizeof keep);
    memcpy(c->sqlstate, keep_state, sizeof keep_state);
}

int tl_pg_end(tl_pg *c, int body_rc)
{
    if (!c) return -EINVAL;
    if (body_rc >= 0 && !c->broken && !tl_cancelled()) {
        PGTransactionStatusType ts = PQtransactionStatus(c->conn);
        if (ts == PQTRANS_INERROR) {
            rollback(c);
            return tl_fail(-EREMOTEIO, "postgres: the transaction was "
                                       "aborted by an earlier error and "
                                       "rolled back");
        }
        /* Once sent, a COMMIT is seen through: cancelling it midway
         * would leave the caller not knowing whether the data is in.
         * The cancel shows at the next call (completed wins). */
        int rc = shielded(c, exec_step, "COMMIT");
        if (rc == 0) return body_rc;
        if (c->broken || PQtransactionStatus(c->conn) == PQTRANS_IDLE)
            return rc; /* the server ended it (rolled back) */
        rollback(c);
        return rc;
    }
    int saved = body_rc;
    /* Keep the body's tl_fail message across the rollback's calls. */
    const char *m = tl_fail_message(body_rc);
    char msg[200] = "";
    if (m) snprintf(msg, sizeof msg, "%s", m);
    rollback(c);
    if (m && saved < 0) return tl_fail(saved, "%s", msg);
    if (saved < 0) return saved;
    /* The body succeeded but nothing was committed: the connection broke,
     * or the task was cancelled before COMMIT. */
    return c->broken ? broken_error(c) : -ECANCELED;
}

int tl_pg_transaction(tl_pg *c, int (*body)(tl_pg *c, void *arg), void *arg)
{
    if (!c || !body) return -EINVAL;
    int rc = tl_pg_begin(c);
    if (rc < 0) return rc;
    return tl_pg_end(c, body(c, arg));
}

/* ---- pool -------------------------------------------------------------- */

struct tl_pg_pool {
    char *conninfo;
    int cap;
    int out;     /* acquired, or being connected */
    int waiting; /* tasks in tl_pg_pool_acquire */
    int nidle;
    tl_pg **idle;
    tl_sem sem;
};

/* An idle connection has nothing to read unless the server said goodbye
 * (a terminated backend, a restart: an error message, then EOF) or sent
 * a notice; read it without waiting and keep the connection only if
 * libpq still has it. */
static int idle_alive(tl_pg *c)
{
    if (c->broken || PQstatus(c->conn) != CONNECTION_OK) return 0;
    /* The goodbye message and the EOF behind it take two reads. */
    for (int i = 0; i < 4; i++) {
        struct pollfd pfd = {.fd = PQsocket(c->conn), .events = POLLIN};
        if (pfd.fd < 0) return 0;
        if (poll(&pfd, 1, 0) <= 0) return 1;
        if (!PQconsumeInput(c->conn) ||
            PQstatus(c->conn) != CONNECTION_OK) {
            sync_fd(c);
            return 0;
        }
    }
    return 1;
}

int tl_pg_pool_new(tl_pg_pool **out, const char *conninfo, int cap)
{
    if (!out || !conninfo || cap < 1) return -EINVAL;
    *out = NULL;
    tl_pg_pool *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->conninfo = strdup(conninfo);
    p->idle = calloc((size_t)cap, sizeof *p->idle);
    if (!p->conninfo || !p->idle) {
        free(p->conninfo);
        free(p->idle);
        free(p);
        return -ENOMEM;
    }
    p->cap = cap;
    tl_sem_init(&p->sem, cap);
    *out = p;
    return 0;
}

int tl_pg_pool_acquire(tl_pg_pool *p, tl_pg **out)
{
    if (!p || !out) return -EINVAL;
    *out = NULL;
    p->waiting++;
    int rc = tl_sem_acquire(&p->sem);
    p->waiting--;
    if (rc < 0) return rc;
    p->out++;
    while (p->nidle) {
        tl_pg *c = p->idle[--p->nidle];
        if (idle_alive(c)) {
            *out = c;
            return 0;
        }
        tl_pg_close(c); /* the server ended it while it was idle */
    }
    rc = tl_pg_connect(out, p->conninfo);
    if (rc < 0) {
        p->out--;
        tl_sem_release(&p->sem);
    }
    return rc;
}

int tl_pg_pool_release(tl_pg_pool *p, tl_pg *c)
{
    if (!p || !c) return -EINVAL;
    if (c->broken || c->busy || c->in_query ||
        PQtransactionStatus(c->conn) != PQTRANS_IDLE ||
        p->nidle >= p->cap) {
        if (tl_pg_close(c) < 0) {
            /* A stream still holds it: it cannot be closed here; keep the
             * slot taken rather than lose the connection's memory. */
            return -EBUSY;
        }
    } else {
        p->idle[p->nidle++] = c;
    }
    p->out--;
    tl_sem_release(&p->sem);
    return 0;
}

int tl_pg_pool_free(tl_pg_pool *p)
{
    if (!p) return 0;
    if (p->out || p->waiting) return -EBUSY;
    for (int i = 0; i < p->nidle; i++) tl_pg_close(p->idle[i]);
    tl_sem_destroy(&p->sem);
    free(p->idle);
    free(p->conninfo);
    free(p);
    return 0;
}
