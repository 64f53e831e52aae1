/*
 * Cancellation: the rules of counted cancellation, cleanup that awaits
 * after a cancel, the races asyncio users trip over, and a stress run of
 * 100,000 random cancellations that must leave no task, timer or byte
 * behind.
 */
#include "test.h"


static void cancel_task(cio_loop *loop, void *arg) {
    (void)loop;
    cio_task_cancel(arg, NULL);
}

/* ---- cleanup that awaits ---------------------------------------------- */

static int cleanup_done;

static void *with_cleanup(void *arg) {
    (void)arg;
    int rc = cio_sleep(10.0);
    CHECK_ERR(rc, -ECANCELED);
    /* The cancellation was delivered once; cleanup may await freely. */
    CHECK_OK(cio_sleep(0.01));
    CHECK_OK(cio_sleep(0));
    cleanup_done = 1;
    return IPTR(1); /* ends cancelled all the same: the request stands */
}

TEST(cleanup_after_cancel_can_await) {
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, with_cleanup, NULL, &t));
    CHECK_OK(cio_call_later(loop, 0.005, cancel_task, t, NULL));
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(cleanup_done);
    CHECK(cio_future_cancelled(t));
    cio_future_unref(t);
    cio_loop_free(loop);
}

static void *swallow(void *arg) {
    (void)arg;
    int rc = cio_sleep(10.0);
    CHECK_ERR(rc, -ECANCELED);
    CHECK_EQ(cio_task_uncancel(cio_current_task()), 0);
    return IPTR(7);
}

TEST(uncancel_swallows_a_cancellation) {
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, swallow, NULL, &t));
    CHECK_OK(cio_call_later(loop, 0.005, cancel_task, t, NULL));
    void *r;
    CHECK_OK(cio_run_until_complete(loop, t, &r));
    CHECK_EQ(PTRI(r), 7);
    cio_future_unref(t);
    cio_loop_free(loop);
}

static void *cancel_twice_then_uncancel(void *arg) {
    (void)arg;
    cio_task *self = cio_current_task();
    CHECK_EQ(cio_task_cancel(self, "one"), 1);
    CHECK_EQ(cio_task_cancel(self, "two"), 1);
    CHECK_EQ(cio_task_cancelling(self), 2);
    CHECK_EQ(cio_task_uncancel(self), 1);
    /* One request is left: the next suspension still delivers it. */
    CHECK_ERR(cio_sleep(0), -ECANCELED);
    CHECK_EQ(cio_task_uncancel(self), 0);
    CHECK_EQ(cio_task_uncancel(self), 0); /* never below zero */
    CHECK_OK(cio_sleep(0));
    /* 3.13: taking the last request back drops a pending delivery. */
    CHECK_EQ(cio_task_cancel(self, NULL), 1);
    CHECK_EQ(cio_task_uncancel(self), 0);
    CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(requests_are_counted) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, cancel_twice_then_uncancel, NULL, NULL));
    cio_loop_free(loop);
}

/* ---- chains ----------------------------------------------------------- */

static void *level3(void *arg) {
    (void)arg;
    int rc = cio_sleep(10.0);
    return cio_raise(rc < 0 ? rc : -EPROTO);
}

static void *level2(void *arg) {
    cio_task *c;
    CHECK_OK(cio_spawn(cio_running_loop(), level3, NULL, &c));
    *(cio_task **)arg = c;
    int rc = cio_await(c, NULL);
    return rc < 0 ? cio_raise(rc) : NULL;
}

TEST(cancel_travels_down_a_chain) {
    cio_loop *loop = test_loop();
    cio_task *t3 = NULL, *t2;
    CHECK_OK(cio_spawn(loop, level2, &t3, &t2));
    CHECK_OK(cio_call_later(loop, 0.01, cancel_task, t2, NULL));
    CHECK_ERR(cio_run_until_complete(loop, t2, NULL), -ECANCELED);
    CHECK(t3 != NULL);
    CHECK(cio_future_cancelled(t2));
    CHECK(cio_future_cancelled(t3));
    cio_future_unref(t3);
    cio_future_unref(t2);
    CHECK_EQ(loop_stats(loop).timers, 0);
    cio_loop_free(loop);
}

/* ---- races ------------------------------------------------------------ */

static cio_future *race_fut;
static cio_task *race_task;

static void *await_race_fut(void *arg) {
    (void)arg;
    void *r = NULL;
    int rc = cio_await(race_fut, &r);
    CHECK_ERR(rc, -ECANCELED);
    /* The result is not lost: it stays in the future. */
    CHECK_OK(cio_future_result(race_fut, &r));
    CHECK_EQ(PTRI(r), 11);
    cio_task_uncancel(cio_current_task());
    return r;
}

static void result_then_cancel(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
    CHECK_OK(cio_future_set_result(race_fut, IPTR(11)));
    CHECK_EQ(cio_task_cancel(race_task, NULL), 1);
}

