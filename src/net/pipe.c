/*
 * Pipes: asyncio's loop.connect_read_pipe and connect_write_pipe.
 *
 * A pipe transport is a stream transport (transport.c) on one end of a
 * pipe, a character device or a socket, which it reads with read(2) or
 * writes with write(2). Like asyncio's, it takes the descriptor over: it
 * makes it non-blocking and closes it when the transport is done.
 *
 * A pipe write never raises SIGPIPE (cio__pipe_writev, src/base).
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "net.h"

int cio__pipe_adopt(cio_loop *loop, int fd) {
    if (!loop) return -EINVAL;
    if (fd < 0) return -EBADF;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    struct stat st;
    if (fstat(fd, &st) != 0) return -errno;
    /* asyncio: "Pipe transport is for pipes/sockets/character devices
     * only"; a regular file is always ready and epoll refuses it. */
    if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) && !S_ISCHR(st.st_mode)) return -EINVAL;
    /* A device with no poll method (/dev/null): -EPERM on every backend. */
    if ((rc = cio__io_pollable(&loop->io, fd)) < 0) return rc;
    int flags = cio__sys_fcntl(fd, F_GETFL, 0);
    if (flags < 0 || cio__sys_fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return -errno;
    return 0;
}

static int connect_pipe(cio_loop *loop, const cio_protocol *proto, void *ctx, int fd,
                        int writing, cio_transport **out) {
    if (out) *out = NULL;
    if (!proto || !out || (!writing && !proto->data_received)) return -EINVAL;
    int rc = cio__pipe_adopt(loop, fd);
    if (rc < 0) return rc;
    cio_transport *t;
    if ((rc = cio__transport_new_pipe(loop, fd, writing, proto, ctx, &t)) < 0) return rc;
    *out = t;
    cio__transport_start(t);
    return 0;
}

int cio_connect_read_pipe(cio_loop *loop, const cio_protocol *proto, void *ctx, int fd,
                          cio_transport **out) {
    return connect_pipe(loop, proto, ctx, fd, 0, out);
}

int cio_connect_write_pipe(cio_loop *loop, const cio_protocol *proto, void *ctx, int fd,
                           cio_transport **out) {
    return connect_pipe(loop, proto, ctx, fd, 1, out);
}
