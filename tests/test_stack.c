/* Task stacks: sizes, pooling, overflow reports, and 100,000 tasks. */
#include "test.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>


static void *report_stack_size(void *arg) {
    (void)arg;
    return IPTR(cio_task_stack_size(cio_current_task()));
}

TEST(stack_size_per_task) {
    cio_loop *loop = test_loop();
    cio_task_options opts = {.stack_size = 200 * 1024};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, report_stack_size, NULL, &opts, &t));
    void *r;
    CHECK_OK(cio_run_until_complete(loop, t, &r));
    CHECK_INT((size_t)(intptr_t)r, >=, 200 * 1024); /* rounded up to pages */
    CHECK_INT((size_t)(intptr_t)r, <, 200 * 1024 + 4096 * 4);
    cio_future_release(t);
    cio_task_options tiny = {.stack_size = 1024};
    CHECK_ERR(cio_spawn_with(loop, report_stack_size, NULL, &tiny, &t), -EINVAL);
    cio_loop_free(loop);
}

static void *record_stack_lo(void *arg) {
    void **out = arg;
    cio__task_stack_info info;
    CHECK_OK(cio__task_get_stack(cio_current_task(), &info));
    *out = info.lo;
    return NULL;
}

TEST(stacks_are_reused) {
    /* A finished task's stack goes back to the pool and serves the next. */
    cio_loop *loop = test_loop();
    void *first = NULL, *second = NULL;
    CHECK_OK(test_run(loop, record_stack_lo, &first, NULL));
    CHECK_OK(test_run(loop, record_stack_lo, &second, NULL));
    CHECK(first != NULL);
    CHECK(first == second);
    cio_loop_free(loop);
}

/* Recurses with 1 KiB frames until the stack runs out. */
__attribute__((noinline)) static int recurse(volatile char *prev, int depth) {
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[1023] = prev ? prev[0] : 0;
    if (depth > 1000000) return 0; /* far beyond any stack in this test */
    return recurse(frame, depth + 1) + frame[1023];
}

static void *overflow(void *arg) {
    (void)arg;
    return IPTR(recurse(NULL, 0));
}

static void *smash_canary(void *arg) {
    (void)arg;
    /* Simulates an overflow that went past the end of an unguarded stack
     * without faulting: the canary at its lowest address is overwritten. */
    cio__task_stack_info info;
    CHECK_OK(cio__task_get_stack(cio_current_task(), &info));
    CHECK(!info.guarded);
    memset(info.lo, 0xa5, 8);
    cio_sleep(0);
    return NULL;
}

/* Runs fn in a task named "deep" in a child process and returns what the
 * child wrote to stderr; *status gets its wait status. */
static void run_in_child(cio_coro_fn fn, size_t guard_budget, char *out, size_t cap, int *status) {
    int fds[2];
    CHECK_OK(pipe(fds));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        if (guard_budget != (size_t)-1) cio__stack_set_guard_budget(guard_budget);
        cio_loop *loop = test_loop();
        cio_task_options opts = {.name = "deep", .stack_size = 64 * 1024};
        cio_task *t;
        CHECK_OK(cio_spawn_with(loop, fn, NULL, &opts, &t));
        cio_run_until_complete(loop, t, NULL);
        _exit(0); /* not reached when the overflow is caught */
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], out + len, cap - 1 - len)) > 0) len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    CHECK_EQ(waitpid(pid, status, 0), pid);
}

TEST(overflow_into_guard_page_names_the_task) {
    char out[4096];
    int status;
    run_in_child(overflow, (size_t)-1, out, sizeof out, &status);
    if (!strstr(out, "cio: task 'deep' overflowed its 65536-byte stack"))
        FAIL("child said: %s", out);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGABRT);
}

TEST(overflow_of_unguarded_stack_is_caught_by_canary) {
    char out[4096];
    int status;
    run_in_child(smash_canary, 0, out, sizeof out, &status);
    if (!strstr(out, "cio: task 'deep' overflowed its 65536-byte stack"))
        FAIL("child said: %s", out);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGABRT);
}

/* 100,000 concurrent tasks under the default mapping limit: the first
 * ones get guard pages, the rest canaries, and every one runs. */
#define MANY 100000
static int woke;

static void *sleeper(void *arg) {
    cio_future *gate = arg;
    CHECK_OK(cio_await(gate, NULL));
    woke++;
    return NULL;
}

static void open_gate(cio_loop *loop, void *arg) {
    (void)loop;
    CHECK_OK(cio_future_set_result(arg, NULL));
}

static void stop_loop(cio_loop *loop, void *arg) {
    (void)arg;
    CHECK_OK(cio_loop_stop(loop));
}

TEST(hundred_thousand_tasks) {
    cio_loop *loop = test_loop();
    cio_future *gate;
    CHECK_OK(cio_future_new(loop, &gate));
    cio_task_options opts = {.stack_size = 32 * 1024};
    size_t guarded_before = cio__stack_guard_budget();
    for (int i = 0; i < MANY; i++) {
        int rc = cio_spawn_with(loop, sleeper, gate, &opts, NULL);
        if (rc < 0) FAIL("spawn %d failed: %s", i + 1, cio_strerror(rc));
    }
    /* Let them all start and block, then check they exist, then release. */
    CHECK_OK(cio_call_later(loop, 0.01, open_gate, gate, NULL));
    cio_task *list[1];
    CHECK_EQ(cio_all_tasks(loop, list, 0), MANY);
    /* Run until every task is done: all_tasks is then empty. */
    CHECK_OK(cio_run_until_complete(loop, gate, NULL));
    while (cio_all_tasks(loop, NULL, 0) > 0) {
        CHECK_OK(cio_call_soon(loop, stop_loop, NULL, NULL));
        CHECK_OK(cio_run_forever(loop));
    }
    CHECK_EQ(woke, MANY);
    CHECK_INT(guarded_before, <, MANY); /* so some really were unguarded */
    cio_future_release(gate);
    cio_loop_free(loop);
}
