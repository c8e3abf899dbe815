/* Timers: a binary min-heap ordered by (deadline, arm sequence), so a
 * million timers cost O(log n) each and equal deadlines fire in the order
 * they were armed (deterministic wake-up order for tests). */
#include "internal.h"

#include <stdlib.h>

static bool before(const tl__timer *a, const tl__timer *b)
{
    return a->deadline < b->deadline ||
           (a->deadline == b->deadline && a->seq < b->seq);
}

static void place(tl__timer_heap *h, uint32_t i, tl__timer *t)
{
    h->items[i] = t;
    t->index = i;
}

static void sift_up(tl__timer_heap *h, uint32_t i)
{
    tl__timer *t = h->items[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!before(t, h->items[p])) break;
        place(h, i, h->items[p]);
        i = p;
    }
    place(h, i, t);
}

static void sift_down(tl__timer_heap *h, uint32_t i)
{
    tl__timer *t = h->items[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->count) break;
        if (c + 1 < h->count && before(h->items[c + 1], h->items[c])) c++;
        if (!before(h->items[c], t)) break;
        place(h, i, h->items[c]);
        i = c;
    }
    place(h, i, t);
}

void tl__timer_init(tl__timer *t, void (*fire)(tl__loop *, tl__timer *))
{
    t->deadline = 0;
    t->seq = 0;
    t->index = TL__TIMER_IDLE;
    t->fire = fire;
}

int tl__timer_arm(tl__loop *l, tl__timer *t, int64_t deadline)
{
    tl__timer_heap *h = &l->timers;
    if (t->index != TL__TIMER_IDLE) tl__timer_disarm(l, t);
    if (h->count == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        tl__timer **items = realloc(h->items, cap * sizeof *items);
        if (!items) return -ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    t->deadline = deadline;
    t->seq = h->seq++;
    place(h, h->count++, t);
    sift_up(h, t->index);
    return 0;
}

void tl__timer_disarm(tl__loop *l, tl__timer *t)
{
    tl__timer_heap *h = &l->timers;
    uint32_t i = t->index;
    if (i == TL__TIMER_IDLE) return;
    t->index = TL__TIMER_IDLE;
    h->count--;
    if (i == h->count) return;
    tl__timer *moved = h->items[h->count];
    place(h, i, moved);
    sift_down(h, i);
    sift_up(h, moved->index);
}

int64_t tl__timer_next(const tl__loop *l)
{
    return l->timers.count ? l->timers.items[0]->deadline : INT64_MAX;
}

size_t tl__timer_run(tl__loop *l, int64_t now)
{
    size_t n = 0;
    tl__timer_heap *h = &l->timers;
    while (h->count && h->items[0]->deadline <= now) {
        tl__timer *t = h->items[0];
        tl__timer_disarm(l, t);
        t->fire(l, t);
        n++;
    }
    return n;
}

void tl__timer_heap_free(tl__timer_heap *h)
{
    free(h->items);
    h->items = NULL;
    h->count = h->cap = 0;
}
