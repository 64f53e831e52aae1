/* Lock, Event, Condition, Semaphore, BoundedSemaphore and Barrier. */
#include "test.h"

#include "internal.h"

static char order[64];
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

/* ---- Lock -------------------------------------------------------------- */

static cio_lock *lock;

static void *locker(void *arg) {
    char name = (char)PTRI(arg);
    int rc = cio_lock_acquire(lock);
    if (rc < 0) return cio_raise(rc);
    note(name);
    CHECK(cio_lock_locked(lock));
    CHECK_OK(cio_sleep(0.002));
    CHECK_OK(cio_lock_release(lock));
    return NULL;
}

static void *lock_fifo(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_lock_acquire(lock));
    cio_task *t[4];
    for (int i = 0; i < 4; i++) CHECK_OK(cio_spawn(loop, locker, IPTR('a' + i), &t[i]));
    CHECK_OK(cio_sleep(0.01)); /* all four queue up behind us */
    CHECK_OK(cio_lock_release(lock));
    /* No barging: a newcomer right after the release waits behind them. */
    CHECK(cio_lock_locked(lock));
    cio_task *late;
    CHECK_OK(cio_spawn(loop, locker, IPTR('z'), &late));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(cio_await(t[i], NULL));
        cio_future_release(t[i]);
    }
    CHECK_OK(cio_await(late, NULL));
    cio_future_release(late);
    CHECK(!cio_lock_locked(lock));
    return NULL;
}

TEST(lock_is_fair_and_never_barged) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_lock_new(&lock));
    reset_order();
    CHECK_OK(test_run(loop, lock_fifo, NULL, NULL));
    CHECK_STR(order, "abcdz");
    cio_lock_free(lock);
    cio_loop_free(loop);
}

static void *cancel_woken_lock_waiter(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_lock_acquire(lock));
    cio_task *a, *b;
    CHECK_OK(cio_spawn(loop, locker, IPTR('a'), &a));
    CHECK_OK(cio_spawn(loop, locker, IPTR('b'), &b));
    CHECK_OK(cio_sleep(0));
    CHECK_OK(cio_sleep(0)); /* both wait */
    /* Release hands the lock to a; cancel a before it runs. */
    CHECK_OK(cio_lock_release(lock));
    CHECK_EQ(cio_task_cancel(a, NULL), 1);
    CHECK_ERR(cio_await(a, NULL), -ECANCELED);
    /* a gave the lock on: b gets it, nothing is lost. */
    CHECK_OK(cio_await(b, NULL));
    CHECK(!cio_lock_locked(lock));
    CHECK_OK(cio_lock_acquire(lock));
    CHECK_OK(cio_lock_release(lock));
    cio_future_release(a);
    cio_future_release(b);
    return NULL;
}

TEST(lock_cancelled_after_hand_off_passes_it_on) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_lock_new(&lock));
    reset_order();
    CHECK_OK(test_run(loop, cancel_woken_lock_waiter, NULL, NULL));
    CHECK_STR(order, "b");
    cio_lock_free(lock);
    cio_loop_free(loop);
}

static void *lock_timeout(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_lock_acquire(lock));
    cio_task *t;
    CHECK_OK(cio_spawn(loop, locker, IPTR('x'), &t));
    CHECK_OK(cio_sleep(0));
    /* A second waiter gives up at its deadline, holding nothing. */
    CHECK_ERR(cio_lock_acquire_until(lock, cio_loop_time(loop) + 0.01), -ETIMEDOUT);
    CHECK_OK(cio_lock_release(lock));
    CHECK_OK(cio_await(t, NULL));
    CHECK(!cio_lock_locked(lock));
    CHECK_ERR(cio_lock_release(lock), -CIO_EINVALSTATE);
    cio_future_release(t);
    return NULL;
}

