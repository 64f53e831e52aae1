/*
 * Waiting for file descriptors.
 *
 * The loop keeps one entry per descriptor number it has seen. Each
 * blocking wait arms a one-shot watch for the directions that have a
 * waiter (one epoll_ctl, as asyncio's add_reader costs); an event disarms
 * it, and if a waiter is left in the other direction it is armed again.
 * Re-arming per wait, rather than registering once for good, is what makes
 * a descriptor closed behind the loop's back harmless: its number can be
 * reused without a stale registration swallowing the new one's events.
 * Owned sockets (streams) can later keep a persistent registration.
 *
 * Each direction has at most one waiting task. The wait record lives on
 * that task's stack; cancelling the task clears the slot and wakes it with
 * -ECANCELED.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

typedef struct fd_wait {
    cio__wait rec;
    cio_loop *loop;
    int fd;
    bool write;
} fd_wait;

static int grow(cio_loop *loop, int fd) {
    if ((size_t)fd < loop->fd_cap) return 0;
    size_t cap = loop->fd_cap ? loop->fd_cap : 64;
    while (cap <= (size_t)fd) cap *= 2;
    cio__fd_entry *fds = cio__realloc(loop->fds, cap * sizeof *fds);
    if (!fds) return -ENOMEM;
    memset(fds + loop->fd_cap, 0, (cap - loop->fd_cap) * sizeof *fds);
    loop->fds = fds;
    loop->fd_cap = cap;
    return 0;
}

static int cancel_fd_wait(cio__wait *rec, const char *msg) {
    (void)msg;
    fd_wait *w = CIO__CONTAINER_OF(rec, fd_wait, rec);
    cio__fd_entry *e = &w->loop->fds[w->fd];
    cio__task **slot = w->write ? &e->writer : &e->reader;
    cio__task *t = *slot;
    *slot = NULL;
    cio__task_wake(t, -ECANCELED);
    return 1;
}

static void abandon_fd_wait(cio__wait *rec) {
    fd_wait *w = CIO__CONTAINER_OF(rec, fd_wait, rec);
    cio__fd_entry *e = &w->loop->fds[w->fd];
    if (w->write)
        e->writer = NULL;
    else
        e->reader = NULL;
}

int cio__wait_fd(int fd, bool write, int64_t deadline) {
    int rc;
    cio__task *t = cio__current(&rc);
    if (!t) return rc;
    if (fd < 0) return -EBADF;
    cio_loop *loop = t->fut.loop;
    rc = grow(loop, fd);
    if (rc < 0) return rc;
    cio__fd_entry *e = &loop->fds[fd];
    cio__task **slot = write ? &e->writer : &e->reader;
    if (*slot) return -EBUSY;
    rc = loop->backend->watch(loop, fd, !write || e->reader, write || e->writer);
    if (rc < 0) return rc;
    e->registered = 1;
    fd_wait w = {.loop = loop, .fd = fd, .write = write};
    w.rec.cancel = cancel_fd_wait;
    w.rec.abandon = abandon_fd_wait;
    w.rec.what = write ? "fd writable" : "fd readable";
    w.rec.deadline = deadline;
    *slot = t;
    loop->io_waiters++;
    rc = cio__task_suspend_until(t, &w.rec, deadline);
    loop->io_waiters--;
    /* Woken by readiness or by cio_close the slot is already clear; woken by
     * a pending cancellation it may not be. */
    if (*slot == t) *slot = NULL;
    return rc;
}

int cio_wait_readable(int fd) {
    return cio__wait_fd(fd, false, INT64_MAX);
}

int cio_wait_writable(int fd) {
    return cio__wait_fd(fd, true, INT64_MAX);
}

int cio_wait_readable_until(int fd, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : cio__wait_fd(fd, false, deadline);
}

int cio_wait_writable_until(int fd, double when) {
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    return rc < 0 ? rc : cio__wait_fd(fd, true, deadline);
}

void cio__io_ready(cio_loop *loop, int fd, bool readable, bool writable) {
    if ((size_t)fd >= loop->fd_cap) return;
    cio__fd_entry *e = &loop->fds[fd];
    if (readable && e->reader) {
        cio__task *t = e->reader;
        e->reader = NULL;
        cio__task_wake(t, 0);
    }
    if (writable && e->writer) {
        cio__task *t = e->writer;
        e->writer = NULL;
        cio__task_wake(t, 0);
    }
    /* The one-shot watch is spent: a waiter left in the other direction
     * needs it armed again. If that fails, the waiter learns it at once. */
    if (e->reader || e->writer) {
        int rc = loop->backend->watch(loop, fd, e->reader != NULL, e->writer != NULL);
        if (rc < 0) {
            cio__task *waiters[2] = {e->reader, e->writer};
            e->reader = e->writer = NULL;
            for (int i = 0; i < 2; i++)
                if (waiters[i]) cio__task_wake(waiters[i], rc);
        }
    }
}

int cio_close(int fd) {
    if (fd < 0) return -EBADF;
    cio_loop *loop = cio_running_loop();
    if (loop && (size_t)fd < loop->fd_cap) {
        cio__fd_entry *e = &loop->fds[fd];
        cio__task *waiters[2] = {e->reader, e->writer};
        e->reader = e->writer = NULL;
        for (int i = 0; i < 2; i++)
            if (waiters[i]) cio__task_wake(waiters[i], -EBADF);
        if (e->registered) loop->backend->unwatch(loop, fd);
        e->registered = 0;
    }
    return close(fd) == 0 ? 0 : -errno;
}

void cio__io_destroy(cio_loop *loop) {
    cio__free(loop->fds);
    loop->fds = NULL;
    loop->fd_cap = 0;
}
