/*
 * Pipes (asyncio's connect_read_pipe and connect_write_pipe, and streams on
 * pipes): data and end of stream, flow control, a reader that goes away
 * (no SIGPIPE), the calls of the wrong direction, bad input, cancellation
 * without loss, and what loop close leaves behind.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

typedef struct record {
    char data[1 << 16];
    size_t len;
    int made, eofs, lost, paused, resumed;
    int error;
} record;

static void rec_made(cio_transport *t, void *ctx) {
    (void)t;
    ((record *)ctx)->made++;
}

static void rec_data(cio_transport *t, const void *data, size_t len, void *ctx) {
    (void)t;
    record *r = ctx;
    CHECK(r->len + len <= sizeof r->data);
    memcpy(r->data + r->len, data, len);
    r->len += len;
}

static int rec_eof(cio_transport *t, void *ctx) {
    (void)t;
    ((record *)ctx)->eofs++;
    return 1; /* asks to stay open: a read pipe closes all the same */
}

static void rec_lost(cio_transport *t, int error, void *ctx) {
    (void)t;
    record *r = ctx;
    r->lost++;
    r->error = error;
}

static void rec_pause(cio_transport *t, void *ctx) {
    (void)t;
    ((record *)ctx)->paused++;
}

static void rec_resume(cio_transport *t, void *ctx) {
    (void)t;
    ((record *)ctx)->resumed++;
}

static const cio_protocol rec_proto = {
    .connection_made = rec_made,
    .data_received = rec_data,
    .eof_received = rec_eof,
    .connection_lost = rec_lost,
    .pause_writing = rec_pause,
    .resume_writing = rec_resume,
};

static void *sleeper(void *arg) {
    double *secs = arg;
    CHECK_OK(cio_sleep(*secs));
    return NULL;
}

/* Runs the loop for secs seconds. */
static void run_for(cio_loop *loop, double secs) {
    CHECK_OK(test_run(loop, sleeper, &secs, NULL));
}

static int fd_is_open(int fd) {
    return fcntl(fd, F_GETFD) != -1;
}

static void *write_then_close(void *arg) {
    int fd = PTRI(arg);
    CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(write(fd, "hello ", 6), 6);
    CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(write(fd, "pipe", 4), 4);
    close(fd);
    return NULL;
}

