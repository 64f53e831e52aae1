/* Descriptor waits and socket operations from tasks. */
#include "test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static void nonblocking_pair(int sv[2]) {
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
}

static void *reader(void *arg) {
    int fd = PTRI(arg);
    char buf[64];
    ssize_t n = cio_sock_recv(fd, buf, sizeof buf);
    if (n < 0) return cio_raise((int)n);
    return IPTR(n);
}

static void *writer(void *arg) {
    int fd = PTRI(arg);
    CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(cio_sock_sendall(fd, "hello", 5), 5);
    return NULL;
}

TEST(recv_waits_for_data) {
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    cio_task *r, *w;
    CHECK_OK(cio_spawn(loop, reader, IPTR(sv[0]), &r));
    CHECK_OK(cio_spawn(loop, writer, IPTR(sv[1]), &w));
    void *n;
    CHECK_OK(cio_run_until_complete(loop, r, &n));
    CHECK_EQ(PTRI(n), 5);
    CHECK_OK(cio_run_until_complete(loop, w, NULL));
    cio_future_unref(r);
    cio_future_unref(w);
    CHECK_OK(cio_close(sv[0]));
    CHECK_OK(cio_close(sv[1]));
    cio_loop_free(loop);
}

TEST(recv_returns_zero_at_eof) {
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    close(sv[1]);
    void *n;
    CHECK_OK(test_run(loop, reader, IPTR(sv[0]), &n));
    CHECK_EQ(PTRI(n), 0);
    close(sv[0]);
    cio_loop_free(loop);
}

static void stop_soon(cio_loop *loop, void *arg) {
    (void)arg;
    CHECK_OK(cio_loop_stop(loop));
}

TEST(cancel_a_blocked_recv) {
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    cio_task *r;
    CHECK_OK(cio_spawn(loop, reader, IPTR(sv[0]), &r));
    cio_future *never;
    CHECK_OK(cio_future_new(loop, &never));
    CHECK_OK(cio_call_later(loop, 0.02, stop_soon, NULL, NULL));
    CHECK_ERR(cio_run_until_complete(loop, never, NULL), -CIO_ESTOPPED);
    cio_future_unref(never);
    CHECK(!cio_future_done(r));
    CHECK_EQ(cio_task_cancel(r, "bye"), 1);
    CHECK_ERR(cio_run_until_complete(loop, r, NULL), -ECANCELED);
    /* The descriptor can be waited on again afterwards. */
    CHECK_EQ(write(sv[1], "x", 1), 1);
    void *n;
    CHECK_OK(test_run(loop, reader, IPTR(sv[0]), &n));
    CHECK_EQ(PTRI(n), 1);
    cio_future_unref(r);
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

static void *read_a_byte(void *arg) {
    int fd = PTRI(arg);
    char c;
    ssize_t n = cio_sock_recv(fd, &c, 1);
    if (n < 0) return cio_raise((int)n);
    return IPTR(c);
}

TEST(readers_of_one_descriptor_are_served_in_order_and_close_wakes_the_rest) {
    /* Any number of tasks may wait to read one descriptor: bytes go to them
     * in the order they asked, and cio_close ends the remaining waits with
     * -EBADF (asyncio's sock_recv from several tasks). */
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    cio_task *r[3];
    for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, read_a_byte, IPTR(sv[0]), &r[i]));
    cio_future *never;
    CHECK_OK(cio_future_new(loop, &never));
    CHECK_OK(cio_call_later(loop, 0.01, stop_soon, NULL, NULL));
    CHECK_ERR(cio_run_until_complete(loop, never, NULL), -CIO_ESTOPPED);
    CHECK_EQ(write(sv[1], "ab", 2), 2);
    void *c;
    CHECK_OK(cio_run_until_complete(loop, r[0], &c));
    CHECK_EQ(PTRI(c), 'a');
    CHECK_OK(cio_run_until_complete(loop, r[1], &c));
    CHECK_EQ(PTRI(c), 'b');
    CHECK(!cio_future_done(r[2]));
    CHECK_OK(cio_close(sv[0])); /* outside the running loop: still wakes r[2] */
    CHECK_ERR(cio_run_until_complete(loop, r[2], NULL), -EBADF);
    for (int i = 0; i < 3; i++) cio_future_unref(r[i]);
    cio_future_unref(never);
    close(sv[1]);
    cio_loop_free(loop);
}

TEST(outside_a_task) {
    char c;
    CHECK_ERR(cio_sock_recv(0, &c, 1), -EPERM);
    CHECK_ERR(cio_wait_readable(0), -EPERM);
    CHECK_ERR(cio_wait_writable(1), -EPERM);
    CHECK_ERR(cio_sock_accept(0, NULL, NULL), -EPERM);
    CHECK_ERR(cio_close(-1), -EBADF);
}

static int listener(struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_OK(bind(fd, (struct sockaddr *)addr, sizeof *addr));
    socklen_t len = sizeof *addr;
    CHECK_OK(getsockname(fd, (struct sockaddr *)addr, &len));
    CHECK_OK(listen(fd, 16));
    return fd;
}

