/*
 * Transports, protocols and servers (asyncio's create_connection,
 * create_server and their Unix forms): callback order, flow control,
 * half-close, close and abort, lifetimes, and trouble (peer resets, running
 * out of descriptors at accept, a descriptor closed under a transport).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "test.h"
#include "base/fault.h"
#include "net/net.h"

/* A protocol that records what happens to one connection. */
typedef struct rec {
    char log[256];          /* one letter per callback: m d e l p r */
    char *data;             /* everything received */
    size_t len, cap;
    int lost_error;
    int keep_open;          /* eof_received's answer */
    int echo;               /* write back what arrives */
    int close_on_eof;       /* close the transport after eof (when keep_open) */
    const char *reply_on_eof;
    cio_transport *t;
    int write_after_lost;   /* what a write inside connection_lost returned */
    size_t want;            /* got_n's target */
} rec;

static void note(rec *r, char c) {
    size_t n = strlen(r->log);
    if (n + 1 < sizeof r->log) r->log[n] = c;
}

static void made(cio_transport *t, void *ctx) {
    rec *r = ctx;
    r->t = t;
    note(r, 'm');
}

static void received(cio_transport *t, const void *data, size_t len, void *ctx) {
    rec *r = ctx;
    if (r->log[strlen(r->log) - 1] != 'd') note(r, 'd');
    if (r->len + len > r->cap) {
        r->cap = (r->len + len) * 2;
        r->data = realloc(r->data, r->cap);
        CHECK(r->data);
    }
    memcpy(r->data + r->len, data, len);
    r->len += len;
    if (r->echo) CHECK_OK(cio_transport_write(t, data, len));
}

static int eof(cio_transport *t, void *ctx) {
    rec *r = ctx;
    note(r, 'e');
    if (r->reply_on_eof) CHECK_OK(cio_transport_write(t, r->reply_on_eof, strlen(r->reply_on_eof)));
    if (r->close_on_eof) CHECK_OK(cio_transport_close(t));
    return r->keep_open;
}

static void lost(cio_transport *t, int error, void *ctx) {
    rec *r = ctx;
    note(r, 'l');
    r->lost_error = error;
    r->write_after_lost = cio_transport_write(t, "x", 1);
    r->t = NULL;
}

static void paused(cio_transport *t, void *ctx) {
    (void)t;
    note(ctx, 'p');
}

static void resumed(cio_transport *t, void *ctx) {
    (void)t;
    note(ctx, 'r');
}

static const cio_protocol recorder = {
    .connection_made = made,
    .data_received = received,
    .eof_received = eof,
    .connection_lost = lost,
    .pause_writing = paused,
    .resume_writing = resumed,
};

/* Server side: a rec per connection, taken from a small pool. */
typedef struct pool {
    rec conns[8];
    int n;
    rec proto;              /* the settings every connection copies */
} pool;

static void pool_made(cio_transport *t, void *ctx) {
    pool *p = ctx;
    CHECK(p->n < 8);
    rec *r = &p->conns[p->n++];
    *r = p->proto;
    r->data = NULL;
    CHECK_OK(cio_transport_set_context(t, r));
    CHECK(cio_transport_context(t) == r);
    made(t, r);
}

static const cio_protocol server_recorder = {
    .connection_made = pool_made,
    .data_received = received,
    .eof_received = eof,
    .connection_lost = lost,
    .pause_writing = paused,
    .resume_writing = resumed,
};

static void pool_free(pool *p) {
    for (int i = 0; i < p->n; i++) free(p->conns[i].data);
}

static int server_port(cio_server *s) {
    int fd;
    CHECK_EQ(cio_server_sockets(s, &fd, 1), 1);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&ss, &len));
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

typedef struct waiting {
    int (*cond)(void *);
    void *arg;
} waiting;

static void *poll_cond(void *arg) {
    waiting *w = arg;
    for (int i = 0; i < 5000 && !w->cond(w->arg); i++) CHECK_OK(cio_sleep(0.001));
    return NULL;
}

/* Runs the loop until cond(arg) or five seconds pass. */
static void run_until(cio_loop *loop, int (*cond)(void *), void *arg) {
    waiting w = {cond, arg};
    CHECK_OK(test_run(loop, poll_cond, &w, NULL));
    CHECK(cond(arg));
}

static void stop_loop(cio_loop *loop, void *arg) {
    (void)arg;
    cio_loop_stop(loop);
}

