/*
 * The thread pool: cio_to_thread, its bound, cancellation while queued and
 * while running, pthread_create failures, shutdown with a deadline and
 * loop close. Labelled "threads": these run under ThreadSanitizer too.
 * Blocking functions wait on semaphores the tests post, so no check
 * depends on timing.
 */
#include "test.h"

#include "base/fault.h"

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <unistd.h>

static void quiet_handler(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)ctx;
    (void)arg;
}

static cio__pool_stats pool_stats(void) {
    cio__pool_stats s = {0};
    CHECK_OK(cio__loop_get_pool_stats(cio_running_loop(), &s));
    return s;
}

/* Lets the loop go round until cond holds (another thread makes it true;
 * a broken pool hangs here and CTest's timeout names the test). */
#define WAIT_UNTIL(cond)                                                  \
    do {                                                                  \
        while (!(cond)) CHECK_OK(cio_sleep(0.001));                       \
    } while (0)

static sem_t gate;        /* blocking functions wait here */
static atomic_int running_now, most_at_once, finished;

static void *blocker(void *arg) {
    int now = atomic_fetch_add(&running_now, 1) + 1;
    int seen = atomic_load(&most_at_once);
    while (now > seen && !atomic_compare_exchange_weak(&most_at_once, &seen, now)) {
    }
    while (sem_wait(&gate) != 0) {
    }
    atomic_fetch_sub(&running_now, 1);
    atomic_fetch_add(&finished, 1);
    return arg;
}

static void *whoami(void *arg) {
    (void)arg;
    return (void *)pthread_self();
}

static void *to_thread_task(void *arg) {
    void *r = NULL;
    int rc = cio_to_thread(blocker, arg, &r);
    if (rc < 0) return cio_raise(rc);
    CHECK(r == arg);
    return r;
}

static void *runs_elsewhere(void *arg) {
    (void)arg;
    void *r = NULL;
    CHECK_OK(cio_to_thread(whoami, NULL, &r));
    CHECK(!pthread_equal((pthread_t)r, pthread_self()));
    /* The loop's pool holds one worker now, idle. */
    cio__pool_stats s = pool_stats();
    CHECK_EQ(s.workers, 1);
    CHECK_EQ(s.queued, 0);
    CHECK_OK(cio_to_thread(whoami, NULL, NULL));
    return IPTR(1);
}

TEST(to_thread_runs_the_function_in_a_worker_and_returns_its_result) {
    cio_loop *loop = test_loop();
    void *r = NULL;
    CHECK_OK(test_run(loop, runs_elsewhere, NULL, &r));
    CHECK_EQ(PTRI(r), 1);
    CHECK_OK(cio_loop_free(loop));
}

/* The function blocks until another task of the loop lets it go: only
 * possible if the loop keeps running meanwhile. */
static void *release_gate(void *arg) {
    (void)arg;
    WAIT_UNTIL(atomic_load(&running_now) == 1);
    CHECK_OK(sem_post(&gate));
    return NULL;
}

static void *blocked_and_releaser(void *arg) {
    (void)arg;
    cio_task *a, *b;
    CHECK_OK(cio_spawn(cio_running_loop(), to_thread_task, IPTR(9), &a));
    CHECK_OK(cio_spawn(cio_running_loop(), release_gate, NULL, &b));
    void *r = NULL;
    CHECK_OK(cio_await(a, &r));
    CHECK_EQ(PTRI(r), 9);
    CHECK_OK(cio_await(b, NULL));
    cio_future_unref(a);
    cio_future_unref(b);
    return NULL;
}

