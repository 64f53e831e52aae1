/*
 * asyncio.Condition (3.13 semantics).
 *
 * wait() requires the lock to be held (asyncio checks locked(), not who
 * holds it), releases it, waits in the condition's FIFO queue for a notify,
 * and then re-acquires the lock whatever happened. notify(n) wakes the first
 * n waiters in the order they started waiting.
 *
 * Re-acquiring. As in asyncio, the re-acquire is a loop around the lock's
 * acquire: a cancellation that arrives while re-acquiring is noted and the
 * acquire retried (at the back of the lock's queue, as asyncio's retry
 * does), and the error is returned only once the lock is held again. The
 * deadline of wait_until covers the whole call, as `asyncio.timeout_at`
 * around `cond.wait()` would: a waiter notified in time that cannot get the
 * lock back before the deadline keeps waiting for the lock (now without a
 * deadline) and then returns -ETIMEDOUT. A cancellation outranks a timeout.
 *
 * Lost notifications. A waiter that was notified but then fails, because it
 * was cancelled before it ran or while it re-acquired the lock, or because
 * its deadline passed while it re-acquired the lock, passes the
 * notification on to the next waiter once it holds the lock again. asyncio
 * 3.13 notifies another waiter after any error, notified or not; cio does so
 * only when the failing waiter had really been notified, so it never causes
 * a spurious wake-up (which the condition variable protocol allows, but
 * does not require).
 *
 * Lifetime. `users` counts the tasks inside wait() and inside acquire() (the
 * latter because an own lock is reachable only through the condition).
 * cio_condition_free() refuses to free a condition while any exist, reports
 * it (through the exception handler of its loop if that loop is running,
 * else the default handler) and leaves it intact, since they would touch
 * freed memory.
 */
#include <math.h>

#include "sync.h"

struct cio_condition {
    cio__waitq waiters;
    cio_lock *lock;
    unsigned users;   /* tasks inside wait or acquire */
    uint8_t own_lock; /* the lock was created with the condition */
};

int cio_condition_new(cio_lock *lock, cio_condition **condp) {
    if (!condp) return -EINVAL;
    *condp = NULL;
    cio_condition *c = cio__malloc(sizeof *c);
    if (!c) return -ENOMEM;
    c->own_lock = lock == NULL;
    if (!lock) {
        int rc = cio_lock_new(&lock);
        if (rc < 0) {
            cio__free(c);
            return rc;
        }
    }
    c->lock = lock;
    c->users = 0;
    cio__waitq_init(&c->waiters);
    *condp = c;
    return 0;
}


int cio_condition_free(cio_condition *c) {
    if (!c) return 0;
    if (c->users > 0 || !cio__waitq_empty(&c->waiters))
        return cio__waitq_refuse_free(&c->waiters,
                    "cio_condition_free: tasks still wait on the condition; not freed");
    /* Nobody is inside the condition, so nobody is inside its own lock. */
    if (c->own_lock) cio_lock_free(c->lock);
    cio__free(c);
    return 0;
}

int cio_condition_acquire(cio_condition *c) {
    if (!c) return -EINVAL;
    int rc = cio__waitq_check(&c->waiters);
    if (rc < 0) return rc;
    c->users++;
    rc = cio_lock_acquire(c->lock);
    c->users--;
    return rc;
}

int cio_condition_release(cio_condition *c) {
    return c ? cio_lock_release(c->lock) : -EINVAL;
}

int cio_condition_locked(const cio_condition *c) {
    return c && cio_lock_locked(c->lock);
}

/* Wakes the first n waiters. */
static void notify(cio_condition *c, size_t n) {
    while (n-- > 0 && cio__waitq_wake_one(&c->waiters, NULL)) {
    }
}

/* Re-acquires the lock after a wait that ended with rc, retrying after
 * cancellations and after the deadline; returns the error to report. */
static int reacquire(cio_condition *c, int rc, double when) {
    for (;;) {
        /* Only a wait that has not failed yet still honours the deadline. */
        int arc = rc == 0 ? cio_lock_acquire_until(c->lock, when) : cio_lock_acquire(c->lock);
        if (arc == 0) return rc;
        if (arc == -ECANCELED)
            rc = -ECANCELED;
        else if (arc == -ETIMEDOUT || arc == -ENOMEM) /* ENOMEM: no timer; retry without */
            rc = rc == 0 ? arc : rc;
        else
            return arc; /* cannot happen: the lock was just released by this task */
    }
}

static int wait_cond(cio_condition *c, double when) {
    if (!c) return -EINVAL;
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    if (rc < 0) return rc;
    rc = cio__waitq_check(&c->waiters);
    if (rc < 0) return rc;
    /* asyncio: "cannot wait on un-acquired lock" */
    if (!cio_lock_locked(c->lock)) return -CIO_EINVALSTATE;
    rc = cio_lock_release(c->lock);
    if (rc < 0) return rc; /* a lock of another loop */
    c->users++;
    cio__waiter w;
    w.woken = 0;
    rc = cio__waitq_wait_on(&c->waiters, &w, CIO__WAIT_CONDITION, c, NULL, "condition", deadline);
    rc = reacquire(c, rc, when);
    c->users--;
    /* We hold the lock again. A notification we received but will not act
     * on goes to the next waiter. */
    if (rc < 0 && w.woken) notify(c, 1);
    return rc;
}

int cio_condition_wait(cio_condition *c) {
    return wait_cond(c, INFINITY);
}

int cio_condition_wait_until(cio_condition *c, double when) {
    return wait_cond(c, when);
}

int cio_condition_wait_for(cio_condition *c, int (*pred)(void *arg), void *arg) {
    if (!c || !pred) return -EINVAL;
    int rc = cio__waitq_check(&c->waiters);
    if (rc < 0) return rc;
    while (!pred(arg)) {
        rc = wait_cond(c, INFINITY);
        if (rc < 0) return rc;
    }
    return 0;
}

/* A call that wakes tasks must come from the condition's loop, or from
 * outside any running loop; and the lock must be held. */
static int check_notifier(const cio_condition *c) {
    int rc = cio__waitq_check_waker(&c->waiters);
    if (rc < 0) return rc;
    /* asyncio: "cannot notify on un-acquired lock" */
    return cio_lock_locked(c->lock) ? 0 : -CIO_EINVALSTATE;
}

int cio_condition_notify(cio_condition *c, int n) {
    if (!c || n < 0) return -EINVAL;
    int rc = check_notifier(c);
    if (rc < 0) return rc;
    notify(c, (size_t)n);
    return 0;
}

int cio_condition_notify_all(cio_condition *c) {
    if (!c) return -EINVAL;
    int rc = check_notifier(c);
    if (rc < 0) return rc;
    notify(c, c->waiters.count);
    return 0;
}
