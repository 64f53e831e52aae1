/*
 * The I/O backends: choosing one (and falling back when io_uring is
 * refused), and the cases where a completion backend can go wrong that a
 * readiness one cannot: cancelling an operation whose buffer is on the
 * cancelled task's stack, cancelling while data arrives, closing a
 * descriptor under an operation and reusing its number, closing the loop
 * with operations in flight, and rings far smaller than the load. Each
 * runs on every backend (backend.<name> and backend.<name>.uring).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <semaphore.h>
#include <time.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static void nonblocking_pair(int sv[2]) {
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
}

static void raise_fd_limit(rlim_t want) {
    struct rlimit rl;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur >= want) return;
    if (rl.rlim_max < want) SKIP("needs %lu descriptors, the hard limit is %lu", (unsigned long)want,
                                 (unsigned long)rl.rlim_max);
    rl.rlim_cur = want;
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
}

/* ---- Choosing the backend ---- */

/* A run registered for io_uring (CIO_BACKEND=uring) gets io_uring or no
 * loop at all: test_loop() fails loudly otherwise. */
TEST(the_backend_asked_for_is_the_one_used) {
    cio_loop *loop = test_loop();
    const char *asked = getenv("CIO_BACKEND");
    CHECK_STR(cio_loop_backend(loop), asked && strcmp(asked, "uring") == 0 ? "io_uring" : "epoll");
    CHECK_OK(cio_loop_free(loop));
}

/* Installs a seccomp filter that answers io_uring_setup with err (the
 * recipe of io-uring.md §8): what Docker's default profile, or a kernel
 * with io_uring disabled, does. */
static void refuse_io_uring_setup(int err) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    CHECK_OK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    CHECK_OK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog));
}

static void *echo_once(void *arg) {
    (void)arg;
    int sv[2];
    nonblocking_pair(sv);
    char buf[8] = {0};
    CHECK_EQ(cio_sock_sendall(sv[0], "ping", 4), 4);
    CHECK_EQ(cio_sock_recv(sv[1], buf, sizeof buf), 4);
    CHECK_EQ(cio_sock_sendall(sv[1], buf, 4), 4);
    CHECK_EQ(cio_sock_recv(sv[0], buf, sizeof buf), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK_OK(cio_close(sv[0]));
    CHECK_OK(cio_close(sv[1]));
    return IPTR(1);
}

/* In a child: with io_uring_setup refused with err, "auto" gives a working
 * epoll loop that says why, and "uring" fails with the error. */
static void fallback_child(int err, const char *errname) {
#if CIO__HAVE_URING
    refuse_io_uring_setup(err);
#else
    /* Built without io_uring there is nothing to refuse (and qemu-user,
     * which runs the aarch64 build, refuses seccomp filters): the test
     * checks the fallback of such a build. */
    (void)refuse_io_uring_setup;
    (void)err;
#endif
    cio_loop_options opts = {.backend = "auto"};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    CHECK_STR(cio_loop_backend(loop), "epoll");
    const char *why = cio_loop_backend_fallback_reason(loop);
#if CIO__HAVE_URING
    if (!strstr(why, errname)) FAIL("the reason \"%s\" does not name %s", why, errname);
#else
    (void)errname;
    CHECK(strstr(why, "without io_uring") != NULL);
#endif
    void *res;
    CHECK_OK(test_run(loop, echo_once, NULL, &res));
    CHECK(res == IPTR(1));
    CHECK_OK(cio_loop_free(loop));
    /* The environment chooses the same way. */
    setenv("CIO_BACKEND", "auto", 1);
    loop = test_loop();
    CHECK_STR(cio_loop_backend(loop), "epoll");
    CHECK_OK(cio_loop_free(loop));
    opts.backend = "uring";
    loop = (cio_loop *)1;
#if CIO__HAVE_URING
    CHECK_ERR(cio_loop_new_with(&opts, &loop), -err);
#else
    CHECK_ERR(cio_loop_new_with(&opts, &loop), -ENOTSUP);
#endif
    CHECK(loop == NULL);
    exit(0);
}

static void run_in_child(void (*fn)(int, const char *), int err, const char *errname) {
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) fn(err, errname);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("the child failed (status %#x)", status);
}

TEST(io_uring_refused_with_eperm_falls_back_or_fails_clearly) {
    run_in_child(fallback_child, EPERM, "EPERM");
}

TEST(io_uring_refused_with_enosys_falls_back_or_fails_clearly) {
    run_in_child(fallback_child, ENOSYS, "ENOSYS");
}

/* The switches: each io_uring feature can be switched off; without
 * multishot the backend cannot serve, and says so. */
