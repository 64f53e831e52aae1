/*
 * asyncio.Barrier (3.11+), with its four states:
 *
 *   filling    tasks arrive and wait; the one that makes `parties` switches
 *              the barrier to draining and wakes the others
 *   draining   the released tasks leave; newcomers wait until the last has
 *              left, which turns the barrier back to filling
 *   resetting  reset() while tasks wait: they leave with -CIO_EBROKEN, and
 *              the last to leave turns the barrier back to filling
 *   broken     abort(): every waiter and every later wait gets -CIO_EBROKEN
 *              until reset()
 *
 * wait returns the task's arrival index, 0 to parties - 1. A waiter that is
 * cancelled (or times out) while filling just leaves: the count drops and
 * the barrier stays usable, as in asyncio, where the CancelledError passes
 * through the barrier's `finally: count -= 1`.
 */
#include "internal.h"

enum barrier_state { FILLING, DRAINING, RESETTING, BROKEN };

struct cio_barrier {
    cio__waitq waiters;
    int parties;
    int count;
    int state;
};

int cio_barrier_new(cio_barrier **barrierp, int parties) {
    if (!barrierp) return -EINVAL;
    *barrierp = NULL;
    if (parties < 1) return -EINVAL; /* asyncio: ValueError */
    cio_barrier *b = cio__malloc(sizeof *b);
    if (!b) return -ENOMEM;
    cio__waitq_init(&b->waiters);
    b->parties = parties;
    b->count = 0;
    b->state = FILLING;
    *barrierp = b;
    return 0;
}

void cio_barrier_free(cio_barrier *b) {
    if (!b) return;
    if (!cio__waitq_empty(&b->waiters)) {
        cio__report(b->waiters.loop, "cio_barrier_free: tasks still wait on the barrier; not freed",
                    0, NULL);
        return;
    }
    cio__free(b);
}

/* The last task out of a draining or resetting barrier refills it. */
static void leave(cio_barrier *b) {
    b->count--;
    if (b->count == 0) {
        if (b->state == RESETTING || b->state == DRAINING) b->state = FILLING;
        cio__waitq_wake_all(&b->waiters, NULL);
    }
}

static int wait_barrier(cio_barrier *b, int64_t deadline) {
    if (!b) return -EINVAL;
    int rc = cio__waitq_check(&b->waiters);
    if (rc < 0) return rc;
    /* Wait while the previous round drains or a reset completes. */
    while (b->state == DRAINING || b->state == RESETTING) {
        cio__waiter w;
        rc = cio__waitq_wait(&b->waiters, &w, "barrier (draining)", deadline);
        if (rc < 0) return rc;
    }
    if (b->state == BROKEN) return -CIO_EBROKEN;
    int index = b->count++;
    if (index + 1 == b->parties) {
        b->state = DRAINING;
        cio__waitq_wake_all(&b->waiters, NULL);
    } else {
        while (b->state == FILLING) {
            cio__waiter w;
            rc = cio__waitq_wait(&b->waiters, &w, "barrier", deadline);
            if (rc < 0) break;
        }
        if (rc == 0 && (b->state == BROKEN || b->state == RESETTING)) rc = -CIO_EBROKEN;
    }
    leave(b);
    return rc < 0 ? rc : index;
}

int cio_barrier_wait(cio_barrier *b) {
    return wait_barrier(b, INT64_MAX);
}

int cio_barrier_wait_until(cio_barrier *b, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : wait_barrier(b, deadline);
}

int cio_barrier_reset(cio_barrier *b) {
    if (!b) return -EINVAL;
    if (b->count > 0)
        b->state = RESETTING;
    else
        b->state = FILLING;
    cio__waitq_wake_all(&b->waiters, NULL);
    return 0;
}

int cio_barrier_abort(cio_barrier *b) {
    if (!b) return -EINVAL;
    b->state = BROKEN;
    cio__waitq_wake_all(&b->waiters, NULL);
    return 0;
}

int cio_barrier_parties(const cio_barrier *b) {
    return b ? b->parties : -EINVAL;
}

int cio_barrier_n_waiting(const cio_barrier *b) {
    if (!b) return -EINVAL;
    return b->state == FILLING ? b->count : 0;
}

int cio_barrier_broken(const cio_barrier *b) {
    return b && b->state == BROKEN;
}
