/*
 * The program tools/cio-ps is tried on (tests/check_cio_ps.sh): 100 named
 * workers asleep in worker_waits, a parent awaiting its child, which waits
 * on a future nobody sets, and with "churn" a task that spawns and ends
 * tasks as fast as it can, so the reader sees the task list change under
 * it. It prints "ready" once all are waiting, then lives until killed (or
 * 60 s at most).
 */
#include <cio.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

static int churn;

static void *worker_waits(void *arg) {
    (void)arg;
    cio_sleep(60);
    return NULL;
}

static void *child_waits_on_a_future(void *arg) {
    cio_await(arg, NULL);
    return NULL;
}

static void *parent_awaits_child(void *arg) {
    cio_task *child;
    if (cio_spawn_with(cio_running_loop(), child_waits_on_a_future, arg,
                       &(cio_task_options){.name = "child"}, &child) < 0)
        return NULL;
    cio_await(child, NULL);
    cio_future_unref(child);
    return NULL;
}

static void *short_lived(void *arg) {
    (void)arg;
    cio_sleep(0);
    return NULL;
}

static void *churner(void *arg) {
    (void)arg;
    for (;;) {
        cio_task *t[10];
        for (int i = 0; i < 10; i++)
            if (cio_spawn(cio_running_loop(), short_lived, NULL, &t[i]) < 0) return NULL;
        for (int i = 0; i < 10; i++) {
            cio_await(t[i], NULL);
            cio_future_unref(t[i]);
        }
    }
}

static void *main_task(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "worker-%d", i);
        if (cio_spawn_with(loop, worker_waits, NULL, &(cio_task_options){.name = name}, NULL) < 0)
            return NULL;
    }
    cio_future *never;
    if (cio_future_new(loop, &never) < 0) return NULL;
    cio_spawn_with(loop, parent_awaits_child, never, &(cio_task_options){.name = "parent"}, NULL);
    if (churn) cio_spawn_with(loop, churner, NULL, &(cio_task_options){.name = "churner"}, NULL);
    cio_sleep(0.05);
    printf("ready\n");
    fflush(stdout);
    cio_sleep(60);
    return NULL;
}

int main(int argc, char **argv) {
    churn = argc > 1 && strcmp(argv[1], "churn") == 0;
    /* Under Yama's ptrace_scope 1, only a declared tracer may read us. */
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    return cio_run(main_task, NULL, NULL) == 0 ? 0 : 1;
}
