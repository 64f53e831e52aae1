/*
 * The stall watchdog (issue 12, item 5): acceptance tests 7, 8, 9 and the
 * second half of 14 (debuggability.md §7.9).
 *
 * The functions the reports must name are not static, and the test is
 * linked with -rdynamic (tests/areas.cmake), so dladdr can name them. The
 * timing checks leave room for a loaded machine: the stalls last 300 ms
 * against a threshold of 100 ms, and an exact count is asserted only when
 * the stall itself did not last long enough for one more report.
 */
#include "test.h"

#include <dirent.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The reports go to a pipe; read_reports takes what is there once the
 * watchdog is off (its thread joined, so every report is written). */
static int report_fds[2];
static char reports[65536];

static void watch(cio_loop *loop, unsigned threshold_ms) {
    CHECK_OK(pipe2(report_fds, O_CLOEXEC));
    cio_watchdog_options o = {.threshold_ms = threshold_ms, .fd = report_fds[1]};
    CHECK_OK(cio_loop_set_watchdog_with(loop, &o));
}

static void read_reports(cio_loop *loop) {
    CHECK_OK(cio_loop_set_watchdog(loop, 0, 0));
    close(report_fds[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(report_fds[0], reports + len, sizeof reports - 1 - len)) > 0) len += (size_t)n;
    reports[len] = '\0';
    close(report_fds[0]);
    fprintf(stderr, "--- reports ---\n%s--- end ---\n", reports);
}

static int count(const char *text, const char *what) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what)) n++;
    return n;
}

/* The n-th report (from 1), up to the next one. */
static const char *report_n(int n, char *out, size_t cap) {
    const char *p = reports;
    for (int i = 0; i < n; i++) {
        p = strstr(i ? p + 1 : p, "cio: watchdog: loop ");
        while (p && !strstr(p, "stalled for")) p = NULL;
        if (!p) return NULL;
    }
    const char *end = strstr(p + 1, "cio: watchdog: loop ");
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len >= cap) len = cap - 1;
    memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

/* "cpu A ms of B ms wall" in a report. */
static void cpu_and_wall(const char *report, long *cpu, long *wall) {
    const char *p = strstr(report, " cpu ");
    CHECK(p != NULL);
    CHECK_EQ(sscanf(p, " cpu %ld ms of %ld ms wall", cpu, wall), 2);
}

/* "(Q ms more runnable, waiting for a CPU)": the time the loop thread could
 * have run but waited for a CPU that other threads had. */
static long queued_ms(const char *report) {
    const char *p = strstr(report, " ms wall (");
    long q;
    if (!p || sscanf(p, " ms wall (%ld ms more runnable", &q) != 1)
        FAIL("no run-queue time in:\n%s", report);
    return q;
}

static int64_t stall_ns; /* how long the stalling task really stalled */

/* ---- 7: a blocking call ---------------------------------------------------- */

/* Sleeps 350 ms in the loop's thread (the design's 300 ms plus room for
 * the 2x report on a loaded host under Valgrind, where the first report
 * takes longer). The watchdog's signal cuts a sleep short (EINTR), so it
 * sleeps again for what is left. */
__attribute__((noinline)) void wd_block_in_usleep(int64_t ms) {
    int64_t start = now_ns();
    int64_t left;
    while ((left = start + ms * 1000000LL - now_ns()) > 0) usleep((useconds_t)(left / 1000));
    stall_ns = now_ns() - start;
}

void *wd_sleeper_task(void *arg) {
    (void)arg;
    wd_block_in_usleep(350);
    return NULL;
}

