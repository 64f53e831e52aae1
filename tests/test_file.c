/*
 * Files (cio_file_*): the calls and their results, errors, the loop running
 * meanwhile, cancellation (a call that runs is waited for and keeps its
 * result; a queued one never runs), and loop close with calls in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

static char path[64];

/* Runs fn(arg) as a task in a loop of its own, then closes and frees the
 * loop. */
static void run_in_a_new_loop(cio_coro_fn fn, void *arg) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, fn, arg, NULL));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

static void make_path(void) {
    snprintf(path, sizeof path, "/tmp/cio-file-%d", (int)getpid());
    unlink(path);
}

static void *write_and_read_back(void *arg) {
    (void)arg;
    int fd = cio_file_open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    size_t n = 1 << 20;
    char *data = malloc(n), *back = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (char)(i * 13 + 5);
    CHECK_EQ(cio_file_write(fd, data, n, 0), (ssize_t)n);
    CHECK_OK(cio_file_fsync(fd, 0));
    CHECK_OK(cio_file_fsync(fd, 1));
    struct statx stx;
    CHECK_OK(cio_file_statx(AT_FDCWD, path, 0, STATX_SIZE, &stx));
    CHECK_EQ(stx.stx_size, n);
    /* At an offset, then at the file position (which pread left at 0). */
    CHECK_EQ(cio_file_read(fd, back, 100, 4096), 100);
    CHECK(memcmp(back, data + 4096, 100) == 0);
    CHECK_EQ(cio_file_read(fd, back, n, -1), (ssize_t)n);
    CHECK(memcmp(back, data, n) == 0);
    CHECK_EQ(cio_file_read(fd, back, 10, -1), 0);
    CHECK_EQ(cio_file_read(fd, back, 0, 0), 0);
    /* Appending at the position. */
    CHECK_EQ(cio_file_write(fd, "tail", 4, -1), 4);
    CHECK_EQ(cio_file_read(fd, back, 8, (int64_t)n), 4);
    CHECK(memcmp(back, "tail", 4) == 0);
    CHECK_OK(cio_file_close(fd));
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
    fd = cio_file_openat(dir, path + 5, O_RDONLY, 0);
    CHECK(fd >= 0);
    CHECK_EQ(cio_file_read(fd, back, 4, 0), 4);
    CHECK(memcmp(back, data, 4) == 0);
    CHECK_OK(cio_file_close(fd));
    close(dir);
    free(data);
    free(back);
    return NULL;
}

TEST(write_fsync_statx_and_read_back) {
    make_path();
    run_in_a_new_loop(write_and_read_back, NULL);
    unlink(path);
}

static void *errors(void *arg) {
    (void)arg;
    char buf[4];
    CHECK_ERR(cio_file_open("/no/such/file", O_RDONLY, 0), -ENOENT);
    CHECK_ERR(cio_file_open("/tmp", O_WRONLY, 0), -EISDIR);
    CHECK_ERR(cio_file_open(NULL, O_RDONLY, 0), -EINVAL);
    CHECK_ERR(cio_file_openat(-5, "x", O_RDONLY, 0), -EBADF);
    CHECK_ERR(cio_file_read(-1, buf, 4, 0), -EBADF);
    CHECK_ERR(cio_file_read(0, NULL, 4, 0), -EINVAL);
    CHECK_ERR(cio_file_write(-1, buf, 4, 0), -EBADF);
    CHECK_ERR(cio_file_write(0, NULL, 4, 0), -EINVAL);
    CHECK_ERR(cio_file_fsync(-1, 0), -EBADF);
    struct statx stx;
    CHECK_ERR(cio_file_statx(AT_FDCWD, NULL, 0, STATX_SIZE, &stx), -EINVAL);
    CHECK_ERR(cio_file_statx(AT_FDCWD, "/tmp", 0, STATX_SIZE, NULL), -EINVAL);
    CHECK_ERR(cio_file_statx(AT_FDCWD, "/no/such", 0, STATX_SIZE, &stx), -ENOENT);
    /* A number that is not open. */
    int fd = open("/dev/null", O_RDONLY);
    close(fd);
    CHECK_ERR(cio_file_read(fd, buf, 4, 0), -EBADF);
    CHECK_ERR(cio_file_close(fd), -EBADF);
    return NULL;
}

/* A length the buffer cannot hold gets the system call's own answer on
 * both paths: SIZE_MAX is -EFAULT, and nothing past the buffer is read
 * into or written out. (io_uring cut the length to one transfer first, so
 * the kernel's range check passed, a read returned the file's 10 bytes
 * and a write copied 534 bytes of the stack into the file.) */
static void *lengths_past_the_buffer(void *arg) {
    (void)arg;
    int fd = cio_file_open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(cio_file_write(fd, "0123456789", 10, 0), 10);
    char buf[64];
    CHECK_ERR(cio_file_read(fd, buf, SIZE_MAX, 0), -EFAULT);
    CHECK_ERR(cio_file_write(fd, buf, SIZE_MAX, 0), -EFAULT);
    CHECK_ERR(cio_file_write(fd, buf, SIZE_MAX, -1), -EFAULT);
    struct stat sb;
    CHECK_OK(fstat(fd, &sb));
    CHECK_EQ(sb.st_size, 10);
    CHECK_OK(cio_file_close(fd));
    unlink(path);
    return NULL;
}

