/*
 * asyncio.Lock.
 *
 * Fairness: acquire takes the lock at once only when it is free and nobody
 * waits for it; otherwise the task joins the FIFO wait queue. release hands
 * the lock straight to the first waiter (it stays locked), so a newcomer can
 * never take it between the release and the waiter's turn. asyncio marks
 * the lock free and lets the woken waiter take it; a newcomer still waits
 * behind it there, so the order of acquisitions is the same.
 *
 * Cancellation: a waiter cancelled before the hand-off just leaves the
 * queue. A waiter cancelled after the lock was handed to it (in the same
 * iteration, before it ran) gives the lock on at once, so it is never lost.
 *
 * Freeing a lock that tasks still wait on would leave them pointing at
 * freed memory: cio_lock_free refuses, and says so through the exception
 * handler of the loop the lock is bound to.
 */
#include "internal.h"

struct cio_lock {
    cio__waitq waiters;
    int locked;
};

int cio_lock_new(cio_lock **lockp) {
    if (!lockp) return -EINVAL;
    cio_lock *lock = cio__malloc(sizeof *lock);
    *lockp = lock;
    if (!lock) return -ENOMEM;
    cio__waitq_init(&lock->waiters);
    lock->locked = 0;
    return 0;
}

void cio_lock_free(cio_lock *lock) {
    if (!lock) return;
    if (!cio__waitq_empty(&lock->waiters)) {
        cio__report(lock->waiters.loop, "cio_lock_free: tasks still wait on the lock; not freed", 0,
                    NULL);
        return;
    }
    cio__free(lock);
}

/* Gives the lock to the first waiter, or frees it if nobody waits. */
static void hand_on(cio_lock *lock) {
    if (!cio__waitq_wake_one(&lock->waiters, NULL)) lock->locked = 0;
}

static int acquire(cio_lock *lock, int64_t deadline) {
    if (!lock) return -EINVAL;
    int rc = cio__waitq_check(&lock->waiters);
    if (rc < 0) return rc;
    if (!lock->locked && cio__waitq_empty(&lock->waiters)) {
        lock->locked = 1;
        return 0;
    }
    cio__waiter w;
    rc = cio__waitq_wait(&lock->waiters, &w, "lock", deadline);
    if (rc == 0) return 0; /* the releaser handed the lock over */
    if (w.woken) hand_on(lock);
    return rc;
}

int cio_lock_acquire(cio_lock *lock) {
    return acquire(lock, INT64_MAX);
}

int cio_lock_acquire_until(cio_lock *lock, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : acquire(lock, deadline);
}

int cio_lock_release(cio_lock *lock) {
    if (!lock) return -EINVAL;
    if (!lock->locked) return -CIO_EINVALSTATE; /* asyncio: "Lock is not acquired." */
    hand_on(lock);
    return 0;
}

int cio_lock_locked(const cio_lock *lock) {
    return lock && lock->locked;
}
