/*
 * The virtual clock (cio_loop_options.virtual_clock): long sleeps end at
 * once, in deadline order, with the loop time exactly at each deadline;
 * time stands still while code runs; the clock does not jump over I/O in
 * flight or a call on the thread pool; timeouts work in virtual time.
 */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

static cio_loop *virtual_loop(void) {
    cio_loop_options o = {0};
    o.virtual_clock = 1;
    cio_loop *loop = NULL;
    CHECK_OK(cio_loop_new_with(&o, &loop));
    return loop;
}

static void finish(cio_loop *loop) {
    CHECK_OK(cio_loop_close(loop));
    CHECK_OK(cio_loop_free(loop));
}

static int64_t woke_at[3];
static int order[3], woken;

static void *sleeper(void *arg) {
    int i = PTRI(arg);
    static const double delays[3] = {3600, 1800, 7200};
    CHECK_OK(cio_sleep(delays[i]));
    woke_at[i] = cio_loop_time_ns(cio_running_loop());
    order[woken++] = i;
    return NULL;
}

static void *hour_sleeps(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    int64_t t0 = cio_loop_time_ns(loop);
    cio_task *t[3];
    for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, sleeper, IPTR(i), &t[i]));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(cio_await(t[i], NULL));
        cio_future_unref(t[i]);
    }
    CHECK_EQ(order[0], 1);
    CHECK_EQ(order[1], 0);
    CHECK_EQ(order[2], 2);
    /* The tasks started in the same step, at t0: each woke exactly at its
     * deadline. */
    CHECK_EQ(woke_at[1], t0 + (int64_t)1800 * 1000000000);
    CHECK_EQ(woke_at[0], t0 + (int64_t)3600 * 1000000000);
    CHECK_EQ(woke_at[2], t0 + (int64_t)7200 * 1000000000);
    return NULL;
}

TEST(hour_long_sleeps_end_at_once_in_deadline_order_at_exact_deadlines) {
    cio_loop *loop = virtual_loop();
    CHECK_OK(test_run(loop, hour_sleeps, NULL, NULL));
    finish(loop);
}

static void *still_while_running(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    int64_t t0 = cio_loop_time_ns(loop);
    usleep(20000); /* the wall moves; the loop's clock does not */
    CHECK_EQ(cio_loop_time_ns(loop), t0);
    CHECK_OK(cio_sleep(0));
    CHECK_EQ(cio_loop_time_ns(loop), t0);
    /* A timeout in loop time: exactly 5 s after the start. */
    cio_timeout scope;
    CHECK_OK(cio_timeout_enter(&scope, 5));
    int rc = cio_sleep(10);
    CHECK_ERR(cio_timeout_exit(&scope, rc), -ETIMEDOUT);
    CHECK_EQ(cio_loop_time_ns(loop), t0 + (int64_t)5 * 1000000000);
    return NULL;
}

TEST(time_stands_still_while_code_runs_and_timeouts_use_it) {
    cio_loop *loop = virtual_loop();
    int64_t before = cio_loop_time_ns(loop);
    usleep(10000);
    CHECK_EQ(cio_loop_time_ns(loop), before); /* also outside a run */
    CHECK_OK(test_run(loop, still_while_running, NULL, NULL));
    finish(loop);
}

static int sv[2];

static void *send_later(void *arg) {
    (void)arg;
    usleep(50000);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    return NULL;
}

static void *io_in_flight(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    int64_t t0 = cio_loop_time_ns(loop);
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, send_later, NULL));
    /* A recv is in flight: the clock may not jump to the timeout's
     * deadline, so the byte sent 50 ms later (real time) arrives first. */
    char c;
    cio_timeout scope;
    CHECK_OK(cio_timeout_enter(&scope, 3600));
    int rc = (int)cio_sock_recv(sv[0], &c, 1);
    CHECK_EQ(cio_timeout_exit(&scope, rc), 1);
    pthread_join(th, NULL);
    int64_t t1 = cio_loop_time_ns(loop);
    /* The clock moved by the real wait, not by an hour. */
    CHECK(t1 > t0);
    CHECK(t1 < t0 + (int64_t)3600 * 1000000000);
    return NULL;
}

TEST(no_jump_over_io_in_flight) {
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
    cio_loop *loop = virtual_loop();
    CHECK_OK(test_run(loop, io_in_flight, NULL, NULL));
    finish(loop);
    close(sv[0]);
    close(sv[1]);
}

static void *slow_call(void *arg) {
    (void)arg;
    usleep(50000);
    return IPTR(7);
}

static int pool_done_first;

static void *hour_then_check(void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(3600));
    return NULL;
}

static void *pool_in_flight(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    int64_t t0 = cio_loop_time_ns(loop);
    cio_task *hour;
    CHECK_OK(cio_spawn(loop, hour_then_check, NULL, &hour));
    void *r;
    CHECK_OK(cio_to_thread(slow_call, NULL, &r));
    CHECK_EQ(PTRI(r), 7);
    /* The hour did not pass while the call was on the pool. */
    pool_done_first = cio_future_done(hour) == 0;
    CHECK(cio_loop_time_ns(loop) < t0 + (int64_t)3600 * 1000000000);
    CHECK_OK(cio_await(hour, NULL));
    CHECK_EQ(cio_loop_time_ns(loop), t0 + (int64_t)3600 * 1000000000);
    cio_future_unref(hour);
    return NULL;
}

TEST(no_jump_over_a_call_on_the_thread_pool) {
    cio_loop *loop = virtual_loop();
    CHECK_OK(test_run(loop, pool_in_flight, NULL, NULL));
    CHECK_EQ(pool_done_first, 1);
    finish(loop);
}

/* asyncio's test_wait_for's SlowTask: "tosleep = exitat - now; if
 * tosleep <= 0: break; await sleep(tosleep)". The loop time is whole
 * nanoseconds and exitat a double, so the clock can land a fraction of a
 * nanosecond short of it; the sleep for that must still move the clock. */
static void *sleep_until_passed(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    for (int trial = 0; trial < 200; trial++) {
        double exitat = cio_loop_time(loop) + 0.1 + trial * 1e-7 / 3;
        int steps = 0;
        for (;;) {
            double tosleep = exitat - cio_loop_time(loop);
            if (tosleep <= 0) break;
            CHECK_OK(cio_sleep(tosleep));
            CHECK_INT(++steps, <, 4);
        }
    }
    return NULL;
}

TEST(a_sleep_shorter_than_a_nanosecond_still_moves_the_clock) {
    cio_loop *loop = virtual_loop();
    CHECK_OK(test_run(loop, sleep_until_passed, NULL, NULL));
    finish(loop);
}

TEST(a_plain_loop_keeps_the_wall_clock) {
    cio_loop *loop = test_loop();
    int64_t a = cio_loop_time_ns(loop);
    usleep(2000);
    CHECK(cio_loop_time_ns(loop) > a);
    finish(loop);
}
