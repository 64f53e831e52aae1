/*
 * Files (cio_file_*): the calls and their results, errors, the loop running
 * meanwhile, cancellation (a call that runs is waited for and keeps its
 * result; a queued one never runs), and loop close with calls in flight.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

static char path[64];

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
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, write_and_read_back, NULL, NULL));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
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
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, cancel_running, NULL, NULL));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
    close(fifo_fd);
    unlink(fifo);
}

static int queued_result;

static void *queued_write(void *arg) {
    int fd = PTRI(arg);
    queued_result = (int)cio_file_write(fd, "never", 5, 0);
    return NULL;
}

static void *cancel_queued(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_pool_set_max_workers(loop, 1));
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
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
    /* The write never ran. */
    struct stat st;
    CHECK_OK(fstat(fd, &st));
    CHECK_EQ(st.st_size, 0);
    close(fd);
    cio_future_unref(reader);
    cio_future_unref(writer);
    return NULL;
}

TEST(cancel_while_queued_never_runs_the_call) {
    make_path();
    open_fifo();
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, cancel_queued, NULL, NULL));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
    close(fifo_fd);
    unlink(fifo);
    unlink(path);
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
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, blocked_fifo_read, NULL, NULL));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
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
