/*
 * Tasks: a coroutine running on its own stack, driven by the loop, whose
 * outcome is a future (a task is a cio_future of kind task).
 *
 * Control flow. The loop resumes a task by switching from its own context
 * (or, for an eager start, from the spawning task) to the task's context;
 * the task runs until it suspends or returns, and either way switches back
 * to whoever resumed it. Suspending records what the task waits on in a
 * wait record on its own stack; whatever completes that wait puts the task
 * back on the ready queue (cio__task_wake) or resumes it from a waiter job.
 *
 * Cancellation follows asyncio's Task.cancel: the request is counted and
 * its message kept; if the task is suspended on something that can be
 * cancelled (an awaited future, a timer), that thing is cancelled and the
 * task wakes with its outcome; otherwise must_cancel makes the next
 * resumption return -ECANCELED. When the coroutine returns, the task ends
 * cancelled if it raised -ECANCELED or if requests are still outstanding
 * (C has no exception that would otherwise carry the cancellation out).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "handle.h"
#include "task.h"

/* The task running in this thread, or NULL (declared in future.h, which
 * reads the running task's future through it). */
CIO__TLS cio__task *cio__running_task;
_Static_assert(offsetof(cio__task, fut) == 0, "a task's record starts with its future");

/* How many finished task objects a loop keeps for reuse at least; more
 * while its stack pool keeps their stacks (task_pool_limit). */
#define CIO__TASK_POOL_MAX 1024

cio_task *cio_current_task(void) {
    return cio__running_task ? &cio__running_task->fut : NULL;
}

void cio__task_forget_current(void) {
    cio__running_task = NULL;
}

/* "Task-N" by hand: snprintf would cost more than the rest of a spawn, and
 * the overflow handler needs an async-signal-safe way to name a task. */
static void format_default_name(char *buf, uint64_t number) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + number % 10);
        number /= 10;
    } while (number);
    memcpy(buf, "Task-", 5);
    char *p = buf + 5;
    while (n) *p++ = digits[--n];
    *p = '\0';
}

/* Most tasks are never asked for their name, so the default one is only
 * formatted (once) when somebody asks. */
const char *cio__task_name(cio__task *t) {
    if (t->name) return t->name;
    if (!t->name_buf[0]) format_default_name(t->name_buf, t->number);
    return t->name_buf;
}

const char *cio_task_name(const cio_task *fut) {
    if (!fut || fut->kind != CIO__KIND_TASK) return NULL;
    return cio__task_name(cio__task_of(fut));
}

const cio__stack *cio__running_stack(char *name, size_t cap, cio__stack_owner *owner) {
    cio__task *t = cio__running_task;
    if (!t) return NULL;
    if (t->name) {
        size_t i = 0;
        for (; t->name[i] && i + 1 < cap; i++) name[i] = t->name[i];
        name[i] = '\0';
    } else if (cap >= sizeof t->name_buf) {
        format_default_name(name, t->number);
    }
    owner->name = name;
    owner->id = t->id;
    owner->site = t->spawn_site;
    owner->pc = t->spawn_pc;
    return &t->stack;
}

void cio__task_stack_owner(cio__task *t, cio__stack_owner *out) {
    out->name = cio__task_name(t);
    out->id = t->id;
    out->site = t->spawn_site;
    out->pc = t->spawn_pc;
}

/* An overflow caught after the fact: report it with the task's spawn site
 * and end the process. Kept out of line, off the switch path. */
__attribute__((noinline, cold)) static void overflowed(cio__task *t) {
    cio__stack_owner owner;
    cio__task_stack_owner(t, &owner);
    cio__stack_overflow_abort(&owner, &t->stack);
}

int cio_task_set_name(cio_task *fut, const char *name) {
    if (!fut || !name || fut->kind != CIO__KIND_TASK) return -EINVAL;
    int rc = cio__loop_check_thread(fut->loop);
    if (rc < 0) return rc;
    cio__task *t = cio__task_of(fut);
    char *copy = cio__strdup(name);
    if (!copy) return -ENOMEM;
    cio__free(t->name);
    t->name = copy;
    return 0;
}

size_t cio_task_stack_size(const cio_task *fut) {
    if (!fut || fut->kind != CIO__KIND_TASK) return 0;
    return cio__task_of(fut)->stack.size;
}

