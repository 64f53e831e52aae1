/*
 * run_coroutine_threadsafe: another thread starts a task in a loop and
 * waits for it on a thread-safe future (asyncio's concurrent.futures.Future).
 *
 * The future is shared by the submitting thread and the loop, so it is
 * reference counted atomically: one reference for the caller (dropped by
 * cio_tsfuture_free), one for the loop side (dropped once the task's
 * outcome is copied, or once the loop discards the work at close), and one
 * for a cancel request while it sits in the inbox. Its state is written
 * under its mutex and read atomically by the predicates; waiters sleep on
 * a condition variable on the monotonic clock.
 *
 * The life of one call, all loop-side steps in the loop's thread:
 *   1. The caller posts the spawn job to the loop's inbox (inbox.c).
 *   2. The spawn job starts the task, unless the future was cancelled
 *      meanwhile, and registers a waiter job on the task.
 *   3. The waiter copies the task's outcome into the future and wakes the
 *      threads waiting on it.
 * Cancelling the future (from any thread) completes it at once as
 * cancelled, as concurrent.futures does, and posts a cancel job that
 * cancels the task in its loop; the task's later outcome is dropped.
 * If the loop closes first, the spawn job's discard completes the future
 * with -CIO_ELOOPCLOSED, and a task destroyed pending makes it cancelled:
 * a waiter is never left waiting for ever.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "core.h"

enum { TS_PENDING = 0, TS_RESULT, TS_ERROR, TS_CANCELLED };

struct cio_tsfuture {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    _Atomic unsigned refs;
    _Atomic int state;      /* written under lock */
    void *result;
    int error;
    uint8_t cancel_posted;  /* under lock */
    cio_loop *loop;
    cio_coro_fn fn;
    void *arg;
    cio_task *task;         /* loop thread only: the task while it runs */
    cio__xjob spawn;
    cio__xjob cancel;
    cio__xjob done;         /* the waiter on the task */
};

static void ts_release(cio_tsfuture *f) {
    if (atomic_fetch_sub(&f->refs, 1) != 1) return;
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    cio__free(f);
}

/* The first completion wins; a later one (a task ending after the future
 * was cancelled) is dropped. */
static void ts_complete(cio_tsfuture *f, int state, void *result, int error) {
    pthread_mutex_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) == TS_PENDING) {
        f->result = result;
        f->error = error;
        atomic_store_explicit(&f->state, state, memory_order_release);
        pthread_cond_broadcast(&f->cond);
    }
    pthread_mutex_unlock(&f->lock);
}

static void ts_task_done(cio__xjob *x) {
    cio_tsfuture *f = CIO__CONTAINER_OF(x, cio_tsfuture, done);
    cio_task *task = f->task;
    f->task = NULL;
    void *result = NULL;
    int rc = cio__future_outcome(task, &result);
    if (task->state == CIO__CANCELLED)
        ts_complete(f, TS_CANCELLED, NULL, -ECANCELED);
    else if (rc < 0)
        ts_complete(f, TS_ERROR, NULL, rc);
    else
        ts_complete(f, TS_RESULT, result, 0);
    cio__future_unref(task);
    ts_release(f);
}

/* Loop close: the task is being destroyed without finishing (or finished
 * and its waiter never ran). */
static void ts_task_discard(cio__xjob *x) {
    cio_tsfuture *f = CIO__CONTAINER_OF(x, cio_tsfuture, done);
    cio_task *task = f->task;
    f->task = NULL;
    if (task->state == CIO__PENDING || task->state == CIO__CANCELLED) {
        ts_complete(f, TS_CANCELLED, NULL, -ECANCELED);
    } else {
        void *result = NULL;
        int rc = cio__future_outcome(task, &result);
        ts_complete(f, rc < 0 ? TS_ERROR : TS_RESULT, result, rc < 0 ? rc : 0);
    }
    cio__future_unref(task);
    ts_release(f);
}

static void ts_spawn(cio__xjob *x) {
    cio_tsfuture *f = CIO__CONTAINER_OF(x, cio_tsfuture, spawn);
    if (atomic_load_explicit(&f->state, memory_order_acquire) != TS_PENDING) {
        /* Cancelled before it started: the coroutine never runs. */
        ts_release(f);
        return;
    }
    cio_task *task;
    int rc = cio_spawn(f->loop, f->fn, f->arg, &task);
    if (rc < 0) {
        ts_complete(f, TS_ERROR, NULL, rc);
        ts_release(f);
        return;
    }
    f->task = task;
    cio__xjob_init(&f->done, ts_task_done, ts_task_discard);
    cio__future_add_waiter(task, &f->done.job);
}

static void ts_spawn_discard(cio__xjob *x) {
    cio_tsfuture *f = CIO__CONTAINER_OF(x, cio_tsfuture, spawn);
    ts_complete(f, TS_ERROR, NULL, -CIO_ELOOPCLOSED);
    ts_release(f);
}