TEST(lock_deadline_and_errors) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_lock_new(&lock));
    reset_order();
    CHECK_OK(test_run(loop, lock_timeout, NULL, NULL));
    CHECK_STR(order, "x");
    CHECK_ERR(cio_lock_acquire(lock), -EPERM);
    CHECK_ERR(cio_lock_acquire(NULL), -EINVAL);
    CHECK_ERR(cio_lock_new(NULL), -EINVAL);
    cio_lock_free(lock);
    cio_lock_free(NULL);
    cio_loop_free(loop);
}

static void *just_acquire(void *arg) {
    (void)arg;
    return IPTR(cio_lock_acquire(lock));
}

TEST(lock_belongs_to_one_loop) {
    cio_loop *a = test_loop(), *b = test_loop();
    CHECK_OK(cio_lock_new(&lock));
    void *rc;
    CHECK_OK(test_run(a, just_acquire, NULL, &rc));
    CHECK_OK(PTRI(rc));
    CHECK_OK(cio_lock_release(lock));
    CHECK_OK(test_run(b, just_acquire, NULL, &rc));
    CHECK_ERR(PTRI(rc), -CIO_EWRONGLOOP);
    cio_lock_free(lock);
    cio_loop_free(a);
    cio_loop_free(b);
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
    cio_loop *loop = cio_running_loop();
    cio_task *t[3];
    for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, event_waiter, IPTR('a' + i), &t[i]));
    CHECK_OK(cio_sleep(0.005));
    CHECK_EQ(order_len, 0);
    CHECK_OK(cio_task_cancel(t[1], NULL) == 1 ? 0 : -1);
    CHECK_OK(cio_event_set(event));
    CHECK_OK(cio_event_clear(event)); /* woken waiters still return */
    for (int i = 0; i < 3; i++) {
        int rc = cio_await(t[i], NULL);
        CHECK_ERR(rc, i == 1 ? -ECANCELED : 0);
        cio_future_release(t[i]);
    }
    CHECK_OK(cio_event_set(event));
    CHECK(cio_event_is_set(event));
    CHECK_OK(cio_event_wait(event)); /* set: returns at once */
    CHECK_OK(cio_event_clear(event));
    CHECK_ERR(cio_event_wait_until(event, cio_loop_time(loop) + 0.005), -ETIMEDOUT);
    return NULL;
}

TEST(event_wakes_every_waiter) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_event_new(&event));
    reset_order();
    CHECK_OK(test_run(loop, event_round, NULL, NULL));
    CHECK_STR(order, "ac");
    cio_event_free(event);
    cio_loop_free(loop);
}

/* ---- Condition ----------------------------------------------------------- */

static cio_condition *cond;
static int ready_flag;

static int is_ready(void *arg) {
    (void)arg;
    return ready_flag;
}

static void *cond_waiter(void *arg) {
    CHECK_OK(cio_condition_acquire(cond));
    int rc = cio_condition_wait(cond);
    /* The lock is held again, whatever happened. */
    CHECK(cio_condition_locked(cond));
    if (rc == 0) note((char)PTRI(arg));
    CHECK_OK(cio_condition_release(cond));
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *cond_round(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *t[3];
    for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, cond_waiter, IPTR('a' + i), &t[i]));
    CHECK_OK(cio_sleep(0.005));
    CHECK_ERR(cio_condition_notify(cond, 1), -CIO_EINVALSTATE); /* lock not held */
    CHECK_ERR(cio_condition_wait(cond), -CIO_EINVALSTATE);
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_OK(cio_condition_notify(cond, 1));
    /* a was notified; cancel it before it runs: the notification goes to b. */
    CHECK_EQ(cio_task_cancel(t[0], NULL), 1);
    CHECK_OK(cio_condition_release(cond));
    CHECK_ERR(cio_await(t[0], NULL), -ECANCELED);
    CHECK_OK(cio_await(t[1], NULL));
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_OK(cio_condition_notify_all(cond));
    CHECK_OK(cio_condition_release(cond));
    CHECK_OK(cio_await(t[2], NULL));
    for (int i = 0; i < 3; i++) cio_future_release(t[i]);
    /* wait_for checks the predicate around each wait. */
    ready_flag = 0;
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_ERR(cio_condition_wait_until(cond, cio_loop_time(loop) + 0.005), -ETIMEDOUT);
    CHECK(cio_condition_locked(cond));
    ready_flag = 1;
    CHECK_OK(cio_condition_wait_for(cond, is_ready, NULL));
    CHECK_OK(cio_condition_release(cond));
    return NULL;
}

