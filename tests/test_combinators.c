/*
 * Combinators: sleep, gather, wait and wait_for, checked against Python
 * 3.13's asyncio (behaviour observed on CPython 3.13 where the documentation
 * is silent), with cio's documented rules where C differs.
 *
 * Timings are loose: the machine may be a noisy VM, so every check is
 * "at least the expected time" and "less than the expected time plus a
 * generous slack", with durations chosen so that the wrong behaviour
 * (summing instead of overlapping, waiting for a 10 s sleep) lands far
 * outside the slack.
 */
#include "test.h"


#define SLACK 0.5 /* seconds a noisy machine may add to any wait */

static double now(void) {
    return cio_loop_time(cio_running_loop());
}

static void run_once(cio_loop *loop) {
    CHECK_OK(cio_loop_stop(loop));
    CHECK_OK(cio_run_forever(loop));
}

static char clog[512];

static void log_str(const char *s) {
    size_t len = strlen(clog), n = strlen(s);
    if (len + n + 1 >= sizeof clog) FAIL("log overflow");
    memcpy(clog + len, s, n + 1);
}

static void reset_log(void) {
    clog[0] = '\0';
}

static void check_nothing_left(cio_loop *loop) {
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 0);
    CHECK_EQ(loop_stats(loop).live_tasks, 0);
    CHECK_EQ(loop_stats(loop).timers, 0);
    CHECK(loop_stats(loop).futures == 0);
}

static int reports;

static void counting_handler(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)arg;
    fprintf(stderr, "report: %s (%s)\n", ctx->message, cio_strerror(ctx->error));
    reports++;
}

static cio_loop *counting_loop(void) {
    cio_loop *loop = test_loop();
    reports = 0;
    CHECK_OK(cio_loop_set_exception_handler(loop, counting_handler, NULL));
    return loop;
}

/* A child task described by a small spec: sleep `delay`, then return
 * `value` or raise `error`. A cancellation ends it cancelled, after an
 * optional cleanup that itself sleeps `cleanup` seconds. */
typedef struct spec {
    double delay;
    intptr_t value;
    int error;
    double cleanup;
    int cleaned;   /* set once the cleanup ran to its end */
    int swallow;   /* on cancellation: uncancel and return `value` */
    int cleanup_error; /* on cancellation: end with this error instead */
} spec;

static void *child(void *arg) {
    spec *s = arg;
    int rc = cio_sleep(s->delay);
    if (rc == -ECANCELED) {
        if (s->cleanup > 0) CHECK_OK(cio_sleep(s->cleanup));
        s->cleaned = 1;
        if (s->swallow) {
            CHECK_EQ(cio_task_uncancel(cio_current_task()), 0);
            return IPTR(s->value);
        }
        if (s->cleanup_error) return cio_raise(s->cleanup_error);
        return cio_raise(rc);
    }
    CHECK_OK(rc);
    if (s->error) return cio_raise(s->error);
    return IPTR(s->value);
}

static cio_task *spawn_child(spec *s) {
    cio_task *t;
    CHECK_OK(cio_spawn(cio_running_loop(), child, s, &t));
    return t;
}

/* ==== sleep ================================================================ */

static void *abab_task(void *arg) {
    for (int i = 0; i < 4; i++) {
        log_str(arg);
        CHECK_OK(cio_sleep(0));
    }
    return NULL;
}

TEST(sleep_zero_interleaves_tasks) {
    cio_loop *loop = test_loop();
    reset_log();
    cio_task *a, *b;
    CHECK_OK(cio_spawn(loop, abab_task, "A", &a));
    CHECK_OK(cio_spawn(loop, abab_task, "B", &b));
    CHECK_OK(cio_run_until_complete(loop, b, NULL));
    CHECK_STR(clog, "ABABABAB");
    CHECK(cio_future_done(a));
    cio_future_unref(a);
    cio_future_unref(b);
    cio_loop_free(loop);
}

static long iterations;
static int ticking;

static void tick(cio_loop *loop, void *arg) {
    (void)arg;
    iterations++;
    if (ticking) CHECK_OK(cio_call_soon(loop, tick, NULL, NULL));
}

static void *count_iterations_per_yield(void *arg) {
    int how = PTRI(arg);
    for (int i = 0; i < 5; i++) {
        long before = iterations;
        if (how == 0)
            CHECK_OK(cio_sleep(0));
        else if (how == 1)
            CHECK_OK(cio_sleep(-3.0)); /* asyncio: a negative delay is 0 */
        else
            CHECK_OK(cio_sleep_until(now() - 1.0)); /* a time in the past */
        /* One iteration passed: the ticker ran exactly once more. */
        CHECK_EQ(iterations - before, 1);
    }
    ticking = 0;
    return NULL;
}

TEST(sleep_zero_yields_exactly_one_iteration) {
    for (int how = 0; how < 3; how++) {
        cio_loop *loop = test_loop();
        iterations = 0;
        ticking = 1;
        CHECK_OK(cio_call_soon(loop, tick, NULL, NULL));
        cio_task *t;
        CHECK_OK(cio_spawn(loop, count_iterations_per_yield, IPTR(how), &t));
        CHECK_OK(cio_run_until_complete(loop, t, NULL));
        cio_future_unref(t);
        cio_loop_free(loop);
    }
}

static void *timed_sleep(void *arg) {
    double d = *(double *)arg;
    double t0 = now();
    CHECK_OK(cio_sleep(d));
    double took = now() - t0;
    CHECK(took >= d);
    CHECK(took < d + SLACK);
    /* sleep_until: wakes at or after the absolute time. */
    double when = now() + d;
    CHECK_OK(cio_sleep_until(when));
    CHECK(now() >= when);
    CHECK(now() < when + SLACK);
    return NULL;
}

TEST(sleep_waits_at_least_the_delay) {
    cio_loop *loop = test_loop();
    double d = 0.05;
    CHECK_OK(test_run(loop, timed_sleep, &d, NULL));
    d = 0.001;
    CHECK_OK(test_run(loop, timed_sleep, &d, NULL));
    CHECK_EQ(loop_stats(loop).timers, 0);
    cio_loop_free(loop);
}

static void *log_after_sleep(void *arg) {
    spec *s = arg;
    CHECK_OK(cio_sleep(s->delay));
    char name[2] = {(char)s->value, 0};
    log_str(name);
    return NULL;
}

TEST(sleepers_wake_in_deadline_order) {
    cio_loop *loop = test_loop();
    reset_log();
    spec s[4] = {{.delay = 0.06, .value = 'a'}, {.delay = 0.02, .value = 'b'},
                 {.delay = 0.04, .value = 'c'}, {.delay = 0.0, .value = 'd'}};
    cio_task *t[4];
    for (int i = 0; i < 4; i++) CHECK_OK(cio_spawn(loop, log_after_sleep, &s[i], &t[i]));
    CHECK_OK(cio_run_until_complete(loop, t[0], NULL));
    CHECK_STR(clog, "dbca");
    for (int i = 0; i < 4; i++) cio_future_unref(t[i]);
    cio_loop_free(loop);
}

