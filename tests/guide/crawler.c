/* docs/guide.md, "Gather, a group or a wait set": 200 simulated fetches
 * four ways, on the virtual clock, with the outcome of each checked. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tulip.h>

#include "check.h"

#define NPAGES 200

/* A stand-in for an HTTP GET: most pages take 0.1 to 0.5 s, every tenth
 * hangs for a minute, every seventeenth fails. */
static int http_get(int id)
{
    int rc = tl_sleep(id % 10 == 3 ? 60.0 : 0.1 * (1 + id % 5));
    if (rc < 0) return rc;
    if (id % 17 == 0) return tl_fail(-EIO, "page %d: HTTP 500", id);
    return 0;
}

struct site;

/* guide: page */
struct page {
    int id;
    int status;         /* 1 not fetched yet, 0 fetched, < 0 why not */
    char error[64];     /* the failure's message */
    struct site *site;  /* for the group version: where to spawn links */
};

static tl_sem limit = TL_SEM_INITIALIZER(20); /* 20 fetches at a time */

/* One page. Its failure is data, recorded in the page, not the task's
 * failure: only a cancellation (we are being stopped) is returned. */
static int fetch_page(void *arg)
{
    struct page *p = arg;
    int rc;
    TL_WITH_SEM(&limit, &rc) {          /* wait for one of the 20 permits */
        TL_WITH_TIMEOUT(5.0, &rc) {     /* then 5 s for this page */
            rc = http_get(p->id);
        }
    }
    if (rc == -ECANCELED) return rc;
    p->status = rc;
    if (rc < 0) {
        const char *msg = tl_fail_message(rc);
        snprintf(p->error, sizeof p->error, "%s", msg ? msg : tl_strerror(rc));
    }
    return 0;
}
/* guide: end */

/* guide: gather */
static int crawl_gather(struct page *pages, size_t n)
{
    tl_call *calls = calloc(n, sizeof *calls);
    if (!calls) return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        calls[i] = TL_CALL(fetch_page, &pages[i]);
    int rc = tl_gather(n, calls, NULL); /* 0 once every page is done */
    free(calls);
    return rc;
}
/* guide: end */

/* guide: group */
struct site {
    tl_group group;
    struct page pages[NPAGES];
};

/* Fetch a page, then crawl the pages it links to (here: 2i+1 and 2i+2),
 * as siblings in the same group. */
static int crawl_page(void *arg)
{
    struct page *p = arg;
    int rc = fetch_page(p);
    if (rc < 0 || p->status < 0) return rc; /* stopped, or no links */
    for (int link = 2 * p->id + 1; link <= 2 * p->id + 2; link++) {
        if (link >= NPAGES) break;
        rc = tl_group_spawn(p->site->group, crawl_page, &p->site->pages[link]);
        if (rc < 0) return rc;
    }
    return 0;
}

static int crawl_site(struct site *s)
{
    int rc;
    TL_WITH_GROUP(&s->group, &rc) {
        rc = tl_group_spawn(s->group, crawl_page, &s->pages[0]);
    } /* waits here for every page, including those spawned on the way */
    return rc;
}
/* guide: end */

/* guide: naive */
static int fetch_or_fail(void *arg) /* returns the page's failure */
{
    struct page *p = arg;
    p->status = http_get(p->id);
    return p->status;
}

static int crawl_naive(struct page *pages, size_t n)
{
    int rc;
    tl_group g;
    TL_WITH_GROUP(&g, &rc) {
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = tl_group_spawn(g, fetch_or_fail, &pages[i]);
    }
    return rc; /* -EIO: page 0 failed, and the group cancelled the rest */
}
/* guide: end */

/* guide: waitset */
/* The first `want` pages that load within `within` seconds; the rest are
 * cancelled. Returns how many loaded. */
