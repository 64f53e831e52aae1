/*
 * The loop's inbox: how other threads hand work to a loop
 * (cio_call_soon_threadsafe, run_coroutine_threadsafe, the thread pool's
 * completions).
 *
 * A sender appends a job to a mutex-protected list and, only if the loop
 * is asleep in its poll (or about to be), wakes it through the backend's
 * wake(). The protocol is the classic pair of flags (Dekker style, both
 * sequentially consistent):
 *
 *   sender:  lock; append; posted = 1; if (exchange(sleeping, 0)) wake; unlock
 *   loop:    sleeping = 1; if (posted) poll without blocking; else poll;
 *            sleeping = 0; if (posted) drain
 *
 * Either the loop sees posted before it blocks, or the sender sees sleeping
 * and wakes it: a job is never left waiting for an unrelated event. A busy
 * loop (jobs ready, so it never blocks) never sets sleeping, so senders
 * write no eventfd at all; the loop pays one relaxed load per iteration to
 * notice posted work.
 *
 * The wake-up is written while the sender holds the lock, and close marks
 * the inbox closed under the same lock before the backend (and its
 * eventfd) goes away: a sender racing close either posts before it, and
 * close discards the job, or finds the inbox closed and gets
 * -CIO_ELOOPCLOSED. The program's own calls are refused earlier, from the
 * moment close begins: close then waits for the pool's workers, which
 * still post their completions, and a call posted meanwhile would only be
 * discarded, its argument lost, where the caller must hear that the loop
 * is closed. Nothing is written to a closed descriptor, nothing is
 * lost. Jobs posted but not yet run when the loop closes are discarded
 * without running, as asyncio drops the callbacks of a closed loop; each
 * kind gives back what it holds (its discard function). Using the loop
 * pointer after cio_loop_free is the caller's bug, as with any freed object.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "core.h"

static void xjob_run(cio__job *job) {
    cio__xjob *x = CIO__CONTAINER_OF(job, cio__xjob, job);
    x->run(x);
}

static void xjob_discard(cio__job *job) {
    cio__xjob *x = CIO__CONTAINER_OF(job, cio__xjob, job);
    x->discard(x);
}

void cio__xjob_init(cio__xjob *x, void (*run)(cio__xjob *), void (*discard)(cio__xjob *)) {
    x->job.run = xjob_run;
    cio__list_init(&x->job.link);
    x->run = run;
    x->discard = discard;
}

void cio__inbox_init(cio_loop *loop) {
    pthread_mutex_init(&loop->inbox_lock, NULL);
    cio__list_init(&loop->inbox);
    atomic_init(&loop->inbox_posted, 0);
    atomic_init(&loop->inbox_sleeping, 0);
    atomic_init(&loop->inbox_wakes, 0);
    loop->inbox_closed = 0;
    loop->inbox_calls_refused = 0;
    cio__job_register_discard(xjob_run, xjob_discard);
}

static int post(cio_loop *loop, cio__xjob *x, bool call) {
    /* The generation is written only in a single-threaded forked child, so
     * reading it here races with nothing. */
    if (loop->generation != cio__fork_generation) return -CIO_EFORKED;
    pthread_mutex_lock(&loop->inbox_lock);
    if (loop->inbox_closed || (call && loop->inbox_calls_refused)) {
        pthread_mutex_unlock(&loop->inbox_lock);
        return -CIO_ELOOPCLOSED;
    }
    cio__list_push_back(&loop->inbox, &x->job.link);
    atomic_store(&loop->inbox_posted, 1);
    if (atomic_exchange(&loop->inbox_sleeping, 0)) {
        loop->io.backend->wake(&loop->io);
        atomic_fetch_add_explicit(&loop->inbox_wakes, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&loop->inbox_lock);
    return 0;
}

int cio__inbox_post(cio_loop *loop, cio__xjob *x) {
    return post(loop, x, false);
}

int cio__inbox_post_call(cio_loop *loop, cio__xjob *x) {
    return post(loop, x, true);
}

void cio__inbox_refuse_calls(cio_loop *loop) {
    pthread_mutex_lock(&loop->inbox_lock);
    loop->inbox_calls_refused = 1;
    pthread_mutex_unlock(&loop->inbox_lock);
}

void cio__inbox_drain(cio_loop *loop) {
    pthread_mutex_lock(&loop->inbox_lock);
    cio__list_splice_back(&loop->ready, &loop->inbox);
    atomic_store_explicit(&loop->inbox_posted, 0, memory_order_relaxed);
    pthread_mutex_unlock(&loop->inbox_lock);
}

void cio__inbox_close(cio_loop *loop) {
    cio__link dropped;
    cio__list_init(&dropped);
    pthread_mutex_lock(&loop->inbox_lock);
    loop->inbox_closed = 1;
    cio__list_splice_back(&dropped, &loop->inbox);
    atomic_store_explicit(&loop->inbox_posted, 0, memory_order_relaxed);
    pthread_mutex_unlock(&loop->inbox_lock);
    cio__link *link;
    while ((link = cio__list_pop_front(&dropped)) != NULL)
        cio__job_discard(CIO__CONTAINER_OF(link, cio__job, link));
}

void cio__inbox_destroy(cio_loop *loop) {
    pthread_mutex_destroy(&loop->inbox_lock);
}
