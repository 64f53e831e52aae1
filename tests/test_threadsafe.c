/*
 * Cross-thread calls: cio_call_soon_threadsafe and
 * cio_run_coroutine_threadsafe. Labelled "threads": these run under
 * ThreadSanitizer too. No check depends on timing: a call that is never
 * delivered hangs the test, and CTest's timeout names it.
 */
#include "test.h"

#include <pthread.h>
#include <semaphore.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

static void stop_cb(cio_loop *loop, void *arg) {
    (void)arg;
    CHECK_OK(cio_loop_stop(loop));
}

static void quiet_handler(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)ctx;
    (void)arg;
}

/* A thread that runs a loop until it is stopped. */
typedef struct loop_thread {
    cio_loop *loop;
    pthread_t th;
    atomic_int started;
} loop_thread;

static void mark_started(cio_loop *loop, void *arg) {
    (void)loop;
    atomic_store(&((loop_thread *)arg)->started, 1);
}

static void *run_loop(void *arg) {
    loop_thread *lt = arg;
    CHECK_OK(cio_call_soon(lt->loop, mark_started, lt, NULL));
    CHECK_OK(cio_run_forever(lt->loop));
    return NULL;
}

static void loop_thread_start(loop_thread *lt) {
    lt->loop = test_loop();
    atomic_init(&lt->started, 0);
    CHECK_OK(pthread_create(&lt->th, NULL, run_loop, lt));
    while (!atomic_load(&lt->started)) sched_yield();
}

static void loop_thread_stop(loop_thread *lt) {
    CHECK_OK(cio_call_soon_threadsafe(lt->loop, stop_cb, NULL));
    CHECK_OK(pthread_join(lt->th, NULL));
    CHECK_OK(cio_loop_free(lt->loop));
}

/* ---- call_soon_threadsafe ---- */

static void *post_stop(void *arg) {
    /* Give the loop time to fall asleep in its poll. If it has not, the
     * call is still delivered (the loop sees it before blocking), so this
     * only makes the wake-up path the likely one, never a failure. */
    usleep(20000);
    CHECK_OK(cio_call_soon_threadsafe(arg, stop_cb, NULL));
    return NULL;
}

static atomic_int guard_fired;
static void guard_cb(cio_loop *loop, void *arg) {
    (void)arg;
    atomic_store(&guard_fired, 1);
    cio_loop_stop(loop);
}

static void start_poster(cio_loop *loop, void *arg) {
    CHECK_OK(pthread_create((pthread_t *)arg, NULL, post_stop, loop));
}

/* The loop has nothing to do and blocks in its poll; only the wake-up of
 * the foreign call can end the run before the guard timer (30 s). */
TEST(call_from_another_thread_wakes_a_sleeping_loop) {
    cio_loop *loop = test_loop();
    pthread_t th;
    CHECK_OK(cio_call_later(loop, 30.0, guard_cb, NULL, NULL));
    CHECK_OK(cio_call_soon(loop, start_poster, &th, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_OK(pthread_join(th, NULL));
    CHECK_EQ(atomic_load(&guard_fired), 0);
    CHECK_OK(cio_loop_free(loop));
}

enum { CALLS = 2000 };

typedef struct order_state {
    pthread_t loop_thread;
    int seen[CALLS];
    int count;
    int wrong_thread;
} order_state;

static order_state order;

static void record_call(cio_loop *loop, void *arg) {
    if (!pthread_equal(pthread_self(), order.loop_thread)) order.wrong_thread++;
    order.seen[order.count++] = PTRI(arg);
    if (order.count == CALLS) cio_loop_stop(loop);
}

static void *post_many(void *arg) {
    for (int i = 0; i < CALLS; i++) CHECK_OK(cio_call_soon_threadsafe(arg, record_call, IPTR(i)));
    return NULL;
}

TEST(calls_run_in_the_loop_thread_in_the_order_they_were_made) {
    cio_loop *loop = test_loop();
    order.loop_thread = pthread_self();
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, post_many, loop));
    CHECK_OK(cio_run_forever(loop));
    CHECK_OK(pthread_join(th, NULL));
    CHECK_EQ(order.count, CALLS);
    CHECK_EQ(order.wrong_thread, 0);
    for (int i = 0; i < CALLS; i++) CHECK_EQ(order.seen[i], i);
    CHECK_OK(cio_loop_free(loop));
}

/* While the loop is busy (a task that keeps yielding) it never blocks, so
 * senders must not write a single wake-up: the point of the sleeping
 * flag. */
