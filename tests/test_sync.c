/*
 * Lock, Event, Condition, Semaphore, BoundedSemaphore and Barrier, checked
 * against asyncio 3.13 (Lib/asyncio/locks.py): FIFO wake-ups, no barging,
 * cancellation and deadlines that never lose or leak a lock, a permit or a
 * notification, the barrier's states, bad arguments, loop binding, and
 * random cancellations under contention.
 */
#include "test.h"


/* ---- helpers ----------------------------------------------------------- */

/* Tasks note a letter when they get what they waited for. */
static char order[256];
static size_t order_len;

static void note(char c) {
    if (order_len + 1 < sizeof order) {
        order[order_len++] = c;
        order[order_len] = '\0';
    }
}

static void reset_order(void) {
    order_len = 0;
    order[0] = '\0';
}

static cio_task *spawn(cio_coro_fn fn, void *arg) {
    cio_task *t = NULL;
    CHECK_OK(cio_spawn(cio_running_loop(), fn, arg, &t));
    return t;
}

/* Spawns a task that runs at once, up to its first suspension. */
static cio_task *spawn_eager(cio_coro_fn fn, void *arg) {
    cio_task *t = NULL;
    cio_task_options opts = {.eager_start = 1};
    CHECK_OK(cio_spawn_with(cio_running_loop(), fn, arg, &opts, &t));
    return t;
}

/* Awaits a task, drops our reference and returns its outcome. */
static int finish(cio_task *t) {
    int rc = cio_await(t, NULL);
    cio_future_unref(t);
    return rc;
}

/* Yields for n loop iterations, letting the other tasks run until they
 * block. */
static void settle(int n) {
    for (int i = 0; i < n; i++) CHECK_OK(cio_sleep(0));
}

static double now(void) {
    return cio_loop_time(cio_running_loop());
}

/* Runs fn as the main task of a fresh loop, checks it returned normally and
 * frees the loop. */
static void run_main(cio_coro_fn fn) {
    cio_loop *loop = test_loop();
    reset_order();
    CHECK_OK(test_run(loop, fn, NULL, NULL));
    cio_loop_free(loop);
}

/* ---- Lock -------------------------------------------------------------- */

static cio_lock *lock;

/* Takes the lock, notes its letter, holds the lock one iteration. */
static void *locker(void *arg) {
    int rc = cio_lock_acquire(lock);
    if (rc < 0) return cio_raise(rc);
    CHECK(cio_lock_locked(lock));
    note((char)PTRI(arg));
    CHECK_OK(cio_sleep(0));
    CHECK_OK(cio_lock_release(lock));
    return NULL;
}

/* Like locker, but gives up 10 ms after it started waiting. */
static void *timed_locker(void *arg) {
    int rc = cio_lock_acquire_until(lock, now() + 0.01);
    if (rc < 0) return cio_raise(rc);
    note((char)PTRI(arg));
    CHECK_OK(cio_lock_release(lock));
    return NULL;
}

static void *lock_fifo(void *arg) {
    (void)arg;
    CHECK_OK(cio_lock_acquire(lock));
    cio_task *t[4];
    for (int i = 0; i < 4; i++) t[i] = spawn(locker, IPTR('a' + i));
    settle(1); /* all four queue up behind us */
    CHECK_OK(cio_lock_release(lock));
    /* asyncio's model: the lock is free until the woken waiter takes it, so
     * locked() is false and a second release is refused... */
    CHECK(!cio_lock_locked(lock));
    CHECK_ERR(cio_lock_release(lock), -CIO_EINVALSTATE);
    /* ...but a newcomer still waits behind every queued task: no barging,
     * neither by a task spawned now nor by ourselves. */
    cio_task *late = spawn(locker, IPTR('z'));
    CHECK_OK(cio_lock_acquire(lock));
    note('M');
    CHECK_OK(cio_lock_release(lock));
    for (int i = 0; i < 4; i++) CHECK_OK(finish(t[i]));
    CHECK_OK(finish(late));
    CHECK(!cio_lock_locked(lock));
    return NULL;
}

TEST(lock_wakes_fifo_and_is_never_barged) {
    CHECK_OK(cio_lock_new(&lock));
    run_main(lock_fifo);
    CHECK_STR(order, "abcdMz");
    CHECK_OK(cio_lock_free(lock));
}

static void *lock_cancel_woken(void *arg) {
    (void)arg;
    CHECK_OK(cio_lock_acquire(lock));
    cio_task *a = spawn(locker, IPTR('a'));
    cio_task *b = spawn(locker, IPTR('b'));
    cio_task *c = spawn(locker, IPTR('c'));
    settle(1);
    /* release wakes a; cancelling a in the same iteration, before it runs,
     * must not lose the lock: a passes it on to b. */
    CHECK_OK(cio_lock_release(lock));
    CHECK_EQ(cio_task_cancel(a, NULL), 1);
    CHECK_ERR(finish(a), -ECANCELED);
    CHECK_OK(finish(b));
    CHECK_OK(finish(c));
    CHECK(!cio_lock_locked(lock));
    /* Nothing is left over: the lock is free and takes the fast path. */
    CHECK_OK(cio_lock_acquire(lock));
    CHECK_OK(cio_lock_release(lock));
    return NULL;
}

TEST(lock_woken_then_cancelled_waiter_passes_the_lock_on) {
    CHECK_OK(cio_lock_new(&lock));
    run_main(lock_cancel_woken);
    CHECK_STR(order, "bc");
    CHECK_OK(cio_lock_free(lock));
}

static void *lock_cancel_queued(void *arg) {
    (void)arg;
    CHECK_OK(cio_lock_acquire(lock));
    cio_task *t[4];
    for (int i = 0; i < 4; i++) t[i] = spawn(locker, IPTR('a' + i));
    settle(1);
    /* Cancelled while still queued: they leave and never get the lock. */
    CHECK_EQ(cio_task_cancel(t[0], NULL), 1);
    CHECK_EQ(cio_task_cancel(t[2], NULL), 1);
    settle(1);
    CHECK_OK(cio_lock_release(lock));
    for (int i = 0; i < 4; i++) CHECK_ERR(finish(t[i]), i % 2 == 0 ? -ECANCELED : 0);
    CHECK(!cio_lock_locked(lock));
    return NULL;
}

TEST(lock_queued_waiter_cancelled_is_skipped) {
    CHECK_OK(cio_lock_new(&lock));
    run_main(lock_cancel_queued);
    CHECK_STR(order, "bd");
    CHECK_OK(cio_lock_free(lock));
}

static void *lock_deadlines(void *arg) {
    (void)arg;
    /* A free lock is taken at once, whatever the deadline (asyncio does not
     * even suspend). */
    CHECK_OK(cio_lock_acquire_until(lock, now() - 1.0));
    /* Held: a deadline in the past fails at the next iteration. */
    CHECK_ERR(cio_lock_acquire_until(lock, now() - 1.0), -ETIMEDOUT);
    CHECK_ERR(cio_lock_acquire_until(lock, -INFINITY), -ETIMEDOUT);
    CHECK_ERR(cio_lock_acquire_until(lock, NAN), -EINVAL);
    /* A waiter that times out in the middle of the queue takes nothing and
     * leaves the others their order. */
    cio_task *a = spawn(locker, IPTR('a'));
    cio_task *t = spawn(timed_locker, IPTR('t'));
    cio_task *b = spawn(locker, IPTR('b'));
    CHECK_OK(cio_sleep(0.03));
    CHECK_ERR(finish(t), -ETIMEDOUT);
    CHECK(cio_lock_locked(lock));
    CHECK_OK(cio_lock_release(lock));
    CHECK_OK(finish(a));
    CHECK_OK(finish(b));
    CHECK(!cio_lock_locked(lock));
    return NULL;
}

TEST(lock_deadlines_give_up_nothing_held) {
    CHECK_OK(cio_lock_new(&lock));
    run_main(lock_deadlines);
    CHECK_STR(order, "ab");
    CHECK_OK(cio_lock_free(lock));
}

