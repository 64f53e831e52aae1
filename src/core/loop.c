/*
 * The event loop: one iteration, run_forever, stop, and the loop's state.
 *
 * One iteration (cio__loop_run_once) does what asyncio's _run_once does:
 *
 *   1. Decide how long to wait for I/O: not at all if callbacks are ready or
 *      the loop is stopping, until the nearest timer if there is one, and
 *      otherwise for as long as it takes.
 *   2. Wait for I/O once (the backend's poll); ready I/O adds jobs.
 *   3. Read the clock and move every timer whose deadline has come to the
 *      ready queue, in (deadline, arming order): timers act when the batch
 *      reaches them, in order with the other callbacks.
 *   4. Run exactly the jobs that are ready now. The queue is detached as a
 *      batch first, so whatever they schedule waits for the next iteration,
 *      after another poll: a callback that reschedules itself cannot starve
 *      I/O or timers.
 *
 * A job is a callback, a done callback or a task step (see base/list.h).
 *
 * While any I/O operation or descriptor watcher is in flight, every
 * iteration polls (without blocking when jobs are ready), as asyncio's
 * does: readiness that arrives during iteration N is handled in iteration
 * N+1, after N's callbacks and before the timers due in N+1. With nothing
 * in flight there is nothing to see, so a loop that only switches between
 * tasks makes no system call at all until its ready queue runs empty.
 *
 * Creating, closing and freeing a loop (loop_lifecycle.c) and
 * run_until_complete (run_until_complete.c) sit in rooms of their own above
 * futures and tasks, because they reach into those; this room calls none
 * of them.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

static CIO__TLS cio_loop *running_loop;

cio_loop *cio_running_loop(void) {
    return running_loop;
}

/*
 * fork(). The child of a fork is a copy of the parent's memory made by one
 * thread: it inherits the forking thread's running loop and current task
 * (thread-locals), and every loop of the parent with its epoll instance,
 * which the kernel shares between the two processes, so a child that ran
 * such a loop would steal the parent's events. As in asyncio, the child
 * starts with no running loop and no current task, and the parent's loops
 * refuse to be used in it (-CIO_EFORKED); the child makes loops of its own.
 *
 * A fork handler (registered once, when the first loop is made) counts one
 * more generation in the child and resets the thread-locals. Each loop
 * records the generation it was made in. The generation is written only in
 * a child that has a single thread, so it needs no atomics, and checking it
 * costs one compare where getpid() would cost a system call.
 */
unsigned cio__fork_generation;

void cio__loop_forked(void) {
    cio__fork_generation++;
    running_loop = NULL;
}

int cio__loop_check_slow(const cio_loop *loop) {
    if (loop->generation != cio__fork_generation) return -CIO_EFORKED;
    if (loop->closed || loop->closing) return -CIO_ELOOPCLOSED;
    return cio__loop_check_thread_slow(loop);
}

/*
 * Debug mode's thread check. A loop belongs to one thread at a time: the
 * thread running it while it runs, otherwise the thread that last ran it
 * (or made it, if it never ran). In debug mode every call that changes the
 * state of the loop or of an object bound to it is refused from any other
 * thread, whether or not the loop is running at that moment, as asyncio's
 * _check_thread refuses call_soon from a foreign thread.
 */
int cio__loop_check_thread_slow(const cio_loop *loop) {
    if (loop->generation != cio__fork_generation) return -CIO_EFORKED;
    if (loop->debug) {
        uintptr_t owner = atomic_load_explicit(&loop->owner, memory_order_relaxed);
        if (owner != (uintptr_t)pthread_self()) return -CIO_EWRONGTHREAD;
    }
    return 0;
}

static void run_due_timer(cio__job *job) {
    cio__timer *timer = CIO__CONTAINER_OF(job, cio__timer, job);
    timer->fire(timer);
}

void cio__loop_arm_timer(cio_loop *loop, cio__timer *timer, int64_t when) {
    timer->when = when;
    timer->seq = loop->timer_seq++;
    timer->job.run = run_due_timer;
    cio__list_init(&timer->job.link);
    /* The caller reserved room, so this cannot fail. */
    (void)cio__timer_heap_push(&loop->timers, timer);
}

/* Queues a timer's job at the back of the ready queue at once, as
 * asyncio's call_soon: for a deadline that has already passed when it is set
 * (a timeout scope's), so that it acts before anything scheduled after it,
 * such as the task's own next step. Disarming works as for a heap timer. */