int cio_task_get_info(const cio_task *fut, cio_task_info *out) {
    if (!fut || !out || fut->kind != CIO__KIND_TASK) return -EINVAL;
    cio__task *t = cio__task_of(fut);
    memset(out, 0, sizeof *out);
    out->id = t->id;
    out->parent_id = t->parent_id;
    if (fut->state != CIO__PENDING || t->run_state == CIO__TASK_FINISHED)
        out->state = CIO_TASK_DONE;
    else if (t->run_state == CIO__TASK_RUNNING)
        out->state = CIO_TASK_RUNNING;
    else if (t->run_state == CIO__TASK_SUSPENDED)
        out->state = CIO_TASK_WAITING;
    else
        out->state = CIO_TASK_SCHEDULED;
    out->name = cio__task_name(t);
    out->spawn_site = t->spawn_site;
    out->spawn_pc = t->spawn_pc;
    out->started = (double)t->started_ns / 1e9;
    out->switches = t->switches;
    out->cpu_time = t->cpu_ns < 0 ? -1.0 : (double)t->cpu_ns / 1e9;
    out->stack_size = t->stack.size;
    out->stack_low_water = t->stack.lo && t->stack_low_sp
                               ? (size_t)((const char *)t->stack.lo + t->stack.size -
                                          (const char *)t->stack_low_sp)
                               : 0;
    return 0;
}

static inline void resume(cio__task *t);

/*
 * A task returned inside timeout scopes it never exited. The scopes' own
 * memory went with the frames that held it, but their timers live in pool
 * nodes (flow/timeout.c) and would fire into whatever uses this stack
 * next: disarm and free them, and report the mistake with the task's name.
 */
static void drop_scopes(cio__task *t) {
    cio_loop *loop = t->fut.loop;
    while (t->scopes) {
        cio__node *node = t->scopes;
        t->scopes = node->free_next;
        cio__loop_disarm_timer(loop, &node->timer);
        cio__node_free(loop, node);
    }
    cio__report(loop, "task returned inside a timeout scope it never exited", 0, &t->fut);
}

static void finish(cio__task *t, void *result) {
    if (!cio__stack_intact(&t->stack)) overflowed(t);
    if (t->scopes) drop_scopes(t);
    if (t->has_raised && t->raised == -ECANCELED)
        cio__future_complete(&t->fut, CIO__CANCELLED, NULL, -ECANCELED);
    else if (t->has_raised) {
        /* The error's message is the one cio_raise_msg gave, never a
         * cancellation message left from a cancel the task survived (the
         * field holds either). */
        if (!t->raised_msg) {
            cio__free(t->fut.cancel_msg);
            t->fut.cancel_msg = NULL;
        }
        cio__future_complete(&t->fut, CIO__DONE_ERROR, NULL, t->raised);
    }
    else if (t->cancel_requests > 0)
        cio__future_complete(&t->fut, CIO__CANCELLED, NULL, -ECANCELED);
    else
        cio__future_complete(&t->fut, CIO__DONE_RESULT, result, 0);
    t->run_state = CIO__TASK_FINISHED;
    /* Leave for good: resume() on the other side releases the stack. */
    cio__ctx_jump(&t->ctx, t->resumer, 1);
}

static void task_entry(void *arg) {
    cio__task *t = arg;
    cio__ctx_arrived(&t->ctx);
    t->started = 1;
    void *result = t->fn(t->arg);
    finish(t, result);
}

/* A finished task gives back its stack and the reference it held on
 * itself while it ran. */
__attribute__((always_inline)) static inline void release_finished(cio__task *t) {
    cio_loop *loop = t->fut.loop;
    cio__ctx_destroy(&t->ctx);
    /* Debug mode measures every task's stack as it ends (see "Stack depth");
     * otherwise the stack goes back as it is, holding this task's data. */
    if (__builtin_expect(loop->debug, 0)) {
        cio__task_stack_account(t);
    } else {
        t->stack.wiped = 0;
        t->stack_mark = 0; /* not measured (it shares stack_check_sp's word) */
    }
    cio__stack_put(&loop->stacks, &t->stack);
    t->stack.lo = NULL;
    loop->live_tasks--;
    cio__future_unref(&t->fut);
}

