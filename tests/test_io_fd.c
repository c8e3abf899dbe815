/* The I/O layer's fd records: tl_fd_wait (level semantics, an edge that
 * came with no waiter, timeouts through scopes on the virtual clock,
 * -EBUSY for a second waiter), tl_close / tl_fd_forget waking waiters with
 * TL_ECLOSED, persistent watchers (level-triggered, removal dropping the
 * events already fetched in the batch), and no fd leaked by a loop that
 * did I/O. Runs on each backend (CTest: name@epoll, name@io_uring). */
#include "net_helpers.h"

#include <sys/socket.h>

static void put(int fd, const char *s)
{
    cr_expect_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* ---- waiting ------------------------------------------------------------ */

struct waiter {
    int fd;
    unsigned events;
    int rc;
    int done;
    double at;
};

static int wait_task(void *arg)
{
    struct waiter *w = arg;
    w->rc = tl_fd_wait(w->fd, w->events);
    w->at = tl_now();
    w->done = 1;
    return 0;
}

static int main_wait_wakes(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, 0);
    struct waiter w = {.fd = sv[0], .events = TL_READABLE};
    tl_task t = tl_test_spawn(wait_task, &w);
    tl_test_settle();
    cr_expect_eq(w.done, 0, "tl_fd_wait returned before any data");
    put(sv[1], "x");
    tl_test_join(t);
    cr_expect_eq(w.rc, (int)TL_READABLE);
    cr_expect_eq(tl_close(sv[0]), 0);
    cr_expect_eq(tl_close(sv[1]), 0);
    return 0;
}

Test(io_fd, wait_readable_wakes_when_the_peer_writes, .timeout = 10)
{
    cr_assert_eq(tl_run(main_wait_wakes, NULL), 0);
}

static int main_level(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, 0);
    put(sv[1], "0123456789");
    cr_expect_eq(tl_fd_wait(sv[0], TL_READABLE), (int)TL_READABLE);
    char b[16];
    cr_expect_eq(read(sv[0], b, 3), 3);
    /* Data is still there: a level-triggered wait returns at once. */
    int rc;
    TL_WITH_TIMEOUT(5.0, &rc) {
        rc = tl_fd_wait(sv[0], TL_READABLE);
    }
    cr_expect_eq(rc, (int)TL_READABLE, "second wait with data left: %d", rc);
    cr_expect_eq(tl_now(), 0.0);
    cr_expect_eq(read(sv[0], b, sizeof b), 7);
    /* Drained: now it waits, until the deadline (virtual clock). */
    TL_WITH_TIMEOUT(2.0, &rc) {
        rc = tl_fd_wait(sv[0], TL_READABLE);
    }
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_eq(tl_now(), 2.0);
    /* Writable and readable together. */
    put(sv[1], "y");
    cr_expect_eq(tl_fd_wait(sv[0], TL_READABLE | TL_WRITABLE),
                 (int)(TL_READABLE | TL_WRITABLE));
    cr_expect_eq(tl_fd_wait(sv[0], 0), -EINVAL);
    cr_expect_eq(tl_fd_wait(sv[0], 8), -EINVAL);
    cr_expect_eq(tl_fd_wait(-1, TL_READABLE), -EBADF);
    tl_close(sv[0]);
    tl_close(sv[1]);
    return 0;
}

Test(io_fd, wait_is_level_triggered_and_deadlines_fire_on_the_virtual_clock,
     .timeout = 10)
{
    cr_assert_eq(run_virtual(main_level, NULL), 0);
}

/* The fd is registered (a wait timed out on it), then the peer writes
 * while nobody waits and the loop polls (the sleep): the edge is fetched
 * with no waiter. The next wait must still see it. */
static int main_edge_no_waiter(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, 0);
    int rc;
    TL_WITH_MOVE_ON(0.5, &rc) {
        rc = tl_fd_wait(sv[0], TL_READABLE);
    }
    cr_expect_eq(rc, 0);
    put(sv[1], "late");
    cr_expect_eq(tl_sleep(1.0), 0); /* the loop polls; nobody waits */
    double t0 = tl_now();
    TL_WITH_TIMEOUT(5.0, &rc) {
        rc = tl_fd_wait(sv[0], TL_READABLE);
    }
    cr_expect_eq(rc, (int)TL_READABLE);
    cr_expect_eq(tl_now(), t0, "the wait slept on an edge it already had");
    char b[8];
    cr_expect_eq(tl_read(sv[0], b, sizeof b), 4);
    tl_close(sv[0]);
    tl_close(sv[1]);
    return 0;
}

