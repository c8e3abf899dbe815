/* tulip/pg.h — PostgreSQL over libpq: the seed's asyncpg in C.
 *
 * Not part of the core: this header belongs to the separate library
 * libtulip-pg (pkg-config tulip-pg; CMake option TULIP_WITH_PG, on when
 * libpq is found), which links libtulip and libpq. It includes <tulip.h>
 * and <libpq-fe.h> itself.
 *
 *     async with pool.acquire() as c:       tl_pg *c;
 *         async with c.transaction():       rc = tl_pg_pool_acquire(pool, &c);
 *             await c.execute(q, a, b)      rc = tl_pg_transaction(c, body, &args);
 *                                           tl_pg_pool_release(pool, c);
 *
 * Model. A connection (tl_pg) wraps a libpq PGconn in non-blocking mode;
 * every call that talks to the server suspends only the calling task,
 * waiting on the connection's socket with tl_fd_wait, and is a
 * cancellation point: timeouts come from scopes around the call
 * (TL_WITH_TIMEOUT). libpq does the protocol; this library only waits.
 *
 * Results are libpq's own PGresult: read them with PQntuples, PQgetvalue,
 * PQgetisnull, PQfname, PQcmdTuples, ... and free them with PQclear.
 * Parameters are text ($1, $2, ...; a NULL pointer is SQL NULL), sent
 * with the extended protocol, so one statement per call (tl_pg_exec
 * takes several).
 *
 * Cancellation. A call cancelled (or timed out) while the server runs its
 * query does not leave the connection mid-query: it sends a cancel
 * request (what PQcancel sends, made on the loop: PQcancel itself waits
 * without a bound for the server to take it), then reads and drops
 * whatever the server still sends until the connection is idle again —
 * all inside a shield, bounded by TL_PG_DRAIN_TIMEOUT seconds — and
 * returns -ECANCELED (a timeout scope makes it -ETIMEDOUT). The
 * connection is then usable at once. If the server does not take the
 * cancel request within TL_PG_CANCEL_TIMEOUT seconds (its postmaster is
 * stopped or hung), or the drain fails (the server is gone, or it takes
 * longer than its bound), the connection is marked broken: every later
 * call returns -ECONNRESET and a pool drops it. As with libpq, a cancel
 * request that reaches the server after the query finished is ignored by
 * the server.
 *
 * When the cancel request times out (TL_PG_CANCEL_TIMEOUT): the cancelled
 * call returns -ECANCELED (-ETIMEDOUT under a timeout scope) that many
 * seconds after its cancel, without draining; tl_pg_errmsg says "the
 * server did not take the cancel request within 5 s" (until the next
 * call); tl_pg_broken is then non-zero for good. The connection is
 * unusable: every later call on it (queries, streams, pipelines,
 * LISTEN/NOTIFY waits, transactions) returns -ECONNRESET without sending
 * anything, and it is never made usable again. Close it with tl_pg_close
 * (returns 0) or give it back with tl_pg_pool_release, which closes it (a
 * later acquire opens a new connection). A transaction open on it was not
 * committed: the server rolls it back when the session ends. The query
 * itself may go on running on the server until it ends, the server sees
 * the closed connection, or the postmaster, once it answers again, takes
 * the cancel request still queued on its socket.
 *
 * Errors. Negative codes, with a message attached by tl_fail (read it
 * with tl_fail_message(rc), or tl_pg_errmsg):
 *   -EREMOTEIO    the server reported an error for the statement (the
 *                 connection stays usable); tl_pg_sqlstate gives its
 *                 SQLSTATE ("42P01", ...);
 *   -ECONNREFUSED connect: nothing listens there (refused, no socket);
 *   -EACCES       connect: authentication failed (bad password, ...);
 *   -ETIMEDOUT    connect: libpq's connect_timeout expired;
 *   -ECONNABORTED connect: any other failure (bad conninfo, the server
 *                 refused the start-up: unknown database, too many
 *                 connections, ...);
 *   -ECONNRESET   the connection was lost (server gone, terminated) or is
 *                 broken (see above);
 *   -EBUSY        another task (or an open stream) is using the
 *                 connection: one call at a time per connection;
 *   -ECANCELED    cancelled (see above); -EINVAL bad arguments; -ENOMEM;
 *   TL_ENOTASK    called outside a task.
 *
 * Threads: a connection, a stream and a pool belong to the loop of the
 * task that made them; use them from that loop's tasks only. tl_pg_close
 * must run on that loop (it forgets the socket there).
 */
