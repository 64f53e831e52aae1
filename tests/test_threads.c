/* Threads and loops: checks that must also pass under ThreadSanitizer. */
#include "test.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sched.h>
#include <stdatomic.h>

static void append_a(cio_loop *loop, void *arg) { (void)loop; (void)arg; }
static void *return_seven(void *arg) { (void)arg; return IPTR(7); }
static void stop_cb(cio_loop *loop, void *arg) { (void)arg; CHECK_OK(cio_loop_stop(loop)); }

static void *foreign_thread(void *arg) {
    cio_loop *loop = arg;
    cio_future *f = NULL;
    intptr_t ok = cio_call_soon(loop, append_a, NULL, NULL) == -CIO_EWRONGTHREAD &&
                  cio_future_new(loop, &f) == -CIO_EWRONGTHREAD && f == NULL &&
                  cio_spawn(loop, return_seven, NULL, NULL) == -CIO_EWRONGTHREAD &&
                  cio_loop_stop(loop) == -CIO_EWRONGTHREAD;
    return (void *)ok;
}

static void call_from_other_thread(cio_loop *loop, void *arg) {
    (void)arg;
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, foreign_thread, loop));
    void *ok = NULL;
    CHECK_OK(pthread_join(th, &ok));
    CHECK(ok == (void *)1);
    CHECK_OK(cio_loop_stop(loop));
}