TEST(read_pipe_delivers_data_then_end_of_stream_and_closes_its_descriptor) {
    cio_loop *loop = test_loop();
    int p[2];
    CHECK_OK(pipe(p));
    record r = {0};
    cio_transport *t;
    CHECK_OK(cio_connect_read_pipe(loop, &rec_proto, &r, p[0], &t));
    CHECK_EQ(r.made, 1);
    CHECK_EQ(cio_transport_is_reading(t), 1);
    CHECK_EQ(cio_transport_can_write_eof(t), 0);
    CHECK_OK(test_run(loop, write_then_close, IPTR(p[1]), NULL));
    run_for(loop, 0.05);
    CHECK_EQ(r.len, 10);
    CHECK(memcmp(r.data, "hello pipe", 10) == 0);
    CHECK_EQ(r.eofs, 1);
    CHECK_EQ(r.lost, 1);
    CHECK_EQ(r.error, 0);
    CHECK(!fd_is_open(p[0]));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

/* Reads fd (a pipe's read end, as a stream) to its end. */
typedef struct drain_arg {
    cio_loop *loop;
    int fd;
    void *data;
    ssize_t len;
} drain_arg;

static void *read_all(void *arg) {
    drain_arg *d = arg;
    cio_stream *s;
    CHECK_OK(cio_open_read_pipe(d->loop, d->fd, &s));
    d->len = cio_stream_read_to_eof(s, &d->data);
    CHECK_OK(cio_stream_free(s));
    return NULL;
}

TEST(write_pipe_buffers_pauses_and_write_eof_closes_after_the_flush) {
    cio_loop *loop = test_loop();
    int p[2];
    CHECK_OK(pipe(p));
    record r = {0};
    cio_transport *t;
    CHECK_OK(cio_connect_write_pipe(loop, &rec_proto, &r, p[1], &t));
    CHECK_EQ(r.made, 1);
    CHECK_EQ(cio_transport_is_reading(t), 0);
    CHECK_EQ(cio_transport_can_write_eof(t), 1);
    /* More than a pipe holds: the rest is buffered, over the high mark. */
    size_t n = 1 << 20;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (char)(i * 7);
    CHECK_OK(cio_transport_write(t, big, n));
    CHECK(cio_transport_get_write_buffer_size(t) > 0);
    CHECK_EQ(r.paused, 1);
    CHECK_EQ(cio_transport_is_closing(t), 0);
    CHECK_OK(cio_transport_write_eof(t));
    /* asyncio's write pipe is closing from its write_eof on, while the
     * buffer still drains; a second write_eof does nothing. */
    CHECK_EQ(cio_transport_is_closing(t), 1);
    CHECK_OK(cio_transport_write_eof(t));
    CHECK_ERR(cio_transport_write(t, "x", 1), -CIO_EINVALSTATE);
    drain_arg d = {loop, p[0], NULL, 0};
    CHECK_OK(test_run(loop, read_all, &d, NULL));
    CHECK_EQ(d.len, (ssize_t)n);
    CHECK(memcmp(d.data, big, n) == 0);
    CHECK_EQ(r.resumed, 1);
    CHECK_EQ(r.lost, 1);
    CHECK_EQ(r.error, 0);
    CHECK(!fd_is_open(p[1]));
    free(d.data);
    free(big);
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

TEST(write_after_write_eof_with_nothing_buffered_is_an_invalid_state) {
    /* On a pipe, write_eof with an empty buffer closes at once; until
     * connection_lost runs a write is still the program's mistake
     * (-CIO_EINVALSTATE, as after close), not a lost connection. */
    cio_loop *loop = test_loop();
    int p[2];
    CHECK_OK(pipe(p));
    record r = {0};
    cio_transport *t;
    CHECK_OK(cio_connect_write_pipe(loop, &rec_proto, &r, p[1], &t));
    CHECK_OK(cio_transport_write(t, "tail", 4));
    CHECK_EQ(cio_transport_get_write_buffer_size(t), 0);
    CHECK_OK(cio_transport_write_eof(t));
    CHECK_ERR(cio_transport_write(t, "more", 4), -CIO_EINVALSTATE);
    /* The end finished the pipe (its loss is reported next): writing it
     * again does nothing, as asyncio's (it was -EPIPE). */
    CHECK_OK(cio_transport_write_eof(t));
    CHECK_EQ(r.lost, 0);
    drain_arg d = {loop, p[0], NULL, 0};
    CHECK_OK(test_run(loop, read_all, &d, NULL));
    CHECK_EQ(d.len, 4);
    CHECK_EQ(r.lost, 1);
    free(d.data);
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

TEST(write_pipe_whose_reader_goes_away_is_lost_without_sigpipe) {
    /* SIGPIPE at its default action: a stray one would end this test. */
    signal(SIGPIPE, SIG_DFL);
    cio_loop *loop = test_loop();
    /* Nothing unsent: the reader's going away is a clean loss (asyncio). */
    int p[2];
    CHECK_OK(pipe(p));
    record r = {0};
    cio_transport *t;
    CHECK_OK(cio_connect_write_pipe(loop, &rec_proto, &r, p[1], &t));
    close(p[0]);
    run_for(loop, 0.02);
    CHECK_EQ(r.lost, 1);
    CHECK_EQ(r.error, 0);
    /* Writing into a pipe nobody reads: -EPIPE, and no signal. */
    int q[2];
    CHECK_OK(pipe(q));
    record r2 = {0};
    CHECK_OK(cio_connect_write_pipe(loop, &rec_proto, &r2, q[1], &t));
    close(q[0]);
    int rc = cio_transport_write(t, "data", 4);
    CHECK(rc == -EPIPE || rc == 0);
    run_for(loop, 0.02);
    CHECK_EQ(r2.lost, 1);
    CHECK_ERR(r2.error, -EPIPE);
    sigset_t pending;
    CHECK_OK(sigpending(&pending));
    CHECK_EQ(sigismember(&pending, SIGPIPE), 0);
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

static void *stream_writer_to_closed_pipe(void *arg) {
    cio_loop *loop = arg;
    int p[2];
    CHECK_OK(pipe(p));
    cio_stream *s;
    CHECK_OK(cio_open_write_pipe(loop, p[1], &s));
    close(p[0]);
    char buf[4096] = {0};
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        rc = cio_stream_write(s, buf, sizeof buf);
        if (rc == 0) rc = cio_stream_drain(s);
    }
    CHECK(rc == -EPIPE || rc == -ECONNRESET);
    CHECK_OK(cio_stream_free(s));
    return NULL;
}

TEST(stream_on_a_pipe_whose_reader_is_gone_reports_an_error_not_a_signal) {
    signal(SIGPIPE, SIG_DFL);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, stream_writer_to_closed_pipe, loop, NULL));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

static void *wrong_directions(void *arg) {
    cio_loop *loop = arg;
    int p[2];
    CHECK_OK(pipe(p));
    cio_stream *in, *out;
    CHECK_OK(cio_open_read_pipe(loop, p[0], &in));
    CHECK_OK(cio_open_write_pipe(loop, p[1], &out));
    char buf[8];
    CHECK_ERR(cio_stream_read(out, buf, sizeof buf), -ENOTSUP);
    CHECK_ERR(cio_stream_readline(out, buf, sizeof buf), -ENOTSUP);
    CHECK_ERR(cio_stream_write(in, "x", 1), -ENOTSUP);
    CHECK_ERR(cio_stream_write_eof(in), -ENOTSUP);
    CHECK_EQ(cio_stream_can_write_eof(in), 0);
    CHECK_EQ(cio_stream_can_write_eof(out), 1);
    cio_transport *rt = cio_stream_transport(in), *wt = cio_stream_transport(out);
    CHECK_ERR(cio_transport_write(rt, "x", 1), -ENOTSUP);
    CHECK_ERR(cio_transport_write_eof(rt), -ENOTSUP);
    CHECK_ERR(cio_transport_pause_reading(wt), -ENOTSUP);
    CHECK_ERR(cio_transport_resume_reading(wt), -ENOTSUP);
    /* A pipe has no addresses. */
    struct sockaddr_storage ss;
    unsigned int len = sizeof ss;
    CHECK_ERR(cio_stream_peername(in, (struct sockaddr *)&ss, &len), -ENOTSOCK);
    /* Data still flows the right way, through the streams. */
    CHECK_OK(cio_stream_write(out, "line\n", 5));
    CHECK_EQ(cio_stream_is_closing(out), 0);
    CHECK_OK(cio_stream_write_eof(out));
    /* A write pipe's end closes it (asyncio's StreamWriter.is_closing
     * follows its transport); writing the end again does nothing. */
    CHECK_EQ(cio_stream_is_closing(out), 1);
    CHECK_OK(cio_stream_write_eof(out));
    CHECK_EQ(cio_stream_readline(in, buf, sizeof buf), 5);
    CHECK(memcmp(buf, "line\n", 5) == 0);
    CHECK_EQ(cio_stream_read(in, buf, sizeof buf), 0);
    CHECK_OK(cio_stream_write_eof(out));
    CHECK_OK(cio_stream_free(in));
    CHECK_OK(cio_stream_free(out));
    return NULL;
}

TEST(calls_of_the_other_direction_are_not_supported) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, wrong_directions, loop, NULL));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