/*
 * The checks of a task's stack at a switch-out, off the common path: the
 * switch takes it when the stack pointer is below stack_check_sp. A guarded
 * stack keeps that bound at its lowest stack pointer so far, so the path
 * runs only at a new low: it records the low-water mark and checks the red
 * zone (the stack pointer cannot be in the red zone without being a new
 * low). An unguarded stack keeps the bound at the top of the address
 * space, so every switch comes here and checks its canary: an overflow that
 * did not move the stack pointer (a buffer written past the limit) is
 * caught before another task runs on.
 */
__attribute__((noinline)) static void check_stack_at_switch(cio__task *t) {
    if ((const char *)t->ctx.sp < (const char *)t->stack_low_sp) {
        t->stack_low_sp = t->ctx.sp;
        if (!cio__stack_sp_ok(&t->stack, t->ctx.sp)) overflowed(t);
    }
    if (t->stack.guard == 0) {
        if (!cio__stack_intact(&t->stack)) overflowed(t);
    } else {
        t->stack_check_sp = t->stack_low_sp;
    }
}

/*
 * A task switch: everything besides the switch itself. Debug mode also
 * counts each task's CPU time, a clock read on either side of the switch;
 * that copy (timed = 1) is kept out of line, so the copy every resume
 * inlines (timed = 0) carries no clock value across the switch and tests
 * debug mode once, before it.
 */
__attribute__((always_inline)) static inline void switch_to(cio__task *t, cio__task *prev,
                                                             int timed) {
    cio__ctx *from = prev ? &prev->ctx : &t->fut.loop->main_ctx;
    t->resumer = from;
    t->run_state = CIO__TASK_RUNNING;
    t->switches++;
    cio__running_task = t;
    int64_t cpu0 = timed ? cio__thread_cpu_ns() : 0;
    cio__ctx_jump(from, &t->ctx, 0);
    if (timed) t->cpu_ns = (t->cpu_ns > 0 ? t->cpu_ns : 0) + (cio__thread_cpu_ns() - cpu0);
    cio__running_task = prev;
    if (t->run_state == CIO__TASK_FINISHED) {
        release_finished(t);
        return;
    }
    /* One compare with a word of the task's decides whether the stack
     * needs a look (see check_stack_at_switch). */
    if (__builtin_expect((const char *)t->ctx.sp < (const char *)t->stack_check_sp, 0))
        check_stack_at_switch(t);
}

__attribute__((noinline)) static void resume_timed(cio__task *t) {
    switch_to(t, cio__running_task, 1);
}

/* Inlined on purpose: it is the whole of a task switch besides the switch
 * itself, and an eager spawn calls it too (a call here cost eager spawns
 * 15% once the task room's code moved around). */
__attribute__((always_inline)) static inline void resume(cio__task *t) {
    if (__builtin_expect(t->fut.loop->debug, 0))
        resume_timed(t);
    else
        switch_to(t, cio__running_task, 0);
}

/* A task's step, run by the loop from its ready queue: always on the
 * loop's own stack (an eager spawn resumes on a task's stack, but through
 * spawn_task, not this). */
/* The loop's batch finds a queued task's saved context right after its
 * step job (prefetch_next in loop.c). */
_Static_assert(offsetof(cio__task, ctx) == offsetof(cio__task, step) + sizeof(cio__job),
               "a task's context follows its step job");

CIO__LOOP_STACK_ONLY static void run_step(cio__job *job) {
    cio__task *t = CIO__CONTAINER_OF(job, cio__task, step);
    if (!t->started && t->must_cancel) {
        /* Cancelled before its first step: asyncio throws CancelledError
         * into the coroutine before any of its code runs, so it never
         * starts at all. */
        t->must_cancel = 0;
        cio__future_complete(&t->fut, CIO__CANCELLED, NULL, -ECANCELED);
        t->run_state = CIO__TASK_FINISHED;
        release_finished(t);
        return;
    }
    /* The loop runs its jobs with no task running (a task cannot run a
     * loop: cio_run_forever refuses while one runs on the thread), so the
     * switch comes from the loop's own context. */
    if (__builtin_expect(t->fut.loop->debug, 0))
        resume_timed(t);
    else
        switch_to(t, NULL, 0);
}

