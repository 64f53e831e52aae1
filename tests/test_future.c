/*
 * Futures: the state machine (pending, result, error, cancelled), done
 * callbacks, reports of errors nobody retrieved, reference counting and bad
 * arguments. Checked against asyncio.Future as Python 3.13 documents it.
 */
#include "test.h"


/* Runs exactly one loop iteration: stop() before run_forever() makes the
 * next run do one iteration and return. */
static void run_once(cio_loop *loop) {
    CHECK_OK(cio_loop_stop(loop));
    CHECK_OK(cio_run_forever(loop));
}

/* ---- a log of what callbacks saw --------------------------------------- */

static char cb_log[256];

static void log_str(const char *s) {
    size_t len = strlen(cb_log), n = strlen(s);
    if (len + n + 1 >= sizeof cb_log) FAIL("callback log overflow");
    memcpy(cb_log + len, s, n + 1);
}

static void reset_log(void) {
    cb_log[0] = '\0';
}

/* A done callback that logs its argument (a string) and checks that the
 * future it receives is already done. */
static void log_done(cio_future *fut, void *arg) {
    CHECK(fut != NULL);
    CHECK(cio_future_done(fut));
    log_str(arg);
}

static void log_soon(cio_loop *loop, void *arg) {
    (void)loop;
    log_str(arg);
}

/* ---- exception handler -------------------------------------------------- */

static int reports;
static int last_report_error;
static const cio_future *last_report_future;
static char last_report_message[128];

static void recording_handler(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    CHECK(arg == &reports);
    CHECK(ctx->message != NULL);
    reports++;
    last_report_error = ctx->error;
    last_report_future = ctx->future;
    snprintf(last_report_message, sizeof last_report_message, "%s", ctx->message);
}

static cio_loop *recording_loop(void) {
    cio_loop *loop = test_loop();
    reports = 0;
    last_report_error = 0;
    last_report_future = NULL;
    last_report_message[0] = '\0';
    CHECK_OK(cio_loop_set_exception_handler(loop, recording_handler, &reports));
    return loop;
}

/* ---- states -------------------------------------------------------------- */

TEST(new_future_is_pending) {
    cio_loop *loop = test_loop();
    cio_future *f = NULL;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK(f != NULL);
    CHECK(!cio_future_done(f));
    CHECK(!cio_future_cancelled(f));
    CHECK(!cio_future_is_task(f));
    CHECK(cio_future_loop(f) == loop);
    void *r = IPTR(99);
    /* asyncio: result() and exception() of a pending future raise
     * InvalidStateError. */
    CHECK_ERR(cio_future_result(f, &r), -CIO_EINVALSTATE);
    CHECK_EQ(PTRI(r), 99); /* untouched */
    CHECK_ERR(cio_future_error(f), -CIO_EINVALSTATE);
    CHECK(cio_future_cancel_message(f) == NULL);
    CHECK(cio_future_error_message(f) == NULL);
    CHECK(cio_gather_outcomes(f, NULL) == NULL);
    cio_future_unref(f);
    cio_loop_free(loop);
}

TEST(set_result_completes_once) {
    cio_loop *loop = recording_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_result(f, IPTR(42)));
    CHECK(cio_future_done(f));
    CHECK(!cio_future_cancelled(f));
    void *r = NULL;
    CHECK_OK(cio_future_result(f, &r));
    CHECK_EQ(PTRI(r), 42);
    CHECK_OK(cio_future_result(f, NULL)); /* result may be NULL */
    CHECK_OK(cio_future_error(f));
    /* A second completion of any kind is InvalidStateError and changes
     * nothing. */
    CHECK_ERR(cio_future_set_result(f, IPTR(7)), -CIO_EINVALSTATE);
    CHECK_ERR(cio_future_set_error(f, -EIO), -CIO_EINVALSTATE);
    CHECK_ERR(cio_future_set_error_msg(f, -EIO, "late"), -CIO_EINVALSTATE);
    CHECK_EQ(cio_future_cancel(f, "too late"), 0);
    CHECK(!cio_future_cancelled(f));
    CHECK(cio_future_cancel_message(f) == NULL);
    CHECK_OK(cio_future_result(f, &r));
    CHECK_EQ(PTRI(r), 42);
    cio_future_unref(f);
    CHECK_EQ(reports, 0);
    cio_loop_free(loop);
}

