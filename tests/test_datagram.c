/* Datagram endpoints: asyncio's create_datagram_endpoint, DatagramProtocol
 * and DatagramTransport. */
#include "test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* What a protocol saw, in order: 'm'ade, 'r'eceived, 'e'rror, 'p'ause,
 * res'u'me, 'l'ost. */
typedef struct rec {
    char log[256];
    int n;
    int received;
    int errors;
    int last_error;
    int lost_error;
    int echo;          /* send every datagram back to its sender */
    int close_after;   /* close once this many were received (0: never) */
    char last[128];
    size_t last_len;
    struct sockaddr_storage from;
    unsigned int fromlen;
    cio_datagram_transport *t;
    cio_loop *loop;
    int stop_when_lost;
} rec;

static void note(rec *r, char c) {
    if (r->n < (int)sizeof r->log - 1) r->log[r->n++] = c;
}

static void on_made(cio_datagram_transport *t, void *ctx) {
    rec *r = ctx;
    CHECK(r->t == NULL || r->t == t);
    r->t = t;
    note(r, 'm');
}

static void on_datagram(cio_datagram_transport *t, const void *data, size_t len,
                        const struct sockaddr *addr, unsigned int addrlen, void *ctx) {
    rec *r = ctx;
    note(r, 'r');
    r->received++;
    r->last_len = len < sizeof r->last ? len : sizeof r->last;
    memcpy(r->last, data, r->last_len);
    r->fromlen = addrlen;
    if (addr) memcpy(&r->from, addr, addrlen);
    if (r->echo) CHECK_OK(cio_datagram_transport_sendto(t, data, len, addr, addrlen));
    if (r->close_after && r->received == r->close_after) CHECK_OK(cio_datagram_transport_close(t));
}

static void on_error(cio_datagram_transport *t, int error, void *ctx) {
    (void)t;
    rec *r = ctx;
    note(r, 'e');
    r->errors++;
    r->last_error = error;
}

static void on_lost(cio_datagram_transport *t, int error, void *ctx) {
    rec *r = ctx;
    CHECK(r->t == NULL || r->t == t);
    note(r, 'l');
    r->lost_error = error;
    /* The transport still answers inside connection_lost. */
    CHECK(cio_datagram_transport_is_closing(t));
    CHECK_ERR(cio_datagram_transport_sendto(t, "x", 1, NULL, 0), -CIO_EINVALSTATE);
    CHECK_OK(cio_datagram_transport_close(t));
    CHECK_OK(cio_datagram_transport_abort(t));
    r->t = NULL;
    if (r->stop_when_lost) CHECK_OK(cio_loop_stop(r->loop));
}

static void on_pause(cio_datagram_transport *t, void *ctx) {
    (void)t;
    note(ctx, 'p');
}

static void on_resume(cio_datagram_transport *t, void *ctx) {
    (void)t;
    note(ctx, 'u');
}

static const cio_datagram_protocol proto = {
    .connection_made = on_made,
    .datagram_received = on_datagram,
    .error_received = on_error,
    .connection_lost = on_lost,
    .pause_writing = on_pause,
    .resume_writing = on_resume,
};

enum family { V4, V6, UNIX_ };

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
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "cio-dgram-%d-%d", (int)getpid(),
                     serial++);
    return (unsigned int)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static void need(enum family f) {
    if (f != V6) return;
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    unsigned int len = loopback(V6, &ss);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&ss, len) == 0;
    if (fd >= 0) close(fd);
    if (!ok) SKIP("no IPv6 loopback (::1) on this machine");
}

/* Runs the loop until both records saw connection_lost. */
static void run_until_lost(cio_loop *loop, rec *a, rec *b) {
    for (int i = 0; i < 1000 && ((a && !strchr(a->log, 'l')) || (b && !strchr(b->log, 'l'))); i++) {
        if (a) a->stop_when_lost = 1, a->loop = loop;
        if (b) b->stop_when_lost = 1, b->loop = loop;
        CHECK_OK(cio_run_forever(loop));
    }
}

static void stop_cb(cio_loop *loop, void *arg) {
    (void)arg;
    CHECK_OK(cio_loop_stop(loop));
}

/* Runs one pass of the loop's callbacks (and a poll), or a few. */
static void spin(cio_loop *loop, int times) {
    for (int i = 0; i < times; i++) {
        CHECK_OK(cio_call_soon(loop, stop_cb, NULL, NULL));
        CHECK_OK(cio_run_forever(loop));
    }
}