TEST(blocking_call_reported_once_then_at_twice_the_threshold) {
    cio_loop *loop = test_loop();
    watch(loop, 100);
    cio_task_options opts = {.name = "sleeper"};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, wd_sleeper_task, NULL, &opts, &t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    read_reports(loop);
    char first[8192], second[8192];
    CHECK(report_n(1, first, sizeof first) != NULL);
    CHECK(strstr(first, "report 1 of this stall") != NULL);
    CHECK(strstr(first, "task 1 'sleeper' running wd_sleeper_task (") != NULL);
    CHECK(strstr(first, "spawned at ") != NULL && strstr(first, "test_watchdog.c:") != NULL);
    /* Under qemu-user (the aarch64 run) /proc shows the host's system call
     * number, which the target's table cannot name: there the report says
     * "number N", and the backtrace (checked below) shows the usleep. */
    CHECK(strstr(first, "system call: clock_nanosleep") || strstr(first, "system call: nanosleep") ||
          (CIO_TEST_EMULATED && strstr(first, "system call: number ")));
    CHECK(strstr(first, "state S (blocked: waiting)") != NULL);
    long cpu, wall;
    cpu_and_wall(first, &cpu, &wall);
    CHECK_INT(wall, >=, 100);
    CHECK_INT(cpu * 4, <, wall);
    /* Far below the wall time even counting the waits for a CPU: it slept. */
    CHECK_INT((cpu + queued_ms(first)) * 4, <, wall);
    CHECK(strstr(first, "backtrace of the loop thread (") != NULL);
    CHECK(strstr(first, "wd_block_in_usleep+") != NULL);
    /* The back-off report, at twice the threshold, names the same task. */
    CHECK(report_n(2, second, sizeof second) != NULL);
    CHECK(strstr(second, "report 2 of this stall") != NULL);
    CHECK(strstr(second, "'sleeper'") != NULL);
    cpu_and_wall(second, &cpu, &wall);
    CHECK_INT(wall, >=, 200);
    /* No third one unless the stall lasted long enough for 4x. */
    if (stall_ns < 390 * 1000000LL) CHECK_EQ(count(reports, "stalled for"), 2);
    CHECK_OK(cio_loop_free(loop));
}

/* The report names the task escaped (by the dump's UTF-8 rule): a name that
 * holds an escape sequence or a newline cannot drive the terminal the
 * report reaches or forge a line of it (it was printed raw). */
static void *wd_short_sleeper_task(void *arg) {
    (void)arg;
    wd_block_in_usleep(120);
    return NULL;
}