Test(io_fd, an_edge_that_came_with_no_waiter_is_not_lost, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_edge_no_waiter, NULL), 0);
}

static int main_busy(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, 0);
    struct waiter w = {.fd = sv[0], .events = TL_READABLE};
    tl_task t = tl_test_spawn(wait_task, &w);
    tl_test_settle();
    cr_expect_eq(tl_fd_wait(sv[0], TL_READABLE), -EBUSY);
    char b[4];
    cr_expect_eq(tl_read(sv[0], b, sizeof b), -EBUSY);
    cr_expect_eq(tl_fd_wait(sv[0], TL_WRITABLE), (int)TL_WRITABLE);
    put(sv[1], "z");
    tl_test_join(t);
    cr_expect_eq(w.rc, (int)TL_READABLE);
    tl_close(sv[0]);
    tl_close(sv[1]);
    return 0;
}

Test(io_fd, a_second_reader_gets_ebusy, .timeout = 10)
{
    cr_assert_eq(tl_run(main_busy, NULL), 0);
}

/* ---- cancel and close ---------------------------------------------------- */

static int main_cancel_wait(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, 0);
    struct waiter w = {.fd = sv[0], .events = TL_READABLE};
    tl_task t = tl_test_spawn(wait_task, &w);
    tl_test_settle();
    cr_expect_eq(tl_cancel(t), 0);
    tl_test_join(t);
    cr_expect_eq(w.rc, -ECANCELED);
    /* The slot is free again: another wait works. */
    put(sv[1], "a");
    cr_expect_eq(tl_fd_wait(sv[0], TL_READABLE), (int)TL_READABLE);
    tl_close(sv[0]);
    tl_close(sv[1]);
    return 0;
}

Test(io_fd, a_cancelled_wait_returns_ecanceled_and_frees_the_slot,
     .timeout = 10)
{
    cr_assert_eq(tl_run(main_cancel_wait, NULL), 0);
}

struct reader {
    int fd;
    ssize_t rc;
    char buf[16];
};

static int read_task(void *arg)
{
    struct reader *r = arg;
    r->rc = tl_read(r->fd, r->buf, sizeof r->buf);
    return 0;
}

static int main_close_wakes(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, 0);
    struct waiter w = {.fd = sv[0], .events = TL_READABLE};
    struct reader rd = {.fd = sv[0]};
    tl_task t = tl_test_spawn(wait_task, &w);
    tl_task t2 = tl_test_spawn(read_task, &rd); /* -EBUSY: w has the slot */
    tl_test_settle();
    tl_test_join(t2);
    cr_expect_eq(rd.rc, -EBUSY);
    cr_expect_eq(tl_close(sv[0]), 0);
    tl_test_join(t);
    cr_expect_eq(w.rc, TL_ECLOSED, "%d", w.rc);

    /* A blocked read (a kernel request on io_uring) too. */
    tl_test_socketpair(sv, 0);
    rd = (struct reader){.fd = sv[0]};
    memset(rd.buf, 0xAA, sizeof rd.buf);
    t = tl_test_spawn(read_task, &rd);
    tl_test_settle();
    cr_expect_eq(tl_close(sv[0]), 0);
    tl_test_join(t);
    cr_expect_eq(rd.rc, TL_ECLOSED, "%zd", rd.rc);
    cr_expect_eq((unsigned char)rd.buf[0], 0xAA);
    tl_close(sv[1]);

    /* tl_fd_forget: the same wake-up, the fd stays open. */
    tl_test_socketpair(sv, 0);
    w = (struct waiter){.fd = sv[0], .events = TL_READABLE};
    t = tl_test_spawn(wait_task, &w);
    tl_test_settle();
    cr_expect_eq(tl_fd_forget(sv[0]), 0);
    tl_test_join(t);
    cr_expect_eq(w.rc, TL_ECLOSED);
    put(sv[1], "q");
    cr_expect_eq(tl_fd_wait(sv[0], TL_READABLE), (int)TL_READABLE);
    cr_expect_eq(tl_close(sv[0]), 0);
    cr_expect_eq(tl_close(sv[1]), 0);
    cr_expect_eq(tl_close(-1), -EBADF);
    cr_expect_eq(tl_fd_forget(-1), -EBADF);
    return 0;
}

Test(io_fd, closing_an_fd_wakes_its_waiters_with_tl_eclosed, .timeout = 10)
{
    cr_assert_eq(tl_run(main_close_wakes, NULL), 0);
}

/* A number reused after tl_close is a new record: a wait on the new fd
 * works, and nothing of the old one reaches it. */
