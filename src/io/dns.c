/* Name resolution: getaddrinfo(3) on the loop's thread pool.
 *
 * getaddrinfo blocks (it may ask a DNS server and wait seconds), so it
 * runs as a runtime job of the pool (src/thread/pool.h). Everything the
 * worker touches is the job's own heap memory: copies of the host, the
 * service and the hints, and the result list getaddrinfo makes. So a
 * cancelled resolve returns -ECANCELED at once (invariant 1 holds because
 * nothing of the caller's is reachable from the job): the job becomes the
 * pool's, runs to its end, and its release frees the late result on the
 * loop's thread. On success the result list is handed over to the caller
 * (tl_freeaddrinfo). */
#include "io/io.h"
#include "thread/pool.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tests set this to hold a worker inside a resolve (cancel mid-flight);
 * it runs on the pool thread before getaddrinfo. */
void (*tl__dns_test_hook)(void);

typedef struct dns_job {
    tl__job job;
    char *host;             /* copies: the caller's strings are not */
    char *service;          /* touched after the call returned */
    struct addrinfo hints;
    int has_hints;
    struct addrinfo *res;   /* getaddrinfo's list until handed over */
    int gai;                /* getaddrinfo's return value */
    int err;                /* errno, for EAI_SYSTEM */
} dns_job;

static void dns_work(tl__job *j)
{
    dns_job *d = (dns_job *)j;
    if (tl__dns_test_hook) tl__dns_test_hook();
    errno = 0;
    d->gai = getaddrinfo(d->host, d->service, d->has_hints ? &d->hints : NULL,
                         &d->res);
    d->err = errno;
    if (d->gai != 0) d->res = NULL;
}

static void dns_release(tl__job *j)
{
    dns_job *d = (dns_job *)j;
    if (d->res) freeaddrinfo(d->res);
    free(d->host);
    free(d->service);
    free(d);
}

/* getaddrinfo's EAI_* -> tulip's negative code. */
static int gai_code(int gai, int err)
{
    switch (gai) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
    case EAI_SERVICE:
        return TL_ENONAME;
    case EAI_AGAIN: return -EAGAIN;
    case EAI_FAIL: return -EIO;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_FAMILY: return -EAFNOSUPPORT;
    case EAI_SOCKTYPE: return -ESOCKTNOSUPPORT;
    case EAI_BADFLAGS: return -EINVAL;
#ifdef EAI_OVERFLOW
    case EAI_OVERFLOW: return -EOVERFLOW;
#endif
    case EAI_SYSTEM: return err > 0 ? -err : -EIO;
    default: return -EIO;
    }
}

int tl_getaddrinfo(const char *host, const char *service,
                   const struct addrinfo *hints, struct addrinfo **out)
{
    tl__task *self = tl__task_self("tl_getaddrinfo");
    if (!self) return tl__not_task_error();
    if (!out || (!host && !service)) return -EINVAL;
    *out = NULL;
    dns_job *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->job.work = dns_work;
    d->job.release = dns_release;
    d->host = host ? strdup(host) : NULL;
    d->service = service ? strdup(service) : NULL;
    if ((host && !d->host) || (service && !d->service)) {
        dns_release(&d->job);
        return -ENOMEM;
    }
    if (hints) {
        /* Only the four input fields count (getaddrinfo(3)); the pointers
         * of the caller's struct are never followed. */
        d->hints.ai_flags = hints->ai_flags;
        d->hints.ai_family = hints->ai_family;
        d->hints.ai_socktype = hints->ai_socktype;
        d->hints.ai_protocol = hints->ai_protocol;
        d->has_hints = 1;
    }
    int rc = tl__pool_submit(self->loop, &d->job);
    if (rc == -ECANCELED) return rc; /* the job is the pool's now */
    if (rc < 0) {
        dns_release(&d->job);
        return rc;
    }
    if (d->gai != 0) {
        int code = gai_code(d->gai, d->err);
        const char *why = d->gai == EAI_SYSTEM && d->err > 0
                              ? strerror(d->err) : gai_strerror(d->gai);
        tl_fail(code, "getaddrinfo(%s%s%s, %s): %s",
                host ? "\"" : "", host ? host : "NULL", host ? "\"" : "",
                service ? service : "NULL", why);
        dns_release(&d->job);
        return code;
    }
    *out = d->res;
    d->res = NULL;
    dns_release(&d->job);
    return 0;
}

void tl_freeaddrinfo(struct addrinfo *ai)
{
    if (ai) freeaddrinfo(ai);
}