static struct sockaddr_in server_addr;

static void *echo_server(void *arg) {
    int lfd = PTRI(arg);
    int conn = cio_sock_accept(lfd, NULL, NULL);
    CHECK_INT(conn, >=, 0);
    CHECK(fcntl(conn, F_GETFL) & O_NONBLOCK);
    char buf[4096];
    ssize_t total = 0, n;
    while ((n = cio_sock_recv(conn, buf, sizeof buf)) > 0) {
        CHECK_EQ(cio_sock_sendall(conn, buf, (size_t)n), n);
        total += n;
    }
    CHECK_EQ(n, 0);
    CHECK_OK(cio_close(conn));
    return IPTR(total);
}

#define BIG (1 << 20)

static void *echo_client(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK_OK(cio_sock_connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr));
    /* A megabyte each way: both sides block on full buffers many times. */
    char *out = malloc(BIG), *in = malloc(BIG);
    for (int i = 0; i < BIG; i++) out[i] = (char)(i * 7);
    size_t got = 0;
    size_t sent = 0;
    while (got < BIG) {
        if (sent < BIG) {
            ssize_t n = cio_sock_send(fd, out + sent, BIG - sent > 65536 ? 65536 : BIG - sent);
            CHECK_INT(n, >, 0);
            sent += (size_t)n;
        }
        ssize_t n = cio_sock_recv(fd, in + got, BIG - got);
        CHECK_INT(n, >, 0);
        got += (size_t)n;
    }
    CHECK(memcmp(in, out, BIG) == 0);
    free(out);
    free(in);
    CHECK_OK(cio_close(fd));
    return NULL;
}

TEST(tcp_echo_a_megabyte) {
    cio_loop *loop = test_loop();
    int lfd = listener(&server_addr);
    cio_task *s, *c;
    CHECK_OK(cio_spawn(loop, echo_server, IPTR(lfd), &s));
    CHECK_OK(cio_spawn(loop, echo_client, NULL, &c));
    CHECK_OK(cio_run_until_complete(loop, c, NULL));
    void *total;
    CHECK_OK(cio_run_until_complete(loop, s, &total));
    CHECK_EQ(PTRI(total), BIG);
    cio_future_unref(s);
    cio_future_unref(c);
    close(lfd);
    cio_loop_free(loop);
}

static void *connect_refused(void *arg) {
    (void)arg;
    struct sockaddr_in addr;
    int lfd = listener(&addr);
    close(lfd); /* nobody listens on that port any more */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = cio_sock_connect(fd, (struct sockaddr *)&addr, sizeof addr);
    cio_close(fd);
    return IPTR(rc);
}

TEST(connect_refused) {
    cio_loop *loop = test_loop();
    void *rc;
    CHECK_OK(test_run(loop, connect_refused, NULL, &rc));
    CHECK_ERR(PTRI(rc), -ECONNREFUSED);
    cio_loop_free(loop);
}

static void *wait_on_regular_file(void *arg) {
    (void)arg;
    int fd = open("/proc/self/status", O_RDONLY | O_NONBLOCK);
    CHECK(fd >= 0);
    int rc = cio_wait_readable(fd);
    close(fd);
    return IPTR(rc);
}

TEST(regular_files_are_refused) {
    cio_loop *loop = test_loop();
    void *rc;
    CHECK_OK(test_run(loop, wait_on_regular_file, NULL, &rc));
    /* epoll cannot watch a regular file: EPERM, as asyncio's selector. */
    CHECK_ERR(PTRI(rc), -EPERM);
    cio_loop_free(loop);
}

static void *read_one(void *arg) {
    int fd = PTRI(arg);
    char c;
    int rc = cio_wait_readable(fd);
    if (rc < 0) return cio_raise(rc);
    return IPTR(read(fd, &c, 1));
}

static void write_one(cio_loop *loop, void *arg) {
    (void)loop;
    CHECK_EQ(write(PTRI(arg), "x", 1), 1);
}

TEST(descriptor_closed_behind_the_loops_back_can_be_reused) {
    /* Plain close() instead of cio_close(): the number comes back with the
     * next pipe, and waiting on it must still work. */
    cio_loop *loop = test_loop();
    for (int round = 0; round < 3; round++) {
        int fds[2];
        CHECK_OK(pipe2(fds, O_NONBLOCK | O_CLOEXEC));
        cio_task *t;
        CHECK_OK(cio_spawn(loop, read_one, IPTR(fds[0]), &t));
        CHECK_OK(cio_call_later(loop, 0.005, write_one, IPTR(fds[1]), NULL));
        void *n;
        CHECK_OK(cio_run_until_complete(loop, t, &n));
        CHECK_EQ(PTRI(n), 1);
        cio_future_unref(t);
        close(fds[0]);
        close(fds[1]);
    }
    cio_loop_free(loop);
}