static atomic_int busy_calls;
static void count_call(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
    atomic_fetch_add(&busy_calls, 1);
}

static void *post_counted(void *arg) {
    for (int i = 0; i < CALLS; i++) CHECK_OK(cio_call_soon_threadsafe(arg, count_call, NULL));
    return NULL;
}

static void *busy_task(void *arg) {
    (void)arg;
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, post_counted, cio_running_loop()));
    while (atomic_load(&busy_calls) < CALLS) CHECK_OK(cio_sleep(0));
    CHECK_OK(pthread_join(th, NULL));
    return NULL;
}

TEST(a_busy_loop_gets_no_wake_up_per_call) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, busy_task, NULL, NULL));
    CHECK_EQ(atomic_load(&busy_calls), CALLS);
    cio__pool_stats ps;
    CHECK_OK(cio__loop_get_pool_stats(loop, &ps));
    CHECK_EQ(ps.inbox_wakes, 0);
    CHECK_OK(cio_loop_free(loop));
}

static int own_thread_runs;
static void own_thread_call(cio_loop *loop, void *arg) {
    (void)arg;
    own_thread_runs++;
    cio_loop_stop(loop);
}

static void schedule_own(cio_loop *loop, void *arg) {
    (void)arg;
    CHECK_OK(cio_call_soon_threadsafe(loop, own_thread_call, NULL));
    /* Never inline. */
    CHECK_EQ(own_thread_runs, 0);
}

TEST(call_from_the_loop_thread_runs_in_a_later_batch) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_call_soon(loop, schedule_own, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_EQ(own_thread_runs, 1);
    CHECK_OK(cio_loop_free(loop));
}

/* asyncio's test_call_soon_threadsafe(_same_thread): from the loop's own
 * thread, a thread-safe call joins the ready queue at once, FIFO with
 * call_soon's callbacks, before the loop runs and from a callback. */
static char order_log[16];

static void log_arg(cio_loop *loop, void *arg) {
    (void)loop;
    strncat(order_log, arg, sizeof order_log - strlen(order_log) - 1);
}

static void threadsafe_then_soon(cio_loop *loop, void *arg) {
    (void)arg;
    CHECK_OK(cio_call_soon_threadsafe(loop, log_arg, "A"));
    CHECK_OK(cio_call_soon(loop, log_arg, "B", NULL));
    CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
}

