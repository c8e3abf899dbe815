/* Error codes, tl_fail messages and the ExceptionGroup-style report. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tl_strerror(int code)
{
    switch (code) {
#define TL__ERR_TEXT(name, value, text) \
    case -(value):                      \
        return text;
        TL_ERRORS(TL__ERR_TEXT)
#undef TL__ERR_TEXT
    default:
        break;
    }
    if (code == 0) return "success";
    if (code > 0) return "not an error code (positive)";
    /* strerrordesc_np is thread-safe and does not use a shared buffer. */
    const char *s = strerrordesc_np(-code);
    return s ? s : "unknown error";
}

const char *tl_errname(int code)
{
    switch (code) {
#define TL__ERR_NAME(name, value, text) \
    case -(value):                      \
        return #name;
        TL_ERRORS(TL__ERR_NAME)
#undef TL__ERR_NAME
    default:
        break;
    }
    if (code == 0) return "OK";
    if (code > 0) return "POSITIVE";
    const char *s = strerrorname_np(-code);
    return s ? s : "E?";
}

int tl_fail(int code, const char *fmt, ...)
{
    tl__loop *l = tl__self;
    tl__task *t = l ? l->current : NULL;
    if (!t || code >= 0 || !fmt) return code;
    char buf[sizeof ((tl_error *)0)->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *copy = strdup(buf);
    if (!copy) return code; /* the code still travels; only the text is lost */
    free(t->fail_msg);
    t->fail_msg = copy;
    t->fail_code = code;
    return code;
}

void tl__fail_pass(tl__task *to, const tl__task *from, int code)
{
    if (!to || to == from || code >= 0 || !from->fail_msg ||
        from->fail_code != code)
        return;
    char *copy = strdup(from->fail_msg);
    if (!copy) return; /* the code still travels; only the text is lost */
    free(to->fail_msg);
    to->fail_msg = copy;
    to->fail_code = code;
}

const char *tl_fail_message(int code)
{
    tl__loop *l = tl__self;
    tl__task *t = l ? l->current : NULL;
    if (!t || !t->fail_msg || t->fail_code != code) return NULL;
    return t->fail_msg;
}

void tl_errors_free(tl_errors *errs)
{
    if (!errs) return;
    free(errs->items);
    errs->items = NULL;
    errs->count = 0;
}

void tl_errors_print(const tl_errors *errs, FILE *out)
{
    if (!errs || !out) return;
    fprintf(out, "  | tulip.TaskGroup: %zu sub-error%s\n", errs->count,
            errs->count == 1 ? "" : "s");
    for (size_t i = 0; i < errs->count; i++) {
        const tl_error *e = &errs->items[i];
        fprintf(out, "  +-+---------------- %zu ----------------\n", i + 1);
        /* Unnamed tasks are "#<slot>"; named ones get quotes. */
        fprintf(out, "    | task %s%s%s: %s (%s)%s%s\n",
                e->task[0] == '#' ? "" : "'", e->task,
                e->task[0] == '#' ? "" : "'",
                tl_errname(e->code), tl_strerror(e->code),
                e->message[0] ? ": " : "", e->message);
    }
    if (errs->count) fprintf(out, "    +------------------------------------\n");
}
