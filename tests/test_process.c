/*
 * Subprocesses (asyncio's create_subprocess_exec/_shell, Process, and
 * loop.subprocess_exec with a SubprocessProtocol): exit codes and signal
 * deaths, every kind of standard descriptor, cwd, env, pass_fds and
 * close_fds, communicate with large data both ways, cancellation that
 * leaves the child running and loses no output, a thousand children with
 * nothing left behind, the thread fallback without pidfd, and lifetimes.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "base/fault.h"

extern int cio__process_no_pidfd;

/* No child of this process is left, not even a zombie. */
static int no_children(void) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
}

static cio_loop *the_loop;

static int run_sh(const char *cmd, const cio_process_options *o, int *code) {
    cio_process *p;
    int rc = cio_create_subprocess_shell(the_loop, cmd, o, &p);
    if (rc < 0) return rc;
    rc = cio_process_wait(p, code);
    CHECK_OK(cio_process_free(p));
    return rc;
}

static void *exit_codes(void *arg) {
    (void)arg;
    int code = 99;
    char *const t_argv[] = {"true", NULL};
    cio_process *p;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "true", t_argv, NULL, &p));
    CHECK(cio_process_pid(p) > 0);
    CHECK_OK(cio_process_wait(p, &code));
    CHECK_EQ(code, 0);
    CHECK_EQ(cio_process_returncode(p, &code), 1);
    CHECK_EQ(code, 0);
    /* A second wait answers at once. */
    CHECK_OK(cio_process_wait(p, NULL));
    CHECK_ERR(cio_process_send_signal(p, SIGTERM), -ESRCH);
    CHECK_OK(cio_process_free(p));
    CHECK_OK(cio_create_subprocess_exec(the_loop, "/bin/false", NULL, NULL, &p));
    CHECK_OK(cio_process_wait(p, &code));
    CHECK_EQ(code, 1);
    CHECK_OK(cio_process_free(p));
    CHECK_OK(run_sh("exit 7", NULL, &code));
    CHECK_EQ(code, 7);
    /* Killed by a signal: minus the signal, as asyncio. */
    CHECK_OK(run_sh("kill -TERM $$", NULL, &code));
    CHECK_EQ(code, -SIGTERM);
    char *const s_argv[] = {"sleep", "30", NULL};
    CHECK_OK(cio_create_subprocess_exec(the_loop, "sleep", s_argv, NULL, &p));
    CHECK_EQ(cio_process_returncode(p, &code), 0);
    CHECK_OK(cio_process_kill(p));
    CHECK_OK(cio_process_wait(p, &code));
    CHECK_EQ(code, -SIGKILL);
    CHECK_OK(cio_process_free(p));
    CHECK_OK(cio_create_subprocess_exec(the_loop, "sleep", s_argv, NULL, &p));
    CHECK_OK(cio_process_terminate(p));
    CHECK_OK(cio_process_wait(p, &code));
    CHECK_EQ(code, -SIGTERM);
    CHECK_OK(cio_process_free(p));
    return NULL;
}

static void with_loop(cio_coro_fn fn, void *arg) {
    the_loop = test_loop();
    CHECK_OK(test_run(the_loop, fn, arg, NULL));
    CHECK_OK(cio_loop_close(the_loop));
    cio_loop_free(the_loop);
    CHECK(no_children());
}

TEST(exit_codes_and_signal_deaths) {
    with_loop(exit_codes, NULL);
}

TEST(exit_codes_and_signal_deaths_without_pidfd) {
    /* As on a kernel without pidfd_open: a thread waits for each child. */
    cio__process_no_pidfd = 1;
    with_loop(exit_codes, NULL);
}

/* Runs cmd with stdout (and maybe stderr) piped: returns what came. */
static char *output_of(const char *cmd, cio_process_options *o, size_t *len, char **err) {
    cio_process *p;
    CHECK_OK(cio_create_subprocess_shell(the_loop, cmd, o, &p));
    void *out = NULL, *e = NULL;
    size_t elen = 0;
    CHECK_OK(cio_process_communicate(p, NULL, 0, &out, len, &e, &elen));
    if (err) *err = e;
    else free(e);
    CHECK_OK(cio_process_free(p));
    return out;
}

