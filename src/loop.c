/*
 * The event loop: its life cycle and one iteration.
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
 * A job is a callback, a done callback or a task step (see internal.h).
 *
 * One departure from asyncio, for speed: while jobs are ready, asyncio polls
 * with a zero timeout on every iteration, and a poll is a system call (over
 * a microsecond in a VM), which would dominate a loop that only switches
 * between tasks. While jobs keep arriving cio polls without blocking once
 * per CIO__POLL_INTERVAL_NS or CIO__POLL_EVERY_ITERATIONS iterations, and
 * always when the ready queue runs empty. Readiness is therefore noticed at most that much later
 * under load; the order of callbacks and tasks is unchanged.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static CIO__TLS cio_loop *running_loop;

/* How long a busy loop may go without looking at I/O: 50 microseconds when
 * timers make the loop read the clock anyway, else 61 iterations (the same
 * count Tokio uses). */
#define CIO__POLL_INTERVAL_NS 50000
#define CIO__POLL_EVERY_ITERATIONS 61

int64_t cio__clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cio__seconds_to_ns(double seconds) {
    if (seconds >= 9.2e9) return INT64_MAX;
    if (seconds <= -9.2e9) return INT64_MIN + 1;
    return (int64_t)llround(seconds * 1e9);
}

int64_t cio__deadline_after(double delay) {
    int64_t now = cio__clock_ns();
    if (!(delay > 0)) return now;
    int64_t d = cio__seconds_to_ns(delay);
    return d > INT64_MAX - 1 - now ? INT64_MAX - 1 : now + d;
}

cio_loop *cio_running_loop(void) {
    return running_loop;
}

