/* Task stacks: arenas, guards, pooling, and the overflow report.
 *
 * Memory layout. A pool keeps one bucket per size class (usable size
 * rounded up to a power of two). Each bucket owns arenas: single
 * MAP_NORESERVE mappings of 64, then 128, ... up to 1024 slots, so a
 * million stacks need a few thousand mmap calls and (since adjacent
 * anonymous mappings with equal flags merge) far fewer VMAs:
 *
 *   arena: | guard | stack 0 ...... | guard | stack 1 ...... | ...
 *          ^ slot 0                 ^ slot 1
 *
 * Carving commits only each stack's top page (in batches, ahead: every
 * task touches it at once; see populate_batch) and what the guard needs,
 * so an idle stack costs only the pages its task used. The slot descriptors
 * (tl__stack) live in malloc'ed memory next to the arena record, never on
 * the stacks themselves, so an overflow cannot corrupt the pool.
 *
 * The guard is 1 MiB below every stack: code built without
 * -fstack-clash-protection (the compilers' default) moves the stack
 * pointer by a whole frame at once and may first touch its lowest byte, so
 * a frame of up to 1 MiB must land in the guard and not in the stack
 * below. It costs no memory of the process's own, but it is not free:
 *  - guards cannot be shared: each stack needs the 1 MiB below its lowest
 *    byte free of every other stack's usable bytes, so two guards that
 *    overlapped would put one stack's usable bytes in the other's guard.
 *    Stack tops are therefore at least 1 MiB + the stack apart, and the
 *    top pages of 256 KiB stacks share a page-table page (2 MiB of address
 *    on x86-64 and 4 KiB pages) 1.6 at a time instead of 6.4 with 64 KiB
 *    guards: 2.5 KiB of page table per stack instead of 0.6, whatever
 *    the guard is made of (markers, PROT_NONE or a hole);
 *  - MADV_GUARD_INSTALL writes a marker in each of the guard's 256 page
 *    table entries.
 * On a VM with shadow page tables a fresh page-table page is slow to
 * fill at the first touch, so fresh stacks cost about 1.9x the CPU of
 * 64 KiB guards there (design.md, Stacks). tulip pays it rather than let
 * a large frame from code built with the compilers' defaults overwrite a
 * neighbour's live stack silently.
 *
 * Guards, chosen per process by a functional probe (tl__stack_probe):
 *   MADVISE  madvise(MADV_GUARD_INSTALL) (Linux 6.13+): guard markers in
 *            the page tables, no new VMA, installed for a batch of fresh
 *            slots in one process_madvise call. The probe installs one and
 *            checks that write() from it into a pipe fails with EFAULT,
 *            because qemu-user returns 0 for the madvise and installs
 *            nothing.
 *   MPROTECT mprotect(PROT_NONE) splits the mapping (two more VMAs per
 *            guard), so it is rationed by a process-wide atomic budget
 *            derived from vm.max_map_count; past it a stack gets a canary.
 *   CANARY   a 64-bit word at the lowest usable bytes, compared by
 *            tl__stack_check() (the scheduler calls it at each switch);
 *            the 1 MiB gap below stays mapped but unused, so an overflow
 *            lands in the gap rather than in a neighbour (but one that
 *            jumps the canary word is not seen).
 *
 * Threading: a pool is used by one thread (its loop). The probe, the
 * mprotect budget, the one-time notices and the signal handler state are
 * process-wide and safe from any thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "stack.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; older headers lack it */
#endif
#ifndef MAP_STACK
#define MAP_STACK 0
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#if defined(__SANITIZE_ADDRESS__)
#define TL_STACK_NO_ASAN __attribute__((no_sanitize_address))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TL_STACK_NO_ASAN __attribute__((no_sanitize_address))
#endif
#endif
#ifndef TL_STACK_NO_ASAN
#define TL_STACK_NO_ASAN
#else
#define TL_STACK_ASAN 1
/* Declared here: not every toolchain installs <sanitizer/asan_interface.h>. */
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

/* Multiples of every page size in use. */
#define GUARD_SIZE TL__STACK_GUARD_SIZE
enum {
    ARENA_FIRST_SLOTS = 64,   /* first arena of a bucket */
    ARENA_MAX_SLOTS = 1024,   /* arenas double up to this */
    GUARD_BATCH_FIRST = 8,    /* guards installed by the first batch */
    GUARD_BATCH_MAX = 1024,   /* ... doubling up to (UIO_MAXIOV) */
    HOT_KEEP = 16,            /* untrimmed stacks kept per class */
    TRIM_BATCH = 64,          /* released stacks trimmed per call */
    WARM_KEEP = 1024,         /* warm stacks (top page kept) per class */
    QUARANTINE = 64,          /* ASan: releases before a stack is reused */
    MIN_CLASS = 16 * 1024,    /* smallest usable size handed out */
    ALTSTACK_SIZE = 64 * 1024 /* per-thread signal stack */
};

#define CANARY_BASE UINT64_C(0x746c5f737461636b) /* "tl_stack" */

