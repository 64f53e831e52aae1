/*
 * asyncio.wait: suspend until one, the first failing, or all of a set of
 * futures are done, or a timeout passes. Nothing is cancelled and a
 * timeout is not an error: the caller reads the done and pending sets.
 *
 * One waiter job per future is registered (on the heap when there are many,
 * on the task's stack otherwise); each checks the condition when its future
 * completes and wakes the task once. Before returning, every waiter is
 * unlinked from wherever it sits, a future's callback list or the ready
 * queue, so no job outlives this call.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

#define WAITERS_ON_STACK 8

typedef struct wait_state wait_state;

typedef struct wait_waiter {
    cio__job job;
    wait_state *state;
} wait_waiter;

struct wait_state {
    cio__task *task;
    cio_wait_mode mode;
    size_t remaining;
    int woken;
    cio__timer timer;
    cio__wait rec;
};

/* direct: called from a job the loop runs, so the task can resume at once;
 * otherwise (from a cancel, possibly inside another task) it is queued. */
static void wake_once(wait_state *s, int status, bool direct) {
    if (s->woken) return;
    s->woken = 1;
    cio__loop_disarm_timer(s->task->fut.loop, &s->timer);
    if (direct)
        cio__task_resume(s->task, status);
    else
        cio__task_wake(s->task, status);
}

typedef struct exception_waiter {
    wait_waiter base;
    cio_future *fut;
} exception_waiter;

static void on_future_done_checked(cio__job *job) {
    exception_waiter *w = CIO__CONTAINER_OF(job, exception_waiter, base.job);
    wait_state *s = w->base.state;
    s->remaining--;
    if (s->woken) return;
    int failed = w->fut->state == CIO__DONE_ERROR;
    if (s->mode == CIO_FIRST_COMPLETED || s->remaining == 0 ||
        (s->mode == CIO_FIRST_EXCEPTION && failed))
        wake_once(s, 0, true);
}

static void on_timeout(cio__timer *timer) {
    wait_state *s = CIO__CONTAINER_OF(timer, wait_state, timer);
    wake_once(s, 0, true);
}

static int cancel_wait(cio__wait *rec, const char *msg) {
    (void)msg;
    wait_state *s = CIO__CONTAINER_OF(rec, wait_state, rec);
    if (s->woken) return 0;
    wake_once(s, -ECANCELED, false);
    return 1;
}

static int wait_deadline(cio_future *const *fs, size_t n, cio_wait_mode mode, int64_t deadline,
                         cio_future **done, size_t *ndone, cio_future **pending,
                         size_t *npending) {
    int rc;
    cio__task *t = cio__current(&rc);
    if (ndone) *ndone = 0;
    if (npending) *npending = 0;
    if (!t) return rc;
    if (!fs || n == 0) return -EINVAL;
    if (mode != CIO_ALL_COMPLETED && mode != CIO_FIRST_COMPLETED && mode != CIO_FIRST_EXCEPTION)
        return -EINVAL;
    cio_loop *loop = t->fut.loop;
    for (size_t i = 0; i < n; i++) {
        if (!fs[i]) return -EINVAL;
        if (fs[i]->loop != loop) return -CIO_EWRONGLOOP;
    }
    bool timed = deadline != INT64_MAX;
    if (timed) {
        rc = cio__timer_heap_reserve(&loop->timers, 1);
        if (rc < 0) return rc;
    }
    exception_waiter on_stack[WAITERS_ON_STACK];
    exception_waiter *waiters = on_stack;
    if (n > WAITERS_ON_STACK) {
        waiters = cio__malloc(n * sizeof *waiters);
        if (!waiters) return -ENOMEM;
    }
    wait_state s = {.task = t, .mode = mode, .remaining = n};
    s.timer.index = CIO__TIMER_UNARMED;
    s.timer.fire = on_timeout;
    s.rec.cancel = cancel_wait;
    s.rec.what = "wait";
    s.rec.deadline = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        waiters[i].base.state = &s;
        waiters[i].fut = cio_future_retain(fs[i]);
        waiters[i].base.job.run = on_future_done_checked;
        cio__list_init(&waiters[i].base.job.link);
        cio__future_add_waiter(fs[i], &waiters[i].base.job);
    }
    if (timed) {
        s.rec.deadline = deadline;
        cio__loop_arm_timer(loop, &s.timer, deadline);
    }
    rc = cio__task_suspend(t, &s.rec);
    cio__loop_disarm_timer(loop, &s.timer);
    size_t nd = 0, np = 0;
    for (size_t i = 0; i < n; i++) {
        cio__job *job = &waiters[i].base.job;
        if (cio__link_linked(&job->link)) cio__list_unlink(&job->link);
        if (fs[i]->state != CIO__PENDING) {
            if (done) done[nd] = fs[i];
            nd++;
        } else {
            if (pending) pending[np] = fs[i];
            np++;
        }
        cio_future_release(waiters[i].fut);
    }
    if (waiters != on_stack) cio__free(waiters);
    if (ndone) *ndone = nd;
    if (npending) *npending = np;
    return rc < 0 ? rc : 0;
}

int cio_wait(cio_future *const *fs, size_t n, cio_wait_mode mode, double timeout,
             cio_future **done, size_t *ndone, cio_future **pending, size_t *npending) {
    if (isnan(timeout)) return -EINVAL;
    int64_t deadline = INT64_MAX;
    if (!(isinf(timeout) && timeout > 0)) {
        int64_t now = cio__clock_ns();
        int64_t d = timeout <= 0 ? 0 : cio__seconds_to_ns(timeout);
        deadline = d > INT64_MAX - now ? INT64_MAX - 1 : now + d;
    }
    return wait_deadline(fs, n, mode, deadline, done, ndone, pending, npending);
}

int cio_wait_until(cio_future *const *fs, size_t n, cio_wait_mode mode, double when,
                   cio_future **done, size_t *ndone, cio_future **pending, size_t *npending) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    if (rc < 0) return rc;
    return wait_deadline(fs, n, mode, deadline, done, ndone, pending, npending);
}
