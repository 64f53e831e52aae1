/* Descriptor waits and socket operations from tasks. */
#include "test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
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

/* asyncio's test_sock_client_racing: a recv cancelled in the step that
 * started it, before the loop went back to the kernel, must not take the
 * data that arrives next; the next recv gets it (on io_uring the request,
 * not yet submitted, never runs). */
static void *recv_cancelled_before_the_kernel_saw_it(void *arg) {
    (void)arg;
    int sv[2];
    nonblocking_pair(sv);
    cio_task *t;
    CHECK_OK(cio_spawn(cio_running_loop(), reader, IPTR(sv[0]), &t));
    CHECK_OK(cio_sleep(0)); /* the reader issued its recv and waits */
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    CHECK_EQ(send(sv[1], "HTTP/1.0 200 OK", 15, 0), 15);
    char buf[64];
    CHECK_EQ(cio_sock_recv_until(sv[0], buf, sizeof buf, cio_loop_time(cio_running_loop()) + 5),
             15);
    CHECK_ERR(cio_await(t, NULL), -ECANCELED);
    cio_future_unref(t);
    CHECK_OK(cio_close(sv[0]));
    close(sv[1]);
    return NULL;
}

TEST(recv_cancelled_before_it_reached_the_kernel_takes_no_data) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, recv_cancelled_before_the_kernel_saw_it, NULL, NULL));
    cio_loop_free(loop);
}

/* asyncio's test_sock_client_connect_racing: a connect cancelled in the
 * step that started it, to an address nobody listens on yet, does not
 * connect later behind the program's back (on io_uring its request, not
 * yet submitted, never runs, and the next connect would find the socket
 * connected: -EISCONN); once something listens, a new connect does. */
typedef struct connect_arg {
    int fd;
    struct sockaddr_in addr;
} connect_arg;

static void *connect_task(void *arg) {
    connect_arg *c = arg;
    int rc = cio_sock_connect(c->fd, (struct sockaddr *)&c->addr, sizeof c->addr);
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *connect_cancelled_before_the_kernel_saw_it(void *arg) {
    (void)arg;
    int lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lst >= 0);
    connect_arg c = {.fd = -1, .addr = {.sin_family = AF_INET,
                                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}};
    CHECK_OK(bind(lst, (struct sockaddr *)&c.addr, sizeof c.addr));
    socklen_t len = sizeof c.addr;
    CHECK_OK(getsockname(lst, (struct sockaddr *)&c.addr, &len));
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(c.fd >= 0);
    cio_task *t;
    CHECK_OK(cio_spawn(cio_running_loop(), connect_task, &c, &t));
    CHECK_OK(cio_sleep(0)); /* the task issued its connect */
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    CHECK_OK(listen(lst, 1));
    CHECK_ERR(cio_await(t, NULL), -ECANCELED);
    cio_future_unref(t);
    /* The cancelled attempt reached the kernel in its step (connect() is
     * called at once on both backends, as asyncio's sock_connect does), so
     * its refusal comes first, then the retry connects: asyncio's
     * test_sock_client_connect_racing prints the same two outcomes. */
    CHECK_ERR(cio_sock_connect(c.fd, (struct sockaddr *)&c.addr, sizeof c.addr), -ECONNREFUSED);
    CHECK_OK(cio_sock_connect(c.fd, (struct sockaddr *)&c.addr, sizeof c.addr));
    CHECK_OK(cio_close(c.fd));
    close(lst);
    return NULL;
}

TEST(a_connect_cancelled_in_its_first_step_was_attempted_and_can_be_retried) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, connect_cancelled_before_the_kernel_saw_it, NULL, NULL));
    cio_loop_free(loop);
}

/* asyncio's test_sock_lowlevel racing tests spawn sock_connect, sleep(0),
 * and then accept with a blocking call on the loop's thread: the connect
 * must have reached the kernel during the task's step. On io_uring a
 * connect request left in the submission queue until the next poll made
 * that accept wait for ever. */
static void *connect_then_accept_in_the_same_thread(void *arg) {
    (void)arg;
    int lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lst >= 0);
    connect_arg c = {.fd = -1, .addr = {.sin_family = AF_INET,
                                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}};
    CHECK_OK(bind(lst, (struct sockaddr *)&c.addr, sizeof c.addr));
    CHECK_OK(listen(lst, 1));
    socklen_t len = sizeof c.addr;
    CHECK_OK(getsockname(lst, (struct sockaddr *)&c.addr, &len));
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(c.fd >= 0);
    cio_task *t;
    CHECK_OK(cio_spawn(cio_running_loop(), connect_task, &c, &t));
    CHECK_OK(cio_sleep(0));
    /* Not a blocking accept: a failure must not hang the test. */
    struct pollfd p = {.fd = lst, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 1);
    int server = accept(lst, NULL, NULL);
    CHECK(server >= 0);
    CHECK_OK(cio_await(t, NULL));
    cio_future_unref(t);
    close(server);
    CHECK_OK(cio_close(c.fd));
    close(lst);
    return NULL;
}

