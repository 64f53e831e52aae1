/*
 * asyncio.Queue, LifoQueue and PriorityQueue (3.13, with shutdown).
 *
 * Storage. FIFO: a ring buffer; LIFO: the same buffer used as a stack;
 * priority: a binary min-heap of (item, sequence) ordered by the user's
 * compare function, the sequence number breaking ties so equal items come
 * out in insertion order. Buffers double when full (only for unbounded
 * queues or while below maxsize); a put that cannot grow the buffer fails
 * with -ENOMEM and changes nothing.
 *
 * Waiting. Getters wait while the queue is empty, putters while it is full,
 * each in a FIFO wait queue. As in asyncio there is no hand-off: a put
 * wakes the first getter, which re-checks the queue when it runs and waits
 * again (at the back) if another task took the item meanwhile; a get wakes
 * the first putter the same way. A waiter that was woken but is cancelled
 * before it runs passes its wake-up on to the next one if the item (or the
 * free slot) is still there, so a cancelled task never eats an item or a
 * slot. get_nowait may take an available item ahead of woken getters, as
 * asyncio allows.
 *
 * Shutdown. After cio_queue_shutdown every put fails with -CIO_ESHUTDOWN
 * and gets drain what is left, then fail the same way. An immediate
 * shutdown also discards the items left (handing each to the dispose
 * callback, if set) and counts them as done, so join returns. Every waiter
 * is woken to see the new state.
 *
 * Freeing a queue that tasks still wait on is refused (see lock.c).
 */
#include <string.h>

#include "internal.h"

enum queue_kind { FIFO, LIFO, PRIORITY };

typedef struct slot {
    void *item;
    uint64_t seq;
} slot;

struct cio_queue {
    int kind;
    size_t maxsize;        /* 0: unbounded */
    slot *buf;
    size_t cap, head, count;
    uint64_t next_seq;
    cio_compare_fn cmp;
    size_t unfinished;
    int shutdown;
    void (*dispose)(void *item, void *arg);
    void *dispose_arg;
    cio__waitq getters, putters, joiners;
};

static int make(cio_queue **qp, size_t maxsize, int kind, cio_compare_fn cmp) {
    if (!qp) return -EINVAL;
    *qp = NULL;
    if (kind == PRIORITY && !cmp) return -EINVAL;
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

int cio_queue_new(cio_queue **qp, size_t maxsize) {
    return make(qp, maxsize, FIFO, NULL);
}

int cio_lifo_queue_new(cio_queue **qp, size_t maxsize) {
    return make(qp, maxsize, LIFO, NULL);
}

int cio_priority_queue_new(cio_queue **qp, size_t maxsize, cio_compare_fn cmp) {
    return make(qp, maxsize, PRIORITY, cmp);
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
    return !q || q->count == 0;
}

int cio_queue_full(const cio_queue *q) {
    return q && q->maxsize > 0 && q->count >= q->maxsize;
}

/* ---- storage ------------------------------------------------------------ */

static int reserve(cio_queue *q) {
    if (q->count < q->cap) return 0;
    size_t cap = q->cap ? q->cap * 2 : 8;
    slot *buf = cio__malloc(cap * sizeof *buf);
    if (!buf) return -ENOMEM;
    /* Unroll the ring so the items start at index 0. */
    for (size_t i = 0; i < q->count; i++) buf[i] = q->buf[(q->head + i) % q->cap];
    cio__free(q->buf);
    q->buf = buf;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static int heap_before(const cio_queue *q, const slot *a, const slot *b) {
    int c = q->cmp(a->item, b->item);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

static void push(cio_queue *q, void *item) {
    slot s = {.item = item, .seq = q->next_seq++};
    if (q->kind != PRIORITY) {
        q->buf[(q->head + q->count) % q->cap] = s;
        q->count++;
        return;
    }
    size_t i = q->count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(q, &s, &q->buf[parent])) break;
        q->buf[i] = q->buf[parent];
        i = parent;
    }
    q->buf[i] = s;
}

static void *pop(cio_queue *q) {
    if (q->kind == FIFO) {
        void *item = q->buf[q->head].item;
        q->head = (q->head + 1) % q->cap;
        q->count--;
        return item;
    }
    if (q->kind == LIFO) {
        q->count--;
        return q->buf[(q->head + q->count) % q->cap].item;
    }
    void *item = q->buf[0].item;
    slot last = q->buf[--q->count];
    size_t i = 0, n = q->count;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && heap_before(q, &q->buf[child + 1], &q->buf[child])) child++;
        if (!heap_before(q, &q->buf[child], &last)) break;
        q->buf[i] = q->buf[child];
        i = child;
    }
    if (n) q->buf[i] = last;
    return item;
}

/* ---- operations ----------------------------------------------------------- */

