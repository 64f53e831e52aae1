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

typedef struct cio__stack {
    void *lo;          /* lowest usable address */
    size_t size;       /* usable bytes */
    size_t guard;      /* bytes just below lo that fault when touched; 0: the
                        * stack is protected by its canary instead */
} cio__stack;

typedef struct cio__stack_class {
    size_t size;                /* usable bytes of each stack in this class */
    void *free_list;            /* free stacks, linked through their top word */
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

/* False when the canary of an unguarded stack was overwritten (checked
 * when the task ends). */
static inline bool cio__stack_intact(const cio__stack *stack) {
    return stack->guard != 0 || *(const uint64_t *)stack->lo == CIO__STACK_CANARY;
}

/* False when a task was switched out with its stack pointer in the red
 * zone or below: checked at every switch, it costs one compare of values
 * already in cache, where reading the canary would cost a cache miss. */
static inline bool cio__stack_sp_ok(const cio__stack *stack, const void *sp) {
    return (const char *)sp >= (const char *)stack->lo + CIO__STACK_RED_ZONE;
}

/* The protection of a stack: "guard-region", "guard-page" or "canary". */
const char *cio__stack_protection(const cio__stack_pool *pool, const cio__stack *stack);

/* Installs the SIGSEGV handler that names a task whose stack overflowed into
 * its guard, unless it is installed already. Called each time a loop starts
 * running, so a handler the program installed in between is put behind
 * cio's (faults that are not a task's overflow are passed on to it). */
void cio__stack_install_overflow_handler(void);

/* Reports an overflow of the named task and ends the process. */
void cio__stack_overflow_abort(const char *task_name, size_t size);

/* The task layer tells the overflow handler which stack is running: a
 * function returning the stack of the task running in this thread (NULL if
 * none), with its name copied into name. It must be async-signal-safe. The
 * stack layer sits below the task layer, so it is handed the function
 * rather than calling up into it. */
typedef const cio__stack *(*cio__running_stack_fn)(char *name, size_t cap);
void cio__stack_set_running_hook(cio__running_stack_fn fn);

/* How many guarded stacks the process may still carve, and a way for tests
 * to set it (to reach the canary mode without 16,000 tasks). */
size_t cio__stack_guard_budget(void);
void cio__stack_set_guard_budget(size_t budget);

/* True when the kernel installs guard regions (probed once per process).
 * Tests turn them off to exercise the guard-page fallback of older kernels;
 * loops created afterwards use the fallback. */
bool cio__stack_guard_regions_available(void);
void cio__stack_disable_guard_regions(bool disable);

#endif