static void run_for(cio_loop *loop, double seconds) {
    CHECK_OK(cio_call_later(loop, seconds, stop_loop, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
}

static int lost_cond(void *arg) {
    return strchr(((rec *)arg)->log, 'l') != NULL;
}

typedef struct connect_args {
    const char *host;
    char port[16];
    const char *path;
    rec *r;
    int rc;
} connect_args;

static void *do_connect(void *arg) {
    connect_args *a = arg;
    cio_transport *t = NULL;
    a->rc = a->path ? cio_create_unix_connection(cio_running_loop(), &recorder, a->r, a->path, &t)
                    : cio_create_connection(cio_running_loop(), &recorder, a->r, a->host, a->port,
                                            &t);
    if (a->rc == 0) {
        /* connection_made ran before the call returned. */
        CHECK_STR(a->r->log, "m");
        CHECK(a->r->t == t);
    }
    return NULL;
}

static void connect_client(cio_loop *loop, connect_args *a) {
    CHECK_OK(test_run(loop, do_connect, a, NULL));
}

/* A server on a free loopback port, and a client connected to it. */
static cio_server *serve_and_connect(cio_loop *loop, pool *p, rec *client) {
    cio_server *s;
    CHECK_OK(cio_create_server(loop, &server_recorder, p, "127.0.0.1", "0", NULL, &s));
    connect_args a = {.host = "127.0.0.1", .r = client};
    snprintf(a.port, sizeof a.port, "%d", server_port(s));
    connect_client(loop, &a);
    CHECK_OK(a.rc);
    return s;
}

static int all_received(void *arg) {
    rec *r = arg;
    return r->len >= 5;
}

static int all_received_2(void *arg) {
    rec *r = arg;
    return r->len >= 2;
}

static int n_conns_1(void *arg) {
    pool *p = arg;
    return p->n >= 1;
}

static void echo_round_trip(const char *host, const char *path) {
    cio_loop *loop = test_loop();
    pool p = {.proto = {.echo = 1}};
    cio_server *s;
    if (path)
        CHECK_OK(cio_create_unix_server(loop, &server_recorder, &p, path, NULL, &s));
    else
        CHECK_OK(cio_create_server(loop, &server_recorder, &p, host, "0", NULL, &s));
    CHECK_EQ(cio_server_is_serving(s), 1);
    rec client = {0};
    connect_args a = {.host = host, .path = path, .r = &client};
    if (!path) snprintf(a.port, sizeof a.port, "%d", server_port(s));
    connect_client(loop, &a);
    CHECK_OK(a.rc);
    CHECK_OK(cio_transport_write(client.t, "hello", 5));
    run_until(loop, all_received, &client);
    CHECK_EQ(client.len, 5);
    CHECK(memcmp(client.data, "hello", 5) == 0);
    CHECK_EQ(p.n, 1);
    CHECK_STR(p.conns[0].log, "md");
    /* Names and the socket. */
    struct sockaddr_storage ss;
    unsigned int len = sizeof ss;
    CHECK_OK(cio_transport_peername(client.t, (struct sockaddr *)&ss, &len));
    CHECK(len > 0);
    len = sizeof ss;
    CHECK_OK(cio_transport_sockname(client.t, (struct sockaddr *)&ss, &len));
    CHECK(cio_transport_socket(client.t) >= 0);
    CHECK(cio_transport_loop(client.t) == loop);
    CHECK_EQ(cio_transport_is_reading(client.t), 1);
    /* A clean close: the server sees end of stream (its protocol does not
     * keep the transport open), both see connection_lost(0). */
    CHECK_OK(cio_transport_close(client.t));
    CHECK_EQ(client.t ? cio_transport_is_closing(client.t) : 1, 1);
    run_until(loop, lost_cond, &client);
    run_until(loop, lost_cond, &p.conns[0]);
    CHECK_STR(client.log, "mdl");
    CHECK_EQ(client.lost_error, 0);
    CHECK_ERR(client.write_after_lost, -EPIPE);
    CHECK_STR(p.conns[0].log, "mdel");
    CHECK_EQ(p.conns[0].lost_error, 0);
    CHECK_OK(cio_server_close(s));
    CHECK_EQ(cio_server_is_serving(s), 0);
    CHECK_EQ(cio_server_sockets(s, NULL, 0), 0);
    CHECK_OK(cio_server_free(s));
    free(client.data);
    pool_free(&p);
    cio_loop_free(loop);
}

/* asyncio's create_server(host='') listens on every interface, as a NULL
 * host does (test_base_events: test_create_server_empty_host). */
TEST(an_empty_host_listens_on_every_interface) {
    cio_loop *loop = test_loop();
    cio_server *all, *empty;
    CHECK_OK(cio_create_server(loop, &server_recorder, NULL, NULL, "0", NULL, &all));
    CHECK_OK(cio_create_server(loop, &server_recorder, NULL, "", "0", NULL, &empty));
    int n = cio_server_sockets(all, NULL, 0);
    CHECK(n >= 1);
    CHECK_EQ(cio_server_sockets(empty, NULL, 0), n);
    int fd;
    CHECK_EQ(cio_server_sockets(empty, &fd, 1), n);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&ss, &len));
    if (ss.ss_family == AF_INET)
        CHECK_EQ(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_ANY));
    else
        CHECK(IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr));
    CHECK_OK(cio_server_free(all));
    CHECK_OK(cio_server_free(empty));
    cio_loop_free(loop);
}

TEST(echo_over_ipv4) {
    echo_round_trip("127.0.0.1", NULL);
}

TEST(echo_over_ipv6) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    if (!ok) SKIP("no IPv6 loopback");
    echo_round_trip("::1", NULL);
}

TEST(echo_over_a_unix_socket_path) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/cio-test-%d.sock", (int)getpid());
    echo_round_trip(NULL, path);
    /* Closing the server removed its socket file. */
    CHECK(access(path, F_OK) != 0);
}

TEST(echo_over_an_abstract_unix_socket) {
    char path[64];
    snprintf(path, sizeof path, "@cio-test-%d", (int)getpid());
    echo_round_trip(NULL, path);
}

/* A Unix server's close removes its socket file only if the file at the
 * path is still that socket (asyncio 3.13 compares the inode): a second
 * server that took the path, or a file the program put there, stays. */
TEST(closing_a_unix_server_removes_only_its_own_socket_file) {
    cio_loop *loop = test_loop();
    char path[64];
    snprintf(path, sizeof path, "/tmp/cio-test-own-%d.sock", (int)getpid());
    rec r = {0};
    cio_server *a, *b;
    CHECK_OK(cio_create_unix_server(loop, &recorder, &r, path, NULL, &a));
    /* B takes the path: its bind replaces A's file, which looks stale. */
    CHECK_OK(unlink(path));
    CHECK_OK(cio_create_unix_server(loop, &recorder, &r, path, NULL, &b));
    CHECK_OK(cio_server_free(a));
    CHECK(access(path, F_OK) == 0); /* still B's */
    CHECK_OK(cio_server_free(b));
    CHECK(access(path, F_OK) != 0);
    /* A regular file put where the socket was is the program's. */
    CHECK_OK(cio_create_unix_server(loop, &recorder, &r, path, NULL, &a));
    CHECK_OK(unlink(path));
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("keep me", f);
    fclose(f);
    CHECK_OK(cio_server_free(a));
    CHECK(access(path, F_OK) == 0);
    CHECK_OK(unlink(path));
    cio_loop_free(loop);
}

static void *serve_then_return(void *arg) {
    char *path = arg;
    rec r = {0};
    cio_server *s;
    CHECK_OK(cio_create_unix_server(cio_running_loop(), &recorder, &r, path, NULL, &s));
    CHECK_OK(cio_sleep(0));
    return s;
}

