/*
 * Tasks: a coroutine on its own stack whose outcome is a future, and the
 * suspension protocol every waiting call builds on (wait records,
 * wake-ups, deadlines, cancellation).
 */
#ifndef CIO_CORE_TASK_H
#define CIO_CORE_TASK_H

#include "future.h"

/*
 * A wait record says what a suspended task waits on. It lives on the
 * task's own stack for the duration of the suspending call, so waiting
 * allocates nothing. cancel() is how Task.cancel reaches into whatever the
 * task is blocked on; describe() feeds the task dump.
 */
typedef struct cio__wait cio__wait;

/*
 * What kind of thing a wait record waits on: the await graph's edge label.
 * The suspending call knows it and says so in the record; the dump reads
 * it (with the object, the descriptor and direction, the owner) and needs
 * no code of any combinator. Kept in one byte.
 */
enum cio__wait_kind {
    CIO__WAIT_OTHER = 0,     /* only `what` says it */
    CIO__WAIT_FUTURE,        /* a plain future (future) */
    CIO__WAIT_TASK,          /* a task's outcome (future: the task) */
    CIO__WAIT_GATHER,        /* a gather's future (future) */
    CIO__WAIT_SLEEP,         /* a timer: sleep (deadline) */
    CIO__WAIT_YIELD,         /* sleep(0): back in the ready queue */
    CIO__WAIT_FD,            /* an I/O operation (fd, dir) */
    CIO__WAIT_LOCK,          /* a lock (object, owner) */
    CIO__WAIT_SEMAPHORE,     /* object: the semaphore */
    CIO__WAIT_EVENT,
    CIO__WAIT_CONDITION,
    CIO__WAIT_BARRIER,
    CIO__WAIT_QUEUE_GET,
    CIO__WAIT_QUEUE_PUT,
    CIO__WAIT_QUEUE_JOIN,
    CIO__WAIT_WAIT,          /* cio_wait over several futures */
    CIO__WAIT_AS_COMPLETED,
    CIO__WAIT_TASK_GROUP,    /* a task group's exit (object: the group) */
    CIO__WAIT_POOL,          /* a thread-pool job */
    CIO__WAIT_PROCESS,       /* a subprocess's exit (object: the process) */
    CIO__WAIT_STREAM,        /* a stream's read, drain or close */
    CIO__WAIT_SERVER,        /* a server's close or serve_forever */
    CIO__WAIT_KIND_COUNT
};

/* The direction of a CIO__WAIT_FD wait (cio__wait.dir). */
#define CIO__WAIT_DIR_READ 1u
#define CIO__WAIT_DIR_WRITE 2u

struct cio__wait {
    int (*cancel)(cio__wait *wait, const char *msg); /* 1 if the wait was cancelled */
    /* Optional: forget the waiter before a deadline wakes the task (for
     * waits that keep the task in a queue or a slot). */
    void (*abandon)(cio__wait *wait);
    /* Optional: give back what the suspended frame holds (references on
     * futures, memory) when its task is destroyed at loop close, since the
     * code after the suspension will never run. */
    void (*unwind)(cio__wait *wait);
    /* Optional: what a deadline does to a wait that cannot end at once (an
     * I/O operation the kernel may still be writing into). Instead of
     * abandoning the wait and resuming the task, the deadline calls expire,
     * which asks the wait to end; the wait wakes its task itself once it
     * has. */
    void (*expire)(cio__wait *wait);
    const char *what;        /* "sleep", "future", "wait", ... */
    cio_future *future;      /* the awaited future, if any */
    int64_t deadline;        /* loop time in ns, or INT64_MAX */
    /* The await graph (read by the dump only; zero is "not known"): */
    const void *object;      /* the lock, queue, event... waited on */
    /* Where the object keeps the id of the task that holds it (a lock's
     * owner), or NULL: the edge a deadlock cycle needs. */
    const uint64_t *owner;
    /* The loop's clock (loop->now_ns) when the task suspended on it: the
     * dump's "waiting 2.1s", kept here, not in the task, which it would
     * make bigger. */
    int64_t since;
    int fd;                  /* CIO__WAIT_FD: the descriptor */
    uint8_t kind;            /* enum cio__wait_kind */
    uint8_t dir;             /* CIO__WAIT_FD: CIO__WAIT_DIR_READ / _WRITE */
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
    cio__wait *frame;       /* the suspending call it is in (also once woken) */
    char *name;             /* NULL until named: "Task-N" is formatted on demand */
    char name_buf[32];      /* where the default name is formatted */
    struct cio__task *free_next; /* in loop->free_tasks */
    /* The nodes of the timeout scopes the task entered and has not exited,
     * innermost first (see flow/timeout.c); dropped when it returns. */
    struct cio__node *scopes;
    uint64_t number;        /* N in "Task-N" */
    /* Metadata for the task dump (cio_task_get_info), kept always: */
    uint64_t id;            /* unique in the loop, never reused */
    uint64_t parent_id;     /* the task that spawned it, or 0 */
    const char *spawn_site; /* "file.c:42", or NULL: spawn_pc says where */
    const void *spawn_pc;
    int64_t started_ns;     /* loop clock at spawn (loop->now_ns) */
    uint64_t switches;      /* resumptions */
    int64_t cpu_ns;         /* CPU time run, counted in debug mode only */
    int cancel_requests;    /* asyncio's num_cancels_requested */
    uint8_t must_cancel;    /* deliver -ECANCELED at the next resumption */
    uint8_t run_state;
    uint8_t started;
    uint8_t has_raised;
    uint8_t raised_msg;     /* cio_raise_msg set the message the error carries */
    int raised;             /* set by cio_raise */
    int wake_status;        /* why the task was woken: 0 or -ECANCELED */
    /* Stack accounting (issue 12, item 6): the lowest stack pointer seen
     * when the task was switched out (a lower bound of its high-water
     * mark, one compare per switch). */
    const void *stack_low_sp;
    /* Two words that never live at once share one (a task record is
     * malloc'd, and 8 more bytes cost 16 there). While the task has its
     * stack (stack.lo set): stack_check_sp, below which a switch-out takes
     * the checked path (task.c, "check_stack_at_switch"): the low-water
     * mark for a guarded stack, the highest address for an unguarded one,
     * whose canary every switch checks. Once the stack is given back
     * (stack.lo NULL): stack_mark, the exact mark measured when the task
     * ended in debug mode, 0 if not measured. */
    union {
        const void *stack_check_sp;
        size_t stack_mark;
    };
} cio__task;

