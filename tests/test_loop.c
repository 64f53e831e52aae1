/* The event loop: call_soon, timers, run/stop/close, iteration rules. */
#include "test.h"

#include <limits.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct recorder {
    char log[256];
    size_t len;
} recorder;

static void record(recorder *r, const char *s) {
    size_t n = strlen(s);
    if (r->len + n + 1 < sizeof r->log) {
        memcpy(r->log + r->len, s, n + 1);
        r->len += n;
    }
}

static recorder rec;

static void append_a(cio_loop *loop, void *arg) { (void)loop; (void)arg; record(&rec, "a"); }
static void append_b(cio_loop *loop, void *arg) { (void)loop; (void)arg; record(&rec, "b"); }
static void append_c(cio_loop *loop, void *arg) { (void)loop; (void)arg; record(&rec, "c"); }
static void append_arg(cio_loop *loop, void *arg) { (void)loop; record(&rec, arg); }
static void stop_cb(cio_loop *loop, void *arg) { (void)arg; CHECK_OK(cio_loop_stop(loop)); }

TEST(call_soon_fifo_and_deferred) {
    cio_loop *loop = test_loop();
    memset(&rec, 0, sizeof rec);
    CHECK_OK(cio_call_soon(loop, append_a, NULL, NULL));
    CHECK_OK(cio_call_soon(loop, append_b, NULL, NULL));
    CHECK_OK(cio_call_soon(loop, append_c, NULL, NULL));
    CHECK_EQ(rec.len, 0); /* never inline */
    CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_STR(rec.log, "abc");
    cio_loop_free(loop);
}

static void reschedule_self(cio_loop *loop, void *arg) {
    (void)arg;
    record(&rec, "r");
    CHECK_OK(cio_call_soon(loop, reschedule_self, NULL, NULL));
}

TEST(iteration_runs_only_what_was_ready) {
    /* A callback that reschedules itself runs once per iteration: stop()
     * from the first batch ends the loop after exactly that batch. */
    cio_loop *loop = test_loop();
    memset(&rec, 0, sizeof rec);
    CHECK_OK(cio_call_soon(loop, reschedule_self, NULL, NULL));
    CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_STR(rec.log, "r");
    CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_STR(rec.log, "rr");
    cio_loop_free(loop);
}

TEST(stop_before_run_forever_runs_one_iteration) {
    cio_loop *loop = test_loop();
    memset(&rec, 0, sizeof rec);
    CHECK_OK(cio_call_soon(loop, append_a, NULL, NULL));
    CHECK_OK(cio_loop_stop(loop));
    CHECK_OK(cio_run_forever(loop));
    CHECK_STR(rec.log, "a");
    CHECK(!cio_loop_is_running(loop));
    cio_loop_free(loop);
}