static void *stdio_kinds(void *arg) {
    (void)arg;
    cio_process_options o = {0};
    o.stdio[1] = CIO_STDIO_PIPE;
    o.stdio[2] = CIO_STDIO_PIPE;
    size_t len;
    char *err = NULL;
    char *out = output_of("echo out; echo err >&2", &o, &len, &err);
    CHECK_EQ(len, 4);
    CHECK(memcmp(out, "out\n", 4) == 0);
    CHECK(err && memcmp(err, "err\n", 4) == 0);
    free(out);
    free(err);
    /* stderr merged into stdout. */
    o.stdio[2] = CIO_STDIO_STDOUT;
    out = output_of("echo out; echo err >&2", &o, &len, &err);
    CHECK_EQ(len, 8);
    CHECK(memcmp(out, "out\nerr\n", 8) == 0);
    CHECK(err == NULL);
    free(out);
    /* /dev/null: the child reads an immediate end and writes into nothing. */
    o.stdio[0] = CIO_STDIO_DEVNULL;
    o.stdio[2] = CIO_STDIO_DEVNULL;
    out = output_of("cat; echo done; echo hidden >&2", &o, &len, NULL);
    CHECK_EQ(len, 5);
    CHECK(memcmp(out, "done\n", 5) == 0);
    free(out);
    /* A descriptor of the program's: the child writes into our pipe. */
    int p[2];
    CHECK_OK(pipe(p));
    cio_process_options f = {0};
    f.stdio[1] = CIO_STDIO_FD;
    f.stdio_fd[1] = p[1];
    int code;
    CHECK_OK(run_sh("echo via-fd", &f, &code));
    CHECK_EQ(code, 0);
    char buf[16] = {0};
    CHECK_EQ(read(p[0], buf, sizeof buf), 7);
    CHECK(memcmp(buf, "via-fd\n", 7) == 0);
    close(p[0]);
    close(p[1]);
    /* stdin as a stream: written, closed, echoed back. */
    cio_process_options io = {0};
    io.stdio[0] = CIO_STDIO_PIPE;
    io.stdio[1] = CIO_STDIO_PIPE;
    cio_process *proc;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "cat", NULL, &io, &proc));
    CHECK(cio_process_stdin(proc) && cio_process_stdout(proc) && !cio_process_stderr(proc));
    CHECK(cio_process_pipe_transport(proc, 0) != NULL);
    CHECK(cio_process_pipe_transport(proc, 2) == NULL);
    CHECK(cio_process_pipe_transport(proc, 3) == NULL);
    CHECK_OK(cio_stream_write(cio_process_stdin(proc), "a line\n", 7));
    CHECK_OK(cio_stream_drain(cio_process_stdin(proc)));
    CHECK_EQ(cio_stream_readline(cio_process_stdout(proc), buf, sizeof buf), 7);
    CHECK(memcmp(buf, "a line\n", 7) == 0);
    CHECK_OK(cio_stream_close(cio_process_stdin(proc)));
    CHECK_EQ(cio_stream_read(cio_process_stdout(proc), buf, sizeof buf), 0);
    CHECK_OK(cio_process_wait(proc, &code));
    CHECK_EQ(code, 0);
    CHECK_OK(cio_process_free(proc));
    return NULL;
}

TEST(standard_descriptors_inherit_pipe_devnull_stdout_and_fd) {
    with_loop(stdio_kinds, NULL);
}

static void *cwd_env_fds(void *arg) {
    (void)arg;
    cio_process_options o = {0};
    o.stdio[1] = CIO_STDIO_PIPE;
    o.cwd = "/tmp";
    char *env[] = {"CIO_TEST_VAR=from-env", "PATH=/usr/bin:/bin", NULL};
    o.env = env;
    size_t len;
    char *out = output_of("pwd; echo $CIO_TEST_VAR", &o, &len, NULL);
    CHECK_EQ(len, 14);
    CHECK(memcmp(out, "/tmp\nfrom-env\n", 14) == 0);
    free(out);
    /* close_fds: a descriptor without close-on-exec is still closed in the
     * child, unless passed or everything is inherited. */
    int p[2];
    CHECK_OK(pipe(p));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "if [ -e /proc/self/fd/%d ]; then echo open; else echo closed; fi",
             p[1]);
    cio_process_options c = {0};
    c.stdio[1] = CIO_STDIO_PIPE;
    out = output_of(cmd, &c, &len, NULL);
    CHECK(len == 7 && memcmp(out, "closed\n", 7) == 0);
    free(out);
    c.pass_fds = &p[1];
    c.n_pass_fds = 1;
    out = output_of(cmd, &c, &len, NULL);
    CHECK(len == 5 && memcmp(out, "open\n", 5) == 0);
    free(out);
    /* A passed descriptor keeps its number and works. */
    snprintf(cmd, sizeof cmd, "echo passed >&%d", p[1]);
    int code;
    CHECK_OK(run_sh(cmd, &c, &code));
    CHECK_EQ(code, 0);
    char buf[16] = {0};
    CHECK_EQ(read(p[0], buf, sizeof buf), 7);
    CHECK(memcmp(buf, "passed\n", 7) == 0);
    cio_process_options inherit = {0};
    inherit.stdio[1] = CIO_STDIO_PIPE;
    inherit.inherit_fds = 1;
    snprintf(cmd, sizeof cmd, "if [ -e /proc/self/fd/%d ]; then echo open; else echo closed; fi",
             p[1]);
    out = output_of(cmd, &inherit, &len, NULL);
    CHECK(len == 5 && memcmp(out, "open\n", 5) == 0);
    free(out);
    close(p[0]);
    close(p[1]);
    /* A new session: the child leads its own. */
    cio_process_options sess = {0};
    sess.stdio[1] = CIO_STDIO_PIPE;
    sess.start_new_session = 1;
    out = output_of("ps -o sid= -p $$ 2>/dev/null || cat /proc/$$/stat | cut -d' ' -f6; echo $$",
                    &sess, &len, NULL);
    int sid = 0, pid = -1;
    char text[64] = {0};
    CHECK(len < sizeof text);
    memcpy(text, out, len);
    CHECK_EQ(sscanf(text, "%d %d", &sid, &pid), 2);
    CHECK_EQ(sid, pid);
    free(out);
    return NULL;
}