TEST(a_length_past_the_buffer_is_the_system_calls_efault_on_both_paths) {
    make_path();
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, lengths_past_the_buffer, NULL, NULL));
    cio_loop_free(loop);
}

TEST(bad_input_and_system_errors) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, errors, NULL, NULL));
    char buf[4];
    /* Outside a task: bad arguments first, then -EPERM. */
    CHECK_ERR(cio_file_read(-1, buf, 4, 0), -EBADF);
    CHECK_ERR(cio_file_read(0, buf, 4, 0), -EPERM);
    CHECK_ERR(cio_file_open("/tmp/x", O_RDONLY, 0), -EPERM);
    CHECK_ERR(cio_file_fsync(0, 0), -EPERM);
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

/* ---- cancellation -------------------------------------------------------- */

static char fifo[64];
static int fifo_fd;
static int read_result;
static int after_read;

/* Reads from the FIFO into a stack buffer: the worker blocks until data
 * comes. */
static void *read_fifo(void *arg) {
    (void)arg;
    char buf[16];
    memset(buf, 0, sizeof buf);
    read_result = (int)cio_file_read(fifo_fd, buf, sizeof buf, -1);
    if (read_result == 5) CHECK(memcmp(buf, "hello", 5) == 0);
    /* A cancellation that came while the read ran is delivered now. */
    after_read = cio_sleep(0);
    return NULL;
}

/* Waits until no item waits for a worker: the calls made so far are all
 * running (no timing guess, the machine may be slow). */
static void wait_taken(void) {
    cio__pool_stats st;
    for (;;) {
        CHECK_OK(cio__loop_get_pool_stats(cio_running_loop(), &st));
        if (st.queued == 0 && st.workers > 0) return;
        CHECK_OK(cio_sleep(0.001));
    }
}

static void *cancel_running(void *arg) {
    (void)arg;
    cio_task *t;
    CHECK_OK(cio_spawn(cio_running_loop(), read_fifo, NULL, &t));
    wait_taken(); /* the worker is in read(2), or about to be */
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    CHECK_OK(cio_sleep(0.05));
    /* Still waiting: the read runs, and its buffer is on t's stack. */
    CHECK_EQ(cio_future_done(t), 0);
    CHECK_EQ(write(fifo_fd, "hello", 5), 5);
    int rc = cio_await(t, NULL);
    CHECK_ERR(rc, -ECANCELED);
    CHECK_EQ(read_result, 5);
    CHECK_ERR(after_read, -ECANCELED);
    cio_future_unref(t);
    return NULL;
}

static void open_fifo(void) {
    snprintf(fifo, sizeof fifo, "/tmp/cio-fifo-%d", (int)getpid());
    unlink(fifo);
    CHECK_OK(mkfifo(fifo, 0600));
    /* Read and write: opening does not wait for a peer, and a read waits
     * for data. */
    fifo_fd = open(fifo, O_RDWR);
    CHECK(fifo_fd >= 0);
}

TEST(cancel_while_running_waits_for_the_call_and_keeps_its_result) {
    open_fifo();
    run_in_a_new_loop(cancel_running, NULL);
    close(fifo_fd);
    unlink(fifo);
}

static int queued_result;

static void *queued_write(void *arg) {
    int fd = PTRI(arg);
    queued_result = (int)cio_file_write(fd, "never", 5, 0);
    return NULL;
}

/* The queued write goes to a second FIFO: calls on a FIFO run on the
 * thread pool on every backend (on io_uring a write to a regular file
 * would not queue behind the worker at all). */
static void *cancel_queued(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_pool_set_max_workers(loop, 1));
    char other[sizeof fifo + 2];
    snprintf(other, sizeof other, "%s-w", fifo);
    unlink(other);
    CHECK_OK(mkfifo(other, 0600));
    int fd = open(other, O_RDWR | O_NONBLOCK);
    CHECK(fd >= 0);
    cio_task *reader, *writer;
    CHECK_OK(cio_spawn(loop, read_fifo, NULL, &reader));
    wait_taken(); /* the only worker is blocked in the FIFO read */
    CHECK_OK(cio_spawn(loop, queued_write, IPTR(fd), &writer));
    CHECK_OK(cio_sleep(0.02)); /* the writer queues its call (it cannot run) */
    CHECK_EQ(cio_task_cancel(writer, NULL), 1);
    CHECK_ERR(cio_await(writer, NULL), -ECANCELED);
    CHECK_ERR(queued_result, -ECANCELED);
    CHECK_EQ(write(fifo_fd, "hello", 5), 5);
    CHECK_OK(cio_await(reader, NULL));
    CHECK_EQ(read_result, 5);
    /* The write never ran: the FIFO is empty. */
    char buf[8];
    CHECK_ERR(read(fd, buf, sizeof buf), -1);
    CHECK_EQ(errno, EAGAIN);
    close(fd);
    unlink(other);
    cio_future_unref(reader);
    cio_future_unref(writer);
    return NULL;
}

