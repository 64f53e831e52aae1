/*
 * asyncio.Semaphore and BoundedSemaphore (3.13 semantics).
 *
 * `value` counts the free permits. As in asyncio, waking a waiter reserves
 * a permit for it at once: the permit moves from `value` to `pending` (woken
 * waiters that have not run yet), and becomes the waiter's own when it runs.
 *
 * Fairness. acquire() takes a permit at once only when the semaphore is not
 * locked(), that is when a permit is free, nobody is queued and no woken
 * waiter is still on its way (asyncio counts a woken waiter that has not run
 * as a waiter too). Otherwise the task joins the FIFO wait queue. release()
 * returns a permit and hands the free permits to the first waiters in the
 * queue. Whenever a task leaves the waiting part of acquire(), however it
 * leaves, it does the same (asyncio's `finally` loop): newcomers that queued
 * behind a woken waiter while a permit was free get their turn then.
 *
 * Cancellation. A waiter cancelled (or timed out) before it was woken just
 * leaves the queue. A waiter that was woken and then cancelled before it ran
 * returns its reserved permit to `value` and wakes the next waiter with it,
 * so a permit is never lost to a cancelled task, nor made up.
 *
 * A bounded semaphore refuses a release that would leave more permits than
 * it started with. The check counts reserved permits too (value + pending),
 * so an extra release made while a woken waiter has not run yet is refused;
 * asyncio compares only its value and lets that one through.
 *
 * Lifetime. `users` counts the tasks inside the waiting part of acquire(),
 * woken or not. cio_semaphore_free() refuses to free a semaphore while any
 * exist, reports it (through the exception handler of its loop if that loop
 * is running, else the default handler) and leaves it intact, since they
 * would touch freed memory.
 */
#include <limits.h>

#include "sync.h"

struct cio_semaphore {
    cio__waitq waiters;
    int value;      /* free permits */
    int pending;    /* permits reserved for woken waiters that have not run */
    int initial;
    unsigned users; /* tasks inside the waiting part of acquire */
    uint8_t bounded;
};

static int make(cio_semaphore **semp, int value, int bounded) {
    if (!semp) return -EINVAL;
    *semp = NULL;
    if (value < 0) return -EINVAL; /* asyncio: ValueError */
    cio_semaphore *s = cio__malloc(sizeof *s);
    if (!s) return -ENOMEM;
    cio__waitq_init(&s->waiters);
    s->value = s->initial = value;
    s->pending = 0;
    s->users = 0;
    s->bounded = (uint8_t)bounded;
    *semp = s;
    return 0;
}

int cio_semaphore_new(int value, cio_semaphore **semp) {
    return make(semp, value, 0);
}

int cio_bounded_semaphore_new(int value, cio_semaphore **semp) {
    return make(semp, value, 1);
}


int cio_semaphore_free(cio_semaphore *s) {
    if (!s) return 0;
    if (s->users > 0)
        return cio__waitq_refuse_free(&s->waiters,
                    "cio_semaphore_free: tasks still wait on the semaphore; not freed");
    cio__free(s);
    return 0;
}

/* asyncio's locked(): acquire would have to wait. */
static bool is_locked(const cio_semaphore *s) {
    return s->value == 0 || s->pending > 0 || !cio__waitq_empty(&s->waiters);
}

/* Hands free permits to queued waiters, first come first served. */
static void wake_waiters(cio_semaphore *s) {
    while (s->value > 0 && cio__waitq_wake_one(&s->waiters, NULL)) {
        s->value--;
        s->pending++;
    }
}

static int acquire(cio_semaphore *s, int64_t deadline) {
    if (!s) return -EINVAL;
    int rc = cio__waitq_check(&s->waiters);
    if (rc < 0) return rc;
    if (!is_locked(s)) {
        s->value--;
        return 0;
    }
    cio__waiter w;
    w.woken = 0;
    s->users++;
    rc = cio__waitq_wait_on(&s->waiters, &w, CIO__WAIT_SEMAPHORE, s, NULL, "semaphore", deadline);
    s->users--;
    if (w.woken) {
        s->pending--;
        if (rc < 0) s->value++; /* cancelled after the wake-up: give the permit back */
    }
    wake_waiters(s);
    return rc;
}

int cio_semaphore_acquire(cio_semaphore *s) {
    return acquire(s, INT64_MAX);
}

int cio_semaphore_acquire_until(cio_semaphore *s, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : acquire(s, deadline);
}

int cio_semaphore_release(cio_semaphore *s) {
    if (!s) return -EINVAL;
    /* Waking tasks of another loop from here would corrupt its ready queue. */
    int rc = cio__waitq_check_waker(&s->waiters);
    if (rc < 0) return rc;
    if (s->bounded && s->value >= s->initial - s->pending)
        return -CIO_EINVALSTATE; /* asyncio: "BoundedSemaphore released too many times" */
    if (s->value >= INT_MAX - s->pending) return -EOVERFLOW;
    s->value++;
    wake_waiters(s);
    return 0;
}

int cio_semaphore_locked(const cio_semaphore *s) {
    return s && is_locked(s);
}

int cio_semaphore_value(const cio_semaphore *s) {
    return s ? s->value : -EINVAL;
}
