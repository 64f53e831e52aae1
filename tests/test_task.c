/*
 * Tasks: lazy and eager start, the three outcomes, await, suspending calls
 * outside a task, counted cancellation (delivery, propagation down a chain
 * of awaits, before the first step), names, current and all tasks,
 * detached tasks, the task dump and pending tasks at loop close. Checked
 * against asyncio.Task as Python 3.13 documents it, with cio's documented
 * cancellation rule where C differs (docs/asyncio-mapping.md).
 */
#include "test.h"


#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */

static char tlog[512];

static void log_str(const char *s) {
    size_t len = strlen(tlog), n = strlen(s);
    if (len + n + 1 >= sizeof tlog) FAIL("task log overflow");
    memcpy(tlog + len, s, n + 1);
}

static void reset_log(void) {
    tlog[0] = '\0';
}

static void run_once(cio_loop *loop) {
    CHECK_OK(cio_loop_stop(loop));
    CHECK_OK(cio_run_forever(loop));
}

static void cancel_cb(cio_loop *loop, void *arg) {
    (void)loop;
    CHECK_EQ(cio_task_cancel(arg, "timer said so"), 1);
}

static void set_result_cb(cio_loop *loop, void *arg) {
    (void)loop;
    CHECK_OK(cio_future_set_result(arg, IPTR(77)));
}

static int reports;
static int last_error;
static const cio_future *last_future;
static char last_message[128];

static void recording_handler(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)arg;
    reports++;
    last_error = ctx->error;
    last_future = ctx->future;
    snprintf(last_message, sizeof last_message, "%s", ctx->message);
}

static cio_loop *recording_loop(void) {
    cio_loop *loop = test_loop();
    reports = 0;
    last_error = 0;
    last_future = NULL;
    last_message[0] = '\0';
    CHECK_OK(cio_loop_set_exception_handler(loop, recording_handler, NULL));
    return loop;
}

/* Everything a loop still holds: nothing may be left once all is done. */
static void check_nothing_left(cio_loop *loop) {
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 0);
    CHECK_EQ(loop_stats(loop).live_tasks, 0);
    CHECK(loop_stats(loop).futures == 0);
}

/* ---- lazy start ------------------------------------------------------------ */

static void *log_arg(void *arg) {
    log_str(arg);
    return arg;
}

TEST(spawn_does_not_run_the_coroutine) {
    cio_loop *loop = test_loop();
    reset_log();
    cio_task *a, *b, *c;
    CHECK_OK(cio_spawn(loop, log_arg, "a", &a));
    CHECK_OK(cio_spawn(loop, log_arg, "b", &b));
    CHECK_OK(cio_spawn(loop, log_arg, "c", &c));
    CHECK_STR(tlog, "");
    CHECK(!cio_future_done(a));
    /* Tasks start in the order they were created, one loop iteration. */
    run_once(loop);
    CHECK_STR(tlog, "abc");
    CHECK(cio_future_done(a) && cio_future_done(b) && cio_future_done(c));
    void *r;
    CHECK_OK(cio_future_result(b, &r));
    CHECK_STR(r, "b");
    cio_future_unref(a);
    cio_future_unref(b);
    cio_future_unref(c);
    cio_loop_free(loop);
}

static void *parent_of_lazy(void *arg) {
    (void)arg;
    cio_task *child;
    CHECK_OK(cio_spawn(cio_running_loop(), log_arg, "c", &child));
    log_str("p1");
    CHECK(!cio_future_done(child)); /* not started by spawn, even now */
    CHECK_OK(cio_sleep(0));
    log_str("p2");
    CHECK(cio_future_done(child));
    cio_future_unref(child);
    return NULL;
}

TEST(spawn_from_a_task_waits_for_the_parent_to_yield) {
    cio_loop *loop = test_loop();
    reset_log();
    CHECK_OK(test_run(loop, parent_of_lazy, NULL, NULL));
    CHECK_STR(tlog, "p1cp2");
    cio_loop_free(loop);
}

/* ---- eager start ------------------------------------------------------------- */

static void *eager_child(void *arg) {
    (void)arg;
    log_str("c1");
    CHECK(cio_current_task() != NULL);
    CHECK_OK(cio_sleep(0));
    log_str("c2");
    return IPTR(5);
}

static void *eager_returns_at_once(void *arg) {
    (void)arg;
    log_str("e");
    return IPTR(6);
}

static void *parent_of_eager(void *arg) {
    (void)arg;
    cio_task *self = cio_current_task();
    cio_task_options opts = {.eager_start = 1, .name = "eager"};
    cio_task *child;
    CHECK_OK(cio_spawn_with(cio_running_loop(), eager_child, NULL, &opts, &child));
    /* The child ran inside spawn up to its first suspension. */
    CHECK_STR(tlog, "c1");
    CHECK(cio_current_task() == self);
    CHECK(!cio_future_done(child));
    log_str("p");
    void *r = NULL;
    CHECK_OK(cio_await(child, &r));
    CHECK_EQ(PTRI(r), 5);
    CHECK_STR(tlog, "c1pc2");
    cio_future_unref(child);

    /* A child that never suspends is done when spawn returns. */
    CHECK_OK(cio_spawn_with(cio_running_loop(), eager_returns_at_once, NULL, &opts, &child));
    CHECK(cio_future_done(child));
    CHECK_OK(cio_future_result(child, &r));
    CHECK_EQ(PTRI(r), 6);
    CHECK(cio_current_task() == self);
    cio_future_unref(child);
    /* Detached and eager: it finishes and frees itself inside spawn. */
    CHECK_OK(cio_spawn_with(cio_running_loop(), eager_returns_at_once, NULL, &opts, NULL));
    CHECK_STR(tlog, "c1pc2ee");
    return NULL;
}

