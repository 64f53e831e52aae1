/*
 * The program tests/gdb_test.py inspects with tools/cio-gdb.py (acceptance
 * test 6 of issue 12): named tasks blocked in distinct functions, so that a
 * backtrace of each can be told from the others.
 *
 *   "sleeper"  sleeps an hour                     (gdb_sleeper_sleeps)
 *   "waiter"   awaits a future nobody sets yet    (gdb_waiter_awaits_future)
 *   "parent"   awaits its child "child" ...       (gdb_parent_awaits_child)
 *   "child"    ... which waits to read a pipe     (gdb_child_reads_pipe)
 *   "holder"   holds a lock and awaits a future   (gdb_holder_holds_lock)
 *   "locker"   waits for that lock                (gdb_locker_takes_lock)
 *   "control"  waits for a line on stdin          (gdb_control_waits)
 *
 * Once every task waits, "control" prints one line per task (id, name,
 * state, switch count) and "ready PID", then waits for a line on stdin.
 * When it gets one it prints the same lines again, so the test can check
 * that inspecting the live process changed nothing, then ends every wait
 * the ordinary way (pipe data, results, a cancellation), checks each
 * task's outcome and prints "done". Exit status 0 means every task ended as
 * it should have.
 *
 * With the argument "abort", "control" calls abort() instead of waiting,
 * for a core the kernel writes while a task runs.
 *
 * Built with -O0 -g -fno-omit-frame-pointer: each task's function keeps its
 * own frame, so its name is in the backtrace.
 */
#include <cio.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define EXPECT(cond)                                                                  \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "gdb_target.c:%d: check failed: %s\n", __LINE__, #cond); \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static int child_pipe[2];
static cio_future *never_yet; /* what "waiter" awaits */
static cio_future *release;   /* what "holder" awaits while it holds the lock */
static cio_lock *lock;
static cio_task *child;
static int abort_when_ready;

enum { SLEEPER, WAITER, PARENT, HOLDER, LOCKER, CONTROL, TASKS };
static cio_task *tasks[TASKS + 1]; /* the last one is "child" */

static void *gdb_sleeper_sleeps(void *arg) {
    (void)arg;
    EXPECT(cio_sleep(3600.0) == -ECANCELED);
    return NULL;
}

static void *gdb_waiter_awaits_future(void *arg) {
    (void)arg;
    void *result = NULL;
    EXPECT(cio_await(never_yet, &result) == 0);
    return result;
}

static void *gdb_child_reads_pipe(void *arg) {
    (void)arg;
    char byte = 0;
    EXPECT(cio_wait_readable(child_pipe[0]) == 0);
    EXPECT(read(child_pipe[0], &byte, 1) == 1);
    return byte == 'x' ? "read x" : "read something else";
}

static void *gdb_parent_awaits_child(void *arg) {
    (void)arg;
    cio_task_options opts = {.name = "child"};
    EXPECT(cio_spawn_with(cio_running_loop(), gdb_child_reads_pipe, NULL, &opts, &child) == 0);
    tasks[TASKS] = child;
    void *result = NULL;
    EXPECT(cio_await(child, &result) == 0);
    return result;
}

static void *gdb_holder_holds_lock(void *arg) {
    (void)arg;
    EXPECT(cio_lock_acquire(lock) == 0);
    EXPECT(cio_await(release, NULL) == 0);
    EXPECT(cio_lock_release(lock) == 0);
    return "held";
}

static void *gdb_locker_takes_lock(void *arg) {
    (void)arg;
    EXPECT(cio_lock_acquire(lock) == 0);
    EXPECT(cio_lock_release(lock) == 0);
    return "locked";
}

static void print_tasks(const char *tag) {
    static const char *const states[] = {"scheduled", "running", "waiting", "done"};
    for (int i = 0; i <= TASKS; i++) {
        cio_task_info info;
        EXPECT(cio_task_get_info(tasks[i], &info) == 0);
        printf("%s id=%" PRIu64 " name=%s state=%s switches=%" PRIu64 "\n", tag, info.id,
               info.name, states[info.state], info.switches);
    }
    fflush(stdout);
}

