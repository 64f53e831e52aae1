/*
 * Seed section "Multiple Coroutines": gather.
 *
 * Several coroutines run at once in one loop. gather wraps them in one
 * future that completes when the last of them is done: the whole takes as
 * long as the longest coroutine, not the sum of them all. The results come
 * back in the order the coroutines were given, whatever order they finished
 * in. First two coroutines named one by one, then a list built in a loop.
 *
 * The Python it mirrors:
 *
 *     loop.run_until_complete(asyncio.gather(do_some_work(0.3), do_some_work(0.6)))
 *
 *     coros = [do_some_work(0.1 * (5 - i)) for i in range(5)]
 *     results = loop.run_until_complete(asyncio.gather(*coros))
 */
#include <stdint.h>
#include <stdio.h>

#include <cio.h>

static cio_loop *loop;
static double start;

static double elapsed(void) { return cio_loop_time(loop) - start; }

static void *do_some_work(void *arg) {
    int ms = (int)(intptr_t)arg;
    printf("  [%.2f s] Waiting %.1f s\n", elapsed(), ms / 1000.0);
    int rc = cio_sleep(ms / 1000.0);
    if (rc < 0) return cio_raise(rc);
    printf("  [%.2f s] Done waiting %.1f s\n", elapsed(), ms / 1000.0);
    return (void *)(intptr_t)ms;
}

/* Spawns one task per delay, gathers them, runs the loop until the gather
 * future is done and prints the results. Returns 0 if everything went as
 * asyncio says it should. */
static int gather_all(const int *delays_ms, size_t n) {
    cio_task *tasks[8] = {0};
    cio_future *all = NULL;
    int status = -1, rc = 0;
    int longest = 0, sum = 0;

    if (n > sizeof tasks / sizeof tasks[0]) return -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = cio_spawn(loop, do_some_work, (void *)(intptr_t)delays_ms[i], &tasks[i]);
        if (delays_ms[i] > longest) longest = delays_ms[i];
        sum += delays_ms[i];
    }
    if (rc == 0) rc = cio_gather(loop, tasks, n, 0, &all); /* asyncio.gather(*tasks) */
    if (rc < 0) {
        fprintf(stderr, "setting up the gather: %s\n", cio_strerror(rc));
        goto out;
    }

    double t0 = cio_loop_time(loop);
    void *result = NULL;
    rc = cio_run_until_complete(loop, all, &result);
    double took = cio_loop_time(loop) - t0;
    if (rc < 0) {
        fprintf(stderr, "gather: %s\n", cio_strerror(rc));
        goto out;
    }

    /* The gather result: one cio_outcome per task, in argument order. */
    const cio_outcome *out = result;
    printf("  results, in argument order:");
    int in_order = 1;
    for (size_t i = 0; i < n; i++) {
        printf(" %d", (int)(intptr_t)out[i].value);
        if (out[i].error != 0 || (intptr_t)out[i].value != delays_ms[i]) in_order = 0;
    }
    printf("\n");
    printf("  gather of %zu took %.2f s: the longest (%.2f s), not the sum (%.2f s)\n", n, took,
           longest / 1000.0, sum / 1000.0);
    /* Generous bounds: never shorter than the longest task; well short of
     * the sum (the tasks really ran at the same time). */
    if (in_order && took >= longest / 1000.0 && took < longest / 1000.0 + (sum - longest) / 2000.0)
        status = 0;

out:
    cio_future_unref(all);
    for (size_t i = 0; i < n; i++) cio_future_unref(tasks[i]);
    return status;
}

int main(void) {
    int rc = cio_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "cio_loop_new: %s\n", cio_strerror(rc));
        return 1;
    }
    int status = 0;

    /* gather(do_some_work(0.3), do_some_work(0.6)) */
    start = cio_loop_time(loop);
    printf("gather(do_some_work(0.3), do_some_work(0.6)):\n");
    static const int two[] = {300, 600};
    if (gather_all(two, 2) < 0) status = 1;

    /* coros = [do_some_work(0.1 * (5 - i)) for i in range(5)]; gather(*coros) */
    start = cio_loop_time(loop);
    printf("gather(*[do_some_work(0.1 * (5 - i)) for i in range(5)]):\n");
    int list[5];
    for (int i = 0; i < 5; i++) list[i] = 100 * (5 - i);
    if (gather_all(list, 5) < 0) status = 1;

    cio_loop_free(loop);
    return status;
}