TEST(eager_start_runs_until_the_first_suspension) {
    cio_loop *loop = test_loop();
    reset_log();
    CHECK_OK(test_run(loop, parent_of_eager, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static cio_task *eager_from_callback;

static void spawn_eager_cb(cio_loop *loop, void *arg) {
    (void)arg;
    cio_task_options opts = {.eager_start = 1};
    CHECK_OK(cio_spawn_with(loop, eager_child, NULL, &opts, &eager_from_callback));
    CHECK_STR(tlog, "c1");
    CHECK(cio_current_task() == NULL);
}

TEST(eager_start_from_a_callback) {
    cio_loop *loop = test_loop();
    reset_log();
    CHECK_OK(cio_call_soon(loop, spawn_eager_cb, NULL, NULL));
    run_once(loop);
    CHECK_STR(tlog, "c1");
    void *r;
    CHECK_OK(cio_run_until_complete(loop, eager_from_callback, &r));
    CHECK_EQ(PTRI(r), 5);
    CHECK_STR(tlog, "c1c2");
    cio_future_unref(eager_from_callback);
    cio_loop_free(loop);
}

TEST(eager_start_without_a_running_loop_is_lazy) {
    cio_loop *loop = test_loop();
    reset_log();
    cio_task_options opts = {.eager_start = 1};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, log_arg, "x", &opts, &t));
    CHECK_STR(tlog, "");
    CHECK(!cio_future_done(t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    CHECK_STR(tlog, "x");
    cio_future_unref(t);
    cio_loop_free(loop);
}

/* ---- outcomes ---------------------------------------------------------------- */

static void *raise_eio(void *arg) {
    (void)arg;
    return cio_raise(-EIO);
}

static void *raise_with_message(void *arg) {
    (void)arg;
    return cio_raise_msg(-EPROTO, "bad frame");
}

static void *sleep_long(void *arg) {
    (void)arg;
    int rc = cio_sleep(10.0);
    return rc < 0 ? cio_raise(rc) : IPTR(1);
}

TEST(three_outcomes) {
    cio_loop *loop = recording_loop();
    void *r = NULL;
    cio_task *t;

    CHECK_OK(cio_spawn(loop, log_arg, "ok", &t));
    reset_log();
    CHECK_OK(cio_run_until_complete(loop, t, &r));
    CHECK_STR(r, "ok");
    CHECK(cio_future_done(t) && !cio_future_cancelled(t));
    CHECK_OK(cio_future_error(t));
    cio_future_unref(t);

    CHECK_OK(cio_spawn(loop, raise_eio, NULL, &t));
    CHECK_ERR(cio_run_until_complete(loop, t, &r), -EIO);
    CHECK(cio_future_done(t) && !cio_future_cancelled(t));
    CHECK_ERR(cio_future_error(t), -EIO);
    CHECK_ERR(cio_future_result(t, NULL), -EIO);
    cio_future_unref(t);

    CHECK_OK(cio_spawn(loop, raise_with_message, NULL, &t));
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -EPROTO);
    CHECK_STR(cio_future_error_message(t), "bad frame");
    cio_future_unref(t);

    CHECK_OK(cio_spawn(loop, sleep_long, NULL, &t));
    CHECK_OK(cio_call_later(loop, 0.01, cancel_cb, t, NULL));
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(cio_future_done(t) && cio_future_cancelled(t));
    CHECK_ERR(cio_future_error(t), -ECANCELED);
    CHECK_STR(cio_future_cancel_message(t), "timer said so");
    cio_future_unref(t);

    CHECK_EQ(reports, 0); /* every error was read */
    /* cio_raise outside a task does nothing. */
    CHECK(cio_raise(-EIO) == NULL);
    CHECK(cio_raise_msg(-EIO, "x") == NULL);
    cio_loop_free(loop);
}

/* Cancelled with a message, the task survives the cancel and ends with an
 * error of its own: asyncio reports that error's message (str(exc)), not
 * the stale cancel message. */
static void *cancelled_then_fails(void *arg) {
    int rc = cio_sleep(10.0);
    CHECK_ERR(rc, -ECANCELED);
    cio_task_uncancel(cio_current_task());
    if (arg) return cio_raise_msg(-EPROTO, arg);
    return cio_raise(-EIO);
}

static void cancel_with_stop(cio_loop *loop, void *arg) {
    (void)loop;
    CHECK_EQ(cio_future_cancel(arg, "stop"), 1);
}

static void *group_child_cancelled_then_fails(void *arg) {
    (void)arg;
    cio_task_group *g;
    CHECK_OK(cio_task_group_enter(&g));
    cio_task *c;
    CHECK_OK(cio_task_group_spawn(g, cancelled_then_fails, NULL, &c));
    CHECK_OK(cio_call_later(cio_running_loop(), 0.01, cancel_with_stop, c, NULL));
    CHECK_ERR(cio_task_group_exit(g, 0), -CIO_EGROUP);
    cio_task *who;
    const char *msg = "unset";
    int err;
    CHECK_OK(cio_task_group_error(g, 0, &err, &who, &msg));
    CHECK_ERR(err, -EIO);
    CHECK(who == c);
    CHECK(msg == NULL);
    cio_future_unref(c);
    cio_task_group_free(g);
    return NULL;
}

static void *gather_cancelled_then_fails(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *c;
    CHECK_OK(cio_spawn(loop, cancelled_then_fails, "own words", &c));
    cio_future *g;
    CHECK_OK(cio_gather(loop, &c, 1, 0, &g));
    CHECK_OK(cio_sleep(0));
    CHECK_EQ(cio_future_cancel(g, "stop"), 1);
    CHECK_ERR(cio_await(g, NULL), -EPROTO);
    CHECK_STR(cio_future_error_message(g), "own words");
    CHECK(cio_future_cancel_message(g) == NULL);
    CHECK_ERR(cio_future_error(c), -EPROTO);
    cio_future_unref(g);
    cio_future_unref(c);
    return NULL;
}

TEST(error_after_cancel_reports_its_own_message) {
    cio_loop *loop = recording_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, cancelled_then_fails, NULL, &t));
    CHECK_OK(cio_call_later(loop, 0.01, cancel_with_stop, t, NULL));
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -EIO);
    CHECK(cio_future_error_message(t) == NULL);
    CHECK(cio_future_cancel_message(t) == NULL);
    cio_future_unref(t);
    /* With a message of its own, that one. */
    CHECK_OK(cio_spawn(loop, cancelled_then_fails, "own words", &t));
    CHECK_OK(cio_call_later(loop, 0.01, cancel_with_stop, t, NULL));
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -EPROTO);
    CHECK_STR(cio_future_error_message(t), "own words");
    cio_future_unref(t);
    CHECK_OK(test_run(loop, group_child_cancelled_then_fails, NULL, NULL));
    CHECK_OK(test_run(loop, gather_cancelled_then_fails, NULL, NULL));
    CHECK_EQ(reports, 0);
    cio_loop_free(loop);
}