/* ---- process-wide state ------------------------------------------------ */

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int probed_default;       /* written once under probe_once */
static int madvise_works;        /* idem */
static size_t page_size;         /* idem */
/* mprotect guards still allowed; each costs ~2 VMAs. Decremented with
 * fetch_sub when a guard is installed, given back when its arena is
 * unmapped. Relaxed: it is a counter, nothing is published through it. */
static atomic_long mprotect_budget;
/* One-time stderr notices (fallbacks), one flag each. */
static atomic_flag said_madvise = ATOMIC_FLAG_INIT;
static atomic_flag said_budget = ATOMIC_FLAG_INIT;
static atomic_flag said_env = ATOMIC_FLAG_INIT;
static atomic_flag said_env_size = ATOMIC_FLAG_INIT;

const char *tl__stack_guard_name(int kind)
{
    switch (kind) {
    case TL__GUARD_AUTO: return "auto";
    case TL__GUARD_MADVISE: return "madvise";
    case TL__GUARD_MPROTECT: return "mprotect";
    case TL__GUARD_CANARY: return "canary";
    default: return "unknown";
    }
}

/* Does MADV_GUARD_INSTALL really install a guard? */
static int probe_madvise(size_t pg)
{
    int works = 0, fds[2];
    char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return 0;
    if (madvise(m, pg, MADV_GUARD_INSTALL) == 0 &&
        pipe2(fds, O_CLOEXEC) == 0) {
        /* The kernel reads the buffer itself: on a real guard that is
         * EFAULT, with no signal and no risk to us. */
        ssize_t n = write(fds[1], m, 1);
        works = n < 0 && errno == EFAULT;
        close(fds[0]);
        close(fds[1]);
    }
    munmap(m, 2 * pg);
    return works;
}