static void *late_runner(void *arg) {
    (void)arg;
    double deadline = now() + 0.005;
    int rc = cio_lock_acquire_until(lock, deadline);
    /* Woken before the deadline, run after it: the lock is ours. */
    CHECK_OK(rc);
    CHECK(cio_loop_time(cio_running_loop()) > deadline);
    note('w');
    CHECK_OK(cio_lock_release(lock));
    return NULL;
}

static void *lock_woken_before_deadline(void *arg) {
    (void)arg;
    CHECK_OK(cio_lock_acquire(lock));
    cio_task *w = spawn(late_runner, NULL);
    settle(1);
    CHECK_OK(cio_lock_release(lock));
    /* Keep the loop busy past the waiter's deadline before it gets to run. */
    double until = now() + 0.01;
    while (cio_loop_time(cio_running_loop()) < until) {
    }
    CHECK_OK(finish(w));
    CHECK(!cio_lock_locked(lock));
    return NULL;
}

TEST(lock_waiter_woken_before_its_deadline_keeps_the_lock) {
    CHECK_OK(cio_lock_new(&lock));
    run_main(lock_woken_before_deadline);
    CHECK_STR(order, "w");
    CHECK_OK(cio_lock_free(lock));
}

TEST(lock_bad_arguments) {
    CHECK_ERR(cio_lock_new(NULL), -EINVAL);
    CHECK_ERR(cio_lock_acquire(NULL), -EINVAL);
    CHECK_ERR(cio_lock_acquire_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_lock_release(NULL), -EINVAL);
    CHECK(!cio_lock_locked(NULL));
    CHECK_OK(cio_lock_free(NULL));
    cio_lock *l = (cio_lock *)1;
    cio__fault_arm(1);
    CHECK_ERR(cio_lock_new(&l), -ENOMEM);
    cio__fault_arm(0);
    CHECK(l == NULL);
    CHECK_OK(cio_lock_new(&l));
    CHECK_ERR(cio_lock_release(l), -CIO_EINVALSTATE); /* asyncio: RuntimeError */
    CHECK_OK(cio_lock_free(l));
    cio_loop *loop = test_loop();
    cio_loop_free(loop);
}

/* ---- Event ------------------------------------------------------------- */

static cio_event *event;

static void *event_waiter(void *arg) {
    int rc = cio_event_wait(event);
    if (rc < 0) return cio_raise(rc);
    note((char)PTRI(arg));
    return NULL;
}

static void *event_round(void *arg) {
    (void)arg;
    cio_task *t[4];
    for (int i = 0; i < 4; i++) t[i] = spawn(event_waiter, IPTR('a' + i));
    settle(1);
    CHECK_EQ(order_len, 0);
    CHECK_EQ(cio_task_cancel(t[1], NULL), 1); /* cancelled while waiting */
    CHECK_OK(cio_event_set(event));
    CHECK_EQ(cio_task_cancel(t[3], NULL), 1); /* woken, then cancelled */
    CHECK_OK(cio_event_clear(event));         /* woken waiters still return */
    CHECK(!cio_event_is_set(event));
    for (int i = 0; i < 4; i++) CHECK_ERR(finish(t[i]), i % 2 ? -ECANCELED : 0);
    /* Set: wait returns at once, and set again changes nothing. */
    CHECK_OK(cio_event_set(event));
    CHECK_OK(cio_event_set(event));
    CHECK(cio_event_is_set(event));
    CHECK_OK(cio_event_wait(event));
    CHECK_OK(cio_event_wait_until(event, now() - 1.0));
    CHECK_OK(cio_event_clear(event));
    CHECK_ERR(cio_event_wait_until(event, now() + 0.005), -ETIMEDOUT);
    CHECK_ERR(cio_event_wait_until(event, NAN), -EINVAL);
    /* A waiter that timed out is gone: set then wakes only the others. */
    cio_task *late = spawn(event_waiter, IPTR('x'));
    settle(1);
    CHECK_OK(cio_event_set(event));
    CHECK_OK(finish(late));
    return NULL;
}

TEST(event_set_wakes_every_waiter_in_order) {
    CHECK_OK(cio_event_new(&event));
    run_main(event_round);
    CHECK_STR(order, "acx");
    CHECK_OK(cio_event_free(event));
}

TEST(event_bad_arguments) {
    CHECK_ERR(cio_event_new(NULL), -EINVAL);
    CHECK_ERR(cio_event_wait(NULL), -EINVAL);
    CHECK_ERR(cio_event_wait_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_event_set(NULL), -EINVAL);
    CHECK_ERR(cio_event_clear(NULL), -EINVAL);
    CHECK(!cio_event_is_set(NULL));
    CHECK_OK(cio_event_free(NULL));
    cio_event *e = (cio_event *)1;
    cio__fault_arm(1);
    CHECK_ERR(cio_event_new(&e), -ENOMEM);
    cio__fault_arm(0);
    CHECK(e == NULL);
    cio_loop *loop = test_loop();
    cio_loop_free(loop);
}

/* ---- Condition ----------------------------------------------------------- */

static cio_condition *cond;

/* Waits once; whatever happens, returns holding the lock, and notes its
 * letter if it was notified. */
static void *cond_waiter(void *arg) {
    CHECK_OK(cio_condition_acquire(cond));
    int rc = cio_condition_wait(cond);
    CHECK(cio_condition_locked(cond));
    if (rc == 0) note((char)PTRI(arg));
    CHECK_OK(cio_condition_release(cond));
    return rc < 0 ? cio_raise(rc) : NULL;
}

