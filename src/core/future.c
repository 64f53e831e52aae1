/*
 * Futures: a result, an error or a cancellation, set once, and the
 * callbacks that want to hear about it.
 *
 * Completion never calls anything inline. The future's callback list holds
 * jobs: done callbacks registered by the user (pooled nodes) and waiter
 * records of suspended tasks (on those tasks' stacks). Completing the
 * future moves the whole list to the back of the ready queue in
 * registration order, which is asyncio's "callbacks are scheduled with
 * call_soon" rule at the cost of one list splice.
 *
 * Lifetime: a future is reference counted. The creator holds one
 * reference, a registered done callback holds one until it has run, and a
 * pending task holds one on itself until it finishes. The loop keeps every
 * live future on a list so that cio_loop_close() can deal with what is
 * left: close drops the references held by what it destroys (queued jobs,
 * registered callbacks, suspended tasks' frames, tasks' references on
 * themselves), frees the futures nobody else references, and *orphans* the
 * rest: fut->loop becomes NULL, a pending one reads as cancelled, and it
 * lives on, inert, until its last release. Every public call that would
 * reach the loop checks for an orphan first (-CIO_ELOOPCLOSED).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "future.h"
#include "handle.h"

int cio_future_new(cio_loop *loop, cio_future **futp) {
    if (!futp) return -EINVAL;
    *futp = NULL;
    if (!loop) return -EINVAL;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    cio_future *fut = cio__malloc(sizeof *fut);
    if (!fut) return -ENOMEM;
    cio__future_init(loop, fut, CIO__KIND_FUTURE, NULL);
    const cio_future *maker = cio__running_task_future();
    if (maker && maker->loop == loop) fut->creator = maker->creator;
    *futp = fut;
    return 0;
}

/* The end of a future's life, inlined into cio_future_unref, where a
 * program's last release of a task lands once per spawn. */
__attribute__((always_inline)) static inline void destroy(cio_future *fut) {
    if (cio__link_linked(&fut->loop_link)) {
        cio_loop *loop = fut->loop;
        if (loop) cio__loop_debug_begin(loop);
        cio__list_unlink(&fut->loop_link);
        if (loop) cio__loop_debug_end(loop);
    }
    /* An orphan has no loop: cio__report then uses the default handler. */
    if (fut->state == CIO__DONE_ERROR && !fut->retrieved)
        cio__report(fut->loop,
                    fut->kind == CIO__KIND_TASK ? "Task exception was never retrieved"
                                                : "Future exception was never retrieved",
                    fut->error, fut);
    if (fut->cancel_msg) {
        cio__free(fut->cancel_msg);
        fut->cancel_msg = NULL;
    }
    if (fut->ops)
        fut->ops->destroy(fut);
    else
        cio__free(fut);
}

void cio__future_destroy(cio_future *fut) {
    destroy(fut);
}

cio_future *cio_future_ref(cio_future *fut) {
    if (fut) fut->refs++;
    return fut;
}

void cio_future_unref(cio_future *fut) {
    if (!fut) return;
    if (fut->refs == 0) return; /* already unreferenced: a caller bug, ignored */
    if (--fut->refs == 0) destroy(fut);
}


void cio__future_add_waiter(cio_future *fut, cio__job *job) {
    if (fut->state == CIO__PENDING)
        cio__list_push_back(&fut->callbacks, &job->link);
    else
        cio__ready_push(fut->loop, job);
}

void cio__future_remove_waiter(cio_future *fut, cio__job *job) {
    (void)fut;
    if (cio__link_linked(&job->link)) cio__list_unlink(&job->link);
}

static int check_settable(cio_future *fut) {
    if (!fut) return -EINVAL;
    if (!fut->loop) return -CIO_ELOOPCLOSED;
    if (fut->kind == CIO__KIND_TASK) return -EINVAL; /* asyncio: Task does not support set_result */
    if (fut->state != CIO__PENDING) return -CIO_EINVALSTATE;
    return cio__loop_check(fut->loop);
}

int cio_future_set_result(cio_future *fut, void *result) {
    int rc = check_settable(fut);
    if (rc < 0) return rc;
    cio__future_complete(fut, CIO__DONE_RESULT, result, 0);
    return 0;
}

int cio_future_set_error(cio_future *fut, int err) {
    if (err >= 0) return -EINVAL;
    int rc = check_settable(fut);
    if (rc < 0) return rc;
    cio__future_complete(fut, CIO__DONE_ERROR, NULL, err);
    return 0;
}

static void store_message(cio_future *fut, const char *msg) {
    cio__free(fut->cancel_msg);
    /* If the copy fails the cancellation still happens, without a message. */
    fut->cancel_msg = msg ? cio__strdup(msg) : NULL;
}

