/*
 * The epoll backend: one wait per iteration with the next timer's deadline
 * as the timeout (nanosecond precision through epoll_pwait2 where the
 * kernel has it), one-shot descriptor watches re-armed per wait, and an
 * eventfd that other threads will use to wake the loop.
 *
 * An event's data holds the descriptor number plus one, so that zero can
 * mean the loop's own eventfd.
 */
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static int epoll_init(cio_loop *loop) {
    int ep = cio__sys_epoll_create();
    if (ep < 0) return -errno;
    int wake = cio__sys_eventfd();
    if (wake < 0) {
        int err = -errno;
        close(ep);
        return err;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, wake, &ev) != 0) {
        int err = -errno;
        close(wake);
        close(ep);
        return err;
    }
    loop->epoll_fd = ep;
    loop->wake_fd = wake;
    return 0;
}

static void epoll_fini(cio_loop *loop) {
    if (loop->wake_fd >= 0) close(loop->wake_fd);
    if (loop->epoll_fd >= 0) close(loop->epoll_fd);
    loop->wake_fd = loop->epoll_fd = -1;
}

static int epoll_poll(cio_loop *loop, int64_t timeout_ns) {
    struct epoll_event events[64];
    int n;
    if (timeout_ns < 0) {
        n = epoll_wait(loop->epoll_fd, events, 64, -1);
    } else {
        struct timespec ts = {.tv_sec = timeout_ns / 1000000000,
                              .tv_nsec = timeout_ns % 1000000000};
        n = epoll_pwait2(loop->epoll_fd, events, 64, &ts, NULL);
        if (n < 0 && errno == ENOSYS) {
            /* Older kernels: round up so the loop never wakes early. */
            int64_t ms = (timeout_ns + 999999) / 1000000;
            n = epoll_wait(loop->epoll_fd, events, 64, ms > 86400000 ? 86400000 : (int)ms);
        }
    }
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint64_t key = events[i].data.u64;
        uint32_t ev = events[i].events;
        if (key == 0) {
            uint64_t count;
            ssize_t ignored = read(loop->wake_fd, &count, sizeof count);
            (void)ignored;
            continue;
        }
        /* Errors and hang-ups wake both sides: the retried call reports them. */
        bool failed = (ev & (EPOLLERR | EPOLLHUP)) != 0;
        cio__io_ready(loop, (int)(key - 1), failed || (ev & (EPOLLIN | EPOLLRDHUP)),
                      failed || (ev & EPOLLOUT));
    }
    return n;
}

/*
 * One-shot watches: each blocking wait arms the descriptor for the
 * directions that have a waiter, and an event disarms it. Re-arming is a
 * modification of the existing registration; if there is none (first use,
 * or the descriptor was closed without cio_close and its number reused,
 * which silently removed it from the epoll set) it is added. So a stale
 * registration can never leave a task waiting forever.
 */
static int epoll_watch(cio_loop *loop, int fd, bool read, bool write) {
    struct epoll_event ev = {.events = EPOLLONESHOT | EPOLLRDHUP, .data.u64 = (uint64_t)fd + 1};
    if (read) ev.events |= EPOLLIN;
    if (write) ev.events |= EPOLLOUT;
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
    if (errno == ENOENT && epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
    /* Regular files cannot be polled: asyncio refuses them the same way. */
    return errno == EPERM ? -EINVAL : -errno;
}

static void epoll_unwatch(cio_loop *loop, int fd) {
    epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
}

const cio__backend_ops cio__backend_epoll = {
    .name = "epoll",
    .init = epoll_init,
    .fini = epoll_fini,
    .poll = epoll_poll,
    .watch = epoll_watch,
    .unwatch = epoll_unwatch,
};