/* Like cond_waiter with a deadline 10 ms after it started waiting. */
static void *cond_timed_waiter(void *arg) {
    CHECK_OK(cio_condition_acquire(cond));
    int rc = cio_condition_wait_until(cond, now() + 0.01);
    CHECK(cio_condition_locked(cond));
    if (rc == 0) note((char)PTRI(arg));
    CHECK_OK(cio_condition_release(cond));
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void notify_and_let_run(int n) {
    CHECK_OK(cio_condition_acquire(cond));
    if (n < 0)
        CHECK_OK(cio_condition_notify_all(cond));
    else
        CHECK_OK(cio_condition_notify(cond, n));
    CHECK_OK(cio_condition_release(cond));
    settle(3);
}

static void *cond_fifo(void *arg) {
    (void)arg;
    cio_task *t[5];
    for (int i = 0; i < 5; i++) t[i] = spawn(cond_waiter, IPTR('a' + i));
    settle(1);
    notify_and_let_run(0); /* nothing */
    CHECK_STR(order, "");
    notify_and_let_run(1);
    CHECK_STR(order, "a");
    notify_and_let_run(2);
    CHECK_STR(order, "abc");
    notify_and_let_run(-1);
    CHECK_STR(order, "abcde");
    for (int i = 0; i < 5; i++) CHECK_OK(finish(t[i]));
    /* Notifying with nobody waiting is fine. */
    notify_and_let_run(3);
    CHECK(!cio_condition_locked(cond));
    return NULL;
}

TEST(condition_notify_wakes_fifo) {
    CHECK_OK(cio_condition_new(NULL, &cond));
    run_main(cond_fifo);
    CHECK_STR(order, "abcde");
    CHECK_OK(cio_condition_free(cond));
}

static void *cond_cancel_notified(void *arg) {
    (void)arg;
    cio_task *t[3];
    for (int i = 0; i < 3; i++) t[i] = spawn(cond_waiter, IPTR('a' + i));
    settle(1);
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_OK(cio_condition_notify(cond, 1));
    /* a was notified; cancelled before it runs, it passes the notification
     * on to b, and c stays waiting. */
    CHECK_EQ(cio_task_cancel(t[0], NULL), 1);
    CHECK_OK(cio_condition_release(cond));
    CHECK_ERR(finish(t[0]), -ECANCELED);
    CHECK_OK(finish(t[1]));
    settle(3);
    CHECK_STR(order, "b");
    notify_and_let_run(1);
    CHECK_OK(finish(t[2]));
    return NULL;
}

TEST(condition_notified_then_cancelled_passes_the_notification_on) {
    CHECK_OK(cio_condition_new(NULL, &cond));
    run_main(cond_cancel_notified);
    CHECK_STR(order, "bc");
    CHECK_OK(cio_condition_free(cond));
}

static void *cond_cancel_while_reacquiring(void *arg) {
    (void)arg;
    cio_task *a = spawn(cond_waiter, IPTR('a'));
    cio_task *b = spawn(cond_waiter, IPTR('b'));
    settle(1);
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_OK(cio_condition_notify(cond, 1));
    settle(2); /* a runs and now waits for the lock we hold */
    CHECK_EQ(cio_task_cancel(a, NULL), 1);
    settle(2);
    /* The cancellation is held back until a has the lock again. */
    CHECK(!cio_future_done(a));
    CHECK_OK(cio_condition_release(cond));
    CHECK_ERR(finish(a), -ECANCELED);
    /* 3.13: a consumed a notification it will not act on, so b gets one. */
    CHECK_OK(finish(b));
    return NULL;
}

TEST(condition_cancelled_while_reacquiring_passes_the_notification_on) {
    CHECK_OK(cio_condition_new(NULL, &cond));
    run_main(cond_cancel_while_reacquiring);
    CHECK_STR(order, "b");
    CHECK_OK(cio_condition_free(cond));
}

/* When hold_cond_lock let the lock go (loop time), or 0 while it holds it. */
static double released_at;

static void *hold_cond_lock(void *arg) {
    CHECK_OK(cio_condition_acquire(cond));
    note('h');
    released_at = 0;
    CHECK_OK(cio_sleep(*(double *)arg));
    released_at = now();
    CHECK_OK(cio_condition_release(cond));
    return NULL;
}

static void *cond_cancel_reacquires(void *arg) {
    (void)arg;
    cio_task *w = spawn(cond_waiter, IPTR('w'));
    cio_task *v = spawn(cond_waiter, IPTR('v'));
    settle(1);
    /* Someone takes the lock, then w is cancelled while waiting (not
     * notified): w must get the lock back before returning -ECANCELED. */
    static double hold = 0.02;
    cio_task *holder = spawn(hold_cond_lock, &hold);
    settle(1);
    CHECK_EQ(cio_task_cancel(w, NULL), 1);
    /* w ends only once it has the lock back, so after the holder let it
     * go (an order, not a duration: a loaded machine stretches the time
     * between the holder's sleep and this cancel). */
    CHECK_ERR(finish(w), -ECANCELED);
    CHECK(released_at > 0);
    CHECK_OK(finish(holder));
    /* w had not been notified: v gets no (spurious) notification. */
    settle(3);
    CHECK(!cio_future_done(v));
    notify_and_let_run(-1);
    CHECK_OK(finish(v));
    CHECK(!cio_condition_locked(cond));
    return NULL;
}

TEST(condition_wait_reacquires_the_lock_when_cancelled) {
    CHECK_OK(cio_condition_new(NULL, &cond));
    run_main(cond_cancel_reacquires);
    CHECK_STR(order, "hv");
    CHECK_OK(cio_condition_free(cond));
}

static void *cond_timeouts(void *arg) {
    (void)arg;
    /* Alone: times out and holds the lock again. */
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_ERR(cio_condition_wait_until(cond, now() + 0.005), -ETIMEDOUT);
    CHECK(cio_condition_locked(cond));
    CHECK_ERR(cio_condition_wait_until(cond, NAN), -EINVAL);
    CHECK(cio_condition_locked(cond));
    CHECK_OK(cio_condition_release(cond));

    /* The lock is busy when the deadline passes: the waiter returns
     * -ETIMEDOUT only once it holds the lock again. */
    cio_task *w = spawn(cond_timed_waiter, IPTR('w'));
    settle(1);
    static double hold = 0.03;
    cio_task *holder = spawn(hold_cond_lock, &hold);
    double start = now();
    CHECK_ERR(finish(w), -ETIMEDOUT);
    CHECK(now() - start >= 0.025);
    CHECK_OK(finish(holder));

    /* Notified in time, but the lock comes back after the deadline: the
     * deadline covers the whole wait, so -ETIMEDOUT, and the notification
     * goes on to the next waiter. */
    cio_task *a = spawn(cond_timed_waiter, IPTR('a'));
    cio_task *b = spawn(cond_waiter, IPTR('b'));
    settle(1);
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_OK(cio_condition_notify(cond, 1));
    CHECK_OK(cio_sleep(0.02)); /* past a's deadline, still holding the lock */
    CHECK_OK(cio_condition_release(cond));
    CHECK_ERR(finish(a), -ETIMEDOUT);
    CHECK_OK(finish(b));
    CHECK(!cio_condition_locked(cond));
    return NULL;
}

TEST(condition_wait_until_times_out_holding_the_lock) {
    CHECK_OK(cio_condition_new(NULL, &cond));
    run_main(cond_timeouts);
    CHECK_STR(order, "hb");
    CHECK_OK(cio_condition_free(cond));
}

static int counter, pred_calls;

static int counter_reached_3(void *arg) {
    CHECK(arg == &counter);
    pred_calls++;
    return counter >= 3;
}

static void *wait_for_3(void *arg) {
    (void)arg;
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_OK(cio_condition_wait_for(cond, counter_reached_3, &counter));
    CHECK(cio_condition_locked(cond));
    note('w');
    CHECK_OK(cio_condition_release(cond));
    return NULL;
}

static void *cond_wait_for(void *arg) {
    (void)arg;
    counter = pred_calls = 0;
    cio_task *w = spawn(wait_for_3, NULL);
    settle(1);
    CHECK_EQ(pred_calls, 1);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(cio_condition_acquire(cond));
        counter++;
        CHECK_OK(cio_condition_notify_all(cond));
        CHECK_OK(cio_condition_release(cond));
        settle(2);
    }
    CHECK_OK(finish(w));
    /* Checked once at the start and once after each of the 3 wake-ups. */
    CHECK_EQ(pred_calls, 4);
    /* A true predicate returns at once. */
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_OK(cio_condition_wait_for(cond, counter_reached_3, &counter));
    CHECK_ERR(cio_condition_wait_for(cond, NULL, NULL), -EINVAL);
    CHECK_OK(cio_condition_release(cond));
    return NULL;
}

TEST(condition_wait_for_rechecks_the_predicate) {
    CHECK_OK(cio_condition_new(NULL, &cond));
    run_main(cond_wait_for);
    CHECK_STR(order, "w");
    CHECK_OK(cio_condition_free(cond));
}

static cio_lock *shared;

static void *take_shared(void *arg) {
    (void)arg;
    CHECK_OK(cio_lock_acquire(shared));
    note('s');
    CHECK_OK(cio_lock_release(shared));
    return NULL;
}

static void *cond_shared_lock(void *arg) {
    (void)arg;
    CHECK_OK(cio_condition_acquire(cond));
    CHECK(cio_lock_locked(shared));
    /* wait releases the caller's lock, so a task can take it meanwhile. */
    cio_task *t = spawn(take_shared, NULL);
    CHECK_ERR(cio_condition_wait_until(cond, now() + 0.005), -ETIMEDOUT);
    CHECK(cio_lock_locked(shared));
    CHECK_OK(finish(t));
    CHECK_OK(cio_condition_release(cond));
    CHECK(!cio_lock_locked(shared));
    CHECK_ERR(cio_condition_release(cond), -CIO_EINVALSTATE);
    return NULL;
}

TEST(condition_with_a_lock_of_the_callers) {
    CHECK_OK(cio_lock_new(&shared));
    CHECK_OK(cio_condition_new(shared, &cond));
    run_main(cond_shared_lock);
    CHECK_STR(order, "s");
    CHECK_OK(cio_condition_free(cond)); /* leaves the caller's lock alone */
    CHECK(!cio_lock_locked(shared));
    CHECK_OK(cio_lock_free(shared));
}

static void *cond_errors(void *arg) {
    (void)arg;
    /* Without the lock: asyncio's RuntimeError. */
    CHECK_ERR(cio_condition_wait(cond), -CIO_EINVALSTATE);
    CHECK_ERR(cio_condition_wait_until(cond, now() + 1), -CIO_EINVALSTATE);
    CHECK_ERR(cio_condition_notify(cond, 1), -CIO_EINVALSTATE);
    CHECK_ERR(cio_condition_notify_all(cond), -CIO_EINVALSTATE);
    CHECK_ERR(cio_condition_release(cond), -CIO_EINVALSTATE);
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_ERR(cio_condition_notify(cond, -1), -EINVAL);
    CHECK_OK(cio_condition_release(cond));
    return NULL;
}

