/*
 * cio_sleep: a timer that lives on the sleeping task's stack.
 *
 * sleep(0) is asyncio's bare yield: the task goes to the back of the ready
 * queue and resumes on the next iteration, after one poll for I/O.
 */
#include <math.h>

#include "flow.h"

typedef struct sleeper {
    cio__timer timer;
    cio__task *task;
    cio__wait rec;
} sleeper;

/* Runs from the ready queue: the task resumes right away. */
static void wake_sleeper(cio__timer *timer) {
    sleeper *s = CIO__CONTAINER_OF(timer, sleeper, timer);
    cio__task_resume(s->task, 0);
}

static int cancel_sleep(cio__wait *wait, const char *msg) {
    (void)msg;
    sleeper *s = CIO__CONTAINER_OF(wait, sleeper, rec);
    cio__loop_disarm_timer(s->task->fut.loop, &s->timer);
    cio__task_wake(s->task, -ECANCELED);
    return 1;
}

/* Out of line, so that cio_sleep(0), the hottest yield, does not set up
 * the frame of a timed sleep (its wait record and timer). */
__attribute__((noinline)) static int sleep_until_ns(cio__task *t, int64_t when) {
    cio_loop *loop = t->fut.loop;
    int rc = cio__timer_heap_reserve(&loop->timers, 1);
    if (rc < 0) return rc;
    sleeper s = {.task = t};
    s.timer.fire = wake_sleeper;
    s.timer.index = CIO__TIMER_UNARMED;
    s.rec.cancel = cancel_sleep;
    s.rec.what = "sleep";
    s.rec.kind = CIO__WAIT_SLEEP;
    s.rec.deadline = when;
    cio__loop_arm_timer(loop, &s.timer, when);
    rc = cio__task_suspend(t, &s.rec);
    cio__loop_disarm_timer(loop, &s.timer);
    return rc;
}

int cio_sleep(double delay) {
    if (isnan(delay)) return -EINVAL; /* bad arguments before -EPERM */
    int rc;
    cio__task *t = cio__current(&rc);
    if (!t) return rc;
    if (delay <= 0) return cio__task_yield(t);
    return sleep_until_ns(t, cio__deadline_after(delay));
}

int cio_sleep_until(double when) {
    if (isnan(when)) return -EINVAL;
    int rc;
    cio__task *t = cio__current(&rc);
    if (!t) return rc;
    int64_t w = cio__seconds_to_ns(when);
    if (w <= cio__clock_ns()) return cio__task_yield(t);
    return sleep_until_ns(t, w);
}
