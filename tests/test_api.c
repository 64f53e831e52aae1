/*
 * The API conventions of include/cio.h, checked function by function.
 *
 * Every public function is called here with NULL and invalid arguments,
 * outside and inside a task, and must give the result convention 2 of the
 * header promises (-EINVAL, 0, NULL, NaN, or nothing) without crashing.
 * tests/check_api_coverage.sh (the test api.every_function_is_called) fails
 * when a function declared in cio.h is not called in this file, so a new
 * function cannot skip this test.
 *
 * The descriptor and socket calls belong to the I/O layer, whose exact
 * codes for a bad descriptor are its own; here they must only fail cleanly.
 */
#include "test.h"

#include <limits.h>
#include <sys/socket.h>

static void noop_cb(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
}

static void noop_done(cio_future *fut, void *arg) {
    (void)fut;
    (void)arg;
}

static void *noop_coro(void *arg) {
    return arg;
}

static int never(void *arg) {
    (void)arg;
    return 0;
}

static int cmp_ptr(const void *a, const void *b) {
    return (a > b) - (a < b);
}

static int handler_calls;
static void counting_handler(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)ctx;
    (void)arg;
    handler_calls++;
}

/* A pointer value that must be overwritten by a failing constructor. */
#define GARBAGE ((void *)(uintptr_t)0x1234)

/* ---- errors ------------------------------------------------------------ */

TEST(strerror_names_every_code_and_application_codes) {
    CHECK_STR(cio_strerror(0), "Success");
    CHECK(cio_strerror(-EIO) != NULL);
    CHECK_STR(cio_strerror(-CIO_ELOOPCLOSED), "Event loop is closed");
    CHECK_STR(cio_strerror(CIO_ELOOPCLOSED), "Event loop is closed");
    for (int code = CIO_EBASE + 1; code < CIO_ELAST; code++)
        CHECK(strcmp(cio_strerror(-code), "Unknown cio error") != 0);
    CHECK_STR(cio_strerror(-CIO_EUSER(7)), "application error 7");
    CHECK_STR(cio_strerror(CIO_EUSER(7)), "application error 7");
    CHECK_STR(cio_strerror(-CIO_EUSER(0)), "application error 0");
    CHECK_STR(cio_strerror(-CIO_EUSER_LAST), "application error 9999");
    /* The text stays put: a second code does not overwrite the first. */
    const char *seven = cio_strerror(-CIO_EUSER(7));
    const char *eight = cio_strerror(-CIO_EUSER(8));
    CHECK(seven == cio_strerror(-CIO_EUSER(7)));
    CHECK_STR(seven, "application error 7");
    CHECK_STR(eight, "application error 8");
    /* Outside the range, and the extremes, still give text. */
    CHECK(cio_strerror(-(CIO_EUSER_LAST + 1)) != NULL);
    CHECK(strcmp(cio_strerror(-(CIO_EUSER_LAST + 1)), "application error 10000") != 0);
    CHECK(cio_strerror(INT_MIN) != NULL);
    CHECK(cio_strerror(INT_MAX) != NULL);
}

TEST(error_is_user_covers_exactly_the_range) {
    CHECK_EQ(cio_error_is_user(-CIO_EUSER(0)), 1);
    CHECK_EQ(cio_error_is_user(CIO_EUSER(0)), 1);
    CHECK_EQ(cio_error_is_user(-CIO_EUSER(9999)), 1);
    CHECK_EQ(cio_error_is_user(-(CIO_EUSER_FIRST - 1)), 0);
    CHECK_EQ(cio_error_is_user(-(CIO_EUSER_LAST + 1)), 0);
    CHECK_EQ(cio_error_is_user(0), 0);
    CHECK_EQ(cio_error_is_user(-EIO), 0);
    CHECK_EQ(cio_error_is_user(-CIO_EGROUP), 0);
    CHECK_EQ(cio_error_is_user(INT_MIN), 0);
    CHECK_EQ(cio_error_is_user(INT_MAX), 0);
    /* No cio code falls in the application range. */
    CHECK(CIO_ELAST < CIO_EUSER_FIRST);
}

static void *raise_user(void *arg) {
    (void)arg;
    return cio_raise_msg(-CIO_EUSER(42), "not found");
}

TEST(application_code_travels_as_a_task_error) {
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, raise_user, NULL, &t));
    int rc = cio_run_until_complete(loop, t, NULL);
    CHECK_ERR(rc, -CIO_EUSER(42));
    CHECK(cio_error_is_user(rc));
    CHECK_EQ(-rc - CIO_EUSER_FIRST, 42);
    CHECK_STR(cio_future_error_message(t), "not found");
    cio_future_unref(t);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- every function, NULL and invalid arguments, outside a task ---------- */