/* Runs the loop for about `seconds`. */
static void run_for(cio_loop *loop, double seconds) {
    CHECK_OK(cio_call_later(loop, seconds, stop_cb, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
}

/* ---- an echo over each family -------------------------------------------- */

static void echo(enum family f) {
    need(f);
    cio_loop *loop = test_loop();
    rec server = {.echo = 1}, client = {.close_after = 3};
    struct sockaddr_storage ss;
    unsigned int len = loopback(f, &ss);
    cio_datagram_transport *st, *ct;
    CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &server, (struct sockaddr *)&ss, len, NULL,
                                          0, 0, &st));
    /* connection_made comes from the loop, not from inside the create call. */
    CHECK_EQ(server.n, 0);
    CHECK_EQ(cio_datagram_transport_peername(st, (struct sockaddr *)&ss, &len), -ENOTCONN);
    len = sizeof ss;
    CHECK_OK(cio_datagram_transport_sockname(st, (struct sockaddr *)&ss, &len));
    struct sockaddr_storage local;
    unsigned int local_len = loopback(f, &local);
    if (f == UNIX_) {
        /* A Unix client needs a name of its own to be answered. */
        CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &client, (struct sockaddr *)&local,
                                              local_len, (struct sockaddr *)&ss, len, 0, &ct));
    } else {
        CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &client, NULL, 0,
                                              (struct sockaddr *)&ss, len, 0, &ct));
    }
    struct sockaddr_storage peer;
    unsigned int plen = sizeof peer;
    CHECK_OK(cio_datagram_transport_peername(ct, (struct sockaddr *)&peer, &plen));
    CHECK_EQ(plen, len);
    CHECK(memcmp(&peer, &ss, len) == 0);
    /* Sent before connection_made: allowed, as in asyncio. The peer's own
     * address is accepted too. */
    CHECK_OK(cio_datagram_transport_sendto(ct, "one", 3, NULL, 0));
    CHECK_OK(cio_datagram_transport_sendto(ct, "two", 3, (struct sockaddr *)&ss, len));
    CHECK_OK(cio_datagram_transport_sendto(ct, "three", 5, NULL, 0));
    run_until_lost(loop, &client, NULL);
    CHECK_STR(client.log, "mrrrl");
    CHECK_EQ(client.lost_error, 0);
    CHECK_EQ(client.last_len, 5);
    CHECK(memcmp(client.last, "three", 5) == 0);
    CHECK_EQ(server.received, 3);
    CHECK_OK(cio_datagram_transport_close(st));
    run_until_lost(loop, &server, NULL);
    CHECK_STR(server.log, "mrrrl");
    CHECK_EQ(server.lost_error, 0);
    CHECK_OK(cio_loop_free(loop));
}

TEST(echo_ipv4) {
    echo(V4);
}

TEST(echo_ipv6) {
    echo(V6);
}

TEST(echo_unix) {
    echo(UNIX_);
}

TEST(unix_path_endpoint_replaces_a_stale_socket_file) {
    cio_loop *loop = test_loop();
    char dir[] = "/tmp/cio-dgram-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/s", dir);
    for (int round = 0; round < 2; round++) {
        /* The second round finds the first one's file: asyncio removes a
         * stale socket file before binding. */
        rec r = {0};
        cio_datagram_transport *t;
        CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &r, (struct sockaddr *)&a, sizeof a,
                                              NULL, 0, 0, &t));
        struct stat st;
        CHECK_OK(stat(a.sun_path, &st));
        CHECK(S_ISSOCK(st.st_mode));
        CHECK_OK(cio_datagram_transport_close(t));
        run_until_lost(loop, &r, NULL);
    }
    /* A file that is no socket is left alone: bind fails. */
    unlink(a.sun_path);
    int fd = open(a.sun_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    close(fd);
    rec r = {0};
    cio_datagram_transport *t = (cio_datagram_transport *)&r;
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &r, (struct sockaddr *)&a, sizeof a, NULL,
                                           0, 0, &t),
              -EADDRINUSE);
    CHECK(t == NULL);
    unlink(a.sun_path);
    rmdir(dir);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- errors that do not end the endpoint -------------------------------- */

TEST(port_unreachable_is_error_received_and_the_endpoint_goes_on) {
    cio_loop *loop = test_loop();
    /* A port nobody listens on: bound, then closed. */
    struct sockaddr_storage ss;
    unsigned int len = loopback(V4, &ss);
    int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK_OK(bind(probe, (struct sockaddr *)&ss, len));
    socklen_t l = sizeof ss;
    CHECK_OK(getsockname(probe, (struct sockaddr *)&ss, &l));
    close(probe);
    rec r = {0};
    cio_datagram_transport *t;
    CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &r, NULL, 0, (struct sockaddr *)&ss, len, 0,
                                          &t));
    CHECK_OK(cio_datagram_transport_sendto(t, "hello", 5, NULL, 0));
    for (int i = 0; i < 200 && r.errors == 0; i++) run_for(loop, 0.005);
    CHECK_EQ(r.errors, 1);
    CHECK_ERR(r.last_error, -ECONNREFUSED);
    CHECK_STR(r.log, "me");
    CHECK(!cio_datagram_transport_is_closing(t));
    /* It still sends (and learns of the next refusal the same way). */
    CHECK_OK(cio_datagram_transport_sendto(t, "again", 5, NULL, 0));
    for (int i = 0; i < 200 && r.errors == 1; i++) run_for(loop, 0.005);
    CHECK_EQ(r.errors, 2);
    CHECK_OK(cio_datagram_transport_close(t));
    run_until_lost(loop, &r, NULL);
    CHECK_STR(r.log, "meel");
    CHECK_OK(cio_loop_free(loop));
}

