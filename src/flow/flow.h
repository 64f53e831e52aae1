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

/*
 * Runs fn(arg) on a worker of the current task's loop's thread pool and
 * suspends the task until it returns (pool.c). Flags: CIO__POOL_LOOKUP, a
 * name lookup, which counts against the pool's bound on lookups running at
 * once; CIO__POOL_FINISH, fn works on the caller's memory (a stack
 * buffer), so a cancellation that comes while fn runs does not end the
 * wait: the call returns fn's result when it ends, and the cancellation is
 * delivered at the task's next suspension (as an I/O operation's). drop,
 * if not NULL, is called in the loop's thread with fn's result (NULL if fn
 * never ran) and arg whenever the call will not hand them back: it was
 * cancelled, or the loop closed. Returns 0, -ECANCELED, -EPERM outside a
 * task, -CIO_ELOOPCLOSED, -CIO_EPOOLSHUTDOWN, -ENOMEM, or -EAGAIN when no
 * worker exists and none could be started. On any error but -ECANCELED
 * drop is NOT called: arg is the caller's again.
 */
#define CIO__POOL_LOOKUP 1
#define CIO__POOL_FINISH 2
int cio__pool_run(void *(*fn)(void *), void *arg, int flags,
                  void (*drop)(void *result, void *arg), void **result);
/* The pool's counters, for tests (debug layer): workers started and not
 * yet left, items queued, lookups running. */
int cio__pool_get_stats(const cio_loop *loop, size_t *workers, size_t *queued, size_t *lookups);

#endif