TEST(cancel_while_queued_never_runs_the_call) {
    open_fifo();
    run_in_a_new_loop(cancel_queued, NULL);
    close(fifo_fd);
    unlink(fifo);
}

/* ---- the loop runs meanwhile, and closes with calls in flight ------------ */

static int ticks;
static int file_fd;

static void *ticker(void *arg) {
    (void)arg;
    for (;;) {
        if (cio_sleep(0.001) < 0) return NULL;
        ticks++;
    }
}

static void *reader_4k(void *arg) {
    char buf[4096];
    int64_t off = (int64_t)PTRI(arg) * 4096;
    CHECK_EQ(cio_file_read(file_fd, buf, sizeof buf, off), 4096);
    return NULL;
}

static void *blocked_fifo_read(void *arg) {
    (void)arg;
    char buf[16];
    cio_loop *loop = cio_running_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, ticker, NULL, &t));
    int before = ticks;
    /* A read that waits 0.1 s for data in its worker: the loop goes on. */
    cio_task *w;
    CHECK_OK(cio_spawn(loop, read_fifo, NULL, &w));
    CHECK_OK(cio_sleep(0.1));
    CHECK(ticks > before); /* its 1 ms sleeps ended before this 0.1 s one */
    CHECK_EQ(write(fifo_fd, "hello", 5), 5);
    CHECK_OK(cio_await(w, NULL));
    (void)buf;
    cio_task_cancel(t, NULL);
    cio_await(t, NULL);
    cio_future_unref(t);
    cio_future_unref(w);
    return NULL;
}

TEST(loop_runs_while_a_call_blocks_in_its_worker) {
    open_fifo();
    run_in_a_new_loop(blocked_fifo_read, NULL);
    close(fifo_fd);
    unlink(fifo);
}

static void stop_loop(cio_loop *loop, void *arg) {
    (void)arg;
    cio_loop_stop(loop);
}

