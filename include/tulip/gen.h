/* tulip/gen.h — included by <tulip.h>; do not include directly.
 *
 * Async generators and `async for`.
 *
 *     async def stream_lines(url):          static int stream_lines(tl_gen *g, void *arg)
 *         async with connect(url) as c:     {   conn *c = connect(arg);
 *             async for line in c:              char *line;
 *                 yield line                    int rc = 0;
 *                                               while (rc == 0 && (line = read_line(c)))
 *                                                   rc = tl_gen_yield(g, line);
 *                                               disconnect(c);   // cleanup, also when closed early
 *                                               return rc < 0 ? rc : 0;
 *                                           }
 *
 *     async for line in stream_lines(u):    tl_gen *g;
 *         print(line)                       tl_gen_new(&g, stream_lines, u, NULL);
 *                                           const char *line; int rc;
 *                                           TL_GEN_FOREACH(g, line, &rc) puts(line);
 *                                           tl_gen_close(g);
 *
 * The producer runs as its own task, and the consumer and the producer
 * pass the CPU straight to each other (no trip through the run queue) —
 * at most a fixed number of times per loop iteration, after which the
 * switch goes through the scheduler so the pair never starves the other
 * tasks or the poller (invariant 9). As with a Python async generator, the
 * producer runs only while a consumer waits in tl_gen_next: it starts at
 * the first tl_gen_next and stops at each tl_gen_yield.
 *
 * Closing early, or cancelling the consumer while it waits for a value,
 * cancels the producer: its tl_gen_yield (or whatever it is waiting on)
 * returns -ECANCELED, it runs its cleanup and returns. A producer's
 * failure (a negative return) reaches the consumer through tl_gen_next
 * (or tl_gen_close, if no tl_gen_next returned it), and with it the
 * message the producer attached with tl_fail: the consumer then holds it
 * as if it had called tl_fail itself, so tl_fail_message(rc) there gives
 * it, and it travels on when the consumer returns the same code (to its
 * joiner, its group's error list, the never-joined report) — the way a
 * Python exception leaves an async generator.
 */
#ifndef TULIP_GEN_H
#define TULIP_GEN_H

#ifdef __cplusplus
extern "C" {
#endif

/* A generator (opaque; heap). Belongs to the loop of the task that made
 * it. */
typedef struct tl_gen tl_gen;

/* The producer: yields values with tl_gen_yield(g, v) and returns >= 0
 * when exhausted, or a negative error (which the consumer receives). It
 * runs in its own task, so it may call any suspending function. */
typedef int (*tl_gen_fn)(tl_gen *g, void *arg);

typedef struct tl_gen_opts {
    const char *name;  /* the producer task's name; NULL = "generator" */
    size_t stack_size; /* 0 = the loop's default */
} tl_gen_opts;

/* Make a generator of producer(g, arg) (opts may be NULL). Nothing of the
 * producer's body runs before the first tl_gen_next — but it always runs:
 * a generator closed before its first value still calls producer(g, arg),
 * which meets -ECANCELED at its first suspending call, so the cleanup
 * that frees arg runs (invariant 5). arg must stay valid until
 * tl_gen_close returns. The producer task belongs to no group and
 * inherits no scope of its maker (the consumer's cancellation reaches it
 * through tl_gen_next and tl_gen_close). Returns 0 and *out, -EINVAL
 * (out or producer NULL), -ENOMEM, TL_ENOTASK. Never suspends. Every
 * generator must be closed with tl_gen_close; one still open when tl_run
 * ends (its producer was cancelled with the other tasks) is named on
 * stderr, like a failed task nobody joined, and freed. */
TL_API int tl_gen_new(tl_gen **out, tl_gen_fn producer, void *arg,
                      const tl_gen_opts *opts);

/* The consumer's `await anext(g)`: run the producer until it yields the
 * next value (stored in *value, if value is not NULL) or returns.
 * Returns
 *   0             a value;
 *   TL_EGENDONE   the producer returned >= 0 (and on every later call);
 *   < 0           the producer's error, once (later calls: TL_EGENDONE);
 *   -ECANCELED    the consumer was already cancelled when it called
 *                 (nothing happened: the generator is unchanged), or it
 *                 was cancelled while it waited for a value and the
 *                 producer unwound from the cancel. A cancel while it
 *                 waits is forwarded to the producer and the call returns
 *                 only after the producer finished its cleanup (its
 *                 memory may be the consumer's); the generator is then
 *                 exhausted, and by the rule in tulip.h's Model the call
 *                 returns what the producer ended with: -ECANCELED, its
 *                 real error, or TL_EGENDONE if it simply returned;
 *   -EBUSY        another task is inside tl_gen_next on g;
 *   TL_ECLOSED    another task is inside tl_gen_close on g;
 *   -EDEADLK      called by g's own producer;
 *   -EINVAL       g NULL; -EXDEV another loop's generator; TL_ENOTASK.
 * A value is the producer's pointer, valid for as long as the producer
 * says (typically until the next tl_gen_next or tl_gen_close). One
 * consumer at a time. SUSPENDS. */
TL_API TL_NODISCARD int tl_gen_next(tl_gen *g, void **value);

/* The producer's `yield value`: hand value to the waiting consumer and
 * suspend until it asks for the next one. Returns 0 (asked again), or
 * -ECANCELED: the generator was closed or its consumer cancelled — clean
 * up and return (a yield after that returns -ECANCELED again, also inside
 * a shield: nobody will take the value). -EPERM (with a diagnostic) when
 * called by any task other than g's producer. SUSPENDS. */
TL_API TL_NODISCARD int tl_gen_yield(tl_gen *g, void *value);

/* Close and free the generator (aclose): cancel the producer if it has
 * not finished, wait for it to finish its cleanup (this wait ignores
 * cancellation), then free. Returns 0; the producer's error if it failed
 * with one that tl_gen_next never returned (a failure in its cleanup, say;
 * -ECANCELED caused by the close itself is not a failure); -EBUSY (nothing
 * done) if a task is inside tl_gen_next on g; -EDEADLK called by the
 * producer itself; -EXDEV, TL_ENOTASK. tl_gen_close(NULL) returns 0.
 * SUSPENDS (only while the producer has not finished). */
TL_API int tl_gen_close(tl_gen *g);

/* `async for v in g:` — runs the body once per value, with v (any object
 * pointer type) set to it. *rcp is set to 0 when the generator is
 * exhausted (or the body breaks out), else to the error that ended the
 * loop (the producer's failure, -ECANCELED, ...). `break` leaves the loop;
 * close the generator afterwards in every case.
 *
 *     const char *line; int rc;
 *     TL_GEN_FOREACH(g, line, &rc) { if (!*line) break; puts(line); }
 *     int crc = tl_gen_close(g);
 *     if (rc == 0) rc = crc;
 */
#define TL_GEN_FOREACH(g, v, rcp)                                           \
    for (void *TL__CAT(tl__gv_, __LINE__);                                  \
         tl__gen_step((g), &TL__CAT(tl__gv_, __LINE__), (rcp)) &&           \
         ((v) = TL__CAT(tl__gv_, __LINE__), 1);)

/* Implementation detail of TL_GEN_FOREACH: 1 with a value, else 0 with
 * *rcp set (0 when exhausted). SUSPENDS. */
TL_API int tl__gen_step(tl_gen *g, void **value, int *rcp);

#ifdef __cplusplus
}
#endif

#endif
