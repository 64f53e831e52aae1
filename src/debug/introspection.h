/*
 * The debug layer (introspection): looking inside a running program. Today it holds the
 * counters the tests read instead of reaching into structures; task dumps,
 * the await graph and the watchdog come here next.
 */
#ifndef CIO_DEBUG_INTROSPECTION_H
#define CIO_DEBUG_INTROSPECTION_H

#include "net/net.h"

/* What a loop holds right now. */
typedef struct cio__loop_stats {
    size_t live_tasks;    /* tasks with a stack (not finished) */
    size_t timers;        /* armed timers, cio's own included */
    size_t ready;         /* jobs in the ready queue */
    size_t futures;       /* futures and tasks the loop still tracks */
    size_t io_in_flight;  /* I/O operations and watchers in flight */
    uint64_t iterations;  /* how many times the loop went round */
} cio__loop_stats;

int cio__loop_get_stats(const cio_loop *loop, cio__loop_stats *out);

/* The loop's thread pool and inbox (flow/pool.c, core/inbox.c). */
typedef struct cio__pool_stats {
    size_t workers;       /* worker threads started and not yet left */
    size_t queued;        /* items waiting for a worker */
    size_t lookups;       /* name lookups running */
    uint64_t inbox_wakes; /* wake-ups cross-thread calls wrote to the loop */
} cio__pool_stats;

int cio__loop_get_pool_stats(const cio_loop *loop, cio__pool_stats *out);

/* Where a task's stack lies, and the guard that protects it. */
typedef struct cio__task_stack_info {
    void *lo;
    size_t size;
    size_t guard; /* bytes below lo that fault when touched; 0: a canary instead */
} cio__task_stack_info;

int cio__task_get_stack(const cio_task *task, cio__task_stack_info *out);

/* The loop's file calls (net/file.c): which kinds its backend runs in the
 * kernel, and how many calls took each path so far. */
typedef struct cio__file_stats {
    uint32_t ring_ops;    /* CIO__FILE_OP_BIT of each kind the ring runs */
    uint64_t ring_calls;  /* calls the ring answered */
    uint64_t pool_calls;  /* calls run on the thread pool (a close off the ring counts on neither) */
} cio__file_stats;

int cio__loop_get_file_stats(const cio_loop *loop, cio__file_stats *out);

#endif
