/*
 * Structured-concurrency costs against CPython's asyncio, same programs,
 * same run:
 *
 *   lock_acquire_release   uncontended Lock acquire + release, ns per pair
 *   queue_put_get          one item through a Queue from a producer task
 *                          to a consumer task, ns per item
 *   task_group_10k         a TaskGroup of 10,000 trivial children,
 *                          ns per child (spawn, run, wait), in a loop whose
 *                          stack pool is warm; task_group_10k_cold_cio is
 *                          the first group of a fresh loop, where every
 *                          stack is new memory
 *
 * Each figure is printed for cio ("<name>_cio") and, if Debian's
 * /usr/bin/python3 is there, for asyncio ("<name>_asyncio", from
 * bench/structured_asyncio.py), followed by the ratio asyncio / cio
 * ("<name>_speedup_over_asyncio", how many times faster cio is).
 */
#include <stdint.h>
#include <unistd.h>

#include <cio.h>

#include "bench_util.h"

#ifndef CIO_BENCH_DIR
#define CIO_BENCH_DIR "bench"
#endif

static long iters;
static double result_ns;

static void *lock_bench(void *arg) {
    (void)arg;
    cio_lock *lock;
    BENCH_CHECK(cio_lock_new(&lock));
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        BENCH_CHECK(cio_lock_acquire(lock));
        BENCH_CHECK(cio_lock_release(lock));
    }
    result_ns = (double)(bench_now_ns() - t0) / (double)iters;
    cio_lock_free(lock);
    return NULL;
}

static void *producer(void *arg) {
    cio_queue *q = arg;
    for (long i = 0; i < iters; i++) BENCH_CHECK(cio_queue_put(q, (void *)(intptr_t)(i + 1)));
    return NULL;
}

static void *queue_bench(void *arg) {
    (void)arg;
    cio_queue *q;
    BENCH_CHECK(cio_queue_new(1, &q)); /* bounded: every item is a hand-off */
    cio_task *p;
    int64_t t0 = bench_now_ns();
    BENCH_CHECK(cio_spawn(cio_running_loop(), producer, q, &p));
    for (long i = 0; i < iters; i++) {
        void *item;
        BENCH_CHECK(cio_queue_get(q, &item));
        BENCH_USE(item);
    }
    BENCH_CHECK(cio_await(p, NULL));
    result_ns = (double)(bench_now_ns() - t0) / (double)iters;
    cio_future_unref(p);
    cio_queue_free(q);
    return NULL;
}

static void *trivial(void *arg) {
    return arg;
}

static double one_group(long children) {
    int64_t t0 = bench_now_ns();
    cio_task_group *g;
    BENCH_CHECK(cio_task_group_enter(&g));
    for (long i = 0; i < children; i++) BENCH_CHECK(cio_task_group_spawn(g, trivial, NULL, NULL));
    BENCH_CHECK(cio_task_group_exit(g, 0));
    double ns = (double)(bench_now_ns() - t0) / (double)children;
    cio_task_group_free(g);
    return ns;
}

/* A fresh loop maps fresh stacks, and each costs a page fault on first
 * touch; a running program reuses its loop's pooled stacks. Both are
 * reported: the first group of a new loop (cold) and a second one (warm,
 * the figure compared with asyncio, whose heap is warm across runs). */
static double cold_ns;

static void *group_bench(void *arg) {
    (void)arg;
    cold_ns = one_group(iters);
    result_ns = one_group(iters);
    return NULL;
}

static void run_cio(bench_stat *s, bench_stat *cold, cio_coro_fn fn, long n) {
    for (int r = 0; r < bench_reps(); r++) {
        iters = n;
        cio_loop_options opts = bench_loop_options();
        BENCH_CHECK(cio_run_with(fn, NULL, &opts, NULL));
        bench_add(s, result_ns);
        if (cold) bench_add(cold, cold_ns);
    }
    bench_report(s);
    if (cold) bench_report(cold);
}

static int access_python(void) {
    return access("/usr/bin/python3", X_OK);
}

/* Runs the asyncio twin and keeps the medians it prints. */
static int run_asyncio(bench_stat *stats, int nstats) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/structured_asyncio.py %d %s 2>&1",
             CIO_BENCH_DIR, bench_reps(), bench_quick() ? "quick" : "full");
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[256];
    int found = 0;
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        char name[128], unit[16];
        double v;
        if (line[0] == '#' || sscanf(line, "%127s %lf %15s", name, &v, unit) != 3) continue;
        for (int i = 0; i < nstats; i++)
            if (strcmp(name, stats[i].name) == 0) {
                bench_add(&stats[i], v);
                found++;
            }
    }
    return pclose(p) == 0 && found == nstats ? 0 : -1;
}

int main(void) {
    bench_stat lock = {.name = "lock_acquire_release_cio", .unit = "ns"};
    bench_stat queue = {.name = "queue_put_get_cio", .unit = "ns"};
    bench_stat group = {.name = "task_group_10k_cio", .unit = "ns"};
    bench_stat group_cold = {.name = "task_group_10k_cold_cio", .unit = "ns"};
    run_cio(&lock, NULL, lock_bench, bench_iters(1000000, 1000));
    run_cio(&queue, NULL, queue_bench, bench_iters(1000000, 1000));
    run_cio(&group, &group_cold, group_bench, bench_quick() ? 100 : 10000);

    bench_stat py[3] = {{.name = "lock_acquire_release_asyncio", .unit = "ns"},
                        {.name = "queue_put_get_asyncio", .unit = "ns"},
                        {.name = "task_group_10k_asyncio", .unit = "ns"}};
    if (access_python() != 0) {
        printf("# /usr/bin/python3 not found: no asyncio comparison\n");
        return 0;
    }
    if (run_asyncio(py, 3) != 0) {
        printf("# the asyncio twin failed; no ratios\n");
        return 1;
    }
    bench_ratio("lock_acquire_release_speedup_over_asyncio", &py[0], &lock);
    bench_ratio("queue_put_get_speedup_over_asyncio", &py[1], &queue);
    bench_ratio("task_group_10k_speedup_over_asyncio", &py[2], &group);
    bench_ratio("task_group_10k_cold_speedup_over_asyncio", &py[2], &group_cold);
    return 0;
}