static void switches_child(int unused, const char *unused_name) {
    (void)unused;
    (void)unused_name;
#if CIO__HAVE_URING
    cio_loop_options opts = {.backend = "uring"};
    cio_loop *loop;
    const char *fewer[] = {"defer_taskrun", "single_issuer", "mshot_accept", "mshot_recv",
                           "ring_fd", "ring_send", "fast_path"};
    /* What each leaves of the fast path's capabilities. */
    const unsigned all = CIO__CAP_ACCEPT_MULTI | CIO__CAP_RECV_RING | CIO__CAP_SEND_RING;
    const unsigned caps[] = {all, all, all & ~CIO__CAP_ACCEPT_MULTI, all & ~CIO__CAP_RECV_RING,
                             all, all & ~CIO__CAP_SEND_RING, 0};
    for (int i = 0; i < 7; i++) {
        setenv("CIO_URING_DISABLE", fewer[i], 1);
        CHECK_OK(cio_loop_new_with(&opts, &loop));
        CHECK_STR(cio_loop_backend(loop), "io_uring");
        CHECK_EQ(loop->io.caps, caps[i]);
        void *res;
        CHECK_OK(test_run(loop, echo_once, NULL, &res));
        CHECK(res == IPTR(1));
        CHECK_OK(cio_loop_free(loop));
    }
    setenv("CIO_URING_DISABLE", "multishot", 1);
    CHECK_ERR(cio_loop_new_with(&opts, &loop), -ENOTSUP);
    opts.backend = "auto";
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    CHECK_STR(cio_loop_backend(loop), "epoll");
    CHECK(strstr(cio_loop_backend_fallback_reason(loop), "multishot") != NULL);
    CHECK_OK(cio_loop_free(loop));
#endif
    exit(0);
}

TEST(io_uring_features_can_be_switched_off) {
    run_in_child(switches_child, 0, NULL);
}

/* ---- Cancelling an operation whose buffer is on the task's stack ---- */

static int stack_fds[2];

/* Receives into a buffer on this frame's stack; the caller's cancel ends
 * it. */
__attribute__((noinline)) static ssize_t recv_on_stack(int fd) {
    char buf[4096];
    return cio_sock_recv(fd, buf, sizeof buf);
}

/* Covers the same stack as recv_on_stack's frame with a pattern, lets the
 * loop turn while the peer's data arrives, and checks the pattern: a late
 * write of the kernel into the old buffer would show. */
__attribute__((noinline)) static void scribble_and_check(void) {
    volatile unsigned char area[64 * 1024];
    for (size_t i = 0; i < sizeof area; i++) area[i] = (unsigned char)(i * 7 + 1);
    CHECK_EQ(send(stack_fds[1], (char[4096]){[0] = 'x', [4095] = 'y'}, 4096, 0), 4096);
    for (int i = 0; i < 10; i++) CHECK_OK(cio_sleep(0.001));
    for (size_t i = 0; i < sizeof area; i++)
        if (area[i] != (unsigned char)(i * 7 + 1)) FAIL("byte %zu of the stack was overwritten", i);
}

static void *stack_receiver(void *arg) {
    (void)arg;
    CHECK_EQ(recv_on_stack(stack_fds[0]), -ECANCELED);
    /* The cancellation was delivered; the task goes on. */
    CHECK_EQ(cio_task_uncancel(cio_current_task()), 0);
    scribble_and_check();
    char buf[8192];
    size_t got = 0;
    while (got < 4096) {
        ssize_t n = cio_sock_recv(stack_fds[0], buf + got, sizeof buf - got);
        CHECK_INT(n, >, 0);
        got += (size_t)n;
    }
    CHECK_EQ(got, 4096);
    CHECK(buf[0] == 'x' && buf[4095] == 'y');
    return IPTR(1);
}

static void *cancel_the_receiver(void *arg) {
    cio_task *t = arg;
    /* Until the receiver waits in its recv. */
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    CHECK_EQ(cio_task_cancel(t, NULL), 1);
    return NULL;
}

static void *stack_main(void *arg) {
    (void)arg;
    cio_task *r, *c;
    /* Room for the 64 KiB pattern above the frames (4x under ASan). */
    cio_task_options big = {.name = "receiver", .stack_size = 1024 * 1024};
    CHECK_OK(cio_spawn_with(cio_running_loop(), stack_receiver, NULL, &big, &r));
    CHECK_OK(cio_spawn(cio_running_loop(), cancel_the_receiver, r, &c));
    void *res = NULL;
    /* The receiver catches its cancellation (the recv's -ECANCELED) and
     * goes on to its end. */
    CHECK_OK(cio_await(r, &res));
    CHECK(res == IPTR(1));
    CHECK_OK(cio_await(c, NULL));
    cio_future_unref(r);
    cio_future_unref(c);
    return IPTR(1);
}

