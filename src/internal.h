/*
 * Internal declarations shared by cio's source files. Nothing here is part
 * of the public API; internal non-static symbols are prefixed cio__.
 */
#ifndef CIO_INTERNAL_H
#define CIO_INTERNAL_H

#include "cio.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "context.h"
#include "fault.h"
#include "list.h"
#include "stack.h"
#include "timer_heap.h"

#define CIO__UNUSED(x) ((void)(x))
#define CIO__CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ------------------------------------------------------------------------
 * Jobs: everything the ready queue can hold.
 *
 * A job is an intrusive list node with a function to run. Handles, done
 * callbacks and task wake-ups are all jobs, so the ready queue never
 * allocates: the object that wants to run carries its own node.
 * ------------------------------------------------------------------------ */
/* (cio__job itself is defined in list.h, for the timer heap's use.) */

/* ------------------------------------------------------------------------
 * Callback nodes: the pooled object behind a cio_handle.
 * ------------------------------------------------------------------------ */
enum cio__node_state {
    CIO__NODE_FREE = 0,
    CIO__NODE_TIMER,     /* armed in the timer heap */
    CIO__NODE_READY,     /* in the ready queue */
    CIO__NODE_WAITING,   /* a done callback registered on a pending future */
    CIO__NODE_CANCELLED  /* cancelled while in the ready queue; freed when popped */
};

typedef struct cio__node {
    cio__job job;
    cio__timer timer;
    uint64_t id;       /* matches cio_handle.id while the node is live */
    uint8_t state;
    cio_loop *loop;
    cio_callback_fn callback; /* call_soon / call_later */
    cio_done_fn done;         /* done callbacks */
    cio_future *future;       /* the future a done callback belongs to */
    void *arg;
    struct cio__node *free_next;
} cio__node;

cio__node *cio__node_alloc(cio_loop *loop);
void cio__node_free(cio_loop *loop, cio__node *node);
void cio__node_pool_destroy(cio_loop *loop);

/* ------------------------------------------------------------------------
 * Futures and tasks
 * ------------------------------------------------------------------------ */
enum cio__future_state {
    CIO__PENDING = 0,
    CIO__DONE_RESULT,
    CIO__DONE_ERROR,
    CIO__CANCELLED
};

enum cio__future_kind {
    CIO__KIND_FUTURE = 0,
    CIO__KIND_TASK,
    CIO__KIND_GATHER
};

struct cio_future {
    cio_loop *loop;
    cio__link loop_link;   /* in loop->futures: everything the loop must free at close */
    cio__link callbacks;   /* jobs to schedule on completion, in registration order */
    void *result;
    char *cancel_msg;
    uint32_t refs;
    int error;
    uint8_t state;
    uint8_t kind;
    uint8_t retrieved;     /* an error was read: do not report it */
};

/*
 * A wait record says what a suspended task waits on. It lives on the
 * task's own stack for the duration of the suspending call, so waiting
 * allocates nothing. cancel() is how Task.cancel reaches into whatever the
 * task is blocked on; describe() feeds the task dump.
 */
typedef struct cio__wait cio__wait;
struct cio__wait {
    int (*cancel)(cio__wait *wait, const char *msg); /* 1 if the wait was cancelled */
    /* Optional: forget the waiter before a deadline wakes the task (for
     * waits that keep the task in a queue or a slot). */
    void (*abandon)(cio__wait *wait);
    const char *what;        /* "sleep", "future", "wait", ... */
    cio_future *future;      /* the awaited future, if any */
    int64_t deadline;        /* loop time in ns, or INT64_MAX */
};

enum cio__task_run_state {
    CIO__TASK_SCHEDULED = 0, /* in the ready queue, or about to be */
    CIO__TASK_RUNNING,
    CIO__TASK_SUSPENDED,
    CIO__TASK_FINISHED
};