TEST(a_connect_reaches_the_kernel_in_the_step_that_asked_for_it) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, connect_then_accept_in_the_same_thread, NULL, NULL));
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

/* ---- every call on IPv4, IPv6 and Unix sockets --------------------------- */

#include <signal.h>
#include <stddef.h>
#include <sys/uio.h>
#include <sys/un.h>

enum family { V4, V6, UNIX_ };

static int af_of(enum family f) {
    return f == V4 ? AF_INET : f == V6 ? AF_INET6 : AF_UNIX;
}

/* A loopback address of the family with port 0 (the kernel picks one), or
 * a fresh abstract Unix name. Returns its length. */
static unsigned int loopback(enum family f, struct sockaddr_storage *ss) {
    static int serial;
    memset(ss, 0, sizeof *ss);
    if (f == V4) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof *a;
    }
    if (f == V6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        return sizeof *a;
    }
    struct sockaddr_un *a = (struct sockaddr_un *)ss;
    a->sun_family = AF_UNIX;
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "cio-test-%d-%d", (int)getpid(),
                     serial++);
    return (unsigned int)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Skips the test when the kernel has no IPv6 loopback (a container
 * without it): the only reason an IPv6 case may be skipped. */
static void need(enum family f) {
    if (f != V6) return;
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    unsigned int len = loopback(V6, &ss);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&ss, len) == 0;
    if (fd >= 0) close(fd);
    if (!ok) SKIP("no IPv6 loopback (::1) on this machine");
}

/* A socket bound to a loopback address of the family; *ss and *len get
 * the bound address. */
static int bound(enum family f, int type, struct sockaddr_storage *ss, unsigned int *len) {
    int fd = socket(af_of(f), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    *len = loopback(f, ss);
    CHECK_OK(bind(fd, (struct sockaddr *)ss, *len));
    socklen_t l = sizeof *ss;
    CHECK_OK(getsockname(fd, (struct sockaddr *)ss, &l));
    *len = l;
    return fd;
}

/* A connected stream pair made with cio_sock_connect and cio_sock_accept. */
static void stream_pair(enum family f, int *client, int *server) {
    struct sockaddr_storage ss;
    unsigned int len;
    int lfd = bound(f, SOCK_STREAM, &ss, &len);
    CHECK_OK(listen(lfd, 4));
    *client = socket(af_of(f), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(*client >= 0);
    CHECK_OK(cio_sock_connect(*client, (struct sockaddr *)&ss, len));
    struct sockaddr_storage peer;
    unsigned int plen = sizeof peer;
    *server = cio_sock_accept(lfd, (struct sockaddr *)&peer, &plen);
    CHECK_INT(*server, >=, 0);
    CHECK_EQ(peer.ss_family, af_of(f));
    CHECK_OK(cio_close(lfd));
}

static void *stream_calls(void *arg) {
    enum family f = (enum family)PTRI(arg);
    int c, s;
    stream_pair(f, &c, &s);
    char buf[16] = {0};
    /* send, sendall and recv */
    CHECK_EQ(cio_sock_send(c, "ab", 2), 2);
    CHECK_EQ(cio_sock_sendall(c, "cde", 3), 3);
    size_t got = 0;
    while (got < 5) {
        ssize_t n = cio_sock_recv(s, buf + got, sizeof buf - got);
        CHECK_INT(n, >, 0);
        got += (size_t)n;
    }
    CHECK(memcmp(buf, "abcde", 5) == 0);
    /* sendmsg of two pieces, recvmsg into two pieces */
    struct iovec out[2] = {{"fg", 2}, {"hij", 3}};
    struct msghdr m = {.msg_iov = out, .msg_iovlen = 2};
    CHECK_EQ(cio_sock_sendmsg(s, &m, MSG_NOSIGNAL), 5);
    char p1[2], p2[8];
    struct iovec in[2] = {{p1, 2}, {p2, sizeof p2}};
    struct msghdr r = {.msg_iov = in, .msg_iovlen = 2};
    CHECK_EQ(cio_sock_recvmsg(c, &r, 0), 5);
    CHECK(memcmp(p1, "fg", 2) == 0 && memcmp(p2, "hij", 3) == 0);
    /* sendto and recvfrom on a stream: no address, as send and recv */
    CHECK_EQ(cio_sock_sendto(c, "kl", 2, NULL, 0), 2);
    struct sockaddr_storage from;
    unsigned int flen = sizeof from;
    CHECK_EQ(cio_sock_recvfrom(s, buf, sizeof buf, (struct sockaddr *)&from, &flen), 2);
    CHECK(memcmp(buf, "kl", 2) == 0);
    /* A recv that has to wait: the peer sends from another task later. */
    CHECK_OK(cio_close(c));
    CHECK_EQ(cio_sock_recv(s, buf, sizeof buf), 0);
    CHECK_OK(cio_close(s));
    return NULL;
}

TEST(stream_calls_ipv4) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, stream_calls, IPTR(V4), NULL));
    cio_loop_free(loop);
}