TEST(bad_input_is_refused_and_leaves_the_descriptor_to_the_caller) {
    cio_loop *loop = test_loop();
    record r = {0};
    cio_transport *t = (cio_transport *)&r;
    cio_stream *s = (cio_stream *)&r;
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_ERR(cio_connect_read_pipe(NULL, &rec_proto, &r, p[0], &t), -EINVAL);
    CHECK(t == NULL);
    CHECK_ERR(cio_connect_read_pipe(loop, NULL, &r, p[0], &t), -EINVAL);
    CHECK_ERR(cio_connect_read_pipe(loop, &rec_proto, &r, p[0], NULL), -EINVAL);
    CHECK_ERR(cio_connect_read_pipe(loop, &rec_proto, &r, -1, &t), -EBADF);
    cio_protocol no_data = {0};
    CHECK_ERR(cio_connect_read_pipe(loop, &no_data, &r, p[0], &t), -EINVAL);
    CHECK_ERR(cio_connect_write_pipe(loop, NULL, &r, p[1], &t), -EINVAL);
    CHECK_ERR(cio_open_read_pipe(NULL, p[0], &s), -EINVAL);
    CHECK(s == NULL);
    CHECK_ERR(cio_open_write_pipe(loop, -3, &s), -EBADF);
    CHECK_ERR(cio_open_write_pipe(loop, p[1], NULL), -EINVAL);
    /* A regular file is always ready: refused, and still open. */
    char path[] = "/tmp/cio-pipe-XXXXXX";
    int file = mkstemp(path);
    CHECK(file >= 0);
    unlink(path);
    CHECK_ERR(cio_connect_read_pipe(loop, &rec_proto, &r, file, &t), -EINVAL);
    CHECK_ERR(cio_open_read_pipe(loop, file, &s), -EINVAL);
    CHECK(fd_is_open(file));
    close(file);
    /* A device epoll cannot watch: -EPERM on both backends, still open. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK(null >= 0);
    CHECK_ERR(cio_connect_read_pipe(loop, &rec_proto, &r, null, &t), -EPERM);
    CHECK_ERR(cio_connect_write_pipe(loop, &rec_proto, &r, null, &t), -EPERM);
    CHECK_ERR(cio_open_read_pipe(loop, null, &s), -EPERM);
    CHECK(fd_is_open(null));
    close(null);
    /* A number that is not open. */
    CHECK_ERR(cio_connect_read_pipe(loop, &rec_proto, &r, file, &t), -EBADF);
    CHECK(fd_is_open(p[0]) && fd_is_open(p[1]));
    close(p[0]);
    close(p[1]);
    CHECK_EQ(r.made, 0);
    CHECK_OK(cio_loop_close(loop));
    CHECK_ERR(cio_connect_read_pipe(loop, &rec_proto, &r, 0, &t), -CIO_ELOOPCLOSED);
    cio_loop_free(loop);
}

