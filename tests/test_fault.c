/*
 * Fault injection: make the Nth allocation or system call fail, for every
 * N until a run completes without reaching the fault. Each public call
 * must either work or return the injected error (-ENOMEM, or -EMFILE for a
 * descriptor); nothing may crash, and the sanitizer and Valgrind runs check
 * that nothing leaks.
 */
#include "test.h"

#include "base/fault.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static int allowed(int rc) {
    return rc == 0 || rc == -ENOMEM || rc == -EMFILE;
}

#define TRY(call)                                                         \
    do {                                                                  \
        int try_rc_ = (call);                                             \
        if (!allowed(try_rc_)) FAIL("%s: %s", #call, cio_strerror(try_rc_)); \
        if (try_rc_ < 0) return cio_raise(try_rc_);                       \
    } while (0)

static void *child(void *arg) {
    int rc = cio_sleep((double)PTRI(arg) / 1000.0);
    if (rc < 0) return cio_raise(rc);
    return arg;
}

static void noop(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
}

static void on_done(cio_future *fut, void *arg) {
    (void)fut;
    (void)arg;
}

/* A little of everything: spawn, gather, timers, done callbacks, futures,
 * wait_for and wait. */
static void *scenario(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *kids[3] = {NULL, NULL, NULL};
    cio_future *g = NULL, *f = NULL;
    void *result = NULL;
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) rc = cio_spawn(loop, child, IPTR(i + 1), &kids[i]);
    if (rc == 0) rc = cio_gather(loop, kids, 3, 0, &g);
    if (rc == 0) rc = cio_future_add_done_callback(g, on_done, NULL);
    if (rc == 0) rc = cio_await(g, &result);
    cio_handle h;
    if (rc == 0) rc = cio_call_later(loop, 0.5, noop, NULL, &h);
    if (rc == 0) cio_handle_cancel(&h);
    if (rc == 0) rc = cio_call_soon(loop, noop, NULL, NULL);
    if (rc == 0) rc = cio_future_new(loop, &f);
    if (rc == 0) {
        rc = cio_wait_for(f, 0.001, NULL);
        if (rc == -ETIMEDOUT) rc = 0;
    }
    if (rc == 0) {
        size_t nd = 0;
        rc = cio_wait(kids, 3, CIO_ALL_COMPLETED, 1.0, NULL, &nd, NULL, NULL);
        if (rc == 0) CHECK_EQ(nd, 3);
    }
    if (!allowed(rc)) FAIL("scenario: %s", cio_strerror(rc));
    cio_future_unref(f);
    cio_future_unref(g);
    for (int i = 0; i < 3; i++) cio_future_unref(kids[i]);
    return rc < 0 ? cio_raise(rc) : NULL;
}

/* Runs the scenario with the nth operation failing; returns how many
 * operations the run made. */
static int64_t run_with_fault(int64_t nth) {
    cio__fault_arm(nth);
    cio_loop *loop = NULL;
    int rc = cio_loop_new(&loop);
    if (rc < 0) {
        CHECK(allowed(rc));
        CHECK(loop == NULL);
        return cio__fault_arm(0);
    }
    cio_task *t = NULL;
    rc = cio_spawn(loop, scenario, NULL, &t);
    CHECK(allowed(rc));
    if (rc == 0) {
        rc = cio_run_until_complete(loop, t, NULL);
        CHECK(allowed(rc));
        cio_future_unref(t);
    }
    int64_t calls = cio__fault_arm(0);
    cio_loop_free(loop);
    return calls;
}

TEST(sweep_every_failure_point) {
    int64_t total = run_with_fault(0);
    CHECK_INT(total, >, 10);
    /* The count varies a little between runs (how often the loop polls
     * depends on timing), so the sweep goes on until a run ends before
     * reaching the nth operation: every point up to there failed once. */
    int64_t n = 1;
    bool covered = false;
    for (; n <= 4 * total + 16; n++) {
        int64_t calls = run_with_fault(n);
        if (calls < n) {
            covered = true;
            break;
        }
    }
    fprintf(stderr, "swept %lld failure points (a plain run makes %lld operations)\n",
            (long long)n - 1, (long long)total);
    CHECK(covered);
    CHECK_INT(n - 1, >, 10);
}

TEST(loop_new_fails_cleanly) {
    for (int64_t n = 1; n <= 8; n++) {
        cio__fault_arm(n);
        cio_loop *loop = (cio_loop *)1;
        int rc = cio_loop_new(&loop);
        cio__fault_arm(0);
        if (rc == 0) {
            cio_loop_free(loop);
            break;
        }
        CHECK(allowed(rc));
        CHECK(loop == NULL);
    }
}

TEST(spawn_fails_cleanly) {
    cio_loop *loop = test_loop();
    for (int64_t n = 1; n <= 8; n++) {
        cio__fault_arm(n);
        cio_task *t = (cio_task *)1;
        int rc = cio_spawn(loop, child, IPTR(1), &t);
        cio__fault_arm(0);
        if (rc == 0) {
            CHECK_OK(cio_run_until_complete(loop, t, NULL));
            cio_future_unref(t);
            continue;
        }
        CHECK_ERR(rc, -ENOMEM);
        CHECK(t == NULL);
    }
    /* Nothing half-made is left behind. */
    CHECK_EQ(cio_all_tasks(loop, NULL, 0), 0);
    cio_loop_free(loop);
}