TEST(a_unix_server_left_open_when_its_loop_closes_removes_its_file) {
    /* The loop's close ends the serving; the file goes then (as asyncio's
     * close after the loop ended), and nothing leaks (LeakSanitizer). */
    char path[64];
    snprintf(path, sizeof path, "/tmp/cio-test-gone-%d.sock", (int)getpid());
    cio_loop *loop = test_loop();
    void *s = NULL;
    CHECK_OK(test_run(loop, serve_then_return, path, &s));
    CHECK(access(path, F_OK) == 0);
    CHECK_OK(cio_loop_close(loop));
    CHECK(access(path, F_OK) != 0);
    CHECK_OK(cio_server_close(s));
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

TEST(an_abstract_name_may_fill_the_whole_socket_address) {
    /* 108 bytes of sun_path: the leading NUL ('@') and 107 more. A path
     * needs its terminating NUL, so 107 characters are its most. */
    char name[110];
    int n = snprintf(name, sizeof name, "@cio-%d-", (int)getpid());
    memset(name + n, 'x', 108 - (size_t)n);
    name[108] = '\0';
    cio_loop *loop = test_loop();
    rec r = {0};
    cio_server *s;
    CHECK_OK(cio_create_unix_server(loop, &recorder, &r, name, NULL, &s));
    CHECK_OK(cio_server_free(s));
    name[108] = 'x';
    name[109] = '\0';
    CHECK_ERR(cio_create_unix_server(loop, &recorder, &r, name, NULL, &s), -ENAMETOOLONG);
    char path[110];
    memset(path, 'p', 108);
    path[0] = '/';
    path[108] = '\0';
    CHECK_ERR(cio_create_unix_server(loop, &recorder, &r, path, NULL, &s), -ENAMETOOLONG);
    cio_loop_free(loop);
}

static int got_n(void *arg) {
    rec *r = arg;
    return r->len >= r->want;
}

TEST(eight_mebibytes_arrive_intact_in_order) {
    cio_loop *loop = test_loop();
    pool p = {.proto = {.echo = 1}};
    rec client = {0};
    cio_server *s = serve_and_connect(loop, &p, &client);
    size_t total = 8u << 20;
    unsigned char *buf = malloc(total);
    for (size_t i = 0; i < total; i++) buf[i] = (unsigned char)(i * 7 + i / 251);
    /* Several writes, some through writelines. */
    size_t chunk = total / 4;
    CHECK_OK(cio_transport_write(client.t, buf, chunk));
    struct iovec iov[3] = {{buf + chunk, chunk}, {buf + 2 * chunk, chunk}, {buf + 3 * chunk, chunk}};
    CHECK_OK(cio_transport_writelines(client.t, iov, 3));
    client.want = total;
    run_until(loop, got_n, &client);
    CHECK_EQ(client.len, total);
    CHECK(memcmp(client.data, buf, total) == 0);
    CHECK_OK(cio_transport_abort(client.t));
    run_until(loop, lost_cond, &client);
    CHECK_OK(cio_server_free(s));
    free(buf);
    free(client.data);
    pool_free(&p);
    cio_loop_free(loop);
}

static int eof_seen(void *arg) {
    return strchr(((rec *)arg)->log, 'e') != NULL;
}

TEST(half_close_keeps_the_other_direction_open) {
    /* The client shuts down its sending side; the server's protocol keeps
     * its transport open, answers, then closes; the client reads the
     * answer and then end of stream. */
    cio_loop *loop = test_loop();
    pool p = {.proto = {.keep_open = 1, .reply_on_eof = "bye", .close_on_eof = 1}};
    rec client = {.keep_open = 1};
    cio_server *s = serve_and_connect(loop, &p, &client);
    CHECK_EQ(cio_transport_can_write_eof(client.t), 1);
    CHECK_OK(cio_transport_write(client.t, "hi", 2));
    CHECK_OK(cio_transport_write_eof(client.t));
    CHECK_ERR(cio_transport_write(client.t, "more", 4), -CIO_EINVALSTATE);
    run_until(loop, eof_seen, &client);
    CHECK_EQ(client.len, 3);
    CHECK(memcmp(client.data, "bye", 3) == 0);
    CHECK_STR(p.conns[0].log, "mdel");
    CHECK_EQ(p.conns[0].len, 2);
    /* The client kept its transport open after eof: close it. */
    CHECK_OK(cio_transport_close(client.t));
    run_until(loop, lost_cond, &client);
    CHECK_STR(client.log, "mdel");
    CHECK_OK(cio_server_free(s));
    free(client.data);
    pool_free(&p);
    cio_loop_free(loop);
}

static int paused_cond(void *arg) {
    return strchr(((rec *)arg)->log, 'p') != NULL;
}

static int resumed_cond(void *arg) {
    return strchr(((rec *)arg)->log, 'r') != NULL;
}

TEST(flow_control_pauses_and_resumes_writing) {
    /* The server's reader pauses reading; the client writes far more than
     * the socket buffers hold: pause_writing comes once the buffer passes
     * the high-water mark, resume_writing once the peer reads it down. */
    cio_loop *loop = test_loop();
    pool p = {0};
    rec client = {0};
    cio_server *s = serve_and_connect(loop, &p, &client);
    run_for(loop, 0.01);
    CHECK_EQ(p.n, 1);
    CHECK_OK(cio_transport_pause_reading(p.conns[0].t));
    CHECK_EQ(cio_transport_is_reading(p.conns[0].t), 0);
    CHECK_ERR(cio_transport_set_write_buffer_limits(client.t, 1000, 2000), -EINVAL);
    size_t lo, hi;
    /* asyncio's defaults and rules: None (negative) for high is 64 KiB, or
     * 4 * low when low is given; high 0 is 0; 4 * low saturates. */
    CHECK_OK(cio_transport_set_write_buffer_limits(client.t, -1, -1));
    CHECK_OK(cio_transport_get_write_buffer_limits(client.t, &lo, &hi));
    CHECK(hi == 64 * 1024 && lo == 16 * 1024);
    CHECK_OK(cio_transport_set_write_buffer_limits(client.t, -1, 100));
    CHECK_OK(cio_transport_get_write_buffer_limits(client.t, &lo, &hi));
    CHECK(hi == 400 && lo == 100);
    CHECK_OK(cio_transport_set_write_buffer_limits(client.t, 0, -1));
    CHECK_OK(cio_transport_get_write_buffer_limits(client.t, &lo, &hi));
    CHECK(hi == 0 && lo == 0);
    CHECK_OK(cio_transport_set_write_buffer_limits(client.t, -1, (ssize_t)1 << 62));
    CHECK_OK(cio_transport_get_write_buffer_limits(client.t, &lo, &hi));
    CHECK(hi == SIZE_MAX && lo == (size_t)1 << 62);
    CHECK_OK(cio_transport_set_write_buffer_limits(client.t, 128 * 1024, -1));
    CHECK_OK(cio_transport_get_write_buffer_limits(client.t, &lo, &hi));
    CHECK_EQ(hi, 128 * 1024);
    CHECK_EQ(lo, 32 * 1024);
    size_t total = 16u << 20;
    char *buf = calloc(1, total);
    CHECK_OK(cio_transport_write(client.t, buf, total));
    CHECK(cio_transport_get_write_buffer_size(client.t) > 128 * 1024);
    CHECK(paused_cond(&client));
    /* As asyncio's: raising the limits above what is buffered does not
     * call resume_writing from inside the call (only a drain does), and
     * lowering them again does not pause a second time. */
    CHECK_OK(cio_transport_set_write_buffer_limits(client.t, 64 << 20, -1));
    CHECK_STR(client.log, "mp");
    CHECK_OK(cio_transport_set_write_buffer_limits(client.t, 128 * 1024, -1));
    CHECK_STR(client.log, "mp");
    /* Nothing more moves while the reader is paused. */
    run_for(loop, 20 * 0.001);
    CHECK_EQ(p.conns[0].len, 0);
    CHECK(!resumed_cond(&client));
    CHECK_OK(cio_transport_resume_reading(p.conns[0].t));
    run_until(loop, resumed_cond, &client);
    rec *srv = &p.conns[0];
    srv->want = total;
    run_until(loop, got_n, srv);
    CHECK_EQ(srv->len, total);
    CHECK_EQ(cio_transport_get_write_buffer_size(client.t), 0);
    CHECK_STR(client.log, "mpr");
    CHECK_OK(cio_transport_abort(client.t));
    run_until(loop, lost_cond, &client);
    CHECK_OK(cio_server_free(s));
    free(buf);
    free(client.data);
    pool_free(&p);
    cio_loop_free(loop);
}

TEST(close_flushes_the_buffer_first_and_abort_drops_it) {
    cio_loop *loop = test_loop();
    pool p = {0};
    cio_server *s;
    CHECK_OK(cio_create_server(loop, &server_recorder, &p, "127.0.0.1", "0", NULL, &s));
    rec c1 = {0}, c2 = {0};
    connect_args a = {.host = "127.0.0.1", .r = &c1};
    snprintf(a.port, sizeof a.port, "%d", server_port(s));
    connect_client(loop, &a);
    a.r = &c2;
    connect_client(loop, &a);
    size_t total = 4u << 20;
    char *buf = calloc(1, total);
    CHECK_OK(cio_transport_write(c1.t, buf, total));
    CHECK_OK(cio_transport_close(c1.t));
    CHECK_OK(cio_transport_close(c1.t)); /* a second close does nothing */
    CHECK_ERR(cio_transport_write(c1.t, "x", 1), -CIO_EINVALSTATE);
    run_until(loop, lost_cond, &p.conns[0]);
    CHECK_EQ(p.conns[0].len, total); /* every byte before the end */
    CHECK_STR(c1.log, "mprl"); /* the 4 MiB passed the high-water mark */
    /* abort: connection_lost(0) at once, the buffer dropped. */
    CHECK_OK(cio_transport_write(c2.t, buf, total));
    CHECK_OK(cio_transport_abort(c2.t));
    run_until(loop, lost_cond, &c2);
    CHECK_EQ(c2.lost_error, 0);
    run_until(loop, lost_cond, &p.conns[1]);
    CHECK(p.conns[1].len < total);
    CHECK_OK(cio_server_free(s));
    free(buf);
    pool_free(&p);
    cio_loop_free(loop);
}

static int has_conn(void *arg) {
    return ((pool *)arg)->n >= 1;
}

TEST(a_peer_reset_reaches_connection_lost) {
    cio_loop *loop = test_loop();
    pool p = {0};
    cio_server *s;
    CHECK_OK(cio_create_server(loop, &server_recorder, &p, "127.0.0.1", "0", NULL, &s));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port(s))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_OK(connect(fd, (struct sockaddr *)&sa, sizeof sa));
    CHECK_EQ(write(fd, "x", 1), 1);
    run_until(loop, has_conn, &p); /* the server accepted it */
    CHECK_EQ(p.n, 1);
    /* Unread data and SO_LINGER 0: close sends a reset. */
    struct linger lg = {1, 0};
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(fd);
    /* Writing to the reset connection fails, and connection_lost reports
     * it; the process survives the SIGPIPE that a plain send would raise. */
    for (int i = 0; i < 50 && !lost_cond(&p.conns[0]); i++) {
        if (p.conns[0].t) cio_transport_write(p.conns[0].t, "data", 4);
        run_for(loop, 0.005);
    }
    CHECK(lost_cond(&p.conns[0]));
    CHECK(p.conns[0].lost_error == -ECONNRESET || p.conns[0].lost_error == -EPIPE);
    CHECK_OK(cio_server_free(s));
    pool_free(&p);
    cio_loop_free(loop);
}

