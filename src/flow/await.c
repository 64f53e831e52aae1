/*
 * Waiting on a future from a task: cio_await, cio_await_until,
 * cio_wait_for and cio_wait_for_until.
 *
 * The waiting task registers a waiter job on the future; the job and the
 * wait record both live on the task's stack, so an await allocates
 * nothing. When the future completes, the job goes through the ready queue
 * and resumes the task. Cancelling the task cancels the awaited future
 * (cancel_awaited), which is how a cancellation travels down a chain of
 * tasks awaiting tasks.
 */
#include <math.h>

#include "flow.h"

typedef struct waiter {
    cio__job job;
    cio__task *task;
    cio__wait *rec;
} waiter;

/* The future's completion scheduled this job; running it resumes the task
 * at once, in the iteration after the completion, as asyncio's wake-up.
 * A task that stopped waiting meanwhile (its deadline passed) is left
 * alone. */
static void resume_waiter(cio__job *job) {
    waiter *w = CIO__CONTAINER_OF(job, waiter, job);
    cio__task *t = w->task;
    if (t->run_state != CIO__TASK_SUSPENDED || t->wait != w->rec) return;
    cio__task_resume(t, 0);
}

static int cancel_awaited(cio__wait *wait, const char *msg) {
    return cio_future_cancel(wait->future, msg) == 1;
}

/* At loop close, a task destroyed in the middle of an await gives back the
 * reference its frame holds on the awaited future. */
static void unwind_awaited(cio__wait *wait) {
    cio__future_unref(wait->future);
}

/* The wait record of a task awaiting fut: cancelling the task cancels fut,
 * and a task destroyed meanwhile gives back its reference on fut. */
static cio__wait awaiting(cio_future *fut, const char *what, int64_t deadline) {
    /* The kind of future is the edge's label in the await graph: a task
     * awaited is a task -> task edge, which is what the dump's cycle search
     * follows. */
    static const uint8_t edge_of_kind[] = {
        [CIO__KIND_FUTURE] = CIO__WAIT_FUTURE,
        [CIO__KIND_TASK] = CIO__WAIT_TASK,
        [CIO__KIND_GATHER] = CIO__WAIT_GATHER,
    };
    /* The dump reads the object of a future's wait from .future. */
    return (cio__wait){.cancel = cancel_awaited, .unwind = unwind_awaited, .what = what,
                       .future = fut, .deadline = deadline, .kind = edge_of_kind[fut->kind]};
}

static int check_awaitable(cio__task *t, cio_future *fut) {
    if (!fut) return -EINVAL;
    if (!fut->loop) return -CIO_ELOOPCLOSED;
    if (fut == &t->fut) return -EDEADLK;
    if (fut->loop != t->fut.loop) return -CIO_EWRONGLOOP;
    return 0;
}

/* Suspends t until fut is done, the deadline passes (-ETIMEDOUT) or a
 * cancellation arrives while fut is already done (-ECANCELED). */
static int wait_done(cio__task *t, cio_future *fut, cio__wait *rec, int64_t deadline) {
    waiter w = {.task = t, .rec = rec};
    w.job.run = resume_waiter;
    cio__list_init(&w.job.link);
    cio__future_add_waiter(fut, &w.job);
    int status = cio__task_suspend_until(t, rec, deadline);
    cio__future_remove_waiter(fut, &w.job);
    return status;
}

static int await_deadline(cio_future *fut, int64_t deadline, void **result) {
    if (!fut) return -EINVAL; /* bad arguments before -EPERM (cio.h, convention 2) */
    int rc;
    cio__task *t = cio__current(&rc);
    if (!t) return rc;
    rc = check_awaitable(t, fut);
    if (rc < 0) return rc;
    /* A done future is not waited on: asyncio's await returns at once. */
    if (fut->state != CIO__PENDING) return cio__future_outcome(fut, result);
    cio__wait rec = awaiting(fut, "future", deadline);
    cio__future_ref(fut);
    int status = wait_done(t, fut, &rec, deadline);
    rc = status < 0 ? status : cio__future_outcome(fut, result);
    cio__future_unref(fut);
    return rc;
}

int cio_await(cio_future *fut, void **result) {
    return await_deadline(fut, INT64_MAX, result);
}