static void *bad_sleeps(void *arg) {
    (void)arg;
    CHECK_ERR(cio_sleep(NAN), -EINVAL);
    CHECK_ERR(cio_sleep_until(NAN), -EINVAL);
    return NULL;
}

TEST(sleep_nan_is_einval) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, bad_sleeps, NULL, NULL));
    cio_loop_free(loop);
}

static double sleep_cancel_seen_at;

static void *sleep_to_be_cancelled(void *arg) {
    double d = *(double *)arg;
    int rc = cio_sleep(d);
    sleep_cancel_seen_at = now();
    CHECK_ERR(rc, -ECANCELED);
    return cio_raise(rc);
}

static void cancel_cb(cio_loop *loop, void *arg) {
    (void)loop;
    CHECK_EQ(cio_task_cancel(arg, NULL), 1);
}

TEST(sleep_is_cancellable) {
    cio_loop *loop = test_loop();
    static double delays[] = {10.0, CIO_NO_TIMEOUT};
    for (int i = 0; i < 2; i++) {
        cio_task *t;
        CHECK_OK(cio_spawn(loop, sleep_to_be_cancelled, &delays[i], &t));
        double armed_at = cio_loop_time(loop);
        CHECK_OK(cio_call_later(loop, 0.02, cancel_cb, t, NULL));
        CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
        CHECK(cio_future_cancelled(t));
        CHECK(sleep_cancel_seen_at - armed_at >= 0.019);
        CHECK(sleep_cancel_seen_at - armed_at < 0.02 + SLACK);
        cio_future_unref(t);
    }
    check_nothing_left(loop);
    cio_loop_free(loop);
}

/* ==== gather ================================================================ */

static cio_future *gather_of(cio_task **c, size_t n, unsigned flags) {
    cio_future *g;
    CHECK_OK(cio_gather(cio_running_loop(), c, n, flags, &g));
    return g;
}

static void release_all(cio_task **c, size_t n) {
    for (size_t i = 0; i < n; i++) cio_future_unref(c[i]);
}

static void *gather_in_order(void *arg) {
    (void)arg;
    spec s[3] = {{.delay = 0.40, .value = 1}, {.delay = 0.10, .value = 2},
                 {.delay = 0.30, .value = 3}};
    cio_task *c[3];
    for (int i = 0; i < 3; i++) c[i] = spawn_child(&s[i]);
    double t0 = now();
    cio_future *g = gather_of(c, 3, 0);
    CHECK(!cio_future_done(g));
    void *r = NULL;
    CHECK_OK(cio_await(g, &r));
    double took = now() - t0;
    /* Concurrent: the longest, not the sum (0.8 s). */
    CHECK(took >= 0.40);
    CHECK(took < 0.40 + 0.35);
    size_t n = 0;
    const cio_outcome *o = cio_gather_outcomes(g, &n);
    CHECK(o != NULL);
    CHECK(r == (void *)o); /* the result is the outcome array */
    CHECK_EQ(n, 3);
    /* Argument order, not completion order (2, 3, 1). */
    for (int i = 0; i < 3; i++) {
        CHECK_OK(o[i].error);
        CHECK_EQ(PTRI(o[i].value), i + 1);
    }
    cio_future_unref(g);
    release_all(c, 3);
    return NULL;
}

TEST(gather_results_in_argument_order_and_overlapping) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, gather_in_order, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static void *gather_return_exceptions(void *arg) {
    (void)arg;
    spec s[4] = {{.delay = 0.01, .value = 1}, {.delay = 0.02, .error = -EIO},
                 {.delay = 10.0}, {.delay = 0.03, .value = 4}};
    cio_task *c[4];
    for (int i = 0; i < 4; i++) c[i] = spawn_child(&s[i]);
    cio_future *g = gather_of(c, 4, CIO_RETURN_EXCEPTIONS);
    /* The third child is cancelled on its own. */
    CHECK_OK(cio_sleep(0));
    CHECK_EQ(cio_task_cancel(c[2], NULL), 1);
    void *r = NULL;
    CHECK_OK(cio_await(g, &r));
    const cio_outcome *o = r;
    CHECK_OK(o[0].error);
    CHECK_EQ(PTRI(o[0].value), 1);
    CHECK_ERR(o[1].error, -EIO);
    CHECK_ERR(o[2].error, -ECANCELED);
    CHECK_OK(o[3].error);
    CHECK_EQ(PTRI(o[3].value), 4);
    CHECK(!cio_future_cancelled(g));
    cio_future_unref(g);
    release_all(c, 4);
    return NULL;
}

