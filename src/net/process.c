/*
 * Subprocesses: asyncio's create_subprocess_exec and _shell (a process
 * with streams), and loop.subprocess_exec and _shell (a process with a
 * protocol).
 *
 * Starting. posix_spawn, which glibc runs as clone(CLONE_VM|CLONE_VFORK):
 * nothing of the parent's memory is copied, however large it is. The
 * child's standard descriptors are set by file actions; everything else
 * the parent has open is closed in the child (close_fds, with pass_fds
 * kept at their numbers) unless the program asks to inherit. The child
 * starts with no signal blocked and SIGPIPE at its default action.
 *
 * Exit. cio never reaps a child it did not start and never touches
 * SIGCHLD. Each child gets a pidfd (pidfd_open, Linux 5.3), which turns
 * readable when the child exits; the loop waits for that like any other
 * readiness, then reaps exactly that child with waitid(P_PID). Where
 * pidfd_open is missing, a thread per child waits for the exit with
 * waitid(WNOWAIT), which leaves the child to be reaped, and tells the loop
 * through an eventfd (asyncio's ThreadedChildWatcher does the same).
 *
 * Lifetime. The program frees a process with cio_process_free. A child
 * still running then is killed, as asyncio's transport does on close, and
 * the loop reaps it in the background; the record goes once it is reaped.
 * When the loop closes with children running, they are killed and reaped
 * there, so no zombie is left behind.
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"

extern char **environ;

/* For tests: nonzero makes every child watched by the thread fallback, as
 * on a kernel without pidfd_open. */
int cio__process_no_pidfd;

/* The fallback's watcher: a thread that waits for the child's exit and
 * then signals the eventfd. The process joins it once the exit is seen;
 * by then the thread has nothing left to do but return. */
typedef struct exit_thread {
    pthread_t thread;
    int efd;
    pid_t pid;
} exit_thread;

/* One of the child's standard descriptors, seen through a pipe. */
typedef struct pipe_end {
    cio_process *p;
    cio_transport *t;  /* protocol mode: NULL once it is gone */
    cio_stream *s;     /* stream mode */
    int fd;            /* 0, 1 or 2 */
} pipe_end;

struct cio_process {
    cio_loop *loop;
    uint64_t loop_key;       /* the loop's key in the live-loop table */
    const cio_subprocess_protocol *proto; /* NULL: stream mode */
    void *ctx;
    pid_t pid;
    int exit_fd;             /* the pidfd, or the fallback's eventfd */
    exit_thread *watcher;    /* the fallback's, else NULL */
    int returncode;
    uint8_t exited;          /* reaped: returncode is valid */
    uint8_t freed;           /* the program let go: free once reaped */
    uint8_t closed;          /* cio_process_close ran */
    uint8_t finished;        /* protocol mode: connection_lost ran */
    uint8_t stdin_fed;       /* communicate wrote stdin and closed it */
    uint8_t communicating;   /* a task is inside communicate */
    uint8_t in_callback;     /* protocol callbacks running (they may free p) */
    size_t limit;            /* the streams' limit, restored after communicate */
    unsigned generation;     /* cio__fork_generation at the start */
    pipe_end pipes[3];
    cio__op watch;           /* readiness of exit_fd */
    cio__job exit_job;
    cio__waitq waiters;      /* tasks in cio_process_wait */
};

/* ---- the exit ----------------------------------------------------------- */

static int code_of(const siginfo_t *si) {
    if (si->si_code == CLD_EXITED) return si->si_status;
    return -si->si_status; /* killed or dumped: minus the signal, as asyncio */
}

/* Reaps the child: 1 with *code set, 0 if it has not exited (only without
 * block), or -errno. ECHILD means someone else reaped it (SIGCHLD set to
 * SIG_IGN, or a waitpid(-1) of the program): its status is lost. */
static int reap(pid_t pid, int block, int *code) {
    siginfo_t si;
    for (;;) {
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | (block ? 0 : WNOHANG)) == 0) break;
        if (errno != EINTR) return -errno;
    }
    if (si.si_pid == 0) return 0;
    *code = code_of(&si);
    return 1;
}

