/*
 * A loop's life: creation, close and free.
 *
 * Close tears down what every room of the core built, so it sits above
 * them all. What nobody references is freed; what the program still
 * references outlives the loop as an orphan (see future.c). Step by step:
 *
 *   0. Let every signal the loop holds go (dispositions come back, and
 *      no signal handler reaches the loop any more: signal.c). Stop the
 *      thread pool (no new work, queued work dropped, every
 *      worker joined: close waits for functions already running), then
 *      close the inbox: later cross-thread calls get -CIO_ELOOPCLOSED and
 *      what was posted but never ran is discarded (see inbox.c).
 *   1. Cancel and reap every I/O operation in flight (their records live
 *      on task stacks, which must outlive them).
 *      Then release what the calls suspended in those tasks hold
 *      (cio__holding in loop.h: sockets being connected, address lists),
 *      since their remaining code, which would have, never runs.
 *   2. Pin every future of the loop (one extra reference each), so that
 *      dropping references below frees nothing while the lists are walked.
 *   3. Discard every job that will never run: the ready queue and every
 *      future's callback list. Jobs that hold references give them back
 *      (cio__job_discard); timers go with the heap.
 *   4. End every task's life on the loop: a pending one is reported ("Task
 *      was destroyed but it is pending!"), its wait is abandoned and its
 *      suspended frame unwound (the references the code after the
 *      suspension would have dropped), its stack released without running
 *      its remaining code (a C stack cannot be unwound the way Python
 *      closes a coroutine), and the reference it held on itself dropped.
 *      Every pending future, task or not, now reads as cancelled.
 *   5. Unpin: a future whose last reference was the pin is freed (errors
 *      nobody retrieved are reported through the loop's handler); the
 *      others are orphaned: detached from the loop, freed at their last
 *      release.
 *   6. Free the pools (the thread pool's too), the stacks and the backend.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core.h"
#include "debug_table.h"

/* The child of a fork has no running loop and no current task, and the
 * parent's loops are not its own (see loop.c). */
