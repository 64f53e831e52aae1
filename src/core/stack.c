/*
 * Task stacks.
 *
 * Stacks come from a per-loop pool, sorted into classes by size (a size is
 * rounded up to whole pages). An empty class is refilled by mapping one
 * slab that holds several stacks, so creating a task normally costs no
 * system call at all: it pops a stack from the class's free list, and a
 * finished task pushes it back. Every stack in a slab has a gap of the
 * pool's guard size below it: [guard][stack][guard][stack]...
 *
 * Guards. The gap below a stack is made to fault when touched, so an
 * overflow stops at the faulting instruction. It is larger than one page
 * (64 KiB by default, cio_loop_options.stack_guard_size) because a frame
 * larger than the guard would jump over it into the neighbouring stack; it
 * costs address space and page-table entries, not memory. Two ways to make
 * the guard, chosen per loop when it is created:
 *
 *   guard-region  Linux 6.13+ installs guard markers in the page tables
 *                 with madvise(MADV_GUARD_INSTALL) without splitting the
 *                 mapping, so a slab stays one mapping however many guards
 *                 it has, and every stack gets one. Whether the kernel has
 *                 it is probed once per process (older kernels: EINVAL).
 *                 A stack reused from the pool keeps its guard; unmapping
 *                 the slab removes them all.
 *   guard-page    Older kernels: the guard is made PROT_NONE, which splits
 *                 the slab's mapping, so every guarded stack costs two of
 *                 the 65,530 mappings Linux grants a process by default
 *                 (vm.max_map_count). cio therefore guards the first
 *                 max_map_count / 4 stacks of the process (about 16,000;
 *                 half the mappings stay free for the rest of the program)
 *                 and, once that budget is spent or mprotect fails, carves
 *                 unguarded slabs that cost one mapping per slab.
 *
 * An unguarded stack (guard-page after the budget, or a guard that could
 * not be installed) is checked two ways instead, each time its task is
 * switched out and when it ends: the lowest stack pointer must lie above a
 * red zone at the bottom, and the canary words (the lowest word of the
 * stack, and two words of the cache line just below it, in the gap) must
 * still be zero. An overflow is then caught at the next switch (or the
 * task's end) rather than at the faulting instruction, and the process
 * stops with the same message. The gap below it still keeps a frame smaller
 * than the gap off the neighbouring stack.
 *
 * Overflow report. A guarded overflow raises SIGSEGV on a stack that no
 * longer has room, so the handler runs on an alternate signal stack. It
 * compares the fault address with the guard of the task running in that
 * thread; on a match it writes "cio: task 'NAME' overflowed its N-byte
 * stack (task ID, spawned at SITE; fault at ..., guard ...)", puts the
 * default action back and returns, so the fault repeats and the process
 * ends by SIGSEGV as it would without cio. An overflow caught after the
 * fact (canary, red zone) gives the same first line and ends by SIGABRT.
 * The spawn site is the "file:line" of the spawn macro, or, for a spawn
 * through a function pointer, "module+0xOFFSET" found in /proc/self/maps
 * with system calls only (cio__stack_format_pc). Any other fault is passed
 * on (see on_segv).
 */
#include "stack.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/fault.h"
#include "base/name_text.h"
#include "cio.h"

/* Debian 12's headers predate Linux 6.13. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define CIO__HAVE_VALGRIND 1
#endif
#endif

#define STACKS_PER_SLAB_TARGET ((size_t)2 * 1024 * 1024)
#define STACKS_PER_SLAB_MAX 64

/* A free stack keeps its free-list link and its guard in its top bytes. */
typedef struct free_stack {
    void *next;
    size_t guard;
    void *lo;
    uint8_t wiped;
} free_stack;

static size_t page_size(void) {
    static atomic_size_t cached;
    size_t size = atomic_load_explicit(&cached, memory_order_relaxed);
    if (size == 0) {
        long v = sysconf(_SC_PAGESIZE);
        size = v > 0 ? (size_t)v : 4096;
        atomic_store_explicit(&cached, size, memory_order_relaxed);
    }
    return size;
}

/* Guarded stacks the process may still create; initialised on first use. */
static atomic_long guard_budget = -1;

static long read_max_map_count(void) {
    long value = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &value) != 1) value = 65530;
        fclose(f);
    }
    return value;
}

