/*
 * Futures: the state machine every awaitable shares. A future of another
 * kind (a task, a gather) brings its own operations table, so this room
 * never calls up into the rooms that build on it.
 */
#ifndef CIO_CORE_FUTURE_H
#define CIO_CORE_FUTURE_H

#include "loop.h"

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

/* What a kind of future does differently from a plain one. */
typedef struct cio__future_ops {
    /* Frees the object (its last reference went, or the loop closed). */
    void (*destroy)(cio_future *fut);
    /* Requests cancellation of a pending future: 1 if taken, else 0. */
    int (*cancel)(cio_future *fut, const char *msg);
    /* A name for reports (a task's name), or NULL. */
    const char *(*name)(const cio_future *fut);
} cio__future_ops;

struct cio_future {
    cio_loop *loop;
    const cio__future_ops *ops; /* NULL for a plain future */
    cio__link loop_link;   /* in loop->futures: everything the loop must free at close */
    cio__link callbacks;   /* jobs to schedule on completion, in registration order */
    void *result;
    char *cancel_msg;
    uint32_t refs;
    int error;
    uint8_t state;
    uint8_t kind;
    uint8_t retrieved;     /* an error was read: do not report it */
    /* A plain future: the low 32 bits of the id of the task that made it
     * (0: none). Who will set a future is unknowable; who made it is the
     * best guess the dump's cycle search has. A task: its own id's low 32
     * bits, which cio_future_new copies from the running task. (The
     * padding after the bytes above holds it: the struct does not grow.) */
    uint32_t creator;
};

/* Starts a future's life on loop: pending, one reference (the creator's),
 * on the loop's list. Inline: every spawn makes one. */
static inline void cio__future_init(cio_loop *loop, cio_future *fut, uint8_t kind,
                                    const cio__future_ops *ops) {
    fut->loop = loop;
    fut->ops = ops;
    fut->result = NULL;
    fut->cancel_msg = NULL;
    fut->refs = 1;
    fut->error = 0;
    fut->state = CIO__PENDING;
    fut->kind = kind;
    fut->retrieved = 0;
    fut->creator = 0;
    cio__list_init(&fut->callbacks);
    cio__loop_debug_begin(loop);
    cio__list_push_back(&loop->futures, &fut->loop_link);
    cio__loop_debug_end(loop);
}
/* The task running in this thread, or NULL (task.c keeps it). A task's
 * record starts with its future (task.c asserts it), so this layer reads
 * the running task's loop, and its id in creator, without calling up into
 * the task layer. */
struct cio__task;
extern CIO__TLS struct cio__task *cio__running_task;
static inline const cio_future *cio__running_task_future(void) {
    return (const cio_future *)(const void *)cio__running_task;
}
/* Completes a pending future and schedules its callbacks. */
static inline void cio__future_complete(cio_future *fut, uint8_t state, void *result, int error) {
    fut->state = state;
    fut->result = result;
    fut->error = error;
    cio__list_splice_back(&fut->loop->ready, &fut->callbacks);
}
/* Frees a future unconditionally: its last reference, or loop close. */
void cio__future_destroy(cio_future *fut);
/* Internal reference counting: the public ref/unref, inline. */
static inline void cio__future_ref(cio_future *fut) {
    fut->refs++;
}
static inline void cio__future_unref(cio_future *fut) {
    if (fut->refs > 0 && --fut->refs == 0) cio__future_destroy(fut);
}
/* Registers a job to run (through the ready queue) once fut completes. */
void cio__future_add_waiter(cio_future *fut, cio__job *job);
void cio__future_remove_waiter(cio_future *fut, cio__job *job);
int cio__future_outcome(cio_future *fut, void **result);

/* Passes an error nobody handled to the loop's exception handler
 * (report.c, which names a future through its kind's table). */
void cio__report(cio_loop *loop, const char *message, int error, cio_future *fut);
/* Registers how a done callback that never ran is discarded (job.c);
 * called once per loop created. */
void cio__future_register_discards(void);

#endif
