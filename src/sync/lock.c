/*
 * asyncio.Lock.
 *
 * The lock follows asyncio's model rather than a direct hand-off. release()
 * marks the lock free and wakes the first waiter in the FIFO wait queue; the
 * woken waiter takes the lock when it runs. Between the two the lock is
 * unlocked (locked() is false, and a second release() is refused, exactly
 * as in asyncio), but it is promised: `pending` records that a woken waiter
 * is on its way, and acquire() takes the fast path only when the lock is
 * free, nothing is pending and nobody waits. A newcomer therefore never
 * barges past a waiter, and locks are granted strictly in arrival order.
 *
 * Cancellation. A waiter cancelled (or timed out) before it was woken simply
 * leaves the queue: it received nothing. A waiter that was woken and then
 * cancelled before it ran (cio__waitq_wait returns -ECANCELED with woken
 * set) gives up its turn: it clears `pending` and wakes the next waiter, so
 * the lock is never lost to a cancelled task. A deadline cannot strike after
 * the wake-up, because a woken task is no longer suspended; a woken waiter
 * therefore returns 0 even if its deadline passed before it ran.
 *
 * Lifetime. `users` counts the tasks inside the waiting part of acquire(),
 * including woken ones that have not returned yet (they still touch the
 * lock). cio_lock_free() refuses to free a lock while any such task exists,
 * reports it (through the exception handler of the lock's loop if that loop
 * is running, else the default handler) and leaves the lock intact, since
 * freeing it would leave those tasks pointing at freed memory. Freeing a
 * lock that is held but has no waiters is allowed.
 */
#include "sync.h"

struct cio_lock {
    cio__waitq waiters;
    /* The id of the task that took the lock, 0 while it is free: the edge
     * "held by" of the await graph, for the dump's deadlock cycles. asyncio's
     * Lock has no owner (any task may release it), and neither is this one
     * checked on release: it is only recorded. */
    uint64_t owner;
    unsigned users;  /* tasks inside the waiting part of acquire */
    uint8_t locked;
    uint8_t pending; /* a woken waiter has yet to take the lock */
};

int cio_lock_new(cio_lock **lockp) {
    if (!lockp) return -EINVAL;
    cio_lock *lock = cio__malloc(sizeof *lock);
    *lockp = lock;
    if (!lock) return -ENOMEM;
    cio__waitq_init(&lock->waiters);
    lock->users = 0;
    lock->owner = 0;
    lock->locked = 0;
    lock->pending = 0;
    return 0;
}


int cio_lock_free(cio_lock *lock) {
    if (!lock) return 0;
    if (lock->users > 0)
        return cio__waitq_refuse_free(&lock->waiters,
                                      "cio_lock_free: tasks still wait on the lock; not freed");
    cio__free(lock);
    return 0;
}

/* The lock is free: wake the first waiter, which takes it when it runs. */
static void wake_first(cio_lock *lock) {
    if (cio__waitq_wake_one(&lock->waiters, NULL)) lock->pending = 1;
}

/* The task acquiring: acquire checked that there is one. */
static uint64_t current_id(void) {
    int rc;
    cio__task *t = cio__current(&rc);
    return t ? t->id : 0;
}

static int acquire(cio_lock *lock, int64_t deadline) {
    if (!lock) return -EINVAL;
    int rc = cio__waitq_check(&lock->waiters);
    if (rc < 0) return rc;
    if (!lock->locked && !lock->pending && cio__waitq_empty(&lock->waiters)) {
        lock->locked = 1;
        lock->owner = current_id();
        return 0;
    }
    cio__waiter w;
    w.woken = 0;
    lock->users++;
    rc = cio__waitq_wait_on(&lock->waiters, &w, CIO__WAIT_LOCK, lock, &lock->owner, "lock",
                            deadline);
    lock->users--;
    if (w.woken) {
        /* Our turn came. Take the lock, or pass the turn on if we were
         * cancelled before we could run. */
        lock->pending = 0;
        if (rc == 0) {
            lock->locked = 1;
            lock->owner = current_id();
            return 0;
        }
        wake_first(lock);
    }
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
    int rc = cio__waitq_check_waker(&lock->waiters);
    if (rc < 0) return rc;
    if (!lock->locked) return -CIO_EINVALSTATE; /* asyncio: "Lock is not acquired." */
    lock->locked = 0;
    lock->owner = 0;
    wake_first(lock);
    return 0;
}

int cio_lock_locked(const cio_lock *lock) {
    return lock && lock->locked;
}