static void ts_cancel(cio__xjob *x) {
    cio_tsfuture *f = CIO__CONTAINER_OF(x, cio_tsfuture, cancel);
    /* No task yet: the spawn job, still to run, sees the cancelled state. */
    if (f->task) cio_task_cancel(f->task, NULL);
    ts_release(f);
}

static void ts_cancel_discard(cio__xjob *x) {
    ts_release(CIO__CONTAINER_OF(x, cio_tsfuture, cancel));
}

int cio_run_coroutine_threadsafe(cio_loop *loop, cio_coro_fn fn, void *arg, cio_tsfuture **out) {
    if (out) *out = NULL;
    if (!loop || !fn || !out) return -EINVAL;
    cio_tsfuture *f = cio__calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&f->lock, NULL);
    atomic_init(&f->refs, 2);
    atomic_init(&f->state, TS_PENDING);
    f->loop = loop;
    f->fn = fn;
    f->arg = arg;
    cio__xjob_init(&f->spawn, ts_spawn, ts_spawn_discard);
    cio__xjob_init(&f->cancel, ts_cancel, ts_cancel_discard);
    int rc = cio__inbox_post_call(loop, &f->spawn);
    if (rc < 0) {
        atomic_store(&f->refs, 1);
        ts_release(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* Waits under f->lock until f is done or the timeout passes. The loop's
 * own thread would wait for ever for work only it can do: -EDEADLK. */
static int ts_wait_locked(cio_tsfuture *f, double timeout) {
    if (atomic_load_explicit(&f->state, memory_order_relaxed) != TS_PENDING) return 0;
    if (cio_running_loop() == f->loop) return -EDEADLK;
    if (timeout <= 0) return -ETIMEDOUT;
    if (isinf(timeout)) {
        while (atomic_load_explicit(&f->state, memory_order_relaxed) == TS_PENDING)
            pthread_cond_wait(&f->cond, &f->lock);
        return 0;
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    double whole = floor(timeout);
    /* Far-off timeouts are clamped: a day is "never" for a wait like this
     * as far as overflow goes, and the loop simply waits again. */
    if (whole > 86400.0 * 365) whole = 86400.0 * 365;
    until.tv_sec += (time_t)whole;
    until.tv_nsec += (long)((timeout - floor(timeout)) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (atomic_load_explicit(&f->state, memory_order_relaxed) == TS_PENDING) {
        if (pthread_cond_timedwait(&f->cond, &f->lock, &until) == ETIMEDOUT) {
            if (atomic_load_explicit(&f->state, memory_order_relaxed) == TS_PENDING) return -ETIMEDOUT;
            break;
        }
    }
    return 0;
}

int cio_tsfuture_wait(cio_tsfuture *f, double timeout) {
    if (!f || isnan(timeout)) return -EINVAL;
    pthread_mutex_lock(&f->lock);
    int rc = ts_wait_locked(f, timeout);
    pthread_mutex_unlock(&f->lock);
    return rc;
}

int cio_tsfuture_result(cio_tsfuture *f, double timeout, void **result) {
    if (!f || isnan(timeout)) return -EINVAL;
    pthread_mutex_lock(&f->lock);
    int rc = ts_wait_locked(f, timeout);
    if (rc == 0) {
        switch (atomic_load_explicit(&f->state, memory_order_relaxed)) {
        case TS_RESULT:
            if (result) *result = f->result;
            break;
        case TS_ERROR: rc = f->error; break;
        default: rc = -ECANCELED; break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

int cio_tsfuture_cancel(cio_tsfuture *f) {
    if (!f) return -EINVAL;
    pthread_mutex_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) != TS_PENDING) {
        pthread_mutex_unlock(&f->lock);
        return 0;
    }
    f->error = -ECANCELED;
    atomic_store_explicit(&f->state, TS_CANCELLED, memory_order_release);
    pthread_cond_broadcast(&f->cond);
    int post = !f->cancel_posted;
    f->cancel_posted = 1;
    if (post) atomic_fetch_add(&f->refs, 1);
    pthread_mutex_unlock(&f->lock);
    /* A closed loop refuses the request; its task is gone anyway. */
    if (post && cio__inbox_post(f->loop, &f->cancel) < 0) ts_release(f);
    return 1;
}

int cio_tsfuture_done(const cio_tsfuture *f) {
    return f && atomic_load_explicit(&f->state, memory_order_acquire) != TS_PENDING;
}

int cio_tsfuture_cancelled(const cio_tsfuture *f) {
    return f && atomic_load_explicit(&f->state, memory_order_acquire) == TS_CANCELLED;
}

int cio_tsfuture_free(cio_tsfuture *f) {
    if (f) ts_release(f);
    return 0;
}