TEST(loop_close_with_a_hundred_file_reads_in_flight) {
    make_path();
    file_fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    CHECK_OK(ftruncate(file_fd, 100 * 4096));
    cio_loop *loop = test_loop();
    for (int i = 0; i < 100; i++) {
        cio_task *t;
        CHECK_OK(cio_spawn(loop, reader_4k, IPTR(i), &t));
        cio_future_unref(t);
    }
    /* One iteration: every read starts (queued or running). */
    CHECK_OK(cio_call_soon(loop, stop_loop, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
    close(file_fd);
    unlink(path);
}

/* ---- which path a call takes: the ring on io_uring, the pool elsewhere -- */

static bool on_io_uring(void) {
    return strcmp(cio_loop_backend(cio_running_loop()), "io_uring") == 0;
}

static cio__file_stats file_stats(void) {
    cio__file_stats s = {0};
    CHECK_OK(cio__loop_get_file_stats(cio_running_loop(), &s));
    return s;
}

/* Every kind of call on a regular file: on io_uring each is answered by the
 * ring and none goes to the pool; on epoll all go to the pool. */
static void *every_call_on_its_path(void *arg) {
    (void)arg;
    cio__file_stats before = file_stats();
    write_and_read_back(NULL);
    cio__file_stats after = file_stats();
    /* open, write, 2 fsyncs, statx, 3 reads (a fourth, of length 0, never
     * leaves the call), write, read, close, openat, read, close: 14 calls.
     * Off the ring a close runs on the loop's thread, as cio_close, and is
     * counted on neither path. */
    uint64_t calls = 14, closes = 2;
    if (on_io_uring()) {
        uint32_t all = CIO__FILE_OP_BIT(CIO__OP_FILE_READ) | CIO__FILE_OP_BIT(CIO__OP_FILE_WRITE) |
                       CIO__FILE_OP_BIT(CIO__OP_FSYNC) | CIO__FILE_OP_BIT(CIO__OP_STATX) |
                       CIO__FILE_OP_BIT(CIO__OP_OPENAT) | CIO__FILE_OP_BIT(CIO__OP_FILE_CLOSE);
        CHECK_EQ(after.ring_ops, all);
        CHECK_EQ(after.ring_calls - before.ring_calls, calls);
        CHECK_EQ(after.pool_calls, before.pool_calls);
    } else {
        CHECK_EQ(after.ring_ops, 0);
        CHECK_EQ(after.ring_calls, 0);
        CHECK_EQ(after.pool_calls - before.pool_calls, calls - closes);
    }
    return NULL;
}

TEST(regular_file_calls_take_the_ring_on_io_uring_and_the_pool_on_epoll) {
    make_path();
    run_in_a_new_loop(every_call_on_its_path, NULL);
    unlink(path);
}

/* CIO_URING_DISABLE switches the ring off for all file calls ("files") or
 * one kind ("statx"): those calls take the pool, with the same answers, and
 * the others stay on the ring. It is also what a kernel without the opcode
 * gets (the probe leaves the kind out the same way). */
static void *switched_off(void *arg) {
    int which = PTRI(arg); /* 0: files, 1: statx */
    cio__file_stats before = file_stats();
    write_and_read_back(NULL);
    struct statx stx;
    CHECK_OK(cio_file_statx(AT_FDCWD, path, 0, STATX_SIZE, &stx));
    CHECK_EQ(stx.stx_size, (1 << 20) + 4);
    cio__file_stats after = file_stats();
    /* As above, and one statx more. */
    uint64_t calls = 15, closes = 2, statx_calls = 2;
    if (!on_io_uring()) {
        CHECK_EQ(after.pool_calls - before.pool_calls, calls - closes);
    } else if (which == 0) {
        CHECK_EQ(after.ring_ops, 0);
        CHECK_EQ(after.ring_calls, 0);
        CHECK_EQ(after.pool_calls - before.pool_calls, calls - closes);
    } else {
        CHECK_EQ(after.ring_ops & CIO__FILE_OP_BIT(CIO__OP_STATX), 0);
        CHECK(after.ring_ops & CIO__FILE_OP_BIT(CIO__OP_FILE_READ));
        CHECK_EQ(after.pool_calls - before.pool_calls, statx_calls);
        CHECK_EQ(after.ring_calls - before.ring_calls, calls - statx_calls);
    }
    return NULL;
}

TEST(file_calls_switched_off_take_the_pool_with_the_same_answers) {
    const char *masks[] = {"files", "statx"};
    for (int i = 0; i < 2; i++) {
        make_path();
        setenv("CIO_URING_DISABLE", masks[i], 1);
        cio_loop *loop = test_loop();
        CHECK_OK(test_run(loop, switched_off, IPTR(i), NULL));
        CHECK_OK(cio_loop_close(loop));
        cio_loop_free(loop);
        unsetenv("CIO_URING_DISABLE");
        unlink(path);
    }
}

/* A FIFO is not read on the ring (the kernel would park the read on a poll
 * where the pool blocks in it): on every backend its reads and writes run
 * on the pool, with the pool's answers (-EAGAIN for a non-blocking one). */
static void *fifo_on_the_pool(void *arg) {
    (void)arg;
    cio__file_stats before = file_stats();
    char buf[8];
    CHECK_EQ(cio_file_write(fifo_fd, "abc", 3, -1), 3);
    CHECK_EQ(cio_file_read(fifo_fd, buf, sizeof buf, -1), 3);
    CHECK(memcmp(buf, "abc", 3) == 0);
    int nb = open(fifo, O_RDWR | O_NONBLOCK);
    CHECK(nb >= 0);
    CHECK_ERR(cio_file_read(nb, buf, sizeof buf, -1), -EAGAIN);
    close(nb);
    cio__file_stats after = file_stats();
    CHECK_EQ(after.ring_calls, before.ring_calls);
    CHECK_EQ(after.pool_calls - before.pool_calls, 3);
    return NULL;
}

TEST(fifo_reads_and_writes_run_on_the_pool_on_every_backend) {
    open_fifo();
    run_in_a_new_loop(fifo_on_the_pool, NULL);
    close(fifo_fd);
    unlink(fifo);
}

/* Opening a FIFO waits for the other end, as open(2) does, on every
 * backend (io_uring's own first try of an open does not block, which for a
 * FIFO means O_NONBLOCK: a read end would open at once, a write end fail
 * with ENXIO; backend_uring.c sends such an open to an io-wq worker). */
static int fifo_open_result[2];

static void *open_end(void *arg) {
    int flags = PTRI(arg);
    int fd = cio_file_open(fifo, flags, 0);
    fifo_open_result[flags == O_WRONLY] = fd;
    return NULL;
}

static void *fifo_open_waits(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    int order[2] = {O_RDONLY, O_WRONLY};
    for (int i = 0; i < 2; i++) {
        int flags = order[i], other = order[1 - i];
        fifo_open_result[0] = fifo_open_result[1] = -1000;
        cio_task *t;
        CHECK_OK(cio_spawn(loop, open_end, IPTR(flags), &t));
        CHECK_OK(cio_sleep(0.05));
        /* No other end yet: the open still waits. */
        CHECK_EQ(cio_future_done(t), 0);
        /* A write end opens without blocking only once a reader waits
         * (ENXIO until the worker's open(2) got there). */
        int peer;
        while ((peer = open(fifo, other | O_NONBLOCK)) < 0 && errno == ENXIO)
            CHECK_OK(cio_sleep(0.001));
        CHECK(peer >= 0);
        CHECK_OK(cio_await(t, NULL));
        int fd = fifo_open_result[flags == O_WRONLY];
        CHECK(fd >= 0);
        /* The descriptor is in blocking mode, as asked. */
        CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
        CHECK_OK(cio_file_close(fd));
        close(peer);
        cio_future_unref(t);
    }
    return NULL;
}

TEST(opening_a_fifo_waits_for_the_other_end_on_every_backend) {
    snprintf(fifo, sizeof fifo, "/tmp/cio-fifo-%d", (int)getpid());
    unlink(fifo);
    CHECK_OK(mkfifo(fifo, 0600));
    run_in_a_new_loop(fifo_open_waits, NULL);
    unlink(fifo);
}

/* A peer already waiting in open(2) at the other end of a FIFO sees one
 * open, as with open(2): on io_uring the ring's first try opens at once
 * (the peer is there), and an end closed behind its back would tell the
 * peer the other side left (a reader reads end of file at once, a writer's
 * write fails with EPIPE) while the open waited again on the pool for a
 * peer that was gone. */
static _Atomic int peer_ready;
static ssize_t peer_result;
static char peer_buf[8];

static void *peer_reader(void *arg) {
    (void)arg;
    atomic_store(&peer_ready, 1);
    int fd = open(fifo, O_RDONLY);
    CHECK(fd >= 0);
    size_t got = 0;
    ssize_t n;
    while (got < 4 && (n = read(fd, peer_buf + got, 4 - got)) > 0) got += (size_t)n;
    peer_result = (ssize_t)got;
    close(fd);
    return NULL;
}

static void *peer_writer(void *arg) {
    (void)arg;
    atomic_store(&peer_ready, 1);
    int fd = open(fifo, O_WRONLY);
    CHECK(fd >= 0);
    peer_result = write(fd, "data", 4);
    if (peer_result < 0) peer_result = -errno;
    close(fd);
    return NULL;
}

static void *open_against_a_waiting_peer(void *arg) {
    int flags = PTRI(arg);
    /* The peer is in open(2) by the time the loop has slept a while. */
    while (!atomic_load(&peer_ready)) CHECK_OK(cio_sleep(0.001));
    CHECK_OK(cio_sleep(0.05));
    int fd = cio_file_open(fifo, flags, 0);
    CHECK(fd >= 0);
    if (flags == O_WRONLY) {
        CHECK_EQ(cio_file_write(fd, "data", 4, -1), 4);
    } else {
        char buf[4];
        size_t got = 0;
        ssize_t n;
        while (got < 4 && (n = cio_file_read(fd, buf + got, 4 - got, -1)) > 0) got += (size_t)n;
        CHECK_EQ(got, 4);
        CHECK(memcmp(buf, "data", 4) == 0);
    }
    CHECK_OK(cio_file_close(fd));
    return NULL;
}

TEST(a_peer_waiting_in_open_at_the_other_end_of_a_fifo_sees_one_open) {
    signal(SIGPIPE, SIG_IGN); /* a broken pipe is a failed check, not a death */
    snprintf(fifo, sizeof fifo, "/tmp/cio-fifo-%d", (int)getpid());
    for (int writer = 0; writer < 2; writer++) {
        unlink(fifo);
        CHECK_OK(mkfifo(fifo, 0600));
        atomic_store(&peer_ready, 0);
        peer_result = -1000;
        memset(peer_buf, 0, sizeof peer_buf);
        pthread_t peer;
        CHECK_OK(pthread_create(&peer, NULL, writer ? peer_writer : peer_reader, NULL));
        cio_loop *loop = test_loop();
        CHECK_OK(test_run(loop, open_against_a_waiting_peer, IPTR(writer ? O_RDONLY : O_WRONLY),
                          NULL));
        CHECK_OK(cio_loop_close(loop));
        cio_loop_free(loop);
        pthread_join(peer, NULL);
        CHECK_EQ(peer_result, 4);
        if (!writer) CHECK(memcmp(peer_buf, "data", 4) == 0);
    }
    unlink(fifo);
}

/* Loop close while an open waits for a FIFO's writer. On the pool, close
 * waits for the worker, as for cio_to_thread, and closes what it opened
 * for the task that never resumes; on io_uring the open waits in the
 * kernel, and close cancels it there. Either way nothing stays open. */
static void *open_and_hold(void *arg) {
    (void)arg;
    int fd = cio_file_open(fifo, O_RDONLY, 0);
    FAIL("the open returned %d, but the loop closed under it", fd);
    return NULL;
}

static _Atomic int loop_closed;

/* A write end opens without blocking once a reader waits: the worker's
 * open(2). On io_uring the kernel's open was cancelled by the close
 * instead, and no reader ever comes. */
static void *writer_after_a_while(void *arg) {
    (void)arg;
    usleep(200 * 1000);
    int fd;
    while ((fd = open(fifo, O_WRONLY | O_NONBLOCK)) < 0 && errno == ENXIO && !atomic_load(&loop_closed))
        usleep(1000);
    if (fd >= 0) close(fd);
    return NULL;
}

static void *sleep_a_while(void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(0.1));
    return NULL;
}

TEST(loop_close_while_an_open_waits_closes_what_was_opened) {
    snprintf(fifo, sizeof fifo, "/tmp/cio-fifo-%d", (int)getpid());
    unlink(fifo);
    CHECK_OK(mkfifo(fifo, 0600));
    int fds = test_open_fds();
    cio_loop *loop = test_loop();
    CHECK_OK(cio_spawn(loop, open_and_hold, NULL, NULL));
    cio_task *sleeper;
    CHECK_OK(cio_spawn(loop, sleep_a_while, NULL, &sleeper));
    CHECK_OK(cio_run_until_complete(loop, sleeper, NULL));
    cio_future_unref(sleeper);
    pthread_t writer;
    atomic_store(&loop_closed, 0);
    CHECK_OK(pthread_create(&writer, NULL, writer_after_a_while, NULL));
    CHECK_OK(cio_loop_close(loop));
    atomic_store(&loop_closed, 1);
    cio_loop_free(loop);
    pthread_join(writer, NULL);
    CHECK_EQ(test_open_fds(), fds);
    unlink(fifo);
}

/* As openat(2) and statx(2), an absolute path ignores the directory. */
static void *absolute_paths(void *arg) {
    (void)arg;
    int fd = cio_file_openat(-1, "/dev/null", O_RDONLY, 0);
    CHECK(fd >= 0);
    CHECK_OK(cio_file_close(fd));
    struct statx stx;
    CHECK_OK(cio_file_statx(-7, "/dev/null", 0, STATX_TYPE, &stx));
    CHECK_ERR(cio_file_openat(-1, "dev/null", O_RDONLY, 0), -EBADF);
    CHECK_ERR(cio_file_statx(-1, "", AT_EMPTY_PATH, STATX_TYPE, &stx), -EBADF);
    return NULL;
}

TEST(an_absolute_path_ignores_a_negative_dirfd_as_openat_does) {
    run_in_a_new_loop(absolute_paths, NULL);
}

/* ---- cancelling reads into stack buffers, on the ring ------------------- */

enum { RACE_READS = 3000, RACE_LEN = 16384 };
static int race_fd;
static int race_cancelled, race_completed;

/* Covers the stack below this frame with a pattern, lets the loop turn
 * and checks the pattern: a late write of the kernel into a buffer of a
 * read that returned would show. */
__attribute__((noinline)) static void scribble_stack(void) {
    volatile unsigned char area[2 * RACE_LEN];
    for (size_t i = 0; i < sizeof area; i++) area[i] = (unsigned char)(i * 7 + 1);
    for (int i = 0; i < 2; i++) CHECK_OK(cio_sleep(0));
    for (size_t i = 0; i < sizeof area; i++)
        if (area[i] != (unsigned char)(i * 7 + 1)) FAIL("byte %zu of the stack was overwritten", i);
}

__attribute__((noinline)) static void read_on_stack(int round) {
    char buf[RACE_LEN];
    int64_t off = (int64_t)(round % 64) * RACE_LEN;
    ssize_t n = cio_file_read(race_fd, buf, sizeof buf, off);
    if (n == -ECANCELED) {
        race_cancelled++;
    } else {
        /* The read finished before the cancel reached it: all of it, and
         * the right bytes; the cancellation is delivered next. */
        CHECK_EQ(n, RACE_LEN);
        CHECK_EQ((unsigned char)buf[0], (unsigned char)(round % 64));
        CHECK_EQ((unsigned char)buf[RACE_LEN - 1], (unsigned char)(round % 64));
        race_completed++;
        CHECK_ERR(cio_sleep(0), -ECANCELED);
    }
}

static void *race_reader(void *arg) {
    read_on_stack(PTRI(arg));
    CHECK_EQ(cio_task_uncancel(cio_current_task()), 0);
    scribble_stack();
    return IPTR(1);
}

static void *read_cancel_race(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio__file_stats before = file_stats();
    cio_task_options big = {.stack_size = 1024 * 1024};
    for (int round = 0; round < RACE_READS; round++) {
        /* Now and then the file leaves the page cache, so that reads wait
         * for the disk in the kernel when their cancel comes. */
        if (round % 64 == 0) posix_fadvise(race_fd, 0, 0, POSIX_FADV_DONTNEED);
        cio_task *t;
        CHECK_OK(cio_spawn_with(loop, race_reader, IPTR(round), &big, &t));
        /* Cancel before the read started, right after its SQE was made
         * (not yet submitted), or an iteration later. */
        for (int i = 0; i < round % 3; i++) CHECK_OK(cio_sleep(0));
        cio_task_cancel(t, NULL);
        void *res = NULL;
        int rc = cio_await(t, &res);
        CHECK(rc == -ECANCELED || (rc == 0 && res == IPTR(1)));
        cio_future_unref(t);
    }
    cio__file_stats after = file_stats();
    if (on_io_uring()) CHECK_INT(after.ring_calls - before.ring_calls, >, 0);
    CHECK_EQ(loop_stats(loop).io_in_flight, 0);
    printf("reads cancelled: %d, finished before the cancel: %d\n", race_cancelled, race_completed);
    return NULL;
}

TEST(cancelled_reads_into_stack_buffers_are_never_written_later) {
    make_path();
    race_fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    CHECK(race_fd >= 0);
    char block[RACE_LEN];
    for (int i = 0; i < 64; i++) {
        memset(block, i, sizeof block);
        CHECK_EQ(pwrite(race_fd, block, sizeof block, (off_t)i * RACE_LEN), RACE_LEN);
    }
    CHECK_OK(fsync(race_fd));
    run_in_a_new_loop(read_cancel_race, NULL);
    close(race_fd);
    unlink(path);
}

static void *reader_or_closed(void *arg) {
    char buf[4096];
    ssize_t n = cio_file_read(file_fd, buf, sizeof buf, (int64_t)PTRI(arg) * 4096);
    CHECK(n == 4096 || n == -EBADF);
    return NULL;
}

/* cio_file_close: the descriptor is closed and forgotten, and the number is
 * reused safely. On the ring a read of it in flight at the close ends first
 * (its result, or -EBADF), never on a later file that reuses the number; on
 * the pool the close cannot reach a worker inside pread(2) (the header says
 * so), so there the reads are awaited before the close. */
static void *close_then_reuse(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    int fd = cio_file_open(path, O_RDONLY, 0);
    CHECK(fd >= 0);
    file_fd = fd;
    cio_task *readers[8];
    for (int i = 0; i < 8; i++) CHECK_OK(cio_spawn(loop, reader_or_closed, IPTR(i), &readers[i]));
    CHECK_OK(cio_sleep(0)); /* the reads are made */
    if (!(file_stats().ring_ops & CIO__FILE_OP_BIT(CIO__OP_FILE_READ)))
        for (int i = 0; i < 8; i++) cio_await(readers[i], NULL);
    CHECK_OK(cio_file_close(fd));
    CHECK_ERR(fcntl(fd, F_GETFD), -1);
    CHECK_EQ(errno, EBADF);
    for (int i = 0; i < 8; i++) {
        cio_await(readers[i], NULL);
        cio_future_unref(readers[i]);
    }
    CHECK_EQ(loop_stats(loop).io_in_flight, 0);
    int again = cio_file_open(path, O_RDONLY, 0);
    CHECK_EQ(again, fd);
    char buf[4];
    CHECK_EQ(cio_file_read(again, buf, 4, 0), 4);
    CHECK_OK(cio_file_close(again));
    return NULL;
}

TEST(file_close_closes_and_the_number_is_reused_safely) {
    make_path();
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    CHECK_OK(ftruncate(fd, 8 * 4096));
    close(fd);
    run_in_a_new_loop(close_then_reuse, NULL);
    unlink(path);
}

/* An open that waits in the kernel is cancelled there: O_CREAT makes the
 * kernel run it in an io-wq worker, where opening a FIFO waits for a
 * writer. On io_uring the cancel interrupts it and the call returns
 * -ECANCELED, having opened nothing; on the pool the call waits for its
 * worker (the cancel cannot reach a thread in open(2)) and returns the
 * descriptor, the cancellation coming at the task's next suspension. */
static int open_wait_result;
static int open_wait_after;

static void *open_fifo_waiting(void *arg) {
    (void)arg;
    open_wait_result = cio_file_open(fifo, O_RDONLY | O_CREAT, 0600);
    open_wait_after = cio_sleep(0);
    return NULL;
}

static void *cancel_open_in_kernel(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    int fds = test_open_fds();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, open_fifo_waiting, NULL, &t));
    CHECK_OK(cio_sleep(0.05));
    /* On the pool: until a worker took the call (it is in open(2), or
     * about to be). */
    if (!on_io_uring()) wait_taken();
    CHECK_EQ(cio_future_done(t), 0);
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    if (on_io_uring()) {
        CHECK_ERR(cio_await(t, NULL), -ECANCELED);
        CHECK_ERR(open_wait_result, -ECANCELED);
        CHECK_EQ(test_open_fds(), fds);
        CHECK_INT(file_stats().ring_calls, >=, 1);
    } else {
        CHECK_OK(cio_sleep(0.05));
        CHECK_EQ(cio_future_done(t), 0);
        /* The write end opens once the worker's open(2) waits as a reader
         * (ENXIO until then: the worker may be slow to get there). */
        int w;
        while ((w = open(fifo, O_WRONLY | O_NONBLOCK)) < 0 && errno == ENXIO)
            CHECK_OK(cio_sleep(0.001));
        CHECK(w >= 0);
        CHECK_ERR(cio_await(t, NULL), -ECANCELED);
        CHECK(open_wait_result >= 0);
        CHECK_ERR(open_wait_after, -ECANCELED);
        close(open_wait_result);
        close(w);
    }
    CHECK_EQ(loop_stats(loop).io_in_flight, 0);
    cio_future_unref(t);
    return NULL;
}

