/*
 * Seed section "run_until_complete vs. run_forever".
 *
 * run_forever runs the loop until something calls stop. If each coroutine
 * stops the loop when it is done, the first one to finish stops it while
 * the others are still waiting: they are cut off, and closing the loop
 * destroys them while pending (asyncio reports "Task was destroyed but it
 * is pending!"). The seed's fix: gather every coroutine into one future and
 * stop the loop from a done callback on it.
 *
 * The Python it mirrors:
 *
 *     async def do_some_work(loop, x):
 *         print('Waiting', x)
 *         await asyncio.sleep(x)
 *         print('Done', x)
 *         loop.stop()                      # 1. the first one stops the loop
 *
 *     asyncio.ensure_future(do_some_work(loop, 0.2))
 *     asyncio.ensure_future(do_some_work(loop, 0.6))
 *     loop.run_forever()                   # returns after 0.2 s
 *     loop.close()                         # Task was destroyed but it is pending!
 *
 *     def done_callback(loop, futu):       # 2. the recommended pattern
 *         loop.stop()
 *
 *     futus = asyncio.gather(do_some_work(0.2), do_some_work(0.6))
 *     futus.add_done_callback(functools.partial(done_callback, loop))
 *     loop.run_forever()                   # returns after 0.6 s, all done
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cio.h>

static cio_loop *loop;
static double start;
static int reports;

static double elapsed(void) { return cio_loop_time(loop) - start; }

typedef struct work {
    int ms;
    int stops_loop; /* 1: calls loop.stop() when done, as in part 1 */
    int finished;
} work;

static void *do_some_work(void *arg) {
    work *w = arg;
    printf("  [%.2f s] Waiting %.1f s\n", elapsed(), w->ms / 1000.0);
    int rc = cio_sleep(w->ms / 1000.0);
    if (rc < 0) return cio_raise(rc);
    printf("  [%.2f s] Done %.1f s\n", elapsed(), w->ms / 1000.0);
    w->finished = 1;
    if (w->stops_loop) {
        printf("  [%.2f s] work(%.1f) stops the loop\n", elapsed(), w->ms / 1000.0);
        cio_loop_stop(loop);
    }
    return NULL;
}

static int spawn_work(work *w, cio_task **taskp) {
    char name[32];
    snprintf(name, sizeof name, "work(%.1f)", w->ms / 1000.0);
    cio_task_options opts = {.name = name};
    return cio_spawn_with(loop, do_some_work, w, &opts, taskp);
}

/* Prints what the loop reports while closing, to stdout, to follow along. */
static void print_report(cio_loop *l, const cio_error_context *ctx, void *arg) {
    (void)l;
    (void)arg;
    reports++;
    printf("  exception handler: %s", ctx->message);
    if (ctx->future && cio_future_is_task(ctx->future))
        printf(" (task '%s')", cio_task_name(ctx->future));
    printf("\n");
}

/* cio_loop_dump_tasks, indented to sit under the line that announces it. */
static int dump_tasks(void) {
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) return -1;
    int n = cio_loop_dump_tasks(loop, mem);
    fclose(mem);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        printf("    %s\n", line);
    free(text);
    return n;
}

static int stop_from_a_coroutine(void) {
    int ok = 1;
    work fast = {.ms = 200, .stops_loop = 1}, slow = {.ms = 600, .stops_loop = 1};
    int rc = spawn_work(&fast, NULL); /* detached: asyncio.ensure_future */
    if (rc == 0) rc = spawn_work(&slow, NULL);
    if (rc == 0) rc = cio_loop_set_exception_handler(loop, print_report, NULL);
    if (rc < 0) {
        fprintf(stderr, "setting up: %s\n", cio_strerror(rc));
        return -1;
    }
    rc = cio_run_forever(loop);
    printf("[%.2f s] run_forever returned (%s); tasks not done: %zu\n", elapsed(),
           cio_strerror(rc), cio_all_tasks(loop, NULL, 0));
    printf("  cio_loop_dump_tasks:\n");
    if (dump_tasks() != 1) ok = 0;
    if (rc < 0 || !fast.finished || slow.finished || cio_all_tasks(loop, NULL, 0) != 1) ok = 0;

    /* Closing the loop now destroys the task still waiting: its remaining
     * code never runs, and the loop says so. */
    printf("[%.2f s] closing the loop\n", elapsed());
    reports = 0;
    cio_loop_close(loop);
    printf("[%.2f s] closed: work(0.6) finished=%d, reports=%d\n", elapsed(), slow.finished,
           reports);
    if (slow.finished || reports != 1) ok = 0;
    return ok ? 0 : -1;
}

/* The done callback on the gather future. */
static void done_callback(cio_future *fut, void *arg) {
    (void)fut;
    (void)arg;
    printf("  [%.2f s] done callback on the gather future: stopping the loop\n", elapsed());
    cio_loop_stop(loop);
}

static int stop_from_gather_callback(void) {
    work fast = {.ms = 200}, slow = {.ms = 600};
    cio_task *tasks[2] = {0};
    cio_future *futus = NULL;
    int ok = 0;
    int rc = spawn_work(&fast, &tasks[0]);
    if (rc == 0) rc = spawn_work(&slow, &tasks[1]);
    if (rc == 0) rc = cio_gather(loop, tasks, 2, 0, &futus);
    if (rc == 0) rc = cio_future_add_done_callback(futus, done_callback, NULL);
    if (rc < 0) {
        fprintf(stderr, "setting up: %s\n", cio_strerror(rc));
        goto out;
    }
    rc = cio_run_forever(loop);
    printf("[%.2f s] run_forever returned (%s); tasks not done: %zu\n", elapsed(),
           cio_strerror(rc), cio_all_tasks(loop, NULL, 0));
    printf("  cio_loop_dump_tasks lists %d task(s)\n", dump_tasks());
    ok = rc == 0 && fast.finished && slow.finished && cio_future_done(futus) &&
         cio_all_tasks(loop, NULL, 0) == 0;
    /* The gather future's outcome: read it, so no error goes unretrieved. */
    if (cio_future_result(futus, NULL) < 0) ok = 0;

out:
    cio_future_unref(futus);
    cio_future_unref(tasks[0]);
    cio_future_unref(tasks[1]);
    return ok ? 0 : -1;
}

int main(void) {
    int status = 0;
    int rc = cio_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "cio_loop_new: %s\n", cio_strerror(rc));
        return 1;
    }
    start = cio_loop_time(loop);
    printf("1. each coroutine calls stop() when done; run_forever:\n");
    if (stop_from_a_coroutine() < 0) status = 1;
    cio_loop_free(loop);

    rc = cio_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "cio_loop_new: %s\n", cio_strerror(rc));
        return 1;
    }
    start = cio_loop_time(loop);
    printf("2. gather both, stop from a done callback on the gather; run_forever:\n");
    if (stop_from_gather_callback() < 0) status = 1;
    cio_loop_free(loop);
    return status;
}