static void *raise_ecanceled(void *arg) {
    (void)arg;
    return cio_raise(-ECANCELED);
}

TEST(raising_ecanceled_ends_the_task_cancelled) {
    /* asyncio: a coroutine that raises CancelledError ends its task
     * cancelled, even without a cancel() call. */
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, raise_ecanceled, NULL, &t));
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(cio_future_cancelled(t));
    CHECK_EQ(cio_task_cancelling(t), 0);
    cio_future_unref(t);
    cio_loop_free(loop);
}

TEST(unretrieved_task_error_is_reported) {
    cio_loop *loop = recording_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, raise_eio, NULL, &t));
    CHECK_OK(cio_spawn(loop, sleep_long, NULL, NULL)); /* stays pending */
    cio_task *other;
    CHECK_OK(cio_spawn(loop, log_arg, "", &other));
    reset_log();
    CHECK_OK(cio_run_until_complete(loop, other, NULL));
    CHECK(cio_future_done(t));
    CHECK_EQ(reports, 0);
    cio_future *expected = t;
    cio_future_unref(t);
    CHECK_EQ(reports, 1);
    CHECK_STR(last_message, "Task exception was never retrieved");
    CHECK_ERR(last_error, -EIO);
    CHECK(last_future == expected);
    cio_future_unref(other);
    cio_loop_free(loop); /* the sleeper is reported as pending */
    CHECK_EQ(reports, 2);
}

/* ---- await ------------------------------------------------------------------- */

static void *await_arg(void *arg) {
    void *r = NULL;
    int rc = cio_await(arg, &r);
    return rc < 0 ? cio_raise(rc) : r;
}

TEST(await_a_future_from_a_task) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    cio_task *t;
    CHECK_OK(cio_spawn(loop, await_arg, f, &t));
    CHECK_OK(cio_call_later(loop, 0.01, set_result_cb, f, NULL));
    void *r;
    CHECK_OK(cio_run_until_complete(loop, t, &r));
    CHECK_EQ(PTRI(r), 77);
    cio_future_unref(t);
    cio_future_unref(f);
    cio_loop_free(loop);
}

static void *slow_value(void *arg) {
    CHECK_OK(cio_sleep(0.01));
    return arg;
}

TEST(await_a_task_from_a_task) {
    cio_loop *loop = recording_loop();
    cio_task *inner, *outer;
    CHECK_OK(cio_spawn(loop, slow_value, IPTR(9), &inner));
    CHECK_OK(cio_spawn(loop, await_arg, inner, &outer));
    void *r;
    CHECK_OK(cio_run_until_complete(loop, outer, &r));
    CHECK_EQ(PTRI(r), 9);
    cio_future_unref(inner);
    cio_future_unref(outer);
    /* An awaited error passes on, and counts as retrieved. */
    CHECK_OK(cio_spawn(loop, raise_eio, NULL, &inner));
    CHECK_OK(cio_spawn(loop, await_arg, inner, &outer));
    CHECK_ERR(cio_run_until_complete(loop, outer, NULL), -EIO);
    cio_future_unref(inner);
    CHECK_EQ(reports, 0);
    cio_future_unref(outer);
    cio_loop_free(loop);
    CHECK_EQ(reports, 0);
}

static int marker;

static void set_marker(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
    marker = 1;
}

static void *await_done_future(void *arg) {
    cio_future *done = arg;
    marker = 0;
    CHECK_OK(cio_call_soon(cio_running_loop(), set_marker, NULL, NULL));
    void *r = NULL;
    for (int i = 0; i < 10; i++) {
        CHECK_OK(cio_await(done, &r));
        CHECK_EQ(PTRI(r), 4);
    }
    /* Not one yield: the callback queued above has not run. */
    CHECK_EQ(marker, 0);
    /* A cancellation requested now is not delivered by awaiting a done
     * future either (asyncio: no yield, no CancelledError)... */
    CHECK_EQ(cio_task_cancel(cio_current_task(), NULL), 1);
    CHECK_OK(cio_await(done, &r));
    CHECK_EQ(marker, 0);
    /* ...but by the next real suspension. */
    CHECK_ERR(cio_sleep(0), -ECANCELED);
    CHECK_EQ(marker, 1);
    CHECK_EQ(cio_task_uncancel(cio_current_task()), 0);
    return NULL;
}

TEST(await_of_a_done_future_does_not_yield) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_result(f, IPTR(4)));
    CHECK_OK(test_run(loop, await_done_future, f, NULL));
    cio_future_unref(f);
    cio_loop_free(loop);
}

static void *await_self(void *arg) {
    (void)arg;
    cio_task *self = cio_current_task();
    CHECK_ERR(cio_await(self, NULL), -EDEADLK);
    CHECK_ERR(cio_await_until(self, cio_loop_time(cio_running_loop()) + 1, NULL), -EDEADLK);
    CHECK_ERR(cio_wait_for(self, 1.0, NULL), -EDEADLK);
    CHECK_ERR(cio_await(NULL, NULL), -EINVAL);
    return IPTR(1);
}

TEST(await_self_is_edeadlk) {
    cio_loop *loop = test_loop();
    void *r;
    CHECK_OK(test_run(loop, await_self, NULL, &r));
    CHECK_EQ(PTRI(r), 1);
    cio_loop_free(loop);
}

static void *await_foreign(void *arg) {
    CHECK_ERR(cio_await(arg, NULL), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_wait_for(arg, 1.0, NULL), -CIO_EWRONGLOOP);
    return NULL;
}

TEST(await_a_future_of_another_loop) {
    cio_loop *a = test_loop(), *b = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(b, &f));
    CHECK_OK(test_run(a, await_foreign, f, NULL));
    cio_future_unref(f);
    cio_loop_free(a);
    cio_loop_free(b);
}

/* ---- suspending calls outside a task --------------------------------------- */

