/*
 * Files: open, read, write, fsync, statx and close from a task, without
 * blocking the loop (asyncio has none; aiofiles-style calls are what its
 * users reach for).
 *
 * Two paths, one set of answers:
 *  - The ring. When the loop runs on io_uring and the probe found the
 *    call's opcode (cio__io.file_ops; CIO_URING_DISABLE=files or one name
 *    switches it off), the call is an operation of the backend, awaited
 *    like a recv (cio__op_await): one SQE, no thread, no wake-up. The
 *    backend takes reads and writes of regular files and block devices
 *    only; for anything else (a FIFO, a socket) it answers -EOPNOTSUPP at
 *    once, and so does the epoll backend for every file operation.
 *  - The thread pool, for everything else: each call runs its system call
 *    in a worker (a regular file is always "ready", so readiness cannot
 *    help).
 * A -EOPNOTSUPP or -EINVAL that comes back from the ring (a filesystem
 * that does not do it through io_uring) is run again on the pool, which
 * gives the system call's own answer; neither error means anything was
 * done.
 *
 * The call's arguments and buffer live on the calling task's stack, so a
 * cancellation never abandons a call the kernel or a worker is working on:
 * the task waits for it to end and gets its real result (bytes read are
 * never lost), and the cancellation comes at its next suspension, as for
 * socket I/O. A call cancelled before it started (queued for a worker, or
 * still waiting in the kernel) returns -ECANCELED and did nothing.
 *
 * The ring's open waits as open(2) does: one without O_NONBLOCK runs in
 * the kernel's io-wq worker, never as the kernel's non-blocking first try,
 * which for a FIFO or a device would be an open with O_NONBLOCK (see
 * backend_uring.c).
 *
 * An open holds what it opened until the program has the descriptor: if
 * the loop closes while the task waits, the descriptor a worker or the
 * kernel opened meanwhile is closed with it (a cio__holding), never left
 * open with nobody knowing its number.
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
    /* An open on the ring: the operation while it is in flight. */
    struct cio__op *ring_op;
    /* While the call runs on the pool: its place in the loop's list of
     * such calls (io.file_calls_on_pool), and the task closing fd that
     * waits for this call, if any. */
    cio__link on_pool;
    struct pool_close_wait *closer;
} file_req;

/* A cio_file_close waiting for a pool call on its descriptor. */
typedef struct pool_close_wait {
    cio__wait rec;
    cio__task *task;
} pool_close_wait;

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

/*
 * Closing a descriptor under a pool call. A worker in read(2) keeps the
 * file open in the kernel, so the close itself harms nothing; what harms
 * is the number: once closed it may be reused by the next open, and a call
 * still queued for a worker, or a later step of the same call, would then
 * read or write another file. So every pool call on a descriptor is listed
 * in its loop while it runs, and cio_file_close waits until no call on its
 * descriptor is listed. The list is short (one record per call on the
 * pool, at most the pool's queue), lives on the callers' stacks and is
 * only touched by the loop's thread.
 */
static ssize_t on_pool(cio_loop *loop, file_req *r) {
    loop->io.file_calls_pool++;
    /* An open or statx with AT_FDCWD names no descriptor. */
    bool listed = r->fd >= 0;
    if (listed) {
        r->closer = NULL;
        cio__list_push_back(&loop->io.file_calls_on_pool, &r->on_pool);
    }
    int rc = cio__pool_run(run, r, CIO__POOL_FINISH, NULL, NULL);
    if (listed) {
        cio__list_unlink(&r->on_pool);
        pool_close_wait *w = r->closer;
        if (w && w->task->run_state == CIO__TASK_SUSPENDED && w->task->wait == &w->rec)
            cio__task_wake(w->task, 0);
    }
    return rc < 0 ? rc : r->result;
}

/* The first pool call of loop on fd (with closer as its closer, unless
 * closer is NULL), or NULL. */
static file_req *pool_call_on(cio_loop *loop, int fd, const pool_close_wait *closer) {
    cio__link *list = &loop->io.file_calls_on_pool;
    for (cio__link *l = list->next; l != list; l = l->next) {
        file_req *r = CIO__CONTAINER_OF(l, file_req, on_pool);
        if (r->fd == fd && (!closer || r->closer == closer)) return r;
    }
    return NULL;
}

/* The closer's wait cannot be cancelled: the call it waits for runs in a
 * worker. The cancellation is kept and delivered after the close. */
static int refuse_cancel(cio__wait *wait, const char *msg) {
    (void)wait;
    (void)msg;
    return 0;
}

/* Waits until no pool call of loop is on fd. -EBADF if another task
 * already waits to close it (it is being closed). */
static int wait_for_pool_calls(cio_loop *loop, int fd) {
    int rc;
    cio__task *t = cio__current(&rc);
    if (!t) return rc;
    bool cancelled = false;
    for (;;) {
        file_req *r = pool_call_on(loop, fd, NULL);
        if (!r) break;
        if (r->closer) return -EBADF;
        pool_close_wait w = {.rec = {.cancel = refuse_cancel,
                                     .what = "file close (a call on the pool)",
                                     .deadline = INT64_MAX,
                                     .fd = fd,
                                     .kind = CIO__WAIT_POOL},
                             .task = t};
        r->closer = &w;
        if (cio__task_suspend(t, &w.rec) == -ECANCELED) cancelled = true;
        /* Woken or not (loop close unwinds the wait), this record is gone
         * once the loop goes on: no call may still point at it. */
        file_req *q = pool_call_on(loop, fd, &w);
        if (q) q->closer = NULL;
    }
    if (cancelled) cio__task_defer_cancel(t);
    return 0;
}

