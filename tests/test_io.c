/*
 * The operation layer: FIFO service of many operations per descriptor, the
 * two-phase cancel, deadlines and timeout scopes on I/O, close and loop
 * close with operations in flight, add_reader/add_writer, the iteration's
 * I/O rule, and the regressions of the readiness-based layer it replaced.
 */
#include "test.h"

#include "base/fault.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static void pair(int sv[2]) {
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
}

static void stop_loop(cio_loop *loop, void *arg) {
    (void)arg;
    CHECK_OK(cio_loop_stop(loop));
}

/* Runs the loop until it has nothing left to do for `seconds`. */
static void run_for(cio_loop *loop, double seconds) {
    CHECK_OK(cio_call_later(loop, seconds, stop_loop, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
}

static void *read_a_byte(void *arg) {
    char c;
    ssize_t n = cio_sock_recv(PTRI(arg), &c, 1);
    if (n < 0) return cio_raise((int)n);
    return IPTR(n == 0 ? -1 : c);
}

static void *wait_readable(void *arg) {
    int rc = cio_wait_readable(PTRI(arg));
    return rc < 0 ? cio_raise(rc) : IPTR(1);
}

TEST(readers_and_pollers_are_served_in_arrival_order) {
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    cio_task *t[4];
    CHECK_OK(cio_spawn(loop, read_a_byte, IPTR(sv[0]), &t[0]));
    CHECK_OK(cio_spawn(loop, wait_readable, IPTR(sv[0]), &t[1]));
    CHECK_OK(cio_spawn(loop, read_a_byte, IPTR(sv[0]), &t[2]));
    CHECK_OK(cio_spawn(loop, read_a_byte, IPTR(sv[0]), &t[3]));
    run_for(loop, 0.005);
    CHECK_EQ(loop_stats(loop).io_in_flight, 4);
    CHECK_EQ(write(sv[1], "xy", 2), 2);
    run_for(loop, 0.005);
    void *r;
    CHECK_OK(cio_future_result(t[0], &r));
    CHECK_EQ(PTRI(r), 'x');
    CHECK_OK(cio_future_result(t[1], &r)); /* woken by the same readiness */
    CHECK_OK(cio_future_result(t[2], &r));
    CHECK_EQ(PTRI(r), 'y');
    CHECK(!cio_future_done(t[3]));
    CHECK_EQ(write(sv[1], "z", 1), 1);
    CHECK_OK(cio_run_until_complete(loop, t[3], &r));
    CHECK_EQ(PTRI(r), 'z');
    CHECK_EQ(loop_stats(loop).io_in_flight, 0);
    for (int i = 0; i < 4; i++) cio_future_unref(t[i]);
    CHECK_OK(cio_close(sv[0]));
    CHECK_OK(cio_close(sv[1]));
    cio_loop_free(loop);
}

/* ---- cancellation ------------------------------------------------------- */

TEST(cancelled_recv_leaves_the_bytes_for_the_next_reader) {
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    cio_task *r;
    CHECK_OK(cio_spawn(loop, read_a_byte, IPTR(sv[0]), &r));
    run_for(loop, 0.005);
    CHECK_EQ(cio_task_cancel(r, NULL), 1);
    CHECK_ERR(cio_run_until_complete(loop, r, NULL), -ECANCELED);
    CHECK_EQ(loop_stats(loop).io_in_flight, 0);
    cio_future_unref(r);
    CHECK_EQ(write(sv[1], "k", 1), 1);
    void *c;
    CHECK_OK(test_run(loop, read_a_byte, IPTR(sv[0]), &c));
    CHECK_EQ(PTRI(c), 'k');
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

static int late_fd;
static cio_task *late_task;
static int late_got, late_next;

static void *read_then_sleep(void *arg) {
    (void)arg;
    char c = 0;
    late_got = (int)cio_sock_recv(late_fd, &c, 1);
    late_next = cio_sleep(0);
    return IPTR(c);
}

static void cancel_late(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
    CHECK_EQ(cio_task_cancel(late_task, NULL), 1);
}

/* Writes to the peer, and schedules the cancellation for the next batch:
 * that batch also holds the reader's wake-up (its recv completes in the
 * poll before it), behind the cancellation. */
static void write_and_cancel_soon(cio_loop *loop, void *arg) {
    CHECK_EQ(write(PTRI(arg), "q", 1), 1);
    CHECK_OK(cio_call_soon(loop, cancel_late, NULL, NULL));
}

TEST(cancel_after_completion_keeps_the_data_and_cancels_at_the_next_await) {
    /* The operation completed before the cancellation reached the task:
     * the byte is returned, not dropped, and the cancellation lands at the
     * task's next suspension. */
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    late_fd = sv[0];
    CHECK_OK(cio_spawn(loop, read_then_sleep, NULL, &late_task));
    CHECK_OK(cio_call_later(loop, 0.005, write_and_cancel_soon, IPTR(sv[1]), NULL));
    CHECK_ERR(cio_run_until_complete(loop, late_task, NULL), -ECANCELED);
    CHECK_EQ(late_got, 1);
    CHECK_ERR(late_next, -ECANCELED);
    char c;
    CHECK_EQ(recv(sv[0], &c, 1, MSG_DONTWAIT), -1); /* nothing left behind */
    cio_future_unref(late_task);
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

static void *recv_with_deadline(void *arg) {
    char c;
    double when = cio_loop_time(cio_running_loop()) + 0.01;
    ssize_t n = cio_sock_recv_until(PTRI(arg), &c, 1, when);
    return IPTR(n);
}

static void *recv_in_timeout_scope(void *arg) {
    cio_timeout scope;
    CHECK_OK(cio_timeout_enter(&scope, 0.01));
    char c;
    int rc = (int)cio_sock_recv(PTRI(arg), &c, 1);
    CHECK_ERR(rc, -ECANCELED);
    return IPTR(cio_timeout_exit(&scope, rc));
}

TEST(deadlines_and_timeout_scopes_reach_operations) {
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    void *rc;
    CHECK_OK(test_run(loop, recv_with_deadline, IPTR(sv[0]), &rc));
    CHECK_ERR(PTRI(rc), -ETIMEDOUT);
    CHECK_OK(test_run(loop, recv_in_timeout_scope, IPTR(sv[0]), &rc));
    CHECK_ERR(PTRI(rc), -ETIMEDOUT);
    CHECK_EQ(loop_stats(loop).io_in_flight, 0);
    CHECK_EQ(loop_stats(loop).timers, 0);
    /* The descriptor still works, and nothing was consumed. */
    CHECK_EQ(write(sv[1], "d", 1), 1);
    CHECK_OK(test_run(loop, read_a_byte, IPTR(sv[0]), &rc));
    CHECK_EQ(PTRI(rc), 'd');
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

static double race_when;
static cio_task *race_task;

static ssize_t race_result;

static void *recv_until_race(void *arg) {
    race_when = cio_loop_time(cio_running_loop()) + 0.02;
    char c;
    race_result = cio_sock_recv_until(PTRI(arg), &c, 1, race_when);
    return NULL;
}

static void cancel_race_task(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
    CHECK_EQ(cio_task_cancel(race_task, NULL), 1);
}

static void *arm_cancel_at_the_deadline(void *arg) {
    (void)arg;
    /* Armed after the recv's own deadline timer, for the same moment: it
     * fires right after it, in the same batch, before the task runs. */
    CHECK_OK(cio_call_at(cio_running_loop(), race_when, cancel_race_task, NULL, NULL));
    return NULL;
}

TEST(a_cancel_racing_the_deadline_is_not_lost) {
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    CHECK_OK(cio_spawn(loop, recv_until_race, IPTR(sv[0]), &race_task));
    CHECK_OK(cio_spawn(loop, arm_cancel_at_the_deadline, NULL, NULL));
    CHECK_ERR(cio_run_until_complete(loop, race_task, NULL), -ECANCELED);
    /* The deadline cancelled the operation, but the task was cancelled
     * before it ran again: the recv reports the cancellation, which a
     * retry-on-timeout loop would otherwise never see. */
    CHECK_ERR(race_result, -ECANCELED);
    cio_future_unref(race_task);
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

#define BIG (1 << 20)
static char big_a[BIG], big_b[BIG];
static int sendall_fd;

static void *sendall_big(void *arg) {
    return IPTR(cio_sock_sendall(sendall_fd, arg, BIG));
}

static void *read_everything(void *arg) {
    static char got[2 * BIG];
    size_t n = 0;
    while (n < sizeof got) {
        ssize_t r = cio_sock_recv(PTRI(arg), got + n, sizeof got - n);
        CHECK_INT(r, >, 0);
        n += (size_t)r;
    }
    /* One task's bytes all come before the other's. */
    int runs = 1;
    for (size_t i = 1; i < n; i++)
        if (got[i] != got[i - 1]) runs++;
    return IPTR(runs);
}

TEST(two_sendalls_on_one_socket_do_not_interleave) {
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    memset(big_a, 'A', BIG);
    memset(big_b, 'B', BIG);
    sendall_fd = sv[0];
    cio_task *a, *b, *r;
    CHECK_OK(cio_spawn(loop, sendall_big, big_a, &a));
    CHECK_OK(cio_spawn(loop, sendall_big, big_b, &b));
    CHECK_OK(cio_spawn(loop, read_everything, IPTR(sv[1]), &r));
    void *runs, *n;
    CHECK_OK(cio_run_until_complete(loop, r, &runs));
    CHECK_EQ(PTRI(runs), 2);
    CHECK_OK(cio_run_until_complete(loop, a, &n));
    CHECK_EQ(PTRI(n), BIG);
    CHECK_OK(cio_run_until_complete(loop, b, &n));
    CHECK_EQ(PTRI(n), BIG);
    cio_future_unref(a);
    cio_future_unref(b);
    cio_future_unref(r);
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

/* ---- close -------------------------------------------------------------- */

static void *send_forever(void *arg) {
    static char chunk[65536];
    for (;;) {
        ssize_t n = cio_sock_send(PTRI(arg), chunk, sizeof chunk);
        if (n < 0) return cio_raise((int)n);
    }
}

TEST(close_ends_every_operation_of_the_descriptor_with_ebadf) {
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    cio_task *t[3];
    CHECK_OK(cio_spawn(loop, read_a_byte, IPTR(sv[0]), &t[0]));
    CHECK_OK(cio_spawn(loop, wait_readable, IPTR(sv[0]), &t[1]));
    CHECK_OK(cio_spawn(loop, send_forever, IPTR(sv[0]), &t[2]));
    run_for(loop, 0.01);
    CHECK_EQ(loop_stats(loop).io_in_flight, 3);
    CHECK_OK(cio_close(sv[0]));
    for (int i = 0; i < 3; i++) {
        CHECK_ERR(cio_run_until_complete(loop, t[i], NULL), -EBADF);
        cio_future_unref(t[i]);
    }
    CHECK_EQ(loop_stats(loop).io_in_flight, 0);
    close(sv[1]);
    cio_loop_free(loop);
}

TEST(loop_close_reaps_operations_in_flight) {
    /* Tasks blocked in I/O when the loop closes: their operations end before
     * their stacks go (ASan and Valgrind would see a write into a freed
     * stack otherwise), and the descriptors stay usable. */
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, read_a_byte, IPTR(sv[0]), NULL));
    CHECK_OK(cio_spawn(loop, send_forever, IPTR(sv[1]), NULL));
    /* The loop runs until the data has come (the reader stops it), not for
     * a fixed time: on a slow machine the time was up before the first
     * poll, and on io_uring the send, still in the submission queue, was
     * then dropped by close, leaving no byte to read. */
    CHECK_OK(cio_add_reader(loop, sv[0], stop_loop, NULL));
    run_for(loop, 30.0);
    CHECK_OK(cio_loop_close(loop));
    char c;
    CHECK_EQ(recv(sv[0], &c, 1, MSG_DONTWAIT), 1);
    cio_loop_free(loop);
    close(sv[0]);
    close(sv[1]);
}

/* ---- watchers ----------------------------------------------------------- */

static int reader_calls, other_calls, stop_at;

/* Each counts its calls and stops the loop at the stop_at-th, so the test
 * does not depend on how many iterations fit in some time. */
static void count_reader(cio_loop *loop, void *arg) {
    (void)arg;
    if (++reader_calls == stop_at) CHECK_OK(cio_loop_stop(loop));
}

static void count_other(cio_loop *loop, void *arg) {
    (void)arg;
    if (++other_calls == stop_at) CHECK_OK(cio_loop_stop(loop));
}

static void remove_it(cio_loop *loop, void *arg) {
    CHECK_EQ(cio_remove_reader(loop, PTRI(arg)), 1);
}

/* Runs until a callback stops the loop, failing after 10 s. */
static void give_up(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
    FAIL("the watcher was not called as often as expected");
}

static void run_until_stopped(cio_loop *loop) {
    cio_handle h;
    CHECK_OK(cio_call_later(loop, 10.0, give_up, NULL, &h));
    CHECK_OK(cio_run_forever(loop));
    cio_handle_cancel(&h);
}

TEST(add_reader_is_level_triggered_replaced_and_removed) {
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    reader_calls = other_calls = 0;
    stop_at = 3;
    CHECK_OK(cio_add_reader(loop, sv[0], count_reader, NULL));
    run_for(loop, 0.005);
    CHECK_EQ(reader_calls, 0); /* not readable yet */
    CHECK_EQ(write(sv[1], "r", 1), 1);
    /* Level-triggered: called again and again while the byte waits. */
    run_until_stopped(loop);
    CHECK_EQ(reader_calls, 3);
    /* A second add replaces the callback. */
    CHECK_OK(cio_add_reader(loop, sv[0], count_other, NULL));
    run_until_stopped(loop);
    CHECK_EQ(reader_calls, 3);
    CHECK_EQ(other_calls, 3);
    /* Removed from a callback, it is never called again. */
    CHECK_OK(cio_call_soon(loop, remove_it, IPTR(sv[0]), NULL));
    run_for(loop, 0.005);
    int after = other_calls;
    CHECK_INT(after, <=, 4);
    run_for(loop, 0.005);
    CHECK_EQ(other_calls, after);
    CHECK_EQ(cio_remove_reader(loop, sv[0]), 0);
    CHECK_EQ(loop_stats(loop).io_in_flight, 0);
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

static void write_once_then_remove(cio_loop *loop, void *arg) {
    if (++other_calls == stop_at) CHECK_OK(cio_loop_stop(loop));
    CHECK_EQ(write(PTRI(arg), "w", 1), 1);
    CHECK_EQ(cio_remove_writer(loop, PTRI(arg)), 1);
}

TEST(add_writer_and_bad_input) {
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    other_calls = 0;
    stop_at = 1;
    CHECK_OK(cio_add_writer(loop, sv[0], write_once_then_remove, IPTR(sv[0])));
    run_until_stopped(loop);
    run_for(loop, 0.005);
    CHECK_EQ(other_calls, 1);
    char c;
    CHECK_EQ(read(sv[1], &c, 1), 1);
    CHECK_ERR(cio_add_reader(NULL, sv[0], count_reader, NULL), -EINVAL);
    CHECK_ERR(cio_add_reader(loop, sv[0], NULL, NULL), -EINVAL);
    CHECK_ERR(cio_add_reader(loop, -1, count_reader, NULL), -EBADF);
    CHECK_ERR(cio_add_reader(loop, 1 << 28, count_reader, NULL), -EBADF);
    int file = open("/proc/self/status", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    CHECK_ERR(cio_add_reader(loop, file, count_reader, NULL), -EPERM);
    close(file);
    CHECK_EQ(cio_remove_writer(loop, 12345), 0);
    CHECK_EQ(cio_remove_reader(NULL, 0), -EINVAL);
    /* Closing the descriptor removes its watchers. */
    CHECK_OK(cio_add_reader(loop, sv[0], count_reader, NULL));
    CHECK_OK(cio_close(sv[0]));
    CHECK_EQ(loop_stats(loop).io_in_flight, 0);
    CHECK_OK(cio_loop_close(loop));
    CHECK_ERR(cio_add_reader(loop, sv[1], count_reader, NULL), -CIO_ELOOPCLOSED);
    close(sv[1]);
    cio_loop_free(loop);
}

/* ---- the iteration ------------------------------------------------------ */

static int chain_left, chain_ran, woke_after;

static void chain(cio_loop *loop, void *arg) {
    (void)arg;
    chain_ran++;
    if (--chain_left > 0) CHECK_OK(cio_call_soon(loop, chain, NULL, NULL));
}

static void *note_wake(void *arg) {
    CHECK_OK(cio_wait_readable(PTRI(arg)));
    woke_after = chain_ran;
    return NULL;
}

TEST(readiness_is_seen_on_the_next_iteration_while_callbacks_keep_coming) {
    /* asyncio's _run_once polls on every iteration while anything is
     * watched: a chain of call_soon callbacks must not hold back a ready
     * descriptor (the old loop polled every 61 busy iterations). */
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    cio_task *t;
    CHECK_OK(cio_spawn(loop, note_wake, IPTR(sv[0]), &t));
    run_for(loop, 0.002);
    CHECK_EQ(write(sv[1], "!", 1), 1);
    chain_left = 200;
    chain_ran = 0;
    woke_after = -1;
    CHECK_OK(cio_call_soon(loop, chain, NULL, NULL));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    CHECK_INT(woke_after, >=, 0);
    CHECK_INT(woke_after, <=, 2);
    cio_future_unref(t);
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

static void *sendall_a_lot(void *arg) {
    static char big[1 << 22];
    ssize_t n = cio_sock_sendall(PTRI(arg), big, sizeof big);
    return IPTR(n < 0 ? n : 0);
}

TEST(peer_half_close_does_not_spin_a_blocked_writer) {
    /* The peer shuts down its write side while a task blocks in sendall on
     * a full socket: the writer must wait quietly (the old loop re-armed
     * EPOLLRDHUP for it and spun at 100% CPU). */
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    cio_task *t;
    CHECK_OK(cio_spawn(loop, sendall_a_lot, IPTR(sv[0]), &t));
    run_for(loop, 0.01);
    CHECK_OK(shutdown(sv[1], SHUT_WR));
    uint64_t before = loop_stats(loop).iterations;
    run_for(loop, 0.05);
    uint64_t spent = loop_stats(loop).iterations - before;
    CHECK_INT(spent, <, 20);
    CHECK(!cio_future_done(t));
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    cio_future_unref(t);
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

/* ---- descriptor numbers ------------------------------------------------- */

static int high_fd;

static void *wait_high(void *arg) {
    (void)arg;
    return IPTR(cio_wait_readable(high_fd));
}

static void *wait_low_while_table_grows(void *arg) {
    int fd = PTRI(arg);
    cio_task *other;
    CHECK_OK(cio_spawn(cio_running_loop(), wait_high, NULL, &other));
    /* Suspended here while `other` makes the loop grow its table. */
    int rc = cio_wait_readable(fd);
    CHECK_OK(rc);
    CHECK_OK(cio_close(high_fd));
    void *r;
    CHECK_OK(cio_await(other, &r));
    CHECK_ERR(PTRI(r), -EBADF);
    cio_future_unref(other);
    return NULL;
}

static void write_to(cio_loop *loop, void *arg) {
    (void)loop;
    CHECK_EQ(write(PTRI(arg), "g", 1), 1);
}

TEST(a_wait_survives_the_descriptor_table_growing_under_it) {
    /* Regression: a task waited on a low descriptor while another task's
     * wait on a far larger number grew the table, and the first task's
     * pointer into the old table dangled (ASan and Valgrind reported it; an
     * echo server crashed at 10,000 connections). */
    struct rlimit rl;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
    int target = rl.rlim_cur > 5000 ? 4999 : (int)rl.rlim_cur - 1;
    cio_loop *loop = test_loop();
    int sv[2], hv[2];
    pair(sv);
    pair(hv);
    high_fd = dup2(hv[0], target);
    CHECK_EQ(high_fd, target);
    cio_task *t;
    CHECK_OK(cio_spawn(loop, wait_low_while_table_grows, IPTR(sv[0]), &t));
    CHECK_OK(cio_call_later(loop, 0.01, write_to, IPTR(sv[1]), NULL));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    close(sv[0]);
    close(sv[1]);
    close(hv[0]);
    close(hv[1]);
    cio_loop_free(loop);
}

static void *read_a_byte_within_5s(void *arg) {
    char c;
    ssize_t n = cio_sock_recv_until(PTRI(arg), &c, 1, cio_loop_time(cio_running_loop()) + 5.0);
    return IPTR(n == 1 ? c : n);
}

TEST(a_number_reused_after_a_plain_close_is_watched_afresh) {
    /* A wait that was cancelled leaves its one-shot registration armed;
     * the program then closes the descriptor with plain close() and the
     * next socket gets the same number. A wait on it must see its data. */
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    cio_task *t;
    CHECK_OK(cio_spawn(loop, wait_readable, IPTR(sv[0]), &t));
    run_for(loop, 0.005);
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    cio_future_unref(t);
    int old = sv[0];
    close(sv[0]);
    close(sv[1]);
    pair(sv);
    CHECK_EQ(sv[0], old);
    CHECK_OK(cio_call_later(loop, 0.005, write_to, IPTR(sv[1]), NULL));
    void *r;
    CHECK_OK(test_run(loop, read_a_byte_within_5s, IPTR(sv[0]), &r));
    CHECK_EQ(PTRI(r), 'g'); /* not -ETIMEDOUT: the new file was watched */
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

static void *wait_huge_closed(void *arg) {
    (void)arg;
    return IPTR(cio_wait_readable(1 << 29));
}

TEST(a_huge_closed_descriptor_is_ebadf_and_costs_nothing) {
    cio_loop *loop = test_loop();
    void *rc;
    CHECK_OK(test_run(loop, wait_huge_closed, NULL, &rc));
    CHECK_ERR(PTRI(rc), -EBADF);
    cio_loop_free(loop);
}

/* ---- blocking descriptors ----------------------------------------------- */

static void *accept_blocking(void *arg) {
    return IPTR(cio_sock_accept(PTRI(arg), NULL, NULL));
}

TEST(accept_and_connect_refuse_a_blocking_socket) {
    cio_loop *loop = test_loop();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
    CHECK_OK(listen(fd, 4));
    void *rc;
    CHECK_OK(test_run(loop, accept_blocking, IPTR(fd), &rc));
    CHECK_ERR(PTRI(rc), -EINVAL);
    close(fd);
    cio_loop_free(loop);
}

/* Two descriptors become readable in one batch; the first one's callback
 * closes the second and gets its number back for a new, idle socket with
 * a watcher of its own. Neither the old watcher (its descriptor is gone)
 * nor the new one (nothing to read) may run for the stale event. */
static int batch_fds[4];
static int batch_calls[3];

static void second_cb(cio_loop *loop, void *arg) {
    (void)loop;
    batch_calls[PTRI(arg)]++;
}

static void first_cb(cio_loop *loop, void *arg) {
    (void)arg;
    batch_calls[0]++;
    char c;
    CHECK_EQ(read(batch_fds[0], &c, 1), 1);
    int old = batch_fds[2];
    CHECK_OK(cio_close(batch_fds[2]));
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
    if (sv[0] != old) {
        /* Make the number come back as the idle socket's. */
        CHECK_EQ(dup2(sv[0], old), old);
        close(sv[0]);
        sv[0] = old;
    }
    batch_fds[2] = sv[0];
    batch_fds[3] = sv[1];
    CHECK_OK(cio_add_reader(loop, sv[0], second_cb, IPTR(2)));
    CHECK_EQ(cio_remove_reader(loop, batch_fds[0]), 1);
}

TEST(events_of_a_descriptor_closed_earlier_in_the_batch_are_ignored) {
    cio_loop *loop = test_loop();
    int a[2], b[2];
    pair(a);
    pair(b);
    batch_fds[0] = a[0];
    batch_fds[2] = b[0];
    memset(batch_calls, 0, sizeof batch_calls);
    CHECK_OK(cio_add_reader(loop, a[0], first_cb, NULL));
    CHECK_OK(cio_add_reader(loop, b[0], second_cb, IPTR(1)));
    CHECK_EQ(write(a[1], "x", 1), 1);
    CHECK_EQ(write(b[1], "y", 1), 1);
    /* Both readable before the loop looks: one batch. If b's callback ran
     * first, it saw its own data, which is fine too; the rule is only
     * about the stale event. */
    run_for(loop, 0.02);
    CHECK_EQ(batch_calls[0], 1);
    CHECK(batch_calls[1] <= 1);
    CHECK_EQ(batch_calls[2], 0);
    CHECK_EQ(cio_remove_reader(loop, batch_fds[2]), 1);
    close(batch_fds[2]);
    close(batch_fds[3]);
    close(a[0]);
    close(a[1]);
    close(b[1]);
    cio_loop_free(loop);
}

/* A task waiting on I/O without a deadline: the dump says no deadline (the
 * wait record once kept a deadline of zero, shown as "deadline in -N s"). */
TEST(dump_of_an_io_wait_without_a_deadline_shows_none) {
    cio_loop *loop = test_loop();
    int sv[2];
    pair(sv);
    cio_task *t;
    CHECK_OK(cio_spawn(loop, wait_readable, IPTR(sv[0]), &t));
    run_for(loop, 0.01);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    CHECK(out != NULL);
    CHECK_EQ(cio_loop_dump_tasks(loop, out), 1);
    fclose(out);
    CHECK(strstr(text, "awaiting fd readable") != NULL);
    if (strstr(text, "deadline") != NULL) FAIL("the dump shows a deadline: %s", text);
    free(text);
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    cio_future_unref(t);
    close(sv[0]);
    close(sv[1]);
    CHECK_OK(cio_loop_free(loop));
}