TEST(cwd_env_pass_fds_close_fds_and_new_session) {
    with_loop(cwd_env_fds, NULL);
}

static void *big_both_ways(void *arg) {
    (void)arg;
    size_t n = (size_t)16 << 20;
    char *in = malloc(n);
    for (size_t i = 0; i < n; i++) in[i] = (char)(i * 31 + (i >> 12));
    cio_process_options o = {0};
    o.stdio[0] = o.stdio[1] = o.stdio[2] = CIO_STDIO_PIPE;
    cio_process *p;
    /* tee writes everything to stdout and stderr at once while it reads:
     * 16 MiB in, 16 MiB out twice, none of it able to wait for the rest. */
    CHECK_OK(cio_create_subprocess_shell(the_loop, "tee /dev/stderr", &o, &p));
    void *out = NULL, *err = NULL;
    size_t olen = 0, elen = 0;
    CHECK_OK(cio_process_communicate(p, in, n, &out, &olen, &err, &elen));
    CHECK_EQ(olen, n);
    CHECK_EQ(elen, n);
    CHECK(memcmp(out, in, n) == 0);
    CHECK(memcmp(err, in, n) == 0);
    int code;
    CHECK_EQ(cio_process_returncode(p, &code), 1);
    CHECK_EQ(code, 0);
    CHECK_OK(cio_process_free(p));
    free(out);
    free(err);
    free(in);
    return NULL;
}

TEST(communicate_sixteen_mib_each_way_without_deadlock) {
    with_loop(big_both_ways, NULL);
}

static void *cancel_wait_and_communicate(void *arg) {
    (void)arg;
    char *const argv[] = {"sleep", "30", NULL};
    cio_process *p;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "sleep", argv, NULL, &p));
    cio_timeout scope;
    CHECK_OK(cio_timeout_enter(&scope, 0.02));
    int rc = cio_process_wait(p, NULL);
    CHECK_ERR(cio_timeout_exit(&scope, rc), -ETIMEDOUT);
    /* The child runs on and the process stays usable. */
    int code = 123;
    CHECK_EQ(cio_process_returncode(p, &code), 0);
    CHECK_EQ(code, 123);
    CHECK_OK(cio_process_send_signal(p, SIGKILL));
    CHECK_OK(cio_process_wait(p, &code));
    CHECK_EQ(code, -SIGKILL);
    CHECK_OK(cio_process_free(p));
    /* A cancelled communicate: the output that came stays. */
    cio_process_options o = {0};
    o.stdio[0] = o.stdio[1] = CIO_STDIO_PIPE;
    CHECK_OK(cio_create_subprocess_shell(the_loop, "read x; echo first $x; sleep 0.2; echo second",
                                         &o, &p));
    CHECK_OK(cio_timeout_enter(&scope, 0.1));
    void *out = NULL;
    size_t len = 0;
    rc = cio_process_communicate(p, "in\n", 3, &out, &len, NULL, NULL);
    CHECK_ERR(cio_timeout_exit(&scope, rc), -ETIMEDOUT);
    CHECK(out == NULL);
    CHECK_EQ(cio_process_returncode(p, NULL), 0);
    CHECK_OK(cio_process_communicate(p, "ignored", 7, &out, &len, NULL, NULL));
    CHECK_EQ(len, 16);
    CHECK(memcmp(out, "first in\nsecond\n", 16) == 0);
    free(out);
    CHECK_OK(cio_process_free(p));
    return NULL;
}

TEST(cancelled_wait_and_communicate_leave_the_child_running_and_lose_nothing) {
    with_loop(cancel_wait_and_communicate, NULL);
}

/* ---- communicate's edges, and signals after the exit, as asyncio's --------- */

static void *close_later(void *arg) {
    CHECK_OK(cio_sleep(0.2));
    CHECK_OK(cio_process_close(arg));
    return NULL;
}

