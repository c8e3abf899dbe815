/* The epoll backend. For now it waits for timers and wake-ups (an eventfd
 * written by other threads and the SIGINT handler); fd readiness for the
 * I/O layer registers here too, once per fd, edge-triggered. */
#include "internal.h"

#include <stdlib.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

typedef struct epoll_state {
    int epfd;
} epoll_state;

static int ep_open(tl__loop *l)
{
    epoll_state *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int e = -errno;
        free(s);
        return e;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
        int e = -errno;
        close(s->epfd);
        free(s);
        return e;
    }
    l->be = s;
    return 0;
}

static void ep_close(tl__loop *l)
{
    epoll_state *s = l->be;
    if (!s) return;
    close(s->epfd);
    free(s);
    l->be = NULL;
}

/* epoll_pwait2 (Linux 5.11) takes a timespec, so sub-millisecond sleeps
 * are not rounded up to a whole millisecond; older kernels say ENOSYS once
 * and we fall back to epoll_wait. */
static _Atomic int have_pwait2 = 1; /* relaxed: a sticky hint shared by loops */

static int ep_poll(tl__loop *l, int64_t timeout_ns)
{
    epoll_state *s = l->be;
    struct epoll_event evs[64];
    int n = -1;
    if (have_pwait2) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        n = epoll_pwait2(s->epfd, evs, 64, tsp, NULL);
        if (n < 0 && errno == ENOSYS) have_pwait2 = 0;
    }
    if (!have_pwait2) {
        int ms;
        if (timeout_ns < 0)
            ms = -1;
        else {
            /* Round up: waking early would only spin through a poll. */
            int64_t m = (timeout_ns + 999999) / 1000000;
            ms = m > 3600000 ? 3600000 : (int)m;
        }
        n = epoll_wait(s->epfd, evs, 64, ms);
    }
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) tl__loop_wake_drain(l);
    }
    return n;
}

const tl__backend tl__backend_epoll = {
    .name = "epoll",
    .open = ep_open,
    .close = ep_close,
    .poll = ep_poll,
};
