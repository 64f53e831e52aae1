/*
 * asyncio.as_completed: hand out futures in the order they finish.
 *
 * One waiter job per future records, when its future completes, the
 * future's index in a FIFO of finished ones and wakes the task blocked in
 * cio_as_completed_next, if any. next() pops that FIFO; when it is empty it
 * waits on a one-task wait queue with the iterator's deadline.
 *
 * The timeout, as 3.13's _AsCompletedIterator: the deadline is met inside
 * the wait, after a suspension, so futures already done (their jobs
 * queued) are handed out first even with a timeout of 0. When it passes,
 * the futures not yet finished stop being watched and each of them counts
 * as one -ETIMEDOUT: next() hands out what finished before, then one
 * -ETIMEDOUT per such future, then 0, so a loop that runs until 0 ends.
 *
 * Lifetime. `users` counts the tasks inside the waiting part of next(),
 * woken ones that have not run yet included: they still read the
 * iterator. cio_as_completed_free refuses to free it while any exist,
 * reports the refusal as the synchronisation primitives do and returns
 * -EBUSY, leaving the iterator intact.
 */
#include <math.h>

#include "flow.h"

typedef struct entry {
    cio__job job;
    cio_as_completed *ac;
    size_t index;
} entry;

struct cio_as_completed {
    cio_loop *loop;
    size_t n, yielded, finished;
    size_t timeouts_left; /* once timed out: -ETIMEDOUT answers still due */
    int timed_out;
    int64_t deadline;
    cio_future **fs;
    entry *entries;
    size_t *order;       /* indices in completion order; [yielded, finished) pending */
    cio__waitq waiting;  /* the task blocked in next(), if any */
    unsigned users;      /* tasks inside the waiting part of next() */
};

static void on_done(cio__job *job) {
    entry *e = CIO__CONTAINER_OF(job, entry, job);
    cio_as_completed *ac = e->ac;
    ac->order[ac->finished++] = e->index;
    cio__waitq_wake_one(&ac->waiting, NULL);
}

int cio_as_completed_new(cio_loop *loop, cio_future *const *fs, size_t n, double timeout,
                         cio_as_completed **acp) {
    if (!acp) return -EINVAL;
    *acp = NULL;
    if (!loop || (n && !fs) || isnan(timeout)) return -EINVAL;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    for (size_t i = 0; i < n; i++) {
        if (!fs[i]) return -EINVAL;
        if (!fs[i]->loop) return -CIO_ELOOPCLOSED;
        if (fs[i]->loop != loop) return -CIO_EWRONGLOOP;
    }
    size_t slots = n ? n : 1;
    cio_as_completed *ac = cio__malloc(sizeof *ac + slots * (sizeof(cio_future *) +
                                                               sizeof(entry) + sizeof(size_t)));
    if (!ac) return -ENOMEM;
    ac->loop = loop;
    ac->n = n;
    ac->yielded = ac->finished = 0;
    ac->timeouts_left = 0;
    ac->timed_out = 0;
    ac->entries = (entry *)(ac + 1);
    ac->fs = (cio_future **)(ac->entries + slots);
    ac->order = (size_t *)(ac->fs + slots);
    cio__waitq_init(&ac->waiting);
    /* Bound now: only this loop's futures wake it, so a task of another
     * loop must be refused, not left waiting (or woken from this loop's
     * thread). */
    cio__waitq_bind(&ac->waiting, loop);
    ac->users = 0;
    ac->deadline = INT64_MAX;
    if (!(isinf(timeout) && timeout > 0)) ac->deadline = cio__deadline_after(timeout);
    for (size_t i = 0; i < n; i++) {
        ac->fs[i] = cio_future_ref(fs[i]);
        entry *e = &ac->entries[i];
        e->ac = ac;
        e->index = i;
        e->job.run = on_done;
        cio__list_init(&e->job.link);
        cio__future_add_waiter(fs[i], &e->job);
    }
    *acp = ac;
    return 0;
}

/* The deadline passed: the futures not finished by now are no longer
 * watched (a completion queued but not yet recorded included, as asyncio's
 * completion callback finds its todo set emptied), and each is owed one
 * -ETIMEDOUT. */
static void time_out(cio_as_completed *ac) {
    ac->timed_out = 1;
    ac->timeouts_left = ac->n - ac->finished;
    for (size_t i = 0; i < ac->n; i++) {
        cio__job *job = &ac->entries[i].job;
        if (cio__link_linked(&job->link)) cio__list_unlink(&job->link);
    }
}

int cio_as_completed_next(cio_as_completed *ac, cio_future **donep) {
    if (!ac || !donep) return -EINVAL;
    *donep = NULL;
    if (!cio_current_task()) return -EPERM;
    while (ac->yielded == ac->finished) {
        if (ac->timed_out) {
            if (ac->timeouts_left == 0) return 0;
            ac->timeouts_left--;
            return -ETIMEDOUT;
        }
        if (ac->yielded == ac->n) return 0;
        cio__waiter w;
        ac->users++;
        int rc = cio__waitq_wait_on(&ac->waiting, &w, CIO__WAIT_AS_COMPLETED, ac, NULL,
                                    "as_completed", ac->deadline);
        ac->users--;
        if (rc == -ETIMEDOUT) {
            time_out(ac);
            continue;
        }
        if (rc < 0) return rc;
    }
    *donep = ac->fs[ac->order[ac->yielded++]];
    return 1;
}

int cio_as_completed_free(cio_as_completed *ac) {
    if (!ac) return 0;
    /* A task blocked in next() holds a waiter linked into ac, and a woken
     * one reads ac when it runs: freeing ac would leave either pointing at
     * freed memory. */
    if (ac->users > 0) {
        cio__waitq_refuse_free(&ac->waiting,
                               "cio_as_completed_free: a task still waits in next(); not freed");
        return -EBUSY;
    }
    for (size_t i = 0; i < ac->n; i++) {
        cio__job *job = &ac->entries[i].job;
        if (cio__link_linked(&job->link)) cio__list_unlink(&job->link);
        cio_future_unref(ac->fs[i]);
    }
    cio__free(ac);
    return 0;
}
