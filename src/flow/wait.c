/*
 * asyncio.wait: suspend until one, the first failing, or all of a set of
 * futures are done, or a timeout passes. Nothing is cancelled and a
 * timeout is not an error: the caller reads the done and pending sets.
 *
 * One waiter job per future is registered (on the heap when there are many,
 * on the task's stack otherwise); each checks the condition when its future
 * completes and wakes the task once. The timeout is the suspension's own
 * deadline (cio__task_suspend_until). Before returning, every waiter is
 * unlinked from wherever it sits, a future's callback list or the ready
 * queue, so no job outlives this call.
 */
#include <math.h>
#include <string.h>

#include "flow.h"

#define WAITERS_ON_STACK 8

typedef struct wait_waiter wait_waiter;

typedef struct wait_state {
    cio__task *task;
    wait_waiter *waiters;   /* for the unwind at loop close */
    size_t n;
    int on_heap;
    cio_wait_mode mode;
    size_t remaining;
    int woken;
    cio__wait rec;
} wait_state;

/* One per future: the job its completion schedules. */
struct wait_waiter {
    cio__job job;
    wait_state *state;
    cio_future *fut;
};

/* At loop close, a task destroyed inside cio_wait gives back its references
 * on the futures and the waiters' memory (their jobs were already taken out
 * of the futures' lists). */
static void unwind_wait(cio__wait *rec) {
    wait_state *s = CIO__CONTAINER_OF(rec, wait_state, rec);
    for (size_t i = 0; i < s->n; i++) cio__future_unref(s->waiters[i].fut);
    if (s->on_heap) cio__free(s->waiters);
}

static void on_future_done(cio__job *job) {
    wait_waiter *w = CIO__CONTAINER_OF(job, wait_waiter, job);
    wait_state *s = w->state;
    s->remaining--;
    if (s->woken) return;
    int failed = w->fut->state == CIO__DONE_ERROR;
    if (s->mode == CIO_FIRST_COMPLETED || s->remaining == 0 ||
        (s->mode == CIO_FIRST_EXCEPTION && failed)) {
        /* The task resumes in the next iteration, not at once: asyncio's
         * wait resolves a waiter future here, whose callback wakes the
         * task one iteration later, so a future that completes in the
         * meantime is reported done (test_wait_really_done). */
        s->woken = 1;
        cio__task_wake(s->task, 0);
    }
}

/* The timeout (cio__task_suspend_until's deadline) ends the wait. */
static void abandon_wait(cio__wait *rec) {
    CIO__CONTAINER_OF(rec, wait_state, rec)->woken = 1;
}

static int cancel_wait(cio__wait *rec, const char *msg) {
    (void)msg;
    wait_state *s = CIO__CONTAINER_OF(rec, wait_state, rec);
    if (s->woken) return 0;
    s->woken = 1;
    cio__task_wake(s->task, -ECANCELED);
    return 1;
}

static int wait_deadline(cio_future *const *fs, size_t n, cio_wait_mode mode, int64_t deadline,
                         cio_future **done, size_t *ndone, cio_future **pending,
                         size_t *npending) {
    if (ndone) *ndone = 0;
    if (npending) *npending = 0;
    /* Bad arguments before -EPERM (cio.h, convention 2). */
    if (!fs || n == 0) return -EINVAL;
    if (mode != CIO_ALL_COMPLETED && mode != CIO_FIRST_COMPLETED && mode != CIO_FIRST_EXCEPTION)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i]) return -EINVAL;
    int rc;
    cio__task *t = cio__current(&rc);
    if (!t) return rc;
    cio_loop *loop = t->fut.loop;
    for (size_t i = 0; i < n; i++) {
        if (!fs[i]->loop) return -CIO_ELOOPCLOSED;
        if (fs[i]->loop != loop) return -CIO_EWRONGLOOP;
    }
    wait_waiter on_stack[WAITERS_ON_STACK];
    wait_waiter *waiters = on_stack;
    if (n > WAITERS_ON_STACK) {
        waiters = cio__malloc(n * sizeof *waiters);
        if (!waiters) return -ENOMEM;
    }
    wait_state s = {.task = t, .mode = mode, .remaining = n, .waiters = waiters, .n = n,
                    .on_heap = waiters != on_stack};
    s.rec.cancel = cancel_wait;
    s.rec.unwind = unwind_wait;
    s.rec.abandon = abandon_wait;
    s.rec.what = "wait";
    s.rec.kind = CIO__WAIT_WAIT;
    s.rec.object = &s;
    s.rec.deadline = deadline;
    for (size_t i = 0; i < n; i++) {
        waiters[i].state = &s;
        waiters[i].fut = cio_future_ref(fs[i]);
        waiters[i].job.run = on_future_done;
        cio__list_init(&waiters[i].job.link);
        cio__future_add_waiter(fs[i], &waiters[i].job);
    }
    rc = cio__task_suspend_until(t, &s.rec, deadline);
    if (rc == -ETIMEDOUT) rc = 0; /* a timeout is not an error for wait */
    size_t nd = 0, np = 0;
    for (size_t i = 0; i < n; i++) {
        cio__job *job = &waiters[i].job;
        if (cio__link_linked(&job->link)) cio__list_unlink(&job->link);
        if (fs[i]->state != CIO__PENDING) {
            if (done) done[nd] = fs[i];
            nd++;
        } else {
            if (pending) pending[np] = fs[i];
            np++;
        }
        cio_future_unref(waiters[i].fut);
    }
    if (waiters != on_stack) cio__free(waiters);
    if (ndone) *ndone = nd;
    if (npending) *npending = np;
    return rc < 0 ? rc : 0;
}

int cio_wait(cio_future *const *fs, size_t n, cio_wait_mode mode, double timeout,
             cio_future **done, size_t *ndone, cio_future **pending, size_t *npending) {
    if (ndone) *ndone = 0;
    if (npending) *npending = 0;
    if (isnan(timeout)) return -EINVAL;
    int64_t deadline = isinf(timeout) && timeout > 0 ? INT64_MAX : cio__deadline_after(timeout);
    return wait_deadline(fs, n, mode, deadline, done, ndone, pending, npending);
}

int cio_wait_until(cio_future *const *fs, size_t n, cio_wait_mode mode, double when,
                   cio_future **done, size_t *ndone, cio_future **pending, size_t *npending) {
    if (ndone) *ndone = 0;
    if (npending) *npending = 0;
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    if (rc < 0) return rc;
    return wait_deadline(fs, n, mode, deadline, done, ndone, pending, npending);
}