TEST(closing_the_descriptor_under_a_transport_reports_ebadf) {
    cio_loop *loop = test_loop();
    pool p = {0};
    rec client = {0};
    cio_server *s = serve_and_connect(loop, &p, &client);
    CHECK_OK(cio_close(cio_transport_socket(client.t)));
    run_until(loop, lost_cond, &client);
    CHECK_ERR(client.lost_error, -EBADF);
    run_until(loop, lost_cond, &p.conns[0]);
    CHECK_OK(cio_server_free(s));
    pool_free(&p);
    cio_loop_free(loop);
}

static int server_closed_flag;

static void *wait_closed_task(void *arg) {
    int rc = cio_server_wait_closed(arg);
    server_closed_flag = 1;
    return IPTR(rc);
}

TEST(wait_closed_waits_for_the_last_connection) {
    cio_loop *loop = test_loop();
    pool p = {0};
    rec client = {0};
    cio_server *s = serve_and_connect(loop, &p, &client);
    run_for(loop, 0.01);
    CHECK_EQ(p.n, 1);
    server_closed_flag = 0;
    cio_task *t;
    CHECK_OK(cio_spawn(loop, wait_closed_task, s, &t));
    run_for(loop, 0.001);
    CHECK_OK(cio_server_close(s));
    CHECK_OK(cio_server_close(s));
    CHECK_ERR(cio_server_free(s), -EBUSY); /* a task waits on it */
    run_for(loop, 20 * 0.001);
    /* Closed, but a connection is still open: still waiting. And the
     * connection still works. */
    CHECK_EQ(server_closed_flag, 0);
    CHECK_EQ(cio_server_start_serving(s), -CIO_EINVALSTATE);
    CHECK_OK(cio_server_close_clients(s));
    void *rc;
    CHECK_OK(cio_run_until_complete(loop, t, &rc));
    CHECK_OK(PTRI(rc));
    CHECK_EQ(server_closed_flag, 1);
    cio_future_unref(t);
    run_until(loop, lost_cond, &client);
    CHECK_OK(cio_server_free(s));
    pool_free(&p);
    cio_loop_free(loop);
}