TEST(condition_bad_arguments_and_states) {
    CHECK_ERR(cio_condition_new(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_condition_acquire(NULL), -EINVAL);
    CHECK_ERR(cio_condition_release(NULL), -EINVAL);
    CHECK(!cio_condition_locked(NULL));
    CHECK_ERR(cio_condition_wait(NULL), -EINVAL);
    CHECK_ERR(cio_condition_wait_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_condition_wait_for(NULL, counter_reached_3, &counter), -EINVAL);
    CHECK_ERR(cio_condition_notify(NULL, 1), -EINVAL);
    CHECK_ERR(cio_condition_notify_all(NULL), -EINVAL);
    CHECK_OK(cio_condition_free(NULL));
    /* Either allocation failing leaves nothing behind. */
    for (int nth = 1; nth <= 2; nth++) {
        cio_condition *c = (cio_condition *)1;
        cio__fault_arm(nth);
        CHECK_ERR(cio_condition_new(NULL, &c), -ENOMEM);
        cio__fault_arm(0);
        CHECK(c == NULL);
    }
    CHECK_OK(cio_condition_new(NULL, &cond));
    run_main(cond_errors);
    CHECK_OK(cio_condition_free(cond));
}

/* ---- Semaphore --------------------------------------------------------- */

static cio_semaphore *sem;
static int inside, max_inside;

static void *sem_user(void *arg) {
    int rc = cio_semaphore_acquire(sem);
    if (rc < 0) return cio_raise(rc);
    inside++;
    if (inside > max_inside) max_inside = inside;
    note((char)PTRI(arg));
    rc = cio_sleep(0.002);
    inside--;
    CHECK_OK(cio_semaphore_release(sem));
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *sem_fifo(void *arg) {
    (void)arg;
    inside = max_inside = 0;
    cio_task *t[6];
    for (int i = 0; i < 6; i++) t[i] = spawn(sem_user, IPTR('a' + i));
    settle(1);
    CHECK(cio_semaphore_locked(sem));
    CHECK_EQ(cio_semaphore_value(sem), 0);
    for (int i = 0; i < 6; i++) CHECK_OK(finish(t[i]));
    CHECK_EQ(max_inside, 2);
    CHECK_EQ(cio_semaphore_value(sem), 2);
    CHECK(!cio_semaphore_locked(sem));
    return NULL;
}

TEST(semaphore_admits_value_tasks_in_fifo_order) {
    CHECK_OK(cio_semaphore_new(2, &sem));
    run_main(sem_fifo);
    CHECK_STR(order, "abcdef");
    CHECK_OK(cio_semaphore_free(sem));
}

static void *sem_no_barging(void *arg) {
    (void)arg;
    CHECK_OK(cio_semaphore_acquire(sem)); /* value 1 -> 0 */
    CHECK(cio_semaphore_locked(sem));
    cio_task *w = spawn(sem_user, IPTR('W'));
    settle(1);
    CHECK_OK(cio_semaphore_release(sem)); /* reserved for W */
    CHECK_EQ(cio_semaphore_value(sem), 0);
    CHECK_OK(cio_semaphore_release(sem)); /* a free permit now */
    CHECK_EQ(cio_semaphore_value(sem), 1);
    /* asyncio: a woken waiter that has not run still counts as a waiter,
     * so the semaphore is locked and a newcomer queues behind it. */
    CHECK(cio_semaphore_locked(sem));
    CHECK_OK(cio_semaphore_acquire(sem));
    note('M');
    CHECK_OK(cio_semaphore_release(sem));
    CHECK_OK(finish(w));
    CHECK_EQ(cio_semaphore_value(sem), 2);
    return NULL;
}

TEST(semaphore_newcomer_waits_behind_a_woken_waiter) {
    CHECK_OK(cio_semaphore_new(1, &sem));
    run_main(sem_no_barging);
    CHECK_STR(order, "WM");
    CHECK_OK(cio_semaphore_free(sem));
}

static void *sem_cancel_woken(void *arg) {
    (void)arg;
    CHECK_OK(cio_semaphore_acquire(sem)); /* value 1 -> 0 */
    cio_task *t[3];
    for (int i = 0; i < 3; i++) t[i] = spawn(sem_user, IPTR('a' + i));
    settle(1);
    CHECK_OK(cio_semaphore_release(sem)); /* handed to a */
    CHECK_EQ(cio_task_cancel(t[0], NULL), 1);
    CHECK_ERR(finish(t[0]), -ECANCELED);
    CHECK_OK(finish(t[1]));
    CHECK_OK(finish(t[2]));
    CHECK_EQ(cio_semaphore_value(sem), 1); /* no permit lost or made up */
    CHECK(!cio_semaphore_locked(sem));
    return NULL;
}

TEST(semaphore_woken_then_cancelled_waiter_passes_the_permit_on) {
    CHECK_OK(cio_semaphore_new(1, &sem));
    run_main(sem_cancel_woken);
    CHECK_STR(order, "bc");
    CHECK_OK(cio_semaphore_free(sem));
}

static void *sem_timed_user(void *arg) {
    int rc = cio_semaphore_acquire_until(sem, now() + 0.01);
    if (rc < 0) return cio_raise(rc);
    note((char)PTRI(arg));
    CHECK_OK(cio_semaphore_release(sem));
    return NULL;
}

static void *sem_deadlines(void *arg) {
    (void)arg;
    CHECK_OK(cio_semaphore_acquire_until(sem, now() - 1)); /* free: at once */
    CHECK_ERR(cio_semaphore_acquire_until(sem, now() - 1), -ETIMEDOUT);
    CHECK_ERR(cio_semaphore_acquire_until(sem, NAN), -EINVAL);
    cio_task *a = spawn(sem_user, IPTR('a'));
    cio_task *t = spawn(sem_timed_user, IPTR('t'));
    cio_task *b = spawn(sem_user, IPTR('b'));
    CHECK_OK(cio_sleep(0.03));
    CHECK_ERR(finish(t), -ETIMEDOUT);
    CHECK_EQ(cio_semaphore_value(sem), 0);
    CHECK_OK(cio_semaphore_release(sem));
    CHECK_OK(finish(a));
    CHECK_OK(finish(b));
    CHECK_EQ(cio_semaphore_value(sem), 1);
    return NULL;
}

TEST(semaphore_deadlines_give_up_nothing_held) {
    CHECK_OK(cio_semaphore_new(1, &sem));
    run_main(sem_deadlines);
    CHECK_STR(order, "ab");
    CHECK_OK(cio_semaphore_free(sem));
}

static void *bounded_round(void *arg) {
    (void)arg;
    CHECK_ERR(cio_semaphore_release(sem), -CIO_EINVALSTATE); /* asyncio: ValueError */
    CHECK_EQ(cio_semaphore_value(sem), 2);
    CHECK_OK(cio_semaphore_acquire(sem));
    CHECK_OK(cio_semaphore_release(sem));
    CHECK_ERR(cio_semaphore_release(sem), -CIO_EINVALSTATE);
    CHECK_OK(cio_semaphore_acquire(sem));
    CHECK_OK(cio_semaphore_acquire(sem));
    CHECK(cio_semaphore_locked(sem));
    /* A permit reserved for a woken waiter that has not run yet is not
     * free: releasing it a second time is still an over-release. */
    cio_task *w = spawn(sem_user, IPTR('w'));
    settle(1);
    CHECK_OK(cio_semaphore_release(sem)); /* to w */
    CHECK_OK(cio_semaphore_release(sem)); /* ours */
    CHECK_ERR(cio_semaphore_release(sem), -CIO_EINVALSTATE);
    CHECK_OK(finish(w));
    CHECK_EQ(cio_semaphore_value(sem), 2);
    CHECK_ERR(cio_semaphore_release(sem), -CIO_EINVALSTATE);
    return NULL;
}

TEST(bounded_semaphore_refuses_over_release) {
    CHECK_OK(cio_bounded_semaphore_new(2, &sem));
    run_main(bounded_round);
    CHECK_STR(order, "w");
    CHECK_OK(cio_semaphore_free(sem));
}

TEST(semaphore_bad_arguments) {
    cio_semaphore *s = (cio_semaphore *)1;
    CHECK_ERR(cio_semaphore_new(-1, &s), -EINVAL);
    CHECK(s == NULL);
    s = (cio_semaphore *)1;
    CHECK_ERR(cio_bounded_semaphore_new(-1, &s), -EINVAL);
    CHECK(s == NULL);
    CHECK_ERR(cio_semaphore_new(1, NULL), -EINVAL);
    CHECK_ERR(cio_bounded_semaphore_new(1, NULL), -EINVAL);
    CHECK_ERR(cio_semaphore_acquire(NULL), -EINVAL);
    CHECK_ERR(cio_semaphore_acquire_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_semaphore_release(NULL), -EINVAL);
    CHECK(!cio_semaphore_locked(NULL));
    CHECK_ERR(cio_semaphore_value(NULL), -EINVAL);
    CHECK_OK(cio_semaphore_free(NULL));
    s = (cio_semaphore *)1;
    cio__fault_arm(1);
    CHECK_ERR(cio_semaphore_new(1, &s), -ENOMEM);
    cio__fault_arm(0);
    CHECK(s == NULL);
    /* A semaphore of value 0 is locked from the start. */
    CHECK_OK(cio_semaphore_new(0, &s));
    CHECK(cio_semaphore_locked(s));
    CHECK_OK(cio_semaphore_release(s));
    CHECK(!cio_semaphore_locked(s));
    CHECK_OK(cio_semaphore_free(s));
    cio_loop *loop = test_loop();
    cio_loop_free(loop);
}

/* ---- Barrier ----------------------------------------------------------- */

static cio_barrier *barrier;
static int indices[8];

/* Arrives at once and records its index. */
static void *barrier_now(void *arg) {
    int rc = cio_barrier_wait(barrier);
    indices[PTRI(arg)] = rc;
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *barrier_rounds(void *arg) {
    (void)arg;
    CHECK_EQ(cio_barrier_parties(barrier), 3);
    for (int round = 0; round < 3; round++) {
        cio_task *t[3];
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(cio_barrier_n_waiting(barrier), i);
            t[i] = spawn(barrier_now, IPTR(i));
            settle(1);
        }
        for (int i = 0; i < 3; i++) CHECK_OK(finish(t[i]));
        /* Arrival order 0, 1, 2 gives indices 0, 1, 2. */
        for (int i = 0; i < 3; i++) CHECK_EQ(indices[i], i);
        CHECK_EQ(cio_barrier_n_waiting(barrier), 0);
        CHECK(!cio_barrier_broken(barrier));
    }
    return NULL;
}

TEST(barrier_returns_arrival_indices_round_after_round) {
    CHECK_OK(cio_barrier_new(3, &barrier));
    run_main(barrier_rounds);
    CHECK_OK(cio_barrier_free(barrier));
    /* One party: never waits. */
    CHECK_OK(cio_barrier_new(1, &barrier));
    cio_loop *loop = test_loop();
    void *rc;
    CHECK_OK(test_run(loop, barrier_now, IPTR(0), &rc));
    CHECK_EQ(indices[0], 0);
    CHECK_OK(cio_barrier_free(barrier));
    cio_loop_free(loop);
}

static void *barrier_abort(void *arg) {
    (void)arg;
    cio_task *t[2];
    for (int i = 0; i < 2; i++) t[i] = spawn(barrier_now, IPTR(i));
    settle(1);
    CHECK_EQ(cio_barrier_n_waiting(barrier), 2);
    CHECK_OK(cio_barrier_abort(barrier));
    CHECK(cio_barrier_broken(barrier));
    CHECK_EQ(cio_barrier_n_waiting(barrier), 0);
    for (int i = 0; i < 2; i++) CHECK_ERR(finish(t[i]), -CIO_EBROKEN);
    /* Broken until reset: later waits fail at once. */
    CHECK_ERR(cio_barrier_wait(barrier), -CIO_EBROKEN);
    CHECK_ERR(cio_barrier_wait_until(barrier, now() + 1), -CIO_EBROKEN);
    CHECK_OK(cio_barrier_abort(barrier));
    CHECK_OK(cio_barrier_reset(barrier));
    CHECK(!cio_barrier_broken(barrier));
    /* Usable again. */
    for (int i = 0; i < 2; i++) t[i] = spawn(barrier_now, IPTR(i));
    settle(1);
    CHECK_EQ(cio_barrier_wait(barrier), 2);
    for (int i = 0; i < 2; i++) CHECK_OK(finish(t[i]));
    CHECK_EQ(indices[0], 0);
    CHECK_EQ(indices[1], 1);
    return NULL;
}

TEST(barrier_abort_breaks_waiters_and_later_waits_until_reset) {
    CHECK_OK(cio_barrier_new(3, &barrier));
    run_main(barrier_abort);
    CHECK_OK(cio_barrier_free(barrier));
}

static void *barrier_reset(void *arg) {
    (void)arg;
    cio_task *t[4];
    for (int i = 0; i < 2; i++) t[i] = spawn(barrier_now, IPTR(i));
    settle(1);
    CHECK_OK(cio_barrier_reset(barrier));
    CHECK(!cio_barrier_broken(barrier));
    /* A newcomer while the broken waiters are still leaving waits at the
     * entrance, then joins the next round. */
    t[2] = spawn_eager(barrier_now, IPTR(2));
    CHECK(!cio_future_done(t[2]));
    CHECK_EQ(cio_barrier_n_waiting(barrier), 0);
    for (int i = 0; i < 2; i++) CHECK_ERR(finish(t[i]), -CIO_EBROKEN);
    settle(1);
    CHECK_EQ(cio_barrier_n_waiting(barrier), 1);
    t[3] = spawn(barrier_now, IPTR(3));
    settle(1);
    CHECK_EQ(cio_barrier_wait(barrier), 2);
    CHECK_OK(finish(t[2]));
    CHECK_OK(finish(t[3]));
    CHECK_EQ(indices[2], 0);
    CHECK_EQ(indices[3], 1);
    /* Reset with nobody inside changes nothing. */
    CHECK_OK(cio_barrier_reset(barrier));
    CHECK_EQ(cio_barrier_n_waiting(barrier), 0);
    return NULL;
}

TEST(barrier_reset_breaks_the_tasks_inside) {
    CHECK_OK(cio_barrier_new(3, &barrier));
    run_main(barrier_reset);
    CHECK_OK(cio_barrier_free(barrier));
}

static void *barrier_cancel_filling(void *arg) {
    (void)arg;
    cio_task *a = spawn(barrier_now, IPTR(0));
    cio_task *b = spawn(barrier_now, IPTR(1));
    settle(1);
    CHECK_EQ(cio_barrier_n_waiting(barrier), 2);
    /* As asyncio: a cancelled task leaves, the barrier is not broken, and
     * the others keep waiting. */
    CHECK_EQ(cio_task_cancel(a, NULL), 1);
    CHECK_ERR(finish(a), -ECANCELED);
    CHECK(!cio_barrier_broken(barrier));
    CHECK_EQ(cio_barrier_n_waiting(barrier), 1);
    CHECK(!cio_future_done(b));
    /* The count went down, so the next arrival gets index 1 as b did. */
    cio_task *c = spawn(barrier_now, IPTR(2));
    settle(1);
    CHECK_EQ(cio_barrier_wait(barrier), 2);
    CHECK_OK(finish(b));
    CHECK_OK(finish(c));
    CHECK_EQ(indices[1], 1);
    CHECK_EQ(indices[2], 1);
    /* A timeout while filling is the same. */
    CHECK_ERR(cio_barrier_wait_until(barrier, now() + 0.005), -ETIMEDOUT);
    CHECK(!cio_barrier_broken(barrier));
    CHECK_EQ(cio_barrier_n_waiting(barrier), 0);
    CHECK_ERR(cio_barrier_wait_until(barrier, NAN), -EINVAL);
    return NULL;
}

TEST(barrier_cancelled_or_timed_out_waiter_leaves_it_unbroken) {
    CHECK_OK(cio_barrier_new(3, &barrier));
    run_main(barrier_cancel_filling);
    CHECK_OK(cio_barrier_free(barrier));
}

static void *barrier_cancel_draining(void *arg) {
    (void)arg;
    cio_task *a = spawn(barrier_now, IPTR(0));
    cio_task *b = spawn(barrier_now, IPTR(1));
    settle(1);
    CHECK_EQ(cio_barrier_wait(barrier), 2); /* trips: a and b are woken */
    /* a is cancelled before it runs: it returns -ECANCELED, b its index. */
    CHECK_EQ(cio_task_cancel(a, NULL), 1);
    CHECK_EQ(cio_barrier_n_waiting(barrier), 0); /* draining */
    /* A newcomer during draining waits until a and b have left. */
    cio_task *e = spawn_eager(barrier_now, IPTR(4));
    CHECK(!cio_future_done(e));
    CHECK_ERR(finish(a), -ECANCELED);
    CHECK_OK(finish(b));
    CHECK_EQ(indices[1], 1);
    settle(1);
    CHECK_EQ(cio_barrier_n_waiting(barrier), 1);
    cio_task *f = spawn(barrier_now, IPTR(5));
    cio_task *g = spawn(barrier_now, IPTR(6));
    CHECK_OK(finish(e));
    CHECK_OK(finish(f));
    CHECK_OK(finish(g));
    CHECK_EQ(indices[4], 0);
    CHECK_EQ(indices[5], 1);
    CHECK_EQ(indices[6], 2);
    /* The deadline also covers the wait at the entrance of a draining
     * barrier. */
    a = spawn(barrier_now, IPTR(0));
    b = spawn(barrier_now, IPTR(1));
    settle(1);
    CHECK_EQ(cio_barrier_wait(barrier), 2);
    CHECK_ERR(cio_barrier_wait_until(barrier, now() - 1), -ETIMEDOUT);
    CHECK_OK(finish(a));
    CHECK_OK(finish(b));
    CHECK_EQ(cio_barrier_n_waiting(barrier), 0);
    return NULL;
}

TEST(barrier_woken_then_cancelled_waiter_still_drains) {
    CHECK_OK(cio_barrier_new(3, &barrier));
    run_main(barrier_cancel_draining);
    CHECK_OK(cio_barrier_free(barrier));
}

TEST(barrier_bad_arguments) {
    cio_barrier *b = (cio_barrier *)1;
    CHECK_ERR(cio_barrier_new(0, &b), -EINVAL);
    CHECK(b == NULL);
    CHECK_ERR(cio_barrier_new(-3, &b), -EINVAL);
    CHECK_ERR(cio_barrier_new(1, NULL), -EINVAL);
    CHECK_ERR(cio_barrier_wait(NULL), -EINVAL);
    CHECK_ERR(cio_barrier_wait_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_barrier_reset(NULL), -EINVAL);
    CHECK_ERR(cio_barrier_abort(NULL), -EINVAL);
    CHECK_ERR(cio_barrier_parties(NULL), -EINVAL);
    CHECK_ERR(cio_barrier_n_waiting(NULL), -EINVAL);
    CHECK(!cio_barrier_broken(NULL));
    CHECK_OK(cio_barrier_free(NULL));
    b = (cio_barrier *)1;
    cio__fault_arm(1);
    CHECK_ERR(cio_barrier_new(2, &b), -ENOMEM);
    cio__fault_arm(0);
    CHECK(b == NULL);
    cio_loop *loop = test_loop();
    cio_loop_free(loop);
}

/* ---- rules shared by every primitive ------------------------------------ */

TEST(waiting_calls_outside_a_task_are_eperm) {
    cio_loop *loop = test_loop();
    cio_lock *l;
    cio_event *e;
    cio_condition *c;
    cio_semaphore *s;
    cio_barrier *b;
    CHECK_OK(cio_lock_new(&l));
    CHECK_OK(cio_event_new(&e));
    CHECK_OK(cio_condition_new(NULL, &c));
    CHECK_OK(cio_semaphore_new(1, &s));
    CHECK_OK(cio_barrier_new(1, &b));
    /* Even calls that would not have to wait. */
    CHECK_ERR(cio_lock_acquire(l), -EPERM);
    CHECK_ERR(cio_lock_acquire_until(l, 0), -EPERM);
    CHECK_OK(cio_event_set(e));
    CHECK_ERR(cio_event_wait(e), -EPERM);
    CHECK_ERR(cio_event_wait_until(e, 0), -EPERM);
    CHECK_ERR(cio_condition_acquire(c), -EPERM);
    CHECK_ERR(cio_condition_wait(c), -EPERM);
    CHECK_ERR(cio_condition_wait_until(c, 0), -EPERM);
    CHECK_ERR(cio_condition_wait_for(c, counter_reached_3, &counter), -EPERM);
    CHECK_ERR(cio_semaphore_acquire(s), -EPERM);
    CHECK_ERR(cio_semaphore_acquire_until(s, 0), -EPERM);
    CHECK_ERR(cio_barrier_wait(b), -EPERM);
    CHECK_ERR(cio_barrier_wait_until(b, 0), -EPERM);
    CHECK(!cio_lock_locked(l));
    CHECK_EQ(cio_semaphore_value(s), 1);
    CHECK_EQ(cio_barrier_n_waiting(b), 0);
    CHECK_OK(cio_lock_free(l));
    CHECK_OK(cio_event_free(e));
    CHECK_OK(cio_condition_free(c));
    CHECK_OK(cio_semaphore_free(s));
    CHECK_OK(cio_barrier_free(b));
    cio_loop_free(loop);
}

static cio_event *bind_event;

/* Takes (or waits on) every primitive once, binding it to this loop. */
static void *bind_all(void *arg) {
    (void)arg;
    CHECK_OK(cio_lock_acquire(lock));
    CHECK_OK(cio_event_set(bind_event));
    CHECK_OK(cio_event_wait(bind_event));
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_ERR(cio_condition_wait_until(cond, now() - 1), -ETIMEDOUT);
    CHECK_OK(cio_condition_release(cond));
    CHECK_OK(cio_semaphore_acquire(sem));
    CHECK_EQ(cio_barrier_wait(barrier), 0);
    return NULL;
}

/* From another loop, every call that waits or wakes is refused. */
static void *use_from_other_loop(void *arg) {
    (void)arg;
    CHECK_ERR(cio_lock_acquire(lock), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_lock_acquire_until(lock, now() + 1), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_lock_release(lock), -CIO_EWRONGLOOP);
    CHECK(cio_lock_locked(lock));
    CHECK_ERR(cio_event_wait(bind_event), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_event_wait_until(bind_event, now() + 1), -CIO_EWRONGLOOP);
    CHECK_OK(cio_event_clear(bind_event));
    CHECK_ERR(cio_event_set(bind_event), -CIO_EWRONGLOOP);
    CHECK(!cio_event_is_set(bind_event));
    CHECK_ERR(cio_condition_acquire(cond), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_condition_wait(cond), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_condition_wait_for(cond, counter_reached_3, &counter), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_semaphore_acquire(sem), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_semaphore_acquire_until(sem, now() + 1), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_semaphore_release(sem), -CIO_EWRONGLOOP);
    CHECK_EQ(cio_semaphore_value(sem), 1);
    CHECK_ERR(cio_barrier_wait(barrier), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_barrier_wait_until(barrier, now() + 1), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_barrier_reset(barrier), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_barrier_abort(barrier), -CIO_EWRONGLOOP);
    CHECK(!cio_barrier_broken(barrier));
    return NULL;
}

TEST(primitives_belong_to_the_loop_that_first_used_them) {
    cio_loop *a = test_loop(), *b = test_loop();
    CHECK_OK(cio_lock_new(&lock));
    CHECK_OK(cio_event_new(&bind_event));
    CHECK_OK(cio_condition_new(NULL, &cond));
    CHECK_OK(cio_semaphore_new(2, &sem));
    CHECK_OK(cio_barrier_new(1, &barrier));
    CHECK_OK(test_run(a, bind_all, NULL, NULL));
    CHECK_OK(test_run(b, use_from_other_loop, NULL, NULL));
    /* Outside any running loop, releasing is allowed again. */
    CHECK_OK(cio_lock_release(lock));
    CHECK_OK(cio_semaphore_release(sem));
    CHECK_EQ(cio_semaphore_value(sem), 2);
    CHECK_OK(cio_lock_free(lock));
    CHECK_OK(cio_event_free(bind_event));
    CHECK_OK(cio_condition_free(cond));
    CHECK_OK(cio_semaphore_free(sem));
    CHECK_OK(cio_barrier_free(barrier));
    cio_loop_free(a);
    cio_loop_free(b);
}

/* ---- freeing while tasks wait ------------------------------------------- */

static int refused;

static void count_refusals(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)arg;
    CHECK(strstr(ctx->message, "not freed") != NULL);
    CHECK_ERR(ctx->error, -EBUSY);
    refused++;
}

static void *wait_event_once(void *arg) {
    (void)arg;
    return IPTR(cio_event_wait(event));
}

static void *free_while_waited(void *arg) {
    (void)arg;
    CHECK_OK(cio_loop_set_exception_handler(cio_running_loop(), count_refusals, NULL));
    CHECK_OK(cio_lock_acquire(lock));
    CHECK_OK(cio_semaphore_acquire(sem));
    CHECK_OK(cio_condition_acquire(cond));
    cio_task *t[5];
    t[0] = spawn(locker, IPTR('l'));
    t[1] = spawn(sem_user, IPTR('s'));
    t[2] = spawn(cond_waiter, IPTR('c'));
    t[3] = spawn(barrier_now, IPTR(0));
    t[4] = spawn(wait_event_once, NULL);
    settle(1);
    /* Every one of them is refused, and stays usable. */
    CHECK_ERR(cio_lock_free(lock), -EBUSY);
    CHECK_ERR(cio_semaphore_free(sem), -EBUSY);
    CHECK_ERR(cio_condition_free(cond), -EBUSY);
    CHECK_ERR(cio_barrier_free(barrier), -EBUSY);
    CHECK_ERR(cio_event_free(event), -EBUSY);
    CHECK_EQ(refused, 5);
    /* Woken but not yet run: still refused, the tasks will touch them. */
    CHECK_OK(cio_lock_release(lock));
    CHECK_OK(cio_semaphore_release(sem));
    CHECK_OK(cio_condition_notify(cond, 1));
    CHECK_OK(cio_condition_release(cond));
    CHECK_ERR(cio_lock_free(lock), -EBUSY);
    CHECK_ERR(cio_semaphore_free(sem), -EBUSY);
    CHECK_ERR(cio_condition_free(cond), -EBUSY);
    CHECK_EQ(refused, 8);
    /* The barrier trips with us; we are out, the other task is not yet. */
    CHECK_EQ(cio_barrier_wait(barrier), 1);
    CHECK_ERR(cio_barrier_free(barrier), -EBUSY);
    CHECK_EQ(refused, 9);
    /* An event whose waiters were all woken can go at once: they never
     * touch it again. */
    CHECK_OK(cio_event_set(event));
    CHECK_OK(cio_event_free(event));
    event = NULL;
    CHECK_EQ(refused, 9);
    CHECK_OK(finish(t[0]));
    CHECK_OK(finish(t[1]));
    CHECK_OK(finish(t[3]));
    notify_and_let_run(1); /* t[2] waits on the condition by now */
    CHECK_OK(finish(t[2]));
    void *res;
    CHECK_OK(cio_await(t[4], &res));
    CHECK_OK(PTRI(res));
    cio_future_unref(t[4]);
    return NULL;
}

TEST(freeing_a_primitive_tasks_wait_on_is_refused) {
    CHECK_OK(cio_lock_new(&lock));
    CHECK_OK(cio_semaphore_new(1, &sem));
    CHECK_OK(cio_condition_new(NULL, &cond));
    CHECK_OK(cio_barrier_new(2, &barrier));
    CHECK_OK(cio_event_new(&event));
    refused = 0;
    run_main(free_while_waited);
    CHECK_STR(order, "lsc");
    /* Once the tasks are gone, they free normally (LSan checks). */
    CHECK_OK(cio_lock_free(lock));
    CHECK_OK(cio_semaphore_free(sem));
    CHECK_OK(cio_condition_free(cond));
    CHECK_OK(cio_barrier_free(barrier));
    CHECK_EQ(refused, 9);
}

static void *hold_lock_and_queue_a_waiter(void *arg) {
    CHECK_OK(cio_lock_acquire(lock));
    *(cio_task **)arg = spawn(locker, IPTR('q'));
    settle(1);
    return NULL;
}

TEST(freeing_outside_the_loop_is_refused_too) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_loop_set_exception_handler(loop, count_refusals, NULL));
    reset_order();
    refused = 0;
    CHECK_OK(cio_lock_new(&lock));
    cio_task *waiter = NULL;
    CHECK_OK(test_run(loop, hold_lock_and_queue_a_waiter, &waiter, NULL));
    /* The loop is not running: the refusal goes to the default handler
     * (stderr), and the lock stays usable. */
    CHECK_ERR(cio_lock_free(lock), -EBUSY);
    CHECK_EQ(refused, 0);
    CHECK(cio_lock_locked(lock));
    CHECK_OK(cio_lock_release(lock));
    CHECK_OK(cio_run_until_complete(loop, waiter, NULL));
    cio_future_unref(waiter);
    CHECK_STR(order, "q");
    CHECK_OK(cio_lock_free(lock));
    cio_loop_free(loop);
}