TEST(timers_fail_cleanly) {
    cio_loop *loop = test_loop();
    int made = 0;
    for (int i = 0; i < 2000; i++) {
        cio__fault_arm(i % 7 == 3 ? 1 : 0);
        cio_handle h;
        int rc = cio_call_later(loop, 0.001 * (i % 5), noop, NULL, &h);
        cio__fault_arm(0);
        if (rc == 0) made++;
        else CHECK_ERR(rc, -ENOMEM);
    }
    CHECK_INT(made, >, 0);
    cio_loop_free(loop);
}

/* ---- the I/O paths ------------------------------------------------------ */

static int io_listener = -1;
static struct sockaddr_in io_addr;

static cio_task *io_client;

/* A server that fails before it accepted would leave the client waiting
 * for a reply for ever: it cancels the client instead. */
static void *server_failed(int rc) {
    cio_task_cancel(io_client, "server failed");
    return cio_raise(rc);
}

static void *io_server(void *arg) {
    (void)arg;
    int rc = cio_wait_readable(io_listener);
    if (rc < 0) return server_failed(rc);
    int conn = cio_sock_accept(io_listener, NULL, NULL);
    if (conn < 0) return server_failed(conn);
    char buf[5];
    size_t got = 0;
    ssize_t n = 1;
    while (got < sizeof buf && (n = cio_sock_recv(conn, buf + got, sizeof buf - got)) > 0)
        got += (size_t)n;
    if (n > 0) n = cio_sock_sendall(conn, buf, got);
    cio_close(conn);
    /* A short read is a connection an earlier, failed run left in the
     * backlog: this run's client is still waiting to be accepted. */
    if (n <= 0) return server_failed(n < 0 ? (int)n : -ECONNRESET);
    return NULL;
}

static void on_readable(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
}

/* A client and a server over loopback TCP, with a watcher on the side. On
 * any failure each side closes its socket, so the other side ends too. */
static void *io_scenario(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    io_client = cio_current_task();
    cio_task *server = NULL;
    int rc = cio_spawn(loop, io_server, NULL, &server);
    if (rc < 0) return cio_raise(rc);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    int watched = cio_add_reader(loop, fd, on_readable, NULL);
    rc = cio_sock_connect(fd, (struct sockaddr *)&io_addr, sizeof io_addr);
    if (rc == 0) rc = (int)cio_sock_sendall(fd, "hello", 5);
    char buf[5];
    size_t got = 0;
    ssize_t n = 1;
    while (rc >= 0 && got < sizeof buf && (n = cio_sock_recv(fd, buf + got, sizeof buf - got)) > 0)
        got += (size_t)n;
    if (rc >= 0 && n < 0) rc = (int)n;
    if (rc >= 0 && got != sizeof buf) rc = -ECONNRESET;
    /* A watcher the backend could not re-arm was dropped and reported. */
    if (watched == 0) CHECK_INT(cio_remove_reader(loop, fd), >=, 0);
    int closed = cio_close(fd);
    if (rc >= 0) rc = closed;
    /* The server may still wait to accept if the client never connected. */
    cio_task_cancel(server, NULL);
    int srv = cio_await(server, NULL);
    cio_future_unref(server);
    if (rc >= 0 && srv < 0 && srv != -ECANCELED) rc = srv;
    return rc < 0 ? cio_raise(rc) : NULL;
}

static int open_descriptors(void) {
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0) n++;
    return n;
}

/* Runs the I/O scenario with the nth operation failing; *rc gets its
 * outcome. Returns how many operations the run made. */
static void report_hang(cio_loop *loop, void *arg) {
    cio_loop_dump_tasks(loop, stderr);
    FAIL("the I/O scenario hangs with operation %lld failing", (long long)(intptr_t)arg);
}

static int64_t run_io_with_fault(int64_t nth, int *outcome) {
    /* A listener of its own per run: a failed run leaves no connection in
     * the backlog for the next run's server. */
    io_listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&io_addr, 0, sizeof io_addr);
    io_addr.sin_family = AF_INET;
    io_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_OK(bind(io_listener, (struct sockaddr *)&io_addr, sizeof io_addr));
    socklen_t len = sizeof io_addr;
    CHECK_OK(getsockname(io_listener, (struct sockaddr *)&io_addr, &len));
    CHECK_OK(listen(io_listener, 64));
    cio_loop *loop = NULL;
    int rc = cio_loop_new(&loop);
    /* A hang becomes a failure that names the tasks and what they wait on. */
    if (rc == 0) CHECK_OK(cio_call_later(loop, 10.0, report_hang, (void *)(intptr_t)nth, NULL));
    cio__fault_arm(nth);
    if (rc == 0) {
        cio_task *t = NULL;
        rc = cio_spawn(loop, io_scenario, NULL, &t);
        if (rc == 0) {
            rc = cio_run_until_complete(loop, t, NULL);
            cio_future_unref(t);
        }
    }
    int64_t calls = cio__fault_arm(0);
    cio_loop_free(loop);
    close(io_listener);
    *outcome = rc;
    return calls;
}

