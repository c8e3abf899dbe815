/* docs/guide.md, "Ctrl-C": a service that runs until Ctrl-C, then saves
 * its state in a shield and exits 130. ctrl_c.sh runs it, waits for its
 * "serving" line and sends it SIGINT. */
#include <errno.h>
#include <stdio.h>
#include <tulip.h>

struct state {
    int ticks;
    int saved;
};

static int save_state(struct state *st)
{
    int rc = tl_sleep(0.05); /* a flush that waits */
    if (rc == 0) st->saved = 1;
    return rc;
}

/* guide: serve */
static int serve(void *arg)
{
    struct state *st = arg;
    printf("serving; Ctrl-C to stop\n");
    fflush(stdout);
    int rc;
    while ((rc = tl_sleep(1.0)) == 0) /* the work, until cancelled */
        st->ticks++;
    /* rc is -ECANCELED: Ctrl-C cancelled this, the main task. The cleanup
     * must wait too, so it runs in a shield (the cancel does not reach
     * in) with its own deadline (it cannot hang the exit). */
    int crc;
    TL_WITH_SHIELD(&crc) {
        TL_WITH_TIMEOUT(5.0, &crc) {
            crc = save_state(st);
        }
    }
    return crc < 0 ? crc : rc;
}

int main(void)
{
    struct state st = {0};
    int rc = tl_run(serve, &st);
    if (rc == -ECANCELED) {
        fprintf(stderr, "interrupted after %d ticks, state %s\n", st.ticks,
                st.saved ? "saved" : "NOT saved");
        return 130; /* the shell's code for "killed by SIGINT" */
    }
    if (rc < 0) fprintf(stderr, "serve: %s\n", tl_strerror(rc));
    return rc < 0;
}
/* guide: end */
