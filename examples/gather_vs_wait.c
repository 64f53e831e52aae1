/*
 * Seed section "gather vs. wait".
 *
 * Both wait for several futures; they differ in what they give back and in
 * what they do to the futures (the StackOverflow answer the seed points to):
 *
 *   gather  high level: one future for the whole group; its result is the
 *           list of results in argument order; return_exceptions puts an
 *           error in its place instead of failing; cancelling the gather
 *           cancels every child.
 *   wait    low level: returns two sets, done and pending; return_when
 *           (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED) and a timeout
 *           decide when; it never cancels anything and never fails on a
 *           timeout: what is pending keeps running.
 *
 * The Python it mirrors (inside a main coroutine):
 *
 *     results = await asyncio.gather(work(0.3), work(0.1), work(0.2))
 *     results = await asyncio.gather(work(0.2), fail(0.1), work(0.3),
 *                                    return_exceptions=True)
 *     g = asyncio.gather(work(0.2), work(0.3)); g.cancel()  # children too
 *
 *     tasks = [create_task(work(x)) for x in (0.4, 0.1, 0.2)]
 *     done, pending = await asyncio.wait(tasks, timeout=1.0,
 *                                        return_when=FIRST_COMPLETED)
 *     done, pending = await asyncio.wait(pending, timeout=0.15)
 *     # nothing was cancelled: the last one still finishes
 */
#include <stdint.h>
#include <stdio.h>

#include <cio.h>

static cio_loop *loop;
static double start;

static double elapsed(void) { return cio_loop_time(loop) - start; }

typedef struct job {
    int ms;    /* how long it works */
    int fails; /* 1: ends with -EIO instead of a result */
} job;

/* The coroutine: works ms milliseconds, returns ms / 100 (3 for 0.3 s). */
static void *work(void *arg) {
    const job *j = arg;
    const char *me = cio_task_name(cio_current_task());
    int rc = cio_sleep(j->ms / 1000.0);
    if (rc < 0) {
        printf("    [%.2f s] %s: %s\n", elapsed(), me, cio_strerror(rc));
        return cio_raise(rc);
    }
    if (j->fails) {
        printf("    [%.2f s] %s fails\n", elapsed(), me);
        return cio_raise(-EIO);
    }
    printf("    [%.2f s] %s done\n", elapsed(), me);
    return (void *)(intptr_t)(j->ms / 100);
}

/* Spawns one task per job, named after its delay: "w(0.3)". */
static int spawn_jobs(const job *jobs, size_t n, cio_task **tasks) {
    for (size_t i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "%s(%.1f)", jobs[i].fails ? "fail" : "w", jobs[i].ms / 1000.0);
        cio_task_options opts = {.name = name};
        int rc = cio_spawn_with(loop, work, (void *)&jobs[i], &opts, &tasks[i]);
        if (rc < 0) return rc;
    }
    return 0;
}

static void release_all(cio_future **fs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        cio_future_unref(fs[i]);
        fs[i] = NULL;
    }
}

static void print_set(const char *label, cio_future **fs, size_t n) {
    printf("%s", label);
    for (size_t i = 0; i < n; i++) printf(" %s", cio_task_name(fs[i]));
    if (n == 0) printf(" (none)");
}

/* The outcomes of a gather, in argument order: "3 1 2", or an error name. */
static void print_outcomes(const cio_outcome *out, size_t n) {
    printf("  [%.2f s] results in argument order:", elapsed());
    for (size_t i = 0; i < n; i++) {
        if (out[i].error) printf(" [%s]", cio_strerror(out[i].error));
        else printf(" %d", (int)(intptr_t)out[i].value);
    }
    printf("\n");
}

static int gather_in_order(void) {
    static const job jobs[] = {{300, 0}, {100, 0}, {200, 0}};
    cio_task *t[3] = {0};
    cio_future *g = NULL;
    void *res = NULL;
    int ok = 0;
    start = cio_loop_time(loop);
    printf("gather(w(0.3), w(0.1), w(0.2)):\n");
    if (spawn_jobs(jobs, 3, t) < 0 || cio_gather(loop, t, 3, 0, &g) < 0) goto out;
    if (cio_await(g, &res) < 0) goto out;
    const cio_outcome *o = res;
    print_outcomes(o, 3);
    ok = o[0].value == (void *)3 && o[1].value == (void *)1 && o[2].value == (void *)2;
out:
    cio_future_unref(g);
    release_all(t, 3);
    return ok;
}

