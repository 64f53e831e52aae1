/*
 * Fault injection: make the Nth allocation or system call fail, for every
 * N until a run completes without reaching the fault. Each public call
 * must either work or return the injected error (-ENOMEM, or -EMFILE for a
 * descriptor); nothing may crash, and the sanitizer and Valgrind runs check
 * that nothing leaks.
 */
#include "test.h"

#include "base/fault.h"

static int allowed(int rc) {
    return rc == 0 || rc == -ENOMEM || rc == -EMFILE;
}

#define TRY(call)                                                         \
    do {                                                                  \
        int try_rc_ = (call);                                             \
        if (!allowed(try_rc_)) FAIL("%s: %s", #call, cio_strerror(try_rc_)); \
        if (try_rc_ < 0) return cio_raise(try_rc_);                       \
    } while (0)

static void *child(void *arg) {
    int rc = cio_sleep((double)PTRI(arg) / 1000.0);
    if (rc < 0) return cio_raise(rc);
    return arg;
}

static void noop(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
}

static void on_done(cio_future *fut, void *arg) {
    (void)fut;
    (void)arg;
}

/* A little of everything: spawn, gather, timers, done callbacks, futures,
 * wait_for and wait. */
static void *scenario(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *kids[3] = {NULL, NULL, NULL};
    cio_future *g = NULL, *f = NULL;
    void *result = NULL;
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) rc = cio_spawn(loop, child, IPTR(i + 1), &kids[i]);
    if (rc == 0) rc = cio_gather(loop, kids, 3, 0, &g);
    if (rc == 0) rc = cio_future_add_done_callback(g, on_done, NULL);
    if (rc == 0) rc = cio_await(g, &result);
    cio_handle h;
    if (rc == 0) rc = cio_call_later(loop, 0.5, noop, NULL, &h);
    if (rc == 0) cio_handle_cancel(&h);
    if (rc == 0) rc = cio_call_soon(loop, noop, NULL, NULL);
    if (rc == 0) rc = cio_future_new(loop, &f);
    if (rc == 0) {
        rc = cio_wait_for(f, 0.001, NULL);
        if (rc == -ETIMEDOUT) rc = 0;
    }
    if (rc == 0) {
        size_t nd = 0;
        rc = cio_wait(kids, 3, CIO_ALL_COMPLETED, 1.0, NULL, &nd, NULL, NULL);
        if (rc == 0) CHECK_EQ(nd, 3);
    }
    if (!allowed(rc)) FAIL("scenario: %s", cio_strerror(rc));
    cio_future_release(f);
    cio_future_release(g);
    for (int i = 0; i < 3; i++) cio_future_release(kids[i]);
    return rc < 0 ? cio_raise(rc) : NULL;
}

/* Runs the scenario with the nth operation failing; returns how many
 * operations the run made. */
static int64_t run_with_fault(int64_t nth) {
    cio__fault_arm(nth);
    cio_loop *loop = NULL;
    int rc = cio_loop_new(&loop);
    if (rc < 0) {
        CHECK(allowed(rc));
        CHECK(loop == NULL);
        return cio__fault_arm(0);
    }
    cio_task *t = NULL;
    rc = cio_spawn(loop, scenario, NULL, &t);
    CHECK(allowed(rc));
    if (rc == 0) {
        rc = cio_run_until_complete(loop, t, NULL);
        CHECK(allowed(rc));
        cio_future_release(t);
    }
    int64_t calls = cio__fault_arm(0);
    cio_loop_free(loop);
    return calls;
}

TEST(sweep_every_failure_point) {
    int64_t total = run_with_fault(0);
    CHECK_INT(total, >, 10);
    int64_t n = 1;
    for (; n <= total + 1; n++) {
        int64_t calls = run_with_fault(n);
        if (calls < n) break; /* the fault was never reached: all covered */
    }
    fprintf(stderr, "swept %lld failure points of %lld operations\n", (long long)n - 1,
            (long long)total);
    CHECK_INT(n - 1, >=, total);
}

TEST(loop_new_fails_cleanly) {
    for (int64_t n = 1; n <= 8; n++) {
        cio__fault_arm(n);
        cio_loop *loop = (cio_loop *)1;
        int rc = cio_loop_new(&loop);
        cio__fault_arm(0);
        if (rc == 0) {
            cio_loop_free(loop);
            break;
        }
        CHECK(allowed(rc));
        CHECK(loop == NULL);
    }
}

TEST(spawn_fails_cleanly) {
    cio_loop *loop = test_loop();
    for (int64_t n = 1; n <= 8; n++) {
        cio__fault_arm(n);
        cio_task *t = (cio_task *)1;
        int rc = cio_spawn(loop, child, IPTR(1), &t);
        cio__fault_arm(0);
        if (rc == 0) {
            CHECK_OK(cio_run_until_complete(loop, t, NULL));
            cio_future_release(t);
            continue;
        }
        CHECK_ERR(rc, -ENOMEM);
        CHECK(t == NULL);
    }
    /* Nothing half-made is left behind. */
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 0);
    cio_loop_free(loop);
}

TEST(timers_fail_cleanly) {
    cio_loop *loop = test_loop();
    int made = 0;
    for (int i = 0; i < 2000; i++) {
        cio__fault_arm(i % 7 == 3 ? 1 : 0);
        cio_handle h;
        int rc = cio_call_later(loop, 0.001 * (i % 5), noop, NULL, &h);
        cio__fault_arm(0);
        if (rc == 0) made++;
        else CHECK_ERR(rc, -ENOMEM);
    }
    CHECK_INT(made, >, 0);
    cio_loop_free(loop);
}