TEST(oversized_datagrams_are_emsgsize_both_ways) {
    cio_loop *loop = test_loop();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
    int big = 1 << 20;
    CHECK_OK(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big));
    rec r = {0};
    cio_datagram_transport *t;
    CHECK_OK(cio_create_datagram_endpoint_from_socket(loop, &proto, &r, sv[0], &t));
    /* from_socket made it non-blocking. */
    CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    CHECK_EQ(cio_datagram_transport_socket(t), sv[0]);
    spin(loop, 2);
    /* Received: longer than 64 KiB is dropped and reported; the next one
     * comes through. */
    size_t n = 70000;
    char *buf = calloc(1, n);
    CHECK_EQ(send(sv[1], buf, n, 0), (ssize_t)n);
    CHECK_EQ(send(sv[1], "small", 5, 0), 5);
    for (int i = 0; i < 200 && r.received == 0; i++) run_for(loop, 0.005);
    CHECK_STR(r.log, "mer");
    CHECK_ERR(r.last_error, -EMSGSIZE);
    CHECK_EQ(r.last_len, 5);
    /* Sent: a UDP datagram over 64 KiB is refused by the kernel, from
     * inside sendto, through error_received. */
    struct sockaddr_storage ss;
    unsigned int len = loopback(V4, &ss);
    rec u = {0};
    cio_datagram_transport *ut;
    CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &u, (struct sockaddr *)&ss, len, NULL, 0, 0,
                                          &ut));
    len = sizeof ss;
    CHECK_OK(cio_datagram_transport_sockname(ut, (struct sockaddr *)&ss, &len));
    CHECK_OK(cio_datagram_transport_sendto(ut, buf, n, (struct sockaddr *)&ss, len));
    CHECK_STR(u.log, "e");
    CHECK_ERR(u.last_error, -EMSGSIZE);
    CHECK_EQ(cio_datagram_transport_get_write_buffer_size(ut), 0);
    free(buf);
    CHECK_OK(cio_datagram_transport_close(t));
    CHECK_OK(cio_datagram_transport_close(ut));
    run_until_lost(loop, &r, &u);
    CHECK_STR(u.log, "eml");
    close(sv[1]);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- the write buffer ---------------------------------------------------- */

/* A Unix datagram pair whose peer does not read: the endpoint's sends
 * soon meet a full socket and are buffered. */
typedef struct bufcase {
    cio_loop *loop;
    int peer;
    rec r;
    cio_datagram_transport *t;
    int direct; /* datagrams the kernel took at once */
    int total;
} bufcase;

static void fill_until_buffered(bufcase *b, int extra) {
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
    b->peer = sv[1];
    CHECK_OK(cio_create_datagram_endpoint_from_socket(b->loop, &proto, &b->r, sv[0], &b->t));
    CHECK_OK(cio_datagram_transport_set_write_buffer_limits(b->t, 100, 20));
    spin(b->loop, 2);
    /* Numbered datagrams: the peer checks their order. */
    int seq = 0;
    while (cio_datagram_transport_get_write_buffer_size(b->t) == 0) {
        CHECK_OK(cio_datagram_transport_sendto(b->t, &seq, sizeof seq, NULL, 0));
        seq++;
        CHECK_INT(seq, <, 100000);
    }
    b->direct = seq - 1;
    CHECK_EQ(cio_datagram_transport_get_write_buffer_size(b->t), sizeof seq + 8);
    for (int i = 0; i < extra; i++) {
        CHECK_OK(cio_datagram_transport_sendto(b->t, &seq, sizeof seq, NULL, 0));
        seq++;
    }
    b->total = seq;
}

/* Reads every datagram waiting at the peer, checking they come in order
 * from *next on. */
static int drain_peer(int fd, int *next) {
    int n = 0, v;
    while (recv(fd, &v, sizeof v, MSG_DONTWAIT) == sizeof v) {
        CHECK_EQ(v, *next);
        (*next)++;
        n++;
    }
    return n;
}