static void check_all_eperm(cio_future *f) {
    cio_future *fs[1] = {f};
    size_t nd = 9, np = 9;
    CHECK_ERR(cio_await(f, NULL), -EPERM);
    CHECK_ERR(cio_await_until(f, 1.0, NULL), -EPERM);
    CHECK_ERR(cio_sleep(0), -EPERM);
    CHECK_ERR(cio_sleep(0.01), -EPERM);
    CHECK_ERR(cio_sleep_until(0), -EPERM);
    CHECK_ERR(cio_wait_for(f, 1.0, NULL), -EPERM);
    CHECK_ERR(cio_wait_for(f, CIO_NO_TIMEOUT, NULL), -EPERM);
    CHECK_ERR(cio_wait_for_until(f, 1.0, NULL), -EPERM);
    CHECK_ERR(cio_wait(fs, 1, CIO_ALL_COMPLETED, 1.0, NULL, &nd, NULL, &np), -EPERM);
    CHECK_ERR(cio_wait_until(fs, 1, CIO_FIRST_COMPLETED, 1.0, NULL, NULL, NULL, NULL), -EPERM);
    CHECK(cio_current_task() == NULL);
    CHECK(!cio_future_done(f));
}

static int callback_checked;

static void eperm_from_callback(cio_loop *loop, void *arg) {
    (void)loop;
    check_all_eperm(arg);
    callback_checked = 1;
}

TEST(suspending_calls_outside_a_task_are_eperm) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    check_all_eperm(f); /* no loop running */
    callback_checked = 0;
    CHECK_OK(cio_call_soon(loop, eperm_from_callback, f, NULL));
    run_once(loop); /* loop running, but in a plain callback */
    CHECK_EQ(callback_checked, 1);
    cio_future_unref(f);
    cio_loop_free(loop);
}

/* ---- cancellation ------------------------------------------------------------ */

static double cancel_seen_at;

static void *sleep_and_time(void *arg) {
    (void)arg;
    int rc = cio_sleep(10.0);
    cancel_seen_at = cio_loop_time(cio_running_loop());
    CHECK_ERR(rc, -ECANCELED);
    /* Once delivered, the cancellation does not come back by itself. */
    CHECK_OK(cio_sleep(0));
    return IPTR(1); /* returning with the request outstanding: cancelled */
}

TEST(cancel_is_delivered_at_the_current_suspension) {
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, sleep_and_time, NULL, &t));
    double armed_at = cio_loop_time(loop);
    CHECK_OK(cio_call_later(loop, 0.02, cancel_cb, t, NULL));
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(cio_future_cancelled(t));
    /* Woken by the cancellation, long before the 10 s sleep ends. */
    CHECK(cancel_seen_at - armed_at >= 0.019);
    CHECK(cancel_seen_at - armed_at < 2.0);
    CHECK_STR(cio_future_cancel_message(t), "timer said so");
    CHECK_EQ(loop_stats(loop).timers, 0); /* the sleep's timer went away */
    cio_future_unref(t);
    cio_loop_free(loop);
}

static void *cancel_self_then_work(void *arg) {
    (void)arg;
    cio_task *self = cio_current_task();
    CHECK_EQ(cio_task_cancel(self, "self"), 1);
    CHECK_EQ(cio_task_cancelling(self), 1);
    log_str("still running;");
    CHECK_ERR(cio_sleep(0.01), -ECANCELED);
    log_str("delivered;");
    CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(cancel_is_delivered_at_the_next_suspension) {
    cio_loop *loop = test_loop();
    reset_log();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, cancel_self_then_work, NULL, &t));
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK_STR(tlog, "still running;delivered;");
    CHECK(cio_future_cancelled(t));
    CHECK_STR(cio_future_cancel_message(t), "self");
    cio_future_unref(t);
    cio_loop_free(loop);
}

static void *cancel_self_and_return(void *arg) {
    (void)arg;
    cio_task_cancel(cio_current_task(), NULL);
    return IPTR(5);
}

TEST(task_returning_with_a_request_outstanding_ends_cancelled) {
    /* The same in asyncio: the pending _must_cancel turns the return into a
     * cancellation. */
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, cancel_self_and_return, NULL, &t));
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(cio_future_cancelled(t));
    cio_future_unref(t);
    cio_loop_free(loop);
}

static void *await_plain(void *arg) {
    int rc = cio_await(arg, NULL);
    CHECK_ERR(rc, -ECANCELED);
    return cio_raise(rc);
}

TEST(cancel_cancels_the_awaited_future) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    cio_task *t;
    CHECK_OK(cio_spawn(loop, await_plain, f, &t));
    run_once(loop);
    CHECK(!cio_future_done(f));
    CHECK_EQ(cio_task_cancel(t, "down"), 1);
    /* asyncio's Task.cancel cancels the future the task waits on, at once. */
    CHECK(cio_future_cancelled(f));
    CHECK_STR(cio_future_cancel_message(f), "down");
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(cio_future_cancelled(t));
    cio_future_unref(t);
    cio_future_unref(f);
    cio_loop_free(loop);
}

static int chain_seen[3];
static cio_task *chain[3];

static void *chain_link(void *arg) {
    int level = PTRI(arg);
    int rc;
    if (level == 2) {
        rc = cio_sleep(10.0);
    } else {
        CHECK_OK(cio_spawn(cio_running_loop(), chain_link, IPTR(level + 1), &chain[level + 1]));
        rc = cio_await(chain[level + 1], NULL);
    }
    chain_seen[level] = rc;
    return rc < 0 ? cio_raise(rc) : NULL;
}