static long read_max_map_count(void)
{
    long v = 65530; /* the stock default */
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

static void probe(void)
{
    int saved = errno;
    long pg = sysconf(_SC_PAGESIZE);
    long mmc, budget;

    page_size = pg > 0 ? (size_t)pg : 4096;
    /* Half the map count (each guard splits a mapping into two more),
     * minus room for everything else the process maps: libraries, malloc
     * arenas, thread stacks. 65,530 gives 30,000. */
    mmc = read_max_map_count();
    budget = mmc > 11060 ? (mmc - 5530) / 2 : mmc / 4;
    atomic_store_explicit(&mprotect_budget, budget, memory_order_relaxed);
    madvise_works = probe_madvise(page_size);
    if (madvise_works)
        probed_default = TL__GUARD_MADVISE;
    else if (budget > 0)
        probed_default = TL__GUARD_MPROTECT;
    else
        probed_default = TL__GUARD_CANARY;
    errno = saved;
}

int tl__stack_guard_strategy(void)
{
    pthread_once(&probe_once, probe);
    return probed_default;
}

static int env_guard(void)
{
    const char *e = getenv("TULIP_GUARD");
    if (!e || !*e || !strcmp(e, "auto"))
        return TL__GUARD_AUTO;
    if (!strcmp(e, "madvise"))
        return TL__GUARD_MADVISE;
    if (!strcmp(e, "mprotect"))
        return TL__GUARD_MPROTECT;
    if (!strcmp(e, "canary"))
        return TL__GUARD_CANARY;
    if (!atomic_flag_test_and_set(&said_env))
        fprintf(stderr, "tulip: TULIP_GUARD='%s' is not one of madvise, "
                        "mprotect, canary; ignored\n", e);
    return TL__GUARD_AUTO;
}

/* Bytes rounded up to whole pages (at least one), or 0 when more than
 * TL__STACK_GUARD_MAX. */
static size_t guard_round(size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (bytes > TL__STACK_GUARD_MAX) return 0;
    return (bytes + page - 1) / page * page;
}

/* $TULIP_STACK_GUARD: bytes, or with a K or M suffix (KiB, MiB: "64K",
 * "64KiB", "1M"); 0 or unset: the default. Anything else is named once
 * per process and ignored, as TULIP_GUARD is. */
static size_t env_guard_size(void)
{
    const char *e = getenv("TULIP_STACK_GUARD");
    if (!e || !*e) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(e, &end, 10);
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024, end++;
    else if (*end == 'M' || *end == 'm') mul = 1024 * 1024, end++;
    if (mul > 1 && !strcmp(end, "iB")) end += 2;
    int ok = end != e && *end == 0 && errno == 0 && e[0] != '-' &&
              v <= TL__STACK_GUARD_MAX / mul;
    if (ok) return (size_t)(v * mul);
    if (!atomic_flag_test_and_set(&said_env_size))
        fprintf(stderr, "tulip: TULIP_STACK_GUARD='%s' is not a guard size "
                        "(bytes, or with K or M: 64K; one page to 64M); "
                        "using 1M\n", e);
    return 0;
}

/* ---- pools ------------------------------------------------------------- */

typedef struct tl__stack_arena {
    struct tl__stack_arena *next;
    char *base;          /* the mapping */
    size_t len;
    size_t nslots;       /* capacity */
    size_t used;         /* slots carved so far (in order) */
    size_t guarded;      /* slots [0, guarded) got a batched madvise guard */
    size_t populated;    /* slots [0, populated) had their top page
                            populated in a batch (or it was not tried) */
    size_t guard;        /* guard bytes below each stack here */
    size_t slot;         /* guard + the class's usable size */
    long nmprotect;      /* mprotect guards here, returned to the budget */
    tl__stack slots[];   /* descriptors of the carved slots */
} tl__stack_arena;

/* One size class. A released stack goes, in this order of preference for
 * the next get:
 *   hot      untrimmed, LIFO, at most HOT_KEEP: reused with no syscall;
 *   pending  untrimmed, waiting for the batch trim (at most TRIM_BATCH);
 *   warm     trimmed below its top page (every task touches that one):
 *            reused with no syscall and no fault; at most WARM_KEEP once
 *            the loop idles;
 *   cold     trimmed whole: its guard and page tables stay, its top page is
 *            committed again in a batch when it is taken (cold_refill).
 * Trims are MADV_DONTNEED, not MADV_FREE: MADV_FREE'd pages stay in the
 * process's RSS until the kernel is short of memory. A release trims
 * below the top page only; the top pages of the warm stacks past WARM_KEEP
 * go back when the loop is idle (tl__stack_pool_idle), a batch per idle
 * iteration and only after an iteration with no get, because giving one
 * back costs as much as faulting it in (a page-table update and a TLB
 * flush each, 9-11 us of CPU a page on a VM with shadow page tables):
 * trimming each at its release cost a million finishing sleepers minutes,
 * while the loop's idle moments absorb it. So after a burst the pool
 * keeps a few whole stacks and WARM_KEEP top pages (4 MiB), and a burst
 * after a burst takes warm stacks, then cold ones whose guards are in
 * place, committed in batches like fresh ones. */
typedef struct tl__stack_class {
    struct tl__stack_class *next;
    size_t usable;             /* the class: power of two >= MIN_CLASS */
    size_t reserved;           /* slots of all its arenas */
    tl__stack *hot, *warm, *cold; /* LIFO lists through ->next */
    size_t nhot, nwarm;
    tl__stack *pending[TRIM_BATCH];
    size_t npending;
    tl__stack *quar_head, *quar_tail; /* ASan: FIFO of released stacks */
    size_t nquar;
    tl__stack_arena *arenas;   /* newest first; only it may have room */
    size_t next_slots;         /* capacity of the next arena */
    size_t guard_batch;        /* guards installed per batch (grows) */
    size_t populate_batch;     /* top pages populated per batch (grows) */
} tl__stack_class;

struct tl__stack_pool {
    tl__stack_class *classes;  /* few: a short list, most used first */
    int guard;                 /* strategy for new slots */
    size_t guard_size;         /* bytes of guard below each new slot */
    int batch_ok;              /* process_madvise(PIDFD_SELF) works */
    int no_populate;           /* tests that carve without touching */
    size_t outstanding;        /* stacks handed out, for a leak check */
    size_t gets, idle_gets;    /* gets so far; at the last idle call */
};

/* ---- batched madvise ---------------------------------------------------- */

/* process_madvise(2) applies one advice to many ranges in one system call
 * (any advice on the calling process itself since Linux 6.13, named by the
 * PIDFD_SELF sentinel). A fresh stack needs a guard and a released one a
 * trim: batching makes that one system call per many stacks instead of one
 * each. Only the sentinel, never a pidfd from pidfd_open: a forked child
 * inheriting such a pidfd would advise its parent's memory. */
#ifndef SYS_process_madvise
#define SYS_process_madvise 440 /* the same number on every architecture */
#endif
#define TL_PIDFD_SELF (-10000) /* PIDFD_SELF_THREAD; older headers lack it */

/* Apply `advice` to iov[0..n): 0 if every range got it. Ranges the batch
 * did not reach (an older kernel, a partial result) get one madvise each;
 * -1 if any of those failed. errno is preserved. */
static int advise_ranges(tl__stack_pool *p, struct iovec *iov, size_t n,
                         int advice)
{
    size_t done = 0, total = 0;
    int rc = 0, saved = errno;

    for (size_t i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (p->batch_ok && n > 1) {
        long r = syscall(SYS_process_madvise, TL_PIDFD_SELF, iov, n, advice,
                         0);
        if (r < 0 && errno != ENOMEM && errno != EAGAIN && errno != EINTR)
            p->batch_ok = 0; /* no sentinel or no such advice: one each */
        else if (r > 0)
            done = (size_t)r;
    }
    if (done < total) {
        for (size_t i = 0; i < n; i++) {
            if (done >= iov[i].iov_len) {
                done -= iov[i].iov_len;
                continue;
            }
            /* A range partly done is done again: both advices used here
             * are idempotent. */
            done = 0;
            if (madvise(iov[i].iov_base, iov[i].iov_len, advice) != 0)
                rc = -1;
        }
    }
    errno = saved;
    return rc;
}

int tl__stack_pool_new(tl__stack_pool **out, int forced_guard)
{
    tl__stack_pool *p;
    int want = forced_guard;

    *out = NULL;
    tl__stack_guard_strategy(); /* run the probe */
    if (want < TL__GUARD_AUTO || want > TL__GUARD_CANARY)
        return -EINVAL;
    if (want == TL__GUARD_AUTO)
        want = env_guard();
    if (want == TL__GUARD_AUTO)
        want = probed_default;
    if (want == TL__GUARD_MADVISE && !madvise_works) {
        want = atomic_load_explicit(&mprotect_budget, memory_order_relaxed) > 0
                   ? TL__GUARD_MPROTECT : TL__GUARD_CANARY;
        if (!atomic_flag_test_and_set(&said_madvise))
            fprintf(stderr, "tulip: guard strategy 'madvise' unavailable "
                            "(MADV_GUARD_INSTALL does not work here); "
                            "using '%s'\n", tl__stack_guard_name(want));
    }
    p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->guard = want;
    p->guard_size = GUARD_SIZE;
    p->batch_ok = 1; /* until a call says otherwise */
    *out = p;
    return 0;
}

int tl__stack_pool_set_guard_size(tl__stack_pool *p, size_t bytes)
{
    if (!bytes) bytes = env_guard_size();
    if (!bytes) bytes = GUARD_SIZE;
    size_t g = guard_round(bytes);
    if (!g) return -EINVAL;
    p->guard_size = g;
    return 0;
}

void tl__stack_pool_set_populate(tl__stack_pool *p, int on)
{
    p->no_populate = !on;
}

void tl__stack_pool_free(tl__stack_pool *p)
{
    tl__stack_class *c, *cn;
    tl__stack_arena *a, *an;

    if (!p)
        return;
    for (c = p->classes; c; c = cn) {
        cn = c->next;
        for (a = c->arenas; a; a = an) {
            an = a->next;
#ifdef TL_STACK_ASAN
            /* The next mapping at these addresses must not inherit the
             * poison of our released stacks. */
            for (size_t i = 0; i < a->used; i++)
                if (a->slots[i].poison_lo < a->slots[i].hi)
                    __asan_unpoison_memory_region(
                        a->slots[i].poison_lo,
                        (size_t)(a->slots[i].hi - a->slots[i].poison_lo));
#endif
            munmap(a->base, a->len);
            if (a->nmprotect)
                atomic_fetch_add_explicit(&mprotect_budget, a->nmprotect,
                                          memory_order_relaxed);
            free(a);
        }
        free(c);
    }
    free(p);
}

static size_t class_of(size_t size)
{
    size_t c = MIN_CLASS;
    if (size < page_size)
        size = page_size;
    while (c < size) {
        if (c > SIZE_MAX / 4)
            return 0;
        c <<= 1;
    }
    return c;
}

static tl__stack_class *find_class(tl__stack_pool *p, size_t usable,
                                   int create)
{
    tl__stack_class **pp, *c;

    for (pp = &p->classes; (c = *pp); pp = &c->next) {
        if (c->usable == usable) {
            if (pp != &p->classes) { /* move to front: most used first */
                *pp = c->next;
                c->next = p->classes;
                p->classes = c;
            }
            return c;
        }
    }
    if (!create)
        return NULL;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->usable = usable;
    c->next_slots = ARENA_FIRST_SLOTS;
    c->guard_batch = GUARD_BATCH_FIRST;
    c->populate_batch = GUARD_BATCH_FIRST;
    c->next = p->classes;
    p->classes = c;
    return c;
}

static int new_arena(tl__stack_pool *p, tl__stack_class *c)
{
    size_t n = c->next_slots, len;
    size_t guard = p->guard_size;
    size_t slot = guard + c->usable;
    tl__stack_arena *a;
    void *m;

    if (slot < guard || slot > SIZE_MAX / n)
        return -ENOMEM;
    len = slot * n;
    a = malloc(sizeof *a + n * sizeof a->slots[0]);
    if (!a)
        return -ENOMEM;
    /* MAP_NORESERVE: reserve address space only; MAP_STACK: no THP on
     * Linux 6.7+ (a huge page would commit 2 MiB at the first touch). */
    m = mmap(NULL, len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) {
        free(a);
        return -ENOMEM;
    }
#ifdef MADV_NOHUGEPAGE
    madvise(m, len, MADV_NOHUGEPAGE); /* same, for older kernels */
#endif
    a->base = m;
    a->len = len;
    a->nslots = n;
    a->used = 0;
    a->guarded = 0;
    a->populated = 0;
    a->guard = guard;
    a->slot = slot;
    a->nmprotect = 0;
    c->reserved += n;
    a->next = c->arenas;
    c->arenas = a;
    if (c->next_slots < ARENA_MAX_SLOTS)
        c->next_slots *= 2;
    return 0;
}

/* Guards for the next slots of arena a, starting at slot `from`, in one
 * system call: the batch doubles (up to GUARD_BATCH_MAX) as a class
 * keeps carving, so a program with a few tasks installs a few guards and
 * a million tasks cost about a thousand calls. */
static void guard_batch(tl__stack_pool *p, tl__stack_class *c,
                        tl__stack_arena *a, size_t from)
{
    struct iovec iov[GUARD_BATCH_MAX];
    size_t n = a->nslots - from;

    if (n > c->guard_batch)
        n = c->guard_batch;
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = a->base + (from + i) * a->slot;
        iov[i].iov_len = a->guard;
    }
    if (advise_ranges(p, iov, n, MADV_GUARD_INSTALL) == 0)
        a->guarded = from + n;
    if (c->guard_batch < GUARD_BATCH_MAX)
        c->guard_batch *= 2;
}

/* Commit the top page of the next slots of arena a, starting at `from`,
 * in one system call: every task touches its stack's top page at its
 * first run, and a page the kernel fills ahead in a batch costs a
 * fraction of one faulted in by its first touch (on a VM with shadow
 * page tables, 0.8 us + the ~5 us first access against 13-16 us; fewer
 * traps anywhere). The batch doubles like the guards' (8, 16, ... 1024),
 * so a program with a few tasks commits a few pages ahead and a burst at
 * most 4 MiB (1024 pages) it has not used yet. Only with
 * process_madvise(PIDFD_SELF): one madvise per stack would cost what it
 * saves, so elsewhere every stack faults its page in as before. A
 * failed populate (ENOMEM) only leaves the pages to their first touch. */
static void populate_batch(tl__stack_pool *p, tl__stack_class *c,
                           tl__stack_arena *a, size_t from)
{
    struct iovec iov[GUARD_BATCH_MAX];
    size_t n = a->nslots - from;

    if (n > c->populate_batch)
        n = c->populate_batch;
    a->populated = from + n;
    if (c->populate_batch < GUARD_BATCH_MAX)
        c->populate_batch *= 2;
    if (!p->batch_ok || p->no_populate || n < 2)
        return;
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = a->base + (from + i + 1) * a->slot - page_size;
        iov[i].iov_len = page_size;
    }
    (void)syscall(SYS_process_madvise, TL_PIDFD_SELF, iov, n,
                  MADV_POPULATE_WRITE, 0);
}