TEST(debug_mode_refuses_foreign_threads) {
    cio_loop_options opts = {.debug = 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    CHECK_OK(cio_call_soon(loop, call_from_other_thread, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    cio_loop_free(loop);
}

static void *run_own_loop(void *arg) {
    (void)arg;
    /* No global state: each thread runs its own loop at the same time. */
    cio_loop *loop;
    if (cio_loop_new(&loop) < 0) return NULL;
    void *r = NULL;
    cio_task *t;
    if (cio_spawn(loop, return_seven, NULL, &t) == 0) {
        if (cio_run_until_complete(loop, t, &r) < 0) r = NULL;
        cio_future_unref(t);
    }
    cio_loop_free(loop);
    return r;
}

TEST(one_loop_per_thread) {
    pthread_t th[4];
    for (int i = 0; i < 4; i++) CHECK_OK(pthread_create(&th[i], NULL, run_own_loop, NULL));
    for (int i = 0; i < 4; i++) {
        void *r;
        CHECK_OK(pthread_join(th[i], &r));
        CHECK_EQ(PTRI(r), 7);
    }
}

/*
 * Debug mode: a thread that runs no loop may not change anything bound to a
 * loop that belongs to another thread, whether that loop is running at the
 * moment (in its own thread) or not.
 */
typedef struct foreign_targets {
    cio_event *event;
    cio_lock *lock;
    cio_queue *queue;
    cio_semaphore *sem;
    cio_task *task;
    cio_future *future;
    cio_handle handle;
    cio_timeout *scope;
} foreign_targets;

static foreign_targets targets;

static void *try_everything_from_a_foreign_thread(void *arg) {
    foreign_targets *t = arg;
    intptr_t refused = 0, calls = 0;
#define EXPECT_WRONG_THREAD(call) (calls++, refused += (call) == -CIO_EWRONGTHREAD)
    EXPECT_WRONG_THREAD(cio_event_set(t->event));
    EXPECT_WRONG_THREAD(cio_event_clear(t->event));
    EXPECT_WRONG_THREAD(cio_lock_release(t->lock));
    EXPECT_WRONG_THREAD(cio_queue_put_nowait(t->queue, IPTR(1)));
    void *item;
    EXPECT_WRONG_THREAD(cio_queue_get_nowait(t->queue, &item));
    EXPECT_WRONG_THREAD(cio_semaphore_release(t->sem));
    EXPECT_WRONG_THREAD(cio_task_cancel(t->task, NULL));
    EXPECT_WRONG_THREAD(cio_task_uncancel(t->task));
    EXPECT_WRONG_THREAD(cio_task_set_name(t->task, "stolen"));
    EXPECT_WRONG_THREAD(cio_future_cancel(t->future, NULL));
    EXPECT_WRONG_THREAD(cio_future_set_result(t->future, NULL));
    EXPECT_WRONG_THREAD(cio_handle_cancel(&t->handle));
    EXPECT_WRONG_THREAD(cio_call_soon(cio_future_loop(t->future), append_a, NULL, NULL));
    if (t->scope) EXPECT_WRONG_THREAD(cio_timeout_reschedule(t->scope, 0));
#undef EXPECT_WRONG_THREAD
    return (void *)(refused == calls ? (intptr_t)1 : -refused);
}

static void check_from_foreign_thread(foreign_targets *t) {
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, try_everything_from_a_foreign_thread, t));
    void *ok = NULL;
    CHECK_OK(pthread_join(th, &ok));
    CHECK_EQ(PTRI(ok), 1);
    /* Nothing changed. */
    CHECK(cio_event_is_set(t->event));
    CHECK(cio_lock_locked(t->lock));
    CHECK_EQ(cio_queue_size(t->queue), 1);
    CHECK_EQ(cio_semaphore_value(t->sem), 0);
    CHECK(!cio_future_done(t->task));
    CHECK_EQ(cio_task_cancelling(t->task), 0);
    CHECK_STR(cio_task_name(t->task), "sleeper");
    CHECK(!cio_future_done(t->future));
    CHECK(!cio_handle_cancelled(&t->handle));
}

static void *sleeper(void *arg) {
    (void)arg;
    cio_timeout scope;
    CHECK_OK(cio_timeout_enter(&scope, CIO_NO_TIMEOUT));
    targets.scope = &scope;
    int rc = cio_sleep(30); /* cancelled by the test */
    targets.scope = NULL;
    return IPTR(cio_timeout_exit(&scope, rc));
}

/* Binds every primitive to this loop and leaves each in a state the
 * foreign thread would change. */
static void *bind_primitives(void *arg) {
    foreign_targets *t = arg;
    CHECK_OK(cio_event_wait(t->event)); /* set already: binds and returns */
    CHECK_OK(cio_lock_acquire(t->lock));
    CHECK_OK(cio_queue_put(t->queue, IPTR(1)));
    CHECK_OK(cio_semaphore_acquire(t->sem));
    return NULL;
}

static void check_while_running(cio_loop *loop, void *arg) {
    (void)loop;
    check_from_foreign_thread(arg);
}

TEST(debug_mode_refuses_state_changes_from_a_thread_running_no_loop) {
    cio_loop_options opts = {.debug = 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    foreign_targets *t = &targets;
    memset(t, 0, sizeof *t);
    CHECK_OK(cio_event_new(&t->event));
    CHECK_OK(cio_lock_new(&t->lock));
    CHECK_OK(cio_queue_new(0, &t->queue));
    CHECK_OK(cio_semaphore_new(1, &t->sem));
    CHECK_OK(cio_future_new(loop, &t->future));
    CHECK_OK(cio_event_set(t->event)); /* not bound yet: anyone may */
    cio_task_options topts = {.name = "sleeper"};
    CHECK_OK(cio_spawn_with(loop, sleeper, NULL, &topts, &t->task));
    CHECK_OK(cio_call_later(loop, 60, append_a, NULL, &t->handle));
    CHECK_OK(test_run(loop, bind_primitives, t, NULL));
    CHECK(t->scope != NULL);
    /* The loop runs in this thread while the foreign thread tries. */
    CHECK_OK(cio_call_soon(loop, check_while_running, t, NULL));
    CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    /* And while the loop is not running: it still belongs to this thread,
     * the one that last ran it. */
    check_from_foreign_thread(t);
    /* This thread may do all of it. */
    CHECK_OK(cio_lock_release(t->lock));
    CHECK_OK(cio_semaphore_release(t->sem));
    CHECK_EQ(cio_handle_cancel(&t->handle), 1);
    CHECK_EQ(cio_future_cancel(t->future, NULL), 1);
    CHECK_EQ(cio_task_cancel(t->task, NULL), 1);
    CHECK_ERR(cio_run_until_complete(loop, t->task, NULL), -ECANCELED);
    cio_future_unref(t->task);
    cio_future_unref(t->future);
    cio_event_free(t->event);
    cio_lock_free(t->lock);
    cio_queue_free(t->queue);
    cio_semaphore_free(t->sem);
    CHECK_OK(cio_loop_free(loop));
}

/*
 * The same refusals while the loop is busy in its own thread at the same
 * moment, churning callback nodes: the refusal itself must read nothing
 * the loop's thread is changing (ThreadSanitizer checks this).
 */
static _Atomic int hammer_done, churn_started;

static void nop_cb(cio_loop *loop, void *arg) { (void)loop; (void)arg; }

static void *churn_until_hammer_done(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    atomic_store(&churn_started, 1);
    while (!atomic_load(&hammer_done)) {
        CHECK_OK(cio_call_soon(loop, nop_cb, NULL, NULL));
        CHECK_OK(cio_sleep(0));
    }
    return NULL;
}

typedef struct hammer_targets {
    cio_event *event;
    cio_lock *lock;
    cio_queue *queue;
    cio_semaphore *sem;
    cio_task *task;
    cio_future *future;
    cio_handle stale; /* its callback ran: its node is recycled meanwhile */
} hammer_targets;

static void *hammer(void *arg) {
    hammer_targets *t = arg;
    intptr_t accepted = 0;
    while (!atomic_load(&churn_started)) sched_yield();
    for (int i = 0; i < 2000; i++) {
        accepted += cio_event_set(t->event) != -CIO_EWRONGTHREAD;
        accepted += cio_lock_release(t->lock) != -CIO_EWRONGTHREAD;
        accepted += cio_queue_put_nowait(t->queue, IPTR(1)) != -CIO_EWRONGTHREAD;
        accepted += cio_semaphore_release(t->sem) != -CIO_EWRONGTHREAD;
        accepted += cio_task_cancel(t->task, NULL) != -CIO_EWRONGTHREAD;
        accepted += cio_future_cancel(t->future, NULL) != -CIO_EWRONGTHREAD;
        accepted += cio_handle_cancel(&t->stale) != -CIO_EWRONGTHREAD;
    }
    atomic_store(&hammer_done, 1);
    return (void *)accepted;
}

TEST(debug_mode_refuses_foreign_threads_while_the_loop_is_busy) {
    cio_loop_options opts = {.debug = 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    static hammer_targets t;
    memset(&t, 0, sizeof t);
    CHECK_OK(cio_event_new(&t.event));
    CHECK_OK(cio_lock_new(&t.lock));
    CHECK_OK(cio_queue_new(0, &t.queue));
    CHECK_OK(cio_semaphore_new(1, &t.sem));
    CHECK_OK(cio_future_new(loop, &t.future));
    CHECK_OK(cio_event_set(t.event));
    foreign_targets bind = {.event = t.event, .lock = t.lock, .queue = t.queue, .sem = t.sem};
    CHECK_OK(test_run(loop, bind_primitives, &bind, NULL));
    CHECK_OK(cio_call_soon(loop, nop_cb, NULL, &t.stale));
    CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_OK(cio_spawn(loop, churn_until_hammer_done, NULL, &t.task));
    atomic_store(&hammer_done, 0);
    atomic_store(&churn_started, 0);
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, hammer, &t));
    CHECK_OK(cio_run_until_complete(loop, t.task, NULL));
    void *accepted = NULL;
    CHECK_OK(pthread_join(th, &accepted));
    CHECK_EQ(PTRI(accepted), 0);
    CHECK(cio_lock_locked(t.lock));
    CHECK_EQ(cio_queue_size(t.queue), 1);
    CHECK(!cio_future_done(t.future));
    cio_future_unref(t.task);
    cio_future_unref(t.future);
    CHECK_OK(cio_lock_release(t.lock));
    cio_event_free(t.event);
    cio_lock_free(t.lock);
    cio_queue_free(t.queue);
    cio_semaphore_free(t.sem);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- cio_close and other threads' loops ---------------------------------- */

static void *wait_briefly_on_a_new_pair(void *arg) {
    (void)arg;
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    char c;
    /* Makes the loop's descriptor table grow and change. */
    cio_sock_recv_until(sv[0], &c, 1, cio_loop_time(cio_running_loop()) + 0.0005);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void *run_bursts(void *arg) {
    (void)arg;
    cio_loop *loop = test_loop();
    for (int i = 0; i < 200; i++) {
        cio_task *t;
        CHECK_OK(cio_spawn(loop, wait_briefly_on_a_new_pair, NULL, &t));
        CHECK_OK(cio_run_until_complete(loop, t, NULL));
        cio_future_unref(t);
    }
    cio_loop_free(loop);
    return NULL;
}

static void *close_own_pipes(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        int p[2];
        CHECK_OK(pipe2(p, O_CLOEXEC));
        CHECK_OK(cio_close(p[0]));
        CHECK_OK(cio_close(p[1]));
    }
    return NULL;
}

TEST(cio_close_leaves_other_threads_loops_alone) {
    /* Thread A runs its own loop in bursts (idle in between); thread B
     * closes its own descriptors with cio_close. B must never reach into
     * A's loop (TSan saw a race on its descriptor table when it did). */
    pthread_t a, b;
    CHECK_OK(pthread_create(&a, NULL, run_bursts, NULL));
    CHECK_OK(pthread_create(&b, NULL, close_own_pipes, NULL));
    CHECK_OK(pthread_join(a, NULL));
    CHECK_OK(pthread_join(b, NULL));
}

/* A dump from another thread and the start of the loop exclude each other:
 * each dump either reads a loop that does not run, to its end, or is
 * refused (-CIO_EWRONGTHREAD); the loop's start waits for a dump under
 * way. (The dump checked "running" once on entry, so a loop that started
 * during its walk overflowed its task array or looped for ever.) The loop's
 * thread leaves the loop alone between runs, as the header asks. */
static atomic_int dumping_done;
static atomic_long dumps_read, dumps_refused;

static void *dump_repeatedly(void *arg) {
    cio_loop *loop = arg;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    while (!atomic_load(&dumping_done)) {
        int rc = cio_dump(loop, fd, CIO_DUMP_JSON | CIO_DUMP_GRAPH);
        if (rc >= 0) {
            atomic_fetch_add(&dumps_read, 1);
        } else {
            CHECK_ERR(rc, -CIO_EWRONGTHREAD);
            atomic_fetch_add(&dumps_refused, 1);
        }
    }
    close(fd);
    return NULL;
}

static void *dump_sleeper(void *arg) {
    (void)arg;
    (void)cio_sleep(10);
    return NULL;
}

static atomic_int churn_finished;

static void *churn_and_stop(void *arg) {
    cio_loop *loop = arg;
    for (int i = 0; i < 200; i++) {
        cio_task *t;
        CHECK_OK(cio_spawn(loop, dump_sleeper, NULL, &t));
        CHECK_OK(cio_sleep(0));
        CHECK_EQ(cio_task_cancel(t, NULL), 1);
        CHECK_ERR(cio_await(t, NULL), -ECANCELED);
        cio_future_unref(t);
        /* Stop now and then: the loop starts again, against the dumps. */
        if (i % 10 == 9) {
            CHECK_OK(cio_loop_stop(loop));
            CHECK_OK(cio_sleep(0));
        }
    }
    /* Some dumps must have met the loop (the thread may start late). */
    while (atomic_load(&dumps_read) + atomic_load(&dumps_refused) < 100) CHECK_OK(cio_sleep(0.001));
    atomic_store(&churn_finished, 1);
    CHECK_OK(cio_loop_stop(loop));
    return NULL;
}

TEST(a_dump_from_another_thread_and_the_loops_start_exclude_each_other) {
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, churn_and_stop, loop, &t));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, dump_repeatedly, loop));
    while (!atomic_load(&churn_finished)) CHECK_OK(cio_run_forever(loop));
    atomic_store(&dumping_done, 1);
    CHECK_OK(pthread_join(th, NULL));
    CHECK(cio_future_done(t));
    cio_future_unref(t);
    CHECK(atomic_load(&dumps_refused) > 0);
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

