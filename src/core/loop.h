/*
 * The loop: its ready queue of jobs, its timers, its I/O state and the
 * checks every call that adds work makes. The lowest room of the core:
 * handles, futures and tasks build on it, and it calls none of them.
 */
#ifndef CIO_CORE_LOOP_H
#define CIO_CORE_LOOP_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/base.h"
#include "io/io.h"
#include "stack.h"
#include "context.h"

struct cio__node;
struct cio__task;

struct cio_loop {
    cio__link ready;          /* FIFO of jobs */
    /* The run function of a task's step (set by task.c at each spawn), so
     * the batch can tell a task's step from other jobs without knowing
     * tasks: see run_batch in loop.c. */
    void (*task_step)(cio__job *job);
    cio__timer_heap timers;
    cio__link futures;        /* every live future and task of this loop */
    cio__io io;               /* the backend and the operations in flight */
    struct cio__task *free_tasks; /* finished task objects kept for reuse */
    size_t free_task_count;
    /* Set by task.c while it keeps more finished task objects than its
     * fixed pool (their stacks are still warm): the idle step calls it,
     * after the stack trim, to free those the trim left without a stack;
     * true if it freed any. */
    bool (*trim_task_records)(cio_loop *loop);
    uint64_t timer_seq;       /* breaks deadline ties FIFO */
    uint64_t iterations;      /* how many times the loop went round */
    uint64_t node_ids;
    uint64_t key;             /* slot and generation in the live-loop table */
    uint64_t task_numbers;
    uint64_t task_ids;        /* the last task id given (ids start at 1) */
    /* The clock as the loop last read it (cio__clock_ns): refreshed after
     * every poll, whenever timers are due-checked, and otherwise before
     * every CIO__CLOCK_EVERY_JOBS-th job (by the progress count, below), so
     * stamping a spawn or a suspension costs no clock read. */
    int64_t now_ns;
    /* Odd while the list of futures changes, even when it is stable (a
     * seqlock for readers outside the process: tools/cio-ps reads it before
     * and after a walk and retries a walk it saw change). */
    _Atomic uint64_t debug_gen;
    /* The offsets table (debug_table.c): a reader holding a loop pointer
     * can check it; the reference also keeps the table in static links. */
    const struct cio__debug_table *debug_table;
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
    /* A dump from outside the loop's run and the loop's start exclude
     * each other (see cio_dump in src/debug/dump.c): started is set before
     * the first iteration and cleared after the last; dump_readers counts
     * the dumps reading the loop from outside its run. */
    _Atomic uint8_t started;
    _Atomic unsigned dump_readers;
    uint8_t stopping;
    uint8_t closed;
    uint8_t closing;
    uint8_t debug;
    /* closed | closing | debug, kept by cio__loop_note_state: the common
     * check (cio__loop_check) reads one byte instead of three. */
    uint8_t slow_checks;
    unsigned generation;      /* cio__fork_generation when the loop was made */
    /* The thread the loop belongs to: the one running it while it runs,
     * else the one that last ran it (or created it). Atomic because debug
     * mode reads it from other threads to refuse them. */
    _Atomic uintptr_t owner;
    /* Cross-thread calls (inbox.c): jobs posted from any thread, moved to
     * the ready queue by the loop's iteration. The list and the closed flag
     * are under inbox_lock; the two flags let a busy loop skip the lock and
     * a sender skip the wake-up of a loop that is not about to sleep. */
    pthread_mutex_t inbox_lock;
    cio__link inbox;
    _Atomic int inbox_posted;   /* set with the first job, cleared by the drain */
    _Atomic int inbox_sleeping; /* the loop is in (or about to enter) a blocking poll */
    _Atomic uint64_t inbox_wakes; /* wake-ups written, for tests */
    uint8_t inbox_closed;
    uint8_t inbox_calls_refused; /* close has begun: the program's calls are refused */
    /* The thread pool (flow/pool.c), made on first use, and how close
     * stops it (phase 0: no new work, drop what is queued, join every
     * worker; phase 1: free it), since the core may not call up. */
    void *pool;
    void (*pool_close)(cio_loop *loop, int phase);
    /* Calls handed to the pool and not yet back in the loop's thread
     * (flow/pool.c counts them): the virtual clock must not jump over one. */
    size_t pool_pending;
    /* The virtual clock (cio_loop_options.virtual_clock): the loop time,
     * moved only by the loop (run_once), never by the wall. */
    uint8_t virtual_clock;
    int64_t virtual_now;
    /* The signals the loop holds (signal.c): NULL until the first
     * add_signal_handler, and again once it holds none. */
    struct cio__signals *signals;
    /* cio__signal_drain while the loop holds signals, else NULL: the
     * iteration calls it without knowing signal.c. */
    void (*signal_drain)(cio_loop *loop);
    /* The census of stack marks per spawn site (stack_census.c): NULL until
     * a task ends in debug mode. */
    struct cio__stack_census *stack_census;
    /* The stall watchdog (debug/watchdog.c) reads these from its thread.
     * progress goes up by one at every job (task step or callback) the
     * loop runs: a relaxed store of a word the loop alone writes. busy is 1
     * while the loop runs and is not blocked waiting for I/O, so an idle
     * loop is never taken for a stalled one. tid is the thread running
     * the loop (set each time it starts). */
    _Atomic uint64_t progress;
    _Atomic int busy;
    _Atomic int tid;
    /* The watchdog's record of the loop while one is set, and how close
     * lets it go (the core may not call up into the debug layer). */
    struct cio__watchdog_entry *watchdog;
    void (*watchdog_close)(cio_loop *loop);
    /* The task dump on request (src/debug/dump.c): cio_dump_request sets
     * dump_requested, from any thread or a signal handler, and wakes the
     * loop through its inbox; the iteration takes the request after the
     * drain, at a boundary where no task runs, and calls cio__dump_hook.
     * dump_fd is where it goes (-1: stderr), dump_signal the signal
     * cio_loop_set_dump_signal holds for it (0: none). */
    _Atomic int dump_requested;
    /* The gate between cio_dump_request and close (any thread, signal
     * handlers too, so no lock): a request counts itself in
     * dump_requesters and then reads dump_refused; close sets dump_refused
     * and then waits for dump_requesters to drop to zero, before it tears
     * anything down. Both steps sequentially consistent: either the
     * request sees close and backs off, or close sees the request and
     * waits for it to finish waking the backend. */
    _Atomic uint8_t dump_refused;
    _Atomic unsigned dump_requesters;
    int dump_fd;
    int dump_signal;
    /* What calls suspended in tasks own and close must give back
     * (cio__holding, below), innermost first. */
    cio__link holdings;
};