TEST(a_threadsafe_call_from_the_loop_thread_keeps_its_place) {
    cio_loop *loop = test_loop();
    order_log[0] = '\0';
    CHECK_OK(cio_call_soon_threadsafe(loop, log_arg, "h"));
    CHECK_OK(cio_call_soon(loop, log_arg, "w", NULL));
    CHECK_OK(cio_call_soon(loop, threadsafe_then_soon, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_STR(order_log, "hwAB");
    CHECK_OK(cio_loop_free(loop));
}

static int never_runs;
static void must_not_run(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
    never_runs++;
}

/* asyncio drops the callbacks of a closed loop; cio frees them. */
TEST(calls_not_run_before_close_are_dropped_and_later_ones_refused) {
    cio_loop *loop = test_loop();
    for (int i = 0; i < 3; i++) CHECK_OK(cio_call_soon_threadsafe(loop, must_not_run, NULL));
    CHECK_OK(cio_loop_close(loop));
    CHECK_EQ(never_runs, 0);
    CHECK_ERR(cio_call_soon_threadsafe(loop, must_not_run, NULL), -CIO_ELOOPCLOSED);
    CHECK_ERR(cio_call_soon_threadsafe(NULL, must_not_run, NULL), -EINVAL);
    CHECK_ERR(cio_call_soon_threadsafe(loop, NULL, NULL), -EINVAL);
    CHECK_OK(cio_loop_free(loop));
}

/* A thread keeps calling while the loop runs and is then closed: every
 * call is accepted (then run or dropped) or refused, never lost in between;
 * ThreadSanitizer and LeakSanitizer check the rest. */
typedef struct racer {
    cio_loop *loop;
    atomic_int accepted;
    atomic_int ran;
    int last;
} racer;

static void racer_call(cio_loop *loop, void *arg) {
    (void)loop;
    atomic_fetch_add(&((racer *)arg)->ran, 1);
}

static void *race_close(void *arg) {
    racer *r = arg;
    for (;;) {
        int rc = cio_call_soon_threadsafe(r->loop, racer_call, r);
        if (rc < 0) {
            r->last = rc;
            return NULL;
        }
        /* Now and then the turn goes to the loop's thread: Valgrind runs
         * one thread at a time, and a poster that never yields fills
         * memory with calls the loop gets no time to run. */
        if ((atomic_fetch_add(&r->accepted, 1) & 63) == 63) sched_yield();
    }
}

static void *spin_until_calls_ran(void *arg) {
    racer *r = arg;
    while (atomic_load(&r->ran) < 100) CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(close_racing_calls_neither_crashes_nor_loses_memory) {
    for (int round = 0; round < 20; round++) {
        racer r = {.loop = test_loop()};
        pthread_t th;
        CHECK_OK(pthread_create(&th, NULL, race_close, &r));
        CHECK_OK(test_run(r.loop, spin_until_calls_ran, &r, NULL));
        CHECK_OK(cio_loop_close(r.loop));
        CHECK_OK(pthread_join(th, NULL));
        CHECK_ERR(r.last, -CIO_ELOOPCLOSED);
        CHECK(atomic_load(&r.ran) <= atomic_load(&r.accepted));
        CHECK_OK(cio_loop_free(r.loop));
    }
}

/* A pool worker still running when close begins: close waits for it,
 * and whatever it asks of the loop meanwhile must be refused, not taken
 * and then dropped (the caller would never learn its argument is lost). */
static void *coroutine_never_run(void *arg) {
    (void)arg;
    never_runs++;
    return NULL;
}

typedef struct late_worker {
    cio_loop *loop;
    sem_t close_begins;
    atomic_int started;
    int call_rc, spawn_rc;
} late_worker;

static void *post_after_close_began(void *arg) {
    late_worker *w = arg;
    atomic_store(&w->started, 1);
    CHECK_OK(sem_wait(&w->close_begins));
    usleep(100 * 1000); /* the main thread is inside cio_loop_close, joining us */
    w->call_rc = cio_call_soon_threadsafe(w->loop, must_not_run, NULL);
    cio_tsfuture *f = NULL;
    w->spawn_rc = cio_run_coroutine_threadsafe(w->loop, coroutine_never_run, NULL, &f);
    CHECK(f == NULL);
    return NULL;
}

static void *to_thread_task(void *arg) {
    /* Cancelled by the close while the worker runs on. */
    (void)cio_to_thread(post_after_close_began, arg, NULL);
    return NULL;
}

static void *start_late_worker(void *arg) {
    cio_task *t;
    CHECK_OK(cio_spawn(cio_running_loop(), to_thread_task, arg, &t));
    /* Running, not queued: close drops a queued call, and waits for one
     * that runs. */
    late_worker *w = arg;
    while (!atomic_load(&w->started)) CHECK_OK(cio_sleep(0.001));
    cio_future_unref(t);
    return NULL;
}

TEST(calls_from_a_worker_that_close_waits_for_are_refused) {
    late_worker w = {.loop = test_loop(), .call_rc = 1, .spawn_rc = 1};
    CHECK_OK(sem_init(&w.close_begins, 0, 0));
    CHECK_OK(test_run(w.loop, start_late_worker, &w, NULL));
    CHECK_OK(sem_post(&w.close_begins));
    CHECK_OK(cio_loop_close(w.loop));
    CHECK_ERR(w.call_rc, -CIO_ELOOPCLOSED);
    CHECK_ERR(w.spawn_rc, -CIO_ELOOPCLOSED);
    CHECK_EQ(never_runs, 0);
    CHECK_OK(cio_loop_free(w.loop));
    sem_destroy(&w.close_begins);
}

/* ---- run_coroutine_threadsafe ---- */

static void *answer(void *arg) {
    CHECK_OK(cio_sleep(0.001));
    return arg;
}

TEST(coroutine_from_another_thread_returns_its_result) {
    loop_thread lt;
    loop_thread_start(&lt);
    cio_tsfuture *f = NULL;
    CHECK_OK(cio_run_coroutine_threadsafe(lt.loop, answer, IPTR(42), &f));
    void *r = NULL;
    CHECK_OK(cio_tsfuture_result(f, CIO_NO_TIMEOUT, &r));
    CHECK_EQ(PTRI(r), 42);
    CHECK(cio_tsfuture_done(f));
    CHECK(!cio_tsfuture_cancelled(f));
    /* Done: cancel changes nothing. */
    CHECK_EQ(cio_tsfuture_cancel(f), 0);
    CHECK_OK(cio_tsfuture_result(f, 0, &r));
    CHECK_OK(cio_tsfuture_free(f));
    loop_thread_stop(&lt);
}

static void *fails(void *arg) {
    (void)arg;
    return cio_raise(-CIO_EUSER(3));
}

TEST(coroutine_error_reaches_the_waiting_thread) {
    loop_thread lt;
    loop_thread_start(&lt);
    cio_tsfuture *f = NULL;
    CHECK_OK(cio_run_coroutine_threadsafe(lt.loop, fails, NULL, &f));
    CHECK_ERR(cio_tsfuture_result(f, CIO_NO_TIMEOUT, NULL), -CIO_EUSER(3));
    CHECK_OK(cio_tsfuture_free(f));
    loop_thread_stop(&lt);
}

static atomic_int sleeper_status = 1;
static void *sleep_long(void *arg) {
    (void)arg;
    int rc = cio_sleep(3600);
    atomic_store(&sleeper_status, rc);
    return cio_raise(rc);
}

TEST(wait_times_out_and_cancel_cancels_the_task_in_its_loop) {
    loop_thread lt;
    loop_thread_start(&lt);
    cio_tsfuture *f = NULL;
    CHECK_OK(cio_run_coroutine_threadsafe(lt.loop, sleep_long, NULL, &f));
    CHECK_ERR(cio_tsfuture_wait(f, 0.02), -ETIMEDOUT);
    CHECK_ERR(cio_tsfuture_wait(f, 0), -ETIMEDOUT);
    CHECK(!cio_tsfuture_done(f));
    CHECK_EQ(cio_tsfuture_cancel(f), 1);
    CHECK(cio_tsfuture_cancelled(f));
    CHECK_ERR(cio_tsfuture_result(f, CIO_NO_TIMEOUT, NULL), -ECANCELED);
    /* The task itself is cancelled in its loop, soon. */
    while (atomic_load(&sleeper_status) == 1) sched_yield();
    CHECK_ERR(atomic_load(&sleeper_status), -ECANCELED);
    CHECK_OK(cio_tsfuture_free(f));
    loop_thread_stop(&lt);
}

static atomic_int started_count;
static void *count_start(void *arg) {
    atomic_fetch_add(&started_count, 1);
    return arg;
}

static void *settle(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(cancel_before_start_means_the_coroutine_never_runs) {
    cio_loop *loop = test_loop();
    cio_tsfuture *f = NULL;
    CHECK_OK(cio_run_coroutine_threadsafe(loop, count_start, NULL, &f));
    CHECK_EQ(cio_tsfuture_cancel(f), 1);
    CHECK_OK(test_run(loop, settle, NULL, NULL));
    CHECK_EQ(atomic_load(&started_count), 0);
    CHECK_ERR(cio_tsfuture_result(f, 0, NULL), -ECANCELED);
    CHECK_OK(cio_tsfuture_free(f));
    CHECK_OK(cio_loop_free(loop));
}

TEST(loop_closed_before_start_completes_the_future_with_an_error) {
    cio_loop *loop = test_loop();
    cio_tsfuture *f = NULL;
    CHECK_OK(cio_run_coroutine_threadsafe(loop, count_start, NULL, &f));
    CHECK_OK(cio_loop_close(loop));
    CHECK(cio_tsfuture_done(f));
    CHECK_ERR(cio_tsfuture_result(f, 0, NULL), -CIO_ELOOPCLOSED);
    CHECK_EQ(atomic_load(&started_count), 0);
    CHECK_OK(cio_tsfuture_free(f));
    CHECK_ERR(cio_run_coroutine_threadsafe(loop, count_start, NULL, &f), -CIO_ELOOPCLOSED);
    CHECK(f == NULL);
    CHECK_OK(cio_loop_free(loop));
}

static void *sleep_forever_after_stop(void *arg) {
    (void)arg;
    CHECK_OK(cio_loop_stop(cio_running_loop()));
    CHECK_OK(cio_sleep(3600));
    return NULL;
}

TEST(task_destroyed_pending_at_close_leaves_the_future_cancelled) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_loop_set_exception_handler(loop, quiet_handler, NULL));
    cio_tsfuture *f = NULL;
    CHECK_OK(cio_run_coroutine_threadsafe(loop, sleep_forever_after_stop, NULL, &f));
    CHECK_OK(cio_run_forever(loop));
    CHECK(!cio_tsfuture_done(f));
    CHECK_OK(cio_loop_close(loop));
    CHECK(cio_tsfuture_cancelled(f));
    CHECK_ERR(cio_tsfuture_result(f, 0, NULL), -ECANCELED);
    /* Its loop is closed: cancel touches nothing. */
    CHECK_EQ(cio_tsfuture_cancel(f), 0);
    CHECK_OK(cio_tsfuture_free(f));
    CHECK_OK(cio_loop_free(loop));
}

static void *wait_in_own_loop(void *arg) {
    (void)arg;
    cio_tsfuture *f = NULL;
    CHECK_OK(cio_run_coroutine_threadsafe(cio_running_loop(), count_start, NULL, &f));
    /* Waiting in the loop's own thread could never end. */
    CHECK_ERR(cio_tsfuture_wait(f, CIO_NO_TIMEOUT), -EDEADLK);
    CHECK_ERR(cio_tsfuture_result(f, 1.0, NULL), -EDEADLK);
    CHECK_OK(cio_tsfuture_free(f));
    return NULL;
}

TEST(waiting_from_the_loop_thread_is_refused) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, wait_in_own_loop, NULL, NULL));
    CHECK_OK(test_run(loop, settle, NULL, NULL));
    CHECK_EQ(atomic_load(&started_count), 1);
    CHECK_OK(cio_loop_free(loop));
}

