/*
 * asyncio.Barrier (3.11+, 3.13 semantics), with its four states:
 *
 *   filling    tasks arrive and wait; the one that makes `parties` switches
 *              the barrier to draining and wakes the others
 *   draining   the released tasks leave; newcomers wait until the last has
 *              left, which turns the barrier back to filling
 *   resetting  reset() while tasks are inside: they leave with -CIO_EBROKEN,
 *              and the last to leave turns the barrier back to filling
 *   broken     abort(): every task inside and every later wait gets
 *              -CIO_EBROKEN until reset()
 *
 * wait returns the task's arrival index, `count` at its arrival. All tasks
 * wait in one FIFO queue and re-check the state whenever they are woken, as
 * asyncio's tasks re-check it around the barrier's condition variable;
 * every state change wakes them all.
 *
 * Cancellation and deadlines. A task cancelled (or timed out) while it waits
 * for a draining or resetting barrier to empty never entered it and just
 * leaves. A task cancelled while filling leaves too: `count` drops and the
 * barrier stays usable and unbroken, exactly as in asyncio, where the
 * CancelledError passes through the barrier's `finally: count -= 1` and the
 * other tasks keep waiting. (As in asyncio, a later arrival may then get the
 * same index as a task that is still waiting.) A task woken by the last
 * arrival but cancelled before it ran returns -ECANCELED and still counts as
 * having left, so the barrier drains normally.
 *
 * Lifetime. `users` counts the tasks inside wait(), woken or not: they touch
 * the barrier until they return. cio_barrier_free() refuses to free a
 * barrier while any exist, reports it (through the exception handler of its
 * loop if that loop is running, else the default handler) and leaves it
 * intact, since they would touch freed memory.
 */
#include "sync.h"

enum barrier_state { FILLING, DRAINING, RESETTING, BROKEN };

struct cio_barrier {
    cio__waitq waiters;
    int parties;
    int count;      /* tasks inside the barrier (filling or draining) */
    int state;
    unsigned users; /* tasks inside wait */
};

int cio_barrier_new(int parties, cio_barrier **barrierp) {
    if (!barrierp) return -EINVAL;
    *barrierp = NULL;
    if (parties < 1) return -EINVAL; /* asyncio: ValueError */
    cio_barrier *b = cio__malloc(sizeof *b);
    if (!b) return -ENOMEM;
    cio__waitq_init(&b->waiters);
    b->parties = parties;
    b->count = 0;
    b->state = FILLING;
    b->users = 0;
    *barrierp = b;
    return 0;
}


int cio_barrier_free(cio_barrier *b) {
    if (!b) return 0;
    if (b->users > 0)
        return cio__waitq_refuse_free(&b->waiters,
                                      "cio_barrier_free: tasks still wait on the barrier; not freed");
    cio__free(b);
    return 0;
}

/* A task leaves the barrier; the last one out of a draining or resetting
 * barrier refills it and lets the tasks blocked at the entrance in. */
static void leave(cio_barrier *b) {
    b->count--;
    if (b->count == 0) {
        if (b->state == RESETTING || b->state == DRAINING) b->state = FILLING;
        cio__waitq_wake_all(&b->waiters, NULL);
    }
}

static int wait_barrier(cio_barrier *b, int64_t deadline) {
    /* Block at the entrance while the previous round drains or a reset
     * completes (asyncio's _block). */
    int rc;
    while (b->state == DRAINING || b->state == RESETTING) {
        cio__waiter w;
        rc = cio__waitq_wait_on(&b->waiters, &w, CIO__WAIT_BARRIER, b, NULL,
                                "barrier (draining)", deadline);
        if (rc < 0) return rc;
    }
    if (b->state == BROKEN) return -CIO_EBROKEN;
    int index = b->count++;
    rc = 0;
    if (index + 1 == b->parties) {
        /* The last arrival trips the barrier (asyncio's _release). */
        b->state = DRAINING;
        cio__waitq_wake_all(&b->waiters, NULL);
    } else {
        /* Wait until the barrier trips, breaks or resets (asyncio's _wait). */
        while (b->state == FILLING) {
            cio__waiter w;
            rc = cio__waitq_wait_on(&b->waiters, &w, CIO__WAIT_BARRIER, b, NULL,
                                    "barrier", deadline);
            if (rc < 0) break;
        }
        if (rc == 0 && (b->state == BROKEN || b->state == RESETTING)) rc = -CIO_EBROKEN;
    }
    leave(b);
    return rc < 0 ? rc : index;
}

static int enter(cio_barrier *b, int64_t deadline) {
    if (!b) return -EINVAL;
    int rc = cio__waitq_check(&b->waiters);
    if (rc < 0) return rc;
    b->users++;
    rc = wait_barrier(b, deadline);
    b->users--;
    return rc;
}

int cio_barrier_wait(cio_barrier *b) {
    return enter(b, INT64_MAX);
}

int cio_barrier_wait_until(cio_barrier *b, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : enter(b, deadline);
}

int cio_barrier_reset(cio_barrier *b) {
    if (!b) return -EINVAL;
    int rc = cio__waitq_check_waker(&b->waiters);
    if (rc < 0) return rc;
    b->state = b->count > 0 ? RESETTING : FILLING;
    cio__waitq_wake_all(&b->waiters, NULL);
    return 0;
}

int cio_barrier_abort(cio_barrier *b) {
    if (!b) return -EINVAL;
    int rc = cio__waitq_check_waker(&b->waiters);
    if (rc < 0) return rc;
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