TEST(loop_keeps_running_while_the_function_blocks) {
    sem_init(&gate, 0, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, blocked_and_releaser, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

enum { TASKS = 6 };

static void *bounded(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_pool_set_max_workers(loop, 2));
    cio_task *t[TASKS];
    for (int i = 0; i < TASKS; i++) CHECK_OK(cio_spawn(loop, to_thread_task, IPTR(i + 1), &t[i]));
    /* Both workers busy, the rest waiting their turn. */
    WAIT_UNTIL(atomic_load(&running_now) == 2 && pool_stats().queued == TASKS - 2);
    CHECK_EQ(pool_stats().workers, 2);
    for (int i = 0; i < TASKS; i++) CHECK_OK(sem_post(&gate));
    for (int i = 0; i < TASKS; i++) {
        void *r = NULL;
        CHECK_OK(cio_await(t[i], &r));
        CHECK_EQ(PTRI(r), i + 1);
        cio_future_unref(t[i]);
    }
    CHECK_EQ(atomic_load(&most_at_once), 2);
    CHECK_EQ(pool_stats().workers, 2);
    return NULL;
}

TEST(workers_are_bounded_and_extra_calls_wait) {
    sem_init(&gate, 0, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, bounded, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

/* A bound lowered after workers started holds for what runs (asyncio's
 * set_default_executor(ThreadPoolExecutor(1)) runs one call at a time),
 * and raised again it lets the queued calls run at once. */
static void *lowered_then_raised(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_pool_set_max_workers(loop, 4));
    cio_task *t[TASKS];
    for (int i = 0; i < 4; i++) CHECK_OK(cio_spawn(loop, to_thread_task, IPTR(i + 1), &t[i]));
    WAIT_UNTIL(atomic_load(&running_now) == 4);
    for (int i = 0; i < 4; i++) CHECK_OK(sem_post(&gate));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(cio_await(t[i], NULL));
        cio_future_unref(t[i]);
    }
    CHECK_EQ(pool_stats().workers, 4);
    /* Four workers, bound 1: one call runs, the others wait. */
    CHECK_OK(cio_pool_set_max_workers(loop, 1));
    atomic_store(&most_at_once, 0);
    for (int i = 0; i < TASKS; i++) CHECK_OK(cio_spawn(loop, to_thread_task, IPTR(i + 1), &t[i]));
    WAIT_UNTIL(atomic_load(&running_now) == 1 && pool_stats().queued == TASKS - 1);
    for (int i = 0; i < 20; i++) CHECK_OK(cio_sleep(0.001)); /* room for a second to start */
    CHECK_EQ(atomic_load(&running_now), 1);
    CHECK_OK(sem_post(&gate));
    WAIT_UNTIL(atomic_load(&finished) == 5 && atomic_load(&running_now) == 1);
    /* Raised to 3: two more start at once, without a new call. */
    CHECK_OK(cio_pool_set_max_workers(loop, 3));
    WAIT_UNTIL(atomic_load(&running_now) == 3);
    for (int i = 0; i < TASKS - 1; i++) CHECK_OK(sem_post(&gate));
    for (int i = 0; i < TASKS; i++) {
        void *r = NULL;
        CHECK_OK(cio_await(t[i], &r));
        CHECK_EQ(PTRI(r), i + 1);
        cio_future_unref(t[i]);
    }
    CHECK_EQ(atomic_load(&most_at_once), 3);
    return NULL;
}

TEST(a_lowered_bound_holds_for_workers_already_started) {
    sem_init(&gate, 0, 0);
    atomic_store(&finished, 0);
    atomic_store(&most_at_once, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, lowered_then_raised, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

/* The function's error reaches the caller, as asyncio re-raises the
 * function's exception; a raise outside both a task and a worker, and one
 * a later call does not repeat, leave nothing behind. */
static void *fails_in_worker(void *arg) {
    (void)arg;
    return cio_raise_msg(-CIO_EUSER(42), "no message crosses threads");
}

static void *raises_nothing(void *arg) {
    return arg;
}

static void *worker_errors(void *arg) {
    (void)arg;
    void *r = IPTR(7);
    CHECK_ERR(cio_to_thread(fails_in_worker, NULL, &r), -CIO_EUSER(42));
    CHECK_EQ(PTRI(r), 7); /* left alone */
    CHECK_OK(cio_pool_set_max_workers(cio_running_loop(), 1)); /* the same worker next */
    CHECK_OK(cio_to_thread(raises_nothing, IPTR(3), &r));
    CHECK_EQ(PTRI(r), 3);
    return NULL;
}

TEST(an_error_raised_in_the_function_is_returned_by_to_thread) {
    CHECK(cio_raise(-EIO) == NULL); /* outside a task and a worker: nothing */
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, worker_errors, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
}

static int fifo_seen[TASKS], fifo_count;
static pthread_mutex_t fifo_lock = PTHREAD_MUTEX_INITIALIZER;

static void *record_order(void *arg) {
    pthread_mutex_lock(&fifo_lock);
    fifo_seen[fifo_count++] = PTRI(arg);
    pthread_mutex_unlock(&fifo_lock);
    return arg;
}

static void *fifo_task(void *arg) {
    CHECK_OK(cio_to_thread(record_order, arg, NULL));
    return NULL;
}

static void *one_worker_fifo(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_pool_set_max_workers(loop, 1));
    cio_task *first, *t[TASKS];
    /* The first call holds the one worker, so the others queue up. */
    CHECK_OK(cio_spawn(loop, to_thread_task, NULL, &first));
    WAIT_UNTIL(atomic_load(&running_now) == 1);
    for (int i = 0; i < TASKS; i++) CHECK_OK(cio_spawn(loop, fifo_task, IPTR(i), &t[i]));
    WAIT_UNTIL(pool_stats().queued == TASKS);
    CHECK_OK(sem_post(&gate));
    CHECK_OK(cio_await(first, NULL));
    for (int i = 0; i < TASKS; i++) {
        CHECK_OK(cio_await(t[i], NULL));
        cio_future_unref(t[i]);
    }
    cio_future_unref(first);
    pthread_mutex_lock(&fifo_lock);
    for (int i = 0; i < TASKS; i++) CHECK_EQ(fifo_seen[i], i);
    pthread_mutex_unlock(&fifo_lock);
    return NULL;
}

TEST(queued_calls_run_first_come_first_served) {
    sem_init(&gate, 0, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, one_worker_fifo, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

static atomic_int marked;
static void *mark(void *arg) {
    atomic_fetch_add(&marked, 1);
    return arg;
}

static void *mark_task(void *arg) {
    int rc = cio_to_thread(mark, arg, NULL);
    if (rc < 0) return cio_raise(rc);
    return NULL;
}

static void *cancel_queued(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_pool_set_max_workers(loop, 1));
    cio_task *holder, *victim;
    CHECK_OK(cio_spawn(loop, to_thread_task, NULL, &holder));
    WAIT_UNTIL(atomic_load(&running_now) == 1);
    CHECK_OK(cio_spawn(loop, mark_task, NULL, &victim));
    WAIT_UNTIL(pool_stats().queued == 1);
    CHECK_EQ(cio_task_cancel(victim, NULL), 1);
    CHECK_ERR(cio_await(victim, NULL), -ECANCELED);
    CHECK(cio_future_cancelled(victim));
    /* The item left the queue at once. */
    CHECK_EQ(pool_stats().queued, 0);
    CHECK_OK(sem_post(&gate));
    CHECK_OK(cio_await(holder, NULL));
    /* One more call through the single worker: had the cancelled item
     * stayed queued, it would have run before this one. */
    CHECK_OK(cio_to_thread(whoami, NULL, NULL));
    CHECK_EQ(atomic_load(&marked), 0);
    cio_future_unref(holder);
    cio_future_unref(victim);
    return NULL;
}

TEST(cancel_while_queued_removes_the_call_and_the_function_never_runs) {
    sem_init(&gate, 0, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, cancel_queued, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

/* The internal form with a drop function: what DNS uses to free a result
 * nobody will read. */
static atomic_int drops;
static void *drop_seen;

static void count_drop(void *result, void *arg) {
    (void)arg;
    drop_seen = result;
    atomic_fetch_add(&drops, 1);
}

static int run_with_drop_rc = 1;
static void *run_with_drop(void *arg) {
    run_with_drop_rc = cio__pool_run(blocker, arg, 0, count_drop, NULL);
    return NULL;
}

static void *cancel_running(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, run_with_drop, IPTR(77), &t));
    WAIT_UNTIL(atomic_load(&running_now) == 1);
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    CHECK_ERR(cio_await(t, NULL), -ECANCELED);
    /* Returned at once, while the function still runs. */
    CHECK_ERR(run_with_drop_rc, -ECANCELED);
    CHECK_EQ(atomic_load(&finished), 0);
    CHECK_EQ(atomic_load(&drops), 0);
    CHECK_OK(sem_post(&gate));
    /* When it ends, the loop drops its result. */
    WAIT_UNTIL(atomic_load(&drops) == 1);
    CHECK_EQ(PTRI(drop_seen), 77);
    CHECK_EQ(atomic_load(&finished), 1);
    cio_future_unref(t);
    return NULL;
}

TEST(cancel_while_running_returns_at_once_and_drops_the_result_later) {
    sem_init(&gate, 0, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, cancel_running, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

/* A timeout scope reaches a call on the pool through cancellation. The
 * scope is made to expire once the function runs (a helper task
 * reschedules it), so the call is surely cancelled while running. */
static cio_timeout scope;

static void *expire_scope_when_running(void *arg) {
    (void)arg;
    WAIT_UNTIL(atomic_load(&running_now) == 1);
    CHECK_OK(cio_timeout_reschedule(&scope, cio_loop_time(cio_running_loop())));
    return NULL;
}

static void *scoped(void *arg) {
    (void)arg;
    CHECK_OK(cio_spawn(cio_running_loop(), expire_scope_when_running, NULL, NULL));
    CHECK_OK(cio_timeout_enter(&scope, 3600));
    int rc = cio_to_thread(blocker, NULL, NULL);
    rc = cio_timeout_exit(&scope, rc);
    CHECK_ERR(rc, -ETIMEDOUT);
    CHECK_OK(sem_post(&gate));
    WAIT_UNTIL(atomic_load(&finished) == 1);
    return NULL;
}

TEST(timeout_scope_cancels_a_call_on_the_pool) {
    sem_init(&gate, 0, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, scoped, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

/* pthread_create failing when the pool has no worker at all: -EAGAIN, a
 * clear error, and nothing left queued. The sweep finds the thread start
 * among the call's failure points. */
static void *one_call_under_fault(void *arg) {
    int64_t nth = (int64_t)(intptr_t)arg;
    cio__fault_arm(nth);
    int rc = cio_to_thread(whoami, NULL, NULL);
    cio__fault_arm(0);
    return IPTR(rc);
}

TEST(thread_start_failure_with_no_worker_is_a_clear_error) {
    int saw_eagain = 0;
    for (int nth = 1; nth < 50; nth++) {
        cio_loop *loop = test_loop();
        void *r = NULL;
        CHECK_OK(test_run(loop, one_call_under_fault, IPTR(nth), &r));
        int rc = PTRI(r);
        if (rc == -EAGAIN) saw_eagain++;
        else if (rc != -ENOMEM && rc != 0)
            FAIL("fault %d: %s", nth, cio_strerror(rc));
        cio__pool_stats s;
        CHECK_OK(cio__loop_get_pool_stats(loop, &s));
        CHECK_EQ(s.queued, 0);
        if (rc == -EAGAIN) CHECK_EQ(s.workers, 0);
        CHECK_OK(cio_loop_free(loop));
        if (rc == 0) break;
    }
    CHECK_EQ(saw_eagain, 1);
}

/* With a worker already there, a failed start only means the call waits
 * for that worker. */
static void *start_fails_with_a_worker(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_pool_set_max_workers(loop, 4));
    cio_task *holder;
    CHECK_OK(cio_spawn(loop, to_thread_task, NULL, &holder));
    WAIT_UNTIL(atomic_load(&running_now) == 1);
    cio_task *t;
    /* Every fallible step of the second call succeeds but the thread
     * start: find it by counting the steps of a call that starts one. */
    CHECK_OK(cio_spawn(loop, mark_task, NULL, &t));
    cio__fault_arm(3); /* item, worker record, thread start */
    CHECK_OK(cio_sleep(0));
    cio__fault_arm(0);
    CHECK_EQ(pool_stats().workers, 1);
    CHECK_EQ(pool_stats().queued, 1);
    CHECK_OK(sem_post(&gate));
    CHECK_OK(cio_await(t, NULL));
    CHECK_EQ(atomic_load(&marked), 1);
    CHECK_OK(cio_await(holder, NULL));
    cio_future_unref(t);
    cio_future_unref(holder);
    return NULL;
}

TEST(thread_start_failure_with_a_worker_waits_for_it) {
    sem_init(&gate, 0, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, start_fails_with_a_worker, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

static void *shutdown_runs_queued_work(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_pool_set_max_workers(loop, 1));
    cio_task *t[3];
    for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, mark_task, NULL, &t[i]));
    CHECK_OK(cio_sleep(0)); /* they submit */
    CHECK_OK(cio_pool_shutdown(CIO_NO_TIMEOUT));
    /* Queued work ran, every worker left and was joined. */
    CHECK_EQ(atomic_load(&marked), 3);
    CHECK_EQ(pool_stats().workers, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(cio_await(t[i], NULL));
        cio_future_unref(t[i]);
    }
    CHECK_ERR(cio_to_thread(mark, NULL, NULL), -CIO_EPOOLSHUTDOWN);
    /* Shutting down again is harmless. */
    CHECK_OK(cio_pool_shutdown(1.0));
    return NULL;
}

TEST(shutdown_waits_for_queued_work_then_refuses_new_work) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, shutdown_runs_queued_work, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
}

static void *sleep_a_little_in_a_worker(void *arg) {
    (void)arg;
    usleep(20000);
    return NULL;
}

static atomic_int four_arrived;

/* Returns once four calls run at once: four workers exist then, however
 * the threads are scheduled (under Valgrind one worker could otherwise
 * finish its call and take the next before a fourth was started). */
static void *wait_for_four_in_workers(void *arg) {
    (void)arg;
    atomic_fetch_add(&four_arrived, 1);
    while (atomic_load(&four_arrived) < 4) usleep(1000);
    return NULL;
}

static void *call_sleeper(void *arg) {
    CHECK_OK(cio_to_thread(arg ? wait_for_four_in_workers : sleep_a_little_in_a_worker, NULL, NULL));
    return NULL;
}

static void *shutdown_after_the_bound_was_lowered(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *t[4];
    atomic_store(&four_arrived, 0);
    for (int i = 0; i < 4; i++) CHECK_OK(cio_spawn(loop, call_sleeper, IPTR(1), &t[i]));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(cio_await(t[i], NULL));
        cio_future_unref(t[i]);
    }
    CHECK_EQ(pool_stats().workers, 4);
    /* Three workers now stand idle over the bound while calls wait. */
    CHECK_OK(cio_pool_set_max_workers(loop, 1));
    for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, call_sleeper, NULL, &t[i]));
    CHECK_OK(cio_sleep(0.005));
    /* The queue empties in about 60 ms; shutdown waited for ever for the
     * idle workers (nothing woke them to leave). */
    CHECK_OK(cio_pool_shutdown(10.0));
    CHECK_EQ(pool_stats().workers, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(cio_await(t[i], NULL));
        cio_future_unref(t[i]);
    }
    return NULL;
}

TEST(shutdown_after_the_bound_was_lowered_wakes_the_idle_workers) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, shutdown_after_the_bound_was_lowered, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
}