typedef struct cio__task {
    cio_future fut;
    cio__job step;          /* ready-queue entry that resumes the task */
    cio__ctx ctx;           /* the task's own saved context */
    cio__ctx *resumer;      /* whoever resumed the task; suspending returns there */
    cio__stack stack;
    cio_coro_fn fn;
    void *arg;
    cio__wait *wait;        /* what it waits on while suspended */
    char *name;             /* NULL until named: "Task-N" is formatted on demand */
    char name_buf[32];      /* where the default name is formatted */
    struct cio__task *free_next; /* in loop->free_tasks */
    uint64_t number;        /* N in "Task-N" */
    int cancel_requests;    /* asyncio's num_cancels_requested */
    uint8_t must_cancel;    /* deliver -ECANCELED at the next resumption */
    uint8_t run_state;
    uint8_t started;
    uint8_t has_raised;
    int raised;             /* set by cio_raise */
    int wake_status;        /* why the task was woken: 0 or -ECANCELED */
} cio__task;

static inline cio__task *cio__task_of(const cio_future *fut) {
    return CIO__CONTAINER_OF(fut, cio__task, fut);
}

int cio__future_init(cio_loop *loop, cio_future *fut, uint8_t kind);
/* Completes a pending future and schedules its callbacks (defined below,
 * after the loop). */
static inline void cio__future_complete(cio_future *fut, uint8_t state, void *result, int error);
/* Internal reference counting: the public retain/release, inline. */
static inline void cio__future_ref(cio_future *fut) {
    fut->refs++;
}
void cio__future_destroy(cio_future *fut);
static inline void cio__future_unref(cio_future *fut) {
    if (fut->refs > 0 && --fut->refs == 0) cio__future_destroy(fut);
}
/* Registers a job to run (through the ready queue) once fut completes. */
void cio__future_add_waiter(cio_future *fut, cio__job *job);
void cio__future_remove_waiter(cio_future *fut, cio__job *job);
/* (cio__future_destroy frees a future unconditionally: last reference, or
 * loop close.) */
int cio__future_outcome(cio_future *fut, void **result);
void cio__task_destroy(cio__task *task);
int cio__task_cancel(cio__task *task, const char *msg);
void cio__gather_destroy(cio_future *fut);
int cio__gather_cancel(cio_future *fut, const char *msg);

/* Suspends the current task until something wakes it with
 * cio__task_wake() or cio__task_resume(). Returns the wake status, or
 * -ECANCELED if a cancellation was pending. */
int cio__task_suspend(cio__task *task, cio__wait *wait);
/* Like cio__task_suspend, but a deadline (loop time in ns; INT64_MAX for
 * none) wakes the task with -ETIMEDOUT after abandoning the wait. Returns
 * -ENOMEM if the timer cannot be armed. */
int cio__task_suspend_until(cio__task *task, cio__wait *wait, int64_t deadline);
/* Converts an absolute loop time in seconds to a deadline in ns: -EINVAL
 * for NaN, INT64_MAX for +infinity. */
int cio__deadline(double when, int64_t *deadline);
/* Schedules a suspended task to resume with the given status. */
void cio__task_wake(cio__task *task, int status);
/* Resumes a suspended task at once (from a job the loop is running). */
void cio__task_resume(cio__task *task, int status);
/* The name of a task, formatting the default one if needed. */
const char *cio__task_name(cio__task *task);
void cio__task_pool_destroy(cio_loop *loop);
/* The current task, or NULL with *err set to -EPERM. */
cio__task *cio__current(int *err);

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
} cio__waitq;

void cio__waitq_init(cio__waitq *q);
/* Suspends the current task at the back of q until a wake-up, the
 * deadline (INT64_MAX: none) or a cancellation. Returns 0 when woken, else
 * -ETIMEDOUT, -ECANCELED, -EPERM (outside a task) or -CIO_EWRONGLOOP. A
 * waiter that was woken and then cancelled before it ran returns
 * -ECANCELED with w->woken set: the caller must pass the wake-up on. */
int cio__waitq_wait(cio__waitq *q, cio__waiter *w, const char *what, int64_t deadline);
/* Wakes the first waiter, handing it value; returns it, or NULL if none. */
cio__waiter *cio__waitq_wake_one(cio__waitq *q, void *value);
/* Wakes every waiter (handing each value); returns how many. */
size_t cio__waitq_wake_all(cio__waitq *q, void *value);
static inline bool cio__waitq_empty(const cio__waitq *q) {
    return q->count == 0;
}
/* Checks that the current task may use an object bound through q: -EPERM
 * outside a task, -CIO_EWRONGLOOP for a task of another loop. */
int cio__waitq_check(cio__waitq *q);
/* A call that wakes tasks must come from the object's loop, or from outside
 * any running loop: -CIO_EWRONGLOOP otherwise. */