TEST(write_buffer_pauses_above_high_and_resumes_at_low_in_order) {
    bufcase b = {.loop = test_loop()};
    fill_until_buffered(&b, 20);
    /* 21 datagrams of 4 bytes, 12 each as asyncio counts them: 252 > 100. */
    CHECK_EQ(cio_datagram_transport_get_write_buffer_size(b.t), 21 * 12);
    CHECK_STR(b.r.log, "mp"); /* paused once, from inside sendto */
    int next = 0;
    while (next < b.total) {
        drain_peer(b.peer, &next);
        spin(b.loop, 1);
    }
    CHECK_EQ(next, b.total);
    CHECK_EQ(cio_datagram_transport_get_write_buffer_size(b.t), 0);
    CHECK_STR(b.r.log, "mpu");
    /* Limits: low above high is refused; defaults restore asyncio's. */
    CHECK_ERR(cio_datagram_transport_set_write_buffer_limits(b.t, 10, 20), -EINVAL);
    CHECK_OK(cio_datagram_transport_set_write_buffer_limits(b.t, -1, -1));
    CHECK_OK(cio_datagram_transport_close(b.t));
    run_until_lost(b.loop, &b.r, NULL);
    close(b.peer);
    CHECK_OK(cio_loop_free(b.loop));
}

TEST(close_sends_the_buffer_first_then_connection_lost) {
    bufcase b = {.loop = test_loop()};
    fill_until_buffered(&b, 3);
    CHECK_OK(cio_datagram_transport_close(b.t));
    CHECK(cio_datagram_transport_is_closing(b.t));
    CHECK_ERR(cio_datagram_transport_sendto(b.t, "x", 1, NULL, 0), -CIO_EINVALSTATE);
    CHECK_OK(cio_datagram_transport_close(b.t)); /* again: nothing more */
    spin(b.loop, 3);
    CHECK(strchr(b.r.log, 'l') == NULL); /* still sending */
    int next = 0;
    b.r.loop = b.loop;
    while (!strchr(b.r.log, 'l')) {
        drain_peer(b.peer, &next);
        spin(b.loop, 1);
    }
    drain_peer(b.peer, &next);
    CHECK_EQ(next, b.total); /* every datagram arrived, in order */
    CHECK_EQ(b.r.lost_error, 0);
    close(b.peer);
    CHECK_OK(cio_loop_free(b.loop));
}

TEST(abort_drops_the_buffer) {
    bufcase b = {.loop = test_loop()};
    fill_until_buffered(&b, 3);
    CHECK_OK(cio_datagram_transport_abort(b.t));
    CHECK_EQ(cio_datagram_transport_get_write_buffer_size(b.t), 0);
    CHECK_ERR(cio_datagram_transport_sendto(b.t, "x", 1, NULL, 0), -CIO_EINVALSTATE);
    run_until_lost(b.loop, &b.r, NULL);
    CHECK_EQ(b.r.lost_error, 0);
    int next = 0;
    drain_peer(b.peer, &next);
    CHECK_EQ(next, b.direct); /* only what the kernel took before */
    close(b.peer);
    CHECK_OK(cio_loop_free(b.loop));
}

/* ---- the end of an endpoint ---------------------------------------------- */

TEST(loop_close_frees_open_endpoints_without_callbacks) {
    /* Three endpoints at loop close: one never started (connection_made
     * never ran), one open and reading, one closing with a buffer. The
     * close frees each and closes its socket, calling nothing (as for
     * stream transports), and nothing leaks (the sanitizers and Valgrind
     * check). */
    cio_loop *loop = test_loop();
    rec fresh = {0}, open_ = {0};
    struct sockaddr_storage ss;
    unsigned int len = loopback(V4, &ss);
    cio_datagram_transport *t1, *t2;
    CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &open_, (struct sockaddr *)&ss, len, NULL,
                                          0, 0, &t2));
    bufcase b = {.loop = loop};
    fill_until_buffered(&b, 2);
    CHECK_OK(cio_datagram_transport_close(b.t));
    CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &fresh, (struct sockaddr *)&ss, len, NULL,
                                          0, 0, &t1));
    int fd1 = cio_datagram_transport_socket(t1), fd2 = cio_datagram_transport_socket(t2),
        fd3 = cio_datagram_transport_socket(b.t);
    CHECK_STR(open_.log, "m");
    CHECK_OK(cio_loop_close(loop));
    CHECK_STR(fresh.log, "");
    CHECK_STR(open_.log, "m");
    CHECK_STR(b.r.log, "m");
    /* Their sockets are closed. */
    CHECK_EQ(fcntl(fd1, F_GETFD), -1);
    CHECK_EQ(fcntl(fd2, F_GETFD), -1);
    CHECK_EQ(fcntl(fd3, F_GETFD), -1);
    close(b.peer);
    CHECK_OK(cio_loop_free(loop));
}

/* 1: close(2) of the socket inside datagram_received, 2: cio_close. */
static int close_mode;