TEST(condition_notify_order_and_lost_wakeups) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_condition_new(&cond, NULL));
    reset_order();
    CHECK_OK(test_run(loop, cond_round, NULL, NULL));
    CHECK_STR(order, "bc");
    cio_condition_free(cond);
    cio_loop_free(loop);
}

static void *hold_lock_a_while(void *arg) {
    (void)arg;
    CHECK_OK(cio_condition_acquire(cond));
    CHECK_OK(cio_sleep(0.02));
    CHECK_OK(cio_condition_release(cond));
    return NULL;
}

static void *cancel_reacquires(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *w, *holder;
    CHECK_OK(cio_spawn(loop, cond_waiter, IPTR('w'), &w));
    CHECK_OK(cio_sleep(0.002));
    /* Someone takes the lock, then the waiter is cancelled: it must wait
     * for the lock before returning -ECANCELED. */
    CHECK_OK(cio_spawn(loop, hold_lock_a_while, NULL, &holder));
    CHECK_OK(cio_sleep(0.002));
    CHECK_EQ(cio_task_cancel(w, NULL), 1);
    double start = cio_loop_time(loop);
    CHECK_ERR(cio_await(w, NULL), -ECANCELED);
    CHECK(cio_loop_time(loop) - start >= 0.01);
    CHECK_OK(cio_await(holder, NULL));
    CHECK(!cio_condition_locked(cond));
    cio_future_release(w);
    cio_future_release(holder);
    return NULL;
}

TEST(condition_wait_reacquires_when_cancelled) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_condition_new(&cond, NULL));
    reset_order();
    CHECK_OK(test_run(loop, cancel_reacquires, NULL, NULL));
    cio_condition_free(cond);
    /* With a lock of the caller's. */
    cio_lock *mine;
    CHECK_OK(cio_lock_new(&mine));
    CHECK_OK(cio_condition_new(&cond, mine));
    cio_condition_free(cond);
    cio_lock_free(mine);
    cio_loop_free(loop);
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

static void *sem_round(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *t[6];
    for (int i = 0; i < 6; i++) CHECK_OK(cio_spawn(loop, sem_user, IPTR('a' + i), &t[i]));
    for (int i = 0; i < 6; i++) {
        CHECK_OK(cio_await(t[i], NULL));
        cio_future_release(t[i]);
    }
    CHECK_EQ(max_inside, 2);
    CHECK_EQ(cio_semaphore_value(sem), 2);
    CHECK(!cio_semaphore_locked(sem));
    return NULL;
}

TEST(semaphore_admits_value_tasks_in_order) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_semaphore_new(&sem, 2));
    reset_order();
    inside = max_inside = 0;
    CHECK_OK(test_run(loop, sem_round, NULL, NULL));
    CHECK_STR(order, "abcdef");
    cio_semaphore_free(sem);
    CHECK_ERR(cio_semaphore_new(&sem, -1), -EINVAL);
    cio_loop_free(loop);
}

static void *sem_cancel_woken(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_semaphore_acquire(sem)); /* value 1 -> 0 */
    CHECK(cio_semaphore_locked(sem));
    cio_task *a, *b;
    CHECK_OK(cio_spawn(loop, sem_user, IPTR('a'), &a));
    CHECK_OK(cio_spawn(loop, sem_user, IPTR('b'), &b));
    CHECK_OK(cio_sleep(0));
    CHECK_OK(cio_semaphore_release(sem)); /* handed to a */
    CHECK_EQ(cio_task_cancel(a, NULL), 1);
    CHECK_ERR(cio_await(a, NULL), -ECANCELED);
    CHECK_OK(cio_await(b, NULL));
    CHECK_EQ(cio_semaphore_value(sem), 1); /* no permit lost or made up */
    cio_future_release(a);
    cio_future_release(b);
    return NULL;
}