/* Free the caller's reference before the task ends: the loop keeps its
 * own, and the outcome goes nowhere without harm. */
TEST(future_freed_before_the_task_ends) {
    loop_thread lt;
    loop_thread_start(&lt);
    cio_tsfuture *f = NULL;
    CHECK_OK(cio_run_coroutine_threadsafe(lt.loop, answer, IPTR(5), &f));
    CHECK_OK(cio_tsfuture_free(f));
    cio_tsfuture *g = NULL;
    CHECK_OK(cio_run_coroutine_threadsafe(lt.loop, answer, IPTR(6), &g));
    void *r = NULL;
    CHECK_OK(cio_tsfuture_result(g, CIO_NO_TIMEOUT, &r));
    CHECK_EQ(PTRI(r), 6);
    CHECK_OK(cio_tsfuture_free(g));
    loop_thread_stop(&lt);
}

/* Several threads submit to one loop at once, each waiting on its own
 * futures. */
static void *submitter(void *arg) {
    cio_loop *loop = arg;
    for (int i = 0; i < 50; i++) {
        cio_tsfuture *f = NULL;
        CHECK_OK(cio_run_coroutine_threadsafe(loop, answer, IPTR(i), &f));
        void *r = NULL;
        CHECK_OK(cio_tsfuture_result(f, CIO_NO_TIMEOUT, &r));
        CHECK_EQ(PTRI(r), i);
        CHECK_OK(cio_tsfuture_free(f));
    }
    return NULL;
}