/* Carve the next slot of the newest arena and give it its guard. */
static tl__stack *carve(tl__stack_pool *p, tl__stack_class *c)
{
    tl__stack_arena *a = c->arenas;
    tl__stack *s;
    int kind = p->guard;

    if (!a || a->used == a->nslots) {
        if (new_arena(p, c) < 0)
            return NULL;
        a = c->arenas;
    }
    s = &a->slots[a->used];
    s->next = NULL;
    s->guard_lo = a->base + a->used * a->slot;
    s->lo = s->guard_lo + a->guard;
    s->hi = s->lo + c->usable;
    s->size_class = c->usable;
    s->pooled = 0;
    s->poison_lo = s->hi;
    if (kind == TL__GUARD_MADVISE && a->guarded <= a->used)
        guard_batch(p, c, a, a->used);
    if (kind == TL__GUARD_MADVISE && a->guarded <= a->used &&
        madvise(s->guard_lo, a->guard, MADV_GUARD_INSTALL) != 0)
        kind = TL__GUARD_MPROTECT; /* ENOMEM for page tables, say */
    if (a->populated <= a->used)
        populate_batch(p, c, a, a->used);
    a->used++;
    if (kind == TL__GUARD_MPROTECT) {
        if (atomic_fetch_sub_explicit(&mprotect_budget, 1,
                                      memory_order_relaxed) > 0 &&
            mprotect(s->guard_lo, a->guard, PROT_NONE) == 0) {
            a->nmprotect++;
        } else {
            atomic_fetch_add_explicit(&mprotect_budget, 1,
                                      memory_order_relaxed);
            kind = TL__GUARD_CANARY;
            if (p->guard == TL__GUARD_MPROTECT &&
                !atomic_flag_test_and_set(&said_budget))
                fprintf(stderr, "tulip: mprotect guard budget exhausted "
                                "(vm.max_map_count); further stacks get a "
                                "canary instead of a guard page\n");
        }
    }
    s->guard = kind;
    return s;
}

