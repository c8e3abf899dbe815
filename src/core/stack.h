/* Task stacks: mmap'ed, lazily committed, pooled, with a guard below.
 *
 * Layout of one stack (addresses grow to the right, the stack grows left):
 *
 *   guard_lo                    lo                                  hi
 *   | guard (1 MiB, no access)  | usable stack ...................... |
 *
 * The guard is 1 MiB below every stack by default, so that one frame of
 * up to 1 MiB from code built without -fstack-clash-protection (which may
 * skip pages) lands in it rather than in the stack below. Its price is
 * address space and page tables, not memory of the process: see stack.c.
 * A pool may be given a smaller one (tl_config.stack_guard,
 * TULIP_STACK_GUARD) for programs whose code probes every page.
 *
 * Stacks are carved from large MAP_NORESERVE arenas so that a million of
 * them do not need a million mappings (vm.max_map_count is 65,530). The
 * guard strategy is chosen once per process by a functional probe (see
 * stack.c) unless forced.
 */
#ifndef TL_STACK_H
#define TL_STACK_H

#include <stddef.h>
#include <stdint.h>

enum tl__guard_kind {
    TL__GUARD_AUTO = 0,
    TL__GUARD_MADVISE,  /* madvise(MADV_GUARD_INSTALL), Linux 6.13+ */
    TL__GUARD_MPROTECT, /* mprotect(PROT_NONE): one extra mapping each */
    TL__GUARD_CANARY,   /* a canary word checked at each switch + gap */
};

/* Bytes of guard below every stack (all strategies; the canary's gap)
 * unless the pool was given another size, and the largest size allowed. */
#define TL__STACK_GUARD_SIZE ((size_t)1024 * 1024)
#define TL__STACK_GUARD_MAX ((size_t)64 * 1024 * 1024)

typedef struct tl__stack {
    struct tl__stack *next; /* free-list link while pooled */
    char *lo;               /* lowest usable byte (just above the guard) */
    char *hi;               /* one past the highest usable byte */
    char *guard_lo;         /* the guard region [guard_lo, lo) */
    size_t size_class;      /* usable size requested (pool bucket key) */
    int guard;              /* enum tl__guard_kind actually applied */
    int pooled;             /* sitting in a pool free list */
    char *poison_lo;        /* ASan builds: [poison_lo, hi) was poisoned
                               when the stack was released; hi if not */
} tl__stack;

typedef struct tl__stack_pool tl__stack_pool;

/* Which strategy the process uses (runs the probe on first call). */
int tl__stack_guard_strategy(void);
const char *tl__stack_guard_name(int kind);

/* Per-loop pool. forced_guard is TL__GUARD_AUTO or a forced kind (also
 * settable with TULIP_GUARD=madvise|mprotect|canary). Returns 0 or -errno. */
int tl__stack_pool_new(tl__stack_pool **out, int forced_guard);
/* The guard size of the pool's stacks, before its first tl__stack_get:
 * bytes, rounded up to whole pages; 0 means $TULIP_STACK_GUARD if set and
 * valid (else a warning, once per process), else TL__STACK_GUARD_SIZE.
 * Returns 0, or -EINVAL for more than TL__STACK_GUARD_MAX (the pool keeps
 * its size). */
int tl__stack_pool_set_guard_size(tl__stack_pool *p, size_t bytes);
/* Whether carving commits fresh stacks' top pages ahead (on by default:
 * a task touches its top page at once). Tests that carve many stacks and
 * never touch them turn it off. */
void tl__stack_pool_set_populate(tl__stack_pool *p, int on);
/* Unmaps everything; every stack must have been returned. */
void tl__stack_pool_free(tl__stack_pool *p);

/* Take a stack with at least `size` usable bytes. 0 or -ENOMEM. */
int tl__stack_get(tl__stack_pool *p, size_t size, tl__stack **out);
/* Give it back. A few stay hot; the rest are trimmed in batches (their
 * memory goes back to the kernel, a bounded number keep their top page). */
void tl__stack_put(tl__stack_pool *p, tl__stack *s);

/* The loop calls this when it is about to wait with no task ready: if no
 * stack was taken since the previous call, it gives back the top pages of
 * one batch of the warm stacks beyond the class's warm cache (the rest of
 * them went back at release). Returns 1 if more remain (call again soon:
 * the loop polls without blocking), 0 if not. One system call at most. */
int tl__stack_pool_idle(tl__stack_pool *p);

/* Canary strategy: 0 if intact, -1 if the canary at the bottom of the
 * usable region was overwritten ("possible stack overflow"). Always 0 for
 * the other strategies. */
int tl__stack_check_canary(const tl__stack *s);
static inline int tl__stack_check(const tl__stack *s)
{
    /* Inline: the scheduler asks at every suspension, and only canary
     * stacks have anything to check. */
    return s->guard == TL__GUARD_CANARY ? tl__stack_check_canary(s) : 0;
}

/* Highest number of bytes ever touched in s (scans for the fill pattern /
 * untouched pages); used by TULIP_STACK_CENSUS=1. */
size_t tl__stack_high_water(const tl__stack *s);

/* Install (once per process) the SIGSEGV/SIGBUS handler and, per thread,
 * an alternate signal stack. The handler calls lookup(addr, name, len) to
 * ask whether addr lies in the guard of the task running on this thread;
 * if it does, it prints "stack overflow in task '<name>'" and aborts;
 * otherwise it hands the fault to the action it displaced (see on_fault). */
typedef int (*tl__guard_lookup)(void *fault_addr, char *name, size_t len);
int tl__stack_install_handler(tl__guard_lookup lookup);
/* After the handler handed a fault that was not a guard's to the action it
 * had displaced (by reinstalling that action), put the handler back if the
 * action is still that one. Cheap when nothing was handed over (one
 * relaxed load): the loop calls it every iteration. */
void tl__stack_handler_rearm(void);
int tl__stack_thread_init(void);    /* sigaltstack for this thread */
void tl__stack_thread_fini(void);

#endif
