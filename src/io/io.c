/*
 * Choosing and starting a loop's backend (io.h).
 *
 * "epoll" and "uring" (also "io_uring") are taken as asked: an io_uring
 * that cannot serve fails the loop's creation with the probe's error.
 * "auto" takes io_uring when the probe finds it usable, else epoll,
 * quietly; the reason is kept for cio_loop_backend_fallback_reason(). No
 * name at all is "auto" when CIO__DEFAULT_IS_AUTO says so, else epoll.
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

/* Whether a loop that names no backend gets "auto" (io_uring when usable).
 * Off in this version: the io_uring backend passes the whole suite, but it
 * has none of its fast paths yet (multishot receive, buffer rings), so
 * epoll stays the default until the echo benchmark says otherwise
 * (docs/design.md). */
#define CIO__DEFAULT_IS_AUTO 0

static void set_reason(cio__io *io, const char *why) {
    snprintf(io->fallback_reason, sizeof io->fallback_reason, "%s", why);
}

static int start(cio__io *io, const cio__backend *backend) {
    io->backend = backend;
    io->caps = 0;
    int rc = backend->init(io);
    if (rc < 0) io->backend = NULL;
    return rc;
}

int cio__io_init(cio__io *io, const char *name) {
    io->in_flight = 0;
    io->state = NULL;
    io->backend = NULL;
    io->caps = 0;
    memset(&io->counters, 0, sizeof io->counters);
    io->fallback_reason[0] = '\0';
    io->file_ops = 0;
    io->file_calls_ring = io->file_calls_pool = 0;
    cio__list_init(&io->file_calls_on_pool);
    bool unnamed = !name || !*name;
    bool is_auto = unnamed || strcmp(name, "auto") == 0;
    if (!is_auto && strcmp(name, "epoll") == 0) {
        set_reason(io, "epoll was asked for");
        return start(io, &cio__backend_epoll);
    }
    bool uring = !is_auto && (strcmp(name, "uring") == 0 || strcmp(name, "io_uring") == 0);
    if (!is_auto && !uring) return -ENOTSUP;
#if CIO__HAVE_URING
    if (uring || (is_auto && (!unnamed || CIO__DEFAULT_IS_AUTO))) {
        int rc = start(io, &cio__backend_uring);
        if (rc == 0 || uring) return rc;
        /* "auto": any failure of io_uring falls back to epoll; the reason
         * the probe gave is kept. */
        if (!io->fallback_reason[0]) snprintf(io->fallback_reason, sizeof io->fallback_reason,
                                              "io_uring: %s", strerror(-rc));
        return start(io, &cio__backend_epoll);
    }
    set_reason(io, "no backend named: epoll is the default in this version of cio "
                   "(CIO_BACKEND=auto or uring asks for io_uring)");
#else
    if (uring) {
        set_reason(io, "cio was built without io_uring (CIO_URING=OFF or no liburing)");
        return -ENOTSUP;
    }
    set_reason(io, "cio was built without io_uring (CIO_URING=OFF or no liburing)");
#endif
    return start(io, &cio__backend_epoll);
}

void cio__io_fini(cio__io *io) {
    if (io->backend) io->backend->fini(io);
    io->backend = NULL;
}

int cio__io_hold(cio__io *io, int fd) {
    if (fd < 0) return -EBADF;
    if (io->backend->hold) return io->backend->hold(io, fd);
    /* A backend that keeps no registration: holding is only a promise the
     * program makes, but a number that is not open is refused alike. */
    return cio__sys_fcntl(fd, F_GETFD, 0) < 0 ? -errno : 0;
}

int cio__io_pollable(cio__io *io, int fd) {
    return io->backend->pollable ? io->backend->pollable(io, fd) : 0;
}