/* Joins the fallback's thread (the child has exited: it is returning). */
static void join_watcher(cio_process *p) {
    if (!p->watcher) return;
    pthread_join(p->watcher->thread, NULL);
    cio__free(p->watcher);
    p->watcher = NULL;
}

static void release(cio_process *p) {
    for (int i = 0; i < 3; i++)
        if (p->pipes[i].s) cio__stream_release(p->pipes[i].s);
    cio__free(p);
}

/* Protocol callbacks may free the process. Its release then waits until
 * the outermost callback returned; leave() says whether the caller may go
 * on with p (false: it was freed, and maybe released). */
static void enter(cio_process *p) {
    p->in_callback++;
}

static bool leave(cio_process *p) {
    if (--p->in_callback == 0 && p->freed && p->exited) {
        release(p);
        return false;
    }
    return !p->freed;
}

/* The loop forgets the exit descriptor and closes it. */
static void drop_exit_fd(cio_process *p) {
    join_watcher(p);
    if (p->exit_fd < 0) return;
    cio__op close_op;
    cio__op_init(&close_op, CIO__OP_CLOSE, p->exit_fd);
    close_op.u.close.keep_fd = 0;
    cio__io_submit(&p->loop->io, &close_op);
    p->exit_fd = -1;
}

static void try_finish(cio_process *p) {
    if (!p->proto || p->finished || !p->exited || p->freed) return;
    for (int i = 0; i < 3; i++)
        if (p->pipes[i].t) return;
    p->finished = 1;
    enter(p);
    if (p->proto->connection_lost) p->proto->connection_lost(p, 0, p->ctx);
    leave(p);
}

static void exited(cio_process *p, int code) {
    p->returncode = code;
    p->exited = 1;
    drop_exit_fd(p);
    if (p->freed) {
        if (!p->in_callback) release(p);
        return;
    }
    cio__waitq_wake_all(&p->waiters, NULL);
    enter(p);
    if (p->proto && p->proto->process_exited) p->proto->process_exited(p, p->ctx);
    if (leave(p)) try_finish(p);
}

static void watch_exit(cio_process *p);

static void exit_job(cio__job *job) {
    cio_process *p = CIO__CONTAINER_OF(job, cio_process, exit_job);
    int code = 0;
    int rc = reap(p->pid, 0, &code);
    if (rc == 0) {
        watch_exit(p); /* not yet: a fallback thread that ended early */
        return;
    }
    if (rc < 0) {
        cio__report(p->loop, "a child process was reaped by someone else: its status is lost",
                    rc, NULL);
        code = 255; /* asyncio's answer to the same loss */
    }
    exited(p, code);
}

/* At loop close nothing will run again: a child still running is killed
 * and reaped here, so none is left a zombie, and the process reads as
 * exited from now on. */
static void reap_at_close(cio_process *p) {
    int code = 0;
    kill(p->pid, SIGKILL);
    if (reap(p->pid, 1, &code) < 0) code = 255;
    cio__waitq_forget_all(&p->waiters);
    p->returncode = code;
    p->exited = 1;
    join_watcher(p);
    cio__sys_close(p->exit_fd);
    p->exit_fd = -1;
    if (p->freed) release(p);
}

/* The backend's completion of the exit watch. During loop close (the
 * drain cancels the watch, or delivers a last readiness) the exit job
 * could never run: the child is reaped at once instead. */
static void on_exit_ready(cio__op *op) {
    cio_process *p = op->owner;
    if (op->result == -ECANCELED || p->loop->closing) {
        reap_at_close(p);
        return;
    }
    if (!cio__link_linked(&p->exit_job.link)) cio__ready_push(p->loop, &p->exit_job);
}

/* Loop close found the exit job queued (the exit was seen, the job not
 * run yet): it is done here. */
static void discard_exit_job(cio__job *job) {
    reap_at_close(CIO__CONTAINER_OF(job, cio_process, exit_job));
}

static pthread_once_t discard_registered = PTHREAD_ONCE_INIT;

static void register_discard(void) {
    cio__job_register_discard(exit_job, discard_exit_job);
}

static void watch_exit(cio_process *p) {
    cio__op_init(&p->watch, CIO__OP_POLL, p->exit_fd);
    p->watch.u.poll.events = CIO__POLL_IN;
    p->watch.owner = p;
    p->watch.done = on_exit_ready;
    cio__io_submit(&p->loop->io, &p->watch);
    /* Completed at once: readable already, or the backend refused. */
    if (p->watch.state == CIO__OP_DONE) on_exit_ready(&p->watch);
}