static void *shutdown_deadline(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, to_thread_task, NULL, &t));
    WAIT_UNTIL(atomic_load(&running_now) == 1);
    /* The function blocks until we post: the deadline must pass. */
    CHECK_ERR(cio_pool_shutdown(0.02), -ETIMEDOUT);
    CHECK_ERR(cio_pool_shutdown_until(cio_loop_time(loop) + 0.01), -ETIMEDOUT);
    CHECK_EQ(pool_stats().workers, 1);
    CHECK_OK(sem_post(&gate));
    CHECK_OK(cio_pool_shutdown(CIO_NO_TIMEOUT));
    CHECK_EQ(pool_stats().workers, 0);
    CHECK_OK(cio_await(t, NULL));
    cio_future_unref(t);
    return NULL;
}

TEST(shutdown_with_a_deadline_gives_up_waiting_and_can_wait_again) {
    sem_init(&gate, 0, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, shutdown_deadline, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

/* Several tasks shutting the pool down at once each wait for themselves:
 * the cancellation or the deadline of one ends its own wait only (asyncio:
 * each shutdown_default_executor call awaits its own future). */
static void *shut_down_forever(void *arg) {
    (void)arg;
    int rc = cio_pool_shutdown(CIO_NO_TIMEOUT);
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *shut_down_briefly(void *arg) {
    (void)arg;
    int rc = cio_pool_shutdown(0.01);
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *shutdown_waits_are_independent(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *work, *a, *b, *c;
    CHECK_OK(cio_spawn(loop, to_thread_task, NULL, &work));
    WAIT_UNTIL(atomic_load(&running_now) == 1);
    CHECK_OK(cio_spawn(loop, shut_down_forever, NULL, &a));
    CHECK_OK(cio_spawn(loop, shut_down_forever, NULL, &b));
    CHECK_OK(cio_spawn(loop, shut_down_briefly, NULL, &c));
    CHECK_OK(cio_sleep(0.005));
    CHECK_EQ(cio_task_cancel(a, NULL), 1);
    CHECK_ERR(cio_await(a, NULL), -ECANCELED);
    CHECK_ERR(cio_await(c, NULL), -ETIMEDOUT);
    CHECK(!cio_future_done(b));
    CHECK_OK(sem_post(&gate));
    CHECK_OK(cio_await(b, NULL));
    CHECK_EQ(pool_stats().workers, 0);
    CHECK_OK(cio_await(work, NULL));
    cio_future_unref(work);
    cio_future_unref(a);
    cio_future_unref(b);
    cio_future_unref(c);
    return NULL;
}

TEST(a_cancelled_or_expired_shutdown_wait_leaves_the_others_waiting) {
    sem_init(&gate, 0, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, shutdown_waits_are_independent, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

static void *shutdown_without_pool(void *arg) {
    (void)arg;
    CHECK_OK(cio_pool_shutdown(CIO_NO_TIMEOUT));
    CHECK_ERR(cio_to_thread(mark, NULL, NULL), -CIO_EPOOLSHUTDOWN);
    return NULL;
}

TEST(shutdown_of_an_unused_pool_returns_at_once) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, shutdown_without_pool, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
}

/* Loop close with a call running and others queued: queued ones are
 * dropped, the running one is waited for, nothing leaks (LeakSanitizer,
 * Valgrind) and no thread is left. */
static void *post_gate_later(void *arg) {
    (void)arg;
    /* Let close begin and block first: if it did not wait for the running
     * call, it would return before this post (a slow machine only makes
     * the check below pass less strictly, never fail wrongly). */
    usleep(50000);
    CHECK_OK(sem_post(&gate));
    return NULL;
}

static void *fill_and_stop(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_pool_set_max_workers(loop, 1));
    CHECK_OK(cio_spawn(loop, to_thread_task, NULL, NULL));
    WAIT_UNTIL(atomic_load(&running_now) == 1);
    for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, mark_task, NULL, NULL));
    WAIT_UNTIL(pool_stats().queued == 3);
    return NULL;
}

TEST(close_drops_queued_calls_and_waits_for_running_ones) {
    sem_init(&gate, 0, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(cio_loop_set_exception_handler(loop, quiet_handler, NULL));
    CHECK_OK(test_run(loop, fill_and_stop, NULL, NULL));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, post_gate_later, NULL));
    CHECK_OK(cio_loop_close(loop));
    /* Close returned: the running call ended and was joined. */
    CHECK_EQ(atomic_load(&finished), 1);
    CHECK(atomic_load(&marked) <= 3);
    CHECK_OK(pthread_join(th, NULL));
    CHECK_ERR(cio_pool_set_max_workers(loop, 2), -CIO_ELOOPCLOSED);
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

/* A finished call whose completion the loop never picked up (the loop
 * stopped first) is freed by close. */
static void *stop_while_running(void *arg) {
    (void)arg;
    CHECK_OK(cio_spawn(cio_running_loop(), mark_task, NULL, NULL));
    CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(close_frees_completions_never_delivered) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_loop_set_exception_handler(loop, quiet_handler, NULL));
    CHECK_OK(test_run(loop, stop_while_running, NULL, NULL));
    CHECK_OK(cio_loop_close(loop));
    CHECK(atomic_load(&marked) <= 1);
    CHECK_OK(cio_loop_free(loop));
}

/* One loop per thread, each with its own pool, at the same time. */
static void *use_pool(void *arg) {
    (void)arg;
    /* The bound comes first: lowering it later does not stop workers that
     * already started (a sequential call may start one more worker while
     * the last one is still on its way back to idle). */
    CHECK_OK(cio_pool_set_max_workers(cio_running_loop(), 3));
    for (int i = 0; i < 20; i++) {
        void *r = NULL;
        CHECK_OK(cio_to_thread(mark, IPTR(i), &r));
        CHECK_EQ(PTRI(r), i);
    }
    cio_task *t[5];
    for (int i = 0; i < 5; i++) CHECK_OK(cio_spawn(cio_running_loop(), mark_task, NULL, &t[i]));
    for (int i = 0; i < 5; i++) {
        CHECK_OK(cio_await(t[i], NULL));
        cio_future_unref(t[i]);
    }
    CHECK(pool_stats().workers <= 3);
    return NULL;
}

static void *loop_thread_main(void *arg) {
    (void)arg;
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, use_pool, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    return NULL;
}

TEST(each_loop_has_its_own_pool) {
    pthread_t th[3];
    for (int i = 0; i < 3; i++) CHECK_OK(pthread_create(&th[i], NULL, loop_thread_main, NULL));
    for (int i = 0; i < 3; i++) CHECK_OK(pthread_join(th[i], NULL));
    CHECK_EQ(atomic_load(&marked), 3 * 25);
}

TEST(bad_arguments_and_calls_outside_a_task) {
    CHECK_ERR(cio_to_thread(NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_to_thread(mark, NULL, NULL), -EPERM);
    CHECK_ERR(cio_pool_shutdown(NAN), -EINVAL);
    CHECK_ERR(cio_pool_shutdown_until(NAN), -EINVAL);
    CHECK_ERR(cio_pool_shutdown(1.0), -EPERM);
    CHECK_ERR(cio_pool_set_max_workers(NULL, 2), -EINVAL);
    cio_loop *loop = test_loop();
    CHECK_ERR(cio_pool_set_max_workers(loop, 0), -EINVAL);
    CHECK_ERR(cio_pool_set_max_workers(loop, CIO_POOL_MAX_WORKERS + 1), -EINVAL);
    CHECK_OK(cio_pool_set_max_workers(loop, CIO_POOL_MAX_WORKERS));
    CHECK_STR(cio_strerror(-CIO_EPOOLSHUTDOWN),
              "Thread pool is shut down (Executor shutdown has been called)");
    CHECK_OK(cio_loop_free(loop));
}
