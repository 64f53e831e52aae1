/*
 * A fan-out of 1,000 tasks in one task group, under one timeout scope.
 *
 * Each task "fetches" something: it sleeps a fixed pseudo-random time
 * between 1 and 400 ms. The program runs the fan-out twice:
 *
 *   1. Under a 250 ms timeout: tasks still sleeping when it expires are
 *      cancelled, and the scope reports a timeout.
 *   2. With three tasks that fail: the first failure cancels every sibling
 *      still running, as asyncio's TaskGroup does, and the group reports
 *      each error that happened (here the three, if they fail before the
 *      cancellation reaches them).
 *
 * Each round prints what finished, what failed and what was cancelled.
 *
 * The Python it mirrors:
 *
 *     async with asyncio.timeout(0.25):
 *         async with asyncio.TaskGroup() as tg:
 *             for i in range(1000):
 *                 tg.create_task(fetch(i))
 */
#include <stdint.h>
#include <stdio.h>

#include <cio.h>

#define TASKS 1000

enum outcome { PENDING, FINISHED, FAILED, CANCELLED };
static enum outcome outcomes[TASKS];
static int failing_round;
static double round_start;

static unsigned delay_ms(int i) {
    uint32_t x = (uint32_t)i * 2654435761u;
    return 1 + (x >> 16) % 400;
}

static int fails(int i) {
    return failing_round && (i == 100 || i == 200 || i == 300);
}

static void *fetch(void *arg) {
    int i = (int)(intptr_t)arg;
    /* The failing ones fail together, at one absolute deadline 120 ms after
     * the round began, so they fail in the same loop iteration. */
    int rc = fails(i) ? cio_sleep_until(round_start + 0.12) : cio_sleep(delay_ms(i) / 1000.0);
    if (rc == -ECANCELED) {
        outcomes[i] = CANCELLED;
        return cio_raise(rc);
    }
    if (fails(i)) {
        outcomes[i] = FAILED;
        return cio_raise_msg(-EIO, "fetch failed");
    }
    outcomes[i] = FINISHED;
    return (void *)(intptr_t)i;
}

static int fan_out(double timeout) {
    for (int i = 0; i < TASKS; i++) outcomes[i] = PENDING;
    double start = cio_loop_time(cio_running_loop());
    round_start = start;
    cio_timeout scope;
    int rc = cio_timeout_enter(&scope, timeout);
    if (rc < 0) return rc;
    cio_task_group *group = NULL;
    rc = cio_task_group_enter(&group);
    for (int i = 0; rc == 0 && i < TASKS; i++)
        rc = cio_task_group_spawn(group, fetch, (void *)(intptr_t)i, NULL);
    if (group) rc = cio_task_group_exit(group, rc);
    rc = cio_timeout_exit(&scope, rc);
    double took = cio_loop_time(cio_running_loop()) - start;

    int counts[4] = {0};
    for (int i = 0; i < TASKS; i++) counts[outcomes[i]]++;
    printf("the group ended after %.3f s: %s\n", took,
           rc == -ETIMEDOUT ? "timed out" : cio_strerror(rc));
    printf("  finished:  %d\n", counts[FINISHED]);
    printf("  failed:    %d\n", counts[FAILED]);
    printf("  cancelled: %d\n", counts[CANCELLED]);
    if (group) {
        for (size_t i = 0; i < cio_task_group_error_count(group); i++) {
            int err;
            cio_task *who;
            const char *msg;
            if (cio_task_group_error(group, i, &err, &who, &msg) < 0) break;
            printf("  error %zu: %s in %s (%s)\n", i + 1, cio_strerror(err),
                   who ? cio_task_name(who) : "the body", msg ? msg : "no message");
        }
        cio_task_group_free(group);
    }
    if (counts[PENDING] != 0) return -EPROTO;
    return rc;
}

static void *main_task(void *arg) {
    (void)arg;
    printf("round 1: %d tasks in one task group under a 0.25 s timeout\n", TASKS);
    int rc1 = fan_out(0.25);
    printf("round 2: the same, with 3 tasks failing at 0.12 s (timeout 10 s)\n");
    failing_round = 1;
    int rc2 = fan_out(10.0);
    /* What each round must end with; anything else is a bug. */
    return rc1 == -ETIMEDOUT && rc2 == -CIO_EGROUP ? NULL : cio_raise(-EPROTO);
}

int main(void) {
    int rc = cio_run(main_task, NULL, NULL);
    if (rc < 0) fprintf(stderr, "fanout: %s\n", cio_strerror(rc));
    return rc < 0 ? 1 : 0;
}
