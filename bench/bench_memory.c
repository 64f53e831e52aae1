/*
 * Memory per idle task: 100,000 detached tasks that each wait (on one
 * shared future, or in cio_sleep), measured from the kernel's accounting of
 * the process. Each variant runs in its own child process, so one variant's
 * pools and peak never count against the next.
 *
 *   idle_task_rss_<variant>    (VmHWM after - VmHWM before) / tasks, in bytes:
 *                              peak resident memory per waiting task
 *   idle_task_pte_<variant>    page-table memory (VmPTE) per task, in bytes;
 *                              the kernel keeps it outside the RSS
 *   idle_task_spawn_<variant>  ns per task to spawn it and run it to its
 *                              first suspension, at that scale
 *
 * and, at two scales (100k: 100,000 tasks; 1m: 1,000,000), with the
 * loop's default stack size, each repetition in a process of its own:
 *
 *   spawn_<scale>_per_task     ns per task to spawn tasks until that many
 *                              are alive, each run to its first wait (on
 *                              one shared future)
 *   end_<scale>_per_task       ns per task to wake them all and run each
 *                              to its end (where an unguarded stack's
 *                              canary is read)
 *
 * Variants: stack size (64 KiB, the default, or 16 KiB, the minimum) and
 * what the task waits on ("future": cio_await on a future nobody resolves
 * until the end; "sleep": cio_sleep(3600), cancelled at the end).
 *
 * Every spawn must succeed, including the 1,000,000th: with guard regions
 * (Linux 6.13+) a slab of stacks stays one mapping, and with the guard-page
 * fallback cio carves unguarded stacks with a canary once the budget
 * (vm.max_map_count / 4 stacks) is spent (src/core/stack.c), so the mapping
 * limit is never reached.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "cio.h"

typedef struct variant {
    const char *name;
    size_t stack_size;
    int sleep; /* 1: cio_sleep, 0: await a future */
} variant;

static const variant variants[] = {
    {"64k_future", 64 * 1024, 0},
    {"16k_future", 16 * 1024, 0},
    {"64k_sleep", 64 * 1024, 1},
    {"16k_sleep", 16 * 1024, 1},
};

/* A field of /proc/self/status in kB, or -1. */
static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) return -1;
    char line[256];
    size_t len = strlen(field);
    long value = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            value = atol(line + len + 1);
            break;
        }
    }
    fclose(f);
    return value;
}

typedef struct scene {
    const variant *v;
    long tasks;
    long waiting;        /* children that reached their wait and have not ended */
    cio_future *gate;    /* what the "future" children await */
    long hwm_kb, pte_kb; /* measured while every child waits */
    double spawn_ns;
} scene;

static void *idle_child(void *arg) {
    scene *s = arg;
    s->waiting++;
    int rc = s->v->sleep ? cio_sleep(3600.0) : cio_await(s->gate, NULL);
    s->waiting--;
    if (s->v->sleep ? rc != -ECANCELED : rc != 0) {
        fprintf(stderr, "bench_memory: a child woke with %d\n", rc);
        exit(1);
    }
    return NULL;
}

static void *scene_main(void *arg) {
    scene *s = arg;
    cio_loop *loop = cio_running_loop();
    cio_task_options opts = {.stack_size = s->v->stack_size};
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < s->tasks; i++) {
        int rc = cio_spawn_with(loop, idle_child, s, &opts, NULL);
        if (rc < 0) {
            fprintf(stderr, "bench_memory: spawning task %ld of %ld failed: %s\n", i + 1,
                    s->tasks, cio_strerror(rc));
            exit(1);
        }
    }
    /* The children run in the next iteration, ahead of this task. */
    BENCH_CHECK(cio_sleep(0));
    s->spawn_ns = (double)(bench_now_ns() - t0) / (double)s->tasks;
    if (s->waiting != s->tasks) {
        fprintf(stderr, "bench_memory: %ld of %ld children wait\n", s->waiting, s->tasks);
        exit(1);
    }
    s->hwm_kb = status_kb("VmHWM");
    s->pte_kb = status_kb("VmPTE");

    /* Let them all end. */
    if (s->v->sleep) {
        size_t n = cio_all_tasks(loop, NULL, 0);
        cio_task **all = malloc(n * sizeof *all);
        if (!all) exit(1);
        n = cio_all_tasks(loop, all, n);
        cio_task *self = cio_current_task();
        for (size_t i = 0; i < n; i++)
            if (all[i] != self) cio_task_cancel(all[i], NULL);
        free(all);
    } else {
        BENCH_CHECK(cio_future_set_result(s->gate, NULL));
    }
    while (s->waiting > 0) BENCH_CHECK(cio_sleep(0));
    return NULL;
}

