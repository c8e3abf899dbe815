/* tulip/wait.h — included by <tulip.h>; do not include directly.
 *
 * Waiting for several tasks: asyncio.as_completed and asyncio.wait.
 *
 *   tl_waitset   as_completed: a set of tasks and deferred calls that
 *                yields each one as it finishes, in completion order, with
 *                a timeout. It never cancels a task it was given; it owns
 *                the tasks it spawned from deferred calls, and closing it
 *                early cancels and joins those — so the seed's `race` leaves
 *                no loser running past its caller.
 *   tl_wait      asyncio.wait(tasks, return_when=...): wait until the first
 *                task finishes, the first one fails, or all finish; report
 *                which are done. It never cancels and never joins.
 *
 *     // the seed's race(): the fastest of three fetches wins
 *     tl_waitset *ws;
 *     if ((rc = tl_waitset_new(&ws)) < 0) return rc;
 *     for (int i = 0; i < 3; i++)
 *         tl_waitset_add_call(ws, TL_CALL(fetch, &req[i]), &req[i]);
 *     tl_waitset_item it;
 *     double end = tl_now() + 5.0;             // as_completed(timeout=5)
 *     while ((rc = tl_waitset_next_until(ws, end, &it)) == 0)
 *         if (it.status >= 0) break;           // a winner
 *     tl_waitset_close(ws);                    // cancels and joins losers
 */
#ifndef TULIP_WAIT_H
#define TULIP_WAIT_H

