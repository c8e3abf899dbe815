/* Connecting by host and port: resolve, then Happy Eyeballs (RFC 8305)
 * over every address, as asyncio's create_connection(happy_eyeballs_delay,
 * interleave) and Trio's open_tcp_stream do.
 *
 * Shape: the calling task opens a task group; each attempt is a child
 * task (socket + tl_connect, closing its socket unless it won). The body
 * starts attempt i+1 when attempt i failed or when `delay` passed since
 * the last start, whichever comes first, and stops at the first success:
 * the group is then cancelled, and tl_group_wait waits for every loser
 * to unwind and close its socket before the call returns. A cancel or a
 * deadline of the caller reaches the body and the children through the
 * group, so the same wait closes every attempt. Attempts never fail the
 * group (they return 0 and report in their record), so one refusal does
 * not cancel its siblings.
 *
 * Everything the children touch (the shared state, the attempt records,
 * the address copies) lives until tl_group_wait returned. */
#include "io/io.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HE_DEFAULT_DELAY 0.25 /* asyncio's and RFC 8305's recommendation */

typedef struct he {
    tl_event changed;  /* set when an attempt ended (won or failed) */
    int type;
    int winner;        /* the winning fd, or -1 */
    size_t ended;      /* attempts that ended without winning */
} he;

typedef struct he_try {
    he *h;
    const tl_sockaddr *addr;
    int rc;            /* 1 not started / running, 0 won, < 0 its error */
} he_try;

static int he_attempt(void *arg)
{
    he_try *t = arg;
    he *h = t->h;
    int fd = tl_socket(t->addr->u.sa.sa_family, h->type, 0);
    int rc = fd;
    if (fd >= 0) {
        rc = tl_connect(fd, &t->addr->u.sa, t->addr->len);
        if (rc == 0 && h->winner < 0) {
            h->winner = fd;
            t->rc = 0;
            tl_event_set(&h->changed);
            return 0;
        }
        tl_close(fd); /* lost the race, failed, or cancelled */
        if (rc == 0) rc = -ECANCELED;
    }
    t->rc = rc;
    h->ended++;
    tl_event_set(&h->changed);
    return 0; /* never a group failure: siblings go on */
}

/* Wait until an attempt ends after `seen` had, or one won. */
static int he_wait(he *h, size_t seen)
{
    while (h->winner < 0 && h->ended == seen) {
        tl_event_clear(&h->changed);
        int rc = tl_event_wait(&h->changed);
        if (rc < 0) return rc;
    }
    return 0;
}

/* RFC 8305 section 4: alternate families, `first` addresses of the first
 * family before the first of the other; otherwise the given order. */
static void interleave(const tl_sockaddr *addrs, size_t n, size_t first,
                       size_t *order)
{
    int fam0 = addrs[0].u.sa.sa_family;
    size_t a = 0, b = 0, k = 0; /* next candidate of fam0 / of the rest */
    size_t take_a = first;
    while (k < n) {
        while (a < n && addrs[a].u.sa.sa_family != fam0) a++;
        while (b < n && addrs[b].u.sa.sa_family == fam0) b++;
        if (a < n && (take_a > 0 || b >= n)) {
            order[k++] = a++;
            if (take_a) take_a--;
        } else if (b < n) {
            order[k++] = b++;
            take_a = 1;
        }
    }
}

static bool addr_ok(const tl_sockaddr *a, int type)
{
    int f = a->u.sa.sa_family;
    return (f == AF_INET || f == AF_INET6 || f == AF_UNIX) && a->len > 0 &&
           a->len <= sizeof a->u.ss && (type == SOCK_STREAM ||
                                        type == SOCK_DGRAM);
}

/* All attempts failed: the first attempt's code, and a message naming
 * every address with its error. */
static int he_failure(const tl_sockaddr *addrs, const size_t *order,
                      const he_try *tries, size_t n, const char *what)
{
    int code = tries[order[0]].rc;
    char msg[512];
    size_t len = 0;
    len += (size_t)snprintf(msg, sizeof msg, "%s: ", what);
    for (size_t i = 0; i < n && len < sizeof msg; i++) {
        char a[INET6_ADDRSTRLEN + 120];
        tl_sockaddr_format(&addrs[order[i]], a, sizeof a);
        len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s: %s",
                                i ? "; " : "", a,
                                tl_strerror(tries[order[i]].rc));
    }
    return tl_fail(code, "%s", msg);
}