static bool take_guard(void) {
    long budget = atomic_load(&guard_budget);
    if (budget < 0) {
        long initial = read_max_map_count() / 4;
        atomic_compare_exchange_strong(&guard_budget, &budget, initial);
        budget = atomic_load(&guard_budget);
    }
    while (budget > 0) {
        if (atomic_compare_exchange_weak(&guard_budget, &budget, budget - 1)) return true;
    }
    return false;
}

static void give_back_guards(size_t n) {
    atomic_fetch_add(&guard_budget, (long)n);
}

size_t cio__stack_guard_budget(void) {
    long budget = atomic_load(&guard_budget);
    if (budget < 0) {
        take_guard();
        give_back_guards(1);
        budget = atomic_load(&guard_budget);
    }
    return (size_t)budget;
}

void cio__stack_set_guard_budget(size_t budget) {
    atomic_store(&guard_budget, (long)budget);
}

/* ---- guard regions ------------------------------------------------------ */

/* 0: not probed yet; 1: the kernel installs guard regions; 2: it does not. */
static atomic_int regions_probe;
static atomic_bool regions_disabled;

/* Installs a guard marker on one page of a scratch mapping: old kernels
 * reject the advice with EINVAL. */
/*
 * Success of madvise is not proof: an emulator (qemu-user) accepts advice
 * it does not know and does nothing. So the probe also checks that the
 * kernel refuses to read the guarded page: write(2) from it into a pipe
 * must fail with EFAULT, which tests the guard without touching it.
 */
static bool probe_guard_regions(void) {
    size_t page = page_size();
    void *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    bool ok = madvise(p, page, MADV_GUARD_INSTALL) == 0;
    int fds[2];
    if (ok && pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
        ok = write(fds[1], p, 1) < 0 && errno == EFAULT;
        close(fds[0]);
        close(fds[1]);
    } else {
        ok = false;
    }
    munmap(p, 2 * page);
    return ok;
}

bool cio__stack_guard_regions_available(void) {
    if (atomic_load(&regions_disabled)) return false;
    int state = atomic_load_explicit(&regions_probe, memory_order_acquire);
    if (state == 0) {
        state = probe_guard_regions() ? 1 : 2;
        atomic_store_explicit(&regions_probe, state, memory_order_release);
    }
    return state == 1;
}

void cio__stack_disable_guard_regions(bool disable) {
    atomic_store(&regions_disabled, disable);
}

static size_t round_pages(size_t size) {
    size_t page = page_size();
    return (size + page - 1) & ~(page - 1);
}

void cio__stack_pool_init(cio__stack_pool *pool, size_t guard_size) {
    memset(pool, 0, sizeof *pool);
    pool->guard_size = round_pages(guard_size ? guard_size : page_size());
    pool->guard_regions = cio__stack_guard_regions_available();
}

const char *cio__stack_protection(const cio__stack_pool *pool, const cio__stack *stack) {
    if (stack->guard == 0) return "canary";
    return pool->guard_regions ? "guard-region" : "guard-page";
}

/* The callers bound size by CIO_MAX_STACK_SIZE, so this cannot wrap. */
size_t cio__stack_round(size_t size) {
    if (size < CIO_MIN_STACK_SIZE) size = CIO_MIN_STACK_SIZE;
    return round_pages(size);
}

static cio__stack_class *find_class(cio__stack_pool *pool, size_t size) {
    for (size_t i = 0; i < pool->class_count; i++)
        if (pool->classes[i].size == size) return &pool->classes[i];
    cio__stack_class *grown =
        cio__realloc(pool->classes, (pool->class_count + 1) * sizeof *pool->classes);
    if (!grown) return NULL;
    pool->classes = grown;
    cio__stack_class *c = &pool->classes[pool->class_count++];
    c->size = size;
    c->free_list = NULL;
    c->cold = NULL;
    c->cold_count = c->cold_cap = 0;
    pool->keep_stacks += CIO__STACK_KEEP_BYTES / size;
    return c;
}

static free_stack *header_of(void *lo, size_t size) {
    return (free_stack *)((char *)lo + size - sizeof(free_stack));
}

static void push_free(cio__stack_class *c, void *lo, size_t guard, uint8_t wiped) {
    free_stack *h = header_of(lo, c->size);
    h->next = c->free_list;
    h->guard = guard;
    h->lo = lo;
    h->wiped = wiped;
    c->free_list = h;
}