TEST(gather_return_exceptions_collects_every_outcome) {
    cio_loop *loop = counting_loop();
    CHECK_OK(test_run(loop, gather_return_exceptions, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
    CHECK_EQ(reports, 0); /* gather retrieved the child's error */
}

static void *gather_first_error(void *arg) {
    (void)arg;
    spec s[3] = {{.delay = 0.30, .value = 1}, {.delay = 0.02, .error = -EIO},
                 {.delay = 0.05, .error = -EPIPE}};
    cio_task *c[3];
    for (int i = 0; i < 3; i++) c[i] = spawn_child(&s[i]);
    cio_future *g = gather_of(c, 3, 0);
    double t0 = now();
    CHECK_ERR(cio_await(g, NULL), -EIO);
    double took = now() - t0;
    CHECK(took >= 0.02);
    CHECK(took < 0.25); /* at once, not after the 0.3 s sibling */
    CHECK(cio_future_done(g) && !cio_future_cancelled(g));
    /* The siblings were not cancelled and go on to their own ends. */
    CHECK(!cio_future_done(c[0]));
    CHECK(!cio_future_done(c[2]));
    size_t n;
    const cio_outcome *o = cio_gather_outcomes(g, &n);
    CHECK_ERR(o[0].error, -CIO_EINVALSTATE); /* not done yet */
    void *r = NULL;
    CHECK_OK(cio_await(c[0], &r));
    CHECK_EQ(PTRI(r), 1);
    CHECK(!cio_future_cancelled(c[0]));
    CHECK_ERR(cio_await(c[2], NULL), -EPIPE);
    CHECK(s[0].cleaned == 0 && s[2].cleaned == 0);
    /* The outcomes keep filling in after the gather completed. */
    CHECK_OK(o[0].error);
    CHECK_EQ(PTRI(o[0].value), 1);
    CHECK_ERR(o[2].error, -EPIPE);
    CHECK_ERR(cio_future_error(g), -EIO); /* the first error stays */
    cio_future_unref(g);
    release_all(c, 3);
    return NULL;
}

TEST(gather_reports_the_first_error_at_once_and_leaves_siblings_running) {
    cio_loop *loop = counting_loop();
    CHECK_OK(test_run(loop, gather_first_error, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
    CHECK_EQ(reports, 0);
}

static void *gather_cancelled(void *arg) {
    unsigned flags = *(unsigned *)arg;
    spec s[3] = {{.delay = 10.0}, {.delay = 10.0}, {.delay = 0.0, .value = 3}};
    cio_task *c[3];
    for (int i = 0; i < 3; i++) c[i] = spawn_child(&s[i]);
    cio_future *g = gather_of(c, 3, flags);
    CHECK_OK(cio_sleep(0.01)); /* the third child is done by now */
    CHECK(cio_future_done(c[2]));
    CHECK_EQ(cio_future_cancel(g, "enough"), 1);
    CHECK(!cio_future_done(g)); /* it ends once a child has */
    CHECK_EQ(cio_future_cancel(g, "again"), 1); /* still pending: taken */
    CHECK_ERR(cio_await(g, NULL), -ECANCELED);
    CHECK(cio_future_cancelled(g));
    for (int i = 0; i < 2; i++) {
        CHECK(cio_future_cancelled(c[i]));
        CHECK(s[i].cleaned);
        /* The message reaches the children, as asyncio's. */
        CHECK_STR(cio_future_cancel_message(c[i]), "again");
    }
    void *r;
    CHECK_OK(cio_future_result(c[2], &r));
    CHECK_EQ(PTRI(r), 3);
    CHECK_EQ(cio_future_cancel(g, NULL), 0); /* done */
    cio_future_unref(g);
    release_all(c, 3);
    return NULL;
}

TEST(cancelling_the_gather_cancels_every_child) {
    static unsigned flags[] = {0, CIO_RETURN_EXCEPTIONS};
    for (int i = 0; i < 2; i++) {
        cio_loop *loop = counting_loop();
        CHECK_OK(test_run(loop, gather_cancelled, &flags[i], NULL));
        check_nothing_left(loop);
        cio_loop_free(loop);
        CHECK_EQ(reports, 0);
    }
}

static void *gather_cancel_timing(void *arg) {
    unsigned flags = *(unsigned *)arg;
    /* The first child ends at once when cancelled; the second needs 0.4 s
     * of cleanup. */
    spec s[2] = {{.delay = 10.0}, {.delay = 10.0, .cleanup = 0.4}};
    cio_task *c[2] = {spawn_child(&s[0]), spawn_child(&s[1])};
    cio_future *g = gather_of(c, 2, flags);
    CHECK_OK(cio_sleep(0.01));
    double t0 = now();
    CHECK_EQ(cio_future_cancel(g, NULL), 1);
    CHECK_ERR(cio_await(g, NULL), -ECANCELED);
    double took = now() - t0;
    CHECK(cio_future_cancelled(g));
    if (flags & CIO_RETURN_EXCEPTIONS) {
        /* Every outcome is collected: the gather waits for the cleanup. */
        CHECK(took >= 0.4);
        CHECK(s[1].cleaned);
    } else {
        /* asyncio (3.13): without return_exceptions the first child that
         * ends cancelled ends the gather; the slow one goes on alone. */
        CHECK(took < 0.3);
        CHECK(!s[1].cleaned);
        CHECK(!cio_future_done(c[1]));
        CHECK_ERR(cio_await(c[1], NULL), -ECANCELED);
        CHECK(s[1].cleaned);
    }
    cio_future_unref(g);
    release_all(c, 2);
    return NULL;
}

TEST(cancelled_gather_ends_like_asyncio) {
    static unsigned flags[] = {0, CIO_RETURN_EXCEPTIONS};
    for (int i = 0; i < 2; i++) {
        cio_loop *loop = counting_loop();
        CHECK_OK(test_run(loop, gather_cancel_timing, &flags[i], NULL));
        check_nothing_left(loop);
        cio_loop_free(loop);
        CHECK_EQ(reports, 0);
    }
}

static spec waiter_specs[2];
static cio_task *waiter_children[2];

static void *await_a_gather(void *arg) {
    (void)arg;
    for (int i = 0; i < 2; i++) {
        waiter_specs[i] = (spec){.delay = 10.0};
        waiter_children[i] = spawn_child(&waiter_specs[i]);
    }
    cio_future *g = gather_of(waiter_children, 2, 0);
    int rc = cio_await(g, NULL);
    CHECK_ERR(rc, -ECANCELED);
    CHECK(cio_future_cancelled(g));
    cio_future_unref(g);
    return cio_raise(rc);
}

TEST(cancelling_the_task_awaiting_a_gather_cancels_the_children) {
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, await_a_gather, NULL, &t));
    CHECK_OK(cio_call_later(loop, 0.01, cancel_cb, t, NULL));
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(cio_future_cancelled(t));
    /* Let any child still finishing end. */
    while (cio_all_tasks(loop, NULL, 0) > 0) run_once(loop);
    for (int i = 0; i < 2; i++) {
        CHECK(cio_future_cancelled(waiter_children[i]));
        cio_future_unref(waiter_children[i]);
    }
    cio_future_unref(t);
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static void *gather_child_cancelled_alone(void *arg) {
    (void)arg;
    spec s[2] = {{.delay = 10.0}, {.delay = 0.05, .value = 2}};
    cio_task *c[2] = {spawn_child(&s[0]), spawn_child(&s[1])};
    cio_future *g = gather_of(c, 2, 0);
    CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(cio_task_cancel(c[0], NULL), 1);
    /* The gather was not cancelled: it ends with the error -ECANCELED
     * (asyncio: CancelledError set as its exception; cancelled() False). */
    CHECK_ERR(cio_await(g, NULL), -ECANCELED);
    CHECK(cio_future_done(g));
    CHECK(!cio_future_cancelled(g));
    CHECK_ERR(cio_future_error(g), -ECANCELED);
    /* The awaiting task itself was not cancelled. */
    CHECK_EQ(cio_task_cancelling(cio_current_task()), 0);
    /* The sibling goes on. */
    CHECK(!cio_future_done(c[1]));
    void *r;
    CHECK_OK(cio_await(c[1], &r));
    CHECK_EQ(PTRI(r), 2);
    cio_future_unref(g);
    release_all(c, 2);
    return IPTR(1);
}

TEST(gather_child_cancelled_alone_is_an_error) {
    cio_loop *loop = counting_loop();
    void *r;
    CHECK_OK(test_run(loop, gather_child_cancelled_alone, NULL, &r));
    CHECK_EQ(PTRI(r), 1);
    check_nothing_left(loop);
    cio_loop_free(loop);
    CHECK_EQ(reports, 0);
}

static void *gather_nothing(void *arg) {
    (void)arg;
    cio_future *g;
    CHECK_OK(cio_gather(cio_running_loop(), NULL, 0, 0, &g));
    /* asyncio: gather() of nothing is a done future whose result is []. */
    CHECK(cio_future_done(g));
    void *r = IPTR(1);
    CHECK_OK(cio_await(g, &r));
    size_t n = 9;
    CHECK(cio_gather_outcomes(g, &n) != NULL);
    CHECK_EQ(n, 0);
    cio_future_unref(g);
    return NULL;
}

TEST(gather_of_nothing) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, gather_nothing, NULL, NULL));
    /* Also outside a task, and with return_exceptions. */
    cio_future *g;
    CHECK_OK(cio_gather(loop, NULL, 0, CIO_RETURN_EXCEPTIONS, &g));
    CHECK_OK(cio_run_until_complete(loop, g, NULL));
    cio_future_unref(g);
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static void *gather_same_child(void *arg) {
    (void)arg;
    spec s = {.delay = 0.01, .value = 7};
    spec s2 = {.delay = 0.02, .value = 8};
    cio_task *a = spawn_child(&s), *b = spawn_child(&s2);
    cio_task *c[4] = {a, b, a, a};
    cio_future *g = gather_of(c, 4, 0);
    void *r;
    CHECK_OK(cio_await(g, &r));
    const cio_outcome *o = r;
    CHECK_EQ(PTRI(o[0].value), 7);
    CHECK_EQ(PTRI(o[1].value), 8);
    CHECK_EQ(PTRI(o[2].value), 7);
    CHECK_EQ(PTRI(o[3].value), 7);
    for (int i = 0; i < 4; i++) CHECK_OK(o[i].error);
    cio_future_unref(g);
    cio_future_unref(a);
    cio_future_unref(b);
    return NULL;
}

TEST(gather_same_child_twice) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, gather_same_child, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
}

