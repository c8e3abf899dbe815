/* Take only the first to finish — as_completed.
 *
 *     async def race(tasks):
 *         for coro in asyncio.as_completed(tasks):
 *             result = await coro
 *             if result.is_winner:
 *                 return result
 *
 * A wait set (tl_waitset) is as_completed: it yields its members as they
 * finish, fastest first. Here the members are deferred calls (the
 * "coroutines" of C) that the set spawns and owns, so when race() has its
 * winner and closes the set early, the losers are cancelled and joined
 * before tl_waitset_close returns: each runs its cleanup, and nothing is
 * left running behind race()'s back. (In Python the losers of this loop
 * keep running until the event loop ends.)
 */
#include <stdio.h>
#include <string.h>

#include <tulip.h>

struct fetch {
    const char *url;
    double delay;
    char result[32];
};

static double t0;

static int fetch(void *arg)
{
    struct fetch *f = arg;
    printf("[%.2f s] fetch %s: started (%.1f s)\n", tl_now() - t0, f->url,
           f->delay);
    int rc = tl_sleep(f->delay);
    if (rc < 0) {
        /* The cleanup a loser runs when the race is over. */
        printf("[%.2f s] fetch %s: cancelled, cleaning up\n", tl_now() - t0,
               f->url);
        return rc;
    }
    snprintf(f->result, sizeof f->result, "data from %s", f->url);
    printf("[%.2f s] fetch %s: done\n", tl_now() - t0, f->url);
    return 0;
}

/* race(): the first fetch to succeed wins; the others are cancelled. */
static int race(struct fetch *f, int n, struct fetch **winner)
{
    tl_waitset *ws;
    int rc = tl_waitset_new(&ws);
    if (rc < 0) return rc;
    for (int i = 0; i < n && rc == 0; i++)
        rc = tl_waitset_add_call(ws, TL_CALL(fetch, &f[i]), &f[i]);

    *winner = NULL;
    tl_waitset_item it;
    while (rc == 0 && (rc = tl_waitset_next(ws, 5.0, &it)) == 0) {
        if (it.status >= 0) { /* result.is_winner */
            *winner = it.tag;
            break;
        }
    }
    printf("[%.2f s] race: closing the set (the losers are cancelled and "
           "joined)\n", tl_now() - t0);
    tl_waitset_close(ws);
    printf("[%.2f s] race: closed, nothing left running\n", tl_now() - t0);
    return *winner ? 0 : rc;
}

static int main_task(void *arg)
{
    (void)arg;
    t0 = tl_now();
    struct fetch f[3] = {{"a", 0.3, ""}, {"b", 0.1, ""}, {"c", 0.2, ""}};
    struct fetch *winner;
    int rc = race(f, 3, &winner);
    if (rc < 0) return rc;
    printf("[%.2f s] winner: %s -> '%s'\n", tl_now() - t0, winner->url,
           winner->result);
    /* The losers never finished, and nothing else is running. */
    return winner == &f[1] && !f[0].result[0] && !f[2].result[0] ? 0 : 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: for coro in asyncio.as_completed(tasks): "
         "result = await coro; ...");
    puts("  # C:      while (tl_waitset_next(ws, 5.0, &it) == 0) { ... }; "
         "tl_waitset_close(ws);");
    return tl_run(main_task, NULL) == 0 ? 0 : 1;
}
