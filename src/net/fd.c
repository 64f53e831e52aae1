/*
 * Descriptors: waiting for readiness (cio_wait_readable/_writable),
 * closing (cio_close), and the persistent watchers of asyncio's
 * loop.add_reader / add_writer.
 *
 * A watcher is a multishot readiness operation owned by a small record the
 * loop allocates. Each readiness the backend reports schedules the
 * watcher's callback as a job (once: a callback already queued is not
 * queued twice), so the callback runs among the other callbacks of the
 * iteration, level-triggered, for as long as the descriptor stays ready
 * and the watcher stays. Removing the watcher cancels its operation; the
 * record is freed at the operation's final completion, which on epoll is
 * immediate. loop->watchers maps each descriptor to its watcher per
 * direction.
 */
#include "net.h"

typedef struct watcher {
    cio__op op;
    cio__job job;           /* the callback, while queued */
    cio_loop *loop;
    cio_callback_fn fn;
    void *arg;
} watcher;

/* 0 for a reader, 1 for a writer: what its readiness operation polls. */
static int direction_of(const watcher *w) {
    return (w->op.u.poll.events & CIO__POLL_OUT) ? 1 : 0;
}

typedef struct watcher_slot {
    watcher *dir[2];        /* reader, writer */
} watcher_slot;

static int wait_fd(int fd, uint32_t events, double when) {
    int64_t deadline;
    int rc = cio__io_call_check(fd, when, &deadline);
    if (rc < 0) return rc;
    cio__op op;
    cio__op_init(&op, CIO__OP_POLL, fd);
    op.u.poll.events = events;
    ssize_t n = cio__op_await(&op, deadline);
    return n < 0 ? (int)n : 0;
}

int cio_wait_readable(int fd) {
    return wait_fd(fd, CIO__POLL_IN, CIO_NO_TIMEOUT);
}

int cio_wait_writable(int fd) {
    return wait_fd(fd, CIO__POLL_OUT, CIO_NO_TIMEOUT);
}

int cio_wait_readable_until(int fd, double when) {
    return wait_fd(fd, CIO__POLL_IN, when);
}

int cio_wait_writable_until(int fd, double when) {
    return wait_fd(fd, CIO__POLL_OUT, when);
}

/* ---- watchers ----------------------------------------------------------- */

static watcher_slot *slot_of(cio_loop *loop, int fd) {
    return cio__fd_table_find(&loop->watchers, fd);
}

static void run_watcher(cio__job *job) {
    watcher *w = CIO__CONTAINER_OF(job, watcher, job);
    w->fn(w->loop, w->arg);
}

static const char dropped_message[] =
    "a descriptor watcher (add_reader/add_writer) was dropped: it could not be re-armed";

static void report_dropped(cio_loop *loop, void *arg) {
    cio__report(loop, dropped_message, (int)(intptr_t)arg, NULL);
}

static void on_watcher_event(cio__op *op) {
    watcher *w = op->owner;
    if (op->state == CIO__OP_IN_FLIGHT) {
        /* A removed watcher (fn cleared) may still see a readiness before
         * its final completion on a backend that cancels later. */
        if (w->fn && !cio__link_linked(&w->job.link)) cio__ready_push(w->loop, &w->job);
        return;
    }
    /* The final completion: removed, closed, the loop closes, or the
     * backend could not keep watching (an epoll_ctl failed). Only the last
     * is news to the program, so only it is reported. */
    if (cio__link_linked(&w->job.link)) cio__list_unlink(&w->job.link);
    cio_loop *loop = w->loop;
    int lost = w->fn && op->result != -ECANCELED && op->result != -EBADF ? (int)op->result : 0;
    watcher_slot *s = slot_of(loop, op->fd);
    if (s && s->dir[direction_of(w)] == w) s->dir[direction_of(w)] = NULL;
    cio__free(w);
    /* The report runs the program's handler, which may well add the
     * watcher again: it must not run inside the backend, so it waits for
     * the next batch. Should even that fail, it goes out at once. */
    if (lost && cio_call_soon(loop, report_dropped, (void *)(intptr_t)lost, NULL) < 0)
        cio__report(loop, dropped_message, lost, NULL);
}