static void on_datagram_close_the_socket(cio_datagram_transport *t, const void *data, size_t len,
                                         const struct sockaddr *addr, unsigned int addrlen,
                                         void *ctx) {
    (void)data, (void)len, (void)addr, (void)addrlen;
    rec *r = ctx;
    note(r, 'r');
    if (++r->received > 1) return;
    int fd = cio_datagram_transport_socket(t);
    if (close_mode == 1) CHECK_OK(close(fd));
    else CHECK_OK(cio_close(fd));
}

static const cio_datagram_protocol closing_proto = {
    .connection_made = on_made,
    .datagram_received = on_datagram_close_the_socket,
    .error_received = on_error,
    .connection_lost = on_lost,
};

TEST(a_socket_closed_inside_datagram_received_ends_the_endpoint) {
    /* The rest of the read batch must not go on reading (and reporting
     * EBADF) from a number that is closed, or another file's: with
     * close(2) it did so for ever, at 100% CPU. */
    for (close_mode = 1; close_mode <= 2; close_mode++) {
        cio_loop *loop = test_loop();
        int sv[2];
        CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
        rec r = {0};
        cio_datagram_transport *t;
        CHECK_OK(cio_create_datagram_endpoint_from_socket(loop, &closing_proto, &r, sv[0], &t));
        for (int i = 0; i < 5; i++) CHECK_EQ(send(sv[1], "hi", 2, 0), 2);
        spin(loop, 50);
        CHECK_STR(r.log, "mrl");
        CHECK_ERR(r.lost_error, -EBADF);
        close(sv[1]);
        CHECK_OK(cio_loop_free(loop));
    }
}

TEST(a_length_no_datagram_can_have_is_emsgsize_buffered_or_not) {
    cio_loop *loop = test_loop();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
    rec r = {0};
    cio_datagram_transport *t;
    CHECK_OK(cio_create_datagram_endpoint_from_socket(loop, &proto, &r, sv[0], &t));
    spin(loop, 2);
    static const char byte = 'x';
    /* Nothing buffered: the kernel's answer, through error_received. */
    CHECK_OK(cio_datagram_transport_sendto(t, &byte, SIZE_MAX - 16, NULL, 0));
    CHECK_EQ(r.errors, 1);
    CHECK_ERR(r.last_error, -EMSGSIZE);
    /* Something buffered (the peer reads nothing): the same answer, and
     * the buffer's count does not wrap (it made a tiny allocation and
     * copied SIZE_MAX bytes into it). */
    char chunk[1024] = {0};
    for (int i = 0; i < 100000 && cio_datagram_transport_get_write_buffer_size(t) == 0; i++)
        CHECK_OK(cio_datagram_transport_sendto(t, chunk, sizeof chunk, NULL, 0));
    size_t buffered = cio_datagram_transport_get_write_buffer_size(t);
    CHECK(buffered > 0);
    CHECK_OK(cio_datagram_transport_sendto(t, &byte, SIZE_MAX - 16, NULL, 0));
    CHECK_EQ(r.errors, 2);
    CHECK_ERR(r.last_error, -EMSGSIZE);
    CHECK_EQ(cio_datagram_transport_get_write_buffer_size(t), buffered);
    CHECK_OK(cio_datagram_transport_abort(t));
    run_until_lost(loop, &r, NULL);
    close(sv[1]);
    CHECK_OK(cio_loop_free(loop));
}

TEST(cio_close_of_the_socket_ends_the_endpoint_with_ebadf) {
    cio_loop *loop = test_loop();
    struct sockaddr_storage ss;
    unsigned int len = loopback(V4, &ss);
    rec r = {0};
    cio_datagram_transport *t;
    CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &r, (struct sockaddr *)&ss, len, NULL, 0, 0,
                                          &t));
    spin(loop, 2);
    int fd = cio_datagram_transport_socket(t);
    /* The socket is the transport's: no watcher of the program on it. */
    CHECK_ERR(cio_add_reader(loop, fd, stop_cb, NULL), -EBUSY);
    CHECK_OK(cio_close(fd));
    /* A new descriptor takes the number: the endpoint must not close it. */
    int other = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(other, fd);
    run_until_lost(loop, &r, NULL);
    CHECK_STR(r.log, "ml");
    CHECK_ERR(r.lost_error, -EBADF);
    CHECK(fcntl(other, F_GETFD) >= 0);
    close(other);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- fairness ------------------------------------------------------------ */

static int seen_at_marker = -1;

static void marker(cio_loop *loop, void *arg) {
    (void)loop;
    seen_at_marker = ((rec *)arg)->received;
}

static void count_datagram(cio_datagram_transport *t, const void *data, size_t len,
                           const struct sockaddr *addr, unsigned int addrlen, void *ctx) {
    (void)t, (void)data, (void)len, (void)addr, (void)addrlen;
    rec *r = ctx;
    if (++r->received == 1) CHECK_OK(cio_call_soon(r->loop, marker, r, NULL));
}