#ifndef TULIP_PG_H
#define TULIP_PG_H

#include <libpq-fe.h>
#include <tulip.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * PostgreSQL connections
 * ====================================================================== */

/* How long (seconds) the shielded clean-up after a cancel — the cancel
 * request, draining the connection, a transaction's ROLLBACK — may take
 * before the connection is given up as broken. */
#define TL_PG_DRAIN_TIMEOUT 30.0

/* How long (seconds) a cancel request may wait for the server to take it
 * (to close the request's connection) before the connection is given up
 * as broken instead of drained: unusable from then on, every call
 * -ECONNRESET until tl_pg_close (see "When the cancel request times out"
 * above). It runs on the loop, inside the TL_PG_DRAIN_TIMEOUT bound, so
 * nothing is left waiting after this bound. (With a libpq whose PGcancel layout tulip
 * does not know, 18 and later, PQcancel runs on the thread pool and is
 * abandoned after this bound: its pool thread then stays blocked until
 * the server answers.) */
#define TL_PG_CANCEL_TIMEOUT 5.0

/* A connection (opaque; heap). */
typedef struct tl_pg tl_pg;

/* asyncpg.connect(dsn): open a connection described by `conninfo`
 * ("host=/run/postgresql dbname=app", "postgresql://user@127.0.0.1/db",
 * libpq's syntax and environment variables). PQconnectStart (which may
 * resolve the first host name) runs on the thread pool; the rest of the
 * start-up (PQconnectPoll) on the loop, which follows the socket libpq
 * uses as it changes (another address, another host of a list: the old
 * fd is forgotten before libpq can close it). Host names of a multi-host
 * list after the first are resolved by libpq inside PQconnectPoll, on the
 * loop: give addresses (hostaddr=) there. A cancelled connect closes what
 * it started. Returns 0 and *out (close it with tl_pg_close), or
 * -ECONNREFUSED, -EACCES, -ETIMEDOUT, -ECONNABORTED (each with libpq's
 * message attached), -ECANCELED, -EINVAL (out or conninfo NULL),
 * -ENOMEM, -EAGAIN (no pool thread), TL_ENOTASK. SUSPENDS. */
TL_API TL_NODISCARD int tl_pg_connect(tl_pg **out, const char *conninfo);

/* Close the connection and free it (PQfinish; its socket is forgotten by
 * the loop first). Never suspends; also in a cancelled task. Returns 0;
 * -EBUSY (nothing done) while a call or an open stream uses it.
 * tl_pg_close(NULL) returns 0. The loop's thread only. */
TL_API int tl_pg_close(tl_pg *c);

/* The libpq connection, for what this API does not wrap (PQescapeLiteral,
 * PQparameterStatus, PQserverVersion, ...). Do not run queries, change
 * its blocking mode or close it through libpq. Never suspends. */
TL_API PGconn *tl_pg_conn(tl_pg *c);

/* The SQLSTATE of the last error the server reported on this connection
 * ("" when the last call did not fail that way); the message of the last
 * failure of any kind (""). Static to c, valid until its next call.
 * Never suspend. */
TL_API const char *tl_pg_sqlstate(const tl_pg *c);
TL_API const char *tl_pg_errmsg(const tl_pg *c);

/* Non-zero when the connection can no longer be used (lost, or a cancel
 * could not bring it back to idle). Never suspends. */
TL_API int tl_pg_broken(const tl_pg *c);

/* ======================================================================
 * Queries
 * ====================================================================== */

