/*
 * The runner (asyncio.run): one call that makes a loop, runs a main task
 * to its end, cleans up after it and closes the loop.
 *
 * Clean-up follows asyncio's Runner.close: every task still pending is
 * cancelled and the loop runs until all of them are done (a gather with
 * return_exceptions); a task that then ended with an error (not a
 * cancellation) is reported through the exception handler, since nobody
 * else will read it. Then the loop's thread pool, if one was made, is shut
 * down with asyncio's deadline (THREAD_JOIN_TIMEOUT, 300 s): queued work
 * runs, workers are joined. A pool still busy at the deadline is reported;
 * closing the loop then still waits for it (flow/pool.c says why).
 *
 * Ctrl-C follows asyncio.Runner (3.11+). While the main task runs, and
 * only if this is the main thread and SIGINT is at its default, cio_run
 * holds SIGINT on its loop (core/signal.c): the first SIGINT's callback
 * cancels the main task (it runs first in the iteration after the signal,
 * ahead of the callbacks already queued, as a Python signal handler runs
 * at once; core/signal.c); the signal handler itself ends the process on a
 * second SIGINT, so even a loop stuck in its clean-up can be stopped. The
 * hold ends as soon as the main task is done, before the left-overs are
 * cancelled, as Runner.run restores SIGINT before Runner.close: a SIGINT
 * during that clean-up has the default action. The outcome is asyncio's:
 * the main task ended cancelled by that one request -> -CIO_EINTERRUPTED
 * (KeyboardInterrupt); it swallowed the cancellation (uncancel) -> its own
 * outcome. A SIGINT taken after the main task had finished (its callback
 * found nothing to cancel) is raised again at the very end, under the
 * restored disposition, as Python's KeyboardInterrupt would surface there.
 */
#include <signal.h>

#include "flow.h"

static int cancel_leftovers(cio_loop *loop) {
    size_t n = cio_all_tasks(loop, NULL, 0);
    if (n == 0) return 0;
    cio_task **tasks = cio__malloc(n * sizeof *tasks);
    if (!tasks) return -ENOMEM;
    n = cio_all_tasks(loop, tasks, n);
    for (size_t i = 0; i < n; i++) cio_task_cancel(tasks[i], NULL);
    cio_future *all;
    int rc = cio_gather(loop, tasks, n, CIO_RETURN_EXCEPTIONS, &all);
    if (rc == 0) {
        rc = cio_run_until_complete(loop, all, NULL);
        for (size_t i = 0; i < n; i++) {
            if (cio_future_cancelled(tasks[i])) continue;
            int err = cio_future_error(tasks[i]);
            if (err < 0)
                cio__report(loop, "unhandled error during cio_run() shutdown", err, tasks[i]);
        }
        cio_future_unref(all);
    }
    cio__free(tasks);
    return rc;
}

#define THREAD_JOIN_TIMEOUT 300.0

static void *shut_pool_down(void *arg) {
    (void)arg;
    int rc = cio_pool_shutdown(THREAD_JOIN_TIMEOUT);
    if (rc == -ETIMEDOUT)
        cio__report(cio_running_loop(),
                    "the thread pool did not finish joining its threads within 300 seconds", rc,
                    NULL);
    return NULL;
}

static void shutdown_pool(cio_loop *loop) {
    if (!loop->pool) return;
    cio_task *t;
    if (cio_spawn(loop, shut_pool_down, NULL, &t) < 0) return;
    (void)cio_run_until_complete(loop, t, NULL);
    cio_future_unref(t);
}

typedef struct ctrl_c {
    cio_task *main;
    int cancelled;   /* the first SIGINT cancelled the main task */
} ctrl_c;

/* The first SIGINT, from the loop (asyncio Runner._on_sigint). */
static void on_sigint(cio_loop *loop, void *arg) {
    (void)loop;
    ctrl_c *c = arg;
    if (c->cancelled || cio_future_done(c->main)) return;
    c->cancelled = 1;
    cio_task_cancel(c->main, "interrupted by SIGINT");
}

int cio_run_with(cio_coro_fn main, void *arg, const cio_loop_options *opts, void **result) {
    if (!main) return -EINVAL;
    if (cio_running_loop()) return -CIO_ELOOPRUNNING;
    cio_loop *loop;
    int rc = cio_loop_new_with(opts, &loop);
    if (rc < 0) return rc;
    cio_task *task;
    int raise_again = 0;
    rc = cio_spawn(loop, main, arg, &task);
    if (rc == 0) {
        ctrl_c c = {.main = task};
        /* Failing to hold SIGINT (out of memory) only leaves Ctrl-C with
         * its default action. */
        int held = opts && opts->keep_sigint ? 0 : cio__signal_hold_sigint(loop, on_sigint, &c);
        rc = cio_run_until_complete(loop, task, result);
        if (held > 0) {
            int seen = cio__signal_release_sigint(loop, on_sigint);
            /* asyncio: KeyboardInterrupt if the task ended cancelled and
             * uncancel() then leaves no other request. */
            if (c.cancelled && rc == -ECANCELED && cio_task_cancelling(task) <= 1)
                rc = -CIO_EINTERRUPTED;
            else if (seen > 0 && !c.cancelled)
                raise_again = 1;
        }
        cio_future_unref(task);
    }
    /* Clean-up failing (out of memory) still closes the loop, which frees
     * whatever is left. */
    cancel_leftovers(loop);
    shutdown_pool(loop);
    cio_loop_free(loop);
    if (raise_again) raise(SIGINT);
    return rc;
}

int cio_run(cio_coro_fn main, void *arg, void **result) {
    return cio_run_with(main, arg, NULL, result);
}