TEST(reading_is_bounded_per_iteration) {
    /* 100 datagrams wait before the loop looks: it reads a bounded batch,
     * then lets the other callbacks run (the marker, queued at the first
     * datagram, runs before the rest are read), then reads on. */
    cio_loop *loop = test_loop();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
    int big = 1 << 20;
    CHECK_OK(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big));
    CHECK_OK(setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big));
    for (int i = 0; i < 100; i++) CHECK_EQ(send(sv[1], "d", 1, 0), 1);
    rec r = {.loop = loop};
    cio_datagram_protocol p = {.datagram_received = count_datagram};
    cio_datagram_transport *t;
    CHECK_OK(cio_create_datagram_endpoint_from_socket(loop, &p, &r, sv[0], &t));
    for (int i = 0; i < 100 && r.received < 100; i++) spin(loop, 1);
    CHECK_EQ(r.received, 100);
    CHECK_INT(seen_at_marker, >, 0);
    CHECK_INT(seen_at_marker, <, 100);
    CHECK_OK(cio_datagram_transport_abort(t));
    spin(loop, 2);
    close(sv[1]);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- options, context, bad input ----------------------------------------- */

TEST(reuse_port_lets_two_endpoints_share_a_port) {
    cio_loop *loop = test_loop();
    struct sockaddr_storage ss;
    unsigned int len = loopback(V4, &ss);
    rec a = {0}, b = {0}, c = {0};
    cio_datagram_transport *ta, *tb, *tc;
    CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &a, (struct sockaddr *)&ss, len, NULL, 0,
                                          CIO_DATAGRAM_REUSE_PORT | CIO_DATAGRAM_ALLOW_BROADCAST,
                                          &ta));
    CHECK_OK(cio_datagram_transport_sockname(ta, (struct sockaddr *)&ss, &len));
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &c, (struct sockaddr *)&ss, len, NULL, 0,
                                           0, &tc),
              -EADDRINUSE);
    CHECK(tc == NULL);
    CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &b, (struct sockaddr *)&ss, len, NULL, 0,
                                          CIO_DATAGRAM_REUSE_PORT, &tb));
    int on = 0;
    socklen_t olen = sizeof on;
    CHECK_OK(getsockopt(cio_datagram_transport_socket(ta), SOL_SOCKET, SO_BROADCAST, &on, &olen));
    CHECK(on);
    CHECK_OK(cio_datagram_transport_close(ta));
    CHECK_OK(cio_datagram_transport_close(tb));
    run_until_lost(loop, &a, &b);
    CHECK_EQ(c.n, 0); /* a failed create calls no callback */
    CHECK_OK(cio_loop_free(loop));
}

TEST(set_context_changes_what_the_callbacks_get) {
    cio_loop *loop = test_loop();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
    rec first = {0}, second = {0};
    cio_datagram_transport *t;
    CHECK_OK(cio_create_datagram_endpoint_from_socket(loop, &proto, &first, sv[0], &t));
    CHECK(cio_datagram_transport_context(t) == &first);
    spin(loop, 2);
    CHECK_OK(cio_datagram_transport_set_context(t, &second));
    CHECK(cio_datagram_transport_context(t) == &second);
    second.t = t;
    CHECK_EQ(send(sv[1], "hi", 2, 0), 2);
    for (int i = 0; i < 200 && second.received == 0; i++) run_for(loop, 0.005);
    CHECK_STR(first.log, "m");
    CHECK_STR(second.log, "r");
    /* A socketpair's peer is unnamed: no address. */
    CHECK_EQ(second.fromlen, 0);
    CHECK_OK(cio_datagram_transport_abort(t));
    run_until_lost(loop, &second, NULL);
    CHECK_STR(second.log, "rl");
    close(sv[1]);
    CHECK_OK(cio_loop_free(loop));
}

typedef struct foreign_set_context {
    cio_datagram_transport *t;
    void *ctx;
    int rc;
} foreign_set_context;

static void *set_context_from_a_foreign_thread(void *arg) {
    foreign_set_context *f = arg;
    f->rc = cio_datagram_transport_set_context(f->t, f->ctx);
    return NULL;
}

TEST(debug_mode_refuses_set_context_from_a_foreign_thread) {
    cio_loop_options opts = {.debug = 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
    rec first = {0}, second = {0};
    cio_datagram_transport *t;
    CHECK_OK(cio_create_datagram_endpoint_from_socket(loop, &proto, &first, sv[0], &t));
    spin(loop, 2);
    foreign_set_context f = {.t = t, .ctx = &second};
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, set_context_from_a_foreign_thread, &f));
    CHECK_OK(pthread_join(th, NULL));
    CHECK_EQ(f.rc, -CIO_EWRONGTHREAD);
    /* The callbacks still get the first context. */
    CHECK(cio_datagram_transport_context(t) == &first);
    first.t = t;
    CHECK_EQ(send(sv[1], "hi", 2, 0), 2);
    for (int i = 0; i < 200 && first.received == 0; i++) run_for(loop, 0.005);
    CHECK_STR(first.log, "mr");
    CHECK_STR(second.log, "");
    CHECK_OK(cio_datagram_transport_abort(t));
    run_until_lost(loop, &first, NULL);
    close(sv[1]);
    CHECK_OK(cio_loop_free(loop));
}