TEST(an_open_waiting_in_the_kernel_is_cancelled_there) {
    snprintf(fifo, sizeof fifo, "/tmp/cio-fifo-%d", (int)getpid());
    unlink(fifo);
    CHECK_OK(mkfifo(fifo, 0600));
    run_in_a_new_loop(cancel_open_in_kernel, NULL);
    unlink(fifo);
}

/*
 * cio_file_close and a call on the thread pool. A pipe's read runs on the
 * pool on every backend and blocks in its worker until data comes, so the
 * close finds it running. The close must wait for it: once closed, the
 * number may be reused by the next open while the call still uses it.
 */
static int pool_pipe[2];
static int close_order;    /* bumped by each end: who came first */
static int read_done_at, close_done_at;
static ssize_t pipe_read_result;
static char pipe_read_buf[16];
static int close_result, close_after;

static void *read_pipe_on_pool(void *arg) {
    (void)arg;
    pipe_read_result = cio_file_read(pool_pipe[0], pipe_read_buf, sizeof pipe_read_buf, -1);
    read_done_at = ++close_order;
    return NULL;
}

static void *close_pipe_read_end(void *arg) {
    (void)arg;
    close_result = cio_file_close(pool_pipe[0]);
    close_done_at = ++close_order;
    /* A cancellation that came while the close waited is delivered now. */
    close_after = cio_sleep(0);
    return NULL;
}

