/* Sockets handed over to the loop (cio_sock_adopt): the same calls, one
 * registration for life on epoll, and what a broken promise (close(2) of
 * an adopted socket) does. */
#include "test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static void nonblocking_pair(int sv[2]) {
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
}

static bool on_epoll(const cio_loop *loop) {
    return strcmp(cio_loop_backend(loop), "epoll") == 0;
}

/* The events the epoll set of this process registered for fd, from
 * /proc/self/fdinfo of every epoll descriptor ("tfd: N events: HEX"), or
 * -1 if none has fd. The tests have one loop, so one epoll set. */
static long epoll_events_of(int fd) {
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    long found = -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[300], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        if (strcmp(target, "anon_inode:[eventpoll]") != 0) continue;
        snprintf(path, sizeof path, "/proc/self/fdinfo/%s", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        char line[256];
        while (fgets(line, sizeof line, f)) {
            int tfd;
            unsigned long ev;
            if (sscanf(line, "tfd: %d events: %lx", &tfd, &ev) == 2 && tfd == fd) found = (long)ev;
        }
        fclose(f);
    }
    closedir(d);
    return found;
}

#define ET_BIT 0x80000000ul      /* EPOLLET */
#define ONESHOT_BIT 0x40000000ul /* EPOLLONESHOT */

/* ---- ping-pong over adopted sockets -------------------------------------- */

enum { ROUNDS = 300 };

static void *ponger(void *arg) {
    int fd = PTRI(arg);
    char buf[64];
    for (;;) {
        ssize_t n = cio_sock_recv(fd, buf, sizeof buf);
        if (n < 0) return cio_raise((int)n);
        if (n == 0) return NULL;
        CHECK_EQ(cio_sock_sendall(fd, buf, (size_t)n), n);
    }
}

static void *pinger(void *arg) {
    int fd = PTRI(arg);
    for (int i = 0; i < ROUNDS; i++) {
        char msg[16], got[16];
        int len = snprintf(msg, sizeof msg, "m%d", i);
        CHECK_EQ(cio_sock_sendall(fd, msg, (size_t)len), len);
        size_t have = 0;
        while (have < (size_t)len) {
            ssize_t n = cio_sock_recv(fd, got + have, sizeof got - have);
            CHECK_INT(n, >, 0);
            have += (size_t)n;
        }
        CHECK_EQ(have, (size_t)len);
        CHECK(memcmp(msg, got, (size_t)len) == 0);
    }
    return NULL;
}

TEST(adopted_sockets_echo_and_keep_one_edge_registration) {
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    CHECK_OK(cio_sock_adopt(loop, sv[0]));
    CHECK_OK(cio_sock_adopt(loop, sv[1]));
    cio_task *p, *q;
    CHECK_OK(cio_spawn(loop, ponger, IPTR(sv[1]), &q));
    CHECK_OK(cio_spawn(loop, pinger, IPTR(sv[0]), &p));
    CHECK_OK(cio_run_until_complete(loop, p, NULL));
    if (on_epoll(loop)) {
        /* Registered once, edge-triggered, and never re-armed one-shot:
         * the waits of 300 rounds changed nothing. */
        long ev = epoll_events_of(sv[1]);
        CHECK_INT(ev, >=, 0);
        CHECK((unsigned long)ev & ET_BIT);
        CHECK(!((unsigned long)ev & ONESHOT_BIT));
    }
    /* The peer's end of stream ends the ponger. */
    CHECK_OK(cio_close(sv[0]));
    CHECK_OK(cio_run_until_complete(loop, q, NULL));
    CHECK_OK(cio_close(sv[1]));
    if (on_epoll(loop)) CHECK_EQ(epoll_events_of(sv[1]), -1);
    /* Closed through the loop: a second close is an error, not a crash. */
    CHECK_ERR(cio_close(sv[1]), -EBADF);
    cio_future_unref(p);
    cio_future_unref(q);
    cio_loop_free(loop);
}