TEST(cancelled_recv_into_a_stack_buffer_never_writes_it_later) {
    nonblocking_pair(stack_fds);
    cio_loop *loop = test_loop();
    void *res;
    CHECK_OK(test_run(loop, stack_main, NULL, &res));
    CHECK(res == IPTR(1));
    CHECK_OK(cio_loop_free(loop));
    close(stack_fds[0]);
    close(stack_fds[1]);
}

/* ---- Cancelling while data arrives: no byte lost ---- */

enum { RACE_ROUNDS = 10000 };
static int race_fds[2];
static size_t race_received;

static void *race_reader(void *arg) {
    (void)arg;
    char buf[256];
    ssize_t n = cio_sock_recv(race_fds[0], buf, sizeof buf);
    if (n > 0) race_received += (size_t)n;
    else CHECK_ERR(n, -ECANCELED);
    return NULL;
}

static void *race_main(void *arg) {
    (void)arg;
    size_t sent = 0;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        cio_task *r;
        CHECK_OK(cio_spawn(cio_running_loop(), race_reader, NULL, &r));
        /* Three interleavings, in turn: the reader has not started, has
         * just submitted, or has waited a full iteration. */
        for (int i = 0; i < round % 3; i++) CHECK_OK(cio_sleep(0));
        size_t k = 1 + (size_t)(round % 97);
        char data[100];
        memset(data, 'a' + round % 26, k);
        /* The data arrives and the cancel is asked in the same iteration. */
        CHECK_EQ(send(race_fds[1], data, k, 0), (ssize_t)k);
        sent += k;
        cio_task_cancel(r, NULL);
        int rc = cio_await(r, NULL);
        CHECK(rc == 0 || rc == -ECANCELED);
        cio_future_unref(r);
    }
    /* What no reader took is still in the socket. */
    char buf[4096];
    ssize_t n;
    while ((n = recv(race_fds[0], buf, sizeof buf, MSG_DONTWAIT)) > 0) race_received += (size_t)n;
    CHECK_EQ(race_received, sent);
    return IPTR(1);
}