TEST(result_and_cancel_in_the_same_iteration) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_future_new(loop, &race_fut));
    CHECK_OK(cio_spawn(loop, await_race_fut, NULL, &race_task));
    CHECK_OK(cio_call_later(loop, 0.005, result_then_cancel, NULL, NULL));
    void *r;
    CHECK_OK(cio_run_until_complete(loop, race_task, &r));
    CHECK_EQ(PTRI(r), 11);
    cio_future_unref(race_task);
    cio_future_unref(race_fut);
    cio_loop_free(loop);
}

static void set_result_cb(cio_loop *loop, void *arg) {
    (void)loop;
    CHECK_OK(cio_future_set_result(arg, IPTR(5)));
}

static void *wait_for_race(void *arg) {
    cio_future *f = arg;
    double when = cio_loop_time(cio_running_loop()) + 0.01;
    /* The result and the deadline land in the same iteration. */
    CHECK_OK(cio_call_at(cio_running_loop(), when, set_result_cb, f, NULL));
    void *r = NULL;
    int rc = cio_wait_for_until(f, when, &r);
    /* Either the result won (and is returned) or the timeout did and the
     * future was cancelled: never both, never neither. */
    if (rc == 0) {
        CHECK_EQ(PTRI(r), 5);
        CHECK(!cio_future_cancelled(f));
    } else {
        CHECK_ERR(rc, -ETIMEDOUT);
        CHECK(cio_future_cancelled(f));
    }
    return IPTR(rc);
}

TEST(result_and_timeout_in_the_same_iteration) {
    cio_loop *loop = test_loop();
    for (int i = 0; i < 20; i++) {
        cio_future *f;
        CHECK_OK(cio_future_new(loop, &f));
        CHECK_OK(test_run(loop, wait_for_race, f, NULL));
        cio_future_unref(f);
    }
    cio_loop_free(loop);
}

/* ---- stress: 100,000 random cancellations ----------------------------- */

#define WORKERS 48
#define TARGET_CANCELS 100000

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static unsigned rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state >> 11);
}

static long cancels;
static long steps;
static cio_task *canceller_task, *supervisor_task, *main_task;

static void *leaf(void *arg) {
    (void)arg;
    int rc = cio_sleep((rnd() % 3) / 2000.0);
    return rc < 0 ? cio_raise(rc) : IPTR(1);
}

static int spawn_and(int how) {
    cio_loop *loop = cio_running_loop();
    cio_task *c[3] = {NULL, NULL, NULL};
    int n = how == 2 ? 3 : 1, rc = 0;
    for (int i = 0; i < n && rc == 0; i++) rc = cio_spawn(loop, leaf, NULL, &c[i]);
    if (rc == 0) {
        if (how == 0) {
            rc = cio_await(c[0], NULL);
        } else if (how == 1) {
            rc = cio_wait_for(c[0], 0.0005, NULL);
            if (rc == -ETIMEDOUT) rc = 0;
        } else {
            cio_future *g;
            rc = cio_gather(loop, c, 3, 0, &g);
            if (rc == 0) rc = cio_await(g, NULL);
            cio_future_unref(g);
        }
    }
    for (int i = 0; i < n; i++) cio_future_unref(c[i]);
    return rc;
}

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        int rc;
        switch (rnd() % 6) {
        case 0: rc = cio_sleep((rnd() % 2) / 1000.0); break;
        case 1: rc = cio_sleep(0); break;
        case 2: rc = spawn_and(0); break;
        case 3: rc = spawn_and(1); break;
        case 4: rc = spawn_and(2); break;
        default: {
            cio_timeout scope;
            CHECK_OK(cio_timeout_enter(&scope, 0.0005));
            rc = cio_timeout_exit(&scope, cio_sleep(0.001));
            if (rc == -ETIMEDOUT) rc = 0;
        }
        }
        steps++;
        if (rc == -ECANCELED) return NULL;
        CHECK_OK(rc);
    }
}

static void *canceller(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    static cio_task *all[4096];
    while (cancels < TARGET_CANCELS) {
        CHECK_OK(cio_sleep(rnd() % 4 == 0 ? 0.0002 : 0));
        size_t n = cio_all_tasks(loop, all, 4096);
        if (n > 4096) n = 4096;
        for (int k = 0; k < 8 && n > 0; k++) {
            cio_task *victim = all[rnd() % n];
            if (victim == canceller_task || victim == supervisor_task || victim == main_task)
                continue;
            if (cio_task_cancel(victim, "stress") == 1) cancels++;
        }
    }
    return NULL;
}

