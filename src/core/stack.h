/*
 * Task stacks: pooled, carved from large mappings, each with a guard region
 * below it: installed with MADV_GUARD_INSTALL where the kernel has it
 * (Linux 6.13+), otherwise made PROT_NONE while the process has mappings to
 * spare, with a canary word after that (see stack.c for the policy).
 */
#ifndef CIO_STACK_H
#define CIO_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cio__stack {
    void *lo;          /* lowest usable address */
    size_t size;       /* usable bytes */
    size_t guard;      /* bytes just below lo that fault when touched; 0: the
                        * stack is protected by its canary instead */
    /* 1: the memory holds nothing from an earlier task (a fresh stack, or
     * one wiped when its previous task ended, see cio__stack_wipe), so its
     * high-water mark is its own task's; 0: it may hold an earlier task's
     * data below its own, and the mark is an upper bound. */
    uint8_t wiped;
} cio__stack;

/* A free stack whose pages were given back to the kernel (see
 * cio__stack_pool_trim): its link cannot live in its own memory, which
 * writing would make resident again, so it is kept here. */
typedef struct cio__stack_cold {
    void *lo;
    size_t guard;
} cio__stack_cold;

typedef struct cio__stack_class {
    size_t size;                /* usable bytes of each stack in this class */
    void *free_list;            /* free stacks, linked through their top word */
    cio__stack_cold *cold;      /* trimmed free stacks, taken when free_list is empty */
    size_t cold_count, cold_cap;
} cio__stack_class;

typedef struct cio__stack_slab {
    void *base;
    size_t length;
    size_t budgeted;   /* guard pages taken from the process's budget */
} cio__stack_slab;

typedef struct cio__stack_pool {
    cio__stack_class *classes;
    size_t class_count;
    size_t last_request;        /* the size last asked for, unrounded ... */
    size_t last_class;          /* ... and the index of its class */
    cio__stack_slab *slabs;
    size_t slab_count, slab_cap;
    size_t guard_size;          /* bytes kept below every stack, whole pages */
    bool guard_regions;         /* guards are MADV_GUARD_INSTALL regions */
    /* For the idle trim's check, kept off the hot path (slab refills,
     * trims and new classes only): every stack carved, those trimmed, and
     * how many free ones the trim keeps (CIO__STACK_KEEP_BYTES per class). */
    size_t stacks_total, cold_total, keep_stacks;
    size_t trimmed_since_heap;  /* stacks trimmed since malloc was last trimmed */
    /* Bytes of records (transports, streams, task records beyond the
     * loop's pool) freed to malloc since the idle trim last asked malloc to
     * give its free pages back. */
    size_t heap_freed;
} cio__stack_pool;

/* The canary of an unguarded stack is its lowest word, and its value is
 * zero: fresh anonymous memory is zero already, so no page is touched to
 * write it, and an idle task keeps a single resident page. A task never
 * writes that word unless it overflows. */
#define CIO__STACK_CANARY UINT64_C(0)

/* A task switched out with its stack pointer this close to the bottom of
 * its stack is treated as overflowing. */
#define CIO__STACK_RED_ZONE 256

/* Sets up an empty pool whose stacks keep guard_size bytes (rounded up to
 * pages) below them; guard regions are used when the kernel has them. */
void cio__stack_pool_init(cio__stack_pool *pool, size_t guard_size);
size_t cio__stack_round(size_t size);
int cio__stack_get(cio__stack_pool *pool, size_t size, cio__stack *out);
void cio__stack_put(cio__stack_pool *pool, const cio__stack *stack);
void cio__stack_pool_destroy(cio__stack_pool *pool);