static int first_pages(struct page *pages, size_t n, size_t want,
                       double within)
{
    tl_waitset *ws;
    int rc = tl_waitset_new(&ws);
    if (rc < 0) return rc;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = tl_waitset_add_call(ws, TL_CALL(fetch_page, &pages[i]), &pages[i]);
    size_t loaded = 0;
    double end = tl_now() + within;
    tl_waitset_item it;
    while (rc == 0 && loaded < want &&
           (rc = tl_waitset_next_until(ws, end, &it)) == 0) {
        struct page *p = it.tag;
        if (p->status == 0) loaded++;
    }
    tl_waitset_close(ws); /* cancels and joins the fetches still running */
    if (rc == -ECANCELED || rc == -ENOMEM) return rc;
    return (int)loaded; /* also after TL_EOF (all done) or -ETIMEDOUT */
}
/* guide: end */

static struct site site;

static void reset(void)
{
    memset(&site, 0, sizeof site);
    for (int i = 0; i < NPAGES; i++) {
        site.pages[i].id = i;
        site.pages[i].status = 1;
        site.pages[i].site = &site;
    }
}

static void count(int *ok, int *timedout, int *failed, int *other)
{
    *ok = *timedout = *failed = *other = 0;
    for (int i = 0; i < NPAGES; i++) {
        int s = site.pages[i].status;
        if (s == 0) ++*ok;
        else if (s == -ETIMEDOUT) ++*timedout;
        else if (s == -EIO) ++*failed;
        else ++*other;
    }
}

/* Every page's outcome is its own: 20 hang (timed out), the failures are
 * recorded with their message, the rest loaded. */
static void check_all_recorded(void)
{
    int ok, timedout, failed, other;
    count(&ok, &timedout, &failed, &other);
    CHECK(timedout == 20);
    CHECK(failed == 11); /* 0, 17, ..., 187 but 153, which hangs */
    CHECK(ok == NPAGES - 20 - 11);
    CHECK(other == 0);
    CHECK(strcmp(site.pages[17].error, "page 17: HTTP 500") == 0);
    CHECK(strcmp(site.pages[3].error, tl_strerror(-ETIMEDOUT)) == 0);
}

static int main_task(void *arg)
{
    (void)arg;
    reset();
    double t0 = tl_now();
    CHECK(crawl_gather(site.pages, NPAGES) == 0);
    check_all_recorded();
    CHECK(tl_now() - t0 < 60.0); /* the hung pages did not hold it up */

    /* The group crawls only what is linked from a page that loaded. */
    reset();
    CHECK(crawl_site(&site) == 0);
    int ok, timedout, failed, other;
    count(&ok, &timedout, &failed, &other);
    CHECK(site.pages[0].status == -EIO); /* page 0 fails: nothing linked */
    CHECK(ok == 0 && other == NPAGES - 1);

    reset();
    site.pages[0].id = 1; /* page 0 loads now, so its links are followed */
    CHECK(crawl_site(&site) == 0);
    count(&ok, &timedout, &failed, &other);
    CHECK(site.pages[0].status == 0);
    CHECK(ok > 20 && timedout > 0 && failed > 0);

    /* The naive group: the first failure cancels every sibling. */
    reset();
    t0 = tl_now();
    CHECK(crawl_naive(site.pages, NPAGES) == -EIO);
    count(&ok, &timedout, &failed, &other);
    CHECK(failed == 3); /* 0, 85 and 170 fail at the same 0.1 s */
    CHECK(ok == 37);           /* the 0.1 s pages that loaded */
    CHECK(other == NPAGES - ok - failed); /* the rest: -ECANCELED */
    CHECK(tl_now() - t0 < 1.0);

    reset();
    t0 = tl_now();
    CHECK(first_pages(site.pages, NPAGES, 10, 2.0) == 10);
    CHECK(tl_now() - t0 < 2.0);
    count(&ok, &timedout, &failed, &other);
    CHECK(ok >= 10 && other > 100); /* the rest were cancelled */
    return 0;
}

int main(void)
{
    tl_config cfg = {.virtual_clock = 1};
    return tl_run_with(&cfg, main_task, NULL) == 0 ? 0 : 1;
}