static void *fallback_thread(void *arg) {
    exit_thread *w = arg;
    siginfo_t si;
    while (waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
    }
    uint64_t one = 1;
    ssize_t n = write(w->efd, &one, sizeof one);
    (void)n;
    return NULL;
}

/* Gets a descriptor that turns readable when the child exits. */
static int open_exit_fd(cio_process *p) {
    if (!cio__process_no_pidfd) {
        long fd = syscall(SYS_pidfd_open, p->pid, 0);
        if (fd >= 0) {
            p->exit_fd = (int)fd;
            return 0;
        }
        if (errno != ENOSYS) return -errno;
    }
    exit_thread *w = cio__malloc(sizeof *w);
    if (!w) return -ENOMEM;
    w->efd = cio__sys_eventfd();
    if (w->efd < 0) {
        int rc = -errno;
        cio__free(w);
        return rc;
    }
    w->pid = p->pid;
    int rc = cio__sys_thread_start(&w->thread, fallback_thread, w);
    if (rc != 0) {
        cio__sys_close(w->efd);
        cio__free(w);
        return -rc;
    }
    p->watcher = w;
    p->exit_fd = w->efd;
    return 0;
}

/* ---- starting ----------------------------------------------------------- */

static int check_options(const cio_process_options *o) {
    for (int i = 0; i < 3; i++) {
        int how = o->stdio[i];
        if (how < CIO_STDIO_INHERIT || how > CIO_STDIO_FD) return -EINVAL;
        if (how == CIO_STDIO_STDOUT && i != 2) return -EINVAL;
        if (how == CIO_STDIO_FD && o->stdio_fd[i] < 0) return -EBADF;
    }
    if (o->n_pass_fds && !o->pass_fds) return -EINVAL;
    for (size_t i = 0; i < o->n_pass_fds; i++)
        if (o->pass_fds[i] < 0) return -EBADF;
    return 0;
}

/* Moves fd to a number >= 3 (close-on-exec), so that setting up the
 * child's 0, 1 and 2 cannot overwrite it first. */