TEST(gather_of_done_futures_and_early_release) {
    cio_loop *loop = counting_loop();
    cio_future *f[3];
    for (int i = 0; i < 3; i++) CHECK_OK(cio_future_new(loop, &f[i]));
    CHECK_OK(cio_future_set_result(f[0], IPTR(10)));
    CHECK_OK(cio_future_set_error(f[1], -EIO));
    cio_future *g;
    CHECK_OK(cio_gather(loop, f, 3, CIO_RETURN_EXCEPTIONS, &g));
    CHECK(!cio_future_done(g)); /* completion goes through the loop */
    CHECK_OK(cio_future_set_result(f[2], IPTR(12)));
    /* Cancelling a gather whose children are all done takes nothing. */
    CHECK_EQ(cio_future_cancel(g, NULL), 0);
    void *r;
    CHECK_OK(cio_run_until_complete(loop, g, &r));
    const cio_outcome *o = r;
    CHECK_EQ(PTRI(o[0].value), 10);
    CHECK_ERR(o[1].error, -EIO);
    CHECK_EQ(PTRI(o[2].value), 12);
    cio_future_unref(g);
    /* A gather released before its children are done frees itself once
     * they are, and keeps its children alive meanwhile. */
    cio_future *p;
    CHECK_OK(cio_future_new(loop, &p));
    CHECK_OK(cio_gather(loop, &p, 1, 0, &g));
    cio_future_unref(g);
    for (int i = 0; i < 3; i++) cio_future_unref(f[i]);
    CHECK_OK(cio_future_set_result(p, NULL));
    cio_future_unref(p);
    run_once(loop);
    check_nothing_left(loop);
    cio_loop_free(loop);
    CHECK_EQ(reports, 0);
}

TEST(gather_bad_arguments) {
    cio_loop *loop = test_loop(), *other = test_loop();
    cio_future *f, *g = (cio_future *)1, *foreign;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_new(other, &foreign));
    CHECK_ERR(cio_gather(loop, &f, 1, 0, NULL), -EINVAL);
    CHECK_ERR(cio_gather(NULL, &f, 1, 0, &g), -EINVAL);
    CHECK(g == NULL);
    CHECK_ERR(cio_gather(loop, NULL, 1, 0, &g), -EINVAL);
    CHECK_ERR(cio_gather(loop, &f, 1, 0x80, &g), -EINVAL);
    cio_future *with_null[2] = {f, NULL};
    CHECK_ERR(cio_gather(loop, with_null, 2, 0, &g), -EINVAL);
    cio_future *mixed[2] = {f, foreign};
    CHECK_ERR(cio_gather(loop, mixed, 2, 0, &g), -CIO_EWRONGLOOP);
    CHECK(g == NULL);
    /* Refused calls took no reference: f is freed by its one release. */
    cio_future_unref(f);
    CHECK(loop_stats(loop).futures == 0);
    cio_future_unref(foreign);
    cio_loop_free(loop);
    cio_loop_free(other);
}

/* ==== wait ==================================================================== */

static void cleanup_children(cio_task **c, size_t n) {
    for (size_t i = 0; i < n; i++) cio_task_cancel(c[i], NULL);
    for (size_t i = 0; i < n; i++) {
        int rc = cio_await(c[i], NULL);
        (void)rc;
    }
    release_all(c, n);
}

static void *wait_first_completed(void *arg) {
    (void)arg;
    spec s[3] = {{.delay = 0.3}, {.delay = 0.02, .value = 2}, {.delay = 0.4}};
    cio_task *c[3];
    for (int i = 0; i < 3; i++) c[i] = spawn_child(&s[i]);
    cio_future *done[3], *pending[3];
    size_t nd = 9, np = 9;
    double t0 = now();
    CHECK_OK(cio_wait(c, 3, CIO_FIRST_COMPLETED, CIO_NO_TIMEOUT, done, &nd, pending, &np));
    double took = now() - t0;
    CHECK(took >= 0.02);
    CHECK(took < 0.25);
    CHECK_EQ(nd, 1);
    CHECK(done[0] == c[1]);
    CHECK_EQ(np, 2);
    CHECK(pending[0] == c[0] && pending[1] == c[2]); /* argument order */
    CHECK(!cio_future_done(c[0]) && !cio_future_done(c[2]));
    /* The output arrays are optional. */
    nd = np = 9;
    CHECK_OK(cio_wait(c, 3, CIO_FIRST_COMPLETED, CIO_NO_TIMEOUT, NULL, &nd, NULL, &np));
    CHECK_EQ(nd, 1);
    CHECK_EQ(np, 2);
    CHECK_OK(cio_wait(c, 3, CIO_FIRST_COMPLETED, CIO_NO_TIMEOUT, NULL, NULL, NULL, NULL));
    cleanup_children(c, 3);
    return NULL;
}