/* ---- stress ------------------------------------------------------------ */

static uint64_t rng;
static unsigned rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

/*
 * Wait tickets. A task takes a ticket when it starts waiting on something
 * and drops it when the call returns. Since every primitive wakes in FIFO
 * order, the waiter with the smallest ticket is the one a release (or a
 * notify) just woke, if it has not run yet: cancelling it right away hits
 * the hand-off case, which random cancellations alone rarely do.
 */
#define STRESS_TASKS 40
#define STRESS_PERMITS 3

static cio_task *stress_tasks[STRESS_TASKS];
static unsigned long next_ticket;

/* Cancels the waiter holding the smallest ticket in tickets[], if any;
 * returns 1 if a cancellation was delivered. */
static int cancel_first_waiter(const unsigned long *tickets, int from, int to) {
    int first = -1;
    for (int i = from; i < to; i++)
        if (tickets[i] && (first < 0 || tickets[i] < tickets[first])) first = i;
    return first >= 0 && cio_task_cancel(stress_tasks[first], NULL) == 1;
}

static unsigned long lock_tickets[STRESS_TASKS], sem_tickets[STRESS_TASKS];
static int holders, sem_holders, targeted;
static long lock_grants, lock_releases, permit_grants, permit_releases;

/* Even contenders shrug off a cancellation (asyncio: catch CancelledError
 * and uncancel()) and go on; odd ones end. */