int cio_future_cancel(cio_future *fut, const char *msg) {
    if (!fut) return -EINVAL;
    int rc = cio__loop_check_thread(fut->loop);
    if (rc < 0) return rc;
    if (fut->state != CIO__PENDING) {
        /* As asyncio's cancel(), which clears the "exception was never
         * retrieved" report even when it is too late to cancel: whoever
         * cancels has given up on the outcome. */
        fut->retrieved = 1;
        return 0;
    }
    if (fut->ops) return fut->ops->cancel(fut, msg);
    store_message(fut, msg);
    cio__future_complete(fut, CIO__CANCELLED, NULL, -ECANCELED);
    return 1;
}

int cio_future_done(const cio_future *fut) {
    return fut && fut->state != CIO__PENDING;
}

int cio_future_cancelled(const cio_future *fut) {
    return fut && fut->state == CIO__CANCELLED;
}

int cio__future_outcome(cio_future *fut, void **result) {
    switch (fut->state) {
    case CIO__PENDING: return -CIO_EINVALSTATE;
    case CIO__DONE_RESULT:
        if (result) *result = fut->result;
        return 0;
    case CIO__DONE_ERROR: fut->retrieved = 1; return fut->error;
    default: return -ECANCELED;
    }
}

int cio_future_result(cio_future *fut, void **result) {
    if (!fut) return -EINVAL;
    return cio__future_outcome(fut, result);
}

int cio_future_error(cio_future *fut) {
    if (!fut) return -EINVAL;
    switch (fut->state) {
    case CIO__PENDING: return -CIO_EINVALSTATE;
    case CIO__DONE_RESULT: return 0;
    case CIO__DONE_ERROR: fut->retrieved = 1; return fut->error;
    default: return -ECANCELED;
    }
}

/* One field holds either message: a future that ended with an error has
 * no cancellation message, and a cancelled one has no error. */
const char *cio_future_cancel_message(const cio_future *fut) {
    return fut && fut->state != CIO__DONE_ERROR ? fut->cancel_msg : NULL;
}

const char *cio_future_error_message(const cio_future *fut) {
    return fut && fut->state == CIO__DONE_ERROR ? fut->cancel_msg : NULL;
}

int cio_future_set_error_msg(cio_future *fut, int err, const char *msg) {
    if (err >= 0) return -EINVAL;
    int rc = check_settable(fut);
    if (rc < 0) return rc;
    store_message(fut, msg);
    cio__future_complete(fut, CIO__DONE_ERROR, NULL, err);
    return 0;
}

cio_loop *cio_future_loop(const cio_future *fut) {
    return fut ? fut->loop : NULL;
}

int cio_future_is_task(const cio_future *fut) {
    return fut && fut->kind == CIO__KIND_TASK;
}

/* ---- done callbacks ----------------------------------------------------- */

static void run_done_callback(cio__job *job) {
    cio__node *node = CIO__CONTAINER_OF(job, cio__node, job);
    cio_future *fut = node->future;
    cio_done_fn fn = node->done;
    void *arg = node->arg;
    cio__node_free(fut->loop, node);
    fn(fut, arg);
    cio_future_unref(fut);
}

int cio_future_add_done_callback(cio_future *fut, cio_done_fn fn, void *arg) {
    if (!fut || !fn) return -EINVAL;
    if (!fut->loop) return -CIO_ELOOPCLOSED;
    int rc = cio__loop_check(fut->loop);
    if (rc < 0) return rc;
    cio__node *node = cio__node_alloc(fut->loop);
    if (!node) return -ENOMEM;
    node->done = fn;
    node->arg = arg;
    node->future = cio_future_ref(fut);
    node->job.run = run_done_callback;
    node->state = fut->state == CIO__PENDING ? CIO__NODE_WAITING : CIO__NODE_READY;
    cio__future_add_waiter(fut, &node->job);
    return 0;
}

int cio_future_remove_done_callback(cio_future *fut, cio_done_fn fn, void *arg) {
    if (!fut) return -EINVAL;
    int rc = cio__loop_check_thread(fut->loop);
    if (rc < 0) return rc;
    int removed = 0;
    cio__link *link = fut->callbacks.next;
    while (link != &fut->callbacks) {
        cio__link *next = link->next;
        cio__job *job = CIO__CONTAINER_OF(link, cio__job, link);
        if (job->run == run_done_callback) {
            cio__node *node = CIO__CONTAINER_OF(job, cio__node, job);
            if (node->done == fn && node->arg == arg) {
                cio__list_unlink(link);
                cio__node_free(fut->loop, node);
                removed++;
            }
        }
        link = next;
    }
    /* The caller holds a reference, so these unrefs never free fut. */
    fut->refs -= (uint32_t)removed;
    return removed;
}

/* At loop close a done callback that will never run gives back its
 * reference to the future (src/core/job.c; the node goes with the pool). */
static void discard_done_callback(cio__job *job) {
    cio__future_unref(CIO__CONTAINER_OF(job, cio__node, job)->future);
}

void cio__future_register_discards(void) {
    cio__job_register_discard(run_done_callback, discard_done_callback);
}