TEST(null_result_is_a_result) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_result(f, NULL));
    CHECK(cio_future_done(f));
    void *r = IPTR(1);
    CHECK_OK(cio_future_result(f, &r));
    CHECK(r == NULL);
    CHECK_ERR(cio_future_set_result(f, NULL), -CIO_EINVALSTATE);
    cio_future_unref(f);
    cio_loop_free(loop);
}

TEST(set_error_completes_with_the_error) {
    cio_loop *loop = recording_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -EIO));
    CHECK(cio_future_done(f));
    CHECK(!cio_future_cancelled(f));
    void *r = IPTR(5);
    CHECK_ERR(cio_future_result(f, &r), -EIO);
    CHECK_EQ(PTRI(r), 5); /* an error leaves *result alone */
    CHECK_ERR(cio_future_error(f), -EIO);
    CHECK(cio_future_error_message(f) == NULL);
    CHECK(cio_future_cancel_message(f) == NULL);
    CHECK_ERR(cio_future_set_result(f, NULL), -CIO_EINVALSTATE);
    CHECK_ERR(cio_future_set_error(f, -EPIPE), -CIO_EINVALSTATE);
    CHECK_EQ(cio_future_cancel(f, NULL), 0);
    CHECK_ERR(cio_future_error(f), -EIO);
    cio_future_unref(f);
    CHECK_EQ(reports, 0); /* it was read */
    cio_loop_free(loop);
}

TEST(set_error_rejects_non_negative_codes) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_ERR(cio_future_set_error(f, 0), -EINVAL);
    CHECK_ERR(cio_future_set_error(f, EIO), -EINVAL);
    CHECK_ERR(cio_future_set_error_msg(f, 0, "x"), -EINVAL);
    CHECK(!cio_future_done(f)); /* a refused call changes nothing */
    CHECK_OK(cio_future_set_result(f, IPTR(1)));
    cio_future_unref(f);
    cio_loop_free(loop);
}

TEST(set_error_ecanceled_is_an_error_not_a_cancellation) {
    /* asyncio: set_exception(CancelledError()) leaves cancelled() False. */
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -ECANCELED));
    CHECK(cio_future_done(f));
    CHECK(!cio_future_cancelled(f));
    CHECK_ERR(cio_future_error(f), -ECANCELED);
    CHECK_ERR(cio_future_result(f, NULL), -ECANCELED);
    CHECK_EQ(cio_future_cancel(f, NULL), 0);
    cio_future_unref(f);
    cio_loop_free(loop);
}

TEST(set_error_msg_keeps_a_copy_of_the_message) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    char msg[] = "disk on fire";
    CHECK_OK(cio_future_set_error_msg(f, -EIO, msg));
    msg[0] = 'X';
    CHECK_STR(cio_future_error_message(f), "disk on fire");
    CHECK(cio_future_cancel_message(f) == NULL);
    CHECK_ERR(cio_future_error(f), -EIO);
    cio_future_unref(f);
    cio_loop_free(loop);
}

TEST(cancel_with_message) {
    cio_loop *loop = recording_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    char msg[] = "stop it";
    CHECK_EQ(cio_future_cancel(f, msg), 1);
    msg[0] = 'X'; /* the message was copied */
    CHECK(cio_future_done(f));
    CHECK(cio_future_cancelled(f));
    CHECK_STR(cio_future_cancel_message(f), "stop it");
    CHECK(cio_future_error_message(f) == NULL);
    void *r = IPTR(3);
    CHECK_ERR(cio_future_result(f, &r), -ECANCELED);
    CHECK_EQ(PTRI(r), 3);
    CHECK_ERR(cio_future_error(f), -ECANCELED);
    /* Cancelling a done future returns False and keeps the first message. */
    CHECK_EQ(cio_future_cancel(f, "again"), 0);
    CHECK_STR(cio_future_cancel_message(f), "stop it");
    CHECK_ERR(cio_future_set_result(f, NULL), -CIO_EINVALSTATE);
    CHECK_ERR(cio_future_set_error(f, -EIO), -CIO_EINVALSTATE);
    CHECK(cio_future_cancelled(f));
    cio_future_unref(f);
    CHECK_EQ(reports, 0); /* a cancellation is never "unretrieved" */
    cio_loop_free(loop);
}