static void *communicate_and_signal_edges(void *arg) {
    (void)arg;
    /* Closing the process during communicate ends the outputs there, and
     * what came before is returned (asyncio: (b'x\n', None), -9). */
    cio_process_options o = {0};
    o.stdio[1] = CIO_STDIO_PIPE;
    cio_process *p;
    CHECK_OK(cio_create_subprocess_shell(the_loop, "echo x; exec sleep 5", &o, &p));
    cio_task *closer;
    CHECK_OK(cio_spawn(the_loop, close_later, p, &closer));
    void *out = NULL;
    size_t len = 0;
    CHECK_OK(cio_process_communicate(p, NULL, 0, &out, &len, NULL, NULL));
    CHECK_EQ(len, 2);
    CHECK(out != NULL && memcmp(out, "x\n", 2) == 0);
    free(out);
    int code = 0;
    CHECK_EQ(cio_process_returncode(p, &code), 1);
    CHECK_EQ(code, -SIGKILL);
    CHECK_OK(cio_await(closer, NULL));
    cio_future_unref(closer);
    CHECK_OK(cio_process_free(p));

    /* A child that exited while a pipe to it is still connected (a
     * grandchild holds its stdout) is not signalled, quietly, as asyncio's
     * Popen skips it; once the pipes are gone, -ESRCH. */
    CHECK_OK(cio_create_subprocess_shell(the_loop, "sleep 0.5 & exit 0", &o, &p));
    CHECK_OK(cio_process_wait(p, &code));
    CHECK_EQ(code, 0);
    CHECK(cio_stream_transport(cio_process_stdout(p)) != NULL);
    CHECK_OK(cio_process_kill(p));
    CHECK_OK(cio_process_send_signal(p, SIGTERM));
    CHECK_OK(cio_process_close(p));
    for (int i = 0; i < 100 && cio_stream_transport(cio_process_stdout(p)); i++)
        CHECK_OK(cio_sleep(0.01));
    CHECK(cio_stream_transport(cio_process_stdout(p)) == NULL);
    CHECK_ERR(cio_process_kill(p), -ESRCH);
    CHECK_OK(cio_process_free(p));

    /* An input that cannot be sent (here: no memory to buffer what the
     * pipe does not take: the write that fills the pipe is the first
     * fallible operation, the buffer's allocation the second) is the
     * caller's error, with stdin left open; a later communicate sends it. */
    o.stdio[0] = CIO_STDIO_PIPE;
    CHECK_OK(cio_create_subprocess_shell(the_loop, "sleep 0.1; wc -c", &o, &p));
    size_t big = 1 << 20;
    char *input = calloc(1, big);
    CHECK(input != NULL);
    cio__fault_arm(2);
    int rc = cio_process_communicate(p, input, big, &out, &len, NULL, NULL);
    cio__fault_arm(0);
    CHECK_ERR(rc, -ENOMEM);
    CHECK_EQ(cio_stream_is_closing(cio_process_stdin(p)), 0);
    CHECK_OK(cio_process_communicate(p, input, big, &out, &len, NULL, NULL));
    free(input);
    /* What the failed call had already sent, and then all of it. */
    CHECK(out != NULL);
    long counted = strtol(out, NULL, 10);
    CHECK(counted >= (long)big);
    free(out);
    CHECK_OK(cio_process_free(p));
    return NULL;
}

TEST(communicate_and_signals_after_the_exit_as_asyncio) {
    with_loop(communicate_and_signal_edges, NULL);
}

static void *many_children(void *arg) {
    int CHILDREN = PTRI(arg);
    int before = test_open_fds();
    cio_process **ps = calloc(CHILDREN, sizeof *ps);
    char *const argv[] = {"true", NULL};
    for (int i = 0; i < CHILDREN; i++) {
        int rc = cio_create_subprocess_exec(the_loop, "/bin/true", argv, NULL, &ps[i]);
        CHECK_OK(rc);
    }
    for (int i = 0; i < CHILDREN; i++) {
        int code = -1;
        CHECK_OK(cio_process_wait(ps[i], &code));
        CHECK_EQ(code, 0);
        CHECK_OK(cio_process_free(ps[i]));
    }
    free(ps);
    CHECK_EQ(test_open_fds(), before);
    CHECK(no_children());
    return NULL;
}

TEST(thousand_children_in_parallel_leave_no_zombie_fd_or_pidfd) {
    with_loop(many_children, IPTR(1000));
}

/* The same, smaller, for the Valgrind run (which runs the 1,000 too
 * slowly: it has no pidfd_open, so each child gets a thread there). */
TEST(hundred_children_in_parallel_leave_no_zombie_fd_or_pidfd) {
    with_loop(many_children, IPTR(100));
}

static void *lifetimes(void *arg) {
    (void)arg;
    char *const argv[] = {"sleep", "30", NULL};
    cio_process *p;
    /* Freed while running: killed, then reaped by the loop. */
    CHECK_OK(cio_create_subprocess_exec(the_loop, "sleep", argv, NULL, &p));
    CHECK_OK(cio_process_free(p));
    for (int i = 0; i < 200 && !no_children(); i++) CHECK_OK(cio_sleep(0.01));
    CHECK(no_children());
    return NULL;
}

TEST(process_freed_while_running_is_killed_and_reaped) {
    with_loop(lifetimes, NULL);
}

TEST(loop_close_kills_and_reaps_running_children_and_processes_stay_readable) {
    the_loop = test_loop();
    char *const argv[] = {"sleep", "30", NULL};
    cio_process_options o = {0};
    o.stdio[1] = CIO_STDIO_PIPE;
    cio_process *p, *q;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "sleep", argv, &o, &p));
    cio__process_no_pidfd = 1;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "sleep", argv, NULL, &q));
    CHECK_OK(cio_loop_close(the_loop));
    CHECK(no_children());
    int code = 0;
    CHECK_EQ(cio_process_returncode(p, &code), 1);
    CHECK_EQ(code, -SIGKILL);
    CHECK_EQ(cio_process_returncode(q, &code), 1);
    CHECK_ERR(cio_process_wait(p, NULL), -EPERM);
    CHECK_ERR(cio_process_kill(p), -ESRCH);
    char buf[4];
    CHECK(cio_stream_read(cio_process_stdout(p), buf, 4) < 0);
    CHECK_OK(cio_process_free(p));
    CHECK_OK(cio_process_free(q));
    cio_loop_free(the_loop);
}