void cio__loop_queue_timer(cio_loop *loop, cio__timer *timer, int64_t when) {
    timer->when = when;
    timer->seq = loop->timer_seq++;
    timer->index = CIO__TIMER_UNARMED;
    timer->job.run = run_due_timer;
    cio__ready_push(loop, &timer->job);
}

/* Disarms a timer whether it still waits in the heap or is already due
 * and queued. */
void cio__loop_disarm_timer(cio_loop *loop, cio__timer *timer) {
    cio__timer_heap_remove(&loop->timers, timer);
    if (timer->job.run && cio__link_linked(&timer->job.link)) cio__list_unlink(&timer->job.link);
}

const char *cio_loop_backend(const cio_loop *loop) {
    return loop && loop->io.backend ? loop->io.backend->name : NULL;
}

const char *cio_loop_backend_fallback_reason(const cio_loop *loop) {
    return loop ? loop->io.fallback_reason : NULL;
}

const char *cio_loop_stack_guard(const cio_loop *loop) {
    return !loop ? NULL : loop->stacks.guard_regions ? "guard-region" : "guard-page";
}

_Atomic(cio__dump_hook_fn) cio__dump_hook;

/* How many jobs a busy loop runs between two readings of the clock when no
 * timer asks for one. A reading costs about as much as 3 callbacks (25-30
 * ns in a VM); at 512 jobs it is under a tenth of a nanosecond per job, and
 * the loop's clock (the dump's "waiting 2.1s", a task's start) lags by no
 * more than 512 jobs' time. A power of two, so the test of the job count
 * the loop keeps anyway is one instruction. */
#define CIO__CLOCK_EVERY_JOBS 512

/* A busy loop's clock, read again before every CIO__CLOCK_EVERY_JOBS-th
 * job (progress counts jobs). */
static inline void refresh_clock_every_jobs(cio_loop *loop, uint64_t progress) {
    if (__builtin_expect(progress % CIO__CLOCK_EVERY_JOBS == 0, 0)) loop->now_ns = cio__clock_ns();
}

/*
 * Warming the next task's stack. Under load the ready queue holds many
 * tasks whose stacks were last touched long ago (a task group of 10,000
 * children spawns them all before the first one runs), and the first load
 * from a task's stack, in the switch, then waits for memory: it was half
 * of a warm task group's time. So while one job runs, the line at the next
 * job's saved stack pointer is fetched, if that job is a task's step (its
 * saved context follows the job in the task, checked in task.c). Reading
 * the next job's run pointer costs nothing extra: the next iteration reads
 * it anyway.
 */
static inline void prefetch_next(const cio_loop *loop, const cio__link *batch) {
    const cio__link *next = batch->next;
    if (next == batch) return;
    const cio__job *job = CIO__CONTAINER_OF(next, cio__job, link);
    if (job->run == loop->task_step) __builtin_prefetch(((const cio__ctx *)(job + 1))->sp);
}

static void run_batch(cio_loop *loop) {
    cio__link batch;
    cio__list_init(&batch);
    cio__list_splice_back(&batch, &loop->ready);
    cio__link *link;
    if (!loop->debug) {
        /* Only this thread writes the progress word, and no job runs a
         * batch of its own, so the count can live in a register: one
         * store per job. */
        uint64_t progress = atomic_load_explicit(&loop->progress, memory_order_relaxed);
        while ((link = cio__list_pop_front(&batch)) != NULL) {
            cio__job *job = CIO__CONTAINER_OF(link, cio__job, link);
            atomic_store_explicit(&loop->progress, ++progress, memory_order_relaxed);
            refresh_clock_every_jobs(loop, progress);
            prefetch_next(loop, &batch);
            job->run(job);
        }
        return;
    }
    while ((link = cio__list_pop_front(&batch)) != NULL) {
        cio__job *job = CIO__CONTAINER_OF(link, cio__job, link);
        int64_t start = cio__clock_real_ns();
        cio__loop_progress(loop);
        refresh_clock_every_jobs(loop, atomic_load_explicit(&loop->progress, memory_order_relaxed));
        job->run(job);
        double took = (double)(cio__clock_real_ns() - start) / 1e9;
        if (took >= loop->slow_callback_duration)
            fprintf(stderr, "cio: executing a callback took %.3f seconds\n", took);
    }
}

