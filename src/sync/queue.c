/*
 * asyncio.Queue, LifoQueue and PriorityQueue, as in Python 3.13 (with
 * shutdown).
 *
 * Storage. A FIFO queue keeps its items in a ring buffer; a LIFO queue uses
 * the same buffer as a plain stack (its head never moves). A priority queue
 * keeps a binary min-heap of (item, sequence number) pairs ordered by the
 * user's compare function, the sequence number breaking ties so that equal
 * items come out in insertion order. Buffers start at 8 slots and double
 * when full (a bounded queue never grows past maxsize), which makes put and
 * get amortised O(1) for FIFO and LIFO and O(log n) for the heap. A buffer
 * that grew past 1024 slots is released once the queue is empty again, so
 * a burst does not pin its peak memory. A put that cannot grow the buffer
 * returns -ENOMEM and changes nothing: the item is not in the queue and the
 * unfinished count is unchanged.
 *
 * Waiting and fairness. Getters wait while the queue is empty, putters while
 * it is full, each side in its own FIFO wait queue (waitq.c). As in asyncio
 * there is no hand-off: the item stays in the queue, and a put wakes the
 * first waiting getter, which takes an item when it runs. Unlike asyncio,
 * the wake-up is also a promise: promised_get counts the getters that were
 * woken and have not run yet, and a blocking get takes the fast path only
 * when the queue holds more items than are promised. A newcomer calling
 * cio_queue_get therefore never overtakes a waiter (asyncio's get() would:
 * its woken getter then waits again at the back of the line). The same
 * holds for putters and free slots (promised_put). The _nowait forms keep
 * asyncio's behaviour exactly: get_nowait takes any item that is there, and
 * put_nowait fills any free slot, even one promised to a woken waiter. That
 * waiter then finds nothing when it runs and waits again, at the back of
 * the line, as in asyncio. No item is ever lost or handed out twice either
 * way, because items only leave the buffer through one pop.
 *
 * Cancellation. A waiter cancelled (or timed out) before its wake-up just
 * leaves the wait queue. A waiter that was woken and then cancelled before
 * it ran (cio__waitq_wait returns -ECANCELED with woken set) takes nothing:
 * it gives its promise back and kick() wakes the next waiter if the item (or
 * the free slot) is still there. So a cancelled task never eats an item or a
 * slot, and a cancellation never leaves an item in the queue while a getter
 * waits. The same pass-on happens when a woken putter fails to grow the
 * buffer. A woken waiter whose deadline passed before it ran still takes its
 * item: the deadline only ends a wait that nothing answered.
 *
 * join and task_done. Every successful put counts one unfinished item;
 * task_done counts one down (-CIO_EINVALSTATE below zero, asyncio's
 * ValueError). join returns at once when nothing is unfinished; otherwise
 * it waits until the count reaches zero. Like asyncio's Event, a joiner that
 * was woken returns 0 even if new items were put before it ran.
 *
 * Shutdown (3.13). After cio_queue_shutdown every put fails with
 * -CIO_ESHUTDOWN, and waiting putters are woken to fail the same way. Gets
 * drain the items that are left and then fail with -CIO_ESHUTDOWN; getters
 * waiting when the queue is (or becomes) empty are woken to fail. An
 * immediate shutdown also removes every item, hands each to the dispose
 * callback if one is set (a pointer dropped silently may be a leak), and
 * counts each one done, so join returns once the items already taken are
 * done too (3.13: join does not fail after a shutdown, and task_done works
 * as before). Shutting down twice is harmless; an immediate shutdown after
 * a plain one discards what is left.
 *
 * Loops. The queue binds to the loop of the first task that calls one of its
 * waiting functions (get, put, join and their _until forms); a task of
 * another loop gets -CIO_EWRONGLOOP from those, and from the calls that
 * wake tasks (put_nowait, get_nowait, task_done, shutdown) when another loop
 * is running. Calls from outside any loop (e.g. filling a queue before the
 * loop runs) are allowed.
 *
 * Lifetime. `users` counts the tasks inside the waiting part of put, get
 * and join, woken ones that have not returned yet included: they still
 * touch the queue. cio_queue_free refuses to free a queue while any such
 * task exists, reports the refusal through the exception handler of the
 * queue's loop if that loop is running (else through the default handler,
 * to stderr: a loop that is not running may already be freed) and leaves
 * the queue intact and usable, as every synchronisation primitive does. Otherwise it hands the items left
 * to the dispose callback and frees everything.
 */
#include <string.h>

#include "sync.h"

enum queue_kind { QUEUE_FIFO, QUEUE_LIFO, QUEUE_PRIORITY };

#define QUEUE_MIN_CAP 8
#define QUEUE_KEEP_CAP 1024 /* an empty queue keeps a buffer up to this size */