static void *communicate_forever(void *arg) {
    void *out = NULL;
    size_t len = 0;
    /* Never returns: the loop closes while it waits for the output's end. */
    cio_process_communicate(arg, NULL, 0, &out, &len, NULL, NULL);
    free(out);
    return NULL;
}

static void *start_communicating(void *arg) {
    cio_process *p = arg;
    cio_task *t;
    CHECK_OK(cio_spawn(the_loop, communicate_forever, p, &t));
    CHECK_OK(cio_sleep(0.02)); /* it is inside communicate now */
    /* While it is, the process is in use. */
    CHECK_ERR(cio_process_free(p), -EBUSY);
    cio_future_unref(t);
    return NULL;
}

TEST(a_process_whose_communicate_was_cut_by_loop_close_can_be_freed) {
    /* The task inside communicate is destroyed by the close; the process
     * it left must not stay "in use" for ever (it and its streams leaked:
     * every free was -EBUSY). */
    the_loop = test_loop();
    char *const argv[] = {"sleep", "30", NULL};
    cio_process_options o = {0};
    o.stdio[1] = CIO_STDIO_PIPE;
    cio_process *p;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "sleep", argv, &o, &p));
    CHECK_OK(test_run(the_loop, start_communicating, p, NULL));
    CHECK_OK(cio_loop_close(the_loop));
    CHECK(no_children());
    CHECK_OK(cio_process_free(p));
    cio_loop_free(the_loop);
}

/* ---- protocol mode ------------------------------------------------------ */

typedef struct events {
    char log[256];
    char out[64], err[64];
    size_t olen, elen;
    int made, exited, lost;
} events;

static void ev_made(cio_process *p, void *ctx) {
    events *e = ctx;
    e->made++;
    cio_transport *in = cio_process_pipe_transport(p, 0);
    CHECK(in != NULL);
    CHECK_OK(cio_transport_write(in, "to stdin\n", 9));
    CHECK_OK(cio_transport_close(in));
}

static void ev_data(cio_process *p, int fd, const void *data, size_t len, void *ctx) {
    (void)p;
    events *e = ctx;
    CHECK(fd == 1 || fd == 2);
    char *dst = fd == 1 ? e->out + e->olen : e->err + e->elen;
    size_t *dlen = fd == 1 ? &e->olen : &e->elen;
    CHECK(*dlen + len <= sizeof e->out);
    memcpy(dst, data, len);
    *dlen += len;
}

static void ev_pipe_lost(cio_process *p, int fd, int error, void *ctx) {
    (void)p;
    events *e = ctx;
    CHECK_EQ(error, 0);
    size_t l = strlen(e->log);
    snprintf(e->log + l, sizeof e->log - l, "pipe%d ", fd);
}

static void ev_exited(cio_process *p, void *ctx) {
    events *e = ctx;
    int code;
    CHECK_EQ(cio_process_returncode(p, &code), 1);
    CHECK_EQ(code, 3);
    e->exited++;
    size_t l = strlen(e->log);
    snprintf(e->log + l, sizeof e->log - l, "exited ");
}

static void ev_lost(cio_process *p, int error, void *ctx) {
    (void)p;
    events *e = ctx;
    CHECK_EQ(error, 0);
    CHECK_EQ(e->exited, 1);
    e->lost++;
    size_t l = strlen(e->log);
    snprintf(e->log + l, sizeof e->log - l, "lost");
}

static const cio_subprocess_protocol ev_proto = {
    .connection_made = ev_made,
    .pipe_data_received = ev_data,
    .pipe_connection_lost = ev_pipe_lost,
    .process_exited = ev_exited,
    .connection_lost = ev_lost,
};

static void *protocol_mode(void *arg) {
    events *e = arg;
    cio_process_options o = {0};
    o.stdio[0] = o.stdio[1] = o.stdio[2] = CIO_STDIO_PIPE;
    cio_process *p;
    CHECK_OK(cio_subprocess_shell(the_loop, &ev_proto, e,
                                  "read x; echo got $x; echo on-err >&2; exit 3", &o, &p));
    CHECK_EQ(e->made, 1);
    CHECK(cio_process_stdout(p) == NULL);
    CHECK_ERR(cio_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL), -CIO_EINVALSTATE);
    int code;
    CHECK_OK(cio_process_wait(p, &code));
    CHECK_EQ(code, 3);
    for (int i = 0; i < 100 && !e->lost; i++) CHECK_OK(cio_sleep(0.01));
    CHECK_OK(cio_process_free(p));
    return NULL;
}

TEST(protocol_process_gets_pipe_data_pipe_losses_exit_and_then_connection_lost) {
    events e = {0};
    with_loop(protocol_mode, &e);
    CHECK_EQ(e.olen, 13);
    CHECK(memcmp(e.out, "got to stdin\n", 13) == 0);
    CHECK_EQ(e.elen, 7);
    CHECK(memcmp(e.err, "on-err\n", 7) == 0);
    CHECK_EQ(e.lost, 1);
    /* Every pipe is lost before connection_lost, which comes last. */
    CHECK(strstr(e.log, "pipe0 ") && strstr(e.log, "pipe1 ") && strstr(e.log, "pipe2 "));
    CHECK(strstr(e.log, "exited "));
    CHECK(strcmp(e.log + strlen(e.log) - 4, "lost") == 0);
}