static int above_stdio(int *fd) {
    if (*fd >= 3) return 0;
    int moved = cio__sys_fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (moved < 0) return -errno;
    cio__sys_close(*fd);
    *fd = moved;
    return 0;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Closes in the child every descriptor from 3 up but the passed ones,
 * which lose close-on-exec and keep their numbers. */
static int close_fds(posix_spawn_file_actions_t *fa, const cio_process_options *o) {
    if (o->n_pass_fds == 0) return posix_spawn_file_actions_addclosefrom_np(fa, 3);
    int *fds = cio__malloc(o->n_pass_fds * sizeof *fds);
    if (!fds) return ENOMEM;
    memcpy(fds, o->pass_fds, o->n_pass_fds * sizeof *fds);
    qsort(fds, o->n_pass_fds, sizeof *fds, cmp_int);
    int rc = 0, next = 3;
    for (size_t i = 0; i < o->n_pass_fds && rc == 0; i++) {
        /* glibc ignores closing a number that is not open. */
        for (; next < fds[i] && rc == 0; next++) rc = posix_spawn_file_actions_addclose(fa, next);
        if (fds[i] >= next) next = fds[i] + 1;
    }
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(fa, next);
    cio__free(fds);
    return rc;
}

/*
 * Finds the program as posix_spawnp would (in the parent's PATH when it
 * has no '/'), so that a missing program or directory is a clear error
 * here even where the spawn itself cannot report the exec's failure
 * (Valgrind runs the spawn as a fork). Fills path (PATH_MAX bytes).
 */
/* 0 if path names a file this process may execute, else -errno: a
 * directory passes access(X_OK) but execve refuses it (EACCES), and a
 * search goes on past it, as execvp and Python's subprocess do. */
static int executable(const char *path) {
    if (access(path, X_OK) != 0) return -errno;
    struct stat st;
    if (stat(path, &st) != 0) return -errno;
    return S_ISREG(st.st_mode) ? 0 : -EACCES;
}

static int find_program(const char *file, const char *cwd, char *path) {
    if (cwd) {
        struct stat st;
        if (stat(cwd, &st) != 0) return -errno;
        if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
    }
    if (strchr(file, '/')) {
        if (strlen(file) >= PATH_MAX) return -ENAMETOOLONG;
        strcpy(path, file);
        /* Relative to the child's directory, which only the child has. */
        if (cwd && file[0] != '/') return 0;
        return executable(file);
    }
    const char *dirs = getenv("PATH");
    if (!dirs || !*dirs) dirs = "/bin:/usr/bin";
    int rc = -ENOENT;
    for (const char *d = dirs;; d++) {
        const char *end = strchr(d, ':');
        size_t dlen = end ? (size_t)(end - d) : strlen(d);
        /* An empty entry is the current directory. */
        int n = dlen ? snprintf(path, PATH_MAX, "%.*s/%s", (int)dlen, d, file)
                     : snprintf(path, PATH_MAX, "%s", file);
        if (n > 0 && n < PATH_MAX) {
            int found = executable(path);
            if (found == 0) return 0;
            if (found == -EACCES) rc = -EACCES;
        }
        if (!end) break;
        d = end;
    }
    return rc;
}

/*
 * Starts the child. ends[i] receives the parent's end of each pipe (-1
 * where there is none); on failure nothing is left open. Returns 0 or
 * -errno (posix_spawn's error: -ENOENT for a program not found).
 */
static int start(const char *file, char *const argv[], const cio_process_options *o, pid_t *pid,
                 int ends[3]) {
    int child[3] = {-1, -1, -1}, moved[3] = {-1, -1, -1};
    int rc = 0;
    for (int i = 0; i < 3; i++) ends[i] = -1;
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (o->stdio[i] == CIO_STDIO_PIPE) {
            int fds[2];
            if (pipe2(fds, O_CLOEXEC) != 0) {
                rc = -errno;
                break;
            }
            /* stdin: the child reads; stdout, stderr: the child writes. */
            child[i] = i == 0 ? fds[0] : fds[1];
            ends[i] = i == 0 ? fds[1] : fds[0];
            if ((rc = above_stdio(&child[i])) == 0) rc = above_stdio(&ends[i]);
        } else if (o->stdio[i] == CIO_STDIO_FD && o->stdio_fd[i] < 3 && o->stdio_fd[i] != i) {
            moved[i] = cio__sys_fcntl(o->stdio_fd[i], F_DUPFD_CLOEXEC, 3);
            if (moved[i] < 0) rc = -errno;
        }
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int have_fa = 0, have_attr = 0;
    if (rc == 0 && (rc = -posix_spawn_file_actions_init(&fa)) == 0) have_fa = 1;
    if (rc == 0 && (rc = -posix_spawnattr_init(&attr)) == 0) have_attr = 1;
    for (int i = 0; i < 3 && rc == 0; i++) {
        switch (o->stdio[i]) {
        case CIO_STDIO_PIPE:
            rc = -posix_spawn_file_actions_adddup2(&fa, child[i], i);
            break;
        case CIO_STDIO_DEVNULL:
            rc = -posix_spawn_file_actions_addopen(&fa, i, "/dev/null",
                                                   i == 0 ? O_RDONLY : O_WRONLY, 0);
            break;
        case CIO_STDIO_STDOUT:
            rc = -posix_spawn_file_actions_adddup2(&fa, 1, 2);
            break;
        case CIO_STDIO_FD:
            rc = -posix_spawn_file_actions_adddup2(&fa, moved[i] >= 0 ? moved[i] : o->stdio_fd[i],
                                                   i);
            break;
        }
    }
    if (rc == 0 && o->cwd) rc = -posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    /* dup2 of a descriptor onto itself clears close-on-exec. */
    for (size_t i = 0; i < o->n_pass_fds && rc == 0; i++)
        rc = -posix_spawn_file_actions_adddup2(&fa, o->pass_fds[i], o->pass_fds[i]);
    if (rc == 0 && !o->inherit_fds) rc = -close_fds(&fa, o);
    if (rc == 0) {
        sigset_t none, defaults;
        sigemptyset(&none);
        sigemptyset(&defaults);
        sigaddset(&defaults, SIGPIPE);
        sigaddset(&defaults, SIGXFSZ);
        short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
        if (o->start_new_session) flags |= POSIX_SPAWN_SETSID;
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        rc = -posix_spawnattr_setflags(&attr, flags);
    }
    char *path = rc == 0 ? cio__malloc(PATH_MAX) : NULL;
    if (rc == 0 && !path) rc = -ENOMEM;
    if (rc == 0) rc = find_program(file, o->cwd, path);
    if (rc == 0) rc = -posix_spawn(pid, path, &fa, &attr, argv, o->env ? o->env : environ);
    cio__free(path);
    if (have_fa) posix_spawn_file_actions_destroy(&fa);
    if (have_attr) posix_spawnattr_destroy(&attr);
    for (int i = 0; i < 3; i++) {
        if (child[i] >= 0) cio__sys_close(child[i]);
        if (moved[i] >= 0) cio__sys_close(moved[i]);
        if (rc < 0 && ends[i] >= 0) {
            cio__sys_close(ends[i]);
            ends[i] = -1;
        }
    }
    return rc;
}

/* ---- protocol mode: the pipes' protocol --------------------------------- */

static void pipe_data(cio_transport *t, const void *data, size_t len, void *ctx) {
    (void)t;
    pipe_end *pe = ctx;
    if (!pe) return; /* the process was freed: its pipes are let go */
    cio_process *p = pe->p;
    enter(p);
    if (p->proto->pipe_data_received) p->proto->pipe_data_received(p, pe->fd, data, len, p->ctx);
    leave(p);
}

static void pipe_lost(cio_transport *t, int error, void *ctx) {
    (void)t;
    pipe_end *pe = ctx;
    if (!pe) return;
    cio_process *p = pe->p;
    pe->t = NULL;
    enter(p);
    if (p->proto->pipe_connection_lost) p->proto->pipe_connection_lost(p, pe->fd, error, p->ctx);
    if (leave(p)) try_finish(p);
}

static void pipe_pause(cio_transport *t, void *ctx) {
    (void)t;
    if (!ctx) return;
    cio_process *p = ((pipe_end *)ctx)->p;
    enter(p);
    if (p->proto->pause_writing) p->proto->pause_writing(p, p->ctx);
    leave(p);
}

static void pipe_resume(cio_transport *t, void *ctx) {
    (void)t;
    if (!ctx) return;
    cio_process *p = ((pipe_end *)ctx)->p;
    enter(p);
    if (p->proto->resume_writing) p->proto->resume_writing(p, p->ctx);
    leave(p);
}

/* The loop closed under the pipe: no callback comes any more. */
static void pipe_released(cio_transport *t, void *ctx) {
    (void)t;
    if (ctx) ((pipe_end *)ctx)->t = NULL;
}

static const cio_protocol pipe_protocol = {
    .data_received = pipe_data,
    .connection_lost = pipe_lost,
    .pause_writing = pipe_pause,
    .resume_writing = pipe_resume,
};

/* ---- making a process --------------------------------------------------- */

static int connect_ends(cio_process *p, int ends[3]) {
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        pipe_end *pe = &p->pipes[i];
        pe->p = p;
        pe->fd = i;
        if (ends[i] < 0) continue;
        if (rc == 0) {
            if (p->proto) {
                rc = cio__pipe_adopt(p->loop, ends[i]);
                if (rc == 0) rc = cio__transport_new_pipe(p->loop, ends[i], i == 0, &pipe_protocol,
                                                          pe, &pe->t);
                if (rc == 0) {
                    pe->t->on_release = pipe_released;
                    ends[i] = -1;
                }
            } else {
                rc = cio__stream_open_pipe(p->loop, ends[i], i == 0, &pe->s);
                if (rc == 0) {
                    ends[i] = -1;
                    cio__stream_set_owned(pe->s);
                    if (i > 0) cio_stream_set_limit(pe->s, p->limit);
                }
            }
        }
        if (ends[i] >= 0) cio__sys_close(ends[i]);
    }
    return rc;
}

