/*
 * The loop: its ready queue of jobs, its timers, its I/O state and the
 * checks every call that adds work makes. The lowest room of the core:
 * handles, futures and tasks build on it, and it calls none of them.
 */
#ifndef CIO_CORE_LOOP_H
#define CIO_CORE_LOOP_H

#include "base/base.h"
#include "io/io.h"
#include "stack.h"
#include "context.h"

struct cio__node;
struct cio__task;

struct cio_loop {
    cio__link ready;          /* FIFO of jobs */
    cio__timer_heap timers;
    cio__link futures;        /* every live future and task of this loop */
    cio__io io;               /* the backend and the operations in flight */
    struct cio__task *free_tasks; /* finished task objects kept for reuse */
    size_t free_task_count;
    uint64_t timer_seq;       /* breaks deadline ties FIFO */
    uint64_t iterations;      /* how many times the loop went round */
    uint64_t node_ids;
    uint64_t key;             /* slot and generation in the live-loop table */
    uint64_t task_numbers;
    size_t live_tasks;
    struct cio__node *free_nodes;
    struct cio__node **node_blocks;
    size_t node_block_count;
    cio__stack_pool stacks;
    cio__ctx main_ctx;        /* the context that runs the loop */
    cio__fd_table watchers;   /* add_reader/add_writer: fd -> the watcher (src/net) */
    void *read_buffer;        /* the transports' shared receive buffer (src/net) */
    size_t default_stack_size;
    cio_exception_handler_fn exception_handler;
    void *exception_handler_arg;
    double slow_callback_duration;
    uint8_t running;
    uint8_t stopping;
    uint8_t closed;
    uint8_t closing;
    uint8_t debug;
    unsigned generation;      /* cio__fork_generation when the loop was made */
    /* The thread the loop belongs to: the one running it while it runs,
     * else the one that last ran it (or created it). Atomic because debug
     * mode reads it from other threads to refuse them. */
    _Atomic uintptr_t owner;
};

static inline void cio__ready_push(cio_loop *loop, cio__job *job) {
    cio__list_push_back(&loop->ready, &job->link);
}
void cio__loop_arm_timer(cio_loop *loop, cio__timer *timer, int64_t when);
void cio__loop_queue_timer(cio_loop *loop, cio__timer *timer, int64_t when);
void cio__loop_disarm_timer(cio_loop *loop, cio__timer *timer);
/* Returns 0 if the loop accepts new work, else the error. The common case
 * (open, not in debug mode) is decided inline. */
int cio__loop_check_slow(const cio_loop *loop);
/* How many forks separate this process from the one that loaded cio: a
 * loop made in an older generation belongs to an ancestor (see loop.c). */
extern unsigned cio__fork_generation;
static inline int cio__loop_check(const cio_loop *loop) {
    if (!loop->closed && !loop->closing && !loop->debug &&
        loop->generation == cio__fork_generation)
        return 0;
    return cio__loop_check_slow(loop);
}
/* The check for calls that change an object bound to the loop without
 * adding work to it (cancelling, waking waiters, setting an event):
 * -CIO_EFORKED in a forked child, -CIO_EWRONGTHREAD in debug mode from a
 * thread the loop does not belong to, else 0. A closed loop is not refused
 * here, and neither is a future that outlived its loop (loop NULL): it is
 * done, and the caller answers with its final state. */
int cio__loop_check_thread_slow(const cio_loop *loop);
static inline int cio__loop_check_thread(const cio_loop *loop) {
    if (!loop || (!loop->debug && loop->generation == cio__fork_generation)) return 0;
    return cio__loop_check_thread_slow(loop);
}
/* In a forked child: counts the new generation and forgets the running
 * loop, which belongs to the parent (called by the fork handler that
 * loop_lifecycle.c registers). */
void cio__loop_forked(void);

#endif