/* The canary depends on the address so that a stale copy of another
 * stack's bottom does not pass for intact. Unsanitized: the word may lie
 * under an ASan redzone left by a frame of the stack's previous task. */
static inline uint64_t canary_for(const tl__stack *s)
{
    return CANARY_BASE ^ (uint64_t)(uintptr_t)s->lo;
}

TL_STACK_NO_ASAN static void canary_write(tl__stack *s)
{
    *(volatile uint64_t *)(void *)s->lo = canary_for(s);
}

TL_STACK_NO_ASAN int tl__stack_check_canary(const tl__stack *s)
{
    return *(const volatile uint64_t *)(const void *)s->lo == canary_for(s)
               ? 0 : -1;
}

static tl__stack *pop(tl__stack **list)
{
    tl__stack *s = *list;
    if (s)
        *list = s->next;
    return s;
}

/* Move a batch of cold stacks to the warm list, committing their top
 * pages in one call as carve does for fresh ones (populate_batch): a
 * burst after a burst takes no fault per stack. Returns how many moved. */
static size_t cold_refill(tl__stack_pool *p, tl__stack_class *c)
{
    struct iovec iov[TRIM_BATCH];
    size_t n = 0;

    while (n < TRIM_BATCH && c->cold) {
        tl__stack *s = pop(&c->cold);
        iov[n].iov_base = s->hi - page_size;
        iov[n].iov_len = page_size;
        n++;
        s->next = c->warm;
        c->warm = s;
        c->nwarm++;
    }
    if (n > 1 && p->batch_ok && !p->no_populate)
        (void)syscall(SYS_process_madvise, TL_PIDFD_SELF, iov, n,
                      MADV_POPULATE_WRITE, 0);
    return n;
}