TEST(cancel_propagates_down_a_chain_of_awaits) {
    cio_loop *loop = test_loop();
    memset(chain_seen, 0, sizeof chain_seen);
    memset(chain, 0, sizeof chain);
    CHECK_OK(cio_spawn(loop, chain_link, IPTR(0), &chain[0]));
    /* Run until the whole chain waits: the last link in its sleep. */
    while (!chain[2] || loop_stats(loop).timers == 0) run_once(loop);
    cancel_cb(loop, chain[0]);
    CHECK_ERR(cio_run_until_complete(loop, chain[0], NULL), -ECANCELED);
    for (int i = 0; i < 3; i++) {
        CHECK(chain[i] != NULL);
        CHECK_ERR(chain_seen[i], -ECANCELED);
        CHECK(cio_future_cancelled(chain[i]));
        /* The message travels with the cancellation, as asyncio's. */
        CHECK_STR(cio_future_cancel_message(chain[i]), "timer said so");
        CHECK_EQ(cio_task_cancelling(chain[i]), 1);
    }
    for (int i = 0; i < 3; i++) cio_future_unref(chain[i]);
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static int body_ran;

static void *mark_body(void *arg) {
    (void)arg;
    body_ran++;
    return IPTR(1);
}

TEST(cancel_before_the_first_step) {
    /* asyncio: a task cancelled before it started never runs its
     * coroutine; it ends cancelled with the message. */
    cio_loop *loop = test_loop();
    body_ran = 0;
    cio_task *t;
    CHECK_OK(cio_spawn(loop, mark_body, NULL, &t));
    CHECK_EQ(cio_task_cancel(t, "early"), 1);
    CHECK_EQ(cio_task_cancel(t, "earlier"), 1);
    CHECK_EQ(cio_task_cancelling(t), 2);
    CHECK(!cio_future_done(t)); /* a task's cancel is a request */
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK_EQ(body_ran, 0);
    CHECK(cio_future_cancelled(t));
    CHECK_STR(cio_future_cancel_message(t), "earlier");
    cio_future_unref(t);
    check_nothing_left(loop);
    cio_loop_free(loop);
}

TEST(uncancel_before_the_first_step_lets_it_run) {
    /* 3.13: uncancel() down to zero drops the pending delivery. */
    cio_loop *loop = test_loop();
    body_ran = 0;
    cio_task *t;
    CHECK_OK(cio_spawn(loop, mark_body, NULL, &t));
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    CHECK_EQ(cio_task_uncancel(t), 0);
    void *r;
    CHECK_OK(cio_run_until_complete(loop, t, &r));
    CHECK_EQ(body_ran, 1);
    CHECK_EQ(PTRI(r), 1);
    cio_future_unref(t);
    cio_loop_free(loop);
}

static void *count_deliveries(void *arg) {
    (void)arg;
    cio_task *self = cio_current_task();
    int delivered = 0;
    for (int i = 0; i < 5; i++)
        if (cio_sleep(0.005) == -ECANCELED) delivered++;
    /* Three requests made while asleep are one delivery (asyncio: the
     * first cancel() cancels the sleep, later ones only count). */
    CHECK_EQ(delivered, 1);
    CHECK_EQ(cio_task_cancelling(self), 3);
    CHECK_EQ(cio_task_uncancel(self), 2);
    CHECK_EQ(cio_task_uncancel(self), 1);
    CHECK_EQ(cio_task_uncancel(self), 0);
    CHECK_EQ(cio_task_uncancel(self), 0); /* never below zero */
    return IPTR(8);
}

static void cancel_three_times(cio_loop *loop, void *arg) {
    (void)loop;
    for (int i = 0; i < 3; i++) CHECK_EQ(cio_task_cancel(arg, NULL), 1);
}

TEST(cancelling_counts_and_uncancel_decrements) {
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, count_deliveries, NULL, &t));
    CHECK_EQ(cio_task_cancelling(t), 0);
    CHECK_OK(cio_call_later(loop, 0.002, cancel_three_times, t, NULL));
    void *r;
    /* Every request was taken back: the task ends with its result. */
    CHECK_OK(cio_run_until_complete(loop, t, &r));
    CHECK_EQ(PTRI(r), 8);
    CHECK(!cio_future_cancelled(t));
    CHECK_EQ(cio_task_cancelling(t), 0);
    /* Cancelling a done task is refused and counts nothing. */
    CHECK_EQ(cio_task_cancel(t, NULL), 0);
    CHECK_EQ(cio_future_cancel(t, NULL), 0);
    CHECK_EQ(cio_task_cancelling(t), 0);
    CHECK(!cio_future_cancelled(t));
    cio_future_unref(t);
    cio_loop_free(loop);
}

TEST(future_cancel_on_a_task_is_task_cancel) {
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, sleep_long, NULL, &t));
    run_once(loop);
    CHECK_EQ(cio_future_cancel(t, "via future"), 1);
    CHECK_EQ(cio_task_cancelling(t), 1);
    CHECK(!cio_future_cancelled(t)); /* a request, not done yet */
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(cio_future_cancelled(t));
    CHECK_STR(cio_future_cancel_message(t), "via future");
    cio_future_unref(t);
    cio_loop_free(loop);
}

TEST(task_calls_on_a_plain_future_are_einval) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_ERR(cio_task_cancel(f, NULL), -EINVAL);
    CHECK_ERR(cio_task_cancelling(f), -EINVAL);
    CHECK_ERR(cio_task_uncancel(f), -EINVAL);
    CHECK_ERR(cio_task_set_name(f, "x"), -EINVAL);
    CHECK(cio_task_name(f) == NULL);
    CHECK_ERR(cio_task_cancel(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_task_cancelling(NULL), -EINVAL);
    CHECK_ERR(cio_task_uncancel(NULL), -EINVAL);
    CHECK(cio_task_name(NULL) == NULL);
    CHECK(!cio_future_done(f));
    cio_future_unref(f);
    cio_loop_free(loop);
}

/* ---- names ----------------------------------------------------------------------- */

static void *check_own_name(void *arg) {
    CHECK_STR(cio_task_name(cio_current_task()), arg);
    return NULL;
}

TEST(default_names_and_set_name) {
    cio_loop *loop = test_loop();
    cio_task *a, *b, *c;
    CHECK_OK(cio_spawn(loop, check_own_name, "Task-1", &a));
    CHECK_OK(cio_spawn(loop, check_own_name, "Task-2", &b));
    CHECK_STR(cio_task_name(a), "Task-1");
    CHECK_STR(cio_task_name(b), "Task-2");
    char name[] = "worker";
    cio_task_options opts = {.name = name};
    CHECK_OK(cio_spawn_with(loop, check_own_name, "worker", &opts, &c));
    name[0] = 'X'; /* copied */
    CHECK_STR(cio_task_name(c), "worker");
    char renamed[] = "renamed";
    CHECK_OK(cio_task_set_name(b, renamed));
    renamed[0] = 'X';
    CHECK_STR(cio_task_name(b), "renamed");
    CHECK_ERR(cio_task_set_name(b, NULL), -EINVAL);
    CHECK_STR(cio_task_name(b), "renamed");
    /* b checks its own name when it runs: set it back to what it expects. */
    CHECK_OK(cio_task_set_name(b, "Task-2"));
    CHECK_OK(cio_run_until_complete(loop, c, NULL));
    CHECK(cio_future_done(a) && cio_future_done(b));
    /* A done task keeps its name and can still be renamed. */
    CHECK_OK(cio_task_set_name(a, "after"));
    CHECK_STR(cio_task_name(a), "after");
    /* Names are numbered per loop. */
    cio_loop *other = test_loop();
    cio_task *d;
    CHECK_OK(cio_spawn(other, check_own_name, "Task-1", &d));
    CHECK_OK(cio_run_until_complete(other, d, NULL));
    cio_future_unref(d);
    cio_loop_free(other);
    cio_future_unref(a);
    cio_future_unref(b);
    cio_future_unref(c);
    cio_loop_free(loop);
}

