/* What the runtime tells about task stacks: the overflow report's question
 * to the SIGSEGV handler (is this fault in the running task's guard?) and
 * the TULIP_STACK_CENSUS=1 report of the deepest use per task name. The
 * mechanics of stacks and guards are in stack.c. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* The SIGSEGV handler's question (src/stack.c): does addr lie in the guard
 * below the stack of the task running on this thread? Called from a signal
 * handler: it reads only this thread's loop and copies the name by hand. */
static int guard_lookup(void *addr, char *name, size_t len)
{
    tl__loop *l = tl__self;
    tl__task *t = l ? l->current : NULL;
    const tl__stack *s = t ? t->stack : NULL;
    if (!s || (char *)addr < s->guard_lo || (char *)addr >= s->lo) return 0;
    if (len == 0) return 1;
    size_t i = 0;
    for (; i + 1 < len && i < sizeof t->name - 1 && t->name[i]; i++)
        name[i] = t->name[i];
    if (i == 0) { /* unnamed: "#<slot>" */
        char digits[12];
        int n = 0;
        uint32_t v = t->slot;
        do digits[n++] = (char)('0' + v % 10); while ((v /= 10) && n < 12);
        if (i + 1 < len) name[i++] = '#';
        while (n > 0 && i + 1 < len) name[i++] = digits[--n];
    }
    name[i] = '\0';
    return 1;
}

static pthread_once_t guard_handler_once = PTHREAD_ONCE_INIT;
static void install_guard_handler(void)
{
    (void)tl__stack_install_handler(guard_lookup);
}

void tl__stack_report_install(void)
{
    pthread_once(&guard_handler_once, install_guard_handler);
}

/* TULIP_STACK_CENSUS=1: the deepest stack use per task name, measured when
 * each task ends (before its stack goes back to the pool) and printed when
 * tl_run returns. Off the hot path when unset: one pointer test. */
#define TL__CENSUS_MAX_NAMES 1024
struct tl__census_entry {
    char name[32];
    size_t high, size, tasks;
};
struct tl__census {
    struct tl__census_entry *e;
    size_t n, cap;
};

struct tl__census *tl__census_new(void)
{
    const char *e = getenv("TULIP_STACK_CENSUS");
    if (!e || !*e || strcmp(e, "0") == 0) return NULL;
    return calloc(1, sizeof(struct tl__census));
}

void tl__census_note(struct tl__census *c, const tl__task *t)
{
    const char *name = t->name[0] ? t->name : "(unnamed)";
    if (c->n >= TL__CENSUS_MAX_NAMES) name = "(other names)";
    struct tl__census_entry *e = NULL;
    for (size_t i = 0; i < c->n && !e; i++)
        if (strncmp(c->e[i].name, name, sizeof c->e[i].name) == 0) e = &c->e[i];
    if (!e) {
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 16;
            struct tl__census_entry *ne = realloc(c->e, cap * sizeof *ne);
            if (!ne) return;
            c->e = ne;
            c->cap = cap;
        }
        e = &c->e[c->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", name);
    }
    size_t high = tl__stack_high_water(t->stack);
    e->tasks++;
    if (high >= e->high) {
        e->high = high;
        e->size = (size_t)(t->stack->hi - t->stack->lo);
    }
}

static int census_cmp(const void *a, const void *b)
{
    const struct tl__census_entry *x = a, *y = b;
    if (x->high != y->high) return x->high < y->high ? 1 : -1;
    return strcmp(x->name, y->name);
}

void tl__census_print(tl__loop *l)
{
    struct tl__census *c = l->census;
    qsort(c->e, c->n, sizeof *c->e, census_cmp);
    tl__diag("stack census (TULIP_STACK_CENSUS=1), loop #%u: deepest stack "
             "use per task name", (unsigned)l->id);
    for (size_t i = 0; i < c->n; i++)
        tl__diag("  '%s': %zu KiB of %zu KiB (%zu task%s)", c->e[i].name,
                 (c->e[i].high + 1023) / 1024, c->e[i].size / 1024,
                 c->e[i].tasks, c->e[i].tasks == 1 ? "" : "s");
}

void tl__census_free(tl__loop *l)
{
    if (!l->census) return;
    free(l->census->e);
    free(l->census);
    l->census = NULL;
}