static void in_forked_child(void) {
    cio__loop_slots_after_fork();
    cio__loop_forked();
    cio__task_forget_current();
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void register_atfork(void) {
    /* Without the handler (out of memory) a child is not protected; there
     * is nothing better to do about it than to carry on. */
    (void)pthread_atfork(NULL, NULL, in_forked_child);
}

int cio_loop_new(cio_loop **loopp) {
    return cio_loop_new_with(NULL, loopp);
}

int cio_loop_new_with(const cio_loop_options *opts, cio_loop **loopp) {
    if (!loopp) return -EINVAL;
    *loopp = NULL;
    cio_loop_options defaults = {0};
    if (!opts) opts = &defaults;
    if (opts->default_stack_size && (opts->default_stack_size < CIO_MIN_STACK_SIZE ||
                                     opts->default_stack_size > CIO_MAX_STACK_SIZE))
        return -EINVAL;
    if (opts->stack_guard_size > CIO_MAX_STACK_SIZE) return -EINVAL;
    /* CIO_BACKEND lets a test run (or an operator) choose the backend
     * without code changes; a set-user-ID program ignores it. */
    const char *backend = opts->backend ? opts->backend : secure_getenv("CIO_BACKEND");
    pthread_once(&atfork_once, register_atfork);
    cio_loop *loop = cio__calloc(1, sizeof *loop);
    if (!loop) return -ENOMEM;
    loop->generation = cio__fork_generation;
    atomic_init(&loop->owner, (uintptr_t)pthread_self());
    cio__list_init(&loop->ready);
    cio__list_init(&loop->futures);
    cio__list_init(&loop->holdings);
    cio__fd_table_init(&loop->watchers, sizeof(void *), NULL);
    loop->default_stack_size = opts->default_stack_size ? opts->default_stack_size
                                                        : CIO_DEFAULT_STACK_SIZE;
    cio__stack_pool_init(&loop->stacks, opts->stack_guard_size ? opts->stack_guard_size
                                                               : CIO_DEFAULT_STACK_GUARD_SIZE);
#if defined(CIO__ASAN)
    /* Instrumented code needs several times the stack of plain code. */
    if (!opts->default_stack_size) loop->default_stack_size *= 4;
#endif
    loop->debug = opts->debug != 0;
    cio__loop_note_state(loop);
    loop->dump_fd = -1;
    loop->virtual_clock = opts->virtual_clock != 0;
    loop->virtual_now = cio__clock_real_ns();
    loop->now_ns = loop->virtual_now;
    loop->debug_table = &cio__debug_table_v1;
    loop->slow_callback_duration =
        opts->slow_callback_duration > 0 ? opts->slow_callback_duration : 0.1;
    int rc = cio__loop_slot_acquire(loop);
    if (rc < 0) {
        cio__free(loop);
        return rc;
    }
    rc = cio__io_init(&loop->io, backend);
    if (rc < 0) {
        /* An explicit choice that cannot be honoured says why: the error
         * code alone cannot tell a seccomp filter from a sysctl. */
        if (loop->io.fallback_reason[0] && backend && strcmp(backend, "epoll") != 0)
            fprintf(stderr, "cio: the %s backend was asked for but cannot be used: %s\n", backend,
                    loop->io.fallback_reason);
        cio__loop_slot_release(loop);
        cio__free(loop);
        return rc;
    }
    cio__inbox_init(loop);
    /* The overflow handler (stack layer) learns from the task layer which
     * stack is running. */
    cio__stack_set_running_hook(cio__running_stack);
    /* Done callbacks left queued at close give back their futures. */
    cio__future_register_discards();
    *loopp = loop;
    return 0;
}

int cio_loop_close(cio_loop *loop) {
    if (!loop) return -EINVAL;
    /* In a forked child the loop's stacks may hold the very stack the child
     * runs on, and its descriptors are shared with the parent: leave it. */
    if (loop->generation != cio__fork_generation) return -CIO_EFORKED;
    if (loop->running) return -CIO_ELOOPRUNNING;
    if (loop->closed) return 0;
    /* Close reports pending tasks through the exception handler; a handler
     * that closed (or freed) the loop again would free what this close is
     * still walking. */
    if (loop->closing) return -EBUSY;
    loop->closing = 1;
    cio__loop_note_state(loop);
    /* No dump request from another thread is under way from here on. */
    atomic_store(&loop->dump_refused, 1);
    while (atomic_load(&loop->dump_requesters) != 0) sched_yield();
    /* Debug mode: the tasks that never finished are dumped (names, waits,
     * frames) while their stacks still hold them, through the report path
     * (closing is set: a handler that closes the loop again is refused). */
    if (loop->debug && loop->live_tasks > 0) {
        cio__dump_hook_fn dump = atomic_load(&cio__dump_hook);
        if (dump) dump(loop, 1);
    }
    cio__loop_debug_begin(loop); /* outside readers keep off until the list is empty */
    /* 0. The program's calls from other threads are refused from here on.
     * Then signals: after this no signal handler touches the loop (they
     * post to its inbox). Then the thread pool stops (its workers post
     * their completions to the inbox), then the inbox refuses new work and
     * discards what was posted but never ran. */
    cio__inbox_refuse_calls(loop);
    cio__signal_loop_close(loop);
    if (loop->watchdog_close) loop->watchdog_close(loop);
    if (loop->pool_close) loop->pool_close(loop, 0);
    cio__inbox_close(loop);
    /* 1. Operations in flight end first, each with its final completion,
     * while the stacks that hold their records still exist. Their
     * completions may schedule wake-ups; those are dropped next. */
    loop->io.backend->drain(&loop->io);
    cio__link *link;
    while ((link = cio__list_pop_front(&loop->holdings)) != NULL) {
        cio__holding *h = CIO__CONTAINER_OF(link, cio__holding, link);
        h->release(h->arg);
    }
    /* 2. */
    for (link = loop->futures.next; link != &loop->futures; link = link->next)
        CIO__CONTAINER_OF(link, cio_future, loop_link)->refs++;
    /* 3. */
    cio__timer_heap_destroy(&loop->timers);
    while ((link = cio__list_pop_front(&loop->ready)) != NULL)
        cio__job_discard(CIO__CONTAINER_OF(link, cio__job, link));
    for (link = loop->futures.next; link != &loop->futures; link = link->next) {
        cio_future *fut = CIO__CONTAINER_OF(link, cio_future, loop_link);
        cio__link *job;
        while ((job = cio__list_pop_front(&fut->callbacks)) != NULL)
            cio__job_discard(CIO__CONTAINER_OF(job, cio__job, link));
    }
    /* 4. */
    for (link = loop->futures.next; link != &loop->futures; link = link->next) {
        cio_future *fut = CIO__CONTAINER_OF(link, cio_future, loop_link);
        if (fut->kind == CIO__KIND_TASK && fut->state == CIO__PENDING)
            cio__report(loop, "Task was destroyed but it is pending!", 0, fut);
        if (fut->kind == CIO__KIND_TASK) cio__task_detach(cio__task_of(fut));
        if (fut->state == CIO__PENDING) {
            fut->state = CIO__CANCELLED;
            fut->error = -ECANCELED;
            fut->result = NULL;
        }
    }
    /* 5. Freeing one future may release others (a gather its children),
     * which are then freed too if that was their last reference. */
    cio__link survivors;
    cio__list_init(&survivors);
    while ((link = cio__list_pop_front(&loop->futures)) != NULL) {
        cio_future *fut = CIO__CONTAINER_OF(link, cio_future, loop_link);
        if (fut->refs == 1) {
            fut->refs = 0;
            cio__future_destroy(fut);
        } else {
            fut->refs--;
            cio__list_push_back(&survivors, &fut->loop_link);
        }
    }
    while ((link = cio__list_pop_front(&survivors)) != NULL)
        CIO__CONTAINER_OF(link, cio_future, loop_link)->loop = NULL;
    cio__loop_debug_end(loop);
    /* 6. */
    if (loop->pool_close) loop->pool_close(loop, 1);
    loop->pool_close = NULL;
    loop->pool = NULL;
    cio__node_pool_destroy(loop);
    cio__task_pool_destroy(loop);
    cio__stack_census_free(&loop->stack_census);
    cio__stack_pool_destroy(&loop->stacks);
    cio__fd_table_destroy(&loop->watchers);
    cio__free(loop->read_buffer);
    loop->read_buffer = NULL;
    cio__io_fini(&loop->io);
    loop->closed = 1;
    loop->closing = 0;
    cio__loop_note_state(loop);
    return 0;
}

int cio_loop_free(cio_loop *loop) {
    if (!loop) return 0;
    /* Each refusal leaves the loop intact: freeing it would pull it from
     * under the code that runs or closes it. */
    int rc = cio_loop_close(loop);
    if (rc < 0) return rc;
    /* From here on, handles of this loop find its slot empty. */
    cio__loop_slot_release(loop);
    cio__inbox_destroy(loop);
    cio__free(loop);
    return 0;
}
