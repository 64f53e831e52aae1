/*
 * The thread pool: cio_to_thread (asyncio's to_thread / run_in_executor
 * on the default executor), cio_pool_shutdown (shutdown_default_executor)
 * and the bound on name lookups that DNS (src/net/dns.c) relies on.
 *
 * Each loop has its own pool, made on first use (asyncio's default
 * executor is per loop; nothing is shared between loops). Workers start
 * lazily, one more whenever more items wait than workers idle, up to
 * max_workers (asyncio's min(32, cpus + 4) by default). Items wait in one
 * FIFO under the pool's mutex; a worker takes the first item it may run.
 * Name lookups are items too, but at most max_lookups (half the workers)
 * run at once: a worker passes over a lookup when that many are running,
 * so slow lookups can never occupy every worker and starve other work.
 *
 * A waiting task suspends with a wait record on its own stack; the item
 * lives on the heap because the worker may outlive the wait. When the
 * function returns, the worker posts the item to the loop's inbox
 * (core/inbox.c), and the loop resumes the task, which takes the result
 * and frees the item. Cancelling the task:
 *   - while the item is queued: the item leaves the queue and is freed;
 *     the function never runs;
 *   - while it runs: the task gets -ECANCELED at once; the item is
 *     abandoned, and when the function returns the loop drops its result
 *     (the item's drop function, e.g. freeaddrinfo for a lookup) and frees
 *     it. The function and its argument run to their end regardless: the
 *     argument must stay valid until then.
 *
 * Shutdown stops new work (-CIO_EPOOLSHUTDOWN); queued items still run;
 * the last worker to leave posts a job that joins every worker and
 * completes the future the shutting-down tasks await, with their deadline.
 *
 * Loop close stops the pool first (core/loop_lifecycle.c, step 0): queued
 * items are dropped (their tasks are being destroyed; each frame's unwind
 * frees its item), and every worker is joined, so close WAITS for the
 * functions already running. We chose waiting over detaching a stuck
 * worker: a detached thread would go on running program code after close
 * returned, with nothing left to tell the program when it ends, and no
 * thread or item may outlive the loop. A program with calls that may not
 * end bounds them itself (cio_pool_shutdown with a timeout tells it).
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "flow.h"

enum { W_QUEUED, W_TAKEN, W_DROPPED };

typedef struct pool pool;
typedef struct pool_wait pool_wait;

typedef struct worker {
    cio__link link;      /* in pool->threads until joined */
    pthread_t tid;
    pool *p;
} worker;

typedef struct work {
    cio__xjob x;         /* the completion, posted to the inbox */
    cio__link link;      /* in pool->queue while queued */
    void *(*fn)(void *);
    void *arg;
    void *result;
    int raised;          /* what fn raised with cio_raise, or 0 */
    void (*drop)(void *result, void *arg);
    pool_wait *waiter;   /* loop thread: the waiting call, NULL once abandoned */
    uint8_t lookup;
    uint8_t state;       /* under the pool lock */
    uint8_t ran;         /* fn returned; written before the post */
    cio_loop *loop;      /* counts it in pool_pending until it is back */
} work;

struct pool_wait {
    cio__wait rec;
    cio__task *task;
    pool *p;
    work *item;          /* NULL once the call no longer owns it */
    uint8_t completed;
    uint8_t finish;      /* CIO__POOL_FINISH: a cancel waits for fn's end */
    uint8_t cancelled;   /* ... and one came while fn ran */
};

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* idle workers wait here */
    cio__link queue;
    size_t queued;
    cio__link threads;       /* workers not yet joined */
    size_t workers;          /* started and not yet left */
    size_t idle;
    size_t running;          /* items being run: at most max_workers */
    size_t max_workers;
    size_t lookups;          /* lookups running */
    size_t max_lookups;
    uint8_t stopping;        /* shutdown called, or the loop closes */
    uint8_t exit_posted;
    cio_loop *loop;
    cio__xjob all_exited;    /* posted by the last worker to leave */
    cio_future *shutdown_fut; /* loop thread: what shutting-down tasks await */
};

static size_t default_max_workers(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    return cpus + 4 < 32 ? (size_t)cpus + 4 : 32;
}

static void set_limits(pool *p, size_t max_workers) {
    p->max_workers = max_workers;
    p->max_lookups = max_workers / 2 ? max_workers / 2 : 1;
}

/* The first queued item this worker may run (under the lock). A bound
 * lowered below the workers already started holds for what runs: the
 * surplus workers idle until the running items are fewer than it. */