static void *supervisor(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *slots[WORKERS] = {0};
    int rc = 0;
    while (rc == 0) {
        for (int i = 0; i < WORKERS; i++) {
            if (slots[i] && !cio_future_done(slots[i])) continue;
            cio_future_unref(slots[i]);
            slots[i] = NULL;
            CHECK_OK(cio_spawn(loop, worker, NULL, &slots[i]));
        }
        rc = cio_sleep(0.0003);
    }
    /* Shutting down: stop every worker and wait for each. */
    cio_task_uncancel(cio_current_task());
    for (int i = 0; i < WORKERS; i++) {
        if (!slots[i]) continue;
        cio_task_cancel(slots[i], NULL);
        int r = cio_await(slots[i], NULL);
        CHECK(r == 0 || r == -ECANCELED);
        cio_future_unref(slots[i]);
    }
    return NULL;
}

static void *stress_main(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    main_task = cio_current_task();
    CHECK_OK(cio_spawn(loop, supervisor, NULL, &supervisor_task));
    CHECK_OK(cio_spawn(loop, canceller, NULL, &canceller_task));
    CHECK_OK(cio_await(canceller_task, NULL));
    cio_task_cancel(supervisor_task, NULL);
    CHECK_OK(cio_await(supervisor_task, NULL));
    cio_future_unref(canceller_task);
    cio_future_unref(supervisor_task);
    /* Let the leaves of cancelled workers finish. */
    while (cio_all_tasks(loop, NULL, 0) > 1) CHECK_OK(cio_sleep(0.001));
    return NULL;
}

TEST(hundred_thousand_random_cancels_leave_nothing_behind) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, stress_main, NULL, NULL));
    CHECK_INT(cancels, >=, TARGET_CANCELS);
    CHECK_INT(steps, >, TARGET_CANCELS);
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 0);
    CHECK_EQ(loop_stats(loop).live_tasks, 0);
    CHECK_EQ(loop_stats(loop).timers, 0);
    CHECK(loop_stats(loop).ready == 0);
    /* Every future still alive belongs to... nobody: none may be left. */
    CHECK(loop_stats(loop).futures == 0);
    cio_loop_free(loop);
}

static int body_ran;

static void *mark_ran(void *arg) {
    (void)arg;
    body_ran = 1;
    return NULL;
}

TEST(cancelled_before_its_first_step_never_runs) {
    cio_loop *loop = test_loop();
    body_ran = 0;
    cio_task *t;
    CHECK_OK(cio_spawn(loop, mark_ran, NULL, &t));
    CHECK_EQ(cio_task_cancel(t, "too early"), 1);
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(!body_ran);
    CHECK(cio_future_cancelled(t));
    CHECK_STR(cio_future_cancel_message(t), "too early");
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 0);
    cio_future_unref(t);
    /* Detached and cancelled at once: frees itself without running. */
    CHECK_OK(cio_spawn(loop, mark_ran, NULL, NULL));
    cio_task *all[1];
    CHECK_EQ(cio_all_tasks(loop, all, 1), 1);
    cio_task_cancel(all[0], NULL);
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_future_set_result(f, NULL));
    CHECK_OK(cio_run_until_complete(loop, f, NULL));
    CHECK(!body_ran);
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 0);
    cio_future_unref(f);
    cio_loop_free(loop);
}

static cio_lock *held_lock;

static void *wait_for_lock(void *arg) {
    (void)arg;
    return IPTR(cio_lock_acquire(held_lock));
}

static void *take_lock(void *arg) {
    (void)arg;
    return IPTR(cio_lock_acquire(held_lock));
}

static int quiet_reports;
static void quiet(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)ctx;
    (void)arg;
    quiet_reports++;
}

static void stop_now(cio_loop *loop, void *arg) {
    (void)arg;
    CHECK_OK(cio_loop_stop(loop));
}

TEST(closing_a_loop_takes_waiters_out_of_primitives) {
    /* A task still waiting on a lock when its loop closes must leave the
     * lock's queue: releasing the lock later must not touch its freed
     * stack. */
    cio_loop *loop = test_loop();
    CHECK_OK(cio_loop_set_exception_handler(loop, quiet, NULL));
    CHECK_OK(cio_lock_new(&held_lock));
    CHECK_OK(test_run(loop, take_lock, NULL, NULL));
    cio_task *t;
    CHECK_OK(cio_spawn(loop, wait_for_lock, NULL, &t));
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_OK(cio_call_later(loop, 0.005, stop_now, NULL, NULL));
    CHECK_ERR(cio_run_until_complete(loop, f, NULL), -CIO_ESTOPPED);
    CHECK(!cio_future_done(t));
    cio_future_unref(f);
    CHECK_OK(cio_loop_close(loop)); /* t is destroyed while it waits */
    CHECK_INT(quiet_reports, >=, 1);
    CHECK(cio_future_cancelled(t)); /* held: it outlives the close */
    cio_future_unref(t);
    CHECK_OK(cio_lock_release(held_lock)); /* nobody left to wake */
    CHECK(!cio_lock_locked(held_lock));
    /* The lock still counts the destroyed task as inside (a C stack cannot
     * be unwound), so it cannot be freed; it stays reachable here. */
    cio_loop_free(loop);
}
