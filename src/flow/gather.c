/*
 * asyncio.gather: one future that completes when all children are done.
 *
 * The gather future, its child pointers, the outcome array and one waiter
 * job per child are a single allocation. Each waiter holds a reference on
 * the gather future until it has run, so dropping the gather future early
 * never frees it under a pending child.
 *
 * Rules (asyncio's _GatheringFuture): outcomes keep argument order; without
 * CIO_RETURN_EXCEPTIONS the first child error (or a child's cancellation,
 * as the error -ECANCELED) completes the gather at once and the other
 * children are left running; cancelling the gather cancels every child, and
 * the gather ends cancelled: without CIO_RETURN_EXCEPTIONS as soon as the
 * first child ends cancelled (the others may still be cleaning up, as in
 * asyncio), with it once every child is done.
 */
#include <pthread.h>
#include <string.h>

#include "flow.h"

typedef struct gather gather;

typedef struct child_waiter {
    cio__job job;
    gather *g;
    size_t index;
} child_waiter;

struct gather {
    cio_future fut;
    size_t n, finished;
    unsigned flags;
    int cancel_requested;
    cio_future **children;
    cio_outcome *outcomes;
    child_waiter *waiters;
};

static gather *gather_of(const cio_future *fut) {
    return CIO__CONTAINER_OF(fut, gather, fut);
}

static void on_child_done(cio__job *job) {
    child_waiter *w = CIO__CONTAINER_OF(job, child_waiter, job);
    gather *g = w->g;
    cio_future *child = g->children[w->index];
    cio_outcome *o = &g->outcomes[w->index];
    o->error = cio__future_outcome(child, &o->value);
    g->finished++;
    if (g->fut.state == CIO__PENDING) {
        if (!(g->flags & CIO_RETURN_EXCEPTIONS) && o->error < 0) {
            /* asyncio's _done_callback does not wait for the other
             * children here, also after gather.cancel(): the first child
             * that ends cancelled (or failed) ends the gather, and the
             * others go on alone. A cancellation the gather asked for ends
             * it cancelled, as documented for cio_gather. */
            if (o->error == -ECANCELED && g->cancel_requested) {
                cio__future_complete(&g->fut, CIO__CANCELLED, NULL, -ECANCELED);
            } else {
                /* The error carries the child's message, never one left
                 * from a cancel of the gather that a child survived. */
                const char *msg = cio_future_error_message(child);
                cio__free(g->fut.cancel_msg);
                g->fut.cancel_msg = msg ? cio__strdup(msg) : NULL;
                cio__future_complete(&g->fut, CIO__DONE_ERROR, NULL, o->error);
                /* An error set here is delivered to whoever awaits the
                 * gather; a cancelled child is not an error worth a report. */
                if (o->error == -ECANCELED) g->fut.retrieved = 1;
            }
        } else if (g->finished == g->n) {
            if (g->cancel_requested)
                cio__future_complete(&g->fut, CIO__CANCELLED, NULL, -ECANCELED);
            else
                cio__future_complete(&g->fut, CIO__DONE_RESULT, g->outcomes, 0);
        }
    }
    cio_future_unref(&g->fut);
}

static int gather_cancel(cio_future *fut, const char *msg);
static void gather_destroy(cio_future *fut);
static const cio__future_ops gather_ops = {.destroy = gather_destroy, .cancel = gather_cancel};

/* At loop close: a child's waiter that will never run gives back its
 * reference on the gather future. */
static void gather_discard(cio__job *job) {
    child_waiter *w = CIO__CONTAINER_OF(job, child_waiter, job);
    cio__future_unref(&w->g->fut);
}

static pthread_once_t discard_registered = PTHREAD_ONCE_INIT;

static void register_discard(void) {
    cio__job_register_discard(on_child_done, gather_discard);
}

int cio_gather(cio_loop *loop, cio_future *const *children, size_t n, unsigned flags,
               cio_future **outp) {
    if (!outp) return -EINVAL;
    *outp = NULL;
    if (!loop || (n && !children) || (flags & ~CIO_RETURN_EXCEPTIONS)) return -EINVAL;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    for (size_t i = 0; i < n; i++) {
        if (!children[i]) return -EINVAL;
        if (!children[i]->loop) return -CIO_ELOOPCLOSED;
        if (children[i]->loop != loop) return -CIO_EWRONGLOOP;
    }
    pthread_once(&discard_registered, register_discard);
    size_t slots = n ? n : 1;
    size_t size = sizeof(gather) + slots * (sizeof(cio_future *) + sizeof(cio_outcome) +
                                            sizeof(child_waiter));
    gather *g = cio__malloc(size);
    if (!g) return -ENOMEM;
    cio__future_init(loop, &g->fut, CIO__KIND_GATHER, &gather_ops);
    g->n = n;
    g->finished = 0;
    g->flags = flags;
    g->cancel_requested = 0;
    g->outcomes = (cio_outcome *)(g + 1);
    g->waiters = (child_waiter *)(g->outcomes + slots);
    g->children = (cio_future **)(g->waiters + slots);
    for (size_t i = 0; i < n; i++) {
        g->children[i] = cio_future_ref(children[i]);
        g->outcomes[i].error = -CIO_EINVALSTATE;
        g->outcomes[i].value = NULL;
        child_waiter *w = &g->waiters[i];
        w->g = g;
        w->index = i;
        w->job.run = on_child_done;
        cio__list_init(&w->job.link);
        cio_future_ref(&g->fut);
        cio__future_add_waiter(children[i], &w->job);
    }
    if (n == 0) cio__future_complete(&g->fut, CIO__DONE_RESULT, g->outcomes, 0);
    *outp = &g->fut;
    return 0;
}

static int gather_cancel(cio_future *fut, const char *msg) {
    gather *g = gather_of(fut);
    int taken = 0;
    for (size_t i = 0; i < g->n; i++)
        if (cio_future_cancel(g->children[i], msg) == 1) taken = 1;
    if (taken) {
        g->cancel_requested = 1;
        cio__free(fut->cancel_msg);
        fut->cancel_msg = msg ? cio__strdup(msg) : NULL;
    }
    return taken;
}

static void gather_destroy(cio_future *fut) {
    gather *g = gather_of(fut);
    /* Also at loop close: the references are exact there too, so releasing
     * a child frees it only if nothing else holds it. */
    for (size_t i = 0; i < g->n; i++) cio_future_unref(g->children[i]);
    cio__free(g);
}

const cio_outcome *cio_gather_outcomes(const cio_future *fut, size_t *n) {
    if (!fut || fut->kind != CIO__KIND_GATHER) {
        if (n) *n = 0;
        return NULL;
    }
    const gather *g = gather_of(fut);
    if (n) *n = g->n;
    return g->outcomes;
}
