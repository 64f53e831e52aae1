/*
 * Task stacks: pooled, carved from large mappings, with a guard page below
 * each one while the process has mappings to spare and a canary word after
 * that (see stack.c for the policy).
 */
#ifndef CIO_STACK_H
#define CIO_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cio__stack {
    void *lo;          /* lowest usable address */
    size_t size;       /* usable bytes */
    bool guarded;      /* a PROT_NONE page lies just below lo */
} cio__stack;

typedef struct cio__stack_class {
    size_t size;                /* usable bytes of each stack in this class */
    void *free_list;            /* free stacks, linked through their top word */
} cio__stack_class;

typedef struct cio__stack_slab {
    void *base;
    size_t length;
    size_t stack_count;
    size_t stack_size;
    bool guarded;
} cio__stack_slab;

typedef struct cio__stack_pool {
    cio__stack_class *classes;
    size_t class_count;
    size_t last_request;        /* the size last asked for, unrounded ... */
    size_t last_class;          /* ... and the index of its class */
    cio__stack_slab *slabs;
    size_t slab_count, slab_cap;
} cio__stack_pool;

/* The canary of an unguarded stack is its lowest word, and its value is
 * zero: fresh anonymous memory is zero already, so no page is touched to
 * write it, and an idle task keeps a single resident page. A task never
 * writes that word unless it overflows. */
#define CIO__STACK_CANARY UINT64_C(0)

/* A task switched out with its stack pointer this close to the bottom of
 * its stack is treated as overflowing. */
#define CIO__STACK_RED_ZONE 256

size_t cio__stack_round(size_t size);
int cio__stack_get(cio__stack_pool *pool, size_t size, cio__stack *out);
void cio__stack_put(cio__stack_pool *pool, const cio__stack *stack);
void cio__stack_pool_destroy(cio__stack_pool *pool);

/* False when the canary of an unguarded stack was overwritten (checked
 * when the task ends). */
static inline bool cio__stack_intact(const cio__stack *stack) {
    return stack->guarded || *(const uint64_t *)stack->lo == CIO__STACK_CANARY;
}

/* False when a task was switched out with its stack pointer in the red
 * zone or below: checked at every switch, it costs one compare of values
 * already in cache, where reading the canary would cost a cache miss. */
static inline bool cio__stack_sp_ok(const cio__stack *stack, const void *sp) {
    return (const char *)sp >= (const char *)stack->lo + CIO__STACK_RED_ZONE;
}

/* Installs (once per process) the SIGSEGV handler that names a task whose
 * stack overflowed into its guard page, and an alternate signal stack for
 * the calling thread. */
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

#endif
