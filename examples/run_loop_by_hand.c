/*
 * Seed section "Running Coroutines", second way: starting the loop by hand.
 *
 * Instead of run_until_complete, the task is scheduled first and the loop
 * is then run with run_forever; a done callback on the task stops the loop
 * once the task finishes. The loop is not closed by stopping: it runs a
 * second task afterwards, this time with run_until_complete, and both ways
 * give the same result.
 *
 * The Python it mirrors:
 *
 *     task = asyncio.ensure_future(do_some_work(0.4), loop=loop)
 *     task.add_done_callback(lambda t: loop.stop())
 *     loop.run_forever()            # returns once the callback stopped it
 *     print(task.result())
 *     print(loop.run_until_complete(do_some_work(0.2)))
 */
#include <stdint.h>
#include <stdio.h>

#include <cio.h>

static cio_loop *loop;
static double start;

static double elapsed(void) { return cio_loop_time(loop) - start; }

static void *do_some_work(void *arg) {
    int ms = (int)(intptr_t)arg;
    printf("  [%.2f s] %s: Waiting %.1f s\n", elapsed(), cio_task_name(cio_current_task()),
           ms / 1000.0);
    int rc = cio_sleep(ms / 1000.0);
    if (rc < 0) return cio_raise(rc);
    printf("  [%.2f s] %s: done\n", elapsed(), cio_task_name(cio_current_task()));
    return (void *)(intptr_t)ms;
}

/* The done callback: runs from the loop once the task is done. */
static void stop_loop(cio_future *fut, void *arg) {
    (void)arg;
    printf("  [%.2f s] done callback of '%s': stopping the loop\n", elapsed(),
           cio_task_name(fut));
    cio_loop_stop(loop);
}

int main(void) {
    int rc = cio_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "cio_loop_new: %s\n", cio_strerror(rc));
        return 1;
    }
    start = cio_loop_time(loop);
    int status = 1;
    cio_task *first = NULL, *second = NULL;
    void *result = NULL;

    /* 1. Schedule the task, hook the stop on it, run the loop by hand. */
    rc = cio_spawn(loop, do_some_work, (void *)(intptr_t)400, &first);
    if (rc == 0) rc = cio_future_add_done_callback(first, stop_loop, NULL);
    if (rc < 0) {
        fprintf(stderr, "spawn: %s\n", cio_strerror(rc));
        goto out;
    }
    printf("[%.2f s] run_forever, with a done callback on '%s' that stops the loop\n",
           elapsed(), cio_task_name(first));
    rc = cio_run_forever(loop);
    if (rc < 0) {
        fprintf(stderr, "run_forever: %s\n", cio_strerror(rc));
        goto out;
    }
    rc = cio_future_result(first, &result);
    printf("[%.2f s] run_forever returned: running=%d closed=%d, '%s' done=%d result %d\n",
           elapsed(), cio_loop_is_running(loop), cio_loop_is_closed(loop),
           cio_task_name(first), cio_future_done(first), (int)(intptr_t)result);
    if (rc < 0 || (intptr_t)result != 400) goto out;

    /* 2. The stopped loop is still usable: the first way, run_until_complete. */
    rc = cio_spawn(loop, do_some_work, (void *)(intptr_t)200, &second);
    if (rc < 0) {
        fprintf(stderr, "spawn: %s\n", cio_strerror(rc));
        goto out;
    }
    printf("[%.2f s] same loop, run_until_complete on '%s'\n", elapsed(), cio_task_name(second));
    rc = cio_run_until_complete(loop, second, &result);
    if (rc < 0) {
        fprintf(stderr, "run_until_complete: %s\n", cio_strerror(rc));
        goto out;
    }
    printf("[%.2f s] run_until_complete returned: '%s' result %d\n", elapsed(),
           cio_task_name(second), (int)(intptr_t)result);
    if ((intptr_t)result != 200) goto out;
    status = 0;

out:
    cio_future_unref(first);
    cio_future_unref(second);
    cio_loop_free(loop);
    return status;
}