/* 0: not tried yet; 1: process_madvise takes guard advice; 2: it does not
 * (a kernel before PIDFD_SELF), so no slab tries again. */
static atomic_int ranges_state;

/* The guards of a slab in one process_madvise call: true if every one of
 * them is installed. */
static atomic_bool batching_disabled;

void cio__stack_disable_guard_batching(bool disable) {
    atomic_store(&batching_disabled, disable);
}

static bool install_guards_at_once(char *base, size_t stride, size_t guard, size_t count) {
    if (atomic_load_explicit(&ranges_state, memory_order_relaxed) == 2 ||
        atomic_load_explicit(&batching_disabled, memory_order_relaxed))
        return false;
#ifdef CIO__HAVE_VALGRIND
    /* Valgrind does not know process_madvise: it would warn, then fail it. */
    if (RUNNING_ON_VALGRIND) return false;
#endif
    struct iovec ranges[STACKS_PER_SLAB_MAX];
    for (size_t i = 0; i < count; i++) {
        ranges[i].iov_base = base + i * stride;
        ranges[i].iov_len = guard;
    }
    long advised = cio__sys_madvise_ranges(ranges, count, MADV_GUARD_INSTALL);
    if (advised < 0 && (errno == EBADF || errno == EINVAL || errno == ENOSYS || errno == EPERM))
        atomic_store_explicit(&ranges_state, 2, memory_order_relaxed);
    else if (advised >= 0)
        atomic_store_explicit(&ranges_state, 1, memory_order_relaxed);
    return advised == (long)(count * guard);
}

/* Makes the guards of a fresh slab (stride bytes per stack, the guard at
 * the start of each) and says, per stack, how many guard bytes it got. */
static void install_guards(cio__stack_pool *pool, cio__stack_slab *slab, size_t stride,
                           size_t count, size_t *guard_of) {
    size_t guard = pool->guard_size;
    char *base = slab->base;
    if (pool->guard_regions) {
        /* All the slab's guards in one call where the kernel takes advice
         * for many ranges (a third of the cost of a call per guard in a
         * VM); otherwise, or if it advised less than all of them, one call
         * per guard (installing a guard twice is harmless). Either way the
         * mapping stays whole, and a stack whose guard cannot be installed
         * (out of memory for page tables) falls back to its canary. */
        if (install_guards_at_once(base, stride, guard, count)) {
            for (size_t i = 0; i < count; i++) guard_of[i] = guard;
            return;
        }
        for (size_t i = 0; i < count; i++)
            guard_of[i] = cio__sys_madvise(base + i * stride, guard, MADV_GUARD_INSTALL) == 0
                              ? guard
                              : 0;
        return;
    }
    /* Decide the guard for the whole slab: all of it or none of it, so the
     * mapping count stays what the budget says. */
    size_t taken = 0;
    for (; taken < count; taken++) {
        if (!take_guard()) break;
    }
    bool guarded = taken == count;
    if (!guarded) give_back_guards(taken);
    for (size_t i = 0; guarded && i < count; i++) {
        if (cio__sys_mprotect(base + i * stride, guard, PROT_NONE) != 0) {
            /* Out of mappings after all: undo and fall back to canaries. */
            mprotect(base, slab->length, PROT_READ | PROT_WRITE);
            give_back_guards(count);
            guarded = false;
        }
    }
    slab->budgeted = guarded ? count : 0;
    for (size_t i = 0; i < count; i++) guard_of[i] = guarded ? guard : 0;
}

/* Maps one slab of stacks for class c and puts them on its free list; a
 * trimmed stack, if the class has one, comes first (no system call). */