/*
 * Giving memory back. A finished task's stack goes back to the pool as it
 * is, resident pages and all, so that the next spawn costs no system call
 * and no page fault. cio__stack_pool_trim keeps the first keep_bytes of
 * free stacks of each class (the most recently used ones, at the head of
 * its free list) and gives the pages of at most max others back to the
 * kernel (MADV_DONTNEED): they stay mapped, with their guards, and move to
 * the class's cold list, which cio__stack_get takes from only when the
 * free list is empty. Returns how many stacks it trimmed.
 *
 * cio__stack_pool_idle is the loop's call just before it blocks waiting
 * for I/O (so never on a busy loop's path), with the number of tasks alive
 * (each holds one stack). In O(1) it finds how many stacks are free; when
 * more than twice what the trim keeps (so that a load swinging by fewer
 * stacks between two idle moments never pays for a trim), it trims toward
 * CIO__STACK_KEEP_BYTES per class, CIO__STACK_TRIM_STEP stacks at a time
 * (giving back 10,000 stacks took 100 ms on a test VM: a step bounds the
 * delay it adds to whatever arrives meanwhile), and returns true while more
 * is left: the loop then polls without blocking and calls again. Once done,
 * if it gave back at least CIO__STACK_HEAP_TRIM_STACKS stacks since malloc
 * was last trimmed (their tasks freed their records too), or more than
 * CIO__STACK_HEAP_TRIM_BYTES of records were freed
 * (cio__stack_pool_note_freed), it asks malloc to release its free pages
 * too (glibc's malloc_trim).
 */
#define CIO__STACK_KEEP_BYTES ((size_t)4 * 1024 * 1024)
#define CIO__STACK_TRIM_STEP 256
#define CIO__STACK_HEAP_TRIM_BYTES ((size_t)1024 * 1024)
#define CIO__STACK_HEAP_TRIM_STACKS 1024
size_t cio__stack_pool_trim(cio__stack_pool *pool, size_t keep_bytes, size_t max);
bool cio__stack_pool_idle(cio__stack_pool *pool, size_t live_tasks);
/* Stacks whose pages the pool keeps (free or in use): all but the cold. */
static inline size_t cio__stack_pool_warm(const cio__stack_pool *pool) {
    return pool->stacks_total - pool->cold_total;
}
static inline void cio__stack_pool_note_freed(cio__stack_pool *pool, size_t bytes) {
    pool->heap_freed += bytes;
}

/* The canary words of an unguarded stack: its lowest word (inside the
 * stack) and the lowest word of the cache line just below it (inside the
 * gap). A task that writes even a few bytes past its limit, or whose frames
 * reach the very bottom of its stack, changes one of them. */
static inline bool cio__stack_intact(const cio__stack *stack) {
    return stack->guard != 0 ||
           (*(const volatile uint64_t *)stack->lo == CIO__STACK_CANARY &&
            *(const volatile uint64_t *)((const char *)stack->lo - 64) == CIO__STACK_CANARY &&
            *(const volatile uint64_t *)((const char *)stack->lo - 8) == CIO__STACK_CANARY);
}

/* False when a task was switched out with its stack pointer in the red
 * zone or below: checked whenever that pointer is the task's lowest yet
 * (task.c), for guarded stacks too, since a frame may skip the guard. */
static inline bool cio__stack_sp_ok(const cio__stack *stack, const void *sp) {
    return (const char *)sp >= (const char *)stack->lo + CIO__STACK_RED_ZONE;
}

/* Who owns a stack, for the overflow report. The task layer fills it (the
 * stack layer knows nothing of tasks); every pointer must stay valid for
 * as long as the task runs, since the SIGSEGV handler only reads them. */
typedef struct cio__stack_owner {
    const char *name;
    uint64_t id;
    const char *site;  /* "file.c:42", or NULL: pc says where */
    const void *pc;    /* the code that spawned the task, when site is NULL */
} cio__stack_owner;

/*
 * High-water marks. cio__stack_high_water scans the stack from its low end
 * for the first word that is not zero and returns the bytes from there to
 * the top: the deepest the stack was ever written since it was fresh or
 * wiped (exact, but for the few words that were written zero at the very
 * deepest point). Pages the kernel never made resident (mincore) are
 * skipped unread, so a scan costs one system call per 2 MiB of stack plus
 * the resident part. sp is the task's stack pointer (or NULL): under
 * Valgrind the dead part below it is made readable first.
 * cio__stack_wipe gives the pages holding the deepest mark bytes back to
 * the kernel (MADV_DONTNEED), so they read zero again and the next task's
 * mark is its own.
 */