static int shrug_off(int me, int rc) {
    if (rc != -ECANCELED || me % 2) return 0;
    cio_task_uncancel(cio_current_task());
    return 1;
}

/* Each round takes either the lock or a permit, so both are contended. */
static void *contender(void *arg) {
    int me = PTRI(arg);
    for (int i = 0; i < 60; i++) {
        if (rnd() % 2) {
            lock_tickets[me] = ++next_ticket;
            int rc = rnd() % 4 ? cio_lock_acquire(lock)
                               : cio_lock_acquire_until(lock, now() + (rnd() % 3) * 0.0002);
            lock_tickets[me] = 0;
            if (rc == -ETIMEDOUT || shrug_off(me, rc)) continue;
            if (rc < 0) return cio_raise(rc);
            CHECK_EQ(++holders, 1); /* mutual exclusion */
            lock_grants++;
            rc = cio_sleep(rnd() % 3 ? 0 : 0.0001);
            holders--;
            lock_releases++;
            CHECK_OK(cio_lock_release(lock));
            if (rnd() % 3 == 0) targeted += cancel_first_waiter(lock_tickets, 0, STRESS_TASKS);
            if (shrug_off(me, rc)) continue;
            if (rc < 0) return cio_raise(rc);
        } else {
            sem_tickets[me] = ++next_ticket;
            int rc = rnd() % 4 ? cio_semaphore_acquire(sem)
                               : cio_semaphore_acquire_until(sem, now() + (rnd() % 3) * 0.0002);
            sem_tickets[me] = 0;
            if (rc == -ETIMEDOUT || shrug_off(me, rc)) continue;
            if (rc < 0) return cio_raise(rc);
            CHECK_INT(++sem_holders, <=, STRESS_PERMITS);
            permit_grants++;
            rc = cio_sleep(rnd() % 3 ? 0 : 0.0001);
            sem_holders--;
            permit_releases++;
            CHECK_OK(cio_semaphore_release(sem));
            if (rnd() % 3 == 0) targeted += cancel_first_waiter(sem_tickets, 0, STRESS_TASKS);
            if (shrug_off(me, rc)) continue;
            if (rc < 0) return cio_raise(rc);
        }
    }
    return NULL;
}

