/*
 * Wait queues: FIFO lists of suspended tasks, the common part of every
 * synchronisation primitive and queue.
 *
 * A waiter lives on its task's stack. Waking one unlinks it, marks it
 * woken and schedules its task, so a wake-up is given to exactly one
 * waiter, in arrival order. Cancelling (or timing out) a waiter that was
 * not woken yet simply unlinks it: it never received anything. A waiter
 * that was woken but is cancelled before it runs returns -ECANCELED with
 * woken set, and the primitive passes the wake-up on to the next waiter:
 * this is how asyncio keeps a lock, a permit or an item from being lost to
 * a cancelled task.
 */
#include "sync.h"

void cio__waitq_init(cio__waitq *q) {
    cio__list_init(&q->waiters);
    q->count = 0;
    q->loop = NULL;
    q->generation = 0;
    q->debug = 0;
}

static void leave(cio__waiter *w) {
    if (cio__link_linked(&w->link)) {
        cio__list_unlink(&w->link);
        w->queue->count--;
    }
}

static int cancel_waiter(cio__wait *rec, const char *msg) {
    (void)msg;
    cio__waiter *w = CIO__CONTAINER_OF(rec, cio__waiter, rec);
    leave(w);
    cio__task_wake(w->task, -ECANCELED);
    return 1;
}

static void abandon_waiter(cio__wait *rec) {
    leave(CIO__CONTAINER_OF(rec, cio__waiter, rec));
}

int cio__waitq_wait(cio__waitq *q, cio__waiter *w, const char *what, int64_t deadline) {
    return cio__waitq_wait_on(q, w, CIO__WAIT_OTHER, q, NULL, what, deadline);
}

int cio__waitq_wait_on(cio__waitq *q, cio__waiter *w, uint8_t kind, const void *object,
                       const uint64_t *owner, const char *what, int64_t deadline) {
    int rc = cio__waitq_check(q);
    if (rc < 0) return rc;
    cio__task *t = cio__running_task;
    w->task = t;
    w->queue = q;
    w->woken = 0;
    w->value = NULL;
    /* Field by field rather than from a compound literal, which gcc builds
     * on the stack and then copies; every hook the waiter does not use is
     * NULL, cio__task_suspend_until stamps a deadline and cio__task_suspend
     * the "since". The assertion fails when cio__wait gains a field, which
     * must then be set here too. */
    _Static_assert(sizeof(cio__wait) == 88, "cio__wait changed: set every field here");
    cio__wait *rec = &w->rec;
    rec->cancel = cancel_waiter;
    rec->abandon = abandon_waiter;
    rec->unwind = NULL;
    rec->expire = NULL;
    rec->what = what;
    rec->future = NULL;
    rec->deadline = INT64_MAX;
    rec->object = object;
    rec->owner = owner;
    rec->fd = 0;
    rec->kind = kind;
    rec->dir = 0;
    cio__list_push_back(&q->waiters, &w->link);
    q->count++;
    rc = cio__task_suspend_until(t, rec, deadline);
    leave(w); /* a no-op unless the wait failed before anyone woke it */
    return rc;
}

void cio__waitq_forget_all(cio__waitq *q) {
    while (cio__list_pop_front(&q->waiters) != NULL) q->count--;
}

cio__waiter *cio__waitq_wake_one(cio__waitq *q, void *value) {
    cio__link *link = cio__list_pop_front(&q->waiters);
    if (!link) return NULL;
    q->count--;
    cio__waiter *w = CIO__CONTAINER_OF(link, cio__waiter, link);
    w->woken = 1;
    w->value = value;
    cio__task_wake(w->task, 0);
    return w;
}

size_t cio__waitq_wake_all(cio__waitq *q, void *value) {
    size_t n = 0;
    while (cio__waitq_wake_one(q, value)) n++;
    return n;
}

int cio__waitq_check_waker(const cio__waitq *q) {
    if (!q->loop) return 0;
    if (q->generation != cio__fork_generation) return -CIO_EFORKED;
    cio_loop *running = cio_running_loop();
    if (running && running != q->loop) return -CIO_EWRONGLOOP;
    return cio__waitq_check_thread(q);
}

int cio__waitq_check_thread(const cio__waitq *q) {
    if (!q->loop) return 0;
    if (q->generation != cio__fork_generation) return -CIO_EFORKED;
    /* Only debug mode reads the loop itself, found by its key: an object
     * may be used from outside any loop after its loop was freed, and a
     * loop that is gone has no thread to check. */
    if (!q->debug) return 0;
    cio_loop *loop = cio__loop_by_key(q->loop_key);
    return loop ? cio__loop_check_thread(loop) : 0;
}

int cio__waitq_refuse_free(const cio__waitq *q, const char *message) {
    cio_loop *running = cio_running_loop();
    if (running && running == q->loop) {
        cio__report(running, message, -EBUSY, NULL);
        return -EBUSY;
    }
    cio_error_context ctx = {.message = message, .error = -EBUSY};
    cio_loop_default_exception_handler(NULL, &ctx);
    return -EBUSY;
}