static inline cio__task *cio__task_of(const cio_future *fut) {
    return CIO__CONTAINER_OF(fut, cio__task, fut);
}

/* At loop close: ends a task's life on the loop (abandons and unwinds its
 * wait, releases its stack, drops the reference it held on itself). */
void cio__task_detach(cio__task *task);

/* cio_spawn_with, recording the spawn site (a string that outlives the
 * task, or NULL with the spawning code's address in pc). */
int cio__spawn(cio_loop *loop, cio_coro_fn fn, void *arg, const cio_task_options *opts,
               cio_task **taskp, const char *site, const void *pc);

/* A thread pool worker's record of cio_raise (flow/pool.c): the worker
 * sets catching before it calls the function and reads raised after, so
 * a function that returns cio_raise(err) makes its cio_to_thread return
 * err, as asyncio re-raises the function's exception in the awaiting task.
 * Outside a task and a worker, cio_raise records nothing. */
typedef struct cio__thread_raise {
    uint8_t catching;
    int raised;
} cio__thread_raise;
extern CIO__TLS cio__thread_raise cio__worker_raise;

int cio__task_cancel(cio__task *task, const char *msg);

/* Suspends the current task until something wakes it with
 * cio__task_wake() or cio__task_resume(). Returns the wake status, or
 * -ECANCELED if a cancellation was pending. */
int cio__task_suspend(cio__task *task, cio__wait *wait);
/* sleep(0): to the back of the ready queue and one suspension; returns 0
 * or -ECANCELED. */
int cio__task_yield(cio__task *task);
/* Like cio__task_suspend, but a deadline (loop time in ns; INT64_MAX for
 * none) wakes the task with -ETIMEDOUT after abandoning the wait, or, for a
 * wait with an expire hook, calls that hook and lets the wait wake the
 * task. Returns -ENOMEM if the timer cannot be armed (never once the caller
 * reserved room in the timer heap). */
int cio__task_suspend_timed(cio__task *task, cio__wait *wait, int64_t deadline);
static inline int cio__task_suspend_until(cio__task *task, cio__wait *wait, int64_t deadline) {
    if (deadline == INT64_MAX) return cio__task_suspend(task, wait);
    return cio__task_suspend_timed(task, wait, deadline);
}
/* Schedules a suspended task to resume with the given status. */
void cio__task_wake(cio__task *task, int status);
/* Resumes a suspended task at once (from a job the loop is running). */
void cio__task_resume(cio__task *task, int status);
/* The name of a task, formatting the default one if needed. */
const char *cio__task_name(cio__task *task);
/* The current task, or NULL with *err set to -EPERM. Inline: every
 * suspending call starts with it. */
static inline cio__task *cio__current(int *err) {
    cio__task *t = cio__running_task;
    if (!t) *err = -EPERM;
    return t;
}
/* A wait that ends with its result although the task was cancelled
 * meanwhile (I/O, the pool, a stream read): the result is returned, never
 * lost, and the cancellation is delivered at the task's next suspension,
 * unless it was withdrawn meanwhile. */
static inline void cio__task_defer_cancel(cio__task *t) {
    if (t->cancel_requests > 0) t->must_cancel = 1;
}
/* Forgets the current task (in a forked child, which has none). */
void cio__task_forget_current(void);
/* The stack of the task running in this thread, for the overflow handler
 * (see cio__stack_set_running_hook). */
const cio__stack *cio__running_stack(char *name, size_t cap, cio__stack_owner *owner);
/* The owner record of a task, for the overflow report. */
void cio__task_stack_owner(cio__task *task, cio__stack_owner *out);
/* A task's exact stack high-water mark now (see cio__stack_high_water). */
size_t cio__task_stack_high_water(const cio__task *task);
/* At a task's end in debug mode: measures its exact mark, adds it to the
 * loop's census of spawn sites, and wipes the stack for the next task
 * (task.c, with stack_census.c's census). */
void cio__task_stack_account(cio__task *task);
/* Frees the finished task objects a loop keeps for reuse (loop close). */
void cio__task_pool_destroy(cio_loop *loop);

#endif