/*
 * Something a call owns across a suspension: a socket it is connecting, a
 * list of resolved addresses, a stream not yet handed to the program. If
 * the loop closes while the task is suspended there, the code after the
 * suspension never runs (a C stack is not unwound), so the call registers
 * a holding, whose record lives in its own frame, and close calls release
 * for each one left, while the stacks still exist. Calls nest, so the loop
 * keeps a list: the newest holding is released first. Costs two stores at
 * each end, and only for calls that suspend holding something.
 */
typedef struct cio__holding {
    cio__link link;
    void (*release)(void *arg);
    void *arg;
} cio__holding;

static inline void cio__loop_hold(cio_loop *loop, cio__holding *h, void (*release)(void *arg),
                                  void *arg) {
    h->release = release;
    h->arg = arg;
    cio__list_push_front(&loop->holdings, &h->link);
}

/* The call ended on its own: it gives back what it held itself. */
static inline void cio__loop_unhold(cio__holding *h) {
    cio__list_unlink(&h->link);
}

/* What the iteration calls for a requested dump (at_close 0), and loop
 * close in debug mode for the tasks that never finished (at_close 1):
 * registered by the debug layer, which the core may not call. NULL until
 * the dump code is linked in. */
typedef void (*cio__dump_hook_fn)(cio_loop *loop, int at_close);
extern _Atomic(cio__dump_hook_fn) cio__dump_hook;

/*
 * A job that may be posted to the inbox from another thread. Every kind
 * shares one run function, so loop close knows how to discard any of them
 * (cio__job_register_discard has room for few kinds): run does the work in
 * the loop's thread; discard, at close, gives back what the job holds
 * without doing it.
 */
typedef struct cio__xjob {
    cio__job job;
    void (*run)(struct cio__xjob *x);
    void (*discard)(struct cio__xjob *x);
} cio__xjob;

/* Prepares x to be posted (its run and discard functions set by the caller). */
void cio__xjob_init(cio__xjob *x, void (*run)(cio__xjob *), void (*discard)(cio__xjob *));
/* Posts x to the loop's inbox from any thread and wakes the loop if it
 * sleeps: 0, -CIO_ELOOPCLOSED once close has begun, or -CIO_EFORKED. On
 * success the loop owns x until it runs or discards it. */
int cio__inbox_post(cio_loop *loop, cio__xjob *x);
/* The same for a call the program makes from another thread
 * (call_soon_threadsafe, run_coroutine_threadsafe): refused as soon as
 * close has begun (cio__inbox_refuse_calls), while cio__inbox_post still
 * takes the completions of the pool workers that close waits for. */