TEST(bad_input_is_an_error_never_a_crash) {
    cio_loop *loop = test_loop();
    struct sockaddr_storage ss;
    unsigned int len = loopback(V4, &ss);
    struct sockaddr *sa = (struct sockaddr *)&ss;
    rec r = {0};
    cio_datagram_transport *t = (cio_datagram_transport *)&r;
    CHECK_ERR(cio_create_datagram_endpoint(NULL, &proto, &r, sa, len, NULL, 0, 0, &t), -EINVAL);
    CHECK(t == NULL);
    CHECK_ERR(cio_create_datagram_endpoint(loop, NULL, &r, sa, len, NULL, 0, 0, &t), -EINVAL);
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &r, sa, len, NULL, 0, 0, NULL), -EINVAL);
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &r, NULL, 0, NULL, 0, 0, &t), -EINVAL);
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &r, sa, 0, NULL, 0, 0, &t), -EINVAL);
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &r, sa, 100000, NULL, 0, 0, &t), -EINVAL);
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &r, NULL, 8, sa, len, 0, &t), -EINVAL);
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &r, sa, len, NULL, 0, 0x80, &t), -EINVAL);
    struct sockaddr_storage s6;
    unsigned int len6 = loopback(V6, &s6);
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &r, sa, len, (struct sockaddr *)&s6, len6,
                                           0, &t),
              -EINVAL);
    struct sockaddr other = {.sa_family = AF_APPLETALK};
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &r, &other, sizeof other, NULL, 0, 0, &t),
              -EAFNOSUPPORT);
    /* A remote nobody is bound to (a Unix name): connect's own error. */
    struct sockaddr_storage nobody;
    unsigned int nlen = loopback(UNIX_, &nobody);
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &r, NULL, 0, (struct sockaddr *)&nobody,
                                           nlen, 0, &t),
              -ECONNREFUSED);
    /* from_socket */
    CHECK_ERR(cio_create_datagram_endpoint_from_socket(loop, &proto, &r, -1, &t), -EBADF);
    CHECK_ERR(cio_create_datagram_endpoint_from_socket(NULL, &proto, &r, 0, &t), -EINVAL);
    int stream = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_ERR(cio_create_datagram_endpoint_from_socket(loop, &proto, &r, stream, &t), -EINVAL);
    CHECK(fcntl(stream, F_GETFD) >= 0); /* still the program's */
    close(stream);
    int fds[2];
    CHECK_OK(pipe2(fds, O_CLOEXEC));
    CHECK_ERR(cio_create_datagram_endpoint_from_socket(loop, &proto, &r, fds[0], &t), -ENOTSOCK);
    close(fds[0]);
    close(fds[1]);
    CHECK_EQ(r.n, 0);
    /* The transport's calls */
    CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &r, sa, len, NULL, 0, 0, &t));
    CHECK_ERR(cio_datagram_transport_sendto(t, "x", 1, NULL, 0), -EDESTADDRREQ);
    CHECK_ERR(cio_datagram_transport_sendto(t, NULL, 1, sa, len), -EINVAL);
    CHECK_ERR(cio_datagram_transport_sendto(t, "x", 1, sa, 0), -EINVAL);
    CHECK_ERR(cio_datagram_transport_sendto(t, "x", 1, NULL, 4), -EINVAL);
    unsigned int small = 1;
    CHECK_ERR(cio_datagram_transport_sockname(t, NULL, &small), -EINVAL);
    CHECK_ERR(cio_datagram_transport_peername(t, sa, NULL), -EINVAL);
    CHECK_ERR(cio_datagram_transport_set_write_buffer_limits(t, 1, 2), -EINVAL);
    cio_datagram_transport *ct;
    CHECK_OK(cio_datagram_transport_sockname(t, sa, &len));
    rec cr = {0};
    CHECK_OK(cio_create_datagram_endpoint(loop, &proto, &cr, NULL, 0, sa, len, 0, &ct));
    struct sockaddr_in elsewhere = *(struct sockaddr_in *)sa;
    elsewhere.sin_port = htons(ntohs(elsewhere.sin_port) ^ 1);
    CHECK_ERR(cio_datagram_transport_sendto(ct, "x", 1, (struct sockaddr *)&elsewhere,
                                            sizeof elsewhere),
              -EINVAL);
    /* NULL transports */
    CHECK_ERR(cio_datagram_transport_sendto(NULL, "x", 1, NULL, 0), -EINVAL);
    CHECK_ERR(cio_datagram_transport_close(NULL), -EINVAL);
    CHECK_ERR(cio_datagram_transport_abort(NULL), -EINVAL);
    CHECK_EQ(cio_datagram_transport_is_closing(NULL), 0);
    CHECK_EQ(cio_datagram_transport_get_write_buffer_size(NULL), 0);
    CHECK_ERR(cio_datagram_transport_set_write_buffer_limits(NULL, 1, 1), -EINVAL);
    CHECK_ERR(cio_datagram_transport_sockname(NULL, sa, &len), -EINVAL);
    CHECK_ERR(cio_datagram_transport_peername(NULL, sa, &len), -EINVAL);
    CHECK_ERR(cio_datagram_transport_socket(NULL), -EINVAL);
    CHECK(cio_datagram_transport_context(NULL) == NULL);
    CHECK_ERR(cio_datagram_transport_set_context(NULL, NULL), -EINVAL);
    CHECK_OK(cio_datagram_transport_close(t));
    CHECK_OK(cio_datagram_transport_close(ct));
    run_until_lost(loop, &r, &cr);
    /* A closed loop takes no new endpoint. */
    CHECK_OK(cio_loop_close(loop));
    CHECK_ERR(cio_create_datagram_endpoint(loop, &proto, &r, sa, len, NULL, 0, 0, &t),
              -CIO_ELOOPCLOSED);
    CHECK_OK(cio_loop_free(loop));
}