void cio__task_resume(cio__task *t, int status) {
    t->wake_status = status;
    t->wait = NULL;
    resume(t);
}

void cio__task_wake(cio__task *t, int status) {
    t->wake_status = status;
    t->wait = NULL;
    t->run_state = CIO__TASK_SCHEDULED;
    cio__ready_push(t->fut.loop, &t->step);
}

/*
 * The one suspension path: the task records what it waits on and switches
 * back to whoever resumed it; it returns the wake status, or -ECANCELED if
 * a cancellation is pending. The wait record must already say everything
 * the dump reads of it (cio__task_suspend stamps its "since").
 */
__attribute__((always_inline)) static inline int suspend_on(cio__task *t, cio__wait *wait) {
    t->wake_status = 0;
    t->wait = wait;
    t->frame = wait;
    t->run_state = CIO__TASK_SUSPENDED;
    /* A cancellation requested while the task ran reaches the thing it is
     * about to wait on, as asyncio cancels the future a task yields. */
    if (t->must_cancel && wait && wait->cancel) {
        t->must_cancel = 0;
        if (!wait->cancel(wait, t->fut.cancel_msg)) t->must_cancel = 1;
    }
    cio__ctx_jump(&t->ctx, t->resumer, 0);
    t->wait = NULL;
    t->frame = NULL;
    if (t->must_cancel) {
        t->must_cancel = 0;
        return -ECANCELED;
    }
    return t->wake_status;
}

int cio__task_suspend(cio__task *t, cio__wait *wait) {
    /* The dump's "waiting 2.1s": the loop's last clock reading, no clock
     * read of its own. */
    if (wait) wait->since = t->fut.loop->now_ns;
    return suspend_on(t, wait);
}

/*
 * sleep(0), asyncio's bare yield: the task goes to the back of the ready
 * queue and suspends once. Every yield shares one read-only wait record,
 * since nothing in it is particular to a call and a yield lasts one
 * iteration (so it keeps no "since", and the dump shows none): the hottest
 * suspension builds no record. Nothing writes through t->wait.
 */
static const cio__wait yield_wait = {
    .what = "sleep(0)", .deadline = INT64_MAX, .kind = CIO__WAIT_YIELD};

int cio__task_yield(cio__task *t) {
    cio__ready_push(t->fut.loop, &t->step);
    int rc = suspend_on(t, (cio__wait *)&yield_wait);
    t->run_state = CIO__TASK_RUNNING;
    return rc;
}

/*
 * Deadlines. A suspending call with a deadline arms a timer on the task's
 * stack next to its wait record. If the timer fires while the task still
 * waits on that record, the wait is abandoned (the waiter leaves whatever
 * queue or slot holds it) and the task wakes with -ETIMEDOUT. Whatever
 * completes the wait later finds the task no longer waiting on it and
 * leaves it alone.
 */
typedef struct deadline_timer {
    cio__timer timer;
    cio__task *task;
    cio__wait *wait;
} deadline_timer;

static void on_deadline(cio__timer *timer) {
    deadline_timer *d = CIO__CONTAINER_OF(timer, deadline_timer, timer);
    cio__task *t = d->task;
    if (t->run_state != CIO__TASK_SUSPENDED || t->wait != d->wait) return;
    if (d->wait->expire) {
        d->wait->expire(d->wait);
        return;
    }
    if (d->wait->abandon) d->wait->abandon(d->wait);
    cio__task_resume(t, -ETIMEDOUT);
}

int cio__task_suspend_timed(cio__task *t, cio__wait *wait, int64_t deadline) {
    cio_loop *loop = t->fut.loop;
    int rc = cio__timer_heap_reserve(&loop->timers, 1);
    if (rc < 0) return rc;
    deadline_timer d = {.task = t, .wait = wait};
    d.timer.fire = on_deadline;
    d.timer.index = CIO__TIMER_UNARMED;
    wait->deadline = deadline;
    cio__loop_arm_timer(loop, &d.timer, deadline);
    rc = cio__task_suspend(t, wait);
    cio__loop_disarm_timer(loop, &d.timer);
    return rc;
}

