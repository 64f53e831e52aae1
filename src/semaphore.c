/*
 * asyncio.Semaphore and BoundedSemaphore.
 *
 * value counts the free permits. acquire takes one at once only if one is
 * free and nobody waits (no barging); otherwise it queues. release hands its
 * permit straight to the first waiter, or returns it to value if nobody
 * waits. A waiter cancelled after a permit was handed to it passes the
 * permit on, so permits are never lost (see waitq.c). A bounded semaphore
 * refuses a release that would raise value above its initial value.
 */
#include "internal.h"

struct cio_semaphore {
    cio__waitq waiters;
    int value;
    int initial;
    int bounded;
};

static int make(cio_semaphore **semp, int value, int bounded) {
    if (!semp) return -EINVAL;
    *semp = NULL;
    if (value < 0) return -EINVAL; /* asyncio: ValueError */
    cio_semaphore *s = cio__malloc(sizeof *s);
    if (!s) return -ENOMEM;
    cio__waitq_init(&s->waiters);
    s->value = s->initial = value;
    s->bounded = bounded;
    *semp = s;
    return 0;
}

int cio_semaphore_new(cio_semaphore **semp, int value) {
    return make(semp, value, 0);
}

int cio_bounded_semaphore_new(cio_semaphore **semp, int value) {
    return make(semp, value, 1);
}

void cio_semaphore_free(cio_semaphore *s) {
    if (!s) return;
    if (!cio__waitq_empty(&s->waiters)) {
        cio__report(s->waiters.loop,
                    "cio_semaphore_free: tasks still wait on the semaphore; not freed", 0, NULL);
        return;
    }
    cio__free(s);
}

/* Gives a permit to the first waiter, or back to the pool. */
static void hand_on(cio_semaphore *s) {
    if (!cio__waitq_wake_one(&s->waiters, NULL)) s->value++;
}

static int acquire(cio_semaphore *s, int64_t deadline) {
    if (!s) return -EINVAL;
    int rc = cio__waitq_check(&s->waiters);
    if (rc < 0) return rc;
    if (s->value > 0 && cio__waitq_empty(&s->waiters)) {
        s->value--;
        return 0;
    }
    cio__waiter w;
    rc = cio__waitq_wait(&s->waiters, &w, "semaphore", deadline);
    if (rc == 0) return 0;
    if (w.woken) hand_on(s);
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
    /* Waiters exist only while value is 0, so a hand-off never exceeds the
     * bound; the check matters when nobody waits. */
    if (s->bounded && cio__waitq_empty(&s->waiters) && s->value >= s->initial)
        return -CIO_EINVALSTATE; /* asyncio: "BoundedSemaphore released too many times" */
    hand_on(s);
    return 0;
}

int cio_semaphore_locked(const cio_semaphore *s) {
    return s && (s->value == 0 || !cio__waitq_empty(&s->waiters));
}

int cio_semaphore_value(const cio_semaphore *s) {
    return s ? s->value : -EINVAL;
}