static int make(cio_loop *loop, const cio_subprocess_protocol *proto, void *ctx, const char *file,
                char *const argv[], const cio_process_options *opts, cio_process **out) {
    if (out) *out = NULL;
    if (!loop || !file || !*file || !out) return -EINVAL;
    static const cio_process_options defaults;
    const cio_process_options *o = opts ? opts : &defaults;
    int rc = check_options(o);
    if (rc < 0) return rc;
    if ((rc = cio__loop_check(loop)) < 0) return rc;
    pthread_once(&discard_registered, register_discard);
    cio_process *p = cio__calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->loop = loop;
    p->loop_key = loop->key;
    p->proto = proto;
    p->ctx = ctx;
    p->exit_fd = -1;
    p->limit = o->limit ? o->limit : 65536;
    p->generation = cio__fork_generation;
    p->exit_job.run = exit_job;
    cio__list_init(&p->exit_job.link);
    cio__waitq_init(&p->waiters);
    cio__waitq_bind(&p->waiters, loop);
    char *const default_argv[] = {(char *)file, NULL};
    int ends[3];
    if ((rc = start(file, argv ? argv : default_argv, o, &p->pid, ends)) < 0) {
        cio__free(p);
        return rc;
    }
    if ((rc = open_exit_fd(p)) == 0) rc = connect_ends(p, ends);
    if (rc < 0) {
        /* The child runs already: it must not outlive the failed call. */
        int code;
        kill(p->pid, SIGKILL);
        reap(p->pid, 1, &code);
        join_watcher(p);
        if (p->exit_fd >= 0) cio__sys_close(p->exit_fd);
        for (int i = 0; i < 3; i++) {
            if (p->pipes[i].s) cio__stream_release(p->pipes[i].s);
            if (p->pipes[i].t) {
                cio_transport_set_context(p->pipes[i].t, NULL);
                p->pipes[i].t->on_release = NULL;
                cio_transport_abort(p->pipes[i].t);
            }
        }
        cio__free(p);
        return rc;
    }
    watch_exit(p);
    *out = p;
    if (proto && proto->connection_made) {
        enter(p);
        proto->connection_made(p, ctx);
        leave(p);
    }
    return 0;
}