int cio__inbox_post_call(cio_loop *loop, cio__xjob *x);
void cio__inbox_refuse_calls(cio_loop *loop);
void cio__inbox_init(cio_loop *loop);
/* Close: refuse new posts and discard what waits (from cio_loop_close). */
void cio__inbox_close(cio_loop *loop);
void cio__inbox_destroy(cio_loop *loop);
/* Moves the posted jobs to the back of the ready queue (loop thread). */
void cio__inbox_drain(cio_loop *loop);

/* At loop close: a job that will never run gives back the references it
 * holds (job.c). A room whose jobs hold references registers, once, how to
 * discard a job with a given run function. */
void cio__job_discard(cio__job *job);
void cio__job_register_discard(void (*run)(cio__job *job), void (*discard)(cio__job *job));

/* Signals (signal.c). A signal handler posts to the inbox without a job;
 * the iteration then calls loop->signal_drain (cio__signal_drain), which
 * queues the callbacks of the signals that arrived. Close lets every
 * signal go (restoring dispositions) before anything else. */
void cio__signal_drain(cio_loop *loop);
void cio__signal_loop_close(cio_loop *loop);
/* cio_run's Ctrl-C (flow/runner.c). hold: if this is the main thread and
 * SIGINT is at SIG_DFL, holds SIGINT on loop with fn(arg) as its callback
 * and arms "a second SIGINT ends the process"; returns 1 if it did, 0 if
 * it left SIGINT alone, or a negative error. release: disarms, lets SIGINT
 * go if fn still holds it (the previous disposition comes back), and
 * returns how many SIGINTs arrived while armed. */
int cio__signal_hold_sigint(cio_loop *loop, cio_callback_fn fn, void *arg);
int cio__signal_release_sigint(cio_loop *loop, cio_callback_fn fn);

/* Brackets a change of loop->futures for outside readers (see debug_gen);
 * a release store is a plain store on x86-64. Nested pairs keep it odd. */
static inline void cio__loop_debug_begin(cio_loop *loop) {
    uint64_t g = atomic_load_explicit(&loop->debug_gen, memory_order_relaxed);
    atomic_store_explicit(&loop->debug_gen, g + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static inline void cio__loop_debug_end(cio_loop *loop) {
    uint64_t g = atomic_load_explicit(&loop->debug_gen, memory_order_relaxed);
    atomic_store_explicit(&loop->debug_gen, g + 1, memory_order_release);
}

/* One more step of progress, for the stall watchdog: the loop's thread
 * alone writes the word, so a relaxed load and store suffice (a plain
 * increment in the code, no locked instruction). */
static inline void cio__loop_progress(cio_loop *loop) {
    atomic_store_explicit(&loop->progress,
                          atomic_load_explicit(&loop->progress, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static inline void cio__ready_push(cio_loop *loop, cio__job *job) {
    cio__list_push_back(&loop->ready, &job->link);
}
void cio__loop_arm_timer(cio_loop *loop, cio__timer *timer, int64_t when);
void cio__loop_queue_timer(cio_loop *loop, cio__timer *timer, int64_t when);
void cio__loop_disarm_timer(cio_loop *loop, cio__timer *timer);
/* Returns 0 if the loop accepts new work, else the error. The common case
 * (open, not in debug mode) is decided inline. */
int cio__loop_check_slow(const cio_loop *loop);
/* Call after changing closed, closing or debug. */
static inline void cio__loop_note_state(cio_loop *loop) {
    loop->slow_checks = loop->closed | loop->closing | loop->debug;
}

/* How many forks separate this process from the one that loaded cio: a
 * loop made in an older generation belongs to an ancestor (see loop.c). */
extern unsigned cio__fork_generation;
/* A run in three steps (loop.c): the checks and the start, which waits
 * for a dump from another thread to finish (0, or a refusal with nothing
 * changed); the iterations until the loop stops; the end, after which such
 * a dump may read the loop again. cio_run_forever is the three;
 * run_until_complete registers its stopper after the first and takes it
 * out before the last. */
int cio__loop_start_run(cio_loop *loop);
int cio__loop_run_started(cio_loop *loop);
void cio__loop_end_run(cio_loop *loop);

/* The common case alone: 0 for an open loop of this process that is not in
 * debug mode, -1 when cio__loop_check_slow must decide. */
static inline int cio__loop_check_fast(const cio_loop *loop) {
    return !loop->slow_checks && loop->generation == cio__fork_generation ? 0 : -1;
}
static inline int cio__loop_check(const cio_loop *loop) {
    if (cio__loop_check_fast(loop) == 0) return 0;
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