/* ---- errors ------------------------------------------------------------- */

static void *errors(void *arg) {
    (void)arg;
    cio_process *p = (cio_process *)&p;
    CHECK_ERR(cio_create_subprocess_exec(the_loop, "/no/such/program", NULL, NULL, &p), -ENOENT);
    CHECK(p == NULL);
    CHECK_ERR(cio_create_subprocess_exec(the_loop, "no-such-program-cio", NULL, NULL, &p),
              -ENOENT);
    CHECK_ERR(cio_create_subprocess_exec(NULL, "true", NULL, NULL, &p), -EINVAL);
    CHECK_ERR(cio_create_subprocess_exec(the_loop, NULL, NULL, NULL, &p), -EINVAL);
    CHECK_ERR(cio_create_subprocess_exec(the_loop, "", NULL, NULL, &p), -EINVAL);
    CHECK_ERR(cio_create_subprocess_exec(the_loop, "true", NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_create_subprocess_shell(the_loop, NULL, NULL, &p), -EINVAL);
    CHECK_ERR(cio_subprocess_exec(the_loop, NULL, NULL, "true", NULL, NULL, &p), -EINVAL);
    CHECK_ERR(cio_subprocess_shell(the_loop, NULL, NULL, "true", NULL, &p), -EINVAL);
    cio_process_options o = {0};
    o.stdio[0] = CIO_STDIO_STDOUT;
    CHECK_ERR(cio_create_subprocess_exec(the_loop, "true", NULL, &o, &p), -EINVAL);
    o.stdio[0] = 99;
    CHECK_ERR(cio_create_subprocess_exec(the_loop, "true", NULL, &o, &p), -EINVAL);
    o.stdio[0] = -1;
    CHECK_ERR(cio_create_subprocess_exec(the_loop, "true", NULL, &o, &p), -EINVAL);
    o.stdio[0] = CIO_STDIO_FD;
    o.stdio_fd[0] = -1;
    CHECK_ERR(cio_create_subprocess_exec(the_loop, "true", NULL, &o, &p), -EBADF);
    cio_process_options q = {0};
    q.n_pass_fds = 1;
    CHECK_ERR(cio_create_subprocess_exec(the_loop, "true", NULL, &q, &p), -EINVAL);
    int bad = -5;
    q.pass_fds = &bad;
    CHECK_ERR(cio_create_subprocess_exec(the_loop, "true", NULL, &q, &p), -EBADF);
    cio_process_options d = {0};
    d.cwd = "/no/such/dir";
    CHECK_ERR(cio_create_subprocess_exec(the_loop, "true", NULL, &d, &p), -ENOENT);
    CHECK(no_children());
    /* NULL process. */
    CHECK_ERR(cio_process_pid(NULL), -EINVAL);
    CHECK_ERR(cio_process_returncode(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_process_wait(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_process_communicate(NULL, NULL, 0, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_process_send_signal(NULL, SIGTERM), -EINVAL);
    CHECK_ERR(cio_process_terminate(NULL), -EINVAL);
    CHECK_ERR(cio_process_kill(NULL), -EINVAL);
    CHECK(cio_process_stdin(NULL) == NULL);
    CHECK(cio_process_stdout(NULL) == NULL);
    CHECK(cio_process_stderr(NULL) == NULL);
    CHECK(cio_process_pipe_transport(NULL, 0) == NULL);
    CHECK_ERR(cio_process_close(NULL), -EINVAL);
    CHECK_OK(cio_process_free(NULL));
    /* Bad arguments on a real process. */
    CHECK_OK(cio_create_subprocess_exec(the_loop, "true", NULL, NULL, &p));
    CHECK_ERR(cio_process_send_signal(p, -1), -EINVAL);
    CHECK_ERR(cio_process_send_signal(p, 1000), -EINVAL);
    CHECK_ERR(cio_process_communicate(p, NULL, 5, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_OK(cio_process_close(p));
    CHECK_OK(cio_process_close(p));
    CHECK_OK(cio_process_wait(p, NULL));
    CHECK_OK(cio_process_free(p));
    return NULL;
}

TEST(bad_input_gives_clear_errors_and_starts_nothing) {
    with_loop(errors, NULL);
}

static void *wait_for_three(void *arg) {
    int code = -1;
    CHECK_OK(cio_process_wait(arg, &code));
    CHECK_EQ(code, 3);
    return NULL;
}

TEST(a_known_exit_code_is_the_answer_in_a_task_of_another_loop) {
    the_loop = test_loop();
    cio_process *p;
    CHECK_OK(cio_create_subprocess_shell(the_loop, "exit 3", NULL, &p));
    CHECK_OK(test_run(the_loop, wait_for_three, p, NULL));
    CHECK_OK(cio_loop_free(the_loop));
    /* asyncio's wait returns a known returncode without a future, so from
     * any loop. */
    cio_loop *other = test_loop();
    CHECK_OK(test_run(other, wait_for_three, p, NULL));
    CHECK_ERR(cio_process_wait(p, NULL), -EPERM);
    CHECK_OK(cio_process_free(p));
    CHECK_OK(cio_loop_free(other));
    CHECK(no_children());
}

TEST(wait_outside_a_task_is_eperm) {
    the_loop = test_loop();
    cio_process *p;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "true", NULL, NULL, &p));
    CHECK_ERR(cio_process_wait(p, NULL), -EPERM);
    CHECK_ERR(cio_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL), -EPERM);
    CHECK_OK(cio_process_free(p));
    CHECK_OK(cio_loop_close(the_loop));
    cio_loop_free(the_loop);
    CHECK(no_children());
}

/* ---- freeing from inside the protocol's callbacks ----------------------- */

static int freed_in_callback;

static void free_on_exit(cio_process *p, void *ctx) {
    (void)ctx;
    CHECK_OK(cio_process_free(p));
    freed_in_callback++;
}

static void must_not_come(cio_process *p, int error, void *ctx) {
    (void)p;
    (void)error;
    (void)ctx;
    FAIL("connection_lost after the process was freed in process_exited");
}

static void must_not_come_exit(cio_process *p, void *ctx) {
    (void)p;
    (void)ctx;
    FAIL("process_exited after the process was freed in pipe_connection_lost");
}

static void free_on_pipe_lost(cio_process *p, int fd, int error, void *ctx) {
    (void)fd;
    (void)error;
    (void)ctx;
    CHECK_OK(cio_process_free(p));
    freed_in_callback++;
}

static void *free_in_callbacks(void *arg) {
    (void)arg;
    cio_subprocess_protocol a = {.process_exited = free_on_exit, .connection_lost = must_not_come};
    cio_process *p;
    CHECK_OK(cio_subprocess_exec(the_loop, &a, NULL, "true", NULL, NULL, &p));
    for (int i = 0; i < 200 && freed_in_callback < 1; i++) CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(freed_in_callback, 1);
    cio_subprocess_protocol b = {.pipe_connection_lost = free_on_pipe_lost,
                                 .process_exited = must_not_come_exit};
    cio_process_options o = {0};
    o.stdio[1] = o.stdio[2] = CIO_STDIO_PIPE;
    CHECK_OK(cio_subprocess_shell(the_loop, &b, NULL, "exec >&-; sleep 0.05", &o, &p));
    for (int i = 0; i < 200 && no_children() == 0; i++) CHECK_OK(cio_sleep(0.01));
    CHECK_EQ(freed_in_callback, 2);
    /* A process's stream is the process's to free. */
    cio_process_options s = {0};
    s.stdio[1] = CIO_STDIO_PIPE;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "true", NULL, &s, &p));
    CHECK_ERR(cio_stream_free(cio_process_stdout(p)), -CIO_EINVALSTATE);
    CHECK_OK(cio_process_wait(p, NULL));
    CHECK_OK(cio_process_free(p));
    return NULL;
}

TEST(a_protocol_callback_may_free_its_process) {
    with_loop(free_in_callbacks, NULL);
    CHECK(no_children());
}

/* ---- fork ---------------------------------------------------------------- */

static void *forked_child_leaves_the_process_alone(void *arg) {
    (void)arg;
    char *const argv[] = {"sleep", "30", NULL};
    cio_process *p;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "sleep", argv, NULL, &p));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The fork must not kill or reap its parent's child. */
        int ok = cio_process_free(p) == -CIO_EFORKED && cio_process_kill(p) == -CIO_EFORKED &&
                 cio_process_close(p) == -CIO_EFORKED;
        _exit(ok ? 0 : 1);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(cio_process_returncode(p, NULL), 0); /* still running */
    CHECK_OK(cio_process_kill(p));
    int code;
    CHECK_OK(cio_process_wait(p, &code));
    CHECK_EQ(code, -SIGKILL);
    CHECK_OK(cio_process_free(p));
    return NULL;
}