/* await conn.fetch(sql, *params): run one statement with nparams text
 * parameters (params[i] NULL: SQL NULL; params may be NULL when nparams
 * is 0) and store its result in *out (out may be NULL to drop it): rows
 * for a SELECT (PGRES_TUPLES_OK), the command status otherwise. The
 * caller owns *out: PQclear it. The parameters are borrowed for the
 * call. Returns 0, -EREMOTEIO (the server's error; *out is NULL),
 * -ECANCELED (the query was cancelled on the server and the connection
 * drained: see the Model), -ECONNRESET, -EBUSY, -EINVAL, -ENOMEM,
 * TL_ENOTASK. SUSPENDS. */
TL_API TL_NODISCARD int tl_pg_query(tl_pg *c, PGresult **out,
                                    const char *sql, int nparams,
                                    const char *const *params);

/* await conn.execute(script): run one or more ';'-separated statements
 * without parameters (the simple protocol) and drop their results.
 * Returns 0, or what tl_pg_query returns (-EREMOTEIO for the first
 * statement that failed; the rest are not run). SUSPENDS. */
TL_API TL_NODISCARD int tl_pg_exec(tl_pg *c, const char *sql);

/* One statement of a pipeline. */
typedef struct tl_pg_stmt {
    const char *sql;
    int nparams;
    const char *const *params;
} tl_pg_stmt;

/* Send n statements at once in pipeline mode (PQenterPipelineMode), in
 * one round trip, with a single sync at the end, and collect their
 * results: results[i] receives statement i's PGresult (the caller
 * PQclears every non-NULL one, on every return). A failing statement
 * gets its error result, and the ones after it PGRES_PIPELINE_ABORTED
 * results (the server skips them: they form one implicit transaction).
 * Returns 0 when all succeeded; -EREMOTEIO for the first failure (its
 * message attached; results filled as said); -ECANCELED (the pipeline
 * was cancelled and drained: the results already read are kept, the
 * others NULL), -ECONNRESET, -EBUSY, -EINVAL (n 0, stmts, results or a
 * sql NULL), -ENOMEM, TL_ENOTASK. SUSPENDS. */
TL_API TL_NODISCARD int tl_pg_pipeline(tl_pg *c, size_t n,
                                       const tl_pg_stmt *stmts,
                                       PGresult **results);

/* `async for row in conn.cursor(sql)`: send the query in single-row mode
 * and return an async generator (tl_gen_next / TL_GEN_FOREACH) whose
 * values are PGresult* holding one row each (PGRES_SINGLE_TUPLE): the
 * generator owns it, and it is valid until the next tl_gen_next or
 * tl_gen_close. Only one row is in memory at a time, however large the
 * result. The connection is busy (-EBUSY to other calls, tl_pg_close
 * refused) until the generator is exhausted or closed; closing it early
 * (or cancelling the consumer) cancels the query and drains the
 * connection, as in the Model. The generator ends with the server's
 * error (-EREMOTEIO, through tl_gen_next) when the query fails midway.
 * Close it with tl_gen_close in every case. Returns 0 and *out, or what
 * tl_pg_query returns for the sending (nothing is left running then).
 * SUSPENDS (while sending). */
TL_API TL_NODISCARD int tl_pg_stream(tl_gen **out, tl_pg *c,
                                     const char *sql, int nparams,
                                     const char *const *params);

/* ======================================================================
 * Notifications
 * ====================================================================== */

/* Wait for the next LISTEN/NOTIFY notification on this connection (run
 * `LISTEN channel` first with tl_pg_exec). Notifications that arrived
 * during earlier calls are returned first, in order. The caller owns
 * *out: free it with PQfreemem; its relname is the channel, extra the
 * payload, be_pid the sender. A timeout comes from a scope around the
 * call. Returns 0 and *out, -ECANCELED (nothing consumed), -ECONNRESET,
 * -EBUSY, -EINVAL, TL_ENOTASK. SUSPENDS. */
TL_API TL_NODISCARD int tl_pg_notify_wait(tl_pg *c, PGnotify **out);

/* ======================================================================
 * Transactions
 * ====================================================================== */