typedef struct cancel_arg {
    cio_loop *loop;
    int rfd, wfd;
} cancel_arg;

static void *cancelled_read_loses_nothing(void *arg) {
    cancel_arg *c = arg;
    cio_stream *s;
    CHECK_OK(cio_open_read_pipe(c->loop, c->rfd, &s));
    char buf[16];
    cio_timeout scope;
    CHECK_OK(cio_timeout_enter(&scope, 0.02));
    int rc = (int)cio_stream_readexactly(s, buf, 8);
    CHECK_ERR(cio_timeout_exit(&scope, rc), -ETIMEDOUT);
    /* Half the bytes came before the timeout: they are still there. */
    CHECK_EQ(write(c->wfd, "5678", 4), 4);
    CHECK_EQ(cio_stream_readexactly(s, buf, 8), 8);
    CHECK(memcmp(buf, "12345678", 8) == 0);
    CHECK_OK(cio_stream_free(s));
    return NULL;
}

TEST(cancelled_read_on_a_pipe_stream_loses_no_byte) {
    cio_loop *loop = test_loop();
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_EQ(write(p[1], "1234", 4), 4);
    cancel_arg c = {loop, p[0], p[1]};
    CHECK_OK(test_run(loop, cancelled_read_loses_nothing, &c, NULL));
    close(p[1]);
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

TEST(loop_close_with_pipes_open_frees_them_and_closes_their_descriptors) {
    cio_loop *loop = test_loop();
    int p[2], q[2];
    CHECK_OK(pipe(p));
    CHECK_OK(pipe(q));
    record r = {0};
    cio_transport *t;
    cio_stream *s;
    CHECK_OK(cio_connect_read_pipe(loop, &rec_proto, &r, p[0], &t));
    CHECK_OK(cio_connect_write_pipe(loop, &rec_proto, &r, p[1], &t));
    char big[100000] = {0};
    CHECK_OK(cio_transport_write(t, big, sizeof big));
    CHECK_OK(cio_open_read_pipe(loop, q[0], &s));
    CHECK_OK(cio_loop_close(loop));
    CHECK(!fd_is_open(p[0]) && !fd_is_open(p[1]) && !fd_is_open(q[0]));
    /* The stream stays the program's until it frees it. */
    char buf[4];
    CHECK_ERR(cio_stream_read(s, buf, 4), -EPERM);
    CHECK_OK(cio_stream_free(s));
    close(q[1]);
    cio_loop_free(loop);
}