TEST(a_plain_descriptor_is_still_armed_per_wait) {
    /* The check above can fail: without cio_sock_adopt, the same exchange
     * leaves a one-shot registration on epoll. io_uring registers nothing:
     * there the exchange itself is the test. */
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    cio_task *p, *q;
    CHECK_OK(cio_spawn(loop, ponger, IPTR(sv[1]), &q));
    CHECK_OK(cio_spawn(loop, pinger, IPTR(sv[0]), &p));
    CHECK_OK(cio_run_until_complete(loop, p, NULL));
    if (on_epoll(loop)) {
        long ev = epoll_events_of(sv[1]);
        CHECK_INT(ev, >=, 0);
        CHECK((unsigned long)ev & ONESHOT_BIT);
        CHECK(!((unsigned long)ev & ET_BIT));
    }
    CHECK_OK(cio_close(sv[0]));
    CHECK_OK(cio_run_until_complete(loop, q, NULL));
    CHECK_OK(cio_close(sv[1]));
    cio_future_unref(p);
    cio_future_unref(q);
    cio_loop_free(loop);
}

/* ---- errors --------------------------------------------------------------- */

static void noop_cb(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
}

TEST(bad_adoptions_are_errors) {
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    CHECK_ERR(cio_sock_adopt(NULL, sv[0]), -EINVAL);
    CHECK_ERR(cio_sock_adopt(loop, -1), -EBADF);
    /* A number that is not open. */
    int spare = dup(sv[0]);
    CHECK(spare >= 0);
    close(spare);
    CHECK_ERR(cio_sock_adopt(loop, spare), -EBADF);
    /* Twice. */
    CHECK_OK(cio_sock_adopt(loop, sv[0]));
    /* The checks are the same on both backends (io_uring keeps no
     * registration, but answers as epoll does). */
    CHECK_ERR(cio_sock_adopt(loop, sv[0]), -EBUSY);
    /* On epoll a watcher cannot share an adopted socket's registration. */
    if (on_epoll(loop)) CHECK_ERR(cio_add_reader(loop, sv[0], noop_cb, NULL), -EBUSY);
    /* Nor can a socket be adopted while a watcher has it. */
    CHECK_OK(cio_add_reader(loop, sv[1], noop_cb, NULL));
    CHECK_ERR(cio_sock_adopt(loop, sv[1]), -EBUSY);
    CHECK_EQ(cio_remove_reader(loop, sv[1]), 1);
    CHECK_OK(cio_sock_adopt(loop, sv[1]));
    /* A regular file, or a device with no poll method, cannot be polled. */
    char path[] = "/tmp/cio-adopt-XXXXXX";
    int file = mkstemp(path);
    CHECK(file >= 0);
    unlink(path);
    CHECK_ERR(cio_sock_adopt(loop, file), -EPERM);
    close(file);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(null >= 0);
    CHECK_ERR(cio_sock_adopt(loop, null), -EPERM);
    close(null);
    /* After cio_close the number is free: adopting it is -EBADF. */
    CHECK_OK(cio_close(sv[0]));
    CHECK_ERR(cio_sock_adopt(loop, sv[0]), -EBADF);
    CHECK_ERR(cio_close(sv[0]), -EBADF);
    CHECK_OK(cio_close(sv[1]));
    CHECK_OK(cio_loop_close(loop));
    cio_loop_free(loop);
}

/* ---- cancellation --------------------------------------------------------- */

static void *read_some(void *arg) {
    int fd = PTRI(arg);
    static char buf[64];
    ssize_t n = cio_sock_recv(fd, buf, sizeof buf);
    return n < 0 ? cio_raise((int)n) : IPTR(n);
}

static void stop_soon(cio_loop *loop, void *arg) {
    (void)arg;
    CHECK_OK(cio_loop_stop(loop));
}

/* Runs the loop for about delay seconds. */
static void run_for(cio_loop *loop, double delay) {
    cio_future *never;
    CHECK_OK(cio_future_new(loop, &never));
    CHECK_OK(cio_call_later(loop, delay, stop_soon, NULL, NULL));
    CHECK_ERR(cio_run_until_complete(loop, never, NULL), -CIO_ESTOPPED);
    cio_future_unref(never);
}

