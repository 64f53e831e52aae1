/*
 * Streams (asyncio's open_connection, start_server, StreamReader and
 * StreamWriter): the reading calls and their outcomes, flow control both
 * ways, half-close, closing under a reader, cancellation without loss, and
 * what loop close leaves behind.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

static char port_str[16];

static void remember_port(cio_server *s) {
    int fd;
    CHECK_EQ(cio_server_sockets(s, &fd, 1), 1);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
    snprintf(port_str, sizeof port_str, "%d", ntohs(sa.sin_port));
}

static cio_server *serve(cio_loop *loop, cio_stream_handler_fn fn, void *arg) {
    cio_server *s;
    CHECK_OK(cio_start_server(loop, fn, arg, "127.0.0.1", "0", NULL, &s));
    remember_port(s);
    return s;
}

/* Handler: echoes lines until end of stream. */
static void *echo_lines(cio_stream *s, void *arg) {
    (void)arg;
    char line[256];
    ssize_t n;
    while ((n = cio_stream_readline(s, line, sizeof line)) > 0) {
        CHECK_OK(cio_stream_write(s, line, (size_t)n));
        CHECK_OK(cio_stream_drain(s));
    }
    CHECK_EQ(n, 0);
    CHECK_EQ(cio_stream_at_eof(s), 1);
    return NULL;
}