TEST(semaphore_cancelled_waiter_keeps_no_permit) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_semaphore_new(&sem, 1));
    reset_order();
    CHECK_OK(test_run(loop, sem_cancel_woken, NULL, NULL));
    CHECK_STR(order, "b");
    cio_semaphore_free(sem);
    cio_loop_free(loop);
}

static void *bounded_round(void *arg) {
    (void)arg;
    CHECK_ERR(cio_semaphore_release(sem), -CIO_EINVALSTATE);
    CHECK_OK(cio_semaphore_acquire(sem));
    CHECK_OK(cio_semaphore_release(sem));
    CHECK_ERR(cio_semaphore_release(sem), -CIO_EINVALSTATE);
    CHECK_OK(cio_semaphore_acquire(sem));
    CHECK_OK(cio_semaphore_acquire(sem));
    CHECK_ERR(cio_semaphore_acquire_until(sem, cio_loop_time(cio_running_loop()) + 0.005),
              -ETIMEDOUT);
    CHECK_EQ(cio_semaphore_value(sem), 0);
    return NULL;
}

TEST(bounded_semaphore_refuses_extra_release) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_bounded_semaphore_new(&sem, 2));
    CHECK_OK(test_run(loop, bounded_round, NULL, NULL));
    cio_semaphore_free(sem);
    cio_loop_free(loop);
}

/* ---- Barrier ----------------------------------------------------------- */

static cio_barrier *barrier;
static int indices[8];

static void *barrier_user(void *arg) {
    int i = PTRI(arg);
    CHECK_OK(cio_sleep(i * 0.001));
    int rc = cio_barrier_wait(barrier);
    indices[i] = rc;
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *barrier_round(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    for (int round = 0; round < 2; round++) {
        cio_task *t[3];
        for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, barrier_user, IPTR(i), &t[i]));
        for (int i = 0; i < 3; i++) {
            CHECK_OK(cio_await(t[i], NULL));
            cio_future_release(t[i]);
        }
        /* Arrival order 0, 1, 2 gives indices 0, 1, 2. */
        for (int i = 0; i < 3; i++) CHECK_EQ(indices[i], i);
        CHECK_EQ(cio_barrier_n_waiting(barrier), 0);
    }
    /* Two arrive, then abort: both break, and so does a later wait. */
    cio_task *t[2];
    for (int i = 0; i < 2; i++) CHECK_OK(cio_spawn(loop, barrier_user, IPTR(i), &t[i]));
    CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(cio_barrier_n_waiting(barrier), 2);
    CHECK_OK(cio_barrier_abort(barrier));
    for (int i = 0; i < 2; i++) {
        CHECK_ERR(cio_await(t[i], NULL), -CIO_EBROKEN);
        cio_future_release(t[i]);
    }
    CHECK(cio_barrier_broken(barrier));
    CHECK_ERR(cio_barrier_wait(barrier), -CIO_EBROKEN);
    CHECK_OK(cio_barrier_reset(barrier));
    CHECK(!cio_barrier_broken(barrier));
    /* Reset while two wait: they break, and the barrier works again. */
    for (int i = 0; i < 2; i++) CHECK_OK(cio_spawn(loop, barrier_user, IPTR(i), &t[i]));
    CHECK_OK(cio_sleep(0.01));
    CHECK_OK(cio_barrier_reset(barrier));
    for (int i = 0; i < 2; i++) {
        CHECK_ERR(cio_await(t[i], NULL), -CIO_EBROKEN);
        cio_future_release(t[i]);
    }
    /* A cancelled waiter leaves without breaking the barrier. */
    CHECK_OK(cio_spawn(loop, barrier_user, IPTR(0), &t[0]));
    CHECK_OK(cio_sleep(0.005));
    CHECK_EQ(cio_barrier_n_waiting(barrier), 1);
    cio_task_cancel(t[0], NULL);
    CHECK_ERR(cio_await(t[0], NULL), -ECANCELED);
    cio_future_release(t[0]);
    CHECK_EQ(cio_barrier_n_waiting(barrier), 0);
    CHECK(!cio_barrier_broken(barrier));
    CHECK_ERR(cio_barrier_wait_until(barrier, cio_loop_time(loop) + 0.005), -ETIMEDOUT);
    CHECK_EQ(cio_barrier_parties(barrier), 3);
    return NULL;
}