static void *stress_lock_sem(void *arg) {
    (void)arg;
    for (int i = 0; i < STRESS_TASKS; i++) stress_tasks[i] = spawn(contender, IPTR(i));
    /* Random cancellations from outside, too. */
    for (int k = 0; k < 60; k++) {
        CHECK_OK(cio_sleep(0.0003));
        cio_task_cancel(stress_tasks[rnd() % STRESS_TASKS], NULL);
    }
    int ok = 0;
    for (int i = 0; i < STRESS_TASKS; i++) {
        int rc = finish(stress_tasks[i]);
        CHECK(rc == 0 || rc == -ECANCELED);
        ok += rc == 0;
    }
    CHECK_INT(ok, >, 0);
    CHECK_EQ(holders, 0);
    CHECK_EQ(sem_holders, 0);
    CHECK_EQ(lock_grants, lock_releases);
    CHECK_EQ(permit_grants, permit_releases);
    /* Nothing was lost or made up. */
    CHECK(!cio_lock_locked(lock));
    CHECK_EQ(cio_semaphore_value(sem), STRESS_PERMITS);
    CHECK(!cio_semaphore_locked(sem));
    CHECK_OK(cio_lock_acquire(lock));
    CHECK_OK(cio_lock_release(lock));
    for (int i = 0; i < STRESS_PERMITS; i++) CHECK_OK(cio_semaphore_acquire(sem));
    CHECK(cio_semaphore_locked(sem));
    for (int i = 0; i < STRESS_PERMITS; i++) CHECK_OK(cio_semaphore_release(sem));
    return NULL;
}