TEST(loop_and_callbacks_reject_null) {
    cio_loop *loop = GARBAGE;
    CHECK_ERR(cio_loop_new(NULL), -EINVAL);
    CHECK_ERR(cio_loop_new_with(NULL, NULL), -EINVAL);
    cio_loop_options bad = {.default_stack_size = 1};
    CHECK_ERR(cio_loop_new_with(&bad, &loop), -EINVAL);
    CHECK(loop == NULL);
    CHECK_ERR(cio_run_until_complete(NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_run_forever(NULL), -EINVAL);
    CHECK_ERR(cio_loop_stop(NULL), -EINVAL);
    CHECK_EQ(cio_loop_is_running(NULL), 0);
    CHECK_EQ(cio_loop_is_closed(NULL), 0);
    CHECK_ERR(cio_loop_close(NULL), -EINVAL);
    CHECK_OK(cio_loop_free(NULL));
    CHECK(isnan(cio_loop_time(NULL)));
    CHECK_ERR(cio_loop_time_ns(NULL), -EINVAL);
    CHECK(cio_running_loop() == NULL);
    cio_handle h = {.node = GARBAGE, .id = 77, .when_ns = 5};
    CHECK_ERR(cio_call_soon(NULL, noop_cb, NULL, &h), -EINVAL);
    CHECK_EQ(cio_handle_cancel(&h), 0); /* a failed call leaves an inert handle */
    h.node = GARBAGE;
    CHECK_ERR(cio_call_later(NULL, 1, noop_cb, NULL, &h), -EINVAL);
    CHECK_EQ(cio_handle_cancel(&h), 0);
    h.node = GARBAGE;
    CHECK_ERR(cio_call_at(NULL, 1, noop_cb, NULL, &h), -EINVAL);
    CHECK_EQ(cio_handle_cancel(&h), 0);
    CHECK_ERR(cio_handle_cancel(NULL), -EINVAL);
    CHECK_EQ(cio_handle_cancelled(NULL), 0);
    CHECK(isnan(cio_handle_when(NULL)));
    CHECK_ERR(cio_loop_set_exception_handler(NULL, NULL, NULL), -EINVAL);
    cio_loop_call_exception_handler(NULL, NULL);
    cio_loop_default_exception_handler(NULL, NULL);
    CHECK_ERR(cio_loop_set_debug(NULL, 1), -EINVAL);
    CHECK_EQ(cio_loop_get_debug(NULL), 0);
    CHECK(cio_loop_backend(NULL) == NULL);
    CHECK(cio_loop_stack_guard(NULL) == NULL);
    CHECK_ERR(cio_loop_dump_tasks(NULL, stdout), -EINVAL);
    CHECK(cio_current_task() == NULL);
    CHECK_EQ(cio_all_tasks(NULL, NULL, 0), 0);

    loop = test_loop();
    CHECK_ERR(cio_run_until_complete(loop, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_call_soon(loop, NULL, NULL, &h), -EINVAL);
    CHECK_ERR(cio_call_later(loop, NAN, noop_cb, NULL, &h), -EINVAL);
    CHECK_ERR(cio_call_at(loop, NAN, noop_cb, NULL, &h), -EINVAL);
    CHECK_ERR(cio_loop_dump_tasks(loop, NULL), -EINVAL);
    cio_loop_call_exception_handler(loop, NULL);
    CHECK(isfinite(cio_loop_time(loop)));
    CHECK(cio_loop_time_ns(loop) >= 0);
    CHECK_OK(cio_loop_free(loop));
}

TEST(futures_and_tasks_reject_null) {
    cio_future *f = GARBAGE;
    CHECK_ERR(cio_future_new(NULL, &f), -EINVAL);
    CHECK(f == NULL);
    CHECK_ERR(cio_future_new(NULL, NULL), -EINVAL);
    cio_future_unref(NULL);
    CHECK(cio_future_ref(NULL) == NULL);
    CHECK_ERR(cio_future_set_result(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_future_set_error(NULL, -EIO), -EINVAL);
    CHECK_ERR(cio_future_set_error_msg(NULL, -EIO, "x"), -EINVAL);
    CHECK_ERR(cio_future_cancel(NULL, NULL), -EINVAL);
    CHECK_EQ(cio_future_done(NULL), 0);
    CHECK_EQ(cio_future_cancelled(NULL), 0);
    void *r = GARBAGE;
    CHECK_ERR(cio_future_result(NULL, &r), -EINVAL);
    CHECK_ERR(cio_future_error(NULL), -EINVAL);
    CHECK(cio_future_cancel_message(NULL) == NULL);
    CHECK(cio_future_error_message(NULL) == NULL);
    CHECK_ERR(cio_future_add_done_callback(NULL, noop_done, NULL), -EINVAL);
    CHECK_ERR(cio_future_remove_done_callback(NULL, noop_done, NULL), -EINVAL);
    CHECK(cio_future_loop(NULL) == NULL);
    CHECK_EQ(cio_future_is_task(NULL), 0);

    cio_task *t = GARBAGE;
    CHECK_ERR(cio_spawn(NULL, noop_coro, NULL, &t), -EINVAL);
    CHECK(t == NULL);
    t = GARBAGE;
    CHECK_ERR(cio_spawn_with(NULL, noop_coro, NULL, NULL, &t), -EINVAL);
    CHECK(t == NULL);
    CHECK_ERR(cio_task_cancel(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_task_cancelling(NULL), -EINVAL);
    CHECK_ERR(cio_task_uncancel(NULL), -EINVAL);
    CHECK(cio_task_name(NULL) == NULL);
    CHECK_ERR(cio_task_set_name(NULL, "x"), -EINVAL);
    CHECK_EQ(cio_task_stack_size(NULL), 0);
    CHECK(cio_raise(-EIO) == NULL); /* outside a task: nothing happens */
    CHECK(cio_raise_msg(-EIO, "x") == NULL);

    cio_loop *loop = test_loop();
    CHECK_ERR(cio_future_new(loop, NULL), -EINVAL);
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_ERR(cio_future_set_error(f, 0), -EINVAL);
    CHECK_ERR(cio_future_set_error(f, EIO), -EINVAL);
    CHECK_ERR(cio_future_set_error_msg(f, 0, "x"), -EINVAL);
    CHECK_ERR(cio_future_add_done_callback(f, NULL, NULL), -EINVAL);
    /* A plain future is not a task: task calls refuse it. */
    CHECK_ERR(cio_task_cancel(f, NULL), -EINVAL);
    CHECK_ERR(cio_task_cancelling(f), -EINVAL);
    CHECK_ERR(cio_task_uncancel(f), -EINVAL);
    CHECK(cio_task_name(f) == NULL);
    CHECK_ERR(cio_task_set_name(f, "x"), -EINVAL);
    CHECK_EQ(cio_task_stack_size(f), 0);
    CHECK(cio_gather_outcomes(f, NULL) == NULL);
    t = GARBAGE;
    CHECK_ERR(cio_spawn(loop, NULL, NULL, &t), -EINVAL);
    CHECK(t == NULL);
    cio_task_options tiny = {.stack_size = 1};
    t = GARBAGE;
    int rc = cio_spawn_with(loop, noop_coro, NULL, &tiny, &t);
    if (rc < 0) CHECK(t == NULL); /* a tiny stack is rounded up or refused */
    else cio_future_unref(t);
    CHECK_OK(cio_spawn(loop, noop_coro, NULL, &t));
    CHECK_ERR(cio_task_set_name(t, NULL), -EINVAL);
    CHECK_ERR(cio_future_set_result(t, NULL), -EINVAL); /* tasks are not set */
    cio_future_unref(t);
    cio_future_unref(f);
    CHECK_OK(cio_loop_free(loop));
}

TEST(suspending_calls_reject_null_outside_a_task) {
    /* Bad arguments are -EINVAL wherever the call is made (convention 2);
     * valid ones outside a task are -EPERM. */
    void *r;
    CHECK_ERR(cio_await(NULL, &r), -EINVAL);
    CHECK_ERR(cio_await_until(NULL, 0, &r), -EINVAL);
    CHECK_ERR(cio_sleep(NAN), -EINVAL);
    CHECK_ERR(cio_sleep_until(NAN), -EINVAL);
    CHECK_ERR(cio_sleep(0.001), -EPERM);
    CHECK_ERR(cio_sleep_until(0), -EPERM);
    CHECK_ERR(cio_wait_for(NULL, 1, &r), -EINVAL);
    CHECK_ERR(cio_wait_for_until(NULL, 0, &r), -EINVAL);
    size_t nd = 9, np = 9;
    CHECK_ERR(cio_wait(NULL, 1, CIO_ALL_COMPLETED, 1, NULL, &nd, NULL, &np), -EINVAL);
    CHECK_EQ(nd, 0);
    CHECK_EQ(np, 0);
    CHECK_ERR(cio_wait_until(NULL, 1, CIO_ALL_COMPLETED, 0, NULL, NULL, NULL, NULL), -EINVAL);
    cio_timeout scope;
    CHECK_ERR(cio_timeout_enter(NULL, 1), -EINVAL);
    CHECK_ERR(cio_timeout_enter_until(NULL, 1), -EINVAL);
    CHECK_ERR(cio_timeout_enter(&scope, NAN), -EINVAL);
    CHECK_ERR(cio_timeout_enter(&scope, 1), -EPERM);
    CHECK_ERR(cio_timeout_exit(NULL, 0), -EINVAL);
    CHECK_ERR(cio_timeout_reschedule(NULL, 1), -EINVAL);
    CHECK(isnan(cio_timeout_when(NULL)));
    CHECK_EQ(cio_timeout_expired(NULL), 0);
    cio_future *out = GARBAGE;
    CHECK_ERR(cio_shield(NULL, &out), -EINVAL);
    CHECK(out == NULL);
    cio_as_completed *ac = GARBAGE;
    CHECK_ERR(cio_as_completed_new(NULL, NULL, 0, 1, &ac), -EINVAL);
    CHECK(ac == NULL);
    cio_future *done = GARBAGE;
    CHECK_ERR(cio_as_completed_next(NULL, &done), -EINVAL);
    CHECK_OK(cio_as_completed_free(NULL));
    out = GARBAGE;
    CHECK_ERR(cio_gather(NULL, NULL, 0, 0, &out), -EINVAL);
    CHECK(out == NULL);
    size_t n = 9;
    CHECK(cio_gather_outcomes(NULL, &n) == NULL);
    CHECK_EQ(n, 0);
    CHECK_ERR(cio_run(NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_run_with(NULL, NULL, NULL, NULL), -EINVAL);

    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_ERR(cio_await(f, &r), -EPERM);
    CHECK_ERR(cio_shield(f, NULL), -EINVAL);
    CHECK_ERR(cio_gather(loop, NULL, 1, 0, &out), -EINVAL);
    CHECK_ERR(cio_gather(loop, &f, 1, 0x80, &out), -EINVAL); /* unknown flag */
    CHECK_ERR(cio_gather(loop, &f, 1, 0, NULL), -EINVAL);
    CHECK_ERR(cio_as_completed_new(loop, &f, 1, NAN, &ac), -EINVAL);
    CHECK_ERR(cio_as_completed_new(loop, &f, 1, 1, NULL), -EINVAL);
    CHECK_ERR(cio_wait(&f, 1, (cio_wait_mode)7, 1, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_wait(&f, 0, CIO_ALL_COMPLETED, 1, NULL, NULL, NULL, NULL), -EINVAL);
    cio_future_unref(f);
    CHECK_OK(cio_loop_free(loop));
}

TEST(task_groups_reject_null) {
    cio_task_group *g = GARBAGE;
    CHECK_ERR(cio_task_group_enter(NULL), -EINVAL);
    CHECK_ERR(cio_task_group_enter(&g), -EPERM);
    CHECK(g == NULL);
    cio_task *t = GARBAGE;
    CHECK_ERR(cio_task_group_spawn(NULL, noop_coro, NULL, &t), -EINVAL);
    CHECK(t == NULL);
    t = GARBAGE;
    CHECK_ERR(cio_task_group_spawn_with(NULL, noop_coro, NULL, NULL, &t), -EINVAL);
    CHECK(t == NULL);
    CHECK_ERR(cio_task_group_exit(NULL, 0), -EINVAL);
    CHECK_ERR(cio_task_group_exit_msg(NULL, -EIO, "x"), -EINVAL);
    CHECK_EQ(cio_task_group_error_count(NULL), 0);
    int err = 5;
    CHECK_ERR(cio_task_group_error(NULL, 0, &err, NULL, NULL), -EINVAL);
    CHECK_EQ(err, 0);
    CHECK_OK(cio_task_group_free(NULL));
}

TEST(sync_primitives_reject_null) {
    CHECK_ERR(cio_lock_new(NULL), -EINVAL);
    CHECK_OK(cio_lock_free(NULL));
    CHECK_ERR(cio_lock_acquire(NULL), -EINVAL);
    CHECK_ERR(cio_lock_acquire_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_lock_release(NULL), -EINVAL);
    CHECK_EQ(cio_lock_locked(NULL), 0);

    CHECK_ERR(cio_event_new(NULL), -EINVAL);
    CHECK_OK(cio_event_free(NULL));
    CHECK_ERR(cio_event_wait(NULL), -EINVAL);
    CHECK_ERR(cio_event_wait_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_event_set(NULL), -EINVAL);
    CHECK_ERR(cio_event_clear(NULL), -EINVAL);
    CHECK_EQ(cio_event_is_set(NULL), 0);

    CHECK_ERR(cio_condition_new(NULL, NULL), -EINVAL);
    CHECK_OK(cio_condition_free(NULL));
    CHECK_ERR(cio_condition_acquire(NULL), -EINVAL);
    CHECK_ERR(cio_condition_release(NULL), -EINVAL);
    CHECK_EQ(cio_condition_locked(NULL), 0);
    CHECK_ERR(cio_condition_wait(NULL), -EINVAL);
    CHECK_ERR(cio_condition_wait_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_condition_wait_for(NULL, never, NULL), -EINVAL);
    CHECK_ERR(cio_condition_notify(NULL, 1), -EINVAL);
    CHECK_ERR(cio_condition_notify_all(NULL), -EINVAL);

    cio_semaphore *s = GARBAGE;
    CHECK_ERR(cio_semaphore_new(-1, &s), -EINVAL);
    CHECK(s == NULL);
    s = GARBAGE;
    CHECK_ERR(cio_bounded_semaphore_new(-1, &s), -EINVAL);
    CHECK(s == NULL);
    CHECK_ERR(cio_semaphore_new(1, NULL), -EINVAL);
    CHECK_ERR(cio_bounded_semaphore_new(1, NULL), -EINVAL);
    CHECK_OK(cio_semaphore_free(NULL));
    CHECK_ERR(cio_semaphore_acquire(NULL), -EINVAL);
    CHECK_ERR(cio_semaphore_acquire_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_semaphore_release(NULL), -EINVAL);
    CHECK_EQ(cio_semaphore_locked(NULL), 0);
    CHECK_ERR(cio_semaphore_value(NULL), -EINVAL);

    cio_barrier *b = GARBAGE;
    CHECK_ERR(cio_barrier_new(0, &b), -EINVAL);
    CHECK(b == NULL);
    CHECK_ERR(cio_barrier_new(1, NULL), -EINVAL);
    CHECK_OK(cio_barrier_free(NULL));
    CHECK_ERR(cio_barrier_wait(NULL), -EINVAL);
    CHECK_ERR(cio_barrier_wait_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_barrier_reset(NULL), -EINVAL);
    CHECK_ERR(cio_barrier_abort(NULL), -EINVAL);
    CHECK_ERR(cio_barrier_parties(NULL), -EINVAL);
    CHECK_ERR(cio_barrier_n_waiting(NULL), -EINVAL);
    CHECK_EQ(cio_barrier_broken(NULL), 0);

    /* Valid objects with invalid arguments. */
    cio_condition *c;
    CHECK_OK(cio_condition_new(NULL, &c));
    CHECK_ERR(cio_condition_wait_for(c, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_condition_notify(c, -1), -EINVAL);
    CHECK_OK(cio_condition_free(c));
    cio_lock *l;
    CHECK_OK(cio_lock_new(&l));
    CHECK_ERR(cio_lock_acquire_until(l, NAN), -EINVAL);
    CHECK_OK(cio_lock_free(l));
}

TEST(queues_reject_null) {
    cio_queue *q = GARBAGE;
    CHECK_ERR(cio_queue_new(0, NULL), -EINVAL);
    CHECK_ERR(cio_lifo_queue_new(0, NULL), -EINVAL);
    CHECK_ERR(cio_priority_queue_new(0, NULL, &q), -EINVAL);
    CHECK(q == NULL);
    CHECK_ERR(cio_priority_queue_new(0, cmp_ptr, NULL), -EINVAL);
    CHECK_OK(cio_queue_free(NULL));
    CHECK_ERR(cio_queue_set_dispose(NULL, NULL, NULL), -EINVAL);
    void *item = GARBAGE;
    CHECK_ERR(cio_queue_put(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_queue_put_until(NULL, NULL, 0), -EINVAL);
    CHECK_ERR(cio_queue_put_nowait(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_queue_get(NULL, &item), -EINVAL);
    CHECK_ERR(cio_queue_get_until(NULL, &item, 0), -EINVAL);
    CHECK_ERR(cio_queue_get_nowait(NULL, &item), -EINVAL);
    CHECK_ERR(cio_queue_task_done(NULL), -EINVAL);
    CHECK_ERR(cio_queue_join(NULL), -EINVAL);
    CHECK_ERR(cio_queue_join_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_queue_shutdown(NULL, 0), -EINVAL);
    CHECK_EQ(cio_queue_size(NULL), 0);
    CHECK_EQ(cio_queue_maxsize(NULL), 0);
    CHECK_EQ(cio_queue_empty(NULL), 0);
    CHECK_EQ(cio_queue_full(NULL), 0);
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_ERR(cio_queue_get(q, NULL), -EINVAL);
    CHECK_ERR(cio_queue_get_nowait(q, NULL), -EINVAL);
    CHECK_ERR(cio_queue_put_until(q, NULL, NAN), -EINVAL);
    CHECK_OK(cio_queue_free(q));
}

TEST(io_calls_fail_cleanly_on_bad_descriptors) {
    char buf[4];
    struct sockaddr sa = {0};
    unsigned int len = sizeof sa;
    /* Outside a task: bad arguments first (-EINVAL, then -EBADF for a
     * negative descriptor), and only then -EPERM. */
    CHECK_ERR(cio_wait_readable(-1), -EBADF);
    CHECK_ERR(cio_wait_writable(-1), -EBADF);
    CHECK_ERR(cio_wait_readable_until(-1, 0), -EBADF);
    CHECK_ERR(cio_wait_writable_until(0, NAN), -EINVAL);
    CHECK_ERR(cio_wait_readable(0), -EPERM);
    CHECK_ERR(cio_sock_recv(-1, NULL, 1), -EINVAL);
    CHECK_ERR(cio_sock_recv(-1, buf, sizeof buf), -EBADF);
    CHECK_ERR(cio_sock_recv(0, buf, sizeof buf), -EPERM);
    CHECK_ERR(cio_sock_send(-1, NULL, 1), -EINVAL);
    CHECK_ERR(cio_sock_sendall(-1, NULL, 1), -EINVAL);
    CHECK_ERR(cio_sock_sendall(1, buf, 0), -EPERM);
    CHECK_ERR(cio_sock_accept(-1, NULL, NULL), -EBADF);
    CHECK_ERR(cio_sock_accept(0, &sa, NULL), -EINVAL);
    CHECK_ERR(cio_sock_connect(-1, NULL, 0), -EINVAL);
    CHECK_ERR(cio_sock_recv_until(-1, NULL, 1, 0), -EINVAL);
    CHECK_ERR(cio_sock_recv_until(0, buf, 1, NAN), -EINVAL);
    CHECK_ERR(cio_sock_send_until(-1, NULL, 1, 0), -EINVAL);
    CHECK_ERR(cio_sock_sendall_until(-1, NULL, 1, 0), -EINVAL);
    CHECK_ERR(cio_sock_accept_until(-1, &sa, &len, 0), -EBADF);
    CHECK_ERR(cio_sock_connect_until(-1, &sa, len, 0), -EBADF);
    CHECK_ERR(cio_sock_connect_until(0, &sa, len, NAN), -EINVAL);
    CHECK_ERR(cio_close(-1), -EBADF);
    /* Watchers take a loop: the NULL rule applies in full. */
    CHECK_ERR(cio_add_reader(NULL, 0, noop_cb, NULL), -EINVAL);
    CHECK_ERR(cio_add_writer(NULL, 0, noop_cb, NULL), -EINVAL);
    CHECK_ERR(cio_remove_reader(NULL, 0), -EINVAL);
    CHECK_ERR(cio_remove_writer(NULL, 0), -EINVAL);
    cio_loop *loop = test_loop();
    CHECK_ERR(cio_add_reader(loop, 0, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_add_writer(loop, 0, NULL, NULL), -EINVAL);
    CHECK(cio_add_reader(loop, -1, noop_cb, NULL) < 0);
    CHECK_ERR(cio_sock_adopt(NULL, 0), -EINVAL);
    CHECK_ERR(cio_sock_adopt(loop, -1), -EBADF);
    CHECK(cio_add_writer(loop, -1, noop_cb, NULL) < 0);
    CHECK_EQ(cio_remove_reader(loop, -1), 0);
    CHECK_EQ(cio_remove_writer(loop, -1), 0);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- the same, inside a task ------------------------------------------- */

static void *null_inside_a_task(void *arg) {
    (void)arg;
    void *r = GARBAGE;
    CHECK_ERR(cio_await(NULL, &r), -EINVAL);
    CHECK_ERR(cio_await_until(NULL, 0, &r), -EINVAL);
    CHECK_ERR(cio_sleep(NAN), -EINVAL);
    CHECK_ERR(cio_sleep_until(NAN), -EINVAL);
    CHECK_ERR(cio_wait_for(NULL, 1, &r), -EINVAL);
    CHECK_ERR(cio_wait_for_until(NULL, 0, &r), -EINVAL);
    CHECK_ERR(cio_wait(NULL, 1, CIO_ALL_COMPLETED, 1, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_wait_until(NULL, 1, CIO_ALL_COMPLETED, 0, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_timeout_enter(NULL, 1), -EINVAL);
    CHECK_ERR(cio_timeout_enter_until(NULL, 1), -EINVAL);
    cio_timeout scope = {{0}}; /* zeroed: a scope never entered */
    CHECK_ERR(cio_timeout_enter_until(&scope, NAN), -EINVAL);
    CHECK_ERR(cio_timeout_exit(&scope, 0), -CIO_EINVALSTATE);
    CHECK_ERR(cio_timeout_reschedule(&scope, 1), -CIO_EINVALSTATE);
    CHECK_ERR(cio_task_group_enter(NULL), -EINVAL);
    CHECK_ERR(cio_lock_acquire(NULL), -EINVAL);
    CHECK_ERR(cio_event_wait(NULL), -EINVAL);
    CHECK_ERR(cio_condition_wait(NULL), -EINVAL);
    CHECK_ERR(cio_semaphore_acquire(NULL), -EINVAL);
    CHECK_ERR(cio_barrier_wait(NULL), -EINVAL);
    CHECK_ERR(cio_queue_get(NULL, &r), -EINVAL);
    CHECK_ERR(cio_queue_put(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_queue_join(NULL), -EINVAL);
    CHECK_ERR(cio_as_completed_next(NULL, NULL), -EINVAL);
    CHECK(cio_wait_readable(-1) < 0);
    CHECK(cio_sock_recv(-1, NULL, 1) < 0);
    /* A task cannot await itself. */
    CHECK_ERR(cio_await(cio_current_task(), &r), -EDEADLK);
    /* Nor run or free the loop it runs in. */
    cio_loop *loop = cio_running_loop();
    CHECK_ERR(cio_run_forever(loop), -CIO_ELOOPRUNNING);
    CHECK_ERR(cio_loop_close(loop), -CIO_ELOOPRUNNING);
    CHECK_ERR(cio_loop_free(loop), -CIO_ELOOPRUNNING);
    CHECK_ERR(cio_run(noop_coro, NULL, NULL), -CIO_ELOOPRUNNING);
    CHECK(cio_loop_is_running(loop));
    return IPTR(1);
}

TEST(null_arguments_inside_a_task) {
    cio_loop *loop = test_loop();
    void *res;
    CHECK_OK(test_run(loop, null_inside_a_task, NULL, &res));
    CHECK_EQ(PTRI(res), 1);
    /* The refused free left the loop whole. */
    CHECK_EQ(cio_loop_is_closed(loop), 0);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- constructors: the out-parameter comes last and is cleared on failure */

TEST(constructors_clear_their_out_parameter_on_failure) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_loop_set_exception_handler(loop, counting_handler, NULL));
    cio_queue *q = GARBAGE;
    CHECK_ERR(cio_priority_queue_new(3, NULL, &q), -EINVAL);
    CHECK(q == NULL);
    cio_barrier *b = GARBAGE;
    CHECK_ERR(cio_barrier_new(-1, &b), -EINVAL);
    CHECK(b == NULL);
    cio_future *f = GARBAGE;
    CHECK_ERR(cio_gather(loop, NULL, 2, 0, &f), -EINVAL);
    CHECK(f == NULL);
    /* And they work with it last. */
    CHECK_OK(cio_priority_queue_new(3, cmp_ptr, &q));
    CHECK_EQ(cio_queue_maxsize(q), 3);
    CHECK_OK(cio_queue_free(q));
    CHECK_OK(cio_lifo_queue_new(2, &q));
    CHECK_EQ(cio_queue_maxsize(q), 2);
    CHECK_OK(cio_queue_free(q));
    CHECK_OK(cio_barrier_new(4, &b));
    CHECK_EQ(cio_barrier_parties(b), 4);
    CHECK_OK(cio_barrier_free(b));
    cio_semaphore *s;
    CHECK_OK(cio_bounded_semaphore_new(2, &s));
    CHECK_EQ(cio_semaphore_value(s), 2);
    CHECK_OK(cio_semaphore_free(s));
    cio_lock *l;
    cio_condition *c;
    CHECK_OK(cio_lock_new(&l));
    CHECK_OK(cio_condition_new(l, &c));
    CHECK_OK(cio_condition_free(c));
    CHECK_OK(cio_lock_free(l));
    cio_event *e;
    CHECK_OK(cio_event_new(&e));
    CHECK_OK(cio_event_free(e));
    CHECK_EQ(handler_calls, 0);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- transports, protocols and servers ---------------------------------- */

static void noop_data(cio_transport *t, const void *data, size_t len, void *ctx) {
    (void)t;
    (void)data;
    (void)len;
    (void)ctx;
}

static const cio_protocol noop_protocol = {.data_received = noop_data};

static void *transport_calls_in_a_task(void *arg) {
    cio_loop *loop = arg;
    cio_transport *t = NULL;
    CHECK_ERR(cio_create_connection(NULL, &noop_protocol, NULL, "127.0.0.1", "1", &t), -EINVAL);
    CHECK_ERR(cio_create_connection(loop, NULL, NULL, "127.0.0.1", "1", &t), -EINVAL);
    CHECK_ERR(cio_create_connection(loop, &noop_protocol, NULL, NULL, "1", &t), -EINVAL);
    CHECK_ERR(cio_create_connection(loop, &noop_protocol, NULL, "127.0.0.1", NULL, &t), -EINVAL);
    CHECK_ERR(cio_create_connection(loop, &noop_protocol, NULL, "127.0.0.1", "1", NULL), -EINVAL);
    CHECK_ERR(cio_create_connection_until(loop, &noop_protocol, NULL, "127.0.0.1", "1", NAN, &t),
              -EINVAL);
    CHECK_ERR(cio_create_unix_connection(loop, &noop_protocol, NULL, NULL, &t), -EINVAL);
    CHECK_ERR(cio_create_unix_connection(loop, &noop_protocol, NULL, "", &t), -EINVAL);
    return NULL;
}

TEST(transports_and_servers_reject_null) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, transport_calls_in_a_task, loop, NULL));
    cio_transport *t = NULL;
    CHECK_ERR(cio_create_connection(loop, &noop_protocol, NULL, "127.0.0.1", "1", &t), -EPERM);
    cio_server *s = NULL;
    CHECK_ERR(cio_create_server(NULL, &noop_protocol, NULL, NULL, "0", NULL, &s), -EINVAL);
    CHECK_ERR(cio_create_server(loop, NULL, NULL, NULL, "0", NULL, &s), -EINVAL);
    CHECK_ERR(cio_create_server(loop, &noop_protocol, NULL, NULL, NULL, NULL, &s), -EINVAL);
    CHECK_ERR(cio_create_server(loop, &noop_protocol, NULL, NULL, "0", NULL, NULL), -EINVAL);
    /* An empty port is no port (an empty host is every interface, as
     * asyncio's host='': test_transport). */
    CHECK_ERR(cio_create_server(loop, &noop_protocol, NULL, NULL, "", NULL, &s), -EINVAL);
    cio_server_options bad = {.backlog = -1};
    CHECK_ERR(cio_create_server(loop, &noop_protocol, NULL, NULL, "0", &bad, &s), -EINVAL);
    CHECK_ERR(cio_create_unix_server(loop, &noop_protocol, NULL, NULL, NULL, &s), -EINVAL);
    CHECK_ERR(cio_transport_write(NULL, "x", 1), -EINVAL);
    CHECK_ERR(cio_transport_writelines(NULL, NULL, 0), -EINVAL);
    CHECK_ERR(cio_transport_write_eof(NULL), -EINVAL);
    CHECK_ERR(cio_transport_can_write_eof(NULL), -EINVAL);
    CHECK_ERR(cio_transport_close(NULL), -EINVAL);
    CHECK_ERR(cio_transport_abort(NULL), -EINVAL);
    CHECK_ERR(cio_transport_is_closing(NULL), -EINVAL);
    CHECK_ERR(cio_transport_pause_reading(NULL), -EINVAL);
    CHECK_ERR(cio_transport_resume_reading(NULL), -EINVAL);
    CHECK_ERR(cio_transport_is_reading(NULL), -EINVAL);
    CHECK_ERR(cio_transport_set_write_buffer_limits(NULL, 0, 0), -EINVAL);
    CHECK_ERR(cio_transport_get_write_buffer_limits(NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(cio_transport_get_write_buffer_size(NULL), 0);
    CHECK_ERR(cio_transport_sockname(NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_transport_peername(NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_transport_socket(NULL), -EINVAL);
    CHECK(cio_transport_context(NULL) == NULL);
    CHECK_ERR(cio_transport_set_context(NULL, NULL), -EINVAL);
    CHECK(cio_transport_loop(NULL) == NULL);
    CHECK_ERR(cio_server_close(NULL), -EINVAL);
    CHECK_ERR(cio_server_close_clients(NULL), -EINVAL);
    CHECK_ERR(cio_server_abort_clients(NULL), -EINVAL);
    CHECK_ERR(cio_server_wait_closed(NULL), -EINVAL);
    CHECK_ERR(cio_server_start_serving(NULL), -EINVAL);
    CHECK_ERR(cio_server_is_serving(NULL), -EINVAL);
    CHECK_ERR(cio_server_serve_forever(NULL), -EINVAL);
    CHECK_ERR(cio_server_sockets(NULL, NULL, 0), -EINVAL);
    CHECK_OK(cio_server_free(NULL));
    /* A real server, and the calls that need a task refused outside one. */
    CHECK_OK(cio_create_server(loop, &noop_protocol, NULL, "127.0.0.1", "0", NULL, &s));
    CHECK_ERR(cio_server_wait_closed(s), -EPERM);
    CHECK_ERR(cio_server_serve_forever(s), -EPERM);
    CHECK_ERR(cio_server_sockets(s, NULL, 1), -EINVAL);
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

/* ---- Threads: cross-thread calls, the thread pool, name resolution ---- */

TEST(thread_calls_refuse_bad_arguments) {
    cio_loop *loop = test_loop();
    CHECK_ERR(cio_call_soon_threadsafe(NULL, noop_cb, NULL), -EINVAL);
    CHECK_ERR(cio_call_soon_threadsafe(loop, NULL, NULL), -EINVAL);
    cio_tsfuture *f = (cio_tsfuture *)1;
    CHECK_ERR(cio_run_coroutine_threadsafe(NULL, noop_coro, NULL, &f), -EINVAL);
    CHECK(f == NULL);
    CHECK_ERR(cio_run_coroutine_threadsafe(loop, NULL, NULL, &f), -EINVAL);
    CHECK_ERR(cio_run_coroutine_threadsafe(loop, noop_coro, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_tsfuture_wait(NULL, 0), -EINVAL);
    CHECK_ERR(cio_tsfuture_result(NULL, 0, NULL), -EINVAL);
    CHECK_ERR(cio_tsfuture_cancel(NULL), -EINVAL);
    CHECK_EQ(cio_tsfuture_done(NULL), 0);
    CHECK_EQ(cio_tsfuture_cancelled(NULL), 0);
    CHECK_OK(cio_tsfuture_free(NULL));
    CHECK_ERR(cio_to_thread(NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_to_thread(noop_coro, NULL, NULL), -EPERM);
    CHECK_ERR(cio_pool_set_max_workers(NULL, 1), -EINVAL);
    CHECK_ERR(cio_pool_set_max_workers(loop, 0), -EINVAL);
    CHECK_ERR(cio_pool_shutdown(NAN), -EINVAL);
    CHECK_ERR(cio_pool_shutdown(1), -EPERM);
    CHECK_ERR(cio_pool_shutdown_until(NAN), -EINVAL);
    CHECK_ERR(cio_pool_shutdown_until(0), -EPERM);
    CHECK_ERR(cio_getaddrinfo("localhost", NULL, NULL, NULL), -EINVAL);
    struct addrinfo *res = (struct addrinfo *)1;
    CHECK_ERR(cio_getaddrinfo("localhost", NULL, NULL, &res), -EPERM);
    CHECK(res == NULL);
    char host[16];
    CHECK_ERR(cio_getnameinfo(NULL, 16, 0, host, sizeof host, NULL, 0), -EINVAL);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- streams ------------------------------------------------------------ */

static void *noop_handler(cio_stream *s, void *arg) {
    (void)s;
    return arg;
}

static void *stream_calls_in_a_task(void *arg) {
    (void)arg;
    cio_stream *s = NULL;
    char buf[4];
    void *data;
    CHECK_ERR(cio_open_connection(NULL, "1", &s), -EINVAL);
    CHECK_ERR(cio_open_connection("127.0.0.1", NULL, &s), -EINVAL);
    CHECK_ERR(cio_open_connection("127.0.0.1", "1", NULL), -EINVAL);
    CHECK_ERR(cio_open_connection_until("127.0.0.1", "1", NAN, &s), -EINVAL);
    CHECK_ERR(cio_open_unix_connection(NULL, &s), -EINVAL);
    CHECK_ERR(cio_stream_read(NULL, buf, 1), -EINVAL);
    CHECK_ERR(cio_stream_read_to_eof(NULL, &data), -EINVAL);
    CHECK_ERR(cio_stream_readexactly(NULL, buf, 1), -EINVAL);
    CHECK_ERR(cio_stream_readuntil(NULL, "\n", 1, buf, 4), -EINVAL);
    const void *seps[] = {"\n"};
    const size_t seplens[] = {1};
    CHECK_ERR(cio_stream_readuntil_any(NULL, seps, seplens, 1, buf, 4), -EINVAL);
    CHECK_ERR(cio_stream_readline(NULL, buf, 4), -EINVAL);
    CHECK_ERR(cio_stream_drain(NULL), -EINVAL);
    CHECK_ERR(cio_stream_wait_closed(NULL), -EINVAL);
    return NULL;
}

TEST(streams_reject_null) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, stream_calls_in_a_task, NULL, NULL));
    cio_stream *s = NULL;
    CHECK_ERR(cio_open_connection("127.0.0.1", "1", &s), -EPERM);
    cio_server *srv = NULL;
    CHECK_ERR(cio_start_server(loop, NULL, NULL, NULL, "0", NULL, &srv), -EINVAL);
    CHECK_ERR(cio_start_server(NULL, noop_handler, NULL, NULL, "0", NULL, &srv), -EINVAL);
    CHECK_ERR(cio_start_unix_server(loop, noop_handler, NULL, NULL, NULL, &srv), -EINVAL);
    CHECK(srv == NULL);
    CHECK_ERR(cio_stream_at_eof(NULL), -EINVAL);
    CHECK_ERR(cio_stream_set_limit(NULL, 1), -EINVAL);
    CHECK_ERR(cio_stream_write(NULL, "x", 1), -EINVAL);
    CHECK_ERR(cio_stream_write_eof(NULL), -EINVAL);
    CHECK_ERR(cio_stream_can_write_eof(NULL), -EINVAL);
    CHECK_ERR(cio_stream_close(NULL), -EINVAL);
    CHECK_ERR(cio_stream_is_closing(NULL), -EINVAL);
    CHECK_ERR(cio_stream_sockname(NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_stream_peername(NULL, NULL, NULL), -EINVAL);
    CHECK(cio_stream_transport(NULL) == NULL);
    CHECK_OK(cio_stream_free(NULL));
    cio_loop_free(loop);
}

/* ---- datagrams and messages on sockets, datagram endpoints --------------- */

static void *message_calls_reject_bad_input(void *arg) {
    (void)arg;
    char buf[1];
    CHECK_ERR(cio_sock_recvfrom(0, NULL, 1, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_sock_recvfrom_until(0, buf, 1, NULL, NULL, NAN), -EINVAL);
    CHECK_ERR(cio_sock_sendto(0, NULL, 1, NULL, 0), -EINVAL);
    CHECK_ERR(cio_sock_sendto_until(0, buf, 1, NULL, 0, NAN), -EINVAL);
    CHECK_ERR(cio_sock_recvmsg(0, NULL, 0), -EINVAL);
    CHECK_ERR(cio_sock_recvmsg_until(0, NULL, 0, 0), -EINVAL);
    CHECK_ERR(cio_sock_sendmsg(0, NULL, 0), -EINVAL);
    CHECK_ERR(cio_sock_sendmsg_until(0, NULL, 0, 0), -EINVAL);
    CHECK_ERR(cio_sock_recvfrom(-1, buf, 1, NULL, NULL), -EBADF);
    return IPTR(1);
}

TEST(message_calls_reject_bad_input) {
    char buf[1];
    /* Outside a task: bad arguments first, then -EPERM. */
    CHECK_ERR(cio_sock_sendto(0, NULL, 1, NULL, 0), -EINVAL);
    CHECK_ERR(cio_sock_recvfrom(0, buf, 1, NULL, NULL), -EPERM);
    cio_loop *loop = test_loop();
    void *res;
    CHECK_OK(test_run(loop, message_calls_reject_bad_input, NULL, &res));
    CHECK_EQ(PTRI(res), 1);
    CHECK_OK(cio_loop_free(loop));
}

TEST(datagram_endpoints_reject_null) {
    cio_loop *loop = test_loop();
    cio_datagram_protocol proto = {0};
    cio_datagram_transport *t = GARBAGE;
    struct sockaddr sa = {.sa_family = AF_INET};
    CHECK_ERR(cio_create_datagram_endpoint(NULL, &proto, NULL, &sa, sizeof sa, NULL, 0, 0, &t),
              -EINVAL);
    CHECK(t == NULL);
    t = GARBAGE;
    CHECK_ERR(cio_create_datagram_endpoint_from_socket(loop, NULL, NULL, 0, &t), -EINVAL);
    CHECK(t == NULL);
    CHECK_ERR(cio_datagram_transport_sendto(NULL, "x", 1, NULL, 0), -EINVAL);
    CHECK_ERR(cio_datagram_transport_close(NULL), -EINVAL);
    CHECK_ERR(cio_datagram_transport_abort(NULL), -EINVAL);
    CHECK_EQ(cio_datagram_transport_is_closing(NULL), 0);
    CHECK_EQ(cio_datagram_transport_get_write_buffer_size(NULL), 0);
    CHECK_ERR(cio_datagram_transport_set_write_buffer_limits(NULL, -1, -1), -EINVAL);
    unsigned int len = sizeof sa;
    CHECK_ERR(cio_datagram_transport_sockname(NULL, &sa, &len), -EINVAL);
    CHECK_ERR(cio_datagram_transport_peername(NULL, &sa, &len), -EINVAL);
    CHECK_ERR(cio_datagram_transport_socket(NULL), -EINVAL);
    CHECK(cio_datagram_transport_context(NULL) == NULL);
    CHECK_ERR(cio_datagram_transport_set_context(NULL, NULL), -EINVAL);
    CHECK_OK(cio_loop_free(loop));
}

TEST(pipe_and_process_calls_reject_null) {
    cio_loop *loop = test_loop();
    cio_protocol proto = {0};
    cio_transport *t = GARBAGE;
    cio_stream *s = GARBAGE;
    CHECK_ERR(cio_connect_read_pipe(NULL, &proto, NULL, 0, &t), -EINVAL);
    CHECK(t == NULL);
    CHECK_ERR(cio_connect_write_pipe(loop, NULL, NULL, 0, &t), -EINVAL);
    CHECK_ERR(cio_open_read_pipe(NULL, 0, &s), -EINVAL);
    CHECK(s == NULL);
    CHECK_ERR(cio_open_write_pipe(loop, -1, &s), -EBADF);
    cio_process *p = GARBAGE;
    CHECK_ERR(cio_create_subprocess_exec(NULL, "true", NULL, NULL, &p), -EINVAL);
    CHECK(p == NULL);
    CHECK_ERR(cio_create_subprocess_shell(loop, NULL, NULL, &p), -EINVAL);
    CHECK_ERR(cio_subprocess_exec(loop, NULL, NULL, "true", NULL, NULL, &p), -EINVAL);
    CHECK_ERR(cio_subprocess_shell(loop, NULL, NULL, "true", NULL, &p), -EINVAL);
    CHECK_ERR(cio_process_pid(NULL), -EINVAL);
    CHECK_ERR(cio_process_returncode(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_process_wait(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_process_communicate(NULL, NULL, 0, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_process_send_signal(NULL, 15), -EINVAL);
    CHECK_ERR(cio_process_terminate(NULL), -EINVAL);
    CHECK_ERR(cio_process_kill(NULL), -EINVAL);
    CHECK(cio_process_stdin(NULL) == NULL);
    CHECK(cio_process_stdout(NULL) == NULL);
    CHECK(cio_process_stderr(NULL) == NULL);
    CHECK(cio_process_pipe_transport(NULL, 1) == NULL);
    CHECK_ERR(cio_process_close(NULL), -EINVAL);
    CHECK_OK(cio_process_free(NULL));
    CHECK_OK(cio_loop_free(loop));
}

TEST(file_calls_reject_bad_input) {
    char buf[1];
    CHECK_ERR(cio_file_open(NULL, 0, 0), -EINVAL);
    CHECK_ERR(cio_file_openat(-2, "x", 0, 0), -EBADF);
    CHECK_ERR(cio_file_read(-1, buf, 1, 0), -EBADF);
    CHECK_ERR(cio_file_write(-1, buf, 1, 0), -EBADF);
    CHECK_ERR(cio_file_fsync(-1, 0), -EBADF);
    CHECK_ERR(cio_file_statx(-100, NULL, 0, 0, NULL), -EINVAL);
    CHECK_ERR(cio_file_close(-1), -EBADF);
}

TEST(virtual_clock_option_gives_a_loop) {
    cio_loop_options o = {0};
    o.virtual_clock = 1;
    cio_loop *loop = NULL;
    CHECK_OK(cio_loop_new_with(&o, &loop));
    CHECK(cio_loop_time(loop) == cio_loop_time(loop));
    CHECK_OK(cio_loop_free(loop));
}

/* ---- signals in the loop --------------------------------------------------- */

#include <signal.h>

static void api_signal_cb(cio_loop *loop, void *arg) { (void)loop; (void)arg; }

TEST(signal_calls_reject_bad_input) {
    cio_loop *loop = test_loop();
    CHECK_ERR(cio_add_signal_handler(NULL, SIGUSR1, api_signal_cb, NULL), -EINVAL);
    CHECK_ERR(cio_add_signal_handler(loop, SIGUSR1, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_add_signal_handler(loop, 0, api_signal_cb, NULL), -EINVAL);
    CHECK_ERR(cio_add_signal_handler(loop, SIGKILL, api_signal_cb, NULL), -EINVAL);
    CHECK_ERR(cio_remove_signal_handler(NULL, SIGUSR1), -EINVAL);
    CHECK_ERR(cio_remove_signal_handler(loop, -1), -EINVAL);
    CHECK_EQ(cio_remove_signal_handler(loop, SIGUSR1), 0);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- I/O backends (the io_uring slice) ---- */

TEST(backend_fallback_reason_rejects_null_and_names_the_choice) {
    CHECK(cio_loop_backend_fallback_reason(NULL) == NULL);
    cio_loop_options epoll = {.backend = "epoll"};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&epoll, &loop));
    CHECK_STR(cio_loop_backend(loop), "epoll");
    CHECK_STR(cio_loop_backend_fallback_reason(loop), "epoll was asked for");
    CHECK_OK(cio_loop_free(loop));
    /* A loop on io_uring has nothing to explain. */
    loop = test_loop();
    if (strcmp(cio_loop_backend(loop), "io_uring") == 0)
        CHECK_STR(cio_loop_backend_fallback_reason(loop), "");
    else
        CHECK(cio_loop_backend_fallback_reason(loop)[0] != '\0');
    CHECK_OK(cio_loop_free(loop));
}

/* ---- Task metadata ---- */

static void *api_info_noop(void *arg) {
    return arg;
}

TEST(task_info_and_spawn_sites_reject_bad_input) {
    cio_task_info info;
    CHECK_ERR(cio_task_get_info(NULL, &info), -EINVAL);
    CHECK_ERR(cio_spawn_at("x", NULL, api_info_noop, NULL, NULL, NULL), -EINVAL);
    cio_loop *loop = test_loop();
    CHECK_ERR(cio_spawn_at("x", loop, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_task_group_spawn_at("x", NULL, api_info_noop, NULL, NULL, NULL), -EINVAL);
    cio_task *t;
    CHECK_OK(cio_spawn_at(NULL, loop, api_info_noop, NULL, NULL, &t));
    CHECK_ERR(cio_task_get_info(t, NULL), -EINVAL);
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- Stack accounting ---- */

TEST(stack_accounting_calls_reject_bad_input) {
    CHECK_ERR(cio_task_stack_high_water(NULL), -EINVAL);
    CHECK_ERR(cio_loop_stack_census(NULL, stderr), -EINVAL);
    cio_loop *loop = test_loop();
    CHECK_ERR(cio_loop_stack_census(loop, NULL), -EINVAL);
    cio_future *plain;
    CHECK_OK(cio_future_new(loop, &plain));
    CHECK_ERR(cio_task_stack_high_water(plain), -EINVAL);
    cio_future_unref(plain);
    cio_task *t;
    CHECK_OK(cio_spawn(loop, api_info_noop, NULL, &t));
    CHECK_INT(cio_task_stack_high_water(t), >, 0); /* its first frame is laid out */
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    CHECK_ERR(cio_task_stack_high_water(t), -ENODATA); /* ended outside debug mode */
    cio_future_unref(t);
    CHECK_EQ(cio_loop_stack_census(loop, stderr), 0);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- Stall watchdog ---- */

TEST(watchdog_calls_reject_bad_input) {
    CHECK_ERR(cio_loop_set_watchdog(NULL, 100, 0), -EINVAL);
    CHECK_ERR(cio_loop_set_watchdog_with(NULL, NULL), -EINVAL);
    cio_loop *loop = test_loop();
    CHECK_ERR(cio_loop_set_watchdog_with(loop, NULL), -EINVAL);
    cio_watchdog_options o = {.threshold_ms = 100, .fd = -2};
    CHECK_ERR(cio_loop_set_watchdog_with(loop, &o), -EINVAL);
    CHECK_OK(cio_loop_set_watchdog(loop, 100, 0));
    CHECK_OK(cio_loop_set_watchdog(loop, 0, 0));
    CHECK_OK(cio_loop_free(loop));
}

/* ---- Task dump ---- */

TEST(dump_calls_reject_bad_input) {
    CHECK_ERR(cio_dump(NULL, 2, 0), -EINVAL);
    CHECK_ERR(cio_dump_request(NULL), -EINVAL);
    CHECK_ERR(cio_loop_set_dump_signal(NULL, 10, -1), -EINVAL);
    cio_loop *loop = test_loop();
    CHECK_ERR(cio_dump(loop, -1, 0), -EINVAL);
    CHECK_ERR(cio_dump(loop, 2, ~0u), -EINVAL);
    CHECK_ERR(cio_loop_set_dump_signal(loop, -1, -1), -EINVAL);
    CHECK_ERR(cio_loop_set_dump_signal(loop, 10, -5), -EINVAL);
    CHECK_OK(cio_loop_free(loop));
}