static void *serve_forever_task(void *arg) {
    return IPTR(cio_server_serve_forever(arg));
}

TEST(serve_forever_ends_on_cancel_with_the_server_closed) {
    cio_loop *loop = test_loop();
    pool p = {0};
    cio_server *s;
    cio_server_options o = {.no_start_serving = 1, .backlog = 8};
    CHECK_OK(cio_create_server(loop, &server_recorder, &p, "127.0.0.1", "0", &o, &s));
    CHECK_EQ(cio_server_is_serving(s), 0);
    cio_task *t;
    CHECK_OK(cio_spawn(loop, serve_forever_task, s, &t));
    run_for(loop, 0);
    CHECK_EQ(cio_server_is_serving(s), 1);
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    void *rc;
    cio_run_until_complete(loop, t, &rc);
    CHECK_EQ(cio_server_is_serving(s), 0);
    CHECK_EQ(cio_server_sockets(s, NULL, 0), 0);
    cio_future_unref(t);
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

TEST(serve_forever_cancelled_returns_once_the_last_connection_is_gone) {
    cio_loop *loop = test_loop();
    pool p = {0};
    rec client = {0};
    cio_server *s = serve_and_connect(loop, &p, &client);
    run_for(loop, 0.01);
    CHECK_EQ(p.n, 1);
    cio_task *t;
    CHECK_OK(cio_spawn(loop, serve_forever_task, s, &t));
    run_for(loop, 0);
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    run_for(loop, 0.02);
    /* As asyncio 3.12+: closed at once, but serve_forever waits in
     * wait_closed while a connection is open. */
    CHECK_EQ(cio_server_is_serving(s), 0);
    CHECK_EQ(cio_future_done(t), 0);
    CHECK_OK(cio_server_close_clients(s));
    void *rc;
    CHECK_ERR(cio_run_until_complete(loop, t, &rc), -ECANCELED);
    cio_future_unref(t);
    run_until(loop, lost_cond, &client);
    CHECK_OK(cio_server_free(s));
    pool_free(&p);
    cio_loop_free(loop);
}

TEST(write_after_close_is_an_invalid_state_on_every_backend) {
    cio_loop *loop = test_loop();
    pool p = {0};
    rec client = {0};
    cio_server *s = serve_and_connect(loop, &p, &client);
    run_for(loop, 0.01);
    /* Sent at once: nothing stays buffered, so on epoll the close is a
     * loss at once, while io_uring waits for the kernel; the program sees
     * the same answers either way until connection_lost. */
    CHECK_OK(cio_transport_write(client.t, "ping", 4));
    CHECK_OK(cio_transport_close(client.t));
    CHECK_ERR(cio_transport_write(client.t, "more", 4), -CIO_EINVALSTATE);
    CHECK_OK(cio_transport_write_eof(client.t));
    run_until(loop, lost_cond, &client);
    CHECK_OK(cio_server_free(s));
    run_for(loop, 0.01);
    pool_free(&p);
    cio_loop_free(loop);
}

/* A blocking connect from this thread, to the loop's server. */
static int plain_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

TEST(a_server_that_does_not_start_serving_refuses_connections) {
    cio_loop *loop = test_loop();
    pool p = {0};
    cio_server *s;
    cio_server_options o = {.no_start_serving = 1};
    CHECK_OK(cio_create_server(loop, &server_recorder, &p, "127.0.0.1", "0", &o, &s));
    /* Bound (the port is taken and shown) but, as asyncio, not listening. */
    int port = server_port(s);
    CHECK(port > 0);
    CHECK_ERR(plain_connect(port), -ECONNREFUSED);
    CHECK_OK(cio_server_start_serving(s));
    CHECK_OK(plain_connect(port));
    run_for(loop, 0.02);
    CHECK_EQ(p.n, 1);
    CHECK_OK(cio_server_free(s));
    run_for(loop, 0.01);
    pool_free(&p);
    cio_loop_free(loop);
}

/* A server that outlived its loop (made with no_start_serving, so the
 * loop's close did not know it) cannot start serving: its loop is closed,
 * then freed, and the calls say so instead of using the freed loop. Close
 * and free still work (they touch no loop). */
TEST(a_server_that_outlived_its_loop_refuses_to_start_serving) {
    cio_loop *loop = test_loop();
    pool p = {0};
    cio_server *s;
    cio_server_options o = {.no_start_serving = 1};
    CHECK_OK(cio_create_server(loop, &server_recorder, &p, "127.0.0.1", "0", &o, &s));
    CHECK_OK(cio_loop_close(loop));
    CHECK_ERR(cio_server_start_serving(s), -CIO_ELOOPCLOSED);
    CHECK_EQ(cio_server_is_serving(s), 0);
    cio_loop_free(loop);
    /* Another loop may now take the freed loop's memory. */
    cio_loop *other = test_loop();
    CHECK_ERR(cio_server_start_serving(s), -CIO_ELOOPCLOSED);
    CHECK_OK(cio_server_close_clients(s));
    CHECK_OK(cio_server_abort_clients(s));
    CHECK(cio_server_sockets(s, NULL, 0) >= 1);
    CHECK_OK(cio_server_close(s));
    CHECK_EQ(cio_server_sockets(s, NULL, 0), 0);
    CHECK_OK(cio_server_free(s));
    cio_loop_free(other);
}

/* connection_made may free the server that accepted the connection (as a
 * stream handler may): the accept job was still walking the freed server
 * (ASan: heap-use-after-free). The connection goes on without its server. */
static cio_server *server_to_free;

static void free_server_when_made(cio_transport *t, void *ctx) {
    CHECK_OK(cio_server_free(server_to_free));
    server_to_free = NULL;
    pool_made(t, ctx);
}

static const cio_protocol server_freeing = {
    .connection_made = free_server_when_made,
    .data_received = received,
    .eof_received = eof,
    .connection_lost = lost,
};

static int server_saw_data(void *arg) {
    pool *p = arg;
    return p->n == 1 && p->conns[0].len >= 2;
}

TEST(connection_made_may_free_its_server) {
    cio_loop *loop = test_loop();
    pool p = {.proto = {.echo = 1}};
    CHECK_OK(cio_create_server(loop, &server_freeing, &p, "127.0.0.1", "0", NULL,
                               &server_to_free));
    rec client = {0};
    connect_args a = {.host = "127.0.0.1", .r = &client};
    snprintf(a.port, sizeof a.port, "%d", server_port(server_to_free));
    connect_client(loop, &a);
    CHECK_OK(a.rc);
    CHECK_OK(cio_transport_write(client.t, "hi", 2));
    run_until(loop, server_saw_data, &p);
    CHECK(server_to_free == NULL);
    run_until(loop, all_received_2, &client);
    CHECK(memcmp(client.data, "hi", 2) == 0);
    CHECK_OK(cio_transport_close(client.t));
    run_until(loop, lost_cond, &p.conns[0]);
    free(client.data);
    pool_free(&p);
    cio_loop_free(loop);
}

/* Debug mode refuses the server's and the transport's state-changing calls
 * from a thread the loop does not belong to, and nothing changes. */
typedef struct foreign_server_calls {
    cio_server *server;
    cio_transport *transport;
    int refused;
} foreign_server_calls;

static void *server_calls_from_a_foreign_thread(void *arg) {
    foreign_server_calls *f = arg;
    f->refused = (cio_server_close_clients(f->server) == -CIO_EWRONGTHREAD) +
                 (cio_server_abort_clients(f->server) == -CIO_EWRONGTHREAD) +
                 (cio_transport_set_context(f->transport, NULL) == -CIO_EWRONGTHREAD) +
                 (cio_server_start_serving(f->server) == -CIO_EWRONGTHREAD);
    return NULL;
}

TEST(debug_mode_refuses_server_and_transport_calls_from_a_foreign_thread) {
    cio_loop_options opts = {.debug = 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    pool p = {0};
    rec client = {0};
    cio_server *s = serve_and_connect(loop, &p, &client);
    run_until(loop, n_conns_1, &p);
    cio_server *idle;
    cio_server_options o = {.no_start_serving = 1};
    CHECK_OK(cio_create_server(loop, &server_recorder, &p, "127.0.0.1", "0", &o, &idle));
    foreign_server_calls f = {.server = s, .transport = client.t};
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, server_calls_from_a_foreign_thread, &f));
    CHECK_OK(pthread_join(th, NULL));
    CHECK_EQ(f.refused, 3);
    f.server = idle;
    CHECK_OK(pthread_create(&th, NULL, server_calls_from_a_foreign_thread, &f));
    CHECK_OK(pthread_join(th, NULL));
    CHECK_EQ(f.refused, 4);
    /* Nothing changed: the connection is open, its context kept, and the
     * idle server still does not serve. */
    CHECK(cio_transport_context(client.t) == &client);
    CHECK_EQ(cio_transport_is_closing(client.t), 0);
    CHECK_EQ(cio_transport_is_closing(p.conns[0].t), 0);
    CHECK_EQ(cio_server_is_serving(idle), 0);
    CHECK_OK(cio_transport_close(client.t));
    run_until(loop, lost_cond, &p.conns[0]);
    CHECK_OK(cio_server_free(idle));
    CHECK_OK(cio_server_free(s));
    free(client.data);
    pool_free(&p);
    cio_loop_free(loop);
}

