/*
 * The sync layer, as the layers above see it: the FIFO wait queue behind
 * every lock, event, condition, semaphore, barrier and queue (and behind
 * task groups and as_completed in the flow layer).
 */
#ifndef CIO_SYNC_H
#define CIO_SYNC_H

#include "core/core.h"

/* ------------------------------------------------------------------------
 * Wait queues: the FIFO of suspended tasks behind every lock, event,
 * semaphore, condition, barrier and queue (src/waitq.c).
 * ------------------------------------------------------------------------ */
typedef struct cio__waiter {
    cio__link link;       /* in the queue while waiting */
    cio__task *task;
    cio__wait rec;
    struct cio__waitq *queue;
    int woken;            /* 1 once a wake-up was handed to this waiter */
    void *value;          /* what the waker handed over, if anything */
} cio__waiter;

typedef struct cio__waitq {
    cio__link waiters;
    size_t count;
    cio_loop *loop;       /* the loop of the first task that waited */
    /* Copied from the loop when binding, so that the checks of a call made
     * from outside any loop need not read a loop that may be gone. */
    unsigned generation;
    uint8_t debug;
    /* The loop's slot and generation in the live-loop table: debug mode's
     * thread check finds the loop through it, never through a pointer to
     * a loop that may have been freed (a primitive may outlive its loop). */
    uint64_t loop_key;
} cio__waitq;

void cio__waitq_init(cio__waitq *q);
/* Binds q to loop (the loop of the first task that waits on it). */
static inline void cio__waitq_bind(cio__waitq *q, cio_loop *loop) {
    q->loop = loop;
    q->generation = loop->generation;
    q->debug = loop->debug;
    q->loop_key = loop->key;
}
/* Suspends the current task at the back of q until a wake-up, the
 * deadline (INT64_MAX: none) or a cancellation. Returns 0 when woken, else
 * -ETIMEDOUT, -ECANCELED, -EPERM (outside a task) or -CIO_EWRONGLOOP. A
 * waiter that was woken and then cancelled before it ran returns
 * -ECANCELED with w->woken set: the caller must pass the wake-up on. */
int cio__waitq_wait(cio__waitq *q, cio__waiter *w, const char *what, int64_t deadline);
/* cio__waitq_wait that says what the task waits on, for the await graph:
 * kind (enum cio__wait_kind), the object (the lock, the queue...) and,
 * for an object a task holds, where it keeps its owner's task id. */
int cio__waitq_wait_on(cio__waitq *q, cio__waiter *w, uint8_t kind, const void *object,
                       const uint64_t *owner, const char *what, int64_t deadline);
/* Wakes the first waiter, handing it value; returns it, or NULL if none. */
cio__waiter *cio__waitq_wake_one(cio__waitq *q, void *value);
/* Wakes every waiter (handing each value); returns how many. */
size_t cio__waitq_wake_all(cio__waitq *q, void *value);
/* Takes every waiter out of q without waking it: for an object freed at
 * loop close, whose waiting tasks will never run again (their abandon
 * hooks then find nothing to unlink). */
void cio__waitq_forget_all(cio__waitq *q);
static inline bool cio__waitq_empty(const cio__waitq *q) {
    return q->count == 0;
}
/* Checks that the current task may use an object bound through q: -EPERM
 * outside a task, -CIO_EWRONGLOOP for a task of another loop. An object
 * bound to no loop yet is bound to the task's. Inline: every waiting call
 * of a primitive, queue or stream starts with it. */
static inline int cio__waitq_check(cio__waitq *q) {
    cio__task *t = cio__running_task;
    if (!t) return -EPERM;
    if (q->loop == t->fut.loop) return 0;
    if (q->loop) return -CIO_EWRONGLOOP;
    cio__waitq_bind(q, t->fut.loop);
    return 0;
}
/* A call that changes an object bound through q (waking its tasks, or
 * changing what they will see) must come from the object's loop, or from
 * outside any running loop: -CIO_EWRONGLOOP otherwise. In a forked child
 * it is -CIO_EFORKED, and in debug mode a thread the loop does not belong
 * to gets -CIO_EWRONGTHREAD (see cio__loop_check_thread). An object bound
 * to no loop yet has nothing to check. */
int cio__waitq_check_waker(const cio__waitq *q);
/* The same without the loop check, for calls that wake nobody. */
int cio__waitq_check_thread(const cio__waitq *q);
/* Reports that an object still in use was not freed: through the exception
 * handler of its loop while that loop runs in this thread, else through the
 * default handler, since a loop that is not running may already be freed.
 * Returns -EBUSY, what the refused _free returns. */
int cio__waitq_refuse_free(const cio__waitq *q, const char *message);

#endif
