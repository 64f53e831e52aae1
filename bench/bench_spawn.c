/*
 * Starting a child and waiting for it: spawn + wait of /bin/true, one
 * child at a time, in cio and in a plain C loop of posix_spawn + waitpid
 * (the floor: what the kernel and libc cost). asyncio's figure comes from
 * bench_spawn_asyncio.py in the same run (bench/run.sh).
 *
 * The two are measured in alternating repetitions so that a noisy moment
 * of the machine hits both alike. Figures: microseconds per child (median
 * over repetitions, and the minimum), and the ratio cio / plain.
 */
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cio.h>

#include "bench_util.h"

extern char **environ;

static long iters;

static void *cio_children(void *arg) {
    double *us = arg;
    cio_loop *loop = cio_running_loop();
    char *const argv[] = {"true", NULL};
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        cio_process *p;
        BENCH_CHECK(cio_create_subprocess_exec(loop, "/bin/true", argv, NULL, &p));
        int code;
        BENCH_CHECK(cio_process_wait(p, &code));
        BENCH_CHECK(code == 0 ? 0 : -1);
        BENCH_CHECK(cio_process_free(p));
    }
    *us = (double)(bench_now_ns() - t0) / 1e3 / (double)iters;
    return NULL;
}

static double plain_children(void) {
    char *const argv[] = {"true", NULL};
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        pid_t pid;
        BENCH_CHECK(-posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ));
        int status;
        BENCH_CHECK(waitpid(pid, &status, 0));
    }
    return (double)(bench_now_ns() - t0) / 1e3 / (double)iters;
}

int main(void) {
    iters = bench_iters(500, 20);
    printf("# spawn + wait of /bin/true, %ld children per repetition, one at a time\n", iters);
    bench_stat cio = {.name = "spawn_wait_cio", .unit = "us"};
    bench_stat plain = {.name = "spawn_wait_posix_spawn", .unit = "us"};
    for (int r = 0; r < bench_reps(); r++) {
        double us = 0;
        BENCH_CHECK(cio_run(cio_children, &us, NULL));
        bench_add(&cio, us);
        bench_add(&plain, plain_children());
    }
    bench_report(&cio);
    bench_report(&plain);
    bench_ratio("spawn_wait_ratio_cio_over_posix_spawn", &cio, &plain);
    return 0;
}