TEST(stream_calls_ipv6) {
    need(V6);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, stream_calls, IPTR(V6), NULL));
    cio_loop_free(loop);
}

TEST(stream_calls_unix) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, stream_calls, IPTR(UNIX_), NULL));
    cio_loop_free(loop);
}

typedef struct dgram_case {
    enum family f;
    int a, b;
    struct sockaddr_storage aa, ba;
    unsigned int alen, blen;
} dgram_case;

static void dgram_pair(dgram_case *d) {
    d->a = bound(d->f, SOCK_DGRAM, &d->aa, &d->alen);
    d->b = bound(d->f, SOCK_DGRAM, &d->ba, &d->blen);
}

static void *recvfrom_task(void *arg) {
    dgram_case *d = arg;
    char buf[32];
    struct sockaddr_storage from;
    unsigned int flen = sizeof from;
    ssize_t n = cio_sock_recvfrom(d->b, buf, sizeof buf, (struct sockaddr *)&from, &flen);
    CHECK_EQ(n, 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    /* The sender's address, as the kernel names it. */
    CHECK_EQ(flen, d->alen);
    CHECK(memcmp(&from, &d->aa, flen) == 0);
    return NULL;
}

static void *datagram_calls(void *arg) {
    dgram_case *d = arg;
    dgram_pair(d);
    /* recvfrom waits (in another task) until sendto's datagram arrives. */
    cio_task *r;
    CHECK_OK(cio_spawn(cio_running_loop(), recvfrom_task, d, &r));
    CHECK_OK(cio_sleep(0));
    CHECK(!cio_future_done(r));
    CHECK_EQ(cio_sock_sendto(d->a, "ping", 4, (struct sockaddr *)&d->ba, d->blen), 4);
    CHECK_OK(cio_await(r, NULL));
    cio_future_unref(r);
    /* sendmsg of two pieces to an address; recvmsg sees one datagram, cut
     * to the buffer, with MSG_TRUNC. */
    struct iovec out[2] = {{"0123", 4}, {"456789", 6}};
    struct msghdr m = {.msg_iov = out, .msg_iovlen = 2, .msg_name = &d->ba, .msg_namelen = d->blen};
    CHECK_EQ(cio_sock_sendmsg(d->a, &m, 0), 10);
    char small[4];
    struct sockaddr_storage from;
    struct iovec in = {small, sizeof small};
    struct msghdr r2 = {.msg_iov = &in, .msg_iovlen = 1, .msg_name = &from,
                        .msg_namelen = sizeof from};
    CHECK_EQ(cio_sock_recvmsg(d->b, &r2, 0), 4);
    CHECK(r2.msg_flags & MSG_TRUNC);
    CHECK(memcmp(small, "0123", 4) == 0);
    CHECK_EQ(r2.msg_namelen, d->alen);
    /* An empty datagram is a datagram. */
    CHECK_EQ(cio_sock_sendto(d->a, "", 0, (struct sockaddr *)&d->ba, d->blen), 0);
    char buf[8];
    unsigned int flen = sizeof from;
    CHECK_EQ(cio_sock_recvfrom(d->b, buf, sizeof buf, (struct sockaddr *)&from, &flen), 0);
    /* Connected: sendto without an address goes to the peer; recvfrom
     * without one is recv. */
    CHECK_OK(connect(d->a, (struct sockaddr *)&d->ba, d->blen));
    CHECK_EQ(cio_sock_sendto(d->a, "xy", 2, NULL, 0), 2);
    CHECK_EQ(cio_sock_recvfrom(d->b, buf, sizeof buf, NULL, NULL), 2);
    CHECK(memcmp(buf, "xy", 2) == 0);
    CHECK_OK(cio_close(d->a));
    CHECK_OK(cio_close(d->b));
    return NULL;
}

static void run_datagram_calls(enum family f) {
    need(f);
    cio_loop *loop = test_loop();
    dgram_case d = {.f = f};
    CHECK_OK(test_run(loop, datagram_calls, &d, NULL));
    cio_loop_free(loop);
}

TEST(datagram_calls_ipv4) {
    run_datagram_calls(V4);
}

TEST(datagram_calls_ipv6) {
    run_datagram_calls(V6);
}

TEST(datagram_calls_unix) {
    run_datagram_calls(UNIX_);
}

/* ---- deadlines and cancellation lose nothing ---------------------------- */

static void *recv_timeouts_lose_nothing(void *arg) {
    dgram_case *d = arg;
    dgram_pair(d);
    cio_loop *loop = cio_running_loop();
    char buf[16];
    struct sockaddr_storage from;
    unsigned int flen = sizeof from;
    double soon = cio_loop_time(loop) + 0.02;
    CHECK_ERR(cio_sock_recvfrom_until(d->b, buf, sizeof buf, (struct sockaddr *)&from, &flen, soon),
              -ETIMEDOUT);
    CHECK_EQ(flen, sizeof from); /* not written by a call that failed */
    struct iovec in = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &in, .msg_iovlen = 1};
    CHECK_ERR(cio_sock_recvmsg_until(d->b, &m, 0, cio_loop_time(loop) + 0.02), -ETIMEDOUT);
    /* The datagram sent after the timeouts arrives in the next call, once. */
    CHECK_EQ(cio_sock_sendto(d->a, "one", 3, (struct sockaddr *)&d->ba, d->blen), 3);
    CHECK_EQ(cio_sock_sendto(d->a, "two", 3, (struct sockaddr *)&d->ba, d->blen), 3);
    CHECK_EQ(cio_sock_recvfrom(d->b, buf, sizeof buf, (struct sockaddr *)&from, &flen), 3);
    CHECK(memcmp(buf, "one", 3) == 0);
    CHECK_EQ(cio_sock_recvmsg(d->b, &m, 0), 3);
    CHECK(memcmp(buf, "two", 3) == 0);
    CHECK_ERR(cio_sock_recvfrom_until(d->b, buf, sizeof buf, NULL, NULL, cio_loop_time(loop) + 0.01),
              -ETIMEDOUT);
    CHECK_OK(cio_close(d->a));
    CHECK_OK(cio_close(d->b));
    return NULL;
}