static void start_pool_read(cio_task **reader) {
    close_order = read_done_at = close_done_at = 0;
    close_result = close_after = 1;
    CHECK_OK(pipe2(pool_pipe, O_CLOEXEC)); /* blocking: the worker waits in read(2) */
    CHECK_OK(cio_spawn(cio_running_loop(), read_pipe_on_pool, NULL, reader));
    wait_taken(); /* the worker is in read(2), or about to be */
}

static void finish_pool_read(cio_task *reader) {
    CHECK_EQ(write(pool_pipe[1], "hello", 5), 5);
    CHECK_OK(cio_await(reader, NULL));
    CHECK_EQ(pipe_read_result, 5);
    CHECK(memcmp(pipe_read_buf, "hello", 5) == 0);
    cio_future_unref(reader);
}

static void *close_waits_for_the_pool_call(void *arg) {
    (void)arg;
    cio_task *reader, *closer;
    start_pool_read(&reader);
    CHECK_OK(cio_spawn(cio_running_loop(), close_pipe_read_end, NULL, &closer));
    CHECK_OK(cio_sleep(0.05));
    CHECK_EQ(cio_future_done(closer), 0); /* waiting for the read */
    CHECK(fcntl(pool_pipe[0], F_GETFD) >= 0); /* and not closed yet */
    finish_pool_read(reader);
    CHECK_OK(cio_await(closer, NULL));
    CHECK_OK(close_result);
    CHECK_OK(close_after);
    CHECK_INT(read_done_at, <, close_done_at);
    CHECK_EQ(fcntl(pool_pipe[0], F_GETFD), -1); /* closed now */
    CHECK_EQ(errno, EBADF);
    cio_future_unref(closer);
    close(pool_pipe[1]);
    return NULL;
}