/*
 * The virtual clock's step, instead of a blocking poll. Nothing is
 * runnable: if no I/O operation is in flight and no call is out on the
 * thread pool, nothing but a timer can happen next, so the clock jumps to
 * the first deadline and the poll does not block. Otherwise the loop waits
 * for real, as long as the next deadline is away in loop time, and the
 * clock moves on by the real time the wait took. Returns the poll's
 * timeout.
 */
static int64_t virtual_wait(cio_loop *loop, cio__timer *next, int64_t timeout) {
    if (timeout == 0) return 0;
    if (next && !cio__io_busy(&loop->io) && loop->pool_pending == 0) {
        if (next->when > loop->virtual_now) loop->virtual_now = next->when;
        return 0;
    }
    return timeout;
}

static void run_once(cio_loop *loop) {
    loop->iterations++;
    cio__timer *next = cio__timer_heap_top(&loop->timers);
    int64_t now = 0;
    if (!cio__list_empty(&loop->ready)) {
        /* Work is waiting: look at I/O without blocking, if anything could
         * have completed. */
        if (cio__io_busy(&loop->io)) loop->io.backend->poll(&loop->io, 0);
    } else {
        int64_t timeout = -1;
        if (loop->stopping) {
            timeout = 0;
        } else if (next) {
            now = cio__clock_ns();
            timeout = next->when > now ? next->when - now : 0;
        }
        if (loop->virtual_clock) timeout = virtual_wait(loop, next, timeout);
        /* About to block, so idle: give back the memory of stacks and
         * records that the last busy spell left free (O(1) unless there
         * is; a step at a time, polling in between: stack.c). */
        if (timeout != 0) {
            /* Stacks first: the task records kept follow the stacks kept.
             * Either giving anything back means another pass at once
             * (the stack trim's next step, or malloc's trim). */
            bool more = cio__stack_pool_idle(&loop->stacks, loop->live_tasks);
            if (loop->trim_task_records && loop->trim_task_records(loop)) more = true;
            if (more) timeout = 0;
        }
        /* About to block: tell senders of cross-thread calls to wake us,
         * then look once more for what they posted (inbox.c). */
        if (timeout != 0) {
            atomic_store(&loop->inbox_sleeping, 1);
            if (atomic_load(&loop->inbox_posted)) timeout = 0;
        }
        int64_t waited_from = loop->virtual_clock && timeout != 0 ? cio__clock_real_ns() : 0;
        /* Waiting for I/O is not a stall (the watchdog skips the loop). */
        if (timeout != 0) atomic_store_explicit(&loop->busy, 0, memory_order_release);
        /* An interrupted wait (-EINTR) just ends this iteration early. */
        loop->io.backend->poll(&loop->io, timeout);
        if (timeout != 0) {
            cio__loop_progress(loop);
            atomic_store_explicit(&loop->busy, 1, memory_order_release);
        }
        atomic_store_explicit(&loop->inbox_sleeping, 0, memory_order_relaxed);
        if (waited_from) loop->virtual_now += cio__clock_real_ns() - waited_from;
        if (!next) loop->now_ns = cio__clock_ns(); /* after a wait of any length */
    }
    /* Work posted from other threads joins this iteration's batch. */
    if (atomic_load_explicit(&loop->inbox_posted, memory_order_relaxed)) {
        cio__inbox_drain(loop);
        /* A signal handler sets posted without a job (signal.c): take what
         * it marked pending. This comes after the drain cleared posted, so
         * a signal arriving meanwhile sets it again and is taken next time. */
        if (loop->signal_drain) loop->signal_drain(loop);
        /* A dump asked for (cio_dump_request) is taken here, between two
         * batches, where no task runs and nothing is half done. */
        if (atomic_load_explicit(&loop->dump_requested, memory_order_relaxed) &&
            atomic_exchange(&loop->dump_requested, 0)) {
            cio__dump_hook_fn dump = atomic_load(&cio__dump_hook);
            if (dump) dump(loop, 0);
        }
    }
    if (next) {
        now = cio__clock_ns();
        loop->now_ns = now;
        while ((next = cio__timer_heap_top(&loop->timers)) != NULL && next->when <= now) {
            cio__timer_heap_remove(&loop->timers, next);
            cio__ready_push(loop, &next->job);
        }
    }
    run_batch(loop);
}

