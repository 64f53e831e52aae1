/*
 * Awaiting an I/O operation: the one path every I/O call of cio takes.
 *
 * The task submits the operation; if the backend completes it at once, the
 * call returns without suspending (the common case of a socket that has
 * data, or room to send). Otherwise the task suspends, and only the
 * operation's final completion wakes it again.
 *
 * Cancelling is two-phase. A cancellation of the task, or the deadline,
 * does not wake the task: it asks the backend to cancel the operation
 * (wait_cancel, wait_expire). The task wakes when the backend reports the
 * final completion, which on epoll comes at once and on io_uring from a
 * later poll. Until then the operation's record and buffers, which live on
 * this task's stack, stay in use by the backend; afterwards nothing touches
 * them. If the operation finished before the cancellation reached it, its
 * real result is returned (bytes received are never dropped) and the
 * task's cancellation is delivered at its next suspension point.
 */
#include "flow.h"

typedef struct op_wait {
    cio__wait rec;
    cio__op *op;
    cio__task *task;
    cio__io *io;
    uint8_t cancelled;     /* the task was cancelled while the op was in flight */
    uint8_t timed_out;     /* the deadline passed while the op was in flight */
} op_wait;

static void wake_on_completion(cio__op *op) {
    op_wait *w = op->owner;
    if (op->state == CIO__OP_DONE) cio__task_wake(w->task, 0);
}

/* Returns 1: the task will wake, once the operation has really ended. */
static int wait_cancel(cio__wait *rec, const char *msg) {
    (void)msg;
    op_wait *w = CIO__CONTAINER_OF(rec, op_wait, rec);
    w->cancelled = 1;
    cio__io_cancel(w->io, w->op, -ECANCELED);
    return 1;
}

/* The deadline (cio__task_suspend_until) asks the operation to end; the
 * final completion wakes the task, as for a cancellation. */
static void wait_expire(cio__wait *rec) {
    op_wait *w = CIO__CONTAINER_OF(rec, op_wait, rec);
    w->timed_out = 1;
    cio__io_cancel(w->io, w->op, -ECANCELED);
}

static const char *describe(const cio__op *op) {
    switch (op->kind) {
    case CIO__OP_POLL: return (op->u.poll.events & CIO__POLL_OUT) ? "fd writable" : "fd readable";
    case CIO__OP_RECV: return "recv";
    case CIO__OP_SEND: return "send";
    case CIO__OP_RECVMSG: return "recvmsg";
    case CIO__OP_SENDMSG: return "sendmsg";
    case CIO__OP_ACCEPT: return "accept";
    case CIO__OP_CONNECT: return "connect";
    case CIO__OP_READ: return "read";
    case CIO__OP_WRITE: return "write";
    case CIO__OP_FILE_READ: return "file read";
    case CIO__OP_FILE_WRITE: return "file write";
    case CIO__OP_FSYNC: return "file fsync";
    case CIO__OP_STATX: return "file statx";
    case CIO__OP_OPENAT: return "file open";
    case CIO__OP_FILE_CLOSE: return "file close";
    default: return "I/O";
    }
}

/* Which way the operation moves data, for the dump's "fd 12 read". */
static uint8_t direction(const cio__op *op) {
    switch (op->kind) {
    case CIO__OP_POLL:
        return (op->u.poll.events & CIO__POLL_OUT) ? CIO__WAIT_DIR_WRITE : CIO__WAIT_DIR_READ;
    case CIO__OP_RECV:
    case CIO__OP_RECVMSG:
    case CIO__OP_ACCEPT:
    case CIO__OP_READ: return CIO__WAIT_DIR_READ;
    case CIO__OP_SEND:
    case CIO__OP_SENDMSG:
    case CIO__OP_CONNECT:
    case CIO__OP_WRITE: return CIO__WAIT_DIR_WRITE;
    default: return 0;
    }
}

ssize_t cio__op_await(cio__op *op, int64_t deadline) {
    int rc;
    cio__task *t = cio__current(&rc);
    if (!t) return rc;
    cio_loop *loop = t->fut.loop;
    /* Room for the deadline timer is reserved before the operation starts,
     * so that nothing can fail once it is in flight. */
    if (deadline != INT64_MAX && (rc = cio__timer_heap_reserve(&loop->timers, 1)) < 0) return rc;
    op_wait w = {.op = op, .task = t, .io = &loop->io};
    op->owner = &w;
    op->done = wake_on_completion;
    cio__io_submit(&loop->io, op);
    if (op->state == CIO__OP_DONE) return op->result;

    w.rec.cancel = wait_cancel;
    w.rec.expire = wait_expire;
    w.rec.what = describe(op);
    /* cio__task_suspend_until records only a finite deadline: the record
     * must say "none" itself, or a dump reads a deadline of zero. */
    w.rec.deadline = deadline;
    w.rec.kind = CIO__WAIT_FD;
    w.rec.fd = op->fd;
    w.rec.dir = direction(op);
    /* Only the final completion wakes the task, but a cancellation that
     * arrives after it (while the task waits in the ready queue) makes the
     * suspension report -ECANCELED: the loop below tells the cases apart by
     * the operation's own state. */
    int woke = 0;
    while (op->state != CIO__OP_DONE) woke = cio__task_suspend_until(t, &w.rec, deadline);
    ssize_t result = op->result;
    if (result == -ECANCELED && (w.cancelled || w.timed_out)) {
        /* The deadline cancelled the operation, and a cancellation of the
         * task arrived before it ran again: the cancellation wins, as in
         * asyncio, where a timeout is not reported while cancelling() > 0. */
        if (!w.cancelled && woke == -ECANCELED && t->cancel_requests > 0) return -ECANCELED;
        return w.cancelled ? -ECANCELED : -ETIMEDOUT;
    }
    /* The operation finished on its own. A cancellation that came too late
     * to stop it is kept for the next suspension. */
    if (w.cancelled || woke == -ECANCELED) cio__task_defer_cancel(t);
    return result;
}