/* The same with cio_run_until_complete, which registers a done callback on
 * its future before the loop runs: it registered it before the start
 * waited for the dumps, so a dump walking the ready queue and the waiters
 * read them while the loop's thread changed them (TSan saw the race). The
 * tasks are made before the dumps begin (the loop's thread changes nothing
 * else between runs, as the header asks); some are done before their run
 * (the callback goes straight to the ready queue), some not yet. */
#define RUC_TASKS 300

/* Every tenth task stops the loop as it ends, so that the loop stops in
 * the batch that completes the future and the stopper is still queued
 * when the run ends: run_until_complete takes it out, which must happen
 * before a dump may read the loop again. */
static void *sleep_for_its_index(void *arg) {
    (void)cio_sleep(PTRI(arg) * 0.0001);
    if (PTRI(arg) % 10 == 0) CHECK_OK(cio_loop_stop(cio_running_loop()));
    return arg;
}

TEST(run_until_complete_starts_the_loop_before_a_dump_can_see_its_callback) {
    static cio_task *tasks[RUC_TASKS];
    for (int round = 0; round < 4; round++) {
        cio_loop *loop = test_loop();
        atomic_store(&dumping_done, 0);
        atomic_store(&dumps_read, 0);
        atomic_store(&dumps_refused, 0);
        for (int i = 0; i < RUC_TASKS; i++)
            CHECK_OK(cio_spawn(loop, sleep_for_its_index, IPTR(i), &tasks[i]));
        pthread_t th;
        CHECK_OK(pthread_create(&th, NULL, dump_repeatedly, loop));
        while (atomic_load(&dumps_read) + atomic_load(&dumps_refused) < 10) sched_yield();
        for (int i = 0; i < RUC_TASKS; i++) {
            void *result;
            CHECK_OK(cio_run_until_complete(loop, tasks[i], &result));
            CHECK(PTRI(result) == i);
            CHECK_OK(cio_run_until_complete(loop, tasks[i], NULL)); /* done: queued at once */
        }
        atomic_store(&dumping_done, 1);
        CHECK_OK(pthread_join(th, NULL));
        CHECK(atomic_load(&dumps_read) > 0);
        for (int i = 0; i < RUC_TASKS; i++) cio_future_unref(tasks[i]);
        CHECK_OK(cio_loop_close(loop));
        cio_loop_free(loop);
    }
}