static int reports;
static void count_reports(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)ctx;
    (void)arg;
    reports++;
}

static int n_conns(void *arg) {
    pool *p = arg;
    return p->n >= 2;
}

TEST(out_of_descriptors_at_accept_neither_spins_nor_stops_the_server) {
    cio_loop *loop = test_loop();
    cio_loop_set_exception_handler(loop, count_reports, NULL);
    pool p = {0};
    cio_server *s;
    CHECK_OK(cio_create_server(loop, &server_recorder, &p, "127.0.0.1", "0", NULL, &s));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port(s))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Use up the descriptors. */
    int spare[4096], nspare = 0;
    int c1 = socket(AF_INET, SOCK_STREAM, 0);
    int c2 = socket(AF_INET, SOCK_STREAM, 0);
    struct rlimit old;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &old));
    struct rlimit low = old;
    low.rlim_cur = (rlim_t)c2 + 40;
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &low));
    int fd;
    while (nspare < 4096 && (fd = open("/dev/null", O_RDONLY)) >= 0) spare[nspare++] = fd;
    CHECK_OK(connect(c1, (struct sockaddr *)&sa, sizeof sa));
    CHECK_OK(connect(c2, (struct sockaddr *)&sa, sizeof sa));
    reports = 0;
    uint64_t before = loop_stats(loop).iterations;
    run_for(loop, 0.3);
    /* Reported once, paused: no busy loop (a few iterations, not
     * thousands), and no connection yet. */
    CHECK_EQ(reports, 1);
    CHECK(loop_stats(loop).iterations - before <= 20);
    CHECK_EQ(p.n, 0);
    while (nspare > 0) close(spare[--nspare]);
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &old));
    /* After the retry delay both connections are accepted. */
    run_until(loop, n_conns, &p);
    close(c1);
    close(c2);
    for (int i = 0; i < 2; i++) run_until(loop, lost_cond, &p.conns[i]);
    CHECK_OK(cio_server_free(s));
    pool_free(&p);
    cio_loop_free(loop);
}

TEST(loop_close_frees_open_transports_and_servers) {
    /* Closed without callbacks and without leaks (ASan and Valgrind check
     * the leaks); the server can still be freed after the loop is. */
    cio_loop *loop = test_loop();
    pool p = {0};
    rec client = {0};
    cio_server *s = serve_and_connect(loop, &p, &client);
    CHECK_OK(cio_transport_write(client.t, "pending", 7));
    run_for(loop, 0.01);
    CHECK_EQ(p.n, 1);
    cio_loop_free(loop);
    CHECK(!lost_cond(&client));
    CHECK_OK(cio_server_close(s));
    CHECK_OK(cio_server_free(s));
    pool_free(&p);
    free(client.data);
}