static int add_watcher(cio_loop *loop, int fd, int dir, cio_callback_fn fn, void *arg) {
    if (!loop || !fn) return -EINVAL;
    if (fd < 0) return -EBADF;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    /* -EPERM for what cannot be polled (a regular file), -EBADF for what
     * is not open, on every backend, before the table grows for fd. */
    if ((rc = cio__io_pollable(&loop->io, fd)) < 0) return rc;
    watcher_slot *s = cio__fd_table_get(&loop->watchers, fd, &rc);
    if (!s) return rc;
    watcher *old = s->dir[dir];
    if (old) {
        /* As asyncio: the new callback replaces the old one, and an old
         * call already scheduled does not happen. */
        if (cio__link_linked(&old->job.link)) cio__list_unlink(&old->job.link);
        old->fn = fn;
        old->arg = arg;
        return 0;
    }
    watcher *w = cio__malloc(sizeof *w);
    if (!w) return -ENOMEM;
    cio__op_init(&w->op, CIO__OP_POLL, fd);
    w->op.u.poll.events = dir ? CIO__POLL_OUT : CIO__POLL_IN;
    w->op.flags = CIO__OP_MULTISHOT;
    w->op.owner = w;
    w->op.done = on_watcher_event;
    w->job.run = run_watcher;
    cio__list_init(&w->job.link);
    w->loop = loop;
    w->fn = fn;
    w->arg = arg;
    cio__io_submit(&loop->io, &w->op);
    if (w->op.state == CIO__OP_DONE) {
        rc = (int)w->op.result;
        cio__free(w);
        return rc;
    }
    s->dir[dir] = w;
    return 0;
}

static int remove_watcher(cio_loop *loop, int fd, int dir) {
    if (!loop) return -EINVAL;
    if (loop->closed) return 0;
    watcher_slot *s = slot_of(loop, fd);
    watcher *w = s ? s->dir[dir] : NULL;
    if (!w) return 0;
    s->dir[dir] = NULL;
    /* The callback must not run any more, even if the backend's final
     * completion comes later. */
    if (cio__link_linked(&w->job.link)) cio__list_unlink(&w->job.link);
    w->fn = NULL;
    cio__io_cancel(&loop->io, &w->op, -ECANCELED);
    return 1;
}

int cio_add_reader(cio_loop *loop, int fd, cio_callback_fn fn, void *arg) {
    return add_watcher(loop, fd, 0, fn, arg);
}

int cio_add_writer(cio_loop *loop, int fd, cio_callback_fn fn, void *arg) {
    return add_watcher(loop, fd, 1, fn, arg);
}

int cio_remove_reader(cio_loop *loop, int fd) {
    return remove_watcher(loop, fd, 0);
}

int cio_remove_writer(cio_loop *loop, int fd) {
    return remove_watcher(loop, fd, 1);
}

/* ---- close -------------------------------------------------------------- */

/* Makes one loop forget fd: its operations end with -EBADF and its
 * watchers go. */
static void forget_fd(cio_loop *loop, void *arg) {
    int fd = *(int *)arg;
    cio__op op;
    cio__op_init(&op, CIO__OP_CLOSE, fd);
    op.u.close.keep_fd = 1;
    cio__io_submit(&loop->io, &op);
}

void cio__forget_fd(int fd) {
    cio__loop_each_local(forget_fd, &fd);
}

int cio_close(int fd) {
    if (fd < 0) return -EBADF;
    /* Every loop of this thread (running or not) forgets the descriptor
     * first, so no task stays waiting on a number about to be reused.
     * Loops of other threads, and loops inherited across a fork, are not
     * touched. */
    cio__forget_fd(fd);
    return cio__sys_close(fd) == 0 ? 0 : -errno;
}
