/*
 * run_until_complete: runs the loop until one future is done. As asyncio
 * does, it registers a done callback on the future that stops the loop, so
 * callbacks scheduled together with that completion still run.
 */
#include "core.h"

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
    if (loop->generation != cio__fork_generation) return -CIO_EFORKED;
    if (loop->closed || loop->closing) return -CIO_ELOOPCLOSED;
    if (loop->running || cio_running_loop()) return -CIO_ELOOPRUNNING;
    if (!fut->loop) return -CIO_ELOOPCLOSED;
    if (fut->loop != loop) return -CIO_EWRONGLOOP;
    /* The run starts before the stopper goes into the future's waiters (or
     * the ready queue): a dump from another thread reads both until then. */
    int rc = cio__loop_start_run(loop);
    if (rc < 0) return rc;
    stopper s = {.loop = loop};
    s.job.run = stop_loop;
    cio__list_init(&s.job.link);
    cio_future_ref(fut);
    cio__future_add_waiter(fut, &s.job);
    rc = cio__loop_run_started(loop);
    if (rc == 0 && !cio_future_done(fut)) rc = -CIO_ESTOPPED;
    /* If the loop stopped some other way, the stopper is still registered
     * (or queued): take it out before this frame goes away, and before the
     * run ends (a dump from another thread may read the ready queue then). */
    if (cio__link_linked(&s.job.link)) cio__list_unlink(&s.job.link);
    if (rc == 0) rc = cio__future_outcome(fut, result);
    cio_future_unref(fut);
    cio__loop_end_run(loop);
    return rc;
}