static void *connect_refused(void *arg) {
    (void)arg;
    rec r = {0};
    cio_transport *t;
    cio_loop *loop = cio_running_loop();
    /* A port nobody listens on. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_OK(bind(fd, (struct sockaddr *)&sa, sizeof sa));
    socklen_t len = sizeof sa;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(sa.sin_port));
    CHECK_ERR(cio_create_connection(loop, &recorder, &r, "127.0.0.1", port, &t), -ECONNREFUSED);
    close(fd);
    CHECK_ERR(cio_create_connection(loop, &recorder, &r, "127.0.0.1", NULL, &t), -EINVAL);
    CHECK_ERR(cio_create_connection(loop, NULL, &r, "127.0.0.1", port, &t), -EINVAL);
    /* A name nobody has (.invalid, RFC 2606): a resolver error, one of
     * EAI_NONAME or, with no resolver reachable, EAI_AGAIN or EAI_FAIL. */
    int rc = cio_create_connection(loop, &recorder, &r, "no-such-host.invalid", port, &t);
    CHECK(rc == -CIO_EAI(EAI_NONAME) || rc == -CIO_EAI(EAI_AGAIN) || rc == -CIO_EAI(EAI_FAIL));
    CHECK_ERR(cio_create_unix_connection(loop, &recorder, &r, "/nonexistent/cio.sock", &t),
              -ENOENT);
    CHECK_STR(r.log, "");
    return NULL;
}

TEST(connection_errors) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, connect_refused, NULL, NULL));
    rec r = {0};
    cio_transport *t;
    /* Outside a task. */
    CHECK_ERR(cio_create_connection(loop, &recorder, &r, "127.0.0.1", "1", &t), -EPERM);
    cio_server *s;
    CHECK_ERR(cio_create_server(loop, &recorder, &r, "127.0.0.1", NULL, NULL, &s), -EINVAL);
    CHECK_ERR(cio_create_server(loop, NULL, &r, "127.0.0.1", "0", NULL, &s), -EINVAL);
    CHECK_ERR(cio_create_unix_server(loop, &recorder, &r, "", NULL, &s), -EINVAL);
    CHECK_OK(cio_create_server(loop, &recorder, &r, "127.0.0.1", "0", NULL, &s));
    char port[16];
    snprintf(port, sizeof port, "%d", server_port(s));
    cio_server *s2;
    CHECK_ERR(cio_create_server(loop, &recorder, &r, "127.0.0.1", port, NULL, &s2), -EADDRINUSE);
    CHECK_OK(cio_server_free(s));
    cio_loop_free(loop);
}

TEST(writelines_with_more_pieces_than_sendmsg_takes) {
    cio_loop *loop = test_loop();
    pool p = {0};
    rec client = {0};
    cio_server *s = serve_and_connect(loop, &p, &client);
    enum { PIECES = 3000 };
    static char bytes[PIECES];
    static struct iovec iov[PIECES];
    for (int i = 0; i < PIECES; i++) {
        bytes[i] = (char)(i % 127);
        iov[i].iov_base = &bytes[i];
        iov[i].iov_len = 1;
    }
    CHECK_OK(cio_transport_writelines(client.t, iov, PIECES));
    struct iovec bad[2] = {{bytes, SIZE_MAX}, {bytes, 2}};
    CHECK_ERR(cio_transport_writelines(client.t, bad, 2), -EINVAL);
    CHECK_ERR(cio_transport_writelines(client.t, NULL, 1), -EINVAL);
    CHECK_ERR(cio_transport_writelines(client.t, iov, -1), -EINVAL);
    run_for(loop, 0.01);
    rec *srv = &p.conns[0];
    srv->want = PIECES;
    run_until(loop, got_n, srv);
    CHECK_EQ(srv->len, PIECES);
    CHECK(memcmp(srv->data, bytes, PIECES) == 0);
    CHECK_OK(cio_transport_abort(client.t));
    run_until(loop, lost_cond, &client);
    CHECK_OK(cio_server_free(s));
    pool_free(&p);
    cio_loop_free(loop);
}

static void *connect_by_name(void *arg) {
    connect_args *a = arg;
    cio_transport *t;
    a->rc = cio_create_connection(cio_running_loop(), &recorder, a->r, "localhost", a->port, &t);
    return NULL;
}

TEST(a_name_is_resolved_and_every_address_tried) {
    /* "localhost" resolves (on the thread pool) to ::1 and 127.0.0.1; the
     * server listens on 127.0.0.1 only, so an IPv6-first answer is refused
     * and the next address must be tried. */
    cio_loop *loop = test_loop();
    pool p = {0};
    cio_server *s;
    CHECK_OK(cio_create_server(loop, &server_recorder, &p, "127.0.0.1", "0", NULL, &s));
    rec client = {0};
    connect_args a = {.r = &client};
    snprintf(a.port, sizeof a.port, "%d", server_port(s));
    CHECK_OK(test_run(loop, connect_by_name, &a, NULL));
    CHECK_OK(a.rc);
    CHECK_STR(client.log, "m");
    /* Outside a task a name cannot be awaited. */
    cio_server *s2;
    CHECK_ERR(cio_create_server(loop, &server_recorder, &p, "localhost", "0", NULL, &s2), -EPERM);
    CHECK_OK(cio_transport_abort(client.t));
    run_until(loop, lost_cond, &client);
    CHECK_OK(cio_server_free(s));
    pool_free(&p);
    cio_loop_free(loop);
}

/* ---- Sends through the backend (io_uring) and the same calls on epoll ---- */

/* Which way writes go is the backend's (CIO__CAP_SEND_RING): through the
 * ring on io_uring unless switched off (the .uring_nofast copies), send()
 * per write on epoll. The tests below hold on both. */
static int sends_through_ring(cio_loop *loop) {
    return (loop->io.caps & CIO__CAP_SEND_RING) != 0;
}

typedef struct burst {
    cio_transport *t;
    unsigned char *bytes;
    size_t total;
} burst;

/* Writes the bytes in pieces of 1 to 97 bytes, and every 50th of 1,500
 * (which io_uring sends at once when nothing is in flight), letting the
 * loop turn every few writes, so that writes come while a send is in
 * flight (gathered for the next send), while the next waits, and while
 * nothing is in flight. */
static void *write_in_bursts(void *arg) {
    burst *b = arg;
    size_t at = 0;
    for (unsigned i = 0; at < b->total; i++) {
        size_t n = i % 50 == 49 ? 1500 : 1 + (i * 31) % 97;
        if (n > b->total - at) n = b->total - at;
        if (i % 3 == 0 && n >= 2) {
            struct iovec iov[2] = {{b->bytes + at, 1}, {b->bytes + at + 1, n - 1}};
            CHECK_OK(cio_transport_writelines(b->t, iov, 2));
        } else {
            CHECK_OK(cio_transport_write(b->t, b->bytes + at, n));
        }
        at += n;
        if (i % (1 + i % 7) == 0) CHECK_OK(cio_sleep(0));
    }
    return NULL;
}

