/*
 * asyncio.Event.
 *
 * set() wakes every task waiting at that moment, in the order they started
 * waiting, and later waits return at once until clear(). A woken waiter
 * returns 0 even if the event was cleared again before it ran, as asyncio's
 * does. Since set() wakes everybody, a waiter that is cancelled after being
 * woken has nothing to pass on: it just returns -ECANCELED.
 *
 * Lifetime. A woken waiter never touches the event again, so an event may be
 * freed as soon as nobody is queued on it (typically right after set()).
 * cio_event_free() refuses to free an event that tasks still wait on,
 * reports it (through the exception handler of the event's loop if that
 * loop is running, else the default handler) and leaves the event intact,
 * since freeing it would leave those tasks pointing at freed memory.
 */
#include "sync.h"

struct cio_event {
    cio__waitq waiters;
    int set;
};

int cio_event_new(cio_event **eventp) {
    if (!eventp) return -EINVAL;
    cio_event *e = cio__malloc(sizeof *e);
    *eventp = e;
    if (!e) return -ENOMEM;
    cio__waitq_init(&e->waiters);
    e->set = 0;
    return 0;
}


int cio_event_free(cio_event *e) {
    if (!e) return 0;
    if (!cio__waitq_empty(&e->waiters))
        return cio__waitq_refuse_free(&e->waiters,
                                      "cio_event_free: tasks still wait on the event; not freed");
    cio__free(e);
    return 0;
}

static int wait_event(cio_event *e, int64_t deadline) {
    if (!e) return -EINVAL;
    int rc = cio__waitq_check(&e->waiters);
    if (rc < 0) return rc;
    if (e->set) return 0;
    cio__waiter w;
    /* Whatever the outcome, the event must not be touched after this: it
     * may have been freed once set() emptied the queue. */
    return cio__waitq_wait_on(&e->waiters, &w, CIO__WAIT_EVENT, e, NULL, "event", deadline);
}

int cio_event_wait(cio_event *e) {
    return wait_event(e, INT64_MAX);
}

int cio_event_wait_until(cio_event *e, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : wait_event(e, deadline);
}

int cio_event_set(cio_event *e) {
    if (!e) return -EINVAL;
    /* Waking tasks of another loop from here would corrupt its ready queue. */
    int rc = cio__waitq_check_waker(&e->waiters);
    if (rc < 0) return rc;
    if (!e->set) {
        e->set = 1;
        cio__waitq_wake_all(&e->waiters, NULL);
    }
    return 0;
}

int cio_event_clear(cio_event *e) {
    if (!e) return -EINVAL;
    /* Clearing wakes nobody, so another loop may do it (as asyncio's
     * clear(), which checks no loop); a foreign thread may not. */
    int rc = cio__waitq_check_thread(&e->waiters);
    if (rc < 0) return rc;
    e->set = 0;
    return 0;
}

int cio_event_is_set(const cio_event *e) {
    return e && e->set;
}