TEST(call_later_ties_fire_in_scheduling_order) {
    cio_loop *loop = test_loop();
    memset(&rec, 0, sizeof rec);
    double when = cio_loop_time(loop) + 0.02;
    static char digits[10][2];
    for (int i = 0; i < 10; i++) {
        digits[i][0] = (char)('0' + i);
        CHECK_OK(cio_call_at(loop, when, append_arg, digits[i], NULL));
    }
    CHECK_OK(cio_call_at(loop, when + 0.01, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_STR(rec.log, "0123456789");
    cio_loop_free(loop);
}

TEST(call_later_orders_by_deadline_and_waits) {
    cio_loop *loop = test_loop();
    memset(&rec, 0, sizeof rec);
    double start = cio_loop_time(loop);
    /* call_at from one base time, so that a slow machine (Valgrind) taking
     * long between the calls cannot reorder the deadlines. */
    CHECK_OK(cio_call_at(loop, start + 0.06, append_c, NULL, NULL));
    CHECK_OK(cio_call_at(loop, start + 0.02, append_a, NULL, NULL));
    CHECK_OK(cio_call_at(loop, start + 0.04, append_b, NULL, NULL));
    CHECK_OK(cio_call_later(loop, 0.07, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    double took = cio_loop_time(loop) - start;
    CHECK_STR(rec.log, "abc");
    CHECK(took >= 0.07);
    CHECK(took < 1.0);
    cio_loop_free(loop);
}

/* call_at's deadline is its time in nanoseconds rounded half away from
 * zero, as llround rounds (the conversion does it without the library
 * call): exact halves, both signs, every magnitude up to the clamp, and a
 * sweep of arbitrary values. The handle's when_ns is the deadline. */
static int64_t deadline_of_call_at(cio_loop *loop, double when) {
    cio_handle h;
    if (cio_call_at(loop, when, append_a, NULL, &h) != 0) return INT64_MIN;
    int64_t ns = h.when_ns;
    cio_handle_cancel(&h);
    return ns;
}

TEST(call_at_rounds_its_time_to_the_nanosecond_as_llround) {
    cio_loop *loop = test_loop();
    const double halves[] = {0.5e-9, 1.5e-9, 2.5e-9, 1e9 + 0.5e-9, 123.0000000005,
                             4503599.6270496, 4503599.6270497, 0.49999999999999994e-9};
    for (size_t i = 0; i < sizeof halves / sizeof halves[0]; i++)
        for (int sign = -1; sign <= 1; sign += 2) {
            double when = sign * halves[i];
            CHECK_EQ(deadline_of_call_at(loop, when), llround(when * 1e9));
        }
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13; /* xorshift64 */
        x ^= x >> 7;
        x ^= x << 17;
        /* A mantissa and an exponent spread over 1e-12 s to 9e9 s. */
        double when = (double)(x >> 11) / 9007199254740992.0 * pow(10.0, (double)(x % 22) - 12.0);
        if (x & 1) when = -when;
        if (fabs(when) >= 9.2e9) continue;
        CHECK_EQ(deadline_of_call_at(loop, when), llround(when * 1e9));
    }
    CHECK_EQ(deadline_of_call_at(loop, 9.3e9), INT64_MAX);
    CHECK_EQ(deadline_of_call_at(loop, -9.3e9), INT64_MIN + 1);
    cio_loop_free(loop);
}

TEST(negative_delays_keep_their_order) {
    /* asyncio's test_call_later_negative_delays: when() is time() + delay,
     * so -2 runs before -1, both in the next iteration. */
    cio_loop *loop = test_loop();
    memset(&rec, 0, sizeof rec);
    cio_handle ha, hb;
    double t0 = cio_loop_time(loop);
    CHECK_OK(cio_call_later(loop, -1, append_a, NULL, &ha));
    CHECK_OK(cio_call_later(loop, -2, append_b, NULL, &hb));
    double t1 = cio_loop_time(loop);
    /* Each is the time of its call plus its delay (t0 and t1 bracket the
     * calls, however slow the machine: Valgrind took over a millisecond). */
    CHECK(cio_handle_when(&ha) >= t0 - 1 - 1e-6 && cio_handle_when(&ha) <= t1 - 1 + 1e-6);
    CHECK(cio_handle_when(&hb) >= t0 - 2 - 1e-6 && cio_handle_when(&hb) <= t1 - 2 + 1e-6);
    CHECK_OK(cio_loop_stop(loop));
    CHECK_OK(cio_run_forever(loop));
    CHECK_STR(rec.log, "ba");
    cio_loop_free(loop);
}

/* A timer due before the loop clock's origin reads its own deadline (only
 * a call_soon handle reads -1), and deadlines past the nanosecond range
 * stay at the bound, where call_at and call_later come due FIFO, as
 * asyncio runs equal deadlines (test_base_events: call_at(-20).when()). */
TEST(handle_when_before_the_origin_and_past_the_range) {
    cio_loop *loop = test_loop();
    memset(&rec, 0, sizeof rec);
    cio_handle h;
    CHECK_OK(cio_call_at(loop, -20.0, append_a, NULL, &h));
    CHECK(cio_handle_when(&h) == -20.0);
    CHECK_OK(cio_call_later(loop, -(cio_loop_time(loop) + 5.0), append_a, NULL, &h));
    CHECK(cio_handle_when(&h) > -5.01 && cio_handle_when(&h) < -4.99);
    CHECK_OK(cio_call_soon(loop, append_a, NULL, &h));
    CHECK(cio_handle_when(&h) == -1.0);
    cio_handle later, at;
    CHECK_OK(cio_call_later(loop, -INFINITY, append_b, NULL, &later));
    CHECK_OK(cio_call_at(loop, -INFINITY, append_c, NULL, &at));
    CHECK(cio_handle_when(&later) == cio_handle_when(&at));
    CHECK(cio_handle_when(&later) < -9.2e9);
    CHECK_OK(cio_call_later(loop, -1e300, append_b, NULL, NULL));
    CHECK_OK(cio_call_at(loop, -1e300, append_c, NULL, NULL));
    CHECK_OK(cio_call_later(loop, 0.01, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    /* call_soon's first, then the four at the bound in the order they were
     * scheduled, then the two past timers (-20 and now - 5) by deadline. */
    CHECK_STR(rec.log, "abcbcaa");
    cio_loop_free(loop);
}

TEST(handle_cancel) {
    cio_loop *loop = test_loop();
    memset(&rec, 0, sizeof rec);
    cio_handle h1, h2, h3;
    CHECK_OK(cio_call_soon(loop, append_a, NULL, &h1));
    CHECK_OK(cio_call_later(loop, 0.01, append_b, NULL, &h2));
    CHECK_OK(cio_call_soon(loop, append_c, NULL, &h3));
    CHECK(cio_handle_when(&h1) < 0);
    CHECK(cio_handle_when(&h2) > 0);
    CHECK_EQ(cio_handle_cancel(&h1), 1);
    CHECK_EQ(cio_handle_cancel(&h1), 0);
    CHECK(cio_handle_cancelled(&h1));
    CHECK_EQ(cio_handle_cancel(&h2), 1);
    CHECK(!cio_handle_cancelled(&h3));
    CHECK_OK(cio_call_later(loop, 0.03, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_STR(rec.log, "c");
    /* h3 already ran; its node may be reused: cancelling is a no-op. */
    cio_handle h4;
    CHECK_OK(cio_call_soon(loop, append_a, NULL, &h4));
    CHECK(!cio_handle_cancelled(&h3));
    CHECK_EQ(cio_handle_cancel(&h3), 0);
    /* asyncio: cancel() after the callback ran still marks the handle. */
    CHECK(cio_handle_cancelled(&h3));
    CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_STR(rec.log, "ca");
    cio_handle zero = {0};
    CHECK_EQ(cio_handle_cancel(&zero), 0);
    CHECK_ERR(cio_handle_cancel(NULL), -EINVAL);
    CHECK(isnan(cio_handle_when(NULL)));
    cio_loop_free(loop);
}

/* A handle outlives its callback, its loop's close and the loop itself:
 * cancelling or querying it then does nothing and reads no freed memory
 * (AddressSanitizer and Valgrind check the latter). */
TEST(handle_after_close_and_free_is_inert) {
    cio_loop *loop = test_loop();
    memset(&rec, 0, sizeof rec);
    cio_handle soon, later, after_close;
    CHECK_OK(cio_call_soon(loop, append_a, NULL, &soon));
    CHECK_OK(cio_call_later(loop, 10.0, append_b, NULL, &later));
    CHECK_OK(cio_call_later(loop, 5.0, append_c, NULL, &after_close));
    CHECK_OK(cio_loop_close(loop));
    CHECK_EQ(cio_handle_cancel(&soon), 0);
    CHECK(!cio_handle_cancelled(&later));
    CHECK_EQ(cio_handle_cancel(&later), 0);
    /* As asyncio's Handle.cancel() after close: nothing to cancel, but
     * the handle reads as cancelled. */
    CHECK(cio_handle_cancelled(&later));
    CHECK(cio_handle_when(&later) > 0);
    cio_loop_free(loop);
    CHECK_EQ(cio_handle_cancel(&after_close), 0);
    CHECK_EQ(cio_handle_cancel(&soon), 0);
    CHECK_STR(rec.log, "");
    /* A new loop, perhaps at the same address with a node of the same id,
     * is not touched by a handle of the old one. */
    for (int i = 0; i < 4; i++) {
        loop = test_loop();
        cio_handle old_handle;
        CHECK_OK(cio_call_soon(loop, append_a, NULL, &old_handle));
        cio_loop_free(loop);
        loop = test_loop();
        memset(&rec, 0, sizeof rec);
        CHECK_OK(cio_call_soon(loop, append_b, NULL, NULL));
        CHECK_EQ(cio_handle_cancel(&old_handle), 0);
        CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
        CHECK_OK(cio_run_forever(loop));
        CHECK_STR(rec.log, "b");
        cio_loop_free(loop);
    }
}

static cio_handle later_handle;
static void cancel_other(cio_loop *loop, void *arg) {
    (void)loop; (void)arg;
    CHECK_EQ(cio_handle_cancel(&later_handle), 1);
}

TEST(cancel_from_same_batch) {
    /* A handle cancelled by an earlier callback of the same batch is skipped. */
    cio_loop *loop = test_loop();
    memset(&rec, 0, sizeof rec);
    CHECK_OK(cio_call_soon(loop, cancel_other, NULL, NULL));
    CHECK_OK(cio_call_soon(loop, append_a, NULL, &later_handle));
    CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_STR(rec.log, "");
    cio_loop_free(loop);
}

TEST(time_is_monotonic_seconds) {
    cio_loop *loop = test_loop();
    double a = cio_loop_time(loop);
    double b = cio_loop_time(loop);
    CHECK(b >= a);
    CHECK_INT(cio_loop_time_ns(loop), >, 0);
    CHECK_NEAR(cio_loop_time(loop), (double)cio_loop_time_ns(loop) / 1e9, 0.01);
    cio_loop_free(loop);
}

static void *return_seven(void *arg) { (void)arg; return IPTR(7); }

TEST(closed_loop_refuses_everything) {
    cio_loop *loop = test_loop();
    CHECK(!cio_loop_is_closed(loop));
    CHECK_OK(cio_loop_close(loop));
    CHECK(cio_loop_is_closed(loop));
    CHECK_OK(cio_loop_close(loop)); /* idempotent */
    CHECK_ERR(cio_call_soon(loop, append_a, NULL, NULL), -CIO_ELOOPCLOSED);
    CHECK_ERR(cio_call_later(loop, 1, append_a, NULL, NULL), -CIO_ELOOPCLOSED);
    /* A refused call leaves the handle inert, whatever it held before. */
    cio_handle h = {.node = (void *)&h, .id = 77, .when_ns = 5};
    CHECK_ERR(cio_call_soon(loop, append_a, NULL, &h), -CIO_ELOOPCLOSED);
    CHECK(h.node == NULL && h.id == 0);
    h = (cio_handle){.node = (void *)&h, .id = 77, .when_ns = 5};
    CHECK_ERR(cio_call_later(loop, 1, append_a, NULL, &h), -CIO_ELOOPCLOSED);
    CHECK(h.node == NULL && h.id == 0);
    h = (cio_handle){.node = (void *)&h, .id = 77, .when_ns = 5};
    CHECK_ERR(cio_call_at(loop, 1, append_a, NULL, &h), -CIO_ELOOPCLOSED);
    CHECK(h.node == NULL && h.id == 0 && h.when_ns == 0);
    CHECK_ERR(cio_run_forever(loop), -CIO_ELOOPCLOSED);
    CHECK_ERR(cio_loop_stop(loop), -CIO_ELOOPCLOSED);
    cio_task *t = NULL;
    CHECK_ERR(cio_spawn(loop, return_seven, NULL, &t), -CIO_ELOOPCLOSED);
    CHECK(t == NULL);
    cio_future *f = NULL;
    CHECK_ERR(cio_future_new(loop, &f), -CIO_ELOOPCLOSED);
    cio_loop_free(loop);
}

TEST(close_drops_pending_callbacks) {
    cio_loop *loop = test_loop();
    memset(&rec, 0, sizeof rec);
    CHECK_OK(cio_call_soon(loop, append_a, NULL, NULL));
    CHECK_OK(cio_call_later(loop, 10, append_b, NULL, NULL));
    CHECK_OK(cio_loop_close(loop));
    CHECK_STR(rec.log, "");
    cio_loop_free(loop);
}

static void try_run_inside(cio_loop *loop, void *arg) {
    cio_future *f = arg;
    CHECK_ERR(cio_run_forever(loop), -CIO_ELOOPRUNNING);
    CHECK_ERR(cio_run_until_complete(loop, f, NULL), -CIO_ELOOPRUNNING);
    CHECK_ERR(cio_loop_close(loop), -CIO_ELOOPRUNNING);
    CHECK(cio_loop_is_running(loop));
    CHECK(cio_running_loop() == loop);
    cio_loop *other = test_loop();
    CHECK_ERR(cio_run_forever(other), -CIO_ELOOPRUNNING); /* one loop per thread */
    cio_loop_free(other);
    CHECK_OK(cio_loop_stop(loop));
}

TEST(running_loop_refuses_to_run_again) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK(cio_running_loop() == NULL);
    CHECK_OK(cio_call_soon(loop, try_run_inside, f, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK(cio_running_loop() == NULL);
    cio_future_unref(f);
    cio_loop_free(loop);
}

TEST(run_until_complete_returns_result) {
    cio_loop *loop = test_loop();
    void *r = NULL;
    CHECK_OK(test_run(loop, return_seven, NULL, &r));
    CHECK_EQ(PTRI(r), 7);
    cio_loop_free(loop);
}

TEST(run_until_complete_stopped_early) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
    CHECK_ERR(cio_run_until_complete(loop, f, NULL), -CIO_ESTOPPED);
    CHECK(!cio_future_done(f));
    /* The loop is reusable. */
    CHECK_OK(cio_future_set_result(f, IPTR(3)));
    void *r;
    CHECK_OK(cio_run_until_complete(loop, f, &r));
    CHECK_EQ(PTRI(r), 3);
    cio_future_unref(f);
    cio_loop_free(loop);
}

TEST(run_until_complete_wrong_loop) {
    cio_loop *a = test_loop(), *b = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(a, &f));
    CHECK_ERR(cio_run_until_complete(b, f, NULL), -CIO_EWRONGLOOP);
    cio_future_unref(f);
    cio_loop_free(a);
    cio_loop_free(b);
}

TEST(bad_arguments) {
    CHECK_ERR(cio_loop_new(NULL), -EINVAL);
    cio_loop_options bad = {.default_stack_size = 100};
    cio_loop *loop = (cio_loop *)1;
    CHECK_ERR(cio_loop_new_with(&bad, &loop), -EINVAL);
    CHECK(loop == NULL);
    cio_loop_options unknown = {.backend = "kqueue"};
    CHECK_ERR(cio_loop_new_with(&unknown, &loop), -ENOTSUP);
    loop = test_loop();
    CHECK_ERR(cio_call_soon(NULL, append_a, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_call_soon(loop, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_call_later(loop, NAN, append_a, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_call_at(loop, NAN, append_a, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_run_forever(NULL), -EINVAL);
    CHECK_ERR(cio_run_until_complete(loop, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_loop_close(NULL), -EINVAL);
    cio_loop_free(NULL);
    const char *asked = getenv("CIO_BACKEND");
    CHECK_STR(cio_loop_backend(loop), asked && strcmp(asked, "uring") == 0 ? "io_uring" : "epoll");
    cio_loop_free(loop);
}

TEST(strerror_covers_cio_codes) {
    CHECK_STR(cio_strerror(-CIO_ELOOPCLOSED), "Event loop is closed");
    CHECK_STR(cio_strerror(-CIO_ESTOPPED), "Event loop stopped before Future completed");
    CHECK(strlen(cio_strerror(-ECANCELED)) > 0);
    CHECK(strlen(cio_strerror(-ETIMEDOUT)) > 0);
    for (int e = CIO_EBASE + 1; e < CIO_ELAST; e++) CHECK(strlen(cio_strerror(-e)) > 0);
}

static int handler_calls;
static void count_handler(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    CHECK(arg == &handler_calls);
    CHECK(ctx->message != NULL);
    handler_calls++;
}

static void never_done(cio_future *fut, void *arg) {
    (void)fut;
    (void)arg;
    FAIL("a done callback ran after close");
}

TEST(exception_handler_receives_unretrieved_errors) {
    cio_loop *loop = test_loop();
    handler_calls = 0;
    CHECK_OK(cio_loop_set_exception_handler(loop, count_handler, &handler_calls));
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -EIO));
    cio_future_unref(f); /* freed with an error nobody read */
    CHECK_EQ(handler_calls, 1);
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -EIO));
    CHECK_ERR(cio_future_result(f, NULL), -EIO);
    cio_future_unref(f); /* retrieved: no report */
    CHECK_EQ(handler_calls, 1);
    /* Released but still referenced by a callback that never runs: freed,
     * and reported, at close. */
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -EPIPE));
    CHECK_OK(cio_future_add_done_callback(f, never_done, NULL));
    cio_future_unref(f);
    CHECK_EQ(handler_calls, 1);
    CHECK_OK(cio_loop_close(loop)); /* reported at close */
    CHECK_EQ(handler_calls, 2);
    cio_loop_free(loop);
}

TEST(debug_flag) {
    cio_loop *loop = test_loop();
    CHECK_EQ(cio_loop_get_debug(loop), 0);
    CHECK_OK(cio_loop_set_debug(loop, 1));
    CHECK_EQ(cio_loop_get_debug(loop), 1);
    cio_loop_free(loop);
}


#include <unistd.h>

static void slow_callback(cio_loop *loop, void *arg) {
    (void)arg;
    usleep(30 * 1000);
    CHECK_OK(cio_loop_stop(loop));
}

TEST(debug_mode_reports_slow_callbacks) {
    cio_loop_options opts = {.debug = 1, .slow_callback_duration = 0.01};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    int fds[2];
    CHECK_OK(pipe(fds));
    fflush(stderr);
    int saved = dup(2);
    dup2(fds[1], 2);
    CHECK_OK(cio_call_soon(loop, slow_callback, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char buf[512] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    CHECK_INT(n, >, 0);
    if (!strstr(buf, "took")) FAIL("no slow-callback report: %s", buf);
    cio_loop_free(loop);
}

/* ---- refusals found by a hostile test program (issue 7) ------------------ */

static void *wait_forever(void *arg) {
    CHECK_ERR(cio_await(arg, NULL), -ECANCELED); /* never returns: closed first */
    return NULL;
}

typedef struct nested_close {
    int reports;
    int close_rc, free_rc;
} nested_close;

static void close_again_handler(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    nested_close *n = arg;
    CHECK_STR(ctx->message, "Task was destroyed but it is pending!");
    n->reports++;
    n->close_rc = cio_loop_close(loop);
    n->free_rc = cio_loop_free(loop);
}

TEST(close_from_the_exception_handler_during_close_is_refused) {
    cio_loop *loop = test_loop();
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, wait_forever, f, NULL));
    CHECK_OK(cio_loop_stop(loop));
    CHECK_OK(cio_run_forever(loop)); /* one iteration: the three tasks wait on f */
    nested_close n = {0};
    CHECK_OK(cio_loop_set_exception_handler(loop, close_again_handler, &n));
    CHECK_OK(cio_loop_close(loop));
    /* Each pending task is reported, and each nested close or free is
     * refused instead of freeing what the outer close still walks. */
    CHECK_EQ(n.reports, 3);
    CHECK_ERR(n.close_rc, -EBUSY);
    CHECK_ERR(n.free_rc, -EBUSY);
    CHECK(cio_loop_is_closed(loop));
    CHECK_OK(cio_loop_free(loop));
    /* The future the test still holds outlived the loop: drop it. */
    cio_future_unref(f);
}

static int free_inside_rc;

static void free_own_loop(cio_loop *loop, void *arg) {
    (void)arg;
    free_inside_rc = cio_loop_free(loop);
    CHECK_OK(cio_loop_stop(loop));
}

TEST(loop_free_inside_its_running_loop_is_refused) {
    cio_loop *loop = test_loop();
    free_inside_rc = 0;
    CHECK_OK(cio_call_soon(loop, free_own_loop, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_ERR(free_inside_rc, -CIO_ELOOPRUNNING);
    /* The loop was left intact: it still runs callbacks. */
    rec.len = 0;
    rec.log[0] = '\0';
    CHECK_OK(cio_call_soon(loop, append_a, NULL, NULL));
    CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_STR(rec.log, "a");
    CHECK_OK(cio_loop_free(loop));
    CHECK_OK(cio_loop_free(NULL));
}

TEST(strerror_of_int_min) {
    /* -INT_MIN does not exist: the code must not be negated. */
    CHECK_STR(cio_strerror(INT_MIN), "Unknown error");
    CHECK_STR(cio_strerror(-CIO_EFORKED), "Event loop belongs to the parent process (used after fork)");
    CHECK(strlen(cio_strerror(INT_MIN + 1)) > 0);
    CHECK(strlen(cio_strerror(INT_MAX)) > 0);
}

/* ---- fork ------------------------------------------------------------------ */

static void *child_main(void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(0.001));
    return IPTR(7);
}

static void nothing(cio_loop *loop, void *arg) { (void)loop; (void)arg; }

typedef struct fork_ctx {
    cio_loop *parent_loop;
    cio_future *parent_future;
    cio_event *event;
} fork_ctx;

/* What the child of a fork made inside a running task checks; any failed
 * CHECK aborts the child, which the parent sees. */
static void in_child(fork_ctx *fc) {
    CHECK(cio_running_loop() == NULL);
    CHECK(cio_current_task() == NULL);
    cio_loop *p = fc->parent_loop;
    CHECK_ERR(cio_spawn(p, return_seven, NULL, NULL), -CIO_EFORKED);
    CHECK_ERR(cio_call_soon(p, nothing, NULL, NULL), -CIO_EFORKED);
    CHECK_ERR(cio_run_forever(p), -CIO_EFORKED);
    CHECK_ERR(cio_run_until_complete(p, fc->parent_future, NULL), -CIO_EFORKED);
    CHECK_ERR(cio_loop_stop(p), -CIO_EFORKED);
    CHECK_ERR(cio_loop_close(p), -CIO_EFORKED);
    CHECK_ERR(cio_loop_free(p), -CIO_EFORKED);
    CHECK_ERR(cio_future_set_result(fc->parent_future, NULL), -CIO_EFORKED);
    CHECK_ERR(cio_future_cancel(fc->parent_future, NULL), -CIO_EFORKED);
    CHECK_ERR(cio_event_set(fc->event), -CIO_EFORKED);
    /* Suspending calls see no current task. */
    CHECK_ERR(cio_sleep(0), -EPERM);
    /* The child runs a loop of its own. */
    void *r = NULL;
    CHECK_OK(cio_run(child_main, NULL, &r));
    CHECK_EQ(PTRI(r), 7);
}

static void *fork_in_task(void *arg) {
    fork_ctx *fc = arg;
    CHECK_OK(cio_event_wait(fc->event)); /* binds the event to this loop */
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        in_child(fc);
        _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    /* The parent goes on as before. */
    CHECK(cio_running_loop() == fc->parent_loop);
    CHECK_OK(cio_sleep(0.001));
    CHECK_OK(cio_future_set_result(fc->parent_future, IPTR(5)));
    return IPTR(3);
}

static void set_event(cio_loop *loop, void *arg) { (void)loop; CHECK_OK(cio_event_set(arg)); }

TEST(fork_child_starts_without_a_loop_and_refuses_the_parents) {
    cio_loop *loop = test_loop();
    fork_ctx fc = {.parent_loop = loop};
    CHECK_OK(cio_future_new(loop, &fc.parent_future));
    CHECK_OK(cio_event_new(&fc.event));
    CHECK_OK(cio_call_soon(loop, set_event, fc.event, NULL));
    void *r = NULL;
    CHECK_OK(test_run(loop, fork_in_task, &fc, &r));
    CHECK_EQ(PTRI(r), 3);
    CHECK_OK(cio_future_result(fc.parent_future, &r));
    CHECK_EQ(PTRI(r), 5);
    cio_future_unref(fc.parent_future);
    cio_event_free(fc.event);
    CHECK_OK(cio_loop_free(loop));
}

static int fork_sv[2];
static ssize_t fork_reader_got;

static void *fork_reader(void *arg) {
    (void)arg;
    char c;
    fork_reader_got = cio_sock_recv_until(fork_sv[0], &c, 1, cio_loop_time(cio_running_loop()) + 5.0);
    return NULL;
}

static void *fork_and_close_in_the_child(void *arg) {
    (void)arg;
    cio_task *r;
    CHECK_OK(cio_spawn(cio_running_loop(), fork_reader, NULL, &r));
    CHECK_OK(cio_sleep(0.01)); /* the reader waits now */
    pid_t pid = fork();
    CHECK_INT(pid, >=, 0);
    if (pid == 0) {
        /* The child drops its copy of the socket the cio way. */
        _exit(cio_close(fork_sv[0]) == 0 ? 0 : 1);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(write(fork_sv[1], "x", 1), 1);
    CHECK_OK(cio_await(r, NULL));
    cio_future_unref(r);
    return NULL;
}

TEST(cio_close_in_a_forked_child_leaves_the_parents_waits_alone) {
    /* The child shares the parent's epoll instance: its cio_close must not
     * remove the parent's registration of the (shared) open file. */
    cio_loop *loop = test_loop();
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fork_sv));
    CHECK_OK(test_run(loop, fork_and_close_in_the_child, NULL, NULL));
    CHECK_EQ(fork_reader_got, 1);
    close(fork_sv[0]);
    close(fork_sv[1]);
    cio_loop_free(loop);
}