static work *take(pool *p) {
    if (p->running >= p->max_workers) return NULL;
    for (cio__link *l = p->queue.next; l != &p->queue; l = l->next) {
        work *w = CIO__CONTAINER_OF(l, work, link);
        if (w->lookup && p->lookups >= p->max_lookups) continue;
        cio__list_unlink(l);
        p->queued--;
        if (w->lookup) p->lookups++;
        p->running++;
        w->state = W_TAKEN;
        return w;
    }
    return NULL;
}

static void *worker_main(void *arg) {
    worker *me = arg;
    pool *p = me->p;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        work *w = take(p);
        if (!w) {
            if (p->stopping && p->queued == 0) {
                /* Workers that stood idle over the bound (a limit lowered
                 * under them) wait for a wake-up that no item will bring
                 * any more: wake them to leave too. */
                pthread_cond_broadcast(&p->cond);
                break;
            }
            p->idle++;
            pthread_cond_wait(&p->cond, &p->lock);
            p->idle--;
            continue;
        }
        pthread_mutex_unlock(&p->lock);
        cio__worker_raise.catching = 1;
        cio__worker_raise.raised = 0;
        void *result = w->fn(w->arg);
        cio__worker_raise.catching = 0;
        pthread_mutex_lock(&p->lock);
        w->result = result;
        w->raised = cio__worker_raise.raised;
        w->ran = 1;
        p->running--;
        if (w->lookup) {
            p->lookups--;
            /* A lookup passed over for the bound may go now. */
            pthread_cond_broadcast(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
        /* The inbox closes only after close joined every worker, so this
         * cannot be refused; the loop owns the item from here. */
        (void)cio__inbox_post(p->loop, &w->x);
        pthread_mutex_lock(&p->lock);
    }
    p->workers--;
    if (p->workers == 0 && !p->exit_posted) {
        p->exit_posted = 1;
        (void)cio__inbox_post(p->loop, &p->all_exited);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Starts one worker (under the lock): 0 or -EAGAIN / -ENOMEM. Workers
 * block every signal, so a process-directed signal goes to a thread that
 * runs the program's own code, as libuv's pool does. */
static int start_worker(pool *p) {
    worker *me = cio__malloc(sizeof *me);
    if (!me) return -ENOMEM;
    me->p = p;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = cio__sys_thread_start(&me->tid, worker_main, me);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        cio__free(me);
        return -rc;
    }
    cio__list_push_back(&p->threads, &me->link);
    p->workers++;
    return 0;
}

/* Joins every worker that has left or is leaving (no lock held). */
static void join_workers(cio__link *threads) {
    cio__link *l;
    while ((l = cio__list_pop_front(threads)) != NULL) {
        worker *me = CIO__CONTAINER_OF(l, worker, link);
        pthread_join(me->tid, NULL);
        cio__free(me);
    }
}

static void all_exited_run(cio__xjob *x) {
    pool *p = CIO__CONTAINER_OF(x, pool, all_exited);
    cio__link gone;
    cio__list_init(&gone);
    pthread_mutex_lock(&p->lock);
    cio__list_splice_back(&gone, &p->threads);
    pthread_mutex_unlock(&p->lock);
    join_workers(&gone);
    cio_future *fut = p->shutdown_fut;
    p->shutdown_fut = NULL;
    if (fut) {
        /* Never cancelled: each wait goes through its own shield. */
        (void)cio_future_set_result(fut, NULL);
        cio__future_unref(fut);
    }
}

static void all_exited_discard(cio__xjob *x) {
    (void)x; /* close joins the workers itself */
}

/* Loop close (see the block comment): phase 0 stops and joins, phase 1
 * frees. */
static void pool_close(cio_loop *loop, int phase) {
    pool *p = loop->pool;
    if (!p) return;
    if (phase == 0) {
        cio__link gone;
        cio__list_init(&gone);
        pthread_mutex_lock(&p->lock);
        p->stopping = 1;
        cio__link *l;
        while ((l = cio__list_pop_front(&p->queue)) != NULL)
            CIO__CONTAINER_OF(l, work, link)->state = W_DROPPED;
        p->queued = 0;
        pthread_cond_broadcast(&p->cond);
        cio__list_splice_back(&gone, &p->threads);
        pthread_mutex_unlock(&p->lock);
        join_workers(&gone);
        return;
    }
    if (p->shutdown_fut) cio__future_unref(p->shutdown_fut);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    cio__free(p);
}

static int get_pool(cio_loop *loop, pool **out) {
    if (loop->pool) {
        *out = loop->pool;
        return 0;
    }
    pool *p = cio__calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    cio__list_init(&p->queue);
    cio__list_init(&p->threads);
    set_limits(p, default_max_workers());
    p->loop = loop;
    cio__xjob_init(&p->all_exited, all_exited_run, all_exited_discard);
    loop->pool = p;
    loop->pool_close = pool_close;
    *out = p;
    return 0;
}

/* The calling task and its loop's pool (made on first use): 0, or -EPERM
 * outside a task, the loop's refusal, -ENOMEM. */
static int current_pool(cio__task **tp, pool **pp) {
    int rc;
    cio__task *t = cio__current(&rc);
    if (!t) return rc;
    if ((rc = cio__loop_check(t->fut.loop)) < 0) return rc;
    if ((rc = get_pool(t->fut.loop, pp)) < 0) return rc;
    *tp = t;
    return 0;
}

/* The completion, in the loop's thread. */
static void work_done(cio__xjob *x) {
    work *w = CIO__CONTAINER_OF(x, work, x);
    pool_wait *pw = w->waiter;
    w->loop->pool_pending--;
    if (!pw) {
        /* Abandoned by a cancelled call: nobody will read the result. */
        if (w->drop) w->drop(w->result, w->arg);
        cio__free(w);
        return;
    }
    pw->completed = 1;
    cio__task *t = pw->task;
    if (t->run_state == CIO__TASK_SUSPENDED && t->wait == &pw->rec) cio__task_resume(t, 0);
}

/* Loop close: an item whose call is still suspended is freed by that
 * frame's unwind; an abandoned one is dropped here. */
static void work_discard(cio__xjob *x) {
    work *w = CIO__CONTAINER_OF(x, work, x);
    if (w->waiter) return;
    if (w->drop) w->drop(w->result, w->arg);
    cio__free(w);
}

static int cancel_work(cio__wait *rec, const char *msg) {
    (void)msg;
    pool_wait *pw = CIO__CONTAINER_OF(rec, pool_wait, rec);
    work *w = pw->item;
    if (!w || pw->completed) return 0;
    pool *p = pw->p;
    pthread_mutex_lock(&p->lock);
    int queued = w->state == W_QUEUED;
    if (queued) {
        cio__list_unlink(&w->link);
        p->queued--;
    }
    pthread_mutex_unlock(&p->lock);
    if (!queued && pw->finish) {
        /* fn works on the caller's memory: the call waits for its end and
         * returns its result; the cancellation is kept for later. */
        pw->cancelled = 1;
        return 1;
    }
    pw->item = NULL;
    if (queued) {
        w->loop->pool_pending--;
        if (w->drop) w->drop(NULL, w->arg);
        cio__free(w);
    } else {
        w->waiter = NULL;
    }
    cio__task_wake(pw->task, -ECANCELED);
    return 1;
}

/* The task is destroyed at loop close while waiting: the pool is stopped,
 * so nothing else refers to the item any more. */
static void unwind_work(cio__wait *rec) {
    pool_wait *pw = CIO__CONTAINER_OF(rec, pool_wait, rec);
    work *w = pw->item;
    if (!w) return;
    pw->item = NULL;
    if (w->drop) w->drop(w->ran ? w->result : NULL, w->arg);
    cio__free(w);
}

int cio__pool_run(void *(*fn)(void *), void *arg, int flags,
                  void (*drop)(void *result, void *arg), void **result) {
    int lookup = flags & CIO__POOL_LOOKUP;
    int rc;
    cio__task *t = NULL;
    pool *p = NULL;
    if ((rc = current_pool(&t, &p)) < 0) return rc;
    work *w = cio__calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    cio__xjob_init(&w->x, work_done, work_discard);
    w->fn = fn;
    w->arg = arg;
    w->drop = drop;
    w->lookup = lookup != 0;
    w->state = W_QUEUED;
    pool_wait pw = {.task = t, .p = p, .item = w, .finish = (flags & CIO__POOL_FINISH) != 0};
    pw.rec = (cio__wait){.cancel = cancel_work, .unwind = unwind_work,
                         .what = lookup ? "name lookup (thread pool)"
                                 : pw.finish ? "file (thread pool)" : "to_thread",
                         .deadline = INT64_MAX, .kind = CIO__WAIT_POOL, .object = w};
    w->waiter = &pw;

    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        cio__free(w);
        return -CIO_EPOOLSHUTDOWN;
    }
    cio__list_push_back(&p->queue, &w->link);
    p->queued++;
    w->loop = p->loop;
    p->loop->pool_pending++;
    if (p->queued > p->idle && p->workers < p->max_workers) {
        rc = start_worker(p);
        /* Without any worker nothing would ever run the item; with some,
         * it waits for one of them. */
        if (rc < 0 && p->workers == 0) {
            cio__list_unlink(&w->link);
            p->queued--;
            p->loop->pool_pending--;
            pthread_mutex_unlock(&p->lock);
            cio__free(w);
            return rc;
        }
    }
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);

    int status = cio__task_suspend(t, &pw.rec);
    if (pw.completed && pw.item) {
        int raised = w->raised;
        if (result && !raised) *result = w->result;
        cio__free(w);
        /* A cancellation that arrived with the completion is delivered at
         * the next suspension, as for I/O: the result is not lost. */
        if (status < 0 || pw.cancelled) cio__task_defer_cancel(t);
        return raised;
    }
    return status < 0 ? status : -ECANCELED;
}