TEST(cancel_without_message) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_EQ(cio_future_cancel(f, NULL), 1);
    CHECK(cio_future_cancelled(f));
    CHECK(cio_future_cancel_message(f) == NULL);
    cio_future_unref(f);
    cio_loop_free(loop);
}

/* ---- tasks are futures, but not settable -------------------------------- */

static void *return_three(void *arg) {
    (void)arg;
    return IPTR(3);
}

TEST(set_result_or_error_on_a_task_is_einval) {
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, return_three, NULL, &t));
    CHECK(cio_future_is_task(t));
    /* asyncio: Task does not support set_result() / set_exception(). */
    CHECK_ERR(cio_future_set_result(t, IPTR(1)), -EINVAL);
    CHECK_ERR(cio_future_set_error(t, -EIO), -EINVAL);
    CHECK_ERR(cio_future_set_error_msg(t, -EIO, "no"), -EINVAL);
    CHECK(!cio_future_done(t));
    void *r = NULL;
    CHECK_OK(cio_run_until_complete(loop, t, &r));
    CHECK_EQ(PTRI(r), 3);
    /* Still refused once done (not InvalidStateError: it is a task). */
    CHECK_ERR(cio_future_set_result(t, IPTR(1)), -EINVAL);
    CHECK_OK(cio_future_result(t, &r));
    CHECK_EQ(PTRI(r), 3);
    cio_future_unref(t);
    cio_loop_free(loop);
}

/* ---- done callbacks -------------------------------------------------------- */

TEST(done_callback_is_deferred_to_the_loop) {
    cio_loop *loop = test_loop();
    reset_log();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_add_done_callback(f, log_done, "a"));
    CHECK_OK(cio_future_set_result(f, NULL));
    CHECK_STR(cb_log, ""); /* never inline */
    run_once(loop);
    CHECK_STR(cb_log, "a");
    run_once(loop);
    CHECK_STR(cb_log, "a"); /* exactly once */
    cio_future_unref(f);
    cio_loop_free(loop);
}

TEST(done_callback_on_a_done_future_is_still_deferred) {
    cio_loop *loop = test_loop();
    reset_log();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_result(f, NULL));
    run_once(loop);
    CHECK_OK(cio_future_add_done_callback(f, log_done, "a"));
    CHECK_STR(cb_log, "");
    run_once(loop);
    CHECK_STR(cb_log, "a");
    /* The same for a cancelled future and one with an error. */
    cio_future *c, *e;
    CHECK_OK(cio_future_new(loop, &c));
    CHECK_OK(cio_future_new(loop, &e));
    CHECK_EQ(cio_future_cancel(c, NULL), 1);
    CHECK_OK(cio_future_set_error(e, -EIO));
    CHECK_OK(cio_future_add_done_callback(c, log_done, "c"));
    CHECK_OK(cio_future_add_done_callback(e, log_done, "e"));
    CHECK_STR(cb_log, "a");
    run_once(loop);
    CHECK_STR(cb_log, "ace");
    CHECK_ERR(cio_future_error(e), -EIO);
    cio_future_unref(f);
    cio_future_unref(c);
    cio_future_unref(e);
    cio_loop_free(loop);
}

TEST(done_callbacks_run_in_registration_order) {
    cio_loop *loop = test_loop();
    reset_log();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    static const char *const names[] = {"1", "2", "3", "4", "5", "6", "7", "8"};
    for (int i = 0; i < 8; i++) CHECK_OK(cio_future_add_done_callback(f, log_done, (void *)names[i]));
    /* The same (fn, arg) may be registered twice: it then runs twice. */
    CHECK_OK(cio_future_add_done_callback(f, log_done, (void *)names[0]));
    CHECK_EQ(cio_future_cancel(f, NULL), 1);
    CHECK_STR(cb_log, "");
    run_once(loop);
    CHECK_STR(cb_log, "123456781");
    cio_future_unref(f);
    cio_loop_free(loop);
}