int cio_queue_put_nowait(cio_queue *q, void *item) {
    if (!q) return -EINVAL;
    if (q->shutdown) return -CIO_ESHUTDOWN;
    if (cio_queue_full(q)) return -EAGAIN; /* asyncio: QueueFull */
    int rc = reserve(q);
    if (rc < 0) return rc;
    push(q, item);
    q->unfinished++;
    cio__waitq_wake_one(&q->getters, NULL);
    return 0;
}

int cio_queue_get_nowait(cio_queue *q, void **itemp) {
    if (!q || !itemp) return -EINVAL;
    if (q->count == 0) return q->shutdown ? -CIO_ESHUTDOWN : -EAGAIN; /* QueueEmpty */
    *itemp = pop(q);
    cio__waitq_wake_one(&q->putters, NULL);
    return 0;
}

static int put(cio_queue *q, void *item, int64_t deadline) {
    if (!q) return -EINVAL;
    int rc = cio__waitq_check(&q->putters);
    if (rc < 0) return rc;
    while (cio_queue_full(q)) {
        if (q->shutdown) return -CIO_ESHUTDOWN;
        cio__waiter w;
        rc = cio__waitq_wait(&q->putters, &w, "queue put", deadline);
        if (rc < 0) {
            /* Woken for a free slot it will not use: pass the slot on. */
            if (w.woken && !cio_queue_full(q)) cio__waitq_wake_one(&q->putters, NULL);
            return rc;
        }
    }
    return cio_queue_put_nowait(q, item);
}

static int get(cio_queue *q, void **itemp, int64_t deadline) {
    if (!q || !itemp) return -EINVAL;
    int rc = cio__waitq_check(&q->getters);
    if (rc < 0) return rc;
    while (q->count == 0) {
        if (q->shutdown) return -CIO_ESHUTDOWN;
        cio__waiter w;
        rc = cio__waitq_wait(&q->getters, &w, "queue get", deadline);
        if (rc < 0) {
            /* Woken for an item it will not take: pass the wake-up on. */
            if (w.woken && q->count > 0) cio__waitq_wake_one(&q->getters, NULL);
            return rc;
        }
    }
    return cio_queue_get_nowait(q, itemp);
}

int cio_queue_put(cio_queue *q, void *item) {
    return put(q, item, INT64_MAX);
}

int cio_queue_put_until(cio_queue *q, void *item, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : put(q, item, deadline);
}

int cio_queue_get(cio_queue *q, void **itemp) {
    return get(q, itemp, INT64_MAX);
}

int cio_queue_get_until(cio_queue *q, void **itemp, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : get(q, itemp, deadline);
}

static void finish_one(cio_queue *q) {
    q->unfinished--;
    if (q->unfinished == 0) cio__waitq_wake_all(&q->joiners, NULL);
}

int cio_queue_task_done(cio_queue *q) {
    if (!q) return -EINVAL;
    /* asyncio: ValueError "task_done() called too many times" */
    if (q->unfinished == 0) return -CIO_EINVALSTATE;
    finish_one(q);
    return 0;
}

static int join(cio_queue *q, int64_t deadline) {
    if (!q) return -EINVAL;
    int rc = cio__waitq_check(&q->joiners);
    if (rc < 0) return rc;
    if (q->unfinished == 0) return 0;
    cio__waiter w;
    /* Like asyncio's Event: woken once the count reached zero. */
    return cio__waitq_wait(&q->joiners, &w, "queue join", deadline);
}

int cio_queue_join(cio_queue *q) {
    return join(q, INT64_MAX);
}

int cio_queue_join_until(cio_queue *q, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : join(q, deadline);
}

int cio_queue_shutdown(cio_queue *q, int immediate) {
    if (!q) return -EINVAL;
    q->shutdown = 1;
    if (immediate) {
        while (q->count > 0) {
            void *item = pop(q);
            if (q->dispose) q->dispose(item, q->dispose_arg);
            if (q->unfinished > 0) finish_one(q);
        }
    }
    /* Every waiter re-checks: getters of an empty queue and all putters
     * fail with -CIO_ESHUTDOWN. */
    cio__waitq_wake_all(&q->getters, NULL);
    cio__waitq_wake_all(&q->putters, NULL);
    return 0;
}

void cio_queue_free(cio_queue *q) {
    if (!q) return;
    if (!cio__waitq_empty(&q->getters) || !cio__waitq_empty(&q->putters) ||
        !cio__waitq_empty(&q->joiners)) {
        cio_loop *loop = q->getters.loop ? q->getters.loop
                         : q->putters.loop ? q->putters.loop
                                           : q->joiners.loop;
        cio__report(loop, "cio_queue_free: tasks still wait on the queue; not freed", 0, NULL);
        return;
    }
    while (q->count > 0) {
        void *item = pop(q);
        if (q->dispose) q->dispose(item, q->dispose_arg);
    }
    cio__free(q->buf);
    cio__free(q);
}