static uint8_t op_kind(enum file_call call) {
    switch (call) {
    case F_OPEN: return CIO__OP_OPENAT;
    case F_READ: return CIO__OP_FILE_READ;
    case F_WRITE: return CIO__OP_FILE_WRITE;
    case F_STATX: return CIO__OP_STATX;
    default: return CIO__OP_FSYNC;
    }
}

/* The largest transfer of one read(2) or write(2) (MAX_RW_COUNT): a longer
 * request is cut to it by the kernel on either path, so the ring's 32-bit
 * length loses nothing. */
#define MAX_TRANSFER 0x7ffff000u

/* The call on the ring when the backend runs it there, else on the pool. */
static ssize_t submit(file_req *r) {
    cio_loop *loop = cio_running_loop();
    uint8_t kind = op_kind(r->call);
    if (!(loop->io.file_ops & CIO__FILE_OP_BIT(kind))) return on_pool(loop, r);
    /* A length past one transfer goes to the pool, whose read(2) or
     * write(2) sees it whole: the kernel checks the whole range first
     * (SIZE_MAX with a small buffer is -EFAULT there), and a length cut
     * to MAX_TRANSFER here would pass that check and copy past the
     * caller's buffer. Such a call is the same on both paths then. */
    if ((r->call == F_READ || r->call == F_WRITE) && r->len > MAX_TRANSFER) return on_pool(loop, r);
    cio__op op;
    cio__op_init(&op, kind, r->fd);
    switch (r->call) {
    case F_OPEN:
    case F_STATX:
        op.u.path.path = r->path;
        op.u.path.flags = r->call == F_OPEN ? r->flags | O_CLOEXEC : r->flags;
        op.u.path.mode = r->mode;
        op.u.path.stx = r->stx;
        break;
    default:
        op.u.file.buf = r->buf;
        op.u.file.len = r->len < MAX_TRANSFER ? (unsigned)r->len : MAX_TRANSFER;
        op.u.file.datasync = r->call == F_FDATASYNC;
        op.u.file.offset = r->offset < 0 ? -1 : r->offset;
        break;
    }
    r->ring_op = &op;
    ssize_t res = cio__op_await(&op, INT64_MAX);
    r->ring_op = NULL;
    if (res == -EOPNOTSUPP || res == -EINVAL) return on_pool(loop, r);
    loop->io.file_calls_ring++;
    return res;
}

/* Loop close while an open waits (its task never resumes): closes what a
 * worker or the kernel opened for it. */
static void release_open(void *arg) {
    file_req *r = arg;
    if (r->ring_op && r->ring_op->state == CIO__OP_DONE && r->ring_op->result >= 0)
        close((int)r->ring_op->result);
    /* A call that ran on the pool has finished: close waited for it. */
    if (!r->ring_op && r->result >= 0) close((int)r->result);
}

/* Bad arguments first, then -EPERM outside a task (convention 2). */
static int check_task(void) {
    return cio_current_task() ? 0 : -EPERM;
}

int cio_file_open(const char *path, int flags, unsigned int mode) {
    return cio_file_openat(AT_FDCWD, path, flags, mode);
}

/* openat(2) and statx(2) ignore the directory for an absolute path, so a
 * negative one is refused only for a relative path; an absolute path goes
 * with AT_FDCWD, which names no descriptor. */
static int path_dirfd(int dirfd, const char *path) {
    if (path[0] == '/') return AT_FDCWD;
    return dirfd < 0 && dirfd != AT_FDCWD ? -EBADF : dirfd;
}

int cio_file_openat(int dirfd, const char *path, int flags, unsigned int mode) {
    if (!path) return -EINVAL;
    dirfd = path_dirfd(dirfd, path);
    if (dirfd == -EBADF) return -EBADF;
    int rc = check_task();
    if (rc < 0) return rc;
    file_req r = {.call = F_OPEN, .fd = dirfd, .path = path, .flags = flags, .mode = mode,
                  .result = -1};
    cio__holding hold;
    cio__loop_hold(cio_running_loop(), &hold, release_open, &r);
    ssize_t fd = submit(&r);
    cio__loop_unhold(&hold);
    return (int)fd;
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
    dirfd = path_dirfd(dirfd, path);
    if (dirfd == -EBADF) return -EBADF;
    int rc = check_task();
    if (rc < 0) return rc;
    file_req r = {.call = F_STATX, .fd = dirfd, .path = path, .flags = flags, .mode = mask,
                  .stx = out};
    return (int)submit(&r);
}

int cio_file_close(int fd) {
    if (fd < 0) return -EBADF;
    /* close(2) of a regular file does not wait for the disk (fsync does).
     * On the ring it is one more request of the batch, after every loop of
     * this thread forgot the number (as cio_close does); elsewhere it runs
     * here. */
    cio_loop *loop = cio_current_task() ? cio_running_loop() : NULL;
    if (loop) {
        int rc = wait_for_pool_calls(loop, fd);
        if (rc < 0) return rc;
    }
    if (!loop || !(loop->io.file_ops & CIO__FILE_OP_BIT(CIO__OP_FILE_CLOSE))) return cio_close(fd);
    cio__forget_fd(fd);
    cio__op op;
    cio__op_init(&op, CIO__OP_FILE_CLOSE, fd);
    ssize_t res = cio__op_await(&op, INT64_MAX);
    if (res == -EOPNOTSUPP || res == -EINVAL) return cio__sys_close(fd) == 0 ? 0 : -errno;
    loop->io.file_calls_ring++;
    return (int)res;
}