int cio_await_until(cio_future *fut, double when, void **result) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    if (rc < 0) return rc;
    return await_deadline(fut, deadline, result);
}

/*
 * wait_for arms a timer next to the waiter. When the timer fires first, it
 * cancels the future and the task keeps waiting until the future is done:
 * asyncio 3.12+ awaits the cancelled inner task before raising TimeoutError.
 * The outcome is then -ETIMEDOUT if the future ended cancelled and no
 * cancellation of the waiting task itself arrived meanwhile; a future that
 * produced an outcome despite the cancel returns that outcome.
 */
typedef struct expiry {
    cio__timer timer;
    cio_future *fut;
    int fired;
} expiry;

static void on_expiry(cio__timer *timer) {
    expiry *e = CIO__CONTAINER_OF(timer, expiry, timer);
    e->fired = 1;
    cio_future_cancel(e->fut, NULL);
}

/* No time at all (asyncio 3.12+ wait_for with timeout <= 0): cancel fut now, before anything else runs, and wait
 * until it is done, as _cancel_and_wait does (also for a future that the
 * cancel completes at once: the waiter job takes one iteration, as
 * asyncio's done callback). A task that has not started is thereby
 * cancelled before its first step. Ended cancelled, fut gives -ETIMEDOUT;
 * an outcome it produced despite the cancel is returned. */
static int wait_for_expired(cio__task *t, cio_future *fut, int64_t deadline, void **result) {
    cio__wait rec = awaiting(fut, "future (wait_for)", deadline);
    cio__future_ref(fut);
    cio_future_cancel(fut, NULL);
    int status = wait_done(t, fut, &rec, INT64_MAX);
    int rc;
    if (status < 0)
        rc = status;
    else if (fut->state == CIO__CANCELLED)
        rc = -ETIMEDOUT;
    else
        rc = cio__future_outcome(fut, result);
    cio__future_unref(fut);
    return rc;
}

/* expired_now: the caller asked for no time at all (timeout <= 0). */
static int wait_for_deadline(cio_future *fut, int64_t deadline, bool expired_now, void **result) {
    if (!fut) return -EINVAL; /* bad arguments before -EPERM (cio.h, convention 2) */
    int rc;
    cio__task *t = cio__current(&rc);
    if (!t) return rc;
    rc = check_awaitable(t, fut);
    if (rc < 0) return rc;
    if (deadline == INT64_MAX) return cio_await(fut, result);
    if (fut->state != CIO__PENDING) return cio__future_outcome(fut, result);
    if (expired_now) return wait_for_expired(t, fut, deadline, result);
    cio_loop *loop = t->fut.loop;
    rc = cio__timer_heap_reserve(&loop->timers, 1);
    if (rc < 0) return rc;

    expiry e = {.fut = fut};
    e.timer.fire = on_expiry;
    e.timer.index = CIO__TIMER_UNARMED;
    cio__loop_arm_timer(loop, &e.timer, deadline);
    cio__wait rec = awaiting(fut, "future (wait_for)", deadline);
    int cancels_at_entry = t->cancel_requests;
    cio_future_ref(fut);
    int status = wait_done(t, fut, &rec, INT64_MAX);
    cio__loop_disarm_timer(loop, &e.timer);
    if (status < 0)
        rc = status;
    else if (e.fired && fut->state == CIO__CANCELLED && t->cancel_requests <= cancels_at_entry)
        rc = -ETIMEDOUT;
    else
        rc = cio__future_outcome(fut, result);
    cio_future_unref(fut);
    return rc;
}

int cio_wait_for(cio_future *fut, double timeout, void **result) {
    if (isnan(timeout)) return -EINVAL;
    if (isinf(timeout) && timeout > 0) return wait_for_deadline(fut, INT64_MAX, false, result);
    return wait_for_deadline(fut, cio__deadline_after(timeout), !(timeout > 0), result);
}

int cio_wait_for_until(cio_future *fut, double when, void **result) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    if (rc < 0) return rc;
    /* An absolute deadline stays a timer even if it has passed: it then
     * acts on the next iteration in deadline order with other timers, so a
     * chain of calls sharing one deadline sees it in one consistent order. */
    return wait_for_deadline(fut, deadline, false, result);
}