/* `async with conn.transaction():` as a pair around a block:
 *
 *     rc = tl_pg_begin(c);
 *     if (rc == 0) {
 *         rc = work(c);                 // any calls, any result
 *         rc = tl_pg_end(c, rc);
 *     }
 *
 * tl_pg_begin sends BEGIN: 0, or what tl_pg_exec returns (no transaction
 * is open then). SUSPENDS. */
TL_API TL_NODISCARD int tl_pg_begin(tl_pg *c);

/* Close the transaction tl_pg_begin opened: COMMIT when body_rc >= 0 and
 * the task is not cancelled, else ROLLBACK. A COMMIT, once sent, runs
 * shielded (bounded by TL_PG_DRAIN_TIMEOUT): a cancel or a deadline that
 * comes while the server commits does not leave the outcome unknown; it
 * shows at the next suspending call. The ROLLBACK runs shielded
 * (bounded by TL_PG_DRAIN_TIMEOUT), so a cancel or a timeout cannot
 * leave the connection inside the transaction; a connection where even
 * that fails is marked broken (the server rolls back when it goes).
 * Returns body_rc when the commit succeeded; the commit's error when it
 * failed (-EREMOTEIO: a deferred constraint, a serialization failure —
 * the server rolled back; -ETIMEDOUT: the COMMIT took longer than
 * TL_PG_DRAIN_TIMEOUT, the connection is broken and the outcome is the
 * server's); -ECANCELED when the task was cancelled before COMMIT was
 * sent (rolled back); -EREMOTEIO when body_rc >= 0 but a statement of the
 * transaction had failed (the transaction was aborted: rolled back);
 * otherwise body_rc itself (rolled back), so a -ECANCELED from the body
 * travels on to the scope that turns it into -ETIMEDOUT. The body's
 * tl_fail message is kept. SUSPENDS. */
TL_API int tl_pg_end(tl_pg *c, int body_rc);

/* The seed's db_transaction: tl_pg_begin, body(c, arg), tl_pg_end with
 * its result. Returns what tl_pg_end returns, or tl_pg_begin's error
 * (body not run), -EINVAL (c or body NULL). SUSPENDS. */
TL_API TL_NODISCARD int tl_pg_transaction(tl_pg *c,
                                          int (*body)(tl_pg *c, void *arg),
                                          void *arg);

/* ======================================================================
 * Connection pool
 * ====================================================================== */

/* A pool of at most `cap` connections to one conninfo (opaque; heap). */
typedef struct tl_pg_pool tl_pg_pool;

/* asyncpg.create_pool(dsn, max_size=cap). No connection is made yet.
 * conninfo is copied. Returns 0 and *out, -EINVAL (out or conninfo NULL,
 * cap < 1), -ENOMEM. Never suspends. */
TL_API int tl_pg_pool_new(tl_pg_pool **out, const char *conninfo, int cap);

/* pool.acquire(): an idle connection, or a new one while fewer than cap
 * exist; at the cap, wait (FIFO) until one is released. An idle
 * connection the server has ended meanwhile (it was terminated, the
 * server restarted) is noticed without waiting, closed and replaced.
 * Returns 0 and
 * *out (give it back with tl_pg_pool_release), -ECANCELED (nothing
 * taken), or tl_pg_connect's error. SUSPENDS. */
TL_API TL_NODISCARD int tl_pg_pool_acquire(tl_pg_pool *p, tl_pg **out);

/* pool.release(c): give c back. A connection that is broken or inside a
 * transaction is closed instead of kept (its slot frees either way).
 * Returns 0, -EINVAL (p or c NULL), -EBUSY (nothing done: a stream of c
 * is still open; close it first). Never suspends. */
TL_API int tl_pg_pool_release(tl_pg_pool *p, tl_pg *c);

/* Close the idle connections and free the pool. Returns 0, -EBUSY
 * (nothing done) while connections are acquired or tasks wait in
 * tl_pg_pool_acquire. tl_pg_pool_free(NULL) returns 0. Never suspends;
 * the pool's loop. */
TL_API int tl_pg_pool_free(tl_pg_pool *p);

#ifdef __cplusplus
}
#endif

#endif /* TULIP_PG_H */
