/*
 * asyncio.shield: an outer future that follows an inner one, so that
 * cancelling whoever awaits the outer leaves the inner running.
 *
 * The outer future is a plain future with a job embedded after it; the job
 * waits on the inner future and holds a reference on the outer until it has
 * run. The outer future holds a reference on the inner one until then.
 */
#include <pthread.h>

#include "flow.h"

typedef struct shield {
    cio_future outer;   /* first: freeing the future frees the whole shield */
    cio_future *inner;
    cio__job on_inner_done;
} shield;

static void follow_inner(cio__job *job) {
    shield *sh = CIO__CONTAINER_OF(job, shield, on_inner_done);
    cio_future *inner = sh->inner, *outer = &sh->outer;
    if (outer->state != CIO__PENDING) {
        /* The outer was cancelled: nobody will read the inner's outcome
         * through it, and asyncio does not report it either. */
        inner->retrieved = 1;
    } else if (inner->state == CIO__CANCELLED) {
        cio_future_cancel(outer, inner->cancel_msg);
    } else if (inner->state == CIO__DONE_ERROR) {
        inner->retrieved = 1;
        cio_future_set_error_msg(outer, inner->error, inner->cancel_msg);
    } else {
        cio_future_set_result(outer, inner->result);
    }
    sh->inner = NULL;
    cio_future_unref(inner);
    cio_future_unref(outer);
}

/* At loop close: the job will never run; it gives back its reference on the
 * outer future, and the outer's on the inner one. */
static void shield_discard(cio__job *job) {
    shield *sh = CIO__CONTAINER_OF(job, shield, on_inner_done);
    cio_future *inner = sh->inner;
    sh->inner = NULL;
    cio__future_unref(inner);
    cio__future_unref(&sh->outer);
}

static pthread_once_t discard_registered = PTHREAD_ONCE_INIT;

static void register_discard(void) {
    cio__job_register_discard(follow_inner, shield_discard);
}

int cio_shield(cio_future *inner, cio_future **outerp) {
    if (!outerp) return -EINVAL;
    *outerp = NULL;
    if (!inner) return -EINVAL;
    if (!inner->loop) return -CIO_ELOOPCLOSED;
    int rc = cio__loop_check(inner->loop);
    if (rc < 0) return rc;
    if (inner->state != CIO__PENDING) {
        /* asyncio returns a done inner itself. */
        *outerp = cio_future_ref(inner);
        return 0;
    }
    pthread_once(&discard_registered, register_discard);
    shield *sh = cio__malloc(sizeof *sh);
    if (!sh) return -ENOMEM;
    cio__future_init(inner->loop, &sh->outer, CIO__KIND_FUTURE, NULL);
    sh->inner = cio_future_ref(inner);
    sh->on_inner_done.run = follow_inner;
    cio__list_init(&sh->on_inner_done.link);
    cio_future_ref(&sh->outer); /* held by the job until it runs */
    cio__future_add_waiter(inner, &sh->on_inner_done);
    *outerp = &sh->outer;
    return 0;
}