TEST(named_tasks_do_not_use_up_numbers) {
    /* asyncio (checked on 3.13): only unnamed tasks take a number from
     * the counter, so create_task(c, name="x") then create_task(c) gives
     * "Task-N+1" after "Task-N", not "Task-N+2". */
    cio_loop *loop = test_loop();
    cio_task *a, *b, *c;
    cio_task_options opts = {.name = "named"};
    CHECK_OK(cio_spawn(loop, mark_body, NULL, &a));
    CHECK_OK(cio_spawn_with(loop, mark_body, NULL, &opts, &b));
    CHECK_OK(cio_spawn(loop, mark_body, NULL, &c));
    CHECK_STR(cio_task_name(a), "Task-1");
    CHECK_STR(cio_task_name(b), "named");
    CHECK_STR(cio_task_name(c), "Task-2");
    CHECK_OK(cio_run_until_complete(loop, c, NULL));
    cio_future_unref(a);
    cio_future_unref(b);
    cio_future_unref(c);
    cio_loop_free(loop);
}

/* ---- current and all tasks -------------------------------------------------------- */

static cio_task *seen_current;

static void *record_current(void *arg) {
    (void)arg;
    seen_current = cio_current_task();
    CHECK_OK(cio_sleep(0));
    CHECK(cio_current_task() == seen_current); /* also after a suspension */
    return NULL;
}

static const cio_future *current_in_callback = (const cio_future *)1;

static void current_from_done_callback(cio_future *fut, void *arg) {
    (void)fut;
    (void)arg;
    current_in_callback = cio_current_task();
}

TEST(current_task_inside_and_outside) {
    cio_loop *loop = test_loop();
    CHECK(cio_current_task() == NULL);
    cio_task *t;
    CHECK_OK(cio_spawn(loop, record_current, NULL, &t));
    CHECK_OK(cio_future_add_done_callback(t, current_from_done_callback, NULL));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    CHECK(seen_current == t);
    CHECK(current_in_callback == NULL); /* callbacks run outside any task */
    CHECK(cio_current_task() == NULL);
    cio_future_unref(t);
    cio_loop_free(loop);
}

static void *list_all_tasks(void *arg) {
    cio_task **expect = arg; /* [0] = the other pending task */
    cio_loop *loop = cio_running_loop();
    cio_task *all[8];
    size_t n = cio_all_tasks(loop, all, 8);
    /* The running task counts: it is not done. */
    CHECK_EQ(n, 2);
    int saw_self = 0, saw_other = 0;
    for (size_t i = 0; i < n; i++) {
        if (all[i] == cio_current_task()) saw_self = 1;
        if (all[i] == expect[0]) saw_other = 1;
    }
    CHECK(saw_self && saw_other);
    /* A short array gets what fits, the count is the total. */
    cio_task *one[1] = {NULL};
    CHECK_EQ(cio_all_tasks(loop, one, 1), 2);
    CHECK(one[0] != NULL);
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 2);
    return NULL;
}

TEST(all_tasks_lists_only_pending_tasks) {
    cio_loop *loop = test_loop();
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 0);
    CHECK_EQ(cio_all_tasks(NULL, NULL, 0), 0);
    cio_task *done_task, *sleeper, *lister;
    CHECK_OK(cio_spawn(loop, mark_body, NULL, &done_task));
    CHECK_OK(cio_spawn(loop, sleep_long, NULL, &sleeper));
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 2); /* scheduled tasks are pending */
    CHECK_OK(cio_run_until_complete(loop, done_task, NULL));
    cio_future *plain;
    CHECK_OK(cio_future_new(loop, &plain)); /* futures are not tasks */
    cio_task *expect[1] = {sleeper};
    CHECK_OK(cio_spawn(loop, list_all_tasks, expect, &lister));
    CHECK_OK(cio_run_until_complete(loop, lister, NULL));
    cio_task *all[4];
    CHECK_EQ(cio_all_tasks(loop, all, 4), 1);
    CHECK(all[0] == sleeper);
    CHECK_EQ(cio_task_cancel(sleeper, NULL), 1);
    CHECK_ERR(cio_run_until_complete(loop, sleeper, NULL), -ECANCELED);
    CHECK_EQ(cio_all_tasks(loop, all, 4), 0);
    cio_future_unref(done_task);
    cio_future_unref(sleeper);
    cio_future_unref(lister);
    cio_future_unref(plain);
    cio_loop_free(loop);
}

/* ---- detached tasks ------------------------------------------------------------------- */

static int detached_finished;

static void *detached_body(void *arg) {
    int rc = cio_sleep(0.001 * PTRI(arg));
    detached_finished++;
    return rc < 0 ? cio_raise(rc) : NULL;
}

TEST(detached_tasks_free_themselves) {
    cio_loop *loop = recording_loop();
    detached_finished = 0;
    for (int i = 0; i < 50; i++) CHECK_OK(cio_spawn(loop, detached_body, IPTR(i % 5), NULL));
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 50);
    while (cio_all_tasks(loop, NULL, 0) > 0) run_once(loop);
    CHECK_EQ(detached_finished, 50);
    /* Nothing is left behind for close to clean up. */
    check_nothing_left(loop);
    CHECK_EQ(reports, 0);
    cio_loop_free(loop);
}

TEST(released_task_keeps_running_and_frees_itself) {
    cio_loop *loop = test_loop();
    detached_finished = 0;
    cio_task *t;
    CHECK_OK(cio_spawn(loop, detached_body, IPTR(5), &t));
    cio_future_unref(t); /* pending: now detached */
    while (cio_all_tasks(loop, NULL, 0) > 0) run_once(loop);
    CHECK_EQ(detached_finished, 1);
    check_nothing_left(loop);
    cio_loop_free(loop);
}