static void run_recv_timeouts(enum family f) {
    need(f);
    cio_loop *loop = test_loop();
    dgram_case d = {.f = f};
    CHECK_OK(test_run(loop, recv_timeouts_lose_nothing, &d, NULL));
    cio_loop_free(loop);
}

TEST(timed_out_recvfrom_and_recvmsg_lose_no_datagram_ipv4) {
    run_recv_timeouts(V4);
}

TEST(timed_out_recvfrom_and_recvmsg_lose_no_datagram_ipv6) {
    run_recv_timeouts(V6);
}

TEST(timed_out_recvfrom_and_recvmsg_lose_no_datagram_unix) {
    run_recv_timeouts(UNIX_);
}

static void *recvfrom_one(void *arg) {
    int fd = PTRI(arg);
    char buf[16];
    ssize_t n = cio_sock_recvfrom(fd, buf, sizeof buf, NULL, NULL);
    if (n < 0) return cio_raise((int)n);
    return IPTR(buf[0]);
}

static void *recvmsg_one(void *arg) {
    int fd = PTRI(arg);
    char buf[16];
    struct iovec in = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &in, .msg_iovlen = 1};
    ssize_t n = cio_sock_recvmsg(fd, &m, 0);
    if (n < 0) return cio_raise((int)n);
    return IPTR(buf[0]);
}

static void *nap(void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(0.01));
    return NULL;
}

/* Runs the loop for a moment: the tasks spawned get to their waits. */
static void run_a_little(cio_loop *loop) {
    CHECK_OK(test_run(loop, nap, NULL, NULL));
}

