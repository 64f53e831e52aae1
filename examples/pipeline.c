/*
 * A producer/consumer pipeline on a bounded queue, with graceful shutdown.
 *
 * One producer puts 20 jobs on a queue that holds at most 4, so it waits
 * whenever the consumers fall behind. Three consumers take jobs, "work" on
 * each for a few milliseconds and mark it done. When the producer is done
 * it waits for the queue to be joined (every job processed), then shuts the
 * queue down: each consumer's next get returns -CIO_ESHUTDOWN and it leaves
 * its loop. No job is lost and no task is left behind.
 *
 * The Python it mirrors (3.13):
 *
 *     async def consumer(name, q):
 *         while True:
 *             try: job = await q.get()
 *             except asyncio.QueueShutDown: return
 *             await asyncio.sleep(job.cost)
 *             q.task_done()
 *
 *     q = asyncio.Queue(maxsize=4)
 *     async with asyncio.TaskGroup() as tg:
 *         for name in "ABC": tg.create_task(consumer(name, q))
 *         for job in jobs: await q.put(job)
 *         await q.join()
 *         q.shutdown()
 */
#include <stdint.h>
#include <stdio.h>

#include <cio.h>

#define JOBS 20
#define CONSUMERS 3
#define QUEUE_SIZE 4

static cio_queue *queue;
static double start;
static int processed_by[CONSUMERS];
static int seen[JOBS + 1];

static double elapsed(void) {
    return cio_loop_time(cio_running_loop()) - start;
}

static void *consumer(void *arg) {
    int id = (int)(intptr_t)arg;
    for (;;) {
        void *item;
        int rc = cio_queue_get(queue, &item);
        if (rc == -CIO_ESHUTDOWN) break;
        if (rc < 0) return cio_raise(rc);
        int job = (int)(intptr_t)item;
        /* Jobs cost 5 to 25 ms of "work". */
        rc = cio_sleep((5 + (job * 7) % 21) / 1000.0);
        if (rc < 0) return cio_raise(rc);
        seen[job]++;
        processed_by[id]++;
        printf("[%.3f s] consumer %c finished job %2d (queue holds %zu)\n", elapsed(), 'A' + id,
               job, cio_queue_size(queue));
        rc = cio_queue_task_done(queue);
        if (rc < 0) return cio_raise(rc);
    }
    printf("[%.3f s] consumer %c: queue shut down, leaving after %d jobs\n", elapsed(), 'A' + id,
           processed_by[id]);
    return NULL;
}

static void *main_task(void *arg) {
    (void)arg;
    start = cio_loop_time(cio_running_loop());
    cio_task_group *group;
    int rc = cio_task_group_enter(&group);
    if (rc < 0) return cio_raise(rc);
    for (int i = 0; rc == 0 && i < CONSUMERS; i++)
        rc = cio_task_group_spawn(group, consumer, (void *)(intptr_t)i, NULL);
    int waited = 0;
    for (int job = 1; rc == 0 && job <= JOBS; job++) {
        if (cio_queue_full(queue)) waited++;
        rc = cio_queue_put(queue, (void *)(intptr_t)job);
    }
    printf("[%.3f s] producer: all %d jobs queued (it waited for room %d times)\n", elapsed(),
           JOBS, waited);
    if (rc == 0) rc = cio_queue_join(queue);
    printf("[%.3f s] producer: every job processed; shutting the queue down\n", elapsed());
    if (rc == 0) rc = cio_queue_shutdown(queue, 0);
    rc = cio_task_group_exit(group, rc);
    cio_task_group_free(group);
    if (rc < 0) return cio_raise(rc);

    int total = 0, once = 1;
    for (int i = 0; i < CONSUMERS; i++) total += processed_by[i];
    for (int job = 1; job <= JOBS; job++) once = once && seen[job] == 1;
    printf("processed %d jobs (A %d, B %d, C %d), each exactly once: %s\n", total,
           processed_by[0], processed_by[1], processed_by[2], once ? "yes" : "NO");
    return total == JOBS && once ? NULL : cio_raise(-EPROTO);
}

int main(void) {
    int rc = cio_queue_new(QUEUE_SIZE, &queue);
    if (rc == 0) rc = cio_run(main_task, NULL, NULL);
    cio_queue_free(queue);
    if (rc < 0) fprintf(stderr, "pipeline: %s\n", cio_strerror(rc));
    return rc < 0 ? 1 : 0;
}