TEST(wait_first_completed) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, wait_first_completed, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static void *wait_first_exception(void *arg) {
    (void)arg;
    spec s[3] = {{.delay = 0.02, .value = 1}, {.delay = 0.05, .error = -EIO}, {.delay = 0.4}};
    cio_task *c[3];
    for (int i = 0; i < 3; i++) c[i] = spawn_child(&s[i]);
    cio_future *done[3], *pending[3];
    size_t nd, np;
    double t0 = now();
    CHECK_OK(cio_wait(c, 3, CIO_FIRST_EXCEPTION, CIO_NO_TIMEOUT, done, &nd, pending, &np));
    double took = now() - t0;
    /* Not woken by the first (successful) completion, but by the error. */
    CHECK(took >= 0.05);
    CHECK(took < 0.3);
    CHECK_EQ(nd, 2);
    CHECK(done[0] == c[0] && done[1] == c[1]);
    CHECK_EQ(np, 1);
    CHECK(pending[0] == c[2]);
    CHECK(!cio_future_cancelled(c[2]));
    CHECK_ERR(cio_future_error(c[1]), -EIO);
    cleanup_children(c, 3);
    return NULL;
}

TEST(wait_first_exception) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, wait_first_exception, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static void *wait_first_exception_ignores_cancelled(void *arg) {
    (void)arg;
    /* asyncio: a cancelled future is not an exception for FIRST_EXCEPTION;
     * without one, it waits for everything. */
    spec s[2] = {{.delay = 10.0}, {.delay = 0.1, .value = 2}};
    double t0 = now(); /* the second child ends 0.1 s after it starts */
    cio_task *c[2] = {spawn_child(&s[0]), spawn_child(&s[1])};
    CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(cio_task_cancel(c[0], NULL), 1);
    size_t nd, np;
    CHECK_OK(cio_wait(c, 2, CIO_FIRST_EXCEPTION, CIO_NO_TIMEOUT, NULL, &nd, NULL, &np));
    CHECK(now() - t0 >= 0.1);
    CHECK_EQ(nd, 2);
    CHECK_EQ(np, 0);
    CHECK(cio_future_cancelled(c[0]));
    release_all(c, 2);
    return NULL;
}

TEST(wait_first_exception_ignores_cancellations) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, wait_first_exception_ignores_cancelled, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static void *wait_all(void *arg) {
    size_t n = (size_t)PTRI(arg);
    spec s[20];
    cio_task *c[20];
    for (size_t i = 0; i < n; i++) {
        s[i] = (spec){.delay = 0.01 * (double)(i % 4), .value = (intptr_t)i,
                      .error = i == 1 ? -EIO : 0};
        c[i] = spawn_child(&s[i]);
    }
    cio_future *done[20], *pending[20];
    size_t nd, np;
    double t0 = now();
    CHECK_OK(cio_wait(c, n, CIO_ALL_COMPLETED, CIO_NO_TIMEOUT, done, &nd, pending, &np));
    double longest = 0.01 * (double)(n < 4 ? n - 1 : 3);
    CHECK(now() - t0 >= longest);
    CHECK_EQ(nd, n);
    CHECK_EQ(np, 0);
    for (size_t i = 0; i < n; i++) {
        CHECK(done[i] == c[i]);
        CHECK(cio_future_done(c[i]));
    }
    /* wait never reads the outcomes: the error is still the caller's. */
    CHECK_ERR(cio_future_error(c[1]), -EIO);
    release_all(c, n);
    return NULL;
}

TEST(wait_all_completed) {
    cio_loop *loop = counting_loop();
    CHECK_OK(test_run(loop, wait_all, IPTR(3), NULL));
    CHECK_OK(test_run(loop, wait_all, IPTR(20), NULL)); /* more than fit on the stack */
    check_nothing_left(loop);
    cio_loop_free(loop);
    CHECK_EQ(reports, 0);
}

static void *wait_times_out(void *arg) {
    (void)arg;
    cio_future *plain;
    CHECK_OK(cio_future_new(cio_running_loop(), &plain));
    spec s = {.delay = 10.0};
    cio_future *fs[2] = {spawn_child(&s), plain};
    cio_future *done[2], *pending[2];
    size_t nd = 9, np = 9;
    double t0 = now();
    /* A timeout is not an error and cancels nothing. */
    CHECK_OK(cio_wait(fs, 2, CIO_ALL_COMPLETED, 0.05, done, &nd, pending, &np));
    double took = now() - t0;
    CHECK(took >= 0.05);
    CHECK(took < 0.05 + SLACK);
    CHECK_EQ(nd, 0);
    CHECK_EQ(np, 2);
    CHECK(pending[0] == fs[0] && pending[1] == fs[1]);
    CHECK(!cio_future_done(fs[0]) && !cio_future_done(plain));
    CHECK_EQ(cio_task_cancelling(fs[0]), 0);
    /* The deadline form, and a zero timeout (one iteration). */
    CHECK_OK(cio_wait_until(fs, 2, CIO_FIRST_COMPLETED, now() + 0.02, NULL, &nd, NULL, &np));
    CHECK_EQ(np, 2);
    CHECK_OK(cio_wait(fs, 2, CIO_FIRST_COMPLETED, 0, NULL, &nd, NULL, &np));
    CHECK_EQ(np, 2);
    CHECK(!cio_future_done(fs[0]) && !cio_future_done(plain));
    /* No timer is left behind by the waits. */
    CHECK_EQ(cio_running_loop()->timers.count, 1); /* the child's sleep */
    cleanup_children(fs, 1);
    cio_future_unref(plain);
    return NULL;
}

TEST(wait_timeout_returns_pending_and_cancels_nothing) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, wait_times_out, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static int marker;

static void set_marker(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
    marker = 1;
}

static void *wait_on_done_futures(void *arg) {
    cio_future **fs = arg;
    marker = 0;
    CHECK_OK(cio_call_soon(cio_running_loop(), set_marker, NULL, NULL));
    size_t nd, np;
    CHECK_OK(cio_wait(fs, 2, CIO_ALL_COMPLETED, CIO_NO_TIMEOUT, NULL, &nd, NULL, &np));
    CHECK_EQ(nd, 2);
    CHECK_EQ(np, 0);
    /* asyncio's wait always yields (its callbacks go through the loop). */
    CHECK_EQ(marker, 1);
    return NULL;
}

TEST(wait_on_done_futures_returns_after_one_yield) {
    cio_loop *loop = test_loop();
    cio_future *fs[2];
    for (int i = 0; i < 2; i++) {
        CHECK_OK(cio_future_new(loop, &fs[i]));
        CHECK_OK(cio_future_set_result(fs[i], NULL));
    }
    CHECK_OK(test_run(loop, wait_on_done_futures, fs, NULL));
    for (int i = 0; i < 2; i++) cio_future_unref(fs[i]);
    check_nothing_left(loop);
    cio_loop_free(loop);
}