int tl__stack_get(tl__stack_pool *p, size_t size, tl__stack **out)
{
    size_t usable = class_of(size);
    tl__stack_class *c;
    tl__stack *s;

    *out = NULL;
    if (!usable || !(c = find_class(p, usable, 1)))
        return -ENOMEM;
    p->gets++;
    if ((s = pop(&c->hot)))
        c->nhot--;
    else if (c->npending)
        s = c->pending[--c->npending];
    else if (c->warm || (c->cold && cold_refill(p, c))) {
        s = pop(&c->warm);
        c->nwarm--;
    } else if (!(s = carve(p, c)))
        return -ENOMEM;
    s->next = NULL;
    s->pooled = 0;
#ifdef TL_STACK_ASAN
    /* Unpoison what the release poisoned, and always the top pages: the
     * last frames of its previous task (which never returned) left their
     * redzones there. A fresh stack's shadow is clean. */
    if (s->poison_lo < s->hi) {
        char *from = s->poison_lo;
        if (s->hi - from < 2 * (ptrdiff_t)page_size)
            from = s->hi - 2 * page_size;
        __asan_unpoison_memory_region(from, (size_t)(s->hi - from));
        s->poison_lo = s->hi;
    }
#endif
    if (s->guard == TL__GUARD_CANARY)
        canary_write(s); /* a trim zeroed it */
    p->outstanding++;
    *out = s;
    return 0;
}

/* Trim the pending stacks below their top pages in one call. */
static void flush_pending(tl__stack_pool *p, tl__stack_class *c)
{
    struct iovec iov[TRIM_BATCH];
    size_t n = c->npending;

    for (size_t i = 0; i < n; i++) {
        tl__stack *s = c->pending[i];
        iov[i].iov_base = s->lo;
        iov[i].iov_len = (size_t)(s->hi - s->lo) - page_size;
    }
    (void)advise_ranges(p, iov, n, MADV_DONTNEED); /* a failed trim only
                                                      keeps memory */
    for (size_t i = 0; i < n; i++) {
        tl__stack *s = c->pending[i];
        s->next = c->warm;
        c->warm = s;
    }
    c->nwarm += n;
    c->npending = 0;
}

int tl__stack_pool_idle(tl__stack_pool *p)
{
    struct iovec iov[TRIM_BATCH];
    tl__stack *batch[TRIM_BATCH];
    tl__stack_class *c;
    int trimmed = 0;

    if (p->gets != p->idle_gets) {
        /* Stacks were taken since the last idle call: a burst may still
         * be under way and want the warm ones. Look again next time. */
        p->idle_gets = p->gets;
        for (c = p->classes; c; c = c->next)
            if (c->nwarm > WARM_KEEP)
                return 1;
        return 0;
    }
    for (c = p->classes; c; c = c->next) {
        size_t n = 0;
        if (c->nwarm <= WARM_KEEP)
            continue;
        if (trimmed) /* one system call per call */
            return 1;
        while (n < TRIM_BATCH && c->nwarm > WARM_KEEP) {
            tl__stack *s = pop(&c->warm);
            c->nwarm--;
            batch[n] = s;
            iov[n].iov_base = s->lo;
            iov[n].iov_len = (size_t)(s->hi - s->lo);
            n++;
        }
        (void)advise_ranges(p, iov, n, MADV_DONTNEED); /* a failed trim
                                                          only keeps memory */
        for (size_t i = 0; i < n; i++) {
            batch[i]->next = c->cold;
            c->cold = batch[i];
        }
        if (c->nwarm > WARM_KEEP)
            return 1;
        trimmed = 1;
    }
    return 0;
}

static void release(tl__stack_pool *p, tl__stack_class *c, tl__stack *s)
{
    if (c->nhot < HOT_KEEP) {
        /* Keep it hot: the next get reuses its pages with no syscall. */
        s->next = c->hot;
        c->hot = s;
        c->nhot++;
        return;
    }
    c->pending[c->npending++] = s;
    if (c->npending == TRIM_BATCH)
        flush_pending(p, c);
}