static const char *const shell_path = "/bin/sh";

static int make_shell(cio_loop *loop, const cio_subprocess_protocol *proto, void *ctx,
                      const char *cmd, const cio_process_options *opts, cio_process **out) {
    if (!cmd) {
        if (out) *out = NULL;
        return -EINVAL;
    }
    char *const argv[] = {(char *)"sh", (char *)"-c", (char *)cmd, NULL};
    return make(loop, proto, ctx, shell_path, argv, opts, out);
}

int cio_create_subprocess_exec(cio_loop *loop, const char *file, char *const argv[],
                               const cio_process_options *opts, cio_process **out) {
    return make(loop, NULL, NULL, file, argv, opts, out);
}

int cio_create_subprocess_shell(cio_loop *loop, const char *cmd, const cio_process_options *opts,
                                cio_process **out) {
    return make_shell(loop, NULL, NULL, cmd, opts, out);
}

int cio_subprocess_exec(cio_loop *loop, const cio_subprocess_protocol *proto, void *ctx,
                        const char *file, char *const argv[], const cio_process_options *opts,
                        cio_process **out) {
    if (!proto) {
        if (out) *out = NULL;
        return -EINVAL;
    }
    return make(loop, proto, ctx, file, argv, opts, out);
}

int cio_subprocess_shell(cio_loop *loop, const cio_subprocess_protocol *proto, void *ctx,
                         const char *cmd, const cio_process_options *opts, cio_process **out) {
    if (!proto) {
        if (out) *out = NULL;
        return -EINVAL;
    }
    return make_shell(loop, proto, ctx, cmd, opts, out);
}

/* ---- the program's calls ------------------------------------------------ */

/* In a process forked after the child started, the child is not ours: it
 * must not be signalled or reaped from here (its number may even name
 * another process of that fork's). */
static int check_fork(const cio_process *p) {
    return p->generation == cio__fork_generation ? 0 : -CIO_EFORKED;
}


int cio_process_pid(cio_process *p) {
    return p ? (int)p->pid : -EINVAL;
}

int cio_process_returncode(cio_process *p, int *code) {
    if (!p) return -EINVAL;
    if (!p->exited) return 0;
    if (code) *code = p->returncode;
    return 1;
}

