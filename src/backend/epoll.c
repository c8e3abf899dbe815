/* The epoll backend: a readiness backend. The I/O layer makes the system
 * calls itself (non-blocking, tried first) and asks this file only to be
 * told when an fd becomes ready:
 *
 * - one registration per fd for its life (fd_ctl, from src/io/fd.c), made
 *   the first time a call on it would block, edge-triggered with
 *   EPOLLIN | EPOLLOUT | EPOLLRDHUP: no epoll_ctl per wait (ADD + DEL is
 *   ~1,500 ns here, a wait ~160). Level-triggered only while a persistent
 *   watcher (tl_fd_watch) uses the fd, since the libraries that use them
 *   expect level semantics;
 * - each event carries the record's tag (generation << 32 | fd), so an
 *   event for a record that was forgotten earlier in the same batch (the
 *   fd closed through tulip, maybe reopened as a new record) is dropped by
 *   tl__fd_event, never applied to the new owner of the number;
 * - the wake eventfd is data.u64 == 0 (record generations start at 1).
 *
 * Kernel-wait errors: EINTR is a normal return (the SIGINT handler's flag
 * is read by the loop); ENOSYS from epoll_pwait2 (before 5.11) or EPERM
 * (a seccomp profile that allows only epoll_wait) switch to epoll_wait
 * once, the latter with a notice; anything else aborts with the errno
 * named, never a silent busy loop. */
#include "internal.h"

#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
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
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
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

static int ep_fd_ctl(tl__loop *l, tl__fd *r, unsigned events, int edge)
{
    epoll_state *s = l->be;
    if (events == 0) {
        if (!r->registered) return 0;
        r->registered = 0;
        r->mode = 0;
        r->edge_in = 0;
        r->drained = 0;
        /* ENOENT / EBADF: the fd was closed behind tulip's back (close(2)
         * takes it out of the set by itself). */
        if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, r->fd, NULL) < 0 &&
            errno != ENOENT && errno != EBADF)
            return -errno;
        return 0;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLRDHUP | ((events & TL__EV_IN) ? EPOLLIN : 0u) |
                ((events & TL__EV_OUT) ? EPOLLOUT : 0u) |
                (edge ? (uint32_t)EPOLLET : 0u);
    ev.data.u64 = tl__fd_tag(r);
    if (r->registered && r->mode == ev.events) return 0;
    int op = r->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(s->epfd, op, r->fd, &ev);
    /* The record and the kernel's set disagree when the user closed the
     * fd with close(2) and the number came back: fix the set. */
    if (rc < 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
        rc = epoll_ctl(s->epfd, EPOLL_CTL_ADD, r->fd, &ev);
    else if (rc < 0 && op == EPOLL_CTL_ADD && errno == EEXIST)
        rc = epoll_ctl(s->epfd, EPOLL_CTL_MOD, r->fd, &ev);
    if (rc < 0) return -errno; /* EPERM: a regular file; EBADF, ENOMEM */
    r->registered = 1;
    r->mode = ev.events;
    /* A new registration: whatever a short read said before it, the I/O
     * layer tries the next read again (the kernel reports the level at
     * EPOLL_CTL_MOD anyway; this keeps the rule simple to check). */
    r->edge_in = edge && (events & TL__EV_IN);
    r->drained = 0;
    return 0;
}

/* epoll_pwait2 (Linux 5.11) takes a timespec, so sub-millisecond sleeps
 * are not rounded up to a whole millisecond; older kernels say ENOSYS once
 * and we fall back to epoll_wait. */
static _Atomic int have_pwait2 = 1; /* relaxed: a sticky hint shared by loops */

static unsigned ep_bits(uint32_t e)
{
    unsigned b = 0;
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)) b |= TL__EV_IN;
    if (e & EPOLLOUT) b |= TL__EV_OUT;
    if (e & (EPOLLERR | EPOLLHUP)) b |= TL__EV_ERR | TL__EV_IN | TL__EV_OUT;
    if (e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP | EPOLLPRI)) b |= TL__EV_HUP;
    return b;
}

#define EP_BATCH 128

static int ep_poll(tl__loop *l, int64_t timeout_ns)
{
    epoll_state *s = l->be;
    struct epoll_event evs[EP_BATCH];
    int n = -1;
    if (atomic_load_explicit(&have_pwait2, memory_order_relaxed)) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        n = epoll_pwait2(s->epfd, evs, EP_BATCH, tsp, NULL);
        if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
            if (errno == EPERM)
                tl__diag("epoll_pwait2 is forbidden here (EPERM: a seccomp "
                         "profile?); using epoll_wait (millisecond "
                         "timeouts)");
            atomic_store_explicit(&have_pwait2, 0, memory_order_relaxed);
        }
    }
    if (!atomic_load_explicit(&have_pwait2, memory_order_relaxed)) {
        int ms;
        if (timeout_ns < 0)
            ms = -1;
        else {
            /* Round up: waking early would only spin through a poll. */
            int64_t m = (timeout_ns + 999999) / 1000000;
            ms = m > 3600000 ? 3600000 : (int)m;
        }
        n = epoll_wait(s->epfd, evs, EP_BATCH, ms);
    }
    if (n < 0) {
        if (errno == EINTR) return 0;
        /* EBADF, EFAULT, EINVAL, EPERM from epoll_wait: the loop cannot
         * wait for anything any more; spinning would hide it. */
        tl__fatal("epoll wait failed: %s (%s); the loop cannot continue",
                  tl_errname(-errno), strerror(errno));
    }
    l->io_batch++;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == 0)
            tl__loop_wake_drain(l);
        else
            tl__fd_event(l, evs[i].data.u64, ep_bits(evs[i].events));
    }
    return n;
}

const tl__backend tl__backend_epoll = {
    .name = "epoll",
    .open = ep_open,
    .close = ep_close,
    .poll = ep_poll,
    .completion = 0,
    .fd_ctl = ep_fd_ctl,
};