typedef struct heap_slot {
    void *item;
    uint64_t seq; /* insertion order, for ties */
} heap_slot;

struct cio_queue {
    int kind;
    size_t maxsize;        /* 0: unbounded */
    union {
        void **ring;       /* FIFO and LIFO */
        heap_slot *heap;   /* priority */
    } buf;
    size_t cap, head, count;
    uint64_t next_seq;
    cio_compare_fn cmp;
    size_t unfinished;     /* puts not yet matched by task_done */
    size_t promised_get;   /* getters woken that have not run yet */
    size_t promised_put;   /* putters woken that have not run yet */
    size_t users;          /* tasks inside put, get or join that wait(ed) */
    int shutdown;
    void (*dispose)(void *item, void *arg);
    void *dispose_arg;
    cio_loop *loop;        /* the loop of the first task that waited */
    cio__waitq getters, putters, joiners;
};

static int make(cio_queue **qp, size_t maxsize, int kind, cio_compare_fn cmp) {
    if (!qp) return -EINVAL;
    *qp = NULL;
    if (kind == QUEUE_PRIORITY && !cmp) return -EINVAL;
    cio_queue *q = cio__calloc(1, sizeof *q);
    if (!q) return -ENOMEM;
    q->kind = kind;
    q->maxsize = maxsize;
    q->cmp = cmp;
    cio__waitq_init(&q->getters);
    cio__waitq_init(&q->putters);
    cio__waitq_init(&q->joiners);
    *qp = q;
    return 0;
}

int cio_queue_new(size_t maxsize, cio_queue **qp) {
    return make(qp, maxsize, QUEUE_FIFO, NULL);
}

int cio_lifo_queue_new(size_t maxsize, cio_queue **qp) {
    return make(qp, maxsize, QUEUE_LIFO, NULL);
}

int cio_priority_queue_new(size_t maxsize, cio_compare_fn cmp, cio_queue **qp) {
    return make(qp, maxsize, QUEUE_PRIORITY, cmp);
}

int cio_queue_set_dispose(cio_queue *q, void (*dispose)(void *item, void *arg), void *arg) {
    if (!q) return -EINVAL;
    q->dispose = dispose;
    q->dispose_arg = arg;
    return 0;
}

size_t cio_queue_size(const cio_queue *q) {
    return q ? q->count : 0;
}

size_t cio_queue_maxsize(const cio_queue *q) {
    return q ? q->maxsize : 0;
}

int cio_queue_empty(const cio_queue *q) {
    return q && q->count == 0;
}

int cio_queue_full(const cio_queue *q) {
    return q && q->maxsize > 0 && q->count >= q->maxsize;
}

/* ---- storage ------------------------------------------------------------ */

static size_t slot_size(const cio_queue *q) {
    return q->kind == QUEUE_PRIORITY ? sizeof(heap_slot) : sizeof(void *);
}

/* Makes room for one more item. On failure nothing changed. */
static int reserve(cio_queue *q) {
    if (q->count < q->cap) return 0;
    size_t size = slot_size(q);
    size_t cap = q->cap ? q->cap * 2 : QUEUE_MIN_CAP;
    if (q->cap > SIZE_MAX / 2 / size) return -ENOMEM;
    if (q->maxsize > 0 && cap > q->maxsize) cap = q->maxsize; /* > count: not full */
    void *grown = cio__realloc(q->kind == QUEUE_PRIORITY ? (void *)q->buf.heap : (void *)q->buf.ring,
                               cap * size);
    if (!grown) return -ENOMEM;
    if (q->kind == QUEUE_PRIORITY) {
        q->buf.heap = grown;
    } else {
        q->buf.ring = grown;
        /* A ring that wrapped (only FIFO's head moves) keeps its order: the
         * run from head to the old end moves to the new end. */
        if (q->head > 0) {
            size_t run = q->cap - q->head;
            memmove(q->buf.ring + cap - run, q->buf.ring + q->head, run * sizeof(void *));
            q->head = cap - run;
        }
    }
    q->cap = cap;
    return 0;
}

static void release_buffer(cio_queue *q) {
    if (q->kind == QUEUE_PRIORITY)
        cio__free(q->buf.heap);
    else
        cio__free(q->buf.ring);
    q->buf.ring = NULL;
    q->buf.heap = NULL;
    q->cap = 0;
    q->head = 0;
}