static int refill(cio__stack_pool *pool, cio__stack_class *c) {
    if (c->cold_count) {
        cio__stack_cold *cold = &c->cold[--c->cold_count];
        pool->cold_total--;
        /* Its pages read zero: wiped, as a fresh stack. */
        push_free(c, cold->lo, cold->guard, 1);
        return 0;
    }
    size_t stride = c->size + pool->guard_size;
    /* The slab's stack count depends on the stack size only, so a larger
     * guard does not mean more slabs (and more system calls). */
    size_t count = STACKS_PER_SLAB_TARGET / c->size;
    if (count < 1) count = 1;
    if (count > STACKS_PER_SLAB_MAX) count = STACKS_PER_SLAB_MAX;
    if (pool->slab_count == pool->slab_cap) {
        size_t cap = pool->slab_cap ? pool->slab_cap * 2 : 8;
        cio__stack_slab *grown = cio__realloc(pool->slabs, cap * sizeof *grown);
        if (!grown) return -ENOMEM;
        pool->slabs = grown;
        pool->slab_cap = cap;
    }
    size_t length = count * stride;
    void *base = cio__sys_mmap(length, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (base == MAP_FAILED) return -ENOMEM;
    cio__stack_slab *slab = &pool->slabs[pool->slab_count++];
    slab->base = base;
    slab->length = length;
    slab->budgeted = 0;
    pool->stacks_total += count;
    size_t guard_of[STACKS_PER_SLAB_MAX];
    install_guards(pool, slab, stride, count, guard_of);
    /* Push in reverse so stacks are handed out from low to high addresses. */
    for (size_t i = count; i-- > 0;) {
        void *lo = (char *)base + i * stride + pool->guard_size;
#ifdef CIO__HAVE_VALGRIND
        VALGRIND_STACK_REGISTER(lo, (char *)lo + c->size);
#endif
        push_free(c, lo, guard_of[i], 1);
    }
    return 0;
}

int cio__stack_get(cio__stack_pool *pool, size_t size, cio__stack *out) {
    /* Nearly every task asks for the loop's default size: remember the
     * class of the last request and skip the rounding and the search. */
    cio__stack_class *c;
    if (size == pool->last_request && pool->class_count) {
        c = &pool->classes[pool->last_class];
    } else {
        size_t requested = size;
        if (size > CIO_MAX_STACK_SIZE) return -EINVAL;
        c = find_class(pool, cio__stack_round(size));
        if (!c) return -ENOMEM;
        pool->last_request = requested;
        pool->last_class = (size_t)(c - pool->classes);
    }
    size = c->size;
    if (!c->free_list) {
        int rc = refill(pool, c);
        if (rc < 0) return rc;
    }
    free_stack *h = c->free_list;
    c->free_list = h->next;
    /* The next spawn reads that stack's link from its top page, which has
     * most likely left the cache since its task ended (many spawns in a
     * row, as in a task group, each wait for it otherwise). */
    if (h->next) __builtin_prefetch(h->next, 1);
    out->lo = h->lo;
    out->size = size;
    out->guard = h->guard;
    out->wiped = h->wiped;
    /* An unguarded stack's canary (zero) is already in place: fresh memory
     * is zero, and a reused stack's previous task ended with it intact. */
    return 0;
}

void cio__stack_put(cio__stack_pool *pool, const cio__stack *stack) {
    cio__stack_class *c = NULL;
    if (pool->class_count && pool->classes[pool->last_class].size == stack->size)
        c = &pool->classes[pool->last_class];
    for (size_t i = 0; !c && i < pool->class_count; i++)
        if (pool->classes[i].size == stack->size) c = &pool->classes[i];
    if (!c) return; /* cannot happen: the class made the stack */
    push_free(c, stack->lo, stack->guard, stack->wiped);
}

void cio__stack_pool_destroy(cio__stack_pool *pool) {
    for (size_t i = 0; i < pool->class_count; i++) cio__free(pool->classes[i].cold);
    for (size_t i = 0; i < pool->slab_count; i++) {
        cio__stack_slab *s = &pool->slabs[i];
        munmap(s->base, s->length); /* guard regions go with the mapping */
        give_back_guards(s->budgeted);
    }
    cio__free(pool->slabs);
    cio__free(pool->classes);
    size_t guard_size = pool->guard_size;
    bool guard_regions = pool->guard_regions;
    memset(pool, 0, sizeof *pool);
    pool->guard_size = guard_size;
    pool->guard_regions = guard_regions;
}

/* ---- giving memory back ------------------------------------------------- */

/*
 * Trimming a class. Its free list is a stack: the head holds the stacks
 * that ran last, whose pages are most likely still in cache, and they are
 * the ones kept. Past the first keep stacks the list is cut, and each stack
 * after the cut is recorded in the cold list (its link would otherwise
 * live in its own top page). Then the pages go back to the kernel with
 * MADV_DONTNEED, and read zero when touched again. One call per stack cost
 * about 70-90 us on this VM (10,000 stacks took most of a second), so the
 * new cold entries are sorted by address and each run of neighbours (a
 * stack, its guard, the next stack...) is given back in one call. The
 * mapping, and with it every guard, stays: a guard region survives
 * MADV_DONTNEED (only unmapping or MADV_GUARD_REMOVE take it away), a
 * PROT_NONE guard page holds no memory to give, and the gap below an
 * unguarded stack only ever holds zeros (its canary words). If the cold
 * list cannot grow, the stacks it has no room for stay on the free list.
 */
static int cold_order(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const cio__stack_cold *)a)->lo;
    uintptr_t y = (uintptr_t)((const cio__stack_cold *)b)->lo;
    return x < y ? -1 : x > y;
}

