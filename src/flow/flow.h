/*
 * The flow layer: awaiting, sleeping, combinators, timeout scopes, task
 * groups, the runner, and the one path by which a task awaits an I/O
 * operation (await_op.c).
 */
#ifndef CIO_FLOW_H
#define CIO_FLOW_H

#include "sync/sync.h"

/*
 * Submits op on the current task's loop and suspends the task until the
 * operation's final completion; returns its result. deadline is a loop time
 * in ns (INT64_MAX: none).
 *
 * Cancelling the task, or reaching the deadline, asks the backend to cancel
 * the operation, and the task resumes only once the operation has really
 * ended: no backend touches the record or its buffers after this returns.
 * If the operation was cancelled in time the call returns -ECANCELED (the
 * task was cancelled) or -ETIMEDOUT (the deadline passed). If it finished
 * first, its result is returned, so no data is lost, and a cancellation of
 * the task is delivered at its next suspension instead. Outside a task:
 * -EPERM.
 */
ssize_t cio__op_await(cio__op *op, int64_t deadline);

#endif