TEST(barrier_rounds_abort_and_reset) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_barrier_new(&barrier, 3));
    CHECK_OK(test_run(loop, barrier_round, NULL, NULL));
    cio_barrier_free(barrier);
    CHECK_ERR(cio_barrier_new(&barrier, 0), -EINVAL);
    cio_loop_free(loop);
}

/* ---- freeing while waited on ------------------------------------------- */

static int refused;

static void count_refusals(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)arg;
    if (strstr(ctx->message, "not freed")) refused++;
}

static void *free_while_waited(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_loop_set_exception_handler(loop, count_refusals, NULL));
    CHECK_OK(cio_lock_acquire(lock));
    cio_task *t;
    CHECK_OK(cio_spawn(loop, locker, IPTR('q'), &t));
    CHECK_OK(cio_sleep(0));
    cio_lock_free(lock); /* refused: t waits on it */
    CHECK_EQ(refused, 1);
    CHECK_OK(cio_lock_release(lock));
    CHECK_OK(cio_await(t, NULL));
    cio_future_release(t);
    return NULL;
}

TEST(freeing_a_waited_on_primitive_is_refused) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_lock_new(&lock));
    refused = 0;
    CHECK_OK(test_run(loop, free_while_waited, NULL, NULL));
    cio_lock_free(lock);
    cio_loop_free(loop);
}

/* ---- stress ------------------------------------------------------------ */

static uint64_t rng = 88172645463325252u;
static unsigned rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

static int holders, sem_holders;
static long acquired;

static void *contender(void *arg) {
    (void)arg;
    for (int i = 0; i < 50; i++) {
        int rc = cio_lock_acquire(lock);
        if (rc < 0) return cio_raise(rc);
        CHECK_EQ(++holders, 1); /* mutual exclusion */
        acquired++;
        rc = cio_sleep(rnd() % 3 ? 0 : 0.0001);
        holders--;
        CHECK_OK(cio_lock_release(lock));
        if (rc < 0) return cio_raise(rc);
        rc = cio_semaphore_acquire(sem);
        if (rc < 0) return cio_raise(rc);
        CHECK_INT(++sem_holders, <=, 3);
        rc = cio_sleep(0);
        sem_holders--;
        CHECK_OK(cio_semaphore_release(sem));
        if (rc < 0) return cio_raise(rc);
    }
    return NULL;
}

static void *stress(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *t[40];
    for (int i = 0; i < 40; i++) CHECK_OK(cio_spawn(loop, contender, NULL, &t[i]));
    int cancels = 0;
    for (int k = 0; k < 2000; k++) {
        CHECK_OK(cio_sleep(0));
        if (rnd() % 64 == 0 && cio_task_cancel(t[rnd() % 40], NULL) == 1) cancels++;
    }
    CHECK_INT(cancels, >, 10);
    for (int i = 0; i < 40; i++) {
        int rc = cio_await(t[i], NULL);
        CHECK(rc == 0 || rc == -ECANCELED);
        cio_future_release(t[i]);
    }
    CHECK(!cio_lock_locked(lock));
    CHECK_EQ(cio_semaphore_value(sem), 3); /* every permit came back */
    return NULL;
}

TEST(random_cancels_lose_no_lock_or_permit) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_lock_new(&lock));
    CHECK_OK(cio_bounded_semaphore_new(&sem, 3));
    CHECK_OK(test_run(loop, stress, NULL, NULL));
    CHECK_INT(acquired, >, 200);
    cio_lock_free(lock);
    cio_semaphore_free(sem);
    cio_loop_free(loop);
}