TEST(file_close_waits_for_a_call_on_the_pool_before_the_number_can_be_reused) {
    run_in_a_new_loop(close_waits_for_the_pool_call, NULL);
}

static void *cancelled_close_still_closes(void *arg) {
    (void)arg;
    cio_task *reader, *closer;
    start_pool_read(&reader);
    CHECK_OK(cio_spawn(cio_running_loop(), close_pipe_read_end, NULL, &closer));
    CHECK_OK(cio_sleep(0.02));
    CHECK_EQ(cio_task_cancel(closer, NULL), 1);
    CHECK_OK(cio_sleep(0.02));
    /* The close is never cancelled half-way: it still waits. */
    CHECK_EQ(cio_future_done(closer), 0);
    finish_pool_read(reader);
    CHECK_ERR(cio_await(closer, NULL), -ECANCELED);
    CHECK_OK(close_result);
    CHECK_ERR(close_after, -ECANCELED);
    CHECK_INT(read_done_at, <, close_done_at);
    CHECK_EQ(fcntl(pool_pipe[0], F_GETFD), -1);
    cio_future_unref(closer);
    close(pool_pipe[1]);
    return NULL;
}

TEST(file_close_cancelled_while_it_waits_still_closes_then_reports_the_cancel) {
    run_in_a_new_loop(cancelled_close_still_closes, NULL);
}