size_t cio__stack_high_water(const cio__stack *stack, const void *sp);
void cio__stack_wipe(cio__stack *stack, size_t mark);

/* The protection of a stack: "guard-region", "guard-page" or "canary". */
const char *cio__stack_protection(const cio__stack_pool *pool, const cio__stack *stack);

/* Installs the SIGSEGV handler that names a task whose stack overflowed into
 * its guard, unless it is installed already. Called each time a loop starts
 * running, so a handler the program installed in between is put behind
 * cio's (faults that are not a task's overflow are passed on to it). */
void cio__stack_install_overflow_handler(void);

/* Reports an overflow that was caught after the fact (the canary of an
 * unguarded stack, or a stack pointer in the red zone at a switch): the
 * task's name, id, spawn site and stack size, then ends the process with
 * SIGABRT. */
_Noreturn void cio__stack_overflow_abort(const cio__stack_owner *owner, const cio__stack *stack);

/* The task layer tells the overflow handler which stack is running: a
 * function returning the stack of the task running in this thread (NULL if
 * none), filling *owner (with its name copied into name, cap bytes). It
 * must be async-signal-safe. The stack layer sits below the task layer, so
 * it is handed the function rather than calling up into it. */
typedef const cio__stack *(*cio__running_stack_fn)(char *name, size_t cap,
                                                   cio__stack_owner *owner);
void cio__stack_set_running_hook(cio__running_stack_fn fn);

/* Writes "module+0xOFFSET" for a code address into buf (cap bytes, always
 * terminated) by reading /proc/self/maps with system calls only, so that
 * a signal handler may call it; returns the length written. */
size_t cio__stack_format_pc(char *buf, size_t cap, const void *pc);

/* The census of stack marks per spawn site (stack_census.c): made on the
 * first add. add records one task's exact mark under its site ("file.c:42",
 * or NULL with the spawning code's address in pc); upper says the mark may
 * count an earlier task's data. copy makes a census to add live tasks to
 * and print; print sorts it, deepest first, and writes one line per site:
 * how many. Each returns -ENOMEM when it cannot grow. */
typedef struct cio__stack_census cio__stack_census;
int cio__stack_census_add(cio__stack_census **census, const char *site, const void *pc,
                          size_t mark, size_t stack_size, bool upper);
int cio__stack_census_copy(const cio__stack_census *census, cio__stack_census **out);
int cio__stack_census_print(cio__stack_census *census, FILE *out);
void cio__stack_census_free(cio__stack_census **census);

/* One site of a census, for a reader that formats it itself (the task
 * dump): how many sites, and site i (in the census's order; print sorts). */
typedef struct cio__stack_census_site {
    const char *site; /* or NULL: pc says where */
    const void *pc;
    size_t max_mark, stack_size;
    uint64_t tasks;
    bool upper;
} cio__stack_census_site;
size_t cio__stack_census_count(const cio__stack_census *census);
void cio__stack_census_get(const cio__stack_census *census, size_t i, cio__stack_census_site *out);

/* How many guarded stacks the process may still carve, and a way for tests
 * to set it (to reach the canary mode without 16,000 tasks). */
size_t cio__stack_guard_budget(void);
void cio__stack_set_guard_budget(size_t budget);

/* True when the kernel installs guard regions (probed once per process).
 * Tests turn them off to exercise the guard-page fallback of older kernels;
 * loops created afterwards use the fallback. */
bool cio__stack_guard_regions_available(void);
void cio__stack_disable_guard_regions(bool disable);
/* For tests: install guard regions with one call per stack even where the
 * kernel takes a whole slab's in one (process_madvise). */
void cio__stack_disable_guard_batching(bool disable);

#endif