/* Every task but this one waits (the child exists once its parent ran). */
static int all_waiting(void) {
    for (int i = 0; i <= TASKS; i++) {
        if (i == CONTROL) continue;
        cio_task_info info;
        if (!tasks[i] || cio_task_get_info(tasks[i], &info) != 0) return 0;
        if (info.state != CIO_TASK_WAITING) return 0;
    }
    return 1;
}

static void *gdb_control_waits(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000 && !all_waiting(); i++) EXPECT(cio_sleep(0) == 0);
    EXPECT(all_waiting());
    /* The lines are printed while this task runs, so its own line says
     * "running" in both reports; the test compares the two. */
    print_tasks("task");
    printf("ready %ld\n", (long)getpid());
    fflush(stdout);
    if (abort_when_ready) abort();
    EXPECT(cio_wait_readable(0) == 0);
    char line[64];
    EXPECT(read(0, line, sizeof line) > 0);
    print_tasks("again");

    EXPECT(write(child_pipe[1], "x", 1) == 1);
    EXPECT(cio_future_set_result(never_yet, "set") == 0);
    EXPECT(cio_future_set_result(release, NULL) == 0);
    EXPECT(cio_task_cancel(tasks[SLEEPER], "enough") == 1);
    void *result;
    /* A task that returns after a cancellation ends cancelled, as in
     * asyncio. */
    EXPECT(cio_await(tasks[SLEEPER], &result) == -ECANCELED);
    EXPECT(cio_await(tasks[WAITER], &result) == 0 && strcmp(result, "set") == 0);
    EXPECT(cio_await(tasks[PARENT], &result) == 0 && strcmp(result, "read x") == 0);
    EXPECT(cio_await(tasks[HOLDER], &result) == 0 && strcmp(result, "held") == 0);
    EXPECT(cio_await(tasks[LOCKER], &result) == 0 && strcmp(result, "locked") == 0);
    printf("done\n");
    fflush(stdout);
    return NULL;
}

int main(int argc, char **argv) {
    abort_when_ready = argc > 1 && strcmp(argv[1], "abort") == 0;
    /* Lets a debugger that is not our parent attach under Yama's
     * ptrace_scope 1; harmless (EINVAL) where Yama is absent. */
    (void)prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    cio_loop *loop;
    EXPECT(cio_loop_new(&loop) == 0);
    EXPECT(pipe(child_pipe) == 0);
    EXPECT(cio_future_new(loop, &never_yet) == 0);
    EXPECT(cio_future_new(loop, &release) == 0);
    EXPECT(cio_lock_new(&lock) == 0);

    static const struct {
        const char *name;
        cio_coro_fn fn;
    } specs[TASKS] = {
        [SLEEPER] = {"sleeper", gdb_sleeper_sleeps},
        [WAITER] = {"waiter", gdb_waiter_awaits_future},
        [PARENT] = {"parent", gdb_parent_awaits_child},
        [HOLDER] = {"holder", gdb_holder_holds_lock},
        [LOCKER] = {"locker", gdb_locker_takes_lock},
        [CONTROL] = {"control", gdb_control_waits},
    };
    for (int i = 0; i < TASKS; i++) {
        cio_task_options opts = {.name = specs[i].name};
        EXPECT(cio_spawn_with(loop, specs[i].fn, NULL, &opts, &tasks[i]) == 0);
    }
    EXPECT(cio_run_until_complete(loop, tasks[CONTROL], NULL) == 0);

    for (int i = 0; i <= TASKS; i++) cio_future_unref(tasks[i]);
    cio_future_unref(never_yet);
    cio_future_unref(release);
    EXPECT(cio_lock_free(lock) == 0);
    EXPECT(cio_loop_free(loop) == 0);
    close(child_pipe[0]);
    close(child_pipe[1]);
    return 0;
}