int cio__task_cancel(cio__task *t, const char *msg) {
    if (t->fut.state != CIO__PENDING) return 0;
    t->cancel_requests++;
    cio__free(t->fut.cancel_msg);
    t->fut.cancel_msg = msg ? cio__strdup(msg) : NULL;
    if (t->run_state == CIO__TASK_SUSPENDED && t->wait && t->wait->cancel) {
        if (t->wait->cancel(t->wait, msg)) return 1;
    }
    t->must_cancel = 1;
    return 1;
}

int cio_task_cancel(cio_task *task, const char *msg) {
    if (!task || task->kind != CIO__KIND_TASK) return -EINVAL;
    int rc = cio__loop_check_thread(task->loop);
    if (rc < 0) return rc;
    return cio__task_cancel(cio__task_of(task), msg);
}

int cio_task_cancelling(const cio_task *task) {
    if (!task || task->kind != CIO__KIND_TASK) return -EINVAL;
    return cio__task_of(task)->cancel_requests;
}

int cio_task_uncancel(cio_task *task) {
    if (!task || task->kind != CIO__KIND_TASK) return -EINVAL;
    int rc = cio__loop_check_thread(task->loop);
    if (rc < 0) return rc;
    cio__task *t = cio__task_of(task);
    if (t->cancel_requests > 0) t->cancel_requests--;
    /* 3.13: once no request is left, a pending delivery is dropped too. */
    if (t->cancel_requests == 0) t->must_cancel = 0;
    return t->cancel_requests;
}

CIO__TLS cio__thread_raise cio__worker_raise;

void *cio_raise(int err) {
    if (cio__running_task) {
        cio__running_task->has_raised = 1;
        cio__running_task->raised_msg = 0;
        cio__running_task->raised = err < 0 ? err : -EINVAL;
    } else if (cio__worker_raise.catching) {
        cio__worker_raise.raised = err < 0 ? err : -EINVAL;
    }
    return NULL;
}

void *cio_raise_msg(int err, const char *msg) {
    /* A worker has no future to hold the message: the error goes alone. */
    if (!cio__running_task) return cio_raise(err);
    cio_raise(err);
    cio__free(cio__running_task->fut.cancel_msg);
    /* Without memory for the copy the error still stands, unexplained. */
    cio__running_task->fut.cancel_msg = msg ? cio__strdup(msg) : NULL;
    cio__running_task->raised_msg = 1;
    return NULL;
}

static void task_destroy(cio_future *fut);

static int task_cancel(cio_future *fut, const char *msg) {
    return cio__task_cancel(cio__task_of(fut), msg);
}

static const char *task_name(const cio_future *fut) {
    return cio__task_name(cio__task_of(fut));
}

/* What a task does differently from a plain future (future.h). */
static const cio__future_ops task_ops = {
    .destroy = task_destroy, .cancel = task_cancel, .name = task_name};