static size_t trim_class(cio__stack_class *c, size_t keep, size_t max, size_t stride) {
    free_stack **at = (free_stack **)&c->free_list;
    for (size_t i = 0; i < keep && *at; i++) at = (free_stack **)&(*at)->next;
    size_t first = c->cold_count;
    while (*at && c->cold_count - first < max) {
        free_stack *h = *at;
        if (c->cold_count == c->cold_cap) {
            size_t cap = c->cold_cap ? c->cold_cap * 2 : 64;
            cio__stack_cold *grown = cio__realloc(c->cold, cap * sizeof *grown);
            if (!grown) break; /* the rest stays on the free list */
            c->cold = grown;
            c->cold_cap = cap;
        }
        c->cold[c->cold_count++] = (cio__stack_cold){.lo = h->lo, .guard = h->guard};
        *at = h->next;
    }
    size_t n = c->cold_count - first;
    if (n == 0) return 0;
    cio__stack_cold *fresh = c->cold + first;
    qsort(fresh, n, sizeof *fresh, cold_order);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && (char *)fresh[j].lo == (char *)fresh[j - 1].lo + stride) j++;
        char *from = fresh[i].lo, *to = (char *)fresh[j - 1].lo + c->size;
        /* Cannot fail on the pool's own private anonymous mapping; if it
         * did, the stacks would only keep their pages (and read as wiped
         * when they are not, which costs the high-water mark's accuracy). */
        (void)madvise(from, (size_t)(to - from), MADV_DONTNEED);
        i = j;
    }
    return n;
}

size_t cio__stack_pool_trim(cio__stack_pool *pool, size_t keep_bytes, size_t max) {
    size_t trimmed = 0;
    for (size_t i = 0; i < pool->class_count && trimmed < max; i++) {
        cio__stack_class *c = &pool->classes[i];
        trimmed += trim_class(c, keep_bytes / c->size, max - trimmed, c->size + pool->guard_size);
    }
    pool->cold_total += trimmed;
    return trimmed;
}

bool cio__stack_pool_idle(cio__stack_pool *pool, size_t live_tasks) {
    size_t in_pool = cio__stack_pool_warm(pool);
    size_t free_stacks = in_pool > live_tasks ? in_pool - live_tasks : 0;
    if (free_stacks > 2 * pool->keep_stacks) {
        size_t trimmed = cio__stack_pool_trim(pool, CIO__STACK_KEEP_BYTES, CIO__STACK_TRIM_STEP);
        pool->trimmed_since_heap += trimmed;
        /* A full step may have left more: the loop comes back at once.
         * (Less than a step means every class is down to what it keeps, or
         * the cold list could not grow: either way, done for now.) */
        if (trimmed == CIO__STACK_TRIM_STEP) return true;
    }
    /* The tasks whose stacks were trimmed freed their records too (the
     * loop's idle step frees the records beyond what the pool keeps
     * stacks for, and counts them in heap_freed): many of them, or many
     * freed records of other kinds, are worth a walk of malloc's free
     * lists. */
    if (pool->trimmed_since_heap >= CIO__STACK_HEAP_TRIM_STACKS ||
        pool->heap_freed > CIO__STACK_HEAP_TRIM_BYTES) {
        pool->trimmed_since_heap = 0;
        pool->heap_freed = 0;
#ifdef __GLIBC__
        malloc_trim(0);
#endif
    }
    return false;
}

/* ---- high-water marks ---------------------------------------------------- */