static void *second_close_is_ebadf(void *arg) {
    (void)arg;
    cio_task *reader, *closer;
    start_pool_read(&reader);
    CHECK_OK(cio_spawn(cio_running_loop(), close_pipe_read_end, NULL, &closer));
    CHECK_OK(cio_sleep(0.02));
    CHECK_EQ(cio_future_done(closer), 0);
    /* The descriptor is being closed by another task. */
    CHECK_ERR(cio_file_close(pool_pipe[0]), -EBADF);
    finish_pool_read(reader);
    CHECK_OK(cio_await(closer, NULL));
    CHECK_OK(close_result);
    CHECK_EQ(fcntl(pool_pipe[0], F_GETFD), -1);
    cio_future_unref(closer);
    close(pool_pipe[1]);
    return NULL;
}

TEST(a_second_close_of_a_descriptor_being_closed_is_ebadf) {
    run_in_a_new_loop(second_close_is_ebadf, NULL);
}

/* Loop close while a close waits for a pool call: both tasks end with the
 * loop (the worker's call is waited for), and nothing is left behind. */
static void *close_left_waiting(void *arg) {
    cio_task **out = arg;
    cio_task *reader;
    start_pool_read(&reader);
    CHECK_OK(cio_spawn(cio_running_loop(), close_pipe_read_end, NULL, &out[0]));
    CHECK_OK(cio_sleep(0.02));
    CHECK_EQ(cio_future_done(out[0]), 0);
    out[1] = reader;
    return NULL;
}

TEST(loop_close_with_a_close_waiting_for_a_pool_call) {
    cio_loop *loop = test_loop();
    cio_task *tasks[2] = {NULL, NULL};
    CHECK_OK(test_run(loop, close_left_waiting, tasks, NULL));
    /* The worker's read must end for the pool to be joined at close. */
    CHECK_EQ(write(pool_pipe[1], "x", 1), 1);
    CHECK_OK(cio_loop_close(loop));
    CHECK_EQ(cio_future_cancelled(tasks[0]), 1);
    cio_future_unref(tasks[0]);
    cio_future_unref(tasks[1]);
    cio_loop_free(loop);
    close(pool_pipe[0]);
    close(pool_pipe[1]);
}