static int main_reuse(void *arg)
{
    (void)arg;
    int sv[2];
    for (int i = 0; i < 50; i++) {
        tl_test_socketpair(sv, 0);
        put(sv[1], "r");
        cr_expect_eq(tl_fd_wait(sv[0], TL_READABLE), (int)TL_READABLE);
        char c;
        cr_expect_eq(tl_read(sv[0], &c, 1), 1);
        int rc;
        TL_WITH_MOVE_ON(0.01, &rc) {
            rc = tl_fd_wait(sv[0], TL_READABLE);
        }
        cr_expect_eq(rc, 0);
        tl_close(sv[0]);
        tl_close(sv[1]);
    }
    return 0;
}

Test(io_fd, reused_fd_numbers_start_fresh, .timeout = 10)
{
    cr_assert_eq(run_virtual(main_reuse, NULL), 0);
}

/* ---- watchers ------------------------------------------------------------ */

struct wstate {
    int fd;
    int calls;
    unsigned last;
    tl_fd_watch *self;
    tl_fd_watch **other;
    tl_event ev;
};

static void on_ready(int fd, unsigned revents, void *arg)
{
    struct wstate *s = arg;
    cr_expect_eq(fd, s->fd);
    s->calls++;
    s->last = revents;
    tl_event_set(&s->ev);
}

static int main_watch(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, 0);
    struct wstate s = {.fd = sv[0]};
    tl_event_init(&s.ev);
    tl_fd_watch *w;
    cr_assert_eq(tl_fd_watch_new(&w, sv[0], TL_READABLE, on_ready, &s), 0);
    tl_fd_watch *w2;
    cr_expect_eq(tl_fd_watch_new(&w2, sv[0], TL_READABLE, on_ready, &s),
                 -EBUSY);
    tl_test_settle();
    cr_expect_eq(s.calls, 0);
    put(sv[1], "hello");
    cr_expect_eq(tl_event_wait(&s.ev), 0);
    cr_expect_eq(s.last, TL_READABLE);
    /* Level-triggered: the data is still there, so it fires again. */
    int before = s.calls;
    tl_test_settle();
    cr_expect_gt(s.calls, before, "a level watcher stopped firing");
    char b[8];
    cr_expect_eq(read(sv[0], b, sizeof b), 5);
    tl_test_settle();
    before = s.calls;
    tl_test_settle();
    cr_expect_eq(s.calls, before, "fired with nothing to read");
    /* Paused, then writable. */
    cr_expect_eq(tl_fd_watch_set(w, 0), 0);
    put(sv[1], "x");
    tl_test_settle();
    cr_expect_eq(s.calls, before);
    tl_event_clear(&s.ev);
    cr_expect_eq(tl_fd_watch_set(w, TL_WRITABLE), 0);
    cr_expect_eq(tl_event_wait(&s.ev), 0);
    cr_expect_eq(s.last, TL_WRITABLE);
    cr_expect_eq(tl_fd_watch_set(w, 4), -EINVAL);
    tl_fd_watch_free(w);
    tl_fd_watch_free(NULL);
    before = s.calls;
    tl_test_settle();
    cr_expect_eq(s.calls, before, "fired after tl_fd_watch_free");
    tl_close(sv[0]);
    tl_close(sv[1]);
    return 0;
}

Test(io_fd, a_watcher_is_level_triggered_and_stops_when_freed,
     .timeout = 10)
{
    cr_assert_eq(tl_run(main_watch, NULL), 0);
}

/* Two fds ready in the same batch; whichever callback runs first frees
 * the other watcher: the other callback must never run, although its
 * event was already fetched. */
static void free_other(int fd, unsigned revents, void *arg)
{
    (void)fd;
    (void)revents;
    struct wstate *s = arg;
    s->calls++;
    if (*s->other) {
        tl_fd_watch_free(*s->other);
        *s->other = NULL;
    }
    tl_fd_watch_free(s->self); /* and itself, from its own callback */
    s->self = NULL;
    tl_event_set(&s->ev);
}

static int main_watch_drop(void *arg)
{
    (void)arg;
    int a[2], b[2];
    tl_test_socketpair(a, 0);
    tl_test_socketpair(b, 0);
    tl_fd_watch *wa = NULL, *wb = NULL;
    struct wstate sa = {.fd = a[0], .other = &wb};
    struct wstate sb = {.fd = b[0], .other = &wa};
    tl_event_init(&sa.ev);
    tl_event_init(&sb.ev);
    cr_assert_eq(tl_fd_watch_new(&wa, a[0], TL_READABLE, free_other, &sa), 0);
    cr_assert_eq(tl_fd_watch_new(&wb, b[0], TL_READABLE, free_other, &sb), 0);
    sa.self = wa;
    sb.self = wb;
    put(a[1], "1");
    put(b[1], "2");
    tl_test_settle();
    printf("callbacks=%d\n", sa.calls + sb.calls);
    tl_close(a[0]);
    tl_close(a[1]);
    tl_close(b[0]);
    tl_close(b[1]);
    return 0;
}