/* Reads memory the sanitizers may think is a dead frame's: not a bug here,
 * the scan only asks whether a word was ever written. */
#if defined(__clang__)
#define CIO__NO_SANITIZE __attribute__((no_sanitize("address", "thread", "memory")))
#else
#define CIO__NO_SANITIZE __attribute__((no_sanitize_address, no_sanitize_thread))
#endif

CIO__NO_SANITIZE size_t cio__stack_high_water(const cio__stack *stack, const void *sp) {
    size_t page = page_size();
    char *lo = stack->lo, *top = lo + stack->size;
#ifdef CIO__HAVE_VALGRIND
    /* Memcheck marks a frame inaccessible once it is popped: the scan reads
     * it on purpose, and the next push marks it undefined again. */
    if (sp && (char *)sp > lo && (char *)sp <= top)
        VALGRIND_MAKE_MEM_DEFINED(lo, (size_t)((char *)sp - lo));
#else
    (void)sp;
#endif
    size_t pages = stack->size / page;
    unsigned char resident[512];
    for (size_t first = 0; first < pages; first += sizeof resident) {
        size_t n = pages - first < sizeof resident ? pages - first : sizeof resident;
        /* Without mincore every page is read: slower, same answer. */
        bool known = mincore(lo + first * page, n * page, resident) == 0;
        for (size_t i = 0; i < n; i++) {
            if (known && !(resident[i] & 1)) continue;
            const volatile uint64_t *w = (const volatile uint64_t *)(lo + (first + i) * page);
            for (size_t j = 0; j < page / sizeof *w; j++)
                if (w[j] != 0) return (size_t)(top - (const char *)&w[j]);
        }
    }
    return 0;
}

void cio__stack_wipe(cio__stack *stack, size_t mark) {
    size_t page = page_size();
    char *top = (char *)stack->lo + stack->size;
    if (mark > stack->size) mark = stack->size;
    char *from = (char *)((uintptr_t)(top - mark) & ~(uintptr_t)(page - 1));
    /* On failure the stack stays as it is and says so. */
    stack->wiped = from >= top || madvise(from, (size_t)(top - from), MADV_DONTNEED) == 0;
}

/* ---- overflow detection ------------------------------------------------ */

static _Atomic(cio__running_stack_fn) running_stack_hook;

void cio__stack_set_running_hook(cio__running_stack_fn fn) {
    atomic_store(&running_stack_hook, fn);
}

/* Formats without stdio: the handler must stay async-signal-safe. */
static size_t append(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at + 1 < cap) buf[at++] = *s++;
    return at;
}

static size_t append_size(char *buf, size_t at, size_t cap, size_t v) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && at + 1 < cap) buf[at++] = digits[--n];
    return at;
}

static size_t append_hex(char *buf, size_t at, size_t cap, uintptr_t v) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    at = append(buf, at, cap, "0x");
    while (n && at + 1 < cap) buf[at++] = digits[--n];
    return at;
}

/* Parses a hexadecimal number at *p, moving *p past it. */
static uintptr_t parse_hex(const char **p, const char *end) {
    uintptr_t v = 0;
    for (; *p < end; (*p)++) {
        char c = **p;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) break;
        v = v << 4 | (uintptr_t)d;
    }
    return v;
}

/* Looks pc up in one line of /proc/self/maps ("lo-hi perms offset dev inode
 * path"): on a match writes "path+0xOFFSET" (the offset in the file, which
 * is what addr2line -e path wants for a position-independent module). */
static size_t format_maps_line(char *buf, size_t cap, const char *line, const char *end,
                               uintptr_t pc) {
    const char *p = line;
    uintptr_t lo = parse_hex(&p, end);
    if (p >= end || *p != '-') return 0;
    p++;
    uintptr_t hi = parse_hex(&p, end);
    if (pc < lo || pc >= hi) return 0;
    while (p < end && *p == ' ') p++;
    while (p < end && *p != ' ') p++; /* perms */
    while (p < end && *p == ' ') p++;
    uintptr_t offset = parse_hex(&p, end);
    for (int field = 0; field < 2; field++) { /* dev, inode */
        while (p < end && *p == ' ') p++;
        while (p < end && *p != ' ') p++;
    }
    while (p < end && *p == ' ') p++;
    size_t at = 0;
    if (p == end) at = append(buf, at, cap, "[anonymous]");
    while (p < end && at + 1 < cap) buf[at++] = *p++;
    at = append(buf, at, cap, "+");
    at = append_hex(buf, at, cap, pc - lo + offset);
    buf[at] = '\0';
    return at;
}

