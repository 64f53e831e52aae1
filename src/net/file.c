/*
 * Files: open, read, write, fsync, statx and close from a task, without
 * blocking the loop (asyncio has none; aiofiles-style calls are what its
 * users reach for).
 *
 * A regular file is always "ready" to readiness APIs, so epoll cannot help:
 * each call runs its system call on the loop's thread pool. The call's
 * arguments and buffer live on the calling task's stack, so a cancellation
 * never abandons a call that is running: the task waits for the system
 * call to end and gets its real result (bytes read are never lost), and
 * the cancellation comes at its next suspension, as for socket I/O. A call
 * still queued when it is cancelled never runs.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net.h"

enum file_call { F_OPEN, F_READ, F_WRITE, F_FSYNC, F_FDATASYNC, F_STATX };

typedef struct file_req {
    enum file_call call;
    int fd;
    int flags;
    unsigned int mode;
    const char *path;
    void *buf;
    size_t len;
    int64_t offset;
    struct statx *stx;
    ssize_t result;
} file_req;

static ssize_t sys_result(ssize_t rc) {
    return rc < 0 ? -errno : rc;
}

/* In a worker thread. */
static void *run(void *arg) {
    file_req *r = arg;
    switch (r->call) {
    case F_OPEN:
        r->result = sys_result(openat(r->fd, r->path, r->flags | O_CLOEXEC, (mode_t)r->mode));
        break;
    case F_READ:
        r->result = sys_result(r->offset < 0 ? read(r->fd, r->buf, r->len)
                                             : pread(r->fd, r->buf, r->len, (off_t)r->offset));
        break;
    case F_WRITE:
        r->result = sys_result(r->offset < 0 ? write(r->fd, r->buf, r->len)
                                             : pwrite(r->fd, r->buf, r->len, (off_t)r->offset));
        break;
    case F_FSYNC:
        r->result = sys_result(fsync(r->fd));
        break;
    case F_FDATASYNC:
        r->result = sys_result(fdatasync(r->fd));
        break;
    case F_STATX:
        r->result = sys_result(statx(r->fd, r->path, r->flags, r->mode, r->stx));
        break;
    }
    return NULL;
}

static ssize_t submit(file_req *r) {
    int rc = cio__pool_run(run, r, CIO__POOL_FINISH, NULL, NULL);
    return rc < 0 ? rc : r->result;
}

/* Bad arguments first, then -EPERM outside a task (convention 2). */
static int check_task(void) {
    return cio_current_task() ? 0 : -EPERM;
}

int cio_file_open(const char *path, int flags, unsigned int mode) {
    return cio_file_openat(AT_FDCWD, path, flags, mode);
}

int cio_file_openat(int dirfd, const char *path, int flags, unsigned int mode) {
    if (!path) return -EINVAL;
    if (dirfd < 0 && dirfd != AT_FDCWD) return -EBADF;
    int rc = check_task();
    if (rc < 0) return rc;
    file_req r = {.call = F_OPEN, .fd = dirfd, .path = path, .flags = flags, .mode = mode};
    return (int)submit(&r);
}

ssize_t cio_file_read(int fd, void *buf, size_t len, int64_t offset) {
    if (!buf && len) return -EINVAL;
    int64_t none;
    int rc = cio__io_call_check(fd, CIO_NO_TIMEOUT, &none);
    if (rc < 0) return rc;
    if (len == 0) return 0;
    file_req r = {.call = F_READ, .fd = fd, .buf = buf, .len = len, .offset = offset};
    return submit(&r);
}

ssize_t cio_file_write(int fd, const void *buf, size_t len, int64_t offset) {
    if (!buf && len) return -EINVAL;
    int64_t none;
    int rc = cio__io_call_check(fd, CIO_NO_TIMEOUT, &none);
    if (rc < 0) return rc;
    if (len == 0) return 0;
    file_req r = {.call = F_WRITE, .fd = fd, .buf = (void *)buf, .len = len, .offset = offset};
    return submit(&r);
}

int cio_file_fsync(int fd, int datasync) {
    int64_t none;
    int rc = cio__io_call_check(fd, CIO_NO_TIMEOUT, &none);
    if (rc < 0) return rc;
    file_req r = {.call = datasync ? F_FDATASYNC : F_FSYNC, .fd = fd};
    return (int)submit(&r);
}

int cio_file_statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *out) {
    if (!path || !out) return -EINVAL;
    if (dirfd < 0 && dirfd != AT_FDCWD) return -EBADF;
    int rc = check_task();
    if (rc < 0) return rc;
    file_req r = {.call = F_STATX, .fd = dirfd, .path = path, .flags = flags, .mode = mask,
                  .stx = out};
    return (int)submit(&r);
}

int cio_file_close(int fd) {
    /* close(2) of a regular file does not wait for the disk (fsync does):
     * it runs here, and every loop of this thread forgets the number. */
    return cio_close(fd);
}
