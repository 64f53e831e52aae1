/*
 * Jobs that will never run.
 *
 * At loop close, a job still queued gives back what it holds. Only a few
 * kinds of job hold references: done callbacks (src/core/future.c), and
 * jobs of rooms above the core (a gather's child waiters, a shield's
 * follower, a datagram endpoint's run, a cross-thread call), which register
 * their discard function once, keyed by their run function, since the core
 * may not call up into them. The other jobs (task steps, timers, waiters of
 * suspended tasks, task-group and as_completed records) hold none; every
 * discarded job's link is left unlinked, so whoever owns it may still
 * unlink it safely.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "loop.h"

#define DISCARD_KINDS 16

static struct {
    void (*run)(cio__job *job);
    void (*discard)(cio__job *job);
} discard_kinds[DISCARD_KINDS];
static _Atomic int discard_count;
static pthread_mutex_t discard_lock = PTHREAD_MUTEX_INITIALIZER;

void cio__job_register_discard(void (*run)(cio__job *job), void (*discard)(cio__job *job)) {
    pthread_mutex_lock(&discard_lock);
    int n = atomic_load_explicit(&discard_count, memory_order_relaxed);
    int known = 0;
    for (int i = 0; i < n; i++) known |= discard_kinds[i].run == run;
    if (!known && n < DISCARD_KINDS) {
        discard_kinds[n].run = run;
        discard_kinds[n].discard = discard;
        atomic_store_explicit(&discard_count, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&discard_lock);
}

void cio__job_discard(cio__job *job) {
    cio__list_init(&job->link);
    int n = atomic_load_explicit(&discard_count, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        if (discard_kinds[i].run == job->run) {
            discard_kinds[i].discard(job);
            return;
        }
    }
}