static void run_variant(const variant *v, long tasks) {
    cio_loop *loop;
    cio_loop_options opts = bench_loop_options();
    BENCH_CHECK(cio_loop_new_with(&opts, &loop));
    scene s = {.v = v, .tasks = tasks};
    BENCH_CHECK(cio_future_new(loop, &s.gate));
    long hwm0 = status_kb("VmHWM"), pte0 = status_kb("VmPTE");
    cio_task *main_task;
    BENCH_CHECK(cio_spawn(loop, scene_main, &s, &main_task));
    BENCH_CHECK(cio_run_until_complete(loop, main_task, NULL));
    cio_future_unref(main_task);
    cio_future_unref(s.gate);
    cio_loop_free(loop);
    if (hwm0 < 0 || s.hwm_kb < 0) {
        printf("# skipped idle_task_rss_%s: /proc/self/status has no VmHWM\n", v->name);
        return;
    }
    char name[64];
    snprintf(name, sizeof name, "idle_task_rss_%s", v->name);
    bench_line(name, (double)(s.hwm_kb - hwm0) * 1024.0 / (double)tasks, "bytes");
    if (pte0 >= 0 && s.pte_kb >= 0) {
        snprintf(name, sizeof name, "idle_task_pte_%s", v->name);
        bench_line(name, (double)(s.pte_kb - pte0) * 1024.0 / (double)tasks, "bytes");
    }
    snprintf(name, sizeof name, "idle_task_spawn_%s", v->name);
    bench_line(name, s.spawn_ns, "ns");
}

/* ---- spawning at scale ---------------------------------------------------- */

typedef struct crowd {
    long tasks;
    long waiting;
    cio_future *gate;
    double spawn_ns, end_ns;
} crowd;

static void *crowd_child(void *arg) {
    crowd *c = arg;
    c->waiting++;
    BENCH_CHECK(cio_await(c->gate, NULL));
    c->waiting--;
    return NULL;
}

static void *crowd_main(void *arg) {
    crowd *c = arg;
    cio_loop *loop = cio_running_loop();
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < c->tasks; i++) BENCH_CHECK(cio_spawn(loop, crowd_child, c, NULL));
    BENCH_CHECK(cio_sleep(0)); /* the children run to their wait first */
    int64_t t1 = bench_now_ns();
    if (c->waiting != c->tasks) {
        fprintf(stderr, "bench_memory: %ld of %ld children wait\n", c->waiting, c->tasks);
        exit(1);
    }
    BENCH_CHECK(cio_future_set_result(c->gate, NULL));
    BENCH_CHECK(cio_sleep(0)); /* ... and end before this task goes on */
    int64_t t2 = bench_now_ns();
    if (c->waiting != 0) {
        fprintf(stderr, "bench_memory: %ld children still wait\n", c->waiting);
        exit(1);
    }
    c->spawn_ns = (double)(t1 - t0) / (double)c->tasks;
    c->end_ns = (double)(t2 - t1) / (double)c->tasks;
    return NULL;
}

/* One repetition in a child process (a fresh address space, as a program
 * that starts that many tasks has); it sends its two figures back. */
static int crowd_once(long tasks, double out[2]) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fds[0]);
        cio_loop *loop;
        cio_loop_options opts = bench_loop_options();
        BENCH_CHECK(cio_loop_new_with(&opts, &loop));
        crowd c = {.tasks = tasks};
        BENCH_CHECK(cio_future_new(loop, &c.gate));
        cio_task *main_task;
        BENCH_CHECK(cio_spawn(loop, crowd_main, &c, &main_task));
        BENCH_CHECK(cio_run_until_complete(loop, main_task, NULL));
        double figures[2] = {c.spawn_ns, c.end_ns};
        ssize_t n = write(fds[1], figures, sizeof figures);
        _exit(n == (ssize_t)sizeof figures ? 0 : 1);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], out, 2 * sizeof *out);
    close(fds[0]);
    int status;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        n != (ssize_t)(2 * sizeof *out))
        return -1;
    return 0;
}

static int crowd_scale(const char *scale, long tasks) {
    char spawn_name[64], end_name[64];
    snprintf(spawn_name, sizeof spawn_name, "spawn_%s_per_task", scale);
    snprintf(end_name, sizeof end_name, "end_%s_per_task", scale);
    bench_stat spawn = {.name = spawn_name, .unit = "ns"}, end = {.name = end_name, .unit = "ns"};
    int reps = bench_reps();
    if (reps > 5) reps = 5; /* a million tasks take seconds per repetition */
    for (int r = 0; r < reps; r++) {
        double figures[2];
        if (crowd_once(tasks, figures) != 0) {
            fprintf(stderr, "bench_memory: %ld tasks failed\n", tasks);
            return 1;
        }
        bench_add(&spawn, figures[0]);
        bench_add(&end, figures[1]);
    }
    bench_report(&spawn);
    bench_report(&end);
    return 0;
}

int main(void) {
    long tasks = bench_iters(100000, 2000);
    printf("# memory: %ld idle tasks per variant, each variant in its own process\n", tasks);
    fflush(stdout);
    int failed = 0;
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            run_variant(&variants[i], tasks);
            fflush(stdout);
            _exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench_memory: variant %s failed\n", variants[i].name);
            failed = 1;
        }
    }
    printf("# spawning at scale: default stack size, up to 5 repetitions each in its own process\n");
    failed |= crowd_scale("100k", bench_iters(100000, 2000));
    failed |= crowd_scale("1m", bench_iters(1000000, 20000));
    return failed;
}
