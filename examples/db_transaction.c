/* The seed's db_transaction, live against PostgreSQL.
 *
 *     @asynccontextmanager
 *     async def db_transaction(conn):
 *         tx = await conn.begin()
 *         try:
 *             yield tx
 *             await tx.commit()
 *         except Exception:
 *             await tx.rollback()
 *             raise
 *
 *     async with db_transaction(conn):
 *         await transfer(conn, "alice", "bob", amount)
 *
 * libtulip-pg (tulip/pg.h) talks to the server through libpq's
 * non-blocking API; tl_pg_transaction(conn, body, arg) is the context
 * manager: BEGIN, the body, then COMMIT when it succeeded, else ROLLBACK.
 * Three transfers:
 *   1. 30 from alice to bob: committed;
 *   2. 500, more than alice has: the server refuses the UPDATE (a CHECK
 *      constraint), the body fails, the transaction is rolled back and
 *      the error travels on (`raise`);
 *   3. 20, but the body also runs a slow query and the whole block has a
 *      0.5 s timeout (asyncio.timeout): the query is cancelled on the
 *      server, the ROLLBACK runs shielded, the block ends with -ETIMEDOUT,
 *      and the connection is idle and usable at once.
 * The server is PostgreSQL (Debian's postgresql), started here in a
 * temporary folder on a free loopback port (as the postgres user when run
 * as root) and stopped by its PID at the end.
 */
#include <stdio.h>

#include <tulip/pg.h>

#include "demo_servers.h"

static char conninfo[256];

struct transfer {
    const char *from, *to;
    int amount;
    int slow; /* also run a 10 s query inside the transaction */
};

/* async def transfer(conn, from, to, amount) */
static int transfer(tl_pg *c, void *arg)
{
    struct transfer *t = arg;
    char amount[16];
    snprintf(amount, sizeof amount, "%d", t->amount);
    const char *p1[] = {amount, t->from};
    int rc = tl_pg_query(c, NULL, "UPDATE accounts SET balance = balance - $1 WHERE name = $2",
                         2, p1);
    printf("    UPDATE ... - %s WHERE name = '%s': %s\n", amount, t->from,
           rc == 0 ? "ok" : tl_errname(rc));
    if (rc < 0) return rc;
    const char *p2[] = {amount, t->to};
    rc = tl_pg_query(c, NULL, "UPDATE accounts SET balance = balance + $1 WHERE name = $2", 2,
                     p2);
    printf("    UPDATE ... + %s WHERE name = '%s': %s\n", amount, t->to,
           rc == 0 ? "ok" : tl_errname(rc));
    if (rc == 0 && t->slow) {
        printf("    SELECT pg_sleep(10) ... (the block's timeout is 0.5 s)\n");
        rc = tl_pg_query(c, NULL, "SELECT pg_sleep(10)", 0, NULL);
        printf("    SELECT pg_sleep(10): %s (cancelled on the server)\n", tl_errname(rc));
    }
    return rc;
}

static int show_balances(tl_pg *c)
{
    PGresult *r;
    int rc = tl_pg_query(c, &r, "SELECT name, balance FROM accounts ORDER BY name", 0, NULL);
    if (rc < 0) return rc;
    printf("    balances:");
    for (int i = 0; i < PQntuples(r); i++)
        printf(" %s %s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    printf(" (transaction status: %s)\n",
           PQtransactionStatus(tl_pg_conn(c)) == PQTRANS_IDLE ? "idle" : "in a transaction");
    PQclear(r);
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    tl_pg *c; /* conn = await asyncpg.connect(dsn) */
    int rc = tl_pg_connect(&c, conninfo);
    if (rc < 0) return rc;
    rc = tl_pg_exec(c, "CREATE TABLE accounts (name text PRIMARY KEY, "
                       "balance int NOT NULL CHECK (balance >= 0));"
                       "INSERT INTO accounts VALUES ('alice', 100), ('bob', 0)");
    if (rc == 0) rc = show_balances(c);

    /* 1. async with db_transaction(conn): await transfer(..., 30) */
    if (rc == 0) {
        printf("\n1. transfer 30 from alice to bob:\n");
        struct transfer t = {"alice", "bob", 30, 0};
        rc = tl_pg_transaction(c, transfer, &t);
        printf("  -> %s: committed\n", rc == 0 ? "ok" : tl_errname(rc));
        if (rc == 0) rc = show_balances(c);
    }

    /* 2. the body fails: rollback, and the error travels on (raise) */
    if (rc == 0) {
        printf("\n2. transfer 500 from alice to bob (she has 70):\n");
        struct transfer t = {"alice", "bob", 500, 0};
        int trc = tl_pg_transaction(c, transfer, &t);
        printf("  -> %s: rolled back; the error: %s\n", tl_errname(trc),
               tl_fail_message(trc));
        if (trc != -EREMOTEIO) rc = tl_fail(-EPROTO, "expected -EREMOTEIO");
        if (rc == 0) rc = show_balances(c);
    }

    /* 3. async with asyncio.timeout(0.5): async with db_transaction(conn): ... */
    if (rc == 0) {
        printf("\n3. transfer 20 from alice to bob, then a slow query, under a 0.5 s "
               "timeout:\n");
        struct transfer t = {"alice", "bob", 20, 1};
        double t0 = tl_now();
        int trc;
        TL_WITH_TIMEOUT(0.5, &trc) trc = tl_pg_transaction(c, transfer, &t);
        printf("  -> %s after %.2f s: the query was cancelled on the server and the "
               "transaction rolled back\n",
               tl_errname(trc), tl_now() - t0);
        if (trc != -ETIMEDOUT) rc = tl_fail(-EPROTO, "expected -ETIMEDOUT");
        if (rc == 0) rc = show_balances(c);
    }
    int crc = tl_pg_close(c);
    return rc < 0 ? rc : crc;
}

int main(void)
{
    demo_begin();
    puts("  # Python: async with db_transaction(conn): await transfer(conn, ...)");
    puts("  #         (BEGIN; the body; COMMIT, or ROLLBACK on an exception or a cancel)");
    puts("  # C:      rc = tl_pg_transaction(conn, transfer, &args);");
    int rc = demo_pg_start(conninfo, sizeof conninfo);
    if (rc == -DEMO_SKIPPED) return DEMO_SKIPPED;
    if (rc < 0) return demo_start_failed();
    /* The port is open before the server accepts sessions: ask it. */
    for (int i = 0; PQping(conninfo) != PQPING_OK; i++) {
        if (demo_interrupted) return demo_start_failed();
        if (i == 600) {
            fprintf(stderr, "demo: postgres does not answer\n");
            return 1;
        }
        demo_sleep_ms(50);
    }
    if (demo_servers_ready() < 0) return 1;
    printf("postgres started (pid %d): %s\n\n", (int)demo_children[0].pid, conninfo);
    rc = tl_run(main_task, NULL);
    demo_stop_all();
    printf("\npostgres stopped (SIGINT to its PID: a fast shutdown)\n");
    return rc == 0 ? 0 : 1;
}