static void run_watch_drop(void *arg)
{
    (void)arg;
    printf("rc=%d\n", tl_run(main_watch_drop, NULL));
}

Test(io_fd, freeing_a_watcher_drops_events_fetched_in_the_same_batch,
     .timeout = 10)
{
    char out[4096];
    int st = tl_test_child(run_watch_drop, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "rc=0");
    TL_EXPECT_NOT_OUT(out, "never freed"); /* freed from its callback */
    /* One callback: it freed the other watcher, whose event was
     * already fetched in the same batch. */
    TL_EXPECT_OUT(out, "callbacks=1\n");
}

static void count_only(int fd, unsigned revents, void *arg)
{
    (void)fd;
    (void)revents;
    ++*(int *)arg;
}

static int main_watch_close(void *arg)
{
    (void)arg;
    int sv[2];
    tl_test_socketpair(sv, 0);
    int calls = 0;
    tl_fd_watch *w;
    cr_assert_eq(tl_fd_watch_new(&w, sv[0], TL_READABLE, count_only, &calls),
                 0);
    cr_expect_eq(tl_close(sv[0]), 0);
    /* The peer is gone (at once on epoll; on io_uring once the
     * watcher's cancelled poll lets go of the socket). */
    TL_IGNORE((int)send(sv[1], "x", 1, MSG_NOSIGNAL));
    tl_test_settle();
    cr_expect_eq(calls, 0);
    cr_expect_eq(tl_fd_watch_set(w, TL_WRITABLE), TL_ECLOSED);
    tl_fd_watch_free(w);
    tl_close(sv[1]);
    cr_expect_eq(tl_fd_watch_new(&w, -1, TL_READABLE, count_only, &calls),
                 -EBADF);
    cr_expect_eq(tl_fd_watch_new(NULL, 0, TL_READABLE, count_only, &calls),
                 -EINVAL);
    return 0;
}

Test(io_fd, a_watcher_of_a_closed_fd_goes_dormant, .timeout = 10)
{
    cr_assert_eq(tl_run(main_watch_close, NULL), 0);
}

/* Left unfreed: tl_run frees it and says so. */
static int main_watch_leak(void *arg)
{
    (void)arg;
    static int sv[2];
    tl_test_socketpair(sv, 0);
    static int calls;
    tl_fd_watch *w;
    cr_expect_eq(tl_fd_watch_new(&w, sv[0], TL_READABLE, count_only, &calls),
                 0);
    return 0;
}

static void run_watch_leak(void *arg)
{
    (void)arg;
    printf("rc=%d\n", tl_run(main_watch_leak, NULL));
}

Test(io_fd, a_watcher_left_at_teardown_is_reported_and_freed, .timeout = 10)
{
    char out[2048];
    int st = tl_test_child(run_watch_leak, NULL, out, sizeof out);
    TL_EXPECT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "rc=0");
    TL_EXPECT_OUT(out, "was never freed");
}

/* ---- teardown, leaks ----------------------------------------------------- */

static int forever_reader(void *arg)
{
    struct reader *r = arg;
    r->rc = tl_read(r->fd, r->buf, sizeof r->buf);
    return 0;
}

static int main_leave_waiting(void *arg)
{
    int *sv = arg;
    tl_test_socketpair(sv, 0);
    static struct reader r1;
    r1.fd = sv[0];
    tl_task t;
    cr_expect_eq(tl_spawn(&t, forever_reader, &r1), 0);
    cr_expect_eq(tl_detach(t), 0);
    static struct waiter w;
    w = (struct waiter){.fd = sv[1], .events = TL_READABLE};
    cr_expect_eq(tl_spawn(&t, wait_task, &w), 0);
    cr_expect_eq(tl_detach(t), 0);
    tl_test_settle();
    return 0; /* teardown cancels both: nothing may be left in the kernel */
}

Test(io_fd, no_fd_leaks_and_teardown_cancels_blocked_io, .timeout = 10)
{
    int before = tl_test_count_fds();
    cr_assert_gt(before, 0);
    for (int i = 0; i < 20; i++) {
        int sv[2];
        cr_assert_eq(tl_run(main_leave_waiting, sv), 0);
        close(sv[0]);
        close(sv[1]);
    }
    int after = tl_test_count_fds();
    cr_expect_eq(after, before, "fds before %d, after %d", before, after);
}