TEST(cancelled_recvfrom_and_recvmsg_lose_no_datagram) {
    cio_loop *loop = test_loop();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    cio_coro_fn fns[2] = {recvfrom_one, recvmsg_one};
    for (int i = 0; i < 2; i++) {
        /* Two receivers wait; the first is cancelled, then one datagram
         * comes: the second gets it. */
        cio_task *victim, *next;
        CHECK_OK(cio_spawn(loop, fns[i], IPTR(sv[0]), &victim));
        CHECK_OK(cio_spawn(loop, fns[i], IPTR(sv[0]), &next));
        run_a_little(loop);
        CHECK(!cio_future_done(victim) && !cio_future_done(next));
        CHECK_EQ(cio_task_cancel(victim, NULL), 1);
        CHECK_ERR(cio_run_until_complete(loop, victim, NULL), -ECANCELED);
        CHECK_EQ(send(sv[1], i ? "B" : "A", 1, 0), 1);
        void *c;
        CHECK_OK(cio_run_until_complete(loop, next, &c));
        CHECK_EQ(PTRI(c), i ? 'B' : 'A');
        cio_future_unref(victim);
        cio_future_unref(next);
    }
    /* Nothing else was queued: the cancelled receivers took nothing. */
    char c;
    CHECK_EQ(recv(sv[0], &c, 1, MSG_DONTWAIT), -1);
    CHECK_EQ(errno, EAGAIN);
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

/* Fills a Unix datagram socket's peer until a send would block; returns
 * how many datagrams went in. */
static int fill(int fd) {
    int n = 0;
    while (send(fd, "d", 1, MSG_DONTWAIT) == 1) n++;
    CHECK(errno == EAGAIN);
    return n;
}

static int drain(int fd) {
    int n = 0;
    char c;
    while (recv(fd, &c, 1, MSG_DONTWAIT) == 1) n++;
    return n;
}

static void *send_timeouts(void *arg) {
    int *sv = arg;
    cio_loop *loop = cio_running_loop();
    int queued = fill(sv[1]);
    CHECK_ERR(cio_sock_sendto_until(sv[1], "x", 1, NULL, 0, cio_loop_time(loop) + 0.02),
              -ETIMEDOUT);
    struct iovec out = {"y", 1};
    struct msghdr m = {.msg_iov = &out, .msg_iovlen = 1};
    CHECK_ERR(cio_sock_sendmsg_until(sv[1], &m, 0, cio_loop_time(loop) + 0.02), -ETIMEDOUT);
    CHECK_ERR(cio_sock_send_until(sv[1], "z", 1, cio_loop_time(loop) + 0.02), -ETIMEDOUT);
    /* The timed-out sends sent nothing: exactly the datagrams queued before
     * are there, and the socket sends again once there is room. */
    CHECK_EQ(drain(sv[0]), queued);
    CHECK_EQ(cio_sock_sendto(sv[1], "x", 1, NULL, 0), 1);
    CHECK_EQ(cio_sock_sendmsg(sv[1], &m, 0), 1);
    CHECK_EQ(drain(sv[0]), 2);
    return NULL;
}

TEST(timed_out_sendto_and_sendmsg_send_nothing_and_the_socket_goes_on) {
    cio_loop *loop = test_loop();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    CHECK_OK(test_run(loop, send_timeouts, sv, NULL));
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

static void *sendto_one(void *arg) {
    int fd = PTRI(arg);
    ssize_t n = cio_sock_sendto(fd, "s", 1, NULL, 0);
    return n < 0 ? cio_raise((int)n) : IPTR(n);
}

TEST(cancelled_sendto_sends_nothing) {
    cio_loop *loop = test_loop();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    int queued = fill(sv[1]);
    cio_task *victim, *next;
    CHECK_OK(cio_spawn(loop, sendto_one, IPTR(sv[1]), &victim));
    CHECK_OK(cio_spawn(loop, sendto_one, IPTR(sv[1]), &next));
    run_a_little(loop);
    CHECK_EQ(cio_task_cancel(victim, NULL), 1);
    CHECK_ERR(cio_run_until_complete(loop, victim, NULL), -ECANCELED);
    /* The cancelled task sent nothing: only the datagrams queued before
     * are there. (All are read: a Unix datagram socket reports writable
     * only once its send buffer is mostly free, not at the first read.) */
    CHECK_EQ(drain(sv[0]), queued);
    CHECK_OK(cio_run_until_complete(loop, next, NULL));
    CHECK_EQ(drain(sv[0]), 1);
    cio_future_unref(victim);
    cio_future_unref(next);
    close(sv[0]);
    close(sv[1]);
    cio_loop_free(loop);
}

static void *accept_timeout(void *arg) {
    enum family f = (enum family)PTRI(arg);
    struct sockaddr_storage ss;
    unsigned int len;
    int lfd = bound(f, SOCK_STREAM, &ss, &len);
    CHECK_OK(listen(lfd, 4));
    cio_loop *loop = cio_running_loop();
    CHECK_ERR(cio_sock_accept_until(lfd, NULL, NULL, cio_loop_time(loop) + 0.02), -ETIMEDOUT);
    /* The listener goes on: the next connection is accepted. */
    int c = socket(af_of(f), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK_OK(cio_sock_connect(c, (struct sockaddr *)&ss, len));
    int s = cio_sock_accept_until(lfd, NULL, NULL, cio_loop_time(loop) + 10);
    CHECK_INT(s, >=, 0);
    CHECK_OK(cio_close(s));
    CHECK_OK(cio_close(c));
    CHECK_OK(cio_close(lfd));
    return NULL;
}

TEST(timed_out_accept_leaves_the_listener_usable) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, accept_timeout, IPTR(V4), NULL));
    CHECK_OK(test_run(loop, accept_timeout, IPTR(UNIX_), NULL));
    cio_loop_free(loop);
}