TEST(sweep_every_failure_point_of_the_io_paths) {
    /* Every allocation and system call of accept, connect, send, recv,
     * descriptor waits, watchers, close and the loop's polling fails once:
     * the failure comes back from a public call, nothing hangs, no
     * descriptor or byte of memory leaks (ASan, Valgrind). */
    int fds_before = open_descriptors();
    int rc;
    int64_t total = run_io_with_fault(0, &rc);
    CHECK_OK(rc);
    CHECK_INT(total, >, 20);
    int64_t n = 1, failed = 0;
    bool covered = false;
    /* IO_FAULT_ONLY=n starts the sweep at point n, to debug one failure. */
    if (getenv("IO_FAULT_ONLY")) n = atoll(getenv("IO_FAULT_ONLY"));
    for (; n <= 4 * total + 16; n++) {
        int64_t calls = run_io_with_fault(n, &rc);
        CHECK_EQ(open_descriptors(), fds_before);
        if (calls < n) {
            CHECK_OK(rc); /* not reached: the run must have succeeded */
            covered = true;
            break;
        }
        if (rc < 0) failed++;
    }
    fprintf(stderr, "swept %lld I/O failure points (%lld came back as errors)\n", (long long)n - 1,
            (long long)failed);
    CHECK(covered);
    CHECK_INT(failed, >, 10);
}

/* ---- The thread pool, cross-thread calls and name resolution ---- */

static int allowed_threads(int rc) {
    return allowed(rc) || rc == -EAGAIN;
}

static void *identity(void *arg) {
    return arg;
}

static void *thread_scenario(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    void *r = NULL;
    int rc = cio_to_thread(identity, IPTR(3), &r);
    if (rc == 0) CHECK_EQ(PTRI(r), 3);
    struct addrinfo *res = NULL;
    if (rc == 0) rc = cio_getaddrinfo("localhost", "80", NULL, &res);
    if (res) freeaddrinfo(res);
    res = NULL;
    if (rc == 0) rc = cio_getaddrinfo("127.0.0.1", "80", NULL, &res);
    if (res) freeaddrinfo(res);
    if (rc == 0) rc = cio_call_soon_threadsafe(loop, noop, NULL);
    cio_tsfuture *f = NULL;
    if (rc == 0) rc = cio_run_coroutine_threadsafe(loop, child, IPTR(1), &f);
    while (rc == 0 && !cio_tsfuture_done(f)) rc = cio_sleep(0.001);
    if (rc == 0) {
        rc = cio_tsfuture_result(f, 0, &r);
        if (rc == 0) CHECK_EQ(PTRI(r), 1);
    }
    cio_tsfuture_free(f);
    if (rc == 0) rc = cio_pool_shutdown(CIO_NO_TIMEOUT);
    if (!allowed_threads(rc)) FAIL("thread scenario: %s", cio_strerror(rc));
    return rc < 0 ? cio_raise(rc) : NULL;
}

static int64_t run_threads_with_fault(int64_t nth, int *outcome) {
    cio__fault_arm(nth);
    cio_loop *loop = NULL;
    int rc = cio_loop_new(&loop);
    if (rc == 0) {
        cio_task *t = NULL;
        rc = cio_spawn(loop, thread_scenario, NULL, &t);
        if (rc == 0) {
            rc = cio_run_until_complete(loop, t, NULL);
            cio_future_unref(t);
        }
    }
    CHECK(allowed_threads(rc));
    int64_t calls = cio__fault_arm(0);
    cio_loop_free(loop);
    *outcome = rc;
    return calls;
}

TEST(sweep_every_failure_point_of_the_thread_pool) {
    /* Every allocation of the inbox, the thread-safe future, the pool and
     * a lookup, and every thread start, fails once: each comes back from a
     * public call (-ENOMEM, or -EAGAIN for the first worker), nothing
     * hangs, and nothing leaks (ASan, Valgrind). */
    int rc;
    int64_t total = run_threads_with_fault(0, &rc);
    CHECK_OK(rc);
    int64_t n = 1, failed = 0, eagain = 0;
    bool covered = false;
    for (; n <= 4 * total + 16; n++) {
        int64_t calls = run_threads_with_fault(n, &rc);
        if (calls < n) {
            CHECK_OK(rc);
            covered = true;
            break;
        }
        if (rc < 0) failed++;
        if (rc == -EAGAIN) eagain++;
    }
    fprintf(stderr, "swept %lld thread failure points (%lld came back as errors)\n",
            (long long)n - 1, (long long)failed);
    CHECK(covered);
    CHECK_INT(failed, >, 5);
    CHECK_INT(eagain, >=, 1);
}