static int connect_addrs(const tl_sockaddr *addrs, size_t n, int type,
                         const tl_connect_opts *opts, const char *what)
{
    double delay = opts ? opts->delay : 0.0;
    if (delay != delay) return -EINVAL; /* NaN */
    if (delay == 0.0) delay = HE_DEFAULT_DELAY;
    int first = opts && opts->interleave > 0 ? opts->interleave : 1;
    int family = opts ? opts->family : AF_UNSPEC;
    if (!addrs || n == 0) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!addr_ok(&addrs[i], type)) return -EINVAL;
    /* The family filter: the addresses the caller allows. */
    size_t m = 0;
    size_t *order = calloc(n, sizeof *order);
    he_try *tries = calloc(n, sizeof *tries);
    tl_sockaddr *list = calloc(n, sizeof *list);
    if (!order || !tries || !list) {
        free(order), free(tries), free(list);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (family == AF_UNSPEC || addrs[i].u.sa.sa_family == family)
            list[m++] = addrs[i];
    int result;
    if (m == 0) {
        result = tl_fail(-EAFNOSUPPORT, "%s: no address of the family asked",
                         what);
        goto out;
    }
    interleave(list, m, (size_t)first, order);

    he h = {.type = type, .winner = -1};
    tl_event_init(&h.changed);
    tl_group g;
    result = tl_group_enter(&g);
    if (result < 0) goto out_ev;
    size_t next = 0;
    int body = 0;
    while (h.winner < 0) {
        if (next < m) {
            he_try *t = &tries[order[next++]];
            t->h = &h;
            t->addr = &list[t - tries];
            t->rc = 1;
            tl_spawn_opts so = {.name = "happy eyeballs attempt"};
            int rc = tl_group_spawn_ex(g, &so, he_attempt, t, NULL);
            if (rc < 0) {
                t->rc = rc;
                h.ended++;
            }
        }
        if (h.ended == next) { /* every attempt so far has failed */
            if (next < m) continue;
            break;
        }
        size_t seen = h.ended;
        int w;
        if (next < m && delay > 0) {
            TL_WITH_MOVE_ON(delay, &w) { w = he_wait(&h, seen); }
        } else {
            w = he_wait(&h, seen);
        }
        if (w < 0) {
            body = w; /* the caller was cancelled: the group cancels all */
            break;
        }
    }
    if (h.winner >= 0) tl_group_cancel(g);
    int grc = tl_group_wait(g, body, NULL);
    if (h.winner >= 0) {
        /* Completed wins, also when a cancel came meanwhile: the fd is
         * the caller's, and the cancel shows at its next call. */
        result = h.winner;
    } else if (body < 0 || grc < 0) {
        result = body < 0 ? body : grc;
    } else {
        result = he_failure(list, order, tries, m, what);
    }
out_ev:
    tl_event_destroy(&h.changed);
out:
    free(order), free(tries), free(list);
    return result;
}

int tl_net_connect_addrs(const tl_sockaddr *addrs, size_t n, int type,
                         const tl_connect_opts *opts)
{
    tl__task *self = tl__task_self("tl_net_connect_addrs");
    if (!self) return tl__not_task_error();
    return connect_addrs(addrs, n, type, opts, "connect");
}

int tl_net_connect_host(const char *host, int port, int type,
                        const tl_connect_opts *opts)
{
    tl__task *self = tl__task_self("tl_net_connect_host");
    if (!self) return tl__not_task_error();
    if (!host || !*host || port < 0 || port > 65535 ||
        (type != SOCK_STREAM && type != SOCK_DGRAM))
        return -EINVAL;
    if (opts && opts->family != AF_UNSPEC && opts->family != AF_INET &&
        opts->family != AF_INET6)
        return -EINVAL;
    char svc[8];
    snprintf(svc, sizeof svc, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = opts ? opts->family : AF_UNSPEC;
    hints.ai_socktype = type;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *ai = NULL;
    int rc = tl_getaddrinfo(host, svc, &hints, &ai);
    if (rc < 0) return rc;
    size_t n = 0;
    for (struct addrinfo *p = ai; p; p = p->ai_next)
        if (p->ai_addrlen <= sizeof(struct sockaddr_storage) &&
            (p->ai_family == AF_INET || p->ai_family == AF_INET6))
            n++;
    tl_sockaddr *addrs = n ? calloc(n, sizeof *addrs) : NULL;
    if (n && !addrs) {
        tl_freeaddrinfo(ai);
        return -ENOMEM;
    }
    size_t k = 0;
    for (struct addrinfo *p = ai; p && k < n; p = p->ai_next)
        if (p->ai_addrlen <= sizeof(struct sockaddr_storage) &&
            (p->ai_family == AF_INET || p->ai_family == AF_INET6)) {
            memcpy(&addrs[k].u.ss, p->ai_addr, p->ai_addrlen);
            addrs[k].len = p->ai_addrlen;
            k++;
        }
    tl_freeaddrinfo(ai);
    if (n == 0)
        return tl_fail(TL_ENONAME, "connect to %s:%d: no IPv4 or IPv6 address",
                       host, port);
    char what[300];
    snprintf(what, sizeof what, "connect to %s:%d", host, port);
    rc = connect_addrs(addrs, n, type, opts, what);
    free(addrs);
    return rc;
}