/* asyncio's test_wait_really_done: wait() resolves a waiter future when
 * the first child is done, and the waiter's callback wakes the task one
 * iteration later; a child that finishes in between is reported done. */
/* Cancels the task given after two iterations: c (one yield) is done at
 * the first, the wait's wake-up is queued at the second. */
static void *cancel_after_two_yields(void *arg) {
    CHECK_OK(cio_sleep(0));
    CHECK_OK(cio_sleep(0));
    CHECK_EQ(cio_task_cancel(arg, NULL), 1);
    return NULL;
}

static void *yield_once(void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(0));
    return NULL;
}

static void *yield_twice(void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(0));
    CHECK_OK(cio_sleep(0));
    return NULL;
}

static void *wait_really_done(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *a, *b;
    CHECK_OK(cio_spawn(loop, yield_once, NULL, &a));
    CHECK_OK(cio_spawn(loop, yield_twice, NULL, &b));
    cio_future *fs[2] = {b, a}, *done[2], *pending[2];
    size_t nd = 0, np = 0;
    CHECK_OK(cio_wait(fs, 2, CIO_FIRST_COMPLETED, CIO_NO_TIMEOUT, done, &nd, pending, &np));
    CHECK_EQ(nd, 2);
    CHECK_EQ(np, 0);
    /* Cancelled after the wake-up, before the task resumes: the wait ends
     * cancelled, as a task whose __wakeup is queued is thrown into. */
    cio_task *c;
    CHECK_OK(cio_spawn(loop, yield_once, NULL, &c));
    cio_future *one[1] = {c};
    cio_task *self = cio_current_task();
    cio_task *canceller;
    CHECK_OK(cio_spawn(loop, cancel_after_two_yields, self, &canceller));
    CHECK_ERR(cio_wait(one, 1, CIO_FIRST_COMPLETED, CIO_NO_TIMEOUT, NULL, &nd, NULL, &np),
              -ECANCELED);
    CHECK(cio_future_done(c));
    CHECK_EQ(cio_task_uncancel(self), 0);
    CHECK_OK(cio_await(canceller, NULL));
    cio_future_unref(a);
    cio_future_unref(b);
    cio_future_unref(c);
    cio_future_unref(canceller);
    return NULL;
}