/* The body of every spawn, inlined into each entry below. */
__attribute__((always_inline)) static inline int spawn_task(cio_loop *loop, cio_coro_fn fn,
                                                            void *arg,
                                                            const cio_task_options *opts,
                                                            cio_task **taskp, const char *site,
                                                            const void *pc) {
    if (taskp) *taskp = NULL;
    if (!loop || !fn) return -EINVAL;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    cio_task_options defaults = {0};
    if (!opts) opts = &defaults;
    size_t stack_size = opts->stack_size ? opts->stack_size : loop->default_stack_size;
    if (stack_size < CIO_MIN_STACK_SIZE || stack_size > CIO_MAX_STACK_SIZE) return -EINVAL;

    /* Finished task objects are recycled: a spawn then costs no malloc. */
    cio__task *t = loop->free_tasks;
    if (t) {
        loop->free_tasks = t->free_next;
        loop->free_task_count--;
    } else if (!(t = cio__malloc(sizeof *t))) {
        return -ENOMEM;
    }
    rc = cio__stack_get(&loop->stacks, stack_size, &t->stack);
    char *name = NULL;
    if (rc == 0 && opts->name && !(name = cio__strdup(opts->name))) {
        cio__stack_put(&loop->stacks, &t->stack);
        rc = -ENOMEM;
    }
    if (rc < 0) {
        cio__free(t);
        return rc;
    }
    /* Only unnamed tasks take a number, as asyncio's counter: create_task(c,
     * name="x") followed by create_task(c) yields "Task-N+1" after "Task-N". */
    t->number = name ? 0 : ++loop->task_numbers;
    t->name = name;
    t->name_buf[0] = '\0';
    cio__future_init(loop, &t->fut, CIO__KIND_TASK, &task_ops);
    t->fn = fn;
    t->arg = arg;
    t->wait = NULL;
    t->frame = NULL;
    t->resumer = NULL;
    t->scopes = NULL;
    t->cancel_requests = 0;
    t->must_cancel = 0;
    t->started = 0;
    t->has_raised = 0;
    t->raised_msg = 0;
    t->raised = 0;
    t->wake_status = 0;
    t->id = ++loop->task_ids;
    t->fut.creator = (uint32_t)t->id; /* what a future it makes records */
    t->parent_id = cio__running_task && cio__running_task->fut.loop == loop ? cio__running_task->id : 0;
    t->spawn_site = site;
    t->spawn_pc = pc;
    /* A running loop's last clock reading is recent enough and free; a
     * loop that does not run has none that is. */
    t->started_ns = loop->running ? loop->now_ns : cio_loop_time_ns(loop);
    t->switches = 0;
    t->cpu_ns = -1;
    t->stack_low_sp = (const char *)t->stack.lo + t->stack.size;
    t->stack_check_sp = t->stack.guard ? t->stack_low_sp : (const void *)UINTPTR_MAX;
    t->step.run = run_step;
    loop->task_step = run_step; /* for the batch's prefetch (loop.c) */
    cio__list_init(&t->step.link);
    cio__ctx_make(&t->ctx, t->stack.lo, t->stack.size, task_entry, t);
    loop->live_tasks++;
    if (taskp) {
        cio__future_ref(&t->fut);
        *taskp = &t->fut;
    }
    if (opts->eager_start && loop->running && cio_running_loop() == loop) {
        resume(t);
    } else {
        t->run_state = CIO__TASK_SCHEDULED;
        cio__ready_push(loop, &t->step);
    }
    return 0;
}

/* The public spawns are macros that pass CIO_HERE; the functions behind
 * the macros' names (called in parentheses or through a pointer) record
 * their caller's code address instead. */
int(cio_spawn)(cio_loop *loop, cio_coro_fn fn, void *arg, cio_task **taskp) {
    return cio__spawn(loop, fn, arg, NULL, taskp, NULL, __builtin_return_address(0));
}

int(cio_spawn_with)(cio_loop *loop, cio_coro_fn fn, void *arg, const cio_task_options *opts,
                    cio_task **taskp) {
    return cio__spawn(loop, fn, arg, opts, taskp, NULL, __builtin_return_address(0));
}

/* The cio_spawn and cio_spawn_with macros land here: the spawn's body is
 * inlined into it, so a spawn is one call. */
int cio_spawn_at(const char *site, cio_loop *loop, cio_coro_fn fn, void *arg,
                 const cio_task_options *opts, cio_task **taskp) {
    return spawn_task(loop, fn, arg, opts, taskp, site, site ? NULL : __builtin_return_address(0));
}

int cio__spawn(cio_loop *loop, cio_coro_fn fn, void *arg, const cio_task_options *opts,
               cio_task **taskp, const char *site, const void *pc) {
    return spawn_task(loop, fn, arg, opts, taskp, site, pc);
}

void cio__task_detach(cio__task *t) {
    if (!t->stack.lo) return; /* finished: stack and self-reference already gone */
    /* A task destroyed while suspended may be linked into something that
     * outlives the loop, such as a lock's wait queue: take it out before
     * its stack, which holds the link, goes away. */
    if (t->run_state == CIO__TASK_SUSPENDED && t->wait && t->wait->abandon)
        t->wait->abandon(t->wait);
    /* The suspending call will never return: give back what it holds. */
    if (t->frame && t->frame->unwind) t->frame->unwind(t->frame);
    t->wait = NULL;
    t->frame = NULL;
    cio_loop *loop = t->fut.loop;
    cio__ctx_destroy(&t->ctx);
    loop->live_tasks--;
    cio__stack_put(&loop->stacks, &t->stack);
    t->stack.lo = NULL;
    t->stack_mark = 0; /* not measured (it shares stack_check_sp's word) */
    t->run_state = CIO__TASK_FINISHED;
    cio__future_unref(&t->fut);
}