TEST(done_callbacks_are_scheduled_at_completion_like_call_soon) {
    /* asyncio schedules the callbacks with call_soon when the future
     * completes: a callback scheduled before the completion runs before
     * them, one scheduled after runs after them, all in one iteration. */
    cio_loop *loop = test_loop();
    reset_log();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_add_done_callback(f, log_done, "d1"));
    CHECK_OK(cio_call_soon(loop, log_soon, "s1", NULL));
    CHECK_OK(cio_future_set_result(f, NULL));
    CHECK_OK(cio_call_soon(loop, log_soon, "s2", NULL));
    CHECK_OK(cio_future_add_done_callback(f, log_done, "d2"));
    run_once(loop);
    CHECK_STR(cb_log, "s1d1s2d2");
    cio_future_unref(f);
    cio_loop_free(loop);
}

static cio_future *chained;

static void add_another(cio_future *fut, void *arg) {
    (void)arg;
    log_str("x");
    /* Added from inside a callback to the same done future: it must wait
     * for the next iteration, not run inline nor in this one. */
    CHECK_OK(cio_future_add_done_callback(fut, log_done, "y"));
    CHECK(fut == chained);
}

TEST(done_callback_added_from_a_done_callback_runs_next_iteration) {
    cio_loop *loop = test_loop();
    reset_log();
    CHECK_OK(cio_future_new(loop, &chained));
    CHECK_OK(cio_future_add_done_callback(chained, add_another, NULL));
    CHECK_OK(cio_future_set_result(chained, NULL));
    run_once(loop);
    CHECK_STR(cb_log, "x");
    run_once(loop);
    CHECK_STR(cb_log, "xy");
    cio_future_unref(chained);
    cio_loop_free(loop);
}

static void other_done(cio_future *fut, void *arg) {
    (void)fut;
    (void)arg;
    log_str("O");
}

TEST(remove_done_callback_removes_every_equal_registration) {
    cio_loop *loop = test_loop();
    reset_log();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    char *a = "a", *b = "b";
    CHECK_OK(cio_future_add_done_callback(f, log_done, a));
    CHECK_OK(cio_future_add_done_callback(f, log_done, b));
    CHECK_OK(cio_future_add_done_callback(f, other_done, a));
    CHECK_OK(cio_future_add_done_callback(f, log_done, a));
    CHECK_OK(cio_future_add_done_callback(f, log_done, a));
    /* Only (fn, arg) pairs that match both are removed. */
    CHECK_EQ(cio_future_remove_done_callback(f, log_done, a), 3);
    CHECK_EQ(cio_future_remove_done_callback(f, log_done, a), 0);
    CHECK_EQ(cio_future_remove_done_callback(f, log_done, "zzz"), 0);
    CHECK_EQ(cio_future_remove_done_callback(f, add_another, a), 0);
    CHECK_OK(cio_future_set_result(f, NULL));
    run_once(loop);
    CHECK_STR(cb_log, "bO");
    cio_future_unref(f);
    cio_loop_free(loop);
}

TEST(remove_done_callback_after_completion_finds_nothing) {
    /* asyncio moves the callbacks out of the future when it completes, so
     * remove_done_callback() then returns 0 and they still run. */
    cio_loop *loop = test_loop();
    reset_log();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_add_done_callback(f, log_done, "a"));
    CHECK_OK(cio_future_set_result(f, NULL));
    CHECK_EQ(cio_future_remove_done_callback(f, log_done, "a"), 0);
    run_once(loop);
    CHECK_STR(cb_log, "a");
    CHECK_EQ(cio_future_remove_done_callback(f, log_done, "a"), 0);
    cio_future_unref(f);
    cio_loop_free(loop);
}

TEST(removing_every_callback_leaves_the_future_releasable) {
    /* Each registration holds a reference; removing it must give that
     * reference back, so the future is freed by the last unref (checked
     * through the loop's list of live futures, which close would
     * otherwise quietly empty). */
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    for (int i = 0; i < 5; i++) CHECK_OK(cio_future_add_done_callback(f, log_done, "a"));
    CHECK_EQ(cio_future_remove_done_callback(f, log_done, "a"), 5);
    cio_future_unref(f);
    CHECK(loop_stats(loop).futures == 0);
    cio_loop_free(loop);
}