int cio_process_wait(cio_process *p, int *code) {
    if (!p) return -EINVAL;
    int rc = check_fork(p);
    if (rc < 0) return rc;
    /* A known exit code is the answer in any task, of any loop, as
     * asyncio's _wait returns a known returncode without a future. */
    if (p->exited && cio_current_task()) {
        if (code) *code = p->returncode;
        return 0;
    }
    rc = cio__waitq_check(&p->waiters);
    if (rc < 0) return rc;
    while (!p->exited) {
        cio__waiter w;
        if ((rc = cio__waitq_wait_on(&p->waiters, &w, CIO__WAIT_PROCESS, p, NULL,
                                     "process exit", INT64_MAX)) < 0) return rc;
    }
    if (code) *code = p->returncode;
    return 0;
}

/* Whether a pipe to the child still has its transport (asyncio: the
 * subprocess transport has not finished). */
static bool pipes_connected(const cio_process *p) {
    for (int i = 0; i < 3; i++) {
        const pipe_end *pe = &p->pipes[i];
        if (pe->t || (pe->s && cio_stream_transport(pe->s))) return true;
    }
    return false;
}

int cio_process_send_signal(cio_process *p, int sig) {
    if (!p || sig < 0 || sig >= NSIG) return -EINVAL;
    int rc = check_fork(p);
    if (rc < 0) return rc;
    /* Until it is reaped the child keeps its pid, so the number cannot
     * name another process; once reaped, there is nobody to signal (and
     * the loop may be gone: it is not read). As asyncio's, a child known
     * to have exited is not signalled, quietly, while any of its pipes is
     * still connected (Popen.send_signal skips it), and -ESRCH after that
     * (ProcessLookupError once the transport has finished). */
    if (p->exited) return pipes_connected(p) ? 0 : -ESRCH;
    if ((rc = cio__loop_check_thread(p->loop)) < 0) return rc;
    if (p->watcher == NULL && p->exit_fd >= 0)
        rc = (int)syscall(SYS_pidfd_send_signal, p->exit_fd, sig, NULL, 0);
    else
        rc = kill(p->pid, sig);
    return rc == 0 ? 0 : -errno;
}

int cio_process_terminate(cio_process *p) {
    return cio_process_send_signal(p, SIGTERM);
}

int cio_process_kill(cio_process *p) {
    return cio_process_send_signal(p, SIGKILL);
}

cio_stream *cio_process_stdin(cio_process *p) {
    return p ? p->pipes[0].s : NULL;
}

cio_stream *cio_process_stdout(cio_process *p) {
    return p ? p->pipes[1].s : NULL;
}

cio_stream *cio_process_stderr(cio_process *p) {
    return p ? p->pipes[2].s : NULL;
}

cio_transport *cio_process_pipe_transport(cio_process *p, int fd) {
    if (!p || fd < 0 || fd > 2) return NULL;
    return p->pipes[fd].s ? cio_stream_transport(p->pipes[fd].s) : p->pipes[fd].t;
}

/*
 * communicate: sends input to stdin and closes it, reads stdout and
 * stderr to their end, and waits for the exit. stdin is written by its
 * transport in the background, and the two outputs are buffered by their
 * streams with no limit meanwhile, so neither direction can block the
 * other however large they are. Nothing is taken from the streams before
 * both have ended and the child has exited: a cancelled communicate leaves
 * all the output in the streams, and a second call gets it.
 */