int cio__loop_check_slow(const cio_loop *loop) {
    if (loop->closed || loop->closing) return -CIO_ELOOPCLOSED;
    if (loop->debug) {
        uintptr_t owner = atomic_load_explicit(&loop->thread, memory_order_relaxed);
        if (owner && owner != (uintptr_t)pthread_self()) return -CIO_EWRONGTHREAD;
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

/* Disarms a timer whether it still waits in the heap or is already due
 * and queued. */
void cio__loop_disarm_timer(cio_loop *loop, cio__timer *timer) {
    cio__timer_heap_remove(&loop->timers, timer);
    if (timer->job.run && cio__link_linked(&timer->job.link)) cio__list_unlink(&timer->job.link);
}

int cio_loop_new(cio_loop **loopp) {
    return cio_loop_new_with(loopp, NULL);
}

int cio_loop_new_with(cio_loop **loopp, const cio_loop_options *opts) {
    if (!loopp) return -EINVAL;
    *loopp = NULL;
    cio_loop_options defaults = {0};
    if (!opts) opts = &defaults;
    if (opts->default_stack_size && opts->default_stack_size < CIO_MIN_STACK_SIZE) return -EINVAL;
    /* CIO_BACKEND lets a test run choose the backend without code changes. */
    const char *backend = opts->backend ? opts->backend : getenv("CIO_BACKEND");
    if (backend && *backend && strcmp(backend, "epoll") != 0) return -ENOTSUP;
    cio_loop *loop = cio__calloc(1, sizeof *loop);
    if (!loop) return -ENOMEM;
    cio__list_init(&loop->ready);
    cio__list_init(&loop->futures);
    loop->epoll_fd = -1;
    loop->wake_fd = -1;
    loop->default_stack_size = opts->default_stack_size ? opts->default_stack_size
                                                        : CIO_DEFAULT_STACK_SIZE;
#if defined(CIO__ASAN)
    /* Instrumented code needs several times the stack of plain code. */
    if (!opts->default_stack_size) loop->default_stack_size *= 4;
#endif
    loop->debug = opts->debug != 0;
    loop->slow_callback_duration =
        opts->slow_callback_duration > 0 ? opts->slow_callback_duration : 0.1;
    loop->backend = &cio__backend_epoll;
    int rc = loop->backend->init(loop);
    if (rc < 0) {
        cio__free(loop);
        return rc;
    }
    *loopp = loop;
    return 0;
}

const char *cio_loop_backend(const cio_loop *loop) {
    return loop ? loop->backend->name : NULL;
}

static void run_batch(cio_loop *loop) {
    cio__link batch;
    cio__list_init(&batch);
    cio__list_splice_back(&batch, &loop->ready);
    cio__link *link;
    if (!loop->debug) {
        while ((link = cio__list_pop_front(&batch)) != NULL) {
            cio__job *job = CIO__CONTAINER_OF(link, cio__job, link);
            job->run(job);
        }
        return;
    }
    while ((link = cio__list_pop_front(&batch)) != NULL) {
        cio__job *job = CIO__CONTAINER_OF(link, cio__job, link);
        int64_t start = cio__clock_ns();
        job->run(job);
        double took = (double)(cio__clock_ns() - start) / 1e9;
        if (took >= loop->slow_callback_duration)
            fprintf(stderr, "cio: executing a callback took %.3f seconds\n", took);
    }
}

static void run_once(cio_loop *loop) {
    cio__timer *next = cio__timer_heap_top(&loop->timers);
    int64_t now = 0;
    if (!cio__list_empty(&loop->ready)) {
        /* Work is waiting: look at I/O without blocking, but only every so
         * often (see CIO__POLL_INTERVAL_NS). The clock is read only when a
         * timer needs it. */
        bool due = ++loop->busy_iterations >= CIO__POLL_EVERY_ITERATIONS;
        if (next) {
            now = cio__clock_ns();
            due = due || now - loop->last_poll >= CIO__POLL_INTERVAL_NS;
        }
        /* With no task waiting for a descriptor there is nothing to see. */
        if (loop->io_waiters == 0) due = false;
        if (due) {
            loop->backend->poll(loop, 0);
            loop->busy_iterations = 0;
            if (next) loop->last_poll = now;
        }
    } else {
        int64_t timeout = -1;
        if (loop->stopping) {
            timeout = 0;
        } else if (next) {
            now = cio__clock_ns();
            timeout = next->when > now ? next->when - now : 0;
        }
        loop->backend->poll(loop, timeout);
        now = cio__clock_ns();
        loop->last_poll = now;
        loop->busy_iterations = 0;
    }
    if (next) {
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

int cio_run_forever(cio_loop *loop) {
    if (!loop) return -EINVAL;
    if (loop->closed || loop->closing) return -CIO_ELOOPCLOSED;
    if (loop->running || running_loop) return -CIO_ELOOPRUNNING;
    loop->running = 1;
    atomic_store_explicit(&loop->thread, (uintptr_t)pthread_self(), memory_order_relaxed);
    running_loop = loop;
    cio__stack_install_overflow_handler();
    void *altstack = enable_altstack();
    for (;;) {
        run_once(loop);
        if (loop->stopping) break;
    }
    disable_altstack(altstack);
    loop->stopping = 0;
    loop->running = 0;
    atomic_store_explicit(&loop->thread, 0, memory_order_relaxed);
    running_loop = NULL;
    return 0;
}

int cio_loop_stop(cio_loop *loop) {
    if (!loop) return -EINVAL;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    loop->stopping = 1;
    return 0;
}

/* The done callback run_until_complete registers: stop the loop. It lives on
 * the caller's stack for the duration of the call. */
typedef struct stopper {
    cio__job job;
    cio_loop *loop;
} stopper;

static void stop_loop(cio__job *job) {
    stopper *s = CIO__CONTAINER_OF(job, stopper, job);
    s->loop->stopping = 1;
}

int cio_run_until_complete(cio_loop *loop, cio_future *fut, void **result) {
    if (!loop || !fut) return -EINVAL;
    if (loop->closed || loop->closing) return -CIO_ELOOPCLOSED;
    if (loop->running || running_loop) return -CIO_ELOOPRUNNING;
    if (fut->loop != loop) return -CIO_EWRONGLOOP;
    stopper s = {.loop = loop};
    s.job.run = stop_loop;
    cio__list_init(&s.job.link);
    cio_future_retain(fut);
    cio__future_add_waiter(fut, &s.job);
    int rc = cio_run_forever(loop);
    if (rc == 0 && !cio_future_done(fut)) rc = -CIO_ESTOPPED;
    /* If the loop stopped some other way, the stopper is still registered
     * (or queued): take it out before this frame goes away. */
    if (cio__link_linked(&s.job.link)) cio__list_unlink(&s.job.link);
    if (rc == 0) rc = cio__future_outcome(fut, result);
    cio_future_release(fut);
    return rc;
}

int cio_loop_is_running(const cio_loop *loop) {
    return loop && loop->running;
}

int cio_loop_is_closed(const cio_loop *loop) {
    return loop && loop->closed;
}

double cio_loop_time(const cio_loop *loop) {
    return (double)cio_loop_time_ns(loop) / 1e9;
}

int64_t cio_loop_time_ns(const cio_loop *loop) {
    (void)loop;
    /* Read afresh, as asyncio's loop.time() does: a coroutine that computed
     * for a while must not schedule against a stale clock. The loop itself
     * uses the value it cached at the start of the iteration. */
    return cio__clock_ns();
}

int cio_loop_set_debug(cio_loop *loop, int enabled) {
    if (!loop) return -EINVAL;
    loop->debug = enabled != 0;
    return 0;
}

int cio_loop_get_debug(const cio_loop *loop) {
    return loop ? loop->debug : 0;
}

int cio_loop_close(cio_loop *loop) {
    if (!loop) return -EINVAL;
    if (loop->running) return -CIO_ELOOPRUNNING;
    if (loop->closed) return 0;
    loop->closing = 1;
    /* Pending callbacks and timers are dropped; their nodes go with the
     * pool. Jobs that live inside futures or on task stacks go with those. */
    cio__list_init(&loop->ready);
    cio__timer_heap_destroy(&loop->timers);
    /* Report and free every future and task the loop still holds. A task
     * that never finished cannot be run to its end any more: its stack is
     * released without unwinding, as asyncio reports a pending task that is
     * destroyed. */
    cio__link *link;
    while ((link = cio__list_pop_front(&loop->futures)) != NULL) {
        cio_future *fut = CIO__CONTAINER_OF(link, cio_future, loop_link);
        cio__list_init(&fut->callbacks);
        if (fut->kind == CIO__KIND_TASK && fut->state == CIO__PENDING)
            cio__report(loop, "Task was destroyed but it is pending!", 0, fut);
        cio__future_destroy(fut);
    }
    cio__node_pool_destroy(loop);
    cio__task_pool_destroy(loop);
    cio__stack_pool_destroy(&loop->stacks);
    cio__io_destroy(loop);
    loop->backend->fini(loop);
    loop->closed = 1;
    loop->closing = 0;
    return 0;
}

void cio_loop_free(cio_loop *loop) {
    if (!loop) return;
    if (loop->running) return; /* refusing is better than freeing under our feet */
    cio_loop_close(loop);
    cio__free(loop);
}