static int released_reads;

static void read_after_owner_released(cio_future *fut, void *arg) {
    (void)arg;
    void *r = NULL;
    CHECK_OK(cio_future_result(fut, &r));
    CHECK_EQ(PTRI(r), 17);
    released_reads++;
}

TEST(done_callback_keeps_the_future_alive) {
    cio_loop *loop = test_loop();
    released_reads = 0;
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_add_done_callback(f, read_after_owner_released, NULL));
    CHECK_OK(cio_future_set_result(f, IPTR(17)));
    cio_future_unref(f); /* the owner lets go before the callback ran */
    CHECK(loop_stats(loop).futures != 0);
    run_once(loop);
    CHECK_EQ(released_reads, 1);
    /* The callback's reference was the last one. */
    CHECK(loop_stats(loop).futures == 0);
    cio_loop_free(loop);
}

static void *await_then_log(void *arg) {
    CHECK_OK(cio_await(arg, NULL));
    log_str("t");
    return NULL;
}

TEST(waiting_tasks_and_callbacks_wake_in_registration_order) {
    cio_loop *loop = test_loop();
    reset_log();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_add_done_callback(f, log_done, "a"));
    cio_task *t;
    CHECK_OK(cio_spawn(loop, await_then_log, f, &t));
    run_once(loop); /* the task starts and registers its wake-up */
    CHECK_OK(cio_future_add_done_callback(f, log_done, "b"));
    CHECK_OK(cio_future_set_result(f, NULL));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    CHECK_STR(cb_log, "atb");
    cio_future_unref(t);
    cio_future_unref(f);
    cio_loop_free(loop);
}

/* ---- errors nobody retrieved --------------------------------------------- */

TEST(unretrieved_error_is_reported_on_release) {
    cio_loop *loop = recording_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -EIO));
    CHECK_EQ(reports, 0); /* not at completion */
    cio_future *expected = f;
    cio_future_unref(f);
    CHECK_EQ(reports, 1);
    CHECK_ERR(last_report_error, -EIO);
    CHECK(last_report_future == expected);
    CHECK_STR(last_report_message, "Future exception was never retrieved");
    cio_loop_free(loop);
    CHECK_EQ(reports, 1); /* not twice */
}

TEST(unretrieved_error_is_reported_at_loop_close) {
    cio_loop *loop = recording_loop();
    cio_future *f;
    /* Only referenced by a done callback that will never run: close frees
     * it and reports its error. */
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -EPIPE));
    CHECK_OK(cio_future_add_done_callback(f, log_done, "never"));
    cio_future_unref(f);
    reset_log();
    CHECK_OK(cio_loop_close(loop));
    CHECK_EQ(reports, 1);
    CHECK_ERR(last_report_error, -EPIPE);
    CHECK_STR(cb_log, "");
    cio_loop_free(loop);
    CHECK_EQ(reports, 1);
    /* Held by the caller: it outlives the close, and reading its error
     * then is reading it (no report at release). */
    loop = recording_loop();
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -EPIPE));
    CHECK_OK(cio_loop_close(loop));
    CHECK_EQ(reports, 0);
    cio_loop_free(loop);
    CHECK_ERR(cio_future_error(f), -EPIPE);
    cio_future_unref(f);
    CHECK_EQ(reports, 0);
}

static void *fail_with_eio(void *arg) {
    (void)arg;
    return cio_raise(-EIO);
}

