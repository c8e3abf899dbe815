#include <stdio.h>
#include <tulip.h>

static int greet(void *arg)
{
    const char *who = arg;
    int rc = tl_sleep(0.1); /* await asyncio.sleep(0.1) */
    if (rc < 0) return rc;  /* cancelled: unwind */
    printf("hello, %s\n", who);
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    tl_call calls[] = {TL_CALL(greet, "world"), TL_CALL(greet, "tulip")};
    return tl_gather(2, calls, NULL); /* both at once: 0.1 s in all */
}

int main(void)
{
    int rc = tl_run(main_task, NULL);
    if (rc < 0) fprintf(stderr, "hello: %s\n", tl_strerror(rc));
    return rc < 0;
}