size_t cio__stack_format_pc(char *buf, size_t cap, const void *pc) {
    if (cap == 0) return 0;
    buf[0] = '\0';
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    size_t written = 0;
    if (fd >= 0) {
        /* Reads in chunks and looks at each whole line; a line cut by the
         * end of the chunk is moved to the front and completed by the next
         * read. */
        char chunk[2048];
        size_t have = 0;
        for (;;) {
            ssize_t n = read(fd, chunk + have, sizeof chunk - have);
            if (n <= 0) break;
            have += (size_t)n;
            size_t start = 0;
            for (size_t i = 0; i < have && !written; i++) {
                if (chunk[i] != '\n') continue;
                written = format_maps_line(buf, cap, chunk + start, chunk + i, (uintptr_t)pc);
                start = i + 1;
            }
            if (written) break;
            if (start == 0) start = have; /* a line longer than the chunk: drop it */
            memmove(chunk, chunk + start, have - start);
            have -= start;
        }
        close(fd);
    }
    if (!written) {
        written = append_hex(buf, 0, cap, (uintptr_t)pc);
        buf[written] = '\0';
    }
    return written;
}

/* The first part of every overflow report: "cio: task 'NAME' overflowed its
 * N-byte stack (task ID, spawned at SITE". */
static size_t format_overflow(char *msg, size_t cap, const cio__stack_owner *owner,
                              const cio__stack *stack) {
    size_t at = append(msg, 0, cap, "cio: task '");
    /* The name escaped as every report shows it (base/name_text.h),
     * straight into msg: this may run on a small alternate signal stack. */
    at += cio__name_text(msg + at, cap - at, owner && owner->name ? owner->name : "?");
    at = append(msg, at, cap, "' overflowed its ");
    at = append_size(msg, at, cap, stack->size);
    at = append(msg, at, cap, "-byte stack (task ");
    at = append_size(msg, at, cap, owner ? (size_t)owner->id : 0);
    at = append(msg, at, cap, ", spawned at ");
    if (owner && owner->site) {
        at = append(msg, at, cap, owner->site);
    } else if (owner && owner->pc) {
        char where[256];
        cio__stack_format_pc(where, sizeof where, owner->pc);
        at = append(msg, at, cap, where);
    } else {
        at = append(msg, at, cap, "an unknown place");
    }
    return at;
}

static void write_all(const char *msg, size_t len) {
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, msg, len);
        if (n <= 0) return;
        msg += n;
        len -= (size_t)n;
    }
}

void cio__stack_overflow_abort(const cio__stack_owner *owner, const cio__stack *stack) {
    char msg[768];
    size_t at = format_overflow(msg, sizeof msg, owner, stack);
    at = append(msg, at, sizeof msg, "; caught after the fact, at a switch or its end: ");
    at = append(msg, at, sizeof msg, stack->guard ? "stack pointer in the red zone" : "canary overwritten");
    at = append(msg, at, sizeof msg, ")\n");
    write_all(msg, at);
    signal(SIGABRT, SIG_DFL);
    abort();
}

/* A fault in the guard of the running task's stack: the report, written
 * with system calls only (this runs in the SIGSEGV handler). */
static void report_guard_hit(const cio__stack_owner *owner, const cio__stack *stack,
                             uintptr_t addr) {
    char msg[768];
    size_t at = format_overflow(msg, sizeof msg, owner, stack);
    at = append(msg, at, sizeof msg, "; fault at ");
    at = append_hex(msg, at, sizeof msg, addr);
    at = append(msg, at, sizeof msg, ", guard ");
    at = append_hex(msg, at, sizeof msg, (uintptr_t)stack->lo - stack->guard);
    at = append(msg, at, sizeof msg, "-");
    at = append_hex(msg, at, sizeof msg, (uintptr_t)stack->lo);
    at = append(msg, at, sizeof msg, ")\n");
    write_all(msg, at);
}