TEST(detached_task_error_is_reported_when_it_ends) {
    cio_loop *loop = recording_loop();
    CHECK_OK(cio_spawn(loop, raise_eio, NULL, NULL));
    CHECK_EQ(reports, 0);
    run_once(loop);
    CHECK_EQ(reports, 1);
    CHECK_ERR(last_error, -EIO);
    CHECK_STR(last_message, "Task exception was never retrieved");
    check_nothing_left(loop);
    cio_loop_free(loop);
    CHECK_EQ(reports, 1);
}

/* ---- dump ---------------------------------------------------------------------------- */

static cio_future *dump_future;
static char dump_text[4096];
static int dump_count;

static void *dumper(void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(0.01)); /* let the others reach their waits */
    FILE *out = fmemopen(dump_text, sizeof dump_text - 1, "w");
    CHECK(out != NULL);
    dump_count = cio_loop_dump_tasks(cio_running_loop(), out);
    fclose(out);
    return NULL;
}

static void *await_future_forever(void *arg) {
    int rc = cio_await(arg, NULL);
    return rc < 0 ? cio_raise(rc) : NULL;
}

static const char *line_of(const char *name) {
    static char line[512];
    const char *p = dump_text;
    size_t n = strlen(name);
    while (p && *p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > n && strncmp(p, name, n) == 0 && p[n] == ':') {
            if (len >= sizeof line) len = sizeof line - 1;
            memcpy(line, p, len);
            line[len] = '\0';
            return line;
        }
        p = end ? end + 1 : NULL;
    }
    FAIL("no line for task %s in dump:\n%s", name, dump_text);
}

#define CHECK_CONTAINS(hay, needle)                                                   \
    do {                                                                              \
        if (!strstr((hay), (needle))) FAIL("\"%s\" does not contain \"%s\"", (hay), (needle)); \
    } while (0)

TEST(dump_lists_tasks_and_what_they_await) {
    cio_loop *loop = test_loop();
    memset(dump_text, 0, sizeof dump_text);
    CHECK_OK(cio_future_new(loop, &dump_future));
    cio_task_options o1 = {.name = "sleeper"}, o2 = {.name = "awaiter"}, o3 = {.name = "futwaiter"},
                     o4 = {.name = "dumper"};
    cio_task *s, *a, *f, *d;
    CHECK_OK(cio_spawn_with(loop, sleep_long, NULL, &o1, &s));
    CHECK_OK(cio_spawn_with(loop, await_future_forever, s, &o2, &a));
    CHECK_OK(cio_spawn_with(loop, await_future_forever, dump_future, &o3, &f));
    CHECK_OK(cio_spawn_with(loop, dumper, NULL, &o4, &d));
    CHECK_OK(cio_run_until_complete(loop, d, NULL));
    CHECK_EQ(dump_count, 4);
    CHECK_CONTAINS(line_of("sleeper"), "awaiting sleep");
    CHECK_CONTAINS(line_of("sleeper"), "deadline");
    CHECK_CONTAINS(line_of("awaiter"), "awaiting future 'sleeper'");
    CHECK_CONTAINS(line_of("futwaiter"), "awaiting future");
    CHECK(!strstr(line_of("futwaiter"), "'"));
    CHECK_CONTAINS(line_of("dumper"), "running");
    /* Done tasks are not listed, and cancel requests are shown. */
    CHECK_EQ(cio_task_cancel(s, NULL), 1);
    FILE *out = fmemopen(dump_text, sizeof dump_text - 1, "w");
    CHECK(out != NULL);
    memset(dump_text, 0, sizeof dump_text);
    CHECK_EQ(cio_loop_dump_tasks(loop, out), 3);
    fclose(out);
    CHECK_CONTAINS(line_of("sleeper"), "1 cancel request");
    CHECK(!strstr(dump_text, "dumper"));
    CHECK_ERR(cio_loop_dump_tasks(NULL, stderr), -EINVAL);
    CHECK_ERR(cio_loop_dump_tasks(loop, NULL), -EINVAL);
    CHECK_OK(cio_future_set_result(dump_future, NULL));
    CHECK_OK(cio_run_until_complete(loop, f, NULL));
    CHECK_ERR(cio_run_until_complete(loop, a, NULL), -ECANCELED);
    cio_future_unref(s);
    cio_future_unref(a);
    cio_future_unref(f);
    cio_future_unref(d);
    cio_future_unref(dump_future);
    check_nothing_left(loop);
    cio_loop_free(loop);
}

/* ---- loop close with pending tasks ------------------------------------------------ */

TEST(close_reports_pending_tasks) {
    cio_loop *loop = recording_loop();
    cio_task *started, *never_started;
    CHECK_OK(cio_spawn(loop, sleep_long, NULL, &started));
    run_once(loop);
    CHECK_OK(cio_spawn(loop, sleep_long, NULL, &never_started));
    cio_future_unref(never_started); /* now held by the loop only */
    cio_future_unref(started);
    CHECK_EQ(reports, 0);
    CHECK_OK(cio_loop_close(loop));
    CHECK_EQ(reports, 2);
    CHECK_STR(last_message, "Task was destroyed but it is pending!");
    cio_loop_free(loop);
    CHECK_EQ(reports, 2);
}

static const cio_future *pending_seen[4];
static int pending_seen_count;

static void pending_handler(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)arg;
    CHECK_STR(ctx->message, "Task was destroyed but it is pending!");
    CHECK(ctx->future != NULL);
    if (pending_seen_count < 4) pending_seen[pending_seen_count] = ctx->future;
    pending_seen_count++;
}

TEST(close_names_each_pending_task) {
    cio_loop *loop = test_loop();
    pending_seen_count = 0;
    CHECK_OK(cio_loop_set_exception_handler(loop, pending_handler, NULL));
    cio_task *a, *b, *c;
    CHECK_OK(cio_spawn(loop, sleep_long, NULL, &a));
    CHECK_OK(cio_spawn(loop, mark_body, NULL, &b));
    CHECK_OK(cio_spawn(loop, sleep_long, NULL, &c));
    run_once(loop); /* b finishes, a and c wait */
    const cio_future *pa = a, *pc = c;
    cio_future_unref(a);
    cio_future_unref(b);
    cio_future_unref(c);
    cio_loop_free(loop);
    CHECK_EQ(pending_seen_count, 2);
    CHECK((pending_seen[0] == pa && pending_seen[1] == pc) ||
          (pending_seen[0] == pc && pending_seen[1] == pa));
}