static void *echo_client(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    struct sockaddr_storage ss;
    unsigned int len = sizeof ss;
    CHECK_OK(cio_stream_peername(c, (struct sockaddr *)&ss, &len));
    len = sizeof ss;
    CHECK_OK(cio_stream_sockname(c, (struct sockaddr *)&ss, &len));
    CHECK(cio_stream_transport(c) != NULL);
    CHECK_OK(cio_stream_write(c, "one\ntwo\n", 8));
    CHECK_OK(cio_stream_drain(c));
    char buf[64];
    CHECK_EQ(cio_stream_readline(c, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "one\n", 4) == 0);
    CHECK_EQ(cio_stream_readuntil(c, "o\n", 2, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "two\n", 4) == 0);
    CHECK_EQ(cio_stream_can_write_eof(c), 1);
    CHECK_OK(cio_stream_write_eof(c));
    /* The server's handler returns at our end of stream and closes. */
    CHECK_EQ(cio_stream_read(c, buf, sizeof buf), 0);
    CHECK_EQ(cio_stream_at_eof(c), 1);
    CHECK_OK(cio_stream_close(c));
    CHECK_EQ(cio_stream_is_closing(c), 1);
    CHECK_OK(cio_stream_wait_closed(c));
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(echo_lines_through_start_server_and_open_connection) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, echo_lines, NULL);
    CHECK_OK(test_run(loop, echo_client, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static void *echo_unix_client(void *arg) {
    cio_stream *c;
    CHECK_OK(cio_open_unix_connection(arg, &c));
    CHECK_OK(cio_stream_write(c, "unix\n", 5));
    char buf[16];
    CHECK_EQ(cio_stream_readline(c, buf, sizeof buf), 5);
    CHECK(memcmp(buf, "unix\n", 5) == 0);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

/* asyncio's test_unhandled_exception: a handler that fails is reported
 * as "Unhandled exception in client_connected_cb", once, and its
 * connection is closed. */
static int handler_reports;
static char handler_report[128];
static int handler_report_error;

static void record_report(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)arg;
    handler_reports++;
    snprintf(handler_report, sizeof handler_report, "%s", ctx->message ? ctx->message : "");
    handler_report_error = ctx->error;
}

static void *failing_handler(cio_stream *s, void *arg) {
    (void)arg;
    char buf[16];
    CHECK_EQ(cio_stream_read(s, buf, sizeof buf), 4);
    return cio_raise(-CIO_EUSER(3));
}

static void *poke_failing_server(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    CHECK_OK(cio_stream_write(c, "boom", 4));
    char buf[16];
    CHECK_EQ(cio_stream_read(c, buf, sizeof buf), 0); /* the server closed it */
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(a_failing_handler_is_reported_as_asyncio_reports_it) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_loop_set_exception_handler(loop, record_report, NULL));
    cio_server *srv = serve(loop, failing_handler, NULL);
    CHECK_OK(test_run(loop, poke_failing_server, NULL, NULL));
    CHECK_OK(cio_server_free(srv));
    CHECK_OK(cio_loop_close(loop));
    CHECK_EQ(handler_reports, 1);
    CHECK_STR(handler_report, "Unhandled exception in client_connected_cb");
    CHECK_ERR(handler_report_error, -CIO_EUSER(3));
    cio_loop_free(loop);
}

/* asyncio 3.13's readuntil with a tuple of separators
 * (test_readuntil_multi_separator, _limit, _negative_offset), on a pipe. */
typedef struct multi_sep {
    cio_stream *s;
    int wr;
} multi_sep;

static void *feed_z_then_aaaa(void *arg) {
    multi_sep *m = arg;
    CHECK_OK(cio_sleep(0));
    CHECK_EQ(write(m->wr, "Z", 1), 1);
    CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(write(m->wr, "Aaaa", 4), 4);
    return NULL;
}

static void *multi_separator_reads(void *arg) {
    multi_sep *m = arg;
    char buf[64];
    const void *cr_lf[] = {"\r", "\n"};
    const size_t one_each[] = {1, 1};
    CHECK_EQ(write(m->wr, "line 1\nline 2\r", 14), 14);
    CHECK_EQ(cio_stream_readuntil_any(m->s, cr_lf, one_each, 2, buf, sizeof buf), 7);
    CHECK(memcmp(buf, "line 1\n", 7) == 0);
    CHECK_EQ(cio_stream_readuntil_any(m->s, cr_lf, one_each, 2, buf, sizeof buf), 7);
    CHECK(memcmp(buf, "line 2\r", 7) == 0);
    /* The first end in the stream wins, even for the longer separator. */
    const void *def_bcde[] = {"DEF", "BCDE"};
    const size_t def_bcde_len[] = {3, 4};
    CHECK_EQ(write(m->wr, "ABCDEFG", 7), 7);
    CHECK_EQ(cio_stream_readuntil_any(m->s, def_bcde, def_bcde_len, 2, buf, sizeof buf), 5);
    CHECK(memcmp(buf, "ABCDE", 5) == 0);
    CHECK_EQ(cio_stream_readexactly(m->s, buf, 2), 2);
    CHECK(memcmp(buf, "FG", 2) == 0);
    /* Enough for the short separator, too little for the long one: the
     * search waits for more without looking before the start. */
    const void *a_long[] = {"A", "long sep"};
    const size_t a_long_len[] = {1, 8};
    CHECK_EQ(write(m->wr, "data", 4), 4);
    cio_task *feeder;
    CHECK_OK(cio_spawn(cio_running_loop(), feed_z_then_aaaa, m, &feeder));
    CHECK_EQ(cio_stream_readuntil_any(m->s, a_long, a_long_len, 2, buf, sizeof buf), 6);
    CHECK(memcmp(buf, "dataZA", 6) == 0);
    CHECK_OK(cio_await(feeder, NULL));
    cio_future_unref(feeder);
    CHECK_EQ(cio_stream_readexactly(m->s, buf, 3), 3);
    CHECK(memcmp(buf, "aaa", 3) == 0);
    /* A separator found beyond the limit is an overrun; nothing is taken. */
    CHECK_OK(cio_stream_set_limit(m->s, 3));
    const void *a_ld[] = {"A", "ld"};
    const size_t a_ld_len[] = {1, 2};
    CHECK_EQ(write(m->wr, "hello\nworld", 11), 11);
    CHECK_ERR(cio_stream_readuntil_any(m->s, a_ld, a_ld_len, 2, buf, sizeof buf),
              -CIO_ELIMITOVERRUN);
    CHECK_OK(cio_stream_set_limit(m->s, 64));
    CHECK_EQ(cio_stream_readuntil_any(m->s, a_ld, a_ld_len, 2, buf, sizeof buf), 11);
    /* No separator, or an empty one: asyncio's ValueError. */
    const void *empty[] = {"x", ""};
    const size_t empty_len[] = {1, 0};
    CHECK_ERR(cio_stream_readuntil_any(m->s, a_ld, a_ld_len, 0, buf, sizeof buf), -EINVAL);
    CHECK_ERR(cio_stream_readuntil_any(m->s, empty, empty_len, 2, buf, sizeof buf), -EINVAL);
    CHECK_ERR(cio_stream_readuntil_any(NULL, a_ld, a_ld_len, 2, buf, sizeof buf), -EINVAL);
    return NULL;
}

TEST(readuntil_with_several_separators_as_asyncio_3_13) {
    cio_loop *loop = test_loop();
    int p[2];
    CHECK_OK(pipe(p));
    multi_sep m = {.wr = p[1]};
    CHECK_OK(cio_open_read_pipe(loop, p[0], &m.s));
    CHECK_OK(test_run(loop, multi_separator_reads, &m, NULL));
    CHECK_OK(cio_stream_free(m.s));
    close(p[1]);
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

/* A handler asleep outside any stream call when its peer resets and then
 * the loop closes: its task is destroyed there, and what its stream held
 * (the unread data) is freed all the same (LeakSanitizer and Valgrind
 * check; it leaked, found in a CI-like run). */
static void *read_some_then_sleep(cio_stream *s, void *arg) {
    (void)arg;
    char buf[4];
    CHECK_EQ(cio_stream_read(s, buf, sizeof buf), 4);
    (void)cio_sleep(30); /* the close ends it here */
    return NULL;
}

static void *write_then_reset(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    static char data[64 * 1024];
    CHECK_OK(cio_stream_write(c, data, sizeof data));
    CHECK_OK(cio_stream_drain(c));
    CHECK_OK(cio_sleep(0.05)); /* the handler read its 4 bytes and sleeps */
    /* A close with a zero linger time resets the connection. */
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    CHECK_OK(setsockopt(cio_transport_socket(cio_stream_transport(c)), SOL_SOCKET, SO_LINGER,
                        &reset, sizeof reset));
    CHECK_OK(cio_stream_free(c));
    CHECK_OK(cio_sleep(0.05)); /* the server's side is lost and released */
    return NULL;
}

TEST(loop_close_under_a_sleeping_handler_frees_its_stream) {
    cio_loop *loop = test_loop();
    cio_server *srv = serve(loop, read_some_then_sleep, NULL);
    CHECK_OK(test_run(loop, write_then_reset, NULL, NULL));
    CHECK_OK(cio_server_free(srv));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

TEST(echo_over_a_unix_stream_server) {
    cio_loop *loop = test_loop();
    char path[64];
    snprintf(path, sizeof path, "@cio-stream-test-%d", (int)getpid());
    cio_server *s;
    CHECK_OK(cio_start_unix_server(loop, echo_lines, NULL, path, NULL, &s));
    CHECK_OK(test_run(loop, echo_unix_client, path, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

/* Handler: writes its argument, then returns (the stream closes). */
static void *say_and_close(cio_stream *s, void *arg) {
    CHECK_OK(cio_stream_write(s, arg, strlen(arg)));
    return NULL;
}

static void *incomplete_reads_leave_the_data(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    char buf[64];
    CHECK_ERR(cio_stream_readexactly(c, buf, 5), -CIO_EINCOMPLETE);
    CHECK_ERR(cio_stream_readuntil(c, "!", 1, buf, sizeof buf), -CIO_EINCOMPLETE);
    CHECK_EQ(cio_stream_readexactly(c, buf, 3), 3);
    CHECK(memcmp(buf, "abc", 3) == 0);
    CHECK_EQ(cio_stream_read(c, buf, sizeof buf), 0);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(readexactly_and_readuntil_at_end_of_stream_lose_nothing) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, say_and_close, "abc");
    CHECK_OK(test_run(loop, incomplete_reads_leave_the_data, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static void *limit_overruns(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    CHECK_ERR(cio_stream_set_limit(c, 0), -EINVAL);
    CHECK_OK(cio_stream_set_limit(c, 8));
    char buf[64];
    /* readuntil past the limit: an overrun, and the data stays. */
    CHECK_ERR(cio_stream_readuntil(c, "\n", 1, buf, sizeof buf), -CIO_ELIMITOVERRUN);
    CHECK_EQ(cio_stream_readexactly(c, buf, 4), 4);
    CHECK(memcmp(buf, "0123", 4) == 0);
    /* readline past the limit: the line is discarded, as asyncio does. */
    CHECK_ERR(cio_stream_readline(c, buf, sizeof buf), -CIO_ELIMITOVERRUN);
    CHECK_EQ(cio_stream_readline(c, buf, sizeof buf), 3);
    CHECK(memcmp(buf, "ok\n", 3) == 0);
    /* A line longer than the caller's buffer: -ENOBUFS, nothing taken. */
    CHECK_ERR(cio_stream_readline(c, buf, 2), -ENOBUFS);
    /* The last line has no newline: returned as it is at the end. */
    CHECK_EQ(cio_stream_readline(c, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "tail", 4) == 0);
    CHECK_EQ(cio_stream_readline(c, buf, sizeof buf), 0);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(limit_overruns_as_asyncio) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, say_and_close, "0123456789abcdef\nok\ntail");
    CHECK_OK(test_run(loop, limit_overruns, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

/* Handler: sends arg (a size) bytes of a pattern, then closes. */
static void *send_pattern(cio_stream *s, void *arg) {
    size_t total = (size_t)(uintptr_t)arg;
    char chunk[4096];
    for (size_t sent = 0; sent < total; sent += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (char)((sent + i) % 251);
        CHECK_OK(cio_stream_write(s, chunk, sizeof chunk));
        CHECK_OK(cio_stream_drain(s));
    }
    return NULL;
}

static void *read_everything(void *arg) {
    size_t total = (size_t)(uintptr_t)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    void *data;
    CHECK_EQ(cio_stream_read_to_eof(c, &data), (ssize_t)total);
    for (size_t i = 0; i < total; i++) CHECK_EQ(((unsigned char *)data)[i], (i % 251));
    free(data);
    CHECK_EQ(cio_stream_read_to_eof(c, &data), 0);
    CHECK(data == NULL);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(read_to_eof_gets_every_byte) {
    cio_loop *loop = test_loop();
    size_t total = 2u << 20;
    cio_server *s = serve(loop, send_pattern, (void *)(uintptr_t)total);
    CHECK_OK(test_run(loop, read_everything, (void *)(uintptr_t)total, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

/* A slow reader: 1 KiB every 10 ms. A writer that writes and drains must
 * keep its buffer near the high-water mark, however much it wants to send. */
typedef struct slow {
    size_t received;
    size_t max_buffered;
    size_t written;
    int stop;
} slow;

static void *slow_reader(cio_stream *s, void *arg) {
    slow *st = arg;
    char buf[1024];
    while (!st->stop) {
        ssize_t n = cio_stream_read(s, buf, sizeof buf);
        if (n <= 0) break;
        st->received += (size_t)n;
        CHECK_OK(cio_sleep(0.01));
    }
    return NULL;
}

static void *fast_writer(void *arg) {
    slow *st = arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    static char chunk[65536];
    double end = cio_loop_time(cio_running_loop()) + 1.0;
    /* It would write 256 MiB; the drain holds it back. */
    while (st->written < (256u << 20) && cio_loop_time(cio_running_loop()) < end) {
        CHECK_OK(cio_stream_write(c, chunk, sizeof chunk));
        st->written += sizeof chunk;
        size_t b = cio_transport_get_write_buffer_size(cio_stream_transport(c));
        if (b > st->max_buffered) st->max_buffered = b;
        CHECK_OK(cio_stream_drain(c));
    }
    st->stop = 1;
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(a_writer_to_a_slow_reader_stays_within_the_high_water_mark) {
    cio_loop *loop = test_loop();
    slow st = {0};
    cio_server *s = serve(loop, slow_reader, &st);
    CHECK_OK(test_run(loop, fast_writer, &st, NULL));
    /* The buffer never held more than the high-water mark plus one write,
     * and far less than 256 MiB went anywhere. */
    CHECK(st.max_buffered <= 65536 + sizeof(char[65536]));
    CHECK(st.written < (64u << 20));
    CHECK(st.received > 0);
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static cio_stream *shared_stream;

static void *blocked_reader(void *arg) {
    (void)arg;
    char buf[16];
    return IPTR(cio_stream_read(shared_stream, buf, sizeof buf));
}

static void *hold_open(cio_stream *s, void *arg) {
    (void)arg;
    char buf[16];
    while (cio_stream_read(s, buf, sizeof buf) > 0) {
    }
    return NULL;
}

static void *close_under_a_reader(void *arg) {
    (void)arg;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &shared_stream));
    cio_task *r1, *r2;
    CHECK_OK(cio_spawn(cio_running_loop(), blocked_reader, NULL, &r1));
    CHECK_OK(cio_spawn(cio_running_loop(), blocked_reader, NULL, &r2));
    CHECK_OK(cio_sleep(0.01));
    /* One reader at a time, as asyncio. */
    void *second;
    CHECK_ERR(cio_await(r2, &second), 0);
    CHECK_ERR(PTRI(second), -EBUSY);
    CHECK_ERR(cio_stream_free(shared_stream), -EBUSY);
    CHECK_OK(cio_stream_close(shared_stream));
    void *first;
    CHECK_OK(cio_await(r1, &first));
    CHECK_ERR(PTRI(first), -CIO_ECLOSED);
    char buf[4];
    CHECK_ERR(cio_stream_read(shared_stream, buf, sizeof buf), -CIO_ECLOSED);
    CHECK_ERR(cio_stream_write(shared_stream, "x", 1), -CIO_ECLOSED);
    cio_future_unref(r1);
    cio_future_unref(r2);
    CHECK_OK(cio_stream_wait_closed(shared_stream));
    CHECK_OK(cio_stream_free(shared_stream));
    return NULL;
}

TEST(closing_a_stream_wakes_its_reader_with_a_clear_error) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, hold_open, NULL);
    CHECK_OK(test_run(loop, close_under_a_reader, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static void *send_late(cio_stream *s, void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(0.05));
    CHECK_OK(cio_stream_write(s, "late", 4));
    char buf[4];
    cio_stream_read(s, buf, sizeof buf);
    return NULL;
}

static void *cancelled_read_loses_nothing(void *arg) {
    (void)arg;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &shared_stream));
    cio_task *r;
    CHECK_OK(cio_spawn(cio_running_loop(), blocked_reader, NULL, &r));
    CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(cio_task_cancel(r, NULL), 1);
    CHECK_ERR(cio_await(r, NULL), -ECANCELED);
    cio_future_unref(r);
    char buf[8];
    CHECK_EQ(cio_stream_readexactly(shared_stream, buf, 4), 4);
    CHECK(memcmp(buf, "late", 4) == 0);
    CHECK_OK(cio_stream_free(shared_stream));
    return NULL;
}

TEST(a_cancelled_read_loses_no_byte) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, send_late, NULL);
    CHECK_OK(test_run(loop, cancelled_read_loses_nothing, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static void *reply_after_eof(cio_stream *s, void *arg) {
    (void)arg;
    void *data;
    ssize_t n = cio_stream_read_to_eof(s, &data);
    CHECK_EQ(n, 5);
    free(data);
    CHECK_OK(cio_stream_write(s, "reply", 5));
    return NULL;
}

static void *half_close_client(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    CHECK_OK(cio_stream_write(c, "hello", 5));
    CHECK_OK(cio_stream_write_eof(c));
    CHECK_ERR(cio_stream_write(c, "more", 4), -CIO_EINVALSTATE);
    char buf[16];
    CHECK_EQ(cio_stream_readexactly(c, buf, 5), 5);
    CHECK(memcmp(buf, "reply", 5) == 0);
    CHECK_EQ(cio_stream_read(c, buf, sizeof buf), 0);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(half_close_works_both_ways) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, reply_after_eof, NULL);
    CHECK_OK(test_run(loop, half_close_client, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static void *reset_connection(cio_stream *s, void *arg) {
    (void)arg;
    /* Unread data plus SO_LINGER 0: the close resets the connection. */
    char buf[1];
    CHECK_EQ(cio_stream_readexactly(s, buf, 1), 1);
    struct linger lg = {1, 0};
    int fd = cio_transport_socket(cio_stream_transport(s));
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    CHECK_OK(cio_sleep(0.02));
    CHECK_OK(cio_transport_abort(cio_stream_transport(s)));
    return NULL;
}

static void *reset_client(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    CHECK_OK(cio_stream_write(c, "xy", 2));
    char buf[4];
    ssize_t n = cio_stream_read(c, buf, sizeof buf);
    CHECK_ERR(n, -ECONNRESET);
    /* As asyncio: a reset is the reader's error, not an end of stream. */
    CHECK_EQ(cio_stream_at_eof(c), 0);
    CHECK_ERR(cio_stream_wait_closed(c), -ECONNRESET);
    int w = cio_stream_write(c, "z", 1);
    CHECK(w == -ECONNRESET || w == -EPIPE);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(a_peer_reset_gives_econnreset) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, reset_connection, NULL);
    CHECK_OK(test_run(loop, reset_client, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static void *flood(cio_stream *s, void *arg) {
    (void)arg;
    static char chunk[16384];
    for (int i = 0; i < 64; i++) {
        if (cio_stream_write(s, chunk, sizeof chunk) < 0) break;
        if (cio_stream_drain(s) < 0) break;
    }
    return NULL;
}

static void *reading_pauses_over_twice_the_limit(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    CHECK_OK(cio_stream_set_limit(c, 4096));
    CHECK_OK(cio_sleep(0.1));
    /* Nobody reads: the transport stops reading past 2 x 4096. */
    CHECK_EQ(cio_transport_is_reading(cio_stream_transport(c)), 0);
    char buf[16384];
    ssize_t n;
    size_t total = 0;
    /* Reading resumes it, and every byte arrives. */
    while ((n = cio_stream_read(c, buf, sizeof buf)) > 0) total += (size_t)n;
    CHECK_EQ(n, 0);
    CHECK_EQ(total, 64 * 16384);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(reading_pauses_while_over_twice_the_limit) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, flood, NULL);
    CHECK_OK(test_run(loop, reading_pauses_over_twice_the_limit, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static void *connect_errors(void *arg) {
    (void)arg;
    cio_stream *c = (cio_stream *)1;
    CHECK_ERR(cio_open_connection("127.0.0.1", port_str, &c), -ECONNREFUSED);
    CHECK(c == NULL);
    CHECK_ERR(cio_open_connection(NULL, port_str, &c), -EINVAL);
    /* A port above 65535 is refused (glibc would wrap it; asyncio raises
     * OverflowError). */
    CHECK_ERR(cio_open_connection("127.0.0.1", "99999", &c), -EINVAL);
    CHECK_ERR(cio_open_unix_connection("@cio-nobody-listens-here", &c), -ECONNREFUSED);
    return NULL;
}

TEST(connection_errors) {
    cio_loop *loop = test_loop();
    /* A port that was just free. */
    cio_server *s = serve(loop, hold_open, NULL);
    CHECK_OK(cio_server_free(s));
    CHECK_OK(test_run(loop, connect_errors, NULL, NULL));
    cio_stream *c;
    CHECK_ERR(cio_open_connection("127.0.0.1", "1", &c), -EPERM);
    cio_server *big;
    CHECK_ERR(cio_start_server(loop, hold_open, NULL, "127.0.0.1", "65536", NULL, &big), -EINVAL);
    cio_loop_free(loop);
}

static void *connect_and_leave(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    CHECK_OK(cio_stream_write(c, "partial", 7));
    CHECK_OK(cio_sleep(0.01));
    return c;
}

TEST(loop_close_with_handlers_waiting_leaves_nothing_behind) {
    /* The handler waits in a read when the loop closes: its stream and
     * transport are freed by the close (ASan and Valgrind check). */
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, hold_open, NULL);
    void *c;
    CHECK_OK(test_run(loop, connect_and_leave, NULL, &c));
    cio_loop_free(loop);
    CHECK_OK(cio_stream_free(c));
    CHECK_OK(cio_server_free(s));
}

/* ---- loop close under a task still connecting ----------------------------- */

static int connecting_done;

static void *connect_for_ever(void *arg) {
    (void)arg;
    cio_stream *c;
    (void)cio_open_connection("127.0.0.1", port_str, &c);
    connecting_done = 1; /* never: the loop closes first */
    return NULL;
}

static void *sleep_a_little(void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(0.1));
    return NULL;
}

TEST(loop_close_under_a_task_still_connecting_leaves_nothing_behind) {
    /* A listener whose accept queue is full drops further SYNs, so a
     * connect to it stays in progress (the kernel would retry for a
     * minute). */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_OK(bind(lfd, (struct sockaddr *)&sa, sizeof sa));
    CHECK_OK(listen(lfd, 0));
    socklen_t len = sizeof sa;
    CHECK_OK(getsockname(lfd, (struct sockaddr *)&sa, &len));
    snprintf(port_str, sizeof port_str, "%d", ntohs(sa.sin_port));
    int fillers[4];
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(fillers[i] >= 0);
        int rc = connect(fillers[i], (struct sockaddr *)&sa, sizeof sa);
        CHECK(rc == 0 || errno == EINPROGRESS);
    }
    int before = test_open_fds();
    cio_loop *loop = test_loop();
    cio_task *t;
    connecting_done = 0;
    CHECK_OK(cio_spawn(loop, connect_for_ever, NULL, &t));
    CHECK_OK(test_run(loop, sleep_a_little, NULL, NULL));
    CHECK_EQ(cio_future_done(t), 0);
    /* Close ends the task inside the connect: its socket is closed, and
     * the stream and the address list are freed (ASan and Valgrind
     * check those). */
    CHECK_OK(cio_loop_free(loop));
    CHECK_EQ(connecting_done, 0);
    CHECK_EQ(cio_future_cancelled(t), 1);
    cio_future_unref(t);
    CHECK_EQ(test_open_fds(), before);
    for (int i = 0; i < 4; i++) close(fillers[i]);
    close(lfd);
}

/* ---- a server connection's records live in its handler's frame ------------ */

static cio_task *handler_task;
static cio_stream *handler_stream;

static void *remember_and_hold(cio_stream *s, void *arg) {
    (void)arg;
    handler_task = cio_current_task();
    cio_future_ref(handler_task);
    handler_stream = s;
    char buf[16];
    while (cio_stream_read(s, buf, sizeof buf) > 0) {
    }
    return NULL;
}

static void *connect_idle_and_check(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    CHECK_OK(cio_stream_write(c, "x", 1));
    CHECK_OK(cio_sleep(0.02));
    CHECK(handler_task != NULL);
    /* The stream lies in the handler's stack, and an idle handler (here
     * waiting in a read, its records included) stays in one page. */
    cio__task_stack_info info;
    CHECK_OK(cio__task_get_stack(handler_task, &info));
    CHECK((char *)handler_stream > (char *)info.lo &&
          (char *)handler_stream < (char *)info.lo + info.size);
    ssize_t mark = cio_task_stack_high_water(handler_task);
    const char *backend = cio_loop_backend(cio_running_loop());
    fprintf(stderr, "idle handler's stack high-water mark on %s: %zd B\n", backend, mark);
    /* Not yet on io_uring: there the task reaches 4,328 B (a second page),
     * probably in the submission of the transport's watch, which runs on
     * the handler's stack (issue 8, left open). */
    if (strcmp(backend, "epoll") == 0) CHECK_INT(mark, <=, 4096);
    CHECK_OK(cio_stream_close(c));
    CHECK_OK(cio_stream_wait_closed(c));
    CHECK_OK(cio_stream_free(c));
    for (int i = 0; i < 100 && !cio_future_done(handler_task); i++) CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(cio_future_done(handler_task), 1);
    cio_future_unref(handler_task);
    handler_task = NULL;
    return NULL;
}

TEST(idle_handler_holds_its_records_in_one_stack_page) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, remember_and_hold, NULL);
    CHECK_OK(test_run(loop, connect_idle_and_check, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    CHECK_OK(cio_loop_free(loop));
}

#define FLOOD_BYTES (32u << 20)

/* Writes more than the socket takes to a peer that does not read, and
 * returns: the connection is flushed after it, in its task's frame. */
static void *flood_and_return(cio_stream *s, void *arg) {
    (void)arg;
    handler_task = cio_current_task();
    cio_future_ref(handler_task);
    char *big = calloc(1, FLOOD_BYTES);
    CHECK(big != NULL);
    CHECK_OK(cio_stream_write(s, big, FLOOD_BYTES));
    free(big);
    return NULL;
}

static void *cancel_a_flushing_handler(void *arg) {
    cio_server *server = arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    CHECK_OK(cio_sleep(0.05));
    CHECK(handler_task != NULL);
    /* Returned, but its connection is still being flushed. */
    CHECK_EQ(cio_future_done(handler_task), 0);
    CHECK_OK(cio_task_cancel(handler_task, NULL) >= 0 ? 0 : -1);
    for (int i = 0; i < 100 && !cio_future_done(handler_task); i++) CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(cio_future_done(handler_task), 1);
    cio_future_unref(handler_task);
    handler_task = NULL;
    /* Aborted, not flushed: the peer gets less than was written. */
    static char buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = cio_stream_read(c, buf, sizeof buf)) > 0) total += (size_t)n;
    CHECK(n == 0 || n == -ECONNRESET);
    CHECK_INT(total, <, FLOOD_BYTES);
    CHECK_OK(cio_stream_close(c));
    CHECK_OK(cio_stream_free(c));
    CHECK_OK(cio_server_close(server));
    CHECK_OK(cio_server_wait_closed(server));
    return NULL;
}

TEST(cancelling_a_handler_that_returned_aborts_its_flush) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, flood_and_return, NULL);
    CHECK_OK(test_run(loop, cancel_a_flushing_handler, s, NULL));
    CHECK_OK(cio_server_free(s));
    CHECK_OK(cio_loop_free(loop));
}

/* ---- asyncio's rules at the edges (found by hostile and asyncio-port probes) ---- */

static void *readexactly_over_twice_the_limit(void *arg) {
    size_t total = (size_t)(uintptr_t)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    CHECK_OK(cio_stream_set_limit(c, 1024));
    unsigned char *buf = malloc(total);
    CHECK(buf != NULL);
    /* Reading pauses past 2 x 1024 unread bytes; a reader that waits for
     * more resumes it (asyncio's _wait_for_data), or this never ends. */
    CHECK_EQ(cio_stream_readexactly(c, buf, total), (ssize_t)total);
    for (size_t i = 0; i < total; i++) CHECK_EQ(buf[i], (i % 251));
    free(buf);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(readexactly_of_more_than_twice_the_limit_completes) {
    cio_loop *loop = test_loop();
    size_t total = 50 * 4096;
    cio_server *s = serve(loop, send_pattern, (void *)(uintptr_t)total);
    CHECK_OK(test_run(loop, readexactly_over_twice_the_limit, (void *)(uintptr_t)total, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static void *limit_without_separator(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    CHECK_OK(cio_stream_set_limit(c, 8));
    char buf[64];
    /* Eight bytes and the newline: within a limit of 8 (asyncio compares
     * the part before the separator). */
    CHECK_EQ(cio_stream_readline(c, buf, sizeof buf), 9);
    CHECK(memcmp(buf, "01234567\n", 9) == 0);
    /* Nine bytes before the newline: over it, and discarded. */
    CHECK_ERR(cio_stream_readline(c, buf, sizeof buf), -CIO_ELIMITOVERRUN);
    /* A three-byte separator after two bytes, limit 2: found within. */
    CHECK_OK(cio_stream_set_limit(c, 2));
    CHECK_EQ(cio_stream_readuntil(c, "XYZ", 3, buf, sizeof buf), 5);
    CHECK(memcmp(buf, "abXYZ", 5) == 0);
    /* Three bytes before it: over, and nothing consumed. */
    CHECK_ERR(cio_stream_readuntil(c, "XYZ", 3, buf, sizeof buf), -CIO_ELIMITOVERRUN);
    CHECK_EQ(cio_stream_readexactly(c, buf, 6), 6);
    CHECK(memcmp(buf, "abcXYZ", 6) == 0);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(the_limit_does_not_count_the_separator) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, say_and_close, "01234567\n012345678\nabXYZabcXYZ");
    CHECK_OK(test_run(loop, limit_without_separator, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

/* Handler: "hi", then a moment later "\n" and the end. */
static void *say_hi_then_newline(cio_stream *s, void *arg) {
    (void)arg;
    CHECK_OK(cio_stream_write(s, "hi", 2));
    CHECK_OK(cio_stream_drain(s));
    CHECK_OK(cio_sleep(0.05));
    CHECK_OK(cio_stream_write(s, "\n", 1));
    CHECK_OK(cio_stream_drain(s));
    return NULL;
}

static void *huge_limit(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    /* A limit near SIZE_MAX must not wrap in the overrun and pause tests. */
    CHECK_OK(cio_stream_set_limit(c, SIZE_MAX));
    char buf[16];
    CHECK_EQ(cio_stream_readline(c, buf, sizeof buf), 3);
    CHECK(memcmp(buf, "hi\n", 3) == 0);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(a_limit_near_size_max_reads_lines) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, say_hi_then_newline, NULL);
    CHECK_OK(test_run(loop, huge_limit, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static int orphan_read_rc = 1, orphan_wait_rc = 1;

static void *orphan_reader(void *arg) {
    char buf[16];
    orphan_read_rc = (int)cio_stream_read(arg, buf, sizeof buf);
    return NULL;
}

static void *orphan_waiter(void *arg) {
    orphan_wait_rc = cio_stream_wait_closed(arg);
    return NULL;
}

/* Handler: leaves a reader and a wait_closed behind on its stream, then
 * returns (the stream dies with it). */
static void *leave_tasks_behind(cio_stream *s, void *arg) {
    cio_task **tasks = arg;
    CHECK_OK(cio_spawn(cio_running_loop(), orphan_reader, s, &tasks[0]));
    CHECK_OK(cio_spawn(cio_running_loop(), orphan_waiter, s, &tasks[1]));
    CHECK_OK(cio_sleep(0.02));
    return NULL;
}

static void *connect_and_wait_for_the_end(void *arg) {
    cio_task **tasks = arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    char buf[4];
    CHECK_EQ(cio_stream_read(c, buf, sizeof buf), 0);
    CHECK_OK(cio_await(tasks[0], NULL));
    CHECK_OK(cio_await(tasks[1], NULL));
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(tasks_left_waiting_on_a_handler_stream_are_woken_when_it_returns) {
    cio_loop *loop = test_loop();
    cio_task *tasks[2] = {NULL, NULL};
    cio_server *s = serve(loop, leave_tasks_behind, tasks);
    CHECK_OK(test_run(loop, connect_and_wait_for_the_end, tasks, NULL));
    CHECK_ERR(orphan_read_rc, -CIO_ECLOSED);
    CHECK_OK(orphan_wait_rc);
    cio_future_unref(tasks[0]);
    cio_future_unref(tasks[1]);
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static void *drain_after_close(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    CHECK_OK(cio_stream_close(c));
    /* As asyncio: drain on a closing stream lets connection_lost run and
     * reports the loss ("Connection lost"). */
    CHECK_ERR(cio_stream_drain(c), -ECONNRESET);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(drain_after_close_reports_the_lost_connection) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, hold_open, NULL);
    CHECK_OK(test_run(loop, drain_after_close, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

static void *name_checks(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &c));
    struct sockaddr_storage ss;
    unsigned int len = sizeof ss;
    CHECK_OK(cio_stream_close(c));
    CHECK_OK(cio_stream_wait_closed(c));
    /* Bad arguments are -EINVAL before the state is looked at. */
    CHECK_ERR(cio_stream_peername(c, NULL, &len), -EINVAL);
    CHECK_ERR(cio_stream_sockname(c, (struct sockaddr *)&ss, NULL), -EINVAL);
    CHECK_ERR(cio_stream_peername(c, (struct sockaddr *)&ss, &len), -ENOTCONN);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

TEST(peername_checks_its_arguments_first) {
    cio_loop *loop = test_loop();
    cio_server *s = serve(loop, hold_open, NULL);
    CHECK_OK(test_run(loop, name_checks, NULL, NULL));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

typedef struct foreign_calls {
    cio_stream *stream;
    cio_server *server;
    int refused;
} foreign_calls;

static void *close_from_a_foreign_thread(void *arg) {
    foreign_calls *f = arg;
    f->refused = (cio_stream_close(f->stream) == -CIO_EWRONGTHREAD) +
                 (cio_stream_set_limit(f->stream, 10) == -CIO_EWRONGTHREAD) +
                 (cio_server_close(f->server) == -CIO_EWRONGTHREAD);
    return NULL;
}

static void *foreign_thread_closes(void *arg) {
    foreign_calls *f = arg;
    CHECK_OK(cio_open_connection("127.0.0.1", port_str, &f->stream));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, close_from_a_foreign_thread, f));
    CHECK_OK(pthread_join(th, NULL));
    CHECK_EQ(f->refused, 3);
    /* Nothing changed: the stream is open and the server serves. */
    CHECK_EQ(cio_stream_is_closing(f->stream), 0);
    CHECK_EQ(cio_server_is_serving(f->server), 1);
    CHECK_OK(cio_stream_free(f->stream));
    return NULL;
}

TEST(debug_mode_refuses_stream_and_server_close_from_a_foreign_thread) {
    cio_loop_options opts = {.debug = 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    foreign_calls f = {0};
    f.server = serve(loop, hold_open, NULL);
    CHECK_OK(test_run(loop, foreign_thread_closes, &f, NULL));
    CHECK_OK(cio_server_free(f.server));
    cio_loop_free(loop);
}

/* A stream belongs to the loop it was made on: a task of another loop (in
 * another thread) that reads, drains or waits for its close is refused at
 * once, and the stream keeps working for its own loop. (The stream's wait
 * queues used to be bound to the loop of the first task that waited, so
 * such a read waited for ever on a transport that only the first loop
 * drives.) */
static cio_stream *foreign_stream;

static void *read_from_another_loop(void *arg) {
    (void)arg;
    char buf[16];
    CHECK_ERR(cio_stream_read(foreign_stream, buf, sizeof buf), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_stream_readline(foreign_stream, buf, sizeof buf), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_stream_wait_closed(foreign_stream), -CIO_EWRONGLOOP);
    return NULL;
}

static void *run_another_loop(void *arg) {
    (void)arg;
    CHECK_OK(cio_run(read_from_another_loop, NULL, NULL));
    return NULL;
}

static void *stream_of_this_loop(void *arg) {
    (void)arg;
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_OK(cio_open_read_pipe(cio_running_loop(), p[0], &foreign_stream));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, run_another_loop, NULL));
    CHECK_OK(pthread_join(th, NULL));
    CHECK_EQ(write(p[1], "hello", 5), 5);
    close(p[1]);
    char buf[16];
    CHECK_EQ(cio_stream_read(foreign_stream, buf, sizeof buf), 5);
    CHECK_OK(cio_stream_free(foreign_stream));
    return NULL;
}

TEST(a_task_of_another_loop_is_refused_by_a_stream) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, stream_of_this_loop, NULL, NULL));
    cio_loop_free(loop);
}