#ifdef __cplusplus
extern "C" {
#endif

/* ---- wait sets: as_completed ------------------------------------------- */

/* A wait set (opaque; heap). It belongs to the loop of the task that made
 * it; only that loop's tasks may use it, one tl_waitset_next at a time. */
typedef struct tl_waitset tl_waitset;

/* One finished member, as tl_waitset_next yields it. */
typedef struct tl_waitset_item {
    void *tag;         /* the tag given when it was added */
    int status;        /* its return value (>= 0 result, < 0 error) */
    char name[32];     /* its task name ("task #<slot>" if none) */
    char message[200]; /* the tl_fail message attached to status, or "" */
} tl_waitset_item;

/* Make an empty set. Returns 0 and *out, -EINVAL (out NULL), -ENOMEM,
 * TL_ENOTASK outside a task. Never suspends. Free with tl_waitset_close;
 * a set still open when tl_run ends is named on stderr, like a failed
 * task nobody joined, and freed (with the failures of members it spawned
 * that nobody saw). */
TL_API int tl_waitset_new(tl_waitset **out);

/* Add a task the caller spawned (asyncio.as_completed over tasks). The set
 * becomes the task's joiner: tl_join on it is refused (-EINVAL) while it
 * is in the set, and when tl_waitset_next yields it the set joins it (the
 * handle goes stale; the status is in the item). If the set is closed
 * first, the task goes back to the caller unjoined and still running or
 * finished: join or detach it as usual. The set never cancels it.
 * A task that already finished is yielded first, in the order added.
 * Returns 0; -ESRCH stale handle; -EXDEV another loop's task; -EINVAL
 * already joined/being joined, detached, a group member (or ws NULL);
 * -EDEADLK the running task itself; -ESHUTDOWN the set is closing.
 * Never suspends. */
TL_API int tl_waitset_add_task(tl_waitset *ws, tl_task t, void *tag);

/* Spawn call.fn(call.arg) as a task (named call.name) owned by the set
 * (as_completed over coroutines). Like tl_spawn, it belongs to no group
 * and inherits no scope of the caller. The set joins it when it yields it;
 * tl_waitset_close cancels it if it is still running and joins it.
 * call.arg must stay valid until then. Returns 0, -EINVAL (fn NULL),
 * -ENOMEM (nothing spawned), -ESHUTDOWN the set is closing. Never
 * suspends. */
TL_API int tl_waitset_add_call(tl_waitset *ws, tl_call call, void *tag);

/* Wait up to `timeout` seconds (INFINITY: no limit; <= 0: do not wait;
 * NaN: -EINVAL) for the next member to finish, and yield it: *out
 * receives its tag, status, name and message, and the set joins it.
 * Members are yielded in the order they finished. Returns
 *   0            *out filled;
 *   TL_EOF       the set is empty: every member was yielded;
 *   -ETIMEDOUT   nothing finished in time (the set is unchanged: call
 *                again, or close it);
 *   -ECANCELED   the caller was cancelled before a member finished (the
 *                set is unchanged; its members keep running: close the
 *                set to stop the calls). A member that finished first is
 *                yielded (0) and the cancel shows at the next call;
 *   -EBUSY       another task is inside tl_waitset_next on this set;
 *   -EINVAL      ws or out NULL, or the time NaN; -EXDEV another loop's
 *                set.
 * SUSPENDS. */
TL_API TL_NODISCARD int tl_waitset_next(tl_waitset *ws, double timeout,
                                        tl_waitset_item *out);

/* As tl_waitset_next with an absolute deadline on tl_now()'s clock: the
 * overall timeout of as_completed(timeout=...) —
 *     double end = tl_now() + 5.0;
 *     while ((rc = tl_waitset_next_until(ws, end, &it)) == 0) { ... }
 * SUSPENDS. */
TL_API TL_NODISCARD int tl_waitset_next_until(tl_waitset *ws, double when,
                                              tl_waitset_item *out);

/* Members not yet yielded (running or finished). 0 for NULL. Never
 * suspends. */
TL_API size_t tl_waitset_count(const tl_waitset *ws);

/* Close and free the set. Calls it spawned that are still running are
 * cancelled, and the call waits for all of them to finish (this wait
 * ignores cancellation: they may write memory the caller owns); a spawned
 * call that finished with an error nobody saw is reported on stderr
 * (invariant 7). Tasks given with tl_waitset_add_task go back to the
 * caller unjoined, whether finished or not. tl_waitset_close(NULL) returns
 * 0. Returns 0; -EBUSY (nothing done) if a task is inside
 * tl_waitset_next on this set; TL_ENOTASK, -EXDEV. SUSPENDS (only when it
 * has calls to wait for). */
TL_API int tl_waitset_close(tl_waitset *ws);

/* ---- tl_wait: asyncio.wait ---------------------------------------------- */

enum tl_wait_mode {
    TL_WAIT_FIRST_COMPLETED = 1, /* return when any task finishes */
    TL_WAIT_FIRST_EXCEPTION = 2, /* ... when any task fails (a negative
                                    status other than -ECANCELED of a
                                    task that was cancelled), or all
                                    finished */
    TL_WAIT_ALL_COMPLETED = 3,   /* return when all finished */
};

/* asyncio.wait(tasks, timeout, return_when=mode): wait until `mode` is
 * satisfied or `timeout` seconds passed (INFINITY: no limit; <= 0: just
 * look; NaN: -EINVAL). done_flags (may be NULL) receives n flags: 1 for a
 * task that finished (the "done" set), 0 for one still running
 * ("pending").
 * Finished tasks stay joinable: tl_wait neither joins nor cancels; join
 * them (their status is then at hand at once) or detach them. The same
 * task may appear twice. Returns the number of finished tasks (so 0 after
 * a timeout with none done, n when all finished); -ECANCELED if the caller
 * was cancelled (done_flags is still filled); -EINVAL (bad mode, tasks
 * NULL with n > 0, timeout NaN), -ESRCH / -EXDEV a bad handle (nothing
 * waited), -ENOMEM, TL_ENOTASK. SUSPENDS. */
TL_API TL_NODISCARD int tl_wait(size_t n, const tl_task *tasks, int mode,
                                double timeout, int *done_flags);

#ifdef __cplusplus
}
#endif

#endif