void tl__stack_put(tl__stack_pool *p, tl__stack *s)
{
    tl__stack_class *c;

    if (!s)
        return;
    if (s->pooled || !(c = find_class(p, s->size_class, 0)))
        abort(); /* double put, or a stack from another pool */
    s->pooled = 1;
    p->outstanding--;
#ifdef TL_STACK_ASAN
    {
        /* A task that still uses this stack (a pointer into a finished
         * task's frame) must be named by ASan: poison what the task used
         * (poisoning all of it would write 1/8 of the stack in shadow
         * memory), and keep the stack out of reuse for QUARANTINE more
         * releases so the poison stays long enough to be met. */
        size_t used = tl__stack_high_water(s); /* 0: never touched */
        s->poison_lo = s->hi - used;
        if (used)
            __asan_poison_memory_region(s->poison_lo, used);
        s->next = NULL;
        if (c->quar_tail)
            c->quar_tail->next = s;
        else
            c->quar_head = s;
        c->quar_tail = s;
        if (++c->nquar <= QUARANTINE)
            return;
        s = c->quar_head;
        c->quar_head = s->next;
        if (!c->quar_head)
            c->quar_tail = NULL;
        c->nquar--;
    }
#endif
    release(p, c, s);
}

/* Resident pages counted downwards from the top until the first
 * non-resident one. -fstack-clash-protection makes every frame touch each
 * page it spans, so the resident run from the top is the depth reached.
 * Commits nothing. Only a stack kept hot keeps the pages of earlier tasks,
 * so after reuse this may report the deepest use of an earlier task. */
size_t tl__stack_high_water(const tl__stack *s)
{
    unsigned char vec[256];
    size_t pg = page_size ? page_size : 4096;
    size_t npages = (size_t)(s->hi - s->lo) / pg, done = 0;

    while (done < npages) {
        size_t n = npages - done < sizeof vec ? npages - done : sizeof vec;
        char *start = s->hi - (done + n) * pg;
        if (mincore(start, n * pg, vec) != 0)
            break;
        for (size_t i = n; i-- > 0;) {
            if (!(vec[i] & 1))
                return done * pg;
            done++;
        }
    }
    return done * pg;
}

/* ---- overflow reports -------------------------------------------------- */

/* The callback and the handlers we displaced. The lookup is an atomic so a
 * signal on another thread sees either no callback or a complete one. */
static _Atomic(tl__guard_lookup) fault_lookup;
static struct sigaction prev_segv, prev_bus; /* set before installing */
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int installed;                         /* under install_lock */
static size_t fault_page;                     /* page size, for the handler */
/* Signals (1: SIGSEGV, 2: SIGBUS) whose fault on_fault handed back to the
 * previous action, which it reinstalled: tulip's handler is put back at
 * the loop's next iteration. Relaxed: the lock orders the re-arm. */
static _Atomic int handed_over;

/* This thread's alternate signal stack, if we mapped it. */
static __thread char *alt_map;
static __thread size_t alt_len;

/* Async-signal-safe formatting: no stdio in a signal handler. */
static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        buf[at++] = *s++;
    return at;
}

static size_t put_ptr(char *buf, size_t at, size_t cap, const void *p)
{
    char tmp[2 + 16];
    uintptr_t v = (uintptr_t)p;
    int n = 0;

    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v && n < 16);
    at = put_str(buf, at, cap, "0x");
    while (n > 0 && at + 1 < cap)
        buf[at++] = tmp[--n];
    return at;
}

static void set_default(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
}

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
    int saved_errno = errno;
    tl__guard_lookup lookup =
        atomic_load_explicit(&fault_lookup, memory_order_acquire);
    char name[128], scratch[8], msg[640];
    const struct sigaction *prev;

    name[0] = '\0';
    if (lookup && lookup(si->si_addr, name, sizeof name)) {
        /* The lookup knows the guard only as a yes/no per address: walk
         * it page by page to report its bounds (capped at 16 MiB). */
        uintptr_t pg = fault_page, a = (uintptr_t)si->si_addr;
        uintptr_t lo = a & ~(pg - 1), hi = lo + pg;
        size_t at = 0;
        for (int i = 0; i < 4096 && lo >= pg &&
                        lookup((void *)(lo - pg), scratch, sizeof scratch);
             i++)
            lo -= pg;
        for (int i = 0;
             i < 4096 && lookup((void *)hi, scratch, sizeof scratch); i++)
            hi += pg;
        name[sizeof name - 1] = '\0';
        at = put_str(msg, at, sizeof msg, "tulip: stack overflow in task '");
        at = put_str(msg, at, sizeof msg, name);
        at = put_str(msg, at, sizeof msg, "' (fault at ");
        at = put_ptr(msg, at, sizeof msg, si->si_addr);
        at = put_str(msg, at, sizeof msg, ", guard [");
        at = put_ptr(msg, at, sizeof msg, (void *)lo);
        at = put_str(msg, at, sizeof msg, ", ");
        at = put_ptr(msg, at, sizeof msg, (void *)hi);
        at = put_str(msg, at, sizeof msg,
                     ")): give the task a larger stack (tl_spawn_opts."
                     "stack_size, tl_config.stack_size) or move large "
                     "buffers to the heap\n");
        if (write(STDERR_FILENO, msg, at) < 0) {
            /* nothing left to try */
        }
        set_default(SIGABRT); /* no user SIGABRT handler on a dead stack */
        abort();
    }

    /* Not ours: hand the fault over exactly as the kernel would have
     * delivered it to the action we displaced. Put that action back and
     * return: a fault raised by the instruction (si_code > 0) re-executes
     * it and meets the previous action with its own flags (SA_RESETHAND,
     * sa_mask, SA_NODEFER, its stack: ours is the alternate stack, which
     * the previous handler may not have asked for), once; the default
     * action dumps core with the real faulting context. A signal sent with
     * kill() or sigqueue() (si_code <= 0) would not come back by itself:
     * queue it again with its own siginfo (it stays blocked until we
     * return). Calling the previous handler from here ignored all of that:
     * a crash reporter with SA_RESETHAND ran millions of times and no core
     * was written. The loop puts tulip's handler back at its next
     * iteration (tl__stack_handler_rearm) if nobody changed the action. */
    prev = sig == SIGBUS ? &prev_bus : &prev_segv;
    sigaction(sig, prev, NULL);
    atomic_fetch_or_explicit(&handed_over, sig == SIGBUS ? 2 : 1,
                             memory_order_relaxed);
    if (si->si_code <= 0 &&
        syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid),
                sig, si) != 0)
        raise(sig);
    (void)uctx;
    errno = saved_errno;
}