/* Each thread that runs a loop gets an alternate signal stack, so the
 * overflow handler can run when a task has no stack left. An alternate stack
 * someone else installed is left in place. */
static void *enable_altstack(void) {
    stack_t old;
    if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE)) return NULL;
    size_t size = 64 * 1024;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return NULL;
    stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, size);
        return NULL;
    }
    return mem;
}

static void disable_altstack(void *mem) {
    if (!mem) return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(mem, 64 * 1024);
}

/* The start of a run, apart from its iterations and its end so that
 * run_until_complete registers its stopper, and takes it out again, only
 * while no dump from another thread reads the loop (a dump walks the
 * ready queue and the waiters). Refuses with nothing changed, or returns 0
 * with the loop running in this thread; cio__loop_run_started then runs
 * its iterations and cio__loop_end_run lets dumps in again. */
int cio__loop_start_run(cio_loop *loop) {
    if (!loop) return -EINVAL;
    if (loop->generation != cio__fork_generation) return -CIO_EFORKED;
    if (loop->closed || loop->closing) return -CIO_ELOOPCLOSED;
    if (loop->running || running_loop) return -CIO_ELOOPRUNNING;
    loop->running = 1;
    /* A dump reading the loop from outside its run finishes first, and
     * no new one starts (see cio_dump). */
    atomic_store(&loop->started, 1);
    while (atomic_load(&loop->dump_readers) != 0) sched_yield();
    return 0;
}

int cio__loop_run_started(cio_loop *loop) {
    /* The loop now belongs to this thread, and stays this thread's after
     * the run until another thread runs it. */
    atomic_store_explicit(&loop->owner, (uintptr_t)pthread_self(), memory_order_relaxed);
    running_loop = loop;
    /* The loop's clock is this thread's clock while it runs. */
    if (loop->virtual_clock) cio__clock_virtual = &loop->virtual_now;
    loop->now_ns = cio__clock_ns();
    cio__stack_install_overflow_handler();
    void *altstack = enable_altstack();
    /* For the stall watchdog: which thread runs the loop, and that it runs. */
    atomic_store_explicit(&loop->tid, (int)gettid(), memory_order_relaxed);
    cio__loop_progress(loop);
    atomic_store_explicit(&loop->busy, 1, memory_order_release);
    for (;;) {
        run_once(loop);
        if (loop->stopping) break;
    }
    atomic_store_explicit(&loop->busy, 0, memory_order_release);
    disable_altstack(altstack);
    loop->stopping = 0;
    return 0;
}

void cio__loop_end_run(cio_loop *loop) {
    loop->running = 0;
    atomic_store_explicit(&loop->started, 0, memory_order_release);
    running_loop = NULL;
    cio__clock_virtual = NULL;
}

int cio_run_forever(cio_loop *loop) {
    int rc = cio__loop_start_run(loop);
    if (rc < 0) return rc;
    rc = cio__loop_run_started(loop);
    cio__loop_end_run(loop);
    return rc;
}

int cio_loop_stop(cio_loop *loop) {
    if (!loop) return -EINVAL;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    loop->stopping = 1;
    return 0;
}

int cio_loop_is_running(const cio_loop *loop) {
    return loop && loop->running;
}

int cio_loop_is_closed(const cio_loop *loop) {
    return loop && loop->closed;
}

double cio_loop_time(const cio_loop *loop) {
    if (!loop) return NAN;
    return (double)cio_loop_time_ns(loop) / 1e9;
}

int64_t cio_loop_time_ns(const cio_loop *loop) {
    if (!loop) return -EINVAL;
    /* Read afresh, as asyncio's loop.time() does: a coroutine that computed
     * for a while must not schedule against a stale clock. The loop itself
     * uses the value it cached at the start of the iteration. A virtual
     * clock reads the same from any thread, running or not. */
    if (loop->virtual_clock) return loop->virtual_now;
    return cio__clock_real_ns();
}

int cio_loop_set_debug(cio_loop *loop, int enabled) {
    if (!loop) return -EINVAL;
    loop->debug = enabled != 0;
    cio__loop_note_state(loop);
    return 0;
}

int cio_loop_get_debug(const cio_loop *loop) {
    return loop ? loop->debug : 0;
}