TEST(cancel_as_data_arrives_ten_thousand_times_loses_no_byte) {
    nonblocking_pair(race_fds);
    int big = 1 << 20;
    setsockopt(race_fds[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(race_fds[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    cio_loop *loop = test_loop();
    void *res;
    CHECK_OK(test_run(loop, race_main, NULL, &res));
    CHECK(res == IPTR(1));
    CHECK_OK(cio_loop_free(loop));
    close(race_fds[0]);
    close(race_fds[1]);
}

/* ---- Closing a descriptor under a recv, and reusing its number ---- */

static int reuse_fd;

static void *old_reader(void *arg) {
    (void)arg;
    char buf[64];
    return IPTR(cio_sock_recv(reuse_fd, buf, sizeof buf));
}

static void *new_reader(void *arg) {
    int fd = PTRI(arg);
    char buf[64] = {0};
    ssize_t n = cio_sock_recv(fd, buf, sizeof buf);
    CHECK_EQ(n, 5);
    CHECK(memcmp(buf, "fresh", 5) == 0);
    return IPTR(1);
}

static void *reuse_main(void *arg) {
    (void)arg;
    int sv[2];
    nonblocking_pair(sv);
    reuse_fd = sv[0];
    cio_task *old;
    CHECK_OK(cio_spawn(cio_running_loop(), old_reader, NULL, &old));
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    CHECK(!cio_future_done(old));
    /* The loop forgets the descriptor (its recv ends with -EBADF) before
     * the number is free. */
    CHECK_OK(cio_close(sv[0]));
    int nv[2];
    nonblocking_pair(nv);
    int same = nv[0] == reuse_fd ? nv[0] : nv[1];
    int peer = same == nv[0] ? nv[1] : nv[0];
    CHECK_EQ(same, reuse_fd);
    cio_task *fresh;
    CHECK_OK(cio_spawn(cio_running_loop(), new_reader, IPTR(same), &fresh));
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    CHECK_EQ(send(peer, "fresh", 5, 0), 5);
    void *res;
    CHECK_OK(cio_await(fresh, &res));
    CHECK(res == IPTR(1));
    CHECK_OK(cio_await(old, &res));
    CHECK_ERR(PTRI(res), -EBADF);
    cio_future_unref(old);
    cio_future_unref(fresh);
    /* Nothing more arrives for anyone; the old peer's data goes nowhere. */
    CHECK_OK(cio_close(sv[1]));
    CHECK_OK(cio_close(nv[0]));
    CHECK_OK(cio_close(nv[1]));
    return IPTR(1);
}

TEST(close_under_a_recv_then_reuse_the_number) {
    cio_loop *loop = test_loop();
    void *res;
    CHECK_OK(test_run(loop, reuse_main, NULL, &res));
    CHECK(res == IPTR(1));
    CHECK_OK(cio_loop_free(loop));
}

/* ---- Loop close with a thousand recvs in flight ---- */

enum { PENDING_RECVS = 1000 };
static int pending_fds[PENDING_RECVS][2];

static void *pending_reader(void *arg) {
    int i = PTRI(arg);
    char buf[512];
    cio_sock_recv(pending_fds[i][0], buf, sizeof buf);
    FAIL("a recv with nothing to read returned");
    return NULL;
}

static void *settle(void *arg) {
    (void)arg;
    for (int i = 0; i < 5; i++) CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(loop_close_with_a_thousand_recvs_in_flight) {
    raise_fd_limit(2 * PENDING_RECVS + 64);
    cio_loop *loop = test_loop();
    for (int i = 0; i < PENDING_RECVS; i++) {
        nonblocking_pair(pending_fds[i]);
        CHECK_OK(cio_spawn(loop, pending_reader, IPTR(i), NULL));
    }
    CHECK_OK(test_run(loop, settle, NULL, NULL));
    CHECK_EQ(loop_stats(loop).io_in_flight, PENDING_RECVS);
    /* Every recv waits in the backend (on io_uring: in the kernel). Close
     * ends them all before the task stacks go; the pending tasks are
     * reported, as asyncio reports them. */
    CHECK_OK(cio_loop_free(loop));
    for (int i = 0; i < PENDING_RECVS; i++) {
        close(pending_fds[i][0]);
        close(pending_fds[i][1]);
    }
}

/* ---- Loop close with a thousand recvs and a hundred file reads in flight ---- */

enum { PENDING_FILE_READS = 100 };
static int pending_file;

static void *pending_file_reader(void *arg) {
    char buf[4096];
    cio_file_read(pending_file, buf, sizeof buf, (int64_t)PTRI(arg) * 4096);
    /* Never reached on io_uring: close ends the read and destroys the task
     * at its suspension. On epoll the worker may finish first. */
    return NULL;
}

static void stop_now(cio_loop *loop, void *arg) {
    (void)arg;
    cio_loop_stop(loop);
}

TEST(loop_close_with_a_thousand_recvs_and_a_hundred_file_reads_in_flight) {
    raise_fd_limit(2 * PENDING_RECVS + 64);
    char path[64];
    snprintf(path, sizeof path, "/tmp/cio-backend-%d", (int)getpid());
    pending_file = open(path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(pending_file >= 0);
    unlink(path);
    CHECK_OK(ftruncate(pending_file, PENDING_FILE_READS * 4096));
    cio_loop *loop = test_loop();
    for (int i = 0; i < PENDING_RECVS; i++) {
        nonblocking_pair(pending_fds[i]);
        CHECK_OK(cio_spawn(loop, pending_reader, IPTR(i), NULL));
    }
    CHECK_OK(test_run(loop, settle, NULL, NULL));
    /* One iteration: every file read starts (on io_uring its SQE is made
     * and not even submitted yet; on epoll it is queued or running on the
     * pool) and the loop stops before it can complete. */
    for (int i = 0; i < PENDING_FILE_READS; i++)
        CHECK_OK(cio_spawn(loop, pending_file_reader, IPTR(i), NULL));
    CHECK_OK(cio_call_soon(loop, stop_now, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    bool ring = strcmp(cio_loop_backend(loop), "io_uring") == 0;
    CHECK_EQ(loop_stats(loop).io_in_flight, PENDING_RECVS + (ring ? PENDING_FILE_READS : 0));
    cio__file_stats fs;
    CHECK_OK(cio__loop_get_file_stats(loop, &fs));
    CHECK_EQ(fs.ring_ops != 0, ring);
    /* Close ends every recv and every read (io_uring: cancels, and waits
     * for each final completion) before the task stacks that hold their
     * buffers go; ASan and LSan see no late write and no leak. */
    CHECK_OK(cio_loop_free(loop));
    for (int i = 0; i < PENDING_RECVS; i++) {
        close(pending_fds[i][0]);
        close(pending_fds[i][1]);
    }
    close(pending_file);
}

/* ---- Tiny rings under 512 connections ---- */

enum { CONNECTIONS = 512, MESSAGE = 64 };
static char tiny_port[16];
static int tiny_done;

static void *tiny_echo(cio_stream *s, void *arg) {
    (void)arg;
    char buf[MESSAGE];
    ssize_t n;
    while ((n = cio_stream_read(s, buf, sizeof buf)) > 0) {
        CHECK_OK(cio_stream_write(s, buf, (size_t)n));
        CHECK_OK(cio_stream_drain(s));
    }
    return NULL;
}

static void *tiny_client(void *arg) {
    int i = PTRI(arg);
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", tiny_port, &c));
    char out[MESSAGE], in[MESSAGE];
    for (int round = 0; round < 4; round++) {
        memset(out, (char)(i + round), sizeof out);
        CHECK_OK(cio_stream_write(c, out, sizeof out));
        CHECK_OK(cio_stream_drain(c));
        CHECK_EQ(cio_stream_readexactly(c, in, sizeof in), MESSAGE);
        CHECK(memcmp(in, out, sizeof in) == 0);
    }
    CHECK_OK(cio_stream_free(c));
    tiny_done++;
    return NULL;
}

static void *tiny_main(void *arg) {
    cio_loop *loop = arg;
    cio_server *srv;
    CHECK_OK(cio_start_server(loop, tiny_echo, NULL, "127.0.0.1", "0", NULL, &srv));
    int fd;
    CHECK_EQ(cio_server_sockets(srv, &fd, 1), 1);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
    snprintf(tiny_port, sizeof tiny_port, "%d", ntohs(sa.sin_port));
    cio_task *clients[CONNECTIONS];
    for (int i = 0; i < CONNECTIONS; i++)
        CHECK_OK(cio_spawn(loop, tiny_client, IPTR(i), &clients[i]));
    for (int i = 0; i < CONNECTIONS; i++) {
        CHECK_OK(cio_await(clients[i], NULL));
        cio_future_unref(clients[i]);
    }
    CHECK_EQ(tiny_done, CONNECTIONS);
    CHECK_OK(cio_server_free(srv));
    return IPTR(1);
}

TEST(tiny_rings_carry_512_connections) {
    raise_fd_limit(4 * CONNECTIONS + 64);
    /* SQ 8, CQ 16: the submission queue fills many times per iteration and
     * completions overflow the CQ (the kernel keeps them: NODROP). */
    if (!getenv("CIO_URING_ENTRIES")) setenv("CIO_URING_ENTRIES", "8,16", 1);
    cio_loop *loop = test_loop();
    void *res;
    CHECK_OK(test_run(loop, tiny_main, loop, &res));
    CHECK(res == IPTR(1));
    CHECK_OK(cio_loop_free(loop));
}

/* ---- A loop that moves between threads ---- */

static atomic_int woken;

static void note_woken(cio_loop *loop, void *arg) {
    (void)arg;
    atomic_store(&woken, 1);
    cio_loop_stop(loop);
}

static void *wake_me_later(void *arg) {
    cio_loop *loop = arg;
    /* The loop is (most likely) asleep in the kernel by now; either way the
     * call must reach it. */
    usleep(20000);
    CHECK_OK(cio_call_soon_threadsafe(loop, note_woken, NULL));
    return NULL;
}

static void *run_in_thread(void *arg) {
    cio_loop *loop = arg;
    void *res;
    CHECK_OK(test_run(loop, echo_once, NULL, &res));
    CHECK(res == IPTR(1));
    /* A wake-up from another thread while this one waits in the loop. */
    atomic_store(&woken, 0);
    pthread_t waker;
    CHECK_OK(pthread_create(&waker, NULL, wake_me_later, loop));
    CHECK_OK(cio_run_forever(loop));
    CHECK_OK(pthread_join(waker, NULL));
    CHECK_EQ(atomic_load(&woken), 1);
    return NULL;
}

TEST(a_loop_made_in_one_thread_runs_in_two_others_in_turn) {
    /* On io_uring the ring belongs to the first thread that enters it
     * (SINGLE_ISSUER); the second thread gets a ring of its own, with the
     * wake-up armed again. */
    cio_loop *loop = test_loop();
    for (int i = 0; i < 2; i++) {
        pthread_t th;
        CHECK_OK(pthread_create(&th, NULL, run_in_thread, loop));
        CHECK_OK(pthread_join(th, NULL));
    }
    CHECK_OK(cio_loop_free(loop));
}

/* ---- The io_uring fast path: multishot accept, buffer ring, CQ overflow ---- */

static int listening_port(cio_server *srv) {
    int fd;
    CHECK_EQ(cio_server_sockets(srv, &fd, 1), 1);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
    return ntohs(sa.sin_port);
}

/* A server closed while a storm of clients connects: every connection the
 * kernel accepted is either served (the client reads the server's byte) or
 * closed (the client reads its end or a reset); none stays open unseen in a
 * queue, and the process has exactly the descriptors it had before. */
enum { STORM = 1000, STORM_BEFORE_SERVING = 300, STORM_SERVED = 50 };
static _Atomic int storm_connected, storm_done;
static int storm_port, storm_made, storm_delivered, storm_dropped, storm_refused, storm_stuck;
static cio_server *storm_server;

static void storm_made_one(cio_transport *t, void *ctx) {
    (void)ctx;
    CHECK_OK(cio_transport_write(t, "A", 1));
    CHECK_OK(cio_transport_close(t));
    /* Closed from inside the accept job, with connections still queued. */
    if (++storm_made == STORM_SERVED) CHECK_OK(cio_server_close(storm_server));
}

static void storm_data(cio_transport *t, const void *data, size_t len, void *ctx) {
    (void)t, (void)data, (void)len, (void)ctx;
}

static const cio_protocol storm_protocol = {.connection_made = storm_made_one,
                                            .data_received = storm_data};

static void *storm_clients(void *arg) {
    (void)arg;
    static int fds[STORM];
    int n = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)storm_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < STORM; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            /* A byte from the client: a handshake the closing listener
             * dropped half-way (the client saw it complete, the server
             * side is gone) is only found out, by a reset, when the client
             * sends; any server leaves such a client waiting otherwise. */
            (void)send(fd, "x", 1, MSG_NOSIGNAL);
            fds[n++] = fd;
            storm_connected++;
        } else {
            /* Refused once the listener is closed; a connect whose
             * handshake the closing listener cut is reset instead. */
            CHECK(errno == ECONNREFUSED || errno == ECONNRESET);
            storm_refused++;
            close(fd);
        }
    }
    /* Each connection must come to an end within the deadline: the byte,
     * or the end of stream (or a reset) of a closed one. */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < n; i++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        int left = 20000 - (int)((now.tv_sec - start.tv_sec) * 1000 +
                                 (now.tv_nsec - start.tv_nsec) / 1000000);
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        char c;
        int ready;
        do ready = left > 0 ? poll(&p, 1, left) : 0;
        while (ready < 0 && errno == EINTR);
        if (ready != 1) storm_stuck++;
        else if (recv(fds[i], &c, 1, 0) == 1 && c == 'A') storm_delivered++;
        else storm_dropped++;
        close(fds[i]);
    }
    storm_done = 1;
    return NULL;
}

static void *storm_main(void *arg) {
    cio_loop *loop = arg;
    cio_server_options opts = {.backlog = 4096, .no_start_serving = 1};
    CHECK_OK(cio_create_server(loop, &storm_protocol, NULL, "127.0.0.1", "0", &opts, &storm_server));
    storm_port = listening_port(storm_server);
    /* As asyncio, the socket listens from start_serving on. The loop then
     * stays blocked (this task sleeps without yielding) until hundreds of
     * connections wait in the backlog, so the first accepts report many
     * at once and the close finds them queued. */
    CHECK_OK(cio_server_start_serving(storm_server));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, storm_clients, NULL));
    while (storm_connected < STORM_BEFORE_SERVING) usleep(1000);
    while (!storm_done) CHECK_OK(cio_sleep(0.01));
    CHECK_OK(pthread_join(th, NULL));
    CHECK_OK(cio_server_wait_closed(storm_server));
    CHECK_OK(cio_server_free(storm_server));
    return IPTR(1);
}

TEST(server_closed_during_a_connect_storm_loses_no_connection_or_descriptor) {
    raise_fd_limit(2 * STORM + 64);
    int before = test_open_fds();
    cio_loop *loop = test_loop();
    void *res;
    CHECK_OK(test_run(loop, storm_main, loop, &res));
    CHECK(res == IPTR(1));
    CHECK_EQ(storm_stuck, 0);
    CHECK_EQ(storm_delivered, storm_made);
    CHECK_EQ(storm_made, STORM_SERVED);
    CHECK_EQ(storm_delivered + storm_dropped + storm_refused, STORM);
    CHECK(storm_dropped > 0);
    /* On io_uring the multishot accept did the accepting. */
    if (loop->io.caps & CIO__CAP_ACCEPT_MULTI)
        CHECK(loop->io.counters.accepts >= (uint64_t)STORM_SERVED);
    CHECK_OK(cio_loop_free(loop));
    CHECK_EQ(test_open_fds(), before);
}

/* A buffer ring of 8 x 4 KiB under 32 connections that all send at once:
 * the ring runs out (on io_uring the receive stops with ENOBUFS and the
 * transport falls back to recv()), and every byte still arrives, in order. */
enum { RING_CONNS = 32, RING_BYTES = 256 * 1024 };
static int ring_port, ring_ok;

static unsigned char ring_byte(int conn, size_t k) {
    return (unsigned char)(conn * 31 + k * 7 + k / 4096);
}

static void *ring_reader(cio_stream *s, void *arg) {
    (void)arg;
    unsigned char id;
    CHECK_EQ(cio_stream_readexactly(s, &id, 1), 1);
    size_t k = 0;
    unsigned char buf[3000];
    ssize_t n;
    while ((n = cio_stream_read(s, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++, k++)
            if (buf[i] != ring_byte(id, k)) FAIL("connection %d byte %zu is wrong", id, k);
    }
    CHECK_EQ(n, 0);
    CHECK_EQ(k, RING_BYTES);
    ring_ok++;
    return NULL;
}

static void *ring_writer(void *arg) {
    int id = PTRI(arg);
    char port[16];
    snprintf(port, sizeof port, "%d", ring_port);
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", port, &c));
    unsigned char *data = malloc(RING_BYTES + 1);
    CHECK(data != NULL);
    data[0] = (unsigned char)id;
    for (size_t k = 0; k < RING_BYTES; k++) data[k + 1] = ring_byte(id, k);
    CHECK_OK(cio_stream_write(c, data, RING_BYTES + 1));
    free(data);
    CHECK_OK(cio_stream_drain(c));
    CHECK_OK(cio_stream_write_eof(c));
    char end;
    CHECK_EQ(cio_stream_read(c, &end, 1), 0);
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

static void *ring_main(void *arg) {
    cio_loop *loop = arg;
    cio_server *srv;
    CHECK_OK(cio_start_server(loop, ring_reader, NULL, "127.0.0.1", "0", NULL, &srv));
    ring_port = listening_port(srv);
    cio_task *w[RING_CONNS];
    for (int i = 0; i < RING_CONNS; i++) CHECK_OK(cio_spawn(loop, ring_writer, IPTR(i), &w[i]));
    for (int i = 0; i < RING_CONNS; i++) {
        CHECK_OK(cio_await(w[i], NULL));
        cio_future_unref(w[i]);
    }
    while (ring_ok < RING_CONNS) CHECK_OK(cio_sleep(0.001));
    CHECK_OK(cio_server_close(srv));
    CHECK_OK(cio_server_wait_closed(srv));
    CHECK_OK(cio_server_free(srv));
    return IPTR(1);
}

TEST(a_buffer_ring_of_eight_that_runs_out_loses_no_byte) {
    raise_fd_limit(4 * RING_CONNS + 64);
    setenv("CIO_URING_BUFS", "8,4096", 1);
    cio_loop *loop = test_loop();
    void *res;
    CHECK_OK(test_run(loop, ring_main, loop, &res));
    CHECK(res == IPTR(1));
    CHECK_EQ(ring_ok, RING_CONNS);
    /* On io_uring the ring did run out, and that path delivered. */
    if (loop->io.caps & CIO__CAP_RECV_RING) CHECK(loop->io.counters.enobufs > 0);
    CHECK_OK(cio_loop_free(loop));
}

/* A CQ of 16 and a burst of 64 connections' data arriving while the loop's
 * thread is held: the kernel keeps the completions the CQ has no room for
 * (IORING_SQ_CQ_OVERFLOW), the backend flushes them, and nothing is lost. */
enum { BURST_CONNS = 64, BURST_BYTES = 100 };
static int burst_fds[BURST_CONNS];
static size_t burst_received;
static int burst_eofs;
static sem_t burst_go, burst_sent;

static void burst_data(cio_transport *t, const void *data, size_t len, void *ctx) {
    (void)t, (void)data, (void)ctx;
    burst_received += len;
}

static int burst_eof(cio_transport *t, void *ctx) {
    (void)t, (void)ctx;
    burst_eofs++;
    return 0;
}

static const cio_protocol burst_protocol = {.data_received = burst_data, .eof_received = burst_eof};

static void *burst_sender(void *arg) {
    (void)arg;
    char msg[BURST_BYTES];
    memset(msg, 'b', sizeof msg);
    CHECK_OK(sem_wait(&burst_go));
    for (int i = 0; i < BURST_CONNS; i++) {
        CHECK_EQ(send(burst_fds[i], msg, sizeof msg, 0), (ssize_t)sizeof msg);
        shutdown(burst_fds[i], SHUT_WR);
    }
    CHECK_OK(sem_post(&burst_sent));
    return NULL;
}

static void *burst_main(void *arg) {
    cio_loop *loop = arg;
    cio_server *srv;
    CHECK_OK(cio_create_server(loop, &burst_protocol, NULL, "127.0.0.1", "0", NULL, &srv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)listening_port(srv))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < BURST_CONNS; i++) {
        burst_fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK_OK(connect(burst_fds[i], (struct sockaddr *)&sa, sizeof sa));
    }
    /* Every connection accepted and its receive armed. */
    while (cio_server_sockets(srv, NULL, 0) >= 0 && loop_stats(loop).io_in_flight < BURST_CONNS + 1)
        CHECK_OK(cio_sleep(0.001));
    CHECK_OK(cio_sleep(0.05));
    /* The loop's thread is held (deliberately blocked) while all of it
     * arrives: its next enter finds far more than 16 completions. */
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, burst_sender, NULL));
    CHECK_OK(sem_post(&burst_go));
    CHECK_OK(sem_wait(&burst_sent));
    while (burst_eofs < BURST_CONNS) CHECK_OK(cio_sleep(0.001));
    CHECK_OK(pthread_join(th, NULL));
    for (int i = 0; i < BURST_CONNS; i++) close(burst_fds[i]);
    CHECK_OK(cio_server_close(srv));
    CHECK_OK(cio_server_wait_closed(srv));
    CHECK_OK(cio_server_free(srv));
    return IPTR(1);
}

TEST(a_tiny_cq_overflows_under_a_burst_and_loses_nothing) {
    raise_fd_limit(4 * BURST_CONNS + 64);
    setenv("CIO_URING_ENTRIES", "8,16", 1);
    CHECK_OK(sem_init(&burst_go, 0, 0));
    CHECK_OK(sem_init(&burst_sent, 0, 0));
    cio_loop *loop = test_loop();
    void *res;
    CHECK_OK(test_run(loop, burst_main, loop, &res));
    CHECK(res == IPTR(1));
    CHECK_EQ(burst_received, (size_t)BURST_CONNS * BURST_BYTES);
    CHECK_EQ(burst_eofs, BURST_CONNS);
    if (strcmp(cio_loop_backend(loop), "io_uring") == 0) CHECK(loop->io.counters.overflows > 0);
    CHECK_OK(cio_loop_free(loop));
}

/* One io_uring_enter per loop iteration: under an echo load of 64
 * connections (64 B messages, streams on both sides), between two
 * snapshots taken while only messages flow, the backend entered the kernel
 * at most once per iteration of the loop (loop_stats().iterations). */
enum { STEADY_CONNS = 64, STEADY_ROUNDS = 50 };
static char steady_port[16];
static int steady_connected, steady_finished, steady_release;

static void *steady_client(void *arg) {
    (void)arg;
    cio_stream *c;
    CHECK_OK(cio_open_connection("127.0.0.1", steady_port, &c));
    steady_connected++;
    while (steady_connected < STEADY_CONNS) CHECK_OK(cio_sleep(0.001));
    char out[MESSAGE], in[MESSAGE];
    memset(out, 'x', sizeof out);
    for (int round = 0; round < STEADY_ROUNDS; round++) {
        CHECK_OK(cio_stream_write(c, out, sizeof out));
        CHECK_OK(cio_stream_drain(c));
        CHECK_EQ(cio_stream_readexactly(c, in, sizeof in), MESSAGE);
    }
    steady_finished++;
    while (!steady_release) CHECK_OK(cio_sleep(0.001));
    CHECK_OK(cio_stream_free(c));
    return NULL;
}

static void *steady_main(void *arg) {
    cio_loop *loop = arg;
    cio_server *srv;
    CHECK_OK(cio_start_server(loop, tiny_echo, NULL, "127.0.0.1", "0", NULL, &srv));
    snprintf(steady_port, sizeof steady_port, "%d", listening_port(srv));
    cio_task *clients[STEADY_CONNS];
    for (int i = 0; i < STEADY_CONNS; i++)
        CHECK_OK(cio_spawn(loop, steady_client, NULL, &clients[i]));
    while (steady_connected < STEADY_CONNS) CHECK_OK(cio_sleep(0.001));
    uint64_t enters0 = loop->io.counters.enters, iterations0 = loop_stats(loop).iterations;
    while (steady_finished < STEADY_CONNS) CHECK_OK(cio_sleep(0.001));
    uint64_t enters = loop->io.counters.enters - enters0;
    uint64_t iterations = loop_stats(loop).iterations - iterations0;
    steady_release = 1;
    for (int i = 0; i < STEADY_CONNS; i++) {
        CHECK_OK(cio_await(clients[i], NULL));
        cio_future_unref(clients[i]);
    }
    CHECK_OK(cio_server_free(srv));
    printf("%" PRIu64 " io_uring_enter calls in %" PRIu64 " loop iterations (%d messages)\n",
           enters, iterations, STEADY_CONNS * STEADY_ROUNDS);
    if (strcmp(cio_loop_backend(loop), "io_uring") == 0) {
        CHECK(enters > 0);
        /* The snapshots themselves fall between two iterations. */
        CHECK(enters <= iterations + 1);
    }
    return IPTR(1);
}

TEST(one_io_uring_enter_per_loop_iteration_under_an_echo_load) {
    raise_fd_limit(4 * STEADY_CONNS + 64);
    cio_loop *loop = test_loop();
    void *res;
    CHECK_OK(test_run(loop, steady_main, loop, &res));
    CHECK(res == IPTR(1));
    CHECK_OK(cio_loop_free(loop));
}