TEST(many_threads_submit_to_one_loop) {
    loop_thread lt;
    loop_thread_start(&lt);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) CHECK_OK(pthread_create(&th[i], NULL, submitter, lt.loop));
    for (int i = 0; i < 3; i++) CHECK_OK(pthread_join(th[i], NULL));
    loop_thread_stop(&lt);
}

TEST(bad_arguments) {
    cio_loop *loop = test_loop();
    cio_tsfuture *f = (cio_tsfuture *)1;
    CHECK_ERR(cio_run_coroutine_threadsafe(NULL, answer, NULL, &f), -EINVAL);
    CHECK(f == NULL);
    CHECK_ERR(cio_run_coroutine_threadsafe(loop, NULL, NULL, &f), -EINVAL);
    CHECK_ERR(cio_run_coroutine_threadsafe(loop, answer, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_tsfuture_wait(NULL, 1), -EINVAL);
    CHECK_ERR(cio_tsfuture_result(NULL, 1, NULL), -EINVAL);
    CHECK_ERR(cio_tsfuture_cancel(NULL), -EINVAL);
    CHECK_EQ(cio_tsfuture_done(NULL), 0);
    CHECK_EQ(cio_tsfuture_cancelled(NULL), 0);
    CHECK_OK(cio_tsfuture_free(NULL));
    CHECK_OK(cio_run_coroutine_threadsafe(loop, answer, NULL, &f));
    CHECK_ERR(cio_tsfuture_wait(f, NAN), -EINVAL);
    CHECK_ERR(cio_tsfuture_result(f, NAN, NULL), -EINVAL);
    CHECK_OK(cio_tsfuture_free(f));
    CHECK_OK(cio_loop_free(loop));
}