int cio_process_communicate(cio_process *p, const void *input, size_t len, void **out,
                            size_t *out_len, void **err, size_t *err_len) {
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (err) *err = NULL;
    if (err_len) *err_len = 0;
    if (!p || (!input && len)) return -EINVAL;
    if (p->proto) return -CIO_EINVALSTATE;
    int rc = cio__waitq_check(&p->waiters);
    if (rc < 0) return rc;
    if (p->communicating) return -EBUSY;
    cio_stream *in = p->pipes[0].s, *o = p->pipes[1].s, *e = p->pipes[2].s;
    if (in && !p->stdin_fed) {
        /* A child that exits without reading its input is no error, nor is
         * a stdin the program closed already (asyncio ignores
         * BrokenPipeError and ConnectionResetError here, and its pipe drops
         * writes after a close); any other error (a bad buffer, no memory)
         * is the caller's, with stdin left open as asyncio leaves it. */
        rc = len ? cio_stream_write(in, input, len) : 0;
        if (rc < 0 && rc != -EPIPE && rc != -ECONNRESET && rc != -CIO_ECLOSED &&
            rc != -CIO_EINVALSTATE)
            return rc;
        p->stdin_fed = 1;
        cio_stream_close(in);
    }
    p->communicating = 1;
    const size_t unlimited = SIZE_MAX / 4;
    if (o) cio_stream_set_limit(o, unlimited);
    if (e) cio_stream_set_limit(e, unlimited);
    if (o) rc = cio__stream_wait_eof(o);
    if (rc == 0 && e) rc = cio__stream_wait_eof(e);
    if (rc == 0) rc = cio_process_wait(p, NULL);
    if (o) cio_stream_set_limit(o, p->limit);
    if (e) cio_stream_set_limit(e, p->limit);
    p->communicating = 0;
    if (rc < 0) return rc;
    void *od = NULL, *ed = NULL;
    ssize_t on = 0, en = 0;
    if (o && (on = cio__stream_take_all(o, &od)) < 0) return (int)on;
    if (e && (en = cio__stream_take_all(e, &ed)) < 0) {
        free(od);
        return (int)en;
    }
    if (out) {
        *out = od;
        if (out_len) *out_len = (size_t)on;
    } else {
        free(od);
    }
    if (err) {
        *err = ed;
        if (err_len) *err_len = (size_t)en;
    } else {
        free(ed);
    }
    return 0;
}

int cio_process_close(cio_process *p) {
    if (!p) return -EINVAL;
    int rc = check_fork(p);
    if (rc < 0) return rc;
    /* Closing changes what the loop's tasks see (their pipes end), so in
     * debug mode another thread is refused, as for send_signal and the
     * streams' own close. The loop is looked up by its key, never read
     * through a pointer that may outlive it. */
    cio_loop *loop = cio__loop_by_key(p->loop_key);
    if (loop && (rc = cio__loop_check_thread(loop)) < 0) return rc;
    if (p->closed) return 0;
    p->closed = 1;
    for (int i = 0; i < 3; i++) {
        if (p->pipes[i].s) cio_stream_close(p->pipes[i].s);
        if (p->pipes[i].t) cio_transport_close(p->pipes[i].t);
    }
    if (!p->exited) kill(p->pid, SIGKILL);
    return 0;
}

/* Whether a task is inside communicate. A task that was inside when its
 * loop closed was destroyed there and never cleared the mark: once the
 * loop is closed (or freed), no task is inside. */
static bool in_communicate(const cio_process *p) {
    if (!p->communicating) return false;
    cio_loop *loop = cio__loop_by_key(p->loop_key);
    return loop && !loop->closed;
}

int cio_process_free(cio_process *p) {
    if (!p) return 0;
    int rc = check_fork(p);
    if (rc < 0) return rc;
    if (!cio__waitq_empty(&p->waiters) || in_communicate(p))
        return cio__waitq_refuse_free(&p->waiters, "a process was freed while a task waits on it");
    if (p->freed) return 0; /* again, from a callback */
    /* All or nothing: a refused free leaves every pipe as it was, so each
     * is checked before any is released. */
    for (int i = 0; i < 3; i++)
        if (p->pipes[i].s && cio__stream_in_use(p->pipes[i].s))
            return cio__waitq_refuse_free(&p->waiters,
                                          "a process was freed while a task uses one of its pipes");
    for (int i = 0; i < 3; i++) {
        cio_stream *s = p->pipes[i].s;
        if (s && cio__stream_release(s) < 0) return -EBUSY; /* checked above */
        p->pipes[i].s = NULL;
        if (p->pipes[i].t) {
            cio_transport_set_context(p->pipes[i].t, NULL);
            p->pipes[i].t->on_release = NULL;
            cio_transport_abort(p->pipes[i].t);
            p->pipes[i].t = NULL;
        }
    }
    if (!p->exited) kill(p->pid, SIGKILL);
    p->freed = 1;
    /* Inside a callback the release waits for its return (leave). */
    if (p->exited && !p->in_callback) release(p);
    return 0;
}