TEST(cancelling_a_failed_future_gives_up_its_error) {
    /* asyncio's test_tb_logger_not_called_after_cancel: cancel() on a done
     * future returns False but clears the "never retrieved" report. */
    cio_loop *loop = recording_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -EIO));
    CHECK_EQ(cio_future_cancel(f, NULL), 0);
    cio_future_unref(f);
    CHECK_EQ(reports, 0);
    /* The same for a task (Task.cancel clears it too). */
    cio_task *t;
    CHECK_OK(cio_spawn(loop, fail_with_eio, NULL, &t));
    run_once(loop);
    CHECK(cio_future_done(t));
    CHECK_EQ(cio_future_cancel(t, NULL), 0);
    cio_future_unref(t);
    CHECK_EQ(reports, 0);
    /* A cancel that came while the future was pending, and did not end it
     * (a task that caught it and failed of its own), leaves the report. */
    cio_loop_free(loop);
    CHECK_EQ(reports, 0);
}

static void read_error_cb(cio_future *fut, void *arg) {
    (void)arg;
    CHECK_ERR(cio_future_error(fut), -EIO);
}

static void *await_error(void *arg) {
    CHECK_ERR(cio_await(arg, NULL), -EIO);
    return NULL;
}

TEST(retrieved_errors_are_not_reported) {
    cio_loop *loop = recording_loop();
    cio_future *f;
    /* Read with result(). */
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -EIO));
    CHECK_ERR(cio_future_result(f, NULL), -EIO);
    cio_future_unref(f);
    /* Read with error(). */
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -EIO));
    CHECK_ERR(cio_future_error(f), -EIO);
    cio_future_unref(f);
    /* Read by a done callback. */
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_add_done_callback(f, read_error_cb, NULL));
    CHECK_OK(cio_future_set_error(f, -EIO));
    run_once(loop);
    cio_future_unref(f);
    /* Read by a task that awaited it. */
    CHECK_OK(cio_future_new(loop, &f));
    cio_task *t;
    CHECK_OK(cio_spawn(loop, await_error, f, &t));
    run_once(loop);
    CHECK_OK(cio_future_set_error(f, -EIO));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    cio_future_unref(f);
    /* Results and cancellations are never reported. */
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_result(f, NULL));
    cio_future_unref(f);
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_EQ(cio_future_cancel(f, NULL), 1);
    cio_future_unref(f);
    CHECK_EQ(reports, 0);
    cio_loop_free(loop);
    CHECK_EQ(reports, 0);
}

TEST(pending_future_is_not_reported) {
    cio_loop *loop = recording_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    cio_future_unref(f); /* a pending plain future is simply freed */
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_loop_close(loop));
    CHECK_EQ(reports, 0);
    CHECK(cio_future_cancelled(f)); /* held: it outlives close, cancelled */
    cio_future_unref(f);
    CHECK_EQ(reports, 0);
    cio_loop_free(loop);
}

/* ---- references ------------------------------------------------------------ */

TEST(ref_and_unref) {
    cio_loop *loop = recording_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK(cio_future_ref(f) == f);
    CHECK(cio_future_ref(f) == f);
    CHECK_OK(cio_future_set_error(f, -EIO));
    cio_future_unref(f);
    cio_future_unref(f);
    /* One reference is left: still alive, still reportable, not freed. */
    CHECK(loop_stats(loop).futures != 0);
    CHECK_EQ(reports, 0);
    CHECK(cio_future_done(f));
    cio_future_unref(f);
    CHECK(loop_stats(loop).futures == 0);
    CHECK_EQ(reports, 1); /* freed now, with its error unread */
    cio_future_unref(NULL);
    CHECK(cio_future_ref(NULL) == NULL);
    cio_loop_free(loop);
}

