/*
 * asyncio.Condition.
 *
 * wait() requires the lock, releases it, waits in the condition's FIFO for
 * a notify, and then re-acquires the lock whatever happened: a cancellation
 * (or deadline) that arrives while waiting or while re-acquiring is held
 * back until the lock is held again, then returned. A waiter that was
 * notified but is cancelled before it runs passes the notification on to
 * the next waiter (3.13: a notify is never lost to a cancelled task).
 */
#include "internal.h"

struct cio_condition {
    cio_lock *lock;
    int own_lock;
    cio__waitq waiters;
};

int cio_condition_new(cio_condition **condp, cio_lock *lock) {
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
    cio__waitq_init(&c->waiters);
    *condp = c;
    return 0;
}

void cio_condition_free(cio_condition *c) {
    if (!c) return;
    if (!cio__waitq_empty(&c->waiters)) {
        cio__report(c->waiters.loop,
                    "cio_condition_free: tasks still wait on the condition; not freed", 0, NULL);
        return;
    }
    if (c->own_lock) cio_lock_free(c->lock);
    cio__free(c);
}

int cio_condition_acquire(cio_condition *c) {
    return c ? cio_lock_acquire(c->lock) : -EINVAL;
}

int cio_condition_release(cio_condition *c) {
    return c ? cio_lock_release(c->lock) : -EINVAL;
}

int cio_condition_locked(const cio_condition *c) {
    return c && cio_lock_locked(c->lock);
}

static void notify(cio_condition *c, size_t n) {
    while (n-- > 0 && cio__waitq_wake_one(&c->waiters, NULL)) {
    }
}

static int wait_cond(cio_condition *c, int64_t deadline) {
    if (!c) return -EINVAL;
    int rc = cio__waitq_check(&c->waiters);
    if (rc < 0) return rc;
    /* asyncio: "cannot wait on un-acquired lock" */
    if (!cio_lock_locked(c->lock)) return -CIO_EINVALSTATE;
    cio_lock_release(c->lock);
    cio__waiter w;
    rc = cio__waitq_wait(&c->waiters, &w, "condition", deadline);
    if (rc < 0 && w.woken) notify(c, 1);
    /* Re-acquire even if cancelled; keep the first error to return. */
    for (;;) {
        int arc = cio_lock_acquire(c->lock);
        if (arc == 0) break;
        if (arc != -ECANCELED) return arc; /* cannot happen without a deadline */
        rc = -ECANCELED;
    }
    return rc;
}

int cio_condition_wait(cio_condition *c) {
    return wait_cond(c, INT64_MAX);
}

int cio_condition_wait_until(cio_condition *c, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : wait_cond(c, deadline);
}

int cio_condition_wait_for(cio_condition *c, int (*pred)(void *arg), void *arg) {
    if (!c || !pred) return -EINVAL;
    while (!pred(arg)) {
        int rc = wait_cond(c, INT64_MAX);
        if (rc < 0) return rc;
    }
    return 0;
}

int cio_condition_notify(cio_condition *c, int n) {
    if (!c || n < 0) return -EINVAL;
    /* asyncio: "cannot notify on un-acquired lock" */
    if (!cio_lock_locked(c->lock)) return -CIO_EINVALSTATE;
    notify(c, (size_t)n);
    return 0;
}

int cio_condition_notify_all(cio_condition *c) {
    if (!c) return -EINVAL;
    if (!cio_lock_locked(c->lock)) return -CIO_EINVALSTATE;
    notify(c, c->waiters.count);
    return 0;
}