TEST(timed_out_accept_leaves_the_listener_usable_ipv6) {
    need(V6);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, accept_timeout, IPTR(V6), NULL));
    cio_loop_free(loop);
}

/*
 * A connect that hangs on loopback: a listener with backlog 0 takes one
 * connection into its accept queue and then drops every SYN, so the next
 * connect waits for a SYN-ACK that only comes once the queue has room (on
 * the client's SYN retransmission, a second or so later).
 */
static void *connect_deadline(void *arg) {
    enum family f = (enum family)PTRI(arg);
    cio_loop *loop = cio_running_loop();
    struct sockaddr_storage ss;
    unsigned int len;
    int lfd = bound(f, SOCK_STREAM, &ss, &len);
    CHECK_OK(listen(lfd, 0));
    int fds[8], n = 0, rc = 0;
    while (n < 8) {
        fds[n] = socket(af_of(f), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        rc = cio_sock_connect_until(fds[n], (struct sockaddr *)&ss, len, cio_loop_time(loop) + 0.2);
        n++;
        if (rc < 0) break;
    }
    CHECK_ERR(rc, -ETIMEDOUT);
    /* The attempt goes on in the kernel; once the queue has room, calling
     * connect again waits for that same attempt and reports it. */
    int hung = fds[n - 1];
    for (int i = 0; i < n - 1; i++) {
        int s = cio_sock_accept(lfd, NULL, NULL);
        CHECK_INT(s, >=, 0);
        CHECK_OK(cio_close(s));
    }
    CHECK_OK(cio_sock_connect_until(hung, (struct sockaddr *)&ss, len, cio_loop_time(loop) + 30));
    int s = cio_sock_accept_until(lfd, NULL, NULL, cio_loop_time(loop) + 30);
    CHECK_INT(s, >=, 0);
    CHECK_EQ(cio_sock_sendall(hung, "ok", 2), 2);
    char buf[2];
    CHECK_EQ(cio_sock_recv(s, buf, 2), 2);
    CHECK_OK(cio_close(s));
    for (int i = 0; i < n; i++) CHECK_OK(cio_close(fds[i]));
    CHECK_OK(cio_close(lfd));
    return NULL;
}

TEST(connect_deadline_on_a_full_backlog_then_connect_again_ipv4) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, connect_deadline, IPTR(V4), NULL));
    cio_loop_free(loop);
}

TEST(connect_deadline_on_a_full_backlog_then_connect_again_ipv6) {
    need(V6);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, connect_deadline, IPTR(V6), NULL));
    cio_loop_free(loop);
}

