/* docs/guide.md, "Shields: asyncio's and tulip's": a one-second commit,
 * its caller cancelled half way. With asyncio.shield's shape (spawn +
 * tl_wait) the caller returns at the cancel and the commit goes on alone;
 * with tulip's shield the caller finishes the commit and then sees the
 * cancel. On the virtual clock. */
#include <errno.h>
#include <math.h>
#include <tulip.h>

#include "check.h"

struct db {
    int committed;
};

static int commit_fn(void *arg)
{
    struct db *db = arg;
    int rc = tl_sleep(1.0); /* the commit takes a second */
    if (rc < 0) return rc;
    db->committed = 1;
    return 0;
}

/* guide: asyncio-shield */
/* await asyncio.shield(commit(db)): the commit runs as its own task; if we
 * are cancelled we stop waiting at once, and the commit goes on. *commit
 * is then still running: whoever owns it joins it later (or detaches it). */
static int save_asyncio_style(struct db *db, tl_task *commit)
{
    int rc = tl_spawn(commit, commit_fn, db);
    if (rc < 0) return rc;
    rc = tl_wait(1, commit, TL_WAIT_ALL_COMPLETED, INFINITY, NULL);
    if (rc < 0) return rc; /* -ECANCELED: the commit is still running */
    int status;
    TL_WITH_SHIELD(&rc) { /* it has finished: this join does not wait */
        rc = tl_join(*commit, &status);
    }
    *commit = (tl_task){0};
    return rc < 0 ? rc : status;
}
/* guide: end */

/* guide: trio-shield */
/* Trio's shield: the commit runs here, in this task, to its end; a cancel
 * that arrives meanwhile waits, and shows at our next suspending call. */
static int save_shielded(struct db *db)
{
    int rc;
    TL_WITH_SHIELD(&rc) {
        rc = commit_fn(db);
    }
    return rc;
}
/* guide: end */

struct caller {
    struct db db;
    tl_task commit;
    int rc;      /* what the save returned */
    double at;   /* when */
    int next_rc; /* the caller's next suspending call */
};

static int asyncio_caller(void *arg)
{
    struct caller *c = arg;
    c->rc = save_asyncio_style(&c->db, &c->commit);
    c->at = tl_now();
    return 0;
}

static int trio_caller(void *arg)
{
    struct caller *c = arg;
    c->rc = save_shielded(&c->db);
    c->at = tl_now();
    c->next_rc = tl_yield();
    return 0;
}

static void cancel_half_way(tl_fn fn, struct caller *c)
{
    tl_task t;
    double t0 = tl_now();
    CHECK(tl_spawn(&t, fn, c) == 0);
    CHECK(tl_sleep(0.5) == 0);
    CHECK(tl_cancel(t) == 0);
    int status;
    CHECK(tl_join(t, &status) == 0 && status == 0);
    c->at -= t0;
}

static int main_task(void *arg)
{
    (void)arg;
    struct caller a = {{0}, {0}, 0, 0, 0};
    cancel_half_way(asyncio_caller, &a);
    CHECK(a.rc == -ECANCELED);
    CHECK(fabs(a.at - 0.5) < 1e-9); /* returned at the cancel */
    CHECK(a.db.committed == 0);     /* the commit is still running */
    int status;
    CHECK(tl_join(a.commit, &status) == 0 && status == 0);
    CHECK(a.db.committed == 1);     /* and it finished */

    struct caller b = {{0}, {0}, 0, 0, 0};
    cancel_half_way(trio_caller, &b);
    CHECK(b.rc == 0);
    CHECK(fabs(b.at - 1.0) < 1e-9); /* returned when the commit was done */
    CHECK(b.db.committed == 1);
    CHECK(b.next_rc == -ECANCELED); /* the cancel showed after the shield */

    /* Not cancelled: the asyncio shape returns the commit's status. */
    struct caller c = {{0}, {0}, 0, 0, 0};
    CHECK(save_asyncio_style(&c.db, &c.commit) == 0 && c.db.committed == 1);
    return 0;
}

int main(void)
{
    tl_config cfg = {.virtual_clock = 1};
    return tl_run_with(&cfg, main_task, NULL) == 0 ? 0 : 1;
}