TEST(a_forked_child_neither_kills_nor_reaps_its_parents_child) {
    with_loop(forked_child_leaves_the_process_alone, NULL);
}

TEST(calls_after_the_loop_is_freed_read_no_freed_memory) {
    the_loop = test_loop();
    cio_process *p;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "true", NULL, NULL, &p));
    CHECK_OK(cio_loop_close(the_loop));
    cio_loop_free(the_loop);
    CHECK_ERR(cio_process_send_signal(p, SIGTERM), -ESRCH);
    CHECK_EQ(cio_process_returncode(p, NULL), 1);
    CHECK_ERR(cio_process_wait(p, NULL), -EPERM);
    CHECK_OK(cio_process_close(p));
    CHECK_OK(cio_process_free(p));
    CHECK(no_children());
}

TEST(loop_closed_after_the_exit_but_before_the_loop_saw_it_reaps_the_child) {
    the_loop = test_loop();
    cio_process *p;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "true", NULL, NULL, &p));
    /* The child has exited (not reaped) before the loop ever runs: its
     * pidfd is readable when the close drains the exit watch. */
    siginfo_t si;
    CHECK_OK(waitid(P_PID, (id_t)cio_process_pid(p), &si, WEXITED | WNOWAIT));
    CHECK_OK(cio_loop_close(the_loop));
    CHECK(no_children());
    int code = -1;
    CHECK_EQ(cio_process_returncode(p, &code), 1);
    CHECK_OK(cio_process_free(p));
    cio_loop_free(the_loop);
}