static void *connect_closed_port(void *arg) {
    enum family f = (enum family)PTRI(arg);
    struct sockaddr_storage ss;
    unsigned int len;
    int lfd = bound(f, SOCK_STREAM, &ss, &len);
    close(lfd); /* bound, never listened, now closed: nobody there */
    int fd = socket(af_of(f), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = cio_sock_connect_until(fd, (struct sockaddr *)&ss, len,
                                    cio_loop_time(cio_running_loop()) + 30);
    CHECK_OK(cio_close(fd));
    return IPTR(rc);
}

TEST(connect_to_a_closed_port_or_path_is_refused) {
    cio_loop *loop = test_loop();
    void *rc;
    CHECK_OK(test_run(loop, connect_closed_port, IPTR(V4), &rc));
    CHECK_ERR(PTRI(rc), -ECONNREFUSED);
    CHECK_OK(test_run(loop, connect_closed_port, IPTR(UNIX_), &rc));
    CHECK_ERR(PTRI(rc), -ECONNREFUSED);
    need(V6);
    CHECK_OK(test_run(loop, connect_closed_port, IPTR(V6), &rc));
    CHECK_ERR(PTRI(rc), -ECONNREFUSED);
    cio_loop_free(loop);
}

/* ---- SIGPIPE ------------------------------------------------------------- */

static void *send_to_a_closed_peer(void *arg) {
    enum family f = (enum family)PTRI(arg);
    int c, s;
    stream_pair(f, &c, &s);
    CHECK_OK(cio_close(s));
    /* The first send may still be taken (TCP learns of the close from the
     * reset it provokes); a megabyte cannot be. */
    size_t big = 1 << 20;
    char *buf = calloc(1, big);
    ssize_t rc = cio_sock_sendall(c, buf, big);
    CHECK(rc == -EPIPE || rc == -ECONNRESET);
    rc = cio_sock_send(c, buf, 1);
    CHECK(rc == -EPIPE || rc == -ECONNRESET);
    rc = cio_sock_sendto(c, buf, 1, NULL, 0);
    CHECK(rc == -EPIPE || rc == -ECONNRESET);
    struct iovec out = {buf, 1};
    struct msghdr m = {.msg_iov = &out, .msg_iovlen = 1};
    rc = cio_sock_sendmsg(c, &m, 0);
    CHECK(rc == -EPIPE || rc == -ECONNRESET);
    free(buf);
    CHECK_OK(cio_close(c));
    return NULL;
}

TEST(sending_to_a_closed_peer_is_epipe_and_the_process_lives) {
    /* SIGPIPE's default action kills the process; the test makes sure it
     * is in place (a shell or CTest may start us with it ignored), and
     * installs no handler of its own. */
    signal(SIGPIPE, SIG_DFL);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, send_to_a_closed_peer, IPTR(UNIX_), NULL));
    CHECK_OK(test_run(loop, send_to_a_closed_peer, IPTR(V4), NULL));
    struct sigaction sa;
    CHECK_OK(sigaction(SIGPIPE, NULL, &sa));
    CHECK(sa.sa_handler == SIG_DFL);
    need(V6);
    CHECK_OK(test_run(loop, send_to_a_closed_peer, IPTR(V6), NULL));
    cio_loop_free(loop);
}

/* ---- bad input ----------------------------------------------------------- */