TEST(the_report_escapes_the_task_name) {
    cio_loop *loop = test_loop();
    watch(loop, 50);
    cio_task_options opts = {.name = "evil\x1b[2J\ncio: watchdog: fake"};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, wd_short_sleeper_task, NULL, &opts, &t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    read_reports(loop);
    CHECK(strstr(reports, "'evil\\x1b[2J\\x0acio: watchdog: fake' running") != NULL);
    CHECK(strchr(reports, '\x1b') == NULL);
    CHECK(strstr(reports, "\ncio: watchdog: fake") == NULL);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- 8: a busy loop -------------------------------------------------------- */

__attribute__((noinline)) void wd_spin_300ms(void) {
    int64_t start = now_ns();
    volatile unsigned long spins = 0;
    while (now_ns() - start < 300 * 1000000LL) spins++;
    stall_ns = now_ns() - start;
}

void *wd_spinner_task(void *arg) {
    (void)arg;
    wd_spin_300ms();
    return NULL;
}

TEST(busy_loop_reported_as_computing_with_the_spinning_function) {
    cio_loop *loop = test_loop();
    watch(loop, 100);
    cio_task_options opts = {.name = "spinner"};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, wd_spinner_task, NULL, &opts, &t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    read_reports(loop);
    char first[8192];
    CHECK(report_n(1, first, sizeof first) != NULL);
    CHECK(strstr(first, "task 1 'spinner' running wd_spinner_task (") != NULL);
    CHECK(strstr(first, "busy: computing") != NULL);
    CHECK(strstr(first, "system call: none (running in user space)") ||
          strstr(first, "system call: clock_gettime")); /* the vDSO may fall back */
    /* The thread is runnable and burns CPU: all of the wall time on an idle
     * machine, but on the shared 2-vCPU host of this project a seventh was
     * seen. What it did not run, it spent waiting for a CPU (the report
     * says how long, from schedstat): the two together are close to the
     * wall time, within a quarter (the samples of the three clocks are not
     * taken at one instant). */
    CHECK(strstr(first, "state R (busy: computing)") != NULL);
    long cpu, wall;
    cpu_and_wall(first, &cpu, &wall);
    long queued = queued_ms(first);
    fprintf(stderr, "cpu %ld ms + waiting for a CPU %ld ms of %ld ms wall\n", cpu, queued, wall);
    CHECK_INT(cpu, >=, 1);
    CHECK_INT((cpu + queued) * 4, >=, wall * 3);
    CHECK_INT(cpu + queued, <=, wall + wall / 4);
    CHECK(strstr(first, "wd_spin_300ms+") != NULL);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- the backtrace signal on a task with little stack left ------------------ */

/* The watchdog's backtrace handler runs on the loop thread's alternate
 * stack: on the task's own it takes a few KB (backtrace and the signal
 * frame), which a correct task deep in its stack does not have, and the
 * watchdog itself would overflow it. Native builds only: instrumented code
 * needs more than the 2.5 KB this task leaves itself. */
static const char *deep_top;
static int64_t deep_spin_ns;

__attribute__((noinline)) static void deep_then_spin(int depth) {
    volatile char pad[128];
    pad[0] = (char)depth;
    const char *here = __builtin_frame_address(0);
    if (deep_top - here < (ptrdiff_t)(CIO_MIN_STACK_SIZE - 2560)) {
        deep_then_spin(depth + 1);
    } else {
        int64_t start = now_ns();
        while (now_ns() - start < deep_spin_ns) {
        }
    }
    pad[1] = pad[0];
}

static void *deep_task(void *arg) {
    (void)arg;
    deep_top = __builtin_frame_address(0);
    deep_then_spin(0);
    return NULL;
}

TEST(backtrace_signal_runs_on_the_alternate_stack_not_the_tasks) {
    cio_loop *loop = test_loop();
    watch(loop, 20);
    deep_spin_ns = 150 * 1000000LL;
    cio_task_options opts = {.name = "deep", .stack_size = CIO_MIN_STACK_SIZE};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, deep_task, NULL, &opts, &t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    read_reports(loop);
    char first[8192];
    CHECK(report_n(1, first, sizeof first) != NULL);
    CHECK(strstr(first, "task 1 'deep' running") != NULL);
    CHECK(strstr(first, "deep_then_spin") != NULL);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- reports that came late do not come in a burst ---------------------------- */

/* With the backtrace signal blocked in the loop's thread, each report
 * waits for its answer before it is written (100 ms), so it is late: the
 * next still comes at twice the stall's age, not at the next wake-up.
 * 300 ms of stall at a 5 ms threshold is reports at about 105 and 210 ms
 * (the old code wrote them at 105, 109, 111, 114, 117... ms). */
static void *stall_with_the_signal_blocked(void *arg) {
    (void)arg;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN + 3);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int64_t start = now_ns();
    while (now_ns() - start < 300 * 1000000LL) {
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* The signal that waited is taken now; the handler does nothing then. */
    return NULL;
}

TEST(reports_that_came_late_still_double_their_interval) {
    cio_loop *loop = test_loop();
    watch(loop, 5);
    cio_task *t;
    CHECK_OK(cio_spawn(loop, stall_with_the_signal_blocked, NULL, &t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    read_reports(loop);
    int n = count(reports, "stalled for");
    fprintf(stderr, "%d reports\n", n);
    CHECK_INT(n, >=, 1);
    CHECK_INT(n, <=, 3);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- a report fd that takes nothing ------------------------------------------ */

/* Reports into a full pipe that nobody reads: the watchdog thread must not
 * block in write(2), where it would hold the lock that stopping the
 * watchdog (and freeing the loop) takes: they hung for ever. */
static void *stall_100ms(void *arg) {
    (void)arg;
    int64_t start = now_ns();
    while (now_ns() - start < 100 * 1000000LL) {
    }
    return NULL;
}

static void *stop_watching(void *arg) {
    cio_loop *loop = arg;
    CHECK_OK(cio_loop_set_watchdog(loop, 0, 0));
    CHECK_OK(cio_loop_free(loop));
    return NULL;
}

TEST(a_full_report_pipe_never_blocks_the_watchdog) {
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    /* Filled while non-blocking, then blocking again, as the watchdog
     * would find a pipe whose reader stopped reading. */
    CHECK_OK(fcntl(p[1], F_SETFL, O_NONBLOCK));
    char block[4096] = {0};
    while (write(p[1], block, sizeof block) > 0) {
    }
    CHECK_OK(fcntl(p[1], F_SETFL, 0));
    cio_loop *loop = test_loop();
    cio_watchdog_options o = {.threshold_ms = 10, .fd = p[1]};
    CHECK_OK(cio_loop_set_watchdog_with(loop, &o));
    cio_task *t;
    CHECK_OK(cio_spawn(loop, stall_100ms, NULL, &t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    pthread_t stopper;
    CHECK_OK(pthread_create(&stopper, NULL, stop_watching, loop));
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    if (pthread_timedjoin_np(stopper, NULL, &until) != 0)
        FAIL("stopping the watchdog hung on a full report pipe");
    close(p[0]);
    close(p[1]);
}

/* ---- 9: no false report ---------------------------------------------------- */

#define YIELDERS 1000
static long yields;

/* 1 ms of work, a yield, 1 ms more: each step gives the loop back. */
static void *work_and_yield(void *arg) {
    (void)arg;
    for (int i = 0; i < 2; i++) {
        int64_t start = now_ns();
        while (now_ns() - start < 1000000) {
        }
        yields++;
        CHECK_OK(cio_sleep(0));
    }
    return NULL;
}

static void *spawn_yielders(void *arg) {
    (void)arg;
    static cio_task *tasks[YIELDERS];
    cio_loop *loop = cio_running_loop();
    /* The spawner yields too: a thousand spawns in one step would be a
     * stall of their own on a slow build (AddressSanitizer). */
    for (int i = 0; i < YIELDERS; i++) {
        CHECK_OK(cio_spawn(loop, work_and_yield, NULL, &tasks[i]));
        if (i % 50 == 49) CHECK_OK(cio_sleep(0));
    }
    for (int i = 0; i < YIELDERS; i++) {
        CHECK_OK(cio_await(tasks[i], NULL));
        cio_future_unref(tasks[i]);
    }
    return NULL;
}

TEST(tasks_yielding_every_millisecond_are_never_reported) {
    /* 1,000 tasks (a million 1 ms steps would take 17 minutes; the million
     * yielding tasks of the design, with less work each, are the test
     * below) each yielding after every 1 ms of work, 2 s in all.
     * The threshold (250 ms, 250 steps) leaves room for a thread that a
     * loaded host deschedules for a while. */
    cio_loop *loop = test_loop();
    watch(loop, 250);
    int64_t start = now_ns();
    CHECK_OK(test_run(loop, spawn_yielders, NULL, NULL));
    fprintf(stderr, "%ld steps of 1 ms in %.2f s\n", yields, (double)(now_ns() - start) / 1e9);
    CHECK_EQ(yields, 2 * YIELDERS);
    read_reports(loop);
    CHECK_EQ(count(reports, "cio: watchdog"), 0);
    CHECK_OK(cio_loop_free(loop));
}

/* Acceptance test 9 at its size: a million tasks, each doing a little
 * work between yields, with the watchdog at 100 ms. They run in waves of
 * at most LIVE_TASKS alive at once on the smallest stacks, so the pool
 * reuses stacks and memory stays near LIVE_TASKS stacks, not a million.
 * Under Valgrind (its preload library is in LD_PRELOAD) or qemu-user
 * (CIO_TEST_EMULATED) a million would take hours: 20,000 there, and the
 * test prints the count it used. */
#define LIVE_TASKS 10000
static long million_target, million_done, million_alive, million_peak;
static volatile unsigned long work_sink;

static void a_little_work(void) {
    for (int i = 0; i < 100; i++) work_sink += (unsigned long)i;
}

static void *work_a_little_and_yield(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++) {
        a_little_work();
        if (i < 2) CHECK_OK(cio_sleep(0));
    }
    million_done++;
    million_alive--;
    return NULL;
}

static void *spawn_in_waves(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task_options opts = {.stack_size = CIO_MIN_STACK_SIZE};
    for (long i = 0; i < million_target; i++) {
        while (million_alive >= LIVE_TASKS) CHECK_OK(cio_sleep(0));
        int rc = cio_spawn_with(loop, work_a_little_and_yield, NULL, &opts, NULL);
        if (rc < 0) FAIL("spawn %ld failed: %s", i + 1, cio_strerror(rc));
        if (++million_alive > million_peak) million_peak = million_alive;
        /* The spawner yields too: a long run of spawns is a step of its own. */
        if (i % 256 == 255) CHECK_OK(cio_sleep(0));
    }
    while (million_alive > 0) CHECK_OK(cio_sleep(0));
    return NULL;
}

static int under_valgrind_or_qemu(void) {
    const char *preload = getenv("LD_PRELOAD");
    return CIO_TEST_EMULATED || (preload && strstr(preload, "vgpreload"));
}

TEST(million_tasks_that_yield_are_never_reported) {
    million_target = under_valgrind_or_qemu() ? 20000 : 1000000;
    cio_loop *loop = test_loop();
    watch(loop, 100);
    int64_t start = now_ns();
    CHECK_OK(test_run(loop, spawn_in_waves, NULL, NULL));
    fprintf(stderr, "%ld tasks (%ld alive at most), 3 steps each, in %.2f s\n", million_done,
            million_peak, (double)(now_ns() - start) / 1e9);
    printf("tasks used: %ld\n", million_done);
    CHECK_EQ(million_done, million_target);
    read_reports(loop);
    CHECK_EQ(count(reports, "cio: watchdog"), 0);
    CHECK_OK(cio_loop_free(loop));
}

/* A loop waiting for I/O or a timer is idle, not stalled. */
static void *sleep_half_a_second(void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(0.5));
    return NULL;
}

TEST(idle_loop_is_never_reported) {
    cio_loop *loop = test_loop();
    watch(loop, 100);
    CHECK_OK(test_run(loop, sleep_half_a_second, NULL, NULL));
    read_reports(loop);
    CHECK_EQ(count(reports, "cio: watchdog"), 0);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- 14, second half: a loop stuck for good still reports -------------------- */

static atomic_int reported;
static char stuck_report[8192];

static void on_stall(cio_loop *loop, const char *report, void *arg) {
    CHECK(arg == (void *)loop);
    if (atomic_load(&reported)) return;
    snprintf(stuck_report, sizeof stuck_report, "%s", report);
    atomic_store(&reported, 1);
}

/* Spins until the watchdog has reported it: without a report it never
 * ends (and the test times out). The thread stays runnable all along (the
 * report must say "computing"), but it offers the CPU at every turn:
 * Valgrind runs one thread at a time and hands over only when the running
 * one blocks or yields, and a spin that never did starved the watchdog
 * thread until the test timed out (seen once in CI). */
__attribute__((noinline)) void wd_spin_until_reported(void) {
    while (!atomic_load_explicit(&reported, memory_order_relaxed)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts); /* where a sanitizer delivers signals */
        sched_yield();
    }
}

void *wd_stuck_task(void *arg) {
    (void)arg;
    wd_spin_until_reported();
    return NULL;
}

TEST(loop_stuck_in_a_busy_task_still_reports_through_on_stall) {
    cio_loop *loop = test_loop();
    CHECK_OK(pipe2(report_fds, O_CLOEXEC));
    cio_watchdog_options o = {.threshold_ms = 100, .fd = report_fds[1], .on_stall = on_stall,
                              .on_stall_arg = loop};
    CHECK_OK(cio_loop_set_watchdog_with(loop, &o));
    cio_task_options opts = {.name = "stuck"};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, wd_stuck_task, NULL, &opts, &t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    read_reports(loop);
    fprintf(stderr, "on_stall got:\n%s", stuck_report);
    CHECK(strstr(stuck_report, "task 1 'stuck' running wd_stuck_task (") != NULL);
    CHECK(strstr(stuck_report, "busy: computing") != NULL);
    CHECK(strstr(reports, stuck_report) != NULL); /* the same text went to the fd */
    CHECK_OK(cio_loop_free(loop));
}

/* ---- the watchdog thread's life ------------------------------------------------ */

/* How many watchdog threads the process has: threads named "cio-watchdog"
 * in /proc/self/task. Counting all threads would also count those a
 * sanitizer or qemu-user starts and ends on their own (qemu's came and
 * went in the aarch64 run). */
static long watchdog_threads(void) {
    DIR *dir = opendir("/proc/self/task");
    CHECK(dir != NULL);
    long n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f) continue; /* the thread ended meanwhile */
        if (fgets(comm, sizeof comm, f) && strcmp(comm, "cio-watchdog\n") == 0) n++;
        fclose(f);
    }
    closedir(dir);
    return n;
}

/* The count once it reaches n, or after 2 s: a joined thread may stay
 * listed in /proc for a moment after pthread_join returned (seen under
 * qemu-user). */
static long watchdog_threads_settled_at(long n) {
    long got = watchdog_threads();
    for (int i = 0; i < 200 && got != n; i++) {
        usleep(10000);
        got = watchdog_threads();
    }
    return got;
}

TEST(watchdog_thread_starts_with_the_first_loop_and_ends_with_the_last) {
    cio_loop *a = test_loop(), *b = test_loop();
    /* One start and stop first, as before: the first start once met a
     * sanitizer's own thread starting with the process's second one. */
    CHECK_OK(cio_loop_set_watchdog(a, 100, 0));
    CHECK_OK(cio_loop_set_watchdog(a, 0, 0));
    long before = watchdog_threads_settled_at(0);
    CHECK_OK(cio_loop_set_watchdog(a, 100, 0));
    CHECK_EQ(watchdog_threads(), before + 1);
    CHECK_OK(cio_loop_set_watchdog(b, 50, CIO_WATCHDOG_NO_BACKTRACE));
    CHECK_OK(cio_loop_set_watchdog(a, 200, 0)); /* new settings, same thread */
    CHECK_EQ(watchdog_threads(), before + 1);
    CHECK_OK(cio_loop_set_watchdog(a, 0, 0));
    CHECK_OK(cio_loop_set_watchdog(a, 0, 0)); /* not watched: nothing to do */
    CHECK_EQ(watchdog_threads(), before + 1);
    /* Closing the last watched loop stops and joins the thread. */
    CHECK_OK(cio_loop_free(b));
    CHECK_EQ(watchdog_threads_settled_at(before), before);
    /* And it starts again. */
    CHECK_OK(cio_loop_set_watchdog(a, 100, 0));
    CHECK_EQ(watchdog_threads(), before + 1);
    CHECK_OK(cio_loop_free(a));
    CHECK_EQ(watchdog_threads_settled_at(before), before);
}

static void *set_from_on_stall_result;

static void on_stall_calls_back(cio_loop *loop, const char *report, void *arg) {
    (void)report;
    (void)arg;
    set_from_on_stall_result = IPTR(cio_loop_set_watchdog(loop, 0, 0));
    atomic_store(&reported, 1);
}

TEST(watchdog_rejects_bad_settings_and_calls_from_on_stall) {
    cio_loop *loop = test_loop();
    cio_watchdog_options o = {.threshold_ms = 100, .fd = -1};
    CHECK_ERR(cio_loop_set_watchdog_with(loop, &o), -EINVAL);
    o.fd = 0;
    o.signal = SIGRTMIN - 1;
    CHECK_ERR(cio_loop_set_watchdog_with(loop, &o), -EINVAL);
    o.signal = 0;
    CHECK_ERR(cio_loop_set_watchdog_with(loop, NULL), -EINVAL);
    CHECK_ERR(cio_loop_set_watchdog(NULL, 100, 0), -EINVAL);
    /* Unknown flags are refused (convention 2), with either call. */
    CHECK_ERR(cio_loop_set_watchdog(loop, 100, 0x80), -EINVAL);
    o.flags = 0xfffffff0u;
    CHECK_ERR(cio_loop_set_watchdog_with(loop, &o), -EINVAL);
    o.flags = 0;
    /* From the callback, in the watchdog's own thread: refused. */
    atomic_store(&reported, 0);
    CHECK_OK(pipe2(report_fds, O_CLOEXEC));
    cio_watchdog_options cb = {.threshold_ms = 50, .fd = report_fds[1],
                               .flags = CIO_WATCHDOG_NO_BACKTRACE, .on_stall = on_stall_calls_back};
    CHECK_OK(cio_loop_set_watchdog_with(loop, &cb));
    cio_task *t;
    CHECK_OK(cio_spawn(loop, wd_stuck_task, NULL, &t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    read_reports(loop);
    CHECK_ERR(PTRI(set_from_on_stall_result), -EDEADLK);
    CHECK(strstr(reports, "unknown (CIO_WATCHDOG_NO_BACKTRACE)") != NULL);
    CHECK_OK(cio_loop_close(loop));
    CHECK_ERR(cio_loop_set_watchdog(loop, 100, 0), -CIO_ELOOPCLOSED);
    CHECK_OK(cio_loop_free(loop));
}
