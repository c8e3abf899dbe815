/* Common pitfalls — don't forget. Each one shown live, in its C form.
 *
 *     # 1) Can't await inside a sync function
 *     def main():
 *         data = await fetch("a")    # SyntaxError
 *
 *     # 2) time.sleep blocks async
 *     async def fetch(url):
 *         time.sleep(1)              # the entire event loop stops
 *     async def fetch(url):
 *         await asyncio.sleep(1)     # OK
 *
 *     # 3) Creating a coroutine without awaiting it
 *     async def main():
 *         fetch("a")                 # created and not awaited: never runs
 *         print("done")
 *
 *     # 4) Don't call async from sync as if it were sync
 *     result = fetch("a")            # a coroutine object. Not the result.
 *
 * C has no `async` keyword, so the compiler cannot catch 1) and 4): tulip
 * catches them at run time instead. 2) is caught live by the loop's
 * watchdog thread. 3) has no warning in C at all: a deferred call
 * (tl_call) is a plain value, and nothing complains when it is dropped.
 */
#include <stdio.h>
#include <unistd.h>

#include <tulip.h>

struct fetch {
    const char *url;
    double seconds;
    char result[32];
};

static double t0;

static int fetch(void *arg)
{
    struct fetch *f = arg;
    int rc = tl_sleep(f->seconds);
    if (rc < 0) return rc;
    snprintf(f->result, sizeof f->result, "data from %s", f->url);
    return 0;
}

/* ---- 1) a suspending call outside a task ------------------------------- */

static int pitfall1(void)
{
    puts("-- 1) a suspending call outside a task (Python: 'await' outside "
         "'async def' is a SyntaxError)");
    puts("   main() calls tl_sleep(1.0) directly, not from a task:");
    fflush(stdout);
    int rc = tl_sleep(1.0);
    printf("   -> tl_sleep returned %s (%s) at once, and tulip said why on "
           "stderr.\n", tl_errname(rc), tl_strerror(rc));
    puts("   Fix: start async code at the entry point with "
         "tl_run(main_task, arg).");
    return rc == TL_ENOTASK ? 0 : 1;
}

/* ---- 2) a blocking call inside a task ---------------------------------- */

static volatile int ticks;

static int ticker(void *arg)
{
    (void)arg;
    while (tl_sleep(0.1) == 0) ticks++;
    return 0;
}

static int fetch_blocking(void *arg)
{
    (void)arg;
    printf("   [%.2f s] fetch: sleep(1) -- the whole loop stops:\n",
           tl_now() - t0);
    fflush(stdout);
    sleep(1); /* time.sleep(1): blocks the thread, and so every task */
    printf("   [%.2f s] fetch: sleep(1) returned\n", tl_now() - t0);
    return 0;
}

static int fetch_async(void *arg)
{
    (void)arg;
    printf("   [%.2f s] fetch: tl_sleep(1.0) -- only this task waits\n",
           tl_now() - t0);
    int rc = tl_sleep(1.0);
    printf("   [%.2f s] fetch: tl_sleep returned\n", tl_now() - t0);
    return rc;
}

/* Run fn as "fetch" beside a ticker that ticks every 0.1 s; return how
 * many ticks happened while fn ran. */
static int ticks_during(tl_fn fn)
{
    tl_task tick, job;
    if (tl_spawn_ex(&tick, &(tl_spawn_opts){.name = "ticker"}, ticker,
                    NULL) < 0)
        return -1;
    if (tl_spawn_ex(&job, &(tl_spawn_opts){.name = "fetch"}, fn, NULL) < 0)
        return -1;
    t0 = tl_now();
    ticks = 0;
    int st;
    int rc = tl_join(job, &st);
    int n = ticks;
    tl_cancel(tick);
    if (tl_join(tick, &st) < 0 || rc < 0) return -1;
    return n;
}

static int pitfall2(void *arg)
{
    (void)arg;
    puts("-- 2) time.sleep blocks async: sleep(1) in a task, beside a "
         "ticker that ticks every 0.1 s");
    int blocked = ticks_during(fetch_blocking);
    printf("   ticker ticked %d time(s) during the blocking fetch\n",
           blocked);
    puts("   ... and with tl_sleep(1.0), the C form of await "
         "asyncio.sleep(1):");
    int free_ = ticks_during(fetch_async);
    printf("   ticker ticked %d time(s) during the async fetch\n", free_);
    puts("   Other blocking calls (blocking DB drivers, HTTP clients, "
         "file I/O) stop the loop the same way: use tulip's own calls, or "
         "run them with tl_to_thread (asyncio.to_thread).");
    return blocked >= 0 && blocked <= 2 && free_ >= 5 ? 0 : 1;
}

/* ---- 3) a deferred call that is never spawned -------------------------- */

static int pitfall3(void *arg)
{
    (void)arg;
    puts("-- 3) a coroutine object that is never awaited: in C, a tl_call "
         "that is never spawned");
    struct fetch a = {"a", 0.1, ""};
    tl_call c = TL_CALL(fetch, &a); /* fetch("a"): created, not run */
    int rc = tl_sleep(0.3);
    if (rc < 0) return rc;
    printf("   made TL_CALL(%s, &a), waited 0.3 s: a.result = '%s' -- it "
           "never ran, and nothing warned (Python would say \"coroutine "
           "'fetch' was never awaited\")\n", c.name, a.result);
    int ran_early = a.result[0] != '\0';
    int st;
    rc = tl_gather(1, &c, &st); /* now someone runs it */
    printf("   tl_gather(1, &c, ...) -> %d: a.result = '%s'\n", rc,
           a.result);
    puts("   Note: inside a task, a plain call fetch(&a) is not this "
         "pitfall -- it IS C's `await fetch(\"a\")`.");
    return !ran_early && rc == 0 && st == 0 ? 0 : 1;
}

/* ---- 4) calling a task function from plain C code ---------------------- */

static int pitfall4(void)
{
    puts("-- 4) calling async from sync as if it were sync: fetch(&a) from "
         "main(), outside tl_run");
    fflush(stdout);
    struct fetch a = {"a", 0.1, ""};
    int rc = fetch(&a); /* result = fetch("a") */
    printf("   -> fetch returned %s and a.result = '%s'. In Python it "
           "would be a coroutine object, not the result; in C the body runs "
           "at once and its first wait fails.\n", tl_errname(rc), a.result);
    int bad = rc == TL_ENOTASK && a.result[0] == '\0';
    rc = tl_run(fetch, &a); /* asyncio.run(fetch("a")) */
    printf("   tl_run(fetch, &a) -> %d: a.result = '%s'\n", rc, a.result);
    return bad && rc == 0 ? 0 : 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("  # Python: data = await fetch(\"a\") in a def; time.sleep(1) in an "
         "async def; fetch(\"a\") never awaited; result = fetch(\"a\")");
    puts("  # C:      each is shown below with what tulip says about it");
    int bad = 0;
    bad |= pitfall1();
    bad |= tl_run(pitfall2, NULL) != 0;
    bad |= tl_run(pitfall3, NULL) != 0;
    bad |= pitfall4();
    return bad ? 1 : 0;
}