int cio_to_thread(cio_coro_fn fn, void *arg, void **result) {
    if (!fn) return -EINVAL;
    return cio__pool_run(fn, arg, 0, NULL, result);
}

int cio_pool_set_max_workers(cio_loop *loop, size_t max_workers) {
    if (!loop || max_workers < 1 || max_workers > CIO_POOL_MAX_WORKERS) return -EINVAL;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    pool *p = NULL;
    rc = get_pool(loop, &p);
    if (rc < 0) return rc;
    pthread_mutex_lock(&p->lock);
    set_limits(p, max_workers);
    /* A higher bound: more items (and lookups) may run now, on workers
     * that idle and on new ones for what they cannot take. A start that
     * fails leaves the items to the workers there are. */
    size_t wanted = p->queued > p->idle ? p->queued - p->idle : 0;
    while (!p->stopping && wanted > 0 && p->workers < p->max_workers && start_worker(p) == 0)
        wanted--;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static int shutdown_until(double when) {
    int rc;
    cio__task *t = NULL;
    pool *p = NULL;
    if ((rc = current_pool(&t, &p)) < 0) return rc;
    cio_loop *loop = t->fut.loop;
    /* A shared future that is done (the workers that were running then
     * all left): a new shutdown waits on a new one. */
    if (p->shutdown_fut && cio_future_done(p->shutdown_fut)) {
        cio__future_unref(p->shutdown_fut);
        p->shutdown_fut = NULL;
    }
    if (!p->shutdown_fut) {
        rc = cio_future_new(loop, &p->shutdown_fut);
        if (rc < 0) return rc;
    }
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cond);
    size_t live = p->workers;
    cio__link gone;
    cio__list_init(&gone);
    if (live == 0) cio__list_splice_back(&gone, &p->threads);
    pthread_mutex_unlock(&p->lock);
    if (live == 0) {
        /* Every worker left already (or none ever started). */
        join_workers(&gone);
        return 0;
    }
    /* Each caller waits through its own shield: its cancellation or its
     * deadline ends its own wait, never the shared future that the other
     * callers wait on (asyncio: each shutdown_default_executor call
     * awaits its own future). */
    cio_future *mine;
    rc = cio_shield(p->shutdown_fut, &mine);
    if (rc < 0) return rc;
    rc = cio_await_until(mine, when, NULL);
    cio_future_unref(mine);
    return rc;
}

int cio_pool_shutdown(double timeout) {
    if (isnan(timeout)) return -EINVAL;
    if (isinf(timeout) && timeout > 0) return shutdown_until(CIO_NO_TIMEOUT);
    cio_loop *loop = cio_running_loop();
    return shutdown_until((loop ? cio_loop_time(loop) : 0) + timeout);
}

int cio_pool_shutdown_until(double when) {
    if (isnan(when)) return -EINVAL;
    return shutdown_until(when);
}

int cio__pool_get_stats(const cio_loop *loop, size_t *workers, size_t *queued, size_t *lookups) {
    if (!loop) return -EINVAL;
    pool *p = loop->pool;
    *workers = *queued = *lookups = 0;
    if (!p) return 0;
    pthread_mutex_lock(&p->lock);
    *workers = p->workers;
    *queued = p->queued;
    *lookups = p->lookups;
    pthread_mutex_unlock(&p->lock);
    return 0;
}