static int heap_before(const cio_queue *q, const heap_slot *a, const heap_slot *b) {
    int c = q->cmp(a->item, b->item);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

/* Adds an item; reserve() made room for it. */
static void push(cio_queue *q, void *item) {
    if (q->kind != QUEUE_PRIORITY) {
        q->buf.ring[(q->head + q->count) % q->cap] = item;
        q->count++;
        return;
    }
    heap_slot s = {.item = item, .seq = q->next_seq++};
    heap_slot *h = q->buf.heap;
    size_t i = q->count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(q, &s, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = s;
}

/* Removes the next item (the queue is not empty). */
static void *pop(cio_queue *q) {
    void *item;
    if (q->kind == QUEUE_FIFO) {
        item = q->buf.ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
    } else if (q->kind == QUEUE_LIFO) {
        q->count--;
        item = q->buf.ring[(q->head + q->count) % q->cap];
    } else {
        heap_slot *h = q->buf.heap;
        item = h[0].item;
        size_t n = --q->count;
        heap_slot last = h[n];
        size_t i = 0;
        for (;;) {
            size_t child = 2 * i + 1;
            if (child >= n) break;
            if (child + 1 < n && heap_before(q, &h[child + 1], &h[child])) child++;
            if (!heap_before(q, &h[child], &last)) break;
            h[i] = h[child];
            i = child;
        }
        if (n) h[i] = last;
    }
    if (q->count == 0) {
        q->head = 0;
        if (q->cap > QUEUE_KEEP_CAP) release_buffer(q);
    }
    return item;
}

/* ---- waking ------------------------------------------------------------- */

/* Room for a blocking put: a free slot nobody was promised. */
static int has_room(const cio_queue *q) {
    return q->maxsize == 0 || q->count + q->promised_put < q->maxsize;
}

/*
 * Restores the invariants after any change: no getter waits while an item
 * is there that nobody was promised (or, after a shutdown, while the queue
 * is empty: it must wake to fail), no putter waits while a slot is free
 * that nobody was promised (or after a shutdown), and no joiner waits once
 * nothing is unfinished.
 */
static void kick(cio_queue *q) {
    while (!cio__waitq_empty(&q->getters) &&
           (q->count > q->promised_get || (q->shutdown && q->count == 0))) {
        cio__waitq_wake_one(&q->getters, NULL);
        q->promised_get++;
    }
    while (!cio__waitq_empty(&q->putters) && (q->shutdown || has_room(q))) {
        cio__waitq_wake_one(&q->putters, NULL);
        q->promised_put++;
    }
    if (q->unfinished == 0) cio__waitq_wake_all(&q->joiners, NULL);
}

/* A waiting call binds the queue to the loop of the calling task. */
static int bind_queue(cio_queue *q) {
    cio_task *current = cio_current_task();
    if (!current) return -EPERM;
    cio_loop *loop = cio_future_loop(current);
    if (q->loop && q->loop != loop) return -CIO_EWRONGLOOP;
    if (!q->loop) {
        q->loop = loop;
        cio__waitq_bind(&q->getters, loop);
        cio__waitq_bind(&q->putters, loop);
        cio__waitq_bind(&q->joiners, loop);
    }
    return 0;
}

/* A call that may wake tasks must come from the queue's loop, or from
 * outside any running loop (the three wait queues are bound together). */
static int check_waker(const cio_queue *q) {
    return cio__waitq_check_waker(&q->getters);
}

/* Puts an item there is room for; on failure nothing changed. */
static int add(cio_queue *q, void *item) {
    int rc = reserve(q);
    if (rc < 0) return rc;
    push(q, item);
    q->unfinished++;
    kick(q);
    return 0;
}

static void *take(cio_queue *q) {
    void *item = pop(q);
    kick(q);
    return item;
}

/* ---- operations ----------------------------------------------------------- */

int cio_queue_put_nowait(cio_queue *q, void *item) {
    if (!q) return -EINVAL;
    int rc = check_waker(q);
    if (rc < 0) return rc;
    if (q->shutdown) return -CIO_ESHUTDOWN;
    if (cio_queue_full(q)) return -EAGAIN; /* asyncio: QueueFull */
    return add(q, item);
}

int cio_queue_get_nowait(cio_queue *q, void **itemp) {
    if (!q || !itemp) return -EINVAL;
    *itemp = NULL;
    int rc = check_waker(q);
    if (rc < 0) return rc;
    if (q->count == 0) return q->shutdown ? -CIO_ESHUTDOWN : -EAGAIN; /* QueueEmpty */
    *itemp = take(q);
    return 0;
}

static int put(cio_queue *q, void *item, int64_t deadline) {
    if (!q) return -EINVAL;
    int rc = bind_queue(q);
    if (rc < 0) return rc;
    if (q->shutdown) return -CIO_ESHUTDOWN;
    if (has_room(q)) return add(q, item);
    q->users++;
    for (;;) {
        cio__waiter w;
        w.woken = 0;
        rc = cio__waitq_wait_on(&q->putters, &w, CIO__WAIT_QUEUE_PUT, q, NULL,
                                "queue put", deadline);
        if (w.woken) q->promised_put--;
        if (rc < 0) break;
        if (q->shutdown) {
            rc = -CIO_ESHUTDOWN;
            break;
        }
        if (has_room(q)) {
            rc = add(q, item);
            break;
        }
        /* put_nowait took the slot meanwhile: wait again. */
    }
    q->users--;
    kick(q); /* a slot this putter was woken for and did not fill goes on */
    return rc;
}

static int get(cio_queue *q, void **itemp, int64_t deadline) {
    if (!q || !itemp) return -EINVAL;
    *itemp = NULL;
    int rc = bind_queue(q);
    if (rc < 0) return rc;
    if (q->count > q->promised_get) {
        *itemp = take(q);
        return 0;
    }
    if (q->shutdown && q->count == 0) return -CIO_ESHUTDOWN;
    q->users++;
    for (;;) {
        cio__waiter w;
        w.woken = 0;
        rc = cio__waitq_wait_on(&q->getters, &w, CIO__WAIT_QUEUE_GET, q, NULL,
                                "queue get", deadline);
        if (w.woken) q->promised_get--;
        if (rc < 0) break;
        if (q->count > q->promised_get) {
            *itemp = pop(q);
            break;
        }
        if (q->shutdown && q->count == 0) {
            rc = -CIO_ESHUTDOWN;
            break;
        }
        /* get_nowait took the item meanwhile: wait again. */
    }
    q->users--;
    kick(q); /* frees a slot, or passes on a wake-up this getter did not use */
    return rc;
}

int cio_queue_put(cio_queue *q, void *item) {
    return put(q, item, INT64_MAX);
}

int cio_queue_put_until(cio_queue *q, void *item, double when) {
    int64_t deadline;
    if (!q) return -EINVAL;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : put(q, item, deadline);
}

int cio_queue_get(cio_queue *q, void **itemp) {
    return get(q, itemp, INT64_MAX);
}

int cio_queue_get_until(cio_queue *q, void **itemp, double when) {
    int64_t deadline;
    if (!q || !itemp) return -EINVAL;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : get(q, itemp, deadline);
}

int cio_queue_task_done(cio_queue *q) {
    if (!q) return -EINVAL;
    int rc = check_waker(q);
    if (rc < 0) return rc;
    /* asyncio: ValueError "task_done() called too many times" */
    if (q->unfinished == 0) return -CIO_EINVALSTATE;
    q->unfinished--;
    kick(q);
    return 0;
}

static int join(cio_queue *q, int64_t deadline) {
    if (!q) return -EINVAL;
    int rc = bind_queue(q);
    if (rc < 0) return rc;
    if (q->unfinished == 0) return 0;
    cio__waiter w;
    w.woken = 0;
    q->users++;
    /* Like asyncio's Event: woken once the count reached zero, done even if
     * it went up again before this task ran. Nothing to pass on. */
    rc = cio__waitq_wait_on(&q->joiners, &w, CIO__WAIT_QUEUE_JOIN, q, NULL, "queue join", deadline);
    q->users--;
    return rc;
}

int cio_queue_join(cio_queue *q) {
    return join(q, INT64_MAX);
}

int cio_queue_join_until(cio_queue *q, double when) {
    int64_t deadline;
    if (!q) return -EINVAL;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : join(q, deadline);
}

int cio_queue_shutdown(cio_queue *q, int immediate) {
    if (!q) return -EINVAL;
    int rc = check_waker(q);
    if (rc < 0) return rc;
    q->shutdown = 1;
    if (immediate) {
        /* One item at a time, re-checking the count: dispose may call
         * get_nowait (puts fail from now on). */
        while (q->count > 0) {
            void *item = pop(q);
            if (q->unfinished > 0) q->unfinished--;
            if (q->dispose) q->dispose(item, q->dispose_arg);
        }
    }
    kick(q);
    return 0;
}

int cio_queue_free(cio_queue *q) {
    if (!q) return 0;
    if (q->users > 0) {
        static const char msg[] = "cio_queue_free: tasks still wait on the queue; not freed";
        cio_loop *running = cio_running_loop();
        if (running && running == q->loop) {
            cio__report(running, msg, -EBUSY, NULL);
        } else {
            cio_error_context ctx = {.message = msg, .error = -EBUSY, .future = NULL};
            cio_loop_default_exception_handler(NULL, &ctx);
        }
        return -EBUSY;
    }
    q->shutdown = 1; /* a dispose callback that puts is refused */
    while (q->count > 0) {
        void *item = pop(q);
        if (q->dispose) q->dispose(item, q->dispose_arg);
    }
    release_buffer(q);
    cio__free(q);
    return 0;
}
