/*
 * Pipes: asyncio's loop.connect_read_pipe and connect_write_pipe.
 *
 * A pipe transport is a stream transport (transport.c) on one end of a
 * pipe, a character device or a socket, which it reads with read(2) or
 * writes with write(2). Like asyncio's, it takes the descriptor over: it
 * makes it non-blocking and closes it when the transport is done.
 *
 * Writing to a pipe whose reader has gone raises SIGPIPE, whose default
 * action ends the process; send(2) has MSG_NOSIGNAL for sockets, write(2)
 * has nothing alike. So a pipe write runs with SIGPIPE blocked in the
 * calling thread, and a SIGPIPE it raised is taken off the thread's
 * pending set before the mask is restored: the write reports EPIPE and the
 * program's own SIGPIPE handling (if any) never sees cio's.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "net.h"

ssize_t cio__pipe_writev(int fd, const struct iovec *iov, int iovcnt) {
    sigset_t pipe_only, old, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    /* A SIGPIPE already pending is someone else's: it stays pending. */
    int was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    ssize_t n = iovcnt == 1 ? cio__sys_write(fd, iov[0].iov_base, iov[0].iov_len)
                            : cio__sys_writev(fd, iov, iovcnt);
    int saved = errno;
    if (n < 0 && saved == EPIPE && !was_pending) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return n;
}

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