/* cio_dump_request from another thread while the loop's thread runs the
 * loop in short spells and then closes it: each request either wakes a
 * loop that is still whole (asleep in its poll, so the request wakes the
 * backend) or answers -CIO_ELOOPCLOSED; close waits for a request under
 * way before it tears the backend down (the request read the closed flags
 * unguarded, and could wake a backend close had begun to free). */
static atomic_long requests_made;

static void *request_until_closed(void *arg) {
    cio_loop *loop = arg;
    for (;;) {
        int rc = cio_dump_request(loop);
        if (rc == -CIO_ELOOPCLOSED) break;
        CHECK_OK(rc);
        atomic_fetch_add(&requests_made, 1);
    }
    return NULL;
}

static void *sleep_then_stop(void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(0.002));
    CHECK_OK(cio_loop_stop(cio_running_loop()));
    return NULL;
}

TEST(dump_requests_from_another_thread_while_the_loop_closes) {
    for (int round = 0; round < 20; round++) {
        cio_loop *loop = test_loop();
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        CHECK(devnull >= 0);
        CHECK_OK(cio_loop_set_dump_signal(loop, 0, devnull));
        atomic_store(&requests_made, 0);
        pthread_t th;
        CHECK_OK(pthread_create(&th, NULL, request_until_closed, loop));
        while (atomic_load(&requests_made) < 10) sched_yield();
        for (int spell = 0; spell < 3; spell++) {
            cio_task *t;
            CHECK_OK(cio_spawn(loop, sleep_then_stop, NULL, &t));
            CHECK_OK(cio_run_forever(loop));
            cio_future_unref(t);
        }
        CHECK_OK(cio_loop_close(loop));
        CHECK_OK(pthread_join(th, NULL));
        CHECK_ERR(cio_dump_request(loop), -CIO_ELOOPCLOSED);
        cio_loop_free(loop);
        close(devnull);
    }
}