/* The action on_fault installs. */
static void our_action(struct sigaction *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sa_sigaction = on_fault;
    sa->sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa->sa_mask);
}

static int same_handler(const struct sigaction *a, const struct sigaction *b)
{
    if ((a->sa_flags & SA_SIGINFO) != (b->sa_flags & SA_SIGINFO)) return 0;
    return a->sa_flags & SA_SIGINFO ? a->sa_sigaction == b->sa_sigaction
                                    : a->sa_handler == b->sa_handler;
}

void tl__stack_handler_rearm(void)
{
    if (!atomic_load_explicit(&handed_over, memory_order_relaxed))
        return;
    pthread_mutex_lock(&install_lock);
    int bits = atomic_exchange_explicit(&handed_over, 0, memory_order_relaxed);
    for (int i = 0; i < 2; i++) {
        int sig = i ? SIGBUS : SIGSEGV;
        const struct sigaction *prev = i ? &prev_bus : &prev_segv;
        struct sigaction cur, sa;
        if (!(bits & (1 << i)) || sigaction(sig, NULL, &cur) != 0) continue;
        /* Still the action we handed the fault to (not one that it reset
         * to SIG_DFL, nor one somebody installed since): ours again. */
        if (!same_handler(&cur, prev)) continue;
        our_action(&sa);
        sigaction(sig, &sa, NULL);
    }
    pthread_mutex_unlock(&install_lock);
}

int tl__stack_install_handler(tl__guard_lookup lookup)
{
    struct sigaction sa;
    int rc = 0;

    tl__stack_guard_strategy(); /* page size */
    pthread_mutex_lock(&install_lock);
    atomic_store_explicit(&fault_lookup, lookup, memory_order_release);
    if (!installed) {
        fault_page = page_size;
        our_action(&sa);
        if (sigaction(SIGSEGV, NULL, &prev_segv) != 0 ||
            sigaction(SIGBUS, NULL, &prev_bus) != 0 ||
            sigaction(SIGSEGV, &sa, NULL) != 0) {
            rc = -errno;
        } else if (sigaction(SIGBUS, &sa, NULL) != 0) {
            rc = -errno;
            sigaction(SIGSEGV, &prev_segv, NULL);
        } else {
            installed = 1;
        }
    }
    pthread_mutex_unlock(&install_lock);
    return rc;
}

int tl__stack_thread_init(void)
{
    stack_t old, ss;
    size_t pg, len = ALTSTACK_SIZE;
    char *m;

    if (alt_map)
        return 0;
    if (sigaltstack(NULL, &old) != 0)
        return -errno;
    if (!(old.ss_flags & SS_DISABLE))
        return 0; /* the thread has one already (ASan's, the user's) */
    tl__stack_guard_strategy();
    pg = page_size;
#ifdef _SC_MINSIGSTKSZ
    {
        /* AArch64 SVE/SME signal frames can be large. */
        long min = sysconf(_SC_MINSIGSTKSZ);
        if (min > 0 && (size_t)min * 4 > len)
            len = ((size_t)min * 4 + pg - 1) & ~(pg - 1);
    }
#endif
    /* One guard page below, so a handler that overflows faults loudly. */
    m = mmap(NULL, len + pg, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return -errno;
    mprotect(m, pg, PROT_NONE);
    ss.ss_sp = m + pg;
    ss.ss_size = len;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0) {
        int e = errno;
        munmap(m, len + pg);
        return -e;
    }
    alt_map = m;
    alt_len = len + pg;
    return 0;
}

void tl__stack_thread_fini(void)
{
    stack_t ss;

    if (!alt_map)
        return;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    if (sigaltstack(&ss, NULL) == 0)
        munmap(alt_map, alt_len);
    alt_map = NULL;
    alt_len = 0;
}