static void never_cb(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
}

TEST(a_socket_the_program_watches_ends_the_endpoint_with_ebusy) {
    /* The transport takes its socket over; a watcher of the program on it
     * (asyncio: "File descriptor is used by transport") makes the
     * endpoint end at once, after connection_made, with -EBUSY. */
    cio_loop *loop = test_loop();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    CHECK_OK(cio_add_reader(loop, sv[0], never_cb, NULL));
    rec r = {0};
    cio_datagram_transport *t;
    CHECK_OK(cio_create_datagram_endpoint_from_socket(loop, &proto, &r, sv[0], &t));
    run_until_lost(loop, &r, NULL);
    CHECK_STR(r.log, "ml");
    CHECK_ERR(r.lost_error, -EBUSY);
    /* The endpoint closed the socket (cio_close, which also removed the
     * watcher). */
    CHECK_EQ(cio_remove_reader(loop, sv[0]), 0);
    close(sv[1]);
    CHECK_OK(cio_loop_free(loop));
}

#include "base/fault.h"

TEST(allocation_failures_are_enomem_and_change_nothing) {
    cio_loop *loop = test_loop();
    struct sockaddr_storage ss;
    unsigned int len = loopback(V4, &ss);
    /* Create: each fallible step in turn fails, until none does. */
    int failures = 0;
    for (int64_t nth = 1;; nth++) {
        rec r = {0};
        cio_datagram_transport *t = (cio_datagram_transport *)&r;
        cio__fault_arm(nth);
        int rc = cio_create_datagram_endpoint(loop, &proto, &r, (struct sockaddr *)&ss, len, NULL,
                                              0, 0, &t);
        cio__fault_arm(0);
        if (rc == 0) {
            CHECK_OK(cio_datagram_transport_close(t));
            run_until_lost(loop, &r, NULL);
            break;
        }
        failures++;
        CHECK(rc == -ENOMEM || rc == -EMFILE);
        CHECK(t == NULL);
        CHECK_INT(nth, <, 50);
        spin(loop, 1);
        CHECK_EQ(r.n, 0); /* no callback of a create that failed */
    }
    CHECK_INT(failures, >, 0);
    /* sendto: with datagrams buffered, a copy that cannot be made is
     * -ENOMEM and buffers nothing. */
    bufcase b = {.loop = loop};
    fill_until_buffered(&b, 0);
    size_t before = cio_datagram_transport_get_write_buffer_size(b.t);
    cio__fault_arm(1);
    int seq = -1;
    CHECK_ERR(cio_datagram_transport_sendto(b.t, &seq, sizeof seq, NULL, 0), -ENOMEM);
    cio__fault_arm(0);
    CHECK_EQ(cio_datagram_transport_get_write_buffer_size(b.t), before);
    /* Everything else still arrives, in order, and nothing leaks. */
    CHECK_OK(cio_datagram_transport_close(b.t));
    int next = 0;
    while (!strchr(b.r.log, 'l')) {
        drain_peer(b.peer, &next);
        spin(loop, 1);
    }
    drain_peer(b.peer, &next);
    CHECK_EQ(next, b.total);
    close(b.peer);
    CHECK_OK(cio_loop_free(loop));
}
