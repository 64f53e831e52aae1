/*
 * Timeout scopes (asyncio.timeout and timeout_at).
 *
 * A scope arms a timer for its deadline. When the timer fires, the scope
 * cancels its task (counting one more cancellation request) and becomes
 * "expiring". The code inside the scope sees -ECANCELED from the call it is
 * suspended in and passes it to cio_timeout_exit, which takes its own
 * request back with uncancel(): if no other request remains beyond those
 * that were outstanding when the scope was entered, the cancellation was
 * the scope's own and the exit turns -ECANCELED into -ETIMEDOUT; otherwise
 * an outer cancellation (or an outer scope's expiry) is under way and
 * -ECANCELED passes through. This is asyncio's rule, and it is what makes
 * scopes nest.
 *
 * The scope lives in the caller's cio_timeout (on the task's stack), so
 * entering one allocates nothing.
 */
#include <math.h>

#include "flow.h"

enum scope_state { CREATED = 0, ENTERED, EXPIRING, EXPIRED, EXITED };

typedef struct scope {
    cio__timer timer;
    cio__task *task;
    int64_t when;             /* INT64_MAX: no deadline */
    int cancelling_at_entry;
    int state;
} scope;

_Static_assert(sizeof(scope) <= sizeof(cio_timeout), "cio_timeout is too small");

static scope *scope_of(cio_timeout *t) {
    return (scope *)(void *)t;
}

static void on_scope_expiry(cio__timer *timer) {
    scope *s = CIO__CONTAINER_OF(timer, scope, timer);
    if (s->state != ENTERED) return;
    s->state = EXPIRING;
    cio__task_cancel(s->task, NULL);
}

static int arm(scope *s, int64_t when) {
    cio_loop *loop = s->task->fut.loop;
    cio__loop_disarm_timer(loop, &s->timer);
    s->when = when;
    if (when == INT64_MAX) return 0;
    /* A deadline already passed expires through the ready queue, as
     * asyncio's reschedule() does with call_soon(on_timeout): the expiry
     * then comes before the task's own next step, so the first suspension
     * in the body returns -ECANCELED. Through the heap it would only be
     * moved to the ready queue on the next iteration, behind that step. */
    if (when <= cio__clock_ns()) {
        cio__loop_queue_timer(loop, &s->timer, when);
        return 0;
    }
    int rc = cio__timer_heap_reserve(&loop->timers, 1);
    if (rc < 0) return rc;
    cio__loop_arm_timer(loop, &s->timer, when);
    return 0;
}

static int enter_at(cio_timeout *t, int64_t when) {
    if (!t) return -EINVAL;
    int rc;
    cio__task *task = cio__current(&rc);
    if (!task) return rc;
    scope *s = scope_of(t);
    s->timer.index = CIO__TIMER_UNARMED;
    s->timer.fire = on_scope_expiry;
    s->timer.job.run = NULL;
    cio__list_init(&s->timer.job.link);
    s->task = task;
    s->cancelling_at_entry = task->cancel_requests;
    s->state = ENTERED;
    rc = arm(s, when);
    if (rc < 0) s->state = EXITED;
    return rc;
}

int cio_timeout_enter(cio_timeout *t, double delay) {
    if (isnan(delay)) return -EINVAL;
    if (isinf(delay) && delay > 0) return enter_at(t, INT64_MAX);
    return enter_at(t, cio__deadline_after(delay));
}

int cio_timeout_enter_at(cio_timeout *t, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    if (rc < 0) return rc;
    return enter_at(t, deadline);
}

int cio_timeout_reschedule(cio_timeout *t, double when) {
    if (!t) return -EINVAL;
    scope *s = scope_of(t);
    /* asyncio: "Timeout has not been entered" / "Cannot change state of
     * expiring Timeout". */
    if (s->state != ENTERED) return -CIO_EINVALSTATE;
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    if (rc < 0) return rc;
    return arm(s, deadline);
}

double cio_timeout_when(const cio_timeout *t) {
    if (!t) return NAN;
    const scope *s = (const scope *)(const void *)t;
    return s->when == INT64_MAX ? CIO_NO_TIMEOUT : (double)s->when / 1e9;
}

int cio_timeout_expired(const cio_timeout *t) {
    if (!t) return 0;
    const scope *s = (const scope *)(const void *)t;
    return s->state == EXPIRING || s->state == EXPIRED;
}

int cio_timeout_exit(cio_timeout *t, int rc) {
    if (!t) return -EINVAL;
    scope *s = scope_of(t);
    if (s->state != ENTERED && s->state != EXPIRING) return -CIO_EINVALSTATE;
    if (cio_current_task() != &s->task->fut) return -CIO_EINVALSTATE;
    cio__loop_disarm_timer(s->task->fut.loop, &s->timer);
    if (s->state == EXPIRING) {
        s->state = EXPIRED;
        int left = cio_task_uncancel(&s->task->fut);
        if (left <= s->cancelling_at_entry && rc == -ECANCELED) return -ETIMEDOUT;
    } else {
        s->state = EXITED;
    }
    return rc;
}
