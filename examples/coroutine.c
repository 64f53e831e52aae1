/*
 * Seed sections "Coroutines" and "Running Coroutines" (run_until_complete).
 *
 * A coroutine is a plain C function run by a task on its own stack; where
 * Python writes `await`, the C function calls something that suspends the
 * task (here cio_sleep). Spawning a task does not run it: it starts only
 * once the loop runs. run_until_complete runs the loop until that task is
 * done and hands back its result.
 *
 * The Python it mirrors:
 *
 *     async def do_some_work(x):
 *         print("Waiting", x)
 *         await asyncio.sleep(x)
 *         return x
 *
 *     loop = asyncio.new_event_loop()
 *     task = loop.create_task(do_some_work(0.5))  # ensure_future
 *     result = loop.run_until_complete(task)
 *     loop.close()
 */
#include <stdint.h>
#include <stdio.h>

#include <cio.h>

static cio_loop *loop;
static double start;

static double elapsed(void) { return cio_loop_time(loop) - start; }

/* async def do_some_work(x): the delay comes in milliseconds, packed in arg. */
static void *do_some_work(void *arg) {
    int ms = (int)(intptr_t)arg;
    printf("  [%.2f s] Waiting %.1f s\n", elapsed(), ms / 1000.0);
    int rc = cio_sleep(ms / 1000.0); /* await asyncio.sleep(x) */
    if (rc < 0) return cio_raise(rc);
    printf("  [%.2f s] Done waiting %.1f s\n", elapsed(), ms / 1000.0);
    return (void *)(intptr_t)ms;
}

int main(void) {
    int rc = cio_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "cio_loop_new: %s\n", cio_strerror(rc));
        return 1;
    }
    start = cio_loop_time(loop);
    int status = 1;
    cio_task *task = NULL;

    /* A coroutine function has a fixed C type: that is the compile-time
     * version of asyncio.iscoroutinefunction(do_some_work). */
    cio_coro_fn fn = do_some_work;

    /* Calling it outside a task is not running it as a coroutine: the
     * suspending call inside refuses with -EPERM instead of blocking. */
    printf("calling do_some_work() directly, outside any task:\n");
    rc = cio_sleep(0.5);
    printf("  cio_sleep outside a task returns %d (%s)\n", rc, cio_strerror(rc));
    if (rc != -EPERM) goto out;

    /* task = loop.create_task(do_some_work(0.5)): scheduled, not started. */
    rc = cio_spawn(loop, fn, (void *)(intptr_t)500, &task);
    if (rc < 0) {
        fprintf(stderr, "cio_spawn: %s\n", cio_strerror(rc));
        goto out;
    }
    printf("spawned task '%s': done=%d (nothing runs until the loop does)\n",
           cio_task_name(task), cio_future_done(task));

    /* loop.run_until_complete(task) */
    printf("run_until_complete:\n");
    double t0 = cio_loop_time(loop);
    void *result = NULL;
    rc = cio_run_until_complete(loop, task, &result);
    double took = cio_loop_time(loop) - t0;
    if (rc < 0) {
        fprintf(stderr, "run_until_complete: %s\n", cio_strerror(rc));
        goto out;
    }
    printf("run_until_complete returned after %.2f s: task done=%d, result %d\n", took,
           cio_future_done(task), (int)(intptr_t)result);
    if ((intptr_t)result != 500 || took < 0.5) goto out;
    status = 0;

out:
    cio_future_unref(task);
    cio_loop_free(loop); /* loop.close() */
    return status;
}