TEST(many_small_writes_arrive_in_order) {
    cio_loop *loop = test_loop();
    pool p = {.proto = {.echo = 1}};
    rec client = {0};
    cio_server *s = serve_and_connect(loop, &p, &client);
    CHECK_EQ(((cio_transport *)client.t)->ring_send, sends_through_ring(loop));
    if (strcmp(cio_loop_backend(loop), "epoll") == 0) CHECK(!sends_through_ring(loop));
    burst b = {.t = client.t, .total = 300000};
    b.bytes = malloc(b.total);
    for (size_t i = 0; i < b.total; i++) b.bytes[i] = (unsigned char)(i * 13 + i / 7);
    CHECK_OK(test_run(loop, write_in_bursts, &b, NULL));
    client.want = b.total;
    run_until(loop, got_n, &client);
    CHECK_EQ(client.len, b.total);
    CHECK(memcmp(client.data, b.bytes, b.total) == 0);
    CHECK_EQ(cio_transport_get_write_buffer_size(client.t), 0);
    CHECK_OK(cio_transport_abort(client.t));
    run_until(loop, lost_cond, &client);
    CHECK_OK(cio_server_free(s));
    free(b.bytes);
    free(client.data);
    pool_free(&p);
    cio_loop_free(loop);
}

/* A peer that reads nothing: the client's writes fill the socket, and on
 * io_uring a send waits in the kernel. */
static cio_server *serve_stalled(cio_loop *loop, pool *p, rec *client, size_t total, char **buf) {
    cio_server *s = serve_and_connect(loop, p, client);
    run_until(loop, has_conn, p);
    CHECK_OK(cio_transport_pause_reading(p->conns[0].t));
    *buf = calloc(1, total);
    CHECK_OK(cio_transport_write(client->t, *buf, total));
    CHECK_OK(cio_transport_write(client->t, *buf, 1000)); /* gathered behind it */
    run_for(loop, 0.02);
    CHECK_EQ(cio_transport_get_write_buffer_size(client->t) > 0, 1);
    return s;
}

TEST(abort_and_loop_close_with_a_send_waiting_for_room) {
    /* abort: connection_lost(0), the send in flight dropped (cancelled in
     * the kernel, its record freed at its final completion: ASan and
     * Valgrind see any leak or late use). */
    cio_loop *loop = test_loop();
    pool p = {0};
    rec client = {0};
    char *buf;
    size_t total = 16u << 20;
    cio_server *s = serve_stalled(loop, &p, &client, total, &buf);
    CHECK_OK(cio_transport_abort(client.t));
    CHECK_EQ(cio_transport_get_write_buffer_size(client.t), 0);
    run_until(loop, lost_cond, &client);
    CHECK_EQ(client.lost_error, 0);
    CHECK_STR(client.log, "mpl");
    CHECK_OK(cio_transport_resume_reading(p.conns[0].t));
    run_until(loop, lost_cond, &p.conns[0]);
    CHECK(p.conns[0].len < total + 1000);
    CHECK_OK(cio_server_free(s));
    free(buf);
    pool_free(&p);
    free(client.data);
    cio_loop_free(loop);
    /* The loop's close, with the send still waiting: nothing is left
     * behind, no callback runs. */
    loop = test_loop();
    memset(&p, 0, sizeof p);
    memset(&client, 0, sizeof client);
    s = serve_stalled(loop, &p, &client, total, &buf);
    cio_loop_free(loop);
    CHECK(!lost_cond(&client));
    CHECK_OK(cio_server_free(s));
    free(buf);
    pool_free(&p);
    free(client.data);
}

TEST(close_with_a_send_in_flight_delivers_every_byte_then_the_end) {
    /* Writes while a send waits are gathered; close waits for all of it. */
    cio_loop *loop = test_loop();
    pool p = {0};
    rec client = {0};
    char *buf;
    size_t total = 16u << 20;
    cio_server *s = serve_stalled(loop, &p, &client, total, &buf);
    CHECK_OK(cio_transport_write(client.t, "tail", 4));
    CHECK_OK(cio_transport_close(client.t));
    CHECK(!lost_cond(&client));
    CHECK_OK(cio_transport_resume_reading(p.conns[0].t));
    run_until(loop, lost_cond, &p.conns[0]);
    CHECK_EQ(p.conns[0].len, total + 1000 + 4);
    CHECK(memcmp(p.conns[0].data + total + 1000, "tail", 4) == 0);
    CHECK_STR(p.conns[0].log, "mdel");
    run_until(loop, lost_cond, &client);
    CHECK_EQ(client.lost_error, 0);
    CHECK_OK(cio_server_free(s));
    free(buf);
    pool_free(&p);
    free(client.data);
    cio_loop_free(loop);
}

TEST(a_failing_send_or_allocation_in_a_write_loses_nothing_silently) {
    /* The Nth fallible call of a write fails (an allocation, or the send,
     * which on io_uring fails through the kernel's completion): the write
     * returns the error, or the connection is lost with it; data that was
     * accepted arrives whole, in order, or the connection reports why not. */
    for (int nth = 1; nth <= 4; nth++) {
        cio_loop *loop = test_loop();
        pool p = {0};
        rec client = {0};
        cio_server *s = serve_and_connect(loop, &p, &client);
        run_until(loop, has_conn, &p);
        cio__fault_arm(nth);
        int rc = cio_transport_write(client.t, "0123456789", 10);
        cio__fault_arm(0);
        if (rc == 0) CHECK_OK(cio_transport_write(client.t, "abc", 3));
        run_for(loop, 0.02);
        rec *srv = &p.conns[0];
        if (rc < 0) {
            CHECK(rc == -ENOMEM || rc == -ENOBUFS);
        } else if (lost_cond(&client)) {
            CHECK_EQ(client.lost_error, -ENOBUFS);
            CHECK_EQ(srv->len, 0);
        } else {
            CHECK_EQ(srv->len, 13);
            CHECK(memcmp(srv->data, "0123456789abc", 13) == 0);
        }
        if (!lost_cond(&client)) CHECK_OK(cio_transport_abort(client.t));
        run_until(loop, lost_cond, &client);
        CHECK_OK(cio_server_free(s));
        pool_free(&p);
        free(client.data);
        cio_loop_free(loop);
    }
}