/*
 * Passing faults on. cio's handler keeps the disposition it found when it
 * was installed and hands it every fault that is not a task's overflow, as
 * the kernel would have:
 *
 *   - a handler (SA_SIGINFO or plain) is called with the same arguments,
 *     with its own sa_mask blocked. It may return (a fault then repeats) or
 *     leave by siglongjmp; either way cio's handler stays installed. (It
 *     used to put the previous disposition back instead, so once a program's
 *     handler had recovered from one fault, overflows went unreported.)
 *   - SIG_DFL: the default action is put back and the fault repeats (a
 *     signal sent with kill() is raised again), so the process ends with
 *     SIGSEGV as if cio had no handler.
 *   - SIG_IGN: a sent signal is ignored; a real fault cannot be (the kernel
 *     would kill the process), so it takes the default action.
 *
 * cio installs its handler again each time a loop starts running if the
 * program replaced it, and then passes faults on to the program's handler.
 * If that handler in turn passes the faults it does not want to the one it
 * replaced (cio's), a fault neither claims would bounce between the two for
 * ever. cio recognises that it is being called back by the handler it
 * passed the fault to (the same ucontext, on a deeper frame) and takes the
 * default action then. A handler that left by siglongjmp leaves that record
 * behind, but a later fault has a ucontext of its own, or the same one at
 * the same depth, so it is not mistaken for a call back.
 *
 * The disposition lives in two slots so that a handler running in another
 * thread never reads a half-written one: an install fills the slot not in
 * use, then publishes it.
 */
static struct sigaction chained[2];
static atomic_int chained_slot;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

/* While this thread's handler passes a fault on: its ucontext and frame. */
static CIO__TLS void *passing_uctx;
static CIO__TLS uintptr_t passing_frame;

static void default_action(int sig, const siginfo_t *info) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    /* A fault repeats when the handler returns; a sent signal stays pending
     * (it is blocked while the handler runs) and is delivered then. */
    if (info->si_code <= 0) raise(sig);
}

static void on_segv(int sig, siginfo_t *info, void *uctx) {
    char name[64];
    cio__stack_owner owner;
    cio__running_stack_fn running = atomic_load(&running_stack_hook);
    const cio__stack *s = running ? running(name, sizeof name, &owner) : NULL;
    if (s && s->guard) {
        uintptr_t addr = (uintptr_t)info->si_addr, lo = (uintptr_t)s->lo;
        if (addr < lo && lo - addr <= s->guard) {
            /* Named, then the default action and a return: the faulting
             * instruction runs again and the process ends by SIGSEGV, with
             * a core dump of the overflowing task where the system makes
             * them (abort() here would leave the fault out of the core). */
            report_guard_hit(&owner, s, addr);
            default_action(sig, info);
            return;
        }
    }
    volatile char here = 0;
    uintptr_t frame = (uintptr_t)&here;
    if (passing_frame && passing_uctx == uctx && frame < passing_frame) {
        default_action(sig, info); /* called back by the handler we called */
        return;
    }
    const struct sigaction *next =
        &chained[atomic_load_explicit(&chained_slot, memory_order_acquire)];
    if (next->sa_handler == SIG_DFL) {
        default_action(sig, info);
        return;
    }
    if (next->sa_handler == SIG_IGN) {
        if (info->si_code > 0) default_action(sig, info);
        return;
    }
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, &next->sa_mask, &mask);
    void *outer_uctx = passing_uctx;
    uintptr_t outer_frame = passing_frame;
    passing_uctx = uctx;
    passing_frame = frame;
    if (next->sa_flags & SA_SIGINFO)
        next->sa_sigaction(sig, info, uctx);
    else
        next->sa_handler(sig);
    passing_uctx = outer_uctx;
    passing_frame = outer_frame;
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
}

static bool is_ours(const struct sigaction *sa) {
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_segv;
}

void cio__stack_install_overflow_handler(void) {
    struct sigaction found;
    if (sigaction(SIGSEGV, NULL, &found) != 0 || is_ours(&found)) return;
    pthread_mutex_lock(&install_lock);
    if (sigaction(SIGSEGV, NULL, &found) == 0 && !is_ours(&found)) {
        int slot = 1 - atomic_load_explicit(&chained_slot, memory_order_relaxed);
        chained[slot] = found;
        atomic_store_explicit(&chained_slot, slot, memory_order_release);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, NULL);
    }
    pthread_mutex_unlock(&install_lock);
}
