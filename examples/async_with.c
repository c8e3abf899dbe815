/* Async context managers — async with, @asynccontextmanager.
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
 *     async with db_transaction(conn) as tx:
 *         await transfer(tx, 30)
 *
 * In C an async context manager is a pair of functions: enter (the part
 * before `yield`, here BEGIN) and exit (the part after it), which gets the
 * body's result, commits or rolls back, and returns the block's verdict
 * (`raise` = return the body's error):
 *
 *     struct tx tx;
 *     int rc = db_transaction_enter(&conn, &tx);
 *     if (rc == 0) rc = db_transaction_exit(&tx, transfer(&tx, 30));
 *
 * The rollback runs inside a shield (asyncio.shield): when the block was
 * cancelled — a timeout around it, a failing sibling — the rollback's own
 * round trip to the database must still finish. Without the shield its
 * wait would return -ECANCELED at once (cancellation is level-triggered)
 * and the server would never hear ROLLBACK. (Python's `except Exception`
 * does not even see CancelledError; in C the exit runs on every path.)
 */
#include <errno.h>
#include <stdio.h>

#include <tulip.h>

struct conn {
    int balance;    /* committed state */
    int tx_balance; /* state inside the open transaction */
    int open_tx;    /* a transaction is open on the server */
};

struct tx {
    struct conn *conn;
};

static int use_shield = 1;

/* One round trip to the database server (50 ms). */
static int db_io(struct conn *c, const char *sql)
{
    int rc = tl_sleep(0.05);
    if (rc < 0) {
        printf("    db: %-8s never reached the server (-%s)\n", sql,
               tl_errname(rc));
        return rc;
    }
    (void)c;
    printf("    db: %-8s ok\n", sql);
    return 0;
}

/* tx = await conn.begin() */
static int db_transaction_enter(struct conn *c, struct tx *tx)
{
    int rc = db_io(c, "BEGIN");
    if (rc < 0) return rc;
    c->open_tx = 1;
    c->tx_balance = c->balance;
    tx->conn = c;
    return 0;
}

static int rollback(struct tx *tx)
{
    int rc = db_io(tx->conn, "ROLLBACK");
    if (rc == 0) tx->conn->open_tx = 0;
    return rc;
}

/* After `yield tx`: commit on success; on any failure roll back and
 * re-raise. Returns the verdict of the whole `async with`. */
static int db_transaction_exit(struct tx *tx, int body_rc)
{
    struct conn *c = tx->conn;
    if (body_rc >= 0) {
        int rc = db_io(c, "COMMIT");
        if (rc == 0) {
            c->balance = c->tx_balance;
            c->open_tx = 0;
            return body_rc;
        }
        body_rc = rc; /* the commit failed: roll back below */
    }
    if (use_shield) {
        int rc;
        TL_WITH_SHIELD(&rc) {
            rc = rollback(tx); /* finishes even if we are cancelled */
        }
    } else {
        (void)rollback(tx);
    }
    return body_rc; /* raise */
}

/* The body: move `amount` out of the account (two statements). */
struct transfer {
    struct tx *tx;
    int amount;
    double think; /* extra seconds the body takes */
};

static int transfer(struct transfer *t)
{
    struct conn *c = t->tx->conn;
    int rc = db_io(c, "SELECT");
    if (rc < 0) return rc;
    if (t->think > 0 && (rc = tl_sleep(t->think)) < 0) {
        printf("    body: cancelled while working (-%s)\n", tl_errname(rc));
        return rc;
    }
    if (c->tx_balance < t->amount)
        return tl_fail(-EINVAL, "insufficient funds: %d < %d",
                       c->tx_balance, t->amount);
    rc = db_io(c, "UPDATE");
    if (rc < 0) return rc;
    c->tx_balance -= t->amount;
    return 0;
}

/* async with db_transaction(conn) as tx: await transfer(tx, amount) */
static int run_block(struct conn *c, int amount, double think)
{
    struct tx tx;
    int rc = db_transaction_enter(c, &tx);
    if (rc < 0) return rc;
    struct transfer t = {&tx, amount, think};
    return db_transaction_exit(&tx, transfer(&t));
}

static int main_task(void *arg)
{
    (void)arg;
    struct conn c = {.balance = 100};
    int ok = 1, rc;

    puts("-- 1) the body succeeds: COMMIT");
    rc = run_block(&c, 30, 0);
    printf("   -> %d, balance %d\n", rc, c.balance);
    ok &= rc == 0 && c.balance == 70;

    puts("-- 2) the body fails (transfer 500): ROLLBACK, then the error "
         "propagates");
    rc = run_block(&c, 500, 0);
    printf("   -> -%s (%s), balance %d\n", tl_errname(rc),
           tl_fail_message(rc) ? tl_fail_message(rc) : "", c.balance);
    ok &= rc == -EINVAL && c.balance == 70 && !c.open_tx;

    puts("-- 3) cancelled: asyncio.timeout(0.2) around a 1 s body; the "
         "shielded ROLLBACK still runs");
    TL_WITH_TIMEOUT(0.2, &rc) {
        rc = run_block(&c, 10, 1.0);
    }
    printf("   -> -%s, balance %d, transaction left open on the server: "
           "%s\n", tl_errname(rc), c.balance, c.open_tx ? "YES" : "no");
    ok &= rc == -ETIMEDOUT && c.balance == 70 && !c.open_tx;

    puts("-- 4) the same without the shield: the ROLLBACK itself is "
         "cancelled");
    use_shield = 0;
    TL_WITH_TIMEOUT(0.2, &rc) {
        rc = run_block(&c, 10, 1.0);
    }
    printf("   -> -%s, balance %d, transaction left open on the server: "
           "%s\n", tl_errname(rc), c.balance, c.open_tx ? "YES" : "no");
    ok &= rc == -ETIMEDOUT && c.open_tx;
    return ok ? 0 : 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: @asynccontextmanager async def db_transaction(conn): "
         "... async with db_transaction(conn) as tx: ...");
    puts("  # C:      rc = db_transaction_enter(&conn, &tx); if (rc == 0) "
         "rc = db_transaction_exit(&tx, transfer(&tx, 30));");
    return tl_run(main_task, NULL) == 0 ? 0 : 1;
}