static int gather_return_exceptions(void) {
    static const job jobs[] = {{200, 0}, {100, 1}, {300, 0}};
    cio_task *t[3] = {0};
    cio_future *g = NULL;
    void *res = NULL;
    int ok = 0;
    start = cio_loop_time(loop);
    printf("gather(w(0.2), fail(0.1), w(0.3), return_exceptions=True):\n");
    if (spawn_jobs(jobs, 3, t) < 0) goto out;
    if (cio_gather(loop, t, 3, CIO_RETURN_EXCEPTIONS, &g) < 0) goto out;
    if (cio_await(g, &res) < 0) goto out;
    const cio_outcome *o = res;
    print_outcomes(o, 3);
    ok = o[0].value == (void *)2 && o[1].error == -EIO && o[2].value == (void *)3;
out:
    cio_future_unref(g);
    release_all(t, 3);
    return ok;
}

static int gather_cancel(void) {
    static const job jobs[] = {{200, 0}, {300, 0}};
    cio_task *t[2] = {0};
    cio_future *g = NULL;
    int ok = 0;
    start = cio_loop_time(loop);
    printf("g = gather(w(0.2), w(0.3)); after 0.1 s, g.cancel():\n");
    if (spawn_jobs(jobs, 2, t) < 0 || cio_gather(loop, t, 2, 0, &g) < 0) goto out;
    if (cio_sleep(0.1) < 0) goto out;
    printf("  [%.2f s] cancel the gather\n", elapsed());
    cio_future_cancel(g, NULL);
    int rc = cio_await(g, NULL);
    printf("  [%.2f s] the gather: %s; children cancelled: %s %d, %s %d\n", elapsed(),
           cio_strerror(rc), cio_task_name(t[0]), cio_future_cancelled(t[0]),
           cio_task_name(t[1]), cio_future_cancelled(t[1]));
    ok = rc == -ECANCELED && cio_future_cancelled(t[0]) && cio_future_cancelled(t[1]);
out:
    cio_future_unref(g);
    release_all(t, 2);
    return ok;
}

static int wait_first_and_timeout(void) {
    static const job jobs[] = {{400, 0}, {100, 0}, {200, 0}};
    cio_task *t[3] = {0};
    cio_future *done[3], *pending[3];
    size_t ndone = 0, npending = 0;
    int ok = 0, rc;
    start = cio_loop_time(loop);
    printf("wait([w(0.4), w(0.1), w(0.2)], timeout=1.0, return_when=FIRST_COMPLETED):\n");
    if (spawn_jobs(jobs, 3, t) < 0) goto out;
    rc = cio_wait(t, 3, CIO_FIRST_COMPLETED, 1.0, done, &ndone, pending, &npending);
    if (rc < 0) goto out;
    printf("  [%.2f s] returned:", elapsed());
    print_set(" done", done, ndone);
    print_set(" | pending", pending, npending);
    printf("\n");
    if (ndone != 1 || done[0] != t[1] || npending != 2) goto out;

    /* Wait for what is left, with a timeout shorter than the slowest. */
    printf("wait(pending, timeout=0.15):\n");
    cio_future *rest[3];
    size_t nrest = npending;
    for (size_t i = 0; i < npending; i++) rest[i] = pending[i];
    rc = cio_wait(rest, nrest, CIO_ALL_COMPLETED, 0.15, done, &ndone, pending, &npending);
    if (rc < 0) goto out;
    printf("  [%.2f s] timed out (no error):", elapsed());
    print_set(" done", done, ndone);
    print_set(" | pending", pending, npending);
    printf("\n");
    printf("  [%.2f s] nothing was cancelled: %s cancelled=%d done=%d\n", elapsed(),
           cio_task_name(t[0]), cio_future_cancelled(t[0]), cio_future_done(t[0]));
    if (ndone != 1 || done[0] != t[2] || npending != 1 || pending[0] != t[0]) goto out;
    if (cio_future_cancelled(t[0])) goto out;

    /* It goes on running; awaiting it gives its result. */
    void *res = NULL;
    rc = cio_await(t[0], &res);
    printf("  [%.2f s] awaited %s: result %d\n", elapsed(), cio_task_name(t[0]),
           (int)(intptr_t)res);
    ok = rc == 0 && res == (void *)4;
out:
    release_all(t, 3);
    return ok;
}

/* async def main(): the tour runs inside one task, since wait and await
 * suspend. */
static void *tour(void *arg) {
    (void)arg;
    int ok = gather_in_order();
    ok &= gather_return_exceptions();
    ok &= gather_cancel();
    ok &= wait_first_and_timeout();
    return ok ? NULL : cio_raise_msg(-EPROTO, "an outcome differs from asyncio's");
}

int main(void) {
    int rc = cio_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "cio_loop_new: %s\n", cio_strerror(rc));
        return 1;
    }
    cio_task *main_task = NULL;
    rc = cio_spawn(loop, tour, NULL, &main_task);
    if (rc == 0) rc = cio_run_until_complete(loop, main_task, NULL);
    if (rc < 0) fprintf(stderr, "gather_vs_wait: %s\n", cio_strerror(rc));
    cio_future_unref(main_task);
    cio_loop_free(loop);
    return rc < 0 ? 1 : 0;
}