/* A refused cio_process_free leaves the process whole (convention 4 of
 * cio.h): with a task reading its stdout, free is -EBUSY and stdin, which
 * comes first, is still there and still carries what is written to it.
 * (The free used to release stdin before finding stdout busy.) */
static void *read_stdout(void *arg) {
    cio_process *p = arg;
    static char buf[64];
    ssize_t n = cio_stream_read(cio_process_stdout(p), buf, sizeof buf);
    CHECK_EQ(n, 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    return NULL;
}

static void *refused_free(void *arg) {
    (void)arg;
    cio_process_options o = {0};
    o.stdio[0] = CIO_STDIO_PIPE;
    o.stdio[1] = CIO_STDIO_PIPE;
    cio_process *p;
    CHECK_OK(cio_create_subprocess_exec(the_loop, "cat", NULL, &o, &p));
    cio_task *t;
    CHECK_OK(cio_spawn(the_loop, read_stdout, p, &t));
    CHECK_OK(cio_sleep(0.01)); /* the reader waits on stdout */
    cio_stream *in = cio_process_stdin(p);
    CHECK(in != NULL);
    CHECK_ERR(cio_process_free(p), -EBUSY);
    CHECK(cio_process_stdin(p) == in);
    CHECK_OK(cio_stream_write(in, "hello", 5));
    CHECK_OK(cio_stream_close(in));
    CHECK_OK(cio_await(t, NULL));
    cio_future_unref(t);
    int code = -1;
    CHECK_OK(cio_process_wait(p, &code));
    CHECK_EQ(code, 0);
    CHECK_OK(cio_process_free(p));
    return NULL;
}

TEST(a_refused_free_leaves_every_pipe_of_the_process_in_place) {
    with_loop(refused_free, NULL);
}

/* Debug mode: closing a process from a thread that does not run its loop
 * is refused like its other state-changing calls, and changes nothing (it
 * used to return 0 and kill the child). */
static cio_process *closed_elsewhere;

static void *close_from_a_foreign_thread(void *arg) {
    (void)arg;
    CHECK_ERR(cio_process_close(closed_elsewhere), -CIO_EWRONGTHREAD);
    CHECK_ERR(cio_process_send_signal(closed_elsewhere, 0), -CIO_EWRONGTHREAD);
    return NULL;
}

static void *foreign_close(void *arg) {
    (void)arg;
    cio_process_options o = {0};
    o.stdio[1] = CIO_STDIO_PIPE;
    CHECK_OK(cio_create_subprocess_shell(the_loop, "sleep 0.1; echo done", &o, &closed_elsewhere));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, close_from_a_foreign_thread, NULL));
    CHECK_OK(pthread_join(th, NULL));
    void *out = NULL;
    size_t len = 0;
    CHECK_OK(cio_process_communicate(closed_elsewhere, NULL, 0, &out, &len, NULL, NULL));
    CHECK_EQ(len, 5);
    CHECK(memcmp(out, "done\n", 5) == 0);
    free(out);
    int code = -1;
    CHECK_EQ(cio_process_returncode(closed_elsewhere, &code), 1);
    CHECK_EQ(code, 0);
    CHECK_OK(cio_process_close(closed_elsewhere));
    CHECK_OK(cio_process_free(closed_elsewhere));
    return NULL;
}

TEST(debug_mode_refuses_a_process_close_from_another_thread) {
    cio_loop_options opts = {.debug = 1};
    CHECK_OK(cio_loop_new_with(&opts, &the_loop));
    CHECK_OK(test_run(the_loop, foreign_close, NULL, NULL));
    CHECK_OK(cio_loop_close(the_loop));
    cio_loop_free(the_loop);
    CHECK(no_children());
}

/* A PATH search goes on past a directory that bears the program's name,
 * as execvp and Python's subprocess do (the directory passes access(X_OK)
 * but cannot be executed); a path naming a directory is -EACCES. */
static void *path_with_a_directory(void *arg) {
    char *dir = arg;
    char sub[256];
    snprintf(sub, sizeof sub, "%s/true", dir);
    CHECK_OK(mkdir(sub, 0755));
    const char *old = getenv("PATH");
    char *saved = old ? strdup(old) : NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s:%s", dir, old ? old : "/bin:/usr/bin");
    CHECK_OK(setenv("PATH", path, 1));
    cio_process *p;
    int rc = cio_create_subprocess_exec(the_loop, "true", NULL, NULL, &p);
    if (saved) {
        setenv("PATH", saved, 1);
        free(saved);
    } else {
        unsetenv("PATH");
    }
    CHECK_OK(rc);
    int code = -1;
    CHECK_OK(cio_process_wait(p, &code));
    CHECK_EQ(code, 0);
    CHECK_OK(cio_process_free(p));
    CHECK_ERR(cio_create_subprocess_exec(the_loop, sub, NULL, NULL, &p), -EACCES);
    CHECK_OK(rmdir(sub));
    return NULL;
}

TEST(a_directory_named_like_the_program_earlier_in_path_is_skipped) {
    char dir[] = "/tmp/cio-path-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    with_loop(path_with_a_directory, dir);
    CHECK_OK(rmdir(dir));
}