TEST(cancelled_recv_on_an_adopted_socket_loses_no_byte) {
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    CHECK_OK(cio_sock_adopt(loop, sv[0]));
    /* Cancelled while waiting: nothing was read. */
    cio_task *r;
    CHECK_OK(cio_spawn(loop, read_some, IPTR(sv[0]), &r));
    run_for(loop, 0.01);
    CHECK_EQ(cio_task_cancel(r, NULL), 1);
    CHECK_ERR(cio_run_until_complete(loop, r, NULL), -ECANCELED);
    cio_future_unref(r);
    /* Data comes while a reader is cancelled in the same breath: either it
     * got the bytes or the next reader does. Every round, 3 bytes. */
    size_t total = 0;
    for (int round = 0; round < 20; round++) {
        CHECK_OK(cio_spawn(loop, read_some, IPTR(sv[0]), &r));
        run_for(loop, 0.002);
        CHECK_EQ(write(sv[1], "xyz", 3), 3);
        if (round % 2) run_for(loop, 0.001); /* sometimes the edge comes first */
        cio_task_cancel(r, NULL);
        void *n;
        int rc = cio_run_until_complete(loop, r, &n);
        cio_future_unref(r);
        if (rc == 0) {
            total += (size_t)PTRI(n);
            continue;
        }
        CHECK_ERR(rc, -ECANCELED);
        CHECK_OK(cio_spawn(loop, read_some, IPTR(sv[0]), &r));
        CHECK_OK(cio_run_until_complete(loop, r, &n));
        cio_future_unref(r);
        total += (size_t)PTRI(n);
    }
    CHECK_EQ(total, (size_t)60);
    CHECK_OK(cio_close(sv[0]));
    CHECK_OK(cio_close(sv[1]));
    cio_loop_free(loop);
}

/* ---- readiness waits, connect, end of stream ------------------------------ */

static void *waits(void *arg) {
    int *sv = arg;
    /* Nothing to read: no false readiness after adopt. */
    CHECK_ERR(cio_wait_readable_until(sv[0], cio_loop_time(cio_running_loop()) + 0.05),
              -ETIMEDOUT);
    CHECK_EQ(write(sv[1], "a", 1), 1);
    CHECK_OK(cio_wait_readable(sv[0]));
    /* Still readable (nothing read): the edge already passed, and the wait
     * must still see it. */
    CHECK_OK(cio_wait_readable_until(sv[0], cio_loop_time(cio_running_loop()) + 1.0));
    char c;
    CHECK_EQ(cio_sock_recv(sv[0], &c, 1), 1);
    CHECK_OK(cio_wait_writable(sv[0]));
    /* The peer writes and shuts down before anyone waits: both the data
     * and the end of stream are read, though no edge follows the short
     * read. */
    CHECK_EQ(write(sv[1], "bc", 2), 2);
    CHECK_OK(shutdown(sv[1], SHUT_WR));
    char buf[8];
    CHECK_EQ(cio_sock_recv(sv[0], buf, sizeof buf), 2);
    CHECK_EQ(cio_sock_recv_until(sv[0], buf, sizeof buf, cio_loop_time(cio_running_loop()) + 1.0), 0);
    return NULL;
}

TEST(readiness_waits_and_end_of_stream_on_an_adopted_socket) {
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    CHECK_OK(cio_sock_adopt(loop, sv[0]));
    CHECK_OK(test_run(loop, waits, sv, NULL));
    CHECK_OK(cio_close(sv[0]));
    CHECK_OK(cio_close(sv[1]));
    cio_loop_free(loop);
}

static void *connect_adopted(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_OK(bind(lfd, (struct sockaddr *)&a, sizeof a));
    socklen_t alen = sizeof a;
    CHECK_OK(getsockname(lfd, (struct sockaddr *)&a, &alen));
    CHECK_OK(listen(lfd, 4));
    CHECK_OK(cio_sock_adopt(loop, lfd));
    /* An unconnected socket, adopted before connect: the connect must
     * start though no edge has come. */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    CHECK_OK(cio_sock_adopt(loop, c));
    CHECK_OK(cio_sock_connect(c, (struct sockaddr *)&a, alen));
    int s = cio_sock_accept(lfd, NULL, NULL);
    CHECK_INT(s, >=, 0);
    CHECK_OK(cio_sock_adopt(loop, s));
    CHECK_EQ(cio_sock_sendall(c, "hello", 5), 5);
    char buf[8];
    CHECK_EQ(cio_sock_recv(s, buf, sizeof buf), 5);
    /* The connected socket sees the peer's data and then its end of
     * stream (the socket polled as hung up before it was connected). */
    CHECK_EQ(cio_sock_sendall(s, "bye", 3), 3);
    CHECK_OK(shutdown(s, SHUT_WR));
    CHECK_EQ(cio_sock_recv(c, buf, sizeof buf), 3);
    CHECK_EQ(cio_sock_recv_until(c, buf, sizeof buf, cio_loop_time(loop) + 1.0), 0);
    /* The listener waits for the next connection without re-arming. */
    int c2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(c2 >= 0);
    CHECK_OK(cio_sock_connect(c2, (struct sockaddr *)&a, alen));
    int s2 = cio_sock_accept(lfd, NULL, NULL);
    CHECK_INT(s2, >=, 0);
    CHECK_OK(cio_close(s2));
    CHECK_OK(cio_close(c2));
    CHECK_OK(cio_close(s));
    CHECK_OK(cio_close(c));
    CHECK_OK(cio_close(lfd));
    return NULL;
}