static void *bad_input(void *arg) {
    (void)arg;
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    char buf[4] = {0};
    struct sockaddr_storage ss;
    unsigned int len = sizeof ss;
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    /* NULL buffers with a length */
    CHECK_ERR(cio_sock_recvfrom(sv[0], NULL, 1, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_sock_sendto(sv[0], NULL, 1, NULL, 0), -EINVAL);
    CHECK_ERR(cio_sock_recvmsg(sv[0], NULL, 0), -EINVAL);
    CHECK_ERR(cio_sock_sendmsg(sv[0], NULL, 0), -EINVAL);
    struct msghdr no_iov = {.msg_iov = NULL, .msg_iovlen = 1};
    CHECK_ERR(cio_sock_recvmsg(sv[0], &no_iov, 0), -EINVAL);
    CHECK_ERR(cio_sock_sendmsg(sv[0], &no_iov, 0), -EINVAL);
    struct msghdr no_name = {.msg_iov = &iov, .msg_iovlen = 1, .msg_namelen = 16};
    CHECK_ERR(cio_sock_sendmsg(sv[0], &no_name, 0), -EINVAL);
    struct msghdr no_control = {.msg_iov = &iov, .msg_iovlen = 1, .msg_controllen = 16};
    CHECK_ERR(cio_sock_recvmsg(sv[0], &no_control, 0), -EINVAL);
    /* bad address lengths */
    CHECK_ERR(cio_sock_recvfrom(sv[0], buf, 1, (struct sockaddr *)&ss, NULL), -EINVAL);
    CHECK_ERR(cio_sock_sendto(sv[0], buf, 1, (struct sockaddr *)&ss, 0), -EINVAL);
    CHECK_ERR(cio_sock_sendto(sv[0], buf, 1, NULL, 8), -EINVAL);
    unsigned int huge = 0x80000000u;
    CHECK_ERR(cio_sock_recvfrom(sv[0], buf, 1, (struct sockaddr *)&ss, &huge), -EINVAL);
    CHECK_ERR(cio_sock_sendto(sv[0], buf, 1, (struct sockaddr *)&ss, huge), -EINVAL);
    /* unknown flags */
    CHECK_ERR(cio_sock_recvmsg(sv[0], &m, 0x08000000), -EINVAL); /* no MSG_ flag */
    CHECK_ERR(cio_sock_sendmsg(sv[0], &m, MSG_PEEK), -EINVAL);
    CHECK_ERR(cio_sock_recvmsg(sv[0], &m, MSG_MORE), -EINVAL);
    /* negative descriptors, NaN deadlines */
    CHECK_ERR(cio_sock_recvfrom(-1, buf, 1, NULL, NULL), -EBADF);
    CHECK_ERR(cio_sock_sendto(-1, buf, 1, NULL, 0), -EBADF);
    CHECK_ERR(cio_sock_recvmsg(-1, &m, 0), -EBADF);
    CHECK_ERR(cio_sock_sendmsg(-1, &m, 0), -EBADF);
    CHECK_ERR(cio_sock_recvfrom_until(sv[0], buf, 1, NULL, NULL, NAN), -EINVAL);
    CHECK_ERR(cio_sock_sendmsg_until(sv[0], &m, 0, NAN), -EINVAL);
    /* a closed descriptor, and a descriptor that is no socket */
    CHECK_ERR(cio_sock_sendto(1000000, buf, 1, NULL, 0), -EBADF);
    int fds[2];
    CHECK_OK(pipe2(fds, O_NONBLOCK | O_CLOEXEC));
    CHECK_ERR(cio_sock_recvmsg(fds[0], &m, 0), -ENOTSOCK);
    close(fds[0]);
    close(fds[1]);
    /* the kernel's own checks: an address of the wrong family */
    struct sockaddr_in in4 = {.sin_family = AF_INET};
    ssize_t rc = cio_sock_sendto(sv[0], buf, 1, (struct sockaddr *)&in4, sizeof in4);
    CHECK(rc == -EINVAL || rc == -EISCONN || rc == -EAFNOSUPPORT);
    /* Nothing was sent or taken by any of the above. */
    CHECK_EQ(recv(sv[1], buf, 1, MSG_DONTWAIT), -1);
    (void)len;
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

TEST(bad_input_is_an_error_never_a_crash) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, bad_input, NULL, NULL));
    /* Outside a task: bad arguments first, then -EPERM. */
    char buf[1];
    CHECK_ERR(cio_sock_recvfrom(0, NULL, 1, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_sock_recvfrom(-1, buf, 1, NULL, NULL), -EBADF);
    CHECK_ERR(cio_sock_recvfrom(0, buf, 1, NULL, NULL), -EPERM);
    CHECK_ERR(cio_sock_sendto(1, buf, 1, NULL, 0), -EPERM);
    CHECK_ERR(cio_sock_recvmsg(0, NULL, 0), -EINVAL);
    struct iovec iov = {buf, 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    CHECK_ERR(cio_sock_recvmsg(0, &m, 0), -EPERM);
    CHECK_ERR(cio_sock_sendmsg(1, &m, 0), -EPERM);
    cio_loop_free(loop);
}

/* A transfer of 4 GiB or more: the io_uring request's length has 32 bits,
 * so an uncut length wrapped (a recv into 4 GiB asked for 0 bytes and read
 * as the end of stream, a send reported 0). Cut to one system call's
 * maximum, each call moves what is there. Only the bytes that move are
 * touched: the buffer is address space reserved without memory. */
static void *huge_lengths(void *arg) {
    int *sv = arg;
    size_t huge = ((size_t)1 << 32) + 3;
    char *buf = mmap(NULL, huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (buf == MAP_FAILED) SKIP("no 4 GiB of address space for the buffer (mmap: %d)", errno);
    CHECK_EQ(send(sv[1], "hello", 5, 0), 5);
    CHECK_EQ(cio_sock_recv(sv[0], buf, (size_t)1 << 32), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(send(sv[1], "again", 5, 0), 5);
    CHECK_EQ(cio_sock_recv(sv[0], buf, huge), 5);
    CHECK(memcmp(buf, "again", 5) == 0);
    /* A send of 4 GiB moves what the socket takes, at least one byte. */
    ssize_t n = cio_sock_send(sv[0], buf, (size_t)1 << 32);
    CHECK(n > 0);
    CHECK(munmap(buf, huge) == 0);
    return NULL;
}

TEST(socket_transfers_of_4_gib_or_more_are_cut_not_wrapped) {
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    CHECK_OK(test_run(loop, huge_lengths, sv, NULL));
    CHECK_OK(cio_close(sv[0]));
    CHECK_OK(cio_close(sv[1]));
    cio_loop_free(loop);
}
