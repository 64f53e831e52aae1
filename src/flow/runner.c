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
 */
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

int cio_run_with(cio_coro_fn main, void *arg, const cio_loop_options *opts, void **result) {
    if (!main) return -EINVAL;
    if (cio_running_loop()) return -CIO_ELOOPRUNNING;
    cio_loop *loop;
    int rc = cio_loop_new_with(opts, &loop);
    if (rc < 0) return rc;
    cio_task *task;
    rc = cio_spawn(loop, main, arg, &task);
    if (rc == 0) {
        rc = cio_run_until_complete(loop, task, result);
        cio_future_unref(task);
    }
    /* Clean-up failing (out of memory) still closes the loop, which frees
     * whatever is left. */
    cancel_leftovers(loop);
    shutdown_pool(loop);
    cio_loop_free(loop);
    return rc;
}

int cio_run(cio_coro_fn main, void *arg, void **result) {
    return cio_run_with(main, arg, NULL, result);
}