TEST(wait_wakes_its_task_one_iteration_after_the_first_completion) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, wait_really_done, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static void *wait_bad_arguments(void *arg) {
    cio_future *foreign = arg;
    cio_future *f;
    CHECK_OK(cio_future_new(cio_running_loop(), &f));
    cio_future *fs[2] = {f, NULL};
    size_t nd = 9, np = 9;
    /* asyncio: wait() of an empty set is ValueError. */
    CHECK_ERR(cio_wait(fs, 0, CIO_ALL_COMPLETED, CIO_NO_TIMEOUT, NULL, &nd, NULL, &np), -EINVAL);
    CHECK_EQ(nd, 0);
    CHECK_EQ(np, 0);
    CHECK_ERR(cio_wait(NULL, 1, CIO_ALL_COMPLETED, 1.0, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_wait(fs, 2, CIO_ALL_COMPLETED, 1.0, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_wait(fs, 1, (cio_wait_mode)7, 1.0, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_wait(fs, 1, CIO_ALL_COMPLETED, NAN, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_wait_until(fs, 1, CIO_ALL_COMPLETED, NAN, NULL, NULL, NULL, NULL), -EINVAL);
    cio_future *mixed[2] = {f, foreign};
    CHECK_ERR(cio_wait(mixed, 2, CIO_ALL_COMPLETED, 1.0, NULL, NULL, NULL, NULL),
              -CIO_EWRONGLOOP);
    CHECK(!cio_future_done(f));
    cio_future_unref(f);
    return NULL;
}

TEST(wait_bad_arguments) {
    cio_loop *loop = test_loop(), *other = test_loop();
    cio_future *foreign;
    CHECK_OK(cio_future_new(other, &foreign));
    CHECK_OK(test_run(loop, wait_bad_arguments, foreign, NULL));
    cio_future_unref(foreign);
    check_nothing_left(loop);
    cio_loop_free(loop);
    cio_loop_free(other);
}

static cio_future *waited[2];
static spec waited_spec;

static void *waiter_to_cancel(void *arg) {
    (void)arg;
    size_t nd = 9, np = 9;
    int rc = cio_wait(waited, 2, CIO_ALL_COMPLETED, 10.0, NULL, &nd, NULL, &np);
    CHECK_ERR(rc, -ECANCELED);
    CHECK_EQ(nd, 0);
    CHECK_EQ(np, 2);
    return cio_raise(rc);
}

TEST(cancelling_the_waiter_leaves_the_futures_alone) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_future_new(loop, &waited[0]));
    waited_spec = (spec){.delay = 10.0};
    CHECK_OK(cio_spawn(loop, child, &waited_spec, &waited[1]));
    cio_task *w;
    CHECK_OK(cio_spawn(loop, waiter_to_cancel, NULL, &w));
    CHECK_OK(cio_call_later(loop, 0.01, cancel_cb, w, NULL));
    CHECK_ERR(cio_run_until_complete(loop, w, NULL), -ECANCELED);
    CHECK(cio_future_cancelled(w));
    /* asyncio.wait never cancels what it waits on. */
    CHECK(!cio_future_done(waited[0]));
    CHECK(!cio_future_done(waited[1]));
    CHECK_EQ(cio_task_cancelling(waited[1]), 0);
    /* The futures complete later without touching the gone waiter. */
    CHECK_OK(cio_future_set_result(waited[0], NULL));
    CHECK_EQ(cio_task_cancel(waited[1], NULL), 1);
    CHECK_ERR(cio_run_until_complete(loop, waited[1], NULL), -ECANCELED);
    cio_future_unref(waited[0]);
    cio_future_unref(waited[1]);
    cio_future_unref(w);
    check_nothing_left(loop);
    cio_loop_free(loop);
}

/* ==== wait_for ================================================================= */

static void *wait_for_in_time(void *arg) {
    (void)arg;
    spec s = {.delay = 0.02, .value = 5};
    cio_task *c = spawn_child(&s);
    void *r = NULL;
    double t0 = now();
    CHECK_OK(cio_wait_for(c, 5.0, &r));
    CHECK_EQ(PTRI(r), 5);
    CHECK(now() - t0 < 0.02 + SLACK);
    cio_future_unref(c);
    /* An error in time is returned as it is. */
    spec e = {.delay = 0.01, .error = -EPIPE};
    c = spawn_child(&e);
    CHECK_ERR(cio_wait_for(c, 5.0, &r), -EPIPE);
    CHECK(!cio_future_cancelled(c));
    cio_future_unref(c);
    /* No timer is left armed by either. */
    CHECK_EQ(cio_running_loop()->timers.count, 0);
    return NULL;
}

TEST(wait_for_returns_the_result_in_time) {
    cio_loop *loop = counting_loop();
    CHECK_OK(test_run(loop, wait_for_in_time, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
    CHECK_EQ(reports, 0);
}

static void *wait_for_times_out(void *arg) {
    (void)arg;
    spec s = {.delay = 10.0, .cleanup = 0.1};
    cio_task *c = spawn_child(&s);
    double t0 = now();
    CHECK_ERR(cio_wait_for(c, 0.05, NULL), -ETIMEDOUT);
    double took = now() - t0;
    /* 3.12+: the inner task is cancelled and awaited, cleanup included. */
    CHECK(s.cleaned);
    CHECK(cio_future_done(c) && cio_future_cancelled(c));
    CHECK(took >= 0.05 + 0.1);
    CHECK(took < 0.15 + SLACK);
    /* The waiting task itself is not left cancelled. */
    CHECK_EQ(cio_task_cancelling(cio_current_task()), 0);
    CHECK_OK(cio_sleep(0));
    cio_future_unref(c);
    /* A plain future is cancelled on timeout, too. */
    cio_future *f;
    CHECK_OK(cio_future_new(cio_running_loop(), &f));
    CHECK_ERR(cio_wait_for(f, 0.01, NULL), -ETIMEDOUT);
    CHECK(cio_future_cancelled(f));
    cio_future_unref(f);
    return IPTR(1);
}

TEST(wait_for_timeout_cancels_the_inner_and_waits_for_it) {
    cio_loop *loop = test_loop();
    void *r;
    CHECK_OK(test_run(loop, wait_for_times_out, NULL, &r));
    CHECK_EQ(PTRI(r), 1);
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static void *wait_for_swallowed(void *arg) {
    (void)arg;
    spec s = {.delay = 10.0, .swallow = 1, .value = 42, .cleanup = 0.01};
    cio_task *c = spawn_child(&s);
    void *r = NULL;
    /* asyncio (3.12+): an inner that swallows the cancellation and
     * returns a value makes wait_for return that value. */
    CHECK_OK(cio_wait_for(c, 0.02, &r));
    CHECK_EQ(PTRI(r), 42);
    CHECK(!cio_future_cancelled(c));
    cio_future_unref(c);
    /* The same when the inner ends with an error during its cleanup. */
    spec e = {.delay = 10.0, .cleanup_error = -EIO};
    c = spawn_child(&e);
    CHECK_ERR(cio_wait_for(c, 0.02, &r), -EIO);
    cio_future_unref(c);
    return NULL;
}

TEST(wait_for_returns_what_the_inner_made_of_the_cancellation) {
    cio_loop *loop = counting_loop();
    CHECK_OK(test_run(loop, wait_for_swallowed, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
    CHECK_EQ(reports, 0);
}

static void *wait_for_zero(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_future *f;
    void *r = NULL;
    /* A done future is returned even with no time left at all. */
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_result(f, IPTR(3)));
    CHECK_OK(cio_wait_for(f, 0, &r));
    CHECK_EQ(PTRI(r), 3);
    CHECK_OK(cio_wait_for(f, -1.0, &r));
    CHECK_OK(cio_wait_for_until(f, now() - 1.0, &r));
    CHECK_EQ(PTRI(r), 3);
    cio_future_unref(f);
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_error(f, -EIO));
    CHECK_ERR(cio_wait_for(f, 0, &r), -EIO);
    cio_future_unref(f);
    /* A pending one is cancelled, and the result is a timeout. */
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_ERR(cio_wait_for(f, 0, &r), -ETIMEDOUT);
    CHECK(cio_future_cancelled(f));
    cio_future_unref(f);
    spec s = {.delay = 10.0};
    cio_task *c = spawn_child(&s);
    CHECK_ERR(cio_wait_for(c, -1.0, &r), -ETIMEDOUT);
    CHECK(cio_future_cancelled(c));
    cio_future_unref(c);
    return NULL;
}

TEST(wait_for_zero_timeout) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, wait_for_zero, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
}

/* asyncio 3.12+ wait_for with timeout <= 0:
 *
 *     if fut.done(): return fut.result()
 *     await _cancel_and_wait(fut)
 *     try: return fut.result()
 *     except CancelledError as exc: raise TimeoutError from exc
 *
 * The cancel comes before anything else runs, so a task that has not
 * started never runs its body; one that makes a value of the cancellation
 * gives that value. */
static void *wait_for_nonpositive(void *arg) {
    (void)arg;
    void *r = NULL;
    double timeouts[] = {0.0, -1.0};
    for (int i = 0; i < 2; i++) {
        spec s = {.delay = 10.0};
        cio_task *c = spawn_child(&s);
        CHECK_ERR(cio_wait_for(c, timeouts[i], &r), -ETIMEDOUT);
        CHECK(cio_future_cancelled(c));
        CHECK_EQ(s.cleaned, 0); /* the body never ran */
        cio_future_unref(c);
    }
    /* A started task that swallows the cancellation gives its value. */
    spec s = {.delay = 10.0, .swallow = 1, .value = 42, .cleanup = 0.01};
    cio_task *c = spawn_child(&s);
    CHECK_OK(cio_sleep(0));
    CHECK_OK(cio_wait_for(c, 0, &r));
    CHECK_EQ(PTRI(r), 42);
    CHECK_EQ(s.cleaned, 1);
    cio_future_unref(c);
    CHECK_EQ(cio_task_cancelling(cio_current_task()), 0);
    return NULL;
}

TEST(wait_for_nonpositive_timeout_cancels_before_the_task_starts) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, wait_for_nonpositive, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static spec caller_inner_spec;
static cio_task *caller_inner;

static void *wait_for_caller(void *arg) {
    (void)arg;
    caller_inner_spec = (spec){.delay = 10.0, .cleanup = 0.05};
    caller_inner = spawn_child(&caller_inner_spec);
    int rc = cio_wait_for(caller_inner, 5.0, NULL);
    CHECK_ERR(rc, -ECANCELED); /* not -ETIMEDOUT: it was our cancellation */
    /* The inner was cancelled and had finished (its cleanup included). */
    CHECK(caller_inner_spec.cleaned);
    CHECK(cio_future_cancelled(caller_inner));
    return cio_raise(rc);
}

TEST(cancelling_the_caller_of_wait_for_cancels_the_inner) {
    cio_loop *loop = test_loop();
    cio_task *t;
    caller_inner = NULL;
    CHECK_OK(cio_spawn(loop, wait_for_caller, NULL, &t));
    /* Run until the inner sleeps (its timer and wait_for's are armed). */
    while (loop_stats(loop).timers < 2) run_once(loop);
    double t0 = cio_loop_time(loop);
    cancel_cb(loop, t);
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(cio_loop_time(loop) - t0 >= 0.05); /* it waited for the cleanup */
    CHECK(cio_loop_time(loop) - t0 < 5.0);   /* not for wait_for's timeout */
    CHECK(cio_future_cancelled(t));
    cio_future_unref(caller_inner);
    cio_future_unref(t);
    check_nothing_left(loop);
    cio_loop_free(loop);
}

static void *wait_for_forever(void *arg) {
    (void)arg;
    spec s = {.delay = 0.05, .value = 6};
    cio_task *c = spawn_child(&s);
    void *r = NULL;
    CHECK_OK(cio_wait_for(c, CIO_NO_TIMEOUT, &r));
    CHECK_EQ(PTRI(r), 6);
    cio_future_unref(c);
    c = spawn_child(&s);
    CHECK_OK(cio_wait_for_until(c, CIO_NO_TIMEOUT, &r));
    CHECK_EQ(PTRI(r), 6);
    cio_future_unref(c);
    /* NaN is refused, and refusing touches nothing. */
    c = spawn_child(&s);
    CHECK_ERR(cio_wait_for(c, NAN, &r), -EINVAL);
    CHECK_ERR(cio_wait_for_until(c, NAN, &r), -EINVAL);
    CHECK(!cio_future_done(c));
    CHECK_ERR(cio_wait_for(NULL, 1.0, &r), -EINVAL);
    CHECK_OK(cio_await(c, NULL));
    cio_future_unref(c);
    return NULL;
}

TEST(wait_for_without_timeout_and_nan) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, wait_for_forever, NULL, NULL));
    check_nothing_left(loop);
    cio_loop_free(loop);
}

/* ---- the race: an outcome and the timeout in the same iteration ----------- */

static double race_when;

/* The deadline both sides of a race use, fixed by whichever task runs
 * first, so that a slow start cannot put it in the past (a past deadline
 * would turn the inner's sleep into a bare yield). */
static double race_deadline(void) {
    if (race_when == 0) race_when = now() + 0.05;
    return race_when;
}
static cio_future *race_future;
static int setter_rc;

static void race_setter(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
    setter_rc = cio_future_set_result(race_future, IPTR(5));
}

static void *race_waiter(void *arg) {
    (void)arg;
    void *r = NULL;
    int rc = cio_wait_for_until(race_future, race_deadline(), &r);
    /* Exactly one of the two happened, and the caller hears of it. */
    if (rc == 0) {
        CHECK_OK(setter_rc);
        CHECK_EQ(PTRI(r), 5);
        CHECK(!cio_future_cancelled(race_future));
    } else {
        CHECK_ERR(rc, -ETIMEDOUT);
        CHECK_ERR(setter_rc, -CIO_EINVALSTATE);
        CHECK(cio_future_cancelled(race_future));
    }
    return IPTR(rc);
}

static void *arm_setter(void *arg) {
    (void)arg;
    CHECK_OK(cio_call_at(cio_running_loop(), race_deadline(), race_setter, NULL, NULL));
    return NULL;
}

TEST(wait_for_result_and_timeout_in_the_same_iteration) {
    for (int setter_first = 0; setter_first < 2; setter_first++) {
        cio_loop *loop = test_loop();
        setter_rc = 1;
        CHECK_OK(cio_future_new(loop, &race_future));
        race_when = 0;
        cio_task *first, *second;
        /* Timers with one deadline act in the order they were armed: the
         * task that runs first arms its timer first. */
        CHECK_OK(cio_spawn(loop, setter_first ? arm_setter : race_waiter, NULL, &first));
        CHECK_OK(cio_spawn(loop, setter_first ? race_waiter : arm_setter, NULL, &second));
        cio_task *waiter = setter_first ? second : first;
        void *r;
        CHECK_OK(cio_run_until_complete(loop, waiter, &r));
        CHECK(setter_rc != 1); /* the setter ran */
        /* The result set first is returned, not lost (asyncio 3.13 would
         * raise TimeoutError here and strand the result in the future:
         * cio's documented rule returns an outcome that arrived). When the
         * timeout acts first the future is cancelled and the late setter
         * is refused. */
        if (setter_first)
            CHECK_OK(PTRI(r));
        else
            CHECK_ERR(PTRI(r), -ETIMEDOUT);
        cio_future_unref(first);
        cio_future_unref(second);
        cio_future_unref(race_future);
        check_nothing_left(loop);
        cio_loop_free(loop);
    }
}

static cio_task *race_inner;

static void *race_inner_waiter(void *arg) {
    (void)arg;
    cio_task *inner = race_inner;
    void *r = NULL;
    int rc = cio_wait_for_until(inner, race_deadline(), &r);
    if (rc == 0) {
        CHECK_EQ(PTRI(r), 9);
        CHECK(!cio_future_cancelled(inner));
    } else {
        CHECK_ERR(rc, -ETIMEDOUT);
        CHECK(cio_future_cancelled(inner));
    }
    return IPTR(rc);
}

static void *sleep_until_race(void *arg) {
    (void)arg;
    int rc = cio_sleep_until(race_deadline());
    return rc < 0 ? cio_raise(rc) : IPTR(9);
}

TEST(wait_for_inner_task_ending_as_the_timeout_fires) {
    for (int inner_first = 0; inner_first < 2; inner_first++) {
        cio_loop *loop = test_loop();
        race_when = 0;
        cio_task *waiter;
        /* Whichever task runs first arms its timer first, and timers with
         * one deadline act in arming order. */
        if (inner_first) {
            CHECK_OK(cio_spawn(loop, sleep_until_race, NULL, &race_inner));
            CHECK_OK(cio_spawn(loop, race_inner_waiter, NULL, &waiter));
        } else {
            CHECK_OK(cio_spawn(loop, race_inner_waiter, NULL, &waiter));
            CHECK_OK(cio_spawn(loop, sleep_until_race, NULL, &race_inner));
        }
        void *r;
        CHECK_OK(cio_run_until_complete(loop, waiter, &r));
        /* The inner's value is returned when it came first; when the
         * timeout came first, the inner was cancelled in its sleep (its
         * own due timer never woke it a second time). */
        if (inner_first)
            CHECK_OK(PTRI(r));
        else
            CHECK_ERR(PTRI(r), -ETIMEDOUT);
        cio_future_unref(race_inner);
        cio_future_unref(waiter);
        check_nothing_left(loop);
        cio_loop_free(loop);
    }
}