/*
 * How many finished task records the loop keeps for reuse: at least
 * CIO__TASK_POOL_MAX, and as many as the stack pool keeps warm stacks that
 * no live task holds. A burst of spawns larger than the fixed bound then
 * reuses its records as it reuses its stacks, where the bound made every
 * burst after the first malloc most records again, and fault their pages
 * in again whenever malloc had given them back (the second group of 10,000
 * children ran half again as slow, depending on what the program had
 * freed before). A record is 344 bytes against the 4 KiB or more a warm
 * stack holds, and the idle trim gives the surplus back with the stacks
 * (trim_task_records).
 */
static size_t task_pool_limit(const cio_loop *loop) {
    size_t warm = cio__stack_pool_warm(&loop->stacks);
    size_t spare = warm > loop->live_tasks ? warm - loop->live_tasks : 0;
    return spare > CIO__TASK_POOL_MAX ? spare : CIO__TASK_POOL_MAX;
}

/* The loop's idle step, while records beyond the fixed pool are kept
 * (loop.h: trim_task_records). */
static bool trim_task_records(cio_loop *loop) {
    size_t limit = task_pool_limit(loop);
    size_t freed = 0;
    while (loop->free_task_count > limit) {
        cio__task *t = loop->free_tasks;
        loop->free_tasks = t->free_next;
        loop->free_task_count--;
        cio__free(t);
        freed++;
    }
    cio__stack_pool_note_freed(&loop->stacks, freed * sizeof(cio__task));
    if (loop->free_task_count <= CIO__TASK_POOL_MAX) loop->trim_task_records = NULL;
    return freed > 0;
}

static void task_destroy(cio_future *fut) {
    cio__task *t = cio__task_of(fut);
    /* Only loop close destroys a task that still has its stack (a running
     * task holds a reference on itself): detach releases it first. */
    cio__task_detach(t);
    if (t->name) {
        cio__free(t->name);
        t->name = NULL;
    }
    cio_loop *loop = t->fut.loop;
    if (loop && !loop->closing &&
        (loop->free_task_count < CIO__TASK_POOL_MAX ||
         loop->free_task_count < task_pool_limit(loop))) {
        t->free_next = loop->free_tasks;
        loop->free_tasks = t;
        if (++loop->free_task_count > CIO__TASK_POOL_MAX) loop->trim_task_records = trim_task_records;
    } else {
        cio__free(t);
    }
}

void cio__task_pool_destroy(cio_loop *loop) {
    while (loop->free_tasks) {
        cio__task *t = loop->free_tasks;
        loop->free_tasks = t->free_next;
        cio__free(t);
    }
    loop->free_task_count = 0;
    loop->trim_task_records = NULL;
}

size_t cio_all_tasks(cio_loop *loop, cio_task **tasks, size_t cap) {
    if (!loop) return 0;
    size_t n = 0;
    for (cio__link *l = loop->futures.next; l != &loop->futures; l = l->next) {
        cio_future *f = CIO__CONTAINER_OF(l, cio_future, loop_link);
        if (f->kind != CIO__KIND_TASK || f->state != CIO__PENDING) continue;
        if (tasks && n < cap) tasks[n] = f;
        n++;
    }
    return n;
}

int cio_loop_dump_tasks(cio_loop *loop, FILE *out) {
    if (!loop || !out) return -EINVAL;
    static const char *const states[] = {"scheduled", "running", "suspended", "finished"};
    int n = 0;
    for (cio__link *l = loop->futures.next; l != &loop->futures; l = l->next) {
        cio_future *f = CIO__CONTAINER_OF(l, cio_future, loop_link);
        if (f->kind != CIO__KIND_TASK || f->state != CIO__PENDING) continue;
        cio__task *t = cio__task_of(f);
        fprintf(out, "%s: %s", cio__task_name(t), states[t->run_state]);
        if (t->wait) {
            fprintf(out, ", awaiting %s", t->wait->what);
            if (t->wait->future && t->wait->future->kind == CIO__KIND_TASK)
                fprintf(out, " '%s'", cio__task_name(cio__task_of(t->wait->future)));
            if (t->wait->deadline != INT64_MAX)
                fprintf(out, " (deadline in %.3f s)",
                        (double)(t->wait->deadline - cio__clock_ns()) / 1e9);
        }
        if (t->cancel_requests) fprintf(out, ", %d cancel request(s)", t->cancel_requests);
        fprintf(out, ", stack %zu bytes, %s\n", t->stack.size,
                cio__stack_protection(&loop->stacks, &t->stack));
        n++;
    }
    return n;
}

