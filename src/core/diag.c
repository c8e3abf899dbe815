/* Diagnostics: one line on stderr per event, always prefixed "tulip: ".
 * Written with a single write(2) so lines from several loops don't mix. */
#include "internal.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void vdiag(const char *fmt, va_list ap)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "tulip: ");
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    if (m < 0) m = 0;
    size_t len = (size_t)n + ((size_t)m < sizeof buf - (size_t)n - 1
                                  ? (size_t)m
                                  : sizeof buf - (size_t)n - 2);
    buf[len++] = '\n';
    ssize_t w = write(2, buf, len);
    (void)w;
}

void tl__diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(fmt, ap);
    va_end(ap);
}

void tl__fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(fmt, ap);
    va_end(ap);
    abort();
}

/* addr2line wants an address relative to the module's load bias (l_addr:
 * the base of a PIE program or a shared library, 0 for a fixed-address
 * program), which dladdr1 gives through the link map. dladdr alone would
 * name the nearest exported symbol below pc even when pc lies far past
 * its end (a hidden function of the library): the symbol is shown only
 * if its size covers pc. */
/* Present (non-NULL) in every dynamically linked program. */
extern ElfW(Dyn) _DYNAMIC[] __attribute__((weak));

const char *tl__symbolize(const void *pc, int ret, char *buf, size_t len)
{
    uintptr_t a = (uintptr_t)pc - (ret && pc ? 1 : 0);
    Dl_info info;
    struct link_map *map = NULL;
    if (!pc || !dladdr1((void *)a, &info, (void **)&map, RTLD_DL_LINKMAP) ||
        !map) {
        if (pc && !_DYNAMIC) {
            /* A static program: dladdr knows nothing, and addresses are
             * the program's own (no load bias). */
            char exe[256];
            ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
            exe[n > 0 ? n : 0] = '\0';
            snprintf(buf, len, "%s+0x%lx", n > 0 ? exe : "?",
                     (unsigned long)a);
        } else {
            snprintf(buf, len, "?? (no module)");
        }
        return buf;
    }
    const char *mod = map->l_name;
    char exe[256];
    if (!mod || !*mod) {
        /* The main program has no name in its map (dladdr falls back to
         * argv[0], which may be relative to another directory). */
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = '\0';
        mod = n > 0 ? exe : "?";
    }
    unsigned long off = (unsigned long)(a - (uintptr_t)map->l_addr);
    const ElfW(Sym) *sym = NULL;
    Dl_info si;
    if (info.dli_sname && dladdr1((void *)a, &si, (void **)&sym,
                                  RTLD_DL_SYMENT) && sym &&
        a < (uintptr_t)si.dli_saddr + sym->st_size)
        snprintf(buf, len, "%s+0x%lx (%s+0x%lx)", info.dli_sname,
                 (unsigned long)(a - (uintptr_t)info.dli_saddr), mod, off);
    else
        snprintf(buf, len, "%s+0x%lx", mod, off);
    return buf;
}