TEST(held_futures_outlive_the_loop) {
    /* Futures the caller still holds outlive close and free (ASan and
     * Valgrind check that nothing is touched after it is freed, and that
     * nothing leaks): each reads as its final state, or cancelled if it was
     * pending; calls that would need the loop return -CIO_ELOOPCLOSED; each
     * is freed at its last release. What nobody holds is freed by close. */
    cio_loop *loop = test_loop();
    cio_future *a, *b, *c, *d, *e;
    CHECK_OK(cio_future_new(loop, &a));
    CHECK_OK(cio_future_new(loop, &b));
    CHECK_OK(cio_future_new(loop, &c));
    CHECK_OK(cio_future_new(loop, &d));
    CHECK_OK(cio_future_new(loop, &e));
    CHECK_OK(cio_future_set_result(b, IPTR(7)));
    CHECK_EQ(cio_future_cancel(c, "x"), 1);
    CHECK_OK(cio_future_add_done_callback(d, log_done, "never"));
    cio_future_ref(a);
    cio_future_unref(e); /* pending, unreferenced: freed by close */
    reset_log();
    cio_loop_free(loop);
    CHECK_STR(cb_log, "");
    void *r = NULL;
    CHECK(cio_future_done(a) && cio_future_cancelled(a));
    CHECK_ERR(cio_future_result(a, &r), -ECANCELED);
    CHECK_OK(cio_future_result(b, &r));
    CHECK_EQ(PTRI(r), 7);
    CHECK_STR(cio_future_cancel_message(c), "x");
    CHECK(cio_future_cancelled(d));
    CHECK(cio_future_loop(a) == NULL);
    CHECK_EQ(cio_future_cancel(a, NULL), 0);
    CHECK_ERR(cio_future_set_result(a, NULL), -CIO_ELOOPCLOSED);
    CHECK_ERR(cio_future_set_error(d, -EIO), -CIO_ELOOPCLOSED);
    CHECK_ERR(cio_future_add_done_callback(b, log_done, "never"), -CIO_ELOOPCLOSED);
    CHECK_EQ(cio_future_remove_done_callback(d, log_done, "never"), 0);
    cio_future *outer = NULL, *g = NULL;
    CHECK_ERR(cio_shield(b, &outer), -CIO_ELOOPCLOSED);
    CHECK(outer == NULL);
    cio_loop *other = test_loop();
    CHECK_ERR(cio_gather(other, &b, 1, 0, &g), -CIO_ELOOPCLOSED);
    CHECK_ERR(cio_run_until_complete(other, b, NULL), -CIO_ELOOPCLOSED);
    cio_loop_free(other);
    cio_future_unref(a);
    cio_future_unref(a);
    cio_future_unref(b);
    cio_future_unref(c);
    cio_future_unref(d);
    CHECK_STR(cb_log, "");
}

TEST(closed_loop_refuses_new_futures) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_loop_close(loop));
    cio_future *f = (cio_future *)1;
    CHECK_ERR(cio_future_new(loop, &f), -CIO_ELOOPCLOSED);
    CHECK(f == NULL);
    cio_loop_free(loop);
}

/* ---- bad arguments ---------------------------------------------------------- */

static void never_called(cio_future *fut, void *arg) {
    (void)fut;
    (void)arg;
    FAIL("a refused callback was called");
}

TEST(null_arguments_are_einval) {
    cio_loop *loop = test_loop();
    cio_future *f = (cio_future *)1;
    CHECK_ERR(cio_future_new(NULL, &f), -EINVAL);
    CHECK(f == NULL);
    CHECK_ERR(cio_future_new(loop, NULL), -EINVAL);
    CHECK_ERR(cio_future_set_result(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_future_set_error(NULL, -EIO), -EINVAL);
    CHECK_ERR(cio_future_set_error_msg(NULL, -EIO, "x"), -EINVAL);
    CHECK_ERR(cio_future_cancel(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_future_result(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_future_error(NULL), -EINVAL);
    CHECK_ERR(cio_future_add_done_callback(NULL, never_called, NULL), -EINVAL);
    CHECK_ERR(cio_future_remove_done_callback(NULL, never_called, NULL), -EINVAL);
    CHECK(!cio_future_done(NULL));
    CHECK(!cio_future_cancelled(NULL));
    CHECK(!cio_future_is_task(NULL));
    CHECK(cio_future_loop(NULL) == NULL);
    CHECK(cio_future_cancel_message(NULL) == NULL);
    CHECK(cio_future_error_message(NULL) == NULL);
    size_t n = 9;
    CHECK(cio_gather_outcomes(NULL, &n) == NULL);
    CHECK_EQ(n, 0);

    CHECK_OK(cio_future_new(loop, &f));
    CHECK_ERR(cio_future_add_done_callback(f, NULL, NULL), -EINVAL);
    CHECK_OK(cio_future_set_result(f, NULL));
    run_once(loop); /* nothing registered: nothing runs */
    cio_future_unref(f);
    cio_loop_free(loop);
}