/*
 * Stack depth (issue 12, item 6). The cheap measure is kept always: the
 * lowest stack pointer seen when the task was switched out (resume, one
 * compare per switch). It is a lower bound, since a task goes deeper
 * between two switches. The exact one is measured on demand by scanning the
 * stack from its low end for the first word that is not zero
 * (cio__stack_high_water): fresh anonymous memory reads zero, so that word
 * is the deepest one ever written.
 *
 * A stack reused from the pool still holds its previous task's data, which
 * the scan cannot tell from the new task's. In debug mode each task's stack
 * is therefore measured when the task ends (its mark goes into the census
 * of its spawn site, stack_census.c) and the pages down to that mark are
 * given back to the kernel (MADV_DONTNEED), so the next task starts from
 * zero pages and its mark is its own. Outside debug mode stacks go back as
 * they are, to keep spawning free of system calls; a task that got such a
 * stack reports an upper bound, and the census says so.
 */
size_t cio__task_stack_high_water(const cio__task *t) {
    if (!t->stack.lo) return t->stack_mark;
    /* The running task's stack pointer is here; a suspended one's is saved. */
    volatile char here = 0;
    const void *sp = cio__running_task == t ? (const void *)&here : t->ctx.sp;
    size_t mark = cio__stack_high_water(&t->stack, sp);
    /* The words a switch saved at the lowest stack pointer may all be zero
     * (registers holding zero): the bound from that pointer is still a
     * bound, and it may be a few words deeper than the first non-zero one. */
    size_t low = (size_t)((const char *)t->stack.lo + t->stack.size - (const char *)t->stack_low_sp);
    return mark > low ? mark : low;
}

void cio__task_stack_account(cio__task *t) {
    size_t mark = cio__task_stack_high_water(t);
    t->stack_mark = mark;
    /* Without memory the census misses this task; nothing else fails. */
    (void)cio__stack_census_add(&t->fut.loop->stack_census, t->spawn_site, t->spawn_pc, mark,
                                t->stack.size, !t->stack.wiped);
    cio__stack_wipe(&t->stack, mark);
}

ssize_t cio_task_stack_high_water(const cio_task *task) {
    if (!task || task->kind != CIO__KIND_TASK) return -EINVAL;
    int rc = cio__loop_check_thread(task->loop);
    if (rc < 0) return rc;
    const cio__task *t = cio__task_of(task);
    if (!t->stack.lo && !t->stack_mark) return -ENODATA;
    return (ssize_t)cio__task_stack_high_water(t);
}

int cio_loop_stack_census(cio_loop *loop, FILE *out) {
    if (!loop || !out) return -EINVAL;
    int rc = cio__loop_check_thread(loop);
    if (rc < 0) return rc;
    /* The recorded sites, then every live task's mark measured now. */
    cio__stack_census *census;
    if (cio__stack_census_copy(loop->stack_census, &census) < 0) return -ENOMEM;
    for (cio__link *l = loop->futures.next; l != &loop->futures; l = l->next) {
        cio_future *f = CIO__CONTAINER_OF(l, cio_future, loop_link);
        if (f->kind != CIO__KIND_TASK) continue;
        cio__task *t = cio__task_of(f);
        if (!t->stack.lo) continue;
        if (cio__stack_census_add(&census, t->spawn_site, t->spawn_pc,
                                  cio__task_stack_high_water(t), t->stack.size,
                                  !t->stack.wiped) < 0) {
            cio__stack_census_free(&census);
            return -ENOMEM;
        }
    }
    int count = cio__stack_census_print(census, out);
    cio__stack_census_free(&census);
    return count;
}