int cio__waitq_check_waker(const cio__waitq *q);
/* Reports that an object still in use was not freed: through the exception
 * handler of its loop while that loop runs in this thread, else through the
 * default handler, since a loop that is not running may already be freed. */
void cio__waitq_refuse_free(const cio__waitq *q, const char *message);

/* ------------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------------ */
typedef struct cio__backend_ops {
    const char *name;
    int (*init)(cio_loop *loop);
    void (*fini)(cio_loop *loop);
    /* Arms a one-shot watch of fd for the given directions (a new
     * registration, or a re-arm of an existing one), and removes it. */
    int (*watch)(cio_loop *loop, int fd, bool read, bool write);
    void (*unwatch)(cio_loop *loop, int fd);
    /* Waits for I/O at most timeout_ns (-1: forever, 0: do not block). */
    int (*poll)(cio_loop *loop, int64_t timeout_ns);
} cio__backend_ops;

extern const cio__backend_ops cio__backend_epoll;

/* What the loop knows of one file descriptor (indexed by its number). */
typedef struct cio__fd_entry {
    cio__task *reader;        /* the task waiting to read, or NULL */
    cio__task *writer;
    uint32_t registered;      /* the backend has (or had) a watch on fd */
} cio__fd_entry;

struct cio_loop {
    cio__link ready;          /* FIFO of jobs */
    cio__timer_heap timers;
    cio__link futures;        /* every live future and task of this loop */
    int64_t last_poll;        /* when the backend was last polled, ns */
    unsigned busy_iterations; /* iterations since the last poll */
    size_t io_waiters;        /* tasks suspended waiting for a descriptor */
    struct cio__task *free_tasks; /* finished task objects kept for reuse */
    size_t free_task_count;
    uint64_t timer_seq;       /* breaks deadline ties FIFO */
    uint64_t node_ids;
    uint64_t task_numbers;
    size_t live_tasks;
    cio__node *free_nodes;
    cio__node **node_blocks;
    size_t node_block_count;
    cio__stack_pool stacks;
    cio__ctx main_ctx;        /* the context that runs the loop */
    const cio__backend_ops *backend;
    int epoll_fd;
    int wake_fd;
    cio__fd_entry *fds;
    size_t fd_cap;
    size_t default_stack_size;
    cio_exception_handler_fn exception_handler;
    void *exception_handler_arg;
    double slow_callback_duration;
    uint8_t running;
    uint8_t stopping;
    uint8_t closed;
    uint8_t closing;
    uint8_t debug;
    /* The thread running the loop while it runs, else 0. Atomic because
     * debug mode reads it from other threads to refuse them. */
    _Atomic uintptr_t thread;
};

static inline void cio__ready_push(cio_loop *loop, cio__job *job) {
    cio__list_push_back(&loop->ready, &job->link);
}
void cio__loop_arm_timer(cio_loop *loop, cio__timer *timer, int64_t when);
void cio__loop_disarm_timer(cio_loop *loop, cio__timer *timer);
int64_t cio__clock_ns(void);
int64_t cio__seconds_to_ns(double seconds);
/* The loop time (ns) delay seconds from now, for a finite delay that is not
 * NaN: now for delay <= 0, clamped just below INT64_MAX ("no deadline"). */
int64_t cio__deadline_after(double delay);
/* Waits (in the current task) for fd to be readable or writable. */
int cio__wait_fd(int fd, bool write, int64_t deadline);
/* The backend reports readiness of fd: wakes the task waiting on it. */
void cio__io_ready(cio_loop *loop, int fd, bool readable, bool writable);
void cio__io_destroy(cio_loop *loop);
void cio__report(cio_loop *loop, const char *message, int error, cio_future *fut);
/* Returns 0 if the loop accepts new work, else the error. The common case
 * (open, not in debug mode) is decided inline. */
int cio__loop_check_slow(const cio_loop *loop);
static inline int cio__loop_check(const cio_loop *loop) {
    if (!loop->closed && !loop->closing && !loop->debug) return 0;
    return cio__loop_check_slow(loop);
}

static inline void cio__future_complete(cio_future *fut, uint8_t state, void *result, int error) {
    fut->state = state;
    fut->result = result;
    fut->error = error;
    cio__list_splice_back(&fut->loop->ready, &fut->callbacks);
}

#endif