/* ---- bad arguments ------------------------------------------------------------------- */

TEST(spawn_bad_arguments) {
    cio_loop *loop = test_loop();
    cio_task *t = (cio_task *)1;
    CHECK_ERR(cio_spawn(NULL, mark_body, NULL, &t), -EINVAL);
    CHECK(t == NULL);
    t = (cio_task *)1;
    CHECK_ERR(cio_spawn(loop, NULL, NULL, &t), -EINVAL);
    CHECK(t == NULL);
    cio_task_options tiny = {.stack_size = 1024};
    CHECK_ERR(cio_spawn_with(loop, mark_body, NULL, &tiny, &t), -EINVAL);
    CHECK(t == NULL);
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 0);
    cio_task_options big = {.stack_size = 256 * 1024};
    CHECK_OK(cio_spawn_with(loop, mark_body, NULL, &big, &t));
    CHECK_INT(cio_task_stack_size(t), >=, 256 * 1024);
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    CHECK_OK(cio_loop_close(loop));
    CHECK_ERR(cio_spawn(loop, mark_body, NULL, &t), -CIO_ELOOPCLOSED);
    CHECK(t == NULL);
    cio_loop_free(loop);
}

/* ---- lifetimes past the loop ------------------------------------------------ */

/* What main leaves behind for the program to read after cio_run returns. */
static cio_task *kept_done, *kept_pending, *kept_waiting;
static cio_future *kept_gather, *kept_shield, *kept_future;

static void *return_seven(void *arg) {
    (void)arg;
    return IPTR(7);
}

static void *await_forever(void *arg) {
    /* Suspended in await (its frame holds a reference on arg) when the
     * loop closes. */
    cio_await(arg, NULL);
    return NULL;
}

static void *wait_forever(void *arg) {
    cio_future *fs[10];
    for (int i = 0; i < 10; i++) fs[i] = arg;
    size_t nd;
    cio_wait(fs, 10, CIO_ALL_COMPLETED, CIO_NO_TIMEOUT, NULL, &nd, NULL, NULL);
    return NULL;
}

static void *leave_things_behind(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_spawn(loop, return_seven, NULL, &kept_done));
    CHECK_OK(cio_await(kept_done, NULL));
    CHECK_OK(cio_future_new(loop, &kept_future));
    /* Pending at the end of main: cio_run cancels it and runs it out. */
    CHECK_OK(cio_spawn(loop, sleep_long, NULL, &kept_pending));
    CHECK_OK(cio_spawn(loop, await_forever, kept_future, &kept_waiting));
    CHECK_OK(cio_spawn(loop, wait_forever, kept_future, NULL));
    cio_future *kids[2] = {kept_done, kept_pending};
    CHECK_OK(cio_gather(loop, kids, 2, CIO_RETURN_EXCEPTIONS, &kept_gather));
    CHECK_OK(cio_shield(kept_future, &kept_shield));
    CHECK_OK(cio_sleep(0));
    return IPTR(1);
}

TEST(held_task_outlives_cio_run) {
    void *r = NULL;
    CHECK_OK(cio_run(leave_things_behind, NULL, &r));
    CHECK_EQ(PTRI(r), 1);
    /* The loop is closed and freed; what the program holds is still there. */
    CHECK(cio_future_done(kept_done) && !cio_future_cancelled(kept_done));
    CHECK_OK(cio_future_result(kept_done, &r));
    CHECK_EQ(PTRI(r), 7);
    CHECK_STR(cio_task_name(kept_done), "Task-2");
    CHECK(cio_future_cancelled(kept_pending));
    CHECK_ERR(cio_future_error(kept_pending), -ECANCELED);
    CHECK(cio_future_cancelled(kept_waiting));
    CHECK_EQ(cio_task_cancel(kept_waiting, NULL), 0);
    CHECK(cio_future_loop(kept_waiting) == NULL);
    /* The gather's outcome array lives as long as the gather future. */
    size_t n = 0;
    const cio_outcome *o = cio_gather_outcomes(kept_gather, &n);
    CHECK_EQ(n, 2);
    CHECK_OK(o[0].error);
    CHECK_EQ(PTRI(o[0].value), 7);
    CHECK_ERR(o[1].error, -ECANCELED);
    CHECK(cio_future_cancelled(kept_future));
    CHECK(cio_future_cancelled(kept_shield));
    cio_future_unref(kept_done);
    cio_future_unref(kept_pending);
    cio_future_unref(kept_waiting);
    cio_future_unref(kept_gather);
    cio_future_unref(kept_shield);
    cio_future_unref(kept_future);
}

TEST(held_pending_task_outlives_close_and_free) {
    cio_loop *loop = recording_loop();
    cio_future *f;
    cio_task *t, *w, *never;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_spawn(loop, await_forever, f, &w));
    CHECK_OK(cio_spawn(loop, wait_forever, f, &t));
    run_once(loop);
    CHECK_OK(cio_spawn(loop, return_seven, NULL, &never));
    cio_future_unref(f); /* only the suspended tasks hold it now */
    CHECK_OK(cio_loop_close(loop));
    CHECK_EQ(reports, 3); /* three tasks destroyed while pending */
    CHECK(cio_future_cancelled(w) && cio_future_cancelled(t) && cio_future_cancelled(never));
    cio_loop_free(loop);
    /* After the loop is freed: still readable, and every call answers. */
    CHECK(cio_future_cancelled(w));
    CHECK_ERR(cio_future_result(never, NULL), -ECANCELED);
    CHECK_EQ(cio_future_cancel(t, "late"), 0);
    CHECK_EQ(cio_task_cancelling(t), 0);
    CHECK_ERR(cio_future_add_done_callback(w, NULL, NULL), -EINVAL);
    CHECK_OK(cio_task_set_name(w, "renamed"));
    CHECK_STR(cio_task_name(w), "renamed");
    loop = test_loop();
    CHECK_ERR(cio_gather(loop, &w, 1, 0, &f), -CIO_ELOOPCLOSED);
    cio_loop_free(loop);
    cio_future_unref(w);
    cio_future_unref(t);
    cio_future_unref(never);
}