TEST(stress_random_cancels_lose_no_lock_or_permit) {
    rng = 88172645463325252u;
    holders = sem_holders = targeted = 0;
    next_ticket = 0;
    lock_grants = lock_releases = permit_grants = permit_releases = 0;
    CHECK_OK(cio_lock_new(&lock));
    CHECK_OK(cio_bounded_semaphore_new(STRESS_PERMITS, &sem));
    run_main(stress_lock_sem);
    CHECK_INT(targeted, >, 100);
    CHECK_INT(lock_grants, >, 300);
    CHECK_INT(permit_grants, >, 300);
    CHECK_OK(cio_lock_free(lock));
    CHECK_OK(cio_semaphore_free(sem));
}

#define CONSUMERS 20
#define STEADY 4 /* consumers 0..3 are never cancelled */

static unsigned long cond_tickets[CONSUMERS];
static int items, produced, consumed, producers_done;

static int item_or_done(void *arg) {
    (void)arg;
    return items > 0 || producers_done;
}

/* Takes items until the producers are done. A steady consumer only waits
 * for notifications; the others sometimes poll with a deadline. */
static void *consumer(void *arg) {
    int me = PTRI(arg);
    for (;;) {
        int rc = cio_condition_acquire(cond);
        if (rc < 0) return cio_raise(rc);
        cond_tickets[me] = ++next_ticket;
        rc = me < STEADY || rnd() % 4 ? cio_condition_wait_for(cond, item_or_done, NULL)
                                      : cio_condition_wait_until(cond, now() + 0.0003);
        cond_tickets[me] = 0;
        /* Whatever happened, the lock is ours again. */
        CHECK(cio_condition_locked(cond));
        int stop = rc < 0 && rc != -ETIMEDOUT;
        if (!stop && items > 0) {
            items--;
            consumed++;
        } else if (!stop && producers_done) {
            stop = 1;
        }
        CHECK_OK(cio_condition_release(cond));
        if (stop) return rc < 0 ? cio_raise(rc) : NULL;
    }
}

static void *producer(void *arg) {
    (void)arg;
    for (int i = 0; i < 100; i++) {
        CHECK_OK(cio_condition_acquire(cond));
        items++;
        produced++;
        CHECK_OK(cio_condition_notify(cond, 1));
        /* Cancel the consumer just notified, unless it is a steady one. */
        if (rnd() % 4 == 0) targeted += cancel_first_waiter(cond_tickets, STEADY, CONSUMERS);
        CHECK_OK(cio_condition_release(cond));
        CHECK_OK(cio_sleep(rnd() % 4 ? 0 : 0.0001));
    }
    return NULL;
}

static void *stress_cond(void *arg) {
    (void)arg;
    cio_task *p[4];
    for (int i = 0; i < CONSUMERS; i++) stress_tasks[i] = spawn(consumer, IPTR(i));
    for (int i = 0; i < 4; i++) p[i] = spawn(producer, NULL);
    for (int i = 0; i < 4; i++) CHECK_OK(finish(p[i]));
    /* Cancel every consumer that may poll with a deadline. */
    for (int i = STEADY; i < CONSUMERS; i++) {
        cio_task_cancel(stress_tasks[i], NULL);
        CHECK_ERR(finish(stress_tasks[i]), -ECANCELED);
    }
    /* The steady ones only wait for notifications: had one been lost to a
     * cancelled consumer, an item would stay behind while they sleep. */
    for (int k = 0; k < 1000 && items > 0; k++) CHECK_OK(cio_sleep(0.001));
    CHECK_EQ(items, 0);
    CHECK_EQ(produced, 400);
    CHECK_EQ(consumed, produced);
    CHECK_OK(cio_condition_acquire(cond));
    producers_done = 1;
    CHECK_OK(cio_condition_notify_all(cond));
    CHECK_OK(cio_condition_release(cond));
    for (int i = 0; i < STEADY; i++) CHECK_OK(finish(stress_tasks[i]));
    CHECK(!cio_condition_locked(cond));
    return NULL;
}

TEST(stress_condition_random_cancels_lose_no_notification) {
    rng = 0x9E3779B97F4A7C15u;
    items = produced = consumed = producers_done = targeted = 0;
    next_ticket = 0;
    CHECK_OK(cio_condition_new(NULL, &cond));
    run_main(stress_cond);
    CHECK_INT(targeted, >, 5);
    CHECK_OK(cio_condition_free(cond));
}

/* A primitive may outlive its loop (used from outside any loop after
 * that): in debug mode too, where the thread check used to read the freed
 * loop (AddressSanitizer: heap-use-after-free in cio_event_set). */
static void *wait_briefly_on(void *arg) {
    cio_event *ev = arg;
    CHECK_ERR(cio_event_wait_until(ev, cio_loop_time(cio_running_loop()) + 0.001), -ETIMEDOUT);
    return NULL;
}

TEST(a_primitive_of_a_freed_debug_loop_is_still_usable_outside_any_loop) {
    cio_loop_options opts = {.debug = 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    cio_event *ev;
    CHECK_OK(cio_event_new(&ev));
    CHECK_OK(test_run(loop, wait_briefly_on, ev, NULL));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
    CHECK_OK(cio_event_set(ev));
    CHECK(cio_event_is_set(ev));
    CHECK_OK(cio_event_clear(ev));
    CHECK_OK(cio_event_free(ev));
}