TEST(connect_and_accept_on_adopted_sockets) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, connect_adopted, NULL, NULL));
    cio_loop_free(loop);
}

/* ---- the broken promise: close(2) of an adopted socket -------------------- */

static void *read_one_within(void *arg) {
    int fd = PTRI(arg);
    char c;
    /* Within three seconds: the sweep finds a stale registration within
     * about two (cio_sock_adopt). */
    ssize_t n = cio_sock_recv_until(fd, &c, 1, cio_loop_time(cio_running_loop()) + 3.0);
    return n < 0 ? cio_raise((int)n) : IPTR(n);
}

static void write_one(cio_loop *loop, void *arg) {
    (void)loop;
    CHECK_EQ(write(PTRI(arg), "x", 1), 1);
}

TEST(plain_close_of_an_adopted_socket_then_reuse_does_not_hang) {
    /* The program breaks its promise: close(2) instead of cio_close, and
     * the number comes back with a socket that the loop never saw. A read
     * on it must still complete (late, but not never). */
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    CHECK_OK(cio_sock_adopt(loop, sv[0]));
    /* A short read marks the input quiet: the next recv will not even be
     * tried before it waits. */
    CHECK_EQ(write(sv[1], "ab", 2), 2);
    void *n;
    CHECK_OK(test_run(loop, read_some, IPTR(sv[0]), &n));
    CHECK_EQ(PTRI(n), 2);
    int old = sv[0];
    close(sv[0]);
    int fds[2];
    nonblocking_pair(fds);
    /* Either end may have got the number: both read and write. */
    if (fds[0] != old) {
        CHECK_EQ(fds[1], old);
        fds[1] = fds[0];
        fds[0] = old;
    }
    cio_task *t;
    CHECK_OK(cio_spawn(loop, read_one_within, IPTR(fds[0]), &t));
    CHECK_OK(cio_call_later(loop, 0.01, write_one, IPTR(fds[1]), NULL));
    double start = cio_loop_time(loop);
    CHECK_OK(cio_run_until_complete(loop, t, &n));
    CHECK_EQ(PTRI(n), 1);
    CHECK(cio_loop_time(loop) - start < 3.0);
    cio_future_unref(t);
    /* The number is an ordinary descriptor again: the next wait is armed
     * at once. */
    CHECK_OK(cio_spawn(loop, read_one_within, IPTR(fds[0]), &t));
    CHECK_OK(cio_call_later(loop, 0.01, write_one, IPTR(fds[1]), NULL));
    start = cio_loop_time(loop);
    CHECK_OK(cio_run_until_complete(loop, t, &n));
    CHECK(cio_loop_time(loop) - start < 0.5);
    cio_future_unref(t);
    CHECK_OK(cio_close(fds[0]));
    CHECK_OK(cio_close(fds[1]));
    CHECK_OK(cio_close(sv[1]));
    cio_loop_free(loop);
}

TEST(plain_close_under_a_waiting_reader_ends_the_wait_with_ebadf) {
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    CHECK_OK(cio_sock_adopt(loop, sv[0]));
    cio_task *t;
    CHECK_OK(cio_spawn(loop, read_one_within, IPTR(sv[0]), &t));
    run_for(loop, 0.01);
    close(sv[0]);
    int rc = cio_run_until_complete(loop, t, NULL);
    if (on_epoll(loop)) {
        /* The sweep finds the descriptor closed. */
        CHECK_ERR(rc, -EBADF);
    } else {
        /* io_uring: the kernel's recv request holds the file open, so the
         * wait ends only at its deadline. */
        CHECK_ERR(rc, -ETIMEDOUT);
    }
    cio_future_unref(t);
    CHECK_OK(cio_close(sv[1]));
    cio_loop_free(loop);
}

static void *wait_readable_within(void *arg) {
    return cio_raise(cio_wait_readable_until(PTRI(arg), cio_loop_time(cio_running_loop()) + 3.0));
}

TEST(plain_close_of_an_adopted_socket_then_reuse_by_a_regular_file) {
    /* The number comes back for a regular file, which epoll refuses: a
     * wait on it ends with -EPERM, as any wait on a regular file does,
     * rather than never. */
    cio_loop *loop = test_loop();
    int sv[2];
    nonblocking_pair(sv);
    CHECK_OK(cio_sock_adopt(loop, sv[0]));
    CHECK_EQ(write(sv[1], "ab", 2), 2);
    void *n;
    CHECK_OK(test_run(loop, read_some, IPTR(sv[0]), &n)); /* short: quiet */
    int old = sv[0];
    close(sv[0]);
    char path[] = "/tmp/cio-adopt-XXXXXX";
    int file = mkstemp(path);
    CHECK_EQ(file, old);
    unlink(path);
    double start = cio_loop_time(loop);
    int rc = test_run(loop, wait_readable_within, IPTR(file), NULL);
    if (on_epoll(loop))
        CHECK_ERR(rc, -EPERM);
    else
        CHECK(rc == 0 || rc == -EPERM); /* io_uring polls regular files as ready */
    CHECK(cio_loop_time(loop) - start < 3.0);
    CHECK_OK(cio_close(file));
    CHECK_OK(cio_close(sv[1]));
    cio_loop_free(loop);
}

static void *accept_twice(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_OK(bind(lfd, (struct sockaddr *)&a, sizeof a));
    socklen_t alen = sizeof a;
    CHECK_OK(getsockname(lfd, (struct sockaddr *)&a, &alen));
    CHECK_OK(listen(lfd, 4));
    int c1 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK_OK(cio_sock_connect(c1, (struct sockaddr *)&a, alen));
    int s1 = cio_sock_accept(lfd, NULL, NULL);
    CHECK_INT(s1, >=, 0);
    CHECK_OK(cio_sock_adopt(loop, s1));
    char buf[8];
    CHECK_EQ(write(c1, "ab", 2), 2);
    CHECK_EQ(cio_sock_recv(s1, buf, sizeof buf), 2);
    int c2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(c2 >= 0);
    close(s1); /* the broken promise */
    CHECK_OK(cio_sock_connect(c2, (struct sockaddr *)&a, alen));
    int s2 = cio_sock_accept(lfd, NULL, NULL);
    CHECK_EQ(s2, s1); /* the lowest free number */
    /* cio_sock_accept gave the number out: the loop knows it is new, and
     * a read on it (not adopted: a plain number) is armed at once. */
    double start = cio_loop_time(loop);
    CHECK_OK(cio_call_later(loop, 0.01, write_one, IPTR(c2), NULL));
    CHECK_EQ(cio_sock_recv_until(s2, buf, sizeof buf, start + 3.0), 1);
    CHECK(cio_loop_time(loop) - start < 0.5);
    /* Adopting it now works: nothing of the old socket is left. */
    CHECK_OK(cio_sock_adopt(loop, s2));
    CHECK_OK(cio_close(s2));
    CHECK_OK(cio_close(c2));
    CHECK_OK(cio_close(c1));
    CHECK_OK(cio_close(lfd));
    return NULL;
}

TEST(a_number_accepted_again_after_a_plain_close_is_new_at_once) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, accept_twice, NULL, NULL));
    cio_loop_free(loop);
}

static void *two_datagrams(void *arg) {
    int *sv = arg;
    char buf[64];
    CHECK_EQ(cio_sock_recv(sv[0], buf, sizeof buf), 3);
    /* Both datagrams came before the reader waited: the second is read at
     * once, though the first read was short and no new edge comes. */
    CHECK_EQ(send(sv[1], "one", 3, 0), 3);
    CHECK_EQ(send(sv[1], "two", 3, 0), 3);
    CHECK_EQ(cio_sock_recv(sv[0], buf, sizeof buf), 3);
    CHECK(memcmp(buf, "one", 3) == 0);
    double start = cio_loop_time(cio_running_loop());
    CHECK_EQ(cio_sock_recv_until(sv[0], buf, sizeof buf, start + 1.0), 3);
    CHECK(memcmp(buf, "two", 3) == 0);
    CHECK(cio_loop_time(cio_running_loop()) - start < 0.5);
    return NULL;
}

TEST(an_adopted_datagram_socket_reads_every_datagram) {
    cio_loop *loop = test_loop();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    CHECK_OK(cio_sock_adopt(loop, sv[0]));
    CHECK_EQ(send(sv[1], "abc", 3, 0), 3);
    CHECK_OK(test_run(loop, two_datagrams, sv, NULL));
    CHECK_OK(cio_close(sv[0]));
    CHECK_OK(cio_close(sv[1]));
    cio_loop_free(loop);
}
